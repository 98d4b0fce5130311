"""Figures of the experimental design (04_design): the alias matrix among main effects (Figure 7).

Each function takes a :class:`mtdtl.design.Design` and returns a matplotlib Figure; saving is
the caller's choice.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mtdtl.design import Design, alias_matrix
from mtdtl.plots.base import new_figure

__all__ = ["alias_heatmap"]


def _label(factor: str, level: str) -> str:
    if factor == "arch":
        return level
    if factor == "n":
        return f"n={level}"
    return factor  # a source: its presence indicator


def alias_heatmap(design: Design, *, phases: Iterable[int] | None = (3,), include_n: bool = True,
                  annot: bool = True, ax=None):
    """Heat map of |alias| among main effects (Figure 7 of Kim et al., 2019).

    Cells are the absolute alias coefficients of :func:`mtdtl.design.alias_matrix` (0 =
    orthogonal, 1 = fully aliased). Pairs within one factor (the levels of the architecture, or
    of n) are structural, not aliasing, and are drawn grey; lines separate the factors.

    Parameters
    ----------
    design : Design
    phases : iterable of int or None
        Runs included (default: phase 3; None: the whole design).
    include_n : bool
        Show the levels of n (a function of the sources, hence structurally correlated with them).
    annot : bool
        Write the values in the cells.
    ax : matplotlib Axes or None
        Draw there; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import seaborn as sns

    A = alias_matrix(design, phases=phases, include_n=include_n)
    factors = A.index.get_level_values("factor").to_numpy()
    labels = [_label(f, lv) for f, lv in A.index]
    same = factors[:, None] == factors[None, :]
    absA = np.abs(A.to_numpy())
    between = absA[~same & (factors[:, None] != "n") & (factors[None, :] != "n")]  # the criterion's pairs
    worst = float(np.nanmax(between)) if np.isfinite(between).any() else 0.0
    k = len(labels)
    if ax is None:  # a bare Figure (not pyplot's): shown once where the notebook displays it
        fig = new_figure(0.42 * k + 2.5, 0.42 * k + 1.5)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.imshow(np.where(same, 1.0, np.nan), cmap="Greys", vmin=0, vmax=4, aspect="equal",
              extent=(0, k, k, 0))  # same-factor cells in light grey
    sns.heatmap(np.where(same, np.nan, absA), ax=ax, vmin=0, vmax=1, cmap="rocket_r", square=True,
                annot=annot, fmt=".2f", annot_kws={"fontsize": 6}, xticklabels=labels, yticklabels=labels,
                cbar_kws={"label": "|alias| (correlation of level indicators)", "shrink": 0.8})
    cuts = [i for i in range(1, k) if factors[i] != factors[i - 1] and not (
        factors[i] in design.sources and factors[i - 1] in design.sources)]
    for c in cuts:
        ax.axhline(c, color="white", lw=2)
        ax.axvline(c, color="white", lw=2)
    ax.set_xlim(0, k)
    ax.set_ylim(k, 0)
    ax.tick_params(labelsize=8)
    which = "all phases" if phases is None else "phase " + ", ".join(str(p) for p in phases)
    n_runs = len(design.runs) if phases is None else int(design.runs["phase"].isin(list(phases)).sum())
    ax.set_title(f"Aliasing among main effects ({which}, {n_runs} runs); max |alias| arch/sources {worst:.2f}",
                 fontsize=9)
    return fig
