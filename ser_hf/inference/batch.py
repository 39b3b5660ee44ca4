"""Deprecated alias of :mod:`ser_hf.inference.predict`, kept for one release.

Import from ``ser_hf.inference.predict`` instead; this module only re-exports the public names it used to define.
"""

from __future__ import annotations

from ser_hf.inference.predict import (
    FIXED_LENGTH_MODEL_TYPES,
    AudioInput,
    batch_padding_is_exact,
    load_classifier,
    model_labels,
    predict_proba,
)

__all__ = [
    "FIXED_LENGTH_MODEL_TYPES", "AudioInput", "batch_padding_is_exact", "load_classifier", "model_labels",
    "predict_proba",
]
