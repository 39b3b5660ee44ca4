"""Speaker endpoints under hostile use: a server with test-time copies enrolls and scores every version of a clip
(never a 500, never a silent skip), enrollments it cannot score with are 409 / 1003, the enrolled speakers are read
and changed under one lock (no 500 while enrollments run), ``"vad_threshold_db": null`` turns gating off, and
nothing a client sends is silently ignored (two ``file`` parts, unknown parameters or fields, ``?speaker=`` on a
batch)."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'ser-hf[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from ser_hf.audio import load_audio  # noqa: E402
from ser_hf.errors import SERError  # noqa: E402
from ser_hf.inference.recognizer import EmotionRecognizer  # noqa: E402
from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint  # noqa: E402
from ser_hf.service import ServiceSettings, create_app  # noqa: E402
from ser_hf.service import speakers as speaker_routes  # noqa: E402
from ser_hf.service.live import parse_config  # noqa: E402
from ser_hf.service.speakers import registry_lock  # noqa: E402
from ser_hf.service.testing import stream_over_websocket  # noqa: E402
from ser_hf.testing.models import tiny_backbone  # noqa: E402

COPIES = {"speed": [1.1], "noise": [20]}
RATE = 16000

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_adaptive_checkpoint):
    tmp = tmp_path_factory.mktemp("speaker-hardening")
    corpus, checkpoint = tiny_adaptive_checkpoint
    plain_model, extractor = build_model(tiny_backbone("whisper", tmp / "base"), corpus.features["label"].names,
                                         ModelOptions(max_source_positions=50))
    plain = save_checkpoint(plain_model, extractor, tmp / "plain")
    clips = {s: [load_audio(row["audio"]) for row in corpus if row["speaker"] == s] for s in ("SM1", "SF2")}
    return checkpoint, plain, clips


def _wav(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()  # float samples: the server decodes exactly the array the recognizer is given
    sf.write(buffer, wave, RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _files(waves, field: str = "files"):
    return [(field, (f"c{i}.wav", _wav(wave), "audio/wav")) for i, wave in enumerate(waves)]


def _pcm(client, wave: np.ndarray, **params):
    return client.post("/predict/pcm", params={"sampling_rate": RATE, "dtype": "float32", **params},
                       content=wave.astype("<f4").tobytes(), headers={"content-type": "application/octet-stream"})




def _refused_stream(client, config: dict) -> tuple[str, int]:
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"sampling_rate": RATE, "dtype": "float32", **config}))
        message = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert message["type"] == "error", message
    return message["detail"], closed.value.code


def _scores(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


# ---------------------------------------------------------------------------- defect 1: test-time copies


def test_a_server_with_test_time_copies_enrolls_and_scores_every_version(setup):
    checkpoint, _, clips = setup
    served = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    local = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    assert local.enroll("SM1", clips["SM1"][:4])["copies"] == served.test_time_copies
    clip, long = clips["SM1"][5], np.concatenate(clips["SM1"][4:8])
    with TestClient(create_app(served, ServiceSettings(timeline_after=1.0))) as client:
        enrolled = client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4]))
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["adapted"] is True
        assert served.enrollments.summary("SM1")["copies"] == served.test_time_copies  # each copy's offset kept

        whole = client.post("/predict", params={"speaker": "SM1", "timeline": "false"},
                            files={"file": ("x.wav", _wav(clip), "audio/wav")})
        assert whole.status_code == 200, whole.text
        assert whole.json()["adapted"] is True
        assert whole.json()["scores"] == pytest.approx(local.predict(clip, speaker="SM1")["scores"], abs=1e-5)
        without = EmotionRecognizer.from_pretrained(checkpoint)
        without.enroll("SM1", clips["SM1"][:4])
        plain_scores = without.predict(clip, speaker="SM1")["scores"]
        assert max(abs(whole.json()["scores"][k] - plain_scores[k]) for k in plain_scores) > 1e-5  # copies count

        timeline = {"speaker": "SM1", "timeline": "true", "window": 0.5, "hop": 0.5}
        body = client.post("/predict", params=timeline, files={"file": ("l.wav", _wav(long), "audio/wav")})
        assert body.status_code == 200, body.text
        own = local.predict_long(long, window=0.5, hop=0.5, speaker="SM1")
        assert all(w["adapted"] for w in body.json()["timeline"])
        _scores(body.json()["timeline"], own["timeline"])
        pcm = _pcm(client, long, **timeline)
        assert pcm.status_code == 200, pcm.text
        _scores(pcm.json()["timeline"], own["timeline"])

        ready, windows = stream_over_websocket(client, {"speaker": "SM1", "window": 0.5, "hop": 0.5}, long)
        assert ready["adapted"] is True and windows and all(w["adapted"] for w in windows)
        stream = local.stream(window=0.5, hop=0.5, speaker="SM1")
        expected = [r for s in range(0, long.size, 1600) for r in stream.push(long[s:s + 1600])] + stream.flush()
        _scores(windows, expected)

        batch = client.post("/predict/batch", params={"speaker": "SM1"}, files=_files(clips["SM1"][4:6]))
        assert batch.status_code == 200, batch.text
        assert all(r["speaker"] == "SM1" and r["adapted"] is True for r in batch.json()["results"])
        _scores(batch.json()["results"], local.predict(clips["SM1"][4:6], speaker="SM1"))


def test_enrollments_the_server_cannot_score_with_are_a_409_not_a_500(setup, tmp_path):
    checkpoint, _, clips = setup
    plain = EmotionRecognizer.from_pretrained(checkpoint)  # enrolled without copies, saved, loaded by a server with
    plain.enroll("SM1", clips["SM1"][:4])
    plain.save_enrollments(tmp_path / "without")
    served = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    served.load_enrollments(tmp_path / "without")
    clip, long = clips["SM1"][5], np.concatenate(clips["SM1"][4:8])
    why = "was enrolled without the test-time copies"
    with TestClient(create_app(served)) as client:  # a 500 would raise here
        for timeline, wave in (("false", clip), ("true", long)):
            got = client.post("/predict", params={"speaker": "SM1", "timeline": timeline},
                              files={"file": ("x.wav", _wav(wave), "audio/wav")})
            assert got.status_code == 409, got.text
            assert why in got.json()["detail"] and "POST their clips to /speakers/SM1/enroll" in got.json()["detail"]
            assert _pcm(client, wave, speaker="SM1", timeline=timeline).status_code == 409
        batch = client.post("/predict/batch", params={"speaker": "SM1"}, files=_files(clips["SM1"][4:6]))
        assert batch.status_code == 409 and why in batch.json()["detail"]
        detail, code = _refused_stream(client, {"speaker": "SM1"})
        assert code == 1003 and why in detail
        assert client.get("/health").json()["streams"] == 0
        # Enrolling again on this server fixes it.
        assert client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4])).status_code == 200
        assert client.post("/predict", params={"speaker": "SM1"},
                           files={"file": ("x.wav", _wav(clip), "audio/wav")}).status_code == 200


# ---------------------------------------------------------------------------- defect 2: one lock


def _guarded(name: str):
    def method(self, *args):
        self.check(name)
        return getattr(dict, name)(self, *args)
    return method


class _Guarded(dict):
    """The enrolled speakers, noting every access made while the registry's lock is not held by the accessing
    thread (another thread can take the lock then)."""

    def __init__(self, lock):
        super().__init__()
        self.lock, self.unlocked = lock, []

    def check(self, what: str) -> None:
        free = []

        def probe():
            free.append(self.lock.acquire(blocking=False))
            if free[0]:
                self.lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        if free[0]:
            self.unlocked.append(what)

    __contains__, __getitem__, __setitem__ = _guarded("__contains__"), _guarded("__getitem__"), _guarded("__setitem__")
    __delitem__, __iter__, __len__ = _guarded("__delitem__"), _guarded("__iter__"), _guarded("__len__")
    pop, get, keys, values, items = (_guarded(name) for name in ("pop", "get", "keys", "values", "items"))


def test_every_service_access_to_the_enrolled_speakers_holds_the_lock(setup):
    checkpoint, _, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    registry = recognizer.enrollments
    registry.speakers = guarded = _Guarded(registry_lock(registry))
    with TestClient(create_app(recognizer)) as client:
        assert client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:3])).status_code == 200
        assert client.post("/speakers/SF2/enroll", files=_files(clips["SF2"][:3])).status_code == 200
        assert [s["speaker"] for s in client.get("/speakers").json()["speakers"]] == ["SM1", "SF2"]
        assert client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:3])).status_code == 200
        assert [s["speaker"] for s in client.get("/speakers").json()["speakers"]] == ["SF2", "SM1"]  # newest last
        assert client.post("/predict", params={"speaker": "SM1"},
                           files={"file": ("x.wav", _wav(clips["SM1"][5]), "audio/wav")}).status_code == 200
        assert client.post("/predict/batch", params={"speaker": "SF2"},
                           files=_files(clips["SF2"][3:5])).status_code == 200
        stream_over_websocket(client, {"speaker": "SF2", "window": 0.5, "hop": 0.5}, np.concatenate(clips["SF2"][3:6]))
        assert client.delete("/speakers/SM1").status_code == 200
        assert client.delete("/speakers/SM1").status_code == 404
    assert guarded.unlocked == []
    assert list(dict.keys(guarded)) == ["SF2"]


def test_concurrent_enrollments_evict_and_list_without_failing(setup, monkeypatch):
    checkpoint, _, clips = setup
    monkeypatch.setattr(speaker_routes, "MAX_SPEAKERS", 5)
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    registry = recognizer.enrollments
    versions = registry.versions(clips["SM1"][:3])  # the forward passes once; threads only enroll and evict
    errors: list[BaseException] = []

    def enroll(worker: int) -> None:
        try:
            for number in range(200):
                speaker_routes._enroll(registry, f"w{worker}-{number}", versions)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=enroll, args=(worker,)) for worker in range(4)]
    with TestClient(create_app(recognizer)) as client:
        for thread in threads:
            thread.start()
        listed = []
        while any(thread.is_alive() for thread in threads) or len(listed) < 20:
            answer = client.get("/speakers")
            assert answer.status_code == 200, answer.text
            listed.append(len(answer.json()["speakers"]))
            forgotten = client.delete(f"/speakers/w0-{len(listed) % 200}")
            assert forgotten.status_code in (200, 404), forgotten.text
        for thread in threads:
            thread.join()
    assert not errors
    assert max(listed) <= 5 and len(registry.speakers) <= 5


# ---------------------------------------------------------------------------- defect 3: null in a stream config


def test_vad_threshold_null_scores_silent_windows_too(setup):
    _, plain, _ = setup
    assert parse_config('{"sampling_rate": 16000, "vad_threshold_db": null}').vad_threshold_db is None
    assert parse_config('{"sampling_rate": 16000}').vad_threshold_db == -40.0
    assert parse_config('{"sampling_rate": 16000, "top_k": null}').top_k is None
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * 220 * t), 1e-4 * rng.standard_normal(RATE)]).astype(np.float32)
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        _, gated = stream_over_websocket(client, {"window": 0.5, "hop": 0.5}, wave)
        _, every = stream_over_websocket(client, {"window": 0.5, "hop": 0.5, "vad_threshold_db": None}, wave)
    assert [w["start"] for w in gated] == [0.0, 0.5]  # the quiet second is skipped by default
    assert [w["start"] for w in every] == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize(("key", "expected"), [
    ("sampling_rate", "config 'sampling_rate' must be an integer from 1 to 1e+09, got null"),
    ("window", "config 'window' must be a number from 0.5 to 30, got null"),
    ("channels", "config 'channels' must be an integer from 1 to 8, got null"),
])
def test_null_where_a_stream_needs_a_number_is_a_1003(setup, key, expected):
    _, plain, _ = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        with client.websocket_connect("/stream") as ws:
            ws.send_text(json.dumps({"sampling_rate": RATE, key: None}))
            message = ws.receive_json()
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
    assert message["type"] == "error" and expected in message["detail"] and closed.value.code == 1003


def test_vad_threshold_out_of_range_says_null_is_allowed():
    from ser_hf.service.live import _Close

    with pytest.raises(_Close, match=r"'vad_threshold_db' must be a number from -200 to 0 or null, got 'loud'"):
        parse_config('{"sampling_rate": 16000, "vad_threshold_db": "loud"}')


# ---------------------------------------------------------------------------- defect 4: nothing silently ignored


def test_two_files_to_predict_are_refused(setup):
    _, plain, clips = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        two = client.post("/predict", files=_files(clips["SM1"][:2], field="file"))
        assert two.status_code == 422
        assert "got 2 'file' parts" in two.json()["detail"] and "/predict/batch" in two.json()["detail"]
        assert client.post("/predict", files=_files(clips["SM1"][:1], field="file")).status_code == 200


@pytest.mark.parametrize(("path", "params", "field", "fragment"), [
    ("/predict", {"speakr": "SM1"}, "file", "POST /predict does not take the query parameter(s) ['speakr']"),
    ("/predict/batch", {"timeline": "true"}, "files",
     "POST /predict/batch does not take the query parameter(s) ['timeline']; it takes ['speaker', 'top_k']"),
    ("/predict/batch", {"window": "1"}, "files", "does not take the query parameter(s) ['window']"),
    ("/predict", {}, "files", "POST /predict does not take the form field(s) ['files']; it takes ['file']"),
    ("/predict/batch", {}, "file", "POST /predict/batch does not take the form field(s) ['file']"),
    ("/speakers/SM1/enroll", {}, "file", "POST /speakers/{speaker}/enroll does not take the form field(s) ['file']"),
    ("/speakers/SM1/enroll", {"speaker": "x"}, "files", "does not take the query parameter(s) ['speaker']"),
    ("/predict", {"top_k": ["1", "2"]}, "file", "POST /predict got the query parameter(s) ['top_k'] more than once"),
    ("/predict/batch", {"speaker": ["SM1", "SF2"]}, "files", "got the query parameter(s) ['speaker'] more than once"),
])
def test_parameters_and_fields_an_endpoint_does_not_take_are_refused(setup, path, params, field, fragment):
    checkpoint, _, clips = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(checkpoint))) as client:
        answer = client.post(path, params=params, files=_files(clips["SM1"][:1], field=field))
        assert answer.status_code == 422, answer.text
        assert fragment in answer.json()["detail"]
        pcm = _pcm(client, clips["SM1"][0], tiemline="true")
        assert pcm.status_code == 422 and "['tiemline']" in pcm.json()["detail"]
        assert client.get("/speakers", params={"all": "1"}).status_code == 422


def test_batch_for_a_speaker_is_scored_for_them_or_refused(setup):
    checkpoint, plain, clips = setup
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with TestClient(create_app(recognizer)) as client:
        missing = client.post("/predict/batch", params={"speaker": "nobody"}, files=_files(clips["SM1"][:2]))
        assert missing.status_code == 404 and "/speakers/nobody/enroll" in missing.json()["detail"]
        client.post("/speakers/SM1/enroll", files=_files(clips["SM1"][:4]))
        got = client.post("/predict/batch", params={"speaker": "SM1", "top_k": 2}, files=_files(clips["SM1"][4:7]))
        assert got.status_code == 200, got.text
        results = got.json()["results"]
        assert [r["filename"] for r in results] == ["c0.wav", "c1.wav", "c2.wav"]
        assert all(r["speaker"] == "SM1" and r["adapted"] is True and len(r["scores"]) == 2 for r in results)
        _scores(results, recognizer.predict(clips["SM1"][4:7], speaker="SM1", top_k=2))
        unadapted = client.post("/predict/batch", files=_files(clips["SM1"][4:5])).json()["results"][0]
        assert unadapted["speaker"] is None
    with TestClient(create_app(EmotionRecognizer.from_pretrained(plain))) as client:
        refused = client.post("/predict/batch", params={"speaker": "SM1"}, files=_files(clips["SM1"][:2]))
        assert refused.status_code == 409 and "no speaker adaptation" in refused.json()["detail"]


def test_a_window_shorter_than_the_default_hop_needs_no_hop(setup):
    """The hop defaults to 1 s, or to the window when that is shorter: a 0.5 s window alone is not refused over a
    hop nobody passed, on every path that takes windows."""
    _, plain, _ = setup
    wave = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    recognizer = EmotionRecognizer.from_pretrained(plain)
    starts = [0.0, 0.5, 1.0, 1.5]
    assert [w["start"] for w in recognizer.predict_long(wave, window=0.5)["timeline"]] == starts
    stream = recognizer.stream(window=0.5)
    assert [w["start"] for w in stream.push(wave) + stream.flush()] == starts
    assert [w["start"] for w in recognizer.predict_long(wave)["timeline"]] == [0.0]  # 3 s window: one, end-aligned
    with pytest.raises(SERError, match=r"hop must be a number of seconds in \[0.1, 0.5\], got 1.0"):
        recognizer.predict_long(wave, window=0.5, hop=1.0)  # a hop given explicitly is still checked
    with TestClient(create_app(recognizer, ServiceSettings(timeline_after=1.0))) as client:
        for response in (client.post("/predict", params={"timeline": "true", "window": 0.5},
                                     files=_files([wave], "file")),
                         _pcm(client, wave, timeline="true", window=0.5)):
            assert response.status_code == 200, response.text
            assert [w["start"] for w in response.json()["timeline"]] == starts
        ready, windows = stream_over_websocket(client, {"window": 0.5}, wave)
        assert ready["hop"] == 0.5 and [w["start"] for w in windows] == starts
        assert client.post("/predict", params={"timeline": "true", "window": 0.5, "hop": 1.0},
                           files=_files([wave], "file")).status_code == 422


def test_service_endpoints_refuse_unknown_parameters_and_dot_speaker_ids(setup):
    checkpoint, _, clips = setup
    with TestClient(create_app(EmotionRecognizer.from_pretrained(checkpoint))) as client:
        for path in ("/health", "/labels"):
            assert client.get(path).status_code == 200
            response = client.get(path, params={"x": 1})
            assert response.status_code == 422 and "x" in response.text, response.text
        for dots in ("%2E", "%2E%2E", "..."):
            response = client.post(f"/speakers/{dots}/enroll", files=_files(clips["SM1"][:3]))
            assert response.status_code == 422 and "not only dots" in response.text, response.text
        assert client.post("/speakers/a.b/enroll", files=_files(clips["SM1"][:3])).status_code == 200
