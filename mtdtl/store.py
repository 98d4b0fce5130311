"""Spectrogram store: every clip's dB mel spectrogram in one memory-mapped array, plus a scaler.

Training reads random 2.5 s crops (216 frames) of 30 s clips hundreds of times a second
(Section 3.1.2); decoding and transforming audio on the fly costs about as much as training
consumes, so the spectrograms are computed once and stored.

Layout of a store folder
------------------------
::

    <store>/
      store.json         format version, FrontEnd, dtype, shape, counts, scaler split, versions;
                         written last: its presence marks a complete store
      spectrograms.npy   (total_frames, 2, n_mels) float16 (or float32), all clips concatenated
                         along time in manifest order; opened with mmap_mode="r", so a crop
                         reads only its own 216 x 2 x 128 values (110 kB in float16)
      manifest.csv       track_id, split, path, offset, n_frames, n_frames_audio, duration_s,
                         source_size, source_mtime_ns  (one row per stored clip)
      clip_stats.npz     per-clip sum and sum of squares per mel band (float64) over the
                         clip's real frames and both channels: refitting the scaler on any split
                         is instant and never rereads the spectrograms
      scaler.npz         per-mel-band mean and std (float32) fit on the train split only
      build_report.json  requested / stored / skipped clips, and why each skip happened

Clips shorter than one crop are padded to 216 frames with the clip's own dB silence value
(:func:`mtdtl.audio.pad_to_min_frames`); ``n_frames_audio`` keeps the unpadded length and
the scaler only sees real frames. Unreadable, empty and silent clips are skipped, logged and
listed in ``build_report.json`` (and retried on the next build, in case the file was fixed).

Atomic, resumable builds
------------------------
A build works in ``<store>/_work/``:

1. **Compute.** Each clip's spectrogram goes to its own chunk file
   ``_work/chunks/<key>.npz`` (written to a temporary name, then ``os.replace``); the key
   hashes the track id and path, and the chunk records the source file's size and mtime.
   Clips with a valid chunk, or already present in a complete store at ``<store>`` with the
   same front end, path, size and mtime, are **not recomputed**. An interrupted build (crash,
   Ctrl-C, an exception in ``on_clip``) leaves only whole chunks behind.
2. **Consolidate.** The chunks are copied, in manifest order, into
   ``_work/spectrograms.npy``; each chunk is deleted as soon as its copy is flushed and
   marked in ``_work/consolidated.npy`` (a done-mask), so the disk peak stays near one
   store's size; after an interrupted consolidation, the next build puts the clips already
   moved back into chunk files (nothing is recomputed) and consolidates again.
3. **Publish.** ``store.json`` is removed, the new array, manifest, clip statistics, scaler
   and report replace the old ones (``os.replace``), ``store.json`` is written last, and
   ``_work/`` is deleted. A reader either sees the old complete store, the new complete
   store, or no ``store.json`` (and gets an error telling it to rerun the build).

float16
-------
dB values lie in about [-100, +40]. float16 keeps 11 significant bits, so storing rounds a
value x by at most ``|x| * 2**-11``: at most 0.031 dB for |x| < 64 dB and 0.0625 dB for
64 <= |x| < 128 (tested), i.e. about 0.002-0.005 units after standardisation (per-band std is
typically 10-20 dB); far below anything the network can resolve and below the mel front end's
own sensitivity to resampler and decoder versions. Pass ``dtype="float32"`` to avoid it at
twice the size.

Size at the paper's scale
-------------------------
A 30 s clip at 22,050 Hz has ``1 + 661,500 // 256 = 2,584`` frames; one frame is
``2 x 128`` values, so a clip takes 2,584 x 256 x 2 bytes = 1,323,008 bytes (1.32 MB) in
float16. The paper's 46,490 clips take 46,490 x 1,323,008 = 61.5 GB (57.3 GiB) in float16,
123 GB in float32, plus a negligible manifest (~5 MB) and clip statistics (95 MB).
``benchmarks/bench_store.py`` checks the bytes per clip on a scaled-down synthetic store and
measures the random-crop read rate. A build needs the final size plus about one chunk per
worker of extra disk.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from mtdtl.audio import FrontEnd, is_silent, load_audio, mel_db, pad_to_min_frames
from mtdtl.constants import CROP_FRAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["BandScaler", "SpectrogramStore", "build_store", "write_store", "STORE_FORMAT", "clip_bytes", "store_bytes"]

log = get_logger(__name__)

#: Format tag and version written to ``store.json``.
STORE_FORMAT = "mtdtl-spectrogram-store"
STORE_VERSION = 1

_MANIFEST_COLUMNS = [
    "track_id", "split", "path", "offset", "n_frames", "n_frames_audio", "duration_s",
    "source_size", "source_mtime_ns",
]


def clip_bytes(duration_s: float = 30.0, *, front_end: FrontEnd = FrontEnd(), dtype: str = "float16") -> int:
    """Bytes one clip of ``duration_s`` seconds takes in a store."""
    n = front_end.n_frames(int(round(duration_s * front_end.sr)))
    n = max(n, CROP_FRAMES)
    return n * front_end.n_channels * front_end.n_mels * np.dtype(dtype).itemsize


def store_bytes(n_clips: int = 46_490, duration_s: float = 30.0, *, front_end: FrontEnd = FrontEnd(),
                dtype: str = "float16") -> int:
    """Bytes of the spectrogram array for ``n_clips`` clips (default: the paper's 46,490 x 30 s)."""
    return int(n_clips) * clip_bytes(duration_s, front_end=front_end, dtype=dtype)


# ---------------------------------------------------------------------------------------
# Scaler
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandScaler:
    """Per-mel-band standardisation (Section 3.1.1), fit on the training split only.

    Attributes
    ----------
    mean, std : np.ndarray [shape=(n_mels,)] float32
        Over all frames and both channels of the fitting clips; ``std`` is at least 1e-6.
    n_frames : int
        Frames (per channel) the statistics were computed from.
    n_clips : int
    split : str
        Split the scaler was fit on.
    """

    mean: np.ndarray
    std: np.ndarray
    n_frames: int
    n_clips: int
    split: str = "train"

    def transform(self, S: np.ndarray) -> np.ndarray:
        """``(S - mean) / std`` on the last (mel) axis; returns float32."""
        return ((np.asarray(S, dtype=np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return (np.asarray(Z, dtype=np.float32) * self.std + self.mean).astype(np.float32, copy=False)

    @classmethod
    def from_sums(cls, s: np.ndarray, ss: np.ndarray, n: int, n_clips: int, split: str) -> "BandScaler":
        if n <= 0:
            raise MtdtlError(f"cannot fit the scaler: split {split!r} has no frames")
        mean = s / n
        var = np.maximum(ss / n - mean * mean, 0.0)
        std = np.maximum(np.sqrt(var), 1e-6)
        return cls(mean.astype(np.float32), std.astype(np.float32), int(n), int(n_clips), split)

    def save(self, path: Path) -> None:
        _atomic_savez(path, mean=self.mean, std=self.std, n_frames=np.int64(self.n_frames),
                      n_clips=np.int64(self.n_clips), split=np.str_(self.split))

    @classmethod
    def load(cls, path: Path) -> "BandScaler":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"].astype(np.float32), z["std"].astype(np.float32), int(z["n_frames"]),
                       int(z["n_clips"]), str(z["split"]))


# ---------------------------------------------------------------------------------------
# Small file helpers
# ---------------------------------------------------------------------------------------


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_savez(path: Path, **arrays: Any) -> None:
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def _key(track_id: str, path: str) -> str:
    return hashlib.sha1(f"{track_id}\0{path}".encode()).hexdigest()[:24]


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def _versions() -> dict[str, str]:
    import librosa
    import soundfile
    import soxr
    import torch

    import mtdtl

    return {"mtdtl": mtdtl.__version__, "numpy": np.__version__, "torch": torch.__version__,
            "librosa": librosa.__version__, "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__, "soxr": soxr.__version__}


# ---------------------------------------------------------------------------------------
# One clip (runs in worker processes)
# ---------------------------------------------------------------------------------------


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _compute_clip(track_id: str, path: str, abspath: str, chunk: str, fe_dict: dict, dtype: str) -> dict:
    """Decode and transform one clip into its chunk file; never raises for bad audio."""
    fe = FrontEnd.from_dict(fe_dict)
    p = Path(abspath)
    size, mtime = _stat(p)
    try:
        y = load_audio(p, sr=fe.sr, quality=fe.resample_quality)
        if is_silent(y):
            raise MtdtlError(f"audio is silent (peak below -80 dBFS): {p}")
        S = mel_db(y, front_end=fe)  # (2, T, n_mels)
        n_audio = S.shape[1]
        S = pad_to_min_frames(S, front_end=fe)
        S = np.ascontiguousarray(S.transpose(1, 0, 2)).astype(dtype)  # (T, 2, n_mels)
        real = S[:n_audio].astype(np.float64)
        s = real.sum(axis=(0, 1))
        ss = np.square(real).sum(axis=(0, 1))
    except MtdtlError as e:
        return {"track_id": track_id, "status": "skipped", "reason": str(e)}
    except Exception as e:  # anything a decoder throws that load_audio did not wrap
        return {"track_id": track_id, "status": "skipped", "reason": f"{type(e).__name__}: {e} ({p})"}
    meta = {"track_id": track_id, "path": path, "n_frames": int(S.shape[0]), "n_frames_audio": int(n_audio),
            "duration_s": float(y.shape[1]) / fe.sr, "source_size": size, "source_mtime_ns": mtime}
    c = Path(chunk)
    tmp = _tmp_name(c)
    with open(tmp, "wb") as f:
        np.savez(f, S=S, s=s, ss=ss, meta=np.str_(json.dumps(meta)))
    os.replace(tmp, c)
    return {"track_id": track_id, "status": "computed", **meta}


def _read_chunk_meta(chunk: Path) -> dict | None:
    try:
        with np.load(chunk, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except Exception:
        return None


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class SpectrogramStore:
    """A built spectrogram store (read-only). Open with :meth:`open`.

    Clips are addressed by position ``i`` in the manifest (``0 <= i < len(store)``);
    :meth:`index_of` maps a track id to its position.
    """

    def __init__(self, root: Path, meta: dict, manifest: pd.DataFrame, scaler: BandScaler) -> None:
        self.root = Path(root)
        self.meta = meta
        self._manifest = manifest
        self.front_end = FrontEnd.from_dict(meta["front_end"])
        self.scaler = scaler
        self._offsets = manifest["offset"].to_numpy(np.int64)
        self._lengths = manifest["n_frames"].to_numpy(np.int64)
        self._ids = manifest["track_id"].astype(str).tolist()
        self._pos = {t: i for i, t in enumerate(self._ids)}
        self._splits = manifest["split"].astype(str).to_numpy()
        self._mean = scaler.mean.astype(np.float32)
        self._inv_std = (1.0 / scaler.std).astype(np.float32)
        self._arr: np.ndarray | None = None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike) -> "SpectrogramStore":
        """Open a complete store folder.

        Raises
        ------
        MtdtlError
            The folder, ``store.json`` or another file is missing, or the files disagree.
        """
        root = Path(path)
        meta_path = root / "store.json"
        if not root.is_dir():
            raise MtdtlError(f"spectrogram store not found: {root}; build it with mtdtl.store.build_store")
        if not meta_path.is_file():
            hint = " (an unfinished build is in _work/: rerun build_store to finish it)" if (root / "_work").exists() else ""
            raise MtdtlError(f"{root} is not a complete spectrogram store: {meta_path.name} is missing{hint}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MtdtlError(f"cannot read {meta_path}: {e}") from e
        if meta.get("format") != STORE_FORMAT or int(meta.get("version", -1)) > STORE_VERSION:
            raise MtdtlError(f"{meta_path}: not a {STORE_FORMAT} version <= {STORE_VERSION} (found {meta.get('format')!r} "
                             f"version {meta.get('version')!r})")
        for name in ("manifest.csv", "spectrograms.npy", "scaler.npz"):
            if not (root / name).is_file():
                raise MtdtlError(f"spectrogram store {root} is missing {name}; rebuild it with build_store")
        manifest = pd.read_csv(root / "manifest.csv", dtype={"track_id": str, "split": str, "path": str},
                               keep_default_na=False)
        if len(manifest) == 0 or int(meta.get("n_clips", 0)) == 0:
            raise MtdtlError(f"spectrogram store {root} is empty (no clips); check build_report.json")
        if len(manifest) != int(meta["n_clips"]):
            raise MtdtlError(f"{root}: manifest.csv has {len(manifest)} rows but store.json says {meta['n_clips']}")
        scaler = BandScaler.load(root / "scaler.npz")
        store = cls(root, meta, manifest, scaler)
        arr = store._array()
        want = (int(meta["total_frames"]), store.front_end.n_channels, store.front_end.n_mels)
        if tuple(arr.shape) != want:
            raise MtdtlError(f"{root / 'spectrograms.npy'} has shape {arr.shape}, store.json says {want}; rebuild the store")
        return store

    def _array(self) -> np.ndarray:
        if self._arr is None:
            self._arr = np.load(self.root / "spectrograms.npy", mmap_mode="r", allow_pickle=False)
        return self._arr

    def __getstate__(self) -> dict:  # pickles without the memory map (DataLoader workers reopen it)
        d = self.__dict__.copy()
        d["_arr"] = None
        return d

    # -- description ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"SpectrogramStore({str(self.root)!r}, n_clips={len(self)}, total_frames={self.meta['total_frames']})"

    @property
    def track_ids(self) -> list[str]:
        """Track ids in manifest order."""
        return list(self._ids)

    @property
    def manifest(self) -> pd.DataFrame:
        """One row per clip (a copy): track_id, split, path, offset, n_frames, n_frames_audio, ..."""
        return self._manifest.copy()

    @property
    def dtype(self) -> np.dtype:
        return self._array().dtype

    @property
    def report(self) -> dict:
        """Contents of ``build_report.json`` (requested, stored, skipped with reasons)."""
        p = self.root / "build_report.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def n_frames(self, i: int) -> int:
        """Frames of clip ``i`` (including short-clip padding)."""
        return int(self._lengths[self._check(i)])

    def indices(self, split: str | Sequence[str] | None = None) -> np.ndarray:
        """Positions of the clips in ``split`` (one name or several; ``None``: all)."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        names = [split] if isinstance(split, str) else list(split)
        return np.flatnonzero(np.isin(self._splits, names)).astype(np.int64)

    def index_of(self, track_id: str) -> int:
        """Position of ``track_id``; :class:`MtdtlError` when it is not stored."""
        try:
            return self._pos[str(track_id)]
        except KeyError:
            raise MtdtlError(f"track {track_id!r} is not in the store {self.root} (skipped or never listed; "
                             "see build_report.json)") from None

    def _check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise MtdtlError(f"clip index {i} out of range for a store of {len(self)} clips")
        return i

    # -- reading ----------------------------------------------------------------------

    def frames(self, i: int, *, scaled: bool = False) -> np.ndarray:
        """All frames of clip ``i``: ``(n_frames, 2, n_mels)`` float32, raw dB unless ``scaled``."""
        i = self._check(i)
        o, n = self._offsets[i], self._lengths[i]
        x = np.array(self._array()[o:o + n], dtype=np.float32)
        if scaled:
            x -= self._mean
            x *= self._inv_std
        return x

    def crop(self, i: int, start: int, *, n_frames: int = CROP_FRAMES, scaled: bool = True) -> np.ndarray:
        """One crop, channel-first: ``(2, n_frames, n_mels)`` float32 (standardised unless ``scaled=False``)."""
        return self.crops([i], [start], n_frames=n_frames, scaled=scaled)[0]

    def crops(self, indices: Sequence[int] | np.ndarray, starts: Sequence[int] | np.ndarray, *,
              n_frames: int = CROP_FRAMES, scaled: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """A batch of crops: ``(B, 2, n_frames, n_mels)`` float32, the network's input layout.

        Parameters
        ----------
        indices : array of int [shape=(B,)]
            Clip positions.
        starts : array of int [shape=(B,)]
            First frame of each crop; ``0 <= start <= n_frames(i) - n_frames``.
        n_frames : int
            Crop length (216 = 2.5 s).
        scaled : bool
            Apply the train-split scaler.
        out : np.ndarray [shape=(B, 2, n_frames, n_mels)] float32, optional
            Preallocated output (e.g. pinned memory).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        st = np.asarray(starts, dtype=np.int64).reshape(-1)
        if idx.shape != st.shape:
            raise MtdtlError(f"crops: {idx.size} indices but {st.size} starts")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise MtdtlError(f"crops: clip index out of range for a store of {len(self)} clips")
        lengths = self._lengths[idx]
        bad = (st < 0) | (st + n_frames > lengths)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise MtdtlError(f"crops: start {st[j]} + {n_frames} frames is outside clip {idx[j]} "
                             f"({self._ids[idx[j]]!r}, {lengths[j]} frames)")
        fe = self.front_end
        shape = (idx.size, fe.n_channels, n_frames, fe.n_mels)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise MtdtlError(f"crops: out must be float32 of shape {shape}, got {out.dtype} {out.shape}")
        arr = self._array()
        rows = self._offsets[idx] + st
        for b, r in enumerate(rows):
            out[b] = arr[r:r + n_frames].transpose(1, 0, 2)
        if scaled:
            out -= self._mean
            out *= self._inv_std
        return out

    def random_starts(self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator, *,
                      n_frames: int = CROP_FRAMES) -> np.ndarray:
        """Uniform random valid crop starts for ``indices`` (Section 3.1.2's random 2.5 s crops)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        hi = self._lengths[idx] - n_frames + 1
        if (hi < 1).any():
            raise MtdtlError(f"random_starts: some clips have fewer than {n_frames} frames")
        return (rng.random(idx.size) * hi).astype(np.int64)

    def fit_scaler(self, split: str | Sequence[str] = "train") -> BandScaler:
        """Refit the scaler on another split from the stored per-clip sums (does not save it)."""
        idx = self.indices(split)
        with np.load(self.root / "clip_stats.npz", allow_pickle=False) as z:
            s, ss, n = z["sum"][idx].sum(0), z["sumsq"][idx].sum(0), int(z["n"][idx].sum())
        return BandScaler.from_sums(s, ss, n, len(idx), split if isinstance(split, str) else "+".join(split))


# ---------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------


def _validate_tracks(tracks: pd.DataFrame, base_dir: Path | None) -> pd.DataFrame:
    if not isinstance(tracks, pd.DataFrame):
        raise MtdtlError(f"build_store: tracks must be a DataFrame with columns track_id, path, split; got {type(tracks).__name__}")
    missing = [c for c in ("track_id", "path", "split") if c not in tracks.columns]
    if missing:
        raise MtdtlError(f"build_store: tracks lacks column(s) {missing} (needs track_id, path, split)")
    t = tracks[["track_id", "path", "split"]].copy()
    if t.isna().any().any():
        bad = t[t.isna().any(axis=1)].index[0]
        raise MtdtlError(f"build_store: tracks row {bad} has a missing track_id, path or split")
    t["track_id"] = t["track_id"].astype(str)
    t["path"] = t["path"].astype(str)
    t["split"] = t["split"].astype(str)
    dup = t["track_id"][t["track_id"].duplicated()]
    if len(dup):
        raise MtdtlError(f"build_store: duplicated track ids, e.g. {dup.iloc[:5].tolist()}; each clip needs a unique id")
    if len(t) == 0:
        raise MtdtlError("build_store: tracks is empty; nothing to build")

    def absolute(p: str) -> str:
        q = Path(p).expanduser()
        if not q.is_absolute():
            if base_dir is None:
                raise MtdtlError(f"build_store: path {p!r} is relative; pass base_dir= (paths must not depend on the working directory)")
            q = base_dir / q
        return str(q)

    t["abspath"] = [absolute(p) for p in t["path"]]
    return t.reset_index(drop=True)


def build_store(
    tracks: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    front_end: FrontEnd = FrontEnd(),
    base_dir: str | os.PathLike | None = None,
    train_split: str = "train",
    dtype: str = "float16",
    workers: int | None = None,
    progress: bool = True,
    on_clip: Callable[[str, str], None] | None = None,
) -> SpectrogramStore:
    """Compute (or finish, or extend) the spectrogram store of ``tracks`` in ``out_dir``.

    Parameters
    ----------
    tracks : pd.DataFrame
        Columns ``track_id`` (unique), ``path`` (absolute, or relative to ``base_dir``) and
        ``split`` (e.g. train / valid / test). Row order becomes manifest order.
    out_dir : path
        Store folder (created). If it holds a complete store with the same front end, clips
        already in it are reused; if it holds an unfinished build, that build is resumed.
    front_end : FrontEnd
    base_dir : path, optional
        Folder that relative paths in ``tracks`` are relative to.
    train_split : str
        Split the scaler is fit on (only that split's clips contribute).
    dtype : {"float16", "float32"}
        Storage type (see the module docstring for float16's error).
    workers : int, optional
        Worker processes for decoding + mel (one torch thread each). ``None``: all CPU cores,
        or in-process when fewer than 8 clips need computing; ``0`` or ``1``: in-process.
    progress : bool
        Show a tqdm bar.
    on_clip : callable(track_id, status), optional
        Called in this process after each clip is computed or skipped (``status`` is
        ``"computed"`` or ``"skipped"``); an exception it raises aborts the build, leaving
        every finished clip on disk for the next call.

    Returns
    -------
    SpectrogramStore

    Raises
    ------
    MtdtlError
        Malformed ``tracks``; every clip skipped; no clip in ``train_split``; ``out_dir``
        holds a store or unfinished build made with a different front end or dtype.
    """
    out = Path(out_dir).expanduser()
    base = Path(base_dir).expanduser() if base_dir is not None else None
    if dtype not in ("float16", "float32"):
        raise MtdtlError(f"build_store: dtype must be 'float16' or 'float32', got {dtype!r}")
    t = _validate_tracks(tracks, base)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "_work"
    chunks = work / "chunks"
    fe_dict = front_end.to_dict()

    # An existing complete store: reuse its clips (same front end and dtype only).
    old: SpectrogramStore | None = None
    if (out / "store.json").is_file():
        try:
            old = SpectrogramStore.open(out)
        except MtdtlError as e:  # a damaged store is rebuilt from scratch, not reused
            log.warning("existing store in %s cannot be opened (%s); rebuilding it", out, e)
            (out / "store.json").unlink(missing_ok=True)
    if old is not None:
        old.front_end.check_compatible(front_end, what=f"existing store {out}")
        if str(old.dtype) != dtype:
            raise MtdtlError(f"existing store {out} is {old.dtype}, requested {dtype}; use another out_dir or delete it")

    # An unfinished build: same front end and dtype, else refuse (never mix).
    work_meta_path = work / "work.json"
    if work_meta_path.is_file():
        wm = json.loads(work_meta_path.read_text(encoding="utf-8"))
        FrontEnd.from_dict(wm["front_end"]).check_compatible(front_end, what=f"unfinished build in {work}")
        if wm.get("dtype") != dtype:
            raise MtdtlError(f"unfinished build in {work} is {wm.get('dtype')}, requested {dtype}; delete {work} to start over")
        log.info("resuming the unfinished build in %s", work)
    chunks.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(work_meta_path, json.dumps({"front_end": fe_dict, "dtype": dtype}, indent=1))
    _unwind_partial_consolidation(work)

    # Decide, clip by clip, where its spectrogram comes from.
    keys = [_key(a, b) for a, b in zip(t["track_id"], t["path"])]
    stats = [_stat(Path(p)) for p in t["abspath"]]
    source: list[tuple[str, Any]] = []  # ("old", i) | ("chunk", meta) | ("todo", None)
    old_rows = {}
    if old is not None:
        m = old.manifest
        old_rows = {(r.track_id, r.path): (i, int(r.source_size), int(r.source_mtime_ns)) for i, r in enumerate(m.itertuples())}
    for k, tid, path, st in zip(keys, t["track_id"], t["path"], stats):
        hit = old_rows.get((tid, path))
        if hit is not None and (hit[1], hit[2]) == st:
            source.append(("old", hit[0]))
            continue
        meta = _read_chunk_meta(chunks / f"{k}.npz")
        if meta is not None and (meta["source_size"], meta["source_mtime_ns"]) == st and meta["track_id"] == tid:
            source.append(("chunk", meta))
            continue
        source.append(("todo", None))
    todo = [j for j, s in enumerate(source) if s[0] == "todo"]
    n_reused = len(t) - len(todo)
    log.info("store %s: %d clips requested, %d already done, %d to compute", out, len(t), n_reused, len(todo))

    skipped: dict[int, str] = {}
    if todo:
        results = _run_todo(t, keys, todo, chunks, fe_dict, dtype, workers=workers, progress=progress, on_clip=on_clip)
        for j, res in results.items():
            if res["status"] == "computed":
                source[j] = ("chunk", res)
            else:
                skipped[j] = res["reason"]
                log.warning("skipped %s: %s", t.at[j, "track_id"], res["reason"])

    keep = [j for j in range(len(t)) if j not in skipped]
    if not keep:
        raise MtdtlError(f"build_store: every clip was skipped ({len(skipped)}), nothing to store in {out}; first reason: "
                         f"{next(iter(skipped.values()))}")
    return _consolidate(out, t, keys, source, keep, skipped, old, front_end, dtype, train_split, progress)


def write_store(
    items: Iterable[tuple[str, str, np.ndarray]],
    out_dir: str | os.PathLike,
    *,
    front_end: FrontEnd = FrontEnd(),
    train_split: str = "train",
    dtype: str = "float16",
    progress: bool = False,
) -> SpectrogramStore:
    """Write a store from spectrograms already in memory (synthetic data, tests, benchmarks).

    Parameters
    ----------
    items : iterable of (track_id, split, S)
        ``S : np.ndarray [shape=(2, n_frames, n_mels)]`` raw dB, as :func:`mtdtl.audio.mel_db`
        returns; clips shorter than one crop are padded like :func:`build_store` does.
    out_dir : path
        New store folder (must not hold a store already).

    Returns
    -------
    SpectrogramStore
    """
    out = Path(out_dir).expanduser()
    if (out / "store.json").exists():
        raise MtdtlError(f"write_store: {out} already holds a store; choose another folder")
    if dtype not in ("float16", "float32"):
        raise MtdtlError(f"write_store: dtype must be 'float16' or 'float32', got {dtype!r}")
    work = out / "_work"
    chunks = work / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(work / "work.json", json.dumps({"front_end": front_end.to_dict(), "dtype": dtype}, indent=1))
    rows, keys, source = [], [], []
    for tid, split, S in items:
        tid = str(tid)
        S = np.asarray(S, dtype=np.float32)
        if S.ndim != 3 or S.shape[0] != front_end.n_channels or S.shape[2] != front_end.n_mels:
            raise MtdtlError(f"write_store: spectrogram of {tid!r} has shape {S.shape}, expected "
                             f"({front_end.n_channels}, n_frames, {front_end.n_mels})")
        n_audio = S.shape[1]
        T = np.ascontiguousarray(pad_to_min_frames(S, front_end=front_end).transpose(1, 0, 2)).astype(dtype)
        real = T[:n_audio].astype(np.float64)
        k = _key(tid, "")
        meta = {"track_id": tid, "path": "", "n_frames": int(T.shape[0]), "n_frames_audio": int(n_audio),
                "duration_s": (n_audio - 1) * front_end.hop / front_end.sr, "source_size": -1, "source_mtime_ns": -1}
        c = chunks / f"{k}.npz"
        tmp = _tmp_name(c)
        with open(tmp, "wb") as f:
            np.savez(f, S=T, s=real.sum(axis=(0, 1)), ss=np.square(real).sum(axis=(0, 1)), meta=np.str_(json.dumps(meta)))
        os.replace(tmp, c)
        rows.append((tid, "", str(split)))
        keys.append(k)
        source.append(("chunk", meta))
    t = pd.DataFrame(rows, columns=["track_id", "path", "split"])
    if len(t) == 0:
        raise MtdtlError("write_store: no spectrograms given")
    if t["track_id"].duplicated().any():
        raise MtdtlError(f"write_store: duplicated track ids, e.g. {t['track_id'][t['track_id'].duplicated()].iloc[:5].tolist()}")
    return _consolidate(out, t, keys, source, list(range(len(t))), {}, None, front_end, dtype, train_split, progress)


def _run_todo(t, keys, todo, chunks, fe_dict, dtype, *, workers, progress, on_clip) -> dict[int, dict]:
    from tqdm.auto import tqdm

    if workers is None:
        workers = 1 if len(todo) < 8 else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(todo)))
    args = {j: (t.at[j, "track_id"], t.at[j, "path"], t.at[j, "abspath"], str(chunks / f"{keys[j]}.npz"), fe_dict, dtype)
            for j in todo}
    results: dict[int, dict] = {}
    bar = tqdm(total=len(todo), desc="spectrograms", unit="clip", disable=not progress)
    try:
        if workers == 1:
            for j in todo:
                results[j] = res = _compute_clip(*args[j])
                bar.update()
                if on_clip is not None:
                    on_clip(res["track_id"], res["status"])
        else:
            # fork (as torch's DataLoader does on Linux): works from scripts without a
            # ``__main__`` guard and from notebooks; spawn elsewhere.
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as ex:
                futs = {ex.submit(_compute_clip, *args[j]): j for j in todo}
                try:
                    for f in cf.as_completed(futs):
                        results[futs[f]] = res = f.result()
                        bar.update()
                        if on_clip is not None:
                            on_clip(res["track_id"], res["status"])
                except BaseException:
                    ex.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return results


def _unwind_partial_consolidation(work: Path) -> None:
    """An interrupted consolidation: put the clips it already moved back into chunk files."""
    plan_path, arr_path, done_path = work / "plan.json", work / "spectrograms.npy", work / "consolidated.npy"
    if not plan_path.is_file():
        for p in (arr_path, done_path):
            p.unlink(missing_ok=True)
        return
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    sums_path = work / "plan_sums.npz"
    if arr_path.is_file() and done_path.is_file() and sums_path.is_file():
        done = np.load(done_path)
        arr = np.load(arr_path, mmap_mode="r")
        with np.load(sums_path, allow_pickle=False) as z:
            psum, psumsq = z["sum"], z["sumsq"]
        for r, (item, d) in enumerate(zip(plan["items"], done)):
            if not d or item["kind"] != "chunk":
                continue
            c = work / "chunks" / f"{item['key']}.npz"
            if c.is_file():
                continue
            S = np.array(arr[item["offset"]:item["offset"] + item["n_frames"]])
            tmp = _tmp_name(c)
            with open(tmp, "wb") as f:
                np.savez(f, S=S, s=psum[r], ss=psumsq[r], meta=np.str_(json.dumps(item["meta"])))
            os.replace(tmp, c)
        del arr
    for p in (arr_path, done_path, sums_path, plan_path):
        p.unlink(missing_ok=True)


def _consolidate(out, t, keys, source, keep, skipped, old, fe, dtype, train_split, progress) -> SpectrogramStore:
    from tqdm.auto import tqdm

    work = out / "_work"
    rows, items = [], []
    sums = np.zeros((len(keep), fe.n_mels)), np.zeros((len(keep), fe.n_mels))
    nfa = np.zeros(len(keep), dtype=np.int64)
    offset = 0
    old_m = old.manifest if old is not None else None
    old_stats = np.load(old.root / "clip_stats.npz", allow_pickle=False) if old is not None else None
    for r, j in enumerate(keep):
        kind, ref = source[j]
        if kind == "old":
            orow = old_m.iloc[ref]
            meta = {k: orow[k] for k in ("n_frames", "n_frames_audio", "duration_s", "source_size", "source_mtime_ns")}
            sums[0][r], sums[1][r] = old_stats["sum"][ref], old_stats["sumsq"][ref]
        else:
            meta = ref
            with np.load(work / "chunks" / f"{keys[j]}.npz", allow_pickle=False) as z:
                sums[0][r], sums[1][r] = z["s"], z["ss"]
        n = int(meta["n_frames"])
        nfa[r] = int(meta["n_frames_audio"])
        rows.append({"track_id": t.at[j, "track_id"], "split": t.at[j, "split"], "path": t.at[j, "path"], "offset": offset,
                     "n_frames": n, "n_frames_audio": int(meta["n_frames_audio"]), "duration_s": float(meta["duration_s"]),
                     "source_size": int(meta["source_size"]), "source_mtime_ns": int(meta["source_mtime_ns"])})
        items.append({"kind": kind, "key": keys[j], "old": int(ref) if kind == "old" else None, "offset": offset,
                      "n_frames": n, "meta": None if kind == "old" else {k: v for k, v in meta.items() if k != "status"}})
        offset += n
    manifest = pd.DataFrame(rows, columns=_MANIFEST_COLUMNS)
    total = offset
    n_ch = fe.n_channels

    # Reuse the old array untouched when the clip list is the same.
    same_array = (
        old is not None and all(source[j][0] == "old" for j in keep)
        and [source[j][1] for j in keep] == list(range(len(old)))
    )
    arr_path = work / "spectrograms.npy"
    if not same_array:
        _atomic_savez(work / "plan_sums.npz", sum=sums[0], sumsq=sums[1])
        _atomic_write_text(work / "plan.json", json.dumps({"items": items, "total": total}))
        arr = np.lib.format.open_memmap(arr_path, mode="w+", dtype=dtype, shape=(total, n_ch, fe.n_mels))
        done = np.zeros(len(items), dtype=bool)
        old_arr = old._array() if old is not None else None
        copied: list[Path] = []
        for r, item in enumerate(tqdm(items, desc="consolidate", unit="clip", disable=not progress)):
            o, n = item["offset"], item["n_frames"]
            if item["kind"] == "old":
                oo = int(old._offsets[item["old"]])
                arr[o:o + n] = old_arr[oo:oo + n]
            else:
                c = work / "chunks" / f"{item['key']}.npz"
                with np.load(c, allow_pickle=False) as z:
                    arr[o:o + n] = z["S"]
                copied.append(c)
            if r % 256 == 255 or r == len(items) - 1:
                # Flush, record progress, then free the chunks' disk space: a crash after this
                # point loses nothing (the next build restores those chunks from the array).
                arr.flush()
                done[: r + 1] = True
                _atomic_save_npy(work / "consolidated.npy", done)
                for c in copied:
                    c.unlink(missing_ok=True)
                copied.clear()
        arr.flush()
        del arr, old_arr

    # Scaler: train split, real frames, both channels.
    train = manifest["split"].to_numpy() == train_split
    if not train.any():
        raise MtdtlError(f"build_store: no stored clip is in split {train_split!r} (splits: "
                         f"{sorted(manifest['split'].unique())}); the scaler is fit on the training split only: "
                         "pass train_split=")
    n_per_clip = nfa * n_ch
    scaler = BandScaler.from_sums(sums[0][train].sum(0), sums[1][train].sum(0), int(n_per_clip[train].sum()),
                                  int(train.sum()), train_split)

    report = {
        "requested": int(len(t)), "stored": int(len(keep)), "skipped": [
            {"track_id": t.at[j, "track_id"], "path": t.at[j, "path"], "reason": reason} for j, reason in sorted(skipped.items())
        ],
        "padded_short_clips": int((manifest["n_frames_audio"] < manifest["n_frames"]).sum()),
    }
    meta = {
        "format": STORE_FORMAT, "version": STORE_VERSION, "front_end": fe.to_dict(), "dtype": dtype,
        "n_clips": int(len(keep)), "total_frames": int(total), "shape": [int(total), n_ch, fe.n_mels],
        "layout": "time-major (total_frames, channels, n_mels); crops returned as (B, channels, frames, n_mels)",
        "scaler_split": train_split, "split_counts": {k: int(v) for k, v in manifest["split"].value_counts().items()},
        "n_skipped": len(skipped), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": _versions(),
    }

    # Publish: remove the completeness marker, swap files in, write the marker last.
    (out / "store.json").unlink(missing_ok=True)
    if old_stats is not None:
        old_stats.close()
    if old is not None:
        old._arr = None
    if not same_array:
        os.replace(arr_path, out / "spectrograms.npy")
    _atomic_savez(out / "clip_stats.npz", sum=sums[0], sumsq=sums[1], n=n_per_clip)
    scaler.save(out / "scaler.npz")
    tmp = _tmp_name(out / "manifest.csv")
    manifest.to_csv(tmp, index=False)
    os.replace(tmp, out / "manifest.csv")
    _atomic_write_text(out / "build_report.json", json.dumps(report, indent=1))
    _atomic_write_text(out / "store.json", json.dumps(meta, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    if skipped:
        log.warning("store %s: %d of %d clips skipped (see %s)", out, len(skipped), len(t), out / "build_report.json")
    log.info("store %s: %d clips, %d frames, %.1f MB", out, len(keep), total,
             (out / "spectrograms.npy").stat().st_size / 1e6)
    return SpectrogramStore.open(out)
