"""Calibration of predicted probabilities: expected calibration error and reliability bins.

Top-label calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks"): each example
contributes its highest probability (the confidence) and whether that class is the reference.
Examples are put into ``n_bins`` equal-width confidence bins, right-closed (``(lo, hi]``), and

    ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.

The maximum calibration error (MCE) is the largest such gap over non-empty bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.metrics.core import as_label_ids

# Softmax outputs saved in float16 sum to 1 only to about 1e-3.
_SUM_TOLERANCE = 1e-3


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
