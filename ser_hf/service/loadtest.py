"""A load generator for the service: concurrent clients sending a mix of valid and invalid requests.

Each of ``clients`` clients (one ``httpx.AsyncClient`` each, all in one event loop) sends
``requests_per_client`` requests one after another, cycling through the :class:`LoadCase` list from a
different starting point, so every kind of request is in flight at once with every other kind. Every
response is checked against the status its case expects; latencies are recorded per request, and the
server's resident memory is sampled while the load runs.

:func:`mixed_cases` builds the standard mix (valid uploads, PCM, batches, timelines, health checks,
and a dozen kinds of bad request) from a server's limits. With ``slow_clients``, a crowd of idle,
half-sent, slow and stalled connections (:mod:`ser_hf.service.slowclients`) runs beside them.
``tests/test_service_load.py`` asserts on the :class:`LoadReport`; ``benchmarks/service_latency.py``
records it.

Example:
    ```python
    >>> from ser_hf.service.loadtest import mixed_cases, run_load
    >>> report = run_load("http://127.0.0.1:8000", mixed_cases(max_upload_bytes=2**18, max_duration=12),
    ...                   clients=8, requests_per_client=200, server_pid=pid)  # doctest: +SKIP
    >>> report.unexpected, report.summary()["latency_ms"]["p95"]  # doctest: +SKIP
    ([], 41.3)

    ```
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

__all__ = ["LoadCase", "LoadReport", "mixed_cases", "run_load", "valid_cases"]

RATE = 16000


@dataclass(frozen=True)
class LoadCase:
    """One kind of request and the status it must get.

    Args:
        name: Short identifier (appears in the report).
        method: ``"GET"`` or ``"POST"``.
        path: Path and query, e.g. ``"/predict?top_k=2"``.
        request: Extra ``httpx`` request arguments (``files``, ``content``, ``headers``, ``params``).
        expect: The HTTP status the server must answer.
    """

    name: str
    method: str
    path: str
    request: dict[str, Any]
    expect: int

    @property
    def valid(self) -> bool:
        return self.expect < 400


def _voice(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def _wav(wave: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _file(name: str, data: bytes) -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/octet-stream")}}


def _pcm(data: bytes) -> dict[str, Any]:
    return {"content": data, "headers": {"content-type": "application/octet-stream"}}


def valid_cases(clip_seconds: float = 3.0) -> list[LoadCase]:
    """Valid single-clip requests only (a WAV upload and a PCM body of ``clip_seconds``), for latency figures."""
    wave = _voice(clip_seconds)
    return [
        LoadCase("wav", "POST", "/predict", _file("clip.wav", _wav(wave)), 200),
        LoadCase("pcm_int16", "POST", f"/predict/pcm?sampling_rate={RATE}&dtype=int16",
                 _pcm((wave * 32767).astype("<i2").tobytes()), 200),
    ]


def mixed_cases(max_upload_bytes: int, max_duration: float) -> list[LoadCase]:
    """Valid and invalid requests in about equal numbers, sized for a server with these limits.

    Args:
        max_upload_bytes: The server's ``--max-upload-mb`` in bytes (the oversized cases exceed it).
        max_duration: The server's ``--max-duration`` (the too-long case exceeds it; must be above 3 s).
    """
    clip = _wav(_voice(0.5))
    long_wave = _voice(max_duration + 1.0, rate=8000)
    nan = _voice(0.5).astype("<f4")
    nan[100] = np.nan
    batch = {"files": [("files", ("a.wav", clip, "audio/wav")), ("files", ("b.wav", _wav(_voice(0.8, seed=1)), "a"))]}
    bad_batch = {"files": [("files", ("a.wav", clip, "audio/wav")), ("files", ("b.txt", b"text, not audio", "a"))]}
    pcm = (_voice(0.5) * 32767).astype("<i2").tobytes()
    return [
        # valid
        LoadCase("wav", "POST", "/predict", _file("clip.wav", clip), 200),
        LoadCase("wav_top_k", "POST", "/predict?top_k=2", _file("clip.wav", _wav(_voice(0.7, seed=2))), 200),
        LoadCase("flac_44k", "POST", "/predict", {"files": {"file": ("cd.flac", _flac(_voice(0.5, 44100), 44100), "a")}},
                 200),
        LoadCase("pcm_int16", "POST", f"/predict/pcm?sampling_rate={RATE}", _pcm(pcm), 200),
        LoadCase("timeline", "POST", "/predict?timeline=true&window=1&hop=1", _file("t.wav", _wav(_voice(3.0))), 200),
        LoadCase("batch", "POST", "/predict/batch", batch, 200),
        LoadCase("health", "GET", "/health", {}, 200),
        # invalid
        LoadCase("empty", "POST", "/predict", _file("empty.wav", b""), 400),
        LoadCase("text", "POST", "/predict", _file("notes.txt", b"speaker 3, angry\n" * 20), 415),
        LoadCase("truncated_header", "POST", "/predict", _file("cut.wav", clip[:20]), 415),
        LoadCase("too_short", "POST", "/predict", _file("short.wav", _wav(_voice(0.02))), 422),
        LoadCase("too_long", "POST", "/predict", _file("long.wav", _wav(long_wave, 8000)), 413),
        LoadCase("too_big_file", "POST", "/predict", _file("big.wav", b"RIFF" + bytes(max_upload_bytes)), 413),
        LoadCase("too_big_body", "POST", f"/predict/pcm?sampling_rate={RATE}", _pcm(bytes(2 * max_upload_bytes + 2**17)),
                 413),
        LoadCase("nan_pcm", "POST", f"/predict/pcm?sampling_rate={RATE}&dtype=float32", _pcm(nan.tobytes()), 422),
        LoadCase("odd_pcm", "POST", f"/predict/pcm?sampling_rate={RATE}", _pcm(pcm[:-1]), 422),
        LoadCase("bad_dtype", "POST", f"/predict/pcm?sampling_rate={RATE}&dtype=int8", _pcm(pcm), 422),
        LoadCase("no_rate", "POST", "/predict/pcm", _pcm(pcm), 422),
        LoadCase("missing_file", "POST", "/predict", {"data": {"path": "/etc/passwd"}}, 422),
        LoadCase("bad_top_k", "POST", "/predict?top_k=0", _file("clip.wav", clip), 422),
        LoadCase("bad_batch", "POST", "/predict/batch", bad_batch, 415),
    ]


def _flac(wave: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="FLAC")
    return buffer.getvalue()


@dataclass
class LoadReport:
    """What :func:`run_load` measured.

    Attributes:
        results: ``(case name, expected status, status or error text, latency in seconds)`` per request.
        wall_seconds: Time from the first request to the last response.
        rss: ``(requests completed, server RSS in bytes)`` samples taken while the load ran.
        peak_rss: The server's peak RSS (``VmHWM``) at the end, if known.
        slow: ``(kind, seconds held, answer)`` per connection of the slow clients, if any ran.
    """

    results: list[tuple[str, int, int | str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    rss: list[tuple[int, int]] = field(default_factory=list)
    peak_rss: int | None = None
    slow: list[tuple[str, float, str]] = field(default_factory=list)

    def slow_summary(self) -> dict[str, Any]:
        """Per slow-client kind (see :mod:`ser_hf.service.slowclients`): connections, answers, longest hold."""
        from ser_hf.service.slowclients import summarise

        return summarise(self.slow)

    @property
    def unexpected(self) -> list[tuple[str, int, int | str]]:
        """``(case, expected, got)`` for every response whose status differs from the expected one."""
        return [(name, expect, got) for name, expect, got, _ in self.results if got != expect]

    @property
    def server_errors(self) -> list[tuple[str, int | str]]:
        """``(case, got)`` for every 5xx or failed connection."""
        return [(name, got) for name, _, got, _ in self.results if not isinstance(got, int) or got >= 500]

    def rss_growth(self, warmup_fraction: float = 0.25) -> int:
        """RSS at the end minus RSS once ``warmup_fraction`` of the requests were done (bytes)."""
        if not self.rss:
            return 0
        threshold = warmup_fraction * len(self.results)
        after_warmup = next((rss for done, rss in self.rss if done >= threshold), self.rss[0][1])
        return self.rss[-1][1] - after_warmup

    def summary(self) -> dict[str, Any]:
        """Counts, requests/s, latency percentiles (all, valid, invalid) and memory, JSON-ready."""
        def percentiles(latencies: list[float]) -> dict[str, float]:
            if not latencies:
                return {}
            ms = np.asarray(latencies) * 1000
            return {"p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
                    "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1)}

        valid = [latency for _, expect, _, latency in self.results if expect < 400]
        invalid = [latency for _, expect, _, latency in self.results if expect >= 400]
        mib = 2**20
        return {
            "requests": len(self.results),
            "valid_requests": len(valid),
            "invalid_requests": len(invalid),
            "wall_seconds": round(self.wall_seconds, 2),
            "requests_per_second": round(len(self.results) / self.wall_seconds, 1) if self.wall_seconds else None,
            "latency_ms": percentiles([latency for *_, latency in self.results]),
            "latency_ms_valid": percentiles(valid),
            "latency_ms_invalid": percentiles(invalid),
            "statuses": dict(sorted(Counter(str(got) for _, _, got, _ in self.results).items())),
            "unexpected": len(self.unexpected),
            "server_errors": len(self.server_errors),
            "rss_mib_start": round(self.rss[0][1] / mib, 1) if self.rss else None,
            "rss_mib_end": round(self.rss[-1][1] / mib, 1) if self.rss else None,
            "rss_mib_growth_after_warmup": round(self.rss_growth() / mib, 1),
            "peak_rss_mib": round(self.peak_rss / mib, 1) if self.peak_rss else None,
            **({"slow_clients": self.slow_summary()} if self.slow else {}),
        }


async def _client(url: str, cases: list[LoadCase], offset: int, count: int, report: LoadReport,
                  timeout: float) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        for i in range(count):
            case = cases[(offset + i) % len(cases)]
            start = time.perf_counter()
            try:
                response = await client.request(case.method, case.path, **case.request)
                got: int | str = response.status_code
            except httpx.HTTPError as err:
                got = f"{type(err).__name__}: {err}"
            report.results.append((case.name, case.expect, got, time.perf_counter() - start))


async def _sample_rss(pid: int, report: LoadReport, every: float, stop: asyncio.Event) -> None:
    import psutil

    process = psutil.Process(pid)
    while not stop.is_set():
        report.rss.append((len(report.results), process.memory_info().rss))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass
    report.rss.append((len(report.results), process.memory_info().rss))


async def _run(url: str, cases: list[LoadCase], clients: int, requests_per_client: int, server_pid: int | None,
               timeout: float, sample_every: float, slow_clients: dict[str, int] | None) -> LoadReport:
    from ser_hf.service.slowclients import run_slow_clients
    from ser_hf.service.testing import peak_rss_bytes

    report = LoadReport()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server_pid, report, sample_every, stop)) if server_pid else None
    slow = (asyncio.create_task(run_slow_clients(url, slow_clients, stop, lambda *r: report.slow.append(r)))
            if slow_clients else None)
    if slow is not None:
        await asyncio.sleep(1.0)  # the slow clients settle in before the ordinary ones start
    start = time.perf_counter()
    # Client k starts k/clients of the way through the cases: all kinds of request overlap from the start.
    await asyncio.gather(*(_client(url, cases, k * len(cases) // clients, requests_per_client, report, timeout)
                           for k in range(clients)))
    report.wall_seconds = time.perf_counter() - start
    stop.set()
    if slow is not None:
        await slow
    if sampler is not None:
        await sampler
        report.peak_rss = peak_rss_bytes(server_pid)
    return report


def run_load(url: str, cases: list[LoadCase], clients: int = 8, requests_per_client: int = 200,
             server_pid: int | None = None, timeout: float = 60.0, sample_every: float = 0.25,
             warmup: Callable[[], None] | None = None, slow_clients: dict[str, int] | None = None) -> LoadReport:
    """Send ``clients`` x ``requests_per_client`` requests concurrently and report what came back.

    Args:
        url: The server's base URL (``http://127.0.0.1:PORT``).
        cases: The requests to cycle through (see :func:`mixed_cases`, :func:`valid_cases`).
        clients: Concurrent clients.
        requests_per_client: Requests each client sends, one after another.
        server_pid: The server's process id, to sample its memory (None: no memory figures).
        timeout: Seconds a single request may take before it counts as failed.
        sample_every: Seconds between memory samples.
        warmup: Called before the load starts (e.g. to send a first request that loads lazy code).
        slow_clients: How many slow clients of each kind (:data:`ser_hf.service.slowclients.SLOW_KINDS`) stay
            connected while the load runs, reconnecting whenever the server drops them (None: none).

    Returns:
        A :class:`LoadReport`.
    """
    if warmup is not None:
        warmup()
    return asyncio.run(_run(url, cases, clients, requests_per_client, server_pid, timeout, sample_every,
                            slow_clients))
