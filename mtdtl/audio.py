"""Audio front end: decode, resample, keep stereo, dB-scaled mel spectrogram (Section 3.1.1).

The paper's input is "the dB-scale mel-scale magnitude spectrum of an input audio fragment,
extracted by applying 128-band mel-filter banks on the STFT", with a 1024-sample window and a
256-sample hop at 22,050 Hz, keeping both stereo channels (Sections 3.1.1-3.1.2). This module
turns any audio file into that representation.

Pipeline
--------
:func:`load_audio`
    Decode with soundfile (libsndfile: wav, flac, ogg/vorbis, mp3 with libsndfile >= 1.1, au,
    aiff, ...); when libsndfile cannot read a file, fall back to ``audioread`` (which uses
    ffmpeg, GStreamer or Core Audio when one is installed, and Python's own wave/aiff/au
    readers otherwise). Resample to ``sr`` with soxr at "HQ" quality (the resampler and
    quality that ``librosa.load`` uses by default). Channel policy:

    - mono is duplicated to both channels;
    - stereo is kept as is;
    - more than two channels are down-mixed to two: channel 0 (front left in the WAV, FLAC
      and MP3 orders) goes to the left output, channel 1 (front right) to the right output,
      every further channel (centre, LFE, surrounds, ...) to both outputs at -3 dB
      (weight 1/sqrt(2)); each output is then divided by the sum of its weights, so the
      down-mix cannot clip. (Vorbis orders 3- and 5-channel files L, C, R, ...: for those the
      mix is approximate, which is acceptable for a 2-channel analysis front end.)

:func:`is_silent`
    True when the loudest sample is below ``threshold_db`` dBFS (default -80 dBFS, below the
    quantisation step of 16-bit audio at -96 dBFS plus a small dither margin). Callers reject
    or report such clips: their spectrogram would be a flat floor, i.e. junk.

:func:`mel_db` and :class:`MelSpectrogramDB`
    Power STFT (periodic Hann window, ``center=True`` with zero padding) -> librosa's Slaney
    mel filterbank -> ``10 log10(max(amin, S) / ref)`` -> floor at ``max - top_db``.
    This reproduces ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050,
    n_fft=1024, hop_length=256, n_mels=128))`` (librosa >= 0.10 defaults) within 1e-3 dB
    (tested). **dB convention:** ``ref=1.0`` (absolute dB re full-scale power, not relative
    to the clip's maximum), ``amin=1e-10`` (so digital silence is -100 dB) and ``top_db=80``
    applied over the *whole clip, both channels together*, as librosa does for a
    ``(2, n_samples)`` input. These are librosa's defaults, which the paper's released code
    used (``power_to_db`` / ``logamplitude`` with default arguments). The floor depends on
    the loudest bin of the whole clip, so spectrograms should be computed per clip (the
    store does that for 30 s clips) and not per 2.5 s slice when parity with training matters.
    The torch module computes the floor per batch item (over its channels), so a batch of
    clips gives the same numbers as one clip at a time, as long as each batch item is one
    clip (not zero-padded to a common length).

    The output is time-major, ``(2, n_frames, 128)``, which is the layout of the network
    input ``2 x 216 x 128`` (Section 3.1.2); ``n_frames = 1 + n_samples // hop``.

    **FFT precision.** librosa multiplies float32 frames by a float64 window, so its FFT runs
    in float64. A float32 FFT (torch/MKL, scipy) rounds at about 1e-7 of the frame's energy,
    which moves bins 60-80 dB below a loud pure tone in the same frame by up to ~3e-3 dB
    (measured on chirps and harmonic tones). The default ``precision="float64"`` therefore
    keeps the FFT in float64: on CPU through a scipy (pocketfft) kernel that frames in
    L2-sized blocks and multiplies each group of 16 mel bands only with the FFT bins it
    touches (about 2x librosa's speed per core, within 1e-5 dB of it); on CUDA through a
    float64 ``torch.stft``. ``precision="float32"`` is available where speed matters more: on
    CPU the same kernel in float32 (about 2.8x librosa per core; up to ~2e-3 dB from librosa on
    tonal audio, still ~17x below the float16 rounding of the store), on CUDA a float32
    ``torch.stft``.

:func:`pad_to_min_frames` (short-clip policy)
    A clip shorter than one crop (``CROP_FRAMES = 216`` frames = 2.5 s) is padded **at the
    end** with *true silence in the dB domain*: the value a silent frame takes in this clip,
    ``max(10 log10(amin / ref), S.max() - top_db)``, i.e. the clip's own floor, applied
    before any standardisation. Silence padded in the audio domain would give the same value
    except for the few frames whose window straddles the end. Empty (zero-sample) and silent
    clips are never padded: :func:`load_audio` rejects empty files and callers reject silent
    ones with :func:`is_silent`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from mtdtl.constants import CROP_FRAMES, HOP, N_CHANNELS, N_FFT, N_MELS, SR
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = [
    "FrontEnd",
    "load_audio",
    "downmix",
    "resample",
    "is_silent",
    "mel_db",
    "MelSpectrogramDB",
    "silence_db",
    "pad_to_min_frames",
    "n_frames_for",
    "SILENCE_THRESHOLD_DB",
    "PRECISIONS",
]

log = get_logger(__name__)

#: Peak level (dBFS) below which a clip counts as silent.
SILENCE_THRESHOLD_DB = -80.0


# ---------------------------------------------------------------------------------------
# Front-end parameters
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontEnd:
    """Every parameter that determines a spectrogram, stored with stores and checkpoints.

    Two spectrograms are comparable only when their ``FrontEnd`` objects are equal;
    :meth:`check_compatible` raises an :class:`MtdtlError` listing the differences.

    Parameters
    ----------
    sr : int
        Sample rate (Hz) that audio is resampled to.
    n_fft : int
        STFT window length (samples), also the FFT size.
    hop : int
        STFT hop (samples).
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Mel filterbank range (Hz); ``fmax=None`` means ``sr / 2``.
    power : float
        Exponent of the STFT magnitude (2.0: power spectrogram).
    ref, amin, top_db : float
        dB conversion ``10 log10(max(amin, S) / ref)``, floored at ``max - top_db`` over the
        whole clip (both channels); ``top_db=None`` disables the floor.
    window : str
        STFT window name (``scipy.signal.get_window`` name, periodic).
    center : bool
        Centre frames on samples, padding ``n_fft // 2`` samples at both ends.
    pad_mode : str
        Padding for ``center=True`` (``"constant"``: zeros, librosa >= 0.10's default).
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : str or None
        Mel filter normalisation (``"slaney"``: area normalisation).
    n_channels : int
        Channels kept (2: stereo).
    resample_quality : str
        soxr quality (``"HQ"``, as ``librosa.load``).
    """

    sr: int = SR
    n_fft: int = N_FFT
    hop: int = HOP
    n_mels: int = N_MELS
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = 80.0
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    htk: bool = False
    norm: str | None = "slaney"
    n_channels: int = N_CHANNELS
    resample_quality: str = "HQ"

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft <= 0 or self.hop <= 0 or self.n_mels <= 0:
            raise MtdtlError(f"FrontEnd: sr, n_fft, hop and n_mels must be positive, got {self}")
        if self.amin <= 0 or self.ref <= 0:
            raise MtdtlError(f"FrontEnd: amin and ref must be positive, got amin={self.amin}, ref={self.ref}")
        if self.top_db is not None and self.top_db < 0:
            raise MtdtlError(f"FrontEnd: top_db must be non-negative or None, got {self.top_db}")
        if self.n_channels != 2:
            raise MtdtlError(f"FrontEnd: only n_channels=2 (stereo) is supported, got {self.n_channels}")

    @property
    def fmax_hz(self) -> float:
        """Upper edge of the mel filterbank (Hz)."""
        return float(self.sr) / 2 if self.fmax is None else float(self.fmax)

    @property
    def floor_db(self) -> float:
        """dB value of digital silence, ``10 log10(amin / ref)`` (-100 dB by default)."""
        return 10.0 * math.log10(self.amin) - 10.0 * math.log10(max(self.amin, self.ref))

    @property
    def frames_per_second(self) -> float:
        return self.sr / self.hop

    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of ``n_samples`` samples."""
        return n_frames_for(n_samples, front_end=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FrontEnd":
        """Inverse of :meth:`to_dict`; unknown keys raise (a newer file), missing keys take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise MtdtlError(
                f"FrontEnd.from_dict: unknown field(s) {unknown}; this file was written by a "
                f"different mtdtl version (known fields: {sorted(names)})"
            )
        return cls(**dict(d))

    def diff(self, other: "FrontEnd") -> dict[str, tuple[Any, Any]]:
        """Fields that differ: ``{name: (self_value, other_value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def check_compatible(self, other: "FrontEnd", *, what: str = "front end") -> None:
        """Raise :class:`MtdtlError` when ``other`` differs from ``self``."""
        d = self.diff(other)
        if d:
            parts = ", ".join(f"{k}: {v[0]!r} != {v[1]!r}" for k, v in d.items())
            raise MtdtlError(
                f"{what} mismatch ({parts}); spectrograms computed with different front ends "
                "are not comparable: recompute them with the same FrontEnd"
            )


def n_frames_for(n_samples: int, *, front_end: FrontEnd = FrontEnd()) -> int:
    """STFT frames for ``n_samples`` samples (``1 + n_samples // hop`` when centred)."""
    if front_end.center:
        return 1 + int(n_samples) // front_end.hop
    return max(0, 1 + (int(n_samples) - front_end.n_fft) // front_end.hop)


# ---------------------------------------------------------------------------------------
# Decoding, channels, resampling
# ---------------------------------------------------------------------------------------


def downmix(x: np.ndarray) -> np.ndarray:
    """Bring ``(n_channels, n_samples)`` audio to two channels (see the module docstring).

    Parameters
    ----------
    x : np.ndarray [shape=(n_channels, n_samples)]

    Returns
    -------
    np.ndarray [shape=(2, n_samples)] float32
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    c = x.shape[0]
    if c == 0:
        raise MtdtlError("downmix: audio has zero channels")
    if c == 1:
        return np.repeat(x, 2, axis=0)
    if c == 2:
        return np.ascontiguousarray(x)
    w = np.zeros((2, c), dtype=np.float32)
    w[0, 0] = 1.0
    w[1, 1] = 1.0
    w[:, 2:] = np.float32(1.0 / math.sqrt(2.0))
    w /= w.sum(axis=1, keepdims=True)
    return w @ x


def resample(x: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample ``(n_channels, n_samples)`` audio with soxr (no-op when the rates match)."""
    if int(sr_in) == int(sr_out):
        return np.asarray(x, dtype=np.float32)
    import soxr

    y = soxr.resample(np.ascontiguousarray(np.asarray(x, dtype=np.float32).T), int(sr_in), int(sr_out), quality=quality)
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).T)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, int(sr_in)


def _read_audioread(path: Path) -> tuple[np.ndarray, int]:
    import audioread

    chunks = []
    with audioread.audio_open(str(path)) as f:
        sr_in, c = int(f.samplerate), int(f.channels)
        for buf in f:
            chunks.append(np.frombuffer(buf, dtype="<i2"))
    if c <= 0:
        raise ValueError("no channels")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<i2")
    x = (pcm.astype(np.float32) / 32768.0).reshape(-1, c).T
    return x, sr_in


def _header_frames(path: Path) -> int | None:
    """Sample frames a WAV (RIFF/RIFX) or AIFF header declares, or ``None`` when unknown.

    libsndfile trims a truncated WAV's length to the data present without saying so; the
    header's own count is what the file was meant to hold. Streaming writers that do not know
    the length (0 or 0xFFFFFFFF in the size field) give ``None``.
    """
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12:
                return None
            kind, form = head[:4], head[8:12]
            if kind in (b"RIFF", b"RIFX") and form == b"WAVE":
                end = "<" if kind == b"RIFF" else ">"
                block_align = data_size = None
                while True:
                    ch = fh.read(8)
                    if len(ch) < 8:
                        break
                    cid, size = ch[:4], struct.unpack(end + "I", ch[4:])[0]
                    if cid == b"fmt ":
                        fmt = fh.read(min(size, 16))
                        if len(fmt) >= 14:
                            block_align = struct.unpack(end + "H", fmt[12:14])[0]
                        fh.seek(size - len(fmt) + (size & 1), 1)
                    elif cid == b"data":
                        data_size = size
                        break
                    else:
                        fh.seek(size + (size & 1), 1)
                if not block_align or not data_size or data_size == 0xFFFFFFFF:
                    return None
                return data_size // block_align
            if kind == b"FORM" and form in (b"AIFF", b"AIFC"):
                while True:
                    ch = fh.read(8)
                    if len(ch) < 8:
                        return None
                    cid, size = ch[:4], struct.unpack(">I", ch[4:])[0]
                    if cid == b"COMM":
                        comm = fh.read(6)
                        return struct.unpack(">I", comm[2:6])[0] or None if len(comm) == 6 else None
                    fh.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None
    return None


def _check_length(p: Path, n: int, sr_in: int) -> None:
    """Warn (naming the file) when fewer sample frames decoded than the file's header declares."""
    declared = _header_frames(p)
    if declared is None:  # FLAC's STREAMINFO count is exact (mp3/ogg lengths are estimates: not used)
        try:
            import soundfile as sf

            info = sf.info(str(p))
            declared = int(info.frames) if info.format == "FLAC" else None
        except Exception:
            declared = None
    if declared and n < declared:
        log.warning("audio file %s is truncated: its header declares %.2f s but only %.2f s of audio are in the "
                    "file; using the %.2f s that decode (re-download or re-encode it to use all of it)",
                    p, declared / sr_in, n / sr_in, n / sr_in)


def load_audio(path: str | os.PathLike, *, sr: int = SR, quality: str = "HQ") -> np.ndarray:
    """Decode an audio file to stereo float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or PathLike
        Audio file (wav, flac, ogg, mp3, au, aiff, ...).
    sr : int
        Target sample rate (Hz); soxr resampling at ``quality``.
    quality : str
        soxr quality recipe (``"HQ"`` by default, like ``librosa.load``).

    Returns
    -------
    np.ndarray [shape=(2, n_samples)] float32
        Mono duplicated, more than two channels down-mixed (:func:`downmix`).

    Raises
    ------
    MtdtlError
        The file is missing, empty, corrupt, in a format neither decoder can read, has no
        samples, or contains NaN/inf samples. The message names the file.

    Notes
    -----
    A truncated file (its header declares more audio than the file holds, e.g. an interrupted
    download) decodes to the part that is there, with a warning naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise MtdtlError(f"audio file not found: {p}")
    if p.stat().st_size == 0:
        raise MtdtlError(f"audio file is empty (0 bytes): {p}; re-download or remove it")
    errors = []
    x = sr_in = None
    try:
        x, sr_in = _read_soundfile(p)
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        errors.append(f"soundfile: {e}")
        try:
            x, sr_in = _read_audioread(p)
            log.debug("decoded %s with audioread (soundfile failed: %s)", p, e)
        except Exception as e2:  # audioread raises its own hierarchy, or EOFError/wave.Error
            errors.append(f"audioread: {type(e2).__name__}: {e2}")
            x = None
    if x is None:
        raise MtdtlError(
            f"cannot decode audio file {p} ({'; '.join(errors)}); the file is corrupt or in a "
            "format libsndfile cannot read: convert it to flac/wav, or install ffmpeg so the "
            "audioread fallback can decode it"
        )
    if x.shape[1] == 0:
        raise MtdtlError(f"audio file has no samples: {p}; remove it from the track list")
    if not np.all(np.isfinite(x)):
        raise MtdtlError(f"audio file contains NaN or infinite samples: {p}")
    _check_length(p, int(x.shape[1]), int(sr_in))
    x = downmix(x)
    x = resample(x, sr_in, sr, quality=quality)
    return np.ascontiguousarray(x, dtype=np.float32)


def is_silent(y: np.ndarray, *, threshold_db: float = SILENCE_THRESHOLD_DB) -> bool:
    """True when ``y`` has no samples or its peak is below ``threshold_db`` dBFS."""
    y = np.asarray(y)
    if y.size == 0:
        return True
    peak = float(np.max(np.abs(y)))
    return not peak > 10.0 ** (threshold_db / 20.0)


# ---------------------------------------------------------------------------------------
# Mel spectrogram in dB
# ---------------------------------------------------------------------------------------

#: FFT precisions :func:`mel_db` and :class:`MelSpectrogramDB` accept.
PRECISIONS = ("float64", "float32")


def _mel_basis(fe: FrontEnd) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=fe.sr, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax, htk=fe.htk, norm=fe.norm,
        dtype=np.float32,
    )


def _window(fe: FrontEnd) -> np.ndarray:
    """Periodic window (float64), exactly librosa's ``get_window(window, n_fft, fftbins=True)``."""
    import librosa

    return np.asarray(librosa.filters.get_window(fe.window, fe.n_fft, fftbins=True), dtype=np.float64)


class _CpuPlan:
    """Precomputed window and band-blocked mel filterbank for the CPU kernel (float64 or float32 FFT).

    The Slaney filterbank is sparse (about two non-zeros per FFT bin), so the 128 bands are
    split into groups of 16 and each group is multiplied only with the FFT bins it touches:
    about 4x fewer multiply-adds than a dense ``(513, 128)`` product, with identical sums.
    """

    BLOCK = 128  # frames per FFT call: keeps the float64 work arrays in L2 cache
    GROUP = 16

    def __init__(self, fe: FrontEnd) -> None:
        self.fe = fe
        self.window = _window(fe)
        self.window32 = self.window.astype(np.float32)
        basis = _mel_basis(fe)
        self.groups = []
        for lo in range(0, fe.n_mels, self.GROUP):
            hi = min(lo + self.GROUP, fe.n_mels)
            nz = np.flatnonzero(np.any(basis[lo:hi] != 0, axis=0))
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            self.groups.append((a, b, lo, hi, np.ascontiguousarray(basis[lo:hi, a:b].T)))

    def mel_power(self, y: np.ndarray, *, workers: int = 1, fft_dtype: Any = np.float64) -> np.ndarray:
        """``(C, n) float32 -> (C, T, n_mels) float32`` mel power (FFT in ``fft_dtype``: float64 or float32)."""
        # The per-group products are small: BLAS threads only add overhead, and BLAS threads
        # spinning beside scipy's FFT workers slow the kernel down ~10x on a busy machine.
        with _single_threaded_blas():
            return self._mel_power(y, workers=workers, fft_dtype=fft_dtype)

    def _mel_power(self, y: np.ndarray, *, workers: int, fft_dtype: Any = np.float64) -> np.ndarray:
        import scipy.fft

        fe = self.fe
        fft_dtype = np.dtype(fft_dtype)
        single = fft_dtype == np.float32
        window = self.window32 if single else self.window
        n_bins = fe.n_fft // 2 + 1
        if fe.center:
            pad = fe.n_fft // 2
            mode = "constant" if fe.pad_mode == "constant" else fe.pad_mode
            y = np.pad(y, ((0, 0), (pad, pad)), mode=mode)
        frames = np.lib.stride_tricks.sliding_window_view(y, fe.n_fft, axis=-1)[:, :: fe.hop]
        c_, t_ = frames.shape[:2]
        out = np.empty((c_, t_, fe.n_mels), dtype=np.float32)
        block = self.BLOCK * max(1, workers) * (2 if single else 1)  # same bytes in L2 either way
        x = np.empty((block, fe.n_fft), dtype=fft_dtype)
        p = np.empty((block, n_bins), dtype=np.float32)
        for c in range(c_):
            for b in range(0, t_, block):
                fb = frames[c, b:b + block]
                k = fb.shape[0]
                xx = np.multiply(fb, window, out=x[:k])
                s = scipy.fft.rfft(xx, axis=-1, overwrite_x=True, workers=workers)
                sv = s.view(fft_dtype)
                if fe.power == 2.0:
                    np.square(sv, out=sv)
                    np.add(sv[:, 0::2], sv[:, 1::2], out=p[:k], casting="unsafe")
                else:
                    p[:k] = np.abs(s) ** fe.power
                o = out[c, b:b + k]
                pk = p[:k]
                for a, bb, lo, hi, w in self.groups:
                    np.matmul(pk[:, a:bb], w, out=o[:, lo:hi])
        return out


_BLAS_CONTROLLER: Any = None
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"users": 0, "limiter": None}


@contextlib.contextmanager
def _single_threaded_blas():
    """Context manager limiting BLAS (numpy's matmul) to one thread; a no-op without threadpoolctl.

    The limit is process-wide (threadpoolctl), so threads computing mels at the same time share
    one: the first to enter sets it, the last to leave restores the previous thread counts.
    """
    global _BLAS_CONTROLLER
    with _BLAS_LOCK:
        if _BLAS_STATE["users"] == 0:
            try:
                if _BLAS_CONTROLLER is None:
                    from threadpoolctl import ThreadpoolController

                    _BLAS_CONTROLLER = ThreadpoolController()
                _BLAS_STATE["limiter"] = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
            except Exception:  # threadpoolctl missing or unable to inspect the libraries
                _BLAS_STATE["limiter"] = None
        _BLAS_STATE["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["users"] -= 1
            if _BLAS_STATE["users"] == 0 and _BLAS_STATE["limiter"] is not None:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None


_PLANS: dict[FrontEnd, _CpuPlan] = {}


def _plan(fe: FrontEnd) -> _CpuPlan:
    plan = _PLANS.get(fe)
    if plan is None:
        plan = _PLANS[fe] = _CpuPlan(fe)
    return plan


def _power_to_db_np(m: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """librosa.power_to_db with the front end's ref / amin / top_db, floor over the whole array."""
    db = np.log10(np.maximum(m, np.float32(fe.amin)), out=np.empty_like(m))
    db *= np.float32(10.0)
    ref_db = 10.0 * math.log10(max(fe.amin, fe.ref))
    if ref_db != 0.0:
        db -= np.float32(ref_db)
    if fe.top_db is not None and db.size:
        np.maximum(db, db.max() - np.float32(fe.top_db), out=db)
    return db


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise MtdtlError(f"precision must be one of {PRECISIONS}, got {precision!r}")


_LOCAL = threading.local()


def _threads() -> int:
    """FFT workers of the CPU mel kernel: this thread's :func:`fft_workers` setting, else torch's threads."""
    return max(1, getattr(_LOCAL, "fft_workers", None) or torch.get_num_threads())


@contextlib.contextmanager
def fft_workers(n: int):
    """In this thread, run the CPU mel kernel's FFT with ``n`` workers (e.g. 1 in a decode
    thread beside the network, which has the other cores)."""
    old = getattr(_LOCAL, "fft_workers", None)
    _LOCAL.fft_workers = max(1, int(n))
    try:
        yield
    finally:
        _LOCAL.fft_workers = old


class MelSpectrogramDB(torch.nn.Module):
    """Batched dB mel spectrogram: ``(batch, channels, n_samples) -> (batch, channels, n_frames, n_mels)``.

    Runs where its input lives. The ``top_db`` floor is taken over each batch item (all its
    channels), as librosa does for one clip, so each item equals :func:`mel_db` of that clip.
    Not differentiable (a fixed front end; it runs under ``torch.no_grad``).

    Parameters
    ----------
    front_end : FrontEnd
    precision : {"float64", "float32"}
        Precision of the FFT. ``"float64"`` (default) matches librosa, which computes its
        FFT in float64, within 1e-5 dB; on CPU it runs a scipy (pocketfft) kernel, on CUDA
        a float64 ``torch.stft``. ``"float32"``: the same CPU kernel with a float32 FFT (about
        1.4x faster; on CUDA a float32 ``torch.stft``); the FFT's rounding moves bins 60-80 dB
        below a loud pure tone in the same frame by up to ~2e-3 dB (still far below float16
        storage rounding).
    """

    def __init__(self, front_end: FrontEnd = FrontEnd(), *, precision: str = "float64") -> None:
        super().__init__()
        _check_precision(precision)
        self.front_end = front_end
        self.precision = precision
        #: On CPU with float64, use the scipy kernel (faster than float64 torch.stft); tests
        #: turn it off to exercise the torch.stft path that CUDA inputs take.
        self.cpu_kernel = True
        self.register_buffer("mel_basis", torch.from_numpy(_mel_basis(front_end)), persistent=False)
        self.register_buffer("window", torch.from_numpy(_window(front_end)), persistent=False)

    def extra_repr(self) -> str:
        fe = self.front_end
        return f"sr={fe.sr}, n_fft={fe.n_fft}, hop={fe.hop}, n_mels={fe.n_mels}, top_db={fe.top_db}, precision={self.precision!r}"

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        y : torch.Tensor [shape=(batch, channels, n_samples)] float

        Returns
        -------
        torch.Tensor [shape=(batch, channels, n_frames, n_mels)] float32, on ``y.device``
        """
        fe = self.front_end
        if y.ndim != 3:
            raise MtdtlError(f"MelSpectrogramDB expects (batch, channels, n_samples), got shape {tuple(y.shape)}")
        b, c, n = y.shape
        if n == 0 or b == 0 or c == 0:
            raise MtdtlError(f"MelSpectrogramDB: empty input of shape {tuple(y.shape)}")
        if not fe.center and n < fe.n_fft:
            raise MtdtlError(f"MelSpectrogramDB: {n} samples < n_fft={fe.n_fft} with center=False")
        if y.device.type == "cpu" and self.cpu_kernel:
            plan = _plan(fe)
            x = y.detach().to(torch.float32).numpy()
            dt = np.float64 if self.precision == "float64" else np.float32
            out = np.stack([_power_to_db_np(plan.mel_power(x[i], workers=_threads(), fft_dtype=dt), fe)
                            for i in range(b)])
            return torch.from_numpy(out)
        if y.device.type == "cpu" and b > 1:  # one item at a time: bounded memory, cache-friendly
            return torch.cat([self.forward(y[i:i + 1]) for i in range(b)])
        dt = torch.float64 if self.precision == "float64" else torch.float32
        x = y.to(dt).reshape(b * c, n)
        spec = torch.stft(
            x, n_fft=fe.n_fft, hop_length=fe.hop, win_length=fe.n_fft, window=self.window.to(x.device, dt),
            center=fe.center, pad_mode=fe.pad_mode, return_complex=True,
        )
        if fe.power == 2.0:
            p = spec.real.square() + spec.imag.square()
        else:
            p = spec.abs().pow(fe.power)
        mel = torch.matmul(self.mel_basis.to(x.device), p.to(torch.float32))  # (b*c, n_mels, T)
        db = 10.0 * torch.log10(torch.clamp(mel, min=fe.amin))
        ref_db = 10.0 * math.log10(max(fe.amin, fe.ref))
        if ref_db != 0.0:
            db = db - ref_db
        db = db.reshape(b, c, fe.n_mels, -1)
        if fe.top_db is not None:
            peak = db.amax(dim=(1, 2, 3), keepdim=True)
            db = torch.maximum(db, peak - fe.top_db)
        return db.transpose(2, 3).contiguous()


def mel_db(y: np.ndarray, *, front_end: FrontEnd = FrontEnd(), precision: str = "float64") -> np.ndarray:
    """dB mel spectrogram of one clip, time-major (numpy in, numpy out, CPU).

    Parameters
    ----------
    y : np.ndarray [shape=(n_channels, n_samples) or (n_samples,)]
        Audio at ``front_end.sr`` (as returned by :func:`load_audio`).
    front_end : FrontEnd
    precision : {"float64", "float32"}
        FFT precision (see :class:`MelSpectrogramDB`); float64 matches librosa within 1e-5 dB.

    Returns
    -------
    np.ndarray [shape=(n_channels, n_frames, n_mels) or (n_frames, n_mels)] float32
        ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, ...))`` transposed to
        time-major; the ``top_db`` floor is over the whole clip (all channels).
    """
    _check_precision(precision)
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise MtdtlError(f"mel_db expects (n_channels, n_samples) or (n_samples,), got shape {y.shape}")
    mono = y.ndim == 1
    x = np.ascontiguousarray(y.reshape(1, -1) if mono else y, dtype=np.float32)
    if x.shape[-1] == 0 or x.shape[0] == 0:
        raise MtdtlError(f"mel_db: empty signal of shape {y.shape}")
    if not np.all(np.isfinite(x)):
        raise MtdtlError("mel_db: signal contains NaN or infinite samples")
    if not front_end.center and x.shape[-1] < front_end.n_fft:
        raise MtdtlError(f"mel_db: {x.shape[-1]} samples < n_fft={front_end.n_fft} with center=False")
    dt = np.float64 if precision == "float64" else np.float32
    out = _power_to_db_np(_plan(front_end).mel_power(x, workers=_threads(), fft_dtype=dt), front_end)
    return out[0] if mono else out


def silence_db(S: np.ndarray, *, front_end: FrontEnd = FrontEnd()) -> float:
    """dB value of a silent frame in spectrogram ``S`` (the clip's floor, before scaling).

    ``max(10 log10(amin / ref), S.max() - top_db)``: exactly what :func:`mel_db` gives a
    digitally silent frame of the same clip.
    """
    floor = front_end.floor_db
    if front_end.top_db is not None and np.size(S):
        floor = max(floor, float(np.max(S)) - float(front_end.top_db))
    return float(floor)


def pad_to_min_frames(
    S: np.ndarray,
    *,
    min_frames: int = CROP_FRAMES,
    front_end: FrontEnd = FrontEnd(),
    axis: int = -2,
) -> np.ndarray:
    """Short-clip policy: pad ``S`` at the end of the time axis with true dB silence.

    Parameters
    ----------
    S : np.ndarray [shape=(..., n_frames, n_mels)]
        Raw (unscaled) dB spectrogram of one clip, e.g. from :func:`mel_db`.
    min_frames : int
        Frames wanted (one crop, 216, by default).
    front_end : FrontEnd
        Gives ``amin``, ``ref`` and ``top_db`` for the silence value (:func:`silence_db`).
    axis : int
        Time axis (``-2`` for time-major spectrograms).

    Returns
    -------
    np.ndarray
        ``S`` itself when it is long enough, else a padded copy with ``min_frames`` frames.

    Raises
    ------
    MtdtlError
        ``S`` has no frames (an empty clip cannot be padded into anything but junk).
    """
    S = np.asarray(S)
    n = S.shape[axis]
    if n == 0:
        raise MtdtlError("pad_to_min_frames: spectrogram has no frames; reject empty clips instead of padding")
    if n >= min_frames:
        return S
    widths = [(0, 0)] * S.ndim
    widths[axis] = (0, min_frames - n)
    return np.pad(S, widths, mode="constant", constant_values=silence_db(S, front_end=front_end)).astype(S.dtype, copy=False)


# ---------------------------------------------------------------------------------------
# unusable tracks, front-end coercion, slicing, streaming long files
# ---------------------------------------------------------------------------------------

class UnreadableAudio(MtdtlError):
    """A track that cannot be used (missing, corrupt, empty or silent): skipped and listed."""



def as_front_end(fe: Any) -> "FrontEnd | None":
    """``fe`` as a :class:`FrontEnd` (a FrontEnd, its dict, or None)."""
    if fe is None or isinstance(fe, FrontEnd):
        return fe
    if isinstance(fe, dict):
        return FrontEnd.from_dict(fe)
    raise MtdtlError(f"front_end must be a mtdtl.audio.FrontEnd or its dict, got {type(fe).__name__}")


def slice_frames(S: torch.Tensor, *, n_frames: int = CROP_FRAMES) -> torch.Tensor:
    """Non-overlapping windows of a time-major spectrogram.

    Parameters
    ----------
    S : torch.Tensor [shape=(channels, total_frames, n_mels)]
    n_frames : int
        Window length (216).

    Returns
    -------
    torch.Tensor [shape=(total_frames // n_frames, channels, n_frames, n_mels)]
        A trailing remainder shorter than ``n_frames`` is dropped.
    """
    c, t, m = S.shape
    k = t // n_frames
    return S[:, : k * n_frames].reshape(c, k, n_frames, m).transpose(0, 1)


def stream_slices(path: Path, front_end: "FrontEnd", *, device: Any = "cpu", block_slices: int = 64,
                  n_frames: int = CROP_FRAMES) -> Iterator[torch.Tensor]:
    """Slices of a long file, block by block, equal to the one-piece path.

    Pass 1 finds the loudest mel bin (which sets the ``top_db`` floor) and the peak sample
    (silence check); pass 2 computes the same blocks again and cuts them into slices.
    """
    from mtdtl.audio import SILENCE_THRESHOLD_DB

    fe = front_end
    block = block_slices * n_frames
    peak_db, peak = -np.inf, 0.0
    for S, y_peak in stream_db_blocks(path, fe, block, device=device):
        peak_db = max(peak_db, float(S.max()))
        peak = max(peak, y_peak)
    if not peak > 10.0 ** (SILENCE_THRESHOLD_DB / 20.0):
        raise UnreadableAudio(f"{path} is silent (peak below {SILENCE_THRESHOLD_DB} dBFS)")
    floor = peak_db - fe.top_db if fe.top_db is not None else -np.inf
    for S, _ in stream_db_blocks(path, fe, block, device=device):
        S = torch.clamp_min(S, floor) if fe.top_db is not None else S
        sl = slice_frames(S, n_frames=n_frames)
        if sl.shape[0]:
            yield sl

@torch.inference_mode()
def stream_db_blocks(path: Path, front_end: "FrontEnd", block_frames: int, *, device: Any = "cpu"
                     ) -> Iterator[tuple[torch.Tensor, float]]:
    """``(S_block, peak)``: dB mel (no floor) of consecutive blocks of frames of a file.

    Frame ``t`` of the whole (centred, zero-padded) signal covers samples
    ``[t*hop - n_fft/2, t*hop + n_fft/2)``; each block is computed un-centred from exactly
    those samples, so blocks join into the one-piece spectrogram.
    """
    import soundfile as sf
    import soxr

    from mtdtl.audio import MelSpectrogramDB, downmix

    fe = front_end
    if not fe.center or fe.pad_mode != "constant":
        raise MtdtlError("streaming long files needs center=True with zero padding; raise max_seconds_in_memory")
    raw = MelSpectrogramDB(dataclasses.replace(fe, center=False, top_db=None)).to(device)
    half, hop = fe.n_fft // 2, fe.hop
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:
        raise UnreadableAudio(f"cannot open {path} for streaming: {e}") from e
    with f:
        rs = soxr.ResampleStream(f.samplerate, fe.sr, 2, dtype="float32", quality=fe.resample_quality)
        buf = np.zeros((2, half), dtype=np.float32)  # resampled samples from index `start` on
        start = -half                                # (negative indices: the zero padding)
        t0, n_frames, eof = 0, None, False
        while True:
            if not eof:
                try:
                    x = f.read(frames=max(int(f.samplerate) * 20, 1), dtype="float32", always_2d=True)
                except Exception as e:
                    raise UnreadableAudio(f"cannot decode {path}: {e}") from e
                if not np.all(np.isfinite(x)):
                    raise UnreadableAudio(f"{path} contains NaN or infinite samples")
                eof = len(x) == 0
                x = downmix(x.T).T if len(x) else np.zeros((0, 2), np.float32)
                y = rs.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=eof).T
                buf = np.concatenate([buf, y, np.zeros((2, half), np.float32) if eof else y[:, :0]], axis=1)
                if eof:
                    n_frames = 1 + (start + buf.shape[1] - half) // hop
            while True:
                t1 = t0 + block_frames if n_frames is None else min(t0 + block_frames, n_frames)
                end = (t1 - 1) * hop + half  # frame t covers samples [t*hop - half, t*hop + half)
                if t1 <= t0 or start + buf.shape[1] < end:
                    break
                seg = buf[:, t0 * hop - half - start: end - start]
                S = raw(torch.from_numpy(np.ascontiguousarray(seg)).to(device)[None])[0]
                yield S, float(np.abs(seg).max())
                t0 = t1
                drop = t0 * hop - half - start
                buf, start = buf[:, drop:], start + drop
            if eof:
                return
