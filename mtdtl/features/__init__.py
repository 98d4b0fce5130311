"""Feature extraction: one fixed-size vector per track from any representation (Section 4.4.1).

"Taking raw audio from the evaluation datasets as input, we take non-overlapping slices out of
this audio with a fixed length of 2.5 seconds [...] representations are extracted from the
fc-feature layer [...] we aggregate information in feature vectors over multiple time slices
by taking their mean and standard deviation values [...] These will be concatenated."

For a trained network (a checkpoint of :mod:`mtdtl.training`), :class:`ModelExtractor` does:

1. decode the track with :func:`mtdtl.audio.load_audio` (stereo, the checkpoint's sample rate);
   silent tracks are rejected like unreadable ones (their spectrogram is a flat floor);
2. the dB mel spectrogram of the **whole track** (:class:`mtdtl.audio.MelSpectrogramDB`, the
   same per-clip ``top_db`` floor the training store used), then non-overlapping windows of
   ``CROP_FRAMES = 216`` frames (2.5 s) from the start; a trailing remainder shorter than a
   window is dropped; a track shorter than one window is padded with the audio module's
   short-clip policy (:func:`mtdtl.audio.pad_to_min_frames`) to exactly one window;
3. each window is standardised with the checkpoint's per-mel-band scaler (fit on the training
   split) and passed through ``model.features`` (the fc-feature; for the concatenating
   architectures every branch, in the model's documented order);
4. the mean and the (population) standard deviation over the windows are concatenated:
   ``[mean ‖ std]``, ``2 * model.feature_dim`` values per track.

Windows of many tracks share batches (``batch_size``, default 256); decoding runs ahead in a
background thread; tracks longer than ``max_seconds_in_memory`` (default 10 minutes) are
decoded, resampled and transformed in blocks (two passes: the first finds the track's loudest
bin, which sets the dB floor, the second extracts), so memory stays bounded whatever the
length, with the same numbers as the one-piece path. The device is CUDA when present (else
CPU, or ``device=``), the model runs in eval mode under :func:`torch.inference_mode`.

Every representation, trained or baseline, is an :class:`Extractor` with ``.name``, ``.dim``,
``.sample_rate``, ``.key`` (a hash that identifies its weights and parameters) and
``.extract(path_or_waveform)``; :func:`get_extractor` builds one from a short spec:

==========================  ===================================================================
spec                        representation
==========================  ===================================================================
``<checkpoint path>``       a trained network (run folder, ``model.safetensors`` or ``model.json``)
``"mfcc"``                  MFCC baseline, 120 dims (`mtdtl.features.baselines.mfcc`)
``"chance"``                *Chance*: one constant value per track, the probe's reference level
                            (mtdtl's; `mtdtl.features.baselines.chance`)
``"rand:<checkpoint>"``     *Rand*: the checkpoint's architecture, sources, front end and scaler,
                            untrained, from a fixed seed (`mtdtl.features.baselines.rand`)
``"rand:<arch>[:src,..]"``  *Rand* for an architecture id (sources default to all eight)
``"choi:<hdf5 path>"``      *Choi*: Choi et al.'s convnet ported to PyTorch, 160 dims
                            (`mtdtl.features.baselines.choi`)
==========================  ===================================================================

:func:`extract_dataset` caches features on disk, keyed by the representation's ``key`` (for a
checkpoint: the sha256 of its weights file, its front end and scaler) and the dataset name, so
re-evaluation never re-extracts, and an interrupted extraction resumes where it stopped.
Unreadable (or silent) files are skipped and listed; NaN features and a checkpoint whose
front end differs from the one requested are errors. :func:`extract_files` is what
``mtdtl extract CHECKPOINT AUDIO... -o features.npy`` runs.

Layout
------
- :mod:`~mtdtl.features.base`: :class:`Extractor`, slicing, ``mean ‖ std``;
- :mod:`~mtdtl.features.model`: :class:`ModelExtractor` (batched, threaded, fx-optimised on CPU;
  long files streamed through :func:`mtdtl.audio.stream_slices`);
- :mod:`~mtdtl.features.registry`: :func:`get_extractor` (the spec table above);
- :mod:`~mtdtl.features.cache`: :func:`extract_dataset`, :class:`FeatureSet`, :func:`load_cached`;
- :mod:`~mtdtl.features.files`: :func:`extract_files` (``mtdtl extract``);
- :mod:`~mtdtl.features.baselines`: MFCC, Rand, Choi.
"""

from __future__ import annotations

from mtdtl.audio import UnreadableAudio, slice_frames
from mtdtl.checkpoint import weights_file
from mtdtl.features.base import SLICE_FRAMES, Extractor, aggregate
from mtdtl.features.cache import FeatureSet, extract_dataset, load_cached
from mtdtl.features.files import extract_files
from mtdtl.features.model import ModelExtractor
from mtdtl.features.registry import get_extractor
from mtdtl.io import file_sha256

__all__ = [
    "SLICE_FRAMES", "UnreadableAudio", "Extractor", "ModelExtractor", "FeatureSet",
    "get_extractor", "extract_dataset", "extract_files", "load_cached",
    "slice_frames", "aggregate", "weights_file", "file_sha256",
]
