"""The HTTP service: endpoints, limits, clear 4xx for bad input, 503 under overload, 500 only for bugs,
micro-batching, the /stream WebSocket, the bad-audio corpus and the `ser-hf serve` command."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'ser-hf[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from ser_hf.cli import main  # noqa: E402
from ser_hf.errors import SERError  # noqa: E402
from ser_hf.inference.recognizer import EmotionRecognizer  # noqa: E402
from ser_hf.service import ServiceSettings, create_app  # noqa: E402
from ser_hf.service.decoding import RequestError  # noqa: E402
from ser_hf.service.runner import Admission, ModelRunner  # noqa: E402
from ser_hf.testing.models import tiny_classifier  # noqa: E402

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000
SETTINGS = ServiceSettings(max_upload_bytes=2 * 2**20, max_duration=45.0, max_clip_seconds=20.0, timeline_after=10.0,
                           max_windows=200, max_batch_files=4, max_streams=2, max_frame_bytes=64 * 1024,
                           micro_batch=4)  # the micro-batched path, so parity tests cover it

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("service"), FOUR)


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return EmotionRecognizer.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, SETTINGS)) as client:
        yield client


def voice(seconds: float, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wave = (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)
    return np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave


def wav_bytes(wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, subtype=subtype, format=format)
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "clip.wav", **params):
    return client.post("/predict", files={"file": (name, data, "audio/wav")}, params=params)


def assert_error(response, status: int, *fragments: str):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for fragment in fragments:
        assert fragment in detail, detail


# ------------------------------------------------------------------------------------------ basics


def test_health_labels_page_and_docs(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["labels"] == FOUR and health["sampling_rate"] == RATE
    assert health["model"] == "model"  # the directory's name only, never the server path
    assert health["limits"]["max_upload_bytes"] == SETTINGS.max_upload_bytes
    assert client.get("/labels").json() == {"labels": FOUR}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.split("<body>")[0].replace("http-equiv", "")
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/static/%2e%2e/settings.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/predict/pcm", "/predict/batch", "/health", "/labels"} <= set(paths)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
    assert "http" not in docs.text  # every script and style from the service itself: /docs works offline
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/docs/{asset}").status_code == 200


def test_predict_file_matches_recognizer(client, recognizer):
    wave = voice(1.5)
    data = wav_bytes(wave, subtype="FLOAT")
    result = upload(client, data).json()
    expected = recognizer.predict(wave)
    assert result["label"] == expected["label"] and result["filename"] == "clip.wav"
    assert result["scores"] == pytest.approx(expected["scores"], abs=1e-5)
    assert list(result["scores"]) == sorted(result["scores"], key=result["scores"].get, reverse=True)
    assert result["duration"] == pytest.approx(1.5) and result["timeline"] is None
    top = upload(client, data, top_k=2).json()
    assert len(top["scores"]) == 2 and next(iter(top["scores"])) == top["label"]


def test_a_service_with_test_time_copies_scores_each_clip_with_them_and_says_so(checkpoint, client, recognizer):
    copies = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies={"speed": [0.9, 1.1], "noise": [20]})
    wave = voice(1.5, seed=3)
    with TestClient(create_app(copies, SETTINGS)) as with_copies:
        assert with_copies.get("/health").json()["test_time_copies"] == ["0.9x speed", "1.1x speed", "20 dB noise"]
        response = upload(with_copies, wav_bytes(wave, subtype="FLOAT"))
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert scores == pytest.approx(copies.predict(wave)["scores"], abs=1e-5)
    assert scores != pytest.approx(recognizer.predict(wave)["scores"], abs=1e-6)  # not the clip alone
    assert client.get("/health").json()["test_time_copies"] == []  # off by default


def test_predict_resamples_and_downmixes(client, recognizer):
    stereo = voice(1.0, rate=44100, channels=2)
    result = upload(client, wav_bytes(stereo, 44100, subtype="FLOAT"), name="cd.wav").json()
    expected = recognizer.predict((stereo, 44100))
    assert result["scores"] == pytest.approx(expected["scores"], abs=1e-5)


def test_long_audio_gets_a_timeline(client, recognizer):
    wave = voice(12.0)
    wave[4 * RATE: 7 * RATE] = 0.0
    result = upload(client, wav_bytes(wave, subtype="FLOAT"), name="long.wav").json()
    expected = recognizer.predict_long(wave, window=3.0, hop=1.0)
    assert [w["start"] for w in result["timeline"]] == [w["start"] for w in expected["timeline"]]
    assert result["skipped"] == expected["skipped"] and result["skipped"]
    assert result["label"] == expected["overall"]["label"]
    forced = upload(client, wav_bytes(voice(4.0)), timeline="true", window=2.0, hop=2.0).json()
    assert [(w["start"], w["end"]) for w in forced["timeline"]] == [(0.0, 2.0), (2.0, 4.0)]
    whole = upload(client, wav_bytes(voice(12.0)), timeline="false").json()
    assert whole["timeline"] is None and whole["duration"] == pytest.approx(12.0)


def test_timeline_limits(client):
    long = wav_bytes(voice(21.0))
    assert_error(upload(client, long, timeline="false"), 413, "20 s", "timeline")
    assert_error(upload(client, long, hop=0.1, window=0.5), 422, "210 windows", "larger hop")
    assert_error(upload(client, long, window=1.0, hop=2.0), 422, "hop=2", "window=1")
    assert_error(upload(client, long, window=0.1), 422, "window")


def test_silent_timeline_has_no_label(client):
    result = upload(client, wav_bytes(np.zeros(11 * RATE, np.float32))).json()
    assert result["label"] is None and result["timeline"] == [] and len(result["skipped"]) > 0


def test_pcm_matches_file_upload(client):
    wave = voice(1.0, rate=22050, channels=2)
    as_int16 = np.clip(np.round(wave * 32767), -32768, 32767).astype("<i2")
    by_file = upload(client, wav_bytes(as_int16, 22050)).json()
    by_pcm = client.post("/predict/pcm", content=as_int16.tobytes(),
                         params={"sampling_rate": 22050, "dtype": "int16", "channels": 2},
                         headers={"content-type": "application/octet-stream"}).json()
    assert by_pcm["scores"] == pytest.approx(by_file["scores"], abs=1e-5)
    floats = client.post("/predict/pcm", content=voice(1.0).astype("<f4").tobytes(),
                         params={"sampling_rate": RATE, "dtype": "float32"})
    assert floats.status_code == 200 and floats.json()["duration"] == pytest.approx(1.0)


def test_batch(client, recognizer):
    waves = [voice(1.0, seed=1), voice(2.5, seed=2), voice(0.5, seed=3)]
    files = [("files", (f"c{i}.wav", wav_bytes(w, subtype="FLOAT"), "audio/wav")) for i, w in enumerate(waves)]
    results = client.post("/predict/batch", files=files).json()["results"]
    assert [r["filename"] for r in results] == ["c0.wav", "c1.wav", "c2.wav"]
    for result, wave in zip(results, waves):
        assert result["scores"] == pytest.approx(recognizer.predict(wave)["scores"], abs=1e-5)
    bad = [*files[:2], ("files", ("notes.txt", b"not audio at all", "text/plain"))]
    assert_error(client.post("/predict/batch", files=bad), 415, "files[2]", "'notes.txt'")
    assert_error(client.post("/predict/batch", files=files * 2), 413, "6 files", "at most 4")
    assert_error(client.post("/predict/batch", files=[files[0], ("files", ("long.wav", wav_bytes(voice(21)), "a"))]),
                 413, "files[1]", "20 s")


# -------------------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(("name", "make", "status", "fragment"), [
    ("empty", lambda: b"", 400, "empty (0 bytes)"),
    ("text", lambda: b"hello, this is text\n" * 10, 415, "could not be read as audio"),
    ("truncated_header", lambda: wav_bytes(voice(1.0))[:20], 415, "could not be read as audio"),
    ("header_only", lambda: wav_bytes(np.zeros(0, np.float32)), 422, "no samples"),
    ("too_short", lambda: wav_bytes(voice(0.02)), 422, "at least 100 ms"),
    ("too_long", lambda: wav_bytes(voice(46.0), rate=8000), 413, "at most 45 s"),
    ("nan", lambda: wav_bytes(np.where(np.arange(RATE) == 9, np.nan, voice(1.0)), subtype="FLOAT"), 422, "NaN"),
    ("absurd_rate", lambda: wav_bytes(voice(0.5, rate=500), rate=500), 422, "sampling rate of 500 Hz"),
])
def test_bad_uploads_get_clear_4xx(client, name, make, status, fragment):
    response = upload(client, make(), name=f"{name}.wav")
    assert_error(response, status, fragment)
    if status != 400:
        assert f"'{name}.wav'" in response.json()["detail"]


def test_request_shape_errors(client):
    assert_error(client.post("/predict"), 422, "file", "multipart/form-data")
    # A server path in a form field is not a file: nothing on the server is ever opened by name.
    assert_error(client.post("/predict", data={"file": "/etc/passwd"}), 422, "file")
    assert_error(client.post("/predict", data={"path": "/etc/passwd"}), 422, "file")
    assert_error(upload(client, wav_bytes(voice(1.0)), top_k=0), 422, "top_k")
    pcm = voice(1.0).astype("<f4").tobytes()
    assert_error(client.post("/predict/pcm", content=pcm), 422, "sampling_rate")
    assert_error(client.post("/predict/pcm", content=pcm, params={"sampling_rate": RATE, "dtype": "int8"}), 422, "int8")
    assert_error(client.post("/predict/pcm", content=pcm[:-1], params={"sampling_rate": RATE, "dtype": "float32"}),
                 422, "whole number")
    assert_error(client.post("/predict/pcm", content=b"", params={"sampling_rate": RATE}), 400, "empty")
    assert_error(client.post("/predict/pcm", content=np.full(RATE, np.nan, "<f4").tobytes(),
                             params={"sampling_rate": RATE, "dtype": "float32"}), 422, "NaN")
    assert_error(client.post("/predict/pcm", params={"sampling_rate": RATE}, files={"file": ("a.wav", b"xx")}),
                 415, "POST /predict")
    assert client.get("/predict").status_code == 405
    assert client.get("/no/such/page").status_code == 404


def test_uploads_are_capped_before_reading(client):
    big = b"RIFF" + bytes(SETTINGS.max_upload_bytes + 1000)
    assert_error(upload(client, big), 413, f"at most {SETTINGS.max_upload_bytes} bytes per file")
    huge = bytes(SETTINGS.max_request_bytes() + 1)  # refused by the middleware from Content-Length alone
    assert_error(upload(client, huge), 413, "the request body has", f"at most {SETTINGS.max_request_bytes()} bytes")
    pcm_limit = SETTINGS.max_request_bytes()
    assert_error(client.post("/predict/pcm", content=bytes(pcm_limit + 2), params={"sampling_rate": RATE}),
                 413, f"at most {pcm_limit} bytes")

    def chunks():  # no Content-Length: the middleware counts the bytes as they arrive
        for _ in range(5):
            yield bytes(pcm_limit // 4)

    assert_error(client.post("/predict/pcm", content=chunks(), params={"sampling_rate": RATE}), 413, "more than")
    # Within the body cap but over the per-file cap (a PCM body is one file).
    assert_error(client.post("/predict/pcm", content=bytes(SETTINGS.max_upload_bytes + 2),
                             params={"sampling_rate": RATE}), 413, f"at most {SETTINGS.max_upload_bytes} bytes")


# ------------------------------------------------------------------------------ load and server bugs


class _BlockingRecognizer:
    """Wraps a recognizer; its forward passes wait for ``release`` (to hold a request at work)."""

    def __init__(self, recognizer):
        self._inner = recognizer
        self.started, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict_waves(self, waves, progress=False):
        self.started.set()
        self.release.wait(10)
        return self._inner.predict_waves(waves)


def test_overload_answers_503_with_retry_after(recognizer):
    blocking = _BlockingRecognizer(recognizer)
    settings = ServiceSettings(max_concurrent=1, max_queued=0, queue_timeout=2.0)
    with TestClient(create_app(blocking, settings)) as client:
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=upload(client, wav_bytes(voice(0.5)))))
        thread.start()
        assert blocking.started.wait(10)
        busy = upload(client, wav_bytes(voice(0.5)))
        assert_error(busy, 503, "busy", "retry in 2 s")
        assert busy.headers["retry-after"] == "2"
        assert client.get("/health").json()["active"] == 1  # health is answered while the model is busy
        blocking.release.set()
        thread.join(10)
        assert first["r"].status_code == 200


def test_admission_queue_times_out():
    async def scenario():
        admission = Admission(limit=1, max_queued=1, timeout=0.05)
        async with admission.slot():
            with pytest.raises(RequestError, match="no slot freed within 0.05 s") as err:
                async with admission.slot():
                    pass
            assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}
        async with admission.slot():  # the slot was given back
            assert admission.active == 1

    asyncio.run(scenario())


class _FailingRecognizer(_BlockingRecognizer):
    def predict_waves(self, waves, progress=False):
        raise RuntimeError("simulated bug in the model path")


def test_server_bugs_are_500_not_hidden_as_4xx(recognizer):
    with TestClient(create_app(_FailingRecognizer(recognizer)), raise_server_exceptions=False) as client:
        response = upload(client, wav_bytes(voice(0.5)))
        assert_error(response, 500, "internal server error")
        assert "simulated" not in response.text  # internals stay in the server log


class _CountingRecognizer:
    """Records the size of every forward pass; probabilities are the first sample (to check the order)."""

    labels = FOUR

    def __init__(self):
        self.calls = []

    def predict_waves(self, waves, progress=False):
        self.calls.append(len(waves))
        time.sleep(0.05)
        return np.array([[wave[0], 0, 0, 0] for wave in waves], dtype=np.float32)


def test_concurrent_clips_share_forward_passes():
    fake = _CountingRecognizer()

    async def scenario():
        runner = ModelRunner(fake, ServiceSettings(micro_batch=4))
        await runner.start()
        try:
            rows = await asyncio.gather(*(runner.predict_clip(np.full(10, i, np.float32)) for i in range(9)))
        finally:
            await runner.stop()
        return rows

    rows = asyncio.run(scenario())
    assert [row[0] for row in rows] == list(range(9))  # every request got its own clip's row
    assert sum(fake.calls) == 9 and max(fake.calls) == 4 and len(fake.calls) < 9


# ------------------------------------------------------------------------------------------ WebSocket


def _collect(ws) -> list[dict]:
    messages = []
    while True:
        message = ws.receive_json()
        messages.append(message)
        if message["type"] in ("done", "error"):
            return messages


def test_stream_matches_recognizer_stream(client, recognizer):
    wave = voice(5.5, rate=48000)
    pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype("<i2")
    expected_stream = recognizer.stream(window=2.0, hop=1.0, sampling_rate=48000)
    expected = []
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"sampling_rate": 48000, "dtype": "int16", "window": 2.0, "hop": 1.0}))
        ready = ws.receive_json()
        assert ready == {"type": "ready", "labels": FOUR, "sampling_rate": RATE, "window": 2.0, "hop": 1.0}
        for start in range(0, pcm.size, 4800):  # 100 ms frames
            chunk = pcm[start:start + 4800]
            ws.send_bytes(chunk.tobytes())
            expected += expected_stream.push(chunk.astype(np.float32) / 32768.0)
        ws.send_text('{"type": "end"}')
        messages = _collect(ws)
    expected += expected_stream.flush()
    windows = [m for m in messages if m["type"] == "window"]
    assert [(w["start"], w["end"]) for w in windows] == [(w["start"], w["end"]) for w in expected]
    assert windows[-1]["end"] == pytest.approx(5.5)
    for got, want in zip(windows, expected):
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
    assert messages[-1] == {"type": "done", "seconds": pytest.approx(5.5)}


def _stream_error(client, first, *frames) -> tuple[dict, int]:
    with client.websocket_connect("/stream") as ws:
        ws.send_text(first) if isinstance(first, str) else ws.send_bytes(first)
        for frame in frames:
            if ws.receive_json()["type"] != "ready":
                break
            ws.send_text(frame) if isinstance(frame, str) else ws.send_bytes(frame)
        messages = _collect(ws)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return messages[-1], closed.value.code


@pytest.mark.parametrize(("first", "frames", "code", "fragment"), [
    ("not json", (), 1003, "JSON object"),
    (b"\x00\x01", (), 1003, "text JSON config"),
    ('{"dtype": "int16"}', (), 1003, '"sampling_rate"'),
    ('{"sampling_rate": 16000, "rate": 1}', (), 1003, "unknown config keys ['rate']"),
    ('{"sampling_rate": 16000, "dtype": "int8"}', (), 1003, "'dtype'"),
    ('{"sampling_rate": 16000, "window": 3, "hop": 4}', (), 1003, "'hop'"),
    ('{"sampling_rate": 100}', (), 1003, "100 Hz"),
    ('{"sampling_rate": 16000, "dtype": "int16"}', (b"\x00\x01\x02",), 1003, "whole number"),
    ('{"sampling_rate": 16000, "dtype": "float32"}', (np.full(8, np.nan, "<f4").tobytes(),), 1003, "NaN"),
    ('{"sampling_rate": 16000}', ('{"type": "pause"}',), 1003, '{"type": "end"}'),
    ('{"sampling_rate": 16000}', (bytes(SETTINGS.max_frame_bytes + 4),), 1009, "limit"),
])
def test_stream_bad_messages_close_with_a_reason(client, first, frames, code, fragment):
    error, closed = _stream_error(client, first, *frames)
    assert error["type"] == "error" and fragment in error["detail"], error
    assert closed == code


def test_stream_limits(recognizer):
    settings = ServiceSettings(max_streams=1, max_stream_seconds=1.0)
    with TestClient(create_app(recognizer, settings)) as client:
        with client.websocket_connect("/stream") as first:
            first.send_text('{"sampling_rate": 16000}')
            assert first.receive_json()["type"] == "ready"
            with client.websocket_connect("/stream") as second:
                assert "retry later" in second.receive_json()["detail"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    second.receive_json()
                assert closed.value.code == 1013
            first.send_bytes(voice(1.5).astype("<f4").tobytes())
            assert "1-second limit" in _collect(first)[-1]["detail"]
        assert client.get("/health").json()["streams"] == 0
        with client.websocket_connect("/stream") as ws:  # the slot was given back; a tiny stream just ends
            ws.send_text('{"sampling_rate": 16000}')
            ws.receive_json()
            ws.send_bytes(voice(0.01).astype("<f4").tobytes())
            ws.send_text('{"type": "end"}')
            assert _collect(ws) == [{"type": "done", "seconds": pytest.approx(0.01)}]


# ------------------------------------------------------------------------- absurd samples, NaN outputs


def _raw_messages(ws) -> list[str]:
    """The text frames of a stream up to its "done" or "error", unparsed: NaN must never be in them."""
    texts = []
    while True:
        texts.append(ws.receive_text())
        if json.loads(texts[-1])["type"] in ("done", "error"):
            return texts


def test_absurd_samples_get_a_422_not_a_nan_score(client):
    huge = voice(1.0)
    huge[::100] = 3e38
    assert_error(upload(client, wav_bytes(huge, subtype="FLOAT"), name="huge.wav"), 422, "'huge.wav'",
                 "samples as large as 3e+38")
    assert_error(client.post("/predict/pcm", content=huge.astype("<f4").tobytes(),
                             params={"sampling_rate": RATE, "dtype": "float32"}), 422, "samples as large as 3e+38")
    files = [("files", ("ok.wav", wav_bytes(voice(1.0)), "a")), ("files", ("huge.wav", wav_bytes(huge, subtype="FLOAT"), "a"))]
    assert_error(client.post("/predict/batch", files=files), 422, "files[1]", "samples as large as")
    error, code = _stream_error(client, '{"sampling_rate": 16000, "dtype": "float32"}', huge.astype("<f4").tobytes())
    assert error["type"] == "error" and "samples as large as 3e+38" in error["detail"] and code == 1003


def test_a_non_finite_model_output_is_a_422_never_a_200(client, recognizer, monkeypatch):
    real = recognizer.predict_waves

    def predict_waves(waves, progress=False):  # NaN for loud clips, as a real model answers 3e38 samples
        rows = np.array(real(waves, progress), dtype=np.float32)
        rows[[float(np.abs(w).max()) > 0.6 for w in waves]] = np.nan
        return rows

    monkeypatch.setattr(recognizer, "predict_waves", predict_waves)
    quiet, loud = voice(1.0, seed=1), np.clip(voice(1.0, seed=2) * 2, -0.99, 0.99)
    assert upload(client, wav_bytes(quiet)).status_code == 200  # batch-mates of a NaN clip are unaffected
    assert_error(upload(client, wav_bytes(loud), name="loud.wav"), 422, "'loud.wav'", "not finite")
    assert_error(upload(client, wav_bytes(loud), name="loud.wav", timeline="true", window=0.5, hop=0.5), 422,
                 "not finite")
    assert_error(client.post("/predict/pcm", content=loud.astype("<f4").tobytes(),
                             params={"sampling_rate": RATE, "dtype": "float32"}), 422, "not finite")
    files = [("files", ("quiet.wav", wav_bytes(quiet), "a")), ("files", ("loud.wav", wav_bytes(loud), "a"))]
    assert_error(client.post("/predict/batch", files=files), 422, "files[1] ('loud.wav')", "not finite")
    for seconds in (2.5, 0.7):  # a window completed by a frame; the tail window scored on "end"
        with client.websocket_connect("/stream") as ws:
            ws.send_text('{"sampling_rate": 16000, "dtype": "float32", "window": 1.0, "hop": 1.0}')
            assert ws.receive_json()["type"] == "ready"
            pcm = np.resize(loud, int(seconds * RATE)).astype("<f4")
            for start in range(0, pcm.size, RATE // 2):
                ws.send_bytes(pcm[start:start + RATE // 2].tobytes())
            ws.send_text('{"type": "end"}')
            texts = _raw_messages(ws)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
        for text in texts:  # strict JSON: a bare NaN (what send_json writes for a NaN score) raises here
            json.loads(text, parse_constant=lambda constant: pytest.fail(f"bare {constant} in a stream message"))
        assert json.loads(texts[-1])["type"] == "error" and "not finite" in texts[-1] and closed.value.code == 1003


# ------------------------------------------------------------------------------- bad-audio corpus


def test_bad_audio_corpus_never_gets_5xx(client, tmp_path):
    bad_audio = pytest.importorskip("ser_hf.testing.bad_audio")
    cases = bad_audio.make_bad_inputs(tmp_path / "bad", include_long=True)
    seen = {}
    for case in cases:
        data = case.data()
        if data is None:
            continue  # a directory, FIFO or dangling link: nothing a client could upload
        response = upload(client, data, name=case.path.name)
        seen[case.name] = response.status_code
        assert response.status_code < 500, (case.name, response.text)
        usable = (case.expected == "ok" and SETTINGS.min_duration <= case.duration <= SETTINGS.max_duration
                  and len(data) <= SETTINGS.max_upload_bytes)
        if usable:
            assert response.status_code == 200, (case.name, response.text)
        else:
            assert 400 <= response.status_code < 500, (case.name, response.text)
            assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert seen["one_hour"] == 413 and seen["ten_ms"] == 422 and seen["text"] == 415 and seen["nan"] == 422
    assert seen["mp3"] == seen["ogg"] == seen["six_channels"] == seen["rate_96k"] == 200


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_serve_flags(monkeypatch, checkpoint):
    captured = {}
    monkeypatch.setattr("ser_hf.service.server.serve", lambda model, **kw: captured.update(model=model, **kw))
    assert main(["serve", "--model", str(checkpoint), "--port", "9123", "--max-upload-mb", "1.5",
                 "--max-duration", "30", "--max-concurrent", "3", "--micro-batch", "8", "--threads", "1",
                 "--device", "cpu", "--test-time-copies"]) == 0
    settings = captured["settings"]
    assert captured["test_time_copies"] is True
    assert captured["port"] == 9123 and captured["host"] == "127.0.0.1" and captured["model"] == str(checkpoint)
    assert settings.max_upload_bytes == int(1.5 * 2**20) and settings.max_duration == 30
    assert settings.max_concurrent == 3 and settings.micro_batch == 8
    assert captured["threads"] == 1 and captured["device"] == "cpu"


def test_cli_serve_errors(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path), "--max-concurrent", "0"]) == 2
    assert "max_concurrent must be positive" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path), "--threads", "0"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SERError, match="max_queued must be 0 or more"):
        ServiceSettings(max_queued=-1)
