"""Learning sources: registry, GMM, pLSA sources (TF-IDF, cdr paths, artist), missing tracks,
ReducedLabels files, resumable reduce_sources and the notebook helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.sources import (
    ReducedLabels,
    available_sources,
    coverage_table,
    get_source,
    gmm_density,
    load_reduced,
    missing_table,
    reduce_sources,
    register_source,
    topic_table,
)
from mtdtl.sources.builtin import ALL_ZERO, ARTIST_NO_TAGS, NO_ARTIST, NO_LABELS, NO_VALUE, OUT_OF_VOCAB, CountSource

IDS = [f"T{i:03d}" for i in range(60)]
TRAIN = IDS[:45]
TAGS = ["rock", "pop", "jazz", "metal", "folk", "blues", "soul", "punk"]


@pytest.fixture
def tables(rng) -> dict[str, pd.DataFrame]:
    """Raw label tables in the corpus' columns, with gaps of every kind."""
    tag_rows = []
    for t in IDS[:54]:
        group = int(t[1:]) % 2  # two tag "genres"
        for tg in rng.choice(TAGS[group * 4:(group + 1) * 4], 3, replace=False):
            tag_rows.append((t, tg, float(rng.integers(1, 50))))
    tag_rows.append(("T054", "rock", 0.0))  # has a tag row, but only a zero count
    tag_rows.append(("T999", "rock", 5.0))  # outside the track universe: ignored
    words = ["the", "love", "night", "sea", "god", "war"]
    lyr = [(t, "the", 5.0) for t in IDS[:20]] + [(t, w, 1.0) for t in IDS[:20] for w in rng.choice(words[1:], 2)]
    return {
        "self": pd.DataFrame({"track_id": IDS}),
        "bpm": pd.DataFrame({"track_id": IDS[:58], "bpm": np.r_[rng.normal(120, 25, 56), np.nan, 0.0]}),
        "year": pd.DataFrame({"track_id": IDS, "year": rng.choice([1600, 1720, 1750, 1800, 1950], 60).astype(float)}),
        "tag": pd.DataFrame(tag_rows, columns=["track_id", "tag", "count"]),
        "taste": pd.DataFrame({"user_id": [f"u{j}" for j in rng.integers(0, 30, 500)],
                               "track_id": rng.choice(IDS, 500), "play_count": rng.integers(1, 5, 500)}),
        "lyrics": pd.DataFrame(lyr, columns=["track_id", "word", "count"]),
        "cdr_tag": pd.DataFrame({"track_id": IDS, "tag": rng.choice(
            ["classical/baroque/chorale", "classical/renaissance", "folk/irish/reel", "folk/german"], 60)}),
        "artist": pd.DataFrame({"track_id": IDS[:58], "artist": rng.choice(["Bach", "Palestrina", "Trad"], 58)}),
    }


def test_registry():
    assert available_sources()[:8] == SOURCE_NAMES
    for name in SOURCE_NAMES:
        src = get_source(name)
        assert src.name == name and src.kind in {"pairs", "gmm", "plsa"}
    with pytest.raises(MtdtlError, match="valid sources: self, bpm, year"):
        get_source("mood")
    register_source("mood", lambda **kw: CountSource("mood", term_col="mood", count_col=None, **kw))
    assert get_source("mood").inputs == ("mood",)
    with pytest.raises(MtdtlError, match="already registered"):
        register_source("mood", lambda **kw: None)


def test_self_lists_tracks(tables):
    red = get_source("self").fit(tables["self"].iloc[:50], train_ids=TRAIN, track_ids=IDS)
    assert red.k == 0 and red.z.shape == (50, 0)
    assert red.missing == IDS[50:]


def test_gmm_posterior(tables):
    src = get_source("bpm")
    red = src.fit(tables, train_ids=TRAIN, track_ids=IDS, k=6, seed=0)
    assert red.z.shape == (56, 6) and red.z.dtype == np.float32
    np.testing.assert_allclose(red.z.sum(axis=1), 1, atol=1e-5)
    assert red.missing_reasons == {"T056": NO_VALUE, "T057": "bpm <= 0 (unknown)", "T058": NO_LABELS, "T059": NO_LABELS}
    comp = red.topics
    assert list(comp.columns) == ["component", "weight", "mean", "std"]
    assert np.all(np.diff(comp["mean"]) >= 0)  # components numbered by increasing mean
    # slow tracks load on low components, fast ones on high components
    bpm = tables["bpm"].set_index("track_id")["bpm"]
    slow, fast = bpm.loc[red.track_ids].idxmin(), bpm.loc[red.track_ids].idxmax()
    assert np.argmax(red.rows([slow])[0]) < np.argmax(red.rows([fast])[0])
    again = src.transform(tables["bpm"], track_ids=IDS)
    np.testing.assert_allclose(again.z, red.z, atol=1e-6)


def test_gmm_bad_input(tables):
    dup = pd.concat([tables["year"], tables["year"].iloc[:1]])
    with pytest.raises(MtdtlError, match="T000.*2 rows"):
        get_source("year").fit(dup, train_ids=TRAIN, k=4)
    junk = tables["year"].astype({"year": object})
    junk.loc[3, "year"] = "soon"
    with pytest.raises(MtdtlError, match="row 4.*not a number"):
        get_source("year").fit(junk, train_ids=TRAIN, k=4)
    with pytest.raises(MtdtlError, match="at least 50"):
        get_source("year").fit(tables["year"], train_ids=TRAIN[:10], k=50)


def test_tag_missing_tracks_and_train_only_fit(tables):
    src = get_source("tag")
    red = src.fit(tables, train_ids=TRAIN, track_ids=IDS, k=2, seed=0)
    assert red.missing_reasons == {"T054": ALL_ZERO, **{t: NO_LABELS for t in IDS[55:]}}
    assert len(red) + len(red.missing) == len(IDS)
    assert red.meta["ignored_tracks"] == 1 and red.meta["n_train"] == 45
    np.testing.assert_allclose(red.z.sum(axis=1), 1, atol=1e-4)
    # Two planted tag groups: tracks of one group share their dominant topic.
    dom = red.z.argmax(axis=1)
    group = np.array([int(t[1:]) % 2 for t in red.track_ids])
    assert len(set(dom[group == 0]) & set(dom[group == 1])) == 0
    # Only training tracks shape the topics: changing a validation track's tags changes nothing
    # but that track's row.
    changed = tables["tag"].copy()
    changed.loc[changed["track_id"] == "T050", "count"] *= 7
    red2 = get_source("tag").fit(changed, train_ids=TRAIN, track_ids=IDS, k=2, seed=0)
    np.testing.assert_array_equal(red2.rows(TRAIN), red.rows(TRAIN))
    assert red.topics["terms"].str.split(", ").map(len).max() <= 10


def test_out_of_vocabulary_track_is_missing(tables):
    tag = pd.concat([tables["tag"], pd.DataFrame([("T058", "zydeco", 3.0)], columns=["track_id", "tag", "count"])])
    red = get_source("tag").fit(tag, train_ids=TRAIN, track_ids=IDS, k=2)
    assert red.missing_reasons["T058"] == OUT_OF_VOCAB


def test_counts_bad_input(tables):
    bad = tables["tag"].copy()
    bad.loc[5, "count"] = -2
    with pytest.raises(MtdtlError, match="row 6 has count"):
        get_source("tag").fit(bad, train_ids=TRAIN)
    bad.loc[5, "count"] = np.nan
    with pytest.raises(MtdtlError, match="finite numbers >= 0"):
        get_source("tag").fit(bad, train_ids=TRAIN)
    with pytest.raises(MtdtlError, match="lacks columns"):
        get_source("tag").fit(bad.rename(columns={"tag": "label"}), train_ids=TRAIN)
    with pytest.raises(MtdtlError, match="no training track"):
        get_source("tag").fit(tables["tag"], train_ids=["nobody"])


def test_tfidf_path(tables):
    src = get_source("lyrics")
    red = src.fit(tables, train_ids=TRAIN, track_ids=IDS, k=3, seed=0)
    assert red.meta["method"] == "TF-IDF + pLSA" and red.meta["tfidf"]
    assert len(red) == 20 and len(red.missing) == 40  # lyrics for some tracks only
    vocab = list(src.vocab_)
    # "the" is in every document: the lowest idf, so weighted down relative to its count.
    assert src.idf_[vocab.index("the")] == pytest.approx(1.0)
    assert src.idf_.min() == src.idf_[vocab.index("the")] and src.idf_.max() > 1.5
    plain = CountSource("lyrics", term_col="word", tfidf=False).fit(tables, train_ids=TRAIN, track_ids=IDS, k=3)
    assert not np.allclose(plain.z, red.z)


def test_cdr_tag_paths(tables):
    leaf = get_source("cdr_tag")
    red = leaf.fit(tables, train_ids=TRAIN, track_ids=IDS, k=2)
    assert set(leaf.vocab_) == {"classical/baroque/chorale", "classical/renaissance", "folk/irish/reel", "folk/german"}
    anc = get_source("cdr_tag", ancestors=True)
    red2 = anc.fit(tables, train_ids=TRAIN, track_ids=IDS, k=2)
    assert {"classical", "folk", "classical/baroque", "folk/irish"} <= set(anc.vocab_)
    assert len(red) == len(red2) == 60
    one = pd.DataFrame({"track_id": ["a"], "tag": ["/classical//baroque/chorale/"]})
    assert leaf.counts({"cdr_tag": one})["term"].tolist() == ["classical/baroque/chorale"]
    assert anc.counts({"cdr_tag": one})["term"].tolist() == ["classical", "classical/baroque", "classical/baroque/chorale"]


def test_artist_path(tables):
    tables = dict(tables)
    art = tables["artist"].copy()
    art.loc[len(art)] = ("T058", "Nobody")  # an artist whose only track has no tags
    tables["artist"] = art
    src = get_source("artist")
    red = src.fit(tables, train_ids=TRAIN, track_ids=IDS, k=2, seed=0)
    assert red.missing_reasons == {"T058": ARTIST_NO_TAGS, "T059": NO_ARTIST}
    assert red.meta["n_artists"] == 4 and red.meta["n_artists_fit"] == 3
    by_artist = art.set_index("track_id")["artist"]
    for name in ["Bach", "Palestrina", "Trad"]:
        rows = red.rows([t for t in red.track_ids if by_artist[t] == name])
        np.testing.assert_array_equal(rows, np.repeat(rows[:1], len(rows), axis=0))
    # An artist known only from validation tracks is folded in from their tags.
    art2 = art.copy()
    art2.loc[art2["track_id"].isin(["T050", "T051"]), "artist"] = "NewArtist"
    red2 = get_source("artist").fit({**tables, "artist": art2}, train_ids=TRAIN, track_ids=IDS, k=2, seed=0)
    assert red2.meta["n_fold_in"] == 1
    np.testing.assert_array_equal(red2.rows(["T050"]), red2.rows(["T051"]))
    # A track with two artists is an error.
    art3 = pd.concat([art, pd.DataFrame([("T000", "Somebody")], columns=["track_id", "artist"])])
    with pytest.raises(MtdtlError, match="several artists"):
        get_source("artist").fit({**tables, "artist": art3}, train_ids=TRAIN)
    with pytest.raises(MtdtlError, match="reads the tables"):
        get_source("artist").fit(tables["artist"], train_ids=TRAIN)


def test_reduced_labels_file_roundtrip(tmp_path):
    z = np.random.default_rng(0).dirichlet(np.ones(4), size=3).astype(np.float32)
    red = ReducedLabels("tag", ["a", "b", "c"], z, missing=["d"], missing_reasons={"d": ALL_ZERO},
                        topics=pd.DataFrame({"topic": ["tag1"], "weight": [1.0], "terms": ["x, y"]}),
                        meta={"k": 4, "trace": [1.0, 2.0]})
    path = red.save(tmp_path / "labels" / "tag.npz")
    with np.load(path, allow_pickle=False) as f:
        assert f["z"].dtype == np.float32
    back = ReducedLabels.load(path)
    assert back.track_ids.tolist() == ["a", "b", "c"] and back.missing_reasons == {"d": ALL_ZERO}
    np.testing.assert_array_equal(back.z, z)
    pd.testing.assert_frame_equal(back.topics, red.topics)
    assert back.meta == red.meta
    assert not list(path.parent.glob("*.tmp"))
    ReducedLabels("self", ["a"], np.zeros((1, 0))).save(tmp_path / "labels" / "self.npz")
    assert list(load_reduced(tmp_path)) == ["self", "tag"]
    with pytest.raises(MtdtlError, match="sum to 1"):
        ReducedLabels("tag", ["a"], np.array([[0.2, 0.2]]))
    with pytest.raises(MtdtlError, match="duplicated"):
        ReducedLabels("tag", ["a", "a"], np.array([[1.0], [1.0]]))
    with pytest.raises(MtdtlError, match="both present and missing"):
        ReducedLabels("tag", ["a"], np.array([[1.0]]), missing=["a"])
    (tmp_path / "labels" / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(MtdtlError, match="broken.npz"):
        load_reduced(tmp_path)
    with pytest.raises(MtdtlError, match="preprocess_corpus"):
        load_reduced(tmp_path / "nowhere")


def test_reduce_sources_resumable_and_helpers(tables, tmp_path, monkeypatch):
    out = reduce_sources(tables, tmp_path, train_ids=TRAIN, track_ids=IDS, k=4, seed=0, progress=False)
    assert list(out) == list(SOURCE_NAMES)
    files = {p.name for p in (tmp_path / "labels").iterdir()}
    assert files == {f"{s}.npz" for s in SOURCE_NAMES} | {"coverage.csv"}
    for name, red in out.items():
        assert len(red) + len(red.missing) == len(IDS), name
        assert red.k == (0 if name == "self" else 4)
    cov = coverage_table(tmp_path)
    assert cov["source"].tolist() == list(SOURCE_NAMES)
    assert cov.set_index("source").loc["lyrics", "present"] == 20
    assert pd.read_csv(tmp_path / "labels" / "coverage.csv")["present"].tolist() == cov["present"].tolist()
    miss = missing_table(tmp_path)
    assert set(miss.columns) == {"source", "track_id", "reason"} and (miss["source"] == "lyrics").sum() == 40

    tt = topic_table(tmp_path)
    assert set(tt["source"]) == {"taste", "tag", "lyrics", "cdr_tag", "artist"} and len(tt) == 20
    assert topic_table(tmp_path, "tag", n_topics=2)["weight"].is_monotonic_decreasing
    with pytest.raises(MtdtlError, match="no topics"):
        topic_table(tmp_path, "bpm")
    g = gmm_density(tmp_path, "year")
    assert g["pdf"].shape == g["x"].shape and g["components"].shape == (4, len(g["x"]))
    np.testing.assert_allclose(g["components"].sum(axis=0), g["pdf"])
    assert np.trapezoid(g["pdf"], g["x"]) == pytest.approx(1, abs=0.05)
    with pytest.raises(MtdtlError, match="not a GMM source"):
        gmm_density(tmp_path, "tag")

    # Rerun: nothing is recomputed.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "labels").glob("*.npz")}

    def boom(*a, **k):
        raise AssertionError("recomputed a finished source")

    for cls in {type(get_source(s)) for s in SOURCE_NAMES}:
        monkeypatch.setattr(cls, "fit", boom)
    reduce_sources(tables, tmp_path, train_ids=TRAIN, track_ids=IDS, k=4, seed=0, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "labels").glob("*.npz")} == mtimes
    with pytest.raises(MtdtlError, match=r"other settings \(k: 4 → 5\)"):
        reduce_sources(tables, tmp_path, train_ids=TRAIN, track_ids=IDS, k=5, seed=0, progress=False)


def test_failed_source_leaves_nothing_half_written(tables, tmp_path):
    bad = dict(tables)
    bad["tag"] = tables["tag"].assign(count=-1.0)
    with pytest.raises(MtdtlError, match="counts must be finite"):
        reduce_sources(bad, tmp_path, train_ids=TRAIN, track_ids=IDS, k=3, sources=["bpm", "tag", "year"], progress=False)
    names = sorted(p.name for p in Path(tmp_path, "labels").iterdir())
    assert names == ["bpm.npz"]  # finished before the failure; no partial tag/year, no temp files
    out = reduce_sources(tables, tmp_path, train_ids=TRAIN, track_ids=IDS, k=3, sources=["bpm", "tag", "year"], progress=False)
    assert list(out) == ["bpm", "tag", "year"]


def test_errors_name_the_corpus_file_and_line(tables, tmp_path):
    class FakeCorpus:  # what reduce_sources needs of mtdtl.corpora.Corpus
        root = tmp_path

        def labels(self, name):
            return bad[name]

    bad = dict(tables)
    bad["tag"] = tables["tag"].copy()
    bad["tag"].loc[5, "count"] = -1
    with pytest.raises(MtdtlError, match=r"labels/tag.csv, line 7 has count = -1.0"):
        reduce_sources(FakeCorpus(), tmp_path / "store", train_ids=TRAIN, k=2, sources=["tag"], progress=False)
    bad["year"] = pd.concat([tables["year"], tables["year"].iloc[[2]]], ignore_index=True)
    with pytest.raises(MtdtlError, match=r"'T002' has 2 rows in .*labels/year.csv \(rows 3, 61\)"):
        get_source("year").fit(FakeCorpus(), train_ids=TRAIN, k=2)


@pytest.mark.parametrize("k", [-1, 0, 2.5, "two", None, True])
def test_bad_k_is_a_clear_error_before_anything_is_written(tables, tmp_path, k):
    with pytest.raises(MtdtlError, match=r"k=.*must be a whole number >= 1"):
        reduce_sources(tables, tmp_path / "store", train_ids=TRAIN, track_ids=IDS, k=k, sources=["bpm", "tag"],
                       progress=False)
    assert not (tmp_path / "store").exists()
    with pytest.raises(MtdtlError, match=r"k=.*must be a whole number >= 1"):
        get_source("bpm").fit(tables, train_ids=TRAIN, k=k)
    with pytest.raises(MtdtlError, match="seed"):
        reduce_sources(tables, tmp_path / "store", train_ids=TRAIN, k=3, seed=-2, progress=False)


def test_label_information_by_hand():
    """Uniform z_t: nothing to learn (information 0); one-hot, one topic per track: information
    log k; the same one-hot for every track: entropy 0 and information 0."""
    from mtdtl.sources import ReducedLabels, label_information

    k = 4
    ids = np.array([f"t{i}" for i in range(8)])
    uniform = ReducedLabels("tag", ids, np.full((8, k), 1 / k, np.float32))
    onehot = ReducedLabels("bpm", ids, np.eye(k, dtype=np.float32)[np.arange(8) % k])
    same = ReducedLabels("year", ids, np.eye(k, dtype=np.float32)[np.zeros(8, int)])
    selfs = ReducedLabels("self", ids, np.zeros((8, 0), np.float32))
    t = label_information({r.name: r for r in (uniform, onehot, same, selfs)}).set_index("source")
    assert list(t.index) == ["tag", "bpm", "year"]  # self has no z_t
    np.testing.assert_allclose(t.loc["tag", ["entropy", "entropy_of_mean", "information"]], [np.log(k), np.log(k), 0],
                               atol=1e-9)
    np.testing.assert_allclose(t.loc["bpm", ["entropy", "information", "top1"]], [0, np.log(k), 1], atol=1e-6)
    assert t.loc["bpm", "distinct_top"] == k and t.loc["bpm", "largest_share"] == 0.25
    np.testing.assert_allclose(t.loc["year", ["entropy", "information"]], [0, 0], atol=1e-6)
    assert t.loc["year", "largest_share"] == 1.0
