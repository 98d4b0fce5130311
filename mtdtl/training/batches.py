"""Reading the crops of planned batches (:mod:`mtdtl.training.sampling`) onto the device, ahead of the step.
"""

from __future__ import annotations

import collections
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch

from mtdtl.constants import CROP_FRAMES
from mtdtl.log import get_logger
from mtdtl.training.sampling import (
    Batch,
)


log = get_logger(__name__)

class _Loader:
    """Reads the crops of planned batches, in order, optionally in background threads."""

    def __init__(self, store, device: torch.device, *, channels_last: bool, threads: int, prefetch: int) -> None:
        self.store = store
        self.device = device
        self.channels_last = channels_last
        self.threads = max(0, int(threads))
        self.prefetch = max(1, int(prefetch))
        self.n_mels = int(store.front_end.n_mels)
        self.n_channels = int(store.front_end.n_channels)

    def load(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops of ``batch`` as a CPU tensor [shape=(n, 2, 216, n_mels)] (NHWC memory when
        ``channels_last``: the store writes straight into that layout) and its targets."""
        n = len(batch.rows)
        if self.channels_last:
            buf = np.empty((n, CROP_FRAMES, self.n_mels, self.n_channels), dtype=np.float32)
            self.store.crops(batch.rows, batch.starts, out=buf.transpose(0, 3, 1, 2))
            x = torch.from_numpy(buf).permute(0, 3, 1, 2)
        else:
            x = torch.from_numpy(self.store.crops(batch.rows, batch.starts))
        t = torch.from_numpy(np.ascontiguousarray(batch.target))
        if self.device.type == "cuda":
            x, t = x.pin_memory(), t.pin_memory()
        return x, t

    def iterate(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """(batch, x, target) on the device, in the order of ``batches``."""
        if self.threads == 0:
            for b in batches:
                yield (b, *self._to_device(*self.load(b)))
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="mtdtl-loader") as pool:
            it = iter(batches)
            pending = collections.deque((b, pool.submit(self.load, b)) for b in itertools.islice(it, self.prefetch))
            try:
                while pending:
                    b, fut = pending.popleft()
                    x, t = fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self.load, nxt)))
                    yield b, *self._to_device(x, t)
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _to_device(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cpu":
            return x, t
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:  # a no-op unless pinning lost the NHWC strides
            x = x.contiguous(memory_format=torch.channels_last)
        return x, t.to(self.device, non_blocking=True)


# ---------------------------------------------------------------------------------------
# Ctrl-C between steps
# ---------------------------------------------------------------------------------------
