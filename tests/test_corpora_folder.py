"""build_folder_corpus: your own audio folder and label tables → a corpus with the demo's contract.

The layout here is the worked example of ``docs/corpus.md`` ("Your own audio").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mtdtl.constants import SOURCE_NAMES
from mtdtl.corpora import Corpus
from mtdtl.corpora.folder import build_folder_corpus
from mtdtl.errors import MtdtlError

GENRES = {"rock": [f"rock{i:02d}" for i in range(8)], "jazz": [f"jazz{i:02d}" for i in range(8)]}
TRACKS = [t for ts in GENRES.values() for t in ts]
TARGET = [t for ts in GENRES.values() for t in ts[5:]]          # 3 per genre for the moods task
LEARN = [t for t in TRACKS if t not in TARGET]


def make_music(folder: Path) -> Path:
    """``<folder>/<genre>/<track>.wav``: short tones, a genre per folder."""
    rng = np.random.default_rng(0)
    for genre, tracks in GENRES.items():
        (folder / genre).mkdir(parents=True)
        for i, t in enumerate(tracks):
            f0 = (110 if genre == "rock" else 330) * (1 + 0.1 * i)
            x = np.arange(6000) / 8000
            y = 0.3 * np.sin(2 * np.pi * f0 * x) + 0.01 * rng.standard_normal(x.size)
            sf.write(folder / genre / f"{t}.wav", y.astype(np.float32), 8000)
    (folder / "notes.txt").write_text("not audio")
    return folder


def make_tables(d: Path) -> dict[str, Path]:
    """Label tables in the demo corpus' formats, one per learning source, as a user writes them."""
    d.mkdir(parents=True, exist_ok=True)
    genre = {t: g for g, ts in GENRES.items() for t in ts}
    rows = {
        "bpm": ["track_id,bpm"] + [f"{t},{100 + 3 * i}" for i, t in enumerate(TRACKS)],
        "year": ["track_id,year"] + [f"{t},{1960 + i if i % 5 else ''}" for i, t in enumerate(TRACKS)],
        "tag": ["track_id,tag,count"] + [f"{t},{genre[t]},{1 + i % 3}" for i, t in enumerate(TRACKS)]
        + [f"{t},live,1" for t in TRACKS[::3]] + ["someone_else,rock,4"],
        "taste": ["user_id,track_id,play_count"] + [f"u{u},{t},{1 + (u * i) % 4}" for u in range(5)
                                                    for i, t in enumerate(TRACKS) if (u + i) % 2],
        "lyrics": ["track_id,word,count"] + [f"{t},{w},2" for t in TRACKS[:4] for w in ("love", "night")],
        "cdr_tag": ["track_id,tag"] + [f"{t},{genre[t]}/{'modern' if i % 2 else 'classic'}"
                                       for i, t in enumerate(TRACKS)],
        "artist": ["track_id,artist"] + [f"{t},band{i % 4}" for i, t in enumerate(TRACKS)],
    }
    out = {}
    for s, lines in rows.items():
        out[s] = d / f"{s}.csv"
        out[s].write_text("\n".join(lines) + "\n")
    moods = d / "moods.csv"
    moods.write_text("track_id,label\n" + "".join(f"{t},{'calm' if genre[t] == 'jazz' else 'loud'}\n" for t in TARGET))
    energy = d / "energy.csv"
    energy.write_text("track_id,label,split\n" + "".join(
        f"{t},{-1.5 + 0.5 * i},{('train', 'train', 'test')[i % 3]}\n" for i, t in enumerate(TARGET)))
    out["moods"], out["energy"] = moods, energy
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("folder")
    music = make_music(d / "music")
    tables = make_tables(d / "tables")
    labels = {s: tables[s] for s in SOURCE_NAMES if s in tables}
    targets = {"mood": tables["moods"],
               "energy": {"path": tables["energy"], "type": "regression", "description": "energy"}}
    out = build_folder_corpus(music, labels, out=d / "corpus", targets=targets, seed=0, workers=1,
                              progress=False)
    return {"dir": d, "music": music, "tables": tables, "labels": labels, "targets": targets, "corpus": out}


def test_folder_corpus_follows_the_contract(built):
    c = Corpus.open(built["corpus"]).validate()
    m = c.manifest
    assert sorted(m["track_id"]) == sorted(TRACKS)
    assert set(m.loc[m.part == "learning", "track_id"]) == set(LEARN)
    assert set(m.loc[m.part == "target", "track_id"]) == set(TARGET)
    assert set(m.loc[m.part == "learning", "split"]) == {"train", "valid"}
    assert set(m["collection"]) == {"rock", "jazz"} and (m["title"] == m["track_id"]).all()
    assert c.sources == tuple(SOURCE_NAMES)
    assert c.info["kind"] == "folder"
    tag = c.labels("tag")
    assert set(tag["track_id"]) <= set(LEARN)                  # target tracks and unknown ids dropped
    rep = c.build_report["labels"]["tag"]
    assert rep["dropped_rows_no_audio"] == 1 and rep["dropped_rows_target_tracks"] > 0
    assert c.labels("year")["year"].isna().sum() > 0           # empty year: a missing value
    summary = c.summary()
    assert "mood (classification" in summary and "energy (regression" in summary


def test_target_tasks_and_splits(built):
    c = Corpus.open(built["corpus"])
    assert set(c.tasks) == {"mood", "energy"}
    assert c.tasks["mood"]["type"] == "classification" and c.tasks["mood"]["classes"] == ["calm", "loud"]
    energy = c.target_table("energy")
    assert energy["label"].min() == -1.5                       # regression labels may be negative
    given = pd.read_csv(built["tables"]["energy"], dtype=str).set_index("track_id")["split"]
    split = c.manifest.set_index("track_id")["split"]
    assert all(split[t] == given[t] for t in given.index)       # the table's own split is kept
    mood = c.target_table("mood")
    assert (mood["split"] == mood["track_id"].map(split)).all()


def test_evaluation_loads_the_tasks_as_for_the_demo_corpus(built):
    """Notebook 03's targets="demo" reads the corpus' tasks through mtdtl.targets, unchanged."""
    from mtdtl.targets import list_targets, load_target

    assert {"demo:mood", "demo:energy"} <= set(list_targets(built["corpus"]))
    t = load_target("demo:mood", built["corpus"], progress=False)
    assert len(t.tracks) == len(TARGET) and set(t.classes) == {"calm", "loud"}
    assert all(Path(p).is_file() for p in t.tracks["path"])


def test_rerun_does_nothing_and_is_deterministic(built, tmp_path):
    root = built["corpus"]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    build_folder_corpus(built["music"], built["labels"], out=root, targets=built["targets"], workers=1,
                        progress=False)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    again = build_folder_corpus(built["music"], built["labels"], out=tmp_path / "again",
                                targets=built["targets"], workers=1, progress=False)
    for f in ["manifest.csv", "targets/tasks.json", "targets/mood.csv", *(f"labels/{s}.csv" for s in SOURCE_NAMES)]:
        assert (again / f).read_bytes() == (root / f).read_bytes(), f


def test_only_audio_and_a_split_table(built, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("track_id,split\n" + "".join(f"{t},{'valid' if i < 3 else 'train'}\n"
                                                 for i, t in enumerate(TRACKS[:10])))
    out = build_folder_corpus(built["music"], out=tmp_path / "c", split=split, workers=1, progress=False)
    c = Corpus.open(out).validate()
    assert c.sources == ("self",) and c.tasks == {}
    assert c.manifest["track_id"].tolist() == sorted(TRACKS[:10])         # unlisted tracks left out
    assert (c.manifest["split"] == "valid").sum() == 3
    assert c.build_report["not_in_split_table"] == len(TRACKS) - 10


# --------------------------------------------------------------------------- errors
def _bad(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "bad.csv"
    p.write_bytes(body.encode("utf-8"))
    return p


@pytest.mark.parametrize("what, body, match", [
    ("tag", "track_id,tag,count\nrock00,loud,1\nrock01,soft,2,extra\n", r"bad.csv, line 3: expected 3 fields"),
    ("tag", "\ufefftrack_id,tag\nrock00,loud\n", r"lacks the columns \['count'\]"),
    ("bpm", "track_id,bpm\nrock00,120\n,99\n", "bad.csv: track id missing on line 3"),
    ("bpm", "track_id,bpm\nrock00,120\nrock00,99\n", r"track 'rock00' appears more than once \(lines 2, 3\)"),
    ("artist", "track_id,artist\nrock00,\n", "line 2: artist is empty"),
    ("mood", "track_id,label\nrock00,\n", "line 2: label is empty"),
    ("mood", "track_id,label,split\nrock00,a,holdout\n", "line 2: split 'holdout'"),
    ("energy", "track_id,label\nrock00,high\n", "line 2: label 'high' is not a number"),
])
def test_a_bad_table_fails_before_any_audio_is_read(built, tmp_path, what, body, match):
    bad = _bad(tmp_path, body)
    labels = {what: bad} if what in SOURCE_NAMES else {}
    targets = {"mood": bad} if what == "mood" else \
        {"energy": {"path": bad, "type": "regression"}} if what == "energy" else None
    with pytest.raises(MtdtlError, match=match):
        build_folder_corpus(built["music"], labels, out=tmp_path / "c", targets=targets, progress=False)
    assert not (tmp_path / "c" / "clips").exists()


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": {"mood": "x.csv"}}, r"unknown learning sources \['mood'\]"),
    ({"labels": {"tag": "missing.csv"}}, r"labels\['tag'\]: file not found"),
    ({"labels": ["tag.csv"]}, "labels must map source names"),
    ({"targets": {"bad name": "x.csv"}}, "target task name 'bad name'"),
    ({"targets": {"mood": {"path": "x.csv", "type": "ranking"}}}, "type 'ranking'"),
    ({"split": -0.1}, r"valid fraction must be in \[0, 1\)"),
    ({"audio": "symlink"}, "audio must be one of"),
    ({"progress": 1}, "progress must be True or False"),
])
def test_bad_arguments_fail_before_any_work(built, tmp_path, kwargs, match):
    kw = {"labels": None, "out": tmp_path / "c", "progress": False, **kwargs}
    with pytest.raises(MtdtlError, match=match):
        build_folder_corpus(built["music"], **kw)
    assert not (tmp_path / "c").exists()


def test_audio_folder_problems(tmp_path):
    with pytest.raises(MtdtlError, match="audio folder not found"):
        build_folder_corpus(tmp_path / "nowhere", progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(MtdtlError, match="no audio files under"):
        build_folder_corpus(tmp_path / "empty", out=tmp_path / "c", progress=False)
    for sub in ("a", "b"):
        (tmp_path / "dup" / sub).mkdir(parents=True)
        sf.write(tmp_path / "dup" / sub / "song.wav", np.zeros(800, np.float32), 8000)
    with pytest.raises(MtdtlError, match="two audio files have the track id 'song'"):
        build_folder_corpus(tmp_path / "dup", out=tmp_path / "c", progress=False)


def test_conflicting_target_splits(built, tmp_path):
    a = _bad(tmp_path, "track_id,label,split\nrock05,x,train\n")
    b = tmp_path / "b.csv"
    b.write_text("track_id,label,split\nrock05,y,test\n")
    with pytest.raises(MtdtlError, match="track 'rock05' has split 'test' here and 'train' in another"):
        build_folder_corpus(built["music"], out=tmp_path / "c", targets={"a": a, "b": b}, progress=False)


@pytest.mark.slow
def test_preprocessing_runs_on_a_folder_corpus(built, tmp_path):
    """Notebook 01's call, unchanged, on the folder corpus: every source reduced."""
    from mtdtl.preprocess import preprocess_corpus
    from mtdtl.sources import load_reduced

    store = preprocess_corpus(built["corpus"], tmp_path / "store", k=2, seed=0, workers=1, progress=False)
    reduced = load_reduced(store)
    assert list(reduced) == list(SOURCE_NAMES)
    assert set(reduced["self"].track_ids) == set(LEARN)
    info = json.loads((store / "preprocess.json").read_text())
    assert info["sources"] == list(SOURCE_NAMES)
