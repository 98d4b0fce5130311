"""The HEAR 2021 API contract, on an untrained tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtdtl import hear
from mtdtl.errors import MtdtlError

SR = 22050


@pytest.fixture(scope="module")
def model():
    return hear.load_model("", arch="ss_r", width="tiny", seed=0, device="cpu")


def _audio(n_sounds: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    return (tone + 0.05 * torch.randn(n_sounds, len(t), generator=g)).float()


def test_attributes(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == SR
    d = model.net.feature_dim
    assert model.timestamp_embedding_size == d and model.scene_embedding_size == 2 * d


def test_scene_embeddings_are_the_track_features(model):
    audio = _audio(2, 3.0)
    emb = hear.get_scene_embeddings(audio, model)
    assert emb.shape == (2, model.scene_embedding_size) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    # mono duplicated to stereo, then exactly mtdtl's feature extraction (Section 4.4.1)
    y = audio[1].numpy()
    ref = model.extractor.extract(np.stack([y, y]))
    np.testing.assert_allclose(emb[1].numpy(), ref, rtol=1e-5, atol=1e-6)
    # batch independent
    np.testing.assert_allclose(hear.get_scene_embeddings(audio[1:], model).numpy(), emb[1:].numpy(), atol=1e-6)
    assert torch.equal(model(audio), emb)


def test_timestamp_embeddings_shapes_and_times(model):
    audio = _audio(3, 1.5, seed=1)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    n_ts = int(1500 // 50) + 1
    assert emb.shape == (3, n_ts, model.timestamp_embedding_size) and ts.shape == (3, n_ts)
    assert emb.dtype == ts.dtype == torch.float32 and torch.isfinite(emb).all()
    np.testing.assert_allclose(ts[0].numpy(), np.arange(n_ts) * 50.0)
    assert torch.equal(ts[0], ts[2])
    # a silent sound still gets embeddings (HEAR sounds may be silent)
    e0, _ = hear.get_timestamp_embeddings(torch.zeros(1, SR), model)
    assert torch.isfinite(e0).all()


def test_timestamp_window_is_centred(model):
    """The window centred on frame 108 is exactly the first non-overlapping 2.5 s slice."""
    hop_ms = 1000.0 * 108 * 256 / SR
    m = hear.load_model("", arch="ss_r", width="tiny", seed=0, device="cpu", hop_ms=hop_ms)
    audio = _audio(1, 5.2, seed=2)
    emb, ts = hear.get_timestamp_embeddings(audio, m)
    y = audio[0].numpy()
    ex = m.extractor
    first = ex.slice_features(ex.slices(np.stack([y, y])))[0]
    np.testing.assert_allclose(emb[0, 1].numpy(), first.numpy(), rtol=1e-5, atol=1e-6)
    assert abs(float(ts[0, 1]) - hop_ms) < 1e-3


def test_bad_input(model):
    with pytest.raises(MtdtlError, match="n_sounds"):
        hear.get_scene_embeddings(torch.zeros(SR), model)
    with pytest.raises(MtdtlError, match="load_model"):
        hear.get_timestamp_embeddings(torch.zeros(1, SR), torch.nn.Linear(2, 2))
    with pytest.raises(MtdtlError, match="NaN"):
        hear.get_scene_embeddings(torch.full((1, SR), float("nan")), model)
    with pytest.raises(MtdtlError, match="not a network"):
        hear.load_model("mfcc")


def test_load_model_from_a_checkpoint(tmp_path):
    from mtdtl.audio import FrontEnd
    from mtdtl.checkpoint import save_checkpoint
    from mtdtl.features import get_extractor
    from mtdtl.models import build_model

    model = build_model("ms_cr@6", ["tag", "artist"], width="tiny", seed=3)
    save_checkpoint(tmp_path / "run", model, {"front_end": FrontEnd(),
                                              "scaler": {"mean": [-40.0] * 128, "std": [20.0] * 128}})
    m = hear.load_model(str(tmp_path / "run"), device="cpu")
    assert m.timestamp_embedding_size == model.feature_dim and m.scene_embedding_size == 2 * model.feature_dim
    m = m.to("cpu")
    audio = _audio(1, 2.0, seed=4)
    y = audio[0].numpy()
    np.testing.assert_allclose(hear.get_scene_embeddings(audio, m)[0].numpy(),
                               get_extractor(tmp_path / "run").extract(np.stack([y, y])), rtol=1e-5, atol=1e-6)
