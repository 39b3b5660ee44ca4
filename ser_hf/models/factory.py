"""Build an emotion classifier from a pretrained speech backbone, and save it as a standard checkpoint.

:func:`build_model` turns a checkpoint (a local directory or a Hub id) of one of
:data:`SUPPORTED_MODEL_TYPES` into an ``AutoModelForAudioClassification`` with the emotion labels in its
config (``id2label`` with int keys), plus the matching feature extractor. :class:`ModelOptions` holds the
choices that differ between fine-tuning recipes (what to freeze, weighted layer sum, dropout,
SpecAugment masking, Whisper's input length); every option that changes the model is written into its
config, so a checkpoint saved by :func:`save_checkpoint` reloads with plain ``transformers`` and no
custom code, e.g. in ``pipeline("audio-classification", model=DIR)``. Saving lives in
:mod:`ser_hf.models.checkpoint_save` (the folder checks are its own concern); it is re-exported here.

Not every architecture has every knob; an option set for an architecture that cannot honour it raises
:class:`~ser_hf.errors.ModelError` naming the option, the model type and what is supported, rather than
being silently ignored.

Whisper on short clips: ``ModelOptions(max_source_positions=N)`` keeps N / 50 seconds of input, see
:mod:`ser_hf.models.whisper_lengths` (its names are re-exported here).

Example:
    >>> from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
    >>> options = ModelOptions(freeze_backbone=True, use_weighted_layer_sum=True)
    >>> model, extractor = build_model("path/to/wavlm-base-plus", ["neutral", "happy", "sad", "angry"], options)  # doctest: +SKIP
    >>> save_checkpoint(model, extractor, "out/wavlm-ser")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import transformers
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from packaging.version import Version
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from ser_hf.emotions import EMOTIONS
from ser_hf.errors import ModelError
from ser_hf.models.architecture import ARCHITECTURES, SUPPORTED_MODEL_TYPES, Architecture
from ser_hf.models.checkpoint_check import (
    CONFIG_ERRORS,
    check_checkpoint,
    check_config_file,
    check_loading_info,
    checkpoint_directory,
    load_config,
)
from ser_hf.models.checkpoint_save import CHECKPOINT_WRITES as CHECKPOINT_WRITES  # its old import path
from ser_hf.models.checkpoint_save import save_checkpoint  # in __all__: its old import path
from ser_hf.models.whisper_lengths import (
    WHISPER_POSITIONS_PER_SECOND,
    prepare_whisper,
    set_whisper_max_source_positions,
    whisper_positions_for,
)
from ser_hf.paths import path_text
from ser_hf.ranges import COUNT, PROBABILITY, Range, check_ranges

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "WHISPER_POSITIONS_PER_SECOND",
    "ModelOptions",
    "build_model",
    "load_backbone_config",
    "save_checkpoint",
    "set_whisper_max_source_positions",
    "whisper_positions_for",
]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}
# from_pretrained's argument was renamed torch_dtype -> dtype in transformers 4.56.
_DTYPE_ARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


_SUPPORTED = ", ".join(SUPPORTED_MODEL_TYPES)

_MASK_FIELDS = ("mask_time_prob", "mask_time_length", "mask_feature_prob", "mask_feature_length")
# Head sizes allocate hidden_size x size weights: a typo like 2560000 must fail here, not after gigabytes.
LAYER_SIZE = Range(1, 65536, integer=True, noun="a positive integer")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class ModelOptions:
    """How to turn a pretrained backbone into a classifier. ``None`` keeps the checkpoint's own value.

    Every field carries ``help`` metadata, so ``HfArgumentParser(ModelOptions)`` turns it into CLI flags.

    Example:
        >>> ModelOptions(freeze_backbone=True, max_source_positions=whisper_positions_for(8.0))
        ... # doctest: +ELLIPSIS
        ModelOptions(freeze_feature_encoder=None, freeze_backbone=True, ..., max_source_positions=400, dtype='float32')
    """

    freeze_feature_encoder: bool | None = field(default=None, metadata=_help(
        "Freeze the convolutional front end (wav2vec2/HuBERT/WavLM/data2vec-audio CNN, Whisper's conv stem). "
        "Default (None): freeze it where the architecture has one. AST has none: True is an error there."))
    freeze_backbone: bool = field(default=False, metadata=_help(
        "Freeze the whole pretrained encoder; only the layer weights, projector and classifier train. "
        "The cheap mode for CPU training."))
    use_weighted_layer_sum: bool | None = field(default=None, metadata=_help(
        "Classify a learned softmax-weighted sum of all hidden layers instead of the last one "
        "(not available for AST)."))
    classifier_proj_size: int | None = field(default=None, metadata=_help(
        "Size of the projection before mean pooling and the classifier (transformers default 256; not for AST)."))
    hidden_dropout: float | None = field(default=None, metadata=_help(
        "Dropout on hidden states (config hidden_dropout; Whisper: dropout; AST: hidden_dropout_prob)."))
    attention_dropout: float | None = field(default=None, metadata=_help(
        "Dropout on attention probabilities (AST: attention_probs_dropout_prob)."))
    activation_dropout: float | None = field(default=None, metadata=_help(
        "Dropout inside the feed-forward blocks (wav2vec2 family and Whisper)."))
    feat_proj_dropout: float | None = field(default=None, metadata=_help(
        "Dropout after the feature projection (wav2vec2 family only)."))
    layerdrop: float | None = field(default=None, metadata=_help(
        "Probability of skipping a whole transformer layer in training (Whisper: encoder_layerdrop; not AST)."))
    mask_time_prob: float | None = field(default=None, metadata=_help(
        "SpecAugment: share of time steps masked during training (wav2vec2 family only; 0 disables)."))
    mask_time_length: int | None = field(default=None, metadata=_help(
        "SpecAugment: length in frames (20 ms each) of every time mask (wav2vec2 family only)."))
    mask_feature_prob: float | None = field(default=None, metadata=_help(
        "SpecAugment: share of hidden channels masked during training (wav2vec2 family only; 0 disables)."))
    mask_feature_length: int | None = field(default=None, metadata=_help(
        "SpecAugment: width in channels of every feature mask (wav2vec2 family only)."))
    max_source_positions: int | None = field(default=None, metadata=_help(
        "Whisper only, variable-length mode: keep the first N encoder positions and pad/truncate audio to "
        f"N/{WHISPER_POSITIONS_PER_SECOND} s instead of 30 s (N = 50 per second, a multiple of 50; "
        "e.g. 500 for clips up to 10 s). Much faster on short clips, but the encoder was pretrained on 30 s "
        "inputs: a frozen encoder may lose accuracy."))
    dtype: str = field(default="float32", metadata=_help(
        "Parameter dtype to load: float32 (training), float16, bfloat16 or auto (as stored)."))

    #: What each numeric option accepts; :func:`ser_hf.ranges.check_ranges` checks them in ``__post_init__``
    #: (kept out of the field metadata, which ``HfArgumentParser`` passes on to argparse).
    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout",
                         "layerdrop", "mask_time_prob", "mask_feature_prob"), PROBABILITY),
        "mask_time_length": COUNT, "mask_feature_length": COUNT, "max_source_positions": COUNT,
        "classifier_proj_size": LAYER_SIZE,
    }

    def __post_init__(self) -> None:
        check_ranges(self, error=ModelError)
        if self.max_source_positions is not None and self.max_source_positions % WHISPER_POSITIONS_PER_SECOND:
            raise ModelError(
                f"ModelOptions.max_source_positions must be a multiple of {WHISPER_POSITIONS_PER_SECOND} "
                f"(whole seconds: the Whisper feature extractor pads to a whole number of seconds), got "
                f"{self.max_source_positions}. Use whisper_positions_for(seconds), e.g. "
                f"{math.ceil(self.max_source_positions / WHISPER_POSITIONS_PER_SECOND) * WHISPER_POSITIONS_PER_SECOND}."
            )
        if self.freeze_backbone and self.freeze_feature_encoder is False:
            raise ModelError(
                "ModelOptions: freeze_backbone=True freezes the feature encoder too, which contradicts "
                "freeze_feature_encoder=False. Drop one of them."
            )
        if self.dtype not in _DTYPES:
            raise ModelError(f"ModelOptions.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}.")


def _config_from_directory(directory: Path) -> PretrainedConfig:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ModelError(
            f"Checkpoint directory {str(directory)!r} has no config.json. Expected a directory written by "
            f"save_pretrained() (config.json, model.safetensors, preprocessor_config.json); point to that "
            f"directory, or for Whisper prepare a preset first (ser_hf.models.presets.prepare_preset)."
        )
    # Checked as JSON first: transformers would build an id2label dict of any num_labels, and crash on bad JSON.
    model_type = check_config_file(directory, labels=False).get("model_type")
    if model_type not in ARCHITECTURES:
        raise ModelError(
            f"Checkpoint {str(directory)!r}: config.json has model_type={model_type!r}, which ser_hf does not "
            f"support. Supported model types: {_SUPPORTED}."
        )
    return load_config(directory, labels=False)


def load_backbone_config(checkpoint: str | os.PathLike) -> PretrainedConfig:
    """Load and check the config of a checkpoint (local directory or Hub id).

    Args:
        checkpoint: A directory written by ``save_pretrained`` or a Hub id such as ``"facebook/wav2vec2-base"``
            (which must already be in the local cache when offline).

    Returns:
        The checkpoint's config; its ``model_type`` is one of :data:`SUPPORTED_MODEL_TYPES`.

    Raises:
        ModelError: if the directory does not exist, has no ``config.json``, is not a valid Hub id, cannot be
            fetched, or has an unsupported ``model_type``. The message lists the supported model types.
    """
    checkpoint = path_text(checkpoint, "the backbone (model_name_or_path)", error=ModelError, refuse_empty=True)
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return _config_from_directory(path)
    if path.exists():
        raise ModelError(f"checkpoint {str(checkpoint)!r} is a file; pass the directory that holds config.json.")
    try:
        validate_repo_id(str(checkpoint))
    except HFValidationError:
        raise ModelError(
            f"checkpoint {str(checkpoint)!r} is not an existing directory, nor a valid Hub id ('name' or "
            f"'org/name'). Check the path. Supported model types: {_SUPPORTED}."
        ) from None
    snapshot = checkpoint_directory(checkpoint)
    if snapshot is not None:
        check_config_file(snapshot, labels=False)
    try:
        # trust_remote_code=False, not the default None: with None, transformers asks on stdin whether to run a
        # checkpoint's custom code, and a "y" (or a piped one) would run it.
        config = AutoConfig.from_pretrained(str(checkpoint), trust_remote_code=False)
    except CONFIG_ERRORS as err:
        reason = " ".join(str(err).split())  # one line, so the message reads (and matches) as a whole
        raise ModelError(
            f"checkpoint {str(checkpoint)!r} is not a local directory and could not be loaded as a Hub id ({reason}). "
            f"Offline, a Hub model must already be in the cache; otherwise download it on a connected machine "
            f"and pass its directory. Supported model types: {_SUPPORTED}."
        ) from err
    if config.model_type not in ARCHITECTURES:
        raise ModelError(
            f"checkpoint {str(checkpoint)!r} has model_type={config.model_type!r}, which ser_hf does not support. "
            f"Supported model types: {_SUPPORTED}."
        )
    return config


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels) if not isinstance(labels, str) else [labels]
    unknown = [label for label in labels if label not in EMOTIONS]
    if unknown:
        raise ModelError(
            f"labels: {unknown} are not canonical emotion names. Expected names from {list(EMOTIONS)}; map raw "
            f"labels with ser_hf.emotions.canonical_emotion() first."
        )
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ModelError(
            f"labels must hold at least two distinct emotions, in the order of the dataset's label ids; got {labels}."
        )
    return labels


def _supported_options(arch: Architecture) -> list[str]:
    names = ["freeze_backbone", "dtype", *arch.dropouts]
    if arch.freeze_feature_encoder is not None:
        names.append("freeze_feature_encoder")
    if arch.weighted_layer_sum:
        names += ["use_weighted_layer_sum", "classifier_proj_size"]
    if arch.spec_augment:
        names += list(_MASK_FIELDS)
    if arch.variable_length:
        names.append("max_source_positions")
    return names


def _check_supported(options: ModelOptions, model_type: str) -> None:
    supported = _supported_options(ARCHITECTURES[model_type])
    for option in dataclasses.fields(ModelOptions):
        value = getattr(options, option.name)
        # False asks for nothing an architecture could fail to do, so it is accepted everywhere.
        if value is None or value is False or option.name in supported:
            continue
        having = [name for name, other in ARCHITECTURES.items() if option.name in _supported_options(other)]
        raise ModelError(
            f"ModelOptions.{option.name}={value!r} is not supported for model_type {model_type!r}. "
            f"Options supported there: {sorted(supported)}. Architectures with {option.name}: {having}. "
            f"Leave it unset (None) for this checkpoint."
        )


def _configure(config: PretrainedConfig, options: ModelOptions, labels: list[str]) -> None:
    """Write labels and options into ``config``, so they survive save/load."""
    arch = ARCHITECTURES[config.model_type]
    old_labels = list(config.id2label.values()) if config.id2label else []
    if old_labels and not all(str(name).startswith("LABEL_") for name in old_labels) and old_labels != labels:
        logger.warning(
            "Checkpoint was fine-tuned for labels %s; building a head for %s. Layers whose shape matches are "
            "loaded as they are, so the classifier starts from the old head.", old_labels, labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: index for index, label in enumerate(labels)}
    config.num_labels = len(labels)
    for name, attribute in arch.dropouts.items():
        if getattr(options, name) is not None:
            setattr(config, attribute, getattr(options, name))
    for name in ("use_weighted_layer_sum", "classifier_proj_size", *_MASK_FIELDS):
        if getattr(options, name) is not None and hasattr(config, name):
            setattr(config, name, getattr(options, name))
    if arch.spec_augment and (options.mask_time_prob or options.mask_feature_prob):
        # The wav2vec2 family masks only while apply_spec_augment is true (data2vec-audio: when absent).
        config.apply_spec_augment = True
    if arch.spec_augment and not hasattr(config, "mask_feature_min_masks"):
        # WavLMConfig lacks this attribute that WavLM's feature masking reads (transformers 5.24), so
        # training with mask_feature_prob > 0 crashed; 0 is the default of the sibling configs.
        config.mask_feature_min_masks = 0


def _load_feature_extractor(checkpoint: str | os.PathLike):
    try:
        return AutoFeatureExtractor.from_pretrained(str(checkpoint), trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelError(
            f"checkpoint {str(checkpoint)!r} has no usable preprocessor_config.json ({err}). Save the backbone's "
            f"feature extractor next to its weights, e.g. "
            f"AutoFeatureExtractor.from_pretrained(ORIGINAL).save_pretrained({str(checkpoint)!r})."
        ) from err


@contextlib.contextmanager
def _quiet_load_report():
    """Raise transformers' model-loading loggers to ERROR for the duration (unless debugging is on).

    The tensor-parallel one too: transformers checks a model's tensor-parallel plan, and warns that no layer "was
    sharded" (no multi-device run was asked for), exactly when ``modeling_utils``' own level is set at WARNING or
    above, as it is here.
    """
    names = ("transformers.modeling_utils", "transformers.utils.loading_report",
             "transformers.distributed.tensor_parallel")
    loggers = [logging.getLogger(name) for name in names]
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels):
            each.setLevel(level)


def _load_weights(checkpoint: str | os.PathLike, config: PretrainedConfig, options: ModelOptions) -> PreTrainedModel:
    """The backbone's weights from safetensors only: pickle files (``pytorch_model.bin``) can run code on load."""
    path = Path(checkpoint).expanduser()
    if path.is_dir() and not any(path.glob("*.safetensors")):
        found = sorted(p.name for p in path.iterdir())
        raise ModelError(
            f"Checkpoint {str(path)!r} has no *.safetensors weights (found {found}). ser_hf loads only safetensors, "
            f"which need no pickle. Convert a checkpoint you trust once with "
            f"`AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`."
        )
    # Before anything is allocated: the (possibly edited) config must describe the weights on disk.
    check_checkpoint(checkpoint, config=config, backbone=True)
    try:
        # ignore_mismatched_sizes: a previous classifier's head may have another number of labels or projector
        # size; check_loading_info refuses any other layer that would be left random. transformers' "LOAD REPORT"
        # table (a warning listing the new head as MISSING on every build) is kept for debug logging: the new
        # head is the point of building a classifier, and check_loading_info judges the same information.
        with _quiet_load_report():
            model, info = AutoModelForAudioClassification.from_pretrained(
                str(checkpoint), config=config, ignore_mismatched_sizes=True, use_safetensors=True,
                trust_remote_code=False, output_loading_info=True, **{_DTYPE_ARG: _DTYPES[options.dtype]},
            )
    except OSError as err:
        reason = " ".join(str(err).split())
        raise ModelError(
            f"Checkpoint {str(checkpoint)!r}: no usable safetensors weights ({reason}). ser_hf loads only safetensors; "
            f"pass a checkpoint that has model.safetensors."
        ) from err
    except ValueError as err:  # e.g. a PEFT adapter beside the weights that does not fit them
        reason = " ".join(str(err).split())
        raise ModelError(
            f"Checkpoint {str(checkpoint)!r} could not be loaded as an audio classifier ({reason}). If it holds an "
            f"adapter (adapter_config.json) that is not for this model, move the adapter files away."
        ) from err
    check_loading_info(checkpoint, info, backbone=True)
    _start_new_layer_weights_uniform(model, info)
    return model


def _start_new_layer_weights_uniform(model: PreTrainedModel, info: dict) -> None:
    """Give a newly created ``layer_weights`` the uniform mix its model's ``__init__`` intends (1/L each).

    transformers 5.25 allocates new parameters on the meta device and re-initialises them with
    ``_init_weights``, which does not know ``layer_weights``: it was left as uninitialised memory (values
    like -9e8 were seen), so the weighted layer sum of a fresh head started from an arbitrary layer.
    """
    weights = getattr(model, "layer_weights", None)
    new = set(info.get("missing_keys") or ()) | {entry[0] for entry in info.get("mismatched_keys") or ()}
    if isinstance(weights, torch.nn.Parameter) and "layer_weights" in new:
        with torch.no_grad():
            weights.fill_(1.0 / weights.numel())


def build_model(checkpoint: str | os.PathLike, labels: Sequence[str], options: ModelOptions | None = None):
    """Build an emotion classifier and its feature extractor from a pretrained backbone.

    Args:
        checkpoint: Local directory or Hub id of a :data:`SUPPORTED_MODEL_TYPES` checkpoint (a bare encoder,
            an ASR model or an earlier classifier: only the encoder weights are reused).
        labels: Canonical emotion names in the order of the dataset's label ids, e.g.
            ``["neutral", "happy", "sad", "angry"]``; becomes ``config.id2label`` / ``label2id``.
        options: Freezing, head, dropout, masking and Whisper length choices; defaults to ``ModelOptions()``.

    Returns:
        ``(model, feature_extractor)``: an ``AutoModelForAudioClassification`` (head newly initialised) and
        the feature extractor that prepares its input.

    Raises:
        ModelError: for a missing/unsupported checkpoint, one without safetensors weights (pickle files are
            never loaded), non-canonical labels, or an option the architecture does not support (the message
            names the option, the model type and what is supported), or files that do not fit together (a
            corrupt safetensors header, a config.json describing another model than the weights, a backbone
            layer the weights lack; see :mod:`ser_hf.models.checkpoint_check`), before anything large is
            allocated. Custom code a checkpoint ships (``auto_map``) is never run.

    Example:
        >>> from ser_hf.testing.models import tiny_backbone
        >>> path = tiny_backbone("whisper", "/tmp/tiny-whisper")  # doctest: +SKIP
        >>> model, extractor = build_model(path, ["neutral", "angry"], ModelOptions(max_source_positions=200))  # doctest: +SKIP
        >>> model.config.id2label  # doctest: +SKIP
        {0: 'neutral', 1: 'angry'}
    """
    options = options if options is not None else ModelOptions()
    labels = _check_labels(labels)
    config = load_backbone_config(checkpoint)
    _check_supported(options, config.model_type)
    _configure(config, options, labels)
    model = _load_weights(checkpoint, config, options)
    feature_extractor = _load_feature_extractor(checkpoint)
    if config.model_type == "whisper":
        feature_extractor = prepare_whisper(model, feature_extractor, options.max_source_positions)
    arch = ARCHITECTURES[config.model_type]
    if options.freeze_backbone:
        arch.freeze_backbone(model)
    elif options.freeze_feature_encoder is not False and arch.freeze_feature_encoder is not None:
        arch.freeze_feature_encoder(model)
    local = Path(os.fspath(checkpoint)).expanduser()
    if local.is_dir():  # where it came from, whatever the working folder is later (save_checkpoint never writes there)
        model.ser_hf_source = local.resolve()
    return model, feature_extractor
