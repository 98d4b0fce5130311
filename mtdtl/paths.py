"""Where mtdtl keeps data by default.

The data directory is ``$MTDTL_DATA_DIR`` when set, otherwise ``~/.cache/mtdtl``.
Corpora are built under ``<data_dir>/corpora/`` and spectrogram stores under
``<data_dir>/stores/``. Every function that reads or writes data also takes an
explicit path, so nothing depends on the current working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "corpora_dir", "stores_dir"]


def data_dir() -> Path:
    """Root of mtdtl's data (``$MTDTL_DATA_DIR`` or ``~/.cache/mtdtl``)."""
    env = os.environ.get("MTDTL_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtdtl"


def corpora_dir() -> Path:
    """Default parent folder of built corpora."""
    return data_dir() / "corpora"


def stores_dir() -> Path:
    """Default parent folder of spectrogram stores."""
    return data_dir() / "stores"
