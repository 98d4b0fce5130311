"""Rendering note events to audio with a General MIDI soundfont, and a tempo estimate.

The demo corpus renders scores with ``tinysoundfont`` (a small wheel, no system libraries)
and the General MIDI soundfont ``TimGM6mb.sf2`` that ships inside ``pretty_midi``'s wheel.
Events go from music21 straight to the synthesizer (no MIDI file in between), so the
~3 % of ABC tunes that music21 cannot export to MIDI still render.

``tinysoundfont``'s metadata asks for ``pyaudio``, which it only needs for live playback;
mtdtl never plays sound, so the setup script installs ``tinysoundfont`` with ``--no-deps``.

Per clip, a seeded draw picks an instrument (General MIDI program, :data:`INSTRUMENTS`), a
tempo, a stereo placement of the parts and a loudness; a work shorter than the clip is
looped (the clip restarts the score after its last bar). The synthesizer state is fresh for
every clip, so the audio depends only on the score and the draw, never on which process
rendered which clip before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdtl.constants import SR

__all__ = ["Instrument", "INSTRUMENTS", "FAMILIES", "RenderSpec", "soundfont_path",
           "render_events", "estimate_bpm"]


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program (0-based) and its instrument family."""

    program: int
    name: str
    family: str


#: Programs drawn for the clips, by family (General MIDI numbering, 0-based).
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "acoustic grand piano", "piano"),
    Instrument(1, "bright acoustic piano", "piano"),
    Instrument(4, "electric piano", "piano"),
    Instrument(6, "harpsichord", "piano"),
    Instrument(8, "celesta", "chromatic_percussion"),
    Instrument(11, "vibraphone", "chromatic_percussion"),
    Instrument(12, "marimba", "chromatic_percussion"),
    Instrument(16, "drawbar organ", "organ"),
    Instrument(19, "church organ", "organ"),
    Instrument(20, "reed organ", "organ"),
    Instrument(21, "accordion", "organ"),
    Instrument(24, "nylon guitar", "guitar"),
    Instrument(25, "steel guitar", "guitar"),
    Instrument(26, "jazz guitar", "guitar"),
    Instrument(40, "violin", "strings"),
    Instrument(41, "viola", "strings"),
    Instrument(42, "cello", "strings"),
    Instrument(48, "string ensemble", "strings"),
    Instrument(56, "trumpet", "brass"),
    Instrument(57, "trombone", "brass"),
    Instrument(60, "french horn", "brass"),
    Instrument(61, "brass section", "brass"),
    Instrument(65, "alto sax", "reed"),
    Instrument(68, "oboe", "reed"),
    Instrument(70, "bassoon", "reed"),
    Instrument(71, "clarinet", "reed"),
    Instrument(72, "piccolo", "pipe"),
    Instrument(73, "flute", "pipe"),
    Instrument(74, "recorder", "pipe"),
    Instrument(75, "pan flute", "pipe"),
)

#: Instrument families, in a fixed order (the classes of the ``instrument`` target task).
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(i.family for i in INSTRUMENTS))


def soundfont_path() -> Path:
    """``TimGM6mb.sf2`` from pretty_midi's wheel (General MIDI, 6 MB)."""
    import pretty_midi

    p = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
    if not p.is_file():
        from mtdtl.errors import MtdtlError

        raise MtdtlError(f"the General MIDI soundfont {p} is missing; reinstall pretty_midi "
                         "(pip install --force-reinstall pretty_midi)")
    return p


_SF_BYTES: bytes | None = None


def _soundfont_bytes() -> bytes:
    global _SF_BYTES
    if _SF_BYTES is None:
        _SF_BYTES = soundfont_path().read_bytes()
    return _SF_BYTES


@dataclass(frozen=True)
class RenderSpec:
    """How one clip is rendered (all drawn from the clip's seed).

    Attributes
    ----------
    program : int
        General MIDI program of every part.
    tempo : float
        Quarter notes per minute.
    pans : tuple of float
        Pan per part (0 left, 0.5 centre, 1 right).
    velocity_scale : float
        Scale of the score's velocities.
    gain_db : float
        Loudness of the clip relative to -20 dBFS RMS.
    transpose : int
        Octave shift (semitones) that brings the music into the instrument's range.
    """

    program: int
    tempo: float
    pans: tuple[float, ...]
    velocity_scale: float = 1.0
    gain_db: float = 0.0
    transpose: int = 0


def _channel(part: int) -> int:
    ch = part % 15
    return ch + 1 if ch >= 9 else ch  # skip channel 10 (index 9): General MIDI drums


def render_events(onsets_s: np.ndarray, offsets_s: np.ndarray, pitches: np.ndarray,
                  velocities: np.ndarray, parts: np.ndarray, spec: RenderSpec, *,
                  duration: float, sr: int = SR) -> np.ndarray:
    """Render note events with the General MIDI soundfont.

    Parameters
    ----------
    onsets_s, offsets_s : np.ndarray [shape=(n_notes,)]
        Note starts and ends in seconds.
    pitches, velocities, parts : np.ndarray [shape=(n_notes,)] int
        MIDI pitches, MIDI velocities (1-127), part indices.
    spec : RenderSpec
    duration : float
        Length of the output in seconds.
    sr : int

    Returns
    -------
    np.ndarray [shape=(2, n_samples)] float32
        Stereo audio, not normalised.
    """
    from tinysoundfont import _tinysoundfont as tsf

    sf = tsf.SoundFont(_soundfont_bytes())
    sf.set_output(tsf.OutputMode.StereoInterleaved, sr, 0.0)
    sf.set_max_voices(96)
    n_parts = max(len(spec.pans), int(parts.max()) + 1 if len(parts) else 1)
    for p in range(min(n_parts, 16)):
        ch = _channel(p)
        sf.channel_set_preset_number(ch, spec.program, False)
        sf.channel_set_pan(ch, float(spec.pans[p % len(spec.pans)]))
    n = int(round(duration * sr))
    on_idx = np.round(onsets_s * sr).astype(np.int64)
    off_idx = np.round(offsets_s * sr).astype(np.int64)
    keep = on_idx < n
    # events: (sample, kind 0=off 1=on, channel, key, velocity); offs first at equal times
    ev = []
    for i in np.flatnonzero(keep):
        ch = _channel(int(parts[i]))
        key = int(pitches[i]) + spec.transpose
        if not 0 <= key <= 127:
            continue
        vel = float(np.clip(velocities[i] * spec.velocity_scale, 1, 127)) / 127.0
        ev.append((int(on_idx[i]), 1, ch, key, vel))
        if off_idx[i] < n:
            ev.append((int(max(off_idx[i], on_idx[i] + 1)), 0, ch, key, 0.0))
    ev.sort(key=lambda e: (e[0], e[1], e[2], e[3]))
    buf = bytearray(n * 2 * 4)
    mv = memoryview(buf)
    pos = 0
    for sample, kind, ch, key, vel in ev:
        if sample > pos:
            sf.render(mv[pos * 8:sample * 8], False)
            pos = sample
        if kind:
            sf.channel_note_on(ch, key, vel)
        else:
            sf.channel_note_off(ch, key)
    if pos < n:
        sf.render(mv[pos * 8:n * 8], False)
    return np.frombuffer(bytes(buf), dtype=np.float32).reshape(-1, 2).T.copy()


def estimate_bpm(y: np.ndarray, *, sr: int = SR) -> float:
    """Tempo estimate of a signal by librosa's beat tracker (its tempo stage).

    ``librosa.beat.beat_track`` returns the tempo of ``librosa.feature.tempo`` on the same
    onset envelope (autocorrelation with a log-normal prior around 120 bpm); calling that
    stage directly gives the same number without compiling the beat-alignment step. Like
    the Echo Nest estimate in the paper, it makes octave errors.

    Parameters
    ----------
    y : np.ndarray [shape=(2, n)] or [shape=(n,)]
    sr : int

    Returns
    -------
    float
        Beats per minute (0.0 when the signal has no onsets).
    """
    import librosa

    mono = np.asarray(y, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    oenv = librosa.onset.onset_strength(y=mono, sr=sr)
    if not np.any(oenv > 0):
        return 0.0
    return float(librosa.feature.tempo(onset_envelope=oenv, sr=sr)[0])


def _limit_threads() -> None:
    """One BLAS/numba thread per worker: the pool already uses every core."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
