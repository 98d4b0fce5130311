"""Pieces of the training loop of :mod:`mtdtl.train` (Algorithm 1).

- :mod:`mtdtl.training.sampling`: the random choices of every iteration (source, tracks, crops,
  ``self`` pairs), drawn per epoch from one generator so that resuming is exact; fixed
  validation crops.
- :mod:`mtdtl.training.state`: optimizer and RNG states to and from plain data.
"""
