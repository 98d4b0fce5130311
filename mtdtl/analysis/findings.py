"""Plain-language findings for RQ1 and RQ2, computed from the fits (never typed in).

:func:`findings` turns a :class:`~mtdtl.analysis.StudyAnalysis` into sentences: which strategy is
best and with what interval, which strategies it beats (Holm-adjusted pairwise tests), the
effects of network size and of the number of sources, whether that agrees with the paper, and
caveats when the table is too small for the models to say much.

What the paper found (Section 5.2 and the conclusion), encoded in :data:`PAPER`:

- RQ2: SS-R is significantly worse than MS-SR@FC, which is significantly worse than the others;
  MSS-CR is best, not significantly different from MS-CR@2 (p = 0.32), and MS-CR@2 beats all
  others except MS-CR@6 (p = 0.09). In the second model the size of the network (r*: less
  sharing) has a significantly positive effect. "Larger models with less shared information
  (e.g. MS-CR@2, MSS-CR) tend to outperform models where sharing is higher (e.g. MS-CR@6,
  MS-SR@FC), all of which outperform the base model (SS-R)."
- RQ1: the number of sources has a significantly positive effect (about +0.16 standardised
  units per additional source in the best strategies), except for MS-SR@FC where the slope is
  not different from 0; in the second model the effect of n* is positive and significant and
  its interaction with r* is not.
"""

from __future__ import annotations

import numpy as np

from mtdtl.analysis.data import STRATEGIES, strategy_label, target_label
from mtdtl.errors import MtdtlError

__all__ = ["findings", "PAPER"]

#: The paper's answers, for the comparison sentences.
PAPER = {
    "best": ("mss_cr", "ms_cr@2"),
    "worst": "ss_r",
    "size_effect": "positive",
    "sources_effect": "positive",
    "interaction": "not significant",
    "flat_slopes": ("ms_sr@fc",),
    "slope_best": 0.16,
    "variance_ssr_r": 0.38,
}

#: Below these, the findings carry a caveat.
MIN_TARGETS = 5
MIN_RUNS_PER_STRATEGY = 10
MIN_BOOTSTRAP = 200


def _ci(row) -> str:
    return f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _sign(row) -> str:
    if row["ci_low"] > 0:
        return "positive"
    if row["ci_high"] < 0:
        return "negative"
    return "not significant"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def findings(analysis, *, alpha: float = 0.05) -> list:
    """Sentences answering RQ1 and RQ2 from a :class:`~mtdtl.analysis.StudyAnalysis`.

    Parameters
    ----------
    analysis : StudyAnalysis
    alpha : float
        Significance level of the (Holm-adjusted) tests.

    Returns
    -------
    list of str
        RQ2 sentences, then RQ1, then Table 6 / Figure 14, then caveats (prefixed
        "Caveat:").
    """
    for attr in ("strategy", "size", "contrasts", "data"):
        if not hasattr(analysis, attr):
            raise MtdtlError("findings() needs a StudyAnalysis (mtdtl.analysis.analyze(results))")
    out = []
    data, m1, m2, con = analysis.data, analysis.strategy, analysis.size, analysis.contrasts
    ci1 = m1.intervals("auto")
    ci2 = m2.intervals("auto").set_index("term")
    how = ci1["method"].iloc[0]
    level = round(100 * m1.level)
    inter = ci1[ci1["kind"] == "intercept"].set_index("arch")
    slopes = ci1[ci1["kind"] == "slope"].set_index("arch")
    pcol = "p_boot_adj" if "p_boot_adj" in con.columns else "p_adj"
    ptest = ("bootstrap percentile test" if pcol == "p_boot_adj" else con["test"].iloc[0]) + ", Holm-adjusted"

    # ------------------------------------------------------------------ RQ2: architecture
    best = inter["estimate"].idxmax()
    worst = inter["estimate"].idxmin()
    out.append(f"RQ2: the best strategy is {strategy_label(best)}, with a standardised score of "
               f"{inter.loc[best, 'estimate']:.2f} ({level}% {how} interval {_ci(inter.loc[best])}) "
               "at its smallest number of sources (first model, Eqs. 10-12).")
    order = inter["estimate"].sort_values(ascending=False)
    out.append("RQ2: strategies from best to worst: " + ", ".join(
        f"{strategy_label(a)} {v:.2f}" for a, v in order.items()) + ".")
    vs_best = con[(con["a"] == best) | (con["b"] == best)].copy()
    vs_best["other"] = np.where(vs_best["a"] == best, vs_best["b"], vs_best["a"])
    ties = vs_best[vs_best[pcol] >= alpha]
    if len(vs_best):
        if ties.empty:
            out.append(f"RQ2: {strategy_label(best)} is significantly better than every other strategy "
                       f"(largest adjusted {_p(vs_best[pcol].max())}; {ptest}).")
        else:
            out.append(f"RQ2: {strategy_label(best)} is not significantly better than " + ", ".join(
                f"{strategy_label(o)} ({_p(p)})" for o, p in zip(ties["other"], ties[pcol]))
                + f" ({ptest}, alpha = {alpha:g}).")
    if "ss_r" in inter.index and len(inter) > 1:
        vs_ssr = con[con["b"] == "ss_r"]
        beat = vs_ssr[(vs_ssr[pcol] < alpha) & (vs_ssr["estimate"] > 0)]
        if len(beat) == len(vs_ssr):
            out.append("RQ2: every multi-source strategy is significantly better than SS-R.")
        else:
            rest = [strategy_label(a) for a in vs_ssr["a"] if a not in set(beat["a"])]
            out.append("RQ2: not significantly better than SS-R: " + ", ".join(rest) + ".")
    b10 = ci2.loc["rstar"]
    size_sign = _sign(b10)
    size_word = {"positive": "larger networks with less sharing perform better",
                 "negative": "larger networks with less sharing perform worse",
                 "not significant": "there is no clear effect of network size"}[size_sign]
    out.append(f"RQ2: network size r* (0 = SS-R ... 1 = MSS-CR) has slope b10 = {b10['estimate']:.2f} "
               f"({level}% interval {_ci(b10)}): {size_word} (second model, Eqs. 13-16).")
    agree_best = best in PAPER["best"]
    agree_worst = worst == PAPER["worst"]
    agree_size = size_sign == PAPER["size_effect"]
    if agree_best and agree_worst and agree_size:
        out.append("RQ2 vs the paper: this agrees with the paper, which found that less sharing is better "
                   "(MS-CR@2 and MSS-CR best, SS-R worst, positive effect of network size).")
    else:
        diffs = []
        if not agree_best:
            diffs.append(f"the best strategy here is {strategy_label(best)}, the paper's were MSS-CR and MS-CR@2")
        if not agree_worst:
            diffs.append(f"the worst here is {strategy_label(worst)}, the paper's was SS-R")
        if not agree_size:
            diffs.append(f"the size effect here is {size_sign}, the paper's was positive")
        out.append("RQ2 vs the paper: this differs from the paper: " + "; ".join(diffs) + ".")

    # ------------------------------------------------------------------ RQ1: number of sources
    b20 = ci2.loc["nstar"]
    n_sign = _sign(b20)
    n_word = {"positive": "more sources help", "negative": "more sources hurt",
              "not significant": "there is no clear effect of the number of sources"}[n_sign]
    out.append(f"RQ1: each additional learning source changes the standardised score by b20 = "
               f"{b20['estimate']:.2f} ({level}% interval {_ci(b20)}): {n_word} (second model).")
    if len(slopes):
        pos = [a for a in slopes.index if _sign(slopes.loc[a]) == "positive"]
        flat = [a for a in slopes.index if _sign(slopes.loc[a]) == "not significant"]
        neg = [a for a in slopes.index if _sign(slopes.loc[a]) == "negative"]
        parts = []
        if pos:
            parts.append("significantly positive for " + ", ".join(
                f"{strategy_label(a)} ({slopes.loc[a, 'estimate']:+.2f} {_ci(slopes.loc[a])})" for a in pos))
        if flat:
            parts.append("not different from 0 for " + ", ".join(
                f"{strategy_label(a)} ({slopes.loc[a, 'estimate']:+.2f} {_ci(slopes.loc[a])})" for a in flat))
        if neg:
            parts.append("significantly negative for " + ", ".join(strategy_label(a) for a in neg))
        out.append("RQ1: per strategy (first model), the slope of the number of sources is "
                   + "; ".join(parts) + ".")
    b30 = ci2.loc["rn"]
    int_sign = _sign(b30)
    out.append(f"RQ1: the interaction of size and number of sources is b30 = {b30['estimate']:.2f} "
               f"({level}% interval {_ci(b30)}): {'not significant' if int_sign == 'not significant' else int_sign}.")
    agree_n = n_sign == PAPER["sources_effect"]
    agree_int = (int_sign == "not significant") == (PAPER["interaction"] == "not significant")
    if agree_n and agree_int:
        out.append("RQ1 vs the paper: this agrees with the paper, which found a significantly positive effect "
                   "of the number of sources (about +0.16 per source in the best strategies, none for "
                   "MS-SR@FC) and no significant interaction with network size.")
    else:
        diffs = []
        if not agree_n:
            diffs.append(f"the effect of the number of sources here is {n_sign}, the paper's was positive")
        if not agree_int:
            diffs.append(f"the interaction here is {int_sign}, the paper's was not significant")
        out.append("RQ1 vs the paper: this differs from the paper: " + "; ".join(diffs) + ".")

    # ------------------------------------------------------------------ Table 6 / Figure 14
    t6 = getattr(analysis, "table6", None)
    if t6 is not None and not t6.empty:
        tops = []
        for t in t6.columns:
            col = t6[t].dropna()
            if len(col):
                tops.append(f"{target_label(t)}: {col.idxmax()} ({col.max():.0f}%)")
        if tops:
            out.append("Sources: the largest variance component per target (Table 6) is " + "; ".join(tops) + ".")
    corr = getattr(analysis, "correlation", None)
    if corr is not None and np.isfinite(corr.r):
        out.append(f"Sources: the Pearson correlation between the variance components and the standardised "
                   f"SS-R performance of the same source is r = {corr.r:.2f} (n = {corr.n}; "
                   f"paper: {PAPER['variance_ssr_r']}).")

    # ------------------------------------------------------------------ caveats
    for note in getattr(analysis, "notes", None) or []:
        out.append(f"Caveat: {note}")
    dropped = getattr(data, "dropped_targets", ())
    if dropped:
        out.append("Caveat: left out: " + ", ".join(dropped) + " (every learned representation scored the same, or "
                   "fewer than 2 were evaluated: nothing to standardise).")
    if data.n_targets < MIN_TARGETS:
        out.append(f"Caveat: only {data.n_targets} targets; the between-target variances, and so every interval, "
                   f"rest on {data.n_targets - 1} degrees of freedom. Read the effects as rough.")
    reps = data.table.drop_duplicates("representation")
    counts = reps["arch"].value_counts()
    few = [f"{strategy_label(a)} ({int(counts.get(a, 0))})" for a in STRATEGIES
           if 0 < counts.get(a, 0) < MIN_RUNS_PER_STRATEGY]
    if few:
        out.append("Caveat: few runs for " + ", ".join(few) + f" (under {MIN_RUNS_PER_STRATEGY}); their "
                   "effects are poorly determined.")
    absent = [strategy_label(a) for a in STRATEGIES if counts.get(a, 0) == 0]
    if absent:
        out.append("Caveat: no runs of " + ", ".join(absent) + "; the comparisons leave them out.")
    for fit in (m1, m2):
        if not fit.converged:
            out.append(f"Caveat: the {fit.name} model did not converge ({'; '.join(fit.fit_warnings)}).")
        if fit.bootstrap is None:
            out.append(f"Caveat: the {fit.name} model's intervals are Wald t intervals; the paper's are from a "
                       "parametric bootstrap (run parametric_bootstrap or analyze(bootstrap=B)).")
        elif fit.bootstrap.n_ok < MIN_BOOTSTRAP:
            out.append(f"Caveat: the {fit.name} model's bootstrap has only {fit.bootstrap.n_ok} replicates; "
                       f"percentile intervals need a few hundred.")
    if len(data.protocols) > 1:
        out.append("Caveat: the table mixes the protocols " + ", ".join(data.protocols) + ".")
    return out
