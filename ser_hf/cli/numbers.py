"""Numbers on the ``ser-hf`` command line, checked against a :class:`~ser_hf.ranges.Range` before anything loads.

A number the library would refuse late (after a model or a corpus loaded), with a field's name instead of the
flag's, or not at all (a raw ``OverflowError`` from ``int(float("inf"))``, a port asyncio rejects), is refused
here, naming the flag, the value given, the range and a fix, with exit status 2 like every usage error. Two forms:

- :func:`number`, an ``argparse`` type: refused while the command line is parsed (argparse names the flag);
- :func:`check_flags`, for a command's function before its first step: a :class:`~ser_hf.errors.SERError`.

Example:
    >>> from ser_hf.ranges import SEED
    >>> check_flags(("--seed", -5, SEED, "e.g. --seed 0"))
    Traceback (most recent call last):
    ...
    ser_hf.errors.SERError: --seed must be a seed (an integer) in [0, 4294967295], got -5; e.g. --seed 0.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ser_hf.errors import SERError
from ser_hf.ranges import Range

__all__ = ["check_flags", "number"]


def number(allowed: Range, fix: str) -> Callable[[str], int | float]:
    """An ``argparse`` type reading one number within ``allowed`` (an ``int`` where it takes integers only).

    Args:
        allowed: The values accepted; NaN and infinities never are.
        fix: What to pass instead, e.g. ``"e.g. --port 8000"``.
    """

    def parse(text: str) -> int | float:
        try:
            value: Any = int(text) if allowed.integer else float(text)
        except ValueError:
            value = None  # '1.5' for an integer, a word: refused below with the range, as an out-of-range number is
        if value is None or value not in allowed:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}; {fix}")
        return value

    return parse


def check_flags(*checks: tuple[str, Any, Range, str]) -> None:
    """Refuse the first ``(flag, value, allowed, fix)`` whose value is given (not ``None``) and outside ``allowed``.

    Raises:
        SERError: ``"{flag} must be {allowed}, got {value}; {fix}."``
    """
    for flag, value, allowed, fix in checks:
        if value is not None and value not in allowed:
            raise SERError(f"{flag} must be {allowed}, got {value}; {fix}.")
