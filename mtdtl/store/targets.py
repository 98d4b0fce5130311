"""Target spectrogram stores: each target dataset's dB mel computed once, shared by every representation.

Every representation with a learned front end (a checkpoint, Rand) turns each target track into
the same dB mel spectrogram before its network runs: the checkpoint's :class:`~mtdtl.audio.FrontEnd`
does not depend on the weights, only the per-band scaler does. Decoding plus the mel front end
costs more than the network itself on a CPU (``/work/shared/PERF.md``), so evaluating R
representations on a target dataset would compute the same spectrograms R times.

A **target store** is an ordinary spectrogram store (:mod:`mtdtl.store`: float16, memory-mapped,
time-major, crash-safe and resumable, built by :func:`~mtdtl.store.build_store`) of one target
audio set under one front end. The first representation fills it while it extracts
(:func:`open_target_store`: each missing track is decoded and transformed once in the
extractor's background thread, overlapping the network, written as a store chunk in the
builder's format, and extracted from exactly the stored float16 values; :meth:`TargetStoreSession.finish`
then consolidates the chunks with :func:`~mtdtl.store.build_store`, which recomputes nothing).
Every later representation reads its raw dB slices from the store and standardises them with
its own checkpoint's scaler at read time (:meth:`mtdtl.features.ModelExtractor.scale`), so
extraction is bound by the network. :func:`ensure_target_store` builds a whole store first
instead (worker processes on every core).

Layout and key
--------------
::

    <root>/<dataset slug>-<front-end hash[:12]>[-f32]/   a store (see mtdtl.store)
    <root>/<dataset slug>-<front-end hash[:12]>.lock      held while the store is built or extended
    <root>/<dataset slug>-<front-end hash[:12]>.skipped.json  files the builds could not store (not
                                                           retried until their size or mtime changes)

``root`` defaults to :func:`target_stores_dir`, ``<data dir>/target_stores``. The dataset
name is the feature cache's (``extract_dataset(dataset=...)``; :func:`mtdtl.transfer.evaluate_transfer`
passes the target's audio set, ``<folder>-<hash of its path>``), so targets that share audio
share one store; the front-end hash covers every field of the FrontEnd, so representations
with another front end get another store. Every clip is in split ``"target"`` (the store's
scaler is fit on it but never used: each representation brings its own).

What is and is not stored
-------------------------
- Files longer than ``max_seconds_in_memory`` are left out: the extractor streams them in blocks
  as before (they would need the whole decode in memory, which streaming exists to avoid).
- Unreadable, empty and silent files are skipped by the build (and listed in its
  ``build_report.json``); extraction then meets them on the direct path, which reports them as
  skipped with their own reason.
- A track is read from the store only when its ``(track_id, path)`` is stored with the source
  file's current size and mtime; a changed file is recomputed by the next build.
- A store is only ever extended (tracks already in it are kept), so a second call with fewer
  tracks does not shrink it.

float16 tolerance
-----------------
Stored dB values are rounded to float16 (at most ``|x| * 2**-11``: 0.031 dB below 64 dB, 0.0625 dB
up to 128 dB; :mod:`mtdtl.store`), i.e. 0.002-0.005 units after standardisation. This is the
rounding the networks were trained with (the learning store is float16 too). Features from the
target store equal directly computed ones within that (tested: relative L2 difference of the
feature matrix below 1e-3, measured 4e-5, for a small network); the cold (write-through) and
warm paths give the same features.

Size
----
A 30 s clip takes 1,323,008 B (:func:`~mtdtl.store.clip_bytes`). FMA-medium, 25,000 x 30 s clips:
``store_bytes(25_000)`` = 33.1 GB (30.8 GiB) at float16. The builder checks free disk space
first and, when there is not enough, logs a warning and extraction computes spectrograms
directly as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from mtdtl.audio import FrontEnd, as_front_end
from mtdtl.constants import CROP_FRAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.store.build import (
    _key,
    _read_chunk_meta,
    build_store,
    chunk_arrays,
    chunk_meta,
    contiguous_as,
    make_out_dir,
    save_chunk,
)
from mtdtl.store.reader import SpectrogramStore, clip_bytes

__all__ = [
    "TARGET_SPLIT",
    "StoredClip",
    "TargetStoreSession",
    "WriteThrough",
    "ensure_target_store",
    "open_target_store",
    "store_size_bytes",
    "stored_items",
    "target_store_path",
    "target_stores_dir",
]

log = get_logger(__name__)

#: The split every clip of a target store is in.
TARGET_SPLIT = "target"


def target_stores_dir() -> Path:
    """Default parent folder of target stores: ``<data dir>/target_stores``.

    Taken from :func:`mtdtl.paths.target_stores_dir` when that exists (the one place default
    folders are decided), with the same default otherwise.
    """
    from mtdtl import paths

    fn = getattr(paths, "target_stores_dir", None)
    return Path(fn()) if fn is not None else paths.data_dir() / "target_stores"


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._+@=-]+", "_", str(s)).strip("_")[:80] or "x"


def front_end_hash(front_end: FrontEnd) -> str:
    """sha256 of every field of ``front_end`` (hex)."""
    return hashlib.sha256(json.dumps(front_end.to_dict(), sort_keys=True).encode()).hexdigest()


def target_store_path(dataset: str, front_end: Any, *, root: str | os.PathLike | None = None,
                      dtype: str = "float16") -> Path:
    """Folder of the target store of ``dataset`` (an audio-set name) under ``front_end``."""
    fe = as_front_end(front_end)
    if fe is None:
        raise MtdtlError("a target store needs the representation's FrontEnd; this representation has none")
    if not dataset or not isinstance(dataset, str):
        raise MtdtlError("a target store needs a non-empty dataset name")
    base = Path(root).expanduser() if root is not None else target_stores_dir()
    suffix = "" if dtype == "float16" else "-f32"
    return base / f"{_slug(dataset)}-{front_end_hash(fe)[:12]}{suffix}"


def store_size_bytes(store: SpectrogramStore) -> int:
    """Bytes of every file of a built store."""
    return sum(p.stat().st_size for p in Path(store.root).iterdir() if p.is_file())


@contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; waits (logging once) while another process builds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("waiting for another process building the target store %s", path.with_suffix(""))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def _duration(path: str) -> float | None:
    try:
        import soundfile as sf

        info = sf.info(path)
        return info.frames / float(info.samplerate) if info.frames > 0 else None
    except Exception:
        return None


def _absolute(p: str) -> str:
    return str(Path(p).expanduser().absolute())


def _open(folder: Path) -> SpectrogramStore | None:
    if not (folder / "store.json").is_file():
        return None
    try:
        return SpectrogramStore.open(folder)
    except MtdtlError as e:
        log.warning("target store %s cannot be opened (%s); it will be rebuilt", folder, e)
        return None


def _fresh(store: SpectrogramStore | None) -> dict[tuple[str, str], int]:
    """``(track_id, path) -> position`` of the clips whose source file is unchanged since stored."""
    if store is None:
        return {}
    m = store.manifest
    out = {}
    for i, (tid, p, size, mtime) in enumerate(zip(m["track_id"].astype(str), m["path"].astype(str),
                                                  m["source_size"], m["source_mtime_ns"])):
        if _stat(p) == (int(size), int(mtime)):
            out[(tid, p)] = i
    return out


def ensure_target_store(tracks: pd.DataFrame, *, dataset: str, front_end: Any,
                        root: str | os.PathLike | None = None, max_seconds_in_memory: float = 600.0,
                        workers: int | None = None, dtype: str = "float16", progress: bool = True,
                        check_disk: bool = True) -> SpectrogramStore | None:
    """The target store of ``dataset`` holding every (short enough, readable) track of ``tracks``.

    Builds or extends it with :func:`~mtdtl.store.build_store` when tracks are missing or their
    files changed; reuses it untouched otherwise. Tracks already in the store are kept.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Columns ``track_id`` and ``path`` (relative paths are taken from the working directory,
        as the feature cache does, and stored absolute).
    dataset : str
        The audio set's name (the feature cache's ``dataset``).
    front_end : mtdtl.audio.FrontEnd or dict
    root : path, optional
        Parent folder of target stores (default :func:`target_stores_dir`).
    max_seconds_in_memory : float
        Files longer than this are not stored (the extractor streams them).
    workers : int, optional
        Worker processes of the build (``None``: every core; in-process below 8 clips).
    dtype : {"float16", "float32"}
    progress : bool
    check_disk : bool
        Before building, compare the estimated size with the free disk space; when it does not
        fit, log a warning and return ``None`` (extraction then computes spectrograms directly).

    Returns
    -------
    SpectrogramStore or None
        ``None`` when nothing could be stored (every file long or unreadable, or no disk space).
    """
    fe = as_front_end(front_end)
    if not isinstance(tracks, pd.DataFrame) or not {"track_id", "path"} <= set(tracks.columns):
        raise MtdtlError("tracks must be a DataFrame with columns 'track_id' and 'path'")
    folder = target_store_path(dataset, fe, root=root, dtype=dtype)
    make_out_dir(folder.parent, what="target store folder")
    ids = tracks["track_id"].astype(str).tolist()
    paths = [_absolute(p) for p in tracks["path"].astype(str)]

    store = _open(folder)
    fresh = _fresh(store)
    missing = [(t, p) for t, p in zip(ids, paths) if (t, p) not in fresh]
    if not missing:
        return store
    with _build_lock(folder.with_name(folder.name + ".lock")):
        store = _open(folder)  # another process may have built it while we waited
        fresh = _fresh(store)
        missing = [(t, p) for t, p in zip(ids, paths) if (t, p) not in fresh]
        if not missing:
            return store
        # Which of the missing files are worth storing: not long (streamed), not already
        # known to be unreadable with the same size and mtime.
        bad = _known_bad(folder)
        new, durations, n_long = [], [], 0
        for t, p in missing:
            if bad.get((t, p)) == _stat(p):
                continue
            d = _duration(p)
            if d is not None and d > max_seconds_in_memory:
                n_long += 1
                continue
            new.append((t, p))
            durations.append(30.0 if d is None else d)
        if n_long:
            log.info("target store %s: %d files longer than %.0f s are streamed, not stored", folder.name, n_long,
                     max_seconds_in_memory)
        if not new:
            return store
        new_ids = {x for x, _ in new}
        keep = [(t, p) for (t, p) in fresh if t not in new_ids]
        pending = [(t, p) for (t, p) in _pending_chunks(folder) if t not in new_ids and (t, p) not in fresh]
        rows = keep + [r for r in pending if r[0] not in {t for t, _ in keep}] + new
        if check_disk and not _fits(folder, durations, store, fe, dtype):
            return store
        t0 = time.time()
        log.info("target store %s: computing %d spectrograms (%d already stored)", folder, len(new), len(keep))
        table = pd.DataFrame({"track_id": [t for t, _ in rows], "path": [p for _, p in rows],
                              "split": TARGET_SPLIT})
        try:
            store = build_store(table, folder, front_end=fe, train_split=TARGET_SPLIT, dtype=dtype,
                                workers=workers, progress=progress)
        except MtdtlError as e:
            if "every clip was skipped" in str(e):
                log.warning("target store %s: no file could be stored (%s)", folder, e)
                _remember_bad(folder, new)
                return None
            raise
        _remember_bad(folder, [(r["track_id"], _absolute(r["path"])) for r in store.report.get("skipped", [])])
        size = store_size_bytes(store)
        log.info("target store %s: %d clips, %.2f GB on disk (%s), %.1f s to build", folder, len(store), size / 1e9,
                 dtype, time.time() - t0)
        return store


def _known_bad(folder: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """Tracks the last build skipped (unreadable or silent), with their file's size and mtime then."""
    p = folder.with_name(folder.name + ".skipped.json")
    try:
        return {(t, q): (int(s), int(m)) for t, q, s, m in json.loads(p.read_text())}
    except (OSError, ValueError, TypeError):
        return {}


def _remember_bad(folder: Path, rows: Sequence[tuple[str, str]]) -> None:
    from mtdtl.io import atomic_write_text

    known = _known_bad(folder)
    known.update({(t, q): _stat(q) for t, q in rows})
    p = folder.with_name(folder.name + ".skipped.json")
    atomic_write_text(p, json.dumps([[t, q, *st] for (t, q), st in known.items()]))


def _fits(folder: Path, durations: Sequence[float], store: SpectrogramStore | None, fe: FrontEnd,
          dtype: str) -> bool:
    need = sum(clip_bytes(d, front_end=fe, dtype=dtype) for d in durations)
    if store is not None:  # extending rewrites the array beside the old one
        need += int(store.meta["total_frames"]) * fe.n_channels * fe.n_mels * np.dtype(dtype).itemsize
    try:
        free = shutil.disk_usage(folder.parent).free
    except OSError:
        return True
    if need * 1.05 + 100e6 > free:
        log.warning("target store %s needs about %.1f GB but only %.1f GB are free: spectrograms are computed "
                    "directly for every representation instead (free space, or pass another target store root)",
                    folder, need / 1e9, free / 1e9)
        return False
    return True


class StoredClip(NamedTuple):
    """A track whose dB mel lies in a target store (an item :class:`~mtdtl.features.ModelExtractor` reads)."""

    store: SpectrogramStore
    index: int
    path: str

    def raw_slices(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Non-overlapping 216-frame slices, raw dB: ``(n_slices, 2, 216, n_mels)``, contiguous.

        The same windows :func:`mtdtl.audio.slice_frames` cuts from the whole-track spectrogram
        (short clips were padded to one slice when stored). ``dtype``: torch.float32 converts
        while copying out of the memory map (one pass, in the calling thread); ``None`` keeps the
        store's dtype (half the bytes to move to a GPU).
        """
        s = self.store
        o = int(s._offsets[self.index])
        return slices_of_stored(s._array()[o:o + self.n_slices * CROP_FRAMES], dtype)  # copied out of the memory map

    @property
    def n_slices(self) -> int:
        """Slices :meth:`raw_slices` returns (at least one: short clips were padded when stored)."""
        return int(self.store._lengths[self.index]) // CROP_FRAMES

    def will_need(self) -> None:
        """Ask the kernel to read this clip's bytes ahead (``madvise(MADV_WILLNEED)``), so a later
        :meth:`raw_slices` finds them in the page cache; best effort, a no-op where unsupported."""
        import mmap

        s = self.store
        arr = s._array()
        mm = getattr(arr, "_mmap", None)
        advice = getattr(mmap, "MADV_WILLNEED", None)
        if mm is None or advice is None or not hasattr(mm, "madvise"):
            return
        row, page = arr.strides[0], mmap.ALLOCATIONGRANULARITY
        # numpy maps the file from the granule below the array's offset (the .npy header)
        start = int(getattr(arr, "offset", 0)) % page + int(s._offsets[self.index]) * row
        length = int(s._lengths[self.index]) * row
        aligned = start - start % page
        try:
            mm.madvise(advice, aligned, min(length + start - aligned, len(mm) - aligned))
        except (OSError, ValueError):
            pass

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


def stored_items(store: SpectrogramStore | None, track_ids: Sequence[str], paths: Sequence[str]) -> list:
    """Items for ``extract_many``: a :class:`StoredClip` where the store holds the track's
    current file, the path itself otherwise (long, unreadable or changed files)."""
    if store is None:
        return list(paths)
    m = store.manifest
    where = {(t, p): (i, int(s), int(mt)) for i, (t, p, s, mt) in enumerate(zip(
        m["track_id"].astype(str), m["path"].astype(str), m["source_size"], m["source_mtime_ns"]))}
    out = []
    for t, p in zip(track_ids, paths):
        ap = _absolute(str(p))
        hit = where.get((str(t), ap))
        out.append(StoredClip(store, hit[0], ap) if hit is not None and _stat(ap) == hit[1:] else p)
    return out


# ---------------------------------------------------------------------------------------
# Write-through: the first representation fills the store while it extracts
# ---------------------------------------------------------------------------------------


class _Writer:
    """Writes chunk files into ``<store>/_work/chunks`` (the builder's step 1) from the extractor.

    :meth:`put` returns the stored values at once and leaves the file to a writer thread, so
    the decode thread goes on with the next track (writing a chunk costs about as much as its
    mel on some file systems); at most :data:`MAX_PENDING_WRITES` chunks wait. :meth:`close`
    waits for them; the session's :meth:`TargetStoreSession.finish` calls it.
    """

    MAX_PENDING_WRITES = 16

    def __init__(self, folder: Path, front_end: FrontEnd, dtype: str) -> None:
        from mtdtl.io import atomic_write_text

        self.folder, self.front_end, self.dtype = folder, front_end, dtype
        self.chunks = folder / "_work" / "chunks"
        self.chunks.mkdir(parents=True, exist_ok=True)
        work_json = folder / "_work" / "work.json"
        if not work_json.is_file():
            atomic_write_text(work_json, json.dumps({"front_end": front_end.to_dict(), "dtype": dtype}, indent=1))
        self.written: list[tuple[str, str]] = []
        self.failed_writes = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque = deque()

    def put(self, track_id: str, path: str, S: np.ndarray, *, n_samples: int, source_stat: tuple[int, int]) -> np.ndarray:
        """Store one clip's raw dB ``(2, n_frames, n_mels)``; returns it as stored ``(n_frames', 2, n_mels)``."""
        T, s, ss = chunk_arrays(S, front_end=self.front_end, dtype=self.dtype)
        meta = chunk_meta(T, n_frames_audio=int(S.shape[1]), track_id=track_id, path=path, n_samples=n_samples,
                          front_end=self.front_end, source_stat=source_stat)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtdtl-store-write")
            while len(self._pending) >= self.MAX_PENDING_WRITES:
                self._pending.popleft().result()
            self._pending.append(self._pool.submit(self._save, track_id, path, T, s, ss, meta))
        return T

    def _save(self, track_id: str, path: str, T: np.ndarray, s: np.ndarray, ss: np.ndarray, meta: dict) -> None:
        try:
            save_chunk(self.chunks / f"{_key(track_id, path)}.npz", T, s, ss, meta)
        except (OSError, MtdtlError) as e:  # e.g. a concurrent build removed _work: the next build computes it
            with self._lock:
                self.failed_writes += 1
            log.debug("target store %s: chunk of %s not written (%s)", self.folder, track_id, e)
            return
        with self._lock:
            self.written.append((track_id, path))

    def close(self) -> None:
        """Wait until every chunk handed to :meth:`put` is written (or has failed)."""
        with self._lock:
            pool, self._pool = self._pool, None
            pending, self._pending = list(self._pending), deque()
        for f in pending:
            f.result()
        if pool is not None:
            pool.shutdown(wait=True)


class WriteThrough(NamedTuple):
    """A track missing from a target store: the extractor decodes it, computes its dB mel, writes
    it to the store's work folder and extracts from exactly the stored (float16) values."""

    path: str
    track_id: str
    writer: _Writer

    def source_stat(self) -> tuple[int, int]:
        return _stat(self.path)

    def put(self, S: np.ndarray, *, n_samples: int, source_stat: tuple[int, int]) -> np.ndarray:
        return self.writer.put(self.track_id, self.path, S, n_samples=n_samples, source_stat=source_stat)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


def slices_of_stored(T: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Non-overlapping 216-frame slices ``(n_slices, 2, 216, n_mels)`` of a time-major clip ``T``."""
    k = T.shape[0] // CROP_FRAMES
    c, m = T.shape[1], T.shape[2]
    np_dtype = T.dtype if dtype is None else torch.empty(0, dtype=dtype).numpy().dtype
    return torch.from_numpy(contiguous_as(T[:k * CROP_FRAMES].reshape(k, CROP_FRAMES, c, m).transpose(0, 2, 1, 3),
                                          np_dtype))


def _pending_chunks(folder: Path) -> list[tuple[str, str]]:
    """``(track_id, path)`` of the valid chunks left in ``<store>/_work`` (an extraction or a build
    that stopped before consolidating), including clips an interrupted consolidation moved."""
    work = folder / "_work"
    out: dict[tuple[str, str], None] = {}
    plan = work / "plan.json"
    if plan.is_file():
        try:
            for item in json.loads(plan.read_text(encoding="utf-8"))["items"]:
                m = item.get("meta")
                if item.get("kind") == "chunk" and m and _stat(m["path"]) == (m["source_size"], m["source_mtime_ns"]):
                    out[(m["track_id"], m["path"])] = None
        except (OSError, ValueError, KeyError, TypeError):
            pass
    chunks = work / "chunks"
    if chunks.is_dir():
        for c in chunks.glob("*.npz"):
            m = _read_chunk_meta(c)
            if m and c.stem == _key(m["track_id"], m["path"]) and \
                    _stat(m["path"]) == (m["source_size"], m["source_mtime_ns"]):
                out[(m["track_id"], m["path"])] = None
    return list(out)


class TargetStoreSession:
    """A target store opened for one extraction: :meth:`items` to extract from, :meth:`finish` after.

    Made by :func:`open_target_store`. Tracks in the store are read from it
    (:class:`StoredClip`); missing short tracks are computed once by the extractor, which writes
    them into the store's work folder as it goes (:class:`WriteThrough`: decode and mel overlap
    the network as without a store); :meth:`finish` consolidates them into the store
    (:func:`~mtdtl.store.build_store` finds every chunk and recomputes nothing). An interrupted
    extraction leaves whole chunks that the next session consolidates first.
    """

    def __init__(self, folder: Path, store: SpectrogramStore | None, front_end: FrontEnd, dtype: str,
                 writer: _Writer | None, items: list) -> None:
        self.folder, self.store, self.front_end, self.dtype = folder, store, front_end, dtype
        self._writer, self._items = writer, items

    def items(self) -> list:
        """One item per requested track, in order: StoredClip, WriteThrough or the path."""
        return list(self._items)

    @property
    def n_stored(self) -> int:
        return sum(isinstance(x, StoredClip) for x in self._items)

    @property
    def n_write_through(self) -> int:
        return sum(isinstance(x, WriteThrough) for x in self._items)

    def finish(self, *, workers: int | None = None, progress: bool = False) -> SpectrogramStore | None:
        """Consolidate what the extraction wrote; remember the tracks it could not read."""
        if self._writer is None:
            return self.store
        self._writer.close()
        done = set(self._writer.written)
        failed = [(x.track_id, x.path) for x in self._items if isinstance(x, WriteThrough)
                  and (x.track_id, x.path) not in done]
        if failed and not self._writer.failed_writes:
            _remember_bad(self.folder, failed)
        t0 = time.time()
        self.store = _consolidate_pending(self.folder, self.front_end, self.dtype, workers=workers, progress=progress)
        if self.store is not None and done:
            log.info("target store %s: %d clips added while extracting, %d clips, %.2f GB on disk (%s), "
                     "%.1f s to consolidate", self.folder, len(done), len(self.store),
                     store_size_bytes(self.store) / 1e9, self.dtype, time.time() - t0)
        return self.store


def _consolidate_pending(folder: Path, fe: FrontEnd, dtype: str, *, workers: int | None,
                         progress: bool) -> SpectrogramStore | None:
    """Build the store from what it holds and every valid pending chunk (nothing recomputed)."""
    with _build_lock(folder.with_name(folder.name + ".lock")):
        store = _open(folder)
        pending = _pending_chunks(folder)
        fresh = _fresh(store)
        new = [r for r in pending if r not in fresh]
        if not new:
            return store
        ids = {t for t, _ in new}
        rows = [r for r in fresh if r[0] not in ids] + new
        table = pd.DataFrame({"track_id": [t for t, _ in rows], "path": [p for _, p in rows], "split": TARGET_SPLIT})
        try:
            return build_store(table, folder, front_end=fe, train_split=TARGET_SPLIT, dtype=dtype, workers=workers,
                               progress=progress)
        except MtdtlError as e:
            log.warning("target store %s could not be consolidated (%s); spectrograms are computed directly", folder, e)
            return _open(folder)


def open_target_store(tracks: pd.DataFrame, *, dataset: str, front_end: Any, root: str | os.PathLike | None = None,
                      max_seconds_in_memory: float = 600.0, dtype: str = "float16", write_through: bool = True,
                      check_disk: bool = True, workers: int | None = None,
                      progress: bool = False) -> TargetStoreSession:
    """Open the target store of ``dataset`` for extracting ``tracks`` (see :class:`TargetStoreSession`).

    Parameters are those of :func:`ensure_target_store`; ``write_through=False`` builds the
    missing tracks first (:func:`ensure_target_store`, worker processes on every core) instead
    of letting the extractor write them as it goes.
    """
    fe = as_front_end(front_end)
    if not isinstance(tracks, pd.DataFrame) or not {"track_id", "path"} <= set(tracks.columns):
        raise MtdtlError("tracks must be a DataFrame with columns 'track_id' and 'path'")
    folder = target_store_path(dataset, fe, root=root, dtype=dtype)
    make_out_dir(folder.parent, what="target store folder")
    ids = tracks["track_id"].astype(str).tolist()
    paths = [_absolute(p) for p in tracks["path"].astype(str)]
    if not write_through or fe.resample_quality != "HQ":  # the extractor decodes at soxr HQ
        store = ensure_target_store(tracks, dataset=dataset, front_end=fe, root=root, dtype=dtype, workers=workers,
                                    max_seconds_in_memory=max_seconds_in_memory, check_disk=check_disk,
                                    progress=progress)
        return TargetStoreSession(folder, store, fe, dtype, None, stored_items(store, ids, paths))
    store = _open(folder)
    if _pending_chunks(folder):  # an earlier extraction or build stopped before consolidating
        store = _consolidate_pending(folder, fe, dtype, workers=workers, progress=progress)
    present = stored_items(store, ids, paths)
    missing = [j for j, x in enumerate(present) if not isinstance(x, StoredClip)]
    bad = _known_bad(folder)
    todo, durations = [], []
    for j in missing:
        t, p = ids[j], paths[j]
        if bad.get((t, p)) == _stat(p):
            continue
        d = _duration(p)
        if d is not None and d > max_seconds_in_memory:
            continue
        todo.append(j)
        durations.append(30.0 if d is None else d)
    writer = None
    if todo and (not check_disk or _fits(folder, durations, store, fe, dtype)):
        writer = _Writer(folder, fe, dtype)
        for j in todo:
            present[j] = WriteThrough(paths[j], ids[j], writer)
    return TargetStoreSession(folder, store, fe, dtype, writer, present)
