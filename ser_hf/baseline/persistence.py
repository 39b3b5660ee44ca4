"""Deprecated alias of :mod:`ser_hf.baseline.model`, kept for one release.

Import from ``ser_hf.baseline.model`` instead; this module only re-exports the public names it used to define.
"""

from __future__ import annotations

from ser_hf.baseline.model import (
    CONFIG_NAME,
    MAX_INFLATION,
    MODEL_NAME,
    SETTING_LIMITS,
    TRUSTED_TYPES,
    AudioInput,
    BaselineModel,
    load_baseline,
    train_baseline,
)

__all__ = [
    "CONFIG_NAME", "MAX_INFLATION", "MODEL_NAME", "SETTING_LIMITS", "TRUSTED_TYPES", "AudioInput", "BaselineModel",
    "load_baseline", "train_baseline",
]
