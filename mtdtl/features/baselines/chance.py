"""*Chance*: the probe with no information about the audio (mtdtl's reference level, not the paper's).

Every track gets the same one-dimensional feature (``0``). The probe of the evaluation protocol,
trained on it with the same splits as every other representation, can then only learn the label
distribution of the training part: the majority class (classification accuracy), the training
mean (regression R² at or just below 0), and for cold-start recommendation one score for every
new track, so the ranking carries no information (items that tie keep their order in the
dataset). A representation that does not beat *Chance* on a task has taught the probe nothing
about that task, however it compares with the other baselines. The paper reports no such row;
mtdtl's walkthrough shows it beside MFCC and Rand (``baselines="mfcc,rand,chance"``).

The audio is not decoded: a file only has to exist. Tracks another representation cannot read
(corrupt or silent audio) are dropped from that representation's rows, not from *Chance*'s.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mtdtl.audio import UnreadableAudio
from mtdtl.features.base import Extractor

__all__ = ["CHANCE_KEY", "ChanceExtractor"]

#: Cache key of the *Chance* features (they depend on nothing).
CHANCE_KEY = hashlib.sha256(b"chance-v1|constant 0").hexdigest()


class ChanceExtractor(Extractor):
    """The same single value for every track: what a probe learns from no information."""

    def __init__(self, **_ignored):
        self.name = "chance"
        self.dim = 1
        self.key = CHANCE_KEY

    def _feature(self) -> np.ndarray:
        return np.zeros(self.dim, dtype=np.float32)

    def _extract_waveform(self, y: np.ndarray) -> np.ndarray:
        return self._feature()

    def extract_many(self, items: Sequence[Any], *, progress: bool = False) -> Iterator[tuple[int, Any]]:
        """``(i, [0.0])`` per item, without decoding; a path that is not a file is unusable."""
        for i, it in enumerate(items):
            if isinstance(it, (str, os.PathLike)) and not Path(it).is_file():
                yield i, UnreadableAudio(f"{it}: no such file")
            else:
                yield i, self._feature()
