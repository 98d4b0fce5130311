"""The embedded demo corpus: layout, sources, parts, tasks, determinism, resume, failures.

Most checks read the session's ``tiny_corpus`` (built once, see ``conftest.py``); the
determinism and failure checks build a handful of clips of their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from mtdtl.constants import SOURCE_NAMES, SR
from mtdtl.corpora import Corpus
from mtdtl.errors import MtdtlError

MANIFEST_COLUMNS = ["track_id", "part", "split", "path", "duration", "sample_rate", "channels",
                    "work_id", "collection", "composer", "title", "instrument", "program",
                    "instrument_family", "tempo", "soundfont"]

# (lowest, highest) share of learning clips that carry each source in the tiny corpus
COVERAGE = {"self": (1.0, 1.0), "bpm": (0.9, 1.0), "year": (0.6, 1.0), "taste": (0.5, 1.0),
            "tag": (0.5, 1.0), "lyrics": (0.05, 0.8), "cdr_tag": (0.5, 1.0),
            "artist": (1.0, 1.0)}


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _audio_hashes(root: Path) -> dict[str, str]:
    return {p.stem: _sha1(p) for p in sorted((root / "audio").glob("*.flac"))}


def _tables(root: Path) -> dict[str, bytes]:
    files = ["manifest.csv", "clips.csv", "targets/tasks.json"]
    files += [f"labels/{s}.csv" for s in SOURCE_NAMES]
    files += [p.relative_to(root).as_posix() for p in sorted((root / "targets").glob("*.csv"))]
    return {f: (root / f).read_bytes() for f in files}


@pytest.fixture(scope="module")
def corpus(tiny_corpus) -> Corpus:
    return Corpus.open(tiny_corpus)


# ----------------------------------------------------------------------------------------
# layout and content of the tiny corpus
# ----------------------------------------------------------------------------------------

def test_layout_and_manifest(corpus):
    root = corpus.root
    for f in ["corpus.json", "manifest.csv", "build_report.json", "targets/tasks.json"]:
        assert (root / f).is_file(), f
    m = corpus.manifest
    assert list(m.columns) == MANIFEST_COLUMNS
    assert m["track_id"].is_unique
    learn, target = m[m.part == "learning"], m[m.part == "target"]
    assert len(learn) >= 24 and len(target) >= 16
    assert set(learn.split) == {"train", "valid"}
    assert set(target.split) == {"train", "valid", "test"}
    assert (m.sample_rate == SR).all() and (m.channels == 2).all()
    assert m.collection.nunique() >= 6 and m.instrument_family.nunique() >= 4
    assert m.tempo.between(40, 260).all()
    for row in m.itertuples():
        info = sf.info(corpus.audio_path(row.track_id))
        assert info.samplerate == SR and info.channels == 2
        assert abs(info.frames / SR - row.duration) < 1e-3 and row.duration == pytest.approx(30.0)
    assert corpus.info["size"] == "tiny" and corpus.info["seed"] == 0


def test_parts_share_no_work(corpus):
    m = corpus.manifest
    learn = set(m.loc[m.part == "learning", "work_id"])
    target = set(m.loc[m.part == "target", "work_id"])
    assert learn and target and not (learn & target)
    clips = pd.read_csv(corpus.root / "clips.csv", dtype=str)
    assert clips["source_id"].is_unique  # one clip per score


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_every_source_present_with_sensible_coverage(corpus, source):
    m = corpus.manifest
    learn = set(m.loc[m.part == "learning", "track_id"])
    df = corpus.labels(source)
    assert len(df) > 0
    assert set(df.track_id) <= learn, "labels only for learning clips"
    lo, hi = COVERAGE[source]
    cov = len(set(df.track_id)) / len(learn)
    assert lo <= cov <= hi, f"{source}: coverage {cov:.2f} outside [{lo}, {hi}]"


def test_source_values(corpus):
    m = corpus.manifest.set_index("track_id")
    bpm = corpus.labels("bpm")
    assert bpm.bpm.between(30, 320).all()
    # an estimate, not the truth: some octave errors or misses, but mostly near the tempo
    truth = m.loc[bpm.track_id, "tempo"].to_numpy()
    ratio = bpm.bpm.to_numpy() / truth
    assert (abs(ratio - 1) < 0.08).mean() > 0.3
    assert corpus.labels("year").year.between(1300, 2000).all()
    tags = corpus.labels("tag")
    assert (tags["count"] >= 1).all() and tags.tag.nunique() > 20
    taste = corpus.labels("taste")
    assert list(taste.columns) == ["user_id", "track_id", "play_count"]
    assert (taste.play_count >= 1).all() and taste.user_id.nunique() >= 20
    cdr = corpus.labels("cdr_tag")
    assert cdr.tag.str.count("/").ge(2).all()
    lyr = corpus.labels("lyrics")
    assert (lyr["count"] >= 1).all()
    with_lyrics = set(m.loc[lyr.track_id.unique(), "collection"])
    assert with_lyrics <= {"bach_chorales", "monteverdi", "trecento"}
    art = corpus.labels("artist")
    assert art.artist.nunique() >= 5


def test_target_tasks(corpus):
    tasks = corpus.tasks
    types = [t["type"] for t in tasks.values()]
    assert types.count("classification") >= 3
    assert types.count("regression") >= 2
    assert types.count("recommendation") >= 1
    m = corpus.manifest
    target = set(m.loc[m.part == "target", "track_id"])
    split = dict(zip(m.track_id, m.split))
    for name, spec in tasks.items():
        assert spec["description"]
        df = corpus.target_table(name)
        assert set(df.track_id) <= target, name
        assert (df.split == df.track_id.map(split)).all(), name
        if spec["type"] == "classification":
            assert list(df.columns) == ["track_id", "label", "split"]
            assert df.label.nunique() >= 2, name
        elif spec["type"] == "regression":
            assert df.label.dtype.kind == "f" and df.label.std() > 0, name
        else:
            assert list(df.columns) == ["user_id", "track_id", "play_count", "split"]
            assert df.user_id.nunique() >= 10 and set(df.split) >= {"train", "test"}


def test_summary(corpus):
    s = corpus.summary()
    for word in ["learning", "target", "train", "valid", "test", *SOURCE_NAMES, *corpus.tasks]:
        assert word in s
    for label in corpus.target_table("genre").label.unique():
        assert label in s


def test_open_and_lookup_errors(corpus, tmp_path):
    with pytest.raises(MtdtlError, match="not a built corpus"):
        Corpus.open(tmp_path / "nothing")
    with pytest.raises(MtdtlError, match="valid sources"):
        corpus.labels("mood")
    with pytest.raises(MtdtlError, match="unknown target task"):
        corpus.target_table("nope")
    with pytest.raises(MtdtlError):
        corpus.audio_path("DMNOTATRACK")


# ----------------------------------------------------------------------------------------
# build properties
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_after_interruption(tiny_corpus, tmp_path):
    """Delete some clips and every table (an interrupted build), rebuild: only the missing
    clips are rendered, and everything comes back byte-identical."""
    from mtdtl.corpora.demo import build_demo_corpus

    root = tmp_path / "resume"
    shutil.copytree(tiny_corpus, root)
    before_audio, before_tables = _audio_hashes(root), _tables(root)
    m = pd.read_csv(root / "manifest.csv", dtype=str)
    gone = sorted(m.track_id.iloc[[0, 5, 17, 30]])
    for t in gone:
        (root / "audio" / f"{t}.flac").unlink()
        (root / "clips" / f"{t}.json").unlink()
    # a half-written audio file of another clip, and a lost record of a third
    (root / "audio" / f".{m.track_id.iloc[3]}.flac.123.tmp").write_bytes(b"partial")
    for f in ["manifest.csv", "corpus.json", "labels/tag.csv", "targets/genre.csv"]:
        (root / f).unlink()
    out = build_demo_corpus(root=root, size="tiny", seed=0, workers=2, progress=False)
    report = json.loads((out / "build_report.json").read_text())
    assert sorted(report["rendered_this_run"]) == gone
    assert _audio_hashes(out) == before_audio
    assert _tables(out) == before_tables
    # a complete corpus is not rebuilt
    mtime = (out / "audio" / f"{gone[0]}.flac").stat().st_mtime_ns
    build_demo_corpus(root=out, size="tiny", seed=0, workers=2, progress=False)
    assert json.loads((out / "build_report.json").read_text())["n_rendered_this_run"] == 0
    assert (out / "audio" / f"{gone[0]}.flac").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_two_builds_are_identical_and_an_interrupted_one_resumes(tmp_path, monkeypatch):
    """Same seed: identical manifest, tables and audio bytes, whatever the worker count, and
    also after a build that was interrupted (Ctrl-C after two clips) and run again."""
    import mtdtl.corpora.demo.build as demo
    from mtdtl.corpora.demo.music import list_works

    works = (list(list_works("bach_chorales")[:2]) + list(list_works("essen_europe")[:2])
             + list(list_works("oneills_1850")[:1]))
    a = demo.build_demo_corpus(root=tmp_path / "a", seed=3, workers=1, progress=False,
                               works=works)

    calls = []
    real = demo._render_star

    def interrupted(args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args)
        return real(args)

    monkeypatch.setattr(demo, "_render_star", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.build_demo_corpus(root=tmp_path / "b", seed=3, workers=1, progress=False,
                               works=works)
    assert not (tmp_path / "b" / "manifest.csv").exists()
    assert len(list((tmp_path / "b" / "audio").glob("*.flac"))) == 2
    monkeypatch.setattr(demo, "_render_star", real)
    b = demo.build_demo_corpus(root=tmp_path / "b", seed=3, workers=2, progress=False,
                               works=works)
    report = json.loads((b / "build_report.json").read_text())
    assert report["n_rendered_this_run"] == len(works) - 2 and report["n_reused"] == 2
    assert _audio_hashes(a) == _audio_hashes(b) and len(_audio_hashes(a)) == len(works)
    assert _tables(a) == _tables(b)

    c = demo.build_demo_corpus(root=tmp_path / "c", seed=4, workers=1, progress=False,
                               works=works[:2])
    assert _audio_hashes(c) != {k: v for k, v in _audio_hashes(a).items() if k in
                                _audio_hashes(c)}
    with pytest.raises(MtdtlError, match="seed"):
        demo.build_demo_corpus(root=a, seed=5, workers=1, progress=False, works=works)


def test_plan_is_seeded_and_disjoint():
    from mtdtl.corpora.demo import plan_works
    from mtdtl.corpora.demo.music import list_works

    works = list_works("palestrina")
    l1, t1 = plan_works(works, 20, 10, seed=0)
    l2, t2 = plan_works(works, 20, 10, seed=0)
    l3, _ = plan_works(works, 20, 10, seed=1)
    assert [w.work_id for w in l1] == [w.work_id for w in l2]
    assert [w.work_id for w in l1[:20]] != [w.work_id for w in l3[:20]]
    assert not ({w.group for w in l1} & {w.group for w in t1})  # masses stay whole


def test_broken_and_silent_scores_are_reported(tmp_path):
    from mtdtl.corpora.demo import build_demo_corpus, works_from_files

    good = tmp_path / "good.abc"
    good.write_text("X:1\nT:Good tune\nM:4/4\nL:1/8\nK:D\n"
                    "|:DFAd fdAF|GBdg fdAF|DFAd fdAF|EFGA B2A2:|\n")
    broken = tmp_path / "broken.abc"
    broken.write_text("X:1\nT:Broken\nM:4/4\nL:1/8\nK:Q#?\n|:D{{[[[(((3/|||\n")
    rests = tmp_path / "rests.abc"
    rests.write_text("X:1\nT:Only rests\nM:4/4\nL:1/8\nK:C\n|z8|z8|z8|z8|\n")
    not_a_score = tmp_path / "garbage.mxl"
    not_a_score.write_bytes(b"this is not a zip file")
    works = works_from_files([good, broken, rests, not_a_score])
    root = build_demo_corpus(root=tmp_path / "c", seed=0, workers=1, progress=False,
                             works=works)
    report = json.loads((root / "build_report.json").read_text())
    skipped = {Path(s["source_id"].split("#")[0]).name: s for s in report["skipped"]}
    assert {"rests.abc", "garbage.mxl"} <= set(skipped)
    for s in skipped.values():
        assert s["stage"] in ("parse", "render", "silent") and s["error"]
    m = Corpus.open(root).manifest
    assert "Good tune" in set(m.title)
    assert report["n_clips"] == len(m) == len(works) - report["n_skipped"]


def test_silent_render_is_skipped(tmp_path, monkeypatch):
    import numpy as np

    import mtdtl.corpora.demo.render as render
    from mtdtl.corpora.demo import render_clip
    from mtdtl.corpora.demo.music import list_works

    monkeypatch.setattr(render, "render_events",
                        lambda *a, duration, sr, **k: np.zeros((2, int(duration * sr)), np.float32))
    rec = render_clip(list_works("essen_europe")[0], seed=0, root=tmp_path)
    assert rec["status"] == "failed" and rec["stage"] == "silent"
    assert not list((tmp_path / "audio").glob("*.flac"))


def test_unknown_size():
    from mtdtl.corpora.demo import build_demo_corpus

    with pytest.raises(MtdtlError, match="unknown corpus size"):
        build_demo_corpus(size="huge")


# ----------------------------------------------------------------------------------------
# hardening: resume checks the audio hash, arguments are checked before any work
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_rerenders_a_clip_whose_audio_hash_differs(tiny_corpus, tmp_path):
    """A clip file of the right size but other bytes (bit rot, a bad copy) is not trusted:
    the rebuild renders it again, and only it. An older record (sha1 only) is checked and
    upgraded to a sha256, not rendered again."""
    from mtdtl.corpora.demo import build_demo_corpus

    root = tmp_path / "hash"
    shutil.copytree(tiny_corpus, root)
    before = _audio_hashes(root)
    m = pd.read_csv(root / "manifest.csv", dtype=str)
    bad, old = m.track_id.iloc[2], m.track_id.iloc[7]
    flac = root / "audio" / f"{bad}.flac"
    data = bytearray(flac.read_bytes())
    data[len(data) // 2] ^= 0xFF                      # same size, other bytes
    flac.write_bytes(bytes(data))
    rec_path = root / "clips" / f"{old}.json"
    rec = json.loads(rec_path.read_text())
    rec["audio_sha1"] = _sha1(root / "audio" / f"{old}.flac")
    del rec["audio_sha256"]
    rec_path.write_text(json.dumps(rec))
    build_demo_corpus(root=root, size="tiny", seed=0, workers=1, progress=False)
    report = json.loads((root / "build_report.json").read_text())
    assert report["rendered_this_run"] == [bad]
    assert _audio_hashes(root) == before
    upgraded = json.loads(rec_path.read_text())
    assert "audio_sha1" not in upgraded
    assert upgraded["audio_sha256"] == hashlib.sha256(
        (root / "audio" / f"{old}.flac").read_bytes()).hexdigest()
    assert Corpus.open(root).check() == []


@pytest.mark.parametrize("kwargs, match", [
    ({"size": "huge"}, "unknown corpus size"),
    ({"size": 3}, "unknown corpus size"),
    ({"seed": -1}, "seed must be a whole number"),
    ({"seed": "1"}, "seed must be a whole number"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"workers": 0}, "workers must be a whole number"),
    ({"workers": "2"}, "workers must be a whole number"),
    ({"progress": "no"}, "progress must be True or False"),
    ({"works": []}, "works is empty"),
    ({"works": ["a.abc"]}, "works must hold Work objects"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, monkeypatch, kwargs, match):
    import mtdtl.corpora.demo.build as demo

    def no_work(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(demo, "list_works", no_work)
    monkeypatch.setattr(demo, "plan_works", no_work)
    root = tmp_path / "c"
    with pytest.raises(MtdtlError, match=match):
        demo.build_demo_corpus(**{"root": root, "size": "tiny", "progress": False, **kwargs})
    assert not root.exists()


def test_builder_refuses_a_folder_that_is_not_a_corpus(tmp_path):
    from mtdtl.corpora.demo import build_demo_corpus

    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(MtdtlError, match="not empty and not a corpus folder"):
        build_demo_corpus(root=tmp_path, size="tiny", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(MtdtlError, match="is a file"):
        build_demo_corpus(root=tmp_path / "notes.txt", size="tiny", progress=False)


def test_contract_holds_for_the_demo_corpus(corpus):
    assert corpus.check() == []
    assert corpus.sources == tuple(SOURCE_NAMES)
    clips = pd.read_csv(corpus.root / "clips.csv", dtype=str)
    assert clips["audio_sha256"].str.len().eq(64).all()


def test_builders_are_listed_and_imported_lazily():
    import subprocess
    import sys

    import mtdtl.corpora as corpora
    from mtdtl.corpora.demo import build_demo_corpus
    from mtdtl.corpora.folder import build_folder_corpus
    from mtdtl.corpora.msd import build_msd_corpus

    assert set(corpora.BUILDERS) == {"demo", "msd", "folder"}
    assert corpora.get_builder("demo") is build_demo_corpus is corpora.build_demo_corpus
    assert corpora.get_builder("msd") is build_msd_corpus
    assert corpora.get_builder("folder") is build_folder_corpus
    with pytest.raises(MtdtlError, match="unknown corpus kind"):
        corpora.get_builder("cd")
    code = ("import sys, mtdtl.corpora, mtdtl.corpora.demo; "
            "assert 'music21' not in sys.modules and 'tinysoundfont' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
