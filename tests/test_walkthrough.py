"""The main job (``mtdtl demo``): end to end on the tiny corpus (corpus, 01, 02, 03, HTML copies,
report), and the choices it makes before starting."""

from __future__ import annotations

import pandas as pd
import pytest

from mtdtl.cli import main
from mtdtl.errors import MtdtlError
from mtdtl.walkthrough import demo_k, run_walkthrough


def test_demo_k_fits_the_corpus_size():
    assert demo_k("tiny") == 8 and demo_k("small") == 50 and demo_k("full") == 50
    with pytest.raises(MtdtlError, match="unknown demo corpus size"):
        demo_k("huge")


@pytest.mark.parametrize("kw, msg", [({"arch": "nope"}, "architecture"), ({"sources": "tag,tga"}, "tga"),
                                     ({"size": "smal"}, "size"), ({"arch": "ss_r", "sources": "tag,bpm"}, "one source")])
def test_run_walkthrough_checks_its_arguments_first(kw, msg, tmp_path, monkeypatch):
    import mtdtl.corpora.demo

    def no_build(**_):
        raise AssertionError("the corpus build started")

    monkeypatch.setattr(mtdtl.corpora.demo, "build_demo_corpus", no_build)
    with pytest.raises(MtdtlError, match=msg):
        run_walkthrough(out_dir=tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_mtdtl_demo_on_the_tiny_corpus(tiny_corpus, tmp_path, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "demo"
    # no --k: the tiny corpus gets a k that works (8; the paper's 50 needs 50 training values)
    rc = main(["-q", "demo", "-o", str(out), "--size", "tiny", "--root", str(tiny_corpus), "--epochs", "1",
               "--sources", "self,tag,bpm"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "results (mean over repetitions)" in printed and "results table:" in printed
    assert "HTML copies:" in printed and "== findings ==" in printed and "beats" in printed
    for name in ("01_preprocess.ipynb", "02_train.ipynb", "03_evaluate.ipynb", "train/model.safetensors",
                 "evaluate/results.csv", "evaluate/figures/transfer_vs_baselines.png",
                 "evaluate/figures/transfer_vs_baselines.pdf", "train/figures/learning_curves.png",
                 "store/figures/mel_examples.png", "store/figures/coverage.pdf"):
        assert (out / name).is_file(), name
    for nb in ("01_preprocess", "02_train", "03_evaluate"):
        page = (out / f"{nb}.html").read_text()
        assert "data:image/png;base64" in page, f"{nb}.html shows no figure"
        assert "Findings" in page
    assert list(cwd.iterdir()) == [], "nothing lands in the working directory"
    results = pd.read_csv(out / "evaluate" / "results.csv")
    reps = set(results["representation"])
    assert {"mfcc", "rand-ss_r-seed0"} < reps and any(r.startswith("ms_cr6-self+bpm+tag") for r in reps)
    assert results.groupby(["representation", "target"]).size().eq(5).all()  # 5 repetitions each
    assert {"demo:genre", "demo:instrument", "demo:meter", "demo:note_density", "demo:pitch_height",
            "demo:listening"} == set(results["target"])
    import json

    assert json.loads((out / "store" / "metrics.json").read_text())["k"] == 8

