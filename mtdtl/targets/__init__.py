"""mtdtl.targets."""
