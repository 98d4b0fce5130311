"""Last.fm Dataset - 1K users (Celma, 2010) as a content-aware, cold-start recommendation target
(``lastfm1k``; Section 4.1: 985 users, 27,093 tracks with audio, nDCG@500).

Layout expected (the distribution's ``lastfm-dataset-1K.tar.gz`` plus your own audio)::

    <root>/lastfm-dataset-1K/userid-timestamp-artid-artname-traid-traname.tsv   (or directly in <root>)
    <root>/items.hash                     optional: your own item list, ``mbid,index`` per line, as
                                          the study's lastfm1k_items.hash (or pass items=); without
                                          it, the study's list shipped with mtdtl is used
    <root>/audio/**/<mbid>.<ext>          one audio file per track (preview), named by the track's
                                          MusicBrainz id, or by its index in items.hash

The listening log has no header and six tab-separated fields: user id, timestamp, artist MBID,
artist name, track MBID, track name. Play count of (user, track) = number of scrobbles of that
track MBID by that user; scrobbles without a track MBID are dropped. Malformed lines (wrong
number of fields) are skipped and counted (``meta["malformed_lines"]``).

Items are the tracks that have an audio file and are in the item list: by default
(``items="study"``) ``<root>/items.hash`` when present, else the study's 27,093 items shipped
with mtdtl (``lastfm1k-items``); ``items=None``: every track MBID with audio.
Filtering (Section 4.1): tracks known to fewer than ``min_users_per_item`` users are dropped
(default 5; 1 when an item list is given, since that list is already the study's filtered set),
then users with fewer than ``min_items_per_user`` tracks (default 5).

Item split (the cold-start hold-out): the study had no fixed one (Table 5: N/A), so by default
the split is not fixed and the paper's repetitions are item folds
(:func:`mtdtl.evaluation.protocol.repetition_plan`, artists kept whole); the ``split`` column
holds one artist-filtered random 80 / 20 draw (artist MBID, or artist name when the MBID is
missing). An item list in ``.info`` format (``split_list``; paths matched on the file stem, an
MBID or an index of the item list) fixes the split. ``tracks`` holds the items (``label`` is
NaN) and ``interactions`` the play counts.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.lists import read_items_hash
from mtdtl.targets.base import (SkippedFile, SplitSpec, TargetDataset, check_files, finalize, find_first,
                                is_mbid, require_dir, scan_audio, tail_key)

__all__ = ["TSV_NAME", "read_items_hash", "read_listening_log", "load_lastfm1k"]

log = get_logger(__name__)

#: File name of the listening log in the distribution.
TSV_NAME = "userid-timestamp-artid-artname-traid-traname.tsv"
_COLUMNS = ["user_id", "timestamp", "artist_id", "artist", "track_id", "title"]


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def read_listening_log(path: str | os.PathLike, *, items: set[str] | None = None, chunksize: int = 1_000_000,
                       progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Play counts from the Last.fm-1K listening log.

    Parameters
    ----------
    path : path-like
        ``userid-timestamp-artid-artname-traid-traname.tsv``.
    items : set of str, optional
        Keep only these track MBIDs.
    chunksize : int
        Lines per chunk (the full log has 19 million lines).

    Returns
    -------
    plays : pandas.DataFrame
        ``user_id``, ``track_id``, ``play_count`` (int64), one row per (user, track).
    info : pandas.DataFrame
        ``track_id``, ``artist_id``, ``artist``, ``title`` (first occurrence of each track).
    malformed : int
        Lines skipped because they did not have six fields.
    """
    path = Path(path)
    n_lines = _count_lines(path)
    # all six columns are parsed (no usecols): only then does the parser flag lines with extra fields
    reader = pd.read_csv(path, sep="\t", header=None, names=_COLUMNS, dtype=str, quoting=csv.QUOTE_NONE,
                         keep_default_na=False, na_values=[""], on_bad_lines="skip", chunksize=chunksize,
                         encoding="utf-8", encoding_errors="replace", engine="c")
    counts, infos = [], []
    parsed = 0
    bar = tqdm(total=n_lines, desc="reading listening log", unit="line",
               disable=not progress or n_lines < 10 * chunksize)
    with bar:
        for chunk in reader:
            parsed += len(chunk)
            bar.update(len(chunk))
            chunk = chunk[chunk["track_id"].notna() & chunk["user_id"].notna()]
            if items is not None:
                chunk = chunk[chunk["track_id"].isin(items)]
            if chunk.empty:
                continue
            counts.append(chunk.groupby(["user_id", "track_id"], sort=False).size())
            infos.append(chunk.drop_duplicates("track_id")[["track_id", "artist_id", "artist", "title"]])
    malformed = max(0, n_lines - parsed)
    if counts:
        plays = (pd.concat(counts).groupby(level=[0, 1]).sum().rename("play_count").reset_index())
        info = pd.concat(infos).drop_duplicates("track_id").reset_index(drop=True)
    else:
        plays = pd.DataFrame({"user_id": pd.Series(dtype=str), "track_id": pd.Series(dtype=str),
                              "play_count": pd.Series(dtype="int64")})
        info = pd.DataFrame(columns=["track_id", "artist_id", "artist", "title"])
    plays["play_count"] = plays["play_count"].astype("int64")
    return plays, info, malformed


def load_lastfm1k(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study",
                  items: str | os.PathLike | None = "study", audio_dir: str | os.PathLike | None = None,
                  listening_log: str | os.PathLike | None = None, min_users_per_item: int | None = None,
                  min_items_per_user: int = 5, seed: int = 0, test_size: float = 0.2, check: str = "header",
                  chunksize: int = 1_000_000, progress: bool = True) -> TargetDataset:
    """Load Last.fm-1K as a cold-start recommendation target.

    Parameters
    ----------
    root : path-like
        Folder holding ``lastfm-dataset-1K/`` (or the TSV), ``audio/`` and optionally ``items.hash``.
    split_list : "study", path-like or None
        Item split in ``.info`` format (paths matched on the file stem: MBID or item index). The
        study had none, so ``"study"`` (default) and None mean no fixed split (folds).
    items : "study", path-like or None
        Item list (``mbid,index``). ``"study"`` (default): ``<root>/items.hash`` when present (your
        own), else the study's list shipped with mtdtl; a path: that list; None: no item list.
    audio_dir, listening_log : path-like, optional
        Override ``<root>/audio`` and the located TSV.
    min_users_per_item, min_items_per_user : int
        Filters (see the module docstring).
    seed, test_size, check, chunksize, progress
        Fallback split, file check, TSV chunk size and progress bars.
    """
    root = require_dir(root, "lastfm1k")
    tsv = Path(listening_log) if listening_log else find_first(
        root, [f"lastfm-dataset-1K/{TSV_NAME}", TSV_NAME], kind="file")
    if tsv is None or not tsv.is_file():
        raise MtdtlError(f"lastfm1k: listening log {TSV_NAME} not found in {root} or {root}/lastfm-dataset-1K; "
                         "pass listening_log=")
    adir = Path(audio_dir) if audio_dir else root / "audio"
    if not adir.is_dir():
        raise MtdtlError(f"lastfm1k: audio folder {adir} not found; put one file per track there, named "
                         "<track MBID>.<ext> (or <index>.<ext> with an item list), or pass audio_dir=")
    if isinstance(items, str) and items == "study":
        items_path = find_first(root, ["items.hash"], kind="file")
        if items_path is not None:
            item_list = read_items_hash(items_path)
            log.info("lastfm1k: item list %s (your own, found in the root)", items_path)
        else:
            from mtdtl.targets.splits import STUDY_ITEMS, study_items

            item_list = study_items()
            items_path = f"study:{STUDY_ITEMS}"
            log.info("lastfm1k: the study's item list %s (%d items, shipped with mtdtl)", STUDY_ITEMS, len(item_list))
    elif items is not None:
        items_path = Path(items)
        item_list = read_items_hash(items_path)
        log.info("lastfm1k: item list %s", items_path)
    else:
        items_path = item_list = None
    if min_users_per_item is None:
        min_users_per_item = 1 if item_list is not None else 5

    mbid_of_index = {} if item_list is None else {str(i): m for m, i in zip(item_list["track_id"], item_list["index"])}
    listed = None if item_list is None else set(item_list["track_id"])

    def resolve(stem: str) -> str | None:
        if listed is not None:
            if stem in listed:
                return stem
            return mbid_of_index.get(stem)
        return stem if is_mbid(stem) else None

    def key_fn(p: str) -> str:
        stem = tail_key(1)(p)
        return resolve(stem) or stem

    skipped: list[SkippedFile] = []
    file_of: dict[str, str] = {}
    for r in scan_audio(adir, relative_to=root):
        stem = os.path.splitext(r.rsplit("/", 1)[-1])[0]
        mbid = resolve(stem)
        if mbid is None:
            why = "not in the item list" if listed is not None else "file name is not a track MBID"
            skipped.append(SkippedFile(r, why))
        elif mbid in file_of:
            skipped.append(SkippedFile(r, f"duplicate: {file_of[mbid]} is used"))
        else:
            file_of[mbid] = r
    if listed is not None and not file_of:
        found = [sk.path for sk in skipped]
        m0, i0 = item_list["track_id"].iloc[0], int(item_list["index"].iloc[0])
        there = (f"the folder holds {found[0]!r} (relative to root, one of {len(found)} audio files)" if found
                 else "no audio file was found there")
        raise MtdtlError(f"lastfm1k: no file matched the item list {items_path}: none of the audio files under "
                         f"{adir} is named by a listed track MBID or item index. For example, the list has "
                         f"{m0} (index {i0}), to be found as {m0}.mp3 or {i0}.mp3; {there}. Name each file "
                         "<track MBID>.<ext> (or <index>.<ext> after your item list), or pass items=None to "
                         "use every file named by a track MBID.")
    if listed is not None:
        adir_rel = os.path.relpath(adir, root).replace(os.sep, "/")
        for m in item_list["track_id"]:
            if m not in file_of:
                skipped.append(SkippedFile(f"{adir_rel}/{m}", "missing file (item without audio)"))
    rels = list(file_of.values())
    ok, bad = check_files(root, rels, mode=check, progress=progress)
    skipped += bad
    usable = {m for (m, r), good in zip(file_of.items(), ok) if good}

    plays, info, malformed = read_listening_log(tsv, items=usable, chunksize=chunksize, progress=progress)
    if malformed:
        log.warning("lastfm1k: %d malformed lines of %s skipped", malformed, tsv)
    n_pairs0 = len(plays)
    users_per_item = plays.groupby("track_id")["user_id"].nunique()
    keep_items = set(users_per_item.index[users_per_item >= min_users_per_item])
    plays = plays[plays["track_id"].isin(keep_items)]
    items_per_user = plays.groupby("user_id")["track_id"].nunique()
    keep_users = set(items_per_user.index[items_per_user >= min_items_per_user])
    plays = plays[plays["user_id"].isin(keep_users)].reset_index(drop=True)
    kept = sorted(set(plays["track_id"]))
    no_plays = sorted(usable - set(users_per_item.index))
    for m in no_plays:
        skipped.append(SkippedFile(file_of[m], "no plays in the listening log"))
    filtered = len(usable) - len(no_plays) - len(kept)
    if filtered:
        log.info("lastfm1k: %d tracks dropped by the filters (>= %d users per track, >= %d tracks per user)",
                 filtered, min_users_per_item, min_items_per_user)

    info = info.set_index("track_id")
    cand = pd.DataFrame({"track_id": kept, "relpath": [file_of[m] for m in kept]})
    art_id = info["artist_id"].reindex(kept).fillna("").to_numpy()
    art = info["artist"].reindex(kept).fillna("").to_numpy()
    cand["group"] = [a if a else (f"name:{n}" if n else "") for a, n in zip(art_id, art)]
    cand["artist"] = art
    cand["title"] = info["title"].reindex(kept).fillna("").to_numpy()
    if item_list is not None:
        cand["index"] = item_list.set_index("track_id")["index"].reindex(kept).to_numpy()
    cand["label"] = np.nan
    ds = finalize(name="lastfm1k", task="recommendation", root=root, candidates=cand, key_fn=key_fn,
                  fallback=SplitSpec(group="group", group_name="artist", test_size=test_size, seed=seed),
                  split_list=split_list, searched=adir,
                  skipped=skipped, interactions=plays[["user_id", "track_id", "play_count"]],
                  meta={"listening_log": str(tsv), "audio_dir": str(adir),
                        "items": str(items_path) if items_path else None, "malformed_lines": int(malformed),
                        "pairs_before_filters": int(n_pairs0), "filtered_items": int(filtered),
                        "min_users_per_item": int(min_users_per_item), "min_items_per_user": int(min_items_per_user)})
    return ds
