"""Tiny random speech backbones, saved like a pretrained checkpoint, for tests that need a real model.

Each factory writes a directory holding ``config.json``, ``model.safetensors`` and
``preprocessor_config.json``, laid out like the Hub checkpoint of that architecture (e.g. a Whisper
checkpoint is a full ``WhisperForConditionalGeneration``, as ``openai/whisper-*`` are), so the model
factory is exercised on the same loading path as with real weights. Models have hidden size 32 and
2 layers: they build in milliseconds and weigh a few hundred KB. Weights are random (seeded), so the
predictions mean nothing; only shapes, plumbing and serialisation are tested with them.

Example:
    >>> from ser_hf.testing.models import tiny_backbone
    >>> path = tiny_backbone("wav2vec2", "/tmp/tiny-wav2vec2")  # doctest: +SKIP
    >>> from ser_hf.models.factory import build_model
    >>> model, extractor = build_model(path, ["neutral", "happy", "sad", "angry"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

from ser_hf.errors import ModelError

__all__ = ["TINY_MODEL_TYPES", "tiny_backbone", "tiny_config"]

# Shared by every transformer stack: small enough to build in milliseconds, large enough for 2 heads.
_TINY_TRANSFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}

# wav2vec2-style CNN front end cut to 3 layers; the strides multiply to 320 like the real 7-layer
# encoder, so a 1 s clip still gives 50 frames and masking/length arithmetic behaves as in real models.
_TINY_CNN = {
    "conv_dim": (32, 32, 32),
    "conv_stride": (5, 8, 8),
    "conv_kernel": (10, 8, 8),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "vocab_size": 16,
}

# model_type -> (config class, model class saved as the "pretrained" checkpoint)
_ARCHITECTURES: dict[str, tuple[type[PretrainedConfig], type[PreTrainedModel]]] = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
    "whisper": (WhisperConfig, WhisperForConditionalGeneration),
    "audio-spectrogram-transformer": (ASTConfig, ASTModel),
}

TINY_MODEL_TYPES: tuple[str, ...] = tuple(_ARCHITECTURES)
"""Every ``model_type`` :func:`tiny_backbone` can build (the architectures the model factory supports)."""


def _whisper_config(**overrides) -> WhisperConfig:
    # Special token ids must lie inside the small vocabulary, or config/generation checks warn;
    # the suppress lists of the real config point at ids > 50000 for the same reason.
    values = {
        "vocab_size": 64,
        "num_mel_bins": 80,
        "d_model": 32,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_layers": 1,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64,
        "max_target_positions": 32,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 3,
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
    }
    return WhisperConfig(**{**values, **overrides})


def _ast_config(**overrides) -> ASTConfig:
    # 64 mel bins x 200 frames (2 s) gives 5 x 19 patches: enough to exercise the model, cheap to run.
    values = {**_TINY_TRANSFORMER, "num_mel_bins": 64, "max_length": 200}
    return ASTConfig(**{**values, **overrides})


def tiny_config(model_type: str, **overrides) -> PretrainedConfig:
    """The configuration of a tiny random model of ``model_type``.

    Args:
        model_type: One of :data:`TINY_MODEL_TYPES` (a ``config.model_type``, e.g. ``"wavlm"``).
        **overrides: Config attributes to change, e.g. ``use_weighted_layer_sum=True``.

    Returns:
        A config with hidden size 32 and 2 transformer layers.

    Raises:
        ModelError: if ``model_type`` is not one of :data:`TINY_MODEL_TYPES`.
    """
    if model_type not in _ARCHITECTURES:
        raise ModelError(
            f"tiny_config: model_type={model_type!r} is not supported; expected one of "
            f"{sorted(_ARCHITECTURES)}."
        )
    if model_type == "whisper":
        return _whisper_config(**overrides)
    if model_type == "audio-spectrogram-transformer":
        return _ast_config(**overrides)
    config_class = _ARCHITECTURES[model_type][0]
    return config_class(**{**_TINY_TRANSFORMER, **_TINY_CNN, **overrides})


def _feature_extractor(config: PretrainedConfig):
    if config.model_type == "whisper":
        # 30 s padding, exactly like the openai/whisper-* preprocessors.
        return WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    if config.model_type == "audio-spectrogram-transformer":
        return ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
    # As in facebook/wav2vec2-base: per-utterance normalisation, no attention mask (group-norm CNN).
    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )


def tiny_backbone(model_type: str, out_dir: str | os.PathLike, *, seed: int = 0, **overrides) -> Path:
    """Save a tiny random "pretrained" backbone of ``model_type`` with its feature extractor.

    Args:
        model_type: One of :data:`TINY_MODEL_TYPES`.
        out_dir: Directory to write (created if missing).
        seed: Seed of the random weights, so two calls give identical checkpoints.
        **overrides: Config attributes to change (see :func:`tiny_config`).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`, ready for ``build_model(path, labels)``.

    Example:
        >>> path = tiny_backbone("whisper", "/tmp/tiny-whisper")  # doctest: +SKIP
        >>> sorted(p.name for p in path.iterdir())  # doctest: +SKIP
        ['config.json', 'generation_config.json', 'model.safetensors', 'preprocessor_config.json']
    """
    config = tiny_config(model_type, **overrides)
    model_class = _ARCHITECTURES[model_type][1]
    torch.manual_seed(seed)
    model = model_class(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    _feature_extractor(config).save_pretrained(out)
    return out


def tiny_classifier(model_type: str, out_dir: str | os.PathLike, labels: list[str], *, seed: int = 0) -> Path:
    """Save a tiny random audio-classification checkpoint: :func:`tiny_backbone` plus a head for ``labels``.

    The checkpoint is what ``ser-hf train`` saves (``build_model`` + ``save_checkpoint``), so it loads in
    ``pipeline("audio-classification")``, ``EmotionRecognizer``, ``ser-hf predict`` and ``ser-hf serve``.

    Returns:
        ``out_dir / "model"``; the backbone is written to ``out_dir / "backbone"``.

    Example:
        >>> path = tiny_classifier("wav2vec2", "/tmp/tiny", ["neutral", "happy", "sad", "angry"])  # doctest: +SKIP
    """
    from ser_hf.models.factory import build_model, save_checkpoint

    out = Path(out_dir)
    model, extractor = build_model(tiny_backbone(model_type, out / "backbone", seed=seed), labels)
    return save_checkpoint(model, extractor, out / "model")
