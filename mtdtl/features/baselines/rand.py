"""The *Rand* baseline (Section 4.2 of the paper).

"We extracted the representation at the fc-feature layer without any representation network
training. With random initialization, this representation therefore gives a random baseline
for a given CNN architecture."

:func:`rand_extractor` builds the architecture with :func:`mtdtl.models.build_model` from a
fixed seed (default 0, so every run of the study compares against the same random network)
and wraps it in the same :class:`mtdtl.features.ModelExtractor` as a trained network: same
slicing, scaling and mean ‖ std aggregation. Batch-norm layers keep their initial running
statistics (mean 0, variance 1) in eval mode.

The paper's Rand (the default of :func:`mtdtl.transfer.baseline_representations`) is the base
network of Table 3, SS-R, untrained: one 256-unit fc-feature, 512 dimensions after mean ‖ std,
fed with the spectrograms standardised by the store's scaler: ``rand_extractor("ss_r",
checkpoint=run)`` takes the front end and scaler (not the architecture) from a trained run.
Give only a checkpoint to mirror a trained run exactly (its architecture, sources, width, front
end and input scaler: "Rand of this run's architecture"), or an architecture id and sources
plus the input scaler (e.g. the spectrogram store's) — without a scaler, inputs are fed
unscaled and a warning says so.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["RAND_SEED", "rand_model", "rand_extractor"]

log = get_logger(__name__)

#: Seed of the Rand baseline's initialisation.
RAND_SEED = 0


def rand_model(arch: str, sources: Sequence[str] = SOURCE_NAMES, *, width: str = "full", seed: int = RAND_SEED,
               init: str = "torch"):
    """An untrained representation network, initialised from ``seed`` (``init``: see
    :data:`mtdtl.models.INITS`), in eval mode."""
    from mtdtl.models import build_model

    return build_model(arch, list(sources), width=width, seed=seed, init=init).eval()


def _scaler_arrays(scaler: Any, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    if scaler is None:
        log.warning("Rand without an input scaler: spectrograms are fed unscaled (pass scaler= or a checkpoint)")
        return np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32)
    if isinstance(scaler, (str, os.PathLike)):
        from mtdtl.store import SpectrogramStore

        scaler = SpectrogramStore.open(scaler).scaler
    if isinstance(scaler, dict):
        return np.asarray(scaler["mean"], np.float32), np.asarray(scaler["std"], np.float32)
    if hasattr(scaler, "mean") and hasattr(scaler, "std"):
        return np.asarray(scaler.mean, np.float32), np.asarray(scaler.std, np.float32)
    if isinstance(scaler, (tuple, list)) and len(scaler) == 2:
        return np.asarray(scaler[0], np.float32), np.asarray(scaler[1], np.float32)
    raise MtdtlError(f"scaler must be (mean, std), a dict with 'mean'/'std', an object with .mean/.std or a "
                     f"store path, got {type(scaler).__name__}")


def rand_extractor(arch: str | None = None, sources: Sequence[str] | None = None, *, checkpoint: Any = None,
                   seed: int = RAND_SEED, width: str | None = None, front_end: Any = None, scaler: Any = None,
                   init: str = "torch", **kw):
    """The Rand baseline as a :class:`mtdtl.features.ModelExtractor`.

    Parameters
    ----------
    arch : str, optional
        Architecture id (``mtdtl.constants.ARCH_IDS``); not needed with ``checkpoint``.
    sources : sequence of str, optional
        Learning sources (they fix the number of branches of the concatenating architectures);
        default all eight (``self`` alone for ``ss_r``).
    checkpoint : path, optional
        A trained run: front end, scaler and width come from it, and the architecture and
        sources too unless ``arch`` is given.
    seed : int
        Initialisation seed.
    init : {"torch", "glorot"}
        Weight initialisation (:data:`mtdtl.models.INITS`): PyTorch's defaults (mtdtl's Rand) or
        the authors' Lasagne defaults (docs/learning.md, section 11).
    width : str, optional
        ``"full"`` (default) or ``"tiny"``.
    front_end : mtdtl.audio.FrontEnd or dict, optional
        Spectrogram parameters (default :class:`mtdtl.audio.FrontEnd`); with a checkpoint, the
        front end expected (a different one is an error).
    scaler : optional
        Input scaler without a checkpoint: ``(mean, std)``, ``{"mean", "std"}``, an object with
        ``.mean``/``.std`` or a spectrogram-store path.
    **kw
        ``batch_size``, ``device``, ... of :class:`mtdtl.features.ModelExtractor`.
    """
    from mtdtl.audio import FrontEnd
    from mtdtl.audio import as_front_end as _as_front_end
    from mtdtl.checkpoint import check_front_end as _check_front_end, front_end_and_scaler as _front_end_and_scaler
    from mtdtl.features.model import ModelExtractor

    if checkpoint is not None:
        from mtdtl.checkpoint import read_meta

        meta = read_meta(checkpoint)
        fe, mean, std = _front_end_and_scaler(meta, checkpoint)
        _check_front_end(fe, front_end, what=f"checkpoint {checkpoint}")
        width = width or meta.get("width") or (meta.get("config") or {}).get("width") or "full"
        if arch is None:  # mirror the run: its architecture and sources
            arch = meta["arch"]
            sources = list(meta["sources"])
        else:  # another architecture (e.g. the paper's Rand, SS-R) with the run's front end and scaler
            from mtdtl.models import parse_arch

            sources = list(sources or (SOURCE_NAMES if parse_arch(arch).multi_source else ("self",)))
    else:
        if arch is None:
            raise MtdtlError("rand_extractor needs an architecture id or a checkpoint")
        fe = _as_front_end(front_end) or FrontEnd()
        mean, std = _scaler_arrays(scaler, fe.n_mels)
        if not sources:
            from mtdtl.models import parse_arch

            sources = SOURCE_NAMES if parse_arch(arch).multi_source else ("self",)
        sources = list(sources)
        width = width or "full"
    model = rand_model(arch, sources, width=width, seed=seed, init=init)
    name = kw.pop("name", None) or f"rand:{arch}[{'+'.join(sources)}]" + (f"@{width}" if width != "full" else "")
    meta = {"arch": arch, "sources": sources, "width": width, "seed": seed, "baseline": "rand", "init": init}
    return ModelExtractor(model, front_end=fe, scaler_mean=mean, scaler_std=std, name=name, meta=meta, **kw)
