"""Feature extraction: one fixed-size vector per track from any representation (Section 4.4.1).

"Taking raw audio from the evaluation datasets as input, we take non-overlapping slices out of
this audio with a fixed length of 2.5 seconds [...] representations are extracted from the
fc-feature layer [...] we aggregate information in feature vectors over multiple time slices
by taking their mean and standard deviation values [...] These will be concatenated."

For a trained network (a checkpoint of :mod:`mtdtl.train`), :class:`ModelExtractor` does:

1. decode the track with :func:`mtdtl.audio.load_audio` (stereo, the checkpoint's sample rate);
   silent tracks are rejected like unreadable ones (their spectrogram is a flat floor);
2. the dB mel spectrogram of the **whole track** (:class:`mtdtl.audio.MelSpectrogramDB`, the
   same per-clip ``top_db`` floor the training store used), then non-overlapping windows of
   ``CROP_FRAMES = 216`` frames (2.5 s) from the start; a trailing remainder shorter than a
   window is dropped; a track shorter than one window is padded with the audio module's
   short-clip policy (:func:`mtdtl.audio.pad_to_min_frames`) to exactly one window;
3. each window is standardised with the checkpoint's per-mel-band scaler (fit on the training
   split) and passed through ``model.features`` (the fc-feature; for the concatenating
   architectures every branch, in the model's documented order);
4. the mean and the (population) standard deviation over the windows are concatenated:
   ``[mean ‖ std]``, ``2 * model.feature_dim`` values per track.

Windows of many tracks share batches (``batch_size``, default 256); decoding runs ahead in a
background thread; tracks longer than ``max_seconds_in_memory`` (default 10 minutes) are
decoded, resampled and transformed in blocks (two passes: the first finds the track's loudest
bin, which sets the dB floor, the second extracts), so memory stays bounded whatever the
length, with the same numbers as the one-piece path. The device is CUDA when present (else
CPU, or ``device=``), the model runs in eval mode under :func:`torch.inference_mode`.

Every representation, trained or baseline, is an :class:`Extractor` with ``.name``, ``.dim``,
``.sample_rate``, ``.key`` (a hash that identifies its weights and parameters) and
``.extract(path_or_waveform)``; :func:`get_extractor` builds one from a short spec:

==========================  ===================================================================
spec                        representation
==========================  ===================================================================
``<checkpoint path>``       a trained network (run folder, ``model.safetensors`` or ``model.json``)
``"mfcc"``                  MFCC baseline, 120 dims (:mod:`mtdtl.baselines.mfcc`)
``"rand:<checkpoint>"``     *Rand*: the checkpoint's architecture, sources, front end and scaler,
                            untrained, from a fixed seed (:mod:`mtdtl.baselines.rand`)
``"rand:<arch>[:src,..]"``  *Rand* for an architecture id (sources default to all eight)
``"choi:<hdf5 path>"``      *Choi*: Choi et al.'s convnet ported to PyTorch, 160 dims
                            (:mod:`mtdtl.baselines.choi`)
==========================  ===================================================================

:func:`extract_dataset` caches features on disk, keyed by the representation's ``key`` (for a
checkpoint: the sha256 of its weights file, its front end and scaler) and the dataset name, so
re-evaluation never re-extracts, and an interrupted extraction resumes where it stopped.
Unreadable (or silent) files are skipped and listed; NaN features and a checkpoint whose
front end differs from the one requested are errors. :func:`extract_files` is what
``mtdtl extract CHECKPOINT AUDIO... -o features.npy`` runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from mtdtl.constants import ARCH_IDS, CROP_FRAMES, SR
from mtdtl.device import resolve_device
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_savez, atomic_write_text
from mtdtl.log import get_logger

__all__ = [
    "SLICE_FRAMES", "UnreadableAudio", "Extractor", "ModelExtractor", "FeatureSet",
    "get_extractor", "extract_dataset", "extract_files", "load_cached",
    "slice_frames", "aggregate", "weights_file", "file_sha256",
]

log = get_logger(__name__)

#: Frames per slice (2.5 s at 22,050 Hz with hop 256; the network's input length).
SLICE_FRAMES = CROP_FRAMES


class UnreadableAudio(MtdtlError):
    """A track that cannot be used (missing, corrupt, empty or silent): skipped and listed."""


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_file(checkpoint: str | os.PathLike) -> Path:
    """The weights file of a checkpoint given as a run folder, ``model.safetensors`` or ``model.json``."""
    from mtdtl.checkpoint import checkpoint_files

    p = checkpoint_files(checkpoint)[0]
    if not p.is_file():
        raise MtdtlError(f"checkpoint not found: {checkpoint} (expected a run folder with model.safetensors, "
                         "or the path of model.safetensors / model.json)")
    return p


def _as_front_end(fe: Any):
    from mtdtl.audio import FrontEnd

    if fe is None or isinstance(fe, FrontEnd):
        return fe
    if isinstance(fe, dict):
        return FrontEnd.from_dict(fe)
    raise MtdtlError(f"front_end must be a mtdtl.audio.FrontEnd or its dict, got {type(fe).__name__}")


def slice_frames(S: torch.Tensor, *, n_frames: int = SLICE_FRAMES) -> torch.Tensor:
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


class ModelExtractor(Extractor):
    """Features of a representation network: mean ‖ std of fc-features over 2.5 s slices.

    Parameters
    ----------
    model : torch.nn.Module
        Has ``features(x)`` with ``x [shape=(batch, 2, 216, n_mels)]`` → ``(batch, feature_dim)``
        and ``feature_dim``.
    front_end : mtdtl.audio.FrontEnd or dict
        The spectrogram parameters the model was trained with.
    scaler_mean, scaler_std : array [shape=(n_mels,)]
        Per-mel-band standardisation fit on the training split.
    name : str
        Readable id.
    key : str, optional
        Cache identity; by default a hash of the model's tensors, front end and scaler.
    batch_size : int
        Slices per forward pass.
    device : str or torch.device, optional
        ``None``: CUDA when present, else CPU.
    max_seconds_in_memory : float
        Tracks longer than this are streamed in blocks.
    prefetch : int
        Tracks decoded ahead in a background thread (0: decode in the calling thread).
    optimize : bool
        On CPU, run an inference-optimised copy of the network: batch norm folded into the
        convolutions, dropout removed, oneDNN (mkldnn) layout between layers
        (:func:`torch.fx.experimental.optimization.optimize_for_inference`); about 1.5x faster
        than eager PyTorch in channels-last layout here. The copy is checked against the eager
        network on a random batch (same numbers within 1e-4); where tracing or the check fails,
        the eager network runs in channels-last memory format instead.
    """

    def __init__(self, model: torch.nn.Module, *, front_end: Any, scaler_mean: Any, scaler_std: Any,
                 name: str = "model", key: str | None = None, batch_size: int = 256,
                 device: str | torch.device | None = None, max_seconds_in_memory: float = 600.0,
                 prefetch: int = 2, optimize: bool = True, meta: dict | None = None):
        from mtdtl.audio import MelSpectrogramDB

        if not hasattr(model, "features") or not hasattr(model, "feature_dim"):
            raise MtdtlError(f"{type(model).__name__} has no features()/feature_dim: not a representation network")
        self.front_end = _as_front_end(front_end)
        fe = self.front_end
        self.mel = MelSpectrogramDB(fe)
        mean = np.asarray(scaler_mean, dtype=np.float32).reshape(-1)
        std = np.asarray(scaler_std, dtype=np.float32).reshape(-1)
        if mean.shape != (fe.n_mels,) or std.shape != (fe.n_mels,):
            raise MtdtlError(f"scaler mean/std must have {fe.n_mels} values (one per mel band), got "
                             f"{mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise MtdtlError("scaler has NaN/inf values or a non-positive std; the checkpoint's scaler is broken")
        self.model = model.eval()
        self.optimize = bool(optimize)
        self.set_device(device)
        self.mean = torch.from_numpy(mean).to(self.device)
        self.std = torch.from_numpy(std).to(self.device)
        self.name, self.meta = name, dict(meta or {})
        self.feature_dim = int(model.feature_dim)
        self.dim = 2 * self.feature_dim
        self.sample_rate = int(fe.sr)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise MtdtlError(f"batch_size must be >= 1, got {batch_size}")
        self.max_seconds_in_memory = float(max_seconds_in_memory)
        self.stream_block_slices = 64  # slices per block when streaming a long file
        self.prefetch = int(prefetch)
        self.key = key or self._hash_model(mean, std)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, *, front_end: Any = None, **kw) -> "ModelExtractor":
        """Extractor of a trained network saved by :func:`mtdtl.checkpoint.save_checkpoint`.

        ``front_end``, when given, is the front end the caller expects (e.g. that of the
        features being compared); a checkpoint trained with another one is an error.
        """
        from mtdtl.checkpoint import load_checkpoint

        wf = weights_file(checkpoint)
        model, meta = load_checkpoint(checkpoint, map_location="cpu")
        fe, mean, std = _front_end_and_scaler(meta, checkpoint)
        _check_front_end(fe, front_end, what=f"checkpoint {checkpoint}")
        sha = file_sha256(wf)
        key = _hash_parts(sha, json.dumps(fe.to_dict(), sort_keys=True), mean, std)
        name = kw.pop("name", None) or _checkpoint_name(meta, Path(checkpoint))
        meta = {**{k: meta[k] for k in ("arch", "sources", "width") if k in meta},
                "checkpoint": str(Path(checkpoint).resolve()), "weights_sha256": sha}
        return cls(model, front_end=fe, scaler_mean=mean, scaler_std=std, name=name, key=key, meta=meta, **kw)

    def describe(self) -> dict:
        return {**super().describe(), **self.meta, "feature_dim": self.feature_dim}

    def set_device(self, device: str | torch.device | None) -> None:
        """Move the extractor to ``device`` (``None``: CUDA when present) and pick how the network runs."""
        self.device = resolve_device(device)
        self.model = self.model.to(self.device)
        self.mel = self.mel.to(self.device)
        if hasattr(self, "mean"):
            self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
        self._runner_cache = None  # built on first use (tracing costs a moment)

    @property
    def _net(self):
        if self._runner_cache is None:
            self._runner_cache = self._runner()
        return self._runner_cache

    def _runner(self):
        """The callable that maps scaled slices to fc-features on this device."""
        if self.device.type != "cpu":
            return self.model.features
        if self.optimize:
            try:
                return _optimized_for_cpu(self.model, (2, SLICE_FRAMES, self.front_end.n_mels))
            except Exception as e:  # tracing or the numeric check failed: eager, channels-last
                log.debug("inference optimisation of %s not used (%s)", type(self.model).__name__, e)
        self.model = self.model.to(memory_format=torch.channels_last)
        return lambda x: self.model.features(x.contiguous(memory_format=torch.channels_last))

    def _hash_model(self, mean: np.ndarray, std: np.ndarray) -> str:
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return _hash_parts(h.hexdigest(), json.dumps(self.front_end.to_dict(), sort_keys=True), mean, std)

    # -- the network on slices --
    @torch.inference_mode()
    def slice_features(self, S: torch.Tensor) -> torch.Tensor:
        """fc-features of raw dB slices.

        Parameters
        ----------
        S : torch.Tensor [shape=(n, 2, 216, n_mels)]
            Unscaled dB windows (any device).

        Returns
        -------
        torch.Tensor [shape=(n, feature_dim)] float32, on the extractor's device
        """
        out = []
        for i in range(0, S.shape[0], self.batch_size):
            out.append(self._net(self.scale(S[i:i + self.batch_size])).float())
        if not out:
            return torch.zeros(0, self.feature_dim, device=self.device)
        return torch.cat(out)

    @torch.inference_mode()
    def spectrogram(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw dB mel spectrogram ``(2, n_frames, n_mels)`` of a stereo waveform, at least one slice long."""
        from mtdtl.audio import pad_to_min_frames

        t = torch.as_tensor(y, dtype=torch.float32).to(self.device)
        S = self.mel(t[None])[0]
        if S.shape[1] < SLICE_FRAMES:  # short-clip policy of the audio module
            S = torch.from_numpy(pad_to_min_frames(S.cpu().numpy(), min_frames=SLICE_FRAMES,
                                                   front_end=self.front_end)).to(self.device)
        return S

    def slices(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw dB slices ``(n_slices, 2, 216, n_mels)`` of a stereo waveform (one piece)."""
        return slice_frames(self.spectrogram(y))

    def _extract_waveform(self, y: np.ndarray) -> np.ndarray:
        return aggregate(self.slice_features(self.slices(y)).double().cpu().numpy())

    # -- many tracks --
    def scale(self, S: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Standardise raw dB slices with the per-mel-band scaler: ``(S - mean) / std``.

        Computed as one fused ``S * (1/std) - mean/std`` pass, into ``out`` when given.
        """
        inv = 1.0 / self.std
        return torch.addcmul(-self.mean * inv, S.to(self.device, torch.float32), inv, out=out)

    def _prepare(self, item: Any) -> Any:
        """Runs ahead in a background thread: decode, and on the CPU also the mel slices.

        Returns raw dB slices (CPU), a waveform (to be transformed on the GPU), or a marker
        that the file is long and must be streamed.
        """
        if isinstance(item, (str, os.PathLike)):
            dur = _duration(item)
            if dur is not None and dur > self.max_seconds_in_memory:
                return _Stream(Path(item))
        y = self._load(item)
        return self.slices(y) if self.device.type == "cpu" else y

    def _chunks(self, prepared: Any) -> Iterator[torch.Tensor]:
        """Raw dB slices of one prepared item, in one piece or block by block."""
        if isinstance(prepared, _Stream):
            yield from self._stream_slices(prepared.path)
        elif isinstance(prepared, torch.Tensor):
            yield prepared
        else:
            yield self.slices(prepared)

    def extract_many(self, items: Sequence[Any], *, progress: bool = False) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, [mean ‖ std])`` per item in order, or ``(i, UnreadableAudio)``.

        Slices of consecutive tracks are scaled into one preallocated batch of ``batch_size``
        slices; the network runs on full batches (and on the rest at the end). At most one
        batch plus the slices of about ``prefetch + 1`` tracks (or one block of a streamed
        file) are held at any time.
        """
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=self.name, disable=not progress, unit="track")
        B, d = self.batch_size, self.feature_dim
        xbuf = None
        owner = np.empty(B, dtype=np.int64)
        pos = 0
        acc: dict[int, list] = {}
        ended: list[int] = []

        def run() -> None:
            nonlocal pos
            if pos:
                with torch.inference_mode():
                    F = self._net(xbuf[:pos]).double().cpu()
                own = torch.from_numpy(owner[:pos])
                for i in np.unique(owner[:pos]).tolist():
                    rows = F[own == i]
                    a = acc[i]
                    a[0] += rows.sum(0)
                    a[1] += (rows * rows).sum(0)
                    a[2] += rows.shape[0]
                pos = 0

        def finished() -> Iterator[tuple[int, Any]]:
            while ended:
                i = ended.pop(0)
                s, ss, n = acc.pop(i)
                mean = s / n
                std = (ss / n - mean * mean).clamp_min(0).sqrt()
                bar.update(1)
                yield i, torch.cat([mean, std]).numpy().astype(np.float32)

        for i, prepared in self._prefetched(items):
            if isinstance(prepared, UnreadableAudio):
                run()
                yield from finished()
                bar.update(1)
                yield i, prepared
                continue
            acc[i] = [torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64), 0]
            try:
                for x in self._chunks(prepared):
                    if xbuf is None:
                        xbuf = torch.empty((B, *x.shape[1:]), dtype=torch.float32, device=self.device)
                    off = 0
                    while off < x.shape[0]:
                        take = min(B - pos, x.shape[0] - off)
                        self.scale(x[off:off + take], out=xbuf[pos:pos + take])
                        owner[pos:pos + take] = i
                        pos, off = pos + take, off + take
                        if pos == B:
                            run()
                            yield from finished()
            except UnreadableAudio as e:  # a streamed file failing half-way: drop its rows
                keep = owner[:pos] != i
                n_keep = int(keep.sum())
                if n_keep < pos:
                    xbuf[:n_keep] = xbuf[:pos][torch.from_numpy(keep).to(self.device)]
                    owner[:n_keep] = owner[:pos][keep]
                    pos = n_keep
                acc.pop(i)
                run()
                yield from finished()
                bar.update(1)
                yield i, e
                continue
            ended.append(i)
        run()
        yield from finished()
        bar.close()

    def _prefetched(self, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        def prep(it):
            try:
                return self._prepare(it)
            except UnreadableAudio as e:
                return e

        if self.prefetch <= 0:
            for i, it in enumerate(items):
                yield i, prep(it)
            return
        # Build the network runner before the decode thread starts: tracing it with torch.fx
        # patches nn.Module.__call__ process-wide, and the decode thread's mel module called
        # during the trace fails ("module is not installed as a submodule").
        self._net
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtdtl-decode") as ex:
            q: deque = deque()
            it = iter(enumerate(items))
            for i, item in it:
                q.append((i, ex.submit(prep, item)))
                if len(q) > self.prefetch:
                    break
            while q:
                i, fut = q.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    q.append((nxt[0], ex.submit(prep, nxt[1])))
                yield i, fut.result()

    # -- long files, in blocks --
    def _stream_slices(self, path: Path) -> Iterator[torch.Tensor]:
        """Slices of a long file, block by block, equal to the one-piece path.

        Pass 1 finds the loudest mel bin (which sets the ``top_db`` floor) and the peak sample
        (silence check); pass 2 computes the same blocks again and cuts them into slices.
        """
        from mtdtl.audio import SILENCE_THRESHOLD_DB

        fe = self.front_end
        block = self.stream_block_slices * SLICE_FRAMES
        peak_db, peak = -np.inf, 0.0
        for S, y_peak in self._raw_db_blocks(path, block):
            peak_db = max(peak_db, float(S.max()))
            peak = max(peak, y_peak)
        if not peak > 10.0 ** (SILENCE_THRESHOLD_DB / 20.0):
            raise UnreadableAudio(f"{path} is silent (peak below {SILENCE_THRESHOLD_DB} dBFS)")
        floor = peak_db - fe.top_db if fe.top_db is not None else -np.inf
        for S, _ in self._raw_db_blocks(path, block):
            S = torch.clamp_min(S, floor) if fe.top_db is not None else S
            sl = slice_frames(S)
            if sl.shape[0]:
                yield sl

    @torch.inference_mode()
    def _raw_db_blocks(self, path: Path, block_frames: int) -> Iterator[tuple[torch.Tensor, float]]:
        """``(S_block, peak)``: dB mel (no floor) of consecutive blocks of frames of a file.

        Frame ``t`` of the whole (centred, zero-padded) signal covers samples
        ``[t*hop - n_fft/2, t*hop + n_fft/2)``; each block is computed un-centred from exactly
        those samples, so blocks join into the one-piece spectrogram.
        """
        import soundfile as sf
        import soxr

        from mtdtl.audio import MelSpectrogramDB, downmix

        fe = self.front_end
        if not fe.center or fe.pad_mode != "constant":
            raise MtdtlError("streaming long files needs center=True with zero padding; raise max_seconds_in_memory")
        raw = MelSpectrogramDB(dataclasses.replace(fe, center=False, top_db=None)).to(self.device)
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
                    S = raw(torch.from_numpy(np.ascontiguousarray(seg)).to(self.device)[None])[0]
                    yield S, float(np.abs(seg).max())
                    t0 = t1
                    drop = t0 * hop - half - start
                    buf, start = buf[:, drop:], start + drop
                if eof:
                    return


class _Stream(NamedTuple):
    path: Path


class _Features(torch.nn.Module):
    """``model.features`` as a module's ``forward`` (what torch.fx traces)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def _optimized_for_cpu(model: torch.nn.Module, shape: tuple[int, ...]):
    """An inference-optimised copy of ``model.features`` for the CPU, checked numerically.

    ``shape`` is one input slice, ``(2, 216, n_mels)``.
    """
    import warnings

    with warnings.catch_warnings():  # torch.utils.mkldnn still uses torch.jit.script_method
        warnings.simplefilter("ignore")
        from torch.fx.experimental.optimization import optimize_for_inference

        fast = optimize_for_inference(_Features(model).eval())
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, got = model.features(x), fast(x)
    if got.shape != ref.shape or not torch.allclose(got, ref, rtol=1e-4, atol=1e-4):
        raise MtdtlError(f"optimised network differs from the eager one by {float((got - ref).abs().max()):.2e}")
    return fast


def _duration(path: Any) -> float | None:
    """Duration in seconds from the file header (None when soundfile cannot tell)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / float(info.samplerate) if info.frames > 0 else None
    except Exception:
        return None


def _hash_parts(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p, dtype=np.float32).tobytes())
        else:
            h.update(str(p).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _front_end_and_scaler(meta: dict, where: Any):
    """Front end and scaler (mean, std per mel band) from a checkpoint's metadata."""
    fe = meta.get("front_end")
    if fe is None:
        raise MtdtlError(f"checkpoint {where} has no front-end parameters in its metadata; re-save it with mtdtl")
    sc = meta.get("scaler")
    if isinstance(sc, dict):
        mean, std = sc.get("mean"), sc.get("std", sc.get("scale"))
    else:
        mean, std = meta.get("scaler_mean"), meta.get("scaler_std")
    if mean is None or std is None:
        raise MtdtlError(f"checkpoint {where} has no input scaler (mean/std per mel band) in its metadata")
    return _as_front_end(fe), np.asarray(mean, np.float32), np.asarray(std, np.float32)


def _check_front_end(actual, requested: Any, *, what: str) -> None:
    requested = _as_front_end(requested)
    if requested is not None:
        requested.check_compatible(actual, what=f"{what}: front end requested vs the checkpoint's")


def _checkpoint_name(meta: dict, path: Path) -> str:
    arch = meta.get("arch")
    srcs = meta.get("sources")
    if arch and srcs:
        return f"{arch}[{'+'.join(srcs)}]"
    return path.stem if path.is_file() else path.name


# ---------------------------------------------------------------------------------------
# The registry of representations
# ---------------------------------------------------------------------------------------

_SPEC_HELP = ("'mfcc', 'choi:<path to model_best.hdf5>', 'rand:<arch>[:<source>,...]', "
              "'rand:<checkpoint>', or the path of a checkpoint (run folder, model.safetensors, model.json)")


def get_extractor(spec: Any, **kw) -> Extractor:
    """Build the :class:`Extractor` a spec names (see the module docstring for the specs).

    Parameters
    ----------
    spec : str, Path or Extractor
        ``"mfcc"``, ``"choi:<hdf5>"``, ``"rand:<arch>[:<sources>]"``, ``"rand:<checkpoint>"``
        or a checkpoint path; an :class:`Extractor` is returned as is.
    **kw
        Passed to the extractor: e.g. ``batch_size``, ``device``, ``front_end`` (checkpoints:
        the front end expected), ``seed`` and ``width`` (Rand), ``scaler`` (Rand from an arch).

    Returns
    -------
    Extractor
    """
    if isinstance(spec, Extractor):
        return spec
    if isinstance(spec, os.PathLike):
        return ModelExtractor.from_checkpoint(spec, **kw)
    if not isinstance(spec, str) or not spec:
        raise MtdtlError(f"unknown representation {spec!r}; use {_SPEC_HELP}")
    if spec == "mfcc":
        from mtdtl.baselines.mfcc import MFCCExtractor

        return MFCCExtractor(**kw)
    if spec.startswith("choi:"):
        from mtdtl.baselines.choi import ChoiExtractor

        return ChoiExtractor(spec[5:], **kw)
    if spec.startswith("rand:"):
        from mtdtl.baselines.rand import rand_extractor

        rest = spec[5:]
        head, _, tail = rest.partition(":")
        if head in ARCH_IDS:
            return rand_extractor(head, tuple(s for s in tail.split(",") if s) or None, **kw)
        return rand_extractor(checkpoint=rest, **kw)
    if Path(spec).exists():
        return ModelExtractor.from_checkpoint(spec, **kw)
    raise MtdtlError(f"unknown representation {spec!r} (not a known name and no such checkpoint); use {_SPEC_HELP}")


# ---------------------------------------------------------------------------------------
# Dataset extraction with an on-disk cache
# ---------------------------------------------------------------------------------------


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
                    **kw) -> FeatureSet:
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
    (folder / "parts").mkdir(parents=True, exist_ok=True)
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

        for j, v in ex.extract_many([paths[i] for i in todo], progress=progress):
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


def extract_files(checkpoint: Any, audio_paths: Iterable[Any], *, out: str | os.PathLike,
                  batch_size: int = 256, device: Any = None, progress: bool = True) -> list[str]:
    """Features of audio files from a checkpoint (or any representation spec) into one ``.npy``.

    Rows follow ``audio_paths``. A file that cannot be read (or is silent) gets a row of NaN
    and is named in a warning; the function returns the list of such paths. The output is
    written atomically. This is ``mtdtl extract CHECKPOINT AUDIO... -o features.npy``.

    Parameters
    ----------
    checkpoint : path or spec
        A checkpoint (run folder, ``model.safetensors`` or ``model.json``), or any spec of
        :func:`get_extractor` (``"mfcc"``, ``"choi:<hdf5>"``, ...).
    audio_paths : iterable of paths
    out : path
        Output ``.npy`` file, float32 ``(n_files, dim)``.
    batch_size : int
        Slices per forward pass.
    device : str, optional
        ``"cuda"`` or ``"cpu"``; ``None``: CUDA when present.
    progress : bool
        tqdm bar.

    Returns
    -------
    list of str
        The files that could not be read.
    """
    paths = [str(p) for p in audio_paths]
    if not paths:
        raise MtdtlError("no audio files given")
    spec = checkpoint
    if isinstance(checkpoint, (os.PathLike, str)):
        spec = str(checkpoint)
        if spec != "mfcc" and not spec.startswith(("rand:", "choi:")):
            weights_file(checkpoint)  # a clear error for a missing checkpoint before anything else
            spec = Path(checkpoint)
    ex = get_extractor(spec, batch_size=batch_size, device=device)
    X = np.full((len(paths), ex.dim), np.nan, dtype=np.float32)
    bad: list[str] = []
    for i, v in ex.extract_many(paths, progress=progress):
        if isinstance(v, UnreadableAudio):
            log.warning("could not use %s: %s (its row is NaN)", paths[i], v)
            bad.append(paths[i])
        else:
            _check_finite(v[None], [paths[i]], ex.name)
            X[i] = v
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp.npy")
    np.save(tmp, X)
    os.replace(tmp, out)
    if bad:
        log.warning("%d of %d files could not be read; their rows in %s are NaN", len(bad), len(paths), out)
    return bad
