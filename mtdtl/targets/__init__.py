"""Target datasets (Kim et al. 2019, Section 4.1, Table 5): loaders and their registry.

Each loader reads a dataset from its own folder layout and metadata and returns a
:class:`~mtdtl.targets.base.TargetDataset` (tidy ``tracks`` table, classes, play counts for
recommendation, skipped files). One entry point::

    from mtdtl.targets import load_target, list_targets
    ds = load_target("gtzan", "/data/gtzan")   # the study's split list, shipped with mtdtl
    print(ds.summary())

Names (:func:`list_targets`): ``gtzan``, ``fma``, ``eballroom``, ``irmas``, ``emo_arousal``,
``emo_valence``, ``lastfm1k``, ``folder`` for your own data (a folder of audio and a labels
table: ``load_target("folder", root, labels="labels.csv", task="classification")``), and
``demo:<task>`` for the target tasks of a demo corpus (``root`` = the corpus folder). See
``docs/targets.md`` for layouts, matching and splits.

The study's split lists (GTZAN, FMA, Extended Ballroom, IRMAS, emoMusic) and the Last.fm-1K
item list ship with mtdtl (:mod:`mtdtl.targets.splits`) and are used by default
(``split_list="study"``); pass your own list as a path, or ``split_list=None`` for none.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable

from mtdtl.errors import MtdtlError
from mtdtl.targets.ballroom import load_ballroom
from mtdtl.targets.base import (METRICS, STUDY, SkippedFile, SplitList, SplitSpec, TargetDataset, UnmatchedRow,
                                read_split_list, resolve_split_list)
from mtdtl.targets.demo import demo_tasks, load_demo
from mtdtl.targets.emomusic import load_emomusic
from mtdtl.targets.fma import load_fma
from mtdtl.targets.folder import load_folder
from mtdtl.targets.gtzan import load_gtzan
from mtdtl.targets.irmas import load_irmas
from mtdtl.targets.lastfm1k import load_lastfm1k
from mtdtl.targets.splits import STUDY_ITEMS, STUDY_LISTS, study_items, study_split_list

__all__ = [
    "TARGETS", "TargetSpec", "TargetDataset", "SkippedFile", "UnmatchedRow", "SplitSpec", "SplitList",
    "load_target", "list_targets", "target_spec", "read_split_list", "resolve_split_list",
    "study_split_list", "study_items", "STUDY_LISTS", "STUDY_ITEMS",
    "load_gtzan", "load_fma", "load_ballroom", "load_irmas", "load_emomusic", "load_lastfm1k", "load_demo",
    "load_folder", "FOLDER",
]


@dataclass(frozen=True)
class TargetSpec:
    """A registered target dataset: its loader, task type, metric, a one-line description and the
    name of the study's list shipped with mtdtl (:mod:`mtdtl.targets.splits`; None if none)."""

    name: str
    task: str
    loader: Callable[..., TargetDataset]
    description: str
    study_split_list: str | None = None

    @property
    def metric(self) -> str:
        """The paper's metric for the task type (``""`` for demo tasks, whose type the corpus gives)."""
        return METRICS.get(self.task, "")


#: The paper's seven target datasets (Table 5), by registry name.
TARGETS: dict[str, TargetSpec] = {s.name: s for s in (
    TargetSpec("gtzan", "classification", load_gtzan,
               "GTZAN genre, 10 classes, 1,000 clips; fault-filtered split", STUDY_LISTS["gtzan"]),
    TargetSpec("fma", "classification", load_fma,
               "FMA-medium top genre, 16 classes, 25,000 tracks; official artist-filtered split",
               STUDY_LISTS["fma"]),
    TargetSpec("eballroom", "classification", load_ballroom,
               "Extended Ballroom dance style, 13 classes, 3,390 tracks; no split: stratified folds",
               STUDY_LISTS["eballroom"]),
    TargetSpec("irmas", "classification", load_irmas,
               "IRMAS training set predominant instrument, 11 classes, 6,705 clips; song-filtered split",
               STUDY_LISTS["irmas"]),
    TargetSpec("emo_arousal", "regression", partial(load_emomusic, dimension="arousal"),
               "MediaEval 1000 songs song-level arousal, 744 clips; development/evaluation split",
               STUDY_LISTS["emo_arousal"]),
    TargetSpec("emo_valence", "regression", partial(load_emomusic, dimension="valence"),
               "MediaEval 1000 songs song-level valence, 744 clips; development/evaluation split",
               STUDY_LISTS["emo_valence"]),
    TargetSpec("lastfm1k", "recommendation", load_lastfm1k,
               "Last.fm-1K play counts, tracks with audio, cold-start item folds; nDCG@500", STUDY_ITEMS),
)}
_DEMO_PREFIX = "demo:"
#: Your own data: a folder of audio and a labels table (:mod:`mtdtl.targets.folder`); its task
#: type is the caller's (``task=``), so it is not among :data:`TARGETS` (the paper's seven).
FOLDER = TargetSpec("folder", "", load_folder,
                    "your own data: a folder of audio and a labels table (track, label[, split][, group]); "
                    "pass labels= and task='classification' or 'regression'")


def list_targets(root: str | os.PathLike | None = None) -> list[str]:
    """Registry names: the paper's seven targets, ``folder`` (your own data), then
    ``demo:<task>`` for each task of the demo corpus at ``root`` (when given), else the pattern
    ``"demo:<task>"``."""
    names = [*TARGETS, FOLDER.name]
    if root is not None:
        names += [f"{_DEMO_PREFIX}{t}" for t in sorted(demo_tasks(root))]
    else:
        names.append(f"{_DEMO_PREFIX}<task>")
    return names


def target_spec(name: str) -> TargetSpec:
    """The :class:`TargetSpec` of a registered name (``demo:<task>`` resolves to the demo loader)."""
    if name in TARGETS:
        return TARGETS[name]
    if name == FOLDER.name:
        return FOLDER
    if name.startswith(_DEMO_PREFIX) and len(name) > len(_DEMO_PREFIX):
        task = name[len(_DEMO_PREFIX):]
        return TargetSpec(name, "", partial(load_demo, task),
                          f"demo corpus task {task!r} (task type read from targets/tasks.json)")
    raise MtdtlError(f"unknown target {name!r}; valid names: {', '.join(list_targets())}")


def load_target(name: str, root: str | os.PathLike, *, split_list: str | os.PathLike | None = STUDY,
                **kwargs) -> TargetDataset:
    """Load a target dataset by registry name.

    Parameters
    ----------
    name : str
        One of :func:`list_targets` (``"gtzan"``, ..., ``"folder"``, ``"demo:genre"``).
    root : path-like
        The dataset's folder as unpacked (for ``demo:<task>``, the corpus folder; for
        ``folder``, your audio folder).
    split_list : "study", path-like or None
        ``"study"`` (default): the study's list of this target, shipped with mtdtl (none for
        ``lastfm1k`` and the demo tasks); a path: your own list in ``reference/*.info`` format,
        which replaces it; None: no list (the dataset's own split, else the fallback). The
        loader logs which split it used.
    **kwargs
        Loader options (``seed``, ``test_size``, ``check``, ``progress`` and per-dataset ones,
        e.g. ``subset`` for ``fma``, ``items`` for ``lastfm1k``, ``labels`` and ``task`` for
        ``folder``).

    Raises
    ------
    MtdtlError
        Unknown name (the message lists the valid ones), missing root, unknown option, or a
        problem the loader explains (malformed split list: file and line).
    """
    spec = target_spec(name)
    if root is None or not os.path.isdir(os.fspath(root)):
        raise MtdtlError(f"target {name!r}: root folder {root} does not exist or is not a folder")
    func = spec.loader.func if isinstance(spec.loader, partial) else spec.loader
    fixed = set(spec.loader.keywords) if isinstance(spec.loader, partial) else set()
    params = inspect.signature(func).parameters
    allowed = {p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY} - fixed - {"split_list"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise MtdtlError(f"target {name!r}: unknown option(s) {unknown}; accepted: {sorted(allowed)}")
    return spec.loader(root, split_list=split_list, **kwargs)
