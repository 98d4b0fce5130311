"""The main job (``mtdtl demo``) end to end on the tiny corpus: corpus, 01, 02, 03, report."""

from __future__ import annotations

import pandas as pd
import pytest

from mtdtl.cli import main

pytestmark = pytest.mark.slow


def test_mtdtl_demo_on_the_tiny_corpus(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["-q", "demo", "-o", str(out), "--size", "tiny", "--root", str(tiny_corpus), "--epochs", "1", "--k", "8",
               "--sources", "self,tag,bpm"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "results (mean over repetitions)" in printed and "results table:" in printed
    for name in ("01_preprocess.ipynb", "02_train.ipynb", "03_evaluate.ipynb", "train/model.safetensors",
                 "evaluate/results.csv", "evaluate/transfer_vs_baselines.png"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "evaluate" / "results.csv")
    reps = set(results["representation"])
    assert {"mfcc", "rand"} < reps and any(r.startswith("ms_cr@6[self+bpm+tag]") for r in reps)
    assert results.groupby(["representation", "target"]).size().eq(5).all()  # 5 repetitions each
    assert {"demo:genre", "demo:instrument", "demo:meter", "demo:note_density", "demo:pitch_height",
            "demo:listening"} == set(results["target"])
