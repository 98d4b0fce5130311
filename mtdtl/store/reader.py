"""Reading a spectrogram store: :class:`SpectrogramStore` (memory-mapped crops) and :class:`BandScaler`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mtdtl.audio import FrontEnd
from mtdtl.constants import CROP_FRAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.io import atomic_savez

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
        atomic_savez(path, mean=self.mean, std=self.std, n_frames=np.int64(self.n_frames),
                      n_clips=np.int64(self.n_clips), split=np.str_(self.split))

    @classmethod
    def load(cls, path: Path) -> "BandScaler":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"].astype(np.float32), z["std"].astype(np.float32), int(z["n_frames"]),
                       int(z["n_clips"]), str(z["split"]))


# ---------------------------------------------------------------------------------------
# Small file helpers
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
            path = self.root / "spectrograms.npy"
            try:
                self._arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:  # e.g. "mmap length is greater than file size"
                raise MtdtlError(f"{path} is damaged or truncated ({e}); the store cannot be used: build it again "
                                 f"(build_store on the same out_dir rebuilds it, or delete {self.root})") from None
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
