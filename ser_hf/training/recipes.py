"""Recipes: YAML files of :mod:`ser_hf.training.arguments` keys, with command-line overrides.

As in the transformers examples, a run is configured by one file and ``--key value`` flags that
override it; both go through ``HfArgumentParser``, so a recipe accepts exactly what the flags accept.

Example recipe (``recipes/urdu/whisper-base-probe.yaml``)::

    corpus: urdu
    data_dir: ../shared/data/urdu
    model_name_or_path: whisper-base
    mode: probe
    output_dir: outputs/urdu/whisper-base-probe

Comma-separated settings (``corpus``, ``data_dir``, ``emotions``, ``lora_target_modules``) also take a YAML
list, joined with commas: ``corpus: [urdu, ravdess]`` with ``data_dir: [data/urdu, data/ravdess]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import math
import os
import typing
from collections.abc import Hashable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ser_hf._io import unique_keys
from ser_hf.errors import SERError
from ser_hf.paths import display_path, path_text
from ser_hf.ranges import take_negative_numbers
from ser_hf.training.arguments import DataArguments, ModelArguments, ProbeArguments, SERTrainingArguments
from ser_hf.training.run import Run

logger = logging.getLogger(__name__)

#: The run's argument groups, in the order ``HfArgumentParser`` returns them (see :class:`~ser_hf.training.run.Run`).
ARGUMENT_GROUPS = (DataArguments, ModelArguments, SERTrainingArguments, ProbeArguments)


def own_fields() -> dict[str, list[dataclasses.Field]]:
    """The recipe keys ser_hf adds, as dataclass fields (with their help), by group.

    Training also takes every ``TrainingArguments`` field.
    """
    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {
        "data": list(dataclasses.fields(DataArguments)),
        "model": list(dataclasses.fields(ModelArguments)),
        "training (besides every transformers TrainingArguments field)":
            [f for f in dataclasses.fields(SERTrainingArguments) if f.name not in inherited],
        "probe": list(dataclasses.fields(ProbeArguments)),
    }


def own_keys() -> dict[str, list[str]]:
    """The names of :func:`own_fields`, by group."""
    return {group: [f.name for f in fields] for group, fields in own_fields().items()}


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


#: Recipes are a few hundred bytes; a larger file is a mistake (or hostile) and is refused before parsing.
MAX_RECIPE_BYTES = 1 << 20
#: Values a recipe may hold once YAML aliases are expanded. Real recipes have under a hundred; nested aliases
#: (the "billion laughs" file) grow exponentially and are stopped here, while still being composed.
MAX_RECIPE_VALUES = 10_000
#: Characters of text a recipe may hold once aliases are expanded: a few long strings repeated by aliases stay
#: under the value count but expand to gigabytes (a 132 KB file reached 4.4 GB).
MAX_RECIPE_EXPANDED_CHARS = MAX_RECIPE_BYTES

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and caps how many values aliases expand to."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        # id(node) -> (values, characters) it stands for, aliases expanded
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent, index):
        is_alias = self.check_event(yaml.AliasEvent)
        line = self.peek_event().start_mark.line + 1
        node = super().compose_node(parent, index)
        if is_alias:
            size = self._sizes.get(id(node))
            if size is None:
                raise SERError(f"Recipe {self.source}, line {line}: an alias refers to a value that contains it "
                               f"(a recursive structure). Recipes are flat 'key: value' files; write the value out.")
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else (
                [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else [])
            sizes = [self._sizes[id(child)] for child in children]
            text = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            size = (1 + sum(values for values, _ in sizes), text + sum(chars for _, chars in sizes))
            self._sizes[id(node)] = size
        values, chars = size
        if values > MAX_RECIPE_VALUES or chars > MAX_RECIPE_EXPANDED_CHARS:
            what = (f"more than {MAX_RECIPE_VALUES} values" if values > MAX_RECIPE_VALUES else
                    f"more than {MAX_RECIPE_EXPANDED_CHARS} characters of text")
            raise SERError(
                f"Recipe {self.source}, line {line}: YAML aliases (*name) expand to {what}, so the file is refused "
                f"before it is expanded (aliases of aliases grow exponentially, aliases of long strings too). "
                f"Recipes are flat 'key: value' files; write the values out instead of using anchors and aliases."
            )
        return node

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # '<<: *base' merges are explicit overrides, not duplicates
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in seen:
                raise SERError(
                    f"Recipe {self.source}: key {key!r} appears twice (lines {seen[key]} and {line}); YAML would "
                    f"silently keep the last value. Keep one of them."
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _json_object(source: str):
    return unique_keys(lambda repeated: SERError(
        f"Recipe {source}: key(s) {repeated} appear more than once; JSON would silently keep the last value. "
        f"Keep one of each."))


def _parse(text: str, path: Path) -> Any:
    source = display_path(path)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_json_object(source))
        loader = _RecipeLoader(text, source)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        reason = " ".join(str(err).split())
        raise SERError(f"Recipe {source} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                       f"({reason}). Fix the line it names.") from None
    except RecursionError:
        raise SERError(f"Recipe {source} nests values too deeply to parse; recipes are flat 'key: value' files.") from None


def _check_values(values: dict, source: str) -> None:
    for key, value in values.items():
        if not isinstance(key, str):
            raise SERError(f"Recipe {source}: key {key!r} is not text ({type(key).__name__}); keys are argument names "
                           f"such as learning_rate.")
        items = value if isinstance(value, list) else [value]
        if not all(item is None or isinstance(item, (str, int, float, bool)) for item in items):
            raise SERError(
                f"Recipe {source}: {key} holds a {type(value).__name__} with nested values ({str(value)[:80]}); a "
                f"recipe value is a single value or a flat list, e.g. 'gain_db: [-6, 6]'."
            )
        if isinstance(value, list) and any(isinstance(item, float) and not math.isfinite(item) for item in items):
            # Checked here, not by the field's range: argparse would take '-inf' in a list for a flag.
            raise SERError(f"{key} must hold finite numbers, got {value!r}. Set in recipe {source}: change it there.")


def read_recipe(path: str | bytes | os.PathLike) -> dict[str, Any]:
    """The key/value mapping of a YAML (or JSON, by its ``.json`` suffix) recipe file.

    Raises:
        SERError: naming the file, for a missing, oversized or unparsable file, a key given twice, YAML aliases
            that expand to more than :data:`MAX_RECIPE_VALUES` values, or a value that is not a single value
            or a flat list.
    """
    path = path_text(path, "The recipe path")  # bytes and path-likes giving them too
    if not path:  # Path("") is the current folder, and "" must not quietly mean "the defaults"
        raise SERError("The recipe path is an empty string. Pass a YAML file such as "
                       "recipes/urdu/whisper-base-probe.yaml, or no recipe for the defaults.")
    shown, path = display_path(path), Path(path)  # shown: a name that is not UTF-8 as \xNN, never lone surrogates
    if not path.is_file():
        raise SERError(f"Recipe {shown!r} does not exist. Pass a YAML file such as recipes/urdu/whisper-base-probe.yaml.")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise SERError(f"Recipe {shown} is {size} bytes; recipes are small key: value files (at most "
                       f"{MAX_RECIPE_BYTES} bytes). Check that this is the file you meant.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SERError(f"Recipe {shown} is not UTF-8 text ({err}); save it as UTF-8.") from None
    values = _parse(text, path)
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise SERError(f"Recipe {shown!r} must be a mapping of keys to values, found {type(values).__name__}.")
    _check_values(values, shown)
    return values


def _text(value: Any, key: str = "a recipe value") -> str:
    if isinstance(value, (bytes, os.PathLike)):  # a path (data_dir, output_dir, ...): str() would give its repr
        return path_text(value, key)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _list_item(value: Any) -> str:
    text = _text(value)
    if isinstance(value, float) and math.isfinite(value) and text.startswith("-"):
        # argparse reads '-1e-05' as an unknown flag, not a number; '-0.00001' it reads as a number.
        text = format(Decimal(text), "f")
    return text


#: Text settings that hold comma-separated items: a YAML list for one of them is joined with commas
#: (``corpus: [urdu, ravdess]`` is ``corpus: urdu,ravdess``).
COMMA_SEPARATED_KEYS = frozenset({"corpus", "data_dir", "emotions", "lora_target_modules"})


#: List settings a recipe may turn on that the command line (or a keyword, or an empty YAML list) can turn off
#: again: ``--probe_speed_copies none``.
CLEARABLE_KEYS = frozenset({"probe_speed_copies", "probe_noise_copies"})
NONE = "none"


def _cleared(argv: list[str]) -> list[str]:
    """``argv`` without any clearable list whose last setting is ``none`` (it falls back to its default: off).

    A flag's values are the items after it up to the next ``--flag`` (``--key=value`` holds its own)."""
    segments: list[list[str]] = []
    for item in argv:
        if item.startswith("--") or not segments:
            segments.append([item])
        else:
            segments[-1].append(item)

    def values(segment: list[str]) -> list[str]:
        _, equals, inline = segment[0].partition("=")
        return ([inline] if equals else []) + segment[1:]

    last = {_flag_key(segment[0]): segment for segment in segments if _flag_key(segment[0]) in CLEARABLE_KEYS}
    off = set()
    for key, segment in last.items():
        given = [value.lower() for value in values(segment)]
        if NONE in given and given != [NONE]:
            raise SERError(f"{key}: '{NONE}' turns it off and stands alone; got {values(segment)}. Give either "
                           f"'{NONE}' or the values.")
        if given == [NONE]:
            off.add(key)
    # A clearable key keeps only its last setting (the one that wins), and none at all when that says 'none'.
    kept = [segment for segment in segments
            if _flag_key(segment[0]) not in last or (segment is last[_flag_key(segment[0])] and
                                                     _flag_key(segment[0]) not in off)]
    return [item for segment in kept for item in segment]


def _joined(key: str, value: list) -> str:
    items = [_text(item, key) for item in value]
    if any("," in item for item in items):
        raise SERError(f"{key}: the list {value!r} has an item with a comma; {key} items are joined with commas, so "
                       f"an item cannot hold one (rename the folder, or use a symlink without a comma).")
    return ",".join(items)


def _as_flags(values: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in values.items():
        if value is None:
            continue  # YAML null: keep the default
        if isinstance(value, list) and key in COMMA_SEPARATED_KEYS:
            flags.append(f"--{key}={_joined(key, value)}")
        elif key in CLEARABLE_KEYS and value in ([], NONE):
            flags += [f"--{key}", NONE]  # an empty list turns the setting off
        elif isinstance(value, list):
            flags += [f"--{key}", *map(_list_item, value)]
        else:
            flags.append(f"--{key}={_text(value, key)}")  # '=': values such as -1e-5 or -inf stay values
    return flags


def _flag_key(item: str) -> str:
    return item.lstrip("-").split("=", 1)[0].replace("-", "_")


def _origin(key: str, recipe: str | None, overrides: Sequence[str], values: dict[str, Any]) -> str:
    """Where the value of ``key`` that won came from (keywords override flags, which override the recipe)."""
    if key in values:
        return f"the keyword argument {key}="
    if any(item.startswith("--") and _flag_key(item) == key for item in overrides):
        return f"the command line (--{key})"
    if recipe is not None:
        return f"recipe {display_path(recipe)}"
    return "the defaults"


def parse_run(recipe: str | bytes | os.PathLike | None = None, overrides: Sequence[str] = (), **values: Any) -> Run:
    """Build a :class:`Run` from a recipe file, then ``--key value`` overrides, then keyword values.

    Every value is checked where it is parsed: types, and the range each field declares
    (:mod:`ser_hf.ranges`; e.g. epochs >= 1, probabilities in [0, 1], no NaN or infinite floats).

    Raises:
        SERError: for unknown keys (listing the valid ones), a missing or malformed recipe file (see
            :func:`read_recipe`), or a value of the wrong type or out of range; the message names the key,
            the value, what is allowed and where the value was set (recipe file, command line, keyword).
    """
    # converted once: messages name a bytes or path-like recipe by its path, never by its repr
    recipe = None if recipe is None else path_text(recipe, "The recipe path")
    from_file = read_recipe(recipe) if recipe is not None else {}
    in_recipe = f"recipe {display_path(recipe)}" if recipe is not None else "the recipe"
    for source, mapping in ((in_recipe, from_file), ("the keyword arguments", values)):
        unknown = sorted(set(mapping) - valid_keys())
        if unknown:
            raise _unknown_key_error(unknown, source)
    # exit_on_error=False: a bad value raises ArgumentError (answered below) instead of exiting the process.
    parser = HfArgumentParser(ARGUMENT_GROUPS, exit_on_error=False)
    take_negative_numbers(parser)  # --gain_db -1e1 0 is two numbers, as on every other ser-hf command
    parser.allow_abbrev = False  # a typo like --num_fold must not silently mean --num_folds
    for source, mapping in ((in_recipe, from_file), ("the keyword arguments", values)):
        _refuse_lists_for_single_values(parser, mapping, source)
    argv = _cleared(_as_flags(from_file) + list(overrides) + _as_flags(values))
    try:
        data, model, training, probe, remaining = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True)
    except argparse.ArgumentError as err:
        key = _flag_key((err.argument_name or "").split("/")[0])
        raise SERError(f"{key}: {err.message} (set in {_origin(key, recipe, overrides, values)}); expected "
                       f"{_kind(key)}.") from None
    except SERError as err:
        key = getattr(err, "field", None)
        if key is None:
            raise
        raise type(err)(f"{err} Set in {_origin(key, recipe, overrides, values)}: change it there.") from None
    except ValueError as err:  # transformers' own consistency checks in TrainingArguments.__post_init__
        where = f"{in_recipe} and the command line" if recipe else "the command line"
        raise SERError(f"Invalid training arguments ({' '.join(str(err).split())}). Fix them in {where}.") from None
    if remaining:
        flags = [_flag_key(item) for item in remaining if item.startswith("--")]  # --key=-.5 names key alone
        if not flags:  # '--train_top_layers 1 2': the 2 is no key
            raise SERError(f"the command line has value(s) {remaining} that no setting takes: a setting before them "
                           f"takes one value. Pass one value per setting, e.g. --train_top_layers 2.")
        raise _unknown_key_error(flags, "the command line")
    for key, finetune_setting in (("probe_speed_copies", "speed_perturb (e.g. 0.9 1.0 1.1)"),
                                  ("probe_noise_copies", "noise_snr_db (e.g. 10 30)")):
        if model.mode != "probe" and getattr(probe, key) and training.head_init != "probe":
            # Not an error: switching a probe recipe to another mode with --mode is a normal thing to do.
            instead = (f"to augment fine-tuning the same way, set {finetune_setting}" if model.mode == "finetune"
                       else "partial fine-tuning trains on cached layer inputs, which its partial_mask_* settings "
                            "augment")
            logger.warning("%s (set in %s) trains the frozen probe and the starting head of head_init: probe; "
                           "mode: %s without head_init: probe ignores it (%s).",
                           key, _origin(key, recipe, overrides, values), model.mode, instead)
    given = {*from_file, *values, *(_flag_key(item) for item in overrides if item.startswith("--"))}
    return Run(data, model, training, probe, given=frozenset(given))


def _refuse_lists_for_single_values(parser: HfArgumentParser, mapping: dict[str, Any], source: str) -> None:
    """Refuse a list of several values for a setting that takes one (``train_top_layers: [1, 2]`` failed as an
    unknown key '2' of the command line). A one-item list stays its item, as it always was (``report_to:
    [tensorboard]`` is a common way to write it)."""
    for key, value in mapping.items():
        if not isinstance(value, list) or len(value) < 2 or key in COMMA_SEPARATED_KEYS:
            continue
        action, field = parser._option_string_actions.get(f"--{key}"), _field(key)
        declared = "" if field is None else str(field.type)
        # A type that holds a list anywhere (transformers' fsdp, optim_target_modules: str or list) is left to
        # argparse, as before; a scalar one takes one value.
        if action is not None and action.nargs in (None, "?") and not any(
                word in declared.lower() for word in ("list", "dict", "tuple")):
            raise SERError(f"{key} takes one value ({_kind(key)}), but {source} sets it to the list {value!r}; "
                           f"write one value, e.g. {key}: {_text(value[0])}.")


def _field(key: str) -> dataclasses.Field | None:
    """The dataclass field of the run's argument groups named ``key``."""
    return next((item for group in ARGUMENT_GROUPS for item in dataclasses.fields(group) if item.name == key), None)


def _kind(key: str) -> str:
    item = _field(key)
    if item is None:
        return "another value"
    choices = item.metadata.get("choices")
    # list[float].__name__ is "list": keep the item type, which the example below needs
    kind = (str(item.type) if typing.get_origin(item.type) else
            getattr(item.type, "__name__", str(item.type))).replace(" | None", "")
    if choices:
        return f"one of {[c for c in choices if c is not None]}"
    if kind.startswith("list["):  # argparse reads each value alone, so "[0.9, 1.1]" is one bad float
        example = "0.9 1.1" if "float" in kind else "a b"
        return (f"{kind}: on the command line its values separated by spaces (--{key} {example}), "
                f"in a recipe a YAML list ({key}: [{example.replace(' ', ', ')}])")
    return kind
