"""The main job: the single-run walkthrough on the embedded demo corpus.

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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mtdtl.constants import K
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.notebooks import NOTEBOOKS, html_path, run_notebook
from mtdtl.paths import demo_corpus_dir, demo_store_dir, stores_dir

__all__ = ["ensure_demo_store", "run_walkthrough", "Walkthrough", "demo_k", "DEMO_SIZES", "DEMO_K"]

log = get_logger(__name__)

#: Walkthrough defaults: small enough for a 2-core CPU in about ten minutes.
DEFAULT_EPOCHS = 30

#: Sizes of the demo corpus (:data:`mtdtl.corpora.demo.SIZES`), smallest first.
DEMO_SIZES = ("tiny", "small", "medium", "large", "full")

#: k (topics / GMM components per source) of the demo store where the paper's 50 does not fit:
#: a GMM with k components needs k training values, and the tiny corpus has about 20 training
#: clips (18 with a year).
DEMO_K = {"tiny": 8}


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


def run_walkthrough(*, out_dir: str | Path = "papermill_runs/demo", size: str = "small", seed: int = 0,
                    arch: str = "ms_cr@6", sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist",
                    epochs: int | None = None, k: int | None = None, workers: int | None = None,
                    corpus_root: str | Path | None = None, progress: bool = True) -> Walkthrough:
    """Run the whole single-run walkthrough; finished stages are reused, not recomputed.

    ``k`` (topics / GMM components per source) defaults to :func:`demo_k` of ``size``. The
    architecture, sources and size are checked before any work starts.

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
                      "epochs": epochs or DEFAULT_EPOCHS, "out_dir": str(out / "train")}),
        ("03_evaluate", {"run_dir": str(out / "train"), "corpus": str(corpus), "seed": seed,
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
