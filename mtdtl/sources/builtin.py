"""The eight built-in learning sources of the paper (Table 1) and their registry.

==========  ===========================  ===================================  ==============
source      raw label table(s)           reduction                            z_t
==========  ===========================  ===================================  ==============
self        ``self``: track_id           none (same-track pairs at training)  k = 0
bpm         ``bpm``: track_id, bpm       GMM, k components                    posterior
year        ``year``: track_id, year     GMM, k components                    posterior
taste       ``taste``: user_id,          pLSA on track × listener play        P(z | track)
            track_id, play_count         counts
tag         ``tag``: track_id, tag,      pLSA on track × tag counts           P(z | track)
            count
lyrics      ``lyrics``: track_id, word,  TF-IDF, then pLSA on track × word    P(z | track)
            count
cdr_tag     ``cdr_tag``: track_id, tag   pLSA on track × genre-path counts    P(z | track)
            (hierarchical a/b/c)         (each path 1; optionally ancestors)
artist      ``artist``: track_id,        pLSA on artist × tag counts (the     P(z | artist
            artist; ``tag``              tags of the artist's tracks summed)  of the track)
==========  ===========================  ===================================  ==============

Every reduction is fit on the training tracks only and then applied to every track that has
the source: pLSA by folding in the tracks not seen at fit time, the GMM by its posterior.
Tracks that lack a source — no raw row, all-zero counts, no term of the training vocabulary,
an unknown value (year 0, BPM 0, NaN) — are recorded in ``ReducedLabels.missing`` with the
reason; no track is dropped silently. Raw rows of tracks outside ``track_ids`` (e.g. the target
part of a corpus) are ignored and counted in the metadata.

TF-IDF (``lyrics``): counts times ``idf = ln((1 + n) / (1 + df)) + 1`` (scikit-learn's smooth
idf), with document frequencies of the training tracks and no length normalisation, so pLSA
still sees count-scaled weights; frequent words (stop-words) lose weight relative to rare ones.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mtdtl.constants import K, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.sources.base import ReducedLabels, Source
from mtdtl.sources.gmm import ScalarGMM
from mtdtl.sources.plsa import PLSA

__all__ = [
    "SelfSource", "GMMSource", "CountSource", "CdrTagSource", "ArtistSource",
    "get_source", "register_source", "available_sources", "ids_fingerprint",
]

log = get_logger(__name__)

#: Missing-track reasons (stable strings: tests and coverage tables use them).
NO_LABELS = "no labels"
NO_VALUE = "no value"
ALL_ZERO = "all-zero counts"
OUT_OF_VOCAB = "no term of the training vocabulary"
NO_ARTIST = "no artist"
ARTIST_NO_TAGS = "artist has no tags"


def ids_fingerprint(ids) -> str:
    """sha1 of the sorted, newline-joined ids (records which tracks a reduction was fit on)."""
    h = hashlib.sha1()
    for t in sorted(map(str, ids)):
        h.update(t.encode())
        h.update(b"\n")
    return h.hexdigest()


def _need_columns(df: pd.DataFrame, cols, *, source: Source, table: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise MtdtlError(f"source {source.name!r}: {source.where(table)} must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MtdtlError(
            f"source {source.name!r}: {source.where(table)} lacks columns {missing} (has {list(df.columns)})"
        )


def _show(value) -> str:
    """A raw value for an error message (numpy scalars as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _ids(series: pd.Series) -> np.ndarray:
    return series.astype(str).str.strip().to_numpy(dtype=object)


def _universe(train_ids, track_ids, present) -> tuple[list[str], set[str]]:
    """Ordered universe of tracks and the training set."""
    train = [str(t) for t in train_ids]
    if track_ids is None:
        uni = sorted(set(train) | set(map(str, present)))
    else:
        uni = list(dict.fromkeys(str(t) for t in track_ids))
    return uni, set(train)


def _finish(name: str, universe: list[str], z_by_id: dict[str, np.ndarray], reasons: dict[str, str],
            k: int, *, topics=None, meta=None) -> ReducedLabels:
    present = [t for t in universe if t in z_by_id]
    z = np.stack([z_by_id[t] for t in present]).astype(np.float32) if present else np.zeros((0, k), np.float32)
    missing = [t for t in universe if t not in z_by_id]
    miss_reasons = {t: reasons.get(t, NO_LABELS) for t in missing}
    return ReducedLabels(name=name, track_ids=np.asarray(present, dtype=str), z=z.reshape(len(present), k),
                         missing=missing, topics=topics, meta=meta or {}, missing_reasons=miss_reasons)


def _reason_counts(reasons: dict[str, str]) -> dict[str, int]:
    return {r: int(n) for r, n in pd.Series(list(reasons.values()), dtype=object).value_counts().items()}


# --------------------------------------------------------------------------- self
class SelfSource(Source):
    """``self``: the track itself. No reduction; same-track pairs are drawn at training time."""

    kind = "pairs"

    def __init__(self, name: str = "self", *, table: str = "self"):
        self.name = name
        self.inputs = (table,)

    def fit(self, raw, *, train_ids, k: int = K, seed: int = 0, track_ids=None) -> ReducedLabels:
        return self._reduce(raw, train_ids=train_ids, track_ids=track_ids, seed=seed)

    def transform(self, raw, *, track_ids=None) -> ReducedLabels:
        return self._reduce(raw, train_ids=(), track_ids=track_ids, seed=0)

    def _reduce(self, raw, *, train_ids, track_ids, seed) -> ReducedLabels:
        (table, df), = self.tables(raw).items()
        _need_columns(df, ["track_id"], source=self, table=table)
        ids = set(_ids(df["track_id"]))
        universe, train = _universe(train_ids, track_ids, ids)
        z = {t: np.zeros(0, np.float32) for t in universe if t in ids}
        meta = {"method": "none (same-track pairs)", "k": 0, "seed": seed,
                "n_train": len(train & set(z)), "ignored_tracks": len(ids - set(universe))}
        return _finish(self.name, universe, z, {}, 0, meta=meta)


# --------------------------------------------------------------------------- GMM
class GMMSource(Source):
    """A scalar label (``bpm``, ``year``) reduced to a GMM posterior (:mod:`mtdtl.sources.gmm`).

    Parameters
    ----------
    name : source name; also the default table and value column
    lower : values <= ``lower`` mean "unknown" (0 for the MSD's BPM and year) and NaN means no
        value: such tracks are missing, with the reason
    n_bins : bins of the training-value histogram kept in ``meta["histogram"]`` (for plots)
    """

    kind = "gmm"

    def __init__(self, name: str, *, table: str | None = None, column: str | None = None,
                 lower: float = 0.0, n_bins: int = 50, reg_covar: float = 1e-3):
        self.name = name
        self.inputs = (table or name,)
        self.column = column or name
        self.lower = lower
        self.n_bins = n_bins
        self.reg_covar = reg_covar
        self.gmm_: ScalarGMM | None = None

    def _values(self, raw, track_ids, train_ids):
        (table, df), = self.tables(raw).items()
        _need_columns(df, ["track_id", self.column], source=self, table=table)
        ids = _ids(df["track_id"])
        dup = pd.Series(ids).duplicated(keep=False).to_numpy()
        if dup.any():
            t = ids[dup][0]
            raise MtdtlError(
                f"source {self.name!r}: track {t!r} has {int((ids == t).sum())} rows in {self.where(table)} "
                f"(rows {', '.join(str(i + 1) for i in np.flatnonzero(ids == t)[:5])}); each track needs exactly one "
                f"{self.column}"
            )
        vals = pd.to_numeric(df[self.column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(vals) & df[self.column].notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MtdtlError(
                f"source {self.name!r}: {self.where(table, i)} ({ids[i]}): "
                f"{self.column} {_show(df[self.column].iloc[i])} is not a number"
            )
        if np.isinf(vals).any():
            i = int(np.flatnonzero(np.isinf(vals))[0])
            raise MtdtlError(f"source {self.name!r}: {self.where(table, i)} ({ids[i]}): infinite {self.column}")
        universe, train = _universe(train_ids, track_ids, ids)
        values = dict(zip(ids, vals))
        return universe, train, values, len(set(ids) - set(universe))

    def _split(self, universe, values):
        ok, reasons = {}, {}
        for t in universe:
            if t not in values:
                continue
            v = values[t]
            if np.isnan(v):
                reasons[t] = NO_VALUE
            elif v <= self.lower:
                reasons[t] = f"{self.column} <= {self.lower:g} (unknown)"
            else:
                ok[t] = v
        return ok, reasons

    def fit(self, raw, *, train_ids, k: int = K, seed: int = 0, track_ids=None) -> ReducedLabels:
        universe, train, values, ignored = self._values(raw, track_ids, train_ids)
        ok, reasons = self._split(universe, values)
        x_train = np.array([v for t, v in ok.items() if t in train], dtype=np.float64)
        if x_train.size == 0:
            raise MtdtlError(f"source {self.name!r}: no training track has a usable {self.column}")
        self.gmm_ = ScalarGMM(k=k, seed=seed, reg_covar=self.reg_covar).fit(x_train)
        ids = list(ok)
        post = self.gmm_.posterior(np.array([ok[t] for t in ids])) if ids else np.zeros((0, k), np.float32)
        z = dict(zip(ids, post))
        counts, edges = np.histogram(x_train, bins=self.n_bins)
        meta = {
            "method": "GMM posterior", "k": k, "seed": seed, "column": self.column,
            "n_train": int(x_train.size), "n_distinct": self.gmm_.n_distinct_, "converged": self.gmm_.converged_,
            "standardise": [self.gmm_.shift_, self.gmm_.scale_],
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            "missing_reasons": _reason_counts({t: reasons.get(t, NO_LABELS) for t in universe if t not in z}),
            "ignored_tracks": ignored,
        }
        return _finish(self.name, universe, z, reasons, k, topics=self.gmm_.components(), meta=meta)

    def transform(self, raw, *, track_ids=None) -> ReducedLabels:
        if self.gmm_ is None:
            raise MtdtlError(f"source {self.name!r} is not fitted yet: call fit first")
        universe, _, values, _ = self._values(raw, track_ids, ())
        ok, reasons = self._split(universe, values)
        ids = list(ok)
        z = dict(zip(ids, self.gmm_.posterior(np.array([ok[t] for t in ids])))) if ids else {}
        return _finish(self.name, universe, z, reasons, self.gmm_.k, topics=self.gmm_.components(),
                       meta={"method": "GMM posterior", "k": self.gmm_.k})


# --------------------------------------------------------------------------- pLSA on counts
class CountSource(Source):
    """A document × term count table reduced by pLSA (:mod:`mtdtl.sources.plsa`).

    Parameters
    ----------
    name : source name
    table : raw label table (default: ``name``)
    term_col : column of the terms (tag, listener, word)
    count_col : column of the counts; ``None`` counts every row once
    tfidf : weight counts by TF-IDF before pLSA (``lyrics``)
    min_df : keep terms used by at least this many training documents
    max_iter, tol : pLSA EM stopping rule
    n_top : terms per topic in the topic table
    """

    kind = "plsa"

    def __init__(self, name: str, *, table: str | None = None, term_col: str, count_col: str | None = "count",
                 tfidf: bool = False, min_df: int = 1, max_iter: int = 200, tol: float = 1e-5, n_top: int = 10):
        self.name = name
        self.inputs = (table or name,)
        self.term_col = term_col
        self.count_col = count_col
        self.tfidf = tfidf
        self.min_df = int(min_df)
        self.max_iter = max_iter
        self.tol = tol
        self.n_top = n_top
        self.plsa_: PLSA | None = None
        self.vocab_: pd.Index | None = None
        self.idf_: np.ndarray | None = None

    # -- raw table → (track_id, term, count)
    def counts(self, tables: dict[str, pd.DataFrame], table: str | None = None) -> pd.DataFrame:
        """Tidy ``track_id, term, count`` rows from the raw table (counts checked finite, >= 0)."""
        table = table or self.inputs[0]
        df = tables[table]
        cols = ["track_id", self.term_col] + ([self.count_col] if self.count_col else [])
        _need_columns(df, cols, source=self, table=table)
        if self.count_col:
            cnt = pd.to_numeric(df[self.count_col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(cnt) | (cnt < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise MtdtlError(
                    f"source {self.name!r}: {self.where(table, i)} has {self.count_col} = "
                    f"{_show(df[self.count_col].iloc[i])}; counts must be finite numbers >= 0"
                )
        else:
            cnt = np.ones(len(df))
        terms = df[self.term_col].astype(str).str.strip().to_numpy(dtype=object)
        empty = terms == ""
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise MtdtlError(f"source {self.name!r}: {self.where(table, i)} has an empty {self.term_col}")
        return pd.DataFrame({"track_id": _ids(df["track_id"]), "term": terms, "count": cnt})

    # -- document × term matrices
    @staticmethod
    def _matrix(df: pd.DataFrame, docs: list[str], vocab: pd.Index) -> sp.csr_matrix:
        r = pd.Index(docs).get_indexer(df["doc"])
        c = vocab.get_indexer(df["term"])
        v = df["count"].to_numpy(dtype=np.float32)
        keep = (r >= 0) & (c >= 0) & (v > 0)
        X = sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(len(docs), len(vocab)), dtype=np.float32)
        X.sum_duplicates()
        return X

    def _weight(self, X: sp.csr_matrix) -> sp.csr_matrix:
        if self.idf_ is None:
            return X
        return sp.csr_matrix(X.multiply(self.idf_[None, :]), dtype=np.float32)

    def _fit_docs(self, docs_df: pd.DataFrame, fit_docs: list[str], *, k: int, seed: int):
        """Vocabulary, idf and pLSA from the training documents; returns (theta, kept docs, dropped)."""
        pos = docs_df[docs_df["doc"].isin(set(fit_docs)) & (docs_df["count"] > 0)]
        dfreq = pos.groupby("term")["doc"].nunique()
        self.vocab_ = pd.Index(sorted(dfreq[dfreq >= self.min_df].index))
        if len(self.vocab_) == 0:
            raise MtdtlError(f"source {self.name!r}: no term is used by >= {self.min_df} training documents")
        X = self._matrix(docs_df, fit_docs, self.vocab_)
        if self.tfidf:
            n = X.shape[0]
            df_counts = np.diff(X.tocsc().indptr)
            self.idf_ = (np.log((1.0 + n) / (1.0 + df_counts)) + 1.0).astype(np.float32)
        X = self._weight(X)
        nonempty = np.diff(X.indptr) > 0
        kept = [d for d, ok in zip(fit_docs, nonempty) if ok]
        dropped = [d for d, ok in zip(fit_docs, nonempty) if not ok]
        self.plsa_ = PLSA(k=k, seed=seed, max_iter=self.max_iter, tol=self.tol).fit(X[nonempty])
        return self.plsa_.theta_, kept, dropped

    def _fold(self, docs_df: pd.DataFrame, docs: list[str]):
        """Fold-in of ``docs``; returns (theta of the kept docs, kept, dropped as out-of-vocabulary)."""
        if not docs:
            return np.zeros((0, self.plsa_.k), np.float32), [], []
        X = self._weight(self._matrix(docs_df, docs, self.vocab_))
        nonempty = np.diff(X.indptr) > 0
        kept = [d for d, ok in zip(docs, nonempty) if ok]
        dropped = [d for d, ok in zip(docs, nonempty) if not ok]
        theta = self.plsa_.fold_in(X[nonempty]) if kept else np.zeros((0, self.plsa_.k), np.float32)
        return theta, kept, dropped

    def _meta(self, *, k, seed, n_fit, n_fold, ignored, reasons, extra=None) -> dict:
        p = self.plsa_
        meta = {
            "method": ("TF-IDF + " if self.tfidf else "") + "pLSA", "k": k, "seed": seed,
            "n_train": n_fit, "n_fold_in": n_fold, "n_terms": len(self.vocab_),
            "n_iter": p.n_iter_, "converged": p.converged_,
            "log_likelihood": p.log_likelihood_[-1], "log_likelihood_trace": p.log_likelihood_,
            "min_df": self.min_df, "tfidf": self.tfidf,
            "missing_reasons": _reason_counts(reasons), "ignored_tracks": ignored,
        }
        meta.update(extra or {})
        return meta

    def fit(self, raw, *, train_ids, k: int = K, seed: int = 0, track_ids=None) -> ReducedLabels:
        counts = self.counts(self.tables(raw))
        universe, train = _universe(train_ids, track_ids, counts["track_id"].unique())
        uni = set(universe)
        in_uni = counts["track_id"].isin(uni).to_numpy()
        ignored = int(counts.loc[~in_uni, "track_id"].nunique())
        counts = counts[in_uni].rename(columns={"track_id": "doc"})
        totals = counts.groupby("doc")["count"].sum()
        reasons = {t: ALL_ZERO for t in totals.index[totals <= 0]}
        docs = [t for t in universe if t in totals.index and totals[t] > 0]
        fit_docs = [t for t in docs if t in train]
        if not fit_docs:
            raise MtdtlError(f"source {self.name!r}: no training track has non-zero counts; cannot fit pLSA")
        theta, kept, dropped = self._fit_docs(counts, fit_docs, k=k, seed=seed)
        z = dict(zip(kept, theta))
        reasons.update({t: OUT_OF_VOCAB for t in dropped})
        theta2, kept2, dropped2 = self._fold(counts, [t for t in docs if t not in train])
        z.update(zip(kept2, theta2))
        reasons.update({t: OUT_OF_VOCAB for t in dropped2})
        all_reasons = {t: reasons.get(t, NO_LABELS) for t in universe if t not in z}
        meta = self._meta(k=k, seed=seed, n_fit=len(kept), n_fold=len(kept2), ignored=ignored, reasons=all_reasons)
        return _finish(self.name, universe, z, reasons, k, topics=self.topic_table(), meta=meta)

    def transform(self, raw, *, track_ids=None) -> ReducedLabels:
        """Fold in every track of ``raw`` (restricted to ``track_ids``) with the fitted topics."""
        if self.plsa_ is None:
            raise MtdtlError(f"source {self.name!r} is not fitted yet: call fit first")
        counts = self.counts(self.tables(raw))
        universe, _ = _universe((), track_ids, counts["track_id"].unique())
        counts = counts[counts["track_id"].isin(set(universe))].rename(columns={"track_id": "doc"})
        totals = counts.groupby("doc")["count"].sum()
        reasons = {t: ALL_ZERO for t in totals.index[totals <= 0]}
        docs = [t for t in universe if t in totals.index and totals[t] > 0]
        theta, kept, dropped = self._fold(counts, docs)
        reasons.update({t: OUT_OF_VOCAB for t in dropped})
        return _finish(self.name, universe, dict(zip(kept, theta)), reasons, self.plsa_.k,
                       topics=self.topic_table(), meta={"method": "pLSA fold-in", "k": self.plsa_.k})

    def topic_table(self, n: int | None = None) -> pd.DataFrame:
        """Strongest terms per topic (Table 2), topics named ``<source>1 .. <source>k``."""
        return self.plsa_.topic_terms(self.vocab_, n=n or self.n_top, prefix=self.name)


class CdrTagSource(CountSource):
    """``cdr_tag``: hierarchical genre paths (``classical/baroque/chorale``) per track, each
    path counted once; with ``ancestors=True`` every ancestor path (``classical``,
    ``classical/baroque``) counts too, so tracks sharing a parent genre share terms."""

    def __init__(self, name: str = "cdr_tag", *, table: str | None = None, ancestors: bool = False,
                 sep: str = "/", **kw):
        kw.setdefault("term_col", "tag")
        kw.setdefault("count_col", None)
        super().__init__(name, table=table, **kw)
        self.ancestors = ancestors
        self.sep = sep

    def counts(self, tables, table=None):
        df = super().counts(tables, table)
        df["term"] = [self.sep.join(p for p in t.split(self.sep) if p) or t for t in df["term"]]
        if not self.ancestors:
            return df
        parts = df["term"].str.split(self.sep, regex=False)
        rows = []
        for (tid, cnt), path in zip(df[["track_id", "count"]].itertuples(index=False), parts):
            for i in range(1, len(path) + 1):
                rows.append((tid, self.sep.join(path[:i]), cnt))
        return pd.DataFrame(rows, columns=["track_id", "term", "count"])


class ArtistSource(CountSource):
    """``artist``: each artist's bag of tags (the tag counts of its tracks summed) → pLSA → every
    track takes its artist's topic distribution (the paper's "Combination" source).

    The pLSA is fit on the artist documents built from the training tracks' tags; artists with
    no tagged training track are folded in from the tags of all their tracks.
    """

    def __init__(self, name: str = "artist", *, artist_table: str = "artist", tag_table: str = "tag",
                 term_col: str = "tag", count_col: str | None = "count", **kw):
        super().__init__(name, table=tag_table, term_col=term_col, count_col=count_col, **kw)
        self.inputs = (artist_table, tag_table)

    def _artists(self, tables) -> pd.Series:
        table = self.inputs[0]
        df = tables[table]
        _need_columns(df, ["track_id", "artist"], source=self, table=table)
        ids = _ids(df["track_id"])
        art = df["artist"].astype(str).str.strip().to_numpy(dtype=object)
        art[df["artist"].isna().to_numpy()] = ""
        s = pd.DataFrame({"track_id": ids, "artist": art})
        s = s[s["artist"] != ""].drop_duplicates()
        dup = s["track_id"].duplicated(keep=False)
        if dup.any():
            t = s.loc[dup, "track_id"].iloc[0]
            raise MtdtlError(
                f"source {self.name!r}: track {t!r} has several artists in {self.where(table)} "
                f"({sorted(s.loc[s['track_id'] == t, 'artist'])}); each track needs one"
            )
        return s.set_index("track_id")["artist"]

    def _docs(self, tables, universe):
        artist_of = self._artists(tables)
        counts = self.counts(tables, table=self.inputs[1])
        uni = set(universe)
        counts = counts[counts["track_id"].isin(uni) & (counts["count"] > 0)]
        counts = counts.assign(doc=counts["track_id"].map(artist_of)).dropna(subset=["doc"])
        return artist_of[artist_of.index.isin(uni)], counts

    def fit(self, raw, *, train_ids, k: int = K, seed: int = 0, track_ids=None) -> ReducedLabels:
        tables = self.tables(raw)
        universe, train = _universe(train_ids, track_ids, _ids(tables[self.inputs[0]]["track_id"]))
        artist_of, counts = self._docs(tables, universe)
        fit_counts = counts[counts["track_id"].isin(train)]
        fit_docs = sorted(fit_counts["doc"].unique())
        if not fit_docs:
            raise MtdtlError(f"source {self.name!r}: no training track has an artist with tags; cannot fit pLSA")
        theta, kept, _ = self._fit_docs(fit_counts[["doc", "term", "count"]], fit_docs, k=k, seed=seed)
        by_artist = dict(zip(kept, theta))
        others = sorted(set(artist_of.unique()) - set(by_artist))
        theta2, kept2, _ = self._fold(counts[["doc", "term", "count"]], others)
        by_artist.update(zip(kept2, theta2))
        z, reasons = self._assign(universe, artist_of, by_artist)
        meta = self._meta(
            k=k, seed=seed, n_fit=len(kept), n_fold=len(kept2), ignored=0,
            reasons={t: reasons.get(t, NO_LABELS) for t in universe if t not in z},
            extra={"unit": "artist", "n_artists": int(artist_of.nunique()), "n_artists_fit": len(kept)},
        )
        return _finish(self.name, universe, z, reasons, k, topics=self.topic_table(), meta=meta)

    @staticmethod
    def _assign(universe, artist_of: pd.Series, by_artist: dict):
        z, reasons = {}, {}
        for t in universe:
            a = artist_of.get(t)
            if a is None:
                reasons[t] = NO_ARTIST
            elif a in by_artist:
                z[t] = by_artist[a]
            else:
                reasons[t] = ARTIST_NO_TAGS
        return z, reasons

    def transform(self, raw, *, track_ids=None) -> ReducedLabels:
        if self.plsa_ is None:
            raise MtdtlError(f"source {self.name!r} is not fitted yet: call fit first")
        tables = self.tables(raw)
        universe, _ = _universe((), track_ids, _ids(tables[self.inputs[0]]["track_id"]))
        artist_of, counts = self._docs(tables, universe)
        artists = sorted(artist_of.unique())
        theta, kept, _ = self._fold(counts[["doc", "term", "count"]], artists)
        z, reasons = self._assign(universe, artist_of, dict(zip(kept, theta)))
        return _finish(self.name, universe, z, reasons, self.plsa_.k, topics=self.topic_table(),
                       meta={"method": "pLSA fold-in (artist)", "k": self.plsa_.k})


# --------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., Source]] = {
    "self": lambda **kw: SelfSource("self", **kw),
    "bpm": lambda **kw: GMMSource("bpm", **kw),
    "year": lambda **kw: GMMSource("year", **kw),
    "taste": lambda **kw: CountSource("taste", **{"term_col": "user_id", "count_col": "play_count", **kw}),
    "tag": lambda **kw: CountSource("tag", **{"term_col": "tag", "count_col": "count", **kw}),
    "lyrics": lambda **kw: CountSource("lyrics", **{"term_col": "word", "count_col": "count", "tfidf": True, **kw}),
    "cdr_tag": lambda **kw: CdrTagSource("cdr_tag", **kw),
    "artist": lambda **kw: ArtistSource("artist", **kw),
}
assert tuple(_REGISTRY) == SOURCE_NAMES


def available_sources() -> tuple[str, ...]:
    """Registered source names (the eight built-ins first, in :data:`SOURCE_NAMES` order)."""
    return tuple(_REGISTRY)


def get_source(name: str, **options) -> Source:
    """A new :class:`Source` by name; ``options`` go to its constructor (e.g. ``min_df=2``)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise MtdtlError(f"unknown learning source {name!r}; valid sources: {', '.join(_REGISTRY)}") from None
    return factory(**options)


def register_source(name: str, factory: Callable[..., Source], *, overwrite: bool = False) -> None:
    """Add a source (e.g. ``lambda **kw: CountSource("mood", term_col="mood", **kw)``)."""
    if name in _REGISTRY and not overwrite:
        raise MtdtlError(f"source {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory
