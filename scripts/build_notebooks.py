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
from mtdtl.paths import stores_dir
from mtdtl.preprocess import preprocess_corpus
from mtdtl.sources import load_reduced
from mtdtl.sources.reduce import coverage_table, topic_table
from mtdtl.store import SpectrogramStore
from mtdtl.walkthrough import default_corpus_dir

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
    corpus = str(build_demo_corpus(root=default_corpus_dir(size, seed), size=size, seed=seed, workers=workers or None))
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
Path("metrics.json").write_text(json.dumps(metrics, indent=2))
metrics
"""),
]


def main():
    OUT.mkdir(exist_ok=True)
    for name, cells in NB.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        nbformat.validate(nb)
        path = OUT / f"{name}.ipynb"
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    main()
