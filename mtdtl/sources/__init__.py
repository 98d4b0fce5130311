"""mtdtl.sources."""
