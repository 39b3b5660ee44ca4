"""Load a model and run the service with uvicorn (what ``ser-hf serve`` calls).

Example:
    ```python
    >>> from ser_hf.service.server import serve
    >>> serve("outputs/rav4", port=8000)  # blocks; Ctrl-C stops it
    ```
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ser_hf.service.settings import ServiceSettings

__all__ = ["serve", "uvicorn_options"]

logger = logging.getLogger(__name__)


def uvicorn_options(settings: ServiceSettings) -> dict:
    """uvicorn settings that back up the app's own limits.

    ``ws_max_size`` lets frames up to twice the app's frame limit through, so the app (not uvicorn) refuses
    them with a readable error; ``limit_concurrency`` is a last line of defence against open connections
    piling up (uvicorn answers 503 beyond it), above what the app's own queue admits.
    """
    return {
        "ws_max_size": 2 * settings.max_frame_bytes,
        "limit_concurrency": settings.max_concurrent + settings.max_queued + settings.max_streams + 16,
    }


def serve(model: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          settings: ServiceSettings | None = None, batch_size: int = 8, log_level: str = "info",
          device: str | None = None, threads: int | None = None) -> None:
    """Load ``model`` and serve it until interrupted.

    Args:
        model: A checkpoint directory, a preset name or a Hub id (see ``EmotionRecognizer.from_pretrained``).
        host: Interface to listen on; the default 127.0.0.1 is reachable from this machine only
            (use 0.0.0.0 to serve the network, ideally behind a reverse proxy with TLS).
        port: TCP port.
        settings: Limits and scheduling (default :class:`ServiceSettings`).
        batch_size: Clips per forward pass inside the recognizer.
        log_level: uvicorn's log level.
        device: Where the model runs (``"cpu"``, the default, or e.g. ``"cuda"``).
        threads: torch intra-op threads (default: torch's choice, one per core). On a machine shared with
            other work, fewer threads than cores avoid threads waiting for each other.

    Raises:
        ModelError: when the model cannot be loaded (before the server starts).
    """
    import uvicorn

    from ser_hf.inference.recognizer import EmotionRecognizer
    from ser_hf.service.app import create_app

    settings = settings or ServiceSettings()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    recognizer = EmotionRecognizer.from_pretrained(model, device=device,
                                                   batch_size=max(batch_size, settings.micro_batch))
    # Only the last part of the name: /health must not reveal server paths.
    name = Path(os.fspath(model)).name or os.fspath(model)
    app = create_app(recognizer, settings, model_name=name)
    logger.info("serving %s (%s) on http://%s:%d", name, ", ".join(recognizer.labels), host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(settings))
