"""Figures 8-15 render from small results tables (Agg backend) and save as PNG and PDF."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from mtdtl.analysis import (
    STRATEGIES,
    analyze,
    fit_size_model,
    parametric_bootstrap,
    prepare,
    simulate_design,
    simulate_results,
    variance_vs_ssr,
)
from mtdtl.errors import MtdtlError
from mtdtl.plots import paper

DEMO_TARGETS = ("demo:genre", "demo:instrument", "demo:tempo", "demo:mood", "demo:era", "demo:listening")


@pytest.fixture(scope="module")
def demo_results():
    """A demo-sized study: 33 representations (all six strategies) on six demo tasks."""
    design = simulate_design(n_multi=20, ssr_per_source=1, full_per_arch=1, seed=0)
    return simulate_results(targets=DEMO_TARGETS, design=design, repetitions=2, source_sd=0.3, seed=1).results


@pytest.fixture(scope="module")
def demo_data(demo_results):
    return prepare(demo_results)


@pytest.fixture(scope="module")
def small_study():
    """A quick analysis: three strategies on four paper targets (fast fits)."""
    d = simulate_design(n_multi=45, ssr_per_source=2, full_per_arch=1, seed=0)
    d = d[d["arch"].isin(["ss_r", "ms_sr@fc", "mss_cr"])].reset_index(drop=True)
    sim = simulate_results(targets=("eballroom", "fma", "gtzan", "irmas"), design=d, source_sd=0.3, seed=2)
    return analyze(sim.results, compactness=False, progress=False)


@pytest.fixture
def plt():
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _check(fig, *, max_w=9.6, max_h=9.0):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    w, h = fig.get_size_inches()
    assert w <= max_w + 1e-9 and h <= max_h + 1e-9
    fig.canvas.draw()  # renders without error
    return fig


@pytest.mark.parametrize("fn", [paper.fig8_single_source, paper.fig9_strategies, paper.fig10_n_sources,
                                paper.fig13_best_source])
def test_data_figures_render(fn, demo_data, plt):
    fig = _check(fn(demo_data))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert sum(t.startswith("demo:") for t in titles) == len(DEMO_TARGETS)


def test_figure_from_the_raw_table(demo_results, plt):
    fig = paper.fig9_strategies(demo_results)
    assert sum(ax.get_title().startswith("demo:") for ax in fig.axes) == len(DEMO_TARGETS)


def test_fig8_draws_baselines_and_means(demo_data, plt):
    fig = paper.fig8_single_source(demo_data)
    ax = fig.axes[0]
    t = demo_data.targets[0]
    ys = sorted(round(line.get_ydata()[0], 9) for line in ax.get_lines())
    base = demo_data.baselines[demo_data.baselines["target"] == t].groupby("kind")["value"].mean()
    assert sorted(round(v, 9) for v in base) == ys  # one horizontal line per baseline, at its score


def test_fig13_names_the_best_source(demo_data, plt):
    from mtdtl.analysis import best_ssr_source

    best = best_ssr_source(demo_data)
    fig = paper.fig13_best_source(demo_data)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    for t in demo_data.targets:
        assert f"{t} (best: {best[t]})" in titles


def test_figures_without_ss_r(demo_results, plt):
    no_ssr = demo_results[~((demo_results["kind"] == "learned") & (demo_results["arch"] == "ss_r"))]
    data = prepare(no_ssr)
    for fn in (paper.fig8_single_source, paper.fig13_best_source):
        fig = _check(fn(data))  # draws without SS-R runs
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("no SS-R runs" in t for t in texts)


def test_effect_figures(small_study, plt):
    fig11 = _check(paper.fig11_strategy_effects(small_study))
    assert "Wald t" in fig11._suptitle.get_text()
    assert len(fig11.axes) == 2
    fig12 = _check(paper.fig12_size_effects(small_study.size))
    assert "Eqs. 13-16" in fig12.axes[0].get_title()
    with pytest.raises(MtdtlError, match="strategy model"):
        paper.fig11_strategy_effects(small_study.size)
    with pytest.raises(MtdtlError, match="MixedFit"):
        paper.fig12_size_effects("not a fit")


def test_fig12_with_bootstrap_intervals(small_study, plt):
    fit = fit_size_model(small_study.data)
    parametric_bootstrap(fit, B=3, seed=0, workers=1, progress=False)
    fig = _check(paper.fig12_size_effects(fit))
    assert "bootstrap" in fig.axes[0].get_title()


def test_fig14(demo_data, small_study, plt):
    corr = variance_vs_ssr(demo_data)
    fig = _check(paper.fig14_variance_vs_ssr(corr))
    assert f"{corr.r:.2f}" in fig.axes[0].get_title()
    _check(paper.fig14_variance_vs_ssr(small_study))  # from a StudyAnalysis
    _check(paper.fig14_variance_vs_ssr(demo_data))  # computed from the data


def test_fig15_from_a_table(plt):
    rows = [{"arch": "ss_r", "strategy": "SS-R", "n_sources": 1, "params": 5.8e5, "params_vs_ss_r": 1.0,
             "mflops": 117.0, "feature_dim": 256}]
    for a in STRATEGIES[1:]:
        for n in range(2, 9):
            p = 5.8e5 * (1 + 0.03 * n if a == "ms_sr@fc" else n)
            rows.append({"arch": a, "strategy": a, "n_sources": n, "params": p, "params_vs_ss_r": p / 5.8e5,
                         "mflops": 117.0 * (1 if a == "ms_sr@fc" else n), "feature_dim": 256})
    fig = _check(paper.fig15_compactness(pd.DataFrame(rows)))
    assert len(fig.axes) == 2
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "MSS-CR")
    np.testing.assert_allclose(line.get_ydata(), 0.58 * np.arange(2, 9))
    assert len(_check(paper.fig15_compactness(pd.DataFrame(rows), flops=False)).axes) == 1


def test_save_figure_writes_png_and_pdf(small_study, tmp_path, plt):
    fig = paper.fig12_size_effects(small_study)
    paths = paper.save_figure(fig, tmp_path / "figs" / "fig09.png")
    assert [p.name for p in paths] == ["fig09.png", "fig09.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not list((tmp_path / "figs").glob(".*tmp"))  # atomic: no leftovers


@pytest.mark.slow
def test_all_figures(small_study, plt):
    small_study.compactness = pd.DataFrame([
        {"arch": "ss_r", "strategy": "SS-R", "n_sources": 1, "params": 1.0, "params_vs_ss_r": 1.0, "mflops": 1.0,
         "feature_dim": 256},
        {"arch": "mss_cr", "strategy": "MSS-CR", "n_sources": 2, "params": 2.0, "params_vs_ss_r": 2.0,
         "mflops": 2.0, "feature_dim": 512}])
    figs = paper.all_figures(small_study)
    assert list(figs) == ["fig08_single_source", "fig09_strategies", "fig10_n_sources", "fig11_strategy_effects",
                          "fig12_size_effects", "fig13_best_source", "fig14_variance_vs_ssr", "fig15_compactness"]
    for f in figs.values():
        _check(f)
