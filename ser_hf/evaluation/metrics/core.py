"""The numbers behind every ser_hf evaluation, in plain numpy.

One implementation serves the `evaluate` metric module, the `Trainer` callback, the report and the
bootstrap, so the fine-tuned, probe and SVM paths can never disagree on what "UA" means.

Definitions (class ``c``; TP, FP, FN counted from the confusion matrix, rows are references):

- recall ``TP / support``: undefined (NaN) when ``c`` has no references;
- precision ``TP / (TP + FP)``: undefined when ``c`` is never predicted;
- F1 ``2 TP / (2 TP + FP + FN)``: undefined only when ``c`` is absent from both references and
  predictions (a class that is predicted but never true gets F1 = 0: its false positives count);
- **unweighted accuracy (UA)** = mean recall over the classes that have references; a class with
  no references in this set is left out, not counted as 0 (same as scikit-learn's
  ``balanced_accuracy_score``, which warns);
- **weighted accuracy (WA)** = plain accuracy, ``trace / N``;
- **macro-F1** = mean of the defined per-class F1 values (scikit-learn's ``f1_score(average="macro",
  zero_division=np.nan)`` over all labels);
- **weighted-F1** = per-class F1 weighted by support.

Undefined per-class values stay NaN here and become ``None`` in JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_hf.errors import EvaluationError

SCALAR_METRICS = ("unweighted_accuracy", "weighted_accuracy", "macro_f1", "weighted_f1")
"""The headline metrics, UA first: the order reports, logs and tables use."""


def as_label_ids(values: Any, name: str) -> np.ndarray:
    """Turn a sequence of class ids into a 1-D ``int64`` array, or explain why it cannot be one.

    Args:
        values: A list, numpy array or tensor of integer class ids.
        name: The argument name to quote in errors (``"references"``, ``"predictions"``).

    Returns:
        A 1-D ``np.int64`` array.
    """
    if hasattr(values, "detach"):  # torch tensors, without importing torch
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise EvaluationError(
            f"`{name}` must be a 1-D sequence of class ids, found shape {array.shape}. "
            "If you have logits or probabilities, take `argmax(axis=-1)` first."
        )
    if array.size == 0:
        raise EvaluationError(f"`{name}` is empty: evaluation needs at least one example.")
    if array.dtype.kind == "b" or array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    example = array[0]
    raise EvaluationError(
        f"`{name}` must hold integer class ids, found dtype {array.dtype} (first value {example!r}). "
        "Map label names to ids first, e.g. `[label_names.index(x) for x in values]`."
    )


def validate_labels(
    references: Any, predictions: Any, num_labels: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Check that references and predictions are matching id arrays in ``[0, num_labels)``.

    Args:
        references: True class ids, length N.
        predictions: Predicted class ids, length N.
        num_labels: Number of classes. When `None`, it is ``max(id) + 1`` over both arrays, which
            silently drops trailing classes absent from both; pass it whenever you know it.

    Returns:
        ``(references, predictions, num_labels)`` as two ``int64`` arrays and an int.

    Raises:
        EvaluationError: Different lengths, empty input, non-integer or out-of-range ids.
    """
    refs = as_label_ids(references, "references")
    preds = as_label_ids(predictions, "predictions")
    if refs.shape != preds.shape:
        raise EvaluationError(
            f"`predictions` has {preds.size} items but `references` has {refs.size}: "
            "pass exactly one prediction per reference, in the same order."
        )
    if num_labels is None:
        num_labels = int(max(refs.max(), preds.max())) + 1
    if int(num_labels) < 1:
        raise EvaluationError(f"`num_labels` must be at least 1, found {num_labels}.")
    num_labels = int(num_labels)
    for name, array in (("references", refs), ("predictions", preds)):
        bad = array[(array < 0) | (array >= num_labels)]
        if bad.size:
            raise EvaluationError(
                f"`{name}` holds label id {int(bad[0])}, outside the {num_labels} classes "
                f"(ids 0..{num_labels - 1}). Pass the full `label_names` (or `num_labels`) of the "
                "model, or map the ids to the model's label set."
            )
    return refs, preds, num_labels


def confusion_matrix(references: np.ndarray, predictions: np.ndarray, num_labels: int) -> np.ndarray:
    """Count matrix with references as rows and predictions as columns; every class gets a row.

    Args:
        references: Validated ``int64`` ids (see :func:`validate_labels`).
        predictions: Validated ``int64`` ids of the same length.
        num_labels: Number of classes C.

    Returns:
        ``(C, C)`` ``int64`` array.

    Example:
        ```python
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 3).tolist()
        [[1, 0, 0], [1, 1, 0], [0, 0, 0]]

        ```
    """
    flat = references * num_labels + predictions
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # NaN instead of a warning where the denominator is 0: "undefined" is the honest answer.
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nan_mean(values: np.ndarray) -> np.ndarray:
    # np.nanmean warns on all-NaN rows; those cannot happen for N > 0 but stay silent regardless.
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    return _safe_divide(np.where(defined, values, 0.0).sum(axis=-1), count)


def scores_from_confusion(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """All SER scores from one confusion matrix or a stack of them (the bootstrap's case).

    Args:
        matrix: ``(C, C)`` or ``(B, C, C)`` counts, rows are references.

    Returns:
        A dict with per-class ``precision``, ``recall``, ``f1``, ``support`` (shape ``(..., C)``)
        and the scalars of :data:`SCALAR_METRICS` (shape ``(...)``); undefined values are NaN.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diagonal(matrix, axis1=-2, axis2=-1)
    support = matrix.sum(axis=-1)
    predicted = matrix.sum(axis=-2)
    total = support.sum(axis=-1)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * true_positives, support + predicted)
    return {
        "precision": _safe_divide(true_positives, predicted),
        "recall": recall,
        "f1": f1,
        "support": support,
        "unweighted_accuracy": _nan_mean(recall),
        "weighted_accuracy": _safe_divide(true_positives.sum(axis=-1), total),
        "macro_f1": _nan_mean(f1),
        # Classes without references have weight 0, so their (possibly NaN) F1 must not leak in.
        "weighted_f1": _safe_divide(np.where(support > 0, np.nan_to_num(f1) * support, 0.0).sum(axis=-1), total),
    }


def _optional_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def resolve_label_names(label_names: Sequence[str] | None, num_labels: int | None) -> list[str] | None:
    """Check `label_names` against `num_labels`; `None` when neither is given.

    Args:
        label_names: Class names in id order, or `None`.
        num_labels: Number of classes, or `None`.

    Returns:
        The names as a list of strings (``"0"``, ``"1"``... when only `num_labels` is given).
    """
    if label_names is None:
        return None if num_labels is None else [str(i) for i in range(int(num_labels))]
    if isinstance(label_names, str):
        raise EvaluationError(
            f"`label_names` must be a list of class names in id order, found the string {label_names!r}."
        )
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        raise EvaluationError(f"`label_names` must be unique, found {names}.")
    if num_labels is not None and int(num_labels) != len(names):
        raise EvaluationError(
            f"`num_labels` is {num_labels} but `label_names` has {len(names)} names ({names}); "
            "pass one name per class, or drop `num_labels`."
        )
    return names


def compute_scores(
    references: Any,
    predictions: Any,
    label_names: Sequence[str] | None = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """Validate the inputs and compute every SER metric as plain Python values.

    Args:
        references: True class ids, length N.
        predictions: Predicted class ids, length N.
        label_names: Class names in id order; fixes the number of classes.
        num_labels: Number of classes when `label_names` is not given.

    Returns:
        ``unweighted_accuracy``, ``weighted_accuracy``, ``macro_f1``, ``weighted_f1`` (floats),
        ``per_class`` (name -> precision/recall/f1/support, `None` where undefined),
        ``confusion_matrix`` (list of lists), ``labels`` and ``num_samples``.
    """
    names = resolve_label_names(label_names, num_labels)
    refs, preds, count = validate_labels(references, predictions, None if names is None else len(names))
    names = names if names is not None else [str(i) for i in range(count)]
    matrix = confusion_matrix(refs, preds, count)
    scores = scores_from_confusion(matrix)
    result: dict[str, Any] = {name: float(scores[name]) for name in SCALAR_METRICS}
    result["per_class"] = {
        name: {
            "precision": _optional_float(scores["precision"][i]),
            "recall": _optional_float(scores["recall"][i]),
            "f1": _optional_float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(names)
    }
    result["confusion_matrix"] = matrix.tolist()
    result["labels"] = names
    result["num_samples"] = int(refs.size)
    return result
