"""What scores a timeline's or a stream's windows for a speaker: the scorers ``EmotionRecognizer.score_timeline``
(and so ``predict_long``) and streams take.

A scorer has ``score(waves, batch_size, levels)`` returning ``(probabilities, adapted)`` for ready windows,
``reads_levels`` (whether it needs the windows' levels before cleaning) and ``summary`` (what a result says of the
speaker, or None):

- :class:`EnrolledSpeaker`: an enrolled speaker's offset from the first window (``predict_long(speaker=...)``);
- :class:`OnlineSpeaker`: a stream's speaker, learnt from the voiced windows heard so far;
- :class:`WindowCollector` and :class:`WindowReplay`: the two passes of a speaker-adaptive window job
  (:mod:`~ser_hf.inference.timeline_speakers`). The first keeps every voiced window's pooled states (small vectors),
  the speaker is enrolled from all of them, and the second scores the same windows from the states kept, so the
  encoder runs once per window.

They were part of :mod:`~ser_hf.inference.speakers` (the enrollment registry), which still exports the first two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ser_hf.errors import AudioError
from ser_hf.inference.enrollment_inputs import clip_key, enrollment_level_db, silent_clips
from ser_hf.models.linear_head import log_softmax, mean_log_probability

#: A :class:`~ser_hf.inference.speakers.SpeakerEnrollments` (not imported: the registry imports this module).
SpeakerEnrollments = Any

__all__ = ["STREAM_WINDOWS", "EnrolledSpeaker", "OnlineSpeaker", "WindowCollector", "WindowReplay",
           "enrollment_summary", "speaker_probabilities", "speaker_said"]


def speaker_probabilities(adaptation, versions: list[np.ndarray], shifts: list) -> np.ndarray:
    """Probabilities from the versions (the clips, then each copy), each with its shift (None: the global head)."""
    return mean_log_probability([log_softmax(adaptation.logits(states, shift))
                                 for states, shift in zip(versions, shifts)])


def speaker_said(summary: dict[str, Any]) -> dict[str, Any]:
    """What a prediction for an enrolled speaker says of the enrollment: ``speaker``, ``adapted`` and ``reason`` (not
    its clip counts or copies)."""
    return {key: summary[key] for key in ("speaker", "adapted", "reason") if key in summary}


def enrollment_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What an enrollment says of itself (no shifts)."""
    return {k: v for k, v in entry.items() if k not in ("shift", "copy_shifts")}


class EnrolledSpeaker:
    """An enrolled speaker scoring windows of a timeline or a stream with their offset from the first window.

    The enrollment is taken as it is when this is made, so forgetting or re-enrolling the speaker meanwhile
    (e.g. ``DELETE /speakers/{id}`` in the service) cannot change or break a stream under way.

    Raises:
        SERError: when ``speaker`` is not enrolled.
    """

    #: The windows' levels are not read: the offset was learnt at enrollment.
    reads_levels = False

    def __init__(self, enrollments: SpeakerEnrollments, speaker: str):
        self.enrollments = enrollments
        entry = enrollments._entry(speaker)  # one lookup: a re-enrollment meanwhile cannot mix two enrollments
        self.summary = enrollment_summary(entry)
        self.shifts = enrollments._shifts(entry, bool(enrollments.copies))

    def score(self, waves, batch_size: int = 8, levels=None) -> tuple[np.ndarray, bool]:
        """Probabilities of windows (the global head's when the speaker is not adapted), and whether adapted
        (``levels`` are not needed: the offset was learnt at enrollment)."""
        versions = self.enrollments.versions(waves, batch_size)
        return speaker_probabilities(self.enrollments.adaptation, versions, self.shifts), self.summary["adapted"]


#: Voiced windows a stream keeps to estimate its speaker's offset online (a bounded, recent memory).
STREAM_WINDOWS = 60


class OnlineSpeaker:
    """A stream's speaker, enrolled online from the voiced windows heard so far (the last :data:`STREAM_WINDOWS`).

    A window learnt from must be voiced as an enrollment clip is (:func:`enrollment_level_db`: at least
    :data:`ENROLLMENT_SILENCE_DB` before cleaning, and holding a voice): the stream's own gate is relative to the
    loudest sample *so far*, so a stream opening on room tone, a hum or a fan (or with no gate) would take it for the
    voice and shift every later window.
    """

    #: The windows' levels (before cleaning) decide which windows it learns from.
    reads_levels = True
    #: What a result says of the speaker: none, as no enrollment was made.
    summary = None

    def __init__(self, enrollments: SpeakerEnrollments):
        self.enrollments = enrollments
        self.kept: list[list[np.ndarray]] = [[] for _ in range(1 + len(enrollments.copies))]  # per version

    def score(self, waves, batch_size: int = 8, levels=None) -> tuple[np.ndarray, bool]:
        """Probabilities of new windows, with the offset re-estimated from every window kept, and whether adapted
        (``levels``: the windows' levels before cleaning, default those of ``waves``)."""
        adaptation = self.enrollments.adaptation
        waves = list(waves)
        versions = self.enrollments.versions(waves, batch_size)
        if levels is None:
            levels = [enrollment_level_db(wave, self.enrollments.sampling_rate) for wave in waves]
        silent = silent_clips(levels)
        self.kept = [(kept + [row for row, quiet in zip(states, silent) if not quiet])[-STREAM_WINDOWS:]
                     for kept, states in zip(self.kept, versions)]
        adapted = adaptation.enabled and len(self.kept[0]) >= adaptation.min_clips
        shifts = [adaptation.enroll(np.stack(kept)) if adapted else None for kept in self.kept]
        return speaker_probabilities(adaptation, versions, shifts), adapted



class WindowCollector:
    """The first pass of a speaker-adaptive window job over one file: every voiced window's pooled states (of the
    window, then of each test-time copy), its level before cleaning and its :func:`clip_key`, in order; it answers
    with the global head's probabilities, which nobody writes."""

    reads_levels = True
    summary = None

    def __init__(self, enrollments: SpeakerEnrollments):
        self.enrollments = enrollments
        self.versions: list[list[np.ndarray]] = [[] for _ in range(1 + len(enrollments.copies))]
        self.levels: list[float] = []
        self.keys: list[bytes] = []

    def score(self, waves, batch_size: int = 8, levels=None) -> tuple[np.ndarray, bool]:
        waves = list(waves)
        versions = self.enrollments.versions(waves, batch_size)
        for kept, states in zip(self.versions, versions):
            kept.append(states.astype(np.float32))  # half the memory; the encoder's states are float32 anyway
        self.levels += list(levels) if levels is not None else [
            enrollment_level_db(wave, self.enrollments.sampling_rate) for wave in waves]
        self.keys += [clip_key(wave) for wave in waves]
        return speaker_probabilities(self.enrollments.adaptation, versions, [None] * len(versions)), False

    def states(self) -> list[np.ndarray]:
        """Every window's states, one array per version (none collected: empty arrays of no windows)."""
        return [np.concatenate(kept) if kept else np.zeros((0,)) for kept in self.versions]


class WindowReplay:
    """The second pass over one file: the windows :class:`WindowCollector` saw, in the same order, scored for an
    enrolled speaker from the states it kept. A window that is not the one seen in the first pass (the file changed
    between the passes) is refused, naming the file.

    Raises:
        SERError: when ``speaker`` is not enrolled.
    """

    reads_levels = False

    def __init__(self, enrollments: SpeakerEnrollments, speaker: str, collected: WindowCollector, what: str):
        self.enrolled = EnrolledSpeaker(enrollments, speaker)
        self.summary = self.enrolled.summary
        self.states, self.keys, self.what, self.at = collected.states(), collected.keys, what, 0

    def score(self, waves, batch_size: int = 8, levels=None) -> tuple[np.ndarray, bool]:
        waves = list(waves)
        end = self.at + len(waves)
        if end > len(self.keys) or [clip_key(wave) for wave in waves] != self.keys[self.at:end]:
            raise AudioError(f"{self.what} changed between the two passes of the speaker-adaptive window job: its "
                             f"windows are not those its speaker was enrolled from. Run the job again once the file "
                             f"stays as it is.")
        versions = [states[self.at:end].astype(np.float64) for states in self.states]
        self.at = end
        return (speaker_probabilities(self.enrolled.enrollments.adaptation, versions, self.enrolled.shifts),
                self.summary["adapted"])

    def check_finished(self) -> None:
        """Refuse a second pass that scored fewer windows than the first saw (the file changed between them)."""
        if self.at != len(self.keys):
            raise AudioError(f"{self.what} changed between the two passes of the speaker-adaptive window job: "
                             f"{self.at} voiced window(s) now, {len(self.keys)} when its speaker was enrolled. Run "
                             f"the job again once the file stays as it is.")
