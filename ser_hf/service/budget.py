"""Process-wide byte budgets that concurrent requests draw from: request bodies and decoded samples.

A per-request cap alone does not bound a server: eight requests each under the cap still add up. A
:class:`ByteBudget` holds the total: a request reserves what it will hold (a body's declared length, a
file's samples read from its header) *before* it holds it, and gives it back when its response is sent.
One request above the per-request cap gets 413 (it could never be served); a request that would push the
total over the budget gets 503 with ``Retry-After`` (it can be served once others finish).

Example:
    ```python
    >>> budget = ByteBudget("decoding", capacity=2**30, per_request=2**28, retry_after=2)
    >>> with budget.reserve(200_000_000, "file 'x.flac' decodes to 200 MB of samples", "send it as mono"):
    ...     budget.in_use  # decode and score; a concurrent request above the budget gets 503 meanwhile
    200000000
    >>> budget.in_use
    0
    >>> budget.reserve(300_000_000, "file 'y.flac' decodes to 300 MB of samples",  # doctest: +ELLIPSIS
    ...                "send it as mono")
    Traceback (most recent call last):
    ...
    ser_hf.service.decoding.RequestError: file 'y.flac' decodes to 300 MB of samples; ... at most 268 MB ...

    ```
"""

from __future__ import annotations

import threading

from ser_hf.service.decoding import RequestError, megabytes

__all__ = ["RETRY_AFTER", "ByteBudget", "Reservation"]

#: Seconds a client refused for load is told to wait (``Retry-After``): requests hold budget for seconds.
RETRY_AFTER = 5


class Reservation:
    """Bytes held from a :class:`ByteBudget` until :meth:`release` (or the end of the ``with`` block)."""

    def __init__(self, budget: ByteBudget, nbytes: int) -> None:
        self.budget, self.nbytes = budget, nbytes

    def grow(self, nbytes: int, what: str, hint: str) -> None:
        """Hold ``nbytes`` more (a body without a declared length, as it arrives); raises as :meth:`ByteBudget.reserve`."""
        self.budget._take(self.nbytes + nbytes, what, hint, already=self.nbytes)
        self.nbytes += nbytes

    def release(self) -> None:
        """Give the bytes back (idempotent)."""
        self.budget._give(self.nbytes)
        self.nbytes = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ByteBudget:
    """A total of bytes that requests reserve from and give back, with a per-request cap.

    Thread-safe: the event loop and worker threads may reserve.

    Args:
        name: What the bytes are for, in messages (``"decoding"``, ``"request bodies"``).
        capacity: Most bytes held by all requests at once (503 beyond).
        per_request: Most bytes one request may hold (413 beyond).
        retry_after: Seconds a refused client is told to wait (``Retry-After``).
    """

    def __init__(self, name: str, capacity: int, per_request: int, retry_after: int) -> None:
        self.name, self.capacity, self.per_request, self.retry_after = name, capacity, per_request, retry_after
        self.in_use = 0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int, what: str, hint: str) -> Reservation:
        """Hold ``nbytes`` for one request.

        Args:
            nbytes: Bytes the request will hold.
            what: The subject and its size, e.g. ``"file 'x.flac' decodes to 737 MB of samples (...)"``.
            hint: How the client can send less, for the 413 message.

        Raises:
            RequestError: 413 when ``nbytes`` is over the per-request cap; 503 with ``Retry-After`` when the
                budget cannot hold it now.
        """
        self._take(nbytes, what, hint, already=0)
        return Reservation(self, nbytes)

    def _take(self, total: int, what: str, hint: str, already: int) -> None:
        limit = min(self.per_request, self.capacity)
        if total > limit:
            raise RequestError(413, f"{what}; this server allows at most {megabytes(limit)} for {self.name} per "
                                    f"request. {hint}")
        with self._lock:
            if self.in_use - already + total > self.capacity:
                in_use = self.in_use
            else:
                self.in_use += total - already
                return
        raise RequestError(503, f"the server is busy: {megabytes(in_use)} of its {megabytes(self.capacity)} for "
                                f"{self.name} are held by other requests; retry in {self.retry_after} s.",
                           headers={"Retry-After": str(self.retry_after)})

    def _give(self, nbytes: int) -> None:
        with self._lock:
            self.in_use -= nbytes
