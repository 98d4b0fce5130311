"""Builders of tiny target-dataset trees in each dataset's own layout (for tests/test_targets.py).

Every audio file is a real, short synthetic clip (a seeded chirp plus noise, 1 s at 8 kHz) written
with soundfile in the format its extension names (``.au``, ``.wav``, ``.mp3``, ``.flac``); the
encoded bytes are made once per format and copied, so a tree of dozens of files takes
milliseconds. Names follow each dataset's real naming scheme.
"""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000
_FORMATS = {".au": "AU", ".wav": "WAV", ".mp3": "MP3", ".flac": "FLAC", ".ogg": "OGG"}


@lru_cache(maxsize=None)
def audio_bytes(ext: str, seconds: float = 1.0, seed: int = 0) -> bytes:
    """Encoded bytes of a short synthetic clip in the format of ``ext``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) + 0.02 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    fmt = _FORMATS[ext.lower()]
    sf.write(buf, y.astype(np.float32), SR, format=fmt, subtype="VORBIS" if fmt == "OGG" else None)
    return buf.getvalue()


def write_audio(path: Path) -> Path:
    """Write a short clip at ``path`` (format from its extension), creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(audio_bytes(path.suffix))
    return path


def write_files(root: Path, relpaths, *, ext: str | None = None) -> list[Path]:
    """Write a clip at ``root / relpath`` for each path (leading ``/`` ignored; ``ext`` replaces
    the extension)."""
    out = []
    for rel in relpaths:
        p = root / str(rel).lstrip("/")
        if ext is not None:
            p = p.with_suffix(ext)
        out.append(write_audio(p))
    return out


def read_info(path: Path) -> list[tuple[int, str, str, str]]:
    """Rows of a real ``.info`` file as tuples (index, path, split, label)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            i, p, s, l = line.split("\t")
            rows.append((int(i), p, s, l))
    return rows


def pick_rows(rows, *, per_split: int = 2, per_label: int | None = None, key=lambda r: r[2]) -> list:
    """The first ``per_split`` rows of each split (or of each label when ``per_label``)."""
    out, seen = [], {}
    for r in rows:
        k = r[3] if per_label else key(r)
        lim = per_label or per_split
        if seen.get(k, 0) < lim:
            out.append(r)
            seen[k] = seen.get(k, 0) + 1
    return out


# --------------------------------------------------------------------------------------- FMA
_FMA_COLUMNS = [
    ("album", "comments"), ("album", "date_created"), ("album", "date_released"), ("album", "engineer"),
    ("album", "favorites"), ("album", "id"), ("album", "information"), ("album", "listens"),
    ("album", "producer"), ("album", "tags"), ("album", "title"), ("album", "tracks"), ("album", "type"),
    ("artist", "active_year_begin"), ("artist", "active_year_end"), ("artist", "associated_labels"),
    ("artist", "bio"), ("artist", "comments"), ("artist", "date_created"), ("artist", "favorites"),
    ("artist", "id"), ("artist", "latitude"), ("artist", "location"), ("artist", "longitude"),
    ("artist", "members"), ("artist", "name"), ("artist", "related_projects"), ("artist", "tags"),
    ("artist", "website"), ("artist", "wikipedia_page"), ("set", "split"), ("set", "subset"),
    ("track", "bit_rate"), ("track", "comments"), ("track", "composer"), ("track", "date_created"),
    ("track", "date_recorded"), ("track", "duration"), ("track", "favorites"), ("track", "genre_top"),
    ("track", "genres"), ("track", "genres_all"), ("track", "information"), ("track", "interest"),
    ("track", "language_code"), ("track", "license"), ("track", "listens"), ("track", "lyricist"),
    ("track", "number"), ("track", "publisher"), ("track", "tags"), ("track", "title"),
]


def write_fma_tracks_csv(path: Path, tracks: list[dict]) -> Path:
    """FMA's ``tracks.csv``: two header rows (section, field), a ``track_id`` row, then tracks.

    Each dict: ``track_id`` (int), ``genre_top`` (str or ''), ``subset``, ``split`` (FMA words),
    ``artist_id`` (int), optionally ``artist_name``, ``title``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([""] + [c[0] for c in _FMA_COLUMNS])
        w.writerow([""] + [c[1] for c in _FMA_COLUMNS])
        w.writerow(["track_id"] + [""] * len(_FMA_COLUMNS))
        for t in tracks:
            vals = {c: "" for c in _FMA_COLUMNS}
            vals.update({
                ("album", "title"): "AWOL - A Way Of Life", ("album", "tags"): "[]", ("album", "type"): "Album",
                ("artist", "bio"): "<p>A Way Of Life, \"quoted\", with commas</p>",
                ("artist", "id"): str(t["artist_id"]), ("artist", "name"): t.get("artist_name", f"Artist {t['artist_id']}"),
                ("artist", "location"): "New Jersey", ("artist", "tags"): "['awol']",
                ("set", "split"): t["split"], ("set", "subset"): t["subset"],
                ("track", "bit_rate"): "256000", ("track", "duration"): "168",
                ("track", "genre_top"): t.get("genre_top", ""), ("track", "genres"): "[21]",
                ("track", "genres_all"): "[21]", ("track", "license"): "Attribution-NonCommercial-ShareAlike 3.0",
                ("track", "tags"): "[]", ("track", "title"): t.get("title", f"Track {t['track_id']}"),
            })
            w.writerow([t["track_id"]] + [vals[c] for c in _FMA_COLUMNS])
    return path


def fma_audio_relpath(track_id: int, folder: str = "fma_medium") -> str:
    sid = f"{int(track_id):06d}"
    return f"{folder}/{sid[:3]}/{sid}.mp3"


# --------------------------------------------------------------------------------------- emoMusic
def write_emo_annotations(root: Path, songs: list[dict], *, songs_info: bool = True) -> None:
    """``annotations/static_annotations.csv`` (header with spaces after commas, as some copies
    have) and ``annotations/songs_info.csv``. Each dict: ``song_id``, ``arousal``, ``valence``,
    optionally ``artist``, ``genre``, ``set`` (development / evaluation)."""
    ann = Path(root) / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    lines = ["song_id, mean_arousal, std_arousal, mean_valence, std_valence"]
    for s in songs:
        lines.append(f"{s['song_id']},{s['arousal']:.4f},0.9,{s['valence']:.4f},1.1")
    (ann / "static_annotations.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if songs_info:
        with open(ann / "songs_info.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["song_id", "file_name", "Artist", "Song title", "start of the segment (min.sec)",
                        "end of the segment (min.sec)", "Genre", "Mediaeval 2013 set"])
            for s in songs:
                w.writerow([s["song_id"], f"{s['song_id']}.mp3", f"\t{s.get('artist', 'Someone')}\t",
                            f"Song {s['song_id']}", "0.1", "0.46", s.get("genre", "Rock"),
                            s.get("set", "development")])


# --------------------------------------------------------------------------------------- Last.fm-1K
def write_lastfm_log(path: Path, plays: list[tuple[str, str, str, str, str]], *, malformed: int = 0,
                     no_mbid: int = 0) -> Path:
    """The listening log: one line per scrobble ``user<TAB>timestamp<TAB>artist mbid<TAB>artist
    <TAB>track mbid<TAB>track name``; ``plays`` holds (user, artist_mbid, artist, track_mbid,
    title) per scrobble. ``malformed`` extra lines with seven fields and ``no_mbid`` scrobbles
    without a track MBID are added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (u, aid, art, tid, title) in enumerate(plays):
        lines.append(f"{u}\t2009-05-04T23:{i % 60:02d}:57Z\t{aid}\t{art}\t{tid}\t{title}")
    for i in range(no_mbid):
        lines.append(f"user_000001\t2009-05-05T10:00:{i:02d}Z\t\tDeep Dish\t\tFuck Me Im Famous (Pacha Ibiza)-09-28-2007")
    for i in range(malformed):
        lines.append(f"user_000002\t2009-05-05T11:00:{i:02d}Z\tx\ty\tz\tw\textra")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_mbid(rng: np.random.Generator) -> str:
    h = "".join(rng.choice(list("0123456789abcdef"), 32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------- demo corpus
def write_demo_corpus(root: Path) -> Path:
    """A minimal demo-corpus folder in the documented layout (manifest, audio, targets)."""
    root = Path(root)
    ids = [f"t{i:03d}" for i in range(12)]
    rows = []
    for i, tid in enumerate(ids):
        write_audio(root / "audio" / f"{tid}.flac")
        rows.append({"track_id": tid, "part": "target", "split": ["train", "valid", "test"][i % 3],
                     "path": f"audio/{tid}.flac", "work_id": f"w{i // 2}"})
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tdir = root / "targets"
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "tasks.json").write_text(json.dumps({
        "collection": {"type": "classification", "description": "which collection"},
        "tempo": {"type": "regression", "description": "rendering bpm"},
        "listeners": {"type": "recommendation", "description": "simulated listeners"},
    }))
    with open(tdir / "collection.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "label", "split"])
        for r in rows:
            w.writerow([r["track_id"], "bach" if int(r["track_id"][1:]) % 2 else "essen", r["split"]])
    with open(tdir / "tempo.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "label", "split"])
        for i, r in enumerate(rows):
            w.writerow([r["track_id"], 80 + 5 * i, r["split"]])
    with open(tdir / "listeners.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "track_id", "play_count", "split"])
        for u in range(4):
            for i, r in enumerate(rows):
                if (i + u) % 3:
                    w.writerow([f"u{u}", r["track_id"], 1 + (i * u) % 5, r["split"]])
    return root


# --------------------------------------------------------------------------------------- the study's lists
def study_rows(target: str) -> list[tuple[int, str, str, str]]:
    """Rows (index, path, split, label) of the study's list of ``target`` shipped with mtdtl
    (``mtdtl/data/splits``), as the study wrote them: paths in the study's layout."""
    from mtdtl.targets.splits import study_split_list

    df = study_split_list(target).rows
    return list(zip(df["index"].tolist(), df["path"], df["split"], df["label"]))


def study_item_rows() -> list[tuple[str, int]]:
    """The study's Last.fm-1K items (MBID, index) shipped with mtdtl, by index."""
    from mtdtl.targets.splits import study_items

    df = study_items()
    return list(zip(df["track_id"], df["index"].tolist()))
