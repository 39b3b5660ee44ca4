"""Evaluation on degenerate inputs: intervals over too few speakers, perturbation values that differ only in their
seventh digit, and clips that cannot be degraded (empty, NaN, multichannel)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.bootstrap import FEW_INTERVAL_UNITS, bootstrap_confidence_intervals
from ser_hf.evaluation.folds import corpus_rows_markdown
from ser_hf.evaluation.perturbations import KINDS, check_distinct, parse_perturbations
from ser_hf.evaluation.report import EvaluationReport
from ser_hf.evaluation.robustness import (
    PerturbationSettings,
    robustness_lines,
    robustness_markdown,
    robustness_rows,
    score_under_perturbations,
)
from ser_hf.inference.predict import load_classifier
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.models import tiny_backbone

RATE = 16000
LABELS = ["neutral", "happy"]


def scored(num_speakers: int, clips_per_speaker: int = 8, n_resamples: int = 200, **kwargs) -> EvaluationReport:
    """A two-class report over ``num_speakers`` speakers, a quarter of each speaker's clips wrong."""
    refs = np.tile([0, 1], num_speakers * clips_per_speaker // 2)
    preds = np.where(np.arange(refs.size) % 4 == 0, 1 - refs, refs)
    speakers = np.repeat([f"s{i}" for i in range(num_speakers)], clips_per_speaker)
    return EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=list(speakers),
                                             n_resamples=n_resamples, **kwargs)


# ----------------------------------------------------------------------------- finding 1: intervals, few speakers


def test_one_speaker_or_one_clip_gives_no_interval_rather_than_a_zero_width_one():
    refs, preds = [0, 1, 1, 0] * 5, [0, 1, 0, 0] * 5
    assert bootstrap_confidence_intervals(refs, preds, 2, groups=["s1"] * 20) == {
        "unweighted_accuracy": None, "weighted_accuracy": None, "macro_f1": None}
    assert bootstrap_confidence_intervals([1], [1], 2) == dict.fromkeys(["unweighted_accuracy", "weighted_accuracy",
                                                                       "macro_f1"])
    low, high = bootstrap_confidence_intervals(refs, preds, 2, groups=["s1"] * 10 + ["s2"] * 10)["macro_f1"]
    assert low <= high


def test_a_one_speaker_report_shows_na_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="ser_hf.evaluation.report"):
        report = scored(1, metadata={"warnings": ["an earlier warning"]})
    assert report.confidence_intervals == dict.fromkeys(["unweighted_accuracy", "weighted_accuracy", "macro_f1"])
    assert report.interval_text("unweighted_accuracy") == "n/a" and report.interval_text("weighted_f1") == ""
    earlier, warning = report.metadata["warnings"]
    assert earlier == "an earlier warning"
    assert "no 95% confidence intervals (shown as n/a): the scored clips come from 1 speaker" in warning
    assert f"at least {FEW_INTERVAL_UNITS} speakers" in warning and warning in caplog.text
    assert "1 speaker" in report.bootstrap["note"]
    markdown = report.to_markdown()
    assert "| UA (unweighted accuracy) | 75.0 | [n/a] |" in markdown
    assert "No 95% CIs: the scored clips come from 1 speaker, so every resample is the same clips." in markdown
    assert "UA 75.0 [n/a]" in report.format_table()
    assert "| one | 75.0 | n/a |" in corpus_rows_markdown({"one": report}, "## Per corpus", "")


@pytest.mark.parametrize("num_speakers", [2, 3, 4])
def test_two_to_four_speakers_give_an_interval_flagged_as_coarse(num_speakers):
    report = scored(num_speakers)
    low, high = report.confidence_intervals["unweighted_accuracy"]
    assert low <= report.unweighted_accuracy <= high
    (warning,) = report.metadata["warnings"]
    assert f"rest on only {num_speakers} speakers" in warning and "coarse" in warning
    assert report.bootstrap["note"] == f"only {num_speakers} speakers, so the intervals are coarse"
    assert f"Note: only {num_speakers} speakers" in report.to_markdown()
    assert report.interval_text("unweighted_accuracy")[0].isdigit()


def test_five_speakers_or_no_bootstrap_give_no_warning():
    for report in (scored(FEW_INTERVAL_UNITS), scored(1, n_resamples=0)):
        assert "warnings" not in report.metadata and "note" not in report.bootstrap
    assert scored(1, n_resamples=0).interval_text("unweighted_accuracy") == ""
    ungrouped = EvaluationReport.from_predictions([0, 1] * 20, [0, 1] * 20, label_names=LABELS, n_resamples=50)
    assert "warnings" not in ungrouped.metadata  # 40 clips resampled one by one


def test_missing_intervals_survive_a_json_round_trip(tmp_path):
    report = scored(1)
    report.to_json(tmp_path / "report.json")
    again = EvaluationReport.from_json(tmp_path / "report.json")
    assert again.confidence_intervals == report.confidence_intervals
    assert again.metadata["warnings"] == report.metadata["warnings"] and again.bootstrap == report.bootstrap
    assert again.to_markdown() == report.to_markdown() and again.format_table() == report.format_table()


def test_robustness_rows_of_one_speaker_have_no_intervals_and_say_why():
    refs = np.tile([0, 1], 10)
    worse = np.where(np.arange(20) % 4 == 0, 1 - refs, refs)
    rows = robustness_rows(refs, {"clean": refs, "noise:snr=0": worse}, LABELS, groups=["s1"] * 20, n_resamples=100)
    assert [(row["confidence_interval"], row["ua_change_interval"]) for row in rows] == [(None, None)] * 2
    note = "the scored clips come from 1 speaker, so every resample is the same clips"
    section = {"seed": 0, "conditions": rows, "bootstrap": {"n_resamples": 100, "unit": "group", "note": note}}
    markdown = robustness_markdown(section)
    assert f"No intervals: {note}." in markdown
    assert "| `noise:snr=0` |  | 75.0 | n/a |" in markdown and "| -25.0 [n/a] |" in markdown
    assert any("75.0 [n/a]" in line and "-25.0 [n/a]" in line for line in robustness_lines(section))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("degenerate")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), LABELS)
    return load_classifier(save_checkpoint(model, extractor, tmp / "model"))


def clips(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(RATE // 10)).astype(np.float32) for _ in range(count)]


def test_a_one_speaker_robustness_section_has_no_intervals(tiny_classifier, tmp_path, single_torch_thread):
    model, extractor = tiny_classifier
    settings = PerturbationSettings.from_spec("gain:db=-20", cache_dir=tmp_path)
    _, section = score_under_perturbations(model, clips(6), np.tile([0, 1], 3), settings, feature_extractor=extractor,
                                           groups=["s1"] * 6, n_resamples=50, progress=False)
    assert [row["confidence_interval"] for row in section["conditions"]] == [None, None]
    assert "1 speaker" in section["bootstrap"]["note"]
    assert "No intervals: the scored clips come from 1 speaker" in robustness_markdown(section)
    _, three = score_under_perturbations(model, clips(6), np.tile([0, 1], 3), settings, feature_extractor=extractor,
                                         groups=["a", "a", "b", "b", "c", "c"], n_resamples=50, progress=False)
    assert three["conditions"][0]["confidence_interval"] is not None
    assert "Note: only 3 speakers, so the intervals are coarse." in robustness_markdown(three)


# ----------------------------------------------------------------------------- finding 2: near-equal values


def test_values_that_differ_below_six_digits_are_distinct_conditions():
    first, second = parse_perturbations("noise:snr=10,noise:snr=10.0000001")
    assert (first.name, second.name) == ("noise:snr=10", "noise:snr=10.0000001")
    assert first.key != second.key and first.description() != second.description()
    assert second.description() == "white noise, SNR 10.0000001 dB"
    rows = robustness_rows([0, 1], {"clean": [0, 1], first.name: [0, 1], second.name: [1, 1]}, LABELS, n_resamples=0)
    assert len(rows) == 3


def test_usual_values_keep_their_names_and_keys():
    conditions = parse_perturbations("gain:db=-0,reverb:rt60=0.6:drr=-3,resample:rate=8000,babble:snr=5:talkers=6.0")
    assert [c.name for c in conditions] == ["gain:db=0", "reverb:rt60=0.6:drr=-3", "resample:rate=8000",
                                            "babble:snr=5"]
    assert conditions[0].key == "v1:gain:db=0" and conditions[0].description() == "gain +0 dB (no clipping)"
    assert conditions[3].description() == "babble-like noise (6 talkers), SNR 5 dB"


def test_the_same_condition_twice_is_refused():
    with pytest.raises(EvaluationError, match=r"--perturb: 'gain:db=0' is listed twice in .* \(as 'gain:db=-0' and "
                                              r"'gain:db=0', the same values\); keep one"):
        parse_perturbations("gain:db=-0,gain:db=0")
    twice = parse_perturbations("noise:snr=10") * 2
    with pytest.raises(EvaluationError, match=r"settings.conditions: 'noise:snr=10' is listed twice .* Keep one"):
        score_under_perturbations(None, [], [], PerturbationSettings(twice), feature_extractor=None)
    check_distinct(parse_perturbations("noise:snr=10,noise:snr=10.0000001"))


# ----------------------------------------------------------------------------- finding 3: clips that cannot be degraded


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("wave", "message"), [
    (np.zeros(0, np.float32), r"it holds no samples\. Drop the empty clip"),
    (np.array([0.1, np.nan, 0.2], np.float32), r"it holds 1 of 3 samples that are NaN, infinite"),
    (np.array([0.1, np.inf], np.float64), r"it holds 1 of 2 samples that are NaN, infinite"),
    (np.zeros((2, 800), np.float32), r"it has shape \(2, 800\), not one channel of samples\. Pass a 1-D array"),
    (np.array(["0.1", "0.2"]), r"it holds <U3 values, not audio samples"),
], ids=["empty", "nan", "inf", "stereo", "strings"])
def test_a_clip_that_cannot_be_degraded_is_refused_in_words(kind, wave, message):
    condition = parse_perturbations(KINDS[kind].example)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        with pytest.raises(EvaluationError, match=rf"^'{condition.name}' cannot degrade clip 'abc': {message}"):
            condition.apply(wave, RATE, clip_key="abc")


# The clean pass scores the loud clip first: the model's feature extractor overflows normalising it (not ours).
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_an_overflowing_clip_is_refused_naming_where_it_came_from(tiny_classifier, tmp_path, single_torch_thread):
    (gain,) = parse_perturbations("gain:db=40")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EvaluationError, match=r"gives non-finite samples \(peak input 1e\+37\)\. Scale the clip"):
            gain.apply(np.full(100, 1e37, np.float32), RATE)
    model, extractor = tiny_classifier
    loud = [*clips(2), np.full(RATE // 10, 1e37, np.float32)]
    with pytest.raises(EvaluationError, match=r"^audio\[2\]: 'gain:db=40' cannot degrade clip '[0-9a-f]+'"):
        score_under_perturbations(model, loud, [0, 1, 0], PerturbationSettings([gain], cache_dir=tmp_path),
                                  feature_extractor=extractor, n_resamples=0, progress=False)
