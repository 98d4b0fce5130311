"""The corpus folder contract, :class:`Corpus` (its reader) and the helpers every builder shares.

A built corpus is a folder; every builder (:mod:`mtdtl.corpora.demo`, :mod:`mtdtl.corpora.msd`,
:mod:`mtdtl.corpora.folder`) writes the same layout, so preprocessing, training and evaluation
read them all the same way::

    <corpus>/
      corpus.json            name, kind, seed, parameters, package versions, counts
      manifest.csv           track_id, part (learning|target), split (train|valid|test), path,
                             duration, sample_rate, channels, then builder-specific columns
                             (work_id: tracks with one work_id share a part and split)
      clips.csv              per-clip extras of the builder (audio hash, source file, ...)
      clips/<track_id>.json  resume records of the build
      audio/<track_id>.flac  audio the builder wrote (a ``path`` may also be absolute: audio
                             used in place)
      labels/<source>.csv    raw labels of a learning source (:data:`LABEL_COLUMNS`); a source
                             the corpus does not have has no file
      targets/tasks.json     {task: {"type": classification|regression|recommendation, ...}}
      targets/<task>.csv     :data:`TARGET_COLUMNS` of the task's type
      build_report.json      what the build skipped and why

Tables are UTF-8 CSV with a header line. :func:`read_table` reads them strictly: a byte-order
mark is ignored, a row with the wrong number of fields or without a track id is an error that
names the file and the line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_text
from mtdtl.log import get_logger

__all__ = ["Corpus", "read_table", "write_text_if_changed", "write_csv", "to_json",
           "MANIFEST_REQUIRED", "LABEL_COLUMNS", "LABEL_NUMERIC", "TARGET_COLUMNS", "PARTS",
           "SPLITS", "TASK_TYPES", "CORPUS_ENTRIES", "learning_split", "check_out_dir"]

log = get_logger(__name__)

#: Columns every ``manifest.csv`` has (builders add their own after these).
MANIFEST_REQUIRED: tuple[str, ...] = ("track_id", "part", "split", "path", "duration",
                                      "sample_rate", "channels")
#: Columns of ``labels/<source>.csv`` per learning source.
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "self": ("track_id",),
    "bpm": ("track_id", "bpm"),
    "year": ("track_id", "year"),
    "taste": ("user_id", "track_id", "play_count"),
    "tag": ("track_id", "tag", "count"),
    "lyrics": ("track_id", "word", "count"),
    "cdr_tag": ("track_id", "tag"),
    "artist": ("track_id", "artist"),
}
assert tuple(LABEL_COLUMNS) == SOURCE_NAMES
#: Numeric label columns: ``(column, empty allowed)``; counts must be finite and >= 0.
LABEL_NUMERIC: dict[str, tuple[tuple[str, bool], ...]] = {
    "bpm": (("bpm", True),), "year": (("year", True),), "taste": (("play_count", False),),
    "tag": (("count", False),), "lyrics": (("count", False),),
}
#: Columns of ``targets/<task>.csv`` per task type.
TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    "classification": ("track_id", "label", "split"),
    "regression": ("track_id", "label", "split"),
    "recommendation": ("user_id", "track_id", "play_count", "split"),
}
TASK_TYPES = tuple(TARGET_COLUMNS)
PARTS = ("learning", "target")
SPLITS = ("train", "valid", "test")
#: What a corpus folder may hold (a builder refuses to write into a folder with anything else).
CORPUS_ENTRIES = frozenset({"corpus.json", "manifest.csv", "clips.csv", "clips", "audio", "labels",
                            "targets", "build_report.json"})

# columns read as strings, never as numbers ("" stays "")
_KEY_COLUMNS = {"track_id", "user_id", "work_id", "tag", "word", "artist", "label", "split",
                "part", "path", "song_id", "title", "collection", "composer", "instrument",
                "instrument_family", "soundfont", "source", "source_id"}
_ID_WORDS = {"track_id": "track id", "user_id": "user id"}


# ----------------------------------------------------------------------------------------
# reading and writing tables
# ----------------------------------------------------------------------------------------

def _line_fields(text: str, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Fields per physical line and which lines are blank (whitespace only), for a text
    without quote characters (so every separator splits a field)."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    nl = np.flatnonzero(data == 10)
    ends = nl if data[-1] == 10 else np.r_[nl, data.size]
    starts = np.r_[0, nl + 1][:ends.size]
    seps = np.r_[0, np.cumsum(data == ord(sep))]
    ink = np.r_[0, np.cumsum(~np.isin(data, np.frombuffer(b" \t\r\n", np.uint8)))]
    n_fields = seps[ends] - seps[starts] + 1
    blank = (ink[ends] - ink[starts]) == 0
    return n_fields, blank


def _sniff_sep(header: str) -> str:
    return "\t" if "\t" in header and "," not in header else ","


def _number(values: pd.Series, *, path: Path, lines: np.ndarray, column: str,
            allow_empty: bool, allow_negative: bool = False) -> np.ndarray:
    """A column as float64: empty → NaN where allowed; junk, infinite or negative values are
    errors naming the line."""
    raw = values.astype(str).str.strip()
    num = pd.to_numeric(raw.where(raw != "", np.nan), errors="coerce").to_numpy(np.float64)
    for i in np.flatnonzero(~np.isfinite(num) | ((num < 0) & (not allow_negative))):
        v = raw.iloc[i]
        if v == "" and allow_empty:
            continue
        if v == "":
            why = f"{column} is empty"
        elif np.isnan(num[i]) and v.lower() not in ("nan", "na", "null", "none"):
            why = f"{column} {v!r} is not a number"
        elif np.isnan(num[i]) and allow_empty:
            continue
        elif num[i] < 0:
            why = f"{column} {v!r} is negative"
        else:
            why = f"{column} is missing or not finite ({v!r})"
        raise MtdtlError(f"{path}, line {lines[i]}: {why}; fix or delete that line")
    return num


def read_table(path: str | os.PathLike, *, required: Iterable[str] = (),
               numeric: Iterable[tuple[str, bool]] = (), ids: Iterable[str] = ("track_id", "user_id"),
               sep: str | None = None) -> pd.DataFrame:
    """Read a corpus table (CSV or TSV with a header line) strictly.

    Parameters
    ----------
    path : path-like
        The table. A UTF-8 byte-order mark is ignored; blank lines are skipped.
    required : iterable of str
        Columns the table must have.
    numeric : iterable of (column, empty_allowed)
        Columns parsed as float64 (finite and >= 0; empty → NaN where allowed).
    ids : iterable of str
        Id columns that must not be empty (``track id missing on line N``).
    sep : str, optional
        Field separator; default: tab when the header has tabs and no commas, else comma.

    Returns
    -------
    pandas.DataFrame
        Key columns (track_id, user_id, tag, word, artist, label, split, ...) as strings, the
        ``numeric`` columns as numbers (int64 when every value is a whole number, else
        float64), any other column as numbers when all its values are
        numbers (empty → NaN), else as strings (empty → NaN). ``df.attrs["lines"]`` holds the
        1-based line number of every row.

    Raises
    ------
    MtdtlError
        The file is missing, not UTF-8 or has no header; a row has the wrong number of
        fields; an id is missing; a numeric value is not a number, negative or infinite; a
        required column is absent. The message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"table not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MtdtlError(f"{path}: not UTF-8 text ({e}); save it as UTF-8") from None
    first, _, body = text.partition("\n")
    if not first.strip():
        raise MtdtlError(f"{path}: line 1 must be the header (the column names), found "
                         f"{'an empty file' if not text.strip() else 'a blank line'}")
    sep = sep or _sniff_sep(first)
    header = next(csv.reader([first.rstrip("\r")], delimiter=sep))
    cols = [c.strip() for c in header]
    if any(not c for c in cols) or len(set(cols)) != len(cols):
        raise MtdtlError(f"{path}, line 1: the header {header} has empty or repeated column names")
    missing = [c for c in required if c not in cols]
    if missing:
        raise MtdtlError(f"{path}: lacks the columns {missing} (has {cols}); the table formats are "
                         "in docs/ARCHITECTURE.md (mtdtl.corpora)")
    n = len(cols)
    if '"' not in body:
        n_fields, blank = _line_fields(body, sep)
        bad = np.flatnonzero((n_fields != n) & ~blank)
        if bad.size:
            i = int(bad[0])
            raise MtdtlError(f"{path}, line {i + 2}: expected {n} fields ({', '.join(cols)}), saw "
                             f"{n_fields[i]}; fix or delete that line")
        lines = np.flatnonzero(~blank) + 2
        if lines.size:
            df = pd.read_csv(io.StringIO(body), sep=sep, header=None, names=cols, dtype=str,
                             keep_default_na=False, na_filter=False, skip_blank_lines=False,
                             quoting=csv.QUOTE_NONE, engine="c")
            df = df[~blank[:len(df)]].reset_index(drop=True)
        else:
            df = pd.DataFrame({c: pd.Series(dtype=str) for c in cols})
    else:  # quoted fields: the csv module knows where each record ends
        rows, where = [], []
        reader = csv.reader(io.StringIO(body, newline=""), delimiter=sep)
        start = 2
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    start = reader.line_num + 2
                    continue
                if len(row) != n:
                    raise MtdtlError(f"{path}, line {start}: expected {n} fields ({', '.join(cols)}), "
                                     f"saw {len(row)}; fix or delete that line")
                rows.append(row)
                where.append(start)
                start = reader.line_num + 2
        except csv.Error as e:
            raise MtdtlError(f"{path}, line {start}: {e}; fix the quoting of that line") from None
        df = pd.DataFrame(rows, columns=cols, dtype=str) if rows else \
            pd.DataFrame({c: pd.Series(dtype=str) for c in cols})
        lines = np.asarray(where, dtype=np.int64)
    for c in ids:
        if c in df.columns:
            empty = (df[c].str.strip() == "").to_numpy()
            if empty.any():
                raise MtdtlError(f"{path}: {_ID_WORDS.get(c, c)} missing on line "
                                 f"{lines[int(np.flatnonzero(empty)[0])]}; every row needs one "
                                 "(fix or delete that line)")
    numeric = dict(numeric)
    for c in df.columns:
        if c in numeric:
            num = _number(df[c], path=path, lines=lines, column=c, allow_empty=numeric[c])
            whole = np.isfinite(num).all() and (num == np.round(num)).all() and (np.abs(num) < 2 ** 53).all()
            df[c] = num.astype(np.int64) if whole and len(num) else num
        elif c not in _KEY_COLUMNS:
            vals = df[c].where(df[c] != "", np.nan)
            num = pd.to_numeric(vals, errors="coerce")
            df[c] = num if bool((num.notna() == vals.notna()).all()) and len(vals) else vals
    df.attrs["lines"] = lines
    return df


def to_json(obj) -> str:
    """The JSON text of corpus files (sorted keys, one space indent, final newline)."""
    return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` atomically (:func:`mtdtl.io.atomic_write_text`) unless ``path`` already
    holds exactly that; returns whether it wrote."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    atomic_write_text(path, text)
    return True


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> bool:
    """A table as corpus CSV (``\\n`` line ends, floats ``%.6g``), only if changed."""
    return write_text_if_changed(path, df.to_csv(index=False, lineterminator="\n",
                                                 float_format="%.6g"))


# ----------------------------------------------------------------------------------------
# helpers of the builders
# ----------------------------------------------------------------------------------------

def _unit(seed: int, purpose: str, key) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, purpose, key)`` (as the demo corpus')."""
    s = "\x1f".join(str(p) for p in (seed, purpose, key))
    return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "little") / 2.0 ** 64


def check_out_dir(root: Path, *, kind: str) -> None:
    """Refuse a folder that holds anything but a (maybe partial) corpus of ``kind``."""
    if root.exists() and not root.is_dir():
        raise MtdtlError(f"{root} is a file, not a folder; pick another output folder")
    if not root.is_dir():
        return
    other = sorted(p.name for p in root.iterdir() if p.name not in CORPUS_ENTRIES
                   and not p.name.startswith("."))
    if other:
        raise MtdtlError(f"{root} is not empty and not a corpus folder (it holds {other[:5]}); "
                         "pick a new or empty output folder")
    info = root / "corpus.json"
    if info.is_file():
        try:
            old = json.loads(info.read_text(encoding="utf-8")).get("kind", "demo")
        except (ValueError, AttributeError):
            old = None
        if old != kind:
            raise MtdtlError(f"{root} holds a corpus of kind {old!r}, not {kind!r}; pick another "
                             "output folder or delete that one")


def learning_split(groups: pd.Series, *, seed: int, valid_fraction: float) -> pd.Series:
    """Seeded ``train`` / ``valid`` split of learning tracks, whole groups at a time.

    Groups (``work_id``) are ordered by a hash of ``(seed, group)``; the first
    ``round(valid_fraction * n_groups)`` (at least one when there are 2 groups or more and
    the fraction is positive) are ``valid``. The same tracks and seed give the same split.
    """
    keys = sorted(set(groups.astype(str)))
    order = sorted(keys, key=lambda g: (_unit(seed, "split", g), g))
    n_valid = int(round(valid_fraction * len(keys)))
    if valid_fraction > 0 and len(keys) >= 2:
        n_valid = min(max(n_valid, 1), len(keys) - 1)
    valid = set(order[:n_valid])
    return groups.astype(str).map(lambda g: "valid" if g in valid else "train")


# ----------------------------------------------------------------------------------------
# reading a corpus
# ----------------------------------------------------------------------------------------

class Corpus:
    """A built corpus folder.

    Attributes
    ----------
    root : pathlib.Path
        The corpus folder.
    info : dict
        ``corpus.json`` (name, kind, size, seed, parameters, package versions, counts).

    Examples
    --------
    >>> c = Corpus.open(path)                      # doctest: +SKIP
    >>> c.manifest.query("part == 'learning'")     # doctest: +SKIP
    >>> c.labels("tag").head()                     # doctest: +SKIP
    >>> c.target_table("genre")                    # doctest: +SKIP
    """

    def __init__(self, root: Path, info: dict):
        self.root = root
        self.info = info

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Corpus":
        """Open a built corpus folder.

        Raises
        ------
        MtdtlError
            When the folder or its ``manifest.csv`` is missing (build it first, e.g. with
            ``mtdtl corpus demo``).
        """
        root = Path(path).expanduser().resolve()
        if not (root / "manifest.csv").is_file():
            raise MtdtlError(f"{root} is not a built corpus (no manifest.csv); build one with "
                             "`mtdtl corpus demo --root ...` (or build_msd_corpus / "
                             "build_folder_corpus) or finish an interrupted build by running the "
                             "same command again")
        info = {}
        if (root / "corpus.json").is_file():
            try:
                info = json.loads((root / "corpus.json").read_text(encoding="utf-8"))
            except ValueError as e:
                raise MtdtlError(f"{root / 'corpus.json'} is not valid JSON ({e}); rebuild "
                                 "the corpus") from e
        return cls(root, info)

    def __repr__(self) -> str:
        return f"Corpus({str(self.root)!r}, {len(self.manifest)} tracks)"

    @cached_property
    def manifest(self) -> pd.DataFrame:
        """One row per track: ``track_id, part, split, path, duration, sample_rate, ...``."""
        m = read_table(self.root / "manifest.csv", required=MANIFEST_REQUIRED, ids=("track_id",))
        dup = m["track_id"].duplicated()
        if dup.any():
            raise MtdtlError(f"{self.root / 'manifest.csv'}, line {m.attrs['lines'][dup.to_numpy()][0]}: "
                             f"track {m.loc[dup, 'track_id'].iloc[0]!r} is listed twice; rebuild the "
                             "corpus")
        return m

    @property
    def sources(self) -> tuple[str, ...]:
        """The learning sources this corpus has (a ``labels/<source>.csv`` file), in
        :data:`~mtdtl.constants.SOURCE_NAMES` order."""
        return tuple(s for s in SOURCE_NAMES if (self.root / "labels" / f"{s}.csv").is_file())

    def labels(self, source: str) -> pd.DataFrame:
        """Raw label table of a learning source (``self, bpm, year, taste, tag, lyrics,
        cdr_tag, artist``), keyed by ``track_id`` (columns: :data:`LABEL_COLUMNS`)."""
        if source not in SOURCE_NAMES:
            raise MtdtlError(f"unknown learning source {source!r}; valid sources: "
                             f"{', '.join(SOURCE_NAMES)}")
        p = self.root / "labels" / f"{source}.csv"
        if not p.is_file():
            have = ", ".join(self.sources) or "none"
            raise MtdtlError(f"{p} is missing; this corpus has no {source!r} labels (it has: "
                             f"{have}); leave {source!r} out of the sources, or rebuild the corpus "
                             "with it")
        return read_table(p, required=LABEL_COLUMNS[source], numeric=LABEL_NUMERIC.get(source, ()))

    @cached_property
    def tasks(self) -> dict:
        """``targets/tasks.json``: task name -> {"type", "description", ...}."""
        p = self.root / "targets" / "tasks.json"
        if not p.is_file():
            return {}
        try:
            tasks = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise MtdtlError(f"{p} is not valid JSON ({e}); rebuild the corpus") from None
        if not isinstance(tasks, dict):
            raise MtdtlError(f"{p} must map task names to their descriptions; rebuild the corpus")
        return tasks

    def target_table(self, task: str) -> pd.DataFrame:
        """Table of a target task: ``track_id, label, split`` (classification, regression)
        or ``user_id, track_id, play_count, split`` (recommendation; split of the item)."""
        if task not in self.tasks:
            raise MtdtlError(f"unknown target task {task!r}; this corpus has: "
                             f"{', '.join(self.tasks) or 'none'}")
        kind = self.tasks[task].get("type")
        numeric = (("play_count", False),) if kind == "recommendation" else ()
        df = read_table(self.root / "targets" / f"{task}.csv",
                        required=TARGET_COLUMNS.get(kind, ("track_id",)), numeric=numeric)
        if kind == "regression":
            df["label"] = _number(df["label"], path=self.root / "targets" / f"{task}.csv",
                                  lines=df.attrs["lines"], column="label", allow_empty=False,
                                  allow_negative=True)
        return df

    def audio_path(self, track_id: str) -> Path:
        """Absolute path of a track's audio file."""
        idx = self._path_index
        if track_id not in idx:
            raise MtdtlError(f"track {track_id!r} is not in {self.root / 'manifest.csv'}")
        return self.root / idx[track_id]

    @cached_property
    def _path_index(self) -> dict[str, str]:
        return dict(zip(self.manifest["track_id"], self.manifest["path"]))

    @cached_property
    def build_report(self) -> dict:
        """``build_report.json`` (skipped works and why, timings), ``{}`` when absent."""
        p = self.root / "build_report.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    # ------------------------------------------------------------------------------------
    def check(self, *, audio: bool = True) -> list[str]:
        """Problems with the folder contract (empty list: none).

        Checks the manifest (required columns, parts, splits, unique ids, audio files exist
        when ``audio``), every label table (its columns, values, tracks of the learning part
        only), ``targets/tasks.json`` and every target table (columns, tracks of the target
        part, the split of the manifest).
        """
        problems: list[str] = []
        try:
            m = self.manifest
        except MtdtlError as e:
            return [str(e)]
        for col, allowed in (("part", PARTS), ("split", SPLITS)):
            bad = sorted(set(m[col].astype(str)) - set(allowed))
            if bad:
                problems.append(f"manifest.csv: {col} values {bad} (allowed: {', '.join(allowed)})")
        learn = set(m.loc[m["part"] == "learning", "track_id"])
        target = set(m.loc[m["part"] == "target", "track_id"])
        if audio:
            gone = [t for t in m["track_id"] if not self.audio_path(t).is_file()]
            if gone:
                problems.append(f"manifest.csv: {len(gone)} audio files are missing, e.g. "
                                f"{self.audio_path(gone[0])}")
        for s in self.sources:
            try:
                df = self.labels(s)
            except MtdtlError as e:
                problems.append(str(e))
                continue
            extra = set(df["track_id"]) - learn
            if extra:
                problems.append(f"labels/{s}.csv: {len(extra)} tracks are not learning tracks of "
                                f"the manifest, e.g. {sorted(extra)[0]!r}")
        try:
            tasks = self.tasks
        except MtdtlError as e:
            return problems + [str(e)]
        split = dict(zip(m["track_id"], m["split"]))
        for task, spec in tasks.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in TASK_TYPES:
                problems.append(f"targets/tasks.json: task {task!r} has type {kind!r} (allowed: "
                                f"{', '.join(TASK_TYPES)})")
                continue
            try:
                df = self.target_table(task)
            except MtdtlError as e:
                problems.append(str(e))
                continue
            extra = set(df["track_id"]) - target
            if extra:
                problems.append(f"targets/{task}.csv: {len(extra)} tracks are not target tracks of "
                                f"the manifest, e.g. {sorted(extra)[0]!r}")
            off = (df["split"] != df["track_id"].map(split)) & df["track_id"].isin(target)
            if off.any():
                problems.append(f"targets/{task}.csv: {int(off.sum())} rows have another split "
                                "than the manifest")
        return problems

    def validate(self, *, audio: bool = True) -> "Corpus":
        """Raise :class:`MtdtlError` listing every problem of :meth:`check`; returns self."""
        problems = self.check(audio=audio)
        if problems:
            raise MtdtlError(f"{self.root} breaks the corpus folder contract:\n  - "
                             + "\n  - ".join(problems) + "\nrebuild the corpus")
        return self

    # ------------------------------------------------------------------------------------
    def summary(self) -> str:
        """Clips per part and split, coverage of every learning source, target class counts."""
        m = self.manifest
        works = f", {m['work_id'].nunique()} works" if "work_id" in m.columns else ""
        hours = pd.to_numeric(m["duration"], errors="coerce").sum() / 3600
        lines = [f"corpus {self.info.get('name', self.root.name)} at {self.root}",
                 f"{len(m)} clips{works}, {hours:.2f} h of audio", "", "clips per part and split:"]
        for (part, split), n in m.groupby(["part", "split"]).size().items():
            lines.append(f"  {part:<9} {split:<6} {n:>6}")
        if "collection" in m.columns:
            lines += ["", "clips per collection (learning / target):"]
            tab = m.groupby(["collection", "part"]).size().unstack(fill_value=0)
            for col, row in tab.iterrows():
                lines.append(f"  {col:<18} {row.get('learning', 0):>6} / {row.get('target', 0):<6}")
        learn = set(m.loc[m["part"] == "learning", "track_id"])
        lines += ["", f"learning sources (coverage of the {len(learn)} learning clips):"]
        for s in SOURCE_NAMES:
            p = self.root / "labels" / f"{s}.csv"
            if not p.is_file():
                lines.append(f"  {s:<8} missing")
                continue
            df = self.labels(s)
            have = set(df["track_id"]) & learn
            extra = ""
            if s == "tag":
                extra = f", {df['tag'].nunique()} distinct tags"
            elif s == "taste":
                sim = " (simulated)" if self.info.get("kind", "demo") == "demo" else ""
                extra = f", {df['user_id'].nunique()} users{sim}, {len(df)} triplets"
            elif s == "lyrics":
                extra = f", {df['word'].nunique()} distinct words"
            elif s == "cdr_tag":
                extra = f", {df['tag'].nunique()} genre paths"
            elif s == "artist":
                extra = f", {df['artist'].nunique()} artists"
            elif s in ("bpm", "year") and df[s].notna().any():
                v = df[s].astype(float)
                extra = f", range {v.min():.0f}-{v.max():.0f}"
            cov = len(have) / len(learn) if learn else 0.0
            lines.append(f"  {s:<8} {len(have):>6} tracks ({cov:6.1%}){extra}")
        lines += ["", "target tasks:" if self.tasks else "target tasks: none"]
        for task, spec in self.tasks.items():
            try:
                df = self.target_table(task)
            except MtdtlError as e:
                lines.append(f"  {task}: unreadable ({e})")
                continue
            kind = spec.get("type", "?")
            if kind == "classification":
                counts = df.groupby("label").size().sort_values(ascending=False)
                body = ", ".join(f"{k} {v}" for k, v in counts.items())
                lines.append(f"  {task} ({kind}, {len(df)} tracks): {body}")
            elif kind == "regression":
                v = df["label"].astype(float)
                lines.append(f"  {task} ({kind}, {len(df)} tracks): mean {v.mean():.2f}, "
                             f"sd {v.std():.2f}, range {v.min():.2f}-{v.max():.2f}")
            else:
                items = df.groupby("split")["track_id"].nunique().to_dict()
                sim = ", simulated" if self.info.get("kind", "demo") == "demo" else ""
                lines.append(f"  {task} ({kind}{sim}): {df['user_id'].nunique()} users, "
                             f"{df['track_id'].nunique()} items, {len(df)} play counts; items "
                             "per split " + ", ".join(f"{k} {v}" for k, v in sorted(items.items())))
        rep = self.build_report
        if rep:
            lines += ["", f"skipped: {rep.get('n_skipped', 0)} (see build_report.json)"]
            stages: dict[str, int] = {}
            for r in rep.get("skipped", []):
                stages[r.get("stage", "?")] = stages.get(r.get("stage", "?"), 0) + 1
            if stages:
                lines[-1] += ": " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items()))
        return "\n".join(lines)
