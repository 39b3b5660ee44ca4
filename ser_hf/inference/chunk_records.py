"""How a ``ser-hf predict`` job turns a chunk of files into records: one per file, a prediction or an error record.

A file that cannot be decoded or scored (or whose model output is not finite) gets ``{"path", "error"}`` and the
chunk goes on; a clip that breaks a batch is scored alone. :func:`predict_into` hands each chunk's records to the
job's writer, so a kill loses at most one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ser_hf.errors import SERError
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.paths import path_fields, printable

__all__ = ["ChunkScorer", "error_record", "is_error", "predict_chunk", "predict_into"]


def is_error(record: dict[str, Any]) -> bool:
    """Whether ``record`` (a JSONL record or a CSV row) is an error record."""
    return bool(record.get("error"))  # JSONL: key present; CSV: non-empty cell


def _error_reason(err: Exception) -> str:
    return printable(" ".join(f"{type(err).__name__}: {err}".split()))


def error_record(path: str, err: Exception) -> dict[str, Any]:
    """The record of a file that could not be decoded or scored: its path and why, on one printable line."""
    return {**path_fields(path), "error": _error_reason(err)}


def predict_chunk(recognizer: EmotionRecognizer, paths: Sequence[str], top_k: int | None) -> list[dict[str, Any]]:
    """Records for ``paths`` in order: a prediction, or ``{"path", "error"}`` for a file that failed.

    A file whose model output is not finite (NaN probabilities) gets an error record, never a prediction:
    :meth:`EmotionRecognizer.result` refuses such a row.
    """
    records: dict[str, dict[str, Any]] = {}
    waves: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            waves[path] = recognizer.load(path)
        except (SERError, OSError, RuntimeError) as err:
            records[path] = error_record(path, err)
    try:
        rows = dict(zip(waves, recognizer.predict_waves(list(waves.values()))))
    except (SERError, RuntimeError):
        # One clip (e.g. shorter than the model's receptive field) broke the batch: score one by one.
        rows = {}
        for path, wave in waves.items():
            try:
                rows[path] = recognizer.predict_waves([wave])[0]
            except (SERError, RuntimeError) as err:
                records[path] = error_record(path, err)
    for path, row in rows.items():
        try:
            records[path] = {**path_fields(path), **recognizer.result(row, top_k)}
        except SERError as err:
            records[path] = error_record(path, err)
    return [records[path] for path in paths]


#: Scores a chunk of files into their records, in order (:func:`predict_chunk`, or a timeline job's scorer).
ChunkScorer = Callable[[EmotionRecognizer, Sequence[str], int | None], list[dict[str, Any]]]


def predict_into(recognizer: EmotionRecognizer, todo: Sequence[str], write: Callable[[list[dict]], None],
                 top_k: int | None, chunk_size: int, bar, score: ChunkScorer = predict_chunk) -> int:
    """Score ``todo`` chunk by chunk with ``score``, handing each chunk's records to ``write``; returns the error
    count."""
    errors = 0
    for start in range(0, len(todo), chunk_size):
        records = score(recognizer, todo[start: start + chunk_size], top_k)
        errors += sum(is_error(record) for record in records)
        write(records)
        bar.update(len(records))
    return errors
