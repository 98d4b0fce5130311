"""The registry of representations: :func:`get_extractor` builds an :class:`Extractor` from a short spec.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


from mtdtl.constants import ARCH_IDS
from mtdtl.errors import MtdtlError
from mtdtl.features.base import Extractor
from mtdtl.features.model import ModelExtractor

_SPEC_HELP = ("'mfcc', 'chance', 'choi:<path to model_best.hdf5>', 'rand:<arch>[:<source>,...]', "
              "'rand:<checkpoint>', or the path of a checkpoint (run folder, model.safetensors, model.json)")


def get_extractor(spec: Any, **kw) -> Extractor:
    """Build the :class:`Extractor` a spec names (see the module docstring for the specs).

    Parameters
    ----------
    spec : str, Path or Extractor
        ``"mfcc"``, ``"chance"``, ``"choi:<hdf5>"``, ``"rand:<arch>[:<sources>]"``, ``"rand:<checkpoint>"``
        or a checkpoint path; an :class:`Extractor` is returned as is.
    **kw
        Passed to the extractor: e.g. ``batch_size``, ``device``, ``front_end`` (checkpoints:
        the front end expected), ``seed`` and ``width`` (Rand), ``scaler`` (Rand from an arch).

    Returns
    -------
    Extractor
    """
    if isinstance(spec, Extractor):
        return spec
    if isinstance(spec, os.PathLike):
        return ModelExtractor.from_checkpoint(spec, **kw)
    if not isinstance(spec, str) or not spec:
        raise MtdtlError(f"unknown representation {spec!r}; use {_SPEC_HELP}")
    if spec == "mfcc":
        from mtdtl.features.baselines.mfcc import MFCCExtractor

        return MFCCExtractor(**kw)
    if spec == "chance":
        from mtdtl.features.baselines.chance import ChanceExtractor

        return ChanceExtractor(**kw)
    if spec.startswith("choi:"):
        from mtdtl.features.baselines.choi import ChoiExtractor

        return ChoiExtractor(spec[5:], **kw)
    if spec.startswith("rand:"):
        from mtdtl.features.baselines.rand import rand_extractor

        rest = spec[5:]
        head, _, tail = rest.partition(":")
        if head in ARCH_IDS:
            return rand_extractor(head, tuple(s for s in tail.split(",") if s) or None, **kw)
        return rand_extractor(checkpoint=rest, **kw)
    if Path(spec).exists():
        return ModelExtractor.from_checkpoint(spec, **kw)
    raise MtdtlError(f"unknown representation {spec!r} (not a known name and no such checkpoint); use {_SPEC_HELP}")


# ---------------------------------------------------------------------------------------
# Dataset extraction with an on-disk cache
# ---------------------------------------------------------------------------------------
