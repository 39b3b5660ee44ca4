"""The baselines: hand-crafted acoustic features for scikit-learn classifiers, and small networks from scratch.

The classic baseline summarises librosa features per clip for an SVM, logistic regression, forest or MLP
(:mod:`~ser_hf.baseline.classifiers`); the neural baselines, a CNN on log-mel spectrograms and a BiLSTM
on MFCC sequences (:mod:`~ser_hf.baseline.neural`, imported on demand since it needs torch), learn from
frame sequences (:mod:`~ser_hf.baseline.sequences`). Both run through the same cross-validation, reports,
cards and ``load_baseline``.

Example:
    >>> from ser_hf.baseline import FeatureConfig, extract_dataset_features
    >>> matrix = extract_dataset_features(paths, FeatureConfig(), cache_dir="feature_cache")  # doctest: +SKIP
"""

from __future__ import annotations

from ser_hf.baseline.classifiers import CLASSIFIERS, NEURAL_CLASSIFIERS, fit_classifier, make_pipeline
from ser_hf.baseline.crossval import BaselineCVResult, cross_validate_baseline
from ser_hf.baseline.extraction import (
    FeatureMatrix,
    FeatureSequences,
    extract_dataset_features,
    extract_dataset_sequences,
)
from ser_hf.baseline.feature_config import FEATURE_GROUPS, FeatureConfig
from ser_hf.baseline.features import extract_features, feature_names, frame_stats
from ser_hf.baseline.model import BaselineModel, load_baseline, train_baseline
from ser_hf.baseline.sequences import extract_sequence, sequence_config, sequence_names

__all__ = [
    "CLASSIFIERS",
    "NEURAL_CLASSIFIERS",
    "BaselineCVResult",
    "BaselineModel",
    "cross_validate_baseline",
    "fit_classifier",
    "load_baseline",
    "make_pipeline",
    "train_baseline",
    "FEATURE_GROUPS",
    "FeatureConfig",
    "FeatureMatrix",
    "FeatureSequences",
    "extract_dataset_features",
    "extract_dataset_sequences",
    "extract_sequence",
    "sequence_config",
    "sequence_names",
    "extract_features",
    "feature_names",
    "frame_stats",
]
