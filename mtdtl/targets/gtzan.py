"""GTZAN genre collection (Tzanetakis & Cook, 2002): 1,000 30-second clips, 10 genres.

Layout as distributed (``genres.tar.gz``)::

    <root>/genres/<genre>/<genre>.000NN.au

``root`` may be the folder holding ``genres/`` or ``genres/`` itself; the Kaggle re-release
(``Data/genres_original/<genre>/<genre>.000NN.wav``) and mirdata's copy
(``gtzan_genre/genres/...``, also from ``~/mir_datasets``) are found too. The label is the genre
folder. Artists are not part of the distribution.

Split: the paper uses the fault-filtered, artist-filtered split of Kereliuk et al. (2015) /
Sturm (Table 5), distributed by the study as ``GTZAN_filtered_dataset.info`` (478 train /
211 valid / 311 test; the paper trains on train + valid) and shipped with mtdtl as the study
list ``gtzan-filtered``, used by default (``split_list="study"``). Rows
(``/genres/disco/disco.00038.au``) are matched on ``<genre>/<file stem>``, so ``.au`` and
``.wav`` copies both match. Your own list (a path) replaces it. With ``split_list=None``, a
stratified random 80 / 20 split is drawn (the repetitions are then stratified folds) and a
warning says that this is not the paper's protocol (GTZAN has repeated artists and duplicates,
so random splits overestimate accuracy).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (find_first, SkippedFile, SplitSpec, TargetDataset, check_files, finalize, require_dir,
                                scan_audio, tail_key)

__all__ = ["GENRES", "load_gtzan"]

log = get_logger(__name__)

#: The ten GTZAN genres (folder names).
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
#: Where the genre folders are looked for under ``root``, in order: the root itself, the
#: distribution's ``genres/``, Kaggle's ``Data/genres_original/``, and mirdata's ``gtzan_genre``
#: (``root`` = its data home, or the folder above it: mirdata's index paths read
#: ``gtzan_genre/genres/<genre>/<genre>.000NN.wav`` under ``~/mir_datasets/gtzan_genre``).
_CANDIDATE_DIRS = ("", "genres", "genres_original", "Data/genres_original", "gtzan/genres", "GTZAN/genres",
                   "gtzan_genre/genres", "gtzan_genre/gtzan_genre/genres", "gtzan_genre")


def _genres_dir(root: Path) -> Path | None:
    return find_first(root, _CANDIDATE_DIRS, containing=GENRES)


def load_gtzan(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", seed: int = 0,
               test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load GTZAN from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding ``genres/`` (or ``genres/`` itself).
    split_list : "study", path-like or None
        ``"study"`` (default): the study's fault-filtered split shipped with mtdtl (the paper's
        protocol); a path: your own list (``reference/*.info`` format); None: no list, a
        stratified random split is drawn (warning).
    seed, test_size : int, float
        Fallback split.
    check : str
        File check (:data:`mtdtl.targets.base.CHECK_MODES`).
    progress : bool
        Progress bar while checking many files.
    """
    root = require_dir(root, "gtzan")
    gdir = _genres_dir(root)
    if gdir is None:
        raise MtdtlError(f"gtzan: no genre folders ({', '.join(GENRES)}) found in {root} or its "
                         f"subfolders {[c for c in _CANDIDATE_DIRS if c]}; "
                         "expected <root>/genres/<genre>/<genre>.000NN.au")
    rel = scan_audio(gdir, relative_to=root)
    skipped: list[SkippedFile] = []
    rows = []
    base_depth = len(gdir.relative_to(root).parts)
    for r in rel:
        parts = r.split("/")
        if len(parts) != base_depth + 2:
            skipped.append(SkippedFile(r, "not directly inside a genre folder"))
            continue
        genre = parts[-2]
        if genre not in GENRES:
            log.warning("gtzan: %s is in an unknown genre folder %r; kept with that label", r, genre)
        rows.append((os.path.splitext(parts[-1])[0], r, genre))
    cand = pd.DataFrame(rows, columns=["track_id", "relpath", "label"])
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    cand["group"] = ""
    if split_list is None:
        log.warning("gtzan: no split list (split_list=None), drawing a stratified random split; the paper's "
                    "protocol uses the fault-filtered split, the default split_list='study'")
    return finalize(name="gtzan", task="classification", root=root, candidates=cand, key_fn=tail_key(2),
                    fallback=SplitSpec(stratify="label", test_size=test_size, seed=seed), split_list=split_list,
                    skipped=skipped, searched=gdir, meta={"genres_dir": str(gdir)})
