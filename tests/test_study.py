"""The main job (``mtdtl study``): the whole study in miniature end to end on the tiny corpus
(corpus, 01, 04, the sweep, 05, 06), its resume, and the choices it checks before starting."""

from __future__ import annotations

import pandas as pd
import pytest

from mtdtl.cli import main
from mtdtl.errors import MtdtlError


def _tiny_study_template(path, corpus, store):
    from mtdtl.sweep import write_sweep

    return write_sweep(path, name="tiny-study", description="the study in miniature, tiny",
                       data={"demo_size": "tiny", "k": 8, "corpus": str(corpus), "store": str(store)},
                       design={"kind": "generate", "sources": ["self", "bpm", "tag"], "archs": ["mss_cr", "ms_cr@6"],
                               "ss_repetitions": 1, "all_repetitions": 1, "budget": 1, "seed": 0},
                       train={"epochs": 1, "width": "tiny", "batch_size": 8},
                       evaluate={"targets": ["demo:genre", "demo:meter", "demo:note_density", "demo:pitch_height"],
                                 "repetitions": 2, "baselines": ["mfcc", "rand"]},
                       dask={"workers": 2})


def test_run_study_checks_its_template_first(tmp_path, monkeypatch):
    from mtdtl.sweep import write_sweep
    from mtdtl.walkthrough import run_study

    import mtdtl.corpora.demo

    monkeypatch.setattr(mtdtl.corpora.demo, "build_demo_corpus", lambda **_: pytest.fail("the corpus build started"))
    own = write_sweep(tmp_path / "own.toml", data={"store": str(tmp_path / "store")}, design={"kind": "generate"})
    with pytest.raises(MtdtlError, match="demo_size"):
        run_study(out_dir=tmp_path / "out", sweep=own)
    with pytest.raises(MtdtlError, match="not found"):
        run_study(out_dir=tmp_path / "out", sweep="no-such-sweep")


@pytest.mark.slow
def test_mtdtl_study_in_miniature_and_its_resume(tiny_corpus, tmp_path, capsys, monkeypatch):
    """The main job end to end on the tiny corpus (6 runs: 3 SS-R, MSS-CR and MS-CR@6 with all 3
    sources, one chosen by Algorithm 2; MFCC and Rand), then again: every stage is reused."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    template = _tiny_study_template(tmp_path / "tiny.toml", tiny_corpus, tmp_path / "store")
    out = tmp_path / "study"
    rc = main(["-q", "study", "-o", str(out), "--sweep", str(template)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    printed = captured.out
    assert "== findings (05_analysis) ==" in printed and "results table:" in printed and "6 done" in printed
    for nb in ("01_preprocess", "04_design", "05_analysis", "06_explain"):
        assert (out / f"{nb}.ipynb").is_file() and (out / f"{nb}.html").is_file(), nb
    runs = sorted(p.name for p in (out / "sweep" / "runs").iterdir())
    assert len(runs) == 6 and all((out / "sweep" / "runs" / r / "02_train.ipynb").is_file() for r in runs)
    for fig in ("design/figures/fig7_alias_matrix.png", "analysis/figures/fig8_single_source.png",
                "analysis/figures/fig11_strategy_effects.png", "explain/figures/fig16_explain.png"):
        assert (out / fig).is_file(), fig
    results = pd.read_csv(out / "sweep" / "results.csv")
    assert {"mfcc", "learned", "rand"} <= set(results["kind"]) and results["run"].nunique() == 6 + 2
    assert list(cwd.iterdir()) == [], "nothing lands in the working directory"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.ipynb")}
    rc = main(["-q", "study", "-o", str(out), "--sweep", str(template)])
    assert rc == 0, capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.ipynb")} == stamps, "a finished stage ran again"
