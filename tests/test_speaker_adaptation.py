"""Speaker-adaptive probe: the emotion-mix-aware offset, the fallback rule, folding, files and CV rows."""

import json

import numpy as np
import pytest

from ser_hf.errors import ModelError, SERError
from ser_hf.models import adaptive_head
from ser_hf.models.linear_head import head_logits
from ser_hf.training import speaker_adaptation
from ser_hf.training.speaker_adaptation import (
    ENROLLMENT_DRAWS,
    ESTIMATORS,
    SHRINK_CHOICES,
    choice_label,
    choice_name,
    class_means,
    collect_enrollment,
    enrollment_predictions,
    estimate_offset,
    fit_adaptive_probe,
    load_adaptation,
    save_adaptation,
    speaker_offset,
    summarise_enrollment,
)

LABELS = 3


def voices(seed=0, speakers=12, clips=12, voice=3.0, emotion=1.5, single_emotion=False):
    """Pooled states ``(clips, 2 layers, 8)``: a strong per-speaker voice plus a weaker emotion direction.

    With ``single_emotion`` every speaker speaks one emotion only (as in URDU).
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(LABELS, 8))
    features, labels, who = [], [], []
    for s in range(speakers):
        offset = voice * rng.normal(size=8)
        for c in range(clips):
            label = s % LABELS if single_emotion else c % LABELS
            features.append(offset + emotion * directions[label] + rng.normal(size=8))
            labels.append(label)
            who.append(f"s{s}")
    features = np.repeat(np.asarray(features)[:, None, :], 2, axis=1) + 0.1 * rng.normal(size=(len(labels), 2, 8))
    return features, np.asarray(labels), np.asarray(who, dtype=object)


def test_the_offset_keeps_the_emotion_of_a_single_emotion_speaker():
    features, labels, _ = voices()
    means = class_means(features, labels, LABELS)
    angry = features[labels == 2][:6]
    one_hot = np.eye(LABELS)[np.full(len(angry), 2)]
    offset = speaker_offset(angry, one_hot, means, shrink=0)
    # Plain centring would subtract the anger too; the offset leaves the anger (class mean 2) in place.
    np.testing.assert_allclose((angry - offset).mean(axis=0), means[2], atol=1e-9)


def test_the_speaker_mean_offset_removes_everything_but_the_class_balanced_centre():
    features, labels, _ = voices()
    means = class_means(features, labels, LABELS)
    speaker = features[:9]  # 3 clips of each emotion
    offset = speaker_offset(speaker, None, means, shrink=0, estimator="speaker mean")
    np.testing.assert_allclose((speaker - offset).mean(axis=0), means.mean(axis=0), atol=1e-9)
    with pytest.raises(SERError, match="unknown speaker offset estimator 'median'"):
        speaker_offset(speaker, None, means, estimator="median")


def test_the_inner_check_picks_the_estimator_that_suits_the_corpus():
    # Speakers who cover every emotion evenly: the plain speaker mean is the better estimate of the voice.
    features, labels, speakers = voices(speakers=16)
    balanced = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    by_estimator = balanced.record["inner_check"]["adaptive_ua_by_estimator"]
    assert set(by_estimator) == {"emotion-mix-aware", "speaker mean"}
    assert balanced.estimator == max(by_estimator, key=by_estimator.get) == balanced.record["estimator"]
    # Single-emotion speakers (URDU): the speaker mean erases the emotion, so it must not be chosen.
    features, labels, speakers = voices(speakers=16, single_emotion=True)
    skewed = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    check = skewed.record["inner_check"]["adaptive_ua_by_estimator"]
    assert check["speaker mean"] < check["emotion-mix-aware"], check
    assert skewed.estimator == "emotion-mix-aware"


def test_the_inner_check_picks_the_enrollment_shrinkage_with_the_estimator():
    features, labels, speakers = voices(speakers=16)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    choices = probe.record["inner_check"]["adaptive_ua_by_choice"]
    assert {(c["estimator"], c["shrink_clips"]) for c in choices} == {
        (name, k) for name in ESTIMATORS for k in SHRINK_CHOICES}
    best = max(choices, key=lambda c: c["ua"])
    assert (probe.estimator, probe.shrink) == (best["estimator"], best["shrink_clips"])
    assert probe.record["shrink_clips"] == probe.shrink
    assert probe.record["inner_check"]["enrollment_clips"] == [3, 10, 20]
    # A single choice is taken as given; the enrollment uses it.
    fixed = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4, shrinks=(7.0,))
    assert fixed.shrink == 7.0
    clips = features[speakers == speakers[0]][:4]
    expected = estimate_offset(clips, fixed.global_head, fixed.adaptive_head, fixed.means, 7.0, fixed.estimator)
    np.testing.assert_allclose(fixed.enroll(clips).offset, expected)


def test_shrinkage_pulls_few_clips_towards_no_offset():
    features, labels, _ = voices()
    means = class_means(features, labels, LABELS)
    one_hot = np.eye(LABELS)[labels[:2]]
    full = speaker_offset(features[:2], one_hot, means, shrink=0)
    np.testing.assert_allclose(speaker_offset(features[:2], one_hot, means, shrink=2), full / 2)


def test_adaptation_helps_when_voices_dominate():
    features, labels, speakers = voices()
    train, test = np.isin(speakers, [f"s{n}" for n in range(8)]), np.isin(speakers, [f"s{n}" for n in range(8, 12)])
    probe = fit_adaptive_probe(features[train], labels[train], speakers[train], LABELS, projector_size=4)
    assert probe.enabled, probe.record
    rows = enrollment_predictions(probe, features[test], labels[test], speakers[test], settings=(5, "all"))
    for setting in ("5", "all"):
        result = rows[setting]
        truth = labels[test][result["rows"]]
        assert (result["adaptive"] == truth).mean() > (result["global"] == truth).mean() + 0.1
        assert result["fallback_speakers"] == 0


def test_a_random_enrollment_row_pools_several_draws_and_all_clips_are_enrolled_once():
    features, labels, speakers = voices()
    test = np.isin(speakers, [f"s{n}" for n in range(8, 12)])
    probe = fit_adaptive_probe(features[~test], labels[~test], speakers[~test], LABELS, projector_size=4)
    one, three = (enrollment_predictions(probe, features[test], labels[test], speakers[test], settings=(5, "all"),
                                         draws=draws) for draws in (1, 3))
    assert (one["5"]["draws"], three["5"]["draws"], three["all"]["draws"]) == (1, 3, 1)
    per_draw = 4 * (12 - 5)  # each draw scores every clip of the 4 speakers that it did not enroll
    assert len(one["5"]["rows"]) == per_draw and len(three["5"]["rows"]) == 3 * per_draw
    draws = three["5"]["rows"].reshape(3, per_draw)
    assert not np.array_equal(np.sort(draws[0]), np.sort(draws[1]))  # another draw enrolls other clips
    assert (three["5"]["speakers"], three["5"]["fallback_speakers"]) == (4, 0)  # speakers counted once
    np.testing.assert_array_equal(three["all"]["rows"], one["all"]["rows"])
    collected = {}
    collect_enrollment(collected, three, labels[test], speakers[test])
    row, _ = summarise_enrollment(collected, ["a", "b", "c"], model=None, corpus=None)
    assert (row["enrollment"], row["enrollment_draws"], row["clips_scored"]) == ("5", 3, per_draw)
    assert "pooled over 3 random draws" in row["protocol"]
    for draws in (0, 1.5, True):
        with pytest.raises(SERError, match=f"enrollment draws must be a whole number >= 1, got {draws!r}"):
            enrollment_predictions(probe, features[test], labels[test], speakers[test], draws=draws)


def test_the_gain_has_a_paired_interval_that_tells_help_from_noise():
    features, labels, speakers = voices()
    test = np.isin(speakers, [f"s{n}" for n in range(6, 12)])
    probe = fit_adaptive_probe(features[~test], labels[~test], speakers[~test], LABELS, projector_size=4)
    predictions = enrollment_predictions(probe, features[test], labels[test], speakers[test], settings=(5,))
    collected = {}
    collect_enrollment(collected, predictions, labels[test], speakers[test])
    (row,) = summarise_enrollment(collected, ["a", "b", "c"], model=None, corpus=None)
    low, high = row["gain_interval"]
    assert 0 < low <= row["gain"] <= high  # strong voices: adaptation helps by more than the noise
    # The same predictions for both heads: no gain in any resample.
    same = {"5": {**collected["5"], "adaptive": collected["5"]["global"]}}
    (row,) = summarise_enrollment(same, ["a", "b", "c"], model=None, corpus=None)
    assert row["gain"] == 0 and row["gain_interval"] == [0.0, 0.0]


def test_every_head_of_the_adaptive_probe_trains_on_the_copies_too():
    features, labels, speakers = voices(speakers=8)
    copies = [features + shift for shift in (-0.5, 0.5)]
    plain = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    copied = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4, copies=copies)
    assert (copied.record["global"]["copies"], copied.record["adaptive"]["copies"]) == (2, 2)
    assert plain.record["global"]["copies"] == 0
    for head in ("global_head", "adaptive_head"):
        assert not np.allclose(getattr(plain, head)["projector.weight"], getattr(copied, head)["projector.weight"])


def test_adaptation_switches_itself_off_where_it_cannot_help():
    # Single-emotion speakers whose voice is the only cue: the inner check sees no gain and says so.
    features, labels, speakers = voices(single_emotion=True, emotion=0.0, voice=3.0, speakers=12)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    if probe.enabled:  # then it must not have been worse than the global head
        check = probe.record["inner_check"]
        assert check["adaptive_ua"] >= check["global_ua"]
    else:
        assert "adaptation scored" in probe.record["reason"]
        with pytest.raises(SERError, match="speaker adaptation is off for this model"):
            probe.enroll(features[:5])
        rows = enrollment_predictions(probe, features, labels, speakers, settings=(5,))
        assert rows["5"]["fallback_speakers"] == rows["5"]["speakers"]


def test_too_few_enrollment_clips_fall_back_to_the_global_head():
    features, labels, speakers = voices()
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    with pytest.raises(SERError, match="at least 3 clips"):
        probe.enroll(features[:2])
    rows = enrollment_predictions(probe, features, labels, speakers, settings=(1,))
    assert rows["1"]["fallback_speakers"] == 12
    np.testing.assert_array_equal(rows["1"]["adaptive"], rows["1"]["global"])


def test_a_speakers_offset_folds_into_a_standard_head():
    features, labels, speakers = voices()
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=5)
    offset = probe.enroll(features[:9])
    np.testing.assert_allclose(head_logits(probe.speaker_head(offset), features[9:20]),
                               probe.logits(features[9:20], offset), atol=1e-8)


def test_adaptation_files_round_trip_and_refuse_another_model(tmp_path):
    features, labels, speakers = voices()
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    save_adaptation(probe, tmp_path)
    loaded = load_adaptation(tmp_path, probe.global_head)
    offset = loaded.enroll(features[:9])
    np.testing.assert_allclose(loaded.logits(features[9:20], offset), probe.logits(features[9:20], offset),
                               atol=1e-4)
    other = {k: v[..., :-1] if k == "projector.weight" else v for k, v in probe.global_head.items()}
    with pytest.raises(ModelError, match="does not fit the checkpoint beside it"):
        load_adaptation(tmp_path, other)
    record = json.loads((tmp_path / "speaker_adaptation.json").read_text())
    assert record["estimator"] == probe.estimator
    record["estimator"] = "median"
    (tmp_path / "speaker_adaptation.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="names the offset estimator 'median'"):
        load_adaptation(tmp_path, probe.global_head)
    del record["estimator"]  # written before the estimator was chosen: the emotion-mix-aware offset
    (tmp_path / "speaker_adaptation.json").write_text(json.dumps(record))
    assert load_adaptation(tmp_path, probe.global_head).estimator == "emotion-mix-aware"
    for key, value, expected in (("enabled", "false", "enabled must be true or false, found 'false'"),
                                 ("shrink_clips", float("nan"), r"shrink_clips must be a non-negative number .*nan"),
                                 ("shrink_clips", -3, r"shrink_clips must be a non-negative number .*found -3"),
                                 ("shrink_clips", "2", r"shrink_clips must be .*found '2'"),
                                 ("min_enrollment_clips", 0, r"min_enrollment_clips must be a positive integer"),
                                 ("min_enrollment_clips", 2.5, r"min_enrollment_clips must be a positive integer"),
                                 ("format", 9, r"is of format 9; this version of ser_hf reads formats 1 and 2"),
                                 ("format", True, r"is of format True; this version of ser_hf reads formats 1 and 2"),
                                 ("format", 1.0, r"is of format 1.0; this version of ser_hf reads formats 1 and 2"),
                                 ("record", [], r"record must be an object")):
        (tmp_path / "speaker_adaptation.json").write_text(json.dumps({**record, key: value}))
        with pytest.raises(ModelError, match=rf"speaker_adaptation.json.*{expected}"):
            load_adaptation(tmp_path, probe.global_head)
    (tmp_path / "speaker_adaptation.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_adaptation(tmp_path, probe.global_head)
    with pytest.raises(ModelError, match="has no speaker adaptation"):
        load_adaptation(tmp_path / "elsewhere", probe.global_head)


def test_cv_adds_speaker_adaptive_rows_beside_the_standard_ones(tmp_path):
    from ser_hf.testing.corpora import make_corpus_tree
    from ser_hf.testing.models import tiny_backbone
    from ser_hf.training.experiment import cross_validate
    from ser_hf.training.recipes import parse_run

    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.4)
    run = parse_run(None, corpus="urdu", data_dir=str(corpus), model_name_or_path=str(tiny_backbone(
        "whisper", tmp_path / "tiny")), max_source_positions=50, probe_projector_size=8, num_folds=3,
        probe_speaker_adaptation=True, embedding_cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "cv"))
    result = cross_validate(run, progress=False)
    settings = [row["enrollment"] for row in result.speaker_adaptive]
    assert settings == ["1", "3", "5", "all", "neutral"]  # 8 clips per speaker: 10 and 20 leave none to score
    for row in result.speaker_adaptive:
        assert row["clips_scored"] > 0 and "global_unweighted_accuracy_same_clips" in row
        assert len(row["offset_estimator_by_fold"]) == 3
        assert set(row["offset_estimator_by_fold"]) <= {"emotion-mix-aware", "speaker mean", "off"}
        assert len(row["enrollment_shrink_by_fold"]) == 3
        assert set(row["enrollment_shrink_by_fold"]) <= {*SHRINK_CHOICES, None}
        assert row["enrollment_draws"] == (1 if row["enrollment"] == "all" else ENROLLMENT_DRAWS)
    written = json.loads((tmp_path / "cv" / "cv" / "speaker_adaptive.json").read_text())
    assert [row["enrollment"] for row in written] == settings
    table = (tmp_path / "cv" / "cv" / "speaker_adaptive.md").read_text()
    assert "not the standard headline" in table and f"each random row pools {ENROLLMENT_DRAWS} draws" in table
    assert "| gain [paired 95% CI] |" in table
    low, high = written[0]["gain_interval"]
    assert f"{100 * written[0]['gain']:+.1f} [{100 * low:+.1f} to {100 * high:+.1f}]" in table
    assert result.pooled.num_samples == 48  # the standard row is unchanged: every clip once
    assert (tmp_path / "cv" / "cv" / "speaker_adaptive.png").stat().st_size > 0  # the enrollment curve
    chosen = written[0]["offset_estimator_by_fold"]
    assert f"fold 3: {choice_label(chosen[2], written[0]['enrollment_shrink_by_fold'][2])}" in table


def test_a_folds_choice_is_named_in_words():
    assert choice_name("speaker mean", None) == "speaker mean"
    assert choice_name("emotion-mix-aware", 10.0) == "emotion-mix-aware + score spread k=10"
    assert choice_label("speaker mean", 2.0) == "speaker mean, k=2"
    assert choice_label(choice_name("emotion-mix-aware", 10.0), 5.0) == "emotion-mix-aware, k=5, score spread k=10"
    assert choice_label("off", None) == "off"


def test_the_enrollment_curve_draws_every_setting_with_its_interval_and_the_global_head(tmp_path):
    from ser_hf.evaluation.plots import plot_enrollment_curve, save_figure

    def row(setting, ua, interval):
        return {"enrollment": setting, "unweighted_accuracy": ua, "confidence_interval": interval,
                "global_unweighted_accuracy_same_clips": 0.7}

    rows = [row("1", 0.7, [0.6, 0.8]), row("10", 0.8, [0.7, 0.9]), row("all", 0.85, None), row("neutral", 0.72,
                                                                                                 [0.6, 0.8])]
    figure = plot_enrollment_curve(rows, [row("10", 0.82, [0.75, 0.9])])
    axes = figure.axes[0]
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["1 clip", "10 clips", "all", "neutral clips"]
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [
        "global head on the same clips", "speaker-adaptive (95% CI)", "speaker-adaptive, test-time copies (95% CI)"]
    assert save_figure(figure, tmp_path / "curve.png").stat().st_size > 0


def test_the_inner_check_never_scores_a_clip_the_speaker_enrolled(monkeypatch):
    """A speaker with no more clips than an enrollment size is skipped for it, as ser-hf cv's rows skip it (before,
    its enrolled clips were scored too: a transductive check on URDU's many 2-10-clip speakers)."""
    features, labels, speakers = voices(speakers=12, clips=12)
    keep = np.concatenate([np.flatnonzero(speakers == f"s{s}")[: (4, 10, 12)[s % 3]] for s in range(12)])
    features, labels, speakers = features[keep], labels[keep], speakers[keep]
    features[:, 0, -1] = np.arange(len(labels))  # each clip's row, readable from the states the global head scores
    real_refit, real_estimate, real_logits = (speaker_adaptation._refit, speaker_adaptation.estimate_offset,
                                              speaker_adaptation.head_logits)
    seen = {"refits": 0, "global heads": [], "scored": set(), "checked": 0}

    def refit(*args, **kwargs):  # per inner fold: the global head first, then one adaptive head per estimator
        head = real_refit(*args, **kwargs)
        if seen["refits"] % (1 + len(ESTIMATORS)) == 0:
            seen["global heads"].append(head)
        seen["refits"] += 1
        return head

    def logits(head, states):  # the global head scores a speaker's clips just before their offset is estimated
        if any(head is known for known in seen["global heads"]):
            seen["scored"] = set(states[:, 0, -1].astype(int))
        return real_logits(head, states)

    def estimate(enrolled, *args, **kwargs):
        assert not set(enrolled[:, 0, -1].astype(int)) & seen["scored"]
        seen["checked"] += 1
        return real_estimate(enrolled, *args, **kwargs)

    monkeypatch.setattr(speaker_adaptation, "_refit", refit)
    monkeypatch.setattr(speaker_adaptation, "head_logits", logits)
    # The check enrolls through AdaptiveProbe.enroll, as a user's speaker is enrolled.
    monkeypatch.setattr(adaptive_head, "estimate_offset", estimate)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=8, inner_folds=3)
    assert seen["checked"] > 0 and probe.record["inner_check"]["global_ua"] is not None


def test_the_inner_check_switches_adaptation_off_when_no_speaker_has_clips_to_score_after_enrolling():
    features, labels, speakers = voices(speakers=12, clips=3)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=8, inner_folds=3)
    assert not probe.enabled and probe.record["inner_check"]["global_ua"] is None
    assert probe.record["reason"] == ("fewer than 2 training speakers have more than 3 clips, so the inner CV could "
                                      "not score adaptation on clips speakers did not enroll")


def test_adaptation_trained_on_one_speaker_is_switched_off_for_want_of_a_speaker_independent_check():
    features, labels, speakers = voices(speakers=1, clips=60)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=8, inner_folds=3)
    assert not probe.enabled and probe.record["inner_check"]["global_ua"] is None
    assert probe.record["reason"].startswith("all training clips come from one speaker")


def test_adaptation_that_trails_the_global_head_in_the_inner_check_by_any_amount_is_switched_off(monkeypatch):
    # A margin of 0.01 let a point's loss through: adaptation must never make a corpus worse.
    features, labels, speakers = voices(speakers=8)
    choices = [(name, k, None) for name in ESTIMATORS for k in SHRINK_CHOICES]
    scored = {3: {"speakers": 4, "clips": 40}, 10: {"speakers": 4, "clips": 40}}
    monkeypatch.setattr(speaker_adaptation, "_inner_check", lambda *args, **kwargs: (
        scored, {3: 0.80, 10: 0.80}, {choice: {3: 0.795, 10: 0.80} for choice in choices}))
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    assert not probe.enabled
    assert probe.record["reason"] == "in the inner CV on the training speakers, adaptation scored 0.7975 UA against " \
                                     "0.8000 without it"
    monkeypatch.setattr(speaker_adaptation, "_inner_check", lambda *args, **kwargs: (
        scored, {3: 0.80, 10: 0.80}, {choice: {3: 0.80, 10: 0.80} for choice in choices}))
    assert fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4).enabled  # as good: kept on


@pytest.mark.parametrize(("clips", "sizes"), [(24, ["3", "10", "20"]), (12, ["3", "10"])])
def test_the_inner_check_scores_twenty_enrolled_clips_where_speakers_have_more(clips, sizes):
    # Judged on 3 and 10 clips only, a corpus of a few large speakers kept adaptation that 20 clips made worse.
    features, labels, speakers = voices(speakers=8, clips=clips)
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4, inner_folds=2)
    check = probe.record["inner_check"]
    assert list(check["global_ua_by_size"]) == list(check["adaptive_ua_by_size"]) == list(check["scored_by_size"]) \
        == sizes
    # every held-out speaker has more clips than each size: scored at each, on its clips it did not enroll
    assert [scored["speakers"] for scored in check["scored_by_size"].values()] == [8] * len(sizes)
    assert [scored["clips"] for scored in check["scored_by_size"].values()] == [8 * (clips - int(s)) for s in sizes]
    for head in ("global", "adaptive"):
        uas = list(check[f"{head}_ua_by_size"].values())
        assert check[f"{head}_ua"] == pytest.approx(np.mean(uas), abs=1e-4)


def test_a_size_only_one_held_out_speaker_reaches_is_left_out_of_the_inner_check(monkeypatch):
    # One clip of one speaker at 20 decided the check on its own when every scored size counted.
    features, labels, speakers = voices(speakers=8)
    choices = [(name, k, None) for name in ESTIMATORS for k in SHRINK_CHOICES]
    scored = {3: {"speakers": 6, "clips": 54}, 10: {"speakers": 6, "clips": 12}, 20: {"speakers": 1, "clips": 1}}
    monkeypatch.setattr(speaker_adaptation, "_inner_check", lambda *args, **kwargs: (
        scored, {3: 0.86, 10: 0.86, 20: 1.0}, {choice: {3: 0.90, 10: 0.88, 20: 0.0} for choice in choices}))
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    assert probe.enabled, probe.record
    assert (probe.record["inner_check"]["adaptive_ua"], probe.record["inner_check"]["global_ua"]) == (0.89, 0.86)
    # Two speakers reach it: it counts as much as the others.
    scored[20] = {"speakers": 2, "clips": 2}
    assert not fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4).enabled


def test_a_speakers_score_spread_is_brought_to_the_typical_one_with_shrinkage():
    from ser_hf.models.adaptive_head import score_spread, typical_score_variance

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, LABELS)) * [1.0, 2.0, 4.0]
    typical = typical_score_variance(np.concatenate([scores, 3 * scores]), np.repeat(["a", "b"], 40))
    np.testing.assert_allclose(typical, 5 * scores.var(axis=0))  # the mean of 1x and 9x the variance
    centre, scale = score_spread(scores, typical, shrink=0.0)
    np.testing.assert_allclose(centre, scores.mean(axis=0))
    np.testing.assert_allclose(scale, np.sqrt(5.0))  # the quiet speaker's scores are spread out to the typical
    _, shrunk = score_spread(scores[:3], typical, shrink=1e9)
    np.testing.assert_allclose(shrunk, 1.0)  # a few clips against infinite shrinkage: left as they are


def test_the_inner_check_offers_the_score_spread_beside_the_offset_alone_and_records_its_choice():
    features, labels, speakers = voices()
    plain = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    assert plain.spread_shrink is None and plain.score_variance is None  # not offered: the offset alone
    assert plain.record["spread_shrink_clips"] is None
    offered = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4, spreads=(None, 10.0))
    choices = offered.record["inner_check"]["adaptive_ua_by_choice"]
    assert sorted({c["spread_shrink_clips"] for c in choices}, key=str) == [10.0, None]
    best = max(choices, key=lambda c: c["ua"])  # the first of equals wins, as the fit's max does
    assert offered.record["spread_shrink_clips"] == offered.spread_shrink == best["spread_shrink_clips"]
    assert offered.record["inner_check"]["adaptive_ua"] == best["ua"]
