"""The JSON shapes the service answers with; FastAPI turns them into the OpenAPI schema at ``/docs``.

Example:
    ```python
    >>> Prediction(label="angry", score=0.8, scores={"angry": 0.8, "sad": 0.2}, duration=2.0).model_dump()["label"]
    'angry'

    ```
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["BatchResponse", "ErrorResponse", "Health", "Labels", "Prediction", "Window"]


class Window(BaseModel):
    """One window of a timeline (or of a live stream)."""

    start: float = Field(description="Start of the window in seconds.")
    end: float = Field(description="End of the window in seconds.")
    label: str = Field(description="Most probable emotion.")
    score: float = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Probabilities, best first (the top_k best when top_k is given).")
    adapted: bool | None = Field(default=None, description="With a speaker (speaker=, or a stream's 'speaker' or "
                                                           "'adapt'): whether the speaker-adaptive head scored it.")


class Prediction(BaseModel):
    """The emotion of one recording; long recordings also get a timeline of windows."""

    label: str | None = Field(description="Most probable emotion (null when every window of a timeline was silent).")
    score: float | None = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Probabilities, best first (over the voiced windows for a timeline).")
    duration: float = Field(description="Length of the audio in seconds.")
    filename: str | None = Field(default=None, description="The uploaded file's name, as the client sent it.")
    timeline: list[Window] | None = Field(
        default=None, description="Windows over time (long audio, or timeline=true); silent windows are left out.")
    skipped: list[list[float]] | None = Field(
        default=None, description="[start, end] of the windows skipped as silence (timeline only).")
    speaker: str | None = Field(default=None, description="The enrolled speaker it was scored for (speaker=).")
    adapted: bool | None = Field(default=None, description="With speaker=: whether the speaker-adaptive head "
                                                           "scored it (false: the global head; too few clips).")
    reason: str | None = Field(default=None, description="With speaker= and adapted false: why the global head "
                                                         "scored it.")


class BatchResponse(BaseModel):
    """One prediction per uploaded file, in upload order."""

    results: list[Prediction]


class Labels(BaseModel):
    labels: list[str] = Field(description="The emotions the model predicts, in its output order.")


class Health(BaseModel):
    status: str = Field(description="'ok' while the server answers.")
    model: str = Field(description="Name of the model directory or preset (no server path).")
    labels: list[str]
    sampling_rate: int = Field(description="The model's sampling rate; other rates are resampled.")
    active: int = Field(description="Requests being decoded or scored now.")
    waiting: int = Field(description="Requests waiting for a slot.")
    streams: int = Field(description="Live streams open now.")
    forward_passes: int = Field(description="Forward passes the micro-batcher made so far.")
    batched_clips: int = Field(description="Single clips scored by those passes (clips / passes = mean batch).")
    limits: dict[str, int | float] = Field(description="Limits a client must respect (bytes, seconds, files).")
    speaker_adaptation: bool = Field(default=False, description="Whether the model adapts to a speaker: enrollment "
                                     "(/speakers), ?speaker= and a stream's 'speaker' or 'adapt'.")
    test_time_copies: list[str] = Field(default_factory=list, description="The altered copies every clip, window "
                                        "and stream is also scored as (ser-hf serve --test-time-copies); empty: "
                                        "each is scored alone, as pipeline() scores it.")
    api_key_required: bool = Field(default=False, description="Whether every endpoint but /health and the web page "
                                   "needs an API key (header 'Authorization: Bearer KEY' or 'X-API-Key: KEY').")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong with the request and how to fix it.")
