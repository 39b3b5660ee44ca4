"""One clip given to :class:`~ser_hf.inference.recognizer.EmotionRecognizer`, as samples at the model's rate.

A clip comes as users of ``pipeline()`` and ``datasets`` hand it over (:data:`RecognizerInput`): a file path, the bytes
of a file, a numpy array or torch tensor, ``(array, sampling_rate)``, a dict or a torchcodec decoder.
:func:`clip_samples` turns each into one 1-D float32 array at the model's rate, held to the limits a decoded file is
held to (:mod:`ser_hf.audio.arrays`), and refuses what is no clip with the conversion that makes one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Union

import numpy as np
import torch

from ser_hf.audio import (
    MIN_CLIP_DURATION,
    array_to_mono,
    audio_decoder_samples,
    audio_in_mapping,
    check_clip_duration,
    check_sampling_rate,
    load_audio,
    load_audio_bytes,
    resample,
)
from ser_hf.errors import AudioError
from ser_hf.inference.inputs import is_path_array
from ser_hf.paths import display_path

__all__ = ["RecognizerInput", "clip_samples", "describe_input", "is_array"]

#: One input of :class:`~ser_hf.inference.recognizer.EmotionRecognizer`: a file path, an array (or torch tensor) at the
#: model's rate, ``(array, sampling_rate)``, a dict as ``datasets`` and ``pipeline()`` give one clip
#: (:func:`ser_hf.audio.audio_in_mapping`), a torchcodec ``AudioDecoder`` (:func:`ser_hf.audio.audio_decoder_samples`),
#: or the bytes of an audio file (also a bytearray or memoryview). An array holds float samples within [-1, 1] or
#: signed integer PCM (int16, int32: scaled to [-1, 1] as a WAV file's samples are); it is 1-D, or 2-D as (frames,
#: channels) or, with 1 or 2 channels, (channels, frames), the channels averaged (see
#: :func:`ser_hf.audio.array_to_mono`).
RecognizerInput = Union[str, "os.PathLike[str]", "np.ndarray", tuple, Mapping, bytes]


def describe_input(item: RecognizerInput, index: int, single: bool) -> str:
    """How messages name one input: the file, or the array (with its index among several)."""
    if isinstance(item, (str, os.PathLike)):
        return f"Audio file {display_path(item)!r}"
    return "the audio array" if single else f"the audio array at index {index}"


def clip_samples(item: RecognizerInput, model_rate: int, *, max_duration: float | None, what: str,
                 decoded: bool = False) -> np.ndarray:
    """One input as a 1-D float32 array at ``model_rate``, without preprocessing (see
    :meth:`EmotionRecognizer.load_raw <ser_hf.inference.recognizer.EmotionRecognizer.load_raw>`, which documents the
    arguments and what is refused)."""
    samples = audio_decoder_samples(item, what)  # a datasets Audio cell of datasets 4+, as pipeline() takes it
    if samples is not None:
        decoded = True  # a decoder's output: held to a file's rules
    elif isinstance(item, Mapping):  # a datasets Audio cell of datasets < 4, pipeline()'s dict
        item = audio_in_mapping(item, what)
        samples = item if isinstance(item, tuple) else None
    elif isinstance(item, tuple):
        samples = _pair(item, what)
    elif is_array(item):
        _refuse_array_of_clips(item, what)
        samples = item, model_rate
    if samples is not None:
        wave, rate = array_to_mono(samples[0], what, decoded=decoded), samples[1]
    elif isinstance(item, (str, os.PathLike)):
        if not os.fspath(item):
            raise AudioError(f"{what} is an empty path, which names no file; pass the path of an audio file.")
        check_clip_duration(item, max_duration=max_duration)  # from the header, before decoding
        return load_audio(item, model_rate)
    elif isinstance(item, memoryview) and item.format not in _BYTE_FORMATS:
        # a view of numbers (memoryview(float_array)) holds samples, not a file: decoding it fails as a bad file
        raise AudioError(f"{what} is a memoryview of {item.format!r} items (shape {item.shape}), not the bytes of an "
                         f"audio file (a view of bytes has format 'B'). Pass its samples as an array, np.asarray(view), "
                         f"with their rate if it is not {model_rate} Hz: (np.asarray(view), rate).")
    elif isinstance(item, (bytes, bytearray, memoryview)):  # a file's bytes, as pipeline() takes them
        wave, rate = load_audio_bytes(bytes(item), model_rate, what=what), model_rate
    else:
        raise AudioError(f"{what}: got {type(item).__name__}; expected an audio file path, a 1-D array of samples "
                         f"at {model_rate} Hz, (array, sampling_rate), a dict such as a datasets Audio "
                         f"cell ({{'array': ..., 'sampling_rate': ...}}) or the bytes of an audio file."
                         f"{_conversion_hint(item)}")
    seconds, found = wave.size / rate, f"{wave.size} samples at {rate} Hz"
    if seconds < MIN_CLIP_DURATION:
        raise AudioError(f"{what} lasts {seconds * 1000:.1f} ms ({found}); expected at least "
                         f"{MIN_CLIP_DURATION * 1000:g} ms (speech encoders need 25 ms for one frame). Pad it, "
                         f"or drop it.")
    if max_duration is not None and seconds > max_duration:
        raise AudioError(f"{what} lasts {seconds:.1f} s ({found}); expected at most {max_duration:g} s for one "
                         f"clip. Cut it, or score it in windows with predict_long.")
    return resample(wave, rate, model_rate)


def is_array(item: object) -> bool:
    """A numpy array or a torch tensor (taken as pipeline() takes it)."""
    return isinstance(item, (np.ndarray, torch.Tensor))


#: The formats of a memoryview of a file's bytes (``memoryview(data)``, ``memoryview(bytearray)``, a char view).
_BYTE_FORMATS = ("B", "b", "c")


def _refuse_array_of_clips(item: object, what: str) -> None:
    """Refuse a numpy array that holds clips, not samples: an array of paths (a column of file names, dtype ``U``/``S``
    or objects that are paths) or an object array of waves. Each is one input to predict(), whose array is one clip's
    samples; :func:`~ser_hf.audio.float_samples` would refuse it as numbers of the wrong dtype, telling the user to
    pass numbers, the wrong advice for a list of clips.

    Raises:
        AudioError: naming ``what``, the array and the conversion (``list(array)``) that makes it a list of clips.
    """
    if not isinstance(item, np.ndarray) or not is_path_array(item) or item.size == 0:
        return  # numbers (float_samples checks them), an empty array (refused as empty)
    found = f"{what} is a numpy array of shape {item.shape} (dtype {item.dtype})"
    first = item.flat[0]
    if isinstance(first, (np.ndarray, torch.Tensor, list, tuple, Mapping)):
        raise AudioError(f"{found} holding clips ({type(first).__name__} items), not samples: predict() takes one "
                         f"array per clip. Pass the clips as a list, list(array), to score each.")
    if isinstance(first, (str, bytes)) and _is_number(first):  # samples as text (wave.astype(str)), no paths
        return  # float_samples names the dtype and says to pass numbers
    if item.dtype.kind == "S" or isinstance(first, bytes):  # bytes items would be read as a file's contents
        fix = "pass them as a list of str, [os.fsdecode(p) for p in array] (or use predict_files)"
    elif item.dtype.kind == "U" or isinstance(first, (str, os.PathLike)):
        fix = "pass the path itself, array.item()" if item.ndim == 0 else \
            "pass them as a list, list(array) (or use predict_files)"
    else:
        return  # objects of another kind: float_samples names the dtype
    raise AudioError(f"{found} holding paths, not samples: predict() takes an array as one clip's samples. To score "
                     f"the files, {fix}.")


def _is_number(text: str | bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pair(item: tuple, what: str) -> tuple[object, int]:
    """A ``(array, sampling_rate)`` input, its rate checked; refused (AudioError naming ``what``) when it is another
    tuple, most likely several clips given as a tuple instead of a list."""
    if len(item) != 2 or not is_array(item[0]):
        kinds = ", ".join(type(part).__name__ for part in item[:3])
        raise AudioError(f"{what}: a tuple input must be (array, sampling_rate), got a tuple of ({kinds}"
                         f"{', ...' if len(item) > 3 else ''}). Pass several clips as a list.")
    return item[0], check_sampling_rate(item[1], f"The sampling rate of {what} (the tuple's second item)",
                                        " Pass several clips as a list, not a tuple.")


def _conversion_hint(item: object) -> str:
    """How to turn an input of an unexpected kind into one, for the message that refuses it."""
    if isinstance(item, (int, float, np.number)) and not isinstance(item, bool):
        return (" A number is one sample, not a clip: a list given to predict() is a list of clips, so pass the "
                "samples as one array, np.asarray(samples, dtype=np.float32).")
    if isinstance(item, list):
        return " Pass the samples as one array: np.asarray(samples, dtype=np.float32)."
    if isinstance(item, Iterator) or is_path_array(item):  # a generator, a pandas Series of paths
        return " Pass the clips as a list: list(...)."
    return ""
