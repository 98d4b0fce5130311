"""A small synthetic spectrogram store with reduced labels, for the model and training tests.

Built with the public constructors only: ``mtdtl.store.build_store`` on short noise/chirp clips
written to disk, and ``mtdtl.sources.ReducedLabels(...).save``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import SR

#: Sources of the synthetic store, and the tracks (by position) that lack each one.
SOURCES = ("self", "bpm", "year", "tag")
MISSING = {"year": (0, 9), "tag": (3,)}
K_SYN = 4
N_TRAIN, N_VALID = 10, 4


def make_store(root: Path, *, seed: int = 0, durations=None) -> Path:
    """Write ``N_TRAIN + N_VALID`` stereo clips of 2.6-4 s, build the store, add labels."""
    import soundfile as sf

    from mtdtl.sources import ReducedLabels
    from mtdtl.sources.base import labels_dir
    from mtdtl.store import build_store

    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    if durations is None:
        durations = rng.uniform(2.6, 4.0, size=n)
    rows = []
    for i, dur in enumerate(durations):
        t = np.arange(int(dur * SR)) / SR
        f0 = 110.0 * 2 ** (i / 4)
        tone = np.sin(2 * np.pi * f0 * t * (1 + 0.1 * t))
        y = np.stack([tone, np.roll(tone, 50)], axis=1) * 0.3 + 0.05 * rng.standard_normal((len(t), 2))
        path = audio / f"t{i:02d}.wav"
        sf.write(path, y.astype(np.float32), SR)
        rows.append({"track_id": f"t{i:02d}", "path": str(path), "split": "train" if i < N_TRAIN else "valid"})
    tracks = pd.DataFrame(rows)
    store_dir = root / "store"
    build_store(tracks, store_dir, workers=0, progress=False)
    ids = tracks["track_id"].tolist()
    for name in SOURCES:
        miss = [ids[j] for j in MISSING.get(name, ())]
        have = [t for t in ids if t not in miss]
        if name == "self":
            z = np.zeros((len(have), 0), np.float32)
        else:
            z = rng.dirichlet(np.ones(K_SYN), size=len(have)).astype(np.float32)
        ReducedLabels(name=name, track_ids=have, z=z, missing=miss).save(labels_dir(store_dir) / f"{name}.npz")
    return store_dir
