"""Target spectrogram stores (mtdtl.store.targets) and bf16 inference of ModelExtractor.

The target store computes each target track's dB mel once; every representation with that
front end then reads float16 slices from it and applies its own scaler. Tested with the stand-in
network of tests/test_features.py (counted calls, fast) and, in a slow test, a real SS-R on the
tiny demo corpus.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from test_features import MEAN, STD, StubNet, _extractor, _write  # noqa: F401  (shared stand-ins)

import mtdtl.audio
import mtdtl.store.build
from mtdtl.audio import FrontEnd
from mtdtl.errors import MtdtlError
from mtdtl.features import ModelExtractor, extract_dataset, get_extractor
from mtdtl.store.targets import (
    StoredClip,
    ensure_target_store,
    stored_items,
    target_store_path,
    target_stores_dir,
)

SR = 22050


@pytest.fixture
def audio(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    for i, dur in enumerate([1.0, 6.0, 12.5, 3.0]):
        _write(d / f"t{i}.wav", dur, seed=i)
    _write(d / "long.wav", 14.0, sr=44100, seed=7, channels=1)  # streamed: max_seconds_in_memory=13
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(d / "silent.wav", np.zeros((SR * 3, 2)), SR)
    return d


NAMES = ["t0.wav", "t1.wav", "corrupt.wav", "t2.wav", "long.wav", "silent.wav", "t3.wav"]


def _tracks(d, names=NAMES):
    return pd.DataFrame({"track_id": [n.split(".")[0] for n in names], "path": [str(d / n) for n in names]})


@pytest.fixture
def counted(monkeypatch):
    """Counts whole-clip mel computations (the store builder's and the extractor's) and streamed files."""
    calls = {"store": 0, "extractor": 0, "streamed": 0}
    real_mel_db = mtdtl.store.build.mel_db
    real_mel_raw = ModelExtractor._mel_raw
    real_stream = ModelExtractor._stream_slices

    def mel_db(y, **kw):
        calls["store"] += 1
        return real_mel_db(y, **kw)

    def mel_raw(self, y):
        calls["extractor"] += 1
        return real_mel_raw(self, y)

    def stream(self, path):
        calls["streamed"] += 1
        return real_stream(self, path)

    monkeypatch.setattr(mtdtl.store.build, "mel_db", mel_db)
    monkeypatch.setattr(ModelExtractor, "_mel_raw", mel_raw)
    monkeypatch.setattr(ModelExtractor, "_stream_slices", stream)
    return calls


def _ex(seed=0, mean=MEAN, std=STD, **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("optimize", False)
    kw.setdefault("max_seconds_in_memory", 13.0)
    return ModelExtractor(StubNet(seed), front_end=FrontEnd(), scaler_mean=mean, scaler_std=std,
                          name=f"stub{seed}", **kw)


def test_mel_of_each_target_track_is_computed_once_across_representations(audio, tmp_path, counted, caplog):
    tracks = _tracks(audio)
    cache = tmp_path / "cache"
    with caplog.at_level("INFO"):
        a = extract_dataset(_ex(0), tracks, dataset="fixture", cache_dir=cache, progress=False, store_workers=0)
    # the first representation computes t0-t3 once each and writes them through into the store;
    # long.wav is streamed (not stored); corrupt and silent fail before any mel and are remembered
    assert counted == {"store": 0, "extractor": 4, "streamed": 1}
    assert "4 clips added while extracting" in caplog.text and "GB on disk" in caplog.text
    assert sorted(a.track_ids) == ["long", "t0", "t1", "t2", "t3"]
    assert set(a.skipped.track_id) == {"corrupt", "silent"} and "silent" in " ".join(a.skipped.reason)
    folder = target_store_path("fixture", FrontEnd())
    assert folder.parent == target_stores_dir() and (folder / "store.json").is_file()
    assert not (folder / "_work").exists()
    from mtdtl.store import SpectrogramStore

    assert sorted(SpectrogramStore.open(folder).track_ids) == ["t0", "t1", "t2", "t3"]

    # a second representation (other weights, other scaler): no mel computed for stored tracks,
    # unreadable files not retried by the store (extraction still reports them)
    other_mean, other_std = MEAN + 5.0, STD * 1.3
    caplog.clear()
    with caplog.at_level("INFO"):
        b = extract_dataset(_ex(1, other_mean, other_std), tracks, dataset="fixture", cache_dir=cache,
                            progress=False, store_workers=0)
    assert counted == {"store": 0, "extractor": 4, "streamed": 2}  # only the long file, streamed again
    assert "4 of 7 tracks read from the target store" in caplog.text
    assert list(b.track_ids) == list(a.track_ids) and set(b.skipped.track_id) == {"corrupt", "silent"}

    # the first representation again, now warm: the very numbers it computed cold (it extracted
    # from the stored float16 values while writing them)
    again = extract_dataset(_ex(0), tracks, dataset="fixture", cache_dir=tmp_path / "c3", progress=False)
    np.testing.assert_allclose(again.X, a.X, rtol=1e-5, atol=1e-6)
    assert counted["extractor"] == 4

    # the same numbers as computing the spectrograms directly, within float16 rounding
    for seed, mean, std, got in [(0, MEAN, STD, a), (1, other_mean, other_std, b)]:
        direct = extract_dataset(_ex(seed, mean, std), tracks, dataset="direct", cache_dir=tmp_path / "c2",
                                 progress=False, target_store=False)
        assert list(direct.track_ids) == list(got.track_ids)
        rel = np.linalg.norm(got.X - direct.X) / np.linalg.norm(direct.X)
        assert rel < 1e-3, rel
        np.testing.assert_allclose(got.X, direct.X, rtol=0, atol=5e-3 * np.abs(direct.X).max())
        assert not np.array_equal(got.X[:4], direct.X[:4])  # really read from the float16 store
        # the streamed long file does not go through the store: identical
        k = list(got.track_ids).index("long")
        np.testing.assert_allclose(got.X[k], direct.X[k], rtol=1e-5, atol=1e-6)
    assert not target_store_path("direct", FrontEnd()).exists()


def test_an_interrupted_first_extraction_keeps_what_it_wrote(audio, tmp_path, counted):
    tracks = _tracks(audio, ["t0.wav", "t1.wav", "t2.wav", "t3.wav"])
    ex = _ex()
    real = ex.extract_many

    class Interrupted(Exception):
        pass

    def failing(items, progress=False):
        for n, (i, v) in enumerate(real(items, progress=progress)):
            if n == 2:
                raise Interrupted
            yield i, v

    ex.extract_many = failing
    with pytest.raises(Interrupted):
        extract_dataset(ex, tracks, dataset="int", cache_dir=tmp_path / "c", progress=False, store_workers=0)
    n_first = counted["extractor"]
    assert n_first >= 2  # the decode thread may have run ahead
    # the next representation consolidates those chunks first and computes only the rest
    fs = extract_dataset(_ex(1), tracks, dataset="int", cache_dir=tmp_path / "c", progress=False, store_workers=0)
    assert fs.X.shape == (4, 16) and counted["store"] == 0 and counted["extractor"] == 4
    assert not (target_store_path("int", FrontEnd()) / "_work").exists()


def test_build_first_instead_of_write_through(audio, tmp_path, counted):
    from mtdtl.store.targets import open_target_store

    tracks = _tracks(audio, ["t0.wav", "t1.wav", "corrupt.wav"])
    sess = open_target_store(tracks, dataset="bf", front_end=FrontEnd(), root=tmp_path, write_through=False,
                             workers=0)
    assert counted["store"] == 2 and sess.n_stored == 2 and sess.n_write_through == 0
    assert sess.items()[2] == str(audio / "corrupt.wav") and sess.finish() is sess.store


def test_store_slices_equal_the_extractor_slices(audio, tmp_path):
    tracks = _tracks(audio, ["t0.wav", "t2.wav"])
    store = ensure_target_store(tracks, dataset="s", front_end=FrontEnd(), root=tmp_path / "ts", workers=0,
                                progress=False)
    items = stored_items(store, tracks.track_id.tolist(), tracks.path.tolist())
    assert all(isinstance(x, StoredClip) for x in items)
    ex = _ex()
    for item in items:
        got = item.raw_slices()
        want = ex.slices(ex._load(item.path))  # 1 s (padded to one slice), 12.5 s (5 slices)
        assert got.dtype == torch.float16 and got.shape == want.shape and got.is_contiguous()
        assert torch.equal(item.raw_slices(torch.float32), got.float())
        err = (got.float() - want).abs()
        assert float((err / want.abs().clamp_min(1.0)).max()) <= 2.0 ** -11 + 1e-6  # float16 rounding only


def test_store_is_extended_never_shrunk_and_changed_files_are_recomputed(audio, tmp_path, counted):
    root = tmp_path / "ts"
    fe = FrontEnd()
    kw = {"dataset": "ext", "front_end": fe, "root": root, "workers": 0, "progress": False}
    s = ensure_target_store(_tracks(audio, ["t0.wav", "t1.wav"]), **kw)
    assert counted["store"] == 2 and len(s) == 2
    s = ensure_target_store(_tracks(audio, ["t1.wav"]), **kw)  # fewer tracks: nothing computed, nothing dropped
    assert counted["store"] == 2 and len(s) == 2
    s = ensure_target_store(_tracks(audio, ["t1.wav", "t3.wav", "corrupt.wav"]), **kw)
    assert counted["store"] == 3 and sorted(s.track_ids) == ["t0", "t1", "t3"]
    ensure_target_store(_tracks(audio, ["corrupt.wav"]), **kw)  # known unreadable: not retried
    assert counted["store"] == 3
    _write(audio / "t1.wav", 4.0, seed=9)  # the file changed: recomputed, the new audio stored
    os.utime(audio / "t1.wav", ns=(1, 1))
    s = ensure_target_store(_tracks(audio, ["t1.wav"]), **kw)
    assert counted["store"] == 4 and s.n_frames(s.index_of("t1")) == 1 + 4 * SR // 256
    items = stored_items(s, ["t1", "t0"], [str(audio / "t1.wav"), str(audio / "t0.wav")])
    assert all(isinstance(x, StoredClip) for x in items)
    # a path the store does not hold for that id (or a file changed since) is read directly
    _write(audio / "t0.wav", 2.0, seed=3)
    assert stored_items(s, ["t0", "t3"], [str(audio / "t0.wav"), str(audio / "t2.wav")]) == \
        [str(audio / "t0.wav"), str(audio / "t2.wav")]


def test_a_store_per_front_end_and_dataset_and_baselines_do_not_use_it(audio, tmp_path):
    tracks = _tracks(audio, ["t1.wav"])
    other = FrontEnd(top_db=60.0)
    assert target_store_path("d", FrontEnd()) != target_store_path("d", other)
    assert target_store_path("d", FrontEnd()) != target_store_path("e", FrontEnd())
    assert target_store_path("demo:genre/x", FrontEnd()).name.startswith("demo_genre_x-")
    extract_dataset(get_extractor("mfcc"), tracks, dataset="m", cache_dir=tmp_path / "c", progress=False)
    assert not target_store_path("m", FrontEnd()).exists()
    with pytest.raises(MtdtlError, match="FrontEnd"):
        target_store_path("d", None)


def test_no_disk_space_falls_back_to_direct_extraction(audio, tmp_path, monkeypatch, caplog):
    import shutil

    from mtdtl.store import targets

    monkeypatch.setattr(targets.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    tracks = _tracks(audio, ["t1.wav", "t2.wav"])
    with caplog.at_level("WARNING"):
        fs = extract_dataset(_ex(), tracks, dataset="full", cache_dir=tmp_path / "c", progress=False)
    assert "GB are free" in caplog.text and fs.X.shape == (2, 16)
    assert not (target_store_path("full", FrontEnd()) / "store.json").exists()


# ---------------------------------------------------------------------------------------
# bf16
# ---------------------------------------------------------------------------------------


def test_precision_is_part_of_the_key_and_of_the_cache_metadata(audio, tmp_path, monkeypatch):
    from mtdtl.features import model as fm

    fp32 = _ex(precision="fp32")
    assert fp32.key == _ex().key and fp32.precision == "fp32"
    bf16 = _ex(precision="bf16")
    assert bf16.key != fp32.key and bf16.describe()["precision"] == "bf16"
    monkeypatch.setattr(fm, "cpu_has_bf16", lambda: False)
    assert _ex(precision="auto").precision == "fp32"
    monkeypatch.setattr(fm, "cpu_has_bf16", lambda: True)
    assert _ex(precision="auto").precision == "bf16"
    with pytest.raises(MtdtlError, match="precision"):
        _ex(precision="fp8")

    tracks = _tracks(audio, ["t1.wav", "t2.wav"])
    cache = tmp_path / "cache"
    a = extract_dataset(fp32, tracks, dataset="p", cache_dir=cache, progress=False)
    b = extract_dataset(bf16, tracks, dataset="p", cache_dir=cache, progress=False)
    metas = sorted(json.loads((f / "meta.json").read_text())["precision"] for f in (cache / "p").iterdir())
    assert metas == ["bf16", "fp32"]
    rel = np.linalg.norm(b.X - a.X) / np.linalg.norm(a.X)
    assert 0 < rel < 2e-2, rel


@pytest.mark.slow
def test_bf16_features_and_probe_scores_track_fp32(tiny_corpus, tmp_path):
    """SS-R (untrained, full width) on the tiny demo corpus: bf16 features within 2 % (relative
    L2) of fp32, and probe scores (genre accuracy, note-density R², 5 repetitions with the same
    seeds) within twice the spread of the repetitions. The tiny corpus has 16 target clips, so
    the probe check is coarse: on it a 0.2 % feature change already moves R² by ~0.1-0.2."""
    from mtdtl.evaluation.target import evaluate_target
    from mtdtl.transfer import resolve_targets

    targets = resolve_targets("demo:genre,demo:note_density", corpus=tiny_corpus)
    tracks = targets[0].tracks[["track_id", "path"]]
    scaler = (np.full(128, -45.0), np.full(128, 18.0))
    X, feats = {}, {}
    for precision in ("fp32", "bf16"):
        ex = get_extractor("rand:ss_r", scaler=scaler, device="cpu", precision=precision)
        fs = extract_dataset(ex, tracks, dataset="tiny-demo", cache_dir=tmp_path, progress=False)
        X[precision] = fs.X
        feats[precision] = pd.DataFrame(fs.X, index=pd.Index(fs.track_ids.astype(str), name="track_id"))
    rel = np.linalg.norm(X["bf16"] - X["fp32"]) / np.linalg.norm(X["fp32"])
    assert rel < 2e-2, rel
    for target, metric in zip(targets, ("accuracy", "r2")):
        s32, s16 = (np.array([e[metric] for e in evaluate_target(target, feats[p], n_repetitions=5, seed=0)])
                    for p in ("fp32", "bf16"))
        noise = max(s32.std(), s16.std(), 1.0 / len(tracks))
        assert abs(s16.mean() - s32.mean()) <= 2 * noise, (target.name, s32, s16)


def test_decode_threads_get_cores_of_their_own_and_torch_threads_come_back(audio, tmp_path, monkeypatch):
    """Cold: the network runs on the cores the decode thread leaves; warm: on every core. Either
    way the features do not depend on how many decode threads ran ahead, nor how far."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        real_runner = ModelExtractor._runner

        def recording(ex):
            net = real_runner(ex)

            def run(x):
                seen.append(torch.get_num_threads())
                return net(x)
            return run

        monkeypatch.setattr(ModelExtractor, "_runner", recording)
        tracks = _tracks(audio, ["t0.wav", "t1.wav", "t2.wav", "t3.wav"])
        cold = extract_dataset(_ex(0, batch_size=2), tracks, dataset="threads", cache_dir=tmp_path / "c1",
                               progress=False)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        warm = extract_dataset(_ex(0, batch_size=2), tracks, dataset="threads", cache_dir=tmp_path / "c2",
                               progress=False)
        assert seen and set(seen) == {2}
        np.testing.assert_array_equal(warm.X, cold.X)
        for kw in ({"decode_workers": 2}, {"prefetch": 0}, {"prefetch": 1, "batch_size": 64}):
            other = extract_dataset(_ex(0, **kw), tracks, dataset="threads", cache_dir=tmp_path / f"c{len(kw)}{kw}",
                                    progress=False, target_store=False)
            assert list(other.track_ids) == list(cold.track_ids)
            np.testing.assert_allclose(other.X, cold.X, rtol=0, atol=5e-3 * np.abs(cold.X).max())
        assert torch.get_num_threads() == 2
        with pytest.raises(MtdtlError, match="decode_workers"):
            _ex(0, decode_workers=0)
    finally:
        torch.set_num_threads(before)


def test_warm_extraction_reads_in_the_calling_thread_and_hints_the_disk_ahead(audio, tmp_path, monkeypatch):
    """Warm on the CPU: no decode thread; every clip's pages are asked for (MADV_WILLNEED) before
    its slices are read, at most two batches of slices ahead."""
    import threading

    from mtdtl.store.targets import StoredClip

    tracks = _tracks(audio, ["t0.wav", "t1.wav", "t2.wav", "t3.wav"])
    cold = extract_dataset(_ex(0, batch_size=2), tracks, dataset="inline", cache_dir=tmp_path / "c1", progress=False)
    events, threads = [], set()
    real_need, real_raw = StoredClip.will_need, StoredClip.raw_slices

    def need(self):
        events.append(("need", self.index))
        real_need(self)  # the real madvise on the store's memory map: must not fail

    def raw(self, dtype=None):
        events.append(("read", self.index))
        threads.add(threading.current_thread().name)
        return real_raw(self, dtype)

    monkeypatch.setattr(StoredClip, "will_need", need)
    monkeypatch.setattr(StoredClip, "raw_slices", raw)
    warm = extract_dataset(_ex(0, batch_size=1), tracks, dataset="inline", cache_dir=tmp_path / "c2", progress=False)
    np.testing.assert_allclose(warm.X, cold.X, rtol=1e-5, atol=1e-6)  # other batch size: float rounding only
    assert threads == {threading.current_thread().name}
    reads = [i for kind, i in events if kind == "read"]
    assert sorted(reads) == [0, 1, 2, 3]
    for k, (kind, i) in enumerate(events):
        if kind == "read":
            assert ("need", i) in events[:k]  # hinted before it is read
    # batch 1: two batches ahead is one more clip (each clip has at least one slice)
    assert events[:2] == [("need", reads[0]), ("need", reads[1])] and events[2] == ("read", reads[0])


def test_the_decode_thread_runs_a_batch_ahead_and_no_further(monkeypatch):
    """Look-ahead: ``prefetch`` tracks until one is seen, then enough tracks for one batch of slices."""
    import threading
    import time

    ex = _ex(0, batch_size=256, prefetch=2)
    lock, calls = threading.Lock(), [0]

    def prep(i):
        with lock:
            calls[0] += 1
        return torch.zeros(11, 1, 1, 1)  # 11 slices per track

    ahead = []
    for consumed, (i, x) in enumerate(ex._run_ahead(list(range(60)), prep, 1), start=1):
        time.sleep(0.02)  # the network's turn: the decode thread runs ahead meanwhile
        with lock:
            ahead.append(calls[0] - consumed)
    assert max(ahead[:3]) > 10  # far more than prefetch=2 tracks ahead at 11 slices a track ...
    assert max(ahead) <= 2 + -(-256 // 11) + 1  # ... and never more than one batch of them
