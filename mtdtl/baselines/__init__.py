"""mtdtl.baselines."""
