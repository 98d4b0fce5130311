"""Logging helpers: the library logs, it never prints."""

from __future__ import annotations

import logging

__all__ = ["get_logger", "setup_logging"]

_ROOT = "mtdtl"


def get_logger(name: str) -> logging.Logger:
    """Logger under the ``mtdtl`` hierarchy (``name`` is usually ``__name__``)."""
    if name == _ROOT or name.startswith(_ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_ROOT}.{name}")


def setup_logging(level: int | str = logging.INFO) -> None:
    """Send mtdtl's log records to stderr (used by the CLI and the notebooks)."""
    logger = logging.getLogger(_ROOT)
    if not any(getattr(h, "_mtdtl", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._mtdtl = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
