"""The walkthrough notebooks, executed end to end through papermill with tiny parameters."""

from __future__ import annotations

import json

import nbformat
import pytest

from mtdtl.evaluation.results import ResultsTable
from mtdtl.notebooks import run_notebook

from conftest import REFERENCE

pytestmark = pytest.mark.slow


def _errors(path):
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def _text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o["data"]:
                out.append(o["data"]["text/plain"])
    return "\n".join(out)


def test_01_preprocess(tiny_corpus, tmp_path):
    out = run_notebook("01_preprocess", tmp_path / "01.ipynb", progress=False,
                       parameters={"corpus": str(tiny_corpus), "store": str(tmp_path / "store"),
                                   "n_components": 8, "seed": 0})
    assert not _errors(out)
    assert not (tmp_path / "metrics.json").exists(), "nothing lands in the working directory"
    metrics = json.loads((tmp_path / "store" / "metrics.json").read_text())
    assert metrics["n_clips"] > 0 and metrics["k"] == 8
    assert set(metrics["coverage"]) == {"self", "bpm", "year", "taste", "tag", "lyrics", "cdr_tag", "artist"}
    assert (tmp_path / "store" / "labels" / "tag.npz").is_file()
    text = _text(out)
    assert "learning sources" in text and "Figure" in text  # summary printed, figures drawn


@pytest.fixture(scope="module")
def trained_run(tiny_store, tmp_path_factory):
    d = tmp_path_factory.mktemp("nb02")
    out = run_notebook("02_train", d / "02.ipynb", progress=False,
                       parameters={"arch": "ms_cr@6", "sources": "self,bpm,tag,lyrics", "store": str(tiny_store),
                                   "width": "tiny", "epochs": 1, "batch_size": 8, "out_dir": str(d / "train")})
    return d, out


def test_02_train(trained_run):
    d, out = trained_run
    assert not _errors(out)
    run = d / "train"
    for name in ("model.safetensors", "model.json", "log.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "model.json").read_text())
    assert meta["arch"] == "ms_cr@6" and meta["sources"] == ["self", "bpm", "tag", "lyrics"]
    assert "Figure" in _text(out)  # learning curves


def test_03_evaluate(trained_run, tiny_corpus):
    d, _ = trained_run
    out = run_notebook("03_evaluate", d / "03.ipynb", progress=False,
                       parameters={"run_dir": str(d / "train"), "corpus": str(tiny_corpus), "repetitions": 1,
                                   "baselines": "mfcc,rand", "out_dir": str(d / "evaluate"),
                                   "reference_dir": str(REFERENCE) if REFERENCE.is_dir() else ""})
    assert not _errors(out)
    results = ResultsTable(d / "evaluate" / "results.csv").read()
    assert set(results["kind"]) == {"learned", "mfcc", "rand"} and len(set(results["representation"])) == 3
    assert "rand-ss_r-seed0-tiny" in set(results["representation"])  # the paper's Rand: untrained SS-R
    learned = results[results["kind"] == "learned"]
    assert set(learned["run"]) == {"ms_cr6-self+bpm+tag+lyrics-seed0-e1-tiny-b8"} and set(learned["seed"]) == {0}
    assert {"accuracy", "r2", "ndcg@500"} <= set(results["metric"])
    assert results["value"].notna().all()
    assert (d / "evaluate" / "transfer_vs_baselines.png").is_file()
    metrics = json.loads((d / "evaluate" / "metrics.json").read_text())
    if REFERENCE.is_dir():
        assert metrics["choi_reference"], "the Choi et al. reference table is in the notebook's metrics"
    # running again resumes: nothing is recomputed, the table keeps its rows
    n = len(results)
    run_notebook("03_evaluate", d / "03b.ipynb", progress=False,
                 parameters={"run_dir": str(d / "train"), "corpus": str(tiny_corpus), "repetitions": 1,
                             "baselines": "mfcc,rand", "out_dir": str(d / "evaluate")})
    assert len(ResultsTable(d / "evaluate" / "results.csv").read()) == n
