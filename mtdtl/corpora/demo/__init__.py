"""The embedded demo corpus: real compositions from music21's corpus, rendered to audio.

Modules: :mod:`~mtdtl.corpora.demo.build` (the build: planning, one clip, the corpus folder),
:mod:`~mtdtl.corpora.demo.music` (the music21 collections and score reading),
:mod:`~mtdtl.corpora.demo.render` (the soundfont synthesizer and the tempo estimate),
:mod:`~mtdtl.corpora.demo.labels` (the raw learning-source tables and target tasks).
Details in ``docs/corpus.md``. Importing this package does not import music21.
"""

from mtdtl.corpora.demo.build import (CLIP_SECONDS, MANIFEST_COLUMNS, RENDER_VERSION, SIZES,
                                      build_demo_corpus, plan_works, render_clip, track_id_for,
                                      works_from_files)

__all__ = ["build_demo_corpus", "SIZES", "CLIP_SECONDS", "RENDER_VERSION", "MANIFEST_COLUMNS",
           "track_id_for", "plan_works", "works_from_files", "render_clip"]
