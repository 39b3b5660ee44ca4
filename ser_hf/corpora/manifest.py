"""Your own data listed in a CSV or JSON-lines manifest, one row per clip.

- Required columns: ``path`` (absolute, or relative to the manifest's folder; surrounding spaces ignored, as
  ``ser-hf predict`` ignores them) and ``label`` (an emotion in any known spelling; map others with ``label_map``).
- Optional columns: ``speaker`` (blank, ``NA``, ``null``, ``NaN``: unknown), ``gender`` (male/female/M/F;
  other values load as unknown, with a warning), ``split`` (train/validation/test in any case and the spellings
  ``datasets`` reads split folders in, e.g. ``testing``, ``dev``, ``test1``, ``Test-set``:
  :func:`ser_hf.corpora.split_names.split_name`, the reading of audiofolder split folders too; used by
  :func:`ser_hf.splits.predefined_split` and ``ser-hf train``). A JSON-lines manifest's columns are the keys of all
  its rows (a row without one has no value there). Any other column is kept as a string column, except one named
  like a column ser_hf sets itself (``audio``, ``duration``, ``corpus``): that one is left out, with a
  warning. Column names are matched in any case, surrounding spaces ignored (``Path``, `` label``); a column of
  your own spelt two ways (``Mic`` in one JSON-lines row, ``mic `` in another) is one column, named as first spelt,
  and two spellings in one row (or one header) are refused.
- Pass the manifest file as ``data_dir`` (``--data-dir my_manifest.csv``) or a folder holding
  ``manifest.csv`` / ``manifest.jsonl``.
- Licence and citation: those of your data.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import datasets

from ser_hf.corpora.base import BASE_COLUMNS, Clip, Corpus, Problem
from ser_hf.corpora.cell_values import normalize_gender, normalize_speaker
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.corpora.listings import file_identity
from ser_hf.corpora.tables import read_csv_rows, read_jsonl_rows
from ser_hf.errors import CorpusError
from ser_hf.paths import display_path, printable

logger = logging.getLogger(__name__)

REQUIRED = ("path", "label")
KNOWN = (*REQUIRED, "speaker", "gender", "split")
#: Columns of every loaded corpus that ser_hf fills itself (the file, its duration, the corpus name): a manifest
#: column so named is left out, never kept as metadata beside them.
SET_BY_SER_HF = tuple(name for name in BASE_COLUMNS if name not in KNOWN)
# A path cell naming a URL (https://, file://, s3://): ser_hf reads local files only.
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}


def find_manifest(data_dir: Path) -> Path:
    """The manifest file itself, or ``manifest.csv``/``manifest.jsonl`` inside a folder."""
    if data_dir.is_file():
        return data_dir
    for name in ("manifest.csv", "manifest.jsonl", "manifest.json"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise CorpusError(
        f"No manifest in {str(data_dir)!r}: expected the manifest file itself or a folder holding manifest.csv "
        f"or manifest.jsonl (columns: path, label, optional speaker, gender, split)."
    )


def _is_json(manifest: Path) -> bool:
    return manifest.suffix.lower() in (".jsonl", ".json")


def _delimiter(manifest: Path) -> str:
    return "\t" if manifest.suffix.lower() == ".tsv" else ","


def column_name(name: Any) -> Any:
    """A header name as ser_hf reads it: one of its own column names (:data:`KNOWN`, :data:`SET_BY_SER_HF`) in any
    case, surrounding spaces ignored (``' Path'`` is ``'path'``: spreadsheets keep both), other names as written."""
    if not isinstance(name, str):
        return name  # the None key of a CSV row's extra cells
    key = name.strip().casefold()
    return key if key in KNOWN or key in SET_BY_SER_HF else name


def _rename_columns(row: dict, where: str, spellings: dict[str, Any] | None = None) -> dict:
    """``row`` with its keys read by :func:`column_name`, and every other key that differs from one seen before only
    in case or surrounding spaces (``mic``, ``Mic``, ``mic ``) read as the spelling seen first: ``spellings`` (fold
    -> that spelling) is shared by the rows of one file, else a JSON-lines file's rows spelling one key two ways made
    two columns, each holding part of the values, without a word. Refused when two keys of one row become one
    (``path`` and ``Path``, ``mic`` and ``Mic``): which value is meant cannot be told."""
    spellings = {} if spellings is None else spellings
    renamed: dict = {}
    spelled: dict = {}
    for key, value in row.items():
        name = column_name(key)
        if isinstance(name, str):
            name = spellings.setdefault(name.strip().casefold(), name)
        if name in renamed:
            raise CorpusError(f"{where} names the column {name!r} twice, as {printable(str(spelled[name]))!r} and "
                              f"{printable(str(key))!r}; column names are matched in any case and surrounding spaces "
                              f"ignored. Remove or rename one of them.")
        renamed[name], spelled[name] = value, key
    return renamed


def _json_cell(value: Any) -> Any:
    """A JSON value as the text a CSV cell would hold: ``None`` and NaN are empty, a whole float is an integer
    (``1.0`` is ``'1'``: writers turn integer ids into floats). A bool, list or object is returned as it is, for
    :func:`_row_problem` to refuse in ser_hf's own columns."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _blank(row: dict) -> bool:
    """Whether a row holds nothing at all (a line of spaces, or only commas, as spreadsheets export empty rows)."""
    cells = [value for key, value in row.items() if key is not None] + list(row.get(None) or [])
    return all(not (cell or "").strip() for cell in cells)


def read_rows(manifest: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a CSV (``.csv``/``.tsv``) or JSON-lines manifest as dictionaries of strings, each with the line it
    starts on; rows holding nothing (blank or whitespace-only lines, only commas) are skipped.

    The file must be UTF-8 (a byte-order mark is fine). Column names are read by :func:`_rename_columns`. A CSV row
    with more or fewer cells than the header gets the key ``None`` (its extra cells) or ``None`` values (its
    missing cells); a JSON value that is a bool, list or object stays as it is; :func:`list_clips` reports them.

    Raises:
        CorpusError: the file is not UTF-8, not CSV (a quote never closed, a row running over several lines), has
            a line that is not a JSON object, or names a column twice.
    """
    shown = display_path(manifest)
    if _is_json(manifest):
        rows = read_jsonl_rows(manifest, "Manifest", '{"path": "a.wav", "label": "happy"}')
        spellings: dict[str, Any] = {}
        return [(line, _rename_columns({str(k): _json_cell(v) for k, v in row.items()},
                                       f"Manifest {shown!r} line {line}", spellings)) for line, row in rows]
    header, rows = read_csv_rows(manifest, "Manifest", "a header row path,label,...", delimiter=_delimiter(manifest))
    _rename_columns(dict.fromkeys(header), f"Manifest {shown!r}: its header")
    return [(line, {column_name(k): v for k, v in row.items()}) for line, row in rows if not _blank(row)]


def _row_problem(row: dict) -> str | None:
    """Why a row cannot be read (extra or missing CSV cells, a JSON list or bool in one of ser_hf's columns, an
    empty required cell), or None."""
    if None in row:
        return f"the row has {len(row[None])} more cell(s) than the header ({row[None]}); quote cells holding commas"
    missing = [key for key, value in row.items() if value is None]
    if missing:
        return f"the row has no cell for column(s) {missing}; give every row as many cells as the header"
    for name in KNOWN:
        if name in row and not isinstance(row[name], str):
            return (f"the {name!r} value is a JSON {type(row[name]).__name__} ({printable(repr(row[name]))[:60]}); "
                    f"expected text or a number. Fix the value")
    return next((f"the {name!r} cell is empty or missing; fill it" for name in REQUIRED
                 if not (row.get(name) or "").strip()), None)


def _resolve(manifest: Path, cell: str) -> Path:
    path = Path(cell).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def _clip_path(manifest: Path, cell: str) -> tuple[Path, str | None]:
    """The file a ``path`` cell names (relative to the manifest's folder), and why it cannot be one (a URL; a
    relative path to nothing, with where it was looked for) or None; other missing files are left to the audio
    check.

    A cell with surrounding spaces names the file without them, as ``ser-hf predict`` reads a manifest's paths
    (spreadsheets keep such spaces), unless only the file as written exists (:func:`_spaced_path`).
    """
    if _URL.match(cell.strip()):
        return Path(cell), (f"{printable(cell)!r} is a URL; ser_hf reads local audio files only, never URLs. Download "
                            f"the files and list their local paths (absolute, or relative to the manifest's folder)")
    path, problem = _resolve(manifest, cell), None
    if cell != cell.strip():
        path, problem = _spaced_path(cell, path, _resolve(manifest, cell.strip()))
    if Path(cell.strip()).expanduser().is_absolute():
        return path, problem
    if problem is None and not os.path.lexists(path):
        problem = f"{display_path(path)!r} does not exist"
    if problem is not None and not os.path.lexists(path):
        problem += (f": relative paths are resolved against the manifest's folder {display_path(manifest.parent)!r}, "
                    f"not the working folder. Write the path relative to that folder, or absolute")
    return path, problem


def _spaced_path(cell: str, written: Path, stripped: Path) -> tuple[Path, str | None]:
    """The file a cell with surrounding spaces names: the one without them (as ``ser-hf predict`` reads it) unless
    only the one as written exists; with a problem where both exist as different files (which one is meant cannot be
    told) or neither does (the message says the spaces were ignored)."""
    found = [os.path.lexists(written), os.path.lexists(stripped)]
    if found == [True, False]:
        return written, None
    if found == [False, True] or (all(found) and file_identity(written) == file_identity(stripped)):
        return stripped, None
    if all(found):
        return stripped, (f"the path cell {printable(cell)!r} has surrounding spaces, and both "
                          f"{printable(str(written))!r} and {display_path(stripped)!r} exist; ser_hf cannot tell which "
                          f"is meant. Rename the file whose name has the spaces, or remove them from the cell")
    return stripped, (f"{display_path(stripped)!r} does not exist (the path cell {printable(cell)!r} has surrounding "
                      f"spaces, which are ignored; the path with them does not exist either)")


def _missing_columns(manifest: Path, columns: list, missing: list[str]) -> CorpusError:
    """The error for a manifest without a required column; where the header is one cell holding another
    separator, it says the file is separated by it (Excel writes ';' in many locales) and how to read it."""
    message = (f"Manifest {display_path(manifest)!r} lacks column(s) {missing}; found "
               f"{sorted(str(c) for c in columns if c is not None)}. "
               f"Required: path, label; optional: speaker, gender, split.")
    if _is_json(manifest) or len(columns) != 1:
        return CorpusError(message)
    used = _delimiter(manifest)
    found = next((sep for sep in _SEPARATORS if sep != used and sep in str(columns[0])), None)
    if found is None:
        return CorpusError(message)
    fix = {"\t": "name the file .tsv (a .tsv manifest is tab-separated), or save it comma-separated",
           ",": "name the file .csv (a .csv manifest is comma-separated)"}.get(
        found, "save it comma-separated (Excel: 'CSV UTF-8 (Comma delimited)'), or tab-separated named .tsv")
    return CorpusError(f"{message} Its header is one cell holding {_SEPARATORS[found]}s: the file is "
                       f"{_SEPARATORS[found]}-separated, but a {manifest.suffix or 'CSV'} manifest is read as "
                       f"{_SEPARATORS[used]}-separated; {fix}.")


def _warn_set_by_ser_hf(manifest: Path, columns: list) -> None:
    """Warn that the manifest's columns named like ones ser_hf sets itself (``duration``) are left out."""
    dropped = [name for name in columns if name in SET_BY_SER_HF]
    if dropped:
        logger.warning("manifest %s: column(s) %s are not kept: ser_hf sets them itself for every clip (audio: the "
                       "file in the path column, duration: read from the audio, corpus: 'manifest'). Rename them "
                       "(e.g. 'given_duration') to keep them as metadata.", display_path(manifest), dropped)


def _columns(rows: list[tuple[int, dict[str, Any]]]) -> list:
    """Every row's column names, in the order first seen: a JSON-lines row may hold keys that earlier rows lack
    (rows without a key get no value), and taking the first row's alone lost them without a word."""
    return list(dict.fromkeys(key for _, row in rows for key in row))


def list_clips(root: Path, label_map: Mapping[str, str] | None = None) -> Iterator[Clip | Problem]:
    manifest = find_manifest(root)
    rows = read_rows(manifest)
    columns = _columns(rows)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise _missing_columns(manifest, columns, missing)
    _warn_set_by_ser_hf(manifest, columns)
    for number, row in rows:
        problem = _row_problem(row)
        path, bad_path = (None, None) if problem else _clip_path(manifest, row["path"])
        if problem or bad_path:
            yield Problem(f"{manifest}:{number}" + (f" ({row['path']})" if bad_path else ""), problem or bad_path)
            continue
        try:
            yield Clip(
                path=str(path),
                raw_label=row["label"],
                emotion=raw_label_to_emotion(row["label"], label_map),
                speaker=normalize_speaker(row.get("speaker")),
                gender=normalize_gender(row.get("gender")),
                metadata={"split": (row.get("split") or "").strip() or None,
                          **{k: v if isinstance(v, str) else str(v) for k, v in row.items()
                             if k not in KNOWN and k not in SET_BY_SER_HF}},
                where=f"{manifest.name} line {number}",
            )
        except CorpusError as err:
            yield Problem(f"{manifest}:{number} ({row['path']})", str(err))


def manifest_features(data_dir: Path) -> dict[str, datasets.Value]:
    """The extra string columns a manifest carries (its own metadata), plus ``split``; columns named like those
    ser_hf sets itself (:data:`SET_BY_SER_HF`) are not among them."""
    rows = read_rows(find_manifest(data_dir))
    extra = [name for name in _columns(rows)
             if name is not None and name not in KNOWN and name not in SET_BY_SER_HF]
    return {"split": datasets.Value("string"), **{name: datasets.Value("string") for name in extra}}


CORPUS = Corpus(name="manifest", list_clips=list_clips, features=manifest_features, doc=__doc__)
