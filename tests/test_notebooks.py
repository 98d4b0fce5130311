"""The walkthrough notebooks, executed end to end through papermill with tiny parameters, and
checked the way a reader sees them: figures shown where they are made, no stderr in a normal
run, a summary at the end, HTML copies, nothing written to the working directory."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from conftest import REFERENCE

from mtdtl.evaluation.results import ResultsTable
from mtdtl.notebooks import run_notebook

pytestmark = pytest.mark.slow

SOURCES = "self,bpm,tag,lyrics"


def _cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _errors(path):
    return [o for c in _cells(path) for o in c.get("outputs", []) if o.output_type == "error"]


def _stderr(path):
    return [o.text for c in _cells(path) for o in c.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]


def _text(path) -> str:
    out = []
    for c in _cells(path):
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o["data"]:
                out.append(o["data"]["text/plain"])
    return "\n".join(out)


def _figure_cells_show_images(path):
    """Every cell that saves a figure shows it as an image, once."""
    figure_cells = [c for c in _cells(path) if "save_figure(" in c.source]
    assert figure_cells, "the notebook makes figures"
    for c in figure_cells:
        images = [o for o in c.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, f"cell {c.source.splitlines()[0]!r} shows {len(images)} images"
    return len(figure_cells)


def _html_ok(path, n_figures):
    page = path.with_suffix(".html").read_text()
    assert page.count("data:image/png;base64") >= n_figures
    assert "Findings" in page


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def notebooks_before():
    from mtdtl.notebooks import notebooks_dir

    folder = notebooks_dir()
    before = _files(folder)
    yield
    assert _files(folder) == before, "a notebook run wrote into notebooks/"


def test_01_preprocess(tiny_corpus, tmp_path, notebooks_before):
    out = run_notebook("01_preprocess", tmp_path / "01.ipynb", progress=False,
                       parameters={"corpus": str(tiny_corpus), "store": str(tmp_path / "store"),
                                   "n_components": 8, "seed": 0})
    assert not _errors(out) and not _stderr(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01.html", "01.ipynb", "store"], \
        "nothing lands in the working directory (papermill runs the kernel in the output folder)"
    metrics = json.loads((tmp_path / "store" / "metrics.json").read_text())
    assert metrics["n_clips"] > 0 and metrics["k"] == 8 and metrics["findings"]
    assert set(metrics["coverage"]) == {"self", "bpm", "year", "taste", "tag", "lyrics", "cdr_tag", "artist"}
    assert (tmp_path / "store" / "labels" / "tag.npz").is_file()
    for stem in ("mel_examples", "scaler", "gmm_fit", "coverage"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "store" / "figures" / f"{stem}.{ext}").is_file()
    n = _figure_cells_show_images(out)
    _html_ok(out, n)
    text = _text(out)
    assert "learning sources" in text and "What 01_preprocess made" in text and "Label coverage ranges" in text
    assert "reduce sources: 100%" in text  # the bar's final state, not "0%"
    assert "already reduced" not in text  # per-source detail lines only at log_level DETAIL


@pytest.fixture(scope="module")
def trained_run(tiny_store, tmp_path_factory):
    d = tmp_path_factory.mktemp("nb02")
    out = run_notebook("02_train", d / "02.ipynb", progress=False,
                       parameters={"arch": "ms_cr@6", "sources": SOURCES, "store": str(tiny_store),
                                   "width": "tiny", "epochs": 2, "batch_size": 8, "out_dir": str(d / "train")})
    return d, out


def test_02_train(trained_run):
    d, out = trained_run
    assert not _errors(out)
    # the one warning of this run ('lyrics' has no validation tracks) stays a warning, on stderr
    assert [s for s in _stderr(out) if not s.startswith("WARNING")] == []
    run = d / "train"
    for name in ("model.safetensors", "model.json", "log.jsonl", "metrics.json", "figures/learning_curves.png",
                 "figures/learning_curves.pdf"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "model.json").read_text())
    assert meta["arch"] == "ms_cr@6" and meta["sources"] == ["self", "bpm", "tag", "lyrics"]
    n = _figure_cells_show_images(out)
    _html_ok(out, n)
    text = _text(out)
    # the network table describes the model trained: k = 8 from the store, its four sources
    assert "k = 8 outputs per head" in text and "fc-output" in text and "8 (softmax)" in text
    assert "RepresentationModel(" not in text  # print(model) only with show_model
    table = next(c for c in _cells(out) if "param_table(" in c.source).outputs[0]["data"]["text/plain"]
    assert table.count("ms_cr@6") == 2  # one row per distinct source count (4 and 8)
    assert "What 02_train did" in text and "Finished: 2 epochs" in text and "precision" in text
    assert "'config':" not in text  # no raw metrics dict


def test_02_train_tiny_demo_store_and_max_steps(tiny_corpus, tmp_path):
    """``-p demo_size tiny -p max_steps 4 -p epochs 1``: the demo store gets a k that works, and a
    run stopped inside its first epoch shows that instead of crashing in plot_curves."""
    from mtdtl.paths import demo_corpus_dir

    target = demo_corpus_dir("tiny", 0)  # the session's data dir: reuse the tiny corpus already built
    if not target.exists():
        shutil.copytree(tiny_corpus, target)
    out = run_notebook("02_train", tmp_path / "02.ipynb", progress=False,
                       parameters={"demo_size": "tiny", "sources": "self,bpm,tag", "width": "tiny", "epochs": 1,
                                   "batch_size": 8, "max_steps": 4, "out_dir": str(tmp_path / "train")})
    assert not _errors(out)
    text = _text(out)
    assert "k = 8 outputs per head" in text
    assert "Not finished: stopped at step 4 (max_steps = 4)" in text and "No epoch finished" in text
    curves = next(c for c in _cells(out) if "plot_curves(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in curves.outputs)


def test_03_evaluate(trained_run, tiny_corpus):
    d, _ = trained_run
    out = run_notebook("03_evaluate", d / "03.ipynb", progress=False,
                       parameters={"run_dir": str(d / "train"), "corpus": str(tiny_corpus), "repetitions": 2,
                                   "baselines": "mfcc,rand", "out_dir": str(d / "evaluate"),
                                   "reference_dir": str(REFERENCE) if REFERENCE.is_dir() else ""})
    assert not _errors(out) and not _stderr(out)
    results = ResultsTable(d / "evaluate" / "results.csv").read()
    assert set(results["kind"]) == {"learned", "mfcc", "rand"} and len(set(results["representation"])) == 3
    assert "rand-ss_r-seed0-tiny" in set(results["representation"])  # the paper's Rand: untrained SS-R
    learned = results[results["kind"] == "learned"]
    assert set(learned["run"]) == {"ms_cr6-self+bpm+tag+lyrics-seed0-e2-tiny-b8"} and set(learned["seed"]) == {0}
    assert {"accuracy", "r2", "ndcg@500"} <= set(results["metric"])
    assert results["value"].notna().all()
    for ext in ("png", "pdf"):
        assert (d / "evaluate" / "figures" / f"transfer_vs_baselines.{ext}").is_file()
    n = _figure_cells_show_images(out)
    _html_ok(out, n)
    text = _text(out)
    # the pivot: short names as columns, tasks as rows, mean ± sd, best marked; a legend maps names to ids
    pivot = next(c for c in _cells(out) if "results_pivot(" in c.source).outputs
    html = next(o["data"]["text/html"] for o in pivot if "text/html" in o.get("data", {}))
    assert "learned (MS-CR@6, 4 src)" in html and "Rand (SS-R)" in html and "MFCC" in html and "±" in html
    assert "<b>" in html and "ms_cr6-self+bpm+tag+lyrics-seed0-e2-tiny-b8" in html
    assert "What 03_evaluate found" in text and "Best per task:" in text
    metrics = json.loads((d / "evaluate" / "metrics.json").read_text())
    assert metrics["findings"] and metrics["names"]["mfcc"] == "MFCC"
    if REFERENCE.is_dir():
        assert metrics["choi_reference"], "the Choi et al. reference table is in the notebook's metrics"
    # running again resumes: nothing is recomputed, the table keeps its rows
    n = len(results)
    run_notebook("03_evaluate", d / "03b.ipynb", progress=False,
                 parameters={"run_dir": str(d / "train"), "corpus": str(tiny_corpus), "repetitions": 2,
                             "baselines": "mfcc,rand", "out_dir": str(d / "evaluate")})
    assert len(ResultsTable(d / "evaluate" / "results.csv").read()) == n


def test_03_evaluate_missing_run_creates_nothing(tmp_path):
    from mtdtl.errors import MtdtlError
    from mtdtl.paths import data_dir

    before = _files(data_dir()) if data_dir().exists() else []
    missing = tmp_path / "no-such-run"
    with pytest.raises(MtdtlError, match="no checkpoint in"):
        run_notebook("03_evaluate", tmp_path / "nb" / "03.ipynb", progress=False,
                     parameters={"run_dir": str(missing), "repetitions": 1})
    assert not missing.exists()
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == ["03.html", "03.ipynb"]  # the failed run, readable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb"]
    assert (_files(data_dir()) if data_dir().exists() else []) == before


def test_05_analysis(tmp_path):
    from mtdtl.analysis import simulate_design, simulate_results

    sim = simulate_results(design=simulate_design(n_multi=60, ssr_per_source=2, full_per_arch=1, seed=0),
                           targets=("gtzan", "ballroom", "emo_arousal", "fma"), seed=0)
    sim.results.to_csv(tmp_path / "results.csv", index=False)
    out = run_notebook("05_analysis", tmp_path / "05.ipynb", progress=False,
                       parameters={"results": str(tmp_path / "results.csv"), "out_dir": str(tmp_path / "analysis")})
    assert not _errors(out)
    for name in ("fig8_single_source", "fig11_strategy_effects", "fig15_compactness"):
        assert (tmp_path / "analysis" / "figures" / f"{name}.png").is_file(), name
    metrics = json.loads((tmp_path / "analysis" / "metrics.json").read_text())
    assert metrics["findings"] and (tmp_path / "analysis" / "table6.csv").is_file()


def test_06_explain(trained_run, tiny_corpus):
    d, _ = trained_run
    out = run_notebook("06_explain", d / "06.ipynb", progress=False,
                       parameters={"run_dir": str(d / "train"), "target": "demo:genre", "corpus": str(tiny_corpus),
                                   "perplexity": 5.0, "out_dir": str(d / "explain")})
    assert not _errors(out)
    assert (d / "explain" / "figures" / "fig16_explain.png").is_file()
    assert (d / "explain" / "embedding.csv").is_file() and (d / "explain" / "top_topics.csv").is_file()


def test_04_design(tmp_path):
    """A small generated design over 4 sources on the debug template: balance, Figure 7, the
    plan (with a 1-step calibration) and a sweep file that loads, in the folder asked for."""
    from mtdtl.sweep import load_sweep

    sweep_file = tmp_path / "design-small.toml"
    out = run_notebook("04_design", tmp_path / "04.ipynb", progress=False,
                       parameters={"budget": 4, "seed": 1, "repetitions": "1,1", "sources": "self,bpm,tag,lyrics",
                                   "template": "debug", "sweep_out": str(sweep_file), "out_dir": str(tmp_path / "d")})
    assert not _errors(out) and not _stderr(out)
    assert _figure_cells_show_images(out) == 2  # this design's Figure 7 and the authors'
    sweep = load_sweep(sweep_file)
    assert len(sweep.design()) == 4 + 2 + 4 == len(sweep.runspecs())  # 4 SS-R, the 2 debug architectures, 4 chosen
    assert sweep["train"]["width"] == "tiny"  # the template's settings kept
    text = _text(out)
    assert "projected wall time here" in text and "mtdtl sweep run" in text
    assert (tmp_path / "d" / "figures" / "fig7_alias_matrix.png").is_file()
    assert (tmp_path / "d" / "design.csv").is_file() and (tmp_path / "d" / "plan.csv").is_file()
    assert "no side-by-side" in text  # 4 sources: not comparable with the authors' 8
