"""Figures: each function takes data (or a path) and returns a matplotlib Figure.

- :mod:`mtdtl.plots.base`: the house style, :func:`save_figure` (PNG and PDF) and display in
  notebooks (every figure shows where it is made);
- :mod:`mtdtl.plots.data`: the corpus and store (01_preprocess);
- :mod:`mtdtl.plots.training`: learning curves (02_train);
- :mod:`mtdtl.plots.transfer`: transfer results against baselines (03_evaluate);
- :mod:`mtdtl.plots.design`, :mod:`mtdtl.plots.paper`: the study's figures (04, 05).

Notebooks only call these, so every figure is reproducible from the library alone.
"""

from __future__ import annotations

from mtdtl.plots.base import new_figure, save_figure
from mtdtl.plots.data import coverage, gmm_fit, mel_examples, scaler_stats
from mtdtl.plots.transfer import results_vs_baselines, scaling

__all__ = ["mel_examples", "scaler_stats", "gmm_fit", "coverage", "results_vs_baselines", "scaling", "save_figure",
           "new_figure"]
