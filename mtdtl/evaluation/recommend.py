"""Content-aware recommendation: weighted matrix factorisation with an item-content prior.

What
    The recommendation target of the paper (Kim et al., 2019, Section 4.4.2, Eqs. 7-9): a
    cold-start ("outer matrix") test of a music representation. Users' listening counts R are
    factorised by implicit-feedback weighted matrix factorisation (Hu, Koren & Volinsky, 2008)
    whose item factors are tied to the items' content features X by a linear map W (van den Oord
    et al., 2013; Wang & Blei, 2011). Held-out tracks are left out while the model is fit; their
    factors then come from the content alone, ``V_new = X_new W``, and each user's ranking of
    the tracks is scored by nDCG@500 with the held-out tracks that user played as relevant.

Model (Eqs. 7-9)
    With ``P = (R > 0)``, confidence ``C = 1 + alpha R`` and rank-``r`` factors ``U`` (users),
    ``V`` (items), ``W`` (``d x r``), fit

    ``L = sum_ui C_ui (P_ui - u_u . v_i)^2 + lambda_V/2 |V - XW|^2 + lambda_U/2 |U|^2
    + lambda_W/2 |W|^2``

    (squared Frobenius norms; the paper writes the norms without squares and the data term
    without a factor 1/2, we read it as above: the convention changes only the effective
    lambda_U and lambda_V by a factor 2, never the ratio lambda_W / lambda_V that sets W).
    Paper settings (the defaults of :class:`WMFParams`): alpha = 0.1, lambda_U = lambda_V =
    1e-5, lambda_W = 0.1, r = 50, 15 alternating-least-squares (ALS) iterations.

    One ALS iteration updates, in this order,

    - every user:  ``(V'V + V'(C_u - I)V + lambda_U/2 I) u_u = V' C_u p_u``
    - every item:  ``(U'U + U'(C_i - I)U + lambda_V/2 I) v_i = U' C_i p_i + lambda_V/2 W'x_i``
    - the map:     ``(X'X + lambda_W/lambda_V I) W = X'V``  (ridge regression of V on X)

    ``C_u - I`` is non-zero only where the user listened, so each system costs
    O(nnz_u r^2 + r^3) to build exactly, or O((nnz_u r + r^2) s) for ``s`` steps of conjugate
    gradient warm-started at the previous factors (the implicit-ALS trick of Hu et al. and
    Takacs et al., 2011, used by the ``implicit`` library). ``method="exact"`` solves every
    system with LAPACK (the authors' code does, ``np.linalg.solve``) and is the reference that
    the tests compare against a dense solve of L; ``method="cg"`` (3 steps) is about 3-6x
    faster. The exact solve is the default: on a demo-sized task (160 items) CG's nDCG@500
    differed from exact by up to 0.006 on single folds (within 0.0002 on a 27,000-item
    catalogue), more than the 0.002 the protocol allows (``docs/evaluation.md``).

Cold start and the metric (the paper's protocol, :mod:`mtdtl.evaluation.protocol`)
    Items are split into training and held-out items (a fixed split, e.g. a split column, or
    folds: repetition j holds out fold ``j mod n_folds``, :func:`item_folds`). Item content
    features are standardised on the training items. The model is fit on the training items
    only; then each user ranks a candidate set (``candidates``):

    - ``"catalogue"`` (default, the paper's protocol): every item of the catalogue is scored
      from its content, ``u_u . (W' x_i)``, warm and cold alike; the user's training items are
      removed and the whole remaining catalogue is ranked ("predicting user preference scores
      based on all tracks, including those that were held out", Section 4.1). This is what the
      authors' evaluation does (``WMFA.predict(features=X)`` scores every item as
      ``PHI . x_i``; their ``_evaluate_ranking`` drops the user's training items).
    - ``"held_out"``: only the held-out items are ranked (the cold-start protocol of van den
      Oord et al., 2013). The candidate set is about five times smaller, so nDCG is higher
      and not comparable with the paper's.
    - ``"catalogue_mixed"``: the whole catalogue minus the user's training items, warm items
      scored with their fitted factors V, cold ones with ``W' x_i``. ``XW`` is a shrunk ridge
      regression of V (lambda_W / lambda_V = 1e4), so cold items score far below unplayed warm
      items and almost never reach the top: nDCG ~ 0 whatever the features (kept to show why
      it is not the protocol).

    nDCG@k uses binary gains (a held-out track the user played is relevant), the usual
    ``1 / log2(rank + 1)`` discount, normalised by the ideal DCG of the user's relevant items
    capped at ``min(k, n_relevant)``; it is averaged over the users that have at least one
    relevant held-out track and at least one training interaction.

Functions follow mir_eval's shape: :func:`validate`, the metric :func:`ndcg_at_k`, the model
:func:`fit_wmf`, then :func:`evaluate` (one split, flat dict metric -> float) and
:func:`evaluate_recommendation` (one flat dict per repetition).

References
    Y. Hu, Y. Koren, C. Volinsky. Collaborative filtering for implicit feedback datasets. ICDM 2008.
    A. van den Oord, S. Dieleman, B. Schrauwen. Deep content-based music recommendation. NIPS 2013.
    G. Takacs, I. Pilaszy, D. Tikk. Applications of the conjugate gradient method for implicit
    feedback collaborative filtering. RecSys 2011.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
import numba
from numba import njit, prange
from threadpoolctl import threadpool_limits

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.protocol import CANDIDATES, PAPER, _check_candidates, fold_plan
from mtdtl.log import get_logger

__all__ = [
    "WMFParams", "WMFModel", "validate", "ndcg_at_k", "expected_random_ndcg", "fit_wmf",
    "wmf_objective", "item_folds", "evaluate", "evaluate_recommendation", "interactions_to_matrix",
    "CANDIDATES", "METHODS",
]

log = get_logger(__name__)

#: Default rank cut-off of nDCG (the paper's nDCG@500).
K_NDCG = PAPER.ndcg_k
METHODS = ("exact", "cg")


# --------------------------------------------------------------------------------------------
# parameters and model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WMFParams:
    """Hyper-parameters of the content-aware WMF (paper defaults, Section 4.4.2).

    Attributes
    ----------
    rank : int
        Number of latent factors r (50).
    alpha : float
        Confidence slope in ``C = 1 + alpha R`` (0.1).
    lambda_u, lambda_v, lambda_w : float
        Regularisation weights of U, of ``V - XW`` and of W (1e-5, 1e-5, 0.1).
    n_iterations : int
        ALS iterations (15).
    method : {"exact", "cg"}
        Per-row solver: an exact LAPACK solve of every normal equation (the paper's protocol),
        or a few conjugate-gradient steps warm-started at the previous factors.
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (3, as in ``implicit``).
    dtype : str
        Floating type of the factors (``"float32"`` is about twice as fast; ``"float64"`` for
        checks).
    init_scale : float
        Standard deviation of the random initial U and V (0.01, as in the authors' code).
    """

    rank: int = 50
    alpha: float = 0.1
    lambda_u: float = 1e-5
    lambda_v: float = 1e-5
    lambda_w: float = 0.1
    n_iterations: int = 15
    method: str = PAPER.als_solver
    cg_steps: int = 3
    dtype: str = "float32"
    init_scale: float = 0.01

    def __post_init__(self):
        if self.method not in METHODS:
            raise MtdtlError(f"unknown WMF method {self.method!r}; use one of {METHODS}")
        if self.rank < 1 or self.n_iterations < 0 or self.cg_steps < 1:
            raise MtdtlError(f"WMF needs rank >= 1, n_iterations >= 0 and cg_steps >= 1, got {self}")
        if min(self.alpha, self.lambda_u, self.lambda_v, self.lambda_w) < 0:
            raise MtdtlError(f"WMF alpha and lambdas must be non-negative, got {self}")
        if self.dtype not in ("float32", "float64"):
            raise MtdtlError(f"WMF dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WMFModel:
    """A fitted content-aware WMF.

    Attributes
    ----------
    U : np.ndarray [shape=(n_users, r)]
    V : np.ndarray [shape=(n_items, r)]
        Factors of the training items.
    W : np.ndarray [shape=(d, r)] or None
        Content map (None when fit without features).
    params : WMFParams
    feature_mean, feature_scale : np.ndarray [shape=(d,)] or None
        Standardisation applied to content features before ``X W`` (fit on training items).
    history : list of float
        Objective after each iteration (only when ``track_objective=True``).
    """

    U: np.ndarray
    V: np.ndarray
    W: np.ndarray | None
    params: WMFParams
    feature_mean: np.ndarray | None = None
    feature_scale: np.ndarray | None = None
    history: list = field(default_factory=list)

    def standardize(self, X: np.ndarray) -> np.ndarray:
        """Content features standardised with the training items' mean and scale."""
        X = np.asarray(X, dtype=np.float64)
        if self.feature_mean is None:
            return X
        return (X - self.feature_mean) / self.feature_scale

    def item_factors(self, X: np.ndarray) -> np.ndarray:
        """Factors of new (cold-start) items from their content: ``standardize(X) @ W``.

        Parameters
        ----------
        X : np.ndarray [shape=(n_new, d)]

        Returns
        -------
        np.ndarray [shape=(n_new, r)]
        """
        if self.W is None:
            raise MtdtlError("this WMF model was fit without item features: it cannot score new items")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.W.shape[0]:
            raise MtdtlError(f"item features have shape {X.shape}; the model expects (n, {self.W.shape[0]})")
        return (self.standardize(X) @ self.W).astype(self.U.dtype)


# --------------------------------------------------------------------------------------------
# numba kernels: one system per row of the sparse matrix, rows in parallel
# --------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=True)
def _solve_rows_cg(X, Y, indptr, indices, conf, A0, prior, steps):  # pragma: no cover - numba
    """In place: a few CG steps on ``(A0 + Y' diag(conf_u) Y) x_u = sum (1 + conf) y + prior_u``.

    ``conf`` holds alpha * R of the non-zeros; ``prior`` is (n_rows, r) or (0, r).
    """
    n, r = X.shape
    has_prior = prior.shape[0] == n
    for u in prange(n):
        x = X[u].copy()
        res = np.zeros(r, dtype=X.dtype)
        p = np.empty(r, dtype=X.dtype)
        ap = np.empty(r, dtype=X.dtype)
        # residual b - A x
        for a in range(r):
            s = 0.0
            for b in range(r):
                s += A0[a, b] * x[b]
            res[a] = -s
            if has_prior:
                res[a] += prior[u, a]
        for jj in range(indptr[u], indptr[u + 1]):
            j = indices[jj]
            c = conf[jj]
            yx = 0.0
            for a in range(r):
                yx += Y[j, a] * x[a]
            t = (1.0 + c) - c * yx
            for a in range(r):
                res[a] += t * Y[j, a]
        rs_old = 0.0
        for a in range(r):
            p[a] = res[a]
            rs_old += res[a] * res[a]
        for _ in range(steps):
            if rs_old < 1e-30:
                break
            for a in range(r):
                s = 0.0
                for b in range(r):
                    s += A0[a, b] * p[b]
                ap[a] = s
            for jj in range(indptr[u], indptr[u + 1]):
                j = indices[jj]
                c = conf[jj]
                yp = 0.0
                for a in range(r):
                    yp += Y[j, a] * p[a]
                yp *= c
                for a in range(r):
                    ap[a] += yp * Y[j, a]
            pap = 0.0
            for a in range(r):
                pap += p[a] * ap[a]
            if pap <= 0.0:
                break
            step = rs_old / pap
            rs_new = 0.0
            for a in range(r):
                x[a] += step * p[a]
                res[a] -= step * ap[a]
                rs_new += res[a] * res[a]
            beta = rs_new / rs_old
            for a in range(r):
                p[a] = res[a] + beta * p[a]
            rs_old = rs_new
        for a in range(r):
            X[u, a] = x[a]


@njit(parallel=True, cache=True)
def _solve_rows_exact(X, Y, indptr, indices, conf, A0, prior):  # pragma: no cover - numba
    """In place: exact solve of ``(A0 + Y' diag(conf_u) Y) x_u = sum (1 + conf) y + prior_u``."""
    n, r = X.shape
    has_prior = prior.shape[0] == n
    for u in prange(n):
        A = A0.copy()
        b = np.zeros(r, dtype=A0.dtype)
        if has_prior:
            for a in range(r):
                b[a] = prior[u, a]
        for jj in range(indptr[u], indptr[u + 1]):
            j = indices[jj]
            c = conf[jj]
            for a in range(r):
                ya = Y[j, a]
                b[a] += (1.0 + c) * ya
                cya = c * ya
                for bb in range(r):
                    A[a, bb] += cya * Y[j, bb]
        sol = np.linalg.solve(A, b)
        for a in range(r):
            X[u, a] = sol[a]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _as_csr_counts(R) -> sp.csr_matrix:
    if not sp.issparse(R):
        R = np.asarray(R)
        if R.ndim != 2:
            raise MtdtlError(f"the interaction matrix must be 2-D (users x items), got shape {R.shape}")
    R = sp.csr_matrix(R, dtype=np.float64)
    if R.nnz and not np.all(np.isfinite(R.data)):
        raise MtdtlError("the interaction matrix has NaN or infinite counts: clean them first")
    if R.nnz and R.data.min() < 0:
        raise MtdtlError("the interaction matrix has negative counts: play counts must be >= 0")
    R.sum_duplicates()
    R.eliminate_zeros()
    R.sort_indices()
    return R


def validate(R, item_features=None, *, test_items=None) -> tuple[sp.csr_matrix, np.ndarray | None, np.ndarray | None]:
    """Check an interaction matrix, item features and a hold-out mask; return them cleaned.

    Parameters
    ----------
    R : scipy.sparse matrix or np.ndarray [shape=(n_users, n_items)]
        Non-negative interaction counts (zeros are "no interaction").
    item_features : np.ndarray [shape=(n_items, d)] or None
        Finite content features, one row per item column of ``R``.
    test_items : np.ndarray [shape=(n_items,)] of bool or None
        Items held out while fitting.

    Returns
    -------
    R : scipy.sparse.csr_matrix (float64, sorted, no explicit zeros)
    X : np.ndarray [shape=(n_items, d)] float32 or float64 (as given; other types float64) or None
    test : np.ndarray [shape=(n_items,)] bool or None

    Raises
    ------
    MtdtlError
        Wrong shapes, NaN or infinite values, negative counts, an empty matrix, a hold-out that
        leaves no training item or no held-out item.
    """
    R = _as_csr_counts(R)
    n_users, n_items = R.shape
    if n_users == 0 or n_items == 0 or R.nnz == 0:
        raise MtdtlError(f"the interaction matrix {R.shape} has no interactions")
    X = None
    if item_features is not None:
        X = np.asarray(item_features)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if X.ndim != 2:
            raise MtdtlError(f"item features must be 2-D (items x dims), got shape {X.shape}")
        if X.shape[0] != n_items:
            raise MtdtlError(f"{X.shape[0]} item feature rows for {n_items} items: they must match "
                             "(one feature row per column of the interaction matrix)")
        if not np.all(np.isfinite(X)):
            bad = int((~np.isfinite(X)).any(axis=1).sum())
            raise MtdtlError(f"item features have NaN or infinite values in {bad} rows: "
                             "re-extract or drop those items")
    test = None
    if test_items is not None:
        test = np.asarray(test_items)
        if test.dtype != bool:
            idx = test.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n_items):
                raise MtdtlError(f"held-out item indices must lie in [0, {n_items}), got {idx.min()}..{idx.max()}")
            test = np.zeros(n_items, dtype=bool)
            test[idx] = True
        if test.shape != (n_items,):
            raise MtdtlError(f"the hold-out mask has shape {test.shape}; expected ({n_items},)")
        if test.all() or not test.any():
            raise MtdtlError(f"the hold-out leaves {int((~test).sum())} training items and "
                             f"{int(test.sum())} held-out items: both must be non-empty")
    return R, X, test


# --------------------------------------------------------------------------------------------
# metric
# --------------------------------------------------------------------------------------------


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ndcg_at_k(scores: np.ndarray, relevant, *, k: int = K_NDCG, exclude=None,
              chunk_size: int = 256) -> np.ndarray:
    """Normalised discounted cumulative gain at rank k, per user, with binary relevance.

    ``DCG@k = sum_{j=1..k} rel_j / log2(j + 1)`` over the items ranked by decreasing score;
    ``nDCG@k = DCG@k / IDCG@k`` with ``IDCG@k = sum_{j=1..min(k, n_rel)} 1 / log2(j + 1)``.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_users, n_items)]
        Predicted preference of every user for every item.
    relevant : np.ndarray of bool or scipy.sparse matrix [shape=(n_users, n_items)]
        Relevant items (non-zero = relevant).
    k : int
        Rank cut-off (500 in the paper).
    exclude : np.ndarray of bool or scipy.sparse matrix [shape=(n_users, n_items)], optional
        Items not to rank for a user (e.g. the training items the user played); they are never
        relevant.
    chunk_size : int
        Users processed at once (memory: ``chunk_size x n_items`` floats).

    Returns
    -------
    np.ndarray [shape=(n_users,)]
        nDCG@k in [0, 1]; NaN for users without relevant items.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise MtdtlError(f"scores must be 2-D (users x items), got shape {scores.shape}")
    if relevant is None or relevant.shape != scores.shape:
        raise MtdtlError(f"relevant has shape {getattr(relevant, 'shape', None)}; expected {scores.shape}")
    if exclude is not None and exclude.shape != scores.shape:
        raise MtdtlError(f"exclude has shape {exclude.shape}; expected {scores.shape}")
    if k < 1:
        raise MtdtlError(f"k must be >= 1, got {k}")
    n_users, n_items = scores.shape
    kk = min(k, n_items)
    disc = _discounts(kk)
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])
    out = np.full(n_users, np.nan)
    for lo in range(0, n_users, chunk_size):
        hi = min(lo + chunk_size, n_users)
        s = np.array(scores[lo:hi], dtype=np.float64, copy=True)
        rel = relevant[lo:hi]
        rel = (rel.toarray() if sp.issparse(rel) else np.asarray(rel)) != 0
        if exclude is not None:
            ex = exclude[lo:hi]
            ex = (ex.toarray() if sp.issparse(ex) else np.asarray(ex)) != 0
            s[ex] = -np.inf
            rel = rel & ~ex
        if np.isnan(s).any():
            raise MtdtlError("scores contain NaN: the model produced invalid predictions")
        if kk < n_items:
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
        else:
            top = np.argsort(-s, axis=1, kind="stable")
        gains = np.take_along_axis(rel, top, axis=1)
        dcg = gains @ disc
        n_rel = rel.sum(axis=1)
        idcg = cum_disc[np.minimum(n_rel, kk)]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:hi] = np.where(n_rel > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
    return out


def expected_random_ndcg(n_relevant, n_candidates, *, k: int = K_NDCG) -> np.ndarray:
    """Expected nDCG@k of a uniformly random ranking (for sanity checks).

    Each rank holds a relevant item with probability ``n_relevant / n_candidates``, so
    ``E[DCG@k] = n_relevant / n_candidates * sum_{j<=min(k, n_candidates)} 1 / log2(j + 1)``.
    """
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    n_cand = np.asarray(n_candidates, dtype=np.int64)
    out = np.empty(np.broadcast(n_rel, n_cand).shape)
    for idx, (nr, nc) in enumerate(np.broadcast(n_rel, n_cand)):
        kk = min(k, int(nc))
        disc = _discounts(kk)
        out.flat[idx] = (nr / nc) * disc.sum() / disc[: int(min(nr, kk))].sum() if nr > 0 else np.nan
    return out


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


def wmf_objective(R, X, U, V, W, params: WMFParams = WMFParams()) -> float:
    """The objective L (Eq. 7 as read in the module docstring) at ``(U, V, W)``, without densifying R.

    ``sum_ui C_ui (P_ui - u.v)^2 = sum_ui (u.v)^2 + sum_(u,i) in R [C_ui (1 - u.v)^2 - (u.v)^2]``
    and ``sum_ui (u.v)^2 = trace(U'U V'V)``.

    Parameters
    ----------
    R : scipy.sparse matrix [shape=(n_users, n_items)]
    X : np.ndarray [shape=(n_items, d)] or None
        Content features exactly as used in the fit (already standardised).
    U, V, W : np.ndarray
    """
    R = _as_csr_counts(R)
    U = np.asarray(U, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    coo = R.tocoo()
    pred = np.einsum("ij,ij->i", U[coo.row], V[coo.col])
    conf = 1.0 + params.alpha * coo.data
    data = np.trace((U.T @ U) @ (V.T @ V)) + np.sum(conf * (1.0 - pred) ** 2 - pred ** 2)
    prior = V if X is None else V - np.asarray(X, dtype=np.float64) @ np.asarray(W, dtype=np.float64)
    reg = params.lambda_v / 2 * np.sum(prior ** 2) + params.lambda_u / 2 * np.sum(U ** 2)
    if W is not None:
        reg += params.lambda_w / 2 * np.sum(np.asarray(W, dtype=np.float64) ** 2)
    return float(data + reg)


def fit_wmf(R, item_features=None, *, params: WMFParams = WMFParams(), seed: int = 0,
            standardize: bool = True, init: tuple[np.ndarray, np.ndarray] | None = None,
            track_objective: bool = False, num_threads: int | None = None,
            progress: bool = False) -> WMFModel:
    """Fit the content-aware WMF by alternating least squares (Eqs. 7-9).

    Parameters
    ----------
    R : scipy.sparse matrix or np.ndarray [shape=(n_users, n_items)]
        Training interaction counts.
    item_features : np.ndarray [shape=(n_items, d)] or None
        Content features X of the training items (None: plain WMF, V regularised towards 0).
    params : WMFParams
        Hyper-parameters (paper defaults).
    seed : int
        Seed of the random initial factors.
    standardize : bool
        Standardise the features (mean 0, unit variance per dimension over the training items)
        before use; the model keeps the transform for :meth:`WMFModel.item_factors`.
    init : (U0, V0), optional
        Initial factors instead of the seeded random ones.
    track_objective : bool
        Record the objective after each iteration in ``model.history`` (costs one pass over R).
    num_threads : int, optional
        Threads of the per-row solvers (default: ``$MTDTL_NUM_THREADS`` when set, else numba's,
        all cores).
    progress : bool
        tqdm bar over iterations.

    Returns
    -------
    WMFModel
    """
    R, X, _ = validate(R, item_features)
    n_users, n_items = R.shape
    dtype = np.dtype(params.dtype)
    r = params.rank
    mean = scale = None
    if X is not None:
        if params.lambda_v <= 0:
            raise MtdtlError("a content prior needs lambda_v > 0 (it ties V to XW)")
        if standardize:
            mean = X.mean(axis=0, dtype=np.float64)
            scale = X.std(axis=0, dtype=np.float64)
            scale[scale < 1e-12] = 1.0
            X = (X - mean.astype(X.dtype)) * (1.0 / scale).astype(X.dtype)
    rng = np.random.default_rng(seed)
    if init is not None:
        U = np.array(init[0], dtype=dtype, copy=True)
        V = np.array(init[1], dtype=dtype, copy=True)
        if U.shape != (n_users, r) or V.shape != (n_items, r):
            raise MtdtlError(f"initial factors have shapes {U.shape}, {V.shape}; expected "
                             f"({n_users}, {r}), ({n_items}, {r})")
    else:
        U = (rng.standard_normal((n_users, r)) * params.init_scale).astype(dtype)
        V = (rng.standard_normal((n_items, r)) * params.init_scale).astype(dtype)

    # BLAS threads busy-wait between calls and then steal the cores from numba's threads (the
    # advice implicit gives too); on a loaded 2-core machine even X'X ran 3x faster on one
    # thread. So BLAS stays single-threaded for the whole fit.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(R, X, U, V, params, dtype, mean, scale, track_objective, num_threads, progress)


def _fit(R, X, U, V, params, dtype, mean, scale, track_objective, num_threads, progress) -> WMFModel:
    n_users, n_items = R.shape
    r = params.rank
    Rt = R.T.tocsr()
    Rt.sort_indices()
    conf_u = (params.alpha * R.data).astype(dtype)
    conf_i = (params.alpha * Rt.data).astype(dtype)
    ind_u = (R.indptr.astype(np.int64), R.indices.astype(np.int32))
    ind_i = (Rt.indptr.astype(np.int64), Rt.indices.astype(np.int32))
    lam_u = params.lambda_u / 2
    lam_v = params.lambda_v / 2
    eye = np.eye(r)

    W = None
    if X is not None:
        d = X.shape[1]
        W = np.zeros((d, r))
        mu = params.lambda_w / params.lambda_v
        Xd = X.astype(dtype)
        gram_x = (Xd.T @ Xd).astype(np.float64)  # float32 Gram is ample for a ridge solve
        gram_x[np.diag_indices(d)] += mu
        if mu == 0:
            gram_x[np.diag_indices(d)] += 1e-10 * max(1.0, float(np.trace(gram_x)) / d)
        chol_x = scipy.linalg.cho_factor(gram_x)
    no_prior = np.zeros((0, r), dtype=dtype)

    def solve(rows, other, indptr_indices, conf, A0, prior):
        indptr, indices = indptr_indices
        if params.method == "cg":
            _solve_rows_cg(rows, other, indptr, indices, conf, A0.astype(dtype), prior, params.cg_steps)
        else:
            _solve_rows_exact(rows, other, indptr, indices, conf, A0.astype(np.float64), prior)

    history = []
    state = {"W": W}

    def als_iteration():
        W = state["W"]
        solve(U, V, ind_u, conf_u, (V.T @ V).astype(np.float64) + lam_u * eye, no_prior)
        prior = no_prior if W is None else Xd @ (lam_v * W).astype(dtype)
        solve(V, U, ind_i, conf_i, (U.T @ U).astype(np.float64) + lam_v * eye, prior)
        if W is not None:
            state["W"] = scipy.linalg.cho_solve(chol_x, (Xd.T @ V).astype(np.float64))
        if track_objective:
            history.append(wmf_objective(R, X, U, V, state["W"], params))

    iterator = range(params.n_iterations)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="WMF ALS", unit="it")
    if num_threads is None and os.environ.get("MTDTL_NUM_THREADS", "").strip().isdigit():
        num_threads = int(os.environ["MTDTL_NUM_THREADS"])
    previous = numba.get_num_threads()
    if num_threads:
        numba.set_num_threads(max(1, min(int(num_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        for _ in iterator:
            als_iteration()
    finally:
        numba.set_num_threads(previous)
    return WMFModel(U=U, V=V, W=state["W"], params=params, feature_mean=mean, feature_scale=scale,
                    history=history)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _first(columns, names, what):
    for n in names:
        if n in columns:
            return n
    raise MtdtlError(f"the interaction table has no {what} column: expected one of {names}, "
                     f"got {list(columns)}")


def interactions_to_matrix(interactions: pd.DataFrame, item_ids: Sequence | None = None
                           ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """A (user, item, count) table as a sparse users x items matrix.

    Parameters
    ----------
    interactions : pd.DataFrame
        Columns ``user_id`` (or ``user``), ``track_id`` (or ``item_id`` / ``item``) and
        ``play_count`` (or ``count`` / ``value``). Repeated pairs are summed.
    item_ids : sequence, optional
        Column order of the matrix (e.g. the rows of a feature matrix). Interactions with items
        outside it are dropped with a warning. Default: sorted unique items of the table.

    Returns
    -------
    R : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
    user_ids : np.ndarray [shape=(n_users,)]
    item_ids : np.ndarray [shape=(n_items,)]
    """
    cols = interactions.columns
    ucol = _first(cols, ("user_id", "user"), "user")
    icol = _first(cols, ("track_id", "item_id", "item"), "item")
    ccol = _first(cols, ("play_count", "count", "value"), "count")
    df = interactions[[ucol, icol, ccol]]
    if df[ccol].isna().any():
        raise MtdtlError(f"the interaction table has {int(df[ccol].isna().sum())} missing counts")
    if item_ids is None:
        items = np.array(sorted(df[icol].unique(), key=str), dtype=object)
    else:
        items = np.asarray(list(item_ids), dtype=object)
        if len(pd.unique(items)) != len(items):
            raise MtdtlError("item ids (feature rows) contain duplicates")
    # ids are matched as text, so that 123 and "123" (a csv read with or without dtype=str) agree
    df = df.assign(**{icol: df[icol].astype(str)})
    pos = pd.Series(np.arange(len(items)), index=pd.Index(items.astype(str)))
    if pos.index.has_duplicates:
        raise MtdtlError("item ids (feature rows) are not unique as text")
    known = df[icol].isin(pos.index)
    if not known.all():
        missing = df.loc[~known, icol].unique()
        log.warning("dropping %d interactions with %d items that have no features (e.g. %s)",
                    int((~known).sum()), len(missing), ", ".join(map(str, missing[:5])))
        df = df[known]
    users = np.array(sorted(df[ucol].unique(), key=str))
    upos = pd.Series(np.arange(len(users)), index=pd.Index(users))
    R = sp.csr_matrix((df[ccol].to_numpy(dtype=np.float64),
                       (upos[df[ucol]].to_numpy(), pos[df[icol]].to_numpy())),
                      shape=(len(users), len(items)))
    R.sum_duplicates()
    return R, users, items


def item_folds(n_items: int, *, n_repetitions: int = 5, n_folds: int = PAPER.n_folds, seed: int = 0,
               eligible: np.ndarray | None = None, groups=None,
               return_descriptions: bool = False):
    """Held-out item sets by folds: repetition j holds out fold ``j mod n_folds`` of a shuffle
    seeded by ``seed + j // n_folds`` (:func:`mtdtl.evaluation.protocol.fold_plan`), so five
    repetitions with five folds hold out every item exactly once (20% each time, the paper's
    80/20; the authors' code held out a random 5%, ``n_folds=20`` is the closest fold version).

    Parameters
    ----------
    n_items : int
    n_repetitions, n_folds, seed : int
    eligible : np.ndarray [shape=(n_items,)] of bool, optional
        Items that may be held out (default: all).
    groups : array-like [shape=(n_items,)], optional
        Group of every item (e.g. artist): a group is held out whole.
    return_descriptions : bool
        Also return the description of every fold.

    Returns
    -------
    list of np.ndarray [shape=(n_items,)] of bool
        (and a list of str with ``return_descriptions=True``)
    """
    pool = np.arange(n_items) if eligible is None else np.flatnonzero(eligible)
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n_items,):
            raise MtdtlError(f"item groups have shape {g.shape}; expected ({n_items},)")
        g = g[pool]
    plan = fold_plan(len(pool), n_folds=n_folds, n_repetitions=n_repetitions, seed=seed, groups=g)
    masks = []
    for f in plan:
        m = np.zeros(n_items, dtype=bool)
        m[pool[f.test]] = True
        masks.append(m)
    if return_descriptions:
        return masks, [f.description for f in plan]
    return masks


def _widen(M: sp.csr_matrix, columns: np.ndarray, n_columns: int) -> sp.csr_matrix:
    """``M`` with its columns placed at ``columns`` of a matrix with ``n_columns`` columns."""
    M = sp.csr_matrix(M)
    return sp.csr_matrix((M.data, columns[M.indices], M.indptr), shape=(M.shape[0], n_columns))


def evaluate(R, item_features, test_items, *, k: int = K_NDCG, params: WMFParams = WMFParams(),
             seed: int = 0, candidates: str = PAPER.candidates, min_count: float = 1.0,
             progress: bool = False) -> dict[str, float]:
    """Cold-start evaluation on one hold-out: fit on the training items, score every user.

    Parameters
    ----------
    R : scipy.sparse matrix [shape=(n_users, n_items)]
        Interaction counts over all items (training and held-out).
    item_features : np.ndarray [shape=(n_items, d)]
    test_items : np.ndarray [shape=(n_items,)] of bool
        Held-out items.
    k : int
        nDCG cut-off (500).
    params : WMFParams
    seed : int
        Seed of the factor initialisation.
    candidates : {"catalogue", "held_out", "catalogue_mixed"}
        What each user ranks. ``"catalogue"`` (default, the paper's protocol): every item
        scored from its content ``U (W' x_i)``, warm and cold alike, the user's training items
        removed, the whole remaining catalogue ranked. ``"held_out"``: only the held-out items
        (a smaller candidate set: higher nDCG than the paper's protocol gives). ``"catalogue_mixed"``:
        warm items scored with their fitted factors V and cold ones from content; the
        shrunk content prediction puts cold items below the warm ones, so nDCG ~ 0 (see the
        module docstring).
    min_count : float
        A held-out item is relevant for a user who played it at least this often.

    Returns
    -------
    dict
        ``{"ndcg@<k>": float}``
    """
    candidates = _check_candidates(candidates)
    R, X, test = validate(R, item_features, test_items=test_items)
    if X is None:
        raise MtdtlError("cold-start evaluation needs item features")
    train = ~test
    R_train = R[:, train]
    R_test = R[:, test]
    model = fit_wmf(R_train, X[train], params=params, seed=seed, progress=progress)
    relevant = (R_test >= min_count).astype(np.int8).tocsr()
    has_train = np.diff(R_train.indptr) > 0
    users = np.flatnonzero((np.diff(relevant.indptr) > 0) & has_train)
    if len(users) == 0:
        raise MtdtlError("no user has both a training interaction and a relevant held-out item: "
                         "nothing to evaluate (hold out fewer or other items)")
    U = model.U[users]
    n_items = R.shape[1]
    if candidates == "held_out":
        scores = U @ model.item_factors(X[test]).T
        rel = relevant[users]
        exclude = None
    else:
        if candidates == "catalogue":
            V_all = model.item_factors(X)
        else:  # catalogue_mixed
            V_all = np.empty((n_items, params.rank), dtype=model.V.dtype)
            V_all[train] = model.V
            V_all[test] = model.item_factors(X[test])
        scores = U @ V_all.T
        rel = _widen(relevant[users], np.flatnonzero(test), n_items)
        exclude = _widen(R_train[users], np.flatnonzero(train), n_items)
    per_user = ndcg_at_k(scores, rel, k=k, exclude=exclude)
    log.info("cold-start nDCG@%d (%s) over %d users, %d training / %d held-out items: %.4f",
             k, candidates, len(users), int(train.sum()), int(test.sum()), float(np.nanmean(per_user)))
    return {f"ndcg@{k}": float(np.nanmean(per_user))}


def evaluate_recommendation(interactions, item_features, *, item_ids: Sequence | None = None,
                            test_items=None, item_split=None, item_split_name: str | None = None,
                            item_groups=None, n_repetitions: int = 5, n_folds: int = PAPER.n_folds,
                            k: int = K_NDCG, params: WMFParams = WMFParams(), seed: int = 0,
                            candidates: str = PAPER.candidates, min_count: float = 1.0,
                            progress: bool = False) -> list[dict]:
    """Cold-start recommendation with a representation's item features, repeated (Section 4.4).

    Parameters
    ----------
    interactions : scipy.sparse matrix [shape=(n_users, n_items)] or pd.DataFrame
        Play counts. A table has columns ``user_id, track_id, play_count`` (see
        :func:`interactions_to_matrix`) and optionally ``split``, the split of the item (the
        demo corpus' recommendation task): then items with ``split == "test"`` are held out.
    item_features : np.ndarray [shape=(n_items, d)] or pd.DataFrame indexed by item id
        Content features (rows align with the matrix columns, or with ``item_ids``).
    item_ids : sequence, optional
        Item id of every feature row (with a table of interactions and an array of features).
    test_items : np.ndarray [shape=(n_items,)] of bool or int indices, optional
        Fixed held-out items (then repetitions differ by the initialisation seed only).
    item_split : array-like [shape=(n_items,)] of {"train", "valid", "test"}, optional
        Split per item (aligned with the feature rows), an alternative to ``test_items``.
    item_split_name : str, optional
        What the fixed split is, for the ``split`` entry of the results (default ``"given"``,
        or ``"given: split column"`` for a table's split column).
    item_groups : array-like [shape=(n_items,)], optional
        Group of every item (e.g. artist, aligned with the feature rows): folds hold out
        whole groups. None: items are held out at random (as in the authors' code).
    n_repetitions : int
        Repetitions (5 in the paper). Without a fixed hold-out, repetition j holds out the
        j-th of ``n_folds`` item folds (:func:`item_folds`).
    n_folds : int
        Folds (5: 20% of the items held out, the paper's 80/20 of Section 4.4; the authors'
        released code held out a random 5%).
    k, params, candidates, min_count
        See :func:`evaluate` (default: nDCG@500 over the whole catalogue, the paper's protocol).
    seed : int
        Base seed: repetition j initialises the factors with ``seed + j``; folds are shuffled
        with ``seed + j // n_folds``.

    Returns
    -------
    list of dict
        One ``{"ndcg@<k>": float, "split": str}`` per repetition; ``split`` describes the
        hold-out (``"fold 2/5 random (shuffle seed 0)"``, or the fixed split's name).
    """
    candidates = _check_candidates(candidates)
    if n_repetitions < 1:
        raise MtdtlError(f"n_repetitions must be >= 1, got {n_repetitions}")
    if isinstance(item_features, pd.DataFrame):
        if item_ids is not None:
            raise MtdtlError("give item ids either as the features' index or as item_ids, not both")
        item_ids = item_features.index.to_numpy()
        item_features = item_features.to_numpy(dtype=np.float64)
    if isinstance(interactions, pd.DataFrame):
        if item_ids is None:
            raise MtdtlError("with a table of interactions, say which item each feature row is "
                             "(item_ids=..., or features as a DataFrame indexed by item id)")
        R, _, items = interactions_to_matrix(interactions, item_ids)
        if "split" in interactions.columns and test_items is None and item_split is None:
            icol = _first(interactions.columns, ("track_id", "item_id", "item"), "item")
            split_of = interactions.groupby(interactions[icol].astype(str))["split"].first()
            item_split = pd.Series(items.astype(str)).map(split_of).fillna("train").to_numpy()
            item_split_name = item_split_name or "given: split column"
    else:
        R = interactions
        if item_ids is not None and len(item_ids) != np.asarray(item_features).shape[0]:
            raise MtdtlError(f"{len(item_ids)} item ids for {np.asarray(item_features).shape[0]} feature rows")
    if item_split is not None:
        if test_items is not None:
            raise MtdtlError("give either test_items or item_split, not both")
        split = np.asarray(item_split).astype(str)
        unknown = set(split) - {"train", "valid", "test"}
        if unknown:
            raise MtdtlError(f"unknown item split values {sorted(unknown)}; use train, valid, test")
        test_items = split == "test"
    R, X, test = validate(R, item_features, test_items=test_items)
    if X is None:
        raise MtdtlError("recommendation needs item features")
    if test is not None:
        if item_groups is not None:
            log.info("item_groups ignored: the hold-out is fixed")
        masks = [test] * n_repetitions
        names = [item_split_name or "given"] * n_repetitions
    else:
        masks, names = item_folds(R.shape[1], n_repetitions=n_repetitions, n_folds=n_folds, seed=seed,
                                  groups=item_groups, return_descriptions=True)
    results = []
    for j, (mask, name) in enumerate(zip(masks, names)):
        ev = evaluate(R, X, mask, k=k, params=params, seed=seed + j, candidates=candidates,
                      min_count=min_count, progress=progress)
        results.append({**ev, "split": name})
    return results
