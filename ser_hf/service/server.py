"""Load a model and run the service with uvicorn (what ``ser-hf serve`` calls).

Example:
    ```python
    >>> from ser_hf.service.server import serve
    >>> serve("outputs/rav4", port=8000)  # blocks; Ctrl-C stops it  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from ser_hf.paths import path_text
from ser_hf.service.access import API_KEY_ENV, AccessPolicy
from ser_hf.service.connections import guarded_protocol
from ser_hf.service.settings import ServiceSettings

__all__ = ["is_loopback", "serve", "uvicorn_options"]

logger = logging.getLogger(__name__)


def uvicorn_options(settings: ServiceSettings) -> dict:
    """uvicorn settings that back up the app's own limits.

    ``ws_max_size`` lets frames up to twice the app's frame limit through, so the app (not uvicorn) refuses
    them with a readable error. uvicorn's own connection cap (``limit_concurrency``) is off: it counted idle
    and half-sent connections and answered every request with a plain-text 503 past it. Instead ``http`` is
    uvicorn's protocol with a header deadline and a connection cap that closes idle connections first and
    answers JSON (:func:`~ser_hf.service.connections.guarded_protocol`); ``timeout_keep_alive`` closes idle
    keep-alive connections.
    """
    return {
        "ws_max_size": 2 * settings.max_frame_bytes,
        "limit_concurrency": None,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "http": guarded_protocol(settings),
    }


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only listens on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve to a public interface


def serve(model: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          settings: ServiceSettings | None = None, batch_size: int = 8, log_level: str = "info",
          device: str | None = None, threads: int | None = None, access: AccessPolicy | None = None,
          test_time_copies: bool | dict = False) -> None:
    """Load ``model`` and serve it until interrupted.

    Args:
        model: A checkpoint directory, a preset name or a Hub id (see ``EmotionRecognizer.from_pretrained``).
        host: Interface to listen on; the default 127.0.0.1 is reachable from this machine only
            (use 0.0.0.0 to serve the network, with an API key, ideally behind a reverse proxy with TLS).
        port: TCP port.
        settings: Limits and scheduling (default :class:`ServiceSettings`).
        batch_size: Clips per forward pass inside the recognizer.
        log_level: uvicorn's log level.
        device: Where the model runs (``"cpu"``, the default, or e.g. ``"cuda"``).
        threads: torch intra-op threads (default: torch's choice, one per core). On a machine shared with
            other work, fewer threads than cores avoid threads waiting for each other.
        access: API key and allowed browser origins (:class:`~ser_hf.service.access.AccessPolicy`); without
            a key on a non-loopback ``host``, a warning is logged.
        test_time_copies: Score every clip with altered copies too (``EmotionRecognizer.from_pretrained``'s
            argument: ``True`` for the copies the model's probe trained on); ``/health`` lists them.

    Raises:
        ModelError: when the model cannot be loaded (before the server starts).
    """
    import uvicorn

    from ser_hf.inference.recognizer import EmotionRecognizer
    from ser_hf.service.app import create_app

    settings = settings or ServiceSettings()
    access = access or AccessPolicy()
    if not access.key_required and not is_loopback(host):
        logger.warning("serving on %s without an API key: anyone who can reach this address can use the model. "
                       "Set one with --api-key-file FILE or $%s (and put TLS in front).", host, API_KEY_ENV)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    recognizer = EmotionRecognizer.from_pretrained(model, device=device,
                                                   batch_size=max(batch_size, settings.micro_batch),
                                                   test_time_copies=test_time_copies)
    # Only the last part of the name: /health must not reveal server paths.
    text = path_text(model, "--model")  # from_pretrained took it: a path-like giving bytes too
    name = Path(text).name or text
    app = create_app(recognizer, settings, model_name=name, access=access)
    logger.info("serving %s (%s) on http://%s:%d%s", name, ", ".join(recognizer.labels), host, port,
                " (API key required)" if access.key_required else "")
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(settings))
