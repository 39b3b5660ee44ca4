"""A long recording's windows, from an array in memory or from a file decoded twice, block by block.

:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` scores a recording in windows whose spans depend on
its length (the last window ends with the recording) and gates them against its loudest sample, so both must be known
before the first window is scored. An array is in memory already: :func:`array_recording` measures it, and its windows
are views of it. A file need not be: :func:`file_recording` decodes it once block by block
(:func:`~ser_hf.audio.decoding.mono_blocks`) for its length and peak, keeping neither block, then again for its windows,
views of a buffer that holds about one window and one block of a few seconds (:data:`BLOCK_BYTES`): each new block
makes a new buffer, so a window keeps only the buffer it was cut from alive, as long as it is itself kept (one chunk of
windows at most, see :mod:`~ser_hf.inference.window_chunks`). A recording of any length then takes the
memory of a few windows, not its own (0.9 GB for 4 hours at 16 kHz, with a working copy while it was decoded), for a
second decode of the file: small beside scoring its windows (``benchmarks/long_recording_memory.py`` measures both).

The two reads must see one file: its length and peak come from the first, its windows from the second. A file that
changes in between (cut, grown, rewritten or replaced) is refused, never scored as another file gated by the first
one's peak: as soon as the second read runs short, else once it ends (more samples than the first gave, or another
size, time of change or inode). The second read is closed as soon as its windows are (a caller holding an error keeps
no file open).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from ser_hf.audio.decoding import MIN_CLIP_DURATION, PathLike, mono_blocks
from ser_hf.errors import AudioError
from ser_hf.inference.streaming import _peak_db
from ser_hf.paths import display_path

__all__ = ["Recording", "array_recording", "file_recording"]

#: ``(start, end, samples)`` of one window, in samples at the model's rate.
Window = tuple[int, int, np.ndarray]
#: Bytes of the file's float32 samples decoded at a time: a few seconds of audio (4 s of 16 kHz mono), so the buffer
#: windows are cut from stays near one window, where the 2 MiB blocks of a whole-file decode would hold 32 s.
BLOCK_BYTES = 2**18


@dataclass(frozen=True)
class Recording:
    """A recording's length in samples at the model's rate, its loudest sample's level in dB, and how to walk its
    windows: ``windows(spans)`` yields ``(start, end, samples)`` for ``spans`` in order of start (close it once done
    with, so that a file's second read is closed at once, whatever stopped it)."""

    size: int
    peak_db: float
    windows: Callable[[list[tuple[int, int]]], Generator[Window, None, None]]


def array_recording(wave: np.ndarray) -> Recording:
    """A recording held in memory; its windows are views of ``wave``."""
    return Recording(int(wave.size), _peak_db(wave), lambda spans: ((s, e, wave[s:e]) for s, e in spans))


def file_recording(path: PathLike, sampling_rate: int) -> Recording:
    """A recording read from ``path`` at ``sampling_rate``, never held whole (see the module docstring).

    Raises:
        AudioError: naming the file, as :func:`~ser_hf.audio.load_audio` does (unreadable, corrupt data, no sample),
            when it decodes to less than :data:`~ser_hf.audio.MIN_CLIP_DURATION` (a header that promised more), or
            when its second read does not give what the first did (the file changed meanwhile).
    """
    before = _identity(path)
    size, peak_db = 0, _peak_db(np.zeros(0, np.float32))
    for block in mono_blocks(path, sampling_rate, BLOCK_BYTES):
        size += block.size
        peak_db = max(peak_db, _peak_db(block))  # the level of the loudest sample is the loudest block's
    name = display_path(path)
    if size == 0:
        raise AudioError(f"Audio file {name!r} decodes to 0 samples. Re-export or remove it.")
    if size / sampling_rate < MIN_CLIP_DURATION:  # as an array of that length is refused
        raise AudioError(f"Audio file {name!r} decodes to {size} samples at {sampling_rate} Hz "
                         f"({size / sampling_rate * 1000:.1f} ms), though its header says it lasts longer: expected at "
                         f"least {MIN_CLIP_DURATION * 1000:g} ms (speech encoders need 25 ms for one frame). The file "
                         f"is probably cut short: re-export it, or remove it.")
    return Recording(size, peak_db, lambda spans: _file_windows(path, sampling_rate, size, before, spans))


def _identity(path: PathLike) -> tuple[int, ...] | None:
    """What tells a file apart from itself rewritten or replaced: its device, inode, size and time of change (None
    when it cannot be looked up: the decoder then says why)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _changed(path: PathLike, found: str) -> AudioError:
    return AudioError(f"Audio file {display_path(path)!r} {found}: it changed while it was scored. Score a copy that "
                      f"nothing writes to.")


def _file_windows(path: PathLike, sampling_rate: int, size: int, before: tuple[int, ...] | None,
                  spans: list[tuple[int, int]]) -> Generator[Window, None, None]:
    """Each span's samples, decoded afresh: the buffer keeps the samples from the current span's start on (spans
    start in order), so it never holds more than a window and a block. Windows are views (a copy each would cost as
    much again in page faults: 3 s of float32 is above the size a fresh allocation is mapped for). Once the last span
    is cut, the rest of the file is read too, and the file looked up again, to be sure the windows came from the file
    the first read measured (``before``: its :func:`_identity`)."""
    blocks = mono_blocks(path, sampling_rate, BLOCK_BYTES)
    try:
        buffer, first = np.zeros(0, np.float32), 0  # buffer holds samples first .. first + buffer.size
        for start, end in spans:
            while first + buffer.size < end:
                block = next(blocks, None)
                if block is None:
                    raise _changed(path, f"decoded to {first + buffer.size} samples at {sampling_rate} Hz the second "
                                         f"time it was read, {size} the first")
                buffer, first = np.concatenate([buffer[max(0, start - first):], block]), max(first, start)
            yield start, end, buffer[start - first:end - first]
        decoded = first + buffer.size + sum(block.size for block in blocks)
        if decoded != size:
            raise _changed(path, f"decoded to {decoded} samples at {sampling_rate} Hz the second time it was read, "
                                 f"{size} the first")
        if _identity(path) != before:
            raise _changed(path, "was rewritten or replaced between its two reads (its size, time of change or "
                                 "inode differ)")
    finally:
        blocks.close()
