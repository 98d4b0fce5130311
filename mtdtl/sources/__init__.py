"""mtdtl.sources: learning sources and their reduction to z_t (Sections 2.2-2.3 of the paper).

- :class:`ReducedLabels` — the reduced labels of one source (``<store>/labels/<name>.npz``);
  :func:`load_reduced` reads all of a store's tables.
- :class:`Source` and the eight built-ins (``self, bpm, year, taste, tag, lyrics, cdr_tag,
  artist``), looked up by name with :func:`get_source`.
- :class:`PLSA` (sparse EM, fold-in) and :class:`ScalarGMM`, the two reductions.
- :func:`reduce_sources` reduces a corpus' sources (resumable); :func:`coverage_table`,
  :func:`topic_table`, :func:`missing_table`, :func:`gmm_density` feed the notebook;
  :func:`label_information` measures how much each source's z_t says about a track.
- :mod:`mtdtl.sources.readers` reads the paper's real files (Last.fm, Taste Profile,
  musiXmatch, MSD metadata, BPM tables, any triplet table).
"""

from mtdtl.sources.base import ReducedLabels, Source, load_reduced
from mtdtl.sources.builtin import (
    ArtistSource,
    CdrTagSource,
    CountSource,
    GMMSource,
    SelfSource,
    available_sources,
    get_source,
    register_source,
)
from mtdtl.sources.gmm import ScalarGMM
from mtdtl.sources.plsa import PLSA
from mtdtl.sources.reduce import (
    coverage_table,
    gmm_density,
    label_information,
    missing_table,
    reduce_sources,
    topic_table,
)

__all__ = [
    "ReducedLabels", "Source", "load_reduced",
    "SelfSource", "GMMSource", "CountSource", "CdrTagSource", "ArtistSource",
    "available_sources", "get_source", "register_source",
    "PLSA", "ScalarGMM",
    "reduce_sources", "coverage_table", "missing_table", "topic_table", "gmm_density", "label_information",
]
