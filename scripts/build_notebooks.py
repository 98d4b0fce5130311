"""Write the walkthrough notebooks in notebooks/ from the cell lists below.

The .ipynb files are what users open and papermill runs; this script keeps them reviewable
(plain diffs) and guarantees the house rules: imports first, one cell tagged `parameters`,
no outputs, no function or class definitions. Run: .venv/bin/python scripts/build_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"


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
# 01 · Preprocess: audio front end, spectrogram store and learning-source labels

Kim et al. (2019), Sections 2.3 and 3.1.1, Tables 1-2. This notebook builds (or opens) a corpus,
computes the dB mel spectrogram (1024/256/128, stereo, 22,050 Hz) of every learning clip into an
on-disk spectrogram store, fits the per-band standard scaler on the training split, and reduces every
learning source to a k-dimensional distribution z_t per track: pLSA topics for count data (TF-IDF first for
`lyrics`; artist-level tags for `artist`), a GMM posterior for the scalars `bpm` and `year`, same-track pairs
for `self`. Everything resumes: a second run recomputes nothing.
"""),
    code("""
import json
from pathlib import Path

import pandas as pd
from IPython.display import display

from mtdtl import plots
from mtdtl.corpora import Corpus
from mtdtl.log import setup_logging
from mtdtl.paths import demo_corpus_dir, stores_dir
from mtdtl.preprocess import preprocess_corpus
from mtdtl.sources import load_reduced
from mtdtl.sources.reduce import coverage_table, topic_table
from mtdtl.store import SpectrogramStore

setup_logging("INFO")
"""),
    params("""
corpus: str = ""  # corpus folder; empty: the demo corpus of size and seed, built if missing
size: str = "small"  # demo corpus size: tiny, small, medium, large or full
seed: int = 0  # seed of the corpus and of every reduction
store: str = ""  # spectrogram store folder; empty: data dir/stores/corpus folder name
n_components: int = 50  # k: pLSA topics / GMM components per source (paper: 50)
workers: int = 0  # processes for corpus and store; 0 means all cores
"""),
    code("""
if not corpus:
    from mtdtl.corpora.demo import build_demo_corpus
    corpus = str(build_demo_corpus(root=demo_corpus_dir(size, seed), size=size, seed=seed, workers=workers or None))
store = store or str(stores_dir() / Path(corpus).name)
print(Corpus.open(corpus).summary())
"""),
    md("## Spectrogram store and reduced labels"),
    code("""
store_dir = preprocess_corpus(corpus, store, k=n_components, seed=seed, workers=workers or None)
st = SpectrogramStore.open(store_dir)
reduced = load_reduced(store_dir)
print(f"store {store_dir}: {len(st.track_ids)} clips, splits {st.manifest['split'].value_counts().to_dict()}")
"""),
    md("### Example mel spectrograms (standardised, left channel)"),
    code("plots.mel_examples(st, n=4, seed=seed);"),
    md("### Per-band scaler, fit on the training split only"),
    code("plots.scaler_stats(st);"),
    md("### GMM fits of the scalar sources (z_t is the posterior over the components)"),
    code("plots.gmm_fit(store_dir, sources=[s for s in ('bpm', 'year') if s in reduced]);"),
    md("### Latent topics per source (the paper's Table 2): strongest topics and their top terms"),
    code("""
with pd.option_context("display.max_colwidth", 120):
    for name in [s for s, r in reduced.items() if r.topics is not None and "terms" in r.topics.columns]:
        print(name)
        display(topic_table(store_dir, name, n_topics=5))
"""),
    md("### Label coverage"),
    code("""
cov = coverage_table(store_dir)
display(cov)
plots.coverage(cov);
"""),
    code("""
metrics = {"store": str(store_dir), "n_clips": len(st.track_ids), "k": n_components,
           "coverage": dict(zip(cov["source"], cov["coverage"].round(4)))}
(Path(store_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"metrics: {Path(store_dir) / 'metrics.json'}")
metrics
"""),
]

NB["02_train"] = [
    md("""
# 02 · Train: one representation network with Algorithm 1

Kim et al. (2019), Sections 3.1-3.3 (Table 3, Figures 4-5, Table 4, Algorithm 1). The base CNN
takes 2.5 s stereo crops (2 x 216 x 128 standardised dB mel) and ends in a 256-unit fc-feature
layer; multi-source architectures share it to different depths (`ss_r`, `mss_cr`, `ms_cr@2`,
`ms_cr@4`, `ms_cr@6`, `ms_sr@fc`). Every iteration picks one learning source at random, draws a
batch of training tracks that have its labels and a fresh random crop of each, and minimises the
KL divergence to the source's topic distribution z_t (cross-entropy of same/different-track pairs
for `self`). Adam, learning rate 2.5e-4, L2 1e-6; an epoch is l·m iterations. Training
checkpoints every `checkpoint_every` epochs and resumes exactly where it stopped; a finished run
is returned as it is.
"""),
    code("""
import json
from pathlib import Path

from IPython.display import display

from mtdtl.log import setup_logging
from mtdtl.models import build_model, param_table
from mtdtl.training import TrainConfig, plot_curves, train
from mtdtl.walkthrough import ensure_demo_store

setup_logging("INFO")
"""),
    params("""
arch: str = "ms_cr@6"  # architecture id: ss_r, mss_cr, ms_cr@2, ms_cr@4, ms_cr@6 or ms_sr@fc
sources: str = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist"  # learning sources, comma- or +-separated
epochs: int = 30  # N (paper: 200)
batch_size: int = 128  # b (paper: 128)
lr: float = 2.5e-4  # Adam learning rate (paper: 2.5e-4)
seed: int = 0  # initial weights, dropout, sources, tracks and crops
device: str = "auto"  # auto (CUDA when present), cuda or cpu
store: str = ""  # spectrogram store with reduced labels; empty: the demo store of demo_size, built if missing
demo_size: str = "small"  # demo corpus size used when store is empty
out_dir: str = ""  # run folder for checkpoint, log and curves; empty: data dir/runs/store name/run id
width: str = "full"  # full (Table 3) or tiny (tests)
checkpoint_every: int = 1  # write the checkpoint every k epochs
max_steps: int = 0  # stop after this many iterations in total, resumable; 0 means no limit
"""),
    code("""
store = store or str(ensure_demo_store(size=demo_size, seed=seed))
config = TrainConfig(arch=arch, sources=sources, store=store, out_dir=out_dir or None, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, device=device, width=width,
                     checkpoint_every=checkpoint_every, max_steps=max_steps or None)
print(f"run {config.spec.id}")
config
"""),
    md("## The network"),
    code("""
model = build_model(arch, config.sources, width=width)
print(model)
print(f"representation: {model.feature_dim} dimensions")
display(param_table(n_sources=[len(config.sources), 8], width=width))
"""),
    md("## Training (Algorithm 1)"),
    code("""
run_dir = train(config)
"""),
    md("### Learning curves per source"),
    code("""
fig = plot_curves(run_dir)
fig
"""),
    code("""
metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
metrics
"""),
]

NB["03_evaluate"] = [
    md("""
# 03 · Evaluate: transfer of a learned representation to target tasks

Kim et al. (2019), Section 4 (Table 5, Eqs. 7-9). Every track of a target dataset is cut into
non-overlapping 2.5 s slices; the fc-feature of each slice (all branches, for concatenating
architectures) is averaged and its standard deviation taken over the track (mean ‖ std). The
features feed an MLP probe (2 x 256 ReLU units, Adam, 200 iterations: accuracy for
classification, R² for regression) or a content-aware weighted matrix factorisation
(cold-start items, nDCG@500), each repeated. The trained representation is compared with the
paper's baselines: MFCC, the same network untrained (Rand), and Choi et al.'s convnet when its
weights are supplied. Features are cached, and finished (representation, target) pairs are
skipped when the notebook runs again.
"""),
    code("""
import json
from pathlib import Path

import pandas as pd
from IPython.display import display

from mtdtl import plots
from mtdtl.evaluation import summarize
from mtdtl.evaluation.reference import choi_reference_check
from mtdtl.log import setup_logging
from mtdtl.paths import demo_corpus_dir, demo_store_dir
from mtdtl.runs import RunSpec
from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run, resolve_targets

setup_logging("INFO")
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
baselines: str = "mfcc,rand"  # comma-separated: mfcc, rand (the paper's: untrained SS-R), rand_arch (the run's architecture untrained), choi
choi_weights: str = ""  # Choi et al.'s model_best.hdf5, needed for the choi baseline
reference_dir: str = ""  # shared/reference folder: also runs the probes on Choi et al.'s published features
out_dir: str = ""  # results.csv, figures and metrics.json; empty: run_dir/evaluate
"""),
    code("""
corpus = corpus or str(demo_corpus_dir(size, seed))
run_dir = run_dir or str(RunSpec(arch, sources, seed=seed, epochs=epochs, width=width,
                                 store=store or str(demo_store_dir(size, seed))).folder())
ours = representation_from_run(run_dir)
out = Path(out_dir or Path(run_dir) / "evaluate")
out.mkdir(parents=True, exist_ok=True)
print(f"evaluating run {ours.name} ({run_dir})")
representations = [ours] + baseline_representations(baselines, run=ours, choi_weights=choi_weights or None)
target_sets = resolve_targets(targets, corpus=corpus, roots=target_roots or None)
for t in target_sets:
    print(t.summary(), end="\\n\\n")
"""),
    md("## Features, probes and recommendation"),
    code("""
results = evaluate_transfer(representations, target_sets, results=out / "results.csv",
                            repetitions=repetitions, seed=seed)
summary = summarize(results)
display(summary)
"""),
    md("### Against the baselines (in the style of the paper's Figure 8)"),
    code("""
fig = plots.results_vs_baselines(results, ours=ours.name)
fig.savefig(out / "transfer_vs_baselines.png", dpi=120, bbox_inches="tight")
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
    code("""
metrics = {
    "representation": ours.name, "arch": ours.arch, "sources": ours.sources,
    "results": str(out / "results.csv"),
    "mean": {f"{r}|{t}|{m}": float(v) for (r, t, m), v in results.groupby(["representation", "target", "metric"])["value"].mean().items()},
}
if choi_table is not None:
    metrics["choi_reference"] = json.loads(choi_table.to_json(orient="records"))
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"results table: {out / 'results.csv'}")
"""),
]


def main():
    OUT.mkdir(exist_ok=True)
    for name, cells in NB.items():
        for i, cell in enumerate(cells):
            cell["id"] = f"{name.split('_', 1)[0]}-{i:02d}"  # stable ids: regenerating gives the same file
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        nbformat.validate(nb)
        path = OUT / f"{name}.ipynb"
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    main()
