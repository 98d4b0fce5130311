"""Benchmark: the hierarchical models of Section 5.2 and their parametric bootstrap.

Problem: a simulated study shaped like the paper's, 425 representations x 7 targets = 2,975
rows (mtdtl.analysis.simulate_results, seed 0), standardised within target.

Timed, in one run on this machine:

- the machine: CPU model, cores, and a float64 numpy matmul rate (GFLOP/s) measured now, so that
  the fits can be read as "GFLOP-equivalents" (seconds x measured rate) across machines;
- the first model (Eqs. 10-12: 6 intercepts, 5 slopes, 11 variance components) and the
  second (Eqs. 13-16), ``method=["powell", "lbfgs"]``, median of ``--repeats``;
- Table 6's variance components: the OLS moment (ANOVA) estimator vs MixedLM REML;
- a parametric bootstrap of both models with ``--B`` replicates, serially and with
  ``--workers`` processes (and a dask LocalCluster with ``--dask``); B = 1,000 is extrapolated
  from the measured time per refit and clearly labelled as such.

Ratios are printed first, absolute times second (absolute times drift with the machine's load).

Run: ``python benchmarks/bench_analysis.py [--B 20] [--workers N] [--repeats 1] [--dask]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n))
    b = np.random.default_rng(1).standard_normal((n, n))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--B", type=int, default=20, help="bootstrap replicates measured per backend (default 20)")
    ap.add_argument("--workers", type=int, default=None, help="processes for the parallel bootstrap (default: all CPUs)")
    ap.add_argument("--repeats", type=int, default=1, help="timed fits per model (median)")
    ap.add_argument("--dask", action="store_true", help="also time a dask.distributed LocalCluster")
    ap.add_argument("--target-B", type=int, default=1000, help="B to extrapolate to (default 1000)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from mtdtl.analysis import (
        fit_size_model,
        fit_strategy_model,
        parametric_bootstrap,
        prepare,
        simulate_results,
        source_variance_components,
    )
    from mtdtl.analysis.bootstrap import _default_workers

    workers = args.workers or _default_workers()
    gflops = matmul_gflops()
    print(f"machine: {cpu_model()}; {os.cpu_count()} cores ({_default_workers()} available); "
          f"numpy float64 matmul {gflops:.1f} GFLOP/s (measured now); python {platform.python_version()}")

    sim = simulate_results(seed=0, source_sd=0.3)
    data = prepare(sim.results)
    print(f"problem: {data.n_representations} representations x {data.n_targets} targets = {len(data.table)} rows")

    t_m1, m1 = timed(lambda: fit_strategy_model(data), args.repeats)
    t_m2, m2 = timed(lambda: fit_size_model(data), args.repeats)
    t_anova, _ = timed(lambda: source_variance_components(data, method="anova"), max(3, args.repeats))
    t_mixed, _ = timed(lambda: source_variance_components(data, method="mixedlm"), args.repeats)

    boot = {}
    for fit in (m1, m2):
        s = parametric_bootstrap(fit, B=args.B, seed=0, workers=1, progress=False)
        p = parametric_bootstrap(fit, B=args.B, seed=0, workers=workers, progress=False)
        boot[fit.name] = {"serial": s.seconds, "processes": p.seconds,
                          "extra_serial": s.extrapolate(args.target_B), "extra_processes": p.extrapolate(args.target_B)}
        if args.dask:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cl, Client(cl) as c:
                c.run(lambda: __import__("mtdtl.analysis"))  # warm the workers' imports
                d = parametric_bootstrap(fit, B=args.B, seed=0, client=c, progress=False)
            boot[fit.name]["dask"] = d.seconds
            boot[fit.name]["extra_dask"] = d.extrapolate(args.target_B)

    print("\n== ratios (same run) ==")
    print(f"first model fit / second model fit: {t_m1 / t_m2:.1f}x")
    print(f"Table 6 components, MixedLM / ANOVA estimator: {t_mixed / t_anova:.0f}x")
    for name, b in boot.items():
        print(f"bootstrap of the {name} model, serial / {workers} processes: {b['serial'] / b['processes']:.2f}x"
              + (f"; serial / dask ({workers} workers): {b['serial'] / b['dask']:.2f}x" if "dask" in b else ""))
    print(f"first model fit in matmul-equivalents: {t_m1 * gflops:.0f} GFLOP at the measured rate "
          f"(second: {t_m2 * gflops:.0f})")

    print("\n== absolute (seconds; drift with load) ==")
    print(f"first model (Eqs. 10-12) fit: {t_m1:.2f} s (converged={m1.converged}); second (Eqs. 13-16): {t_m2:.2f} s "
          f"(converged={m2.converged})")
    print(f"Table 6 components, 7 targets: ANOVA {1000 * t_anova:.1f} ms, MixedLM {t_mixed:.2f} s")
    for name, b in boot.items():
        per = b["serial"] / args.B
        print(f"bootstrap {name} model, B={args.B}: serial {b['serial']:.1f} s ({per:.2f} s/refit), "
              f"{workers} processes {b['processes']:.1f} s"
              + (f", dask {b['dask']:.1f} s" if "dask" in b else ""))
    backends = ["serial", "processes"] + (["dask"] if args.dask else [])
    totals = {k: sum(b[f"extra_{k}"] for b in boot.values()) for k in backends}
    print(f"EXTRAPOLATED, not measured: B={args.target_B} for both models: "
          + ", ".join(f"{k} ~{v / 60:.0f} min" for k, v in totals.items())
          + f" (start-up + steady-state rate of the B={args.B} runs above)")


if __name__ == "__main__":
    main()
