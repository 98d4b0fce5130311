"""Transfer against training: do a representation's transfer scores grow with what it has seen?

The paper's claim is that a representation learned from label sources transfers better than
the same network untrained (Rand) and than MFCCs (Figure 8). Whether the demo shows it depends on
how much the network has learned, so this module measures the curve itself: a run trained with
``keep_checkpoints=True`` keeps its weights after every ``checkpoint_every`` epochs
(``checkpoints/epoch-NNNN/``); :func:`transfer_scaling` evaluates each of them on the same
targets, with the same splits and probes, beside the baselines, and :func:`source_learning`
says per source how far validation KL fell below what predicting the average z_t would cost
(the source's information, :func:`mtdtl.sources.label_information`).

    run (keep_checkpoints) ─► checkpoints/epoch-NNNN ─► evaluate_transfer (+ mfcc, rand) ─► tidy rows
                                                                                         ─► plots.scaling
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["checkpoint_epochs", "transfer_scaling", "source_learning"]

log = get_logger(__name__)


def _run_meta(run_dir: Path) -> dict:
    from mtdtl.training.config import METRICS_NAME

    f = run_dir / METRICS_NAME
    if not f.is_file():
        raise MtdtlError(f"{run_dir}: no metrics.json; train the run first (02_train)")
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise MtdtlError(f"{f} is not readable JSON ({e})") from None


def checkpoint_epochs(run_dir: str | os.PathLike) -> dict[int, Path]:
    """The kept checkpoints of a run (``keep_checkpoints=True``): ``{epoch: folder}``, sorted."""
    run_dir = Path(run_dir)
    out = {}
    for d in sorted((run_dir / "checkpoints").glob("epoch-*")):
        if (d / "model.json").is_file():
            try:
                out[int(d.name.split("-", 1)[1])] = d
            except ValueError:
                continue
    return dict(sorted(out.items()))


def transfer_scaling(run_dir: str | os.PathLike, targets, *, epochs: Sequence[int] | None = None,
                     results: str | os.PathLike | None = None, repetitions: int = 3, seed: int = 0,
                     baselines: Sequence[str] | str = ("mfcc", "rand"), progress: bool = True) -> pd.DataFrame:
    """Transfer scores of a run's kept checkpoints, against the samples it had seen, and baselines.

    Parameters
    ----------
    run_dir : path
        A training run made with ``keep_checkpoints=True`` (its ``checkpoints/epoch-NNNN``).
    targets : sequence of mtdtl.targets.TargetDataset
        What :func:`mtdtl.transfer.resolve_targets` returns.
    epochs : sequence of int, optional
        Which kept epochs to evaluate (default: every kept one).
    results : path, optional
        The results table (default ``<run_dir>/scaling/results.csv``); resumable: finished
        (representation, target) pairs are not evaluated again.
    repetitions, seed :
        As in :func:`mtdtl.transfer.evaluate_transfer`: every checkpoint and baseline gets the
        same splits and probe seeds.
    baselines : names
        Evaluated once beside the checkpoints (:func:`mtdtl.transfer.baseline_representations`).

    Returns
    -------
    pandas.DataFrame
        The tidy result rows with ``epoch`` and ``samples`` (training crops seen: epoch x
        iterations per epoch x batch size; NaN for baselines) and ``series`` (``learned`` or the
        baseline's name).
    """
    from mtdtl.transfer import baseline_representations, evaluate_transfer, representation_from_run

    run_dir = Path(run_dir)
    meta = _run_meta(run_dir)
    kept = checkpoint_epochs(run_dir)
    if not kept:
        raise MtdtlError(f"{run_dir} keeps no checkpoints; train it with keep_checkpoints=True "
                         "(and checkpoint_every = the spacing of the curve's points)")
    if epochs is not None:
        missing = sorted(set(int(e) for e in epochs) - set(kept))
        if missing:
            raise MtdtlError(f"{run_dir}: no kept checkpoint of epoch(s) {missing}; kept: {sorted(kept)}")
        kept = {e: kept[e] for e in sorted(set(int(e) for e in epochs))}
    per_epoch = int(meta.get("iterations_per_epoch") or 0) * int((meta.get("config") or {}).get("batch_size") or 0)
    if per_epoch <= 0:
        raise MtdtlError(f"{run_dir}/metrics.json does not say iterations_per_epoch and the batch size")
    final = representation_from_run(run_dir)
    reps, epoch_of = [], {}
    for e, folder in kept.items():
        rep = representation_from_run(folder)
        rep = dataclasses.replace(rep, name=f"{final.name}@e{e}",
                                  identity={**rep.identity, "run": f"{final.name}@e{e}"})
        reps.append(rep)
        epoch_of[rep.name] = e
    base = baseline_representations(baselines, run=final) if baselines else []
    out = Path(results) if results else run_dir / "scaling" / "results.csv"
    log.info("transfer against training: %d checkpoints of %s (epochs %s) and %s on %d target(s)",
             len(reps), final.name, ", ".join(map(str, kept)), ", ".join(b.name for b in base) or "no baseline",
             len(targets))
    res = evaluate_transfer(reps + base, targets, results=out, repetitions=repetitions, seed=seed, progress=progress)
    names = {r.name for r in reps + base}
    res = res[res["representation"].isin(names)].copy()
    res["epoch"] = res["representation"].map(epoch_of).astype(float)
    res["samples"] = res["epoch"] * per_epoch
    res["series"] = np.where(res["epoch"].notna(), "learned", res["representation"])
    return res.reset_index(drop=True)


def source_learning(run_dir: str | os.PathLike, store) -> pd.DataFrame:
    """Per source: what predicting the average z_t costs, and how far the run's validation KL fell.

    ``information`` (:func:`mtdtl.sources.label_information`) is the mean KL divergence of a
    constant prediction, the average z_t over tracks; a network that learned nothing of a
    source ends near it, one that learned everything near 0. Computed over the store's tracks
    (the validation tracks are a part of them, so it is the expected, not the exact, constant
    cost on validation).

    Returns
    -------
    pandas.DataFrame
        ``source, information, valid_kl_first, valid_kl_best, valid_kl_last, learned`` with
        ``learned = 1 - valid_kl_best / information`` (the share of the constant predictor's loss
        that the network removed; ``self`` has no z_t and is left out).
    """
    from mtdtl.sources import label_information

    from mtdtl.training.runlog import log_table

    run_dir = Path(run_dir)
    meta = _run_meta(run_dir)
    info = label_information(store).set_index("source")["information"]
    curve = log_table(run_dir)
    if curve.empty:
        raise MtdtlError(f"{run_dir}: no epoch in log.jsonl; train the run first (02_train)")
    rows = []
    for src in meta.get("sources") or []:
        v = curve.loc[curve["source"] == src].sort_values("epoch")["valid_loss"].dropna()
        if src not in info.index or v.empty:
            continue
        best = float(v.min())
        rows.append({"source": src, "information": float(info[src]), "valid_kl_first": float(v.iloc[0]),
                     "valid_kl_best": best, "valid_kl_last": float(v.iloc[-1]),
                     "learned": 1.0 - best / float(info[src]) if info[src] > 0 else float("nan")})
    return pd.DataFrame(rows, columns=["source", "information", "valid_kl_first", "valid_kl_best", "valid_kl_last",
                                       "learned"])
