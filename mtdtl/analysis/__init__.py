"""Statistical analysis of the study (Section 5 of Kim et al., 2019) from a results table alone.

- :mod:`mtdtl.analysis.data`: read and validate the tidy results table; mean over repetitions,
  within-target standardisation, the n* and r* codings (Section 5.2).
- :mod:`mtdtl.analysis.mixed`: the two hierarchical models (Eqs. 10-12 and 13-16) with
  statsmodels' MixedLM; Wald t intervals; pairwise strategy contrasts with Holm's adjustment.
- :mod:`mtdtl.analysis.bootstrap`: parametric bootstrap of either model (serial, processes or a
  dask.distributed Client).
- :mod:`mtdtl.analysis.variance`: the sources' variance components (Table 6) and their
  correlation with SS-R performance (Figure 14).
- :mod:`mtdtl.analysis.compactness`: parameters, FLOPs and feature sizes (Figure 15).
- :mod:`mtdtl.analysis.findings`: plain-language answers to RQ1 / RQ2 computed from the fits.
- :mod:`mtdtl.analysis.simulate`: simulated results tables with planted effects.
- :func:`analyze` runs all of it; the figures are in :mod:`mtdtl.plots.paper`.

Example
-------
>>> from mtdtl.analysis import analyze                      # doctest: +SKIP
>>> study = analyze("results.csv", bootstrap=200)           # doctest: +SKIP
>>> study.strategy.intervals(), study.contrasts, study.table6  # doctest: +SKIP
>>> print("\\n".join(study.findings()))                     # doctest: +SKIP
"""

from mtdtl.analysis.bootstrap import BootstrapResult, parametric_bootstrap
from mtdtl.analysis.compactness import (
    compactness_table,
    network_size,
    representation_sizes,
)
from mtdtl.analysis.data import (
    BASELINE_KINDS,
    KINDS,
    OPTIONAL_COLUMNS,
    PAPER_TARGETS,
    REQUIRED_COLUMNS,
    RSTAR,
    STRATEGIES,
    AnalysisData,
    load_results,
    prepare,
    strategy_label,
    target_label,
)
from mtdtl.analysis.findings import PAPER, findings
from mtdtl.analysis.mixed import (
    MixedFit,
    fit_size_model,
    fit_strategy_model,
    pairwise_contrasts,
)
from mtdtl.analysis.simulate import Simulation, simulate_design, simulate_results
from mtdtl.analysis.study import StudyAnalysis, analyze
from mtdtl.analysis.variance import (
    VarianceSsrCorrelation,
    best_ssr_source,
    format_table6,
    source_variance_components,
    ssr_performance,
    variance_table,
    variance_vs_ssr,
)

__all__ = [
    "analyze", "StudyAnalysis", "load_results", "prepare", "AnalysisData", "fit_strategy_model",
    "fit_size_model", "MixedFit", "pairwise_contrasts", "parametric_bootstrap", "BootstrapResult",
    "source_variance_components", "variance_table", "format_table6", "ssr_performance", "best_ssr_source",
    "variance_vs_ssr", "VarianceSsrCorrelation", "compactness_table", "network_size",
    "representation_sizes", "findings", "PAPER", "simulate_results", "simulate_design", "Simulation",
    "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "KINDS", "BASELINE_KINDS", "STRATEGIES", "RSTAR",
    "PAPER_TARGETS", "strategy_label", "target_label",
]
