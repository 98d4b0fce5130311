"""The tidy results table: one row per (representation, target, repetition, metric).

Every evaluation in :mod:`mtdtl.evaluation` returns a list of flat dicts (metric -> float, plus
an optional ``split`` description), one per repetition. :func:`tidy_rows` turns such a list into
rows of one long table with the columns :data:`COLUMNS`::

    run, representation, kind, arch, sources, n_sources, seed, epochs, precision,
    target, task, repetition, split, metric, value, protocol

- identity (from :class:`mtdtl.runs.RunSpec.identity_columns` for a trained run, or the
  baseline's own): ``run`` (the training run id; a baseline's own id), ``representation``
  (display id), ``kind`` (``learned``, ``mfcc``, ``rand``, ``choi``), ``arch`` (``ss_r``,
  ``ms_cr@6``, ...; empty for MFCC and Choi), ``sources`` ("+"-joined in ``SOURCE_NAMES``
  order), ``n_sources`` (0 for baselines without sources), ``seed`` and ``epochs`` (empty
  where they do not apply), ``precision`` (the precision a trained representation was trained
  in, ``fp32``/``bf16``/``mixed``, from its ``model.json``; empty for baselines);
- what was evaluated: ``target``, ``task`` (classification / regression / recommendation),
  ``repetition`` (from 0), ``split`` (which split that repetition used, e.g.
  ``"list:gtzan-filtered"`` or ``"fold 3/5 stratified"``), ``metric``, ``value``;
- ``protocol``: the id of the evaluation protocol (:mod:`mtdtl.evaluation.protocol`), so rows
  made under other options are never mixed silently.

:class:`ResultsTable` is an append-only CSV file. One file per run
(``<run folder>/evaluate/results.csv``) keeps files small and writers apart; :func:`collect`
concatenates the files of a sweep into one table. Appends write only the new rows (``O(rows
appended)``, never a rewrite of the file), under an exclusive lock (``fcntl.flock`` on
``<file>.lock``), with one ``write`` and an ``fsync``: concurrent writers never lose or
duplicate rows. A row whose key (:data:`KEY`) is already in the file is skipped (a warning when
its value differs), so re-running an evaluation is harmless and :meth:`ResultsTable.has` lets
callers skip finished work. A damaged file (a line cut by a crash, a wrong field count, a
non-numeric value) is a clear error naming the file and the line. A last line cut by a crash
holds rows whose write did not finish (they are not in the table and are evaluated again):
reading ignores it with a warning, and the next append moves it to ``<file>.torn``, starts on a
new line and says so.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.runs import sources_key

__all__ = ["COLUMNS", "KEY", "sources_key", "tidy_rows", "average_repetitions", "summarize",
           "ResultsTable", "collect", "read_results", "RESULTS_NAME"]

log = get_logger(__name__)

#: File name of a run's results (``<run>/evaluate/results.csv``).
RESULTS_NAME = "results.csv"

#: Columns of every results table, in order.
COLUMNS = ("run", "representation", "kind", "arch", "sources", "n_sources", "seed", "epochs", "precision",
           "target", "task", "repetition", "split", "metric", "value", "protocol")
#: Columns that identify a row (a second row with the same key is a duplicate).
KEY = ("run", "representation", "target", "repetition", "metric", "protocol")
_STR_COLS = ("run", "representation", "kind", "arch", "sources", "precision", "target", "task", "split", "metric",
             "protocol")
_INT_COLS = ("n_sources", "seed", "epochs", "repetition")
_KINDS = ("learned", "mfcc", "rand", "choi", "chance", "other")


def _default_protocol() -> str:
    from mtdtl.evaluation.protocol import PROTOCOL

    return PROTOCOL


def tidy_rows(evaluations: Sequence[Mapping[str, float]], *, target: str, representation: str | None = None,
              arch: str = "", sources: str | Iterable[str] | None = "", run: str | None = None,
              kind: str | None = None, seed: int | None = None, epochs: int | None = None,
              precision: str = "", task: str = "", protocol: str | None = None, first_repetition: int = 0,
              identity: Mapping | None = None) -> pd.DataFrame:
    """Rows of the results table from a list of per-repetition metric dicts.

    Parameters
    ----------
    evaluations : list of dict
        One flat dict metric -> float per repetition (what ``evaluate_probe`` and
        ``evaluate_recommendation`` return); a ``"split"`` entry (text) goes to the ``split``
        column; a single dict counts as one repetition.
    representation : str
        Representation id (a run id, or a baseline's name).
    target : str
        Target dataset / task name.
    arch, sources, run, kind, seed, epochs :
        Identity columns; ``identity`` (e.g. :meth:`mtdtl.runs.RunSpec.identity_columns`)
        gives them all at once and wins. ``run`` defaults to ``representation``, ``kind`` to
        ``"learned"`` when ``arch`` is given, else ``"other"``.
    task : str
        classification, regression or recommendation.
    protocol : str, optional
        Protocol id (default: :data:`mtdtl.evaluation.protocol.PROTOCOL`, the paper's).
    first_repetition : int
        Repetition number of the first dict.

    Returns
    -------
    pd.DataFrame
        Columns :data:`COLUMNS`, one row per (repetition, metric).
    """
    if isinstance(evaluations, Mapping):
        evaluations = [evaluations]
    ident = {"run": run, "representation": representation, "kind": kind, "arch": arch, "sources": sources,
             "seed": seed, "epochs": epochs, "precision": precision}
    if identity:
        unknown = sorted(set(identity) - set(COLUMNS))
        if unknown:
            raise MtdtlError(f"identity has columns {unknown} that are not results columns")
        ident.update(identity)
    if not ident["representation"] or not target:
        raise MtdtlError("rows of the results table need a representation id and a target name")
    src = sources_key(ident["sources"])
    n_src = ident.get("n_sources")
    n_src = len(src.split("+")) if src else 0 if n_src is None else n_src
    kind = ident["kind"] or ("learned" if ident["arch"] else "other")
    if kind not in _KINDS:
        raise MtdtlError(f"kind {kind!r} unknown; valid: {', '.join(_KINDS)}")
    base = {"run": str(ident["run"] or ident["representation"]), "representation": str(ident["representation"]),
            "kind": kind, "arch": str(ident["arch"] or ""), "sources": src, "n_sources": int(n_src),
            "seed": ident["seed"], "epochs": ident["epochs"], "precision": str(ident["precision"] or ""),
            "target": str(target), "task": str(task or ""),
            "protocol": str(protocol or _default_protocol())}
    rows = []
    for j, ev in enumerate(evaluations):
        if not isinstance(ev, Mapping):
            raise MtdtlError(f"evaluation {j} is a {type(ev).__name__}, not a dict metric -> float")
        split = str(ev.get("split", "") or "")
        for metric, value in ev.items():
            if metric == "split":
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise MtdtlError(f"metric {metric!r} of repetition {j} is not a number: {value!r}") from None
            rows.append({**base, "repetition": first_repetition + j, "split": split, "metric": str(metric),
                         "value": value})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("seed", "epochs"):
        df[c] = pd.array(df[c].tolist(), dtype="Int64") if len(df) else pd.array([], dtype="Int64")
    return df


def average_repetitions(evaluations: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every metric over repetitions (the paper's reported score)."""
    if isinstance(evaluations, Mapping):
        return {k: float(v) for k, v in evaluations.items() if k != "split"}
    if not evaluations:
        raise MtdtlError("no repetitions to average")
    keys = [k for k in evaluations[0] if k != "split"]
    return {k: float(np.mean([float(ev[k]) for ev in evaluations])) for k in keys}


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over repetitions.

    Returns
    -------
    pd.DataFrame
        One row per (run, representation, kind, arch, sources, target, metric, protocol) with
        ``mean, std, n``.
    """
    group = [c for c in ("run", "representation", "kind", "arch", "sources", "target", "metric", "protocol")
             if c in table.columns]
    return (table.groupby(group, sort=False, dropna=False)["value"]
            .agg(mean="mean", std="std", n="count").reset_index())


def _empty() -> pd.DataFrame:
    dt = {c: (float if c == "value" else "Int64" if c in _INT_COLS else object) for c in COLUMNS}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dt.items()})


def _coerce(df: pd.DataFrame, *, where: str, line_of=None) -> pd.DataFrame:
    """Column types of a results table; a bad value is an error naming ``where`` and the line."""
    for c in _STR_COLS:
        df[c] = df[c].fillna("").astype(str)
    for c in _INT_COLS + ("value",):
        num = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
        bad = num.isna() & df[c].notna() & (df[c].astype(str) != "")
        if c in ("repetition", "value"):
            bad |= num.isna()
        if c in _INT_COLS:
            bad |= num.notna() & (num != np.round(num))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            line = line_of(i) if line_of else i
            raise MtdtlError(f"{where}: bad {c} value {df[c].iloc[i]!r} on line {line}; fix or remove that line")
        df[c] = num.astype(float) if c == "value" else pd.array(num.round().tolist(), dtype="Int64")
    return df


class ResultsTable:
    """An append-only results table on disk (CSV).

    Parameters
    ----------
    path : str or PathLike
        The table file; created (with its header) on the first append.

    Examples
    --------
    >>> table = ResultsTable(run_dir / "evaluate" / "results.csv")       # doctest: +SKIP
    >>> table.append(tidy_rows(evals, identity=spec.identity_columns(), target="gtzan"))  # doctest: +SKIP
    >>> table.read()                                                    # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.suffix != ".csv":
            raise MtdtlError(f"results tables are CSV files; got {self.path} (use a .csv name)")
        if self.path.is_dir():
            raise MtdtlError(f"{self.path} is a folder, not a results file")

    def __repr__(self) -> str:
        return f"ResultsTable({str(self.path)!r})"

    # -- reading ------------------------------------------------------------------------------

    def _parse(self, text: str) -> pd.DataFrame:
        where = str(self.path)
        if not text.strip():
            return _empty()
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except csv.Error as exc:
            raise MtdtlError(f"{where}: unreadable header ({exc})") from None
        if tuple(header) != COLUMNS:
            missing = [c for c in COLUMNS if c not in header]
            raise MtdtlError(f"{where} has the columns {header}, not a results table of this mtdtl version "
                             f"(missing: {missing}); move it aside and evaluate again")
        rows, lines = [], []
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(COLUMNS):
                    raise MtdtlError(f"{where}: line {reader.line_num} has {len(row)} fields, expected "
                                     f"{len(COLUMNS)} (a line cut by a crash?); delete that line and run again")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise MtdtlError(f"{where}: line {reader.line_num} is damaged ({exc}); delete it and run again") from None
        df = pd.DataFrame(rows, columns=list(COLUMNS), dtype=object)
        return _coerce(df, where=where, line_of=lambda i: lines[i])

    def read(self) -> pd.DataFrame:
        """The whole table (empty, with the standard columns, when the file does not exist).

        A last line cut by a crash (no newline at the end and a wrong field count) is ignored
        with a warning; any other damage is an :class:`MtdtlError` naming the line.
        """
        if not self.path.exists():
            return _empty()
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MtdtlError(f"cannot read the results table {self.path}: {exc}") from None
        text, torn = _drop_torn_tail(text)
        if torn:
            log.warning("%s: its last line was cut (%r...) and is ignored", self.path, torn[:60])
        return self._parse(text)

    def has(self, **where) -> bool:
        """Whether any row matches all ``column=value`` conditions (e.g. representation, target)."""
        df = self.read()
        if df.empty:
            return False
        mask = np.ones(len(df), dtype=bool)
        for col, val in where.items():
            if col not in df.columns:
                return False
            if col == "sources":
                val = sources_key(val)
            mask &= (df[col].astype(str) == str(val)).to_numpy()
        return bool(mask.any())

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: no cross-process lock
                fcntl = None
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def append(self, rows: pd.DataFrame | Sequence[Mapping]) -> int:
        """Add the rows whose key is not in the table yet; return how many were added.

        Parameters
        ----------
        rows : pd.DataFrame or list of dict
            Rows with the columns :data:`COLUMNS` (e.g. from :func:`tidy_rows`).

        Raises
        ------
        MtdtlError
            Missing columns, non-numeric or missing values, duplicate keys within ``rows``, a
            damaged file, a full disk (nothing is written then).
        """
        new = pd.DataFrame(rows).copy()
        missing = [c for c in COLUMNS if c not in new.columns]
        if missing:
            raise MtdtlError(f"rows lack the columns {missing}; build them with tidy_rows()")
        if new.empty:
            return 0
        new = _coerce(new[list(COLUMNS)].copy(), where="rows to append")
        dup = new.duplicated(list(KEY))
        if dup.any():
            raise MtdtlError(f"{int(dup.sum())} rows repeat a key within the same append: "
                             f"{new.loc[dup, list(KEY)].iloc[0].to_dict()}")
        with self._locked():
            text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            text_ok, torn = _drop_torn_tail(text)
            old = self._parse(text_ok)
            added = new
            if not old.empty:
                key_old = set(map(tuple, old[list(KEY)].astype(str).to_numpy()))
                val_old = dict(zip(map(tuple, old[list(KEY)].astype(str).to_numpy()), old["value"].to_numpy()))
                keys_new = list(map(tuple, new[list(KEY)].astype(str).to_numpy()))
                present = np.array([k in key_old for k in keys_new])
                changed = [k for k, v in zip(keys_new, new["value"].to_numpy())
                           if k in key_old and not np.isclose(v, val_old[k], rtol=1e-9, atol=0, equal_nan=True)]
                if changed:
                    log.warning("%d rows already in %s with another value were not overwritten (e.g. %s)",
                                len(changed), self.path, dict(zip(KEY, changed[0])))
                added = new.loc[~present]
                if added.empty:
                    return 0
            buf = io.StringIO()
            if not text.strip():
                added.to_csv(buf, index=False, lineterminator="\n")
                mode, prefix = "w", ""
            else:
                added.to_csv(buf, index=False, header=False, lineterminator="\n")
                mode = "a"
                prefix = "" if text_ok.endswith("\n") else "\n"
                if torn:  # rows whose write a crash cut: not in the table; kept aside, never parsed
                    aside = self.path.with_name(self.path.name + ".torn")
                    with open(aside, "a", encoding="utf-8") as fh:
                        fh.write(torn + "\n")
                    with open(self.path, "r+b") as fh:
                        fh.truncate(len(text_ok.encode("utf-8")) if text_ok.endswith("\n") else len(text.encode("utf-8")))
                    log.warning("%s: its last line was cut by an earlier crash (%r...); it was moved to %s and "
                                "the new rows start on a new line", self.path, torn[:60], aside.name)
                    prefix = ""
            data = (prefix + buf.getvalue()).encode("utf-8")
            if mode == "w":
                from mtdtl.io import atomic_write_bytes

                atomic_write_bytes(self.path, data)
            else:
                _append_bytes(self.path, data)
        return int(len(added))

    def to_csv_string(self) -> str:
        """The table as CSV text (handy for printing)."""
        buf = io.StringIO()
        self.read().to_csv(buf, index=False)
        return buf.getvalue()


def _drop_torn_tail(text: str) -> tuple[str, str]:
    """``(text without a cut last line, the cut line)``: a last line without a newline whose
    field count is wrong was cut by a crash."""
    if not text or text.endswith("\n"):
        return text, ""
    head, _, last = text.rpartition("\n")
    try:
        fields = next(csv.reader([last]))
    except (csv.Error, StopIteration):
        fields = []
    if len(fields) == len(COLUMNS) and head:
        return text + "\n", ""  # a complete line that only lacks its newline
    return (head + "\n") if head else "", last


def _append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` with one ``write`` and an ``fsync``; on a full disk, truncate back."""
    import errno

    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise MtdtlError(f"no space left on the device while appending to {path}; free some space "
                                 "and run again (the file was left as it was)") from e
            raise
    finally:
        os.close(fd)


def read_results(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """One results table from a DataFrame, a results CSV, or a folder (every ``results.csv`` under it)."""
    if isinstance(source, pd.DataFrame):
        return source
    p = Path(source)
    if p.is_dir():
        return collect(p)
    if not p.is_file():
        raise MtdtlError(f"no results at {p}: give a results .csv or a folder of run folders")
    return ResultsTable(p).read()


def collect(folder: str | os.PathLike, *, out: str | os.PathLike | None = None,
            pattern: str = f"**/{RESULTS_NAME}", files: Iterable[str | os.PathLike] | None = None) -> pd.DataFrame:
    """Concatenate every results file under ``folder`` (e.g. a sweep's run folders) into one table.

    Rows with the same key in two files are an error (two runs claiming the same evaluation);
    ``out`` (a ``.csv``) receives the table atomically. ``files``: only these results files
    (those that exist), instead of every file under ``folder`` matching ``pattern``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MtdtlError(f"collect: {folder} is not a folder")
    found = folder.glob(pattern) if files is None else (Path(f) for f in files)
    files = sorted(f for f in found if f.is_file() and (out is None or f.resolve() != Path(out).resolve()))
    frames = [ResultsTable(f).read() for f in files]
    frames = [f for f in frames if not f.empty]
    df = pd.concat(frames, ignore_index=True) if frames else _empty()
    # the same baseline (e.g. mfcc, or Rand with the same scaler) evaluated in several run folders:
    # identical rows are kept once; the same key with different values is an error
    same = df.duplicated(list(KEY) + ["value"])
    if same.any():
        log.info("collect: %d rows repeated in several files (shared baselines) kept once", int(same.sum()))
        df = df.loc[~same].reset_index(drop=True)
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        first = df.loc[dup, list(KEY)].iloc[0].to_dict()
        raise MtdtlError(f"collect: {int(dup.sum())} rows of {folder} share a key across files with different "
                         f"values (e.g. {first}): two evaluations claim the same result")
    if out is not None:
        from mtdtl.io import atomic_write_text

        atomic_write_text(out, df.to_csv(index=False, lineterminator="\n"))
    log.info("collected %d rows from %d results files under %s", len(df), len(files), folder)
    return df
