"""Experiment: how the probe's feature scaling moves the scores (issue 13; docs/learning.md).

The MLP probe standardises the features on the training part by default (the paper is silent;
the authors' code does not scale). On ~100 training tracks that blows up the regression probes
of a learned 4,096-dimension representation, while no scaling ruins MFCC and the untrained
network. This script scores the same features under every ``feature_scaling`` of
:class:`mtdtl.evaluation.protocol.ProtocolOptions` (``standard``, ``clip``, ``none``,
``pca_whiten``, ``select``; ``--scalings`` picks some):

1. **real recorded music**: the features Choi et al. (2017) released for GTZAN, Extended
   Ballroom and emoMusic (their convnet and their MFCC baseline), read from
   ``--reference`` (``shared/reference``; skipped when absent);
2. **the demo tasks** (classification and regression): a trained run's representation
   (``--run``) beside the paper's Rand and MFCC, from the feature cache (features are extracted
   once and reused).

Writes ``results.csv`` (tidy rows with a ``scaling`` column) and ``summary.csv`` (mean, sd, n)
into ``--out`` and prints the summary. Resumable per (part, scaling).

    python scripts/experiment_probe_scaling.py --out runs/probe_scaling --run runs/e16/run \\
        --reference ../shared/reference --repetitions 5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

SCALINGS = ("standard", "clip", "none", "pca_whiten", "select")


def _real(reference: Path, scaling: str, repetitions: int, seed: int):
    from mtdtl.evaluation.reference import choi_reference_check

    return choi_reference_check(reference, n_repetitions=repetitions, seed=seed, summary=False,
                                feature_scaling=scaling)


def _demo(run: Path, size: str, scaling: str, repetitions: int, seed: int, out: Path):
    from mtdtl.evaluation.protocol import ProtocolOptions
    from mtdtl.paths import demo_corpus_dir
    from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run, resolve_targets

    ours = representation_from_run(run)
    reps = [ours] + baseline_representations("mfcc,rand", run=ours)
    targets = [t for t in resolve_targets("demo", corpus=str(demo_corpus_dir(size, 0)))
               if t.task in ("classification", "regression")]
    return evaluate_transfer(reps, targets, results=out / f"demo-{scaling}.csv", repetitions=repetitions,
                             seed=seed, options=ProtocolOptions(feature_scaling=scaling))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, default=None, help="a trained run folder (the demo part; skipped without)")
    p.add_argument("--size", default="small", help="demo corpus size of the run's targets (default small)")
    p.add_argument("--reference", type=Path, default=None, help="shared/reference (the real-music part)")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scalings", default=",".join(SCALINGS), help=f"comma-separated (default: {','.join(SCALINGS)})")
    args = p.parse_args(argv)
    scalings = [s.strip() for s in args.scalings.split(",") if s.strip()]

    import pandas as pd
    from _machine import machine, print_machine

    from mtdtl.log import setup_logging

    setup_logging("WARNING")
    print_machine(machine("cpu"))
    args.out.mkdir(parents=True, exist_ok=True)
    frames = []
    for scaling in scalings:
        if args.reference is not None and (args.reference / "choi2017").is_dir():
            f = args.out / f"real-{scaling}.csv"
            if not f.is_file():
                _real(args.reference, scaling, args.repetitions, args.seed).to_csv(f, index=False)
            frames.append(pd.read_csv(f).assign(part="real (Choi et al.'s released features)", scaling=scaling))
        elif args.reference is not None:
            print(f"# no choi2017/ in {args.reference}: the real-music part is skipped")
        if args.run is not None:
            res = _demo(args.run, args.size, scaling, args.repetitions, args.seed, args.out)
            frames.append(res.assign(part=f"demo {args.size}", scaling=scaling))
    if not frames:
        p.error("nothing to do: give --run and/or --reference")
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(args.out / "results.csv", index=False)
    summary = (table.groupby(["part", "target", "metric", "representation", "scaling"], sort=False)["value"]
               .agg(["mean", "std", "count"]).round(3).reset_index())
    summary.to_csv(args.out / "summary.csv", index=False)
    wide = summary.assign(cell=summary["mean"].map("{:.3f}".format) + " ± " + summary["std"].map("{:.3f}".format))
    print(wide.pivot_table(index=["part", "target", "representation"], columns="scaling", values="cell",
                           aggfunc="first", sort=False)[scalings].to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
