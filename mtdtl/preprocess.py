"""Preprocess a corpus for training: spectrogram store + reduced learning-source labels.

:func:`preprocess_corpus` is the one call behind ``notebooks/01_preprocess.ipynb``:

1. open the corpus (:meth:`mtdtl.corpora.Corpus.open`) and take its learning part;
2. build the spectrogram store of those clips with :func:`mtdtl.store.build_store` (the store
   fits its per-mel-band scaler on the training split, Section 3.1.1);
3. reduce every learning source to z_t (:func:`mtdtl.sources.reduce_sources`, Section 2.3), fit
   on the learning training split, for every track in the store, into
   ``<out_dir>/labels/<name>.npz`` plus ``<out_dir>/labels/coverage.csv``.

Every step is resumable: finished clips and finished sources are not recomputed, so rerunning
after an interruption picks up where it stopped. ``<out_dir>/preprocess.json`` records the
corpus and settings.

The notebook's tables and figures come from :func:`coverage_table`, :func:`topic_table`,
:func:`missing_table` and :func:`gmm_density` (re-exported from :mod:`mtdtl.sources`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from mtdtl.constants import K, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.sources.base import atomic_write_bytes
from mtdtl.sources.reduce import coverage_table, gmm_density, missing_table, reduce_sources, topic_table

__all__ = [
    "preprocess_corpus", "learning_tracks",
    "coverage_table", "topic_table", "missing_table", "gmm_density",
]

log = get_logger(__name__)

INFO_FILE = "preprocess.json"


def _open_corpus(corpus):
    if hasattr(corpus, "manifest") and hasattr(corpus, "labels"):
        return corpus
    from mtdtl.corpora import Corpus

    return Corpus.open(corpus)


def learning_tracks(corpus) -> pd.DataFrame:
    """The learning part of a corpus as ``track_id, path (absolute), split`` rows.

    Parameters
    ----------
    corpus : path or :class:`mtdtl.corpora.Corpus`
    """
    corpus = _open_corpus(corpus)
    man = corpus.manifest
    need = {"track_id", "part", "split", "path"}
    if not need <= set(man.columns):
        raise MtdtlError(f"corpus manifest at {corpus.root} lacks columns {sorted(need - set(man.columns))}")
    learn = man[man["part"].astype(str) == "learning"]
    if learn.empty:
        raise MtdtlError(f"corpus at {corpus.root} has no learning tracks (manifest part == 'learning')")
    ids = learn["track_id"].astype(str)
    paths = [str(corpus.audio_path(t)) for t in ids]
    return pd.DataFrame({"track_id": ids.to_numpy(), "path": paths, "split": learn["split"].astype(str).to_numpy()})


def preprocess_corpus(corpus, out_dir, *, k: int = K, seed: int = 0, sources=None,
                      workers: int | None = None, progress: bool = True,
                      source_options: dict | None = None) -> Path:
    """Build the spectrogram store and the reduced labels of a corpus' learning part.

    Parameters
    ----------
    corpus : path or :class:`mtdtl.corpora.Corpus`
        A built corpus (e.g. ``mtdtl corpus demo``).
    out_dir : path
        The store folder to write (created; resumed if it holds an unfinished run).
    k : int
        Topics / GMM components per source (50 in the paper).
    seed : int
        Seed of every reduction.
    sources : iterable of str, optional
        Learning sources to reduce (default: every source the corpus has, i.e. every
        ``labels/<source>.csv``; all eight for the demo corpus; ``artist`` only with ``tag``,
        whose tags make the artists' documents).
    workers : int or None
        Processes for the spectrogram store (None: all cores).
    progress : bool
        tqdm bars.
    source_options : {name: {option: value}}, optional
        Constructor options per source, e.g. ``{"cdr_tag": {"ancestors": True}}``.

    Returns
    -------
    pathlib.Path
        ``out_dir``: open it with ``mtdtl.store.SpectrogramStore.open`` and
        :func:`mtdtl.sources.load_reduced`.
    """
    from mtdtl.sources.reduce import check_k
    from mtdtl.store import SpectrogramStore, build_store

    k = check_k(k)  # before any work: a bad k must not leave a store without labels
    corpus = _open_corpus(corpus)
    if sources is None:
        sources = list(getattr(corpus, "sources", SOURCE_NAMES))
        if "artist" in sources and "tag" not in sources:
            log.warning("corpus %s has artist labels but no tags: the artist source (tag bags of "
                        "artists) is left out", corpus.root)
            sources.remove("artist")
    sources = list(sources)
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks = learning_tracks(corpus)
    log.info("preprocess %s: %d learning clips → %s", corpus.root, len(tracks), out_dir)

    store = build_store(tracks, out_dir, workers=workers, progress=progress)
    if not isinstance(store, SpectrogramStore):
        store = SpectrogramStore.open(out_dir)
    in_store = [str(t) for t in store.track_ids]
    train_ids = [in_store[i] for i in store.indices("train")]
    if not train_ids:
        raise MtdtlError(f"the store at {out_dir} has no training clips; check the corpus split column")
    skipped = sorted(set(tracks["track_id"]) - set(in_store))
    if skipped:
        log.warning("%d learning clips are not in the store (see the store's report); they get no labels", len(skipped))

    reduce_sources(corpus, out_dir, train_ids=train_ids, track_ids=in_store, k=k, seed=seed,
                   sources=sources, source_options=source_options, progress=progress)

    info = {
        "corpus": str(Path(corpus.root).resolve()),
        "k": int(k), "seed": int(seed), "sources": list(sources),
        "source_options": source_options or {},
        "n_tracks": len(in_store), "n_train": len(train_ids), "not_in_store": skipped,
    }
    atomic_write_bytes(out_dir / INFO_FILE, (json.dumps(info, indent=2) + os.linesep).encode())
    return out_dir
