"""Corpora: where audio and raw labels come from.

A built corpus is a folder with one layout whatever built it (the contract:
:mod:`mtdtl.corpora.base`, ``docs/ARCHITECTURE.md`` section ``mtdtl.corpora``):
``manifest.csv``, ``audio/``, ``labels/<source>.csv`` (raw labels of the learning sources it
has), ``targets/tasks.json`` and ``targets/<task>.csv``, ``corpus.json`` and
``build_report.json``. :class:`Corpus` reads one. The builders (:data:`BUILDERS`):

``demo``
    :func:`mtdtl.corpora.demo.build_demo_corpus`: real scores from music21's corpus rendered
    with a General MIDI soundfont, all eight sources simulated from real metadata
    (``docs/corpus.md``).
``msd``
    :func:`mtdtl.corpora.msd.build_msd_corpus`: your Million Song Dataset previews and the
    MSD label files you have (the paper's sources).
``folder``
    :func:`mtdtl.corpora.folder.build_folder_corpus`: your own audio folder and label tables.

Importing this package is light: the builders are imported on first use (music21 and the
synthesizer only when the demo corpus is built).
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from mtdtl.corpora.base import Corpus
from mtdtl.errors import MtdtlError

__all__ = ["Corpus", "BUILDERS", "get_builder", "build_demo_corpus", "build_msd_corpus",
           "build_folder_corpus"]

#: Corpus builders by name: ``"module:function"``; every one returns the corpus folder.
BUILDERS: dict[str, str] = {
    "demo": "mtdtl.corpora.demo:build_demo_corpus",
    "msd": "mtdtl.corpora.msd:build_msd_corpus",
    "folder": "mtdtl.corpora.folder:build_folder_corpus",
}


def get_builder(name: str) -> Callable:
    """The builder function of a corpus kind (``"demo"``, ``"msd"``, ``"folder"``)."""
    try:
        module, func = BUILDERS[name].split(":")
    except KeyError:
        raise MtdtlError(f"unknown corpus kind {name!r}; choose one of {', '.join(BUILDERS)}") from None
    return getattr(import_module(module), func)


def __getattr__(name: str):
    for kind, target in BUILDERS.items():
        if target.endswith(":" + name):
            return get_builder(kind)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
