"""The single exception type of mtdtl.

Every error that mtdtl raises on purpose is a :class:`MtdtlError` (or a subclass),
with a message that says what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = ["MtdtlError"]


class MtdtlError(Exception):
    """Bad input, bad parameters or an unusable file, explained in the message."""
