"""Disk size and random-crop read rate of the spectrogram store, extrapolated to the paper's scale.

Writes a scaled-down store of synthetic 30 s stereo spectrograms (2,584 frames x 2 x 128,
dB values like real music) with :func:`mtdtl.store.write_store`, then reports

- bytes per clip on disk (spectrogram array, manifest, clip statistics) and the total for
  the paper's 46,490 clips, beside the formula in :func:`mtdtl.store.store_bytes`;
- the write rate;
- the float16 rounding error against the float32 source;
- random 2.5 s crops per second through ``SpectrogramStore.crops`` (batches of 128, random
  clips and starts, standardised float32 output), with the file in the page cache ("warm")
  and after asking the kernel to drop it (``posix_fadvise(DONTNEED)``, "cold": each crop is
  one ~110 kB read from disk, the situation of a 61.5 GB store on a machine with less RAM).

Training consumes about 140-560 samples/s on a 2-core CPU (``../shared/PERF.md``); a GPU
can consume a few thousand.

Run: ``python benchmarks/bench_store.py [--clips 300] [--out DIR] [--keep]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_spectrogram(rng: np.random.Generator, n_frames: int = 2584, n_mels: int = 128) -> np.ndarray:
    """(2, n_frames, n_mels) dB values: a falling spectral tilt, slow loudness changes, noise."""
    tilt = np.linspace(-20.0, -70.0, n_mels)
    loud = 10.0 * np.sin(np.linspace(0, rng.uniform(5, 40), n_frames))[:, None]
    x = tilt + loud + rng.normal(0.0, 6.0, (2, n_frames, n_mels))
    return np.clip(x, x.max() - 80.0, None).astype(np.float32)


def crop_rate(store, rng, *, batch: int, batches: int) -> float:
    n = len(store)
    t0 = time.perf_counter()
    for _ in range(batches):
        idx = rng.integers(0, n, batch)
        store.crops(idx, store.random_starts(idx, rng))
    return batch * batches / (time.perf_counter() - t0)


def drop_cache(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=300, help="synthetic 30 s clips to write (1.32 MB each)")
    ap.add_argument("--out", type=Path, default=None, help="store folder (default: a temporary folder)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = ap.parse_args()

    from mtdtl.audio import FrontEnd
    from mtdtl.store import SpectrogramStore, store_bytes, write_store

    fe = FrontEnd()
    n_frames = fe.n_frames(30 * fe.sr)
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="bench_store_")
        out = Path(tmp) / "store"
    rng = np.random.default_rng(0)
    sources = {}

    def items():
        for i in range(args.clips):
            S = synthetic_spectrogram(rng, n_frames)
            if i < 4:
                sources[i] = S
            yield f"clip{i:06d}", "train" if i % 10 < 8 else ("valid" if i % 10 == 8 else "test"), S

    try:
        t0 = time.perf_counter()
        store = write_store(items(), out, front_end=fe)
        t_write = time.perf_counter() - t0
        arr_bytes = (out / "spectrograms.npy").stat().st_size
        other = sum((out / f).stat().st_size for f in ("manifest.csv", "clip_stats.npz", "scaler.npz", "store.json",
                                                       "build_report.json"))
        per_clip = arr_bytes / args.clips
        per_clip_all = (arr_bytes + other) / args.clips
        paper = 46_490
        print(f"synthetic store: {args.clips} clips x {n_frames} frames x 2 x {fe.n_mels}, float16, in {out}")
        print(f"written in {t_write:.1f} s ({args.clips / t_write:.0f} clips/s, {arr_bytes / t_write / 1e6:.0f} MB/s, "
              f"synthesis included)")
        print(f"bytes per clip: spectrograms {per_clip:,.0f} (formula {store_bytes(1):,}), all files {per_clip_all:,.0f}")
        print(f"paper scale, {paper:,} clips: {per_clip_all * paper / 1e9:.1f} GB ({per_clip_all * paper / 2**30:.1f} GiB); "
              f"formula {store_bytes() / 1e9:.1f} GB float16, {store_bytes(dtype='float32') / 1e9:.1f} GB float32")

        err = max(float(np.max(np.abs(store.frames(i) - S.transpose(1, 0, 2)))) for i, S in sources.items())
        rel = max(float(np.max(np.abs(store.frames(i) - S.transpose(1, 0, 2)) / np.maximum(np.abs(S.transpose(1, 0, 2)), 1e-3)))
                  for i, S in sources.items())
        print(f"float16 rounding: max |error| {err:.4f} dB, max relative {rel:.2e} (bound 2**-11 = {2**-11:.2e})")

        store = SpectrogramStore.open(out)
        crop_rate(store, rng, batch=args.batch, batches=3)  # warm the page cache and the code
        warm = crop_rate(store, rng, batch=args.batch, batches=args.batches)
        print(f"random crops, warm page cache: {warm:,.0f} crops/s (batch {args.batch}, standardised float32 out)")
        del store  # unmap: the kernel keeps mapped pages resident
        gc.collect()
        if drop_cache(out / "spectrograms.npy"):
            store = SpectrogramStore.open(out)
            cold = crop_rate(store, rng, batch=args.batch, batches=max(2, args.batches // 4))
            print(f"random crops, cold (file dropped from the page cache first): {cold:,.0f} crops/s "
                  "(disk reads; a virtual disk may still be cached by its host)")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
