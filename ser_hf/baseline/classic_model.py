"""A trained classic baseline as one object: features + scaler + classifier + label names, saved with skops.

:class:`BaselineModel` predicts emotion names from audio files or waveforms (``predict``) and class
probabilities (``predict_proba``), computing the classic features with the exact :class:`FeatureConfig`
and :class:`~ser_hf.audio.AudioPreprocessor` it was trained with. It is also the base of the neural
baselines (:class:`~ser_hf.baseline.neural_model.NeuralBaselineModel`), which share its fields, its config
file and the checks of that file (:mod:`ser_hf.baseline.saved_files`).

A saved model is a folder:

- ``model.skops`` - the scikit-learn pipeline in the `skops <https://skops.readthedocs.io>`_ format, which,
  unlike pickle, runs no code on load and refuses object types nobody trusted;
- ``baseline_config.json`` - label names, feature and preprocessing settings, classifier, hyperparameters,
  versions;
- ``README.md`` - the model card (:mod:`ser_hf.baseline.card`).

The neural baselines (``cnn``, ``lstm``) save ``model.safetensors`` in place of ``model.skops``, with the same
``baseline_config.json`` (plus their ``neural`` settings).

:meth:`BaselineModel.from_pretrained` loads a classic one after :mod:`ser_hf.baseline.saved_files` has checked
the folder, trusting only :data:`TRUSTED_TYPES` plus any types the caller names (see that module).
Training, and loading a folder of either kind, is :mod:`ser_hf.baseline.model`'s.

Example:
    ```python
    >>> from ser_hf.baseline.classic_model import BaselineModel
    >>> model = BaselineModel.from_pretrained("outputs/urdu-svm")  # doctest: +SKIP
    >>> model.predict(["clip1.wav", "clip2.wav"])  # doctest: +SKIP
    ['angry', 'neutral']

    ```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from ser_hf._io import detach_for_rewrite, write_output_file
from ser_hf.audio import MIN_CLIP_DURATION, AudioPreprocessor, check_sampling_rate
from ser_hf.audio.clean import SILENCE_DBFS, holds_no_sound
from ser_hf.baseline.classifiers import probabilities_for
from ser_hf.baseline.feature_config import FEATURES_VERSION, FeatureConfig
from ser_hf.baseline.features import extract_features, feature_names
from ser_hf.baseline.folder import BASELINE_OUTPUTS, CONFIG_NAME, MODEL_NAME, check_baseline_folder
from ser_hf.baseline.saved_files import (
    _FIX,
    _FORMAT,
    _FORMAT_VERSION,
    _NEURAL_WEIGHTS,
    TRUSTED_TYPES,
    _load_pipeline,
    names_neural,
    read_saved_settings,
)
from ser_hf.errors import AudioError, ModelError
from ser_hf.inference.streaming import window_level_db
from ser_hf.paths import path_text
from ser_hf.versions import installed_version

# TRUSTED_TYPES, names_neural and read_saved_settings are saved_files', re-exported: they were defined here.
__all__ = [
    "BASELINE_OUTPUTS", "CONFIG_NAME", "MODEL_NAME", "TRUSTED_TYPES", "BaselineModel", "load_classic_baseline", "names_neural",
    "check_baseline_folder", "read_saved_settings",
]

AudioInput = str | os.PathLike | np.ndarray


@dataclass
class BaselineModel:
    """A fitted classic-feature classifier with everything needed to predict from audio.

    Args:
        pipeline: Fitted scikit-learn pipeline trained on class ids ``0 .. len(labels) - 1``.
        labels: Emotion names in class-id order.
        feature_config: The feature settings the pipeline was trained on.
        preprocessor: The audio cleaning applied before feature extraction.
        classifier: Classifier name (``svm``, ``logreg``, ``forest``, ``mlp``).
        best_params: Hyperparameters chosen by the inner cross-validation.
        metadata: Facts about training (corpus, clips, speakers, inner-CV UA...), kept in the config file.

    Example:
        ```python
        >>> model = BaselineModel.from_pretrained("outputs/urdu-svm")  # doctest: +SKIP
        >>> model.predict_proba([wave], sampling_rate=16000).round(2)  # doctest: +SKIP
        array([[0.05, 0.1 , 0.8 , 0.05]])

        ```
    """

    pipeline: Pipeline
    labels: list[str]
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    preprocessor: AudioPreprocessor | None = None
    classifier: str | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = list(self.labels)
        if self.preprocessor is None:
            self.preprocessor = AudioPreprocessor(sampling_rate=self.feature_config.sampling_rate)
        if self.preprocessor.sampling_rate != self.feature_config.sampling_rate:
            raise ModelError(
                f"BaselineModel: preprocessor.sampling_rate ({self.preprocessor.sampling_rate} Hz) differs from "
                f"feature_config.sampling_rate ({self.feature_config.sampling_rate} Hz); use one rate for both."
            )

    @property
    def num_features(self) -> int:
        """Length of the feature vector the pipeline expects."""
        return len(feature_names(self.feature_config))

    def featurize(self, inputs: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None) -> np.ndarray:
        """Feature matrix of audio files and/or waveforms.

        Args:
            inputs: A path, a 1-D waveform, or a list of them.
            sampling_rate: Rate of the waveforms (Hz); ``None`` means ``feature_config.sampling_rate``.
                Files are decoded and resampled by the preprocessor.

        Returns:
            ``(n_inputs, num_features)`` float32 array.

        Raises:
            AudioError: naming the input, for one :meth:`prepared_waves` refuses (shorter than 100 ms, no sound,
                unreadable) or a ``sampling_rate`` that is no rate (0 included).
        """
        rows = [extract_features(wave, self.feature_config) for wave in self.prepared_waves(inputs, sampling_rate)]
        return np.stack(rows) if rows else np.zeros((0, self.num_features), np.float32)

    def prepared_waves(self, inputs: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None
                       ) -> list[np.ndarray]:
        """Each input decoded (or checked), refused when it cannot be recognised, then cleaned by the preprocessor.

        Refused, as :meth:`EmotionRecognizer.predict <ser_hf.inference.recognizer.EmotionRecognizer.predict>` refuses
        them: clips shorter than :data:`~ser_hf.audio.MIN_CLIP_DURATION` (its encoders' first frame; here a 1-sample
        clip was zero-padded and scored at probability 1.0), judged on the decoded (or checked) input. A clip that
        holds no sound (:func:`~ser_hf.audio.clean.holds_no_sound`: digital silence, or one constant value) is refused
        too: it has no emotion, and as ``EmotionRecognizer.predict_long`` gives no label to silent windows, the
        baseline gives none to a silent clip, by refusing it rather than scoring it as a confident emotion. Sound is
        judged on what is scored: the part the preprocessor keeps (:meth:`AudioPreprocessor.kept
        <ser_hf.audio.AudioPreprocessor.kept>`: trimmed, cropped to ``max_duration``), before padding, so that a file
        and the same samples as an array get the same answer (the file is cropped as it is decoded, the array only
        when cleaned).

        Raises:
            AudioError: naming the input (``inputs[i]`` in a list) for a sampling rate that is no rate (0 included),
                an unreadable or unusable input, a clip shorter than 100 ms, or digital silence.
        """
        rate = self.feature_config.sampling_rate if sampling_rate is None else check_sampling_rate(
            sampling_rate, "BaselineModel(..., sampling_rate=...)")  # 0 is a mistake, not "the model's rate"
        items = _as_items(inputs)
        single = not isinstance(inputs, Sequence) or isinstance(inputs, (str, np.ndarray))
        waves = []
        for index, item in enumerate(items):
            raw = self.preprocessor.load(item, sampling_rate=rate if isinstance(item, np.ndarray) else None)
            kept = self.preprocessor.kept(raw)
            _check_recognisable(raw, kept, self.preprocessor.sampling_rate, _describe(item, index, single))
            waves.append(self.preprocessor.finish(kept))
        return waves

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` probabilities of precomputed feature rows (from :meth:`featurize`)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ModelError(
                f"predict_proba_features: expected an (n, {self.num_features}) feature matrix for this model's "
                f"FeatureConfig, got shape {features.shape}; compute it with BaselineModel.featurize."
            )
        if not len(features):  # scikit-learn refuses empty input; an empty batch has empty output
            return np.zeros((0, len(self.labels)))
        return probabilities_for(self.pipeline, features, len(self.labels))

    def predict_proba(self, inputs: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None) -> np.ndarray:
        """Class probabilities (columns in :attr:`labels` order) of audio files and/or waveforms.

        Args:
            inputs: A path, a 1-D waveform, or a list of them.
            sampling_rate: Rate of the waveforms; ``None`` means ``feature_config.sampling_rate``.

        Returns:
            ``(n_inputs, len(labels))`` array whose rows sum to 1.
        """
        return self.predict_proba_features(self.featurize(inputs, sampling_rate))

    def predict(self, inputs: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None) -> list[str]:
        """The most probable emotion name of each input (the argmax of :meth:`predict_proba`)."""
        return [self.labels[i] for i in self.predict_proba(inputs, sampling_rate).argmax(axis=1)]

    def config(self) -> dict[str, Any]:
        """What ``baseline_config.json`` holds."""
        versions = {name: _version(name) for name in ("ser-hf", "scikit-learn", "skops", "librosa", "numpy")}
        return {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "labels": self.labels,
            "classifier": self.classifier, "best_params": self.best_params,
            "features_version": FEATURES_VERSION, "num_features": self.num_features,
            "feature_config": dataclasses.asdict(self.feature_config),
            "preprocessor": dataclasses.asdict(self.preprocessor), "metadata": self.metadata, "versions": versions,
        }

    def save(self, directory: str | os.PathLike, cv: Any = None) -> Path:
        """Write ``model.skops``, ``baseline_config.json`` and the model card ``README.md``.

        Args:
            directory: Folder to create (parents too) and write into.
            cv: Optional :class:`~ser_hf.baseline.crossval.BaselineCVResult` of the same settings, whose
                results the card reports.

        Returns:
            The folder.
        """
        import skops.io

        from ser_hf.baseline.card import write_baseline_card

        out = check_baseline_folder(directory, "directory")
        out.mkdir(parents=True, exist_ok=True)
        detach_for_rewrite(out, [MODEL_NAME])
        skops.io.dump(self.pipeline, out / MODEL_NAME)
        (out / _NEURAL_WEIGHTS).unlink(missing_ok=True)  # a neural model saved here before no longer applies
        write_output_file(out / CONFIG_NAME, json.dumps(self.config(), indent=2, default=str) + "\n")
        write_baseline_card(out, self, cv)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, trusted: Sequence[str] = ()) -> BaselineModel:
        """Load a classic baseline folder written by :meth:`save`, without unpickling arbitrary code.

        :func:`ser_hf.baseline.load_baseline` loads a folder of either kind; this method only the classic kind
        (a neural folder is refused with that fix).

        Args:
            directory: The saved folder.
            trusted: Extra type names to trust beyond :data:`TRUSTED_TYPES` (only for files you made yourself,
                e.g. with a custom ``param_grid`` that uses another MLP solver). ``True`` is refused.

        Raises:
            ModelError: not a saved classic baseline, another format or features version, ``model.skops`` not a
                skops file (e.g. a pickle), untrusted types in the file.
        """
        folder = Path(path_text(directory, "the baseline folder", error=ModelError, refuse_empty=True)).expanduser()
        config, feature_config, preprocessor = read_saved_settings(folder)
        if names_neural(config):
            raise ModelError(
                f"{str(folder)!r} holds a neural baseline ({config['classifier']}), not a classic one; load it with "
                f"ser_hf.baseline.load_baseline (either kind) or NeuralBaselineModel.from_pretrained."
            )
        return load_classic_baseline(folder, config, feature_config, preprocessor, trusted)


def _as_items(inputs: Any) -> list[Any]:
    if isinstance(inputs, (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, np.ndarray):
        if inputs.ndim != 1:
            raise AudioError(
                f"BaselineModel: a single waveform must be 1-D, got shape {inputs.shape}. Pass a list of 1-D "
                f"waveforms (or of paths) for a batch, or use predict_proba_features for a feature matrix."
            )
        return [inputs]
    if isinstance(inputs, Sequence):
        _check_batch(inputs)
        return list(inputs)
    raise AudioError(
        f"BaselineModel: expected a path, a 1-D numpy waveform or a list of them, got {type(inputs).__name__}."
    )


def _check_batch(inputs: Sequence[Any]) -> None:
    """Refuse a list that is no batch of clips: a list of numbers is one clip's samples (each number was taken as a
    clip of its own, and refused as an array without a rate although the rate was passed)."""
    clip = (str, bytes, os.PathLike, np.ndarray)
    if inputs and all(isinstance(item, (int, float, np.number)) and not isinstance(item, bool) for item in inputs):
        raise AudioError(
            f"BaselineModel: got a list of {len(inputs)} numbers; a list is a batch of clips (paths or 1-D numpy "
            f"waveforms), so each number would be a clip of its own. Pass the samples as one waveform: "
            f"np.asarray(samples, dtype=np.float32)."
        )
    for index, item in enumerate(inputs):
        if not isinstance(item, clip):
            raise AudioError(
                f"BaselineModel: inputs[{index}] is a {type(item).__name__}; each item of a batch must be a path or "
                f"a 1-D numpy waveform. Convert it with np.asarray(item, dtype=np.float32)."
            )


def _describe(item: Any, index: int, single: bool) -> str:
    name = repr(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else "the audio array"
    return name if single else f"inputs[{index}] ({name})"


def _below(value: float, limit: float) -> str:
    """``value`` (< ``limit``) written with as few digits as keep it below ``limit`` (99.95 ms is not "100 ms")."""
    for digits in range(3, 17):
        text = f"{value:.{digits}g}"
        if float(text) < limit:
            return text
    return repr(value)


def _check_recognisable(raw: np.ndarray, kept: np.ndarray, sampling_rate: int, what: str) -> None:
    """Refuse a clip too short (``raw``: as decoded or checked) or too silent (``kept``: the part the preprocessor
    keeps) to have an emotion (see :meth:`BaselineModel.prepared_waves`)."""
    minimum = MIN_CLIP_DURATION * 1000
    if raw.size < MIN_CLIP_DURATION * sampling_rate:
        raise AudioError(
            f"{what} lasts {_below(1000 * raw.size / sampling_rate, minimum)} ms ({raw.size} samples at "
            f"{sampling_rate} Hz); expected at least {minimum:g} ms ({math.ceil(MIN_CLIP_DURATION * sampling_rate)} "
            f"samples), as EmotionRecognizer.predict does: a shorter clip holds no emotion to recognise. Pass the "
            f"whole recording."
        )
    level = window_level_db(kept)
    if holds_no_sound(level):
        raise AudioError(
            f"{what} holds no sound: its RMS level about its mean (over the part scored, after trim_db and "
            f"max_duration) is {_below(level, SILENCE_DBFS)} dBFS, below {SILENCE_DBFS:g} dBFS (digital silence, or "
            f"one constant value); expected a recording of a voice. Without a voice it has no "
            f"emotion (EmotionRecognizer.predict_long gives silent windows no label). Leave it out, or check the "
            f"recording's input and gain."
        )


_version = installed_version


def load_classic_baseline(
    folder: Path, config: dict[str, Any], feature_config: FeatureConfig, preprocessor: AudioPreprocessor,
    trusted: Sequence[str] = (),
) -> BaselineModel:
    """The classic part of :func:`~ser_hf.baseline.model.load_baseline` (config read by :func:`read_saved_settings`)."""
    path = folder / CONFIG_NAME
    pipeline = _load_pipeline(folder / MODEL_NAME, trusted)
    if not set(pipeline.classes_.astype(int)) <= set(range(len(config["labels"]))):
        raise ModelError(
            f"{str(folder)!r}: the classifier's classes {pipeline.classes_.tolist()} do not index the "
            f"{len(config['labels'])} labels {config['labels']} in {CONFIG_NAME}; the files do not belong together."
        )
    width = len(feature_names(feature_config))
    expected = {config.get("num_features", width), getattr(pipeline, "n_features_in_", width)}
    if expected != {width}:
        raise ModelError(
            f"{str(folder)!r}: feature_config in {CONFIG_NAME} gives {width} features, but num_features and the "
            f"classifier expect {sorted(expected - {width})}; the files do not belong together. {_FIX}"
        )
    try:
        return BaselineModel(
            pipeline=pipeline, labels=config["labels"], feature_config=feature_config, preprocessor=preprocessor,
            classifier=config.get("classifier"), best_params=config.get("best_params", {}),
            metadata=config.get("metadata", {}),
        )
    except ModelError as err:
        raise ModelError(f"{str(path)!r}: {err} {_FIX}") from None
