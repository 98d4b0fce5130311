"""A trained (or untrained) network as a representation: :class:`ModelExtractor` (Section 4.4.1).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from mtdtl.device import cpu_has_bf16, resolve_device, retain_cpu_memory
from mtdtl.errors import MtdtlError
from mtdtl.features.base import SLICE_FRAMES, UnreadableAudio, Extractor, slice_frames, aggregate, _hash_parts
from mtdtl.audio import as_front_end as _as_front_end, stream_slices
from mtdtl.checkpoint import weights_file, front_end_and_scaler as _front_end_and_scaler, check_front_end as _check_front_end, checkpoint_name as _checkpoint_name
from mtdtl.log import get_logger
from mtdtl.store.targets import StoredClip, WriteThrough, slices_of_stored

log = get_logger(__name__)

#: Inference precisions of :class:`ModelExtractor` (``"auto"`` resolves to one of them).
PRECISIONS = ("fp32", "bf16")
#: Most tracks the decode thread prepares ahead of the network (bounds memory on short clips).
MAX_TRACKS_AHEAD = 64
_PRECISION_ALIASES = {"fp32": "fp32", "float32": "fp32", "float": "fp32", "bf16": "bf16", "bfloat16": "bf16"}


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA: ``is_bf16_supported``; CPU: avx512_bf16/AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has_bf16()
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 where ``device`` has it natively) → ``"fp32"`` | ``"bf16"``.

    bf16 on a CPU without native bf16 is honoured with a warning (it is emulated: ~9x slower
    than fp32 measured on an AVX2 EPYC); on a CUDA card without bf16 it is an error.
    """
    key = str(precision).strip().lower()
    if key == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if key not in _PRECISION_ALIASES:
        raise MtdtlError(f"precision={precision!r}: use 'fp32', 'bf16' or 'auto'")
    p = _PRECISION_ALIASES[key]
    if p == "bf16" and not bf16_supported(device):
        if device.type == "cuda":
            raise MtdtlError(f"precision='bf16' asked for, but {torch.cuda.get_device_name(device)} has no bf16: "
                             "use precision='fp32'")
        log.warning("bf16 inference on %s without native bf16 (avx512_bf16/AMX): it is emulated and much slower "
                    "than fp32", device)
    return p


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
        Tracks decoded ahead in a background thread beyond those that fill the next batch
        (0: decode in the calling thread). The thread runs up to about one batch of slices
        ahead (:data:`MAX_TRACKS_AHEAD` tracks at most), so decode and mel overlap the whole
        forward pass of a batch rather than the last ``prefetch`` tracks of it.
    decode_workers : int, optional
        Threads that decode tracks and compute their mel ahead of the network, on the CPU, when
        some tracks are not read from a target store. Default: a third of torch's threads (at
        least 1); the network runs on the remaining threads meanwhile (at least 1), so the two
        do not fight over cores. Torch's thread count is restored afterwards.
    optimize : bool
        On CPU, run an inference-optimised copy of the network: batch norm folded into the
        convolutions, dropout removed, oneDNN (mkldnn) layout between layers
        (:func:`torch.fx.experimental.optimization.optimize_for_inference`); about 1.5x faster
        than eager PyTorch in channels-last layout here. The copy is checked against the eager
        network on a random batch (same numbers within 1e-4); where tracing or the check fails,
        the eager network runs in channels-last memory format instead.
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of the network (the front end and the scaler stay float32). ``"bf16"``: batch
        norm folded into the convolutions, channels-last, under bf16 autocast (CPU or CUDA);
        ``"auto"``: bf16 where the device has it natively (CPU: avx512_bf16/AMX), else fp32.
        The resolved precision is part of :attr:`key` (fp32 keeps the plain key, so existing
        feature caches stay valid) and of :meth:`describe`. Default fp32.
    """

    def __init__(self, model: torch.nn.Module, *, front_end: Any, scaler_mean: Any, scaler_std: Any,
                 name: str = "model", key: str | None = None, batch_size: int = 256,
                 device: str | torch.device | None = None, max_seconds_in_memory: float = 600.0,
                 prefetch: int = 2, optimize: bool = True, meta: dict | None = None, precision: str = "fp32",
                 decode_workers: int | None = None):
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
        retain_cpu_memory()  # each batch frees and re-allocates the same activations (mtdtl.device)
        self.optimize = bool(optimize)
        self.precision = "fp32"
        self.set_device(device)
        self.precision = resolve_precision(precision, self.device)
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
        self.decode_workers = None if decode_workers is None else int(decode_workers)
        if self.decode_workers is not None and self.decode_workers < 1:
            raise MtdtlError(f"decode_workers must be >= 1, got {decode_workers}")
        self.key = key or self._hash_model(mean, std)
        if self.precision != "fp32":
            self.key = _hash_parts(self.key, f"precision={self.precision}")

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, *, front_end: Any = None, **kw) -> "ModelExtractor":
        """Extractor of a trained network saved by :func:`mtdtl.checkpoint.save_checkpoint`.

        ``front_end``, when given, is the front end the caller expects (e.g. that of the
        features being compared); a checkpoint trained with another one is an error.
        """
        from mtdtl.checkpoint import load_checkpoint

        weights_file(checkpoint)  # a clear error when there is none
        model, meta = load_checkpoint(checkpoint, map_location="cpu")
        fe, mean, std = _front_end_and_scaler(meta, checkpoint)
        _check_front_end(fe, front_end, what=f"checkpoint {checkpoint}")
        sha = meta["weights_sha256"]  # hashed (and verified) once, by load_checkpoint
        key = _hash_parts(sha, json.dumps(fe.to_dict(), sort_keys=True), mean, std)
        name = kw.pop("name", None) or _checkpoint_name(meta, Path(checkpoint))
        meta = {**{k: meta[k] for k in ("arch", "sources", "width") if k in meta},
                "checkpoint": str(Path(checkpoint).resolve()), "weights_sha256": sha}
        return cls(model, front_end=fe, scaler_mean=mean, scaler_std=std, name=name, key=key, meta=meta, **kw)

    def describe(self) -> dict:
        return {**super().describe(), **self.meta, "feature_dim": self.feature_dim, "precision": self.precision}

    def set_device(self, device: str | torch.device | None) -> None:
        """Move the extractor to ``device`` (``None``: CUDA when present) and pick how the network runs."""
        self.device = resolve_device(device)
        if self.precision == "bf16" and self.device.type == "cuda" and not bf16_supported(self.device):
            raise MtdtlError(f"this extractor runs in bf16, which {self.device} does not support: build it with "
                             "precision='fp32'")
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
        if self.precision == "bf16":
            return _bf16_runner(self.model, self.device,
                                (2, SLICE_FRAMES, self.front_end.n_mels) if self.optimize else None)
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

        S = self._mel_raw(y)
        if S.shape[1] < SLICE_FRAMES:  # short-clip policy of the audio module
            S = torch.from_numpy(pad_to_min_frames(S.cpu().numpy(), min_frames=SLICE_FRAMES,
                                                   front_end=self.front_end)).to(self.device)
        return S

    @torch.inference_mode()
    def _mel_raw(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        """dB mel ``(2, n_frames, n_mels)`` of a stereo waveform, unpadded."""
        return self.mel(torch.as_tensor(y, dtype=torch.float32).to(self.device)[None])[0]

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
        out_dtype = torch.float32 if self.device.type == "cpu" else None  # GPU: move float16, scale there
        if isinstance(item, StoredClip):  # raw dB slices from a target store (float16 on disk)
            return item.raw_slices(out_dtype)
        if isinstance(item, WriteThrough):  # compute once, write into the target store, use the stored values
            stat = item.source_stat()
            y = self._load(item.path)
            T = item.put(self._mel_raw(y).cpu().numpy(), n_samples=int(y.shape[1]), source_stat=stat)
            return slices_of_stored(T, out_dtype)
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
        batch plus the slices of about one more batch and ``prefetch + 1`` tracks (or one block
        of a streamed file) are held at any time.
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

    def _cpu_split(self, items: Sequence[Any]) -> tuple[int, int | None]:
        """Decode threads, and torch threads for the network while they run (``None``: unchanged).

        On the CPU, when tracks need decoding and a mel (not all read from a target store), the
        decode threads get cores of their own: with the network's OpenMP threads on every core
        beside a busy decode thread, each forward pass waited for the descheduled thread and cold
        extraction ran slower than doing the two one after the other.
        """
        if self.device.type != "cpu" or all(isinstance(it, StoredClip) for it in items):
            return 1, None
        threads = max(1, torch.get_num_threads())
        workers = int(self.decode_workers) if self.decode_workers else max(1, threads // 3)
        return workers, max(1, threads - workers)

    def _prefetched(self, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from mtdtl.audio import fft_workers

        def prep(it):
            try:
                return self._prepare(it)
            except UnreadableAudio as e:
                return e

        def prep_ahead(it):  # in a decode thread, beside the network: one FFT worker
            with fft_workers(1):
                return prep(it)

        if self.prefetch <= 0:
            for i, it in enumerate(items):
                yield i, prep(it)
            return
        if self.device.type == "cpu" and items and all(isinstance(it, StoredClip) for it in items):
            yield from self._warm_inline(items, prep)
            return
        # Build the network runner before the decode thread starts: tracing it with torch.fx
        # patches nn.Module.__call__ process-wide, and the decode thread's mel module called
        # during the trace fails ("module is not installed as a submodule").
        self._net
        workers, net_threads = self._cpu_split(items)
        threads_before = torch.get_num_threads()
        if net_threads is not None:
            torch.set_num_threads(net_threads)
        try:
            yield from self._run_ahead(items, prep_ahead, workers)
        finally:
            if net_threads is not None:
                torch.set_num_threads(threads_before)

    def _warm_inline(self, items: Sequence[Any], prep) -> Iterator[tuple[int, Any]]:
        """Warm extraction on the CPU: every clip read from a target store, in the calling thread.

        Copying a clip's slices out of the store costs less than handing them over from a
        decode thread (GIL switches, and a busy thread beside the network's OpenMP threads):
        ``benchmarks/bench_extract.py`` measures warm against the network alone. The disk still
        reads ahead: the kernel is asked for the pages of the clips up to two batches ahead
        (``MADV_WILLNEED``), so they are in the page cache when their turn comes.
        """
        hinted = ahead = 0  # next clip to hint; slices hinted but not yet consumed
        for i, it in enumerate(items):
            while hinted < len(items) and (hinted <= i or ahead < 2 * self.batch_size):
                items[hinted].will_need()
                ahead += max(1, items[hinted].n_slices)
                hinted += 1
            ahead -= max(1, it.n_slices)
            yield i, prep(it)

    def _run_ahead(self, items: Sequence[Any], prep, workers: int) -> Iterator[tuple[int, Any]]:
        """``(i, prep(item))`` in order, ``prep`` running ahead in ``workers`` threads.

        How far ahead: enough tracks to fill one batch (from the slices per track seen so far;
        only ``prefetch`` before any is seen, so long tracks never pile up), plus ``prefetch``.
        With only ``prefetch`` tracks ahead the decode thread idled while the network ran on a
        full batch, and cold extraction was little faster than decoding, computing the mel and
        running the network one after the other.
        """
        seen_tracks = seen_slices = 0

        def depth() -> int:
            if not seen_tracks:
                return self.prefetch
            per_track = max(seen_slices / seen_tracks, 1.0)
            return min(MAX_TRACKS_AHEAD, self.prefetch + math.ceil(self.batch_size / per_track))

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mtdtl-decode") as ex:
            q: deque = deque()
            it = iter(enumerate(items))
            done = False

            def top_up() -> None:
                nonlocal done
                while not done and len(q) <= depth():
                    nxt = next(it, None)
                    if nxt is None:
                        done = True
                        return
                    q.append((nxt[0], ex.submit(prep, nxt[1])))

            top_up()
            while q:
                i, fut = q.popleft()
                prepared = fut.result()
                n = _n_slices(prepared, self.front_end)
                if n:
                    seen_tracks += 1
                    seen_slices += n
                top_up()
                yield i, prepared

    # -- long files, in blocks --

    def _stream_slices(self, path: Path) -> Iterator[torch.Tensor]:
        """Slices of a long file, block by block (:func:`mtdtl.audio.stream_slices`)."""
        return stream_slices(path, self.front_end, device=self.device, block_slices=self.stream_block_slices)


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


def _bf16_graph_for_cpu(model: torch.nn.Module, shape: tuple[int, ...]):
    """The inference-optimised oneDNN graph of :func:`_optimized_for_cpu` with bf16 weights and
    activations (float32 in, bf16 out), checked against the eager float32 network.

    ``optimize_for_inference`` only converts float32 modules, so the float32 graph is built
    first, then its oneDNN convolutions and linear layers are rebuilt in bf16 and the input's
    conversion to the oneDNN layout asks for bf16.
    """
    import warnings

    import torch.utils.mkldnn as mkldnn

    def dense_copy(m, dense: torch.nn.Module) -> torch.nn.Module:
        with torch.no_grad():
            dense.weight.copy_(m.weight.to_dense())
            dense.bias.copy_(m.bias.to_dense())
        return dense

    fast = _optimized_for_cpu(model, shape)
    with warnings.catch_warnings():  # torch.utils.mkldnn still uses torch.jit.script_method
        warnings.simplefilter("ignore")
        for name, m in list(fast.named_modules()):
            new: Any
            if isinstance(m, mkldnn.MkldnnConv2d):
                w = m.weight
                new = mkldnn.MkldnnConv2d(dense_copy(m, torch.nn.Conv2d(
                    w.shape[1] * m.groups, w.shape[0], tuple(w.shape[2:]), stride=m.stride, padding=m.padding,
                    dilation=m.dilation, groups=m.groups)), torch.bfloat16)
            elif isinstance(m, mkldnn.MkldnnLinear):
                new = mkldnn.MkldnnLinear(dense_copy(m, torch.nn.Linear(m.weight.shape[1], m.weight.shape[0])),
                                          torch.bfloat16)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):  # left in the dense layout
                m.to(torch.bfloat16)
                continue
            else:
                continue
            parent, _, leaf = name.rpartition(".")
            setattr(fast.get_submodule(parent) if parent else fast, leaf, new)
    for node in fast.graph.nodes:
        if node.op == "call_method" and node.target == "to_mkldnn":
            node.args = (node.args[0], torch.bfloat16)
    fast.recompile()
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, got = model.features(x), fast(x).float()
    err = float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12)) if got.shape == ref.shape else math.inf
    if not err <= BF16_GRAPH_TOLERANCE:
        raise MtdtlError(f"bf16 oneDNN graph differs from the float32 network by {err:.2e} (relative)")
    return fast


#: Largest difference (relative to the largest feature) the bf16 oneDNN graph may have to the
#: float32 network on the check batch (bf16 autocast gives about 0.5 % on these networks).
BF16_GRAPH_TOLERANCE = 0.03


def _bf16_runner(model: torch.nn.Module, device: torch.device, shape: tuple[int, ...] | None = None):
    """``model.features`` in bf16, float32 out. On the CPU, the oneDNN graph of
    :func:`_bf16_graph_for_cpu` (faster than the float32 graph where bf16 is native: see
    docs/features_and_baselines.md, *Speed*); where it
    cannot be built or fails its check, bf16 autocast with batch norm folded into the
    convolutions (torch.fx) and channels-last activations (on CUDA: autocast)."""
    if device.type == "cpu" and shape is not None:
        try:
            graph = _bf16_graph_for_cpu(model, shape)

            def run_graph(x: torch.Tensor) -> torch.Tensor:
                return graph(x).float()

            return run_graph
        except Exception as e:
            log.debug("bf16 oneDNN graph of %s not used (%s); autocast instead", type(model).__name__, e)
    net: Any = _Features(model).eval()
    if device.type == "cpu":
        try:
            from torch.fx.experimental.optimization import fuse

            net = fuse(net)
        except Exception as e:  # tracing failed: batch norm stays a separate layer
            log.debug("batch-norm folding of %s not used (%s)", type(model).__name__, e)
        net = net.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(x).float()

    return run


def _n_slices(prepared: Any, front_end: Any) -> int:
    """Slices a prepared item holds (raw slices, or a waveform for the GPU); 0 when unknown."""
    if not isinstance(prepared, (torch.Tensor, np.ndarray)):
        return 0
    if prepared.ndim == 4:
        return int(prepared.shape[0])
    if prepared.ndim == 2 and front_end is not None:
        return max(1, (1 + int(prepared.shape[-1]) // front_end.hop) // SLICE_FRAMES)
    return 0


def _duration(path: Any) -> float | None:
    """Duration in seconds from the file header (None when soundfile cannot tell)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / float(info.samplerate) if info.frames > 0 else None
    except Exception:
        return None
