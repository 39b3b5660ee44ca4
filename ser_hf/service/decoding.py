"""Turn request bodies into audio arrays, from bytes in memory only, or into a clear 4xx :class:`RequestError`.

Uploaded files are decoded with soundfile from a :class:`io.BytesIO` (never from a path a client names),
and raw PCM bodies with :func:`numpy.frombuffer`. Every check that can fail because of what the client
sent raises :class:`RequestError` with the HTTP status and a message that says what was wrong and how to
fix it; the app turns it into ``{"detail": message}``. The header is checked before the samples are
decoded, and decoding stops one frame past the duration limit, so a small compressed file cannot make
the server decode hours of audio.

Example:
    ```python
    >>> from ser_hf.service.decoding import decode_upload
    >>> from ser_hf.service.settings import ServiceSettings
    >>> wave, rate = decode_upload(open("clip.wav", "rb").read(), "clip.wav", ServiceSettings())
    >>> wave.dtype, wave.ndim
    (dtype('float32'), 1)
    ```
"""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf

from ser_hf.audio import MAX_ABS_SAMPLE
from ser_hf.service.settings import ServiceSettings

__all__ = ["PCM_DTYPES", "RequestError", "check_rate", "decode_pcm", "decode_upload", "pcm_to_float"]

#: Raw sample formats accepted by ``POST /predict/pcm`` and the ``/stream`` WebSocket (little-endian).
PCM_DTYPES = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}

MIN_RATE, MAX_RATE = 1000, 384_000

_FORMATS_HINT = ("Expected an audio file libsndfile decodes (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF); convert it, "
                 "e.g. `ffmpeg -i IN -ar 16000 OUT.wav`, or send raw samples to POST /predict/pcm.")


class RequestError(Exception):
    """A request the service refuses: an HTTP status (4xx, or 503 when overloaded) and a message for the client.

    Args:
        status: HTTP status code.
        detail: What was wrong and how to fix it.
        headers: Extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _name(filename: str | None) -> str:
    # The name is the client's text echoed back: shorten it so a huge name cannot bloat the reply.
    text = (filename or "upload")[:80]
    return repr(text)


def _reason(err: Exception) -> str:
    # libsndfile names the BytesIO object ("Error opening <_io.BytesIO object at 0x...>: ..."): drop that part.
    text = " ".join(str(err).split())
    return re.sub(r"Error opening <[^>]*>: ?", "", text).strip() or type(err).__name__


def check_rate(rate: int, what: str) -> None:
    """Refuse sampling rates no microphone or file format uses (they would make resampling blow up)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise RequestError(422, f"{what} has a sampling rate of {rate} Hz; expected {MIN_RATE} to {MAX_RATE} Hz "
                                f"(e.g. 16000, 44100 or 48000).")


def _check_duration(frames: int, rate: int, settings: ServiceSettings, what: str) -> None:
    seconds = frames / rate
    if seconds < settings.min_duration:
        raise RequestError(422, f"{what} is {seconds * 1000:.0f} ms long; this server needs at least "
                                f"{settings.min_duration * 1000:.0f} ms of audio (speech encoders need 25 ms for one "
                                f"frame). Send a longer recording.")
    if seconds > settings.max_duration:
        raise RequestError(413, f"{what} is {seconds:.1f} s long; this server accepts at most {settings.max_duration:g} s "
                                f"per request. Cut it into shorter parts (or start the server with a larger --max-duration).")


def _check_size(size: int, settings: ServiceSettings, what: str) -> None:
    if size == 0:
        raise RequestError(400, f"{what} is empty (0 bytes); send the audio data.")
    if size > settings.max_upload_bytes:
        raise RequestError(413, f"{what} has {size} bytes; this server accepts at most {settings.max_upload_bytes} "
                                f"bytes per file. Send a shorter or compressed (FLAC, OGG) file.")


def _check_finite(wave: np.ndarray, what: str) -> None:
    if not np.isfinite(wave).all():
        raise RequestError(422, f"{what} holds NaN or infinite samples; send finite samples (floats in [-1, 1]).")
    # Finite but absurd samples (3e38) make the model answer NaN: refused as the file decoder refuses them.
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise RequestError(422, f"{what} has samples as large as {peak:.3g}, where full scale is 1.0 (at most "
                                f"{MAX_ABS_SAMPLE:g} is accepted); send samples scaled to [-1, 1].")


def decode_upload(data: bytes, filename: str | None, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    """Decode an uploaded audio file to mono float32 at its own sampling rate.

    Args:
        data: The file's bytes.
        filename: The name the client gave (used in messages only, never opened).
        settings: The limits to enforce.

    Returns:
        ``(wave, sampling_rate)``: a 1-D float32 array and its rate.

    Raises:
        RequestError: 400 (empty), 413 (too many bytes or seconds), 415 (not audio), 422 (no samples,
            damaged, NaN or absurdly large samples, or an absurd sampling rate).
    """
    what = f"file {_name(filename)}"
    _check_size(len(data), settings, what)
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise RequestError(415, f"{what} could not be read as audio ({_reason(err)}). {_FORMATS_HINT}") from err
    if info.frames <= 0 or info.channels <= 0:
        raise RequestError(422, f"{what} has an audio header but no samples; re-export the recording.")
    check_rate(int(info.samplerate), what)
    _check_duration(int(info.frames), int(info.samplerate), settings, what)
    max_frames = int(settings.max_duration * info.samplerate) + 1
    try:
        # frames=: never decode more than the limit allows, whatever the header claimed.
        wave, rate = sf.read(io.BytesIO(data), frames=max_frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise RequestError(422, f"{what} is damaged: its samples could not be decoded ({_reason(err)}). "
                                f"Re-export or convert it.") from err
    if wave.shape[0] == 0:
        raise RequestError(422, f"{what} decodes to 0 samples; re-export the recording.")
    _check_duration(wave.shape[0], int(rate), settings, what)
    mono = wave.mean(axis=1, dtype=np.float32) if wave.shape[1] > 1 else wave[:, 0]
    _check_finite(mono, what)
    return np.ascontiguousarray(mono), int(rate)


def pcm_to_float(data: bytes, dtype: str, channels: int, what: str) -> np.ndarray:
    """Raw little-endian interleaved PCM bytes to a mono float32 array in [-1, 1] (int16 is scaled).

    Raises:
        RequestError: 422 for an unknown dtype, a length that is not whole frames, or NaN samples.
    """
    if dtype not in PCM_DTYPES:
        raise RequestError(422, f"dtype={dtype!r} is not supported; use one of {sorted(PCM_DTYPES)} (little-endian).")
    frame = PCM_DTYPES[dtype].itemsize * channels
    if len(data) % frame:
        raise RequestError(422, f"{what} has {len(data)} bytes, not a whole number of {channels}-channel {dtype} frames "
                                f"({frame} bytes each); send complete frames (check dtype and channels).")
    samples = np.frombuffer(data, dtype=PCM_DTYPES[dtype])
    wave = samples.astype(np.float32) / 32768.0 if dtype == "int16" else samples.astype(np.float32)
    if channels > 1:
        wave = wave.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    _check_finite(wave, what)
    return wave


def decode_pcm(data: bytes, sampling_rate: int, dtype: str, channels: int,
               settings: ServiceSettings) -> np.ndarray:
    """Decode a raw PCM request body to mono float32 at ``sampling_rate``.

    Args:
        data: Interleaved little-endian samples.
        sampling_rate: Their rate in Hz.
        dtype: ``"int16"`` or ``"float32"``.
        channels: Number of interleaved channels (averaged to mono).
        settings: The limits to enforce.

    Returns:
        A 1-D float32 array.

    Raises:
        RequestError: 400 (empty), 413 (too many bytes or seconds), 422 (bad dtype/rate, partial frames, NaN).
    """
    what = "the PCM body"
    _check_size(len(data), settings, what)
    check_rate(sampling_rate, what)
    wave = pcm_to_float(data, dtype, channels, what)
    _check_duration(wave.size, sampling_rate, settings, what)
    return wave
