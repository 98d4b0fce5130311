"""Write the walkthrough notebooks from the cell lists below.

The .ipynb files are what users open and papermill runs; this script keeps them reviewable
(plain diffs) and guarantees the house rules: imports first, one cell tagged `parameters`
(then `setup_notebook(log_level)`), no outputs, no function or class definitions. Every
notebook is written twice, byte for byte the same: to notebooks/ (what a checkout opens) and
to mtdtl/data/notebooks/ (shipped in the package, so `mtdtl demo` works after a plain
`pip install`). Run: .venv/bin/python scripts/build_notebooks.py

Each notebook starts with two or three sentences of what it will show and ends with a cell
that displays a computed summary (mtdtl.report); every figure cell saves the figure
(save_figure: PNG and PDF) and ends with the figure, so it shows where it is made.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks"
PACKAGE_OUT = ROOT / "mtdtl" / "data" / "notebooks"

#: Notebook metadata: the kernel, and the language (nbconvert --to script writes .py).
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python", "file_extension": ".py", "mimetype": "text/x-python",
                      "pygments_lexer": "ipython3", "codemirror_mode": {"name": "ipython", "version": 3},
                      "nbconvert_exporter": "python"},
}


def md(text):
    return new_markdown_cell(text.strip())


def code(text, tags=()):
    c = new_code_cell(text.strip())
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def params(text):
    return code(text, tags=("parameters",))


NB = {}

NB["01_preprocess"] = [
    md("""
# 01 · Preprocess: from audio to spectrograms and learning-source labels

This notebook turns a music corpus into what the networks learn from: a store of dB mel
spectrograms of every learning clip, and for every learning source (tags, tempo, year,
listeners, lyrics, ...) a k-dimensional distribution z_t per track. It shows example
spectrograms, the scaler, the fitted mixtures, the strongest topics and how many clips each
source labels, and ends with a summary of what it found.
"""),
    code("""
import json
from pathlib import Path

import pandas as pd
from IPython.display import display

from mtdtl import plots
from mtdtl.corpora import Corpus
from mtdtl.paths import demo_corpus_dir, stores_dir
from mtdtl.plots import save_figure
from mtdtl.preprocess import preprocess_corpus
from mtdtl.report import preprocess_summary, setup_notebook, topics_overview
from mtdtl.sources import load_reduced
from mtdtl.sources.reduce import coverage_table
from mtdtl.store import SpectrogramStore
from mtdtl.walkthrough import demo_k
"""),
    params("""
corpus: str = ""  # corpus folder; empty: the demo corpus of size and seed, built if missing
size: str = "small"  # demo corpus size: tiny, small, medium, large or full
seed: int = 0  # seed of the corpus and of every reduction
store: str = ""  # spectrogram store folder; empty: data dir/stores/corpus folder name
n_components: int = 0  # k: pLSA topics / GMM components per source; 0: the paper's 50 (8 for the tiny demo corpus)
workers: int = 0  # processes for corpus and store; 0 means all cores
log_level: str = "INFO"  # WARNING, INFO (a few lines per stage), DETAIL (per source and target) or DEBUG
"""),
    code("setup_notebook(log_level)"),
    md("## The corpus"),
    code("""
if not corpus:
    from mtdtl.corpora.demo import build_demo_corpus
    corpus = str(build_demo_corpus(root=demo_corpus_dir(size, seed), size=size, seed=seed, workers=workers or None))
store = store or str(stores_dir() / Path(corpus).name)
k = n_components or demo_k(size)
figures = Path(store) / "figures"  # every figure of this notebook is also saved here (PNG and PDF)
print(Corpus.open(corpus).summary())
"""),
    md("""
## Spectrogram store and reduced labels

Kim et al. (2019), Sections 2.3 and 3.1.1, Tables 1-2. Every learning clip becomes a dB mel
spectrogram (1024-sample window, hop 256, 128 bands, stereo, 22,050 Hz) in one on-disk store; a
per-band standard scaler is fit on the training split only. Every learning source is reduced to
a distribution over k latent factors per track: pLSA topics for count data (TF-IDF first for
`lyrics`; artist-level tags for `artist`), a Gaussian-mixture posterior for the scalars `bpm`
and `year`, same-track pairs for `self`. Everything resumes: a second run recomputes nothing.
"""),
    code("""
store_dir = preprocess_corpus(corpus, store, k=k, seed=seed, workers=workers or None)
st = SpectrogramStore.open(store_dir)
reduced = load_reduced(store_dir)
print(f"store {store_dir}: {len(st.track_ids)} clips, splits {st.manifest['split'].value_counts().to_dict()}")
"""),
    md("### Example mel spectrograms (standardised, left channel)"),
    code("""
fig = plots.mel_examples(st, n=4, seed=seed, corpus=corpus)
save_figure(fig, figures / "mel_examples")
fig
"""),
    md("### Per-band scaler, fit on the training split only"),
    code("""
fig = plots.scaler_stats(st)
save_figure(fig, figures / "scaler")
fig
"""),
    md("### Gaussian mixtures of the scalar sources (z_t is the posterior over the components)"),
    code("""
fig = plots.gmm_fit(store_dir, sources=[s for s in ("bpm", "year") if s in reduced])
save_figure(fig, figures / "gmm_fit")
fig
"""),
    md("### Latent topics per source (the paper's Table 2): the strongest topics and their top terms"),
    code("""
with pd.option_context("display.max_colwidth", 100):
    display(topics_overview(store_dir, n_topics=3, n_terms=6))
"""),
    md("### Label coverage"),
    code("""
cov = coverage_table(store_dir)
display(cov.round(3))
fig = plots.coverage(cov)
save_figure(fig, figures / "coverage")
fig
"""),
    md("## Summary"),
    code("""
summary = preprocess_summary(store_dir)
metrics = {"store": str(store_dir), "n_clips": len(st.track_ids), "k": k,
           "coverage": dict(zip(cov["source"], cov["coverage"].round(4))), "findings": summary.findings}
(Path(store_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"metrics: {Path(store_dir) / 'metrics.json'}; figures: {figures}")
summary
"""),
]

NB["02_train"] = [
    md("""
# 02 · Train: one representation network with Algorithm 1

This notebook trains one network on the learning sources that 01 reduced, shows its layers in
the style of the paper's Table 3, its learning curves per source and a summary of the run. By
default it trains MS-CR@6 on all eight sources of the demo corpus; a finished run is reused,
an interrupted one resumes.
"""),
    code("""
from pathlib import Path

from IPython.display import display

from mtdtl.models import build_model, param_table
from mtdtl.plots import save_figure
from mtdtl.report import network_summary, reduced_k, setup_notebook, training_summary
from mtdtl.training import TrainConfig, default_out_dir, plot_curves, train
from mtdtl.walkthrough import demo_k, ensure_demo_store
"""),
    params("""
arch: str = "ms_cr@6"  # architecture id: ss_r, mss_cr, ms_cr@2, ms_cr@4, ms_cr@6 or ms_sr@fc
sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist"  # learning sources, comma- or +-separated
epochs: int = 30  # N (paper: 200)
batch_size: int = 128  # b (paper: 128)
lr: float = 2.5e-4  # Adam learning rate (paper: 2.5e-4)
seed: int = 0  # initial weights, dropout, sources, tracks and crops
device: str = "auto"  # auto (CUDA when present), cuda or cpu
precision: str = "fp32"  # fp32 (paper), bf16 autocast, or auto: bf16 where the hardware does it natively
store: str = ""  # spectrogram store with reduced labels; empty: the demo store of demo_size, built if missing
demo_size: str = "small"  # demo corpus size used when store is empty
n_components: int = 0  # k of the demo store built when store is empty; 0: 50 (8 for the tiny corpus)
out_dir: str = ""  # run folder for checkpoint, log and figures; empty: data dir/runs/store name/run id
width: str = "full"  # full (Table 3) or tiny (tests)
checkpoint_every: int = 1  # write the checkpoint every k epochs
max_steps: int = 0  # stop after this many iterations in total, resumable; 0 means no limit
show_model: bool = False  # also print the whole PyTorch module (long)
log_level: str = "INFO"  # WARNING, INFO (a few lines per stage), DETAIL or DEBUG
figure_formats: str = "png,pdf"  # formats of the saved figures, comma-separated: png, pdf, svg
"""),
    code("setup_notebook(log_level)"),
    code("""
store = store or str(ensure_demo_store(size=demo_size, seed=seed, k=n_components or demo_k(demo_size)))
config = TrainConfig(arch=arch, sources=sources, store=store, out_dir=out_dir or None, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, device=device, width=width, precision=precision,
                     checkpoint_every=checkpoint_every, max_steps=max_steps or None)
print(f"run {config.spec.id}\\nfolder {config.out_dir or default_out_dir(config)}\\nstore {store}")
"""),
    md("""
## The network

Kim et al. (2019), Sections 3.1-3.2 (Table 3, Figures 4-5). The base CNN takes 2.5 s stereo
crops (2 x 216 x 128 standardised dB mel) and ends in a 256-unit fc-feature layer. The
multi-source architectures share it up to a branch point (`ss_r` and `ms_sr@fc` share
everything, `ms_cr@6`, `ms_cr@4`, `ms_cr@2` branch after conv5, conv3, conv1, `mss_cr` shares
nothing); each source has its own output head with k units. The table is the network trained
below: its sources, and k from the store's reduced labels.
"""),
    code("""
model = build_model(config.arch, config.sources, width=width, n_out=reduced_k(store, config.sources))
display(network_summary(model))
if show_model:
    print(model)
"""),
    md("### Its size against the other architectures (Section 5.4, Figure 15)"),
    code("""
display(param_table(n_sources=[len(config.sources), 8], width=width, n_out=model.n_out).round(2))
"""),
    md("""
## Training (Algorithm 1)

Every iteration picks one learning source at random, draws a batch of training tracks that have
its labels and a fresh random crop of each, and minimises the KL divergence to the source's
distribution z_t (cross-entropy of same/different-track pairs for `self`). Adam, learning rate
2.5e-4, L2 1e-6; an epoch is l·m iterations. The checkpoint is written every
`checkpoint_every` epochs; a stopped run resumes exactly where it stopped.
"""),
    code("""
run_dir = train(config)
"""),
    md("### Learning curves per source"),
    code("""
fig = plot_curves(run_dir)
save_figure(fig, Path(run_dir) / "figures" / "learning_curves", formats=figure_formats)
fig
"""),
    md("## Summary"),
    code("""
training_summary(run_dir)
"""),
]

NB["03_evaluate"] = [
    md("""
# 03 · Evaluate: does the learned representation transfer to new tasks?

This notebook computes the trained network's features for the tracks of target tasks it never
saw (on the demo corpus: genre, instrument, meter, note density, pitch height and listening),
fits a small probe per task, and compares the scores with the paper's baselines, MFCC and the
same network untrained (Rand), and with Chance (mtdtl's reference level: the probe given one
constant value per track, so it learns only the labels' distribution, e.g. the majority class).
It ends with a table of tasks by representations, a Figure-8-style plot and a summary of which
representation wins where, and on which tasks nobody beats Chance.
"""),
    code("""
import json
from pathlib import Path

from IPython.display import display

from mtdtl import plots
from mtdtl.evaluation.protocol import ProtocolOptions
from mtdtl.evaluation.reference import choi_reference_check
from mtdtl.paths import demo_corpus_dir, demo_store_dir
from mtdtl.plots import save_figure
from mtdtl.report import display_names, results_pivot, setup_notebook, transfer_summary
from mtdtl.runs import RunSpec
from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run, resolve_targets
"""),
    params("""
run_dir: str = ""  # training run folder; empty: the run 02_train makes with the run parameters below
arch: str = "ms_cr@6"  # run parameters (as in 02_train), used when run_dir is empty
sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist"
epochs: int = 30
width: str = "full"
store: str = ""  # the run's spectrogram store; empty: the demo store of size and seed
corpus: str = ""  # demo corpus folder for the demo targets; empty: the demo corpus of size and seed
size: str = "small"  # demo corpus size when corpus is empty
seed: int = 0  # the run's seed, and the base seed of splits and probes
targets: str = "demo"  # comma-separated target names; demo means every task of the demo corpus
target_roots: str = ""  # real dataset folders as name:path pairs, comma-separated, e.g. gtzan:/data/gtzan
repetitions: int = 5  # repetitions of every evaluation (paper: 5)
feature_scaling: str = "standard"  # the probe's feature scaling: standard, clip, none, pca_whiten or select (docs/learning.md)
baselines: str = "mfcc,rand,chance"  # comma-separated: mfcc, rand (the paper's: untrained SS-R), rand_arch (the run's architecture untrained), choi, chance (no information: the labels' distribution)
choi_weights: str = ""  # Choi et al.'s model_best.hdf5, needed for the choi baseline
reference_dir: str = ""  # shared/reference folder: also runs the probes on Choi et al.'s published features
out_dir: str = ""  # results.csv, figures and metrics.json; empty: run_dir/evaluate
log_level: str = "INFO"  # WARNING, INFO (a few lines per stage), DETAIL (per target) or DEBUG
figure_formats: str = "png,pdf"  # formats of the saved figures, comma-separated: png, pdf, svg
"""),
    code("setup_notebook(log_level)"),
    code("""
corpus = corpus or str(demo_corpus_dir(size, seed))
run_dir = run_dir or str(RunSpec(arch, sources, seed=seed, epochs=epochs, width=width,
                                 store=store or str(demo_store_dir(size, seed))).folder())
ours = representation_from_run(run_dir)  # checked first: a missing run creates nothing
representations = [ours] + baseline_representations(baselines, run=ours, choi_weights=choi_weights or None)
target_sets = resolve_targets(targets, corpus=corpus, roots=target_roots or None)
out = Path(out_dir or Path(run_dir) / "evaluate")
out.mkdir(parents=True, exist_ok=True)
print(f"evaluating run {ours.name} ({run_dir}) against {', '.join(r.name for r in representations[1:])}\\n")
for t in target_sets:
    print(t.summary(), end="\\n\\n")
"""),
    md("""
## Features, probes and recommendation

Kim et al. (2019), Section 4 (Table 5, Eqs. 7-9). Every track is cut into non-overlapping 2.5 s
slices; the fc-features of the slices (all branches, for concatenating architectures) are
averaged and their standard deviation taken over the track (mean ‖ std). The features feed an
MLP probe (2 x 256 ReLU units, Adam, 200 iterations: accuracy for classification, R² for
regression) or a content-aware weighted matrix factorisation (cold-start items, nDCG@500), each
repeated. Features are cached, and finished (representation, target) pairs are skipped when the
notebook runs again.
"""),
    code("""
results = evaluate_transfer(representations, target_sets, results=out / "results.csv",
                            repetitions=repetitions, seed=seed,
                            options=ProtocolOptions(feature_scaling=feature_scaling))
"""),
    md("""
## Results: tasks x representations

Mean ± standard deviation over the repetitions; the best of each task in bold. The table below
it says which representation (run id) each short name stands for. Read every score against
Chance's: a representation at Chance's level taught the probe nothing about that task.
"""),
    code("""
names = display_names(results)
results_pivot(results, names=names)
"""),
    md("### Against the baselines (in the style of the paper's Figure 8)"),
    code("""
fig = plots.results_vs_baselines(results, ours=ours.name, names=names)
save_figure(fig, out / "figures" / "transfer_vs_baselines", formats=figure_formats)
fig
"""),
    md("""
### Real-data check: the probes on Choi et al.'s published features

With `reference_dir` set, the same MLP probe runs on the precomputed convnet features that Choi
et al. (2017) released for GTZAN (the study's fault-filtered split), Extended Ballroom and
emoMusic, beside the MFCC features shipped with them.
"""),
    code("""
choi_table = None
if reference_dir:
    choi_table = choi_reference_check(reference_dir, n_repetitions=repetitions, seed=seed)
    display(choi_table)
"""),
    md("## Summary"),
    code("""
summary = transfer_summary(results, names=names)
metrics = {
    "representation": ours.name, "arch": ours.arch, "sources": ours.sources,
    "results": str(out / "results.csv"), "names": names, "findings": summary.findings,
    "mean": {f"{r}|{t}|{m}": float(v) for (r, t, m), v in results.groupby(["representation", "target", "metric"])["value"].mean().items()},
}
if choi_table is not None:
    metrics["choi_reference"] = json.loads(choi_table.to_json(orient="records"))
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"results table: {out / 'results.csv'}; figures: {out / 'figures'}")
summary
"""),
]



NB["04_design"] = [
    md("""
# 04 · Design: which runs to train (Algorithm 2, the alias matrix, the cost)

Kim et al. (2019), Section 4.3. The study cannot train every combination of architecture and
learning sources (5 multi-source architectures x 246 source subsets = 1,230 candidates with the
8 sources), so it trains them in three phases: SS-R on each source alone (phase 1), each
multi-source architecture with all sources (phase 2), and runs chosen one at a time by
Algorithm 2 (phase 3): the candidate that keeps the design most balanced over the architecture,
the number of sources and each source's presence, then the least aliased among main effects,
then one at random.

This notebook generates (or imports) such a design, shows its balance and its alias matrix
(Figure 7), compares it with the authors' released design, shows what it would cost on this
machine, and writes a sweep file that `mtdtl sweep run` executes (it runs the sweep itself only
when `run_sweep` is set).
"""),
    code("""
from pathlib import Path

import pandas as pd
from IPython.display import display

from mtdtl.constants import SOURCE_NAMES
from mtdtl.design import design_metrics, released_design, replay
from mtdtl.plots import save_figure
from mtdtl.plots.design import alias_heatmap
from mtdtl.report import setup_notebook
from mtdtl.sweep import load_sweep, run_sweep, sweep_from_design, sweep_plan
"""),
    params("""
budget: int = 352  # phase-3 runs chosen by Algorithm 2 (the paper trained 352)
seed: int = 0  # seed of Algorithm 2's random pick
repetitions: str = "6,5"  # phase-1 SS-R runs per source, phase-2 runs per architecture with all sources (the paper's)
sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist"  # the design's learning sources
design: str = ""  # a design file to import (mtdtl's format or the authors' released CSV); empty: generate
template: str = "paper"  # the sweep whose data, training and evaluation settings are kept: paper, debug or a .toml
sweep_out: str = ""  # the sweep file to write; empty: papermill_runs/design-b<budget>-seed<seed>.toml beside the template
sweep_name: str = ""  # the sweep's name in its logs; empty: the file's stem
calibrate: bool = True  # measure a few training steps here to project the sweep's wall time
run: bool = False  # run the sweep now (resumable; otherwise: mtdtl sweep run <file>)
out_dir: str = ""  # figures and tables; empty: the sweep's output folder
log_level: str = "INFO"  # WARNING, INFO, DETAIL or DEBUG
"""),
    code("setup_notebook(log_level)"),
    md("## The design, and the sweep file that runs it"),
    code("""
src = [s.strip() for s in sources.split(",") if s.strip()]
sweep_file = sweep_from_design(budget=budget, seed=seed, repetitions=repetitions, sources=src, design=design,
                               template=template, out=sweep_out or None, name=sweep_name)
sweep = load_sweep(sweep_file)
d = sweep.design()  # exactly the runs `mtdtl sweep run` will train
out = Path(out_dir) if out_dir else sweep.out / "design"
out.mkdir(parents=True, exist_ok=True)
print(d)
print(f"sweep file: {sweep_file}")
display(d.summary())
"""),
    md("""
### Balance of the phase-3 runs

Per factor: how many levels, how many are exhausted (every candidate at that level already
chosen), and the spread of the counts over the others. Algorithm 2 keeps the largest spread
(the design's unbalance) as small as it can at every step.
"""),
    code("""
display(d.unbalance_table())
trace = replay(d)
print(f"steps at which the chosen run had the least unbalance available: "
      f"{int((trace['unbalance'] == trace['min_unbalance']).sum())} of {len(trace)}")
"""),
    md("""
### The alias matrix among main effects (Figure 7)

The correlation of every pair of level indicators over the phase-3 runs: 0 means the two
effects can be estimated independently, 1 that they cannot be told apart.
"""),
    code("""
fig = alias_heatmap(d)
save_figure(fig, out / "figures" / "fig7_alias_matrix")
fig
"""),
    md("""
### Beside the authors' design

The authors' released design (600 phase-3 runs in generation order, of which the study trained
the first 352), cut at the same budget: unbalance and aliasing side by side, and its alias
matrix. Comparable only when the design uses the paper's 8 sources; otherwise the authors'
design is shown as the study ran it.
"""),
    code("""
same = tuple(d.sources) == tuple(SOURCE_NAMES)
n_released = len(released_design(budget=None).phase3)
theirs = released_design(budget=min(budget, n_released) if same else 352)
metrics = {"this design": design_metrics(d)}
if same:
    metrics["authors' design"] = design_metrics(theirs)
else:
    print(f"this design has other sources than the paper's 8: no side-by-side; below, the authors' design "
          f"as the study ran it (352 phase-3 runs), for reference")
compare = pd.DataFrame(metrics)
display(compare)
fig = alias_heatmap(theirs)
save_figure(fig, out / "figures" / "fig7_alias_matrix_authors")
display(fig)
compare.to_csv(out / "design_metrics.csv")
_ = d.to_csv(out / "design.csv")
"""),
    md("""
## The cost, before anything runs

Runs, model-epochs and training samples from the store, and the projected wall time on this
machine from a few measured training steps of every architecture (with finished runs of this
sweep, their measured times instead). The last lines project the paper's full study.
"""),
    code("""
plan = sweep_plan(sweep, calibrate_here=calibrate)
print(plan.report())
plan.runs.to_csv(out / "plan.csv", index=False)
"""),
    code("""
if run:
    report = run_sweep(sweep)
    print(report.report())
else:
    print(f"to run it: mtdtl sweep run {sweep_file}   (resumable; mtdtl sweep status {sweep_file} while it runs)")
"""),
]


NB["05_analysis"] = [
    md("""
# 05 · Analysis: the paper's statistics and Figures 8-15 from a results table

Kim et al. (2019), Section 5 (Figures 8-15, Table 6, Eqs. 10-16). Everything here is computed
from one tidy results table (a sweep's collected `results.csv`, or a folder of run folders):
scores standardised within each target, the two hierarchical models with their intervals, the
pairwise comparisons between strategies, the variance components of the learning sources, the
compactness of the networks, and the findings for the paper's two research questions.
"""),
    code("""
import json
from pathlib import Path

from IPython.display import Markdown, display

from mtdtl.analysis import analyze, format_table6, prepare
from mtdtl.plots import paper, save_figure
from mtdtl.report import setup_notebook
"""),
    params("""
results: str = ""  # a results table (CSV) or a folder of run folders (a sweep's output); required
bootstrap: int = 0  # parametric bootstrap refits per model for the intervals; 0: t intervals only (the paper: B of 1000, on a cluster)
workers: int = 1  # processes for the bootstrap; 0 means all CPUs
scheduler: str = ""  # address of a Dask scheduler for the bootstrap (e.g. tcp://host:8786); empty: local
allow_mixed_protocols: bool = False  # accept rows of several evaluation protocols (with a warning)
seed: int = 0  # seed of the bootstrap
out_dir: str = ""  # figures, tables and metrics.json; empty: an analysis folder beside the results
log_level: str = "INFO"  # WARNING, INFO, DETAIL or DEBUG
"""),
    code("setup_notebook(log_level)"),
    code("""
if not results:
    raise ValueError("set the parameter results: a results .csv or a sweep's output folder")
src = Path(results)
out = Path(out_dir) if out_dir else (src if src.is_dir() else src.parent) / "analysis"
out.mkdir(parents=True, exist_ok=True)
data = prepare(results, allow_mixed_protocols=allow_mixed_protocols)
data.counts()
"""),
    md("## Single sources, strategies and the number of sources (Figures 8-10)"),
    code("""
for name, fig in (("fig8_single_source", paper.fig8_single_source(data)), ("fig9_strategies", paper.fig9_strategies(data)),
                  ("fig10_n_sources", paper.fig10_n_sources(data))):
    save_figure(fig, out / "figures" / name)
    display(fig)
"""),
    md("## The hierarchical models (Eqs. 10-16), their intervals and the pairwise comparisons"),
    code("""
client = None
if scheduler:
    from distributed import Client
    client = Client(scheduler)
study = analyze(data, bootstrap=bootstrap, seed=seed, client=client, workers=workers or None)
display(study.strategy.intervals())
display(study.size.intervals())
display(study.contrasts)
"""),
    code("""
for name in ("fig11_strategy_effects", "fig12_size_effects"):
    fig = getattr(paper, name)(study)
    save_figure(fig, out / "figures" / name)
    display(fig)
"""),
    md("## The best single source, the variance components (Table 6) and compactness (Figures 13-15)"),
    code("""
fig = paper.fig13_best_source(data)
save_figure(fig, out / "figures" / "fig13_best_source")
display(fig)
if study.table6 is not None:
    display(format_table6(study.table6))
    names = ("fig14_variance_vs_ssr", "fig15_compactness")
else:
    print("\\n".join(study.notes))
    names = ("fig15_compactness",)
for name in names:
    fig = getattr(paper, name)(study)
    save_figure(fig, out / "figures" / name)
    display(fig)
"""),
    md("## Findings (computed from the fits)"),
    code("""
found = study.findings()
display(Markdown("\\n".join(f"- {f}" for f in found)))
if study.table6 is not None:
    study.table6.to_csv(out / "table6.csv")
else:
    (out / "table6.csv").unlink(missing_ok=True)  # not one from an earlier table
study.contrasts.to_csv(out / "contrasts.csv", index=False)
(out / "metrics.json").write_text(json.dumps({"results": str(results), "findings": found, "bootstrap": bootstrap}, indent=2))
print(f"figures and tables: {out}")
"""),
]


NB["06_explain"] = [
    md("""
# 06 · Explain: what the learning sources say about a target dataset

This notebook draws the paper's Figure 16 for a trained multi-source run: a t-SNE map of a
target dataset in the learned representation, coloured by the target's label, with zoomed
regions where each learning source's strongest predicted topic is written next to a few tracks.
It also lists the strongest topics of example tracks and of the densest regions, and ends with
a summary of what was computed.
"""),
    code("""
import json
from pathlib import Path

from mtdtl.explain import explain
from mtdtl.paths import demo_corpus_dir, demo_store_dir
from mtdtl.plots import save_figure
from mtdtl.plots.explain import fig16_explain
from mtdtl.report import setup_notebook
from mtdtl.runs import RunSpec
"""),
    params("""
run_dir: str = ""  # a trained multi-source run; empty: the run 02_train makes with its default parameters
target: str = "demo:genre"  # one target dataset: demo:<task>, or a real one (gtzan, ...) with target_root
target_root: str = ""  # folder of a real target dataset (e.g. /data/gtzan)
corpus: str = ""  # demo corpus folder for demo targets; empty: the demo corpus of size and seed 0
size: str = "small"  # demo corpus size when corpus or run_dir is empty
n_examples: int = 6  # example tracks in the table of strongest topics
perplexity: float = 30.0  # t-SNE perplexity (lowered automatically for small datasets)
seed: int = 0  # t-SNE seed
out_dir: str = ""  # embedding.csv, tables, figure and metrics.json; empty: run_dir/explain
log_level: str = "INFO"  # WARNING, INFO, DETAIL or DEBUG
"""),
    code("setup_notebook(log_level)"),
    code("""
corpus = corpus or str(demo_corpus_dir(size, 0))
run_dir = run_dir or str(RunSpec("ms_cr@6", "self,bpm,year,taste,tag,lyrics,cdr_tag,artist", seed=0, epochs=30,
                                 width="full", store=str(demo_store_dir(size, 0))).folder())
out = Path(out_dir or Path(run_dir) / "explain")
out.mkdir(parents=True, exist_ok=True)
"""),
    md("""
## The map

Kim et al. (2019), Section 5.5. Every track of the target is one point: its representation is
the mean ‖ std of the network's fc-feature over its 2.5 s slices (what the evaluation uses),
standardised, reduced to 50 principal components and embedded in 2-D with t-SNE. For every
learning source but `self`, the source's output layer (fc-out) turns each slice's feature into a
distribution over the source's topics (z_t); averaged over the slices, its strongest topic names
what the network predicts that source would say about the track.
"""),
    code("""
exp = explain(run_dir, target, corpus=corpus, root=target_root or None, perplexity=perplexity, seed=seed)
exp.embedding.to_csv(out / "embedding.csv", index=False)
exp.embedding.head()
"""),
    md("""
### Figure 16: the map, and the strongest topic terms in its densest regions

Left: the map coloured by the target's label; the boxes are the densest regions. Right: each
region enlarged, with a few numbered tracks and, per source (one colour each), the top terms of
its strongest predicted topic. For `bpm` and `year` a topic is a Gaussian component: its mean ± sd.
"""),
    code("""
regions = exp.zoom_regions(2)
fig = fig16_explain(exp, regions=regions)
save_figure(fig, out / "figures" / "fig16_explain")
fig
"""),
    md("### Strongest topic per source, for example tracks spread over the map"),
    code("""
examples = exp.top_topics_table(n_examples)
examples.to_csv(out / "top_topics.csv", index=False)
examples
"""),
    md("### The dominant topic of each region (mean z_t of its tracks; share: tracks whose own strongest topic it is)"),
    code("""
region_table = exp.region_topics(regions)
region_table
"""),
    md("## Summary"),
    code("""
metrics = {"run": exp.run, "arch": exp.arch, "target": exp.target, "tracks": len(exp.embedding),
           "skipped": len(exp.skipped), "sources": list(exp.sources), **exp.params,
           "regions": json.loads(regions.drop(columns="track_ids").to_json(orient="records"))}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
print(exp.summary())
print(f"files: {out}")
"""),
]


def main():
    outs = [Path(OUT), Path(PACKAGE_OUT)]
    for d in outs:
        d.mkdir(parents=True, exist_ok=True)
    for name, cells in NB.items():
        for i, cell in enumerate(cells):
            cell["id"] = f"{name.split('_', 1)[0]}-{i:02d}"  # stable ids: regenerating gives the same file
        nb = new_notebook(cells=cells, metadata=copy.deepcopy(METADATA))
        nbformat.validate(nb)
        text = nbformat.writes(nb) + "\n"
        for d in outs:
            path = d / f"{name}.ipynb"
            path.write_text(text, encoding="utf-8")
            print("wrote", path)


if __name__ == "__main__":
    main()
