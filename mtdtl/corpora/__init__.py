"""mtdtl.corpora."""
