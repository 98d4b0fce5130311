"""Parametric bootstrap of a fitted hierarchical model (the intervals of Figs. 11 and 12).

Each replicate simulates a new response from the fit, ``y_b = X b_hat + Z u_b + e_b`` with
``u_b ~ N(0, diag(vc_hat))`` (every variance component, every target) and
``e_b ~ N(0, se_hat^2)``, refits the same model warm-started at the original estimates, and keeps
the fixed effects (and variance components). Percentile intervals of the B refits are the
bootstrap intervals. Resampling representations within strategy is *not* valid here (it ignores
that the targets are a sample, and gives far too narrow intervals).

Replicate b draws from ``numpy.random.SeedSequence(seed).spawn(B)[b]``, so the draws are the same
whichever way the refits run: through a ``dask.distributed`` Client when one is given, else in
a pool of processes (``concurrent.futures``, one BLAS thread each), else serially.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtdtl.analysis.mixed import DEFAULT_METHOD, MixedFit
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["BootstrapResult", "parametric_bootstrap", "simulate_response"]

log = get_logger(__name__)


@dataclass
class BootstrapResult:
    """Draws of a parametric bootstrap.

    Attributes
    ----------
    fe : pandas.DataFrame [shape=(B, n_fixed)]
        Fixed effects of each refit (NaN rows where a refit failed).
    vcomp : pandas.DataFrame [shape=(B, n_components + 1)]
        Variance components of each refit; last column ``residual``.
    converged : numpy.ndarray [shape=(B,)]
        Whether each refit's optimiser reported convergence.
    B, seed : int
    level : float
    backend : str
        ``"serial"``, ``"processes"`` or ``"dask"``.
    workers : int
    seconds : float
        Wall time of all refits (including starting the processes or cluster tasks).
    completed_at : numpy.ndarray [shape=(B,)]
        Seconds from the start at which each refit's result arrived (their spread gives the
        steady-state rate, without the start-up cost).
    """

    fe: pd.DataFrame
    vcomp: pd.DataFrame
    converged: np.ndarray
    B: int
    seed: int
    level: float
    backend: str
    workers: int
    seconds: float
    estimates: pd.Series = field(repr=False, default=None)
    completed_at: np.ndarray = field(repr=False, default=None)

    def extrapolate(self, B: int) -> float:
        """Seconds this backend would take for ``B`` replicates: start-up plus steady-state rate.

        The start-up is the time to the first result less one steady-state interval; the rate is
        measured between the first and the last result. An estimate, not a measurement.
        """
        t = np.sort(np.asarray(self.completed_at, dtype=float))
        if len(t) < 3 or t[-1] <= t[0]:
            return self.seconds / self.B * B
        per = (t[-1] - t[0]) / (len(t) - 1)
        start = max(0.0, t[0] - per)
        return start + per * B

    @property
    def n_ok(self) -> int:
        """Refits that returned estimates."""
        return int(self.fe.notna().all(axis=1).sum())

    def intervals(self, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals of the fixed effects.

        Returns
        -------
        pandas.DataFrame
            ``term, estimate`` (of the original fit), ``boot_mean, boot_se, ci_low, ci_high``.
        """
        level = self.level if level is None else level
        lo, hi = 0.5 - level / 2, 0.5 + level / 2
        d = self.fe.dropna()
        return pd.DataFrame({
            "term": self.fe.columns,
            "estimate": self.estimates.reindex(self.fe.columns).to_numpy() if self.estimates is not None else np.nan,
            "boot_mean": d.mean().to_numpy(),
            "boot_se": d.std(ddof=1).to_numpy(),
            "ci_low": d.quantile(lo).to_numpy(),
            "ci_high": d.quantile(hi).to_numpy(),
        })

    def variance_intervals(self, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals of the variance components (and the residual variance)."""
        level = self.level if level is None else level
        d = self.vcomp.dropna()
        return pd.DataFrame({"component": d.columns, "ci_low": d.quantile(0.5 - level / 2).to_numpy(),
                             "ci_high": d.quantile(0.5 + level / 2).to_numpy()})


# --------------------------------------------------------------------------- one replicate

def _payload(fit: MixedFit, method, reml) -> dict:
    res = fit.result
    m = res.model
    return {
        "exog": np.asarray(m.exog), "groups": np.asarray(m.groups), "exog_vc": m.exog_vc,
        "fe": np.asarray(res.fe_params, dtype=float), "vcomp": np.asarray(res.vcomp, dtype=float),
        "scale": float(res.scale), "start": res.params_object, "method": list(method), "reml": bool(reml),
        "k_vc": len(m.exog_vc.names),
        # MixedLM's own row layout: groups in sorted order, rows in order of appearance
        "rows": [np.asarray(m.row_indices[g]) for g in m.group_labels],
    }


def simulate_response(payload: dict, rng: np.random.Generator) -> np.ndarray:
    """One response vector simulated from a fit (fixed part, random effects, noise).

    Parameters
    ----------
    payload : dict
        What ``_payload`` extracts from a fit (design, estimates, row layout of the groups).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray [shape=(n_obs,)]
    """
    n = len(payload["groups"])
    y = payload["exog"] @ payload["fe"] + rng.normal(0.0, np.sqrt(payload["scale"]), size=n)
    vc = payload["exog_vc"]
    for j in range(len(vc.names)):
        sd = np.sqrt(max(payload["vcomp"][j], 0.0))
        for gi, rows in enumerate(payload["rows"]):
            mat = vc.mats[j][gi]
            u = rng.normal(0.0, sd, size=mat.shape[1])
            y[rows] += np.asarray(mat @ u).ravel()
    return y


def _refit_one(payload: dict, seed_seq) -> tuple[np.ndarray, np.ndarray, bool]:
    from statsmodels.regression.mixed_linear_model import MixedLM

    rng = np.random.default_rng(seed_seq)
    k_fe, k_vc = payload["exog"].shape[1], payload["k_vc"]
    try:
        y = simulate_response(payload, rng)
        model = MixedLM(y, payload["exog"], payload["groups"], exog_vc=payload["exog_vc"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(method=payload["method"], reml=payload["reml"], start_params=payload["start"])
        return (np.asarray(res.fe_params, dtype=float),
                np.append(np.asarray(res.vcomp, dtype=float), float(res.scale)), bool(res.converged))
    except Exception as exc:  # noqa: BLE001 - one failed refit must not end a bootstrap of 1,000
        log.debug("bootstrap refit failed: %s", exc)
        return np.full(k_fe, np.nan), np.full(k_vc + 1, np.nan), False


_WORKER: dict = {}


def _init_worker(payload: dict) -> None:
    try:  # one BLAS thread per process: the processes are the parallelism
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception as exc:  # noqa: BLE001 - optional: the refits still run, only slower
        log.debug("could not limit BLAS threads in a bootstrap worker: %s", exc)
    _WORKER["payload"] = payload


def _refit_worker(seed_seq):
    return _refit_one(_WORKER["payload"], seed_seq)


def _refit_dask(seed_seq, payload):
    return _refit_one(payload, seed_seq)


# --------------------------------------------------------------------------- driver

def _default_workers() -> int:
    from mtdtl.device import usable_cores

    return usable_cores()


def parametric_bootstrap(fit: MixedFit, *, B: int = 1000, seed: int = 0, client=None,
                         workers: int | None = None, method=None, level: float | None = None,
                         progress: bool = True) -> BootstrapResult:
    """Parametric bootstrap of a :class:`MixedFit`; also stored as ``fit.bootstrap``.

    Parameters
    ----------
    fit : MixedFit
        From :func:`fit_strategy_model` or :func:`fit_size_model`.
    B : int
        Replicates. A refit of the first model on the paper's 2,975 rows takes a few seconds
        (see docs/analysis.md): B = 1,000 is for a cluster or a long run; B = 200 gives
        usable 95% intervals.
    seed : int
        Root of the replicates' seed sequence (results do not depend on the backend).
    client : dask.distributed.Client, optional
        Run the refits on this cluster (the design is scattered once to every worker).
    workers : int, optional
        Without a client: processes to use (default: the CPUs available); 1 runs serially
        in this process.
    method : sequence of str, optional
        Optimisers of the refits (default: those of the fit, ``("powell", "lbfgs")``).
    level : float, optional
        Level of the percentile intervals (default: the fit's).
    progress : bool
        Show a progress bar.

    Returns
    -------
    BootstrapResult
    """
    from tqdm.auto import tqdm

    if not isinstance(fit, MixedFit):
        raise MtdtlError(f"parametric_bootstrap needs a MixedFit (from fit_strategy_model / fit_size_model), "
                         f"not {type(fit).__name__}")
    B = int(B)
    if B < 2:
        raise MtdtlError(f"B must be at least 2 (got {B}); percentile intervals need many replicates")
    level = fit.level if level is None else level
    payload = _payload(fit, method or DEFAULT_METHOD, bool(getattr(fit.result, "reml", True)))
    seeds = np.random.SeedSequence(seed).spawn(B)
    fe = np.full((B, payload["exog"].shape[1]), np.nan)
    vc = np.full((B, payload["k_vc"] + 1), np.nan)
    conv = np.zeros(B, dtype=bool)
    done_at = np.full(B, np.nan)
    t0 = time.perf_counter()
    bar = tqdm(total=B, desc=f"bootstrap {fit.name} model", disable=not progress)

    def store(b, out):
        fe[b], vc[b], conv[b] = out
        done_at[b] = time.perf_counter() - t0
        bar.update(1)

    try:
        if client is not None:
            from distributed import as_completed as dask_as_completed

            backend = "dask"
            info = client.scheduler_info() if hasattr(client, "scheduler_info") else {}
            n_workers = len(info.get("workers", {})) or 1
            remote = client.scatter(payload, broadcast=True)
            futures = client.map(_refit_dask, seeds, payload=remote, pure=False)
            index = {f.key: b for b, f in enumerate(futures)}
            for f in dask_as_completed(futures):
                store(index[f.key], f.result())
        else:
            n_workers = _default_workers() if workers is None else int(workers)
            n_workers = max(1, min(n_workers, B))
            if n_workers == 1:
                backend = "serial"
                for b, s in enumerate(seeds):
                    store(b, _refit_one(payload, s))
            else:
                backend = "processes"
                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(payload,)) as pool:
                    futs = {pool.submit(_refit_worker, s): b for b, s in enumerate(seeds)}
                    for f in as_completed(futs):
                        store(futs[f], f.result())
    finally:
        bar.close()
    secs = time.perf_counter() - t0
    names = list(fit.result.fe_params.index)
    out = BootstrapResult(
        fe=pd.DataFrame(fe, columns=names),
        vcomp=pd.DataFrame(vc, columns=list(fit.result.model.exog_vc.names) + ["residual"]),
        converged=conv, B=B, seed=int(seed), level=level, backend=backend, workers=n_workers,
        seconds=secs, estimates=fit.result.fe_params.copy(), completed_at=done_at)
    failed = B - out.n_ok
    if failed:
        log.warning("%d of %d bootstrap refits failed and are left out", failed, B)
    if (~conv).sum() > 0.05 * B:
        log.warning("%d of %d bootstrap refits did not report convergence", int((~conv).sum()), B)
    log.info("bootstrap of the %s model: B=%d, %s with %d worker(s), %.1f s", fit.name, B, backend,
             n_workers, secs)
    fit.bootstrap = out
    return out
