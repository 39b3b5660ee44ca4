"""Sliding windows over long recordings and live streams: window spans, silence gating levels, RecognizerStream.

Long recordings are cut into windows of ``window`` seconds every ``hop`` seconds; the last window is aligned with
the end of the recording so no audio is left out (:func:`_window_spans`). A window whose RMS level
(:func:`window_level_db`) lies more than ``-vad_threshold_db`` dB below the reference peak sample is treated as
silence and not scored. A :class:`RecognizerStream` produces the same windows as
:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` as soon as their last sample arrives
(:meth:`RecognizerStream.push`) and the end-aligned tail window on :meth:`RecognizerStream.flush`; since a stream
cannot know its future, its reference peak is the peak *so far*.

Scoring stays with the recognizer: a stream is made by
:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.stream` and is handed that recognizer as an object (the
:class:`WindowScorer` it needs), so this module imports nothing from ``recognizer.py``, which imports it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Set
from typing import Any, Protocol

import numpy as np

from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION, check_sampling_rate
from ser_hf.audio.arrays import caller_samples_and_offset
from ser_hf.audio.caller_mistakes import SampleOffset, offset_span
from ser_hf.errors import AudioError, SERError
from ser_hf.inference.inputs import describe_kind, is_bytes_like, is_sample
from ser_hf.ranges import COUNT, Range

__all__ = ["DEFAULT_VAD_THRESHOLD_DB", "MIN_HOP", "VAD_THRESHOLD_DB", "WINDOW_SECONDS", "RecognizerStream",
           "WindowScorer", "gate_windows", "is_voiced", "window_level_db", "window_samples"]

#: Default gate: windows more than 40 dB below the peak sample are silence.
DEFAULT_VAD_THRESHOLD_DB = -40.0
_SILENCE_DB = -200.0


def window_level_db(wave: np.ndarray) -> float:
    """RMS level of ``wave`` about its mean in dB full scale, floored at -200 dB (digital silence). The mean is left
    out: a constant (a microphone's DC bias, a dead input stuck at one value) is no sound, yet would read as loud."""
    samples = np.asarray(wave, dtype=np.float64)
    rms = float(np.sqrt(np.mean(np.square(samples - samples.mean())))) if samples.size else 0.0
    return 20.0 * np.log10(max(rms, 10 ** (_SILENCE_DB / 20)))


def _amplitude_db(amplitude: float) -> float:
    return 20.0 * np.log10(max(amplitude, 1e-10))


def _peak_db(wave: np.ndarray) -> float:
    # max and -min, not max(abs): abs would copy a whole recording held in memory (0.9 GB for 4 hours at 16 kHz)
    return _amplitude_db(max(float(wave.max()), -float(wave.min())) if wave.size else 0.0)


def window_samples(seconds: float, sampling_rate: int) -> int:
    """A window length or hop in samples (at least one)."""
    return max(1, int(round(seconds * sampling_rate)))


def is_voiced(samples: np.ndarray, peak_db: float, threshold: float | None) -> bool:
    """Whether a window is scored: not more than ``-threshold`` dB below ``peak_db`` (``threshold=None``: every
    window is)."""
    if threshold is None:
        return True
    level = window_level_db(samples)
    # Digital silence is never voiced, even in an all-silent recording (where it equals the peak).
    return level >= peak_db + threshold and level > _SILENCE_DB


def gate_windows(windows: list, peak_db: float, threshold: float | None) -> tuple[list, list]:
    """Split ``(start, end, samples)`` windows into (voiced, skipped) by :func:`is_voiced`."""
    if threshold is None:
        return windows, []
    voiced, skipped = [], []
    for item in windows:
        (voiced if is_voiced(item[2], peak_db, threshold) else skipped).append(item)
    return voiced, skipped


#: Windows are scored as clips, so they last as long as a clip may (:meth:`EmotionRecognizer.predict` refuses
#: shorter or longer arrays).
WINDOW_SECONDS = Range(MIN_CLIP_DURATION, MAX_CLIP_DURATION, noun="a number of seconds")
#: Shortest hop (seconds), as the HTTP service allows (its ``hop`` query and ``/stream`` config): each hop is one
#: more window to score, so a hop of 1e-6 s would ask for a million windows per second of audio.
MIN_HOP = 0.1
#: Seconds between window starts when the caller names none: one a second, or every window when windows are shorter
#: (a fixed 1 s default would refuse every window under 1 s with an error about a hop nobody passed).
DEFAULT_HOP = 1.0
#: Gate thresholds: 0 dB gates every window quieter than the peak sample, and levels are floored at -200 dB
#: (digital silence), so anything above 0 gates everything and anything below -200 nothing.
VAD_THRESHOLD_DB = Range(_SILENCE_DB, 0, noun="a level in dB")


def _check(name: str, value: Any, allowed: Range, fix: str) -> None:
    shown = value.item() if isinstance(value, np.generic) else value  # np.int64(2) is a fine top_k
    if shown not in allowed:  # Range also refuses bool, strings and non-finite floats
        raise SERError(f"{name} must be {allowed}, got {value!r}; {fix}.")


def check_top_k(top_k: Any) -> None:
    if top_k is not None:
        _check("top_k", top_k, COUNT, "pass None to keep every emotion")


def resolve_hop(window: float, hop: float | None) -> float:
    """``hop``, or for None the default for ``window``: :data:`DEFAULT_HOP`, or ``window`` when it is shorter."""
    return min(DEFAULT_HOP, float(window)) if hop is None else hop


def check_window_options(window: Any, hop: Any, vad_threshold_db: Any, top_k: Any) -> float:
    """Refuse windowing, gating and top_k values before any audio is decoded or scored; returns the hop
    (:func:`resolve_hop`)."""
    _check("window", window, WINDOW_SECONDS, "it is scored as one clip, e.g. window=3.0")
    hop = resolve_hop(window, hop)
    _check("hop", hop, Range(MIN_HOP, float(window), noun="a number of seconds"),
           "a window starts every hop seconds (a shorter hop only multiplies the work, hop > window would leave "
           "gaps), so e.g. hop=1.0 for window=3.0")
    if vad_threshold_db is not None:
        _check("vad_threshold_db", vad_threshold_db, VAD_THRESHOLD_DB,
               "e.g. -40 skips windows 40 dB below the loudest sample; None scores every window")
    check_top_k(top_k)
    return hop


def window_spans(n_samples: int, win: int, hop: int) -> list[tuple[int, int]]:
    """Sample spans of the windows of a recording: every ``hop`` samples, then one end-aligned tail window."""
    if n_samples <= win:
        return [(0, n_samples)]
    spans = [(start, start + win) for start in range(0, n_samples - win + 1, hop)]
    if spans[-1][1] < n_samples:
        spans.append((n_samples - win, n_samples))
    return spans


def _refuse_what_is_no_samples(chunk: Any) -> None:
    """Refuse a chunk that holds no samples, naming its kind and the fix, before numpy makes an array of it: bytes
    become one string (or uint8 values), None, a dict, a path or a generator one object, and the dtype message that
    would follow gives advice that fails or, for int16 PCM read as uint8, turns the speech into noise.

    Raises:
        AudioError: for raw bytes (as pyaudio and ``sounddevice.RawInputStream`` give them), None, a mapping, a path,
            an iterator or a set.
    """
    if is_bytes_like(chunk):
        size = memoryview(chunk).nbytes
        kind = f"raw bytes ({type(chunk).__name__}, {size} bytes)"
        fix = ("microphone libraries (pyaudio, sounddevice.RawInputStream) give int16 PCM as bytes, the format the "
               "service's WebSocket takes: push np.frombuffer(chunk, dtype=np.int16), which is scaled as a WAV file's "
               "samples (or that divided by 32768 as float32)")
        if size % 2:
            fix += f"; {size} bytes are no whole number of 2-byte samples: keep the odd byte for the next chunk"
    elif chunk is None:
        kind, fix = "None", "push nothing when no audio came, and call flush() when the stream ends"
    elif isinstance(chunk, tuple) and len(chunk) == 2 and not is_sample(chunk[0]) and is_sample(chunk[1]):
        kind = "a (wave, sampling_rate) pair"
        fix = ("a stream's rate is set once, so make it at that rate, recognizer.stream(sampling_rate=rate), and "
               "push the wave alone")
    else:
        fix = next((fix for kinds, fix in _NO_SAMPLES_FIXES if isinstance(chunk, kinds)), None)
        if fix is None:  # samples, or what float_samples names by its dtype
            return
        kind = describe_kind(chunk)
    try:
        as_array = f" (np.asarray makes it dtype {np.asarray(chunk).dtype}, not numbers)"
    except (ValueError, TypeError):
        as_array = ""
    raise AudioError(f"the chunk given to stream.push is {kind}, not samples{as_array}; push takes one chunk of "
                     f"samples, a 1-D array: {fix}.")


#: How :func:`_refuse_what_is_no_samples` fixes each kind of chunk (other than bytes and None) that holds no samples.
_NO_SAMPLES_FIXES = (
    (Mapping, "for a dict of one clip's samples, push chunk['array'] to a stream made at its rate, "
              "recognizer.stream(sampling_rate=chunk['sampling_rate'])"),
    ((str, os.PathLike), "a path names a file: score it with recognizer.predict_long(path), or push its samples, "
                         "soundfile.read(path, dtype='float32')[0]"),
    ((Iterator, Set), "push each chunk in turn (for chunk in chunks: stream.push(chunk)), or the samples as one "
                      "array, np.asarray(list(samples), dtype=np.float32)"),
)


class WindowScorer(Protocol):
    """What a :class:`RecognizerStream` needs of its recognizer (an ``EmotionRecognizer`` provides it)."""

    sampling_rate: int

    def _speaker_scorer(self, speaker: str | None = None, adapt: bool = False) -> Any: ...

    def _score_windows(self, voiced: list, scorer: Any,
                       top_k: int | None) -> tuple[np.ndarray, list[dict[str, Any]]]: ...


class RecognizerStream:
    """Incremental windowed predictions over pushed audio chunks, with a bounded buffer.

    Made by :meth:`~ser_hf.inference.recognizer.EmotionRecognizer.stream`. The buffer holds at most one window
    plus the chunk being pushed, however long the stream runs. Windows are the same as
    :meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` makes on the whole audio (the end-aligned
    tail window comes from :meth:`flush`); gating compares each window with the peak sample heard so far.

    A chunk is held to the rules a caller's array is (:func:`~ser_hf.audio.caller_samples`), and the stream as a whole
    to the rule for unsigned PCM not centred on 0 (:class:`~ser_hf.audio.caller_mistakes.SampleOffset`), on everything pushed
    so far: a chunk of a few milliseconds may lie between two zero crossings of a low sound, so it is never enough
    alone, but a stream is judged before any window of it is scored, and as soon as it holds the samples a lone array
    of unknown rate is judged on (:func:`~ser_hf.audio.caller_mistakes.offset_span`).
    """

    def __init__(self, recognizer: WindowScorer, window: float, hop: float | None,
                 vad_threshold_db: float | None, top_k: int | None, sampling_rate: int | None,
                 adapt: bool = False, speaker: str | None = None) -> None:
        hop = check_window_options(window, hop, vad_threshold_db, top_k)
        rate = recognizer.sampling_rate if sampling_rate is None else check_sampling_rate(
            sampling_rate, "stream(sampling_rate=...)", " Pass None for the model's own rate.")
        self._speaker = recognizer._speaker_scorer(speaker, adapt)
        self.recognizer = recognizer
        self.win = window_samples(window, recognizer.sampling_rate)
        self.hop = window_samples(hop, recognizer.sampling_rate)
        # A tail shorter than a clip (predict refuses it) is not scored: the encoder needs 25 ms for one frame.
        self.min_samples = math.ceil(MIN_CLIP_DURATION * recognizer.sampling_rate)
        self.vad_threshold_db, self.top_k = vad_threshold_db, top_k
        self._resampler = None
        # The caller's samples so far, judged for a DC offset once they span offset_span at the stream's rate.
        self._heard, self._offset_span = SampleOffset(), offset_span(rate)
        if rate != recognizer.sampling_rate:
            import soxr

            self._resampler = soxr.ResampleStream(rate, recognizer.sampling_rate, 1, dtype="float32", quality="HQ")
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream position (in samples) of self._buffer[0]
        self._next = 0  # start of the next window to emit
        self._peak = 0.0
        self._closed = False

    @property
    def received(self) -> int:
        """Samples received so far, at the model's rate."""
        return self._offset + self._buffer.size

    def push(self, chunk: np.ndarray) -> list[dict[str, Any]]:
        """Add audio; return the results of the windows this chunk completed (voiced ones only).

        Args:
            chunk: 1-D samples (at the stream's ``sampling_rate``), any length: floats within [-1, 1], or signed
                integer PCM (int16, int32), scaled to [-1, 1] as a WAV file's samples are (see
                :func:`~ser_hf.audio.caller_samples`).

        Returns:
            ``[{"start", "end", "label", "score", "scores"}]`` in time order (plus ``"adapted"`` for a stream
            with ``adapt`` or ``speaker``); empty when no window completed or every completed window was silent.

        Raises:
            AudioError: for a chunk that is not 1-D, of another dtype (unsigned, complex, strings...), with NaN,
                infinite or out-of-range samples (beyond :data:`~ser_hf.audio.MAX_ABS_SAMPLE`), or with float
                samples that are integer PCM not scaled (beyond 16, or whole numbers beyond 1); for the stream so far
                when it is unsigned PCM not centred on 0 (see the class); for raw bytes (``np.frombuffer(chunk,
                dtype=np.int16)`` gives their samples), None, a dict, a path or an iterator.
        """
        if self._closed:
            raise SERError("this stream was flushed; start a new one with recognizer.stream(...).")
        _refuse_what_is_no_samples(chunk)
        chunk, heard = caller_samples_and_offset(chunk, "the chunk given to stream.push")
        if chunk.ndim != 1:
            raise AudioError(f"stream.push expects a 1-D array of samples (one channel), got shape {chunk.shape}. "
                             f"Downmix it first: chunk.mean(axis=1) for (frames, channels) audio, as soundfile and "
                             f"sounddevice give it, or chunk.mean(axis=0) for (channels, frames), as librosa does (a "
                             f"chunk can be too short to tell which it is).")
        self._heard.merge(heard)
        self._refuse_uncentred(offset_span(None))
        if self._resampler is not None:
            chunk = self._resampler.resample_chunk(chunk)
        return self._append(chunk)

    def flush(self) -> list[dict[str, Any]]:
        """End the stream: return the end-aligned tail window (or the whole audio if shorter than a window).

        A stream shorter than :data:`~ser_hf.audio.MIN_CLIP_DURATION` has no window to score (a clip that short
        is refused by ``predict``): its flush returns ``[]``, as the WebSocket ``/stream`` ends without a window.
        """
        if self._closed:
            return []
        results = []
        if self._resampler is not None:
            results = self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._closed = True
        total = self.received
        if total == 0:
            spans = []
        elif total <= self.win:
            spans = [(0, total)] if self._next == 0 and total >= self.min_samples else []
        else:
            spans = [(total - self.win, total)] if self._next - self.hop + self.win < total else []
        return results + self._score(spans)

    def _append(self, samples: np.ndarray) -> list[dict[str, Any]]:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        if samples.size:
            self._peak = max(self._peak, float(np.max(np.abs(samples))))
        spans = []
        while self._next + self.win <= self.received:
            spans.append((self._next, self._next + self.win))
            self._next += self.hop
        results = self._score(spans)
        # Keep what the next window (or the end-aligned tail window) still needs: at most one window.
        keep_from = min(self._next, self.received - self.win)
        if keep_from > self._offset:
            self._buffer = self._buffer[keep_from - self._offset:]
            self._offset = keep_from
        return results

    def _refuse_uncentred(self, minimum: int) -> None:
        self._heard.refuse_uncentred(f"the audio pushed to the stream ({self._heard.count} samples so far; push "
                                     f"each chunk centred)", minimum)

    def _score(self, spans: list[tuple[int, int]]) -> list[dict[str, Any]]:
        if not spans:
            return []
        self._refuse_uncentred(self._offset_span)  # no window is scored before the stream is judged
        recognizer = self.recognizer
        windows = [(s, e, self._buffer[s - self._offset: e - self._offset]) for s, e in spans]
        voiced, _ = gate_windows(windows, _amplitude_db(self._peak), self.vad_threshold_db)
        return recognizer._score_windows(voiced, self._speaker, self.top_k)[1]
