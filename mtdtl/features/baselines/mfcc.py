"""The *MFCC* baseline (Section 4.2 of the paper).

"We extract and aggregate MFCC following the strategy in [26]": 20 coefficients, their first
and second order derivatives, each summarised by its mean and standard deviation over time:
6 x 20 = 120 dimensions. The derivatives and the order of the blocks are those of Choi et al.'s
code ([26], ``get_mfcc_features`` in their ``keras2_features.py``): successive differences of
the MFCC frames (``mfcc[:, 1:] - mfcc[:, :-1]`` and again), blocks ordered
``mean(mfcc), std(mfcc), mean(Δ), std(Δ), mean(Δ²), std(Δ²)``. ``delta="librosa"`` uses
:func:`librosa.feature.delta` (Savitzky-Golay, width 9) instead.

Audio is mixed down to mono at mtdtl's 22,050 Hz; librosa's MFCC defaults otherwise
(n_fft 2048, hop 512, 128 mel bands, DCT-II with orthonormal scaling, power_to_db with
ref 1.0 and top_db 80). The whole track is used, not only its first 29 s as in [26].
"""

from __future__ import annotations

import warnings

import numpy as np

from mtdtl.constants import SR
from mtdtl.features.base import Extractor

__all__ = ["MFCC_DIM", "mfcc_features", "MFCCExtractor"]

#: Size of the MFCC baseline vector.
MFCC_DIM = 120
# librosa needs 3 frames for two differences; Choi et al. zero-pad to this many samples.
_MIN_SAMPLES = 1024


def mfcc_features(y: np.ndarray, *, sr: int = SR, n_mfcc: int = 20, delta: str = "diff") -> np.ndarray:
    """MFCC baseline vector of one track.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
        Audio at ``sr``; channels are averaged to mono.
    sr : int
        Sample rate of ``y``.
    n_mfcc : int
        Coefficients (20 in the paper).
    delta : {"diff", "librosa"}
        Successive differences as in [26], or :func:`librosa.feature.delta`.

    Returns
    -------
    np.ndarray [shape=(6 * n_mfcc,)] float32
    """
    import librosa

    from mtdtl.errors import MtdtlError

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise MtdtlError(f"mfcc_features expects (n,) or (channels, n) audio, got shape {y.shape}")
    if len(y) < _MIN_SAMPLES:
        y = np.pad(y, (0, _MIN_SAMPLES - len(y)))
    with warnings.catch_warnings():  # librosa warns when a clip is shorter than its 2048-sample window
        warnings.simplefilter("ignore", UserWarning)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    if delta == "diff":
        d1 = np.diff(m, axis=1)
        d2 = np.diff(d1, axis=1)
    elif delta == "librosa":
        width = min(9, m.shape[1] - (1 - m.shape[1] % 2))  # an odd width that fits
        d1 = librosa.feature.delta(m, width=max(width, 3), order=1, mode="nearest")
        d2 = librosa.feature.delta(m, width=max(width, 3), order=2, mode="nearest")
    else:
        raise MtdtlError(f"unknown delta {delta!r}: use 'diff' or 'librosa'")
    parts = [f(a, axis=1) for a in (m, d1, d2) for f in (np.mean, np.std)]
    return np.concatenate(parts).astype(np.float32)


class MFCCExtractor(Extractor):
    """The MFCC baseline as an :class:`mtdtl.features.Extractor` (120 dims, no weights).

    Parameters
    ----------
    sr : int
        Sample rate the audio is loaded at (22,050 Hz).
    n_mfcc : int
        Coefficients (20).
    delta : {"diff", "librosa"}
        Derivatives (see :func:`mfcc_features`).
    """

    def __init__(self, *, sr: int = SR, n_mfcc: int = 20, delta: str = "diff", **_ignored):
        import hashlib

        self.sample_rate, self.n_mfcc, self.delta = int(sr), int(n_mfcc), delta
        self.name = "mfcc"
        self.dim = 6 * self.n_mfcc
        self.key = hashlib.sha256(f"mfcc-v1|sr={sr}|n_mfcc={n_mfcc}|delta={delta}".encode()).hexdigest()

    def describe(self) -> dict:
        return {**super().describe(), "n_mfcc": self.n_mfcc, "delta": self.delta}

    def _extract_waveform(self, y: np.ndarray) -> np.ndarray:
        return mfcc_features(y, sr=self.sample_rate, n_mfcc=self.n_mfcc, delta=self.delta)
