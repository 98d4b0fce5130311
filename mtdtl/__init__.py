"""mtdtl: multi-task deep transfer learning of music representations.

A notebook-first research package reproducing Kim, Urbano, Liem & Hanjalic,
"One deep music representation to rule them all? A comparative analysis of
different representation learning strategies", Neural Computing and
Applications (2019).
"""

from __future__ import annotations

from mtdtl.errors import MtdtlError

__version__ = "0.1.0"
__all__ = ["MtdtlError", "__version__"]
