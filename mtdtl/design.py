"""The study's experimental design: three phases and Algorithm 2 (Kim et al., 2019, Section 4.3).

Kim, Urbano, Liem & Hanjalic, "One deep music representation to rule them all? A comparative
analysis of different representation learning strategies", Neural Computing and Applications,
2019. Section 4.3, Algorithm 2, footnotes 5-8, Figure 7.

A design is a list of training runs (architecture x learning sources x repetition), in three
phases:

1. SS-R on each source alone, ``ss_repetitions`` times (the paper: 8 x 6 = 48 runs);
2. each multi-source architecture with all sources, ``all_repetitions`` times (5 x 5 = 25);
3. runs chosen one at a time by Algorithm 2 among the *candidates*: every multi-source
   architecture (``mss_cr``, ``ms_cr@2``, ``ms_cr@4``, ``ms_cr@6``, ``ms_sr@fc``) times every
   source subset of size ``n = 2 .. S-1`` (5 x 246 = 1,230 with the 8 sources; the paper ran 352).

The repetition index is the run's seed (phase 3 runs are all distinct: seed 0).

Algorithm 2, one step, with ``B`` the phase-3 runs chosen so far and ``A`` the remaining
candidates (phases 1-2 are fixed and take no part in the bookkeeping):

- **Unbalance** (step 4, footnote 7). Factors: the architecture (its levels), ``n`` (levels
  ``2 .. S-1``) and each source's presence (2 levels). For the design ``B + {o}``, the
  unbalance of a factor is ``max count - min count`` over its levels that are *not exhausted*
  (count < cap, the number of candidates at that level); the design's unbalance is the maximum
  over the factors. ``O`` = the candidates of minimal unbalance.
- **Aliasing** (step 5, footnote 8). Indicators: one 0/1 column per architecture level and one
  per source's presence. For indicators ``z_i, z_j`` of different factors, the alias
  coefficient of Goos & Jones (2011, section 2.3.7), ``A = (X1'X1)^-1 X1'X2`` with
  ``X1 = [1, z_i]``, ``X2 = z_j`` and both standardised, is the correlation of the two
  indicators over the runs (0 where either is constant). The design's aliasing is
  ``max |A_ij|`` over those pairs; ``n`` is left out because it is the sum of the source
  indicators (its structural correlation with them would dominate). ``P`` = the candidates of
  ``O`` whose aliasing is minimal (within ``1e-12``).
- **Pick** (step 6): one run of ``P`` uniformly at random (``numpy.random.Generator``).

Both criteria are evaluated for every candidate at once from running counts (level counts per
factor; sums and cross-products of the indicators), so a step costs O(candidates x factors).

The authors' released design (600 runs in generation order, of which the study trained the
first 352) ships with the package: :func:`released_design`. Every one of its 600 runs has the
minimal unbalance achievable at its step under the rule above (:func:`replay`); see
``docs/design.md`` for that comparison.

Formats
-------
- the *released* format (:func:`read_released`, :func:`write_released`): the authors' CSV,
  phase 3 only: ``s1..sS`` (presence, in the design's source order), ``arc`` (1 = MSS-CR,
  2 = MS-CR@2, 3 = MS-CR@4, 4 = MS-CR@6, 5 = MS-SR@FC) and ``n``; written byte for byte in the
  authors' style (R's ``write.csv``: every field quoted except ``n``);
- mtdtl's compact format (:func:`read_design`, :meth:`Design.to_csv`): one line per run,
  ``phase,step,arch,seed,sources`` with sources joined by ``+``, after a ``#`` line naming the
  design's sources, architectures and seed.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import ARCH_IDS, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_text
from mtdtl.log import get_logger

__all__ = [
    "MULTI_SOURCE_ARCHS", "PAPER_BUDGET", "PAPER_SS_REPETITIONS", "PAPER_ALL_REPETITIONS",
    "Design", "candidate_runs", "caps", "generate_design", "replay", "unbalance_table", "design_metrics",
    "alias_matrix", "max_aliasing", "read_released", "write_released", "read_design",
    "released_design", "with_fixed_phases",
]

log = get_logger(__name__)

#: The multi-source architectures, in the order of the released design's ``arc`` codes 1..5
#: (:data:`mtdtl.models.DESIGN_ARC_CODES`; taken from the constants so that the design does not
#: import torch).
MULTI_SOURCE_ARCHS: tuple[str, ...] = tuple(a for a in ARCH_IDS if a != "ss_r")
_ARC_TO_ARCH = {k: a for k, a in enumerate(MULTI_SOURCE_ARCHS, start=1)}
_ARC_CODE = {a: k for k, a in _ARC_TO_ARCH.items()}  # arch id -> arc
#: Phase-3 runs the study trained (Section 4.3).
PAPER_BUDGET = 352
#: Repetitions of SS-R per source (phase 1) and of each architecture with all sources (phase 2).
PAPER_SS_REPETITIONS = 6
PAPER_ALL_REPETITIONS = 5
#: Aliasing values within this distance of the minimum count as minimal (ties in step 5).
ALIAS_TIE_TOL = 1e-12

_RUN_COLUMNS = ["order", "phase", "step", "arch", "n", "seed"]
_TRACE_COLUMNS = ["step", "unbalance", "min_unbalance", "n_min_unbalance", "aliasing",
                  "min_aliasing", "n_min_aliasing"]


# ---------------------------------------------------------------------------------------------
# the candidate space


def _check_sources(sources: Iterable[str]) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    names = tuple(str(s).strip() for s in sources)
    if len(names) < 3:
        raise MtdtlError(
            f"a design needs at least 3 learning sources (phase 3 combines 2 .. S-1 of them); "
            f"got {list(names)}")
    bad = [s for s in names if not s or any(c in s for c in "+,#; \t\n")]
    if bad:
        raise MtdtlError(f"source names {bad} are empty or contain one of '+,#;' or a space")
    if len(set(names)) != len(names):
        raise MtdtlError(f"source names repeated in {list(names)}")
    return names


def _arch_id(arch: str) -> str:
    if arch in ARCH_IDS:
        return arch
    from mtdtl.models.registry import parse_arch  # other spellings ("MS-CR@6"); imports torch

    return parse_arch(arch).id


def _check_archs(archs: Iterable[str]) -> tuple[str, ...]:
    if isinstance(archs, str):
        archs = [a.strip() for a in archs.split(",") if a.strip()]
    ids = tuple(_arch_id(a) for a in archs)
    bad = [a for a in ids if a not in MULTI_SOURCE_ARCHS]
    if bad or not ids:
        raise MtdtlError(f"phase 3 takes multi-source architectures ({', '.join(MULTI_SOURCE_ARCHS)}); "
                         f"got {list(archs)}")
    if len(set(ids)) != len(ids):
        raise MtdtlError(f"architectures repeated in {list(archs)}")
    return tuple(a for a in MULTI_SOURCE_ARCHS if a in ids)


class _Space:
    """The phase-3 candidates as arrays, with the factors of the unbalance criterion.

    ``presence [C, S]`` bool, ``arch [C]`` index into ``archs``, ``n [C]``; candidates are
    ordered by architecture, then n, then source subset (lexicographic in the source order).
    ``level [C, F]``: each candidate's level index per factor (arch, n, one per source);
    ``caps[f] [L_f]``: candidates per level (``cap [F, max L_f]`` the same, padded with 0;
    ``flat_level [F, C]`` each candidate's level as an index into ``cap.ravel()``).
    ``X [C, K]``: aliasing indicators (architecture levels, then sources) with ``group [K]``
    their factor; ``pair_i, pair_j`` the indicator pairs of different factors and
    ``pair_code [pairs, C]`` each candidate's ``(x_i, x_j)`` per pair.
    """

    def __init__(self, sources: tuple[str, ...], archs: tuple[str, ...]):
        self.sources, self.archs = sources, archs
        S, M = len(sources), len(archs)
        subsets = [c for k in range(2, S) for c in itertools.combinations(range(S), k)]
        pres = np.zeros((len(subsets), S), dtype=bool)
        for i, c in enumerate(subsets):
            pres[i, list(c)] = True
        self.presence = np.tile(pres, (M, 1))
        self.arch = np.repeat(np.arange(M), len(subsets))
        self.n = self.presence.sum(1)
        self.n_levels = np.arange(2, S)
        self.factors = ["arch", "n", *sources]
        self.level_names = [list(archs), [int(k) for k in self.n_levels]] + [[0, 1]] * S
        self.level = np.column_stack([self.arch, self.n - 2, self.presence.astype(np.int64)])
        self.caps = [np.bincount(self.level[:, f], minlength=len(lv))
                     for f, lv in enumerate(self.level_names)]
        self.cap = np.zeros((len(self.caps), max(len(c) for c in self.caps)), dtype=np.int64)
        for f, c in enumerate(self.caps):
            self.cap[f, : len(c)] = c  # [factor, level], 0 beyond a factor's levels
        # [F, C]: index into a step's [F, L] unbalance table, ravelled (candidates last, as pair_code)
        self.flat_level = np.ascontiguousarray((self.level + self.cap.shape[1] * np.arange(len(self.caps))[None, :]).T)
        self.X = np.column_stack([self.arch[:, None] == np.arange(M)[None, :], self.presence]).astype(np.int64)
        self.group = np.r_[np.zeros(M, dtype=np.int64), 1 + np.arange(S)]
        i, j = np.triu_indices(len(self.group), 1)
        keep = self.group[i] != self.group[j]
        self.pair_i, self.pair_j = i[keep], j[keep]
        # [pairs, C]: index into a step's [pairs, 4] table of correlations (see _State.aliasing);
        # candidates last, so that the max over pairs is a fast reduction over the first axis
        self.pair_code = np.ascontiguousarray(
            (4 * np.arange(len(self.pair_i))[:, None] + 2 * self.X[:, self.pair_i].T + self.X[:, self.pair_j].T)
            .astype(np.intp))
        self._index = {self._key(self.arch[c], self.presence[c]): c for c in range(len(self))}

    def __len__(self) -> int:
        return len(self.arch)

    @staticmethod
    def _key(arch_index, presence) -> tuple:
        return (int(arch_index), tuple(bool(p) for p in presence))

    def index_of(self, arch: str, present: Sequence[bool]) -> int:
        try:
            return self._index[self._key(self.archs.index(arch), present)]
        except (KeyError, ValueError):
            names = [s for s, p in zip(self.sources, present) if p]
            raise MtdtlError(
                f"({arch}, {'+'.join(names)}) is not a phase-3 candidate of this design "
                f"(architectures {list(self.archs)}, 2..{len(self.sources) - 1} of {list(self.sources)})"
            ) from None


class _State:
    """Running counts of the chosen phase-3 runs; evaluates steps 4-5 for every candidate."""

    def __init__(self, space: _Space):
        self.space = space
        self.available = np.ones(len(space), dtype=bool)
        self.counts = np.zeros(space.cap.shape, dtype=np.int64)
        K = space.X.shape[1]
        self.N = 0
        self.sums = np.zeros(K, dtype=np.int64)
        self.cross = np.zeros((K, K), dtype=np.int64)

    def unbalance(self) -> np.ndarray:
        """``[C]`` unbalance of the chosen runs plus each candidate (step 4)."""
        sp = self.space
        L = sp.cap.shape[1]
        aug = self.counts[:, None, :] + np.eye(L, dtype=np.int64)[None]  # [factor, level added, level]
        active = aug < sp.cap[:, None, :]  # padding levels have cap 0: never active
        hi = np.where(active, aug, np.iinfo(np.int64).min).max(2)
        lo = np.where(active, aug, np.iinfo(np.int64).max).min(2)
        table = np.where(active.any(2), hi - lo, 0)  # [factor, level added]: that factor's unbalance
        return table.ravel()[sp.flat_level].max(0)

    def aliasing(self, idx: np.ndarray) -> np.ndarray:
        """``[len(idx)]`` max |correlation| over indicator pairs of different factors (step 5).

        A candidate changes a pair's sums only through its two 0/1 indicators, so the
        correlation of each pair in the augmented design takes one of 4 values: computed once
        per step (``[pairs, 4]``), then looked up by each candidate's code ``2 x_i + x_j``.
        """
        sp = self.space
        I, J = sp.pair_i, sp.pair_j
        if not len(I):
            return np.zeros(len(idx))
        xi = np.array([0, 0, 1, 1])[None, :]  # the 4 codes: (x_i, x_j) = (0,0), (0,1), (1,0), (1,1)
        xj = np.array([0, 1, 0, 1])[None, :]
        N1 = self.N + 1
        si = self.sums[I][:, None] + xi  # [pairs, 4] sums of the augmented design
        sj = self.sums[J][:, None] + xj
        p = self.cross[I, J][:, None] + xi * xj
        num = (N1 * p - si * sj).astype(np.float64)
        den = np.sqrt(((N1 * si - si * si) * (N1 * sj - sj * sj)).astype(np.float64))  # N^2 var(z) = N s - s^2
        table = np.abs(np.divide(num, den, out=np.zeros_like(num), where=den > 0)).ravel()
        if 3 * len(idx) > len(sp):  # most candidates: one contiguous lookup beats a column gather
            return np.take(table, sp.pair_code).max(0)[idx]
        return np.take(table, sp.pair_code[:, idx]).max(0)

    def add(self, c: int) -> None:
        sp = self.space
        if not self.available[c]:
            raise MtdtlError(f"candidate {c} is chosen twice")
        self.available[c] = False
        self.counts[np.arange(len(sp.factors)), sp.level[c]] += 1
        x = sp.X[c]
        self.N += 1
        self.sums += x
        self.cross += np.outer(x, x)

    def step(self, chosen: int | None, rng: np.random.Generator | None, *,
             use_aliasing: bool = True) -> tuple[int, dict]:
        """One step of Algorithm 2: choose (or, with ``chosen``, replay) a run; its trace row."""
        avail = np.flatnonzero(self.available)
        u = self.unbalance()
        u_min = u[avail].min()
        O = avail[u[avail] == u_min]
        a = self.aliasing(O)
        a_min = a.min()
        P = O[a <= a_min + ALIAS_TIE_TOL] if use_aliasing else O
        if chosen is None:
            chosen = int(P[rng.integers(len(P))])
        elif not self.available[chosen]:
            raise MtdtlError(f"phase-3 run {chosen} appears twice in the design")
        row = {"unbalance": int(u[chosen]), "min_unbalance": int(u_min), "n_min_unbalance": len(O),
               "aliasing": float(self.aliasing(np.array([chosen]))[0]), "min_aliasing": float(a_min),
               "n_min_aliasing": int((a <= a_min + ALIAS_TIE_TOL).sum())}
        self.add(chosen)
        return chosen, row


def candidate_runs(*, sources: Iterable[str] = SOURCE_NAMES,
                   archs: Iterable[str] = MULTI_SOURCE_ARCHS) -> pd.DataFrame:
    """Every phase-3 candidate: architecture x source subset of size 2 .. S-1.

    Returns
    -------
    pd.DataFrame [shape=(len(archs) * (2^S - S - 2), 2 + S)]
        ``arch``, ``n`` and one bool column per source (1,230 rows for the 8 sources).
    """
    sp = _Space(_check_sources(sources), _check_archs(archs))
    df = pd.DataFrame({"arch": [sp.archs[a] for a in sp.arch], "n": sp.n})
    for k, s in enumerate(sp.sources):
        df[s] = sp.presence[:, k]
    return df


def caps(*, sources: Iterable[str] = SOURCE_NAMES, archs: Iterable[str] = MULTI_SOURCE_ARCHS) -> pd.DataFrame:
    """Candidates per level of each factor (a level with this many runs is *exhausted*).

    Returns
    -------
    pd.DataFrame
        Columns ``factor, level, cap``; factors ``arch``, ``n`` and each source (levels 0 =
        absent, 1 = present). With the 8 sources: 246 per architecture; 140, 280, 350, 280, 140, 40
        for n = 2..7; 630 present / 600 absent per source.
    """
    sp = _Space(_check_sources(sources), _check_archs(archs))
    return pd.DataFrame([{"factor": f, "level": lv, "cap": int(c)}
                         for f, names, cap in zip(sp.factors, sp.level_names, sp.caps)
                         for lv, c in zip(names, cap)])


# ---------------------------------------------------------------------------------------------
# the design


@dataclass(frozen=True, eq=False)
class Design:
    """An experimental design: the runs of the three phases, in order.

    Attributes
    ----------
    runs : pd.DataFrame
        One row per run, in order: ``order`` (1-based over the whole design), ``phase`` (1, 2, 3),
        ``step`` (1-based within the phase; for phase 3 Algorithm 2's step), ``arch``, ``n``,
        ``seed`` (the repetition index; 0 in phase 3) and one bool column per source.
    sources : tuple of str
        The design's learning sources (the order of the released format's ``s1..sS``).
    archs : tuple of str
        The multi-source architectures of phases 2-3.
    seed : int or None
        Seed of Algorithm 2's random pick (None for a design read from a file).
    trace : pd.DataFrame or None
        Per phase-3 step: ``unbalance`` and ``aliasing`` of the chosen run, the minima over the
        remaining candidates and how many reached them (``|O|``, ``|P|``); see :func:`replay`.
    """

    runs: pd.DataFrame
    sources: tuple[str, ...]
    archs: tuple[str, ...] = MULTI_SOURCE_ARCHS
    seed: int | None = None
    trace: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        per = self.runs["phase"].value_counts().reindex([1, 2, 3], fill_value=0)
        return (f"Design({len(self)} runs: {per[1]} + {per[2]} + {per[3]} in phases 1-3; "
                f"{len(self.sources)} sources, seed={self.seed})")

    @property
    def phase3(self) -> pd.DataFrame:
        """The runs chosen by Algorithm 2, in order."""
        return self.runs[self.runs["phase"] == 3]

    def run_sources(self) -> list[tuple[str, ...]]:
        """Each run's sources (in the design's source order)."""
        pres = self.runs[list(self.sources)].to_numpy(bool)
        return [tuple(s for s, p in zip(self.sources, row) if p) for row in pres]

    def summary(self) -> pd.DataFrame:
        """Runs per phase: in all, per architecture, per number of sources (no cost assumed).

        Returns
        -------
        pd.DataFrame
            Index ``(factor, level)`` with factors ``all``, ``arch`` and ``n``; columns
            ``phase 1``, ``phase 2``, ``phase 3`` and ``total``.
        """
        r = self.runs
        cols = {p: f"phase {p}" for p in (1, 2, 3)}
        parts = []
        for factor, key in (("all", pd.Series("runs", index=r.index)), ("arch", r["arch"]), ("n", r["n"])):
            t = pd.crosstab(key, r["phase"]).reindex(columns=[1, 2, 3], fill_value=0).rename(columns=cols)
            if factor == "arch":
                t = t.reindex([a for a in ("ss_r", *MULTI_SOURCE_ARCHS) if a in t.index])
            t.index = pd.MultiIndex.from_product([[factor], t.index.astype(str)], names=["factor", "level"])
            parts.append(t)
        out = pd.concat(parts)
        out["total"] = out.sum(axis=1)
        out.columns.name = None
        return out

    def unbalance_table(self) -> pd.DataFrame:
        """Unbalance per factor of the phase-3 runs: see :func:`unbalance_table`."""
        return unbalance_table(self)

    def alias_matrix(self, **kw) -> pd.DataFrame:
        """See :func:`alias_matrix`."""
        return alias_matrix(self, **kw)

    def head(self, budget: int) -> Design:
        """The same design with only its first ``budget`` phase-3 runs (an earlier stop)."""
        if budget < 0 or budget > len(self.phase3):
            raise MtdtlError(f"budget {budget} outside 0..{len(self.phase3)} (phase-3 runs of this design)")
        keep = (self.runs["phase"] < 3) | (self.runs["step"] <= budget)
        trace = None if self.trace is None else self.trace[self.trace["step"] <= budget].reset_index(drop=True)
        return Design(self.runs[keep].reset_index(drop=True), self.sources, self.archs, self.seed, trace)

    def to_runspecs(self, *, epochs: int, width: str = "full", store=None, phases: Iterable[int] | None = None,
                    **fields) -> list:
        """The runs as :class:`mtdtl.runs.RunSpec`, in the design's order.

        Parameters
        ----------
        epochs : int
            Training epochs of every run (the paper: 200).
        width : str
            Network size (``"full"``; ``"tiny"`` for tests).
        store : path or None
            Spectrogram store the runs train on.
        phases : iterable of int or None
            Only these phases (default: all).
        **fields
            Further RunSpec fields, the same for every run (``batch_size``, ``lr``, ``l2``).

        Returns
        -------
        list of RunSpec
            One per row of ``runs`` (restricted to ``phases``), in the same order, so the i-th
            spec's phase and order are that row's ``phase`` and ``order``. Each has the run's
            ``arch``, ``sources`` and ``seed`` (the repetition); the RunSpec alone gives the
            run's id and folder.

        Raises
        ------
        MtdtlError
            From RunSpec, e.g. for a source name it does not know.
        """
        from mtdtl.runs import RunSpec  # the run identity lives there alone

        mask = np.ones(len(self.runs), bool) if phases is None else self.runs["phase"].isin(list(phases)).to_numpy()
        srcs = self.run_sources()
        return [RunSpec(arch=a, sources=srcs[i], seed=int(sd), epochs=epochs, width=width, store=store, **fields)
                for i, (a, sd) in enumerate(zip(self.runs["arch"], self.runs["seed"])) if mask[i]]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The design in mtdtl's compact format (see :func:`read_design`); written atomically to
        ``path`` when given. Returns the text."""
        header = (f"# mtdtl design; sources: {','.join(self.sources)}; archs: {','.join(self.archs)}; "
                  f"seed: {'' if self.seed is None else self.seed}\n")
        srcs = self.run_sources()
        body = pd.DataFrame({"phase": self.runs["phase"], "step": self.runs["step"], "arch": self.runs["arch"],
                             "seed": self.runs["seed"], "sources": ["+".join(s) for s in srcs]})
        text = header + body.to_csv(index=False, lineterminator="\n")
        if path is not None:
            atomic_write_text(path, text)
        return text


def _fixed_phases(sources: tuple[str, ...], archs: tuple[str, ...], ss_repetitions: int,
                  all_repetitions: int) -> list[dict]:
    if ss_repetitions < 0 or all_repetitions < 0:
        raise MtdtlError("repetitions must be >= 0")
    rows = []
    # repetition-major, so that a sweep stopped early has every source / architecture equally often
    for rep in range(ss_repetitions):
        rows += [{"phase": 1, "arch": "ss_r", "seed": rep, "present": [t == s for t in sources]} for s in sources]
    for rep in range(all_repetitions):
        rows += [{"phase": 2, "arch": a, "seed": rep, "present": [True] * len(sources)} for a in archs]
    return rows


def _build(sources, archs, fixed: list[dict], phase3: list[tuple[str, np.ndarray]], *, seed=None,
           trace=None) -> Design:
    rows = fixed + [{"phase": 3, "arch": a, "seed": 0, "present": list(p)} for a, p in phase3]
    pres = np.array([r["present"] for r in rows], dtype=bool).reshape(len(rows), len(sources))
    phase = np.array([r["phase"] for r in rows], dtype=np.int64)
    step = np.zeros(len(rows), dtype=np.int64)
    for p in (1, 2, 3):
        step[phase == p] = np.arange(1, (phase == p).sum() + 1)
    runs = pd.DataFrame({"order": np.arange(1, len(rows) + 1), "phase": phase, "step": step,
                         "arch": [r["arch"] for r in rows], "n": pres.sum(1).astype(np.int64),
                         "seed": np.array([r["seed"] for r in rows], dtype=np.int64)})
    for k, s in enumerate(sources):
        runs[s] = pres[:, k]
    if trace is not None:
        trace = pd.DataFrame(trace, columns=_TRACE_COLUMNS)
    return Design(runs, tuple(sources), tuple(archs), seed, trace)


def generate_design(*, budget: int = PAPER_BUDGET, seed: int = 0, sources: Iterable[str] = SOURCE_NAMES,
                    archs: Iterable[str] = MULTI_SOURCE_ARCHS, ss_repetitions: int = PAPER_SS_REPETITIONS,
                    all_repetitions: int = PAPER_ALL_REPETITIONS, start: Design | None = None,
                    use_aliasing: bool = True) -> Design:
    """Phases 1-2 and ``budget`` phase-3 runs chosen by Algorithm 2.

    Parameters
    ----------
    budget : int
        Phase-3 runs in all (the paper: 352 of 1,230), at most the number of candidates.
    seed : int
        Seed of the random pick among equally good candidates (step 6).
    sources, archs
        The learning sources (any 3 or more names; their order is the released format's
        ``s1..sS``) and the multi-source architectures.
    ss_repetitions, all_repetitions : int
        Repetitions in phases 1 and 2 (the paper: 6 and 5).
    start : Design or None
        Continue this design: its phase-3 runs are the first steps (Algorithm 2 run "for as long
        as time permits"); its sources and architectures are used.
    use_aliasing : bool
        False skips step 5 (the pick is random among the runs of minimal unbalance): an
        ablation, to see what the aliasing criterion buys.

    Returns
    -------
    Design
        With :attr:`Design.trace` filled (one row per phase-3 step).

    Raises
    ------
    MtdtlError
        A budget below 0 or above the number of candidates (or below ``start``'s runs).
    """
    if start is not None:
        sources, archs = start.sources, start.archs
    sources, archs = _check_sources(sources), _check_archs(archs)
    space = _Space(sources, archs)
    prefix = [] if start is None else _phase3_indices(start, space)
    if not isinstance(budget, (int, np.integer)) or budget < len(prefix) or budget > len(space):
        raise MtdtlError(
            f"budget {budget!r}: Algorithm 2 chooses between {len(prefix)} and {len(space)} phase-3 runs "
            f"here ({len(archs)} architectures x {len(space) // len(archs)} subsets of 2..{len(sources) - 1} "
            f"of {len(sources)} sources); choose a budget in that range")
    state, rng, trace, chosen = _State(space), np.random.default_rng(seed), [], []
    for t in range(int(budget)):
        c, row = state.step(prefix[t] if t < len(prefix) else None, rng, use_aliasing=use_aliasing)
        chosen.append(c)
        trace.append({"step": t + 1, **row})
    log.info("Algorithm 2: %d of %d candidates, final unbalance %d, aliasing %.3f", budget, len(space),
             trace[-1]["unbalance"] if trace else 0, trace[-1]["aliasing"] if trace else 0.0)
    fixed = _fixed_phases(sources, archs, ss_repetitions, all_repetitions)
    return _build(sources, archs, fixed, [(archs[space.arch[c]], space.presence[c]) for c in chosen],
                  seed=int(seed), trace=trace)


def _phase3_indices(design: Design, space: _Space) -> list[int]:
    p3 = design.phase3
    pres = p3[list(space.sources)].to_numpy(bool)
    return [space.index_of(a, p) for a, p in zip(p3["arch"], pres)]


def replay(design: Design) -> pd.DataFrame:
    """Replay a design's phase-3 runs through steps 4-5 of Algorithm 2.

    At each step, the criteria of the chosen run are compared with the best achievable among
    the candidates still available (the chosen runs of earlier steps fixed as they are).

    Returns
    -------
    pd.DataFrame [shape=(phase-3 runs, 7)]
        ``step``, ``unbalance`` (of the runs so far, this one included), ``min_unbalance`` (the
        least any remaining candidate would give), ``n_min_unbalance`` (``|O|``), ``aliasing``,
        ``min_aliasing`` (the least within ``O``), ``n_min_aliasing`` (``|P|``). Algorithm 2
        chose the run iff ``unbalance == min_unbalance`` and ``aliasing <= min_aliasing + 1e-12``.
    """
    space = _Space(design.sources, design.archs)
    state, rows = _State(space), []
    for t, c in enumerate(_phase3_indices(design, space)):
        _, row = state.step(c, None)
        rows.append({"step": t + 1, **row})
    return pd.DataFrame(rows, columns=_TRACE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# design metrics


def unbalance_table(design: Design) -> pd.DataFrame:
    """Unbalance of each factor over the phase-3 runs (Algorithm 2's definition).

    Returns
    -------
    pd.DataFrame
        Index ``factor`` (``arch``, ``n``, each source); columns ``levels`` (how many),
        ``exhausted`` (levels whose count reached the cap), ``min`` and ``max`` count over the
        levels not exhausted, and ``unbalance`` = max - min (0 when none is left). The design's
        unbalance is the column's maximum.
    """
    space = _Space(design.sources, design.archs)
    idx = _phase3_indices(design, space)
    rows = []
    for f, name in enumerate(space.factors):
        cap = space.caps[f]
        counts = np.bincount(space.level[idx, f], minlength=len(cap)) if idx else np.zeros(len(cap), np.int64)
        active = counts < cap
        lo = int(counts[active].min()) if active.any() else 0
        hi = int(counts[active].max()) if active.any() else 0
        rows.append({"factor": name, "levels": len(cap), "exhausted": int((~active).sum()),
                     "min": lo, "max": hi, "unbalance": hi - lo})
    return pd.DataFrame(rows).set_index("factor")


def _indicators(design: Design, phases, include_n: bool) -> tuple[pd.DataFrame, pd.MultiIndex]:
    r = design.runs if phases is None else design.runs[design.runs["phase"].isin(list(phases))]
    if r.empty:
        raise MtdtlError(f"no runs in phases {list(phases)} of this design")
    cols, keys = [], []
    for a in ("ss_r", *design.archs):
        if (r["arch"] == a).any():
            cols.append((r["arch"] == a).to_numpy())
            keys.append(("arch", a))
    for s in design.sources:
        cols.append(r[s].to_numpy(bool))
        keys.append((s, "present"))
    if include_n:
        for k in sorted(r["n"].unique()):
            cols.append((r["n"] == k).to_numpy())
            keys.append(("n", str(k)))
    index = pd.MultiIndex.from_tuples(keys, names=["factor", "level"])
    return pd.DataFrame(np.column_stack(cols).astype(np.float64), columns=index), index


def design_metrics(design: Design) -> dict[str, float]:
    """Flat summary of the phase-3 runs: their number, the unbalance (overall, of the
    architecture, of n, worst source) and the aliasing criterion (:func:`max_aliasing`)."""
    ut = unbalance_table(design)
    return {"runs": float(len(design.phase3)), "unbalance": float(ut["unbalance"].max()),
            "unbalance_arch": float(ut.loc["arch", "unbalance"]), "unbalance_n": float(ut.loc["n", "unbalance"]),
            "unbalance_sources": float(ut.loc[list(design.sources), "unbalance"].max()),
            "aliasing": max_aliasing(design)}


def alias_matrix(design: Design, *, phases: Iterable[int] | None = (3,), include_n: bool = True) -> pd.DataFrame:
    """The alias matrix among main effects (Figure 7): correlations of level indicators.

    Entry ``(i, j)`` is the alias coefficient of Goos & Jones (2011, section 2.3.7),
    ``(X1'X1)^-1 X1'X2`` for ``X1 = [1, z_i]``, ``X2 = z_j`` with ``z`` the standardised 0/1
    indicators, which is their correlation: 0 = orthogonal, +-1 = fully aliased.

    Parameters
    ----------
    design : Design
    phases : iterable of int or None
        Runs included (default: phase 3, what Algorithm 2 balances; None: every run, where SS-R
        and n = 1, 8 enter).
    include_n : bool
        Add the indicators of ``n``'s levels (structurally correlated with the sources).

    Returns
    -------
    pd.DataFrame [shape=(K, K)]
        Rows and columns indexed by ``(factor, level)``: ``("arch", "ms_cr@2")``,
        ``("self", "present")``, ``("n", "3")``; levels absent from the runs are left out; a
        constant indicator has NaN off the diagonal.
    """
    Z, index = _indicators(design, phases, include_n)
    x = Z.to_numpy()
    x = x - x.mean(0)
    norm = np.sqrt((x * x).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        A = (x.T @ x) / np.outer(norm, norm)
    np.fill_diagonal(A, 1.0)
    return pd.DataFrame(A, index=index, columns=index)


def max_aliasing(design: Design) -> float:
    """Algorithm 2's aliasing criterion for the phase-3 runs: max |A_ij| over indicator pairs of
    different factors among the architecture levels and the sources (constant ones count 0)."""
    A = alias_matrix(design, phases=(3,), include_n=False)
    f = A.index.get_level_values("factor").to_numpy()
    v = np.abs(A.to_numpy())[f[:, None] != f[None, :]]
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


# ---------------------------------------------------------------------------------------------
# files


def _name(path_or_buffer) -> str:
    if hasattr(path_or_buffer, "read"):
        return str(getattr(path_or_buffer, "name", "the design"))
    return str(path_or_buffer)


def read_released(path_or_buffer, *, sources: Iterable[str] = SOURCE_NAMES,
                  archs: Iterable[str] = MULTI_SOURCE_ARCHS, fixed_phases: bool = True,
                  ss_repetitions: int = PAPER_SS_REPETITIONS, all_repetitions: int = PAPER_ALL_REPETITIONS,
                  budget: int | None = None) -> Design:
    """Read a design in the authors' released format (phase 3, in generation order).

    Parameters
    ----------
    path_or_buffer : path or file-like
        CSV with columns ``s1..sS``, ``arc``, ``n`` (quoted or not).
    sources : iterable of str
        Names of ``s1..sS`` (default: the released code's order, ``self, bpm, year, ...``).
    archs : iterable of str
        The design's multi-source architectures (phase 2 and the candidates).
    fixed_phases : bool
        Prepend phases 1-2 (``ss_repetitions``, ``all_repetitions``); else phase 3 only.
    budget : int or None
        Keep the first ``budget`` rows (the study trained 352 of the released 600).

    Raises
    ------
    MtdtlError
        Wrong columns, values outside 0/1 or 1..5, ``n`` not the number of sources present, a
        subset size outside 2..S-1 or a repeated run; the message names the line.
    """
    sources = _check_sources(sources)
    name = _name(path_or_buffer)
    try:
        df = pd.read_csv(path_or_buffer, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise MtdtlError(f"cannot read the design {name}: {e}") from None
    expected = [f"s{k}" for k in range(1, len(sources) + 1)] + ["arc", "n"]
    if list(df.columns) != expected:
        raise MtdtlError(f"{name}: columns {list(df.columns)}, expected {expected} "
                         f"(pass sources= with {len(df.columns) - 2} names for another number of sources)")
    try:
        v = df.apply(lambda c: c.str.strip().astype(np.int64)).to_numpy()
    except (ValueError, AttributeError) as e:
        raise MtdtlError(f"{name}: every field must be an integer ({e})") from None
    pres, arc, n = v[:, :-2], v[:, -2], v[:, -1]
    for i in range(len(v)):
        line = i + 2
        if not np.isin(pres[i], (0, 1)).all():
            raise MtdtlError(f"{name}, line {line}: s-columns must be 0 or 1, got {pres[i].tolist()}")
        if arc[i] not in _ARC_TO_ARCH:
            raise MtdtlError(f"{name}, line {line}: arc {arc[i]} is not one of {sorted(_ARC_TO_ARCH)} "
                             f"({', '.join(f'{k} = {a}' for k, a in _ARC_TO_ARCH.items())})")
        if n[i] != pres[i].sum():
            raise MtdtlError(f"{name}, line {line}: n = {n[i]} but {pres[i].sum()} sources are present")
    if budget is not None:
        if budget < 0 or budget > len(v):
            raise MtdtlError(f"budget {budget} outside 0..{len(v)} (rows of {name})")
        pres, arc = pres[:budget], arc[:budget]
    archs = _check_archs(archs)
    design = _build(sources, archs, [], [(_ARC_TO_ARCH[int(a)], p.astype(bool)) for a, p in zip(arc, pres)])
    _validate_phase3(design, name)
    if fixed_phases:
        design = with_fixed_phases(design, ss_repetitions=ss_repetitions, all_repetitions=all_repetitions)
    return design


def _validate_phase3(design: Design, name) -> None:
    space = _Space(design.sources, design.archs)
    seen: dict[int, int] = {}
    p3 = design.phase3
    for i, (a, p) in enumerate(zip(p3["arch"], p3[list(design.sources)].to_numpy(bool))):
        try:
            c = space.index_of(a, p)
        except MtdtlError as e:
            raise MtdtlError(f"{name}, phase-3 run {i + 1}: {e}") from None
        if c in seen:
            raise MtdtlError(f"{name}: phase-3 runs {seen[c] + 1} and {i + 1} are the same run")
        seen[c] = i


def write_released(design: Design, path: str | os.PathLike | None = None) -> str:
    """Write the phase-3 runs in the authors' released format, byte for byte in their style.

    ``"s1",...,"sS","arc","n"`` then one line per run, every field quoted except ``n`` (as R's
    ``write.csv`` wrote the authors' file), ``\\n`` line ends. Written atomically to ``path``
    when given; returns the text.
    """
    S = len(design.sources)
    p3 = design.phase3
    head = ",".join(f'"{c}"' for c in [f"s{k}" for k in range(1, S + 1)] + ["arc", "n"])
    pres = p3[list(design.sources)].to_numpy(bool).astype(int)
    lines = [head] + [",".join(f'"{x}"' for x in (*row, _ARC_CODE[a])) + f",{int(row.sum())}"
                      for row, a in zip(pres, p3["arch"])]
    text = "\n".join(lines) + "\n"
    if path is not None:
        atomic_write_text(path, text)
    return text


def read_design(path_or_buffer) -> Design:
    """Read a design written by :meth:`Design.to_csv` (mtdtl's compact format).

    The first line, ``# mtdtl design; sources: a,b,c; archs: ...; seed: 0``, names the design's
    sources; then ``phase,step,arch,seed,sources`` rows in order (sources joined by ``+``).
    """
    name = _name(path_or_buffer)
    try:
        if hasattr(path_or_buffer, "read"):
            text = path_or_buffer.read()
        else:
            text = Path(path_or_buffer).read_text(encoding="utf-8")
    except OSError as e:
        raise MtdtlError(f"cannot read the design {name}: {e}") from None
    first, _, body = text.partition("\n")
    if not first.startswith("# mtdtl design"):
        raise MtdtlError(f"{name} is not an mtdtl design file (first line: {first[:60]!r}); "
                         f"for the authors' released format use read_released")
    meta = dict(part.split(":", 1) for part in first.split(";")[1:] if ":" in part)
    meta = {k.strip(): v.strip() for k, v in meta.items()}
    try:
        sources = _check_sources(meta["sources"])
        archs = _check_archs(meta["archs"])
    except KeyError as e:
        raise MtdtlError(f"{name}: the first line does not name the design's {e.args[0]}") from None
    seed = int(meta["seed"]) if meta.get("seed") else None
    df = pd.read_csv(io.StringIO(body), dtype={"sources": str}, keep_default_na=False)
    if list(df.columns) != ["phase", "step", "arch", "seed", "sources"]:
        raise MtdtlError(f"{name}: columns {list(df.columns)}, expected phase, step, arch, seed, sources")
    rows = []
    for i, r in enumerate(df.itertuples(index=False)):
        names = [s for s in str(r.sources).split("+") if s]
        try:
            phase, seed_i = int(r.phase), int(r.seed)
        except ValueError:
            phase = seed_i = -1
        if any(s not in sources for s in names) or phase not in (1, 2, 3) or seed_i < 0:
            raise MtdtlError(f"{name}, line {i + 3}: phase {r.phase!r}, seed {r.seed!r}, sources {r.sources!r} "
                             f"(phase 1-3, seed >= 0, sources among {', '.join(sources)})")
        rows.append({"phase": phase, "arch": _arch_id(str(r.arch)), "seed": seed_i,
                     "present": [s in names for s in sources]})
    if [r["phase"] for r in rows] != sorted(r["phase"] for r in rows):
        raise MtdtlError(f"{name}: runs are not in phase order")
    fixed = [r for r in rows if r["phase"] < 3]
    design = _build(sources, archs, fixed, [(r["arch"], r["present"]) for r in rows if r["phase"] == 3], seed=seed)
    if list(design.runs["step"]) != list(df["step"]):
        raise MtdtlError(f"{name}: the step column does not count the runs of each phase from 1")
    _validate_phase3(design, name)
    return design


def released_design(*, budget: int | None = PAPER_BUDGET, fixed_phases: bool = True) -> Design:
    """The authors' released design (Kim et al., 2019), shipped with mtdtl.

    Parameters
    ----------
    budget : int or None
        Phase-3 runs kept: the study trained the first 352 (default); None keeps all 600.
    fixed_phases : bool
        Include phases 1-2 (48 SS-R and 25 all-source runs); else phase 3 only.

    Returns
    -------
    Design
        Sources in the released code's order (``self, bpm, year, taste, tag, lyrics, cdr_tag,
        artist``); ``seed`` None.
    """
    from importlib.resources import files

    ref = files("mtdtl").joinpath("data", "design", "experimental_design.csv")
    design = read_design(io.StringIO(ref.read_text(encoding="utf-8")))
    if budget is not None:
        design = design.head(budget)
    if fixed_phases:
        design = with_fixed_phases(design)
    return design


def with_fixed_phases(design: Design, *, ss_repetitions: int = PAPER_SS_REPETITIONS,
                      all_repetitions: int = PAPER_ALL_REPETITIONS) -> Design:
    """The design's phase-3 runs after new phases 1-2 (``ss_repetitions`` SS-R runs per source,
    ``all_repetitions`` runs of each architecture with all sources); 0 and 0 drop them."""
    p3 = design.phase3
    return _build(design.sources, design.archs,
                  _fixed_phases(design.sources, design.archs, ss_repetitions, all_repetitions),
                  list(zip(p3["arch"], p3[list(design.sources)].to_numpy(bool))), seed=design.seed,
                  trace=design.trace)
