"""The PyTorch port of Choi et al. (2017)'s convnet against its stored Keras configuration.

The reference features in ``data_feats/`` come from real GTZAN audio we do not have (and from
the earlier Keras 1 release, not from ``model_best.hdf5``), so the port is checked by internal
consistency: every layer and weight of the file accounted for, the stored front end equal to a
direct implementation of its documented parameters, the PyTorch forward pass equal to an
independent numpy forward pass in Keras' own channels-last layout, BN folding, determinism.
Skipped when the user-supplied weights file is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtdtl.features.baselines.choi import CHOI_N_SAMPLES, CHOI_SR, choi_input, load_choi, read_keras_hdf5
from mtdtl.errors import MtdtlError


@pytest.fixture(scope="module")
def hdf5(reference_dir):
    p = reference_dir / "choi2017" / "keras2_model" / "model_best.hdf5"
    if not p.is_file():
        pytest.skip(f"Choi et al.'s model file not found at {p}")
    return p


@pytest.fixture(scope="module")
def choi(hdf5):
    return load_choi(hdf5)


@pytest.fixture(scope="module")
def mf(hdf5):
    return read_keras_hdf5(hdf5)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CHOI_SR)) / CHOI_SR
    chirp = 0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t)
    return (chirp + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_every_layer_and_weight_is_accounted_for(choi, mf):
    classes = [c for c, _ in mf.layers]
    assert classes == (["Melspectrogram", "Normalization2D"]
                       + ["Conv2D", "BatchNormalization", "ELU", "MaxPooling2D"] * 5
                       + ["GlobalMaxPooling2D", "Dense"])
    cfg = dict((c["name"], c) for _, c in mf.layers)
    assert len(choi.blocks) == 5 and choi.feature_dim == 160
    for k, b in enumerate(choi.blocks, start=1):
        assert b.conv.out_channels == 32 and b.conv.kernel_size == (3, 3)
        assert b.pool.kernel_size == tuple(cfg[f"MP_{k}"]["pool_size"])
        assert b.bn.eps == cfg[f"batch_normalization_{k}"]["epsilon"] == 1e-3
        assert b.act.alpha == 1.0
    assert [b.pool.kernel_size for b in choi.blocks] == [(2, 4), (3, 4), (2, 5), (2, 4), (4, 4)]
    mel = cfg["melgram"]
    assert (mel["sr"], mel["n_dft"], mel["n_hop"], mel["n_mels"], mel["fmax"]) == (12000, 512, 256, 96, 6000)
    # Keras' model.summary() in Choi et al.'s notebook: 39,282 trainable, 288,160 non-trainable
    trainable = sum(p.numel() for n, p in choi.named_parameters() if not n.startswith("melgram"))
    frozen = sum(b.numel() for n, b in choi.named_buffers() if "running" in n) + \
        choi.melgram.dft.numel() + choi.melgram.freq2mel.numel()
    assert trainable == 39_282 and frozen == 288_160


def test_kernel_layout_keras_to_torch(choi, mf):
    k = mf.weights["conv2d_2"]["kernel"]  # (kh, kw, in, out)
    w = choi.blocks[1].conv.weight.numpy()  # (out, in, kh, kw)
    assert k.shape == (3, 3, 32, 32)
    assert w[5, 7, 0, 2] == k[0, 2, 7, 5] and w[31, 0, 2, 1] == k[2, 1, 0, 31]
    np.testing.assert_array_equal(choi.head.weight.numpy(), mf.weights["dense_1"]["kernel"].T)


def test_stored_front_end_is_the_documented_one(mf):
    import librosa
    import scipy.signal

    w = mf.weights["melgram"]
    n, k = np.arange(512), np.arange(257)
    hann = scipy.signal.get_window("hann", 512, fftbins=True)  # periodic
    ang = 2 * np.pi * np.outer(n, k) / 512
    np.testing.assert_allclose(w["real_kernels"][:, 0, 0, :], np.cos(ang) * hann[:, None], atol=1e-6)
    np.testing.assert_allclose(np.abs(w["imag_kernels"][:, 0, 0, :]), np.abs(np.sin(ang) * hann[:, None]), atol=1e-6)
    fb = librosa.filters.mel(sr=12000, n_fft=512, n_mels=96, fmin=0.0, fmax=6000, htk=False, norm="slaney")
    np.testing.assert_allclose(w["Variable"], fb.T, atol=1e-7)


def _numpy_melgram(y: np.ndarray) -> np.ndarray:
    """kapre's decibel melgram from its documented parameters: (96, T), channels-last semantics."""
    import librosa
    import scipy.signal

    n = len(y)
    out = -(-n // 256)
    total = max((out - 1) * 256 + 512 - n, 0)
    yp = np.pad(y.astype(np.float64), (total // 2, total - total // 2))
    frames = np.lib.stride_tricks.sliding_window_view(yp, 512)[::256]
    hann = scipy.signal.get_window("hann", 512, fftbins=True)
    power = np.abs(np.fft.rfft(frames * hann, axis=1)) ** 2
    mel = power @ librosa.filters.mel(sr=12000, n_fft=512, n_mels=96, fmax=6000).T.astype(np.float64)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db - db.max(), -80.0)
    return db.T


def test_melgram_matches_direct_implementation(choi):
    y = _noise(29.0)
    ours = choi.melgram(torch.from_numpy(y)[None])[0, 0].numpy()
    ref = _numpy_melgram(y)
    assert ours.shape == ref.shape == (96, 1360)  # Choi et al.: 29 s -> 1360 frames
    assert np.abs(ours - ref).max() < 2e-3  # dB, float32 vs float64


def _numpy_forward(y: np.ndarray, mf) -> np.ndarray:
    """An independent forward pass in Keras' layout (batch-free, channels last) from the raw weights."""
    x = _numpy_melgram(y)[:, :, None]  # (freq, time, 1)
    x = (x - x.mean()) / (x.std() + 1e-10)  # Normalization2D('data_sample')
    feats = []
    for k in range(1, 6):
        K = mf.weights[f"conv2d_{k}"]["kernel"].astype(np.float64)
        b = mf.weights[f"conv2d_{k}"]["bias"]
        H, W, _ = x.shape
        xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        z = np.zeros((H, W, K.shape[-1]))
        for i in range(3):
            for j in range(3):
                z += xp[i:i + H, j:j + W, :] @ K[i, j]
        z += b
        bn = mf.weights[f"batch_normalization_{k}"]
        z = (z - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
        z = np.where(z > 0, z, np.expm1(np.minimum(z, 0)))  # ELU(1)
        feats.append(z.mean(axis=(0, 1)))
        if k == 5:
            break
        ph, pw = [dict((c["name"], c) for _, c in mf.layers)[f"MP_{k}"]["pool_size"]][0]
        Hp, Wp = z.shape[0] // ph, z.shape[1] // pw
        x = z[:Hp * ph, :Wp * pw].reshape(Hp, ph, Wp, pw, -1).max(axis=(1, 3))
    return np.concatenate(feats)


def test_port_equals_numpy_forward_in_keras_layout(choi, mf):
    y = _noise(8.0, seed=3)  # 375 frames: enough for the five poolings, cheap in numpy
    ours = choi.features(torch.from_numpy(y)[None])[0].double().numpy()
    ref = _numpy_forward(y, mf)
    assert ours.shape == ref.shape == (160,)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3)


def test_bn_folding_gives_the_same_features(choi):
    import copy

    folded = copy.deepcopy(choi)
    for b in folded.blocks:
        s = b.bn.weight / torch.sqrt(b.bn.running_var + b.bn.eps)
        b.conv.weight.data = b.conv.weight * s[:, None, None, None]
        b.conv.bias.data = (b.conv.bias - b.bn.running_mean) * s + b.bn.bias
        b.bn = torch.nn.Identity()
    y = torch.from_numpy(_noise(29.0, seed=1))[None]
    np.testing.assert_allclose(folded.features(y).numpy(), choi.features(y).numpy(), rtol=1e-4, atol=1e-5)


def test_deterministic_finite_and_batch_independent(choi):
    ys = torch.from_numpy(np.stack([_noise(29.0, seed=s) for s in (4, 5)]))
    a = choi.features(ys).numpy()
    b = choi.features(ys).numpy()
    c = choi.features(ys[1:]).numpy()
    assert a.shape == (2, 160) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[1:], c, rtol=1e-5, atol=1e-5)
    assert a.min() >= -1.0  # averages of ELU outputs
    p = choi.tags(ys).numpy()
    assert p.shape == (2, 50) and np.all((p > 0) & (p < 1))


def test_choi_input_takes_first_29_s_mono_zero_padded():
    y = np.ones((2, 1000), np.float32)
    x = choi_input(y)
    assert x.shape == (CHOI_N_SAMPLES,) and x[:1000].sum() == 1000 and x[1000:].sum() == 0
    long = np.arange(CHOI_N_SAMPLES + 50, dtype=np.float32)
    np.testing.assert_array_equal(choi_input(long), long[:CHOI_N_SAMPLES])


def test_extractor_on_a_file(hdf5, tmp_path, rng):
    import soundfile as sf

    from mtdtl.features import UnreadableAudio, get_extractor

    t = np.arange(6 * 22050) / 22050
    y = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(tmp_path / "a.wav", np.stack([y, y]).T, 22050, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros((22050, 2)), 22050)
    ex = get_extractor(f"choi:{hdf5}", device="cpu")
    assert (ex.name, ex.dim, ex.sample_rate) == ("choi", 160, 12000)
    v = ex.extract(tmp_path / "a.wav")
    assert v.shape == (160,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    # a waveform at 22,050 Hz gives the same vector as its file
    np.testing.assert_allclose(ex.extract(np.stack([y, y]).astype(np.float32), sr=22050), v, atol=1e-4)
    out = dict(ex.extract_many([tmp_path / "a.wav", tmp_path / "silent.wav", tmp_path / "missing.wav"]))
    assert isinstance(out[1], UnreadableAudio) and isinstance(out[2], UnreadableAudio)
    np.testing.assert_allclose(out[0], v, atol=1e-6)


def test_bad_model_files(tmp_path):
    import h5py

    with pytest.raises(MtdtlError, match="not found"):
        load_choi(tmp_path / "missing.hdf5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(MtdtlError, match="model_config"):
        load_choi(tmp_path / "empty.h5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5 at all")
    with pytest.raises(MtdtlError, match="h5py"):
        load_choi(tmp_path / "junk.hdf5")
