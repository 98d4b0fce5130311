"""``mtdtl extract``: features of audio files written to one ``.npy``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mtdtl.errors import MtdtlError
from mtdtl.features.base import _check_finite
from mtdtl.features.registry import get_extractor
from mtdtl.io import atomic_save_npy
from mtdtl.log import get_logger
from mtdtl.audio import UnreadableAudio
from mtdtl.checkpoint import weights_file
log = get_logger(__name__)


def extract_files(checkpoint: Any, audio_paths: Iterable[Any], *, out: str | os.PathLike,
                  batch_size: int = 256, device: Any = None, progress: bool = True) -> list[str]:
    """Features of audio files from a checkpoint (or any representation spec) into one ``.npy``.

    Rows follow ``audio_paths``. A file that cannot be read (or is silent) gets a row of NaN
    and is named in a warning; the function returns the list of such paths. The output is
    written atomically. This is ``mtdtl extract CHECKPOINT AUDIO... -o features.npy``.

    Parameters
    ----------
    checkpoint : path or spec
        A checkpoint (run folder, ``model.safetensors`` or ``model.json``), or any spec of
        :func:`get_extractor` (``"mfcc"``, ``"choi:<hdf5>"``, ...).
    audio_paths : iterable of paths
    out : path
        Output ``.npy`` file, float32 ``(n_files, dim)``.
    batch_size : int
        Slices per forward pass.
    device : str, optional
        ``"cuda"`` or ``"cpu"``; ``None``: CUDA when present.
    progress : bool
        tqdm bar.

    Returns
    -------
    list of str
        The files that could not be read.
    """
    paths = [str(p) for p in audio_paths]
    if not paths:
        raise MtdtlError("no audio files given")
    spec = checkpoint
    if isinstance(checkpoint, (os.PathLike, str)):
        spec = str(checkpoint)
        if spec != "mfcc" and not spec.startswith(("rand:", "choi:")):
            weights_file(checkpoint)  # a clear error for a missing checkpoint before anything else
            spec = Path(checkpoint)
    ex = get_extractor(spec, batch_size=batch_size, device=device)
    X = np.full((len(paths), ex.dim), np.nan, dtype=np.float32)
    bad: list[str] = []
    for i, v in ex.extract_many(paths, progress=progress):
        if isinstance(v, UnreadableAudio):
            log.warning("could not use %s: %s (its row is NaN)", paths[i], v)
            bad.append(paths[i])
        else:
            _check_finite(v[None], [paths[i]], ex.name)
            X[i] = v
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(out, X)
    if bad:
        log.warning("%d of %d files could not be read; their rows in %s are NaN", len(bad), len(paths), out)
    return bad
