"""The text tables clips are listed in -- manifest CSVs, audiofolder ``metadata.csv``/``metadata.jsonl``, the
manifests ``ser-hf predict`` reads -- read one way, with every row numbered by the physical line it starts on.

A CSV is read strictly: a quote that is never closed is an error naming the line it opened in (a lenient
reader would swallow every following row into one cell), and a row whose quoted cell holds a line break is
refused too, since that is how a stray quote that happens to close later looks. JSON lines are split on
``"\\n"`` only: U+2028, U+0085 and other characters :meth:`str.splitlines` breaks on are legal inside JSON strings.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ser_hf._io import unique_keys
from ser_hf.corpora.cell_values import read_utf8
from ser_hf.errors import CorpusError
from ser_hf.paths import display_path, printable

#: A row: the physical line it starts on, and its cells by column (see :func:`read_csv_rows`).
Row = tuple[int, dict]


def _unique_columns(header: list[str], what: str, shown: str) -> list[str]:
    """``header``, refused when it names a column twice: a row would keep only the last of the two cells, so every
    row would silently read another column than the user meant (an unnamed, blank header cell may repeat)."""
    positions: dict[str, list[int]] = {}
    for number, name in enumerate(header, start=1):
        if name.strip():
            positions.setdefault(name, []).append(number)
    repeated = {name: numbers for name, numbers in positions.items() if len(numbers) > 1}
    if repeated:
        name, numbers = next(iter(repeated.items()))
        raise CorpusError(f"{what} {shown!r}: its header names the column {printable(name)!r} {len(numbers)} times "
                          f"(columns {', '.join(map(str, numbers))}); expected every column name once, or a row would "
                          f"silently keep only the last of those cells. Rename or remove the repeated column.")
    return header


def read_csv_rows(path: Path, what: str, expected: str, delimiter: str = ",") -> tuple[list[str], list[Row]]:
    """The header and the rows of a UTF-8 CSV file, each row with the line it starts on.

    Like :class:`csv.DictReader`, blank lines are skipped, a row's extra cells go under the key ``None`` and its
    missing cells are ``None``.

    Args:
        path: The file.
        what: What the file is, for messages (``"Manifest"``).
        expected: What it should hold, for messages (``"a header row path,label,..."``).
        delimiter: ``","`` or ``"\\t"``.

    Raises:
        CorpusError: the file is not UTF-8, a quote is never closed, a row spans several lines, or a line is
            not CSV; the message names the file, the line and the fix.
    """
    shown = display_path(path)
    reader = csv.reader(io.StringIO(read_utf8(path, what), newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[Row] = []
    start = 1
    try:
        for cells in reader:
            first, start = start, reader.line_num + 1
            if not cells:
                continue
            if reader.line_num > first:
                raise CorpusError(
                    f"{what} {shown!r}: the row starting in line {first} runs on to line {reader.line_num}, because a "
                    f"quoted cell holds a line break (a quote (\") opened in line {first} closes only in line "
                    f"{reader.line_num}), so those lines were read as one row. Every row must be on one line: close "
                    f"or remove that quote, or remove the line break from the cell.")
            if header is None:
                header = _unique_columns(cells, what, shown)
                continue
            row: dict[Any, Any] = dict(zip(header, cells))
            if len(cells) > len(header):
                row[None] = cells[len(header):]
            row.update({name: None for name in header[len(cells):]})
            rows.append((first, row))
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise CorpusError(
                f"{what} {shown!r}: line {start} opens a quoted cell (\") that is never closed, so every line after "
                f"it would be read as part of that cell. Close the quote in line {start}, or remove it (inside a "
                f"quoted cell a quote is written twice: \"\").") from err
        raise CorpusError(f"{what} {shown!r} cannot be read as CSV at line {start}: {err}. Expected "
                          f"{'tab' if delimiter == chr(9) else 'comma'}-separated text with {expected}; fix or "
                          f"re-export that line.") from err
    return header or [], rows


def read_jsonl_rows(path: Path, what: str, example: str) -> list[Row]:
    """The JSON objects of a UTF-8 JSON-lines file, one per line (blank lines skipped), each with its line number.

    Lines are split on ``"\\n"`` only (a trailing ``"\\r"`` is dropped), never on the other characters
    :meth:`str.splitlines` breaks on, which may stand inside a JSON string.

    Raises:
        CorpusError: the file is not UTF-8, a line is not a JSON object or names a key twice; the message names
            the line.
    """
    rows = []
    for number, line in enumerate(read_utf8(path, what).split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line
        if not line.strip():
            continue
        repeated_keys = unique_keys(lambda repeated, number=number: CorpusError(
            f"{what} {display_path(path)!r}: line {number} names the key(s) {[printable(k) for k in repeated]} twice; "
            f"expected each key once (JSON keeps only the last value, silently). Remove or rename the repeated key."))
        try:  # control characters inside strings are data too
            value = json.loads(line, strict=False, object_pairs_hook=repeated_keys)
        except json.JSONDecodeError as err:
            value, reason = None, str(err)
        else:
            reason = f"found {type(value).__name__}"
        if not isinstance(value, dict):
            raise CorpusError(f"{what} {display_path(path)!r}: line {number} is not a JSON object ({reason}); "
                              f"expected one object per line, e.g. {example}.")
        rows.append((number, value))
    return rows
