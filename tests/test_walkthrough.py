"""The main job (``mtdtl demo``): end to end on the tiny corpus (corpus, 01, 02, 03, HTML copies,
report), and the choices it makes before starting."""

from __future__ import annotations

import pandas as pd
import pytest

from mtdtl.cli import main
from mtdtl.errors import MtdtlError
from mtdtl.walkthrough import DEFAULT_EPOCHS, PRESETS, demo_k, preset_plan, run_walkthrough


def test_demo_k_fits_the_corpus_size():
    assert demo_k("tiny") == 8 and demo_k("small") == 50 and demo_k("full") == 50
    with pytest.raises(MtdtlError, match="unknown demo corpus size"):
        demo_k("huge")


@pytest.mark.parametrize("kw, msg", [({"arch": "nope"}, "architecture"), ({"sources": "tag,tga"}, "tga"),
                                     ({"size": "smal"}, "size"), ({"arch": "ss_r", "sources": "tag,bpm"}, "one source"),
                                     ({"preset": "huge"}, "unknown preset"), ({"precision": "fp16"}, "precision")])
def test_run_walkthrough_checks_its_arguments_first(kw, msg, tmp_path, monkeypatch):
    import mtdtl.corpora.demo

    def no_build(**_):
        raise AssertionError("the corpus build started")

    monkeypatch.setattr(mtdtl.corpora.demo, "build_demo_corpus", no_build)
    with pytest.raises(MtdtlError, match=msg):
        run_walkthrough(out_dir=tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_presets_walkthrough_is_the_old_default_and_large_is_larger():
    w, big = PRESETS["walkthrough"], PRESETS["large"]
    assert (w.size, w.epochs, w.precision, w.repetitions) == ("small", DEFAULT_EPOCHS, "fp32", 5)
    assert (big.size, big.epochs, big.precision, big.repetitions) == ("medium", 54, "auto", 5)
    assert (w.feature_scaling, big.feature_scaling) == ("standard", "select")


def test_preset_plan_counts_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDTL_DATA_DIR", str(tmp_path))
    text = preset_plan("large", calibrate_here=False)
    assert "preset large" in text and "demo corpus medium, 54 epochs" in text and "precision auto" in text
    assert "corpus: to render first, about 1," in text  # medium: about 1,500 clips planned
    # 8 sources x ceil(0.9 x learning works / 128) iterations an epoch, 54 epochs
    from math import ceil

    from mtdtl.corpora.demo import SIZES

    n_learn = sum(a for a, _ in SIZES["medium"].values())
    iters = 54 * 8 * ceil(0.9 * n_learn / 128)
    assert f"training: {iters:,} iterations" in text and "estimated from the corpus plan" in text
    assert not any(tmp_path.iterdir()), "planning built nothing"
    small = preset_plan("walkthrough", epochs=2, sources="tag,self", calibrate_here=False)
    assert "2 source(s)" in small and "precision fp32" in small
    own = tmp_path / "own"
    (own).mkdir()
    (own / "manifest.csv").write_text("track_id\n")
    assert f"corpus: built ({own})" in preset_plan("walkthrough", corpus_root=own, calibrate_here=False)


def test_preset_plan_is_exact_from_the_store_and_times_steps_here(tiny_store, monkeypatch):
    import mtdtl.sweep
    import mtdtl.walkthrough

    monkeypatch.setattr(mtdtl.walkthrough, "demo_store_dir", lambda size, seed: tiny_store)
    seen = {}

    def fake_calibrate(archs, **kw):
        seen.update(kw, archs=list(archs))
        return {"train_rate": {"ms_cr@6": 100.0}, "machine": {"cpu": "CPU X", "cores": 2, "gpu": None},
                "device": "cpu", "bf16": False}

    monkeypatch.setattr(mtdtl.sweep, "calibrate", fake_calibrate)
    text = preset_plan("walkthrough", size="tiny", epochs=50, sources="self,tag,bpm")
    assert "from the store" in text
    its = int(text.split("training: ")[1].split(" iterations")[0].replace(",", ""))
    assert its % (50 * 3) == 0  # epochs x sources x ceil(training tracks / b)
    crops = float(text.split("iterations, ")[1].split(" crops")[0].replace(",", ""))
    assert f"training at least {crops / 100 / 60:,.0f} min" in text and "CPU X, 2 cores, fp32" in text
    assert seen["precision"] == "fp32" and seen["archs"] == ["ms_cr@6"]
    assert "not timed" in preset_plan("walkthrough", size="tiny", epochs=1, sources="self,tag,bpm")


def test_a_preset_reaches_the_notebooks_parameters(tiny_corpus, tmp_path, monkeypatch):
    import mtdtl.walkthrough

    seen = {}

    class Stop(Exception):
        pass

    def record(name, out, *, parameters, **kw):
        seen[name] = parameters
        if name == "03_evaluate":
            raise Stop

    monkeypatch.setattr(mtdtl.walkthrough, "run_notebook", record)
    with pytest.raises(Stop):
        run_walkthrough(out_dir=tmp_path / "out", preset="large", size="tiny", corpus_root=tiny_corpus,
                        sources="self,tag,bpm", progress=False)
    assert seen["02_train"]["epochs"] == 54 and seen["02_train"]["precision"] == "auto"
    assert seen["03_evaluate"]["feature_scaling"] == "select" and seen["03_evaluate"]["repetitions"] == 5
    with pytest.raises(Stop):  # explicit settings win over the preset's
        run_walkthrough(out_dir=tmp_path / "out2", preset="large", size="tiny", corpus_root=tiny_corpus,
                        sources="self,tag,bpm", epochs=2, precision="fp32", repetitions=3, progress=False)
    assert (seen["02_train"]["epochs"], seen["02_train"]["precision"], seen["03_evaluate"]["repetitions"]) == (2, "fp32", 3)
    with pytest.raises(Stop):
        run_walkthrough(out_dir=tmp_path / "out3", size="tiny", corpus_root=tiny_corpus, sources="self,tag,bpm",
                        progress=False)
    assert seen["02_train"]["epochs"] == DEFAULT_EPOCHS and seen["03_evaluate"]["feature_scaling"] == "standard"


def test_calibrate_measures_the_precision_asked_for():
    from mtdtl.sweep import calibrate

    c = calibrate(["ss_r"], width="tiny", batch_size=4, threads=1, steps=1, paper=False, precision="fp32")
    assert c["bf16"] is False and c["train_rate"]["ss_r"] > 0


def test_mtdtl_demo_plan_prints_the_cost_and_stops(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MTDTL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "demo", "--preset", "large", "--epochs", "1", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "preset large" in out and "demo corpus medium, 1 epochs" in out
    assert not (tmp_path / "papermill_runs").exists() and not (tmp_path / "data").exists()


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

