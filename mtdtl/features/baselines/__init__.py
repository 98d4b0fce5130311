"""The baselines of Section 4.2, as :class:`mtdtl.features.Extractor` objects.

- :mod:`mtdtl.features.baselines.mfcc`: *MFCC*, 20 coefficients with first and second derivatives,
  mean and standard deviation over time (120 dims).
- :mod:`mtdtl.features.baselines.rand`: *Rand*, the same architecture untrained, from a fixed seed.
- :mod:`mtdtl.features.baselines.chance`: *Chance* (mtdtl's, not the paper's), one constant value
  per track: the probe learns only the labels' distribution (majority class, training mean).
- :mod:`mtdtl.features.baselines.choi`: *Choi*, Choi et al. (2017)'s convnet ported to PyTorch from the
  user-supplied ``model_best.hdf5`` (160 dims).

Usually reached through :func:`mtdtl.features.get_extractor` (``"mfcc"``, ``"rand:..."``,
``"choi:<path>"``).
"""

from __future__ import annotations

__all__ = ["MFCCExtractor", "ChanceExtractor", "ChoiExtractor", "rand_extractor", "load_choi", "mfcc_features"]


def __getattr__(name: str):  # lazy: importing the package does not load torch models or h5py
    if name in ("MFCCExtractor", "mfcc_features"):
        from mtdtl.features.baselines import mfcc

        return getattr(mfcc, name)
    if name == "ChanceExtractor":
        from mtdtl.features.baselines.chance import ChanceExtractor

        return ChanceExtractor
    if name in ("ChoiExtractor", "load_choi"):
        from mtdtl.features.baselines import choi

        return getattr(choi, name)
    if name == "rand_extractor":
        from mtdtl.features.baselines.rand import rand_extractor

        return rand_extractor
    raise AttributeError(f"module 'mtdtl.features.baselines' has no attribute {name!r}")
