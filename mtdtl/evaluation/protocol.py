"""The evaluation protocol: the paper's choices as one frozen set of options, with an id.

What
    Kim et al. (2019), Section 4.1-4.5, fix how a representation is evaluated on a target: which
    split (the study's lists where a dataset has one, otherwise random 80/20 splits, five
    repetitions "using different train/test splits", Section 4.4), the MLP probes, the
    content-aware WMF and its cold-start test ("predicting user preference scores based on all
    tracks, including those that were held out", nDCG@500, Section 4.1). mtdtl follows the
    paper by default and offers other choices as named options. :class:`ProtocolOptions`
    holds every such choice; its defaults are the paper's (:data:`PAPER`), and
    :func:`protocol_id` names a set of options: ``"paper-1"`` for the defaults and a distinct,
    readable id otherwise (``"paper-1+candidates=held_out"``), so results made under other
    options are never silently mixed with the paper's (store the id with every result row).

The repetition plan
    :func:`fold_plan` is the one place where repetitions on targets without a fixed split are
    drawn, for the probes and for the recommender alike: repetition ``j`` tests on fold
    ``j mod n_folds`` of a shuffle seeded by ``seed + j // n_folds``; five repetitions with
    ``n_folds=5`` are one 5-fold cross-validation (every track tested once, 80/20 each time).
    Folds are stratified where there are strata (class labels; quantile bins of a regression
    target), keep groups whole where there are groups (artist, song, work:
    ``StratifiedGroupKFold``), both, or neither. Every fold carries a description
    (``"fold 3/5 stratified-group (shuffle seed 0)"``) that goes into the results' ``split``
    column; a fixed split carries its name instead (``"list:gtzan-filtered"``).
    :func:`repetition_plan` gives the plan of a loaded :class:`~mtdtl.targets.TargetDataset`, and
    :func:`mtdtl.evaluation.target.evaluate_target` runs a target's whole evaluation under a set of options.

The choices, the paper's text, the authors' released code and mtdtl's options are tabulated in
``docs/evaluation.md`` ("Protocol").
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = [
    "PROTOCOL", "CANDIDATES", "ALS_SOLVERS", "ProtocolOptions", "PAPER", "protocol_id", "Fold",
    "fold_plan", "quantile_strata", "repetition_plan", "describe",
]

log = get_logger(__name__)

#: Id of the paper's protocol as mtdtl implements it (bump the number when a default changes).
PROTOCOL = "paper-1"
#: Candidate sets of the cold-start ranking (see :func:`mtdtl.evaluation.recommend.evaluate`).
CANDIDATES = ("catalogue", "held_out", "catalogue_mixed")
#: Per-row solvers of the ALS (see :class:`mtdtl.evaluation.recommend.WMFParams`).
ALS_SOLVERS = ("exact", "cg")
#: How the probes scale features (see :func:`mtdtl.evaluation.probes.make_probe`).
FEATURE_SCALINGS = ("standard", "clip", "none", "pca_whiten", "select")


@dataclass(frozen=True)
class ProtocolOptions:
    """Every evaluation-protocol choice; the defaults are the paper's.

    Attributes
    ----------
    candidates : {"catalogue", "held_out", "catalogue_mixed"}
        What each user ranks in the cold-start recommendation test. ``"catalogue"`` (paper):
        every item scored from its content, ``U (W x_i)``, warm and cold alike; the user's
        training items removed; the whole remaining catalogue ranked. ``"held_out"``: only
        the held-out items (a smaller candidate set: higher nDCG, not the paper's number).
        ``"catalogue_mixed"``: warm items scored with their fitted factors, cold ones from
        content (the two scales differ: cold items almost never reach the top; nDCG ~ 0).
    n_folds : int
        Folds of the repetitions on targets without a fixed split (5: the paper's 80/20).
    group_folds : bool
        Keep a target's groups (artist, song, work) whole in those folds (True). The paper does
        not say; the authors' code drew ungrouped folds (Extended Ballroom has no groups; their
        Last.fm-1K hold-out drew items at random): False.
    standardize_target : bool
        Standardise regression targets inside the probe (paper: no; False).
    feature_scaling : {"standard", "clip", "none", "pca_whiten", "select"}
        How the probe scales the features (:func:`mtdtl.evaluation.probes.make_probe`). The
        paper does not say. ``"standard"`` (mtdtl's default): a ``StandardScaler`` fit on the
        training part. ``"none"``: the features as they are (the authors' code's default; it
        ruins the probes of MFCC and of the untrained network, whose features have very
        different scales). ``"clip"``: standardised, then clipped to the training range (so a
        near-constant learned dimension cannot put a test track hundreds of standard
        deviations out). ``"pca_whiten"``: PCA to 256 whitened dimensions (the authors' code's
        other option). ``"select"``: ``standard`` or ``none``, chosen per probe by a 3-fold
        cross-validation on the training part (fair to representations whose scale carries
        information and to those that need scaling; 7 fits instead of 1). Measured in
        docs/learning.md.
    als_solver : {"exact", "cg"}
        Per-row solver of the ALS (paper and authors' code: exact solves).
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (only with ``als_solver="cg"``).
    ndcg_k : int
        Rank cut-off of nDCG (500).
    study_splits : bool
        Use the study's split lists shipped with mtdtl where a target has one (paper: yes).
    """

    candidates: str = "catalogue"
    n_folds: int = 5
    group_folds: bool = True
    standardize_target: bool = False
    feature_scaling: str = "standard"
    als_solver: str = "exact"
    cg_steps: int = 3
    ndcg_k: int = 500
    study_splits: bool = True

    def __post_init__(self) -> None:
        if self.candidates not in CANDIDATES:
            raise MtdtlError(f"unknown recommendation candidates {self.candidates!r}; use one of {CANDIDATES}")
        if self.feature_scaling not in FEATURE_SCALINGS:
            raise MtdtlError(f"unknown feature scaling {self.feature_scaling!r}; use one of {FEATURE_SCALINGS}")
        if self.als_solver not in ALS_SOLVERS:
            raise MtdtlError(f"unknown ALS solver {self.als_solver!r}; use one of {ALS_SOLVERS}")
        if int(self.n_folds) != self.n_folds or self.n_folds < 2:
            raise MtdtlError(f"n_folds must be an integer >= 2, got {self.n_folds!r}")
        if int(self.cg_steps) != self.cg_steps or self.cg_steps < 1:
            raise MtdtlError(f"cg_steps must be an integer >= 1, got {self.cg_steps!r}")
        if int(self.ndcg_k) != self.ndcg_k or self.ndcg_k < 1:
            raise MtdtlError(f"ndcg_k must be an integer >= 1, got {self.ndcg_k!r}")
        for name in ("group_folds", "standardize_target", "study_splits"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise MtdtlError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """The options as a plain dict (for run metadata)."""
        return asdict(self)

    def differences(self) -> dict:
        """Options that differ from the paper's (:data:`PAPER`), in field order.

        ``cg_steps`` counts only with the CG solver.
        """
        out = {}
        for f in fields(self):
            mine, paper = getattr(self, f.name), getattr(PAPER, f.name)
            if f.name == "cg_steps" and self.als_solver != "cg":
                continue
            if mine != paper or (f.name == "cg_steps" and self.als_solver != PAPER.als_solver):
                out[f.name] = mine
        return out

    @property
    def id(self) -> str:
        """:func:`protocol_id` of these options."""
        return protocol_id(self)

    def probe_kwargs(self) -> dict:
        """Keyword arguments of :func:`mtdtl.evaluation.probes.evaluate_probe` under these options."""
        return {"n_folds": int(self.n_folds), "standardize_target": bool(self.standardize_target),
                "feature_scaling": str(self.feature_scaling)}

    def load_kwargs(self) -> dict:
        """Keyword arguments of :func:`mtdtl.targets.load_target` (``split_list``)."""
        return {"split_list": "study" if self.study_splits else None}


#: The paper's protocol.
PAPER = ProtocolOptions()


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


def protocol_id(options: ProtocolOptions | None = None) -> str:
    """Id of a set of protocol options.

    ``"paper-1"`` for the paper's defaults; otherwise ``"paper-1+"`` followed by the options that
    differ, ``name=value`` joined by ``","`` in field order (``"paper-1+candidates=held_out,
    standardize_target=true"``). Equal options give equal ids, different options different ids.
    """
    options = PAPER if options is None else options
    if not isinstance(options, ProtocolOptions):
        raise MtdtlError(f"protocol_id expects ProtocolOptions, got {type(options).__name__}")
    diff = options.differences()
    if not diff:
        return PROTOCOL
    return PROTOCOL + "+" + ",".join(f"{k}={_fmt(v)}" for k, v in diff.items())


# --------------------------------------------------------------------------------------------
# the repetition plan
# --------------------------------------------------------------------------------------------


class Fold(NamedTuple):
    """One repetition: training and test indices, and what the split is, in words."""

    train: np.ndarray
    test: np.ndarray
    description: str


def quantile_strata(y, n_bins: int = 5) -> np.ndarray:
    """Strata of a regression target: the index of its quantile bin (``n_bins`` about equal bins)."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.argsort(np.argsort(y, kind="stable"), kind="stable")
    return (ranks * int(n_bins) // len(y)).astype(np.int64)


def _group_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of every row such that groups stay whole and folds are about equal in size."""
    uniq, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        raise MtdtlError(f"{len(uniq)} groups cannot be split into {n_folds} folds; use fewer folds "
                         "or no groups")
    order = np.random.default_rng(seed).permutation(len(uniq))
    load = np.zeros(n_folds)
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[inverse]


def fold_plan(n: int, *, n_folds: int = 5, n_repetitions: int = 5, seed: int = 0, strata=None,
              groups=None) -> list[Fold]:
    """Repetitions over ``n`` rows by folds: repetition ``j`` tests on fold ``j mod n_folds``.

    Parameters
    ----------
    n : int
        Number of rows (tracks or items).
    n_folds : int
        Folds per shuffle (5: 80/20).
    n_repetitions : int
        Repetitions; beyond ``n_folds`` a new shuffle (seed ``seed + j // n_folds``) begins.
    seed : int
        Base seed of the shuffles.
    strata : array-like [shape=(n,)], optional
        Stratum of every row (class label, quantile bin): folds keep their proportions.
    groups : array-like [shape=(n,)], optional
        Group of every row (artist, song, work): a group never crosses a fold.

    Returns
    -------
    list of Fold
        ``(train, test, description)``, indices sorted; the description reads
        ``"fold 3/5 stratified-group (shuffle seed 0)"`` (kinds: ``stratified-group``,
        ``stratified``, ``group``, ``random``).
    """
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    if n_repetitions < 1:
        raise MtdtlError(f"n_repetitions must be >= 1, got {n_repetitions}")
    if int(n_folds) != n_folds or n_folds < 2:
        raise MtdtlError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    n_folds = int(n_folds)
    if n < n_folds:
        raise MtdtlError(f"{n} rows cannot be split into {n_folds} folds")
    if strata is not None:
        strata = np.asarray(strata)
        if strata.shape != (n,):
            raise MtdtlError(f"strata has shape {strata.shape}; expected ({n},)")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise MtdtlError(f"groups has shape {groups.shape}; expected ({n},)")
    kind = {(True, True): "stratified-group", (True, False): "stratified", (False, True): "group",
            (False, False): "random"}[(strata is not None, groups is not None)]
    dummy = np.zeros((n, 1))
    cache: dict[int, list] = {}
    plan = []
    for j in range(n_repetitions):
        shuffle_seed = seed + j // n_folds
        if shuffle_seed not in cache:
            rs = shuffle_seed % (2 ** 32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "least populated class has only ..."
                if kind.startswith("stratified") and np.unique(strata, return_counts=True)[1].max() < n_folds:
                    raise MtdtlError(f"{n} rows: no class (or quantile bin) has {n_folds} members, too few for "
                                     f"{n_folds} stratified folds; use fewer folds (n_folds) or more data")
                if kind == "stratified-group":
                    folds = list(StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=rs)
                                 .split(dummy, strata, groups))
                elif kind == "stratified":
                    folds = list(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=rs)
                                 .split(dummy, strata))
                elif kind == "group":
                    fold = _group_folds(groups, n_folds, shuffle_seed)
                    folds = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]
                else:
                    folds = list(KFold(n_splits=n_folds, shuffle=True, random_state=rs).split(dummy))
            cache[shuffle_seed] = folds
        f = j % n_folds
        train, test = cache[shuffle_seed][f]
        if len(test) == 0 or len(train) == 0:
            raise MtdtlError(f"fold {f + 1}/{n_folds} of {n} rows is empty (too few groups?): use fewer folds")
        plan.append(Fold(np.sort(train), np.sort(test),
                         f"fold {f + 1}/{n_folds} {kind} (shuffle seed {shuffle_seed})"))
    return plan


def repetition_plan(target, *, n_repetitions: int = 5, options: ProtocolOptions = PAPER,
                    seed: int = 0) -> list[Fold]:
    """The repetitions of a loaded target dataset, over the rows of ``target.tracks``.

    A fixed split (the study's list, or the dataset's own: ``target.split_fixed``) is used in
    every repetition (then repetitions differ by the model seed only), described by its name
    (``target.split_name``); otherwise :func:`fold_plan` with ``options.n_folds`` folds,
    stratified by class (classification) or by quantile bin of the target (regression), and
    keeping the target's groups (``target.group_ids()``) whole when ``options.group_folds``.
    For recommendation the rows are the items and the test part is the held-out items.
    """
    tracks = target.tracks
    if getattr(target, "split_fixed", False):
        split = tracks["split"].astype(str).to_numpy()
        train, test = np.flatnonzero(split != "test"), np.flatnonzero(split == "test")
        return [Fold(train, test, target.split_name)] * n_repetitions
    strata = None
    if target.task == "classification":
        strata = tracks["label"].astype(str).to_numpy()
    elif target.task == "regression":
        strata = quantile_strata(tracks["label"].to_numpy(dtype=float), options.n_folds)
    return fold_plan(len(tracks), n_folds=options.n_folds, n_repetitions=n_repetitions, seed=seed,
                     strata=strata, groups=target.group_ids() if options.group_folds else None)


def _check_candidates(candidates: str) -> str:
    """``candidates`` if known; a clear error (with the old names' new names) otherwise."""
    if candidates in CANDIDATES:
        return candidates
    old = {"test": "held_out", "all": "catalogue_mixed"}
    hint = f" ({candidates!r} is now {old[candidates]!r})" if candidates in old else ""
    raise MtdtlError(f"unknown recommendation candidates {candidates!r}{hint}; use one of {CANDIDATES}")


def describe(options: ProtocolOptions = PAPER) -> pd.DataFrame:
    """The options as a two-column table (option, value), the protocol id first."""
    rows = [("protocol", protocol_id(options))] + [(k, _fmt(v)) for k, v in options.to_dict().items()]
    return pd.DataFrame(rows, columns=["option", "value"])
