"""Batch prediction with any ``AutoModelForAudioClassification`` checkpoint, equal to the HF pipeline.

:func:`predict_proba` returns, for a list of audio files (or 16 kHz arrays), the class probabilities
that ``transformers.pipeline("audio-classification", model=DIR)`` returns clip by clip, computed in
batches. Clips are sorted by duration so that a batch holds clips of similar length, and they are
padded only where padding cannot change a result:

- Whisper and AST feature extractors pad (or cut) every clip to one fixed length anyway, so any
  batch gives exactly the single-clip result.
- wav2vec2 / HuBERT / WavLM with an extractor that returns an attention mask and a convolutional
  front end that normalises each frame on its own (``feat_extract_norm="layer"``, e.g. the large
  "lv60" checkpoints) pad dynamically to the longest clip of the batch and pass the mask.
- Everything else runs one clip at a time: models without an attention mask (wav2vec2-base style,
  ``return_attention_mask=False``), group-normalised front ends (``feat_extract_norm="group"``: the
  statistics run over time, padding included), and data2vec-audio (its stacked positional
  convolutions let padding leak into the last real frames).

Audio is decoded with :func:`ser_hf.audio.load_audio` (soundfile + soxr) at the extractor's rate, so
neither ffmpeg nor torchaudio is needed. Only safetensors weights are loaded and no remote code runs.
A directory written by ``ser-hf export-onnx`` (or one ``.onnx`` file in it) loads as an
:class:`~ser_hf.inference.onnx_runtime.OnnxAudioClassifier` and is batched by the same rules.

Example:
    ```python
    >>> from ser_hf.inference.predict import predict_proba
    >>> probabilities, labels = predict_proba("outputs/rav4", ["a.wav", "b.wav"])  # doctest: +SKIP
    >>> labels  # doctest: +SKIP
    ['neutral', 'happy', 'sad', 'angry']
    >>> probabilities.shape  # doctest: +SKIP
    (2, 4)

    ```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, PreTrainedModel

from ser_hf.audio import AudioPreprocessor, audio_info, load_audio
from ser_hf.checkpoint import check_checkpoint_dir
from ser_hf.errors import ModelError
from ser_hf.inference.onnx_runtime import OnnxAudioClassifier, is_onnx_export, load_onnx_classifier
from ser_hf.models.architecture import FIXED_LENGTH_MODEL_TYPES, batch_padding_is_exact
from ser_hf.models.checkpoint_check import check_checkpoint, check_loading_info
from ser_hf.paths import path_text, printable
from ser_hf.progress import progress_bar

__all__ = ["FIXED_LENGTH_MODEL_TYPES", "batch_padding_is_exact", "load_classifier", "model_labels", "predict_proba"]

AudioInput = Union[str, "os.PathLike[str]", np.ndarray]

def _is_hub_id(text: str) -> bool:
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return "/" in text


def load_classifier(model_dir: str | os.PathLike, device: str | torch.device | None = None):
    """Load an audio-classification checkpoint and its feature extractor, safely.

    Args:
        model_dir: A checkpoint directory (``config.json``, ``*.safetensors``, ``preprocessor_config.json``),
            a Hub id ``owner/name`` already in the local cache (offline) or reachable, or an ONNX export
            (a ``ser-hf export-onnx`` directory, or one ``.onnx`` file in it, e.g. ``model.int8.onnx``).
        device: Where to put the model (default: CPU).

    Returns:
        ``(model, feature_extractor)``, the model in eval mode (an
        :class:`~ser_hf.inference.onnx_runtime.OnnxAudioClassifier` for an ONNX export).

    Raises:
        ModelError: missing directory or files, pickle-only weights, a config that is not an
            audio-classification model, or files that do not fit together (see
            :func:`ser_hf.models.checkpoint_check.check_checkpoint`: a missing head, a config describing
            another model, labels that do not match the classifier, a corrupt safetensors header); the
            message names the directory and the fix.

    Example:
        ```python
        >>> model, extractor = load_classifier("outputs/rav4")  # doctest: +SKIP

        ```
    """
    text = path_text(model_dir, "the model", error=ModelError, refuse_empty=True)  # "" would be the current folder
    path = Path(text).expanduser()
    if is_onnx_export(path):
        return load_onnx_classifier(path, device=device)
    if path.exists() or not _is_hub_id(text):
        _require_utf8_path(str(path))
        check_checkpoint_dir(path)
        text = str(path)
    # Config against weights header before anything is allocated: no random head, no config-sized allocation.
    check_checkpoint(text)
    try:
        # use_safetensors=True: never unpickle weights. trust_remote_code=False, explicitly: its default (None)
        # asks on stdin whether to run a checkpoint's own code, and a "y" from a pipe would run it.
        model, info = AutoModelForAudioClassification.from_pretrained(
            text, use_safetensors=True, trust_remote_code=False, output_loading_info=True)
        feature_extractor = AutoFeatureExtractor.from_pretrained(text, trust_remote_code=False)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())
        raise ModelError(
            f"model {text!r} could not be loaded as an audio-classification checkpoint with safetensors weights "
            f"({reason}). Pass a directory saved by ser_hf (save_checkpoint) or by an "
            f"AutoModelForAudioClassification; offline, a Hub id must already be in the local cache."
        ) from err
    check_loading_info(text, info)
    return model.to(device or "cpu").eval(), feature_extractor


def _require_utf8_path(text: str) -> None:
    """safetensors and the tokenizer/feature-extractor loaders open files by UTF-8 path only."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelError(
            f"checkpoint folder '{printable(text)}': its path is not valid UTF-8, and safetensors cannot open files "
            f"by such a path. Rename the folder (or a parent) to a UTF-8 name, or move the checkpoint.") from None


def model_labels(model: PreTrainedModel | OnnxAudioClassifier) -> list[str]:
    """The model's class names in id order (``config.id2label``)."""
    id2label = model.config.id2label
    return [str(id2label[index]) for index in range(model.config.num_labels)]


def _duration(item: AudioInput, sampling_rate: int) -> float:
    if isinstance(item, np.ndarray):
        return item.shape[-1] / sampling_rate
    return audio_info(item).duration


def _load(item: AudioInput, sampling_rate: int, preprocessor: AudioPreprocessor | None) -> np.ndarray:
    if isinstance(item, np.ndarray):
        # Arrays are taken to be at the extractor's rate already, as the HF pipeline does.
        return item if preprocessor is None else preprocessor(item, sampling_rate=sampling_rate)
    return load_audio(item, sampling_rate) if preprocessor is None else preprocessor(item)


def _features(feature_extractor, waves: list[np.ndarray], model: PreTrainedModel) -> dict[str, torch.Tensor]:
    rate = feature_extractor.sampling_rate
    if len(waves) == 1:
        # Exactly the pipeline's call, so a single clip goes through the same code path.
        inputs = feature_extractor(waves[0], sampling_rate=rate, return_tensors="pt")
    elif model.config.model_type in FIXED_LENGTH_MODEL_TYPES:
        inputs = feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
    else:
        inputs = feature_extractor(waves, sampling_rate=rate, padding=True, return_attention_mask=True,
                                   return_tensors="pt")
    dtype = model.dtype
    return {key: value.to(model.device, dtype=dtype if value.is_floating_point() else value.dtype)
            for key, value in inputs.items()}


def _check_single_label(model: PreTrainedModel) -> None:
    problem = getattr(model.config, "problem_type", None)
    if problem in ("regression", "multi_label_classification"):
        raise ModelError(
            f"predict_proba needs a single-label classifier (softmax over emotions); this model's config has "
            f"problem_type={problem!r}. Use a checkpoint trained for single-label emotion classification."
        )


def _resolve(model_dir_or_model: Any, feature_extractor: Any) -> tuple[PreTrainedModel, Any]:
    if not isinstance(model_dir_or_model, (PreTrainedModel, OnnxAudioClassifier)):
        return load_classifier(model_dir_or_model)
    model = model_dir_or_model
    if feature_extractor is None:
        source = getattr(model, "name_or_path", "") or ""
        if not Path(source).is_dir():
            raise ModelError(
                "predict_proba got a model object without feature_extractor=..., and its name_or_path "
                f"({source!r}) is not a directory to load one from. Pass feature_extractor=AutoFeatureExtractor"
                ".from_pretrained(DIR)."
            )
        feature_extractor = AutoFeatureExtractor.from_pretrained(source, trust_remote_code=False)
    return model.eval(), feature_extractor


@torch.inference_mode()
def predict_proba(
    model_dir_or_model: str | os.PathLike | PreTrainedModel,
    paths: Sequence[AudioInput],
    *,
    feature_extractor: Any = None,
    preprocessor: AudioPreprocessor | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities of every clip, as ``pipeline("audio-classification")`` computes them, in batches.

    Args:
        model_dir_or_model: A checkpoint directory or ONNX export (see :func:`load_classifier`), or a loaded
            ``AutoModelForAudioClassification`` or :class:`~ser_hf.inference.onnx_runtime.OnnxAudioClassifier`.
        paths: Audio files (any format libsndfile reads, any rate: resampled with soxr), or 1-D float
            arrays already at the feature extractor's rate (16 kHz for every supported backbone).
        feature_extractor: The model's feature extractor, when a model object is passed (default: loaded
            from its ``name_or_path`` directory).
        preprocessor: Audio cleaning (trim, denoise, normalise...) applied before the extractor; its
            ``sampling_rate`` must be the extractor's. Default: decode and resample only, as the pipeline.
        batch_size: Clips per forward pass (1 for models where padding could change results, see
            :func:`batch_padding_is_exact`).
        progress: Show a progress bar.

    Returns:
        ``(probabilities, labels)``: a float32 ``(len(paths), num_labels)`` softmax array whose row ``i``
        belongs to ``paths[i]``, and the class names in column order (``config.id2label``).

    Raises:
        ModelError: for an unusable checkpoint (see :func:`load_classifier`), a non single-label model,
            or a preprocessor at another sampling rate.
        AudioError: for a file that cannot be decoded (the message names it).
    """
    model, feature_extractor = _resolve(model_dir_or_model, feature_extractor)
    _check_single_label(model)
    rate = feature_extractor.sampling_rate
    if preprocessor is not None and preprocessor.sampling_rate != rate:
        raise ModelError(
            f"preprocessor.sampling_rate is {preprocessor.sampling_rate} Hz but the model's feature extractor expects "
            f"{rate} Hz; build it with AudioPreprocessor(sampling_rate={rate}, ...)."
        )
    if batch_size < 1:
        raise ModelError(f"batch_size must be a positive integer, got {batch_size}.")
    size = batch_size if batch_padding_is_exact(model, feature_extractor) else 1
    order = sorted(range(len(paths)), key=lambda i: _duration(paths[i], rate))
    probabilities = np.zeros((len(paths), model.config.num_labels), dtype=np.float32)
    with progress_bar(progress, total=len(paths), desc="predict", unit="clip") as bar:
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            inputs = _features(feature_extractor, [_load(paths[i], rate, preprocessor) for i in batch], model)
            logits = model(**inputs).logits.float()
            probabilities[batch] = logits.softmax(dim=-1).cpu().numpy()
            bar.update(len(batch))
    return probabilities, model_labels(model)
