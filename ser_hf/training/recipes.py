"""Recipes: YAML files of :mod:`ser_hf.training.arguments` keys, with command-line overrides.

As in the transformers examples, a run is configured by one file and ``--key value`` flags that
override it; both go through ``HfArgumentParser``, so a recipe accepts exactly what the flags accept.

Example recipe (``recipes/urdu/whisper-base-probe.yaml``)::

    corpus: urdu
    data_dir: ../shared/data/urdu
    model_name_or_path: whisper-base
    mode: probe
    output_dir: outputs/urdu/whisper-base-probe
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ser_hf.errors import SERError
from ser_hf.training.arguments import DataArguments, ModelArguments, SERTrainingArguments
from ser_hf.training.experiment import Run

ARGUMENT_GROUPS = (DataArguments, ModelArguments, SERTrainingArguments)


def own_keys() -> dict[str, list[str]]:
    """The keys ser_hf adds, by group (training also takes every ``TrainingArguments`` field)."""
    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    training = [f.name for f in dataclasses.fields(SERTrainingArguments) if f.name not in inherited]
    return {
        "data": [f.name for f in dataclasses.fields(DataArguments)],
        "model": [f.name for f in dataclasses.fields(ModelArguments)],
        "training (besides every transformers TrainingArguments field)": training,
    }


def valid_keys() -> set[str]:
    return {f.name for group in ARGUMENT_GROUPS for f in dataclasses.fields(group) if f.init}


def _unknown_key_error(unknown: Sequence[str], source: str) -> SERError:
    keys = valid_keys()
    hints = [f"{key!r} -> did you mean {close[0]!r}?" for key in unknown
             if (close := difflib.get_close_matches(key, keys, n=1))]
    listing = "\n".join(f"  {group}: {', '.join(names)}" for group, names in own_keys().items())
    return SERError(
        f"Unknown key(s) {list(unknown)} in {source}. {' '.join(hints)}\nValid keys:\n{listing}"
    )


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The key/value mapping of a YAML (or JSON) recipe file."""
    path = Path(path)
    if not path.is_file():
        raise SERError(f"Recipe {str(path)!r} does not exist. Pass a YAML file such as recipes/urdu/whisper-base-probe.yaml.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise SERError(f"Recipe {str(path)!r} must be a mapping of keys to values, found {type(values).__name__}.")
    return values


def _as_flags(values: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in values.items():
        if value is None:
            continue  # YAML null: keep the default
        if isinstance(value, bool):
            value = str(value).lower()
        flags += [f"--{key}", *map(str, value)] if isinstance(value, list) else [f"--{key}", str(value)]
    return flags


def parse_run(recipe: str | Path | None = None, overrides: Sequence[str] = (), **values: Any) -> Run:
    """Build a :class:`Run` from a recipe file, then ``--key value`` overrides, then keyword values.

    Raises:
        SERError: for unknown keys (listing the valid ones) or a missing recipe file.
    """
    from_file = read_recipe(recipe) if recipe else {}
    for source, mapping in ((f"recipe {recipe}", from_file), ("the keyword arguments", values)):
        unknown = sorted(set(mapping) - valid_keys())
        if unknown:
            raise _unknown_key_error(unknown, source)
    argv = _as_flags(from_file) + list(overrides) + _as_flags(values)
    parser = HfArgumentParser(ARGUMENT_GROUPS)
    parser.allow_abbrev = False  # a typo like --num_fold must not silently mean --num_folds
    data, model, training, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if remaining:
        flags = [item.lstrip("-").replace("-", "_") for item in remaining if item.startswith("--")]
        raise _unknown_key_error(flags or remaining, "the command line")
    return Run(data, model, training)
