"""Run ``ser-hf serve`` in a child process on a free loopback port, for end-to-end tests and benchmarks.

A real server (uvicorn, real sockets, the real CLI) is what browsers, load tests and latency figures
need; a child process also lets the caller measure the server's own memory. The server listens on
127.0.0.1 only and is stopped (terminate, then kill) when the ``with`` block ends. :func:`stream_over_websocket`
plays a recording through ``/stream`` on a test client and collects the windows.

Example:
    ```python
    >>> from ser_hf.service.testing import running_server
    >>> with running_server("outputs/rav4", "--max-duration", "30") as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/health").json()["status"]
    'ok'

    ```
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ServerProcess", "free_port", "peak_rss_bytes", "running_server", "serving_in_thread", "stream_over_websocket"]


@dataclass
class ServerProcess:
    """A running server: its base URL (``http://127.0.0.1:PORT``), process and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def output(self) -> str:
        """What the server printed so far (uvicorn's log, tracebacks)."""
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_bytes(pid: int) -> int | None:
    """The peak resident memory of a process so far (Linux ``VmHWM``), or None where /proc has no such field."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ser-hf serve exited with code {process.returncode} before answering:\n"
                               f"{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ser-hf serve did not answer /health within {timeout:g} s:\n{log.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def running_server(model: str | os.PathLike, *args: str, timeout: float = 120.0,
                   env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Start ``ser-hf serve --model MODEL ARGS...`` on 127.0.0.1 and a free port; stop it afterwards.

    Args:
        model: What ``--model`` gets.
        *args: More ``ser-hf serve`` flags, e.g. ``"--max-duration", "30"``.
        timeout: Seconds to wait for ``/health`` to answer (loading torch and the model takes a few).
        env: Extra environment variables for the server (e.g. ``{"OMP_NUM_THREADS": "1"}``).

    Yields:
        A :class:`ServerProcess`.

    Raises:
        RuntimeError: if the server exits or does not answer in time (with the end of its log).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="ser-hf-serve-") as tmp:
        log = Path(tmp) / "server.log"
        command = [sys.executable, "-m", "ser_hf", "serve", "--model", os.fspath(model), "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", *args]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        server = ServerProcess(url, process, log)
        try:
            _wait_until_up(url, process, log, timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def serving_in_thread(app: Any, settings: Any = None, log_level: str = "warning") -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn in a thread of this process, as ``ser-hf serve`` would; yield its URL.

    The uvicorn options are :func:`ser_hf.service.server.uvicorn_options` for ``settings`` (connection guards,
    keep-alive timeout), so connection-level limits can be tested in-process with a model already loaded.

    Example:
        ```python
        >>> with serving_in_thread(create_app(recognizer, settings), settings) as url:  # doctest: +SKIP
        ...     httpx.get(url + "/health").status_code
        200

        ```
    """
    import uvicorn

    from ser_hf.service.server import uvicorn_options
    from ser_hf.service.settings import ServiceSettings

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on",
                            **uvicorn_options(settings or ServiceSettings()))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def stream_over_websocket(client: Any, config: dict, wave: Any, between: Any = None) -> tuple[dict, list[dict]]:
    """Stream ``wave`` (16 kHz float samples) to ``client``'s ``/stream`` in 0.1 s float32 frames.

    ``config`` is added to ``{"sampling_rate": 16000, "dtype": "float32"}``; ``between()`` runs after the ready
    message. Returns the ready message and every window message, after checking the stream ended with ``done``.
    """
    with client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"sampling_rate": 16000, "dtype": "float32", **config}))
        ready = ws.receive_json()
        assert ready["type"] == "ready", ready
        if between is not None:
            between()
        for start in range(0, wave.size, 1600):
            ws.send_bytes(wave[start:start + 1600].astype("<f4").tobytes())
        ws.send_text('{"type": "end"}')
        messages = []
        while (message := ws.receive_json())["type"] not in ("done", "error"):
            messages.append(message)
        assert message["type"] == "done", message
    return ready, messages
