"""Emotions over time, for :class:`~ser_hf.inference.recognizer.EmotionRecognizer`: a long recording scored in
windows (:meth:`Timelines.predict_long`, and :meth:`Timelines.score_timeline` under it) and a live stream
(:meth:`Timelines.stream`).

A mixin the recognizer inherits, as it inherits its speaker enrollment (:mod:`~ser_hf.inference.recognizer_speakers`):
the recognizer scores clips, this part cuts recordings into windows and gates, scores and assembles them. It uses the
recognizer's :meth:`load_raw`, :meth:`prepare`, :meth:`result`, :meth:`_probabilities` and :meth:`_speaker_scorer`.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import numpy as np

from ser_hf.audio import MIN_CLIP_DURATION, check_clip_duration
from ser_hf.errors import AudioError, SERError
from ser_hf.inference.clip_inputs import RecognizerInput, describe_input
from ser_hf.inference.enrollment_inputs import enrollment_level_db
from ser_hf.inference.recording_windows import Recording, array_recording, file_recording
from ser_hf.inference.speaker_scorers import speaker_said
from ser_hf.inference.streaming import (
    DEFAULT_VAD_THRESHOLD_DB,
    RecognizerStream,
    check_window_options,
    is_voiced,
    window_samples,
    window_spans,
)
from ser_hf.inference.window_chunks import score_in_chunks
from ser_hf.paths import path_text
from ser_hf.ranges import Range, check_value

__all__ = ["Timelines"]


def _too_long(what: str, seconds: float, max_duration: float | None) -> None:
    """Refuse a recording longer than the ``max_duration`` a caller set for predict_long (a bound on the work)."""
    if max_duration is not None and seconds > max_duration:
        shown = f"{seconds:.0f}" if round(seconds) > max_duration else f"{seconds:.3f}"  # not "2 s, more than 2 s"
        raise AudioError(f"{what} lasts {shown} s ({seconds / 3600:.1f} h), more than predict_long's "
                         f"max_duration of {max_duration:g} s ({max_duration / 3600:.1f} h). Pass a larger "
                         f"max_duration, or None (no bound: a file of any length is read block by block, never held "
                         f"whole).")


class Timelines:
    """Long recordings and streams for a recognizer (see the module docstring)."""

    # Set by EmotionRecognizer.__init__.
    sampling_rate: int
    batch_size: int

    def predict_long(self, wave_or_path: RecognizerInput, window: float = 3.0, hop: float | None = None,
                     vad_threshold_db: float | None = DEFAULT_VAD_THRESHOLD_DB,
                     top_k: int | None = None, speaker: str | None = None, *, decoded: bool = False,
                     max_duration: float | None = None, progress: bool = False) -> dict[str, Any]:
        """Emotions over time in a long recording, with silent windows gated out.

        Args:
            wave_or_path: A file path, an array at the model's rate, or ``(array, sampling_rate)`` (as
                :meth:`predict` takes them), at least :data:`~ser_hf.audio.MIN_CLIP_DURATION` (0.1 s) long.
            window: Window length in seconds, 0.1 to 300 (each window is scored as one clip).
            hop: Seconds between window starts, from 0.1 (as the HTTP service allows) to ``window``
                (``hop < window`` overlaps them); None: 1 s, or ``window`` when it is shorter.
            vad_threshold_db: Skip windows whose RMS level is more than this many dB below the recording's
                peak sample (-200 to 0, e.g. -40); ``None`` scores every window.
            top_k: Emotions kept in each window's ``scores`` (a positive integer; default: all).
            speaker: An enrolled speaker (see :meth:`enroll`): every window is scored as
                ``predict(window, speaker=speaker)`` scores it, and says ``adapted``.
            decoded: True when an array input was decoded from a file (see :meth:`load_raw`).
            max_duration: Longest recording scored, in seconds (``None``, the default: no bound), a bound on the work;
                a file is refused from its header, before it is decoded. Memory does not grow with the recording: a
                file is decoded twice, block by block (its length and loudest sample first, then its windows:
                :mod:`~ser_hf.inference.recording_windows`), never held whole, and windows are prepared and scored a
                few batches at a time (:mod:`~ser_hf.inference.window_chunks`). An array is in memory already; its
                windows are views of it.
            progress: Show a progress bar over the windows.

        Returns:
            ``{"timeline": [{"start", "end", "label", "score", "scores"}], "skipped": [[start, end], ...],
            "overall": {"label", "score", "scores"} or None, "duration": seconds}``. ``overall`` averages
            the voiced windows' probabilities weighted by their durations (``None`` if all were silent).
            With ``speaker``, also ``"speaker"``, ``"adapted"`` and, when not adapted (the global head
            scored), ``"reason"``.

        Raises:
            AudioError: naming the input, as :meth:`predict` does, or for audio shorter than 0.1 s, a recording longer
                than ``max_duration`` (a file's header, then what it decodes to), or a file that changed while it was
                read (:mod:`~ser_hf.inference.recording_windows`).
            SERError: for ``window``, ``hop``, ``vad_threshold_db`` or ``top_k`` outside the ranges above.

        Example:
            ```python
            >>> recognizer.enroll("alice", ["alice/01.wav", "alice/02.wav", "alice/03.wav"])  # doctest: +SKIP
            >>> result = recognizer.predict_long("alice/interview.wav", speaker="alice")  # doctest: +SKIP
            >>> result["adapted"], result["timeline"][0]["adapted"]  # doctest: +SKIP
            (True, True)

            ```
        """
        return self.score_timeline(wave_or_path, self._speaker_scorer(speaker), window, hop, vad_threshold_db, top_k,
                                   decoded=decoded, max_duration=max_duration, progress=progress)

    def score_timeline(self, wave_or_path: RecognizerInput, scorer: Any, window: float = 3.0, hop: float | None = None,
                       vad_threshold_db: float | None = DEFAULT_VAD_THRESHOLD_DB, top_k: int | None = None, *,
                       decoded: bool = False, max_duration: float | None = None,
                       progress: bool = False) -> dict[str, Any]:
        """:meth:`predict_long` with the voiced windows scored by ``scorer`` (None: the global head), the layer under
        it: ``predict_long(speaker=...)`` passes an enrolled speaker's, a speaker-adaptive window job its two passes'
        (:mod:`~ser_hf.inference.timeline_speakers`). A scorer has ``score(waves, batch_size, levels)`` returning
        ``(probabilities, adapted)``, ``reads_levels`` (whether it needs the windows' levels before cleaning) and
        ``summary`` (what the result says of the speaker, or None)."""
        hop = check_window_options(window, hop, vad_threshold_db, top_k)
        if max_duration is not None:
            check_value("max_duration", max_duration, Range(MIN_CLIP_DURATION, math.inf, noun="a number of seconds"),
                        SERError)
        what = describe_input(wave_or_path, 0, True)  # as load_raw and the decoder name it
        recording = self._recording(wave_or_path, what, decoded, max_duration)
        win, step = window_samples(window, self.sampling_rate), window_samples(hop, self.sampling_rate)
        spans = window_spans(recording.size, win, step)
        lengths = []  # of the voiced windows, which weigh the overall scores

        def score(chunk: list) -> tuple[np.ndarray, list[dict[str, Any]]]:
            # Preprocess each window, not the recording: training-time cropping or trimming is per clip.
            lengths.extend(e - s for s, e, _ in chunk)
            try:
                return self._score_windows(chunk, scorer, top_k)
            except AudioError as err:  # a window's: named by the recording (a file's own errors name it already)
                raise AudioError(f"{what}: {err}") from None

        # closed however scoring ends: an error held by the caller must not keep a file's second read open
        with contextlib.closing(recording.windows(spans)) as windows:
            probabilities, timeline, skipped = score_in_chunks(
                score, windows, lambda samples: is_voiced(samples, recording.peak_db, vad_threshold_db),
                self.batch_size, progress, total=len(spans))
        overall = None
        if lengths:
            weights = np.array(lengths, dtype=np.float64)
            try:
                overall = self.result((weights @ probabilities.astype(np.float64)) / weights.sum(), top_k)
            except AudioError as err:
                raise AudioError(f"{what}: {err}") from None
        rate = self.sampling_rate
        result = {"timeline": timeline, "skipped": [[s / rate, e / rate] for s, e in skipped],
                  "overall": overall, "duration": recording.size / rate}
        if scorer is not None and scorer.summary is not None:
            result.update(speaker_said(scorer.summary))
        return result

    def _recording(self, item: RecognizerInput, what: str, decoded: bool, max_duration: float | None) -> Recording:
        """A file read block by block (its length checked from the header first), or any other input decoded whole,
        as :meth:`load_raw` takes it."""
        if isinstance(item, os.PathLike):  # one that gives bytes too, which pathlib refuses
            item = path_text(item, what, error=AudioError)
        if isinstance(item, str) and item:  # an empty path is refused by load_raw
            header = check_clip_duration(item, max_duration=None)
            if header.length_known:  # else libsndfile's huge "unknown" count: the decoded length is checked below
                _too_long(what, header.duration, max_duration)
            recording = file_recording(item, self.sampling_rate)
        else:
            recording = array_recording(self.load_raw(item, decoded=decoded))
        # a file's header may say less than it holds: the bound is on what was decoded too, before any window is scored
        _too_long(what, recording.size / self.sampling_rate, max_duration)
        return recording

    def stream(self, window: float = 3.0, hop: float | None = None,
               vad_threshold_db: float | None = DEFAULT_VAD_THRESHOLD_DB, top_k: int | None = None,
               sampling_rate: int | None = None, adapt: bool = False,
               speaker: str | None = None) -> RecognizerStream:
        """Start a stream: push audio chunks, get each window's result as soon as it is complete.

        Args:
            window, hop, vad_threshold_db, top_k: As in :meth:`predict_long`.
            sampling_rate: Rate of the pushed chunks in Hz, 1000 to 384000 (default: the model's rate); other rates
                are resampled on the fly with a streaming soxr resampler.
            adapt: Adapt to the (one) speaker of the stream online: every voiced window so far (the last
                :data:`~ser_hf.inference.speakers.STREAM_WINDOWS`) enrolls them; until there are enough
                windows, and when the model's adaptation is off, the global head scores (results say
                ``adapted``). Needs a checkpoint with speaker adaptation files.
            speaker: An enrolled speaker (see :meth:`enroll`): every window is scored with their offset, as
                enrolled when the stream starts (results say ``adapted``). Not together with ``adapt``.

        Returns:
            A :class:`RecognizerStream`.

        Raises:
            SERError: for ``adapt`` together with ``speaker``, a speaker who is not enrolled, or ``window``, ``hop``,
                ``vad_threshold_db`` or ``top_k`` outside :meth:`predict_long`'s ranges.
            AudioError: for a ``sampling_rate`` that is not a whole number of Hz from 1000 to 384000.
            ModelError: for ``adapt`` or ``speaker`` on a model without speaker adaptation files.
        """
        return RecognizerStream(self, window=window, hop=hop, vad_threshold_db=vad_threshold_db, top_k=top_k,
                                sampling_rate=sampling_rate, adapt=adapt, speaker=speaker)

    # ---------------------------------------------------------------------------------------- helpers

    def _window_result(self, start: int, end: int, row: np.ndarray, top_k: int | None) -> dict[str, Any]:
        window = {"start": start / self.sampling_rate, "end": end / self.sampling_rate}
        return {**window, **self.result(row, top_k)}

    def _score_windows(self, voiced: list, scorer: Any, top_k: int | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Probabilities and results of voiced ``(start, end, samples)`` windows, preprocessed one by one."""
        # before cleaning, as enrollment measures its clips; only a scorer that learns online reads them (the voicing
        # screen costs a few ms per window)
        levels = ([enrollment_level_db(w, self.sampling_rate) for _, _, w in voiced]
                  if scorer is not None and scorer.reads_levels else None)
        probabilities, extra = self._probabilities([self.prepare(w) for _, _, w in voiced], scorer, levels=levels)
        results = [{**self._window_result(s, e, row, top_k), **extra} for (s, e, _), row in zip(voiced, probabilities)]
        return probabilities, results
