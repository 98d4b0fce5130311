"""FMA: A Dataset for Music Analysis (Defferrard et al., 2017), top-genre task of FMA-medium.

Layout as distributed (``fma_metadata.zip``, ``fma_medium.zip``)::

    <root>/fma_metadata/tracks.csv
    <root>/fma_medium/NNN/NNNNNN.mp3        (NNN = first three digits of the 6-digit track id)

``tracks.csv`` has a two-level column header followed by a ``track_id`` row (read it as FMA's
own ``utils.load`` does: ``pd.read_csv(path, index_col=0, header=[0, 1])``). Columns used:
``('track', 'genre_top')`` (label, 16 genres in medium), ``('set', 'subset')`` (``small`` /
``medium`` / ``large``; medium holds small), ``('set', 'split')`` (``training`` / ``validation``
/ ``test``), ``('artist', 'id')`` (group), and ``('artist', 'name')``, ``('track', 'title')``
when present.

Split: the dataset's own artist-filtered split (Table 5: 19,922 / 2,505 / 2,573), which is also
the study's ``FMA_filtered_dataset.info``, shipped with mtdtl as ``fma-medium`` and used by
default; rows (``fma_medium_22k/000/000002.mp3``) are matched on the numeric track id. With
``split_list=None`` the dataset's own split from ``tracks.csv`` is used; if that is missing too,
an artist-filtered random split stratified by genre is drawn (and the repetitions are
artist-grouped stratified folds).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.base import (SkippedFile, SplitSpec, TargetDataset, check_files, finalize, find_first,
                                int_stem_key, require_dir, scan_audio)

__all__ = ["read_fma_tracks", "load_fma", "FMA_SUBSETS"]

log = get_logger(__name__)

#: FMA subsets, each holding the previous ones.
FMA_SUBSETS = ("small", "medium", "large")
_SPLITS = {"training": "train", "validation": "valid", "test": "test"}
_REQUIRED = (("track", "genre_top"), ("set", "subset"), ("set", "split"), ("artist", "id"))


def read_fma_tracks(path: str | os.PathLike) -> pd.DataFrame:
    """Read FMA's ``tracks.csv`` into a flat table.

    Returns
    -------
    pandas.DataFrame
        Indexed by integer ``track_id``: ``genre_top``, ``subset``, ``split`` (FMA's words),
        ``artist_id`` and, when present, ``artist_name`` and ``title``.
    """
    path = Path(path)
    if not path.is_file():
        raise MtdtlError(f"fma: metadata file {path} not found")
    try:
        raw = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise MtdtlError(f"fma: cannot parse {path} as FMA's tracks.csv (two header rows and a "
                         f"track_id row): {exc}") from None
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise MtdtlError(f"fma: {path} lacks the columns {missing}; is it fma_metadata/tracks.csv?")
    try:
        index = pd.to_numeric(pd.Index(raw.index), errors="raise").astype("int64")
    except (ValueError, TypeError):
        raise MtdtlError(f"fma: {path}: the first column must hold integer track ids "
                         f"(found {raw.index[0]!r}); is it fma_metadata/tracks.csv?") from None
    out = pd.DataFrame({
        "genre_top": raw[("track", "genre_top")].to_numpy(),
        "subset": raw[("set", "subset")].to_numpy(),
        "split": raw[("set", "split")].to_numpy(),
        "artist_id": raw[("artist", "id")].to_numpy(),
    }, index=pd.Index(index, name="track_id"))
    for col, name in ((("artist", "name"), "artist_name"), (("track", "title"), "title")):
        if col in raw.columns:
            out[name] = raw[col].to_numpy()
    return out


def load_fma(root: str | os.PathLike, *, split_list: str | os.PathLike | None = "study", subset: str = "medium",
             audio_dir: str | os.PathLike | None = None, metadata: str | os.PathLike | None = None,
             seed: int = 0, test_size: float = 0.2, check: str = "header", progress: bool = True) -> TargetDataset:
    """Load the FMA top-genre task (FMA-medium by default) from its own layout.

    Parameters
    ----------
    root : path-like
        Folder holding ``fma_metadata/`` and ``fma_medium/``.
    split_list : "study", path-like or None
        ``"study"`` (default): the study's list shipped with mtdtl; a path: a list in
        ``reference/FMA_filtered_dataset.info`` format (matched on track id); None: no list.
    subset : str
        ``"small"``, ``"medium"`` (the paper) or ``"large"``: tracks of that subset (and the
        smaller ones it holds) with a top genre.
    audio_dir, metadata : path-like, optional
        Override ``<root>/fma_<subset>`` (or ``fma_large`` / ``fma_full``) and
        ``<root>/fma_metadata/tracks.csv``.
    seed, test_size, check, progress
        Fallback split, file check and progress bar (see :func:`mtdtl.targets.gtzan.load_gtzan`).
    """
    if subset not in FMA_SUBSETS:
        raise MtdtlError(f"fma: unknown subset {subset!r}; use one of {FMA_SUBSETS}")
    root = require_dir(root, "fma")
    meta_csv = Path(metadata) if metadata else find_first(root, ["fma_metadata/tracks.csv", "tracks.csv"], kind="file")
    if meta_csv is None:
        raise MtdtlError(f"fma: {root}/fma_metadata/tracks.csv not found; unpack fma_metadata.zip there "
                         "or pass metadata=")
    adir_names = [f"fma_{subset}"] + [f"fma_{s}" for s in FMA_SUBSETS[FMA_SUBSETS.index(subset) + 1:]] + ["fma_full"]
    adir = Path(audio_dir) if audio_dir else find_first(root, adir_names)
    if adir is None or not adir.is_dir():
        raise MtdtlError(f"fma: audio folder not found (looked for {adir_names} in {root}); pass audio_dir=")
    meta = read_fma_tracks(meta_csv)
    rank = {s: i for i, s in enumerate(FMA_SUBSETS)}
    in_subset = meta["subset"].map(rank).le(rank[subset]) & meta["genre_top"].notna()
    sel = meta[in_subset]

    files = scan_audio(adir, relative_to=root)
    skipped: list[SkippedFile] = []
    by_id: dict[int, str] = {}
    for r in files:
        stem = os.path.splitext(r.rsplit("/", 1)[-1])[0]
        if not stem.isdigit():
            skipped.append(SkippedFile(r, "not an FMA track file (NNNNNN.mp3)"))
            continue
        tid = int(stem)
        if tid not in meta.index:
            skipped.append(SkippedFile(r, f"no metadata: track {tid} is not in {meta_csv.name}"))
        elif tid not in sel.index:
            skipped.append(SkippedFile(r, f"not in the {subset} subset or no top genre"))
        elif tid in by_id:
            skipped.append(SkippedFile(r, f"duplicate: {by_id[tid]} is used"))
        else:
            by_id[tid] = r
    adir_rel = os.path.relpath(adir, root).replace(os.sep, "/")
    sel = sel.reset_index()
    sel["relpath"] = sel["track_id"].map(by_id)
    sid = sel["track_id"].map(lambda t: f"{t:06d}")
    for s_ in sid[sel["relpath"].isna()]:
        skipped.append(SkippedFile(f"{adir_rel}/{s_[:3]}/{s_}.mp3", "missing file"))
    have = sel["relpath"].notna()
    sel, sid = sel[have], sid[have]
    cand = pd.DataFrame({
        "track_id": sid.to_numpy(),
        "relpath": sel["relpath"].to_numpy(),
        "label": sel["genre_top"].to_numpy(),
        "split": sel["split"].map(lambda v: _SPLITS.get(str(v), "")).to_numpy(),
        "group": sel["artist_id"].map(lambda v: "" if pd.isna(v) else str(int(v))).to_numpy(),
    })
    for extra, col in (("artist", "artist_name"), ("title", "title")):
        if col in sel.columns:
            cand[extra] = sel[col].to_numpy()
    ok, bad = check_files(root, cand["relpath"].tolist(), mode=check, progress=progress)
    skipped += bad
    cand = cand[ok]
    n_missing = sum(s.reason == "missing file" for s in skipped)
    if n_missing:
        log.warning("fma: %d tracks of the %s subset have no audio file under %s", n_missing, subset, adir)
    return finalize(name="fma", task="classification", root=root, candidates=cand, key_fn=int_stem_key,
                    fallback=SplitSpec(stratify="label", group="group", group_name="artist",
                                       test_size=test_size, seed=seed),
                    split_list=split_list, skipped=skipped,
                    own_split_method=f"dataset ({meta_csv.name} set/split, artist-filtered)", searched=adir,
                    meta={"metadata": str(meta_csv), "audio_dir": str(adir), "subset": subset})
