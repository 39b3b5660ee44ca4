"""`EvaluationReport`: everything a user quotes about one evaluation, in one JSON-able dataclass.

UA first, then WA, macro-F1, weighted-F1, each with a bootstrap 95% interval; per-class scores; the
confusion matrix; calibration when probabilities are given (and ECE before and after temperature
scaling when the model's temperature is given); with speaker ids, scores per speaker and per gender
(:mod:`ser_hf.evaluation.breakdown`). The report renders itself as JSON,
Markdown (for model cards and READMEs), a terminal table and PNG figures. Cross-validation folds are
combined with :func:`ser_hf.evaluation.folds.aggregate_folds`. The names of the files reports and CVs write, and the
keys that mark them as ser_hf's, are in :mod:`ser_hf.evaluation.report_files` (re-exported here).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ser_hf._io import write_output_file
from ser_hf.errors import EvaluationError
from ser_hf.evaluation.bootstrap import (
    CI_METRICS,
    bootstrap_confidence_intervals,
    interval_caveat,
    interval_warning_logged,
    resampling_units,
)
from ser_hf.evaluation.breakdown import breakdown_lines, breakdown_markdown, speaker_breakdown
from ser_hf.evaluation.calibration import (
    expected_calibration_error,
    reliability_bins,
    uncalibrated,
    validate_probabilities,
)
from ser_hf.evaluation.metrics.core import SCALAR_METRICS, as_label_ids, compute_scores, resolve_label_names
from ser_hf.evaluation.report_files import (
    CV_KIND,
    CV_KINDS,
    CV_OUTPUTS,
    CV_PLAN,
    CV_PLAN_KEYS,
    CV_SUMMARY_KEYS,
    FOLD_STATE,
    LEAVE_ONE_CORPUS_OUT,
    REPORT_FILES,
    REPORT_KEYS,
    foreign_cv_markers,
)
from ser_hf.evaluation.tables import markdown_table, percent
from ser_hf.paths import path_text

METRIC_TITLES = {
    "unweighted_accuracy": "UA (unweighted accuracy)",
    "weighted_accuracy": "WA (weighted accuracy)",
    "macro_f1": "Macro-F1",
    "weighted_f1": "Weighted-F1",
    "expected_calibration_error": "ECE",
    "expected_calibration_error_before_scaling": "ECE before temperature scaling",
}
"""Display names used in every table, so Markdown, terminal and cards read the same."""

logger = logging.getLogger(__name__)

_REQUIRED_KEYS = (*SCALAR_METRICS, "per_class", "confusion_matrix", "labels", "num_samples")


def confusion_markdown(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """The confusion matrix as a Markdown table, rows are references."""
    rows = [[f"**{name}**", *row] for name, row in zip(labels, matrix, strict=True)]
    return markdown_table(["reference \\ predicted", *labels], rows)


def _bootstrap_fields(
    references: np.ndarray,
    predictions: Any,
    num_labels: int,
    groups: Sequence[Any] | None,
    n_resamples: int,
    confidence_level: float,
    seed: int | None,
) -> tuple[dict[str, list[float] | None], dict[str, Any], str | None]:
    """The report's ``confidence_intervals`` and ``bootstrap`` fields, and a warning when the intervals rest on too
    few speakers (or clips) to mean much; empty when `n_resamples` is 0."""
    if not n_resamples:
        return {}, {}, None
    intervals = bootstrap_confidence_intervals(
        references,
        predictions,
        num_labels,
        groups=groups,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
    )
    settings = {
        "method": "percentile",
        "n_resamples": int(n_resamples),
        "confidence_level": float(confidence_level),
        "seed": None if seed is None else int(seed),
        "unit": "sample" if groups is None else "group",
    }
    caveat = interval_caveat(resampling_units(references.size, groups), groups is not None, confidence_level)
    if caveat is not None:  # kept with the settings, so a report read back from JSON renders the same caption
        settings["note"] = caveat[0]
    bounds = {name: None if pair is None else list(pair) for name, pair in intervals.items()}
    return bounds, settings, None if caveat is None else caveat[1]


def _with_warning(metadata: dict[str, Any] | None, warning: str | None) -> dict[str, Any]:
    """A copy of ``metadata`` with ``warning`` added to its ``warnings`` list (the list the reports print); logged too,
    but by a CV's fold only once for all folds (:func:`~ser_hf.evaluation.bootstrap.fold_interval_warnings_muted`)."""
    out = dict(metadata or {})
    if warning is not None:
        if interval_warning_logged():
            logger.warning(warning)
        out["warnings"] = [*(out.get("warnings") or []), warning]
    return out


def _temperature_scaling(probabilities: np.ndarray, references: np.ndarray, temperature: float, n_bins: int,
                         calibration: dict[str, Any]) -> dict[str, float]:
    """ECE of the same clips with the temperature taken back out, beside the calibrated ECE."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise EvaluationError(f"`temperature` must be a positive number (the T folded into the classifier), "
                              f"found {temperature!r}.")
    before = expected_calibration_error(uncalibrated(probabilities, temperature), references, n_bins)
    return {"temperature": float(temperature), "expected_calibration_error_before": before,
            "expected_calibration_error_after": calibration["expected_calibration_error"]}


@dataclass
class EvaluationReport:
    """The evaluation of one model on one test set.

    Build it with :meth:`from_predictions`; every field is plain data (JSON round-trips through
    :meth:`to_json` / :meth:`from_json`). Scores are fractions in [0, 1]; tables show percentages.

    Args:
        unweighted_accuracy: UA, mean recall over the classes that have references.
        weighted_accuracy: WA, plain accuracy.
        macro_f1: Mean F1 over the classes present in references or predictions.
        weighted_f1: F1 weighted by support.
        per_class: Class name -> ``precision``, ``recall``, ``f1`` (`None` when undefined), ``support``.
        confusion_matrix: Counts, rows are references, columns predictions, in ``labels`` order.
        labels: Class names in id order.
        num_samples: Number of test examples.
        model: Model name or path.
        corpus: Corpus name.
        split: Split or fold name (``"test"``, ``"fold-3"``...).
        confidence_intervals: Metric -> ``[low, high]`` bootstrap interval; `None` (shown as n/a) when the
            clips come from one speaker (or are one clip), so resampling cannot vary them.
        bootstrap: How the intervals were made: ``method``, ``n_resamples``, ``confidence_level``,
            ``seed``, ``unit`` (``"sample"`` or ``"group"``), and ``note`` when the intervals are missing or
            coarse for lack of speakers (the full text is then in ``metadata["warnings"]``).
        expected_calibration_error: Top-label ECE when probabilities were given, else `None`.
        calibration: Reliability bins (see :func:`~ser_hf.evaluation.calibration.reliability_bins`).
        metadata: Anything else worth keeping (checkpoint, seed, date...).
        by_speaker: Scores per speaker and per gender, the gender gap and the worst speakers
            (:func:`~ser_hf.evaluation.breakdown.speaker_breakdown`), when speaker ids were given.
        temperature_scaling: ``temperature`` folded into the model and the test ECE before and after it
            (``expected_calibration_error_before`` / ``_after``), when the temperature was given.
        robustness: The same clips scored under degraded audio (``ser-hf evaluate --perturb``): one row per
            condition, clean first (:func:`~ser_hf.evaluation.robustness.score_under_perturbations`).
    """

    unweighted_accuracy: float
    weighted_accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, dict[str, Any]]
    confusion_matrix: list[list[int]]
    labels: list[str]
    num_samples: int
    model: str | None = None
    corpus: str | None = None
    split: str | None = None
    confidence_intervals: dict[str, list[float] | None] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)
    expected_calibration_error: float | None = None
    calibration: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    by_speaker: dict[str, Any] | None = None
    temperature_scaling: dict[str, float] | None = None
    robustness: dict[str, Any] | None = None

    primary_metric: ClassVar[str] = "unweighted_accuracy"

    @classmethod
    def from_predictions(
        cls,
        references: Any,
        predictions: Any = None,
        *,
        label_names: Sequence[str],
        probabilities: Any = None,
        groups: Sequence[Any] | None = None,
        genders: Sequence[Any] | None = None,
        temperature: float | None = None,
        model: str | None = None,
        corpus: str | None = None,
        split: str | None = None,
        metadata: dict[str, Any] | None = None,
        n_resamples: int = 1000,
        confidence_level: float = 0.95,
        seed: int | None = 0,
        n_bins: int = 15,
    ) -> EvaluationReport:
        """Score predictions against references and build the report.

        Args:
            references: True class ids, length N.
            predictions: Predicted class ids, length N; `None` to take ``argmax`` of `probabilities`.
            label_names: Class names in id order (all of the model's classes).
            probabilities: Optional ``(N, C)`` softmax outputs; enables calibration. ECE scores the
                top class of each row, so it describes `predictions` only when they are that argmax.
            groups: Optional speaker id per example; the bootstrap then resamples whole speakers, which
                is more honest when a test set has few speakers, and the report gains scores per speaker
                (and per gender with `genders`). With one speaker the intervals are `None` and, below
                :data:`~ser_hf.evaluation.bootstrap.FEW_INTERVAL_UNITS` speakers, ``metadata["warnings"]`` says why.
            genders: Optional gender per example (``None`` where unknown; never guessed); needs `groups`.
            temperature: The temperature folded into the model's classifier (``config.ser_hf_calibration``);
                with `probabilities`, the report gives the ECE before scaling too.
            model: Model name or path.
            corpus: Corpus name.
            split: Split or fold name.
            metadata: Extra JSON-able facts to keep.
            n_resamples: Bootstrap resamples; 0 skips the confidence intervals.
            confidence_level: Coverage of the intervals.
            seed: Bootstrap seed (fixed by default so a report is reproducible).
            n_bins: Confidence bins for ECE and the reliability diagram.

        Returns:
            An :class:`EvaluationReport`.

        Raises:
            EvaluationError: Mismatched lengths, empty input, ids out of range, or probabilities of
                the wrong shape or not summing to 1.

        Example:
            ```python
            >>> report = EvaluationReport.from_predictions(
            ...     [0, 1, 2, 2], [0, 1, 1, 2], label_names=["neutral", "happy", "sad"], model="tiny", corpus="demo"
            ... )
            >>> print(report.format_table())
            tiny on demo: N=4, 3 classes
            UA 83.3 [50.0-100.0]  WA 75.0 [25.0-100.0]  macro-F1 77.8 [20.0-100.0]  weighted-F1 75.0
            class     prec   rec    f1     n | neutr happy   sad
            neutral  100.0 100.0 100.0     1 |     1     0     0
            happy     50.0 100.0  66.7     1 |     0     1     0
            sad      100.0  50.0  66.7     2 |     0     1     1
            >>> report.write("outputs/eval")  # doctest: +SKIP

            ```
        """
        if label_names is None:
            raise EvaluationError("`label_names` is required: pass the model's class names in id order.")
        names = resolve_label_names(label_names, None)
        refs = as_label_ids(references, "references")
        probs = None if probabilities is None else validate_probabilities(probabilities, refs.size, len(names))
        if predictions is None:
            if probs is None:
                raise EvaluationError("Pass `predictions` (class ids) or `probabilities` (N x C) to build a report.")
            predictions = probs.argmax(axis=1)
        scores = compute_scores(refs, predictions, label_names=names)
        calibration = None if probs is None else reliability_bins(probs, refs, n_bins=n_bins)
        intervals, bootstrap, interval_warning = _bootstrap_fields(
            refs, predictions, len(names), groups, n_resamples, confidence_level, seed
        )
        if genders is not None and groups is None:
            raise EvaluationError("`genders` needs `groups` (the speaker of every example): per-gender intervals "
                                  "resample whole speakers. Pass both, or neither.")
        if groups is not None:  # a clip without a speaker is refused with or without a bootstrap (n_resamples=0)
            resampling_units(refs.size, groups)
        by_speaker = None if groups is None else speaker_breakdown(
            refs, as_label_ids(predictions, "predictions"), names, groups, genders,
            n_resamples=n_resamples, confidence_level=confidence_level, seed=seed)
        return cls(
            **{key: scores[key] for key in _REQUIRED_KEYS},
            model=model,
            corpus=corpus,
            split=split,
            confidence_intervals=intervals,
            bootstrap=bootstrap,
            expected_calibration_error=None if calibration is None else calibration["expected_calibration_error"],
            calibration=calibration,
            metadata=_with_warning(metadata, interval_warning),
            by_speaker=by_speaker,
            temperature_scaling=None if probs is None or temperature is None
            else _temperature_scaling(probs, refs, temperature, n_bins, calibration),
        )

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON-able Python values."""
        return asdict(self)

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """Serialise to JSON (strict: no NaN), and write it to `path` when given.

        Args:
            path: Optional file to write.
            indent: JSON indentation.

        Returns:
            The JSON text.
        """
        # default=str: metadata often holds paths or dates; NaN is refused so the file stays valid JSON.
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)
        if path is not None:
            write_output_file(path_text(path, "path", error=EvaluationError, refuse_empty=True), text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        """Rebuild a report from :meth:`to_dict` output (unknown keys are refused, not dropped)."""
        missing = [key for key in _REQUIRED_KEYS if key not in data]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if missing or unknown:
            raise EvaluationError(
                f"Not an EvaluationReport dict: missing keys {missing}, unknown keys {unknown}. "
                "Pass the output of `EvaluationReport.to_dict()` or a `report.json` it wrote."
            )
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationReport:
        """Load a report written by :meth:`to_json` or :meth:`write` (``report.json``)."""
        path = Path(path_text(path, "path", error=EvaluationError, refuse_empty=True))
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    # ----------------------------------------------------------------- rendering

    @property
    def title(self) -> str:
        """``"<model> on <corpus> (<split>)"`` with whatever parts are known."""
        text = self.model or "model"
        if self.corpus:
            text += f" on {self.corpus}"
        return text + (f" ({self.split})" if self.split else "")

    def interval_text(self, name: str, separator: str = "-") -> str:
        """``name``'s interval in percent, ``"62.5-70.3"``; ``"n/a"`` when it could not be computed (the clips come
        from one speaker), ``""`` when none was asked for (``n_resamples=0``)."""
        if name not in self.confidence_intervals:
            return ""
        bounds = self.confidence_intervals[name]
        return "n/a" if bounds is None else f"{percent(bounds[0])}{separator}{percent(bounds[1])}"

    def _scalar_rows(self) -> list[list[str]]:
        rows = []
        for name in SCALAR_METRICS:
            ci = self.interval_text(name, ", ")
            rows.append([METRIC_TITLES[name], percent(getattr(self, name)), f"[{ci}]" if ci else ""])
        if self.expected_calibration_error is not None:
            n_bins = (self.calibration or {}).get("n_bins", "?")
            rows.append([f"ECE ({n_bins} bins)", percent(self.expected_calibration_error), ""])
        if self.temperature_scaling is not None:
            rows.append([f"ECE before temperature scaling (T = {self.temperature_scaling['temperature']:.3g})",
                         percent(self.temperature_scaling["expected_calibration_error_before"]), ""])
        return rows

    def _ci_level(self) -> int:
        return round(100 * self.bootstrap.get("confidence_level", 0.95))

    def _bootstrap_note(self) -> str:
        if not self.confidence_intervals:
            return "No confidence intervals were computed."
        b = self.bootstrap
        if all(bounds is None for bounds in self.confidence_intervals.values()):
            return f"No {self._ci_level()}% CIs: {b.get('note') or 'too few speakers to resample'}."
        unit = "speakers/groups" if b.get("unit") == "group" else "utterances"
        note = f" Note: {b['note']}." if b.get("note") else ""
        return (
            f"{self._ci_level()}% CIs: percentile bootstrap, {b.get('n_resamples')} resamples over {unit} "
            f"(seed {b.get('seed')}).{note}"
        )

    def to_markdown(self, heading_level: int = 2, by_speaker: bool = True) -> str:
        """Markdown: a UA/WA/F1 table with CIs, a per-class table, the confusion matrix and, with speakers,
        the scores per gender and speaker.

        Args:
            heading_level: Level of the top heading (2 gives ``##``), to nest inside a model card.
            by_speaker: Add the per-speaker and per-gender section (a model card places its own).

        Returns:
            The Markdown text.
        """
        h = "#" * heading_level
        per_class = [
            [name, percent(v["precision"]), percent(v["recall"]), percent(v["f1"]), v["support"]]
            for name, v in self.per_class.items()
        ]
        parts = [
            f"{h} Evaluation: {self.title}",
            markdown_table(["Metric", "Value (%)", f"{self._ci_level()}% CI (%)"], self._scalar_rows()),
            f"N = {self.num_samples} examples, {len(self.labels)} classes. {self._bootstrap_note()} "
            "UA averages recall over the classes present in the references.",
            f"{h}# Per class",
            markdown_table(["Class", "Precision", "Recall", "F1", "Support"], per_class),
            f"{h}# Confusion matrix (rows: reference, columns: predicted)",
            confusion_markdown(self.confusion_matrix, self.labels),
        ]
        if by_speaker and self.by_speaker is not None:
            parts.append(breakdown_markdown(self.by_speaker, self.labels, heading_level + 1))
        if self.robustness:
            from ser_hf.evaluation.robustness import robustness_markdown

            parts.append(robustness_markdown(self.robustness, heading_level + 1).rstrip("\n"))
        return "\n\n".join(parts) + "\n"

    def format_table(self) -> str:
        """A compact plain-text summary for terminals: headline metrics, then per-class and confusion rows."""
        head = []
        for name, short in zip(SCALAR_METRICS, ("UA", "WA", "macro-F1", "weighted-F1"), strict=True):
            ci = self.interval_text(name)
            ci = f" [{ci}]" if ci else ""
            head.append(f"{short} {percent(getattr(self, name))}{ci}")
        if self.expected_calibration_error is not None:
            before = (self.temperature_scaling or {}).get("expected_calibration_error_before")
            head.append(f"ECE {percent(self.expected_calibration_error)}"
                        + ("" if before is None else f" (before T-scaling {percent(before)})"))
        width = max(5, *(len(name) for name in self.labels))
        short_names = [name[:5].rjust(5) for name in self.labels]
        lines = [
            f"{self.title}: N={self.num_samples}, {len(self.labels)} classes",
            "  ".join(head),
            f"{'class'.ljust(width)}  {'prec':>5} {'rec':>5} {'f1':>5} {'n':>5} | " + " ".join(short_names),
        ]
        for name, row in zip(self.labels, self.confusion_matrix, strict=True):
            v = self.per_class[name]
            scores = " ".join(percent(v[k]).rjust(5) for k in ("precision", "recall", "f1"))
            lines.append(f"{name.ljust(width)}  {scores} {v['support']:>5} | " + " ".join(f"{c:>5}" for c in row))
        if self.by_speaker is not None:
            lines += breakdown_lines(self.by_speaker)
        if self.robustness:
            from ser_hf.evaluation.robustness import robustness_lines

            lines += robustness_lines(self.robustness)
        return "\n".join(lines)

    def write(self, out_dir: str | Path, dpi: int = 120) -> dict[str, Path]:
        """Write ``report.json``, ``report.md``, ``confusion_matrix.png``, ``per_class.png``, ``speakers.png``
        (UA per speaker, by gender) when speakers were given and ``reliability.png`` when probabilities were.

        Args:
            out_dir: Directory to create (parents too) and write into.
            dpi: Resolution of the figures.

        Returns:
            Kind (``json``, ``markdown``, ``confusion_matrix``, ``per_class``, ``speakers``, ``reliability``) -> path:
            the files written. An earlier report's ``speakers.png`` or ``reliability.png`` that this report has no
            data for is removed; every file replaces what was at its path (a link there is replaced, not followed).
        """
        # Imported here so that scoring (e.g. inside a Trainer) never loads matplotlib.
        from ser_hf.evaluation.plots import (
            plot_confusion_matrix,
            plot_per_class,
            plot_reliability,
            plot_speakers,
            save_figure,
        )

        out = Path(path_text(out_dir, "out_dir", error=EvaluationError, refuse_empty=True))  # bytes paths too
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "markdown": out / "report.md"}
        self.to_json(paths["json"])
        write_output_file(paths["markdown"], self.to_markdown())
        paths["confusion_matrix"] = save_figure(
            plot_confusion_matrix(self.confusion_matrix, self.labels, title=self.title),
            out / "confusion_matrix.png",
            dpi,
        )
        paths["per_class"] = save_figure(plot_per_class(self.per_class, title=self.title), out / "per_class.png", dpi)
        if self.by_speaker is not None and self.by_speaker["speakers"]:
            paths["speakers"] = save_figure(plot_speakers(self.by_speaker, title=self.title), out / "speakers.png", dpi)
        if self.calibration is not None:
            paths["reliability"] = save_figure(plot_reliability(self.calibration), out / "reliability.png", dpi)
        # An earlier report's figure this one has no data for (no speakers, no probabilities) would pass for its own.
        for name in ("speakers.png", "reliability.png"):
            if out / name not in paths.values() and ((out / name).is_file() or (out / name).is_symlink()):
                (out / name).unlink()
        return paths


__all__ = ["CI_METRICS", "CV_KIND", "CV_KINDS", "CV_OUTPUTS", "CV_PLAN", "CV_PLAN_KEYS", "CV_SUMMARY_KEYS", "FOLD_STATE",
           "LEAVE_ONE_CORPUS_OUT", "METRIC_TITLES", "REPORT_FILES", "REPORT_KEYS",
           "EvaluationReport",
           "confusion_markdown", "foreign_cv_markers", "markdown_table",
           "percent"]
