"""The fine-tuning data pipeline: audio paths -> waves -> (random crop, augmentation) -> padded model input.

Datasets keep their ``audio`` column as file paths (``datasets`` >= 4 would need torchcodec to decode an
``Audio`` feature); :class:`AudioCollator` decodes each batch with :mod:`ser_hf.audio` (soundfile + soxr),
so decoding and augmentation run in the ``DataLoader`` workers and nothing is cached on disk.

- Training (:meth:`AudioCollator.for_training`): a random window of ``max_duration`` seconds per clip, then
  the :class:`Augmentation` steps (speed perturbation, pitch shift, gain, additive noise), each optional.
- Evaluation: whole clips, no randomness.
- Loss weights: a ``loss_weight`` column (:data:`LOSS_WEIGHT_COLUMN`) reaches the batch as ``loss_weights``;
  :class:`~ser_hf.training.trainer.SERTrainer` adds it to a training set of several corpora.
- Padding: wav2vec2-style extractors pad to the longest clip of the batch (with an attention mask where the
  checkpoint's extractor returns one); Whisper and AST extractors pad or truncate to their fixed length, which
  Whisper's variable-length mode (``ModelOptions.max_source_positions``) makes short.

Example:
    >>> from ser_hf.training.data import AudioCollator, Augmentation
    >>> collator = AudioCollator(feature_extractor, max_duration=6.0,
    ...                          augmentation=Augmentation(noise_snr_db=(10, 30), gain_db=(-6, 6)))  # doctest: +SKIP
    >>> batch = collator.for_training()([{"audio": "a.wav", "label": 0}, {"audio": "b.wav", "label": 2}])  # doctest: +SKIP
    >>> batch["input_values"].shape, batch["labels"]  # doctest: +SKIP
    (torch.Size([2, 96000]), tensor([0, 2]))
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from transformers import Wav2Vec2FeatureExtractor

from ser_hf.audio import (  # add_noise and change_speed: re-exported
    AudioPreprocessor,
    add_noise,
    audio_info,
    change_speed,
    load_audio_bytes,
)
from ser_hf.errors import AudioError, SERError
from ser_hf.ranges import SPEED_FACTOR

__all__ = ["AudioCollator", "Augmentation", "add_noise", "apply_gain", "change_speed", "random_crop",
           "shift_pitch", "with_durations"]


def random_crop(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``length`` samples; shorter clips are returned whole (never padded)."""
    if wave.size <= length:
        return wave
    start = int(rng.integers(0, wave.size - length + 1))
    return wave[start:start + length]


def apply_gain(wave: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by ``gain_db`` decibels."""
    return (wave * np.float32(10 ** (gain_db / 20))).astype(np.float32, copy=False)


def shift_pitch(wave: np.ndarray, semitones: float, sampling_rate: int) -> np.ndarray:
    """Shift the pitch by ``semitones`` keeping the duration (librosa's phase vocoder + resampling)."""
    import librosa  # imported here: numba compiles on first use, which only pitch shifting needs

    if semitones == 0 or wave.size < 2048:  # librosa's STFT needs at least one full frame
        return wave
    return librosa.effects.pitch_shift(wave, sr=sampling_rate, n_steps=semitones).astype(np.float32)


def _range(name: str, value: Sequence[float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    values = tuple(float(v) for v in value)
    if len(values) != 2 or values[0] > values[1]:
        raise SERError(f"{name} must be two numbers 'low high' with low <= high (e.g. 10 30), got {list(value)}.")
    return values


@dataclass
class Augmentation:
    """Random waveform changes applied to training clips; every step is off unless set.

    Args:
        noise_snr_db: ``(low, high)``: add white noise at an SNR drawn uniformly from this range (dB).
        gain_db: ``(low, high)``: scale the clip by a gain drawn from this range (dB).
        speed_perturb: Speed factors to choose from (e.g. ``(0.9, 1.0, 1.1)``); changes duration and pitch.
        pitch_shift_semitones: Shift pitch by up to this many semitones either way, keeping the duration
            (librosa; about 10x slower than the other steps).
        probability: Chance that each configured step is applied to a clip.
        sampling_rate: Rate of the waves (Hz).

    Example:
        >>> import numpy as np
        >>> augment = Augmentation(gain_db=(-6, 6), probability=1.0)
        >>> wave = np.full(16000, 0.1, dtype=np.float32)
        >>> augment(wave, np.random.default_rng(0)).shape
        (16000,)
    """

    noise_snr_db: tuple[float, float] | None = None
    gain_db: tuple[float, float] | None = None
    speed_perturb: tuple[float, ...] | None = None
    pitch_shift_semitones: float | None = None
    probability: float = 0.5
    sampling_rate: int = 16000

    def __post_init__(self) -> None:
        self.noise_snr_db = _range("noise_snr_db", self.noise_snr_db)
        self.gain_db = _range("gain_db", self.gain_db)
        if self.speed_perturb is not None:
            self.speed_perturb = tuple(float(f) for f in self.speed_perturb)
            if not self.speed_perturb or not all(f in SPEED_FACTOR for f in self.speed_perturb):
                raise SERError(f"speed_perturb must list speed factors in [0.5, 2] (e.g. 0.9 1.0 1.1), "
                               f"got {list(self.speed_perturb)}.")
        if self.pitch_shift_semitones is not None and not 0 <= self.pitch_shift_semitones <= 12:
            raise SERError(f"pitch_shift_semitones must be in [0, 12], got {self.pitch_shift_semitones}.")
        if not 0.0 <= self.probability <= 1.0:
            raise SERError(f"augment_probability must be in [0, 1], got {self.probability}.")

    @classmethod
    def from_args(cls, args: Any, sampling_rate: int = 16000) -> Augmentation | None:
        """The augmentation :class:`~ser_hf.training.arguments.SERTrainingArguments` ask for (``None`` if none)."""
        augmentation = cls(noise_snr_db=args.noise_snr_db, gain_db=args.gain_db, speed_perturb=args.speed_perturb,
                           pitch_shift_semitones=args.pitch_shift_semitones, probability=args.augment_probability,
                           sampling_rate=sampling_rate)
        return augmentation if augmentation.enabled else None

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.noise_snr_db, self.gain_db, self.speed_perturb,
                                           self.pitch_shift_semitones))

    def draw_speed(self, rng: np.random.Generator) -> float:
        """The speed factor for one clip (1.0 when speed perturbation is off or not drawn)."""
        if self.speed_perturb is None or rng.random() >= self.probability:
            return 1.0
        return float(rng.choice(self.speed_perturb))

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
        """Apply ``speed`` (see :meth:`draw_speed`), then pitch shift, gain and noise, each with ``probability``."""
        wave = change_speed(wave, speed, self.sampling_rate)
        if self.pitch_shift_semitones and rng.random() < self.probability:
            semitones = rng.uniform(-self.pitch_shift_semitones, self.pitch_shift_semitones)
            wave = shift_pitch(wave, semitones, self.sampling_rate)
        if self.gain_db is not None and rng.random() < self.probability:
            wave = apply_gain(wave, rng.uniform(*self.gain_db))
        if self.noise_snr_db is not None and rng.random() < self.probability:
            wave = add_noise(wave, rng.uniform(*self.noise_snr_db), rng)
        return wave


#: A dataset column of per-clip loss weights. :class:`~ser_hf.training.trainer.SERTrainer` adds it to a training set of
#: several corpora (every (corpus, emotion) cell then weighs the same); a user's own column is used as given.
LOSS_WEIGHT_COLUMN = "loss_weight"


def loss_weights(rows: list[dict[str, Any]]) -> torch.Tensor | None:
    """The rows' :data:`LOSS_WEIGHT_COLUMN` values as a float tensor, or None when the rows have none."""
    if rows[0].get(LOSS_WEIGHT_COLUMN) is None:
        return None
    return torch.tensor([float(row[LOSS_WEIGHT_COLUMN]) for row in rows], dtype=torch.float32)


@dataclass
class AudioCollator:
    """Turns dataset rows (``audio`` path, ``label`` id) into a padded batch for an audio classifier.

    Args:
        feature_extractor: The checkpoint's feature extractor (``Wav2Vec2FeatureExtractor`` pads dynamically;
            Whisper/AST extractors pad to their fixed length).
        preprocessor: Audio cleaning (its ``max_duration`` crops the start of every clip; for training crops
            use ``max_duration`` here instead).
        max_duration: Training only: a random window of this many seconds of each clip.
        augmentation: Training only: waveform augmentation.
        train: Whether this is the training collator (crop and augment) or the evaluation one (whole clips).
        seed: Base seed of the crops and augmentation. Each clip's draws are a function of ``(seed, epoch, clip,
            process rank)`` only (see :meth:`clip_rng`), so every epoch draws new changes, and a run resumed from a
            checkpoint, with any number of DataLoader workers, replays exactly the draws of an uninterrupted one.
        audio_column: Column with file paths (or ``{"array", "sampling_rate"}`` dicts).
        label_column: Column with class ids; absent at prediction time.
    """

    feature_extractor: Any
    preprocessor: AudioPreprocessor | None = None
    max_duration: float | None = None
    augmentation: Augmentation | None = None
    train: bool = False
    seed: int = 0
    audio_column: str = "audio"
    label_column: str = "label"
    #: The training epoch (set by SERTrainer before each epoch's DataLoader iterator is created).
    epoch: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        rate = self.sampling_rate
        if self.preprocessor is None:
            self.preprocessor = AudioPreprocessor(sampling_rate=rate)
        if self.preprocessor.sampling_rate != rate:
            raise SERError(f"AudioCollator: the preprocessor resamples to {self.preprocessor.sampling_rate} Hz but "
                           f"the feature extractor expects {rate} Hz; build AudioPreprocessor(sampling_rate={rate}).")
        if self.max_duration is not None and self.max_duration <= 0:
            raise SERError(f"max_duration must be positive (seconds), got {self.max_duration}.")

    @property
    def sampling_rate(self) -> int:
        return int(getattr(self.feature_extractor, "sampling_rate", 16000))

    def for_training(self) -> AudioCollator:
        """A copy that crops and augments (the Trainer's training DataLoader uses it)."""
        return dataclasses.replace(self, train=True)

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops and augmentation of ``epoch`` (the Trainer's epochs count from 0)."""
        self.epoch = int(epoch)

    def clip_rng(self, audio: Any) -> np.random.Generator:
        """The generator of one clip's crop and augmentation in the current epoch.

        Keyed on ``(seed, epoch, clip, rank)`` rather than drawn from one generator that runs on: a resumed run
        skips the batches it already trained on without collating them, and DataLoader workers each hold a
        copy of the collator, so a running generator could not replay the draws. A clip that a sampler
        draws twice in one epoch (the balanced sampler samples with replacement) gets the same changes twice.
        """
        rank = int(os.environ.get("RANK", "0"))
        return np.random.default_rng([self.seed, self.epoch, _clip_key(audio), rank])

    def load(self, audio: Any) -> np.ndarray:
        """Decode and clean one clip (a path, an ``{"array", "sampling_rate"}`` dict or an ``Audio(decode=False)`` cell
        ``{"bytes", "path"}``); AudioError names the file."""
        if isinstance(audio, dict):
            if audio.get("array") is not None:
                # A decoder's samples (datasets decoded the file): held to a file's rules, not a caller's array's.
                return self.preprocessor(np.asarray(audio["array"], dtype=np.float32), audio["sampling_rate"],
                                         decoded=True)
            if audio.get("bytes"):  # an Audio(decode=False) cell of a streamed dataset: decoded here, not by torchcodec
                what = f"The embedded audio {audio.get('path') or ''}".rstrip()
                return self.preprocessor.clean(load_audio_bytes(audio["bytes"], self.sampling_rate, what))
            audio = audio.get("path")
        if not isinstance(audio, (str, os.PathLike)):
            raise AudioError(f"Column {self.audio_column!r} must hold file paths, got {type(audio).__name__}. "
                             f"Load the corpus with ser_hf.corpora.load_corpus (paths) or cast Audio(decode=False).")
        return self.preprocessor(audio)

    def _training_wave(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        speed = self.augmentation.draw_speed(rng) if self.augmentation else 1.0
        if self.max_duration is not None:
            # Crop speed * window samples, so the clip lasts max_duration after the speed change.
            window = int(round(self.max_duration * self.sampling_rate))
            wave = random_crop(wave, int(math.ceil(window * speed)), rng)
        if self.augmentation is not None:
            wave = self.augmentation(wave, rng, speed)
        if self.max_duration is not None:
            wave = wave[: int(round(self.max_duration * self.sampling_rate))]
        return wave

    def extract(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Run the feature extractor on a batch of 16 kHz waves and pad it (see the module docstring)."""
        extractor = self.feature_extractor
        if isinstance(extractor, Wav2Vec2FeatureExtractor):
            # Ask for the mask even where the model must not get it: the extractor then normalises each clip
            # over its real samples only, not over the zeros padding it.
            batch = extractor(waves, sampling_rate=self.sampling_rate, padding="longest",
                              return_attention_mask=True, return_tensors="pt")
            if not extractor.return_attention_mask:
                batch.pop("attention_mask")
            return dict(batch)
        batch = extractor(waves, sampling_rate=self.sampling_rate, return_tensors="pt")
        batch.pop("attention_mask", None)  # WhisperForAudioClassification/AST take no mask
        return dict(batch)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise SERError("AudioCollator got an empty batch.")
        waves = [self.load(row[self.audio_column]) for row in rows]
        if self.train:
            waves = [self._training_wave(wave, self.clip_rng(row[self.audio_column])) for wave, row in zip(waves, rows)]
        batch = self.extract(waves)
        if self.label_column in rows[0] and rows[0][self.label_column] is not None:
            batch["labels"] = torch.tensor([int(row[self.label_column]) for row in rows], dtype=torch.long)
            if (weights := loss_weights(rows)) is not None:
                batch["loss_weights"] = weights
        return batch


def _clip_key(audio: Any) -> int:
    """A stable 32-bit id of a clip: its file's name, or the bytes of an in-memory array or file. The name, not the
    whole path, so that a corpus moved or reached through a link draws the same (a resumed CV keeps its folds then:
    :mod:`ser_hf.evaluation.fold_state` knows clips by name and bytes); two clips of one name in two folders share
    their draws, which biases nothing."""
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            audio = np.ascontiguousarray(audio["array"]).tobytes()
        else:
            audio = bytes(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    data = audio if isinstance(audio, bytes) else os.fsencode(os.path.basename(os.fspath(audio)))
    return zlib.crc32(data)


def with_durations(dataset: datasets.Dataset, audio_column: str = "audio", column: str = "duration") -> datasets.Dataset:
    """``dataset`` with a ``duration`` column (seconds, from the file headers) if it has none yet.

    Every corpus loader already adds it; length-grouped batches and length-sorted prediction need it.
    """
    if column in dataset.column_names:
        return dataset
    durations = [audio_info(path).duration for path in dataset[audio_column]]
    return dataset.add_column(column, durations)
