"""The speaker-adaptive half of :class:`~ser_hf.inference.recognizer.EmotionRecognizer`: enrolling speakers, saving
and loading their enrollments, a speaker's own standard checkpoint, and what scores for a speaker.

A mixin, as transformers' models take ``PushToHubMixin``: ``EmotionRecognizer`` inherits it, and it uses only the
recognizer's ``model``, ``feature_extractor``, ``checkpoint_dir``, ``batch_size``, ``load_raw`` and ``prepare``. The
enrollments themselves (offsets, scoring, files) are :class:`~ser_hf.inference.speakers.SpeakerEnrollments`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ser_hf.audio import MAX_CLIP_DURATION
from ser_hf.errors import SERError
from ser_hf.inference.clip_inputs import RecognizerInput, describe_input
from ser_hf.inference.enrollment_inputs import enrollment_inputs, enrollment_level_db

__all__ = ["SpeakerAdaptation"]


class SpeakerAdaptation:
    """Speaker enrollment for a recognizer whose checkpoint has speaker adaptation files."""

    # Set by EmotionRecognizer.__init__ (and from_pretrained, for checkpoint_dir).
    checkpoint_dir: Path | None
    _enrollments: Any
    _copies: list

    @property
    def enrollments(self):
        """The :class:`~ser_hf.inference.speakers.SpeakerEnrollments` of this checkpoint (loaded on first use).

        Raises:
            ModelError: when the checkpoint has no speaker adaptation files or is an ONNX export.
        """
        if self._enrollments is None:
            from ser_hf.inference.speakers import SpeakerEnrollments

            if self.checkpoint_dir is None:
                raise SERError("speaker adaptation needs a recognizer loaded with from_pretrained(checkpoint_dir).")
            self._enrollments = SpeakerEnrollments(self.model, self.feature_extractor, self.checkpoint_dir,
                                                   copies=self._copies)
        return self._enrollments

    def enroll(self, speaker: str, clips: Sequence[RecognizerInput]) -> dict[str, Any]:
        """Learn a speaker's voice offset from their unlabelled clips (any emotions, ideally 10 or more).

        Silent clips (RMS below -60 dBFS before the checkpoint's cleaning), voiceless ones (a hum, a buzz, steady
        noise, clicks: :func:`~ser_hf.audio.voicing.holds_voice`) and a recording given twice (the same samples) are
        left out before the encoder runs: none tells anything of the voice.

        Args:
            speaker: The speaker's id.
            clips: A list of clips, each as :meth:`predict` takes one (a path, an array, ``(array, rate)``).

        Returns:
            ``{"speaker", "clips", "adapted", "reason"?, "silent_clips"?, "repeated_clips"?}``: ``clips`` counts
            those enrolled; ``adapted`` is False (with the reason, also logged as a warning) when too few remain or
            the model's adaptation is off; their clips are then scored by the global head.

        Raises:
            SERError: for one clip instead of a list (``enroll('a', [clip])``), or an empty list.
            AudioError: naming a clip that cannot be used.

        Example:
            ```python
            >>> recognizer.enroll("alice", ["alice/01.wav", "alice/02.wav", "alice/03.wav"])  # doctest: +SKIP
            {'speaker': 'alice', 'clips': 3, 'adapted': True}
            >>> recognizer.predict("alice/04.wav", speaker="alice")["label"]  # doctest: +SKIP
            'happy'

            ```
        """
        from ser_hf.inference.speakers import speaker_id

        registry = self.enrollments  # a model without adaptation says so first, before its clips are looked at
        clips = enrollment_inputs(clips, speaker_id(speaker))
        raw = [self.load_raw(clip, MAX_CLIP_DURATION, describe_input(clip, index, False)) for index, clip in enumerate(clips)]
        # before cleaning: a peak-normalised hiss is still silence
        levels = [enrollment_level_db(wave, self.sampling_rate) for wave in raw]
        (clips_states, *copies_states), left_out = registry.enrollment_versions([self.prepare(wave) for wave in raw],
                                                                                self.batch_size, levels)
        return registry.enroll(speaker, clips_states, copies_states, **left_out)

    def save_enrollments(self, path: str | os.PathLike) -> Path:
        """Save every enrolled speaker to ``path.json`` + ``path.safetensors`` (no pickle)."""
        return self.enrollments.save(path)

    def load_enrollments(self, path: str | os.PathLike) -> list[str]:
        """Load enrollments saved by :meth:`save_enrollments` with this model; returns the speaker ids."""
        return self.enrollments.load(path)

    def save_speaker_model(self, speaker: str, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save a standard checkpoint that scores like ``predict(..., speaker=speaker)``, for ``pipeline()`` (each
        clip alone: a recognizer's test-time copies are left out, and a warning says so).

        ``out_dir`` must be new or empty, or with ``overwrite`` an earlier speaker model; never the checkpoint itself.
        """
        return self.enrollments.save_speaker_model(speaker, out_dir, overwrite=overwrite)

    def _speaker_scorer(self, speaker: str | None = None, adapt: bool = False):
        """What scores for a speaker: an enrolled one, a stream's own learnt online, or None (the global head)."""
        from ser_hf.inference.speaker_scorers import EnrolledSpeaker, OnlineSpeaker

        if adapt and speaker is not None:
            raise SERError(f"adapt=True and speaker={speaker!r} cannot be combined: adapt learns the stream's own "
                           f"speaker online, speaker uses an enrolled speaker's offset from the start. Pass one.")
        if adapt:
            return OnlineSpeaker(self.enrollments)
        return None if speaker is None else EnrolledSpeaker(self.enrollments, speaker)
