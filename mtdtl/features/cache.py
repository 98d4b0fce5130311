"""The feature cache: :func:`extract_dataset` extracts a dataset once per representation, resumably.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_savez, atomic_write_text
from mtdtl.features.base import Extractor, _check_finite
from mtdtl.features.registry import get_extractor
from mtdtl.log import get_logger
from mtdtl.audio import UnreadableAudio
from mtdtl.checkpoint import check_front_end as _check_front_end
from mtdtl.store.build import make_out_dir
log = get_logger(__name__)


class FeatureSet(NamedTuple):
    """Features of a dataset: ``track_ids`` (str array, the rows of ``X``), ``X`` and ``skipped``.

    ``X`` : np.ndarray [shape=(n_tracks, dim)] float32; ``skipped``: DataFrame with columns
    ``track_id, path, reason`` (unreadable or silent files, not in ``X``).
    """

    track_ids: np.ndarray
    X: np.ndarray
    skipped: Any


_SAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")


def _slug(s: str) -> str:
    return _SAFE.sub("_", s).strip("_") or "x"


def _cache_dir(cache_dir: Any, dataset: str, ex: Extractor) -> Path:
    from mtdtl.paths import data_dir

    root = Path(cache_dir) if cache_dir is not None else data_dir() / "features"
    return root / _slug(dataset) / f"{_slug(ex.name)[:60]}-{ex.key[:16]}"


def load_cached(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every cached row of one cache folder: ``(track_ids, X)`` (consolidated file + parts)."""
    folder = Path(folder)
    ids: list[np.ndarray] = []
    Xs: list[np.ndarray] = []
    files = ([folder / "features.npz"] if (folder / "features.npz").is_file() else []) + \
        sorted((folder / "parts").glob("*.npz"))
    for p in files:
        with np.load(p, allow_pickle=False) as z:
            ids.append(z["track_ids"].astype(str))
            Xs.append(z["X"].astype(np.float32))
    if not ids:
        return np.zeros(0, dtype=str), np.zeros((0, 0), np.float32)
    tid = np.concatenate(ids)
    X = np.concatenate(Xs)
    _, first = np.unique(tid, return_index=True)  # parts may repeat rows after a crash
    first.sort()
    return tid[first], X[first]


def extract_dataset(representation: Any, tracks: Any, *, dataset: str, cache_dir: Any = None,
                    front_end: Any = None, progress: bool = True, flush_every: int = 256,
                    target_store: Any = None, store_workers: int | None = None, **kw) -> FeatureSet:
    """Features of every track of a dataset, cached on disk and resumable.

    Parameters
    ----------
    representation : Extractor, checkpoint path or spec string
        What :func:`get_extractor` accepts.
    tracks : pandas.DataFrame
        Columns ``track_id`` (unique) and ``path`` (audio file).
    dataset : str
        Dataset name (part of the cache key, e.g. ``"gtzan"`` or ``"demo:instrument"``).
    cache_dir : path, optional
        Root of the cache (default ``<data dir>/features``). Layout:
        ``<cache_dir>/<dataset>/<representation name>-<key[:16]>/`` holding ``meta.json``,
        ``features.npz`` (arrays ``track_ids``, ``X``), ``parts/*.npz`` while extraction is in
        progress, and ``skipped.csv`` of the last run.
    front_end : mtdtl.audio.FrontEnd or dict, optional
        The front end expected; a representation with another one is an error.
    progress : bool
        tqdm bar.
    flush_every : int
        Tracks per part file (what an interruption can lose at most).
    target_store : bool, path or None
        Read the dB mel of the tracks from the dataset's target store
        (:mod:`mtdtl.store.targets`), building or extending it first when tracks to extract are
        missing from it, so that every representation with the same front end shares one
        computation of the spectrograms. ``None`` (default) or ``True``: for network
        representations (:class:`~mtdtl.features.ModelExtractor`; MFCC and Choi have their own
        front ends and never use it), under :func:`mtdtl.store.targets.target_stores_dir`; a
        path: the parent folder of target stores; ``False``: compute spectrograms directly.
    store_workers : int, optional
        Worker processes of a target-store build (``None``: every core).
    **kw
        Passed to :func:`get_extractor` (``batch_size``, ``device``, ...).

    Returns
    -------
    FeatureSet
        ``(track_ids, X, skipped)``; rows in the order of ``tracks``, skipped tracks left out.
    """
    import pandas as pd

    if not isinstance(tracks, pd.DataFrame) or not {"track_id", "path"} <= set(tracks.columns):
        raise MtdtlError("tracks must be a DataFrame with columns 'track_id' and 'path'")
    ids = tracks["track_id"].astype(str).to_numpy()
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].unique()[:5].tolist()
        raise MtdtlError(f"tracks has duplicate track_id values, e.g. {dup}; track ids key the cache and must be unique")
    paths = tracks["path"].astype(str).to_numpy()
    if not dataset or not isinstance(dataset, str):
        raise MtdtlError("dataset must be a non-empty name (it keys the feature cache)")

    ex = get_extractor(representation, **kw)
    if front_end is not None:
        if ex.front_end is None:
            log.info("%s has its own front end; the requested front end does not apply", ex.name)
        else:
            _check_front_end(ex.front_end, front_end, what=f"representation {ex.name}")

    folder = _cache_dir(cache_dir, dataset, ex)
    make_out_dir(folder / "parts", what="feature cache folder")
    use_store = _uses_target_store(ex, target_store)
    desc = {**ex.describe(), "dataset": dataset}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("key") != ex.key or old.get("front_end") != desc.get("front_end") or old.get("dim") != ex.dim:
            raise MtdtlError(f"feature cache {folder} belongs to another representation (key {old.get('key')!r}, "
                             f"front end {old.get('front_end')}); remove the folder or use another cache_dir")
    else:
        atomic_write_text(meta_path, json.dumps(desc, indent=1, sort_keys=True))

    done_ids, done_X = load_cached(folder)
    have = set(done_ids.tolist())
    todo = [i for i, t in enumerate(ids) if t not in have]
    log.info("%s on %s: %d tracks cached, %d to extract (%s)", ex.name, dataset, len(ids) - len(todo), len(todo), folder)

    skipped_rows: list[dict] = []
    items: list = [paths[i] for i in todo]
    session = None
    if todo and use_store:
        from mtdtl.store.targets import open_target_store

        root = None if isinstance(target_store, bool) or target_store is None else target_store
        session = open_target_store(pd.DataFrame({"track_id": ids[todo], "path": paths[todo]}), dataset=dataset,
                                    front_end=ex.front_end, root=root, workers=store_workers, progress=progress,
                                    max_seconds_in_memory=float(getattr(ex, "max_seconds_in_memory", 600.0)))
        items = session.items()
        log.info("%s on %s: %d of %d tracks read from the target store %s, %d computed and written to it",
                 ex.name, dataset, session.n_stored, len(todo), session.folder, session.n_write_through)
    if todo:
        new_ids: list[str] = []
        new_X: list[np.ndarray] = []
        t_last = time.time()

        def write_part() -> None:
            nonlocal new_ids, new_X, t_last
            if new_ids:
                X = np.stack(new_X).astype(np.float32)
                _check_finite(X, new_ids, ex.name)
                atomic_savez(folder / "parts" / f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.npz",
                              track_ids=np.asarray(new_ids, dtype=str), X=X)
                new_ids, new_X, t_last = [], [], time.time()

        for j, v in ex.extract_many(items, progress=progress):
            i = todo[j]
            if isinstance(v, UnreadableAudio):
                log.warning("skipped %s (%s): %s", ids[i], paths[i], v)
                skipped_rows.append({"track_id": ids[i], "path": paths[i], "reason": str(v)})
                continue
            if not np.all(np.isfinite(v)):
                write_part()
                _check_finite(v[None], [f"{ids[i]} ({paths[i]})"], ex.name)
            new_ids.append(ids[i])
            new_X.append(v)
            if len(new_ids) >= flush_every or time.time() - t_last > 120:
                write_part()
        write_part()
        if session is not None:  # what the extraction computed goes into the target store
            session.finish(workers=store_workers, progress=progress)
        # consolidate: one file with every row, then drop the parts
        all_ids, all_X = load_cached(folder)
        parts = sorted((folder / "parts").glob("*.npz"))
        if parts:
            atomic_savez(folder / "features.npz", track_ids=all_ids, X=all_X)
            for p in parts:
                p.unlink(missing_ok=True)
        done_ids, done_X = all_ids, all_X
    skipped = pd.DataFrame(skipped_rows, columns=["track_id", "path", "reason"])
    atomic_write_text(folder / "skipped.csv", skipped.to_csv(index=False))

    row = {t: k for k, t in enumerate(done_ids.tolist())}
    keep = [t for t in ids if t in row]
    X = done_X[[row[t] for t in keep]] if keep else np.zeros((0, ex.dim), np.float32)
    _check_finite(X, keep, ex.name)
    return FeatureSet(np.asarray(keep, dtype=str), X, skipped)


def _uses_target_store(ex: Extractor, target_store: Any) -> bool:
    """Whether ``ex`` reads spectrograms from a target store (network extractors, unless switched off)."""
    from mtdtl.features.model import ModelExtractor

    if target_store is False:
        return False
    return isinstance(ex, ModelExtractor) and ex.front_end is not None
