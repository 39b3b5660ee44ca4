"""Speaker enrollment over HTTP: ``/speakers`` endpoints and ``?speaker=`` on ``POST /predict``.

Works with a checkpoint trained with ``probe_speaker_adaptation: true`` (see
:mod:`ser_hf.inference.speakers`). A client enrolls a speaker with a few of their unlabelled clips, then
adds ``speaker=ID`` to ``POST /predict`` (whole clips and timelines) or ``"speaker": ID`` to a ``/stream``
config; the answer says ``speaker`` and ``adapted`` (false, with the ``reason``, when the speaker had too few
clips or adaptation is off for the model: the global head scored it). Enrollments live
in the server's memory, at most :data:`MAX_SPEAKERS` of them (the oldest is dropped first); they are lost
on restart. Every endpoint is behind the API key when the server has one.
"""

from __future__ import annotations

import re
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
    clips: int = Field(description="Clips enrolled.")
    adapted: bool = Field(description="False: too few clips, or adaptation is off for this model; the global model "
                                      "scores this speaker.")
    reason: str | None = Field(default=None, description="Why the speaker is not adapted.")


class Speakers(BaseModel):
    speakers: list[Enrollment] = Field(description="Enrolled speakers, oldest first.")


def check_speaker_id(speaker: str) -> str:
    if not SPEAKER_ID.fullmatch(speaker):
        raise RequestError(422, f"speaker id {speaker[:80]!r} is not allowed: use 1-64 letters, digits, '_', '-' "
                                f"or '.'.")
    return speaker


def enrollments(recognizer: Any):
    """The recognizer's enrollments, or a 409 saying why this model cannot adapt to speakers."""
    try:
        return recognizer.enrollments
    except (ModelError, SERError) as err:
        raise RequestError(409, f"this model has no speaker adaptation ({err})") from err


def can_adapt(recognizer: Any) -> bool:
    """Whether the recognizer's model has speaker adaptation (enrollment, ``?speaker=``, a stream's ``adapt``)."""
    try:
        _ = recognizer.enrollments  # the property raises when the model has no adaptation
    except (ModelError, SERError, AttributeError):
        return False
    return True


def enrolled(recognizer: Any, speaker: str):
    """The enrollments, after checking that ``speaker`` is enrolled (404 otherwise)."""
    registry = enrollments(recognizer)
    if check_speaker_id(speaker) not in registry.speakers:
        raise RequestError(404, f"speaker {speaker!r} is not enrolled; POST clips of theirs to "
                                f"/speakers/{speaker}/enroll first (GET /speakers lists the enrolled ones).")
    return registry


def speaker_fields(recognizer: Any, speaker: str) -> dict[str, Any]:
    """``speaker``, ``adapted`` and (when not adapted) ``reason`` for an answer scored for an enrolled speaker.

    Raises:
        RequestError: 404 for a speaker who is not enrolled, 409 for a model without speaker adaptation.
    """
    summary = enrolled(recognizer, speaker).summary(speaker)
    return {"speaker": speaker, "adapted": summary["adapted"],
            **({"reason": summary["reason"]} if summary.get("reason") else {})}


def score_for_speaker(recognizer: Any, speaker: str, wave) -> Any:
    """Probabilities of one prepared clip for an enrolled speaker (run on a model thread)."""
    registry = recognizer.enrollments
    return registry.probabilities(speaker, registry.pooled([wave]))[0]


def add_speaker_routes(app: FastAPI, service: Any, read_clips) -> None:
    """``POST /speakers/{id}/enroll``, ``GET /speakers``, ``DELETE /speakers/{id}``.

    Args:
        read_clips: ``async (files) -> list[prepared waves]``: the app's batch reader (limits, budgets, errors).
    """
    _id = Path(..., description="Speaker id: 1-64 letters, digits, '_', '-' or '.'.")

    @app.post("/speakers/{speaker}/enroll", response_model=Enrollment, tags=["speakers"])
    async def enroll(files: list[UploadFile], speaker: str = _id) -> Enrollment:
        """Enroll a speaker from their unlabelled clips (multipart field `files`, 3 or more, any emotions)."""
        registry = enrollments(service.recognizer)
        check_speaker_id(speaker)
        waves = await read_clips(files)
        pooled = await service.runner.call(registry.pooled, waves)
        summary = await run_in_threadpool(registry.enroll, speaker, pooled)
        while len(registry.speakers) > MAX_SPEAKERS:
            registry.speakers.pop(next(iter(registry.speakers)))
        return Enrollment(**summary)

    @app.get("/speakers", response_model=Speakers, tags=["speakers"])
    async def speakers() -> Speakers:
        """The enrolled speakers."""
        registry = enrollments(service.recognizer)
        return Speakers(speakers=[Enrollment(**registry.summary(s)) for s in registry.speakers])

    @app.delete("/speakers/{speaker}", response_model=Enrollment, tags=["speakers"])
    async def forget(speaker: str = _id) -> Enrollment:
        """Forget an enrolled speaker."""
        registry = enrolled(service.recognizer, speaker)
        summary = registry.summary(speaker)
        del registry.speakers[speaker]
        return Enrollment(**summary)
