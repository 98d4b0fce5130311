"""Real-data check of the probes: Choi et al. (2017)'s published features, beside MFCC.

What
    Choi, Fazekas, Sandler & Cho, "Transfer learning for music classification and regression
    tasks" (ISMIR 2017) released, for three real target datasets, the 160-dimensional transfer
    feature of their convnet (the global average of each of its five conv layers, 32 dims each,
    ``data_feats/<dataset>_layer_{0..4}.npy`` concatenated in layer order) and a 120-dimensional
    MFCC baseline (``<dataset>_mfcc.npy``), rows aligned with ``data_csv/<dataset>.csv``. The
    paper we reproduce uses that model as its *Choi* baseline. Running our probes
    (:mod:`mtdtl.evaluation.probes`) on them, under the study's splits, checks the evaluation
    code on real data: the convnet features should clearly beat MFCC on GTZAN (Choi et al.
    report about 0.90 accuracy with an SVM).

Datasets and how they are matched to the study's split lists (``<reference>/*.info``, format
``index<TAB>path<TAB>split<TAB>label``)

- ``gtzan``: the csv's ``filepath`` (``gtzan_genre/genres/blues/blues.00000.au``) and the .info's
  path (``/genres/blues/blues.00000.au``) share the file name ``blues.00000.au``: matched on it.
  The study's fault-filtered split (Kereliuk/Sturm: 478 train / 211 valid / 311 test, all 1,000
  tracks); ``valid`` is merged into train. Label: the csv's genre index (equal to the .info's
  genre, checked).
- ``ballroom``: the .info paths ``data/<Style>/<id>.mp3`` and the csv's ``id`` column: matched on
  the id. By default only the study's 3,390 tracks (Table 5) are used (``ballroom_subset="study"``;
  the csv has 4,180, the 790 others are reported); no split exists, so stratified random 5-fold
  repetitions. Label: the csv's style index (its folder name equals the .info's style, checked).
- ``emo_arousal``, ``emo_valence``: MediaEval "1000 songs", .info paths
  ``/audio/clips_45seconds/<id>.mp3`` matched on the csv's ``id``; the study's split (619 train /
  125 test). Label: the .info's song-level rating on the 1-9 scale (the study's label; the csv's
  ``label_arousal`` / ``label_valence`` are the same numbers divided by 9, checked). The probe
  fits the raw target, as the paper does (``standardize_target=True`` is the option).

Rows of a .info list missing from the csv, and csv rows missing from the list, are logged and
listed in the ``report`` of :func:`load_choi_task`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.probes import evaluate_probe
from mtdtl.evaluation.protocol import PAPER
from mtdtl.evaluation.results import summarize, tidy_rows
from mtdtl.log import get_logger

__all__ = ["CHOI_TASKS", "ChoiTask", "read_info", "load_choi_task", "choi_reference_check"]

log = get_logger(__name__)

#: Target name -> (Choi dataset file stem, study .info file, task type, csv label column).
CHOI_TASKS = {
    "gtzan": ("gtzan_genre", "GTZAN_filtered_dataset.info", "classification", "label"),
    "ballroom": ("ballroom_extended", "eBallroom_filtered_dataset.info", "classification", "label"),
    "emo_arousal": ("emoMusic", "MusicEmoArousal_filtered_dataset.info", "regression", "label_arousal"),
    "emo_valence": ("emoMusic", "MusicEmoValence_filtered_dataset.info", "regression", "label_valence"),
}


@dataclass
class ChoiTask:
    """One target task on Choi et al.'s features, matched to the study's list.

    Attributes
    ----------
    name : str
    task : {"classification", "regression"}
    convnet : np.ndarray [shape=(n_tracks, 160)]
        The five layers' 32-dim averages, concatenated in layer order.
    mfcc : np.ndarray [shape=(n_tracks, 120)]
    y : np.ndarray [shape=(n_tracks,)]
    split : np.ndarray [shape=(n_tracks,)] of str or None
    ids : np.ndarray [shape=(n_tracks,)]
        The matching key of every row (file name or id).
    report : dict
        ``info_not_in_csv`` and ``csv_not_in_info`` (lists of keys), ``label_source``.
    """

    name: str
    task: str
    convnet: np.ndarray
    mfcc: np.ndarray
    y: np.ndarray
    split: np.ndarray | None
    ids: np.ndarray
    report: dict = field(default_factory=dict)


def read_info(path: str | os.PathLike) -> pd.DataFrame:
    """Read a study split list (``index<TAB>path<TAB>split<TAB>label``, no header).

    Returns
    -------
    pd.DataFrame
        Columns ``index, path, split, label``; ``split`` is "" where the list has none.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"split list {path} not found")
    df = pd.read_csv(path, sep="\t", header=None, names=["index", "path", "split", "label"],
                     dtype={"path": str, "split": str, "label": str}, keep_default_na=False)
    if df.empty or df["path"].eq("").any():
        raise MtdtlError(f"{path} is not a split list of the form index<TAB>path<TAB>split<TAB>label")
    return df


def _choi_dir(reference_dir) -> Path:
    ref = Path(reference_dir)
    choi = ref / "choi2017" if (ref / "choi2017").is_dir() else ref
    if not (choi / "data_feats").is_dir() or not (choi / "data_csv").is_dir():
        raise MtdtlError(f"no Choi et al. features under {ref}: expected choi2017/data_feats and "
                         "choi2017/data_csv (see shared/reference/choi2017/README.md)")
    return choi


def _load_features(choi: Path, stem: str, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    layers = []
    for k in range(5):
        f = choi / "data_feats" / f"{stem}_layer_{k}.npy"
        if not f.is_file():
            raise MtdtlError(f"missing {f}")
        layers.append(np.load(f, allow_pickle=False).astype(np.float64))
    convnet = np.concatenate(layers, axis=1)
    mfcc = np.load(choi / "data_feats" / f"{stem}_mfcc.npy", allow_pickle=False).astype(np.float64)
    for name, arr in (("convnet", convnet), ("mfcc", mfcc)):
        if arr.shape[0] != n_rows:
            raise MtdtlError(f"{stem} {name} features have {arr.shape[0]} rows, the csv {n_rows}")
    return convnet, mfcc


def load_choi_task(reference_dir: str | os.PathLike, name: str, *,
                   ballroom_subset: str = "study") -> ChoiTask:
    """Features, labels and split of one task, matched to the study's split list.

    Parameters
    ----------
    reference_dir : path
        ``shared/reference`` (holding ``choi2017/`` and the ``*.info`` lists), or ``choi2017``
        itself when the lists lie one level up.
    name : {"gtzan", "ballroom", "emo_arousal", "emo_valence"}
    ballroom_subset : {"study", "all"}
        Ballroom: the study's 3,390 tracks, or all 4,180 of Choi et al.'s csv.
    """
    if name not in CHOI_TASKS:
        raise MtdtlError(f"unknown Choi reference task {name!r}; use one of {list(CHOI_TASKS)}")
    if ballroom_subset not in ("study", "all"):
        raise MtdtlError(f"ballroom_subset must be 'study' or 'all', got {ballroom_subset!r}")
    stem, info_name, task, label_col = CHOI_TASKS[name]
    choi = _choi_dir(reference_dir)
    ref = choi.parent
    csv = pd.read_csv(choi / "data_csv" / f"{stem}.csv", index_col=0)
    convnet, mfcc = _load_features(choi, stem, len(csv))
    info = read_info(ref / info_name)
    if name == "gtzan":
        csv_key = csv["filepath"].str.rsplit("/", n=1).str[-1]
        info_key = info["path"].str.rsplit("/", n=1).str[-1]
    else:
        csv_key = csv["id"].astype(str)
        info_key = info["path"].str.extract(r"([^/]+)\.\w+$")[0].astype(str)
    if csv_key.duplicated().any() or info_key.duplicated().any():
        raise MtdtlError(f"{name}: duplicate keys in {stem}.csv or {info_name}")
    info = info.assign(key=info_key.to_numpy())
    pos = pd.Series(np.arange(len(csv)), index=csv_key.to_numpy())
    info_not_in_csv = sorted(set(info["key"]) - set(pos.index))
    csv_not_in_info = sorted(set(pos.index) - set(info["key"]))
    report = {"info_not_in_csv": info_not_in_csv, "csv_not_in_info": csv_not_in_info}
    if info_not_in_csv:
        log.warning("%s: %d tracks of %s are not in Choi et al.'s csv (e.g. %s)", name,
                    len(info_not_in_csv), info_name, ", ".join(info_not_in_csv[:3]))
    if csv_not_in_info:
        log.info("%s: %d rows of %s.csv are not in %s%s", name, len(csv_not_in_info), stem,
                 info_name, " (kept: ballroom_subset='all')" if name == "ballroom" and
                 ballroom_subset == "all" else "")
    matched = info[info["key"].isin(pos.index)]
    rows = pos[matched["key"]].to_numpy()

    if name == "ballroom":
        style = csv["filepath"].str.split("/").str[-2]
        if not (style.iloc[rows].to_numpy() == matched["label"].to_numpy()).all():
            raise MtdtlError("ballroom: the csv's style folders disagree with the study's labels")
        if ballroom_subset == "all":
            rows = np.arange(len(csv))
        y = csv[label_col].to_numpy()[rows]
        split = None
        report["label_source"] = "csv label (style index 0-12)"
    elif name == "gtzan":
        genre = csv["filepath"].str.split("/").str[-2].to_numpy()[rows]
        if not (genre == matched["label"].to_numpy()).all():
            raise MtdtlError("gtzan: the csv's genre folders disagree with the study's labels")
        y = csv[label_col].to_numpy()[rows]
        split = matched["split"].to_numpy().astype(str)
        report["label_source"] = "csv label (genre index 0-9)"
    else:
        y = matched["label"].astype(float).to_numpy()
        scaled = csv[label_col].to_numpy()[rows]
        if not np.allclose(scaled, y / 9.0, atol=1e-6):
            log.warning("%s: the csv's 0-1 labels are not the study's 1-9 labels / 9", name)
        split = matched["split"].to_numpy().astype(str)
        report["label_source"] = "study .info rating on the 1-9 scale (csv value x 9)"
    if split is not None and (split == "").any():
        raise MtdtlError(f"{name}: {int((split == '').sum())} tracks of {info_name} have no split")
    return ChoiTask(name=name, task=task, convnet=convnet[rows], mfcc=mfcc[rows], y=y,
                    split=split, ids=csv_key.to_numpy()[rows], report=report)


def choi_reference_check(reference_dir: str | os.PathLike, *, n_repetitions: int = 5, seed: int = 0,
                         tasks=tuple(CHOI_TASKS), ballroom_subset: str = "study",
                         n_jobs: int | None = None, summary: bool = True,
                         feature_scaling: str = PAPER.feature_scaling) -> pd.DataFrame:
    """The probes on Choi et al.'s convnet features and on their MFCC baseline.

    Parameters
    ----------
    reference_dir : path
        ``shared/reference``.
    n_repetitions : int
        Repetitions per task and feature set (5 in the paper).
    seed : int
        Base seed of splits and models.
    tasks : sequence of str
        Subset of ``CHOI_TASKS``.
    ballroom_subset : {"study", "all"}
    n_jobs : int, optional
        Repetitions in parallel (joblib).
    summary : bool
        Return the mean / std / n per representation and target (:func:`summarize`) instead of
        the tidy per-repetition rows.
    feature_scaling : {"standard", "clip", "none", "pca_whiten", "select"}
        How the probe scales the features (:func:`mtdtl.evaluation.probes.make_probe`).

    Returns
    -------
    pd.DataFrame
        Tidy rows (``representation`` and ``kind`` are ``"choi"`` or ``"mfcc"``: the released
        features, not features mtdtl extracts) or their summary.
    """
    frames = []
    for name in tasks:
        t = load_choi_task(reference_dir, name, ballroom_subset=ballroom_subset)
        for rep_name, X in (("choi", t.convnet), ("mfcc", t.mfcc)):
            evals = evaluate_probe(X, t.y, task=t.task, split=t.split, n_repetitions=n_repetitions,
                                   seed=seed, n_jobs=n_jobs, feature_scaling=feature_scaling)
            frames.append(tidy_rows(evals, representation=rep_name, run=rep_name,
                                    kind=rep_name, target=name, task=t.task))
            log.info("%s on %s: %s", rep_name, name,
                     ", ".join(f"{k}={np.mean([e[k] for e in evals]):.3f}" for k in evals[0] if k != "split"))
    table = pd.concat(frames, ignore_index=True)
    return summarize(table) if summary else table
