"""What the walkthrough notebooks show a reader: figures (mtdtl.plots), tables and summaries
(mtdtl.report), the log narrative (mtdtl.log) and the executed-notebook post-processing
(mtdtl.notebooks). Fast: synthetic data only, no kernel."""

from __future__ import annotations

import io
import json
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mtdtl.errors import MtdtlError

# ---------------------------------------------------------------------------------------
# synthetic inputs
# ---------------------------------------------------------------------------------------

def _results(n_rep: int = 3) -> pd.DataFrame:
    """A results table: one learned run, Rand (SS-R) and MFCC on three tasks."""
    from mtdtl.evaluation.results import tidy_rows

    rng = np.random.default_rng(0)
    score = {  # (representation, target) -> mean score
        ("learned", "demo:genre"): 0.70, ("rand", "demo:genre"): 0.40, ("mfcc", "demo:genre"): 0.50,
        ("learned", "demo:instrument"): 0.30, ("rand", "demo:instrument"): 0.20, ("mfcc", "demo:instrument"): 0.60,
        ("learned", "demo:pitch_height"): 0.20, ("rand", "demo:pitch_height"): -0.50, ("mfcc", "demo:pitch_height"): 0.10,
    }
    ident = {
        "learned": {"run": "ms_cr6-self+bpm+year+taste+tag+lyrics+cdr_tag+artist-seed0-e30",
                    "representation": "ms_cr6-self+bpm+year+taste+tag+lyrics+cdr_tag+artist-seed0-e30",
                    "kind": "learned", "arch": "ms_cr@6",
                    "sources": "self+bpm+year+taste+tag+lyrics+cdr_tag+artist", "seed": 0, "epochs": 30},
        "rand": {"run": "rand-ss_r-seed0", "representation": "rand-ss_r-seed0", "kind": "rand", "arch": "ss_r",
                 "sources": "", "seed": 0},
        "mfcc": {"run": "mfcc", "representation": "mfcc", "kind": "mfcc"},
    }
    frames = []
    for (rep, target), mu in score.items():
        metric = "r2" if "pitch" in target else "accuracy"
        evals = [{metric: mu + 0.01 * rng.standard_normal()} for _ in range(n_rep)]
        frames.append(tidy_rows(evals, identity=ident[rep], target=target,
                                task="regression" if metric == "r2" else "classification"))
    return pd.concat(frames, ignore_index=True)


def _run_dir(tmp_path, records, *, finished=True, step=24, max_steps=None):
    """A run folder with model.json (and log.jsonl, metrics.json when given records)."""
    run = tmp_path / "run"
    run.mkdir()
    meta = {"arch": "ms_cr@6", "label": "MS-CR@6", "sources": ["self", "bpm", "tag"], "n_out": 8, "params": 9818,
            "epoch": len(records), "step": step, "finished": finished,
            "run": {"id": "ms_cr6-self+bpm+tag-seed0-e2-tiny-b8"},
            "training": {"epochs": 2, "batch_size": 8, "lr": 2.5e-4, "device": "auto", "max_steps": max_steps}}
    (run / "model.json").write_text(json.dumps(meta))
    if records:
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if finished:
        (run / "metrics.json").write_text(json.dumps({"train_time_s": 33.6, "samples_per_s": 13.0,
                                                      "compute": {"device": "cpu", "bf16": False, "num_threads": 2}}))
    return run


RECORDS = [
    {"epoch": 1, "step": 12, "train_loss": {"self": 0.87, "bpm": 1.98, "tag": 2.20},
     "valid_loss": {"self": 0.69, "bpm": 2.11, "tag": 1.33}, "valid_acc": {"self": 0.5},
     "samples_per_s": 12.0, "elapsed_s": 17.0},
    {"epoch": 2, "step": 24, "train_loss": {"self": 0.72, "bpm": 1.90, "tag": 2.10},
     "valid_loss": {"self": 0.70, "bpm": 2.05, "tag": 1.31}, "valid_acc": {"self": 0.75},
     "samples_per_s": 14.0, "elapsed_s": 33.6},
]


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------

def test_save_figure_writes_png_and_pdf(tmp_path):
    from mtdtl.plots import new_figure, save_figure

    fig = new_figure(20, 3)  # wider than a notebook: capped
    assert isinstance(fig, Figure) and fig.get_figwidth() <= 9.6
    fig.subplots().plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "sub" / "curve.png")  # a suffix given is replaced
    assert [p.name for p in paths] == ["curve.png", "curve.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    # the notebooks' figure_formats parameter: a comma-separated string
    assert [p.name for p in save_figure(fig, tmp_path / "s" / "c", formats="svg, png")] == ["c.svg", "c.png"]
    for bad in ("jpg", "", ["png", "tiff"]):
        with pytest.raises(MtdtlError, match="not among png, pdf, svg"):
            save_figure(fig, tmp_path / "bad" / "c", formats=bad)
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


def test_figures_use_laptop_sized_fonts():
    from mtdtl.plots import new_figure
    from mtdtl.plots.base import style

    fig = new_figure(6, 3)
    with style():
        ax = fig.subplots()
        ax.set_title("t")
        ax.plot([0, 1])
    assert ax.title.get_fontsize() >= 10.5
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 9


def test_plot_curves_without_a_finished_epoch_says_so(tmp_path):
    # max_steps stopped the run inside epoch 1: nothing logged yet; used to raise "no epochs logged"
    from mtdtl.plots.training import plot_curves

    run = _run_dir(tmp_path, [], finished=False, step=4, max_steps=4)
    fig = plot_curves(run)
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "no epoch finished yet" in text and "step 4" in text and "max_steps = 4" in text


def test_plot_curves_one_panel_per_source_and_integer_epochs(tmp_path):
    from mtdtl.plots.training import plot_curves

    run = _run_dir(tmp_path, RECORDS[:1])
    fig = plot_curves(run)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == ["self", "bpm", "tag"]
    ticks = fig.axes[0].get_xticks()
    assert list(ticks) == [1.0]  # one epoch: one tick, no 0.95 ... 1.05
    assert "ms_cr6-self+bpm+tag-seed0-e2-tiny-b8" in fig._suptitle.get_text()


def test_plot_curves_rejects_a_folder_that_is_not_a_run(tmp_path):
    from mtdtl.plots.training import plot_curves

    with pytest.raises(MtdtlError, match="not a training run folder"):
        plot_curves(tmp_path)


def test_results_vs_baselines_legend_uses_short_names():
    from mtdtl.plots import results_vs_baselines

    r = _results()
    fig = results_vs_baselines(r, ours=r["representation"].iloc[0])
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels == ["learned (MS-CR@6, 8 src)", "Rand (SS-R)", "MFCC"]
    assert fig.get_figwidth() <= 9.6
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["genre", "instrument", "pitch_height"]


@pytest.mark.slow
def test_data_figures_are_bare_figures(tiny_store):
    from mtdtl import plots
    from mtdtl.sources.reduce import coverage_table

    for fig in (plots.mel_examples(tiny_store, n=2), plots.scaler_stats(tiny_store),
                plots.gmm_fit(tiny_store), plots.coverage(coverage_table(tiny_store))):
        assert isinstance(fig, Figure) and fig.get_figwidth() <= 9.6
        assert fig.canvas.manager is None  # not a pyplot figure: shown once, by the cell that returns it


# ---------------------------------------------------------------------------------------
# names, pivot, summaries
# ---------------------------------------------------------------------------------------

def test_display_names():
    from mtdtl.report import display_names

    r = _results()
    assert list(display_names(r).values()) == ["learned (MS-CR@6, 8 src)", "Rand (SS-R)", "MFCC"]
    # two runs that differ only by seed: the seed tells them apart
    other = r[r["kind"] == "learned"].assign(representation="x-seed1", run="x-seed1", seed=1)
    names = display_names(pd.concat([r, other]))
    assert names["x-seed1"] == "learned (MS-CR@6, 8 src, seed 1)"
    assert names[r["representation"].iloc[0]] == "learned (MS-CR@6, 8 src, seed 0)"
    one = r[r["kind"] == "learned"].assign(representation="ss", arch="ss_r", sources="tag", n_sources=1)
    assert display_names(one)["ss"] == "learned (SS-R, tag)"


def test_results_pivot_marks_the_best_per_row():
    from mtdtl.report import results_pivot

    pv = results_pivot(_results())
    assert list(pv.mean.index) == ["genre (accuracy)", "instrument (accuracy)", "pitch_height (r2)"]
    assert list(pv.mean.columns) == ["learned (MS-CR@6, 8 src)", "Rand (SS-R)", "MFCC"]
    assert pv.best.sum(axis=1).tolist() == [1, 1, 1]
    assert pv.best.at["instrument (accuracy)", "MFCC"]
    t = pv.table()
    assert t.at["genre (accuracy)", "learned (MS-CR@6, 8 src)"].endswith(" *") and "±" in t.iat[0, 0]
    assert (pv.n == 3).all().all()
    html = pv._repr_html_()
    assert html.count("<td><b>") == 3 and "<td><b>0.595" in html  # the best of each row, bold
    assert "ms_cr6-self+bpm" in html  # the legend maps names to run ids
    assert "mean ± sd over 3 repetitions" in repr(pv)


def test_transfer_summary_is_computed_from_the_results():
    from mtdtl.report import transfer_summary

    s = transfer_summary(_results())
    text = str(s)
    assert "learned (MS-CR@6, 8 src) representation beats Rand (SS-R) on 3 of 3 tasks and MFCC on 2 of 3" in text
    assert "MFCC on instrument" in text and "learned (MS-CR@6, 8 src) on genre and pitch height" in text
    assert "R² below 0 (worse than predicting the training mean) on pitch height for Rand (SS-R)." in text
    # other numbers, other sentences: nothing is hard-wired
    r = _results()
    r.loc[(r["kind"] == "mfcc") & (r["target"] == "demo:genre"), "value"] = 0.9
    text = str(transfer_summary(r))
    assert "MFCC on 1 of 3 tasks" in text and "MFCC on genre and instrument" in text


def _with_chance(r: pd.DataFrame, level: dict) -> pd.DataFrame:
    from mtdtl.evaluation.results import tidy_rows

    ident = {"run": "chance", "representation": "chance", "kind": "chance"}
    frames = [r]
    for target, mu in level.items():
        metric = "r2" if "pitch" in target else "accuracy"
        frames.append(tidy_rows([{metric: mu}] * 3, identity=ident, target=target,
                                task="regression" if metric == "r2" else "classification"))
    return pd.concat(frames, ignore_index=True)


def test_chance_names_the_tasks_nobody_learned_and_is_a_line_in_the_figure():
    from mtdtl.plots import results_vs_baselines
    from mtdtl.report import display_names, transfer_summary

    r = _with_chance(_results(), {"demo:genre": 0.25, "demo:instrument": 0.65, "demo:pitch_height": -0.01})
    assert display_names(r)["chance"] == "Chance"
    text = str(transfer_summary(r))
    (line,) = [ln for ln in text.splitlines() if "above Chance" in ln]
    assert "On instrument (0.650) no representation scores above Chance" in line
    assert "genre" not in line and "pitch" not in line
    r2 = _with_chance(_results(), {"demo:genre": 0.25, "demo:instrument": 0.10, "demo:pitch_height": -0.01})
    assert "no representation scores above Chance" not in str(transfer_summary(r2))
    assert "pitch height for Rand (SS-R)." in text  # Chance (R² -0.01) is not listed as below 0
    fig = results_vs_baselines(r, ours=r["representation"].iloc[0])
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels == ["learned (MS-CR@6, 8 src)", "Rand (SS-R)", "MFCC", "Chance"]
    ax = [a for a in fig.axes if a.get_visible() and a.get_title() == "instrument"][0]
    assert len(ax.patches) == 3  # three bars; Chance is the dashed line
    assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == pytest.approx(0.65) for ln in ax.get_lines())


def test_training_summary_finished_and_unfinished(tmp_path):
    from mtdtl.report import training_summary

    done = training_summary(_run_dir(tmp_path, RECORDS))
    text = str(done)
    assert "Finished: 2 epochs, 24 steps in 34 s, 13 samples/s." in text and "precision float32" in text
    assert "Validation loss fell from epoch 1 to epoch 2 for 2 of 3 sources (bpm and tag); it rose for self" in text
    assert "75% accuracy" in text
    assert done.table["best epoch"].tolist() == ["1", "2", "2"]
    assert "<table" in done._repr_html_()

    (tmp_path / "f").mkdir()
    flat = [dict(RECORDS[0]), dict(RECORDS[1], valid_loss={"self": 0.6901, "bpm": 2.05, "tag": 1.31})]
    assert "it stayed within 0.5% for self" in str(training_summary(_run_dir(tmp_path / "f", flat)))

    (tmp_path / "b").mkdir()
    early = str(training_summary(_run_dir(tmp_path / "b", [], finished=False, step=4, max_steps=4)))
    assert "Not finished: stopped at step 4 (max_steps = 4), 0 of 2 epochs done" in early
    assert "No epoch finished" in early


def test_network_table_matches_the_model():
    from mtdtl.models import build_model, count_parameters
    from mtdtl.models.summary import network_table

    model = build_model("ms_cr@6", ["self", "bpm", "tag"], width="tiny", n_out=8)
    t = network_table(model)
    assert list(t.columns) == ["layer", "part", "kernel", "stride", "channels", "output", "params"]
    assert t["params"].iloc[-1] == count_parameters(model) and t["layer"].iloc[-1] == "total"
    assert t["params"].iloc[:-1].sum() == count_parameters(model)
    row = t.set_index("layer")
    assert row.at["conv1", "kernel"] == "5x5" and row.at["conv1", "stride"] == "2x1"
    assert row.at["conv61", "part"] == "per source (x3)"
    assert row.at["fc-output", "channels"] == 8  # k of the run, not the paper's 50
    assert len(t) < 25  # compact: one row per layer, not one per module


def test_param_table_one_row_per_distinct_source_count():
    from mtdtl.models import param_table

    t = param_table([8, 8], width="tiny", archs=["ss_r", "ms_cr@6"])
    assert t["arch"].tolist() == ["ss_r", "ms_cr@6"]


@pytest.mark.slow
def test_reduced_k(tiny_store):
    from mtdtl.report import reduced_k

    assert reduced_k(tiny_store, ["self", "bpm", "tag"]) == 8
    assert reduced_k(tiny_store, ["self"]) == 50


# ---------------------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------------------

@pytest.fixture
def mtdtl_logger():
    logger = logging.getLogger("mtdtl")
    old = (list(logger.handlers), logger.level)
    yield logger
    logger.handlers[:] = old[0]
    logger.setLevel(old[1])


def test_notebook_logging_info_to_stdout_warnings_to_stderr(mtdtl_logger, monkeypatch):
    from mtdtl.log import get_logger, setup_logging

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    setup_logging("INFO", notebook=True)
    setup_logging("INFO", notebook=True)  # a re-run cell: still one handler
    get_logger("mtdtl.training.loop").info("finished run")
    get_logger("mtdtl.training.loop").warning("no validation tracks")
    get_logger("mtdtl.sources.reduce").info("tag: already reduced")  # a detail line
    get_logger("mtdtl.training.loop").debug("epoch record")
    assert out.getvalue() == "finished run\n"
    assert err.getvalue() == "WARNING mtdtl.training.loop: no validation tracks\n"


def test_detail_level_shows_the_detail_lines(mtdtl_logger, monkeypatch):
    from mtdtl.log import DETAIL, get_logger, setup_logging

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    setup_logging("DETAIL", notebook=True)
    get_logger("mtdtl.sources.reduce").info("tag: already reduced")
    get_logger("mtdtl.transfer").log(DETAIL, "per target")
    get_logger("mtdtl.transfer").debug("hidden")
    assert out.getvalue() == "tag: already reduced\nper target\n"
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("LOUD")


def test_terminal_logging_goes_to_stderr_with_time(mtdtl_logger, monkeypatch):
    from mtdtl.log import get_logger, setup_logging

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    setup_logging("INFO", notebook=False)
    get_logger("mtdtl.walkthrough").info("== 01 ==")
    assert out.getvalue() == "" and "INFO mtdtl.walkthrough: == 01 ==" in err.getvalue()


# ---------------------------------------------------------------------------------------
# executed notebooks: progress bars and HTML copies
# ---------------------------------------------------------------------------------------

def _nb_with_bar_and_image():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                "state": state}

    states = {
        "box": model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
        "l": model("HTMLModel", value="MS-CR@6 epoch 2/2:\u2007100%"),
        "p": model("FloatProgressModel", value=24.0, max=24.0),
        "r": model("HTMLModel", value="\u200724/24\u2007[00:34&lt;00:00,\u20071.13it/s]"),
    }
    bar = new_output("display_data", data={"application/vnd.jupyter.widget-view+json":
                                           {"model_id": "box", "version_major": 2, "version_minor": 0},
                                           "text/plain": "MS-CR@6:   0%|          | 0/24"})
    png = new_output("execute_result", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}, execution_count=2)
    nb = new_notebook(cells=[new_code_cell("train()", outputs=[bar]), new_code_cell("fig", outputs=[png])])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": states, "version_major": 2,
                                                                           "version_minor": 0}}
    return nb


def test_progress_bars_keep_their_final_text():
    from mtdtl.notebooks import finalize_progress_bars

    nb = _nb_with_bar_and_image()
    assert finalize_progress_bars(nb) == 1
    text = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert text == "MS-CR@6 epoch 2/2: 100%|██████████| 24/24 [00:34<00:00, 1.13it/s]"


def test_html_copy_is_self_contained(tmp_path):
    from mtdtl.notebooks import write_html

    path = write_html(_nb_with_bar_and_image(), tmp_path / "02.html")
    page = path.read_text()
    assert "data:image/png;base64,iVBORw0KGgo=" in page  # figure inline
    assert "24/24 [00:34&lt;00:00" in page  # the bar's final state, as text
    assert "widget-view+json" not in page and "widget-state+json" not in page  # no widget JS needed
