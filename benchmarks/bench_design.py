"""Benchmark: Algorithm 2 over the paper's 1,230 candidates for its 352 phase-3 steps.

Timed (medians of ``--repeats`` runs, in one process):

- ``generate``: :func:`mtdtl.design.generate_design` with ``budget=352`` (phases 1-2 are a few
  list entries); per step, both criteria are evaluated for every remaining candidate from
  running counts;
- ``replay``: :func:`mtdtl.design.replay` of the authors' 600 released runs (the same two
  criteria at each step, for a run fixed in advance);
- the reference op, measured in the same run: ``np.corrcoef`` of one 352 x 13 indicator matrix
  (architecture levels + sources), i.e. the aliasing of *one* candidate computed the direct way.
  A step that evaluated its |O| candidates (a median of ~170, up to 1,230) like that would cost
  |O| reference ops; the ratio below says what the running sums cost instead.

The result is stated first as a ratio (per-step time / reference op), then in seconds: absolute
times depend on the machine (PERF.md), ratios measured in one run much less.

Run: ``python benchmarks/bench_design.py [--repeats 5] [--budget 352]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def reference_op_seconds(rows: int, repeats: int = 2000) -> float:
    """Median seconds of ``np.corrcoef`` on a ``rows x 13`` 0/1 matrix (one candidate, directly)."""
    rng = np.random.default_rng(0)
    Z = (rng.random((rows, 13)) < 0.5).astype(np.float64)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            np.corrcoef(Z, rowvar=False)
        times.append((time.perf_counter() - t) / repeats)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=int, default=352)
    args = p.parse_args(argv)

    from mtdtl.design import candidate_runs, generate_design, released_design, replay

    print(f"machine: {cpu_model()}; {os.cpu_count()} cores; numpy {np.__version__}; "
          f"python {platform.python_version()}")
    n_cand = len(candidate_runs())
    generate_design(budget=5, seed=0)  # warm-up (imports, first allocations)

    gen = []
    for r in range(args.repeats):
        t = time.perf_counter()
        d = generate_design(budget=args.budget, seed=r)
        gen.append(time.perf_counter() - t)
    released = released_design(budget=None, fixed_phases=False)
    rep = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        tr = replay(released)
        rep.append(time.perf_counter() - t)
    ref = reference_op_seconds(args.budget)

    g, rp = statistics.median(gen), statistics.median(rep)
    per_step = g / args.budget
    med_o = int(np.median(d.trace["n_min_unbalance"]))
    print(f"Algorithm 2, {n_cand} candidates x {args.budget} steps:")
    print(f"  ratio: one step (all candidates, both criteria) = {per_step / ref:.1f} x np.corrcoef of one "
          f"{args.budget} x 13 design (one candidate the direct way); the direct way would take "
          f"|O| = {med_o} (median) of those a step, {med_o * ref / per_step:.1f}x this step")
    print(f"  absolute: {g:.3f} s for {args.budget} steps ({1e3 * per_step:.2f} ms a step; "
          f"reference op {1e6 * ref:.1f} us); runs {min(gen):.3f}-{max(gen):.3f} s over {args.repeats} seeds")
    print(f"replay of the released design ({len(tr)} steps): {rp / len(tr) / ref:.1f} x the reference op a step; "
          f"{rp:.3f} s ({1e3 * rp / len(tr):.2f} ms a step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
