"""One target's whole evaluation under a protocol: :func:`evaluate_target`.

Dispatches a loaded :class:`~mtdtl.targets.TargetDataset` to the MLP probe
(:mod:`mtdtl.evaluation.probes`) or the cold-start recommender
(:mod:`mtdtl.evaluation.recommend`) with the splits of :func:`mtdtl.evaluation.protocol.repetition_plan`
and the options of a :class:`~mtdtl.evaluation.protocol.ProtocolOptions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.probes import evaluate_probe
from mtdtl.evaluation.protocol import PAPER, ProtocolOptions
from mtdtl.log import get_logger

__all__ = ["evaluate_target", "wmf_params", "recommend_kwargs"]

log = get_logger(__name__)


def wmf_params(options: ProtocolOptions = PAPER):
    """:class:`~mtdtl.evaluation.recommend.WMFParams` (paper hyper-parameters) with the options' solver."""
    from mtdtl.evaluation.recommend import WMFParams  # numba kernels compile on first import

    return WMFParams(method=options.als_solver, cg_steps=int(options.cg_steps))


def recommend_kwargs(options: ProtocolOptions = PAPER) -> dict:
    """Keyword arguments of :func:`mtdtl.evaluation.recommend.evaluate_recommendation` under ``options``."""
    return {"n_folds": int(options.n_folds), "k": int(options.ndcg_k), "candidates": options.candidates,
            "params": wmf_params(options)}


def evaluate_target(target, features: pd.DataFrame, *, options: ProtocolOptions = PAPER,
                    n_repetitions: int = 5, seed: int = 0, n_jobs: int | None = None,
                    progress: bool = False) -> list[dict]:
    """Evaluate one representation on one loaded target under ``options``.

    Parameters
    ----------
    target : mtdtl.targets.TargetDataset
        A loaded target (classification, regression or recommendation).
    features : pd.DataFrame [shape=(n_tracks, d)]
        The representation's features, indexed by track id (as text).
    options : ProtocolOptions
        The protocol (default: the paper's).
    n_repetitions : int
        Repetitions (5 in the paper).
    seed : int
        Base seed of folds, probe initialisations and factor initialisations.
    n_jobs : int, optional
        Probe repetitions in parallel (joblib).
    progress : bool
        tqdm bar over ALS iterations (recommendation).

    Returns
    -------
    list of dict
        One per repetition: the metric (``accuracy``, ``r2`` or ``ndcg@<k>``) and ``split``, the
        split's description (``"list:gtzan-filtered"``, ``"fold 2/5 stratified (shuffle seed 0)"``).
    """
    if not isinstance(features, pd.DataFrame):
        raise MtdtlError("features must be a DataFrame indexed by track id")
    feats = features.copy()
    feats.index = feats.index.astype(str)
    if feats.index.has_duplicates:
        raise MtdtlError("the features' track ids are not unique")
    tracks = target.tracks
    tid = tracks["track_id"].astype(str)
    have = tid.isin(feats.index).to_numpy()
    if not have.any():
        raise MtdtlError(f"{target.name}: none of its {len(tracks)} tracks has features; extract them first")
    if not have.all():
        log.warning("%s: %d of %d tracks have no features and are left out", target.name,
                    int((~have).sum()), len(tracks))
    tr = tracks[have].reset_index(drop=True)
    tids = tr["track_id"].astype(str).to_numpy()
    X = feats.loc[tids].to_numpy(dtype=np.float64)
    fixed = bool(getattr(target, "split_fixed", False))
    groups = None
    if not fixed and options.group_folds and hasattr(target, "group_ids"):
        g = target.group_ids()
        groups = None if g is None else g[have]
    if target.task == "recommendation":
        from mtdtl.evaluation.recommend import evaluate_recommendation

        inter = target.interactions
        inter = inter[inter["track_id"].astype(str).isin(set(tids))]
        split_kw = ({"item_split": tr["split"].astype(str).to_numpy(), "item_split_name": target.split_name}
                    if fixed else {"item_groups": groups})
        return evaluate_recommendation(inter, pd.DataFrame(X, index=tids), n_repetitions=n_repetitions,
                                       seed=seed, progress=progress, **split_kw, **recommend_kwargs(options))
    y = tr["label"].to_numpy()
    if fixed:
        return evaluate_probe(X, y, task=target.task, split=tr["split"].astype(str).to_numpy(),
                              split_name=target.split_name, n_repetitions=n_repetitions, seed=seed,
                              n_jobs=n_jobs, **options.probe_kwargs())
    return evaluate_probe(X, y, task=target.task, groups=groups, n_repetitions=n_repetitions, seed=seed,
                          n_jobs=n_jobs, **options.probe_kwargs())
