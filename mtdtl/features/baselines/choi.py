"""The *Choi* baseline: Choi et al.'s (2017) transfer convnet, ported to PyTorch.

Choi, Fazekas, Sandler & Cho, "Transfer learning for music classification and regression
tasks", ISMIR 2017 (reference [26] of the paper, Section 4.2). The published Keras 2 model
``keras2_model/model_best.hdf5`` is supplied by the user (the project does not ship it); this
module reads it with ``h5py`` only (no Keras, no TensorFlow, nothing unpickled) and rebuilds the
network layer by layer from the file's ``model_config``:

================  ============================================================================
Keras layer       PyTorch port
================  ============================================================================
Melspectrogram    :class:`KapreMelgram`: the stored DFT kernels as a strided ``conv1d`` with
                  TensorFlow ``'same'`` zero padding, |.|², the stored mel matrix, then kapre's
                  decibel step: 10·log10(max(x, 1e-10)) − max (per example), floored at −80 dB
Normalization2D   per-example standardisation over (freq, time, channel), eps 1e-10
Conv2D            ``nn.Conv2d`` 3x3, 'same' padding; kernel (kh, kw, in, out) → (out, in, kh, kw)
BatchNormalization  ``nn.BatchNorm2d`` in eval mode, eps and momentum from the config
ELU               ``nn.ELU(alpha)``
MaxPooling2D      ``nn.MaxPool2d(pool_size, strides)``, 'valid' (floor)
GlobalMaxPooling2D + Dense  the 50-tag head (kept for completeness, :meth:`ChoiConvnet.tags`)
================  ============================================================================

Tensor layout: Keras works channels-last ``(batch, freq, time, channel)``; the port uses
``(batch, channel, freq, time)``, so "height" is the 96 mel bands and "width" is time, and the
pool sizes ``(2, 4)`` etc. of the config keep their meaning (freq, time).

The transfer feature is the one of Choi's own extractor (``keras2_features.py`` in their
repository): the global average over (freq, time) of each of the five ELU outputs, concatenated
(5 x 32 = 160 dims). Input: mono audio at 12 kHz, the first 29 s, zero-padded when shorter.

Differences from the original that remain (see docs/features_and_baselines.md): decoding and
resampling use mtdtl's loader (soundfile + soxr) rather than librosa 0.5 with resampy; kapre
0.1.2's decibel step took the maximum over the whole *batch*, the port takes it per example
(identical to Choi's extractor, which feeds one track at a time).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtdtl.errors import MtdtlError
from mtdtl.features.base import Extractor
from mtdtl.log import get_logger

__all__ = [
    "CHOI_SR", "CHOI_DURATION", "CHOI_N_SAMPLES", "CHOI_FEATURE_DIM",
    "KapreMelgram", "ChoiConvnet", "ChoiExtractor", "load_choi", "read_keras_hdf5", "choi_input",
]

log = get_logger(__name__)

#: Sample rate of the Choi convnet (Hz).
CHOI_SR = 12000
#: Seconds of audio Choi's extractor feeds (the first 29 s of a track).
CHOI_DURATION = 29.0
#: Input length in samples (29 s at 12 kHz).
CHOI_N_SAMPLES = int(CHOI_DURATION * CHOI_SR)
#: Feature size: 5 layers x 32 channels.
CHOI_FEATURE_DIM = 160

# The layer classes the port knows; anything else in a model_config is an error.
_KNOWN = ("Melspectrogram", "Normalization2D", "Conv2D", "BatchNormalization", "ELU",
          "MaxPooling2D", "GlobalMaxPooling2D", "Dense")


@dataclass(frozen=True)
class KerasModelFile:
    """What :func:`read_keras_hdf5` finds in a Keras 2 ``.hdf5`` model file.

    layers : list of ``(class_name, config)`` in model order.
    weights : ``{layer_name: {weight_name: np.ndarray}}`` (e.g. ``'conv2d_1'`` → ``'kernel'``).
    attrs : file attributes (``keras_version``, ``backend``).
    """

    layers: list
    weights: dict
    attrs: dict


def read_keras_hdf5(path: str | Path) -> KerasModelFile:
    """Read a Keras 2 Sequential model file with h5py: layer configs and weights.

    Parameters
    ----------
    path : str or Path
        ``model_best.hdf5``.

    Returns
    -------
    KerasModelFile
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"Choi et al.'s model file not found: {path}. Download keras2_model/model_best.hdf5 "
                         "from github.com/keunwoochoi/transfer_learning_music and pass its path.")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()
                     if k in ("keras_version", "backend")}
            raw = f.attrs.get("model_config")
            if raw is None:
                raise MtdtlError(f"{path} has no 'model_config' attribute: not a Keras model file saved with model.save()")
            cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            if cfg.get("class_name") != "Sequential":
                raise MtdtlError(f"{path}: expected a Keras Sequential model, found {cfg.get('class_name')!r}")
            layer_cfgs = cfg["config"]
            if isinstance(layer_cfgs, dict):  # Keras >= 2.2 wraps the list in {"layers": [...]}
                layer_cfgs = layer_cfgs["layers"]
            layers = [(lc["class_name"], lc["config"]) for lc in layer_cfgs]
            mw = f["model_weights"] if "model_weights" in f else f
            weights: dict[str, dict[str, np.ndarray]] = {}
            for _, lc in layers:
                name = lc["name"]
                if name not in mw:
                    weights[name] = {}
                    continue
                g = mw[name]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
                weights[name] = {n.split("/")[-1].split(":")[0]: np.asarray(g[n]) for n in names}
    except OSError as e:
        raise MtdtlError(f"cannot read {path} with h5py ({e}); is it the Keras 2 model_best.hdf5?") from e
    return KerasModelFile(layers=layers, weights=weights, attrs=attrs)


def _tf_same_pad(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (left, right) of a strided 1-D convolution."""
    out = -(-n // stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


class KapreMelgram(nn.Module):
    """kapre 0.1's ``Melspectrogram(return_decibel_melgram=True)`` with the stored kernels.

    Parameters
    ----------
    real_kernels, imag_kernels : np.ndarray [shape=(n_dft, 1, 1, n_freq)]
        The windowed DFT kernels stored in the file (periodic Hann x cos / sin).
    freq2mel : np.ndarray [shape=(n_freq, n_mels)]
        The stored mel matrix (librosa's Slaney filterbank).
    n_hop : int
        Hop in samples.
    power_melgram : float
        Exponent applied to the power mel spectrogram (2.0: left as power).
    decibel : bool
        Apply kapre's ``amplitude_to_decibel``.
    amin, dynamic_range : float
        Floor of the power before the log, and the dB range kept below the maximum.

    Input ``(batch, n_samples)`` mono audio; output ``(batch, 1, n_mels, n_frames)``.
    """

    def __init__(self, *, real_kernels: np.ndarray, imag_kernels: np.ndarray, freq2mel: np.ndarray,
                 n_hop: int, power_melgram: float = 2.0, decibel: bool = True,
                 amin: float = 1e-10, dynamic_range: float = 80.0):
        super().__init__()
        n_dft, n_freq = real_kernels.shape[0], real_kernels.shape[-1]
        # (n_dft, 1, 1, n_freq) -> conv1d weight (n_freq, 1, n_dft); real and imaginary stacked.
        w = np.concatenate([real_kernels.reshape(n_dft, n_freq).T, imag_kernels.reshape(n_dft, n_freq).T])
        self.register_buffer("dft", torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[:, None, :])
        self.register_buffer("freq2mel", torch.from_numpy(np.ascontiguousarray(freq2mel, dtype=np.float32)))
        self.n_dft, self.n_freq, self.n_hop = n_dft, n_freq, int(n_hop)
        self.power_melgram, self.decibel = float(power_melgram), bool(decibel)
        self.amin, self.dynamic_range = float(amin), float(dynamic_range)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        left, right = _tf_same_pad(y.shape[-1], self.n_dft, self.n_hop)
        z = F.conv1d(F.pad(y[:, None, :], (left, right)), self.dft, stride=self.n_hop)  # (B, 2F, T)
        power = z[:, : self.n_freq] ** 2 + z[:, self.n_freq:] ** 2                     # (B, F, T)
        mel = torch.einsum("bft,fm->bmt", power, self.freq2mel)                          # (B, M, T)
        if self.power_melgram != 2.0:
            mel = mel.sqrt() ** self.power_melgram
        if self.decibel:
            db = 10.0 * torch.log10(mel.clamp_min(self.amin))
            db = db - db.amax(dim=(1, 2), keepdim=True)
            mel = db.clamp_min(-self.dynamic_range)
        return mel[:, None]


class _SampleNorm(nn.Module):
    """kapre's ``Normalization2D(str_axis='data_sample')``: (x − mean) / (std + eps) per example."""

    def __init__(self, eps: float = 1e-10):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.ndim))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)  # K.std: population std
        return (x - mean) / (std + self.eps)


class ChoiConvnet(nn.Module):
    """Choi et al. (2017)'s five-layer convnet (built by :func:`load_choi`).

    ``forward(y)`` and :meth:`features` take mono 12 kHz audio ``(batch, n_samples)`` and return
    the 160-dim transfer feature ``(batch, 160)``: the time-frequency average of each ELU output,
    layers 1..5 concatenated. :meth:`tags` gives the 50 tag probabilities of the original head.
    """

    def __init__(self, melgram: KapreMelgram, norm: nn.Module | None, blocks: nn.ModuleList,
                 head: nn.Linear | None, *, source: str = "", sha256: str = ""):
        super().__init__()
        self.melgram, self.norm, self.blocks, self.head = melgram, norm, blocks, head
        self.source, self.sha256 = source, sha256
        self.feature_dim = sum(b.conv.out_channels for b in blocks)

    def _trunk(self, y: torch.Tensor, *, last_pool: bool = True):
        x = self.melgram(y)
        if self.norm is not None:
            x = self.norm(x)
        feats = []
        for k, b in enumerate(self.blocks):
            x = b.act(b.bn(b.conv(x)))
            feats.append(x.mean(dim=(2, 3)))   # GlobalAveragePooling2D of elu_k
            if last_pool or k < len(self.blocks) - 1:
                x = b.pool(x)
        return x, feats

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """Transfer feature ``(batch, 160)`` of mono 12 kHz audio ``(batch, n_samples)``.

        Needs at least 320 STFT frames (about 6.8 s): the first four poolings divide time by 320.
        """
        return torch.cat(self._trunk(y, last_pool=False)[1], dim=1)

    forward = features

    def tags(self, y: torch.Tensor) -> torch.Tensor:
        """Tag probabilities ``(batch, 50)`` of the original tagging head (global max + sigmoid)."""
        if self.head is None:
            raise MtdtlError("this Choi model file has no Dense tagging head")
        x, _ = self._trunk(y)
        return torch.sigmoid(self.head(x.amax(dim=(2, 3))))


class _Block(nn.Module):
    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: nn.Module, pool: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act, self.pool = conv, bn, act, pool


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise MtdtlError(f"Choi model file does not match the expected network: {msg}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_choi(path: str | Path, *, map_location: str | torch.device = "cpu") -> ChoiConvnet:
    """Build the PyTorch port of Choi et al.'s convnet from ``model_best.hdf5``.

    Every layer of the file's ``model_config`` is mapped (an unknown layer class is an error),
    every stored weight is used exactly once and checked against the shape the config implies.

    Parameters
    ----------
    path : str or Path
        The Keras 2 model file (``keras2_model/model_best.hdf5`` of Choi et al.'s release).
    map_location : str or torch.device
        Device of the returned model.

    Returns
    -------
    ChoiConvnet
        In eval mode, gradients off.
    """
    path = Path(path)
    mf = read_keras_hdf5(path)
    used: set[tuple[str, str]] = set()

    def w(layer: str, name: str, shape: tuple) -> np.ndarray:
        arr = mf.weights.get(layer, {}).get(name)
        _need(arr is not None, f"layer {layer!r} has no weight {name!r}")
        _need(tuple(arr.shape) == tuple(shape), f"{layer}/{name} has shape {arr.shape}, config implies {shape}")
        used.add((layer, name))
        return arr.astype(np.float32)

    unknown = [cls for cls, _ in mf.layers if cls not in _KNOWN]
    _need(not unknown, f"unknown layer classes {unknown}; the port knows {list(_KNOWN)}")

    melgram = norm = head = None
    blocks: list[_Block] = []
    pending: dict = {}
    in_ch = 1
    spatial_seen = False
    for cls, cfg in mf.layers:
        name = cfg["name"]
        if cls == "Melspectrogram":
            _need(melgram is None, "more than one Melspectrogram layer")
            _need(cfg.get("image_data_format", "channels_last") == "channels_last", "melgram must be channels_last")
            _need(cfg.get("padding", "same") == "same", "melgram padding must be 'same'")
            _need(float(cfg.get("power_spectrogram", 2.0)) == 2.0, "power_spectrogram must be 2.0")
            n_dft, n_mels = int(cfg["n_dft"]), int(cfg["n_mels"])
            n_freq = n_dft // 2 + 1
            # weight names: real_kernels, imag_kernels and the mel matrix (saved as 'Variable')
            mel_names = [k for k in mf.weights[name] if k not in ("real_kernels", "imag_kernels")]
            _need(len(mel_names) == 1, f"melgram weights {list(mf.weights[name])}")
            melgram = KapreMelgram(
                real_kernels=w(name, "real_kernels", (n_dft, 1, 1, n_freq)),
                imag_kernels=w(name, "imag_kernels", (n_dft, 1, 1, n_freq)),
                freq2mel=w(name, mel_names[0], (n_freq, n_mels)),
                n_hop=int(cfg["n_hop"]), power_melgram=float(cfg.get("power_melgram", 1.0)),
                decibel=bool(cfg.get("return_decibel_melgram", False)))
            melgram.sr, melgram.n_mels = int(cfg["sr"]), n_mels
            melgram.fmin, melgram.fmax = float(cfg.get("fmin", 0.0)), float(cfg.get("fmax") or cfg["sr"] / 2)
        elif cls == "Normalization2D":
            _need(cfg.get("str_axis") == "data_sample", f"Normalization2D str_axis {cfg.get('str_axis')!r}")
            norm = _SampleNorm(eps=float(cfg.get("eps", 1e-10)))
        elif cls == "Conv2D":
            _need(not pending, f"{name}: a Conv2D before the previous block was complete")
            _need(cfg.get("data_format") == "channels_last", f"{name} data_format {cfg.get('data_format')}")
            _need(cfg.get("padding") == "same" and tuple(cfg.get("strides", (1, 1))) == (1, 1)
                  and tuple(cfg.get("dilation_rate", (1, 1))) == (1, 1), f"{name}: only 'same', stride 1, no dilation")
            _need(cfg.get("activation", "linear") == "linear", f"{name} activation {cfg.get('activation')}")
            kh, kw = cfg["kernel_size"]
            _need(kh % 2 == 1 and kw % 2 == 1, f"{name}: odd kernels only")
            out_ch = int(cfg["filters"])
            conv = nn.Conv2d(in_ch, out_ch, (kh, kw), padding=(kh // 2, kw // 2), bias=cfg.get("use_bias", True))
            kernel = w(name, "kernel", (kh, kw, in_ch, out_ch))
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            if conv.bias is not None:
                conv.bias.data = torch.from_numpy(w(name, "bias", (out_ch,)))
            pending = {"conv": conv}
            in_ch = out_ch
            spatial_seen = True
        elif cls == "BatchNormalization":
            _need("conv" in pending and "bn" not in pending, f"{name} not right after a Conv2D")
            _need(cfg.get("axis") in (3, -1), f"{name} axis {cfg.get('axis')}: expected the channel axis")
            _need(cfg.get("scale", True) and cfg.get("center", True), f"{name}: scale and center expected")
            # Keras' momentum m updates mean = m·mean + (1 − m)·batch; PyTorch's is 1 − m (unused in eval).
            bn = nn.BatchNorm2d(in_ch, eps=float(cfg["epsilon"]), momentum=1.0 - float(cfg["momentum"]))
            bn.weight.data = torch.from_numpy(w(name, "gamma", (in_ch,)))
            bn.bias.data = torch.from_numpy(w(name, "beta", (in_ch,)))
            bn.running_mean.data = torch.from_numpy(w(name, "moving_mean", (in_ch,)))
            bn.running_var.data = torch.from_numpy(w(name, "moving_variance", (in_ch,)))
            pending["bn"] = bn
        elif cls == "ELU":
            _need("bn" in pending and "act" not in pending, f"{name} not right after a BatchNormalization")
            pending["act"] = nn.ELU(alpha=float(cfg.get("alpha", 1.0)))
        elif cls == "MaxPooling2D":
            _need("act" in pending, f"{name} not right after an ELU")
            _need(cfg.get("padding") == "valid" and cfg.get("data_format") == "channels_last",
                  f"{name}: 'valid' channels_last pooling expected")
            pending["pool"] = nn.MaxPool2d(tuple(cfg["pool_size"]), stride=tuple(cfg.get("strides") or cfg["pool_size"]))
            blocks.append(_Block(**pending))
            pending = {}
        elif cls == "GlobalMaxPooling2D":
            _need(spatial_seen and not pending, f"{name} not after a complete block")
        elif cls == "Dense":
            units = int(cfg["units"])
            _need(cfg.get("activation") == "sigmoid", f"{name} activation {cfg.get('activation')}")
            head = nn.Linear(in_ch, units)
            head.weight.data = torch.from_numpy(np.ascontiguousarray(w(name, "kernel", (in_ch, units)).T))
            head.bias.data = torch.from_numpy(w(name, "bias", (units,)))
    _need(melgram is not None, "no Melspectrogram layer")
    _need(not pending, "the last conv block is incomplete")
    _need(len(blocks) > 0, "no conv blocks")
    stored = {(layer, n) for layer, ws in mf.weights.items() for n in ws}
    _need(stored == used, f"weights in the file that the port does not use: {sorted(stored - used)}")

    model = ChoiConvnet(melgram, norm, nn.ModuleList(blocks), head, source=str(path), sha256=_sha256(path))
    model.eval().requires_grad_(False)
    return model.to(map_location)


def choi_input(y: np.ndarray, *, n_samples: int = CHOI_N_SAMPLES) -> np.ndarray:
    """The convnet's input from mono 12 kHz audio: the first ``n_samples``, zero-padded.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
        Audio at 12 kHz; channels are averaged to mono (as ``librosa.load(mono=True)``).
    n_samples : int
        Input length (29 s by default; ``None`` keeps the whole signal).

    Returns
    -------
    np.ndarray [shape=(n_samples,)] float32
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if n_samples is None:
        return y
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(len(y), n_samples)] = y[:n_samples]
    return out


class ChoiExtractor(Extractor):
    """The *Choi* baseline as an :class:`mtdtl.features.Extractor` (160 dims).

    Parameters
    ----------
    path : str or Path
        Choi et al.'s ``model_best.hdf5`` (supplied by the user).
    device : str, optional
        ``None``: CUDA when present.
    duration : float or None
        Seconds fed to the network from the start of each track (29, as Choi et al.'s
        extractor); ``None`` feeds the whole track (at least 5.12 s are needed by the five
        poolings; shorter tracks are zero-padded to 29 s either way).
    """

    def __init__(self, path: str | Path, *, device=None, duration: float | None = CHOI_DURATION, **_ignored):
        from mtdtl.device import resolve_device

        self.device = resolve_device(device)
        self.model = load_choi(path, map_location=self.device)
        self.name, self.dim, self.sample_rate = "choi", self.model.feature_dim, CHOI_SR
        self.duration = duration
        self.key = hashlib.sha256(f"choi-v1|{self.model.sha256}|duration={duration}".encode()).hexdigest()

    def describe(self) -> dict:
        return {**super().describe(), "hdf5": self.model.source, "hdf5_sha256": self.model.sha256,
                "duration": self.duration}

    @torch.inference_mode()
    def _extract_waveform(self, y: np.ndarray) -> np.ndarray:
        n = CHOI_N_SAMPLES if self.duration is None else int(round(self.duration * CHOI_SR))
        x = choi_input(y, n_samples=max(n, len(y[-1])) if self.duration is None else n)
        f = self.model.features(torch.from_numpy(x)[None].to(self.device))
        return f[0].float().cpu().numpy()
