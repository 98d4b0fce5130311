"""The HEAR 2021 API for mtdtl representations.

`HEAR <https://hearbenchmark.com>`_ (Turian et al., 2022) evaluates any audio representation
that a Python module exposes through three functions; hear-eval-kit and the benchmarks built on
it import this module by name::

    python -m heareval.embeddings.runner mtdtl.hear --model path/to/run   # a trained checkpoint

- :func:`load_model` ``(model_file_path="", **kw) -> torch.nn.Module`` with the attributes
  ``sample_rate`` (the checkpoint's front end: 22,050 Hz), ``scene_embedding_size``
  (``2 * feature_dim``) and ``timestamp_embedding_size`` (``feature_dim``).
- :func:`get_scene_embeddings` ``(audio [n_sounds, n_samples], model) -> [n_sounds, 2 d]``:
  exactly mtdtl's track feature (Section 4.4.1), the mean ‖ std of the fc-features of the
  non-overlapping 2.5 s slices (a sound shorter than a slice is padded to one, with the audio
  module's short-clip policy).
- :func:`get_timestamp_embeddings` ``(audio, model) -> (embeddings [n_sounds, n_timestamps, d],
  timestamps [n_sounds, n_timestamps])``: the fc-feature of a 2.5 s window (216 frames)
  *centred* on each timestamp; timestamps every ``hop_ms`` (default 50 ms) from 0 to the end
  of the sound, in milliseconds. Frames outside the sound are the sound's dB silence value
  (its floor), as the short-clip policy pads.

Audio is mono float at ``model.sample_rate`` (HEAR's convention) and is duplicated to the two
channels the networks take. Each sound's dB floor (``top_db``) is its own, as in training.

``model_file_path`` is a checkpoint (run folder, ``model.safetensors`` or ``model.json``) or a
``rand:...`` spec of :func:`mtdtl.features.get_extractor`. An empty path gives an untrained
network (the *Rand* baseline) built from ``arch`` (default ``"ss_r"``), ``sources``, ``width``
(default ``"full"``) and ``seed`` keyword arguments: useful for checking the API, not for
evaluating. Other keyword arguments: ``hop_ms``, ``batch_size``, ``device``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtdtl.errors import MtdtlError
from mtdtl.features import SLICE_FRAMES, ModelExtractor, aggregate, get_extractor
from mtdtl.log import get_logger

__all__ = ["HearModel", "load_model", "get_scene_embeddings", "get_timestamp_embeddings"]

log = get_logger(__name__)


class HearModel(torch.nn.Module):
    """A representation network wrapped for the HEAR API (see the module docstring).

    ``.to(device)`` moves the network, its mel front end and its input scaler together.
    """

    def __init__(self, extractor: ModelExtractor, *, hop_ms: float = 50.0):
        super().__init__()
        if hop_ms <= 0:
            raise MtdtlError(f"hop_ms must be positive, got {hop_ms}")
        self.extractor = extractor
        self.net, self.mel = extractor.model, extractor.mel
        self.register_buffer("scaler_mean", extractor.mean.clone())
        self.register_buffer("scaler_std", extractor.std.clone())
        self.sample_rate = int(extractor.sample_rate)
        self.timestamp_embedding_size = int(extractor.feature_dim)
        self.scene_embedding_size = int(extractor.dim)
        self.hop_ms = float(hop_ms)
        self.name = extractor.name

    def _synced(self) -> ModelExtractor:
        """The extractor, pointed at wherever ``.to()`` moved this module."""
        ex = self.extractor
        if ex.device != self.scaler_mean.device:
            ex.set_device(self.scaler_mean.device)
        ex.mean, ex.std = self.scaler_mean, self.scaler_std
        return ex

    def _stereo(self, audio: Any) -> torch.Tensor:
        x = torch.as_tensor(audio)
        if x.ndim != 2:
            raise MtdtlError(f"HEAR audio must be [n_sounds, n_samples] mono, got shape {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise MtdtlError("HEAR audio has zero samples")
        x = x.to(self.scaler_mean.device, torch.float32)
        if not torch.isfinite(x).all():
            raise MtdtlError("HEAR audio contains NaN or infinite samples")
        return x[:, None, :].expand(-1, 2, -1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Scene embeddings (as :func:`get_scene_embeddings`)."""
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "", **kw) -> HearModel:
    """HEAR entry point: load a representation (see the module docstring for the arguments).

    Returns
    -------
    HearModel
        With ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``.
    """
    hop_ms = kw.pop("hop_ms", 50.0)
    path = str(model_file_path or "")
    if not path:
        from mtdtl.features.baselines.rand import rand_extractor

        arch = kw.pop("arch", "ss_r")
        log.warning("mtdtl.hear.load_model without a checkpoint: an untrained %s network (Rand baseline)", arch)
        ex = rand_extractor(arch, kw.pop("sources", None), **kw)
    else:
        ex = get_extractor(path, **kw)
    if not isinstance(ex, ModelExtractor):
        raise MtdtlError(f"{path!r} is not a network representation; the HEAR API serves checkpoints and rand:... specs")
    return HearModel(ex, hop_ms=hop_ms)


def _check_model(model: Any) -> HearModel:
    if not isinstance(model, HearModel):
        raise MtdtlError(f"expected the model returned by mtdtl.hear.load_model, got {type(model).__name__}")
    return model


@torch.inference_mode()
def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """One embedding per sound: mean ‖ std of the fc-features of its 2.5 s slices.

    Parameters
    ----------
    audio : torch.Tensor [shape=(n_sounds, n_samples)]
        Mono audio at ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    torch.Tensor [shape=(n_sounds, model.scene_embedding_size)] float32, on the model's device
    """
    model = _check_model(model)
    ex = model._synced()
    x = model._stereo(audio)
    out = [torch.from_numpy(aggregate(ex.slice_features(ex.slices(y)).double().cpu().numpy())) for y in x]
    return torch.stack(out).to(ex.device)


@torch.inference_mode()
def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """fc-features of 2.5 s windows centred every ``model.hop_ms`` milliseconds.

    Parameters
    ----------
    audio : torch.Tensor [shape=(n_sounds, n_samples)]
        Mono audio at ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    embeddings : torch.Tensor [shape=(n_sounds, n_timestamps, model.timestamp_embedding_size)]
    timestamps : torch.Tensor [shape=(n_sounds, n_timestamps)]
        Centre of each window in milliseconds: ``0, hop_ms, 2 hop_ms, ...`` up to the duration.
    """
    model = _check_model(model)
    ex = model._synced()
    x = model._stereo(audio)
    n_sounds, _, n_samples = x.shape
    fe = ex.front_end
    duration_ms = 1000.0 * n_samples / fe.sr
    n_ts = int(np.floor(duration_ms / model.hop_ms + 1e-9)) + 1
    ts = torch.arange(n_ts, dtype=torch.float64) * model.hop_ms
    centres = torch.round(ts / 1000.0 * fe.sr / fe.hop).long()  # frame index at each timestamp
    half = SLICE_FRAMES // 2
    S = ex.mel(x)  # (n, 2, T, M), each sound with its own dB floor
    T = S.shape[2]
    embs = []
    for i in range(n_sounds):
        s = S[i]
        silence = float(max(fe.floor_db, float(s.max()) - fe.top_db)) if fe.top_db is not None else fe.floor_db
        padded = torch.nn.functional.pad(s, (0, 0, half, SLICE_FRAMES), value=silence)  # (2, T + 3·half, M)
        windows = padded.unfold(1, SLICE_FRAMES, 1)  # (2, T + half + 1, M, 216): window starting at each frame
        starts = (centres.clamp(max=T - 1)).to(s.device)  # window for centre c starts at padded frame c
        rows = []
        for j in range(0, n_ts, ex.batch_size):
            w = windows[:, starts[j:j + ex.batch_size]].permute(1, 0, 3, 2)  # (b, 2, 216, M)
            rows.append(ex.slice_features(w))
        embs.append(torch.cat(rows))
    emb = torch.stack(embs).to(ex.device)
    return emb, ts.to(torch.float32)[None].expand(n_sounds, -1).contiguous().to(ex.device)
