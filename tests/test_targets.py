"""mtdtl.targets: loaders of the paper's target datasets (Table 5) and the demo corpus' tasks.

Every test builds a tiny tree in a dataset's own layout (synthetic audio under real-looking
names, see tests/fixtures_targets.py) and, where the study published a split, checks the
loader against the study's lists shipped with mtdtl (``mtdtl/data/splits``). Never the real
data; nothing outside the repository (one test compares the shipped lists with the study's
original files when ``../shared/reference`` is there, and skips otherwise).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures_targets import (audio_bytes, fake_mbid, fma_audio_relpath, pick_rows, study_item_rows, study_rows,
                              write_audio, write_demo_corpus, write_emo_annotations, write_files,
                              write_fma_tracks_csv, write_lastfm_log)
from mtdtl.errors import MtdtlError
from mtdtl.targets import STUDY_LISTS, TARGETS, list_targets, load_target, read_split_list
from mtdtl.targets.base import SplitSpec, check_file, draw_split, int_stem_key, tail_key
from mtdtl.targets.irmas import parse_irmas_name
from mtdtl.targets.lastfm1k import read_items_hash
from mtdtl.targets.splits import STUDY_SOURCES, build_study_splits, study_items, study_split_list

# the study's split sizes (Table 5; the code release's eval/data/*.info)
STUDY_COUNTS = {
    "gtzan": {"train": 478, "valid": 211, "test": 311},
    "fma": {"train": 19922, "valid": 2505, "test": 2573},
    "irmas": {"train": 5698, "test": 1007},
    "emo_arousal": {"train": 619, "test": 125},
    "emo_valence": {"train": 619, "test": 125},
    "eballroom": {"": 3390},
}
N_CLASSES = {"gtzan": 10, "fma": 16, "irmas": 11, "eballroom": 13}
KEYS = {"gtzan": tail_key(2), "irmas": tail_key(2), "eballroom": tail_key(2), "fma": int_stem_key,
        "emo_arousal": int_stem_key, "emo_valence": int_stem_key}


def by_label_and_split(rows, n=1):
    """The first ``n`` rows of every (label, split) pair."""
    seen, out = Counter(), []
    for r in rows:
        if seen[(r[3], r[2])] < n:
            out.append(r)
            seen[(r[3], r[2])] += 1
    return out


def as_dict(ds, col):
    return dict(zip(ds.tracks["track_id"], ds.tracks[col]))


# ============================================================================ split lists
@pytest.mark.parametrize("target", sorted(STUDY_COUNTS))
def test_every_shipped_study_list_has_the_study_counts(target):
    sl = study_split_list(target)
    assert sl.name == STUDY_LISTS[target] == TARGETS[target].study_split_list
    df = sl.rows
    assert df["split"].value_counts().to_dict() == STUDY_COUNTS[target]
    assert df["index"].tolist() == list(range(len(df)))
    assert not df["path"].duplicated().any()
    if target in N_CLASSES:
        assert df["label"].nunique() == N_CLASSES[target]
    if target.startswith("emo"):
        y = df["label"].astype(float)
        assert y.between(1, 9).all()
    # every row maps to a distinct matching key
    assert df["path"].map(KEYS[target]).nunique() == len(df)


def test_shipped_items_list():
    items = study_items()
    assert len(items) == 27093
    assert items["index"].tolist() == list(range(27093))
    assert not items["track_id"].duplicated().any()
    assert items["track_id"].str.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}").all()
    assert TARGETS["lastfm1k"].study_split_list == "lastfm1k-items"
    assert study_split_list("lastfm1k") is None and study_split_list("demo:genre") is None


def test_shipped_lists_equal_the_study_files(tmp_path, reference_dir):
    """The package data is the study's .info files and item list, row for row (skipped without them)."""
    if not all((reference_dir / f).is_file() for f in STUDY_SOURCES.values()):
        pytest.skip("the study's files are not in ../shared/reference")
    from mtdtl.targets.splits import study_data_dir

    report = build_study_splits(reference_dir, tmp_path)

    for name in STUDY_SOURCES:
        assert (tmp_path / f"{name}.csv.gz").read_bytes() == (study_data_dir() / f"{name}.csv.gz").read_bytes(), name
    for target, name in STUDY_LISTS.items():
        original = read_split_list(reference_dir / STUDY_SOURCES[name])
        pd.testing.assert_frame_equal(study_split_list(target).rows[["index", "path", "split", "label"]],
                                      original[["index", "path", "split", "label"]])
        assert report[name]["rows"] == len(original)
    original = read_items_hash(reference_dir / "lastfm1k_items.hash").sort_values("index", ignore_index=True)
    pd.testing.assert_frame_equal(study_items(), original)


@pytest.mark.parametrize("content, message", [
    ("0\ta.au\ttrain\tblues\n1\tb.au\ttrain\n", "line 2: expected 4 tab-separated fields"),
    ("0\ta.au\ttrain\tblues\nx\tb.au\ttrain\tblues\n", "line 2: index 'x' is not an integer"),
    ("0\ta.au\ttrain\tblues\n\n2\tb.au\tdev\tblues\n", "line 3: unknown split 'dev'"),
    ("0\ta.au\ttrain\tblues\n1\ta.au\ttest\tblues\n", "line 2: path 'a.au' is listed twice (first on line 1)"),
    ("0 a.au train blues\n", "line 1: expected 4 tab-separated fields"),
])
def test_malformed_split_list_names_file_and_line(tmp_path, content, message):
    p = tmp_path / "bad.info"
    p.write_text(content)
    with pytest.raises(MtdtlError) as e:
        read_split_list(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_missing_split_list_is_a_clear_error(tmp_path):
    write_files(tmp_path, ["genres/blues/blues.00000.au"])
    with pytest.raises(MtdtlError, match="split list .*nope.info not found"):
        load_target("gtzan", tmp_path, split_list=tmp_path / "nope.info", progress=False)


def test_keys():
    assert tail_key(2)("/genres/disco/disco.00038.au") == "disco/disco.00038"
    assert tail_key(2)("genres/disco/disco.00038.wav") == "disco/disco.00038"
    assert tail_key(2)("data/Pasodoble/113217.mp3") == "Pasodoble/113217"
    assert int_stem_key("fma_medium_22k/000/000002.mp3") == "2"
    assert int_stem_key("/audio/clips_45seconds/1000.mp3") == "1000"
    from mtdtl.targets.ballroom import ballroom_key
    assert ballroom_key("data/Pasodoble/113217.mp3") == ballroom_key("Pasodoble/Pasodoble.113217.mp3") \
        == ballroom_key("pasodoble/pasodoble.113217.MP3") == "Pasodoble/113217"


# ============================================================================ GTZAN
def test_gtzan_uses_the_study_list_without_being_asked(tmp_path, caplog):
    """The study's fault-filtered split is the default: a tree in GTZAN's original layout gets
    it without the caller passing a list, and the loader says which split it used."""
    rows = by_label_and_split(study_rows("gtzan"))  # one per (genre, split): 30 tracks
    write_files(tmp_path / "gtzan", [r[1] for r in rows])  # <root>/genres/<genre>/<genre>.000NN.au
    write_audio(tmp_path / "gtzan" / "genres" / "blues" / "blues.01000.au")  # not in the list
    with caplog.at_level(logging.INFO, logger="mtdtl"):
        ds = load_target("gtzan", tmp_path / "gtzan", progress=False)
    expected = {Path(r[1]).stem: (r[2], r[3]) for r in rows}
    assert len(ds) == len(rows) == 30
    assert {t: (s, l) for t, s, l in zip(ds.tracks["track_id"], ds.tracks["split"], ds.tracks["label"])} == expected
    assert ds.task == "classification" and ds.metric == "accuracy"
    assert ds.classes == tuple(sorted({r[3] for r in rows})) and len(ds.classes) == 10
    assert ds.split_counts() == {"train": 10, "valid": 10, "test": 10}
    assert len(ds.unmatched) == 1000 - 30 and ds.unmatched[0].line >= 1
    assert ds.unlisted == ["blues.01000"]
    assert ds.meta["label_mismatches"] == 0 and ds.skipped == []
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in ds.tracks["path"])
    assert "970 of 1000 rows" in caplog.text
    assert ds.split_fixed and ds.split_name == "list:gtzan-filtered" and ds.split_list == "gtzan-filtered"
    assert "the study's split list gtzan-filtered" in ds.summary()
    assert "gtzan: 30 tracks, split: list:gtzan-filtered" in caplog.text  # the loader logs its split
    # the same as passing the study's list explicitly ("study"), and a user's own list overrides it
    assert as_dict(load_target("gtzan", tmp_path / "gtzan", split_list="study", progress=False), "split") \
        == as_dict(ds, "split")
    own = tmp_path / "my_split.info"
    own.write_text("".join(f"{i}\t{r[1]}\t{'test' if i % 2 else 'train'}\t{r[3]}\n" for i, r in enumerate(rows)))
    mine = load_target("gtzan", tmp_path / "gtzan", split_list=own, progress=False)
    assert as_dict(mine, "split") == {Path(r[1]).stem: "test" if i % 2 else "train" for i, r in enumerate(rows)}
    assert mine.split_name == "list:my_split" and mine.split_fixed


def test_gtzan_wav_copy_and_root_variants_match_too(tmp_path):
    rows = by_label_and_split(study_rows("gtzan"))[:6]
    # the Kaggle re-release: Data/genres_original/<genre>/<genre>.000NN.wav
    write_files(tmp_path / "kaggle", [r[1].replace("/genres/", "Data/genres_original/") for r in rows], ext=".wav")
    ds = load_target("gtzan", tmp_path / "kaggle", progress=False)
    assert as_dict(ds, "split") == {Path(r[1]).stem: r[2] for r in rows}
    # root = the genres folder itself
    write_files(tmp_path / "plain", [r[1] for r in rows])
    ds2 = load_target("gtzan", tmp_path / "plain" / "genres", progress=False)
    assert as_dict(ds2, "split") == as_dict(ds, "split")


def test_gtzan_without_list_warns_and_draws_a_stratified_split(tmp_path, caplog):
    rel = [f"genres/{g}/{g}.{i:05d}.au" for g in ("blues", "jazz", "rock") for i in range(5)]
    write_files(tmp_path, rel)
    with caplog.at_level(logging.WARNING, logger="mtdtl"):
        ds = load_target("gtzan", tmp_path, seed=3, split_list=None, progress=False)
    assert "fault-filtered" in caplog.text
    assert ds.split_method.startswith("fallback: stratified random")
    assert not ds.split_fixed and ds.split_name == ""
    per_class = ds.tracks.groupby("label")["split"].apply(lambda s: (s == "test").sum()).to_dict()
    assert per_class == {"blues": 1, "jazz": 1, "rock": 1}
    again = load_target("gtzan", tmp_path, seed=3, split_list=None, progress=False)
    assert ds.tracks["split"].tolist() == again.tracks["split"].tolist()
    other = ds.resplit(4)
    assert other.tracks["track_id"].tolist() == ds.tracks["track_id"].tolist()
    assert (other.tracks["split"] == "test").sum() == 3
    assert other.fallback.seed == 4


# ============================================================================ corrupt / missing
def test_corrupt_empty_and_missing_files_are_reported_not_fatal(tmp_path):
    root = tmp_path / "gtzan"
    write_files(root, ["genres/blues/blues.00000.au", "genres/blues/blues.00001.au", "genres/jazz/jazz.00000.au"])
    (root / "genres/blues/blues.00002.au").write_bytes(b"")                       # empty
    (root / "genres/jazz/jazz.00001.au").write_bytes(b"this is not audio" * 10)  # corrupt
    (root / "genres/jazz/jazz.00002.wav").write_bytes(audio_bytes(".mp3"))      # mp3 bytes named .wav
    ds = load_target("gtzan", root, progress=False)
    assert sorted(ds.tracks["track_id"]) == ["blues.00000", "blues.00001", "jazz.00000"]
    reasons = {Path(s.path).name: s.reason for s in ds.skipped}
    assert reasons["blues.00002.au"].startswith("empty file")
    assert reasons["jazz.00001.au"].startswith("corrupt")
    assert reasons["jazz.00002.wav"].startswith("corrupt")
    assert "skipped 3" in ds.summary()
    # with check="exists" only the empty file is caught; "none" trusts the listing
    assert len(load_target("gtzan", root, check="exists", progress=False).skipped) == 1
    assert len(load_target("gtzan", root, check="none", progress=False)) == 6
    assert check_file(root / "nope.au") == "missing file"
    for ext in (".au", ".wav", ".mp3", ".flac"):
        assert check_file(write_audio(tmp_path / f"ok{ext}")) is None, ext


# ============================================================================ FMA
def _fma_rows_from_info(rows):
    out = []
    for i, (_, p, split, label) in enumerate(rows):
        out.append({"track_id": int(Path(p).stem), "genre_top": label, "subset": "medium" if i % 2 else "small",
                    "split": {"train": "training", "valid": "validation", "test": "test"}[split],
                    "artist_id": 100 + i // 2})
    return out


def test_fma_reads_tracks_csv_and_matches_the_real_split(tmp_path):
    rows = by_label_and_split(study_rows("fma"))[:24]
    tracks = _fma_rows_from_info(rows)
    # a large-subset track and a track without a top genre are not part of the task
    tracks.append({"track_id": 155320, "genre_top": "Rock", "subset": "large", "split": "training", "artist_id": 7})
    tracks.append({"track_id": 155321, "genre_top": "", "subset": "medium", "split": "training", "artist_id": 7})
    root = tmp_path / "fma"
    write_fma_tracks_csv(root / "fma_metadata" / "tracks.csv", tracks)
    write_files(root, [fma_audio_relpath(t["track_id"]) for t in tracks[1:]])  # first track: audio missing
    write_audio(root / fma_audio_relpath(999999))                               # audio without metadata
    ds = load_target("fma", root, progress=False)  # the study's list (the default)
    expected = {f"{int(Path(r[1]).stem):06d}": (r[2], r[3]) for r in rows[1:]}
    assert {t: (s, l) for t, s, l in zip(ds.tracks["track_id"], ds.tracks["split"], ds.tracks["label"])} == expected
    assert as_dict(ds, "group")[f"{int(Path(rows[1][1]).stem):06d}"] == str(tracks[1]["artist_id"])
    reasons = {Path(s.path).name: s.reason for s in ds.skipped}
    first = f"{int(Path(rows[0][1]).stem):06d}.mp3"
    assert reasons[first] == "missing file"
    assert reasons["999999.mp3"].startswith("no metadata")
    assert reasons["155320.mp3"].startswith("not in the medium subset")
    assert reasons["155321.mp3"].startswith("not in the medium subset")
    assert len(ds.unmatched) == 25000 - 24
    assert ds.meta["label_mismatches"] == 0
    assert ds.split_name == "list:fma-medium" and ds.split_fixed
    # without the list: the dataset's own split gives the same answer
    own = load_target("fma", root, split_list=None, progress=False)
    assert as_dict(own, "split") == as_dict(ds, "split")
    assert own.split_method.startswith("dataset (tracks.csv set/split")
    assert own.split_name == "dataset:fma" and own.split_fixed
    assert set(own.tracks["artist"]) >= {"Artist 100"}


def test_fma_fallback_is_artist_filtered(tmp_path):
    rng = np.random.default_rng(0)
    tracks = [{"track_id": 2 + i, "genre_top": ["Rock", "Pop", "Folk"][i % 3], "subset": "medium", "split": "",
               "artist_id": int(rng.integers(0, 12))} for i in range(60)]
    write_fma_tracks_csv(tmp_path / "fma_metadata" / "tracks.csv", tracks)
    write_files(tmp_path, [fma_audio_relpath(t["track_id"]) for t in tracks])
    ds = load_target("fma", tmp_path, seed=1, split_list=None, progress=False)
    assert set(ds.tracks["split"]) == {"train", "test"} and not ds.split_fixed
    assert ds.tracks.groupby("group")["split"].nunique().max() == 1
    assert 0.05 < (ds.tracks["split"] == "test").mean() < 0.45
    assert "artist-filtered, stratified by label" in ds.split_method


def test_fma_bad_metadata_is_a_clear_error(tmp_path):
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_medium").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_text("track_id,genre\n2,Rock\n")
    with pytest.raises(MtdtlError, match="tracks.csv"):
        load_target("fma", tmp_path, progress=False)
    with pytest.raises(MtdtlError, match="unknown subset"):
        load_target("fma", tmp_path, subset="huge", progress=False)


# ============================================================================ Extended Ballroom
def test_ballroom_uses_the_real_list_and_a_stratified_split(tmp_path):
    rows = pick_rows(study_rows("eballroom"), per_label=3)  # 3 per style, 39 tracks
    # the distribution's layout <Style>/<id>.mp3 (the list says data/<Style>/<id>.mp3)
    write_files(tmp_path, [r[1].replace("data/", "", 1) for r in rows])
    ds = load_target("eballroom", tmp_path, seed=0, progress=False)
    assert as_dict(ds, "label") == {Path(r[1]).stem: r[3] for r in rows}
    assert len(ds.classes) == 13
    assert set(ds.tracks["split"]) == {"train", "test"}
    assert (ds.tracks.groupby("label")["split"].apply(lambda s: (s == "test").sum()) == 1).all()
    assert "fallback: stratified random" in ds.split_method
    assert not ds.split_fixed and ds.split_name == "" and ds.split_list == "eballroom"  # repetitions: folds
    assert len(ds.unmatched) == 3390 - 39
    # the study's data/ folder is found too
    write_files(tmp_path / "study", [r[1] for r in rows[:5]])
    assert len(load_target("eballroom", tmp_path / "study", progress=False)) == 5


# ============================================================================ IRMAS
def test_irmas_name_parsing():
    assert parse_irmas_name("[cel][cla]0001__1") == {"instrument": "cel", "drums": "", "genre": "cla",
                                                      "song": "0001", "part": 1, "prefix": ""}
    assert parse_irmas_name("204__[pia][nod][cla]1401__1")["song"] == "1401"
    assert parse_irmas_name("220__[gel][---][pop_roc]0942__2")["drums"] == "---"
    assert parse_irmas_name("README") is None


def test_irmas_matches_the_real_song_filtered_split(tmp_path):
    all_rows = study_rows("irmas")
    rows = by_label_and_split(all_rows)
    rows += [r for r in all_rows if "[---]" in r[1]][:3]  # the drum tag spelled ---
    root = tmp_path / "IRMAS-TrainingData"
    write_files(root, [r[1] for r in rows], ext=".wav")  # the distribution's files are .wav
    ds = load_target("irmas", tmp_path, progress=False)  # root above IRMAS-TrainingData
    assert len(ds) == len(rows)
    assert as_dict(ds, "split") == {Path(r[1]).stem: r[2] for r in rows}
    assert as_dict(ds, "label") == {Path(r[1]).stem: r[3] for r in rows}
    assert len(ds.classes) == 11 and not ds.unmatched[:0]
    assert len(ds.unmatched) == 6705 - len(rows)
    assert all(p.endswith(".wav") for p in ds.tracks["path"])
    assert as_dict(ds, "group")[Path(rows[0][1]).stem] == parse_irmas_name(Path(rows[0][1]).stem)["song"]


def test_irmas_song_groups_agree_with_the_study_split():
    # the song id NNNN never lies on both sides of the study's split
    df = study_split_list("irmas").rows
    songs = df["path"].map(lambda p: parse_irmas_name(Path(p).stem)["song"])
    assert df.groupby(songs)["split"].nunique().max() == 1


def test_irmas_fallback_is_song_filtered(tmp_path):
    names = []
    for song in range(1, 31):
        instr = ["cel", "pia", "voi"][song % 3]
        for part in (1, 2, 3):
            pre = f"{song:03d}__" if song % 4 == 0 else ""
            tags = f"[{instr}][nod][cla]" if pre else f"[{instr}][cla]"
            names.append(f"{instr}/{pre}{tags}{song:04d}__{part}.wav")
    write_files(tmp_path, names)
    ds = load_target("irmas", tmp_path, seed=2, split_list=None, progress=False)
    assert len(ds) == 90
    assert ds.tracks.groupby("group")["split"].nunique().max() == 1
    n_test = ds.tracks.groupby("label")["split"].apply(lambda s: (s == "test").sum())
    assert (n_test > 0).all() and (n_test % 3 == 0).all()  # every instrument, whole songs
    assert 0.1 < (ds.tracks["split"] == "test").mean() < 0.3


# ============================================================================ emoMusic
def _emo_tree(tmp_path, *, songs_info=True, annotations=True):
    arousal = study_rows("emo_arousal")
    valence = {r[1]: r[3] for r in study_rows("emo_valence")}
    rows = pick_rows(arousal, per_split=4)
    root = tmp_path / "emo"
    write_files(root, [r[1].replace("/audio/", "") for r in rows])  # <root>/clips_45seconds/<id>.mp3
    write_audio(root / "clips_45seconds" / "1.mp3")  # song 1 is not among the annotated songs
    songs = [{"song_id": int(Path(r[1]).stem), "arousal": float(r[3]), "valence": float(valence[r[1]]),
              "artist": f"Artist {i % 3}", "genre": ["Rock", "Pop"][i % 2],
              "set": "development" if r[2] == "train" else "evaluation"} for i, r in enumerate(rows)]
    if annotations:
        write_emo_annotations(root, songs, songs_info=songs_info)
    return root, rows, valence


def test_emo_reads_annotations_and_matches_the_real_split(tmp_path):
    root, rows, valence = _emo_tree(tmp_path)
    ds = load_target("emo_arousal", root, progress=False)
    assert ds.split_name == "list:emo-arousal" and ds.split_fixed
    assert ds.task == "regression" and ds.metric == "r2" and ds.classes == ()
    assert as_dict(ds, "split") == {Path(r[1]).stem: r[2] for r in rows}
    for tid, y in as_dict(ds, "label").items():
        assert math.isclose(y, float({Path(r[1]).stem: r[3] for r in rows}[tid]), abs_tol=1e-4)
    assert ds.meta["label_mismatches"] == 0
    assert [Path(s.path).name for s in ds.skipped] == ["1.mp3"]
    assert "no static annotation" in ds.skipped[0].reason
    assert len(ds.unmatched) == 744 - len(rows)
    val = load_target("emo_valence", root, progress=False)
    for tid, y in as_dict(val, "label").items():
        assert math.isclose(y, float(valence[f"/audio/clips_45seconds/{tid}.mp3"]), abs_tol=1e-4)
    # no list: songs_info's "Mediaeval 2013 set" is the same split
    own = load_target("emo_arousal", root, split_list=None, progress=False)
    assert as_dict(own, "split") == as_dict(ds, "split")
    assert own.split_method.startswith("dataset (songs_info.csv")
    assert set(own.tracks["group"]) == {"artist 0", "artist 1", "artist 2"}


def test_emo_fallbacks(tmp_path):
    root, rows, _ = _emo_tree(tmp_path, songs_info=False)
    ds = load_target("emo_arousal", root, seed=5, split_list=None, progress=False)
    assert ds.split_method.startswith("fallback: random")
    assert (ds.tracks["split"] == "test").sum() == round(0.2 * len(rows))
    # without annotations, the list's labels are used; without either, a clear error
    root2, rows2, _ = _emo_tree(tmp_path / "b", annotations=False)
    ds2 = load_target("emo_arousal", root2, progress=False)  # the study's list gives the labels
    assert len(ds2) == len(rows2) and ds2.tracks["label"].notna().all()
    with pytest.raises(MtdtlError, match="static_annotations.csv not found"):
        load_target("emo_valence", root2, split_list=None, progress=False)


def test_label_disagreements_and_non_numeric_labels_in_a_list(tmp_path, caplog):
    root, rows, _ = _emo_tree(tmp_path)
    lines = [f"{i}\t{r[1]}\t{r[2]}\t{float(r[3]) + (1.0 if i == 0 else 0.0):.4f}" for i, r in enumerate(rows)]
    (tmp_path / "shifted.info").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="mtdtl"):
        ds = load_target("emo_arousal", root, split_list=tmp_path / "shifted.info", progress=False)
    assert ds.meta["label_mismatches"] == 1 and "labels differ" in caplog.text
    # no annotation file and an empty label in the list: that track is skipped, not fatal
    ann = root / "annotations" / "static_annotations.csv"
    ann.rename(root / "annotations" / "moved.csv")
    lines_empty = lines.copy()
    lines_empty[1] = f"1\t{rows[1][1]}\t{rows[1][2]}\t"
    (tmp_path / "empty.info").write_text("\n".join(lines_empty) + "\n")
    ds = load_target("emo_arousal", root, split_list=tmp_path / "empty.info", progress=False)
    assert len(ds) == len(rows) - 1
    assert [(Path(s.path).stem, s.reason) for s in ds.skipped] == [(Path(rows[1][1]).stem, "no label")]
    lines[2] = f"2\t{rows[2][1]}\t{rows[2][2]}\thigh"
    (tmp_path / "bad.info").write_text("\n".join(lines) + "\n")
    with pytest.raises(MtdtlError, match=r"bad.info, line 3: label 'high' is not a number"):
        load_target("emo_arousal", root, split_list=tmp_path / "bad.info", progress=False)


# ============================================================================ Last.fm-1K
def _lastfm_tree(tmp_path, *, n_items=24, n_users=12, by_index=False, items_hash=True):
    rng = np.random.default_rng(7)
    items = [(m, str(i)) for m, i in study_item_rows()[100:100 + n_items]]
    root = tmp_path / "lastfm"
    root.mkdir(parents=True, exist_ok=True)
    if items_hash:
        (root / "items.hash").write_text("".join(f"{m},{i}\n" for m, i in items))
    artists = [(fake_mbid(rng), f"Band {k}") for k in range(6)]
    art_of = {m: artists[j % 6] for j, (m, _) in enumerate(items)}
    plays = []
    truth = Counter()
    for u in range(n_users):
        user = f"user_{u + 1:06d}"
        for j, (m, _) in enumerate(items):
            if (u + j) % 3 == 0 or j < 2:
                for _ in range(1 + (u * j) % 3):
                    aid, aname = art_of[m]
                    plays.append((user, aid, aname, m, f"Song {j}"))
                    truth[(user, m)] += 1
    plays.append(("user_000001", artists[0][0], "Band 0", fake_mbid(rng), "a track without audio"))
    write_lastfm_log(root / "lastfm-dataset-1K" / "userid-timestamp-artid-artname-traid-traname.tsv", plays,
                     malformed=2, no_mbid=3)
    for m, i in items[:-1]:  # the last item has no audio
        write_audio(root / "audio" / f"{i if by_index else m}.mp3")
    return root, items, truth


def test_lastfm1k_play_counts_items_and_artist_filtered_split(tmp_path):
    root, items, truth = _lastfm_tree(tmp_path)
    ds = load_target("lastfm1k", root, min_items_per_user=2, progress=False)
    assert ds.task == "recommendation" and ds.metric == "ndcg@500"
    with_audio = {m for m, _ in items[:-1]}
    assert set(ds.tracks["track_id"]) == with_audio
    assert ds.tracks["label"].isna().all()
    got = {(u, t): c for u, t, c in ds.interactions.itertuples(index=False)}
    assert got == {k: v for k, v in truth.items() if k[1] in with_audio}
    assert ds.interactions["play_count"].dtype == np.int64
    assert ds.meta["malformed_lines"] == 2
    assert [s.reason for s in ds.skipped] == ["missing file (item without audio)"]
    assert set(ds.tracks["split"]) == {"train", "test"}
    assert ds.tracks.groupby("group")["split"].nunique().max() == 1  # artist-filtered
    assert dict(zip(ds.tracks["track_id"], ds.tracks["index"]))[items[0][0]] == int(items[0][1])
    # audio named by item index resolves through items.hash; the user filter drops light users
    root2, items2, _ = _lastfm_tree(tmp_path / "b", by_index=True)
    ds2 = load_target("lastfm1k", root2, min_items_per_user=9, progress=False)
    assert set(ds2.tracks["track_id"]) <= with_audio and len(ds2) > 0
    per_user = ds2.interactions.groupby("user_id")["track_id"].nunique()
    assert per_user.min() >= 9
    assert "interactions" in ds2.summary()


def test_lastfm1k_item_split_list(tmp_path):
    root, items, _ = _lastfm_tree(tmp_path)
    lines = [f"{k}\taudio/{m}.mp3\t{'test' if k % 4 == 0 else 'train'}\t" for k, (m, _) in enumerate(items)]
    (tmp_path / "items.info").write_text("\n".join(lines) + "\n")
    ds = load_target("lastfm1k", root, split_list=tmp_path / "items.info", min_items_per_user=1, progress=False)
    assert as_dict(ds, "split") == {m: ("test" if k % 4 == 0 else "train") for k, (m, _) in enumerate(items[:-1])}
    assert ds.unmatched == []  # the item without audio is reported once, as skipped
    assert set(ds.interactions["track_id"]) <= set(ds.tracks["track_id"])


def test_lastfm1k_uses_the_study_item_list_by_default(tmp_path, caplog):
    """Without an items.hash of your own, the study's 27,093 items (shipped) resolve audio named by
    item index; the split is not fixed (Table 5: N/A), so the repetitions are item folds."""
    root, items, _ = _lastfm_tree(tmp_path, by_index=True, items_hash=False)
    with caplog.at_level(logging.INFO, logger="mtdtl"):
        ds = load_target("lastfm1k", root, min_items_per_user=2, progress=False)
    assert "the study's item list lastfm1k-items" in caplog.text
    assert set(ds.tracks["track_id"]) == {m for m, _ in items[:-1]}
    assert ds.meta["items"] == "study:lastfm1k-items" and ds.meta["min_users_per_item"] == 1
    assert not ds.split_fixed and ds.split_name == ""
    assert sum(s.reason.startswith("missing file") for s in ds.skipped) == 27093 - len(items) + 1
    # items=None: no list; index-named files are then not track MBIDs
    bare = load_target("lastfm1k", root, items=None, min_items_per_user=1, min_users_per_item=1, progress=False)
    assert len(bare) == 0 or set(bare.tracks["track_id"]).isdisjoint({i for _, i in items})


def test_lastfm1k_missing_log_is_a_clear_error(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(MtdtlError, match="userid-timestamp-artid-artname-traid-traname.tsv not found"):
        load_target("lastfm1k", tmp_path, progress=False)
    (tmp_path / "items.hash").write_text("abc,1\nnot-a-line\n")
    (tmp_path / "userid-timestamp-artid-artname-traid-traname.tsv").write_text("")
    with pytest.raises(MtdtlError, match=r"items.hash, line 2"):
        load_target("lastfm1k", tmp_path, progress=False)


# ============================================================================ demo corpus
def test_demo_tasks_from_a_corpus_folder(tmp_path):
    root = write_demo_corpus(tmp_path / "corpus")
    assert list_targets(root)[-3:] == ["demo:collection", "demo:listeners", "demo:tempo"]
    cls = load_target("demo:collection", root, progress=False)
    assert cls.task == "classification" and cls.classes == ("bach", "essen") and len(cls) == 12
    assert cls.split_counts() == {"train": 4, "valid": 4, "test": 4}
    assert cls.split_method == "dataset (targets/collection.csv)"
    reg = load_target("demo:tempo", root, progress=False)
    assert reg.task == "regression" and reg.tracks["label"].dtype == float
    rec = load_target("demo:listeners", root, progress=False)
    assert rec.task == "recommendation" and rec.interactions is not None and len(rec.interactions) > 0
    assert set(rec.interactions["track_id"]) <= set(rec.tracks["track_id"])
    (root / "audio" / "t003.flac").unlink()
    again = load_target("demo:collection", root, progress=False)
    assert [s.reason for s in again.skipped] == ["missing file"] and len(again) == 11
    with pytest.raises(MtdtlError, match=r"no target task 'nope'.*collection"):
        load_target("demo:nope", root)


def test_demo_tasks_of_the_tiny_corpus(request):
    pytest.importorskip("mtdtl.corpora.demo", reason="the demo corpus builder is not available yet")
    root = request.getfixturevalue("tiny_corpus")
    names = [n for n in list_targets(root) if n.startswith("demo:")]
    assert names
    for name in names:
        ds = load_target(name, root, progress=False)
        assert len(ds) > 0 and ds.skipped == [], ds.summary()
        assert set(ds.tracks["split"]) <= {"train", "valid", "test"}
        if ds.task == "classification":
            assert len(ds.classes) >= 2
        if ds.task == "recommendation":
            assert len(ds.interactions) > 0


# ============================================================================ registry
def test_registry_names_and_errors(tmp_path):
    assert list(TARGETS) == ["gtzan", "fma", "eballroom", "irmas", "emo_arousal", "emo_valence", "lastfm1k"]
    assert "demo:<task>" in list_targets()
    assert {TARGETS[n].metric for n in TARGETS} == {"accuracy", "r2", "ndcg@500"}
    with pytest.raises(MtdtlError) as e:
        load_target("gtzann", tmp_path)
    assert "unknown target 'gtzann'" in str(e.value) and "eballroom" in str(e.value) and "demo:<task>" in str(e.value)
    with pytest.raises(MtdtlError, match="does not exist"):
        load_target("irmas", tmp_path / "missing")
    with pytest.raises(MtdtlError, match="no genre folders"):
        load_target("gtzan", tmp_path)
    write_files(tmp_path, ["genres/blues/blues.00000.au"])
    with pytest.raises(MtdtlError, match=r"unknown option\(s\) \['sed'\]"):
        load_target("gtzan", tmp_path, sed=1)
    with pytest.raises(MtdtlError, match="unknown file check"):
        load_target("gtzan", tmp_path, check="deep")


# ============================================================================ splits
def test_draw_split_invariants():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"label": rng.choice(list("abcd"), 400), "group": rng.integers(0, 80, 400).astype(str)})
    strat = draw_split(df, SplitSpec(stratify="label", seed=1))
    for c in "abcd":
        m = df["label"] == c
        assert abs((strat[m] == "test").sum() - 0.2 * m.sum()) <= 1
    grp = draw_split(df, SplitSpec(group="group", seed=1))
    assert pd.Series(grp).groupby(df["group"]).nunique().max() == 1
    assert 0.15 < (grp == "test").mean() < 0.25
    both = draw_split(df, SplitSpec(stratify="label", group="group", seed=1))
    assert pd.Series(both).groupby(df["group"]).nunique().max() == 1
    assert (draw_split(df, SplitSpec(seed=1)) == "test").sum() == 80
    assert (draw_split(df, SplitSpec(seed=1)) == draw_split(df, SplitSpec(seed=1))).all()
    assert (draw_split(df, SplitSpec(seed=1)) != draw_split(df, SplitSpec(seed=2))).any()
    with pytest.raises(MtdtlError, match="test_size"):
        SplitSpec(test_size=1.5)


# ============================================================================ real layouts
def test_ballroom_official_download_script_layout(tmp_path, caplog):
    """The dataset ships no audio; its download script writes <Style>/<Style>.<id>.mp3. Those
    files match the study's list (data/<Style>/<id>.mp3) by style and id."""
    rows = pick_rows(study_rows("eballroom"), per_label=2)  # 2 per style, 26 tracks
    root = tmp_path / "eb"
    write_files(root, [f"{r[3]}/{r[3]}.{Path(r[1]).stem}.mp3" for r in rows])
    ds = load_target("eballroom", root, progress=False)
    assert len(ds) == len(rows) == 26
    assert as_dict(ds, "label") == {Path(r[1]).stem: r[3] for r in rows}
    assert all(Path(p).name.startswith(f"{l}.") for p, l in zip(ds.tracks["path"], ds.tracks["label"]))
    assert len(ds.unmatched) == 3390 - 26 and ds.skipped == [] and ds.unlisted == []
    assert ds.split_list == "eballroom" and not ds.split_fixed
    # both layouts side by side: one file per track is used, the other reported as a duplicate
    r = rows[0]
    write_audio(root / r[3] / f"{Path(r[1]).stem}.mp3")
    both = load_target("eballroom", root, progress=False)
    assert len(both) == 26 and [s.reason.split(":")[0] for s in both.skipped] == ["duplicate"]
    # the list's own folder (EBallroom/data/<Style>/<id>.mp3) is found from above
    write_files(tmp_path / "other" / "EBallroom", [r[1] for r in rows[:4]])
    assert len(load_target("eballroom", tmp_path / "other", progress=False)) == 4


@pytest.mark.parametrize("target, layout", [
    ("gtzan", "gtzan_genre/genres/{genre}/{genre}.{i:05d}.wav"),                  # mirdata, root above its data_home
    ("gtzan", "gtzan_genre/gtzan_genre/genres/{genre}/{genre}.{i:05d}.wav"),      # mirdata's index under ~/mir_datasets
    ("irmas", "irmas/IRMAS-TrainingData/{instr}/[{instr}][cla]{i:04d}__1.wav"),  # mirdata
    ("eballroom", "extendedballroom_v1.1/{style}/{style}.{i}.mp3"),
    ("eballroom", "EBallroom/{style}/{i}.mp3"),
])
def test_mirdata_and_distribution_folders_are_found(tmp_path, target, layout):
    names = [layout.format(genre=g, instr=g, style=g, i=100 * k + i)  # ids unique across classes
             for k, g in enumerate({"gtzan": ("blues", "jazz"), "irmas": ("cel", "pia"),
                                    "eballroom": ("Jive", "Tango")}[target])
             for i in range(3)]
    write_files(tmp_path, names)
    ds = load_target(target, tmp_path, split_list=None, progress=False)
    assert len(ds) == 6 and len(ds.classes) == 2


def _study_path_tree(target, root):
    """Files in the dataset's layout whose names are NOT those of the study's list."""
    if target == "gtzan":
        write_files(root, ["genres/blues/my_blues_song.au", "genres/jazz/my_jazz_song.au"])
        return root / "genres"
    if target == "eballroom":
        write_files(root, ["Jive/some-jive.mp3", "Tango/some-tango.mp3"])
        return root
    if target == "irmas":
        write_files(root, ["IRMAS-TrainingData/cel/[cel][cla]9999__1.wav"])
        return root / "IRMAS-TrainingData"
    raise AssertionError(target)


@pytest.mark.parametrize("target", ["gtzan", "eballroom", "irmas"])
def test_no_file_matching_the_split_list_is_an_error(tmp_path, target):
    searched = _study_path_tree(target, tmp_path)
    with pytest.raises(MtdtlError) as e:
        load_target(target, tmp_path, progress=False)
    msg = str(e.value)
    first = study_rows(target)[0][1]
    assert "no file matched the split list" in msg and STUDY_LISTS[target] in msg
    assert str(searched) in msg                       # the folder searched
    assert repr(first) in msg                         # a listed path ...
    found = min(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*") if p.is_file())
    assert repr(found) in msg                         # ... and a found one
    assert "split_list=None" in msg
    # without the list the same files load
    assert len(load_target(target, tmp_path, split_list=None, progress=False)) >= 1


def test_no_file_matching_a_users_list_is_an_error_too(tmp_path):
    root = write_demo_corpus(tmp_path / "corpus")
    own = tmp_path / "elsewhere.info"
    own.write_text("0\taudio/x001.flac\ttrain\tbach\n1\taudio/x002.flac\ttest\tessen\n")
    with pytest.raises(MtdtlError, match=r"no file matched the split list .*elsewhere.info.*'audio/x001.flac'"):
        load_target("demo:collection", root, split_list=own, progress=False)
    # an empty dataset folder: the message says that no audio file was found
    write_files(tmp_path / "g", ["genres/blues/notes.au"])
    (tmp_path / "g" / "genres" / "blues" / "notes.au").unlink()
    with pytest.raises(MtdtlError, match="no audio file"):
        load_target("gtzan", tmp_path / "g", progress=False)


def test_lastfm1k_audio_matching_no_item_is_an_error(tmp_path):
    root, _, _ = _lastfm_tree(tmp_path)
    for p in (root / "audio").iterdir():
        p.rename(p.with_name("track-" + p.name))
    with pytest.raises(MtdtlError, match=r"no file matched the item list .*items.hash.*track-"):
        load_target("lastfm1k", root, min_items_per_user=1, progress=False)


def test_draw_split_stratified_and_grouped_on_a_tiny_dataset():
    """Fewer tracks per class than folds (a small dataset of your own): whole groups are drawn
    instead of scikit-learn's ValueError."""
    df = pd.DataFrame({"label": ["a"] * 3 + ["b"] * 3, "group": [str(i) for i in range(6)]})
    out = draw_split(df, SplitSpec(stratify="label", group="group", seed=0))
    assert set(out) == {"train", "test"} and (out == "test").sum() == 1
