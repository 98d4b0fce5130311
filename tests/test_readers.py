"""Readers of the paper's real label files, on fixture files written here in the exact formats."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtdtl.errors import MtdtlError
from mtdtl.sources import get_source
from mtdtl.sources.readers import (
    read_bpm_table,
    read_lastfm_tags,
    read_msd_artist,
    read_msd_year,
    read_musixmatch,
    read_song_to_track,
    read_taste_triplets,
    read_triplets,
)


# --------------------------------------------------------------------------- fixture writers
def write_lastfm_db(path: Path, pairs, *, extra_sql: str = "") -> Path:
    """``lastfm_tags.db`` as distributed: tids/tags addressed by rowid, tid_tag(tid, tag, val)."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE tids (tid TEXT); CREATE TABLE tags (tag TEXT);"
        "CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT);"
        "CREATE INDEX idx_tid_tag_tid ON tid_tag (tid);"
    )
    tids = list(dict.fromkeys(p[0] for p in pairs))
    tags = list(dict.fromkeys(p[1] for p in pairs))
    con.executemany("INSERT INTO tids VALUES (?)", [(t,) for t in tids])
    con.executemany("INSERT INTO tags VALUES (?)", [(t,) for t in tags])
    con.executemany("INSERT INTO tid_tag VALUES (?, ?, ?)",
                    [(tids.index(t) + 1, tags.index(g) + 1, v) for t, g, v in pairs])
    if extra_sql:
        con.executescript(extra_sql)
    con.commit()
    con.close()
    return path


SONGS_COLS = ("track_id TEXT, title TEXT, song_id TEXT, release TEXT, artist_id TEXT, artist_mbid TEXT, "
              "artist_name TEXT, duration REAL, artist_familiarity REAL, artist_hotttnesss REAL, year INT, "
              "track_7digitalid INT, shs_perf INT, shs_work INT")


def write_track_metadata(path: Path, rows) -> Path:
    """``track_metadata.db``: table ``songs`` (rows: track_id, song_id, artist_id, artist_name, year)."""
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE songs ({SONGS_COLS})")
    con.executemany(
        "INSERT INTO songs VALUES (?, 'title', ?, 'release', ?, '', ?, 200.0, 0.5, 0.4, ?, 1, -1, 0)", rows)
    con.commit()
    con.close()
    return path


MXM = """# This is the musiXmatch dataset, training set
# format: tid,mxm tid,idx:cnt,idx:cnt,...
%i,the,you,love,night
TRAAAAV128F421A322,4623710,1:6,2:4,4:2
TRAAABD128F429CF47,6477168,1:10,3:3
TRAAAED128E0783FAB,2516445
TRAAAEF128F4273421,3759847,2:1,5:7,2:1
"""


# --------------------------------------------------------------------------- Last.fm
def test_lastfm_tags(tmp_path):
    db = write_lastfm_db(tmp_path / "lastfm_tags.db", [
        ("TRA", "rock", 100.0), ("TRA", "indie", 40.0), ("TRB", "rock", 0.0), ("TRC", "soul", 7.5)])
    df = read_lastfm_tags(db)
    assert list(df.columns) == ["track_id", "tag", "count"]
    assert df.set_index(["track_id", "tag"])["count"].to_dict() == {
        ("TRA", "rock"): 100.0, ("TRA", "indie"): 40.0, ("TRB", "rock"): 0.0, ("TRC", "soul"): 7.5}
    assert set(read_lastfm_tags(db, track_ids=["TRC"])["track_id"]) == {"TRC"}
    assert len(read_lastfm_tags(db, min_count=10)) == 2
    # The reduction records TRB (only a zero weight) as missing, with the reason.
    red = get_source("tag").fit(df, train_ids=["TRA", "TRB", "TRC"], k=2)
    assert red.missing_reasons == {"TRB": "all-zero counts"}


@pytest.mark.parametrize("bad, match", [
    ("UPDATE tid_tag SET val = -3 WHERE rowid = 2", "tid_tag row 2.*negative"),
    ("UPDATE tid_tag SET val = NULL WHERE rowid = 3", "tid_tag row 3.*missing"),
    ("UPDATE tid_tag SET tag = 99 WHERE rowid = 1", "tid_tag row 1: tag = 99 names no row of table tags"),
])
def test_lastfm_bad_input(tmp_path, bad, match):
    db = write_lastfm_db(tmp_path / "lastfm_tags.db", [("TRA", "rock", 1.0), ("TRA", "pop", 2.0), ("TRB", "rock", 3.0)],
                         extra_sql=bad + ";")
    with pytest.raises(MtdtlError, match=match) as err:
        read_lastfm_tags(db)
    assert "lastfm_tags.db" in str(err.value)


def test_lastfm_not_a_database(tmp_path):
    (tmp_path / "lastfm_tags.db").write_text("tid,tag\n")
    with pytest.raises(MtdtlError, match="not an SQLite database"):
        read_lastfm_tags(tmp_path / "lastfm_tags.db")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE x (a INT)")
    con.close()
    with pytest.raises(MtdtlError, match="no table 'tids'"):
        read_lastfm_tags(tmp_path / "other.db")


# --------------------------------------------------------------------------- Taste Profile
def test_taste_triplets(tmp_path):
    f = tmp_path / "train_triplets.txt"
    f.write_text("b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAKIMP12A8C130995\t1\n"
                 "b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAPDEY12A81C210A9\t3\n"
                 "85c1f87fea955d09b4bec2e36aee110927aedf9a\tSOAKIMP12A8C130995\t12\n"
                 "85c1f87fea955d09b4bec2e36aee110927aedf9a\tSOBONKR12A58A7A7E0\t2\n")
    raw = read_taste_triplets(f)
    assert list(raw.columns) == ["user_id", "track_id", "play_count"] and len(raw) == 4
    assert raw["track_id"].str.startswith("SO").all()  # no mapping: song ids stand in for tracks
    meta = write_track_metadata(tmp_path / "track_metadata.db", [
        ("TRAAA", "SOAKIMP12A8C130995", "AR1", "Artist One", 1999),
        ("TRBBB", "SOAKIMP12A8C130995", "AR1", "Artist One", 1999),  # a song with two MSD tracks
        ("TRCCC", "SOAPDEY12A81C210A9", "AR2", "Artist Two", 0),
    ])
    mapped = read_taste_triplets(f, song_to_track=meta)
    assert sorted(mapped["track_id"].unique()) == ["TRAAA", "TRBBB", "TRCCC"]  # SOBONKR has no track
    assert mapped.query("track_id == 'TRBBB'")["play_count"].sum() == 13
    only = read_taste_triplets(f, song_to_track=meta, track_ids=["TRCCC"])
    assert only["track_id"].tolist() == ["TRCCC"]
    uniq = tmp_path / "unique_tracks.txt"
    uniq.write_text("TRAAA<SEP>SOAKIMP12A8C130995<SEP>Artist One<SEP>Title\n")
    assert read_song_to_track(uniq).values.tolist() == [["SOAKIMP12A8C130995", "TRAAA"]]
    mapping = pd.DataFrame({"song_id": ["SOBONKR12A58A7A7E0"], "track_id": ["TRZZZ"]})
    assert read_taste_triplets(f, song_to_track=mapping)["track_id"].tolist() == ["TRZZZ"]


@pytest.mark.parametrize("body, match", [
    ("u1\tS1\t1\nu1\tS2\t-4\n", "line 2: play count '-4' is negative"),
    ("u1\tS1\t1\nu2\tS1\tNaN\nu1\tS2\tx\n", "line 2: play count is missing"),
    ("u1\tS1\t1\nu2\tS1\tlots\n", "line 2: play count 'lots' is not a number"),
    ("u1\tS1\t1\nu1\tS2\n", "line 2: malformed row, field 'play_count' is empty"),
    ("u1\tS1\t1\nu1\tS2\t1\nu3\tS3\t1\textra\n", r"line 3.*expected 3 fields"),
])
def test_taste_bad_input(tmp_path, body, match):
    f = tmp_path / "train_triplets.txt"
    f.write_text(body)
    with pytest.raises(MtdtlError, match=match) as err:
        read_taste_triplets(f)
    assert "train_triplets.txt" in str(err.value)


# --------------------------------------------------------------------------- musiXmatch
def test_musixmatch(tmp_path):
    f = tmp_path / "mxm_dataset_train.txt"
    f.write_text(MXM)
    df = read_musixmatch(f)
    assert list(df.columns) == ["track_id", "word", "count"]
    got = df.set_index(["track_id", "word"])["count"].to_dict()
    assert got[("TRAAAAV128F421A322", "i")] == 6 and got[("TRAAAAV128F421A322", "love")] == 2
    assert got[("TRAAAEF128F4273421", "the")] == 2  # a repeated index is summed
    assert got[("TRAAAEF128F4273421", "night")] == 7  # 1-based: index 5 is the fifth word
    assert "TRAAAED128E0783FAB" not in set(df["track_id"])  # listed without words
    assert set(read_musixmatch(f, track_ids=["TRAAABD128F429CF47"])["track_id"]) == {"TRAAABD128F429CF47"}
    red = get_source("lyrics").fit(df, train_ids=df["track_id"].unique(), k=2,
                                   track_ids=list(df["track_id"].unique()) + ["TRAAAED128E0783FAB"])
    assert red.missing == ["TRAAAED128E0783FAB"]


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace("3:3", "3:-3"), "line 5: negative word count"),
    (lambda s: s.replace("4:2", "6:2"), "line 4: word index 6 outside 1..5"),
    (lambda s: s.replace("4:2", "0:2"), "line 4: word index 0 outside"),
    (lambda s: s.replace("1:10", "1;10"), "line 5: malformed 'idx:cnt' pair '1;10'"),
    (lambda s: s.replace("1:10", "1:nan"), "line 5: a word count is NaN"),
    (lambda s: s.replace("%i,the,you,love,night\n", ""), "line 3: track data before the '%word"),
    (lambda s: s + "TRAAABD128F429CF47,1,1:1\n", "line 8: track 'TRAAABD128F429CF47' already listed on line 5"),
    (lambda s: s.replace("TRAAABD128F429CF47,6477168,1:10,3:3", ",6477168,1:10"), "line 5: track id missing on line 5"),
])
def test_musixmatch_bad_input(tmp_path, edit, match):
    f = tmp_path / "mxm_dataset_train.txt"
    f.write_text(edit(MXM))
    with pytest.raises(MtdtlError, match=match) as err:
        read_musixmatch(f)
    assert "mxm_dataset_train.txt" in str(err.value)


# --------------------------------------------------------------------------- track_metadata.db
def test_track_metadata_year_and_artist(tmp_path):
    db = write_track_metadata(tmp_path / "track_metadata.db", [
        ("TRA", "SOA", "ARX", "The X", 1985), ("TRB", "SOB", "ARX", "The X", 0), ("TRC", "SOC", "ARY", "", 2004),
        ("TRD", "SOD", "", "", 1970)])
    year = read_msd_year(db)
    assert list(year.columns) == ["track_id", "year"]
    assert year["year"].tolist()[:1] == [1985.0] and np.isnan(year["year"][1])  # 0 = unknown
    red = get_source("year").fit(year, train_ids=["TRA", "TRC", "TRD"], k=2)
    assert red.missing_reasons == {"TRB": "no value"}
    art = read_msd_artist(db)
    assert art.values.tolist() == [["TRA", "ARX"], ["TRB", "ARX"], ["TRC", "ARY"]]  # TRD has no artist id
    assert read_msd_artist(db, by="artist_name")["artist"].tolist() == ["The X", "The X"]
    assert read_msd_year(db, track_ids=["TRC"])["track_id"].tolist() == ["TRC"]
    with pytest.raises(MtdtlError, match="by must be"):
        read_msd_artist(db, by="label")


def test_track_metadata_bad_input(tmp_path):
    db = write_track_metadata(tmp_path / "track_metadata.db", [
        ("TRA", "SOA", "AR1", "a", 1990), ("TRB", "SOB", "AR1", "a", 1991), ("TRA", "SOC", "AR2", "b", 1992)])
    with pytest.raises(MtdtlError, match=r"track_metadata.db: track 'TRA' appears more than once \(rows 1, 3\)"):
        read_msd_year(db)
    db2 = write_track_metadata(tmp_path / "t2.db", [("TRA", "SOA", "AR1", "a", 1990), ("TRB", "SOB", "AR1", "a", None)])
    with pytest.raises(MtdtlError, match="songs row 2: year is NULL"):
        read_msd_year(db2)
    con = sqlite3.connect(tmp_path / "t3.db")
    con.execute("CREATE TABLE songs (track_id TEXT, title TEXT)")
    con.close()
    with pytest.raises(MtdtlError, match=r"lacks columns \['year'\]"):
        read_msd_year(tmp_path / "t3.db")


# --------------------------------------------------------------------------- BPM tables
def test_bpm_tables(tmp_path):
    csv = tmp_path / "bpm.csv"
    csv.write_text("track_id,bpm\nTRA,120.5\nTRB,0\n\nTRC,87\n")
    df = read_bpm_table(csv)
    assert df.values.tolist() == [["TRA", 120.5], ["TRB", 0.0], ["TRC", 87.0]]
    tsv = tmp_path / "tempo.tsv"
    tsv.write_text("TRA\t120.5\nTRB\t99\n")
    assert read_bpm_table(tsv)["bpm"].tolist() == [120.5, 99.0]
    assert read_bpm_table(tsv, track_ids=["TRB"])["track_id"].tolist() == ["TRB"]


@pytest.mark.parametrize("body, match", [
    ("track_id,bpm\nTRA,120\nTRB,-5\n", "line 3: bpm '-5' is negative"),
    ("track_id,bpm\nTRA,120\nTRB,fast\n", "line 3: bpm 'fast' is not a number"),
    ("track_id,bpm\nTRA,120\n\nTRB,nan\n", "line 4: bpm is missing"),
    ("track_id,bpm\nTRA,120\nTRB,90\nTRA,121\n", r"track 'TRA' appears more than once \(lines 2, 4\)"),
    ("track_id,bpm\nTRA,120\nTRB\n", "line 3: malformed row"),
    ("track_id,bpm\nTRA,120\nTRB,90,3\n", r"line 3.*expected 2 fields"),
])
def test_bpm_bad_input(tmp_path, body, match):
    f = tmp_path / "bpm.csv"
    f.write_text(body)
    with pytest.raises(MtdtlError, match=match) as err:
        read_bpm_table(f)
    assert "bpm.csv" in str(err.value)


# --------------------------------------------------------------------------- generic triplets
def test_generic_triplets(tmp_path):
    f = tmp_path / "moods.tsv"
    f.write_text("# my own source\ntrack_id\tmood\tcount\nTRA\tcalm\t2\nTRA\tcalm\t1\n\nTRB\tangry\t4\n")
    df = read_triplets(f, columns=("track_id", "mood", "count"))
    assert df.values.tolist() == [["TRA", "calm", 3.0], ["TRB", "angry", 4.0]]
    cdr = tmp_path / "cdr.csv"
    cdr.write_text("TRA,classical/baroque\nTRA,classical/baroque\nTRB,jazz/bebop\n")
    df = read_triplets(cdr, columns=("track_id", "tag"))
    assert df.values.tolist() == [["TRA", "classical/baroque"], ["TRB", "jazz/bebop"]]
    assert get_source("cdr_tag").fit(df, train_ids=["TRA", "TRB"], k=2).k == 2
    taste = tmp_path / "plays.csv"
    taste.write_text("user_id,track_id,play_count\nu1,TRA,3\nu2,TRB,1\n")
    df = read_triplets(taste, columns=("user_id", "track_id", "play_count"), track_ids=["TRB"])
    assert df.values.tolist() == [["u2", "TRB", 1.0]]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert read_triplets(empty).empty


def test_generic_triplets_bad_input(tmp_path):
    f = tmp_path / "moods.tsv"
    f.write_text("# comment\ntrack_id\tmood\tcount\nTRA\tcalm\t2\n\nTRB\t\t4\n")
    with pytest.raises(MtdtlError, match=r"moods.tsv, line 5: malformed row, field 'mood' is empty"):
        read_triplets(f, columns=("track_id", "mood", "count"))
    f.write_text("TRA\tcalm\t2\nTRB\tcalm\tinf\n")
    with pytest.raises(MtdtlError, match="line 2: count is missing or not finite"):
        read_triplets(f, columns=("track_id", "mood", "count"))
    with pytest.raises(MtdtlError, match="file not found"):
        read_triplets(tmp_path / "nope.csv")
    f.write_bytes(b"TRA,\xff\xfe,1\n")
    with pytest.raises(MtdtlError, match="not UTF-8"):
        read_triplets(f)


# --------------------------------------------------------------------------- hardening
BOM = "\ufeff"


def test_byte_order_mark_is_ignored(tmp_path):
    """A UTF-8 BOM (spreadsheet exports) must not turn the header into a track."""
    cdr = tmp_path / "cdr.csv"
    cdr.write_text(BOM + "track_id,tag\nTRA,classical/baroque\nTRB,jazz/bebop\n", encoding="utf-8")
    assert read_triplets(cdr, columns=("track_id", "tag")).values.tolist() == [
        ["TRA", "classical/baroque"], ["TRB", "jazz/bebop"]]
    no_header = tmp_path / "cdr2.csv"
    no_header.write_text(BOM + "TRA,classical\n", encoding="utf-8")
    assert read_triplets(no_header, columns=("track_id", "tag"))["track_id"].tolist() == ["TRA"]
    bpm = tmp_path / "bpm.tsv"
    bpm.write_text(BOM + "TRA\t120\nTRB\t99\n", encoding="utf-8")
    assert read_bpm_table(bpm)["track_id"].tolist() == ["TRA", "TRB"]
    mxm = tmp_path / "mxm_dataset_train.txt"
    mxm.write_text(BOM + MXM, encoding="utf-8")
    assert read_musixmatch(mxm)["track_id"].nunique() == 3
    uniq = tmp_path / "unique_tracks.txt"
    uniq.write_text(BOM + "TRAAA<SEP>SOAKIMP12A8C130995<SEP>Artist One<SEP>Title\n", encoding="utf-8")
    assert read_song_to_track(uniq).values.tolist() == [["SOAKIMP12A8C130995", "TRAAA"]]


@pytest.mark.parametrize("body, line", [
    ("track_id,tag\nTRA,rock,extra\nTRB,pop\n", 2),      # first data row after the header
    ("TRA,rock,extra\nTRB,pop\n", 1),                    # first row, no header
    ("# note\n\nTRA,rock,extra\nTRB,pop\n", 3),          # after a comment and a blank line
    ("track_id,tag\nTRA,rock\nTRB,pop,extra\n", 3),      # a later row
])
def test_a_row_with_an_extra_field_is_rejected(tmp_path, body, line):
    f = tmp_path / "cdr.csv"
    f.write_text(body)
    with pytest.raises(MtdtlError, match=rf"cdr.csv, line {line}: malformed row, expected 2 fields, saw 3"):
        read_triplets(f, columns=("track_id", "tag"))


@pytest.mark.parametrize("reader, body, line", [
    (lambda f: read_triplets(f), "track_id,tag,count\nTRA,a,1\n,b,2\n", 3),
    (lambda f: read_triplets(f, columns=("user_id", "track_id", "play_count")), "u1,TRA,1\nu2, ,2\n", 2),
    (lambda f: read_bpm_table(f), "track_id,bpm\nTRA,120\n\n,99\n", 4),
    (lambda f: read_musixmatch(f), MXM.replace("TRAAABD128F429CF47,", ","), 5),
    (lambda f: read_song_to_track(f), "TRA<SEP>SOA<SEP>x<SEP>y\n<SEP>SOB<SEP>x<SEP>y\n", 2),
])
def test_a_missing_track_id_says_so_with_its_line(tmp_path, reader, body, line):
    f = tmp_path / "table.txt"
    f.write_text(body)
    with pytest.raises(MtdtlError, match=rf"table.txt, line {line}: track id missing on line {line}"):
        reader(f)


def test_taste_triplets_missing_song_id(tmp_path):
    f = tmp_path / "train_triplets.txt"
    f.write_text("u1\tS1\t1\nu2\t\t3\n")
    with pytest.raises(MtdtlError, match="line 2: song id missing on line 2"):
        read_taste_triplets(f)


def test_sqlite_missing_track_ids(tmp_path):
    db = write_lastfm_db(tmp_path / "lastfm_tags.db", [("TRA", "rock", 1.0), ("TRB", "pop", 2.0)],
                         extra_sql="UPDATE tids SET tid = NULL WHERE rowid = 2;")
    with pytest.raises(MtdtlError, match="lastfm_tags.db, table tids row 2: track id missing"):
        read_lastfm_tags(db)
    meta = write_track_metadata(tmp_path / "track_metadata.db", [("TRA", "SOA", "AR1", "a", 1990),
                                                                 ("", "SOB", "AR1", "a", 1991)])
    with pytest.raises(MtdtlError, match="table songs row 2: track id missing"):
        read_msd_year(meta)
