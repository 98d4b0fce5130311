"""Where mtdtl keeps data by default: every default folder is decided here, nowhere else.

The data directory is ``$MTDTL_DATA_DIR`` when set, otherwise ``~/.cache/mtdtl``::

    <data dir>/
      corpora/<name>/          built corpora (the demo corpus: demo-<size>-seed<seed>)
      stores/<name>/           spectrogram stores with reduced labels (named after their corpus)
      runs/<store>/<run id>/   training runs (mtdtl.runs.RunSpec.folder), with evaluate/ inside
      features/                the feature cache of every representation and target dataset
      target_stores/<dataset>-<front end>/   target spectrograms computed once, shared by every representation

Every function that reads or writes data also takes an explicit path, so nothing depends on
the current working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "corpora_dir", "stores_dir", "runs_dir", "features_dir", "demo_corpus_dir",
           "demo_store_dir", "store_name", "target_stores_dir"]


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


def features_dir() -> Path:
    """Default feature cache (one folder per representation and target dataset)."""
    return data_dir() / "features"


def target_stores_dir() -> Path:
    """Default parent folder of target spectrogram stores (one per target dataset and front end)."""
    return data_dir() / "target_stores"


def store_name(store: str | os.PathLike | None) -> str:
    """The name runs of ``store`` are filed under: its folder name (``"default"`` without one)."""
    if store is None or str(store) == "":
        return "default"
    return Path(str(store)).expanduser().name or "default"


def runs_dir(store: str | os.PathLike | None = None) -> Path:
    """Default parent folder of the training runs of ``store``: ``<data dir>/runs/<store name>``."""
    return data_dir() / "runs" / store_name(store)


def demo_corpus_dir(size: str = "small", seed: int = 0) -> Path:
    """Where the demo corpus of ``size`` and ``seed`` is built by default."""
    return corpora_dir() / f"demo-{size}-seed{seed}"


def demo_store_dir(size: str = "small", seed: int = 0) -> Path:
    """Where the spectrogram store of the default demo corpus is written by default."""
    return stores_dir() / f"demo-{size}-seed{seed}"
