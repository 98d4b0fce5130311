"""The study as a sweep: papermill runs of ``02_train`` and ``03_evaluate`` on Dask (Section 4.3).

Kim et al. (2019) trained 425 networks: 48 SS-R runs (8 sources x 6), 25 runs with all 8 sources
(5 multi-source architectures x 5) and 352 runs chosen by Algorithm 2, each evaluated on seven
target datasets five times. A *sweep* is that study drawn as data::

    sweep file (TOML) ─► design (mtdtl.design) ─► [RunSpec] ─► one Dask task per run:
        papermill 02_train ─► papermill 03_evaluate ─► <out>/runs/<run id>/evaluate/results.csv
    ─► baselines once ─► <out>/baselines/results.csv ─► collect ─► <out>/results.csv

A sweep folder::

    <out>/
      sweep.json                 the resolved settings of the last start (a record)
      design.csv                 the design in mtdtl's compact format
      runs/<run id>/             one folder per run (mtdtl.runs.RunSpec.id)
        run.json                 the RunSpec
        02_train.ipynb           executed notebooks (a failing one keeps its traceback)
        03_evaluate.ipynb
        model.safetensors, model.json, train_state.safetensors, log.jsonl, metrics.json, curves.png
        evaluate/results.csv     the run's rows of the results table
        sweep_status.json        running | done | failed, the error's last line, timings
      baselines/results.csv      MFCC / Rand / Choi, evaluated once per sweep
      results.csv                every row, collected (mtdtl.evaluation.results.collect)

Rules
-----
- **Finished** means *results complete*: every (target, metric, repetition) row of the run is in
  its ``evaluate/results.csv`` under the current protocol. A finished run is never submitted
  again, and nothing in its folder is touched.
- A failing run keeps its executed notebook with the traceback and is marked ``failed`` in its
  ``sweep_status.json`` (with the error's last line); the sweep goes on. Failed runs are tried
  again only with ``retry_failed=True`` (``--retry-failed``).
- A sweep killed at any moment (Ctrl-C, ``kill -9``, a lost node) is started again with the same
  command: finished runs are skipped, an interrupted run resumes (training resumes from its
  checkpoint, evaluation skips the rows it has).
- One driver at a time per sweep folder (an exclusive lock on ``<out>/.sweep.lock``).

Dask: one pure task per run (:func:`run_one`: reads its inputs, writes its run folder, returns
a small status dict); the driver only submits futures in design order and gathers them with
``as_completed``. By default a :class:`distributed.LocalCluster` sized to the machine (one run
per worker; on the CPU workers x threads never exceed the cores; one worker per GPU with its own
``CUDA_VISIBLE_DEVICES``); or any running scheduler (``scheduler="tcp://..."``, e.g. from
dask-jobqueue on SLURM; see ``docs/sweep.md``).

Public API: :func:`load_sweep` (:class:`Sweep`), :func:`run_sweep`, :func:`sweep_status`,
:func:`sweep_plan`, :func:`collect_sweep`, :func:`write_sweep`, :func:`run_one` (the task) and
:func:`add_cli` (the ``mtdtl sweep`` subcommands).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import tomllib

from mtdtl.constants import ARCH_IDS, SOURCE_NAMES, WIDTH_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_text
from mtdtl.log import get_logger

__all__ = [
    "PAPER_STUDY",
    "STATES",
    "STATUS_NAME",
    "Sweep",
    "SweepPlan",
    "SweepReport",
    "add_cli",
    "calibrate",
    "collect_sweep",
    "evaluate_baselines",
    "load_sweep",
    "local_cluster_size",
    "missing_rows",
    "run_one",
    "run_sweep",
    "sweep_plan",
    "sweep_status",
    "write_sweep",
]

log = get_logger(__name__)

#: The status file of a run folder (and of ``<out>/baselines``).
STATUS_NAME = "sweep_status.json"
#: States a run can be in.
STATES = ("done", "running", "failed", "pending")
#: The paper's full study (Section 4.3): training clips, validation clips, epochs, batch size.
PAPER_STUDY = {"runs": 425, "n_train": 41_841, "n_valid": 4_649, "epochs": 200, "batch_size": 128}
_LOCK_NAME = ".sweep.lock"
_BASELINES_DIR = "baselines"
_RUNS_DIR = "runs"
_SWEEP_BASELINES = ("mfcc", "rand", "choi")

# ---------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True)
class _Key:
    """One key of the sweep file: its kind, default and help (the schema drives validation,
    defaults and :func:`write_sweep` alike)."""

    kind: str  # str | int | float | path | list_str | list_int | table_str
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None


_SCHEMA: dict[str, dict[str, _Key]] = {
    "": {
        "name": _Key("str", "", "a name for the sweep (default: the file's stem)"),
        "description": _Key("str", "", "one line about the sweep"),
        "out": _Key("path", "", "output folder; relative to this file's folder (default: <file stem>/)"),
        "html": _Key("bool", True, "an HTML copy beside each executed notebook"),
        "kernel": _Key("str", "warm", "warm: each worker keeps one kernel for its notebooks, imports paid once, "
                                      "namespace emptied between notebooks; fresh: a new kernel per notebook",
                       choices=("warm", "fresh")),
        "kernel_notebooks": _Key("int", 20, "kernel = warm: notebooks per kernel before a new one starts",
                                 minimum=1),
        "figure_formats": _Key("list_str", ["png"], "formats of each run's saved figures: png, pdf, svg (the "
                                                    "notebooks' own default is png and pdf)",
                               choices=("png", "pdf", "svg")),
    },
    "data": {
        "demo_size": _Key("str", "", "build (or reuse) the embedded demo corpus and its store of this size: "
                                     "tiny, small, medium, large, full; empty: use store (and corpus)"),
        "demo_seed": _Key("int", 0, "seed of the demo corpus", minimum=0),
        "k": _Key("int", 50, "topics / GMM components per learning source when the demo store is built",
                  minimum=1),
        "corpus": _Key("path", "", "a built corpus folder (the demo targets read it)"),
        "store": _Key("path", "", "a spectrogram store with reduced labels (what 01_preprocess writes)"),
    },
    "design": {
        "kind": _Key("str", "generate", "generate (Algorithm 2), released (the authors' design) or file",
                     choices=("generate", "released", "file")),
        "file": _Key("path", "", "kind = file: a design in mtdtl's compact format or the authors' released format"),
        "budget": _Key("int", 352, "phase-3 runs (Algorithm 2; for released and file: the first so many)",
                       minimum=0),
        "seed": _Key("int", 0, "seed of Algorithm 2's random pick", minimum=0),
        "sources": _Key("list_str", list(SOURCE_NAMES), "the design's learning sources (3 or more)"),
        "archs": _Key("list_str", [a for a in ARCH_IDS if a != "ss_r"], "multi-source architectures of phases 2-3"),
        "ss_repetitions": _Key("int", 6, "phase 1: SS-R runs per source", minimum=0),
        "all_repetitions": _Key("int", 5, "phase 2: runs of each multi-source architecture with all sources",
                                minimum=0),
        "phases": _Key("list_int", [1, 2, 3], "phases to run"),
        "max_runs": _Key("int", 0, "run only the first so many runs of the design (0: all)", minimum=0),
    },
    "train": {
        "epochs": _Key("int", 200, "N, training epochs of every run (paper: 200)", minimum=1),
        "width": _Key("str", "full", "full (Table 3) or tiny", choices=tuple(WIDTH_NAMES)),
        "batch_size": _Key("int", 128, "b (paper: 128)", minimum=2),
        "lr": _Key("float", 2.5e-4, "Adam learning rate (paper: 2.5e-4)", minimum=0),
        "device": _Key("str", "auto", "auto, cuda or cpu"),
        "checkpoint_every": _Key("int", 1, "write the checkpoint every k epochs", minimum=1),
        "params": _Key("table_str", {}, "further 02_train parameters, passed as they are"),
    },
    "evaluate": {
        "targets": _Key("list_str", ["demo"], "target datasets: demo (every task of the demo corpus), "
                                              "demo:<task>, gtzan, fma, eballroom, irmas, emo_arousal, "
                                              "emo_valence, lastfm1k"),
        "target_roots": _Key("table_str", {}, "folder of each real dataset, e.g. {gtzan = \"/data/gtzan\"}"),
        "repetitions": _Key("int", 5, "repetitions of every evaluation (paper: 5)", minimum=1),
        "baselines": _Key("list_str", ["mfcc", "rand"], "evaluated once per sweep: mfcc, rand (untrained SS-R "
                                                        "with the store's scaler), choi"),
        "choi_weights": _Key("path", "", "Choi et al.'s model_best.hdf5 (the choi baseline)"),
        "seed": _Key("int", 0, "base seed of evaluation splits and probes (the same for every run)", minimum=0),
        "params": _Key("table_str", {}, "further 03_evaluate parameters, passed as they are"),
    },
    "dask": {
        "scheduler": _Key("str", "", "address of a running Dask scheduler; empty: a LocalCluster on this machine"),
        "workers": _Key("int", 0, "LocalCluster workers, one run each (0: sized to the machine)", minimum=0),
        "threads_per_worker": _Key("int", 0, "torch / BLAS threads per run (0: cores / workers)", minimum=0),
        "env": _Key("table_str", {}, "environment variables of every run's kernels"),
    },
}


def _demo_sizes() -> tuple[str, ...]:
    try:
        from mtdtl.corpora.demo import SIZES

        return tuple(SIZES)
    except Exception:  # noqa: BLE001 - optional renderer deps missing: the known names
        return ("tiny", "small", "medium", "large", "full")


def _fail(file: Path, where: str, msg: str) -> MtdtlError:
    return MtdtlError(f"{file}: {where}: {msg}")


def _check_value(file: Path, section: str, key: str, spec: _Key, value: Any) -> Any:
    where = f"[{section}] {key}" if section else key
    kind = spec.kind

    def bad(expect: str) -> MtdtlError:
        return _fail(file, where, f"{value!r} is not {expect}; fix it in the sweep file")

    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise bad("a string")
        value = value.strip()
        if spec.choices and value not in spec.choices:
            raise _fail(file, where, f"{value!r} is not one of {', '.join(spec.choices)}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a number")
        value = float(value)
        if spec.minimum is not None and value <= spec.minimum:
            raise _fail(file, where, f"{value} must be > {spec.minimum}")
    elif kind == "list_str":
        if isinstance(value, str):
            value = [v.strip() for v in value.replace("+", ",").split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of names")
        value = [v.strip() for v in value]
        if len(set(value)) != len(value):
            raise _fail(file, where, f"names repeated in {value}")
        if spec.choices and set(value) - set(spec.choices):
            raise _fail(file, where, f"{sorted(set(value) - set(spec.choices))} not among {', '.join(spec.choices)}")
        if spec.choices and not value:
            raise _fail(file, where, "give at least one")
    elif kind == "list_int":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("a list of integers")
    elif kind == "table_str":
        if not isinstance(value, dict):
            raise bad("a table (e.g. {name = \"value\"})")
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                raise _fail(file, f"{where}.{k}", f"{v!r}: values must be strings, numbers or booleans")
    if kind == "int" and spec.minimum is not None and value < spec.minimum:
        raise _fail(file, where, f"{value} must be >= {int(spec.minimum)}")
    return value


def _resolve_path(text: str, base: Path) -> Path | None:
    if not text:
        return None
    p = Path(os.path.expandvars(os.path.expanduser(text)))
    return p if p.is_absolute() else (base / p)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file.

    Attributes
    ----------
    file : Path
        The sweep file.
    name : str
    out : Path
        The sweep folder (absolute).
    settings : dict
        ``{section: {key: value}}`` for every key of the schema, defaults filled in
        (top-level keys under ``""``); paths as written.
    given : frozenset of str
        ``"section.key"`` of the keys the file sets.
    """

    file: Path
    name: str
    out: Path
    settings: Mapping[str, Mapping[str, Any]]
    given: frozenset = frozenset()

    # -- access ------------------------------------------------------------------------------
    def __getitem__(self, section: str) -> Mapping[str, Any]:
        return self.settings[section]

    def path(self, section: str, key: str) -> Path | None:
        """A path key resolved (``~``, ``$VARS``, relative to the sweep file's folder)."""
        return _resolve_path(self.settings[section][key], self.file.parent)

    @property
    def runs_dir(self) -> Path:
        return self.out / _RUNS_DIR

    @property
    def baselines_dir(self) -> Path:
        return self.out / _BASELINES_DIR

    @property
    def results_path(self) -> Path:
        return self.out / "results.csv"

    def run_folder(self, spec) -> Path:
        """``<out>/runs/<run id>``."""
        return spec.folder(self.runs_dir)

    # -- data ----------------------------------------------------------------------------------
    def data_paths(self) -> tuple[Path | None, Path]:
        """``(corpus, store)``: for a demo sweep the default folders of :mod:`mtdtl.paths` (built
        by :meth:`prepare_data`), else the paths of the file."""
        from mtdtl.paths import demo_corpus_dir, stores_dir

        d = self["data"]
        if d["demo_size"]:
            corpus = self.path("data", "corpus") or demo_corpus_dir(d["demo_size"], d["demo_seed"])
            store = self.path("data", "store") or stores_dir() / corpus.name
            return corpus, store
        return self.path("data", "corpus"), self.path("data", "store")

    def prepare_data(self, *, progress: bool = True) -> tuple[Path | None, Path]:
        """Build (or reuse) the demo corpus and store; check that every input exists.

        Raises
        ------
        MtdtlError
            A missing store, corpus, design file, dataset folder or weights file, or a store
            without the reduced labels of a source of the design; the message names the key.
        """
        d = self["data"]
        corpus, store = self.data_paths()
        if d["demo_size"]:
            from mtdtl.corpora.demo import build_demo_corpus
            from mtdtl.walkthrough import ensure_demo_store

            corpus = Path(build_demo_corpus(root=corpus, size=d["demo_size"], seed=d["demo_seed"], progress=progress))
            store = ensure_demo_store(size=d["demo_size"], seed=d["demo_seed"], k=d["k"], corpus=corpus, store=store,
                                      progress=progress)
        self.check_inputs(corpus=corpus, store=store)
        return corpus, Path(store)

    def check_inputs(self, *, corpus: Path | None, store: Path) -> None:
        """Every input folder and file exists (see :meth:`prepare_data`)."""
        f = self.file
        if not (Path(store) / "store.json").is_file():
            raise _fail(f, "[data] store", f"{store} is not a finished spectrogram store (no store.json); run "
                                           "01_preprocess (or mtdtl demo) first, or set [data] demo_size")
        labels = Path(store) / "labels"
        missing = [s for s in self.design_sources() if s != "self" and not (labels / f"{s}.npz").is_file()]
        if missing:
            raise _fail(f, "[design] sources", f"the store {store} has no reduced labels for {missing} "
                                               f"(no {labels}/<source>.npz); preprocess them or leave them out")
        if self._needs_corpus() and not (corpus and (Path(corpus) / "targets" / "tasks.json").is_file()):
            raise _fail(f, "[evaluate] targets", f"the demo targets need the demo corpus folder; [data] corpus = "
                                                 f"{corpus!s} has no targets/tasks.json")
        for name in self["evaluate"]["targets"]:
            if not name.startswith("demo"):
                root = _resolve_path(str(self["evaluate"]["target_roots"].get(name, "")), f.parent)
                if root is None or not root.is_dir():
                    raise _fail(f, f"[evaluate] target_roots.{name}",
                                f"{root or 'not set'}: the folder of the {name} dataset is needed")
        if "choi" in self["evaluate"]["baselines"]:
            w = self.path("evaluate", "choi_weights")
            if w is None or not w.is_file():
                raise _fail(f, "[evaluate] choi_weights", f"{w or 'not set'}: the choi baseline needs Choi et al.'s "
                                                          "model_best.hdf5")
        if self["design"]["kind"] == "file":
            p = self.path("design", "file")
            if p is None or not p.is_file():
                raise _fail(f, "[design] file", f"{p or 'not set'}: no such design file")

    def _needs_corpus(self) -> bool:
        return any(t == "demo" or t.startswith("demo:") for t in self["evaluate"]["targets"])

    # -- design --------------------------------------------------------------------------------
    def design_sources(self) -> tuple[str, ...]:
        if self["design"]["kind"] == "released":
            return tuple(SOURCE_NAMES)
        return tuple(self["design"]["sources"])

    def design(self):
        """The :class:`mtdtl.design.Design` the file asks for."""
        from mtdtl import design as D

        g = self["design"]
        kind = g["kind"]
        given = lambda k: f"design.{k}" in self.given
        if kind == "generate":
            return D.generate_design(budget=g["budget"], seed=g["seed"], sources=g["sources"], archs=g["archs"],
                                     ss_repetitions=g["ss_repetitions"], all_repetitions=g["all_repetitions"])
        if kind == "released":
            design = D.released_design(budget=g["budget"], fixed_phases=False)
            return D.with_fixed_phases(design, ss_repetitions=g["ss_repetitions"],
                                       all_repetitions=g["all_repetitions"])
        path = self.path("design", "file")
        if path is None or not path.is_file():
            raise _fail(self.file, "[design] file", f"{path or 'not set'}: no such design file")
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        if first.startswith("# mtdtl design"):
            design = D.read_design(path)
            if given("budget"):
                design = design.head(min(g["budget"], len(design.phase3)))
            if given("ss_repetitions") or given("all_repetitions"):
                design = D.with_fixed_phases(design, ss_repetitions=g["ss_repetitions"],
                                             all_repetitions=g["all_repetitions"])
            return design
        return D.read_released(path, sources=g["sources"], archs=g["archs"], ss_repetitions=g["ss_repetitions"],
                               all_repetitions=g["all_repetitions"], budget=g["budget"] if given("budget") else None)

    def runspecs(self, design=None) -> list:
        """The sweep's runs (:class:`mtdtl.runs.RunSpec`), in design order, with ``.phase`` and
        ``.order`` of each in :meth:`run_table`."""
        return [r for r, _ in self._runs(design)]

    def _runs(self, design=None) -> list[tuple[Any, dict]]:
        design = design if design is not None else self.design()
        g, t = self["design"], self["train"]
        _, store = self.data_paths()
        keep = design.runs["phase"].isin(g["phases"]).to_numpy()
        specs = design.to_runspecs(epochs=t["epochs"], width=t["width"], store=str(store) if store else None,
                                   batch_size=t["batch_size"], lr=t["lr"])
        rows = design.runs.to_dict("records")
        out = [(s, {"order": int(r["order"]), "phase": int(r["phase"]), "step": int(r["step"])})
               for s, r, k in zip(specs, rows, keep) if k]
        if g["max_runs"]:
            out = out[: g["max_runs"]]
        seen: dict[str, int] = {}
        for s, info in out:
            if s.id in seen:
                raise _fail(self.file, "[design]", f"run {s.id} appears twice (design orders {seen[s.id]} and "
                                                   f"{info['order']})")
            seen[s.id] = info["order"]
        return out

    def run_table(self, design=None) -> pd.DataFrame:
        """One row per run: order, phase, step, run, arch, sources, n_sources, seed, epochs, folder."""
        rows = [{**info, "run": s.id, "arch": s.arch, "sources": s.sources_key, "n_sources": s.n_sources,
                 "seed": s.seed, "epochs": s.epochs, "folder": str(self.run_folder(s))}
                for s, info in self._runs(design)]
        cols = ["order", "phase", "step", "run", "arch", "sources", "n_sources", "seed", "epochs", "folder"]
        return pd.DataFrame(rows, columns=cols)

    # -- evaluation ------------------------------------------------------------------------------
    def expected_targets(self, corpus: Path | None = None) -> list[tuple[str, str]]:
        """``(target, metric)`` of every target a run is evaluated on (``demo`` expanded)."""
        from mtdtl.targets import TARGETS
        from mtdtl.targets.base import METRICS

        out: list[tuple[str, str]] = []
        for name in self["evaluate"]["targets"]:
            if name == "demo" or name.startswith("demo:"):
                from mtdtl.targets.demo import demo_tasks

                if corpus is None:
                    corpus = self.data_paths()[0]
                if corpus is None:
                    raise _fail(self.file, "[evaluate] targets", f"{name!r} needs [data] corpus or demo_size")
                tasks = demo_tasks(corpus)
                names = sorted(tasks) if name == "demo" else [name[5:]]
                for task in names:
                    if task not in tasks:
                        raise _fail(self.file, "[evaluate] targets", f"{name!r}: no task {task!r} in {corpus} "
                                                                     f"(tasks: {', '.join(sorted(tasks))})")
                    out.append((f"demo:{task}", METRICS[tasks[task]["type"]]))
            else:
                out.append((name, TARGETS[name].metric))
        return list(dict.fromkeys(out))

    def baseline_names(self) -> list[str]:
        """Representation ids of the sweep's baselines (e.g. ``mfcc``, ``rand-ss_r-seed0-tiny``)."""
        from mtdtl.runs import baseline_id

        names = []
        for b in self["evaluate"]["baselines"]:
            if b == "rand":
                names.append(baseline_id("rand", arch="ss_r", seed=0, width=self["train"]["width"]))
            else:
                names.append(baseline_id(b))
        return names

    # -- writing -------------------------------------------------------------------------------
    def to_toml(self) -> str:
        """The sweep as a commented TOML file (every key, defaults included)."""
        return _to_toml(self.settings, title=self.settings[""].get("description") or self.name)


def sweeps_dir() -> Path:
    """The ``papermill_runs/`` folder of this checkout, where the sweep files live
    (``$MTDTL_SWEEPS`` overrides it)."""
    env = os.environ.get("MTDTL_SWEEPS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "papermill_runs"


#: The sweep files shipped with the package (copies of the repository's papermill_runs/*.toml), so
#: that ``mtdtl study`` and ``mtdtl sweep run debug`` work from a non-editable install too.
PACKAGED_SWEEPS = Path(__file__).resolve().parent / "data" / "sweeps"


def find_sweep(name_or_path: str | os.PathLike) -> Path:
    """A sweep file by path, or by name in :func:`sweeps_dir` (``"debug"`` -> ``papermill_runs/debug.toml``),
    else among the sweep files shipped with the package."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p.resolve()
    text = str(name_or_path)
    if os.sep not in text and not text.endswith(".toml"):
        for folder in (sweeps_dir(), PACKAGED_SWEEPS):
            q = folder / f"{text}.toml"
            if q.is_file():
                return q.resolve()
    known = sorted(f.stem for f in sweeps_dir().glob("*.toml")) if sweeps_dir().is_dir() else []
    raise MtdtlError(f"sweep file {p} not found; give a path, or a name of {sweeps_dir()}: {', '.join(known) or 'none'}")


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a sweep file (TOML); ``path`` may be a name of :func:`sweeps_dir` (``"debug"``).

    Every key is checked before any work: unknown sections or keys, wrong types, values out of
    range, contradictions (``demo_size`` and ``store`` both empty, unknown sources, targets or
    baselines). Paths are checked for existence later, by :meth:`Sweep.prepare_data` (a plan
    works without the data).

    Raises
    ------
    MtdtlError
        Naming the file and the key, with what to do.
    """
    file = find_sweep(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise MtdtlError(f"{file} is not valid TOML: {e}") from None
    settings: dict[str, dict[str, Any]] = {}
    given: set[str] = set()
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    unknown = sorted(set(tables) - set(_SCHEMA) - {""})
    if unknown:
        raise MtdtlError(f"{file}: unknown section(s) {['[' + u + ']' for u in unknown]}; valid: "
                         f"{', '.join('[' + s + ']' for s in _SCHEMA if s)}")
    for section, schema in _SCHEMA.items():
        values = top if section == "" else tables.get(section, {})
        bad = sorted(set(values) - set(schema))
        if bad:
            where = f"[{section}]" if section else "the top level"
            raise MtdtlError(f"{file}: unknown key(s) {bad} in {where}; valid: {', '.join(schema)}")
        out = {}
        for key, spec in schema.items():
            if key in values:
                out[key] = _check_value(file, section, key, spec, values[key])
                given.add(f"{section}.{key}" if section else key)
            else:
                out[key] = json.loads(json.dumps(spec.default))
        settings[section] = out
    # a shipped sweep file writes under ./papermill_runs, never into the installed package
    base = Path.cwd() / "papermill_runs" if file.parent == PACKAGED_SWEEPS else file.parent
    sweep = Sweep(file=file, name=settings[""]["name"] or file.stem,
                  out=_resolve_path(settings[""]["out"] or file.stem, base).resolve(),
                  settings=settings, given=frozenset(given))
    _validate(sweep)
    return sweep


def _validate(sweep: Sweep) -> None:
    """Cross-field checks of a sweep (no file system access)."""
    from mtdtl.design import MULTI_SOURCE_ARCHS
    from mtdtl.targets import TARGETS
    from mtdtl.transfer import BASELINES

    f, d, g, t, e = sweep.file, sweep["data"], sweep["design"], sweep["train"], sweep["evaluate"]
    if d["demo_size"]:
        if d["demo_size"] not in _demo_sizes():
            raise _fail(f, "[data] demo_size", f"{d['demo_size']!r} is not a demo size; valid: {', '.join(_demo_sizes())}")
    elif not d["store"]:
        raise _fail(f, "[data]", "set demo_size (the embedded demo corpus) or store (a spectrogram store "
                                 "from 01_preprocess)")
    if g["kind"] != "released":
        unknown = [s for s in g["sources"] if s not in SOURCE_NAMES]
        if unknown:
            raise _fail(f, "[design] sources", f"unknown source(s) {unknown}; valid: {', '.join(SOURCE_NAMES)}")
        if len(g["sources"]) < 3:
            raise _fail(f, "[design] sources", f"{g['sources']}: a design needs at least 3 sources")
    bad = [a for a in g["archs"] if a not in MULTI_SOURCE_ARCHS]
    if bad or not g["archs"]:
        raise _fail(f, "[design] archs", f"{g['archs']}: choose among {', '.join(MULTI_SOURCE_ARCHS)}")
    if not g["phases"] or any(p not in (1, 2, 3) for p in g["phases"]):
        raise _fail(f, "[design] phases", f"{g['phases']}: a non-empty list of 1, 2, 3")
    if g["kind"] == "file" and not g["file"]:
        raise _fail(f, "[design] file", "kind = \"file\" needs file = \"<design csv>\"")
    if g["kind"] != "file" and g["file"]:
        raise _fail(f, "[design] file", f"a design file is read only with kind = \"file\" (kind is {g['kind']!r})")
    if g["kind"] == "generate":
        from mtdtl.design import candidate_runs

        n = len(candidate_runs(sources=g["sources"], archs=g["archs"]))
        if g["budget"] > n:
            raise _fail(f, "[design] budget", f"{g['budget']} > {n} phase-3 candidates of these sources and "
                                              "architectures")
    if g["kind"] == "released" and g["budget"] > 600:
        raise _fail(f, "[design] budget", f"{g['budget']}: the released design has 600 phase-3 runs")
    if t["device"] not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", t["device"]):
        raise _fail(f, "[train] device", f"{t['device']!r}: auto, cpu, cuda or cuda:<n>")
    for name in e["targets"]:
        if not (name == "demo" or name.startswith("demo:") or name in TARGETS):
            raise _fail(f, "[evaluate] targets", f"unknown target {name!r}; valid: demo, demo:<task>, "
                                                 f"{', '.join(TARGETS)}")
    for b in e["baselines"]:
        if b == "rand_arch":
            raise _fail(f, "[evaluate] baselines", "rand_arch is the run's own architecture untrained (one per "
                                                   "run): evaluate it in 03_evaluate; a sweep takes mfcc, rand, choi")
        if b == "chance":
            raise _fail(f, "[evaluate] baselines", "chance is 03_evaluate's reference level (the labels' distribution "
                                                   "alone), not a baseline of the study's analysis; a sweep takes "
                                                   "mfcc, rand, choi")
        if b not in BASELINES:
            raise _fail(f, "[evaluate] baselines", f"unknown baseline {b!r}; valid: {', '.join(_SWEEP_BASELINES)}")
    extra = set(e["target_roots"]) - set(e["targets"])
    if extra:
        raise _fail(f, "[evaluate] target_roots", f"{sorted(extra)} are not among the targets {e['targets']}")
    reserved_train = {"arch", "sources", "seed", "epochs", "width", "batch_size", "lr", "store", "out_dir", "device",
                      "checkpoint_every", "max_steps", "demo_size"}
    clash = reserved_train & set(t["params"])
    if clash:
        raise _fail(f, "[train] params", f"{sorted(clash)} are set by the sweep itself (use the [train] keys)")
    reserved_eval = {"run_dir", "arch", "sources", "epochs", "width", "store", "corpus", "size", "seed", "targets",
                     "target_roots", "repetitions", "baselines", "choi_weights", "out_dir"}
    clash = reserved_eval & set(e["params"])
    if clash:
        raise _fail(f, "[evaluate] params", f"{sorted(clash)} are set by the sweep itself (use the [evaluate] keys)")


# -- a tiny TOML writer (tomllib reads, nothing in the standard library writes) -------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, os.PathLike):
        return _toml_value(str(v))
    raise MtdtlError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _to_toml(settings: Mapping[str, Mapping[str, Any]], *, title: str = "") -> str:
    lines = [f"# mtdtl sweep file{': ' + title if title else ''} (docs/sweep.md)",
             "# mtdtl sweep plan|run|status|collect <this file>"]
    for section, schema in _SCHEMA.items():
        values = settings.get(section, {})
        lines.append("")
        if section:
            lines.append(f"[{section}]")
        for key, spec in schema.items():
            if key not in values:
                continue
            lines.append(f"{key} = {_toml_value(values[key])}  # {spec.help}")
    return "\n".join(lines) + "\n"


def write_sweep(path: str | os.PathLike, *, name: str = "", description: str = "", out: str = "",
                template: str | os.PathLike | Sweep | None = None, options: Mapping[str, Any] | None = None,
                **sections: Mapping[str, Any]) -> Path:
    """Write a sweep file (atomically) and validate it by reading it back.

    Parameters
    ----------
    path : path
        The ``.toml`` file to write.
    name, description, out :
        Top-level keys (``out`` relative to the file's folder).
    template : path, name or Sweep, optional
        Start from this sweep's settings (its paths made absolute); ``options`` and ``sections``
        override them key by key.
    options : dict, optional
        The other top-level keys: ``html``, ``kernel``, ``kernel_notebooks``, ``figure_formats``.
    **sections : dict
        ``data={...}``, ``design={...}``, ``train={...}``, ``evaluate={...}``, ``dask={...}``:
        keys of the sweep file format (docs/sweep.md); keys left out take the template's values,
        else their defaults.

    Returns
    -------
    Path
        The file. A bad value raises :class:`MtdtlError` and leaves no file behind.
    """
    path = Path(path)
    unknown = sorted(set(sections) - set(_SCHEMA))
    if unknown:
        raise MtdtlError(f"write_sweep: unknown section(s) {unknown}; valid: {', '.join(s for s in _SCHEMA if s)}")
    settings: dict[str, dict[str, Any]] = {"": {k: v for k, v in
                                                (("name", name), ("description", description), ("out", out)) if v}}
    bad = sorted(set(options or {}) - (set(_SCHEMA[""]) - {"name", "description", "out"}))
    if bad:
        raise MtdtlError(f"write_sweep: unknown option(s) {bad}; valid: html, kernel, kernel_notebooks, "
                         "figure_formats")
    base: dict[str, dict[str, Any]] = {}
    if template is not None:
        tpl = template if isinstance(template, Sweep) else load_sweep(template)
        settings[""].update({k: v for k, v in tpl.settings[""].items()
                             if k not in ("name", "description", "out") and k in tpl.given})
        base = {sec: {k: v for k, v in vals.items() if sec and f"{sec}.{k}" in tpl.given}
                for sec, vals in tpl.settings.items() if sec}
        for sec, key in (("data", "corpus"), ("data", "store"), ("design", "file"), ("evaluate", "choi_weights")):
            if base.get(sec, {}).get(key):
                base[sec][key] = str(tpl.path(sec, key))
        if base.get("evaluate", {}).get("target_roots"):
            base["evaluate"]["target_roots"] = {k: str(_resolve_path(str(v), tpl.file.parent))
                                                for k, v in base["evaluate"]["target_roots"].items()}
    settings[""].update(options or {})
    for section in _SCHEMA:
        if section:
            merged = {**base.get(section, {}), **dict(sections.get(section, {}))}
            settings[section] = {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, os.PathLike) else v)
                                 for k, v in merged.items()}
    text = _to_toml(settings, title=description or name)
    tmp = path.with_name(f".{path.name}.check.toml")
    try:
        atomic_write_text(tmp, text)
        load_sweep(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(path, text)
    return path


def sweep_from_design(*, budget: int, seed: int = 0, repetitions: str | tuple[int, int] = (6, 5),
                      sources: str | Iterable[str] = SOURCE_NAMES, design: str | os.PathLike = "",
                      template: str | os.PathLike = "paper", out: str | os.PathLike | None = None,
                      name: str = "") -> Path:
    """Write the sweep file of a design (what ``04_design`` does): the template's data, training,
    evaluation and Dask settings with this design.

    Parameters
    ----------
    budget, seed :
        Algorithm 2's phase-3 runs and seed (for an imported design: its first ``budget`` runs).
    repetitions : "ss,all" or (int, int)
        Phase-1 SS-R runs per source, phase-2 runs per architecture with all sources (paper: 6, 5).
    sources : str or list
        The design's learning sources (comma-separated or a list).
    design : path, optional
        A design file to import (mtdtl's compact format or the authors' released format);
        empty: generate with Algorithm 2.
    template : name or path
        The sweep whose other settings are kept (``"paper"``, ``"debug"`` or a file).
    out : path, optional
        The sweep file to write; default ``design-b<budget>-seed<seed>.toml`` beside the template.
    name : str, optional
        The sweep's name (its logs and progress bar); default: the file's stem.

    Returns
    -------
    Path
        The written (and validated) sweep file.
    """
    if isinstance(repetitions, str):
        try:
            ss, al = (int(x) for x in repetitions.replace("+", ",").split(","))
        except ValueError:
            raise MtdtlError(f"repetitions={repetitions!r}: give 'ss,all', e.g. '6,5' (the paper's)") from None
    else:
        ss, al = (int(x) for x in repetitions)
    src = [s.strip() for s in sources.split(",") if s.strip()] if isinstance(sources, str) else list(sources)
    tpl = load_sweep(template)
    stem = f"design-b{budget}-seed{seed}" if not design else f"design-{Path(design).stem}-b{budget}"
    path = Path(out) if out else tpl.file.parent / f"{stem}.toml"
    spec: dict[str, Any] = {"kind": "file" if design else "generate", "budget": int(budget), "seed": int(seed),
                            "sources": src, "ss_repetitions": ss, "all_repetitions": al}
    if design:
        spec["file"] = str(Path(design).expanduser().resolve())
    return write_sweep(path, template=tpl, name=name or path.stem,
                       description=f"{'imported ' + Path(design).name if design else 'Algorithm 2'}, budget {budget}, "
                                   f"seed {seed}, repetitions {ss},{al} (04_design; template {tpl.name})",
                       out=path.stem, design=spec)


# ---------------------------------------------------------------------------------------------
# run state


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _read_status(folder: Path) -> dict:
    f = Path(folder) / STATUS_NAME
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "pending", "error": f"{f} unreadable"}


def _write_status(folder: Path, status: Mapping[str, Any]) -> None:
    atomic_write_text(Path(folder) / STATUS_NAME, json.dumps(dict(status), indent=1, default=str) + "\n")


def missing_rows(results_csv: str | os.PathLike, *, run: str, representation: str | None = None,
                 targets: Iterable[tuple[str, str]], repetitions: int, protocol: str | None = None) -> list[tuple]:
    """The ``(target, metric, repetition)`` rows a results file still lacks.

    A run (or baseline) is finished when this is empty: every target x metric x repetition row
    is present, under the current protocol (:data:`mtdtl.evaluation.protocol.PROTOCOL`).
    """
    from mtdtl.evaluation.protocol import PROTOCOL
    from mtdtl.evaluation.results import ResultsTable

    want = {(t, m, r) for t, m in targets for r in range(int(repetitions))}
    path = Path(results_csv)
    if not path.is_file():
        return sorted(want)
    try:
        df = ResultsTable(path).read()
    except MtdtlError as e:
        log.warning("%s", e)
        return sorted(want)
    df = df[(df["run"] == run) & (df["representation"] == (representation or run))
            & (df["protocol"] == (protocol or PROTOCOL)) & df["value"].notna()]
    have = set(zip(df["target"], df["metric"], df["repetition"].astype(int)))
    return sorted(want - have)


def _lock_held(out: Path) -> bool:
    """Whether a sweep driver holds ``<out>/.sweep.lock`` now."""
    import fcntl

    lock = out / _LOCK_NAME
    if not lock.exists():
        return False
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def _driver_lock(out: Path):
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / _LOCK_NAME, "a+")  # noqa: SIM115 - held open for the whole sweep
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip()
            raise MtdtlError(f"another sweep driver is running on {out} ({who or 'pid unknown'}); wait for it, "
                             "or stop it first (its finished runs are kept)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def _state_of(folder: Path, missing: list, running_possible: bool) -> tuple[str, dict]:
    st = _read_status(folder)
    if not missing:
        return "done", st
    state = st.get("state", "")
    if state == "failed":
        return "failed", st
    if state == "running" and running_possible:
        return "running", st
    if state in ("running", "done"):
        st = {**st, "note": "interrupted" if state == "running" else "results incomplete"}
    return "pending", st


def sweep_status(sweep_file: str | os.PathLike | Sweep) -> pd.DataFrame:
    """State of every run of a sweep, and of its baselines (last row, ``kind == "baselines"``).

    Returns
    -------
    pd.DataFrame
        One row per run in design order: ``order, phase, run, arch, sources, n_sources, seed,
        state`` (done / running / failed / pending), ``missing`` (result rows still missing),
        ``error`` (the failure's last line), ``note`` (``interrupted`` for a run whose driver
        died), ``train_s, evaluate_s`` (notebook wall times of a finished run), ``folder``,
        ``kind`` (``run``).
    """
    sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
    corpus, _ = sweep.data_paths()
    targets = sweep.expected_targets(corpus) if (not sweep._needs_corpus() or (corpus and corpus.is_dir())) else None
    reps = sweep["evaluate"]["repetitions"]
    running_possible = _lock_held(sweep.out)
    rows = []
    table = sweep.run_table()
    for r in table.to_dict("records"):
        folder = Path(r["folder"])
        if targets is None:
            missing = ["unknown: the corpus is not built"]
        else:
            missing = missing_rows(folder / "evaluate" / "results.csv", run=r["run"], targets=targets,
                                   repetitions=reps)
        state, st = _state_of(folder, missing, running_possible)
        rows.append({**{k: r[k] for k in ("order", "phase", "run", "arch", "sources", "n_sources", "seed")},
                     "state": state, "missing": len(missing), "error": st.get("error", "") if state == "failed" else "",
                     "note": st.get("note", ""), "train_s": st.get("train_s"), "evaluate_s": st.get("evaluate_s"),
                     "folder": str(folder), "kind": "run"})
    if sweep["evaluate"]["baselines"]:
        bdir = sweep.baselines_dir
        if targets is None:
            missing = ["unknown"]
        else:
            missing = [m for b in sweep.baseline_names()
                       for m in missing_rows(bdir / "results.csv", run=b, targets=targets, repetitions=reps)]
        state, st = _state_of(bdir, missing, running_possible)
        rows.append({"order": len(table) + 1, "phase": 0, "run": "baselines", "arch": "",
                     "sources": ",".join(sweep.baseline_names()), "n_sources": 0, "seed": 0, "state": state,
                     "missing": len(missing), "error": st.get("error", "") if state == "failed" else "",
                     "note": st.get("note", ""), "train_s": None, "evaluate_s": st.get("evaluate_s"),
                     "folder": str(bdir), "kind": "baselines"})
    return pd.DataFrame(rows)


def format_status(status: pd.DataFrame, *, max_pending: int = 10) -> str:
    """Counts per state, then the runs not done: every failed and running one (with the
    failure's last line), the first ``max_pending`` pending ones."""
    counts = status["state"].value_counts().reindex(list(STATES), fill_value=0)
    head = "  ".join(f"{s} {int(counts[s])}" for s in STATES) + f"  (of {len(status)})"
    todo = status[status["state"] != "done"]
    if todo.empty:
        return head + "\nevery run is done"
    lines = [head]
    pending = todo[todo["state"] == "pending"]
    shown = pd.concat([todo[todo["state"] != "pending"], pending.head(max_pending)]).sort_values("order")
    for r in shown.itertuples():
        extra = r.error or r.note or (f"{r.missing} result rows missing" if r.state == "pending" and r.missing else "")
        lines.append(f"  {r.state:8s} {r.order:4d} {r.run}" + (f"  -- {extra}" if extra else ""))
    if len(pending) > max_pending:
        lines.append(f"  ... and {len(pending) - max_pending} more pending (status --all lists every run)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the task


def _last_line(err: BaseException) -> str:
    """The error's last line: for a notebook failure ``Ename: evalue`` of the failing cell."""
    cause = err.__cause__
    if cause is not None and hasattr(cause, "ename"):
        lines = [ln for ln in str(getattr(cause, "evalue", "")).strip().splitlines() if ln.strip()]
        return f"{cause.ename}: {lines[-1] if lines else ''}".strip()
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None]):
    """Set environment variables for the kernels this task starts (one task per worker); a value
    of None removes the variable."""
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = str(v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Environment variables a Dask worker sets for itself that the sweep's kernels must not inherit:
#: the nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` (distributed's ``pre-spawn-environ``) makes glibc hand
#: memory back after every large free, and doubled the time of 03_evaluate's probes (measured:
#: docs/sweep.md). A sweep file's ``[dask] env`` may still set it.
_WORKER_ONLY_ENV = ("MALLOC_TRIM_THRESHOLD_",)


def _task_env(job: Mapping[str, Any]) -> dict:
    env = {"THP_MEM_ALLOC_ENABLE": "1", **{k: None for k in _WORKER_ONLY_ENV},
           **{k: str(v) for k, v in job.get("env", {}).items()}}
    gpus = job.get("gpus") or []
    if gpus:
        try:
            import zlib

            from distributed import get_worker

            name = get_worker().name
            index = int(name) if str(name).isdigit() else zlib.crc32(str(name).encode())
        except (ImportError, ValueError):
            index = 0
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[index % len(gpus)])
    return env


def _train_finished(folder: Path, epochs: int) -> bool:
    f = folder / "metrics.json"
    if not f.is_file():
        return False
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    return bool(m.get("finished")) and int(m.get("epochs", -1)) == int(epochs)


def _cell_seconds(notebook: Path, needle: str) -> float | None:
    """Wall time papermill recorded for the first code cell containing ``needle``."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for c in nb.get("cells", []):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "code" and needle in src:
            return c.get("metadata", {}).get("papermill", {}).get("duration")
    return None


def _html_kw(job: Mapping[str, Any]) -> dict:
    import inspect

    from mtdtl.notebooks import run_notebook

    return {"html": bool(job.get("html", True))} if "html" in inspect.signature(run_notebook).parameters else {}


def _kernel_kw(job: Mapping[str, Any], env: Mapping[str, str]) -> dict:
    """``kernel=`` for :func:`mtdtl.notebooks.run_notebook`: this worker thread's warm kernel for the
    run's environment (sweep key ``kernel = "warm"``), or nothing (a fresh kernel per notebook)."""
    if job.get("kernel", "fresh") != "warm":
        return {}
    from mtdtl.notebooks import warm_kernel

    return {"kernel": warm_kernel(env=dict(env), max_notebooks=int(job.get("kernel_notebooks", 20)))}


def run_one(job: Mapping[str, Any]) -> dict:
    """Run one RunSpec: ``02_train`` then ``03_evaluate`` through papermill (the Dask task).

    A pure function of its input: reads the store and the corpus, writes only the run folder,
    returns the run's status. It never raises for a failing run: the status says ``failed``,
    with the error's last line, and the executed notebook keeps the traceback.

    Parameters
    ----------
    job : dict
        Made by the driver (:func:`run_sweep`): ``run`` (id), ``spec`` (RunSpec fields),
        ``folder``, ``train`` and ``evaluate`` (notebook parameters), ``targets`` (``[target,
        metric]`` pairs), ``repetitions``, ``env`` and ``gpus``.

    Returns
    -------
    dict
        ``run, state`` (done / failed), ``error``, ``train_s, evaluate_s`` (notebook wall times),
        ``train_cell_s, evaluate_cell_s`` (the train / evaluate cells alone), ``host``, ``pid``.
    """
    from mtdtl.notebooks import run_notebook
    from mtdtl.runs import RUN_FILE, RunSpec

    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    spec = RunSpec.from_dict(dict(job["spec"]))
    if not (folder / RUN_FILE).is_file():
        spec.write(folder)
    previous = _read_status(folder)
    status: dict[str, Any] = {"run": spec.id, "state": "running", "host": socket.gethostname(), "pid": os.getpid(),
                              "started": _now(), "attempt": int(previous.get("attempt", 0)) + 1}
    _write_status(folder, status)
    t0 = time.perf_counter()
    try:
        env = _task_env(job)
        with _environment(env):
            kw = {**_html_kw(job), **_kernel_kw(job, env)}
            if _train_finished(folder, spec.epochs) and (folder / "02_train.ipynb").is_file():
                log.info("%s: training already finished, not run again", spec.id)
            else:
                run_notebook("02_train", folder / "02_train.ipynb", parameters=dict(job["train"]), cwd=folder,
                             progress=False, **kw)
                status["train_s"] = round(time.perf_counter() - t0, 3)
                status["train_cell_s"] = _cell_seconds(folder / "02_train.ipynb", "train(config)")
            t1 = time.perf_counter()
            run_notebook("03_evaluate", folder / "03_evaluate.ipynb", parameters=dict(job["evaluate"]), cwd=folder,
                         progress=False, **kw)
            status["evaluate_s"] = round(time.perf_counter() - t1, 3)
            status["evaluate_cell_s"] = _cell_seconds(folder / "03_evaluate.ipynb", "evaluate_transfer(")
        missing = missing_rows(folder / "evaluate" / "results.csv", run=spec.id,
                               targets=[tuple(x) for x in job["targets"]], repetitions=job["repetitions"])
        if missing:
            raise MtdtlError(f"03_evaluate finished but {len(missing)} result rows are missing from "
                             f"{folder / 'evaluate' / 'results.csv'}, e.g. {missing[0]}")
        status.update(state="done", error="")
    except Exception as err:  # noqa: BLE001 - a failing run never stops the sweep
        status.update(state="failed", error=_last_line(err), message=str(err))
        log.warning("run %s failed: %s", spec.id, status["error"])
    status["finished"] = _now()
    status["wall_s"] = round(time.perf_counter() - t0, 3)
    _write_status(folder, status)
    return status


def evaluate_baselines(job: Mapping[str, Any]) -> dict:
    """Evaluate the sweep's baselines once, into ``<out>/baselines/results.csv`` (a Dask task).

    The paper's Rand is an untrained SS-R fed with the store's standardisation: its scaler (and
    width) come from a finished run of the sweep (``job["scaler_run"]``). The evaluation runs in a
    child process (a Dask worker is a daemonic process, which may not start the processes
    feature extraction and the probes use), which dies with the worker; its output goes to
    ``<out>/baselines/baselines.log``.
    """
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    status: dict[str, Any] = {"run": "baselines", "state": "running", "host": socket.gethostname(),
                              "pid": os.getpid(), "started": _now(), "scaler_run": job.get("scaler_run") or ""}
    _write_status(folder, status)
    t0 = time.perf_counter()
    try:
        job_file = folder / "baselines_job.json"
        atomic_write_text(job_file, json.dumps({**dict(job), "parent": os.getpid()}, indent=1) + "\n")
        code = "import sys; from mtdtl.sweep import _baselines_child; _baselines_child(sys.argv[1])"
        with _environment(_task_env(job)), open(folder / "baselines.log", "w") as logf:
            proc = subprocess.run([sys.executable, "-c", code, str(job_file)], stdout=logf, stderr=subprocess.STDOUT,
                                  check=False)
        if proc.returncode:
            lines = [ln for ln in (folder / "baselines.log").read_text(errors="replace").splitlines() if ln.strip()]
            raise MtdtlError(f"{lines[-1] if lines else 'no output'} (exit status {proc.returncode}; the whole "
                             f"output is in {folder / 'baselines.log'})")
        missing = [m for name in job["names"] for m in missing_rows(folder / "results.csv", run=name,
                                                                    targets=[tuple(x) for x in job["targets"]],
                                                                    repetitions=job["repetitions"])]
        if missing:
            raise MtdtlError(f"baselines: {len(missing)} result rows missing, e.g. {missing[0]}")
        status.update(state="done", error="")
    except Exception as err:  # noqa: BLE001 - reported in the status, never raised
        msg = str(err)
        status.update(state="failed", error=msg.split(" (exit status")[0] if "exit status" in msg else _last_line(err),
                      message=msg)
        log.warning("baselines failed: %s", status["error"])
    status["evaluate_s"] = status["wall_s"] = round(time.perf_counter() - t0, 3)
    status["finished"] = _now()
    _write_status(folder, status)
    return status


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL when the parent process dies (and exit now if it already has)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker's own cleanup has to do
        pass
    if parent and os.getppid() != parent:
        os._exit(3)


def _baselines_child(job_file: str) -> None:
    """The baselines' evaluation, in the child process :func:`evaluate_baselines` starts."""
    from mtdtl.device import set_num_threads
    from mtdtl.log import setup_logging
    from mtdtl.transfer import (
        baseline_representations,
        evaluate_transfer,
        representation_from_run,
        resolve_targets,
    )

    job = json.loads(Path(job_file).read_text())
    _die_with_parent(int(job.get("parent") or 0))
    setup_logging("INFO")
    set_num_threads(None)  # $MTDTL_NUM_THREADS
    run = representation_from_run(job["scaler_run"]) if job.get("scaler_run") else None
    reps = baseline_representations(job["baselines"], run=run, choi_weights=job.get("choi_weights") or None)
    targets = resolve_targets(job["targets_param"], corpus=job.get("corpus") or None,
                              roots=job.get("target_roots") or None)
    evaluate_transfer(reps, targets, results=Path(job["folder"]) / "results.csv", repetitions=job["repetitions"],
                      seed=job["seed"], progress=False)


# ---------------------------------------------------------------------------------------------
# the driver


def _cores() -> int:
    """:func:`mtdtl.device.usable_cores` (imported when called: ``mtdtl --help`` does not load torch)."""
    from mtdtl.device import usable_cores

    return usable_cores()


def _cpu_model() -> str:
    """:func:`mtdtl.device.cpu_model` (imported when called)."""
    from mtdtl.device import cpu_model

    return cpu_model()


def _gpus() -> list[str]:
    """GPUs visible to this process (by CUDA_VISIBLE_DEVICES, else by index)."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        n = 0
    if not n:
        return []
    if vis:
        ids = [v.strip() for v in vis.split(",") if v.strip()]
        return ids[:n]
    return [str(i) for i in range(n)]


def local_cluster_size(n_runs: int, *, workers: int = 0, threads_per_worker: int = 0, cores: int | None = None,
                       gpus: list[str] | None = None, device: str = "auto") -> tuple[int, int, list[str]]:
    """Workers, threads per worker and GPUs of a LocalCluster for ``n_runs`` runs.

    One run per worker. With GPUs (and ``device`` not ``cpu``): one worker per GPU (each gets its
    own ``CUDA_VISIBLE_DEVICES``). On the CPU: ``workers x threads <= cores``; by default as many
    workers as runs up to the cores, and the cores shared among them.

    Raises
    ------
    MtdtlError
        More workers than GPUs, or workers x threads above the cores.
    """
    cores = cores or _cores()
    gpus = [] if device == "cpu" else (_gpus() if gpus is None else list(gpus))
    n_runs = max(1, int(n_runs))
    if gpus:
        if workers > len(gpus):
            raise MtdtlError(f"{workers} workers but {len(gpus)} GPU(s): one run per GPU; set workers <= {len(gpus)}")
        w = workers or min(len(gpus), n_runs)
        t = threads_per_worker or max(1, cores // w)
        return w, t, gpus[:w]
    if workers > cores:
        raise MtdtlError(f"{workers} workers on {cores} CPU cores would oversubscribe them; set workers <= {cores}")
    w = workers or min(cores, n_runs)
    t = threads_per_worker or max(1, cores // w)
    if w * t > cores:
        raise MtdtlError(f"{w} workers x {t} threads > {cores} cores; lower workers or threads_per_worker")
    return w, t, []


def _notebook_params(sweep: Sweep, spec, folder: Path, corpus: Path | None, store: Path) -> tuple[dict, dict]:
    t, e, d = sweep["train"], sweep["evaluate"], sweep["data"]
    train = {"arch": spec.arch, "sources": ",".join(spec.sources), "seed": spec.seed, "epochs": spec.epochs,
             "width": spec.width, "batch_size": spec.batch_size, "lr": spec.lr, "device": t["device"],
             "store": str(store), "out_dir": str(folder), "checkpoint_every": t["checkpoint_every"],
             "figure_formats": ",".join(sweep[""]["figure_formats"]), **t["params"]}
    roots = ",".join(f"{k}:{_resolve_path(str(v), sweep.file.parent)}" for k, v in e["target_roots"].items())
    evaluate = {"run_dir": str(folder), "arch": spec.arch, "sources": ",".join(spec.sources), "epochs": spec.epochs,
                "width": spec.width, "store": str(store), "corpus": str(corpus or ""),
                "size": d["demo_size"] or "small", "seed": e["seed"], "targets": ",".join(e["targets"]),
                "target_roots": roots, "repetitions": e["repetitions"], "baselines": "", "choi_weights": "",
                "out_dir": str(folder / "evaluate"), "figure_formats": ",".join(sweep[""]["figure_formats"]),
                **e["params"]}
    return train, evaluate


def _check_notebook_parameters(params: Mapping[str, dict]) -> None:
    """Every parameter the sweep passes exists in its notebook's ``parameters`` cell."""
    import papermill as pm

    from mtdtl.notebooks import notebook_path

    for name, p in params.items():
        path = notebook_path(name)
        declared = set(pm.inspect_notebook(str(path)))
        unknown = sorted(set(p) - declared)
        if unknown:
            raise MtdtlError(f"{path.name} has no parameter(s) {unknown} (it declares {sorted(declared)}); remove "
                             "them from the sweep file's params, or update the notebook")


@dataclass
class SweepReport:
    """What :func:`run_sweep` did: the status of every run, the collected results and times."""

    sweep: Sweep
    status: pd.DataFrame
    results: pd.DataFrame
    elapsed_s: float
    submitted: int
    workers: str

    def report(self) -> str:
        return (f"sweep {self.sweep.name}: {self.submitted} run(s) submitted to {self.workers}, "
                f"{self.elapsed_s / 60:.1f} min\n" + format_status(self.status)
                + f"\nresults: {self.sweep.results_path} ({len(self.results)} rows)")


def run_sweep(sweep_file: str | os.PathLike | Sweep, *, scheduler: str | None = None, retry_failed: bool = False,
              workers: int | None = None, progress: bool = True) -> SweepReport:
    """Run (or resume) a sweep: every unfinished run of the design, on Dask; then collect.

    Parameters
    ----------
    sweep_file : path or Sweep
        The sweep file (papermill_runs/*.toml).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: the file's
        ``[dask] scheduler``, else a LocalCluster sized to this machine.
    retry_failed : bool
        Run failed runs again (default: they are left as they are and reported).
    workers : int, optional
        LocalCluster workers (one run each); default: the file's, else sized to the machine.
    progress : bool
        A tqdm bar over finished runs.

    Returns
    -------
    SweepReport
        ``.status`` (see :func:`sweep_status`), ``.results`` (the collected table, also written
        to ``<out>/results.csv``), ``.report()``.
    """
    from tqdm.auto import tqdm

    sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
    t_start = time.perf_counter()
    with _driver_lock(sweep.out):
        design = sweep.design()
        runs = sweep._runs(design)
        if not runs:
            raise _fail(sweep.file, "[design]", f"no runs in phases {sweep['design']['phases']} of the design")
        # every notebook parameter the sweep will pass exists, before any work
        corpus0, store0 = sweep.data_paths()
        train_p, eval_p = _notebook_params(sweep, runs[0][0], sweep.run_folder(runs[0][0]), corpus0, store0)
        _check_notebook_parameters({"02_train": train_p, "03_evaluate": eval_p})
        corpus, store = sweep.prepare_data(progress=progress)
        targets = sweep.expected_targets(corpus)
        e = sweep["evaluate"]
        reps = e["repetitions"]
        design.to_csv(sweep.out / "design.csv")
        atomic_write_text(sweep.out / "sweep.json", json.dumps(
            {"file": str(sweep.file), "started": _now(), "corpus": str(corpus or ""), "store": str(store),
             "settings": sweep.settings, "runs": len(runs)}, indent=1, default=str) + "\n")

        todo, done_ids, skipped_failed = [], [], []
        for spec, info in runs:
            folder = sweep.run_folder(spec)
            missing = missing_rows(folder / "evaluate" / "results.csv", run=spec.id, targets=targets, repetitions=reps)
            if not missing:
                done_ids.append(spec.id)
                continue
            if _read_status(folder).get("state") == "failed" and not retry_failed:
                skipped_failed.append(spec.id)
                continue
            todo.append((spec, info))
        log.info("sweep %s: %d runs, %d done, %d failed (left as they are%s), %d to run", sweep.name, len(runs),
                 len(done_ids), len(skipped_failed), "" if not skipped_failed else "; --retry-failed runs them",
                 len(todo))
        b_names = sweep.baseline_names()
        bdir = sweep.baselines_dir
        baselines_todo = bool(e["baselines"]) and any(
            missing_rows(bdir / "results.csv", run=b, targets=targets, repetitions=reps) for b in b_names)
        if baselines_todo and _read_status(bdir).get("state") == "failed" and not retry_failed:
            log.warning("the baselines failed before (%s); --retry-failed evaluates them again",
                        _read_status(bdir).get("error"))
            baselines_todo = False
        needs_run = "rand" in e["baselines"]

        client = cluster = None
        where = "nothing (every run finished)"
        n_submitted = 0
        try:
            if todo or baselines_todo:
                client, cluster, env, gpus, where = _client(sweep, scheduler, workers, len(todo) + baselines_todo)
                futures = {}
                for i, (spec, info) in enumerate(todo):
                    folder = sweep.run_folder(spec)
                    tp, ep = _notebook_params(sweep, spec, folder, corpus, store)
                    job = {"run": spec.id, "spec": spec.to_dict(), "folder": str(folder), "train": tp,
                           "evaluate": ep, "targets": [list(x) for x in targets], "repetitions": reps,
                           "env": env, "gpus": gpus, "html": sweep[""]["html"], "kernel": sweep[""]["kernel"],
                           "kernel_notebooks": sweep[""]["kernel_notebooks"]}
                    fut = client.submit(run_one, job, key=f"mtdtl-run-{spec.id}-{os.getpid()}-{time.time_ns()}",
                                        pure=False, priority=len(todo) - i, **_resources(client))
                    futures[fut] = spec.id
                n_submitted = len(todo)

                def baseline_job(scaler_run: str | None) -> dict:
                    return {"folder": str(bdir), "scaler_run": scaler_run, "baselines": list(e["baselines"]),
                            "choi_weights": str(sweep.path("evaluate", "choi_weights") or ""),
                            "targets_param": list(e["targets"]), "corpus": str(corpus or ""),
                            "target_roots": {k: str(_resolve_path(str(v), sweep.file.parent))
                                             for k, v in e["target_roots"].items()},
                            "targets": [list(x) for x in targets], "repetitions": reps, "seed": e["seed"],
                            "names": b_names, "env": env, "gpus": gpus}

                from distributed import as_completed

                ac = as_completed(list(futures), with_results=False)
                baseline_submitted = False

                def submit_baselines(scaler: str | None) -> None:
                    nonlocal baseline_submitted
                    job = baseline_job(str(sweep.runs_dir / scaler) if scaler else None)
                    fut = client.submit(evaluate_baselines, job, key=f"mtdtl-baselines-{time.time_ns()}", pure=False,
                                        priority=0, **_resources(client))
                    futures[fut] = "baselines"
                    ac.add(fut)
                    baseline_submitted = True

                if baselines_todo and (not needs_run or done_ids):
                    submit_baselines(_recorded_scaler(bdir, done_ids) if needs_run else None)
                bar = tqdm(total=len(futures) + (baselines_todo and not baseline_submitted), disable=not progress,
                           unit="run", desc=f"sweep {sweep.name}", dynamic_ncols=True)
                try:
                    for fut in ac:
                        name = futures[fut]
                        try:
                            st = fut.result()
                        except Exception as err:  # noqa: BLE001 - a lost worker: mark the run failed
                            st = {"run": name, "state": "failed", "error": _last_line(err), "finished": _now()}
                            folder = bdir if name == "baselines" else sweep.runs_dir / name
                            _write_status(folder, {**_read_status(folder), **st})
                        bar.update(1)
                        bar.set_postfix(last=f"{name} {st.get('state')}", refresh=False)
                        if st.get("state") == "failed":
                            log.warning("%s failed: %s", name, st.get("error"))
                        elif name != "baselines":
                            done_ids.append(name)
                            if baselines_todo and not baseline_submitted:
                                submit_baselines(name)
                                bar.total = len(futures)
                                bar.refresh()
                finally:
                    bar.close()
        except KeyboardInterrupt:
            log.warning("interrupted: finished runs are kept; run the same command again to resume")
            raise
        finally:
            if client is not None:
                from mtdtl.notebooks import shutdown_warm_kernels

                with contextlib.suppress(Exception):  # a shared cluster's workers live on: not its kernels
                    client.run(shutdown_warm_kernels)
                with contextlib.suppress(Exception):
                    client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
        try:
            results = collect_sweep(sweep)
        except MtdtlError as err:  # the runs' files are all there: report, and let `collect` be run again
            log.error("collecting the results failed: %s; fix it, then run mtdtl sweep collect %s", err, sweep.file)
            results = pd.DataFrame()
    status = sweep_status(sweep)
    report = SweepReport(sweep, status, results, time.perf_counter() - t_start, n_submitted, where)
    log.info("%s", report.report())
    return report


def _recorded_scaler(bdir: Path, done_ids: list[str]) -> str | None:
    prev = _read_status(bdir).get("scaler_run")
    if prev and Path(prev).name in done_ids:
        return Path(prev).name
    return done_ids[0] if done_ids else None


def _resources(client) -> dict:
    """Ask for one ``run`` slot where the workers advertise it (one run per worker)."""
    try:
        info = client.scheduler_info()["workers"].values()
    except Exception:  # noqa: BLE001
        return {}
    if any("run" in (w.get("resources") or {}) for w in info):
        return {"resources": {"run": 1}}
    return {}


def _client(sweep: Sweep, scheduler: str | None, workers: int | None, n_runs: int):
    """A Dask client: to ``scheduler`` when given, else to a new LocalCluster sized to the machine."""
    from distributed import Client, LocalCluster

    d = sweep["dask"]
    address = scheduler or d["scheduler"]
    env = {k: str(v) for k, v in d["env"].items()}
    for key in ("MTDTL_DATA_DIR", "MTDTL_NOTEBOOKS"):
        if key in os.environ and key not in env:
            env[key] = os.environ[key]
    if address:
        try:
            client = Client(address, timeout="30s")
        except Exception as e:  # noqa: BLE001
            raise MtdtlError(f"cannot reach the Dask scheduler at {address} ({e}); start it (docs/sweep.md) or "
                             "leave the scheduler empty for a LocalCluster") from None
        info = client.scheduler_info()["workers"]
        if not _resources(client) and any(w.get("nthreads", 1) > 1 for w in info.values()):
            log.warning("workers of %s have several threads: several runs may share one worker; start them with "
                        "--nthreads 1 or --resources run=1 (docs/sweep.md)", address)
        return client, None, env, [], f"the scheduler at {address} ({len(info)} workers)"
    w, t, gpus = local_cluster_size(n_runs, workers=workers or d["workers"], threads_per_worker=d["threads_per_worker"],
                                    device=sweep["train"]["device"])
    for key in ("MTDTL_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(key, str(t))
    try:
        import bokeh  # noqa: F401

        dashboard = True
    except ImportError:
        dashboard = False
    # ":0": a free port (the scheduler's HTTP server runs even without bokeh's dashboard)
    cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True, resources={"run": 1},
                           dashboard_address=":0", env=env)
    client = Client(cluster)
    where = (f"a LocalCluster of {w} worker(s) x {t} thread(s)" + (f", GPUs {','.join(gpus)}" if gpus else "")
             + (f", dashboard {client.dashboard_link}" if dashboard else ""))
    log.info("sweep on %s", where)
    return client, cluster, env, gpus, where


def collect_sweep(sweep_file: str | os.PathLike | Sweep) -> pd.DataFrame:
    """Concatenate every results file of the sweep (runs and baselines) into ``<out>/results.csv``."""
    from mtdtl.evaluation.results import collect

    sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
    if not sweep.out.is_dir():
        raise MtdtlError(f"{sweep.out} does not exist yet: run the sweep first (mtdtl sweep run {sweep.file})")
    folders = [sweep.run_folder(spec) for spec in sweep.runspecs()]
    others = sorted(set(p.name for p in sweep.runs_dir.glob("*") if p.is_dir()) - {f.name for f in folders}) \
        if sweep.runs_dir.is_dir() else []
    if others:
        log.info("%d run folder(s) under %s are not runs of this design (an earlier design?): kept, not collected "
                 "(e.g. %s)", len(others), sweep.runs_dir, others[0])
    files = [f / "evaluate" / "results.csv" for f in folders] + [sweep.baselines_dir / "results.csv"]
    return collect(sweep.out, out=sweep.results_path, files=files)


# ---------------------------------------------------------------------------------------------
# the plan


def _time_import() -> float:
    """Seconds a fresh Python takes to import what a notebook kernel imports (kernel start-up proxy)."""
    code = "import mtdtl.training, mtdtl.transfer, mtdtl.plots, matplotlib.pyplot, IPython"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    return time.perf_counter() - t


def calibrate(archs: Iterable[str], *, width: str, batch_size: int, threads: int, steps: int = 3,
              paper: bool = True, device: str = "cpu", precision: str = "auto") -> dict:
    """Measure training and feature-extraction speed on this machine (a few steps each).

    Per architecture: training samples/s at ``width`` and ``batch_size`` (synthetic 2 x 216 x 128
    crops, the fastest of ``steps`` steps after one warm-up, the settings training uses:
    channels-last for the full network, bf16 where native). Also the inference rate (slices/s to
    the fc-feature), the start-up of a notebook kernel (a fresh Python importing mtdtl) and, with
    ``paper``, SS-R at full width and batch 128 on every CPU core, and on one GPU when there is one
    (the paper's setting). ``precision`` is the training's (:class:`mtdtl.training.TrainConfig`):
    ``"auto"`` measures bf16 where the device does it natively, ``"fp32"`` and ``"bf16"`` force it.

    Returns
    -------
    dict
        ``machine`` (CPU model, cores, GPU), ``device``, ``threads``, ``bf16``, ``train_rate``
        {arch: samples/s}, ``infer_rate``, ``kernel_s``, ``paper_rate_cpu``, ``paper_rate_gpu``
        (None without a GPU).
    """
    import torch

    from mtdtl.constants import K
    from mtdtl.device import resolve_bf16, resolve_device
    from mtdtl.models import build_model
    from mtdtl.training import kl_loss

    dev = resolve_device(device)
    old = torch.get_num_threads()
    flag = {"fp32": False, "bf16": True}.get(precision, precision)  # resolve_bf16's spelling

    def rate(arch: str, width_: str, batch: int, n_threads: int, on: torch.device) -> tuple[float, float]:
        torch.set_num_threads(n_threads)
        bf16 = resolve_bf16(flag, on)
        sources = ["tag"] if arch == "ss_r" else list(SOURCE_NAMES)
        model = build_model(arch, sources, width=width_, n_out=K, seed=0).to(on)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 2, 216, 128, generator=g).to(on)
        z = torch.softmax(torch.randn(batch, K, generator=g), 1).to(on)
        if width_ == "full":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, weight_decay=1e-6)

        def sync():
            if on.type == "cuda":
                torch.cuda.synchronize(on)

        best = inf = best_cpu = math.inf
        model.train()
        for i in range(1 + steps):
            sync()
            t, c = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=on.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x, "tag")
            kl_loss(logits.float(), z).backward()
            opt.step()
            sync()
            if i:
                best = min(best, time.perf_counter() - t)
                best_cpu = min(best_cpu, (time.process_time() - c) / n_threads)
        cpu_rate[(arch, width_, batch, on.type)] = batch / best_cpu if on.type == "cpu" and best_cpu > 0 else None
        model.eval()
        with torch.no_grad(), torch.autocast(device_type=on.type, dtype=torch.bfloat16, enabled=bf16):
            for i in range(3):
                sync()
                t = time.perf_counter()
                model.features(x)
                sync()
                if i:
                    inf = min(inf, time.perf_counter() - t)
        return batch / best, batch / inf

    cpu = torch.device("cpu")
    cpu_rate: dict = {}  # CPU seconds / threads: what a step takes with the cores to itself (load-independent)
    try:
        train_rate, infer = {}, []
        for arch in dict.fromkeys(archs):
            tr, ir = rate(arch, width, batch_size, threads, dev)
            train_rate[arch] = tr
            infer.append(ir)
        rate_cpu = rate_gpu = None
        if paper:
            if dev.type == "cpu" and width == "full" and batch_size == 128 and threads == _cores() and "ss_r" in train_rate:
                rate_cpu = train_rate["ss_r"]
            else:
                rate_cpu = rate("ss_r", "full", 128, _cores(), cpu)[0]
            if torch.cuda.is_available():
                gpu = dev if dev.type == "cuda" else torch.device("cuda")
                rate_gpu = rate("ss_r", "full", 128, threads, gpu)[0]
    finally:
        torch.set_num_threads(old)
    return {"machine": {"cpu": _cpu_model(), "cores": _cores(),
                        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
            "device": dev.type, "threads": threads, "bf16": resolve_bf16(flag, dev), "width": width,
            "batch_size": batch_size, "train_rate": train_rate, "infer_rate": max(infer) if infer else None,
            "kernel_s": _time_import(), "paper_rate_cpu": rate_cpu, "paper_rate_gpu": rate_gpu,
            "paper_rate_cpu_idle": cpu_rate.get(("ss_r", "full", 128, "cpu")), "load": os.getloadavg()[0]}


def _samples_per_epoch(store: Path, source_sets: Iterable[tuple[str, ...]], batch_size: int) -> dict:
    """Crops one epoch shows the network, per source set: ``l x sum_s min(b, n_s) (x2 for self)``,
    with ``l = ceil(n / b)`` (:func:`mtdtl.training.sampling.epoch_length`), plus the epoch's
    iterations and validation crops."""
    from mtdtl.sources import load_reduced
    from mtdtl.store import SpectrogramStore
    from mtdtl.training.sampling import epoch_length, source_data

    st = SpectrogramStore.open(store)
    sets = list(dict.fromkeys(tuple(s) for s in source_sets))
    names = sorted({s for ss in sets for s in ss})
    labels = load_reduced(store, sources=names)
    train = source_data(st, labels, "train", names)
    valid = source_data(st, labels, "valid", names)
    out = {}
    for ss in sets:
        tr = {s: train[s] for s in ss}
        L = epoch_length(tr, batch_size)
        per_iter = sum(min(batch_size, len(tr[s])) * (2 if s == "self" else 1) for s in ss) / len(ss)
        vcrops = sum(len(valid[s]) * (2 if s == "self" else 1) for s in ss)
        out[ss] = {"iterations": L, "samples": L * per_iter, "valid_samples": vcrops}
    return out


def _eval_slices(sweep: Sweep, corpus: Path | None) -> tuple[int, int]:
    """(tracks, 2.5 s slices) of the sweep's target audio (demo targets: from the corpus manifest)."""
    tracks = slices = 0
    if sweep._needs_corpus() and corpus and (corpus / "manifest.csv").is_file():
        m = pd.read_csv(corpus / "manifest.csv")
        m = m[m["part"] == "target"] if "part" in m else m
        tracks += len(m)
        slices += int((m["duration"].astype(float) // 2.5).clip(lower=1).sum())
    return tracks, slices


@dataclass
class SweepPlan:
    """The cost of a sweep before it runs (:func:`sweep_plan`)."""

    sweep: Sweep
    runs: pd.DataFrame
    totals: dict
    calibration: dict | None
    paper: dict | None
    notes: list = field(default_factory=list)

    def report(self) -> str:
        t = self.totals
        lines = [f"sweep {self.sweep.name} ({self.sweep.file})",
                 f"  runs: {t['runs']} ({t['pending']} to run, {t['done']} done); by phase "
                 + ", ".join(f"{k}: {v}" for k, v in t["by_phase"].items())
                 + "; by architecture " + ", ".join(f"{k}: {v}" for k, v in t["by_arch"].items()),
                 f"  model-epochs: {t['model_epochs']:,}; training samples: "
                 + (f"{t['train_samples']:,.0f} (epochs x crops per epoch from the store)"
                    if t.get("train_samples") is not None else "unknown (no store yet)"),
                 (f"  evaluation: {t['targets']} target(s) x {t['repetitions']} repetition(s) per run, "
                  f"baselines {', '.join(self.sweep['evaluate']['baselines']) or 'none'} once")]
        c = self.calibration
        if c:
            m = c["machine"]
            lines.append(f"  machine: {m['cpu']}, {m['cores']} cores" + (f", GPU {m['gpu']}" if m.get("gpu") else "")
                         + f"; calibration ({c['width']} width, batch {c['batch_size']}, {c['threads']} thread(s)"
                         + (", bf16" if c["bf16"] else "") + "): "
                         + ", ".join(f"{a} {r:,.0f}" for a, r in c["train_rate"].items()) + " training samples/s; "
                         + f"features {c['infer_rate']:,.0f} slices/s; kernel start {c['kernel_s']:.1f} s")
        if t.get("projected_s") is not None:
            lines.append(f"  projected wall time here: {_hms(t['projected_s'])} on {t['workers']} worker(s) x "
                         f"{t['threads']} thread(s) (training {_hms(t['train_s'])}, evaluation {_hms(t['eval_s'])}, "
                         f"notebook overhead {_hms(t['overhead_s'])} summed over runs; {t['basis']})")
        p = self.paper
        if p:
            lines.append(f"  the paper's study ({p['runs']} models, {p['epochs']} epochs, {p['n_train']:,} training "
                         f"clips, batch {p['batch_size']}) on this CPU: {p['cpu_hours']:,.0f} CPU-hours "
                         f"({p['cpu_hours'] / 24:,.1f} days) at {p['rate_cpu']:.0f} samples/s (SS-R, full width, "
                         "all cores)")
            idle = self.calibration.get("paper_rate_cpu_idle") if self.calibration else None
            if idle and idle > 1.5 * p["rate_cpu"]:
                lines.append(f"    (the CPU was busy, load average {self.calibration['load']:.1f}: from CPU time, with the "
                             f"cores to itself, {idle:.0f} samples/s = {_paper_hours(idle):,.0f} CPU-hours)")
            lines.append("  on one GPU: " + (f"{p['gpu_hours']:,.0f} GPU-hours at {p['rate_gpu']:.0f} samples/s"
                                            if p.get("gpu_hours") else
                                            "no GPU figures: no GPU was measured on this machine (run "
                                            "`mtdtl sweep plan` or benchmarks/bench_train.py on a GPU machine)"))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _hms(s: float) -> str:
    s = float(s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _paper_hours(rate: float) -> float:
    """Device-hours of the paper's 425 networks (released design, first 352 + phases 1-2) at ``rate``
    training samples/s (validation counted at a third of a training step per crop)."""
    from mtdtl.design import released_design

    P = PAPER_STUDY
    l_iters = math.ceil(P["n_train"] / P["batch_size"])
    design = released_design()
    srcs = design.run_sources()
    total = 0.0
    for s in srcs:
        m, has_self = len(s), "self" in s
        crops = l_iters * P["batch_size"] * (m + has_self)  # an epoch: l*m iterations; self: 2 crops a pair
        valid = P["n_valid"] * (m + has_self)
        total += P["epochs"] * (crops / rate + valid / (3 * rate))
    return total / 3600


def sweep_plan(sweep_file: str | os.PathLike | Sweep, *, calibrate_here: bool = True, steps: int = 3,
               workers: int | None = None) -> SweepPlan:
    """The cost of a sweep before anything runs.

    Counts the runs (in all, to run, by phase and architecture), the model-epochs and the
    training samples (epochs x the crops an epoch shows: the training loop's epoch length from
    the store, see :mod:`mtdtl.training.sampling`); with ``calibrate_here`` measures this
    machine (:func:`calibrate`: a few training steps of the sweep's width and batch per
    architecture, the feature-extraction rate, a kernel start) and projects the wall time on the
    LocalCluster :func:`run_sweep` would start; with finished runs, their measured times are used
    instead. Also projects the paper's full study (425 models, 200 epochs, 41,841 clips, batch 128)
    on this CPU (and on one GPU only when one was measured).

    Returns
    -------
    SweepPlan
        ``.runs`` (one row per run with ``samples_per_epoch``, ``train_samples``, ``state``),
        ``.totals``, ``.calibration``, ``.paper``, ``.report()``.
    """
    sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
    notes: list[str] = []
    corpus, store = sweep.data_paths()
    t = sweep["train"]
    table = sweep.run_table()
    have_store = store is not None and (Path(store) / "store.json").is_file()
    if have_store:
        spe = _samples_per_epoch(Path(store), [tuple(s.split("+")) for s in table["sources"]], t["batch_size"])
        table["samples_per_epoch"] = [spe[tuple(s.split("+"))]["samples"] for s in table["sources"]]
        table["valid_samples"] = [spe[tuple(s.split("+"))]["valid_samples"] for s in table["sources"]]
        table["train_samples"] = table["samples_per_epoch"] * table["epochs"]
    else:
        notes.append(f"no store at {store} yet: training samples unknown ("
                     + ("`mtdtl sweep run` builds the demo store" if sweep["data"]["demo_size"] else
                        "build it with 01_preprocess") + ")")
        table["samples_per_epoch"] = table["valid_samples"] = table["train_samples"] = float("nan")
    corpus_ok = not sweep._needs_corpus() or (corpus is not None and corpus.is_dir())
    if sweep.out.is_dir() and corpus_ok:
        st = sweep_status(sweep)
        st = st[st["kind"] == "run"].set_index("run")
        table["state"] = table["run"].map(st["state"]).fillna("pending")
    else:
        table["state"] = "pending"
        st = None
    pending = table[table["state"] != "done"]
    n_targets = len(sweep.expected_targets(corpus)) if corpus_ok else len(sweep["evaluate"]["targets"])
    totals: dict[str, Any] = {
        "runs": len(table), "pending": len(pending), "done": int((table["state"] == "done").sum()),
        "by_phase": {int(k): int(v) for k, v in table["phase"].value_counts().sort_index().items()},
        "by_arch": {a: int((table["arch"] == a).sum()) for a in ARCH_IDS if (table["arch"] == a).any()},
        "model_epochs": int(table["epochs"].sum()),
        "train_samples": float(table["train_samples"].sum()) if have_store else None,
        "targets": n_targets, "repetitions": sweep["evaluate"]["repetitions"],
    }
    calib = paper = None
    if calibrate_here:
        d = sweep["dask"]
        try:
            w, th, gpus = local_cluster_size(max(1, len(pending)), workers=workers or d["workers"],
                                             threads_per_worker=d["threads_per_worker"], device=t["device"])
        except MtdtlError as e:
            notes.append(str(e))
            w, th, gpus = 1, _cores(), []
        calib = calibrate(sorted(set(table["arch"]), key=list(ARCH_IDS).index), width=t["width"],
                          batch_size=t["batch_size"], threads=th, steps=steps, paper=True,
                          device="cuda" if gpus else "cpu")
        paper = {**PAPER_STUDY, "rate_cpu": calib["paper_rate_cpu"], "cpu_hours": _paper_hours(calib["paper_rate_cpu"]),
                 "rate_gpu": calib["paper_rate_gpu"],
                 "gpu_hours": _paper_hours(calib["paper_rate_gpu"]) if calib["paper_rate_gpu"] else None}
        # per run: training (epochs x (train crops / rate + validation at a third of a step's cost))
        rate = pending["arch"].map(calib["train_rate"])
        train_s = (pending["train_samples"] / rate + pending["epochs"] * pending["valid_samples"] / (3 * rate))
        _, n_slices = _eval_slices(sweep, corpus)
        eval_extract = n_slices / calib["infer_rate"] if calib["infer_rate"] else 0.0
        eval_probe = 0.5 * n_targets * sweep["evaluate"]["repetitions"]  # MLP / WMF fits: ~0.5 s each on small targets
        # two notebooks a run: a kernel's start-up and imports each (fresh), or once per kernel_notebooks (warm)
        kernels = 2.0 if sweep[""]["kernel"] == "fresh" else 2.0 / sweep[""]["kernel_notebooks"]
        overhead = kernels * calib["kernel_s"] + 2.0
        basis = "calibration"
        if st is not None and (st["state"] == "done").any() and st["train_s"].notna().any():
            fin = st[(st["state"] == "done") & st["train_s"].notna() & st["evaluate_s"].notna()]
            if len(fin):
                per_run = float((fin["train_s"] + fin["evaluate_s"]).mean())
                basis = f"mean of {len(fin)} finished run(s) of this sweep: {per_run:.0f} s a run"
                train_total = per_run * len(pending)
                totals.update(train_s=train_total, eval_s=0.0, overhead_s=0.0)
        if "train_s" not in totals:
            if not have_store:
                train_s = pd.Series(0.0, index=pending.index)
                notes.append("training time unknown without the store")
            totals.update(train_s=float(train_s.sum()), eval_s=(eval_extract + eval_probe) * len(pending),
                          overhead_s=overhead * len(pending))
        if not sweep._needs_corpus():
            notes.append("evaluation cost of real target datasets is not projected (only feature extraction of "
                         "demo targets is measured); expect minutes per run and target")
        n_b = len(sweep["evaluate"]["baselines"])
        serial = totals["train_s"] + totals["eval_s"] + totals["overhead_s"]
        totals.update(workers=w, threads=th, basis=basis,
                      projected_s=serial / max(1, min(w, max(1, len(pending))))
                      + n_b * (eval_extract + eval_probe) + 10.0)  # + baselines once, + cluster start
        totals["projected_s_serial"] = serial
    return SweepPlan(sweep, table, totals, calib, paper, notes)


# ---------------------------------------------------------------------------------------------
# the command line


def _cmd_run(args) -> int:
    report = run_sweep(args.sweep_file, scheduler=args.scheduler, retry_failed=args.retry_failed,
                       workers=args.workers, progress=not getattr(args, "quiet", False))
    print(report.report())
    return 0 if not (report.status["state"] == "failed").any() else 1


def _cmd_status(args) -> int:
    status = sweep_status(args.sweep_file)
    print(format_status(status))
    if args.all:
        with pd.option_context("display.max_rows", 10_000, "display.width", 200, "display.max_colwidth", 80):
            print(status[["order", "phase", "run", "state", "error", "train_s", "evaluate_s"]].to_string(index=False))
    return 0


def _cmd_plan(args) -> int:
    print(sweep_plan(args.sweep_file, calibrate_here=not args.no_calibrate, steps=args.steps,
                     workers=args.workers).report())
    return 0


def _cmd_collect(args) -> int:
    sweep = load_sweep(args.sweep_file)
    df = collect_sweep(sweep)
    print(f"{len(df)} rows from {df['run'].nunique() if len(df) else 0} runs and baselines -> {sweep.results_path}")
    return 0


def add_cli(subparsers) -> None:
    """Register ``mtdtl sweep run|status|plan|collect`` on the CLI's subparsers.

    Each subcommand sets ``func`` (taking the parsed arguments, returning an exit code), as the
    other subcommands of :mod:`mtdtl.cli` do.
    """
    p = subparsers.add_parser("sweep", help="the study as a sweep of papermill runs on Dask (docs/sweep.md)")
    sub = p.add_subparsers(dest="sweep_command", required=True)
    run = sub.add_parser("run", help="run or resume a sweep (finished runs are skipped)")
    run.add_argument("sweep_file", type=Path, help="a sweep file, e.g. papermill_runs/debug.toml")
    run.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    run.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: sized to the machine)")
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.set_defaults(func=_cmd_run)
    status = sub.add_parser("status", help="done / running / failed / pending per run")
    status.add_argument("sweep_file", type=Path)
    status.add_argument("--all", action="store_true", help="list every run")
    status.set_defaults(func=_cmd_status)
    plan = sub.add_parser("plan", help="runs, training samples and projected time, before running")
    plan.add_argument("sweep_file", type=Path)
    plan.add_argument("--no-calibrate", action="store_true", help="counts only, no measurement on this machine")
    plan.add_argument("--steps", type=int, default=3, help="timed training steps per architecture")
    plan.add_argument("--workers", type=int, default=None)
    plan.set_defaults(func=_cmd_plan)
    collect = sub.add_parser("collect", help="concatenate the sweep's results into <out>/results.csv")
    collect.add_argument("sweep_file", type=Path)
    collect.set_defaults(func=_cmd_collect)


def _main(argv: list[str] | None = None) -> int:
    """``python -m mtdtl.sweep ...`` (the same subcommands without ``mtdtl``)."""
    import argparse

    from mtdtl.log import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = any(a in ("-q", "--quiet") for a in argv)
    p = argparse.ArgumentParser(prog="python -m mtdtl.sweep")
    sub = p.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = p.parse_args(["sweep", *[a for a in argv if a not in ("-q", "--quiet")]])
    args.quiet = quiet
    setup_logging("WARNING" if quiet else "INFO")
    try:
        return args.func(args)
    except MtdtlError as e:
        print(f"mtdtl sweep: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
