"""A trained neural baseline (``cnn``, ``lstm``) as a :class:`~ser_hf.baseline.classic_model.BaselineModel`.

:class:`NeuralBaselineModel` predicts from audio files and waveforms exactly like the scikit-learn
baselines (``predict``, ``predict_proba``, ``featurize``, ``save``), computing frame sequences with the
settings it was trained on. A saved neural baseline is a folder:

- ``model.safetensors`` - the network's weights and its input normalisation statistics (safetensors: plain
  tensors, nothing executed on load; never pickle);
- ``baseline_config.json`` - the same file as the other baselines, plus ``neural`` (the
  :class:`~ser_hf.baseline.neural.NeuralConfig`, which fixes the architecture);
- ``README.md`` - the model card.

:func:`~ser_hf.baseline.model.load_baseline` loads either kind (and :meth:`NeuralBaselineModel.from_pretrained`
this kind only). For a neural one it checks the
settings (types and ranges), builds the network on the ``meta`` device (no memory) and compares every
tensor name, shape and dtype with the safetensors header before reading any weight.

Example:
    ```python
    >>> from ser_hf.baseline.model import load_baseline, train_baseline
    >>> model = train_baseline(dataset, "cnn", cache_dir="feature_cache")  # doctest: +SKIP
    >>> model.save("outputs/urdu-cnn")  # doctest: +SKIP
    >>> load_baseline("outputs/urdu-cnn").predict(["clip.wav"])  # doctest: +SKIP
    ['angry']

    ```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ser_hf._io import default_permissions, detach_for_rewrite, write_output_file
from ser_hf.audio import AudioPreprocessor
from ser_hf.baseline.classic_model import (
    CONFIG_NAME,
    MODEL_NAME,
    AudioInput,
    BaselineModel,
    _version,
)
from ser_hf.baseline.crossval import corpus_name, dataset_sequences
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.folder import check_baseline_folder
from ser_hf.baseline.neural import NeuralConfig, SequenceClassifier, SequenceNet, fit_neural, resolve_neural_config
from ser_hf.baseline.saved_files import _FIX, _settings, names_neural, read_saved_settings
from ser_hf.baseline.sequences import check_sequence_config, extract_sequence, sequence_config, sequence_names
from ser_hf.errors import ModelError, SERError
from ser_hf.models.checkpoint_check import safetensors_header
from ser_hf.splits import speakers_of

__all__ = ["WEIGHTS_NAME", "NeuralBaselineModel", "load_neural_baseline", "train_neural_baseline"]

WEIGHTS_NAME = "model.safetensors"
_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


@dataclass
class NeuralBaselineModel(BaselineModel):
    """A trained CNN or BiLSTM baseline; ``pipeline`` is its :class:`~ser_hf.baseline.neural.SequenceClassifier`.

    ``feature_config`` describes the frame sequence (:func:`~ser_hf.baseline.sequences.sequence_config`);
    every other field means what it means for :class:`~ser_hf.baseline.classic_model.BaselineModel`.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_sequence_config(self.feature_config)
        except ValueError as err:
            raise ModelError(f"NeuralBaselineModel: {err}") from None

    @property
    def num_features(self) -> int:
        """Dimensions of one frame of the sequences the network expects."""
        return len(sequence_names(self.feature_config))

    def featurize(self, inputs: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None) -> list:
        """Frame sequences (one ``(frames, num_features)`` array per input) of audio files and/or waveforms, each
        input checked as :meth:`~ser_hf.baseline.classic_model.BaselineModel.prepared_waves` checks it (a clip under
        100 ms or digital silence is refused, not zero-padded and scored)."""
        return [extract_sequence(wave, self.feature_config) for wave in self.prepared_waves(inputs, sampling_rate)]

    def predict_proba_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, len(labels))`` probabilities of precomputed frame sequences (from :meth:`featurize`)."""
        for item in features:
            shape = getattr(item, "shape", None)
            if shape is None or len(shape) != 2 or shape[1] != self.num_features or not shape[0]:
                raise ModelError(
                    f"predict_proba_features: expected (frames, {self.num_features}) frame sequences for this "
                    f"model's feature_config, got {'shape ' + str(shape) if shape else type(item).__name__}; "
                    f"compute them with NeuralBaselineModel.featurize."
                )
        return self.pipeline.predict_proba([np.asarray(item, dtype=np.float32) for item in features])

    def config(self) -> dict[str, Any]:
        """What ``baseline_config.json`` holds: the common fields plus ``neural`` and the weights file."""
        versions = {name: _version(name) for name in ("ser-hf", "torch", "safetensors", "librosa", "numpy")}
        return {**super().config(), "neural": dataclasses.asdict(self.pipeline.config), "weights": WEIGHTS_NAME,
                "num_parameters": self.pipeline.num_parameters(), "versions": versions}

    def save(self, directory: str | os.PathLike, cv: Any = None) -> Path:
        """Write ``model.safetensors``, ``baseline_config.json`` and the model card ``README.md``.

        Args:
            directory: Folder to create (parents too) and write into.
            cv: Optional :class:`~ser_hf.baseline.crossval.BaselineCVResult` of the same settings.

        Returns:
            The folder.
        """
        import json

        from safetensors.torch import save_file

        from ser_hf.baseline.card import write_baseline_card

        out = check_baseline_folder(directory, "directory")
        out.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous() for name, tensor in self.pipeline.network.state_dict().items()}
        detach_for_rewrite(out, [WEIGHTS_NAME])
        save_file(state, out / WEIGHTS_NAME, metadata={"format": "ser_hf-baseline", "classifier": str(self.classifier)})
        default_permissions(out / WEIGHTS_NAME)
        # A scikit-learn model saved here before would no longer match baseline_config.json.
        (out / MODEL_NAME).unlink(missing_ok=True)
        write_output_file(out / CONFIG_NAME, json.dumps(self.config(), indent=2, default=str) + "\n")
        write_baseline_card(out, self, cv)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, trusted: Sequence[str] = ()) -> NeuralBaselineModel:
        """Load a neural baseline folder written by :meth:`save` (``trusted`` is for classic folders and unused).

        :func:`ser_hf.baseline.load_baseline` loads a folder of either kind; this method only the neural kind
        (a classic folder is refused with that fix).

        Raises:
            ModelError: not a saved neural baseline, settings out of range, weights that do not fit the network.
        """
        folder = Path(directory).expanduser()
        config, feature_config, preprocessor = read_saved_settings(folder)
        if not names_neural(config):
            raise ModelError(
                f"{str(folder)!r} holds a classic baseline ({config.get('classifier')}), not a neural one; load it "
                f"with ser_hf.baseline.load_baseline (either kind) or BaselineModel.from_pretrained."
            )
        return load_neural_baseline(folder, config, feature_config, preprocessor)


def _neural_settings(config: dict[str, Any], path: Path) -> NeuralConfig:
    values = config.get("neural")
    names = {item.name for item in dataclasses.fields(NeuralConfig)}
    if isinstance(values, dict) and set(values) - names:
        raise ModelError(f"{str(path)!r}: neural has unknown settings {sorted(set(values) - names)}; expected some "
                         f"of {sorted(names)}. {_FIX}")
    settings = _settings(NeuralConfig, values, path, "neural")
    if settings.architecture != config.get("classifier"):
        raise ModelError(f"{str(path)!r}: classifier is {config.get('classifier')!r} but neural.architecture is "
                         f"{settings.architecture!r}; the two must agree. {_FIX}")
    return settings


def _check_weights(folder: Path, expected: dict[str, torch.Tensor]) -> None:
    """Compare the safetensors header with the network the config describes, before reading any weight."""
    found = safetensors_header(folder / WEIGHTS_NAME)
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [f"{name}: {found[name].dtype} {list(found[name].shape)}, expected {_DTYPES.get(tensor.dtype)} "
             f"{list(tensor.shape)}" for name, tensor in expected.items()
             if name in found and (found[name].shape != tuple(tensor.shape) or found[name].dtype != _DTYPES.get(tensor.dtype))]
    if missing or unexpected or wrong:
        raise ModelError(
            f"{str(folder / WEIGHTS_NAME)!r} does not hold the network {CONFIG_NAME} describes (missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}, mismatched {wrong[:3]}); the files do not belong "
            f"together. {_FIX}"
        )


def load_neural_baseline(
    folder: Path, config: dict[str, Any], feature_config: FeatureConfig, preprocessor: AudioPreprocessor
) -> NeuralBaselineModel:
    """The neural part of :func:`~ser_hf.baseline.model.load_baseline` (config already read and checked)."""
    path = folder / CONFIG_NAME
    settings = _neural_settings(config, path)
    try:
        width = len(sequence_names(feature_config))
    except ValueError as err:
        raise ModelError(f"{str(path)!r}: feature_config is not a frame sequence ({err}). {_FIX}") from None
    if config.get("num_features", width) != width:
        raise ModelError(f"{str(path)!r}: feature_config gives {width} dimensions per frame but num_features is "
                         f"{config['num_features']}; the files do not belong together. {_FIX}")
    labels = config["labels"]
    try:
        with torch.device("meta"):
            expected = SequenceNet(width, len(labels), settings).state_dict()
    except SERError as err:
        raise ModelError(f"{str(path)!r}: {err} {_FIX}") from None
    _check_weights(folder, expected)
    from safetensors.torch import load_file

    model = SequenceClassifier.build(width, len(labels), settings)
    state = load_file(folder / WEIGHTS_NAME)
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()) or (state["std"] <= 0).any():
        raise ModelError(f"{str(folder / WEIGHTS_NAME)!r} holds NaN/infinite weights or a non-positive std. {_FIX}")
    model.network.load_state_dict(state, strict=True)
    return NeuralBaselineModel(
        pipeline=model, labels=labels, feature_config=feature_config, preprocessor=preprocessor,
        classifier=config["classifier"], best_params=config.get("best_params", {}), metadata=config.get("metadata", {}),
    )


def train_neural_baseline(
    dataset: datasets.Dataset,
    classifier: str = "cnn",
    *,
    features: list[np.ndarray] | None = None,
    feature_config: FeatureConfig | None = None,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None,
    neural_config: NeuralConfig | None = None,
    seed: int = 0,
    num_workers: int | None = None,
    progress: bool = True,
) -> NeuralBaselineModel:
    """Train a CNN or BiLSTM on every clip of ``dataset`` (early stopping on held-out speakers of it).

    Args:
        dataset: The training corpus.
        classifier: ``cnn`` or ``lstm``.
        features: Precomputed frame sequences, one per clip (e.g. ``BaselineCVResult.features``).
        feature_config: Sequence settings; ``None`` means :func:`~ser_hf.baseline.sequences.sequence_config`.
        preprocessor: Audio cleaning before extraction.
        cache_dir: Feature cache folder.
        neural_config: Architecture and training settings.
        seed: Seed of the validation split and of training.
        num_workers: Feature extraction processes.
        progress: Show the extraction progress bar.

    Returns:
        The trained :class:`NeuralBaselineModel`.
    """
    config = check_sequence_config(feature_config or sequence_config(classifier))
    settings = resolve_neural_config(classifier, neural_config)
    if features is None:
        features = dataset_sequences(dataset, config, preprocessor=preprocessor, cache_dir=cache_dir,
                                     num_workers=num_workers, progress=progress)
    if len(features) != len(dataset):
        raise SERError(f"`features` has {len(features)} sequences but the dataset has {len(dataset)} clips; pass one "
                       f"per clip in dataset order, or features=None to extract them.")
    speakers, labels = speakers_of(dataset), np.asarray(dataset["label"])
    names = dataset.features["label"].names
    fitted = fit_neural(list(features), labels, speakers, classifier, num_labels=len(names), config=settings,
                        seed=seed)
    facts = {"corpus": corpus_name(dataset), "num_clips": len(dataset), "num_speakers": len(set(speakers)),
             "label_counts": dict(zip(names, np.bincount(labels, minlength=len(names)).tolist())),
             "validation_unweighted_accuracy": fitted.inner_score, "validation_speakers": fitted.inner_speakers[0]["test"],
             "seed": seed, "history": fitted.history}
    return NeuralBaselineModel(fitted.model, names, config, preprocessor, classifier, fitted.best_params, facts)
