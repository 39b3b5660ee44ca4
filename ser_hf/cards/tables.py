"""The tables and texts of a model card, formatted here in Python: the template only places them.

Each function takes card fields (:class:`~ser_hf.cards.data.SERModelCardData`) and returns Markdown, or ``""``
when there is nothing to show, so the template can leave the section out.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

import ser_hf
from ser_hf.evaluation.report import EvaluationReport, markdown_table, percent

__all__ = [
    "LANGUAGE_NAMES", "calibration_text", "corpora_table", "fmt", "hyperparameter_table", "interval",
    "label_counts_table", "language_names", "per_corpus_table", "text_table", "training_log_table", "versions",
]

#: Names of the corpora's languages (ISO 639-1), for the card's text.
LANGUAGE_NAMES = {"ur": "Urdu", "en": "English", "de": "German"}


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with every column left-aligned (for text rather than numbers)."""
    return markdown_table(header, rows).replace("---:", ":---")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "`None`" if value is None else f"`{value}`" if isinstance(value, (list, tuple, dict)) else str(value)
    return text.replace("|", "\\|")  # a bare pipe would split the Markdown table cell


def interval(scores: Mapping[str, Any], metric: str) -> str:
    """The metric's interval as ``"52.1-70.3"``; ``n/a`` where one was asked for but too few speakers could be
    resampled (stored as None, :func:`~ser_hf.evaluation.bootstrap.interval_caveat`); empty where none was asked."""
    intervals = scores.get("confidence_intervals") or {}
    if metric in intervals and intervals[metric] is None:
        return "n/a"
    low, high = intervals.get(metric) or (None, None)
    return "" if low is None else f"{percent(low)}-{percent(high)}"


def language_names(language: str | list[str] | None) -> str | None:
    """``"en"`` -> ``"English"``; several codes are joined with commas; None without a language."""
    codes = [] if language is None else [language] if isinstance(language, str) else list(language)
    return ", ".join(LANGUAGE_NAMES.get(code, code) for code in codes) or None


def label_counts_table(label_counts: Mapping[str, Mapping[str, int]], speakers: Mapping[str, list[str]]) -> str:
    """Clips per emotion (rows) in each part (columns), with the clips and speakers of every part."""
    if not label_counts:
        return ""
    parts = list(label_counts)
    labels = list(next(iter(label_counts.values())))
    rows = [[label, *(label_counts[p][label] for p in parts)] for label in labels]
    rows.append(["**clips**", *(sum(label_counts[p].values()) for p in parts)])
    rows.append(["**speakers**", *(len(speakers.get(p, [])) for p in parts)])
    return markdown_table(["Emotion", *parts], rows)


def hyperparameter_table(hyperparameters: Sequence[Mapping[str, Any]]) -> str:
    """The settings that differ from the defaults (:func:`~ser_hf.cards.facts.non_default_hyperparameters`)."""
    rows = [[f"`{r['name']}`", r["group"], fmt(r["value"]), fmt(r["default"])] for r in hyperparameters]
    return text_table(["Argument", "Group", "Value", "Default"], rows) if rows else ""


def training_log_table(training_log: Sequence[Mapping[str, Any]]) -> str:
    """Validation metrics per epoch, one column per recorded key."""
    if not training_log:
        return ""
    header = list(training_log[0])
    rows = [[fmt(row.get(key)) for key in header] for row in training_log]
    return markdown_table(header, rows)


def corpora_table(corpora: Sequence[Mapping[str, Any]]) -> str:
    """The training corpora (:func:`~ser_hf.cards.facts.corpus_facts`): title with its link, what, licence."""
    rows = [[f"[{c['title']}]({c['url']})" if c["url"] else c["title"], c["description"], c["licence"] or "see source"]
            for c in corpora]
    return text_table(["Corpus", "What", "Licence"], rows) if rows else ""


def per_corpus_table(per_corpus_scores: Mapping[str, Mapping[str, Any]]) -> str:
    """UA (with its interval), WA, macro-F1 and clips of each corpus of a multi-corpus model."""
    rows = [[name, percent(scores.get("unweighted_accuracy")), interval(scores, "unweighted_accuracy"),
             percent(scores.get("weighted_accuracy")), percent(scores.get("macro_f1")), scores.get("num_samples", "")]
            for name, scores in per_corpus_scores.items()]
    return markdown_table(["Corpus", "UA", "UA 95% CI", "WA", "Macro-F1", "Clips"], rows) if rows else ""


def calibration_text(calibration: Mapping[str, Any] | None, report: EvaluationReport | None) -> str:
    """What temperature scaling did: from the checkpoint's record (``calibration``) or the test report's."""
    scaling = report.temperature_scaling if report else None
    record = calibration or scaling
    if not record:
        return ""
    if record.get("skipped"):
        return f"The scores are not temperature-scaled: {record['skipped']} ({record.get('fitted_on')})."
    where = f", fitted on {record['fitted_on']}" if record.get("fitted_on") else ""
    text = (f"The scores are temperature-scaled: the logits are divided by T = {record['temperature']:.3g}{where}, "
            "folded into the classifier's weights, so `pipeline()` returns calibrated scores with no extra code "
            "(the predicted class, and every accuracy, is the same as without it).")
    if scaling:
        text += (f" Expected calibration error on the test speakers: {percent(scaling['expected_calibration_error_before'])}% "
                 f"before, {percent(scaling['expected_calibration_error_after'])}% after.")
    elif record.get("expected_calibration_error_before") is not None:
        text += (f" Expected calibration error on those clips: {percent(record['expected_calibration_error_before'])}% "
                 f"before, {percent(record['expected_calibration_error_after'])}% after.")
    return text


def versions(recorded: Mapping[str, str] | None = None) -> str:
    """The versions of ser_hf and the libraries it ran on, as a Markdown list: those ``recorded`` when the model
    was trained (a released model's record), else those of this process."""
    if recorded:
        return "\n".join(f"- {name} {version}" for name, version in recorded.items())
    import datasets
    import huggingface_hub
    import torch
    import transformers

    pairs = {"ser_hf": ser_hf.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
             "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__,
             "python": platform.python_version()}
    return "\n".join(f"- {name} {version}" for name, version in pairs.items())
