"""The speaker-adaptive ``ser-hf predict`` job (``--speaker-pattern``/``--speaker-column``): two passes per speaker.

The first pass keeps each clip's pooled states and enrolls the speaker from all their clips in the job; the second
scores the clips still to do from those states, chunk by chunk (see :func:`predict_by_speaker`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import error_record, is_error, predict_chunk
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.paths import path_fields, printable

__all__ = ["predict_by_speaker"]


def _pool_chunk(recognizer: EmotionRecognizer, paths: Sequence[str],
                records: dict[str, dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Each decodable file's pooled states (of the clip, then of each test-time copy: one row each); a file that
    cannot be decoded or encoded gets its error record in ``records`` instead. The waves are dropped on return."""
    enrollments, waves = recognizer.enrollments, {}
    for path in paths:
        try:
            waves[path] = recognizer.load(path)
        except (SERError, OSError, RuntimeError) as err:
            records[path] = error_record(path, err)
    if not waves:
        return {}
    try:
        versions = enrollments.versions(list(waves.values()), recognizer.batch_size)
        return {path: [states[i:i + 1] for states in versions] for i, path in enumerate(waves)}
    except (SERError, RuntimeError):  # one clip broke the batch: one by one
        pooled = {}
        for path, wave in waves.items():
            try:
                pooled[path] = enrollments.versions([wave], recognizer.batch_size)
            except (SERError, RuntimeError) as err:
                records[path] = error_record(path, err)
        return pooled


def _score_speaker(recognizer: EmotionRecognizer, speaker: str, pooled: Mapping[str, list[np.ndarray]],
                   path: str, top_k: int | None) -> dict[str, Any]:
    enrollments = recognizer.enrollments
    clip, *copies = pooled[path]
    try:
        row = enrollments.probabilities(speaker, clip, copies)[0]
        adapted = bool(enrollments.summary(speaker)["adapted"])
        # A name's bytes as \xNN, like "path".
        return {**path_fields(path), **recognizer.result(row, top_k), "speaker": printable(speaker), "adapted": adapted}
    except SERError as err:
        return error_record(path, err)


def predict_by_speaker(recognizer: EmotionRecognizer, paths: Sequence[str], todo: Sequence[str],
                       speakers: dict[str, str | None], write: Callable[[list[dict]], None], top_k: int | None,
                       chunk_size: int, bar) -> int:
    """Speaker-adaptive job: enroll each speaker from all their clips in the job, then score their clips.

    Per speaker, two passes of ``chunk_size`` files: the first keeps only each clip's pooled states (small vectors,
    never the waves) and enrolls the speaker from all of them; the second scores the clips still to do from those
    states and writes them chunk by chunk, so a kill loses at most one chunk of records. Enrollment uses every clip
    of the speaker in the job (done ones too), so a resumed job computes the very same offset. Files without a
    speaker are scored by the global head, chunk by chunk. Records gain ``speaker`` and ``adapted``.
    """
    errors, pending = 0, set(todo)
    groups: dict[str | None, list[str]] = {}
    for path in paths:
        groups.setdefault(speakers.get(path), []).append(path)

    def emit(records: list[dict]) -> None:
        nonlocal errors
        errors += sum(is_error(record) for record in records)
        write(records)
        bar.update(len(records))

    for speaker, members in groups.items():
        mine = [path for path in members if path in pending]
        if not mine:
            continue
        if speaker is None:
            for start in range(0, len(mine), chunk_size):
                chunk = predict_chunk(recognizer, mine[start: start + chunk_size], top_k)
                emit([{**record, "speaker": None, "adapted": False} if not is_error(record) else record
                      for record in chunk])
            continue
        records: dict[str, dict[str, Any]] = {}
        pooled: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(members), chunk_size):
            pooled.update(_pool_chunk(recognizer, members[start: start + chunk_size], records))
        kept = [pooled[path] for path in members if path in pooled]
        versions = [np.concatenate(rows) for rows in zip(*kept)] if kept else []
        recognizer.enrollments.enroll(speaker, versions[0] if versions else np.zeros((0,)), versions[1:])
        for start in range(0, len(mine), chunk_size):
            emit([records.get(path) or _score_speaker(recognizer, speaker, pooled, path, top_k)
                  for path in mine[start: start + chunk_size]])
    return errors

