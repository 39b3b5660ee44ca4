"""Allowed ranges of numeric settings, declared once in each dataclass field's metadata and checked by one function.

A dataclass says what its fields accept in one class-level table, ``RANGES: ClassVar[dict[str, Range]]``
(field name -> :class:`Range`, inherited and extended by subclasses; not in the fields' metadata, which
``HfArgumentParser`` hands to argparse as keyword arguments). Its ``__post_init__`` calls
:func:`check_ranges`, which refuses, for every field:

- a value outside the field's range (``probe_max_epochs=-5``, ``denoise=1.5``), or of the wrong kind (a string
  or ``True`` where a number belongs, ``2.5`` where an integer belongs);
- a NaN or infinite float, in every float field, ranged or not (``learning_rate=nan`` would only fail at the
  first optimiser step, or silently train nothing).

The error names the field, the value found and the range allowed; :mod:`ser_hf.training.recipes` adds where
the value came from (recipe file, command line). Lists (e.g. ``gain_db: [-6, 6]``) are checked item by item.

Example:
    A dataclass declares its table and checks it (this is how ``DataArguments`` does it)::

        @dataclass
        class Settings:
            epochs: int = 10
            RANGES: ClassVar[dict[str, Range]] = {"epochs": COUNT}

            def __post_init__(self) -> None:
                check_ranges(self)

    One value can be checked on its own:

    >>> check_value("Settings.epochs", -5, COUNT)
    Traceback (most recent call last):
    ...
    ser_hf.errors.SERError: Settings.epochs must be a positive integer (>= 1), got -5.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from ser_hf.errors import SERError

__all__ = [
    "COUNT",
    "DBFS",
    "FINITE",
    "NEGATIVE_NUMBER",
    "NON_NEGATIVE",
    "NON_NEGATIVE_INT",
    "POSITIVE",
    "PROBABILITY",
    "SEED",
    "SHARE",
    "Range",
    "check_ranges",
    "check_value",
    "ranges_of",
    "take_negative_numbers",
]


@dataclass(frozen=True)
class Range:
    """An interval of numbers a setting accepts (bounds ``None``: unbounded on that side).

    Args:
        low: Smallest allowed value (excluded when ``low_open``).
        high: Largest allowed value (excluded when ``high_open``).
        low_open: Whether ``low`` itself is refused (``> 0`` rather than ``>= 0``).
        high_open: Whether ``high`` itself is refused.
        integer: Only integers (``bool`` excluded) are accepted.
        noun: How the message names the kind of value, e.g. ``"a probability"``.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    noun: str | None = None

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        noun = self.noun or ("an integer" if self.integer else "a finite number")
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} ({'>' if self.low_open else '>='} {low})"
        if self.high is not None:
            return f"{noun} ({'<' if self.high_open else '<='} {high})"
        return noun


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


PROBABILITY = Range(0, 1, noun="a probability")
"""Probabilities and dropout rates: [0, 1]."""
SHARE = Range(0, 1, high_open=True, noun="a share")
"""Shares of data held out: [0, 1) (1 would leave nothing to train on)."""
POSITIVE = Range(0, low_open=True, noun="a positive number")
"""Learning rates, durations, step sizes: > 0."""
NON_NEGATIVE = Range(0, noun="a non-negative number")
"""Weight decay, gradient clipping, warm-up: >= 0."""
COUNT = Range(1, integer=True, noun="a positive integer")
"""Epochs, batch sizes, patience, layer sizes: integers >= 1."""
NON_NEGATIVE_INT = Range(0, integer=True, noun="a non-negative integer")
"""Worker counts and other integers where 0 means none: >= 0."""
SEED = Range(0, 2**32 - 1, integer=True, noun="a seed (an integer)")
"""Random seeds: numpy accepts 0 .. 2**32 - 1."""
UNIT = Range(0, 1, noun="a number")
"""Strengths and ratios: [0, 1]."""
DBFS = Range(-100, 0, noun="a level in dBFS")
"""Target levels relative to full scale: -100 to 0 dBFS (above 0, samples would clip; below -100, a float32 clip is
silence)."""
SPEED_FACTOR = Range(0.5, 2, noun="a speed factor")
"""Speed perturbation (audio played this many times faster): [0.5, 2]."""
NOISE_SNR = Range(0, 60, noun="a signal-to-noise ratio in dB")
"""Noise copies' signal-to-noise ratio: [0, 60] dB (0: as loud as the speech; 60: inaudible)."""
MAX_COPIES = 8
"""Most altered copies of a clip (speed and noise together), in training (``probe_speed_copies`` +
``probe_noise_copies``) and at test time: each one is another frozen forward of every clip, and an enrollment file
holds a shift per copy, so its reader bounds what it reads by this count, not by what a file claims."""
FOLDS = Range(2, integer=True, noun="an integer")
"""Numbers of folds: integers >= 2."""
FINITE = Range()
"""Any finite number (e.g. an SNR or gain in dB, which may be negative)."""


def _fail(name: str, value: Any, expected: str, error: type[SERError]) -> SERError:
    err = error(f"{name} must be {expected}, got {value!r}.")
    err.field = name.rsplit(".", 1)[-1]  # lets a caller say where the value came from (recipe, command line)
    return err


def check_value(name: str, value: Any, allowed: Range | None, error: type[SERError] = SERError) -> None:
    """Raise ``error`` naming ``name`` if ``value`` (or any item of a list value) is outside ``allowed``.

    ``None`` is always accepted (it means "unset"). Without a range, only non-finite floats are refused.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if item is None:
            continue
        if allowed is None:
            if isinstance(item, float) and not math.isfinite(item):
                raise _fail(name, value, "a finite number", error)
        elif item not in allowed:
            raise _fail(name, value, str(allowed), error)


def ranges_of(cls: type) -> dict[str, Range]:
    """The ``RANGES`` of ``cls`` merged along its bases (a subclass's entry wins)."""
    merged: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("RANGES", {}))
    return merged


def check_ranges(obj: Any, *, error: type[SERError] = SERError) -> None:
    """Check every field of the dataclass instance ``obj`` against its class's ``RANGES``.

    Args:
        obj: A dataclass instance. ``RANGES`` may name fields it inherits from another library's dataclass
            (``TrainingArguments.learning_rate``); names a class lacks are skipped.
        error: The exception class to raise (a :class:`~ser_hf.errors.SERError`); its instance gets a
            ``field`` attribute with the failing field's name.

    Raises:
        SERError: (``error``) for the first field whose value is out of range, of the wrong kind, or a
            non-finite float; the message names ``Class.field``, the range and the value found.
    """
    allowed = ranges_of(type(obj))
    owner = type(obj).__name__
    for item in dataclasses.fields(obj):
        check_value(f"{owner}.{item.name}", getattr(obj, item.name, None), allowed.get(item.name), error)


#: What a negative number looks like on a command line, ``-1e2``, ``-1.``, ``-inf`` and ``-1_000`` included: argparse
#: (before Python 3.13) takes only ``-40`` and ``-0.5`` for one and reads the others as unknown flags, so a value out of
#: range got "expected one argument" instead of its range. Digits may be grouped by single underscores, as ``int()`` and
#: ``float()`` read them. No ser-hf flag starts with a digit or spells a number.
_DIGITS = r"\d(?:_?\d)*"
NEGATIVE_NUMBER = re.compile(rf"^-({_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][-+]?{_DIGITS})?$"
                             r"|^-(inf|infinity|nan)$", re.IGNORECASE)


def take_negative_numbers(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` and every sub-command's parser take a negative number in any notation as a value."""
    parser._negative_number_matcher = NEGATIVE_NUMBER
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                take_negative_numbers(sub)
