"""Learning-curve figures of a training run (02_train).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.plots.base import new_figure, style
from mtdtl.training.config import LOG_NAME
from mtdtl.training.loop import read_log

__all__ = ["plot_curves"]


def _checkpoint_info(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "model.json").read_text())
    except (OSError, ValueError):
        return {}


def _run_name(run_dir: Path) -> str:
    return str((_checkpoint_info(run_dir).get("run") or {}).get("id") or run_dir.name)


def _nothing_logged(run_dir: Path) -> str:
    info = _checkpoint_info(run_dir)
    step = info.get("step")
    max_steps = (info.get("training") or {}).get("max_steps")
    if step is None:
        return (f"no epoch logged in {run_dir / LOG_NAME} yet: the curves start after the first epoch")
    why = f" (max_steps = {max_steps})" if max_steps else ""
    return (f"no epoch finished yet: training stopped at step {step}{why}, inside epoch 1.\n"
            "Learning curves are logged once per epoch: run again with more steps to continue.")


def plot_curves(run_dir: str | os.PathLike):
    """Learning curves of a run: per source, training and validation loss by epoch.

    Parameters
    ----------
    run_dir : path
        A run folder (reads ``log.jsonl``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per source (``self`` also shows validation accuracy on a second axis). A run
        stopped before its first epoch ended (``max_steps``) has nothing logged yet: the figure
        then says so instead of plotting.

    Raises
    ------
    MtdtlError
        ``run_dir`` is not a training run folder.
    """
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not ((run_dir / LOG_NAME).is_file() or (run_dir / "model.json").is_file()):
        raise MtdtlError(f"{run_dir} is not a training run folder (no {LOG_NAME} or model.json); train first (02_train)")
    records = read_log(run_dir) if (run_dir / LOG_NAME).is_file() else []
    if not records:
        fig = new_figure(8, 1.6)
        with style():
            ax = fig.subplots()
            ax.set_axis_off()
            ax.text(0.0, 0.5, _nothing_logged(run_dir), va="center", ha="left", transform=ax.transAxes)
            fig.suptitle(f"{_run_name(run_dir)}: learning curves", ha="left", x=0.02)
        return fig

    sources = [s for s in SOURCE_NAMES if s in records[-1].get("train_loss", {})]
    sources += sorted(set(records[-1].get("train_loss", {})) - set(sources))
    n = len(sources)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = new_figure(3.2 * cols, 2.4 * rows + 0.7)
    epochs = [r["epoch"] for r in records]

    def series(values):
        return [np.nan if v is None else v for v in values]

    handles = {}
    with style():
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, s in zip(axes.flat, sources):
            (h,) = ax.plot(epochs, series(r["train_loss"].get(s) for r in records), marker=".", label="train")
            handles.setdefault("train", h)
            va = [r.get("valid_loss", {}).get(s) for r in records]
            if any(v is not None for v in va):
                (h,) = ax.plot(epochs, series(va), marker=".", label="valid")
                handles.setdefault("valid", h)
            ax.set_title(s)
            ax.set_ylabel("cross-entropy" if s == "self" else "KL divergence")
            if len(epochs) <= 10:
                ax.set_xticks(epochs)
                ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            acc = [r.get("valid_acc", {}).get(s) for r in records]
            if any(v is not None for v in acc):
                ax2 = ax.twinx()
                (h,) = ax2.plot(epochs, series(acc), color="tab:green", ls="--", marker=".", label="valid accuracy")
                handles.setdefault("valid accuracy (self)", h)
                ax2.set_ylim(0, 1)
                ax2.set_ylabel("accuracy")
                ax2.spines["right"].set_visible(True)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("epoch")
        for c in range(cols):  # a column whose last panel is hidden: label the panel above it
            for r in range(rows - 1, -1, -1):
                if axes[r, c].get_visible():
                    axes[r, c].set_xlabel("epoch")
                    break
        fig.suptitle(f"{_run_name(run_dir)}: learning curves ({len(records)} epoch{'s' if len(records) != 1 else ''})")
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=len(handles),
                   frameon=False)
    return fig
