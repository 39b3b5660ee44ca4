r"""Slow and stalling clients, for load tests: connections that try to hold the service without using it.

Each kind reconnects as soon as the server drops it, for as long as the load runs, so the server meets
a steady crowd of them next to the ordinary clients of :func:`ser_hf.service.loadtest.run_load`:

| kind              | what it does                                                                     | expected end           |
|-------------------|----------------------------------------------------------------------------------|------------------------|
| ``idle``          | connects and sends nothing                                                       | closed (header timeout)|
| ``half_headers``  | sends half a request line and headers, then nothing                               | closed (header timeout)|
| ``slow_pcm_body`` | ``POST /predict/pcm`` headers for 1 s of audio, then 16 bytes every 0.5 s         | 408 (body timeout)*    |
| ``stalled_batch`` | ``POST /predict/batch`` of 4 MB (declared), half of it sent at once, then nothing  | 408 (body timeout)     |
| ``ws_empty``      | opens ``/stream``, sends its config, then an empty binary frame every 0.2 s       | close 1008 (no audio)  |

\* A client that is still sending when the server answers 408 and closes may instead see ``"reset"``: the
kernel answers bytes that reach a closed socket with a TCP RST, which can discard the 408 before it is
read. Both mean the server ended the connection; an answer that was read before the reset is reported.

Example:
    ```python
    >>> from ser_hf.service.loadtest import mixed_cases, run_load
    >>> report = run_load(url, mixed_cases(2**18, 12), clients=8, requests_per_client=50,  # doctest: +SKIP
    ...                   slow_clients={"idle": 60, "half_headers": 30, "slow_pcm_body": 8})
    >>> report.slow_summary()["idle"]["ended_by_server"]  # doctest: +SKIP
    412

    ```
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SLOW_KINDS", "run_slow_clients"]

SLOW_KINDS = ("idle", "half_headers", "slow_pcm_body", "stalled_batch", "ws_empty")

_BOUNDARY = "slowclientboundary"


def _opening(kind: str) -> tuple[bytes, bytes | None]:
    """What a raw-socket kind sends first, and what it trickles afterwards (None: nothing)."""
    if kind == "idle":
        return b"", None
    if kind == "half_headers":
        return b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le", None
    if kind == "slow_pcm_body":
        head = b"POST /predict/pcm?sampling_rate=16000 HTTP/1.1\r\nHost: x\r\nContent-Length: 32000\r\n\r\n"
        return head, bytes(16)
    if kind == "stalled_batch":
        size = 4 * 10**6
        head = (f"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={_BOUNDARY}"
                f"\r\nContent-Length: {size}\r\n\r\n--{_BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
        return head + bytes(size // 2), None
    raise ValueError(f"unknown slow client kind {kind!r}; expected one of {SLOW_KINDS}")


def _answer(data: bytes) -> str:
    """``"408"`` for an HTTP answer, ``"closed"`` for a connection closed without one."""
    if not data:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode("ascii", "replace") if len(parts) > 1 and data.startswith(b"HTTP/") else "garbage"


async def _raw_once(host: str, port: int, kind: str, stop: asyncio.Event, tick: float) -> str:
    opening, trickle = _opening(kind)
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    try:
        if opening:
            writer.write(opening)
            await writer.drain()
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(65536), tick)
            except asyncio.TimeoutError:
                if trickle is not None:
                    writer.write(trickle)
                    await writer.drain()
                continue
            if not chunk:
                return _answer(received)
            received += chunk
        return "open at the end"
    except (ConnectionError, OSError):
        # The server's answer may have arrived before the RST that its close provoked.
        return _answer(received) if received else "reset"
    finally:
        writer.close()


async def _ws_once(url: str, stop: asyncio.Event, tick: float) -> str:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    try:
        async with connect(url + "/stream", open_timeout=30, close_timeout=5) as ws:
            await ws.send(json.dumps({"sampling_rate": 16000, "dtype": "int16"}))
            while not stop.is_set():
                await ws.send(b"")
                try:
                    await asyncio.wait_for(ws.recv(), tick)
                except asyncio.TimeoutError:
                    pass
            return "open at the end"
    except ConnectionClosed as closed:
        return f"close {closed.rcvd.code if closed.rcvd else 'none'}"
    except (OSError, asyncio.TimeoutError) as err:
        return f"failed: {type(err).__name__}"


async def _attacker(url: str, kind: str, stop: asyncio.Event, record: Callable[[str, float, str], None]) -> None:
    parts = urlsplit(url)
    while not stop.is_set():
        start = time.perf_counter()
        try:
            if kind == "ws_empty":
                answer = await _ws_once("ws" + url[len("http"):], stop, 0.2)
            else:
                answer = await _raw_once(parts.hostname, parts.port, kind, stop, 0.5)
        except OSError as err:  # refused to connect: wait a little, as a real client would
            answer = f"connect failed: {type(err).__name__}"
            await asyncio.sleep(0.5)
        record(kind, time.perf_counter() - start, answer)


async def run_slow_clients(url: str, counts: dict[str, int], stop: asyncio.Event,
                           record: Callable[[str, float, str], None]) -> None:
    """Keep ``counts[kind]`` clients of each kind connected to ``url`` until ``stop`` is set.

    Args:
        url: The server's base URL.
        counts: How many of each :data:`SLOW_KINDS` at once.
        stop: Set it to end them (each then reports ``"open at the end"`` if the server had not dropped it).
        record: Called with ``(kind, seconds held, answer)`` for every connection that ended.
    """
    unknown = sorted(set(counts) - set(SLOW_KINDS))
    if unknown:
        raise ValueError(f"unknown slow client kinds {unknown}; expected some of {list(SLOW_KINDS)}")
    await asyncio.gather(*(_attacker(url, kind, stop, record) for kind, n in counts.items() for _ in range(n)))


def summarise(records: list[tuple[str, float, str]]) -> dict[str, Any]:
    """Per kind: connections, how many the server ended, their answers, and the longest hold (seconds)."""
    out: dict[str, Any] = {}
    for kind, held, answer in records:
        entry = out.setdefault(kind, {"connections": 0, "ended_by_server": 0, "answers": {}, "max_held_s": 0.0})
        entry["connections"] += 1
        entry["answers"][answer] = entry["answers"].get(answer, 0) + 1
        if answer != "open at the end":
            entry["ended_by_server"] += 1
            entry["max_held_s"] = round(max(entry["max_held_s"], held), 2)
    return out
