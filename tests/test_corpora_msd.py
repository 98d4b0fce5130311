"""build_msd_corpus on tiny fake MSD files in their real formats, with tiny generated previews."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_readers import MXM, write_lastfm_db, write_track_metadata

from mtdtl.constants import SOURCE_NAMES, SR
from mtdtl.corpora import Corpus
from mtdtl.corpora.msd import build_msd_corpus, msd_track_id
from mtdtl.errors import MtdtlError

# eight previewed tracks; T[0] and T[1] are one MSD song (duplicates), the others one song each
T = ["TRAAAAV128F421A322", "TRAAABD128F429CF47", "TRAAAED128E0783FAB", "TRAAAEF128F4273421",
     "TRAAAFD128F92F423A", "TRAAAMO128F1481E7F", "TRAAAMQ128F1460CD3", "TRAAAPK128E0786D96"]
SONG = {t: f"SOSONG{min(i, max(i - 1, 0)):012d}" for i, t in enumerate(T)}
NOT_PREVIEWED = "TRBBBBB128F0000000"
BROKEN = "TRAAARJ128F9320760"   # a preview that is not audio


def _tone(seconds: float, sr: int, channels: int, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, axis=1).astype(np.float32)


def write_previews(folder: Path) -> Path:
    """Previews as a user may have them: nested folders, mp3 and wav, extra words in names."""
    mp3 = "MP3" in sf.available_formats()
    for i, t in enumerate(T):
        sub = folder / ("7digital" if i % 2 else "A/B")
        sub.mkdir(parents=True, exist_ok=True)
        y = _tone(0.4, 8000 if i % 3 else 11025, 1 + i % 2, 220 + 40 * i)
        if i == 0 and mp3:
            sf.write(sub / f"{t}.mp3", y, 8000, format="MP3")
        else:
            sf.write(sub / (f"{t}.clip.wav" if i % 2 else f"{t}.wav"), y, 8000 if i % 3 else 11025)
    sf.write(folder / "cover.wav", _tone(0.2, 8000, 1, 440), 8000)          # no track id
    (folder / "zz").mkdir()
    sf.write(folder / "zz" / f"{T[2]}.wav", _tone(0.2, 8000, 1, 440), 8000)  # a second file of T[2]
    (folder / f"{BROKEN}.mp3").write_bytes(b"<html>not found</html>")
    (folder / ".hidden").mkdir()
    sf.write(folder / ".hidden" / f"{NOT_PREVIEWED}.wav", _tone(0.2, 8000, 1, 440), 8000)
    return folder


def write_msd_files(d: Path) -> dict[str, Path]:
    """Every MSD label file the builder reads, in the formats of mtdtl.sources.readers."""
    everyone = T + [NOT_PREVIEWED]
    meta = write_track_metadata(d / "track_metadata.db", [
        (t, SONG.get(t, "SONOTPREVIEWED0000"), f"AR{i % 3}", f"Artist {i % 3}", 0 if i == 3 else 1960 + 5 * i)
        for i, t in enumerate(everyone)])
    tags = write_lastfm_db(d / "lastfm_tags.db", [
        (t, tag, 10.0 * (1 + i % 4)) for i, t in enumerate(everyone)
        for tag in (["rock", "indie"] if i % 2 else ["jazz", "smooth"]) if i != 5])
    trip = d / "train_triplets.txt"
    trip.write_text("".join(f"user{u:02d}\t{SONG[t]}\t{1 + (u + i) % 5}\n"
                            for u in range(6) for i, t in enumerate(T) if (u + i) % 3)
                    + "user99\tSONOTPREVIEWED0000\t4\n")
    uniq = d / "unique_tracks.txt"
    uniq.write_text("".join(f"{t}<SEP>{SONG.get(t, 'SONOTPREVIEWED0000')}<SEP>artist<SEP>title\n" for t in everyone))
    mxm_train = d / "mxm_dataset_train.txt"
    mxm_train.write_text(MXM)   # T[0], T[1], T[3] with words, T[2] listed without
    mxm_test = d / "mxm_dataset_test.txt"
    mxm_test.write_text("# test\n%i,the,you,love,night\n" + f"{T[4]},99,2:3,5:1\n")
    bpm = d / "bpm.csv"   # exported by a spreadsheet: byte-order mark and a header
    bpm.write_text("\ufefftrack_id,bpm\n" + "".join(f"{t},{90 + 7 * i}\n" for i, t in enumerate(T)),
                   encoding="utf-8")
    cdr = d / "cdr.tsv"
    cdr.write_text("".join(f"{t}\t{'jazz/smooth' if i % 2 else 'rock/indie'}\n" for i, t in enumerate(T[:6])))
    return {"tag_db": tags, "taste_triplets": trip, "song_to_track": uniq, "musixmatch": [mxm_train, mxm_test],
            "track_metadata": meta, "bpm_table": bpm, "cdr_tags": cdr}


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    d = tmp_path_factory.mktemp("msd")
    previews = write_previews(d / "previews")
    files = write_msd_files(d)
    out = build_msd_corpus(audio_dir=previews, out=d / "corpus", **files, workers=1, progress=False)
    return {"dir": d, "previews": previews, "files": files, "corpus": out}


def _snapshot(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- the corpus
def test_msd_corpus_follows_the_contract(msd):
    c = Corpus.open(msd["corpus"]).validate()
    m = c.manifest
    assert m["track_id"].tolist() == sorted(T)
    assert (m["part"] == "learning").all() and set(m["split"]) == {"train", "valid"}
    assert set(m["collection"]) == {"msd"}
    # tracks of one MSD song are one work: same split
    work = dict(zip(m["track_id"], m["work_id"]))
    assert work[T[0]] == work[T[1]] == SONG[T[0]]
    split = dict(zip(m["track_id"], m["split"]))
    assert split[T[0]] == split[T[1]]
    for row in m.itertuples():
        assert Path(row.path).is_absolute() and c.audio_path(row.track_id) == Path(row.path)
        assert 0.35 < row.duration < 0.65 and row.channels in (1, 2)   # mp3 frames include padding
    assert c.info["kind"] == "msd" and c.tasks == {}
    report = c.build_report
    assert [s["track_id"] for s in report["skipped"]] == [BROKEN]
    assert report["n_unmatched_files"] == 1 and report["unmatched_files_examples"][0].endswith("cover.wav")
    assert list(report["duplicate_files"]) == [T[2]]
    assert NOT_PREVIEWED not in set(m["track_id"])  # hidden folders are not searched
    assert "msd" in c.summary()


def test_msd_sources_come_from_the_readers(msd):
    c = Corpus.open(msd["corpus"])
    assert c.sources == tuple(SOURCE_NAMES)
    ids = set(T)
    for s in SOURCE_NAMES:
        assert set(c.labels(s)["track_id"]) <= ids, s
    assert c.labels("self")["track_id"].tolist() == sorted(T)
    year = c.labels("year").set_index("track_id")["year"]
    assert np.isnan(year[T[3]]) and year[T[0]] == 1960        # year 0 is unknown
    assert c.labels("artist").set_index("track_id")["artist"][T[4]] == "AR1"
    tags = c.labels("tag")
    assert T[5] not in set(tags["track_id"]) and set(tags["tag"]) == {"rock", "indie", "jazz", "smooth"}
    taste = c.labels("taste")
    assert taste["track_id"].str.startswith("TR").all() and "user99" not in set(taste["user_id"])
    # a song's plays go to each of its tracks
    plays = taste.groupby("track_id")["play_count"].sum()
    assert plays[T[0]] == plays[T[1]]
    lyr = c.labels("lyrics")
    assert set(lyr["track_id"]) == {T[0], T[1], T[3], T[4]}          # train and test files
    assert lyr.set_index(["track_id", "word"])["count"][(T[4], "night")] == 1
    assert c.labels("bpm").set_index("track_id")["bpm"][T[1]] == 97   # BOM header skipped
    assert len(c.labels("bpm")) == len(T)
    assert set(c.labels("cdr_tag")["tag"]) == {"jazz/smooth", "rock/indie"}


def test_msd_rerun_does_nothing_and_a_changed_file_rewrites_only_its_table(msd, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(msd["corpus"], root)
    kw = dict(audio_dir=msd["previews"], out=root, **msd["files"], workers=1, progress=False)
    before = _snapshot(root)
    assert build_msd_corpus(**kw) == root
    assert _snapshot(root) == before
    bpm = tmp_path / "bpm2.csv"
    bpm.write_text("track_id,bpm\n" + "".join(f"{t},{120 + i}\n" for i, t in enumerate(T)))
    build_msd_corpus(**{**kw, "bpm_table": bpm})
    after = _snapshot(root)
    changed = {f for f in after if after[f] != before.get(f)}
    assert changed == {"labels/bpm.csv", "corpus.json"}
    assert Corpus.open(root).labels("bpm")["bpm"].tolist() == [120 + T.index(t) for t in sorted(T)]


def test_msd_build_is_deterministic_and_the_split_is_seeded(msd, tmp_path):
    kw = dict(audio_dir=msd["previews"], **msd["files"], workers=1, progress=False)
    again = build_msd_corpus(out=tmp_path / "again", **kw)
    for f in ["manifest.csv", "clips.csv", *(f"labels/{s}.csv" for s in SOURCE_NAMES)]:
        assert (again / f).read_bytes() == (msd["corpus"] / f).read_bytes(), f
    splits = set()
    for seed in range(1, 5):
        m = Corpus.open(build_msd_corpus(out=tmp_path / f"s{seed}", seed=seed, track_metadata=msd["files"]["track_metadata"],
                                         audio_dir=msd["previews"], workers=1, progress=False)).manifest
        splits.add(tuple(m["split"]))
    assert len(splits) > 1
    fixed = {t: ("valid" if t in T[:3] else "train") for t in T[:6]}
    m = Corpus.open(build_msd_corpus(out=tmp_path / "fixed", split=fixed, audio_dir=msd["previews"],
                                     workers=1, progress=False)).manifest
    assert dict(zip(m["track_id"], m["split"])) == fixed      # tracks the split leaves out are left out


def test_missing_sources_are_absent(msd, tmp_path):
    out = build_msd_corpus(audio_dir=msd["previews"], out=tmp_path / "c", tag_db=msd["files"]["tag_db"],
                           workers=1, progress=False)
    c = Corpus.open(out).validate()
    assert c.sources == ("self", "tag")
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["self.csv", "tag.csv"]
    with pytest.raises(MtdtlError, match=r"no 'year' labels \(it has: self, tag\)"):
        c.labels("year")


@pytest.mark.slow  # imports torch (mtdtl.audio)
def test_convert_mode_and_a_changed_clip_is_converted_again(msd, tmp_path):
    out = build_msd_corpus(audio_dir=msd["previews"], out=tmp_path / "c", audio="convert",
                           track_metadata=msd["files"]["track_metadata"], workers=2, progress=False)
    c = Corpus.open(out).validate()
    for row in c.manifest.itertuples():
        assert row.path == f"audio/{row.track_id}.flac"
        info = sf.info(out / row.path)
        assert info.samplerate == SR and info.channels == 2 and row.sample_rate == SR
    flac = out / "audio" / f"{T[3]}.flac"
    good = flac.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF                 # same size, other bytes
    flac.write_bytes(bytes(data))
    rec = out / "clips" / f"{T[3]}.json"
    other = out / "clips" / f"{T[4]}.json"
    t_other = other.stat().st_mtime_ns
    build_msd_corpus(audio_dir=msd["previews"], out=out, audio="convert",
                     track_metadata=msd["files"]["track_metadata"], workers=1, progress=False)
    assert flac.read_bytes() == good
    assert other.stat().st_mtime_ns == t_other and json.loads(rec.read_text())["status"] == "ok"


def test_an_interrupted_build_resumes(msd, tmp_path, monkeypatch):
    import mtdtl.corpora.assemble as assemble

    real, calls = assemble._ingest_one, []

    def interrupted(args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[0])
        return real(args)

    kw = dict(audio_dir=msd["previews"], out=tmp_path / "c", workers=1, progress=False)
    monkeypatch.setattr(assemble, "_ingest_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_msd_corpus(**kw)
    assert not (tmp_path / "c" / "corpus.json").exists() and len(list((tmp_path / "c" / "clips").iterdir())) == 3
    done = []
    monkeypatch.setattr(assemble, "_ingest_one", lambda a: done.append(a[0]) or real(a))
    build_msd_corpus(**kw)
    assert sorted(done) == sorted(set(T + [BROKEN]) - set(calls))
    assert Corpus.open(tmp_path / "c").manifest["track_id"].tolist() == sorted(T)


# --------------------------------------------------------------------------- errors
def test_no_matching_audio_is_a_clear_error(tmp_path):
    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "my song.wav", _tone(0.1, 8000, 1, 440), 8000)
    with pytest.raises(MtdtlError, match=r"no audio file under .*music has an MSD track id in its name "
                                         r"\(like TRAAAAW128F429D538.mp3\); found 1 audio files, e.g. my song.wav"):
        build_msd_corpus(audio_dir=tmp_path / "music", out=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("kwargs, match", [
    ({"audio_dir": "nowhere"}, "audio folder not found"),
    ({"taste_triplets": "TASTE"}, "also pass song_to_track="),
    ({"tag_db": "missing.db"}, "tag_db: file not found"),
    ({"musixmatch": ["MXM", "missing.txt"]}, "musixmatch: file not found"),
    ({"split": 1.5}, r"valid fraction must be in \[0, 1\)"),
    ({"split": {"TRAAAAV128F421A322": "test"}}, "use 'train' or 'valid'"),
    ({"audio": "copy"}, "audio must be one of"),
    ({"artist_by": "label"}, "artist_by must be one of"),
    ({"seed": -3}, "seed must be a whole number"),
    ({"workers": 0}, "workers must be a whole number"),
])
def test_bad_arguments_fail_before_any_work(msd, tmp_path, kwargs, match):
    real = {"TASTE": msd["files"]["taste_triplets"], "MXM": msd["files"]["musixmatch"][0]}
    kwargs = {k: ([real.get(x, x) for x in v] if isinstance(v, list) else real.get(v, v) if isinstance(v, str) else v)
              for k, v in kwargs.items()}
    kw = {"audio_dir": msd["previews"], "out": tmp_path / "c", "progress": False, **kwargs}
    with pytest.raises(MtdtlError, match=match):
        build_msd_corpus(**kw)
    assert not (tmp_path / "c").exists()


def test_refuses_an_output_folder_of_another_kind(msd, tmp_path):
    demo_like = tmp_path / "demo"
    demo_like.mkdir()
    (demo_like / "corpus.json").write_text(json.dumps({"kind": "demo"}))
    with pytest.raises(MtdtlError, match="holds a corpus of kind 'demo', not 'msd'"):
        build_msd_corpus(audio_dir=msd["previews"], out=demo_like, progress=False)


def test_track_id_in_file_names():
    assert msd_track_id("x/TRAAAAW128F429D538.mp3") == "TRAAAAW128F429D538"
    assert msd_track_id("7digital_TRAAAAW128F429D538.clip.mp3") == "TRAAAAW128F429D538"
    assert msd_track_id("TRAAAAW128F429D5381.mp3") is None      # 17 characters after TR
    assert msd_track_id("traaaaw128f429d538.mp3") is None
    assert msd_track_id(os.fspath(Path("a") / "b.wav")) is None


@pytest.mark.slow
def test_preprocessing_runs_on_an_msd_corpus(msd, tmp_path):
    """Notebook 01's call, unchanged: every source the corpus has is reduced."""
    from mtdtl.preprocess import preprocess_corpus
    from mtdtl.sources import load_reduced

    store = preprocess_corpus(msd["corpus"], tmp_path / "store", k=2, seed=0, workers=1, progress=False)
    reduced = load_reduced(store)
    assert list(reduced) == list(SOURCE_NAMES)
    assert set(reduced["self"].track_ids) == set(T)
    cov = pd.read_csv(store / "labels" / "coverage.csv")
    assert cov.set_index("source")["present"]["lyrics"] == 4
