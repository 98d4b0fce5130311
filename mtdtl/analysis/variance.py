"""Variance components of the learning sources (Section 5.3, Table 6, Figure 14).

For each target, on the multi-source (non-SS-R) representations, the presence of each of the 8
learning sources is a crossed random factor with two levels::

    y*_i = mu + sum_s a_s[x_is] + e_i,    a_s[0], a_s[1] ~ N(0, v_s),    e_i ~ N(0, se^2),

and Table 6 reports each ``v_s`` as a percent of ``sum_s v_s`` (the 8 components; the residual
is not in the denominator). A large component means a large difference in performance, on
that target, between having the source or not.

Two estimators:

- ``"mixedlm"``: REML with statsmodels' MixedLM (one group, one ``vc_formula`` per source);
- ``"anova"`` (default): the moment (ANOVA) estimator from one OLS fit of
  ``y* ~ 1 + x_1 + ... + x_8``. With two levels, ``a_s[1] - a_s[0] ~ N(0, 2 v_s)`` and its OLS
  estimate ``d_s`` has ``E[d_s^2] = 2 v_s + se^2 [(X'X)^-1]_ss``, so
  ``v_s = max(0, (d_s^2 - s^2 [(X'X)^-1]_ss) / 2)``, which is Type-III
  ``(MS_s - MS_e) / k_s``. It agrees with REML to about a percentage point on tables shaped
  like the paper's (tested) and is hundreds of times faster.

Figure 14 correlates each (target, source) component with the standardised performance of
the SS-R representations of that source on that target (Pearson; the paper reports 0.38).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mtdtl.analysis.data import as_analysis_data
from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["source_variance_components", "variance_table", "format_table6", "ssr_performance", "VarianceSsrCorrelation",
           "variance_vs_ssr", "best_ssr_source"]

log = get_logger(__name__)


def _anova(g: pd.DataFrame, sources: list, adjust_for_arch: bool) -> np.ndarray:
    cols = [np.ones(len(g))] + [g[f"s_{s}"].to_numpy(float) for s in sources]
    if adjust_for_arch:
        archs = sorted(set(g["arch"]))
        cols += [(g["arch"] == a).to_numpy(float) for a in archs[1:]]
    X = np.column_stack(cols)
    y = g["y"].to_numpy(float)
    n, p = X.shape
    if n <= p:
        raise MtdtlError(f"{n} multi-source runs cannot estimate {len(sources)} source components "
                         f"(need more than {p} runs)")
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < p:
        raise MtdtlError("the presence of the sources is collinear in these runs (e.g. always together); "
                         "their variance components cannot be separated")
    resid = y - X @ beta
    s2 = float(resid @ resid) / (n - p)
    xtx_inv_diag = np.diag(np.linalg.inv(X.T @ X))
    k = len(sources)
    return np.maximum(0.0, (beta[1:1 + k] ** 2 - s2 * xtx_inv_diag[1:1 + k]) / 2.0)


def _mixedlm(g: pd.DataFrame, sources: list, adjust_for_arch: bool, method) -> np.ndarray:
    from statsmodels.regression.mixed_linear_model import MixedLM

    g = g.reset_index(drop=True).copy()
    g["one"] = 1
    vcf = {s: f"0 + C(s_{s})" for s in sources}
    formula = "y ~ C(arch)" if adjust_for_arch and g["arch"].nunique() > 1 else "y ~ 1"
    model = MixedLM.from_formula(formula, g, groups="one", vc_formula=vcf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(method=list(method), reml=True)
    if not res.converged:
        log.warning("MixedLM variance components did not converge")
    v = pd.Series(np.asarray(res.vcomp, dtype=float), index=list(model.exog_vc.names))
    return v.reindex(sources).to_numpy()


def source_variance_components(data, *, method: str = "anova", adjust_for_arch: bool = False,
                               optimizer=("powell", "lbfgs")) -> pd.DataFrame:
    """Variance component of each learning source's presence, per target (Table 6).

    Parameters
    ----------
    data : AnalysisData, or anything :func:`mtdtl.analysis.prepare` reads
    method : {"anova", "mixedlm"}
        Moment estimator from OLS (fast) or REML (module docstring).
    adjust_for_arch : bool
        Add the architecture as a fixed effect (not in the paper; it removes the strategy
        differences from the residual).
    optimizer : sequence of str
        MixedLM optimisers for ``method="mixedlm"``.

    Returns
    -------
    pandas.DataFrame
        One row per (target, source): ``target, source, variance, percent`` (of the sum over
        the sources estimable on that target), ``n_runs``. A source present in all or none of
        the runs has NaN.
    """
    if method not in ("anova", "mixedlm"):
        raise MtdtlError(f"method must be 'anova' or 'mixedlm', not {method!r}")
    data = as_analysis_data(data)
    ms = data.table[data.table["arch"] != "ss_r"]
    if ms.empty:
        raise MtdtlError("no multi-source representations: the source variance components (Table 6) "
                         "are computed on the non-SS-R runs")
    rows = []
    for t in data.targets:
        g = ms[ms["target"] == t]
        if g.empty:
            continue
        varying = [s for s in SOURCE_NAMES if g[f"s_{s}"].nunique() == 2]
        if not varying:
            log.warning("%s: no source varies across the multi-source runs; no components", t)
            v = np.array([])
        elif method == "anova":
            v = _anova(g, varying, adjust_for_arch)
        else:
            v = _mixedlm(g, varying, adjust_for_arch, optimizer)
        comp = dict(zip(varying, v))
        total = float(np.nansum(v)) if len(v) else 0.0
        for s in SOURCE_NAMES:
            val = comp.get(s, np.nan)
            rows.append({"target": t, "source": s, "variance": val,
                         "percent": 100.0 * val / total if total > 0 else (0.0 if np.isfinite(val) else np.nan),
                         "n_runs": g["representation"].nunique()})
    return pd.DataFrame(rows)


def variance_table(components: pd.DataFrame, *, decimals: int | None = None) -> pd.DataFrame:
    """Table 6: percent of each source (rows, in source order) per target (columns)."""
    out = components.pivot(index="source", columns="target", values="percent")
    targets = list(dict.fromkeys(components["target"]))
    out = out.reindex(index=list(SOURCE_NAMES), columns=targets)
    out.columns.name = None
    return out.round(decimals) if decimals is not None else out


def format_table6(table: pd.DataFrame, *, labels: bool = True) -> pd.DataFrame:
    """Table 6 as the paper prints it: whole percents, "<1" below one, "*" on each target's largest.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`variance_table` output.
    labels : bool
        Use the paper's short target names as column headers.
    """
    from mtdtl.analysis.data import target_label

    out = pd.DataFrame(index=table.index, columns=table.columns, dtype=object)
    for t in table.columns:
        col = table[t]
        top = col.idxmax() if col.notna().any() else None
        for s, v in col.items():
            text = "" if not np.isfinite(v) else ("<1" if v < 1 else f"{v:.0f}")
            out.loc[s, t] = text + ("*" if s == top else "")
    if labels:
        out.columns = [target_label(t) for t in table.columns]
    return out


def ssr_performance(data) -> pd.DataFrame:
    """Mean standardised score of the SS-R representations of each source on each target.

    Returns
    -------
    pandas.DataFrame
        ``target, source, y`` (mean standardised score), ``value`` (mean raw score), ``n_runs``.
    """
    data = as_analysis_data(data)
    ss = data.table[data.table["arch"] == "ss_r"]
    if ss.empty:
        return pd.DataFrame(columns=["target", "source", "y", "value", "n_runs"])
    out = (ss.groupby(["target", "sources"], sort=False)
           .agg(y=("y", "mean"), value=("value", "mean"), n_runs=("representation", "nunique"))
           .reset_index().rename(columns={"sources": "source"}))
    return out


def best_ssr_source(data) -> dict:
    """The source whose SS-R representations score best on each target (used by Figure 13).

    Returns
    -------
    dict
        target -> source (targets without SS-R runs are absent).
    """
    perf = ssr_performance(data)
    if perf.empty:
        return {}
    idx = perf.groupby("target")["y"].idxmax()
    return dict(zip(perf.loc[idx, "target"], perf.loc[idx, "source"]))


@dataclass
class VarianceSsrCorrelation:
    """Figure 14's data: variance component vs standardised SS-R performance.

    Attributes
    ----------
    points : pandas.DataFrame
        ``target, source, percent, variance, y`` (SS-R standardised performance).
    r, p : float
        Pearson correlation of ``percent`` and ``y`` and its two-sided p-value.
    n : int
        Points used.
    """

    points: pd.DataFrame
    r: float
    p: float
    n: int


def variance_vs_ssr(data, components: pd.DataFrame | None = None) -> VarianceSsrCorrelation:
    """Correlate the sources' variance components with their SS-R performance (Figure 14).

    Parameters
    ----------
    data : AnalysisData, or anything :func:`mtdtl.analysis.prepare` reads
    components : pandas.DataFrame, optional
        :func:`source_variance_components` output (computed when omitted).

    Returns
    -------
    VarianceSsrCorrelation
    """
    data = as_analysis_data(data)
    comp = source_variance_components(data) if components is None else components
    perf = ssr_performance(data)
    pts = comp.merge(perf[["target", "source", "y"]], on=["target", "source"], how="inner")
    pts = pts[np.isfinite(pts["percent"]) & np.isfinite(pts["y"])].reset_index(drop=True)
    if len(pts) >= 3 and pts["percent"].std() > 0 and pts["y"].std() > 0:
        r, p = stats.pearsonr(pts["percent"], pts["y"])
    else:
        r, p = np.nan, np.nan
    return VarianceSsrCorrelation(points=pts, r=float(r), p=float(p), n=len(pts))


