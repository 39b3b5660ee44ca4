"""Mistakes a caller makes with samples in memory, and a decoder never does: float samples that look like integer PCM
converted to float without being scaled, or unsigned PCM not centred on 0.

:func:`refuse_caller_mistakes` judges float samples (as :func:`~ser_hf.audio.arrays.float_samples` gives them) by their
peak (above :data:`MAX_CALLER_PEAK`, or above 1.0 on a grid of whole numbers) and by their offset
(:class:`SampleOffset`, which a stream adds to chunk by chunk). :func:`ser_hf.audio.arrays.caller_samples` applies it
to a caller's array, and :func:`~ser_hf.audio.arrays.array_to_mono` does unless told the samples were decoded from a
file.

Example:
    >>> import numpy as np
    >>> from ser_hf.audio.caller_mistakes import refuse_caller_mistakes
    >>> refuse_caller_mistakes(np.array([0.5, -1.0, 3.0], dtype=np.float32), "x").high  # float headroom is no PCM
    3.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ser_hf.audio.decoding import MAX_SAMPLING_RATE
from ser_hf.errors import AudioError

__all__ = ["MAX_CALLER_PEAK", "SampleOffset", "offset_span", "refuse_caller_mistakes"]

#: The largest float sample a caller's array may hold (24 dB above full scale). A real float recording overshoots 1.0
#: by a few times at most (resampling ringing, a hot float mix); integer PCM converted to float without being scaled
#: does not: unscaled 8-bit PCM peaks up to 128, unscaled 16-bit in the hundreds to thousands even when quiet, and
#: neither loses its level to a gain, DC removal, resampling, dither or a fade that leaves no whole numbers. Up to it,
#: float headroom is accepted; what is left uncaught below it is told in :func:`_unscaled_pcm_sign`.
MAX_CALLER_PEAK = 16.0

#: Above :data:`MAX_CALLER_PEAK` every caller's array is refused; up to this peak the message names the grid of whole
#: numbers it lies on when it does (the proof of PCM a reader needs for a level a hot mix might be thought to reach),
#: beyond it the level alone (no float audio comes near 48 dB over full scale), without a pass over the samples.
_GRID_NAMED_UP_TO = 256.0

#: The finest grid a caller's float samples between :data:`MAX_CALLER_PEAK` and :data:`_GRID_NAMED_UP_TO` may lie on
#: to be named as integer PCM converted without being scaled and then shifted, scaled or averaged (DC removal, a
#: gain, stereo channels averaged: ``gain * k + offset`` for whole ``k``, a grid of step ``gain / channels``).
_MIN_PCM_STEP = 1 / 8

#: The fewest distinct levels taken as a grid, or, up to :data:`MAX_CALLER_PEAK`, as whole numbers: a square wave, a
#: click or a three-level test signal is one by chance, unscaled PCM of a recording has many.
_MIN_GRID_LEVELS = 8

#: The lowest frequency of a sound (Hz), the bound of hearing. A sound without DC goes below 0 within every half period
#: of it; in a span of more than half a period, for at least the share beyond that half.
_LOWEST_SOUND_HZ = 20

#: The share of a caller's samples that must be >= 0 for it to be taken for unsigned PCM scaled but not centred. Not
#: all of them: a resampler's ringing takes a few samples of full-scale 8-bit audio below 0 (uint8 / 255 resampled
#: reaches -0.03), and a run of samples at 0 (a clipped trough) comes out of a resampler as noise about 0.
_MIN_NON_NEGATIVE_SHARE = 0.95

#: The mean above which non-negative samples are unsigned PCM not centred: uint8 / 255 and uint16 / 65535 have a mean
#: near 0.5, uint8 / 128 near 1.0; a recording's DC offset is a few percent of full scale (a cheap sound card's), and
#: a tone of 0.05 on a DC of 0.1 (all samples >= 0, the largest offset a real signal shows) is still accepted: the line
#: sits at half the smallest uncentred mean, 2.5 times that offset.
_MAX_OFFSET_MEAN = 0.25


def offset_span(sampling_rate: int | None) -> int:
    """The fewest samples a caller's array (or a stream so far) must hold to be judged for a DC offset by
    :class:`SampleOffset`: more than half a period of the lowest sound (:data:`_LOWEST_SOUND_HZ`), by the share of
    samples it lets lie below 0, so a loud low sound caught between two zero crossings is never taken for an offset.
    A half period of ``n`` samples holds ``n + 1`` samples >= 0 (both zero crossings count), hence the ``+ 1``. At
    16 kHz that is 423 samples (every clip, 0.1 s at least, holds more); without a rate, the count at the highest rate
    a file may declare (10107 at 384 kHz), which covers every rate."""
    rate = MAX_SAMPLING_RATE if sampling_rate is None else sampling_rate
    return math.ceil((rate / (2 * _LOWEST_SOUND_HZ) + 1) / _MIN_NON_NEGATIVE_SHARE)


def refuse_caller_mistakes(samples: np.ndarray, what: str, sampling_rate: int | None = None) -> SampleOffset:
    """Refuse float ``samples`` (as :func:`~ser_hf.audio.arrays.float_samples` gives them) that are unsigned PCM not
    centred on 0, or integer PCM converted to float without being scaled.

    Returns:
        The :class:`SampleOffset` they were judged by (a stream adds it to what it has heard instead of counting the
        chunk again).

    Raises:
        AudioError: naming ``what``; the message says how to convert the samples.
    """
    offset = SampleOffset.of(samples)
    # First: uint8 values cast to float are whole numbers too, but need centring before scaling.
    offset.refuse_uncentred(what, offset_span(sampling_rate))
    peak = max(-offset.low, offset.high) if samples.size else 0.0  # finite: float_samples refused NaN and inf
    found = _unscaled_pcm_sign(samples, peak)
    if found:
        level = f"{20 * np.log10(peak):.0f} dB above full scale"
        scored = "at that level" if found.startswith(level) else f"as audio peaking {level}"
        unsigned = (" All of them are >= 0: if they are unsigned PCM (uint8, 0 to 255), centre them first, (wave - "
                    "128) / 128.") if samples.size and offset.low >= 0 else ""
        raise AudioError(
            f"{what} has float samples as large as {peak:g}, {found}: integer PCM converted to float without being "
            f"scaled, which would be scored {scored}. Float audio is expected within [-1, 1] (float headroom up to "
            f"{MAX_CALLER_PEAK:g}, +{20 * np.log10(MAX_CALLER_PEAK):.0f} dB, is accepted). Divide it by 32768 (16-bit "
            f"PCM), 128 (8-bit) or 2147483648 (32-bit), or pass the int16/int32 array itself, which is scaled as "
            f"soundfile scales a WAV file.{unsigned}")
    return offset


def _unscaled_pcm_sign(samples: np.ndarray, peak: float) -> str | None:
    """What shows ``samples`` (peak ``peak``) are integer PCM converted to float without being scaled, or None.

    Up to :data:`MAX_CALLER_PEAK` only the untouched cast is refused: all whole numbers, of :data:`_MIN_GRID_LEVELS`
    levels or more (a square wave of amplitude 2 has two). A grid of whole numbers after a gain is not: 8-bit audio
    correctly scaled and then made 24 dB louder, or normalised to a peak of 2, lies on such a grid too, and so does a
    staircase test signal. What passes unseen: unscaled PCM peaking at 16 or less that a gain, DC removal, resampling
    or dither took off whole numbers, i.e. an 8-bit recording quieter than -18 dBFS or a 16-bit one quieter than -66
    dBFS (silence) so converted; such samples are those of real float audio up to +24 dB, with no sign to tell them.
    """
    if peak <= 1:
        return None
    level = f"{20 * np.log10(peak):.0f} dB above full scale (1.0)"
    if peak > _GRID_NAMED_UP_TO:
        return level
    whole = np.array_equal(samples, np.rint(samples))
    if peak <= MAX_CALLER_PEAK:
        return "all of them whole numbers" if whole and _levels(samples).size >= _MIN_GRID_LEVELS else None
    if whole:
        return "all of them whole numbers"
    step = _pcm_grid_step(samples)
    if step is not None:
        return (f"all of them on a grid of step {step:.4g} (whole numbers after a gain, a DC shift or channels "
                f"averaged)")
    return level


def _levels(samples: np.ndarray) -> np.ndarray:
    """The distinct values of a strided probe of ``samples`` (up to 65536 of them), sorted, as float64."""
    flat = samples.ravel()
    return np.unique(flat[:: max(1, flat.size // 65536)]).astype(np.float64)


def _pcm_grid_step(samples: np.ndarray) -> float | None:
    """The step of the grid ``step * k + offset`` (whole ``k``) every sample lies on, when it is at least
    :data:`_MIN_PCM_STEP` with :data:`_MIN_GRID_LEVELS` levels; None for any other samples (float audio)."""
    levels = _levels(samples)  # a strided probe finds the grid
    if levels.size < _MIN_GRID_LEVELS:
        return None
    step, low = float(np.diff(levels).min()), levels[0]
    if step < _MIN_PCM_STEP:
        return None
    # The step measured between two float32 samples is off by an ulp or two: refined over ever longer spans (each
    # short enough that the error cannot round a level to its neighbour), so that levels 4096 steps apart still fit.
    for span in (16, 256, 4096):
        far = levels[levels <= low + span * step][-1]
        if far > low:
            step = (far - low) / round((far - low) / step)
    position = samples.ravel() - np.float32(low)  # in place from here: the whole array may be an hour of audio
    position /= np.float32(step)
    position -= np.rint(position)
    return step if float(np.max(np.abs(position))) <= 0.02 else None


@dataclass
class SampleOffset:
    """What tells unsigned PCM scaled but not centred on 0 (``uint8 / 255``, ``uint8 / 128``) from audio: the count,
    sum and non-negative count of samples, and their range. Kept for one array (:meth:`of`) or added to chunk by
    chunk (:meth:`add`), as a stream judges all it has received: a short chunk alone is never enough to judge.

    Example:
        >>> import numpy as np
        >>> offset = SampleOffset.of(np.full(1000, 0.5) + np.linspace(0, 0.1, 1000))
        >>> offset.refuse_uncentred("x", 400)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ser_hf.errors.AudioError: x has float samples that are all >= 0 (from 0.5 to 0.6, mean 0.55): unsigned PCM...
    """

    count: int = 0
    total: float = 0.0
    non_negative: int = 0
    low: float = math.inf
    high: float = -math.inf

    @classmethod
    def of(cls, samples: np.ndarray) -> SampleOffset:
        offset = cls()
        offset.add(samples)
        return offset

    def add(self, samples: np.ndarray) -> None:
        """Count ``samples`` (float, any shape) in."""
        if not samples.size:
            return
        self.count += int(samples.size)
        self.total += float(samples.sum(dtype=np.float64))
        self.non_negative += int(np.count_nonzero(samples >= 0))
        self.low, self.high = min(self.low, float(samples.min())), max(self.high, float(samples.max()))

    def merge(self, other: SampleOffset) -> None:
        """Count in the samples ``other`` counted (a chunk already judged alone)."""
        self.count += other.count
        self.total += other.total
        self.non_negative += other.non_negative
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def refuse_uncentred(self, what: str, minimum: int) -> None:
        """Refuse (AudioError naming ``what`` and the fix) at least ``minimum`` samples (:func:`offset_span`), at
        least :data:`_MIN_NON_NEGATIVE_SHARE` of them >= 0, with a mean above :data:`_MAX_OFFSET_MEAN`. A constant is
        left alone: it is silence at any offset (a dead input)."""
        if self.count < max(minimum, 1) or self.low == self.high:
            return
        mean = self.total / self.count
        if mean <= _MAX_OFFSET_MEAN or self.non_negative < _MIN_NON_NEGATIVE_SHARE * self.count:
            return
        negative = self.count - self.non_negative
        share = "all" if not negative else f"all but {negative} of {self.count}"
        raise AudioError(f"{what} has float samples that are {share} >= 0 (from {self.low:g} to {self.high:g}, mean "
                         f"{mean:.3g}): unsigned PCM (8-bit WAV is centred on 128) converted to float without being "
                         f"centred on 0 (and perhaps resampled), which would be scored as another sound (a recording's "
                         f"mean is near 0). Centre it: (wave - 128) / 128 for uint8 values (0 to 255), wave * 2 - 1 "
                         f"for values scaled to [0, 1] (uint8 / 255), wave - 1 for uint8 / 128; or wave - wave.mean() "
                         f"for a recording with a large DC offset.")
