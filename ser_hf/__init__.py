"""ser_hf: speech emotion recognition by transfer learning on pretrained speech transformers."""

from __future__ import annotations

__version__ = "0.1.0"
