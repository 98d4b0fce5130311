"""The per-epoch log of a training run (``log.jsonl``): reading it and its tidy table."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mtdtl.training.config import LOG_NAME

__all__ = ["read_log", "log_table"]


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """The per-epoch records of ``<run_dir>/log.jsonl`` (empty when there are none)."""
    p = Path(run_dir) / LOG_NAME
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a torn last line after a crash
    return out


def log_table(run_dir: str | os.PathLike):
    """``log.jsonl`` as a tidy table: one row per (epoch, source).

    Returns
    -------
    pandas.DataFrame
        Columns ``epoch``, ``step``, ``source``, ``train_iters``, ``train_loss``,
        ``valid_loss``, ``valid_acc`` (NaN where not applicable).
    """
    import pandas as pd

    rows = []
    for r in read_log(run_dir):
        for s in r.get("train_loss", {}):
            rows.append({"epoch": r["epoch"], "step": r["step"], "source": s,
                         "train_iters": r.get("train_iters", {}).get(s),
                         "train_loss": r["train_loss"][s], "valid_loss": r.get("valid_loss", {}).get(s),
                         "valid_acc": r.get("valid_acc", {}).get(s)})
    cols = ["epoch", "step", "source", "train_iters", "train_loss", "valid_loss", "valid_acc"]
    return pd.DataFrame(rows, columns=cols).astype({"train_loss": float, "valid_loss": float, "valid_acc": float})
