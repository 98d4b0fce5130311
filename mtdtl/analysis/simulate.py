"""Simulated results tables with known effects, shaped like the paper's study.

Used by the tests (does the analysis recover what was planted?), the benchmark and the docs.
The design mimics Section 4.3: 48 SS-R runs (6 per source), 25 runs with all 8 sources (5 per
multi-source architecture) and, by default, 352 multi-source runs with 2-7 sources spread over
the five multi-source architectures (425 representations in all), each evaluated on every
target.

Two generators of the standardised score ``z``:

- ``"strategy"`` (Eqs. 10-12): ``z = b0[r] + u0[r, d] + (b1[r] + u1[r, d]) n* + e``;
- ``"size"`` (Eqs. 13-16): ``z = b0 + (b10 + u1[d]) r* + (b20 + u2[d]) n* + (b30 + u3[d]) r* n* + e``;

plus, optionally, a per-target effect of each learning source's presence (``source_effects``,
centred over the 8 sources in each target so that it adds nothing on average), which is what
Table 6's variance components measure. The raw score is ``level[d] + spread[d] * z``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from mtdtl.analysis.data import PAPER_TARGETS, RSTAR, STRATEGIES
from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError

__all__ = ["Simulation", "simulate_design", "simulate_results", "PAPER_LIKE_STRATEGY",
           "PAPER_LIKE_SIZE"]

#: Fixed effects and standard deviations of the "strategy" generator, close to the paper's Fig. 11.
PAPER_LIKE_STRATEGY = {
    "b0": {"ss_r": -0.90, "ms_sr@fc": -0.35, "ms_cr@6": 0.00, "ms_cr@4": 0.05, "ms_cr@2": 0.15,
           "mss_cr": 0.20},
    "b1": {"ms_sr@fc": 0.03, "ms_cr@6": 0.15, "ms_cr@4": 0.15, "ms_cr@2": 0.16, "mss_cr": 0.16},
    "sd0": {s: 0.25 for s in STRATEGIES},
    "sd1": {s: 0.05 for s in STRATEGIES if s != "ss_r"},
    "sd_e": 0.5,
}
#: Fixed effects and standard deviations of the "size" generator (Fig. 12's pattern).
PAPER_LIKE_SIZE = {"b0": -0.8, "b10": 0.9, "b20": 0.10, "b30": 0.05,
                   "sd1": 0.3, "sd2": 0.05, "sd3": 0.05, "sd_e": 0.5}

_TASKS = {"gtzan": ("classification", "accuracy"), "fma": ("classification", "accuracy"),
          "eballroom": ("classification", "accuracy"), "irmas": ("classification", "accuracy"),
          "emo_arousal": ("regression", "r2"), "emo_valence": ("regression", "r2"),
          "lastfm1k": ("recommendation", "ndcg@500")}


@dataclass
class Simulation:
    """A simulated results table and what was planted in it.

    Attributes
    ----------
    results : pandas.DataFrame
        Tidy results table (the schema :func:`mtdtl.analysis.load_results` reads).
    truth : dict
        ``generator``, the fixed effects and standard deviations used, ``source_effects``
        (DataFrame target x source of the planted presence effects), ``z`` (DataFrame
        ``representation, target, z``: the noise-free-of-repetitions standardised scores).
    """

    results: pd.DataFrame
    truth: dict = field(repr=False)


def simulate_design(*, n_multi: int = 352, ssr_per_source: int = 6, full_per_arch: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """Runs of a study shaped like the paper's (one row per learned representation).

    Parameters
    ----------
    n_multi : int
        Multi-source runs with 2-7 sources (the paper's phase 3: 352); ``n`` is drawn with the
        weights of the candidate counts (28, 56, 70, 56, 28, 8), architectures cycle.
    ssr_per_source : int
        SS-R runs per source (8 sources).
    full_per_arch : int
        Runs with all 8 sources per multi-source architecture.
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``representation, arch, sources, n_sources, seed``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in SOURCE_NAMES:
        for k in range(ssr_per_source):
            rows.append(("ss_r", (s,), k))
    multi = [a for a in STRATEGIES if a != "ss_r"]
    for a in multi:
        for k in range(full_per_arch):
            rows.append((a, SOURCE_NAMES, k))
    ns = np.arange(2, 8)
    w = np.array([len(list(combinations(range(8), n))) for n in ns], dtype=float)
    for i in range(n_multi):
        n = int(rng.choice(ns, p=w / w.sum()))
        idx = np.sort(rng.choice(8, size=n, replace=False))
        rows.append((multi[i % len(multi)], tuple(SOURCE_NAMES[j] for j in idx), i))
    out = pd.DataFrame(rows, columns=["arch", "src", "seed"])
    out["sources"] = out["src"].map("+".join)
    out["n_sources"] = out["src"].map(len)
    out["representation"] = [f"sim{i:04d}-{a}" for i, a in enumerate(out["arch"])]
    return out[["representation", "arch", "sources", "n_sources", "seed"]]


def simulate_results(*, targets=PAPER_TARGETS, generator: str = "strategy", params: dict | None = None,
                     design: pd.DataFrame | None = None, source_sd: float = 0.0,
                     source_effects: pd.DataFrame | None = None, repetitions: int = 1,
                     repetition_sd: float = 0.1, raw_scale: bool = True, protocol: str = "sim",
                     seed: int = 0) -> Simulation:
    """Simulate a results table from one of the two hierarchical models.

    Parameters
    ----------
    targets : sequence of str
        Target names (default: the paper's seven datasets).
    generator : {"strategy", "size"}
        Which model generates the standardised scores (module docstring).
    params : dict, optional
        Overrides of :data:`PAPER_LIKE_STRATEGY` / :data:`PAPER_LIKE_SIZE` (same keys).
    design : pandas.DataFrame, optional
        Runs (:func:`simulate_design` output); default ``simulate_design(seed=seed)``.
    source_sd : float
        SD of random per-target source-presence effects (centred over sources per target).
    source_effects : pandas.DataFrame, optional
        Planted presence effects (index targets, columns sources); overrides ``source_sd``.
    repetitions : int
        Evaluations per (representation, target); each adds ``N(0, repetition_sd^2)`` to ``z``.
    raw_scale : bool
        Map ``z`` to metric-like values ``level + spread * z`` per target; False keeps ``z``.
    protocol : str
    seed : int

    Returns
    -------
    Simulation
    """
    if generator not in ("strategy", "size"):
        raise MtdtlError(f"generator must be 'strategy' or 'size', not {generator!r}")
    rng = np.random.default_rng(seed)
    base = dict(PAPER_LIKE_STRATEGY if generator == "strategy" else PAPER_LIKE_SIZE)
    p = {**base, **(params or {})}
    runs = simulate_design(seed=seed) if design is None else design.copy()
    targets = list(targets)
    D, R = len(targets), len(runs)
    arch = runs["arch"].to_numpy()
    nstar = np.where(arch == "ss_r", 0, runs["n_sources"].to_numpy() - 2).astype(float)
    rstar = np.array([RSTAR[a] for a in arch])
    X = np.array([[int(s in src.split("+")) for s in SOURCE_NAMES] for src in runs["sources"]], dtype=float)

    if source_effects is None:
        eff = rng.normal(0.0, source_sd, size=(D, len(SOURCE_NAMES))) if source_sd > 0 else np.zeros((D, 8))
        eff = eff - eff.mean(axis=1, keepdims=True)
        source_effects = pd.DataFrame(eff, index=targets, columns=list(SOURCE_NAMES))
    else:
        source_effects = source_effects.reindex(index=targets, columns=list(SOURCE_NAMES)).fillna(0.0)

    z = np.empty((D, R))
    re = {}
    for d in range(D):
        if generator == "strategy":
            u0 = {s: rng.normal(0, p["sd0"].get(s, 0.0)) for s in STRATEGIES}
            u1 = {s: rng.normal(0, p["sd1"].get(s, 0.0)) for s in STRATEGIES}
            re[targets[d]] = {"u0": u0, "u1": u1}
            b0 = np.array([p["b0"][a] + u0[a] for a in arch])
            b1 = np.array([p["b1"].get(a, 0.0) + u1[a] for a in arch])
            mu = b0 + b1 * nstar
        else:
            u = rng.normal(0, [p["sd1"], p["sd2"], p["sd3"]])
            re[targets[d]] = dict(zip(("u1", "u2", "u3"), u))
            mu = (p["b0"] + (p["b10"] + u[0]) * rstar + (p["b20"] + u[1]) * nstar
                  + (p["b30"] + u[2]) * rstar * nstar)
        mu = mu + X @ source_effects.iloc[d].to_numpy()
        z[d] = mu + rng.normal(0, p["sd_e"], size=R)

    level = rng.uniform(0.3, 0.7, size=D) if raw_scale else np.zeros(D)
    spread = rng.uniform(0.02, 0.08, size=D) if raw_scale else np.ones(D)
    rows = []
    for d, t in enumerate(targets):
        task, metric = _TASKS.get(t, ("classification", "accuracy"))
        for k in range(repetitions):
            noise = rng.normal(0, repetition_sd, size=R) if repetitions > 1 else np.zeros(R)
            vals = level[d] + spread[d] * (z[d] + noise)
            rows.append(pd.DataFrame({
                "run": runs["representation"], "representation": runs["representation"], "kind": "learned",
                "arch": arch, "sources": runs["sources"], "n_sources": runs["n_sources"],
                "seed": runs["seed"], "epochs": 1, "target": t, "task": task, "repetition": k,
                "split": "test", "metric": metric, "value": vals, "protocol": protocol}))
            for name, zb in (("mfcc", -1.0), ("rand", -2.0), ("choi", 0.5)):
                rows.append(pd.DataFrame([{
                    "run": name, "representation": name, "kind": name, "arch": "ss_r" if name == "rand" else "",
                    "sources": "", "n_sources": 0, "seed": 0, "epochs": 0, "target": t, "task": task,
                    "repetition": k, "split": "test", "metric": metric,
                    "value": level[d] + spread[d] * (zb + (rng.normal(0, repetition_sd) if repetitions > 1 else 0)),
                    "protocol": protocol}]))
    results = pd.concat(rows, ignore_index=True)
    zdf = pd.DataFrame({"representation": np.tile(runs["representation"].to_numpy(), D),
                        "target": np.repeat(targets, R), "z": z.ravel()})
    truth = {"generator": generator, **p, "source_effects": source_effects, "random_effects": re,
             "z": zdf, "level": dict(zip(targets, level)), "spread": dict(zip(targets, spread))}
    return Simulation(results=results, truth=truth)
