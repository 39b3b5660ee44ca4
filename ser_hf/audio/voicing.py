"""Whether a clip holds a voice: a cheap voicing detector for what speaker adaptation may learn from.

Loudness alone cannot tell a voice from a hum, a buzz, steady noise or clicks at the same level, and a speaker's
offset learnt from them is the offset of the hum. Speech is told apart by three things together, measured on 40 ms
frames (20 ms hop) of the pre-emphasised signal band-limited to 60-4000 Hz:

- *periodic frames*: a peak of the frame's normalised autocorrelation at a lag in the voice's pitch range
  (60-400 Hz) of at least :data:`PERIODICITY`. Noise of any colour, clicks and DC steps have none (pre-emphasis
  keeps low-frequency noise, whose autocorrelation only decays, from passing as periodic);
- a *moving level*: the 90th and 10th percentiles of the frame levels (frames within 35 dB of the loudest) lie
  :data:`MIN_LEVEL_SPREAD_DB` apart or more: syllables come and go, a hum or a steady noise does not;
- a *moving pitch*: the periodic frames' pitch varies by :data:`MIN_PITCH_SPREAD_OCTAVES` (standard deviation) or
  more: intonation moves, a mains buzz switched on and off stays on one pitch.

It is a screen for adaptation, not a general voice-activity detector: music and other voices pass it. Measured on
every clip of the URDU and RAVDESS corpora and on their 3 s windows (every one passes) and on synthetic hum, buzz,
noise, clicks and DC steps (none passes): ``tests/test_voicing.py``.

Example:
    >>> import numpy as np

from ser_hf.audio.decoding import resample
    >>> t = np.arange(16000) / 16000
    >>> hum = 0.1 * np.sin(2 * np.pi * 100 * t)
    >>> holds_voice(hum, 16000)
    False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_hf.audio.decoding import resample

__all__ = ["ANALYSIS_RATE", "MIN_LEVEL_SPREAD_DB", "MIN_PERIODIC_FRAMES", "MIN_PITCH_SPREAD_OCTAVES", "PERIODICITY",
           "Voicing", "holds_voice", "measure_voicing"]

#: Normalised autocorrelation a frame's pitch peak must reach to count as periodic.
PERIODICITY = 0.45
#: Periodic frames (20 ms apart) a clip needs: 60 ms of voicing.
MIN_PERIODIC_FRAMES = 3
#: How far apart the loud and the quiet frames' levels must lie (dB).
MIN_LEVEL_SPREAD_DB = 6.0
#: How much the pitch must move (standard deviation of log2 pitch, octaves; a quarter of a semitone).
MIN_PITCH_SPREAD_OCTAVES = 0.02

_FRAME, _HOP = 0.04, 0.02  # seconds
_PITCH = (60.0, 400.0)  # Hz
_BAND = (60.0, 4000.0)  # Hz: below it hum and DC, above it hiss carry no pitch
_ACTIVE_DB = 35.0  # frames this far below the loudest are pauses, left out of the level and pitch measures
_BLOCK_SAMPLES = 2**19  # frames analysed at once, in samples: bounds the memory of a long clip

#: Clips at higher rates are analysed at this one (the band looked at ends at 4 kHz).
ANALYSIS_RATE = 16000


@dataclass(frozen=True)
class Voicing:
    """What :func:`measure_voicing` measured of a clip."""

    periodic_frames: int
    level_spread_db: float
    pitch_spread_octaves: float

    @property
    def voiced(self) -> bool:
        return (self.periodic_frames >= MIN_PERIODIC_FRAMES and self.level_spread_db >= MIN_LEVEL_SPREAD_DB
                and self.pitch_spread_octaves >= MIN_PITCH_SPREAD_OCTAVES)


def _frames(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    if wave.size < length:
        wave = np.pad(wave, (0, length - wave.size))
    starts = np.arange(0, wave.size - length + 1, hop)
    return wave[starts[:, None] + np.arange(length)]


def _frame_pitch(frames: np.ndarray, sampling_rate: int, shortest: int, longest: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the periodicity of its pitch peak, the peak's lag (samples) and the frame's band energy."""
    frames = frames.astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    length = frames.shape[1]
    spectrum = np.fft.rfft(frames * np.hanning(length), n=2 * length, axis=1)
    frequencies = np.fft.rfftfreq(2 * length, 1.0 / sampling_rate)
    power = np.abs(spectrum) ** 2 * ((frequencies >= _BAND[0]) & (frequencies <= _BAND[1]))
    correlation = np.fft.irfft(power, axis=1)[:, :length]  # autocorrelation of the band-limited frame
    around = correlation[:, shortest - 1:longest + 2]
    peaks = (around[:, 1:-1] > around[:, :-2]) & (around[:, 1:-1] >= around[:, 2:])  # a peak, not a decay
    heights = np.where(peaks, around[:, 1:-1], -np.inf)
    energy = correlation[:, 0].copy()  # not a view: it would keep the whole block alive
    return heights.max(axis=1) / np.maximum(energy, 1e-30), heights.argmax(axis=1) + shortest, energy


def measure_voicing(wave: np.ndarray, sampling_rate: int) -> Voicing:
    """Periodic frames, level spread and pitch spread of a 1-D clip (see the module's description).

    A clip at a rate above :data:`ANALYSIS_RATE` is resampled to it first (nothing above 4 kHz is looked at), and
    frames are analysed in blocks, so a long clip costs a few tens of MB at most."""
    samples = np.asarray(wave, dtype=np.float32).reshape(-1)  # float32 until a block is analysed: memory
    if sampling_rate > ANALYSIS_RATE and samples.size:
        samples = resample(samples, int(sampling_rate), ANALYSIS_RATE)
        sampling_rate = ANALYSIS_RATE
    if samples.size < 2:
        return Voicing(0, 0.0, 0.0)
    emphasised = np.empty_like(samples)
    emphasised[0] = samples[0]
    np.multiply(samples[:-1], -0.97, out=emphasised[1:])
    emphasised[1:] += samples[1:]
    samples = emphasised
    length, hop = max(2, round(_FRAME * sampling_rate)), max(1, round(_HOP * sampling_rate))
    shortest, longest = int(sampling_rate / _PITCH[1]), min(int(sampling_rate / _PITCH[0]), length - 2)
    if shortest < 1 or longest <= shortest:
        return Voicing(0, 0.0, 0.0)
    frames = max(1, (max(samples.size, length) - length) // hop + 1)
    block = max(1, _BLOCK_SAMPLES // length)  # frames per block
    parts = [_frame_pitch(_frames(samples[start * hop:(start + block - 1) * hop + length], length, hop),
                          sampling_rate, shortest, longest) for start in range(0, frames, block)]
    periodicity, lags, energy = (np.concatenate(values) for values in zip(*parts))
    levels = 10.0 * np.log10(np.maximum(energy, 1e-30))
    active = levels >= levels.max() - _ACTIVE_DB
    periodic = active & (periodicity >= PERIODICITY) & (energy > 1e-30)
    spread = float(np.percentile(levels[active], 90) - np.percentile(levels[active], 10)) if active.sum() > 2 else 0.0
    pitch = float(np.std(np.log2(lags[periodic]))) if periodic.sum() > 1 else 0.0
    return Voicing(int(periodic.sum()), spread, pitch)


def holds_voice(wave: np.ndarray, sampling_rate: int) -> bool:
    """Whether a 1-D clip holds a voice by :func:`measure_voicing`: periodic frames in the pitch range, a level that moves
    and a pitch that moves."""
    return measure_voicing(wave, sampling_rate).voiced
