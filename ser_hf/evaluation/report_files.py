"""The files that reports, cross-validations and leave-one-corpus-out runs write, and the keys that mark them as
ser_hf's: what the output-folder checks read to tell a run's folder (``eval/``, ``cv/``...) from a user's.

Apart from :mod:`ser_hf.evaluation.report` because they are plain names: the folder checks and the fold state
need them without the report class, its scoring or its rendering.
"""

from __future__ import annotations

from ser_hf._output_folders import Other

__all__ = ["CV_KIND", "CV_KINDS", "CV_OUTPUTS", "CV_PLAN", "CV_PLAN_KEYS", "CV_SUMMARY_KEYS", "FOLD_STATE",
           "LEAVE_ONE_CORPUS_OUT", "REPORT_FILES", "REPORT_KEYS", "foreign_cv_markers"]

#: What each finished fold of a ``ser-hf cv`` writes beside its report until the summary exists, so an interrupted
#: CV resumes (:mod:`ser_hf.evaluation.fold_state`).
FOLD_STATE = "fold_state.safetensors"
#: Every file a report (:meth:`EvaluationReport.write`), a CV summary and a leave-one-corpus-out summary write: the
#: only files ser_hf deletes when a new run replaces an earlier run's report folders (``eval/``, ``cv/``, ...).
REPORT_FILES = frozenset({
    "report.json", "report.md", "confusion_matrix.png", "per_class.png", "speakers.png", "reliability.png",
    "cv_plan.json", "cv_summary.json", "cv_summary.md", "speaker_adaptive.json", "speaker_adaptive.md",
    "speaker_adaptive.png",
    "leave_one_corpus_out.json", "leave_one_corpus_out.md", FOLD_STATE})
#: The keys a report's ``report.json`` holds: a user's own ``report.json`` without them is not ser_hf's.
REPORT_KEYS = ("unweighted_accuracy", "confusion_matrix", "labels")
#: The keys of a CV's ``cv_summary.json`` (a run's or a baseline's).
CV_SUMMARY_KEYS = ("folds", "aggregate", "pooled")
#: What a CV writes before its first fold and removes once its summary exists: the folds it will write, so a CV
#: that was interrupted (no summary yet) still marks its folder as ser_hf's and a rerun may replace it.
CV_PLAN = "cv_plan.json"
#: The summary of a multi-corpus run's leave-one-corpus-out models (its ``leave_one_corpus_out/`` folder).
LEAVE_ONE_CORPUS_OUT = "leave_one_corpus_out.json"
CV_PLAN_KEYS = ("folds", "complete")
#: The files that make a folder a CV's (or a leave-one-corpus-out run's), with the keys ser_hf's hold: its subfolders
#: are that run's reports.
CV_OUTPUTS = (("cv_summary.json", CV_SUMMARY_KEYS), (CV_PLAN, CV_PLAN_KEYS),
              ("leave_one_corpus_out.json", ("reports", "settings")))
#: The key of ``cv_plan.json`` and ``cv_summary.json`` naming what wrote the CV (:data:`CV_KINDS`): a training run's CV
#: and a baseline's write the same files, and neither may take over a folder that holds the other's.
CV_KIND = "kind"
CV_KINDS = ("run", "baseline")


def foreign_cv_markers(kind: str) -> tuple:
    """Markers (for :func:`ser_hf._output_folders.check_output_folder`'s ``foreign``) of a ``cv/`` folder that another kind than
    ``kind`` (of :data:`CV_KINDS`) wrote: its summary or plan naming any other kind (or one this version does not
    know). Files written before the kind was recorded name none, and stay any command's."""
    return tuple((f"cv/{name}", {CV_KIND: Other(kind)}) for name in ("cv_summary.json", CV_PLAN))
