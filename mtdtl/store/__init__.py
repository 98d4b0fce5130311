"""Spectrogram store: every clip's dB mel spectrogram in one memory-mapped array, plus a scaler.

Training reads random 2.5 s crops (216 frames) of 30 s clips hundreds of times a second
(Section 3.1.2); decoding and transforming audio on the fly costs about as much as training
consumes, so the spectrograms are computed once and stored.

Layout of a store folder
------------------------
::

    <store>/
      store.json         format version, FrontEnd, dtype, shape, counts, scaler split, versions;
                         written last: its presence marks a complete store
      spectrograms.npy   (total_frames, 2, n_mels) float16 (or float32), all clips concatenated
                         along time in manifest order; opened with mmap_mode="r", so a crop
                         reads only its own 216 x 2 x 128 values (110 kB in float16)
      manifest.csv       track_id, split, path, offset, n_frames, n_frames_audio, duration_s,
                         source_size, source_mtime_ns  (one row per stored clip)
      clip_stats.npz     per-clip sum and sum of squares per mel band (float64) over the
                         clip's real frames and both channels: refitting the scaler on any split
                         is instant and never rereads the spectrograms
      scaler.npz         per-mel-band mean and std (float32) fit on the train split only
      build_report.json  requested / stored / skipped clips, and why each skip happened

Clips shorter than one crop are padded to 216 frames with the clip's own dB silence value
(:func:`mtdtl.audio.pad_to_min_frames`); ``n_frames_audio`` keeps the unpadded length and
the scaler only sees real frames. Unreadable, empty and silent clips are skipped, logged and
listed in ``build_report.json`` (and retried on the next build, in case the file was fixed).

Atomic, resumable builds
------------------------
A build works in ``<store>/_work/``:

1. **Compute.** Each clip's spectrogram goes to its own chunk file
   ``_work/chunks/<key>.npz`` (written to a temporary name, then ``os.replace``); the key
   hashes the track id and path, and the chunk records the source file's size and mtime.
   Clips with a valid chunk, or already present in a complete store at ``<store>`` with the
   same front end, path, size and mtime, are **not recomputed**. An interrupted build (crash,
   Ctrl-C, an exception in ``on_clip``) leaves only whole chunks behind.
2. **Consolidate.** The chunks are copied, in manifest order, into
   ``_work/spectrograms.npy``; each chunk is deleted as soon as its copy is flushed and
   marked in ``_work/consolidated.npy`` (a done-mask), so the disk peak stays near one
   store's size; after an interrupted consolidation, the next build puts the clips already
   moved back into chunk files (nothing is recomputed) and consolidates again.
3. **Publish.** ``store.json`` is removed, the new array, manifest, clip statistics, scaler
   and report replace the old ones (``os.replace``), ``store.json`` is written last, and
   ``_work/`` is deleted. A reader either sees the old complete store, the new complete
   store, or no ``store.json`` (and gets an error telling it to rerun the build).

float16
-------
dB values lie in about [-100, +40]. float16 keeps 11 significant bits, so storing rounds a
value x by at most ``|x| * 2**-11``: at most 0.031 dB for |x| < 64 dB and 0.0625 dB for
64 <= |x| < 128 (tested), i.e. about 0.002-0.005 units after standardisation (per-band std is
typically 10-20 dB); far below anything the network can resolve and below the mel front end's
own sensitivity to resampler and decoder versions. Pass ``dtype="float32"`` to avoid it at
twice the size.

Size at the paper's scale
-------------------------
A 30 s clip at 22,050 Hz has ``1 + 661,500 // 256 = 2,584`` frames; one frame is
``2 x 128`` values, so a clip takes 2,584 x 256 x 2 bytes = 1,323,008 bytes (1.32 MB) in
float16. The paper's 46,490 clips take 46,490 x 1,323,008 = 61.5 GB (57.3 GiB) in float16,
123 GB in float32, plus a negligible manifest (~5 MB) and clip statistics (95 MB).
``benchmarks/bench_store.py`` checks the bytes per clip on a scaled-down synthetic store and
measures the random-crop read rate. A build needs the final size plus about one chunk per
worker of extra disk.

Layout: :mod:`~mtdtl.store.reader` (:class:`SpectrogramStore`, :class:`BandScaler`, sizes),
:mod:`~mtdtl.store.build` (:func:`build_store`, :func:`write_store`: crash-safe, resumable) and
:mod:`~mtdtl.store.targets` (target stores: each target dataset's spectrograms computed once
per front end and read by every representation; FMA-medium, 25,000 x 30 s clips, takes
``store_bytes(25_000)`` = 33.1 GB in float16).
"""

from __future__ import annotations

from mtdtl.store.build import build_store, write_store
from mtdtl.store.reader import STORE_FORMAT, BandScaler, SpectrogramStore, clip_bytes, store_bytes

__all__ = ["BandScaler", "SpectrogramStore", "build_store", "write_store", "STORE_FORMAT", "clip_bytes", "store_bytes"]
