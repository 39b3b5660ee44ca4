"""EvaluationReport, bootstrap intervals, calibration, written files and cross-validation aggregation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import balanced_accuracy_score

from ser_hf.errors import EvaluationError
from ser_hf.evaluation import (
    EvaluationReport,
    aggregate_folds,
    bootstrap_confidence_intervals,
    compute_ser_metrics,
    expected_calibration_error,
    folds_to_markdown,
    paired_bootstrap_scores,
    reliability_bins,
)
from ser_hf.evaluation.bootstrap import bootstrap_confusions

LABELS = ["neutral", "happy", "sad", "angry"]


def _predictions(n: int, seed: int = 0, accuracy: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """References, predictions right with probability `accuracy`, and softmax probabilities."""
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, len(LABELS), n)
    preds = np.where(rng.random(n) < accuracy, refs, rng.integers(0, len(LABELS), n))
    logits = rng.normal(size=(n, len(LABELS)))
    logits[np.arange(n), preds] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return refs, preds, probs


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    refs, preds, probs = _predictions(300)
    return EvaluationReport.from_predictions(
        refs, preds, label_names=LABELS, probabilities=probs, model="tiny-wav2vec2", corpus="demo", split="test"
    )


def test_report_scores_match_metrics(report: EvaluationReport) -> None:
    refs, preds, _ = _predictions(300)
    scores = compute_ser_metrics(refs, preds, LABELS)
    for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix"):
        assert getattr(report, key) == scores[key]
    assert report.labels == LABELS and report.num_samples == 300
    assert report.expected_calibration_error == pytest.approx(expected_calibration_error(_predictions(300)[2], refs))


# ----------------------------------------------------------------------------- bootstrap


def test_ci_contains_point_estimate(report: EvaluationReport) -> None:
    assert set(report.confidence_intervals) == {"unweighted_accuracy", "weighted_accuracy", "macro_f1"}
    for name, (low, high) in report.confidence_intervals.items():
        assert 0.0 <= low < getattr(report, name) < high <= 1.0
    assert report.bootstrap == {
        "method": "percentile",
        "n_resamples": 1000,
        "confidence_level": 0.95,
        "seed": 0,
        "unit": "sample",
    }


def test_ci_shrinks_with_more_data() -> None:
    widths = []
    for n in (100, 2500):
        refs, preds, _ = _predictions(n, seed=1)
        low, high = bootstrap_confidence_intervals(refs, preds, len(LABELS))["unweighted_accuracy"]
        widths.append(high - low)
    # Width scales like 1/sqrt(N): 25x the data gives ~1/5 the width.
    assert widths[1] < widths[0] / 3


def test_ci_is_seeded_and_level_matters() -> None:
    refs, preds, _ = _predictions(200)
    first = bootstrap_confidence_intervals(refs, preds, 4, seed=7)
    assert first == bootstrap_confidence_intervals(refs, preds, 4, seed=7)
    assert first != bootstrap_confidence_intervals(refs, preds, 4, seed=8)
    low80, high80 = bootstrap_confidence_intervals(refs, preds, 4, seed=7, confidence_level=0.8)["macro_f1"]
    low95, high95 = first["macro_f1"]
    assert low95 < low80 < high80 < high95


def test_vectorised_bootstrap_matches_naive_resampling() -> None:
    refs, preds, _ = _predictions(50)
    matrices = bootstrap_confusions(refs, preds, 4, 20, np.random.default_rng(3))
    draws = np.random.default_rng(3).integers(0, 50, size=(20, 50))  # the same draws, one chunk
    # One group per example is the plain bootstrap; ten speakers of five examples still total 50.
    singletons = bootstrap_confusions(refs, preds, 4, 20, np.random.default_rng(3), groups=np.arange(50))
    assert np.array_equal(singletons, matrices)
    by_speaker = bootstrap_confusions(refs, preds, 4, 20, np.random.default_rng(3), groups=np.arange(50) // 5)
    assert np.all(by_speaker.sum(axis=(1, 2)) == 50)
    assert not np.array_equal(by_speaker, matrices)
    for matrix, idx in zip(matrices, draws, strict=True):
        assert matrix.sum() == 50
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score(refs[idx], preds[idx])
        assert compute_ser_metrics(refs[idx], preds[idx], LABELS)["confusion_matrix"] == matrix.astype(int).tolist()
        recall = np.diag(matrix) / matrix.sum(axis=1)
        assert np.nanmean(recall) == pytest.approx(expected)


def test_group_bootstrap_is_wider_for_correlated_speakers() -> None:
    # Ten speakers, each entirely right or entirely wrong: utterances are not independent.
    refs = np.tile(np.arange(4), 100)
    speakers = np.repeat(np.arange(10), 40)
    preds = np.where(speakers % 2 == 0, refs, (refs + 1) % 4)
    by_sample = bootstrap_confidence_intervals(refs, preds, 4)["weighted_accuracy"]
    by_speaker = bootstrap_confidence_intervals(refs, preds, 4, groups=speakers)["weighted_accuracy"]
    assert by_speaker[1] - by_speaker[0] > 2 * (by_sample[1] - by_sample[0])
    report = EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=speakers)
    assert report.bootstrap["unit"] == "group" and "speakers/groups" in report.to_markdown()


def test_paired_bootstrap_draws_the_same_speakers_for_every_system() -> None:
    # Speakers of very different difficulty: each system's own interval is wide, their difference is not.
    rng = np.random.default_rng(0)
    refs = np.tile(np.arange(4), 100)
    speakers = np.repeat(np.arange(10), 40)
    hard = speakers < 5
    first = np.where(hard & (rng.random(400) < 0.7), (refs + 1) % 4, refs)
    second = np.where(rng.random(400) < 0.1, (first + 2) % 4, first)  # the first, plus a few more errors
    samples = paired_bootstrap_scores(refs, {"first": first, "second": second}, 4, groups=speakers, seed=3)
    alone = bootstrap_confidence_intervals(refs, first, 4, groups=speakers, seed=3)["unweighted_accuracy"]
    # One system's samples are exactly the ones its own interval comes from (same seed, same draws).
    assert np.percentile(samples["first"], [2.5, 97.5]).tolist() == pytest.approx(list(alone))
    change = samples["second"] - samples["first"]
    assert np.all(change <= 0)  # the second only adds errors, so it never wins a paired resample
    low, high = np.percentile(change, [2.5, 97.5])
    assert high - low < 0.5 * (alone[1] - alone[0])
    same = paired_bootstrap_scores(refs, {"a": first, "b": first.copy()}, 4, groups=speakers)
    assert np.array_equal(same["a"], same["b"])
    with pytest.raises(EvaluationError, match="metric"):
        paired_bootstrap_scores(refs, {"a": first}, 4, metric="accuracy")
    with pytest.raises(EvaluationError, match="n_resamples"):
        paired_bootstrap_scores(refs, {"a": first}, 4, n_resamples=0)
    with pytest.raises(EvaluationError, match=r"predictions\['short'\]: `predictions` has 399 items but `references` "
                                              r"has 400"):
        paired_bootstrap_scores(refs, {"a": first, "short": first[:-1]}, 4)


# ----------------------------------------------------------------------------- calibration


def test_ece_is_zero_when_calibrated() -> None:
    assert expected_calibration_error(np.eye(4)[[0, 1, 2, 3]], [0, 1, 2, 3]) == 0.0
    # Confidence 0.75 everywhere and 3 of 4 right: calibrated although not perfect.
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, [0, 0, 0, 1], n_bins=10) == pytest.approx(0.0)


def test_ece_hand_example() -> None:
    probs = [[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7]]
    refs = [0, 0, 0, 0]
    # 4 bins: (0.5, 0.75] holds 0.6 and 0.7, both wrong -> gap 0.65; (0.75, 1] holds 0.9 and 0.8,
    # both right -> gap 0.15. ECE = 2/4 * 0.65 + 2/4 * 0.15 = 0.4, MCE = 0.65.
    bins = reliability_bins(probs, refs, n_bins=4)
    assert bins["expected_calibration_error"] == pytest.approx(0.4)
    assert bins["maximum_calibration_error"] == pytest.approx(0.65)
    assert bins["bin_count"] == [0, 0, 2, 2]
    assert bins["bin_accuracy"] == [None, None, 0.0, 1.0]
    assert bins["bin_confidence"][2:] == pytest.approx([0.65, 0.85])


def test_predictions_default_to_argmax_of_probabilities() -> None:
    refs, _, probs = _predictions(40)
    report = EvaluationReport.from_predictions(refs, label_names=LABELS, probabilities=probs, n_resamples=0)
    assert report.weighted_accuracy == pytest.approx(np.mean(probs.argmax(axis=1) == refs))
    assert report.confidence_intervals == {} and report.bootstrap == {}


# ----------------------------------------------------------------------------- outputs


def test_write_creates_valid_files(report: EvaluationReport, tmp_path) -> None:
    paths = report.write(tmp_path / "eval", dpi=40)
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.md",
        "confusion_matrix.png",
        "per_class.png",
        "reliability.png",
    }
    for key in ("confusion_matrix", "per_class", "reliability"):
        with Image.open(paths[key]) as image:
            assert image.format == "PNG" and image.size[0] > 100
            image.verify()
    data = json.loads(paths["json"].read_text())
    required = {"unweighted_accuracy", "weighted_accuracy", "macro_f1", "weighted_f1", "per_class"}
    required |= {"confusion_matrix", "labels", "num_samples", "model", "corpus", "confidence_intervals"}
    assert required <= set(data) and data["expected_calibration_error"] is not None
    assert EvaluationReport.from_json(paths["json"]) == report
    assert "UA (unweighted accuracy)" in paths["markdown"].read_text()


def test_write_without_probabilities_skips_reliability(tmp_path) -> None:
    refs, preds, _ = _predictions(30)
    paths = EvaluationReport.from_predictions(refs, preds, label_names=LABELS, n_resamples=50).write(tmp_path, dpi=40)
    assert "reliability" not in paths and not (tmp_path / "reliability.png").exists()


def test_markdown_and_table(report: EvaluationReport) -> None:
    markdown = report.to_markdown()
    low, high = report.confidence_intervals["unweighted_accuracy"]
    ua_row = (
        f"| UA (unweighted accuracy) | {100 * report.unweighted_accuracy:.1f} | [{100 * low:.1f}, {100 * high:.1f}] |"
    )
    assert markdown.startswith("## Evaluation: tiny-wav2vec2 on demo (test)")
    assert ua_row in markdown
    assert "| reference \\ predicted | neutral | happy | sad | angry |" in markdown
    assert "ECE (15 bins)" in markdown
    table = report.format_table()
    assert table.splitlines()[1].startswith(f"UA {100 * report.unweighted_accuracy:.1f} [")
    assert len(table.splitlines()) == 3 + len(LABELS)


def test_json_is_strict_when_classes_are_undefined() -> None:
    report = EvaluationReport.from_predictions([0, 0, 1], [0, 1, 1], label_names=LABELS, n_resamples=20)
    data = json.loads(report.to_json())  # NaN would make this invalid JSON
    assert data["per_class"]["angry"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert "n/a" in report.to_markdown() and "n/a" in report.format_table()


# ----------------------------------------------------------------------------- folds


def _folds() -> list[EvaluationReport]:
    return [
        EvaluationReport.from_predictions(
            *_predictions(80 + 20 * k, seed=k)[:2], label_names=LABELS, split=f"fold-{k}", model="m", n_resamples=50
        )
        for k in range(3)
    ]


def test_aggregate_folds_mean_std_and_pooled() -> None:
    folds = _folds()
    summary = aggregate_folds(folds)
    values = [f.unweighted_accuracy for f in folds]
    ua = summary["metrics"]["unweighted_accuracy"]
    assert ua["mean"] == pytest.approx(np.mean(values)) and ua["std"] == pytest.approx(np.std(values, ddof=1))
    assert ua["values"] == values
    assert set(summary["metrics"]) == {"unweighted_accuracy", "weighted_accuracy", "macro_f1", "weighted_f1"}
    assert summary["confusion_matrix"] == np.sum([f.confusion_matrix for f in folds], axis=0).tolist()
    refs = np.concatenate([_predictions(80 + 20 * k, seed=k)[0] for k in range(3)])
    preds = np.concatenate([_predictions(80 + 20 * k, seed=k)[1] for k in range(3)])
    assert summary["pooled"]["unweighted_accuracy"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert summary["num_samples"] == 300 and summary["folds"] == ["fold-0", "fold-1", "fold-2"]
    assert summary["model"] == "m" and summary["corpus"] is None
    f1s = [f.per_class["sad"]["f1"] for f in folds]
    assert summary["per_class"]["sad"]["f1"]["mean"] == pytest.approx(np.mean(f1s))
    markdown = folds_to_markdown(summary)
    assert markdown.startswith("## Cross-validation: m (3 folds)")
    assert f"| UA (unweighted accuracy) | {100 * ua['mean']:.1f} ± {100 * ua['std']:.1f} |" in markdown
    json.dumps(summary, allow_nan=False)


def test_aggregate_single_fold_has_no_std() -> None:
    summary = aggregate_folds(_folds()[:1])
    ua = summary["metrics"]["unweighted_accuracy"]
    assert ua["std"] is None
    assert f"| UA (unweighted accuracy) | {100 * ua['mean']:.1f} | " in folds_to_markdown(summary)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probabilities": np.full((5, 4), 0.25)}, r"`probabilities` must have shape \(6, 4\).*found \(5, 4\)"),
        ({"probabilities": np.full((6, 3), 1 / 3)}, r"must have shape \(6, 4\)"),
        ({"probabilities": np.ones((6, 4))}, r"rows must sum to 1, row 0 sums to 4.0000.*softmax"),
        ({"probabilities": np.full((6, 4), np.nan)}, r"finite and non-negative"),
        ({"predictions": [0, 1]}, r"`predictions` has 2 items but `references` has 6"),
        ({"predictions": [0, 1, 2, 3, 4, 0]}, r"`predictions` holds label id 4, outside the 4 classes"),
        ({"predictions": None}, r"Pass `predictions` \(class ids\) or `probabilities`"),
        ({"n_resamples": -1}, r"`n_resamples` must be a positive integer"),
        ({"confidence_level": 95}, r"`confidence_level` must be in \(0, 1\)"),
        ({"groups": [1, 2]}, r"`groups` has 2 items but `references` has 6"),
        ({"probabilities": np.full((6, 4), 0.25), "n_bins": 0}, r"`n_bins` must be a positive integer"),
        ({"label_names": None}, r"`label_names` is required"),
    ],
)
def test_bad_report_input_raises(kwargs, match) -> None:
    arguments = {"predictions": [0, 1, 2, 3, 0, 1], "label_names": LABELS, **kwargs}
    with pytest.raises(EvaluationError, match=match):
        EvaluationReport.from_predictions([0, 1, 2, 3, 0, 1], **arguments)


def test_empty_input_raises() -> None:
    with pytest.raises(EvaluationError, match=r"`references` is empty"):
        EvaluationReport.from_predictions([], [], label_names=LABELS)


def test_bad_folds_and_dicts_raise(report: EvaluationReport) -> None:
    with pytest.raises(EvaluationError, match=r"`reports` is empty"):
        aggregate_folds([])
    other = EvaluationReport.from_predictions([0, 1], [0, 1], label_names=["a", "b"], n_resamples=0)
    with pytest.raises(EvaluationError, match=r"Fold 1 has labels \['a', 'b'\] but fold 0 has"):
        aggregate_folds([report, other])
    with pytest.raises(EvaluationError, match=r"missing keys \['weighted_f1'.*unknown keys \['accuracy'\]"):
        EvaluationReport.from_dict({**{k: v for k, v in report.to_dict().items() if k != "weighted_f1"}, "accuracy": 1})


def test_bootstrap_rejects_unknown_metric() -> None:
    with pytest.raises(EvaluationError, match=r"`metrics` holds unknown names \['accuracy'\]"):
        bootstrap_confidence_intervals([0, 1], [0, 1], 2, metrics=["accuracy"])


def test_markdown_cells_never_end_a_cell_or_a_row():
    """A speaker id or class name holding '|' or a line break stays in its cell (ids come from file names)."""
    from ser_hf.evaluation.tables import markdown_table

    table = markdown_table(["speaker", "UA"], [["a|b", 1], ["line\nbreak", 2]])
    assert table.splitlines()[2:] == ["| a\\|b | 1 |", "| line\\nbreak | 2 |"]
