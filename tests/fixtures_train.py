"""A small synthetic spectrogram store with reduced labels, for the model and training tests.

Built with the public constructors only: ``mtdtl.store.write_store`` on synthetic dB
spectrograms and ``mtdtl.sources.ReducedLabels(...).save``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Sources of the synthetic store, and the tracks (by position) that lack each one. ``artist``
#: has labels for validation tracks only (a source with nothing to train on: bad input).
SOURCES = ("self", "bpm", "year", "tag", "artist")
MISSING = {"year": (0, 9), "tag": (3,), "artist": tuple(range(10))}
K_SYN = 4
N_TRAIN, N_VALID = 10, 4


def make_store(root: Path, *, seed: int = 0) -> Path:
    """Write a store of ``N_TRAIN + N_VALID`` synthetic clips of 230-400 frames, then labels.

    Each clip is a band of energy at a track-specific mel position over noise, so that tracks
    differ from each other (the ``self`` task has something to learn).
    """
    from mtdtl.sources import ReducedLabels
    from mtdtl.sources.base import labels_dir
    from mtdtl.store import write_store

    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID
    ids = [f"t{i:02d}" for i in range(n)]
    items = []
    for i, tid in enumerate(ids):
        n_frames = int(rng.integers(230, 400))
        S = -60 + 8 * rng.standard_normal((2, n_frames, 128))
        band = 8 * i % 120
        S[:, :, band:band + 8] += 40
        items.append((tid, "train" if i < N_TRAIN else "valid", S.astype(np.float32)))
    store_dir = root / "store"
    write_store(items, store_dir)
    for name in SOURCES:
        miss = [ids[j] for j in MISSING.get(name, ())]
        have = [t for t in ids if t not in miss]
        if name == "self":
            z = np.zeros((len(have), 0), np.float32)
        else:
            z = rng.dirichlet(np.ones(K_SYN), size=len(have)).astype(np.float32)
        ReducedLabels(name=name, track_ids=have, z=z, missing=miss).save(labels_dir(store_dir) / f"{name}.npz")
    return store_dir
