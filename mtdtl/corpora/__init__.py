"""Corpora: where audio and raw labels come from.

A built corpus is a folder (layout in ``docs/ARCHITECTURE.md``, section ``mtdtl.corpora``):
``manifest.csv``, ``audio/``, ``labels/<source>.csv`` (raw labels of the eight learning
sources), ``targets/tasks.json`` and ``targets/<task>.csv``, ``corpus.json`` and
``build_report.json``. :class:`Corpus` reads one; :func:`mtdtl.corpora.demo.build_demo_corpus`
builds the embedded demo corpus (``docs/corpus.md``).

Importing this package is light: it does not import music21 or the synthesizer.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError

__all__ = ["Corpus"]

_KEY_DTYPES = {"track_id": str, "user_id": str, "work_id": str, "tag": str, "word": str,
               "artist": str, "label": object, "split": str}


class Corpus:
    """A built corpus folder.

    Attributes
    ----------
    root : pathlib.Path
        The corpus folder.
    info : dict
        ``corpus.json`` (name, size, seed, parameters, package versions, counts).

    Examples
    --------
    >>> c = Corpus.open(path)                      # doctest: +SKIP
    >>> c.manifest.query("part == 'learning'")     # doctest: +SKIP
    >>> c.labels("tag").head()                     # doctest: +SKIP
    >>> c.target_table("genre")                    # doctest: +SKIP
    """

    def __init__(self, root: Path, info: dict):
        self.root = root
        self.info = info

    @classmethod
    def open(cls, path: str | Path) -> "Corpus":
        """Open a built corpus folder.

        Raises
        ------
        MtdtlError
            When the folder or its ``manifest.csv`` is missing (build it first, e.g. with
            ``mtdtl corpus demo``).
        """
        root = Path(path).expanduser().resolve()
        if not (root / "manifest.csv").is_file():
            raise MtdtlError(f"{root} is not a built corpus (no manifest.csv); build one with "
                             "`mtdtl corpus demo --root ...` or finish an interrupted build by "
                             "running the same command again")
        info = {}
        if (root / "corpus.json").is_file():
            try:
                info = json.loads((root / "corpus.json").read_text(encoding="utf-8"))
            except ValueError as e:
                raise MtdtlError(f"{root / 'corpus.json'} is not valid JSON ({e}); rebuild "
                                 "the corpus") from e
        return cls(root, info)

    def __repr__(self) -> str:
        return f"Corpus({str(self.root)!r}, {len(self.manifest)} tracks)"

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        head = pd.read_csv(path, nrows=0)
        dtypes = {c: _KEY_DTYPES[c] for c in head.columns if c in _KEY_DTYPES}
        return pd.read_csv(path, dtype=dtypes, keep_default_na=False,
                           na_values={c: [""] for c in head.columns if c not in dtypes})

    @cached_property
    def manifest(self) -> pd.DataFrame:
        """One row per track: ``track_id, part, split, path, duration, sample_rate, ...``."""
        return self._read(self.root / "manifest.csv")

    def labels(self, source: str) -> pd.DataFrame:
        """Raw label table of a learning source (``self, bpm, year, taste, tag, lyrics,
        cdr_tag, artist``), keyed by ``track_id``."""
        if source not in SOURCE_NAMES:
            raise MtdtlError(f"unknown learning source {source!r}; valid sources: "
                             f"{', '.join(SOURCE_NAMES)}")
        p = self.root / "labels" / f"{source}.csv"
        if not p.is_file():
            raise MtdtlError(f"{p} is missing; this corpus has no {source!r} labels "
                             "(rebuild the corpus)")
        return self._read(p)

    @cached_property
    def tasks(self) -> dict:
        """``targets/tasks.json``: task name -> {"type", "description", ...}."""
        p = self.root / "targets" / "tasks.json"
        if not p.is_file():
            return {}
        return json.loads(p.read_text(encoding="utf-8"))

    def target_table(self, task: str) -> pd.DataFrame:
        """Table of a target task: ``track_id, label, split`` (classification, regression)
        or ``user_id, track_id, play_count, split`` (recommendation; split of the item)."""
        if task not in self.tasks:
            raise MtdtlError(f"unknown target task {task!r}; this corpus has: "
                             f"{', '.join(self.tasks) or 'none'}")
        df = self._read(self.root / "targets" / f"{task}.csv")
        if self.tasks[task].get("type") == "regression":
            df["label"] = df["label"].astype(float)
        return df

    def audio_path(self, track_id: str) -> Path:
        """Absolute path of a track's audio file."""
        idx = self._path_index
        if track_id not in idx:
            raise MtdtlError(f"track {track_id!r} is not in {self.root / 'manifest.csv'}")
        return self.root / idx[track_id]

    @cached_property
    def _path_index(self) -> dict[str, str]:
        return dict(zip(self.manifest["track_id"], self.manifest["path"]))

    @cached_property
    def build_report(self) -> dict:
        """``build_report.json`` (skipped works and why, timings), ``{}`` when absent."""
        p = self.root / "build_report.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def summary(self) -> str:
        """Clips per part and split, coverage of every learning source, target class counts."""
        m = self.manifest
        lines = [f"corpus {self.info.get('name', self.root.name)} at {self.root}",
                 f"{len(m)} clips, {m['work_id'].nunique()} works, "
                 f"{m['duration'].sum() / 3600:.2f} h of audio", "", "clips per part and split:"]
        for (part, split), n in m.groupby(["part", "split"]).size().items():
            lines.append(f"  {part:<9} {split:<6} {n:>6}")
        lines += ["", "clips per collection (learning / target):"]
        tab = m.groupby(["collection", "part"]).size().unstack(fill_value=0)
        for col, row in tab.iterrows():
            lines.append(f"  {col:<18} {row.get('learning', 0):>6} / {row.get('target', 0):<6}")
        learn = set(m.loc[m["part"] == "learning", "track_id"])
        lines += ["", f"learning sources (coverage of the {len(learn)} learning clips):"]
        for s in SOURCE_NAMES:
            p = self.root / "labels" / f"{s}.csv"
            if not p.is_file():
                lines.append(f"  {s:<8} missing")
                continue
            df = self.labels(s)
            have = set(df["track_id"]) & learn
            extra = ""
            if s == "tag":
                extra = f", {df['tag'].nunique()} distinct tags"
            elif s == "taste":
                extra = f", {df['user_id'].nunique()} users (simulated), {len(df)} triplets"
            elif s == "lyrics":
                extra = f", {df['word'].nunique()} distinct words"
            elif s == "cdr_tag":
                extra = f", {df['tag'].nunique()} genre paths"
            elif s == "artist":
                extra = f", {df['artist'].nunique()} artists"
            elif s in ("bpm", "year") and len(df):
                v = df[s].astype(float)
                extra = f", range {v.min():.0f}-{v.max():.0f}"
            cov = len(have) / len(learn) if learn else 0.0
            lines.append(f"  {s:<8} {len(have):>6} tracks ({cov:6.1%}){extra}")
        lines += ["", "target tasks:"]
        for task, spec in self.tasks.items():
            df = self.target_table(task)
            kind = spec.get("type", "?")
            if kind == "classification":
                counts = df.groupby("label").size().sort_values(ascending=False)
                body = ", ".join(f"{k} {v}" for k, v in counts.items())
                lines.append(f"  {task} ({kind}, {len(df)} tracks): {body}")
            elif kind == "regression":
                v = df["label"].astype(float)
                lines.append(f"  {task} ({kind}, {len(df)} tracks): mean {v.mean():.2f}, "
                             f"sd {v.std():.2f}, range {v.min():.2f}-{v.max():.2f}")
            else:
                items = df.groupby("split")["track_id"].nunique().to_dict()
                lines.append(f"  {task} ({kind}, simulated): {df['user_id'].nunique()} users, "
                             f"{df['track_id'].nunique()} items, {len(df)} play counts; items "
                             "per split " + ", ".join(f"{k} {v}" for k, v in sorted(items.items())))
        rep = self.build_report
        if rep:
            lines += ["", f"skipped works: {rep.get('n_skipped', 0)} (see build_report.json)"]
            stages: dict[str, int] = {}
            for r in rep.get("skipped", []):
                stages[r.get("stage", "?")] = stages.get(r.get("stage", "?"), 0) + 1
            if stages:
                lines[-1] += ": " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items()))
        return "\n".join(lines)
