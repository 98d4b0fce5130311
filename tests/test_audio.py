"""mtdtl.audio: decoding, channels, resampling, librosa parity of the dB mel front end, short clips."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from mtdtl.audio import (
    FrontEnd,
    MelSpectrogramDB,
    downmix,
    is_silent,
    load_audio,
    mel_db,
    n_frames_for,
    pad_to_min_frames,
    silence_db,
)
from mtdtl.constants import CROP_FRAMES, SR
from mtdtl.errors import MtdtlError

FE = FrontEnd()


def librosa_db(y: np.ndarray) -> np.ndarray:
    """The reference: librosa's melspectrogram + power_to_db (defaults), made time-major."""
    S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=256, n_mels=128)
    return np.moveaxis(librosa.power_to_db(S), -1, -2)


def chirp(seconds: float, *, sr: int = SR, f0: float = 100.0, f1: float = 3000.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.sin(2 * np.pi * (f0 + (f1 - f0) * t / (2 * seconds)) * t)


def signals(rng: np.random.Generator, seconds: float = 3.0) -> dict[str, np.ndarray]:
    """Stereo test signals: the hard case is a loud pure tone (80 dB range inside one frame)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    c = chirp(seconds)
    harm = sum(np.sin(2 * np.pi * 220 * k * t) / k**2 for k in range(1, 16))
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, 12)] = 1.0
    noise = rng.standard_normal((2, n))
    out = {
        "chirp": np.stack([0.5 * c, 0.5 * c[::-1]]),
        "chirp+quiet noise": np.stack([0.5 * c + 1e-3 * noise[0], 0.3 * c + 1e-3 * noise[1]]),
        "harmonics": np.stack([0.3 * harm, 0.2 * harm]),
        "noise": 0.1 * noise,
        "clicks": np.stack([clicks, 0.5 * clicks]),
        "quiet noise": 1e-4 * noise,
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


# --------------------------------------------------------------------------------------
# librosa parity
# --------------------------------------------------------------------------------------


def test_mel_db_matches_librosa_within_1e3_db(rng):
    for name, y in signals(rng).items():
        ours, ref = mel_db(y), librosa_db(y)
        assert ours.shape == (2, n_frames_for(y.shape[1]), 128) == ref.shape, name
        assert ours.dtype == np.float32
        assert np.max(np.abs(ours - ref)) <= 1e-3, name


def test_top_db_floor_is_global_over_both_channels(rng):
    y = signals(rng)["noise"]
    y[1] *= 10 ** (-70 / 20)  # right channel 70 dB quieter: per-channel floors would differ
    y[:, : SR // 2] = 0.0  # and a silent start
    ours, ref = mel_db(y), librosa_db(y)
    assert np.max(np.abs(ours - ref)) <= 1e-3
    floor = ours.max() - 80.0
    assert ours.min() == pytest.approx(floor, abs=1e-4)
    # The quiet channel is clipped at the *global* floor, far above its own max - 80.
    assert ours[1].min() == pytest.approx(floor, abs=1e-4)
    assert ours[1].min() > ours[1].max() - 80.0 + 10.0


def test_mono_input_and_librosa_1d(rng):
    y = signals(rng)["chirp+quiet noise"][0]
    ours = mel_db(y)
    assert ours.shape == (n_frames_for(y.size), 128)
    assert np.max(np.abs(ours - librosa_db(y))) <= 1e-3


def test_torch_module_batch_matches_mel_db_and_librosa(rng):
    sig = signals(rng, seconds=2.0)
    batch = np.stack([sig["chirp"], sig["noise"], sig["clicks"]])
    module = MelSpectrogramDB(FE)
    out = module(torch.from_numpy(batch))
    assert out.shape == (3, 2, n_frames_for(batch.shape[-1]), 128) and out.dtype == torch.float32
    for i in range(3):
        assert np.max(np.abs(out[i].numpy() - mel_db(batch[i]))) <= 1e-5
        assert np.max(np.abs(out[i].numpy() - librosa_db(batch[i]))) <= 1e-3
    # The torch.stft float64 path (the one CUDA inputs take), exercised on CPU.
    module.cpu_kernel = False
    out2 = module(torch.from_numpy(batch))
    for i in range(3):
        assert np.max(np.abs(out2[i].numpy() - librosa_db(batch[i]))) <= 1e-3


def test_float32_precision_close_on_broadband_audio(rng):
    sig = signals(rng, seconds=2.0)
    for name in ("noise", "clicks"):
        y = sig[name]
        assert np.max(np.abs(mel_db(y, precision="float32") - librosa_db(y))) <= 1e-3, name
    with pytest.raises(MtdtlError, match="precision"):
        mel_db(sig["noise"], precision="float16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_module_on_cuda_matches_librosa(rng):
    sig = signals(rng, seconds=2.0)
    batch = np.stack([sig["chirp"], sig["harmonics"]])
    module = MelSpectrogramDB(FE).cuda()
    out = module(torch.from_numpy(batch).cuda())
    assert out.device.type == "cuda"
    for i in range(2):
        assert np.max(np.abs(out[i].cpu().numpy() - librosa_db(batch[i]))) <= 1e-3


def test_mel_db_rejects_bad_input():
    with pytest.raises(MtdtlError):
        mel_db(np.zeros((2, 0), np.float32))
    with pytest.raises(MtdtlError):
        mel_db(np.full((2, 1000), np.nan, np.float32))
    with pytest.raises(MtdtlError):
        mel_db(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(MtdtlError):
        MelSpectrogramDB()(torch.zeros(2, 1000))


# --------------------------------------------------------------------------------------
# FrontEnd
# --------------------------------------------------------------------------------------


def test_front_end_roundtrip_and_compare():
    fe = FrontEnd()
    d = json.loads(json.dumps(fe.to_dict()))
    assert FrontEnd.from_dict(d) == fe
    assert (fe.sr, fe.n_fft, fe.hop, fe.n_mels, fe.top_db, fe.ref) == (22050, 1024, 256, 128, 80.0, 1.0)
    with pytest.raises(Exception):
        fe.sr = 16000  # frozen
    other = FrontEnd(hop=512)
    assert fe.diff(other) == {"hop": (256, 512)}
    with pytest.raises(MtdtlError, match="hop"):
        fe.check_compatible(other)
    fe.check_compatible(FrontEnd.from_dict(d))
    with pytest.raises(MtdtlError, match="unknown"):
        FrontEnd.from_dict({**d, "colour": "blue"})
    with pytest.raises(MtdtlError):
        FrontEnd(n_channels=1)
    assert fe.floor_db == pytest.approx(-100.0)
    assert fe.n_frames(30 * SR) == 2584


# --------------------------------------------------------------------------------------
# Decoding, channels, resampling
# --------------------------------------------------------------------------------------


def test_mono_is_duplicated(tmp_path, rng):
    y = (0.2 * rng.standard_normal(SR)).astype(np.float32)
    sf.write(tmp_path / "mono.wav", y, SR, subtype="FLOAT")
    x = load_audio(tmp_path / "mono.wav")
    assert x.shape == (2, SR) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_allclose(x[0], y, atol=1e-7)


def test_stereo_is_kept(tmp_path, rng):
    y = (0.2 * rng.standard_normal((SR, 2))).astype(np.float32)
    sf.write(tmp_path / "st.wav", y, SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav"), y.T, atol=1e-7)


def test_four_channels_are_downmixed(tmp_path, rng):
    y = (0.2 * rng.standard_normal((SR, 4))).astype(np.float32)
    sf.write(tmp_path / "quad.wav", y, SR, subtype="FLOAT")
    x = load_audio(tmp_path / "quad.wav")
    a = 1 / math.sqrt(2)
    left = (y[:, 0] + a * y[:, 2] + a * y[:, 3]) / (1 + 2 * a)
    right = (y[:, 1] + a * y[:, 2] + a * y[:, 3]) / (1 + 2 * a)
    assert x.shape == (2, SR)
    np.testing.assert_allclose(x, np.stack([left, right]), atol=1e-6)
    # The weights sum to one per output: a full-scale signal on every channel cannot clip.
    assert np.abs(downmix(np.ones((6, 10), np.float32))).max() <= 1.0 + 1e-6


@pytest.mark.parametrize("sr_in", [44100, 16000])
def test_resampling_to_22050(tmp_path, sr_in):
    t = np.arange(2 * sr_in) / sr_in
    y = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    sf.write(tmp_path / f"s{sr_in}.wav", np.stack([y, 0.5 * y], 1), sr_in, subtype="FLOAT")
    x = load_audio(tmp_path / f"s{sr_in}.wav")
    assert x.shape == (2, 2 * SR)
    expected = soxr.resample(y, sr_in, SR, quality="HQ")
    np.testing.assert_allclose(x[0], expected, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(x[0]))
    assert np.fft.rfftfreq(x.shape[1], 1 / SR)[np.argmax(spectrum)] == pytest.approx(1000, abs=1)
    np.testing.assert_allclose(x[1], 0.5 * x[0], atol=1e-6)


def _formats():
    out = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("au", "AU", "PCM_16")]
    if "MP3" in sf.available_formats():
        out.append(("mp3", "MP3", "MPEG_LAYER_III"))
    return out


@pytest.mark.parametrize("ext,fmt,subtype", _formats())
def test_reads_common_formats(tmp_path, ext, fmt, subtype):
    sr_in = 44100
    t = np.arange(sr_in) / sr_in
    y = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, y, sr_in, format=fmt, subtype=subtype)
    x = load_audio(path)
    assert x.shape[0] == 2 and x.dtype == np.float32
    assert abs(x.shape[1] - SR) <= 0.1 * SR  # lossy codecs add encoder delay / padding
    for ch, f in ((0, 440), (1, 660)):
        spectrum = np.abs(np.fft.rfft(x[ch]))
        assert np.fft.rfftfreq(x.shape[1], 1 / SR)[np.argmax(spectrum)] == pytest.approx(f, abs=3)
    if ext in ("wav", "flac", "au"):  # lossless: equal to resampling the source
        ref = soxr.resample(y, sr_in, SR, quality="HQ").T
        np.testing.assert_allclose(x, ref, atol=2e-4)


def test_unreadable_files_raise_naming_the_file(tmp_path, rng):
    missing = tmp_path / "missing.wav"
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    truncated = tmp_path / "truncated.flac"
    sf.write(truncated, rng.standard_normal((SR, 2)).astype(np.float32) * 0.1, SR)
    truncated.write_bytes(truncated.read_bytes()[:40])
    no_samples = tmp_path / "nosamples.wav"
    sf.write(no_samples, np.zeros((0, 2), np.float32), SR)
    for p in (missing, empty, garbage, text, truncated, no_samples):
        with pytest.raises(MtdtlError, match=p.name):
            load_audio(p)


@pytest.mark.parametrize("fmt,ext,subtype", [("WAV", "wav", "PCM_16"), ("WAV", "wav", "FLOAT"),
                                            ("AIFF", "aiff", "PCM_16")])
def test_truncated_file_decodes_what_is_there_with_a_warning(tmp_path, rng, caplog, fmt, ext, subtype):
    path = tmp_path / f"cut.{ext}"
    sf.write(path, rng.standard_normal((5 * SR, 2)).astype(np.float32) * 0.1, SR, format=fmt, subtype=subtype)
    whole = path.read_bytes()
    with caplog.at_level("WARNING", logger="mtdtl.audio"):
        load_audio(path)
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]  # a whole file: no warning
    path.write_bytes(whole[:int(len(whole) * 0.34)])  # header says 5 s, about 1.7 s of data
    with caplog.at_level("WARNING", logger="mtdtl.audio"):
        y = load_audio(path)
    assert y.shape[0] == 2 and 1.6 * SR < y.shape[1] < 1.8 * SR
    msgs = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(msgs) == 1 and str(path) in msgs[0] and "5.00 s" in msgs[0]


def test_is_silent(rng):
    assert is_silent(np.zeros((2, 1000), np.float32))
    assert is_silent(np.zeros((2, 0), np.float32))
    assert is_silent(1e-5 * rng.standard_normal((2, 1000)))  # -100 dBFS peak-ish
    assert not is_silent(1e-2 * rng.standard_normal((2, 1000)))
    assert not is_silent(np.r_[np.zeros(999), 0.5])  # one click is not silence


# --------------------------------------------------------------------------------------
# Short-clip policy
# --------------------------------------------------------------------------------------


def test_short_clip_is_padded_with_true_db_silence(rng):
    y = signals(rng, seconds=1.0)["chirp+quiet noise"]
    S = mel_db(y)
    n = S.shape[1]
    assert n < CROP_FRAMES
    P = pad_to_min_frames(S)
    assert P.shape == (2, CROP_FRAMES, 128) and P.dtype == S.dtype
    np.testing.assert_array_equal(P[:, :n], S)
    silence = silence_db(S)
    assert silence == pytest.approx(max(-100.0, float(S.max()) - 80.0))
    assert np.all(P[:, n:] == np.float32(silence))
    # It is exactly what the front end gives a digitally silent stretch of the same clip.
    z = mel_db(np.concatenate([y, np.zeros((2, 2 * SR), np.float32)], axis=1))
    np.testing.assert_allclose(z[:, n + 10:n + 100], silence, atol=1e-4)


def test_pad_leaves_long_clips_and_refuses_empty(rng):
    S = mel_db(signals(rng, seconds=3.0)["noise"])
    assert pad_to_min_frames(S) is S
    with pytest.raises(MtdtlError):
        pad_to_min_frames(np.zeros((2, 0, 128), np.float32))
    # A quiet clip (max below -20 dB): silence is the absolute floor 10 log10(amin) = -100 dB.
    q = mel_db((1e-5 * rng.standard_normal((2, SR))).astype(np.float32))
    assert q.max() < -20.0
    assert silence_db(q) == pytest.approx(-100.0)
    assert np.all(pad_to_min_frames(q)[:, q.shape[1]:] == np.float32(-100.0))
