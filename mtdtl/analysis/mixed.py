"""The two hierarchical models of Section 5.2 (Eqs. 10-16), fitted with statsmodels' MixedLM.

First model (Eqs. 10-12): a fixed intercept and a fixed n*-slope per representation strategy r,
each with its own random deviation per target d::

    y*_i = b0[r] + u0[r, d] + (b1[r] + u1[r, d]) n*_i + e_i,
    u0[r, d] ~ N(0, s0[r]^2), u1[r, d] ~ N(0, s1[r]^2), e_i ~ N(0, se^2).

In MixedLM this is, with one group per target, fixed terms ``0 + i_r + x_r`` (``i_r`` the 0/1
indicator of strategy r, ``x_r = i_r n*``) and one variance component per ``i_r`` and per
``x_r`` (``vc_formula``), which makes the random effects independent, as in the paper. The
SS-R slope is not identifiable (n* = 0 for SS-R) and is left out; so is the slope of any
strategy whose n* does not vary.

Second model (Eqs. 13-16): ``y* ~ r* + n* + r* n*`` with independent random slopes of the
three terms per target (no random intercept: the scores are standardised within target).

Optimiser: MixedLM's gradient methods (``bfgs``, ``lbfgs``) stop early on these models, far
from the optimum; ``method=["powell", "lbfgs"]`` converges (Powell first, L-BFGS to polish).
Fits are REML.

Inference: with D targets, the fixed effects that carry a random effect per target are
estimated from D independent deviations, so Wald intervals use a t distribution with
D - 1 degrees of freedom (z intervals under-cover with 7 targets); terms without a random
effect (the intercept of the second model) use the residual degrees of freedom N - p. The
parametric bootstrap (:mod:`mtdtl.analysis.bootstrap`) gives the paper's percentile
intervals. Pairwise comparisons of strategies are contrasts ``e_a - e_b`` tested with
``res.t_test`` (Wald t, D - 1 df), with Holm's adjustment over the family of all pairs.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from mtdtl.analysis.data import (
    STRATEGIES,
    AnalysisData,
    as_analysis_data,
    strategy_label,
)
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["MixedFit", "fit_strategy_model", "fit_size_model", "pairwise_contrasts",
           "DEFAULT_METHOD", "STRATEGY_FORMULA", "SIZE_FORMULA", "term_name"]

log = get_logger(__name__)

#: Optimisers tried in turn (see the module docstring).
DEFAULT_METHOD = ("powell", "lbfgs")
#: Human-readable formulas of the two models (the fitted patsy formulas are built from them).
STRATEGY_FORMULA = "y* ~ 0 + sum_r [i_r + i_r:n*]  |  vc by target: i_r, i_r:n*   (Eqs. 10-12)"
SIZE_FORMULA = "y* ~ 1 + r* + n* + r*:n*  |  vc by target: r*, n*, r*:n*   (Eqs. 13-16)"

_SAFE = {"ss_r": "ssr", "ms_sr@fc": "mssrfc", "ms_cr@6": "mscr6", "ms_cr@4": "mscr4",
         "ms_cr@2": "mscr2", "mss_cr": "msscr"}
_SIZE_TERMS = {"Intercept": "b0", "rstar": "b10", "nstar": "b20", "rn": "b30"}


def term_name(arch: str, kind: str) -> str:
    """Column / parameter name of a strategy term of the first model.

    ``term_name("ms_cr@6", "intercept") == "i_mscr6"``, ``term_name("ms_cr@6", "slope") ==
    "x_mscr6"``.
    """
    return ("i_" if kind == "intercept" else "x_") + _SAFE[arch]


@dataclass
class MixedFit:
    """A fitted hierarchical model and its tidy tables.

    Attributes
    ----------
    name : str
        ``"strategy"`` (Eqs. 10-12) or ``"size"`` (Eqs. 13-16).
    formula : str
    result : statsmodels.regression.mixed_linear_model.MixedLMResults
    terms : pandas.DataFrame
        One row per fixed term: ``term`` (parameter name), ``label`` (paper notation),
        ``kind`` (intercept / slope / ...), ``arch`` (first model), ``has_re`` (a variance
        component by target goes with it), ``df`` (degrees of freedom of its t interval).
    fixed : pandas.DataFrame
        ``term, label, kind, arch, estimate, se, df, t, p, ci_low, ci_high`` (Wald t).
    variance : pandas.DataFrame
        ``component, variance, sd``; the last row is the residual.
    n_obs, n_groups : int
    converged : bool
    llf : float
    fit_warnings : list of str
        Warnings statsmodels issued during the fit.
    seconds : float
        Wall time of the fit.
    bootstrap : BootstrapResult or None
        Set by :func:`mtdtl.analysis.parametric_bootstrap`.
    """

    name: str
    formula: str
    result: object = field(repr=False)
    terms: pd.DataFrame = field(repr=False)
    fixed: pd.DataFrame
    variance: pd.DataFrame
    n_obs: int
    n_groups: int
    converged: bool
    llf: float
    fit_warnings: list
    seconds: float
    level: float = 0.95
    bootstrap: object = field(default=None, repr=False)

    @property
    def model(self):
        """The statsmodels ``MixedLM`` model."""
        return self.result.model

    def intervals(self, method: str = "auto") -> pd.DataFrame:
        """Fixed effects with their intervals.

        Parameters
        ----------
        method : {"auto", "t", "bootstrap"}
            ``auto``: the bootstrap's when one was run, else t.

        Returns
        -------
        pandas.DataFrame
            ``term, label, kind, arch, estimate, ci_low, ci_high, method``.
        """
        if method not in ("auto", "t", "bootstrap"):
            raise MtdtlError(f"method must be 'auto', 't' or 'bootstrap', not {method!r}")
        if method == "auto":
            method = "bootstrap" if self.bootstrap is not None else "t"
        out = self.fixed[["term", "label", "kind", "arch", "estimate"]].copy()
        if method == "t":
            out["ci_low"], out["ci_high"] = self.fixed["ci_low"].to_numpy(), self.fixed["ci_high"].to_numpy()
            lo, hi = self.fixed["df"].min(), self.fixed["df"].max()
            out["method"] = f"Wald t, {lo:g} df" if lo == hi else f"Wald t, {lo:g}-{hi:g} df"
        else:
            if self.bootstrap is None:
                raise MtdtlError("no bootstrap for this fit: run mtdtl.analysis.parametric_bootstrap(fit) first")
            ci = self.bootstrap.intervals().set_index("term")
            out["ci_low"] = out["term"].map(ci["ci_low"])
            out["ci_high"] = out["term"].map(ci["ci_high"])
            out["method"] = f"parametric bootstrap percentile (B={self.bootstrap.n_ok})"
        return out

    def summary(self) -> str:
        """The statsmodels summary text."""
        return str(self.result.summary())


# --------------------------------------------------------------------------- fitting

def _check_rank(model, name: str, why: str) -> None:
    """The fixed-effects design has full column rank, else a clear error (not numpy's
    'Singular matrix' from deep inside the optimiser)."""
    X = np.asarray(model.exog, dtype=float)
    rank = int(np.linalg.matrix_rank(X))
    if rank < X.shape[1]:
        raise MtdtlError(f"the {name} model cannot be fitted on this table: its {X.shape[1]} fixed terms "
                         f"({', '.join(model.exog_names)}) have rank {rank} over the runs: {why}")


def _fit(formula: str, df: pd.DataFrame, vc: dict, *, method, reml: bool, maxiter: int | None,
         name: str = "mixed", why: str = "too few distinct runs"):
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM.from_formula(formula, df, groups="target", vc_formula=vc)
    _check_rank(model, name, why)
    kw = {} if maxiter is None else {"maxiter": maxiter}
    caught = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = model.fit(method=list(method), reml=reml, **kw)
        if not res.converged:
            # a second pass from where the first stopped usually finishes the job
            res2 = model.fit(method=list(method), reml=reml, start_params=res.params_object, **kw)
            if res2.converged or res2.llf > res.llf:
                res = res2
    for w in rec:
        msg = str(w.message).splitlines()[0]
        if msg not in caught and "Retrying MixedLM" not in msg:
            caught.append(msg)
    if not res.converged:
        log.warning("the mixed model did not converge (%s); read its estimates with care", "; ".join(caught))
    return res, caught


def _variance_table(res) -> pd.DataFrame:
    names = list(res.model.exog_vc.names)
    v = np.asarray(res.vcomp, dtype=float)
    out = pd.DataFrame({"component": names, "variance": v})
    out = pd.concat([out, pd.DataFrame({"component": ["residual"], "variance": [float(res.scale)]})],
                    ignore_index=True)
    out["sd"] = np.sqrt(out["variance"])
    return out


def _fixed_table(res, terms: pd.DataFrame, level: float) -> pd.DataFrame:
    est = res.fe_params.reindex(terms["term"]).to_numpy()
    se = res.bse_fe.reindex(terms["term"]).to_numpy()
    dfs = terms["df"].to_numpy(dtype=float)
    tval = est / se
    p = 2 * stats.t.sf(np.abs(tval), dfs)
    q = stats.t.ppf(0.5 + level / 2, dfs)
    out = terms[["term", "label", "kind", "arch"]].copy()
    out["estimate"], out["se"], out["df"], out["t"], out["p"] = est, se, dfs, tval, p
    out["ci_low"], out["ci_high"] = est - q * se, est + q * se
    return out.reset_index(drop=True)


def _prepared(data) -> AnalysisData:
    data = as_analysis_data(data)
    if data.n_targets < 2:
        raise MtdtlError(f"the hierarchical models need at least 2 targets to estimate variation across "
                         f"targets; the table has {data.n_targets} ({', '.join(data.targets)})")
    return data


def fit_strategy_model(data, *, method=DEFAULT_METHOD, reml: bool = True, level: float = 0.95,
                       maxiter: int | None = None) -> MixedFit:
    """Fit the first hierarchical model (Eqs. 10-12): per-strategy intercepts and n*-slopes.

    Parameters
    ----------
    data : AnalysisData, or anything :func:`mtdtl.analysis.prepare` reads
    method : sequence of str
        MixedLM optimisers tried in turn (default ``("powell", "lbfgs")``).
    reml : bool
    level : float
        Confidence level of the t intervals.
    maxiter : int, optional
        Iteration cap passed to the optimiser.

    Returns
    -------
    MixedFit
        Fixed terms ``i_<arch>`` (intercept b0[r], standardised score of strategy r with
        n = 1 for SS-R and n = 2 otherwise) and ``x_<arch>`` (slope b1[r], change per
        additional source); variance components of the same names.
    """
    data = _prepared(data)
    df = data.table.copy()
    present = [a for a in STRATEGIES if (df["arch"] == a).any()]
    rows = []
    for a in present:
        col = term_name(a, "intercept")
        df[col] = (df["arch"] == a).astype(float)
        rows.append((col, f"b0[{strategy_label(a)}]", "intercept", a))
    for a in present:
        if a == "ss_r":
            continue
        ns = df.loc[df["arch"] == a, "nstar"]
        if ns.nunique() < 2:
            log.warning("%s: all its runs have n = %d; its slope is not identifiable and is left out",
                        strategy_label(a), int(ns.iloc[0]) + 2)
            continue
        col = term_name(a, "slope")
        df[col] = (df["arch"] == a) * df["nstar"]
        rows.append((col, f"b1[{strategy_label(a)}]", "slope", a))
    terms = pd.DataFrame(rows, columns=["term", "label", "kind", "arch"])
    terms["has_re"] = True
    terms["df"] = float(data.n_targets - 1)
    formula = "y ~ 0 + " + " + ".join(terms["term"])
    vc = {t: f"0 + {t}" for t in terms["term"]}
    t0 = time.perf_counter()
    res, caught = _fit(formula, df, vc, method=method, reml=reml, maxiter=maxiter, name="strategy",
                       why="some strategies' terms cannot be told apart with these runs")
    secs = time.perf_counter() - t0
    log.info("strategy model: %d obs, %d targets, %d fixed terms, %.1f s, converged=%s",
             len(df), data.n_targets, len(terms), secs, res.converged)
    return MixedFit(name="strategy", formula=STRATEGY_FORMULA, result=res, terms=terms,
                    fixed=_fixed_table(res, terms, level), variance=_variance_table(res),
                    n_obs=len(df), n_groups=data.n_targets, converged=bool(res.converged),
                    llf=float(res.llf), fit_warnings=caught, seconds=secs, level=level)


def fit_size_model(data, *, method=DEFAULT_METHOD, reml: bool = True, level: float = 0.95,
                   maxiter: int | None = None) -> MixedFit:
    """Fit the second hierarchical model (Eqs. 13-16): r*, n* and their interaction.

    Parameters
    ----------
    data : AnalysisData, or anything :func:`mtdtl.analysis.prepare` reads
    method, reml, level, maxiter
        As :func:`fit_strategy_model`.

    Returns
    -------
    MixedFit
        Fixed terms ``Intercept`` (b0), ``rstar`` (b10), ``nstar`` (b20), ``rn`` (b30);
        variance components ``rstar``, ``nstar``, ``rn`` (sigma_1..3^2).
    """
    data = _prepared(data)
    df = data.table.copy()
    if df["rstar"].nunique() < 2:
        raise MtdtlError("the size model needs at least two representation strategies; the table has only "
                         f"{sorted(set(df['arch']))}")
    if df["nstar"].nunique() < 2:
        raise MtdtlError("the size model needs runs with different numbers of sources")
    n_obs, k = len(df), 4
    terms = pd.DataFrame({
        "term": ["Intercept", "rstar", "nstar", "rn"],
        "label": ["b0", "b10 (r*)", "b20 (n*)", "b30 (r* x n*)"],
        "kind": ["intercept", "size", "sources", "interaction"],
        "arch": ["", "", "", ""],
        "has_re": [False, True, True, True],
    })
    terms["df"] = np.where(terms["has_re"], data.n_targets - 1, n_obs - k).astype(float)
    vc = {t: f"0 + {t}" for t in ("rstar", "nstar", "rn")}
    t0 = time.perf_counter()
    res, caught = _fit("y ~ rstar + nstar + rn", df, vc, method=method, reml=reml, maxiter=maxiter, name="size",
                       why="r*, n* and r* x n* need multi-source runs of at least two architectures (with one, "
                           "r* x n* is a multiple of n*) and with different numbers of sources")
    secs = time.perf_counter() - t0
    log.info("size model: %d obs, %d targets, %.1f s, converged=%s", n_obs, data.n_targets, secs, res.converged)
    return MixedFit(name="size", formula=SIZE_FORMULA, result=res, terms=terms,
                    fixed=_fixed_table(res, terms, level), variance=_variance_table(res),
                    n_obs=n_obs, n_groups=data.n_targets, converged=bool(res.converged),
                    llf=float(res.llf), fit_warnings=caught, seconds=secs, level=level)


# --------------------------------------------------------------------------- contrasts

def _holm(p: np.ndarray) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def pairwise_contrasts(fit: MixedFit, *, kind: str = "intercept", adjust: str = "holm",
                       level: float | None = None) -> pd.DataFrame:
    """All pairwise differences between strategies of the first model.

    Parameters
    ----------
    fit : MixedFit
        A :func:`fit_strategy_model` fit.
    kind : {"intercept", "slope"}
        Compare the intercepts b0[r] (the paper's comparison) or the slopes b1[r].
    adjust : {"holm", "none"}
        Multiple-comparison adjustment over the family of all pairs.
    level : float, optional
        Confidence level of the intervals (default: the fit's).

    Returns
    -------
    pandas.DataFrame
        One row per pair, larger network first: ``a, b, contrast`` (e.g. "MSS-CR - SS-R"),
        ``estimate, se, df, t, p, p_adj, ci_low, ci_high`` (Wald t with the terms' df,
        via ``res.t_test``); with a bootstrap also ``p_boot, p_boot_adj`` (two-sided
        percentile p of the bootstrap differences) and ``boot_low, boot_high``. The columns
        ``test`` and ``adjustment`` say which test and adjustment the numbers are.
    """
    if fit.name != "strategy":
        raise MtdtlError("pairwise contrasts compare the strategies of the first model (fit_strategy_model)")
    if kind not in ("intercept", "slope"):
        raise MtdtlError(f"kind must be 'intercept' or 'slope', not {kind!r}")
    if adjust not in ("holm", "none"):
        raise MtdtlError(f"adjust must be 'holm' or 'none', not {adjust!r}")
    level = fit.level if level is None else level
    terms = fit.terms[fit.terms["kind"] == kind].reset_index(drop=True)
    if len(terms) < 2:
        raise MtdtlError(f"fewer than two strategies have a {kind} term; nothing to compare")
    names = list(fit.result.fe_params.index)
    boot = fit.bootstrap
    rows = []
    for (i, ti), (j, tj) in combinations(terms.iterrows(), 2):
        a, b = tj, ti  # later in r* order (larger network) first
        L = np.zeros(len(names))
        L[names.index(a["term"])], L[names.index(b["term"])] = 1.0, -1.0
        tt = fit.result.t_test(L[None, :])
        est, se = float(np.squeeze(tt.effect)), float(np.squeeze(tt.sd))
        dof = float(min(a["df"], b["df"]))
        tval = est / se
        q = stats.t.ppf(0.5 + level / 2, dof)
        row = {"a": a["arch"], "b": b["arch"],
               "contrast": f"{strategy_label(a['arch'])} - {strategy_label(b['arch'])}",
               "estimate": est, "se": se, "df": dof, "t": tval, "p": 2 * stats.t.sf(abs(tval), dof),
               "ci_low": est - q * se, "ci_high": est + q * se}
        if boot is not None:
            d = (boot.fe[a["term"]] - boot.fe[b["term"]]).dropna().to_numpy()
            row["p_boot"] = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))) if len(d) else np.nan
            row["boot_low"], row["boot_high"] = (np.quantile(d, [0.5 - level / 2, 0.5 + level / 2])
                                                 if len(d) else (np.nan, np.nan))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_adj"] = _holm(out["p"]) if adjust == "holm" else out["p"]
    if boot is not None:
        out["p_boot_adj"] = _holm(out["p_boot"]) if adjust == "holm" else out["p_boot"]
    out["test"] = f"Wald t-test of b_a - b_b (res.t_test), {out['df'].min():g} df"
    out["adjustment"] = "Holm over all pairs" if adjust == "holm" else "none"
    cols = ["a", "b", "contrast", "estimate", "se", "df", "t", "p", "p_adj", "ci_low", "ci_high"]
    if boot is not None:
        cols += ["p_boot", "p_boot_adj", "boot_low", "boot_high"]
    return out[cols + ["test", "adjustment"]]
