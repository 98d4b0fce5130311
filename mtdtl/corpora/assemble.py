"""Assembling a corpus folder from audio files you have: the machinery of the MSD and folder builders.

:func:`scan_audio` lists audio files, :func:`ingest_audio` turns each into a clip of the corpus
(probed in place, or converted to ``audio/<track_id>.flac``) with a resume record
``clips/<track_id>.json``, and :func:`write_corpus` writes the tables, the report and
``corpus.json`` (last). :func:`inputs_fingerprint` lets a builder see that nothing changed
since the last build, so that a rerun does nothing.

Audio modes
-----------
``"reference"`` (default)
    The manifest's ``path`` is the absolute path of your file; nothing is copied. The corpus
    breaks if the files move.
``"convert"``
    Every file is decoded (:func:`mtdtl.audio.load_audio`: stereo, 22,050 Hz) and written as
    16-bit FLAC to ``audio/<track_id>.flac``, as in the demo corpus: the corpus folder stands
    alone.

Resume
------
A clip is reused when its source file has the recorded size and modification time (or, when
only the time changed, the recorded sha256) and, in ``"convert"`` mode, when the FLAC file
still has the recorded size and sha256. Anything else is done again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from mtdtl.constants import N_CHANNELS, SR
from mtdtl.corpora.base import (MANIFEST_REQUIRED, read_table, to_json, write_csv,
                                write_text_if_changed)
from mtdtl.errors import MtdtlError
from mtdtl.io import (atomic_write_bytes, atomic_write_text, file_sha256, package_versions)
from mtdtl.log import get_logger

__all__ = ["AUDIO_EXTENSIONS", "AUDIO_MODES", "scan_audio", "ingest_audio", "inputs_fingerprint",
           "up_to_date", "write_corpus", "check_common_args", "parse_split"]

log = get_logger(__name__)

#: Audio file name endings the builders pick up (case-insensitive).
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".aif", ".aiff", ".au", ".snd")
AUDIO_MODES = ("reference", "convert")
#: Bump when ingestion changes, so that old records are redone on resume.
INGEST_VERSION = 1


# ----------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------

def check_common_args(*, audio_dir, out, seed, audio, workers, progress) -> Path:
    """Check the arguments both builders share; returns ``audio_dir`` resolved."""
    import numbers

    if not isinstance(audio_dir, (str, os.PathLike)):
        raise MtdtlError(f"audio_dir must be a folder path, got {type(audio_dir).__name__}")
    audio_dir = Path(audio_dir).expanduser().resolve()
    if not audio_dir.is_dir():
        raise MtdtlError(f"audio folder not found: {audio_dir}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise MtdtlError(f"out must be a folder path, got {type(out).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise MtdtlError(f"seed must be a whole number >= 0, got {seed!r}")
    if audio not in AUDIO_MODES:
        raise MtdtlError(f"audio must be one of {', '.join(map(repr, AUDIO_MODES))}, got {audio!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise MtdtlError(f"workers must be a whole number >= 1 (or None for all cores), got {workers!r}")
    if not isinstance(progress, bool):
        raise MtdtlError(f"progress must be True or False, got {progress!r}")
    return audio_dir


def check_file(path, what: str) -> Path:
    """``path`` as an existing file, or an error naming ``what`` it was given for."""
    if not isinstance(path, (str, os.PathLike)):
        raise MtdtlError(f"{what} must be a file path, got {type(path).__name__}")
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise MtdtlError(f"{what}: file not found: {p}")
    return p


def parse_split(split) -> tuple[float, pd.Series | None, Path | None]:
    """``split`` argument → (valid fraction, fixed split per track or None, its file or None).

    ``None`` (10 % valid), a fraction in [0, 1), a CSV/TSV file with columns ``track_id,
    split`` or a mapping ``{track_id: split}``; fixed splits must be ``train`` or ``valid``.
    """
    if split is None:
        return 0.1, None, None
    if isinstance(split, bool):
        raise MtdtlError(f"split must be a fraction, a table or a mapping, got {split!r}")
    if isinstance(split, (int, float)):
        if not 0.0 <= float(split) < 1.0:
            raise MtdtlError(f"split: the valid fraction must be in [0, 1), got {split!r}")
        return float(split), None, None
    if isinstance(split, (str, os.PathLike)):
        path = check_file(split, "split")
        df = read_table(path, required=("track_id", "split"), ids=("track_id",))
        bad = ~df["split"].str.strip().isin(["train", "valid"])
        if bad.any():
            line = df.attrs["lines"][bad.to_numpy()][0]
            raise MtdtlError(f"{path}, line {line}: split {df.loc[bad, 'split'].iloc[0]!r}; the learning "
                             "part's splits are 'train' and 'valid'")
        dup = df["track_id"].duplicated()
        if dup.any():
            raise MtdtlError(f"{path}, line {df.attrs['lines'][dup.to_numpy()][0]}: track "
                             f"{df.loc[dup, 'track_id'].iloc[0]!r} is listed twice")
        return 0.0, pd.Series(df["split"].str.strip().to_numpy(), index=df["track_id"].to_numpy()), path
    if isinstance(split, Mapping):
        s = pd.Series({str(k): str(v).strip() for k, v in split.items()}, dtype=object)
        bad = s[~s.isin(["train", "valid"])]
        if len(bad):
            raise MtdtlError(f"split: track {bad.index[0]!r} has split {bad.iloc[0]!r}; use 'train' or 'valid'")
        return 0.0, s, None
    raise MtdtlError(f"split must be None, a fraction, a table path or a mapping, got {type(split).__name__}")


# ----------------------------------------------------------------------------------------
# finding and fingerprinting inputs
# ----------------------------------------------------------------------------------------

def scan_audio(audio_dir: Path, *, exclude: Path | None = None,
               extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under ``audio_dir`` (recursively, sorted; hidden files and folders and the
    ``exclude`` folder skipped)."""
    exts = {e.lower() for e in extensions}
    exclude = exclude.resolve() if exclude is not None else None
    out = []
    for dirpath, dirnames, filenames in os.walk(audio_dir):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")
                             and (exclude is None or (d / n).resolve() != exclude))
        out.extend(d / f for f in filenames
                   if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts)
    return sorted(out)


def _stat(p: Path) -> list:
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def inputs_fingerprint(*, params: Mapping, files: Mapping[str, Path | Iterable[Path] | None],
                       audio_files: Iterable[Path]) -> str:
    """sha1 of the build parameters and the name, size and time of every input file."""
    h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    for name in sorted(files):
        v = files[name]
        paths = [] if v is None else [v] if isinstance(v, Path) else list(v)
        h.update(json.dumps([name, [_stat(p) for p in paths]]).encode())
    for p in audio_files:
        h.update(json.dumps(_stat(p)).encode())
    return h.hexdigest()


def up_to_date(root: Path, fingerprint: str) -> bool:
    """Whether ``root`` holds a finished build with this inputs fingerprint and all its audio.

    Audio the corpus owns (``audio/<track_id>.flac``, a relative ``path``) must also still
    have the sha256 of ``clips.csv``; a file that changed makes the build run again (and
    convert that file again).
    """
    info = root / "corpus.json"
    if not info.is_file() or not (root / "manifest.csv").is_file() or not (root / "clips.csv").is_file():
        return False
    try:
        if json.loads(info.read_text(encoding="utf-8")).get("inputs_sha1") != fingerprint:
            return False
        m = pd.read_csv(root / "manifest.csv", usecols=["track_id", "path"], dtype=str,
                        keep_default_na=False)
        sha = pd.read_csv(root / "clips.csv", usecols=["track_id", "audio_sha256"], dtype=str,
                          keep_default_na=False).set_index("track_id")["audio_sha256"]
    except (ValueError, OSError):
        return False
    for tid, p in zip(m["track_id"], m["path"]):
        f = root / p
        if not f.is_file():
            return False
        if not Path(p).is_absolute() and file_sha256(f) != sha.get(tid):
            log.info("%s differs from its build record; rebuilding", f)
            return False
    return True


# ----------------------------------------------------------------------------------------
# one clip
# ----------------------------------------------------------------------------------------

def _params(mode: str) -> str:
    key = [INGEST_VERSION, mode] + ([SR, N_CHANNELS, "FLAC", "PCM_16"] if mode == "convert" else [])
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]


def _probe(path: Path) -> tuple[float, int, int]:
    """(duration in s, sample rate, channels) from the file header."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate, int(info.samplerate), int(info.channels)
    except Exception as e:  # noqa: BLE001 - libsndfile cannot read it: try audioread
        first = e
    else:
        first = ValueError("no samples")
    try:
        import audioread

        with audioread.audio_open(str(path)) as f:
            if f.samplerate > 0 and f.duration > 0:
                return float(f.duration), int(f.samplerate), int(f.channels)
        raise ValueError("no samples")
    except Exception as e:  # noqa: BLE001
        raise MtdtlError(f"cannot read the audio header ({type(first).__name__}: {first}; "
                         f"audioread: {type(e).__name__}: {e})") from None


def _ingest_one(args) -> dict:
    tid, src, root, mode = args
    src = Path(src)
    base = {"track_id": tid, "source": str(src), "mode": mode, "params": _params(mode)}
    try:
        st = src.stat()
        data = src.read_bytes()
        base.update(source_bytes=st.st_size, source_mtime_ns=st.st_mtime_ns,
                    source_sha256=hashlib.sha256(data).hexdigest())
        if not data:
            raise MtdtlError("the file is empty (0 bytes)")
        if mode == "reference":
            duration, sr, ch = _probe(src)
            rec = {**base, "status": "ok", "path": str(src), "duration": round(duration, 4),
                   "sample_rate": sr, "channels": ch, "audio_sha256": base["source_sha256"]}
        else:
            import soundfile as sf

            from mtdtl.audio import load_audio

            y = np.clip(load_audio(src, sr=SR), -1.0, 1.0)
            bio = io.BytesIO()
            sf.write(bio, y.T, SR, format="FLAC", subtype="PCM_16")
            flac = bio.getvalue()
            atomic_write_bytes(root / "audio" / f"{tid}.flac", flac)
            rec = {**base, "status": "ok", "path": f"audio/{tid}.flac",
                   "duration": round(y.shape[1] / SR, 4), "sample_rate": SR, "channels": N_CHANNELS,
                   "audio_bytes": len(flac), "audio_sha256": hashlib.sha256(flac).hexdigest()}
    except Exception as e:  # noqa: BLE001 - a bad file is skipped and reported, never fatal
        msg = str(e) if isinstance(e, MtdtlError) else f"{type(e).__name__}: {e}"
        rec = {**base, "status": "failed", "stage": "read" if mode == "reference" else "convert",
               "error": msg[:500]}
    atomic_write_text(root / "clips" / f"{tid}.json", to_json(rec))
    return rec


def _reusable(root: Path, tid: str, src: Path, mode: str) -> dict | None:
    """The record of an earlier build of this clip, if it still holds."""
    p = root / "clips" / f"{tid}.json"
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("params") != _params(mode) or rec.get("source") != str(src):
        return None
    try:
        st = src.stat()
    except OSError:
        return None
    if st.st_size != rec.get("source_bytes"):
        return None
    if st.st_mtime_ns != rec.get("source_mtime_ns"):
        if file_sha256(src) != rec.get("source_sha256"):
            return None
        rec["source_mtime_ns"] = st.st_mtime_ns  # touched, not changed
        atomic_write_text(p, to_json(rec))
    if rec.get("status") == "ok" and mode == "convert":
        a = root / str(rec.get("path", ""))
        if (not a.is_file() or a.stat().st_size != rec.get("audio_bytes")
                or file_sha256(a) != rec.get("audio_sha256")):
            log.info("%s: differs from its build record; converting it again", a)
            return None
    if rec.get("status") not in ("ok", "failed"):
        return None
    return rec


def ingest_audio(files: Mapping[str, Path], root: Path, *, mode: str, workers: int | None,
                 progress: bool, desc: str) -> tuple[list[dict], int]:
    """Make every file a clip of the corpus at ``root`` (see the module docstring).

    Parameters
    ----------
    files : {track_id: source file}
    root : the corpus folder
    mode : ``"reference"`` or ``"convert"``
    workers : threads (None: all cores)
    progress : tqdm bar
    desc : label of the bar

    Returns
    -------
    records : list of dict
        One per track, in ``files`` order, ``status`` ``"ok"`` or ``"failed"`` (with ``stage``
        and ``error``).
    n_done : int
        Clips ingested in this run (the others were reused).
    """
    from tqdm.auto import tqdm

    (root / "clips").mkdir(parents=True, exist_ok=True)
    if mode == "convert":
        (root / "audio").mkdir(parents=True, exist_ok=True)
    for leftover in [*root.glob("audio/.*.tmp*"), *root.glob("clips/.*.tmp*")]:
        leftover.unlink(missing_ok=True)  # half-written files of an interrupted build
    done: dict[str, dict] = {}
    todo = []
    for tid, src in files.items():
        rec = _reusable(root, tid, Path(src), mode)
        if rec is None:
            todo.append((tid, str(src), root, mode))
        else:
            done[tid] = rec
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with tqdm(total=len(files), initial=len(done), disable=not progress, desc=desc, unit="clip") as bar:
        if workers <= 1 or len(todo) <= 1:
            results = map(_ingest_one, todo)
            for rec in results:
                done[rec["track_id"]] = rec
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                for rec in ex.map(_ingest_one, todo):
                    done[rec["track_id"]] = rec
                    bar.update(1)
    for rec in (r for r in done.values() if r["status"] != "ok"):
        log.info("skipped %s (%s): %s", rec["source"], rec.get("stage"), rec.get("error"))
    return [done[t] for t in files], len(todo)


# ----------------------------------------------------------------------------------------
# writing the corpus
# ----------------------------------------------------------------------------------------

def write_corpus(root: Path, *, manifest: pd.DataFrame, clips: pd.DataFrame,
                 labels: Mapping[str, pd.DataFrame], tasks: Mapping[str, dict],
                 targets: Mapping[str, pd.DataFrame], report: dict, info: dict) -> None:
    """Write the tables (only those that changed), drop tables of sources and tasks the corpus
    no longer has, then ``build_report.json`` and ``corpus.json`` (last: it marks a finished
    build)."""
    missing = [c for c in MANIFEST_REQUIRED if c not in manifest.columns]
    if missing:  # a builder bug, not a user error
        raise MtdtlError(f"internal error: manifest lacks columns {missing}")
    for sub, keep in (("labels", set(labels)), ("targets", set(targets))):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for p in (root / sub).glob("*.csv"):
            if p.stem not in keep:
                p.unlink()
    for name, df in labels.items():
        write_csv(root / "labels" / f"{name}.csv", df)
    for name, df in targets.items():
        write_csv(root / "targets" / f"{name}.csv", df)
    write_text_if_changed(root / "targets" / "tasks.json", to_json(dict(tasks)))
    write_csv(root / "manifest.csv", manifest)
    write_csv(root / "clips.csv", clips)
    write_text_if_changed(root / "build_report.json", to_json(report))
    info = {**info, "versions": package_versions("numpy", "soundfile", "libsndfile", "soxr")}
    write_text_if_changed(root / "corpus.json", to_json(info))


def skipped_rows(records: Iterable[dict]) -> list[dict]:
    """The failed records as report rows."""
    return [{k: r.get(k) for k in ("track_id", "source", "stage", "error")}
            for r in records if r.get("status") != "ok"]
