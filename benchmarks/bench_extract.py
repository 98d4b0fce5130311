"""Feature-extraction speed at study scale: cold (no target store yet) and warm (target store) as
ratios to the network-alone rate, measured in the same run (targets: warm >= 0.8, cold >= 0.5).

In a study every representation is evaluated on every target dataset. With a target store
(:mod:`mtdtl.store.targets`) the first representation with a front end computes each target
track's dB mel once (**cold**: decode + mel into the store, then the network reading it); every
later one only reads float16 slices and runs its network (**warm**). This script times, per
architecture (full width, untrained weights; multi-source ones with ``--sources`` sources), what
:func:`mtdtl.features.extract_dataset` does on ``--seconds`` of distinct 30 s stereo wav files:

- ``net``: the network alone on one batch of ``--batch-size`` ready slices (scaling included):
  the rate extraction cannot exceed, and the denominator of every ratio;
- ``warm``: extract_dataset with the target store already built (fresh feature cache);
- ``cold``: extract_dataset with no target store yet: decode + mel in a background thread
  overlapping the network, each spectrogram written into the store as it is computed, then
  consolidated (the default path of the first representation);
- ``build1st`` (``--build-first``): the other cold path, building the whole store first (worker
  processes on every core), then extracting from it;
- ``direct``: extract_dataset without a target store (decode + mel in a thread overlapping the
  network, as before the store existed: what every representation paid);
- ``front end``: mel + slicing alone (decode excluded), on the first two clips;
- ``net_fp32`` (with ``--precision bf16`` or ``auto`` resolving to bf16): the same network in
  fp32 on the same batch, so the bf16 speed-up is a ratio of the same run (target >= 1.8x). On a
  machine whose speed drifts between phases, a ratio of two separately timed jobs can mix a slow
  phase with a fast one, so the speed-up is also (and for the target) measured in **pairs**:
  ``--pairs`` times per repeat, the fp32 and the reduced-precision network run back to back on
  the same batch, and the median of the per-pair time ratios counts.

Every result is first a ratio to ``net`` (slices/s over slices/s), then absolute (x real time,
slices/s). The last line says whether the targets are met. Repeats are interleaved across the
architectures and the best repeat counts (median in brackets), since the machine may be shared;
the header gives the CPU, the load and the matmul rates measured now (``_machine.py``).

Run: ``python benchmarks/bench_extract.py [--seconds 1440] [--repeats 3] [--threads 2]
[--archs ss_r,ms_cr@6] [--sources 8] [--device cpu] [--precision fp32|bf16] [--pairs 5]
[--allocator retain|system] [--build-first]
[--baselines] [--choi PATH]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch starts (see PERF.md)

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from _machine import add_allocator_option, apply_allocator, load_now, machine, print_machine  # noqa: E402
from mtdtl.constants import CROP_FRAMES, SOURCE_NAMES, SR  # noqa: E402

CLIP_S = 30.0
TARGET_WARM, TARGET_COLD = 0.8, 0.5
TARGET_BF16 = 1.8  # bf16 network rate against fp32's, where bf16 is native


def write_clips(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """``n`` distinct stereo 30 s wav files: two synthesised clips (a chirp and harmonics over
    noise), the rest copies of them under their own names (each is its own track)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_S * SR)) / SR
    paths = []
    for i in range(min(n, 2)):
        f0 = rng.uniform(80, 400)
        chirp = np.sin(2 * np.pi * (f0 + rng.uniform(500, 3000) * t / CLIP_S) * t)
        harm = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k ** 1.5 for k in range(1, 10))
        left = 0.3 * chirp + 0.1 * harm + 0.01 * rng.standard_normal(t.size)
        right = 0.2 * harm + 0.02 * rng.standard_normal(t.size)
        p = folder / f"clip{i:04d}.wav"
        sf.write(p, np.stack([left, right]).T.astype(np.float32), SR, subtype="PCM_16")
        paths.append(p)
    for i in range(2, n):
        p = folder / f"clip{i:04d}.wav"
        shutil.copyfile(paths[i % 2], p)
        paths.append(p)
    return paths


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the store builder's workers)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1440.0, help="audio per measurement (distinct 30 s files)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--sources", type=int, default=8, help="sources of the multi-source architectures")
    ap.add_argument("--archs", default="ss_r,ms_cr@6")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="fp32", help="fp32 | bf16 | auto")
    ap.add_argument("--pairs", type=int, default=5,
                    help="back-to-back fp32 / reduced-precision network pairs per repeat (with --precision bf16)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    add_allocator_option(ap, "extraction")
    ap.add_argument("--store-workers", type=int, default=None, help="processes of a build-first store build (default: cores)")
    ap.add_argument("--build-first", action="store_true",
                    help="also time the other cold path: build the whole target store first, then extract")
    ap.add_argument("--baselines", action="store_true", help="also time MFCC and Choi (their own front ends)")
    ap.add_argument("--choi", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference" / "choi2017"
                                          / "keras2_model" / "model_best.hdf5"))
    args = ap.parse_args()

    from mtdtl.device import set_num_threads
    from mtdtl.features import ModelExtractor, extract_dataset, get_extractor

    logging.getLogger("mtdtl").setLevel(logging.WARNING)
    allocator = apply_allocator(args.allocator)  # what every ModelExtractor does when it is built
    set_num_threads(args.threads)
    info = machine(args.device)
    print_machine(info)
    n_clips = max(2, round(args.seconds / CLIP_S))
    audio_s = n_clips * CLIP_S
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    (tmp / "audio").mkdir()
    paths = write_clips(tmp / "audio", n_clips)
    tracks = pd.DataFrame({"track_id": [p.stem for p in paths], "path": [str(p) for p in paths]})
    slices_per_clip = (1 + int(CLIP_S * SR) // 256) // CROP_FRAMES
    n_slices = n_clips * slices_per_clip
    print(f"# {n_clips} distinct files x 30 s = {audio_s:.0f} s of audio ({n_slices} slices) per measurement; "
          f"batch {args.batch_size}; precision {args.precision}; best of {args.repeats} interleaved repeats; "
          f"CPU allocator {allocator}")

    runs = {"n": 0}

    def fresh(name: str) -> Path:
        runs["n"] += 1
        return tmp / f"{name}-{runs['n']}"

    def build_first(ex, root: Path, cache: Path):
        """The other cold path: build the whole store first (worker processes), then extract from it."""
        from mtdtl.store.targets import ensure_target_store

        ensure_target_store(tracks, dataset="bench", front_end=ex.front_end, root=root, workers=args.store_workers,
                            progress=False)
        return extract_dataset(ex, tracks, dataset="bench", cache_dir=cache, target_store=root, progress=False)

    exs = {}
    for arch in [a for a in args.archs.split(",") if a]:
        sources = ["self"] if arch == "ss_r" else list(SOURCE_NAMES[: args.sources])
        spec, scaler = f"rand:{arch}:{','.join(sources)}", (np.full(128, -40.0), np.full(128, 20.0))
        ex = get_extractor(spec, scaler=scaler, batch_size=args.batch_size, device=args.device,
                           precision=args.precision)
        assert isinstance(ex, ModelExtractor)
        ys = [ex._load(p) for p in paths[:2]]
        S = torch.cat([ex.slices(y) for y in ys])
        S = S.repeat(-(-args.batch_size // S.shape[0]), 1, 1, 1)[: args.batch_size]
        warm_root = fresh("warm-stores")

        def sync(ex=ex):
            if ex.device.type == "cuda":
                torch.cuda.synchronize(ex.device)

        jobs = {
            "net": lambda ex=ex, S=S: (ex.slice_features(S).cpu(), sync()),
            "warm": lambda ex=ex, r=warm_root: extract_dataset(ex, tracks, dataset="bench", cache_dir=fresh("c"),
                                                               target_store=r, progress=False),
            "cold": lambda ex=ex: extract_dataset(ex, tracks, dataset="bench", cache_dir=fresh("c"),
                                                  target_store=fresh("cold-stores"), progress=False,
                                                  store_workers=args.store_workers),
            "direct": lambda ex=ex: extract_dataset(ex, tracks, dataset="bench", cache_dir=fresh("c"),
                                                    target_store=False, progress=False),
            "build1st": lambda ex=ex: build_first(ex, fresh("bf-stores"), fresh("c")),
            "front": lambda ex=ex, ys=ys: ([ex.slices(y) for y in ys], sync()),
        }
        if not args.build_first:
            del jobs["build1st"]
        if ex.precision != "fp32":  # the same network in fp32, timed in the same repeats
            ex32 = get_extractor(spec, scaler=scaler, batch_size=args.batch_size, device=args.device, precision="fp32")
            jobs["net_fp32"] = lambda ex=ex32, S=S: (ex.slice_features(S).cpu(), sync())
        for f in jobs.values():
            f()  # warm-up: tracing of the optimised network; builds the warm store
        exs[arch] = (ex, len(sources), jobs, {k: [] for k in jobs}, {k: [] for k in jobs}, [])
    for _ in range(args.repeats):
        for _, _, jobs, times, cpus, pairs in exs.values():
            for k, f in jobs.items():
                t0, c0 = time.perf_counter(), _cpu_seconds()
                f()
                times[k].append(time.perf_counter() - t0)
                cpus[k].append(_cpu_seconds() - c0)
            if "net_fp32" in jobs:  # back-to-back pairs: both halves see the same phase of the machine
                for _ in range(args.pairs):
                    t0 = time.perf_counter()
                    jobs["net_fp32"]()
                    t1 = time.perf_counter()
                    jobs["net"]()
                    pairs.append((t1 - t0) / (time.perf_counter() - t1))
        print(".", end="", flush=True)
    print()
    slices = {"net": args.batch_size, "net_fp32": args.batch_size, "warm": n_slices, "cold": n_slices,
              "direct": n_slices, "build1st": n_slices, "front": 2 * slices_per_clip}

    rows, cpu_rows = [], []
    for arch, (ex, m, _, times, cpus, _) in exs.items():
        best = {k: slices[k] / min(v) for k, v in times.items()}  # slices/s
        med = {k: slices[k] / statistics.median(v) for k, v in times.items()}
        rows.append((arch, m, ex.dim, best, med))
        cpu_rows.append((arch, {k: slices[k] / statistics.median(v) for k, v in cpus.items()}))  # slices per CPU s

    print(f"\nratios to the network alone (slices/s / slices/s, best repeat; median in brackets); load now {load_now()}")
    cols = ["warm", "cold", "direct"] + (["build1st"] if args.build_first else [])
    print(f"{'arch':10s} {'m':>2s} {'dim':>5s} " + " ".join(f"{k + '/net':>16s}" for k in cols) + f" {'front end/net':>14s}")
    for arch, m, dim, best, med in rows:
        r = {k: (best[k] / best["net"], med[k] / med["net"]) for k in best}
        print(f"{arch:10s} {m:2d} {dim:5d} " + " ".join(
            f"{r[k][0]:7.2f} [{r[k][1]:5.2f}]" for k in cols) + f" {r['front'][0]:14.2f}")
    print("cold: the first representation, writing the target store as it extracts; direct: no target store; "
          "build1st: building the store first, then extracting")
    print("\nCPU-time ratios (slices per CPU second, this process and its store-building children, medians): "
          "what the ratio would be with the cores to ourselves; less disturbed by other jobs than wall clock")
    print(f"{'arch':10s} " + " ".join(f"{k + '/net':>12s}" for k in cols) + f" {'front end/net':>14s}")
    for arch, c in cpu_rows:
        print(f"{arch:10s} " + " ".join(f"{c[k] / c['net']:12.2f}" for k in cols) + f" {c['front'] / c['net']:14.2f}")
    print("\nabsolute (best repeat): slices/s and x real time (2.5 s of audio per slice; 30 s per file)")
    print(f"{'arch':10s} " + " ".join(f"{k:>16s}" for k in ["net"] + cols + ["front end"]))
    for arch, m, dim, best, med in rows:
        cells = []
        for k in ["net"] + cols + ["front"]:
            rt = best[k] * (audio_s / n_slices if k in cols else 2.5)
            cells.append(f"{best[k]:6.0f} {rt:7.0f}x")
        print(f"{arch:10s} " + " ".join(f"{c:>16s}" for c in cells))

    low = [(arch, best, med, exs[arch][5]) for arch, _, _, best, med in rows if "net_fp32" in best]
    if low:
        print(f"\nreduced precision ({args.precision}): the network alone against the same network in fp32, "
              f"same run (target >= {TARGET_BF16}x, on the median of the back-to-back pairs)")
        print(f"{'arch':10s} {'pairs: median':>14s} {'[min, max]':>16s} {'n':>3s}   {'separate jobs: best [median]':>28s}   "
              f"absolute (best repeats)")
        for arch, best, med, pairs in low:
            print(f"{arch:10s} {statistics.median(pairs):13.2f}x [{min(pairs):5.2f}, {max(pairs):5.2f}]x {len(pairs):3d}   "
                  f"{best['net'] / best['net_fp32']:19.2f}x [{med['net'] / med['net_fp32']:5.2f}x]   "
                  f"{best['net']:6.0f} against {best['net_fp32']:6.0f} slices/s")

    if args.baselines:
        base = []
        ex = get_extractor("mfcc")
        two = paths[:2]
        base.append(("mfcc", 2 * CLIP_S / timed(lambda: [v for _, v in ex.extract_many(two)], args.repeats)))
        if Path(args.choi).is_file():
            ex = get_extractor(f"choi:{args.choi}", device=args.device)
            base.append(("choi (first 29 s)", 2 * CLIP_S / timed(lambda: [v for _, v in ex.extract_many(two)],
                                                                  args.repeats)))
        print("\nbaselines (their own front ends; no target store): x real time, best repeat")
        for name, rt in base:
            print(f"  {name:20s} {rt:8.0f}x")

    shutil.rmtree(tmp, ignore_errors=True)
    warm = {a: b["warm"] / b["net"] for a, _, _, b, _ in rows}
    cold = {a: b["cold"] / b["net"] for a, _, _, b, _ in rows}
    ok_w, ok_c = all(v >= TARGET_WARM for v in warm.values()), all(v >= TARGET_COLD for v in cold.values())
    fmt = lambda d: ", ".join(f"{a} {v:.2f}" for a, v in d.items())  # noqa: E731
    lowp = {a: statistics.median(exs[a][5]) for a, _, _, b, _ in rows if "net_fp32" in b}
    extra = ""
    if lowp:
        ok_b = all(v >= TARGET_BF16 for v in lowp.values())
        extra = f"; {args.precision} net >= {TARGET_BF16}x fp32 {'MET' if ok_b else 'NOT MET'} ({fmt(lowp)})"
    print(f"\ntargets: warm >= {TARGET_WARM} {'MET' if ok_w else 'NOT MET'} ({fmt(warm)}); cold >= {TARGET_COLD} "
          f"{'MET' if ok_c else 'NOT MET'} ({fmt(cold)}){extra}; {info.get('gpu', info['cpu'])}, {info['cores']} cores, "
          f"{args.threads} threads, allocator {allocator}, load {load_now()}")


if __name__ == "__main__":
    main()
