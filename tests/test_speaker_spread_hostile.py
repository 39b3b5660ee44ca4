"""Hostile and edge-case inputs against the adaptation of a speaker's score spread (``probe_speaker_spread``): its
adaptation files (format 2), enrollment files holding spreads, the byte bound of those files, the fit's typical
variance, test-time copies, the speaker model and the service."""

import io
import json

import numpy as np
import pytest
import soundfile as sf
import test_speaker_spread
from safetensors.numpy import load_file, save_file
from test_speaker_adaptation import LABELS, voices
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.errors import ModelError, SERError
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.adaptive_head import (
    MAX_SHIFT,
    SpeakerShift,
    load_adaptation,
    save_adaptation,
    typical_score_variance,
)
from ser_hf.training.speaker_adaptation import fit_adaptive_probe

# The fitted probe that adapts the spread (k 10) and the tiny checkpoint whose adaptation adapts it (k 3).
spread_probe = test_speaker_spread.spread_probe
spread_checkpoint = test_speaker_spread.spread_checkpoint

COPIES = {"speed": [0.9, 1.1]}
RECORD = "speaker_adaptation.json"
WEIGHTS = "speaker_adaptation.safetensors"


def _clips(corpus, speaker):
    return [row["audio"] for row in corpus if row["speaker"] == speaker]


# ----------------------------------------------------------------------------------------- adaptation files


def _saved_record(probe, folder) -> dict:
    save_adaptation(probe, folder)
    return json.loads((folder / RECORD).read_text())


def _with_variance(folder, variance) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    tensors["score_variance"] = variance
    save_file(tensors, str(folder / WEIGHTS))


@pytest.mark.parametrize("text", ["true", "Infinity", "1e400", "-0.5", "0", "[]", '"3"'])
def test_a_format_2_spread_shrinkage_that_is_no_number_is_refused_naming_it(spread_probe, tmp_path, text):
    probe, _ = spread_probe
    record = _saved_record(probe, tmp_path)
    body = json.dumps({**record, "spread_shrink_clips": "PLACEHOLDER"})
    (tmp_path / RECORD).write_text(body.replace('"PLACEHOLDER"', text))
    with pytest.raises(ModelError, match=r"speaker_adaptation\.json'?: spread_shrink_clips must be a positive "
                                         r"number \(> 0\), found .*; retrain"):
        load_adaptation(tmp_path, probe.global_head)


def test_a_format_2_record_without_its_spread_shrinkage_is_refused(spread_probe, tmp_path):
    probe, _ = spread_probe
    record = _saved_record(probe, tmp_path)
    del record["spread_shrink_clips"]
    (tmp_path / RECORD).write_text(json.dumps(record))
    with pytest.raises(ModelError, match=r"spread_shrink_clips must be a positive number \(> 0\), found None"):
        load_adaptation(tmp_path, probe.global_head)


@pytest.mark.parametrize("variance", [[np.nan, 1, 1], [-1, 1, 1], [0, 1, 1], [1, 1]])
def test_a_bad_score_variance_is_refused(spread_probe, tmp_path, variance):
    probe, _ = spread_probe
    _saved_record(probe, tmp_path)
    _with_variance(tmp_path, np.asarray(variance, dtype=np.float32))
    with pytest.raises(ModelError, match=r"speaker_adaptation\.safetensors.*retrain it"):
        load_adaptation(tmp_path, probe.global_head)


@pytest.mark.parametrize("variance, found", [([np.nan, 1, 1], "nan"), ([-1, 1, 1], "-1")])
def test_a_bad_score_variance_error_names_the_tensor_and_the_values_found(spread_probe, tmp_path, variance, found):
    """A variance that is there but NaN or negative is named (``score_variance``) with the values found, not called
    missing with only its shape (found by an audit)."""
    probe, _ = spread_probe
    _saved_record(probe, tmp_path)
    _with_variance(tmp_path, np.asarray(variance, dtype=np.float32))
    with pytest.raises(ModelError, match=rf"(?s)score_variance.*{found}"):
        load_adaptation(tmp_path, probe.global_head)


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_a_score_variance_of_another_number_type_loads_as_its_values(spread_probe, tmp_path, dtype):
    """As the adaptive head and the class means, the variance is read as numbers whatever their type."""
    probe, features = spread_probe
    _saved_record(probe, tmp_path)
    _with_variance(tmp_path, np.asarray([2, 3, 4], dtype=dtype))
    loaded = load_adaptation(tmp_path, probe.global_head)
    np.testing.assert_array_equal(loaded.score_variance, [2.0, 3.0, 4.0])
    assert np.isfinite(loaded.enroll(features[:9]).scale).all()


def test_a_format_1_adaptation_ignores_a_stray_score_variance_tensor(spread_probe, tmp_path):
    """The format-1 record says the offset alone; a ``score_variance`` tensor beside it changes nothing."""
    probe, features = spread_probe
    record = _saved_record(probe, tmp_path)
    record["format"] = 1
    del record["spread_shrink_clips"]
    (tmp_path / RECORD).write_text(json.dumps(record))
    loaded = load_adaptation(tmp_path, probe.global_head)
    assert loaded.spread_shrink is None and loaded.enroll(features[:9]).centre is None


def test_a_format_1_record_naming_a_spread_shrinkage_is_refused(spread_probe, tmp_path):
    """A format-1 record (the offset alone) that names ``spread_shrink_clips`` contradicts itself (a format-2 file
    whose format was edited): refused naming the key, not loaded as offset-only (found by an audit)."""
    probe, _ = spread_probe
    record = _saved_record(probe, tmp_path)
    (tmp_path / RECORD).write_text(json.dumps({**record, "format": 1}))
    with pytest.raises(ModelError, match=r"spread_shrink_clips"):
        load_adaptation(tmp_path, probe.global_head)


def test_a_spread_model_with_an_emotion_no_clip_has_can_be_loaded_after_it_is_saved(tmp_path):
    """A class no training clip has scores the same everywhere: its typical variance is floored above 0, so the
    model saves a file it can load again (found by an audit: it saved a 0 its loader refused)."""
    features, labels, speakers = voices()
    labels = np.where(labels == 2, 1, labels)  # no clip of class 2
    probe = fit_adaptive_probe(features, labels, speakers, LABELS, projector_size=5, spreads=(10.0,))
    save_adaptation(probe, tmp_path)
    loaded = load_adaptation(tmp_path, probe.global_head)
    shift = loaded.enroll(features[:9])
    assert loaded.shift_from_tensors(shift.tensors("offset.0"), "offset.0") is not None


def test_a_huge_spread_shrinkage_trusts_the_typical_spread_not_a_scale_of_0(spread_probe, tmp_path):
    """A huge shrinkage (1e308, accepted) means the typical spread itself, a scale of 1: the weights are computed
    so that nothing overflows (found by an audit: every scale came out 0)."""
    probe, features = spread_probe
    record = _saved_record(probe, tmp_path)
    (tmp_path / RECORD).write_text(json.dumps({**record, "spread_shrink_clips": 1e308}))
    _with_variance(tmp_path, np.full(LABELS, 4.0, dtype=np.float32))
    with np.errstate(over="ignore"):
        shift = load_adaptation(tmp_path, probe.global_head).enroll(features[:9])
    np.testing.assert_allclose(shift.scale, 1.0, rtol=1e-6)


def test_an_enrollment_a_valid_model_makes_from_one_clip_can_be_loaded_again(spread_probe, tmp_path):
    """One clip (variance 0) with a tiny shrinkage gives a scale that is capped at what an enrollment file may
    hold, so what enrolls in memory loads again; a shrinkage of 0 is refused (found by an audit)."""
    probe, features = spread_probe
    record = _saved_record(probe, tmp_path)
    (tmp_path / RECORD).write_text(json.dumps({**record, "spread_shrink_clips": 0, "min_enrollment_clips": 1}))
    with pytest.raises(ModelError, match="spread_shrink_clips must be a positive number"):
        load_adaptation(tmp_path, probe.global_head)
    (tmp_path / RECORD).write_text(json.dumps({**record, "spread_shrink_clips": 1e-9, "min_enrollment_clips": 1}))
    loaded = load_adaptation(tmp_path, probe.global_head)
    shift = loaded.enroll(features[:1])
    assert shift.scale.max() == MAX_SHIFT  # capped: uncapped it is about 3e4
    np.testing.assert_allclose(loaded.shift_from_tensors(shift.tensors("offset.0"), "offset.0").scale, shift.scale)


def test_clips_of_equal_scores_give_a_bounded_scale_that_round_trips(spread_probe):
    """Zero variance among the enrolled clips: the shrinkage keeps the scale at sqrt((n + k) / k)."""
    probe, features = spread_probe
    for clips in (3, 50):
        shift = probe.enroll(np.repeat(features[:1], clips, axis=0))
        np.testing.assert_allclose(shift.scale, np.sqrt((clips + 10.0) / 10.0), rtol=1e-9)
        loaded = probe.shift_from_tensors(shift.tensors("offset.0"), "offset.0")
        np.testing.assert_allclose(loaded.scale, shift.scale, rtol=1e-6)


def test_no_clips_never_reach_the_spread(spread_probe):
    """``score_spread`` of no clips is NaN, but enrollment refuses fewer clips than the minimum before it."""
    probe, features = spread_probe
    with pytest.raises(SERError, match=r"enrollment needs at least 3 clips of the speaker, got 0"):
        probe.enroll(features[:0])


def test_the_typical_variance_of_speakers_with_one_clip_each_is_neutral():
    """No speaker with two clips: the typical variance is 1 for every class (finite, positive, savable)."""
    np.testing.assert_array_equal(typical_score_variance(np.random.default_rng(0).normal(size=(4, LABELS)),
                                                         np.array(["a", "b", "c", "d"], dtype=object)), np.ones(LABELS))


def test_training_speakers_with_one_clip_each_switch_adaptation_off_without_a_spread(tmp_path):
    features, labels, speakers = voices()
    single = np.unique(speakers, return_index=True)[1]
    probe = fit_adaptive_probe(features[single], labels[single], speakers[single], LABELS, projector_size=4,
                               spreads=(None, 10.0))
    assert not probe.enabled and "fewer than" in probe.record["reason"] and probe.spread_shrink is None
    save_adaptation(probe, tmp_path)
    assert load_adaptation(tmp_path, probe.global_head).spread_shrink is None


# ----------------------------------------------------------------------------------------- enrollment files


def _saved_enrollments(recognizer, path) -> tuple:
    """Save, drop the digest (as a file from before it was recorded, so the shifts themselves are checked), and
    return the JSON path and the tensors."""
    saved = recognizer.save_enrollments(path)
    document = json.loads(saved.read_text())
    del document["weights_sha256"]
    saved.write_text(json.dumps(document))
    return saved, load_file(str(saved.with_suffix(".safetensors")))


def _spoiled(recognizer, path, spoil):
    saved, tensors = _saved_enrollments(recognizer, path)
    spoil(tensors)
    save_file(tensors, str(saved.with_suffix(".safetensors")))
    return saved


@pytest.mark.parametrize("spoil", [
    lambda t: t.pop("offset.0.spread"),
    lambda t: t.__setitem__("offset.0.spread", np.stack([t["offset.0.spread"][0], 0 * t["offset.0.spread"][1]])),
    lambda t: t.__setitem__("offset.0.spread", np.stack([t["offset.0.spread"][0], -t["offset.0.spread"][1]])),
    lambda t: t.__setitem__("offset.0.spread", np.stack([t["offset.0.spread"][0] + np.float32(1e30),
                                                         t["offset.0.spread"][1]])),
    lambda t: t.__setitem__("offset.0.spread", t["offset.0.spread"][:, :-1].copy()),
], ids=["drop", "zero scale", "negative scale", "huge centre", "wrong shape"])
def test_an_enrollment_file_with_a_bad_spread_is_refused(spread_checkpoint, tmp_path, spoil):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    saved = _spoiled(recognizer, tmp_path / "people", spoil)
    with pytest.raises(SERError, match=r"speaker 'SM3' \(record 0\) has no usable offset .* and a spread of shape"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)


def _set_scale(value):
    def spoil(tensors):
        tensors["offset.0.spread"][1, 0] = value
    return spoil


@pytest.mark.parametrize("spoil", [
    lambda t: t.__setitem__("offset.0.spread", t["offset.0.spread"].astype(np.float64)),
    lambda t: t.__setitem__("offset.0.spread", t["offset.0.spread"].astype(np.float16)),
    _set_scale(np.nextafter(np.float32(MAX_SHIFT), np.float32(np.inf))),
    _set_scale(np.float32(np.nan)),
    lambda t: t.__setitem__("offset.0.spread", t["offset.0.spread"][:1].copy()),
], ids=["float64", "float16", "scale above the bound", "NaN scale", "centre only"])
def test_a_spread_of_the_wrong_type_or_beyond_the_bound_is_refused(spread_checkpoint, tmp_path, spoil):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    saved = _spoiled(recognizer, tmp_path / "people", spoil)
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(SERError, match=r"speaker 'SM3' \(record 0\) has no usable offset .* and a spread of shape"):
        fresh.load_enrollments(saved)
    assert fresh.enrollments.speakers == {}


@pytest.mark.parametrize("scale", [MAX_SHIFT, 1e-30])
def test_a_scale_at_the_bound_or_tiny_but_positive_is_kept(spread_checkpoint, tmp_path, scale):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    saved = _spoiled(recognizer, tmp_path / "people", _set_scale(np.float32(scale)))
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    assert fresh.load_enrollments(saved) == ["SM3"]
    assert fresh.enrollments.speakers["SM3"]["shift"].scale[0] == np.float32(scale)
    assert np.isfinite(list(fresh.predict(_clips(corpus, "SM3")[5], speaker="SM3")["scores"].values())).all()


def test_a_spread_in_the_file_of_a_model_that_adapts_none_is_refused(tiny_adaptive_checkpoint, tmp_path):
    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    labels = len(recognizer.enrollments.adaptation.means)
    spread = np.stack([np.zeros(labels), np.ones(labels)]).astype(np.float32)
    saved = _spoiled(recognizer, tmp_path / "people", lambda t: t.__setitem__("offset.0.spread", spread))
    with pytest.raises(SERError, match=r"speaker 'SM3' \(record 0\) has no usable offset"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)


def test_test_time_copies_each_keep_their_own_spread_through_a_file(spread_checkpoint, tmp_path):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    clips = _clips(corpus, "SM1")
    recognizer.enroll("SM1", clips[:4])
    entry = recognizer.enrollments.speakers["SM1"]
    shifts = [entry["shift"], *entry["copy_shifts"]]
    assert len(shifts) == 3 and all(shift.centre is not None for shift in shifts)
    assert not np.allclose(shifts[0].scale, shifts[1].scale)  # each copy's spread from its own version of the clips
    expected = recognizer.predict(clips[4], speaker="SM1")["scores"]
    saved, tensors = _saved_enrollments(recognizer, tmp_path / "with")
    assert {"offset.0.spread", "offset.0.copy.0.spread", "offset.0.copy.1.spread"} <= set(tensors)
    fresh = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    assert fresh.load_enrollments(saved) == ["SM1"]
    assert fresh.predict(clips[4], speaker="SM1")["scores"] == pytest.approx(expected, abs=1e-5)
    del tensors["offset.0.copy.1.spread"]  # one copy's spread lost, the clip's and the offset still there
    save_file(tensors, str(saved.with_suffix(".safetensors")))
    with pytest.raises(SERError, match=r"speaker 'SM1' \(record 0\) has no usable offset"):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES).load_enrollments(saved)


@pytest.mark.parametrize("spoil, named", [
    (lambda t: t.pop("offset.0.copy.1.spread"), r"offset\.0\.copy\.1\.spread"),
    (lambda t: t.__setitem__("offset.0.spread", t["offset.0.spread"].astype(np.float64)),
     r"(?s)offset\.0\.spread.*float64"),
], ids=["copy spread missing", "float64 spread"])
def test_a_refused_shift_names_the_tensor_and_what_was_found(spread_checkpoint, tmp_path, spoil, named):
    """A refused shift names the tensor and what it holds (a missing spread of one test-time copy, a spread of the
    wrong type), not only "no usable offset" (found by an audit)."""
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    saved = _spoiled(recognizer, tmp_path / "people", spoil)
    with pytest.raises(SERError, match=named):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES).load_enrollments(saved)


def test_a_file_of_many_speakers_with_copies_and_spreads_is_never_too_large(spread_checkpoint, tmp_path):
    """The byte bound of an enrollment's .safetensors (offset, spread and header per shift) holds for thousands of
    speakers, each with two test-time copies, whose tensor names grow with their index."""
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    enrollments = recognizer.enrollments
    rng = np.random.default_rng(0)
    labels, shape = len(enrollments.adaptation.means), enrollments.adaptation.means.shape[1:]

    def shift():
        return SpeakerShift(rng.normal(size=shape), rng.normal(size=labels), rng.uniform(0.5, 2, size=labels))

    count = 12000
    enrollments.speakers = {f"speaker number {i}": {"speaker": f"speaker number {i}", "clips": 3, "adapted": True,
                                                    "copies": enrollments.copy_names, "shift": shift(),
                                                    "copy_shifts": [shift(), shift()]} for i in range(count)}
    saved = recognizer.save_enrollments(tmp_path / "many")
    size = saved.with_suffix(".safetensors").stat().st_size
    assert size <= enrollments._weights_bytes(json.loads(saved.read_text())["speakers"])
    fresh = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    assert len(fresh.load_enrollments(saved)) == count


@pytest.mark.parametrize("names", [[f"{i}" for i in range(100000)], ["0.9x speed", "0.9x speed"]],
                         ids=["a hundred thousand copies", "one copy twice"])
def test_a_record_claiming_too_many_or_repeated_copies_cannot_raise_the_read_bound(spread_checkpoint, tmp_path,
                                                                                    names):
    """A tampered .json listing a huge ``copies`` list must not let its .safetensors (say, a link to /dev/zero) be
    read up to gigabytes: the bound counts at most MAX_COPIES copies a record, and the record is refused, named."""
    from ser_hf.ranges import MAX_COPIES

    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    saved, _ = _saved_enrollments(recognizer, tmp_path / "people")
    document = json.loads(saved.read_text())
    document["speakers"][0]["copies"] = names
    saved.write_text(json.dumps(document))
    enrollments = recognizer.enrollments
    most = enrollments._weights_bytes([{"copies": [f"{i}" for i in range(MAX_COPIES)]}])
    assert enrollments._weights_bytes(document["speakers"]) <= most
    with pytest.raises(SERError, match=rf"speaker 'SM1' \(record 0\) has no usable offset or is malformed .*at most "
                                       rf"{MAX_COPIES} distinct test-time copy names"):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES).load_enrollments(saved)


# ----------------------------------------------------------------------------------------- speaker model, service


def test_the_speaker_model_of_a_recognizer_with_copies_folds_the_clips_spread(spread_checkpoint, tmp_path):
    corpus, checkpoint = spread_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    clips = _clips(corpus, "SF2")
    recognizer.enroll("SF2", clips[:5])
    plain = EmotionRecognizer.from_pretrained(checkpoint)
    plain.enroll("SF2", clips[:5])
    expected = plain.predict(clips[5], speaker="SF2")["scores"]
    classify = pipeline("audio-classification", model=str(recognizer.save_speaker_model("SF2", tmp_path / "sf2")))
    got = {r["label"]: r["score"] for r in classify(load_audio(clips[5]), top_k=None)}
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-5)


def _wav(path) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, load_audio(path), 16000, format="WAV")
    return buffer.getvalue()


def test_the_service_enrolls_and_scores_with_the_spread(spread_checkpoint):
    from fastapi.testclient import TestClient

    from ser_hf.service.app import create_app

    corpus, checkpoint = spread_checkpoint
    clips = _clips(corpus, "SM1")
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with TestClient(create_app(recognizer)) as client:
        files = [("files", (f"c{i}.wav", open(path, "rb").read(), "audio/wav")) for i, path in enumerate(clips[:4])]
        answer = client.post("/speakers/SM1/enroll", files=files)
        assert answer.status_code == 200, answer.text
        assert answer.json()["adapted"] is True
        assert recognizer.enrollments.speakers["SM1"]["shift"].centre is not None
        got = client.post("/predict", params={"speaker": "SM1"},
                          files={"file": ("x.wav", _wav(clips[5]), "audio/wav")})
        assert got.status_code == 200, got.text
        alone = EmotionRecognizer.from_pretrained(checkpoint)
        alone.enroll("SM1", clips[:4])
        assert got.json()["scores"] == pytest.approx(alone.predict(clips[5], speaker="SM1")["scores"], abs=1e-5)
        assert [s["speaker"] for s in client.get("/speakers").json()["speakers"]] == ["SM1"]
