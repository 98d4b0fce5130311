"""Training speed of every architecture, beside the machine's matrix-multiply peak and the data pipeline.

What it measures (one process, one run, so the ratios are comparable):

1. the fp32 (and, where supported, bf16) matrix-multiply peak: best of a few square matmuls;
2. per architecture (full width, 8 sources for the multi-source ones), training samples per
   second (of the fastest of a few steps, the architectures taking turns) at batch 128 of 2 x 216 x 128 crops on a non-``self`` source, with the settings
   training uses (channels_last; bf16 autocast off and/or on); achieved GFLOP/s = 3 x forward
   FLOPs per sample x samples/s, and its ratio to the fp32 peak. On the CPU the same numbers are
   also estimated from the process's CPU time divided by the thread count, which a busy shared
   machine disturbs much less than wall-clock time;
3. the data pipeline: batches per second that :mod:`mtdtl.training`'s loader makes from a
   spectrogram store (planning + crops + scaling, in NHWC layout), single-threaded and with the
   loader's threads, next to the step rate;
4. a projection of the paper's full study (425 networks, 200 epochs, 41,841 training clips):
   the first 352 runs of the authors' ExperimentalDesign.csv, plus 48 SS-R runs (8 sources x 6)
   and 25 runs with all 8 sources (5 per multi-source architecture), at the measured rates, in
   device-hours. A ``self`` iteration costs two crops per pair; validation (4,649 clips per source
   per epoch) is counted at a third of a training step per crop.

Usage::

    python benchmarks/bench_train.py                    # CPU or the GPU torch sees
    python benchmarks/bench_train.py --steps 3 --bf16 both --threads 2 --json out.json

``THP_MEM_ALLOC_ENABLE=1`` must be set before torch starts; the script re-executes itself with it
when it is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import add_allocator_option, apply_allocator, load_now, machine, print_machine  # noqa: E402

from mtdtl.constants import ARCH_IDS, K, SOURCE_NAMES  # noqa: E402
from mtdtl.device import cpu_has_bf16, device_summary, resolve_device, set_num_threads  # noqa: E402
from mtdtl.models import build_model, forward_flops  # noqa: E402
from mtdtl.models.registry import DESIGN_ARC_CODES  # noqa: E402
from mtdtl.training import kl_loss  # noqa: E402

DESIGN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ExperimentalDesign.csv"
PAPER = {"n_train": 41_841, "n_valid": 4_649, "epochs": 200, "batch": 128}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, *, n: int, repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of an n x n x n matmul: (wall clock, CPU-time estimate; see step_rate)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best, best_cpu = math.inf, math.inf
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, (time.process_time() - c) / torch.get_num_threads())
    flop = 2 * n**3 / 1e9
    return flop / best, (flop / best_cpu if device.type == "cpu" else flop / best)


def step_rates(archs: list[str], device: torch.device, *, bf16: bool, batch: int, steps: int,
               warmup: int) -> list[dict]:
    """Training samples/s of each architecture on a non-self source (synthetic batch).

    The architectures take turns, one step each per round, and each keeps its fastest step:
    load from other processes then spreads over all of them instead of hitting one.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2, 216, 128, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    z = torch.softmax(torch.randn(batch, K, generator=g), 1).to(device)
    kw = {"fused": True} if device.type == "cuda" else {}
    nets = {}
    for arch in archs:
        sources = ["tag"] if arch == "ss_r" else list(SOURCE_NAMES)
        model = build_model(arch, sources, n_out=K, seed=0).to(device).to(memory_format=torch.channels_last)
        nets[arch] = (model.train(), torch.optim.Adam(model.parameters(), lr=2.5e-4, weight_decay=1e-6, **kw))
    wall = {a: [] for a in archs}
    cpu = {a: [] for a in archs}
    for i in range(warmup + steps):
        for arch, (model, opt) in nets.items():
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x, "tag")
            kl_loss(logits, z).backward()
            opt.step()
            sync(device)
            if i >= warmup:
                wall[arch].append(time.perf_counter() - t)
                cpu[arch].append(time.process_time() - c)
    out = []
    for arch, (model, _) in nets.items():
        flops = forward_flops(model, source="tag")
        dt = min(wall[arch])
        sps = batch / dt
        r = {"arch": arch, "bf16": bf16, "step_s": dt, "samples_per_s": sps,
             "gflops_per_s": 3 * flops * sps / 1e9, "mflop_forward": flops / 1e6}
        if device.type == "cpu":
            # CPU seconds / threads: what the step would take with the cores to itself. On a shared
            # machine wall time measures the neighbours too; this is load-independent, if slightly
            # pessimistic (threads that spin while waiting for a descheduled sibling count as busy).
            est = batch / (min(cpu[arch]) / torch.get_num_threads())
            r.update({"samples_per_s_cpu_est": est, "gflops_per_s_cpu_est": 3 * flops * est / 1e9})
        out.append(r)
    return out


def pipeline_rate(store_dir: Path | None, device: torch.device, *, batch: int, n_batches: int, threads: int) -> dict:
    """Batches/s the training loader makes (plan + crops + scaling, NHWC), 1 thread and ``threads``."""
    from mtdtl.store import SpectrogramStore, write_store
    from mtdtl.training.batches import _Loader
    from mtdtl.training.sampling import SourceData, make_rng, plan_epoch

    tmp = None
    if store_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_train_store_")
        store_dir = Path(tmp.name) / "store"
        rng = np.random.default_rng(0)
        # 96 clips of 30 s (2,584 frames): 127 MB in float16
        items = ((f"t{i:03d}", "train", (-50 + 10 * rng.standard_normal((2, 2584, 128))).astype(np.float32))
                 for i in range(96))
        write_store(items, store_dir)
    store = SpectrogramStore.open(store_dir)
    rows = store.indices("train")
    n_frames = np.asarray([store.n_frames(int(i)) for i in rows])
    d = SourceData("tag", rows, np.full((len(rows), K), 1.0 / K, np.float32), n_frames - 216)
    out = {"store": str(store_dir), "clips": int(len(rows))}
    for n_threads in sorted({0, threads}):
        loader = _Loader(store, device, channels_last=True, threads=n_threads, prefetch=2 * max(1, n_threads))
        t = time.perf_counter()
        plan = plan_epoch(make_rng(0, 1), {"tag": d}, batch, n_batches)
        for _ in loader.iterate(plan):
            pass
        sync(device)
        dt = time.perf_counter() - t
        key = "inline" if n_threads == 0 else f"threads_{n_threads}"
        out[key] = {"batches_per_s": n_batches / dt, "samples_per_s": n_batches * batch / dt}
    if tmp is not None:
        tmp.cleanup()
    return out


def study_runs() -> list[tuple[str, int, bool]]:
    """(arch, number of sources, has self) for the paper's 425 networks."""
    import pandas as pd

    runs = []
    design = pd.read_csv(DESIGN).head(352)
    for _, r in design.iterrows():
        runs.append((DESIGN_ARC_CODES[int(r["arc"])], int(r["n"]), bool(int(r["s1"]))))
    for s in SOURCE_NAMES:  # phase 1: 8 SS-R x 6 repetitions
        runs += [("ss_r", 1, s == "self")] * 6
    for arch in DESIGN_ARC_CODES.values():  # phase 2: all 8 sources, 5 per multi-source architecture
        runs += [(arch, 8, True)] * 5
    return runs


def project(rates: dict[str, float]) -> dict:
    """Device-hours of the study at ``rates`` (training samples/s per architecture)."""
    l_iters = math.ceil(PAPER["n_train"] / PAPER["batch"])
    total_s = 0.0
    by_arch: dict[str, float] = {}
    runs = study_runs()
    for arch, m, has_self in runs:
        crops_per_epoch = l_iters * PAPER["batch"] * (m + (1 if has_self else 0))  # self: 2 crops per pair
        valid_crops = PAPER["n_valid"] * (m + (1 if has_self else 0))
        t_epoch = crops_per_epoch / rates[arch] + valid_crops / (3 * rates[arch])
        t = PAPER["epochs"] * t_epoch
        total_s += t
        by_arch[arch] = by_arch.get(arch, 0.0) + t
    return {"runs": len(runs), "device_hours": total_s / 3600,
            "device_hours_by_arch": {a: v / 3600 for a, v in by_arch.items()}}


TARGET_FP32, TARGET_BF16 = 0.70, 0.55  # CPU training step against the same run's matmul peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: $MTDTL_NUM_THREADS or torch's)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per architecture (the fastest counts)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--bf16", choices=["off", "on", "both", "auto"], default="auto",
                   help="auto: off, plus on where the hardware has native bf16")
    p.add_argument("--archs", default=",".join(ARCH_IDS))
    p.add_argument("--store", type=Path, default=None, help="store for the pipeline rate (default: synthetic)")
    p.add_argument("--pipeline-batches", type=int, default=20)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_allocator_option(p, "training")
    args = p.parse_args(argv)

    allocator = apply_allocator(args.allocator)  # what mtdtl.training.train does before its first step
    threads = set_num_threads(args.threads)
    device = resolve_device(args.device)
    native_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    modes = {"off": [False], "on": [True], "both": [False, True], "auto": [False] + ([True] if native_bf16 else [])}[args.bf16]
    m_info = machine(device)
    print_machine(m_info)
    info = device_summary(device, bf16=native_bf16, channels_last=True)
    print(f"# device: {info}; CPU allocator {allocator}")

    n = 2048 if device.type == "cpu" else 8192

    def peaks():
        p32 = matmul_peak(device, torch.float32, n=n)
        p16 = matmul_peak(device, torch.bfloat16, n=n) if native_bf16 else (None, None)
        return p32, p16

    # measured before and after the steps; the better of the two counts (load only lowers it)
    (peak32, peak32_cpu), (peak16, peak16_cpu) = peaks()
    measured = [r for bf16 in modes for r in step_rates(args.archs.split(","), device, bf16=bf16, batch=args.batch,
                                                      steps=args.steps, warmup=args.warmup)]
    (p32, p32_cpu), (p16, p16_cpu) = peaks()
    peak32, peak32_cpu = max(peak32, p32), max(peak32_cpu, p32_cpu)
    if native_bf16:
        peak16, peak16_cpu = max(peak16, p16), max(peak16_cpu, p16_cpu)
    print(f"fp32 matmul peak: {peak32:8.1f} GFLOP/s" + (f"   bf16: {peak16:8.1f} GFLOP/s" if peak16 else ""))
    if device.type == "cpu":
        print(f"  CPU-time estimates: fp32 {peak32_cpu:8.1f} GFLOP/s"
              + (f"   bf16: {peak16_cpu:8.1f} GFLOP/s" if peak16_cpu else ""))

    results = []
    cpu = device.type == "cpu"
    print(f"\nratio to the fp32 matmul peak measured in this run first, then absolute (load now {load_now()})")
    print("(bf16 steps also against the bf16 peak: '% own peak' is the fp32 peak for fp32 steps, the bf16 peak for "
          "bf16 ones; the targets)")
    print(f"{'arch':10s} {'bf16':5s} {'% own peak':>10s} {'% fp32 peak':>11s} {'step s':>8s} {'samples/s':>10s} "
          f"{'GFLOP/s':>9s}" + (f" | {'CPU-time estimate: % peak':>25s} {'samples/s':>10s}" if cpu else ""))
    for r in measured:
        arch = r["arch"]
        r["pct_fp32_peak"] = 100 * r["gflops_per_s"] / peak32
        own = peak16 if r["bf16"] else peak32
        r["pct_own_peak"] = 100 * r["gflops_per_s"] / own if own else float("nan")
        line = (f"{arch:10s} {str(r['bf16']):5s} {r['pct_own_peak']:9.1f}% {r['pct_fp32_peak']:10.1f}% "
                f"{r['step_s']:8.3f} {r['samples_per_s']:10.1f} {r['gflops_per_s']:9.1f}")
        if cpu:
            r["pct_fp32_peak_cpu_est"] = 100 * r["gflops_per_s_cpu_est"] / peak32_cpu
            line += f" | {r['pct_fp32_peak_cpu_est']:24.1f}% {r['samples_per_s_cpu_est']:10.1f}"
        results.append(r)
        print(line)

    loader_threads = 4 if device.type == "cuda" else 1
    pipe = pipeline_rate(args.store, device, batch=args.batch, n_batches=args.pipeline_batches, threads=loader_threads)
    best_step = max(r["samples_per_s"] for r in results)
    print(f"\ndata pipeline ({pipe['clips']} clips of {'a synthetic' if args.store is None else 'the given'} store, "
          f"batch {args.batch}, NHWC):")
    for key in ("inline", f"threads_{loader_threads}"):
        if key in pipe:
            v = pipe[key]
            print(f"  {key:10s} {v['samples_per_s'] / best_step:5.1f}x the fastest training step: "
                  f"{v['batches_per_s']:8.2f} batches/s = {v['samples_per_s']:9.1f} samples/s")

    fast = {}  # fastest setting per architecture (on the CPU: the load-independent estimate)
    for r in results:
        fast[r["arch"]] = max(fast.get(r["arch"], 0.0), r.get("samples_per_s_cpu_est", r["samples_per_s"]))
    proj = None
    if DESIGN.is_file() and set(fast) >= set(ARCH_IDS):
        proj = project(fast)
        kind = "GPU" if device.type == "cuda" else "CPU"
        print(f"\nprojection of the paper's study on this {kind} ({info.get('gpu', info.get('cpu'))}), "
              f"{proj['runs']} networks x {PAPER['epochs']} epochs: {proj['device_hours']:.0f} {kind}-hours "
              f"({proj['device_hours'] / 24:.1f} days on one device)")
        for a, h in proj["device_hours_by_arch"].items():
            print(f"  {a:10s} {h:9.1f} h")
    if args.json:
        args.json.write_text(json.dumps({"device": info, "threads": threads, "peak_fp32_gflops": peak32,
                                         "peak_bf16_gflops": peak16, "peak_fp32_gflops_cpu_est": peak32_cpu,
                                         "peak_bf16_gflops_cpu_est": peak16_cpu, "steps": results, "pipeline": pipe,
                                         "projection": proj, "allocator": allocator}, indent=1))
    if device.type == "cpu":  # the targets are the CPU's (2 cores): a GPU step is judged differently
        parts = []
        for bf16, target in ((False, TARGET_FP32), (True, TARGET_BF16)):
            rs = [r for r in results if r["bf16"] == bf16]
            if rs:
                ok = all(r["pct_own_peak"] >= 100 * target for r in rs)
                vals = ", ".join(f"{r['arch']} {r['pct_own_peak']:.0f}%" for r in rs)
                parts.append(f"{'bf16' if bf16 else 'fp32'} step >= {100 * target:.0f}% of the {'bf16' if bf16 else 'fp32'} "
                             f"matmul peak {'MET' if ok else 'NOT MET'} ({vals})")
        print(f"\ntargets: {'; '.join(parts)}; {m_info['cpu']}, {threads} threads, allocator {allocator}, "
              f"load {load_now()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
