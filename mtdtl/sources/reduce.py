"""Reduce every learning source of a corpus and write ``<store>/labels/<name>.npz``.

:func:`reduce_sources` is resumable: a source whose file is already there, made with the same
settings (k, seed, options, training tracks, track universe), is loaded, not recomputed; one made
with other settings is an error (use another folder, delete the file, or ``overwrite=True``).
Each file is written atomically, so an interrupted run leaves only finished sources behind.

The helpers below turn reduced labels into the tables and curves of the preprocessing notebook:
:func:`coverage_table`, :func:`missing_table`, :func:`topic_table`, :func:`gmm_density`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import K, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.sources.base import ReducedLabels, atomic_write_bytes, labels_dir, load_reduced
from mtdtl.sources.builtin import get_source, ids_fingerprint
from mtdtl.sources.gmm import mixture_density

__all__ = ["reduce_sources", "check_k", "coverage_table", "missing_table", "topic_table", "gmm_density",
           "label_information"]

log = get_logger(__name__)

COVERAGE_FILE = "coverage.csv"


def check_k(k, *, what: str = "k") -> int:
    """``k`` (topics / GMM components) as an int >= 1, or an :class:`MtdtlError` saying so."""
    if isinstance(k, bool):
        raise MtdtlError(f"{what}={k!r}: must be a whole number >= 1 (the paper's is {K})")
    try:
        f = float(k.strip()) if isinstance(k, str) else float(k)
    except (TypeError, ValueError):
        raise MtdtlError(f"{what}={k!r}: must be a whole number >= 1 (the paper's is {K})") from None
    if not np.isfinite(f) or f != int(f) or f < 1:
        raise MtdtlError(f"{what}={k!r}: must be a whole number >= 1, the number of topics / GMM components per "
                         f"source (the paper's is {K})")
    return int(f)


def check_seed(seed) -> int:
    """``seed`` as an int >= 0, or an :class:`MtdtlError` saying so."""
    try:
        f = float(seed.strip()) if isinstance(seed, str) else float(seed)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(seed, bool) or not np.isfinite(f) or f != int(f) or f < 0:
        raise MtdtlError(f"seed={seed!r}: must be a whole number >= 0")
    return int(f)


def _settings(name: str, *, k: int, seed: int, options: dict, train_ids, track_ids) -> dict:
    return {
        "source": name, "k": 0 if name == "self" else int(k), "seed": int(seed),
        "options": {key: options[key] for key in sorted(options)},
        "train_sha1": ids_fingerprint(train_ids), "tracks_sha1": ids_fingerprint(track_ids),
    }


def reduce_sources(tables, out_dir, *, train_ids, track_ids=None, k: int = K, seed: int = 0,
                   sources=SOURCE_NAMES, source_options: dict | None = None, overwrite: bool = False,
                   progress: bool = True) -> dict[str, ReducedLabels]:
    """Reduce learning sources to z_t and save them under ``<out_dir>/labels/``.

    Parameters
    ----------
    tables : corpus or mapping
        Anything with ``labels(name) -> DataFrame`` (a :class:`mtdtl.corpora.Corpus`), or a
        mapping from raw label table name (``"tag"``, ``"artist"``, ...) to DataFrame.
    out_dir : path
        The store folder; files go to ``<out_dir>/labels/<name>.npz`` plus ``coverage.csv``.
    train_ids : iterable of str
        Training tracks: every reduction is fit on these only.
    track_ids : iterable of str, optional
        All tracks to label (the learning part); default: the training tracks plus every
        track with raw labels.
    k, seed : latent factors and seed (``self`` has k = 0)
    sources : names from the registry (:func:`mtdtl.sources.get_source`)
    source_options : {name: {option: value}}, passed to each source's constructor
    overwrite : recompute sources whose saved settings differ instead of raising
    progress : tqdm bar over sources

    Returns
    -------
    dict of str to ReducedLabels, in the order of ``sources``
    """
    from tqdm.auto import tqdm

    k, seed = check_k(k), check_seed(seed)  # before anything is written
    source_options = dict(source_options or {})
    unknown = set(source_options) - set(sources)
    if unknown:
        raise MtdtlError(f"source_options names sources that are not reduced: {sorted(unknown)}")
    sources = list(dict.fromkeys(sources))
    makers = {name: get_source(name, **source_options.get(name, {})) for name in sources}  # fail early
    train_ids = [str(t) for t in train_ids]
    if not train_ids:
        raise MtdtlError("reduce_sources needs at least one training track (train_ids is empty)")
    folder = labels_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, ReducedLabels] = {}
    bar = tqdm(sources, desc="reduce sources", disable=not progress, unit="source")
    for name in bar:
        bar.set_postfix_str(name)
        path = folder / f"{name}.npz"
        if track_ids is None:
            universe = None
        else:
            universe = [str(t) for t in track_ids]
        settings = _settings(name, k=k, seed=seed, options=source_options.get(name, {}),
                             train_ids=train_ids, track_ids=universe if universe is not None else ())
        if path.exists() and not overwrite:
            done = ReducedLabels.load(path)
            if done.meta.get("settings") == settings:
                log.info("%s: already reduced, loaded %s", name, path)
                out[name] = done
                continue
            raise MtdtlError(
                f"{path} was made with other settings ({_diff(done.meta.get('settings'), settings)}); "
                "use another output folder, delete the file, or pass overwrite=True"
            )
        red = makers[name].fit(tables, train_ids=train_ids, k=k, seed=seed, track_ids=universe)
        red.meta["settings"] = settings
        red.save(path)
        log.info("%s: %d tracks, %d missing (k=%d) → %s", name, len(red), len(red.missing), red.k, path)
        out[name] = red
    _write_coverage(folder, load_reduced(out_dir))
    return out


def _diff(old, new) -> str:
    if not isinstance(old, dict):
        return "no settings recorded"
    keys = [key for key in new if old.get(key) != new[key]]
    return ", ".join(f"{key}: {old.get(key)!r} → {new[key]!r}" for key in keys) or "unknown difference"


def _coverage(reduced: dict[str, ReducedLabels]) -> pd.DataFrame:
    rows = []
    for name, red in reduced.items():
        row = red.coverage()
        row["method"] = red.meta.get("method", "")
        row["n_train"] = red.meta.get("n_train", np.nan)
        reasons = pd.Series(list(red.missing_reasons.values()), dtype=object).value_counts()
        row["missing_reasons"] = "; ".join(f"{r}: {n}" for r, n in reasons.items())
        rows.append(row)
    cols = ["source", "method", "k", "present", "missing", "coverage", "n_train", "missing_reasons"]
    return pd.DataFrame(rows, columns=cols)


def _write_coverage(folder: Path, reduced: dict[str, ReducedLabels]) -> None:
    buf = io.StringIO()
    _coverage(reduced).to_csv(buf, index=False)
    atomic_write_bytes(folder / COVERAGE_FILE, buf.getvalue().encode())


def _reduced(store_or_reduced) -> dict[str, ReducedLabels]:
    if isinstance(store_or_reduced, dict):
        return store_or_reduced
    if isinstance(store_or_reduced, ReducedLabels):
        return {store_or_reduced.name: store_or_reduced}
    return load_reduced(store_or_reduced)


def coverage_table(store_or_reduced) -> pd.DataFrame:
    """Label coverage per source: ``source, method, k, present, missing, coverage, n_train,
    missing_reasons`` (``n_train``: tracks the reduction was fit on — artists for ``artist``)."""
    return _coverage(_reduced(store_or_reduced))


def label_information(store_or_reduced) -> pd.DataFrame:
    """How much each reduced source says about a track: is there something to learn in z_t?

    A source teaches the network little when its z_t are nearly uniform (every track gets the
    same vague distribution) or nearly the same for every track. Both show in entropies (nats),
    with ``k`` topics / components:

    - ``entropy``: the mean over tracks of H(z_t); ``log k`` is uniform, 0 is one-hot;
    - ``entropy_of_mean``: H of the mean z_t over tracks (how varied the tracks are, as a whole);
    - ``information``: ``entropy_of_mean - entropy``, the mutual information between a track
      (uniform) and its topic: 0 when every track has the same z_t, at most ``log k``;
    - ``top1``: the mean largest probability of a z_t; ``distinct_top``: how many topics are the
      most probable one of some track; ``largest_share``: the share of tracks whose most
      probable topic is the most common one.

    Returns
    -------
    pd.DataFrame
        One row per source with labels (``self`` has none and is left out): ``source, tracks,
        k, log_k, entropy, entropy_of_mean, information, top1, distinct_top, largest_share``.
    """
    rows = []
    for name, red in _reduced(store_or_reduced).items():
        z = np.asarray(red.z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] == 0 or len(z) == 0:
            continue
        z = z / np.clip(z.sum(1, keepdims=True), 1e-12, None)
        h = -(z * np.log(np.clip(z, 1e-12, 1.0))).sum(1)
        m = z.mean(0)
        hm = float(-(m * np.log(np.clip(m, 1e-12, 1.0))).sum())
        top = z.argmax(1)
        counts = np.bincount(top, minlength=z.shape[1])
        rows.append({"source": name, "tracks": len(z), "k": z.shape[1], "log_k": float(np.log(z.shape[1])),
                     "entropy": float(h.mean()), "entropy_of_mean": hm, "information": hm - float(h.mean()),
                     "top1": float(z.max(1).mean()), "distinct_top": int((counts > 0).sum()),
                     "largest_share": float(counts.max() / len(z))})
    cols = ["source", "tracks", "k", "log_k", "entropy", "entropy_of_mean", "information", "top1", "distinct_top",
            "largest_share"]
    return pd.DataFrame(rows, columns=cols)


def missing_table(store_or_reduced) -> pd.DataFrame:
    """Every missing (source, track) with its reason: ``source, track_id, reason``."""
    rows = [
        (name, t, red.missing_reasons.get(t, ""))
        for name, red in _reduced(store_or_reduced).items()
        for t in red.missing
    ]
    return pd.DataFrame(rows, columns=["source", "track_id", "reason"])


def topic_table(store_or_reduced, source: str | None = None, *, n_topics: int | None = None) -> pd.DataFrame:
    """Top terms per topic (Table 2) of one pLSA source, or of all of them with a ``source``
    column. ``n_topics`` keeps the strongest topics (by weight) only."""
    reduced = _reduced(store_or_reduced)
    names = [source] if source is not None else [n for n, r in reduced.items() if "pLSA" in r.meta.get("method", "")]
    frames = []
    for name in names:
        if name not in reduced:
            raise MtdtlError(f"no reduced labels for source {name!r} (have {sorted(reduced)})")
        t = reduced[name].topics
        if t is None or "terms" not in t.columns:
            raise MtdtlError(f"source {name!r} has no topics (method: {reduced[name].meta.get('method')})")
        t = t.sort_values("weight", ascending=False, kind="stable")
        if n_topics is not None:
            t = t.head(n_topics)
        frames.append(t.assign(source=name)[["source"] + list(t.columns)])
    if not frames:
        return pd.DataFrame(columns=["source", "topic", "weight", "terms"])
    return pd.concat(frames, ignore_index=True)


def gmm_density(store_or_reduced, source: str = "bpm", *, n_points: int = 512) -> dict:
    """What a plot of a GMM source needs: the fitted density over the training values.

    Returns
    -------
    dict with
        ``x`` : np.ndarray [shape=(n_points,)], grid over the training range (± 3 %)
        ``pdf`` : np.ndarray [shape=(n_points,)], mixture density
        ``components`` : np.ndarray [shape=(k, n_points)], weighted component densities
        ``table`` : DataFrame ``component, weight, mean, std``
        ``hist_edges``, ``hist_density`` : training-value histogram, normalised as a density
    """
    reduced = _reduced(store_or_reduced)
    if source not in reduced:
        raise MtdtlError(f"no reduced labels for source {source!r} (have {sorted(reduced)})")
    red = reduced[source]
    if red.meta.get("method") != "GMM posterior" or red.topics is None:
        raise MtdtlError(f"source {source!r} is not a GMM source (method: {red.meta.get('method')})")
    hist = red.meta.get("histogram", {})
    edges = np.asarray(hist.get("edges", []), dtype=np.float64)
    counts = np.asarray(hist.get("counts", []), dtype=np.float64)
    comp = red.topics
    if edges.size >= 2:
        lo, hi = edges[0], edges[-1]
    else:
        mu, sd = comp["mean"].to_numpy(), comp["std"].to_numpy()
        lo, hi = float((mu - 3 * sd).min()), float((mu + 3 * sd).max())
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    x = np.linspace(lo - pad, hi + pad, n_points)
    pdf, parts = mixture_density(comp, x)
    dens = counts / (counts.sum() * np.diff(edges)) if counts.sum() > 0 else counts
    return {"x": x, "pdf": pdf, "components": parts, "table": comp.copy(),
            "hist_edges": edges, "hist_density": dens}
