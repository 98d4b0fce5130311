"""mtdtl.explain and Figure 16: t-SNE of a target dataset with each source's predicted topics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtdtl.errors import MtdtlError


def _train(store, out, arch, sources):
    from mtdtl.training import TrainConfig, train

    cfg = TrainConfig(arch=arch, sources=sources, store=store, epochs=1, batch_size=8, width="tiny", device="cpu",
                      max_steps=2, out_dir=out)
    return train(cfg, progress=False)


@pytest.fixture(scope="module")
def runs(tiny_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain_runs")
    return {"ms_cr": _train(tiny_store, root / "ms_cr6", "ms_cr@6", "self,bpm,tag"),
            "ms_sr": _train(tiny_store, root / "ms_srfc", "ms_sr@fc", "bpm,tag")}


@pytest.fixture(scope="module")
def genre(tiny_corpus):
    from mtdtl.transfer import resolve_targets

    return resolve_targets("demo:genre", corpus=tiny_corpus)[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("explain_cache")


@pytest.fixture(scope="module")
def exp(runs, genre, cache):
    from mtdtl.explain import explain

    return explain(runs["ms_cr"], genre, seed=0, cache_dir=cache, progress=False)


def test_explanation_of_a_multi_source_run(exp, genre):
    emb = exp.embedding
    assert exp.sources == ("bpm", "tag")  # self has no topics
    assert exp.arch == "ms_cr@6" and exp.target == "demo:genre" and exp.task == "classification"
    assert list(emb.columns[:5]) == ["track_id", "x", "y", "label", "split"]
    for s in exp.sources:
        assert {f"{s}_topic", f"{s}_p", f"{s}_terms"} <= set(emb.columns)
    assert len(emb) + len(exp.skipped) == len(genre.tracks) and len(emb) >= 10
    assert np.isfinite(emb[["x", "y"]].to_numpy()).all()
    labels = genre.tracks.set_index("track_id").loc[emb["track_id"], "label"].to_numpy()
    assert (emb["label"].to_numpy() == labels).all()
    assert exp.features.shape == (len(emb), 2 * 3 * 16)  # mean ‖ std of 3 tiny branches
    n = len(emb)
    assert exp.params["perplexity"] == 30 and exp.params["perplexity_used"] == (n - 1) / 3  # lowered for few tracks
    assert "t-SNE" in exp.summary()


def test_predicted_z_rows_are_distributions_and_name_the_argmax(exp):
    for s in exp.sources:
        z = exp.z[s]
        assert z.shape == (len(exp.embedding), len(exp.topics[s])) == (len(exp.embedding), 8)
        assert (z >= 0).all() and np.allclose(z.sum(1), 1.0, atol=1e-6)
        j = z.argmax(1)
        assert (exp.embedding[f"{s}_topic"].to_numpy() == exp.topics[s]["topic"].to_numpy()[j]).all()
        assert np.allclose(exp.embedding[f"{s}_p"], z[np.arange(len(j)), j])
    assert all(t.endswith(" bpm") for terms in exp.topics["bpm"]["terms"] for t in terms)  # GMM: mean ± std bpm
    assert exp.topics["tag"]["topic"].iloc[0] == "tag1" and len(exp.topics["tag"]["terms"].iloc[0]) >= 1


def test_z_is_the_slice_mean_of_each_heads_softmax(exp, runs, genre):
    """Independent of head_logits' block slicing: model(x, source) runs the source's own branch."""
    from mtdtl.features import get_extractor

    ex = get_extractor(runs["ms_cr"], device="cpu", optimize=False)
    tid = exp.embedding["track_id"].iloc[3]
    from mtdtl.audio import load_audio

    S = ex.slices(load_audio(genre.tracks.set_index("track_id").loc[tid, "path"], sr=ex.sample_rate))
    with torch.inference_mode():
        x = ex.scale(S)
        for s in exp.sources:
            want = torch.softmax(ex.model(x, s).double(), dim=1).mean(0).numpy()
            assert np.allclose(exp.z[s][3], want, atol=1e-5), s


def test_track_features_are_the_evaluation_features(exp, runs, genre, tmp_path):
    from mtdtl.features import extract_dataset, get_extractor

    fs = extract_dataset(get_extractor(runs["ms_cr"]), genre.tracks[["track_id", "path"]], dataset="explain-test",
                         cache_dir=tmp_path, progress=False)
    X = pd.DataFrame(fs.X, index=fs.track_ids.astype(str)).loc[exp.embedding["track_id"]].to_numpy()
    assert np.allclose(exp.features, X, atol=1e-4)


def test_small_batches_and_an_unreadable_file(exp, runs, genre, tmp_path):
    """Slices of several tracks share forward passes: any batch size gives the same numbers;
    an unreadable file is listed in .skipped, the others are mapped."""
    from dataclasses import replace

    from mtdtl.explain import explain

    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio at all")
    tracks = genre.tracks.copy()
    tracks.loc[0, "path"] = str(bad)
    e = explain(runs["ms_cr"], replace(genre, tracks=tracks), batch_size=5, cache_dir=tmp_path / "c", progress=False)
    assert list(e.skipped["track_id"]) == [tracks["track_id"].iloc[0]]
    assert len(e.embedding) == len(exp.embedding) - 1
    rows = exp.embedding["track_id"].isin(e.embedding["track_id"]).to_numpy()
    assert (exp.embedding["track_id"][rows].to_numpy() == e.embedding["track_id"].to_numpy()).all()
    assert np.allclose(e.features, exp.features[rows], atol=1e-5)
    for s in e.sources:
        assert np.allclose(e.z[s], exp.z[s][rows], atol=1e-6)


def test_same_seed_same_map_and_the_pass_is_cached(exp, runs, genre, cache, caplog):
    from mtdtl.explain import explain, tsne_embedding

    with caplog.at_level("INFO", logger="mtdtl.explain"):
        again = explain(runs["ms_cr"], genre, seed=0, cache_dir=cache, progress=False)
    assert "read from the cache" in caplog.text
    pd.testing.assert_frame_equal(again.embedding, exp.embedding)
    Y1, _ = tsne_embedding(exp.features, perplexity=4, seed=3)
    Y2, _ = tsne_embedding(exp.features, perplexity=4, seed=3)
    assert np.array_equal(Y1, Y2)


def test_ms_sr_fc_heads_share_one_feature(runs, genre, cache):
    from mtdtl.explain import explain

    e = explain(runs["ms_sr"], genre, perplexity=4, cache_dir=cache, progress=False)
    assert e.arch == "ms_sr@fc" and e.sources == ("bpm", "tag")
    assert e.features.shape[1] == 2 * 16  # one shared fc-feature
    for s in e.sources:
        assert np.allclose(e.z[s].sum(1), 1.0, atol=1e-6)


def test_single_source_run_and_missing_topics_are_errors(tiny_store, runs, genre, tmp_path):
    from mtdtl.explain import explain, source_topic_terms
    from mtdtl.sources import load_reduced

    ss = _train(tiny_store, tmp_path / "ssr", "ss_r", "tag")
    with pytest.raises(MtdtlError, match="one source, nothing to compare"):
        explain(ss, genre, progress=False)
    empty = tmp_path / "empty_store"
    empty.mkdir()
    with pytest.raises(MtdtlError, match="no topic tables"):
        explain(runs["ms_cr"], genre, store=empty, progress=False)
    red = load_reduced(tiny_store)
    with pytest.raises(MtdtlError, match="another store"):
        source_topic_terms(red["tag"], n_out=50)
    red["tag"].topics = None
    with pytest.raises(MtdtlError, match="no topic table"):
        source_topic_terms(red["tag"])
    with pytest.raises(MtdtlError, match="one target dataset"):
        explain(runs["ms_cr"], "demo:genre,demo:meter", progress=False)


def test_tables_and_zoom_regions(exp):
    tab = exp.top_topics_table(4, n_terms=2)
    assert list(tab.columns) == ["track_id", "label", "x", "y", "bpm", "tag"] and len(tab) == 4
    assert tab["track_id"].is_unique and tab["tag"].str.match(r"tag\d+ \(\d\.\d\d\): ").all()
    one = exp.top_topics(tab["track_id"].iloc[0], n_topics=2)
    assert list(one["source"]) == ["bpm", "bpm", "tag", "tag"] and (one["p"].diff().iloc[[1, 3]] <= 0).all()
    reg = exp.zoom_regions(2, size=0.3)
    assert 1 <= len(reg) <= 2 and (reg["n_tracks"] > 0).all()
    P = exp.embedding.set_index("track_id")
    for r in reg.itertuples():
        inside = P.loc[r.track_ids]
        assert inside["x"].between(r.x0, r.x1).all() and inside["y"].between(r.y0, r.y1).all()
    if len(reg) == 2:  # not overlapping
        a, b = reg.iloc[0], reg.iloc[1]
        assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
    rt = exp.region_topics(reg)
    assert len(rt) == len(reg) * 2 and rt["share"].between(0, 1).all()
    with pytest.raises(MtdtlError, match="not in the explanation"):
        exp.top_topics("nope")


def test_figure16_renders(exp, tmp_path):
    from matplotlib.figure import Figure

    from mtdtl.plots.base import save_figure
    from mtdtl.plots.explain import fig16_explain

    fig = fig16_explain(exp, n_regions=2, n_points=2, n_terms=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + len(exp.zoom_regions(2))
    texts = " ".join(t.get_text() for ax in fig.axes[1:] for t in ax.texts)
    assert "tag:" in texts and "bpm:" in texts
    (png,) = save_figure(fig, tmp_path / "fig16", formats=("png",))
    assert png.stat().st_size > 10_000
    with pytest.raises(MtdtlError, match="no source"):
        fig16_explain(exp, sources=["year"])


def test_figure16_regression_labels_and_long_terms(exp):
    """A regression target gets a colour bar; terms too long for a panel are cut, not spilled."""
    from dataclasses import replace

    from mtdtl.plots.explain import fig16_explain

    emb = exp.embedding.assign(label=np.linspace(50, 80, len(exp.embedding)))
    topics = {s: t.assign(terms=[["a very long term " * 6] * 5] * len(t)) for s, t in exp.topics.items()}
    fig = fig16_explain(replace(exp, embedding=emb, topics=topics), n_regions=1)
    assert len(fig.axes) == 3  # map, one zoom, colour bar
    (zx,) = [a for a in fig.axes if a.get_title(loc="left").startswith("A:")]
    r = fig.canvas.get_renderer()
    box = zx.get_window_extent(r)
    for t in zx.texts:
        e = t.get_window_extent(r)
        assert box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1, t.get_text()
