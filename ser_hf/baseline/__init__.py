"""The classic (non-neural) baseline: hand-crafted acoustic features for scikit-learn classifiers.

Example:
    >>> from ser_hf.baseline import FeatureConfig, extract_dataset_features
    >>> matrix = extract_dataset_features(paths, FeatureConfig(), cache_dir="feature_cache")  # doctest: +SKIP
"""

from __future__ import annotations

from ser_hf.baseline.classifiers import CLASSIFIERS, fit_classifier, make_pipeline
from ser_hf.baseline.crossval import BaselineCVResult, cross_validate_baseline
from ser_hf.baseline.extraction import FeatureMatrix, extract_dataset_features
from ser_hf.baseline.features import (
    FEATURE_GROUPS,
    FeatureConfig,
    extract_features,
    feature_names,
    frame_stats,
)
from ser_hf.baseline.persistence import BaselineModel, load_baseline, train_baseline

__all__ = [
    "CLASSIFIERS",
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
    "extract_dataset_features",
    "extract_features",
    "feature_names",
    "frame_stats",
]
