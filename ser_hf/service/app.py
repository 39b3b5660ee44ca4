"""The FastAPI app: HTTP prediction endpoints, the live WebSocket and the web page, around one recognizer.

| endpoint               | what it does                                                                      |
|------------------------|-----------------------------------------------------------------------------------|
| ``GET /``              | the web page (record, upload, live mode)                                          |
| ``GET /health``        | status, model name, labels, load and the limits a client must respect             |
| ``GET /labels``        | the emotions the model predicts                                                   |
| ``POST /predict``      | one uploaded file (multipart field ``file``); long audio also gets a timeline     |
| ``POST /predict/pcm``  | a raw little-endian PCM body (``?sampling_rate=&dtype=int16|float32&channels=``)  |
| ``POST /predict/batch``| several files (multipart field ``files``), one prediction each (``?speaker=`` too) |
| ``WS /stream``         | live audio in, one JSON result per window out (see :mod:`ser_hf.service.live`)    |
| ``GET /docs``          | the OpenAPI documentation (``/openapi.json`` is the schema)                       |

Bad requests get a 4xx with ``{"detail": "what was wrong and how to fix it"}``: 400 empty, 401 no or
a wrong API key, 403 an origin not allowed, 408 a body too slow to arrive, 413 too many bytes, seconds
or samples to decode, 415 not audio, 422 unusable audio or parameters (also a query parameter or form field the
endpoint does not take, or two ``file`` parts to ``/predict``: nothing sent is silently ignored), 404 a speaker
who is not enrolled, 409 a speaker this server cannot score for; every refusal for load (queue,
decoding or body budget, connections) is a 503 with ``Retry-After``. Only a bug in the server gives a
500. Audio is decoded from the request bytes in memory; no endpoint takes a path.

A request's order of work keeps slow or heavy clients from holding what others need: its body is
received (within ``body_timeout``, charged to the body budget) before anything else; the file's header
is checked and the samples decoding will produce are reserved from the decoding budget; only then does
it wait for a model slot, decode (in blocks, straight to the model's rate) and score.

Example:
    ```python
    >>> from ser_hf.inference.recognizer import EmotionRecognizer
    >>> from ser_hf.service import ServiceSettings, create_app
    >>> app = create_app(EmotionRecognizer.from_pretrained("outputs/rav4"),  # doctest: +SKIP
    ...                  ServiceSettings(max_duration=120))
    >>> import uvicorn
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # or: ser-hf serve --model outputs/rav4  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import contextlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from ser_hf.errors import AudioError, SERError
from ser_hf.inference.enrollment_inputs import enrollment_level_db
from ser_hf.inference.streaming import resolve_hop
from ser_hf.service.access import AccessMiddleware, AccessPolicy
from ser_hf.service.budget import RETRY_AFTER, ByteBudget
from ser_hf.service.decoding import (
    DECODE_HINT,
    PCM_DTYPES,
    RequestError,
    UploadHeader,
    check_pcm,
    decode_pcm,
    decode_upload,
    megabytes,
    pcm_decoded_bytes,
    read_header,
)
from ser_hf.service.limits import BodyLimitMiddleware
from ser_hf.service.live import serve_stream
from ser_hf.service.runner import Admission, ModelRunner
from ser_hf.service.schemas import BatchResponse, ErrorResponse, Health, Labels, Prediction
from ser_hf.service.settings import ServiceSettings
from ser_hf.service.speakers import (
    add_speaker_routes,
    can_adapt,
    score_for_speaker,
    speaker_fields,
    speaker_refusal,
)

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("ser_hf.service") / "static"))

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 408, 409, 413, 415, 422, 503)}

# Query parameters shared by the prediction endpoints.
_TOP_K = Query(None, ge=1, le=1000, description="Keep the top_k most probable emotions in `scores` (default: all).")
_TIMELINE = Query(None, description="true: windows over time; false: one prediction for the whole clip; "
                                    "default: a timeline when the audio is longer than the server's timeline_after.")
_WINDOW = Query(3.0, ge=0.5, le=30.0, description="Timeline window length in seconds.")
_HOP = Query(None, ge=0.1, le=30.0, description="Seconds between timeline window starts (at most `window`; "
                                                  "default 1, or `window` when it is shorter).")
_FILE = File(..., description="An audio file: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF.")
_FILES = File(..., description="Audio files (repeat the multipart field `files`).")
_SPEAKER = Query(None, description="An enrolled speaker (POST /speakers/{id}/enroll): score the clip, or every "
                                   "window of a timeline, with their voice offset removed (models trained with "
                                   "probe_speaker_adaptation).")
_BATCH_SPEAKER = Query(None, description="An enrolled speaker (POST /speakers/{id}/enroll): score every file as "
                                         "theirs, as POST /predict?speaker= scores one.")


async def known_parameters(request: Request) -> None:
    """Refuse query parameters and form fields the endpoint does not take, and query parameters given twice, with a
    422 naming them.

    A typo (``?speakr=``) or a parameter of another endpoint (``?timeline=`` on a batch) would otherwise be ignored,
    and the client would get an answer to a question it did not ask.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    endpoint = f"{request.method} {getattr(route, 'path', request.url.path)}"
    taken = sorted({param.alias for param in dependant.query_params})
    unknown = sorted(set(request.query_params) - set(taken))
    if unknown:
        raise RequestError(422, f"{endpoint} does not take the query parameter(s) {[u[:40] for u in unknown[:8]]}; "
                                f"it takes {taken}. Remove them (or check their spelling).")
    repeated = sorted(name for name in set(request.query_params) if len(request.query_params.getlist(name)) > 1)
    if repeated:  # every query parameter takes one value; the framework would keep one and drop the others
        raise RequestError(422, f"{endpoint} got the query parameter(s) {repeated} more than once; give each one "
                                f"value.")
    fields = sorted({param.alias for param in dependant.body_params})
    # An endpoint without form fields (POST /predict/pcm) refuses a multipart body itself, with a 415.
    if fields and request.headers.get("content-type", "").startswith("multipart/form-data"):
        sent = (await request.form()).keys()
        unknown = sorted(set(sent) - set(fields))
        if unknown:
            raise RequestError(422, f"{endpoint} does not take the form field(s) {[u[:40] for u in unknown[:8]]}; "
                                    f"it takes {fields}. Send the audio in {fields} only.")


_KNOWN = [Depends(known_parameters)]


class _Service:
    """What the endpoints share: the recognizer, the limits, the scheduler and the counters."""

    def __init__(self, recognizer: Any, settings: ServiceSettings, model_name: str, access: AccessPolicy) -> None:
        self.recognizer, self.settings, self.model_name, self.access = recognizer, settings, model_name, access
        self.runner = ModelRunner(recognizer, settings)
        self.decode_budget = ByteBudget("decoding", settings.decode_budget_bytes, settings.max_decoded_bytes,
                                        RETRY_AFTER)
        self.body_budget = ByteBudget("request bodies", settings.body_budget_bytes, settings.body_budget_bytes,
                                      RETRY_AFTER)
        self.admission: Admission | None = None  # made in the lifespan: asyncio objects belong to a loop
        self.state = {"streams": 0}
        self.speaker_adaptation = can_adapt(recognizer)  # loads the adaptation files once, at start

    def slot(self):
        if self.admission is None:
            raise RuntimeError("the app's lifespan did not run; serve it with uvicorn or use TestClient as a context.")
        return self.admission.slot()

    def wants_timeline(self, timeline: bool | None, duration: float, window: float, hop: float) -> bool:
        settings = self.settings
        if hop > window:
            raise RequestError(422, f"hop={hop:g} is longer than window={window:g}; windows would leave gaps. "
                                    f"Use hop <= window, e.g. window=3&hop=1.")
        if timeline is None:
            timeline = duration > settings.timeline_after
        if not timeline and duration > settings.max_clip_seconds:
            raise RequestError(413, f"the audio is {duration:.1f} s long; one clip is scored whole only up to "
                                    f"{settings.max_clip_seconds:g} s. Ask for a timeline (timeline=true, or leave "
                                    f"timeline out) or cut the audio.")
        if timeline and duration / hop > settings.max_windows:
            raise RequestError(422, f"a timeline of {duration:.1f} s with hop={hop:g} s needs {int(duration / hop)} "
                                    f"windows, more than this server's {settings.max_windows}; use a larger hop.")
        return timeline

    async def predict(self, wave: np.ndarray, rate: int, top_k: int | None, timeline: bool | None,
                      window: float, hop: float, filename: str | None = None, speaker: str | None = None) -> Prediction:
        recognizer = self.recognizer
        duration = wave.size / rate
        # A speaker's clip or timeline is scored by their adaptive head; 404/409 before any scoring.
        fields = {} if speaker is None else speaker_fields(recognizer, speaker)
        try:
            if self.wants_timeline(timeline, duration, window, hop):
                result = await self.runner.call(recognizer.predict_long, (wave, rate), window=window, hop=hop,
                                                top_k=top_k, speaker=speaker, decoded=True)
                overall = result["overall"] or {"label": None, "score": None, "scores": {}}
                return Prediction(**overall, duration=duration, filename=filename, timeline=result["timeline"],
                                  skipped=result["skipped"], **fields)
            prepared = await run_in_threadpool(recognizer.load, (wave, rate), decoded=True)
            if speaker is None:
                row = await self.runner.predict_clip(prepared)
            else:
                row = (await self.runner.call(score_for_speaker, recognizer, speaker, [prepared]))[0]
            # result() refuses a non-finite output: a 422 naming the upload, never a 200 with a null score.
            return Prediction(**recognizer.result(row, top_k), duration=duration, filename=filename, **fields)
        except AudioError as err:
            raise RequestError(422, _named(filename, err)) from err
        except SERError as err:
            if speaker is None:
                raise
            # 404 when forgotten (DELETE /speakers/{id}) while this request waited, else a 409 with the reason.
            raise speaker_refusal(recognizer, speaker, err) from err

    def health(self) -> Health:
        admission = self.admission
        return Health(status="ok", model=self.model_name, labels=self.recognizer.labels,
                      sampling_rate=self.recognizer.sampling_rate, active=admission.active if admission else 0,
                      waiting=admission.waiting if admission else 0, streams=self.state["streams"],
                      forward_passes=self.runner.batches, batched_clips=self.runner.batched_clips,
                      limits=self.settings.public(), speaker_adaptation=self.speaker_adaptation,
                      test_time_copies=self.recognizer.test_time_copies, api_key_required=self.access.key_required)

    def reserve(self, nbytes: int, what: str):
        """Hold ``nbytes`` of the decoding budget for one request (413 / 503 with Retry-After when it cannot)."""
        return self.decode_budget.reserve(nbytes, what, DECODE_HINT)


def _named(filename: str | None, err: AudioError) -> str:
    # The recognizer's messages say "the audio array" (it decodes from memory): say which upload it was.
    return f"{'file ' + repr(filename)[:82] if filename else 'the audio'}: {err}"


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        where = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query")]
        name = ".".join(where) or "request"
        parts.append(f"{name}: {problem.get('msg', 'invalid')}")
    message = "; ".join(parts)
    if any(p.get("loc", ())[:1] == ("body",) for p in err.errors()):
        message += (". Upload audio as multipart/form-data: field 'file' for POST /predict (curl -F file=@clip.wav), "
                    "repeated field 'files' for POST /predict/batch.")
    return message


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(err)}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        # A bug, not a bad request: logged with its traceback (Starlette re-raises it), answered as a 500.
        return JSONResponse({"detail": "internal server error; the failure was logged on the server."},
                            status_code=500)


async def _read_upload(upload: UploadFile, settings: ServiceSettings) -> bytes:
    # The middleware capped the whole body; a file within it can still exceed the per-file cap.
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise RequestError(413, f"file {upload.filename!r:.80} has more than {settings.max_upload_bytes} bytes; this "
                                f"server accepts at most {settings.max_upload_bytes} bytes per file. Send a shorter "
                                f"or compressed (FLAC, OGG) file.")
    return data


def _add_prediction_routes(app: FastAPI, service: _Service) -> None:
    settings = service.settings
    model_rate = int(service.recognizer.sampling_rate)

    @app.post("/predict", response_model=Prediction, responses=_ERRORS, tags=["predict"], dependencies=_KNOWN)
    async def predict(request: Request, file: UploadFile = _FILE,
                      top_k: int | None = _TOP_K, timeline: bool | None = _TIMELINE,
                      window: float = _WINDOW, hop: float | None = _HOP, speaker: str | None = _SPEAKER) -> Prediction:
        """Predict the emotion of one uploaded audio file (multipart field `file`, once)."""
        parts = len((await request.form()).getlist("file"))
        if parts > 1:  # FastAPI would hand over the last one only
            raise RequestError(422, f"POST /predict scores one file, got {parts} 'file' parts; send one file per "
                                    f"request, or send them all to POST /predict/batch (repeated field 'files').")
        data = await _read_upload(file, settings)  # the body arrived before the endpoint ran (within body_timeout)
        header = await run_in_threadpool(read_header, data, file.filename, settings)
        hop = resolve_hop(window, hop)
        timeline = service.wants_timeline(timeline, header.duration, window, hop)
        seconds = settings.max_duration if timeline else settings.max_clip_seconds
        with service.reserve(header.decoded_bytes(seconds), header.describe(seconds)):
            async with service.slot():
                wave, rate = await run_in_threadpool(decode_upload, data, file.filename, settings, model_rate, seconds)
                return await service.predict(wave, rate, top_k, timeline, window, hop, filename=file.filename,
                                             speaker=speaker)

    @app.post("/predict/pcm", response_model=Prediction, responses=_ERRORS, tags=["predict"], dependencies=_KNOWN,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict_pcm(request: Request,
                          sampling_rate: int = Query(..., description="Samples per second of the body, e.g. 16000."),
                          dtype: str = Query("int16", description=f"Sample type, little-endian: {sorted(PCM_DTYPES)}."),
                          channels: int = Query(1, ge=1, le=8, description="Interleaved channels (averaged to mono)."),
                          top_k: int | None = _TOP_K, timeline: bool | None = _TIMELINE,
                          window: float = _WINDOW, hop: float | None = _HOP,
                          speaker: str | None = _SPEAKER) -> Prediction:
        """Predict the emotion of raw PCM samples sent as the request body (`application/octet-stream`)."""
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise RequestError(415, "POST /predict/pcm takes raw samples as the body (application/octet-stream); "
                                    "upload files to POST /predict instead.")
        # The body first, outside any model slot: a slow sender holds no slot, and at most body_timeout seconds.
        data = await request.body()
        frames = check_pcm(data, sampling_rate, dtype, channels, settings)
        hop = resolve_hop(window, hop)
        timeline = service.wants_timeline(timeline, frames / sampling_rate, window, hop)
        decoded = pcm_decoded_bytes(len(data), dtype)
        with service.reserve(decoded, f"the PCM body decodes to {megabytes(decoded)} of samples (float32)"):
            async with service.slot():
                wave = await run_in_threadpool(decode_pcm, data, sampling_rate, dtype, channels, settings, model_rate)
                return await service.predict(wave, model_rate, top_k, timeline, window, hop, speaker=speaker)

    @app.post("/predict/batch", response_model=BatchResponse, responses=_ERRORS, tags=["predict"],
              dependencies=_KNOWN)
    async def predict_batch(files: list[UploadFile] = _FILES, top_k: int | None = _TOP_K,
                            speaker: str | None = _BATCH_SPEAKER) -> BatchResponse:
        """Predict the emotion of several files in one request (one whole-clip prediction each).

        The batch is all or nothing: one unusable file makes the request fail with a 4xx naming it.
        """
        recognizer = service.recognizer
        fields = {} if speaker is None else speaker_fields(recognizer, speaker)  # 404/409 before any decoding
        async with _read_clips(service, files) as clips:
            waves = [clip.wave for clip in clips]
            try:
                rows = await (service.runner.predict_clips(waves) if speaker is None else
                              service.runner.call(score_for_speaker, recognizer, speaker, waves))
            except SERError as err:
                if speaker is None:
                    raise
                raise speaker_refusal(recognizer, speaker, err) from err
        results = []
        for index, ((name, duration, *_), row) in enumerate(zip(clips, rows)):
            try:
                results.append(Prediction(**recognizer.result(row, top_k), duration=duration, filename=name,
                                          **fields))
            except AudioError as err:
                raise RequestError(422, f"files[{index}] ({name!r:.80}): {err}") from err
        return BatchResponse(results=results)


class UploadedClip(NamedTuple):
    """One file of a batch: its name, seconds, the prepared wave, and, for enrollment, its level before the
    checkpoint's cleaning (``enrollment_level_db``: enrollment leaves out silence and voiceless clips by it; a
    peak-normalised hiss is still silence). ``None`` for a prediction, which reads no level."""

    filename: str | None
    seconds: float
    wave: np.ndarray
    level: float | None


@contextlib.asynccontextmanager
async def _read_clips(service: _Service, files: list[UploadFile], levels: bool = False):
    """Decode and prepare several uploads within the batch limits, holding their decoding budget and a model slot.

    Yields :class:`UploadedClip` s, with their levels when ``levels`` (enrollment: the voicing screen costs a few
    ms per 3 s, which a prediction need not pay); one unusable file fails the request with a 4xx naming it.
    """
    settings, model_rate = service.settings, int(service.recognizer.sampling_rate)
    if len(files) > settings.max_batch_files:
        raise RequestError(413, f"{len(files)} files in one request; this server accepts at most "
                                f"{settings.max_batch_files}. Split them into several requests.")
    uploads = [(upload, *await _batch_header(upload, index, settings)) for index, upload in enumerate(files)]
    decoded = sum(header.decoded_bytes(settings.max_clip_seconds) for _, _, header in uploads)
    with service.reserve(decoded, f"the {len(files)} files decode to {megabytes(decoded)} of samples (float32)"):
        async with service.slot():
            yield [await _batch_clip(service, upload, data, index, model_rate, levels)
                   for index, (upload, data, _) in enumerate(uploads)]


async def _batch_header(upload: UploadFile, index: int, settings: ServiceSettings) -> tuple[bytes, UploadHeader]:
    """Read and check one file of a batch from its header; errors name it as ``files[index]``."""
    try:
        data = await _read_upload(upload, settings)
        header = await run_in_threadpool(read_header, data, upload.filename, settings)
        if header.duration > settings.max_clip_seconds:
            raise RequestError(413, f"{upload.filename!r:.80} is {header.duration:.1f} s long; a batch scores each "
                                    f"file whole, up to {settings.max_clip_seconds:g} s. Send it alone to POST "
                                    f"/predict for a timeline, or cut it.")
    except RequestError as err:
        raise RequestError(err.status, f"files[{index}]: {err.detail}", err.headers) from err
    return data, header


async def _batch_clip(service: _Service, upload: UploadFile, data: bytes, index: int,
                      model_rate: int, level: bool) -> UploadedClip:
    """Decode and prepare one file of a batch (and measure its level for enrollment, off the event loop)."""
    try:
        wave, rate = await run_in_threadpool(decode_upload, data, upload.filename, service.settings, model_rate,
                                             service.settings.max_clip_seconds)
        return UploadedClip(upload.filename, wave.size / rate, await run_in_threadpool(
            service.recognizer.load, (wave, rate), decoded=True),
            await run_in_threadpool(enrollment_level_db, wave, rate) if level else None)
    except RequestError as err:
        raise RequestError(err.status, f"files[{index}]: {err.detail}", err.headers) from err
    except AudioError as err:
        raise RequestError(422, f"files[{index}] ({upload.filename!r:.80}): {err}") from err


def create_app(recognizer: Any, settings: ServiceSettings | None = None, model_name: str | None = None,
               access: AccessPolicy | None = None) -> FastAPI:
    """Build the service around one shared recognizer.

    Args:
        recognizer: An :class:`~ser_hf.inference.recognizer.EmotionRecognizer` (shared by every request).
        settings: Limits and scheduling (default: :class:`ServiceSettings` defaults).
        model_name: Name shown by ``/health`` (default: the last part of the model's ``name_or_path``;
            never a full server path).
        access: API key and allowed origins (default: no key; browsers only from the server's own origin).

    Returns:
        A FastAPI app; serve it with uvicorn (``ser-hf serve`` does) or test it with ``TestClient(app)``
        used as a context manager (the lifespan starts the model threads).

    Example:
        ```python
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app(recognizer)) as client:  # doctest: +SKIP
        ...     client.post("/predict", files={"file": open("clip.wav", "rb")}).json()["label"]
        'happy'

        ```
    """
    settings = settings or ServiceSettings()
    name = model_name or Path(str(getattr(recognizer.model, "name_or_path", "") or "model")).name
    access = access or AccessPolicy()
    service = _Service(recognizer, settings, name, access)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.admission = Admission(settings.max_concurrent, settings.max_queued, settings.queue_timeout)
        await service.runner.start()
        try:
            yield
        finally:
            await service.runner.stop()

    app = FastAPI(title="ser_hf speech emotion recognition", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predict emotions in speech: upload files or raw PCM, or stream live audio over "
                              "the /stream WebSocket. The web page is at /.")
    app.state.service = service
    _add_middleware(app, service)
    _add_error_handlers(app)
    _add_prediction_routes(app, service)

    add_speaker_routes(app, service, lambda files: _read_clips(service, files, levels=True), _KNOWN)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))

    @app.get("/health", response_model=Health, tags=["service"], dependencies=_KNOWN)
    async def health() -> Health:
        """Status, model, labels, current load and the limits a client must respect."""
        return service.health()

    @app.get("/labels", response_model=Labels, tags=["service"], dependencies=_KNOWN)
    async def labels() -> Labels:
        """The emotions the model predicts, in its output order."""
        return Labels(labels=recognizer.labels)

    @app.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        """Live audio in, one result per window out (protocol: :mod:`ser_hf.service.live`)."""
        await serve_stream(ws, recognizer, service.runner, settings, service.state)

    _add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs``, its scripts served from the swagger-ui-bundle package (no CDN: works offline)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse("<p>The interactive API page needs the swagger-ui-bundle package: "
                                "<code>pip install 'ser-hf[serve]'</code>. The OpenAPI schema is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>")
        return HTMLResponse((STATIC_DIR / "docs.html").read_text(encoding="utf-8"))

    if swagger_ui_path is not None:  # before /static, which would otherwise answer these paths with 404
        app.mount("/static/docs", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")


def _add_middleware(app: FastAPI, service: _Service) -> None:
    # Added innermost first: CORS answers preflights, then origin and key, then the body bounds.
    settings = service.settings
    app.add_middleware(BodyLimitMiddleware, timeout=settings.body_timeout, budget=service.body_budget,
                       limit_for=lambda path: settings.max_request_bytes(batch=path.rstrip("/").endswith("/batch")))
    app.add_middleware(AccessMiddleware, policy=service.access)
    foreign = [origin for origin in service.access.allowed_origins if origin != "null"]
    if foreign:
        app.add_middleware(CORSMiddleware, allow_origins=foreign, allow_methods=["GET", "POST"], max_age=600,
                           allow_headers=["authorization", "x-api-key", "content-type"])
