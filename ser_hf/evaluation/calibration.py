"""Calibration of predicted probabilities: expected calibration error, reliability bins, temperature scaling.

Top-label calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks"): each example
contributes its highest probability (the confidence) and whether that class is the reference.
Examples are put into ``n_bins`` equal-width confidence bins, right-closed (``(lo, hi]``), and

    ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.

The maximum calibration error (MCE) is the largest such gap over non-empty bins.

Temperature scaling (the same paper) divides a classifier's logits by one number T fitted on held-out
data (minimum negative log-likelihood): the argmax, and so UA and WA, never change, only the confidence.
:func:`fit_temperature` fits T, :func:`fold_temperature` divides a model's ``classifier`` weight and bias
by it, so the saved checkpoint, and ``pipeline("audio-classification")``, give the calibrated scores
with no extra code. :func:`uncalibrated` recovers the probabilities before scaling, for a report's
"ECE before" figure.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.metrics.core import as_label_ids

logger = logging.getLogger(__name__)

# Softmax outputs saved in float16 sum to 1 only to about 1e-3.
_SUM_TOLERANCE = 1e-3

#: The temperatures :func:`fit_temperature` searches: beyond them a held-out set is too small or too easy
#: to say anything (all correct with high margins pushes T towards 0, which would make every score 1.0).
TEMPERATURE_RANGE = (0.05, 20.0)


def validate_probabilities(probabilities: Any, num_samples: int, num_labels: int | None = None) -> np.ndarray:
    """Check an ``(N, C)`` matrix of class probabilities.

    Args:
        probabilities: Array-like (or tensor) of shape ``(N, C)``; rows are softmax outputs.
        num_samples: Expected N (the number of references).
        num_labels: Expected C, or `None` to accept any.

    Returns:
        The probabilities as a ``float64`` array.

    Raises:
        EvaluationError: Wrong shape, non-finite or negative values, or rows not summing to 1.
    """
    if hasattr(probabilities, "detach"):
        probabilities = probabilities.detach().cpu().float().numpy()
    array = np.asarray(probabilities, dtype=np.float64)
    expected = f"({num_samples}, {num_labels if num_labels is not None else 'C'})"
    if array.ndim != 2 or array.shape[0] != num_samples or (num_labels is not None and array.shape[1] != num_labels):
        raise EvaluationError(
            f"`probabilities` must have shape {expected} (one row of class probabilities per reference), "
            f"found {array.shape}."
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise EvaluationError("`probabilities` must be finite and non-negative; found NaN, inf or negative values.")
    row_sums = array.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    if abs(row_sums[worst] - 1.0) > _SUM_TOLERANCE:
        raise EvaluationError(
            f"`probabilities` rows must sum to 1, row {worst} sums to {row_sums[worst]:.4f}. "
            "If these are logits, apply a softmax first: `scipy.special.softmax(logits, axis=-1)`."
        )
    return array


def reliability_bins(probabilities: Any, references: Any, n_bins: int = 15) -> dict[str, Any]:
    """Per-bin confidence, accuracy and counts, plus ECE and MCE, for top-label calibration.

    Args:
        probabilities: ``(N, C)`` class probabilities (rows sum to 1).
        references: True class ids, length N.
        n_bins: Number of equal-width confidence bins on [0, 1].

    Returns:
        A dict with ``expected_calibration_error``, ``maximum_calibration_error``, ``n_bins``,
        ``bin_edges`` (``n_bins + 1`` floats), ``bin_confidence`` and ``bin_accuracy`` (`None` for
        empty bins) and ``bin_count``; plain Python values, ready for JSON.

    Example:
        ```python
        >>> bins = reliability_bins([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10)
        >>> round(bins["expected_calibration_error"], 4)  # (|1 - 0.9| + |0 - 0.6|) / 2
        0.35

        ```
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise EvaluationError(f"`n_bins` must be a positive integer, found {n_bins!r}; 10 or 15 are usual.")
    refs = as_label_ids(references, "references")
    probs = validate_probabilities(probabilities, refs.size)
    if refs.max() >= probs.shape[1]:
        raise EvaluationError(
            f"`references` holds label id {int(refs.max())} but `probabilities` has only {probs.shape[1]} columns."
        )
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == refs).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" on the inner edges puts a confidence equal to an edge in the bin it closes.
    bin_index = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(bin_index, minlength=n_bins)
    sum_conf = np.bincount(bin_index, weights=confidence, minlength=n_bins)
    sum_correct = np.bincount(bin_index, weights=correct, minlength=n_bins)
    filled = count > 0
    mean_conf = np.divide(sum_conf, count, out=np.zeros(n_bins), where=filled)
    accuracy = np.divide(sum_correct, count, out=np.zeros(n_bins), where=filled)
    gaps = np.abs(accuracy - mean_conf)
    return {
        "expected_calibration_error": float(np.sum(count * gaps) / refs.size),
        "maximum_calibration_error": float(gaps[filled].max()),
        "n_bins": int(n_bins),
        "bin_edges": edges.tolist(),
        "bin_confidence": [float(v) if f else None for v, f in zip(mean_conf, filled, strict=True)],
        "bin_accuracy": [float(v) if f else None for v, f in zip(accuracy, filled, strict=True)],
        "bin_count": count.astype(int).tolist(),
    }


def expected_calibration_error(probabilities: Any, references: Any, n_bins: int = 15) -> float:
    """Top-label expected calibration error (see the module docstring for the definition).

    Args:
        probabilities: ``(N, C)`` class probabilities (rows sum to 1).
        references: True class ids, length N.
        n_bins: Number of equal-width confidence bins.

    Returns:
        ECE in [0, 1]; 0 means confidence matches accuracy in every bin.

    Example:
        ```python
        >>> expected_calibration_error([[1.0, 0.0], [0.0, 1.0]], [0, 1])
        0.0

        ```
    """
    return reliability_bins(probabilities, references, n_bins)["expected_calibration_error"]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def fit_temperature(logits: Any, references: Any, *, class_balanced: bool = False) -> float:
    """The temperature T minimising the negative log-likelihood of ``softmax(logits / T)`` on held-out clips.

    Fit it on validation speakers (never the test speakers): the NLL is convex in ``1 / T``, so a bounded
    one-dimensional search finds the optimum inside :data:`TEMPERATURE_RANGE`.

    Args:
        logits: ``(N, C)`` raw classifier outputs of held-out clips.
        references: Their true class ids, length N.
        class_balanced: Weight each clip by the inverse frequency of its class (every class counts the
            same, as UA does); plain NLL otherwise, as in Guo et al. (2017).

    Returns:
        T > 0; above 1 softens over-confident scores, below 1 sharpens timid ones.

    Raises:
        EvaluationError: wrong shapes, non-finite logits, or class ids outside the logits' columns.

    Example:
        ```python
        >>> logits = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
        >>> round(fit_temperature(logits, [0, 1, 1, 0]), 2)  # half wrong: flatten the scores
        20.0

        ```
    """
    refs = as_label_ids(references, "references")
    scores = np.asarray(logits.detach().cpu().float().numpy() if hasattr(logits, "detach") else logits,
                        dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != refs.size or not np.all(np.isfinite(scores)):
        raise EvaluationError(
            f"`logits` must be a finite ({refs.size}, C) array (one row of raw scores per reference), found shape "
            f"{scores.shape}. Pass the classifier outputs before the softmax."
        )
    if refs.max() >= scores.shape[1]:
        raise EvaluationError(f"`references` holds class id {int(refs.max())} but `logits` has {scores.shape[1]} columns.")
    weights = np.ones(refs.size)
    if class_balanced:
        counts = np.bincount(refs, minlength=scores.shape[1]).astype(np.float64)
        weights = refs.size / (np.count_nonzero(counts) * counts[refs])
    rows = np.arange(refs.size)

    def loss(log_inverse: float) -> float:
        return float(-(weights * _log_softmax(scores * np.exp(log_inverse))[rows, refs]).sum())

    low, high = TEMPERATURE_RANGE
    result = minimize_scalar(loss, bounds=(-np.log(high), -np.log(low)), method="bounded",
                             options={"xatol": 1e-4})
    return float(np.exp(-result.x))


def fold_temperature(model: Any, temperature: float) -> None:
    """Divide the ``classifier`` layer's weight and bias by ``temperature`` in place (``logits / T``).

    Args:
        model: A ``*ForSequenceClassification`` / ``WhisperForAudioClassification`` model (peft-wrapped
            too), or any module whose last layer is a ``torch.nn.Linear`` called ``classifier`` (ser_hf's
            probe heads).
        temperature: T from :func:`fit_temperature`.

    Raises:
        EvaluationError: no ``classifier`` linear layer, or a temperature that is not a positive number.
    """
    import torch

    layers = [module for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and "classifier" in name.split(".")]
    if not layers:
        raise EvaluationError(
            f"fold_temperature: {type(model).__name__} has no `classifier` torch.nn.Linear to scale; pass an "
            "AutoModelForAudioClassification model (LoRA-wrapped too) or a ser_hf probe head."
        )
    if not (np.isfinite(temperature) and temperature > 0):
        raise EvaluationError(f"fold_temperature: the temperature must be a positive number, found {temperature!r}.")
    # A LoRA-wrapped model holds the head twice (original and trained copy): both are scaled, so the merged
    # model and the wrapper agree.
    with torch.no_grad():
        for layer in layers:
            layer.weight.div_(float(temperature))
            if layer.bias is not None:
                layer.bias.div_(float(temperature))


def uncalibrated(probabilities: Any, temperature: float) -> np.ndarray:
    """The probabilities before temperature scaling: ``softmax(T * log p)`` (the softmax ignores row shifts).

    Args:
        probabilities: ``(N, C)`` calibrated probabilities, ``softmax(logits / T)``.
        temperature: The T that was folded in.

    Returns:
        ``softmax(logits)``, as a ``float64`` array.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    # A probability that underflowed to 0 stays 0 (its logit was far below the others at any temperature).
    scaled = np.where(np.isfinite(log_probs), temperature * log_probs, -np.inf)
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def temperature_record(logits: Any, references: Any, temperature: float, n_bins: int = 15) -> dict[str, float]:
    """ECE of held-out clips before and after dividing their logits by ``temperature``.

    Returns:
        ``{"temperature", "expected_calibration_error_before", "expected_calibration_error_after", "num_samples"}``.
    """
    scores = np.asarray(logits, dtype=np.float64)
    before, after = (np.exp(_log_softmax(scores / t)) for t in (1.0, temperature))
    return {"temperature": float(temperature),
            "expected_calibration_error_before": expected_calibration_error(before, references, n_bins),
            "expected_calibration_error_after": expected_calibration_error(after, references, n_bins),
            "num_samples": int(scores.shape[0])}


def calibrate_classifier(model: Any, logits: Any, references: Any, speakers: Any = None, *,
                         source: str = "validation speakers") -> dict[str, Any]:
    """Fit a temperature on held-out logits, fold it into ``model``'s classifier and record it in its config.

    The record goes to ``model.config.ser_hf_calibration`` (so it is saved in ``config.json``, and
    ``ser-hf evaluate`` can report the ECE before and after); a plain module without a config just
    gets its classifier scaled.

    Args:
        model: The classifier (see :func:`fold_temperature`).
        logits: ``(N, C)`` logits of held-out clips, computed with the model as it is now.
        references: Their class ids.
        speakers: Their speakers (counted in the record), or `None`.
        source: What the clips are, for the record (``"validation speakers"``).

    Returns:
        :func:`temperature_record` plus ``fitted_on`` (e.g. ``"validation speakers: 48 clips, 2 speakers"``);
        when the clips cannot tell T (none is misclassified, or the fit is at a bound of
        :data:`TEMPERATURE_RANGE`), T = 1 is kept and ``skipped`` says why.

    Example:
        ```python
        >>> record = calibrate_classifier(model, validation_logits, validation_labels,  # doctest: +SKIP
        ...                               validation_speakers)
        >>> record["temperature"], record["expected_calibration_error_after"]  # doctest: +SKIP

        ```
    """
    temperature = fit_temperature(logits, references)
    low, high = TEMPERATURE_RANGE
    # With no error the likelihood keeps improving as T -> 0, and at a bound it was still improving: such a T
    # says nothing about new speakers (T = 0.05 would make every score ~1), so none is folded.
    scores, refs = np.asarray(logits, dtype=np.float64), as_label_ids(references, "references")
    at_bound = bool(np.all(scores.argmax(axis=1) == refs)) or not low * 1.01 < temperature < high * 0.99
    record = temperature_record(logits, references, 1.0 if at_bound else temperature)
    clips = f"{record['num_samples']} clips" + ("" if speakers is None else f", {len(set(speakers))} speakers")
    record["fitted_on"] = f"{source}: {clips}"
    if at_bound:
        record["skipped"] = (f"these clips cannot tell the temperature (none is misclassified, or the best T, "
                             f"{temperature:.3g}, is at a bound of {low}-{high}), so T = 1 is kept")
        logger.warning("temperature scaling skipped: %s", record["skipped"])
    fold_temperature(model, record["temperature"])
    config = getattr(model, "config", None)
    if config is not None:
        config.ser_hf_calibration = dict(record)
    return record
