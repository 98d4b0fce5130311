"""Feature extraction (Section 4.4.1): slices, mean ‖ std, batching, streaming, cache, bad input.

The extraction machinery is tested with a small stand-in representation network (anything with
``features(x)`` and ``feature_dim``); the real architectures and checkpoints are exercised in
tests/test_baselines.py and the CLI test below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from mtdtl.audio import FrontEnd, load_audio, mel_db, pad_to_min_frames
from mtdtl.errors import MtdtlError
from mtdtl.features import (SLICE_FRAMES, FeatureSet, ModelExtractor, UnreadableAudio, aggregate,
                            extract_dataset, get_extractor, load_cached, slice_frames)

SR = 22050
MEAN = np.linspace(-60, -30, 128).astype(np.float32)
STD = np.linspace(15, 25, 128).astype(np.float32)


class StubNet(nn.Module):
    """A stand-in representation network: conv → global average → linear (feature_dim 8)."""

    feature_dim = 8

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 2, 8)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3
        self.calls = 0

    def features(self, x):
        self.calls += x.shape[0]
        h = torch.relu(self.conv(x))
        return self.fc(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


class NaNNet(StubNet):
    def features(self, x):
        return super().features(x) * float("nan")


def _extractor(net=None, **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("optimize", False)  # the stand-in counts its calls: run it as it is
    return ModelExtractor(net or StubNet(), front_end=FrontEnd(), scaler_mean=MEAN, scaler_std=STD,
                          name="stub", **kw)


def _write(path, seconds, *, sr=SR, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (150 + 200 * seed + 300 * t) * t) + 0.05 * rng.standard_normal(len(t))
    data = np.stack([y, 0.6 * y + 0.02 * rng.standard_normal(len(t))][:channels]).T
    sf.write(path, data, sr, subtype="FLOAT")
    return path


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    for i, dur in enumerate([1.0, 6.0, 12.5, 3.0]):
        _write(d / f"t{i}.wav", dur, seed=i)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(d / "silent.wav", np.zeros((SR * 3, 2)), SR)
    return d


def _reference(net, path):
    """Section 4.4.1 written out with the numpy front end: slices → scale → features → mean ‖ std."""
    S = pad_to_min_frames(mel_db(load_audio(path)), min_frames=SLICE_FRAMES)
    k = S.shape[1] // SLICE_FRAMES
    X = S[:, : k * SLICE_FRAMES].reshape(2, k, SLICE_FRAMES, 128).transpose(1, 0, 2, 3)
    X = (X - MEAN) / STD
    with torch.no_grad():
        F = net.features(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()
    return np.concatenate([F.mean(0), F.std(0)]), k


def test_slice_frames_and_aggregate():
    S = torch.arange(2 * 500 * 3, dtype=torch.float32).reshape(2, 500, 3)
    X = slice_frames(S)
    assert X.shape == (2, 2, SLICE_FRAMES, 3)  # 500 frames: two slices, remainder dropped
    assert torch.equal(X[1, 0], S[0, SLICE_FRAMES:2 * SLICE_FRAMES])
    F = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(aggregate(F), [2.0, 4.0, 1.0, 2.0])
    np.testing.assert_allclose(aggregate(F[:1]), [1.0, 2.0, 0.0, 0.0])


def test_extract_matches_the_paper_recipe(audio_dir):
    net = StubNet()
    ex = _extractor(net)
    assert ex.dim == 16 and ex.sample_rate == SR
    for name, n_slices in [("t1.wav", 2), ("t2.wav", 4), ("t0.wav", 1)]:  # 6 s, 12.5 s, 1 s (padded)
        ref, k = _reference(net, audio_dir / name)
        assert k == n_slices
        np.testing.assert_allclose(ex.extract(audio_dir / name), ref, rtol=1e-4, atol=1e-5)
    # a short clip is one padded slice: no spread
    assert np.all(ex.extract(audio_dir / "t0.wav")[8:] == 0)
    # waveforms are accepted too (mono is duplicated, other rates resampled)
    y = load_audio(audio_dir / "t1.wav")
    np.testing.assert_allclose(ex.extract(y), ex.extract(audio_dir / "t1.wav"), atol=1e-6)


def test_batching_across_tracks_changes_nothing(audio_dir):
    paths = [audio_dir / f"t{i}.wav" for i in range(4)]
    single = np.stack([_extractor().extract(p) for p in paths])
    for bs, prefetch in [(1, 0), (3, 2), (256, 1)]:
        got = dict(_extractor(batch_size=bs, prefetch=prefetch).extract_many(paths))
        np.testing.assert_allclose(np.stack([got[i] for i in range(4)]), single, rtol=1e-5, atol=1e-6)


def test_long_files_are_streamed_with_the_same_result(audio_dir):
    # 44.1 kHz mono, 16 s: resampled and transformed block by block
    _write(audio_dir / "long.wav", 16.0, sr=44100, seed=7, channels=1)
    paths = [audio_dir / "long.wav", audio_dir / "t2.wav"]
    whole = np.stack([_extractor().extract(p) for p in paths])
    ex = _extractor(max_seconds_in_memory=10.0, batch_size=4)
    for block in (64, 4):  # one block, then blocks that end mid-file
        ex.stream_block_slices = block
        chunks = list(ex._stream_slices(audio_dir / "long.wav"))
        assert sum(len(c) for c in chunks) == 6 and len(chunks) == -(-6 // block)  # 1,379 frames
        one_piece = ex.slices(ex._load(audio_dir / "long.wav"))
        assert (torch.cat(chunks) - one_piece).abs().max() < 1e-4  # dB
        got = dict(ex.extract_many(paths))
        np.testing.assert_allclose(np.stack([got[0], got[1]]), whole, rtol=1e-5, atol=1e-6)


def test_unreadable_and_silent_tracks_are_skipped(audio_dir):
    paths = [audio_dir / "t1.wav", audio_dir / "corrupt.wav", audio_dir / "missing.wav",
             audio_dir / "silent.wav", audio_dir / "t3.wav"]
    out = dict(_extractor(batch_size=2).extract_many(paths))
    assert [type(out[i]) for i in (1, 2, 3)] == [UnreadableAudio] * 3
    assert "silent" in str(out[3]) and "missing.wav" in str(out[2])
    np.testing.assert_allclose(out[4], _extractor().extract(paths[4]), atol=1e-6)


def _tracks(audio_dir, names):
    return pd.DataFrame({"track_id": [n.split(".")[0] for n in names], "path": [str(audio_dir / n) for n in names]})


def test_dataset_cache_never_re_extracts_and_resumes(audio_dir, tmp_path):
    names = ["t0.wav", "t1.wav", "corrupt.wav", "t2.wav", "t3.wav"]
    tracks = _tracks(audio_dir, names)
    cache = tmp_path / "cache"

    class Interrupted(Exception):
        pass

    # an extraction interrupted after two tracks (one part file per track)
    net = StubNet()
    ex = _extractor(net)
    real = ex.extract_many

    def failing(items, progress=False):
        for n, (i, v) in enumerate(real(items, progress=progress)):
            if n == 3:
                raise Interrupted
            yield i, v

    ex.extract_many = failing
    with pytest.raises(Interrupted):
        extract_dataset(ex, tracks, dataset="fixture", cache_dir=cache, flush_every=1, progress=False)
    folder = next((cache / "fixture").iterdir())
    ids, _ = load_cached(folder)
    assert sorted(ids) == ["t0", "t1"]

    # resume: only the remaining tracks go through the network
    net2 = StubNet()
    fs = extract_dataset(_extractor(net2), tracks, dataset="fixture", cache_dir=cache, progress=False)
    assert isinstance(fs, FeatureSet)
    assert list(fs.track_ids) == ["t0", "t1", "t2", "t3"] and fs.X.shape == (4, 16)
    assert net2.calls == 4 + 1  # t2: 4 slices, t3: 1 slice
    assert list(fs.skipped.track_id) == ["corrupt"] and "corrupt.wav" in fs.skipped.path.iloc[0]
    assert not list((folder / "parts").glob("*.npz")) and (folder / "features.npz").is_file()
    fresh = extract_dataset(_extractor(), tracks, dataset="other", cache_dir=cache, progress=False)
    np.testing.assert_allclose(fs.X, fresh.X, rtol=1e-5, atol=1e-6)

    # a second evaluation reads the cache: nothing through the network, same numbers, any row order
    net3 = StubNet()
    again = extract_dataset(_extractor(net3), tracks.iloc[::-1], dataset="fixture", cache_dir=cache, progress=False)
    assert net3.calls == 0
    assert list(again.track_ids) == ["t3", "t2", "t1", "t0"]
    np.testing.assert_array_equal(again.X, fs.X[::-1])

    # other weights: another cache folder
    extract_dataset(_extractor(StubNet(seed=1)), tracks.iloc[:1], dataset="fixture", cache_dir=cache, progress=False)
    assert len(list((cache / "fixture").iterdir())) == 2


def test_bad_input(audio_dir, tmp_path):
    tracks = _tracks(audio_dir, ["t1.wav"])
    with pytest.raises(MtdtlError, match="NaN"):
        extract_dataset(_extractor(NaNNet()), tracks, dataset="d", cache_dir=tmp_path, progress=False)
    with pytest.raises(MtdtlError, match="NaN"):
        _extractor(NaNNet()).extract(audio_dir / "t1.wav")
    with pytest.raises(MtdtlError, match="hop"):
        extract_dataset(_extractor(), tracks, dataset="d", cache_dir=tmp_path, front_end=FrontEnd(hop=512),
                        progress=False)
    with pytest.raises(MtdtlError, match="duplicate"):
        extract_dataset(_extractor(), pd.concat([tracks, tracks]), dataset="d", cache_dir=tmp_path, progress=False)
    with pytest.raises(MtdtlError, match="track_id"):
        extract_dataset(_extractor(), tracks.rename(columns={"path": "file"}), dataset="d", cache_dir=tmp_path)
    with pytest.raises(MtdtlError, match="scaler"):
        ModelExtractor(StubNet(), front_end=FrontEnd(), scaler_mean=MEAN, scaler_std=np.zeros(128))
    with pytest.raises(MtdtlError, match="one per mel band"):
        ModelExtractor(StubNet(), front_end=FrontEnd(), scaler_mean=MEAN[:10], scaler_std=STD)
    with pytest.raises(MtdtlError, match="features"):
        ModelExtractor(nn.Linear(2, 2), front_end=FrontEnd(), scaler_mean=MEAN, scaler_std=STD)
    with pytest.raises(MtdtlError, match="unknown representation"):
        get_extractor("nope")
    with pytest.raises(MtdtlError, match="silent"):
        _extractor().extract(np.zeros((2, SR)))
    if not torch.cuda.is_available():
        with pytest.raises(MtdtlError, match="CUDA"):
            _extractor(device="cuda")


def test_mfcc_through_the_same_interface(audio_dir, tmp_path):
    ex = get_extractor("mfcc")
    assert (ex.name, ex.dim) == ("mfcc", 120)
    fs = extract_dataset(ex, _tracks(audio_dir, ["t1.wav", "silent.wav", "t2.wav"]), dataset="d",
                         cache_dir=tmp_path, progress=False)
    assert fs.X.shape == (2, 120) and list(fs.skipped.track_id) == ["silent"]


def test_a_file_failing_half_way_through_streaming_is_skipped_cleanly(audio_dir):
    _write(audio_dir / "long.wav", 8.0, seed=5)
    ex = _extractor(max_seconds_in_memory=7.0, batch_size=64)
    real = ex._stream_slices

    def broken(path):
        for S in real(path):
            yield S
            raise UnreadableAudio(f"{path}: decoding failed half-way")

    ex.stream_block_slices = 1
    ex._stream_slices = broken
    paths = [audio_dir / "t1.wav", audio_dir / "long.wav", audio_dir / "t3.wav"]
    out = dict(ex.extract_many(paths))
    assert isinstance(out[1], UnreadableAudio)
    for i in (0, 2):
        np.testing.assert_allclose(out[i], _extractor().extract(paths[i]), rtol=1e-5, atol=1e-6)


def test_network_runner_is_built_before_the_decode_thread_starts(audio_dir, monkeypatch):
    """torch.fx tracing (the CPU inference optimisation) patches nn.Module.__call__ for the whole
    process: the runner must exist before the decode thread calls the mel module."""
    ex = _extractor(optimize=True, prefetch=2)
    seen = []
    original = ModelExtractor._prepare

    def spy(self, item):
        seen.append(self._runner_cache is not None)
        return original(self, item)

    monkeypatch.setattr(ModelExtractor, "_prepare", spy)
    out = dict(ex.extract_many([audio_dir / f"t{i}.wav" for i in range(4)]))
    assert len(out) == 4 and seen and all(seen)


def test_checkpoint_extractor_hashes_the_weights_once_and_refuses_a_damaged_file(tmp_path, monkeypatch):
    import mtdtl.checkpoint as ckpt
    from mtdtl.checkpoint import save_checkpoint
    from mtdtl.features.base import _hash_parts
    from mtdtl.io import file_sha256
    from mtdtl.models import build_model

    model = build_model("ss_r", ["tag"], width="tiny", n_out=4, seed=0)
    wpath = save_checkpoint(tmp_path / "run", model, {"front_end": FrontEnd(),
                                                      "scaler": {"mean": MEAN, "std": STD}})
    calls = []
    monkeypatch.setattr(ckpt, "file_sha256", lambda p: calls.append(p) or file_sha256(p))
    ex = ModelExtractor.from_checkpoint(tmp_path / "run", device="cpu")
    assert len(calls) == 1  # verified on load, and the same hash keys the feature cache
    sha = file_sha256(wpath)
    assert ex.meta["weights_sha256"] == sha
    assert ex.key == _hash_parts(sha, __import__("json").dumps(FrontEnd().to_dict(), sort_keys=True), MEAN, STD)
    raw = bytearray(wpath.read_bytes())
    raw[-3] ^= 0x01  # one flipped bit in a weight
    wpath.write_bytes(bytes(raw))
    with pytest.raises(MtdtlError, match="damaged"):
        ModelExtractor.from_checkpoint(tmp_path / "run", device="cpu")


def test_cache_dir_that_is_a_file_is_a_clear_error(audio_dir, tmp_path):
    a_file = tmp_path / "cache"
    a_file.write_text("x")
    with pytest.raises(MtdtlError, match="is a file"):
        extract_dataset(_extractor(), _tracks(audio_dir, ["t0.wav"]), dataset="d", cache_dir=a_file, progress=False)
    assert a_file.read_text() == "x"


def test_float32_fft_front_end_on_a_long_tonal_file(tmp_path):
    """The float32-FFT CPU kernel (``precision="float32"``): the same numbers through mel_db and
    the torch module, within 2e-3 dB of librosa on 60 s of tones over noise decoded from a file
    (measured: 7.7e-4 dB on bench_mel's clips, 1.8e-3 dB on the demo corpus' renders; the float64
    default stays within 1e-5 dB)."""
    import librosa

    from mtdtl.audio import MelSpectrogramDB

    rng = np.random.default_rng(3)
    t = np.arange(60 * SR) / SR
    tone = sum(np.sin(2 * np.pi * 220 * k * t * (1 + 0.01 * np.sin(0.3 * t))) / k ** 1.5 for k in range(1, 8))
    y = np.stack([0.2 * tone + 1e-3 * rng.standard_normal(t.size), 0.1 * tone + 1e-3 * rng.standard_normal(t.size)])
    sf.write(tmp_path / "long.flac", y.T, SR)
    y = load_audio(tmp_path / "long.flac")
    ref = np.moveaxis(librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=256,
                                                                         n_mels=128)), -1, -2)
    got = mel_db(y, precision="float32")
    assert np.abs(got - ref).max() <= 2e-3
    assert np.abs(mel_db(y) - ref).max() <= 1e-4
    np.testing.assert_array_equal(MelSpectrogramDB(precision="float32")(torch.from_numpy(y)[None])[0].numpy(), got)
