"""The run record of a checkpoint folder: ``ser_hf_run.json``, the settings ``ser-hf train`` ran with.

A checkpoint written by ``ser-hf train`` is a plain ``AutoModelForAudioClassification`` folder plus this record.
Its ``data`` section holds the :class:`~ser_hf.data_arguments.DataArguments`, among them the audio cleaning the
model was trained with (``trim_db``, ``denoise``, ``normalize``, ``max_duration``), which
:class:`~ser_hf.inference.recognizer.EmotionRecognizer` applies again at prediction time.

This module is the record's one owner: training writes it (:func:`write_run_record`), loading reads and checks it
(:func:`read_run_record`, :func:`recorded_preprocessor`). It needs nothing of training or evaluation, so
loading a model for prediction imports neither.

Example:
    ```python
    >>> from ser_hf.checkpoint import read_run_record, recorded_preprocessor
    >>> record = read_run_record("outputs/rav4")
    >>> preprocessor = recorded_preprocessor(record.get("data", {}), 16000)  # None: trained on plain audio

    ```
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ser_hf._io import read_json, refuse_dangling_link, write_output_file
from ser_hf.audio import AudioPreprocessor
from ser_hf.data_arguments import DataArguments
from ser_hf.errors import ModelError, SERError
from ser_hf.names import speaker_text
from ser_hf.ranges import NOISE_SNR, SPEED_FACTOR

__all__ = [
    "CARD_DATA_FILE", "CHECKPOINT_FILES", "MODEL_CARD", "RUN_RECORD", "check_checkpoint_dir", "read_run_record",
    "recorded_preprocessor", "recorded_training_copies", "write_run_record",
]

#: The files (patterns) a checkpoint folder needs to load, each with how to make it.
CHECKPOINT_FILES: dict[str, str] = {
    "config.json": "save the model with save_pretrained (ser_hf.models.factory.save_checkpoint)",
    "*.safetensors": "save the weights as safetensors: model.save_pretrained(DIR, safe_serialization=True)",
    "preprocessor_config.json": "save the feature extractor beside the weights: feature_extractor.save_pretrained(DIR)",
}
_LISTED = "config.json, model.safetensors and preprocessor_config.json"

#: The run record's file name, beside the weights.
RUN_RECORD = "ser_hf_run.json"
#: The model card beside the weights, and the card data it is rendered from (:mod:`ser_hf.cards` writes both; a
#: released model ships them beside its head).
MODEL_CARD = "README.md"
CARD_DATA_FILE = "ser_hf_card.json"
_RUN_FIX = (f"Restore the {RUN_RECORD} that `ser-hf train` wrote beside the weights, or delete it to use the model "
            f"without its recorded audio cleaning (EmotionRecognizer.from_pretrained(..., preprocessor=None) ignores it).")
#: The fields of the record's ``data`` section that make the audio cleaning.
_CLEANING = ("trim_db", "denoise", "normalize", "max_duration")


def check_checkpoint_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a checkpoint folder loading can use: :data:`CHECKPOINT_FILES`, safetensors weights.

    Returns:
        The folder.

    Raises:
        ModelError: naming the folder, the missing file, what it holds and how to make the file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(
            f"model directory {str(path)!r} does not exist. Pass a checkpoint directory written by save_pretrained "
            f"({_LISTED}), e.g. the output_dir of `ser-hf train`."
        )
    if not path.is_dir():
        raise ModelError(f"model {str(path)!r} is a file; pass the directory that holds {_LISTED}.")
    found = sorted(p.name for p in path.iterdir())
    for name in ("config.json", "preprocessor_config.json"):
        refuse_dangling_link(path / name, f"model directory {str(path)!r}: {name}",
                             "restore the file it points to, or put the file itself there.")
    if not (path / "config.json").is_file():
        raise ModelError(f"model directory {str(path)!r} has no config.json (found {found}); expected {_LISTED}.")
    if not any(path.glob("*.safetensors")):
        raise ModelError(
            f"model directory {str(path)!r} has no *.safetensors weights (found {found}). ser_hf loads only "
            f"safetensors, which need no pickle. Convert a trusted pickle checkpoint once with "
            f"`AutoModelForAudioClassification.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`."
        )
    if not (path / "preprocessor_config.json").is_file():
        raise ModelError(
            f"model directory {str(path)!r} has no preprocessor_config.json (found {found}). Save the feature "
            f"extractor beside the weights: `feature_extractor.save_pretrained(DIR)`."
        )
    return path


def write_run_record(directory: str | os.PathLike, settings: Mapping[str, Any]) -> Path:
    """Write ``settings`` (a run's arguments, as :meth:`~ser_hf.training.run.Run.settings` gives them) as the record.

    Returns:
        The file written.
    """
    path = Path(directory) / RUN_RECORD
    write_output_file(path, json.dumps(settings, indent=2, default=str) + "\n")
    return path


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a DataArguments annotation names (int is a float; bool is neither)."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return any(isinstance(value, option) for option in allowed if isinstance(option, type) and option is not bool)


def _type_name(hint: Any) -> str:
    """``float | None`` for a resolved annotation (``field.type`` is no guide: HfArgumentParser rewrites it)."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " | ".join("None" if option is type(None) else getattr(option, "__name__", str(option)) for option in allowed)


def _data_settings(data: Any, path: Path) -> dict[str, Any]:
    """The ``data`` section of the record, its known fields checked for type, choices and range."""
    if not isinstance(data, dict):
        raise ModelError(f"{path}: 'data' must be an object of data arguments, found {type(data).__name__}. {_RUN_FIX}")
    hints = typing.get_type_hints(DataArguments)
    known = {}
    for item in dataclasses.fields(DataArguments):
        if item.name not in data:
            continue
        value, choices = data[item.name], item.metadata.get("choices")
        if not _matches(value, hints[item.name]) or (choices and value not in choices):
            expected = f"one of {choices}" if choices else _type_name(hints[item.name])
            raise ModelError(f"{path}: data.{item.name} is {value!r}; expected {expected}. {_RUN_FIX}")
        known[item.name] = value
    try:
        DataArguments(**known)  # the ranges every data argument declares
    except SERError as err:
        raise ModelError(f"{path}: {err} {_RUN_FIX}") from None
    return known


def _held_out_speakers(report_file: Path) -> list[str] | None:
    fix = "Restore it, or delete it to evaluate without the speakers held out in training."
    metadata = read_json(report_file, fix=fix, max_bytes=64 * 2**20).get("metadata", {})
    speakers = metadata.get("speakers") if isinstance(metadata, dict) else None
    if speakers is not None and not (isinstance(speakers, list) and all(isinstance(s, str) for s in speakers)):
        raise ModelError(f"{report_file}: metadata.speakers must be a list of speaker ids, found "
                         f"{str(speakers)[:100]}. {fix}")
    # In the one form corpora give ids now: a record written before (an NFD 'José') still names its speaker.
    return None if speakers is None else [speaker_text(speaker) for speaker in speakers]


def read_run_record(model_dir: str | os.PathLike) -> dict[str, Any]:
    """What ``ser-hf train`` recorded beside the checkpoint: its data settings and held-out speakers (or {}).

    Returns:
        ``{"data": {...}}`` from the record (only the known data arguments) and ``{"test_speakers": [...]}`` from
        ``eval/report.json``, each when its file exists.

    Raises:
        ModelError: the record or ``eval/report.json`` cannot be used: not JSON, not an object, or a data setting
            of the wrong type, outside its choices or out of range (the message names the file, the field, the
            value and the fix), so a bad record fails when the model is loaded, not on every clip.
    """
    record: dict[str, Any] = {}
    run_file, report_file = Path(model_dir) / RUN_RECORD, Path(model_dir) / "eval" / "report.json"
    fixes = {run_file: _RUN_FIX, report_file: "Restore the eval/report.json `ser-hf train` wrote, or delete it (the "
                                               "speakers the model was tested on are then unknown)."}
    refuse_dangling_link(Path(model_dir) / "eval", str(Path(model_dir) / "eval"),
                         f"the record of the speakers the model was tested on cannot be read. {fixes[report_file]}")
    for file, fix in fixes.items():  # a record that is there but unreadable must not pass for no record
        refuse_dangling_link(file, str(file), f"the model's training record cannot be read. {fix}")
        if file.exists() and not file.is_file():
            raise ModelError(f"{file} is not a regular file (a folder, a pipe or a device). {fix}")
    if run_file.is_file():
        record["data"] = _data_settings(read_json(run_file, fix=_RUN_FIX).get("data", {}), run_file)
    if report_file.is_file():
        record["test_speakers"] = _held_out_speakers(report_file)
    return record


def recorded_training_copies(model_dir: str | os.PathLike) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The altered copies of every clip the model's probe trained on: ``(speed factors, noise SNRs in dB)`` from its
    record's ``probe`` section (``probe_speed_copies``, ``probe_noise_copies``); both empty without them.

    Raises:
        ModelError: the record cannot be used, or holds a copy setting that is not a list of numbers in range (the
            message names the file, the field, the value and the fix).
    """
    run_file = Path(model_dir) / RUN_RECORD
    if not run_file.is_file():
        return (), ()
    probe = read_json(run_file, fix=_RUN_FIX).get("probe") or {}
    if not isinstance(probe, dict):
        raise ModelError(f"{run_file}: 'probe' must be an object of probe arguments, found {type(probe).__name__}. "
                         f"{_RUN_FIX}")
    copies = []
    for key, allowed in (("probe_speed_copies", SPEED_FACTOR), ("probe_noise_copies", NOISE_SNR)):
        values = probe.get(key) or []
        if not isinstance(values, list) or not all(value in allowed for value in values):
            raise ModelError(f"{run_file}: probe.{key} is {str(values)[:100]}; expected a list of {allowed}. "
                             f"{_RUN_FIX}")
        copies.append(tuple(float(v) for v in values))
    return copies[0], copies[1]


def recorded_preprocessor(data_settings: Mapping[str, Any], sampling_rate: int) -> AudioPreprocessor | None:
    """The audio cleaning the model was trained with (None when it used none: plain decoding).

    Args:
        data_settings: The record's checked ``data`` section (:func:`read_run_record`).
        sampling_rate: The model's sampling rate.
    """
    cleaning = {name: data_settings.get(name) for name in _CLEANING}
    if all(value is None for value in cleaning.values()):
        return None
    return AudioPreprocessor(sampling_rate=sampling_rate, **cleaning)
