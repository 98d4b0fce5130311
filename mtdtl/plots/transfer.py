"""Transfer results against the baselines (03_evaluate), in the style of the paper's Figure 8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.plots.base import new_figure, style

__all__ = ["results_vs_baselines", "scaling"]

#: Colours of the baselines (greys, as in the paper's Figure 8); learned representations get
#: colours of the tab10 cycle, the highlighted one red.
_GREYS = {"mfcc": "0.35", "rand": "0.6", "choi": "0.8"}


def results_vs_baselines(results: pd.DataFrame, *, ours: str | None = None,
                         names: Mapping[str, str] | None = None, ncols: int = 3):
    """Figure-8-style plot: the score of every representation on every target, one panel per task.

    Parameters
    ----------
    results : DataFrame
        The tidy results table (``representation, kind, target, metric, value, ...``).
    ours : str, optional
        Representation id to highlight (red).
    names : mapping, optional
        Representation id -> display name (default :func:`mtdtl.report.display_names`).
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        Bars: mean over repetitions; error bars: one standard deviation. *Chance* (kind
        ``"chance"``), when present, is not a bar but a dashed line across its panel: the level a
        representation has to clear before it has taught the probe anything.
    """
    from matplotlib import colormaps

    from mtdtl.report import display_names

    if results is None or len(results) == 0:
        raise MtdtlError("no results to plot")
    names = dict(names or display_names(results))
    g = results.groupby(["target", "metric", "representation"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    panels = list(dict.fromkeys(zip(g["target"], g["metric"])))
    kinds = dict(zip(results["representation"].astype(str), results.get("kind", pd.Series("", index=results.index)).astype(str)))
    every = list(dict.fromkeys(results["representation"].astype(str)))
    chance = [r for r in every if kinds.get(r) == "chance"]
    reps = [r for r in every if r not in chance]
    blue = iter(c for i, c in enumerate(colormaps["tab10"].colors) if i != 3)
    colors = {}
    for r in reps:
        k = kinds.get(r, "")
        if r == ours:
            colors[r] = "C3"
        elif k in _GREYS or r in _GREYS:
            colors[r] = _GREYS.get(k, _GREYS.get(r))
        else:
            colors[r] = next(blue, "C0")
    cols = max(1, min(ncols, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(3.2 * cols, 2.6 * rows + 0.4 + 0.3 * math.ceil((len(reps) + len(chance)) / 3))
    with style():
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (t, metric) in zip(axes.flat, panels):
            sub = g[(g["target"] == t) & (g["metric"] == metric)].set_index("representation").reindex(reps)
            has_sd = sub["std"].notna().any()  # one repetition: no error bars
            ax.bar(range(len(reps)), sub["mean"], yerr=sub["std"].fillna(0) if has_sd else None,
                   capsize=3, color=[colors[r] for r in reps])
            ax.axhline(0, color="0.2", lw=0.6)
            for r in chance:
                level = g[(g["target"] == t) & (g["metric"] == metric) & (g["representation"] == r)]["mean"]
                if len(level) and pd.notna(level.iloc[0]):
                    ax.axhline(float(level.iloc[0]), color="0.1", lw=1.0, ls="--")
            ax.set_xticks([])
            ax.set_title(f"{t[5:] if str(t).startswith('demo:') else t}")
            ax.set_ylabel(metric)
            ax.grid(axis="y", alpha=0.3)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Patch(color=colors[r], label=names.get(r, r)) for r in reps]
        handles += [Line2D([], [], color="0.1", lw=1.0, ls="--", label=names.get(r, r)) for r in chance]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
    return fig


#: R^2 below this is drawn as a marker on the lower edge of a :func:`scaling` panel.
R2_FLOOR = -1.0


def _short_count(v: float) -> str:
    """147456 -> '147k', 1.5e6 -> '1.5M', 512 -> '512'."""
    if v >= 1e6:
        return f"{v / 1e6:.1f}M".replace(".0M", "M")
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def scaling(results: pd.DataFrame, *, ncols: int = 3, title: str | None = None):
    """Transfer score against training samples seen: the learned curve beside Rand and MFCC.

    Parameters
    ----------
    results : DataFrame
        What :func:`mtdtl.scaling.transfer_scaling` returns (``series``, ``samples``, ``target``,
        ``metric``, ``value``).
    ncols : int
        Panels per row.
    title : str, optional
        Above the panels.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per task: the learned representation's mean ± one standard deviation over
        repetitions at each kept checkpoint (log x axis), and each baseline as a horizontal
        line with its ± one standard deviation band; an R² below :data:`R2_FLOOR` (a probe that
        blew up) is a marker on the panel's lower edge. A teacher's slide: does training help,
        and from how many samples on?
    """
    import matplotlib.ticker as mticker

    if results is None or len(results) == 0:
        raise MtdtlError("no results to plot")
    need = {"series", "samples", "target", "metric", "value"}
    if not need <= set(results.columns):
        raise MtdtlError(f"scaling: results need the columns {sorted(need)} (mtdtl.scaling.transfer_scaling)")
    learned = results[results["series"] == "learned"]
    if learned.empty:
        raise MtdtlError("scaling: no learned checkpoint in the results")
    panels = list(dict.fromkeys(zip(results["target"], results["metric"])))
    baselines = [b for b in dict.fromkeys(results["series"]) if b != "learned"]
    base_colors = {b: c for b, c in zip(baselines, ("0.35", "C2", "C4", "C5"))}
    cols = max(1, min(ncols, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(3.3 * cols, 2.6 * rows + 0.6)
    with style():
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (t, metric) in zip(axes.flat, panels):
            sub = results[(results["target"] == t) & (results["metric"] == metric)]
            cur = sub[sub["series"] == "learned"].groupby("samples")["value"].agg(["mean", "std"]).sort_index()
            x = cur.index.to_numpy(dtype=float)
            ax.plot(x, cur["mean"], "o-", color="C3", lw=1.6, ms=3.5, label="learned")
            ax.fill_between(x, cur["mean"] - cur["std"].fillna(0), cur["mean"] + cur["std"].fillna(0),
                            color="C3", alpha=0.18, lw=0)
            for b in baselines:
                v = sub.loc[sub["series"] == b, "value"]
                if v.empty:
                    continue
                m, s = float(v.mean()), float(v.std()) if len(v) > 1 else 0.0
                ax.axhline(m, color=base_colors[b], lw=1.2, ls="--", label=b)
                ax.axhspan(m - s, m + s, color=base_colors[b], alpha=0.12, lw=0)
            if metric == "r2" and float(cur["mean"].min()) < R2_FLOOR:  # a blown-up probe would flatten the rest
                low = cur["mean"] < R2_FLOOR
                top = max(float((cur["mean"] + cur["std"].fillna(0))[~low].max()) if (~low).any() else 0.0,
                          *(ln.get_ydata()[0] for ln in ax.get_lines()[1:]), 0.05)
                ax.set_ylim(R2_FLOOR - 0.05, top + 0.05)
                ax.plot(x[low.to_numpy()], [R2_FLOOR - 0.02] * int(low.sum()), "v", color="C3", ms=6, clip_on=False)
                ax.text(0.98, 0.03, f"▼ R² < {R2_FLOOR:g}", transform=ax.transAxes, fontsize=7, color="C3", ha="right")
            ax.set_xscale("log")
            # ticks at the checkpoints, in plain numbers (log-axis minor labels overlap)
            ax.xaxis.set_major_locator(mticker.FixedLocator(x))
            ax.xaxis.set_minor_locator(mticker.NullLocator())
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: _short_count(v)))
            ax.set_title(str(t).removeprefix("demo:"), fontsize=9)
            ax.set_ylabel(metric, fontsize=8)
            ax.set_xlabel("training samples seen", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
        if title:
            fig.suptitle(title, fontsize=10)
    return fig
