"""Figures 8-15 of Kim et al. (2019), Section 5, from a results table or the analysis outputs.

Each function returns a bare matplotlib Figure in the house style (:mod:`mtdtl.plots.base`:
constrained layout, at most :data:`~mtdtl.plots.base.MAX_WIDTH_IN` inches wide, fonts readable on
a laptop) and never shows it; :func:`save_figure` (from :mod:`mtdtl.plots.base`) writes PNG and
PDF. Colours are keyed by architecture id (:data:`ARCH_COLORS`) and by learning source
(:data:`SOURCE_COLORS`), the same in every figure; the baselines (MFCC, Rand, Choi) are
horizontal lines, as in the paper. Per-target figures have three panels a row.

==========  ====================================================  ==================================
figure      what                                                  input
==========  ====================================================  ==================================
Fig. 8      SS-R scores per source and target                     results table / AnalysisData
Fig. 9      scores per strategy (box plots)                       results table / AnalysisData
Fig. 10     standardised score by number of sources               results table / AnalysisData
Fig. 11     first model: intercepts and slopes with intervals     MixedFit (strategy) / StudyAnalysis
Fig. 12     second model: b0, b10, b20, b30 with intervals        MixedFit (size) / StudyAnalysis
Fig. 13     by number of sources, with / without the best source  results table / AnalysisData
Fig. 14     variance component vs SS-R performance                VarianceSsrCorrelation / data
Fig. 15     parameters (and FLOPs) by number of sources           compactness table / nothing
==========  ====================================================  ==================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mtdtl.analysis.data import (
    BASELINE_KINDS,
    STRATEGIES,
    AnalysisData,
    as_analysis_data,
    strategy_label,
    target_label,
)
from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.plots.base import MAX_WIDTH_IN, new_figure, save_figure, style

__all__ = [
    "ARCH_COLORS", "SOURCE_COLORS", "BASELINE_STYLES", "save_figure", "fig8_single_source",
    "fig9_strategies", "fig10_n_sources", "fig11_strategy_effects", "fig12_size_effects",
    "fig13_best_source", "fig14_variance_vs_ssr", "fig15_compactness", "all_figures",
]

#: One colour per architecture, from small/shared (grey, blue) to large/separate (red).
ARCH_COLORS = {"ss_r": "#6e6e6e", "ms_sr@fc": "#1f77b4", "ms_cr@6": "#17a2b8", "ms_cr@4": "#2ca02c",
               "ms_cr@2": "#ff7f0e", "mss_cr": "#d62728"}
#: One colour per learning source.
SOURCE_COLORS = dict(zip(SOURCE_NAMES, ["#7f7f7f", "#e377c2", "#8c564b", "#bcbd22", "#1f77b4",
                                        "#9467bd", "#17becf", "#d62728"]))
#: Line style and label of each baseline.
BASELINE_STYLES = {"mfcc": {"ls": "--", "color": "0.15", "label": "MFCC"},
                   "rand": {"ls": ":", "color": "0.15", "label": "Rand"},
                   "choi": {"ls": "-.", "color": "0.15", "label": "Choi"}}
#: Tick labels of categorical axes (8 sources, 6 strategies) in the narrow panels.
_SMALL = 8.5


def _data(obj) -> AnalysisData:
    if hasattr(obj, "data") and isinstance(obj.data, AnalysisData):
        return obj.data
    return as_analysis_data(obj)


def _grid(n: int, *, ncols: int = 3, panel_h: float = 2.7):
    """A figure with one panel per target, ``ncols`` a row; unused cells hidden."""
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(MAX_WIDTH_IN, panel_h * nrows + 0.9)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _legend(fig, handles, labels, *, ncol: int | None = None):
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 5), frameon=False)


def _baselines(ax, data: AnalysisData, target: str, *, column: str = "value"):
    b = data.baselines
    if b.empty:
        return
    b = b[b["target"] == target]
    for kind in BASELINE_KINDS:
        v = b.loc[b["kind"] == kind, column]
        if len(v):
            ax.axhline(float(v.mean()), lw=1.1, zorder=1, **BASELINE_STYLES[kind])


def _metric(data: AnalysisData, target: str) -> str:
    m = data.table.loc[data.table["target"] == target, "metric"]
    return str(m.iloc[0]) if len(m) else ""


def _jitter(n: int, width: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-width, width, size=n)


def _empty(ax, text: str):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.4")


def _baseline_handles(data: AnalysisData):
    from matplotlib.lines import Line2D

    kinds = [k for k in BASELINE_KINDS if (data.baselines["kind"] == k).any()] if not data.baselines.empty else []
    return ([Line2D([], [], lw=1.1, **{k: v for k, v in BASELINE_STYLES[k].items() if k != "label"})
             for k in kinds], [BASELINE_STYLES[k]["label"] for k in kinds])


# --------------------------------------------------------------------------- Figure 8

def fig8_single_source(results, *, seed: int = 0):
    """Figure 8: performance of the single-source representations (SS-R) per target.

    Small points are individual SS-R runs, large points the mean per source; baselines are
    horizontal lines. Scores are the raw metric (mean over repetitions).
    """
    from matplotlib.lines import Line2D

    data = _data(results)
    with style():
        fig, axes = _grid(data.n_targets)
        ss = data.table[data.table["arch"] == "ss_r"]
        used = [s for s in SOURCE_NAMES if (ss["sources"] == s).any()]
        for i, (ax, t) in enumerate(zip(axes, data.targets)):
            g = ss[ss["target"] == t]
            ax.set_title(target_label(t))
            ax.set_ylabel(_metric(data, t))
            if g.empty:
                _empty(ax, "no SS-R runs")
            for x, s in enumerate(used):
                v = g.loc[g["sources"] == s, "value"].to_numpy()
                if not len(v):
                    continue
                ax.scatter(x + _jitter(len(v), 0.12, seed + i * 31 + x), v, s=10, alpha=0.55,
                           color=SOURCE_COLORS[s], lw=0, zorder=2)
                ax.scatter([x], [v.mean()], s=45, color=SOURCE_COLORS[s], edgecolor="k", lw=0.6, zorder=3)
            _baselines(ax, data, t)
            ax.set_xticks(range(len(used)))
            ax.set_xticklabels(used, rotation=60, ha="right", fontsize=_SMALL)
            ax.set_xlim(-0.6, len(used) - 0.4)
        h, lab = _baseline_handles(data)
        h = [Line2D([], [], ls="", marker="o", color="0.3", markeredgecolor="k", ms=6),
             Line2D([], [], ls="", marker="o", color="0.3", alpha=0.55, ms=3)] + h
        lab = ["mean per source", "one SS-R run"] + lab
        _legend(fig, h, lab)
        fig.suptitle("Fig. 8: single-source representations (SS-R)")
    return fig


# --------------------------------------------------------------------------- Figure 9

def fig9_strategies(results, *, seed: int = 0):
    """Figure 9: performance by representation strategy (box plots, one point per representation).

    SS-R is the grey box; the baselines are horizontal lines.
    """
    data = _data(results)
    present = [a for a in STRATEGIES if (data.table["arch"] == a).any()]
    with style():
        fig, axes = _grid(data.n_targets)
        for i, (ax, t) in enumerate(zip(axes, data.targets)):
            g = data.table[data.table["target"] == t]
            vals = [g.loc[g["arch"] == a, "value"].to_numpy() for a in present]
            pos = [k for k, v in enumerate(vals) if len(v)]
            if pos:
                bp = ax.boxplot([vals[k] for k in pos], positions=pos, widths=0.6, showfliers=False,
                                patch_artist=True, medianprops={"color": "k", "lw": 1})
                for patch, k in zip(bp["boxes"], pos):
                    a = present[k]
                    patch.set_facecolor("0.82" if a == "ss_r" else ARCH_COLORS[a])
                    patch.set_alpha(0.9 if a == "ss_r" else 0.35)
            for k, v in enumerate(vals):
                if len(v):
                    ax.scatter(k + _jitter(len(v), 0.18, seed + 17 * i + k), v, s=5, alpha=0.5, lw=0,
                               color=ARCH_COLORS[present[k]], zorder=3)
            _baselines(ax, data, t)
            ax.set_xticks(range(len(present)))
            ax.set_xticklabels([strategy_label(a) for a in present], rotation=60, ha="right", fontsize=_SMALL)
            ax.set_title(target_label(t))
            ax.set_ylabel(_metric(data, t))
        h, lab = _baseline_handles(data)
        _legend(fig, h, lab)
        fig.suptitle("Fig. 9: performance by representation strategy")
    return fig


# --------------------------------------------------------------------------- Figure 10

def _arch_handles(present):
    from matplotlib.lines import Line2D

    return ([Line2D([], [], color=ARCH_COLORS[a], marker="o", ms=5, lw=1.2) for a in present],
            [strategy_label(a) for a in present])


def fig10_n_sources(results, *, seed: int = 0):
    """Figure 10: standardised performance by number of learning sources.

    Small points are representations, large points the mean per architecture and number of
    sources, coloured lines the linear fit per architecture; the black line is the mean of SS-R.
    """
    data = _data(results)
    present = [a for a in STRATEGIES if (data.table["arch"] == a).any()]
    offs = {a: (k - (len(present) - 1) / 2) * 0.09 for k, a in enumerate(present)}
    with style():
        fig, axes = _grid(data.n_targets)
        for i, (ax, t) in enumerate(zip(axes, data.targets)):
            g = data.table[data.table["target"] == t]
            for a in present:
                h = g[g["arch"] == a]
                if h.empty:
                    continue
                x = h["n_sources"].to_numpy(float) + offs[a]
                ax.scatter(x + _jitter(len(h), 0.03, seed + i), h["y"], s=5, alpha=0.3, lw=0, color=ARCH_COLORS[a])
                m = h.groupby("n_sources")["y"].mean()
                ax.scatter(m.index + offs[a], m.values, s=22, color=ARCH_COLORS[a], edgecolor="k", lw=0.4, zorder=3)
                if a != "ss_r" and h["n_sources"].nunique() > 1:
                    b1, b0 = np.polyfit(h["n_sources"], h["y"], 1)
                    xs = np.array([h["n_sources"].min(), h["n_sources"].max()], dtype=float)
                    ax.plot(xs, b0 + b1 * xs, color=ARCH_COLORS[a], lw=1.3, zorder=4)
            ss = g.loc[g["arch"] == "ss_r", "y"]
            if len(ss):
                ax.axhline(ss.mean(), color="k", lw=1.2, zorder=2)
            ax.set_title(target_label(t))
            ax.set_xticks(range(1, 9))
            ax.set_xlabel("number of sources n")
            ax.set_ylabel("standardised score")
        h, lab = _arch_handles(present)
        from matplotlib.lines import Line2D
        h.append(Line2D([], [], color="k", lw=1.2))
        lab.append("mean of SS-R")
        _legend(fig, h, lab)
        fig.suptitle("Fig. 10: standardised performance by number of learning sources")
    return fig


# --------------------------------------------------------------------------- Figures 11, 12

def _fit_of(obj, name: str):
    from mtdtl.analysis.mixed import MixedFit

    if isinstance(obj, MixedFit):
        if obj.name != name:
            raise MtdtlError(f"this figure shows the {name} model; got a fit of the {obj.name} model")
        return obj
    fit = getattr(obj, name, None)
    if isinstance(fit, MixedFit):
        return fit
    raise MtdtlError(f"expected a MixedFit of the {name} model or a StudyAnalysis, not {type(obj).__name__}")


def _effects(ax, tab: pd.DataFrame, labels, colors):
    # intervals drawn as segments: a percentile interval need not contain the estimate
    x = np.arange(len(tab))
    for k, (_, r) in enumerate(tab.iterrows()):
        ax.plot([k, k], [r["ci_low"], r["ci_high"]], color=colors[k], lw=1.6, solid_capstyle="butt")
        ax.plot([k - 0.12, k + 0.12], [r["ci_low"]] * 2, color=colors[k], lw=1.2)
        ax.plot([k - 0.12, k + 0.12], [r["ci_high"]] * 2, color=colors[k], lw=1.2)
        ax.plot([k], [r["estimate"]], "o", color=colors[k], ms=6, zorder=3)
    ax.axhline(0, color="0.5", lw=0.8, ls="--", zorder=0)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(tab) - 0.4)


def fig11_strategy_effects(fit, *, method: str = "auto"):
    """Figure 11: first model's intercepts b0[r] (left) and n*-slopes b1[r] (right) with intervals.

    Parameters
    ----------
    fit : MixedFit or StudyAnalysis
        The strategy model (bootstrap intervals when it has a bootstrap, else Wald t).
    method : {"auto", "t", "bootstrap"}
    """
    fit = _fit_of(fit, "strategy")
    ci = fit.intervals(method)
    with style():
        fig = new_figure(9.2, 4.0)
        a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [6, 5]})
        inter = ci[ci["kind"] == "intercept"]
        _effects(a1, inter, [strategy_label(a) for a in inter["arch"]], [ARCH_COLORS[a] for a in inter["arch"]])
        a1.set_ylabel("standardised score")
        a1.set_title("intercepts b0[r]\n(n = 1 for SS-R, 2 otherwise)")
        slope = ci[ci["kind"] == "slope"]
        if len(slope):
            _effects(a2, slope, [strategy_label(a) for a in slope["arch"]], [ARCH_COLORS[a] for a in slope["arch"]])
        else:
            _empty(a2, "no slopes (n* constant)")
        a2.set_ylabel("change per additional source")
        a2.set_title("slopes b1[r]\n(per additional source)")
        fig.suptitle(f"Fig. 11: first model (Eqs. 10-12)\n{round(100 * fit.level)}% intervals: "
                     f"{ci['method'].iloc[0]}")
    return fig


def fig12_size_effects(fit, *, method: str = "auto"):
    """Figure 12: second model's b0, b10 (size r*), b20 (n*), b30 (r* x n*) with intervals."""
    fit = _fit_of(fit, "size")
    ci = fit.intervals(method)
    with style():
        fig = new_figure(6.0, 4.0)
        ax = fig.subplots()
        labels = ["b0\n(intercept)", "b10\n(size r*)", "b20\n(sources n*)", "b30\n(r* x n*)"]
        _effects(ax, ci, labels, ["0.3", "#d62728", "#1f77b4", "#9467bd"])
        ax.set_xticklabels(labels, rotation=0, ha="center")
        ax.set_ylabel("fixed effect (standardised units)")
        ax.set_title(f"Fig. 12: second model (Eqs. 13-16)\n{round(100 * fit.level)}% intervals: "
                     f"{ci['method'].iloc[0]}")
    return fig


# --------------------------------------------------------------------------- Figure 13

def _linfit_band(x, y, grid, level=0.95):
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return None
    b1, b0 = np.polyfit(x, y, 1)
    resid = y - (b0 + b1 * x)
    s = np.sqrt(resid @ resid / (n - 2))
    sxx = ((x - x.mean()) ** 2).sum()
    se = s * np.sqrt(1 / n + (grid - x.mean()) ** 2 / sxx)
    q = stats.t.ppf(0.5 + level / 2, n - 2)
    fit = b0 + b1 * grid
    return fit, fit - q * se, fit + q * se


def fig13_best_source(results, *, seed: int = 0):
    """Figure 13: standardised performance by number of sources, with and without the best source.

    On each target the best source is the one whose SS-R representations score best. Filled
    points (and the solid line, the linear fit over all strategies) are representations that
    include it; empty points (dashed line) those without it; shaded bands are 95% confidence
    intervals of the fits (hatched: without).
    """
    from matplotlib.lines import Line2D

    from mtdtl.analysis.variance import best_ssr_source

    data = _data(results)
    best = best_ssr_source(data)
    present = [a for a in STRATEGIES if (data.table["arch"] == a).any()]
    offs = {a: (k - (len(present) - 1) / 2) * 0.09 for k, a in enumerate(present)}
    with style():
        fig, axes = _grid(data.n_targets)
        for i, (ax, t) in enumerate(zip(axes, data.targets)):
            g = data.table[data.table["target"] == t]
            src = best.get(t)
            if src is None:
                ax.set_title(target_label(t))
                _empty(ax, "no SS-R runs: no best source")
                continue
            has = g["sources"].str.split("+").map(lambda ss, s=src: s in ss).to_numpy()
            for a in present:
                for flag in (True, False):
                    h = g[(g["arch"] == a).to_numpy() & (has == flag)]
                    if h.empty:
                        continue
                    x = h["n_sources"].to_numpy(float) + offs[a] + _jitter(len(h), 0.03, seed + i)
                    ax.scatter(x, h["y"], s=9, lw=0.7, alpha=0.6,
                               facecolor=ARCH_COLORS[a] if flag else "none", edgecolor=ARCH_COLORS[a])
            grid = np.linspace(1, 8, 50)
            for flag, ls, hatch in ((True, "-", None), (False, "--", "////")):
                h = g[has == flag]
                band = _linfit_band(h["n_sources"], h["y"], grid)
                if band is None:
                    continue
                fit, lo, hi = band
                ax.plot(grid, fit, color="k", ls=ls, lw=1.3, zorder=4)
                ax.fill_between(grid, lo, hi, facecolor="0.55", alpha=0.3 if flag else 0.18, hatch=hatch, edgecolor="0.35", lw=0)
            ax.set_title(f"{target_label(t)} (best: {src})")
            ax.set_xticks(range(1, 9))
            ax.set_xlabel("number of sources n")
            ax.set_ylabel("standardised score")
        h, lab = [], []
        for a in present:
            h.append(Line2D([], [], ls="", marker="o", color=ARCH_COLORS[a], ms=5))
            lab.append(strategy_label(a))
        h += [Line2D([], [], ls="", marker="o", color="0.3", ms=5),
              Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor="0.3", ms=5),
              Line2D([], [], color="k", ls="-"), Line2D([], [], color="k", ls="--")]
        lab += ["with the best source", "without it", "fit: with", "fit: without"]
        _legend(fig, h, lab)
        fig.suptitle("Fig. 13: with / without the best SS-R source of each target")
    return fig


# --------------------------------------------------------------------------- Figure 14

def fig14_variance_vs_ssr(correlation):
    """Figure 14: variance component (% of the sources' total) vs standardised SS-R performance.

    Parameters
    ----------
    correlation : VarianceSsrCorrelation, StudyAnalysis, or a results table / AnalysisData
    """
    from mtdtl.analysis.variance import VarianceSsrCorrelation, variance_vs_ssr

    if not isinstance(correlation, VarianceSsrCorrelation):
        corr = getattr(correlation, "correlation", None)
        correlation = corr if isinstance(corr, VarianceSsrCorrelation) else variance_vs_ssr(_data(correlation))
    pts = correlation.points
    with style():
        fig = new_figure(6.4, 4.6)
        ax = fig.subplots()
        for s in SOURCE_NAMES:
            p = pts[pts["source"] == s]
            if len(p):
                ax.scatter(p["y"], p["percent"], s=28, color=SOURCE_COLORS[s], label=s, edgecolor="k", lw=0.4)
        if len(pts) >= 3 and np.isfinite(correlation.r):
            b1, b0 = np.polyfit(pts["y"], pts["percent"], 1)
            xs = np.linspace(pts["y"].min(), pts["y"].max(), 20)
            ax.plot(xs, b0 + b1 * xs, color="0.3", lw=1, ls="--")
        elif not len(pts):
            _empty(ax, "no (target, source) pairs with both SS-R runs and a component")
        ax.set_xlabel("standardised SS-R performance")
        ax.set_ylabel("variance component (% of the 8 sources)")
        r = "n/a" if not np.isfinite(correlation.r) else f"{correlation.r:.2f}"
        ax.set_title(f"Fig. 14: Pearson r = {r} (n = {correlation.n})")
        ax.legend(loc="upper left", ncol=2, frameon=False)
    return fig


# --------------------------------------------------------------------------- Figure 15

def fig15_compactness(table: pd.DataFrame | None = None, *, flops: bool = True):
    """Figure 15: network parameters by number of sources (and forward FLOPs per 2.5 s input).

    Parameters
    ----------
    table : pandas.DataFrame, optional
        :func:`mtdtl.analysis.compactness_table` output, or a StudyAnalysis (computed when
        omitted).
    flops : bool
        Add a second panel with the representation's forward MFLOP per 2.5 s crop.
    """
    if table is not None and not isinstance(table, pd.DataFrame):
        table = getattr(table, "compactness", None)
    if table is None:
        from mtdtl.analysis.compactness import compactness_table

        table = compactness_table()
    present = [a for a in STRATEGIES if (table["arch"] == a).any()]
    with style():
        fig = new_figure(MAX_WIDTH_IN if flops else 5.5, 4.2)
        axes = fig.subplots(1, 2 if flops else 1, squeeze=False)
        panels = [("params", 1e6, "parameters (millions)")] + ([("mflops", 1.0, "MFLOP per 2.5 s input")]
                                                                if flops else [])
        ref = table[table["arch"] == "ss_r"]
        for ax, (col, div, ylabel) in zip(axes[0], panels):
            for a in present:
                h = table[table["arch"] == a].sort_values("n_sources")
                ax.plot(h["n_sources"], h[col] / div, marker="o", ms=4, color=ARCH_COLORS[a], label=strategy_label(a))
            if len(ref):
                ax.axhline(float(ref[col].iloc[0]) / div, color=ARCH_COLORS["ss_r"], lw=0.8, ls=":")
            ax.set_xlabel("number of sources")
            ax.set_ylabel(ylabel)
            ax.set_xticks(range(1, 9))
        top = table.loc[table["n_sources"] == table["n_sources"].max()]
        ratios = ", ".join(f"{strategy_label(a)} {r:.1f}x" for a, r in zip(top["arch"], top["params_vs_ss_r"]))
        axes[0][0].set_title("parameters")
        if flops:
            axes[0][1].set_title("forward cost of the representation")
        axes[0][0].legend(frameon=False)
        fig.suptitle(f"Fig. 15: network size by number of learning sources\n"
                     f"at n = {int(table['n_sources'].max())}, vs SS-R: {ratios}")
    return fig


def all_figures(analysis) -> dict:
    """Figures 8-15 from a :class:`~mtdtl.analysis.StudyAnalysis` (name -> Figure)."""
    out = {"fig08_single_source": fig8_single_source(analysis.data),
           "fig09_strategies": fig9_strategies(analysis.data),
           "fig10_n_sources": fig10_n_sources(analysis.data),
           "fig11_strategy_effects": fig11_strategy_effects(analysis.strategy),
           "fig12_size_effects": fig12_size_effects(analysis.size),
           "fig13_best_source": fig13_best_source(analysis.data)}
    if analysis.correlation is not None:
        out["fig14_variance_vs_ssr"] = fig14_variance_vs_ssr(analysis.correlation)
    out["fig15_compactness"] = fig15_compactness(analysis.compactness)
    return out
