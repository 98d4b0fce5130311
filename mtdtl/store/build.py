"""Building a spectrogram store, crash-safe and resumable: :func:`build_store`, :func:`write_store`.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from mtdtl.audio import FrontEnd, is_silent, load_audio, mel_db, pad_to_min_frames
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.io import atomic_path, atomic_save_npy, atomic_savez, atomic_write_text, package_versions
from mtdtl.store.reader import STORE_FORMAT, STORE_VERSION, _MANIFEST_COLUMNS, BandScaler, SpectrogramStore

log = get_logger(__name__)

def _key(track_id: str, path: str) -> str:
    return hashlib.sha1(f"{track_id}\0{path}".encode()).hexdigest()[:24]


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


# ---------------------------------------------------------------------------------------
# One clip (runs in worker processes)
# ---------------------------------------------------------------------------------------


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _compute_clip(track_id: str, path: str, abspath: str, chunk: str, fe_dict: dict, dtype: str) -> dict:
    """Decode and transform one clip into its chunk file; never raises for bad audio."""
    fe = FrontEnd.from_dict(fe_dict)
    p = Path(abspath)
    size, mtime = _stat(p)
    try:
        y = load_audio(p, sr=fe.sr, quality=fe.resample_quality)
        if is_silent(y):
            raise MtdtlError(f"audio is silent (peak below -80 dBFS): {p}")
        S = mel_db(y, front_end=fe)  # (2, T, n_mels)
    except MtdtlError as e:
        return {"track_id": track_id, "status": "skipped", "reason": str(e)}
    except Exception as e:  # anything a decoder throws that load_audio did not wrap
        return {"track_id": track_id, "status": "skipped", "reason": f"{type(e).__name__}: {e} ({p})"}
    _, meta = write_chunk(chunk, S, track_id=track_id, path=path, n_samples=int(y.shape[1]), front_end=fe,
                          dtype=dtype, source_stat=(size, mtime))
    return {"track_id": track_id, "status": "computed", **meta}


def chunk_arrays(S: np.ndarray, *, front_end: FrontEnd, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a clip's chunk holds: ``(T, s, ss)``.

    ``S`` : raw dB ``(2, n_frames, n_mels)`` as :func:`mtdtl.audio.mel_db` returns it (unpadded).
    ``T`` : ``(n_frames', 2, n_mels)`` in ``dtype``, padded to one crop (the short-clip policy);
    ``s``, ``ss`` : per-band sum and sum of squares (float64) over the real frames of ``T``.
    """
    n_audio = S.shape[1]
    P = pad_to_min_frames(np.asarray(S, dtype=np.float32), front_end=front_end)
    T = contiguous_as(P.transpose(1, 0, 2), np.dtype(dtype))
    real = contiguous_as(T[:n_audio], np.dtype(np.float64))
    return T, real.sum(axis=(0, 1)), np.square(real).sum(axis=(0, 1))


def contiguous_as(a: np.ndarray, dtype: Any) -> np.ndarray:
    """A C-contiguous copy of ``a`` (any strides, e.g. a transposed view) in ``dtype``, in one pass.

    Conversions go through torch: its half-float conversions use SIMD and are about 10x faster
    than numpy's ``astype``, with the same IEEE round-to-nearest-even (bit-identical results).
    """
    import torch

    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return np.ascontiguousarray(a)
    if not a.flags.writeable:  # torch does not take read-only arrays (e.g. a memory map)
        a = np.array(a)
    out = torch.empty(a.shape, dtype=getattr(torch, dtype.name))
    return out.copy_(torch.from_numpy(a)).numpy()


def write_chunk(chunk: str | os.PathLike, S: np.ndarray, *, track_id: str, path: str, n_samples: int,
                front_end: FrontEnd, dtype: str, source_stat: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """Write one clip's chunk file atomically (what a build's step 1 writes; see the package docstring).

    Used by the builder's workers and by feature extraction writing a target store through
    (:mod:`mtdtl.store.targets`). Returns the stored array ``(n_frames, 2, n_mels)`` in ``dtype``
    and the chunk's metadata.
    """
    T, s, ss = chunk_arrays(S, front_end=front_end, dtype=dtype)
    meta = chunk_meta(T, n_frames_audio=int(S.shape[1]), track_id=track_id, path=path, n_samples=n_samples,
                      front_end=front_end, source_stat=source_stat)
    save_chunk(chunk, T, s, ss, meta)
    return T, meta


def chunk_meta(T: np.ndarray, *, n_frames_audio: int, track_id: str, path: str, n_samples: int,
               front_end: FrontEnd, source_stat: tuple[int, int]) -> dict:
    """The metadata a chunk file holds beside its arrays."""
    return {"track_id": str(track_id), "path": str(path), "n_frames": int(T.shape[0]),
            "n_frames_audio": int(n_frames_audio), "duration_s": float(n_samples) / front_end.sr,
            "source_size": int(source_stat[0]), "source_mtime_ns": int(source_stat[1])}


def save_chunk(chunk: str | os.PathLike, T: np.ndarray, s: np.ndarray, ss: np.ndarray, meta: dict) -> None:
    """Write the arrays of :func:`chunk_arrays` and their :func:`chunk_meta` as one chunk file, atomically."""
    with atomic_path(Path(chunk)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, S=T, s=s, ss=ss, meta=np.str_(json.dumps(meta)))


def _read_chunk_meta(chunk: Path) -> dict | None:
    try:
        with np.load(chunk, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except Exception:
        return None


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------

def _validate_tracks(tracks: pd.DataFrame, base_dir: Path | None) -> pd.DataFrame:
    if not isinstance(tracks, pd.DataFrame):
        raise MtdtlError(f"build_store: tracks must be a DataFrame with columns track_id, path, split; got {type(tracks).__name__}")
    missing = [c for c in ("track_id", "path", "split") if c not in tracks.columns]
    if missing:
        raise MtdtlError(f"build_store: tracks lacks column(s) {missing} (needs track_id, path, split)")
    t = tracks[["track_id", "path", "split"]].copy()
    if t.isna().any().any():
        bad = t[t.isna().any(axis=1)].index[0]
        raise MtdtlError(f"build_store: tracks row {bad} has a missing track_id, path or split")
    t["track_id"] = t["track_id"].astype(str)
    t["path"] = t["path"].astype(str)
    t["split"] = t["split"].astype(str)
    dup = t["track_id"][t["track_id"].duplicated()]
    if len(dup):
        raise MtdtlError(f"build_store: duplicated track ids, e.g. {dup.iloc[:5].tolist()}; each clip needs a unique id")
    if len(t) == 0:
        raise MtdtlError("build_store: tracks is empty; nothing to build")

    def absolute(p: str) -> str:
        q = Path(p).expanduser()
        if not q.is_absolute():
            if base_dir is None:
                raise MtdtlError(f"build_store: path {p!r} is relative; pass base_dir= (paths must not depend on the working directory)")
            q = base_dir / q
        return str(q)

    t["abspath"] = [absolute(p) for p in t["path"]]
    return t.reset_index(drop=True)


def make_out_dir(out: Path, *, what: str = "out_dir") -> None:
    """Create the folder ``out``, or raise a clear :class:`MtdtlError` (nothing created) when it
    or one of its parents is a file, or it cannot be created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MtdtlError(f"{what} {out} is a file, not a folder: choose another {what} (or move the file away)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MtdtlError(f"cannot create {what} {out}: {parent} is a file; choose another {what}")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise MtdtlError(f"cannot create {what} {out}: a part of that path is a file; choose another {what}") from None
    except PermissionError as e:
        raise MtdtlError(f"cannot create {what} {out}: {e.strerror}; choose a folder you can write to") from None


def build_store(
    tracks: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    front_end: FrontEnd = FrontEnd(),
    base_dir: str | os.PathLike | None = None,
    train_split: str = "train",
    dtype: str = "float16",
    workers: int | None = None,
    progress: bool = True,
    on_clip: Callable[[str, str], None] | None = None,
) -> SpectrogramStore:
    """Compute (or finish, or extend) the spectrogram store of ``tracks`` in ``out_dir``.

    Parameters
    ----------
    tracks : pd.DataFrame
        Columns ``track_id`` (unique), ``path`` (absolute, or relative to ``base_dir``) and
        ``split`` (e.g. train / valid / test). Row order becomes manifest order.
    out_dir : path
        Store folder (created). If it holds a complete store with the same front end, clips
        already in it are reused; if it holds an unfinished build, that build is resumed.
    front_end : FrontEnd
    base_dir : path, optional
        Folder that relative paths in ``tracks`` are relative to.
    train_split : str
        Split the scaler is fit on (only that split's clips contribute).
    dtype : {"float16", "float32"}
        Storage type (see the module docstring for float16's error).
    workers : int, optional
        Worker processes for decoding + mel (one torch thread each). ``None``: all CPU cores,
        or in-process when fewer than 8 clips need computing; ``0`` or ``1``: in-process.
    progress : bool
        Show a tqdm bar.
    on_clip : callable(track_id, status), optional
        Called in this process after each clip is computed or skipped (``status`` is
        ``"computed"`` or ``"skipped"``); an exception it raises aborts the build, leaving
        every finished clip on disk for the next call.

    Returns
    -------
    SpectrogramStore

    Raises
    ------
    MtdtlError
        Malformed ``tracks``; every clip skipped; no clip in ``train_split``; ``out_dir``
        holds a store or unfinished build made with a different front end or dtype.
    """
    out = Path(out_dir).expanduser()
    base = Path(base_dir).expanduser() if base_dir is not None else None
    if dtype not in ("float16", "float32"):
        raise MtdtlError(f"build_store: dtype must be 'float16' or 'float32', got {dtype!r}")
    t = _validate_tracks(tracks, base)
    make_out_dir(out)
    work = out / "_work"
    chunks = work / "chunks"
    fe_dict = front_end.to_dict()

    # An existing complete store: reuse its clips (same front end and dtype only).
    old: SpectrogramStore | None = None
    if (out / "store.json").is_file():
        try:
            old = SpectrogramStore.open(out)
        except MtdtlError as e:  # a damaged store is rebuilt from scratch, not reused
            log.warning("existing store in %s cannot be opened (%s); rebuilding it", out, e)
            (out / "store.json").unlink(missing_ok=True)
    if old is not None:
        old.front_end.check_compatible(front_end, what=f"existing store {out}")
        if str(old.dtype) != dtype:
            raise MtdtlError(f"existing store {out} is {old.dtype}, requested {dtype}; use another out_dir or delete it")

    # An unfinished build: same front end and dtype, else refuse (never mix).
    work_meta_path = work / "work.json"
    if work_meta_path.is_file():
        wm = json.loads(work_meta_path.read_text(encoding="utf-8"))
        FrontEnd.from_dict(wm["front_end"]).check_compatible(front_end, what=f"unfinished build in {work}")
        if wm.get("dtype") != dtype:
            raise MtdtlError(f"unfinished build in {work} is {wm.get('dtype')}, requested {dtype}; delete {work} to start over")
        log.info("resuming the unfinished build in %s", work)
    chunks.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work_meta_path, json.dumps({"front_end": fe_dict, "dtype": dtype}, indent=1))
    _unwind_partial_consolidation(work)

    # Decide, clip by clip, where its spectrogram comes from.
    keys = [_key(a, b) for a, b in zip(t["track_id"], t["path"])]
    stats = [_stat(Path(p)) for p in t["abspath"]]
    source: list[tuple[str, Any]] = []  # ("old", i) | ("chunk", meta) | ("todo", None)
    old_rows = {}
    if old is not None:
        m = old.manifest
        old_rows = {(r.track_id, r.path): (i, int(r.source_size), int(r.source_mtime_ns)) for i, r in enumerate(m.itertuples())}
    for k, tid, path, st in zip(keys, t["track_id"], t["path"], stats):
        hit = old_rows.get((tid, path))
        if hit is not None and (hit[1], hit[2]) == st:
            source.append(("old", hit[0]))
            continue
        meta = _read_chunk_meta(chunks / f"{k}.npz")
        if meta is not None and (meta["source_size"], meta["source_mtime_ns"]) == st and meta["track_id"] == tid:
            source.append(("chunk", meta))
            continue
        source.append(("todo", None))
    todo = [j for j, s in enumerate(source) if s[0] == "todo"]
    n_reused = len(t) - len(todo)
    log.info("store %s: %d clips requested, %d already done, %d to compute", out, len(t), n_reused, len(todo))

    skipped: dict[int, str] = {}
    if todo:
        results = _run_todo(t, keys, todo, chunks, fe_dict, dtype, workers=workers, progress=progress, on_clip=on_clip)
        for j, res in results.items():
            if res["status"] == "computed":
                source[j] = ("chunk", res)
            else:
                skipped[j] = res["reason"]
                log.warning("skipped %s: %s", t.at[j, "track_id"], res["reason"])

    keep = [j for j in range(len(t)) if j not in skipped]
    if not keep:
        raise MtdtlError(f"build_store: every clip was skipped ({len(skipped)}), nothing to store in {out}; first reason: "
                         f"{next(iter(skipped.values()))}")
    return _consolidate(out, t, keys, source, keep, skipped, old, front_end, dtype, train_split, progress)


def write_store(
    items: Iterable[tuple[str, str, np.ndarray]],
    out_dir: str | os.PathLike,
    *,
    front_end: FrontEnd = FrontEnd(),
    train_split: str = "train",
    dtype: str = "float16",
    progress: bool = False,
) -> SpectrogramStore:
    """Write a store from spectrograms already in memory (synthetic data, tests, benchmarks).

    Parameters
    ----------
    items : iterable of (track_id, split, S)
        ``S : np.ndarray [shape=(2, n_frames, n_mels)]`` raw dB, as :func:`mtdtl.audio.mel_db`
        returns; clips shorter than one crop are padded like :func:`build_store` does.
    out_dir : path
        New store folder (must not hold a store already).

    Returns
    -------
    SpectrogramStore
    """
    out = Path(out_dir).expanduser()
    if (out / "store.json").exists():
        raise MtdtlError(f"write_store: {out} already holds a store; choose another folder")
    if dtype not in ("float16", "float32"):
        raise MtdtlError(f"write_store: dtype must be 'float16' or 'float32', got {dtype!r}")
    make_out_dir(out)
    work = out / "_work"
    chunks = work / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "work.json", json.dumps({"front_end": front_end.to_dict(), "dtype": dtype}, indent=1))
    rows, keys, source = [], [], []
    for tid, split, S in items:
        tid = str(tid)
        S = np.asarray(S, dtype=np.float32)
        if S.ndim != 3 or S.shape[0] != front_end.n_channels or S.shape[2] != front_end.n_mels:
            raise MtdtlError(f"write_store: spectrogram of {tid!r} has shape {S.shape}, expected "
                             f"({front_end.n_channels}, n_frames, {front_end.n_mels})")
        n_audio = S.shape[1]
        T = np.ascontiguousarray(pad_to_min_frames(S, front_end=front_end).transpose(1, 0, 2)).astype(dtype)
        real = T[:n_audio].astype(np.float64)
        k = _key(tid, "")
        meta = {"track_id": tid, "path": "", "n_frames": int(T.shape[0]), "n_frames_audio": int(n_audio),
                "duration_s": (n_audio - 1) * front_end.hop / front_end.sr, "source_size": -1, "source_mtime_ns": -1}
        c = chunks / f"{k}.npz"
        with atomic_path(c) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, S=T, s=real.sum(axis=(0, 1)), ss=np.square(real).sum(axis=(0, 1)), meta=np.str_(json.dumps(meta)))
        rows.append((tid, "", str(split)))
        keys.append(k)
        source.append(("chunk", meta))
    t = pd.DataFrame(rows, columns=["track_id", "path", "split"])
    if len(t) == 0:
        raise MtdtlError("write_store: no spectrograms given")
    if t["track_id"].duplicated().any():
        raise MtdtlError(f"write_store: duplicated track ids, e.g. {t['track_id'][t['track_id'].duplicated()].iloc[:5].tolist()}")
    return _consolidate(out, t, keys, source, list(range(len(t))), {}, None, front_end, dtype, train_split, progress)


def _run_todo(t, keys, todo, chunks, fe_dict, dtype, *, workers, progress, on_clip) -> dict[int, dict]:
    from tqdm.auto import tqdm

    if workers is None:
        workers = 1 if len(todo) < 8 else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(todo)))
    args = {j: (t.at[j, "track_id"], t.at[j, "path"], t.at[j, "abspath"], str(chunks / f"{keys[j]}.npz"), fe_dict, dtype)
            for j in todo}
    results: dict[int, dict] = {}
    bar = tqdm(total=len(todo), desc="spectrograms", unit="clip", disable=not progress)
    try:
        if workers == 1:
            for j in todo:
                results[j] = res = _compute_clip(*args[j])
                bar.update()
                if on_clip is not None:
                    on_clip(res["track_id"], res["status"])
        else:
            # fork (as torch's DataLoader does on Linux): works from scripts without a
            # ``__main__`` guard and from notebooks; spawn elsewhere.
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as ex:
                futs = {ex.submit(_compute_clip, *args[j]): j for j in todo}
                try:
                    for f in cf.as_completed(futs):
                        results[futs[f]] = res = f.result()
                        bar.update()
                        if on_clip is not None:
                            on_clip(res["track_id"], res["status"])
                except BaseException:
                    ex.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return results


def _unwind_partial_consolidation(work: Path) -> None:
    """An interrupted consolidation: put the clips it already moved back into chunk files."""
    plan_path, arr_path, done_path = work / "plan.json", work / "spectrograms.npy", work / "consolidated.npy"
    if not plan_path.is_file():
        for p in (arr_path, done_path):
            p.unlink(missing_ok=True)
        return
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    sums_path = work / "plan_sums.npz"
    if arr_path.is_file() and done_path.is_file() and sums_path.is_file():
        done = np.load(done_path)
        arr = np.load(arr_path, mmap_mode="r")
        with np.load(sums_path, allow_pickle=False) as z:
            psum, psumsq = z["sum"], z["sumsq"]
        for r, (item, d) in enumerate(zip(plan["items"], done)):
            if not d or item["kind"] != "chunk":
                continue
            c = work / "chunks" / f"{item['key']}.npz"
            if c.is_file():
                continue
            S = np.array(arr[item["offset"]:item["offset"] + item["n_frames"]])
            with atomic_path(c) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, S=S, s=psum[r], ss=psumsq[r], meta=np.str_(json.dumps(item["meta"])))
        del arr
    for p in (arr_path, done_path, sums_path, plan_path):
        p.unlink(missing_ok=True)


def _consolidate(out, t, keys, source, keep, skipped, old, fe, dtype, train_split, progress) -> SpectrogramStore:
    from tqdm.auto import tqdm

    work = out / "_work"
    rows, items = [], []
    sums = np.zeros((len(keep), fe.n_mels)), np.zeros((len(keep), fe.n_mels))
    nfa = np.zeros(len(keep), dtype=np.int64)
    offset = 0
    old_m = old.manifest if old is not None else None
    old_stats = np.load(old.root / "clip_stats.npz", allow_pickle=False) if old is not None else None
    for r, j in enumerate(keep):
        kind, ref = source[j]
        if kind == "old":
            orow = old_m.iloc[ref]
            meta = {k: orow[k] for k in ("n_frames", "n_frames_audio", "duration_s", "source_size", "source_mtime_ns")}
            sums[0][r], sums[1][r] = old_stats["sum"][ref], old_stats["sumsq"][ref]
        else:
            meta = ref
            with np.load(work / "chunks" / f"{keys[j]}.npz", allow_pickle=False) as z:
                sums[0][r], sums[1][r] = z["s"], z["ss"]
        n = int(meta["n_frames"])
        nfa[r] = int(meta["n_frames_audio"])
        rows.append({"track_id": t.at[j, "track_id"], "split": t.at[j, "split"], "path": t.at[j, "path"], "offset": offset,
                     "n_frames": n, "n_frames_audio": int(meta["n_frames_audio"]), "duration_s": float(meta["duration_s"]),
                     "source_size": int(meta["source_size"]), "source_mtime_ns": int(meta["source_mtime_ns"])})
        items.append({"kind": kind, "key": keys[j], "old": int(ref) if kind == "old" else None, "offset": offset,
                      "n_frames": n, "meta": None if kind == "old" else {k: v for k, v in meta.items() if k != "status"}})
        offset += n
    manifest = pd.DataFrame(rows, columns=_MANIFEST_COLUMNS)
    total = offset
    n_ch = fe.n_channels

    # Reuse the old array untouched when the clip list is the same.
    same_array = (
        old is not None and all(source[j][0] == "old" for j in keep)
        and [source[j][1] for j in keep] == list(range(len(old)))
    )
    arr_path = work / "spectrograms.npy"
    if not same_array:
        atomic_savez(work / "plan_sums.npz", sum=sums[0], sumsq=sums[1])
        atomic_write_text(work / "plan.json", json.dumps({"items": items, "total": total}))
        arr = np.lib.format.open_memmap(arr_path, mode="w+", dtype=dtype, shape=(total, n_ch, fe.n_mels))
        done = np.zeros(len(items), dtype=bool)
        old_arr = old._array() if old is not None else None
        copied: list[Path] = []
        for r, item in enumerate(tqdm(items, desc="consolidate", unit="clip", disable=not progress)):
            o, n = item["offset"], item["n_frames"]
            if item["kind"] == "old":
                oo = int(old._offsets[item["old"]])
                arr[o:o + n] = old_arr[oo:oo + n]
            else:
                c = work / "chunks" / f"{item['key']}.npz"
                with np.load(c, allow_pickle=False) as z:
                    arr[o:o + n] = z["S"]
                copied.append(c)
            if r % 256 == 255 or r == len(items) - 1:
                # Flush, record progress, then free the chunks' disk space: a crash after this
                # point loses nothing (the next build restores those chunks from the array).
                arr.flush()
                done[: r + 1] = True
                atomic_save_npy(work / "consolidated.npy", done)
                for c in copied:
                    c.unlink(missing_ok=True)
                copied.clear()
        arr.flush()
        del arr, old_arr

    # Scaler: train split, real frames, both channels.
    train = manifest["split"].to_numpy() == train_split
    if not train.any():
        raise MtdtlError(f"build_store: no stored clip is in split {train_split!r} (splits: "
                         f"{sorted(manifest['split'].unique())}); the scaler is fit on the training split only: "
                         "pass train_split=")
    n_per_clip = nfa * n_ch
    scaler = BandScaler.from_sums(sums[0][train].sum(0), sums[1][train].sum(0), int(n_per_clip[train].sum()),
                                  int(train.sum()), train_split)

    report = {
        "requested": int(len(t)), "stored": int(len(keep)), "skipped": [
            {"track_id": t.at[j, "track_id"], "path": t.at[j, "path"], "reason": reason} for j, reason in sorted(skipped.items())
        ],
        "padded_short_clips": int((manifest["n_frames_audio"] < manifest["n_frames"]).sum()),
    }
    meta = {
        "format": STORE_FORMAT, "version": STORE_VERSION, "front_end": fe.to_dict(), "dtype": dtype,
        "n_clips": int(len(keep)), "total_frames": int(total), "shape": [int(total), n_ch, fe.n_mels],
        "layout": "time-major (total_frames, channels, n_mels); crops returned as (B, channels, frames, n_mels)",
        "scaler_split": train_split, "split_counts": {k: int(v) for k, v in manifest["split"].value_counts().items()},
        "n_skipped": len(skipped), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": package_versions("numpy", "torch", "librosa", "soundfile", "libsndfile", "soxr"),
    }

    # Publish: remove the completeness marker, swap files in, write the marker last.
    (out / "store.json").unlink(missing_ok=True)
    if old_stats is not None:
        old_stats.close()
    if old is not None:
        old._arr = None
    if not same_array:
        os.replace(arr_path, out / "spectrograms.npy")
    atomic_savez(out / "clip_stats.npz", sum=sums[0], sumsq=sums[1], n=n_per_clip)
    scaler.save(out / "scaler.npz")
    with atomic_path(out / "manifest.csv") as tmp:
        manifest.to_csv(tmp, index=False)
    atomic_write_text(out / "build_report.json", json.dumps(report, indent=1))
    atomic_write_text(out / "store.json", json.dumps(meta, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    if skipped:
        log.warning("store %s: %d of %d clips skipped (see %s)", out, len(skipped), len(t), out / "build_report.json")
    log.info("store %s: %d clips, %d frames, %.1f MB", out, len(keep), total,
             (out / "spectrograms.npy").stat().st_size / 1e6)
    return SpectrogramStore.open(out)
