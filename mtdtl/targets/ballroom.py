"""Extended Ballroom (Marchand & Peeters, 2016): 30-second excerpts of 13 ballroom dance styles.

The dataset ships no audio: ``extendedballroom_v1.1.zip`` holds the track list and a download
script, which writes the excerpts as::

    <root>/<Style>/<Style>.<id>.mp3   Style: Chacha, Foxtrot, Jive, Pasodoble, Quickstep, Rumba, Salsa,
                                      Samba, Slowwaltz, Tango, Viennesewaltz, Waltz, Wcswing

The study's copy (whose paths in ``reference/eBallroom_filtered_dataset.info`` read
``data/<Style>/<id>.mp3``) names the files ``<id>.mp3``; both names are read, and style folders
are matched without regard to case. ``root`` may be the folder holding the style folders, or one
above it holding ``data/``, ``extendedballroom_v1.1/``, ``EBallroom/`` ... (see
``_CANDIDATE_DIRS``). The label is the style folder; the track id is ``<id>`` (the file stem
without a leading ``<Style>.``).

Split: none is defined (Table 5); the study used stratified random folds. The study's list
(3,390 tracks, split column empty; shipped with mtdtl as ``eballroom`` and used by default)
selects the tracks and gives their labels; rows and files are matched on ``<Style>/<id>``
(:func:`ballroom_key`), so ``data/Pasodoble/113217.mp3`` in the list matches
``Pasodoble/Pasodoble.113217.mp3`` on disk. The split is not fixed (``split_fixed`` is False):
the paper's repetitions are five stratified folds
(:func:`mtdtl.evaluation.protocol.repetition_plan`); the ``split`` column holds one stratified
random 80 / 20 draw.
"""

from __future__ import annotations

import os
from pathlib import Path

from pathlib import PurePosixPath

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (AUDIO_EXTENSIONS, SkippedFile, SplitSpec, TargetDataset, check_files, finalize,
                                find_first, require_dir, scan_audio)

__all__ = ["STYLES", "ballroom_key", "load_ballroom"]

log = get_logger(__name__)

#: The 13 dance styles of Extended Ballroom (folder names).
STYLES = ("Chacha", "Foxtrot", "Jive", "Pasodoble", "Quickstep", "Rumba", "Salsa", "Samba", "Slowwaltz",
          "Tango", "Viennesewaltz", "Waltz", "Wcswing")
_STYLE_OF = {s.lower(): s for s in STYLES}
#: Where the style folders are looked for under ``root``, in order: the root itself, the study's
#: ``data/``, the official zip's and the download script's folder names, and their ``data/``.
_CANDIDATE_DIRS = ("", "data", "extendedballroom_v1.1", "extendedballroom_v1.1/data", "extendedballroom",
                   "extended_ballroom", "extended_ballroom_v1.1", "EBallroom", "EBallroom/data", "eballroom",
                   "eballroom/data", "ExtendedBallroom")


def _styles_dir(root: Path) -> Path | None:
    return find_first(root, _CANDIDATE_DIRS, containing=STYLES + tuple(_STYLE_OF))


def _style_and_id(folder: str, filename: str) -> tuple[str, str]:
    """``("Pasodoble", "113217")`` from a style folder and ``113217.mp3`` or ``Pasodoble.113217.mp3``."""
    stem, ext = os.path.splitext(filename)
    if ext.lower() not in AUDIO_EXTENSIONS:
        stem = filename
    style = _STYLE_OF.get(folder.lower(), folder)
    prefix = folder.lower() + "."
    if stem.lower().startswith(prefix) and len(stem) > len(prefix):
        stem = stem[len(prefix):]
    return style, stem


def ballroom_key(path: str) -> str:
    """Matching key of a file or split-list path: ``<Style>/<id>``.

    ``ballroom_key("data/Pasodoble/113217.mp3") == ballroom_key("Pasodoble/Pasodoble.113217.mp3")
    == "Pasodoble/113217"`` (the study's list and the official download script's layout).
    """
    parts = PurePosixPath(str(path).replace("\\", "/").strip("/")).parts
    if len(parts) < 2:
        return _style_and_id("", parts[-1] if parts else "")[1]
    return "/".join(_style_and_id(parts[-2], parts[-1]))


def load_ballroom(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", seed: int = 0,
                  test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load Extended Ballroom from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding the style folders (or one above it: ``data/``, ``extendedballroom_v1.1/``,
        ``EBallroom/`` ...).
    split_list : "study", path-like or None
        ``"study"`` (default): the study's 3,390 tracks shipped with mtdtl; a path: a list in
        ``reference/eBallroom_filtered_dataset.info`` format; None: every style folder's files.
        The list selects and labels the tracks; its empty split column means no fixed split.
    seed, test_size, check, progress
        Fallback split, file check and progress bar.
    """
    root = require_dir(root, "eballroom")
    sdir = _styles_dir(root)
    if sdir is None:
        raise MtdtlError(f"eballroom: no style folders ({', '.join(STYLES)}) found in {root} or its "
                         f"subfolders {[c for c in _CANDIDATE_DIRS if c]}; expected <root>/<Style>/<Style>.<id>.mp3 "
                         "(the official download script) or <root>/<Style>/<id>.mp3")
    skipped: list[SkippedFile] = []
    rows = []
    for folder in sorted(p.name for p in sdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.lower() not in _STYLE_OF:
            log.info("eballroom: ignoring folder %s (not one of the 13 styles)", sdir / folder)
            continue
        for r in scan_audio(sdir / folder, relative_to=root):
            parts = r.split("/")
            if parts[-2] != folder:
                skipped.append(SkippedFile(r, "not directly inside a style folder"))
                continue
            style, tid = _style_and_id(folder, parts[-1])
            rows.append((tid, r, style))
    cand = pd.DataFrame(rows, columns=["track_id", "relpath", "label"])
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    cand["group"] = ""
    return finalize(name="eballroom", task="classification", root=root, candidates=cand, key_fn=ballroom_key,
                    fallback=SplitSpec(stratify="label", test_size=test_size, seed=seed), split_list=split_list,
                    skipped=skipped, searched=sdir, meta={"styles_dir": str(sdir)})
