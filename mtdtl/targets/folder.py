"""Your own target dataset: a folder of audio and a labels table (``load_target("folder", ...)``).

Layout::

    <root>/**/<file>.<ext>      audio files, in any subfolders (extensions: AUDIO_EXTENSIONS)
    <root>/labels.csv           the labels table (or labels.tsv; or pass labels=<path>)

The labels table is a CSV or TSV file with a header line (tab-separated when the header has more
tabs than commas) and one row per track:

==========  ========  ======================================================================
column      needed    what
==========  ========  ======================================================================
``track``   yes       the file's path relative to ``root`` (``rock/song1.mp3``, with or
                      without the extension) or its name or stem (``song1``) when that is
                      unique in the folder; ``path``, ``file`` or ``track_id`` are read the same
``label``   yes       the class (``task="classification"``) or a number (``"regression"``)
``split``   no        ``train``, ``valid`` or ``test`` (``training``, ``validation``, ``val``
                      too), or empty
``group``   no        artist, album or song id: kept whole on one side of every split / fold
==========  ========  ======================================================================

Other columns are ignored (logged). The checks are those of the named loaders: every matched
file must exist, be non-empty and start like its format (``check=``); labels are stripped
(classification) or parsed as numbers (regression: a label that is not a number is an error
naming the line; an empty label skips the track as ``no label``); rows naming no file are
reported in ``unmatched`` (with their line), audio files without a row in ``unlisted``; a
table none of whose rows matches a file is an error.

Split: with a ``split`` column filled for every row, that split is fixed (``split_name``
``"dataset:<name>"``): the paper's five repetitions all use it. Without one (or where it is
empty), the split is not fixed: the repetitions are the protocol's five stratified folds
(:func:`mtdtl.evaluation.protocol.repetition_plan`, groups kept whole), and the ``split``
column holds one 80 / 20 draw (stratified by label for classification, groups kept whole). A
split list in ``.info`` format (``split_list=<path>``, paths relative to ``root``, matched on
the path without its audio extension) overrides the table's split.
"""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (
    AUDIO_EXTENSIONS,
    SkippedFile,
    SplitSpec,
    TargetDataset,
    UnmatchedRow,
    check_files,
    finalize,
    require_dir,
    scan_audio,
)
from mtdtl.targets.lists import _SPLIT_ALIASES, STUDY

__all__ = ["FOLDER_TASKS", "LABEL_FILES", "TRACK_COLUMNS", "read_labels_table", "path_key", "load_folder"]

log = get_logger(__name__)

#: Task types a folder target can have.
FOLDER_TASKS = ("classification", "regression")
#: Labels tables looked for in ``root`` when ``labels`` is not given, in order.
LABEL_FILES = ("labels.csv", "labels.tsv")
#: Names of the track column, in order of preference.
TRACK_COLUMNS = ("track", "path", "file", "track_id")
_NAME = "folder"
#: Names a folder target may not take (the paper's targets; ``demo:`` names the demo tasks).
_RESERVED = frozenset({"gtzan", "fma", "eballroom", "irmas", "emo_arousal", "emo_valence", "lastfm1k"})


def _norm(value: str) -> str:
    """A table's track value as a POSIX path: stripped, ``\\`` as ``/``, no leading ``./``."""
    v = str(value).strip().replace("\\", "/")
    while v.startswith("./"):
        v = v[2:]
    return v


def _drop_ext(path: str) -> str:
    stem, ext = os.path.splitext(path)
    return stem if ext.lower() in AUDIO_EXTENSIONS else path


def path_key(path: str) -> str:
    """Matching key of a path relative to ``root`` (a file, a table value or a ``.info`` row):
    the POSIX path without a leading ``/`` or ``./`` and without its audio extension."""
    return _drop_ext(_norm(path).lstrip("/"))


def read_labels_table(path: str | os.PathLike, *, task: str) -> pd.DataFrame:
    """Read a labels table (CSV or TSV with a header line).

    Parameters
    ----------
    path : path-like
        The table: columns ``track`` (or ``path``, ``file``, ``track_id``), ``label``, optionally
        ``split`` and ``group``.
    task : str
        ``"classification"`` (labels stay strings, stripped) or ``"regression"`` (labels parsed
        as numbers; empty stays NaN).

    Returns
    -------
    pandas.DataFrame
        ``track`` (str, as a POSIX path), ``label`` (object or float), ``split`` (``train`` /
        ``valid`` / ``test`` / ``""``), ``group`` (str, ``""`` when none), ``line`` (1-based line
        number in the file), in file order.

    Raises
    ------
    MtdtlError
        Missing or unreadable file, no header, no track or label column, a row with too many
        fields, an empty track, an unknown split, a regression label that is not a number, a
        track listed twice; the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"folder: labels table {path} not found; give a CSV/TSV with the columns "
                         "track,label[,split][,group] (docs/targets.md, 'Your own data')")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MtdtlError(f"folder: cannot read the labels table {path}: {exc}; save it as UTF-8 text") from None
    lines = text.splitlines()
    first = next((i for i, l in enumerate(lines) if l.strip()), None)
    if first is None:
        raise MtdtlError(f"folder: the labels table {path} is empty; line 1 must be the header "
                         "track,label[,split][,group]")
    sep = "\t" if lines[first].count("\t") > lines[first].count(",") else ","
    reader = csv.reader(lines[first:], delimiter=sep)
    header = [h.strip().lower() for h in next(reader)]
    track_col = next((c for c in TRACK_COLUMNS if c in header), None)
    if track_col is None or "label" not in header:
        raise MtdtlError(f"folder: {path}, line {first + 1}: the header {header} needs the columns 'track' "
                         "(the file's path relative to root, or its stem) and 'label', optionally 'split' "
                         "and 'group'; rename the columns (separator: comma, or tab for a TSV)")
    extra = [h for h in header if h not in (track_col, "label", "split", "group")]
    if extra:
        log.info("folder: %s: ignoring the columns %s", path, extra)
    idx = {c: header.index(c) for c in (track_col, "label", "split", "group") if c in header}
    rows = []
    seen: dict[str, int] = {}
    for lineno, fields in enumerate(reader, start=first + 2):
        if not fields or not any(f.strip() for f in fields):
            continue
        where = f"folder: {path}, line {lineno}"
        if len(fields) > len(header):
            raise MtdtlError(f"{where}: {len(fields)} fields for the {len(header)} columns {header}; "
                             "quote values that hold the separator")
        fields = fields + [""] * (len(header) - len(fields))
        track = _norm(fields[idx[track_col]])
        if not track:
            raise MtdtlError(f"{where}: the {track_col} is empty; fill it in or delete the line")
        split = fields[idx["split"]].strip().lower() if "split" in idx else ""
        if split not in _SPLIT_ALIASES:
            raise MtdtlError(f"{where}: unknown split {fields[idx['split']].strip()!r}; use train, valid, test "
                             "or leave it empty")
        if track in seen:
            raise MtdtlError(f"{where}: track {track!r} is listed twice (first on line {seen[track]}); "
                             "a track has one label")
        seen[track] = lineno
        label = fields[idx["label"]].strip()
        if task == "regression":
            if label:
                try:
                    value = float(label)
                except ValueError:
                    raise MtdtlError(f"{where}: label {label!r} is not a number (task='regression'); fix "
                                     "it, or load with task='classification'") from None
                if not np.isfinite(value):
                    raise MtdtlError(f"{where}: label {label!r} is not a finite number")
            else:
                value = np.nan
        else:
            value = label if label else np.nan
        group = fields[idx["group"]].strip() if "group" in idx else ""
        rows.append((track, value, _SPLIT_ALIASES[split], group, lineno))
    if not rows:
        raise MtdtlError(f"folder: the labels table {path} has a header but no rows")
    df = pd.DataFrame(rows, columns=["track", "label", "split", "group", "line"])
    if task == "regression":
        df["label"] = df["label"].astype(float)
    return df.astype({"line": "int64"})


def _labels_path(root: Path, labels) -> Path:
    if labels is None:
        for name in LABEL_FILES:
            if (root / name).is_file():
                return root / name
        raise MtdtlError(f"folder: no labels table given and none of {list(LABEL_FILES)} in {root}; pass "
                         "labels=<path> (a CSV/TSV with the columns track,label[,split][,group])")
    p = Path(labels).expanduser()
    if p.is_absolute() or (root / p).is_file() or not p.is_file():
        return p if p.is_absolute() else root / p
    return p.resolve()  # relative to the working directory, where it is (and not in root)


def _index(files: list[str]) -> dict[tuple[str, bool], dict[str, list[str]]]:
    """Lookups of the audio files by path, path without extension, file name and stem, each as
    written (``(kind, False)``) and in lower case (``(kind, True)``)."""
    idx: dict[tuple[str, bool], dict[str, list[str]]] = {}
    for f in files:
        name = f.rsplit("/", 1)[-1]
        for kind, k in (("path", f), ("noext", _drop_ext(f)), ("name", name), ("stem", _drop_ext(name))):
            idx.setdefault((kind, False), {}).setdefault(k, []).append(f)
            idx.setdefault((kind, True), {}).setdefault(k.lower(), []).append(f)
    return idx


def _match(track: str, idx: dict, root: Path) -> tuple[str | None, str]:
    """The file a table value names: ``(relpath, "")``, or ``(None, why)``."""
    t = track
    if PurePosixPath(t).is_absolute() or os.path.isabs(t):
        try:
            t = Path(t).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return None, "outside root"
    kinds = ("path", "noext") if "/" in t else ("path", "noext", "name", "stem")
    for kind, fold in [(k, f) for k in kinds for f in (False, True)]:  # exact case first
        hits = idx.get((kind, fold), {}).get(t.lower() if fold else t, [])
        if len(hits) == 1:
            return hits[0], ""
        if len(hits) > 1:
            return None, (f"ambiguous: {len(hits)} files are named so ({', '.join(hits[:3])}); give the path "
                          "relative to root with its extension")
    if (root / t).is_file():
        return None, (f"not an audio file (extension {Path(t).suffix or 'none'!r}; read: "
                      f"{', '.join(AUDIO_EXTENSIONS)})")
    return None, ""


def load_folder(root: str | os.PathLike, *, labels: str | os.PathLike | None = None, task: str | None = None,
                target_name: str = _NAME, split_list: str | os.PathLike | None = STUDY, seed: int = 0,
                test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load your own target dataset: a folder of audio and a labels table.

    Parameters
    ----------
    root : path-like
        The folder holding the audio files (in any subfolders).
    labels : path-like, optional
        The labels table (CSV or TSV: ``track, label[, split][, group]``); a relative path is
        looked for in ``root`` first, then from the working directory. Default:
        ``<root>/labels.csv`` or ``<root>/labels.tsv``.
    task : str
        ``"classification"`` (metric accuracy) or ``"regression"`` (metric R²). Required.
    target_name : str
        The dataset's name (``TargetDataset.name``), which results tables key on: give each of
        your datasets its own (``"my_moods"``); default ``"folder"``.
    split_list : "study", path-like or None
        There is no study list for your own data: ``"study"`` (default) and None use the table's
        split (or the folds); a path: a list in ``.info`` format (paths relative to ``root``)
        that selects the tracks and fixes their split.
    seed, test_size : int, float
        The fallback 80 / 20 draw where the table gives no split.
    check : str
        File check (:data:`mtdtl.targets.base.CHECK_MODES`).
    progress : bool
        Progress bar while checking many files.

    Returns
    -------
    TargetDataset
        Named ``target_name``; ``track_id`` is the file's path relative to ``root`` without its
        extension (``rock/song1``); ``meta["labels"]`` is the table read.

    Raises
    ------
    MtdtlError
        No task or an unknown one, no labels table, a malformed table (file and line), or a
        table none of whose rows matches an audio file under ``root``.
    """
    if task not in FOLDER_TASKS:
        raise MtdtlError(f"folder: task={task!r}; pass task='classification' or task='regression' (what the "
                         "labels table's label column holds)")
    if (not isinstance(target_name, str) or not target_name.strip() or target_name.strip() in _RESERVED
            or target_name.startswith("demo:")):
        raise MtdtlError(f"folder: target_name={target_name!r}; give your dataset a name of its own "
                         f"(not one of {sorted(_RESERVED)} nor demo:<task>)")
    name = target_name.strip()
    root = require_dir(root, name)
    table_path = _labels_path(root, labels)
    table = read_labels_table(table_path, task=task)
    files = scan_audio(root)
    idx = _index(files)

    skipped: list[SkippedFile] = []
    unmatched: list[UnmatchedRow] = []
    rel_of: list[str | None] = []
    for row in table.itertuples(index=False):
        rel, why = _match(row.track, idx, root)
        rel_of.append(rel)
        if rel is None:
            if why:
                skipped.append(SkippedFile(row.track, why))
            else:
                lab = "" if isinstance(row.label, float) and np.isnan(row.label) else str(row.label)
                unmatched.append(UnmatchedRow(int(row.line), row.track, row.split, lab))
    table["relpath"] = rel_of
    hit = table[table["relpath"].notna()]
    if hit.empty:
        raise _no_rows_matched(table, table_path, root, files, skipped)
    dup = hit["relpath"].duplicated(keep=False)
    if dup.any():
        a, b = hit[dup].head(2).itertuples(index=False)
        raise MtdtlError(f"folder: {table_path}, lines {a.line} and {b.line}: {a.track!r} and {b.track!r} name "
                         f"the same file {a.relpath}; a track has one label")
    if unmatched:
        u = unmatched[0]
        log.warning("folder: %d of %d rows of %s name no audio file under %s (e.g. line %d: %r)",
                    len(unmatched), len(table), table_path, root, u.line, u.path)
    for s in skipped[:3]:
        log.warning("folder: %s: %r: %s", table_path, s.path, s.reason)
    labelled = set(hit["relpath"])
    unlisted = sorted(path_key(f) for f in files if f not in labelled)
    if unlisted:
        log.info("folder: %d audio files under %s have no row in %s and are left out (e.g. %s)",
                 len(unlisted), root, table_path, unlisted[0])

    cand = pd.DataFrame({"track_id": hit["relpath"].map(path_key).to_numpy(), "relpath": hit["relpath"].to_numpy(),
                         "label": hit["label"].to_numpy(), "split": hit["split"].to_numpy(),
                         "group": hit["group"].to_numpy()})
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    has_split = (table["split"] != "").any()
    has_group = (table["group"] != "").any()
    if has_split and (table["split"] == "").any():
        log.warning("folder: %s gives a split for some rows only; the others get a drawn one, so the split is "
                    "not fixed and the repetitions are folds", table_path)
    fallback = SplitSpec(stratify="label" if task == "classification" else None,
                         group="group" if has_group else None, group_name="group" if has_group else "",
                         test_size=test_size, seed=seed)
    sl = None if split_list is None or (isinstance(split_list, str) and split_list == STUDY) else split_list
    ds = finalize(name=name, task=task, root=root, candidates=cand, key_fn=path_key, fallback=fallback,
                  split_list=sl, skipped=skipped, own_split_method=f"dataset (split column of {table_path.name})",
                  meta={"labels": str(table_path), "rows": len(table), "audio_files": len(files)})
    # the table's rows without a file, and the files without a row (finalize knows only the list's)
    extra_unlisted = sorted(set(unlisted) | set(ds.unlisted))
    if not ds.split_fixed and len(ds):
        per = int(ds.tracks["label"].value_counts().max()) if task == "classification" else len(ds) // 5
        if per < 5:
            what = f"largest class {per}" if task == "classification" else "regression"
            log.warning("folder: %d tracks (%s); the protocol's 5 stratified folds need a class with 5 tracks or "
                        "more (regression: 25 tracks or more); add tracks or give a split column", len(ds), what)
    return replace(ds, unmatched=unmatched + list(ds.unmatched), unlisted=extra_unlisted)


def _no_rows_matched(table: pd.DataFrame, table_path: Path, root: Path, files: list[str],
                     skipped: list[SkippedFile]) -> MtdtlError:
    r = table.iloc[0]
    there = (f"the folder holds {files[0]!r} (one of {len(files)} audio files)" if files
             else f"no audio file ({', '.join(AUDIO_EXTENSIONS)}) was found there")
    problem = f" ({len(skipped)} rows could not be used, e.g. {skipped[0].path!r}: {skipped[0].reason})" \
        if skipped else ""
    return MtdtlError(
        f"folder: no row of the labels table {table_path} matches an audio file under {root}: e.g. line "
        f"{int(r['line'])} names {r['track']!r}; {there}{problem}. The track column holds each file's path "
        "relative to "
        "root (rock/song1.mp3, with or without the extension) or its file name or stem (song1); check that "
        "root is the audio folder and the table's paths are relative to it.")
