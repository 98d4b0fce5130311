"""Experiment: the Chance level of every demo task (issue 13; docs/learning.md, section 12).

Chance is the probe given one constant feature per track: the training part's majority class
(accuracy), the training mean (R²), one score for every new track (nDCG@500). It needs the
demo corpus only (no network, no spectrogram store), so it is cheap on any corpus size:

    python scripts/experiment_chance.py --size medium

Prints, per task, Chance's score beside the test split's class shares (classification), and
writes ``results.csv`` into ``--out`` when given (resumable, like every results table).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", help="demo corpus size (built with `mtdtl corpus demo --size`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="folder of results.csv (default: a temporary one)")
    args = p.parse_args(argv)

    import pandas as pd

    from mtdtl.errors import MtdtlError
    from mtdtl.paths import demo_corpus_dir
    from mtdtl.report import results_pivot
    from mtdtl.transfer import baseline_representations, evaluate_transfer, resolve_targets

    corpus = demo_corpus_dir(args.size, args.seed)
    if not (corpus / "corpus.json").is_file():
        raise MtdtlError(f"no demo corpus at {corpus}: build it with `mtdtl corpus demo --size {args.size}`")
    targets = resolve_targets("demo", corpus=str(corpus))
    out = args.out or Path(tempfile.mkdtemp(prefix="chance-"))
    out.mkdir(parents=True, exist_ok=True)
    results = evaluate_transfer(baseline_representations("chance"), targets, results=out / "results.csv",
                                repetitions=args.repetitions, seed=args.seed, progress=False)
    print(f"Chance on the demo tasks of {corpus.name} ({args.repetitions} repetitions; results: {out / 'results.csv'})\n")
    print(results_pivot(results).table(marker="").to_string())
    print("\nclass shares of the test split (classification tasks):")
    for t in targets:
        if t.task != "classification":
            continue
        test = t.tracks[t.tracks["split"].astype(str) == "test"]
        shares = test["label"].astype(str).value_counts(normalize=True)
        print(f"  {str(t.name).removeprefix('demo:'):12s} " + ", ".join(f"{c} {v:.3f}" for c, v in shares.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
