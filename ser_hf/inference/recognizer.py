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
    float_samples,
)
from ser_hf.errors import AudioError, ModelError, SERError
from ser_hf.inference.clip_inputs import RecognizerInput, clip_samples, describe_input, is_array, waves_to_walk
from ser_hf.inference.onnx_runtime import is_onnx_export
from ser_hf.inference.predict import load_classifier, model_labels, predict_proba
from ser_hf.inference.recognizer_settings import load_run_preprocessor, parse_copies, recorded_copies
from ser_hf.inference.recognizer_speakers import SpeakerAdaptation
from ser_hf.inference.recognizer_timelines import Timelines
from ser_hf.inference.speaker_scorers import speaker_said
from ser_hf.inference.streaming import RecognizerStream as RecognizerStream  # their old import paths
from ser_hf.inference.streaming import check_top_k
from ser_hf.inference.streaming import window_level_db as window_level_db
from ser_hf.models.linear_head import mean_log_probability
from ser_hf.paths import path_text
from ser_hf.ranges import COUNT

__all__ = ["EmotionRecognizer", "RecognizerStream", "window_level_db"]


#: The smallest probability whose log test-time copies average (a float32 softmax underflows to 0 only for a logit
#: gap above ~87, far beyond any calibrated head's).
_TINY = float(np.finfo(np.float32).tiny)


class EmotionRecognizer(SpeakerAdaptation, Timelines):
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
        check_top_k(top_k)
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
        check_top_k(top_k)
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
            said = speaker_said(scorer.summary)
            results = [{**result, **said, **extra} for result in results]
        return results[0] if single else results

    # ---------------------------------------------------------------------------------------- helpers

    def _probabilities(self, waves: list[np.ndarray], scorer: Any, progress: bool = False,
                       levels: list[float] | None = None) -> tuple[np.ndarray, dict[str, bool]]:
        """Probabilities of ready waves, by ``scorer`` (then with ``{"adapted": ...}``) or the global head;
        ``levels``: the waves' levels before cleaning, for a scorer that learns from the voiced ones."""
        if scorer is None or not waves:  # pooling nothing has no shape to score
            return self.predict_waves(waves, progress=progress), {}
        probabilities, adapted = scorer.score(waves, self.batch_size, levels=levels)
        return probabilities, {"adapted": adapted}
