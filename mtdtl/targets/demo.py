"""Target tasks of the embedded demo corpus (``demo:<task>``).

A built demo corpus (docs/ARCHITECTURE.md, ``mtdtl.corpora``) is a folder with::

    <corpus>/manifest.csv          track_id, part, split, path (relative to <corpus>), ...
    <corpus>/targets/tasks.json    {task: {"type": "classification" | "regression" | "recommendation",
                                           "description": ...}}
    <corpus>/targets/<task>.csv    track_id, label, split              (classification, regression)
                                   user_id, track_id, play_count, split (recommendation; split of the item)

The task's own split is used (the corpus builder keeps works from crossing splits): it is a
fixed split (``split_name`` ``"dataset:demo:<task>"``), used by every repetition. ``group`` is
the manifest's ``work_id`` when present. A split list in ``.info`` format may override it
(matched on the audio file stem, i.e. the track id). A task without a split column gets
folds (stratified by class, works kept together).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (TASKS, SkippedFile, SplitSpec, TargetDataset, check_files, finalize, require_dir,
                                tail_key)

__all__ = ["demo_tasks", "load_demo"]

log = get_logger(__name__)


def demo_tasks(root: str | os.PathLike) -> dict[str, dict]:
    """The target tasks of a demo corpus: ``targets/tasks.json`` as a dict (task -> info)."""
    root = require_dir(root, "demo")
    path = root / "targets" / "tasks.json"
    if not path.is_file():
        raise MtdtlError(f"demo: {path} not found; is {root} a built demo corpus "
                         "(mtdtl corpus demo, or mtdtl.corpora.demo.build_demo_corpus)?")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MtdtlError(f"demo: {path} is not valid JSON: {exc}") from None
    if not isinstance(tasks, dict):
        raise MtdtlError(f"demo: {path} must map task names to their descriptions")
    return tasks


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise MtdtlError(f"demo: {path} not found")
    df = pd.read_csv(path, dtype={"track_id": str, "user_id": str, "split": str, "path": str, "label": str},
                     keep_default_na=False, na_values=[""])
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MtdtlError(f"demo: {path} lacks the columns {missing} (has {list(df.columns)})")
    return df


def load_demo(task: str, root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", seed: int = 0,
              test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load the target task ``task`` of the demo corpus at ``root``.

    Parameters
    ----------
    task : str
        A task of ``targets/tasks.json``.
    root : path-like
        The corpus folder.
    split_list : "study", path-like or None
        A path overrides the task's split (``.info`` format, matched on the track id); the study
        has no list for demo tasks, so ``"study"`` (default) and None use the task's own.
    seed, test_size, check, progress
        Fallback split (stratified by label for classification, random otherwise, keeping
        works together), file check, progress bar.
    """
    root = require_dir(root, f"demo:{task}")
    tasks = demo_tasks(root)
    if task not in tasks:
        raise MtdtlError(f"demo: the corpus at {root} has no target task {task!r}; its tasks are "
                         f"{sorted(tasks)} (use demo:<task>)")
    ttype = str(tasks[task].get("type", "")) if isinstance(tasks[task], dict) else ""
    if ttype not in TASKS:
        raise MtdtlError(f"demo: task {task!r} in {root / 'targets' / 'tasks.json'} has type {ttype!r}; "
                         f"expected one of {TASKS}")
    manifest = _read_csv(root / "manifest.csv", ("track_id", "path"))
    manifest = manifest.drop_duplicates("track_id").set_index("track_id")
    tpath = root / "targets" / f"{task}.csv"
    interactions = None
    if ttype == "recommendation":
        table = _read_csv(tpath, ("user_id", "track_id", "play_count", "split"))
        splits = table.groupby("track_id")["split"].nunique(dropna=False)
        if (splits > 1).any():
            raise MtdtlError(f"demo: {tpath}: track {splits.index[splits > 1][0]!r} has more than one split; "
                             "the split of a recommendation task is the item's")
        items = table.drop_duplicates("track_id")[["track_id", "split"]].assign(label=np.nan)
        interactions = table[["user_id", "track_id", "play_count"]].copy()
        interactions["play_count"] = pd.to_numeric(interactions["play_count"], errors="raise").astype("int64")
        rows = items
    else:
        table = _read_csv(tpath, ("track_id", "label", "split"))
        if table["track_id"].duplicated().any():
            raise MtdtlError(f"demo: {tpath}: track {table.loc[table['track_id'].duplicated(), 'track_id'].iloc[0]!r} "
                             "is listed twice")
        rows = table[["track_id", "label", "split"]].copy()
    skipped: list[SkippedFile] = []
    rows["split"] = rows["split"].fillna("").astype(str).str.strip().str.lower()
    bad_split = ~rows["split"].isin(["train", "valid", "test", ""])
    if bad_split.any():
        raise MtdtlError(f"demo: {tpath}: unknown split {rows.loc[bad_split, 'split'].iloc[0]!r}")
    in_manifest = rows["track_id"].isin(manifest.index)
    for tid in rows.loc[~in_manifest, "track_id"]:
        skipped.append(SkippedFile(str(tid), "not in manifest.csv (no audio path)"))
    rows = rows[in_manifest].copy()
    rows["relpath"] = manifest.loc[rows["track_id"], "path"].astype(str).to_numpy()
    rows["group"] = (manifest.loc[rows["track_id"], "work_id"].fillna("").astype(str).to_numpy()
                     if "work_id" in manifest.columns else "")
    ok, bad = check_files(root, rows["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    rows = rows[ok]
    stratify = "label" if ttype == "classification" else None
    return finalize(name=f"demo:{task}", task=ttype, root=root, candidates=rows, key_fn=tail_key(1),
                    fallback=SplitSpec(stratify=stratify, group="group", group_name="work",
                                       test_size=test_size, seed=seed),
                    split_list=split_list, skipped=skipped, own_split_method=f"dataset (targets/{task}.csv)",
                    interactions=interactions,
                    meta={"description": tasks[task].get("description", "") if isinstance(tasks[task], dict) else ""})
