"""mtdtl.targets.folder: your own data as a target (``load_target("folder", root, labels=, task=)``).

Every test builds a tiny folder of synthetic clips (tests/fixtures_targets.py) and a labels
table next to it; nothing outside the repository is needed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fixtures_targets import write_audio, write_files

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.protocol import repetition_plan
from mtdtl.targets import TARGETS, list_targets, load_target, target_spec

EXTS = (".wav", ".mp3", ".flac")


def _music(root: Path, n: int = 20) -> list[str]:
    """``n`` clips in two genre folders, artists a0..a9 (two tracks each), mixed formats."""
    rel = [f"{'rock' if i % 2 else 'jazz'}/a{i // 2}_song{i}{EXTS[i % 3]}" for i in range(n)]
    write_files(root, rel)
    return rel


def _table(path: Path, header: str, rows: list[str], sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header.replace(",", sep)] + [r.replace(",", sep) for r in rows]) + "\n")
    return path


def as_dict(ds, col):
    return dict(zip(ds.tracks["track_id"], ds.tracks[col]))


# ============================================================================ the worked example
def test_classification_without_split_uses_five_stratified_grouped_folds(tmp_path, caplog):
    root = tmp_path / "music"
    rel = _music(root)
    # the track column in every accepted form: path, path without extension, file name, stem
    forms = [rel[0], rel[1].rsplit(".", 1)[0], rel[2].rsplit("/", 1)[1], Path(rel[3]).stem]
    tracks = forms + rel[4:]
    rows = [f"{t},{'rock' if i % 2 else 'jazz'},a{i // 2}" for i, t in enumerate(tracks)]
    rows.append("gone/missing.wav,rock,a99")  # a row without a file
    write_audio(root / "unlabelled" / "extra.wav")  # a file without a row
    _table(root / "labels.csv", "track,label,group", rows)
    with caplog.at_level(logging.INFO, logger="mtdtl"):
        ds = load_target("folder", root, labels="labels.csv", task="classification", progress=False)
    assert ds.name == "folder" and ds.task == "classification" and ds.metric == "accuracy"
    assert len(ds) == 20 and ds.classes == ("jazz", "rock")
    assert as_dict(ds, "label") == {r.rsplit(".", 1)[0]: ("rock" if i % 2 else "jazz") for i, r in enumerate(rel)}
    assert as_dict(ds, "group")["jazz/a0_song0"] == "a0"
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in ds.tracks["path"])
    assert [(u.line, u.path, u.label) for u in ds.unmatched] == [(22, "gone/missing.wav", "rock")]
    assert ds.unlisted == ["unlabelled/extra"]
    assert ds.skipped == []
    assert "1 of 21 rows" in caplog.text and "no fixed split" in caplog.text
    # no split column: not fixed, the repetitions are the protocol's 5 stratified folds, artists whole
    assert not ds.split_fixed and ds.split_name == "" and set(ds.tracks["split"]) == {"train", "test"}
    plan = repetition_plan(ds)
    assert len(plan) == 5 and len({frozenset(f.test) for f in plan}) == 5
    assert sorted(np.concatenate([f.test for f in plan]).tolist()) == list(range(20))
    groups = ds.tracks["group"].to_numpy()
    for f in plan:
        assert set(groups[f.test]).isdisjoint(groups[f.train])
        assert f.description.startswith("fold ") and "stratified" in f.description
    # the fallback draw keeps artists whole too
    assert ds.tracks.groupby("group")["split"].nunique().max() == 1


def test_split_column_is_a_fixed_split_and_tsv_works(tmp_path):
    root = tmp_path / "music"
    rel = _music(root, 10)
    split = ["train", "training", "valid", "test", "Test"] * 2
    rows = [f"{r},{'rock' if i % 2 else 'jazz'},{split[i]}" for i, r in enumerate(rel)]
    table = _table(tmp_path / "meta" / "my_labels.tsv", "track,label,split", rows, sep="\t")
    ds = load_target("folder", root, labels=table, task="classification", target_name="my_genres", progress=False)
    assert ds.name == "my_genres"  # results tables key on it: one name per dataset of your own
    assert ds.split_fixed and ds.split_name == "dataset:my_genres"
    assert as_dict(ds, "split") == {r.rsplit(".", 1)[0]: {"training": "train", "Test": "test"}.get(s, s)
                                    for r, s in zip(rel, split)}
    assert [f.description for f in repetition_plan(ds, n_repetitions=2)] == ["dataset:my_genres"] * 2
    assert "split column of my_labels.tsv" in ds.split_method
    # a split for some rows only: the rest is drawn, so the split is not fixed
    rows[0] = f"{rel[0]},jazz,"
    _table(table, "track,label,split", rows, sep="\t")
    part = load_target("folder", root, labels=table, task="classification", progress=False)
    assert not part.split_fixed and as_dict(part, "split")["rock/a0_song1"] == "train"


def test_regression_labels_and_the_default_table(tmp_path):
    root = tmp_path / "music"
    rel = _music(root, 26)  # 25 usable: 5 per quantile bin for the protocol's stratified folds
    rows = [f"{r},{100 + 7.5 * i}" for i, r in enumerate(rel)]
    rows[3] = f"{rel[3]},"  # an empty label: that track is skipped, not fatal
    _table(root / "labels.csv", "file,label", rows)  # 'file' names the track column too
    ds = load_target("folder", root, task="regression", progress=False)  # <root>/labels.csv by default
    assert ds.task == "regression" and ds.metric == "r2" and ds.classes == ()
    assert ds.tracks["label"].dtype == float and len(ds) == 25
    assert math.isclose(as_dict(ds, "label")["jazz/a0_song0"], 100.0)
    assert [(s.path, s.reason) for s in ds.skipped] == [(rel[3], "no label")]
    assert not ds.split_fixed and repetition_plan(ds)[0].description.startswith("fold 1/5")
    rows[5] = f"{rel[5]},fast"
    _table(root / "labels.csv", "file,label", rows)
    with pytest.raises(MtdtlError, match=r"labels.csv, line 7: label 'fast' is not a number"):
        load_target("folder", root, task="regression", progress=False)


def test_file_checks_ambiguous_names_and_a_users_split_list(tmp_path, caplog):
    root = tmp_path / "music"
    rel = _music(root, 10)
    (root / rel[0]).write_bytes(b"not audio at all" * 20)       # corrupt
    (root / rel[1]).write_bytes(b"")                            # empty
    write_audio(root / "other" / "a1_song2.wav")                # a second file named like rel[2]
    (root / "notes.txt").write_text("hello")
    rows = [f"{r},{'rock' if i % 2 else 'jazz'}" for i, r in enumerate(rel)]
    rows[2] = f"{Path(rel[2]).stem},jazz"                       # its stem is now ambiguous
    rows.append("notes.txt,rock")                               # not an audio file
    _table(root / "labels.csv", "track,label", rows)
    with caplog.at_level(logging.WARNING, logger="mtdtl"):
        ds = load_target("folder", root, task="classification", progress=False)
    assert "5 stratified folds need a class with 5 tracks" in caplog.text  # 7 tracks: too few for folds
    reasons = {Path(s.path).name: s.reason for s in ds.skipped}
    assert reasons[Path(rel[0]).name].startswith("corrupt")
    assert reasons[Path(rel[1]).name].startswith("empty file")
    assert reasons["a1_song2"].startswith("ambiguous: 2 files")
    assert reasons["notes.txt"].startswith("not an audio file")
    assert len(ds) == 7 and len(ds.skipped) == 4
    assert len(load_target("folder", root, task="classification", check="none", progress=False)) == 9
    # a split list (.info, paths relative to root) selects the tracks and fixes their split
    info = tmp_path / "mine.info"
    info.write_text("".join(f"{i}\t{r}\t{'test' if i % 2 else 'train'}\t\n" for i, r in enumerate(rel[3:7])))
    lst = load_target("folder", root, task="classification", split_list=info, progress=False)
    assert lst.split_fixed and lst.split_name == "list:mine"
    assert as_dict(lst, "split") == {r.rsplit(".", 1)[0]: ("test" if i % 2 else "train")
                                     for i, r in enumerate(rel[3:7])}


# ============================================================================ errors
def test_a_table_matching_no_file_is_a_clear_error(tmp_path):
    root = tmp_path / "music"
    _music(root, 4)
    table = _table(tmp_path / "labels.csv", "track,label", ["songs/x1.mp3,rock", "songs/x2.mp3,jazz"])
    with pytest.raises(MtdtlError) as e:
        load_target("folder", root, labels=table, task="classification", progress=False)
    msg = str(e.value)
    assert "no row of the labels table" in msg and str(table) in msg and str(root) in msg
    assert "line 2 names 'songs/x1.mp3'" in msg and "'jazz/a0_song0.wav'" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(MtdtlError, match="no audio file"):
        load_target("folder", tmp_path / "empty", labels=table, task="classification", progress=False)


@pytest.mark.parametrize("header, rows, kwargs, message", [
    ("track,label", ["a,rock"], {}, r"task=None; pass task='classification' or task='regression'"),
    ("track,label", ["a,rock"], {"task": "recommendation"}, "task='recommendation'"),
    ("name,genre", ["a,rock"], {"task": "classification"}, r"line 1: the header \['name', 'genre'\] needs"),
    ("track,label,split", ["a,rock,dev"], {"task": "classification"}, r"line 2: unknown split 'dev'"),
    ("track,label", ["a,rock", "b,jazz", "a,pop"], {"task": "classification"},
     r"line 4: track 'a' is listed twice \(first on line 2\)"),
    ("track,label", ["jazz/a0_song0,rock", "a0_song0,jazz"], {"task": "classification"},
     r"lines 2 and 3: 'jazz/a0_song0' and 'a0_song0' name the same file jazz/a0_song0.wav"),
    ("track,label", [",rock"], {"task": "classification"}, r"line 2: the track is empty"),
    ("track,label", ["a,rock,extra"], {"task": "classification"}, r"line 2: 3 fields for the 2 columns"),
    ("track,label", ["a,rock"], {"task": "classification", "target_name": "gtzan"}, "target_name='gtzan'"),
])
def test_malformed_tables_name_file_and_line(tmp_path, header, rows, kwargs, message):
    root = tmp_path / "music"
    _music(root, 4)
    table = _table(tmp_path / "t.csv", header, rows)
    with pytest.raises(MtdtlError, match=message):
        load_target("folder", root, labels=table, progress=False, **kwargs)


def test_missing_table_and_registry(tmp_path, monkeypatch):
    root = tmp_path / "music"
    _music(root, 4)
    with pytest.raises(MtdtlError, match=r"none of \['labels.csv', 'labels.tsv'\] in .*pass labels="):
        load_target("folder", root, task="classification")
    with pytest.raises(MtdtlError, match="labels table .*nope.csv not found"):
        load_target("folder", root, labels="nope.csv", task="classification")
    # a relative path not in root is read from the working directory
    _table(tmp_path / "cwd" / "mine.csv", "track,label", ["jazz/a0_song0,jazz", "rock/a0_song1,rock"])
    monkeypatch.chdir(tmp_path / "cwd")
    ds = load_target("folder", root, labels="mine.csv", task="classification", progress=False)
    assert len(ds) == 2 and Path(ds.meta["labels"]) == (tmp_path / "cwd" / "mine.csv").resolve()
    with pytest.raises(MtdtlError, match=r"unknown option\(s\) \['label'\]; accepted: .*'labels'.*'task'"):
        load_target("folder", root, label="x.csv", task="classification")
    assert "folder" in list_targets() and "folder" not in TARGETS  # TARGETS: the paper's seven
    assert list_targets().index("folder") < list_targets().index("demo:<task>")
    assert target_spec("folder").loader.__name__ == "load_folder"
    assert Counter(n.startswith("demo:") for n in list_targets())[True] == 1
