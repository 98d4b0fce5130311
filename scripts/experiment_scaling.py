"""Experiment: transfer score against training samples seen, learned vs Rand vs MFCC (issue 13).

Trains one network on a demo store with every checkpoint kept, then evaluates a log-spaced
subset of the checkpoints on the demo tasks beside the paper's baselines, and says per source
how far validation KL fell below the cost of predicting the average z_t. Writes into ``--out``:
``results.csv`` (tidy rows with ``epoch``, ``samples``), ``sources.csv``, ``scaling.png/.pdf``
and ``summary.json`` (machine, settings, wall times). Resumable: run it again with the same
arguments and finished training and evaluations are reused.

    python scripts/experiment_scaling.py --out runs/scaling --arch ms_cr@6 --epochs 64

The figures in docs/sources.md ("Why the demo did not learn more") come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def log_spaced(last: int) -> list[int]:
    """1, 2, 4, ... up to ``last`` (always included)."""
    out, e = [], 1
    while e < last:
        out.append(e)
        e *= 2
    return out + [last]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", default="small", help="demo corpus size (default small)")
    p.add_argument("--arch", default="ms_cr@6")
    p.add_argument("--sources", default="self,bpm,year,taste,tag,lyrics,cdr_tag,artist")
    p.add_argument("--epochs", type=int, default=64)
    p.add_argument("--width", default="full")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--baselines", default="mfcc,rand")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--eval-epochs", default="",
                   help="comma-separated checkpoints to evaluate (default: 1, 2, 4, ... and the last)")
    args = p.parse_args(argv)

    from _machine import machine, print_machine

    from mtdtl.log import setup_logging
    from mtdtl.plots import save_figure, scaling
    from mtdtl.paths import demo_corpus_dir
    from mtdtl.scaling import source_learning, transfer_scaling
    from mtdtl.training import TrainConfig, train
    from mtdtl.transfer import resolve_targets
    from mtdtl.walkthrough import demo_k, ensure_demo_store

    setup_logging("INFO")
    mach = machine("cpu")
    print_machine(mach)
    args.out.mkdir(parents=True, exist_ok=True)
    store = ensure_demo_store(size=args.size, seed=0, k=demo_k(args.size))
    corpus = demo_corpus_dir(args.size, 0)
    run_dir = args.out / "run"
    t0 = time.perf_counter()
    train(TrainConfig(arch=args.arch, sources=args.sources, store=str(store), out_dir=str(run_dir), epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed, width=args.width, checkpoint_every=1,
                      keep_checkpoints=True, precision=args.precision))
    t1 = time.perf_counter()
    targets = resolve_targets("demo", corpus=str(corpus))
    epochs = ([int(e) for e in args.eval_epochs.split(",") if e.strip()] if args.eval_epochs
              else log_spaced(args.epochs))
    res = transfer_scaling(run_dir, targets, epochs=epochs, results=args.out / "results.csv",
                           repetitions=args.repetitions, baselines=args.baselines)
    t2 = time.perf_counter()
    res.to_csv(args.out / "scaling_rows.csv", index=False)
    src = source_learning(run_dir, store)
    src.to_csv(args.out / "sources.csv", index=False)
    fig = scaling(res, title=f"{args.arch}, {len(args.sources.split(','))} sources, demo {args.size}: "
                             "transfer against training")
    save_figure(fig, args.out / "scaling")
    meta = json.loads((run_dir / "metrics.json").read_text())
    summary = {"machine": {k: mach.get(k) for k in ("cpu", "cores", "fp32_gflops", "bf16_gflops") if k in mach},
               "args": {k: str(v) for k, v in vars(args).items()},
               "train_s": meta.get("train_time_s"),  # the training's own clock: a reused run keeps its time
               "train_s_this_call": t1 - t0, "evaluate_s_this_call": t2 - t1,
               "samples_per_s": meta.get("samples_per_s"), "iterations_per_epoch": meta.get("iterations_per_epoch")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    table = (res.groupby(["target", "metric", "series", "epoch"], dropna=False)["value"].agg(["mean", "std"])
             .round(3).reset_index())
    print(table.to_string(index=False))
    print(src.round(3).to_string(index=False))
    print(f"training {meta.get('train_time_s')} s ({meta.get('samples_per_s')} samples/s; {t1 - t0:.0f} s in this call), "
          f"evaluation {t2 - t1:.0f} s in this call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
