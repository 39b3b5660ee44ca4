"""Access control for a service that leaves localhost: an API key, and an allow-list of browser origins.

- **API key** (``ser-hf serve --api-key-file FILE``, ``SER_HF_API_KEY`` or ``--api-key``): every endpoint but
  ``/health`` and the web page's own files (``/``, ``/static/...``) needs ``Authorization: Bearer KEY`` or
  ``X-API-Key: KEY``; otherwise 401 ``{"detail": ...}``. Browsers cannot set headers on a WebSocket, so
  ``/stream`` also takes the key as a subprotocol, ``ser-hf.key.<base64url(KEY)>`` offered next to ``ser-hf``
  (what the web page does: it asks for the key once and keeps it in ``sessionStorage``). Keys are compared
  as SHA-256 digests with :func:`hmac.compare_digest`; they never appear in URLs, so never in access logs.
- **Wrong keys** are limited per client address (:class:`KeyFailureLimiter`): after ``max_key_failures``
  wrong keys (10) within ``key_failure_window`` seconds (60), that address gets 429 ``{"detail": ...}`` with
  ``Retry-After`` (a WebSocket: closed with 1013), its key not even checked, until the oldest of those
  failures is older than the window. A missing key is not a guess and is not counted; a right key resets
  nothing, for no one. At most ``max_tracked_clients`` addresses (10,000) are remembered, those that failed
  longest ago forgotten first, so the memory is bounded.
- **Origins**: a browser request that carries an ``Origin`` header (every WebSocket, every POST) is refused
  (403) unless that origin is the server's own (the ``Host`` the request was sent to) or in
  ``allowed_origins`` (``--allowed-origin``; ``*`` allows any). Another site's page therefore cannot drive
  the service through a visitor's browser, with or without a key. Allowed foreign origins get CORS headers.

Example:
    ```python
    >>> from ser_hf.service import create_app
    >>> app = create_app(recognizer,  # doctest: +SKIP
    ...                  access=AccessPolicy(api_key="s3cret-key", allowed_origins=("https://app.example",)))
    >>> httpx.post(url + "/predict", files=..., headers={"X-API-Key": "s3cret-key"})  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ser_hf.errors import SERError
from ser_hf.paths import display_path, path_text
from ser_hf.service.limits import json_response

__all__ = ["API_KEY_ENV", "KEY_PROTOCOL", "STREAM_PROTOCOL", "AccessMiddleware", "AccessPolicy", "KeyFailureLimiter",
           "resolve_api_key"]

logger = logging.getLogger(__name__)

#: Environment variable ``ser-hf serve`` reads the key from when no flag gives one.
API_KEY_ENV = "SER_HF_API_KEY"
#: The WebSocket subprotocol the server selects, and the prefix of the one that carries the key.
STREAM_PROTOCOL, KEY_PROTOCOL = "ser-hf", "ser-hf.key."

_PUBLIC_PATHS = frozenset({"/", "/health"})
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{8,256}")  # printable ASCII, no spaces: it must fit an HTTP header


@dataclass(frozen=True)
class AccessPolicy:
    """Who may use the service.

    Args:
        api_key: The key clients must send (``None``: no key needed). 8-256 printable ASCII characters.
        allowed_origins: Browser origins allowed besides the server's own, as ``scheme://host[:port]``;
            ``"*"`` allows every origin.
        max_key_failures: Wrong keys a client address may send within ``key_failure_window`` before it gets
            429 (0 to 1000; 0: no limit).
        key_failure_window: The window, in seconds, over which wrong keys are counted (1 to 86400).
        max_tracked_clients: Client addresses whose wrong keys are remembered (1 to 1,000,000); past it, those
            that failed longest ago are forgotten.
    """

    api_key: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    max_key_failures: int = 10
    key_failure_window: float = 60.0
    max_tracked_clients: int = 10_000

    def __post_init__(self) -> None:
        if self.api_key is not None and not _KEY_PATTERN.fullmatch(self.api_key):
            raise SERError(f"the API key must be 8 to 256 printable ASCII characters without spaces (it is sent in an "
                           f"HTTP header); got {len(self.api_key)} characters. Generate one, e.g. "
                           f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
        origins = tuple(_normalise_origin(origin) for origin in self.allowed_origins)
        object.__setattr__(self, "allowed_origins", origins)
        for name, flag, low, high in (("max_key_failures", "--max-key-failures", 0, 1000),
                                      ("key_failure_window", "--key-failure-window", 1, 86400),
                                      ("max_tracked_clients", "max_tracked_clients", 1, 1_000_000)):
            value = getattr(self, name)
            integer = name != "key_failure_window"
            if (isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
                    or not math.isfinite(value) or not low <= value <= high):
                kind = "an integer" if integer else "a number of seconds"
                raise SERError(f"{flag} must be {kind} from {low} to {high:,}, got {value!r}; e.g. "
                               f"{flag} {getattr(AccessPolicy, name)}.")

    @property
    def key_required(self) -> bool:
        return self.api_key is not None

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a request from ``origin`` sent to ``host`` (its ``Host`` header) may proceed."""
        origin = origin.strip().lower().rstrip("/")
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and host is not None and parts.netloc == host.strip().lower()

    def key_matches(self, given: bytes | None) -> bool:
        if self.api_key is None:
            return True
        if not given:
            return False
        return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(self.api_key.encode()).digest())


def _normalise_origin(origin: str) -> str:
    text = origin.strip().lower().rstrip("/")
    if text in ("*", "null"):
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise SERError(f"--allowed-origin {origin!r} is not an origin; expected scheme://host[:port], e.g. "
                       f"https://app.example.com or http://localhost:3000 (or * for any origin).")
    return text


def resolve_api_key(api_key: str | None = None, api_key_file: str | os.PathLike | None = None,
                    environ: Mapping[str, str] | None = None) -> str | None:
    """The key ``ser-hf serve`` uses: ``--api-key``, else the first line of ``--api-key-file``, else ``$SER_HF_API_KEY``.

    Raises:
        SERError: both flags given, or the key file missing, unreadable or empty.
    """
    if api_key is not None and api_key_file is not None:
        raise SERError("give --api-key or --api-key-file, not both.")
    if api_key_file is not None:
        path = Path(path_text(api_key_file, "--api-key-file", refuse_empty=True))
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SERError(f"--api-key-file {display_path(path)!r} cannot be read ({err}); write the key on its first "
                           f"line.") from err
        api_key = lines[0].strip() if lines else ""
        if not api_key:
            raise SERError(f"--api-key-file {str(path)!r} is empty; write the key on its first line.")
        return api_key
    if api_key is not None:
        return api_key
    return (environ if environ is not None else os.environ).get(API_KEY_ENV) or None


class KeyFailureLimiter:
    """Wrong API keys per client address in a sliding window (see the module docstring).

    Each address keeps the times of its last ``max_failures`` wrong keys; while all of them lie within
    ``window`` seconds, :meth:`retry_after` says how long until the oldest leaves it. Addresses are kept in
    the order of their last failure, so those that failed longest ago are dropped first: expired ones on
    every failure, the oldest ones once more than ``max_clients`` are kept.

    Args:
        max_failures: Wrong keys allowed within ``window`` (0: no limit).
        window: Seconds over which they are counted.
        max_clients: Addresses remembered at most.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, max_failures: int, window: float, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window, self.max_clients, self.clock = max_failures, window, max_clients, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may send a key again; None when it may now."""
        times = self._failures.get(client)
        if not self.max_failures or times is None or len(times) < self.max_failures:
            return None
        wait = times[0] + self.window - self.clock()
        return wait if wait > 0 else None

    def failed(self, client: str) -> bool:
        """Count a wrong key from ``client``; True when this one reaches the limit."""
        if not self.max_failures:
            return False
        now = self.clock()
        times = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        self._failures[client] = times
        while self._failures:
            oldest = next(iter(self._failures.values()))
            if len(self._failures) <= self.max_clients and oldest[-1] > now - self.window:
                break
            self._failures.popitem(last=False)
        return len(times) == self.max_failures


def _client(scope: dict[str, Any]) -> str:
    """The client's address (behind a proxy that $FORWARDED_ALLOW_IPS trusts, uvicorn puts the real one there)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _given_key(scope: dict[str, Any]) -> bytes | None:
    authorization = _header(scope, b"authorization")
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    if (key := _header(scope, b"x-api-key")) is not None:
        return key.strip()
    for protocol in scope.get("subprotocols", []) if scope["type"] == "websocket" else []:
        if protocol.startswith(KEY_PROTOCOL):
            encoded = protocol[len(KEY_PROTOCOL):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                return None
    return None


class AccessMiddleware:
    """Refuse requests from origins not allowed (403) and, when a key is set, requests without it (401), and
    every request needing a key from an address that sent too many wrong ones (429).

    Args:
        app: The ASGI app to wrap.
        policy: The :class:`AccessPolicy`.
    """

    def __init__(self, app: Callable, policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy
        self.failures = KeyFailureLimiter(policy.max_key_failures, policy.key_failure_window,
                                          policy.max_tracked_clients)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        host = _header(scope, b"host")
        if origin is not None and not self.policy.origin_allowed(origin.decode("latin-1"),
                                                                 host.decode("latin-1") if host else None):
            await self._refuse_origin(scope, receive, send, origin.decode("latin-1"))
            return
        public = scope["type"] == "http" and (scope["path"] in _PUBLIC_PATHS or scope["path"].startswith("/static/"))
        if not public and self.policy.key_required:
            client = _client(scope)
            wait = self.failures.retry_after(client)
            if wait is not None:  # the key is not even compared: guessing goes no faster by sending more
                await self._refuse_guesser(scope, receive, send, wait)
                return
            given = _given_key(scope)
            if not self.policy.key_matches(given):
                if given is not None and self.failures.failed(client):
                    logger.warning("%d wrong API keys from %s within %g s: its requests get 429 for up to %g s",
                                   self.policy.max_key_failures, client[:100], self.policy.key_failure_window,
                                   self.policy.key_failure_window)
                await self._refuse_key(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refuse_guesser(self, scope: dict[str, Any], receive: Callable, send: Callable, wait: float) -> None:
        seconds = max(1, math.ceil(wait))
        detail = (f"too many wrong API keys from this address ({self.policy.max_key_failures} within "
                  f"{self.policy.key_failure_window:g} s); try again in {seconds} s with the right key.")
        if scope["type"] == "http":
            await json_response(send, 429, detail, {"Retry-After": str(seconds)})
            return
        await self._close_stream(scope, receive, send, 1013, detail)  # 1013: try again later

    async def _refuse_origin(self, scope: dict[str, Any], receive: Callable, send: Callable, origin: str) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accepting: the handshake gets 403
            return
        await json_response(send, 403, f"requests from the origin {origin[:100]!r} are not allowed; this server accepts "
                                       f"its own pages (and origins given with --allowed-origin).")

    async def _refuse_key(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        detail = ("this server needs an API key: send the header 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (the "
                  "web page at / asks for it)." if _given_key(scope) is None else "the API key is wrong.")
        if scope["type"] == "http":
            await json_response(send, 401, detail, {"WWW-Authenticate": "Bearer"})
            return
        await self._close_stream(scope, receive, send, 1008, detail)

    @staticmethod
    async def _close_stream(scope: dict[str, Any], receive: Callable, send: Callable, code: int, detail: str) -> None:
        await receive()  # websocket.connect; accepted so that the client can read why it is closed
        chosen = STREAM_PROTOCOL if STREAM_PROTOCOL in scope.get("subprotocols", []) else None
        await send({"type": "websocket.accept", "subprotocol": chosen})
        await send({"type": "websocket.send", "text": json.dumps({"type": "error", "detail": detail})})
        await send({"type": "websocket.close", "code": code, "reason": detail[:120]})
