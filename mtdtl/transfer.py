"""Transfer evaluation of representations on target datasets (Section 4 of the paper).

:func:`evaluate_transfer` ties the pieces together: for every representation (a trained
checkpoint or a baseline spec, see :func:`mtdtl.features.get_extractor`) and every target
dataset (:func:`mtdtl.targets.load_target`) it

1. extracts (or reads from the feature cache) one ``mean ‖ std`` vector per track — targets
   that share audio (the demo corpus' tasks all use the corpus' target clips) share one
   extraction, keyed by the folder they were read from;
2. runs the target's evaluation: the MLP probe for classification (accuracy) and regression
   (R²), the content-aware WMF cold-start recommender for recommendation (nDCG@500), each
   repeated ``repetitions`` times (:mod:`mtdtl.evaluation`);
3. appends the tidy rows (``representation, arch, sources, target, repetition, metric,
   value``) to the results table on disk.

It resumes: a (representation, target) pair whose rows are already in the table is skipped,
and extraction reads the cache. Nothing finished is recomputed or overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["Representation", "representation_from_run", "baseline_representations", "resolve_targets",
           "evaluate_transfer"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Representation:
    """A representation to evaluate: a display id, what builds its extractor, and its design factors.

    Parameters
    ----------
    name : str
        Representation id in the results table (e.g. ``"ms_cr@6-s0"`` or ``"mfcc"``).
    spec : str
        What :func:`mtdtl.features.get_extractor` accepts (checkpoint path, ``"mfcc"``,
        ``"rand:<checkpoint>"``, ``"choi:<hdf5>"``).
    arch : str
        Architecture id (empty for MFCC and Choi).
    sources : str
        Learning sources, "+"-joined (empty for baselines without sources).
    """

    name: str
    spec: str
    arch: str = ""
    sources: str = ""


def representation_from_run(run_dir: str | Path, *, name: str | None = None) -> Representation:
    """The trained representation of a training run folder (reads its ``model.json``)."""
    from mtdtl.evaluation.results import sources_key

    run_dir = Path(run_dir)
    meta_path = run_dir / "model.json"
    if not meta_path.is_file():
        raise MtdtlError(f"no checkpoint in {run_dir} (model.json missing); train a model first (02_train)")
    meta = json.loads(meta_path.read_text())
    arch = str(meta.get("arch") or meta.get("architecture") or "")
    sources = sources_key(meta.get("sources") or [])
    seed = (meta.get("training") or {}).get("seed", meta.get("seed", ""))
    # the epoch is part of the id: a run trained further is another representation, and its
    # results must not be mistaken for (and skipped as) the earlier one's
    epoch = meta.get("epoch", "")
    return Representation(name=name or f"{arch}[{sources}]-s{seed}-e{epoch}", spec=str(run_dir), arch=arch,
                          sources=sources)


def baseline_representations(names: Sequence[str] | str, *, run: Representation | None = None,
                             choi_weights: str | Path | None = None) -> list[Representation]:
    """The paper's baselines (Section 4.2) by name: ``mfcc``, ``rand`` and ``choi``.

    ``rand`` is the trained run's architecture and sources, untrained, from a fixed seed (it
    needs ``run``); ``choi`` needs the user-supplied ``model_best.hdf5`` (``choi_weights``).
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if n == "mfcc":
            out.append(Representation("mfcc", "mfcc"))
        elif n == "rand":
            if run is None:
                raise MtdtlError("the rand baseline needs a trained run (its architecture and sources)")
            out.append(Representation("rand", f"rand:{run.spec}", arch=run.arch, sources=run.sources))
        elif n == "choi":
            if not choi_weights or not Path(choi_weights).is_file():
                raise MtdtlError(f"the choi baseline needs Choi et al.'s model_best.hdf5; not found at {choi_weights!r}")
            out.append(Representation("choi", f"choi:{choi_weights}"))
        else:
            raise MtdtlError(f"unknown baseline {n!r}; valid: mfcc, rand, choi")
    return out


def resolve_targets(targets: str | Sequence[str], *, corpus: str | Path | None = None,
                    roots: Mapping[str, str | Path] | str | None = None,
                    split_lists: Mapping[str, str | Path] | None = None, **kw) -> list:
    """Load target datasets by name.

    Parameters
    ----------
    targets : str or sequence of str
        Registry names (:func:`mtdtl.targets.list_targets`), comma-separated or a list; ``"demo"``
        expands to every task of the demo corpus ``corpus``.
    corpus : path, optional
        The demo corpus folder (root of every ``demo:<task>``).
    roots : mapping or ``"name:path,name:path"``, optional
        The folder of each real dataset (e.g. ``{"gtzan": "/data/gtzan"}``).
    split_lists : mapping, optional
        Split list per dataset (``reference/*.info`` format).
    """
    from mtdtl.targets import list_targets, load_target

    names = [n.strip() for n in targets.split(",") if n.strip()] if isinstance(targets, str) else list(targets)
    if isinstance(roots, str):
        pairs = [item.split(":", 1) for item in roots.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise MtdtlError(f"target roots {roots!r}: use name:path pairs, comma-separated")
        roots = dict(pairs)
    roots = dict(roots or {})
    out = []
    for n in names:
        if n == "demo" or n.startswith("demo:"):
            if not corpus:
                raise MtdtlError(f"target {n!r} needs the demo corpus folder (corpus=...)")
            expanded = [x for x in list_targets(corpus) if x.startswith("demo:")] if n == "demo" else [n]
            out += [load_target(x, corpus, **kw) for x in expanded]
        else:
            if n not in roots:
                raise MtdtlError(f"target {n!r} needs its dataset folder: roots={{'{n}': '/path/to/{n}'}}")
            out.append(load_target(n, roots[n], split_list=(split_lists or {}).get(n), **kw))
    if not out:
        raise MtdtlError("no target datasets given")
    return out


def _audio_key(target) -> str:
    return f"{Path(target.root).name}-{hashlib.sha1(str(Path(target.root).resolve()).encode()).hexdigest()[:8]}"


def evaluate_transfer(representations: Sequence[Representation], targets: Sequence[Any], *,
                      results: str | Path, repetitions: int = 5, seed: int = 0,
                      cache_dir: str | Path | None = None, progress: bool = True,
                      extractor_kwargs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Evaluate every representation on every target and append the rows to ``results``.

    Parameters
    ----------
    representations : sequence of Representation
    targets : sequence of mtdtl.targets.TargetDataset
    results : path
        The results table (CSV); rows already there are kept and their pairs skipped.
    repetitions : int
        Repetitions of every evaluation (5 in the paper).
    seed : int
        Base seed of splits and probe initialisations.
    cache_dir : path, optional
        Feature cache root (default ``<data dir>/features``).

    Returns
    -------
    pandas.DataFrame
        The whole results table after this call.
    """
    from mtdtl.evaluation.probes import evaluate_probe
    from mtdtl.evaluation.results import ResultsTable, tidy_rows
    from mtdtl.features import extract_dataset, get_extractor

    if not representations:
        raise MtdtlError("no representation to evaluate")
    if not targets:
        raise MtdtlError("no target dataset to evaluate on")
    table = ResultsTable(results)
    by_audio: dict[str, list] = {}
    for t in targets:
        by_audio.setdefault(_audio_key(t), []).append(t)

    for rep in representations:
        todo = [t for t in targets if not table.has(representation=rep.name, target=t.name)]
        if not todo:
            log.info("%s: every target already evaluated, skipped", rep.name)
            continue
        extractor = get_extractor(rep.spec, **dict(extractor_kwargs or {}))
        for key, group in by_audio.items():
            group = [t for t in group if any(t is x for x in todo)]
            if not group:
                continue
            tracks = (pd.concat([t.tracks[["track_id", "path"]] for t in group])
                      .drop_duplicates("track_id").reset_index(drop=True))
            fs = extract_dataset(extractor, tracks, dataset=key, cache_dir=cache_dir, progress=progress)
            if len(fs.skipped):
                log.warning("%s on %s: %d unreadable files skipped", rep.name, key, len(fs.skipped))
            feats = pd.DataFrame(fs.X, index=pd.Index(fs.track_ids.astype(str), name="track_id"))
            for t in group:
                tr = t.tracks[t.tracks["track_id"].astype(str).isin(feats.index)]
                if t.task == "recommendation":
                    from mtdtl.evaluation.recommend import evaluate_recommendation

                    inter = t.interactions[t.interactions["track_id"].astype(str).isin(feats.index)]
                    item_feats = feats.loc[sorted(set(inter["track_id"].astype(str)))]
                    evals = evaluate_recommendation(inter, item_feats, n_repetitions=repetitions, seed=seed)
                else:
                    X = feats.loc[tr["track_id"].astype(str)].to_numpy()
                    split = tr["split"].astype(str).to_numpy()
                    has_split = bool((split == "test").any() and (split == "train").any())
                    groups = tr["group"].astype(str).to_numpy() if "group" in tr and (tr["group"] != "").all() else None
                    y = tr["label"].to_numpy()
                    evals = evaluate_probe(X, y, task=t.task, split=split if has_split else None,
                                           groups=None if has_split else groups,
                                           n_repetitions=repetitions, seed=seed)
                rows = tidy_rows(evals, representation=rep.name, target=t.name, arch=rep.arch,
                                 sources=rep.sources)
                table.append(rows)
                mean = {k: float(np.mean([e[k] for e in evals])) for k in evals[0]}
                log.info("%s on %s: %s", rep.name, t.name, ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    return table.read()
