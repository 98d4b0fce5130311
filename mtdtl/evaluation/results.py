"""The tidy results table: one row per (representation, target, repetition, metric).

Every evaluation in :mod:`mtdtl.evaluation` returns a list of flat dicts (metric -> float), one
per repetition. :func:`tidy_rows` turns such a list into rows of one long table with the
columns

``representation, arch, sources, target, repetition, metric, value``

(plus any extra columns, e.g. ``seed`` or ``run_id``), and :class:`ResultsTable` appends rows
to a CSV (or parquet) file that the analysis reads:

- appends are atomic (the whole file is rewritten to a temporary name in the same folder and
  moved into place with ``os.replace``) and serialised across processes by a lock file
  (``<file>.lock``, ``fcntl.flock`` where available);
- existing rows are never overwritten: a row whose key (every column but ``value`` and the
  extras) is already in the table is skipped (with a warning when its value differs), so
  re-running an evaluation is harmless and :meth:`ResultsTable.has` lets callers skip finished
  work.

Conventions: ``sources`` is a "+"-joined list in the released code's source order
(``SOURCE_NAMES``, e.g. ``"bpm+tag"``; :func:`sources_key`); baselines use an empty ``arch``
and ``sources`` where they have none (e.g. ``representation="mfcc"``). ``repetition`` counts
from 0.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["COLUMNS", "KEY", "sources_key", "tidy_rows", "average_repetitions", "summarize",
           "ResultsTable"]

log = get_logger(__name__)

#: Columns of every results table, in order.
COLUMNS = ("representation", "arch", "sources", "target", "repetition", "metric", "value")
#: Columns that identify a row (a second row with the same key is a duplicate).
KEY = ("representation", "arch", "sources", "target", "repetition", "metric")
_STR_COLS = ("representation", "arch", "sources", "target", "metric")


def sources_key(sources: str | Iterable[str] | None) -> str:
    """Canonical text of a set of learning sources: "+"-joined in ``SOURCE_NAMES`` order.

    >>> sources_key(["tag", "bpm"])
    'bpm+tag'
    """
    if sources is None:
        return ""
    if isinstance(sources, str):
        parts = [s.strip() for s in sources.replace(",", "+").split("+") if s.strip()]
    else:
        parts = [str(s).strip() for s in sources]
    order = {name: i for i, name in enumerate(SOURCE_NAMES)}
    unknown = [p for p in parts if p not in order]
    if unknown:
        raise MtdtlError(f"unknown learning sources {unknown}; known: {', '.join(SOURCE_NAMES)}")
    return "+".join(sorted(set(parts), key=order.__getitem__))


def tidy_rows(evaluations: Sequence[Mapping[str, float]], *, representation: str, target: str,
              arch: str = "", sources: str | Iterable[str] | None = "", first_repetition: int = 0,
              **extras) -> pd.DataFrame:
    """Rows of the results table from a list of per-repetition metric dicts.

    Parameters
    ----------
    evaluations : list of dict
        One flat dict metric -> float per repetition (what ``evaluate_probe`` and
        ``evaluate_recommendation`` return); a single dict counts as one repetition.
    representation : str
        Representation id (a run id or checkpoint hash, or a baseline name).
    target : str
        Target dataset / task name.
    arch : str
        Architecture id (``ss_r``, ``ms_cr@6``, ...; empty for MFCC and Choi).
    sources : str or iterable of str
        Learning sources (canonicalised by :func:`sources_key`).
    first_repetition : int
        Repetition number of the first dict.
    **extras
        Constant extra columns (e.g. ``seed=0``, ``run_id="..."``).

    Returns
    -------
    pd.DataFrame
        Columns ``COLUMNS`` then the extras, one row per (repetition, metric).
    """
    if isinstance(evaluations, Mapping):
        evaluations = [evaluations]
    if not representation or not target:
        raise MtdtlError("rows of the results table need a representation id and a target name")
    clash = sorted(set(extras) & set(COLUMNS))
    if clash:
        raise MtdtlError(f"extra columns {clash} clash with the table's own columns")
    src = sources_key(sources)
    rows = []
    for j, ev in enumerate(evaluations):
        if not isinstance(ev, Mapping):
            raise MtdtlError(f"evaluation {j} is a {type(ev).__name__}, not a dict metric -> float")
        for metric, value in ev.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise MtdtlError(f"metric {metric!r} of repetition {j} is not a number: {value!r}") from None
            rows.append({"representation": str(representation), "arch": str(arch or ""),
                         "sources": src, "target": str(target),
                         "repetition": first_repetition + j, "metric": str(metric),
                         "value": value, **extras})
    return pd.DataFrame(rows, columns=list(COLUMNS) + list(extras))


def average_repetitions(evaluations: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every metric over repetitions (the paper's reported score)."""
    if isinstance(evaluations, Mapping):
        return {k: float(v) for k, v in evaluations.items()}
    if not evaluations:
        raise MtdtlError("no repetitions to average")
    keys = list(evaluations[0])
    return {k: float(np.mean([float(ev[k]) for ev in evaluations])) for k in keys}


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over repetitions.

    Returns
    -------
    pd.DataFrame
        One row per (representation, arch, sources, target, metric) with ``mean, std, n``.
    """
    group = [c for c in KEY if c != "repetition"]
    out = (table.groupby(group, sort=False, dropna=False)["value"]
           .agg(mean="mean", std="std", n="count").reset_index())
    return out


class ResultsTable:
    """An append-only results table on disk (CSV, or parquet when the path ends in ``.parquet``).

    Parameters
    ----------
    path : str or PathLike
        The table file; created on the first append.

    Examples
    --------
    >>> table = ResultsTable(tmp_path / "results.csv")                  # doctest: +SKIP
    >>> table.append(tidy_rows(evals, representation="run1", target="gtzan"))  # doctest: +SKIP
    >>> table.read()                                                   # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._parquet = self.path.suffix == ".parquet"

    def __repr__(self) -> str:
        return f"ResultsTable({str(self.path)!r})"

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> pd.DataFrame:
        """The whole table (empty, with the standard columns, when the file does not exist)."""
        if not self.path.exists():
            return pd.DataFrame({c: pd.Series(dtype=float if c == "value" else
                                              (np.int64 if c == "repetition" else object))
                                 for c in COLUMNS})
        try:
            if self._parquet:
                df = pd.read_parquet(self.path)
            else:
                df = pd.read_csv(self.path, dtype={c: str for c in _STR_COLS},
                                 keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
        except ImportError as exc:
            raise MtdtlError(f"reading {self.path} needs a parquet engine (pip install pyarrow): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a corrupt file must say which file
            raise MtdtlError(f"cannot read the results table {self.path}: {exc}") from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise MtdtlError(f"{self.path} lacks the columns {missing}: is it a results table?")
        df["repetition"] = df["repetition"].astype(np.int64)
        df["value"] = df["value"].astype(float)
        return df

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

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: no cross-process lock
                pass
            try:
                yield
            finally:
                try:
                    import fcntl

                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                except ImportError:  # pragma: no cover
                    pass

    def _write(self, df: pd.DataFrame) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            if self._parquet:
                try:
                    df.to_parquet(tmp, index=False)
                except ImportError as exc:
                    raise MtdtlError(f"writing {self.path} needs a parquet engine (pip install "
                                     f"pyarrow), or use a .csv path: {exc}") from None
            else:
                df.to_csv(tmp, index=False)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def append(self, rows: pd.DataFrame | Sequence[Mapping]) -> int:
        """Add rows whose key is not in the table yet; return how many were added.

        Parameters
        ----------
        rows : pd.DataFrame or list of dict
            Rows with at least the columns ``COLUMNS`` (e.g. from :func:`tidy_rows`).

        Raises
        ------
        MtdtlError
            Missing columns, non-numeric or missing values, duplicate keys within ``rows``.
        """
        new = pd.DataFrame(rows).copy()
        missing = [c for c in COLUMNS if c not in new.columns]
        if missing:
            raise MtdtlError(f"rows lack the columns {missing}; build them with tidy_rows()")
        if new.empty:
            return 0
        for c in _STR_COLS:
            new[c] = new[c].fillna("").astype(str)
        new["repetition"] = pd.to_numeric(new["repetition"], errors="raise").astype(np.int64)
        new["value"] = pd.to_numeric(new["value"], errors="coerce").astype(float)
        if new["value"].isna().any():
            raise MtdtlError(f"{int(new['value'].isna().sum())} rows have no numeric value")
        dup = new.duplicated(list(KEY))
        if dup.any():
            raise MtdtlError(f"{int(dup.sum())} rows repeat a key within the same append: "
                             f"{new.loc[dup, list(KEY)].iloc[0].to_dict()}")
        with self._locked():
            old = self.read()
            if old.empty:
                combined, added = new, new
            else:
                merged = new.merge(old[list(KEY) + ["value"]], on=list(KEY), how="left",
                                   suffixes=("", "_old"), indicator=True)
                present = (merged["_merge"] == "both").to_numpy()
                changed = present & ~np.isclose(merged["value"].to_numpy(),
                                                merged["value_old"].to_numpy(), rtol=1e-9, atol=0,
                                                equal_nan=True)
                if changed.any():
                    first = merged.loc[changed, list(KEY)].iloc[0].to_dict()
                    log.warning("%d rows already in %s with another value were not overwritten "
                                "(e.g. %s)", int(changed.sum()), self.path, first)
                added = new.loc[~present]
                if added.empty:
                    return 0
                combined = pd.concat([old, added], ignore_index=True, sort=False)
            cols = list(COLUMNS) + [c for c in combined.columns if c not in COLUMNS]
            self._write(combined[cols])
        return int(len(added))

    def to_csv_string(self) -> str:
        """The table as CSV text (handy for printing)."""
        buf = io.StringIO()
        self.read().to_csv(buf, index=False)
        return buf.getvalue()
