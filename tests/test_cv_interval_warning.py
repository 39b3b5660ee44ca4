"""A cross-validation says once that its folds' intervals rest on few speakers (RAVDESS: 6 folds of 4 actors), not once
per fold, and names the speakers of the pooled intervals; a single evaluation still warns on its own."""

from __future__ import annotations

import logging

import numpy as np

from ser_hf.evaluation.bootstrap import few_speaker_folds_warning
from ser_hf.evaluation.folds import FoldResult, cross_validate_folds
from ser_hf.evaluation.report import EvaluationReport
from ser_hf.splits import Fold

LABELS = ["neutral", "happy"]
CLIPS_PER_SPEAKER = 8


def _corpus(num_speakers: int) -> tuple[np.ndarray, np.ndarray]:
    """References and speakers of ``num_speakers`` speakers with 8 clips each, alternating between the two classes."""
    references = np.tile([0, 1], num_speakers * CLIPS_PER_SPEAKER // 2)
    speakers = np.repeat([f"actor{i:02d}" for i in range(num_speakers)], CLIPS_PER_SPEAKER).astype(object)
    return references, speakers


def _cross_validate(speakers_per_fold: list[int]):
    """A CV whose fold i tests ``speakers_per_fold[i]`` speakers; every fold's "model" errs on each fourth clip."""
    references, speakers = _corpus(sum(speakers_per_fold))
    bounds = np.cumsum([0, *speakers_per_fold]) * CLIPS_PER_SPEAKER
    folds = [Fold(f"fold-{i}", np.setdiff1d(np.arange(references.size), np.arange(start, end)), np.arange(start, end))
             for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=1)]

    def fit_fold(fold: Fold) -> FoldResult:
        truth = references[fold.test]
        predictions = np.where(np.arange(truth.size) % 4 == 0, 1 - truth, truth)
        probabilities = np.eye(2)[predictions]
        report = EvaluationReport.from_predictions(truth, probabilities=probabilities, label_names=LABELS,
                                                   groups=speakers[fold.test].tolist(), split=fold.name,
                                                   n_resamples=100)
        return FoldResult(report, probabilities)

    return cross_validate_folds(folds, fit_fold, references=references, speakers=speakers, label_names=LABELS,
                                model="tiny", corpus="demo")


def _warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_a_cv_of_four_speaker_folds_warns_once_naming_the_pooled_speakers(caplog):
    with caplog.at_level(logging.WARNING):
        result = _cross_validate([4] * 6)
    (warning,) = _warnings(caplog)
    assert ("the per-fold 95% confidence intervals of 6 of 6 folds rest on only 4 speakers each, so they are coarse"
            in warning)
    assert "the pooled out-of-fold intervals rest on 24 speakers, the intervals to quote" in warning
    # each fold's report still says it in full, where its reader sees it
    for report in result.reports:
        (fold_warning,) = report.metadata["warnings"]
        assert "rest on only 4 speakers" in fold_warning
    assert "warnings" not in result.pooled.metadata


def test_a_cv_names_only_its_few_speaker_folds_and_a_one_speaker_fold_as_missing(caplog):
    with caplog.at_level(logging.WARNING):
        _cross_validate([1, 3, 6])
    (warning,) = _warnings(caplog)
    assert "intervals of 2 of 3 folds rest on only 1-3 speakers each, so they are coarse or missing (n/a)" in warning
    assert "rest on 10 speakers" in warning


def test_a_cv_whose_folds_have_enough_speakers_says_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        _cross_validate([5, 5])
    assert _warnings(caplog) == []


def test_a_single_evaluation_still_warns_on_its_own(caplog):
    references, speakers = _corpus(4)
    with caplog.at_level(logging.WARNING):
        EvaluationReport.from_predictions(references, references, label_names=LABELS, groups=speakers.tolist(),
                                          n_resamples=100)
    (warning,) = _warnings(caplog)
    assert "the 95% confidence intervals rest on only 4 speakers" in warning


def test_the_line_advises_fewer_folds_only_where_there_can_be_fewer():
    assert "fewer, larger folds" in few_speaker_folds_warning([4, 4, 4], 3, 12)
    assert "fewer, larger folds" not in few_speaker_folds_warning([3, 3], 2, 6)  # 2 folds are the fewest a CV has
