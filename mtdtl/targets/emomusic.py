"""MediaEval "1000 songs" / emoMusic (Soleymani et al., 2013): song-level arousal and valence
of 45-second clips, two regression targets (``emo_arousal``, ``emo_valence``).

Layout as distributed (``clips_45sec.tar.gz``, ``annotations.tar.gz``)::

    <root>/clips_45seconds/<song_id>.mp3
    <root>/annotations/static_annotations.csv     song_id, mean_arousal, std_arousal,
                                                  mean_valence, std_valence  (1-9 scale)
    <root>/annotations/songs_info.csv             song_id, file_name, Artist, Song title,
                                                  start/end of the segment, Genre,
                                                  Mediaeval 2013 set (development / evaluation)

``clips_45seconds/`` is also found under ``audio/`` (the study's copy) or ``clips_45sec/``;
``static_annotations.csv`` also directly in ``root``; header cells and values are stripped of
spaces. The label is ``mean_arousal`` or ``mean_valence``. 744 songs are annotated (the
cleaned set); clips without an annotation are reported as skipped.

Split: the study's lists (``MusicEmo{Arousal,Valence}_filtered_dataset.info``, 619 / 125,
matched on the song id; shipped with mtdtl as ``emo-arousal`` / ``emo-valence`` and used by
default) are the dataset's own genre-stratified development / evaluation split, which
``songs_info.csv`` carries as ``Mediaeval 2013 set``; that is used with ``split_list=None``.
Without either, a random 80 / 20 split is drawn, stratified by genre when ``songs_info.csv``
gives genres. When ``static_annotations.csv`` is absent, the split list's labels are used (the
study's values are the same means).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (SkippedFile, SplitSpec, TargetDataset, check_files, finalize, find_first,
                                int_stem_key, require_dir, resolve_split_list, scan_audio)

__all__ = ["DIMENSIONS", "read_static_annotations", "read_songs_info", "load_emomusic"]

log = get_logger(__name__)

#: Emotion dimensions with a song-level annotation.
DIMENSIONS = ("arousal", "valence")
_AUDIO_DIRS = ("clips_45seconds", "audio/clips_45seconds", "clips_45sec/clips_45seconds", "clips_45sec")
_ANNOT = ("annotations/static_annotations.csv", "static_annotations.csv",
          "annotations/annotations/static_annotations.csv")
_INFO = ("annotations/songs_info.csv", "songs_info.csv", "annotations/annotations/songs_info.csv")
_SETS = {"development": "train", "evaluation": "test"}


def _read_csv_stripped(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, skipinitialspace=True, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MtdtlError(f"emomusic: cannot read {path}: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MtdtlError(f"emomusic: {path} lacks the columns {missing} (has {list(df.columns)}); "
                         f"is it the {what}?")
    df = df.apply(lambda col: col.str.strip())
    ids = pd.to_numeric(df["song_id"], errors="coerce")
    if ids.isna().any():
        i = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise MtdtlError(f"emomusic: {path}, line {i + 2}: song_id {df['song_id'].iloc[i]!r} is not a number")
    df["song_id"] = ids.astype("int64")
    return df


def read_static_annotations(path: str | os.PathLike) -> pd.DataFrame:
    """``static_annotations.csv``: ``song_id`` (int) and float ``mean_/std_`` arousal and valence."""
    path = Path(path)
    df = _read_csv_stripped(path, ("song_id", "mean_arousal", "mean_valence"), "static annotations file")
    for c in df.columns[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def read_songs_info(path: str | os.PathLike) -> pd.DataFrame:
    """``songs_info.csv``: ``song_id`` (int), ``artist``, ``title``, ``genre``, ``set`` (train / test / '')."""
    path = Path(path)
    df = _read_csv_stripped(path, ("song_id",), "songs_info file")
    out = pd.DataFrame({"song_id": df["song_id"]})
    out["artist"] = df.get("Artist", pd.Series("", index=df.index)).fillna("")
    out["title"] = df.get("Song title", pd.Series("", index=df.index)).fillna("")
    out["genre"] = df.get("Genre", pd.Series("", index=df.index)).fillna("")
    sets = df.get("Mediaeval 2013 set", pd.Series("", index=df.index)).fillna("").str.lower()
    out["set"] = sets.map(lambda s: _SETS.get(s, ""))
    return out


def load_emomusic(root: str | os.PathLike, *, dimension: str = "arousal",
                  split_list: str | os.PathLike | None = "study", annotations: str | os.PathLike | None = None,
                  songs_info: str | os.PathLike | None = None, seed: int = 0, test_size: float = 0.2,
                  check: str = "header", progress: bool = True) -> TargetDataset:
    """Load emoMusic arousal or valence from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding ``clips_45seconds/`` and ``annotations/``.
    dimension : str
        ``"arousal"`` or ``"valence"``.
    split_list : "study", path-like or None
        ``"study"`` (default): the study's list shipped with mtdtl; a path: a list in
        ``reference/MusicEmo*_filtered_dataset.info`` format (matched on song id); None: no list.
    annotations, songs_info : path-like, optional
        Override the located ``static_annotations.csv`` / ``songs_info.csv``.
    seed, test_size, check, progress
        Fallback split, file check and progress bar.
    """
    if dimension not in DIMENSIONS:
        raise MtdtlError(f"emomusic: unknown dimension {dimension!r}; use one of {DIMENSIONS}")
    name = f"emo_{dimension}"
    root = require_dir(root, name)
    adir = find_first(root, _AUDIO_DIRS)
    if adir is None:
        raise MtdtlError(f"{name}: clips folder not found: looked for {list(_AUDIO_DIRS)} in {root}")
    ann_path = Path(annotations) if annotations else find_first(root, _ANNOT, kind="file")
    split_list = resolve_split_list(split_list, name)
    if ann_path is None and split_list is None:
        raise MtdtlError(f"{name}: static_annotations.csv not found (looked for {list(_ANNOT)} in {root}); "
                         "pass annotations= or a split list whose labels give the values")
    info_path = Path(songs_info) if songs_info else find_first(root, _INFO, kind="file")

    ann = read_static_annotations(ann_path) if ann_path is not None else None
    if ann is None:
        log.warning("%s: no static_annotations.csv; the split list's labels are used", name)
    info = read_songs_info(info_path) if info_path is not None else None

    skipped: list[SkippedFile] = []
    rows = []
    label_of = {} if ann is None else dict(zip(ann["song_id"], ann[f"mean_{dimension}"]))
    seen: set[int] = set()
    for r in scan_audio(adir, relative_to=root):
        stem = os.path.splitext(r.rsplit("/", 1)[-1])[0]
        if not stem.isdigit():
            skipped.append(SkippedFile(r, "not a clip file (<song_id>.mp3)"))
            continue
        sid = int(stem)
        if sid in seen:
            skipped.append(SkippedFile(r, f"duplicate: another file of song {sid} is used"))
            continue
        if ann is not None and sid not in label_of:
            skipped.append(SkippedFile(r, "no static annotation (not one of the annotated songs)"))
            continue
        seen.add(sid)
        rows.append((str(sid), r, label_of.get(sid, np.nan)))
    if ann is not None:
        adir_rel = os.path.relpath(adir, root).replace(os.sep, "/")
        for sid in sorted(set(label_of) - seen):
            skipped.append(SkippedFile(f"{adir_rel}/{sid}.mp3", "missing file"))
    cand = pd.DataFrame(rows, columns=["track_id", "relpath", "label"])
    cand["group"] = ""
    own_method = None
    stratify = None
    if info is not None:
        inf = info.assign(track_id=info["song_id"].astype(str)).drop(columns="song_id").drop_duplicates("track_id")
        cand = cand.merge(inf, on="track_id", how="left")
        cand["group"] = cand["artist"].fillna("").str.lower()
        cand["split"] = cand.pop("set").fillna("")
        cand["genre"] = cand["genre"].fillna("")
        own_method = "dataset (songs_info.csv Mediaeval 2013 set, genre-stratified)"
        if (cand["genre"] != "").any():
            stratify = "genre"
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    return finalize(name=name, task="regression", root=root, candidates=cand, key_fn=int_stem_key,
                    fallback=SplitSpec(stratify=stratify, test_size=test_size, seed=seed), split_list=split_list,
                    skipped=skipped, own_split_method=own_method, searched=adir,
                    meta={"audio_dir": str(adir), "annotations": str(ann_path) if ann_path else None,
                          "songs_info": str(info_path) if info_path else None, "dimension": dimension})
