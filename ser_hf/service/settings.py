"""Limits and behaviour of the HTTP service, in one dataclass that ``ser-hf serve`` fills from its flags.

Every limit protects the one shared model from a single client: uploads are capped in bytes *before*
they are read and must arrive within a deadline, decoding is capped in seconds and in bytes of samples
(per request and for the whole process), model work runs in a small thread pool behind a bounded
admission queue, connections are capped in number and time, and live streams are capped in number,
frame size, length and idle time.

Example:
    ```python
    >>> from ser_hf.service.settings import ServiceSettings
    >>> settings = ServiceSettings(max_upload_bytes=5 * 2**20, max_duration=120.0)
    >>> settings.max_request_bytes(batch=True) > settings.max_upload_bytes
    True

    ```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ser_hf.errors import SERError

__all__ = ["ServiceSettings"]

MIB = 2**20

# Room for multipart boundaries and headers around the file bytes themselves.
_MULTIPART_OVERHEAD = 64 * 1024


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class ServiceSettings:
    """What the service accepts and how it schedules model work.

    Every field has a ``help`` text; ``ser-hf serve`` exposes the limits as flags.
    """

    max_upload_bytes: int = field(default=25 * MIB, metadata=_help(
        "Largest audio file (or raw PCM body) accepted; larger requests get 413 before being read."))
    max_duration: float = field(default=600.0, metadata=_help(
        "Longest audio accepted, in seconds (per file); longer audio gets 413."))
    min_duration: float = field(default=0.1, metadata=_help(
        "Shortest audio accepted, in seconds; speech encoders need 25 ms for one frame and fail on less (422)."))
    max_clip_seconds: float = field(default=30.0, metadata=_help(
        "Longest audio scored as one clip (timeline=false); a whole-clip forward pass grows with length."))
    timeline_after: float = field(default=10.0, metadata=_help(
        "Audio longer than this many seconds is analysed as a timeline of windows unless timeline=false."))
    max_windows: int = field(default=2000, metadata=_help(
        "Most windows one timeline request may ask for (duration / hop); more gets 422 asking for a larger hop."))
    max_batch_files: int = field(default=16, metadata=_help("Most files in one POST /predict/batch request."))
    max_concurrent: int = field(default=8, metadata=_help(
        "Requests decoded and scored at once; more wait in a queue (see queue_timeout)."))
    max_queued: int = field(default=64, metadata=_help(
        "Requests allowed to wait for a slot; beyond that the service answers 503 with Retry-After at once."))
    queue_timeout: float = field(default=10.0, metadata=_help(
        "Seconds a request may wait for a slot before it gets 503 with Retry-After."))
    model_workers: int = field(default=1, metadata=_help(
        "Threads running the model. torch already uses every core inside one forward pass, so 1 is usually best."))
    micro_batch: int = field(default=1, metadata=_help(
        "Most concurrent single-clip requests scored in one forward pass. 1 (default) scores each alone: on CPU, "
        "batching measured no faster and used more memory (benchmarks/results/service_latency.json); try 8 on a GPU."))
    batch_wait_ms: float = field(default=5.0, metadata=_help(
        "How long the first clip of a micro-batch waits for others to join, in milliseconds."))
    max_streams: int = field(default=4, metadata=_help("Live WebSocket streams open at once; more are refused (1013)."))
    max_frame_bytes: int = field(default=1 * MIB, metadata=_help("Largest binary WebSocket frame of PCM, in bytes."))
    max_stream_seconds: float = field(default=3600.0, metadata=_help("Longest live stream, in seconds of audio."))
    stream_idle_timeout: float = field(default=60.0, metadata=_help(
        "Seconds a live stream may go without audio before the server closes it (1008). Only audio counts, by its "
        "own length: empty frames, pings and time the server spends scoring do not keep a stream open."))
    max_channels: int = field(default=8, metadata=_help(
        "Most channels an uploaded file may have (7.1 surround has 8); more gets 422 before decoding."))
    max_decoded_bytes: int = field(default=256 * MIB, metadata=_help(
        "Most bytes of samples one request may decode: frames x channels x 4 (float32) at the file's own rate, "
        "all files of a batch together, read from the headers before decoding; more gets 413. Decoding runs in "
        "blocks, so memory holds only the mono 16 kHz result and one block."))
    decode_budget_bytes: int = field(default=1024 * MIB, metadata=_help(
        "Most bytes of samples (counted as for --max-decode-mb) all requests may be decoding or holding at once; "
        "a request that would pass it gets 503 with Retry-After."))
    body_budget_bytes: int = field(default=1024 * MIB, metadata=_help(
        "Most request-body bytes held at once over all requests, in memory or spooled to temporary files; a "
        "request that would pass it gets 503 with Retry-After."))
    body_timeout: float = field(default=60.0, metadata=_help(
        "Seconds a client has to send a whole request body once its headers arrived; a slower upload gets 408 and "
        "its connection is closed (a 25 MiB file needs about 430 KB/s)."))
    header_timeout: float = field(default=10.0, metadata=_help(
        "Seconds a connection has to send a request's headers, after connecting or after the previous response; "
        "a connection idle or half-sent for longer is closed."))
    keep_alive_timeout: float = field(default=5.0, metadata=_help(
        "Seconds an idle keep-alive connection stays open between requests (uvicorn's timeout_keep_alive)."))
    max_connections: int = field(default=256, metadata=_help(
        "Open connections (HTTP and WebSocket) the server keeps. Past it, the oldest connections with no request "
        "in progress (idle, or headers half-sent) are closed; when none is, the new one gets 503 with Retry-After."))

    def __post_init__(self) -> None:
        positive = ("max_upload_bytes", "min_duration", "max_duration", "max_clip_seconds", "timeline_after", "max_windows",
                    "max_batch_files", "max_concurrent", "queue_timeout", "model_workers", "micro_batch",
                    "max_streams", "max_frame_bytes", "max_stream_seconds", "stream_idle_timeout", "max_channels",
                    "max_decoded_bytes", "decode_budget_bytes", "body_budget_bytes", "body_timeout", "header_timeout",
                    "keep_alive_timeout", "max_connections")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise SERError(f"ServiceSettings.{name} must be positive, got {value!r}; e.g. {self._default(name)!r}.")
        for name in ("max_queued", "batch_wait_ms"):
            if getattr(self, name) < 0:
                raise SERError(f"ServiceSettings.{name} must be 0 or more, got {getattr(self, name)!r}.")

    @classmethod
    def _default(cls, name: str) -> Any:
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)

    def max_request_bytes(self, batch: bool = False) -> int:
        """The largest request body accepted on an endpoint (the middleware answers 413 above it)."""
        files = self.max_batch_files if batch else 1
        return files * (self.max_upload_bytes + _MULTIPART_OVERHEAD)

    def public(self) -> dict[str, Any]:
        """The limits a client needs to know (shown by ``GET /health`` and used by the web page)."""
        names = ("max_upload_bytes", "min_duration", "max_duration", "max_clip_seconds", "timeline_after", "max_batch_files",
                 "max_frame_bytes", "max_stream_seconds", "max_channels", "max_decoded_bytes", "body_timeout")
        return {name: getattr(self, name) for name in names}
