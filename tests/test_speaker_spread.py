"""Speaker adaptation of the score spread (``probe_speaker_spread``): the fit, its folding into a standard head, its
files, and enrollment with it from end to end."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from test_speaker_adaptation import LABELS, voices
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.errors import ModelError, SERError
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.adaptive_head import SpeakerShift, load_adaptation, save_adaptation
from ser_hf.models.linear_head import head_logits
from ser_hf.training.speaker_adaptation import fit_adaptive_probe


@pytest.fixture(scope="module")
def spread_probe():
    features, labels, speakers = voices()
    # Only a spread is offered, so the fit takes it whatever the inner check says.
    return fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=5, spreads=(10.0,)), features


def test_a_speakers_shift_with_a_spread_folds_into_a_standard_head(spread_probe):
    probe, features = spread_probe
    shift = probe.enroll(features[:9])
    assert shift.centre.shape == shift.scale.shape == (LABELS,) and (shift.scale > 0).all()
    assert not np.allclose(shift.scale, 1.0)  # the spread moves the scores: the fold below has something to fold
    np.testing.assert_allclose(head_logits(probe.speaker_head(shift), features[9:20]),
                               probe.logits(features[9:20], shift), atol=1e-8)
    offset_only = probe.logits(features[9:20], SpeakerShift(shift.offset))
    assert not np.allclose(offset_only, probe.logits(features[9:20], shift))


def test_an_adaptation_with_a_spread_round_trips_as_format_2_and_is_checked(spread_probe, tmp_path):
    probe, features = spread_probe
    save_adaptation(probe, tmp_path)
    record = json.loads((tmp_path / "speaker_adaptation.json").read_text())
    assert (record["format"], record["spread_shrink_clips"]) == (2, 10.0)
    loaded = load_adaptation(tmp_path, probe.global_head)
    assert loaded.spread_shrink == 10.0
    shift = loaded.enroll(features[:9])
    np.testing.assert_allclose(loaded.logits(features[9:20], shift),
                               probe.logits(features[9:20], probe.enroll(features[:9])), atol=1e-4)
    for value in (-1, 0, float("nan"), "10", None):
        (tmp_path / "speaker_adaptation.json").write_text(json.dumps({**record, "spread_shrink_clips": value}))
        with pytest.raises(ModelError, match="spread_shrink_clips must be a positive number"):
            load_adaptation(tmp_path, probe.global_head)
    (tmp_path / "speaker_adaptation.json").write_text(json.dumps(record))
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tmp_path / "speaker_adaptation.safetensors"))
    for variance in (None, np.zeros(LABELS, np.float32), np.ones(LABELS + 1, np.float32),
                     np.full(LABELS, np.inf, np.float32)):
        spoiled = {k: v for k, v in tensors.items() if k != "score_variance"}
        if variance is not None:
            spoiled["score_variance"] = variance
        save_file(spoiled, str(tmp_path / "speaker_adaptation.safetensors"))
        with pytest.raises(ModelError, match="lacks the score variance its format-2 record needs"):
            load_adaptation(tmp_path, probe.global_head)


def test_an_adaptation_without_a_spread_stays_format_1(tmp_path):
    features, labels, speakers = voices()
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4)
    save_adaptation(probe, tmp_path)
    record = json.loads((tmp_path / "speaker_adaptation.json").read_text())
    assert record["format"] == 1 and "spread_shrink_clips" not in record  # what earlier versions read
    assert load_adaptation(tmp_path, probe.global_head).enroll(features[:9]).centre is None


@pytest.fixture(scope="module")
def spread_checkpoint(tiny_adaptive_checkpoint, tmp_path_factory):
    """conftest's tiny adaptive checkpoint, copied, with an adaptation that adapts the score spread too."""
    corpus, checkpoint = tiny_adaptive_checkpoint
    copy = shutil.copytree(checkpoint, tmp_path_factory.mktemp("spread") / "model")
    recognizer = EmotionRecognizer.from_pretrained(copy)
    adaptation = recognizer.enrollments.adaptation
    adaptation.spread_shrink, adaptation.score_variance = 3.0, np.full(len(adaptation.means), 0.5)
    save_adaptation(adaptation, copy)
    return corpus, copy


def _clips(corpus, speaker):
    return [row["audio"] for row in corpus if row["speaker"] == speaker]


def test_enrollment_with_a_spread_scores_saves_and_exports_like_the_adaptation(spread_checkpoint, tmp_path):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SF2")
    recognizer.enroll("SF2", clips[:5])
    enrollments = recognizer.enrollments
    shift = enrollments.speakers["SF2"]["shift"]
    assert shift.centre is not None
    expected = enrollments.adaptation.enroll(enrollments.pooled([load_audio(c) for c in clips[:5]]))
    np.testing.assert_allclose(shift.scale, expected.scale)
    scores = recognizer.predict(clips[5], speaker="SF2")["scores"]
    # A speaker model pipeline() loads scores the same: the spread folded into the classifier.
    classify = pipeline("audio-classification", model=str(recognizer.save_speaker_model("SF2", tmp_path / "sf2")))
    got = {r["label"]: r["score"] for r in classify(load_audio(clips[5]), top_k=None)}
    np.testing.assert_allclose([got[k] for k in scores], list(scores.values()), atol=1e-5)
    # Saved and loaded, the spread comes back (as float32).
    saved = recognizer.save_enrollments(tmp_path / "people")
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    assert fresh.load_enrollments(saved) == ["SF2"]
    np.testing.assert_allclose(fresh.enrollments.speakers["SF2"]["shift"].scale, shift.scale, rtol=1e-6)
    assert fresh.predict(clips[5], speaker="SF2")["scores"] == pytest.approx(scores, abs=1e-6)


def test_enrollments_of_the_offset_alone_do_not_load_into_a_model_that_adapts_the_spread(tiny_adaptive_checkpoint,
                                                                                         spread_checkpoint, tmp_path):
    corpus, plain = tiny_adaptive_checkpoint
    _, spread = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(plain)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    saved = recognizer.save_enrollments(tmp_path / "people")
    with pytest.raises(SERError, match="made with another model"):
        EmotionRecognizer.from_pretrained(spread).load_enrollments(saved)


def test_an_adapting_stream_uses_the_spread_too(spread_checkpoint):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = [load_audio(c) for c in _clips(corpus, "SM1")[:4]]
    from ser_hf.inference.speakers import OnlineSpeaker

    online = OnlineSpeaker(recognizer.enrollments)
    probabilities, adapted = online.score(clips)
    assert adapted
    enrollments = recognizer.enrollments
    pooled = enrollments.pooled(clips)
    shift = enrollments.adaptation.enroll(pooled)
    assert shift.centre is not None
    from ser_hf.models.linear_head import softmax

    np.testing.assert_allclose(probabilities, softmax(enrollments.adaptation.logits(pooled, shift)), atol=1e-6)


def test_the_spread_needs_speaker_adaptation():
    from ser_hf.training.arguments import ProbeArguments
    from ser_hf.training.probe import ProbeSettings

    for make in (lambda: ProbeSettings(speaker_spread=True), lambda: ProbeArguments(probe_speaker_spread=True)):
        with pytest.raises(SERError, match="probe_speaker_spread .* needs probe_speaker_adaptation: true"):
            make()
    assert ProbeArguments(probe_speaker_spread=True, probe_speaker_adaptation=True).settings().speaker_spread


def test_cv_with_the_spread_offered_records_the_choices_and_names_them_in_its_rows(tmp_path):
    from ser_hf.testing.corpora import make_corpus_tree
    from ser_hf.testing.models import tiny_backbone
    from ser_hf.training.experiment import cross_validate, train
    from ser_hf.training.recipes import parse_run
    from ser_hf.training.speaker_adaptation import SPREAD_CHOICES

    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.4)
    run = parse_run(None, corpus="urdu", data_dir=str(corpus), model_name_or_path=str(tiny_backbone(
        "whisper", tmp_path / "tiny")), max_source_positions=50, probe_projector_size=8, num_folds=3,
        probe_speaker_adaptation=True, probe_speaker_spread=True, embedding_cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "cv"))
    result = cross_validate(run, progress=False)
    names = {name for row in result.speaker_adaptive for name in row["offset_estimator_by_fold"]}
    assert names and all(name == "off" or name.split(" + score spread k=")[0] in ("emotion-mix-aware", "speaker mean")
                         for name in names)
    model = tmp_path / "model"
    train(dataclasses.replace(run, training=dataclasses.replace(run.training, output_dir=str(model))), progress=False)
    record = json.loads((model / "speaker_adaptation.json").read_text())
    offered = {choice["spread_shrink_clips"] for choice in record["record"]["inner_check"]["adaptive_ua_by_choice"]}
    assert offered == {None, *SPREAD_CHOICES}
    assert record["format"] == (1 if record["record"]["spread_shrink_clips"] is None else 2)


@pytest.mark.parametrize("spreads", [(), (0.0,), (None, -3.0), (float("inf"),), ("10",)])
def test_the_fit_refuses_spread_shrinkages_that_cannot_be_saved(spreads):
    features, labels, speakers = voices()
    with pytest.raises(SERError, match="spreads must list score-spread shrinkages above 0"):
        fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=4, spreads=spreads)
