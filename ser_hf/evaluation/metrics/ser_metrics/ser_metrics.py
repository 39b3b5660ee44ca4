"""Speech emotion recognition metrics: UA, WA, macro-F1, per-class scores and the confusion matrix.

An ``evaluate`` metric module that ships inside ser_hf. Hub names cannot be resolved offline, so
load it by path (works online and offline, and inside ``evaluate.combine``)::

    import evaluate
    from ser_hf.evaluation import SER_METRIC_PATH

    metric = evaluate.load(str(SER_METRIC_PATH))

The arithmetic lives in :mod:`ser_hf.evaluation.metrics.core`, shared with the Trainer callback and
the evaluation report so every path reports the same numbers.
"""

from __future__ import annotations

import datasets
import evaluate

from ser_hf.evaluation.metrics.core import compute_scores

_DESCRIPTION = """
Speech emotion recognition metrics. Unweighted accuracy (UA, the mean per-class recall, also called
balanced accuracy) is the headline number because emotion corpora are imbalanced; weighted accuracy
(WA) is plain accuracy. A class with no references is left out of UA and of the macro averages
instead of counting as 0, as scikit-learn's `balanced_accuracy_score` does; its recall is `None`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted class ids.
    references (`list` of `int`): True class ids.
    label_names (`list` of `str`, *optional*): Class names in id order. Fixes the number of classes,
        so a class absent from both lists still gets a row, and names the per-class entries.
    num_labels (`int`, *optional*): Number of classes when `label_names` is not given. Without
        either, it is `max(id) + 1`.

Returns:
    unweighted_accuracy (`float`): Mean recall over the classes that have references.
    weighted_accuracy (`float`): Fraction of correct predictions.
    macro_f1 (`float`): Mean F1 over the classes present in references or predictions.
    weighted_f1 (`float`): F1 weighted by each class's number of references.
    per_class (`dict`): Class name -> `precision`, `recall`, `f1` (`None` when undefined), `support`.
    confusion_matrix (`list` of `list` of `int`): Rows are references, columns predictions.
    labels (`list` of `str`): Class names in id order.
    num_samples (`int`): Number of examples.

Examples:
    >>> import evaluate
    >>> from ser_hf.evaluation import SER_METRIC_PATH
    >>> metric = evaluate.load(str(SER_METRIC_PATH))
    >>> results = metric.compute(references=[0, 1, 1, 2], predictions=[0, 1, 0, 2], label_names=["neu", "hap", "sad"])
    >>> round(results["unweighted_accuracy"], 4), results["weighted_accuracy"]
    (0.8333, 0.75)
"""

_CITATION = """
@inproceedings{schuller2009interspeech,
  title={The {INTERSPEECH} 2009 Emotion Challenge},
  author={Schuller, Bj{\\"o}rn and Steidl, Stefan and Batliner, Anton},
  booktitle={Proc. Interspeech},
  pages={312--315},
  year={2009}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SerMetrics(evaluate.Metric):
    """UA, WA, macro/weighted F1, per-class scores and the confusion matrix for emotion classifiers."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.balanced_accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, label_names=None, num_labels=None):
        return compute_scores(references, predictions, label_names=label_names, num_labels=num_labels)
