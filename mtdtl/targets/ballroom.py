"""Extended Ballroom (Marchand & Peeters, 2016): 30-second excerpts of 13 ballroom dance styles.

Layout as distributed (``extended_ballroom_v1.1.zip``)::

    <root>/<Style>/<id>.mp3         Style: Chacha, Foxtrot, Jive, Pasodoble, Quickstep, Rumba, Salsa,
                                    Samba, Slowwaltz, Tango, Viennesewaltz, Waltz, Wcswing

``root`` may also be the folder holding ``data/<Style>/`` (the study's copy, whose paths in
``reference/eBallroom_filtered_dataset.info`` read ``data/<Style>/<id>.mp3``). The label is the
style folder; the track id the file stem.

Split: none is defined (Table 5); the study used stratified random folds. The study's list
(3,390 tracks, split column empty; shipped with mtdtl as ``eballroom`` and used by default)
selects the tracks and gives their labels; rows are matched on ``<Style>/<id>``. The split is
not fixed (``split_fixed`` is False): the paper's repetitions are five stratified folds
(:func:`mtdtl.evaluation.protocol.repetition_plan`); the ``split`` column holds one stratified
random 80 / 20 draw.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (find_first, SkippedFile, SplitSpec, TargetDataset, check_files, finalize, require_dir,
                                scan_audio, tail_key)

__all__ = ["STYLES", "load_ballroom"]

log = get_logger(__name__)

#: The 13 dance styles of Extended Ballroom (folder names).
STYLES = ("Chacha", "Foxtrot", "Jive", "Pasodoble", "Quickstep", "Rumba", "Salsa", "Samba", "Slowwaltz",
          "Tango", "Viennesewaltz", "Waltz", "Wcswing")
_CANDIDATE_DIRS = ("", "data", "extended_ballroom", "extended_ballroom_v1.1")


def _styles_dir(root: Path) -> Path | None:
    return find_first(root, _CANDIDATE_DIRS, containing=STYLES)


def load_ballroom(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", seed: int = 0,
                  test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load Extended Ballroom from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding the style folders (or ``data/`` with them).
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
                         f"subfolders {[c for c in _CANDIDATE_DIRS if c]}; expected <root>/<Style>/<id>.mp3")
    skipped: list[SkippedFile] = []
    rows = []
    for style in sorted(p.name for p in sdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if style not in STYLES:
            log.info("eballroom: ignoring folder %s (not one of the 13 styles)", sdir / style)
            continue
        for r in scan_audio(sdir / style, relative_to=root):
            parts = r.split("/")
            if parts[-2] != style:
                skipped.append(SkippedFile(r, "not directly inside a style folder"))
                continue
            rows.append((os.path.splitext(parts[-1])[0], r, style))
    cand = pd.DataFrame(rows, columns=["track_id", "relpath", "label"])
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    cand["group"] = ""
    return finalize(name="eballroom", task="classification", root=root, candidates=cand, key_fn=tail_key(2),
                    fallback=SplitSpec(stratify="label", test_size=test_size, seed=seed), split_list=split_list,
                    skipped=skipped, meta={"styles_dir": str(sdir)})
