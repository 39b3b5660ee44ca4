"""Evaluation on degenerate inputs: intervals over too few speakers, perturbation values that differ only in their
seventh digit, clips that cannot be degraded (empty, NaN, multichannel), bootstrap settings out of range, conditions
built directly, and speaker ids with gaps."""

from __future__ import annotations

import argparse
import logging
import math
import warnings

import numpy as np
import pytest

from ser_hf.cli import evaluate as evaluate_cli
from ser_hf.errors import EvaluationError
from ser_hf.evaluation.bootstrap import FEW_INTERVAL_UNITS, bootstrap_confidence_intervals, paired_bootstrap_scores
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint, evaluate_model
from ser_hf.evaluation.folds import corpus_rows_markdown
from ser_hf.evaluation.perturbations import KINDS, Perturbation, check_distinct, parse_perturbations
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
from ser_hf.training.cv_outputs import write_speaker_adaptive
from ser_hf.training.speaker_adaptation import summarise_enrollment

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


# ----------------------------------------------------------------------------- re-audit 31, E3: enrollment rows


def enrollment_rows(speakers: list[str]) -> list[dict]:
    """summarise_enrollment over one setting whose adaptive head gets a quarter of the clips wrong, the global half."""
    refs = np.tile([0, 1, 2, 3], 10)
    adaptive, global_ = refs.copy(), refs.copy()
    adaptive[:10], global_[:20] = (refs[:10] + 1) % 4, (refs[:20] + 1) % 4
    collected = {"all": {"references": [refs], "adaptive": [adaptive], "global": [global_],
                         "speakers": [np.array(speakers, dtype=object)], "fallback_speakers": 0,
                         "test_speakers": len(set(speakers)), "estimators": ["x"], "shrinks": [0], "draws": 1}}
    return summarise_enrollment(collected, ["neutral", "happy", "sad", "angry"], model="m", corpus="c")


def test_one_speaker_enrollment_rows_have_no_intervals_and_say_why(tmp_path):
    (row,) = enrollment_rows(["s1"] * 40)
    assert row["confidence_interval"] is None and row["gain_interval"] is None  # was [0.25, 0.25]: zero width
    assert row["gain"] == pytest.approx(0.25)
    assert row["interval_note"] == "the scored clips come from 1 speaker, so every resample is the same clips"
    write_speaker_adaptive(tmp_path, [row])
    markdown = (tmp_path / "speaker_adaptive.md").read_text()
    assert "| all | 75.0 [n/a] | 50.0 | +25.0 [n/a] | 40 | 0 of 1 |" in markdown and "nan" not in markdown
    assert "Note (all): the scored clips come from 1 speaker, so every resample is the same clips." in markdown


def test_few_speaker_enrollment_rows_are_flagged_as_coarse(tmp_path):
    (two,) = enrollment_rows(["s1"] * 20 + ["s2"] * 20)
    low, high = two["gain_interval"]
    assert low <= two["gain"] <= high and two["interval_note"] == "only 2 speakers, so the intervals are coarse"
    (many,) = enrollment_rows([f"s{i % FEW_INTERVAL_UNITS}" for i in range(40)])
    assert many["interval_note"] is None
    write_speaker_adaptive(tmp_path, [two], with_copies=[many])
    markdown = (tmp_path / "speaker_adaptive.md").read_text()
    assert markdown.count("Note (all):") == 1
    assert "Note (all): only 2 speakers, so the intervals are coarse." in markdown


# ----------------------------------------------------------------------------- re-audit 31, E4: n_resamples


BAD_RESAMPLES = [1, -5, 9, 1.9, 1000.0, math.nan, True, "1000", 10**5 + 1, 10**9, 10**12]


@pytest.mark.parametrize("n_resamples", BAD_RESAMPLES, ids=repr)
def test_a_resample_count_out_of_range_or_not_an_integer_is_refused(n_resamples):
    refs, preds = [0, 1, 1, 0] * 5, [0, 1, 0, 0] * 5
    expected = r"^`n_resamples` must be a positive integer from 10 to 100000, found "
    with pytest.raises(EvaluationError, match=expected):
        bootstrap_confidence_intervals(refs, preds, 2, n_resamples=n_resamples)
    with pytest.raises(EvaluationError, match=expected):
        paired_bootstrap_scores(refs, {"a": preds}, 2, n_resamples=n_resamples)
    # robustness rows check it even when one speaker leaves nothing to resample
    with pytest.raises(EvaluationError, match=r"^`n_resamples` must be 0 \(no intervals\) or a positive integer"):
        robustness_rows(refs, {"clean": preds}, LABELS, groups=["s1"] * 20, n_resamples=n_resamples)


def test_the_resample_bounds_and_zero_are_accepted():
    refs, preds, speakers = [0, 1, 1, 0] * 5, [0, 1, 0, 0] * 5, ["a", "b"] * 10
    for n_resamples in (10, np.int64(50), 100_000):
        assert bootstrap_confidence_intervals(refs, preds, 2, groups=speakers, n_resamples=n_resamples)["macro_f1"]
    assert robustness_rows(refs, {"clean": preds}, LABELS, n_resamples=0)[0]["confidence_interval"] is None


@pytest.mark.parametrize("n_resamples", [1, -5, 1.9, math.nan, 10**9], ids=repr)
def test_evaluation_refuses_a_bad_resample_count_before_loading_or_scoring(n_resamples, tmp_path):
    message = r"^n_resamples \(--n-resamples\) must be 0 \(no intervals\) or a positive integer from 10 to 100000"
    with pytest.raises(EvaluationError, match=message):  # nothing here could be loaded or scored
        evaluate_model(tmp_path / "no-model", None, n_resamples=n_resamples)
    with pytest.raises(EvaluationError, match=message):
        evaluate_checkpoint(tmp_path / "no-model", "urdu", tmp_path / "no-data", n_resamples=n_resamples)
    with pytest.raises(EvaluationError, match=r"^`n_resamples` must be 0 \(no intervals\)"):
        score_under_perturbations(None, [], [], PerturbationSettings(parse_perturbations("telephone")),
                                  feature_extractor=None, n_resamples=n_resamples)


@pytest.mark.parametrize("text", ["1", "-5", "1.9", "nan", "10**9", "1000000000"])
def test_the_n_resamples_flag_refuses_a_bad_count_as_it_is_parsed(text, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="ser-hf")
    evaluate_cli.register(parser.add_subparsers(required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--model", str(tmp_path / "no-model"), "--corpus", "urdu", "--out",
                           str(tmp_path / "out"), "--n-resamples", text])
    assert ("argument --n-resamples: the value must be 0 (no intervals) or a positive integer from 10 to 100000, "
            f"found {text if text.lstrip('-').isdigit() else repr(text)}") in capsys.readouterr().err
    args = parser.parse_args(["evaluate", "--model", "m", "--corpus", "urdu", "--out", "o", "--n-resamples", "0"])
    assert args.n_resamples == 0


# ----------------------------------------------------------------------------- re-audit 31, E8: built conditions


@pytest.mark.parametrize(("kind", "params", "message"), [
    ("noise", (("snr", math.nan),), r"snr must be between -20 and 60 dB, found nan\. 'noise' takes snr"),
    ("gain", (("db", 1e6),), r"db must be between -60 and 40 dB, found 1e\+06"),
    ("noise", (("snr", "10"),), r"snr='10' is not a number"),
    ("noise", (("snr", True),), r"snr=True is not a number"),
    ("babble", (("snr", 10.0), ("talkers", 0)), r"talkers must be between 1 and 32 voices, found 0"),
    ("resample", (("rate", 8000.7),), r"rate must be a whole number, found 8000\.7"),
    ("noise", (("snr", None),), r"'noise' needs snr"),
    ("babble", (("snr", 10.0),), r"params must give every parameter of 'babble', in this order: \['snr', 'talkers'\]"
                                 r".* Build it with parse_condition\('babble:snr=10'\)"),
    ("noise", "snr=10", r"params must give every parameter of 'noise'"),
    ("nois", (("snr", 10.0),), r"'nois' is not a kind of degradation; expected one of \['babble'"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_condition_built_directly_is_checked_as_a_parsed_one(kind, params, message):
    with pytest.raises(EvaluationError, match=rf"^Perturbation\({kind!r}, .*\): {message}"):
        Perturbation(kind, params)


def test_a_condition_built_directly_equals_the_parsed_one():
    (parsed,) = parse_perturbations("babble:snr=10")
    built = Perturbation("babble", (("snr", 10), ("talkers", np.int64(6))))
    assert built == parsed and built.key == parsed.key and hash(built) == hash(parsed)
    assert [type(value) for _, value in built.params] == [float, float]  # one type, whatever was given


def test_integer_pcm_is_degraded_at_its_decoded_level():
    pcm = (np.random.default_rng(0).uniform(-0.5, 0.5, RATE // 10) * 32768).astype(np.int16)
    for spec in ("gain:db=-6", "noise:snr=10"):
        (condition,) = parse_perturbations(spec)
        from_pcm = condition.apply(pcm, RATE, clip_key="k")
        assert np.abs(from_pcm).max() < 1  # was 32768 times too loud
        np.testing.assert_array_equal(from_pcm, condition.apply(pcm.astype(np.float32) / 32768, RATE, clip_key="k"))
    with pytest.raises(EvaluationError, match=r"^'gain:db=-6' cannot degrade clip 'k': the array has dtype uint8; .*"
                                              r"Unsigned PCM is offset"):
        parse_perturbations("gain:db=-6")[0].apply(np.full(100, 128, np.uint8), RATE, clip_key="k")


# ----------------------------------------------------------------------------- re-audit 31, E9: groups, coverage


def test_groups_with_a_missing_speaker_are_refused_in_words():
    with pytest.raises(EvaluationError, match=r"^`groups` is None for 10 of 20 examples \(first at index 1\): whole "
                                              r"groups .* or pass `groups=None` to resample single examples"):
        bootstrap_confidence_intervals([0, 1] * 10, [0, 1] * 10, 2, groups=["a", None] * 10)


@pytest.mark.parametrize("level", [1.5, 0, math.nan, "0.95", True])
def test_robustness_rows_refuse_a_coverage_out_of_range(level):
    with pytest.raises(EvaluationError, match=r"^`confidence_level` must be in \(0, 1\), found .*; e\.g\. 0\.95"):
        robustness_rows([0, 1] * 10, {"clean": [0, 1] * 10}, LABELS, confidence_level=level)


def test_a_model_cards_interval_says_n_a_where_one_could_not_be_drawn():
    """The card's results table showed an empty cell, as if no interval had been asked for (re-audit 31)."""
    from ser_hf.cards.tables import interval

    assert interval({"confidence_intervals": {"unweighted_accuracy": None}}, "unweighted_accuracy") == "n/a"
    assert interval({"confidence_intervals": {}}, "unweighted_accuracy") == ""
    assert interval({"confidence_intervals": {"unweighted_accuracy": [0.5, 0.75]}}, "unweighted_accuracy") == "50.0-75.0"


def test_a_report_refuses_a_clip_without_a_speaker_even_without_a_bootstrap():
    """With n_resamples=0 no bootstrap ran, so groups holding None slipped through and the per-speaker breakdown
    listed a speaker named None (re-audit 31)."""
    with pytest.raises(EvaluationError, match=r"`groups` is None for 1 of 4 examples \(first at index 2\)"):
        EvaluationReport.from_predictions([0, 1, 0, 1], [0, 1, 1, 1], label_names=["a", "b"],
                                          groups=["s1", "s1", None, "s2"], n_resamples=0)
