"""Does an ONNX export compute what its PyTorch model computes? The parity check ``export_onnx`` runs.

Both backends score the same feature batches, built by the model's own feature extractor from synthetic
voiced clips of several lengths (padded with a mask where the export takes one). The check passes when the
logits differ by at most the tolerance (1e-4). Where they differ more, a float64 run of the same model
referees: some models carry float32 rounding errors of that size in PyTorch itself, and the export then
passes when onnxruntime is no further from float64 than PyTorch float32 is.

Example:
    ```python
    >>> batches = check_batches(feature_extractor, {"input_values": {0: "batch", 1: "time"}})  # doctest: +SKIP
    >>> parity(model, onnx_model, batches, tolerance=1e-4)["passed"]  # doctest: +SKIP
    'within tolerance'

    ```
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ser_hf.inference.onnx_runtime import OnnxAudioClassifier

__all__ = ["check_batches", "features", "float64_errors", "logits", "max_differences", "parity", "voiced_clips"]

# Clip lengths (seconds) of the parity batches: different lengths, so padding and masks are exercised.
PARITY_SECONDS = ((0.7, 1.6, 2.3), (3.1,))


def voiced_clips(seconds: tuple[float, ...], rate: int, seed: int) -> list[np.ndarray]:
    """Speech-like test signals: a harmonic voice (random pitch) with syllable-rate loudness changes and noise.

    Closer to what the model was trained on than white noise, whose out-of-distribution logits are larger
    and so carry larger float32 rounding errors in both backends.
    """
    rng = np.random.default_rng(seed)
    clips = []
    for length in seconds:
        t = np.arange(int(length * rate)) / rate
        pitch, syllables = 100 + 150 * rng.random(), 2 + 4 * rng.random()
        voice = sum(np.sin(2 * np.pi * pitch * k * t + rng.random()) / k for k in range(1, 9))
        wave = 0.1 * voice * (1 + 0.8 * np.sin(2 * np.pi * syllables * t)) + 0.003 * rng.standard_normal(t.size)
        clips.append(wave.astype(np.float32))
    return clips


def features(feature_extractor: Any, waves: list[np.ndarray], axes: dict[str, dict[int, str]]) -> dict[str, torch.Tensor]:
    """One batch of model inputs (the names in ``axes``) for ``waves``, padded where the time axis is dynamic."""
    if "attention_mask" in axes:
        options = {"padding": True, "return_attention_mask": True}
    elif 1 in next(iter(axes.values())):
        options = {"padding": True}  # no mask: padding is signal to the model, but parity only needs equal inputs
    else:
        options = {}  # fixed-length extractors (Whisper, AST) pad or cut on their own
    inputs = feature_extractor(waves, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt", **options)
    return {name: inputs[name] for name in axes}


def check_batches(feature_extractor: Any, axes: dict[str, dict[int, str]]) -> list[dict[str, torch.Tensor]]:
    """The parity check's input batches (:data:`PARITY_SECONDS`), the same on every run (seeded)."""
    rate = feature_extractor.sampling_rate
    return [features(feature_extractor, voiced_clips(seconds, rate, seed), axes)
            for seed, seconds in enumerate(PARITY_SECONDS)]


def max_differences(expected: list[torch.Tensor], got: list[torch.Tensor]) -> dict[str, float]:
    """Max abs logit and softmax probability differences over all batches."""
    return {"max_abs_logit_diff": max(float((g - e).abs().max()) for g, e in zip(got, expected)),
            "max_abs_prob_diff": max(float((g.softmax(-1) - e.softmax(-1)).abs().max()) for g, e in zip(got, expected))}


def logits(model: torch.nn.Module, onnx_model: OnnxAudioClassifier, batches: list[dict]) -> tuple[list, list]:
    """PyTorch's and onnxruntime's logits on each check batch."""
    with torch.no_grad():
        expected = [model(**batch).logits.float() for batch in batches]
    return expected, [onnx_model(**batch).logits for batch in batches]


def float64_errors(model: torch.nn.Module, batches: list[dict], expected: list, got: list) -> dict[str, float]:
    """How far PyTorch float32 and onnxruntime each are from the same model run in float64."""
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        exact = [model64(**{k: v.double() if v.is_floating_point() else v for k, v in batch.items()}).logits.float()
                 for batch in batches]
    return {"torch_fp32_vs_fp64": max_differences(exact, expected)["max_abs_logit_diff"],
            "onnx_vs_fp64": max_differences(exact, got)["max_abs_logit_diff"]}


def parity(model: torch.nn.Module, onnx_model: OnnxAudioClassifier, batches: list[dict],
           tolerance: float) -> dict[str, Any]:
    """The parity record; ``passed`` says whether the export may be kept.

    Passes when the logits differ by at most ``tolerance``. Models with large logits (e.g. a probe whose input
    standardisation is folded into its projector, on Whisper's large activations) carry float32 rounding
    errors of that size in PyTorch itself; for those, a float64 run of the same model is the referee, and the
    export passes when onnxruntime is no further from it than ``max(tolerance, PyTorch float32's own error)``.
    """
    expected, got = logits(model, onnx_model, batches)
    result = {**max_differences(expected, got), "tolerance": tolerance,
              "batches_seconds": [list(seconds) for seconds in PARITY_SECONDS]}
    if result["max_abs_logit_diff"] <= tolerance:
        return {**result, "passed": "within tolerance"}
    reference = float64_errors(model, batches, expected, got)
    result["float64_reference"] = reference
    # `<=` is False for NaN, so a NaN anywhere fails.
    accurate = reference["onnx_vs_fp64"] <= max(tolerance, reference["torch_fp32_vs_fp64"])
    return {**result, "passed": "as close to float64 as PyTorch float32" if accurate else False}
