"""Access control for a service that leaves localhost: an API key, and an allow-list of browser origins.

- **API key** (``ser-hf serve --api-key-file FILE``, ``SER_HF_API_KEY`` or ``--api-key``): every endpoint but
  ``/health`` and the web page's own files (``/``, ``/static/...``) needs ``Authorization: Bearer KEY`` or
  ``X-API-Key: KEY``; otherwise 401 ``{"detail": ...}``. Browsers cannot set headers on a WebSocket, so
  ``/stream`` also takes the key as a subprotocol, ``ser-hf.key.<base64url(KEY)>`` offered next to ``ser-hf``
  (what the web page does: it asks for the key once and keeps it in ``sessionStorage``). Keys are compared
  as SHA-256 digests with :func:`hmac.compare_digest`; they never appear in URLs, so never in access logs.
- **Origins**: a browser request that carries an ``Origin`` header (every WebSocket, every POST) is refused
  (403) unless that origin is the server's own (the ``Host`` the request was sent to) or in
  ``allowed_origins`` (``--allowed-origin``; ``*`` allows any). Another site's page therefore cannot drive
  the service through a visitor's browser, with or without a key. Allowed foreign origins get CORS headers.

Example:
    ```python
    >>> app = create_app(recognizer, access=AccessPolicy(api_key="s3cret-key", allowed_origins=("https://app.example",)))
    >>> httpx.post(url + "/predict", files=..., headers={"X-API-Key": "s3cret-key"})
    ```
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ser_hf.errors import SERError
from ser_hf.service.limits import json_response

__all__ = ["API_KEY_ENV", "KEY_PROTOCOL", "STREAM_PROTOCOL", "AccessMiddleware", "AccessPolicy", "resolve_api_key"]

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
    """

    api_key: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api_key is not None and not _KEY_PATTERN.fullmatch(self.api_key):
            raise SERError(f"the API key must be 8 to 256 printable ASCII characters without spaces (it is sent in an "
                           f"HTTP header); got {len(self.api_key)} characters. Generate one, e.g. "
                           f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
        origins = tuple(_normalise_origin(origin) for origin in self.allowed_origins)
        object.__setattr__(self, "allowed_origins", origins)

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
        path = Path(api_key_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SERError(f"--api-key-file {str(path)!r} cannot be read ({err}); write the key on its first line.") from err
        api_key = lines[0].strip() if lines else ""
        if not api_key:
            raise SERError(f"--api-key-file {str(path)!r} is empty; write the key on its first line.")
        return api_key
    if api_key is not None:
        return api_key
    return (environ if environ is not None else os.environ).get(API_KEY_ENV) or None


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
    """Refuse requests from origins not allowed (403) and, when a key is set, requests without it (401).

    Args:
        app: The ASGI app to wrap.
        policy: The :class:`AccessPolicy`.
    """

    def __init__(self, app: Callable, policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy

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
        if not public and not self.policy.key_matches(_given_key(scope)):
            await self._refuse_key(scope, receive, send)
            return
        await self.app(scope, receive, send)

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
        await receive()  # websocket.connect; accepted so that the client can read why it is closed
        chosen = STREAM_PROTOCOL if STREAM_PROTOCOL in scope.get("subprotocols", []) else None
        await send({"type": "websocket.accept", "subprotocol": chosen})
        await send({"type": "websocket.send", "text": json.dumps({"type": "error", "detail": detail})})
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
