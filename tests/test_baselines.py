"""The MFCC and Rand baselines, checkpoints through the extractor registry, and ``mtdtl extract``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mtdtl.audio import FrontEnd
from mtdtl.features.baselines.mfcc import MFCC_DIM, mfcc_features
from mtdtl.errors import MtdtlError
from mtdtl.features import ModelExtractor, extract_dataset, extract_files, get_extractor

SR = 22050
MEAN = np.full(128, -45.0, np.float32)
STD = np.full(128, 18.0, np.float32)


def _tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t) + 0.03 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def wavs(tmp_path):
    d = tmp_path / "wav"
    d.mkdir()
    for i, dur in enumerate([3.0, 5.5]):
        y = _tone(dur, seed=i)
        sf.write(d / f"a{i}.wav", np.stack([y, 0.8 * y]).T, SR, subtype="FLOAT")
    (d / "bad.wav").write_bytes(b"not audio")
    return d


@pytest.fixture
def checkpoint(tmp_path):
    from mtdtl.checkpoint import save_checkpoint
    from mtdtl.models import build_model

    model = build_model("ms_cr@4", ["self", "tag"], width="tiny", seed=1)
    save_checkpoint(tmp_path / "run", model, {"front_end": FrontEnd(), "scaler": {"mean": MEAN, "std": STD}})
    return tmp_path / "run"


# ---- MFCC ------------------------------------------------------------------------------

def test_mfcc_layout_follows_choi_et_al():
    import librosa

    y = _tone(4.0)
    v = mfcc_features(y)
    assert v.shape == (MFCC_DIM,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    m = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    d1 = m[:, 1:] - m[:, :-1]
    d2 = d1[:, 1:] - d1[:, :-1]
    expected = np.concatenate([m.mean(1), m.std(1), d1.mean(1), d1.std(1), d2.mean(1), d2.std(1)])
    np.testing.assert_allclose(v, expected, rtol=1e-5, atol=1e-4)
    # stereo with equal channels is the mono result; a very short clip is padded, not NaN
    np.testing.assert_allclose(mfcc_features(np.stack([y, y])), v, atol=1e-5)
    assert np.all(np.isfinite(mfcc_features(y[:100])))
    assert mfcc_features(y, delta="librosa").shape == (MFCC_DIM,)
    with pytest.raises(MtdtlError, match="delta"):
        mfcc_features(y, delta="nope")


def test_mfcc_extractor(wavs):
    ex = get_extractor("mfcc")
    v = ex.extract(wavs / "a0.wav")
    assert v.shape == (120,)
    y = _tone(3.0)
    np.testing.assert_allclose(v, mfcc_features(np.stack([y, 0.8 * y])), rtol=1e-4, atol=1e-3)
    assert get_extractor("mfcc").key == ex.key != get_extractor("mfcc", delta="librosa").key


# ---- Rand ------------------------------------------------------------------------------

def test_chance_is_one_constant_feature_without_decoding(wavs, tmp_path):
    from mtdtl.transfer import baseline_representations

    ex = get_extractor("chance")
    assert ex.dim == 1 and ex.key == get_extractor("chance").key
    np.testing.assert_array_equal(ex.extract(wavs / "a1.wav"), [0.0])
    items = [wavs / "a0.wav", wavs / "bad.wav", tmp_path / "missing.wav"]
    out = dict(ex.extract_many(items))
    np.testing.assert_array_equal(out[0], [0.0])
    np.testing.assert_array_equal(out[1], [0.0])  # not decoded: only a file has to exist
    assert not isinstance(out[1], Exception) and isinstance(out[2], Exception)
    tracks = pd.DataFrame({"track_id": ["a0", "a1"], "path": [str(wavs / "a0.wav"), str(wavs / "a1.wav")]})
    fs = extract_dataset(ex, tracks, dataset="d", cache_dir=tmp_path / "c", progress=False)
    assert fs.X.shape == (2, 1) and not fs.X.any()
    (rep,) = baseline_representations("chance")
    assert rep.identity["kind"] == "chance" and rep.name == "chance"


def test_rand_is_the_untrained_architecture_from_a_fixed_seed(wavs):
    from mtdtl.models import build_model

    a = get_extractor("rand:ms_cr@2:self,bpm,tag", width="tiny", scaler=(MEAN, STD), device="cpu")
    b = get_extractor("rand:ms_cr@2:self,bpm,tag", width="tiny", scaler=(MEAN, STD), device="cpu")
    c = get_extractor("rand:ms_cr@2:self,bpm,tag", width="tiny", scaler=(MEAN, STD), device="cpu", seed=5)
    ref = build_model("ms_cr@2", ["self", "bpm", "tag"], width="tiny", seed=0)
    assert isinstance(a, ModelExtractor) and a.dim == 2 * ref.feature_dim
    assert a.key == b.key != c.key
    va, vb, vc = (e.extract(wavs / "a1.wav") for e in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.allclose(va, vc)
    assert get_extractor("rand:ss_r", width="tiny", scaler=(MEAN, STD)).meta["sources"] == ["self"]
    with pytest.raises(MtdtlError):
        get_extractor("rand:ss_r:self,tag", width="tiny")
    # the authors' initialisation: other weights (another cache key), zero biases, recorded
    g = get_extractor("rand:ms_cr@2:self,bpm,tag", width="tiny", scaler=(MEAN, STD), device="cpu", init="glorot")
    assert g.key != a.key and g.meta["init"] == "glorot" and a.meta["init"] == "torch"
    import torch

    convs = [m for m in g.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.count_nonzero(m.bias) == 0 for m in convs)


def test_rand_mirrors_a_checkpoint(checkpoint, wavs):
    trained = get_extractor(checkpoint, device="cpu")
    rand = get_extractor(f"rand:{checkpoint}", device="cpu")
    assert rand.meta["arch"] == "ms_cr@4" and rand.meta["sources"] == ["self", "tag"] and rand.meta["width"] == "tiny"
    assert rand.dim == trained.dim and rand.front_end == trained.front_end
    np.testing.assert_array_equal(rand.mean.numpy(), MEAN)
    assert rand.key != trained.key
    assert not np.allclose(rand.extract(wavs / "a0.wav"), trained.extract(wavs / "a0.wav"))


# ---- checkpoints -----------------------------------------------------------------------

def test_checkpoint_extractor_and_cache_key(checkpoint, wavs, tmp_path):
    from mtdtl.checkpoint import load_checkpoint, save_checkpoint
    from mtdtl.models import build_model

    ex = get_extractor(str(checkpoint), device="cpu")
    model, meta = load_checkpoint(checkpoint)
    assert ex.dim == 2 * model.feature_dim and ex.meta["arch"] == "ms_cr@4"
    assert ex.name == "ms_cr@4[self+tag]"
    for form in (checkpoint / "model.safetensors", checkpoint / "model.json"):
        assert get_extractor(form).key == ex.key
    tracks = pd.DataFrame({"track_id": ["a0", "a1"], "path": [str(wavs / "a0.wav"), str(wavs / "a1.wav")]})
    fs = extract_dataset(checkpoint, tracks, dataset="wavs", cache_dir=tmp_path / "cache", progress=False)
    assert fs.X.shape == (2, ex.dim)
    cached = json.loads(next((tmp_path / "cache" / "wavs").glob("*/meta.json")).read_text())
    assert cached["weights_sha256"] and cached["key"] == ex.key
    # new weights at the same path: a new key, a new cache folder
    save_checkpoint(checkpoint, build_model("ms_cr@4", ["self", "tag"], width="tiny", seed=2),
                    {"front_end": FrontEnd(), "scaler": {"mean": MEAN, "std": STD}})
    assert get_extractor(checkpoint).key != ex.key
    extract_dataset(checkpoint, tracks, dataset="wavs", cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache" / "wavs").iterdir())) == 2


def test_front_end_mismatch_is_an_error(checkpoint, wavs, tmp_path):
    tracks = pd.DataFrame({"track_id": ["a0"], "path": [str(wavs / "a0.wav")]})
    with pytest.raises(MtdtlError, match="n_mels"):
        extract_dataset(checkpoint, tracks, dataset="d", cache_dir=tmp_path, front_end=FrontEnd(n_mels=96))
    with pytest.raises(MtdtlError, match="sr"):
        get_extractor(checkpoint, front_end=FrontEnd(sr=16000).to_dict())


def test_extract_files_and_cli(checkpoint, wavs, tmp_path, capsys):
    from mtdtl.cli import main

    out = tmp_path / "f.npy"
    bad = extract_files(checkpoint, [wavs / "a0.wav", wavs / "bad.wav", wavs / "a1.wav"], out=out,
                        progress=False, device="cpu")
    X = np.load(out)
    ex = get_extractor(checkpoint, device="cpu")
    assert X.shape == (3, ex.dim) and bad == [str(wavs / "bad.wav")]
    assert np.all(np.isnan(X[1])) and np.all(np.isfinite(X[[0, 2]]))
    np.testing.assert_allclose(X[2], ex.extract(wavs / "a1.wav"), rtol=1e-5, atol=1e-6)

    out2 = tmp_path / "cli.npy"
    rc = main(["-q", "extract", str(checkpoint), str(wavs / "a0.wav"), str(wavs / "a1.wav"), "-o", str(out2),
               "--batch-size", "4", "--device", "cpu"])
    assert rc == 0 and "features of 2 of 2 files written" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(out2), X[[0, 2]], rtol=1e-5, atol=1e-6)
    rc = main(["-q", "extract", str(tmp_path / "nope"), str(wavs / "a0.wav"), "-o", str(out2)])
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err
    # any representation spec works in place of the checkpoint
    assert main(["-q", "extract", "mfcc", str(wavs / "a0.wav"), "-o", str(out2)]) == 0
    assert np.load(out2).shape == (1, 120)


def test_cpu_inference_optimisation_matches_eager_for_every_architecture():
    from mtdtl.constants import ARCH_IDS

    y = np.stack([_tone(3.0), _tone(3.0, seed=1)])
    for arch in ARCH_IDS:
        spec = "rand:ss_r" if arch == "ss_r" else f"rand:{arch}:self,tag,artist"
        fast = get_extractor(spec, width="tiny", scaler=(MEAN, STD), device="cpu")
        eager = get_extractor(spec, width="tiny", scaler=(MEAN, STD), device="cpu", optimize=False)
        np.testing.assert_allclose(fast.extract(y), eager.extract(y), rtol=1e-4, atol=1e-5)
        assert type(fast._net).__name__ == "GraphModule", arch  # the optimised copy is in use


def test_bf16_inference_runs_the_onednn_graph_in_bf16_for_every_architecture():
    """bf16 on the CPU: the float32 oneDNN graph rebuilt with bf16 weights and activations,
    within bf16 rounding of the float32 network; autocast where it cannot be built."""
    import torch

    from mtdtl.constants import ARCH_IDS
    from mtdtl.features import model as fm

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN has no bf16 on this CPU")
    y = np.stack([_tone(3.0), _tone(3.0, seed=1)])
    for arch in ARCH_IDS:
        spec = "rand:ss_r" if arch == "ss_r" else f"rand:{arch}:self,tag,artist"
        fp32 = get_extractor(spec, width="tiny", scaler=(MEAN, STD), device="cpu")
        bf16 = get_extractor(spec, width="tiny", scaler=(MEAN, STD), device="cpu", precision="bf16")
        graph = fm._bf16_graph_for_cpu(bf16.model, (2, 216, 128))
        assert any(isinstance(m, torch.utils.mkldnn.MkldnnConv2d) and m.weight.dtype == torch.bfloat16
                   for m in graph.modules()), arch
        a, b = fp32.extract(y), bf16.extract(y)
        assert np.abs(b - a).max() <= 0.05 * np.abs(a).max(), arch
        assert not np.array_equal(a, b)  # really computed in bf16
    # a graph that fails its check: autocast instead, same precision
    real = fm._bf16_graph_for_cpu

    def broken(*a, **k):
        raise MtdtlError("no graph")

    fm._bf16_graph_for_cpu = broken
    try:
        ex = get_extractor("rand:ss_r", width="tiny", scaler=(MEAN, STD), device="cpu", precision="bf16")
        v = ex.extract(y)
        assert ex.precision == "bf16" and np.isfinite(v).all()
    finally:
        fm._bf16_graph_for_cpu = real
