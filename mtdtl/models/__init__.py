"""Representation networks (Section 3): blocks, the architecture registry, assembled models.

- :mod:`mtdtl.models.blocks`: conv block, global average pooling, fc-feature, the ``self`` head.
- :mod:`mtdtl.models.registry`: the architecture ids and their branch points (Figure 5).
- :mod:`mtdtl.models.nets`: :class:`RepresentationModel` and :func:`build_model`.
- :mod:`mtdtl.models.summary`: Table 3 per model, parameter counts and FLOPs (Section 5.4).
"""

from mtdtl.models.nets import (
    INITS, INPUT_SHAPE, WIDTHS, RepresentationModel, Width, build_model, canonical_sources, init_weights,
)
from mtdtl.models.registry import ARCHITECTURES, DESIGN_ARC_CODES, LAYERS, ArchSpec, parse_arch
from mtdtl.models.summary import count_parameters, forward_flops, layer_table, param_table

__all__ = [
    "build_model", "RepresentationModel", "parse_arch", "ArchSpec", "ARCHITECTURES", "LAYERS",
    "DESIGN_ARC_CODES", "WIDTHS", "Width", "INPUT_SHAPE", "canonical_sources", "param_table",
    "layer_table", "count_parameters", "forward_flops", "INITS", "init_weights",
]
