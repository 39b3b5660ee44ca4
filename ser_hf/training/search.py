"""Hyperparameter search for fine-tuning, with optuna through ``Trainer.hyperparameter_search``.

Trials train and are scored on the training and validation parts of the very split ``ser-hf train`` makes
(:func:`~ser_hf.training.run_data.train_split`, the same seed and sizes: a manifest's marked test rows, a
``datasets`` dataset's ``eval_split_name`` split, or held-out speakers within each corpus), so the test clips
never influence the chosen hyperparameters. The objective is the metric that picks the best
checkpoint (:func:`objective_name`): the validation UA, or the mean of the corpora's UAs for several corpora.

Finished trials are kept as they finish, in an optuna journal (``output_dir/hp_search/trials.journal``), under a study
named by the run's settings, the search space and the seed: a search stopped by Ctrl-C, a kill or a crash resumes
when run again, running only the trials still missing; a search with other settings starts a study of its own. A trial
that runs out of (GPU) memory is recorded as failed and the search goes on (a large batch size often does).

Needs optuna (``pip install 'ser-hf[search]'``).

Example:
    >>> from ser_hf.training.recipes import parse_run
    >>> from ser_hf.training.search import hyperparameter_search
    >>> run = parse_run("recipes/urdu/wav2vec2-base-finetune.yaml")  # doctest: +SKIP
    >>> best = hyperparameter_search(run, n_trials=20)  # doctest: +SKIP
    >>> best.hyperparameters  # doctest: +SKIP
    {'learning_rate': 4.1e-05, 'warmup_steps': 0.1, 'weight_decay': 0.01, 'per_device_train_batch_size': 8}
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_utils import BestRun

from ser_hf._io import link_problem, write_output_file
from ser_hf._output_folders import refuse_non_folder
from ser_hf.errors import SERError, SplitError
from ser_hf.models.presets import resolve_model_path
from ser_hf.paths import display_path
from ser_hf.training.experiment import run_output_dir
from ser_hf.training.run import SAMPLING_RATE, Run
from ser_hf.training.run_data import RUN_SETTINGS, load_run_dataset, train_split

__all__ = ["default_hp_space", "hyperparameter_search", "objective_name"]

#: Where a search's trials train (the Trainer's output_dir, in the run's): a file or a link there is refused before
#: any trial (the Trainer failed on it after loading the corpus, or wrote the trials' checkpoints into a linked folder).
SEARCH_FOLDER = "hp_search"
#: The optuna journal of every trial, in ``SEARCH_FOLDER``: what a rerun resumes from.
JOURNAL = "trials.journal"
#: Errors that fail one trial, not the search: its hyperparameters, not the code, are at fault.
TRIAL_FAILURES = (torch.OutOfMemoryError,)
#: The settings a split error may advise changing: train's, less validation_size, which a search cannot set to 0.
_SPLIT_SETTINGS = {key: setting for key, setting in RUN_SETTINGS.items() if key != "validation_size"}

logger = logging.getLogger(__name__)


def default_hp_space(trial) -> dict[str, Any]:
    """The search space used when none is given: learning rate, warmup, weight decay and batch size.

    Args:
        trial: An ``optuna.Trial``.

    Returns:
        ``TrainingArguments`` field -> value for this trial.
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 5e-6, 2e-4, log=True),
        "warmup_steps": trial.suggest_categorical("warmup_steps", [0.0, 0.05, 0.1, 0.2]),  # < 1: share of steps
        "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.01, 0.1]),
        "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [4, 8, 16]),
    }


def objective_name(args) -> str:
    """The validation metric a search optimises: the one that picks the best checkpoint (``metric_for_best_model``:
    UA, or the mean of the corpora's UAs for a validation set of several corpora; see ``SERTrainer``)."""
    metric = args.metric_for_best_model
    return metric if metric.startswith("eval_") else f"eval_{metric}"


def _objective(name: str) -> Callable[[dict[str, float]], float]:
    def objective(metrics: dict[str, float]) -> float:
        if name not in metrics:
            raise SERError(f"hyperparameter_search: the evaluation returned no {name!r} (got {sorted(metrics)}).")
        return metrics[name]

    return objective


def hyperparameter_search(run: Run, n_trials: int = 20, hp_space: Callable[[Any], dict[str, Any]] | None = None,
                          seed: int | None = None, **study_kwargs: Any) -> BestRun:
    """Search fine-tuning hyperparameters of ``run`` with optuna, maximising validation UA (the metric that picks
    the best checkpoint: the mean of the corpora's UAs for a validation set of several corpora).

    Args:
        run: The run (data, model, training arguments); ``run.model.mode`` must be ``"finetune"`` and
            ``run.data.validation_size`` > 0. ``output_dir`` receives the trials' checkpoints and
            ``hp_search.json`` with the best trial.
        n_trials: Number of trials in all, those a stopped run of the same search finished included.
        hp_space: ``trial -> {TrainingArguments field: value}``; default :func:`default_hp_space`.
        seed: Seed of optuna's TPE sampler (default: ``run.training.seed``), so a search can be repeated.
        **study_kwargs: Passed to ``optuna.create_study`` / ``Study.optimize`` (e.g. ``timeout``, ``pruner``).

    Returns:
        transformers' ``BestRun`` (``run_id``, ``objective`` = best validation UA, ``hyperparameters``).

    Raises:
        SERError: if optuna is not installed, ``n_trials`` is below 1, the mode is not ``finetune``, there is no
            validation split, or no trial finished.
    """
    if importlib.util.find_spec("optuna") is None:
        raise SERError("hyperparameter_search needs optuna, which is not installed: pip install 'ser-hf[search]' "
                       "(or pip install 'optuna>=3').")
    import optuna

    from ser_hf.training.finetune import FinetuneMethod

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise SERError(f"hyperparameter_search: n_trials must be a whole number >= 1, got {n_trials!r}; e.g. 20.")
    if run.model.mode != "finetune":
        raise SERError(f"hyperparameter_search tunes fine-tuning, and this run's mode is {run.model.mode!r}: set "
                       f"mode: finetune in the recipe, or pass --mode finetune (a fine-tuning recipe such as "
                       f"recipes/urdu/wav2vec2-base-finetune.yaml has it).")
    if not run.data.validation_size > 0:
        raise SERError(f"hyperparameter_search scores trials on a validation split: set validation_size > 0 "
                       f"(got {run.data.validation_size}).")
    out = run_output_dir(run)  # a file or a folder of the user's own files is refused before any trial
    seed = run.training.seed if seed is None else seed
    hp_space = hp_space or default_hp_space
    study = _study_name(run, hp_space, seed)
    trials_folder = out / SEARCH_FOLDER / study  # each study's trials in their own folders (run-0 is every study's)
    for folder, linked_folder_ok in ((out / SEARCH_FOLDER, False), (trials_folder, False),
                                     (trials_folder / "checkpoints", True)):
        refuse_non_folder(folder, place=f"output_dir {display_path(out)}", writer="a search",
                          what=f"its {folder.relative_to(out)}/ folder (the trials' checkpoints)",
                          linked_folder_ok=linked_folder_ok)
    _check_journal_place(out)
    dataset = load_run_dataset(run.data, include_eval=True)
    split = _search_split(run, dataset)
    labels = dataset.features["label"].names
    training = dataclasses.replace(run.training, output_dir=str(trials_folder))
    method = FinetuneMethod(resolve_model_path(run.model.model_name_or_path), labels, run.model, training,
                            preprocessor=run.data.preprocessor(SAMPLING_RATE))
    trainer = method.make_trainer(split["train"], split["validation"], model_init=lambda trial: method.build()[0])
    sampler = optuna.samplers.TPESampler(seed=seed)
    objective = objective_name(trainer.args)
    storage, finished = _open_journal(optuna, out, study)
    if finished:
        logger.warning("search: resuming study %s, %d of %d trial(s) already finished", study, finished, n_trials)
    try:
        best = trainer.hyperparameter_search(
            hp_space=hp_space, compute_objective=_objective(objective), n_trials=max(n_trials - finished, 0),
            direction="maximize" if trainer.args.greater_is_better else "minimize", backend="optuna", sampler=sampler,
            storage=storage, study_name=study, load_if_exists=True,
            catch=study_kwargs.pop("catch", TRIAL_FAILURES), **study_kwargs)
    except ValueError as err:
        if "No trials are completed" not in str(err):
            raise
        raise SERError("hyperparameter_search: none of the trials finished (each failure is logged above, e.g. "
                       "out of memory); lower the batch sizes of the search space, or fix what the failures name, "
                       "and run it again.") from None
    counts = {"asked": n_trials, **_trial_counts(optuna, study, storage)}
    _write_record(Path(run.training.output_dir), best, counts, split, objective, study)
    return best


def _search_split(run: Run, dataset) -> Any:
    """``ser-hf train``'s parts (:func:`~ser_hf.training.run_data.train_split`: its test clips never choose a
    hyperparameter); with validation_size > 0 they have a validation part, or the split fails saying why.

    Raises:
        SplitError: too few speakers outside the test part for a validation part, saying what a search needs.
    """
    try:
        return train_split(run.data, dataset, settings=_SPLIT_SETTINGS,
                           test_size_given=run.was_given(run.data, "test_size"))
    except SplitError as err:
        if getattr(err, "part", None) != "validation":
            raise
        raise SplitError(f"hyperparameter_search scores every trial on a validation part of speakers held out of the "
                         f"training rows, so it needs at least 2 speakers outside the test part: 3 or more in all, or "
                         f"fewer test speakers. {err}") from None


#: Training settings that do not change what a trial scores: a search that differs only in them is the same search.
_NOT_THE_OBJECTIVE = re.compile(r"^(output_dir|.*_dir|logging_.*|disable_tqdm|report_to|run_name|save_.*|"
                                r"per_device_eval_batch_size|eval_batch_size|dataloader_.*|push_to_hub|hub_.*|"
                                r"resume_from_checkpoint|overwrite_output_dir|local_rank|print_.*|.*_hub_.*)$")


def _study_name(run: Run, hp_space: Callable, seed: int) -> str:
    """The study a search's trials belong to: what its trials score (the data with its folders resolved, the model,
    the training settings that change the objective, the search space's distributions, the sampler's seed). A rerun
    of the same search resumes it, from any working folder and with other logging or saving; another search space
    (edited ranges too) or other settings get a study of their own."""
    space, set_by_space = _space_signature(hp_space)
    training = {key: value for key, value in dataclasses.asdict(run.training).items()
                if not _NOT_THE_OBJECTIVE.match(key) and key not in set_by_space}
    data = {key: _resolved(value) if key == "data_dir" else value for key, value in dataclasses.asdict(run.data).items()}
    model = {key: _resolved(value) if key == "model_name_or_path" else value
             for key, value in dataclasses.asdict(run.model).items()}
    settings = json.dumps({"data": data, "model": model, "training": training, "space": space, "seed": seed},
                          sort_keys=True, default=str)
    return "ser_hf-" + hashlib.sha256(settings.encode()).hexdigest()[:16]


def _resolved(value: Any) -> Any:
    """A local path (or a comma-separated list of them, several corpora) as its real path; anything else as it is."""
    if not isinstance(value, str) or not value:
        return value
    parts = [os.path.realpath(part) if os.path.exists(part) else part for part in value.split(",")]
    return ",".join(parts)


class _SpaceRecorder:
    """A stand-in for ``optuna.Trial`` that records every ``suggest_*`` call of a search space (name, range, choices)
    and answers with the lowest value or first choice, so a space is identified by what it asks, not its name."""

    def __init__(self) -> None:
        self.calls: list = []

    def __getattr__(self, name: str):
        if not name.startswith("suggest_"):
            raise AttributeError(name)

        def suggest(*args, **kwargs):
            self.calls.append([name, list(args), sorted(kwargs.items())])
            if name == "suggest_categorical":
                return list(kwargs.get("choices", args[1] if len(args) > 1 else [None]))[0]
            return kwargs.get("low", args[1] if len(args) > 1 else 0)

        return suggest


def _space_signature(hp_space: Callable) -> tuple[Any, set[str]]:
    """What ``hp_space`` asks (its suggest calls) and the settings it sets; its code where it asks something a
    recorder cannot answer (e.g. the trial's number)."""
    recorder = _SpaceRecorder()
    try:
        settings = hp_space(recorder)
        return recorder.calls, set(settings) if isinstance(settings, dict) else set()
    except Exception:  # noqa: BLE001 - any space a recorder cannot run is identified by its code instead
        code = getattr(hp_space, "__code__", None)
        fallback = [f"{getattr(hp_space, '__module__', '')}.{getattr(hp_space, '__qualname__', repr(hp_space))}",
                    code.co_code.hex() if code else "", repr(code.co_consts) if code else ""]
        return fallback, set()


def _check_journal_place(out: Path) -> None:
    """Refuse, before any work, what stands where the search keeps its journal: a folder, a link, a device."""
    journal = out / SEARCH_FOLDER / JOURNAL
    problem = link_problem(journal) or ("a folder" if journal.is_dir() else None) or (
        "not a regular file" if journal.exists() and not journal.is_file() else None)
    if problem is not None:
        raise SERError(f"output_dir {display_path(out)}: its {SEARCH_FOLDER}/{JOURNAL} (where a search keeps its "
                       f"finished trials) is {problem}; move it away, or pass another output_dir.")


def _open_journal(optuna, out: Path, study: str) -> tuple[Any, int]:
    """The optuna storage of ``out``'s journal and how many trials of ``study`` it holds finished."""
    journal = out / SEARCH_FOLDER / JOURNAL
    journal.parent.mkdir(parents=True, exist_ok=True)
    try:  # optuna replays the journal lazily, and a file it did not write fails with whatever its parser meets
        _check_journal(journal)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        return storage, _trial_counts(optuna, study, storage)["complete"]
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise SERError(f"output_dir {display_path(out)}: its {SEARCH_FOLDER}/{JOURNAL} cannot be read as the optuna "
                       f"journal of a search ({str(err)[:100]}); move it away to start the search afresh (the trials "
                       f"it held are not resumed), or pass another output_dir.") from None


def _check_journal(journal: Path) -> None:
    """Raise ValueError unless ``journal`` is missing or an optuna journal: one JSON object with an ``op_code`` per
    line (a last line without its newline is a write a kill cut short, which optuna skips too)."""
    if not journal.exists():
        return
    lines = journal.read_bytes().split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("op_code"), int):
            raise ValueError(f"line {number} is not an optuna journal entry")


def _trial_counts(optuna, study: str, storage) -> dict[str, int]:
    """How many trials of ``study`` finished (``complete``) and failed (``fail``); none before its first trial."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).trials
    except KeyError:  # no such study yet
        trials = []
    return {state.name.lower(): sum(trial.state == state for trial in trials)
            for state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)}


def _write_record(out: Path, best: BestRun, trials: dict[str, int], split, objective: str, study: str) -> None:
    """``hp_search.json``: the best trial, the metric it was chosen by, the trials run and which speakers scored it
    (never the test speakers)."""
    earlier = out / "hp_search.json"
    if earlier.is_file():
        try:
            other = json.loads(earlier.read_text()).get("study")
        except (OSError, ValueError, AttributeError):
            other = None
        if other != study:
            logger.warning("search: %s described another search (other settings); replaced by this one's (its "
                           "trials stay in %s)", display_path(earlier), display_path(out / SEARCH_FOLDER / JOURNAL))
    record = {"objective": objective, "study": study, "trials": trials, "n_trials": trials["asked"],
              "best_run": {"run_id": best.run_id, "objective": best.objective, "hyperparameters": best.hyperparameters},
              "validation_speakers": sorted(set(split["validation"]["speaker"])),
              "test_speakers_held_out": sorted(set(split["test"]["speaker"])) if "test" in split else []}
    out.mkdir(parents=True, exist_ok=True)
    write_output_file(out / "hp_search.json", json.dumps(record, indent=2, default=str) + "\n")
