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

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

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


def _mel_basis(fe: FrontEnd) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=fe.sr, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax, htk=fe.htk, norm=fe.norm,
        dtype=np.float32,
    )


def _window(fe: FrontEnd) -> np.ndarray:
    import librosa

    return librosa.filters.get_window(fe.window, fe.n_fft, fftbins=True).astype(np.float32)


class MelSpectrogramDB(torch.nn.Module):
    """Batched dB mel spectrogram (torch; runs wherever its input lives, CPU or CUDA).

    ``(batch, channels, n_samples) -> (batch, channels, n_frames, n_mels)``; the ``top_db``
    floor is taken over each batch item (all its channels), as librosa does for one clip.
    Equal to :func:`mel_db` (and to librosa within 1e-3 dB) item by item.

    Parameters
    ----------
    front_end : FrontEnd
        Parameters; the mel filterbank and window are buffers, so ``.to(device)`` moves them,
        and ``forward`` moves them to the input's device if needed.
    """

    def __init__(self, front_end: FrontEnd = FrontEnd()) -> None:
        super().__init__()
        self.front_end = front_end
        self.register_buffer("mel_basis", torch.from_numpy(_mel_basis(front_end)), persistent=False)
        self.register_buffer("window", torch.from_numpy(_window(front_end)), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        y : torch.Tensor [shape=(batch, channels, n_samples)] float

        Returns
        -------
        torch.Tensor [shape=(batch, channels, n_frames, n_mels)] float32
        """
        fe = self.front_end
        if y.ndim != 3:
            raise MtdtlError(f"MelSpectrogramDB expects (batch, channels, n_samples), got shape {tuple(y.shape)}")
        b, c, n = y.shape
        if n == 0:
            raise MtdtlError("MelSpectrogramDB: input has zero samples")
        if fe.center and fe.pad_mode != "constant" and n <= fe.n_fft // 2:
            raise MtdtlError(f"MelSpectrogramDB: {n} samples is too short for pad_mode={fe.pad_mode!r}")
        y = y.to(torch.float32)
        window = self.window.to(y.device)
        basis = self.mel_basis.to(y.device)
        x = y.reshape(b * c, n)
        if not fe.center and n < fe.n_fft:
            raise MtdtlError(f"MelSpectrogramDB: {n} samples < n_fft={fe.n_fft} with center=False")
        spec = torch.stft(
            x, n_fft=fe.n_fft, hop_length=fe.hop, win_length=fe.n_fft, window=window, center=fe.center,
            pad_mode=fe.pad_mode, return_complex=True,
        )
        if fe.power == 2.0:
            p = spec.real.square() + spec.imag.square()
        else:
            p = spec.abs().pow(fe.power)
        mel = torch.matmul(basis, p)  # (b*c, n_mels, T)
        db = 10.0 * torch.log10(torch.clamp(mel, min=fe.amin))
        ref_db = 10.0 * math.log10(max(fe.amin, fe.ref))
        if ref_db != 0.0:
            db = db - ref_db
        db = db.reshape(b, c, fe.n_mels, -1)
        if fe.top_db is not None:
            peak = db.amax(dim=(1, 2, 3), keepdim=True)
            db = torch.maximum(db, peak - fe.top_db)
        return db.transpose(2, 3).contiguous()


_MODULES: dict[FrontEnd, MelSpectrogramDB] = {}


def _module(fe: FrontEnd) -> MelSpectrogramDB:
    m = _MODULES.get(fe)
    if m is None:
        m = _MODULES[fe] = MelSpectrogramDB(fe)
    return m


def mel_db(y: np.ndarray, *, front_end: FrontEnd = FrontEnd()) -> np.ndarray:
    """dB mel spectrogram of one clip, time-major (numpy in, numpy out; computed on CPU).

    Parameters
    ----------
    y : np.ndarray [shape=(n_channels, n_samples) or (n_samples,)]
        Audio at ``front_end.sr`` (as returned by :func:`load_audio`).
    front_end : FrontEnd

    Returns
    -------
    np.ndarray [shape=(n_channels, n_frames, n_mels) or (n_frames, n_mels)] float32
        ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, ...))`` transposed to
        time-major; the ``top_db`` floor is over the whole clip (all channels).
    """
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise MtdtlError(f"mel_db expects (n_channels, n_samples) or (n_samples,), got shape {y.shape}")
    mono = y.ndim == 1
    t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).reshape(1, 1 if mono else y.shape[0], -1)
    with torch.no_grad():
        out = _module(front_end)(t)[0].numpy()
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
