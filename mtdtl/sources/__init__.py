"""mtdtl.sources: learning sources and their reduction to z_t (Section 2.3 of the paper).

:class:`ReducedLabels` is the reduced label table of one source (``<store>/labels/<name>.npz``);
:func:`load_reduced` reads all of a store's tables.
"""

from mtdtl.sources.base import ReducedLabels, load_reduced

__all__ = ["ReducedLabels", "load_reduced"]
