"""The speaker-adaptive ``ser-hf predict`` job (``--speaker-pattern``/``--speaker-column``): two passes per speaker.

The first pass keeps each clip's pooled states and enrolls the speaker from all their voiced clips in the job; the
second scores the clips still to do from those states, chunk by chunk (see :func:`predict_by_speaker`).

A speaker's records depend on *all* their files (the offset is estimated from every one), so each record says
which files enrolled its speaker (``enrollment``, :func:`enrollment_digest`), and a resumed job first checks that
its finished records were scored for the same speakers from the same files (:func:`check_finished_speakers`): a
manifest that now gives a file to another speaker, or a folder that gained a clip of a speaker, would otherwise mix
two enrollments of one speaker in one output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.audio import MAX_CLIP_DURATION
from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import error_record, is_error, predict_chunk
from ser_hf.inference.enrollment_inputs import clip_key, screen
from ser_hf.inference.outputs import record_key
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.inference.streaming import window_level_db
from ser_hf.names import speaker_text
from ser_hf.paths import display_path, path_fields, text_fields

__all__ = ["check_finished_speakers", "enrollment_digest", "predict_by_speaker"]


def enrollment_digest(members: Sequence[str]) -> str:
    """Which files a speaker was enrolled from, as 16 hex digits (SHA-256 of their absolute paths' bytes, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(os.fsencode(os.path.abspath(path)) for path in members):
        digest.update(path + b"\0")
    return digest.hexdigest()[:16]


def _speaker_fields(speaker: str | None) -> dict[str, Any]:
    """A record's ``speaker`` (shown as text, \\xNN for bytes that are not UTF-8) and, for those, ``speaker_base64``."""
    return {"speaker": None} if speaker is None else text_fields(speaker, "speaker")


def check_finished_speakers(out: Path, records: Sequence[dict[str, Any]], speakers: dict[str, str | None]) -> None:
    """Refuse to resume ``out`` when a finished record was scored for another speaker than its file now has, or its
    speaker was enrolled from other files than the speaker now has in the job (records without ``enrollment``, from
    an older ser_hf, are checked for their speaker only).

    Raises:
        SERError: naming the output, one file and what changed, and the fixes.
    """
    members: dict[str | None, list[str]] = {}
    for path, speaker in speakers.items():
        members.setdefault(speaker, []).append(path)
    current = {os.path.abspath(path): path for path in speakers}
    finished = [(current[record_key(record)], record) for record in records
                if "speaker" in record and record_key(record) in current]  # of a speaker job, among the inputs
    change = None
    for path, record in finished:  # a file given to another speaker is the change to name first
        recorded = {key: record.get(key) or None for key in ("speaker", "speaker_base64")}
        if recorded["speaker"] is not None and recorded["speaker_base64"] is None:
            recorded["speaker"] = speaker_text(str(recorded["speaker"]))  # ids from before NFC keys
        now = {"speaker_base64": None, **_speaker_fields(speakers[path])}
        if recorded != now:
            change = (f"{display_path(path)!r} was scored as speaker {_shown(recorded['speaker'])}; the inputs now "
                      f"give it to {_shown(now['speaker'])}")
            break
    digests: dict[str, str] = {}
    for path, record in finished if change is None else ():
        speaker = speakers[path]
        if speaker is None or not record.get("enrollment") or is_error(record):
            continue
        if record["enrollment"] != digests.setdefault(speaker, enrollment_digest(members[speaker])):
            change = (f"speaker {_shown(_speaker_fields(speaker)['speaker'])} was enrolled from other files when "
                      f"{display_path(path)!r} was scored (the inputs now give them {len(members[speaker])} "
                      f"file(s): files were added, removed or moved to another speaker)")
            break
    if change is not None:
        name = display_path(out)
        raise SERError(f"--out {name!r} holds records that this job would not write again: {change}. A speaker's "
                       f"records are scored with an offset estimated from all their files, so resuming would mix two "
                       f"enrollments of one speaker in one output. Run it with the inputs (and speaker option) of the "
                       f"first run, choose another --out, or delete {name!r} to start over.")


def _shown(speaker: str | None) -> str:
    return "(none: the global model)" if speaker is None else repr(speaker)


def _pool_chunk(recognizer: EmotionRecognizer, paths: Sequence[str], records: dict[str, dict[str, Any]],
                screening: dict[str, tuple[float, bytes]]) -> dict[str, list[np.ndarray]]:
    """Each decodable file's pooled states (of the clip, then of each test-time copy: one row each), and in
    ``screening`` its level before preprocessing and :func:`~ser_hf.inference.enrollment_inputs.clip_key` (what
    :func:`~ser_hf.inference.enrollment_inputs.screen` reads); a file that cannot be decoded or encoded gets its error
    record in ``records`` instead. The waves are dropped on return."""
    enrollments, waves = recognizer.enrollments, {}
    for path in paths:
        try:
            raw = recognizer.load_raw(path, MAX_CLIP_DURATION)
            waves[path] = recognizer.prepare(raw)
            screening[path] = (window_level_db(raw), clip_key(waves[path]))
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
                   path: str, top_k: int | None, enrollment: str) -> dict[str, Any]:
    enrollments = recognizer.enrollments
    clip, *copies = pooled[path]
    try:
        row = enrollments.probabilities(speaker, clip, copies)[0]
        adapted = bool(enrollments.summary(speaker)["adapted"])
        return {**path_fields(path), **recognizer.result(row, top_k), **_speaker_fields(speaker), "adapted": adapted,
                "enrollment": enrollment}
    except SERError as err:
        return error_record(path, err)


def predict_by_speaker(recognizer: EmotionRecognizer, paths: Sequence[str], todo: Sequence[str],
                       speakers: dict[str, str | None], write: Callable[[list[dict]], None], top_k: int | None,
                       chunk_size: int, bar) -> int:
    """Speaker-adaptive job: enroll each speaker from all their voiced clips in the job, then score their clips.

    Per speaker, two passes of ``chunk_size`` files: the first keeps only each clip's pooled states (small vectors,
    never the waves) and enrolls the speaker from all of them; the second scores the clips still to do from those
    states and writes them chunk by chunk, so a kill loses at most one chunk of records. Enrollment uses every clip
    of the speaker in the job (done ones too; silent ones and repeats of a recording, by
    :func:`~ser_hf.inference.enrollment_inputs.screen`, left out), so a resumed job computes the very same offset
    (:func:`check_finished_speakers` refuses one whose speakers' files changed). Files without a speaker are scored
    by the global head, chunk by chunk. Records gain ``speaker`` (and ``speaker_base64`` where it is not UTF-8),
    ``adapted`` and ``enrollment``.
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
        screening: dict[str, tuple[float, bytes]] = {}
        for start in range(0, len(members), chunk_size):
            pooled.update(_pool_chunk(recognizer, members[start: start + chunk_size], records, screening))
        decoded = [path for path in members if path in pooled]
        enrolled, silent, repeated = screen(*zip(*(screening[path] for path in decoded))) if decoded else ([], 0, 0)
        kept = [pooled[path] for path, keep in zip(decoded, enrolled) if keep]  # no silence, each recording once
        versions = [np.concatenate(rows) for rows in zip(*kept)] if kept else []
        recognizer.enrollments.enroll(speaker, versions[0] if versions else np.zeros((0,)), versions[1:],
                                      silent=silent, repeated=repeated)
        enrollment = enrollment_digest(members)
        for start in range(0, len(mine), chunk_size):
            emit([records.get(path) or _score_speaker(recognizer, speaker, pooled, path, top_k, enrollment)
                  for path in mine[start: start + chunk_size]])
    return errors

