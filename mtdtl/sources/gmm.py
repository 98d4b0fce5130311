"""Gaussian mixture reduction of scalar learning labels (``bpm``, ``year``; Section 2.3).

A scalar label x (a tempo, a release year) becomes the posterior over the k components of a
one-dimensional Gaussian mixture, ``z_c = P(c | x)``, a k-dimensional categorical distribution
like the pLSA topic mixtures of the other sources (k = 50 in the paper).

The mixture (scikit-learn's :class:`~sklearn.mixture.GaussianMixture`, EM from a k-means start)
is fit on the training tracks' values after standardising them (mean 0, standard deviation 1),
with ``reg_covar = 1e-3`` in standardised units: demo years come from a handful of distinct
values, and a component sitting on one repeated value would otherwise collapse to zero width.
Components are numbered by increasing mean, so component 1 is the slowest tempo / oldest year.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["ScalarGMM", "mixture_density"]

log = get_logger(__name__)


@dataclass
class ScalarGMM:
    """A 1-D Gaussian mixture whose posterior is the reduced label.

    Parameters
    ----------
    k : int, number of components (50 in the paper)
    seed : int, seed of the k-means initialisation
    reg_covar : float, variance floor in standardised units
    max_iter, n_init : passed to scikit-learn

    Attributes (after :meth:`fit`)
    ------------------------------
    weights_, means_, stds_ : np.ndarray [shape=(k,)] in the original units, sorted by mean
    shift_, scale_ : float, the standardisation
    """

    k: int = 50
    seed: int = 0
    reg_covar: float = 1e-3
    max_iter: int = 500
    n_init: int = 1
    weights_: np.ndarray | None = field(default=None, repr=False)
    means_: np.ndarray | None = field(default=None, repr=False)
    stds_: np.ndarray | None = field(default=None, repr=False)
    shift_: float = 0.0
    scale_: float = 1.0
    converged_: bool = False
    n_distinct_: int = 0
    _gmm: object = field(default=None, repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)

    def fit(self, x) -> "ScalarGMM":
        """Fit to the training values ``x`` [shape=(n,)] (finite)."""
        from sklearn.mixture import GaussianMixture

        from mtdtl.sources.reduce import check_k

        self.k = check_k(self.k)
        x = np.asarray(x, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise MtdtlError("ScalarGMM.fit got NaN or infinite values")
        if x.size < self.k:
            raise MtdtlError(
                f"a GMM with k={self.k} components needs at least {self.k} training values, got {x.size}; "
                "lower k or add training tracks"
            )
        self.shift_ = float(x.mean())
        sd = float(x.std())
        self.scale_ = sd if sd > 0 else 1.0
        gmm = GaussianMixture(
            n_components=self.k, covariance_type="full", reg_covar=self.reg_covar,
            max_iter=self.max_iter, n_init=self.n_init, random_state=self.seed,
        )
        self.n_distinct_ = int(np.unique(x).size)
        with warnings.catch_warnings():
            # k-means warns when there are fewer distinct values than components (a few
            # composers' dates in the demo): expected, the spare components get tiny weights.
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            gmm.fit(self._std(x)[:, None])
        if self.n_distinct_ < self.k:
            log.info("GMM: %d distinct training values for k=%d components", self.n_distinct_, self.k)
        order = np.argsort(gmm.means_.ravel(), kind="stable")
        self._gmm, self._order = gmm, order
        self.weights_ = gmm.weights_[order]
        self.means_ = gmm.means_.ravel()[order] * self.scale_ + self.shift_
        self.stds_ = np.sqrt(gmm.covariances_.ravel()[order]) * self.scale_
        self.converged_ = bool(gmm.converged_)
        return self

    def _std(self, x: np.ndarray) -> np.ndarray:
        return (x - self.shift_) / self.scale_

    def posterior(self, x) -> np.ndarray:
        """P(component | x) [shape=(n, k)] float32, rows sum to 1, components sorted by mean."""
        if self._gmm is None:
            raise MtdtlError("this ScalarGMM is not fitted yet: call fit(x) first")
        x = np.asarray(x, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise MtdtlError("ScalarGMM.posterior got NaN or infinite values")
        p = self._gmm.predict_proba(self._std(x)[:, None])[:, self._order]
        p = p.astype(np.float32)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def components(self) -> pd.DataFrame:
        """One row per component: ``component`` (1-based), ``weight``, ``mean``, ``std``."""
        return pd.DataFrame({
            "component": np.arange(1, self.k + 1),
            "weight": self.weights_,
            "mean": self.means_,
            "std": self.stds_,
        })


def mixture_density(components: pd.DataFrame, x) -> tuple[np.ndarray, np.ndarray]:
    """Density of a 1-D mixture given its components table (``weight``, ``mean``, ``std``).

    Returns
    -------
    pdf : np.ndarray [shape=(n_points,)], the mixture density at ``x``
    parts : np.ndarray [shape=(k, n_points)], each weighted component's density
    """
    x = np.asarray(x, dtype=np.float64)
    w = components["weight"].to_numpy(dtype=np.float64)[:, None]
    mu = components["mean"].to_numpy(dtype=np.float64)[:, None]
    sd = components["std"].to_numpy(dtype=np.float64)[:, None]
    parts = w * norm.pdf(x[None, :], loc=mu, scale=sd)
    return parts.sum(axis=0), parts
