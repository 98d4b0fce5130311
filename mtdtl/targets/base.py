"""Target datasets: the tidy table every loader returns, the study's split lists, file checks
and the fallback splits (Kim et al. 2019, Section 4.1 and Table 5).

Every loader in :mod:`mtdtl.targets` reads one dataset from its own folder layout and returns a
:class:`TargetDataset`: one row per usable audio file (``track_id``, absolute ``path``,
``label``, ``split``, ``group``), the class names, for recommendation the play counts, and the
files it could not use (:attr:`TargetDataset.skipped`) with the reason. Loaders never decode
audio: they list files, check that each is a non-empty readable file whose first bytes look
like its format, and attach labels and splits.

Split lists
-----------
By default (``split_list="study"``) a loader uses the study's list of its target, shipped with
mtdtl (:mod:`mtdtl.targets.splits`, Table 5 / Section 4.1); a user's own list (a path) replaces
it, and ``split_list=None`` uses none (the dataset's own split or the fallback). The loader
logs which split it used. The study's lists are text files in the format of
``reference/*.info`` (shipped in a compact form of our own): one line per track,
``index<TAB>path<TAB>split<TAB>label``, with ``split`` one of ``train``, ``valid``, ``test`` or
empty (no split defined) and ``path`` relative to the dataset's root *as the study stored it*
(``/genres/disco/disco.00038.au``, ``fma_medium_22k/000/000002.mp3``,
``data/Pasodoble/113217.mp3`` ...). Because the study renamed top folders and re-encoded some
audio, rows are matched to files by a per-dataset *key*: the last path components without the
audio extension (``disco/disco.00038`` for GTZAN, ``Pasodoble/113217`` for Extended Ballroom) or
a numeric id (FMA track id, emoMusic song id). When a list is given:

- it defines the tracks: files that are not in the list are left out (:attr:`TargetDataset.unlisted`);
- list rows without a file are reported (:attr:`TargetDataset.unmatched`), not fatal; but a
  list none of whose rows matches a file found is an error (the dataset is not in the layout
  the list expects; the message names the list, the folder searched, and a listed path next
  to a found one);
- the list's split is used where it has one; where its split column is empty (Extended
  Ballroom) the dataset's fallback split is drawn over the listed tracks;
- labels come from the dataset's own metadata; the list's label fills in where the metadata
  has none, and disagreements are counted in ``meta["label_mismatches"]`` and logged.

Fixed splits and folds
----------------------
A split that comes from a list or from the dataset itself is *fixed*
(:attr:`TargetDataset.split_fixed`, named by :attr:`TargetDataset.split_name`, e.g.
``"list:gtzan-filtered"``): the paper's five repetitions all use it. Without one, the
repetitions are the folds of :func:`mtdtl.evaluation.protocol.repetition_plan` (five stratified
folds, groups kept whole); the ``split`` column then holds a random 80 / 20 train / test draw
(Section 4.4) described by the loader's :class:`SplitSpec` (stratified by the label
(``stratify``), keeping groups together (``group``: artist, song), both, or neither), for
inspection and for code that wants one split; :meth:`TargetDataset.resplit` draws it again.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.targets.lists import _SPLIT_ALIASES, STUDY, SplitList, read_split_list  # noqa: F401  (re-exported)
from mtdtl.targets.splits import study_split_list

__all__ = [
    "TASKS", "METRICS", "SPLITS", "AUDIO_EXTENSIONS", "CHECK_MODES",
    "TargetDataset", "SkippedFile", "UnmatchedRow", "SplitSpec", "SplitList", "STUDY",
    "read_split_list", "resolve_split_list", "draw_split", "check_file", "check_files", "scan_audio",
    "tail_key", "int_stem_key", "finalize", "is_mbid", "require_dir", "find_first",
]

log = get_logger(__name__)

#: Task types and the metric the paper reports for each (Section 4.1).
TASKS = ("classification", "regression", "recommendation")
METRICS = {"classification": "accuracy", "regression": "r2", "recommendation": "ndcg@500"}
#: Split names; ``""`` means "no split assigned".
SPLITS = ("train", "valid", "test")
#: File name extensions treated as audio when scanning a dataset folder (lower case).
AUDIO_EXTENSIONS = (".au", ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aif", ".aiff", ".snd")
#: File checks: ``"header"`` (exists, non-empty, readable, first bytes match the extension),
#: ``"exists"`` (exists, non-empty) or ``"none"`` (trust the listing).
CHECK_MODES = ("header", "exists", "none")

#: ``split_list="study"``: the study's list shipped with mtdtl (:mod:`mtdtl.targets.splits`).
_HEADER_BYTES = 4096
_REQUIRED_COLUMNS = ("track_id", "path", "label", "split", "group")


# --------------------------------------------------------------------------------------------
# small records
@dataclass(frozen=True)
class SkippedFile:
    """A file (or metadata entry) a loader could not use, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class UnmatchedRow:
    """A row of a split list for which no file was found."""

    line: int
    path: str
    split: str
    label: str


@dataclass(frozen=True)
class SplitSpec:
    """How the fallback split is drawn: random ``test_size`` fraction to ``test``, rest ``train``.

    Parameters
    ----------
    stratify : str or None
        Column whose values are kept in the same proportion in both parts (``"label"``).
    group : str or None
        Column whose values never cross the split (``"group"``: artist, song). Empty
        group values count as one group per track.
    test_size : float
        Fraction of tracks in ``test`` (0.2: the paper's 80 / 20, Section 4.4).
    seed : int
        Seed of the draw.
    group_name : str
        What a group is, for the description (``"artist"``, ``"song"``).
    """

    stratify: str | None = None
    group: str | None = None
    test_size: float = 0.2
    seed: int = 0
    group_name: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < float(self.test_size) < 1.0:
            raise MtdtlError(f"test_size must be between 0 and 1 (exclusive), got {self.test_size}")

    @property
    def description(self) -> str:
        what = {(None, None): "random", ("label", None): "stratified random"}.get(
            (self.stratify, self.group))
        if what is None:
            parts = []
            if self.group:
                parts.append(f"{self.group_name or self.group}-filtered")
            if self.stratify:
                parts.append(f"stratified by {self.stratify}")
            what = ", ".join(parts) + " random"
        return f"{what} {1 - self.test_size:.0%}/{self.test_size:.0%} train/test, seed {self.seed}"


# --------------------------------------------------------------------------------------------
# the dataset
@dataclass(frozen=True, eq=False)
class TargetDataset:
    """One target dataset, loaded: tracks with labels and splits, and what was left out.

    Parameters
    ----------
    name : str
        Registry name (``"gtzan"``, ``"demo:genre"``, ...).
    task : str
        ``"classification"``, ``"regression"`` or ``"recommendation"``.
    metric : str
        ``"accuracy"``, ``"r2"`` or ``"ndcg@500"``.
    root : pathlib.Path
        Folder the dataset was read from.
    tracks : pandas.DataFrame
        One row per usable audio file, sorted by ``track_id``: ``track_id`` (str, unique),
        ``path`` (absolute, str), ``label`` (str for classification, float for regression,
        NaN for recommendation), ``split`` (``"train"``, ``"valid"``, ``"test"``, or ``""`` when
        none), ``group`` (artist or song id where known, else ``""``), ``relpath`` (relative to
        ``root``) and dataset-specific columns.
    classes : tuple of str
        Class names, sorted (classification only).
    interactions : pandas.DataFrame or None
        Recommendation only: ``user_id``, ``track_id``, ``play_count`` (int), restricted to
        ``tracks``; the items' ``split`` is the cold-start hold-out.
    skipped : list of SkippedFile
        Files or metadata entries that could not be used (missing, empty, corrupt, unlabelled).
    unmatched : list of UnmatchedRow
        Split-list rows without a file.
    unlisted : list of str
        Track ids found on disk but absent from the split list (left out).
    split_method : str
        Where the splits come from, in words.
    split_name : str
        Short name of a fixed split (``"list:gtzan-filtered"``, ``"list:<file stem>"``,
        ``"dataset:fma"``); ``""`` when the split was drawn.
    split_fixed : bool
        Whether every track's split comes from a list or from the dataset (then the paper's
        repetitions all use it); False when any split was drawn (then repetitions are folds).
    split_list : str
        Name of the list that selected the tracks (``"eballroom"``), also when it has no split;
        ``""`` without a list.
    fallback : SplitSpec
        The documented fallback split, used by :meth:`resplit`.
    meta : dict
        Loader details (files, counts, label mismatches, warnings).
    """

    name: str
    task: str
    metric: str
    root: Path
    tracks: pd.DataFrame
    classes: tuple[str, ...] = ()
    interactions: pd.DataFrame | None = None
    skipped: list[SkippedFile] = field(default_factory=list)
    unmatched: list[UnmatchedRow] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    split_method: str = ""
    split_name: str = ""
    split_fixed: bool = False
    split_list: str = ""
    fallback: SplitSpec = field(default_factory=SplitSpec)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise MtdtlError(f"target {self.name!r}: unknown task type {self.task!r}; use one of {TASKS}")
        if self.metric != METRICS[self.task]:
            raise MtdtlError(f"target {self.name!r}: metric {self.metric!r} does not fit task {self.task!r}")
        missing = [c for c in _REQUIRED_COLUMNS if c not in self.tracks.columns]
        if missing:
            raise MtdtlError(f"target {self.name!r}: tracks table lacks columns {missing}")
        if self.tracks["track_id"].duplicated().any():
            dup = self.tracks.loc[self.tracks["track_id"].duplicated(), "track_id"].iloc[0]
            raise MtdtlError(f"target {self.name!r}: duplicated track id {dup!r}")
        bad = set(self.tracks["split"].unique()) - set(SPLITS) - {""}
        if bad:
            raise MtdtlError(f"target {self.name!r}: unknown split values {sorted(bad)}")
        if self.task == "recommendation" and self.interactions is None:
            raise MtdtlError(f"target {self.name!r}: a recommendation target needs interactions")

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.tracks)

    def subset(self, split: str | Sequence[str]) -> pd.DataFrame:
        """Rows of :attr:`tracks` in ``split`` (a name or several, e.g. ``("train", "valid")``)."""
        splits = [split] if isinstance(split, str) else list(split)
        unknown = set(splits) - set(SPLITS) - {""}
        if unknown:
            raise MtdtlError(f"unknown split {sorted(unknown)}; use {SPLITS}")
        return self.tracks[self.tracks["split"].isin(splits)]

    def split_counts(self) -> dict[str, int]:
        """Tracks per split (``""`` for tracks without one), in the order train, valid, test, ''."""
        counts = self.tracks["split"].value_counts()
        return {s: int(counts[s]) for s in (*SPLITS, "") if s in counts.index}

    def class_counts(self) -> dict[str, int]:
        """Tracks per class (classification), in the order of :attr:`classes`."""
        counts = self.tracks["label"].value_counts()
        return {c: int(counts.get(c, 0)) for c in self.classes}

    def group_ids(self) -> np.ndarray | None:
        """Group of every track (artist, song, work) for folds, or None when no track has one.

        Tracks with an empty group are each their own group.
        """
        g = self.tracks["group"].fillna("").astype(str).to_numpy().astype(object)
        empty = (g == "") | (g == "nan")
        if empty.all():
            return None
        g[empty] = np.array([f"\x00track{i}" for i in np.flatnonzero(empty)], dtype=object)
        return g

    def resplit(self, seed: int, *, test_size: float | None = None) -> "TargetDataset":
        """The same tracks with the fallback split drawn again (``train`` / ``test``).

        The paper's repetitions use folds instead (:func:`mtdtl.evaluation.protocol.repetition_plan`);
        this gives one random split, e.g. for a quick look.
        """
        spec = replace(self.fallback, seed=int(seed),
                       test_size=self.fallback.test_size if test_size is None else float(test_size))
        tracks = self.tracks.copy()
        tracks["split"] = draw_split(tracks, spec)
        return replace(self, tracks=tracks, fallback=spec, split_method=f"fallback: {spec.description}",
                       split_name="", split_fixed=False)

    # ---------------------------------------------------------------- report
    def summary(self) -> str:
        """A few lines: size, splits, classes, what was skipped or unmatched and why."""
        lines = [f"target {self.name}: {self.task}, metric {self.metric}, {len(self)} tracks, root {self.root}"]
        sc = self.split_counts()
        lines.append("  splits: " + ", ".join(f"{k or 'none'} {v}" for k, v in sc.items())
                     + f" ({self.split_method})")
        lines.append("  repetitions: " + (f"the fixed split {self.split_name}" if self.split_fixed
                                          else "folds (no fixed split)"))
        if self.task == "classification":
            cc = self.class_counts()
            lines.append(f"  {len(self.classes)} classes: " + ", ".join(f"{k} {v}" for k, v in cc.items()))
        elif self.task == "regression" and len(self):
            y = self.tracks["label"].astype(float)
            lines.append(f"  label: mean {y.mean():.3f}, std {y.std():.3f}, range [{y.min():.3f}, {y.max():.3f}]")
        if self.interactions is not None:
            it = self.interactions
            lines.append(f"  interactions: {len(it)} (user, track) pairs, {it['user_id'].nunique()} users, "
                         f"{it['track_id'].nunique()} tracks, {int(it['play_count'].sum())} plays")
        if self.skipped:
            reasons = pd.Series([_reason_kind(s.reason) for s in self.skipped]).value_counts()
            lines.append(f"  skipped {len(self.skipped)}: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
            for s in self.skipped[:3]:
                lines.append(f"    {s.path}: {s.reason}")
        if self.unmatched:
            lines.append(f"  listed rows without a file (split list or labels table): {len(self.unmatched)}"
                         + "".join(f"\n    line {u.line}: {u.path}" for u in self.unmatched[:3]))
        if self.unlisted:
            lines.append(f"  files not in the split list (left out): {len(self.unlisted)}")
        if self.meta.get("label_mismatches"):
            lines.append(f"  labels differing from the split list: {self.meta['label_mismatches']}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"TargetDataset(name={self.name!r}, task={self.task!r}, tracks={len(self)}, "
                f"splits={self.split_counts()}, skipped={len(self.skipped)})")


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


# --------------------------------------------------------------------------------------------
# split lists
def resolve_split_list(split_list, target: str) -> SplitList | None:
    """The split list a loader uses.

    Parameters
    ----------
    split_list : "study", path-like, SplitList or None
        ``"study"`` (the loaders' default): the study's list of ``target`` shipped with mtdtl
        (:func:`mtdtl.targets.splits.study_split_list`; None for targets without one); a path:
        a list in ``reference/*.info`` format (:func:`read_split_list`); None: no list.
    target : str
        Registry name of the target (``"gtzan"``, ...).
    """
    if split_list is None or isinstance(split_list, SplitList):
        return split_list
    if isinstance(split_list, str) and split_list == STUDY:
        sl = study_split_list(target)
        if sl is None:
            return None
        return replace(sl, description=sl.description or f"the study's split list {sl.name} (shipped with mtdtl)")
    path = Path(split_list)
    return SplitList(name=path.stem, source=str(path), rows=read_split_list(path),
                     description=f"split list {path.name}")


def tail_key(n: int) -> Callable[[str], str]:
    """Key function: the last ``n`` components of a path, without an audio extension.

    ``tail_key(2)("/genres/disco/disco.00038.au") == "disco/disco.00038"``.
    """

    def key(p: str) -> str:
        parts = PurePosixPath(str(p).replace("\\", "/").strip("/")).parts[-n:]
        last = parts[-1]
        stem, ext = os.path.splitext(last)
        if ext.lower() in AUDIO_EXTENSIONS:
            last = stem
        return "/".join((*parts[:-1], last))

    key.__doc__ = f"last {n} path component(s) without the audio extension"
    return key


def int_stem_key(p: str) -> str:
    """Key function: the file name's numeric stem as an integer string (``000002.mp3`` -> ``2``).

    Non-numeric stems are returned unchanged.
    """
    stem = tail_key(1)(p)
    return str(int(stem)) if stem.isdigit() else stem


# --------------------------------------------------------------------------------------------
# files
def _header_ok(ext: str, head: bytes) -> bool:
    """Whether the first bytes of a file look like the format its extension names."""
    if ext == ".wav":
        return head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE"
    if ext in (".au", ".snd"):
        return head[:4] == b".snd"
    if ext == ".flac":
        return head[:4] == b"fLaC" or head[:3] == b"ID3"
    if ext in (".ogg", ".opus"):
        return head[:4] == b"OggS"
    if ext in (".aif", ".aiff"):
        return head[:4] == b"FORM"
    if ext == ".m4a":
        return head[4:8] == b"ftyp"
    if ext == ".mp3":
        if head[:3] == b"ID3" or head[:4] == b"RIFF":
            return True
        # an MPEG audio frame sync (11 set bits) somewhere in the first bytes
        arr = np.frombuffer(head, dtype=np.uint8)
        hits = np.flatnonzero(arr[:-1] == 0xFF)
        return bool(np.any((arr[hits + 1] & 0xE0) == 0xE0)) if hits.size else False
    return True


def check_file(path: str | os.PathLike, *, mode: str = "header") -> str | None:
    """Why ``path`` is not a usable audio file, or ``None`` when it looks fine.

    Parameters
    ----------
    path : path-like
        The file.
    mode : str
        ``"header"``: exists, non-empty, readable and its first bytes match its extension
        (RIFF/WAVE, ``.snd``, ``fLaC``, ``OggS``, ID3 or an MPEG frame sync, ...); ``"exists"``:
        exists and non-empty; ``"none"``: no check. Audio is never decoded.
    """
    if mode not in CHECK_MODES:
        raise MtdtlError(f"unknown file check {mode!r}; use one of {CHECK_MODES}")
    if mode == "none":
        return None
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return "missing file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not p.is_file():
        return "not a file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if mode == "exists":
        return None
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    ext = p.suffix.lower()
    if not _header_ok(ext, head):
        return f"corrupt: does not start like a {ext or 'known audio'} file"
    return None


def check_files(root: Path, relpaths: Sequence[str], *, mode: str = "header",
                progress: bool = True) -> tuple[np.ndarray, list[SkippedFile]]:
    """:func:`check_file` on ``root / relpath`` for each path.

    Returns
    -------
    ok : np.ndarray [shape=(n,)] bool
    skipped : list of SkippedFile
        The files that failed, with the reason (``path`` is the relative path).
    """
    ok = np.ones(len(relpaths), dtype=bool)
    skipped: list[SkippedFile] = []
    if mode == "none":
        return ok, skipped
    it = tqdm(relpaths, desc="checking files", unit="file", disable=not progress or len(relpaths) < 2000)
    for i, rel in enumerate(it):
        reason = check_file(root / rel, mode=mode)
        if reason is not None:
            ok[i] = False
            skipped.append(SkippedFile(str(rel), reason))
    for s in skipped[:5]:
        log.warning("skipping %s: %s", root / s.path, s.reason)
    if len(skipped) > 5:
        log.warning("skipping %d more files under %s", len(skipped) - 5, root)
    return ok, skipped


def scan_audio(folder: Path, *, recursive: bool = True, extensions: Iterable[str] = AUDIO_EXTENSIONS,
               relative_to: Path | None = None) -> list[str]:
    """Audio files under ``folder`` as sorted POSIX paths relative to ``relative_to`` (default
    ``folder``). Hidden files (``.foo``, macOS ``._foo.wav``) are ignored."""
    folder = Path(folder)
    base = Path(relative_to) if relative_to is not None else folder
    exts = {e.lower() for e in extensions}
    out = []
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in exts:
                continue
            out.append(Path(dirpath, fn).relative_to(base).as_posix())
    return sorted(out)


# --------------------------------------------------------------------------------------------
# splits
def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def draw_split(tracks: pd.DataFrame, spec: SplitSpec) -> np.ndarray:
    """Draw a ``train`` / ``test`` split of ``tracks`` as described by ``spec``.

    - neither ``stratify`` nor ``group``: a random ``test_size`` fraction of tracks;
    - ``stratify`` only: that fraction of every class (rounded; classes of 2+ tracks get at
      least one track on each side);
    - ``group`` only: whole groups are drawn at random until ``test`` holds the fraction;
    - both: :class:`sklearn.model_selection.StratifiedGroupKFold` with ``round(1 / test_size)``
      folds, first fold as ``test`` (as ``group`` only when there are fewer groups than folds
      or every class has fewer tracks than folds).

    Returns
    -------
    np.ndarray [shape=(len(tracks),)] object
        ``"train"`` or ``"test"`` per row, deterministic given ``spec.seed``.
    """
    n = len(tracks)
    out = np.full(n, "train", dtype=object)
    if n == 0:
        return out
    if n == 1:
        return out
    rng = np.random.default_rng(spec.seed)
    strata = None if spec.stratify is None else tracks[spec.stratify].astype(str).to_numpy()
    groups = None
    if spec.group is not None:
        g = tracks[spec.group].astype(str).to_numpy().copy()
        empty = (g == "") | (g == "nan")
        g[empty] = np.array([f"\x00track{i}" for i in np.flatnonzero(empty)], dtype=object)
        groups = g
    if groups is None and strata is None:
        perm = rng.permutation(n)
        out[perm[:max(1, _round_half_up(n * spec.test_size))]] = "test"
        return out
    if groups is None:
        for c in np.unique(strata):
            idx = np.flatnonzero(strata == c)
            k = _round_half_up(len(idx) * spec.test_size)
            if len(idx) >= 2:
                k = min(max(k, 1), len(idx) - 1)
            out[rng.permutation(idx)[:k]] = "test"
        return out
    uniq, inv = np.unique(groups, return_inverse=True)
    n_splits = max(2, _round_half_up(1.0 / spec.test_size))
    largest_class = int(np.unique(strata, return_counts=True)[1].max()) if strata is not None else 0
    if strata is not None and len(uniq) >= n_splits and largest_class >= n_splits:
        # (scikit-learn refuses when every class has fewer tracks than folds: then whole groups
        # are drawn without stratification, below)
        from sklearn.model_selection import StratifiedGroupKFold

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=spec.seed % (2**32))
            _, test = next(cv.split(np.zeros(n), strata, groups))
        out[test] = "test"
        return out
    order = rng.permutation(len(uniq))
    sizes = np.bincount(inv, minlength=len(uniq))
    target = n * spec.test_size
    chosen, total = [], 0
    for gi in order:
        if total >= target or (chosen and total + sizes[gi] - target > target - total):
            break
        chosen.append(gi)
        total += sizes[gi]
    if len(chosen) == len(uniq):  # never put everything in test
        chosen = chosen[:-1]
    out[np.isin(inv, chosen)] = "test"
    return out


# --------------------------------------------------------------------------------------------
# the common last step of every loader
def finalize(*, name: str, task: str, root: Path, candidates: pd.DataFrame, key_fn: Callable[[str], str],
             fallback: SplitSpec, split_list: str | os.PathLike | SplitList | None = None,
             skipped: Sequence[SkippedFile] = (),
             own_split_method: str | None = None, interactions: pd.DataFrame | None = None,
             meta: dict | None = None, drop_unlabelled: bool = True,
             searched: Path | None = None) -> TargetDataset:
    """Attach the split list (if any), labels and splits, and build the :class:`TargetDataset`.

    Parameters
    ----------
    candidates : pandas.DataFrame
        Usable files found by the loader: ``track_id``, ``relpath`` (relative to ``root``),
        ``label`` (NaN / ``""`` when unknown), ``group``, optionally ``split`` (the dataset's
        own split, ``""`` when none) and any extra columns.
    key_fn : callable
        Maps a relative path (of a file, or of a split-list row) to its matching key.
    split_list : "study", path-like, SplitList or None
        The list to apply (:func:`resolve_split_list`, with ``name`` as the target).
    skipped : sequence of SkippedFile
        What the loader already set aside (unreadable files, no metadata ...), with relative
        paths: split-list rows matching them are reported there, not as unmatched.
    own_split_method : str or None
        Description of the dataset's own split when ``candidates`` carries one.
    searched : pathlib.Path, optional
        The folder the loader scanned for audio (default ``root``), for messages.

    Raises
    ------
    MtdtlError
        With a split list, when none of its rows matches a file found (a file in ``candidates``
        or one set aside in ``skipped`` other than as missing): the dataset is not in the
        layout the list expects. The message names the list and the folder searched and gives
        a listed path next to a found one.
    """
    meta = dict(meta or {})
    skipped = list(skipped)
    cand = candidates.copy()
    for col, default in (("label", np.nan), ("group", ""), ("split", "")):
        if col not in cand.columns:
            cand[col] = default
    cand["group"] = cand["group"].fillna("").astype(str)
    cand["split"] = cand["split"].fillna("").astype(str)
    cand["track_id"] = cand["track_id"].astype(str)
    if cand["track_id"].duplicated().any():
        dup = cand["track_id"].duplicated(keep="first")
        for rel, tid in zip(cand.loc[dup, "relpath"], cand.loc[dup, "track_id"]):
            skipped.append(SkippedFile(str(rel), f"duplicate: another file of track {tid} is used"))
        cand = cand[~dup]
    cand["label"] = _coerce_labels(cand["label"], task)

    unmatched: list[UnmatchedRow] = []
    unlisted: list[str] = []
    has_own = (cand["split"] != "").any()
    split_method = own_split_method if has_own else ""
    split_name = f"dataset:{name}" if has_own else ""
    sl = resolve_split_list(split_list, name)
    list_name = ""
    if sl is not None:
        split_list = sl.source
        list_name = sl.name
        lst = sl.rows.copy()
        lst["key"] = lst["path"].map(key_fn)
        dupkey = lst["key"].duplicated(keep=False)
        if dupkey.any():
            rows = lst[dupkey].head(2)
            raise MtdtlError(f"split list {split_list}: lines {rows['line'].tolist()} name the same track "
                             f"{rows['key'].iloc[0]!r}")
        cand["_key"] = cand["relpath"].map(key_fn)
        kdup = cand["_key"].duplicated(keep="first")
        if kdup.any():
            for rel, k in zip(cand.loc[kdup, "relpath"], cand.loc[kdup, "_key"]):
                skipped.append(SkippedFile(str(rel), f"duplicate: another file of {k} is used"))
            cand = cand[~kdup]
        known = set(cand["_key"]) | {key_fn(s.path) for s in skipped}
        listed = set(lst["key"])
        on_disk = [s.path for s in skipped if not s.reason.startswith("missing file")]
        if not cand["_key"].isin(listed).any() and not any(key_fn(p) in listed for p in on_disk):
            raise _no_match_error(name=name, split_list=split_list, lst=lst, root=Path(root),
                                  searched=Path(searched) if searched is not None else Path(root),
                                  found=cand["relpath"].astype(str).tolist() + on_disk, key_fn=key_fn)
        for row in lst[~lst["key"].isin(known)].itertuples():
            unmatched.append(UnmatchedRow(int(row.line), row.path, row.split, row.label))
        in_list = cand["_key"].isin(set(lst["key"]))
        unlisted = sorted(cand.loc[~in_list, "track_id"].tolist())
        cand = cand[in_list].merge(lst[["key", "split", "label", "line"]].rename(
            columns={"key": "_key", "split": "_lsplit", "label": "_llabel", "line": "_lline"}), on="_key", how="left")
        # labels: the dataset's own, the list's where there is none; count disagreements
        llabel = _list_labels(cand, task, split_list)
        own = cand["label"]
        have_own = own.notna() & (own.astype(str) != "")
        have_list = llabel.notna()
        if task == "regression":
            differ = have_own & have_list & (np.abs(own.astype(float) - llabel.astype(float)) > 1e-3)
        else:
            differ = have_own & have_list & (own.astype(str) != llabel.astype(str))
        n_differ = int(differ.sum())
        meta["label_mismatches"] = n_differ
        if n_differ:
            ex = cand[differ].iloc[0]
            log.warning("%s: %d labels differ from the split list %s (e.g. %s: %r here, %r in the list, "
                        "line %d); the dataset's own labels are kept", name, n_differ, split_list,
                        ex["relpath"], ex["label"], llabel[differ].iloc[0], ex["_lline"])
        if task != "recommendation":
            cand["label"] = own.where(have_own, llabel)
        # splits: the list's where it has one
        has = cand["_lsplit"] != ""
        cand["split"] = np.where(has, cand["_lsplit"], "")
        split_method = sl.description if has.any() else ""
        split_name = f"list:{sl.name}" if has.any() else ""
        cand = cand.drop(columns=["_key", "_lsplit", "_llabel", "_lline"])
        if unmatched:
            log.warning("%s: %d of %d rows of %s have no file under %s (e.g. line %d: %s)", name, len(unmatched),
                        len(lst), split_list, root, unmatched[0].line, unmatched[0].path)
        if unlisted:
            log.info("%s: %d files are not in %s and are left out", name, len(unlisted), split_list)

    if task != "recommendation" and drop_unlabelled:
        nolab = cand["label"].isna() | (cand["label"].astype(str) == "")
        for rel in cand.loc[nolab, "relpath"]:
            skipped.append(SkippedFile(str(rel), "no label"))
        cand = cand[~nolab]

    need = cand["split"] == ""
    split_fixed = bool(split_name) and not need.any()
    if need.any():
        drawn = draw_split(cand[need], fallback)
        cand.loc[need, "split"] = drawn
        how = f"fallback: {fallback.description}"
        split_method = how if not split_method else f"{split_method}; {how} where it had none"
        split_name = ""
    if sl is not None and not split_fixed:
        split_method = f"tracks from {sl.description}; {split_method}"

    cand = cand.sort_values("track_id", kind="stable").reset_index(drop=True)
    cand.insert(1, "path", [os.path.abspath(os.path.join(root, r)) for r in cand["relpath"]])
    front = ["track_id", "path", "label", "split", "group", "relpath"]
    cand = cand[front + [c for c in cand.columns if c not in front]]
    if task == "classification":
        cand["label"] = cand["label"].astype(str)
        classes = tuple(sorted(cand["label"].unique().tolist()))
    else:
        classes = ()
        if task == "regression":
            cand["label"] = cand["label"].astype(float)
    if interactions is not None:
        interactions = interactions[interactions["track_id"].isin(set(cand["track_id"]))].reset_index(drop=True)
    if split_fixed:
        log.info("%s: %d tracks, split: %s (%s); the repetitions use this split", name, len(cand),
                 split_name, split_method)
    else:
        log.info("%s: %d tracks, no fixed split (%s); the repetitions use folds", name, len(cand), split_method)
    return TargetDataset(name=name, task=task, metric=METRICS[task], root=Path(root), tracks=cand,
                         classes=classes, interactions=interactions, skipped=skipped, unmatched=unmatched,
                         unlisted=unlisted, split_method=split_method, split_name=split_name,
                         split_fixed=split_fixed, split_list=list_name, fallback=fallback, meta=meta)


def _no_match_error(*, name: str, split_list, lst: pd.DataFrame, root: Path, searched: Path,
                    found: Sequence[str], key_fn: Callable[[str], str]) -> MtdtlError:
    """The error of a split list none of whose rows matches a file found."""
    lp = str(lst["path"].iloc[0])
    listed = f"the list names {lp!r} (matched as {key_fn(lp)!r}, line {int(lst['line'].iloc[0])})"
    if found:
        fp = str(found[0])
        more = f", one of {len(found)} files found" if len(found) > 1 else ", the only file found"
        there = f"the folder holds {fp!r} (relative to root, matched as {key_fn(fp)!r}{more})"
    else:
        there = "no audio file was found there"
    where = str(searched) if searched == root else f"{searched} (in root {root})"
    return MtdtlError(
        f"{name}: no file matched the split list {split_list}: none of its {len(lst)} rows names a file "
        f"found under {where}. For example, {listed}; {there}. Put the dataset in the layout of "
        f"docs/targets.md ('Layouts expected') and pass that folder as root; or pass your own list "
        f"(split_list=<path>), or split_list=None to use every file found without a list.")


def _coerce_labels(labels: pd.Series, task: str) -> pd.Series:
    if task == "regression":
        return pd.to_numeric(labels, errors="coerce").astype(float)
    if task == "recommendation":
        return pd.Series(np.nan, index=labels.index, dtype=float)
    return labels.map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
                      ).astype(object)


def _list_labels(cand: pd.DataFrame, task: str, split_list) -> pd.Series:
    """The split list's labels of the matched rows: float for regression, str otherwise, NaN when empty."""
    raw = cand["_llabel"].fillna("").astype(str).str.strip()
    if task == "regression":
        vals = pd.to_numeric(raw.where(raw != ""), errors="coerce")
        bad = (raw != "") & vals.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MtdtlError(f"split list {split_list}, line {int(cand['_lline'].iloc[i])}: label "
                             f"{raw.iloc[i]!r} is not a number (this target is a regression)")
        return vals.astype(float)
    return raw.where(raw != "").astype(object)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def is_mbid(s: str) -> bool:
    """Whether ``s`` looks like a MusicBrainz identifier (a UUID)."""
    return bool(_UUID.match(str(s)))


def require_dir(root: str | os.PathLike, what: str) -> Path:
    """``root`` as a Path, or :class:`MtdtlError` when it is not an existing folder."""
    if root is None:
        raise MtdtlError(f"{what}: no root folder given; pass the folder the dataset was unpacked to")
    p = Path(root).expanduser()
    if not p.is_dir():
        raise MtdtlError(f"{what}: root folder {p} does not exist or is not a folder")
    return p


def find_first(base: Path, candidates: Sequence[str], *, kind: str = "dir",
               containing: Iterable[str] | None = None) -> Path | None:
    """The first of ``base / c`` that exists (as a folder when ``kind == "dir"``, else a file).

    With ``containing`` (folder names, e.g. the ten GTZAN genres), a folder counts only when it
    holds at least one of them: the one folder finder of every loader.
    """
    names = tuple(containing or ())
    for c in candidates:
        p = base / c if c else base
        if kind == "file":
            if p.is_file():
                return p
        elif p.is_dir() and (not names or any((p / n).is_dir() for n in names)):
            return p
    return None
