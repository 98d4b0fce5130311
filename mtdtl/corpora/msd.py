"""A learning corpus from your local Million Song Dataset files (the paper's setting).

:func:`build_msd_corpus` takes a folder of 30 s MSD previews (any audio format; the MSD track
id in the file name, e.g. ``TRAAAAW128F429D538.mp3``, anywhere under the folder) and whatever
MSD label files you have, and writes a corpus folder with the contract of
:mod:`mtdtl.corpora.base`: every previewed track is a learning clip (train / valid), and each
label file becomes the raw table of its learning source, read by
:mod:`mtdtl.sources.readers` and limited to the previewed tracks:

=================  ========================================  =========  ========================
argument           file                                      source     reader
=================  ========================================  =========  ========================
``tag_db``         Last.fm ``lastfm_tags.db``                 tag        read_lastfm_tags
``taste_triplets`` Taste Profile ``train_triplets.txt``       taste      read_taste_triplets
``song_to_track``  ``unique_tracks.txt`` (or the metadata db) (taste)    read_song_to_track
``musixmatch``     ``mxm_dataset_train.txt`` (and ``_test``)  lyrics     read_musixmatch
``track_metadata`` ``track_metadata.db``                      year,      read_msd_year,
                                                              artist     read_msd_artist
``bpm_table``      a ``track_id, bpm`` table                  bpm        read_bpm_table
``cdr_tags``       a ``track_id, genre path`` table           cdr_tag    read_triplets
=================  ========================================  =========  ========================

``self`` is always there (every clip). A source whose file is not given is absent (no
``labels/<source>.csv``); preprocessing reduces the sources a corpus has. There are no target
tasks: evaluate on the target datasets of :mod:`mtdtl.targets`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.corpora.assemble import (check_common_args, check_file, ingest_audio, inputs_fingerprint,
                                    parse_split, scan_audio, skipped_rows, up_to_date, write_corpus)
from mtdtl.corpora.base import check_out_dir, learning_split
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["build_msd_corpus", "TRACK_ID", "msd_track_id"]

log = get_logger(__name__)

#: An MSD track id in a file name: ``TR`` and 16 upper-case letters or digits.
TRACK_ID = re.compile(r"(?<![A-Z0-9])TR[A-Z0-9]{16}(?![A-Z0-9])")
ARTIST_KEYS = ("artist_id", "artist_mbid", "artist_name")


def msd_track_id(path: str | os.PathLike) -> str | None:
    """The MSD track id in a file's name (``None`` when there is none)."""
    m = TRACK_ID.search(Path(path).name)
    return m.group(0) if m else None


def build_msd_corpus(*, audio_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                     tag_db: str | os.PathLike | None = None,
                     taste_triplets: str | os.PathLike | None = None,
                     song_to_track: str | os.PathLike | None = None,
                     musixmatch: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                     track_metadata: str | os.PathLike | None = None,
                     bpm_table: str | os.PathLike | None = None,
                     cdr_tags: str | os.PathLike | None = None,
                     artist_by: str = "artist_id", split=None, seed: int = 0,
                     audio: str = "reference", workers: int | None = None,
                     progress: bool = True) -> Path:
    """Build (or finish, or refresh) a learning corpus from local MSD files.

    Parameters
    ----------
    audio_dir : path
        Folder of 30 s previews, searched recursively; a file belongs to the track whose id
        its name holds (``TRAAAAW128F429D538.mp3``, ``7digital/TRAAAAW128F429D538.clip.mp3``).
        Files without a track id are ignored (counted in ``build_report.json``); when a track
        has several files, the first in path order is used.
    out : path, optional
        The corpus folder (new, or one this function built); default
        ``mtdtl.paths.corpora_dir() / "msd"``.
    tag_db, taste_triplets, song_to_track, musixmatch, track_metadata, bpm_table, cdr_tags : path, optional
        The label files you have (table in the module docstring). ``musixmatch`` may be a list
        (train and test files). ``taste_triplets`` names songs: it needs ``song_to_track``
        (``unique_tracks.txt``) or ``track_metadata``.
    artist_by : {"artist_id", "artist_mbid", "artist_name"}
        Which ``track_metadata.db`` column names the artist (``artist`` source).
    split : None, float, path or mapping
        ``None``: 10 % of the tracks ``valid``, drawn from ``seed`` (tracks of one MSD song,
        known from ``track_metadata`` or ``song_to_track``, stay together); a float: that
        ``valid`` fraction; a ``track_id, split`` table or ``{track_id: split}`` (``train`` /
        ``valid``): that split, and tracks it does not list are left out.
    seed : int
        Seed of the split.
    audio : {"reference", "convert"}
        Use the previews in place (default) or convert them to 22,050 Hz stereo FLAC in
        ``<out>/audio`` (:mod:`mtdtl.corpora.assemble`).
    workers : int, optional
        Threads reading the audio (default: all cores).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The corpus folder (:meth:`mtdtl.corpora.Corpus.open`).

    Raises
    ------
    MtdtlError
        A bad argument or a missing file (checked before any work starts), an output folder
        that holds something else, no audio file with a track id, no readable preview, or a
        label file in a bad format (the reader names the file and the line).

    Notes
    -----
    Deterministic (same files and seed, same corpus), resumable (each preview's record is
    written as it is done; an interrupted build continues) and idempotent: a rerun with the
    same inputs returns at once without writing anything; changed inputs rewrite only the
    tables that change.
    """
    from mtdtl.paths import corpora_dir
    from mtdtl.sources import readers as R

    t0 = time.perf_counter()
    audio_dir = check_common_args(audio_dir=audio_dir, out=out, seed=seed, audio=audio,
                                  workers=workers, progress=progress)
    if artist_by not in ARTIST_KEYS:
        raise MtdtlError(f"artist_by must be one of {', '.join(ARTIST_KEYS)}, got {artist_by!r}")
    files = {
        "tag_db": tag_db and check_file(tag_db, "tag_db"),
        "taste_triplets": taste_triplets and check_file(taste_triplets, "taste_triplets"),
        "song_to_track": song_to_track and check_file(song_to_track, "song_to_track"),
        "track_metadata": track_metadata and check_file(track_metadata, "track_metadata"),
        "bpm_table": bpm_table and check_file(bpm_table, "bpm_table"),
        "cdr_tags": cdr_tags and check_file(cdr_tags, "cdr_tags"),
    }
    files = {k: (v or None) for k, v in files.items()}
    mxm = [] if musixmatch is None else \
        [musixmatch] if isinstance(musixmatch, (str, os.PathLike)) else list(musixmatch)
    mxm = [check_file(p, "musixmatch") for p in mxm]
    if files["taste_triplets"] and not (files["song_to_track"] or files["track_metadata"]):
        raise MtdtlError("taste_triplets names songs (SO...), the previews tracks (TR...): also pass "
                         "song_to_track= (the MSD unique_tracks.txt) or track_metadata= "
                         "(track_metadata.db)")
    valid_fraction, fixed, split_file = parse_split(split)
    seed = int(seed)
    root = Path(out).expanduser().resolve() if out is not None else corpora_dir() / "msd"
    if root == audio_dir:
        raise MtdtlError(f"out ({root}) is the audio folder; pick another output folder")
    check_out_dir(root, kind="msd")

    # --- which previews -------------------------------------------------------------------
    found = scan_audio(audio_dir, exclude=root)
    by_track: dict[str, Path] = {}
    unmatched: list[str] = []
    duplicates: dict[str, list[str]] = {}
    for p in found:
        tid = msd_track_id(p)
        if tid is None:
            unmatched.append(str(p))
        elif tid in by_track:
            duplicates.setdefault(tid, [str(by_track[tid])]).append(str(p))
        else:
            by_track[tid] = p
    if not by_track:
        example = f"; found {len(found)} audio files, e.g. {found[0].name}" if found else \
            " (no audio file at all)"
        raise MtdtlError(f"no audio file under {audio_dir} has an MSD track id in its name (like "
                         f"TRAAAAW128F429D538.mp3){example}; rename the previews after their track "
                         "ids or point audio_dir at the previews folder")
    if fixed is not None:
        left_out = sorted(set(by_track) - set(fixed.index))
        if left_out:
            log.warning("%d previewed tracks are not in the split table and are left out, e.g. %s",
                        len(left_out), left_out[0])
        by_track = {t: p for t, p in by_track.items() if t in fixed.index}
        if not by_track:
            raise MtdtlError("no previewed track is in the split table; check its track ids")
    else:
        left_out = []

    params = {"kind": "msd", "seed": seed, "audio": audio, "artist_by": artist_by,
              "valid_fraction": valid_fraction, "audio_dir": str(audio_dir),
              "split": None if fixed is None else sorted(fixed.items())}
    fingerprint = inputs_fingerprint(params=params, files={**files, "musixmatch": mxm},
                                     audio_files=found)
    if up_to_date(root, fingerprint):
        log.info("MSD corpus %s is up to date", root)
        return root

    # --- audio ----------------------------------------------------------------------------
    records, n_done = ingest_audio(by_track, root, mode=audio, workers=workers, progress=progress,
                                   desc="MSD previews")
    ok = [r for r in records if r["status"] == "ok"]
    if not ok:
        raise MtdtlError(f"none of the {len(records)} previews could be read (see "
                         f"{root / 'clips'} for the errors, e.g. {records[0].get('error')})")
    ids = [r["track_id"] for r in ok]

    # --- labels ---------------------------------------------------------------------------
    labels: dict[str, pd.DataFrame] = {"self": pd.DataFrame({"track_id": sorted(ids)})}
    song_of = None
    mapping_src = files["song_to_track"] or files["track_metadata"]
    if mapping_src is not None:
        m = R.read_song_to_track(mapping_src)
        song_of = m[m["track_id"].isin(set(ids))].drop_duplicates("track_id").set_index("track_id")["song_id"]
    if files["tag_db"]:
        labels["tag"] = R.read_lastfm_tags(files["tag_db"], track_ids=ids)
    if files["taste_triplets"]:
        labels["taste"] = R.read_taste_triplets(files["taste_triplets"], song_to_track=mapping_src,
                                                track_ids=ids)
    if mxm:
        parts = [R.read_musixmatch(p, track_ids=ids) for p in mxm]
        lyr = pd.concat(parts, ignore_index=True)
        labels["lyrics"] = lyr.groupby(["track_id", "word"], as_index=False, sort=False)["count"].sum() \
            if len(parts) > 1 else lyr
    if files["track_metadata"]:
        labels["year"] = R.read_msd_year(files["track_metadata"], track_ids=ids)
        labels["artist"] = R.read_msd_artist(files["track_metadata"], by=artist_by, track_ids=ids)
    if files["bpm_table"]:
        labels["bpm"] = R.read_bpm_table(files["bpm_table"], track_ids=ids)
    if files["cdr_tags"]:
        labels["cdr_tag"] = R.read_triplets(files["cdr_tags"], columns=("track_id", "tag"), track_ids=ids)
    empty = sorted(s for s, df in labels.items() if df.empty)
    for s in empty:
        log.warning("source %s: its file has no rows for the %d previewed tracks; the corpus "
                    "leaves it out", s, len(ids))
        del labels[s]
    labels = {s: df.sort_values(list(df.columns[:2]), kind="stable").reset_index(drop=True)
              for s, df in labels.items()}

    # --- split and manifest ---------------------------------------------------------------
    man = pd.DataFrame({
        "track_id": ids, "part": "learning", "split": "train",
        "path": [r["path"] for r in ok], "duration": [r["duration"] for r in ok],
        "sample_rate": [r["sample_rate"] for r in ok], "channels": [r["channels"] for r in ok],
    })
    man["work_id"] = man["track_id"].map(song_of).fillna(man["track_id"]) if song_of is not None \
        else man["track_id"]
    man["collection"] = "msd"
    if fixed is not None:
        man["split"] = man["track_id"].map(fixed)
    else:
        man["split"] = learning_split(man["work_id"], seed=seed, valid_fraction=valid_fraction).to_numpy()
    man = man.sort_values("track_id", kind="stable").reset_index(drop=True)
    clips = pd.DataFrame([{"track_id": r["track_id"], "source": r["source"],
                           "source_sha256": r["source_sha256"], "audio_sha256": r["audio_sha256"]}
                          for r in ok]).sort_values("track_id", kind="stable")
    skipped = skipped_rows(records)
    report = {
        "n_clips": len(man), "n_skipped": len(skipped), "skipped": skipped,
        "n_audio_files": len(found), "n_unmatched_files": len(unmatched),
        "unmatched_files_examples": unmatched[:20],
        "duplicate_files": {t: v for t, v in sorted(duplicates.items())},
        "not_in_split_table": len(left_out),
        "sources": {s: {"rows": len(df), "tracks": int(df["track_id"].nunique())}
                    for s, df in labels.items()},
        "sources_without_rows": empty,
    }
    counts = {f"learning/{s}": int(n) for s, n in man.groupby("split").size().items()}
    info = {
        "name": root.name, "kind": "msd", "seed": seed, "inputs_sha1": fingerprint,
        "parameters": {"audio": audio, "audio_dir": str(audio_dir), "artist_by": artist_by,
                       "valid_fraction": valid_fraction,
                       "split_file": str(split_file) if split_file else None,
                       "files": {k: (str(v) if v else None) for k, v in files.items()},
                       "musixmatch": [str(p) for p in mxm]},
        "counts": counts, "sources": [s for s in SOURCE_NAMES if s in labels],
    }
    write_corpus(root, manifest=man, clips=clips, labels=labels, tasks={}, targets={},
                 report=report, info=info)
    log.info("MSD corpus %s: %d clips (%d read now, %d skipped), sources %s, in %.1f s", root,
             len(man), n_done, len(skipped), ", ".join(labels), time.perf_counter() - t0)
    return root
