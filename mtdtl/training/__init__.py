"""Training a representation network with Algorithm 1 (Section 3.3).

- :mod:`~mtdtl.training.config`: :class:`TrainConfig` (its identity is a :class:`mtdtl.runs.RunSpec`);
- :mod:`~mtdtl.training.sampling`: sources, batches, crops and ``self`` pairs per iteration;
- :mod:`~mtdtl.training.batches`: reading planned batches onto the device ahead of the step;
- :mod:`~mtdtl.training.losses`: KL to the reduced labels, the Siamese ``self`` loss;
- :mod:`~mtdtl.training.state`: optimiser and RNG state for exact resume;
- :mod:`~mtdtl.training.loop`: :func:`train` (checkpoints, resume, logs, ``metrics.json``);
- :mod:`~mtdtl.training.runlog`: reading a run's ``log.jsonl`` (:func:`read_log`, :func:`log_table`);
- :mod:`~mtdtl.training.lock`: one trainer per run folder (:class:`~mtdtl.training.lock.RunLock`).

Learning-curve figures are in :mod:`mtdtl.plots.training` (:func:`plot_curves` is re-exported here).
"""

from __future__ import annotations

from mtdtl.training.config import TrainConfig, default_out_dir
from mtdtl.training.losses import kl_loss, self_loss
from mtdtl.training.loop import train
from mtdtl.training.runlog import log_table, read_log


def plot_curves(run_dir):
    """Learning curves of a run (see :func:`mtdtl.plots.training.plot_curves`)."""
    from mtdtl.plots.training import plot_curves as _plot

    return _plot(run_dir)


__all__ = ["TrainConfig", "train", "plot_curves", "read_log", "log_table", "kl_loss", "self_loss",
           "default_out_dir"]
