"""Constants shared across mtdtl (the paper's settings, Sections 2.3 and 3.1)."""

from __future__ import annotations

__all__ = [
    "SR", "N_FFT", "HOP", "N_MELS", "CROP_FRAMES", "N_CHANNELS", "K",
    "SOURCE_NAMES", "ARCH_IDS", "WIDTH_NAMES",
]

#: Sample rate of every audio signal mtdtl works with (Hz).
SR = 22050
#: STFT window (samples): about 46 ms at 22,050 Hz.
N_FFT = 1024
#: STFT hop (samples): about 11.6 ms at 22,050 Hz.
HOP = 256
#: Mel bands.
N_MELS = 128
#: Frames in one 2.5 s input crop (Section 3.1.2: input 2 x 216 x 128).
CROP_FRAMES = 216
#: Audio channels kept (stereo).
N_CHANNELS = 2
#: Latent factors per learning source (pLSA topics, GMM components).
K = 50
#: The eight learning sources, in the order of the authors' released code and design matrix.
SOURCE_NAMES = ("self", "bpm", "year", "taste", "tag", "lyrics", "cdr_tag", "artist")
#: Architecture ids (Section 3.2, Figure 5).
ARCH_IDS = ("ss_r", "mss_cr", "ms_cr@2", "ms_cr@4", "ms_cr@6", "ms_sr@fc")
#: Network widths (:data:`mtdtl.models.nets.WIDTHS`): Table 3's network, and a tiny one for tests.
WIDTH_NAMES = ("full", "tiny")
