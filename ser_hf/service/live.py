"""The ``/stream`` WebSocket: live audio in, one JSON result per window out, as soon as it is complete.

Protocol (client -> server, then server -> client):

1. A text frame with a JSON object: ``{"sampling_rate": 48000, "dtype": "float32"}`` and optionally
   ``"channels"`` (default 1, interleaved), ``"window"`` / ``"hop"`` (seconds, default 3 / 1, the hop no longer
   than the window),
   ``"top_k"`` (null: all) and ``"vad_threshold_db"`` (default -40; null scores silent windows too). On a model trained
   with ``probe_speaker_adaptation``, one of ``"speaker": ID`` (a speaker enrolled with
   ``POST /speakers/{id}/enroll``: their offset, as enrolled when the stream starts, from the first window)
   or ``"adapt": true`` (the stream's own speaker, learnt online from its voiced windows, as
   ``recognizer.stream(adapt=True)``; the first windows, fewer than enrollment needs, get the global head).
   The server answers ``{"type": "ready", "labels", "sampling_rate", "window", "hop"}``, plus
   ``"speaker", "adapted"`` (and ``"reason"`` when not adapted) or ``"adapt": true``.
2. Binary frames of little-endian PCM samples, any length up to the frame limit. For every window
   completed the server sends ``{"type": "window", "start", "end", "label", "score", "scores"}``
   (silent windows are skipped), plus ``"adapted"`` with ``"speaker"`` or ``"adapt"``.
3. A text frame ``{"type": "end"}``: the server scores the end-aligned tail window, sends it, then
   ``{"type": "done", "seconds": received}`` and closes with code 1000.

On a bad message the server sends ``{"type": "error", "detail": ...}`` and closes with 1003 (unusable
data, JSON nested too deeply; a speaker who is not enrolled or cannot be scored by this server; ``speaker`` or
``adapt`` on a model without speaker adaptation, as ``POST /predict?speaker=`` refuses them with a 404 or 409), 1008 (a limit: stream length, a text message over 4096 characters, no audio
for ``stream_idle_timeout`` seconds, or a client that reads nothing; or no/a wrong API key), 1009 (a frame
too big), 1013 (too
many streams: retry later) or 1011 (a server bug). Only audio keeps a stream open, by its own length (see
:class:`IdleClock`): empty frames, pings and the time the server spends scoring do not. The stream's buffer holds at most one window (see
:class:`~ser_hf.inference.streaming.RecognizerStream`), and frames are read one at a time, so a client
sending faster than the model scores is slowed down by TCP rather than filling the server's memory.

Example (Python client with the ``websockets`` package):
    ```python
    >>> async with websockets.connect("ws://127.0.0.1:8000/stream") as ws:  # doctest: +SKIP
    ...     await ws.send(json.dumps({"sampling_rate": 16000, "dtype": "int16"}))
    ...     ready = json.loads(await ws.recv())
    ...     await ws.send(pcm_bytes)
    ...     await ws.send(json.dumps({"type": "end"}))
    ...     async for message in ws:
    ...         print(json.loads(message))

    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ser_hf.errors import AudioError, SERError
from ser_hf.inference.streaming import resolve_hop
from ser_hf.service.access import STREAM_PROTOCOL
from ser_hf.service.decoding import PCM_DTYPES, RequestError, check_rate, pcm_to_float
from ser_hf.service.runner import ModelRunner
from ser_hf.service.settings import ServiceSettings
from ser_hf.service.speakers import check_speaker_id, enrollments, registry_lock, speaker_fields, speaker_refusal

__all__ = ["MAX_TEXT_CHARS", "IdleClock", "StreamConfig", "parse_config", "serve_stream"]

logger = logging.getLogger(__name__)

# Seconds to deliver the closing error message and close frame to a client that may not be reading.
_CLOSE_TIMEOUT = 5.0

_CONFIG_KEYS = {"type", "sampling_rate", "dtype", "channels", "window", "hop", "top_k", "vad_threshold_db", "speaker",
                "adapt"}


class _Close(Exception):
    """End the stream: tell the client ``detail`` and close with ``code``."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


class StreamConfig:
    """The validated first message of a stream."""

    def __init__(self, sampling_rate: int, dtype: str, channels: int, window: float, hop: float,
                 top_k: int | None, vad_threshold_db: float | None, speaker: str | None = None,
                 adapt: bool = False) -> None:
        self.sampling_rate, self.dtype, self.channels = sampling_rate, dtype, channels
        self.window, self.hop, self.top_k, self.vad_threshold_db = window, hop, top_k, vad_threshold_db
        self.speaker, self.adapt = speaker, adapt


def _number(config: dict, key: str, default: Any, low: float, high: float, integer: bool = False,
            nullable: bool = False) -> Any:
    """``config[key]`` checked to lie in ``[low, high]`` (``default`` when absent); null only where ``nullable``."""
    value = config.get(key, default)
    if value is None and nullable:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        also = " or null" if nullable else ""
        raise _Close(1003, f"config {key!r} must be {kind} from {low:g} to {high:g}{also}, got "
                           f"{'null' if value is None else repr(value)[:80]}.")
    return value


#: Longest text message read as JSON (a config or the end command): a few hundred bytes in practice.
MAX_TEXT_CHARS = 4096


#: Deepest JSON nesting read: a config is one flat object.
MAX_NESTING = 4


def _nesting(text: str) -> int:
    """How deeply brackets nest in a JSON text (outside strings), found without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _json(text: str) -> Any:
    """Parse a text message, or None when it is not JSON. Too long, too deeply nested and integers of
    thousands of digits (which make the parser raise RecursionError or ValueError) are refused with reasons."""
    if len(text) > MAX_TEXT_CHARS:
        raise _Close(1008, f"a text message of {len(text)} characters is over the {MAX_TEXT_CHARS}-character limit; "
                           f"send the config or the end command alone.")
    depth = _nesting(text)
    if depth > MAX_NESTING:
        raise _Close(1003, f"the text message is JSON nested {depth} levels deep; send a flat JSON object like "
                           '{"sampling_rate": 48000}.')
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
    except RecursionError:
        raise _Close(1003, "the text message is JSON nested too deeply; send a flat JSON object like "
                           '{"sampling_rate": 48000}.') from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise _Close(1003, f"the text message is not usable JSON ({str(err)[:80]}); send a flat JSON object like "
                           '{"sampling_rate": 48000}.') from None


def parse_config(text: str) -> StreamConfig:
    """Validate the first (text) message of a stream.

    Raises:
        _Close: 1003 with a message naming the key, the expected value and what was found (1008 for a
            message over :data:`MAX_TEXT_CHARS`).
    """
    config = _json(text)
    if not isinstance(config, dict):
        raise _Close(1003, 'the first message must be a JSON object like {"sampling_rate": 48000, "dtype": "float32"}.')
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise _Close(1003, f"unknown config keys {unknown}; expected some of {sorted(_CONFIG_KEYS - {'type'})}.")
    if "sampling_rate" not in config:
        raise _Close(1003, 'config needs "sampling_rate" (Hz of the PCM you will send), e.g. {"sampling_rate": 48000}.')
    rate = _number(config, "sampling_rate", None, 1, 10**9, integer=True)
    try:
        check_rate(rate, "the stream")
    except RequestError as err:
        raise _Close(1003, err.detail) from None
    dtype = config.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in PCM_DTYPES:  # a list or object here is unhashable
        raise _Close(1003, f"config 'dtype' must be one of {sorted(PCM_DTYPES)} (little-endian), got {dtype!r}.")
    channels = _number(config, "channels", 1, 1, 8, integer=True)
    window = _number(config, "window", 3.0, 0.5, 30.0)
    hop = _number(config, "hop", resolve_hop(window, None), 0.1, window)
    top_k = _number(config, "top_k", None, 1, 1000, integer=True, nullable=True)  # null: every emotion
    vad = _number(config, "vad_threshold_db", -40.0, -200.0, 0.0, nullable=True)  # null: no silence gating
    speaker, adapt = _speaker_config(config)
    return StreamConfig(rate, dtype, channels, float(window), float(hop), top_k, vad, speaker, adapt)


def _speaker_config(config: dict) -> tuple[str | None, bool]:
    """The ``speaker`` and ``adapt`` keys, checked for shape; whether the model and speaker allow them is checked
    when the stream opens (:func:`_speaker_mode`)."""
    speaker, adapt = config.get("speaker"), config.get("adapt", False)
    if speaker is not None:
        if not isinstance(speaker, str):
            raise _Close(1003, f"config 'speaker' must be the id of an enrolled speaker (a string), got {speaker!r}.")
        try:
            check_speaker_id(speaker)
        except RequestError as err:
            raise _Close(1003, f"config 'speaker': {err.detail}") from None
    if not isinstance(adapt, bool):
        raise _Close(1003, f"config 'adapt' must be true or false, got {adapt!r}.")
    if adapt and speaker is not None:
        raise _Close(1003, f"config 'speaker' ({speaker!r}) and 'adapt' cannot be combined: 'speaker' scores with an "
                           f"enrolled speaker's offset from the first window, 'adapt' learns the stream's own speaker "
                           f"online. Send one of them.")
    return speaker, adapt


def _speaker_mode(config: StreamConfig, recognizer: Any) -> dict[str, Any]:
    """What the ready message says about speaker adaptation; 1003 for an unknown speaker or a model without it."""
    try:
        if config.speaker is not None:
            return speaker_fields(recognizer, config.speaker)
        if config.adapt:
            enrollments(recognizer)
            return {"adapt": True}
    except RequestError as err:  # the same words as POST /predict?speaker= (its 404 / 409)
        raise _Close(1003, err.detail) from None
    return {}


async def _send(ws: WebSocket, message: dict[str, Any], timeout: float) -> None:
    # Strict JSON (send_json would write a NaN as the bare word NaN, which JSON parsers reject): a non-finite
    # number here is a server bug, reported as such (1011) instead of reaching the client.
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:  # a client that stops reading fills the socket's buffer: it may not hold its stream slot for that
        await asyncio.wait_for(ws.send_text(text), timeout)
    except asyncio.TimeoutError:
        raise _Close(1008, f"the client read nothing for {timeout:g} s; the stream was closed.") from None


class IdleClock:
    """How long a stream may still wait for audio: audio keeps it open, by its own length.

    An allowance of ``limit`` seconds drains while the server waits for the client (not while it scores) and
    is refilled by the seconds of audio received, up to ``limit``. A live microphone (one second of audio per
    second) keeps it full; a paused client, empty frames, one sample now and then, text or pings drain it.

    Args:
        limit: The allowance in seconds (``stream_idle_timeout``).
    """

    def __init__(self, limit: float) -> None:
        self.limit = self.left = limit

    def waited(self, seconds: float) -> None:
        self.left -= seconds

    def audio(self, seconds: float) -> None:
        self.left = min(self.limit, self.left + seconds)


async def _receive(ws: WebSocket, settings: ServiceSettings, clock: IdleClock) -> dict | None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        message = await asyncio.wait_for(ws.receive(), max(0.0, clock.left))
    except asyncio.TimeoutError:
        raise _Close(1008, f"no audio for {settings.stream_idle_timeout:g} s (empty frames do not count); the stream "
                           f"was closed as idle.") from None
    finally:
        clock.waited(loop.time() - start)
    return None if message["type"] == "websocket.disconnect" else message


def _open_stream(config: StreamConfig, recognizer: Any) -> tuple[dict[str, Any], Any]:
    """The ready message's speaker fields and the recognizer's stream; 1003 for what the library refuses."""
    mode = _speaker_mode(config, recognizer)  # 1003 for a model without adaptation or a speaker not enrolled
    # The speaker's enrollment is read in one locked step with the check: no enrollment or eviction in between.
    guard = registry_lock(recognizer.enrollments) if config.speaker is not None else contextlib.nullcontext()
    try:
        with guard:
            mode = _speaker_mode(config, recognizer)
            return mode, recognizer.stream(window=config.window, hop=config.hop,
                                           vad_threshold_db=config.vad_threshold_db, top_k=config.top_k,
                                           sampling_rate=config.sampling_rate, adapt=config.adapt,
                                           speaker=config.speaker)
    except SERError as err:  # e.g. a speaker enrolled without this server's test-time copies
        if config.speaker is None:
            raise _Close(1003, str(err)) from None
        try:
            detail = speaker_refusal(recognizer, config.speaker, err).detail
        except RequestError as refusal:  # forgotten meanwhile: the 404's words
            detail = refusal.detail
        raise _Close(1003, detail) from None


async def _stream_audio(ws: WebSocket, config: StreamConfig, recognizer: Any, runner: ModelRunner,
                        settings: ServiceSettings, clock: IdleClock) -> None:
    mode, stream = _open_stream(config, recognizer)
    timeout = settings.stream_idle_timeout
    await _send(ws, {"type": "ready", "labels": recognizer.labels, "sampling_rate": recognizer.sampling_rate,
                     "window": config.window, "hop": config.hop, **mode}, timeout)
    received = 0
    while (message := await _receive(ws, settings, clock)) is not None:
        if message.get("bytes") is not None:
            data = message["bytes"]
            if len(data) > settings.max_frame_bytes:
                raise _Close(1009, f"a frame of {len(data)} bytes is over the {settings.max_frame_bytes}-byte limit; "
                                   f"send smaller chunks (e.g. 100 ms of audio).")
            try:
                chunk = pcm_to_float(data, config.dtype, config.channels, "a binary frame")
            except RequestError as err:
                raise _Close(1003, err.detail) from None
            received += chunk.size
            clock.audio(chunk.size / config.sampling_rate)
            if received / config.sampling_rate > settings.max_stream_seconds:
                raise _Close(1008, f"the stream passed the {settings.max_stream_seconds:g}-second limit; start a new one.")
            try:
                results = await runner.call(stream.push, chunk)
            except AudioError as err:  # also a window whose model output was not finite (result() refuses it)
                raise _Close(1003, str(err)) from None
            for result in results:
                await _send(ws, {"type": "window", **result}, timeout)
            continue
        text = message.get("text") or ""
        command = _json(text)
        if command != {"type": "end"}:
            raise _Close(1003, f'expected binary PCM frames or the text {{"type": "end"}}, got text {text[:80]!r}.')
        # Audio shorter than the model's minimum would fail in the encoder: end without a tail window.
        too_short = received < settings.min_duration * config.sampling_rate
        try:
            results = [] if too_short else await runner.call(stream.flush)
        except AudioError as err:
            raise _Close(1003, str(err)) from None
        for result in results:
            await _send(ws, {"type": "window", **result}, timeout)
        await _send(ws, {"type": "done", "seconds": received / config.sampling_rate}, timeout)
        await ws.close(1000)
        return


async def serve_stream(ws: WebSocket, recognizer: Any, runner: ModelRunner, settings: ServiceSettings,
                       state: dict[str, int]) -> None:
    """Run one ``/stream`` connection to its end (see the module docstring for the protocol).

    Args:
        ws: The connection (not yet accepted).
        recognizer: The shared recognizer.
        runner: Where model calls run.
        settings: Limits (``max_streams``, ``max_frame_bytes``, ``max_stream_seconds``, ``stream_idle_timeout``).
        state: Shared counters; ``state["streams"]`` counts open streams.
    """
    # The web page offers the "ser-hf" subprotocol (next to its key, see ser_hf.service.access): a browser
    # fails the handshake unless the server selects one of those it offered.
    await ws.accept(subprotocol=STREAM_PROTOCOL if STREAM_PROTOCOL in ws.scope.get("subprotocols", []) else None)
    if state["streams"] >= settings.max_streams:
        await _close(ws, 1013, f"{state['streams']} live streams are open, the limit is {settings.max_streams}; "
                               f"retry later.")
        return
    state["streams"] += 1
    clock = IdleClock(settings.stream_idle_timeout)
    try:
        first = await _receive(ws, settings, clock)
        if first is None:
            return
        if first.get("text") is None:
            raise _Close(1003, 'the first message must be a text JSON config like {"sampling_rate": 48000}.')
        await _stream_audio(ws, parse_config(first["text"]), recognizer, runner, settings, clock)
    except _Close as close:
        await _close(ws, close.code, close.detail)
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("live stream failed")
        await _close(ws, 1011, "internal server error; the failure was logged on the server.")
        raise
    finally:
        state["streams"] -= 1


async def _close(ws: WebSocket, code: int, detail: str) -> None:
    if ws.application_state != WebSocketState.CONNECTED or ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        await _send(ws, {"type": "error", "detail": detail}, _CLOSE_TIMEOUT)
        # A close reason is limited to 123 bytes; the full message went in the error frame.
        await asyncio.wait_for(ws.close(code, reason=detail.encode()[:120].decode(errors="ignore")), _CLOSE_TIMEOUT)
    except (WebSocketDisconnect, RuntimeError, _Close, asyncio.TimeoutError):
        pass  # the client left first, or reads nothing: uvicorn's ping timeout ends the connection
