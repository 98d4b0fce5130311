"""Classification and regression probes: a small MLP on a representation's features.

What
    The paper's target-dataset models for classification and regression (Kim et al., 2019,
    Section 4.4.2): a multi-layer perceptron with two hidden layers of 256 ReLU units, trained
    with Adam for 200 iterations (scikit-learn's ``MLPClassifier`` / ``MLPRegressor``), on
    standardised features (a ``StandardScaler`` fit on the training part; the paper does not
    say, the authors' released ``musmtl.evaluation.run`` adds one only with
    ``standardize=True``, off by default). Accuracy for classification, the coefficient of
    determination R^2 for regression.

Repetitions (Section 4.4; the paper's protocol, :mod:`mtdtl.evaluation.protocol`)
    Every dataset is evaluated ``n_repetitions`` times (5 in the paper) and the scores are
    averaged:

    - **with a fixed split** (the study's lists: GTZAN, FMA, IRMAS, emotion; the demo corpus'
      own split): the same train/test split each time, a different seed each time (MLP
      initialisation and batch order): repetition j uses ``seed + j``, as the authors' code
      does. The ``valid`` part is merged into the training part, as in the paper ("we also
      included the validation split as training data"); nothing is early-stopped, there is no
      model selection (fixed hyper-parameters). The split is described by ``split_name``
      (e.g. ``"list:gtzan-filtered"``).
    - **without a fixed split** (Extended Ballroom, targets whose only split would be drawn):
      repetition j tests on fold ``j mod n_folds`` of a shuffle seeded by
      ``seed + j // n_folds`` (:func:`mtdtl.evaluation.protocol.fold_plan`); five repetitions
      with ``n_folds=5`` are one 5-fold cross-validation (80/20 each time, every track tested
      once), as the paper ("5 different train/test splits") and the authors' code
      (``StratifiedKFold(5, shuffle=True)``) do. Folds are stratified by class
      (classification) or by quantile bin of the target (regression), and keep each group
      (``groups``: artist, song, work) whole (``StratifiedGroupKFold``).

    Every repetition's dict carries ``split``, the description of its split.

Regression targets
    are used as they are by default (``standardize_target=False``), as in the paper and the
    authors' code (an ``MLPRegressor`` on the raw 1-9 ratings). ``standardize_target=True``
    standardises them on the training part and maps the predictions back
    (``TransformedTargetRegressor``): R^2 then does not depend on the label scale (1-9 or 0-1
    ratings give the same scores), which the paper's probe does not promise.

Functions, in mir_eval's shape: :func:`validate` (raises :class:`~mtdtl.errors.MtdtlError`),
the metrics :func:`accuracy` and :func:`r2`, :func:`make_probe` (the model), :func:`probe_splits`
(the repetition plan), :func:`evaluate` (metrics of one set of predictions, a flat dict metric ->
float) and :func:`evaluate_probe` (fit and score every repetition, one flat dict each).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.protocol import FEATURE_SCALINGS, PAPER, fold_plan, quantile_strata
from mtdtl.log import get_logger

__all__ = [
    "TASKS", "HIDDEN", "MAX_ITER", "FEATURE_SCALINGS", "ClippedStandardScaler", "WhitenedPCA", "SELECT_FOLDS",
    "validate", "accuracy", "r2",
    "make_probe", "probe_splits", "evaluate", "evaluate_probe",
]

log = get_logger(__name__)

#: Probe task types.
TASKS = ("classification", "regression")
#: Hidden layer sizes of the MLP (Section 4.4.2).
HIDDEN = (256, 256)
#: Adam iterations (epochs) of the MLP (Section 4.4.2).
MAX_ITER = 200
#: Values a split array may hold.
SPLITS = ("train", "valid", "test")


class ClippedStandardScaler(StandardScaler):
    """Standardise on the training part, then clip every dimension to the range it had there.

    A dimension that barely varies on ~100 training tracks (a unit of a learned feature that is
    almost never active) gets a tiny standard deviation, and a test track on which it is active
    lands hundreds of standard deviations out: one such value can ruin a regression probe
    (docs/learning.md, section 3). Clipping the standardised test values to the training
    tracks' own minimum and maximum keeps what the scaler does for every value seen in
    training and bounds the rest. Training values are unchanged; a test value inside the
    training range is unchanged.
    """

    def fit(self, X, y=None, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        Z = super().transform(np.asarray(X, dtype=np.float64), copy=True)
        self.z_min_, self.z_max_ = Z.min(axis=0), Z.max(axis=0)
        return self

    def transform(self, X, copy=None):
        return np.clip(super().transform(X, copy=copy), self.z_min_, self.z_max_)


class WhitenedPCA(TransformerMixin, BaseEstimator):
    """PCA with whitening to at most ``n_components`` dimensions (the authors' ``pca_whiten``).

    The authors' evaluation code offers ``PCA(n_components=256, whiten=True)`` as its second
    pre-processing. On a target with fewer training tracks or feature dimensions than 256, the
    number of components is capped at ``min(n_components, n_tracks, n_dims)``.
    """

    def __init__(self, n_components: int = 256):
        self.n_components = n_components

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        k = int(min(self.n_components, X.shape[0], X.shape[1]))
        self.pca_ = PCA(n_components=k, whiten=True, svd_solver="full").fit(X)
        return self

    def transform(self, X):
        return self.pca_.transform(np.asarray(X, dtype=np.float64))


#: Inner folds of ``feature_scaling="select"`` (on the training part only).
SELECT_FOLDS = 3
#: The scalings ``"select"`` chooses from.
SELECT_CANDIDATES = ("standard", "none")


def _scaler(feature_scaling: str):
    if feature_scaling == "standard":
        return StandardScaler()
    if feature_scaling == "clip":
        return ClippedStandardScaler()
    if feature_scaling == "none":
        return "passthrough"
    if feature_scaling == "pca_whiten":
        return WhitenedPCA(256)
    if feature_scaling == "select":
        return StandardScaler()  # replaced by the grid search of make_probe
    raise MtdtlError(f"unknown feature scaling {feature_scaling!r}; use one of {FEATURE_SCALINGS}")


def _select(pipeline: Pipeline, task: str, seed: int) -> GridSearchCV:
    """``pipeline`` with its scaling chosen among :data:`SELECT_CANDIDATES` by inner CV on the training part."""
    cv = (StratifiedKFold(SELECT_FOLDS, shuffle=True, random_state=seed) if task == "classification"
          else KFold(SELECT_FOLDS, shuffle=True, random_state=seed))
    grid = {"scale": [_scaler(c) for c in SELECT_CANDIDATES]}
    return GridSearchCV(pipeline, grid, cv=cv, scoring="accuracy" if task == "classification" else "r2",
                        n_jobs=None, refit=True, error_score=-np.inf)


def validate(X, y, *, task: str, split=None, groups=None) -> tuple:
    """Check features, labels, split and groups; return them as arrays.

    Parameters
    ----------
    X : array-like [shape=(n_tracks, n_features)]
        Features; finite.
    y : array-like [shape=(n_tracks,)]
        Class labels (any hashable values) or real-valued targets (finite).
    task : {"classification", "regression"}
    split : array-like [shape=(n_tracks,)] of {"train", "valid", "test"}, optional
    groups : array-like [shape=(n_tracks,)], optional
        Group of each track (e.g. artist), kept whole in the folds.

    Returns
    -------
    X : np.ndarray [shape=(n_tracks, n_features)] float64
    y : np.ndarray [shape=(n_tracks,)]
    split : np.ndarray of str or None
    groups : np.ndarray or None

    Raises
    ------
    MtdtlError
        Unknown task; X not 2-D; NaN or infinite features; feature and label counts differ;
        NaN targets; fewer than 2 classes, or a class with a single track where folds are
        random; a split with unknown values or without training or test tracks.
    """
    if task not in TASKS:
        raise MtdtlError(f"unknown probe task {task!r}; use one of {TASKS}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise MtdtlError(f"features must be 2-D (tracks x dims), got shape {X.shape}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise MtdtlError(f"labels must be 1-D (one per track), got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise MtdtlError(f"{X.shape[0]} feature rows but {y.shape[0]} labels: features and labels "
                         "must describe the same tracks in the same order")
    if X.shape[0] < 4:
        raise MtdtlError(f"{X.shape[0]} tracks are too few to train and test a probe")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise MtdtlError(f"features have NaN or infinite values in {int(bad.sum())} of {len(X)} rows "
                         f"(first: row {int(np.flatnonzero(bad)[0])}): re-extract those tracks or drop them")
    if task == "regression":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise MtdtlError(f"regression targets must be numbers: {exc}") from None
        if not np.isfinite(y).all():
            raise MtdtlError(f"{int((~np.isfinite(y)).sum())} regression targets are NaN or infinite")
    else:
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise MtdtlError(f"{int(np.isnan(y).sum())} class labels are missing (NaN)")
        if y.dtype == object and any(v is None for v in y):
            raise MtdtlError("some class labels are missing (None)")
    if split is not None:
        split = np.asarray(split).astype(str)
        if split.shape != y.shape:
            raise MtdtlError(f"split has {split.shape[0]} entries for {y.shape[0]} tracks")
        unknown = sorted(set(np.unique(split)) - set(SPLITS))
        if unknown:
            raise MtdtlError(f"unknown split values {unknown}; use {SPLITS}")
        train = split != "test"
        if not (split == "test").any() or not train.any():
            raise MtdtlError(f"the split has {int(train.sum())} training (train + valid) and "
                             f"{int((~train).sum())} test tracks: both must be non-empty")
        if task == "classification":
            n_train_classes = len(np.unique(y[train]))
            if n_train_classes < 2:
                raise MtdtlError(f"the training part has {n_train_classes} class(es): a classifier "
                                 "needs at least 2")
            unseen = sorted(set(map(str, np.unique(y[~train]))) - set(map(str, np.unique(y[train]))))
            if unseen:
                log.warning("test classes %s never occur in training: they cannot be predicted", unseen)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise MtdtlError(f"groups has {groups.shape[0]} entries for {y.shape[0]} tracks")
    if task == "classification":
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise MtdtlError(f"labels have {len(classes)} class(es): a classifier needs at least 2")
        if split is None and counts.min() < 2:
            few = [str(c) for c, n in zip(classes, counts) if n < 2]
            raise MtdtlError(f"classes {few} have a single track: random stratified folds need at "
                             "least 2 per class (drop those classes or give a split)")
    return X, y, split, groups


def accuracy(y_true, y_pred) -> float:
    """Fraction of tracks whose predicted class is the true class."""
    return float(accuracy_score(y_true, y_pred))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (can be negative)."""
    return float(r2_score(y_true, y_pred))


def make_probe(task: str, *, seed: int = 0, hidden: Sequence[int] = HIDDEN,
               max_iter: int = MAX_ITER, standardize_target: bool = PAPER.standardize_target,
               feature_scaling: str = PAPER.feature_scaling):
    """The probe model: a feature scaler, then an MLP (ReLU, Adam) with ``hidden`` layers.

    Parameters
    ----------
    task : {"classification", "regression"}
    seed : int
        ``random_state`` of the MLP (initialisation, batch order).
    hidden, max_iter
        Hidden layer sizes and Adam iterations (paper: (256, 256), 200).
    standardize_target : bool
        Regression only: standardise the target on the training part and map predictions back
        (:class:`~sklearn.compose.TransformedTargetRegressor`). Default False, as in the paper
        and the authors' code (the MLP fits the raw target).
    feature_scaling : {"standard", "clip", "none", "pca_whiten", "select"}
        ``"standard"`` (mtdtl's default; the paper does not say): a ``StandardScaler`` fit on
        the training part. ``"clip"``: the same, with every standardised dimension clipped to
        the range it had on the training part (:class:`ClippedStandardScaler`). ``"none"``:
        the features as they are (the authors' code's default). ``"pca_whiten"``: the authors'
        code's other option, PCA to 256 whitened dimensions (:class:`WhitenedPCA`).
        ``"select"``: ``standard`` or ``none``, whichever scores better in a
        :data:`SELECT_FOLDS`-fold cross-validation on the training part alone (stratified for
        classification; groups are not kept whole in these inner folds); the test part is
        never seen. It costs ``2 x SELECT_FOLDS + 1`` fits instead of one.

    Returns
    -------
    sklearn estimator
    """
    kw = dict(hidden_layer_sizes=tuple(hidden), activation="relu", solver="adam",
              max_iter=max_iter, random_state=seed)
    scaler = _scaler(feature_scaling)
    if task == "classification":
        model = Pipeline([("scale", scaler), ("mlp", MLPClassifier(**kw))])
        return _select(model, task, seed) if feature_scaling == "select" else model
    if task == "regression":
        model = Pipeline([("scale", scaler), ("mlp", MLPRegressor(**kw))])
        if feature_scaling == "select":
            model = _select(model, task, seed)
        if standardize_target:
            return TransformedTargetRegressor(regressor=model, transformer=StandardScaler())
        return model
    raise MtdtlError(f"unknown probe task {task!r}; use one of {TASKS}")


def probe_splits(y, *, task: str, split=None, groups=None, n_repetitions: int = 5,
                 n_folds: int = PAPER.n_folds, seed: int = 0,
                 split_name: str | None = None) -> list[tuple[np.ndarray, np.ndarray, int, str]]:
    """The repetition plan: (train indices, test indices, model seed, split description).

    With ``split``: the same split every repetition (``valid`` merged into train), described
    by ``split_name`` (``"given"`` when None). Without: fold ``j mod n_folds`` of
    :func:`mtdtl.evaluation.protocol.fold_plan`, stratified by class (classification) or by
    quantile bin of ``y`` (regression), groups kept whole. Repetition j's model seed is
    ``seed + j``. See the module docstring.
    """
    y = np.asarray(y)
    if n_repetitions < 1:
        raise MtdtlError(f"n_repetitions must be >= 1, got {n_repetitions}")
    if split is not None:
        split = np.asarray(split).astype(str)
        train = np.flatnonzero(split != "test")
        test = np.flatnonzero(split == "test")
        name = split_name or "given"
        return [(train, test, seed + j, name) for j in range(n_repetitions)]
    if task == "classification":
        strata = y
    elif task == "regression":
        strata = quantile_strata(y.astype(np.float64), n_folds)
    else:
        raise MtdtlError(f"unknown probe task {task!r}; use one of {TASKS}")
    folds = fold_plan(len(y), n_folds=n_folds, n_repetitions=n_repetitions, seed=seed, strata=strata,
                      groups=groups)
    return [(f.train, f.test, seed + j, f.description) for j, f in enumerate(folds)]


def evaluate(y_true, y_pred, *, task: str) -> dict[str, float]:
    """Metrics of one set of predictions: ``{"accuracy": ...}`` or ``{"r2": ...}``."""
    if task == "classification":
        return {"accuracy": accuracy(y_true, y_pred)}
    if task == "regression":
        return {"r2": r2(y_true, y_pred)}
    raise MtdtlError(f"unknown probe task {task!r}; use one of {TASKS}")


def _fit_score(X, y, train, test, task, model_seed, hidden, max_iter, standardize_target,
               description, feature_scaling=PAPER.feature_scaling) -> dict:
    if not np.ptp(X[train], axis=0).any():
        # Features that are the same for every training track carry no information: what an MLP
        # can learn from them is the labels' distribution, which it only approaches in 200
        # iterations (on a near-balanced task it may settle on a minority class). The exact
        # answer: the majority class, the training mean (the Chance baseline's probe).
        model = (DummyClassifier(strategy="most_frequent") if task == "classification"
                 else DummyRegressor(strategy="mean"))
    else:
        model = make_probe(task, seed=model_seed, hidden=hidden, max_iter=max_iter,
                           standardize_target=standardize_target, feature_scaling=feature_scaling)
    # A 256-unit MLP on a few thousand tracks gains nothing from threaded BLAS, and BLAS
    # threads that busy-wait between the many small products make it several times slower on
    # a loaded machine: one thread per fit, and parallel repetitions (n_jobs) instead.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # the paper fixes 200 iterations: not converging within them is part of the protocol
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train], y[train])
        y_pred = model.predict(X[test])
    return {**evaluate(y[test], y_pred, task=task), "split": description}


def evaluate_probe(X, y, *, task: str, split=None, split_name: str | None = None, groups=None,
                   n_repetitions: int = 5, n_folds: int = PAPER.n_folds, seed: int = 0,
                   hidden: Sequence[int] = HIDDEN, max_iter: int = MAX_ITER,
                   standardize_target: bool = PAPER.standardize_target,
                   feature_scaling: str = PAPER.feature_scaling,
                   n_jobs: int | None = None) -> list[dict]:
    """Fit and score the MLP probe ``n_repetitions`` times (Sections 4.4, 4.4.2).

    Parameters
    ----------
    X : array-like [shape=(n_tracks, n_features)]
        A representation's features of the target tracks.
    y : array-like [shape=(n_tracks,)]
        Class labels or regression targets.
    task : {"classification", "regression"}
    split : array-like [shape=(n_tracks,)] of {"train", "valid", "test"}, optional
        A fixed split (the study's list, the dataset's own); ``valid`` is merged into training.
        None: folds.
    split_name : str, optional
        What the fixed split is, for the ``split`` entry of the results
        (e.g. ``"list:gtzan-filtered"``; default ``"given"``).
    groups : array-like [shape=(n_tracks,)], optional
        Keep each group (e.g. artist) whole in the folds.
    n_repetitions : int
        Repetitions (5 in the paper).
    n_folds : int
        Folds without a fixed split (5: 80/20 as in the paper).
    seed : int
        Base seed of folds and models (see the module docstring).
    hidden, max_iter
        MLP hidden layers and Adam iterations (paper: (256, 256), 200).
    standardize_target : bool
        Standardise regression targets inside the probe (default False: the paper's protocol;
        True: R^2 independent of the label scale). See :func:`make_probe`.
    feature_scaling : {"standard", "clip", "none", "pca_whiten", "select"}
        How the features are scaled before the MLP (default ``"standard"``). See
        :func:`make_probe`.
    n_jobs : int, optional
        Repetitions fit in parallel with joblib (default: one after the other).

    Returns
    -------
    list of dict
        One flat dict per repetition: ``{"accuracy": float, "split": str}`` or
        ``{"r2": float, "split": str}``; ``split`` describes the repetition's split
        (``"list:gtzan-filtered"``, ``"fold 3/5 stratified-group (shuffle seed 0)"``).
    """
    X, y, split, groups = validate(X, y, task=task, split=split, groups=groups)
    plan = probe_splits(y, task=task, split=split, groups=groups, n_repetitions=n_repetitions,
                        n_folds=n_folds, seed=seed, split_name=split_name)
    std = bool(standardize_target)
    _scaler(feature_scaling)  # an unknown name fails before any fit
    if n_jobs is not None and n_jobs != 1:
        from joblib import Parallel, delayed

        return list(Parallel(n_jobs=n_jobs)(
            delayed(_fit_score)(X, y, tr, te, task, s, hidden, max_iter, std, d, feature_scaling)
            for tr, te, s, d in plan))
    return [_fit_score(X, y, tr, te, task, s, hidden, max_iter, std, d, feature_scaling) for tr, te, s, d in plan]
