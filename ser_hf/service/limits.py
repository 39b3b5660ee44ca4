"""An ASGI middleware that caps request bodies before any endpoint (or multipart parser) reads them.

FastAPI parses a multipart upload before the endpoint runs, so a size check inside the endpoint would
come after the whole body was received and spooled. This middleware answers 413 as soon as the
declared ``Content-Length`` or the bytes received so far exceed the cap of the endpoint. It then keeps
reading (and dropping) the rest of a moderately oversized body, so the client, still sending, gets
to read the 413 instead of a reset connection; past ``drain_bytes`` it stops reading and the server
closes the connection.

Example:
    ```python
    >>> app.add_middleware(BodyLimitMiddleware, limit_for=lambda path: 1_000_000)
    ```
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["BodyLimitMiddleware"]

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answer 413 ``{"detail": ...}`` for HTTP requests whose body exceeds ``limit_for(path)`` bytes.

    Args:
        app: The ASGI app to wrap.
        limit_for: Maps a request path to its body cap in bytes.
        drain_bytes: Most bytes of an oversized body read and dropped before answering (see module doc).
    """

    def __init__(self, app: Callable, limit_for: Callable[[str], int], drain_bytes: int = 64 * 2**20) -> None:
        self.app = app
        self.limit_for = limit_for
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(receive, send, limit, declared, received=0, finished=False)
            return
        received = 0
        started = False
        finished = False

        async def counting_receive() -> dict:
            nonlocal received, finished
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:  # cannot happen for our endpoints (they read the body first); never hide it
                raise
            await self._refuse(receive, send, limit, declared, received, finished)

    async def _refuse(self, receive: Callable, send: Callable, limit: int, declared: int | None, received: int,
                      finished: bool) -> None:
        size = f"{declared} bytes" if declared is not None else f"more than {limit} bytes"
        detail = (f"the request body has {size}; this endpoint accepts at most {limit} bytes. "
                  f"Send a shorter or compressed (FLAC, OGG) file, or fewer files per batch.")
        total = received
        while not finished and total <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            total += len(message.get("body", b""))
            finished = not message.get("more_body", False)
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if not finished:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
