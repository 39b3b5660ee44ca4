"""SER metrics: cross-checked against scikit-learn, the Trainer hook, the evaluate module and input errors."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation import SCALAR_METRICS, SER_METRIC_PATH, compute_ser_metrics, make_compute_metrics

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust"]


def _random_case(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Random labels where class 3 is never predicted, class 4 never a reference, class 5 in neither."""
    rng = np.random.default_rng(seed)
    refs = rng.choice([0, 1, 2, 3], size=n)
    preds = np.where(rng.random(n) < 0.5, refs, rng.choice([0, 1, 2, 4], size=n))
    preds[preds == 3] = 0
    return refs, preds


def _none_to_nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scalars_match_sklearn(seed: int) -> None:
    refs, preds = _random_case(seed)
    scores = compute_ser_metrics(refs, preds, label_names=LABELS)
    all_ids = list(range(len(LABELS)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the classes we left out on purpose
        expected_ua = balanced_accuracy_score(refs, preds)
    assert scores["unweighted_accuracy"] == pytest.approx(expected_ua)
    assert scores["weighted_accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert scores["macro_f1"] == pytest.approx(
        f1_score(refs, preds, labels=all_ids, average="macro", zero_division=np.nan)
    )
    assert scores["weighted_f1"] == pytest.approx(
        f1_score(refs, preds, labels=all_ids, average="weighted", zero_division=np.nan)
    )
    assert scores["confusion_matrix"] == confusion_matrix(refs, preds, labels=all_ids).tolist()


@pytest.mark.parametrize("seed", [0, 3])
def test_per_class_matches_sklearn(seed: int) -> None:
    refs, preds = _random_case(seed)
    scores = compute_ser_metrics(refs, preds, label_names=LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(
        refs, preds, labels=list(range(len(LABELS))), zero_division=np.nan
    )
    per_class = [scores["per_class"][name] for name in LABELS]
    np.testing.assert_allclose(_none_to_nan([c["precision"] for c in per_class]), precision)
    np.testing.assert_allclose(_none_to_nan([c["recall"] for c in per_class]), recall)
    np.testing.assert_allclose(_none_to_nan([c["f1"] for c in per_class]), f1)
    assert [c["support"] for c in per_class] == support.tolist()


def test_absent_classes_are_explicit() -> None:
    # Class 2 ("sad") has no references but is predicted once; class 3 ("angry") appears nowhere.
    scores = compute_ser_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 2], label_names=LABELS[:4])
    sad, angry = scores["per_class"]["sad"], scores["per_class"]["angry"]
    assert sad == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert angry == {"precision": None, "recall": None, "f1": None, "support": 0}
    # UA = mean recall of neutral (1/2) and happy (2/3); sad and angry are left out, not counted as 0.
    assert scores["unweighted_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # Macro-F1 keeps sad (its false positive is an error) and drops angry: (2/3 + 2/3 + 0) / 3.
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert scores["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert scores["labels"] == LABELS[:4] and scores["num_samples"] == 5


def test_without_label_names() -> None:
    scores = compute_ser_metrics(np.array([0, 1, 2]), [0, 1, 1])
    assert scores["labels"] == ["0", "1", "2"]
    assert len(compute_ser_metrics([0, 1], [0, 1], num_labels=5)["confusion_matrix"]) == 5
    assert compute_ser_metrics([0.0, 1.0], [True, False])["weighted_accuracy"] == 0.0


def test_make_compute_metrics_returns_scalars() -> None:
    refs, preds = _random_case(0, n=60)
    logits = np.random.default_rng(0).normal(size=(60, len(LABELS)))
    logits[np.arange(60), preds] += 10.0
    compute_metrics = make_compute_metrics(LABELS)
    metrics = compute_metrics(SimpleNamespace(predictions=logits, label_ids=refs))
    assert list(metrics) == list(SCALAR_METRICS)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics == compute_metrics((logits, refs)) == compute_metrics(((logits, np.zeros((60, 3, 2))), refs))
    assert metrics["unweighted_accuracy"] == pytest.approx(
        compute_ser_metrics(refs, preds, LABELS)["unweighted_accuracy"]
    )
    assert compute_metrics((preds, refs)) == metrics  # already-argmaxed predictions
    detailed = make_compute_metrics(LABELS, per_class=True)((logits, refs))
    assert {"recall_neutral", "f1_disgust"} <= set(detailed) and np.isnan(detailed["recall_disgust"])


def test_make_compute_metrics_rejects_wrong_number_of_logits() -> None:
    with pytest.raises(EvaluationError, match=r"logits for 3 classes but `label_names` has 6"):
        make_compute_metrics(LABELS)((np.zeros((4, 3)), np.zeros(4, dtype=int)))


@pytest.mark.parametrize(
    ("references", "predictions", "kwargs", "match"),
    [
        ([0, 1, 2], [0, 1], {}, r"`predictions` has 2 items but `references` has 3"),
        ([], [], {}, r"`references` is empty"),
        ([0, 1, 7], [0, 1, 1], {"label_names": LABELS[:4]}, r"`references` holds label id 7, outside the 4 classes"),
        ([0, 1], [0, -1], {"num_labels": 2}, r"`predictions` holds label id -1"),
        (["neutral", "sad"], [0, 1], {}, r"`references` must hold integer class ids.*label_names.index"),
        ([0.5, 1.0], [0, 1], {}, r"`references` must hold integer class ids"),
        ([[0, 1]], [[0, 1]], {}, r"1-D sequence of class ids, found shape \(1, 2\).*argmax"),
        ([0, 1], [0, 1], {"label_names": ["a", "a"]}, r"`label_names` must be unique"),
        ([0, 1], [0, 1], {"label_names": ["a", "b"], "num_labels": 3}, r"`num_labels` is 3 but `label_names` has 2"),
        ([0, 1], [0, 1], {"label_names": "ab"}, r"list of class names"),
    ],
)
def test_bad_input_raises(references, predictions, kwargs, match) -> None:
    with pytest.raises(EvaluationError, match=match) as info:
        compute_ser_metrics(references, predictions, **kwargs)
    assert isinstance(info.value, SERError) and isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------- evaluate module
# `import evaluate` pulls in transformers' pipelines and torch (~8 s on 2 cores), so these tests share
# one loaded module and are marked slow.


@pytest.fixture(scope="module")
def ser_metric():
    import evaluate

    from ser_hf.evaluation import load_ser_metric

    # evaluate reads HF_EVALUATE_OFFLINE once at import; force it so "loads offline" is really tested.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
        yield load_ser_metric()


@pytest.mark.slow
def test_metric_module_loads_by_path_offline(ser_metric) -> None:
    assert ser_metric.name == "ser_metrics"
    refs, preds = _random_case(5)
    result = ser_metric.compute(references=refs.tolist(), predictions=preds.tolist(), label_names=LABELS)
    assert result == compute_ser_metrics(refs, preds, label_names=LABELS)


@pytest.mark.slow
def test_metric_module_batches_and_combine(ser_metric) -> None:
    import evaluate

    refs, preds = _random_case(6)
    for start in range(0, refs.size, 50):
        ser_metric.add_batch(references=refs[start : start + 50], predictions=preds[start : start + 50])
    assert (
        ser_metric.compute(num_labels=len(LABELS))["confusion_matrix"]
        == confusion_matrix(refs, preds, labels=range(len(LABELS))).tolist()
    )
    combined = evaluate.combine([str(SER_METRIC_PATH)]).compute(references=refs, predictions=preds, label_names=LABELS)
    assert combined["unweighted_accuracy"] == pytest.approx(
        compute_ser_metrics(refs, preds, LABELS)["unweighted_accuracy"]
    )
    with pytest.raises(EvaluationError, match=r"outside the 2 classes"):
        ser_metric.compute(references=[0, 5], predictions=[0, 1], num_labels=2)


@pytest.mark.slow
def test_make_compute_metrics_with_eval_prediction(ser_metric) -> None:
    from transformers import EvalPrediction  # already imported by evaluate, so free here

    refs, preds = _random_case(7, n=30)
    logits = np.eye(len(LABELS))[preds]
    metrics = make_compute_metrics(LABELS)(EvalPrediction(predictions=logits, label_ids=refs))
    assert metrics["unweighted_accuracy"] == pytest.approx(
        compute_ser_metrics(refs, preds, LABELS)["unweighted_accuracy"]
    )
