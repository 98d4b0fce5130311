"""mtdtl.store: build, crops against the front end, train-only scaler, skips, resume, float16."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import mtdtl.store.build as store_mod
from mtdtl.audio import FrontEnd, load_audio, mel_db, pad_to_min_frames, silence_db
from mtdtl.constants import CROP_FRAMES, SR
from mtdtl.errors import MtdtlError
from mtdtl.store import BandScaler, SpectrogramStore, build_store, clip_bytes, store_bytes, write_store

# track_id, seconds, split  (t_short is shorter than one 2.5 s crop)
CLIPS = [("t0", 3.0, "train"), ("t1", 3.5, "train"), ("t2", 4.0, "train"), ("t_short", 1.2, "train"),
         ("v0", 3.0, "valid"), ("x0", 3.2, "test"), ("x1", 2.8, "test")]


def _write_clip(path, seconds, rng, *, sr=SR, loud=1.0):
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 800)
    y = np.stack([0.3 * np.sin(2 * np.pi * (f0 + 300 * t) * t), 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)], 1)
    y = loud * (y + 0.02 * rng.standard_normal((n, 2)))
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_24")


@pytest.fixture
def corpus(tmp_path, rng):
    """Audio files under tmp_path/audio and a track table with relative paths; plus 3 bad files."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    for i, (tid, sec, split) in enumerate(CLIPS):
        # Test clips are 20 dB louder: a scaler that saw them would have a visibly different mean.
        _write_clip(audio / f"{tid}.flac", sec, rng, sr=SR if i % 2 else 44100, loud=10.0 if split == "test" else 1.0)
        rows.append((tid, f"audio/{tid}.flac", split))
    (audio / "corrupt.wav").write_bytes(b"RIFF" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (audio / "empty.flac").write_bytes(b"")
    sf.write(audio / "silent.wav", np.zeros((SR * 3, 2), np.float32), SR)
    rows += [("bad_corrupt", "audio/corrupt.wav", "train"), ("bad_empty", "audio/empty.flac", "train"),
             ("bad_silent", "audio/silent.wav", "valid")]
    return tmp_path, pd.DataFrame(rows, columns=["track_id", "path", "split"])


@pytest.fixture
def count_computed(monkeypatch):
    """Counts the clips the build actually decodes and transforms (in-process builds)."""
    calls: list[str] = []
    real = store_mod._compute_clip

    def counting(track_id, *args):
        calls.append(track_id)
        return real(track_id, *args)

    monkeypatch.setattr(store_mod, "_compute_clip", counting)
    return calls


def _expected(base, tid):
    """Raw dB spectrogram from the front end directly, time-major (n_frames, 2, 128), padded."""
    S = mel_db(load_audio(base / "audio" / f"{tid}.flac"))
    return pad_to_min_frames(S).transpose(1, 0, 2), S.shape[1]


def _f16_tol(x):
    return np.abs(x) * 2.0**-11 + 1e-6


def test_build_and_crops_match_the_front_end(corpus):
    base, tracks = corpus
    s = build_store(tracks, base / "store", base_dir=base, workers=0, progress=False)
    good = [c[0] for c in CLIPS]
    assert s.track_ids == good and len(s) == len(good)
    assert s.front_end == FrontEnd() and s.dtype == np.float16
    m = s.manifest
    assert list(m.columns[:6]) == ["track_id", "split", "path", "offset", "n_frames", "n_frames_audio"]
    assert (m["offset"].to_numpy() == np.r_[0, np.cumsum(m["n_frames"])[:-1]]).all()
    rng = np.random.default_rng(0)
    for tid in good:
        i = s.index_of(tid)
        exp, n_audio = _expected(base, tid)
        got = s.frames(i)
        assert got.shape == exp.shape == (s.n_frames(i), 2, 128) and got.dtype == np.float32
        assert np.all(np.abs(got - exp) <= _f16_tol(exp)), tid
        assert m.loc[i, "n_frames_audio"] == n_audio
        start = int(rng.integers(0, s.n_frames(i) - CROP_FRAMES + 1))
        c = s.crop(i, start, scaled=False)
        assert c.shape == (2, CROP_FRAMES, 128) and c.dtype == np.float32
        np.testing.assert_array_equal(c, got[start:start + CROP_FRAMES].transpose(1, 0, 2))
        z = s.crop(i, start)
        np.testing.assert_allclose(z, (c - s.scaler.mean) / s.scaler.std, rtol=1e-5, atol=1e-5)
    idx = np.array([0, 2, 2, 5, 3])
    starts = s.random_starts(idx, np.random.default_rng(1))
    batch = s.crops(idx, starts)
    assert batch.shape == (5, 2, CROP_FRAMES, 128) and batch.dtype == np.float32
    for b in range(5):
        np.testing.assert_array_equal(batch[b], s.crop(idx[b], starts[b]))
    # Reopen from disk, and survive pickling (DataLoader workers).
    s2 = pickle.loads(pickle.dumps(SpectrogramStore.open(base / "store")))
    np.testing.assert_array_equal(s2.crops(idx, starts), batch)
    assert sorted(p.name for p in (base / "store").iterdir()) == [
        "build_report.json", "clip_stats.npz", "manifest.csv", "scaler.npz", "spectrograms.npy", "store.json"]


def test_bad_clips_are_skipped_and_reported(corpus, caplog):
    base, tracks = corpus
    s = build_store(tracks, base / "store", base_dir=base, workers=0, progress=False)
    report = json.loads((base / "store" / "build_report.json").read_text())
    assert report["requested"] == len(tracks) and report["stored"] == len(CLIPS)
    reasons = {r["track_id"]: r["reason"] for r in report["skipped"]}
    assert set(reasons) == {"bad_corrupt", "bad_empty", "bad_silent"}
    assert "corrupt.wav" in reasons["bad_corrupt"] and "empty.flac" in reasons["bad_empty"]
    assert "silent" in reasons["bad_silent"]
    assert "skipped bad_corrupt" in caplog.text
    assert s.report["skipped"] == report["skipped"]
    with pytest.raises(MtdtlError, match="bad_silent"):
        s.index_of("bad_silent")


def test_short_clip_is_padded_with_silence_not_junk(corpus):
    base, tracks = corpus
    s = build_store(tracks, base / "store", base_dir=base, workers=0, progress=False)
    i = s.index_of("t_short")
    row = s.manifest.loc[i]
    assert row["n_frames_audio"] < CROP_FRAMES == row["n_frames"] == s.n_frames(i)
    x = s.frames(i)
    silence = np.float16(silence_db(x[: row["n_frames_audio"]]))
    assert np.all(x[row["n_frames_audio"]:] == silence)
    assert s.report["padded_short_clips"] == 1
    assert s.crop(i, 0).shape == (2, CROP_FRAMES, 128)
    with pytest.raises(MtdtlError, match="outside"):
        s.crop(i, 1)


def test_scaler_is_fit_on_train_only(corpus):
    base, tracks = corpus
    s = build_store(tracks, base / "store", base_dir=base, workers=0, progress=False)
    frames = {}
    for tid, _, split in CLIPS:
        exp, n_audio = _expected(base, tid)
        frames.setdefault(split, []).append(exp[:n_audio].astype(np.float16).astype(np.float64).reshape(-1, 128))
    train = np.concatenate(frames["train"])
    sc = s.scaler
    assert sc.split == "train" and sc.n_clips == 4 and sc.n_frames == train.shape[0]
    np.testing.assert_allclose(sc.mean, train.mean(0), atol=1e-3)
    np.testing.assert_allclose(sc.std, train.std(0), rtol=1e-4, atol=1e-3)
    everything = np.concatenate([np.concatenate(v) for v in frames.values()])
    assert np.abs(everything.mean(0) - sc.mean).max() > 1.0  # test clips are 20 dB louder
    assert s.fit_scaler("test").n_clips == 2
    # Standardised real train frames are centred and unit-variance per band.
    z = np.concatenate([s.frames(i, scaled=True)[: s.manifest.loc[i, "n_frames_audio"]].reshape(-1, 128)
                        for i in s.indices("train")])
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    loaded = BandScaler.load(base / "store" / "scaler.npz")
    np.testing.assert_array_equal(loaded.mean, sc.mean)


def test_resume_after_interruption_does_not_recompute(corpus, count_computed):
    base, tracks = corpus
    out = base / "store"
    seen = []

    def stop_after_three(track_id, status):
        seen.append((track_id, status))
        if len(seen) == 3:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        build_store(tracks, out, base_dir=base, workers=0, progress=False, on_clip=stop_after_three)
    assert not (out / "store.json").exists()
    with pytest.raises(MtdtlError, match="unfinished build"):
        SpectrogramStore.open(out)
    chunks = sorted((out / "_work" / "chunks").glob("*.npz"))
    assert len(chunks) == 3  # whole chunks only, no temporary files left
    assert not list((out / "_work" / "chunks").glob(".*"))
    first = [t for t, _ in seen]

    count_computed.clear()
    s = build_store(tracks, out, base_dir=base, workers=0, progress=False)
    assert not set(first) & set(count_computed)
    assert sorted(count_computed) == sorted(set(tracks["track_id"]) - set(first))
    assert not (out / "_work").exists()
    # Same result as an uninterrupted build.
    fresh = build_store(tracks, base / "fresh", base_dir=base, workers=0, progress=False)
    np.testing.assert_array_equal(np.asarray(s._array()), np.asarray(fresh._array()))
    np.testing.assert_array_equal(s.scaler.mean, fresh.scaler.mean)


def test_interrupted_consolidation_resumes_without_recomputing(corpus, count_computed, monkeypatch):
    base, tracks = corpus
    out = base / "store"
    real = BandScaler.from_sums

    def boom(*a, **k):  # fails after the array is written and the chunks deleted
        raise RuntimeError("crash during publish")

    monkeypatch.setattr(BandScaler, "from_sums", boom)
    with pytest.raises(RuntimeError):
        build_store(tracks, out, base_dir=base, workers=0, progress=False)
    assert not list((out / "_work" / "chunks").glob("*.npz"))  # moved into the partial array
    monkeypatch.setattr(BandScaler, "from_sums", real)
    count_computed.clear()
    s = build_store(tracks, out, base_dir=base, workers=0, progress=False)
    assert set(count_computed) <= {"bad_corrupt", "bad_empty", "bad_silent"}  # only skips are retried
    exp, _ = _expected(base, "t2")
    got = s.frames(s.index_of("t2"))
    assert np.all(np.abs(got - exp) <= _f16_tol(exp))


def test_rebuild_reuses_a_complete_store(corpus, count_computed, rng):
    base, tracks = corpus
    out = base / "store"
    s = build_store(tracks, out, base_dir=base, workers=0, progress=False)
    before = s.frames(s.index_of("t1"))
    mtime = (out / "spectrograms.npy").stat().st_mtime_ns
    count_computed.clear()
    build_store(tracks, out, base_dir=base, workers=0, progress=False)
    assert set(count_computed) <= {"bad_corrupt", "bad_empty", "bad_silent"}
    assert (out / "spectrograms.npy").stat().st_mtime_ns == mtime  # untouched
    # Add a track: only it is computed; the old clips are copied, not recomputed.
    _write_clip(base / "audio" / "n0.flac", 3.0, rng)
    more = pd.concat([tracks, pd.DataFrame([("n0", "audio/n0.flac", "train")], columns=tracks.columns)])
    count_computed.clear()
    s2 = build_store(more, out, base_dir=base, workers=0, progress=False)
    assert set(count_computed) - {"bad_corrupt", "bad_empty", "bad_silent"} == {"n0"}
    np.testing.assert_array_equal(s2.frames(s2.index_of("t1")), before)
    assert s2.scaler.n_clips == 5
    # A changed source file is recomputed.
    os.utime(base / "audio" / "t0.flac", ns=(1, 1))
    count_computed.clear()
    build_store(more, out, base_dir=base, workers=0, progress=False)
    assert "t0" in count_computed and "t1" not in count_computed
    # A damaged store (array deleted) is rebuilt rather than blocking the build.
    (out / "spectrograms.npy").unlink()
    with pytest.raises(MtdtlError, match="spectrograms.npy"):
        SpectrogramStore.open(out)
    s3 = build_store(more, out, base_dir=base, workers=0, progress=False)
    np.testing.assert_array_equal(s3.frames(s3.index_of("t1")), before)
    # A different front end is refused, not mixed in.
    with pytest.raises(MtdtlError, match="hop"):
        build_store(more, out, base_dir=base, workers=0, progress=False, front_end=FrontEnd(hop=512))


def test_worker_processes(corpus):
    base, tracks = corpus
    s = build_store(tracks.iloc[:4], base / "store", base_dir=base, workers=2, progress=False)
    exp, _ = _expected(base, "t1")
    assert np.all(np.abs(s.frames(s.index_of("t1")) - exp) <= _f16_tol(exp))


def test_float16_error_bound(rng):
    x = rng.uniform(-110, 60, 200_000).astype(np.float32)
    err = np.abs(x.astype(np.float16).astype(np.float32) - x)
    assert np.all(err <= np.abs(x) * 2.0**-11 + 1e-7)
    assert err[np.abs(x) < 64].max() <= 1 / 32
    assert err.max() <= 1 / 16


def test_disk_size_at_paper_scale():
    assert clip_bytes(30.0) == 2584 * 2 * 128 * 2 == 1_323_008
    assert store_bytes() == 46_490 * 1_323_008  # 61.5 GB in float16
    assert store_bytes(dtype="float32") == 2 * store_bytes()
    assert clip_bytes(1.0) == CROP_FRAMES * 2 * 128 * 2  # short clips are padded to one crop


def test_bad_tracks_and_stores_raise(corpus, tmp_path):
    base, tracks = corpus
    with pytest.raises(MtdtlError, match="not found"):
        SpectrogramStore.open(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(MtdtlError, match="store.json"):
        SpectrogramStore.open(tmp_path / "half")
    with pytest.raises(MtdtlError, match="split"):
        build_store(tracks.drop(columns="split"), tmp_path / "a", base_dir=base, progress=False)
    with pytest.raises(MtdtlError, match="duplicated"):
        build_store(pd.concat([tracks, tracks.iloc[:1]]), tmp_path / "a", base_dir=base, progress=False)
    with pytest.raises(MtdtlError, match="relative"):
        build_store(tracks, tmp_path / "a", progress=False)
    with pytest.raises(MtdtlError, match="empty"):
        build_store(tracks.iloc[:0], tmp_path / "a", progress=False)
    only_bad = tracks[tracks["track_id"].str.startswith("bad")]
    with pytest.raises(MtdtlError, match="every clip was skipped"):
        build_store(only_bad, tmp_path / "b", base_dir=base, workers=0, progress=False)
    assert not (tmp_path / "b" / "store.json").exists()
    no_train = tracks[tracks["split"] == "test"]
    with pytest.raises(MtdtlError, match="train"):
        build_store(no_train, tmp_path / "c", base_dir=base, workers=0, progress=False)
    assert not (tmp_path / "c" / "store.json").exists()
    s = build_store(no_train, tmp_path / "c", base_dir=base, workers=0, progress=False, train_split="test")
    with pytest.raises(MtdtlError, match="out of range"):
        s.crops([5], [0])
    with pytest.raises(MtdtlError):
        s.crops([0, 1], [0])


def test_out_dir_that_is_a_file_is_a_clear_error(corpus, tmp_path):
    base, tracks = corpus
    a_file = tmp_path / "store.txt"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "store"):
        with pytest.raises(MtdtlError, match="is a file"):
            build_store(tracks, out, base_dir=base, workers=0, progress=False)
        with pytest.raises(MtdtlError, match="is a file"):
            write_store([("t0", "train", np.full((2, 300, 128), -50.0, np.float32))], out)
    assert a_file.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "store.txt"]  # nothing partial


def test_truncated_spectrogram_array_is_a_clear_error(tmp_path):
    S = np.random.default_rng(0).normal(-50, 10, (2, 300, 128)).astype(np.float32)
    out = tmp_path / "store"
    write_store([("t0", "train", S), ("t1", "valid", S)], out)
    arr = out / "spectrograms.npy"
    arr.write_bytes(arr.read_bytes()[: arr.stat().st_size // 2])  # an interrupted copy
    with pytest.raises(MtdtlError, match=r"spectrograms.npy is damaged or truncated.*build it again"):
        SpectrogramStore.open(out)
    arr.write_bytes(b"garbage")
    with pytest.raises(MtdtlError, match="damaged or truncated"):
        SpectrogramStore.open(out)


@pytest.mark.parametrize("n_frames", [CROP_FRAMES - 50, 2584])
def test_chunk_arrays_are_bit_identical_to_numpy_half_float_rounding(n_frames):
    """chunk_arrays converts through torch (fast); the stored values and the float64 sums must be
    exactly numpy's (a store built before the change and one built after hold the same bytes)."""
    rng = np.random.default_rng(3)
    S = (rng.standard_normal((2, n_frames, 128)) * 25 - 45).astype(np.float32)
    S[0, :10] = -100.0  # digital silence and values near float16's rounding steps
    S[1, 5:8] = np.float32(64.015625)
    for dtype in ("float16", "float32"):
        T, s, ss = store_mod.chunk_arrays(S, front_end=FrontEnd(), dtype=dtype)
        ref = np.ascontiguousarray(pad_to_min_frames(S, front_end=FrontEnd()).transpose(1, 0, 2)).astype(dtype)
        real = ref[:n_frames].astype(np.float64)
        assert T.dtype == np.dtype(dtype) and T.flags.c_contiguous
        assert T.tobytes() == ref.tobytes()
        assert s.tobytes() == real.sum(axis=(0, 1)).tobytes()
        assert ss.tobytes() == np.square(real).sum(axis=(0, 1)).tobytes()
