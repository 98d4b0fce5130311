"""Transfer results against the baselines (03_evaluate), in the style of the paper's Figure 8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.plots.base import new_figure, style

__all__ = ["results_vs_baselines"]

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
        Bars: mean over repetitions; error bars: one standard deviation.
    """
    from matplotlib import colormaps

    from mtdtl.report import display_names

    if results is None or len(results) == 0:
        raise MtdtlError("no results to plot")
    names = dict(names or display_names(results))
    g = results.groupby(["target", "metric", "representation"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    panels = list(dict.fromkeys(zip(g["target"], g["metric"])))
    reps = list(dict.fromkeys(results["representation"].astype(str)))
    kinds = dict(zip(results["representation"].astype(str), results.get("kind", pd.Series("", index=results.index)).astype(str)))
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
    fig = new_figure(3.2 * cols, 2.6 * rows + 0.4 + 0.3 * math.ceil(len(reps) / 3))
    with style():
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (t, metric) in zip(axes.flat, panels):
            sub = g[(g["target"] == t) & (g["metric"] == metric)].set_index("representation").reindex(reps)
            has_sd = sub["std"].notna().any()  # one repetition: no error bars
            ax.bar(range(len(reps)), sub["mean"], yerr=sub["std"].fillna(0) if has_sd else None,
                   capsize=3, color=[colors[r] for r in reps])
            ax.axhline(0, color="0.2", lw=0.6)
            ax.set_xticks([])
            ax.set_title(f"{t[5:] if str(t).startswith('demo:') else t}")
            ax.set_ylabel(metric)
            ax.grid(axis="y", alpha=0.3)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        from matplotlib.patches import Patch

        handles = [Patch(color=colors[r], label=names.get(r, r)) for r in reps]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(reps), 3), frameon=False)
    return fig
