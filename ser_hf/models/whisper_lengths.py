"""Whisper on short clips: the encoder's input length, and the feature extractor that must agree with it.

HF's Whisper encoder only accepts 30 s of input (3000 mel frames): it checks the length and adds all its
positional embeddings. Emotion clips last a few seconds, so most of that compute would go to padding. With
``max_source_positions=N`` (:func:`set_whisper_max_source_positions`) the encoder keeps its first N positional
embeddings (50 per second of audio, :data:`WHISPER_POSITIONS_PER_SECOND`) and the feature extractor pads or
truncates to N / 50 seconds; :func:`whisper_positions_for` turns seconds into N. Both are written into the
checkpoint (``config.max_source_positions``, ``chunk_length``), so it stays a standard one that
``pipeline("audio-classification")`` runs; :func:`check_whisper_lengths` refuses a pair that disagrees.

Example:
    >>> whisper_positions_for(5.3)
    300
"""

from __future__ import annotations

import math

import torch
from transformers import PretrainedConfig, PreTrainedModel, WhisperFeatureExtractor

from ser_hf.errors import ModelError

__all__ = [
    "WHISPER_POSITIONS_PER_SECOND", "check_whisper_lengths", "prepare_whisper", "set_whisper_max_source_positions",
    "whisper_positions_for",
]

# Whisper's mel frames are 10 ms apart and its conv stem halves them: 50 encoder positions per second.
WHISPER_POSITIONS_PER_SECOND = 50


def whisper_positions_for(seconds: float) -> int:
    """Whisper encoder positions covering ``seconds`` of audio, rounded up to a whole second.

    Example:
        >>> whisper_positions_for(3.2)
        200
    """
    if seconds <= 0 or seconds > 30:
        raise ModelError(f"whisper_positions_for: seconds must be in (0, 30] (Whisper's maximum), got {seconds}.")
    return math.ceil(seconds) * WHISPER_POSITIONS_PER_SECOND


def check_whisper_lengths(config: PretrainedConfig, feature_extractor) -> None:
    if config.model_type != "whisper":
        return
    expected = 2 * config.max_source_positions  # the stride-2 conv stem halves the mel frames
    if getattr(feature_extractor, "nb_max_frames", None) != expected:
        raise ModelError(
            f"Whisper checkpoint mismatch: config.max_source_positions={config.max_source_positions} needs "
            f"{expected} mel frames, but the feature extractor pads to {feature_extractor.nb_max_frames} "
            f"(chunk_length={feature_extractor.chunk_length} s). Rebuild it with build_model(..., "
            f"ModelOptions(max_source_positions={config.max_source_positions})) or fix chunk_length in "
            f"preprocessor_config.json to {config.max_source_positions / WHISPER_POSITIONS_PER_SECOND:g}."
        )


def set_whisper_max_source_positions(model: PreTrainedModel, feature_extractor: WhisperFeatureExtractor,
                                     max_source_positions: int) -> WhisperFeatureExtractor:
    """Switch a ``WhisperForAudioClassification`` to inputs of ``max_source_positions / 50`` seconds, in place.

    HF's Whisper encoder checks that its input has exactly ``2 * config.max_source_positions`` mel frames and
    adds all its positional embeddings. Keeping the first N embeddings (they are sinusoidal, position by
    position) and setting ``config.max_source_positions = N`` makes it accept N / 50 s of audio; the
    returned feature extractor pads/truncates to that length. Its ``chunk_length`` is the field that counts:
    ``WhisperFeatureExtractor.__init__`` recomputes ``n_samples`` (padding length in samples) and
    ``nb_max_frames`` from it when the checkpoint is reloaded, so both are saved consistently.

    Args:
        model: A ``WhisperForAudioClassification``.
        feature_extractor: Its ``WhisperFeatureExtractor`` (not modified).
        max_source_positions: N, a multiple of 50, at most the model's current number of positions.

    Returns:
        A new feature extractor padding to N / 50 seconds.

    Example:
        >>> extractor = set_whisper_max_source_positions(model, extractor, 400)  # doctest: +SKIP
        >>> extractor.chunk_length, extractor.nb_max_frames, model.config.max_source_positions  # doctest: +SKIP
        (8, 800, 400)
    """
    encoder = model.encoder
    current = encoder.embed_positions
    per_second = WHISPER_POSITIONS_PER_SECOND
    if not 0 < max_source_positions <= current.num_embeddings or max_source_positions % per_second:
        raise ModelError(
            f"max_source_positions={max_source_positions} must be a multiple of {per_second} between {per_second} "
            f"and the checkpoint's {current.num_embeddings} positions ({current.num_embeddings / per_second:g} s): "
            f"positions beyond those the encoder was trained with do not exist."
        )
    truncated = torch.nn.Embedding(max_source_positions, current.embedding_dim,
                                   device=current.weight.device, dtype=current.weight.dtype)
    with torch.no_grad():
        truncated.weight.copy_(current.weight[:max_source_positions])
    truncated.requires_grad_(False)  # Whisper never trains its positions (see WhisperEncoder.__init__)
    encoder.embed_positions = truncated
    encoder.max_source_positions = max_source_positions
    model.config.max_source_positions = max_source_positions
    settings = {**feature_extractor.to_dict(), "chunk_length": max_source_positions // per_second}
    return WhisperFeatureExtractor.from_dict(settings)


def prepare_whisper(model: PreTrainedModel, feature_extractor, max_source_positions: int | None):
    """A freshly loaded Whisper classifier made consistent: frozen positions, the input length asked for, checked."""
    # WhisperEncoder.__init__ freezes the sinusoidal positions (transformers PR #26032), but from_pretrained
    # replaces the parameter and loses the flag (seen with transformers 5.24): restore the intended state.
    model.encoder.embed_positions.requires_grad_(False)
    if max_source_positions is not None:
        feature_extractor = set_whisper_max_source_positions(model, feature_extractor, max_source_positions)
    check_whisper_lengths(model.config, feature_extractor)
    return feature_extractor
