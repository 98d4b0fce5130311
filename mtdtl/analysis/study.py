"""The whole analysis of Section 5 in one call: :func:`analyze` returns a :class:`StudyAnalysis`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from mtdtl.analysis.bootstrap import parametric_bootstrap
from mtdtl.analysis.data import AnalysisData, prepare
from mtdtl.analysis.mixed import (
    MixedFit,
    fit_size_model,
    fit_strategy_model,
    pairwise_contrasts,
)
from mtdtl.analysis.variance import (
    VarianceSsrCorrelation,
    source_variance_components,
    variance_table,
    variance_vs_ssr,
)
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["StudyAnalysis", "analyze"]

log = get_logger(__name__)


@dataclass
class StudyAnalysis:
    """Everything Section 5 reports, computed from one results table.

    Attributes
    ----------
    data : AnalysisData
        The prepared table (standardised scores, n*, r*).
    strategy : MixedFit
        First model (Eqs. 10-12), Figure 11.
    size : MixedFit
        Second model (Eqs. 13-16), Figure 12.
    contrasts : pandas.DataFrame
        Pairwise comparisons of the strategies' intercepts (Holm-adjusted).
    components : pandas.DataFrame or None
        Source variance components per target (long form); None without multi-source runs.
    table6 : pandas.DataFrame or None
        Table 6 (percent; sources x targets).
    correlation : VarianceSsrCorrelation or None
        Figure 14's data.
    compactness : pandas.DataFrame or None
        Figure 15's data (:func:`mtdtl.analysis.compactness_table`).
    seconds : dict
        Wall time of each step.
    notes : list of str
        What could not be computed from this table, and why (e.g. Table 6 when the sources'
        presence is collinear over the multi-source runs); the findings repeat them as caveats.
    """

    data: AnalysisData
    strategy: MixedFit
    size: MixedFit
    contrasts: pd.DataFrame
    components: pd.DataFrame | None = None
    table6: pd.DataFrame | None = None
    correlation: VarianceSsrCorrelation | None = None
    compactness: pd.DataFrame | None = None
    seconds: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def findings(self, *, alpha: float = 0.05) -> list:
        """Plain-language answers to RQ1 and RQ2 (see :func:`mtdtl.analysis.findings`)."""
        from mtdtl.analysis.findings import findings

        return findings(self, alpha=alpha)


def analyze(results, *, bootstrap: int = 0, seed: int = 0, client=None, workers: int | None = None,
            allow_mixed_protocols: bool = False, split: str | None = None, variance_method: str = "anova",
            compactness: bool = True, progress: bool = True) -> StudyAnalysis:
    """Run the analysis of Section 5 on a results table.

    Parameters
    ----------
    results : pandas.DataFrame, str or PathLike, or AnalysisData
        The tidy results table (see :func:`mtdtl.analysis.load_results`).
    bootstrap : int
        Parametric bootstrap replicates B for both models (0: Wald t intervals only). A
        refit of the first model costs seconds; see docs/analysis.md before choosing 1,000.
    seed : int
        Seed of the bootstrap.
    client : dask.distributed.Client, optional
        Run the bootstrap refits there.
    workers : int, optional
        Processes for the bootstrap without a client (default: all CPUs; 1: serial).
    allow_mixed_protocols, split
        See :func:`mtdtl.analysis.load_results`.
    variance_method : {"anova", "mixedlm"}
        Estimator of Table 6's components.
    compactness : bool
        Compute Figure 15's table (builds the six architectures on PyTorch's meta device).
    progress : bool

    Returns
    -------
    StudyAnalysis
    """
    secs = {}
    t = time.perf_counter()
    data = results if isinstance(results, AnalysisData) else prepare(
        results, allow_mixed_protocols=allow_mixed_protocols, split=split)
    secs["prepare"] = time.perf_counter() - t
    strategy = fit_strategy_model(data)
    size = fit_size_model(data)
    secs["strategy_fit"], secs["size_fit"] = strategy.seconds, size.seconds
    if bootstrap:
        for fit in (strategy, size):
            b = parametric_bootstrap(fit, B=bootstrap, seed=seed, client=client, workers=workers,
                                     progress=progress)
            secs[f"{fit.name}_bootstrap"] = b.seconds
    contrasts = pairwise_contrasts(strategy)
    components = table6 = corr = None
    notes = []
    if (data.table["arch"] != "ss_r").any():
        t = time.perf_counter()
        try:
            components = source_variance_components(data, method=variance_method)
            table6 = variance_table(components)
            corr = variance_vs_ssr(data, components)
        except MtdtlError as e:  # a small design (a study in miniature): the rest of Section 5 still stands
            components = table6 = corr = None
            notes.append(f"Table 6 and Figure 14 are not computed: {e}")
            log.warning("%s", notes[-1])
        secs["variance_components"] = time.perf_counter() - t
    comp = None
    if compactness:
        from mtdtl.analysis.compactness import compactness_table

        t = time.perf_counter()
        comp = compactness_table()
        secs["compactness"] = time.perf_counter() - t
    return StudyAnalysis(data=data, strategy=strategy, size=size, contrasts=contrasts, components=components,
                         table6=table6, correlation=corr, compactness=comp, seconds=secs, notes=notes)
