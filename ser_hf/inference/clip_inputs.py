"""One clip given to :class:`~ser_hf.inference.recognizer.EmotionRecognizer`, as samples at the model's rate.

A clip comes as users of ``pipeline()`` and ``datasets`` hand it over (:data:`RecognizerInput`): a file path, the bytes
of a file, a numpy array or torch tensor, ``(array, sampling_rate)``, a dict or a torchcodec decoder.
:func:`clip_samples` turns each into one 1-D float32 array at the model's rate, held to the limits a decoded file is
held to (:mod:`ser_hf.audio.arrays`), and refuses what is no clip with the conversion that makes one.
"""

from __future__ import annotations

import array
import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Union

import numpy as np
import torch

from ser_hf.audio import (
    AUDIO_KEYS,
    MIN_CLIP_DURATION,
    array_to_mono,
    audio_decoder_samples,
    audio_in_mapping,
    audio_info,
    check_clip_duration,
    check_sampling_rate,
    is_audio_path,
    load_audio,
    load_audio_bytes,
    resample,
)
from ser_hf.errors import AudioError
from ser_hf.inference.enrollment_inputs import not_a_list_of_clips
from ser_hf.inference.inputs import (
    describe_rows,
    describe_table,
    has_array_shape,
    is_bytes_like,
    is_path_array,
    is_sample,
)
from ser_hf.paths import display_path, path_text

__all__ = ["RecognizerInput", "clip_samples", "describe_input", "is_array", "waves_to_walk"]

#: One input of :class:`~ser_hf.inference.recognizer.EmotionRecognizer`: a file path, an array (or torch tensor) at the
#: model's rate, ``(array, sampling_rate)``, a dict as ``datasets`` and ``pipeline()`` give one clip
#: (:func:`ser_hf.audio.audio_in_mapping`), a torchcodec ``AudioDecoder`` (:func:`ser_hf.audio.audio_decoder_samples`),
#: or the bytes of an audio file (also a bytearray or memoryview; never a path). A dict whose ``"path"`` is an existing
#: float file holds that file's samples, held to a file's limits. An array holds float samples within [-1, 1] or
#: signed integer PCM (int16, int32: scaled to [-1, 1] as a WAV file's samples are); it is 1-D, or 2-D as (frames,
#: channels) or, with 1 or 2 channels, (channels, frames), the channels averaged (see
#: :func:`ser_hf.audio.array_to_mono`).
RecognizerInput = Union[str, "os.PathLike[str]", "np.ndarray", tuple, Mapping, bytes]


def describe_input(item: RecognizerInput, index: int, single: bool) -> str:
    """How messages name one input: the file, the bytes or the array (with its index among several)."""
    if isinstance(item, (str, os.PathLike)):
        try:
            return f"Audio file {display_path(os.fspath(item))!r}"
        except Exception:  # an __fspath__ that gives neither str nor bytes, or fails
            kind = type(item).__name__
            return f"the {kind} given" if single else f"the {kind} at index {index}"
    if is_bytes_like(item):  # a file's contents, or a path as bytes: no array either way
        return "the bytes given" if single else f"the bytes at index {index}"
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
        cell, item = item, audio_in_mapping(item, what)
        samples = item if isinstance(item, tuple) else None
        # Only samples are held to one rule or the other: a dict of bytes or a path is decoded as a file anyway.
        decoded = decoded or (samples is not None and _names_a_float_file(cell))
    elif isinstance(item, tuple):
        samples = _pair(item, what)
    elif is_array(item):
        _refuse_array_of_clips(item, what)
        samples = item, model_rate
    if samples is not None:
        wave, rate = array_to_mono(samples[0], what, decoded=decoded, sampling_rate=samples[1]), samples[1]
    elif isinstance(item, (str, os.PathLike)):
        item = path_text(item, what, error=AudioError)  # a path-like may give bytes, which pathlib refuses
        if not item:
            raise AudioError(f"{what} is an empty path, which names no file; pass the path of an audio file.")
        check_clip_duration(item, max_duration=max_duration)  # from the header, before decoding
        return load_audio(item, model_rate)
    elif isinstance(item, memoryview) and not is_bytes_like(item):
        # a view of numbers (memoryview(float_array)) holds samples, not a file: decoding it fails as a bad file
        raise AudioError(f"{what} is a memoryview of {item.format!r} items (shape {item.shape}), not the bytes of an "
                         f"audio file (a view of bytes has format 'B'). Pass its samples as an array, np.asarray(view), "
                         f"with their rate if it is not {model_rate} Hz: (np.asarray(view), rate).")
    elif isinstance(item, (bytes, bytearray, memoryview)):  # a file's bytes, as pipeline() takes them
        wave, rate = _file_bytes(bytes(item), model_rate, what), model_rate
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


def waves_to_walk(waves: object, sampling_rate: int) -> Iterable:
    """The ``waves`` of :meth:`EmotionRecognizer.predict_waves
    <ser_hf.inference.recognizer.EmotionRecognizer.predict_waves>` as a collection to walk, each item a clip.

    Raises:
        AudioError: before anything is walked, for one clip (an array, a 1-D object array of numbers, a path, bytes,
            a dict, a ``(wave, rate)`` pair), a table, or no collection at all (None, a number): a str would be walked
            letter by letter, bytes byte by byte, a dict by its keys, a table by its column names.
    """
    expected = f"waves must be a list of 1-D arrays of samples at {sampling_rate} Hz"
    if is_array(waves) and waves.dtype == object and waves.ndim == 1:  # np.array(clips, dtype=object)
        if waves.size and is_sample(waves[0]):  # wave.astype(object): one clip's samples held as objects
            raise AudioError(f"{expected}, got a 1-D object array of {waves.size} numbers: one clip's samples. Pass "
                             f"them as numbers, [np.asarray(wave, dtype=np.float32)] (or the array to predict, as one "
                             f"clip).")
        return list(waves)
    if is_array(waves):
        raise AudioError(f"predict_waves takes a list of clips, got one array of shape {tuple(waves.shape)}; pass "
                         f"[wave].")
    if not isinstance(waves, Iterable):
        raise AudioError(f"{expected}, got {'None' if waves is None else type(waves).__name__}; pass [wave] for one "
                         f"clip, or [] for none (use predict for files, rates and other inputs).")
    found = not_a_list_of_clips(waves)
    if found is not None:
        raise AudioError(f"{expected}, got {found}. Pass [wave] for one array of samples; for one clip of another kind "
                         f"(a path, bytes, a dict, (wave, rate)) use predict, which takes each of them.")
    return waves


def is_array(item: object) -> bool:
    """A numpy array or a torch tensor: the arrays whose samples ``pipeline()`` takes as one clip.

    Narrower than :func:`~ser_hf.inference.inputs.has_array_shape` (anything with a shape and a dtype), which also
    holds a pandas Series: a Series is a column (of paths, of clips) as often as samples, so it is no clip until the
    caller says which (``series.to_numpy()``, ``list(series)``).
    """
    return isinstance(item, (np.ndarray, torch.Tensor))


def _names_a_float_file(item: Mapping) -> bool:
    """Whether a dict's samples may be taken as a float file's, held to the decoder's limits (a float WAV file may hold
    samples beyond :data:`~ser_hf.audio.MAX_CALLER_PEAK`, which its path, bytes or a torchcodec decoder are scored
    with): its ``"path"`` names an existing file whose header (read alone, never its samples) says FLOAT or DOUBLE.

    Every other dict is held to the caller-array rule (:func:`~ser_hf.audio.caller_samples`): a decoder gives a PCM
    file's samples within [-1, 1], so the relaxation holds nothing else, while ``{"array", "sampling_rate", "path"}``
    is the form a caller copies from a datasets cell, with an id or a made-up name for a path. A hub dataset's cell
    names a file inside its archive, not on disk: samples beyond 16 in it are refused, and its float file is scored
    as stored when passed undecoded (``{"bytes": ..., "path": ...}``, ``Audio(decode=False)``).
    """
    path = item.get("path")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        return False
    try:
        return audio_info(path).subtype in _FLOAT_SUBTYPES
    except (AudioError, OSError, ValueError):  # no file there (or none that can be read): the caller's array
        return False


#: The subtypes of files whose samples a decoder gives as they are stored, beyond [-1, 1] where they are.
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


#: The longest bytes taken for a path when they fail to decode as a file (PATH_MAX on Linux).
_LONGEST_PATH = 4096


def _file_bytes(data: bytes, model_rate: int, what: str) -> np.ndarray:
    """The samples of a file's bytes; bytes that do not decode but name a file (``b"clip.wav"``, a path in the file
    system's encoding) are refused with the fix, not as a bad file to re-encode."""
    try:
        return load_audio_bytes(data, model_rate, what=what)
    except AudioError as err:
        path = _path_in_bytes(data)
        if path is None:
            raise
        exists = "an existing file" if os.path.isfile(path) else "a path to an audio file"
        raise AudioError(f"{what} ({len(data)} bytes) cannot be decoded as an audio file's contents: they name "
                         f"{exists}, {display_path(path)!r}. Bytes are read as a file's contents (as pipeline() "
                         f"reads them); pass the path as text, os.fsdecode(path).") from err


def _path_in_bytes(data: bytes) -> str | None:
    """The path ``data`` spells (short, without NUL, and naming an existing file or, as UTF-8 text, ending in an
    audio extension), None when it is no path."""
    if not data or len(data) > _LONGEST_PATH or b"\0" in data:
        return None
    path = os.fsdecode(data)
    if os.path.isfile(path):
        return path
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() and is_audio_path(text) else None


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
    rows = describe_rows(item)  # df[["path", "label"]].values: list(array) would give rows, not paths
    if rows is not None:
        raise AudioError(f"{what} is {rows} (predict() takes an array as one clip's samples and a list of paths "
                         f"as clips; predict_files takes the column itself).")
    if (item.dtype.kind == "S" or isinstance(first, bytes)) and item.ndim == 0:
        fix = "pass the path itself as text, os.fsdecode(array.item())"  # bytes would be read as a file's contents
    elif item.dtype.kind == "S" or isinstance(first, bytes):
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


#: How :func:`_conversion_hint` tells a DataFrame to be passed (``{column}``: its path column, or its first).
_TABLE_FIX = ("pass one column of clips as a list, e.g. predict(list(df[{column!r}])), or the column of file paths to "
              "predict_files(recognizer, df[{column!r}], out)")


def _conversion_hint(item: object) -> str:
    """How to turn an input of an unexpected kind into one, for the message that refuses it: a collection of clips
    into a list, a collection of samples into one array (never ``list(...)`` of samples: each would be a clip)."""
    if is_sample(item):
        return (" A number is one sample, not a clip: a list given to predict() is a list of clips, so pass the "
                "samples as one array, np.asarray(samples, dtype=np.float32).")
    if isinstance(item, list):
        return " Pass the samples as one array: np.asarray(samples, dtype=np.float32)."
    table = describe_table(item, _TABLE_FIX)
    if table is not None:
        return f" It is {table}."
    index = getattr(item, "index", None)  # a pandas Series made of a dict has its keys as index
    if has_array_shape(item) and isinstance(index, Collection) and any(key in index for key in AUDIO_KEYS):
        return (" It is one clip's dict held as a pandas Series (its index holds the dict's keys): pass the dict, "
                "series.to_dict().")
    if isinstance(item, array.array):
        dtype = np.asarray(item).dtype
        return f" Pass its samples as a numpy array, np.asarray(a), which keeps their type (dtype {dtype})."
    if isinstance(item, Iterator):  # a generator: what it yields cannot be looked at without using it up
        return " Pass the clips as a list: list(...)."
    if isinstance(item, Collection) and not isinstance(item, (str, Mapping)):  # a Series, a deque, dict.values()
        return _collection_hint(item)
    return ""


def _collection_hint(item: Collection) -> str:
    """:func:`_conversion_hint` for a collection that is no list: its clips as a list, or, when its first item is a
    number, its samples as one array."""
    try:
        first = next(iter(item), None)
    except TypeError:  # a 0-d array-like, which has no items
        return ""
    if not is_sample(first):
        return " Pass the clips as a list: list(...)."
    if hasattr(item, "to_numpy"):  # a pandas Series: numbers held as objects would stay objects in the array
        as_numbers = "" if getattr(getattr(item, "dtype", None), "kind", "O") in "iuf" else "dtype=np.float32"
        return f" Pass its samples as one array: series.to_numpy({as_numbers})."
    return " Pass the samples as one array: np.asarray(list(samples), dtype=np.float32)."
