"""Speaker enrollment over HTTP: ``/speakers`` endpoints and ``?speaker=`` on ``POST /predict``.

Works with a checkpoint trained with ``probe_speaker_adaptation: true`` (see
:mod:`ser_hf.inference.speakers`). A client enrolls a speaker with a few of their unlabelled clips, then
adds ``speaker=ID`` to ``POST /predict`` (whole clips and timelines) or ``"speaker": ID`` to a ``/stream``
config; the answer says ``speaker`` and ``adapted`` (false, with the ``reason``, when the speaker had too few
clips or adaptation is off for the model: the global head scored it). Enrollments live
in the server's memory, at most :data:`MAX_SPEAKERS` of them (the oldest is dropped first); they are lost
on restart. Every endpoint is behind the API key when the server has one.

With test-time copies (``ser-hf serve --test-time-copies``), a speaker is enrolled and scored with every version
of a clip (the clip, then each copy, each with its own offset), as ``EmotionRecognizer.enroll`` and ``predict``
do. Requests change and read the enrolled speakers from the event loop and from worker threads, so every read
or change of the enrollments here holds :func:`registry_lock` (one lock per set of enrollments).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Path, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ser_hf.errors import ModelError, SERError
from ser_hf.service.decoding import RequestError

#: Enrolled speakers one server keeps in memory; enrolling one more drops the oldest.
MAX_SPEAKERS = 1000
#: Speaker ids: short and plain, as they appear in URLs and logs.
SPEAKER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Enrollment(BaseModel):
    """What enrolling a speaker gave."""

    speaker: str = Field(description="The speaker id.")
    clips: int = Field(description="Clips enrolled (the voiced ones, each recording once).")
    adapted: bool = Field(description="False: too few clips, or adaptation is off for this model; the global model "
                                      "scores this speaker.")
    reason: str | None = Field(default=None, description="Why the speaker is not adapted.")
    silent_clips: int = Field(default=0, description="Clips left out as silent or voiceless (silence, a hum, steady "
                              "noise: no voice to learn from).")
    repeated_clips: int = Field(default=0, description="Clips left out as repeats of an earlier one (same samples).")


class Speakers(BaseModel):
    speakers: list[Enrollment] = Field(description="Enrolled speakers, oldest first.")


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def registry_lock(registry: Any) -> threading.RLock:
    """The lock held around every read or change of ``registry.speakers`` by the service.

    One per registry (not per app), so apps serving the same recognizer share it. Hold it only for dictionary
    work and offset arithmetic, never for a forward pass: the event loop takes it too.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(registry)
        if lock is None:
            lock = _LOCKS[registry] = threading.RLock()  # re-entrant: a locked step may call speaker_fields
        return lock


def check_speaker_id(speaker: str) -> str:
    # '.' and '..' are path segments: a client's URL library folds /speakers/../enroll away before it is sent.
    if not SPEAKER_ID.fullmatch(speaker) or set(speaker) == {"."}:
        raise RequestError(422, f"speaker id {speaker[:80]!r} is not allowed: use 1-64 letters, digits, '_', '-' "
                                f"or '.', not only dots.")
    return speaker


def enrollments(recognizer: Any):
    """The recognizer's enrollments, or a 409 saying why this model cannot adapt to speakers."""
    try:
        return recognizer.enrollments
    except (ModelError, SERError) as err:
        raise RequestError(409, f"this model has no speaker adaptation ({err})") from err


def can_adapt(recognizer: Any) -> bool:
    """Whether the recognizer's model adapts to speakers (enrollment, ``?speaker=``, a stream's ``adapt``): it has
    speaker adaptation files, and its inner check left adaptation on (switched off, as in the released
    ``emotion-whisper-base``, every speaker is scored by the global head, with the reason)."""
    try:
        speakers = recognizer.enrollments  # the property raises when the model has no adaptation
    except (ModelError, SERError, AttributeError):
        return False
    return bool(speakers.adaptation.enabled)


def _not_enrolled(speaker: str) -> RequestError:
    return RequestError(404, f"speaker {speaker!r} is not enrolled; POST clips of theirs to "
                             f"/speakers/{speaker}/enroll first (GET /speakers lists the enrolled ones).")


def enrolled(recognizer: Any, speaker: str):
    """The enrollments, after checking that ``speaker`` is enrolled (404 otherwise)."""
    registry = enrollments(recognizer)
    check_speaker_id(speaker)
    with registry_lock(registry):
        if speaker not in registry.speakers:
            raise _not_enrolled(speaker)
    return registry


def speaker_fields(recognizer: Any, speaker: str) -> dict[str, Any]:
    """``speaker``, ``adapted`` and (when not adapted) ``reason`` for an answer scored for an enrolled speaker.

    Raises:
        RequestError: 404 for a speaker who is not enrolled, 409 for a model without speaker adaptation.
    """
    registry = enrollments(recognizer)
    check_speaker_id(speaker)
    with registry_lock(registry):  # the check and the read in one step: a DELETE cannot come in between
        if speaker not in registry.speakers:
            raise _not_enrolled(speaker)
        summary = registry.summary(speaker)
    return {"speaker": speaker, "adapted": summary["adapted"],
            **({"reason": summary["reason"]} if summary.get("reason") else {})}


def speaker_refusal(recognizer: Any, speaker: str, err: SERError) -> RequestError:
    """The 4xx for a library error met while scoring for ``speaker``: 404 when they were forgotten meanwhile
    (``DELETE /speakers/{id}`` while the request waited), else 409 with the library's words (e.g. enrollments
    loaded without this server's test-time copies)."""
    enrolled(recognizer, speaker)  # raises the 404
    return RequestError(409, f"cannot score for speaker {speaker!r} on this server: {err} (POST their clips to "
                             f"/speakers/{speaker}/enroll again to enroll them for this server's model and copies).")


def score_for_speaker(recognizer: Any, speaker: str, waves) -> Any:
    """Probabilities of prepared clips for an enrolled speaker, each version of a clip (the clip, then each
    test-time copy) with its own offset, as ``EmotionRecognizer.predict(..., speaker=)`` scores them (run on a
    model thread)."""
    registry = recognizer.enrollments
    clips, *copies = registry.versions(list(waves), recognizer.batch_size)  # the forward passes, outside the lock
    with registry_lock(registry):
        return registry.probabilities(speaker, clips, copies)


def _enroll(registry: Any, speaker: str, versions: list, left_out: dict[str, int] | None = None) -> dict[str, Any]:
    """Enroll, move the speaker to the newest place and drop the oldest beyond :data:`MAX_SPEAKERS`, in one step.
    ``left_out``: the clips screening left out (``{"silent": n, "repeated": m}``)."""
    clips, *copies = versions
    with registry_lock(registry):
        summary = registry.enroll(speaker, clips, copies, **(left_out or {}))
        key = summary["speaker"]  # the id as enrollments keep it
        registry.speakers[key] = registry.speakers.pop(key)  # re-enrolled: now the newest
        while len(registry.speakers) > MAX_SPEAKERS:
            registry.speakers.pop(next(iter(registry.speakers)))
    return summary


def add_speaker_routes(app: FastAPI, service: Any, read_clips, dependencies: Sequence = ()) -> None:
    """``POST /speakers/{id}/enroll``, ``GET /speakers``, ``DELETE /speakers/{id}``.

    Args:
        read_clips: ``(files) -> async context manager of [UploadedClip]`` (filename, seconds, prepared wave, level
            before cleaning): the app's batch
            reader (limits, budgets, errors), holding a model slot until the block ends, so enrollment's forward
            passes wait their turn like predictions do.
        dependencies: Run before each endpoint (the app's check for parameters an endpoint does not take).
    """
    _id = Path(..., description="Speaker id: 1-64 letters, digits, '_', '-' or '.'.")

    checks = list(dependencies)

    @app.post("/speakers/{speaker}/enroll", response_model=Enrollment, tags=["speakers"], dependencies=checks)
    async def enroll(files: list[UploadFile], speaker: str = _id) -> Enrollment:
        """Enroll a speaker from their unlabelled clips (multipart field `files`, 3 or more, any emotions).

        Silent and voiceless clips (a hum, steady noise) and repeats of a clip are left out, and counted (`silent_clips`, `repeated_clips`), as
        ``EmotionRecognizer.enroll`` does. With test-time copies, each copy of the clips is enrolled too.
        """
        registry = enrollments(service.recognizer)
        check_speaker_id(speaker)
        async with read_clips(files) as clips:
            versions, left_out = await service.runner.call(registry.enrollment_versions,
                                                           [clip.wave for clip in clips],
                                                           service.recognizer.batch_size,
                                                           [clip.level for clip in clips])
        return Enrollment(**await run_in_threadpool(_enroll, registry, speaker, versions, left_out))

    @app.get("/speakers", response_model=Speakers, tags=["speakers"], dependencies=checks)
    async def speakers() -> Speakers:
        """The enrolled speakers."""
        registry = enrollments(service.recognizer)
        with registry_lock(registry):
            summaries = [registry.summary(s) for s in registry.speakers]
        return Speakers(speakers=[Enrollment(**summary) for summary in summaries])

    @app.delete("/speakers/{speaker}", response_model=Enrollment, tags=["speakers"], dependencies=checks)
    async def forget(speaker: str = _id) -> Enrollment:
        """Forget an enrolled speaker."""
        registry = enrollments(service.recognizer)
        check_speaker_id(speaker)
        with registry_lock(registry):  # checked and removed in one step: two DELETEs cannot both pass the check
            if speaker not in registry.speakers:
                raise _not_enrolled(speaker)
            summary = registry.summary(speaker)
            del registry.speakers[speaker]
        return Enrollment(**summary)
