"""Learning-curve figures of a training run (02_train).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError

from mtdtl.training.runlog import read_log
from mtdtl.training.config import LOG_NAME

def plot_curves(run_dir: str | os.PathLike):
    """Learning curves of a run: per source, training and validation loss by epoch.

    Parameters
    ----------
    run_dir : path
        A run folder (reads ``log.jsonl``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per source (``self`` also shows validation accuracy on a second axis).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    records = read_log(run_dir)
    if not records:
        raise MtdtlError(f"no epochs logged in {Path(run_dir) / LOG_NAME} yet")
    sources = [s for s in SOURCE_NAMES if s in records[-1].get("train_loss", {})]
    n = len(sources)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 2.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    epochs = [r["epoch"] for r in records]

    def series(values):
        return [np.nan if v is None else v for v in values]

    for ax, s in zip(axes.flat, sources):
        lines = ax.plot(epochs, series(r["train_loss"].get(s) for r in records), marker=".", label="train")
        va = [r.get("valid_loss", {}).get(s) for r in records]
        if any(v is not None for v in va):
            lines += ax.plot(epochs, series(va), marker=".", label="valid")
        ax.set_title(s)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy" if s == "self" else "KL divergence")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        acc = [r.get("valid_acc", {}).get(s) for r in records]
        if any(v is not None for v in acc):
            ax2 = ax.twinx()
            lines += ax2.plot(epochs, series(acc), color="tab:green", ls="--", label="valid accuracy")
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("accuracy")
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize="small")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{Path(run_dir).name}: learning curves", fontsize="medium")
    return fig
