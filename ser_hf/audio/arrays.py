"""Audio handed over in memory (numpy arrays, a caller's sampling rate), held to the limits a decoded file is held to.

A file's header and samples are checked where it is decoded (:mod:`ser_hf.audio.decoding`); an array a caller
passes (``EmotionRecognizer.predict(wave)``, ``stream.push(chunk)``) never goes through a decoder, so it is checked
here against the same limits: :func:`float_samples` (dtype and sample range, integer PCM scaled as soundfile scales
a WAV file), :func:`array_to_mono` (channel layout) and :func:`check_sampling_rate` (a rate a file could declare).

A caller's array is also held to rules no file is: :func:`caller_samples` refuses float samples that look like
integer PCM converted to float without being scaled, or unsigned PCM not centred on 0 (mistakes made in memory, never
by a decoder: :mod:`ser_hf.audio.caller_mistakes`), which :func:`array_to_mono` applies unless told the samples were
decoded from a file.

Example:
    >>> import numpy as np
    >>> from ser_hf.audio import array_to_mono
    >>> array_to_mono(np.zeros((2, 16000), dtype=np.int16), "the audio array").shape
    (16000,)
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Iterator, Mapping

import numpy as np

from ser_hf.audio.caller_mistakes import MAX_CALLER_PEAK, SampleOffset, offset_span, refuse_caller_mistakes
from ser_hf.audio.decoding import (
    MAX_CHANNELS,
    MAX_SAMPLING_RATE,
    MIN_CLIP_DURATION,
    MIN_SAMPLING_RATE,
    check_samples,
    to_mono,
)
from ser_hf.errors import AudioError

# MAX_CALLER_PEAK, SampleOffset and offset_span live in caller_mistakes; exported here too, the path callers have
# imported them by.
__all__ = ["AUDIO_KEYS", "BYTE_FORMATS", "MAX_CALLER_PEAK", "SampleOffset", "array_to_mono", "audio_decoder_samples",
           "audio_in_mapping", "caller_samples", "caller_samples_and_offset", "check_sampling_rate", "float_samples",
           "is_bytes_like", "offset_span", "tensor_samples"]

#: The keys that make a dict one clip: a decoded ``datasets`` Audio cell (``{"array", "sampling_rate", "path"}``),
#: ``pipeline()``'s input (``{"raw", "sampling_rate"}``), an undecoded cell (``{"bytes", "path"}``).
AUDIO_KEYS = frozenset({"array", "raw", "bytes"})

#: The most rows a ``(channels, frames)`` array is averaged as channels from. librosa (``mono=False``) and torchaudio
#: return every channel count so, but 3 or more rows are as likely clips stacked with ``np.stack`` (which
#: ``pipeline()`` refuses) as the channels of one recording, and averaging clips would score a mix no one recorded:
#: those are refused, and a multichannel recording is passed transposed, ``(frames, channels)``.
_CHANNELS_FIRST = 2

#: The formats of a memoryview of a file's bytes (``memoryview(data)``, ``memoryview(bytearray)``, a char view); any
#: other format is a view of numbers, i.e. samples (``memoryview(float_array)``), which decoding would call a bad file.
BYTE_FORMATS = ("B", "b", "c")


def is_bytes_like(value: object) -> bool:
    """Whether ``value`` is bytes, a bytearray or a memoryview of bytes: a file's contents or a path in the file
    system's encoding, never samples (a memoryview of numbers, ``memoryview(float_array)``, is a view of samples)."""
    if isinstance(value, memoryview):
        return value.format in BYTE_FORMATS
    return isinstance(value, (bytes, bytearray))


def check_sampling_rate(rate: object, what: str, fix: str = "") -> int:
    """The sampling rate a caller gives for in-memory samples, held to the limits a file's header is held to.

    Args:
        rate: The rate in Hz: an integer (a numpy integer, a 0-d numpy array or torch tensor such as
            ``np.array(16000)`` or ``torch.tensor(16000)``, or a float such as ``44100.0`` or ``np.longdouble(16000)``,
            is accepted).
        what: What it is, for the message, e.g. ``"stream(sampling_rate=...)"``.
        fix: A hint added to the message.

    Returns:
        The rate as an ``int``.

    Raises:
        AudioError: naming ``what``, for anything but an integer from :data:`MIN_SAMPLING_RATE` to
            :data:`MAX_SAMPLING_RATE` Hz (``bool``, strings, NaN and fractions included).
    """
    # One number however it is held: a numpy scalar, a 0-d numpy array or torch tensor (a dataset's rate column, a
    # torchaudio result) give their value as a Python number; the checks below then refuse bool, NaN and fractions.
    value = rate
    if getattr(rate, "ndim", None) == 0 and hasattr(rate, "item") and not np.ma.is_masked(rate):
        try:
            value = rate.item()
        except (RuntimeError, NotImplementedError, TypeError, ValueError):  # a tensor on the meta device: no value
            pass
    if isinstance(value, np.floating) and float(value) == value:  # .item() keeps a longdouble, which is no float
        value = float(value)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not MIN_SAMPLING_RATE <= value <= MAX_SAMPLING_RATE:
        found = f"an array of shape {rate.shape}" if isinstance(rate, np.ndarray) and rate.ndim else repr(rate)[:80]
        raise AudioError(f"{what} must be a whole number of Hz from {MIN_SAMPLING_RATE} to {MAX_SAMPLING_RATE} "
                         f"(e.g. 16000, 44100 or 48000: the rate the samples were recorded at), got {found}.{fix}")
    return int(value)


def audio_in_mapping(item: Mapping, what: str) -> tuple[object, int] | bytes | str:
    """The clip a dict holds, as ``datasets`` and ``pipeline()`` hand audio over: ``(samples, rate)`` for a
    ``"raw"`` (or, where ``"raw"`` is None or absent, an ``"array"``, as ``pipeline()`` reads them) with its
    ``"sampling_rate"``; the file's bytes for ``"bytes"``; its ``"path"`` (a str or ``os.PathLike``) where the dict
    holds neither samples nor bytes. Other keys are ignored.

    Samples and bytes together are refused, naming both keys: ``pipeline()`` would take the samples and drop the
    file's bytes without a word, yet nothing says which of the two the caller meant to be scored.

    The samples are returned as they are (an array, a tensor, or a list, as ``datasets`` gives them in its python
    format: :func:`float_samples` converts them); the rate is checked (:func:`check_sampling_rate`).

    Raises:
        AudioError: naming ``what``, for a dict without the keys of one clip, a key holding a value of the wrong type
            (naming the key, the type found and the fix), samples together with a file's bytes, samples without their
            rate, or a rate no file could declare.
    """
    key = "raw" if item.get("raw") is not None else "array"  # pipeline() pops "raw" first, "array" only without it
    samples = item.get(key)
    if samples is not None:
        _check_samples_value(samples, f"{what}: its {key!r}")
        if item.get("bytes") is not None:
            raise AudioError(f"{what} is a dict holding two clips' sources: samples in {key!r} and a file's contents in "
                             f"'bytes', which may be different recordings; pass one: {{{key!r}: samples, "
                             f"'sampling_rate': rate}}, or {{'bytes': data}} for the file.")
        if "sampling_rate" not in item:
            raise AudioError(f"{what} is a dict of samples without their 'sampling_rate'; add it, e.g. "
                             f"{{{key!r}: wave, 'sampling_rate': 16000}}.")
        return samples, check_sampling_rate(item["sampling_rate"], f"{what}: its 'sampling_rate'")
    if item.get("bytes") is not None:
        return _file_bytes(item["bytes"], f"{what}: its 'bytes'")
    if item.get("path") is not None:
        return _cell_path(item["path"], f"{what}: its 'path'")
    keys = ", ".join(repr(key) for key in list(item)[:6])
    empty = [repr(key) for key in ("array", "raw", "bytes", "path") if key in item]
    found = f"whose {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} None, so it holds no audio" if empty \
        else f"with keys {keys or 'none'}"
    raise AudioError(f"{what} is a dict {found}; expected one clip as datasets and pipeline() give it: {{'array': "
                     f"samples, 'sampling_rate': rate}} (or 'raw' for 'array'), or {{'bytes': the file's bytes, "
                     f"'path': name}} (or {{'bytes': None, 'path': the file's path}}).")


def _describe(value: object) -> str:
    """A value's type as messages name it: ``None``, ``a dict``, ``a numpy array (dtype uint8, shape (44,))``."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a numpy array (dtype {value.dtype}, shape {value.shape})"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


def _check_samples_value(samples: object, what: str) -> None:
    """Refuse a dict's samples that are a file or another clip, not numbers (:func:`float_samples` would call them
    an array of dtype object or of strings, without naming the key)."""
    if isinstance(samples, Mapping):
        fix = "a clip inside a clip: pass the inner dict itself"
    elif isinstance(samples, (str, os.PathLike)):
        fix = "a file is passed as its path (predict(path)) or as {'bytes': None, 'path': path}"
    elif isinstance(samples, (bytes, bytearray, memoryview)):
        fix = ("a file's contents are passed as {'bytes': data}; raw 16-bit PCM bytes as samples, "
               "np.frombuffer(data, dtype=np.int16)")
    else:
        return  # an array, a tensor, a list: float_samples converts or refuses it
    raise AudioError(f"{what} is {_describe(samples)}, not samples; expected an array of samples, e.g. {{'array': "
                     f"wave, 'sampling_rate': 16000}}. For {fix}.")


def _file_bytes(data: object, what: str) -> bytes:
    """A dict's ``"bytes"`` as the file's contents, held to the rule top-level bytes-likes are held to: a memoryview
    of numbers (format 'f', 'h', ...) holds samples, which decoding would call a bad file."""
    if is_bytes_like(data):
        return bytes(data)
    samples = "{'array': np.asarray(value), 'sampling_rate': rate}"
    if isinstance(data, memoryview):
        found, fix = f"a memoryview of {data.format!r} items (shape {data.shape}): samples", f"Pass them as {samples}"
    elif isinstance(data, np.ndarray):
        found, fix = _describe(data), f"Pass value.tobytes() if it holds a file's contents, or {samples} for samples"
    elif isinstance(data, str):
        found = f"a str ({len(data)} characters)"
        fix = "Pass the file's contents (open(path, 'rb').read()), or its path as {'bytes': None, 'path': path}"
    else:
        found, fix = _describe(data), "Pass the file's contents, e.g. open(path, 'rb').read()"
    raise AudioError(f"{what} is {found}, not the bytes of an audio file (bytes, a bytearray, or a memoryview of "
                     f"format 'B'). {fix}.")


def _cell_path(path: object, what: str) -> str:
    """A dict's ``"path"`` as a str: a ``pathlib.Path`` (any ``os.PathLike``) is taken as open() takes it."""
    name = os.fspath(path) if isinstance(path, os.PathLike) else path
    if isinstance(name, str):
        return name
    fix = "pass os.fsdecode(path)" if isinstance(name, bytes) else "pass the file's path as a str, e.g. 'clip.wav'"
    raise AudioError(f"{what} is {_describe(name)} ({repr(name)[:60]}), not a path; expected the file's path as a "
                     f"str; {fix}.")



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
    soundfile and librosa scale a PCM file, so an int16 array gives the samples its WAV file would. This is the plain
    conversion, right for samples a decoder gave too (a float WAV file may hold samples beyond 1.0); an array a
    caller hands over goes through :func:`caller_samples`, which also refuses unscaled integer PCM.

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
    wave = tensor_samples(wave, what)
    try:
        array = np.asarray(wave)
    except (ValueError, TypeError) as err:  # a ragged list
        raise AudioError(f"{what} is not an array of samples ({err}). Pass a 1-D numpy array of floats.") from None
    if array.dtype == object and array.size:
        raise _objects_error(array, what)
    if array.dtype == object:  # no items: refused as empty by the shape checks, not as objects
        array = array.astype(np.float32)
    wave, kind, size = array, array.dtype.kind, array.dtype.itemsize
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


def _is_real(item: object) -> bool:
    return isinstance(item, numbers.Real) and not isinstance(item, bool)


def _objects_error(array: np.ndarray, what: str) -> AudioError:
    """The error for samples ``np.asarray`` made an object array of: the thing itself when it is no array (None, a
    dict, a path, a generator), else what the array holds (numbers as Python objects, or its first item that is no
    number, by type and index)."""
    if array.ndim == 0:  # None, a dict, a Path, a generator: np.asarray wraps anything in a 0-d object array
        thing = array.item()
        if isinstance(thing, Mapping):
            fix = "Pass the samples it holds, e.g. item['array'], at the rate they are expected at"
        elif isinstance(thing, (str, os.PathLike)):
            fix = "A file's samples are read with ser_hf.audio.load_audio(path, sampling_rate)"
        elif isinstance(thing, Iterator):
            fix = "Collect its samples into one array, e.g. np.fromiter(samples, dtype=np.float32)"
        else:
            fix = "Pass a 1-D numpy array of float samples"
        return AudioError(f"{what} is {_describe(thing)}, not an array of samples; expected float samples within "
                          f"[-1, 1] or signed integer PCM. {fix}.")
    head = (f"{what} has dtype object; expected float samples within [-1, 1] or signed integer PCM (int8, int16 or "
            f"int32, scaled to [-1, 1] as soundfile scales it)")
    index, item = next(((i, x) for i, x in np.ndenumerate(array) if not _is_real(x)), (None, None))
    if index is None:
        if all(isinstance(x, numbers.Integral) for x in array.flat):
            fix = ("np.asarray(wave, dtype=np.int16) for 16-bit PCM values (scaled by 32768), or np.asarray(wave, "
                   "dtype=np.float32) for float samples")
        else:
            fix = "np.asarray(wave, dtype=np.float32)"
        return AudioError(f"{head}: it holds numbers as Python objects. Convert them: {fix}.")
    if item is None:
        fix = "A missing sample has no value: fill it (e.g. with 0.0) or drop it"
    elif isinstance(item, (np.ndarray, list, tuple, Mapping)) or hasattr(item, "__array__"):
        fix = "An array holds one clip's samples: pass several clips as a list, or np.concatenate them into one"
    else:
        fix = "Pass numbers, e.g. np.asarray(samples, dtype=np.float32)"
    position = index[0] if len(index) == 1 else index
    return AudioError(f"{head}: it holds {_describe(item)} at index {position}, not an int or float. {fix}.")


def caller_samples(wave: object, what: str, sampling_rate: int | None = None) -> np.ndarray:
    """An array a caller hands over in memory as :func:`float_samples` converts it, refusing float samples that are
    integer PCM converted to float without being scaled (``astype(np.float32)`` without dividing by ``2 ** (bits -
    1)``). A quiet 16-bit recording so converted stays under :data:`MAX_ABS_SAMPLE` and would be scored tens of dB too
    loud (a calm voice taken for shouting), without a word.

    Such samples are told by their peak: above :data:`MAX_CALLER_PEAK` (16, +24 dB) whatever they are, or above 1.0
    and all whole numbers of many levels (the untouched cast). Unsigned PCM scaled but not centred (``uint8 / 128``,
    ``uint8 / 255``: nearly every sample >= 0, the mean far from 0) is refused too (:class:`SampleOffset`), in arrays
    long enough that real audio would cross 0. A decoder never makes these mistakes, so samples decoded from a file
    are converted with :func:`float_samples` alone: a float WAV file is scored as its samples say.

    Args:
        wave: A numpy array or torch tensor (or anything ``np.asarray`` makes one of), any shape.
        what: What it is, for messages, e.g. ``"the chunk given to stream.push"``.
        sampling_rate: The samples' rate, when known: it sets how many samples show a DC offset
            (:func:`offset_span`); without it, the count that holds at any rate.

    Returns:
        A float32 array of the same shape.

    Raises:
        AudioError: naming ``what``, as :func:`float_samples` does, or for unscaled integer PCM or uncentred
            unsigned PCM (the message says how to convert it).

    Example:
        >>> import numpy as np
        >>> caller_samples(np.array([0.5, -1.0, 3.0]), "x").dtype  # float headroom is no PCM
        dtype('float32')
        >>> caller_samples(np.array([1200.0, -800.0]), "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ser_hf.errors.AudioError: x has float samples as large as 1200, ...
    """
    return caller_samples_and_offset(wave, what, sampling_rate)[0]


def caller_samples_and_offset(wave: object, what: str, sampling_rate: int | None = None
                              ) -> tuple[np.ndarray, SampleOffset]:
    """:func:`caller_samples`, with the :class:`SampleOffset` it judged them by (a stream adds it to what it has
    heard instead of counting the chunk again)."""
    samples = float_samples(wave, what)
    return samples, refuse_caller_mistakes(samples, what, sampling_rate)


def tensor_samples(wave: object, what: str) -> object:
    """A torch tensor as a numpy array of the same values (detached, on the CPU; bfloat16 as float32, which numpy
    lacks), as ``pipeline()`` takes tensors; anything else as it is.

    Raises:
        AudioError: naming ``what``, for a tensor whose values cannot be read (on the ``meta`` device).
    """
    torch = sys.modules.get("torch")  # never imported here: a tensor can only come from a caller that has it
    if torch is None or not isinstance(wave, torch.Tensor):
        return wave
    try:
        tensor = wave.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    except (RuntimeError, NotImplementedError, TypeError) as err:
        raise AudioError(f"{what} is a torch tensor whose values cannot be read ({err}). Pass a tensor that holds "
                         f"its samples (e.g. on the CPU), or a numpy array.") from None


def audio_decoder_samples(item: object, what: str) -> tuple[np.ndarray, int] | None:
    """The samples and rate of a torchcodec ``AudioDecoder`` (what ``datasets`` 4+ gives for an Audio cell), taken
    as ``pipeline()`` takes one: all its samples, channels averaged; None for anything else.

    Args:
        item: Any input.
        what: What it is, for messages.

    Returns:
        ``(1-D float32 samples, sampling rate)``, or None when ``item`` is no ``AudioDecoder``.

    Raises:
        AudioError: naming ``what``, for decoded samples :func:`float_samples` refuses, a sampling rate no file could
            declare (:func:`check_sampling_rate`), more than :data:`MAX_CHANNELS` channels, or no samples.
    """
    torchcodec = sys.modules.get("torchcodec")  # never imported here: a decoder can only come from a caller that has it
    decoder_type = getattr(getattr(torchcodec, "decoders", None), "AudioDecoder", None)
    if decoder_type is None or not isinstance(item, decoder_type):
        return None
    what = f"{what} (a torchcodec AudioDecoder)"
    decoded = item.get_all_samples()
    rate = decoded.sample_rate
    rate = check_sampling_rate(rate.item() if getattr(rate, "ndim", None) == 0 else rate, f"The sampling rate of {what}")
    # torchcodec's layout is always (channels, frames), so even 3 or more rows are channels, not stacked clips.
    channels = np.atleast_2d(float_samples(decoded.data, what))
    found = f"{what} decoded samples of shape {tuple(channels.shape)}"
    if channels.ndim != 2 or channels.shape[0] > MAX_CHANNELS:  # held to the channel count a file is held to
        raise AudioError(f"{found}; expected (channels, frames) with 1 to {MAX_CHANNELS} channels, as a file may "
                         f"hold. Pass a decoder of one recording with fewer channels, or a mix of its channels as "
                         f"(wave, rate).")
    if channels.size == 0:  # refused here: averaging no frames would print numpy's "Mean of empty slice" warning
        raise AudioError(f"{found}: no samples, so there is nothing to score; expected at least "
                         f"{MIN_CLIP_DURATION * 1000:g} ms of audio. Pass a decoder of a recording that holds audio.")
    return channels.mean(axis=0, dtype=np.float32), rate


def array_to_mono(wave: object, what: str, *, decoded: bool = False, sampling_rate: int | None = None) -> np.ndarray:
    """An in-memory recording as one 1-D float32 channel at full scale 1.0.

    A 2-D array is ``(frames, channels)``, as soundfile returns it, with 1 to :data:`MAX_CHANNELS` channels, or
    ``(channels, frames)`` with 1 or 2 channels. librosa (``mono=False``) and torchaudio return ``(channels,
    frames)`` for every channel count, but 3 or more rows are refused as clips stacked with ``np.stack``: pass a
    recording of 3 or more channels transposed, ``wave.T``. Channels are averaged.

    Args:
        wave: The samples: a numpy array or torch tensor, float or signed integer PCM.
        what: What it is, for messages, e.g. ``"the audio array"``.
        decoded: True for samples a decoder produced from a file, converted by :func:`float_samples` alone; False
            (a caller's array) also refuses unscaled integer PCM (:func:`caller_samples`).
        sampling_rate: The samples' rate, when known (:func:`caller_samples` judges a DC offset by it).

    Raises:
        AudioError: naming ``what``, for samples :func:`caller_samples` (or, when ``decoded``,
            :func:`float_samples`) refuses, or an array that is empty, not 1-D or 2-D, or 2-D with no axis of at
            most :data:`MAX_CHANNELS` channels, or of 3 or more short rows of many samples: several clips stacked
            (``np.stack(clips)``), which would be averaged into one.
    """
    # Before the channels are averaged into fractions.
    wave = float_samples(wave, what) if decoded else caller_samples(wave, what, sampling_rate)
    if wave.ndim == 2 and wave.shape[0] <= _CHANNELS_FIRST < wave.shape[1]:
        wave = wave.T
    elif wave.ndim == 2 and wave.shape[0] <= MAX_CHANNELS < wave.shape[1]:
        rows = wave.shape[0]
        raise AudioError(f"{what} has shape {wave.shape}: {rows} rows of {wave.shape[1]} samples, which look like "
                         f"{rows} clips stacked into one array (they would be averaged into one clip). Pass the clips "
                         f"as a list (list(wave)) to score each, or, if they are {rows} channels of one recording "
                         f"(librosa with mono=False and torchaudio return (channels, frames) for any number of "
                         f"channels), pass wave.T, as (frames, channels).")
    if wave.size == 0 or wave.ndim not in (1, 2) or (wave.ndim == 2 and wave.shape[1] > MAX_CHANNELS):
        raise AudioError(
            f"{what} has shape {wave.shape}; expected a non-empty 1-D array of samples, or a 2-D array of "
            f"(frames, channels) or (channels, frames) with 1 to {MAX_CHANNELS} channels. Pass one recording."
        )
    return to_mono(wave)
