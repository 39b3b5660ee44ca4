"""SER metrics: a plain function, a `Trainer` hook and the `evaluate` module, all on one implementation.

- :func:`compute_ser_metrics` - references + predictions -> dict (UA, WA, F1, per class, confusion).
- :func:`make_compute_metrics` - the ``compute_metrics`` callable a ``transformers.Trainer`` takes.
- :func:`load_ser_metric` - the ``evaluate`` module shipped in ``ser_metrics/``, loaded by path so it
  works offline (``evaluate.load("accuracy")``-style Hub names do not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.metrics.core import SCALAR_METRICS, compute_scores

if TYPE_CHECKING:
    import evaluate

SER_METRIC_PATH = Path(__file__).resolve().parent / "ser_metrics"
"""Folder of the ``evaluate`` metric module; pass ``str(SER_METRIC_PATH)`` to ``evaluate.load``."""

__all__ = ["SCALAR_METRICS", "SER_METRIC_PATH", "compute_ser_metrics", "load_ser_metric", "make_compute_metrics"]


def load_ser_metric(**kwargs: Any) -> evaluate.EvaluationModule:
    """Load the SER metric module with ``evaluate.load`` by path (online or offline).

    Args:
        **kwargs: Forwarded to ``evaluate.load`` (e.g. ``experiment_id``, ``keep_in_memory``).

    Returns:
        An ``evaluate.EvaluationModule`` whose ``compute(references=..., predictions=...,
        label_names=...)`` returns the same dict as :func:`compute_ser_metrics`.

    Example:
        ```python
        >>> metric = load_ser_metric()
        >>> metric.compute(references=[0, 1], predictions=[0, 0], label_names=["neu", "ang"])["unweighted_accuracy"]
        0.5

        ```
    """
    # Imported here: `import evaluate` pulls in transformers' pipelines (seconds), which the
    # Trainer hook and the report do not need.
    import evaluate

    return evaluate.load(str(SER_METRIC_PATH), **kwargs)


def compute_ser_metrics(
    references: Any,
    predictions: Any,
    label_names: Sequence[str] | None = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """Compute UA, WA, macro/weighted F1, per-class scores and the confusion matrix.

    Args:
        references: True class ids (list, numpy array or tensor), length N.
        predictions: Predicted class ids, length N.
        label_names: Class names in id order. Always pass them (or `num_labels`) so that classes
            absent from this set still get a confusion-matrix row.
        num_labels: Number of classes when `label_names` is not given.

    Returns:
        A plain dict: ``unweighted_accuracy``, ``weighted_accuracy``, ``macro_f1``, ``weighted_f1``
        (floats in [0, 1]), ``per_class`` (name -> ``precision``/``recall``/``f1``/``support``, `None`
        where undefined), ``confusion_matrix`` (rows = references), ``labels``, ``num_samples``.
        UA averages recall over the classes that have references (see
        :mod:`ser_hf.evaluation.metrics.core`).

    Raises:
        EvaluationError: Mismatched lengths, empty input, or ids outside ``[0, num_labels)``.

    Example:
        ```python
        >>> scores = compute_ser_metrics([0, 0, 1, 2], [0, 1, 1, 2], label_names=["neu", "hap", "sad"])
        >>> scores["unweighted_accuracy"], scores["weighted_accuracy"]
        (0.8333333333333334, 0.75)

        ```
    """
    return compute_scores(references, predictions, label_names=label_names, num_labels=num_labels)


def _unpack_eval_prediction(eval_pred: Any) -> tuple[Any, Any]:
    # Duck-typed so this module needs no transformers import: EvalPrediction or a (preds, labels) tuple.
    if hasattr(eval_pred, "predictions") and hasattr(eval_pred, "label_ids"):
        predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
    else:
        predictions, label_ids = eval_pred[0], eval_pred[1]
    # Models that also return hidden states hand the Trainer a tuple; the logits come first.
    if isinstance(predictions, (tuple, list)) and predictions and np.ndim(predictions[0]) >= 1:
        predictions = predictions[0]
    return predictions, label_ids


def make_compute_metrics(label_names: Sequence[str], per_class: bool = False) -> Callable[[Any], dict[str, float]]:
    """Build the ``compute_metrics`` function for ``transformers.Trainer``.

    Args:
        label_names: Class names in id order (``model.config.id2label`` values, sorted by id).
        per_class: Also log ``recall_<label>`` and ``f1_<label>`` for every class (NaN when undefined).

    Returns:
        A callable taking an ``EvalPrediction`` (logits ``(N, C)`` or already-argmaxed ids ``(N,)``)
        and returning scalar metrics only, UA first, since the Trainer logs every value it returns.
        Use ``metric_for_best_model="unweighted_accuracy"``.

    Example:
        ```python
        >>> import numpy as np
        >>> from transformers import EvalPrediction
        >>> compute_metrics = make_compute_metrics(["neutral", "happy", "sad", "angry"])
        >>> prediction = EvalPrediction(predictions=np.eye(4), label_ids=np.array([0, 1, 2, 0]))  # logits, labels
        >>> compute_metrics(prediction)["weighted_accuracy"]
        0.75
        >>> trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation,  # doctest: +SKIP
        ...                   compute_metrics=compute_metrics)

        ```
    """
    names = list(label_names)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, label_ids = _unpack_eval_prediction(eval_pred)
        predictions = np.asarray(predictions)
        if predictions.ndim == 2:
            if predictions.shape[1] != len(names):
                raise EvaluationError(
                    f"The model returned logits for {predictions.shape[1]} classes but `label_names` has "
                    f"{len(names)} ({names}); build compute_metrics with the model's own labels."
                )
            predictions = predictions.argmax(axis=-1)
        scores = compute_scores(label_ids, predictions, label_names=names)
        metrics = {name: scores[name] for name in SCALAR_METRICS}
        if per_class:
            for name, values in scores["per_class"].items():
                for key in ("recall", "f1"):
                    metrics[f"{key}_{name}"] = float("nan") if values[key] is None else values[key]
        return metrics

    return compute_metrics
