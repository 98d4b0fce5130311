"""Benchmark: build speed of the embedded demo corpus.

Builds the demo corpus from scratch (an empty folder, so every clip is parsed, rendered,
tempo-tracked and written) and prints the wall time, clips per second and the share of the
build spent outside clip rendering (tables, manifest). Then it runs the same command again
to show that a finished corpus is not rebuilt (the resume path: every clip is reused).

The issue's targets, on 2 cores: ``tiny`` under 30 s, ``small`` (the default) under 5 min.
On a machine shared with other jobs the wall times are upper bounds; the CPU seconds that the
workers spent (``time.process_time`` per clip) do not depend on the load, and divided by the
worker count they estimate the wall time on idle cores. ``--workers`` sets the processes
(default: all cores), so ``--workers 2`` is the 2-core comparison when more cores are
present.

Run: ``python benchmarks/bench_corpus.py [--size small] [--workers 2] [--seed 0] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small", help="tiny | small | medium | large | full")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None,
                    help="build into this (new) folder and keep it (default: a temporary one)")
    ap.add_argument("--progress", action="store_true", help="show the progress bar")
    args = ap.parse_args()

    from mtdtl.corpora import Corpus
    from mtdtl.corpora.demo import build_demo_corpus

    tmp = None
    if args.keep is not None:
        root = args.keep
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"{root} is not empty: a benchmark needs a cold build")
    else:
        tmp = tempfile.mkdtemp(prefix="bench_corpus_")
        root = Path(tmp) / f"demo-{args.size}-seed{args.seed}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        t0 = time.perf_counter()
        build_demo_corpus(root=root, size=args.size, seed=args.seed, workers=args.workers,
                          progress=args.progress)
        cold = time.perf_counter() - t0
        report = json.loads((root / "build_report.json").read_text())
        t0 = time.perf_counter()
        build_demo_corpus(root=root, size=args.size, seed=args.seed, workers=args.workers,
                          progress=False)
        warm = time.perf_counter() - t0
        c = Corpus.open(root)
        m = c.manifest
        n_render = report["n_rendered_this_run"]
        print(f"demo corpus, size {args.size}, seed {args.seed}, "
              f"workers {args.workers or cores} of {cores} cores")
        print(f"  clips kept          {len(m)} (learning {int((m.part == 'learning').sum())}, "
              f"target {int((m.part == 'target').sum())}); works tried {n_render}, "
              f"skipped {report['n_skipped']}")
        print(f"  cold build          {cold:8.1f} s   ({n_render / cold:.2f} clips/s)")
        print(f"  rerun (all reused)  {warm:8.1f} s")
        print(f"  audio               {m['duration'].sum() / 3600:.2f} h, "
              f"{sum(p.stat().st_size for p in (root / 'audio').glob('*.flac')) / 2**20:.0f} MiB")
        stages: dict[str, float] = {}
        per_col: dict[str, list[float]] = {}
        for f in (root / "clips").glob("*.json"):
            rec = json.loads(f.read_text())
            timing = dict(rec.get("timing", {}))
            cpu = timing.pop("cpu", None)
            for k, v in timing.items():
                stages[k] = stages.get(k, 0.0) + v
            if cpu is not None:
                stages["cpu"] = stages.get("cpu", 0.0) + cpu
                per_col.setdefault(rec["collection"], []).append(cpu)
        cpu_total = stages.pop("cpu", 0.0)
        total = sum(stages.values()) or 1.0
        n_workers = args.workers or cores
        print("  wall in workers     " + ", ".join(
            f"{k} {v:.0f} s ({v / total:.0%})" for k, v in stages.items()))
        print(f"  CPU in workers      {cpu_total:.0f} core-s "
              f"({cpu_total / max(n_render, 1):.2f} per clip); on {n_workers} idle cores the "
              f"clip work alone takes about {cpu_total / n_workers:.0f} s")
        print("  CPU s per clip      " + ", ".join(
            f"{c} {sum(v) / len(v):.2f}" for c, v in sorted(per_col.items())))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
