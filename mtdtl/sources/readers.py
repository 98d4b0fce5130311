"""Readers for the paper's learning-source files (Section 2.2), in their real formats.

Every reader returns a tidy :class:`pandas.DataFrame` with the columns of the demo corpus' raw
label tables (``<corpus>/labels/<source>.csv``, see ``docs/ARCHITECTURE.md``), so a real dataset
and the demo corpus go through the same :mod:`mtdtl.sources` reduction:

=======================  ==============================================  =====================
reader                   file                                            columns
=======================  ==============================================  =====================
:func:`read_lastfm_tags`  Last.fm ``lastfm_tags.db`` (SQLite)             track_id, tag, count
:func:`read_taste_triplets`  Taste Profile ``train_triplets.txt``         user_id, track_id, play_count
:func:`read_musixmatch`  musiXmatch ``mxm_dataset_train.txt``             track_id, word, count
:func:`read_msd_year`    MSD ``track_metadata.db`` (SQLite)               track_id, year
:func:`read_msd_artist`  MSD ``track_metadata.db`` (SQLite)               track_id, artist
:func:`read_bpm_table`   plain track → BPM table (csv / tsv)             track_id, bpm
:func:`read_triplets`    any CSV/TSV ``track, term[, count]`` table       track_id, <term>, count
=======================  ==============================================  =====================

Conventions
-----------
- Bad input raises :class:`~mtdtl.errors.MtdtlError` naming the file and the line (text files,
  1-based, counting every line) or the table row (SQLite ``rowid``): NaN, non-numeric or
  negative counts, rows with too many or too few fields, missing track ids ("track id missing
  on line N"), duplicated track ids where a track must be unique (year, artist, BPM),
  references to rows that do not exist. Readers never write anything.
- Text files are UTF-8; a byte-order mark (as some spreadsheet programs write) is ignored.
- ``track_ids=`` (any iterable) keeps only those tracks while reading; use it on the full-size
  files, which are large (the Taste Profile has 48 million lines).
- Repeated ``(track, term)`` pairs in count tables are summed.
- Missing values that a format defines (``year = 0`` in ``track_metadata.db``, ``tempo = 0`` in
  the MSD) are kept as NaN / 0; :mod:`mtdtl.sources` records those tracks as missing, with the
  reason.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = [
    "read_lastfm_tags",
    "read_taste_triplets",
    "read_musixmatch",
    "read_msd_year",
    "read_msd_artist",
    "read_bpm_table",
    "read_triplets",
    "read_song_to_track",
]

log = get_logger(__name__)

_CHUNK_ROWS = 1_000_000


# --------------------------------------------------------------------------- helpers
def _existing(path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MtdtlError(f"file not found: {path}")
    return path


def _id_filter(track_ids):
    if track_ids is None:
        return None
    return set(map(str, track_ids))


def _sep_for(path: Path, sep: str | None) -> str:
    if sep is not None:
        return sep
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                return "\t" if "\t" in line else ","
    return ","


def _numeric(values: pd.Series, *, path: Path, lines: np.ndarray, what: str,
             allow_nan: bool = False, allow_negative: bool = False, where: str = "line") -> np.ndarray:
    """Parse a column as float64; raise naming the first bad line (or table row, ``where``)."""
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    raw = values.to_numpy(dtype=object)
    unparsable = np.isnan(num)
    for i in np.flatnonzero(unparsable):  # NaN spelled out parses as NaN; anything else is junk
        if raw[i] is None or str(raw[i]).strip().lower() in ("nan", "", "na", "null", "none"):
            unparsable[i] = False
    problems = [(unparsable, "{what} {raw!r} is not a number")]
    if allow_nan:
        problems.append((np.isinf(num), "{what} is infinite ({raw!r})"))
    else:
        problems.append((~np.isfinite(num) & ~unparsable, "{what} is missing or not finite ({raw!r})"))
    if not allow_negative:
        problems.append((num < 0, "{what} {raw!r} is negative"))
    first = [(int(np.flatnonzero(mask)[0]), msg) for mask, msg in problems if mask.any()]
    if first:
        i, msg = min(first, key=lambda im: im[0])
        shown = raw[i] if isinstance(raw[i], str) or raw[i] is None else float(raw[i])
        raise MtdtlError(f"{path}, {where} {lines[i]}: " + msg.format(what=what, raw=shown))
    return num


_ID_WORDS = {"track_id": "track id", "song_id": "song id", "user_id": "user id"}


def _check_nonempty(df: pd.DataFrame, cols, *, path: Path, lines: np.ndarray) -> None:
    for c in cols:
        empty = (df[c].isna() | (df[c].astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            if c in _ID_WORDS:
                raise MtdtlError(f"{path}, line {lines[i]}: {_ID_WORDS[c]} missing on line {lines[i]}; "
                                 "every row needs one (fix or delete that line)")
            raise MtdtlError(f"{path}, line {lines[i]}: malformed row, field {c!r} is empty")


def _check_unique(ids: pd.Series, *, path: Path, where: np.ndarray, unit: str = "line") -> None:
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        first = ids[dup].iloc[0]
        at = where[(ids == first).to_numpy()]
        raise MtdtlError(
            f"{path}: track {first!r} appears more than once ({unit}s {', '.join(map(str, at[:5]))}); "
            "each track must have exactly one value"
        )


def _read_delimited(path: Path, *, n_cols: int, sep: str, header, header_words=(),
                    numeric_col: int | None = None, comment: str | None = "#"):
    """Yield (DataFrame of str, 1-based line numbers) chunks of a delimited text file.

    Blank lines and, when ``comment`` is set, lines starting with it are skipped (line numbers
    still count them). ``header``: True, False or "infer" (a first data line whose numeric field
    does not parse, or whose first field is a known column name, is a header).
    """
    skip: list[int] = []
    first_data = None
    with open(path, encoding="utf-8-sig", errors="strict") as fh:
        try:
            for i, line in enumerate(fh):
                s = line.strip()
                if not s or (comment and s.startswith(comment)):
                    skip.append(i)
                    continue
                first_data = (i, line.rstrip("\r\n"))
                break
        except UnicodeDecodeError as err:
            raise MtdtlError(f"{path}: not UTF-8 text ({err})") from None
    if first_data is None:
        return
    i0, line0 = first_data
    fields = line0.split(sep)
    if header == "infer":
        is_header = fields[0].strip().lower() in {w.lower() for w in header_words}
        if not is_header and numeric_col is not None and len(fields) > numeric_col:
            try:
                float(fields[numeric_col])
            except ValueError:
                is_header = True
        header = is_header
    if header:
        skip.append(i0)
    # The C parser cannot report original line numbers once it skips lines; we therefore skip
    # only the known leading lines and track blank/comment lines ourselves.
    n_lead = max(skip) + 1 if skip else 0
    # pandas cuts the first row it reads to n_cols fields without a word (later rows raise)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first_read = next(itertools.islice(fh, n_lead, None), "").rstrip("\r\n")
    if len(first_read.split(sep)) > n_cols:
        raise MtdtlError(f"{path}, line {n_lead + 1}: malformed row, expected {n_cols} fields, "
                         f"saw {len(first_read.split(sep))}")
    try:
        reader = pd.read_csv(
            path, sep=sep, header=None, names=list(range(n_cols)), dtype=str, encoding="utf-8-sig",
            keep_default_na=False, na_filter=False, skip_blank_lines=False,
            skiprows=n_lead, engine="c", quoting=3, chunksize=_CHUNK_ROWS, index_col=False,
        )
        start = n_lead
        for chunk in reader:
            lines = np.arange(start + 1, start + 1 + len(chunk))
            start += len(chunk)
            keep = ~(chunk.apply(lambda c: c.str.strip() == "").all(axis=1)).to_numpy()
            if comment:
                keep &= ~chunk[0].str.startswith(comment).to_numpy()
            yield chunk[keep].reset_index(drop=True), lines[keep]
    except UnicodeDecodeError as err:
        raise MtdtlError(f"{path}: not UTF-8 text ({err})") from None
    except pd.errors.ParserError as err:
        # pandas reports the line number in the file (skipped lines included)
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:
            raise MtdtlError(f"{path}, line {m.group(2)}: malformed row, expected {n_cols} fields, saw {m.group(3)}") from None
        raise MtdtlError(f"{path}: malformed rows ({str(err).strip()}); expected {n_cols} fields") from None


def _sum_pairs(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    if df.duplicated(keys).any():
        df = df.groupby(keys, sort=False, as_index=False)[value].sum()
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- generic tables
def read_triplets(path, *, columns=("track_id", "tag", "count"), sep: str | None = None,
                  header="infer", track_ids=None, unique: bool = False) -> pd.DataFrame:
    """Read any ``track, term[, count]`` (or ``track, value``) CSV/TSV table.

    Parameters
    ----------
    path : path to a text file (comma or tab separated; ``sep=None`` detects it)
    columns : the output column names, in file order. Two names ``(id, term)`` read a
        membership table (e.g. ``("track_id", "tag")`` for CDR genre tags); three names read a
        count table whose last column must be a finite count >= 0. The column named
        ``track_id`` is the track (it may be second, as in ``user_id, track_id, play_count``).
    header : True, False or "infer" (a header line is detected and skipped)
    track_ids : iterable of str, optional; keep only these tracks
    unique : bool; every track may appear only once (value tables such as BPM)

    Returns
    -------
    pandas.DataFrame with ``columns``; repeated ``(id, term)`` pairs of count tables are summed.
    """
    path = _existing(path)
    columns = list(columns)
    if len(columns) not in (2, 3):
        raise MtdtlError(f"read_triplets reads 2 or 3 columns, got {columns}")
    sep = _sep_for(path, sep)
    keep_ids = _id_filter(track_ids)
    tid_col = "track_id" if "track_id" in columns else columns[0]
    count_col = columns[2] if len(columns) == 3 else None
    parts, line_parts = [], []
    for chunk, lines in _read_delimited(
        path, n_cols=len(columns), sep=sep, header=header,
        header_words=columns + ["track", "tid", "song_id", "user", "user_id"],
        numeric_col=2 if count_col else None,
    ):
        chunk.columns = columns
        _check_nonempty(chunk, columns, path=path, lines=lines)
        for c in columns[:2]:
            chunk[c] = chunk[c].str.strip()
        if count_col:
            chunk[count_col] = _numeric(chunk[count_col], path=path, lines=lines, what=count_col)
        if keep_ids is not None:
            m = chunk[tid_col].isin(keep_ids).to_numpy()
            chunk, lines = chunk[m], lines[m]
        parts.append(chunk)
        line_parts.append(lines)
    if not parts:
        log.warning("%s holds no rows", path)
        return pd.DataFrame({c: pd.Series(dtype=float if c == count_col else str) for c in columns})
    df = pd.concat(parts, ignore_index=True)
    lines = np.concatenate(line_parts)
    if unique:
        _check_unique(df[tid_col], path=path, where=lines)
    if count_col:
        df = _sum_pairs(df, columns[:2], count_col)
    else:
        df = df.drop_duplicates(columns).reset_index(drop=True)
    return df


def read_bpm_table(path, *, sep: str | None = None, header="infer", track_ids=None) -> pd.DataFrame:
    """Read a plain ``track_id, bpm`` table (csv or tsv, optional header).

    Each track must appear once; BPM must be a finite number >= 0 (0 means unknown, as in the
    MSD, and becomes a missing track with a reason in the ``bpm`` source).

    Returns
    -------
    pandas.DataFrame with columns ``track_id`` (str), ``bpm`` (float64)
    """
    path = _existing(path)
    sep = _sep_for(path, sep)
    keep_ids = _id_filter(track_ids)
    parts, line_parts = [], []
    for chunk, lines in _read_delimited(path, n_cols=2, sep=sep, header=header,
                                        header_words=["track_id", "track", "tid"], numeric_col=1):
        chunk.columns = ["track_id", "bpm"]
        _check_nonempty(chunk, ["track_id", "bpm"], path=path, lines=lines)
        chunk["track_id"] = chunk["track_id"].str.strip()
        chunk["bpm"] = _numeric(chunk["bpm"], path=path, lines=lines, what="bpm")
        if keep_ids is not None:
            m = chunk["track_id"].isin(keep_ids).to_numpy()
            chunk, lines = chunk[m], lines[m]
        parts.append(chunk)
        line_parts.append(lines)
    if not parts:
        return pd.DataFrame({"track_id": pd.Series(dtype=str), "bpm": pd.Series(dtype=float)})
    df = pd.concat(parts, ignore_index=True)
    _check_unique(df["track_id"], path=path, where=np.concatenate(line_parts))
    return df


# --------------------------------------------------------------------------- Taste Profile
def read_song_to_track(source) -> pd.DataFrame:
    """A ``song_id → track_id`` mapping table for the Taste Profile.

    ``source`` is a DataFrame with ``song_id`` and ``track_id`` columns, the MSD
    ``track_metadata.db`` (SQLite table ``songs``), or the MSD ``unique_tracks.txt``
    (``track<SEP>song<SEP>artist<SEP>title``). One song can have several tracks (MSD duplicates).
    """
    if isinstance(source, pd.DataFrame):
        missing = {"song_id", "track_id"} - set(source.columns)
        if missing:
            raise MtdtlError(f"song → track mapping lacks columns {sorted(missing)}")
        return source[["song_id", "track_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    path = _existing(source)
    if _is_sqlite(path):
        with _sqlite(path) as con:
            _require_table(con, path, "songs", ["track_id", "song_id"])
            df = pd.read_sql_query("SELECT song_id, track_id FROM songs", con)
        return df.astype(str).drop_duplicates().reset_index(drop=True)
    rows = []
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            f = line.rstrip("\r\n").split("<SEP>")
            if len(f) < 2:
                raise MtdtlError(f"{path}, line {ln}: expected 'track<SEP>song<SEP>...', got {line[:60]!r}")
            if not f[0].strip():
                raise MtdtlError(f"{path}, line {ln}: track id missing on line {ln}")
            if not f[1].strip():
                raise MtdtlError(f"{path}, line {ln}: song id missing on line {ln}")
            rows.append((f[1].strip(), f[0].strip()))
    return pd.DataFrame(rows, columns=["song_id", "track_id"]).drop_duplicates().reset_index(drop=True)


def read_taste_triplets(path, *, song_to_track=None, track_ids=None) -> pd.DataFrame:
    """Read the Echo Nest Taste Profile ``train_triplets.txt`` (``user<TAB>song<TAB>count``).

    Parameters
    ----------
    path : the triplet file (no header; counts are positive integers)
    song_to_track : None, DataFrame, or path (see :func:`read_song_to_track`)
        The file names songs (``SO...``), the rest of mtdtl names tracks (``TR...``). With a
        mapping, every triplet is given to each track of its song (songs with several MSD
        tracks get the same play counts) and songs without a track are dropped (counted in
        the log). Without one, song ids are used as track ids.
    track_ids : iterable of str, optional; keep only these tracks (after mapping)

    Returns
    -------
    pandas.DataFrame with columns ``user_id``, ``track_id``, ``play_count`` (float64)
    """
    path = _existing(path)
    mapping = None if song_to_track is None else read_song_to_track(song_to_track)
    keep_ids = _id_filter(track_ids)
    if mapping is not None and keep_ids is not None:
        mapping = mapping[mapping["track_id"].isin(keep_ids)]
    keep_songs = None if mapping is None else set(mapping["song_id"])
    parts = []
    n_unmapped = 0
    for chunk, lines in _read_delimited(path, n_cols=3, sep="\t", header=False, comment=None):
        chunk.columns = ["user_id", "song_id", "play_count"]
        _check_nonempty(chunk, ["user_id", "song_id", "play_count"], path=path, lines=lines)
        chunk["play_count"] = _numeric(chunk["play_count"], path=path, lines=lines, what="play count")
        if keep_songs is not None:
            m = chunk["song_id"].isin(keep_songs).to_numpy()
            n_unmapped += int((~m).sum())
            chunk = chunk[m]
        elif keep_ids is not None:
            chunk = chunk[chunk["song_id"].isin(keep_ids).to_numpy()]
        parts.append(chunk)
    if not parts:
        return pd.DataFrame({"user_id": pd.Series(dtype=str), "track_id": pd.Series(dtype=str),
                             "play_count": pd.Series(dtype=float)})
    df = pd.concat(parts, ignore_index=True)
    if mapping is not None:
        if n_unmapped:
            log.info("%s: %d triplets name songs without a (selected) track; dropped", path, n_unmapped)
        df = df.merge(mapping, on="song_id", how="inner")
    else:
        df["track_id"] = df["song_id"]
    df = df[["user_id", "track_id", "play_count"]]
    return _sum_pairs(df, ["user_id", "track_id"], "play_count")


# --------------------------------------------------------------------------- musiXmatch
def read_musixmatch(path, *, track_ids=None) -> pd.DataFrame:
    """Read a musiXmatch bag-of-words file (``mxm_dataset_train.txt`` / ``_test.txt``).

    Format: comment lines starting with ``#``; one line ``%word1,word2,...`` (the 5,000-word
    vocabulary); then one line per track ``tid,mxm_tid,idx:cnt,idx:cnt,...`` with 1-based word
    indices into the vocabulary.

    Returns
    -------
    pandas.DataFrame with columns ``track_id``, ``word``, ``count`` (float64); tracks listed
    with no words keep no rows (they are missing for ``lyrics``).
    """
    path = _existing(path)
    keep_ids = _id_filter(track_ids)
    vocab = None
    tids: list[str] = []
    idx_parts: list[np.ndarray] = []
    cnt_parts: list[np.ndarray] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", errors="strict") as fh:
        try:
            for ln, line in enumerate(fh, 1):
                s = line.rstrip("\r\n")
                if not s.strip() or s.startswith("#"):
                    continue
                if s.startswith("%"):
                    if vocab is not None:
                        raise MtdtlError(f"{path}, line {ln}: a second '%' vocabulary line")
                    vocab = np.asarray(s[1:].split(","), dtype=object)
                    if len(vocab) == 0 or any(w == "" for w in vocab):
                        raise MtdtlError(f"{path}, line {ln}: the '%' vocabulary line has empty words")
                    continue
                if vocab is None:
                    raise MtdtlError(f"{path}, line {ln}: track data before the '%word,...' vocabulary line")
                fields = s.split(",")
                if len(fields) < 2:
                    raise MtdtlError(f"{path}, line {ln}: malformed row, expected 'tid,mxm_tid,idx:cnt,...'")
                if not fields[0].strip():
                    raise MtdtlError(f"{path}, line {ln}: track id missing on line {ln} (expected "
                                     "'tid,mxm_tid,idx:cnt,...')")
                tid = fields[0].strip()
                if tid in seen:
                    raise MtdtlError(f"{path}, line {ln}: track {tid!r} already listed on line {seen[tid]}")
                seen[tid] = ln
                if keep_ids is not None and tid not in keep_ids:
                    continue
                pairs = fields[2:]
                if not pairs:
                    continue
                idx, cnt = _parse_pairs(pairs, path=path, line=ln, n_vocab=len(vocab))
                tids.append(tid)
                idx_parts.append(idx)
                cnt_parts.append(cnt)
        except UnicodeDecodeError as err:
            raise MtdtlError(f"{path}: not UTF-8 text ({err})") from None
    if vocab is None:
        raise MtdtlError(f"{path}: no '%word,...' vocabulary line; is this a musiXmatch file?")
    if not tids:
        return pd.DataFrame({"track_id": pd.Series(dtype=str), "word": pd.Series(dtype=str),
                             "count": pd.Series(dtype=float)})
    lens = np.array([len(a) for a in idx_parts])
    idx = np.concatenate(idx_parts)
    df = pd.DataFrame({
        "track_id": np.repeat(np.asarray(tids, dtype=object), lens),
        "word": vocab[idx - 1],
        "count": np.concatenate(cnt_parts),
    })
    return _sum_pairs(df, ["track_id", "word"], "count")


def _parse_pairs(pairs: list[str], *, path: Path, line: int, n_vocab: int):
    try:
        flat = np.array(",".join(pairs).replace(":", ",").split(","), dtype=np.float64)
        ok = flat.size == 2 * len(pairs) and all(p.count(":") == 1 for p in pairs)
    except ValueError:
        ok = False
    if not ok:
        for p in pairs:
            a, _, b = p.partition(":")
            try:
                float(a), float(b)
            except ValueError:
                raise MtdtlError(f"{path}, line {line}: malformed 'idx:cnt' pair {p!r}") from None
        raise MtdtlError(f"{path}, line {line}: malformed 'idx:cnt' pairs")
    idx, cnt = flat[0::2], flat[1::2]
    if not np.all(np.isfinite(cnt)):
        raise MtdtlError(f"{path}, line {line}: a word count is NaN or infinite")
    if (cnt < 0).any():
        raise MtdtlError(f"{path}, line {line}: negative word count {cnt[cnt < 0][0]:g}")
    if not np.all(idx == np.round(idx)) or (idx < 1).any() or (idx > n_vocab).any():
        bad = idx[(idx != np.round(idx)) | (idx < 1) | (idx > n_vocab)][0]
        raise MtdtlError(f"{path}, line {line}: word index {bad:g} outside 1..{n_vocab}")
    return idx.astype(np.int64), cnt


# --------------------------------------------------------------------------- SQLite files
def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


class _sqlite:
    """Read-only SQLite connection that closes on exit."""

    def __init__(self, path: Path):
        if not _is_sqlite(path):
            raise MtdtlError(f"{path} is not an SQLite database")
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
        self.con = sqlite3.connect(uri, uri=True)
        return self.con

    def __exit__(self, *exc):
        self.con.close()
        return False


def _require_table(con, path: Path, table: str, columns) -> None:
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    if not cols:
        raise MtdtlError(f"{path}: no table {table!r}")
    missing = [c for c in columns if c not in cols]
    if missing:
        raise MtdtlError(f"{path}: table {table!r} lacks columns {missing} (has {cols})")


def read_lastfm_tags(path, *, track_ids=None, min_count: float = 0.0) -> pd.DataFrame:
    """Read the Last.fm dataset's ``lastfm_tags.db`` (SQLite).

    Tables: ``tids(tid)`` and ``tags(tag)``, addressed by ``rowid``, and
    ``tid_tag(tid, tag, val)`` whose ``tid`` / ``tag`` are those rowids and ``val`` the tag's
    weight for the track (0-100).

    Parameters
    ----------
    min_count : float; drop pairs whose weight is below this (0 keeps all; zero weights never
        reach pLSA anyway).

    Returns
    -------
    pandas.DataFrame with columns ``track_id``, ``tag``, ``count`` (float64)
    """
    path = _existing(path)
    with _sqlite(path) as con:
        for table, cols in (("tids", ["tid"]), ("tags", ["tag"]), ("tid_tag", ["tid", "tag", "val"])):
            _require_table(con, path, table, cols)
        tids = pd.read_sql_query("SELECT rowid AS rid, tid FROM tids", con)
        tags = pd.read_sql_query("SELECT rowid AS rid, tag FROM tags", con)
        pairs = pd.read_sql_query("SELECT rowid AS row, tid, tag, val FROM tid_tag", con)
    empty = ((tids["tid"].isna() | (tids["tid"].astype(str).str.strip() == ""))
             & tids["rid"].isin(pd.to_numeric(pairs["tid"], errors="coerce"))).to_numpy()
    if empty.any():  # a NULL track id that tid_tag refers to (it would become the track "None")
        rid = tids["rid"].to_numpy()[int(np.flatnonzero(empty)[0])]
        raise MtdtlError(f"{path}, table tids row {rid}: track id missing in table tids row {rid}")
    where = pairs["row"].to_numpy()
    for col, ref in (("tid", tids), ("tag", tags)):
        num = pd.to_numeric(pairs[col], errors="coerce")
        bad = num.isna().to_numpy() | ~num.isin(ref["rid"]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MtdtlError(
                f"{path}, table tid_tag row {where[i]}: {col} = {pairs[col].iloc[i]} names no row of "
                f"table {'tids' if col == 'tid' else 'tags'}"
            )
        pairs[col] = num.astype(np.int64)
    val = _numeric(pairs["val"].astype(object), path=path, lines=where, what="tag weight (val)",
                   where="table tid_tag row")
    df = pd.DataFrame({
        "track_id": pairs["tid"].map(tids.set_index("rid")["tid"]).astype(str).to_numpy(),
        "tag": pairs["tag"].map(tags.set_index("rid")["tag"]).astype(str).to_numpy(),
        "count": val,
    })
    df = df[df["count"] >= min_count] if min_count > 0 else df
    if track_ids is not None:
        df = df[df["track_id"].isin(_id_filter(track_ids))]
    return _sum_pairs(df.reset_index(drop=True), ["track_id", "tag"], "count")


def _read_songs(path: Path, columns: list[str], track_ids) -> tuple[pd.DataFrame, np.ndarray]:
    with _sqlite(path) as con:
        _require_table(con, path, "songs", ["track_id"] + columns)
        sel = ", ".join(["rowid AS row", "track_id"] + columns)
        df = pd.read_sql_query(f"SELECT {sel} FROM songs", con)
    rows = df["row"].to_numpy()
    empty = df["track_id"].isna().to_numpy() | (df["track_id"].astype(str).str.strip() == "").to_numpy()
    if empty.any():
        row = rows[int(np.flatnonzero(empty)[0])]
        raise MtdtlError(f"{path}, table songs row {row}: track id missing in table songs row {row}")
    df["track_id"] = df["track_id"].astype(str)
    _check_unique(df["track_id"], path=path, where=rows, unit="row")
    if track_ids is not None:
        m = df["track_id"].isin(_id_filter(track_ids)).to_numpy()
        df, rows = df[m].reset_index(drop=True), rows[m]
    return df.drop(columns="row"), rows


def read_msd_year(path, *, track_ids=None) -> pd.DataFrame:
    """Release year per track from the MSD ``track_metadata.db`` (SQLite table ``songs``).

    ``year = 0`` means unknown in the MSD: those tracks are kept with ``year = NaN`` so that the
    ``year`` source records them as missing ("no value").

    Returns
    -------
    pandas.DataFrame with columns ``track_id``, ``year`` (float64, NaN when unknown)
    """
    path = _existing(path)
    df, rows = _read_songs(path, ["year"], track_ids)
    year = _numeric(df["year"].astype(object), path=path, lines=rows, what="year", allow_nan=True,
                    where="table songs row")
    if np.isnan(year).any():
        i = int(np.flatnonzero(np.isnan(year))[0])
        raise MtdtlError(f"{path}, table songs row {rows[i]}: year is NULL or not a number (the MSD uses 0 for unknown)")
    year[year == 0] = np.nan
    return pd.DataFrame({"track_id": df["track_id"].to_numpy(), "year": year})


def read_msd_artist(path, *, by: str = "artist_id", track_ids=None) -> pd.DataFrame:
    """Artist per track from the MSD ``track_metadata.db`` (SQLite table ``songs``).

    Parameters
    ----------
    by : "artist_id" (default: Echo Nest ids, unambiguous), "artist_mbid" or "artist_name"

    Returns
    -------
    pandas.DataFrame with columns ``track_id``, ``artist``; tracks with an empty artist field
    are left out (missing for ``artist``).
    """
    if by not in ("artist_id", "artist_mbid", "artist_name"):
        raise MtdtlError(f"by must be 'artist_id', 'artist_mbid' or 'artist_name', got {by!r}")
    path = _existing(path)
    df, _ = _read_songs(path, [by], track_ids)
    art = df[by].fillna("").astype(str).str.strip()
    n_empty = int((art == "").sum())
    if n_empty:
        log.info("%s: %d tracks have an empty %s", path, n_empty, by)
    out = pd.DataFrame({"track_id": df["track_id"].to_numpy(), "artist": art.to_numpy()})
    return out[out["artist"] != ""].reset_index(drop=True)
