"""Raw learning-source tables and target tasks of the demo corpus.

Every function here is a pure function of the per-clip records (one row per rendered clip,
see :mod:`mtdtl.corpora.demo`) and the seed. Random draws are seeded from
``(seed, purpose, track id)`` or ``(seed, purpose, user index)``, never from the order in
which clips were rendered, so a corpus is the same however many processes built it.

How each learning source is made (``docs/corpus.md`` tells the same story for users):

``self``
    The track id alone; same-track pairs are drawn at training time.
``bpm``
    librosa's tempo estimate on the rendered audio (octave errors included); the true
    rendering tempo is the manifest's ``tempo`` column.
``year``
    A year drawn per track inside the composer's or collection's years
    (:data:`mtdtl.corpora.demo.music.COLLECTIONS`, :data:`~mtdtl.corpora.demo.music.ESSEN_SOURCES`);
    10 % of the tracks have no year, as in the Million Song Dataset.
``tag``
    Crowd-style tag counts from real metadata (collection words, era, Essen region and
    song function, Irish dance form, instrument, tempo words, mode words) with noise:
    untagged tracks, dropped tags, synonyms, misspellings, case variants, personal tags.
``taste``
    SIMULATED listeners (see :func:`simulate_listening`).
``cdr_tag``
    Clean hierarchical genre paths (``classical/baroque/chorale``, ``folk/irish/reel``)
    for 85 % of the tracks (a library does not hold everything).
``lyrics``
    Bag of words of the score's real lyrics (first verse of the part with most lyrics);
    tracks without lyrics lack the source.
``artist``
    The composer, or for folk music the collector or source collection.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pandas as pd

from mtdtl.corpora.demo.music import COLLECTIONS
from mtdtl.corpora.demo.render import FAMILIES

__all__ = [
    "rng_for", "unit_for", "learning_tables", "target_tables", "simulate_listening",
    "crowd_tags", "cdr_paths", "GENRES", "TASKS",
]

#: Classes of the ``genre`` target task, in a fixed order.
GENRES: tuple[str, ...] = tuple(dict.fromkeys(c.genre for c in COLLECTIONS.values()))

#: The target tasks: type, what they mirror in the paper, description.
TASKS: dict[str, dict] = {
    "genre": {
        "type": "classification", "mirrors": "GTZAN / FMA genre",
        "description": "Genre of the collection the work comes from (chorale, renaissance mass, "
                       "madrigal, medieval, European folk, Chinese folk, Irish dance, fiddle tune, "
                       "Scottish air, string quartet).",
    },
    "instrument": {
        "type": "classification", "mirrors": "IRMAS instrument",
        "description": "General MIDI family of the instrument drawn for the clip (piano, chromatic "
                       "percussion, organ, guitar, strings, brass, reed, pipe).",
    },
    "meter": {
        "type": "classification", "mirrors": "Extended Ballroom rhythm class",
        "description": "Meter of the score's first time signature: duple (2/x, 4/x), triple (3/x) "
                       "or compound (6/8, 9/8, 12/8); scores in other meters are left out.",
    },
    "note_density": {
        "type": "regression", "mirrors": "emoMusic arousal (a continuous target)",
        "description": "Note onsets per second in the 30 s clip (all parts, chord notes counted), "
                       "from the score at the rendering tempo.",
    },
    "pitch_height": {
        "type": "regression", "mirrors": "emoMusic valence (a continuous target)",
        "description": "Mean pitch of the notes sounding in the clip, in octaves above middle C: "
                       "(mean MIDI pitch - 60) / 12. In MIDI numbers (about 68 +- 5) the paper's "
                       "probe, an MLP on the raw target, does not reach the labels' scale in its "
                       "200 iterations and scores R^2 of -3 to -5 for every representation.",
    },
    "listening": {
        "type": "recommendation", "mirrors": "Last.fm-1K",
        "description": "SIMULATED listeners' play counts on the target tracks (a population apart "
                       "from the taste source's). The split column is the split of the item: test "
                       "items are cold-start items with no training interactions.",
    },
}


def _h(*parts) -> int:
    s = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "little")


def rng_for(seed: int, purpose: str, key) -> np.random.Generator:
    """A generator seeded from ``(seed, purpose, key)`` alone (not from any order)."""
    return np.random.default_rng([int(seed), _h(purpose, key)])


def unit_for(seed: int, purpose: str, key) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, purpose, key)``."""
    return _h(seed, purpose, key) / 2.0 ** 64


# ----------------------------------------------------------------------------------------
# crowd tags
# ----------------------------------------------------------------------------------------

SYNONYMS: dict[str, tuple[str, ...]] = {
    "classical": ("classic", "classical music", "klassik"),
    "folk": ("folk music", "folklore"),
    "traditional": ("trad", "traditional music"),
    "irish": ("irish music", "ireland"),
    "celtic": ("celtic music",),
    "baroque": ("barock", "baroque music"),
    "renaissance": ("renaissance music",),
    "early music": ("alte musik", "ancient music"),
    "chinese": ("china", "chinese music"),
    "choral": ("choir", "chorus"),
    "sacred": ("religious", "church music"),
    "piano": ("piano music", "pianoforte"),
    "violin": ("fiddle",),
    "sad": ("melancholy",),
    "fast": ("uptempo",),
    "slow": ("downtempo",),
    "love song": ("love songs", "love"),
    "ballad": ("ballads",),
    "lullaby": ("lullabies", "cradle song"),
    "dance": ("dancing",),
    "reel": ("reels",),
    "jig": ("jigs",),
    "hornpipe": ("hornpipes",),
    "strings": ("string music",),
    "german": ("deutsch", "germany"),
    "medieval": ("mediaeval", "middle ages"),
    "madrigal": ("madrigals",),
    "chorale": ("chorales",),
    "scottish": ("scotland", "scots"),
    "organ": ("organ music",),
    "guitar": ("acoustic guitar",),
    "flute": ("flutes",),
    "chamber music": ("chamber",),
}

PERSONAL: tuple[str, ...] = (
    "favorites", "favourite", "my favorites", "seen live", "check out", "to listen",
    "albums i own", "love it", "awesome", "beautiful", "cool", "good stuff", "study music",
    "relax", "sleep", "background", "my playlist", "on repeat", "memories", "sunday morning",
)

FUNCTION_WORDS: tuple[tuple[str, str], ...] = (
    ("liebe", "love song"), ("ballade", "ballad"), ("romanze", "romance"),
    ("religi", "religious"), ("geistlich", "religious"), ("wiegen", "lullaby"),
    ("kinder", "children's song"), ("tanz", "dance"), ("soldat", "soldier song"),
    ("krieg", "war song"), ("trink", "drinking song"), ("zech", "drinking song"),
    ("hochzeit", "wedding"), ("abschied", "farewell"), ("scherz", "humorous"),
    ("lustig", "humorous"), ("tod", "death"), ("klage", "lament"), ("jaeger", "hunting song"),
    ("beruf", "work song"), ("weihnacht", "christmas"), ("xiaodiao", "xiaodiao"),
    ("shange", "mountain song"), ("haozi", "work song"), ("sage", "legend"),
    ("maerchen", "fairy tale"), ("politi", "political"), ("vaterland", "patriotic"),
    ("erzaehl", "narrative"), ("wander", "wandering song"),
)

REGION_WORDS: dict[str, str] = {
    "china": "chinese", "lorraine": "lorraine", "luxembourg": "luxembourgish",
    "netherlands": "dutch", "switzerland": "swiss", "austria": "austrian", "ireland": "irish",
    "iceland": "icelandic", "hungary": "hungarian", "yugoslavia": "balkan",
    "romania": "romanian", "poland": "polish", "russia": "russian", "france": "french",
    "germany": "german", "europe": "european",
}

FAMILY_WORDS: dict[str, str] = {
    "piano": "piano", "chromatic_percussion": "mallets", "organ": "organ",
    "guitar": "guitar", "strings": "strings", "brass": "brass", "reed": "woodwind",
    "pipe": "woodwind",
}


def function_words(raw: str) -> list[str]:
    """English song-function words of an Essen ``R:`` field (``"Liebes - Lied"`` -> love song)."""
    low = raw.lower()
    return list(dict.fromkeys(w for key, w in FUNCTION_WORDS if key in low))


def _misspell(tag: str, rng: np.random.Generator) -> str:
    letters = [i for i, c in enumerate(tag) if c.isalpha()]
    if len(letters) < 4:
        return tag
    i = int(rng.choice(letters[1:]))
    op = int(rng.integers(3))
    if op == 0:  # drop a letter
        return tag[:i] + tag[i + 1:]
    if op == 1:  # double a letter
        return tag[:i] + tag[i] + tag[i:]
    j = i - 1  # swap with the previous character
    return tag[:j] + tag[i] + tag[j] + tag[i + 1:]


def true_tags(rec: dict) -> list[tuple[str, float]]:
    """The tags a crowd would use for a track, with how likely each is (before noise)."""
    col = COLLECTIONS.get(rec["collection"])
    out: dict[str, float] = {}

    def add(tag: str, p: float) -> None:
        if tag:
            out[tag] = max(out.get(tag, 0.0), p)

    if col is not None:
        for r, w in enumerate(col.words):
            add(w, max(0.9 - 0.1 * r, 0.35))
        add(col.era, 0.5)
    if rec.get("region"):
        add(REGION_WORDS.get(rec["region"], rec["region"]), 0.6)
    for w in function_words(rec.get("function", "")):
        add(w, 0.55)
    if rec.get("dance"):
        add(rec["dance"], 0.8)
    name = rec.get("instrument", "")
    add(name.replace("acoustic ", "").replace("bright ", ""), 0.5)
    add(FAMILY_WORDS.get(rec.get("instrument_family", ""), ""), 0.45)
    add("instrumental", 0.25)
    beat = float(rec["tempo"]) / (1.5 if rec.get("meter") == "compound" else 1.0)
    if beat < 80:
        add("slow", 0.5), add("mellow", 0.3), add("calm", 0.3)
    elif beat > 130:
        add("fast", 0.5), add("upbeat", 0.4), add("energetic", 0.3)
    if rec.get("mode") == "minor":
        add("sad", 0.3), add("melancholic", 0.25), add("minor", 0.15)
    elif rec.get("mode") == "major":
        add("happy", 0.25), add("cheerful", 0.15)
    if rec.get("key"):
        add(rec["key"], 0.1)
    if rec.get("meter") == "triple":
        add("3/4", 0.1)
        if col is not None and col.era == "folk":
            add("waltz", 0.2)
    elif rec.get("meter") == "compound":
        add("6/8", 0.12)
    if rec.get("n_lyric_words", 0) > 0:
        add("vocal", 0.3)
    return sorted(out.items())


def crowd_tags(rec: dict, seed: int) -> list[tuple[str, int]]:
    """Crowd-style ``(tag, count)`` pairs of one track (empty for an untagged track).

    Noise, all drawn from ``(seed, "tag", track id)``: 12 % of tracks carry no tag; each true
    tag is applied with a probability that grows with how typical it is, so some are missing;
    an applied tag becomes a synonym (20 %), a misspelling (4 %) or a case variant (5 %);
    a quarter of the tracks also get a personal tag (``favorites``, ``seen live`` ...).
    Counts grow with the track's (lognormal) number of taggers.
    """
    rng = rng_for(seed, "tag", rec["track_id"])
    if rng.random() < 0.12:
        return []
    taggers = int(np.ceil(np.exp(rng.normal(np.log(4.0), 1.0))))
    counts: Counter = Counter()
    for tag, p in true_tags(rec):
        if rng.random() >= 0.85 * p + 0.1:
            continue
        c = 1 + int(rng.binomial(taggers, p))
        form = tag
        r = rng.random()
        if r < 0.20 and tag in SYNONYMS:
            syn = SYNONYMS[tag]
            form = syn[int(rng.integers(len(syn)))]
        elif r < 0.24:
            form = _misspell(tag, rng)
        elif r < 0.29:
            form = tag.title() if rng.random() < 0.7 else tag.upper()
        counts[form] += c
    if rng.random() < 0.25:
        counts[PERSONAL[int(rng.integers(len(PERSONAL)))]] += 1 + int(rng.poisson(0.5))
        if rng.random() < 0.3:
            counts[PERSONAL[int(rng.integers(len(PERSONAL)))]] += 1
    return sorted(counts.items())


# ----------------------------------------------------------------------------------------
# professional genre paths
# ----------------------------------------------------------------------------------------

def cdr_paths(rec: dict) -> list[str]:
    """Hierarchical professional genre paths of a track (``folk/irish/reel`` ...)."""
    col = COLLECTIONS.get(rec["collection"])
    if col is None:
        return []
    if col.key == "essen_europe":
        form = rec.get("region") or "europe"
    else:
        form = (rec.get("dance") or "tune").replace(" ", "_")
    paths = [col.cdr.format(form=form)]
    if col.key in ("bach_chorales", "palestrina"):
        paths.append("classical/vocal/sacred_choral")
    elif col.key in ("monteverdi", "trecento"):
        paths.append("classical/vocal/secular_song")
    elif col.key == "string_quartets":
        paths.append("classical/chamber/strings")
    elif col.key in ("oneills_1850", "ryans_mammoth", "airds_airs") and rec.get("dance"):
        paths.append(f"folk/dance/{rec['dance'].replace(' ', '_')}")
    return paths


# ----------------------------------------------------------------------------------------
# simulated listeners
# ----------------------------------------------------------------------------------------

def simulate_listening(tracks: pd.DataFrame, *, seed: int, population: str,
                       n_users: int) -> pd.DataFrame:
    """Play counts of SIMULATED listeners whose tastes depend on real track attributes.

    Each listener ``u`` has seeded preferences: a Dirichlet(0.3) weight over genres, a
    Dirichlet(0.5) weight over instrument families, a preferred tempo (log-normal around
    110 bpm) with a personal strength, a liking or dislike of minor keys, and an activity
    level. A track's appeal to ``u`` is
    ``log w_genre + 0.6 log w_family - s (log tempo - mu)^2 / 0.245 + b [minor] + 0.5 pop``
    where ``pop`` is the track's own popularity draw. The listener plays the
    ``n_u`` tracks with the highest Gumbel-perturbed appeal; play counts are
    ``1 + Poisson(2 exp(appeal - mean appeal of the played tracks))`` (capped at 500).

    Parameters
    ----------
    tracks : pd.DataFrame
        Columns ``track_id, genre, instrument_family, tempo, mode``.
    seed : int
    population : str
        Name of the population (``"taste"`` or ``"listening"``); the user ids start with it.
    n_users : int

    Returns
    -------
    pd.DataFrame
        Columns ``user_id, track_id, play_count``, sorted.
    """
    if len(tracks) == 0 or n_users <= 0:
        return pd.DataFrame({"user_id": [], "track_id": [], "play_count": []})
    tids = tracks["track_id"].to_numpy()
    g_idx = np.array([GENRES.index(g) if g in GENRES else 0 for g in tracks["genre"]])
    f_idx = np.array([FAMILIES.index(f) if f in FAMILIES else 0
                      for f in tracks["instrument_family"]])
    log_t = np.log(tracks["tempo"].to_numpy(dtype=float))
    minor = (tracks["mode"].to_numpy() == "minor").astype(float)
    pop = np.array([rng_for(seed, "popularity", t).normal() for t in tids])
    rows_u, rows_t, rows_c = [], [], []
    n = len(tids)
    for u in range(n_users):
        rng = rng_for(seed, population, u)
        wg = rng.dirichlet(np.full(len(GENRES), 0.3)) + 1e-6
        wf = rng.dirichlet(np.full(len(FAMILIES), 0.5)) + 1e-6
        mu = rng.normal(np.log(110.0), 0.3)
        strength = rng.uniform(0.0, 1.5)
        bias = rng.normal(0.0, 0.7)
        n_u = int(np.clip(np.ceil(np.exp(rng.normal(np.log(8.0), 0.6))), 2, max(2, n // 2)))
        appeal = (np.log(wg[g_idx]) + 0.6 * np.log(wf[f_idx])
                  - strength * (log_t - mu) ** 2 / (2 * 0.35 ** 2) + bias * minor + 0.5 * pop)
        noisy = appeal + rng.gumbel(size=n)
        chosen = np.argsort(-noisy, kind="stable")[:n_u]
        a = appeal[chosen]
        lam = 2.0 * np.exp(np.clip(a - a.mean(), -5, 5))
        counts = np.minimum(1 + rng.poisson(lam), 500)
        user = f"{population}_u{u:05d}"
        rows_u.extend([user] * len(chosen))
        rows_t.extend(tids[chosen].tolist())
        rows_c.extend(counts.astype(int).tolist())
    df = pd.DataFrame({"user_id": rows_u, "track_id": rows_t, "play_count": rows_c})
    return df.sort_values(["user_id", "track_id"], kind="stable").reset_index(drop=True)


def n_users_for(n_tracks: int) -> int:
    """Size of a simulated population for ``n_tracks`` tracks."""
    return int(np.clip(n_tracks, 40, 5000))


# ----------------------------------------------------------------------------------------
# the tables
# ----------------------------------------------------------------------------------------

def _year(rec: dict, seed: int) -> int | None:
    if unit_for(seed, "year-missing", rec["track_id"]) < 0.10:
        return None
    lo, hi = rec["year_range"]
    return int(rng_for(seed, "year", rec["track_id"]).integers(lo, hi + 1))


def learning_tables(records: pd.DataFrame, *, seed: int) -> dict[str, pd.DataFrame]:
    """The eight raw learning-source tables for the learning clips.

    Parameters
    ----------
    records : pd.DataFrame
        One row per learning clip (the per-clip build records).
    seed : int

    Returns
    -------
    dict of str to pd.DataFrame
        Keyed by source name, columns as in ``docs/ARCHITECTURE.md``.
    """
    recs = records.sort_values("track_id", kind="stable").to_dict("records")
    tables: dict[str, pd.DataFrame] = {}
    tables["self"] = pd.DataFrame({"track_id": [r["track_id"] for r in recs]})
    tables["bpm"] = pd.DataFrame(
        [(r["track_id"], round(float(r["bpm_estimate"]), 2)) for r in recs
         if float(r["bpm_estimate"]) > 0], columns=["track_id", "bpm"])
    years = [(r["track_id"], _year(r, seed)) for r in recs]
    tables["year"] = pd.DataFrame([y for y in years if y[1] is not None],
                                  columns=["track_id", "year"])
    tables["tag"] = pd.DataFrame(
        [(r["track_id"], t, c) for r in recs for t, c in crowd_tags(r, seed)],
        columns=["track_id", "tag", "count"])
    tables["taste"] = simulate_listening(
        records[["track_id", "genre", "instrument_family", "tempo", "mode"]],
        seed=seed, population="taste", n_users=n_users_for(len(recs)))
    tables["cdr_tag"] = pd.DataFrame(
        [(r["track_id"], p) for r in recs
         if unit_for(seed, "cdr-missing", r["track_id"]) >= 0.15 for p in cdr_paths(r)],
        columns=["track_id", "tag"])
    lyr_rows = []
    for r in recs:
        words = r.get("lyrics") or []
        if len(words) >= 3:
            lyr_rows.extend((r["track_id"], w, c) for w, c in sorted(Counter(words).items()))
    tables["lyrics"] = pd.DataFrame(lyr_rows, columns=["track_id", "word", "count"])
    tables["artist"] = pd.DataFrame([(r["track_id"], r["artist"]) for r in recs],
                                    columns=["track_id", "artist"])
    return tables


def target_tables(records: pd.DataFrame, *, seed: int) -> dict[str, pd.DataFrame]:
    """Target-task tables for the target clips (``track_id, label, split`` or triplets).

    Parameters
    ----------
    records : pd.DataFrame
        One row per target clip, with its ``split``.
    seed : int

    Returns
    -------
    dict of str to pd.DataFrame
    """
    r = records.sort_values("track_id", kind="stable").reset_index(drop=True)
    out: dict[str, pd.DataFrame] = {}
    out["genre"] = pd.DataFrame({"track_id": r["track_id"], "label": r["genre"],
                                 "split": r["split"]})
    out["instrument"] = pd.DataFrame({"track_id": r["track_id"],
                                      "label": r["instrument_family"], "split": r["split"]})
    m = r[r["meter"].astype(str) != ""]
    out["meter"] = pd.DataFrame({"track_id": m["track_id"], "label": m["meter"],
                                 "split": m["split"]})
    out["note_density"] = pd.DataFrame({"track_id": r["track_id"],
                                        "label": r["note_density"].astype(float).round(4),
                                        "split": r["split"]})
    out["pitch_height"] = pd.DataFrame({"track_id": r["track_id"],
                                        "label": ((r["pitch_mean"].astype(float) - 60.0) / 12.0).round(4),
                                        "split": r["split"]})
    trip = simulate_listening(r[["track_id", "genre", "instrument_family", "tempo", "mode"]],
                              seed=seed, population="listening", n_users=n_users_for(len(r)))
    split = dict(zip(r["track_id"], r["split"]))
    trip["split"] = trip["track_id"].map(split)
    out["listening"] = trip
    return {k: v.reset_index(drop=True) for k, v in out.items()}
