"""An ASGI middleware that bounds request bodies before any endpoint (or multipart parser) holds them.

FastAPI parses a multipart upload before the endpoint runs (spooling files to temporary disk), so checks
inside the endpoint would come after the whole body was received. This middleware watches the body as it
arrives and answers, in JSON, as soon as something is wrong:

- **413** when the declared ``Content-Length`` or the bytes received so far exceed the endpoint's cap
  (also for chunked uploads: the multipart parser's own "error parsing the body" 400 is replaced);
- **408** when the body has not fully arrived ``timeout`` seconds after its headers (a slow or stalled
  client cannot hold memory, temporary disk or a connection for longer);
- **503** with ``Retry-After`` when the process-wide body budget (:class:`~ser_hf.service.budget.ByteBudget`,
  bytes in memory or spooled, summed over all requests) cannot hold this body now.

After a 413 or 503 it keeps reading (and dropping) up to ``drain_bytes`` of the rest, within the deadline,
so a client still sending reads the answer instead of a reset connection. A client that goes away in the
middle of its body is logged as one INFO line, not an error with a traceback.

Example:
    ```python
    >>> app.add_middleware(BodyLimitMiddleware, limit_for=lambda path: 1_000_000, timeout=60.0,  # doctest: +SKIP
    ...                    budget=ByteBudget("request bodies", 2**30, 2**30, retry_after=5))

    ```
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from ser_hf.service.budget import ByteBudget, Reservation
from ser_hf.service.decoding import RequestError

__all__ = ["BodyLimitMiddleware", "json_response"]

logger = logging.getLogger(__name__)

Scope = dict[str, Any]


class _Refused(Exception):
    """Raised into the app when its body was refused; the middleware answers instead of the app."""


async def json_response(send: Callable, status: int, detail: str, headers: dict[str, str] | None = None,
                        close: bool = False) -> None:
    """Send ``{"detail": detail}`` as a complete HTTP response through raw ASGI ``send``."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Body:
    """One request's body as the app reads it: counted, timed and charged to the budget."""

    def __init__(self, receive: Callable, send: Callable, limit: int, declared: int | None, timeout: float | None,
                 budget: ByteBudget | None) -> None:
        self._receive, self._send = receive, send
        self.limit, self.declared, self.timeout, self.budget = limit, declared, timeout, budget
        self.deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self.received, self.finished, self.disconnected, self.started = 0, False, False, False
        self.refusal: tuple[int, str, dict[str, str]] | None = None
        self.reservation: Reservation | None = None

    def refuse(self, status: int, detail: str, headers: dict[str, str] | None = None) -> _Refused:
        self.refusal = self.refusal or (status, detail, headers or {})
        return _Refused()

    def admit(self) -> bool:
        """Checks on the headers alone; False when the request is refused before its body is read."""
        if self.declared is not None and self.declared > self.limit:
            self.refuse(413, self._too_large())
            return False
        if self.budget is not None:
            try:
                self.reservation = self.budget.reserve(self.declared or 0, f"the request body has {self.declared or 0} bytes",
                                                       "Send fewer or smaller files.")
            except RequestError as err:
                self.refuse(err.status, err.detail, err.headers)
                return False
        return True

    def _too_large(self) -> str:
        size = f"{self.declared} bytes" if self.declared is not None else f"more than {self.limit} bytes"
        return (f"the request body has {size}; this endpoint accepts at most {self.limit} bytes. Send a shorter or "
                f"compressed (FLAC, OGG) file, or fewer files per batch.")

    def _remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def receive(self) -> dict:
        if self.refusal is not None:
            raise _Refused
        try:
            message = await asyncio.wait_for(self._receive(), self._remaining())
        except asyncio.TimeoutError:
            expected = f"of {self.declared} " if self.declared is not None else ""
            raise self.refuse(408, f"the request body did not arrive within {self.timeout:g} s ({self.received} bytes "
                                   f"{expected}received); send it faster, or in smaller requests.") from None
        if message["type"] == "http.disconnect":
            self.disconnected = True
        elif message["type"] == "http.request":
            self._count(len(message.get("body", b"")))
            self.finished = not message.get("more_body", False)
        return message

    def _count(self, size: int) -> None:
        self.received += size
        if self.received > self.limit:
            raise self.refuse(413, self._too_large())
        if self.reservation is not None and self.received > self.reservation.nbytes:
            try:  # a body without Content-Length is charged as it arrives
                self.reservation.grow(self.received - self.reservation.nbytes, f"the request body has more than "
                                      f"{self.received} bytes", "Send fewer or smaller files.")
            except RequestError as err:
                raise self.refuse(err.status, err.detail, err.headers) from None

    async def send(self, message: dict) -> None:
        if self.refusal is not None or self.disconnected:
            return  # the app's own answer to a refused body (FastAPI's "error parsing the body" 400) is dropped
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)

    async def answer(self, drain_bytes: int) -> None:
        """Send the refusal, after draining up to ``drain_bytes`` of the rest within the deadline (not after a 408)."""
        status, detail, headers = self.refusal
        total = self.received
        while status != 408 and not self.finished and total <= drain_bytes:
            try:
                message = await asyncio.wait_for(self._receive(), self._remaining())
            except asyncio.TimeoutError:
                break
            if message["type"] != "http.request":
                return  # the client went away
            total += len(message.get("body", b""))
            self.finished = not message.get("more_body", False)
        await json_response(self._send, status, detail, headers, close=not self.finished)


class BodyLimitMiddleware:
    """Bound HTTP request bodies: ``limit_for(path)`` bytes, ``timeout`` seconds, a shared ``budget`` (see module doc).

    Args:
        app: The ASGI app to wrap.
        limit_for: Maps a request path to its body cap in bytes.
        timeout: Seconds from the headers to the end of the body (``None``: no deadline).
        budget: The process-wide body budget (``None``: none).
        drain_bytes: Most bytes of a refused body read and dropped before answering (see module doc).
    """

    def __init__(self, app: Callable, limit_for: Callable[[str], int], timeout: float | None = None,
                 budget: ByteBudget | None = None, drain_bytes: int = 64 * 2**20) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout = timeout
        self.budget = budget
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = _Body(receive, send, self.limit_for(scope.get("path", "")), _content_length(scope), self.timeout,
                     self.budget)
        try:
            if body.admit():
                try:
                    await self.app(scope, body.receive, body.send)
                except Exception:
                    # Ours, or what the app made of it (Starlette's ClientDisconnect); anything else is a bug.
                    if body.refusal is None and not body.disconnected:
                        raise
            if body.disconnected:
                logger.info("%s %s: the client went away after %d of %s body bytes; nothing was answered.",
                            scope.get("method"), scope.get("path"), body.received,
                            body.declared if body.declared is not None else "?")
            elif body.refusal is not None and not body.started:
                await body.answer(self.drain_bytes)
        finally:
            if body.reservation is not None:
                body.reservation.release()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
