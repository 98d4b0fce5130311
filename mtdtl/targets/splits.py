"""The study's split lists and Last.fm-1K item list, shipped with mtdtl as package data.

Kim et al. (2019) published the splits they evaluated on with their code
(https://github.com/eldrin/MTLMusicRepresentation-PyTorch, ``eval/data/*_filtered_dataset.info``
and the Last.fm-1K item list). mtdtl ships the same facts in a compact form of its own under
``mtdtl/data/splits/`` (see the README there), so that every loader uses the study's split by
default (``split_list="study"``) without the user finding those files:

==================  ======================  =========================================================
target              list name               content
==================  ======================  =========================================================
``gtzan``           ``gtzan-filtered``      fault- and artist-filtered split, 478 / 211 / 311
``fma``             ``fma-medium``          FMA-medium's own artist-filtered split, 19,922 / 2,505 / 2,573
``eballroom``       ``eballroom``           the 3,390 tracks and their styles; no split
``irmas``           ``irmas-song-filtered`` song-filtered split of the training set, 5,698 / 1,007
``emo_arousal``     ``emo-arousal``         song-level arousal (1-9), 619 / 125
``emo_valence``     ``emo-valence``         song-level valence (1-9), 619 / 125
``lastfm1k``        ``lastfm1k-items``      the 27,093 track MBIDs with audio (an item list, no split)
==================  ======================  =========================================================

Files: ``<list name>.csv.gz``, a CSV with the header ``path,split,label`` and one row per line of
the study's ``.info`` file, in its order (row ``i`` is the study's index ``i``); ``path`` and
``label`` exactly as the study wrote them, ``split`` empty where the study had none. The item
list is ``lastfm1k-items.csv.gz`` with the header ``mbid``; row ``i`` is the item of index ``i``.
:func:`build_study_splits` writes them from the study's files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.lists import SplitList, read_items_hash, read_split_list

__all__ = ["STUDY_LISTS", "STUDY_ITEMS", "STUDY_SOURCES", "study_split_list", "study_items",
           "build_study_splits", "study_data_dir"]

log = get_logger(__name__)

#: Target name -> name of the study's list shipped with mtdtl.
STUDY_LISTS = {
    "gtzan": "gtzan-filtered",
    "fma": "fma-medium",
    "eballroom": "eballroom",
    "irmas": "irmas-song-filtered",
    "emo_arousal": "emo-arousal",
    "emo_valence": "emo-valence",
}
#: Name of the Last.fm-1K item list shipped with mtdtl.
STUDY_ITEMS = "lastfm1k-items"
#: List name -> the study's file it was made from (code release, ``eval/data/``).
STUDY_SOURCES = {
    "gtzan-filtered": "GTZAN_filtered_dataset.info",
    "fma-medium": "FMA_filtered_dataset.info",
    "eballroom": "eBallroom_filtered_dataset.info",
    "irmas-song-filtered": "IRMAS_filtered_dataset.info",
    "emo-arousal": "MusicEmoArousal_filtered_dataset.info",
    "emo-valence": "MusicEmoValence_filtered_dataset.info",
    STUDY_ITEMS: "lastfm1k_items.hash",
}


def study_data_dir() -> Path:
    """The folder of the shipped lists (``mtdtl/data/splits``)."""
    return Path(str(resources.files("mtdtl").joinpath("data", "splits")))


def _open_text(name: str) -> str:
    path = study_data_dir() / f"{name}.csv.gz"
    if not path.is_file():
        raise MtdtlError(f"the study's list {name!r} is missing from the installed package ({path}); "
                         "reinstall mtdtl, or pass your own split_list=")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return fh.read()


@lru_cache(maxsize=None)
def _study_rows(name: str) -> pd.DataFrame:
    text = _open_text(name)
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if list(df.columns) != ["path", "split", "label"]:
        raise MtdtlError(f"the study's list {name!r} has columns {list(df.columns)}; expected path, split, label")
    df.insert(0, "index", range(len(df)))
    df["line"] = df["index"] + 1
    return df.astype({"index": "int64", "line": "int64"})


def study_split_list(target: str) -> SplitList | None:
    """The study's split list of a target (``None`` when the study had none, e.g. ``demo:*``).

    Returns
    -------
    SplitList or None
        ``name`` (e.g. ``"gtzan-filtered"``), ``source`` (the shipped file, for messages) and
        ``rows`` (``index, path, split, label, line``, as :func:`~mtdtl.targets.base.read_split_list`).
    """
    name = STUDY_LISTS.get(target)
    if name is None:
        return None
    rows = _study_rows(name).copy()
    return SplitList(name=name, source=f"mtdtl study list {name} (from {STUDY_SOURCES[name]})", rows=rows)


@lru_cache(maxsize=None)
def _study_items() -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(_open_text(STUDY_ITEMS)), dtype=str, keep_default_na=False)
    if list(df.columns) != ["mbid"]:
        raise MtdtlError(f"the study's item list has columns {list(df.columns)}; expected mbid")
    return pd.DataFrame({"track_id": df["mbid"], "index": range(len(df))}).astype({"index": "int64"})


def study_items() -> pd.DataFrame:
    """The study's Last.fm-1K items: ``track_id`` (MBID) and ``index`` (0 .. 27,092)."""
    return _study_items().copy()


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_gz(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    os.replace(tmp, path)


def build_study_splits(reference_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict:
    """Write the shipped lists from the study's files (``*_filtered_dataset.info``, ``lastfm1k_items.hash``).

    Parameters
    ----------
    reference_dir : path-like
        Folder holding the study's files (the code release's ``eval/data/``).
    out_dir : path-like, optional
        Where to write (default: :func:`study_data_dir`).

    Returns
    -------
    dict
        List name -> ``{"source": file, "sha256": of the source, "rows": n, "splits": counts}``.
    """
    reference_dir = Path(reference_dir)
    out = Path(out_dir) if out_dir is not None else study_data_dir()
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for name, source in STUDY_SOURCES.items():
        src = reference_dir / source
        if name == STUDY_ITEMS:
            items = read_items_hash(src).sort_values("index")
            if items["index"].tolist() != list(range(len(items))):
                raise MtdtlError(f"{src}: indices are not 0 .. {len(items) - 1}; cannot store them by row")
            _write_gz(out / f"{name}.csv.gz", "mbid\n" + "".join(f"{m}\n" for m in items["track_id"]))
            report[name] = {"source": source, "sha256": _sha256(src), "rows": len(items), "splits": {}}
            continue
        df = read_split_list(src)
        if df["index"].tolist() != list(range(len(df))):
            raise MtdtlError(f"{src}: indices are not 0 .. {len(df) - 1} in file order; cannot store them by row")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "split", "label"])
        w.writerows(df[["path", "split", "label"]].itertuples(index=False, name=None))
        _write_gz(out / f"{name}.csv.gz", buf.getvalue())
        report[name] = {"source": source, "sha256": _sha256(src), "rows": len(df),
                        "splits": {k: int(v) for k, v in df["split"].value_counts().sort_index().items()}}
    _study_rows.cache_clear()
    _study_items.cache_clear()
    return report
