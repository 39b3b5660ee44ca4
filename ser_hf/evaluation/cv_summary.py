"""A cross-validation's summary: mean ± std over its per-fold reports and the pooled metrics (papers quote both).

Apart from the out-of-fold loop (:mod:`ser_hf.evaluation.folds`, which re-exports these names): computing
(:func:`aggregate_folds`, :func:`summarise_folds`), formatting, writing ``cv_summary.json``/``.md``
(:func:`write_cv_summary`) and reading back which report folders an earlier summary wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf._io import read_json, write_output_file
from ser_hf._output_folders import check_own_folder, remove_own_folder
from ser_hf.errors import EvaluationError, ModelError
from ser_hf.evaluation.fold_state import CVIdentity
from ser_hf.evaluation.metrics.core import SCALAR_METRICS, scores_from_confusion
from ser_hf.evaluation.report import (
    CV_KIND,
    CV_PLAN,
    METRIC_TITLES,
    REPORT_FILES,
    EvaluationReport,
    confusion_markdown,
    markdown_table,
    percent,
)
from ser_hf.paths import path_text

_PER_CLASS_KEYS = ("precision", "recall", "f1")


def _summary(values: Sequence[float | None], ddof: int) -> dict[str, Any]:
    # Undefined per-fold values (a class missing from a fold) are skipped, not counted as 0.
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    mean = float(defined.mean()) if defined.size else None
    std = float(defined.std(ddof=ddof)) if defined.size > ddof else None
    return {"mean": mean, "std": std, "values": list(values)}


def _common(values: Sequence[Any]) -> Any:
    return values[0] if len(set(values)) == 1 else None


def _metric(report: EvaluationReport, name: str) -> float | None:
    if name == "expected_calibration_error_before_scaling":
        return report.temperature_scaling["expected_calibration_error_before"]
    return getattr(report, name)


def aggregate_folds(reports: Sequence[EvaluationReport], ddof: int = 1) -> dict[str, Any]:
    """Mean ± std over folds of every scalar metric, plus the pooled (summed) confusion matrix.

    Args:
        reports: One :class:`EvaluationReport` per fold, all with the same ``labels``.
        ddof: Delta degrees of freedom of the std; 1 (default) is the sample std across folds, so a
            single fold has ``std = None``.

    Returns:
        A JSON-able dict: ``num_folds``, ``labels``, ``model``, ``corpus`` (`None` when folds differ),
        ``num_samples`` (total), ``folds`` (split names), ``metrics`` (name -> ``mean``, ``std``,
        ``values``; UA, WA, macro-F1, weighted-F1, ECE when every fold has it, and the ECE before
        temperature scaling when every fold's model had a temperature), ``per_class``
        (class -> precision/recall/f1 -> the same summary), ``confusion_matrix`` (summed) and
        ``pooled`` (UA, WA, macro-F1, weighted-F1 of the summed matrix).

    Raises:
        EvaluationError: No reports, or reports with different labels.

    Example:
        ```python
        >>> summary = aggregate_folds([report_fold1, report_fold2, report_fold3])  # doctest: +SKIP
        >>> summary["metrics"]["unweighted_accuracy"]["mean"]  # doctest: +SKIP
        >>> print(folds_to_markdown(summary))  # doctest: +SKIP

        ```
    """
    reports = list(reports)
    if not reports:
        raise EvaluationError("`reports` is empty: pass one EvaluationReport per fold.")
    labels = reports[0].labels
    for index, report in enumerate(reports):
        if report.labels != labels:
            raise EvaluationError(
                f"Fold {index} has labels {report.labels} but fold 0 has {labels}; every fold must be scored "
                "with the same `label_names` in the same order."
            )
    names = list(SCALAR_METRICS)
    if all(r.expected_calibration_error is not None for r in reports):
        names.append("expected_calibration_error")
    if all(r.temperature_scaling is not None for r in reports):
        names.append("expected_calibration_error_before_scaling")
    matrix = np.sum([np.asarray(r.confusion_matrix, dtype=np.int64) for r in reports], axis=0)
    pooled = scores_from_confusion(matrix)
    return {
        "num_folds": len(reports),
        "labels": list(labels),
        "model": _common([r.model for r in reports]),
        "corpus": _common([r.corpus for r in reports]),
        "num_samples": int(sum(r.num_samples for r in reports)),
        "folds": [r.split for r in reports],
        "metrics": {name: _summary([_metric(r, name) for r in reports], ddof) for name in names},
        "per_class": {
            label: {key: _summary([r.per_class[label][key] for r in reports], ddof) for key in _PER_CLASS_KEYS}
            for label in labels
        },
        "confusion_matrix": matrix.tolist(),
        "pooled": {name: float(pooled[name]) for name in SCALAR_METRICS},
    }


def _mean_std(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return "n/a"
    if summary["std"] is None:
        return percent(summary["mean"])
    return f"{percent(summary['mean'])} ± {percent(summary['std'])}"


def folds_to_markdown(aggregate: dict[str, Any], heading_level: int = 2) -> str:
    """Render :func:`aggregate_folds` output as Markdown: metrics table, per-class table, pooled matrix.

    Args:
        aggregate: The dict returned by :func:`aggregate_folds`.
        heading_level: Level of the top heading.

    Returns:
        The Markdown text (values in %).
    """
    h = "#" * heading_level
    title = " on ".join(x for x in (aggregate.get("model"), aggregate.get("corpus")) if x) or "model"
    metric_rows = [
        [
            METRIC_TITLES.get(name, name),
            _mean_std(summary),
            percent(aggregate["pooled"][name]) if name in aggregate["pooled"] else "",
            ", ".join(percent(v) for v in summary["values"]),
        ]
        for name, summary in aggregate["metrics"].items()
    ]
    class_rows = [
        [label, *(_mean_std(aggregate["per_class"][label][key]) for key in _PER_CLASS_KEYS)]
        for label in aggregate["labels"]
    ]
    parts = [
        f"{h} Cross-validation: {title} ({aggregate['num_folds']} folds)",
        markdown_table(["Metric", "Mean ± std (%)", "Pooled (%)", "Per fold (%)"], metric_rows),
        f"N = {aggregate['num_samples']} examples over all folds. Pooled = metrics of the summed confusion matrix.",
        f"{h}# Per class (mean ± std over folds)",
        markdown_table(["Class", "Precision", "Recall", "F1"], class_rows),
        f"{h}# Pooled confusion matrix (rows: reference, columns: predicted)",
        confusion_markdown(aggregate["confusion_matrix"], aggregate["labels"]),
    ]
    return "\n\n".join(parts) + "\n"


def summarise_folds(
    reports: Sequence[EvaluationReport],
    references: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    speakers: Sequence[str],
    label_names: Sequence[str],
    *,
    model: str | None,
    corpus: str | None,
    genders: Sequence[str | None] | None = None,
) -> tuple[dict[str, Any], EvaluationReport]:
    """Mean ± std over folds and the pooled out-of-fold report (bootstrap intervals resample speakers).

    Args:
        reports: One report per fold, in fold order.
        references: Per fold, the test class ids.
        probabilities: Per fold, the ``(n_test, C)`` probabilities (predictions are their argmax).
        speakers: The speaker of every out-of-fold row, in the concatenated order.
        label_names: Class names in id order.
        model: Model name for the pooled report.
        corpus: Corpus name for the pooled report.
        genders: The gender of every out-of-fold row (``None`` where unknown), for the per-gender scores.

    Returns:
        ``(aggregate_folds(reports), pooled report)``.
    """
    pooled = EvaluationReport.from_predictions(
        np.concatenate(references), probabilities=np.concatenate(probabilities), label_names=list(label_names),
        groups=list(speakers), genders=None if genders is None else list(genders), model=model, corpus=corpus,
        split="pooled out-of-fold",
    )
    return aggregate_folds(reports), pooled


def reports_by_group(
    references: np.ndarray,
    probabilities: np.ndarray,
    speakers: Sequence[str],
    groups: Sequence[str],
    label_names: Sequence[str],
    *,
    model: str | None,
    split: str,
    genders: Sequence[str | None] | None = None,
) -> dict[str, EvaluationReport]:
    """One report per group (e.g. per corpus) of the same predictions, intervals resampling speakers.

    Args:
        references: Class ids of every row.
        probabilities: ``(n, C)`` probabilities of every row.
        speakers: The speaker of every row.
        groups: The group of every row (its corpus); each report's ``corpus`` is the group's name.
        label_names: Class names in id order.
        model: Model name for the reports.
        split: Split name for the reports (e.g. ``"pooled out-of-fold"``).
        genders: The gender of every row (``None`` where unknown), for each report's per-gender scores.

    Returns:
        Group -> its :class:`EvaluationReport`, in order of first appearance.
    """
    groups, speakers = np.asarray(groups, dtype=object), np.asarray(speakers, dtype=object)
    gender_array = None if genders is None else np.asarray(genders, dtype=object)
    reports = {}
    for group in dict.fromkeys(groups):
        rows = np.flatnonzero(groups == group)
        reports[group] = EvaluationReport.from_predictions(
            references[rows], probabilities=probabilities[rows], label_names=list(label_names),
            groups=list(speakers[rows]), genders=None if gender_array is None else list(gender_array[rows]),
            model=model, corpus=group, split=split,
            metadata={"speakers": sorted(set(speakers[rows]))},
        )
    return reports


def corpus_rows_markdown(reports: Mapping[str, EvaluationReport], heading: str, note: str) -> str:
    """A Markdown section with one row per corpus: UA with its interval, WA, macro-F1 and clips (in %)."""
    rows = []
    for name, report in reports.items():
        interval = report.interval_text("unweighted_accuracy")
        speakers = report.metadata.get("speakers")
        rows.append([name, percent(report.unweighted_accuracy), interval, percent(report.weighted_accuracy),
                     percent(report.macro_f1), report.num_samples, len(speakers) if speakers else ""])
    table = markdown_table(["Corpus", "UA (%)", "UA 95% CI", "WA (%)", "Macro-F1 (%)", "Clips", "Speakers"], rows)
    return f"## {heading}\n\n{note}\n\n{table}\n"


#: How a cv summary names the scores of clips scored with their training copies, and what it says of them.
TEST_TIME_COPIES_TITLE = "With test-time copies (not the headline)"
TEST_TIME_COPIES_NOTE = ("Every test clip scored together with the copies the probe trained on (log-probabilities "
                         "averaged), as `ser-hf predict --test-time-copies` and "
                         "`EmotionRecognizer(test_time_copies=True)` score it; `pipeline()` scores the clip alone, as "
                         "in the headline above. Same folds and models.")


def write_cv_summary(
    out_dir: str | os.PathLike,
    aggregate: dict[str, Any],
    pooled: EvaluationReport,
    settings: Mapping[str, Any],
    per_corpus: Mapping[str, EvaluationReport] | None = None,
    test_time_copies: EvaluationReport | None = None,
    kind: str | None = None,
    identity: CVIdentity | None = None,
) -> None:
    """Write ``pooled/`` (the pooled report), ``cv_summary.json`` and ``cv_summary.md`` into ``out_dir``.

    Args:
        out_dir: The ``cv`` folder (per-fold reports go beside, written by the caller).
        aggregate: :func:`~ser_hf.evaluation.aggregate_folds` output.
        pooled: The pooled out-of-fold report.
        settings: JSON-able description of the run.
        per_corpus: For a multi-corpus run, the pooled out-of-fold report of each corpus's clips; written to
            ``per_corpus/<corpus>/``, to ``cv_summary.json`` (``per_corpus``) and as a table in ``cv_summary.md``.
        test_time_copies: The pooled report of the clips scored with their training copies; written to
            ``test_time_copies/``, ``cv_summary.json`` (``test_time_copies``) and its own section of ``cv_summary.md``.
        kind: What ran the CV (of :data:`~ser_hf.evaluation.report.CV_KINDS`), recorded so that another kind of
            output never takes the folder over.
        identity: The CV's :class:`~ser_hf.evaluation.fold_state.CVIdentity`, recorded so that the same CV run
            again into the folder reuses its folds (:func:`~ser_hf.evaluation.folds.resumable_cv`).
    """
    out = Path(path_text(out_dir, "out_dir", error=EvaluationError, refuse_empty=True))  # "" is the current folder
    pooled.write(out / "pooled")
    summary = {"folds": aggregate["folds"], "aggregate": aggregate, "pooled": pooled.to_dict(),
               "settings": dict(settings), **({CV_KIND: kind} if kind else {}),
               **(identity.record() if identity else {})}
    markdown = folds_to_markdown(aggregate) + "\n\n" + pooled.to_markdown() + "\n"
    if per_corpus:
        for name, report in per_corpus.items():
            report.write(out / "per_corpus" / name)
        summary["per_corpus"] = {name: report.to_dict() for name, report in per_corpus.items()}
        markdown += "\n" + corpus_rows_markdown(
            per_corpus, "In-corpus UA per corpus",
            "The pooled out-of-fold predictions of each corpus's clips (folds within each corpus; the model of a "
            "fold was trained on every corpus's training speakers). Intervals resample whole speakers.")
    if test_time_copies is not None:
        test_time_copies.write(out / "test_time_copies")
        summary["test_time_copies"] = test_time_copies.to_dict()
        markdown += (f"\n## {TEST_TIME_COPIES_TITLE}\n\n{TEST_TIME_COPIES_NOTE}\n\n"
                     + test_time_copies.to_markdown() + "\n")
    write_output_file(out / "cv_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_output_file(out / "cv_summary.md", markdown)
    (out / CV_PLAN).unlink(missing_ok=True)  # the summary marks the folder from now on


def summarised_report_folders(folder: Path) -> set[str]:
    """The report folders an earlier CV (``cv_summary.json``, or the plan of one interrupted before its summary) or
    leave-one-corpus-out summary in ``folder`` says it wrote there (``fold1``, ``pooled``, ``per_corpus/urdu``, ...):
    the only subfolders a new run may delete."""
    found: set[str] = set()
    for name, key in ((CV_PLAN, "folds"), ("cv_summary.json", "folds"), ("leave_one_corpus_out.json", "reports")):
        try:
            summary = read_json(folder / name, fix="")
        except (ModelError, OSError):
            continue
        listed = summary.get(key)
        found |= {str(item) for item in (listed if isinstance(listed, (list, dict)) else [])}
        if name == "cv_summary.json":
            found.add("pooled")
            if "test_time_copies" in summary:
                found.add("test_time_copies")
            if isinstance(summary.get("per_corpus"), dict):
                found |= {"per_corpus", *(f"per_corpus/{corpus}" for corpus in summary["per_corpus"])}
    return {item for item in found if item and ".." not in Path(item).parts and not Path(item).is_absolute()}


def check_own_reports(folder: Path) -> None:
    """Refuse (deleting nothing) an earlier CV's report ``folder`` that holds a file or folder ser_hf did not write: what
    :func:`remove_earlier_reports` checks, to be asked before the run is sure to start."""
    check_own_folder(folder, REPORT_FILES, summarised_report_folders(folder))


def remove_earlier_reports(folder: Path) -> None:
    """Delete an earlier CV's (or leave-one-corpus-out's) report ``folder`` before a new one is written there; refused,
    deleting nothing, if it holds a file or folder ser_hf did not write (see :func:`ser_hf._output_folders.check_own_folder`)."""
    remove_own_folder(folder, REPORT_FILES, summarised_report_folders(folder))
