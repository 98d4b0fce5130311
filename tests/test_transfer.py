"""mtdtl.transfer: representations named by mtdtl.runs, the paper's Rand, resumable evaluation (no papermill)."""

from __future__ import annotations

import pytest

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.results import ResultsTable
from mtdtl.runs import RunSpec
from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run, resolve_targets


@pytest.fixture(scope="module")
def tiny_run(tiny_store, tmp_path_factory):
    from mtdtl.training import TrainConfig, train

    cfg = TrainConfig(arch="ms_cr@6", sources="self,bpm,tag", store=tiny_store, epochs=1, batch_size=8,
                      width="tiny", device="cpu", max_steps=2,
                      out_dir=tmp_path_factory.mktemp("runs") / "run")
    return train(cfg, progress=False), cfg.spec


def test_representation_of_a_run_carries_the_run_identity(tiny_run):
    run_dir, spec = tiny_run
    rep = representation_from_run(run_dir)
    assert rep.name == spec.id == "ms_cr6-self+bpm+tag-seed0-e1-tiny-b8"
    assert rep.identity == {**spec.identity_columns(), "precision": "fp32"} and rep.kind == "learned"
    assert RunSpec.from_folder(run_dir) == spec


def test_baselines_are_named_by_what_they_are(tiny_run, tmp_path):
    run_dir, spec = tiny_run
    ours = representation_from_run(run_dir)
    mfcc, rand, rand_arch = baseline_representations("mfcc,rand,rand_arch", run=ours)
    assert (mfcc.name, rand.name, rand_arch.name) == ("mfcc", "rand-ss_r-seed0-tiny",
                                                      "rand-ms_cr6-self+bpm+tag-seed0-tiny")
    assert rand.identity["arch"] == "ss_r" and rand.kind == "rand"
    from mtdtl.features import get_extractor

    paper_rand = get_extractor(rand.spec, **rand.options)
    arch_rand = get_extractor(rand_arch.spec, **rand_arch.options)
    trained = get_extractor(ours.spec)
    # the paper's Rand: one SS-R fc-feature (mean ‖ std), the run's scaler; rand_arch mirrors the run
    assert paper_rand.dim == 2 * 16 and arch_rand.dim == trained.dim == 3 * 2 * 16
    assert bool((paper_rand.mean == trained.mean).all()) and bool((paper_rand.std == trained.std).all())
    with pytest.raises(MtdtlError, match="trained run"):
        baseline_representations("rand")
    with pytest.raises(MtdtlError, match="unknown baseline"):
        baseline_representations("random")


def test_evaluate_transfer_rows_and_resume(tiny_run, tiny_corpus, tmp_path, caplog):
    run_dir, spec = tiny_run
    ours = representation_from_run(run_dir)
    reps = [ours] + baseline_representations("rand", run=ours)
    targets = resolve_targets("demo:genre,demo:pitch_height", corpus=tiny_corpus)
    path = tmp_path / "results.csv"
    df = evaluate_transfer(reps, targets, results=path, repetitions=2, seed=0, progress=False)
    assert len(df) == 2 * 2 * 2  # representations x targets x repetitions, one metric each
    learned = df[df["kind"] == "learned"]
    assert set(learned["run"]) == {spec.id} and set(learned["seed"]) == {0} and set(learned["epochs"]) == {1}
    assert set(df["task"]) == {"classification", "regression"} and df["protocol"].nunique() == 1
    assert set(learned["precision"]) == {"fp32"} and set(df.loc[df["kind"] == "rand", "precision"]) == {""}
    before = path.read_bytes()
    with caplog.at_level("INFO"):
        evaluate_transfer(reps, targets, results=path, repetitions=2, seed=0, progress=False)
    assert path.read_bytes() == before and "already evaluated" in caplog.text
    assert len(ResultsTable(path).read()) == 8
