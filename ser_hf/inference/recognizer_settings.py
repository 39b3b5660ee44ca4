"""What an :class:`~ser_hf.inference.recognizer.EmotionRecognizer` takes from its checkpoint's recorded settings.

When ``ser_hf_run.json`` lies beside the checkpoint (or beside an exported ``.onnx`` file), the audio cleaning recorded
at training time (trim, denoise, normalise, crop) is applied to every clip, every window of a long recording and every
window of a stream: :func:`load_run_preprocessor` reads it. ``test_time_copies`` also scores altered copies of every
clip: :func:`parse_copies` checks the copies a caller names, and :func:`recorded_copies` reads those the model's probe
trained on, for ``test_time_copies=True``.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.audio import AudioPreprocessor, clip_copies
from ser_hf.checkpoint import RUN_RECORD, read_run_record, recorded_preprocessor, recorded_training_copies
from ser_hf.errors import ModelError, SERError
from ser_hf.paths import display_path
from ser_hf.ranges import MAX_COPIES, NOISE_SNR, SPEED_FACTOR

__all__ = ["load_run_preprocessor", "parse_copies", "recorded_copies"]


def load_run_preprocessor(model_dir: Path, sampling_rate: int) -> AudioPreprocessor | None:
    """The preprocessing ``ser-hf train`` recorded in ``MODEL/ser_hf_run.json`` (None if none)."""
    if not os.path.lexists(model_dir / RUN_RECORD):  # a dangling link or a folder there is refused, not skipped
        return None
    try:
        record = read_run_record(model_dir)
    except json.JSONDecodeError as err:
        raise SERError(
            f"{model_dir / RUN_RECORD} is not valid JSON ({err}); expected the file `ser-hf train` writes. "
            f"Restore it, or pass preprocessor=None to EmotionRecognizer.from_pretrained to ignore it."
        ) from err
    return recorded_preprocessor(record.get("data", {}), sampling_rate)


def parse_copies(test_time_copies: Any, sampling_rate: int) -> list[tuple[Any, str]]:
    """The ``(copy, name)`` pairs ``test_time_copies`` (``{"speed": [...], "noise": [...]}`` or None) asks for.

    Each list may be a list, a tuple or a 1-D numpy array of numbers. At most :data:`~ser_hf.ranges.MAX_COPIES`
    copies, each named once: a copy is named by its value to 6 significant digits (``0.9x speed``), so ``0.9`` and
    ``0.9000001`` are one copy twice.
    """
    if not test_time_copies:
        return []
    if not isinstance(test_time_copies, dict) or set(test_time_copies) - {"speed", "noise"}:
        raise SERError(f"test_time_copies must map 'speed' and/or 'noise' to lists of numbers, e.g. "
                       f"{{'speed': [0.9, 1.1], 'noise': [20]}}; got {str(test_time_copies)[:100]}.")
    copies = clip_copies(AudioPreprocessor(sampling_rate=sampling_rate), _copy_values(test_time_copies, "speed"),
                         _copy_values(test_time_copies, "noise"))
    problem = _copies_problem([name for _, name in copies])
    if problem:
        # every copy is scored (and enrolled, and saved with a speaker's enrollment) under its name
        raise SERError(f"test_time_copies must name at most {MAX_COPIES} distinct copies; got {problem}. Keep each "
                       f"once, e.g. {{'speed': [0.9, 1.1], 'noise': [20]}}.")
    return copies


def _copy_values(test_time_copies: dict, key: str) -> list:
    """``test_time_copies[key]`` as a list of floats in range (from a list, a tuple or a 1-D numpy array)."""
    values = test_time_copies.get(key)
    if values is None:
        return []
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = list(values)
    allowed = SPEED_FACTOR if key == "speed" else NOISE_SNR
    if isinstance(values, (list, tuple)):  # numpy numbers are numbers too (the range takes Python's)
        values = [float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value
                  for value in values]
    if not isinstance(values, list) or not all(value in allowed for value in values):
        raise SERError(f"test_time_copies[{key!r}] must be a list of {allowed}; got {str(values)[:100]}.")
    return values


def _copies_problem(names: list[str]) -> str | None:
    """What is wrong with copies named ``names`` (more than :data:`~ser_hf.ranges.MAX_COPIES`, or a name twice), for
    a message; None when nothing is."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if len(names) <= MAX_COPIES and not repeated:
        return None
    found = f"{len(names)}{' with repeats' if repeated else ''} ({', '.join(names)[:200]})"
    return f"{found}: {', '.join(repeated)[:200]} more than once (a copy is named by its value to 6 significant " \
           f"digits)" if repeated else found


def recorded_copies(model: str | os.PathLike, resolved: str) -> dict[str, tuple[float, ...]]:
    """The training copies the checkpoint's run record names, for ``test_time_copies=True``.

    Raises:
        SERError: when the record names none.
        ModelError: when it names more than :data:`~ser_hf.ranges.MAX_COPIES`, or one twice (a checkpoint trained
            before that bound): the message says how to go on.
    """
    path = Path(resolved).expanduser()
    speeds, snrs = recorded_training_copies(path.parent if path.is_file() else path)
    if not speeds and not snrs:
        raise SERError(f"test_time_copies=True: {display_path(model)!r} records no training copies (its probe trained "
                       f"without probe_speed_copies or probe_noise_copies, or {RUN_RECORD} is missing), so there "
                       f"is nothing to score besides the clip. Leave them off (without --test-time-copies on the "
                       f"command line), or in Python name the copies instead, e.g. "
                       f"test_time_copies={{'speed': [0.9, 1.1]}}.")
    problem = _copies_problem([name for _, name in clip_copies(AudioPreprocessor(), speeds, snrs)])
    if problem:
        raise ModelError(f"test_time_copies=True: the {RUN_RECORD} of {display_path(model)!r} records training "
                         f"copies (probe_speed_copies and probe_noise_copies) that test-time copies cannot take: "
                         f"{problem}. Test-time copies take at most {MAX_COPIES}, each once (it was trained before that "
                         f"bound, or its record was edited). Leave them off (without --test-time-copies on the command "
                         f"line), or in Python name at most {MAX_COPIES} of them, each once, e.g. "
                         f"test_time_copies={{'speed': [0.9, 1.1], 'noise': [20]}}.")
    return {"speed": speeds, "noise": snrs}
