"""Experiment: a learned representation on real recorded music, against Rand and MFCC (issue 13).

The demo corpus is rendered from scores. This script checks a trained run on music that was
recorded and produced, not rendered: the soundtracks of five free games that Debian packages
ship (orchestral, electronic, rock, chiptune-like adventure music), as a five-class
"which soundtrack" task, the kind of collection/style task the paper's targets are.

Get the packages (about 480 MB; any Debian or Ubuntu machine, no root needed)::

    mkdir debs && cd debs && apt-get download wesnoth-1.16-music warzone2100-music \\
        drascula-music hyperrogue-music nexuiz-music

Then::

    python scripts/experiment_real_music.py --debs debs --out runs/real_music --run runs/large/train

What it does:

1. unpacks the packages (``dpkg-deb -x``; nexuiz's music is a zip, ``music.pk3``) and keeps the
   music files of at least 30 s (hyperrogue's short sound effects are dropped; drascula's
   tracks are taken from its English folder only, the other language folders repeat them);
2. cuts up to ``--excerpts`` non-overlapping 30 s excerpts per track, evenly spaced, as the
   paper's 30 s previews (FLAC, the file's own sample rate and channels), and writes
   ``labels.csv`` (``track, label, group``; the group is the source track, so the excerpts of
   one track are never split between training and test);
3. evaluates the run's representation beside the paper's Rand (untrained SS-R, 512
   dimensions) and MFCC with the paper's probe: five stratified folds, groups kept whole, the
   MLP of Section 4, under every ``--scalings`` of the probe's features.

Writes ``audio/`` and ``labels.csv``, ``results-<scaling>.csv`` (resumable) and
``summary.csv`` into ``--out`` and prints the summary (accuracy, mean ± sd over the folds).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1" and __name__ == "__main__":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, *sys.argv])

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

#: class -> (package, the folder inside it that holds the music, or the zip inside it)
PACKAGES = {
    "wesnoth": ("wesnoth-1.16-music", "usr/share/games/wesnoth"),
    "warzone2100": ("warzone2100-music", "usr/share/games/warzone2100/music"),
    "drascula": ("drascula-music", "usr/share/scummvm/drascula/en"),
    "hyperrogue": ("hyperrogue-music", "usr/share/hyperrogue"),
    "nexuiz": ("nexuiz-music", "usr/share/games/nexuiz/data/music.pk3"),
}
EXTENSIONS = (".ogg", ".opus", ".mp3", ".flac", ".wav")
EXCERPT_S = 30.0


def _unpack(debs: Path, work: Path) -> dict[str, Path]:
    out = {}
    for label, (package, inner) in PACKAGES.items():
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise SystemExit(f"no {package}_*.deb in {debs}: apt-get download {package}")
        dest = work / package
        if not (dest / inner).exists():
            dest.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(dest)], check=True)
        out[label] = dest / inner
    return out


def _sources(where: Path) -> list[tuple[str, object]]:
    """(name, file path or bytes) of every audio file under ``where`` (a folder or a zip)."""
    if where.is_file() and zipfile.is_zipfile(where):
        with zipfile.ZipFile(where) as z:
            return [(Path(i.filename).stem, z.read(i)) for i in z.infolist()
                    if not i.is_dir() and i.filename.lower().endswith(EXTENSIONS)]
    return [(p.stem, p) for p in sorted(where.rglob("*")) if p.suffix.lower() in EXTENSIONS]


def build_task(debs: Path, out: Path, *, excerpts: int) -> Path:
    """Cut the excerpts and write ``labels.csv``; files already cut are kept. Returns the root."""
    import pandas as pd
    import soundfile as sf

    root = out / "audio"
    labels = root / "labels.csv"
    if labels.is_file():
        return root
    rows = []
    for label, where in _unpack(debs, out / "packages").items():
        for name, src in _sources(where):
            try:
                data, sr = sf.read(io.BytesIO(src) if isinstance(src, bytes) else src, always_2d=True,
                                   dtype="float32")
            except Exception as e:  # noqa: BLE001 - an unreadable file is reported and skipped
                print(f"skipped {label}/{name}: {e}")
                continue
            dur = len(data) / sr
            k = min(excerpts, int(dur // EXCERPT_S))
            if k < 1:
                continue
            gap = (dur - k * EXCERPT_S) / (k + 1)
            for i in range(k):
                start = int(round((gap + i * (EXCERPT_S + gap)) * sr))
                rel = f"{label}/{name}-{i}.flac"
                (root / label).mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, data[start:start + int(EXCERPT_S * sr)], sr)
                rows.append({"track": rel, "label": label, "group": f"{label}/{name}"})
    tmp = labels.with_suffix(".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(labels)
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--debs", type=Path, required=True, help="folder with the downloaded .deb files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True, help="a trained run folder (02_train's)")
    p.add_argument("--excerpts", type=int, default=3, help="30 s excerpts per track at most (default 3)")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", default="mfcc,rand")
    p.add_argument("--scalings", default="standard,none", help="the probe's feature scalings to score")
    args = p.parse_args(argv)

    import pandas as pd
    from _machine import machine, print_machine

    from mtdtl.evaluation.protocol import ProtocolOptions
    from mtdtl.log import setup_logging
    from mtdtl.targets.folder import load_folder
    from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run

    setup_logging("INFO")
    print_machine(machine("cpu"))
    args.out.mkdir(parents=True, exist_ok=True)
    root = build_task(args.debs, args.out, excerpts=args.excerpts)
    target = load_folder(root, task="classification", target_name="game_music", seed=args.seed)
    print(target.summary())
    ours = representation_from_run(args.run)
    reps = [ours] + baseline_representations(args.baselines, run=ours)
    frames = []
    for scaling in [s.strip() for s in args.scalings.split(",") if s.strip()]:
        res = evaluate_transfer(reps, [target], results=args.out / f"results-{scaling}.csv",
                                repetitions=args.repetitions, seed=args.seed,
                                options=ProtocolOptions(feature_scaling=scaling))
        frames.append(res.assign(scaling=scaling))
    res = pd.concat(frames, ignore_index=True)
    summary = (res.groupby(["scaling", "representation", "metric"])["value"].agg(["mean", "std", "count"])
               .round(3).reset_index())
    summary.to_csv(args.out / "summary.csv", index=False)
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
