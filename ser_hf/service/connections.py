"""Connection-level limits uvicorn lacks: a deadline for request headers, and a connection cap that answers JSON.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but only until the
first byte arrives: a client that connects and sends nothing, or half a request line, holds its
connection forever. Its own cap (``limit_concurrency``) counts those connections too, and past it
answers *every* request, ``/health`` included, with a plain-text 503. :func:`guarded_protocol` builds a
subclass of uvicorn's HTTP protocol that instead

- closes a connection that has not sent complete request headers ``header_timeout`` seconds after it
  opened or after its previous response (half-sent headers do not stop the clock);
- keeps at most ``max_connections`` connections: past it, the oldest with no request in progress (idle or
  half-sent) are closed to make room; when none can be, the newcomer's request is answered with a JSON
  503 and ``Retry-After`` (it is not upgraded to a WebSocket).

Request bodies have their own deadline (:class:`~ser_hf.service.limits.BodyLimitMiddleware`), and live
streams theirs (:class:`~ser_hf.service.live.IdleClock`).

Example:
    ```python
    >>> uvicorn.run(app, http=guarded_protocol(ServiceSettings()), timeout_keep_alive=5)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import asyncio
from typing import Any

from ser_hf.service.budget import RETRY_AFTER
from ser_hf.service.limits import json_response
from ser_hf.service.settings import ServiceSettings

__all__ = ["guarded_protocol"]


class _Guard:
    """Mixed in before uvicorn's H11Protocol / HttpToolsProtocol (both keep ``cycle``, ``transport``,
    ``connections`` and ``loop``)."""

    settings: ServiceSettings

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._opened = self.loop.time()
        if not self._make_room():
            self.app = _over_capacity(len(self.connections), self.settings.max_connections)
            self._refusing = True
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _should_upgrade(self) -> bool:
        # A connection over the cap gets its JSON 503 as a plain HTTP answer, even for a WebSocket handshake.
        return False if getattr(self, "_refusing", False) else super()._should_upgrade()

    def _idle(self) -> bool:
        """No request in progress: waiting for (the rest of) a request's headers."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.settings.header_timeout, self._header_timeout)

    def _disarm(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        upgraded = self.transport.get_protocol() is not self  # now a WebSocket: its own rules apply
        if not upgraded and not self.transport.is_closing() and self._idle():
            self.transport.close()

    def _make_room(self) -> bool:
        closing = sum(1 for c in self.connections if getattr(c, "transport", None) is not None and c.transport.is_closing())
        excess = len(self.connections) - closing - self.settings.max_connections
        if excess <= 0:
            return True
        idle = sorted((c for c in self.connections if isinstance(c, _Guard) and c is not self and c._idle()
                       and not c.transport.is_closing()), key=lambda c: c._opened)
        for connection in idle[:excess]:
            connection.transport.close()
        return len(idle) >= excess


def _over_capacity(open_connections: int, limit: int) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await json_response(send, 503, f"the server is busy: {open_connections} connections are open and none of the "
                                       f"{limit} it keeps is idle; retry in {RETRY_AFTER} s.",
                            {"Retry-After": str(RETRY_AFTER)}, close=True)
    return app


def guarded_protocol(settings: ServiceSettings, base: type | None = None) -> type:
    """uvicorn's HTTP protocol class (``base``, default: the one ``http="auto"`` picks) with the guards above.

    Pass it as ``uvicorn.run(..., http=guarded_protocol(settings))``.
    """
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    return type(f"Guarded{base.__name__}", (_Guard, base), {"settings": settings})
