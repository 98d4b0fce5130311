"""Probabilistic latent semantic analysis (pLSA) by sparse EM.

pLSA (Hofmann, 1999; the paper's Section 2.3, ref. [43]) models a document × term count matrix
``X`` (here: tracks × tags, tracks × listeners, tracks × lyric words, artists × tags) as

    P(w | d) = sum_z P(z | d) P(w | z),      theta[d, z] = P(z | d),   phi[z, w] = P(w | z),

and maximises the log-likelihood ``L = sum_{d,w} x_dw log (theta phi)_dw`` by EM. The reduced
label z_t of a track is its row ``theta[d]``, a distribution over k topics.

The sparse EM
-------------
The E-step posterior ``P(z | d, w) = theta_dz phi_zw / (theta phi)_dw`` is an ``nnz × k`` array,
which for the paper's data (tens of millions of non-zeros, k = 50) does not fit in memory. It is
never formed. Both M-step sums only need, for each non-zero, the ratio
``r_dw = x_dw / (theta phi)_dw``, a sparse matrix ``R`` with the pattern of ``X``::

    theta_dz <- theta_dz * (R phi^T)_dz / n_d              (n_d = sum_w x_dw)
    phi_zw   <- phi_zw * (theta^T R)_zw / sum_w' (...)_zw'

``(theta phi)_dw`` at the non-zeros is computed as a row-wise dot product over k, in chunks of
non-zeros, so the working memory is O(nnz + (n_docs + n_terms) * k + chunk * k), not
O(nnz * k). One iteration costs three passes of ``nnz * k`` multiply-adds.

Equivalence with KL-divergence NMF
----------------------------------
With ``W = diag(n) theta`` and ``H = phi``, the update above is the multiplicative update of
non-negative matrix factorisation under the generalised Kullback-Leibler divergence
(Lee & Seung, 2001) — ``W <- W * (R H^T) / (1 H^T)``, ``H <- H * (W^T R) / (W^T 1)`` — with both
factors updated from the same ``R`` and the scale moved into ``W``: since the rows of ``W H`` then
sum to the row sums of ``X``, ``D_KL(X || W H) = sum x log x - sum_d n_d log n_d - L``, a
constant minus ``L``: maximising the pLSA likelihood and minimising the KL-NMF objective are the
same problem (Gaussier & Goutte, 2005; Ding, Li & Peng, 2008). scikit-learn's ``NMF(beta_loss="kullback-leibler", solver="mu")`` reaches
the same objective values; the tests check it. EM never decreases ``L``.

Fold-in
-------
For documents not seen at fit time, :meth:`PLSA.fold_in` runs the same EM with ``phi`` fixed and
only ``theta`` free (the classic pLSA "folding-in"). With ``phi`` fixed the log-likelihood is
concave in each ``theta[d]``, so the deterministic uniform start reaches the maximum.

Empty documents (all-zero rows) have no likelihood: their ``theta`` stays uniform and they are
flagged in ``empty_``; callers (:mod:`mtdtl.sources.builtin`) record them as missing instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["PLSA", "plsa_log_likelihood", "as_count_matrix"]

log = get_logger(__name__)

#: Bytes for one chunk temporary (chunk_size * k float32 values); two such arrays are live.
CHUNK_BYTES = 4 * 2**20
#: Floor of (theta phi)_dw before dividing (float32: zero topics can make a product underflow).
_TINY = np.float32(1e-30)


def as_count_matrix(X, *, what: str = "count matrix") -> sp.csr_matrix:
    """``X`` as a float32 CSR matrix with sorted indices, checked finite and non-negative."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # canonicalised below: never touch the caller's
    else:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 2:
            raise MtdtlError(f"{what} must be 2-D, got shape {arr.shape}")
        X = sp.csr_matrix(arr)
    X.sum_duplicates()
    X.sort_indices()
    if X.data.size and (not np.all(np.isfinite(X.data)) or (X.data < 0).any()):
        raise MtdtlError(f"{what} holds NaN, infinite or negative counts; pLSA needs counts >= 0")
    X.eliminate_zeros()
    return X


def _nnz_rows(X: sp.csr_matrix) -> np.ndarray:
    """Row index of every stored value of a CSR matrix [shape=(nnz,)] int32."""
    return np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(X.indptr))


def _chunk_size(k: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return max(1, int(chunk_size))
    return max(1024, CHUNK_BYTES // (4 * max(k, 1)))


def _ratio(X: sp.csr_matrix, rows: np.ndarray, theta: np.ndarray, phiT: np.ndarray, chunk: int):
    """``R = X / (theta phi)`` at the non-zeros of ``X`` and the log-likelihood.

    Parameters
    ----------
    X : sp.csr_matrix [shape=(n_docs, n_terms)] float32
    rows : np.ndarray [shape=(nnz,)] row of every non-zero
    theta : np.ndarray [shape=(n_docs, k)] float32
    phiT : np.ndarray [shape=(n_terms, k)] float32 (``phi`` transposed, C-contiguous)

    Returns
    -------
    R : sp.csr_matrix [shape=(n_docs, n_terms)] float32, the pattern of ``X``
    ll : float, ``sum x log (theta phi)`` (float64 accumulation)
    """
    cols = X.indices
    x = X.data
    ratio = np.empty_like(x)
    ll = 0.0
    for a in range(0, x.size, chunk):
        b = min(a + chunk, x.size)
        # np.take is several times faster than fancy indexing for row gathers.
        wh = np.einsum("ij,ij->i", np.take(theta, rows[a:b], axis=0), np.take(phiT, cols[a:b], axis=0))
        np.maximum(wh, _TINY, out=wh)
        np.divide(x[a:b], wh, out=ratio[a:b])
        # log in float32, sum in float64. Not np.dot: a BLAS call per chunk stalls when BLAS
        # threads compete with other processes; np.log(..., dtype=float64) is also slow.
        ll += float(np.multiply(x[a:b], np.log(wh), dtype=np.float64).sum())
    R = sp.csr_matrix((ratio, X.indices, X.indptr), shape=X.shape)
    return R, ll


def _normalise_rows(A: np.ndarray) -> np.ndarray:
    s = A.sum(axis=1, keepdims=True)
    np.divide(A, s, out=A, where=s > 0)
    A[(s <= 0).ravel()] = 1.0 / A.shape[1]
    return A


def plsa_log_likelihood(X, theta: np.ndarray, phi: np.ndarray, *, chunk_size: int | None = None) -> float:
    """``sum_{d,w} x_dw log (theta phi)_dw`` over the non-zeros of ``X``."""
    X = as_count_matrix(X)
    phiT = np.ascontiguousarray(np.asarray(phi, dtype=np.float32).T)
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    return _ratio(X, _nnz_rows(X), theta, phiT, _chunk_size(theta.shape[1], chunk_size))[1]


@dataclass
class PLSA:
    """pLSA topic model fit by sparse EM (see the module docstring).

    Parameters
    ----------
    k : int
        Number of topics (50 in the paper).
    max_iter : int
        Most EM iterations.
    tol : float
        Stop when the relative log-likelihood gain of one iteration falls below ``tol``
        (0 runs exactly ``max_iter`` iterations).
    seed : int
        Seed of the random initialisation (same seed, same data → same result).
    chunk_size : int or None
        Non-zeros per chunk of the ratio pass (default: 4 MiB of float32 per temporary).
    fold_in_iter, fold_in_tol : int, float
        The same, for :meth:`fold_in`.

    Attributes (after :meth:`fit`)
    ------------------------------
    theta_ : np.ndarray [shape=(n_docs, k)] float32, P(z | d) of the training documents
    phi_ : np.ndarray [shape=(k, n_terms)] float32, P(w | z)
    p_z_ : np.ndarray [shape=(k,)] float64, share of all counts per topic
    log_likelihood_ : list of float, the log-likelihood before each iteration and at the end
    n_iter_ : int, iterations run
    converged_ : bool
    empty_ : np.ndarray [shape=(n_docs,)] bool, all-zero training rows
    """

    k: int = 50
    max_iter: int = 200
    tol: float = 1e-5
    seed: int = 0
    chunk_size: int | None = None
    fold_in_iter: int = 100
    fold_in_tol: float = 1e-5
    theta_: np.ndarray | None = field(default=None, repr=False)
    phi_: np.ndarray | None = field(default=None, repr=False)
    p_z_: np.ndarray | None = field(default=None, repr=False)
    log_likelihood_: list = field(default_factory=list, repr=False)
    n_iter_: int = 0
    converged_: bool = False
    empty_: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise MtdtlError(f"pLSA needs k >= 1 topics, got k={self.k}")
        if int(self.max_iter) < 1:
            raise MtdtlError(f"pLSA needs max_iter >= 1, got {self.max_iter}")
        if self.tol < 0:
            raise MtdtlError(f"pLSA tol must be >= 0, got {self.tol}")

    # ------------------------------------------------------------------ fitting
    def fit(self, X, *, callback=None) -> "PLSA":
        """Fit topics to a document × term count matrix.

        Parameters
        ----------
        X : sparse or dense array [shape=(n_docs, n_terms)], counts >= 0
        callback : callable(iteration, log_likelihood), optional
            Called after each iteration (for progress bars).
        """
        X = as_count_matrix(X)
        n, m = X.shape
        k = int(self.k)
        if X.nnz == 0:
            raise MtdtlError("pLSA got a count matrix with no non-zero entries")
        rng = np.random.default_rng(self.seed)
        theta = _normalise_rows(rng.random((n, k), dtype=np.float32) + np.float32(0.1))
        phi = _normalise_rows(rng.random((k, m), dtype=np.float32) + np.float32(0.1))
        n_d = np.asarray(X.sum(axis=1), dtype=np.float32)  # (n, 1)
        empty = n_d.ravel() <= 0
        inv_n = np.divide(1.0, n_d, out=np.zeros_like(n_d), where=n_d > 0)
        rows = _nnz_rows(X)
        chunk = _chunk_size(k, self.chunk_size)

        lls: list[float] = []
        converged = False
        it = 0
        for it in range(1, int(self.max_iter) + 1):
            R, ll = _ratio(X, rows, theta, np.ascontiguousarray(phi.T), chunk)
            lls.append(ll)
            if len(lls) >= 2 and self.tol > 0:
                gain = (lls[-1] - lls[-2]) / max(abs(lls[-2]), 1e-300)
                if gain < self.tol:
                    converged = True
                    it -= 1  # this pass only measured the previous update
                    break
            # M-step from the same R (pLSA EM: both factors from one E-step).
            theta_new = np.asarray(R @ phi.T, dtype=np.float32)  # fresh array: update in place
            theta_new *= theta
            theta_new *= inv_n
            theta_new[empty] = 1.0 / k
            phi_new = phi * np.asarray((R.T @ theta).T, dtype=np.float32)
            theta, phi = theta_new, _normalise_rows(phi_new)
            if callback is not None:
                callback(it, ll)
        else:
            lls.append(_ratio(X, rows, theta, np.ascontiguousarray(phi.T), chunk)[1])
            if self.tol > 0 and len(lls) >= 2:
                converged = (lls[-1] - lls[-2]) / max(abs(lls[-2]), 1e-300) < self.tol

        self.theta_ = _normalise_rows(theta)
        self.phi_ = np.ascontiguousarray(phi, dtype=np.float32)
        weights = (self.theta_.T @ n_d.ravel()).astype(np.float64)
        self.p_z_ = weights / weights.sum()
        self.log_likelihood_ = lls
        self.n_iter_ = it
        self.converged_ = converged
        self.empty_ = empty
        log.debug("pLSA k=%d: %d iterations, log-likelihood %.6g, converged=%s", k, it, lls[-1], converged)
        return self

    def _check_fitted(self) -> None:
        if self.phi_ is None:
            raise MtdtlError("this PLSA is not fitted yet: call fit(X) first")

    # ------------------------------------------------------------------ fold-in
    def fold_in(self, X) -> np.ndarray:
        """P(z | d) of new documents with the topics ``phi_`` fixed.

        Parameters
        ----------
        X : sparse or dense array [shape=(n_new, n_terms)], counts over the training vocabulary

        Returns
        -------
        theta : np.ndarray [shape=(n_new, k)] float32, rows sum to 1 (uniform for empty rows)
        """
        self._check_fitted()
        X = as_count_matrix(X)
        k, m = self.phi_.shape
        if X.shape[1] != m:
            raise MtdtlError(f"fold_in needs {m} term columns (the training vocabulary), got {X.shape[1]}")
        n = X.shape[0]
        theta = np.full((n, k), 1.0 / k, dtype=np.float32)
        if X.nnz == 0:
            return theta
        n_d = np.asarray(X.sum(axis=1), dtype=np.float32)
        empty = n_d.ravel() <= 0
        inv_n = np.divide(1.0, n_d, out=np.zeros_like(n_d), where=n_d > 0)
        rows = _nnz_rows(X)
        phiT = np.ascontiguousarray(self.phi_.T)
        chunk = _chunk_size(k, self.chunk_size)
        prev = None
        for _ in range(int(self.fold_in_iter)):
            R, ll = _ratio(X, rows, theta, phiT, chunk)
            if prev is not None and self.fold_in_tol > 0:
                if (ll - prev) / max(abs(prev), 1e-300) < self.fold_in_tol:
                    break
            prev = ll
            update = np.asarray(R @ phiT, dtype=np.float32)
            update *= theta
            update *= inv_n
            theta = update
            theta[empty] = 1.0 / k
        return _normalise_rows(theta)

    # ------------------------------------------------------------------ inspection
    def topic_terms(self, vocab, n: int = 10, *, long: bool = False, prefix: str = "topic",
                    min_p: float = 1e-6) -> pd.DataFrame:
        """Strongest terms per topic (the paper's Table 2).

        Parameters
        ----------
        vocab : sequence of str [shape=(n_terms,)]
        n : int, terms per topic
        long : bool
            ``False``: one row per topic with columns ``topic`` (``f"{prefix}{i+1}"``), ``weight``
            (the topic's share of all counts) and ``terms`` (comma-separated, strongest first).
            ``True``: tidy rows ``topic, rank, term, p`` (P(w | z)).
        min_p : float
            Leave out terms with P(w | z) below this (EM drives unused terms to ~0; a topic of
            a small vocabulary can have fewer than ``n`` real terms). The strongest term stays.
        """
        self._check_fitted()
        vocab = np.asarray([str(v) for v in vocab], dtype=object)
        k, m = self.phi_.shape
        if len(vocab) != m:
            raise MtdtlError(f"topic_terms needs {m} vocabulary entries, got {len(vocab)}")
        n = max(1, min(int(n), m))
        order = np.argsort(-self.phi_, axis=1, kind="stable")[:, :n]
        top = [[j for r, j in enumerate(order[z]) if r == 0 or self.phi_[z, j] >= min_p] for z in range(k)]
        names = [f"{prefix}{i + 1}" for i in range(k)]
        if long:
            recs = [
                {"topic": names[z], "rank": r + 1, "term": vocab[j], "p": float(self.phi_[z, j])}
                for z in range(k)
                for r, j in enumerate(top[z])
            ]
            return pd.DataFrame.from_records(recs, columns=["topic", "rank", "term", "p"])
        return pd.DataFrame(
            {
                "topic": names,
                "weight": np.round(self.p_z_, 6),
                "terms": [", ".join(vocab[top[z]]) for z in range(k)],
            }
        )
