"""Deprecated alias of :mod:`ser_hf.models.pooling`, kept for one release.

Import from ``ser_hf.models.pooling`` instead; this module only re-exports the public names it used to define.
"""

from __future__ import annotations

from ser_hf.models.pooling import (
    DTYPES,
    backbone_fingerprint,
    default_cache_dir,
    pool_batch,
    pool_waves,
    pooled_hidden_states,
    resolve_device,
)

__all__ = [
    "DTYPES", "backbone_fingerprint", "default_cache_dir", "pool_batch", "pool_waves", "pooled_hidden_states",
    "resolve_device",
]
