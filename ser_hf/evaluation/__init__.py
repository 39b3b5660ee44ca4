"""Evaluation shared by every ser_hf model path (fine-tuned transformer, frozen probe, SVM baseline).

Unweighted accuracy (UA, mean per-class recall) comes first, then weighted accuracy (WA), macro-F1
and the confusion matrix; see :mod:`ser_hf.evaluation.metrics.core` for exact definitions.

- :func:`compute_ser_metrics` / :func:`make_compute_metrics` / :func:`load_ser_metric` - scores as a
  dict, as a ``Trainer`` hook, or as an ``evaluate`` module loaded by path (works offline).
- :class:`EvaluationReport` - one test set: scores, bootstrap CIs, calibration; JSON, Markdown,
  terminal table and figures.
- :func:`aggregate_folds` / :func:`folds_to_markdown` - cross-validation summaries.
- :mod:`ser_hf.evaluation.perturbations` / :mod:`ser_hf.evaluation.robustness` - the same clips scored under
  named, seeded degradations (noise, babble, telephone, gain, reverb, resampling; ``ser-hf evaluate --perturb``),
  whose signal processing is :mod:`ser_hf.evaluation.degradations`.
- :mod:`ser_hf.evaluation.plots` - the figures on their own (imported on demand, so scoring never
  loads matplotlib).

Example:
    ```python
    >>> from ser_hf.evaluation import EvaluationReport
    >>> report = EvaluationReport.from_predictions(refs, preds, label_names=names,  # doctest: +SKIP
    ...                                            probabilities=probs, model="wav2vec2-base", corpus="ravdess",
    ...                                            split="test")
    >>> print(report.format_table())  # doctest: +SKIP
    >>> report.write("outputs/eval")  # doctest: +SKIP

    ```
"""

from __future__ import annotations

from ser_hf.evaluation.bootstrap import (
    CI_METRICS,
    bootstrap_confidence_intervals,
    paired_bootstrap_scores,
    percentile_interval,
)
from ser_hf.evaluation.calibration import expected_calibration_error, reliability_bins
from ser_hf.evaluation.folds import aggregate_folds, folds_to_markdown, summarise_folds, write_cv_summary
from ser_hf.evaluation.metrics import (
    SCALAR_METRICS,
    SER_METRIC_PATH,
    compute_ser_metrics,
    load_ser_metric,
    make_compute_metrics,
)
from ser_hf.evaluation.report import EvaluationReport

__all__ = [
    "CI_METRICS",
    "SCALAR_METRICS",
    "SER_METRIC_PATH",
    "EvaluationReport",
    "aggregate_folds",
    "bootstrap_confidence_intervals",
    "compute_ser_metrics",
    "expected_calibration_error",
    "folds_to_markdown",
    "load_ser_metric",
    "make_compute_metrics",
    "paired_bootstrap_scores",
    "percentile_interval",
    "reliability_bins",
    "summarise_folds",
    "write_cv_summary",
]
