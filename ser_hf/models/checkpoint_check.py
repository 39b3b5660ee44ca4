"""Check a checkpoint's files against each other before any weights are allocated, and after loading.

A damaged or edited checkpoint must fail with a :class:`~ser_hf.errors.ModelError` naming the file and the
fix, never load wrongly:

- weights missing from ``model.safetensors`` (a classifier without ``classifier.weight`` / ``projector.*``)
  would be initialised at random by ``from_pretrained``: a model that predicts different labels each run;
- a ``config.json`` edit (``encoder_layers: 4000``, a huge ``hidden_size`` or ``num_labels``) would make
  ``from_pretrained`` allocate the model it describes, tens of GB, before noticing the weights do not fit;
- a truncated ``model.safetensors``, or one whose 8-byte header length claims gigabytes, reaches the parser;
- labels that do not match the classifier (``id2label`` with 8 names, a 4-row classifier; ids 0 and 5 only).

:func:`check_checkpoint` runs before ``from_pretrained``. It reads only ``config.json`` and the safetensors
*header* (bounded in size, every tensor's dtype, shape and byte range checked against the file size), then
builds the model the config describes on PyTorch's ``meta`` device (shapes without memory; construction is
stopped once it registers more tensors than the file holds, so ``encoder_layers: 4000`` stops after a few
layers) and compares: the config must not describe more parameters than the file holds, tensors found under
the same name must have the same shape, and a classifier's head tensors must all be there.
:func:`check_loading_info` runs after ``from_pretrained(..., output_loading_info=True)`` and refuses any
weight it reports missing or mismatched (only a new head may be, when a backbone is built).
:func:`~ser_hf._io.read_json` (importable from here too) reads every JSON file beside a model (bounded size, duplicate
keys refused).

Example:
    >>> from ser_hf.models.checkpoint_check import check_checkpoint, safetensors_header
    >>> check_checkpoint("outputs/rav4")  # doctest: +SKIP
    >>> safetensors_header("outputs/rav4/model.safetensors")["classifier.weight"].shape  # doctest: +SKIP
    (4, 256)
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ser_hf._io import MAX_JSON_BYTES, read_json
from ser_hf.errors import ModelError
from ser_hf.models.safetensors_header import (
    _RESAVE,
    INDEX_NAME,
    MAX_HEADER_BYTES,
    WEIGHTS_NAME,
    TensorInfo,
    checkpoint_tensors,
    safetensors_header,
)
from ser_hf.paths import display_path, printable
from ser_hf.ranges import FINITE, Range, check_value

try:  # transformers 5 configs are strict dataclasses: a wrong type in config.json raises this
    from huggingface_hub.errors import StrictDataclassError
except ImportError:  # older huggingface_hub
    StrictDataclassError = TypeError

__all__ = [
    "CONFIG_ERRORS",
    "HEAD_MODULES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_BYTES",
    "MAX_LABELS",
    "TensorInfo",
    "check_checkpoint",
    "check_config_file",
    "check_preprocessor_file",
    "check_loading_info",
    "checkpoint_directory",
    "load_config",
    "checkpoint_tensors",
    "read_json",
    "safetensors_header",
]

#: More classes than any audio classification task has; transformers builds id2label for num_labels up front.
MAX_LABELS = 10_000
#: Top-level names of the classification head every supported architecture adds to its backbone.
HEAD_MODULES = ("projector", "classifier", "layer_weights")
#: Bounds on preprocessor_config.json values that size what the feature extractor allocates when it is built
#: (Whisper's and AST's mel filter banks hold n_fft / 2 x feature_size values) or for every clip (Whisper pads
#: each one to chunk_length seconds). Values a real extractor uses lie far inside them.
PREPROCESSOR_LIMITS: dict[str, Range] = {
    "sampling_rate": Range(1000, 384000, integer=True), "feature_size": Range(1, 4096, integer=True),
    "num_mel_bins": Range(1, 4096, integer=True), "n_fft": Range(16, 65536, integer=True),
    "hop_length": Range(1, 65536, integer=True), "chunk_length": Range(1, 30, integer=True),
    "n_samples": Range(1, 30 * 384000, integer=True), "nb_max_frames": Range(1, 10**6, integer=True),
    "max_length": Range(1, 10**5, integer=True), "padding_value": FINITE, "mean": FINITE, "std": FINITE,
    "dither": Range(0, 1),
}
# SpecAugment's learned mask vector: a backbone saved with masking off lacks it, and the classifier creates it.
_NEW_IN_CLASSIFIER = ("masked_spec_embed",)
#: What ``AutoConfig.from_pretrained`` raises for a config.json it cannot use (bad values, types, custom code).
CONFIG_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, StrictDataclassError)


#: The longest class name a checkpoint may give (emotion names are a few characters; AudioSet's are under 100).
MAX_LABEL_CHARS = 200


# --- config.json -------------------------------------------------------------------------------------------

def _check_labels(config: Mapping[str, Any], path: Path) -> None:
    id2label = config.get("id2label")
    if id2label is None:
        return
    fix = ("config.json and the classifier must describe the same classes: restore the config.json saved with "
           "these weights, or number the labels 0 .. N-1 in the classifier's row order")
    ids = sorted(int(key) for key in id2label if str(key).isdecimal())
    if len(ids) != len(id2label) or ids != list(range(len(ids))):
        raise ModelError(f"{display_path(path)}: id2label has keys {sorted(id2label, key=str)[:20]}; expected every class id "
                         f"0 .. {len(id2label) - 1} exactly once. {fix}.")
    names = list(id2label.values())
    if not all(isinstance(name, str) and name.strip() for name in names) or len(set(names)) != len(names):
        raise ModelError(f"{display_path(path)}: id2label names must be distinct non-empty strings, found {names[:20]}. {fix}.")
    # A label is printed in terminal tables, Markdown reports and plots: a line break or a control character in it
    # breaks them (rows split across lines), and a name of thousands of characters is no class name.
    unusable = [name for name in names if len(name) > MAX_LABEL_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in name)]
    if unusable:
        shown = [printable(name.encode("unicode_escape").decode("ascii"))[:60] for name in unusable[:5]]
        raise ModelError(f"{display_path(path)}: id2label names must be one line of at most {MAX_LABEL_CHARS} characters without "
                         f"control characters (line breaks, tabs), found {shown}. {fix}.")
    if config.get("num_labels", len(ids)) != len(ids):
        raise ModelError(f"{display_path(path)}: num_labels is {config['num_labels']} but id2label names {len(ids)} classes. {fix}.")


def check_config_file(directory: str | os.PathLike, *, labels: bool = True) -> dict[str, Any]:
    """Check ``config.json`` as JSON, before transformers builds anything from it.

    Args:
        directory: The checkpoint directory.
        labels: Also check that ``id2label`` numbers its classes 0 .. N-1 with distinct names, matching
            ``num_labels`` (a classifier's labels; a backbone's are replaced when a head is built).

    Returns:
        The parsed config.

    Raises:
        ModelError: an oversized or invalid file, ``num_labels`` / ``id2label`` beyond :data:`MAX_LABELS` (transformers
            would build a dict of that many entries), or (with ``labels``) sparse, duplicate or mismatched labels.
    """
    path = Path(directory) / "config.json"
    config = read_json(path, fix="Restore the config.json saved with these weights.")
    count, id2label = config.get("num_labels"), config.get("id2label")
    if count is not None and (type(count) is not int or not 1 <= count <= MAX_LABELS):
        raise ModelError(f"{display_path(path)}: num_labels is {count!r}; expected an integer from 1 to {MAX_LABELS}. Restore the "
                         f"config.json saved with these weights.")
    if id2label is not None and (not isinstance(id2label, dict) or not 1 <= len(id2label) <= MAX_LABELS):
        raise ModelError(f"{display_path(path)}: id2label must map 1 to {MAX_LABELS} class ids to names, found "
                         f"{str(id2label)[:200]}. Restore the config.json saved with these weights.")
    if labels:
        _check_labels(config, path)
    return config


def check_preprocessor_file(directory: str | os.PathLike) -> dict[str, Any]:
    """Check ``preprocessor_config.json`` (if present) before transformers builds the feature extractor from it.

    Returns:
        The parsed settings (``{}`` when the file is absent: loaders report a missing extractor themselves).

    Raises:
        ModelError: an oversized or invalid file, or a value outside :data:`PREPROCESSOR_LIMITS` (e.g. an ``n_fft``
            whose filter bank would take hundreds of GB), naming the file and the fix.
    """
    path = Path(directory) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    fix = "Restore the preprocessor_config.json saved with the model (feature_extractor.save_pretrained(DIR))."
    settings = read_json(path, fix=fix)
    for name, allowed in PREPROCESSOR_LIMITS.items():
        try:
            check_value(name, settings.get(name), allowed, ModelError)
        except ModelError as err:
            raise ModelError(f"{display_path(path)}: {err} {fix}") from None
    return settings


def _check_whisper_input(config, settings: Mapping[str, Any], directory: Path) -> None:
    """A Whisper classifier's extractor must pad to the 2 x max_source_positions mel frames its encoder accepts."""
    if config.model_type != "whisper" or not settings:
        return
    if not 1 <= config.max_source_positions <= 1500:
        raise ModelError(
            f"{directory / 'config.json'}: max_source_positions={config.max_source_positions}, expected 1-1500 (50 "
            f"encoder positions per second of audio, Whisper's 30 s at most). Restore config.json as it was saved.")
    frames = settings.get("chunk_length", 30) * settings.get("sampling_rate", 16000) // settings.get("hop_length", 160)
    if frames != 2 * config.max_source_positions:
        raise ModelError(
            f"{directory / 'preprocessor_config.json'}: pads audio to {frames} mel frames, but config.json's "
            f"max_source_positions={config.max_source_positions} needs {2 * config.max_source_positions}: every clip "
            f"would fail. Set chunk_length to {config.max_source_positions / 50:g} there, or restore both files "
            f"saved together."
        )


# --- comparing a config with its weights -------------------------------------------------------------------

class _TooManyTensors(Exception):
    pass


def _expected_shapes(config, limit: int) -> tuple[dict[str, tuple[int, ...]], str]:
    """State-dict shapes of the classifier ``config`` describes, built on the meta device (no memory)."""
    from transformers import AutoModelForAudioClassification

    owner, registered = threading.get_ident(), 0

    def count(*_: Any) -> None:
        nonlocal registered
        if threading.get_ident() == owner:
            registered += 1
            if registered > limit:
                raise _TooManyTensors

    hooks = [torch.nn.modules.module.register_module_parameter_registration_hook(count),
             torch.nn.modules.module.register_module_buffer_registration_hook(count)]
    try:
        with torch.device("meta"):
            # A copy: from_config may set attributes (attention implementation, dtype) the real load should choose.
            model = AutoModelForAudioClassification.from_config(copy.deepcopy(config), trust_remote_code=False)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}, model.base_model_prefix


def _size_fields(config) -> str:
    names = ("num_hidden_layers", "encoder_layers", "hidden_size", "d_model", "intermediate_size", "encoder_ffn_dim",
             "num_labels", "classifier_proj_size", "vocab_size")
    return ", ".join(f"{name}={getattr(config, name)}" for name in names if hasattr(config, name))


def _build(config, tensors: Mapping[str, TensorInfo], where: str) -> tuple[dict[str, tuple[int, ...]], str]:
    try:
        return _expected_shapes(config, limit=2 * len(tensors) + 64)
    except _TooManyTensors:
        raise ModelError(
            f"{where}: config.json describes a model of more than {2 * len(tensors) + 64} tensors, but the weights "
            f"hold {len(tensors)} ({_size_fields(config)}). config.json was edited or belongs to another "
            f"checkpoint; nothing was allocated. Restore the config.json saved with these weights."
        ) from None
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, IndexError, OverflowError,
            ZeroDivisionError) as err:
        raise ModelError(f"{where}: config.json does not describe a buildable audio classifier "
                         f"({type(err).__name__}: {' '.join(str(err).split())[:300]}). Restore the config.json "
                         f"saved with these weights.") from None


def _in_file(name: str, tensors: Mapping[str, TensorInfo], prefix: str) -> TensorInfo | None:
    """The file's tensor for model parameter ``name``, under the prefixes backbones are saved with."""
    bare = name[len(prefix) + 1:] if name.startswith(prefix + ".") else name
    for candidate in (name, bare, f"{prefix}.{name}", f"model.{name}"):
        if candidate in tensors:
            return tensors[candidate]
    return None


def _is_head(name: str) -> bool:
    return name.split(".", 1)[0] in HEAD_MODULES


def _compare(expected: Mapping[str, tuple[int, ...]], prefix: str, tensors: Mapping[str, TensorInfo],
             backbone: bool, config, where: str) -> None:
    needed = {name: shape for name, shape in expected.items()
              if not (backbone and (_is_head(name) or name.rsplit(".", 1)[-1] in _NEW_IN_CLASSIFIER))}
    missing = sorted(name for name in needed if _is_head(name) and name not in tensors)
    if missing:
        raise ModelError(
            f"{where}: the weights lack the classification head {missing}. Loaded anyway, these layers would be "
            f"random, and the model would predict different labels on every run. The checkpoint is incomplete: "
            f"{_RESAVE}."
        )
    mismatch = next((_mismatch(name, needed[name], found, config) for name in sorted(needed, key=_is_body)
                     if (found := _in_file(name, tensors, prefix)) is not None and found.shape != needed[name]), None)
    need, have = sum(math.prod(s) for s in needed.values()), sum(t.numel for t in tensors.values())
    # A grossly oversized config gets the size message; a near miss (e.g. labels) the precise shape message.
    if need > have and (mismatch is None or need > 2 * have):
        raise ModelError(
            f"{where}: config.json describes {need:,} parameters ({need * 4 / 2**30:.2f} GiB in float32), but the "
            f"weights hold {have:,} ({_size_fields(config)}). config.json was edited, or the weights are "
            f"incomplete or another model's; nothing was allocated. Restore the files saved together."
        )
    if mismatch:
        raise ModelError(f"{where}: {mismatch} config.json and the weights do not belong together: restore the "
                         f"config.json saved with these weights.")


def _is_body(name: str) -> bool:
    return not _is_head(name)


def _mismatch(name: str, shape: tuple[int, ...], found: TensorInfo, config) -> str:
    labels = f"; id2label names {config.num_labels} classes" if _is_head(name) else ""
    return (f"config.json implies {name} of shape {list(shape)}, but {Path(found.file).name} holds "
            f"{list(found.shape)} ({_size_fields(config)}{labels}).")


def checkpoint_directory(checkpoint: str | os.PathLike) -> Path | None:
    """The local directory of ``checkpoint``: itself, or a Hub id's cached snapshot (fetched when online).

    Returns ``None`` when a Hub id cannot be resolved; ``from_pretrained`` then reports why.
    """
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        snapshot = Path(hf_hub_download(str(checkpoint), "config.json")).parent
        try:
            hf_hub_download(str(checkpoint), WEIGHTS_NAME)
        except EntryNotFoundError:
            index = read_json(hf_hub_download(str(checkpoint), INDEX_NAME), fix="Report it to the model's authors.")
            for shard in sorted(set((index.get("weight_map") or {}).values())):
                hf_hub_download(str(checkpoint), str(shard))
    except (OSError, ValueError, EntryNotFoundError):
        return None
    return snapshot


def load_config(directory: str | os.PathLike, *, labels: bool = True):
    """``AutoConfig`` of a checkpoint directory, after :func:`check_config_file`; never runs custom code.

    Raises:
        ModelError: anything :func:`check_config_file` refuses, or a config transformers cannot use (a value of the
            wrong type, an unknown or custom ``model_type``), naming the file.
    """
    from transformers import AutoConfig

    check_config_file(directory, labels=labels)
    try:
        return AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except CONFIG_ERRORS as err:
        raise ModelError(f"{Path(directory) / 'config.json'} cannot be used ({' '.join(str(err).split())[:500]}). "
                         f"Restore the config.json saved with these weights.") from None


def check_checkpoint(checkpoint: str | os.PathLike, *, config=None, backbone: bool = False) -> None:
    """Check a checkpoint's config against its safetensors header, before ``from_pretrained`` allocates anything.

    Args:
        checkpoint: A checkpoint directory, or a Hub id (its cached snapshot is checked).
        config: The config the model will be built from (``build_model`` passes the backbone's config with the
            new labels and options). Default: the checkpoint's ``config.json``, whose labels are checked too.
        backbone: The weights are a backbone for a new head: the head may be absent or of another shape.

    Raises:
        ModelError: a bad safetensors header, a config describing a model larger than the weights or of other
            shapes, labels that do not match the classifier, a preprocessor_config.json out of bounds (or, for a
            Whisper classifier, padding to another length than its encoder takes), or (not ``backbone``) a
            missing head tensor. The message names the file and the fix.
    """
    directory = checkpoint_directory(checkpoint)
    if directory is None:
        return
    tensors = checkpoint_tensors(directory)
    settings = check_preprocessor_file(directory)
    if config is None:
        config = load_config(directory, labels=not backbone)
    if not backbone:
        _check_whisper_input(config, settings, directory)
    where = f"checkpoint {str(directory)!r}"
    expected, prefix = _build(config, tensors, where)
    _compare(expected, prefix, tensors, backbone, config, where)


def _names(entries: Iterable[Any]) -> list[str]:
    # transformers lists mismatched keys as names (5.x) or as (name, old shape, new shape) tuples (4.x).
    return sorted(entry[0] if isinstance(entry, tuple) else str(entry) for entry in entries or ())


def check_loading_info(checkpoint: str | os.PathLike, info: Mapping[str, Any], *, backbone: bool = False) -> None:
    """Refuse a model ``from_pretrained`` completed with random weights (its ``output_loading_info``).

    Args:
        checkpoint: The checkpoint, for the message.
        info: The loading info (``missing_keys``, ``unexpected_keys``, ``mismatched_keys``, ``error_msgs``).
        backbone: A new head was built on a backbone: its head (and SpecAugment's mask vector) may be new, and
            weights the classifier does not use (a pretraining head, Whisper's decoder) are expected.

    Raises:
        ModelError: listing the weights that were not in the file or had another shape, and, for a saved
            classifier, weights in the file that the model would ignore (a config edit such as
            ``use_weighted_layer_sum: false`` or one layer fewer loads "fine" and predicts something else).
    """
    def kept(names: list[str]) -> list[str]:
        return [n for n in names if not (backbone and (_is_head(n) or n.rsplit(".", 1)[-1] in _NEW_IN_CLASSIFIER))]

    missing, mismatched = kept(_names(info.get("missing_keys"))), kept(_names(info.get("mismatched_keys")))
    unused = [] if backbone else _names(info.get("unexpected_keys"))
    errors = [" ".join(str(e).split()) for e in info.get("error_msgs") or ()]
    if missing or mismatched or unused or errors:
        problems = "; ".join(part for part in (
            f"missing from the weights: {missing[:8]}{' ...' if len(missing) > 8 else ''}" if missing else "",
            f"in the weights but unused by config.json's model: {unused[:8]}{' ...' if len(unused) > 8 else ''}"
            if unused else "",
            f"of another shape: {mismatched[:8]}" if mismatched else "", "; ".join(errors[:3])) if part)
        raise ModelError(
            f"checkpoint {str(checkpoint)!r} loaded with layers that would be random ({problems}). The weights do "
            f"not match config.json's architecture: {_RESAVE}."
        )
