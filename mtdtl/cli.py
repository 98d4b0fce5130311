"""The ``mtdtl`` command line.

Subcommands (``mtdtl --help`` lists them):

- ``mtdtl corpus demo``: build the embedded demo corpus and print its summary.
- ``mtdtl study``: the main job, the whole study in miniature on the embedded corpus.
- ``mtdtl demo``: the single-run walkthrough on the embedded corpus.
- ``mtdtl extract CHECKPOINT AUDIO... -o features.npy``: representation features of audio files.
- ``mtdtl sweep run|status|plan|collect FILE``: the study as a sweep (registered by mtdtl.sweep).

``python -m mtdtl`` is the same command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mtdtl.errors import MtdtlError
from mtdtl.log import setup_logging

__all__ = ["main", "build_parser"]

# Help texts are plain text (argparse prints them as they are): no reST markup here.
DESCRIPTION = ("Multi-task deep transfer learning of music representations (Kim et al., 2019):\n"
               "the demo corpus, the study in miniature, the walkthrough, sweeps and feature extraction.")
EPILOG = ("examples:\n"
          "  mtdtl study -o papermill_runs/study          the study in miniature (main job, ~15 min on 2 CPU cores)\n"
          "  mtdtl demo -o papermill_runs/demo            the walkthrough (about 10 min on 2 CPU cores)\n"
          "  mtdtl demo --size tiny --epochs 1            a quick check (a few minutes)\n"
          "  mtdtl corpus demo --size small               build the demo corpus only\n"
          "  mtdtl extract RUN_DIR a.wav b.mp3 -o f.npy   features of your audio files\n"
          "\nadd -v for debug logging, -q for warnings only (before or after the subcommand)")
DEFAULT_SOURCES = "self,bpm,year,taste,tag,lyrics,cdr_tag,artist"


def _version() -> str:
    from mtdtl import __version__

    return __version__


def _sizes() -> tuple[str, ...]:
    from mtdtl.walkthrough import DEMO_SIZES

    return DEMO_SIZES


def _default_epochs() -> int:
    from mtdtl.walkthrough import DEFAULT_EPOCHS

    return DEFAULT_EPOCHS


def _presets() -> tuple[str, ...]:
    from mtdtl.walkthrough import PRESETS

    return tuple(PRESETS)


def _arch_ids() -> tuple[str, ...]:
    from mtdtl.constants import ARCH_IDS

    return ARCH_IDS


def _sources(text: str) -> str:
    """argparse type of --sources: every name checked now (a typo fails before any work)."""
    from mtdtl.runs import parse_sources

    try:
        return ",".join(parse_sources(text))
    except MtdtlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v}: must be at least 1")
    return v


def _cmd_corpus_demo(args: argparse.Namespace) -> int:
    from mtdtl.corpora import Corpus
    from mtdtl.corpora.demo import build_demo_corpus

    path = build_demo_corpus(root=args.root, size=args.size, seed=args.seed,
                             workers=args.workers, progress=not args.quiet)
    print(Corpus.open(path).summary())
    print(f"\ncorpus: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mtdtl.walkthrough import preset_plan, run_walkthrough

    plan = preset_plan(args.preset, size=args.size, epochs=args.epochs, precision=args.precision,
                       repetitions=args.repetitions, arch=args.arch, sources=args.sources, seed=args.seed,
                       corpus_root=args.root)
    print(plan, end="\n\n", flush=True)
    if args.plan:
        return 0
    out = args.out or Path("papermill_runs/demo" if args.preset == "walkthrough" else f"papermill_runs/demo-{args.preset}")
    done = run_walkthrough(out_dir=out, size=args.size, seed=args.seed, arch=args.arch,
                           sources=args.sources, epochs=args.epochs, k=args.k, workers=args.workers,
                           corpus_root=args.root, progress=not args.quiet, preset=args.preset,
                           precision=args.precision, repetitions=args.repetitions)
    print(done.corpus_summary, end="\n\n")
    print(done.report())
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from mtdtl.walkthrough import run_study

    done = run_study(out_dir=args.out, sweep=args.sweep, budget=args.budget, seed=args.seed,
                     bootstrap=args.bootstrap, workers=args.workers, progress=not args.quiet)
    print(done.report())
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from mtdtl.features import extract_files

    bad = extract_files(args.checkpoint, args.audio, out=args.output, batch_size=args.batch_size,
                        device=args.device, progress=not args.quiet) or []
    n = len(args.audio)
    if bad:
        lines = [f"{len(bad)} of {n} files could not be read (their rows in {args.output} are NaN):"]
        lines += [f"  {p}" for p in bad]
        if not args.skip_bad:
            lines.append("mtdtl: error: unreadable input files; fix or remove them, or pass --skip-bad "
                         "to accept NaN rows")
            print("\n".join(lines), file=sys.stderr)
            return 1
        print("\n".join(lines), file=sys.stderr)
    print(f"features of {n - len(bad)} of {n} files written to {args.output}")
    return 0


def _verbosity(parent_defaults: bool) -> argparse.ArgumentParser:
    """-v / -q, accepted before and after the subcommand (the subcommand's copy only sets a
    value when given, so it never resets one given before the subcommand)."""
    p = argparse.ArgumentParser(add_help=False)
    default = False if parent_defaults else argparse.SUPPRESS
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress bars, warnings only")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mtdtl`` command."""
    common = _verbosity(parent_defaults=False)
    p = argparse.ArgumentParser(prog="mtdtl", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[_verbosity(parent_defaults=True)])
    p.add_argument("--version", action="version", version=f"mtdtl {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpus = sub.add_parser("corpus", help="build or inspect corpora", parents=[common],
                            description="Build or inspect corpora.")
    csub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="CORPUS_COMMAND")
    demo_c = csub.add_parser("demo", help="build the embedded demo corpus (music21 scores, GM soundfont)",
                             parents=[common],
                             description="Build the embedded demo corpus (music21 scores rendered through a "
                                         "General MIDI soundfont) and print its summary.")
    demo_c.add_argument("--size", default="small", choices=_sizes(), help="corpus size (default: small)")
    demo_c.add_argument("--seed", type=int, default=0)
    demo_c.add_argument("--root", type=Path, default=None,
                        help="corpus folder (default: <data dir>/corpora/demo-<size>-seed<seed>)")
    demo_c.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    demo_c.set_defaults(func=_cmd_corpus_demo)

    study = sub.add_parser("study", help="main job: the whole study in miniature (design, sweep, analysis, explain)",
                           parents=[common],
                           description="The study in miniature on the demo corpus: build the corpus, run "
                                       "01_preprocess and 04_design, the sweep of every run of the design "
                                       "(02_train + 03_evaluate each, on Dask) with the MFCC and Rand "
                                       "baselines, then 05_analysis and 06_explain, all into one folder. "
                                       "Run it again to resume.")
    study.add_argument("-o", "--out", type=Path, default=Path("papermill_runs/study"),
                       help="output folder (default: papermill_runs/study)")
    study.add_argument("--sweep", default="debug",
                       help="template sweep file (name in papermill_runs/ or a path; default: debug)")
    study.add_argument("--budget", type=int, default=None, help="Algorithm 2's phase-3 runs (default: the template's)")
    study.add_argument("--seed", type=int, default=None, help="Algorithm 2's seed (default: the template's)")
    study.add_argument("--bootstrap", type=int, default=0,
                       help="parametric-bootstrap refits in 05_analysis (default 0: t intervals)")
    study.add_argument("--workers", type=int, default=None, help="Dask workers (default: sized to the machine)")
    study.set_defaults(func=_cmd_study)

    demo = sub.add_parser("demo", help="the single-run walkthrough: corpus, preprocess, train, evaluate",
                          parents=[common],
                          description="The walkthrough: build the demo corpus, run the notebooks 01_preprocess, "
                                      "02_train and 03_evaluate with papermill, write the executed notebooks "
                                      "and their HTML copies, and print the results.")
    demo.add_argument("-o", "--out", type=Path, default=None,
                      help="output folder (default: papermill_runs/demo; papermill_runs/demo-<preset> for another preset)")
    demo.add_argument("--preset", default="walkthrough", choices=_presets(),
                      help="named settings (default: walkthrough; large: the medium corpus, 54 epochs, bf16 where "
                           "native: about an hour on 2 CPU cores); its cost is printed before it starts")
    demo.add_argument("--plan", action="store_true", help="print the preset's cost (measured here) and stop")
    demo.add_argument("--size", default=None, choices=_sizes(), help="demo corpus size (default: the preset's)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--arch", default="ms_cr@6", choices=_arch_ids(), help="architecture (default: ms_cr@6)")
    demo.add_argument("--sources", default=DEFAULT_SOURCES, type=_sources,
                      help=f"learning sources, comma-separated (default: all eight: {DEFAULT_SOURCES})")
    demo.add_argument("--epochs", type=_positive, default=None,
                      help=f"training epochs (default: the preset's; walkthrough: {_default_epochs()})")
    demo.add_argument("--precision", default=None, choices=("fp32", "bf16", "auto"),
                      help="training precision (default: the preset's; walkthrough: fp32, the paper's)")
    demo.add_argument("--repetitions", type=_positive, default=None,
                      help="repetitions of every evaluation (default: the preset's, 5)")
    demo.add_argument("--k", type=_positive, default=None,
                      help="pLSA topics / GMM components per source (default: 50; 8 for --size tiny)")
    demo.add_argument("--root", type=Path, default=None, help="corpus folder (default: the data dir's)")
    demo.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    demo.set_defaults(func=_cmd_demo)

    ex = sub.add_parser("extract", help="features of audio files from a checkpoint or a baseline",
                        parents=[common],
                        description="Mean and standard deviation of the fc-features of 2.5 s slices of each "
                                    "audio file, one row per file, into one .npy file. Exits with status 1 "
                                    "when a file cannot be read, unless --skip-bad is given.")
    ex.add_argument("checkpoint", help="run folder or model.safetensors; or mfcc, rand:<checkpoint>, "
                                       "rand:<arch>, choi:<model_best.hdf5>")
    ex.add_argument("audio", type=Path, nargs="+")
    ex.add_argument("-o", "--output", type=Path, required=True, help="output .npy (rows follow the inputs)")
    ex.add_argument("--batch-size", type=_positive, default=256)
    ex.add_argument("--device", default=None, help="cuda | cpu (default: cuda when present)")
    ex.add_argument("--skip-bad", action="store_true",
                    help="unreadable files get a row of NaN and the command still succeeds")
    ex.set_defaults(func=_cmd_extract)

    _add_sweep(sub, common)
    return p


def _add_sweep(sub, common: argparse.ArgumentParser) -> None:
    """``mtdtl sweep ...`` (registered by :mod:`mtdtl.sweep`), with -v / -q after it too."""
    try:
        from mtdtl.sweep import add_cli
    except ImportError:  # pragma: no cover - the sweep module is optional in a partial checkout
        return
    add_cli(sub)
    sweep = sub.choices.get("sweep")
    if sweep is None:  # pragma: no cover
        return
    parsers = [sweep]
    for action in sweep._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for parser in parsers:  # the same -v / -q as every other subcommand
        for action in common._actions:
            if not any(opt in parser._option_string_actions for opt in action.option_strings):
                parser._add_action(action)


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
