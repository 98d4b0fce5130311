"""Algorithm 1's random choices: which source, which tracks, which 2.5 s crops.

Each training iteration (Section 3.3, Algorithm 1):

1. pick one of the model's m sources uniformly at random;
2. draw a batch of ``b`` *different* training tracks among those that have the source's labels
   (without replacement within the batch; with fewer than ``b`` such tracks the batch holds all
   of them);
3. take a uniformly random 216-frame (2.5 s) crop of each; a track drawn again later gets a new
   crop;
4. for ``self`` the batch is ``b`` *pairs* (as in the authors' code, so a ``self`` step sees
   2b crops): ``b // 2`` same-track pairs (two independent crops of one track) and the rest
   different-track pairs (two distinct tracks), label 1 = same track (Section 3.1.2: "equal
   numbers of songs for both membership categories").

An epoch is ``L = l * m`` iterations with ``l = ceil(n / b)``, n the training tracks that have at
least one of the model's sources.

Exact resume
------------
All random choices of an epoch are drawn up front, by :func:`plan_epoch`, from the sampler's
own ``numpy.random.Generator``. A checkpoint stores the generator's state *at the start of the
epoch* and the number of iterations done; resuming restores that state, draws the same plan
again and skips the iterations already done. The data loader can then read batches ahead in
background threads without the read-ahead ever touching a random state.

Validation uses fixed crops (:func:`validation_batches`) drawn from a generator seeded by the
run's seed alone, so every epoch (and every resumed run) scores the same crops.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from mtdtl.constants import CROP_FRAMES
from mtdtl.errors import MtdtlError

__all__ = ["SourceData", "Batch", "source_data", "epoch_length", "plan_epoch", "validation_batches",
           "make_rng", "data_fingerprint"]


@dataclass
class SourceData:
    """The tracks of one source in one split.

    Attributes
    ----------
    name : str
    rows : np.ndarray [shape=(n,)] int64
        Store positions of the split's tracks that have the source, ascending.
    z : np.ndarray [shape=(n, k)] float32 or None
        Their reduced labels (``None`` for ``self``).
    max_start : np.ndarray [shape=(n,)] int64
        Largest valid crop start of each track (``n_frames - 216``).
    """

    name: str
    rows: np.ndarray
    z: np.ndarray | None
    max_start: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Batch:
    """One iteration's choices. ``rows``/``starts`` address the store; for ``self`` the first
    half are the left crops and the second half their partners, ``target`` the same-track
    labels (int64); otherwise ``target`` holds the z rows (float32)."""

    source: str
    rows: np.ndarray
    starts: np.ndarray
    target: np.ndarray


def make_rng(seed: int, stream: int) -> np.random.Generator:
    """A PCG64 generator for ``(seed, stream)``; streams are independent of each other."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed) % 2**63, int(stream)])))


def source_data(store, labels: dict, split: str, sources) -> dict[str, SourceData]:
    """:class:`SourceData` of every source for the tracks of ``split``.

    Parameters
    ----------
    store : mtdtl.store.SpectrogramStore
    labels : dict of str to mtdtl.sources.ReducedLabels
    split : str
        ``"train"`` or ``"valid"``.
    sources : iterable of str
    """
    idx = np.asarray(store.indices(split), dtype=np.int64)
    ids = np.asarray(store.track_ids, dtype=object)[idx]
    n_frames = np.asarray([store.n_frames(int(i)) for i in idx], dtype=np.int64)
    out = {}
    for name in sources:
        lab = labels[name]
        has = lab.has(ids) if len(ids) else np.zeros(0, dtype=bool)
        rows = idx[has]
        z = None if name == "self" else np.ascontiguousarray(lab.rows(ids[has]), dtype=np.float32)
        max_start = n_frames[has] - CROP_FRAMES
        if (max_start < 0).any():
            raise MtdtlError(f"store clips shorter than {CROP_FRAMES} frames in split {split!r}; "
                             "rebuild the store (it pads short clips)")
        out[name] = SourceData(name, rows, z, max_start)
    return out


def epoch_length(train: dict[str, SourceData], batch_size: int) -> int:
    """``L = l * m``: ``l = ceil(n / b)`` with n the training tracks having any of the sources."""
    n = len(np.unique(np.concatenate([d.rows for d in train.values()])))
    return max(1, math.ceil(n / batch_size)) * len(train)


def _draw(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.choice(n, size=size, replace=size > n)


def _batch(rng: np.random.Generator, d: SourceData, batch_size: int) -> Batch:
    n = len(d)
    size = min(batch_size, n)
    if d.name != "self":
        pick = _draw(rng, n, size)
        starts = rng.integers(0, d.max_start[pick] + 1)
        return Batch(d.name, d.rows[pick], starts, d.z[pick])
    n_same = size // 2
    n_diff = size - n_same
    same = _draw(rng, n, n_same)
    left = np.concatenate([same, _draw(rng, n, n_diff)])
    # A partner different from the left track: a uniform non-zero offset modulo n.
    right = np.concatenate([same, (left[n_same:] + rng.integers(1, n, size=n_diff)) % n])
    pos = np.concatenate([left, right])
    starts = rng.integers(0, d.max_start[pos] + 1)
    target = np.concatenate([np.ones(n_same, np.int64), np.zeros(n_diff, np.int64)])
    return Batch("self", d.rows[pos], starts, target)


def plan_epoch(rng: np.random.Generator, train: dict[str, SourceData], batch_size: int,
               n_iterations: int) -> list[Batch]:
    """Every iteration's :class:`Batch` of one epoch, drawn in order from ``rng``."""
    names = list(train)
    choice = rng.integers(0, len(names), size=n_iterations)
    return [_batch(rng, train[names[c]], batch_size) for c in choice]


def validation_batches(valid: dict[str, SourceData], batch_size: int, seed: int) -> dict[str, list[Batch]]:
    """Fixed validation crops per source, split into batches.

    Every validation track of a source is scored once with one fixed crop; for ``self`` each
    track gives one same-track pair (two crops) and one different-track pair (with a fixed
    random partner). Sources with no validation tracks (or fewer than 2 for ``self``) get none.
    """
    rng = make_rng(seed, 2)
    out: dict[str, list[Batch]] = {}
    for name, d in valid.items():
        n = len(d)
        batches = []
        if name != "self" and n >= 1:
            starts = rng.integers(0, d.max_start + 1)
            for a in range(0, n, batch_size):
                sl = slice(a, a + batch_size)
                batches.append(Batch(name, d.rows[sl], starts[sl], d.z[sl]))
        elif name == "self" and n >= 2:
            half = max(1, batch_size // 2)
            partner = (np.arange(n) + rng.integers(1, n, size=n)) % n
            s_l, s_r, s_d = (rng.integers(0, d.max_start + 1) for _ in range(3))
            for a in range(0, n, half):
                i = np.arange(a, min(n, a + half))
                pos_l = np.concatenate([i, i])
                pos_r = np.concatenate([i, partner[i]])
                rows = np.concatenate([d.rows[pos_l], d.rows[pos_r]])
                starts = np.concatenate([s_l[i], s_l[i], s_r[i], s_d[partner[i]]])
                target = np.concatenate([np.ones(len(i), np.int64), np.zeros(len(i), np.int64)])
                batches.append(Batch(name, rows, starts, target))
        out[name] = batches
    return out


def data_fingerprint(train: dict[str, SourceData], valid: dict[str, SourceData], track_ids) -> str:
    """sha256 over the tracks, labels and clip lengths a run trains and validates on."""
    h = hashlib.sha256()
    ids = np.asarray(track_ids, dtype=object)
    for split, data in (("train", train), ("valid", valid)):
        for name, d in data.items():
            h.update(f"{split}:{name}:{len(d)}\n".encode())
            h.update("\n".join(ids[d.rows].tolist()).encode())
            h.update(d.max_start.astype("<i8").tobytes())
            if d.z is not None:
                h.update(np.ascontiguousarray(d.z, dtype="<f4").tobytes())
    return h.hexdigest()
