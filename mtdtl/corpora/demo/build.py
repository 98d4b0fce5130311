"""The embedded demo corpus: real compositions from music21's corpus, rendered to audio.

``build_demo_corpus`` picks works from music21's corpus (Bach chorales, Palestrina masses,
Monteverdi madrigals, trecento songs, Essen folksongs from Europe and China, O'Neill's and
Ryan's dance tunes, Aird's airs, and for the larger sizes string quartets), renders one
30 s stereo clip per work with the General MIDI soundfont that ``pretty_midi`` ships
(through ``tinysoundfont``: pip only, no system packages, no downloads), and writes the
corpus folder described in ``docs/ARCHITECTURE.md`` and ``docs/corpus.md``.

Two disjoint parts are made, split by work group (never one work in both): **learning**
clips (train / valid) with raw labels of the eight learning sources, and **target** clips
(train / valid / test) with six target tasks.

Build properties
----------------
- Deterministic given ``seed`` (and ``size``): every per-clip draw is seeded from
  ``(seed, track id)``, so the manifest and the audio bytes do not depend on the number of
  processes or their order.
- Resumable and idempotent: each clip's audio and build record (``clips/<track_id>.json``)
  are written atomically as the clip finishes; a rerun reuses a clip only when its audio file
  still has the recorded sha256, and renders only what is missing or changed. Tables,
  manifest and ``corpus.json`` are written at the end, only when their content changes.
- Robust: a work that fails to parse or render, or renders silent, is recorded in
  ``build_report.json`` and replaced by the next candidate work of its collection.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from mtdtl.constants import N_CHANNELS, SR
from mtdtl.corpora.base import check_out_dir, to_json, write_text_if_changed
from mtdtl.corpora.demo import labels as L
from mtdtl.corpora.demo.music import (COLLECTIONS, ESSEN_SOURCES, QUARTET_COMPOSERS, Work,
                                      dance_form, list_works, meter_class)
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_bytes, atomic_write_text, file_sha256, package_versions
from mtdtl.log import get_logger

__all__ = ["build_demo_corpus", "SIZES", "CLIP_SECONDS", "track_id_for", "plan_works",
           "works_from_files"]

log = get_logger(__name__)

#: Length of every clip (seconds), as the paper's 30 s previews.
CLIP_SECONDS = 30.0
#: Bump when rendering changes, so that old clips are re-rendered on resume.
RENDER_VERSION = 2
#: Most movements taken from one work group (mass, quartet, cantata) below size ``full``.
MAX_PER_GROUP = 2
SOUNDFONT_NAME = "TimGM6mb.sf2"

_T = {  # (learning, target) works per collection, per size
    "tiny": {"bach_chorales": (7, 3), "palestrina": (2, 2), "monteverdi": (1, 1),
             "trecento": (1, 1), "essen_europe": (5, 2), "essen_china": (2, 2),
             "oneills_1850": (3, 2), "ryans_mammoth": (2, 1), "airds_airs": (1, 2)},
    "small": {"bach_chorales": (42, 22), "palestrina": (26, 13), "monteverdi": (14, 7),
              "trecento": (14, 7), "essen_europe": (75, 38), "essen_china": (27, 13),
              "oneills_1850": (48, 24), "ryans_mammoth": (48, 24), "airds_airs": (26, 12)},
}
_T["medium"] = {k: (3 * a, 3 * b) for k, (a, b) in _T["small"].items()}
_T["medium"]["string_quartets"] = (8, 4)
_T["large"] = {k: (10 * a, 10 * b) for k, (a, b) in _T["small"].items()}
_T["large"]["string_quartets"] = (30, 15)

#: Works per collection ``(learning, target)`` for each size; ``full`` takes every work
#: (two thirds learning, one third target).
SIZES: dict[str, dict[str, tuple[int, int]] | None] = {**_T, "full": None}


# ----------------------------------------------------------------------------------------
# planning: which works, which part
# ----------------------------------------------------------------------------------------

def track_id_for(work_id: str) -> str:
    """Stable track id of a work: ``DM`` and 12 hex digits of its id's SHA-1."""
    return "DM" + hashlib.sha1(work_id.encode()).hexdigest()[:12].upper()


def plan_works(works: Sequence[Work], n_learning: int | None, n_target: int | None, *,
               seed: int, max_per_group: int | None = MAX_PER_GROUP
               ) -> tuple[list[Work], list[Work]]:
    """Order a collection's works into learning and target candidates.

    Groups (masses, quartets, tunes) are shuffled by the seed; each group goes whole to the
    part that is proportionally furthest from its quota, so no group is in both parts. The
    lists hold every usable work: the builder takes them in order and moves on to the next
    candidate when a work fails.

    Returns
    -------
    learning, target : list of Work
    """
    groups: dict[str, list[Work]] = {}
    for w in works:
        groups.setdefault(w.group, []).append(w)
    keys = sorted(groups)
    rng = L.rng_for(seed, "plan", keys[0] if keys else "")
    order = [keys[i] for i in rng.permutation(len(keys))]
    nl = n_learning if n_learning is not None else 2
    nt = n_target if n_target is not None else 1
    learn: list[Work] = []
    target: list[Work] = []
    for g in order:
        members = groups[g]
        members = [members[i] for i in L.rng_for(seed, "group", g).permutation(len(members))]
        if max_per_group is not None:
            members = members[:max_per_group]
        fl = len(learn) / nl if nl else math.inf
        ft = len(target) / nt if nt else math.inf
        (learn if fl <= ft else target).extend(members)
    return learn, target


def works_from_files(paths: Iterable[str | os.PathLike]) -> list[Work]:
    """Works from score files of your own (any format music21 reads; ABC files split by tune).

    They form the collection ``"custom"``; pass them as ``works=`` to
    :func:`build_demo_corpus`.
    """
    from mtdtl.corpora.demo.music import abc_headers

    out: list[Work] = []
    for p in paths:
        p = Path(p).resolve()
        if p.suffix == ".abc":
            try:
                tunes = abc_headers(p.read_text(encoding="latin-1"))
            except OSError as e:
                raise MtdtlError(f"cannot read score file {p}: {e}") from e
            if not tunes:
                out.append(Work(str(p), str(p), "custom", str(p), None, p.stem, ()))
            for number, fields in tunes:
                wid = f"{p}#{number}"
                out.append(Work(wid, wid, "custom", str(p), number, fields.get("T", p.stem),
                                tuple(sorted(fields.items()))))
        else:
            out.append(Work(str(p), str(p), "custom", str(p), None, p.stem, ()))
    return out


# ----------------------------------------------------------------------------------------
# one clip
# ----------------------------------------------------------------------------------------

_REGIONS = (("China", "china"), ("Lothringen", "lorraine"), ("Luxemburg", "luxembourg"),
            ("Niederlande", "netherlands"), ("Schweiz", "switzerland"),
            ("Oesterreich", "austria"), ("Österreich", "austria"), ("Irland", "ireland"),
            ("Island", "iceland"), ("Ungarn", "hungary"), ("Jugoslawien", "yugoslavia"),
            ("Rumaenien", "romania"), ("Polen", "poland"), ("Russland", "russia"),
            ("UdSSR", "russia"), ("Frankreich", "france"), ("Deutschland", "germany"))

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _region(work: Work) -> str:
    origin = work.header("O")
    if not origin:
        return "china" if work.collection == "essen_china" else ""
    for word, region in _REGIONS:
        if word in origin:
            return region
    return "europe"


_TONICS = ("c", "c#", "d", "eb", "e", "f", "f#", "g", "ab", "a", "bb", "b")


def _key(pitches: np.ndarray, durations: np.ndarray) -> tuple[str, str]:
    """Key (``"d minor"``) and mode by the Krumhansl-Kessler profiles (duration-weighted)."""
    hist = np.bincount(pitches % 12, weights=durations, minlength=12)
    if hist.sum() <= 0 or np.all(hist == hist[0]):
        return "", ""
    best, key, mode = -np.inf, "", ""
    for prof, name in ((_MAJOR, "major"), (_MINOR, "minor")):
        for k in range(12):
            r = np.corrcoef(hist, np.roll(prof, k))[0, 1]
            if np.isfinite(r) and r > best:
                best, key, mode = r, f"{_TONICS[k]} {name}", name
    return key, mode


def _artist_and_years(work: Work, composer: str) -> tuple[str, str, tuple[int, int]]:
    """(artist, composer, year range) of a work."""
    col = COLLECTIONS.get(work.collection)
    if work.collection.startswith("essen"):
        name, years = ESSEN_SOURCES.get(work.source, (f"Essen: {work.source}", col.years))
        return name, col.composer, years
    if work.collection == "string_quartets":
        name, years = QUARTET_COMPOSERS.get(work.source, (work.source.title(), col.years))
        return name, name, years
    if work.collection == "trecento":
        c = composer.split("\n")[0].split("(")[0].strip() if composer else ""
        c = c or "Anonymous (trecento)"
        return c, c, col.years
    if col is None:
        c = composer or "unknown"
        return c, c, (1900, 2000)
    return col.composer, col.composer, col.years


def _params_hash(work: Work, seed: int) -> str:
    key = json.dumps([RENDER_VERSION, int(seed), work.work_id, CLIP_SECONDS, SR, SOUNDFONT_NAME])
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def render_clip(work: Work, *, seed: int, root: str | os.PathLike) -> dict:
    """Render one work to ``audio/<track_id>.flac`` and return its build record.

    The record (also written to ``clips/<track_id>.json``) has ``status`` ``"ok"`` or
    ``"failed"`` (with ``stage``: parse, render or silent, and ``error``). Never raises for
    a bad score.
    """
    import soundfile as sf

    from mtdtl.corpora.demo.music import read_score
    from mtdtl.corpora.demo.render import (FAMILIES, INSTRUMENTS, RenderSpec, estimate_bpm,
                                           render_events)

    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    tid = track_id_for(work.work_id)
    base = {"track_id": tid, "work_id": work.group, "source_id": work.work_id,
            "collection": work.collection, "params": _params_hash(work, seed)}

    def failed(stage: str, e: BaseException | str) -> dict:
        msg = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
        rec = {**base, "status": "failed", "stage": stage, "error": str(msg)[:500]}
        atomic_write_text(root / "clips" / f"{tid}.json", to_json(rec))
        return rec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            t_parse, cpu0 = time.perf_counter(), time.process_time()
            score = read_score(work)
            t_parse = time.perf_counter() - t_parse
        except Exception as e:  # noqa: BLE001 - any parse failure skips the work
            return failed("parse", e)
    try:
        col = COLLECTIONS.get(work.collection)
        rng = L.rng_for(seed, "render", tid)
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
        progs = [i for i in INSTRUMENTS if i.family == family]
        inst = progs[int(rng.integers(len(progs)))]
        meter = meter_class(score.time_signature or work.header("M"))
        lo, hi = col.tempo if col is not None else (72.0, 140.0)
        tempo = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if meter == "compound":
            tempo *= 1.5
        tempo = round(float(np.clip(tempo, 40.0, 260.0)), 2)
        if score.n_parts <= 1:
            pans = (round(0.5 + float(rng.uniform(-0.25, 0.25)), 3),)
        else:
            width = float(rng.uniform(0.2, 0.8))
            pos = np.linspace(0.5 - width / 2, 0.5 + width / 2, score.n_parts)
            pans = tuple(round(float(x), 3) for x in pos[rng.permutation(score.n_parts)])
        spec = RenderSpec(program=inst.program, tempo=tempo, pans=pans,
                          velocity_scale=round(float(rng.uniform(0.7, 1.0)), 3),
                          gain_db=round(float(rng.uniform(-6.0, 3.0)), 2))
        spq = 60.0 / tempo
        period = score.length_ql * spq
        if period < 2.0:
            return failed("render", f"the work lasts {period:.2f} s at {tempo} bpm (under 2 s)")
        loops = int(math.ceil(CLIP_SECONDS / period))
        k = np.arange(loops)[:, None] * period
        on = (score.onsets[None, :] * spq + k).ravel()
        off = on + np.tile(score.durations * spq, loops)
        pit = np.tile(score.pitches, loops)
        vel = np.tile(score.velocities, loops)
        par = np.tile(score.parts, loops)
        t_render = time.perf_counter()
        y = render_events(on, off, pit, vel, par, spec, duration=CLIP_SECONDS, sr=SR)
        t_render = time.perf_counter() - t_render
    except Exception as e:  # noqa: BLE001
        return failed("render", e)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if not np.isfinite(peak) or peak < 1e-4:
        return failed("silent", f"the render is silent (peak {peak:.2e})")
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    scale = 10 ** ((-20.0 + spec.gain_db) / 20.0) / max(rms, 1e-9)
    scale = min(scale, 0.98 / peak)
    y = (y * scale).astype(np.float32)
    try:
        t_bpm = time.perf_counter()
        bpm_est = estimate_bpm(y, sr=SR)
        t_bpm = time.perf_counter() - t_bpm
    except Exception as e:  # noqa: BLE001
        return failed("render", e)
    bio = io.BytesIO()
    t_write = time.perf_counter()
    sf.write(bio, y.T, SR, format="FLAC", subtype="PCM_16")
    data = bio.getvalue()
    atomic_write_bytes(root / "audio" / f"{tid}.flac", data)
    in_clip = on < CLIP_SECONDS
    key, mode = _key(score.pitches, score.durations)
    artist, composer, years = _artist_and_years(work, score.composer)
    title = work.title if work.collection != "trecento" or not score.title else score.title
    rec = {
        **base, "status": "ok",
        "path": f"audio/{tid}.flac", "duration": round(y.shape[1] / SR, 4), "sample_rate": SR,
        "channels": N_CHANNELS, "composer": composer, "artist": artist,
        "title": " ".join(str(title).split()), "instrument": inst.name,
        "program": inst.program, "instrument_family": inst.family, "tempo": tempo,
        "soundfont": SOUNDFONT_NAME, "audio_sha256": hashlib.sha256(data).hexdigest(),
        "audio_bytes": len(data), "bpm_estimate": round(bpm_est, 4),
        "time_signature": score.time_signature or work.header("M"), "meter": meter,
        "key_sharps": score.key_sharps, "key": key, "mode": mode,
        "dance": dance_form(work) if work.collection in (
            "oneills_1850", "ryans_mammoth", "airds_airs") else "",
        "region": _region(work) if work.collection.startswith("essen") else "",
        "function": work.header("R") if work.collection.startswith("essen") else "",
        "lyrics": score.lyrics, "n_lyric_words": len(score.lyrics),
        "note_density": round(float(in_clip.sum()) / CLIP_SECONDS, 4),
        "pitch_mean": round(float(pit[in_clip].mean()), 4) if in_clip.any() else 0.0,
        "n_parts": score.n_parts, "work_seconds": round(period, 3), "loops": loops,
        "pans": list(spec.pans), "gain_db": spec.gain_db,
        "velocity_scale": spec.velocity_scale,
        "genre": col.genre if col is not None else "custom",
        "era": col.era if col is not None else "",
        "year_range": list(years),
        # seconds spent per stage (for benchmarks; not part of any table)
        "timing": {"parse": round(t_parse, 4), "render": round(t_render, 4),
                   "bpm": round(t_bpm, 4), "encode": round(time.perf_counter() - t_write, 4),
                   "cpu": round(time.process_time() - cpu0, 4)},
    }
    atomic_write_text(root / "clips" / f"{tid}.json", to_json(rec))
    return rec


def _render_star(args) -> dict:
    work, seed, root = args
    try:
        return render_clip(work, seed=seed, root=root)
    except Exception as e:  # noqa: BLE001 - last resort: never lose the pool to one work
        return {"track_id": track_id_for(work.work_id), "work_id": work.group,
                "source_id": work.work_id, "collection": work.collection,
                "params": _params_hash(work, seed), "status": "failed", "stage": "write",
                "error": f"{type(e).__name__}: {e}"[:500]}


def _worker_init() -> None:
    from mtdtl.corpora.demo.render import _limit_threads

    _limit_threads()
    warnings.simplefilter("ignore")


def _load_record(root: Path, work: Work, seed: int) -> dict | None:
    """The finished record of a work from an earlier (maybe interrupted) build, if valid.

    A clip is reused only when its audio file has the recorded size and sha256 (a file
    changed or corrupted since is rendered again). Records of builds before the sha256 was
    recorded are checked against their sha1 and upgraded.
    """
    tid = track_id_for(work.work_id)
    p = root / "clips" / f"{tid}.json"
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("params") != _params_hash(work, seed):
        return None
    if rec.get("status") == "ok":
        a = root / str(rec.get("path", ""))
        if not a.is_file() or a.stat().st_size != rec.get("audio_bytes"):
            return None
        if "audio_sha256" in rec:
            if file_sha256(a) != rec["audio_sha256"]:
                log.info("%s: audio differs from its build record; rendering it again", a)
                return None
        else:  # a record of an older build: check its sha1, then record the sha256
            data = a.read_bytes()
            if hashlib.sha1(data).hexdigest() != rec.get("audio_sha1"):
                return None
            rec = {k: v for k, v in rec.items() if k != "audio_sha1"}
            rec["audio_sha256"] = hashlib.sha256(data).hexdigest()
            atomic_write_text(p, to_json(rec))
    elif rec.get("status") != "failed":
        return None
    return rec


# ----------------------------------------------------------------------------------------
# the build
# ----------------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    return package_versions("music21", "tinysoundfont", "pretty_midi", "librosa", "soundfile", "libsndfile",
                            "numpy")


def _pool_context():
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        # heavy imports happen once in the fork server, not once per worker
        ctx.set_forkserver_preload(["mtdtl.corpora.demo.build", "mtdtl.corpora.demo.music",
                                    "mtdtl.corpora.demo.render", "music21.converter",
                                    "librosa.onset", "librosa.feature", "soundfile",
                                    "tinysoundfont"])
        return ctx
    return mp.get_context("spawn")


def _assign_splits(recs: pd.DataFrame, seed: int) -> pd.Series:
    """Learning: 10 % valid (at least 2 clips). Target: 3/5 train, 1/5 valid, 1/5 test,
    dealt in turn over the tracks ordered by genre, so every split sees every genre."""
    split = pd.Series("train", index=recs.index, dtype=object)
    u = recs["track_id"].map(lambda t: L.unit_for(seed, "split", t))
    learn = recs.index[recs["part"] == "learning"]
    if len(learn):
        order = u[learn].sort_values(kind="stable").index
        n_valid = max(2, int(round(0.1 * len(learn)))) if len(learn) >= 4 else 0
        split[order[:n_valid]] = "valid"
    tgt = recs.loc[recs["part"] == "target"].assign(_u=u)
    if len(tgt):
        order = tgt.sort_values(["genre", "_u"], kind="stable").index
        cycle = ("train", "train", "train", "valid", "test")
        off = int(L.unit_for(seed, "split-offset", "target") * 5)
        for i, ix in enumerate(order):
            split[ix] = cycle[(i + off) % 5]
    return split


MANIFEST_COLUMNS = ["track_id", "part", "split", "path", "duration", "sample_rate", "channels",
                    "work_id", "collection", "composer", "title", "instrument", "program",
                    "instrument_family", "tempo", "soundfont"]


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.6g")


def _check_args(*, root, size, seed, workers, progress, works) -> None:
    """Every argument of :func:`build_demo_corpus` checked before any work starts."""
    if not isinstance(size, str) or size not in SIZES:
        raise MtdtlError(f"unknown corpus size {size!r}; choose one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise MtdtlError(f"seed must be a whole number >= 0, got {seed!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise MtdtlError(f"workers must be a whole number >= 1 (or None for all cores), got "
                         f"{workers!r}")
    if not isinstance(progress, bool):
        raise MtdtlError(f"progress must be True or False, got {progress!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise MtdtlError(f"root must be a folder path, got {type(root).__name__}")
    if works is not None:
        if isinstance(works, (str, os.PathLike)) or not isinstance(works, Iterable):
            raise MtdtlError("works must be a list of Work (see works_from_files), got "
                             f"{type(works).__name__}")
        works = list(works)
        if not works:
            raise MtdtlError("works is empty; pass at least one Work (see works_from_files)")
        bad = [w for w in works if not isinstance(w, Work)]
        if bad:
            raise MtdtlError(f"works must hold Work objects (see works_from_files), got "
                             f"{type(bad[0]).__name__}")


def build_demo_corpus(*, root: str | os.PathLike | None = None, size: str = "small",
                      seed: int = 0, workers: int | None = None, progress: bool = True,
                      works: Sequence[Work] | None = None) -> Path:
    """Build (or finish building) the embedded demo corpus.

    Parameters
    ----------
    root : path, optional
        Corpus folder (new, or one this function built); default
        ``mtdtl.paths.demo_corpus_dir(size, seed)``.
    size : {"tiny", "small", "medium", "large", "full"}
        ``tiny`` (40 clips, for tests), ``small`` (default: 320 learning + 160 target
        clips), ``medium`` (about 3x), ``large`` (about 10x), ``full`` (every work).
    seed : int
        Seed of every draw (works, parts, instruments, tempi, labels).
    workers : int, optional
        Processes (default: all cores).
    progress : bool
        Show a progress bar.
    works : sequence of Work, optional
        Use these works instead of the music21 catalogue (see :func:`works_from_files`);
        they are dealt alternately to the learning and target parts.

    Returns
    -------
    pathlib.Path
        The corpus folder (open it with :meth:`mtdtl.corpora.Corpus.open`).

    Raises
    ------
    MtdtlError
        A bad argument (unknown size, a seed or worker count that is not a whole number, an
        empty ``works``: all checked before any work starts), a folder that holds something
        else or a demo corpus built with another seed, or no clip rendered at all.
    """
    from tqdm.auto import tqdm

    from mtdtl.paths import demo_corpus_dir

    if works is not None and not isinstance(works, (str, os.PathLike)) and isinstance(works, Iterable):
        works = list(works)
    _check_args(root=root, size=size, seed=seed, workers=workers, progress=progress, works=works)
    seed = int(seed)
    root = Path(root) if root is not None else demo_corpus_dir(size, seed)
    root = root.expanduser().resolve()
    check_out_dir(root, kind="demo")
    info_path = root / "corpus.json"
    if info_path.is_file():
        try:
            old = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("seed", seed) != seed:
            raise MtdtlError(f"{root} holds a demo corpus built with seed {old.get('seed')}, "
                             f"not {seed}; pick another --root or delete that folder")
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for leftover in [*root.glob("audio/.*.tmp*"), *root.glob("clips/.*.tmp*")]:
        leftover.unlink(missing_ok=True)  # half-written files of an interrupted build
    t0 = time.perf_counter()
    workers = int(workers) if workers else (len(os.sched_getaffinity(0))
                                            if hasattr(os, "sched_getaffinity")
                                            else os.cpu_count() or 1)

    # candidates per (collection, part), in order
    cands: dict[tuple[str, str], list[Work]] = {}
    need: dict[tuple[str, str], int] = {}
    if works is not None:
        ws = list(works)
        cands[("custom", "learning")] = ws[0::2]
        cands[("custom", "target")] = ws[1::2]
        need = {k: len(v) for k, v in cands.items()}
    else:
        table = SIZES[size]
        cols = table.keys() if table is not None else COLLECTIONS.keys()
        for c in cols:
            nl, nt = table[c] if table is not None else (None, None)
            lw, tw = plan_works(list_works(c), nl, nt, seed=seed,
                                max_per_group=None if table is None else MAX_PER_GROUP)
            cands[(c, "learning")], cands[(c, "target")] = lw, tw
            # a size may ask for more works than a small collection has: take them all
            need[(c, "learning")] = len(lw) if nl is None else min(nl, len(lw))
            need[(c, "target")] = len(tw) if nt is None else min(nt, len(tw))

    results: dict[str, dict] = {}   # source work id -> record
    rendered: list[str] = []
    pointer = {k: 0 for k in cands}
    pool = None
    bar = tqdm(total=sum(min(need[k], len(cands[k])) for k in cands), disable=not progress,
               desc=f"demo corpus ({size})", unit="clip")
    try:
        while True:
            batch: list[tuple[Work, str]] = []
            for key, lst in cands.items():
                ok = sum(1 for w in lst[:pointer[key]]
                         if results.get(w.work_id, {}).get("status") == "ok")
                deficit = need[key] - ok
                take = lst[pointer[key]:pointer[key] + max(deficit, 0)]
                pointer[key] += len(take)
                batch.extend((w, key[1]) for w in take)
            if not batch:
                break
            todo = []
            for w, _ in batch:
                rec = _load_record(root, w, seed)
                if rec is not None:
                    results[w.work_id] = rec
                    if rec["status"] == "ok":
                        bar.update(1)
                else:
                    todo.append(w)
            if not todo:
                continue
            args = [(w, seed, str(root)) for w in todo]
            if workers <= 1 or len(todo) == 1:
                it = map(_render_star, args)
            else:
                if pool is None:
                    pool = _pool_context().Pool(min(workers, max(len(todo), 2)),
                                                initializer=_worker_init)
                it = pool.imap_unordered(_render_star, args, chunksize=1)
            for rec in it:
                results[rec["source_id"]] = rec
                rendered.append(rec["track_id"])
                if rec["status"] == "ok":
                    bar.update(1)
                else:
                    log.info("skipped %s (%s): %s", rec["source_id"], rec["stage"], rec["error"])
    except BaseException:
        # interrupted (Ctrl-C) or broken: stop the workers now; finished clips are on disk
        if pool is not None:
            pool.terminate()
            pool.join()
            pool = None
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()

    # gather the clips that count, in candidate order
    rows = []
    shortfall = {}
    for (c, part), lst in cands.items():
        ok = [results[w.work_id] for w in lst[:pointer[(c, part)]]
              if results.get(w.work_id, {}).get("status") == "ok"][:need[(c, part)]]
        if len(ok) < need[(c, part)]:
            shortfall[f"{c}/{part}"] = {"wanted": need[(c, part)], "got": len(ok)}
        rows.extend({**r, "part": part} for r in ok)
    if not rows:
        raise MtdtlError(f"no clip could be rendered into {root}; see "
                         f"{root / 'clips'} for the errors")
    recs = pd.DataFrame(rows).sort_values("track_id", kind="stable").reset_index(drop=True)
    recs["split"] = _assign_splits(recs, seed)
    skipped = sorted((r for r in results.values() if r.get("status") != "ok"),
                     key=lambda r: r["source_id"])

    # tables
    (root / "labels").mkdir(exist_ok=True)
    (root / "targets").mkdir(exist_ok=True)
    learn = recs[recs["part"] == "learning"].reset_index(drop=True)
    target = recs[recs["part"] == "target"].reset_index(drop=True)
    for name, df in L.learning_tables(learn, seed=seed).items():
        write_text_if_changed(root / "labels" / f"{name}.csv", _csv(df))
    tasks = {}
    for name, df in L.target_tables(target, seed=seed).items():
        write_text_if_changed(root / "targets" / f"{name}.csv", _csv(df))
        tasks[name] = {**L.TASKS[name], "n_tracks": int(df["track_id"].nunique())}
        if L.TASKS[name]["type"] == "classification":
            tasks[name]["classes"] = sorted(df["label"].unique().tolist())
    write_text_if_changed(root / "targets" / "tasks.json", to_json(tasks))
    manifest = recs[MANIFEST_COLUMNS]
    write_text_if_changed(root / "manifest.csv", _csv(manifest))
    extra_cols = ["track_id", "source_id", "time_signature", "meter", "key_sharps", "key", "mode",
                  "dance", "region", "function", "genre", "era", "artist", "n_parts",
                  "work_seconds", "loops", "note_density", "pitch_mean", "bpm_estimate",
                  "gain_db", "velocity_scale", "audio_sha256"]
    write_text_if_changed(root / "clips.csv", _csv(recs[extra_cols]))

    wall = time.perf_counter() - t0
    label = "custom" if works is not None else size
    counts = {f"{p}/{s}": int(n) for (p, s), n in recs.groupby(["part", "split"]).size().items()}
    report = {
        "size": label, "seed": seed, "n_clips": len(recs), "n_skipped": len(skipped),
        "skipped": [{k: r.get(k) for k in ("source_id", "work_id", "collection", "stage",
                                           "error")} for r in skipped],
        "shortfall": shortfall, "rendered_this_run": sorted(rendered),
        "n_rendered_this_run": len(rendered),
        "n_reused": len(results) - len(rendered), "workers": workers,
        "wall_seconds": round(wall, 2),
        "clips_per_second": round(len(rendered) / wall, 3) if wall > 0 else None,
    }
    atomic_write_text(root / "build_report.json", to_json(report))
    info = {
        "name": f"demo-{label}-seed{seed}", "kind": "demo", "size": label, "seed": seed,
        "parameters": {"clip_seconds": CLIP_SECONDS, "sample_rate": SR, "channels": N_CHANNELS,
                       "soundfont": SOUNDFONT_NAME, "render_version": RENDER_VERSION,
                       "max_per_group": MAX_PER_GROUP,
                       "works_per_collection": ({f"{c}/{p}": n for (c, p), n in need.items()})},
        "versions": _versions(), "counts": counts,
        "collections": {c: int(n) for c, n in recs.groupby("collection").size().items()},
        "n_skipped": len(skipped),
    }
    write_text_if_changed(info_path, to_json(info))
    log.info("demo corpus %s: %d clips (%d rendered now, %d skipped) in %.1f s", root,
             len(recs), len(rendered), len(skipped), wall)
    return root
