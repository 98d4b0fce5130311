"""Multiple explanatory factors (Section 5.5, Figure 16): a t-SNE map of a target dataset in a
learned representation, with each learning source's strongest predicted topic per track.

:func:`explain` runs a trained multi-source network over a target dataset once. Per track it
keeps

- the representation the evaluation uses: ``[mean ‖ std]`` of the fc-feature over the track's
  2.5 s slices (:func:`mtdtl.features.base.aggregate`);
- for every learning source with a topic model (every source but ``self``), the predicted
  factor distribution z_t: the source's fc-out head on each slice's fc-feature (its own block
  for MSS-CR / MS-CR, the shared feature for MS-SR@FC), softmax, averaged over the slices;

then embeds the track features in 2-D with openTSNE (seeded: the same inputs, seed and
``n_jobs`` give the same map) and names each source's strongest topic (argmax of z_t) with
its top terms from the topic tables of preprocessing (pLSA topics: their strongest terms; GMM
sources such as ``bpm`` and ``year``: the component's mean ± std).

The result, an :class:`Explanation`, holds the map (:attr:`Explanation.embedding`), the
predicted z_t, the topic tables, and helpers for the notebook: :meth:`Explanation.top_topics_table`
(example tracks, one column per source), :meth:`Explanation.zoom_regions` (dense regions of the
map) and :meth:`Explanation.region_topics`. :func:`mtdtl.plots.explain.fig16_explain` draws
Figure 16 from it.

Per-track results of the network pass are cached (``<cache_dir>/explain/<dataset>/<run>.npz``),
so re-running with another perplexity or seed only redoes the t-SNE.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["Explanation", "explain", "source_topic_terms", "tsne_embedding"]

log = get_logger(__name__)

#: Columns of :attr:`Explanation.embedding` before the per-source ones.
BASE_COLUMNS = ("track_id", "x", "y", "label", "split")

#: Dimensions kept by the PCA step before t-SNE (van der Maaten's usual choice).
PCA_DIMS = 50

_SAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")


def _slug(s: str) -> str:
    return _SAFE.sub("_", str(s)).strip("_") or "x"


# ---------------------------------------------------------------------------------------
# topic tables
# ---------------------------------------------------------------------------------------

def _number(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def source_topic_terms(reduced, *, n_out: int | None = None) -> pd.DataFrame:
    """The topics of one learning source as the explanation names them.

    Parameters
    ----------
    reduced : mtdtl.sources.ReducedLabels
        A source's reduced labels (``topics`` from preprocessing).
    n_out : int, optional
        Units of the model's head for this source; a table with another number of topics is an
        error (the run was trained on another store).

    Returns
    -------
    pandas.DataFrame
        One row per topic, in the order of z_t's columns: ``topic`` (``"tag3"``, ``"bpm2"``),
        ``terms`` (list of str, strongest first; for a GMM source one entry, the component's
        mean ± std: ``"88 ± 2 bpm"``, ``"1595 ± 4.9"``),
        ``weight`` (the topic's share in the training data).

    Raises
    ------
    MtdtlError
        The source has no topic table, or one of the wrong size.
    """
    name = reduced.name
    t = reduced.topics
    method = reduced.meta.get("method", "")
    if t is None or len(t) == 0:
        raise MtdtlError(f"source {name!r} has no topic table in its reduced labels (method: {method or 'unknown'}); "
                         "re-run mtdtl.preprocess.preprocess_corpus to write one")
    if n_out is not None and len(t) != int(n_out):
        raise MtdtlError(f"source {name!r}: the store has {len(t)} topics but the model's head has {n_out} outputs: "
                         "the run was trained on another store; pass store= the run's store")
    if "terms" in t.columns:  # pLSA: "a, b, c"
        names = [str(x) for x in t["topic"]] if "topic" in t.columns else [f"{name}{i + 1}" for i in range(len(t))]
        terms = [[s.strip() for s in str(x).split(",") if s.strip()] for x in t["terms"]]
    elif {"mean", "std"} <= set(t.columns):  # GMM components, sorted by mean
        unit = " bpm" if str(reduced.meta.get("column", name)) == "bpm" else ""
        names = [f"{name}{i + 1}" for i in range(len(t))]
        terms = [[f"{_number(float(m))} ± {float(s):.2g}{unit}"] for m, s in zip(t["mean"], t["std"])]
    else:
        raise MtdtlError(f"source {name!r}: its topic table has columns {list(t.columns)}, neither pLSA terms nor "
                         "GMM components; re-run preprocessing")
    weight = t["weight"].to_numpy(dtype=np.float64) if "weight" in t.columns else np.full(len(t), np.nan)
    return pd.DataFrame({"topic": names, "terms": terms, "weight": weight})


# ---------------------------------------------------------------------------------------
# the network pass: track features and predicted z_t
# ---------------------------------------------------------------------------------------

def _dataset_key(target) -> str:
    import hashlib

    root = Path(target.root)
    return f"{root.name}-{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]}"


def _track_slices(ex, path: str):
    """Raw dB slices of one file, in one piece or block by block (long files)."""
    from mtdtl.audio import UnreadableAudio, is_silent, load_audio, stream_slices

    try:
        import soundfile as sf

        info = sf.info(str(path))
        dur = info.frames / float(info.samplerate) if info.frames > 0 else None
    except Exception:  # noqa: BLE001 - not a soundfile format (mp3 via audioread, ...): decode it whole
        dur = None
    if dur is not None and dur > getattr(ex, "max_seconds_in_memory", 600.0):
        yield from stream_slices(Path(path), ex.front_end, device=ex.device, block_slices=64)
        return
    try:
        y = load_audio(path, sr=ex.sample_rate)
    except MtdtlError as e:
        raise UnreadableAudio(str(e)) from e
    if is_silent(y):
        raise UnreadableAudio(f"{path} is silent (peak below -80 dBFS)")
    yield ex.slices(y)


def _network_pass(ex, sources: list[str], paths: list[str], *, progress: bool):
    """Per track: ``[mean ‖ std]`` of the fc-feature and the slice-mean softmax of each head.

    Slices of consecutive tracks share forward passes of ``ex.batch_size`` slices (30 s clips
    have about 12 slices each). Returns ``(ok, X, Z, reasons)``: ``ok`` bool per path,
    ``X [n, 2 d]``, ``Z`` source -> ``[n, k]`` (rows of unusable tracks are zero) and
    ``reasons`` index -> why unusable.
    """
    import torch
    from tqdm.auto import tqdm

    from mtdtl.audio import UnreadableAudio

    model = ex.model
    n, d, k = len(paths), ex.feature_dim, int(model.n_out)
    X = np.zeros((n, 2 * d), dtype=np.float32)
    Z = {s: np.zeros((n, k), dtype=np.float64) for s in sources}
    ok = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    acc: dict[int, list] = {}  # track -> [sum F, sum F², {source: sum softmax}, n slices]
    pending: list[tuple[int, Any]] = []  # (track, raw slices) not yet through the network
    ended: list[int] = []

    def flush() -> None:
        if not pending:
            return
        S = torch.cat([x for _, x in pending])
        owner = torch.from_numpy(np.concatenate([np.full(x.shape[0], i) for i, x in pending]))
        pending.clear()
        F = ex.slice_features(S)
        with torch.inference_mode():
            probs = {s: torch.softmax(model.head_logits(F, s).double(), dim=1).cpu() for s in sources}
        F = F.double().cpu()
        for i in torch.unique(owner).tolist():
            rows = owner == i
            a = acc[i]
            a[0] += F[rows].sum(0)
            a[1] += (F[rows] ** 2).sum(0)
            for s in sources:
                a[2][s] += probs[s][rows].sum(0)
            a[3] += int(rows.sum())

    def finish() -> None:
        for i in ended:
            s1, s2, zs, count = acc.pop(i)
            if count == 0:
                reasons[i] = "no slices"
                continue
            mean = s1 / count
            std = (s2 / count - mean * mean).clamp_min(0).sqrt()
            X[i] = torch.cat([mean, std]).numpy().astype(np.float32)
            for s in sources:
                Z[s][i] = (zs[s] / count).numpy()
            ok[i] = True
        ended.clear()

    for i, path in enumerate(tqdm(paths, desc=f"explain {ex.name}", disable=not progress, unit="track")):
        acc[i] = [torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64),
                  {s: torch.zeros(k, dtype=torch.float64) for s in sources}, 0]
        try:
            for S in _track_slices(ex, path):
                pending.append((i, S))
                if sum(x.shape[0] for _, x in pending) >= ex.batch_size:
                    flush()
                    finish()
        except UnreadableAudio as e:  # drop what this track had
            pending[:] = [(j, x) for j, x in pending if j != i]
            acc.pop(i)
            reasons[i] = str(e)
            continue
        ended.append(i)
    flush()
    finish()
    return ok, X, Z, reasons


def _cached_pass(ex, sources: list[str], tracks: pd.DataFrame, *, dataset: str, cache_dir, progress: bool):
    """:func:`_network_pass` with a per-track cache: tracks already done are read back."""
    from mtdtl.io import atomic_savez

    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_root()
    path = root / "explain" / _slug(dataset) / f"{_slug(ex.name)[:60]}-{ex.key[:16]}.npz"
    ids = tracks["track_id"].astype(str).tolist()
    have: dict[str, tuple] = {}
    skipped_old: dict[str, str] = {}
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                cids = [str(t) for t in f["track_ids"]]
                cX = f["X"]
                cZ = {s: f[f"z_{s}"] for s in sources}
                skipped_old = json.loads(str(f["skipped"]))
            have = {t: (cX[j], {s: cZ[s][j] for s in sources}) for j, t in enumerate(cids)}
        except (KeyError, ValueError, OSError) as e:
            log.warning("explanation cache %s unusable (%s): recomputing", path, e)
            have, skipped_old = {}, {}
    todo = [j for j, t in enumerate(ids) if t not in have and t not in skipped_old]
    if todo:
        log.info("%s: network pass over %d of %d tracks of %s", ex.name, len(todo), len(ids), dataset)
        ok, X, Z, reasons = _network_pass(ex, sources, [str(tracks["path"].iloc[j]) for j in todo], progress=progress)
        for m, j in enumerate(todo):
            if ok[m]:
                have[ids[j]] = (X[m], {s: Z[s][m] for s in sources})
            else:
                skipped_old[ids[j]] = reasons.get(m, "unusable")
        all_ids = sorted(have)
        arrays = {"track_ids": np.asarray(all_ids, dtype=str),
                  "X": np.stack([have[t][0] for t in all_ids]) if all_ids else np.zeros((0, ex.dim), np.float32),
                  "skipped": np.asarray(json.dumps(skipped_old))}
        for s in sources:
            arrays[f"z_{s}"] = (np.stack([have[t][1][s] for t in all_ids]) if all_ids
                                else np.zeros((0, int(ex.model.n_out))))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_savez(path, **arrays)
        except OSError as e:  # a read-only cache is not fatal
            log.warning("could not write the explanation cache %s: %s", path, e)
    else:
        log.info("%s: every track of %s read from the cache %s", ex.name, dataset, path)
    keep = [t for t in ids if t in have]
    X = np.stack([have[t][0] for t in keep]) if keep else np.zeros((0, ex.dim), np.float32)
    Z = {s: (np.stack([have[t][1][s] for t in keep]) if keep else np.zeros((0, int(ex.model.n_out))))
         for s in sources}
    skipped = pd.DataFrame([(t, skipped_old[t]) for t in ids if t in skipped_old], columns=["track_id", "reason"])
    return keep, X, Z, skipped


def _default_cache_root() -> Path:
    from mtdtl.paths import data_dir

    return data_dir() / "features"


# ---------------------------------------------------------------------------------------
# t-SNE
# ---------------------------------------------------------------------------------------

def tsne_embedding(X: np.ndarray, *, perplexity: float = 30.0, seed: int = 0, n_iter: int = 500,
                   pca_dims: int | None = PCA_DIMS, n_jobs: int | None = None) -> tuple[np.ndarray, dict]:
    """2-D t-SNE of track features: standardise, PCA, openTSNE.

    Parameters
    ----------
    X : np.ndarray [shape=(n_tracks, dim)]
    perplexity : float
        Lowered to ``(n_tracks - 1) / 3`` when larger (openTSNE's limit); logged.
    seed : int
        Seeds openTSNE (the PCA initialisation's jitter, approximate neighbours).
    n_iter : int
        Iterations after the 250 of early exaggeration (openTSNE's default: 500).
    pca_dims : int or None
        Keep this many principal components first (``None``: no PCA); scikit-learn's
        ``svd_solver="auto"`` (randomised, seeded, for all but small inputs).
    n_jobs : int, optional
        openTSNE threads (default 1: on a busy machine more threads were much slower for maps
        of a few thousand tracks). The map is the same for the same inputs, seed and ``n_jobs``.

    Returns
    -------
    Y : np.ndarray [shape=(n_tracks, 2)] float64
    info : dict
        ``perplexity`` (used), ``kl_divergence``, ``pca_dims`` (used), ``seconds``.
    """
    import openTSNE
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if X.ndim != 2 or n < 4:
        raise MtdtlError(f"t-SNE needs at least 4 tracks with features, got {n}: use a larger target dataset")
    if not np.all(np.isfinite(X)):
        raise MtdtlError("track features hold NaN or inf values; the checkpoint or its scaler is broken")
    perplexity = float(perplexity)
    if not perplexity > 0:
        raise MtdtlError(f"perplexity={perplexity}: must be > 0 (the usual range is 5-50; default 30)")
    n_iter = int(n_iter)
    if n_iter < 1:
        raise MtdtlError(f"n_iter={n_iter}: must be >= 1 (default 500)")
    n_jobs = 1 if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise MtdtlError(f"n_jobs={n_jobs}: must be >= 1")
    used = min(perplexity, (n - 1) / 3.0)
    if used < perplexity:
        log.warning("perplexity %g is too large for %d tracks: using %.3g", perplexity, n, used)
    t0 = time.perf_counter()
    # BLAS threads beyond n_jobs only fight other processes (a full SVD of 1,000 x 2,560 took
    # 20 s with every core's thread on a busy machine, 0.6 s randomised on one thread)
    with threadpool_limits(n_jobs):
        mu, sd = X.mean(axis=0), X.std(axis=0)
        Xs = np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0)
        dims = None
        if pca_dims is not None and min(n - 1, Xs.shape[1]) > int(pca_dims):
            dims = int(pca_dims)
            Xs = PCA(n_components=dims, svd_solver="auto", random_state=int(seed)).fit_transform(Xs)
        tsne = openTSNE.TSNE(n_components=2, perplexity=used, n_iter=n_iter, random_state=int(seed),
                             n_jobs=n_jobs, initialization="pca", verbose=False)
        emb = tsne.fit(Xs)
    Y = np.asarray(emb, dtype=np.float64)
    info = {"perplexity": used, "kl_divergence": float(getattr(emb, "kl_divergence", np.nan)),
            "pca_dims": dims, "seconds": time.perf_counter() - t0, "n_jobs": int(n_jobs)}
    return Y, info


# ---------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------

@dataclass
class Explanation:
    """A t-SNE map of a target dataset with each learning source's predicted topics.

    Attributes
    ----------
    embedding : pandas.DataFrame
        One row per track with features: ``track_id, x, y, label, split``, then per source
        ``<source>_topic`` (strongest predicted topic, e.g. ``"tag3"``), ``<source>_p`` (its
        probability) and ``<source>_terms`` (its top terms, comma-separated).
    z : dict of str to np.ndarray [shape=(n_tracks, k)]
        Predicted z_t per source (rows sum to 1), rows in the order of ``embedding``.
    topics : dict of str to pandas.DataFrame
        Per source: ``topic, terms (list), weight``, one row per column of ``z``.
    features : np.ndarray [shape=(n_tracks, dim)]
        The track features that were embedded (``[mean ‖ std]`` of the fc-feature).
    sources : tuple of str
        Sources explained (the run's sources without ``self``), in canonical order.
    run, arch, target, task : str
        The representation (run id), its architecture, the target dataset and its task.
    params : dict
        t-SNE settings and timings (``perplexity`` asked and used, ``seed``, ``n_iter``,
        ``pca_dims``, ``kl_divergence``, ``tsne_seconds``, ``pass_seconds``, ``n_jobs``).
    skipped : pandas.DataFrame
        ``track_id, reason`` of the tracks left out (unreadable or silent audio).
    """

    embedding: pd.DataFrame
    z: dict
    topics: dict
    features: np.ndarray
    sources: tuple
    run: str
    arch: str
    target: str
    task: str
    params: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["track_id", "reason"]))

    def __repr__(self) -> str:
        return (f"Explanation(run={self.run!r}, target={self.target!r}, tracks={len(self.embedding)}, "
                f"sources={list(self.sources)}, perplexity={self.params.get('perplexity')})")

    # -- look-ups --
    def _check_source(self, source: str) -> None:
        if source not in self.z:
            raise MtdtlError(f"no source {source!r} in this explanation; it has {list(self.sources)}")

    def _row(self, track_id: str) -> int:
        hits = np.flatnonzero(self.embedding["track_id"].to_numpy() == str(track_id))
        if not hits.size:
            raise MtdtlError(f"track {track_id!r} is not in the explanation of {self.target} "
                             f"({len(self.embedding)} tracks; skipped ones are in .skipped)")
        return int(hits[0])

    def terms(self, source: str, topic: int, *, n_terms: int | None = None) -> list[str]:
        """Top terms of topic number ``topic`` (0-based column of ``z``) of ``source``."""
        self._check_source(source)
        t = list(self.topics[source]["terms"].iloc[int(topic)])
        return t if n_terms is None else t[:max(1, int(n_terms))]

    def top_topics(self, track_id: str, *, n_topics: int = 3, n_terms: int = 5) -> pd.DataFrame:
        """The ``n_topics`` strongest predicted topics of one track, per source.

        Returns
        -------
        pandas.DataFrame
            ``source, rank, topic, p, terms`` (terms comma-separated).
        """
        i = self._row(track_id)
        rows = []
        for s in self.sources:
            z = self.z[s][i]
            for r, j in enumerate(np.argsort(-z, kind="stable")[:max(1, int(n_topics))]):
                rows.append((s, r + 1, self.topics[s]["topic"].iloc[j], float(z[j]),
                             ", ".join(self.terms(s, j, n_terms=n_terms))))
        return pd.DataFrame(rows, columns=["source", "rank", "topic", "p", "terms"])

    # -- notebook tables --
    def example_tracks(self, n_examples: int = 5) -> list[str]:
        """``n_examples`` tracks spread over the map: the track nearest each k-means centre of (x, y)."""
        from sklearn.cluster import KMeans

        n = len(self.embedding)
        k = max(1, min(int(n_examples), n))
        P = self.embedding[["x", "y"]].to_numpy()
        if k == n:
            idx = list(range(n))
        else:
            km = KMeans(n_clusters=k, n_init=10, random_state=int(self.params.get("seed", 0))).fit(P)
            idx = []
            for c in km.cluster_centers_:
                order = np.argsort(((P - c) ** 2).sum(1), kind="stable")
                idx.append(int(next(j for j in order if j not in idx)))
            idx.sort(key=lambda j: (P[j, 0], P[j, 1]))
        return [str(self.embedding["track_id"].iloc[j]) for j in idx]

    def top_topics_table(self, n_examples: int = 5, *, n_terms: int = 4, tracks=None) -> pd.DataFrame:
        """The strongest predicted topic of every source for a few example tracks.

        Parameters
        ----------
        n_examples : int
            Example tracks, spread over the map (:meth:`example_tracks`).
        n_terms : int
            Terms shown per topic.
        tracks : sequence of str, optional
            These tracks instead.

        Returns
        -------
        pandas.DataFrame
            One row per track: ``track_id, label, x, y``, then one column per source holding
            ``"tag3 (0.41): folk, fiddle, irish"``.
        """
        ids = [str(t) for t in tracks] if tracks is not None else self.example_tracks(n_examples)
        rows = []
        for t in ids:
            i = self._row(t)
            e = self.embedding.iloc[i]
            row = {"track_id": t, "label": e["label"], "x": round(float(e["x"]), 2), "y": round(float(e["y"]), 2)}
            for s in self.sources:
                j = int(np.argmax(self.z[s][i]))
                row[s] = (f"{self.topics[s]['topic'].iloc[j]} ({self.z[s][i, j]:.2f}): "
                          + ", ".join(self.terms(s, j, n_terms=n_terms)))
            rows.append(row)
        return pd.DataFrame(rows, columns=["track_id", "label", "x", "y", *self.sources])

    def zoom_regions(self, n: int = 2, *, size: float = 0.25, grid: int = 64) -> pd.DataFrame:
        """The ``n`` densest square regions of the map, not overlapping.

        A Gaussian kernel density of the points (Scott's bandwidth) is evaluated on a
        ``grid x grid`` lattice; the densest lattice point not inside an earlier region is
        the next region's centre.

        Parameters
        ----------
        n : int
            Regions (fewer when the map has no room for more).
        size : float
            Side of a region as a fraction of the map's larger extent (0 < size <= 1).
        grid : int
            Lattice points per axis.

        Returns
        -------
        pandas.DataFrame
            ``region`` (1..n), ``x0, x1, y0, y1``, ``n_tracks``, ``top_label`` (most common
            label inside; NaN where labels are not classes), ``label_share`` and ``track_ids``
            (list).
        """
        size = float(size)
        if not 0 < size <= 1:
            raise MtdtlError(f"size={size}: a region's side is a fraction of the map, in (0, 1]")
        n, grid = int(n), max(8, int(grid))
        if n < 1:
            raise MtdtlError(f"n={n}: ask for at least one region")
        P = self.embedding[["x", "y"]].to_numpy(dtype=np.float64)
        lo, hi = P.min(0), P.max(0)
        span = float(max(hi - lo)) or 1.0
        half = size * span / 2
        gx = np.linspace(lo[0], hi[0], grid)
        gy = np.linspace(lo[1], hi[1], grid)
        GX, GY = np.meshgrid(gx, gy, indexing="xy")
        G = np.stack([GX.ravel(), GY.ravel()], 1)
        bw = max(float(P.std(0).mean()) * len(P) ** (-1.0 / 6.0), 1e-9 * span)  # Scott's rule in 2-D
        dens = np.zeros(len(G))
        for start in range(0, len(P), 512):
            D = ((G[:, None, :] - P[None, start:start + 512, :]) ** 2).sum(-1)
            dens += np.exp(-0.5 * D / bw ** 2).sum(1)
        order = np.argsort(-dens, kind="stable")
        labels = self.embedding["label"]
        categorical = not pd.api.types.is_numeric_dtype(labels)
        out, boxes = [], []
        for g in order:
            if len(out) == n:
                break
            cx, cy = G[g]
            if any(abs(cx - bx) < 2 * half and abs(cy - by) < 2 * half for bx, by in boxes):
                continue
            inside = (np.abs(P[:, 0] - cx) <= half) & (np.abs(P[:, 1] - cy) <= half)
            if inside.sum() == 0:
                continue
            boxes.append((cx, cy))
            lab = labels[inside]
            if categorical and lab.notna().any():
                vc = lab.value_counts()
                top, share = str(vc.index[0]), float(vc.iloc[0] / len(lab))
            else:
                top, share = np.nan, np.nan
            out.append({"region": len(out) + 1, "x0": cx - half, "x1": cx + half, "y0": cy - half, "y1": cy + half,
                        "n_tracks": int(inside.sum()), "top_label": top, "label_share": share,
                        "track_ids": self.embedding["track_id"][inside].astype(str).tolist()})
        if len(out) < n:
            log.info("only %d non-overlapping regions of size %.2f fit on the map (asked for %d)", len(out), size, n)
        return pd.DataFrame(out, columns=["region", "x0", "x1", "y0", "y1", "n_tracks", "top_label", "label_share",
                                          "track_ids"])

    def region_topics(self, regions: pd.DataFrame | None = None, *, n_terms: int = 4) -> pd.DataFrame:
        """Per region and source: the strongest topic of the region's mean predicted z_t.

        Returns
        -------
        pandas.DataFrame
            ``region, source, topic, p`` (mean probability in the region), ``share`` (fraction
            of the region's tracks whose own strongest topic it is) and ``terms``.
        """
        regions = self.zoom_regions() if regions is None else regions
        pos = {t: i for i, t in enumerate(self.embedding["track_id"].astype(str))}
        rows = []
        for _, r in regions.iterrows():
            idx = [pos[t] for t in r["track_ids"] if t in pos]
            for s in self.sources:
                Zr = self.z[s][idx]
                j = int(np.argmax(Zr.mean(0)))
                rows.append((int(r["region"]), s, self.topics[s]["topic"].iloc[j], float(Zr.mean(0)[j]),
                             float(np.mean(Zr.argmax(1) == j)), ", ".join(self.terms(s, j, n_terms=n_terms))))
        return pd.DataFrame(rows, columns=["region", "source", "topic", "p", "share", "terms"])

    def summary(self) -> str:
        """A few plain lines: what was embedded, how, and how long it took."""
        p = self.params
        lines = [f"{self.run} ({self.arch}) on {self.target}: {len(self.embedding)} tracks embedded"
                 + (f", {len(self.skipped)} skipped" if len(self.skipped) else ""),
                 (f"track features: [mean ‖ std] of the fc-feature, {self.features.shape[1]} values; "
                  f"standardised, PCA to {p.get('pca_dims') or 'all'} dims, t-SNE (perplexity "
                  f"{p.get('perplexity_used', float('nan')):.3g}, seed {p.get('seed')}, "
                  f"KL {p.get('kl_divergence', float('nan')):.3f})"),
                 f"sources explained: {', '.join(self.sources)}",
                 f"time: network pass {p.get('pass_seconds', 0):.1f} s, t-SNE {p.get('tsne_seconds', 0):.1f} s"]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------

def _resolve_target(target, *, corpus, root):
    from mtdtl.targets.base import TargetDataset

    if isinstance(target, TargetDataset):
        return target
    if not isinstance(target, str) or not target.strip() or "," in target or target.strip() == "demo":
        raise MtdtlError(f"target={target!r}: give one target dataset, a loaded TargetDataset or a name such as "
                         "'demo:genre' (with corpus=) or 'gtzan' (with root=)")
    from mtdtl.transfer import resolve_targets

    name = target.strip()
    roots = {name: root} if root is not None else None
    return resolve_targets(name, corpus=corpus, roots=roots)[0]


def explain(run_dir: str | os.PathLike, target: Any, *, corpus: str | os.PathLike | None = None,
            root: str | os.PathLike | None = None, store: str | os.PathLike | None = None,
            perplexity: float = 30.0, seed: int = 0, n_iter: int = 500, pca_dims: int | None = PCA_DIMS,
            cache_dir: str | os.PathLike | None = None, device: Any = None, batch_size: int = 256,
            n_jobs: int | None = None, progress: bool = True) -> Explanation:
    """t-SNE of a target dataset in a run's representation, with each source's predicted topics.

    Parameters
    ----------
    run_dir : path
        A trained multi-source run (run folder or checkpoint file).
    target : TargetDataset or str
        The target dataset, loaded (:func:`mtdtl.targets.load_target`) or by name:
        ``"demo:<task>"`` with ``corpus=``, a real dataset (``"gtzan"``) with ``root=``.
    corpus, root : path, optional
        Where a named target lives.
    store : path, optional
        The store whose topic tables name the topics (default: the run's store, from
        ``model.json``). Needed when the run was moved without its data directory.
    perplexity : float
        t-SNE perplexity (default 30; lowered for tiny datasets).
    seed : int
        t-SNE seed.
    n_iter : int
        t-SNE iterations after early exaggeration.
    pca_dims : int or None
        Principal components kept before t-SNE (default 50; ``None``: none).
    cache_dir : path, optional
        Root of the per-track cache (default ``<data dir>/features``; files under ``explain/``).
    device : str, optional
        Where the network runs (``None``: CUDA when present).
    batch_size : int
        Slices per forward pass.
    n_jobs : int, optional
        t-SNE threads (default 1).
    progress : bool
        Progress bar over the tracks.

    Returns
    -------
    Explanation

    Raises
    ------
    MtdtlError
        A single-source (SS-R) run (one source: nothing to compare), a run whose sources have
        no topic model (only ``self``), a store without topic tables or with another number
        of topics than the heads, a target with fewer than 4 usable tracks.
    """
    from mtdtl.checkpoint import checkpoint_store, read_meta
    from mtdtl.features import get_extractor
    from mtdtl.models.registry import parse_arch
    from mtdtl.sources import load_reduced

    meta = read_meta(run_dir)
    spec = parse_arch(meta.get("arch", ""))
    run_sources = list(meta.get("sources") or [])
    if not spec.multi_source:
        raise MtdtlError(f"{run_dir} is a single-source {spec.label} run ({'+'.join(run_sources)}): one source, "
                         "nothing to compare. Explain a multi-source run (mss_cr, ms_cr@2/4/6 or ms_sr@fc)")
    sources = [s for s in run_sources if s != "self"]
    if not sources:
        raise MtdtlError(f"{run_dir} learned only from 'self', which has no topics: nothing to explain")

    store_dir = Path(store).expanduser() if store is not None else checkpoint_store(meta)
    if store_dir is None:
        raise MtdtlError(f"{run_dir}: model.json records no store, so the topic tables are unknown; "
                         "pass store= the spectrogram store the run was trained on")
    try:
        reduced = load_reduced(store_dir)
    except MtdtlError as e:
        raise MtdtlError(f"the run's store {store_dir} has no topic tables ({e}); pass store= the folder written "
                         "by mtdtl.preprocess.preprocess_corpus for this run") from None
    n_out = int(meta.get("n_out", 50))
    with_topics = [s for s in sources if s in reduced and reduced[s].topics is not None and len(reduced[s].topics)]
    if not with_topics:
        raise MtdtlError(f"the store {store_dir} has no topic tables for the run's sources {sources}; "
                         "re-run mtdtl.preprocess.preprocess_corpus there, or pass store= the run's store")
    for s in sources:
        if s not in with_topics:
            log.warning("source %s has no topic table in %s: left out of the explanation", s, store_dir)
    sources = with_topics
    topics = {s: source_topic_terms(reduced[s], n_out=n_out) for s in sources}

    tgt = _resolve_target(target, corpus=corpus, root=root)
    tracks = tgt.tracks
    if len(tracks) == 0:
        raise MtdtlError(f"target {tgt.name} has no tracks")

    ex = get_extractor(Path(run_dir), device=device, batch_size=batch_size)
    t0 = time.perf_counter()
    keep, X, Z, skipped = _cached_pass(ex, sources, tracks, dataset=_dataset_key(tgt), cache_dir=cache_dir,
                                       progress=progress)
    pass_s = time.perf_counter() - t0
    if len(skipped):
        log.warning("%s: %d unusable tracks left out (e.g. %s: %s)", tgt.name, len(skipped),
                    skipped["track_id"].iloc[0], skipped["reason"].iloc[0])
    if len(keep) < 4:
        raise MtdtlError(f"target {tgt.name}: only {len(keep)} usable tracks; a t-SNE map needs at least 4")

    Y, info = tsne_embedding(X, perplexity=perplexity, seed=seed, n_iter=n_iter, pca_dims=pca_dims, n_jobs=n_jobs)
    by_id = tracks.set_index(tracks["track_id"].astype(str))
    emb = pd.DataFrame({"track_id": keep, "x": Y[:, 0], "y": Y[:, 1],
                        "label": by_id.loc[keep, "label"].to_numpy(),
                        "split": by_id.loc[keep, "split"].to_numpy() if "split" in by_id else ""})
    z = {}
    for s in sources:
        zs = Z[s]
        zs = zs / zs.sum(1, keepdims=True)  # float64 rounding only
        z[s] = zs
        j = zs.argmax(1)
        emb[f"{s}_topic"] = topics[s]["topic"].to_numpy()[j]
        emb[f"{s}_p"] = zs[np.arange(len(j)), j]
        emb[f"{s}_terms"] = [", ".join(topics[s]["terms"].iloc[k]) for k in j]
    params = {"perplexity": float(perplexity), "perplexity_used": info["perplexity"], "seed": int(seed),
              "n_iter": int(n_iter), "pca_dims": info["pca_dims"], "kl_divergence": info["kl_divergence"],
              "n_jobs": info["n_jobs"], "tsne_seconds": info["seconds"], "pass_seconds": pass_s,
              "store": str(store_dir), "feature": "mean ‖ std of the fc-feature over 2.5 s slices"}
    log.info("%s on %s: %d tracks mapped (network pass %.1f s, t-SNE %.1f s, KL %.3f)", ex.name, tgt.name,
             len(keep), pass_s, info["seconds"], info["kl_divergence"])
    return Explanation(embedding=emb, z=z, topics=topics, features=X, sources=tuple(sources), run=ex.name,
                       arch=spec.id, target=tgt.name, task=tgt.task, params=params, skipped=skipped)
