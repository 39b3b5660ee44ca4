"""Cross-validation: the one out-of-fold loop, and resuming it.

:func:`cross_validate_folds` is the loop every cross-validation in ser_hf runs (the transformer path's
``ser-hf cv``, the classic baselines, the benchmarks' reference models): fit on each fold's training part,
score its test part, write and report each fold as it ends, then summarise. What is fitted is the caller's
(a closure from a :class:`~ser_hf.splits.Fold` to a :class:`FoldResult`). :func:`resumable_cv` says whether a
folder holds an interrupted run of the same CV, whose finished folds the loop keeps.

The summary of the per-fold :class:`EvaluationReport` objects (mean ± std over folds and the pooled metrics of the
summed confusion matrix, both reported because papers use both) and its files are in
:mod:`ser_hf.evaluation.cv_summary`; its names are re-exported here, so their old import paths keep working.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_hf._io import read_json, write_output_file
from ser_hf._output_folders import check_writable
from ser_hf.errors import ModelError
from ser_hf.evaluation.bootstrap import few_speaker_folds_warning, fold_interval_warnings_muted
from ser_hf.evaluation.cv_summary import TEST_TIME_COPIES_NOTE as TEST_TIME_COPIES_NOTE  # their old import paths
from ser_hf.evaluation.cv_summary import TEST_TIME_COPIES_TITLE as TEST_TIME_COPIES_TITLE
from ser_hf.evaluation.cv_summary import aggregate_folds as aggregate_folds
from ser_hf.evaluation.cv_summary import check_own_reports as check_own_reports
from ser_hf.evaluation.cv_summary import corpus_rows_markdown as corpus_rows_markdown
from ser_hf.evaluation.cv_summary import folds_to_markdown as folds_to_markdown
from ser_hf.evaluation.cv_summary import remove_earlier_reports as remove_earlier_reports
from ser_hf.evaluation.cv_summary import reports_by_group as reports_by_group
from ser_hf.evaluation.cv_summary import summarise_folds
from ser_hf.evaluation.cv_summary import summarised_report_folders as summarised_report_folders
from ser_hf.evaluation.cv_summary import write_cv_summary as write_cv_summary
from ser_hf.evaluation.fold_state import (
    CVIdentity,
    changed_parts,
    check_cv_folder,
    check_fold_folder,
    load_fold_state,
    save_fold_state,
)
from ser_hf.evaluation.report import CV_KIND, CV_PLAN, EvaluationReport
from ser_hf.paths import display_path

if TYPE_CHECKING:
    from ser_hf.splits import Fold

logger = logging.getLogger(__name__)


@dataclass
class FoldResult:
    """What fitting and scoring one fold gives :func:`cross_validate_folds`."""

    report: EvaluationReport  # the fold's test report
    probabilities: np.ndarray  # (n_test, C), in the fold's test order
    fitted: Any = None  # whatever the caller wants back per fold (a model, a chosen setting); not kept on resume
    #: What the caller pools after the loop besides the probabilities (nested dicts and lists of numpy arrays,
    #: strings and numbers): saved with a finished fold, so a resumed CV gets it back as it was.
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutOfFold:
    """Every fold's result, the mean ± std over folds and the pooled out-of-fold report."""

    folds: list[FoldResult]
    aggregate: dict[str, Any]
    pooled: EvaluationReport
    rows: np.ndarray  # the dataset rows of the pooled predictions, in pooled order
    probabilities: np.ndarray  # (n, C) pooled probabilities
    resumed: list[str] = field(default_factory=list)  # folds kept from the interrupted CV, not fitted again

    @property
    def reports(self) -> list[EvaluationReport]:
        return [fold.report for fold in self.folds]


def cross_validate_folds(
    folds: Sequence[Fold],
    fit_fold: Callable[[Fold], FoldResult],
    *,
    references: np.ndarray,
    speakers: Sequence[str],
    label_names: Sequence[str],
    model: str | None,
    corpus: str | None,
    genders: Sequence[str | None] | None = None,
    out_dir: str | os.PathLike | None = None,
    on_fold: Callable[[EvaluationReport], None] | None = None,
    kind: str | None = None,
    identity: CVIdentity | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> OutOfFold:
    """The out-of-fold loop: ``fit_fold`` each fold in turn, then pool every test prediction.

    Args:
        folds: Speaker-grouped folds over one dataset's rows (each test row in exactly one fold).
        fit_fold: Fits on a fold's training (and validation) rows, scores its test rows.
        references: Class id of every dataset row.
        speakers: Speaker of every dataset row (the pooled intervals resample whole speakers).
        label_names: Class names in id order.
        model: Model name for the pooled report.
        corpus: Corpus name for the pooled report.
        genders: Gender of every dataset row (``None`` where unknown), for per-gender scores.
        out_dir: If given, each fold's report is written to ``out_dir/<fold name>/`` as soon as it ends, after
            ``out_dir/cv_plan.json`` names every fold (so an interrupted CV's folder is known as ser_hf's; the
            summary replaces it).
        on_fold: Called with each fold's report as soon as it exists (long runs can save partial results).
        kind: What runs the CV (of :data:`~ser_hf.evaluation.report.CV_KINDS`), recorded in the plan.
        identity: The CV's :class:`~ser_hf.evaluation.fold_state.CVIdentity`: recorded in the plan, and with
            ``out_dir`` every finished fold also writes its state there (``<fold name>/fold_state.safetensors``).
        resume_dir: The folder of an earlier CV of this ``identity`` (see :func:`resumable_cv`): a fold whose
            state is there is kept, not fitted again (every process reads it; only ``out_dir`` writes).

    Returns:
        An :class:`OutOfFold`.
    """
    references = np.asarray(references)
    speakers = np.asarray(speakers, dtype=object)
    results, resumed = [], []
    if out_dir is not None:
        out = Path(out_dir)
        if resume_dir is not None:  # before any fold runs: the kept folders are written again
            for folder in (out, *(out / fold.name for fold in folds if (out / fold.name).is_dir())):
                check_writable(folder, display_path(folder), "the CV's reports")
        for fold in folds:
            check_fold_folder(out / fold.name)
        check_cv_folder(out)
        plan = {"folds": [fold.name for fold in folds], "complete": False, **({CV_KIND: kind} if kind else {}),
                **(identity.record() if identity else {})}
        out.mkdir(parents=True, exist_ok=True)
        write_output_file(out / CV_PLAN, json.dumps(plan, indent=2) + "\n")
    for number, fold in enumerate(folds, start=1):
        kept = None
        if resume_dir is not None and identity is not None:
            kept = load_fold_state(Path(resume_dir) / fold.name, identity.fingerprint, fold.test, split=fold.name,
                                   label_names=label_names, references=references[fold.test])
        if kept is not None:
            report, probabilities, outputs = kept
            report.model = model  # the model as this run names it (a path spelt another way keeps the fold)
            result = FoldResult(report, probabilities, outputs=outputs)
            logger.info("fold %d/%d: %s finished by an earlier run of this CV; kept", number, len(folds), fold.name)
            resumed.append(fold.name)
        else:
            logger.info("fold %d/%d: %s", number, len(folds), fold.name)
            with fold_interval_warnings_muted():  # said once below, beside the pooled report's speakers
                result = fit_fold(fold)
        if out_dir is not None:
            result.report.write(out / fold.name)
            if identity is not None and kept is None:
                save_fold_state(out / fold.name, identity.fingerprint, fold.test, result.report,
                                result.probabilities, result.outputs)
        if on_fold is not None:
            on_fold(result.report)
        results.append(result)
    rows = np.concatenate([np.asarray(fold.test, dtype=np.int64) for fold in folds])
    gender_rows = None if genders is None else [genders[i] for i in rows]
    aggregate, pooled = summarise_folds([r.report for r in results], [references[f.test] for f in folds],
                                        [r.probabilities for r in results], speakers[rows].tolist(), label_names,
                                        model=model, corpus=corpus, genders=gender_rows)
    _warn_few_speaker_folds(folds, [r.report for r in results], speakers, len(set(speakers[rows])))
    return OutOfFold(results, aggregate, pooled, rows, np.concatenate([r.probabilities for r in results]), resumed)


def _warn_few_speaker_folds(folds: Sequence[Fold], reports: Sequence[EvaluationReport], speakers: np.ndarray,
                            pooled_speakers: int) -> None:
    """Log once which folds' intervals are coarse or missing for lack of speakers (each report has a ``note``)."""
    flagged = [(fold, report) for fold, report in zip(folds, reports, strict=True) if report.bootstrap.get("note")]
    if flagged:
        level = flagged[0][1].bootstrap.get("confidence_level", 0.95)
        logger.warning(few_speaker_folds_warning([len(set(speakers[fold.test])) for fold, _ in flagged], len(folds),
                                                 pooled_speakers, level))


def resumed_note(folds: Sequence[str]) -> str:
    """The line a command prints after a CV that kept ``folds`` from an earlier run (empty when it kept none)."""
    if not folds:
        return ""
    return (f"resumed: {', '.join(folds)} kept from the earlier run of this CV (same settings, code and clips); "
            f"delete the folder to run every fold afresh")


def resumable_cv(folder: str | os.PathLike, identity: CVIdentity, kind: str | None,
                 summary: str = "cv_summary.json") -> bool:
    """Whether ``folder`` holds a CV of ``kind`` and this very ``identity``, interrupted (its plan is there) or
    finished (its ``summary`` records it): the CV whose folds :func:`cross_validate_folds` may keep.

    When it holds another CV of ``kind``, the log says which parts (settings, code, model, clips, folds) differ:
    its folds are about to be replaced, and a user who meant to resume it sees why not."""
    earlier = []
    for name in (CV_PLAN, summary):
        try:
            record = read_json(Path(folder) / name, fix="")
        except (ModelError, OSError):
            continue
        if record.get(CV_KIND) != kind:
            continue
        if record.get("fingerprint") == identity.fingerprint:
            return True
        earlier.append(changed_parts(record.get("fingerprint_parts"), identity.parts))
    if earlier:
        changed = earlier[0]
        shown = (f"changed: {', '.join(changed[:8])}" + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
                 if changed else "written by an earlier ser_hf version, which did not record what it depends on")
        logger.warning("%s holds another CV (%s): it is replaced, its finished folds run again", folder, shown)
    return False
