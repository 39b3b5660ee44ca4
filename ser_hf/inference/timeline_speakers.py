"""The speaker-adaptive window job (``ser-hf predict --window ... --speaker-pattern/--speaker-column``): a timeline
per file, every window scored for the file's speaker, enrolled from all their voiced windows in the job.

It is the clip job's two passes (:mod:`~ser_hf.inference.speaker_jobs`) with windows for clips. Per speaker:

1. every file of theirs in the job (finished ones too, so a resumed job enrolls them the same) is read as
   ``predict_long`` reads it, and each voiced window's pooled states are kept
   (:class:`~ser_hf.inference.speaker_scorers.WindowCollector`: small vectors, never the audio);
2. the speaker is enrolled from all those windows, screened as enrollment clips are (windows silent or voiceless
   before the checkpoint's cleaning, and windows whose samples repeat an earlier one, left out:
   :func:`~ser_hf.inference.enrollment_inputs.screen`), with the estimator and minimum the model chose in training;
3. each file still to do is read again and its windows scored from the states kept
   (:class:`~ser_hf.inference.speaker_scorers.WindowReplay`: the encoder runs once per window), and its record written.

Which windows enroll a speaker is what transductive enrollment ("all clips" in the accuracy table) does with clips:
nothing labelled, nothing from another speaker. A speaker with a single short file has few windows, and overlapping
windows (``hop < window``) share their audio, so they count for less than separate clips would: a speaker below the
model's minimum falls back to the global head and the records say so (``adapted: false``), as in the clip job.

Records are the timeline job's (:mod:`~ser_hf.inference.timeline_records`) plus ``speaker`` (and ``speaker_base64``
where it is not UTF-8), ``adapted`` (also in every window) and ``enrollment``
(:func:`~ser_hf.inference.speaker_jobs.enrollment_digest` of the enrolled windows' samples: a resumed job whose
speaker would now be enrolled from other windows is refused before it writes that speaker's first record; the
records of speakers scored before it in the same run are kept, valid). Memory: the kept states of one
speaker's windows, ``4 * layers * hidden`` bytes per window and test-time copy (about 14 KB with whisper-base: 50 MB
for an hour of a speaker's audio at the default 1 s hop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import error_record, is_error
from ser_hf.inference.clip_inputs import describe_input
from ser_hf.inference.enrollment_inputs import screen
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.inference.speaker_jobs import enrollment_digest, mixing_error, shown_speaker, speaker_fields
from ser_hf.inference.speaker_scorers import WindowCollector, WindowReplay
from ser_hf.inference.timeline_records import TimelineSettings, score_file, timeline_record
from ser_hf.paths import display_path

__all__ = ["predict_timelines_by_speaker"]


def _collect(recognizer: EmotionRecognizer, enrollments, path: str, settings: TimelineSettings,
             progress: bool) -> WindowCollector | dict[str, Any]:
    """The first pass over one file: its collected windows, or its error record."""
    collector = WindowCollector(enrollments)
    try:
        score_file(recognizer, path, settings, None, progress, collector)
    except (SERError, OSError, RuntimeError) as err:
        return error_record(path, err)
    return collector


def _enroll(enrollments, speaker: str, collected: Mapping[str, WindowCollector]) -> str:
    """Enroll ``speaker`` from the screened windows of every file collected; returns the enrollment digest."""
    voiced = [collector for collector in collected.values() if collector.keys]  # a silent file has no window
    levels = [level for collector in voiced for level in collector.levels]
    keys = [key for collector in voiced for key in collector.keys]
    kept, silent, repeated = screen(levels, keys) if keys else ([], 0, 0)
    mask = np.asarray(kept, dtype=bool)
    states = [collector.states() for collector in voiced]
    versions = ([np.concatenate(per_version)[mask].astype(np.float64) for per_version in zip(*states)] if states
                else [np.zeros((0,))])
    enrollments.enroll(speaker, versions[0], versions[1:], silent=silent, repeated=repeated)
    return enrollment_digest(key for key, keep in zip(keys, kept) if keep)


def predict_timelines_by_speaker(recognizer: EmotionRecognizer, paths: Sequence[str], todo: Sequence[str],
                                 speakers: dict[str, str | None], write: Callable[[list[dict]], None],
                                 top_k: int | None, bar, out: Path, settings: TimelineSettings, progress: bool,
                                 recorded: Mapping[str, set[str]] | None = None) -> int:
    """Speaker-adaptive window job (see the module docstring): each speaker enrolled from all their voiced windows
    in the job, then each of their files still to do scored for them and written, one record at a time. Files
    without a speaker get the global head's timeline (``speaker`` null, ``adapted`` false). Speakers are enrolled in
    a registry of the job's own: the recognizer's enrollments, the caller's, are never replaced. ``recorded``: each
    speaker's ``enrollment`` digests in ``out``'s finished records (:func:`~ser_hf.inference.speaker_jobs.
    check_finished_speakers`). Returns the error count.

    Raises:
        SERError: before a speaker's first new record, when they would now be enrolled from other windows than
            their finished records were (files added, removed, changed or given to another speaker since).
    """
    errors, pending = 0, set(todo)
    enrollments = recognizer.enrollments.without_speakers()  # the job's own: the caller's enrollments stay theirs
    groups: dict[str | None, list[str]] = {}
    for path in paths:
        groups.setdefault(speakers.get(path), []).append(path)

    def emit(record: dict[str, Any]) -> None:
        nonlocal errors
        errors += is_error(record)
        write([record])
        bar.update(1)

    for speaker, members in groups.items():
        mine = [path for path in members if path in pending]
        if not mine:
            continue
        if speaker is None:
            for path in mine:
                record = timeline_record(recognizer, path, settings, top_k, progress)
                emit(record if is_error(record) else {**record, "speaker": None, "adapted": False})
            continue
        firsts = {path: _collect(recognizer, enrollments, path, settings, progress) for path in members}
        collected = {path: first for path, first in firsts.items() if isinstance(first, WindowCollector)}
        enrollment = _enroll(enrollments, speaker, collected)
        if (recorded or {}).get(speaker, {enrollment}) != {enrollment}:
            unreadable = [display_path(path) for path in members if path not in collected]
            now = f"{len(members)} file(s) now" + (f", {len(unreadable)} unreadable: {unreadable[:5]}" if unreadable
                                                   else "")
            raise mixing_error(out, f"speaker {shown_speaker(speaker_fields(speaker))} is enrolled from other windows "
                                    f"than when their finished records were scored ({now}; files were added, removed, "
                                    f"given to another speaker, changed or became unreadable since)")
        for path in mine:
            if path not in collected:
                emit(firsts[path])
                continue
            replay = WindowReplay(enrollments, speaker, collected[path], describe_input(path, 0, True))
            record = timeline_record(recognizer, path, settings, top_k, progress, replay)
            if not is_error(record):
                try:
                    replay.check_finished()
                    record = {**record, **speaker_fields(speaker), "adapted": replay.summary["adapted"],
                              "enrollment": enrollment}
                except SERError as err:
                    record = error_record(path, err)
            emit(record)
    return errors
