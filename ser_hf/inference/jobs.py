"""Resumable prediction jobs over many audio files: ``ser-hf predict``.

:func:`predict_files` expands the inputs (files, directories searched recursively for audio, glob
patterns, manifest CSVs with a ``path`` column), skips every file the output already records, and
predicts the rest in chunks with an :class:`~ser_hf.inference.recognizer.EmotionRecognizer`. A file that
cannot be decoded or scored becomes an error record ``{"path", "error"}`` and the job goes on.

Crash safety, so a rerun after a kill or a crash finishes the job exactly once per file:

- **JSONL** (default): each chunk's complete records are appended, flushed and ``fsync``-ed. A kill
  mid-write can leave only a torn last line; on resume it is detected (no newline, or not JSON),
  cut off (the file is truncated to the last complete line) and its files are predicted again.
- **CSV**: a CSV cannot be appended safely with a header, so every chunk rewrites the whole file into
  a temporary file beside it (fsync-ed) and swaps it in with ``os.replace``, which is atomic: the file
  is always the old or the new complete table. Columns: ``path, label, score, error`` and one
  probability column per emotion (``prob_<emotion>``, blank outside ``top_k``).

Records are keyed by absolute path (``os.path.abspath``, symlinks not resolved).

Example:
    ```python
    >>> from ser_hf.inference.jobs import predict_files
    >>> predict_files("outputs/rav4", ["recordings/", "extra/*.flac"], "predictions.jsonl")
    {'out': 'predictions.jsonl', 'inputs': 120, 'skipped': 0, 'predicted': 119, 'errors': 1}
    ```
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ser_hf.audio import is_audio_path
from ser_hf.errors import SERError
from ser_hf.inference.recognizer import EmotionRecognizer

__all__ = ["FORMATS", "expand_inputs", "predict_files", "read_records"]

FORMATS = ("jsonl", "csv")
_GLOB_CHARS = set("*?[")
_BASE_COLUMNS = ["path", "label", "score", "error"]


# ------------------------------------------------------------------------------------------------ inputs

def _manifest_paths(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise SERError(
                f"manifest {str(path)!r} has no 'path' column (found {sorted(reader.fieldnames or [])}); "
                f"expected a CSV whose 'path' column lists audio files (relative to the manifest's folder)."
            )
        rows = [row["path"] for row in reader if (row.get("path") or "").strip()]
    return [os.path.abspath(path.parent / row.strip()) for row in rows]


def _directory_paths(path: Path) -> list[str]:
    found = sorted(os.path.abspath(p) for p in path.rglob("*") if p.is_file() and is_audio_path(p))
    if not found:
        raise SERError(
            f"input directory {str(path)!r} holds no audio files (searched recursively for extensions such as "
            f".wav, .flac, .mp3, .ogg); pass a folder of recordings or the files themselves."
        )
    return found


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths of the audio files the inputs name, in order, each once.

    Args:
        inputs: Files, directories (searched recursively for audio extensions), glob patterns
            (``**`` recurses) and manifest CSVs (``*.csv`` with a ``path`` column; relative paths are
            taken from the manifest's folder). A file that does not exist is kept: it becomes an error record.

    Raises:
        SERError: for a glob that matches nothing, a directory without audio, or a manifest without ``path``.
    """
    paths: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            paths += _directory_paths(path)
        elif path.suffix.lower() == ".csv" and path.is_file():
            paths += _manifest_paths(path)
        elif not path.exists() and _GLOB_CHARS & set(text):
            matches = sorted(m for m in glob.glob(str(path), recursive=True) if os.path.isfile(m))
            if not matches:
                raise SERError(f"input pattern {text!r} matches no file; check the pattern or quote it in the shell.")
            paths += [os.path.abspath(m) for m in matches]
        else:
            paths.append(os.path.abspath(path))
    return list(dict.fromkeys(paths))


# ------------------------------------------------------------------------------------------------ output

def _format_for(out: Path, format: str | None) -> str:
    chosen = format or ("csv" if out.suffix.lower() == ".csv" else "jsonl")
    if chosen not in FORMATS:
        raise SERError(f"format must be one of {list(FORMATS)}, got {chosen!r}; e.g. --format jsonl.")
    return chosen


def _read_jsonl(out: Path) -> list[dict[str, Any]]:
    """Complete records of a JSONL output; a torn last line (a killed write) is cut off the file."""
    data = out.read_bytes()
    records, good_end, position = [], 0, 0
    for line in data.splitlines(keepends=True):
        end = position + len(line)
        if not line.endswith(b"\n"):
            break  # torn: the write was cut before its newline
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if end == len(data):
                break  # torn mid-record, newline included by chance: dropped like the above
            raise SERError(
                f"output {str(out)!r} has an unreadable line at byte {position} that is not the last one; it was "
                f"not written by ser-hf predict. Pass another --out or remove the file."
            ) from None
        if isinstance(record, dict) and "path" in record:
            records.append(record)
        good_end = position = end
    if good_end < len(data):
        with out.open("r+b") as handle:
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return records


def _read_csv(out: Path) -> list[dict[str, Any]]:
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise SERError(
                f"output {str(out)!r} is a CSV without a 'path' column (found {sorted(reader.fieldnames or [])}); "
                f"it was not written by ser-hf predict. Pass another --out or remove the file."
            )
        return list(reader)


def read_records(out: str | os.PathLike, format: str | None = None) -> list[dict[str, Any]]:
    """The records an earlier (possibly interrupted) run wrote to ``out`` ([] when it does not exist)."""
    out = Path(out)
    if not out.is_file():
        return []
    return _read_csv(out) if _format_for(out, format) == "csv" else _read_jsonl(out)


def _append_jsonl(out: Path, records: Sequence[dict[str, Any]]) -> None:
    blob = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
    with out.open("ab") as handle:
        handle.write(blob)  # one write per chunk: a kill tears at most the last line
        handle.flush()
        os.fsync(handle.fileno())


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {key: record.get(key, "") for key in _BASE_COLUMNS}
    row.update({f"prob_{label}": value for label, value in record.get("scores", {}).items()})
    return row


def _rewrite_csv(out: Path, rows: list[dict[str, Any]], labels: Sequence[str]) -> None:
    columns = _BASE_COLUMNS + [f"prob_{label}" for label in labels]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    temporary = out.with_name(f".{out.name}.tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, out)


# ------------------------------------------------------------------------------------------------ job

def _error_reason(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _predict_chunk(recognizer: EmotionRecognizer, paths: Sequence[str], top_k: int | None) -> list[dict[str, Any]]:
    """Records for ``paths`` in order: a prediction, or ``{"path", "error"}`` for a file that failed."""
    records: dict[str, dict[str, Any]] = {}
    waves: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            waves[path] = recognizer.load(path)
        except (SERError, OSError, RuntimeError) as err:
            records[path] = {"path": path, "error": _error_reason(err)}
    try:
        rows = recognizer.predict_waves(list(waves.values()))
        records.update({path: {"path": path, **recognizer.result(row, top_k)} for path, row in zip(waves, rows)})
    except (SERError, RuntimeError):
        # One clip (e.g. shorter than the model's receptive field) broke the batch: score one by one.
        for path, wave in waves.items():
            try:
                records[path] = {"path": path, **recognizer.result(recognizer.predict_waves([wave])[0], top_k)}
            except (SERError, RuntimeError) as err:
                records[path] = {"path": path, "error": _error_reason(err)}
    return [records[path] for path in paths]


def predict_files(
    model: str | os.PathLike | EmotionRecognizer,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    format: str | None = None,
    batch_size: int = 8,
    top_k: int | None = None,
    chunk_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict the emotion of every input file into ``out``, resuming where an earlier run stopped.

    Args:
        model: A checkpoint directory, preset or Hub id (see :meth:`EmotionRecognizer.from_pretrained`),
            or a loaded :class:`EmotionRecognizer`.
        inputs: Files, directories, glob patterns and manifest CSVs (see :func:`expand_inputs`).
        out: Output file; files it already records (by absolute path) are skipped.
        format: ``"jsonl"`` or ``"csv"`` (default: ``csv`` for a ``.csv`` name, else ``jsonl``).
        batch_size: Clips per forward pass.
        top_k: Emotions kept per record (default: all).
        chunk_size: Files predicted between two writes of ``out`` (what a crash can lose at most).
        progress: Show a tqdm progress bar.

    Returns:
        ``{"out", "inputs", "skipped", "predicted", "errors"}``: counts of this run (``skipped``: files
        already in ``out``; ``errors``: files of this run recorded as errors).

    Raises:
        SERError: for bad inputs (see :func:`expand_inputs`), a bad ``format``/``chunk_size``, or an output
            file that ser-hf predict did not write. Unreadable audio never raises: it is recorded.
    """
    out = Path(out)
    chosen = _format_for(out, format)
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size), ("top_k", 1 if top_k is None else top_k)):
        if value < 1:
            raise SERError(f"{name} must be a positive integer, got {value}; e.g. --{name.replace('_', '-')} 8.")
    paths = expand_inputs(inputs)
    existing = read_records(out, chosen)
    done = {os.path.abspath(record["path"]) for record in existing}
    todo = [path for path in paths if path not in done]
    summary = {"out": str(out), "inputs": len(paths), "skipped": len(paths) - len(todo), "predicted": 0, "errors": 0}
    if not todo:
        return summary  # nothing left: do not even load the model
    recognizer = model if isinstance(model, EmotionRecognizer) else EmotionRecognizer.from_pretrained(model)
    recognizer.batch_size = batch_size
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = existing if chosen == "csv" else []
    errors = 0
    with tqdm(total=len(paths), initial=len(paths) - len(todo), desc="predict", unit="file",
              disable=not progress) as bar:
        for start in range(0, len(todo), chunk_size):
            records = _predict_chunk(recognizer, todo[start: start + chunk_size], top_k)
            errors += sum("error" in record for record in records)
            if chosen == "jsonl":
                _append_jsonl(out, records)
            else:
                rows += [_csv_row(record) for record in records]
                _rewrite_csv(out, rows, recognizer.labels)
            bar.update(len(records))
    return {**summary, "predicted": len(todo) - errors, "errors": errors}
