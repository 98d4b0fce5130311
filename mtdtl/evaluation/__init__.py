"""mtdtl.evaluation."""
