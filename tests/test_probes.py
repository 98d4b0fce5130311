"""MLP probes: invariants on synthetic data, the repetition plan, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn.compose import TransformedTargetRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline

from mtdtl.errors import MtdtlError
from mtdtl.evaluation import evaluate_probe
from mtdtl.evaluation.probes import (HIDDEN, MAX_ITER, ClippedStandardScaler, evaluate, make_probe,
                                     probe_splits, validate)

# small MLP for speed where the paper's size is not the point
SMALL = dict(hidden=(32,), max_iter=100)


def average_repetitions(evals):
    """Mean of every metric over repetitions (``split`` is a description, not a metric)."""
    return {k: float(np.mean([e[k] for e in evals])) for k in evals[0] if k != "split"}


def _blobs(rng, n_per_class=30, n_classes=3, dim=8, sep=8.0):
    centers = rng.standard_normal((n_classes, dim)) * sep
    X = np.concatenate([c + rng.standard_normal((n_per_class, dim)) for c in centers])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def test_paper_model_settings():
    pipe = make_probe("classification", seed=3)
    mlp = pipe.named_steps["mlp"]
    assert HIDDEN == (256, 256) and MAX_ITER == 200
    assert mlp.hidden_layer_sizes == (256, 256) and mlp.activation == "relu"
    assert mlp.solver == "adam" and mlp.max_iter == 200 and mlp.random_state == 3
    assert not mlp.early_stopping
    reg = make_probe("regression", seed=1)
    assert isinstance(reg, Pipeline) and reg.named_steps["mlp"].hidden_layer_sizes == (256, 256)
    std = make_probe("regression", seed=1, standardize_target=True)
    assert isinstance(std, TransformedTargetRegressor)
    assert std.regressor.named_steps["mlp"].hidden_layer_sizes == (256, 256)


def test_feature_scalings(rng):
    from sklearn.preprocessing import StandardScaler

    assert isinstance(make_probe("classification").named_steps["scale"], StandardScaler)
    assert type(make_probe("regression", feature_scaling="clip").named_steps["scale"]) is ClippedStandardScaler
    assert make_probe("regression", feature_scaling="none").named_steps["scale"] == "passthrough"
    with pytest.raises(MtdtlError, match="unknown feature scaling"):
        make_probe("regression", feature_scaling="minmax")
    # a dimension nearly constant on the training tracks, active on a test track
    X = rng.standard_normal((60, 4))
    X[:50, 3] = 1e-6 * rng.standard_normal(50)
    X[55, 3] = 5.0
    train, test = X[:50], X[50:]
    std = StandardScaler().fit(train)
    clip = ClippedStandardScaler().fit(train)
    assert np.abs(std.transform(test)).max() > 1e5  # standardising alone: millions of sds out
    Z = clip.transform(test)
    assert (Z >= clip.z_min_ - 1e-12).all() and (Z <= clip.z_max_ + 1e-12).all()
    np.testing.assert_allclose(clip.transform(train), std.transform(train))  # training values untouched
    inside = np.abs(std.transform(test)[:, :3]) < np.abs(std.transform(train)[:, :3]).min(axis=0)
    np.testing.assert_allclose(Z[:, :3][inside], std.transform(test)[:, :3][inside])
    np.testing.assert_allclose(clip.fit_transform(train), std.transform(train))
    # the option reaches the fits: a regression on such a dimension
    y = X[:, 0] + 0.1 * rng.standard_normal(60)
    split = np.array(["train"] * 50 + ["test"] * 10)
    kw = dict(task="regression", split=split, n_repetitions=1, **SMALL)
    r = {s: evaluate_probe(X, y, feature_scaling=s, **kw)[0]["r2"] for s in ("standard", "clip", "none")}
    assert r["clip"] > 0.5 and r["standard"] < r["clip"], r
    with pytest.raises(MtdtlError, match="unknown feature scaling"):
        evaluate_probe(X, y, feature_scaling="z", **kw)


def test_pca_whiten_is_the_authors_option_capped_to_the_data(rng):
    from mtdtl.evaluation.probes import WhitenedPCA

    assert type(make_probe("classification", feature_scaling="pca_whiten").named_steps["scale"]) is WhitenedPCA
    X = rng.standard_normal((40, 300)) @ rng.standard_normal((300, 300))
    Z = WhitenedPCA(256).fit(X).transform(X)
    assert Z.shape == (40, 40)  # capped at the 40 tracks
    np.testing.assert_allclose(Z[:, :30].std(axis=0, ddof=1), 1.0, rtol=1e-6)  # whitened
    assert WhitenedPCA(256).fit(X[:, :20]).transform(X[:, :20]).shape == (40, 20)  # and at the dimensions


def test_select_picks_the_scaling_by_inner_cv_on_the_training_part(rng):
    """A representation whose informative dimension is the one with the large scale (learned
    features) needs ``none``; one whose informative dimension is tiny (MFCC-like scales)
    needs ``standard``: ``select`` gets each right without seeing the test part."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.preprocessing import StandardScaler

    probe = make_probe("regression", feature_scaling="select", seed=0, **SMALL)
    assert isinstance(probe, GridSearchCV) and probe.cv.n_splits == 3
    n = 120
    signal = rng.standard_normal(n)
    y = signal + 0.05 * rng.standard_normal(n)
    noise = rng.standard_normal((n, 60))
    scale_carries = np.column_stack([3.0 * signal, 0.3 * noise])  # standardising lifts 60 noise dims
    tiny_signal = np.column_stack([1e-3 * signal, 50.0 * noise[:, :3]])  # unscaled, the signal is invisible
    split = np.array(["train"] * 90 + ["test"] * 30)
    kw = dict(task="regression", split=split, n_repetitions=1, **SMALL)
    for X, want in ((scale_carries, "passthrough"), (tiny_signal, StandardScaler)):
        fitted = make_probe("regression", feature_scaling="select", seed=0, **SMALL).fit(X[:90], y[:90])
        chosen = fitted.best_params_["scale"]
        assert chosen == want if isinstance(want, str) else isinstance(chosen, want), chosen
        r = {s: evaluate_probe(X, y, feature_scaling=s, **kw)[0]["r2"] for s in ("standard", "none", "select")}
        assert r["select"] >= min(r["standard"], r["none"]) and r["select"] > 0.5, r
    cls = make_probe("classification", feature_scaling="select")
    assert type(cls.cv).__name__ == "StratifiedKFold"


def test_separable_classes_score_near_one(rng):
    X, y = _blobs(rng)
    evals = evaluate_probe(X, y, task="classification", n_repetitions=5, seed=0, **SMALL)
    assert len(evals) == 5 and all(set(e) == {"accuracy", "split"} for e in evals)
    assert [e["split"] for e in evals] == [f"fold {j}/5 stratified (shuffle seed 0)" for j in range(1, 6)]
    assert average_repetitions(evals)["accuracy"] >= 0.97


def test_noise_scores_near_chance(rng):
    X = rng.standard_normal((200, 10))
    y = rng.integers(0, 4, 200)
    acc = average_repetitions(evaluate_probe(X, y, task="classification", n_repetitions=5,
                                             **SMALL))["accuracy"]
    assert 0.1 < acc < 0.42  # chance 0.25


def test_linear_target_high_r2(rng):
    X = rng.standard_normal((300, 6))
    y = 3.0 + X @ rng.standard_normal(6) + 0.05 * rng.standard_normal(300)
    kw = dict(hidden=(32,), max_iter=200, n_repetitions=1)
    r2 = average_repetitions(evaluate_probe(X, y, task="regression", **kw))["r2"]
    assert r2 > 0.9
    # with standardize_target=True, rescaling labels does not change R^2
    r2_std = average_repetitions(evaluate_probe(X, y, task="regression", standardize_target=True, **kw))["r2"]
    r2_scaled = average_repetitions(evaluate_probe(X, y / 9.0, task="regression", standardize_target=True,
                                                   **kw))["r2"]
    assert r2_std > 0.9 and abs(r2_std - r2_scaled) < 1e-6


def test_regression_target_is_raw_by_default(rng, monkeypatch):
    """The paper's probe fits the MLP on the target as it is; standardisation is an option."""
    seen = []
    fit = MLPRegressor.fit

    def spy(self, X, y, *a, **k):
        seen.append(np.array(y, dtype=float))
        return fit(self, X, y, *a, **k)

    monkeypatch.setattr(MLPRegressor, "fit", spy)
    X = rng.standard_normal((60, 4))
    y = 5.0 + 2.0 * rng.standard_normal(60)  # a 1-9 rating-like target
    split = np.where(np.arange(60) % 5 == 0, "test", "train")
    evaluate_probe(X, y, task="regression", split=split, n_repetitions=1, hidden=(8,), max_iter=5)
    assert len(seen) == 1 and np.array_equal(seen[0], y[split == "train"])
    seen.clear()
    evaluate_probe(X, y, task="regression", split=split, n_repetitions=1, hidden=(8,), max_iter=5,
                   standardize_target=True)
    assert len(seen) == 1 and abs(seen[0].mean()) < 1e-9 and abs(seen[0].std() - 1) < 1e-9


def test_noise_target_r2_not_positive(rng):
    X = rng.standard_normal((120, 5))
    y = rng.standard_normal(120)
    r2 = average_repetitions(evaluate_probe(X, y, task="regression", n_repetitions=2, **SMALL))["r2"]
    assert r2 < 0.1


def test_given_split_same_test_set_different_seeds(rng):
    X, y = _blobs(rng, n_per_class=10)
    split = np.array(["train"] * len(y), dtype=object)
    split[::4] = "test"
    split[1::4] = "valid"
    plan = probe_splits(y, task="classification", split=split, n_repetitions=3, seed=7,
                        split_name="list:toy")
    assert [s for _, _, s, _ in plan] == [7, 8, 9]
    assert [d for _, _, _, d in plan] == ["list:toy"] * 3
    for train, test, _, _ in plan:
        assert set(test) == set(np.flatnonzero(split == "test"))
        # valid is merged into train
        assert set(train) == set(np.flatnonzero(split != "test"))
    evals = evaluate_probe(_blobs(rng, n_per_class=10)[0], y, task="classification", split=split,
                           n_repetitions=2, **SMALL)
    assert [e["split"] for e in evals] == ["given", "given"]


def test_random_folds_partition_and_stratify(rng):
    y = np.repeat([0, 1, 2], [50, 30, 20])
    plan = probe_splits(y, task="classification", n_repetitions=5, seed=0)
    tests = np.concatenate([te for _, te, _, _ in plan])
    assert sorted(tests) == list(range(100))  # 5 repetitions = one 5-fold CV
    assert len({d for _, _, _, d in plan}) == 5
    for train, test, _, _ in plan:
        assert not set(train) & set(test)
        assert np.bincount(y[test]).tolist() == [10, 6, 4]
    # repetitions beyond the fold count reshuffle
    more = probe_splits(y, task="classification", n_repetitions=6, seed=0)
    assert not np.array_equal(more[5][1], more[0][1])
    # deterministic
    again = probe_splits(y, task="classification", n_repetitions=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plan, again))


def test_group_folds_keep_groups_whole(rng):
    y = rng.integers(0, 2, 120)
    groups = np.repeat(np.arange(30), 4)
    for task in ("classification", "regression"):
        plan = probe_splits(y, task=task, groups=groups, n_repetitions=5)
        assert sorted(np.concatenate([te for _, te, _, _ in plan])) == list(range(120))
        assert all("stratified-group" in d for _, _, _, d in plan)
        for train, test, _, _ in plan:
            assert not set(groups[train]) & set(groups[test])


def test_regression_folds_are_stratified_by_target_quantiles(rng):
    y = np.sort(rng.standard_normal(100))  # sorted: an unstratified contiguous fold would fail
    plan = probe_splits(y, task="regression", n_repetitions=5, seed=3)
    assert sorted(np.concatenate([te for _, te, _, _ in plan])) == list(range(100))
    for _, test, _, d in plan:
        assert d.endswith("stratified (shuffle seed 3)")
        # four of every 20 consecutive values (a quantile bin) in each fold
        assert np.bincount(test // 20, minlength=5).tolist() == [4, 4, 4, 4, 4]


def test_evaluate_metric_dicts():
    assert evaluate([0, 1, 1], [0, 1, 0], task="classification") == {"accuracy": pytest.approx(2 / 3)}
    assert evaluate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], task="regression") == {"r2": 1.0}


@pytest.mark.parametrize("kwargs, match", [
    (dict(task="clustering"), "unknown probe task"),
    (dict(X_nan=True), "NaN or infinite"),
    (dict(n_labels=19), "20 feature rows but 19 labels"),
    (dict(y_single=True), "single track"),
    (dict(split=["train"] * 20), "both must be non-empty"),
    (dict(split=["train", "dev"] * 10), "unknown split values"),
    (dict(one_class=True), "at least 2"),
])
def test_bad_input(rng, kwargs, match):
    X = rng.standard_normal((20, 3))
    y = np.repeat([0, 1], 10)
    task = kwargs.get("task", "classification")
    if kwargs.get("X_nan"):
        X[3, 1] = np.nan
    if "n_labels" in kwargs:
        y = y[: kwargs["n_labels"]]
    if kwargs.get("y_single"):
        y = y.copy()
        y[0] = 5
    if kwargs.get("one_class"):
        y = np.zeros(20, dtype=int)
    with pytest.raises(MtdtlError, match=match):
        validate(X, y, task=task, split=kwargs.get("split"))


def test_nan_regression_target(rng):
    y = rng.standard_normal(20)
    y[2] = np.inf
    with pytest.raises(MtdtlError, match="NaN or infinite"):
        evaluate_probe(rng.standard_normal((20, 3)), y, task="regression")


def test_constant_features_give_the_majority_class_and_the_training_mean(rng):
    """Features without information (Chance): exactly what the training labels' distribution gives."""
    X = np.zeros((100, 1))
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    split = np.array(["train", "test", "train", "train", "test"] * 20)
    y_test_majority = float(np.mean(y[split == "test"] == np.bincount(y[split == "train"]).argmax()))
    evals = evaluate_probe(X, y, task="classification", split=split, n_repetitions=2, **SMALL)
    assert [e["accuracy"] for e in evals] == [y_test_majority] * 2
    yr = rng.standard_normal(100)
    train, test = split == "train", split == "test"
    expected = 1 - np.sum((yr[test] - yr[train].mean()) ** 2) / np.sum((yr[test] - yr[test].mean()) ** 2)
    r = evaluate_probe(X, yr, task="regression", split=split, n_repetitions=1, **SMALL)[0]["r2"]
    assert r == pytest.approx(expected, abs=1e-12)
    # one informative column is enough for the MLP again
    X2 = np.c_[X, y + 0.01 * rng.standard_normal(100)]
    assert evaluate_probe(X2, y, task="classification", split=split, n_repetitions=1, **SMALL)[0]["accuracy"] > y_test_majority
