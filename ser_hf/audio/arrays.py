"""Audio handed over in memory (numpy arrays, a caller's sampling rate), held to the limits a decoded file is held to.

A file's header and samples are checked where it is decoded (:mod:`ser_hf.audio.decoding`); an array a caller
passes (``EmotionRecognizer.predict(wave)``, ``stream.push(chunk)``) never goes through a decoder, so it is checked
here against the same limits: :func:`float_samples` (dtype and sample range, integer PCM scaled as soundfile scales
a WAV file), :func:`array_to_mono` (channel layout) and :func:`check_sampling_rate` (a rate a file could declare).

Example:
    >>> import numpy as np
    >>> from ser_hf.audio import array_to_mono
    >>> array_to_mono(np.zeros((2, 16000), dtype=np.int16), "the audio array").shape
    (16000,)
"""

from __future__ import annotations

import numpy as np

from ser_hf.audio.decoding import MAX_CHANNELS, MAX_SAMPLING_RATE, MIN_SAMPLING_RATE, check_samples, to_mono
from ser_hf.errors import AudioError

__all__ = ["array_to_mono", "check_sampling_rate", "float_samples"]


def check_sampling_rate(rate: object, what: str, fix: str = "") -> int:
    """The sampling rate a caller gives for in-memory samples, held to the limits a file's header is held to.

    Args:
        rate: The rate in Hz: an integer (a numpy integer, or a float such as ``44100.0``, is accepted).
        what: What it is, for the message, e.g. ``"stream(sampling_rate=...)"``.
        fix: A hint added to the message.

    Returns:
        The rate as an ``int``.

    Raises:
        AudioError: naming ``what``, for anything but an integer from :data:`MIN_SAMPLING_RATE` to
            :data:`MAX_SAMPLING_RATE` Hz (``bool``, strings, NaN and fractions included).
    """
    value = rate.item() if isinstance(rate, np.generic) else rate
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not MIN_SAMPLING_RATE <= value <= MAX_SAMPLING_RATE:
        found = f"an array of shape {rate.shape}" if isinstance(rate, np.ndarray) else repr(rate)[:80]
        raise AudioError(f"{what} must be a whole number of Hz from {MIN_SAMPLING_RATE} to {MAX_SAMPLING_RATE} "
                         f"(e.g. 16000, 44100 or 48000: the rate the samples were recorded at), got {found}.{fix}")
    return int(value)


#: How to fix an in-memory array whose samples :func:`check_samples` refuses. The likeliest cause is integer PCM
#: converted to float without scaling (samples up to 32767).
_ARRAY_FIX = ("Pass float samples within [-1, 1] (integer PCM converted to float must be divided by 32768 for "
              "16-bit or 2147483648 for 32-bit), or the int16/int32 array itself")

#: Why an array of another kind than float or signed integer is not audio, and how to convert it.
_DTYPE_HINTS = {
    "u": "Unsigned PCM is offset, not centred on 0 (8-bit WAV is centred on 128): convert it to float, e.g. "
         "(wave.astype(np.float32) - 128) / 128 for uint8",
    "c": "Audio samples are real numbers: pass wave.real if the imaginary part is meant to be dropped",
    "i": "No PCM format has 64-bit integers (a list of Python ints makes them): pass floats within [-1, 1], e.g. "
         "np.asarray(samples, dtype=np.float32) / 32768 for 16-bit values",
}


def float_samples(wave: object, what: str) -> np.ndarray:
    """An in-memory array of samples as float32 at full scale 1.0, checked as decoded files are.

    Float samples are kept (and refused, as :func:`check_samples` refuses a file's, when NaN, infinite or beyond
    :data:`MAX_ABS_SAMPLE`). Signed integer PCM (int8, int16, int32) is scaled by ``2 ** (bits - 1)``, as
    soundfile and librosa scale a PCM file, so an int16 array gives the samples its WAV file would.

    Args:
        wave: A numpy array (or anything ``np.asarray`` makes one of), any shape.
        what: What it is, for messages, e.g. ``"the audio array"``.

    Returns:
        A float32 array of the same shape.

    Raises:
        AudioError: naming ``what``, for any other dtype (unsigned, 64-bit integer, bool, complex, strings,
            objects) or unusable float samples; the message says how to convert them.
    """
    if isinstance(wave, np.ma.MaskedArray):  # np.asarray would drop the mask and score the hidden samples
        raise AudioError(f"{what} is a masked array; its masked samples have no value to score. Fill them first, "
                         f"e.g. wave.filled(0), or pass only the unmasked part.")
    try:
        wave = np.asarray(wave)
    except (ValueError, TypeError) as err:  # a ragged list
        raise AudioError(f"{what} is not an array of samples ({err}). Pass a 1-D numpy array of floats.") from None
    kind, size = wave.dtype.kind, wave.dtype.itemsize
    if kind == "i" and size <= 4:
        samples = wave.astype(np.float32)
        samples *= np.float32(2.0 ** (1 - 8 * size))  # a power of two: exact, as the division soundfile does
        return samples
    if kind != "f":
        hint = _DTYPE_HINTS.get(kind, "Pass numbers, e.g. np.asarray(samples, dtype=np.float32)")
        raise AudioError(f"{what} has dtype {wave.dtype}; expected float samples within [-1, 1] or signed integer "
                         f"PCM (int8, int16 or int32, scaled to [-1, 1] as soundfile scales it). {hint}.")
    check_samples(wave, what, _ARRAY_FIX)  # before the cast: float64 beyond float32's range would become infinite
    return wave.astype(np.float32, copy=False)


def array_to_mono(wave: object, what: str) -> np.ndarray:
    """An in-memory recording as one 1-D float32 channel at full scale 1.0 (see :func:`float_samples`).

    A 2-D array is ``(frames, channels)``, as soundfile returns it, or ``(channels, frames)``, as librosa
    returns it: an axis of at most :data:`MAX_CHANNELS` next to a longer one is the channels (audio long enough
    to score has more frames than that). Channels are averaged.

    Raises:
        AudioError: naming ``what``, for a dtype :func:`float_samples` refuses, or an array that is empty, not
            1-D or 2-D, or 2-D with no axis of at most :data:`MAX_CHANNELS` channels.
    """
    wave = float_samples(wave, what)
    if wave.ndim == 2 and wave.shape[0] <= MAX_CHANNELS < wave.shape[1]:
        wave = wave.T
    if wave.size == 0 or wave.ndim not in (1, 2) or (wave.ndim == 2 and wave.shape[1] > MAX_CHANNELS):
        raise AudioError(
            f"{what} has shape {wave.shape}; expected a non-empty 1-D array of samples, or a 2-D array of "
            f"(frames, channels) or (channels, frames) with 1 to {MAX_CHANNELS} channels. Pass one recording."
        )
    return to_mono(wave)
