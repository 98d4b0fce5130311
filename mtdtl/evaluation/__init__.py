"""mtdtl.evaluation: how good is a representation on target tasks (Section 4.4 of the paper).

- :mod:`~mtdtl.evaluation.probes`: MLP probes for classification (accuracy) and regression
  (R^2), repeated over splits or seeds (:func:`evaluate_probe`).
- :mod:`~mtdtl.evaluation.recommend`: content-aware weighted matrix factorisation (Eqs. 7-9),
  cold-start hold-out, nDCG@500 (:func:`evaluate_recommendation`, :func:`fit_wmf`,
  :func:`ndcg_at_k`).
- :mod:`~mtdtl.evaluation.results`: the tidy results table (:func:`tidy_rows`,
  :class:`ResultsTable`, :func:`average_repetitions`, :func:`summarize`).
- :mod:`~mtdtl.evaluation.reference`: the probes on Choi et al. (2017)'s published features
  (:func:`choi_reference_check`).

Every evaluation returns a list of flat dicts (metric -> float), one per repetition.
The recommendation module compiles numba kernels on first use, so it is imported lazily.
"""

from __future__ import annotations

from mtdtl.evaluation.probes import evaluate_probe
from mtdtl.evaluation.results import (COLUMNS, ResultsTable, average_repetitions, sources_key,
                                      summarize, tidy_rows)

__all__ = [
    "evaluate_probe", "evaluate_recommendation", "fit_wmf", "ndcg_at_k", "WMFParams",
    "choi_reference_check", "COLUMNS", "ResultsTable", "average_repetitions", "sources_key",
    "summarize", "tidy_rows",
]

_LAZY = {
    "evaluate_recommendation": "mtdtl.evaluation.recommend",
    "fit_wmf": "mtdtl.evaluation.recommend",
    "ndcg_at_k": "mtdtl.evaluation.recommend",
    "WMFParams": "mtdtl.evaluation.recommend",
    "choi_reference_check": "mtdtl.evaluation.reference",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mtdtl.evaluation' has no attribute {name!r}")
