"""Split lists: the ``reference/*.info`` format, the Last.fm-1K item list, and :class:`SplitList`.

The lowest layer of :mod:`mtdtl.targets`: reading the files that fix which track is in which
split. The study's own lists, shipped with mtdtl, are in :mod:`mtdtl.targets.splits`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError

__all__ = ["STUDY", "SplitList", "read_split_list", "read_items_hash"]

#: ``split_list="study"``: the study's list shipped with mtdtl (the loaders' default).
STUDY = "study"

_SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                  "val": "valid", "test": "test", "": ""}


@dataclass(frozen=True, eq=False)
class SplitList:
    """A split list, read: its name, where it came from, and its rows.

    Parameters
    ----------
    name : str
        Short name, used in ``TargetDataset.split_name`` (``"gtzan-filtered"``, or the file stem
        of a user's list).
    source : str
        Where it came from, for messages (a path, or the shipped study list).
    rows : pandas.DataFrame
        ``index, path, split, label, line`` as :func:`read_split_list` returns.
    description : str
        In words, for ``TargetDataset.split_method`` (``"split list GTZAN_filtered_dataset.info"``).
    """

    name: str
    source: str
    rows: pd.DataFrame
    description: str = ""

    def __str__(self) -> str:
        return self.source


def read_split_list(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split list in the format of ``reference/*.info``.

    Parameters
    ----------
    path : path-like
        Text file, one track per line: ``index<TAB>path<TAB>split<TAB>label``. Blank lines are
        ignored; ``split`` is ``train``, ``valid``, ``test`` (``training``, ``validation`` and
        ``val`` are accepted) or empty.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (int), ``path``, ``split``, ``label`` (str, as written) and ``line``
        (1-based line number), in file order.

    Raises
    ------
    MtdtlError
        Missing file, a line without exactly four tab-separated fields, a non-integer index, an
        unknown split or a path listed twice; the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"split list {path} not found; pass the path of a file in the format "
                         "index<TAB>path<TAB>split<TAB>label (like reference/*.info)")
    rows = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            where = f"split list {path}, line {lineno}"
            if len(fields) != 4:
                raise MtdtlError(f"{where}: expected 4 tab-separated fields (index, path, split, label), "
                                 f"found {len(fields)}: {line[:120]!r}")
            idx, rel, split, label = (f.strip() for f in fields)
            try:
                idx = int(idx)
            except ValueError:
                raise MtdtlError(f"{where}: index {idx!r} is not an integer") from None
            if not rel:
                raise MtdtlError(f"{where}: empty path")
            if split.lower() not in _SPLIT_ALIASES:
                raise MtdtlError(f"{where}: unknown split {split!r}; use train, valid, test or leave it empty")
            if rel in seen:
                raise MtdtlError(f"{where}: path {rel!r} is listed twice (first on line {seen[rel]})")
            seen[rel] = lineno
            rows.append((idx, rel, _SPLIT_ALIASES[split.lower()], label, lineno))
    if not rows:
        raise MtdtlError(f"split list {path} holds no rows")
    df = pd.DataFrame(rows, columns=["index", "path", "split", "label", "line"])
    return df.astype({"index": "int64", "line": "int64"})


def read_items_hash(path: str | os.PathLike) -> pd.DataFrame:
    """Read an item list in the format of ``reference/lastfm1k_items.hash`` (``mbid,index``).

    Returns
    -------
    pandas.DataFrame
        ``track_id`` (MBID, str) and ``index`` (int), in file order.

    Raises
    ------
    MtdtlError
        A line that is not ``mbid,index`` with an integer index, or a repeated MBID or index;
        the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"lastfm1k: item list {path} not found")
    rows = []
    seen_m: dict[str, int] = {}
    seen_i: dict[int, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or not parts[0]:
                raise MtdtlError(f"lastfm1k: item list {path}, line {lineno}: expected 'mbid,index', got {line[:80]!r}")
            try:
                idx = int(parts[1])
            except ValueError:
                raise MtdtlError(f"lastfm1k: item list {path}, line {lineno}: index {parts[1]!r} "
                                 "is not an integer") from None
            if parts[0] in seen_m or idx in seen_i:
                first = seen_m.get(parts[0], seen_i.get(idx))
                raise MtdtlError(f"lastfm1k: item list {path}, line {lineno}: repeats line {first}")
            seen_m[parts[0]] = seen_i[idx] = lineno
            rows.append((parts[0], idx))
    return pd.DataFrame(rows, columns=["track_id", "index"]).astype({"index": "int64"})
