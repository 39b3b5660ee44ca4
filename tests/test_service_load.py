"""The service under load, on loopback: 8 concurrent clients x 200 requests mixing valid and invalid input.

A real ``ser-hf serve`` child process with a tiny model: no 5xx, every invalid request gets its 4xx,
every valid one a 200, and the server's memory stays flat once warmed up. Latency figures of the same
run (and with a real Whisper encoder) are recorded by ``benchmarks/service_latency.py``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'ser-hf[serve]'")
pytest.importorskip("psutil", reason="memory is sampled with psutil (serve extra)")

from ser_hf.service.loadtest import mixed_cases, run_load  # noqa: E402
from ser_hf.service.testing import running_server  # noqa: E402
from ser_hf.testing.models import tiny_classifier  # noqa: E402

FOUR = ["neutral", "happy", "sad", "angry"]
MAX_UPLOAD = 256 * 1024
MAX_DURATION = 12.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    checkpoint = tiny_classifier("wav2vec2", tmp, FOUR)
    flags = ("--max-upload-mb", str(MAX_UPLOAD / 2**20), "--max-duration", str(MAX_DURATION), "--max-concurrent", "8")
    # One torch thread: the 2 cores are shared by the server, the 8 clients and other work.
    with running_server(checkpoint, *flags, env={"OMP_NUM_THREADS": "1"}) as server:
        yield server


def test_8_clients_x_200_mixed_requests(server):
    cases = mixed_cases(MAX_UPLOAD, MAX_DURATION)
    assert sum(c.valid for c in cases) >= 7 and sum(not c.valid for c in cases) >= 12
    report = run_load(server.url, cases, clients=8, requests_per_client=200, server_pid=server.pid)
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    assert summary["requests"] == 1600
    assert report.server_errors == [], report.server_errors[:5]
    assert report.unexpected == [], report.unexpected[:10]
    names = {name for name, *_ in report.results}
    assert names == {case.name for case in cases}  # every kind of request was sent, valid and invalid
    # Memory: after the first quarter (allocator pools, lazy imports, caches), growth stays small.
    assert report.rss_growth() < 48 * 2**20, summary
    assert "Traceback" not in server.output()


SLOW_CLIENTS = {"idle": 60, "half_headers": 30, "slow_pcm_body": 8, "stalled_batch": 2, "ws_empty": 4}


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    checkpoint = tiny_classifier("wav2vec2", tmp, FOUR)
    flags = ("--max-upload-mb", str(MAX_UPLOAD / 2**20), "--max-duration", str(MAX_DURATION), "--max-concurrent", "8",
             "--header-timeout", "2", "--body-timeout", "2", "--stream-idle-timeout", "2")
    with running_server(checkpoint, *flags, env={"OMP_NUM_THREADS": "1"}) as server:
        yield server


def test_8_clients_beside_100_slow_and_stalled_connections(guarded_server):
    """Before: 8 slow PCM bodies took every model slot, ~90 idle connections made every answer a plain-text 503,
    a stalled batch held its temporary file, a stream fed empty frames held its slot forever."""
    cases = mixed_cases(MAX_UPLOAD, MAX_DURATION)
    report = run_load(guarded_server.url, cases, clients=8, requests_per_client=120, server_pid=guarded_server.pid,
                      slow_clients=SLOW_CLIENTS)
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    assert report.server_errors == [], report.server_errors[:5]
    assert report.unexpected == [], report.unexpected[:10]  # /health and every valid request answered as usual
    slow = summary["slow_clients"]
    assert set(slow) == set(SLOW_CLIENTS)
    expected = {"idle": "closed", "half_headers": "closed", "slow_pcm_body": "408", "stalled_batch": "408",
                "ws_empty": "close 1008"}
    for kind, answer in expected.items():
        # Every kind was dropped by the server, again and again while the load ran, with its documented answer.
        ended = slow[kind]["answers"].get(answer, 0)
        assert ended >= SLOW_CLIENTS[kind], (kind, slow[kind])
        # A body sender may meet the RST that the server's close provokes instead of reading its 408 (TCP).
        allowed = {answer, "open at the end"} | ({"reset"} if answer == "408" else set())
        assert set(slow[kind]["answers"]) <= allowed, (kind, slow[kind])
    log = guarded_server.output()
    assert "Traceback" not in log and "ERROR" not in log
