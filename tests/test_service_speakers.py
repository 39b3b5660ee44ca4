"""Speaker enrollment over HTTP: /speakers endpoints, ?speaker= on /predict (clips and timelines) and on the
/stream WebSocket ("speaker" and "adapt" in its config)."""

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ser_hf.audio import load_audio
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
from ser_hf.service import ServiceSettings
from ser_hf.service.app import create_app
from ser_hf.service.testing import stream_over_websocket  # noqa: E402
from ser_hf.testing.models import tiny_backbone


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_adaptive_checkpoint):
    tmp = tmp_path_factory.mktemp("speakers")
    corpus, checkpoint = tiny_adaptive_checkpoint
    plain_model, extractor = build_model(tiny_backbone("whisper", tmp / "base2"), corpus.features["label"].names,
                                         ModelOptions(max_source_positions=50))
    plain = save_checkpoint(plain_model, extractor, tmp / "plain")
    clips = {s: [row["audio"] for row in corpus if row["speaker"] == s] for s in ("SM1", "SF2")}
    return checkpoint, plain, clips


def _files(paths):
    return [("files", (f"c{i}.wav", open(path, "rb").read(), "audio/wav")) for i, path in enumerate(paths)]


def _wav(path) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, load_audio(path), 16000, format="WAV")
    return buffer.getvalue()


def test_enroll_then_predict_for_the_speaker(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with TestClient(create_app(recognizer)) as client:
        answer = client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4]))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"speaker": "SM1", "clips": 4, "adapted": True, "reason": None, "silent_clips": 0,
                                 "repeated_clips": 0}
        got = client.post("/predict", params={"speaker": "SM1"},
                          files={"file": ("x.wav", _wav(clips["SM1"][5]), "audio/wav")})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["speaker"] == "SM1" and body["adapted"] is True
        expected = recognizer.predict(clips["SM1"][5], speaker="SM1")["scores"]
        assert body["scores"] == pytest.approx(expected, abs=1e-5)
        assert client.get("/speakers").json()["speakers"][0]["speaker"] == "SM1"
        assert client.delete("/speakers/SM1").status_code == 200
        assert client.get("/speakers").json() == {"speakers": []}


def test_enrollment_holds_a_model_slot_while_its_clips_are_encoded(setup):
    """Enrollment's forward passes wait their turn like predictions: with one slot and no queue, a prediction
    sent while a speaker is being enrolled is told the server is busy (it used to bypass the limit)."""
    import threading

    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    registry, started, release = recognizer.enrollments, threading.Event(), threading.Event()
    encode = registry.versions

    def slow_versions(*args, **kwargs):
        started.set()
        release.wait(10)
        return encode(*args, **kwargs)

    registry.versions = slow_versions
    with TestClient(create_app(recognizer, ServiceSettings(max_concurrent=1, max_queued=0,
                                                           queue_timeout=1.0))) as client:
        enrolled = {}
        thread = threading.Thread(target=lambda: enrolled.update(
            answer=client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4]))))
        thread.start()
        assert started.wait(10)
        busy = client.post("/predict", files={"file": ("x.wav", _wav(clips["SM1"][5]), "audio/wav")})
        assert busy.status_code == 503 and "busy" in busy.json()["detail"]
        assert client.get("/health").json()["active"] == 1
        release.set()
        thread.join(10)
        assert enrolled["answer"].status_code == 200, enrolled["answer"].text
        assert client.get("/health").json()["active"] == 0


def _silent_wav(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), np.float32), 16000, format="WAV")
    return buffer.getvalue()


def test_enrollment_leaves_out_silent_and_repeated_clips_before_encoding(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    registry, encoded = recognizer.enrollments, []
    encode = registry.versions
    registry.versions = lambda waves, *args: encoded.append(len(waves)) or encode(waves, *args)
    voiced = _files(clips["SM1"][:3])
    repeat = ("files", ("again.wav", open(clips["SM1"][0], "rb").read(), "audio/wav"))
    silent = [("files", (f"s{i}.wav", _silent_wav(), "audio/wav")) for i in range(2)]
    with TestClient(create_app(recognizer)) as client:
        answer = client.post("/speakers/SM1/enroll", files=voiced + silent + [repeat])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"speaker": "SM1", "clips": 3, "adapted": True, "reason": None, "silent_clips": 2,
                                 "repeated_clips": 1}
        assert encoded == [3]  # the clips left out cost no forward pass
        alone = EmotionRecognizer.from_pretrained(checkpoint)
        alone.enroll("SM1", clips["SM1"][:3])
        np.testing.assert_allclose(registry.speakers["SM1"]["shift"].offset, alone.enrollments.speakers["SM1"]["shift"].offset,
                                   atol=1e-6)
        quiet = client.post("/speakers/quiet/enroll", files=silent + silent).json()
        assert (quiet["adapted"], quiet["clips"], quiet["silent_clips"]) == (False, 0, 4)
        assert "4 silent or voiceless clip(s) left out" in quiet["reason"] and encoded[-1] == 0
        listed = {s["speaker"]: s for s in client.get("/speakers").json()["speakers"]}
        assert listed["quiet"]["silent_clips"] == 4 and listed["SM1"]["repeated_clips"] == 1


def test_speaker_errors_are_clear_json(setup):
    checkpoint, plain, clips = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(checkpoint))) as client:
        missing = client.post("/predict", params={"speaker": "nobody"},
                              files={"file": ("x.wav", _wav(clips["SF2"][0]), "audio/wav")})
        assert missing.status_code == 404 and "not enrolled" in missing.json()["detail"]
        bad = client.post("/speakers/..%2Fetc/enroll", files=_files(clips["SF2"][:3]))
        assert bad.status_code in (404, 422)
        few = client.post("/speakers/SF2/enroll", files=_files(clips["SF2"][:2])).json()
        assert few["adapted"] is False and "fewer than the 3" in few["reason"]
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        answer = client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:3]))
        assert answer.status_code == 409 and "no speaker adaptation" in answer.json()["detail"]
        assert np.isfinite(client.post("/predict", files={"file": ("x.wav", _wav(clips["SM1"][0]), "audio/wav")})
                           .json()["score"])


# ------------------------------------------------------------------------------- timelines for a speaker


def _long(clips) -> np.ndarray:
    return np.concatenate([load_audio(path) for path in clips])


def _float_wav(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()  # float samples: the server decodes exactly the array the recognizer is given below
    sf.write(buffer, wave, 16000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _same_scores(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def _window_parity(recognizer, wave, windows, speaker):
    """Each window scores as recognizer.predict(its samples, speaker=...) scores it."""
    pieces = [wave[round(w["start"] * 16000): round(w["end"] * 16000)] for w in windows]
    expected = recognizer.predict(pieces, speaker=speaker)
    assert [w["adapted"] for w in windows] == [w["adapted"] for w in expected]
    _same_scores(windows, expected)


def test_a_timeline_for_a_speaker_scores_every_window_with_their_head(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    wave = _long(clips["SM1"][4:8])  # 1.6 s
    with TestClient(create_app(recognizer, ServiceSettings(timeline_after=1.0))) as client:
        assert client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4])).json()["adapted"] is True
        for params in ({"timeline": "true"}, {}):  # asked for, or given to audio longer than timeline_after
            got = client.post("/predict", params={"speaker": "SM1", "window": 0.5, "hop": 0.25, **params},
                              files={"file": ("long.wav", _float_wav(wave), "audio/wav")})
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["speaker"] == "SM1" and body["adapted"] is True and body["reason"] is None
            assert len(body["timeline"]) == 6 and all(w["adapted"] is True for w in body["timeline"])
            _window_parity(recognizer, wave, body["timeline"], "SM1")
        # The recognizer's own timeline gives the same overall; the global head gives another.
        own = recognizer.predict_long(wave, window=0.5, hop=0.25, speaker="SM1")
        assert body["scores"] == pytest.approx(own["overall"]["scores"], abs=1e-5)
        plain = recognizer.predict_long(wave, window=0.5, hop=0.25)["overall"]["scores"]
        assert max(abs(body["scores"][k] - plain[k]) for k in plain) > 1e-4
        pcm = client.post("/predict/pcm", params={"sampling_rate": 16000, "dtype": "float32", "speaker": "SM1",
                                                  "timeline": "true", "window": 0.5, "hop": 0.25},
                          content=wave.astype("<f4").tobytes(), headers={"content-type": "application/octet-stream"})
        assert pcm.status_code == 200, pcm.text
        assert [w["scores"] for w in pcm.json()["timeline"]] == [w["scores"] for w in body["timeline"]]


def test_a_timeline_for_a_speaker_on_the_global_head_says_why(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    wave = _long(clips["SF2"][3:7])
    with TestClient(create_app(recognizer)) as client:
        client.post("/speakers/SF2/enroll", files=_files(clips["SF2"][:2]))  # too few: the global head
        body = client.post("/predict", params={"speaker": "SF2", "timeline": "true", "window": 0.5, "hop": 0.5},
                           files={"file": ("long.wav", _float_wav(wave), "audio/wav")}).json()
    assert body["adapted"] is False and "fewer than the 3" in body["reason"]
    assert body["timeline"] and all(w["adapted"] is False for w in body["timeline"])
    plain = recognizer.predict_long(wave, window=0.5, hop=0.5)["timeline"]
    _same_scores(body["timeline"], plain)


def test_a_timeline_for_an_unknown_speaker_is_a_404(setup):
    checkpoint, plain, clips = setup
    long = {"file": ("long.wav", _float_wav(_long(clips["SM1"][:4])), "audio/wav")}
    with TestClient(create_app(EmotionRecognizer.from_pretrained(checkpoint))) as client:
        missing = client.post("/predict", params={"speaker": "nobody", "timeline": "true"}, files=long)
        assert missing.status_code == 404 and "/speakers/nobody/enroll" in missing.json()["detail"]
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        refused = client.post("/predict", params={"speaker": "SM1", "timeline": "true"}, files=long)
        assert refused.status_code == 409 and "no speaker adaptation" in refused.json()["detail"]


# ----------------------------------------------------------------------------------- streams for a speaker




def _local(recognizer, wave, **options) -> list[dict]:
    stream = recognizer.stream(window=0.5, hop=0.5, **options)
    return [r for start in range(0, wave.size, 1600) for r in stream.push(wave[start:start + 1600])] + stream.flush()


def test_a_stream_for_an_enrolled_speaker_is_adapted_from_the_first_window(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    wave = _long(clips["SM1"][4:8])
    with TestClient(create_app(recognizer)) as client:
        client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4]))
        local = _local(recognizer, wave, speaker="SM1")
        _window_parity(recognizer, wave, local, "SM1")
        # Forgetting the speaker once the stream has started cannot change it: it took their enrollment at the start.
        ready, windows = stream_over_websocket(client, {"window": 0.5, "hop": 0.5, "speaker": "SM1"}, wave,
                                 between=lambda: client.delete("/speakers/SM1"))
        assert client.get("/speakers").json() == {"speakers": []}
    assert ready["speaker"] == "SM1" and ready["adapted"] is True and "reason" not in ready
    assert len(windows) == 4 and all(w["adapted"] is True for w in windows)
    assert [(w["start"], w["end"]) for w in windows] == [(w["start"], w["end"]) for w in local]
    _same_scores(windows, local)


def test_a_stream_with_adapt_learns_its_speaker_online(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    wave = _long(clips["SF2"][:6])
    with TestClient(create_app(recognizer)) as client:
        ready, windows = stream_over_websocket(client, {"window": 0.5, "hop": 0.5, "adapt": True}, wave)
    assert ready["adapt"] is True and "speaker" not in ready
    local = _local(recognizer, wave, adapt=True)
    assert [w["adapted"] for w in windows] == [w["adapted"] for w in local] == [False, False] + [True] * 3
    _same_scores(windows, local)
    plain = _local(recognizer, wave)
    assert all("adapted" not in w for w in plain)
    assert max(abs(windows[-1]["scores"][k] - plain[-1]["scores"][k]) for k in plain[-1]["scores"]) > 1e-4


def _refused(client, config: dict) -> tuple[str, int]:
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"sampling_rate": 16000, **config}))
        message = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert message["type"] == "error", message
    return message["detail"], closed.value.code


@pytest.mark.parametrize(("config", "fragment"), [
    ({"speaker": "nobody"}, "speaker 'nobody' is not enrolled; POST clips of theirs to /speakers/nobody/enroll"),
    ({"speaker": "SM1", "adapt": True}, "config 'speaker' ('SM1') and 'adapt' cannot be combined"),
    ({"adapt": "yes"}, "config 'adapt' must be true or false, got 'yes'"),
    ({"speaker": 7}, "config 'speaker' must be the id of an enrolled speaker (a string), got 7"),
    ({"speaker": "../x"}, "config 'speaker': speaker id '../x' is not allowed"),
])
def test_stream_speaker_config_errors(setup, config, fragment):
    checkpoint, _, _ = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(checkpoint))) as client:
        detail, code = _refused(client, config)
    assert fragment in detail and code == 1003


@pytest.mark.parametrize("config", [{"adapt": True}, {"speaker": "SM1"}])
def test_stream_speaker_options_need_an_adaptive_model(setup, config):
    _, plain, _ = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        detail, code = _refused(client, config)
        assert "this model has no speaker adaptation" in detail and code == 1003
        assert client.get("/health").json()["streams"] == 0


def test_health_says_whether_the_model_adapts_to_speakers(setup, tmp_path):
    checkpoint, plain, _ = setup
    # adaptation files whose inner check switched adaptation off (the released emotion-whisper-base): no adapting
    switched_off = shutil.copytree(checkpoint, tmp_path / "off")
    record = json.loads((switched_off / "speaker_adaptation.json").read_text())
    (switched_off / "speaker_adaptation.json").write_text(json.dumps({**record, "enabled": False}))
    for model, expected in ((checkpoint, True), (plain, False), (switched_off, False)):
        with TestClient(create_app(EmotionRecognizer.from_pretrained(model))) as client:
            assert client.get("/health").json()["speaker_adaptation"] is expected
