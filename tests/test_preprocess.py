"""preprocess_corpus on the tiny demo corpus (the session's ``tiny_store`` fixture)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtdtl.constants import SOURCE_NAMES
from mtdtl.sources import load_reduced

pytest.importorskip("mtdtl.store")
pytest.importorskip("mtdtl.corpora.demo")


def test_every_source_reduced(tiny_store, tiny_corpus):
    from mtdtl.corpora import Corpus
    from mtdtl.store import SpectrogramStore

    store = SpectrogramStore.open(tiny_store)
    reduced = load_reduced(tiny_store)
    assert list(reduced) == list(SOURCE_NAMES)
    ids = set(store.track_ids)
    train = {store.track_ids[i] for i in store.indices("train")}
    learning = Corpus.open(tiny_corpus).manifest.query("part == 'learning'")
    assert ids <= set(learning["track_id"].astype(str))
    for name, red in reduced.items():
        # every store track is either labelled or recorded as missing, never both, never dropped
        assert set(red.track_ids) | set(red.missing) == ids, name
        assert red.k == (0 if name == "self" else 8), name
        if red.k:
            np.testing.assert_allclose(red.z.sum(axis=1), 1, atol=1e-4)
            assert red.meta["settings"]["train_sha1"]
        assert set(red.track_ids) & train, f"{name}: no training track has labels"
    assert len(reduced["self"]) == len(ids)
    assert 0 < len(reduced["lyrics"]) < len(ids)  # lyrics for some tracks only
    info = json.loads((tiny_store / "preprocess.json").read_text())
    assert info["k"] == 8 and info["n_tracks"] == len(ids)


def test_notebook_helpers(tiny_store):
    from mtdtl.preprocess import coverage_table, gmm_density, topic_table

    cov = coverage_table(tiny_store)
    assert cov["source"].tolist() == list(SOURCE_NAMES)
    assert (cov["present"] > 0).all()
    on_disk = pd.read_csv(tiny_store / "labels" / "coverage.csv")
    assert on_disk["present"].tolist() == cov["present"].tolist()
    topics = topic_table(tiny_store)
    assert set(topics["source"]) == {"taste", "tag", "lyrics", "cdr_tag", "artist"}
    assert topics["terms"].str.len().min() > 0
    for src in ("bpm", "year"):
        g = gmm_density(tiny_store, src)
        assert g["components"].shape == (8, len(g["x"])) and np.all(g["pdf"] >= 0)


def test_rerun_is_resumed_not_recomputed(tiny_store, tiny_corpus):
    from mtdtl.preprocess import preprocess_corpus

    files = sorted((tiny_store / "labels").glob("*.npz"))
    before = {p.name: p.stat().st_mtime_ns for p in files}
    assert preprocess_corpus(tiny_corpus, tiny_store, k=8, seed=0, progress=False) == tiny_store
    assert {p.name: p.stat().st_mtime_ns for p in files} == before
