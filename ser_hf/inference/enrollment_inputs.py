"""What speaker enrollment takes in: the ``clips`` argument, the clips an offset is learnt from, and the paths of
enrollment files (:mod:`ser_hf.inference.speakers` enrolls, scores and saves).

- :func:`enrollment_inputs`: ``enroll(speaker, clips)`` needs a list of clips; one clip (a path, an array, a
  ``(wave, rate)`` pair) would be taken apart (a path letter by letter, an array sample by sample, a pair as two
  clips), so it is refused with the fix.
- :func:`screen_clips`: silent and voiceless clips (:func:`enrollment_level_db`, :func:`silent_clips`) and repeats
  of a clip (the same samples) are left out before the encoder runs: neither tells anything of the speaker's voice,
  and each would count toward the minimum.
- :func:`enrollment_pair`: the ``.json`` + ``.safetensors`` an enrollment path names, refused with the fix when no
  file can be there (a folder, a NUL, a name longer than the file system holds, a place under a file).

Example:
    ```python
    >>> import numpy as np
    >>> t = np.arange(16000) / 16000  # a voice-like clip: a pitch that moves, syllables that come and go
    >>> voice = 0.25 * np.sin(2 * np.pi * (150 * t + 20 * t * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    >>> kept, silent, repeated = screen_clips([voice, np.zeros(16000), voice], sampling_rate=16000)
    >>> len(kept), silent, repeated
    (1, 1, 1)
    >>> enrollment_pair("out/speakers.json")
    (PosixPath('out/speakers.json'), PosixPath('out/speakers.safetensors'))

    ```
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf._output_folders import name_max
from ser_hf.audio.arrays import AUDIO_KEYS
from ser_hf.audio.voicing import holds_voice
from ser_hf.errors import SERError
from ser_hf.inference.inputs import describe_rows, describe_table, has_array_shape, is_path_array
from ser_hf.inference.streaming import window_level_db
from ser_hf.paths import display_path, path_text, printable

__all__ = ["ENROLLMENT_SILENCE_DB", "NO_VOICE_DB", "clip_key", "enrollment_inputs", "enrollment_level_db",
           "enrollment_pair", "not_a_list_of_clips", "screen", "screen_clips", "shown_path", "silent_clips"]

#: An enrollment clip quieter than this (RMS level, dB full scale) holds no voice to learn an offset from: its pooled
#: states are the encoder's answer to silence, which would pull the speaker's offset far from their voice.
ENROLLMENT_SILENCE_DB = -60.0
#: The level :func:`enrollment_level_db` gives a clip that holds no voice: that of digital silence.
NO_VOICE_DB = -200.0


def enrollment_level_db(wave: np.ndarray, sampling_rate: int) -> float:
    """The level enrollment screens a clip (or a stream's window) by, measured before the checkpoint's cleaning: its
    RMS level (:func:`~ser_hf.inference.streaming.window_level_db`), or :data:`NO_VOICE_DB` when it holds no voice
    (:func:`~ser_hf.audio.voicing.holds_voice`: a hum, a buzz, steady noise, clicks). Loud is not voiced: an offset
    learnt from a hum is the hum's."""
    level = window_level_db(wave)
    if level < ENROLLMENT_SILENCE_DB:  # silence needs no voicing analysis
        return level
    return level if holds_voice(wave, sampling_rate) else NO_VOICE_DB


def silent_clips(levels: Sequence[float]) -> list[bool]:
    """Which enrollment clips are silent or voiceless, from their levels in dB full scale
    (:func:`enrollment_level_db`): below :data:`ENROLLMENT_SILENCE_DB`. Each clip is judged on
    its own level: enrollment clips are separate recordings, often at different gains, so quiet speech next to a loud
    session is still speech (a stream gates its windows against its own peak instead)."""
    return [level < ENROLLMENT_SILENCE_DB for level in levels]


def clip_key(wave: np.ndarray) -> bytes:
    """What makes two clips one recording: a SHA-256 of their float32 samples."""
    return hashlib.sha256(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).digest()


def screen(levels: Sequence[float], keys: Sequence[bytes]) -> tuple[list[bool], int, int]:
    """Which of one speaker's clips enrollment learns from, from each clip's level (:func:`enrollment_level_db`,
    measured before the checkpoint's cleaning: a peak-normalised hiss is still silence) and :func:`clip_key`:
    ``(kept, silent, repeated)``, ``kept`` one flag per clip.

    Silent and voiceless clips (:func:`silent_clips`) are left out: the encoder's answer to silence or a hum is no
    voice. So is a clip whose samples are those of an earlier one (the same file twice, a link beside its target): it
    would count twice toward the minimum of clips while telling nothing new.
    """
    silent = silent_clips(list(levels))
    kept, seen, repeated = [], set(), 0
    for key, quiet in zip(keys, silent):
        repeat = not quiet and key in seen
        repeated += repeat
        kept.append(not quiet and not repeat)
        seen.add(key)
    return kept, int(sum(silent)), repeated


def screen_clips(waves: Sequence[np.ndarray], levels: Sequence[float] | None = None, *,
                 sampling_rate: int | None = None) -> tuple[list[np.ndarray], int, int]:
    """The enrollment clips an offset is learnt from, by :func:`screen`: ``(kept waves, silent, repeated)``.
    ``waves`` are ready 1-D arrays at the model's rate; ``levels`` their levels before cleaning
    (:func:`enrollment_level_db`), measured here when not given (then ``sampling_rate``, the waves' rate, is needed)."""
    waves = list(waves)
    if levels is None:
        if sampling_rate is None:
            raise TypeError("screen_clips needs the waves' levels or their sampling_rate")
        levels = [enrollment_level_db(wave, sampling_rate) for wave in waves]
    levels = list(levels)
    kept, silent, repeated = screen(levels, [clip_key(wave) for wave in waves])
    return [wave for wave, keep in zip(waves, kept) if keep], silent, repeated


def enrollment_inputs(clips: Any, speaker: str) -> list:
    """The ``clips`` of :meth:`~ser_hf.inference.recognizer.EmotionRecognizer.enroll` as a list.

    A column of bytes (a numpy array of dtype ``S`` or of objects, a pandas Series or Index) holds paths in the file
    system's encoding, as ``predict_files`` takes it (:func:`os.fsdecode` of each): numpy drops the trailing NUL bytes
    of an ``S`` array's items, so it cannot hold a file's bytes, and bytes holding a NUL (every audio file's header
    has one) are a file's contents, kept as they are. A list of bytes is a list of clips as ``predict`` takes it
    (each a file's contents).

    Raises:
        SERError: for one clip instead of a list of them (a path would be taken letter by letter, an array sample by
            sample, ``(wave, rate)`` as two clips), for a table (its column names would be the clips) or an array of
            its rows, for what is no list of clips at all, or for no clips.
    """
    shown = printable(str(speaker))[:40]
    if isinstance(clips, np.ndarray) and clips.dtype.kind == "S":
        clips = np.vectorize(os.fsdecode, otypes=[object])(clips) if clips.size else clips.astype(object)
    elif is_path_array(clips) and np.ndim(clips) == 1:  # a Series, an Index or an object array: paths as bytes
        clips = [_bytes_path(clip) for clip in clips]
    found = not_a_list_of_clips(clips)
    if found is not None:
        if describe_table(clips) is not None or describe_rows(clips) is not None:  # it says which column to pass
            fix = ""
        elif found.startswith("a single"):
            fix = f"wrap it: enroll({shown!r}, [clip])"
        else:
            fix = f"pass a list of their clips, e.g. enroll({shown!r}, ['01.wav', '02.wav', '03.wav'])"
        if found.startswith("a single array") and np.ndim(clips) > 1:
            fix += ", or pass a list of arrays, one per clip"
        raise SERError(f"clips must be a list of clips (paths, arrays or (array, rate) pairs); got {found}"
                       f"{'; ' + fix if fix else ''}.")
    clips = list(clips)
    if not clips:
        raise SERError(f"enrollment needs clips: got an empty list for speaker {shown!r}; pass their clips, e.g. "
                       f"enroll({shown!r}, ['01.wav', '02.wav', '03.wav']) (3 or more to adapt to them).")
    return clips


def _bytes_path(clip: Any) -> Any:
    """One item of a column of clips: bytes without a NUL as the path they spell (:func:`os.fsdecode`), as
    ``predict_files`` reads them; anything else as it is."""
    return os.fsdecode(clip) if isinstance(clip, bytes) and b"\0" not in clip else clip


def not_a_list_of_clips(clips: Any) -> str | None:
    """What ``clips`` is, for a message, when it is not a collection of clips (None when it is): one clip (a path,
    bytes, an array of numbers, a ``(wave, rate)`` pair, a dict of samples), a table or an array of its rows, None, a
    mapping or what cannot be iterated."""
    found = describe_table(clips) or describe_rows(clips)
    if found is not None:
        return found
    if is_path_array(clips) and clips.ndim == 0:  # np.array("a.wav"): one path, which cannot be iterated
        clips = clips.item()
    if isinstance(clips, (str, os.PathLike)):
        return f"a single path {shown_path(clips)!r}"
    if isinstance(clips, (bytes, bytearray, memoryview)):
        return "a single clip (the bytes of a file)"
    # A numpy array or tensor of numbers is one clip's samples; one of paths (a pandas column) is a list of clips,
    # as predict_files takes it.
    if has_array_shape(clips) and not is_path_array(clips):
        return f"a single array of shape {tuple(clips.shape)}"
    if isinstance(clips, tuple) and len(clips) == 2 and _looks_like_rate(clips[1]):  # one clip, not two
        return "a single (array, rate) pair"
    if isinstance(clips, Mapping) and AUDIO_KEYS & set(clips):
        return "a single clip (a dict of its samples)"
    if clips is None or isinstance(clips, Mapping) or not isinstance(clips, Iterable):
        return "None" if clips is None else f"a {type(clips).__name__}"
    return None


def _looks_like_rate(value: Any) -> bool:
    """Whether the second item of a 2-tuple is meant as a sampling rate, usable or not: a number (16000, 16000.0),
    a number as text ("16000"; other text, such as a second path, is a clip), or a 0-d array or tensor
    (``np.array(16000)``, ``torch.tensor(16000)``). Such a tuple is one ``(wave, rate)`` clip to wrap in a list; it
    is not enrolled as two clips, the rate then refused as a file named '16000' or as samples of one number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip().replace(".", "", 1).isdigit()
    return isinstance(value, (int, float, np.integer, np.floating)) or getattr(value, "ndim", None) == 0


#: The bytes :func:`~ser_hf._io.temporary_file` adds to a name (``.NAME.<8 random>.tmp``) while it writes it.
_TEMPORARY_NAME_BYTES = 14


def enrollment_pair(path: str | os.PathLike, action: str = "save") -> tuple[Path, Path]:
    """The ``.json`` and ``.safetensors`` an enrollment ``path`` names (a ``.json``/``.safetensors`` suffix is the
    pair's; any other name is kept whole), after :func:`_check_pair_path`."""
    text = _check_pair_path(path, action)
    path = Path(text)
    base = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".safetensors")


def _check_pair_path(path: Any, action: str) -> str:
    """``path`` as text, refused (SERError naming it and the fix) when it cannot name an enrollment pair: not a path,
    a NUL in it, a folder (empty, ``.``, ``..``, a trailing separator), only a suffix, a name longer than the file
    system holds (with the temporary name a save writes first), or a place under a file."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise SERError(f"cannot {action} enrollments: the path must be a str or os.PathLike, got "
                       f"{type(path).__name__}; pass a file name, e.g. {action}_enrollments('speakers').")
    # '~/spk' is the home folder's, as everywhere in ser_hf; a NUL in it is refused there
    text = os.path.expanduser(path_text(path, f"cannot {action} enrollments: the path"))
    shown = shown_path(text)
    example = "'speakers' (speakers.json + speakers.safetensors)"
    separators = os.sep + (os.altsep or "")
    name = os.path.basename(text)
    if not name or name in (os.curdir, os.pardir) or text.endswith(tuple(separators)):
        folder = text.rstrip(separators) or (os.sep if text.startswith(tuple(separators)) else os.curdir)
        raise SERError(f"cannot {action} enrollments at {shown!r}: it names a folder (empty, '.', '..' or ending with "
                       f"a path separator), expected a file name for the pair; pass e.g. "
                       f"{display_path(os.path.join(folder, 'speakers'))!r} (speakers.json + .safetensors there).")
    if name in (".json", ".safetensors"):
        raise SERError(f"cannot {action} enrollments at {shown!r}: it is only the suffix of the pair; pass a name "
                       f"before it, e.g. {example}.")
    try:
        _check_name_length(text, action)
        blocking = next((parent for parent in Path(text).absolute().parents if parent.exists() or
                         parent.is_symlink()), None)
        if blocking is not None and not blocking.is_dir():
            raise SERError(f"cannot {action} enrollments at {shown!r}: it lies under {display_path(blocking)!r}, "
                           f"which is a file, not a folder; pass a path whose parents are folders.")
    except OSError as error:  # a folder name longer than the file system holds, a folder that cannot be searched
        raise SERError(f"cannot {action} enrollments at {shown!r}: {error.strerror or error}; expected a path "
                       f"whose folders can be reached and whose names fit the file system. Pass another path.") from None
    return text


def shown_path(path: str | os.PathLike) -> str:
    """A path for a message: escapes for bytes that are not UTF-8, shortened when absurdly long."""
    text = display_path(path)
    return text if len(text) <= 120 else f"{text[:100]}...{text[-12:]}"


def _check_name_length(text: str, action: str) -> None:
    """Refuse a pair whose longest file name (``NAME.safetensors``, and for a save its temporary name) the folder's
    file system cannot hold (``NAME_MAX``, 255 bytes on most)."""
    path = Path(text)
    base = path.with_suffix("").name if path.suffix in (".json", ".safetensors") else path.name
    limit = name_max(path)
    extra = len(".safetensors") + (_TEMPORARY_NAME_BYTES if action == "save" else 0)
    size = len(os.fsencode(base))
    if size + extra > limit:
        written = "NAME.safetensors and the temporary file a save writes first add" if action == "save" else \
            "NAME.safetensors adds"
        raise SERError(f"cannot {action} enrollments at {shown_path(text)!r}: its name is {size} bytes; a "
                       f"file name in that folder holds at most {limit}, and {written} {extra}, so the name may be at "
                       f"most {limit - extra} bytes. Pass a shorter name.")
