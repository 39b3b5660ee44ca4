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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ser_hf.audio.decoding import PathLike, mono_blocks
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
    windows: ``windows(spans)`` yields ``(start, end, samples)`` for ``spans`` in order of start."""

    size: int
    peak_db: float
    windows: Callable[[list[tuple[int, int]]], Iterator[Window]]


def array_recording(wave: np.ndarray) -> Recording:
    """A recording held in memory; its windows are views of ``wave``."""
    return Recording(int(wave.size), _peak_db(wave), lambda spans: ((s, e, wave[s:e]) for s, e in spans))


def file_recording(path: PathLike, sampling_rate: int) -> Recording:
    """A recording read from ``path`` at ``sampling_rate``, never held whole (see the module docstring).

    Raises:
        AudioError: naming the file, as :func:`~ser_hf.audio.load_audio` does (unreadable, corrupt data, no sample),
            or when its second decode gives fewer samples than its first (the file changed meanwhile).
    """
    size, peak_db = 0, _peak_db(np.zeros(0, np.float32))
    for block in mono_blocks(path, sampling_rate, BLOCK_BYTES):
        size += block.size
        peak_db = max(peak_db, _peak_db(block))  # the level of the loudest sample is the loudest block's
    if size == 0:
        raise AudioError(f"Audio file {display_path(path)!r} decodes to 0 samples. Re-export or remove it.")
    return Recording(size, peak_db, lambda spans: _file_windows(path, sampling_rate, size, spans))


def _file_windows(path: PathLike, sampling_rate: int, size: int, spans: list[tuple[int, int]]) -> Iterator[Window]:
    """Each span's samples, decoded afresh: the buffer keeps the samples from the current span's start on (spans
    start in order), so it never holds more than a window and a block. Windows are views (a copy each would cost as
    much again in page faults: 3 s of float32 is above the size a fresh allocation is mapped for)."""
    blocks = mono_blocks(path, sampling_rate, BLOCK_BYTES)
    buffer, first = np.zeros(0, np.float32), 0  # buffer holds samples first .. first + buffer.size
    for start, end in spans:
        while first + buffer.size < end:
            block = next(blocks, None)
            if block is None:
                raise AudioError(f"Audio file {display_path(path)!r} decoded to {first + buffer.size} samples at "
                                 f"{sampling_rate} Hz the second time it was read, {size} the first: it changed "
                                 f"while it was scored. Score a copy that nothing writes to.")
            buffer, first = np.concatenate([buffer[max(0, start - first):], block]), max(first, start)
        yield start, end, buffer[start - first:end - first]
    blocks.close()
