"""The representation interface: :class:`Extractor` (audio → one vector per track), slicing and ``mean ‖ std``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator, Sequence

import numpy as np

from mtdtl.audio import UnreadableAudio, slice_frames
from mtdtl.constants import CROP_FRAMES, SR
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger


__all__ = ["SLICE_FRAMES", "UnreadableAudio", "Extractor", "slice_frames", "aggregate"]

log = get_logger(__name__)

#: Frames per slice (2.5 s at 22,050 Hz with hop 256; the network's input length).
SLICE_FRAMES = CROP_FRAMES


def aggregate(F: np.ndarray) -> np.ndarray:
    """``[mean ‖ std]`` over slices (Section 4.4.1).

    Parameters
    ----------
    F : np.ndarray [shape=(n_slices, d)]

    Returns
    -------
    np.ndarray [shape=(2 * d,)] float32
        Population standard deviation (0 for a single slice).
    """
    F = np.asarray(F, dtype=np.float64)
    return np.concatenate([F.mean(axis=0), F.std(axis=0)]).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Extractors
# ---------------------------------------------------------------------------------------


class Extractor:
    """A representation: audio of any length → one vector of ``dim`` values.

    Subclasses set ``name`` (readable id), ``dim``, ``sample_rate`` (Hz of waveforms given to
    :meth:`extract`), ``key`` (hash of weights and parameters: the feature cache's key) and
    ``front_end`` (a :class:`mtdtl.audio.FrontEnd` or ``None``), and implement
    :meth:`_extract_waveform`. :meth:`extract_many` yields ``(index, vector)`` or
    ``(index, UnreadableAudio)`` per item; subclasses batch across items where it pays.
    """

    name: str = "extractor"
    dim: int = 0
    sample_rate: int = SR
    key: str = ""
    front_end = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, key={self.key[:12]!r})"

    def describe(self) -> dict:
        """JSON-able description stored beside cached features."""
        return {"name": self.name, "dim": self.dim, "sample_rate": self.sample_rate, "key": self.key,
                "class": type(self).__name__,
                "front_end": None if self.front_end is None else self.front_end.to_dict()}

    # -- loading --
    def _load(self, item: Any, sr: int | None = None) -> np.ndarray:
        """Stereo float32 audio at ``self.sample_rate`` from a path or a waveform."""
        from mtdtl.audio import downmix, is_silent, load_audio, resample

        if isinstance(item, (str, os.PathLike)):
            try:
                y = load_audio(item, sr=self.sample_rate)
            except MtdtlError as e:
                raise UnreadableAudio(str(e)) from e
            where = str(item)
        else:
            y = np.asarray(item, dtype=np.float32)
            if y.ndim not in (1, 2) or y.shape[-1] == 0 or (y.ndim == 2 and y.shape[0] > 8):
                raise MtdtlError(f"a waveform must have shape (n_samples,) or (channels, n_samples), got {y.shape}"
                                 " (transpose (n_samples, channels) arrays)")
            if not np.all(np.isfinite(y)):
                raise MtdtlError("waveform contains NaN or infinite samples")
            y = downmix(y if y.ndim == 2 else y[None])
            y = resample(y, int(sr or self.sample_rate), self.sample_rate)
            where = "waveform"
        if is_silent(y):
            raise UnreadableAudio(f"{where} is silent (peak below -80 dBFS): its spectrogram would be a flat floor")
        return y

    def _extract_waveform(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extract(self, audio: Any, *, sr: int | None = None) -> np.ndarray:
        """Feature vector of one track.

        Parameters
        ----------
        audio : path or np.ndarray [shape=(n_samples,) or (channels, n_samples)]
            A file, or a waveform at ``sr`` Hz (default ``self.sample_rate``).
        sr : int, optional
            Sample rate of a waveform.

        Returns
        -------
        np.ndarray [shape=(dim,)] float32
        """
        v = self._extract_waveform(self._load(audio, sr))
        _check_finite(v[None], [audio if isinstance(audio, (str, os.PathLike)) else "waveform"], self.name)
        return v

    def extract_many(self, items: Sequence[Any], *, progress: bool = False) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, vector)`` for each item in order, or ``(i, UnreadableAudio)`` when unusable."""
        from tqdm.auto import tqdm

        for i, it in enumerate(tqdm(items, desc=self.name, disable=not progress, unit="track")):
            try:
                yield i, self._extract_waveform(self._load(it))
            except UnreadableAudio as e:
                yield i, e


def _check_finite(X: np.ndarray, names: Sequence[Any], rep: str) -> None:
    bad = ~np.all(np.isfinite(X), axis=1)
    if bad.any():
        which = [str(names[i]) for i in np.flatnonzero(bad)[:5]]
        raise MtdtlError(f"representation {rep!r} produced NaN/inf features for {int(bad.sum())} track(s), e.g. "
                         f"{which}; the model or its scaler is broken (check the checkpoint's scaler std for zeros)")

def _hash_parts(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p, dtype=np.float32).tobytes())
        else:
            h.update(str(p).encode())
        h.update(b"\x00")
    return h.hexdigest()
