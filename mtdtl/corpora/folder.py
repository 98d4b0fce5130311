"""A corpus from your own audio folder and label tables.

:func:`build_folder_corpus` takes a folder of audio files (any format :mod:`mtdtl.audio`
reads; the track id of a file is its name without the extension) and label tables in the
formats of the demo corpus (``labels/<source>.csv``, columns in
:data:`mtdtl.corpora.base.LABEL_COLUMNS`), optionally target tables, and writes a corpus
folder with the contract of :mod:`mtdtl.corpora.base`, so that preprocessing, training and
evaluation (notebooks 01-03) run on it as on the demo corpus. Worked example:
``docs/corpus.md`` ("Your own audio").
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Mapping

import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.corpora.assemble import (check_common_args, check_file, ingest_audio, inputs_fingerprint,
                                    parse_split, scan_audio, skipped_rows, up_to_date, write_corpus)
from mtdtl.corpora.base import (LABEL_COLUMNS, LABEL_NUMERIC, SPLITS, TARGET_COLUMNS, TASK_TYPES,
                                _number, _unit, check_out_dir, learning_split, read_table)
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["build_folder_corpus"]

log = get_logger(__name__)

_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ONE_PER_TRACK = ("bpm", "year", "artist")


def _target_specs(targets) -> dict[str, dict]:
    """``targets`` argument → {task: {"path", "type" (None: infer), "description"}}."""
    if targets is None:
        return {}
    if not isinstance(targets, Mapping):
        raise MtdtlError("targets must map task names to table paths (or to {'path': ..., 'type': "
                         f"...}}), got {type(targets).__name__}")
    out = {}
    for task, spec in targets.items():
        if not isinstance(task, str) or not _TASK_NAME.match(task):
            raise MtdtlError(f"target task name {task!r}: use letters, digits, '_', '-' or '.'")
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"path", "type", "description"}
            if unknown or "path" not in spec:
                raise MtdtlError(f"target {task!r}: give {{'path': ..., 'type': ..., 'description': "
                                 f"...}} (got keys {sorted(spec)})")
            path, kind, desc = spec["path"], spec.get("type"), spec.get("description", "")
        else:
            path, kind, desc = spec, None, ""
        if kind is not None and kind not in TASK_TYPES:
            raise MtdtlError(f"target {task!r}: type {kind!r}; use one of {', '.join(TASK_TYPES)}")
        out[task] = {"path": check_file(path, f"target {task!r}"), "type": kind,
                     "description": str(desc)}
    return out


def _read_target(task: str, spec: dict) -> tuple[pd.DataFrame, str]:
    path = spec["path"]
    head = read_table(path, ids=())
    kind = spec["type"] or ("recommendation" if {"user_id", "play_count"} <= set(head.columns)
                            else "classification")
    cols = [c for c in TARGET_COLUMNS[kind] if c != "split"]
    numeric = (("play_count", False),) if kind == "recommendation" else ()
    df = read_table(path, required=cols, numeric=numeric)
    lines = df.attrs["lines"]
    if kind != "recommendation":
        empty = (df["label"].str.strip() == "").to_numpy()
        if empty.any():
            raise MtdtlError(f"{path}, line {lines[empty][0]}: label is empty; give every track a "
                             "label or delete that line")
        if kind == "regression":
            df["label"] = _number(df["label"], path=path, lines=lines, column="label",
                                  allow_empty=False, allow_negative=True)
        dup = df["track_id"].duplicated().to_numpy()
        if dup.any():
            raise MtdtlError(f"{path}, line {lines[dup][0]}: track {df['track_id'][dup].iloc[0]!r} "
                             "is listed twice; a track has one label")
    if "split" in df.columns:
        df["split"] = df["split"].str.strip()
        bad = (~df["split"].isin(SPLITS)).to_numpy()
        if bad.any():
            raise MtdtlError(f"{path}, line {lines[bad][0]}: split {df['split'][bad].iloc[0]!r}; use "
                             f"{', '.join(SPLITS)} (or leave the split column out to draw one)")
    keep = cols + (["split"] if "split" in df.columns else [])
    return df[keep].copy(), kind


def _read_labels(source: str, path: Path) -> pd.DataFrame:
    cols = list(LABEL_COLUMNS[source])
    df = read_table(path, required=cols, numeric=LABEL_NUMERIC.get(source, ()))
    lines = df.attrs["lines"]
    extra = [c for c in df.columns if c not in cols]
    if extra:
        log.info("%s: ignoring the columns %s (the %s table has %s)", path, extra, source, cols)
    if source in _ONE_PER_TRACK:
        dup = df["track_id"].duplicated(keep=False).to_numpy()
        if dup.any():
            t = df["track_id"][dup].iloc[0]
            at = lines[(df["track_id"] == t).to_numpy()]
            raise MtdtlError(f"{path}: track {t!r} appears more than once (lines "
                             f"{', '.join(map(str, at[:5]))}); a track has one {source}")
    for c in cols[1:]:
        if c in ("tag", "word", "artist"):
            empty = (df[c].str.strip() == "").to_numpy()
            if empty.any():
                raise MtdtlError(f"{path}, line {lines[empty][0]}: {c} is empty; fix or delete that line")
    out = df[cols].copy()
    out.attrs = {}
    return out


def _target_split(tracks: list[str], explicit: dict[str, str], first_label: dict[str, str],
                  seed: int) -> dict[str, str]:
    """Split of the target tracks: the tables' own where given, else 3 : 1 : 1 train / valid /
    test dealt in turn over the tracks ordered by label (so every split sees every class)."""
    out = {t: explicit[t] for t in tracks if t in explicit}
    rest = sorted((t for t in tracks if t not in explicit),
                  key=lambda t: (first_label.get(t, ""), _unit(seed, "split", t), t))
    cycle = ("train", "train", "train", "valid", "test")
    off = int(_unit(seed, "split-offset", "target") * 5)
    for i, t in enumerate(rest):
        out[t] = cycle[(i + off) % 5]
    return out


def build_folder_corpus(audio_dir: str | os.PathLike,
                        labels: Mapping[str, str | os.PathLike] | None = None, *,
                        out: str | os.PathLike | None = None, split=None, seed: int = 0,
                        targets: Mapping[str, object] | None = None, audio: str = "reference",
                        workers: int | None = None, progress: bool = True) -> Path:
    """Build (or finish, or refresh) a corpus from your audio folder and label tables.

    Parameters
    ----------
    audio_dir : path
        Folder of audio files, searched recursively (hidden files skipped). A file's track id
        is its name without the extension (``rock/song01.mp3`` → ``song01``); two files with
        one name are an error.
    labels : {source: table path}, optional
        Raw labels of learning sources (``bpm, year, taste, tag, lyrics, cdr_tag, artist``), one
        CSV (or TSV) per source with a header and the columns of the demo corpus'
        ``labels/<source>.csv`` (:data:`~mtdtl.corpora.base.LABEL_COLUMNS`). ``self`` is always
        made from the audio (a ``self`` table is ignored). Rows of tracks without audio, or of
        target tracks, are dropped (counted in ``build_report.json``).
    out : path, optional
        The corpus folder (new, or one this function built); default
        ``mtdtl.paths.corpora_dir() / f"folder-{audio_dir name}"``.
    split : None, float, path or mapping
        Split of the learning tracks: ``None`` (10 % ``valid``, drawn from ``seed``), a
        ``valid`` fraction, or a ``track_id, split`` table / ``{track_id: split}`` with
        ``train`` / ``valid`` (learning tracks it does not list are left out).
    seed : int
        Seed of the drawn splits.
    targets : {task: path or {"path", "type", "description"}}, optional
        Target tasks for the evaluation (notebook 03, ``demo:<task>``): ``track_id, label[,
        split]`` tables (``type`` ``"classification"``, the default, or ``"regression"``) or
        ``user_id, track_id, play_count[, split]`` (``"recommendation"``, found by its
        columns). Tracks in a target table form the target part (they get no learning
        labels); their split is the table's ``split`` column (``train, valid, test``) or is
        drawn 3 : 1 : 1.
    audio : {"reference", "convert"}
        Use the files in place (default) or convert them to 22,050 Hz stereo FLAC in
        ``<out>/audio`` (:mod:`mtdtl.corpora.assemble`).
    workers : int, optional
        Threads reading the audio (default: all cores).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The corpus folder (:meth:`mtdtl.corpora.Corpus.open`).

    Raises
    ------
    MtdtlError
        A bad argument, a missing file or a label or target table in a bad format (all
        checked before any audio is read; messages name the file and the line), an output
        folder that holds something else, no audio, two files with one track id, or no
        readable learning clip.

    Examples
    --------
    >>> build_folder_corpus("~/music", {"tag": "tags.csv", "year": "years.csv"},
    ...                     targets={"mood": "moods.csv"})        # doctest: +SKIP
    """
    from mtdtl.paths import corpora_dir

    t0 = time.perf_counter()
    audio_dir = check_common_args(audio_dir=audio_dir, out=out, seed=seed, audio=audio,
                                  workers=workers, progress=progress)
    if labels is None:
        labels = {}
    if not isinstance(labels, Mapping):
        raise MtdtlError(f"labels must map source names to table paths, got {type(labels).__name__}")
    unknown = [s for s in labels if s not in SOURCE_NAMES]
    if unknown:
        raise MtdtlError(f"labels: unknown learning sources {unknown}; valid sources: "
                         f"{', '.join(SOURCE_NAMES)}")
    label_files = {s: check_file(p, f"labels[{s!r}]") for s, p in labels.items()}
    if "self" in label_files:
        log.info("labels['self'] ignored: the self source is every learning clip")
        del label_files["self"]
    specs = _target_specs(targets)
    valid_fraction, fixed, split_file = parse_split(split)
    seed = int(seed)
    root = Path(out).expanduser().resolve() if out is not None else \
        corpora_dir() / f"folder-{audio_dir.name}"
    if root == audio_dir:
        raise MtdtlError(f"out ({root}) is the audio folder; pick another output folder")
    check_out_dir(root, kind="folder")

    found = scan_audio(audio_dir, exclude=root)
    if not found:
        raise MtdtlError(f"no audio files under {audio_dir} (looked for "
                         f"{', '.join(sorted({'.mp3', '.wav', '.flac', '.ogg', '.m4a'}))}, ...)")
    by_track: dict[str, Path] = {}
    for p in found:
        tid = p.stem
        if tid in by_track:
            raise MtdtlError(f"two audio files have the track id {tid!r} (their name): "
                             f"{by_track[tid]} and {p}; rename one of them")
        by_track[tid] = p
    params = {"kind": "folder", "seed": seed, "audio": audio, "valid_fraction": valid_fraction,
              "audio_dir": str(audio_dir), "split": None if fixed is None else sorted(fixed.items()),
              "targets": {t: {"type": s["type"], "description": s["description"]}
                          for t, s in specs.items()}}
    fingerprint = inputs_fingerprint(
        params=params, files={**{f"labels/{s}": p for s, p in label_files.items()},
                              **{f"targets/{t}": s["path"] for t, s in specs.items()},
                              "split": split_file},
        audio_files=found)
    if up_to_date(root, fingerprint):
        log.info("corpus %s is up to date", root)
        return root

    # --- tables first: a bad table fails before any audio is read --------------------------
    raw_labels = {s: _read_labels(s, p) for s, p in label_files.items()}
    raw_targets = {t: _read_target(t, s) for t, s in specs.items()}
    explicit: dict[str, str] = {}
    first_label: dict[str, str] = {}
    for task in sorted(raw_targets):
        df, kind = raw_targets[task]
        if "split" in df.columns:
            per = df.drop_duplicates(["track_id", "split"])
            clash = per["track_id"].duplicated(keep=False)
            if clash.any():
                raise MtdtlError(f"{specs[task]['path']}: track {per.loc[clash, 'track_id'].iloc[0]!r} "
                                 "has more than one split; a track has one split")
            for t, s in zip(per["track_id"], per["split"]):
                if explicit.setdefault(t, s) != s:
                    raise MtdtlError(f"{specs[task]['path']}: track {t!r} has split {s!r} here and "
                                     f"{explicit[t]!r} in another target table; a track has one split")
        if kind == "classification":
            for t, lab in zip(df["track_id"], df["label"]):
                first_label.setdefault(t, str(lab))
    target_ids = set().union(*(set(df["track_id"]) for df, _ in raw_targets.values())) \
        if raw_targets else set()

    # --- audio ----------------------------------------------------------------------------
    records, n_done = ingest_audio(by_track, root, mode=audio, workers=workers, progress=progress,
                                   desc=f"audio of {audio_dir.name}")
    ok = {r["track_id"]: r for r in records if r["status"] == "ok"}
    learn = sorted(t for t in ok if t not in target_ids)
    left_out: list[str] = []
    if fixed is not None:
        left_out = [t for t in learn if t not in fixed.index]
        if left_out:
            log.warning("%d learning tracks are not in the split table and are left out, e.g. %s",
                        len(left_out), left_out[0])
        learn = [t for t in learn if t in fixed.index]
    if not learn:
        raise MtdtlError(f"no learning clip: none of the {len(records)} audio files is both readable "
                         "and outside the target tables (and in the split table, if given); see "
                         f"{root / 'build_report.json'} and {root / 'clips'}")
    target = sorted(t for t in ok if t in target_ids)

    # --- splits, manifest, tables ---------------------------------------------------------
    man = pd.DataFrame({"track_id": learn + target,
                        "part": ["learning"] * len(learn) + ["target"] * len(target)})
    for c in ("path", "duration", "sample_rate", "channels"):
        man[c] = [ok[t][c] for t in man["track_id"]]
    man["work_id"] = man["track_id"]
    man["collection"] = [(Path(ok[t]["source"]).parent.relative_to(audio_dir).as_posix()
                          if Path(ok[t]["source"]).parent != audio_dir else ".") for t in man["track_id"]]
    man["title"] = [Path(ok[t]["source"]).stem for t in man["track_id"]]
    split_of: dict[str, str] = {}
    if fixed is not None:
        split_of.update({t: fixed[t] for t in learn})
    else:
        drawn = learning_split(pd.Series(learn, dtype=object), seed=seed, valid_fraction=valid_fraction)
        split_of.update(zip(learn, drawn))
    split_of.update(_target_split(target, explicit, first_label, seed))
    man.insert(2, "split", man["track_id"].map(split_of))
    man = man.sort_values("track_id", kind="stable").reset_index(drop=True)

    learn_set = set(learn)
    out_labels: dict[str, pd.DataFrame] = {"self": pd.DataFrame({"track_id": sorted(learn)})}
    label_report: dict[str, dict] = {}
    for s in SOURCE_NAMES:
        if s not in raw_labels:
            continue
        df = raw_labels[s]
        keep = df["track_id"].isin(learn_set).to_numpy()
        label_report[s] = {
            "rows": int(keep.sum()), "tracks": int(df.loc[keep, "track_id"].nunique()),
            "dropped_rows_no_audio": int((~df["track_id"].isin(ok)).sum()),
            "dropped_rows_target_tracks": int(df["track_id"].isin(set(target)).sum()),
        }
        if not keep.any():
            log.warning("labels[%r] (%s): no row is of a learning clip; the corpus leaves %s out",
                        s, label_files[s], s)
            continue
        out_labels[s] = df[keep].reset_index(drop=True)
    ok_target = set(target)
    tasks: dict[str, dict] = {}
    out_targets: dict[str, pd.DataFrame] = {}
    for task, (df, kind) in sorted(raw_targets.items()):
        keep = df["track_id"].isin(ok_target).to_numpy()
        if not keep.any():
            log.warning("target %r: none of its tracks has readable audio; left out", task)
            continue
        tab = df[keep].copy()
        tab["split"] = tab["track_id"].map(split_of)
        out_targets[task] = tab[list(TARGET_COLUMNS[kind])].reset_index(drop=True)
        tasks[task] = {"type": kind, "description": specs[task]["description"] or
                       f"{kind} task from {specs[task]['path'].name}",
                       "n_tracks": int(tab["track_id"].nunique())}
        if kind == "classification":
            tasks[task]["classes"] = sorted(tab["label"].astype(str).unique().tolist())
    clips = pd.DataFrame([{"track_id": t, "source": ok[t]["source"],
                           "source_sha256": ok[t]["source_sha256"],
                           "audio_sha256": ok[t]["audio_sha256"]} for t in man["track_id"]])
    skipped = skipped_rows(records)
    report = {
        "n_clips": len(man), "n_skipped": len(skipped), "skipped": skipped,
        "n_audio_files": len(found), "not_in_split_table": len(left_out),
        "labels": label_report,
        "targets": {t: {"rows": int(len(df)), "dropped_rows_no_audio": int((~df["track_id"].isin(ok)).sum())}
                    for t, (df, _) in sorted(raw_targets.items())},
    }
    counts = {f"{p}/{s}": int(n) for (p, s), n in man.groupby(["part", "split"]).size().items()}
    info = {
        "name": root.name, "kind": "folder", "seed": seed, "inputs_sha1": fingerprint,
        "parameters": {"audio": audio, "audio_dir": str(audio_dir), "valid_fraction": valid_fraction,
                       "split_file": str(split_file) if split_file else None,
                       "labels": {s: str(p) for s, p in label_files.items()},
                       "targets": {t: str(s["path"]) for t, s in specs.items()}},
        "counts": counts, "sources": [s for s in SOURCE_NAMES if s in out_labels],
        "tasks": sorted(tasks),
    }
    write_corpus(root, manifest=man, clips=clips, labels=out_labels, tasks=tasks,
                 targets=out_targets, report=report, info=info)
    log.info("corpus %s: %d learning + %d target clips (%d read now, %d skipped), sources %s, "
             "tasks %s, in %.1f s", root, len(learn), len(target), n_done, len(skipped),
             ", ".join(out_labels), ", ".join(tasks) or "none", time.perf_counter() - t0)
    return root
