"""What a baseline learns from, for a whole corpus: the classic feature matrix or the frame sequences, one per clip,
extracted through the feature cache, and the check that the clips hold sound (:func:`check_clips_hold_sound`).

Apart from the cross-validation (:mod:`ser_hf.baseline.crossval`) because training a baseline model
(:mod:`ser_hf.baseline.model`, :mod:`ser_hf.baseline.neural_model`) extracts and checks a corpus the same way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import datasets
import numpy as np

from ser_hf.audio import AudioPreprocessor
from ser_hf.audio.clean import holds_no_sound
from ser_hf.baseline.classifiers import is_neural
from ser_hf.baseline.extraction import (
    LEVEL_NAMES,
    extract_all,
    extract_dataset_features,
    extract_dataset_sequences,
    level_row,
    level_settings,
)
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.sequences import sequence_config
from ser_hf.errors import SERError

__all__ = [
    "check_clips_hold_sound", "clip_levels", "dataset_features", "dataset_sequences", "default_feature_config",
    "soundless_clips",
]


def dataset_features(
    dataset: datasets.Dataset,
    feature_config: FeatureConfig | None = None,
    *,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """The classic feature matrix of a corpus, one row per dataset row, from the cached parallel extractor.

    Args:
        dataset: A corpus whose ``audio`` column holds file paths.
        feature_config: Feature settings; ``None`` means ``FeatureConfig()``.
        preprocessor: Audio cleaning before extraction (part of the cache key).
        cache_dir: Feature cache folder; ``None`` disables caching.
        num_workers: Extraction processes; ``None`` uses every core.
        progress: Show a progress bar.

    Returns:
        A ``(len(dataset), d)`` float32 array.

    Raises:
        SERError: every clip gives the same features (e.g. all digital silence): there is nothing to learn.

    Warns:
        UserWarning: naming how many clips (and the first few) hold no sound (:func:`soundless_clips`).
    """
    config = feature_config or FeatureConfig()
    matrix = extract_dataset_features(
        dataset["audio"], config, preprocessor=preprocessor, cache_dir=cache_dir,
        num_workers=num_workers, strict=True, progress=progress, cache_levels=True,
    )
    levels = clip_levels(dataset["audio"], config.sampling_rate, preprocessor=preprocessor, cache_dir=cache_dir,
                         num_workers=num_workers, progress=progress, known=matrix.levels)
    check_clips_hold_sound(matrix.features, dataset, levels)
    return matrix.features


def dataset_sequences(
    dataset: datasets.Dataset,
    feature_config: FeatureConfig,
    *,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """The frame sequences of a corpus (neural baselines), one ``(frames, dims)`` array per dataset row, cached;
    checked as :func:`dataset_features` checks its rows."""
    sequences = extract_dataset_sequences(
        dataset["audio"], feature_config, preprocessor=preprocessor, cache_dir=cache_dir, num_workers=num_workers,
        strict=True, progress=progress, cache_levels=True,
    )
    levels = clip_levels(dataset["audio"], feature_config.sampling_rate, preprocessor=preprocessor,
                         cache_dir=cache_dir, num_workers=num_workers, progress=progress, known=sequences.levels)
    check_clips_hold_sound(sequences.sequences, dataset, levels)
    return sequences.sequences


def clip_levels(
    paths: Sequence[str], sampling_rate: int, *, preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None, num_workers: int | None = None, progress: bool = True,
    known: Sequence[float | None] | None = None,
) -> np.ndarray:
    """The RMS level about the mean (dBFS) of the part of each file the preprocessor keeps: what
    :func:`soundless_clips` judges, as prediction judges a clip (:meth:`BaselineModel.prepared_waves
    <ser_hf.baseline.classic_model.BaselineModel.prepared_waves>`).

    Features cannot tell it (noise 100 dB down gives features unlike silence's; a voice over a DC offset gives a row
    without zero crossings), so the files are read for it: the feature extractor (:mod:`ser_hf.baseline.extraction`)
    measures it on what :meth:`AudioPreprocessor.kept <ser_hf.audio.AudioPreprocessor.kept>` gives (trimmed and
    cropped only, before denoising, normalising and padding) in the pass that decodes each file for its features, and
    caches it in ``<cache_dir>/levels-<key>/`` (the key names the rate and what ``kept`` does alone, so one cache serves
    every feature setting). ``known`` takes those levels (:attr:`FeatureMatrix.levels
    <ser_hf.baseline.extraction.FeatureMatrix.levels>`, one per path, ``None`` where unknown); only the paths without
    one are read here, by a level pass of the same extractor and cache (decode once, then a hash per file).
    """
    if known is None:
        return _measured_levels(paths, sampling_rate, preprocessor, cache_dir, num_workers, progress)
    if len(known) != len(paths):
        raise ValueError(f"clip_levels(known=...) holds {len(known)} levels for {len(paths)} paths; pass one level "
                         f"(or None) per path, e.g. FeatureMatrix.levels of a strict extraction of the same paths.")
    levels = np.asarray([np.nan if level is None else level for level in known], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(levels))
    if len(missing):
        levels[missing] = _measured_levels([paths[i] for i in missing], sampling_rate, preprocessor, cache_dir,
                                           num_workers, progress)
    return levels


def _measured_levels(paths: Sequence[str], sampling_rate: int, preprocessor: AudioPreprocessor | None,
                     cache_dir: str | os.PathLike | None, num_workers: int | None, progress: bool) -> np.ndarray:
    """The level pass of :func:`clip_levels`: the cached extractor, whose "features" are the level."""
    config, kept_only = level_settings(preprocessor, sampling_rate)
    rows = extract_all("clip_levels", paths, config, kept_only, LEVEL_NAMES, cache_dir=cache_dir,
                       num_workers=num_workers, strict=True, progress=progress, kind="levels", extract=level_row).arrays
    return np.asarray([row[0, 0] for row in rows], dtype=np.float64)


def soundless_clips(levels: np.ndarray | Sequence[float]) -> np.ndarray:
    """Which clips hold no sound, from their :func:`clip_levels`: a boolean per clip, by the criterion prediction
    uses (:func:`~ser_hf.audio.clean.holds_no_sound`: below
    :data:`~ser_hf.audio.clean.SILENCE_DBFS` about the mean, so a constant is silence, a voice over a DC offset is
    not, and noise 100 dB down is silence whatever features it gives)."""
    return np.asarray(holds_no_sound(np.asarray(levels, dtype=np.float64)), dtype=bool)


def _clip_names(dataset: datasets.Dataset, rows: np.ndarray, shown: int = 5) -> str:
    """The files of the first ``shown`` rows (decoding none), and how many more."""
    audio = dataset.select(rows[:shown].tolist())["audio"] if len(rows) else []
    names = [item.get("path") if isinstance(item, dict) else item for item in audio]
    return ", ".join(map(repr, names)) + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


def check_clips_hold_sound(features: np.ndarray | list[np.ndarray], dataset: datasets.Dataset,
                           levels: np.ndarray | None = None) -> None:
    """Refuse features that are all alike (nothing to learn); warn, naming them, about clips that hold no sound.

    A clip without sound has no emotion, yet its label teaches the classifier one for silence; a corpus of nothing
    else gave a model and a report that meant nothing, without a word. Sound is judged from the clips'
    :func:`clip_levels` (:func:`soundless_clips`); without them (features a caller passed, whose audio is not read)
    only features all alike are refused.

    Raises:
        SERError: every clip holds no sound, or every clip gives the same classic feature vector.

    Warns:
        UserWarning: some clips hold no sound (how many, and the first files).
    """
    soundless = np.flatnonzero(soundless_clips(levels)) if levels is not None else np.zeros(0, int)
    count = len(features)
    alike = not isinstance(features, list) and count > 1 and bool(np.all(np.asarray(features) == features[0]))
    if count and (len(soundless) == count or alike):
        what = f"all {count} clips {'hold no sound' if len(soundless) == count else 'give the same features'}"
        raise SERError(
            f"The corpus cannot train a baseline: {what} (digital silence, or one constant value; e.g. "
            f"{_clip_names(dataset, np.arange(count), 3)}), so there is nothing to tell the emotions apart by. Check "
            f"that the files hold the recordings (not placeholders), and their gain."
        )
    if len(soundless):
        warnings.warn(
            f"{len(soundless)} of {count} clips hold no sound (digital silence, or one constant value): "
            f"{_clip_names(dataset, soundless)}. They have no emotion, yet their labels teach the classifier one for "
            f"silence, and their scores mean nothing; remove them from the corpus.", UserWarning, stacklevel=3,
        )


def default_feature_config(classifier: str) -> FeatureConfig:
    """What a classifier learns from by default: the 532 classic features, or a neural baseline's sequences."""
    return sequence_config(classifier) if is_neural(classifier) else FeatureConfig()
