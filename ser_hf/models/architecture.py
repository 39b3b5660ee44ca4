"""What each supported backbone family is, in one table: the facts the model factory, the frozen probe and the
batch predictor all go by.

- :data:`ARCHITECTURES`: per ``config.model_type``, how to freeze it, whether it has a weighted layer sum and
  SpecAugment, what its dropouts are called, whether its input length can be cut (Whisper).
- :data:`POOLABLE_MODEL_TYPES`: heads that are weighted layer sum -> projector -> mean pooling -> classifier, so
  pooled states can be cached (:mod:`ser_hf.models.pooling`).
- :func:`batch_padding_is_exact`: whether clips of different lengths can share a batch without changing any
  prediction (:data:`FIXED_LENGTH_MODEL_TYPES`, :data:`MASKED_PADDING_MODEL_TYPES`).

Example:
    ```python
    >>> from ser_hf.models.architecture import SUPPORTED_MODEL_TYPES
    >>> "whisper" in SUPPORTED_MODEL_TYPES
    True

    ```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

__all__ = [
    "ARCHITECTURES", "FIXED_LENGTH_MODEL_TYPES", "MASKED_PADDING_MODEL_TYPES", "POOLABLE_MODEL_TYPES",
    "SUPPORTED_MODEL_TYPES", "Architecture", "batch_padding_is_exact",
]


def _freeze(module: torch.nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad = False


@dataclass(frozen=True)
class Architecture:
    """What one model family can do, and how its config names things."""

    freeze_backbone: Callable[[PreTrainedModel], None]
    # None: the architecture has no convolutional front end to freeze separately.
    freeze_feature_encoder: Callable[[PreTrainedModel], None] | None
    weighted_layer_sum: bool
    spec_augment: bool
    # ModelOptions field -> the config attribute holding that dropout in this family.
    dropouts: dict[str, str]
    # Whisper's fixed 30 s input can be cut (ModelOptions.max_source_positions).
    variable_length: bool = False


_WAV2VEC2_FAMILY = Architecture(
    freeze_backbone=lambda model: model.freeze_base_model(),
    freeze_feature_encoder=lambda model: model.freeze_feature_encoder(),
    weighted_layer_sum=True,
    spec_augment=True,
    dropouts={name: name for name in ("hidden_dropout", "attention_dropout", "activation_dropout",
                                      "feat_proj_dropout", "layerdrop")},
)

ARCHITECTURES: dict[str, Architecture] = {
    "wav2vec2": _WAV2VEC2_FAMILY,
    "hubert": _WAV2VEC2_FAMILY,
    "wavlm": _WAV2VEC2_FAMILY,
    "data2vec-audio": _WAV2VEC2_FAMILY,
    "whisper": Architecture(
        freeze_backbone=lambda model: model.freeze_encoder(),
        # The two-conv stem plays the role of wav2vec2's CNN feature encoder (positions are never trained).
        freeze_feature_encoder=lambda model: (_freeze(model.encoder.conv1), _freeze(model.encoder.conv2)),
        weighted_layer_sum=True,
        # WhisperForAudioClassification never calls the SpecAugment code (only WhisperModel does).
        spec_augment=False,
        dropouts={"hidden_dropout": "dropout", "attention_dropout": "attention_dropout",
                  "activation_dropout": "activation_dropout", "layerdrop": "encoder_layerdrop"},
        variable_length=True,
    ),
    "audio-spectrogram-transformer": Architecture(
        freeze_backbone=lambda model: _freeze(model.audio_spectrogram_transformer),
        freeze_feature_encoder=None,
        weighted_layer_sum=False,
        spec_augment=False,
        dropouts={"hidden_dropout": "hidden_dropout_prob", "attention_dropout": "attention_probs_dropout_prob"},
    ),
}

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(ARCHITECTURES)
"""``config.model_type`` values :func:`~ser_hf.models.factory.build_model` accepts."""

#: Architectures whose head is weighted layer sum -> projector -> mean pooling -> classifier.
POOLABLE_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")

#: Architectures whose feature extractor pads or cuts every clip to one length (30 s or ``chunk_length``
#: for Whisper, ``max_length`` frames for AST): batching them never changes a prediction.
FIXED_LENGTH_MODEL_TYPES = ("whisper", "audio-spectrogram-transformer")

#: Architectures that zero padded frames before their single positional convolution and mask them in
#: attention and pooling. data2vec-audio is left out on purpose: its stack of positional convolutions
#: lets padding leak into the last real frames (measured: probabilities move by ~1e-2).
MASKED_PADDING_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")


def batch_padding_is_exact(model: PreTrainedModel, feature_extractor) -> bool:
    """Whether clips of different lengths can share a batch without changing any prediction.

    True for fixed-length extractors (Whisper, AST), and for wav2vec2/HuBERT/WavLM when the extractor
    returns an attention mask and the front end normalises each frame separately. False otherwise, and
    for unknown architectures: those run one clip at a time, which is always exact.
    """
    config = model.config
    if config.model_type in FIXED_LENGTH_MODEL_TYPES:
        return True
    if config.model_type not in MASKED_PADDING_MODEL_TYPES:
        return False
    if not getattr(feature_extractor, "return_attention_mask", False):
        return False  # without a mask the model would see the padding as signal
    # GroupNorm in the first conv layer averages over time, so padded zeros would shift its statistics.
    return getattr(config, "feat_extract_norm", "group") == "layer"
