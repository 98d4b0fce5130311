"""Reduced learning labels: the z_t of every learning source (Section 2.3).

After preprocessing, every learning source *t* is a table that gives each of its tracks a
k-dimensional categorical distribution z_t (pLSA topic mixture or GMM posterior, k = 50 in the
paper), or, for ``self``, only the list of tracks (same-track pairs are drawn at training time).
:class:`ReducedLabels` holds that table for one source, together with the tracks that lack the
source (``missing``, each with a reason), the top terms per topic (the paper's Table 2) and
free-form metadata.

On disk, one source is one ``.npz`` file (``<store>/labels/<name>.npz``) written atomically and
read with ``allow_pickle=False``: strings are stored as fixed-width unicode arrays, the topic
table and the metadata as JSON strings.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import K, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_bytes
from mtdtl.log import get_logger

__all__ = ["ReducedLabels", "Source", "load_reduced", "labels_dir", "atomic_write_bytes"]

log = get_logger(__name__)

#: Tolerance on ``z.sum(axis=1) == 1`` (float32 arithmetic).
ROW_SUM_ATOL = 1e-3
#: Format version written into every file.
FORMAT_VERSION = 1


def labels_dir(store_dir: str | os.PathLike) -> Path:
    """Folder of the reduced labels of a store: ``<store_dir>/labels``."""
    return Path(store_dir) / "labels"




def _str_array(values) -> np.ndarray:
    """Unicode array (never object dtype, so ``allow_pickle=False`` can read it back)."""
    arr = np.asarray([str(v) for v in values], dtype=str)
    if arr.size == 0:
        arr = np.zeros(0, dtype="<U1")
    return arr


@dataclass
class ReducedLabels:
    """The reduced labels z_t of one learning source.

    Parameters
    ----------
    name : str
        Source name (``"tag"``, ``"bpm"``, ...).
    track_ids : np.ndarray [shape=(n,)] str
        Tracks that have the source, unique, in the row order of ``z``.
    z : np.ndarray [shape=(n, k)] float32
        One categorical distribution per track (rows sum to 1). ``k = 0`` for ``self``.
    missing : list of str
        Tracks of the corpus (learning part) that lack the source, or whose raw labels were
        unusable (e.g. all-zero counts). They never appear in ``track_ids``.
    topics : pandas.DataFrame or None
        Top terms per topic (one row per topic: ``topic``, ``terms`` and ``weights``, see
        :func:`mtdtl.sources.plsa.PLSA.topic_terms`), or component parameters for GMM sources.
    meta : dict
        JSON-serialisable details (method, k, seed, iterations, log-likelihood, ...).
    missing_reasons : dict of str to str
        Why each missing track is missing (``"no labels"``, ``"all-zero counts"``, ...).
    """

    name: str
    track_ids: np.ndarray
    z: np.ndarray
    missing: list[str] = field(default_factory=list)
    topics: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    missing_reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.track_ids = _str_array(self.track_ids)
        z = np.asarray(self.z, dtype=np.float32)
        if z.ndim == 1 and z.size == 0:
            z = z.reshape(len(self.track_ids), 0)
        if z.ndim != 2 or z.shape[0] != len(self.track_ids):
            raise MtdtlError(
                f"source {self.name!r}: z has shape {z.shape}, expected ({len(self.track_ids)}, k)"
            )
        self.z = np.ascontiguousarray(z)
        self.missing = [str(t) for t in self.missing]
        self.missing_reasons = {str(k): str(v) for k, v in self.missing_reasons.items()}
        for t in self.missing:
            self.missing_reasons.setdefault(t, "no labels")
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`MtdtlError` unless the table is consistent."""
        n = len(self.track_ids)
        if len(np.unique(self.track_ids)) != n:
            raise MtdtlError(f"source {self.name!r}: duplicated track ids in ReducedLabels")
        if self.k > 0 and n > 0:
            if not np.all(np.isfinite(self.z)) or (self.z < 0).any():
                raise MtdtlError(f"source {self.name!r}: z holds NaN, inf or negative values")
            sums = self.z.sum(axis=1, dtype=np.float64)
            bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_ATOL)
            if bad.size:
                raise MtdtlError(
                    f"source {self.name!r}: rows of z must sum to 1; track {self.track_ids[bad[0]]} "
                    f"sums to {sums[bad[0]]:.6f} ({bad.size} rows off)"
                )
        overlap = set(self.missing) & set(self.track_ids.tolist())
        if overlap:
            raise MtdtlError(
                f"source {self.name!r}: {len(overlap)} tracks are both present and missing, "
                f"e.g. {sorted(overlap)[0]}"
            )

    # ------------------------------------------------------------------ access
    @property
    def k(self) -> int:
        """Number of latent factors (0 for ``self``)."""
        return int(self.z.shape[1])

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def index(self) -> dict[str, int]:
        """Track id → row of ``z``."""
        idx = self.__dict__.get("_index")
        if idx is None or len(idx) != len(self.track_ids):
            idx = {t: i for i, t in enumerate(self.track_ids.tolist())}
            self.__dict__["_index"] = idx
        return idx

    def has(self, track_ids) -> np.ndarray:
        """Boolean mask [shape=(len(track_ids),)]: which of ``track_ids`` have this source."""
        idx = self.index
        return np.fromiter((str(t) in idx for t in track_ids), dtype=bool, count=len(track_ids))

    def rows(self, track_ids) -> np.ndarray:
        """z rows [shape=(len(track_ids), k)] for tracks that all have the source."""
        idx = self.index
        try:
            pos = [idx[str(t)] for t in track_ids]
        except KeyError as err:
            raise MtdtlError(f"source {self.name!r} has no labels for track {err.args[0]}") from None
        return self.z[np.asarray(pos, dtype=np.int64)]

    def coverage(self) -> dict:
        """Counts for a coverage table: present, missing, fraction present."""
        n_p, n_m = len(self.track_ids), len(self.missing)
        return {
            "source": self.name,
            "k": self.k,
            "present": n_p,
            "missing": n_m,
            "coverage": n_p / (n_p + n_m) if n_p + n_m else float("nan"),
        }

    # ------------------------------------------------------------------ I/O
    def to_bytes(self) -> bytes:
        """The ``.npz`` bytes of this table (see the module docstring for the layout)."""
        topics_json = "" if self.topics is None else _frame_to_json(self.topics)
        miss = list(self.missing)
        arrays = {
            "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
            "name": np.asarray(self.name, dtype=str),
            "track_ids": self.track_ids,
            "z": self.z,
            "missing": _str_array(miss),
            "missing_reasons": _str_array([self.missing_reasons.get(t, "") for t in miss]),
            "topics_json": np.asarray(topics_json, dtype=str),
            "meta_json": np.asarray(json.dumps(self.meta, sort_keys=True, default=_json_default), dtype=str),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table to ``path`` (``.npz``) atomically; returns the path."""
        path = Path(path)
        atomic_write_bytes(path, self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReducedLabels":
        """Read a table written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise MtdtlError(f"no reduced labels at {path}: run mtdtl.preprocess.preprocess_corpus first")
        try:
            with np.load(path, allow_pickle=False) as f:
                name = str(f["name"][()])
                track_ids = f["track_ids"]
                z = f["z"]
                missing = f["missing"].tolist()
                reasons = f["missing_reasons"].tolist()
                topics_json = str(f["topics_json"][()])
                meta = json.loads(str(f["meta_json"][()]))
        except MtdtlError:
            raise
        except Exception as err:  # zipfile / KeyError / ValueError: a broken or foreign file
            raise MtdtlError(f"{path} is not a readable reduced-labels file ({err}); delete it and rerun") from err
        topics = None
        if topics_json:
            topics = _frame_from_json(topics_json)
        return cls(
            name=name,
            track_ids=track_ids,
            z=z,
            missing=missing,
            topics=topics,
            meta=meta,
            missing_reasons=dict(zip(missing, reasons)),
        )


def _frame_to_json(df: pd.DataFrame) -> str:
    """A small DataFrame as JSON with its column dtypes (read back by :func:`_frame_from_json`)."""
    return json.dumps({
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "data": df.to_numpy(dtype=object).tolist(),
    }, default=_json_default)


def _frame_from_json(text: str) -> pd.DataFrame:
    obj = json.loads(text)
    df = pd.DataFrame(obj["data"], columns=obj["columns"])
    for col, dtype in zip(obj["columns"], obj["dtypes"]):
        try:
            df[col] = df[col].astype(dtype)
        except (TypeError, ValueError):
            pass
    return df


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_reduced(store_dir: str | os.PathLike, sources=None) -> dict[str, ReducedLabels]:
    """Read every ``<store_dir>/labels/<name>.npz``.

    Parameters
    ----------
    store_dir : path
        A spectrogram store folder written by :func:`mtdtl.preprocess.preprocess_corpus`.
    sources : iterable of str, optional
        Only these sources (error if one is absent). Default: all that are there.

    Returns
    -------
    dict of str to ReducedLabels
        In the order of :data:`mtdtl.constants.SOURCE_NAMES`, then any other sources by name.
    """
    folder = labels_dir(store_dir)
    if not folder.is_dir():
        raise MtdtlError(
            f"no reduced labels in {folder}: run mtdtl.preprocess.preprocess_corpus on the corpus first"
        )
    found = {p.stem: p for p in folder.glob("*.npz") if not p.name.startswith(".")}
    if sources is None:
        names = [s for s in SOURCE_NAMES if s in found] + sorted(set(found) - set(SOURCE_NAMES))
    else:
        names = list(sources)
        absent = [s for s in names if s not in found]
        if absent:
            raise MtdtlError(
                f"sources {absent} have no reduced labels in {folder} (present: {sorted(found)}); "
                "run mtdtl.preprocess.preprocess_corpus with those sources"
            )
    return {name: ReducedLabels.load(found[name]) for name in names}


class Source:
    """A learning source: raw label tables → :class:`ReducedLabels` (Section 2.3).

    Subclasses set ``name``, ``kind`` (``"pairs"``, ``"gmm"`` or ``"plsa"``) and ``inputs`` (the
    raw label tables they read, named as the corpus' ``labels/<input>.csv`` files) and implement
    :meth:`fit` and :meth:`transform`.

    ``raw`` may be a DataFrame (sources with one input table), a mapping from input name to
    DataFrame, or any object with a ``labels(name) -> DataFrame`` method (a
    :class:`mtdtl.corpora.Corpus`).
    """

    name: str = ""
    kind: str = ""
    inputs: tuple[str, ...] = ()

    def fit(self, raw, *, train_ids, k: int = K, seed: int = 0, track_ids=None) -> ReducedLabels:
        """Fit on the training tracks, then reduce every track that has the source.

        Parameters
        ----------
        raw : DataFrame, mapping or corpus (see the class docstring)
        train_ids : iterable of str
            The training split: only their labels are used to fit the reduction.
        k : int
            Latent factors (topics / components).
        seed : int
            Seed of the reduction's initialisation.
        track_ids : iterable of str, optional
            All tracks the reduction is for (the learning part of a corpus): tracks among them
            without the source are recorded in ``missing``; raw rows of other tracks are ignored.
            Default: the training tracks plus every track in ``raw``.

        Returns
        -------
        ReducedLabels
            Fitted rows for training tracks, fold-in / posterior rows for the others.
        """
        raise NotImplementedError

    def transform(self, raw, *, track_ids=None) -> ReducedLabels:
        """Reduce tracks with the fitted model (fold-in of rows not seen at fit time)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def tables(self, raw) -> dict[str, pd.DataFrame]:
        """The input tables of this source out of ``raw`` (see the class docstring).

        Every table's ``track_id`` column is checked: a missing (NaN, None or empty) track id
        is an error naming the table and the row (``track id missing on line N``).
        """
        self.origins = {}
        if isinstance(raw, pd.DataFrame):
            if len(self.inputs) != 1:
                raise MtdtlError(
                    f"source {self.name!r} reads the tables {list(self.inputs)}: pass a mapping "
                    "{table name: DataFrame} or a corpus"
                )
            out = {self.inputs[0]: raw}
        elif hasattr(raw, "labels") and callable(raw.labels):
            root = getattr(raw, "root", None)
            if root is not None:  # a corpus: errors can name its files (labels/<name>.csv)
                self.origins = {name: Path(root) / "labels" / f"{name}.csv" for name in self.inputs}
            out = {name: raw.labels(name) for name in self.inputs}
        else:
            try:
                out = {name: raw[name] for name in self.inputs}
            except (KeyError, TypeError):
                have = list(raw) if hasattr(raw, "keys") else type(raw).__name__
                raise MtdtlError(f"source {self.name!r} needs the label tables {list(self.inputs)}; got {have}") from None
        for name, df in out.items():
            self._check_track_ids(name, df)
        return out

    def _check_track_ids(self, table: str, df) -> None:
        """Raise on the first row of ``df`` whose track id is NaN, None or empty."""
        if not isinstance(df, pd.DataFrame) or "track_id" not in df.columns:
            return  # the source's own column check names what is wrong
        ids = df["track_id"]
        empty = (ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            lines = df.attrs.get("lines")
            if table in getattr(self, "origins", {}) and lines is not None and len(lines) == len(df):
                where = f"line {int(lines[i])} of {self.origins[table]}"
            elif table in getattr(self, "origins", {}):
                where = f"line {i + 2} of {self.origins[table]}"
            else:
                where = f"row {i + 1} of label table {table!r}"
            raise MtdtlError(f"source {self.name!r}: track id missing on {where} "
                             f"({int(empty.sum())} rows without one); give every row a track id "
                             "or drop those rows")

    def where(self, table: str, row: int | None = None) -> str:
        """Where a raw value came from, for error messages: ``<corpus>/labels/<table>.csv, line
        N`` when the tables came from a corpus (one header line), else ``label table 'x' row N``
        (``row``: 0-based position in the table)."""
        path = getattr(self, "origins", {}).get(table)
        if path is not None:
            return f"{path}" + ("" if row is None else f", line {row + 2}")
        return f"label table {table!r}" + ("" if row is None else f" row {row + 1}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r})"
