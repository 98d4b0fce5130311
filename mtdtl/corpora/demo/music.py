"""The real music behind the demo corpus: a catalogue of music21's corpus and score reading.

What this module does
---------------------
1. :data:`COLLECTIONS` describes the collections of music21's corpus that the demo corpus
   uses (folder, composer or editor, years, genre, professional genre path, crowd words).
2. :func:`list_works` lists the works of a collection without parsing a score: ABC files are
   split on their ``X:`` lines and their raw header fields (``T:`` title, ``R:`` rhythm or
   song function, ``O:`` origin, ``M:`` meter, ``K:`` key) are kept, because these carry the
   labels music21 does not keep (Irish dance form, Essen region and song function).
3. :func:`read_score` parses one work with music21 and reduces it to what rendering and
   labelling need: note events in quarter lengths per part, the first time signature, the
   lyrics of the part that has most of them, and the work's length.

Work, group and track
---------------------
A *work* is one score (one ABC tune, one chorale, one mass movement). Works are gathered
into *groups* that must never be split between the learning and the target parts: the mass
for Palestrina's movements (``Agnus_05``, ``Kyrie_05`` ... belong to mass 05), the quartet
for a string quartet's movements, the cantata for Bach's chorales (``bwv101.7``), the tune
itself everywhere else. The manifest's ``work_id`` is the group id; ``title`` names the
movement. Duplicated tunes (O'Neill's collection ships a few overlapping files) are dropped
by title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "Collection", "Work", "ScoreData", "COLLECTIONS", "music21_corpus_dir",
    "list_works", "read_score", "abc_headers", "meter_class", "dance_form",
]


@dataclass(frozen=True)
class Collection:
    """One collection of music21's corpus as the demo corpus uses it.

    Attributes
    ----------
    key : str
        Name used in the manifest's ``collection`` column.
    folder : str
        Folder under music21's ``corpus/``.
    patterns : tuple of str
        Glob patterns (relative to ``folder``, recursive with ``**``) of the score files.
    exclude : tuple of str
        File-name prefixes to leave out.
    composer : str
        Composer, editor or collector (the ``composer`` column; the ``artist`` source unless
        the work names another).
    years : tuple of (int, int)
        Years of composition or publication (the ``year`` source draws inside this range).
    genre : str
        Class of the ``genre`` target task.
    cdr : str
        Professional genre path (``cdr_tag``); ``{form}`` is filled with the dance form.
    era : str
        Coarse style period (crowd tags, simulated listeners).
    tempo : tuple of (float, float)
        Range (quarter notes per minute) of the rendering tempo draw.
    words : tuple of str
        Crowd words that describe the whole collection (the ``tag`` source).
    """

    key: str
    folder: str
    patterns: tuple[str, ...]
    composer: str
    years: tuple[int, int]
    genre: str
    cdr: str
    era: str
    tempo: tuple[float, float]
    words: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


#: The collections used, with their documented composer/collection years (docs/corpus.md).
COLLECTIONS: dict[str, Collection] = {c.key: c for c in [
    Collection("bach_chorales", "bach", ("*.mxl",), "Johann Sebastian Bach", (1723, 1750),
               "chorale", "classical/baroque/chorale", "baroque", (56, 92),
               ("classical", "baroque", "bach", "chorale", "choral", "sacred", "german")),
    Collection("palestrina", "palestrina", ("*.krn",), "Giovanni Pierluigi da Palestrina",
               (1554, 1594), "renaissance_mass", "classical/renaissance/mass", "renaissance",
               (100, 160), ("classical", "renaissance", "early music", "polyphony", "sacred",
                            "mass", "latin", "palestrina")),
    Collection("monteverdi", "monteverdi", ("*.mxl",), "Claudio Monteverdi", (1592, 1605),
               "madrigal", "classical/renaissance/madrigal", "renaissance", (72, 112),
               ("classical", "renaissance", "early music", "madrigal", "italian", "monteverdi",
                "secular")),
    Collection("trecento", "trecento", ("*.xml",), "Trecento composers", (1330, 1400),
               "medieval", "classical/medieval/ars_nova", "medieval", (90, 150),
               ("medieval", "early music", "ars nova", "italian", "trecento", "ballata")),
    Collection("essen_europe", "essenFolksong", ("*.abc",), "Essen folksong collection",
               (1840, 1980), "european_folk", "folk/european/{form}", "folk",
               (80, 140), ("folk", "folk song", "traditional", "volkslied"),
               exclude=("test", "han")),
    Collection("essen_china", "essenFolksong", ("han*.abc",), "Essen folksong collection",
               (1950, 1985), "chinese_folk", "folk/asian/chinese", "folk", (66, 120),
               ("folk", "chinese", "chinese folk", "asian", "traditional")),
    Collection("oneills_1850", "oneills1850", ("*.abc",), "Francis O'Neill", (1903, 1903),
               "irish_dance", "folk/irish/{form}", "folk", (96, 150),
               ("irish", "celtic", "traditional", "irish traditional", "folk", "fiddle")),
    Collection("ryans_mammoth", "ryansMammoth", ("*.abc",), "William Bradbury Ryan",
               (1883, 1883), "fiddle_tune", "folk/north_american/{form}", "folk", (96, 150),
               ("fiddle", "traditional", "folk", "old time", "dance")),
    Collection("airds_airs", "airdsAirs", ("*.abc",), "James Aird", (1778, 1803),
               "scottish_air", "folk/scottish/{form}", "folk", (72, 132),
               ("scottish", "celtic", "traditional", "folk", "fife", "airs")),
    Collection("string_quartets", "", ("beethoven/**/*.mxl", "mozart/**/*.mxl",
                                        "haydn/**/*.mxl"), "", (1762, 1826),
               "string_quartet", "classical/classical_period/string_quartet", "classical",
               (72, 150), ("classical", "chamber music", "string quartet", "viennese"),
               exclude=("movement1_exposition",)),  # mozart/k545 is a piano sonata
]}

# Years of the Essen sub-collections (publication of the source collection; approximate).
ESSEN_SOURCES: dict[str, tuple[str, tuple[int, int]]] = {
    "altdeu": ("Altdeutsche Volkslieder (Essen)", (1877, 1877)),
    "ballad": ("Deutsche Volkslieder: Balladen (DVA)", (1935, 1996)),
    "boehme": ("Franz Magnus Boehme", (1895, 1895)),
    "dva": ("Deutsches Volksliedarchiv", (1914, 1970)),
    "erk": ("Ludwig Erk", (1856, 1894)),
    "fink": ("Gottfried Wilhelm Fink", (1843, 1843)),
    "folkHaydn": ("Folk tunes set by Haydn", (1791, 1805)),
    "han": ("Chinese folk songs (Essen)", (1950, 1985)),
    "irl": ("Irish songs (Essen)", (1840, 1900)),
    "kinder": ("Kinderlieder (Essen)", (1900, 1980)),
    "lot": ("Louis Pinck, Lorraine", (1926, 1962)),
    "lux": ("Luxembourg songs (Essen)", (1900, 1980)),
    "variant": ("Variants (Essen)", (1900, 1980)),
    "zuccal": ("Kretzschmer and Zuccalmaglio", (1838, 1840)),
}

# Composer years for the string quartets (composition years of the works in music21).
QUARTET_COMPOSERS: dict[str, tuple[str, tuple[int, int]]] = {
    "beethoven": ("Ludwig van Beethoven", (1798, 1826)),
    "mozart": ("Wolfgang Amadeus Mozart", (1770, 1788)),
    "haydn": ("Joseph Haydn", (1762, 1793)),
}


@dataclass(frozen=True)
class Work:
    """One score of the catalogue (not parsed yet).

    Attributes
    ----------
    work_id : str
        Unique id of the score, e.g. ``essenFolksong/kinder0.abc#50``.
    group : str
        Id of the group that must stay in one part (the manifest's ``work_id``).
    collection : str
        Key of :data:`COLLECTIONS` (``"custom"`` for user-given files).
    path : str
        Absolute path of the score file.
    number : int or None
        Tune number inside a multi-tune ABC file.
    title : str
        Title (ABC ``T:``, score metadata or file name).
    headers : tuple of (str, str)
        Raw ABC header fields of the tune (first value of each field).
    """

    work_id: str
    group: str
    collection: str
    path: str
    number: int | None
    title: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str, default: str = "") -> str:
        """The raw ABC header field ``name`` (e.g. ``"R"``), or ``default``."""
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def source(self) -> str:
        """Sub-collection (Essen source file stem without digits, or quartet composer)."""
        stem = Path(self.path).stem
        if self.collection.startswith("essen"):
            return re.sub(r"\d+$", "", stem)
        if self.collection == "string_quartets":
            return self.work_id.split("/")[0]
        return stem


def music21_corpus_dir() -> Path:
    """Folder of music21's bundled corpus."""
    import music21

    return Path(music21.__file__).resolve().parent / "corpus"


_X_LINE = re.compile(r"^X:\s*(\d+)", re.M)


def abc_headers(text: str) -> list[tuple[int, dict[str, str]]]:
    """Split ABC text into tunes and return ``(number, header fields)`` per tune.

    Only the header lines before the ``K:`` line are read; for every field the first value
    is kept (``T:`` title, ``R:`` rhythm, ``O:`` origin, ``M:`` meter, ``K:`` key).
    """
    out: list[tuple[int, dict[str, str]]] = []
    starts = [(m.start(), int(m.group(1))) for m in _X_LINE.finditer(text)]
    for i, (pos, number) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        fields: dict[str, str] = {}
        for line in text[pos:end].splitlines()[1:]:
            m = re.match(r"^([A-Za-z]):\s*(.*)$", line)
            if not m:
                if fields.get("K") is not None:
                    break
                continue
            key, val = m.group(1), m.group(2).strip().rstrip("]").strip()
            if key not in fields:
                fields[key] = val
            if key == "K":
                break
        out.append((number, fields))
    return out


def _norm_title(t: str) -> str:
    return re.sub(r"[^a-z0-9]", "", t.lower())


def _palestrina_group(stem: str) -> str:
    m = re.search(r"_(\d+)", stem)
    return f"palestrina/mass{m.group(1)}" if m else f"palestrina/{stem}"


@lru_cache(maxsize=None)
def list_works(collection: str) -> tuple[Work, ...]:
    """All works of one collection, in a fixed order (sorted by work id).

    Parameters
    ----------
    collection : str
        A key of :data:`COLLECTIONS`.

    Returns
    -------
    tuple of Work
    """
    col = COLLECTIONS[collection]
    base = music21_corpus_dir()
    root = base / col.folder if col.folder else base
    files: list[Path] = []
    for pat in col.patterns:
        files.extend(root.glob(pat))
    files = sorted({f for f in files if f.is_file() and not f.name.startswith(col.exclude)})
    works: list[Work] = []
    seen_titles: set[str] = set()
    for f in files:
        rel = f.relative_to(base).as_posix()
        if f.suffix == ".abc":
            text = f.read_text(encoding="latin-1")
            for number, fields in abc_headers(text):
                title = fields.get("T", f"{f.stem} {number}")
                if collection in ("oneills_1850", "ryans_mammoth", "airds_airs"):
                    key = _norm_title(title) + "|" + fields.get("M", "")
                    if key in seen_titles:
                        continue
                    seen_titles.add(key)
                wid = f"{rel}#{number}"
                works.append(Work(wid, wid, collection, str(f), number, title,
                                  tuple(sorted(fields.items()))))
        else:
            if collection == "palestrina":
                group = _palestrina_group(f.stem)
            elif collection == "bach_chorales":
                group = "bach/" + f.stem.split(".")[0]
            elif collection == "string_quartets":
                parts = rel.split("/")
                group = "/".join(parts[:2]) if len(parts) > 2 else rel.rsplit(".", 1)[0]
                group = group.rsplit(".", 1)[0]
            else:
                group = rel
            works.append(Work(rel, group, collection, str(f), None, f.stem, ()))
    works.sort(key=lambda w: w.work_id)
    return tuple(works)


# ----------------------------------------------------------------------------------------
# Reading a score
# ----------------------------------------------------------------------------------------

@dataclass
class ScoreData:
    """What the demo corpus needs from one parsed score.

    Attributes
    ----------
    onsets, durations : np.ndarray [shape=(n_notes,)] float64
        Note starts and lengths in quarter notes.
    pitches, velocities, parts : np.ndarray [shape=(n_notes,)] int
        MIDI pitch, MIDI velocity (80 where the score has none), part index.
    n_parts : int
    length_ql : float
        Length of the score in quarter notes (one pass, without repeats).
    time_signature : str
        First time signature (``"4/4"``), ``""`` when none.
    key_sharps : int or None
        Sharps (+) or flats (-) of the first key signature.
    lyrics : list of str
        Lower-case words of the lyrics of the part with the most lyrics (first verse).
    title, composer : str
        From the score's metadata where present.
    """

    onsets: np.ndarray
    durations: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    parts: np.ndarray
    n_parts: int
    length_ql: float
    time_signature: str = ""
    key_sharps: int | None = None
    lyrics: list[str] = field(default_factory=list)
    title: str = ""
    composer: str = ""


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_CONT = ("\xad", "-", "~", "_")


def _lyric_words(notes) -> list[str]:
    """Words of the first verse of a part's lyrics (syllables joined)."""
    words: list[str] = []
    buf = ""
    joining = False
    for n in notes:
        lyr = None
        for ly in n.lyrics:
            if ly.number in (0, 1) or lyr is None:
                lyr = ly
                if ly.number in (0, 1):
                    break
        if lyr is None or not lyr.text:
            continue
        text = lyr.text.strip()
        if not text:
            continue
        starts_cont = text.startswith(_CONT)
        ends_cont = text.endswith(_CONT) or lyr.syllabic in ("begin", "middle")
        if not (joining or starts_cont) and buf:
            words.append(buf)
            buf = ""
        buf += text.strip("".join(_CONT))
        joining = ends_cont
        if not ends_cont:
            words.append(buf)
            buf = ""
    if buf:
        words.append(buf)
    out: list[str] = []
    for w in words:
        w = w.replace("\xad", "").replace("~", "").replace("_", "").replace("-", " ").lower()
        out.extend(_WORD.findall(w))
    return out


def read_score(work: Work) -> ScoreData:
    """Parse a work with music21 and reduce it to note events.

    Parameters
    ----------
    work : Work

    Returns
    -------
    ScoreData

    Raises
    ------
    Exception
        Whatever music21 raises for an unreadable score; the builder records it.
    ValueError
        When the score has no pitched notes.
    """
    from music21 import converter, meter, key as m21key, stream

    kwargs = {"forceSource": True, "storePickle": False}
    if work.number is not None:
        s = converter.parse(work.path, number=work.number, **kwargs)
    else:
        s = converter.parse(work.path, **kwargs)
    if isinstance(s, stream.Opus):
        if not s.scores:
            raise ValueError("the file holds no score")
        s = s.scores[0]
    parts = list(s.parts) if s.hasPartLikeStreams() else [s]
    on, du, pi, ve, pa = [], [], [], [], []
    best_lyrics: list[str] = []
    length = float(s.highestTime)
    for ip, part in enumerate(parts):
        flat = part.flatten()
        notes = list(flat.notes)
        open_ties: dict[int, int] = {}  # MIDI pitch -> index of the note a tie continues
        for n in notes:
            ql = float(n.quarterLength)
            if ql <= 0:  # grace notes
                continue
            off = float(n.offset)
            vel = n.volume.velocity if n.volume is not None else None
            vel = 80 if vel is None else int(vel)
            if n.isChord:
                items = [(int(p.midi), cn.tie or n.tie) for p, cn in zip(n.pitches, n.notes)]
            else:
                items = [(int(p.midi), n.tie) for p in getattr(n, "pitches", ())]
            for midi, tie in items:
                kind = tie.type if tie is not None else None
                j = open_ties.get(midi)
                if kind in ("stop", "continue") and j is not None \
                        and abs(on[j] + du[j] - off) < 1e-6:
                    du[j] += ql  # a tied note lengthens the note it continues
                    if kind == "stop":
                        del open_ties[midi]
                    continue
                on.append(off)
                du.append(ql)
                pi.append(midi)
                ve.append(vel)
                pa.append(ip)
                if kind in ("start", "continue"):
                    open_ties[midi] = len(pi) - 1
                else:
                    open_ties.pop(midi, None)
        words = _lyric_words(notes)
        if len(words) > len(best_lyrics):
            best_lyrics = words
        length = max(length, float(flat.highestTime))
    if not pi:
        raise ValueError("the score has no pitched notes")
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    ks = s.recurse().getElementsByClass(m21key.KeySignature).first()
    md = s.metadata
    order = np.lexsort((np.asarray(pi), np.asarray(on)))
    return ScoreData(
        onsets=np.asarray(on, dtype=np.float64)[order],
        durations=np.asarray(du, dtype=np.float64)[order],
        pitches=np.asarray(pi, dtype=np.int64)[order],
        velocities=np.clip(np.asarray(ve, dtype=np.int64), 1, 127)[order],
        parts=np.asarray(pa, dtype=np.int64)[order],
        n_parts=len(parts),
        length_ql=length,
        time_signature=ts.ratioString if ts is not None else "",
        key_sharps=int(ks.sharps) if ks is not None else None,
        lyrics=best_lyrics,
        title=(md.title or "") if md is not None else "",
        composer=(md.composer or "") if md is not None else "",
    )


def meter_class(time_signature: str) -> str:
    """Duple, triple or compound meter of a time signature (``""`` when unknown or odd).

    ``6/8, 9/8, 12/8, 6/4, 12/16 ...`` are compound; ``2/x, 4/x, C, C|`` duple; ``3/x``
    triple (``3/8`` counts as triple); 5, 7 ... beats return ``""``.
    """
    m = re.match(r"^(\d+)/(\d+)$", time_signature.strip())
    if not m:
        return ""
    num = int(m.group(1))
    if num in (6, 9, 12) and int(m.group(2)) >= 4:
        return "compound"
    if num in (2, 4, 8):
        return "duple"
    if num == 3:
        return "triple"
    return ""


_DANCES = ["slip jig", "double jig", "single jig", "highland fling", "hornpipe", "strathspey",
           "reel", "jig", "polka", "waltz", "march", "clog", "set dance", "slide", "quickstep",
           "schottische", "mazurka", "minuet", "air", "lament", "song"]


def dance_form(work: Work) -> str:
    """Dance or tune form from the ABC ``R:`` field or the title (``""`` when none).

    ``double jig`` and ``single jig`` count as ``jig``, ``slip jig`` stays apart.
    """
    for text in (work.header("R"), work.title):
        t = text.lower().replace("-", " ")
        t = re.sub(r"\s+", " ", t)
        for d in _DANCES:
            if re.search(rf"\b{d}s?\b", t):
                return "jig" if d in ("double jig", "single jig") else d
    return ""
