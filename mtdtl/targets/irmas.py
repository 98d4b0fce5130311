"""IRMAS training set (Bosch et al., 2012): 3-second excerpts labelled with their predominant
instrument, 11 classes.

Layout as distributed (``IRMAS-TrainingData.zip``)::

    <root>/<instr>/[<instr>][<genre>]NNNN__K.wav
    <root>/<instr>/PPP__[<instr>][<drums>][<genre>]NNNN__K.wav

with ``<instr>`` one of cel, cla, flu, gac, gel, org, pia, sax, tru, vio, voi; ``<drums>``
``dru`` / ``nod`` / ``---``; ``<genre>`` e.g. ``cla``, ``pop_roc``, ``jaz_blu``, ``cou_fol``,
``lat_sou``. ``root`` may also be the folder holding ``IRMAS-TrainingData/`` (mirdata's data
home), or one holding ``irmas/IRMAS-TrainingData/`` (``~/mir_datasets``). The label is the
instrument folder (checked against the first tag).

Song filtering. ``K`` (1-3) numbers excerpts cut from one recording, and ``NNNN`` identifies
that recording: in the study's song-filtered split (``reference/IRMAS_filtered_dataset.info``,
5,698 / 1,007) every ``NNNN`` lies entirely on one side, and ``NNNN`` never recurs across
instrument folders. So the group (song id) is ``NNNN``; the optional prefix ``PPP__`` is not
used. A name that does not parse is its own group (logged).

Split: the study's list (shipped with mtdtl as ``irmas-song-filtered``, used by default) is
matched on ``<instr>/<file stem>`` (its paths end in ``.mp3``, the distribution's in ``.wav``).
With ``split_list=None``, a song-filtered random 80 / 20 split stratified by instrument is drawn
(and the repetitions are song-grouped stratified folds).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (find_first, SkippedFile, SplitSpec, TargetDataset, check_files, finalize, require_dir,
                                scan_audio, tail_key)

__all__ = ["INSTRUMENTS", "parse_irmas_name", "load_irmas"]

log = get_logger(__name__)

#: The 11 IRMAS instrument codes (folder names).
INSTRUMENTS = ("cel", "cla", "flu", "gac", "gel", "org", "pia", "sax", "tru", "vio", "voi")
_NAME = re.compile(r"^(?:(?P<prefix>\d+)__)?(?P<tags>(?:\[[^\[\]]+\])+)(?P<song>\d+)__(?P<part>\d+)$")
_TAG = re.compile(r"\[([^\[\]]+)\]")
#: Where the instrument folders are looked for under ``root``, in order: the root itself, the
#: distribution's ``IRMAS-TrainingData/``, and mirdata's ``irmas/IRMAS-TrainingData`` (``root`` =
#: ``~/mir_datasets``; its data home ``~/mir_datasets/irmas`` is covered by the second).
_CANDIDATE_DIRS = ("", "IRMAS-TrainingData", "IRMAS_TrainingData", "training", "irmas/IRMAS-TrainingData",
                   "IRMAS/IRMAS-TrainingData")


def parse_irmas_name(stem: str) -> dict | None:
    """Parse an IRMAS training file stem.

    ``parse_irmas_name("204__[pia][nod][cla]1401__1")`` gives ``{"instrument": "pia",
    "drums": "nod", "genre": "cla", "song": "1401", "part": 1, "prefix": "204"}``; ``None`` when
    the stem does not follow the naming scheme.
    """
    m = _NAME.match(stem)
    if not m:
        return None
    tags = _TAG.findall(m["tags"])
    return {"instrument": tags[0], "drums": tags[1] if len(tags) == 3 else "",
            "genre": tags[-1] if len(tags) > 1 else "", "song": m["song"], "part": int(m["part"]),
            "prefix": m["prefix"] or ""}


def _instr_dir(root: Path) -> Path | None:
    return find_first(root, _CANDIDATE_DIRS, containing=INSTRUMENTS)


def load_irmas(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", seed: int = 0,
               test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load the IRMAS training set from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding the instrument folders (or ``IRMAS-TrainingData/``).
    split_list : "study", path-like or None
        ``"study"`` (default): the study's song-filtered split shipped with mtdtl; a path: your
        own list (``reference/IRMAS_filtered_dataset.info`` format); None: no list.
    seed, test_size, check, progress
        Fallback split (song-filtered, stratified by instrument), file check, progress bar.
    """
    root = require_dir(root, "irmas")
    idir = _instr_dir(root)
    if idir is None:
        raise MtdtlError(f"irmas: no instrument folders ({', '.join(INSTRUMENTS)}) found in {root} or its "
                         f"subfolders {[c for c in _CANDIDATE_DIRS if c]}; "
                         "expected <root>/<instr>/[<instr>][<genre>]NNNN__K.wav")
    skipped: list[SkippedFile] = []
    rows = []
    n_unparsed = 0
    for instr in INSTRUMENTS:
        if not (idir / instr).is_dir():
            continue
        for r in scan_audio(idir / instr, relative_to=root):
            parts = r.split("/")
            if parts[-2] != instr:
                skipped.append(SkippedFile(r, "not directly inside an instrument folder"))
                continue
            stem = os.path.splitext(parts[-1])[0]
            info = parse_irmas_name(stem)
            if info is None:
                n_unparsed += 1
                rows.append((stem, r, instr, f"file:{stem}", "", ""))
                continue
            if info["instrument"] != instr:
                log.warning("irmas: %s carries the tag [%s] but lies in the %s folder; labelled %s",
                            r, info["instrument"], instr, instr)
            rows.append((stem, r, instr, info["song"], info["genre"], info["drums"]))
    if n_unparsed:
        log.warning("irmas: %d file names do not follow [instr][genre]NNNN__K; each is its own song group",
                    n_unparsed)
    cand = pd.DataFrame(rows, columns=["track_id", "relpath", "label", "group", "genre", "drums"])
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    return finalize(name="irmas", task="classification", root=root, candidates=cand, key_fn=tail_key(2),
                    fallback=SplitSpec(stratify="label", group="group", group_name="song",
                                       test_size=test_size, seed=seed),
                    split_list=split_list, skipped=skipped, searched=idir, meta={"instruments_dir": str(idir)})
