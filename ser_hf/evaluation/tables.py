"""Number and table formatting shared by every rendered report (Markdown tables, percentages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ser_hf.paths import printable

__all__ = ["markdown_table", "percent", "percent_range", "signed_percent_range"]


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.6253 -> "62.5"``), ``"n/a"`` for `None`."""
    return "n/a" if value is None else f"{100.0 * value:.1f}"


def percent_range(bounds: Sequence[float] | None) -> str:
    """An interval of fractions as ``"52.1-70.3"``; empty text for `None`."""
    return "" if not bounds else f"{percent(bounds[0])}-{percent(bounds[1])}"


def signed_percent_range(bounds: Sequence[float] | None) -> str:
    """An interval of differences of fractions, signs shown, as ``"-1.4 to +4.6"`` (a paired bootstrap's); ``n/a``
    for `None`, the interval of too few speakers to resample (:func:`~ser_hf.evaluation.bootstrap.interval_caveat`)."""
    return "n/a" if bounds is None else f"{100.0 * bounds[0]:+.1f} to {100.0 * bounds[1]:+.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest right-aligned.

    A cell's ``|`` is escaped and a line break shown as ``\\n`` (a class or speaker name holding one would otherwise
    end its cell or its row)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A Markdown table cell: one line, no column break, no control character (a speaker id's ESC)."""
    return printable(str(value).replace("\r", "\\r").replace("\n", "\\n")).replace("|", "\\|")
