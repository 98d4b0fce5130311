"""The main jobs: the whole study in miniature, and the single-run walkthrough, on the demo corpus.

``mtdtl study`` (:func:`run_study`, the README's main command) runs the paper's study in
miniature: the demo corpus, ``01_preprocess``, ``04_design`` (Algorithm 2 on a few sources,
the alias matrix, the cost plan, a sweep file), the sweep of every run of that design (each
``02_train`` then ``03_evaluate`` through papermill on a Dask LocalCluster) with the MFCC and
Rand baselines, ``05_analysis`` (Figures 8-15, the hierarchical models, Table 6, findings) and
``06_explain`` (Figure 16 for one multi-source run), all into one output folder. Every stage
resumes.

``mtdtl demo`` builds the demo corpus, then executes the notebooks ``01_preprocess``,
``02_train`` (one small multi-source model) and ``03_evaluate`` (with the MFCC and random
network baselines) through papermill, leaving the executed notebooks, their HTML copies,
figures, checkpoint and the tidy results table in one output folder. Every stage resumes:
re-running the command reuses the corpus, the spectrogram store, a finished training run and
cached features.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from mtdtl.constants import K
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.notebooks import NOTEBOOKS, html_path, run_notebook
from mtdtl.paths import demo_corpus_dir, demo_store_dir, stores_dir

__all__ = ["ensure_demo_store", "run_walkthrough", "Walkthrough", "run_study", "Study", "demo_k", "DEMO_SIZES",
           "DEMO_K", "Preset", "PRESETS", "preset_plan"]

log = get_logger(__name__)

#: Walkthrough defaults: small enough for a 2-core CPU in about ten minutes.
DEFAULT_EPOCHS = 30

#: Sizes of the demo corpus (:data:`mtdtl.corpora.demo.SIZES`), smallest first.
DEMO_SIZES = ("tiny", "small", "medium", "large", "full")

#: k (topics / GMM components per source) of the demo store where the paper's 50 does not fit:
#: a GMM with k components needs k training values, and the tiny corpus has about 20 training
#: clips (18 with a year).
DEMO_K = {"tiny": 8}


@dataclass(frozen=True)
class Preset:
    """Named settings of the single-run walkthrough (``mtdtl demo --preset NAME``).

    Every other setting is the walkthrough's (MS-CR@6, all eight sources, full width, batch 128,
    learning rate 2.5e-4); an explicit ``size``, ``epochs``, ``precision`` or ``repetitions``
    overrides the preset's.
    """

    name: str
    description: str
    size: str
    epochs: int
    precision: str = "fp32"  # TrainConfig.precision: fp32, bf16 or auto (bf16 where native)
    repetitions: int = 5  # of every evaluation (paper: 5)
    feature_scaling: str = "standard"  # the probe's (ProtocolOptions.feature_scaling)


#: The walkthrough's presets (docs/learning.md, "Presets").
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("walkthrough", "the default: the small demo corpus, 30 epochs in fp32; about 10 minutes on 2 CPU cores",
           size="small", epochs=DEFAULT_EPOCHS),
    Preset("large", "the medium demo corpus (3x the music), 54 epochs (3,024 iterations) in bf16 where the "
                    "hardware has it natively, probes with the feature scaling chosen on the training part "
                    "(select); about an hour on 2 CPU cores, minutes on one GPU",
           size="medium", epochs=54, precision="auto", feature_scaling="select"),
)}


def _preset(name: str, **given) -> Preset:
    """Preset ``name`` with the settings given (not None) in place of its own."""
    if name not in PRESETS:
        raise MtdtlError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in given.items() if v is not None})


def preset_plan(preset: str = "walkthrough", *, size: str | None = None, epochs: int | None = None,
                precision: str | None = None, repetitions: int | None = None, arch: str = "ms_cr@6",
                sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist", seed: int = 0,
                batch_size: int = 128, calibrate_here: bool = True, device: str = "auto",
                corpus_root: str | Path | None = None) -> str:
    """What a walkthrough will cost, before it starts (printed by ``mtdtl demo``).

    Counts the clips to render, the training iterations and crops (exact from the store when it
    is built, else from the corpus plan; with ``corpus_root``, a corpus of one's own, always
    from the plan), and, with ``calibrate_here``, measures a few training
    steps of ``arch`` on this machine at the run's precision
    (:func:`mtdtl.sweep.calibrate`) to project the training time. The projection is a lower
    bound: it times synthetic crops, while the real loop also reads the store and validates
    (docs/learning.md gives the measured ratio).
    """
    import math

    from mtdtl.corpora.demo import SIZES
    from mtdtl.runs import parse_sources

    p = _preset(preset, size=size, epochs=epochs, precision=precision, repetitions=repetitions)
    size, epochs, precision, repetitions = p.size, int(p.epochs), p.precision, int(p.repetitions)
    demo_k(size)  # validates the size
    names = list(parse_sources(sources))
    corpus = Path(corpus_root) if corpus_root else demo_corpus_dir(size, seed)
    store = None if corpus_root else demo_store_dir(size, seed)  # a corpus of one's own: its store is the run's
    plan = SIZES[size]
    lines = [f"preset {p.name}: {p.description}",
             f"  settings: {arch}, {len(names)} source(s), demo corpus {size}, {epochs} epochs, batch {batch_size}, "
             f"precision {precision}, {repetitions} repetitions of every evaluation, probe feature scaling "
             f"{p.feature_scaling}"]
    if (corpus / "manifest.csv").is_file():
        lines.append(f"  corpus: built ({corpus})")
    else:
        n = "all usable works" if plan is None else f"about {sum(a + b for a, b in plan.values()):,} clips"
        lines.append(f"  corpus: to render first, {n} (about 0.15 s a clip on 2 cores, once)")
    if store is not None and (store / "labels").is_dir() and (store / "store.json").is_file():
        from mtdtl.sweep import _samples_per_epoch

        per = _samples_per_epoch(store, [tuple(names)], batch_size)[tuple(names)]
        iters, crops, exact = per["iterations"] * epochs, per["samples"] * epochs, "from the store"
    else:
        n_learn = None if plan is None else sum(a for a, _ in plan.values())
        if n_learn is None:
            iters = crops = None
        else:
            per_iter = (batch_size * len(names) + batch_size * ("self" in names)) / len(names)
            iters = epochs * len(names) * math.ceil(0.9 * n_learn / batch_size)
            crops = iters * per_iter
        exact = "estimated from the corpus plan: the store is not built yet"
    if iters is None:
        lines.append("  training: counted once the store is built")
        return "\n".join(lines)
    lines.append(f"  training: {iters:,} iterations, {crops:,.0f} crops ({exact})")
    if calibrate_here and iters < 100:
        lines.append("  (not timed: under 100 iterations, a few minutes at most)")
    elif calibrate_here:
        from mtdtl.sweep import _cores, calibrate

        c = calibrate([arch], width="full", batch_size=batch_size, threads=_cores(), steps=2, paper=False,
                      device=device, precision=precision)
        rate = c["train_rate"][arch]
        m = c["machine"]
        where = f"GPU {m['gpu']}" if c["device"] == "cuda" else f"{m['cpu']}, {m['cores']} cores"
        lines.append(f"  this machine ({where}, {'bf16' if c['bf16'] else 'fp32'}): {rate:,.0f} samples/s in a "
                     f"{batch_size}-crop training step -> training at least {crops / rate / 60:,.0f} min")
        if c["device"] == "cpu" and c.get("load", 0.0) > 0.5 * m["cores"]:
            lines.append(f"  (the CPU was busy while timing, load average {c['load']:.1f}: the rate is low and the "
                         "time high)")
    return "\n".join(lines)


def demo_k(size: str) -> int:
    """k that works for the demo corpus of ``size``: the paper's 50, 8 for ``tiny``."""
    if size not in DEMO_SIZES:
        raise MtdtlError(f"unknown demo corpus size {size!r}; choose one of {', '.join(DEMO_SIZES)}")
    return DEMO_K.get(size, K)


def ensure_demo_store(*, size: str = "small", seed: int = 0, k: int | None = None,
                      corpus: str | Path | None = None, store: str | Path | None = None,
                      workers: int | None = None, progress: bool = True) -> Path:
    """Build (or reuse) the demo corpus and its spectrogram store with every source reduced.

    ``k`` defaults to :func:`demo_k` of ``size``. Returns the store folder. Both steps resume
    and never recompute finished work.
    """
    from mtdtl.corpora.demo import build_demo_corpus
    from mtdtl.preprocess import preprocess_corpus

    k = int(k) if k else demo_k(size)
    corpus = Path(corpus) if corpus else build_demo_corpus(
        root=demo_corpus_dir(size, seed), size=size, seed=seed, workers=workers, progress=progress)
    store = Path(store) if store else stores_dir() / Path(corpus).name
    return preprocess_corpus(corpus, store, k=k, seed=seed, workers=workers, progress=progress)


@dataclass
class Walkthrough:
    """What :func:`run_walkthrough` made: the results table, where everything is, and timings."""

    out_dir: Path
    corpus: Path
    store: Path
    corpus_summary: str
    results: pd.DataFrame
    timings: dict = field(default_factory=dict)

    def report(self) -> str:
        """The results (tasks x representations, mean ± sd over repetitions), the findings and
        where everything is, as printed by ``mtdtl demo``."""
        from mtdtl.report import results_pivot, transfer_summary

        pivot = results_pivot(self.results)
        findings = transfer_summary(self.results).findings
        total = sum(self.timings.values())
        out = self.out_dir
        return "\n".join([
            "== results (mean over repetitions) ==", repr(pivot), "",
            "== findings ==", *[f"- {f}" for f in findings], "",
            f"walkthrough finished in {total / 60:.1f} min ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ")",
            f"executed notebooks: {out}/" + ", ".join(f"{n}.ipynb" for n in NOTEBOOKS),
            f"HTML copies:        {out}/" + ", ".join(html_path(f"{n}.ipynb").name for n in NOTEBOOKS)
            + "  (open in any browser)",
            f"checkpoint:         {out / 'train'} (model.safetensors, model.json, figures/)",
            f"results table:      {out / 'evaluate' / 'results.csv'}",
            (f"figures:            {self.store / 'figures'}, {out / 'train' / 'figures'}, "
            f"{out / 'evaluate' / 'figures'} (PNG and PDF)"),
            f"corpus:             {self.corpus}",
            f"spectrogram store:  {self.store}",
        ])


def run_walkthrough(*, out_dir: str | Path = "papermill_runs/demo", size: str | None = None, seed: int = 0,
                    arch: str = "ms_cr@6", sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist",
                    epochs: int | None = None, k: int | None = None, workers: int | None = None,
                    corpus_root: str | Path | None = None, progress: bool = True, preset: str = "walkthrough",
                    precision: str | None = None, repetitions: int | None = None) -> Walkthrough:
    """Run the whole single-run walkthrough; finished stages are reused, not recomputed.

    ``preset`` (:data:`PRESETS`) gives ``size``, ``epochs``, ``precision`` and ``repetitions``
    where they are not given, and the probes' feature scaling. ``k`` (topics / GMM components
    per source) defaults to :func:`demo_k` of ``size``. The preset, architecture, sources and
    size are checked before any work starts.

    Returns
    -------
    Walkthrough
        The tidy results table (one row per representation, target, repetition and metric),
        the corpus summary, the paths and the time of each stage; ``.report()`` formats them.
    """
    from mtdtl.corpora import Corpus
    from mtdtl.corpora.demo import build_demo_corpus
    from mtdtl.models import parse_arch
    from mtdtl.runs import parse_sources

    p = _preset(preset, size=size, epochs=epochs, precision=precision, repetitions=repetitions)
    size, epochs, precision, repetitions = p.size, int(p.epochs), p.precision, int(p.repetitions)
    from mtdtl.training.config import PRECISIONS

    if precision not in PRECISIONS:
        raise MtdtlError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    k = int(k) if k else demo_k(size)
    if k < 1:
        raise MtdtlError(f"k={k}: the number of topics / GMM components must be at least 1")
    parse_arch(arch)  # unknown architecture: an error now, not after the corpus is built
    parse_sources(sources)
    if arch == "ss_r" and len(parse_sources(sources)) != 1:
        raise MtdtlError(f"ss_r learns from one source; got {sources!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # transparent huge pages for torch's CPU allocator in the notebook kernels (PERF.md: ~1.5x
    # faster training steps); must be in the environment before torch starts
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    t0 = time.perf_counter()
    corpus = Path(corpus_root) if corpus_root else demo_corpus_dir(size, seed)
    corpus = build_demo_corpus(root=corpus, size=size, seed=seed, workers=workers, progress=progress)
    summary = Corpus.open(corpus).summary()
    log.info("corpus ready:\n%s", summary)
    store = demo_store_dir(size, seed) if not corpus_root else out / "store"
    timings = {"corpus": time.perf_counter() - t0}

    stages = [
        ("01_preprocess", {"corpus": str(corpus), "store": str(store), "seed": seed,
                           "n_components": k, "workers": workers or 0}),
        ("02_train", {"store": str(store), "arch": arch, "sources": sources, "seed": seed,
                      "epochs": epochs, "precision": precision, "out_dir": str(out / "train")}),
        ("03_evaluate", {"run_dir": str(out / "train"), "corpus": str(corpus), "seed": seed,
                         "repetitions": repetitions, "feature_scaling": p.feature_scaling,
                         "out_dir": str(out / "evaluate")}),
    ]
    for name, params in stages:
        t = time.perf_counter()
        log.info("== %s ==", name)
        run_notebook(name, out / f"{name}.ipynb", parameters=params, cwd=out, progress=progress)
        timings[name] = time.perf_counter() - t

    from mtdtl.evaluation.results import ResultsTable

    results = ResultsTable(out / "evaluate" / "results.csv").read()
    return Walkthrough(out_dir=out, corpus=Path(corpus), store=Path(store), corpus_summary=summary,
                       results=results, timings=timings)


# ---------------------------------------------------------------------------------------------
# the study in miniature

#: The stages of :func:`run_study`, in order (the executed notebooks in the output folder).
STUDY_NOTEBOOKS = ("01_preprocess", "04_design", "05_analysis", "06_explain")


@dataclass
class Study:
    """What :func:`run_study` made: where everything is, the sweep's status and the findings."""

    out_dir: Path
    sweep_file: Path
    results: pd.DataFrame
    status: pd.DataFrame
    findings: list
    explained_run: str
    timings: dict = field(default_factory=dict)

    def report(self) -> str:
        """Results, findings and where everything is, as printed by ``mtdtl study``."""
        from mtdtl.report import results_pivot

        out = self.out_dir
        states = self.status[self.status["kind"] == "run"]["state"].value_counts().to_dict()
        lines = ["== the study in miniature: mean score per task, by kind of representation =="]
        try:
            by_kind = self.results.assign(group=self.results["kind"].where(self.results["kind"] != "learned",
                                                                            self.results["arch"]))
            table = by_kind.groupby(["target", "metric", "group"])["value"].mean().unstack("group")
            lines.append(table.round(3).to_string())
        except (KeyError, ValueError):  # pragma: no cover - a results table without these columns
            lines.append(repr(results_pivot(self.results)))
        total = sum(self.timings.values())
        lines += ["", "== findings (05_analysis) ==", *[f"- {f}" for f in self.findings], "",
                  f"study finished in {total / 60:.1f} min ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + "); runs: "
                  + ", ".join(f"{v} {k}" for k, v in sorted(states.items())),
                  f"executed notebooks: {out}/" + ", ".join(f"{n}.ipynb" for n in STUDY_NOTEBOOKS)
                  + " and one 02_train / 03_evaluate per run in sweep/runs/<run id>/",
                  f"HTML copies:        the same names with .html (open in any browser)",
                  f"sweep file:         {self.sweep_file} (mtdtl sweep status {self.sweep_file})",
                  f"results table:      {out / 'sweep' / 'results.csv'}",
                  f"figures and tables: {out / 'design'} (Figure 7), {out / 'analysis'} (Figures 8-15"
                  f"{', Table 6' if (out / 'analysis' / 'table6.csv').is_file() else ''}), "
                  f"{out / 'explain'} (Figure 16 of {self.explained_run})"]
        return "\n".join(lines)


def _stage_done(out: Path, name: str, key: str) -> bool:
    """The stage's notebook exists, finished without error, for the same inputs (``key``)."""
    import json

    stamps = out / ".stages.json"
    try:
        recorded = json.loads(stamps.read_text()).get(name)
    except (OSError, ValueError):
        return False
    return recorded == key and (out / f"{name}.ipynb").is_file()


def _stage_record(out: Path, name: str, key: str) -> None:
    import json

    from mtdtl.io import atomic_write_text

    stamps = out / ".stages.json"
    try:
        data = json.loads(stamps.read_text())
    except (OSError, ValueError):
        data = {}
    data[name] = key
    atomic_write_text(stamps, json.dumps(data, indent=1) + "\n")


def run_study(*, out_dir: str | Path = "papermill_runs/study", sweep: str | Path = "debug",
              budget: int | None = None, seed: int | None = None, bootstrap: int = 0,
              explain_target: str = "demo:genre", workers: int | None = None, progress: bool = True) -> Study:
    """The whole study in miniature: corpus, preprocess, design, sweep, baselines, analysis, explain.

    Parameters
    ----------
    out_dir : path
        One folder for everything: the executed notebooks (``01_preprocess``, ``04_design``,
        ``05_analysis``, ``06_explain``) and their HTML copies, ``sweep.toml`` (the sweep file
        04_design writes), ``sweep/`` (one folder per run with its executed ``02_train`` and
        ``03_evaluate``, the baselines, ``results.csv``), ``design/``, ``analysis/``,
        ``explain/`` (figures as PNG and PDF, tables).
    sweep : name or path
        The template sweep file: its data, design, training and evaluation settings
        (default ``debug``: 9 tiny networks on the small demo corpus; see ``papermill_runs/``).
        It must use the demo corpus (``[data] demo_size``).
    budget, seed : int, optional
        Algorithm 2's phase-3 runs and seed (default: the template's).
    bootstrap : int
        Parametric-bootstrap refits of 05_analysis (0: t intervals only, the fast default).
    explain_target : str
        The target of 06_explain's t-SNE map.
    workers : int, optional
        Dask workers of the sweep (default: the template's, else sized to the machine).

    Returns
    -------
    Study
        ``.report()`` prints what ``mtdtl study`` shows. Run again, it resumes: the corpus, the
        store, every finished run and the baselines are reused, and a notebook stage whose inputs
        have not changed is not executed again.
    """
    import hashlib

    from mtdtl.sweep import load_sweep, run_sweep, sweep_from_design

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # see run_walkthrough
    template = load_sweep(sweep)
    d, g = template["data"], template["design"]
    if not d["demo_size"]:
        raise MtdtlError(f"{template.file}: the study in miniature runs on the demo corpus; set [data] demo_size "
                         "(for your own data, use 04_design and mtdtl sweep run)")
    if g["kind"] != "generate":
        raise MtdtlError(f"{template.file}: [design] kind = {g['kind']!r}; the study in miniature generates its "
                         "design with Algorithm 2 (kind = \"generate\")")
    budget = g["budget"] if budget is None else int(budget)
    seed = g["seed"] if seed is None else int(seed)
    timings: dict[str, float] = {}

    def stage(name: str, params: dict, key_extra: str = "", outputs: tuple = ()) -> None:
        key = hashlib.sha256((repr(sorted(params.items())) + key_extra).encode()).hexdigest()[:16]
        if _stage_done(out, name, key) and all(Path(o).exists() for o in outputs):
            log.info("== %s: done before, with the same inputs (not executed again) ==", name)
            return
        t = time.perf_counter()
        log.info("== %s ==", name)
        run_notebook(name, out / f"{name}.ipynb", parameters=params, cwd=out, progress=progress)
        _stage_record(out, name, key)
        timings[name] = time.perf_counter() - t

    # the corpus and 01_preprocess (the store the sweep trains on)
    t0 = time.perf_counter()
    from mtdtl.corpora.demo import build_demo_corpus

    corpus, store = template.data_paths()
    corpus = Path(build_demo_corpus(root=corpus, size=d["demo_size"], seed=d["demo_seed"], workers=workers,
                                    progress=progress))
    timings["corpus"] = time.perf_counter() - t0
    stage("01_preprocess", {"corpus": str(corpus), "store": str(store), "seed": d["demo_seed"],
                            "n_components": d["k"], "workers": 0}, outputs=(Path(store) / "store.json",))
    # 04_design: the design, its balance and aliasing, the cost; writes sweep.toml
    sweep_file = out / "sweep.toml"  # its runs, baselines and results go to <out>/sweep/
    stage("04_design", {"budget": budget, "seed": seed, "sources": ",".join(g["sources"]),
                        "repetitions": f"{g['ss_repetitions']},{g['all_repetitions']}",
                        "template": str(template.file), "sweep_out": str(sweep_file), "sweep_name": "study",
                        "out_dir": str(out / "design")},
          key_extra=template.file.read_text(), outputs=(sweep_file,))
    # the sweep: every run of the design, then the baselines, then the collected results table
    t = time.perf_counter()
    log.info("== the sweep (%s) ==", sweep_file)
    report = run_sweep(sweep_file, workers=workers, progress=progress)
    timings["sweep"] = time.perf_counter() - t
    failed = report.status[report.status["state"] == "failed"]
    if len(failed):
        log.warning("%d run(s) failed (their notebooks keep the traceback): %s; the analysis uses the others",
                    len(failed), ", ".join(failed["run"].astype(str)))
    results_csv = load_sweep(sweep_file).results_path
    if not results_csv.is_file() or report.results.empty:
        raise MtdtlError(f"the sweep produced no results ({results_csv}); see mtdtl sweep status {sweep_file}")
    digest = hashlib.sha256(results_csv.read_bytes()).hexdigest()
    # 05_analysis on the collected table
    stage("05_analysis", {"results": str(results_csv), "bootstrap": int(bootstrap), "seed": seed,
                          "out_dir": str(out / "analysis")}, key_extra=digest,
          outputs=(out / "analysis" / "metrics.json",))
    # 06_explain on the first finished multi-source run with the most sources
    runs = report.status[(report.status["kind"] == "run") & (report.status["state"] == "done")]
    multi = runs[runs["arch"] != "ss_r"].sort_values(["n_sources", "order"], ascending=[False, True])
    if multi.empty:
        raise MtdtlError("no multi-source run finished: nothing for 06_explain; see mtdtl sweep status "
                         f"{sweep_file}")
    chosen = str(multi.iloc[0]["run"])
    run_dir = load_sweep(sweep_file).runs_dir / chosen
    stage("06_explain", {"run_dir": str(run_dir), "target": explain_target, "corpus": str(corpus),
                         "seed": seed, "out_dir": str(out / "explain")},
          key_extra=hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest(),
          outputs=(out / "explain" / "metrics.json",))
    import json

    metrics = json.loads((out / "analysis" / "metrics.json").read_text())
    return Study(out_dir=out, sweep_file=sweep_file, results=report.results, status=report.status,
                 findings=list(metrics.get("findings", [])), explained_run=chosen, timings=timings)
