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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.audio import MAX_CLIP_DURATION
from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import error_record, is_error, predict_chunk
from ser_hf.inference.enrollment_inputs import clip_key, enrollment_level_db, screen
from ser_hf.inference.finished_inputs import paired_records
from ser_hf.inference.outputs import record_key
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.names import speaker_text
from ser_hf.paths import display_path, path_fields, text_fields

__all__ = ["check_finished_speakers", "enrollment_digest", "mixing_error", "predict_by_speaker", "shown_speaker",
           "speaker_fields"]


def enrollment_digest(clip_keys: Iterable[bytes]) -> str:
    """Which clips enrolled a speaker, as 16 hex digits: a SHA-256 of the sorted
    :func:`~ser_hf.inference.enrollment_inputs.clip_key` s (sample hashes) of the clips the offset was learnt from, so
    a file added, removed, given to another speaker, repaired, broken or re-recorded since changes it."""
    digest = hashlib.sha256()
    for key in sorted(clip_keys):
        digest.update(key)
    return digest.hexdigest()[:16]


def speaker_fields(speaker: str | None) -> dict[str, Any]:
    """A record's ``speaker`` (shown as text, \\xNN for bytes that are not UTF-8) and, for those, ``speaker_base64``."""
    return {"speaker": None} if speaker is None else text_fields(speaker, "speaker")


def check_finished_speakers(out: Path, records: Sequence[dict[str, Any]],
                            speakers: dict[str, str | None]) -> dict[str, set[str]]:
    """Before anything changes: refuse to resume ``out`` when a finished record was scored for another speaker than
    its input now has. ``speakers`` is ``{input: speaker}`` in input order; the input a record stands for is the one
    its resume skips (:func:`~ser_hf.inference.finished_inputs.paired_records`). Returns each speaker's ``enrollment``
    digests in the finished records, for :func:`predict_by_speaker` to compare with the speaker's enrollment now,
    before it writes their first record (records without one, from an older ser_hf, are checked for their speaker
    only).

    Raises:
        SERError: naming the output, the file, both speakers and the fixes.
    """
    # The input each record stands for by the very rule that skips it (a job reached by another route too), so a
    # record is never checked against one input and counted as finishing another.
    paired = paired_records(list(speakers), records)
    recorded: dict[str, set[str]] = {}
    for record in records:
        path = paired.get(record_key(record))
        if path is None or "speaker" not in record:
            continue  # a file no longer among the inputs, or a record of a job without speakers
        was = {key: record.get(key) or None for key in ("speaker", "speaker_base64")}
        if was["speaker"] is not None and was["speaker_base64"] is None:
            was["speaker"] = speaker_text(str(was["speaker"]))  # ids from before NFC keys
        now = {"speaker_base64": None, **speaker_fields(speakers[path])}
        if was != now:
            raise mixing_error(out, f"{display_path(path)!r} was scored as speaker {shown_speaker(was)}; the inputs now give it "
                               f"to {shown_speaker(now)}")
        if speakers[path] is not None and record.get("enrollment") and not is_error(record):
            recorded.setdefault(speakers[path], set()).add(str(record["enrollment"]))
    return recorded


def mixing_error(out: Path, change: str) -> SERError:
    """The refusal to resume ``out`` whose finished records were scored for a speaker enrolled otherwise (``change``
    says how)."""
    name = display_path(out)
    return SERError(f"--out {name!r} holds records that this job would not write again: {change}. A speaker's records "
                    f"are scored with an offset estimated from all their clips, so resuming would mix two enrollments "
                    f"of one speaker in one output. Run it with the inputs (and speaker option, and audio files) of the "
                    f"first run, choose another --out, or delete {name!r} to start over.")


def shown_speaker(fields: Mapping[str, Any]) -> str:
    """A record's speaker for a message: the text, and the exact bytes where they tell two alike-looking ids apart."""
    if fields.get("speaker") is None:
        return "(none: the global model)"
    exact = fields.get("speaker_base64")
    return repr(fields["speaker"]) + (f" (bytes, base64: {exact})" if exact else "")


def _pool_chunk(recognizer: EmotionRecognizer, enrollments, paths: Sequence[str], records: dict[str, dict[str, Any]],
                screening: dict[str, tuple[float, bytes]]) -> dict[str, list[np.ndarray]]:
    """Each decodable file's pooled states (of the clip, then of each test-time copy: one row each), and in
    ``screening`` its level before preprocessing (:func:`~ser_hf.inference.enrollment_inputs.enrollment_level_db`) and :func:`~ser_hf.inference.enrollment_inputs.clip_key` (what
    :func:`~ser_hf.inference.enrollment_inputs.screen` reads); a file that cannot be decoded or encoded gets its error
    record in ``records`` instead. The waves are dropped on return."""
    waves = {}
    for path in paths:
        try:
            raw = recognizer.load_raw(path, MAX_CLIP_DURATION)
            waves[path] = recognizer.prepare(raw)
            screening[path] = (enrollment_level_db(raw, recognizer.sampling_rate), clip_key(waves[path]))
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


def _score_speaker(recognizer: EmotionRecognizer, enrollments, speaker: str, pooled: Mapping[str, list[np.ndarray]],
                   path: str, top_k: int | None, enrollment: str) -> dict[str, Any]:
    clip, *copies = pooled[path]
    try:
        row = enrollments.probabilities(speaker, clip, copies)[0]
        adapted = bool(enrollments.summary(speaker)["adapted"])
        return {**path_fields(path), **recognizer.result(row, top_k), **speaker_fields(speaker), "adapted": adapted,
                "enrollment": enrollment}
    except SERError as err:
        return error_record(path, err)


def predict_by_speaker(recognizer: EmotionRecognizer, paths: Sequence[str], todo: Sequence[str],
                       speakers: dict[str, str | None], write: Callable[[list[dict]], None], top_k: int | None,
                       chunk_size: int, bar, out: Path, recorded: Mapping[str, set[str]] | None = None) -> int:
    """Speaker-adaptive job: enroll each speaker from all their voiced clips in the job, then score their clips.

    Per speaker, two passes of ``chunk_size`` files: the first keeps only each clip's pooled states (small vectors,
    never the waves) and enrolls the speaker from all of them; the second scores the clips still to do from those
    states and writes them chunk by chunk, so a kill loses at most one chunk of records. Enrollment uses every clip
    of the speaker in the job (done ones too; silent ones and repeats of a recording, by
    :func:`~ser_hf.inference.enrollment_inputs.screen`, left out), so a resumed job computes the very same offset
    (``recorded``: each speaker's ``enrollment`` digests in ``out``'s finished records, from
    :func:`check_finished_speakers`; a speaker enrolled from other clips now is refused before their first new record,
    the records written so far kept). Speakers are enrolled in a registry of the job's own
    (:meth:`~ser_hf.inference.speakers.SpeakerEnrollments.without_speakers`): the recognizer's enrollments, the
    caller's, are never replaced. Files without a speaker are scored by the global head, chunk by chunk. Records
    gain ``speaker`` (and ``speaker_base64`` where it is not UTF-8), ``adapted`` and ``enrollment``.
    """
    errors, pending = 0, set(todo)
    enrollments = recognizer.enrollments.without_speakers()  # the job's own: the caller's enrollments stay theirs
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
            pooled.update(_pool_chunk(recognizer, enrollments, members[start: start + chunk_size], records, screening))
        decoded = [path for path in members if path in pooled]
        enrolled, silent, repeated = screen(*zip(*(screening[path] for path in decoded))) if decoded else ([], 0, 0)
        kept = [path for path, keep in zip(decoded, enrolled) if keep]  # no silence, each recording once
        enrollment = enrollment_digest(screening[path][1] for path in kept)
        if (recorded or {}).get(speaker, {enrollment}) != {enrollment}:
            raise mixing_error(out, f"speaker {shown_speaker(speaker_fields(speaker))} is enrolled from other clips than when "
                               f"their finished records were scored ({len(kept)} clip(s) now: files were added, "
                               f"removed, given to another speaker, changed or became unreadable since)")
        versions = [np.concatenate(rows) for rows in zip(*(pooled[path] for path in kept))] if kept else []
        enrollments.enroll(speaker, versions[0] if versions else np.zeros((0,)), versions[1:],
                                      silent=silent, repeated=repeated)
        for start in range(0, len(mine), chunk_size):
            emit([records.get(path) or _score_speaker(recognizer, enrollments, speaker, pooled, path, top_k, enrollment)
                  for path in mine[start: start + chunk_size]])
    return errors

