"""Turn request bodies into audio arrays, from bytes in memory only, or into a clear 4xx :class:`RequestError`.

Uploaded files are decoded with soundfile from a :class:`io.BytesIO` (never from a path a client names),
and raw PCM bodies with :func:`numpy.frombuffer`. Every check that can fail because of what the client
sent raises :class:`RequestError` with the HTTP status and a message that says what was wrong and how to
fix it; the app turns it into ``{"detail": message}``. The header is checked before the samples are
decoded (duration, rate, channels: the app also reserves the bytes decoding will produce from it), and
decoding runs in blocks, each downmixed and resampled before the next is read, stopping one frame past
the duration limit: a small compressed file of many channels at a high rate cannot make the server hold
every channel of minutes of audio.

Example:
    ```python
    >>> import io
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from ser_hf.service.decoding import decode_upload
    >>> from ser_hf.service.settings import ServiceSettings
    >>> upload = io.BytesIO()  # a client's file: 1 s of stereo at 44.1 kHz
    >>> sf.write(upload, np.zeros((44100, 2), dtype=np.float32), 44100, format="WAV")
    >>> wave, rate = decode_upload(upload.getvalue(), "clip.wav", ServiceSettings(), sampling_rate=16000)
    >>> wave.dtype, wave.shape, rate
    (dtype('float32'), (16000,), 16000)

    ```
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ser_hf.audio import DECODE_BLOCK_BYTES, MAX_ABS_SAMPLE, MonoDecoder, read_mono
from ser_hf.service.settings import ServiceSettings

__all__ = ["DECODE_HINT", "PCM_DTYPES", "RequestError", "UploadHeader", "check_pcm", "check_rate", "decode_pcm", "decode_upload",
           "megabytes", "pcm_decoded_bytes", "pcm_to_float", "read_header"]

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


@dataclass(frozen=True)
class UploadHeader:
    """What an uploaded file's header says, checked: enough to decide what to decode and what it will cost."""

    what: str
    rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.rate

    def decoded_bytes(self, max_seconds: float | None = None) -> int:
        """Bytes of float32 samples decoding (up to ``max_seconds``) produces: frames x channels x 4."""
        frames = self.frames if max_seconds is None else min(self.frames, int(max_seconds * self.rate) + 1)
        return frames * self.channels * 4

    def describe(self, max_seconds: float | None = None) -> str:
        return (f"{self.what} decodes to {megabytes(self.decoded_bytes(max_seconds))} of samples "
                f"({self.duration:.1f} s x {self.channels} channels at {self.rate} Hz, float32)")


#: How a client sends less to decode, for 413 messages.
DECODE_HINT = ("Send mono audio at 16 kHz (e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.flac`), or a shorter part "
               "(or start the server with a larger --max-decode-mb).")


def megabytes(nbytes: float) -> str:
    """``"737 MB"``: bytes as megabytes (10^6) for messages."""
    return f"{nbytes / 1e6:.0f} MB" if nbytes >= 1e6 else f"{nbytes / 1e6:.2f} MB"


def read_header(data: bytes, filename: str | None, settings: ServiceSettings) -> UploadHeader:
    """Check an uploaded file from its header alone, before anything is decoded.

    Raises:
        RequestError: 400 (empty), 413 (too many bytes or seconds), 415 (not audio), 422 (no samples, too
            many channels or an absurd sampling rate).
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
    if info.channels > settings.max_channels:
        raise RequestError(422, f"{what} has {info.channels} channels; this server accepts at most "
                                f"{settings.max_channels}. Downmix it (e.g. `ffmpeg -i IN -ac 1 OUT.flac`).")
    _check_duration(int(info.frames), int(info.samplerate), settings, what)
    return UploadHeader(what, int(info.samplerate), int(info.channels), int(info.frames))


def decode_upload(data: bytes, filename: str | None, settings: ServiceSettings, sampling_rate: int | None = None,
                  max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an uploaded audio file to mono float32, in blocks (see :func:`ser_hf.audio.read_mono`).

    The header is checked first (:func:`read_header`); decoding then reads blocks of all channels, downmixes
    and resamples each before the next, and stops one frame past the duration limit, so a small compressed
    file of many channels at a high rate costs its mono output plus one block of memory.

    Args:
        data: The file's bytes.
        filename: The name the client gave (used in messages only, never opened).
        settings: The limits to enforce.
        sampling_rate: Resample to this rate while decoding (``None``: keep the file's rate).
        max_seconds: Decode at most this many seconds (``None``: ``settings.max_duration``); longer gets 413.

    Returns:
        ``(wave, rate)``: a 1-D float32 array and its rate (``sampling_rate`` when given).

    Raises:
        RequestError: as :func:`read_header`, and 422 (damaged, NaN or absurdly large samples).
    """
    header = read_header(data, filename, settings)
    what, rate = header.what, header.rate
    limit = settings.max_duration if max_seconds is None else min(max_seconds, settings.max_duration)
    if header.duration > limit:
        raise RequestError(413, f"{what} is {header.duration:.1f} s long; at most {limit:g} s are used here. Cut it.")
    try:
        with sf.SoundFile(io.BytesIO(data)) as sound:
            # max_frames: never decode more than the limit allows, whatever the header claimed.
            wave, frames = read_mono(sound, what, sampling_rate, int(limit * rate) + 1, check=_check_finite)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise RequestError(422, f"{what} is damaged: its samples could not be decoded ({_reason(err)}). "
                                f"Re-export or convert it.") from err
    if frames == 0 or wave.size == 0:
        raise RequestError(422, f"{what} decodes to 0 samples; re-export the recording.")
    _check_duration(frames, rate, settings, what)
    if frames / rate > limit:
        raise RequestError(413, f"{what} decodes to more than {limit:g} s; at most {limit:g} s are used here. Cut it.")
    return wave, int(sampling_rate or rate)


def pcm_decoded_bytes(size: int, dtype: str) -> int:
    """Bytes of float32 samples a PCM body of ``size`` bytes converts to (all channels)."""
    return size // PCM_DTYPES[dtype].itemsize * 4 if dtype in PCM_DTYPES else 0


def _pcm_samples(data: bytes, dtype: str, channels: int, what: str) -> np.ndarray:
    if dtype not in PCM_DTYPES:
        raise RequestError(422, f"dtype={dtype!r} is not supported; use one of {sorted(PCM_DTYPES)} (little-endian).")
    frame = PCM_DTYPES[dtype].itemsize * channels
    if len(data) % frame:
        raise RequestError(422, f"{what} has {len(data)} bytes, not a whole number of {channels}-channel {dtype} frames "
                                f"({frame} bytes each); send complete frames (check dtype and channels).")
    return np.frombuffer(data, dtype=PCM_DTYPES[dtype]).reshape(-1, channels)


def _to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0 if samples.dtype.kind == "i" else samples.astype(np.float32)


def pcm_to_float(data: bytes, dtype: str, channels: int, what: str) -> np.ndarray:
    """Raw little-endian interleaved PCM bytes to a mono float32 array in [-1, 1] (int16 is scaled).

    Raises:
        RequestError: 422 for an unknown dtype, a length that is not whole frames, or NaN samples.
    """
    wave = _to_float(_pcm_samples(data, dtype, channels, what))
    _check_finite(wave, what)
    return wave[:, 0].copy() if channels == 1 else wave.mean(axis=1, dtype=np.float32)


def check_pcm(data: bytes, sampling_rate: int, dtype: str, channels: int, settings: ServiceSettings) -> int:
    """Check a raw PCM body without converting it; returns its number of frames.

    Raises:
        RequestError: 400 (empty), 413 (too many bytes or seconds), 422 (bad dtype or rate, partial frames).
    """
    what = "the PCM body"
    _check_size(len(data), settings, what)
    check_rate(sampling_rate, what)
    frames = _pcm_samples(data, dtype, channels, what).shape[0]
    _check_duration(frames, sampling_rate, settings, what)
    return frames


def decode_pcm(data: bytes, sampling_rate: int, dtype: str, channels: int,
               settings: ServiceSettings, target_rate: int | None = None) -> np.ndarray:
    """Decode a raw PCM request body to mono float32, in blocks, at ``target_rate`` (default ``sampling_rate``).

    Args:
        data: Interleaved little-endian samples.
        sampling_rate: Their rate in Hz.
        dtype: ``"int16"`` or ``"float32"``.
        channels: Number of interleaved channels (averaged to mono).
        settings: The limits to enforce.
        target_rate: Resample to this rate while converting (``None``: keep ``sampling_rate``).

    Returns:
        A 1-D float32 array.

    Raises:
        RequestError: 400 (empty), 413 (too many bytes or seconds), 422 (bad dtype/rate, partial frames, NaN).
    """
    what = "the PCM body"
    check_pcm(data, sampling_rate, dtype, channels, settings)
    samples = _pcm_samples(data, dtype, channels, what)
    decoder = MonoDecoder(sampling_rate, target_rate, what, check=_check_finite)
    block = max(1024, DECODE_BLOCK_BYTES // (4 * channels))
    for start in range(0, samples.shape[0], block):
        decoder.add(_to_float(samples[start:start + block]))
    return decoder.finish()
