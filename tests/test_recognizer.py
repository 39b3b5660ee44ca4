"""EmotionRecognizer: clips, resampling, long audio with VAD gating, streaming, pipeline parity, run.json."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from transformers import pipeline

from ser_hf.audio import AudioPreprocessor, load_audio, resample
from ser_hf.errors import SERError
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("recognizer"), FOUR)


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return EmotionRecognizer.from_pretrained(checkpoint)


def _voice(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def _long_with_silent_middle() -> np.ndarray:
    wave = _voice(10.0)
    wave[3 * RATE: 6 * RATE] = 0.0
    return wave


def test_predict_array_path_and_list(recognizer, tmp_path):
    path = write_tone(tmp_path / "a.wav", duration=1.0)
    by_path = recognizer.predict(str(path))
    by_array = recognizer.predict(load_audio(path))
    assert set(by_path) == {"label", "score", "scores"}
    assert list(by_path["scores"]) == sorted(by_path["scores"], key=by_path["scores"].get, reverse=True)
    assert sorted(by_path["scores"]) == sorted(FOUR)
    assert sum(by_path["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert by_path["label"] == by_array["label"] and by_path["score"] == pytest.approx(by_array["score"], abs=1e-6)
    other = _voice(0.6, seed=1)
    listed = recognizer.predict([path, other])
    assert isinstance(listed, list) and len(listed) == 2
    assert listed[0]["scores"] == pytest.approx(by_path["scores"], abs=1e-6)
    assert listed[1]["scores"] == pytest.approx(recognizer.predict(other)["scores"], abs=1e-6)


def test_top_k(recognizer):
    result = recognizer.predict(_voice(0.5), top_k=2)
    assert len(result["scores"]) == 2
    assert next(iter(result["scores"])) == result["label"]
    assert result["score"] == max(result["scores"].values())
    with pytest.raises(SERError, match="top_k must be a positive integer"):
        recognizer.predict(_voice(0.5), top_k=0)


def test_resamples_44k_file_and_tuple(recognizer, tmp_path):
    wave44 = _voice(1.0, rate=44100)
    path = tmp_path / "cd.wav"
    sf.write(path, wave44, 44100)
    expected = recognizer.predict(resample(wave44, 44100, RATE))
    for item in (str(path), (wave44, 44100)):
        assert recognizer.predict(item)["scores"] == pytest.approx(expected["scores"], abs=1e-5)


def test_predict_long_gates_silent_middle(recognizer):
    result = recognizer.predict_long(_long_with_silent_middle(), window=3.0, hop=1.0, vad_threshold_db=-40)
    assert result["duration"] == pytest.approx(10.0)
    assert result["skipped"] == [[3.0, 6.0]]
    starts = [window["start"] for window in result["timeline"]]
    assert starts == [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0]
    assert all(window["end"] - window["start"] == pytest.approx(3.0) for window in result["timeline"])
    # Equal-length windows: the duration-weighted mean is the plain mean.
    mean = {label: np.mean([w["scores"][label] for w in result["timeline"]]) for label in FOUR}
    assert result["overall"]["scores"] == pytest.approx(mean, abs=1e-6)
    assert result["overall"]["label"] == max(mean, key=mean.get)
    everything = recognizer.predict_long(_long_with_silent_middle(), vad_threshold_db=None)
    assert len(everything["timeline"]) == 8 and everything["skipped"] == []


def test_predict_long_tail_window_and_short_clip(recognizer):
    tail = recognizer.predict_long(_voice(4.5), window=2.0, hop=2.0)
    assert [(w["start"], w["end"]) for w in tail["timeline"]] == [(0.0, 2.0), (2.0, 4.0), (2.5, 4.5)]
    short = recognizer.predict_long(_voice(1.0), window=3.0)
    assert [(w["start"], w["end"]) for w in short["timeline"]] == [(0.0, 1.0)]
    assert short["overall"]["scores"] == pytest.approx(recognizer.predict(_voice(1.0))["scores"], abs=1e-6)
    silent = recognizer.predict_long(np.zeros(4 * RATE, dtype=np.float32), window=2.0, hop=2.0)
    assert silent["timeline"] == [] and silent["overall"] is None and silent["skipped"] == [[0.0, 2.0], [2.0, 4.0]]
    with pytest.raises(SERError, match=r"hop must be a number of seconds in \[0.1, 3\], got 4.0"):
        recognizer.predict_long(_voice(1.0), window=3.0, hop=4.0)


def test_predict_long_refuses_a_recording_longer_than_the_max_duration_asked_for(recognizer, tmp_path):
    """``max_duration`` bounds the work (off by default: memory does not grow with a file); a file is refused from its
    header, before decoding, an array once it is read."""
    path = tmp_path / "meeting.wav"
    sf.write(path, _voice(3.0), RATE)
    from ser_hf.errors import AudioError

    for item in (str(path), _voice(3.0)):
        with pytest.raises(AudioError, match=r"lasts 3 s \(0\.0 h\), more than predict_long's max_duration of 2 s "
                                             r"\(0\.0 h\)\. Pass a larger max_duration, or None"):
            recognizer.predict_long(item, max_duration=2.0)
    assert recognizer.predict_long(path)["duration"] == pytest.approx(3.0)
    assert recognizer.predict_long(path, max_duration=3.0)["duration"] == pytest.approx(3.0)
    for item in (str(path), _voice(3.0)):
        with pytest.raises(SERError, match=r"max_duration must be a number of seconds"):
            recognizer.predict_long(item, max_duration=0)


@pytest.mark.parametrize("chunk", [3001, 16000])
def test_stream_matches_predict_long(recognizer, chunk):
    wave = _long_with_silent_middle()
    expected = recognizer.predict_long(wave, window=3.0, hop=1.0)["timeline"]
    stream = recognizer.stream(window=3.0, hop=1.0)
    got, completed_at = [], []
    for start in range(0, wave.size, chunk):
        results = stream.push(wave[start: start + chunk])
        completed_at += [(w["end"], (start + chunk) / RATE) for w in results]
        got += results
        assert stream._buffer.size <= 3 * RATE + chunk  # bounded: one window plus the chunk
    got += stream.flush()
    assert [(w["start"], w["end"], w["label"]) for w in got] == [(w["start"], w["end"], w["label"]) for w in expected]
    for mine, theirs in zip(got, expected):
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=1e-6)
    # A window is reported by the push that completes it, not later.
    assert all(end <= pushed_until < end + chunk / RATE for end, pushed_until in completed_at)
    with pytest.raises(SERError, match="stream was flushed"):
        stream.push(wave[:10])


def test_stream_resamples_chunks(recognizer):
    wave44 = _voice(5.0, rate=44100)
    stream = recognizer.stream(window=2.0, hop=1.0, sampling_rate=44100)
    got = [w for start in range(0, wave44.size, 4410) for w in stream.push(wave44[start: start + 4410])]
    got += stream.flush()
    expected = recognizer.predict_long((wave44, 44100), window=2.0, hop=1.0)["timeline"]
    assert [(w["start"], w["end"]) for w in got] == [(w["start"], w["end"]) for w in expected]
    # Streaming resampling differs from one-shot resampling only at chunk edges (~1e-4 in the samples).
    for mine, theirs in zip(got, expected):
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=1e-3)


def test_same_as_transformers_pipeline(checkpoint, recognizer):
    wave = _voice(1.5, seed=3)
    classifier = pipeline("audio-classification", model=str(checkpoint), top_k=len(FOUR), device="cpu")
    from_pipeline = classifier(wave)
    ours = recognizer.predict(wave)
    assert ours["label"] == from_pipeline[0]["label"]
    assert ours["scores"] == pytest.approx({row["label"]: row["score"] for row in from_pipeline}, abs=1e-5)


def test_applies_recorded_preprocessing(checkpoint, tmp_path):
    trained = shutil.copytree(checkpoint, tmp_path / "trained")
    (trained / "ser_hf_run.json").write_text(json.dumps({"data": {"normalize": "peak", "corpus": "urdu"}}))
    recognizer = EmotionRecognizer.from_pretrained(trained)
    assert recognizer.preprocessor == AudioPreprocessor(sampling_rate=RATE, normalize="peak")
    wave = _voice(1.0)
    # Peak normalisation makes the prediction independent of the input level.
    assert recognizer.predict(wave * 0.05)["scores"] == pytest.approx(recognizer.predict(wave)["scores"], abs=1e-5)
    plain = EmotionRecognizer.from_pretrained(trained, preprocessor=None)
    assert plain.preprocessor is None


def test_bad_inputs_name_the_problem(recognizer, tmp_path):
    with pytest.raises(SERError, match="does not exist"):
        recognizer.predict(str(tmp_path / "missing.wav"))
    with pytest.raises(SERError, match=r"the audio array: got int; expected an audio file path.*A number is one "
                                       r"sample, not a clip"):
        recognizer.predict(3)
    with pytest.raises(SERError, match="unknown model"):
        EmotionRecognizer.from_pretrained("no-such-model")


def _manual_copies_scores(checkpoint, wave: np.ndarray) -> np.ndarray:
    """Softmax of the mean of the model's logits over the clip, its 0.9x/1.1x copies and its 20 dB noisy copy."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from ser_hf.audio import NoiseAdded, SpeedChanged

    model = AutoModelForAudioClassification.from_pretrained(checkpoint).eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    base = AudioPreprocessor(sampling_rate=RATE)
    versions = [wave, SpeedChanged(base, 0.9)(wave, RATE), SpeedChanged(base, 1.1)(wave, RATE),
                NoiseAdded(base, 20)(wave, RATE)]
    with torch.no_grad():
        logits = [model(**extractor(v, sampling_rate=RATE, return_tensors="pt")).logits[0].numpy() for v in versions]
    mean = np.mean(logits, axis=0)
    return np.exp(mean - mean.max()) / np.exp(mean - mean.max()).sum()


def test_test_time_copies_average_the_clip_and_its_copies(checkpoint, recognizer, tmp_path):
    copies = {"speed": [0.9, 1.1], "noise": [20]}
    with_copies = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=copies)
    assert with_copies.test_time_copies == ["0.9x speed", "1.1x speed", "20 dB noise"]
    wave = _voice(1.2, seed=5)
    scores = with_copies.predict(wave)["scores"]
    expected = _manual_copies_scores(checkpoint, wave)
    assert [scores[label] for label in FOUR] == pytest.approx(expected.tolist(), abs=1e-5)
    assert with_copies.predict(wave) == with_copies.predict(wave)  # the noise is seeded by the clip
    assert scores != pytest.approx(recognizer.predict(wave)["scores"], abs=1e-6)  # off by default: pipeline scores
    assert recognizer.test_time_copies == []
    long = with_copies.predict_long(_long_with_silent_middle(), window=3.0, hop=3.0)  # windows get copies too
    assert long["timeline"] and all(row["label"] in FOUR for row in long["timeline"])
    # True: the copies the checkpoint's probe trained on, from its run record.
    trained = shutil.copytree(checkpoint, tmp_path / "trained")
    (trained / "ser_hf_run.json").write_text(json.dumps(
        {"data": {}, "probe": {"probe_speed_copies": [0.9, 1.1], "probe_noise_copies": [20.0]}}))
    recorded = EmotionRecognizer.from_pretrained(trained, test_time_copies=True)
    assert recorded.test_time_copies == with_copies.test_time_copies
    assert recorded.predict(wave)["scores"] == pytest.approx(scores, abs=1e-6)


def test_test_time_copies_refuse_what_cannot_work(checkpoint, tmp_path):
    from ser_hf.errors import ModelError

    with pytest.raises(SERError, match=r"records no training copies .*without --test-time-copies.*name the copies instead"):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=True)
    for bad, match in (({"speed": [5]}, r"test_time_copies\['speed'\] must be a list of"),
                       ({"noise": "20"}, r"test_time_copies\['noise'\] must be a list of"),
                       ({"pitch": [1]}, r"must map 'speed' and/or 'noise'"), ([0.9], r"must map"),
                       ({"speed": [0.9, 0.9]}, r"at most 8 distinct copies; got 2 with repeats \(0\.9x speed, 0\.9x"),
                       ({"speed": [0.6, 0.7, 0.8, 0.9, 1.1, 1.2], "noise": [10, 20, 30]},
                        r"at most 8 distinct copies; got 9 \(0\.6x speed, .*30 dB noise\)")):
        with pytest.raises(SERError, match=match):
            EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=bad)
    trained = shutil.copytree(checkpoint, tmp_path / "trained")
    (trained / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": {"probe_speed_copies": [0.9, "x"]}}))
    with pytest.raises(ModelError, match=r"ser_hf_run.json: probe.probe_speed_copies is \[0.9, 'x'\]; expected a list"):
        EmotionRecognizer.from_pretrained(trained, test_time_copies=True)
    (trained / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": [0.9]}))
    with pytest.raises(ModelError, match=r"ser_hf_run.json: 'probe' must be an object of probe arguments, found list"):
        EmotionRecognizer.from_pretrained(trained, test_time_copies=True)
