"""An HTTP service and web page for an emotion model: ``ser-hf serve --model MODEL``.

Needs the ``serve`` extra (``pip install 'ser-hf[serve]'``: FastAPI, uvicorn, python-multipart).

- :func:`create_app` builds the FastAPI app around one shared
  :class:`~ser_hf.inference.recognizer.EmotionRecognizer` (see :mod:`ser_hf.service.app` for the endpoints).
- :class:`ServiceSettings` holds the limits (upload bytes, audio seconds, concurrency, streams).
- :func:`serve` loads a model and runs the app with uvicorn.

Example:
    ```python
    >>> from ser_hf.service import ServiceSettings, serve
    >>> serve("outputs/rav4", host="127.0.0.1", port=8000, settings=ServiceSettings(max_duration=120))  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ServiceSettings", "create_app", "serve"]

_EXPORTS = {"ServiceSettings": "ser_hf.service.settings", "create_app": "ser_hf.service.app",
            "serve": "ser_hf.service.server"}


def __getattr__(name: str) -> Any:
    # Imported on first use: `ser-hf --help` reads ServiceSettings defaults and must not pay for
    # (or need) FastAPI, which only the running service uses.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ser_hf.service' has no attribute {name!r}")
