"""Reading corpus tables strictly: byte-order marks, field counts, missing track ids, numbers.

Every check builds a small corpus folder by hand (no audio): these are the files
``Corpus.labels`` / ``Corpus.manifest`` / ``Corpus.target_table`` read and preprocessing reduces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtdtl.corpora import Corpus
from mtdtl.corpora.base import LABEL_COLUMNS, learning_split, read_table
from mtdtl.errors import MtdtlError
from mtdtl.sources import get_source

MANIFEST = ("track_id,part,split,path,duration,sample_rate,channels\n"
            "TRA,learning,train,audio/TRA.flac,30,22050,2\n"
            "TRB,learning,train,audio/TRB.flac,30,22050,2\n"
            "TRC,learning,valid,audio/TRC.flac,30,22050,2\n"
            "TRD,target,test,audio/TRD.flac,30,22050,2\n")


def make_corpus(root: Path, **labels: str) -> Corpus:
    """A corpus folder with MANIFEST and the given ``labels/<source>.csv`` texts."""
    (root / "labels").mkdir(parents=True)
    (root / "manifest.csv").write_text(MANIFEST)
    for source, text in labels.items():
        (root / "labels" / f"{source}.csv").write_bytes(text.encode("utf-8"))
    return Corpus.open(root)


# --------------------------------------------------------------------------- byte-order mark
def test_byte_order_mark_does_not_hide_the_header(tmp_path):
    """Spreadsheet programs write a UTF-8 BOM: the header must still be the header."""
    c = make_corpus(tmp_path, cdr_tag="\ufefftrack_id,tag\nTRA,classical/baroque\nTRB,folk/irish\n",
                    self="\ufefftrack_id\nTRA\nTRB\nTRC\n")
    cdr = c.labels("cdr_tag")
    assert list(cdr.columns) == ["track_id", "tag"]
    assert cdr["track_id"].tolist() == ["TRA", "TRB"]
    assert c.labels("self")["track_id"].tolist() == ["TRA", "TRB", "TRC"]
    (tmp_path / "manifest.csv").write_bytes(("\ufeff" + MANIFEST).encode())
    assert Corpus.open(tmp_path).manifest["track_id"].tolist() == ["TRA", "TRB", "TRC", "TRD"]


# --------------------------------------------------------------------------- field counts
@pytest.mark.parametrize("text, line, saw", [
    ("track_id,tag\nTRA,rock\nTRB,pop,extra\nTRC,jazz\n", 3, 3),     # one row with an extra field
    ("track_id,tag\nTRA,rock,x\nTRB,pop,x\nTRC,jazz,y\n", 2, 3),      # every row: not an index column
    ("track_id,tag\nTRA,rock\nTRB,pop,\n", 3, 3),                    # a trailing empty field
    ("track_id,tag\nTRA,rock\n\nTRB\n", 4, 1),                       # too few (after a blank line)
    ('track_id,tag\nTRA,"rock, indie"\nTRB,"pop",x\n', 3, 3),        # quoted fields
])
def test_rows_with_the_wrong_field_count_are_rejected(tmp_path, text, line, saw):
    c = make_corpus(tmp_path, cdr_tag=text)
    with pytest.raises(MtdtlError, match=rf"cdr_tag.csv, line {line}: expected 2 fields \(track_id, tag\), "
                                         rf"saw {saw}"):
        c.labels("cdr_tag")


def test_quoted_fields_blank_lines_and_crlf_are_read(tmp_path):
    c = make_corpus(tmp_path, tag='track_id,tag,count\r\nTRA,"rock, indie",3\r\n\r\nTRB,"say ""hi""",1\r\n',
                    cdr_tag="track_id,tag\n\nTRA,classical\n  \nTRB,folk\n")
    tag = c.labels("tag")
    assert tag.values.tolist() == [["TRA", "rock, indie", 3.0], ["TRB", 'say "hi"', 1.0]]
    assert tag.attrs["lines"].tolist() == [2, 4]
    cdr = c.labels("cdr_tag")
    assert cdr["tag"].tolist() == ["classical", "folk"] and cdr.attrs["lines"].tolist() == [3, 5]


# --------------------------------------------------------------------------- missing track ids
@pytest.mark.parametrize("source, text, line", [
    ("bpm", "track_id,bpm\nTRA,120\n,99\nTRC,80\n", 3),
    ("bpm", "track_id,bpm\nTRA,120\n  ,99\n", 3),
    ("taste", "user_id,track_id,play_count\nu1,TRA,2\nu2,,1\n", 3),
    ("tag", 'track_id,tag,count\nTRA,rock,1\n"",pop,1\n', 3),
])
def test_a_missing_track_id_is_named_with_its_line(tmp_path, source, text, line):
    c = make_corpus(tmp_path, **{source: text})
    with pytest.raises(MtdtlError, match=rf"{source}.csv: track id missing on line {line}"):
        c.labels(source)


def test_a_missing_user_id_is_named_with_its_line(tmp_path):
    c = make_corpus(tmp_path, taste="user_id,track_id,play_count\nu1,TRA,2\n,TRB,1\n")
    with pytest.raises(MtdtlError, match="taste.csv: user id missing on line 3"):
        c.labels("taste")


@pytest.mark.parametrize("bad_id", [None, np.nan, "", "  "])
def test_sources_name_a_missing_track_id_in_a_dataframe(bad_id):
    df = pd.DataFrame({"track_id": ["TRA", bad_id, "TRC"], "bpm": [120.0, 99.0, 80.0]})
    with pytest.raises(MtdtlError, match=r"source 'bpm': track id missing on row 2 of label table 'bpm'"):
        get_source("bpm").fit(df, train_ids=["TRA", "TRC"], k=2)
    tags = {"artist": pd.DataFrame({"track_id": ["TRA", "TRB"], "artist": ["x", "y"]}),
            "tag": pd.DataFrame({"track_id": ["TRA", bad_id], "tag": ["a", "b"], "count": [1, 2]})}
    with pytest.raises(MtdtlError, match="track id missing on row 2 of label table 'tag'"):
        get_source("artist").fit(tags, train_ids=["TRA", "TRB"], k=2)


# --------------------------------------------------------------------------- values, columns
@pytest.mark.parametrize("source, text, match", [
    ("tag", "track_id,tag,count\nTRA,rock,1\nTRB,pop,lots\n", "line 3: count 'lots' is not a number"),
    ("tag", "track_id,tag,count\nTRA,rock,-2\n", "line 2: count '-2' is negative"),
    ("tag", "track_id,tag,count\nTRA,rock,\n", "line 2: count is empty"),
    ("taste", "user_id,track_id,play_count\nu1,TRA,inf\n", "line 2: play_count is missing or not finite"),
    ("bpm", "track_id,bpm\nTRA,fast\n", "line 2: bpm 'fast' is not a number"),
    ("tag", "track_id,tag\nTRA,rock\n", r"lacks the columns \['count'\]"),
    ("tag", "", "line 1 must be the header"),
    ("tag", "track_id,tag,tag\nTRA,a,b\n", "empty or repeated column names"),
])
def test_bad_values_and_columns(tmp_path, source, text, match):
    c = make_corpus(tmp_path, **{source: text})
    with pytest.raises(MtdtlError, match=match) as err:
        c.labels(source)
    assert f"{source}.csv" in str(err.value)


def test_empty_year_is_a_missing_value_and_tsv_is_read(tmp_path):
    c = make_corpus(tmp_path, year="track_id\tyear\nTRA\t1999\nTRB\t\nTRC\t2001\n")
    year = c.labels("year")
    assert year["year"].iloc[0] == 1999.0 and np.isnan(year["year"].iloc[1])
    red = get_source("year").fit(c, train_ids=["TRA", "TRB", "TRC"], k=1)
    assert red.missing_reasons == {"TRB": "no value"}


def test_not_utf8_and_missing_files(tmp_path):
    c = make_corpus(tmp_path, tag="track_id,tag,count\n")
    (tmp_path / "labels" / "tag.csv").write_bytes(b"track_id,tag,count\nTRA,\xff\xfe,1\n")
    with pytest.raises(MtdtlError, match="not UTF-8"):
        c.labels("tag")
    with pytest.raises(MtdtlError, match=r"no 'lyrics' labels \(it has: tag\)"):
        c.labels("lyrics")
    with pytest.raises(MtdtlError, match="table not found"):
        read_table(tmp_path / "nope.csv")


def test_header_only_table_is_empty_with_its_columns(tmp_path):
    c = make_corpus(tmp_path, lyrics="track_id,word,count\n")
    df = c.labels("lyrics")
    assert df.empty and list(df.columns) == list(LABEL_COLUMNS["lyrics"])


# --------------------------------------------------------------------------- manifest, targets, check
def test_manifest_problems(tmp_path):
    c = make_corpus(tmp_path)
    (tmp_path / "manifest.csv").write_text(MANIFEST + "TRA,learning,train,audio/TRA.flac,30,22050,2\n")
    with pytest.raises(MtdtlError, match="line 6: track 'TRA' is listed twice"):
        Corpus.open(tmp_path).manifest
    (tmp_path / "manifest.csv").write_text("track_id,part,split,path\nTRA,learning,train,a.flac\n")
    with pytest.raises(MtdtlError, match=r"lacks the columns \['duration', 'sample_rate', 'channels'\]"):
        Corpus.open(tmp_path).manifest
    del c


def test_check_lists_contract_problems_and_summary_needs_no_demo_columns(tmp_path):
    c = make_corpus(tmp_path, self="track_id\nTRA\nTRB\nTRC\n", tag="track_id,tag,count\nTRA,rock,1\nTRD,pop,2\n")
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "tasks.json").write_text(json.dumps(
        {"mood": {"type": "classification", "description": "mood"}, "odd": {"type": "ranking"}}))
    (tmp_path / "targets" / "mood.csv").write_text("track_id,label,split\nTRD,sad,train\n")
    problems = c.check()
    assert any("manifest.csv: 4 audio files are missing" in p for p in problems)
    assert any("labels/tag.csv: 1 tracks are not learning tracks" in p for p in problems)
    assert any("task 'odd' has type 'ranking'" in p for p in problems)
    assert any("targets/mood.csv: 1 rows have another split" in p for p in problems)
    assert c.check(audio=False) != [] and len(c.check(audio=False)) == 3
    with pytest.raises(MtdtlError, match="breaks the corpus folder contract"):
        c.validate()
    s = c.summary()
    assert "4 clips" in s and "tag" in s and "lyrics   missing" in s


def test_learning_split_is_seeded_grouped_and_never_empty():
    groups = pd.Series([f"g{i // 2}" for i in range(40)])
    a = learning_split(groups, seed=0, valid_fraction=0.1)
    assert a.equals(learning_split(groups, seed=0, valid_fraction=0.1))
    assert not a.equals(learning_split(groups, seed=1, valid_fraction=0.1))
    assert (a == "valid").sum() == 4 and a.groupby(groups).nunique().max() == 1
    assert (learning_split(pd.Series(["x", "y"]), seed=0, valid_fraction=0.1) == "valid").sum() == 1
    assert (learning_split(pd.Series(["x"]), seed=0, valid_fraction=0.1) == "train").all()
