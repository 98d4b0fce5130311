"""The evaluation protocol: the paper's defaults everywhere, the protocol id, the repetition plan."""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest

from fixtures_targets import pick_rows, study_rows, write_demo_corpus, write_files
from mtdtl.errors import MtdtlError
from mtdtl.evaluation.protocol import (PAPER, PROTOCOL, ProtocolOptions, describe, fold_plan, protocol_id,
                                       quantile_strata, repetition_plan)
from mtdtl.evaluation.target import evaluate_target, recommend_kwargs
from mtdtl.targets import load_target


# ============================================================================ the protocol id
def test_paper_defaults_and_id():
    assert PROTOCOL == "paper-1"
    assert protocol_id() == protocol_id(ProtocolOptions()) == PAPER.id == "paper-1"
    assert (PAPER.candidates, PAPER.n_folds, PAPER.group_folds, PAPER.standardize_target, PAPER.als_solver,
            PAPER.ndcg_k, PAPER.study_splits) == ("catalogue", 5, True, False, "exact", 500, True)
    assert describe()["value"].iloc[0] == "paper-1"


def test_every_other_option_gets_a_distinct_readable_id():
    variants = [
        ProtocolOptions(candidates="held_out"), ProtocolOptions(candidates="catalogue_mixed"),
        ProtocolOptions(n_folds=10), ProtocolOptions(standardize_target=True), ProtocolOptions(als_solver="cg"),
        ProtocolOptions(als_solver="cg", cg_steps=5), ProtocolOptions(ndcg_k=100),
        ProtocolOptions(study_splits=False), ProtocolOptions(candidates="held_out", standardize_target=True),
        ProtocolOptions(group_folds=False), ProtocolOptions(feature_scaling="clip"),
        ProtocolOptions(feature_scaling="none"),
    ]
    ids = [protocol_id(v) for v in variants]
    assert len(set(ids)) == len(ids) and "paper-1" not in ids
    assert all(i.startswith("paper-1+") for i in ids)
    assert protocol_id(ProtocolOptions(candidates="held_out", standardize_target=True)) == \
        "paper-1+candidates=held_out,standardize_target=true"
    assert protocol_id(ProtocolOptions(als_solver="cg")) == "paper-1+als_solver=cg,cg_steps=3"
    assert protocol_id(ProtocolOptions(feature_scaling="clip")) == "paper-1+feature_scaling=clip"
    # cg_steps means nothing to the exact solver: same protocol
    assert protocol_id(ProtocolOptions(cg_steps=7)) == "paper-1"
    # equal options, equal ids
    assert protocol_id(ProtocolOptions(n_folds=10)) == protocol_id(replace(PAPER, n_folds=10))


@pytest.mark.parametrize("kwargs, match", [
    (dict(candidates="test"), "unknown recommendation candidates"),
    (dict(als_solver="sgd"), "unknown ALS solver"),
    (dict(n_folds=1), "n_folds"),
    (dict(ndcg_k=0), "ndcg_k"),
    (dict(standardize_target="no"), "True or False"),
    (dict(feature_scaling="minmax"), "unknown feature scaling"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(MtdtlError, match=match):
        ProtocolOptions(**kwargs)


def test_module_defaults_are_the_protocol_defaults():
    """``paper-1`` is only true if every function's own default is the paper's choice."""
    from mtdtl.evaluation import probes, recommend
    from mtdtl.targets import load_target as lt

    def default(func, name):
        return inspect.signature(func).parameters[name].default

    assert recommend.WMFParams().method == PAPER.als_solver
    assert recommend.K_NDCG == PAPER.ndcg_k
    for func in (recommend.evaluate, recommend.evaluate_recommendation):
        assert default(func, "candidates") == PAPER.candidates
        assert default(func, "k") == PAPER.ndcg_k
    assert default(recommend.evaluate_recommendation, "n_folds") == PAPER.n_folds
    assert default(probes.evaluate_probe, "n_folds") == PAPER.n_folds
    assert default(probes.evaluate_probe, "standardize_target") is PAPER.standardize_target
    assert default(probes.make_probe, "standardize_target") is PAPER.standardize_target
    for func in (probes.make_probe, probes.evaluate_probe):
        assert default(func, "feature_scaling") == PAPER.feature_scaling == "standard"
    assert default(lt, "split_list") == "study" and PAPER.load_kwargs() == {"split_list": "study"}
    assert ProtocolOptions(study_splits=False).load_kwargs() == {"split_list": None}
    assert PAPER.probe_kwargs() == {"n_folds": 5, "standardize_target": False, "feature_scaling": "standard"}
    rk = recommend_kwargs(ProtocolOptions(als_solver="cg", candidates="held_out"))
    assert rk["params"].method == "cg" and rk["candidates"] == "held_out" and rk["k"] == 500
    assert {f.name for f in fields(ProtocolOptions)} == set(PAPER.to_dict())


# ============================================================================ folds
def test_fold_plan_five_different_stratified_group_folds():
    rng = np.random.default_rng(0)
    y = rng.choice(list("abc"), 300, p=[0.5, 0.3, 0.2])
    groups = rng.integers(0, 100, 300)
    plan = fold_plan(300, n_folds=5, n_repetitions=5, seed=4, strata=y, groups=groups)
    tests = [set(f.test) for f in plan]
    assert sorted(np.concatenate([f.test for f in plan]).tolist()) == list(range(300))  # disjoint, complete
    assert len({frozenset(t) for t in tests}) == 5
    assert [f.description for f in plan] == [f"fold {j}/5 stratified-group (shuffle seed 4)" for j in range(1, 6)]
    overall = Counter(y)
    for f in plan:
        assert not set(groups[f.train]) & set(groups[f.test])
        share = Counter(y[f.test])
        for c in "abc":  # class shares within 0.07 of the whole (whole groups make it approximate)
            assert abs(share[c] / len(f.test) - overall[c] / 300) < 0.07
    # a sixth repetition starts a new shuffle
    six = fold_plan(300, n_repetitions=6, seed=4, strata=y, groups=groups)
    assert six[5].description == "fold 1/5 stratified-group (shuffle seed 5)"
    assert set(six[5].test) != set(plan[0].test)
    with pytest.raises(MtdtlError, match="cannot be split into 5 folds"):
        fold_plan(3)


def test_quantile_strata():
    y = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 9.0, 7.0, 8.0, 6.0])
    assert quantile_strata(y, 5).tolist() == [2, 0, 1, 1, 2, 0, 4, 3, 4, 3]


# ============================================================================ loaded targets
def _ballroom(tmp_path):
    rows = pick_rows(study_rows("eballroom"), per_label=5)  # 5 per style, 65 tracks
    write_files(tmp_path / "eb", [r[1] for r in rows])  # the study's layout data/<Style>/<id>.mp3
    return load_target("eballroom", tmp_path / "eb", progress=False)


def test_a_target_without_a_split_list_gets_five_different_stratified_test_sets(tmp_path):
    ds = _ballroom(tmp_path)
    assert not ds.split_fixed
    plan = repetition_plan(ds)
    assert len(plan) == 5 and len({frozenset(f.test) for f in plan}) == 5
    assert sorted(np.concatenate([f.test for f in plan]).tolist()) == list(range(len(ds)))
    labels = ds.tracks["label"].to_numpy()
    for f in plan:
        assert Counter(labels[f.test]) == Counter({s: 1 for s in ds.classes})  # 1 of every 5 per style
        assert f.description.startswith("fold ") and "/5 stratified" in f.description
    feats = pd.DataFrame(np.random.default_rng(0).standard_normal((len(ds), 6)), index=ds.tracks["track_id"])
    evals = evaluate_target(ds, feats, n_repetitions=1)  # the paper's MLP: 1 repetition keeps it fast
    assert [e["split"] for e in evals] == [plan[0].description]
    assert all(0 <= e["accuracy"] <= 1 for e in evals)


def test_a_listed_target_repeats_its_fixed_split(tmp_path):
    per = Counter()
    rows = []
    for r in study_rows("gtzan"):
        if r[3] in ("blues", "jazz") and per[r[3], r[2]] < 4:
            rows.append(r)
            per[r[3], r[2]] += 1
    write_files(tmp_path / "gtzan", [r[1] for r in rows])
    ds = load_target("gtzan", tmp_path / "gtzan", progress=False)
    assert ds.split_fixed
    plan = repetition_plan(ds, n_repetitions=3)
    assert [f.description for f in plan] == ["list:gtzan-filtered"] * 3
    test_ids = set(ds.tracks["track_id"].to_numpy()[plan[0].test])
    assert test_ids == {r[1].rsplit("/", 1)[1][:-3] for r in rows if r[2] == "test"}
    feats = pd.DataFrame(np.random.default_rng(1).standard_normal((len(ds), 4)), index=ds.tracks["track_id"])
    evals = evaluate_target(ds, feats, n_repetitions=1)
    assert [e["split"] for e in evals] == ["list:gtzan-filtered"]
    # under study_splits=False the same tree gets folds (and another protocol id)
    ds2 = load_target("gtzan", tmp_path / "gtzan", progress=False, **ProtocolOptions(study_splits=False).load_kwargs())
    assert not ds2.split_fixed and repetition_plan(ds2)[0].description.startswith("fold 1/5 stratified")


def test_recommendation_targets(tmp_path):
    root = write_demo_corpus(tmp_path / "corpus")
    ds = load_target("demo:listeners", root, progress=False)
    assert ds.split_fixed and ds.split_name == "dataset:demo:listeners"
    feats = pd.DataFrame(np.random.default_rng(2).standard_normal((len(ds), 5)), index=ds.tracks["track_id"])
    evals = evaluate_target(ds, feats, n_repetitions=2, options=ProtocolOptions(ndcg_k=10))
    assert [e["split"] for e in evals] == ["dataset:demo:listeners"] * 2
    assert all(set(e) == {"ndcg@10", "split"} and 0 <= e["ndcg@10"] <= 1 for e in evals)
    # without a fixed split: item folds that keep works (the group) whole
    loose = replace(ds, split_fixed=False, split_name="")
    plan = repetition_plan(loose)
    groups = ds.group_ids()
    assert all(not set(groups[f.train]) & set(groups[f.test]) for f in plan)
    assert plan[0].description == "fold 1/5 group (shuffle seed 0)"
    ungrouped = repetition_plan(loose, options=ProtocolOptions(group_folds=False))
    assert ungrouped[0].description == "fold 1/5 random (shuffle seed 0)"


def test_evaluate_target_needs_features(tmp_path):
    ds = _ballroom(tmp_path)
    with pytest.raises(MtdtlError, match="none of its 65 tracks has features"):
        evaluate_target(ds, pd.DataFrame(np.zeros((2, 3)), index=["a", "b"]))


def test_too_few_rows_for_stratified_folds_is_a_clear_error():
    with pytest.raises(MtdtlError, match="too few for 5 stratified folds"):
        fold_plan(8, n_folds=5, n_repetitions=1, seed=0, strata=np.array(list("aabbccdd")))
