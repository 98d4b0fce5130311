"""The ``mtdtl`` command line.

Subcommands (``mtdtl --help`` lists them):

- ``mtdtl corpus demo``: build the embedded demo corpus and print its summary.
- ``mtdtl demo``: the main job, the single-run walkthrough on the embedded corpus.
- ``mtdtl extract CHECKPOINT AUDIO... -o features.npy``: representation features of audio files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mtdtl.errors import MtdtlError
from mtdtl.log import setup_logging

__all__ = ["main", "build_parser"]


def _cmd_corpus_demo(args: argparse.Namespace) -> int:
    from mtdtl.corpora import Corpus
    from mtdtl.corpora.demo import build_demo_corpus

    path = build_demo_corpus(root=args.root, size=args.size, seed=args.seed,
                             workers=args.workers, progress=not args.quiet)
    print(Corpus.open(path).summary())
    print(f"\ncorpus: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mtdtl.walkthrough import run_walkthrough

    done = run_walkthrough(out_dir=args.out, size=args.size, seed=args.seed, arch=args.arch,
                           sources=args.sources, epochs=args.epochs, k=args.k, workers=args.workers,
                           corpus_root=args.root, progress=not args.quiet)
    print(done.corpus_summary, end="\n\n")
    print(done.report())
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from mtdtl.features import extract_files

    extract_files(args.checkpoint, args.audio, out=args.output, batch_size=args.batch_size,
                  device=args.device, progress=not args.quiet)
    print(f"features written to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mtdtl`` command."""
    p = argparse.ArgumentParser(prog="mtdtl", description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="build or inspect corpora")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    demo_c = csub.add_parser("demo", help="build the embedded demo corpus (music21 + GM soundfont)")
    demo_c.add_argument("--size", default="small", help="tiny | small | medium | large | full (default: small)")
    demo_c.add_argument("--seed", type=int, default=0)
    demo_c.add_argument("--root", type=Path, default=None,
                        help="corpus folder (default: <data dir>/corpora/demo-<size>-seed<seed>)")
    demo_c.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    demo_c.set_defaults(func=_cmd_corpus_demo)

    demo = sub.add_parser("demo", help="main job: corpus, preprocess, train, evaluate (papermill walkthrough)")
    demo.add_argument("-o", "--out", type=Path, default=Path("papermill_runs/demo"),
                      help="output folder (default: papermill_runs/demo)")
    demo.add_argument("--size", default="small")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--arch", default="ms_cr@6")
    demo.add_argument("--sources", default="self,bpm,year,tag,taste,cdr_tag,lyrics,artist")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: the walkthrough's)")
    demo.add_argument("--k", type=int, default=50, help="pLSA topics / GMM components per source (default: 50)")
    demo.add_argument("--root", type=Path, default=None, help="corpus folder")
    demo.add_argument("--workers", type=int, default=None)
    demo.set_defaults(func=_cmd_demo)

    ex = sub.add_parser("extract", help="features of audio files from a checkpoint or a baseline")
    ex.add_argument("checkpoint", help="run folder or model.safetensors; or mfcc, rand:<checkpoint>, "
                                       "rand:<arch>, choi:<model_best.hdf5>")
    ex.add_argument("audio", type=Path, nargs="+")
    ex.add_argument("-o", "--output", type=Path, required=True, help="output .npy (rows follow the inputs)")
    ex.add_argument("--batch-size", type=int, default=256)
    ex.add_argument("--device", default=None, help="cuda | cpu (default: cuda when present)")
    ex.set_defaults(func=_cmd_extract)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mtdtl`` command."""
    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    try:
        return args.func(args)
    except MtdtlError as e:
        print(f"mtdtl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtdtl: interrupted; finished work is kept, run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
