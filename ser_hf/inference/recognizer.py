"""A high-level emotion recognizer: clips, long recordings with voice-activity gating, and live streams.

:class:`EmotionRecognizer` wraps any ``AutoModelForAudioClassification`` checkpoint (a ser_hf output
directory, a preset or a Hub id) or its ONNX export (a ``ser-hf export-onnx`` directory, run by
onnxruntime). It reuses :func:`ser_hf.inference.predict.predict_proba` for batching
(clips sorted by length, padded only where padding is exact), so a clip scores exactly as
``pipeline("audio-classification", model=DIR)`` scores it. How the checkpoint's recorded settings are read
(the audio cleaning of ``ser_hf_run.json``, applied to every clip and window, and the training copies
``test_time_copies=True`` scores with) lives in :mod:`ser_hf.inference.recognizer_settings`.

Long recordings are cut into windows of ``window`` seconds every ``hop`` seconds (the last one aligned with the
end), and a window more than ``-vad_threshold_db`` dB below the recording's peak sample is treated as silence and
not scored. How windows are cut and gated, and the live :class:`~ser_hf.inference.streaming.RecognizerStream` that
:meth:`EmotionRecognizer.stream` returns, live in :mod:`ser_hf.inference.streaming`; this module owns the
recognizer (loading, clips, speakers, scoring windows) and re-exports ``RecognizerStream`` and
``window_level_db``, so that their old import path still works.

Example:
    ```python
    >>> from ser_hf.inference.recognizer import EmotionRecognizer
    >>> recognizer = EmotionRecognizer.from_pretrained("outputs/rav4")  # doctest: +SKIP
    >>> recognizer.predict("clip.wav", top_k=2)  # doctest: +SKIP
    {'label': 'angry', 'score': 0.81, 'scores': {'angry': 0.81, 'happy': 0.11}}
    >>> onnx = EmotionRecognizer.from_pretrained("exports/rav4")  # ser-hf export-onnx's output  # doctest: +SKIP
    >>> int8 = EmotionRecognizer.from_pretrained("exports/rav4/model.int8.onnx")  # doctest: +SKIP
    >>> result = recognizer.predict_long("interview.wav", window=3.0, hop=1.0)  # doctest: +SKIP
    >>> result["timeline"][0]  # doctest: +SKIP
    {'start': 0.0, 'end': 3.0, 'label': 'neutral', 'score': 0.64, 'scores': {...}}
    >>> stream = recognizer.stream(window=3.0, hop=1.0)  # doctest: +SKIP
    >>> for chunk in microphone_chunks():  # 1-D float32 arrays at 16 kHz  # doctest: +SKIP
    ...     for window in stream.push(chunk):
    ...         print(window["start"], window["label"])

    ```
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ser_hf.audio import (
    MAX_CLIP_DURATION,
    MIN_CLIP_DURATION,
    AudioPreprocessor,
    check_clip_duration,
    float_samples,
)
from ser_hf.errors import AudioError, ModelError, SERError
from ser_hf.inference.clip_inputs import RecognizerInput, clip_samples, describe_input, is_array, waves_to_walk
from ser_hf.inference.enrollment_inputs import enrollment_level_db
from ser_hf.inference.onnx_runtime import is_onnx_export
from ser_hf.inference.predict import load_classifier, model_labels, predict_proba
from ser_hf.inference.recognizer_settings import load_run_preprocessor, parse_copies, recorded_copies
from ser_hf.inference.recognizer_speakers import SpeakerAdaptation
from ser_hf.inference.recording_windows import Recording, array_recording, file_recording
from ser_hf.inference.streaming import (  # RecognizerStream and window_level_db also keep their old import path here
    DEFAULT_VAD_THRESHOLD_DB,
    RecognizerStream,
    _check_options,
    _check_top_k,
    _window_spans,
    is_voiced,
    window_level_db,
    window_samples,
)
from ser_hf.inference.window_chunks import score_in_chunks
from ser_hf.models.linear_head import mean_log_probability
from ser_hf.paths import path_text
from ser_hf.ranges import COUNT, Range, check_value

__all__ = ["EmotionRecognizer", "RecognizerStream", "window_level_db"]


def _speaker_said(summary: dict[str, Any]) -> dict[str, Any]:
    """What a prediction for an enrolled speaker says of the enrollment: ``speaker``, ``adapted`` and ``reason`` (not
    its clip counts or copies)."""
    return {key: summary[key] for key in ("speaker", "adapted", "reason") if key in summary}


#: The smallest probability whose log test-time copies average (a float32 softmax underflows to 0 only for a logit
#: gap above ~87, far beyond any calibrated head's).
_TINY = float(np.finfo(np.float32).tiny)


def _too_long(what: str, seconds: float, max_duration: float | None) -> None:
    """Refuse a recording longer than the ``max_duration`` a caller set for predict_long (a bound on the work)."""
    if max_duration is not None and seconds > max_duration:
        shown = f"{seconds:.0f}" if round(seconds) > max_duration else f"{seconds:.3f}"  # not "2 s, more than 2 s"
        raise AudioError(f"{what} lasts {shown} s ({seconds / 3600:.1f} h), more than predict_long's "
                         f"max_duration of {max_duration:g} s ({max_duration / 3600:.1f} h). Pass a larger "
                         f"max_duration, or None (no bound: a file of any length is read block by block, never held "
                         f"whole).")


class EmotionRecognizer(SpeakerAdaptation):
    """Emotion predictions for clips, long recordings and streams, from one audio-classification checkpoint.

    Args:
        model: A loaded ``AutoModelForAudioClassification`` (eval mode), or an
            :class:`~ser_hf.inference.onnx_runtime.OnnxAudioClassifier`.
        feature_extractor: Its feature extractor.
        preprocessor: Audio cleaning applied to every clip or window before the extractor, at the
            extractor's rate (``None``: decode and resample only, as the HF pipeline does).
        batch_size: Clips (or windows) per forward pass.
        test_time_copies: Also score altered copies of every clip (and window of a long recording or stream)
            and average the log-probabilities:
            ``{"speed": [0.9, 1.1], "noise": [20]}`` plays each clip 0.9x and 1.1x as fast and adds white noise
            20 dB below it (as the probe's training copies; noise seeded by the clip, so predictions repeat).
            Each copy costs one more forward pass. Off (None) by default: then a clip scores exactly as
            ``pipeline()`` scores it. With speaker adaptation, each copy gets its own offset from the same copy of
            the speaker's enrollment clips (enroll with the same copies you predict with).

    Use :meth:`from_pretrained` rather than the constructor.
    """

    def __init__(self, model: Any, feature_extractor: Any, preprocessor: AudioPreprocessor | None = None,
                 batch_size: int = 8, test_time_copies: dict[str, Sequence[float]] | None = None) -> None:
        self.model = model
        self.feature_extractor = feature_extractor
        self.sampling_rate = int(feature_extractor.sampling_rate)
        if preprocessor is not None and preprocessor.sampling_rate != self.sampling_rate:
            raise SERError(
                f"preprocessor.sampling_rate is {preprocessor.sampling_rate} Hz but the model expects "
                f"{self.sampling_rate} Hz; build it with AudioPreprocessor(sampling_rate={self.sampling_rate}, ...)."
            )
        self.preprocessor = preprocessor
        batch_size = batch_size.item() if isinstance(batch_size, np.integer) else batch_size
        if batch_size not in COUNT:  # here, not as a raw error at the first predict
            raise SERError(f"batch_size must be {COUNT}, got {batch_size!r}; e.g. batch_size=8 (clips per forward "
                           f"pass).")
        self.batch_size = batch_size
        self.labels = model_labels(model)
        self._copies = parse_copies(test_time_copies, self.sampling_rate)
        self.checkpoint_dir: Path | None = None  # set by from_pretrained; speaker adaptation files live there
        self._enrollments = None

    @property
    def test_time_copies(self) -> list[str]:
        """The names of the copies every clip is scored with besides itself (empty: the clip alone)."""
        return [name for _, name in self._copies]

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike, *, preprocessor: AudioPreprocessor | None | str = "auto",
                        device: str | torch.device | None = None, batch_size: int = 8,
                        test_time_copies: bool | dict[str, Sequence[float]] | None = False) -> EmotionRecognizer:
        """Load a recognizer from a checkpoint directory, a preset name, a Hub id or an ONNX export.

        Args:
            model: A checkpoint directory, a preset (see ``ser-hf models list``), a Hub id ``owner/name``, or
                an ONNX export: a ``ser-hf export-onnx`` directory (``model.onnx``, run by onnxruntime) or one
                ``.onnx`` file in it (e.g. ``model.int8.onnx``).
            preprocessor: ``"auto"`` (default) applies what ``ser_hf_run.json`` beside the checkpoint
                records; ``None`` decodes and resamples only; or an explicit :class:`AudioPreprocessor`.
            device: Where to run the model (default CPU; ``"cuda"`` for ONNX needs onnxruntime-gpu).
            batch_size: Clips per forward pass.
            test_time_copies: ``True`` scores every clip with the copies the model's probe trained on too (its
                ``probe_speed_copies`` and ``probe_noise_copies``, from ``ser_hf_run.json``), averaging their
                log-probabilities; or name the copies (see :class:`EmotionRecognizer`). Off by default.

        Returns:
            An :class:`EmotionRecognizer`.

        Raises:
            ModelError: for an unknown name or an unusable checkpoint (the message names it and the fix).

        Example:
            ```python
            >>> recognizer = EmotionRecognizer.from_pretrained("outputs/rav4")  # doctest: +SKIP
            >>> recognizer.labels  # doctest: +SKIP
            ['neutral', 'happy', 'sad', 'angry']

            ```
        """
        from ser_hf.models.presets import resolve_model_path

        model = path_text(model, "model", error=ModelError)  # a path-like may give bytes, which pathlib refuses
        # A .onnx file is neither a preset nor a checkpoint directory; load_classifier takes it as it is.
        resolved = model if is_onnx_export(model) else resolve_model_path(model)
        loaded, feature_extractor = load_classifier(resolved, device=device)
        if isinstance(preprocessor, str):
            if preprocessor != "auto":
                raise SERError(f"preprocessor must be 'auto', None or an AudioPreprocessor, got {preprocessor!r}.")
            path = Path(resolved).expanduser()
            path = path.parent if path.is_file() else path  # ser_hf_run.json lies beside an exported .onnx file
            preprocessor = (load_run_preprocessor(path, int(feature_extractor.sampling_rate))
                            if path.is_dir() else None)
        if test_time_copies is True:
            test_time_copies = recorded_copies(model, resolved)
        recognizer = cls(loaded, feature_extractor, preprocessor=preprocessor, batch_size=batch_size,
                         test_time_copies=test_time_copies or None)
        recognizer.checkpoint_dir = Path(resolved).expanduser() if Path(resolved).expanduser().is_dir() else None
        return recognizer

    # ----------------------------------------------------------------------------------------- loading

    def load(self, item: RecognizerInput, what: str | None = None, *, decoded: bool = False) -> np.ndarray:
        """Decode (or take) one input as one clip: a 1-D float32 array at the model's rate, preprocessing applied.

        Args:
            item: A file path, an array or ``(array, sampling_rate)`` (see :data:`RecognizerInput`).
            what: How messages name it (default: the file, or "the audio array").
            decoded: As in :meth:`load_raw`.

        Raises:
            AudioError: as :meth:`load_raw`, or for a clip longer than :data:`~ser_hf.audio.MAX_CLIP_DURATION`
                (so long that it belongs in :meth:`predict_long`).
        """
        return self.prepare(self.load_raw(item, MAX_CLIP_DURATION, what, decoded=decoded))

    def load_raw(self, item: RecognizerInput, max_duration: float | None = None,
                 what: str | None = None, *, decoded: bool = False) -> np.ndarray:
        """Decode (or take) one input as a 1-D float32 array at the model's rate, without preprocessing.

        Its length is checked before it is decoded or resampled (a file's from its header), so a clip of a low
        rate cannot grow in memory before it is refused.

        Args:
            item: A file path, an array or ``(array, sampling_rate)`` (see :data:`RecognizerInput`).
            max_duration: Longest accepted duration in seconds (``None``: no limit).
            what: How messages name it (default: the file, or "the audio array").
            decoded: True when the samples of an array input were decoded from a file (e.g. by a service that
                decodes uploads): they are then held to the decoder's rules only, as the file would be, not refused
                as unscaled integer PCM (:func:`~ser_hf.audio.caller_samples`), a mistake only a caller's
                conversion makes.

        Raises:
            AudioError: for an unreadable file; an array of another dtype than float or signed integer PCM, empty,
                not 1-D/2-D, with NaN, infinite or out-of-range samples (as files,
                :func:`~ser_hf.audio.check_samples`), or float samples that are integer PCM not scaled; a
                sampling rate outside :data:`~ser_hf.audio.MIN_SAMPLING_RATE` ..
                :data:`~ser_hf.audio.MAX_SAMPLING_RATE` Hz; or audio shorter than
                :data:`~ser_hf.audio.MIN_CLIP_DURATION` (the encoder's first frame) or longer than ``max_duration``.
        """
        return clip_samples(item, self.sampling_rate, max_duration=max_duration,
                            what=what or describe_input(item, 0, True), decoded=decoded)

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """Apply the checkpoint's preprocessing (if any) to a 1-D array at the model's rate, as :meth:`load_raw`
        gives it (already checked: a decoded file is not held to a caller's array's rules again)."""
        if self.preprocessor is None:
            return wave
        return self.preprocessor.clean(wave)

    # -------------------------------------------------------------------------------------- prediction

    def predict_waves(self, waves: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        """Probabilities ``(len(waves), num_labels)`` of ready arrays (model rate, preprocessing done).

        A row is returned as the model gave it, non-finite ones included, so that one bad clip cannot fail the
        others of its batch (the service batches clips of different requests); :meth:`result` refuses such a row.

        Raises:
            AudioError: naming ``waves[i]``, for an item that is not a 1-D array of samples (integer PCM scaled, and
                float samples held to a decoded file's limits, :func:`~ser_hf.audio.float_samples`: they are what
                :meth:`predict` prepared, from a file as often as from a caller's array) at least
                :data:`~ser_hf.audio.MIN_CLIP_DURATION` long, or ``waves`` that is one clip (an array, a 1-D object
                array of numbers, a path, bytes, a dict), a table, or no collection at all (None, a number), not a
                list of them.
        """
        waves = waves_to_walk(waves, self.sampling_rate)  # one clip or a table refused before it is walked
        waves = [self._ready_wave(wave, f"waves[{index}]") for index, wave in enumerate(waves)]
        if not waves:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        probabilities = self._forward(waves, progress)
        if not self._copies:
            return probabilities
        # A non-finite row stays non-finite, so result() still refuses it.
        versions = [probabilities, *(self._forward([copy.alter(wave) for wave in waves], progress)
                                     for copy, _ in self._copies)]
        return mean_log_probability([np.log(np.maximum(p, _TINY)) for p in versions]).astype(np.float32)

    def _ready_wave(self, wave: object, what: str) -> np.ndarray:
        """One item of :meth:`predict_waves`, checked: a 1-D float32 array long enough for the encoder. Its samples
        are not refused as unscaled PCM (:func:`~ser_hf.audio.caller_samples`): it scores what :meth:`predict`
        prepared, which for a float file is the decoder's output, held to the decoder's rules only."""
        if not is_array(wave):
            raise AudioError(f"{what} is a {type(wave).__name__}; predict_waves takes 1-D arrays of samples at "
                             f"{self.sampling_rate} Hz (use predict for files, rates and other inputs).")
        wave = float_samples(wave, what)
        if wave.ndim != 1 or wave.size < MIN_CLIP_DURATION * self.sampling_rate:
            raise AudioError(f"{what} has shape {wave.shape}; predict_waves takes 1-D arrays of at least "
                             f"{math.ceil(MIN_CLIP_DURATION * self.sampling_rate)} samples ({MIN_CLIP_DURATION * 1000:g} "
                             f"ms at {self.sampling_rate} Hz), as predict prepares them.")
        return wave

    def _forward(self, waves: list[np.ndarray], progress: bool) -> np.ndarray:
        probabilities, _ = predict_proba(self.model, waves, feature_extractor=self.feature_extractor,
                                         batch_size=self.batch_size, progress=progress)
        return probabilities

    def result(self, probabilities: np.ndarray, top_k: int | None = None) -> dict[str, Any]:
        """``{"label", "score", "scores"}`` from one probability row; ``scores`` holds the top_k, best first.

        Every prediction passes here, so this is where a non-finite output is stopped: it would be NaN in JSON
        (invalid), ``null`` in a response, or a label chosen among NaNs.

        Raises:
            AudioError: when the row holds NaN or infinite values (e.g. samples so large that the feature
                extractor's normalisation overflowed).
            SERError: for a ``top_k`` that is not a positive integer or None.
        """
        _check_top_k(top_k)
        probabilities = np.asarray(probabilities)
        if not np.isfinite(probabilities).all():
            raise AudioError(
                "the model's output for this audio is not finite (NaN or infinite probabilities), so it has no "
                "prediction; its samples are probably absurdly large or otherwise unusable. Check the recording "
                "(samples are expected within [-1, 1])."
            )
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        scores = {self.labels[i]: float(probabilities[i]) for i in order}
        return {"label": self.labels[order[0]], "score": float(probabilities[order[0]]), "scores": scores}

    def predict(self, inputs: RecognizerInput | Sequence[RecognizerInput], top_k: int | None = None,
                progress: bool = False, speaker: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Predict the emotion of one clip or a list of clips.

        Args:
            inputs: A file path, an array (numpy, or a torch tensor) at the model's rate (16 kHz),
                ``(array, sampling_rate)`` (resampled with soxr; the rate from 1000 to 384000 Hz, as for files), a
                dict as ``datasets`` and ``pipeline()`` give one clip (``{"array" or "raw": samples,
                "sampling_rate": rate}``, or an undecoded ``{"bytes": ..., "path": ...}``), a torchcodec
                ``AudioDecoder`` (what ``datasets`` 4+ gives for an Audio cell), the bytes of an audio file, or a
                list of these. An array holds float samples within [-1, 1] or signed integer PCM (int16, int32),
                which is scaled to [-1, 1] as soundfile scales a WAV file's samples; it is 1-D, or 2-D as (frames,
                channels) (up to 64 channels, averaged) or (channels, frames) with 1 or 2 channels. librosa
                (``mono=False``) and torchaudio return (channels, frames) for any number of channels, but 3 or more
                rows look like clips stacked with ``np.stack`` and are refused: pass a list of clips, or ``wave.T``
                for a recording of 3 or more channels. Other dtypes (unsigned, bool, complex, strings) are refused,
                as are float samples beyond 256 or whole numbers beyond 1: integer PCM cast to float but not scaled
                (see :func:`ser_hf.audio.caller_samples`). A file is held to its decoder's rules only (a float WAV
                file may hold samples up to :data:`~ser_hf.audio.MAX_ABS_SAMPLE`), and so is a dict that names the
                file it was decoded from (a ``datasets`` < 4 Audio cell, ``{"array", "sampling_rate", "path"}``).
                Bytes are a file's contents: a path given as bytes is refused with the fix, ``os.fsdecode(path)``.
            top_k: Keep only the ``top_k`` most probable emotions in ``scores`` (a positive integer; default: all).
            progress: Show a progress bar.
            speaker: An enrolled speaker (see :meth:`enroll`): their clips are scored by the speaker-adaptive
                head; the result then also says ``speaker`` and ``adapted`` (False: the global head scored it,
                and ``reason`` says why, e.g. too few enrollment clips).

        Returns:
            ``{"label", "score", "scores": {emotion: probability}}`` (``scores`` sorted, best first), or a
            list of them, in input order, for a list input.

        Raises:
            AudioError: naming the file or array that cannot be used.
            SERError: for a ``top_k`` that is not a positive integer or None.

        Example:
            ```python
            >>> recognizer.predict(["a.wav", (wave_44k, 44100)], top_k=1)  # doctest: +SKIP
            [{'label': 'sad', 'score': 0.7, 'scores': {'sad': 0.7}}, {'label': 'happy', ...}]

            ```
        """
        _check_top_k(top_k)
        single = not isinstance(inputs, list)
        items = [inputs] if single else inputs
        scorer = self._speaker_scorer(speaker)  # an unknown speaker fails before any decoding
        waves = [self.load(item, describe_input(item, index, single)) for index, item in enumerate(items)]
        probabilities, extra = self._probabilities(waves, scorer, progress=progress)
        results = []
        for index, (item, row) in enumerate(zip(items, probabilities)):
            try:
                results.append(self.result(row, top_k))
            except AudioError as err:
                raise AudioError(f"{describe_input(item, index, single)}: {err}") from None
        if scorer is not None:
            said = _speaker_said(scorer.summary)
            results = [{**result, **said, **extra} for result in results]
        return results[0] if single else results

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
        hop = _check_options(window, hop, vad_threshold_db, top_k)
        if max_duration is not None:
            check_value("max_duration", max_duration, Range(MIN_CLIP_DURATION, math.inf, noun="a number of seconds"),
                        SERError)
        what = describe_input(wave_or_path, 0, True)  # as load_raw and the decoder name it
        recording = self._recording(wave_or_path, what, decoded, max_duration)
        win, step = window_samples(window, self.sampling_rate), window_samples(hop, self.sampling_rate)
        spans = _window_spans(recording.size, win, step)
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
            result.update(_speaker_said(scorer.summary))
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

    def _probabilities(self, waves: list[np.ndarray], scorer: Any, progress: bool = False,
                       levels: list[float] | None = None) -> tuple[np.ndarray, dict[str, bool]]:
        """Probabilities of ready waves, by ``scorer`` (then with ``{"adapted": ...}``) or the global head;
        ``levels``: the waves' levels before cleaning, for a scorer that learns from the voiced ones."""
        if scorer is None or not waves:  # pooling nothing has no shape to score
            return self.predict_waves(waves, progress=progress), {}
        probabilities, adapted = scorer.score(waves, self.batch_size, levels=levels)
        return probabilities, {"adapted": adapted}

    def _score_windows(self, voiced: list, scorer: Any, top_k: int | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Probabilities and results of voiced ``(start, end, samples)`` windows, preprocessed one by one."""
        # before cleaning, as enrollment measures its clips; only a scorer that learns online reads them (the voicing
        # screen costs a few ms per window)
        levels = ([enrollment_level_db(w, self.sampling_rate) for _, _, w in voiced]
                  if scorer is not None and scorer.reads_levels else None)
        probabilities, extra = self._probabilities([self.prepare(w) for _, _, w in voiced], scorer, levels=levels)
        results = [{**self._window_result(s, e, row, top_k), **extra} for (s, e, _), row in zip(voiced, probabilities)]
        return probabilities, results
