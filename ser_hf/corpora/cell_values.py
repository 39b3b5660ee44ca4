"""Reading what people write into a corpus's tables and file names: a missing cell, a gender, a speaker id, and the
text of a table file.

The corpus modules that read metadata (a manifest, a folder's speaker pattern, a Hub dataset's columns, CREMA-D's
demographics table) read its cells through these functions, so a value means one thing whichever loader read it:
``NA`` is no speaker, ``'A '`` is speaker ``A``, ``F`` is female. :mod:`ser_hf.corpora.base` then checks the clips
they describe.
"""

from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import Any

from ser_hf.errors import CorpusError
from ser_hf.names import speaker_text
from ser_hf.paths import display_path, printable

#: Cells that spell "no value", in any case: pandas, R and spreadsheets write ``NA``, ``NaN``, ``#N/A``, ``<NA>``
#: (``pd.NA`` as text), ``NULL``/``nil`` for a missing cell, and people type ``-``, ``?``, ``missing`` or ``unknown``.
#: They are read like a blank cell, so a missing speaker can never become one pseudo-speaker named ``NA``. A speaker
#: literally called ``unknown`` is no person either but every unknown one: as one speaker, a speaker-independent split
#: would put those people on both sides.
MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "<na>", "nan", "none", "null", "nil", "-", "?", "missing",
                             "unknown"})


def is_missing(raw: Any) -> bool:
    """Whether a cell holds no value: ``None``, a float NaN, blank text, or one of :data:`MISSING_MARKERS`."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return True
    return isinstance(raw, str) and (not raw.strip() or raw.strip().casefold() in MISSING_MARKERS)


def normalize_gender(raw: Any) -> str | None:
    """``'M'``/``'male'`` -> ``'male'``, ``'F'``/``'female'`` -> ``'female'``, a missing cell (:func:`is_missing`)
    -> ``None``; any other value is returned stripped, as written, and :func:`~ser_hf.corpora.base.scan_corpus` turns it into ``None``
    with one warning for the whole corpus: gender is optional metadata, and must never cost a clip."""
    if is_missing(raw):
        return None
    key = str(raw).strip().lower()
    if key in ("m", "male", "man"):
        return "male"
    if key in ("f", "female", "woman"):
        return "female"
    return str(raw).strip()


def normalize_speaker(raw: Any) -> str | None:
    """A speaker id as text in the one form of :func:`~ser_hf.names.speaker_text` (NFC, no invisible characters or
    surrounding whitespace: ``'A '`` is ``'A'``, and ``José`` typed two ways is one speaker, who can never be split
    across train and test); a missing cell (:func:`is_missing`: blank, ``NA``, ``null``, ``unknown``, ``-``, a NaN) ->
    ``None``, which the splits refuse as a clip of unknown speaker; a whole float (a JSON ``1.0``) -> ``'1'``.

    Raises:
        CorpusError: the id is a bool, a list or another value that is neither text nor a number.
    """
    if is_missing(raw):
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise CorpusError(f"the speaker is a {type(raw).__name__} ({printable(repr(raw))[:80]}); expected a speaker id "
                          f"as text or a number (e.g. \"spk01\"), or nothing when unknown. Fix the speaker value.")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # JSON writers turn integer ids into 1.0 (pandas does when a column has a NaN)
    text = speaker_text(str(raw))
    return None if is_missing(text) else text


def read_utf8(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark, as Excel's "CSV UTF-8" writes, is dropped).

    Raises:
        CorpusError: the file is not UTF-8; the message names it, the byte offset and how to fix it.
    """
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = bom + err.start
        line = data[:offset].count(b"\n") + 1
        raise CorpusError(
            f"{what} {display_path(path)!r} is not UTF-8 text: byte {offset} (line {line}) is "
            f"0x{data[offset]:02x} ({err.reason}); expected UTF-8 (an ASCII or UTF-8 CSV/JSON file). Save it as UTF-8 "
            f"(Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 FILE > NEW`)."
        ) from err


