"""Deprecated alias of :mod:`ser_hf.evaluation.corpus_eval`, kept for one release.

Import from ``ser_hf.evaluation.corpus_eval`` instead; this module only re-exports the public names it used to define.
"""

from __future__ import annotations

from ser_hf.evaluation.corpus_eval import (
    evaluate_checkpoint,
    evaluate_model,
    format_notes,
    model_temperature,
    notes_markdown,
    select_split,
    write_evaluation,
)
from ser_hf.evaluation.label_mapping import LabelMapping, map_labels, parse_label_map

__all__ = [
    "LabelMapping", "evaluate_checkpoint", "evaluate_model", "format_notes", "map_labels", "model_temperature",
    "notes_markdown", "parse_label_map", "select_split", "write_evaluation",
]
