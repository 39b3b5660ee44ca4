"""Runs made of the four argument groups: ``train`` (one speaker-independent split, a saved checkpoint
and its test report) and ``cross_validate`` (the corpus's speaker-grouped folds, mean ± std and the
pooled out-of-fold report). The dataset, parts and folds they run on come from :mod:`ser_hf.training.run_data`.

A run may name several corpora (``corpus: urdu,ravdess``): they are loaded as one dataset
(:mod:`ser_hf.corpora.combined`: speakers prefixed by corpus, a ``corpus`` column), split within each
corpus, and ``cross_validate`` adds each corpus's in-corpus pooled scores; :func:`leave_one_corpus_out`
trains on all corpora but one and tests on the one left out.

A *method* turns a backbone into a classifier with ``fit(train, validation)``, ``predict_proba(ds)``
and ``save(dir)``: :class:`~ser_hf.training.probe.ProbeMethod` for the frozen probe and
:class:`~ser_hf.training.finetune.FinetuneMethod` for full fine-tuning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf._io import write_output_file
from ser_hf._output_folders import (
    CHECKPOINT_OUTPUT_FILES,
    check_output_folder,
    check_own_folder,
    refuse_non_folder,
    remove_own_folder,
)
from ser_hf.cards import card_from_run, write_model_card
from ser_hf.checkpoint import RUN_RECORD, write_run_record
from ser_hf.corpora.combined import leave_one_corpus_out_folds
from ser_hf.errors import SERError
from ser_hf.evaluation import EvaluationReport, write_cv_summary
from ser_hf.evaluation.fold_state import (
    CVIdentity,
    check_cv_folder,
    check_fold_folder,
    data_digest,
    fingerprint_parts,
    model_digest,
)
from ser_hf.evaluation.folds import (
    FoldResult,
    check_own_reports,
    corpus_rows_markdown,
    cross_validate_folds,
    remove_earlier_reports,
    reports_by_group,
    resumable_cv,
)
from ser_hf.evaluation.report import (
    CV_KIND,
    CV_PLAN,
    CV_PLAN_KEYS,
    CV_SUMMARY_KEYS,
    LEAVE_ONE_CORPUS_OUT,
    REPORT_FILES,
    foreign_cv_markers,
)
from ser_hf.locks import folder_lock
from ser_hf.models.presets import pin_hub_snapshot, resolve_model_path
from ser_hf.models.released_checkpoint import MARKER_FILE as RELEASE_MARKER
from ser_hf.paths import display_path
from ser_hf.splits import (
    Fold,
    add_validation,
    select_fold,
    split_kind,
)
from ser_hf.training.cv_outputs import fold_outputs, pool_fold_outputs, write_speaker_adaptive
from ser_hf.training.probe import ProbeMethod
from ser_hf.training.resume import check_cv_checkpoint_resume
from ser_hf.training.run import SAMPLING_RATE, Run, TrainResult, evaluate_method, is_main_process
from ser_hf.training.run_data import RUN_SETTINGS, load_run_dataset, run_folds, train_split

logger = logging.getLogger(__name__)

#: The name :func:`~ser_hf.training.run.evaluate_method` had here (benchmarks import it).
_evaluate = evaluate_method

#: What a run writes into ``output_dir`` besides the checkpoint; any of them marks an earlier run's folder, which a
#: new run may reuse (``checkpoints`` holds an interrupted fine-tuning's, for ``resume_from_checkpoint``).
RUN_OUTPUTS = ((RUN_RECORD, ("data", "model", "training")), ("cv/cv_summary.json", CV_SUMMARY_KEYS),
               (f"cv/{CV_PLAN}", CV_PLAN_KEYS),
               ("hp_search.json", ("objective", "n_trials")),
               "hp_search/trials.journal",  # a search stopped before its first record: resumed, not refused
               (f"leave_one_corpus_out/{LEAVE_ONE_CORPUS_OUT}", ("reports", "settings")),
               (f"leave_one_corpus_out/{CV_PLAN}", CV_PLAN_KEYS),
               ("checkpoints/*/checkpoint-*/trainer_state.json", ("global_step",)))
#: Marker files of other commands' outputs: a run must not write its checkpoint among them (an ONNX export's
#: model.onnx would keep scoring the earlier model; a baseline's model.skops would sit beside a transformers one; a
#: released model prepared in the cache carries a run record too, which must not pass for an earlier run's).
FOREIGN_OUTPUTS = ("ser_hf_export.json", "baseline_config.json", "ser_hf_speaker.json", RELEASE_MARKER,
                   *foreign_cv_markers("run"))
#: Files of an earlier run that a new one may not write again, or writes only after its test scoring, so they would be
#: left to contradict it: an earlier probe's speaker adaptation beside a model trained without it, the earlier model
#: card (a run killed while scoring its test part must not show the old card beside the new weights), and ``eval/``,
#: an earlier test report. The run record stays: the new one replaces it right after the weights, and it marks the
#: folder as a run's for the next run.
_STALE_TRAIN_OUTPUTS = ("speaker_adaptation.safetensors", "speaker_adaptation.json", "README.md", "ser_hf_card.json")


def run_output_dir(run: Run) -> Path:
    """``output_dir``, checked before any work: new, empty or an earlier run's; never a file or a folder of the
    user's own files (a run writes ``config.json``, ``README.md``, ... there).

    Raises:
        ModelError: naming ``output_dir`` and what it holds.
    """
    model = Path(str(run.model.model_name_or_path)).expanduser()  # a local checkpoint the run starts from
    out = check_output_folder(run.training.output_dir, argument="output_dir", marker=RUN_OUTPUTS,
                              what="a ser_hf run's output", overwrite=True, foreign=FOREIGN_OUTPUTS,
                              sources=[model] if model.is_dir() else [],
                              writes={*CHECKPOINT_OUTPUT_FILES, *_STALE_TRAIN_OUTPUTS})
    _check_run_subfolders(out)
    return out


#: The folders a run writes in ``output_dir``: ser_hf replaces the first three whole (a link there would be written
#: through, or fail after the work), while the Trainer only adds to ``checkpoints`` (a link to a folder on a bigger
#: disk is a fair way to put them there).
_RUN_SUBFOLDERS = ("eval", "cv", "leave_one_corpus_out")
_TRAINER_SUBFOLDER = "checkpoints"


def _check_run_subfolders(out: Path) -> None:
    """Refuse, before any work, what stands where a run writes a folder and would stop it after the work: a file or
    a link there (a dangling one for ``checkpoints``)."""
    for name in (*_RUN_SUBFOLDERS, _TRAINER_SUBFOLDER):
        refuse_non_folder(out / name, place=f"output_dir {display_path(out)}", writer="a run",
                          what=f"its {name}/ folder", linked_folder_ok=name == _TRAINER_SUBFOLDER)


def _remove_stale_outputs(out: Path) -> None:
    """Remove what an earlier run in ``out`` wrote that this one may not write again (:data:`_STALE_TRAIN_OUTPUTS`)."""
    if not is_main_process():
        return
    remove_own_folder(out / "eval", REPORT_FILES)  # refused, deleting nothing, if it holds a file of the user's
    for name in _STALE_TRAIN_OUTPUTS:
        if (out / name).is_file() and not (out / name).is_symlink():
            (out / name).unlink()


def _fresh_subfolder(folder: Path) -> None:
    """Remove ``folder`` (a run's own ``cv``, ``leave_one_corpus_out``) with an earlier run's reports, which would
    otherwise sit beside the new ones (folds of another fold count, rows of another setting)."""
    if folder.is_dir() and is_main_process():
        logger.info("replacing the earlier run's %s", folder)
        # refused, deleting nothing, if it holds a file or a folder of the user's
        remove_earlier_reports(folder)


def pinned_to_snapshot(run: Run) -> Run:
    """``run`` itself, or for a Hub id the same run loading the local snapshot the id means now
    (:func:`~ser_hf.models.presets.pin_hub_snapshot`): what a CV's folds load, so that all of them, and its rerun,
    run one commit of the model, and the CV is identified by that commit's files."""
    snapshot = pin_hub_snapshot(run.model.model_name_or_path)
    if snapshot is None:
        return run
    logger.info("%s: every fold loads its snapshot %s", run.model.model_name_or_path, snapshot)
    return dataclasses.replace(run, model=dataclasses.replace(run.model, model_name_or_path=snapshot))


def cv_identity(run: Run, dataset: datasets.Dataset, folds: list[Fold], **more: str) -> CVIdentity:
    """What identifies this CV of ``run`` (see :mod:`ser_hf.evaluation.fold_state`): its result-changing settings,
    the code, the model it starts from, its folds and its clips (``more``: further parts)."""
    model = model_digest(resolve_model_path(run.model.model_name_or_path))
    return CVIdentity(fingerprint_parts(run.result_settings(dataset), folds, data_digest(dataset), model=model, **more))


def make_method(run: Run, labels: list[str], progress: bool = True, fold_of_cv: bool = False):
    """A fresh classifier for the run's mode (``probe``, ``finetune`` or ``partial``); ``fold_of_cv``: one fold's."""
    checkpoint = resolve_model_path(run.model.model_name_or_path)
    preprocessor = run.data.preprocessor(SAMPLING_RATE)
    # The probe's settings; fine-tuning's ``head_init: probe`` fits its starting head with them too.
    settings = run.probe.settings(class_weighted=run.training.class_weighted_loss, seed=run.training.seed)
    if run.model.mode == "probe":
        return ProbeMethod(checkpoint, labels, run.model, settings, preprocessor=preprocessor, progress=progress,
                           **run.probe.frozen_forward())
    if run.model.mode == "finetune":
        from ser_hf.training.finetune import FinetuneMethod

        method = FinetuneMethod(checkpoint, labels, run.model, run.training, preprocessor=preprocessor,
                                warm_start=settings)
        method.fold_of_cv = fold_of_cv
        return method
    if run.model.mode == "partial":
        from ser_hf.training.partial import PartialMethod

        return PartialMethod(checkpoint, labels, run.model, run.training, preprocessor=preprocessor, progress=progress,
                             warm_start=settings, **run.probe.frozen_forward())
    raise SERError(f"mode must be 'probe', 'finetune' or 'partial', got {run.model.mode!r}.")


def train(run: Run, progress: bool = True) -> TrainResult:
    """Train on a speaker-independent split, save the checkpoint and, if a test part exists, its report.

    The checkpoint goes to ``output_dir`` with its model card (``README.md``); the test report to
    ``output_dir/eval``. With several corpora each corpus is split by speaker on its own
    (:func:`~ser_hf.corpora.combined.combined_speaker_split`), so every part holds every corpus.
    """
    out = run_output_dir(run)
    if is_main_process():  # the test report replaces eval/ after training: a file of the user's there stops it now
        check_own_folder(out / "eval", REPORT_FILES)
    if run.data.streaming:
        from ser_hf.training.streaming import train_streaming  # only streamed runs pay for the Trainer's import

        return train_streaming(run, progress, before_save=lambda: _remove_stale_outputs(out))
    dataset = load_run_dataset(run.data, include_eval=True)
    split = train_split(run.data, dataset, test_size_given=run.was_given(run.data, "test_size"))
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress).fit(split["train"], split.get("validation"))
    # Only now, with a model to save: a run that fails before keeps the earlier run whole. The earlier card goes with
    # the rest, so a run killed while scoring its test part leaves a folder that says it is unfinished (no card, no
    # eval/), never new weights beside the old run's card.
    _remove_stale_outputs(out)
    checkpoint = method.save(out, replace=True)  # run_output_dir checked it
    if is_main_process():
        write_run_record(out, run.settings(dataset))  # at once: the weights' cleaning, before the slow test scoring
    report = evaluate_method(run, method, split["test"], "test")[0] if "test" in split else None
    if is_main_process():
        if report is not None:
            report.write(out / "eval")
        write_model_card(checkpoint, card_from_run(run, split, report, checkpoint, method=method))
    return TrainResult(checkpoint, report)


@dataclass
class CVResult:
    folds: list[EvaluationReport]
    aggregate: dict[str, Any]
    pooled: EvaluationReport
    #: Speaker-adaptive rows (one per enrollment setting) when the probe was fitted with speaker adaptation.
    speaker_adaptive: list[dict[str, Any]] | None = None
    #: Several corpora: corpus -> the pooled out-of-fold report of that corpus's clips (in-corpus UA).
    per_corpus: dict[str, EvaluationReport] | None = None
    #: A speaker-adaptive probe with training copies: its rows with every clip scored with its copies too.
    speaker_adaptive_test_time_copies: list[dict[str, Any]] | None = None
    #: A probe with training copies: the pooled report of every clip scored with its copies too (what
    #: ``ser-hf predict --test-time-copies`` gives; not what ``pipeline()`` gives, so never the headline).
    test_time_copies: EvaluationReport | None = None
    #: Folds kept from an interrupted CV of the same settings and clips (not fitted again).
    resumed_folds: list[str] = field(default_factory=list)


def _fold_with_validation(dataset: datasets.Dataset, fold: Fold, run: Run) -> Fold:
    if run.data.validation_size <= 0:
        return fold
    return add_validation(dataset, fold, run.data.validation_size, seed=run.data.fold_seed, settings=RUN_SETTINGS)


def _fit_fold(run: Run, dataset: datasets.Dataset, fold: Fold, labels: list[str], progress: bool,
              corpus: str | None = None, model: str | None = None):
    """Fit a fresh method on the fold's training part and score its test part: (method, test, report, probabilities);
    ``model`` names the model in the report (a CV of a Hub id loads a pinned snapshot but reports the id)."""
    parts = select_fold(dataset, _fold_with_validation(dataset, fold, run))
    method = make_method(run, labels, progress, fold_of_cv=True).fit(parts["train"], parts.get("validation"))
    report, probabilities = evaluate_method(run, method, parts["test"], fold.name, corpus=corpus, model=model)
    return method, parts["test"], report, probabilities


def cross_validate(run: Run, progress: bool = True,
                   on_fold: Callable[[EvaluationReport], None] | None = None) -> CVResult:
    """Evaluate the run on the corpus's speaker-grouped folds.

    Writes ``output_dir/cv/<fold>/`` (a report per fold), ``output_dir/cv/pooled/`` (all out-of-fold
    predictions together, with speaker-level bootstrap intervals) and ``cv_summary.json`` / ``.md``.
    ``on_fold`` is called with each fold's report as soon as it exists (long runs can save partial results).

    With several corpora the folds are taken within each corpus (fold *i* tests fold *i* of every corpus:
    :func:`~ser_hf.corpora.combined.combined_folds`), and each corpus's out-of-fold predictions are also
    scored on their own (``CVResult.per_corpus``, ``cv/per_corpus/<corpus>/`` and the summary).

    A probe with training copies is also scored with each test clip's copies (``CVResult.test_time_copies``,
    ``cv/test_time_copies/`` and a separate section of the summary: not the headline, which is what ``pipeline()``
    gives the saved checkpoints).
    """
    root = run_output_dir(run)
    with _one_cv_at_a_time(root):
        return _cross_validate(run, root / "cv", progress, on_fold)


def _one_cv_at_a_time(root: Path):
    """The lock a CV holds on its ``output_dir``: two at once would each take the other's folds for their own (with
    other settings, one's fold reports beside the other's summary). Only the main process of a launch locks."""
    if not is_main_process():
        return contextlib.nullcontext()
    return folder_lock(root, f"output_dir {root} is being cross-validated by another ser-hf cv (it holds a lock on "
                             f"the folder). Wait for it to end, then run this command again (it resumes), or pass "
                             f"another output_dir.")


def _prepare_cv_folder(run: Run, out: Path, identity: CVIdentity, summary: str = "cv_summary.json") -> bool:
    """Whether ``out`` holds this very CV, whose finished folds are kept; else the earlier one there is removed. Both
    the CV and the leave-one-corpus-out models start here, once the corpus has loaded (a typo in data_dir must not
    cost the earlier results)."""
    resume = resumable_cv(out, identity, "run", summary=summary)
    check_cv_checkpoint_resume(run.training.resume_from_checkpoint, out.parent / "checkpoints", resume)
    if resume:
        logger.info("%s holds this very CV (same settings, code and clips): its finished folds are kept", out)
    else:
        _fresh_subfolder(out)
    return resume


def _cross_validate(run: Run, out: Path, progress: bool,
                    on_fold: Callable[[EvaluationReport], None] | None) -> CVResult:
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    folds = run_folds(run, dataset)
    model = run.model.model_name_or_path
    pinned = pinned_to_snapshot(run)
    identity = cv_identity(pinned, dataset, folds)
    resume = _prepare_cv_folder(run, out, identity)

    def fit_fold(fold: Fold) -> FoldResult:
        method, test, report, probabilities = _fit_fold(pinned, dataset, fold, labels, progress, model=model)
        return FoldResult(report, probabilities, outputs=fold_outputs(method, test, labels, run.data.fold_seed))

    genders = dataset["gender"] if "gender" in dataset.column_names else [None] * len(dataset)
    result = cross_validate_folds(folds, fit_fold, references=np.asarray(dataset["label"]),
                                  speakers=dataset["speaker"], label_names=labels, model=model,
                                  corpus=run.data.corpus, genders=genders,
                                  out_dir=out if is_main_process() else None, on_fold=on_fold, kind="run",
                                  identity=identity, resume_dir=out if resume else None)
    reports, aggregate, pooled = result.reports, result.aggregate, result.pooled
    extra = pool_fold_outputs(dataset, folds, result.folds, labels, model=model, corpus=run.data.corpus)
    pooled.metadata["split_kind"] = split_kind(dataset)
    per_corpus = None
    if run.data.is_multi_corpus():
        rows = result.rows  # the pooled order
        per_corpus = reports_by_group(np.asarray(dataset["label"])[rows], result.probabilities,
                                      np.asarray(dataset["speaker"], dtype=object)[rows].tolist(),
                                      np.asarray(dataset["corpus"], dtype=object)[rows].tolist(), labels,
                                      model=model, split="pooled out-of-fold", genders=[genders[i] for i in rows])
    if is_main_process():
        write_cv_summary(out, aggregate, pooled, run.settings(dataset), per_corpus=per_corpus,
                         test_time_copies=extra.test_time_copies, kind="run", identity=identity)
        if extra.speaker_adaptive is not None:
            write_speaker_adaptive(out, extra.speaker_adaptive, extra.speaker_adaptive_test_time_copies)
    return CVResult(reports, aggregate, pooled, speaker_adaptive=extra.speaker_adaptive, per_corpus=per_corpus,
                    speaker_adaptive_test_time_copies=extra.speaker_adaptive_test_time_copies,
                    test_time_copies=extra.test_time_copies, resumed_folds=result.resumed)


def require_several_corpora(run: Run, what: str) -> None:
    """Raise :class:`SERError` naming ``what`` unless the run names several corpora."""
    if not run.data.is_multi_corpus():
        raise SERError(f"{what} needs several corpora, but corpus is {run.data.corpus!r}; name them comma-separated "
                       f"with one folder each, e.g. --corpus urdu,ravdess --data_dir data/urdu,data/ravdess.")


class CorpusReports(dict):
    """Held-out corpus -> report (a plain dict), with ``resumed``: the held-out corpora kept from an interrupted run."""

    def __init__(self, reports: dict[str, EvaluationReport], resumed: list[str]):
        super().__init__(reports)
        self.resumed = resumed


def check_leave_one_corpus_out_folder(run: Run) -> None:
    """Refuse now what :func:`leave_one_corpus_out` would refuse in ``output_dir/leave_one_corpus_out`` once it starts:
    for ``ser-hf cv --leave-one-corpus-out``, which runs the in-corpus CV (hours with a real model) first. A file or
    link where a held-out corpus's or the pooled reports go, a folder where a summary goes, a file or folder of the
    user's inside an earlier run's reports (refused even where that run would resume: it would be replaced otherwise).

    Raises:
        SERError: naming the place and the fix (nothing is changed).
    """
    require_several_corpora(run, "--leave-one-corpus-out")
    out = run_output_dir(run) / "leave_one_corpus_out"
    for corpus in run.data.corpora():
        check_fold_folder(out / corpus)
    check_cv_folder(out)
    if out.is_dir():
        check_own_reports(out)


def leave_one_corpus_out(run: Run, progress: bool = True) -> CorpusReports:
    """Cross-corpus scores of a multi-corpus run: train on every corpus but one, test on all of that one.

    One model per corpus of ``corpus`` (fitted as in ``cross_validate``, validation speakers taken from the
    training corpora); its test report is the held-out corpus's clips, intervals resampling whole speakers.
    Writes ``output_dir/leave_one_corpus_out/<corpus>/`` (a report per held-out corpus) and
    ``leave_one_corpus_out.json`` / ``.md`` there.

    Args:
        run: A run whose ``corpus`` names at least two corpora.
        progress: Show feature-extraction progress bars.

    Returns:
        Held-out corpus -> the report of the model trained on the others, in the run's corpus order (a dict whose
        ``resumed`` lists the held-out corpora kept from an interrupted run of the same settings and clips).

    Raises:
        SERError: when the run names a single corpus.

    Example:
        ```python
        >>> from ser_hf.training.recipes import parse_run
        >>> run = parse_run(None, corpus="urdu,ravdess", data_dir="data/urdu,data/ravdess")
        >>> reports = leave_one_corpus_out(run)  # doctest: +SKIP
        >>> {corpus: report.unweighted_accuracy for corpus, report in reports.items()}  # doctest: +SKIP

        ```
    """
    require_several_corpora(run, "leave_one_corpus_out")
    root = run_output_dir(run)
    with _one_cv_at_a_time(root):
        return _leave_one_corpus_out(run, root / "leave_one_corpus_out", progress)


def _leave_one_corpus_out(run: Run, out: Path, progress: bool) -> CorpusReports:
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    folds = leave_one_corpus_out_folds(dataset)  # one "fold" per held-out corpus: resumed like the CV's
    pinned = pinned_to_snapshot(run)
    identity = cv_identity(pinned, dataset, folds, protocol="leave one corpus out")
    resume = _prepare_cv_folder(run, out, identity, summary=LEAVE_ONE_CORPUS_OUT)

    def fit_fold(fold: Fold) -> FoldResult:
        logger.info("leave one corpus out: testing on %s", fold.name)
        _, _, report, probabilities = _fit_fold(pinned, dataset, fold, labels, progress, corpus=fold.name,
                                                model=run.model.model_name_or_path)
        return FoldResult(report, probabilities)

    result = cross_validate_folds(folds, fit_fold, references=np.asarray(dataset["label"]),
                                  speakers=dataset["speaker"], label_names=labels,
                                  model=run.model.model_name_or_path, corpus=None,
                                  out_dir=out if is_main_process() else None, kind="run", identity=identity,
                                  resume_dir=out if resume else None)
    reports = {fold.name: fold_result.report for fold, fold_result in zip(folds, result.folds)}
    if is_main_process():
        summary = {"reports": {corpus: report.to_dict() for corpus, report in reports.items()},
                   "settings": run.settings(), CV_KIND: "run", **identity.record()}
        write_output_file(out / LEAVE_ONE_CORPUS_OUT, json.dumps(summary, indent=2, default=str) + "\n")
        write_output_file(out / "leave_one_corpus_out.md", leave_one_corpus_out_markdown(reports))
        (out / CV_PLAN).unlink(missing_ok=True)  # the summary marks the folder from now on
    return CorpusReports(reports, result.resumed)


def leave_one_corpus_out_markdown(reports: dict[str, EvaluationReport]) -> str:
    """The leave-one-corpus-out rows as a Markdown section (one row per held-out corpus)."""
    return corpus_rows_markdown(
        reports, "Leave one corpus out",
        "Each row: a model trained on every other corpus, tested on all of this one (no clip, speaker or "
        "recording setup of the test corpus in training). Intervals resample whole speakers.")
