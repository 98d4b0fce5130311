"""mtdtl.models."""
