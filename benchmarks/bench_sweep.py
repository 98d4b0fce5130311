"""Overhead of the sweep: papermill + Dask per run, against the same work done in-process.

What it measures (one process, one machine, the two passes back to back):

1. **the sweep**: :func:`mtdtl.sweep.run_sweep` on a copy of a sweep file (default
   ``papermill_runs/debug.toml``) in a fresh folder with a fresh feature cache: Dask
   LocalCluster start, per run a kernel for ``02_train`` and one for ``03_evaluate`` (start-up,
   imports, every cell, the figures), the baselines once, the collection into ``results.csv``;
2. **in-process**: the same runs with the same threads, in this already-warm process, calling
   only what does the work: :func:`mtdtl.training.train`, then
   :func:`mtdtl.transfer.evaluate_transfer` of the run, and the baselines once (fresh folder,
   fresh feature cache).

The overhead is ``sweep wall / in-process wall - 1``: kernel starts, imports, the notebooks' other
cells (model summaries, figures), Dask and the collection. By default the sweep runs on one worker
with every core, so that both passes have the same parallelism (``--workers`` changes it; the
ratio then compares a parallel sweep with serial work and says how much parallelism bought).

Usage::

    python benchmarks/bench_sweep.py                          # papermill_runs/debug.toml
    python benchmarks/bench_sweep.py --sweep my.toml --max-runs 3 --json out.json

Prints the machine (CPU model, cores, load) and the ratio first, then the per-run breakdown.
``THP_MEM_ALLOC_ENABLE=1`` is set before torch starts (the script re-executes itself).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, print_machine  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (reaped) descendants: workers, kernels."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _copy_sweep(sweep, path: Path, *, corpus, store, out: Path, workers: int, max_runs: int | None,
                kernel: str | None = None):
    from mtdtl.sweep import write_sweep

    s = {k: dict(v) for k, v in sweep.settings.items()}
    s["data"].update(corpus=str(corpus or ""), store=str(store), demo_size="")
    s["dask"].update(workers=workers, scheduler="")
    if max_runs:
        s["design"]["max_runs"] = max_runs
    if s["design"]["file"]:
        s["design"]["file"] = str(sweep.path("design", "file"))
    top = s.pop("")
    options = {k: top[k] for k in ("html", "kernel", "kernel_notebooks") if k in top}
    if kernel:
        options["kernel"] = kernel
    return write_sweep(path, name=top["name"] or sweep.name, description=top["description"], out=str(out),
                       options=options, **s)


def in_process(sweep, *, corpus, store, out: Path, threads: int) -> dict:
    """train + evaluate of every run, then the baselines once, in this process."""
    from threadpoolctl import threadpool_limits

    from mtdtl.device import set_num_threads
    from mtdtl.training import TrainConfig, train
    from mtdtl.transfer import (
        baseline_representations,
        evaluate_transfer,
        representation_from_run,
        resolve_targets,
    )

    set_num_threads(threads)
    e, t = sweep["evaluate"], sweep["train"]
    roots = {k: str(v) for k, v in e["target_roots"].items()} or None
    per_run = []
    t0 = time.perf_counter()
    with threadpool_limits(threads):
        first = None
        for spec in sweep.runspecs():
            folder = out / spec.id
            a = time.perf_counter()
            train(TrainConfig(arch=spec.arch, sources=spec.sources, store=str(store), out_dir=str(folder),
                              epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed,
                              width=spec.width, device=t["device"], checkpoint_every=t["checkpoint_every"]),
                  progress=False)
            b = time.perf_counter()
            rep = representation_from_run(folder)
            targets = resolve_targets(e["targets"], corpus=corpus, roots=roots)
            evaluate_transfer([rep], targets, results=folder / "evaluate" / "results.csv", repetitions=e["repetitions"],
                              seed=e["seed"], progress=False)
            c = time.perf_counter()
            per_run.append({"run": spec.id, "train_s": b - a, "evaluate_s": c - b})
            first = first or rep
        b0 = time.perf_counter()
        if e["baselines"]:
            reps = baseline_representations(e["baselines"], run=first,
                                            choi_weights=sweep.path("evaluate", "choi_weights"))
            targets = resolve_targets(e["targets"], corpus=corpus, roots=roots)
            evaluate_transfer(reps, targets, results=out / "baselines" / "results.csv", repetitions=e["repetitions"],
                              seed=e["seed"], progress=False)
    end = time.perf_counter()
    return {"wall_s": end - t0, "baselines_s": end - b0, "runs": per_run}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", type=Path, default=REPO / "papermill_runs" / "debug.toml")
    p.add_argument("--workers", type=int, default=1, help="sweep workers (default 1: same parallelism as in-process)")
    p.add_argument("--max-runs", type=int, default=None, help="only the first runs of the sweep")
    p.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--kernel", choices=("warm", "fresh"), default=None,
                   help="the sweep's kernels: warm (one per worker, reused) or fresh (one per notebook); "
                        "default: the sweep file's setting")
    p.add_argument("--reuse-sweep", action="store_true",
                   help="with --keep: take the sweep pass already in the work folder (sweep_pass.json), "
                        "run only the in-process pass")
    args = p.parse_args(argv)

    from mtdtl.log import setup_logging
    from mtdtl.device import cpu_model, usable_cores
    from mtdtl.sweep import (
        load_sweep,
        local_cluster_size,
        run_sweep,
    )

    setup_logging("WARNING")
    load0 = os.getloadavg()
    sweep = load_sweep(args.sweep)
    corpus, store = sweep.prepare_data(progress=False)  # built once, outside both measurements
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    work.mkdir(parents=True, exist_ok=True)
    copy = load_sweep(_copy_sweep(sweep, work / "sweep.toml", corpus=corpus, store=store, out=work / "sweep",
                                  workers=args.workers, max_runs=args.max_runs, kernel=args.kernel))
    n = len(copy.runspecs())
    w, threads, _ = local_cluster_size(n, workers=args.workers, device=copy["train"]["device"])

    os.environ["MTDTL_DATA_DIR"] = str(work / "data-sweep")  # fresh feature cache for each pass
    record = work / "sweep_pass.json"
    if args.reuse_sweep and record.is_file():
        sweep_wall = json.loads(record.read_text())["wall_s"]
        report = run_sweep(copy, workers=args.workers, progress=False)  # every run done: status and collect only
        if report.submitted:
            raise SystemExit("--reuse-sweep: the kept sweep was not finished; run without --reuse-sweep")
        sweep_cpu = json.loads(record.read_text()).get("cpu_s")
    else:
        t, c = time.perf_counter(), cpu_seconds()
        report = run_sweep(copy, workers=args.workers, progress=False)
        sweep_wall, sweep_cpu = time.perf_counter() - t, cpu_seconds() - c
        record.write_text(json.dumps({"wall_s": sweep_wall, "cpu_s": sweep_cpu, "load": os.getloadavg()}))
    os.environ["MTDTL_DATA_DIR"] = str(work / "data-inprocess")
    c = cpu_seconds()
    inproc = in_process(copy, corpus=corpus, store=store, out=work / "inprocess", threads=threads)
    inproc["cpu_s"] = cpu_seconds() - c
    load1 = os.getloadavg()

    ratio = sweep_wall / inproc["wall_s"] - 1
    ratio_cpu = sweep_cpu / inproc["cpu_s"] - 1 if sweep_cpu else None
    status = report.status.set_index("run")
    print_machine(machine("cpu"))  # CPU model, cores, load, matmul peaks (measured now)
    print(f"# load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end")
    print(f"sweep overhead: {100 * ratio:+.1f}% wall clock (sweep {sweep_wall:.0f} s vs in-process "
          f"{inproc['wall_s']:.0f} s; {n} runs of {args.sweep.name} on {w} worker(s) x {threads} thread(s); "
          f"{(sweep_wall - inproc['wall_s']) / n:.1f} s a run; kernel = {copy['']['kernel']})"
          + (f"; {100 * ratio_cpu:+.1f}% in CPU time ({sweep_cpu:.0f} vs {inproc['cpu_s']:.0f} CPU-s, "
             "less disturbed by other load)" if ratio_cpu is not None else ""))
    print(f"\n{'run':42s} {'state':6s} {'02 nb s':>8s} {'train cell':>10s} {'train here':>10s} "
          f"{'03 nb s':>8s} {'eval cell':>9s} {'eval here':>9s}")
    for r in inproc["runs"]:
        s = status.loc[r["run"]]
        sf = json.loads((Path(s["folder"]) / "sweep_status.json").read_text())
        print(f"{r['run']:42s} {s['state']:6s} {sf.get('train_s') or 0:8.1f} {sf.get('train_cell_s') or 0:10.1f} "
              f"{r['train_s']:10.1f} {sf.get('evaluate_s') or 0:8.1f} {sf.get('evaluate_cell_s') or 0:9.1f} "
              f"{r['evaluate_s']:9.1f}")
    b = status.loc["baselines"] if "baselines" in status.index else None
    if b is not None:
        bs = json.loads((Path(b["folder"]) / "sweep_status.json").read_text())
        print(f"{'baselines (once)':42s} {b['state']:6s} {'':8s} {'':10s} {'':10s} {bs.get('evaluate_s') or 0:8.1f} "
              f"{'':9s} {inproc['baselines_s']:9.1f}")
    nb = sum((json.loads((Path(status.loc[r['run'], 'folder']) / 'sweep_status.json').read_text()).get(k) or 0)
             for r in inproc["runs"] for k in ("train_s", "evaluate_s"))
    here = sum(r["train_s"] + r["evaluate_s"] for r in inproc["runs"])
    print(f"\nper run: notebooks {nb / n:.1f} s vs in-process {here / n:.1f} s "
          f"({100 * (nb / here - 1):+.1f}%: kernels, imports, the notebooks' other cells); the rest of the sweep "
          f"(cluster, baselines task, collection, driver): {sweep_wall - nb - (bs.get('evaluate_s') or 0 if b is not None else 0):.1f} s")
    print(f"target: sweep overhead under 10% on the debug sweep: {'met' if ratio < 0.10 else 'NOT met'} "
          f"({100 * ratio:+.1f}% wall clock"
          + (f", {100 * ratio_cpu:+.1f}% CPU time" if ratio_cpu is not None else "") + ")")
    if args.json:
        args.json.write_text(json.dumps({"machine": {"cpu": cpu_model(), "cores": usable_cores()}, "load": [load0, load1],
                                         "sweep_s": sweep_wall, "sweep_cpu_s": sweep_cpu, "in_process": inproc, "ratio": ratio,
                                         "ratio_cpu": ratio_cpu, "runs": n, "kernel": copy[""]["kernel"],
                                         "workers": w, "threads": threads}, indent=1))
    return 0 if (report.status["state"] == "done").all() else 1


if __name__ == "__main__":
    sys.exit(main())
