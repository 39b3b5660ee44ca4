"""Frame sequences for the neural baselines: log-mel spectrograms and MFCCs with deltas, one row per hop.

The CNN learns from a log-mel spectrogram (64 bands), the BiLSTM from MFCCs with deltas and delta-deltas
(20 + 20 + 20); both on 25 ms windows every 10 ms at 16 kHz. A sequence is described by a
:class:`~ser_hf.baseline.feature_config.FeatureConfig` whose ``groups`` are ``mel`` and/or ``mfcc``: the same
settings, validation, fingerprint and analysis code (:func:`~ser_hf.baseline.features.spectral_frames`)
as the classic features, so a saved model's settings are checked by the same loader. ``stats`` play no
part. Rows are frames and columns follow :func:`sequence_names` (``logmel_00`` .. or ``mfcc_00`` ..,
``delta_mfcc_00`` ..). :func:`ser_hf.baseline.extraction.extract_dataset_sequences` computes them for a
corpus in parallel and caches them beside the classic feature vectors.

Example:
    >>> import numpy as np
    >>> config = sequence_config("cnn")
    >>> extract_sequence(np.zeros(16000, dtype=np.float32), config).shape
    (101, 64)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.features import spectral_frames, track_names

__all__ = ["SEQUENCE_GROUPS", "check_sequence_config", "extract_sequence", "sequence_config", "sequence_names"]

#: The feature groups that have a frame sequence (the others only exist as statistics).
SEQUENCE_GROUPS = ("mfcc", "mel")

#: The input each neural baseline learns from by default.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"groups": ("mel",), "n_mels": 64},
    "lstm": {"groups": ("mfcc",), "n_mfcc": 20, "n_mels": 40, "mfcc_delta_order": 2},
}


def sequence_config(classifier: str = "cnn", **overrides: Any) -> FeatureConfig:
    """The default frame-sequence settings of a neural baseline.

    Args:
        classifier: ``cnn`` (64 log-mel bands) or ``lstm`` (20 MFCCs + deltas + delta-deltas from 40 bands).
        **overrides: Any :class:`FeatureConfig` field, e.g. ``n_mels=40`` or ``groups=("mel", "mfcc")``.

    Returns:
        A :class:`FeatureConfig` (25 ms window, 10 ms hop, 16 kHz) accepted by :func:`check_sequence_config`.

    Example:
        >>> sequence_config("lstm").groups, len(sequence_names(sequence_config("lstm")))
        (('mfcc',), 60)
    """
    if classifier not in _DEFAULTS:
        raise ValueError(f"sequence_config(classifier={classifier!r}): expected one of {sorted(_DEFAULTS)}.")
    config = FeatureConfig(**{"stats": ("mean",), **_DEFAULTS[classifier], **overrides})
    return check_sequence_config(config)


def check_sequence_config(config: FeatureConfig) -> FeatureConfig:
    """Return ``config`` if it describes a frame sequence (groups among ``mel``/``mfcc``); raise otherwise."""
    extra = sorted(set(config.groups) - set(SEQUENCE_GROUPS))
    if extra:
        raise ValueError(
            f"The neural baselines learn from frame sequences of the groups {list(SEQUENCE_GROUPS)}, but the "
            f"feature config asks for {list(config.groups)} ({extra} exist only as clip statistics). Use "
            f"ser_hf.baseline.sequences.sequence_config(...) or set groups=('mel',) / ('mfcc',)."
        )
    return config


def sequence_names(config: FeatureConfig) -> list[str]:
    """Column names of :func:`extract_sequence`'s frames, in order (``mfcc`` tracks first, then ``logmel``)."""
    check_sequence_config(config)
    return [name for group in config.groups for name in track_names(group, config)]


def extract_sequence(wave: np.ndarray, config: FeatureConfig, *, sampling_rate: int | None = None) -> np.ndarray:
    """The ``(n_frames, len(sequence_names(config)))`` float32 frame sequence of one clip.

    Args:
        wave: 1-D float waveform at ``config.sampling_rate``; clips shorter than ``config.min_samples()``
            are zero-padded at the end, as for the classic features.
        config: Sequence settings (:func:`sequence_config`).
        sampling_rate: If given, checked against ``config.sampling_rate``.

    Returns:
        Finite float32 frames (log-mel in dB, floored 80 dB below the clip's loudest bin; MFCCs from it).

    Raises:
        AudioError: not a non-empty 1-D array of finite floats, or at the wrong rate.
        ValueError: ``config`` asks for groups without a frame sequence.
    """
    check_sequence_config(config)
    tracks = spectral_frames(wave, config, sampling_rate=sampling_rate)
    frames = np.concatenate([tracks[group] for group in config.groups], axis=0).T
    return np.ascontiguousarray(frames, dtype=np.float32)
