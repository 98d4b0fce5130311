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
3. appends the tidy rows (:data:`mtdtl.evaluation.results.COLUMNS`: the representation's
   identity from :mod:`mtdtl.runs`, target, task, repetition, split, metric, value, protocol)
   to the results table on disk (one file per run: ``<run>/evaluate/results.csv``).

It resumes: a (run, representation, target, protocol) whose rows are already in the table is
skipped, and extraction reads the cache. Nothing finished is recomputed or overwritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["Representation", "representation_from_run", "baseline_representations", "resolve_targets",
           "evaluate_transfer", "BASELINES"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Representation:
    """A representation to evaluate: its identity, and what builds its extractor.

    Parameters
    ----------
    name : str
        Representation id in the results table: a run id (:attr:`mtdtl.runs.RunSpec.id`) or a
        baseline's name (:func:`mtdtl.runs.baseline_id`, e.g. ``"rand-ss_r-seed0"``, ``"mfcc"``).
    spec : str
        What :func:`mtdtl.features.get_extractor` accepts (checkpoint path, ``"mfcc"``,
        ``"rand:<arch>"``, ``"choi:<hdf5>"``).
    identity : dict
        The identity columns of its result rows (:data:`mtdtl.runs.IDENTITY_COLUMNS`).
    options : dict
        Keyword arguments of its extractor (e.g. the checkpoint whose scaler Rand uses).
    """

    name: str
    spec: str
    identity: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return str(self.identity.get("arch", ""))

    @property
    def sources(self) -> str:
        return str(self.identity.get("sources", ""))

    @property
    def kind(self) -> str:
        return str(self.identity.get("kind", "learned"))


def representation_from_run(run_dir: str | Path) -> Representation:
    """The trained representation of a training run folder (its :class:`~mtdtl.runs.RunSpec`)."""
    from mtdtl.runs import RunSpec

    run_dir = Path(run_dir)
    if not (run_dir / "model.json").is_file():
        raise MtdtlError(f"no checkpoint in {run_dir} (model.json missing); train a model first (02_train)")
    from mtdtl.checkpoint import read_meta

    spec = RunSpec.from_folder(run_dir)
    precision = str(read_meta(run_dir).get("precision") or "")
    return Representation(name=spec.id, spec=str(run_dir), identity={**spec.identity_columns(), "precision": precision})


#: Baseline names :func:`baseline_representations` knows.
BASELINES = ("mfcc", "rand", "rand_arch", "choi", "chance")


def baseline_representations(names: Sequence[str] | str, *, run: Representation | None = None,
                             choi_weights: str | Path | None = None, rand_seed: int = 0) -> list[Representation]:
    """The paper's baselines (Section 4.2) by name, ``mfcc``, ``rand``, ``rand_arch`` and ``choi``, and ``chance``.

    - ``rand`` (the paper's Rand, Figure 8): the base network of Table 3 (SS-R), untrained, from
      a fixed seed: one 256-unit fc-feature, 512 dimensions after mean ‖ std, fed with the
      spectrograms standardised by the store's scaler (taken from ``run``'s checkpoint, whose
      width it also takes). Named ``rand-ss_r-seed<seed>``.
    - ``rand_arch`` (an option, not the paper's): the run's own architecture and sources,
      untrained (for MS-CR@6 with 8 sources, 4,096 dimensions). Named
      ``rand-<arch>-<sources>-seed<seed>``.
    - ``mfcc``; ``choi`` needs the user-supplied ``model_best.hdf5`` (``choi_weights``).
    - ``chance`` (mtdtl's, not the paper's): one constant feature per track, so the probe learns
      only the labels' distribution (the majority class, the training mean): the level below
      which a representation has taught the probe nothing about a task.
    """
    from mtdtl.runs import baseline_id

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if n == "mfcc":
            out.append(Representation("mfcc", "mfcc", {"run": "mfcc", "representation": "mfcc", "kind": "mfcc"}))
        elif n in ("rand", "rand_arch"):
            if run is None:
                raise MtdtlError(f"the {n} baseline needs a trained run (its scaler{', architecture and sources' if n == 'rand_arch' else ''})")
            width = _run_width(run)
            if n == "rand":
                rid = baseline_id("rand", arch="ss_r", seed=rand_seed, width=width)
                ident = {"run": rid, "representation": rid, "kind": "rand", "arch": "ss_r", "sources": "",
                         "seed": rand_seed}
                out.append(Representation(rid, "rand:ss_r", ident, {"checkpoint": run.spec, "seed": rand_seed}))
            else:
                rid = baseline_id("rand", arch=run.arch, sources=run.sources, seed=rand_seed, width=width)
                ident = {"run": rid, "representation": rid, "kind": "rand", "arch": run.arch, "sources": run.sources,
                         "seed": rand_seed}
                out.append(Representation(rid, f"rand:{run.spec}", ident, {"seed": rand_seed}))
        elif n == "chance":
            out.append(Representation("chance", "chance", {"run": "chance", "representation": "chance",
                                                           "kind": "chance"}))
        elif n == "choi":
            if not choi_weights or not Path(choi_weights).is_file():
                raise MtdtlError(f"the choi baseline needs Choi et al.'s model_best.hdf5; not found at {choi_weights!r}")
            out.append(Representation("choi", f"choi:{choi_weights}", {"run": "choi", "representation": "choi",
                                                                       "kind": "choi"}))
        else:
            raise MtdtlError(f"unknown baseline {n!r}; valid: {', '.join(BASELINES)}")
    return out


def _run_width(run: Representation) -> str:
    try:
        from mtdtl.runs import RunSpec

        return RunSpec.from_folder(run.spec).width
    except Exception:  # noqa: BLE001 - a checkpoint without a run record: full width
        return "full"


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
        Split list per dataset (``reference/*.info`` format); default: the study's lists shipped
        with mtdtl (``"study"``; ``None`` for a dataset: no list).
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
            out.append(load_target(n, roots[n], split_list=(split_lists or {}).get(n, "study"), **kw))
    if not out:
        raise MtdtlError("no target datasets given")
    return out


def _audio_key(target) -> str:
    return f"{Path(target.root).name}-{hashlib.sha1(str(Path(target.root).resolve()).encode()).hexdigest()[:8]}"


def evaluate_transfer(representations: Sequence[Representation], targets: Sequence[Any], *,
                      results: str | Path, repetitions: int = 5, seed: int = 0,
                      cache_dir: str | Path | None = None, progress: bool = True,
                      extractor_kwargs: Mapping[str, Any] | None = None, options=None,
                      target_store: Any = None) -> pd.DataFrame:
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
    options : mtdtl.evaluation.protocol.ProtocolOptions, optional
        The evaluation protocol (default: the paper's, :data:`~mtdtl.evaluation.protocol.PAPER`);
        its id goes into every row's ``protocol`` column, and rows of another protocol are not
        taken as this one's.
    target_store : bool, path or None
        Target spectrogram stores (:mod:`mtdtl.store.targets`): each target audio set's dB mel
        is computed once per front end and read by every network representation. ``None``
        (default): on, under ``<data dir>/target_stores``; a path: their parent folder;
        ``False``: off (:func:`mtdtl.features.extract_dataset`).

    Returns
    -------
    pandas.DataFrame
        The whole results table after this call.
    """
    from mtdtl.evaluation.protocol import PAPER, protocol_id
    from mtdtl.evaluation.results import ResultsTable, tidy_rows
    from mtdtl.evaluation.target import evaluate_target
    from mtdtl.features import extract_dataset, get_extractor

    if not representations:
        raise MtdtlError("no representation to evaluate")
    if not targets:
        raise MtdtlError("no target dataset to evaluate on")
    options = PAPER if options is None else options
    protocol = protocol_id(options)
    table = ResultsTable(results)
    by_audio: dict[str, list] = {}
    for t in targets:
        by_audio.setdefault(_audio_key(t), []).append(t)

    for rep in representations:
        todo = [t for t in targets if not table.has(run=rep.identity.get("run", rep.name),
                                                    representation=rep.name, target=t.name, protocol=protocol)]
        if not todo:
            log.info("%s: every target already evaluated, skipped", rep.name)
            continue
        extractor = get_extractor(rep.spec, **{**dict(rep.options), **dict(extractor_kwargs or {})})
        for key, group in by_audio.items():
            group = [t for t in group if any(t is x for x in todo)]
            if not group:
                continue
            tracks = (pd.concat([t.tracks[["track_id", "path"]] for t in group])
                      .drop_duplicates("track_id").reset_index(drop=True))
            fs = extract_dataset(extractor, tracks, dataset=key, cache_dir=cache_dir, progress=progress,
                                 target_store=target_store)
            if len(fs.skipped):
                log.warning("%s on %s: %d unreadable files skipped", rep.name, key, len(fs.skipped))
            feats = pd.DataFrame(fs.X, index=pd.Index(fs.track_ids.astype(str), name="track_id"))
            for t in group:
                evals = evaluate_target(t, feats, options=options, n_repetitions=repetitions, seed=seed)
                rows = tidy_rows(evals, identity={**rep.identity, "representation": rep.name}, target=t.name,
                                 task=t.task, protocol=protocol)
                table.append(rows)
                mean = {k: float(np.mean([e[k] for e in evals])) for k in evals[0] if k != "split"}
                log.info("%s on %s: %s", rep.name, t.name, ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    return table.read()
