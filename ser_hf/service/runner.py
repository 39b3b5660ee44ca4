"""Scheduling model work off the event loop: admission control, a model thread pool and micro-batching.

The event loop must never run the model: one forward pass takes milliseconds to seconds, during which
no other request (health checks included) would be answered. So:

- :class:`Admission` lets at most ``max_concurrent`` requests decode and score at once; up to
  ``max_queued`` more wait at most ``queue_timeout`` seconds for a slot, the rest get 503 with
  ``Retry-After`` (an answer about load, never a crash).
- :class:`ModelRunner` owns a small private thread pool (``model_workers`` threads; torch already uses
  every core inside one forward pass) and a queue of single clips. A worker takes the first waiting
  clip plus every clip that arrived meanwhile (up to ``micro_batch``, after waiting ``batch_wait_ms``),
  and scores them in one :meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_waves` call. With
  the default wait of 0 ms a lone request is never delayed; under load, clips that queued while the
  model was busy share the next forward pass. It is off by default (``micro_batch=1``): on the 2-core
  CPUs we measured, a batch cost as much per clip as single clips and raised peak memory.

Example:
    ```python
    >>> runner = ModelRunner(recognizer, ServiceSettings())  # doctest: +SKIP
    >>> await runner.start()  # doctest: +SKIP
    >>> row = await runner.predict_clip(wave)   # probabilities, in recognizer.labels order  # doctest: +SKIP
    >>> result = await runner.call(recognizer.predict_long, (wave, 16000))  # doctest: +SKIP
    >>> await runner.stop()  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ser_hf.service.decoding import RequestError
from ser_hf.service.settings import ServiceSettings

__all__ = ["Admission", "ModelRunner"]

logger = logging.getLogger(__name__)


class Admission:
    """At most ``limit`` requests at work, a bounded queue in front of them, 503 beyond it.

    Args:
        limit: Requests allowed at work at once.
        max_queued: Requests allowed to wait for a slot.
        timeout: Seconds a request waits for a slot before 503.
    """

    def __init__(self, limit: int, max_queued: int, timeout: float) -> None:
        self.limit, self.max_queued, self.timeout = limit, max_queued, timeout
        self._semaphore = asyncio.Semaphore(limit)
        self.waiting = 0
        self.active = 0

    def _busy(self, why: str) -> RequestError:
        retry = max(1, math.ceil(self.timeout))
        return RequestError(503, f"the server is busy ({why}); retry in {retry} s.", headers={"Retry-After": str(retry)})

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one work slot for the duration of the ``async with`` block.

        Raises:
            RequestError: 503 with ``Retry-After`` when the queue is full or the wait timed out.
        """
        if self._semaphore.locked() and self.waiting >= self.max_queued:
            raise self._busy(f"{self.active} requests at work and {self.waiting} waiting")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.timeout)
        except asyncio.TimeoutError:
            raise self._busy(f"no slot freed within {self.timeout:g} s") from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()


class ModelRunner:
    """Runs a recognizer's model calls on a private thread pool, micro-batching concurrent single clips.

    Args:
        recognizer: The shared :class:`~ser_hf.inference.recognizer.EmotionRecognizer`.
        settings: ``model_workers``, ``micro_batch`` and ``batch_wait_ms`` are used.
    """

    def __init__(self, recognizer: Any, settings: ServiceSettings) -> None:
        self.recognizer = recognizer
        self.settings = settings
        self.executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue | None = None
        self._workers: list[asyncio.Task] = []
        self.batches = 0  # forward passes made by the micro-batcher, for /health and the benchmark
        self.batched_clips = 0

    async def start(self) -> None:
        """Start the thread pool and the micro-batching workers (call inside the running event loop)."""
        self.executor = ThreadPoolExecutor(self.settings.model_workers, thread_name_prefix="ser-model")
        self._queue = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.settings.model_workers)]

    async def stop(self) -> None:
        """Cancel the workers and shut the thread pool down."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None

    async def call(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` on a model thread and return its result."""
        if self.executor is None:
            raise RuntimeError("ModelRunner.call before start(): the app's lifespan did not run.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(function, *args, **kwargs))

    async def predict_clip(self, wave: np.ndarray) -> np.ndarray:
        """Probabilities of one prepared clip (model rate, preprocessing done), micro-batched with others."""
        if self.settings.micro_batch <= 1:
            return (await self.call(self.recognizer.predict_waves, [wave]))[0]
        if self._queue is None:
            raise RuntimeError("ModelRunner.predict_clip before start(): the app's lifespan did not run.")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((wave, future))
        return await future

    async def predict_clips(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Probabilities of several prepared clips (they share forward passes with each other and with others)."""
        return list(await asyncio.gather(*(self.predict_clip(wave) for wave in waves)))

    async def _take_batch(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        if self.settings.batch_wait_ms > 0 and self._queue.qsize() < self.settings.micro_batch - 1:
            await asyncio.sleep(self.settings.batch_wait_ms / 1000)
        while len(batch) < self.settings.micro_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        # A client that went away cancelled its future: do not spend the model on it.
        return [(wave, future) for wave, future in batch if not future.done()]

    async def _work(self) -> None:
        while True:
            batch = await self._take_batch()
            if not batch:
                continue
            try:
                rows = await self.call(self.recognizer.predict_waves, [wave for wave, _ in batch])
            except Exception as err:  # handed to every waiting request, which reports it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.batches += 1
            self.batched_clips += len(batch)
            for (_, future), row in zip(batch, rows):
                if not future.done():
                    future.set_result(row)
