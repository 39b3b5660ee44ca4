"""The service against decompression bombs, slow clients, contract gaps and strangers (issue 18).

Each test fails on the service before the fix. Connection-level behaviour (timeouts, the connection cap)
runs against a real uvicorn in a thread of this process (``serving_in_thread``), with raw sockets for the
slow clients; waits are bounded, and nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'ser-hf[serve]'")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from ser_hf.cli import main  # noqa: E402
from ser_hf.errors import SERError  # noqa: E402
from ser_hf.inference.recognizer import EmotionRecognizer  # noqa: E402
from ser_hf.service import ServiceSettings, create_app  # noqa: E402
from ser_hf.service.access import AccessPolicy, resolve_api_key  # noqa: E402
from ser_hf.service.decoding import decode_upload  # noqa: E402
from ser_hf.service.testing import serving_in_thread  # noqa: E402
from ser_hf.testing.models import tiny_classifier  # noqa: E402

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000
KEY = "test-key-0123456789"

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("hardening"), FOUR)


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return EmotionRecognizer.from_pretrained(checkpoint)


def voice(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def encoded(wave: np.ndarray, rate: int = RATE, format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def bomb(rate: int, channels: int, seconds: int, format: str = "FLAC", subtype: str | None = None) -> bytes:
    """Silence written a second at a time: a few KB holding frames x channels x 4 bytes of samples."""
    buffer = io.BytesIO()
    second = np.zeros((rate, channels), np.float32)
    with sf.SoundFile(buffer, "w", samplerate=rate, channels=channels, format=format, subtype=subtype) as sound:
        for _ in range(seconds):
            sound.write(second)
    return buffer.getvalue()


def assert_error(response, status: int, *fragments: str):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    for fragment in fragments:
        assert fragment in detail, detail
    return detail


class _Held:
    """Wraps a recognizer; its forward passes wait for ``release`` (a request held at work)."""

    def __init__(self, recognizer):
        self._inner = recognizer
        self.started, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict_waves(self, waves, progress=False):
        self.started.set()
        self.release.wait(20)
        return self._inner.predict_waves(waves)


# ---------------------------------------------------------------------------------- 1. decompression bombs


def test_decompression_bombs_are_refused_from_the_header(recognizer):
    settings = ServiceSettings(max_decoded_bytes=8 * 2**20, max_upload_bytes=2**20)
    flac = bomb(96000, 8, 6)  # ~20 KB: 18.4 MB of samples
    ogg = bomb(48000, 8, 6, "OGG", "VORBIS")  # 9.2 MB
    assert len(flac) < 200_000 and len(ogg) < 200_000
    with TestClient(create_app(recognizer, settings)) as client:
        for name, data, size in (("bomb.flac", flac, "18 MB"), ("bomb.ogg", ogg, "9 MB")):
            assert_error(client.post("/predict", files={"file": (name, data)}), 413, f"'{name}' decodes to {size} of "
                         "samples", "x 8 channels at", "at most 8 MB for decoding per request", "ffmpeg")
        assert_error(client.post("/predict", files={"file": ("b.flac", flac)}, params={"timeline": "false"}), 413,
                     "decodes to")
        # A batch counts its files together; each alone is under the cap.
        files = [("files", (f"{i}.flac", bomb(96000, 8, 1), "a")) for i in range(3)]
        assert_error(client.post("/predict/batch", files=files), 413, "the 3 files decode to 9 MB")
        # Ten channels are refused before anything is decoded; eight still decode.
        assert_error(client.post("/predict", files={"file": ("ten.wav", encoded(np.zeros((RATE, 10), np.float32)))}),
                     422, "has 10 channels", "at most 8")
        ok = client.post("/predict", files={"file": ("eight.flac", bomb(RATE, 8, 1))})
        assert ok.status_code == 200, ok.text


def test_uploads_decode_in_blocks_to_the_model_rate():
    import tracemalloc

    data = bomb(96000, 8, 6)
    tracemalloc.start()
    try:
        wave, rate = decode_upload(data, "b.flac", ServiceSettings(), sampling_rate=RATE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rate == RATE and wave.shape == (6 * RATE,)
    assert peak < 18_432_000 / 3, peak  # all channels at 96 kHz: 18.4 MB; now the 16 kHz output and a block


def test_decoding_budget_is_shared_by_concurrent_requests(recognizer):
    held = _Held(recognizer)
    settings = ServiceSettings(decode_budget_bytes=5 * 2**20, max_decoded_bytes=4 * 2**20)
    clip = bomb(96000, 8, 1)  # 3.1 MB of samples: one fits the budget, two do not
    with TestClient(create_app(held, settings)) as client:
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=client.post("/predict", files={"file": ("a.flac", clip)})))
        thread.start()
        assert held.started.wait(20)
        busy = client.post("/predict", files={"file": ("b.flac", clip)})
        assert_error(busy, 503, "of its 5 MB for decoding are held by other requests", "retry in 5 s")
        assert busy.headers["retry-after"] == "5"
        small = client.post("/predict", files={"file": ("c.wav", encoded(voice(0.5)))})  # fits beside it
        held.release.set()
        thread.join(20)
        assert first["r"].status_code == 200 and small.status_code == 200
        assert client.post("/predict", files={"file": ("b.flac", clip)}).status_code == 200  # given back


# ------------------------------------------------------------------------------------------ 2. slow clients


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def _read_answer(sock: socket.socket, timeout: float = 30) -> tuple[int | None, dict | None]:
    """Read until the server closes: ``(status, JSON body)``, or ``(None, None)`` for a close without answer."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    try:
        return _read_answer(sock, timeout) == (None, None)
    except TimeoutError:
        return False


def _headers(path: str, length: int, content_type: str = "application/octet-stream") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_slow_bodies_hold_no_model_slot_and_get_408(recognizer):
    settings = ServiceSettings(max_concurrent=1, max_queued=0, body_timeout=2.0)
    pcm = (voice(1.0) * 32767).astype("<i2").tobytes()
    with serving_in_thread(create_app(recognizer, settings), settings) as url:
        slow = [_connect(url) for _ in range(3)]
        for sock in slow:  # headers and a quarter of the body, then nothing
            sock.sendall(_headers(f"/predict/pcm?sampling_rate={RATE}", len(pcm)) + pcm[: len(pcm) // 4])
        time.sleep(0.3)
        fast = httpx.post(url + f"/predict/pcm?sampling_rate={RATE}", content=pcm, timeout=30)
        assert fast.status_code == 200, fast.text  # before: the slow bodies held the only slot (503)
        for sock in slow:
            status, body = _read_answer(sock)
            assert status == 408 and "did not arrive within 2 s" in body["detail"], body
            sock.close()


def test_idle_and_half_sent_connections_are_closed_and_never_block_health(recognizer):
    settings = ServiceSettings(max_concurrent=1, max_queued=0, max_streams=1, header_timeout=1.0,
                               keep_alive_timeout=1.0)
    with serving_in_thread(create_app(recognizer, settings), settings) as url:
        idle = [_connect(url) for _ in range(40)]  # before: uvicorn's cap was 1 + 0 + 1 + 16 connections
        half = [_connect(url) for _ in range(10)]
        for sock in half:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le")
        time.sleep(0.2)
        health = httpx.get(url + "/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        for sock in idle + half:  # closed by the server (recv returns b"" well before the 30 s socket timeout)
            assert _read_answer(sock) == (None, None)
            sock.close()


def test_past_the_connection_cap_idle_connections_go_first_then_json_503(recognizer):
    settings = ServiceSettings(max_connections=4, header_timeout=30.0, body_timeout=30.0)
    pcm = (voice(0.5) * 32767).astype("<i2").tobytes()
    with serving_in_thread(create_app(recognizer, settings), settings) as url:
        idle = [_connect(url) for _ in range(6)]
        time.sleep(0.2)
        assert httpx.get(url + "/health", timeout=30).status_code == 200  # idle ones were closed to make room
        assert sum(_closed_by_server(sock, 2) for sock in idle) >= 3
        busy = [_connect(url) for _ in range(4)]
        for sock in busy:  # requests in progress (bodies half-sent): not closed to make room
            sock.sendall(_headers(f"/predict/pcm?sampling_rate={RATE}", len(pcm)) + pcm[:100])
        time.sleep(0.3)
        refused = httpx.get(url + "/health", timeout=30)
        assert_error(refused, 503, "connections are open", "retry in 5 s")
        assert refused.headers["retry-after"] == "5"
        for sock in idle + busy:
            sock.close()


def _multipart(files: list[tuple[str, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    parts = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: audio/wav\r\n\r\n".encode() + data + b"\r\n" for name, data in files)
    return parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_stalled_batch_upload_is_charged_to_the_body_budget_and_timed_out(recognizer):
    settings = ServiceSettings(body_budget_bytes=2 * 2**20, body_timeout=2.0)
    body, content_type = _multipart([(f"{i}.wav", encoded(voice(10.0, seed=i))) for i in range(5)])  # 1.6 MB
    with serving_in_thread(create_app(recognizer, settings), settings) as url:
        stalled = _connect(url)
        stalled.sendall(_headers("/predict/batch", len(body), content_type) + body[: len(body) // 2])
        time.sleep(0.3)
        other, other_type = _multipart([("a.wav", encoded(voice(25.0)))])  # 0.8 MB: over what is left
        busy = httpx.post(url + "/predict/batch", content=other, headers={"content-type": other_type}, timeout=30)
        assert_error(busy, 503, "for request bodies are held by other requests")
        assert busy.headers["retry-after"] == "5"
        status, answer = _read_answer(stalled)
        assert status == 408, answer
        stalled.close()
        again = httpx.post(url + "/predict/batch", content=other, headers={"content-type": other_type}, timeout=30)
        assert again.status_code == 200, again.text  # the stalled upload's share was given back


def _ws_until_closed(url: str, frames, settings_idle: float) -> tuple[int, str, list[dict]]:
    """Send the config then ``frames`` (seconds between, bytes) until the server closes: (code, reason, messages)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    messages = []
    with connect("ws" + url[4:] + "/stream", open_timeout=30) as ws:
        ws.send('{"sampling_rate": 16000, "dtype": "int16"}')
        messages.append(json.loads(ws.recv(timeout=30)))
        try:
            for pause, frame in frames:
                time.sleep(pause)
                ws.send(frame)
            while True:
                messages.append(json.loads(ws.recv(timeout=30)))
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason, messages


def test_a_stream_kept_alive_without_audio_is_closed(recognizer):
    settings = ServiceSettings(stream_idle_timeout=0.6, max_streams=1)
    with serving_in_thread(create_app(recognizer, settings), settings) as url:
        for frame in (b"", b"\x00\x00"):  # empty frames; one sample at a time
            code, reason, messages = _ws_until_closed(url, ((0.1, frame) for _ in range(400)), 0.6)
            assert code == 1008 and "no audio for 0.6 s" in reason, (code, reason)
            assert httpx.get(url + "/health", timeout=30).json()["streams"] == 0  # the slot was given back
        # Audio at real time or faster keeps a stream open however long it runs.
        chunk = (voice(0.2) * 32767).astype("<i2").tobytes()
        code, _, messages = _ws_until_closed(url, [*((0.1, chunk) for _ in range(15)), (0, '{"type": "end"}')], 0.6)
        assert code == 1000 and messages[-1] == {"type": "done", "seconds": pytest.approx(3.0)}


def test_a_stream_client_that_reads_nothing_loses_its_slot():
    from ser_hf.service import live

    class Stuck:
        async def send_text(self, text):
            await asyncio.sleep(3600)

    with pytest.raises(live._Close, match="read nothing for 0.05 s"):
        asyncio.run(live._send(Stuck(), {"type": "window"}, 0.05))


# --------------------------------------------------------------------------------------- 9. contract gaps


def test_an_oversized_chunked_multipart_upload_gets_413(recognizer):
    settings = ServiceSettings(max_upload_bytes=256 * 1024)
    body, content_type = _multipart([("big.wav", bytes(2 * settings.max_request_bytes()))])

    def chunks():  # no Content-Length: the limit is found while the multipart parser reads
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    with TestClient(create_app(recognizer, settings)) as client:
        for path in ("/predict", "/predict/batch"):
            response = client.post(path, content=chunks(), headers={"content-type": content_type})
            assert_error(response, 413, "more than", "bytes")  # before: 400 "error parsing the body"


@pytest.mark.parametrize("path", ["/predict/pcm?sampling_rate=16000", "/predict", "/predict/batch"])
def test_a_client_that_goes_away_mid_body_is_one_info_line(recognizer, caplog, path):
    app = create_app(recognizer, ServiceSettings())
    body, content_type = _multipart([("a.wav", encoded(voice(1.0)))])
    if path.startswith("/predict/pcm"):
        content_type = "application/octet-stream"
    messages = iter([{"type": "http.request", "body": body[:5000], "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    target, _, query = path.partition("?")
    scope = {"type": "http", "method": "POST", "path": target, "raw_path": target.encode(), "query_string":
             query.encode(), "headers": [(b"content-type", content_type.encode()), (b"host", b"x"),
                                         (b"content-length", str(len(body)).encode())],
             "http_version": "1.1", "scheme": "http", "server": ("x", 80), "client": ("c", 1), "root_path": "",
             "app": app}
    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # before: ClientDisconnect raised (an ERROR with a traceback)
    assert sent == []  # nobody to answer
    records = [r for r in caplog.records if r.name.startswith("ser_hf.service")]
    assert [r.levelname for r in records] == ["INFO"] and "went away after 5000 of" in records[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("text", "code", "fragment"), [
    ("[" * 2000 + "]" * 2000, 1003, "nested 2000 levels deep"),
    ('{"":' * 800 + "1" + "}" * 800, 1003, "nested 800 levels deep"),
    ('{"sampling_rate": 16000, "dtype": [[[[[[[[[["int16"]]]]]]]]]]}', 1003, "nested 11 levels deep"),
    ("[" * 200_000, 1008, "over the 4096-character limit"),
    ('{"sampling_rate": ' + "9" * 5000 + "}", 1008, "over the 4096-character limit"),
    ('{"sampling_rate": 16000, "dtype": ["int16"]}', 1003, "config 'dtype' must be one of"),
    ('{"sampling_rate": 16000, "dtype": {"int16": 1}}', 1003, "config 'dtype' must be one of"),
    ('{"sampling_rate": [16000], "window": {"s": 3}}', 1003, "config 'sampling_rate' must be an integer"),
])
def test_hostile_json_on_the_stream_closes_with_a_reason(recognizer, text, code, fragment):
    # Malformed messages are refused as the config and as a later command; config-shaped ones as the config.
    prefixes = [()] if "config" in fragment else [(), ('{"sampling_rate": 16000}',)]
    with TestClient(create_app(recognizer, ServiceSettings())) as client:
        for prefix in prefixes:
            with client.websocket_connect("/stream") as ws:
                for message in prefix:
                    ws.send_text(message)
                    assert ws.receive_json()["type"] == "ready"
                ws.send_text(text)
                error = ws.receive_json()
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
            assert error["type"] == "error" and fragment in error["detail"], error  # before: 1011
            assert closed.value.code == code and fragment in closed.value.reason


# ----------------------------------------------------------------------------------------- 10. access


def test_an_api_key_guards_every_endpoint_but_health_and_the_page(recognizer):
    wav = encoded(voice(0.5))
    with TestClient(create_app(recognizer, access=AccessPolicy(api_key=KEY))) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["api_key_required"] is True
        for path in ("/", "/static/app.js"):
            assert client.get(path).status_code == 200
        requests = [("GET", "/labels", {}), ("GET", "/docs", {}), ("GET", "/openapi.json", {}),
                    ("POST", "/predict", {"files": {"file": ("a.wav", wav)}}),
                    ("POST", f"/predict/pcm?sampling_rate={RATE}", {"content": wav[44:]}),
                    ("POST", "/predict/batch", {"files": [("files", ("a.wav", wav))]})]
        for method, path, kwargs in requests:
            denied = client.request(method, path, **kwargs)
            assert_error(denied, 401, "needs an API key", "Authorization: Bearer KEY")
            assert denied.headers["www-authenticate"] == "Bearer"
            assert_error(client.request(method, path, headers={"X-API-Key": KEY + "x"}, **kwargs), 401, "wrong")
            for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
                assert client.request(method, path, headers=headers, **kwargs).status_code == 200, path
        with client.websocket_connect("/stream") as ws:
            assert "needs an API key" in ws.receive_json()["detail"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1008
        for how in ({"headers": {"X-API-Key": KEY}}, {"subprotocols": ["ser-hf", "ser-hf.key.dGVzdC1rZXktMDEyMzQ1Njc4OQ"]}):
            with client.websocket_connect("/stream", **how) as ws:
                ws.send_text('{"sampling_rate": 16000}')
                assert ws.receive_json()["type"] == "ready"
                if "subprotocols" in how:
                    assert ws.accepted_subprotocol == "ser-hf"  # browsers need one of theirs selected


def test_browser_requests_from_other_origins_are_refused(recognizer):
    wav = encoded(voice(0.5))
    access = AccessPolicy(allowed_origins=("https://app.example.com/",))
    with TestClient(create_app(recognizer, access=access)) as client:
        evil = {"Origin": "https://evil.example"}
        assert_error(client.post("/predict", files={"file": ("a.wav", wav)}, headers=evil), 403,
                     "'https://evil.example' are not allowed")
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/stream", headers=evil):
            pass
        assert refused.value.code == 1008
        for origin in ("http://testserver", "https://app.example.com"):  # its own, and the allowed one
            ok = client.post("/predict", files={"file": ("a.wav", wav)}, headers={"Origin": origin})
            assert ok.status_code == 200, ok.text
            with client.websocket_connect("/stream", headers={"Origin": origin}) as ws:
                ws.send_text('{"sampling_rate": 16000}')
                assert ws.receive_json()["type"] == "ready"
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        preflight = client.options("/predict", headers={"Origin": "https://app.example.com",
                                                        "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "x-api-key"})
        assert preflight.status_code == 200 and "x-api-key" in preflight.headers["access-control-allow-headers"]
    with pytest.raises(SERError, match="is not an origin"):
        AccessPolicy(allowed_origins=("app.example.com",))


def test_api_key_sources_and_checks(tmp_path, monkeypatch):
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    assert resolve_api_key(api_key_file=key_file, environ={"SER_HF_API_KEY": "other-key-1234"}) == KEY
    assert resolve_api_key(environ={"SER_HF_API_KEY": KEY}) == KEY
    assert resolve_api_key("flag-key-1234", environ={"SER_HF_API_KEY": KEY}) == "flag-key-1234"
    assert resolve_api_key(environ={}) is None
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SERError, match="is empty"):
        resolve_api_key(api_key_file=tmp_path / "empty.txt")
    with pytest.raises(SERError, match="cannot be read"):
        resolve_api_key(api_key_file=tmp_path / "missing.txt")
    with pytest.raises(SERError, match="not both"):
        resolve_api_key("flag-key-1234", key_file)
    for bad in ("short", "with space 123", "é" * 10):
        with pytest.raises(SERError, match="8 to 256 printable ASCII"):
            AccessPolicy(api_key=bad)
    assert KEY not in repr(AccessPolicy(api_key=KEY))


def test_wrong_keys_are_limited_per_client_address(recognizer, caplog):
    access = AccessPolicy(api_key=KEY, max_key_failures=3, key_failure_window=60)
    app = create_app(recognizer, access=access)
    right, wrong = {"X-API-Key": KEY}, {"X-API-Key": KEY + "x"}
    with TestClient(app, client=("203.0.113.7", 4000)) as guesser, \
            TestClient(app, client=("198.51.100.2", 4001)) as user, caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert_error(guesser.get("/labels", headers=wrong), 401, "wrong")
        assert_error(guesser.get("/labels"), 401, "needs an API key")  # a missing key is not a guess
        assert guesser.get("/labels", headers=right).status_code == 200
        assert_error(guesser.get("/labels", headers={"Authorization": "Bearer nope-nope-nope"}), 401, "wrong")
        for headers in (wrong, right, {}):  # refused without the key being checked, even the right one
            refused = assert_error(guesser.get("/labels", headers=headers), 429,
                                   "too many wrong API keys from this address (3 within 60 s)")
            assert 55 <= int(guesser.get("/labels").headers["retry-after"]) <= 60, refused
        with guesser.websocket_connect("/stream", headers=right) as ws:
            assert "too many wrong API keys" in ws.receive_json()["detail"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1013
        assert guesser.get("/health").status_code == 200 and guesser.get("/").status_code == 200
        # Another address is not affected, its own wrong keys count for it alone, its success resets nothing.
        for _ in range(2):
            assert_error(user.get("/labels", headers=wrong), 401, "wrong")
        assert user.get("/labels", headers=right).status_code == 200
        assert user.post("/predict", files={"file": ("a.wav", encoded(voice(0.5)))}, headers=right).status_code == 200
        assert guesser.get("/labels", headers=right).status_code == 429
    warnings = [r.getMessage() for r in caplog.records if r.name == "ser_hf.service.access"]
    assert warnings == ["3 wrong API keys from 203.0.113.7 within 60 s: its requests get 429 for up to 60 s"]
    with TestClient(create_app(recognizer, access=AccessPolicy(api_key=KEY, max_key_failures=0))) as client:
        assert all(client.get("/labels", headers=wrong).status_code == 401 for _ in range(30))  # 0: no limit
    with TestClient(create_app(recognizer)) as client:  # no key: nothing to guess, nothing counted
        assert client.get("/labels", headers=wrong).status_code == 200


def test_the_key_failure_limiter_slides_forgets_and_is_bounded():
    from ser_hf.service.access import KeyFailureLimiter

    now = [0.0]
    limiter = KeyFailureLimiter(3, 10.0, max_clients=100, clock=lambda: now[0])
    assert [limiter.failed("a") for now[0] in (0.0, 1.0, 2.0)] == [False, False, True]
    assert limiter.retry_after("a") == 8.0 and limiter.retry_after("b") is None
    now[0] = 9.5
    assert limiter.retry_after("a") == 0.5
    now[0] = 10.0
    assert limiter.retry_after("a") is None  # the first failure left the window: one more try
    assert limiter.failed("a") is True and limiter.retry_after("a") == 1.0  # 1, 2, 10 are within 10 s
    for index in range(1000):  # addresses that fail once each: the oldest are forgotten
        limiter.failed(f"10.0.{index // 256}.{index % 256}")
    assert len(limiter) == 100 and limiter.retry_after("a") is None and "a" not in limiter._failures
    now[0] = 100.0
    limiter.failed("c")  # every earlier failure expired: dropped
    assert len(limiter) == 1
    with pytest.raises(SERError, match=r"--max-key-failures must be an integer from 0 to 1,000, got -1"):
        AccessPolicy(api_key=KEY, max_key_failures=-1)
    for window in (0, float("nan"), 1e9, "60"):
        with pytest.raises(SERError, match="--key-failure-window must be a number of seconds from 1 to 86,400"):
            AccessPolicy(api_key=KEY, key_failure_window=window)
    with pytest.raises(SERError, match="max_tracked_clients must be an integer"):
        AccessPolicy(max_tracked_clients=0)


def test_cli_serve_passes_access_and_limits(monkeypatch, checkpoint, tmp_path, capsys):
    captured = {}
    monkeypatch.setattr("ser_hf.service.server.serve", lambda model, **kw: captured.update(model=model, **kw))
    monkeypatch.setenv("SER_HF_API_KEY", KEY)
    assert main(["serve", "--model", str(checkpoint), "--allowed-origin", "https://a.example", "--allowed-origin",
                 "http://localhost:3000", "--body-timeout", "9", "--max-decode-mb", "64", "--max-connections",
                 "32"]) == 0
    access, settings = captured["access"], captured["settings"]
    assert access.api_key == KEY and access.allowed_origins == ("https://a.example", "http://localhost:3000")
    assert settings.body_timeout == 9 and settings.max_decoded_bytes == 64 * 2**20 and settings.max_connections == 32
    assert (access.max_key_failures, access.key_failure_window) == (10, 60.0)  # the defaults
    assert main(["serve", "--model", str(checkpoint), "--max-key-failures", "4", "--key-failure-window", "30"]) == 0
    assert (captured["access"].max_key_failures, captured["access"].key_failure_window) == (4, 30.0)
    assert main(["serve", "--model", str(checkpoint), "--key-failure-window", "0"]) == 2
    assert "--key-failure-window must be a number of seconds from 1" in capsys.readouterr().err
    assert main(["serve", "--model", str(checkpoint), "--api-key", "short"]) == 2
    assert "8 to 256 printable ASCII" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--api-key-file", "--allowed-origin", "SER_HF_API_KEY", "X-API-Key", "--body-timeout",
                 "--max-key-failures", "--key-failure-window"):
        assert flag in text


def test_serving_the_network_without_a_key_warns(monkeypatch, checkpoint, caplog):
    from ser_hf.service import server

    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    with caplog.at_level(logging.WARNING, logger="ser_hf.service.server"):
        server.serve(checkpoint, host="0.0.0.0")
        server.serve(checkpoint, host="192.168.1.20", access=AccessPolicy(api_key=KEY))
        server.serve(checkpoint, host="127.0.0.1")
        server.serve(checkpoint, host="::1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0.0.0.0 without an API key" in warnings[0]
