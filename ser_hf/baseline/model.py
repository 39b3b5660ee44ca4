"""Train a baseline of either kind on a corpus, or load a saved one: :func:`train_baseline`, :func:`load_baseline`.

A classic baseline (``svm``, ``logreg``, ``forest``, ``mlp``) is a
:class:`~ser_hf.baseline.classic_model.BaselineModel`: per-clip features, a scaler and a scikit-learn
classifier, saved with skops. A neural one (``cnn``, ``lstm``) is a
:class:`~ser_hf.baseline.neural_model.NeuralBaselineModel`: a small network trained from scratch on frame
sequences, saved with safetensors. This module picks the kind, as transformers' Auto classes pick a model
class: by the classifier's name when training, by the folder's ``baseline_config.json`` when loading. It also
holds the classic training itself (hyperparameters by speaker-grouped inner CV), and re-exports the classic
model's names, so that ``ser_hf.baseline.model`` is the one import a user needs.

Example:
    ```python
    >>> from ser_hf.baseline.model import load_baseline, train_baseline
    >>> model = train_baseline(dataset, "svm", cache_dir="feature_cache")  # doctest: +SKIP
    >>> model.save("outputs/urdu-svm")  # doctest: +SKIP
    >>> model = load_baseline("outputs/urdu-svm")  # doctest: +SKIP
    >>> model.predict(["clip1.wav", "clip2.wav"])  # doctest: +SKIP
    ['angry', 'neutral']

    ```
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf.audio import AudioPreprocessor
from ser_hf.baseline.classic_model import (
    CONFIG_NAME,
    MODEL_NAME,
    AudioInput,
    BaselineModel,
    load_classic_baseline,
)
from ser_hf.baseline.classifiers import fit_classifier, is_neural
from ser_hf.baseline.crossval import corpus_name, dataset_features
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.saved_files import (
    MAX_INFLATION,
    SETTING_LIMITS,
    TRUSTED_TYPES,
    names_neural,
    read_saved_settings,
)
from ser_hf.errors import ModelError
from ser_hf.paths import path_text
from ser_hf.splits import speakers_of

__all__ = [
    "CONFIG_NAME", "MAX_INFLATION", "MODEL_NAME", "SETTING_LIMITS", "TRUSTED_TYPES", "AudioInput", "BaselineModel",
    "load_baseline", "train_baseline",
]


def load_baseline(directory: str | os.PathLike, trusted: Sequence[str] = ()) -> BaselineModel:
    """Load a baseline of either kind saved by its ``save``, without unpickling arbitrary code.

    Args:
        directory: The saved folder.
        trusted: Extra type names to trust beyond :data:`TRUSTED_TYPES` (only for files you made yourself,
            e.g. with a custom ``param_grid`` that uses another MLP solver). ``True`` is refused.

    Returns:
        The :class:`BaselineModel` (a :class:`~ser_hf.baseline.neural_model.NeuralBaselineModel` for a
        ``cnn``/``lstm`` folder).

    Raises:
        ModelError: not a saved baseline, another format or features version, ``model.skops`` not a skops file
            (e.g. a pickle), untrusted types in the file, weights that do not fit the network the config names.

    Example:
        ```python
        >>> model = load_baseline("outputs/urdu-svm")  # doctest: +SKIP
        >>> model.labels  # doctest: +SKIP
        ['neutral', 'happy', 'sad', 'angry']

        ```
    """
    folder = Path(path_text(directory, "the baseline folder", error=ModelError, refuse_empty=True)).expanduser()
    config, feature_config, preprocessor = read_saved_settings(folder)
    if names_neural(config):
        from ser_hf.baseline.neural_model import load_neural_baseline

        return load_neural_baseline(folder, config, feature_config, preprocessor)
    return load_classic_baseline(folder, config, feature_config, preprocessor, trusted)


def train_baseline(
    dataset: datasets.Dataset,
    classifier: str = "svm",
    *,
    features: np.ndarray | None = None,
    feature_config: FeatureConfig | None = None,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    inner_folds: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
    num_workers: int | None = None,
    progress: bool = True,
    neural_config: Any = None,
) -> BaselineModel:
    """Fit a baseline on every clip of ``dataset`` (hyperparameters by speaker-grouped inner CV).

    Estimate how well it generalises with :func:`~ser_hf.baseline.crossval.cross_validate_baseline` on the
    same settings: that scores this exact procedure on unseen speakers.

    Args:
        dataset: The training corpus (all of it, or a train part).
        classifier: ``svm``, ``logreg``, ``forest``, ``mlp``, or the neural ``cnn`` and ``lstm``
            (:func:`~ser_hf.baseline.neural_model.train_neural_baseline`: early stopping, no grid).
        features: Precomputed features, one row per clip (e.g. ``BaselineCVResult.features``).
        feature_config: Feature settings; ``None`` means ``FeatureConfig()``.
        preprocessor: Audio cleaning before feature extraction.
        cache_dir: Feature cache folder.
        param_grid: Grid to search; ``None`` uses the classifier's default grid.
        inner_folds: Speaker-grouped inner folds.
        seed: Seed of the inner folds and the classifier.
        n_jobs: Parallel fits in the grid search.
        num_workers: Feature extraction processes.
        progress: Show the feature extraction progress bar.
        neural_config: :class:`~ser_hf.baseline.neural.NeuralConfig` of ``cnn``/``lstm``.

    Returns:
        The fitted :class:`BaselineModel` (a :class:`~ser_hf.baseline.neural_model.NeuralBaselineModel` for
        ``cnn``/``lstm``).
    """
    if is_neural(classifier):
        from ser_hf.baseline.neural_model import train_neural_baseline

        return train_neural_baseline(dataset, classifier, features=features, feature_config=feature_config,
                                     preprocessor=preprocessor, cache_dir=cache_dir, neural_config=neural_config,
                                     seed=seed, num_workers=num_workers, progress=progress)
    config = feature_config or FeatureConfig()
    if features is None:
        features = dataset_features(dataset, config, preprocessor=preprocessor, cache_dir=cache_dir,
                                    num_workers=num_workers, progress=progress)
    speakers, labels = speakers_of(dataset), np.asarray(dataset["label"])
    fitted = fit_classifier(np.asarray(features), labels, speakers, classifier, param_grid=param_grid,
                            inner_folds=inner_folds, seed=seed, n_jobs=n_jobs)
    names = dataset.features["label"].names
    facts = {"corpus": corpus_name(dataset), "num_clips": len(dataset), "num_speakers": len(set(speakers)),
             "label_counts": dict(zip(names, np.bincount(labels, minlength=len(names)).tolist())),
             "inner_folds": inner_folds, "inner_cv_unweighted_accuracy": fitted.inner_score, "seed": seed,
             "grid": fitted.grid}
    return BaselineModel(fitted.pipeline, names, config, preprocessor, classifier, fitted.best_params, facts)
