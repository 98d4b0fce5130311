"""Experiment: the Rand baseline under PyTorch's and under the authors' initialisation (issue 13).

mtdtl builds networks with PyTorch's default initialisers; the authors' code used Lasagne's
defaults (GlorotUniform weights, zero biases). An untrained network's features depend on that
choice, so the Rand baseline does. This script extracts the paper's Rand (untrained SS-R,
512 dimensions, the run's front end and input scaler) under both initialisations and scores
them on the demo tasks with the default probe. docs/learning.md, section 11.

    python scripts/experiment_rand_init.py --out runs/rand-init --run runs/medium-e54-bf16/run --size medium

Writes ``results-<init>.csv`` (resumable) and ``summary.csv`` into ``--out``, and prints the
summary with each variant's feature statistics (mean |x|, share of constant dimensions).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True, help="a trained run (its front end and input scaler)")
    p.add_argument("--size", default="small", help="demo corpus size of the run's targets (default small)")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd
    from _machine import machine, print_machine

    from mtdtl.features import get_extractor
    from mtdtl.features.cache import extract_dataset
    from mtdtl.log import setup_logging
    from mtdtl.paths import demo_corpus_dir
    from mtdtl.transfer import (_audio_key, baseline_representations, evaluate_transfer, representation_from_run,
                                resolve_targets)

    setup_logging("WARNING")
    print_machine(machine("cpu"))
    args.out.mkdir(parents=True, exist_ok=True)
    rand = baseline_representations("rand", run=representation_from_run(args.run))[0]
    targets = resolve_targets("demo", corpus=str(demo_corpus_dir(args.size, 0)))
    frames, stats = [], []
    for init in ("torch", "glorot"):
        name = rand.name if init == "torch" else rand.name.replace("-seed", f"-{init}-seed")
        rep = dataclasses.replace(rand, name=name, identity={**rand.identity, "run": name, "representation": name},
                                  options={**rand.options, "init": init})
        res = evaluate_transfer([rep], targets, results=args.out / f"results-{init}.csv",
                                repetitions=args.repetitions, seed=args.seed)
        frames.append(res.assign(init=init))
        # the features of the demo targets' audio (cached by evaluate_transfer: read, not extracted)
        tracks = (pd.concat([t.tracks[["track_id", "path"]] for t in targets])
                  .drop_duplicates("track_id").reset_index(drop=True))
        fs = extract_dataset(get_extractor(rep.spec, **dict(rep.options)), tracks, dataset=_audio_key(targets[0]),
                             progress=False)
        sd = fs.X.std(axis=0)
        stats.append({"init": init, "dims": fs.X.shape[1], "mean |x|": float(np.abs(fs.X).mean()),
                      "constant dims": float((sd == 0).mean())})
    table = pd.concat(frames, ignore_index=True)
    summary = (table.groupby(["target", "metric", "init"])["value"].agg(["mean", "std", "count"]).round(3)
               .reset_index())
    summary.to_csv(args.out / "summary.csv", index=False)
    print(summary.pivot_table(index=["target", "metric"], columns="init", values="mean").to_string())
    print(summary.pivot_table(index=["target", "metric"], columns="init", values="std").to_string())
    print(pd.DataFrame(stats).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
