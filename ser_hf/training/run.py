"""One run and what every way of training shares: the arguments (:class:`Run`), the result
(:class:`TrainResult`), scoring a trained method on a part (:func:`evaluate_method`) and who writes files under
``accelerate launch`` (:func:`is_main_process`).

:mod:`ser_hf.training.experiment` (in-memory datasets) and :mod:`ser_hf.training.streaming` (a streamed split)
both build on these; neither imports the other's internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf.evaluation import EvaluationReport
from ser_hf.processes import launched_processes
from ser_hf.splits import split_kind
from ser_hf.training.arguments import DataArguments, ModelArguments, ProbeArguments, SERTrainingArguments

#: Every supported backbone takes 16 kHz audio.
SAMPLING_RATE = 16000

#: Settings that cannot change a run's numbers, left out of a CV's identity (:meth:`Run.result_settings`) so that
#: changing them still resumes it: where outputs, logs and caches go, progress and logging, resuming, the Hub (where
#: the data lies is in the clips' own digest, which model in the model's). DataLoader workers are here too: every
#: random draw is a function of the seed, the epoch and the clip.
RESULT_NEUTRAL_SETTINGS = {
    "data": {"data_dir"},
    "model": {"model_name_or_path"},  # the model's own digest (its files, or its Hub id) stands for it
    "training": {"output_dir", "logging_steps", "logging_strategy", "logging_first_step", "logging_nan_inf_filter",
                 "log_level", "log_level_replica", "log_on_each_node", "report_to", "run_name", "project",
                 "disable_tqdm", "skip_memory_metrics", "dataloader_num_workers", "dataloader_persistent_workers",
                 "dataloader_prefetch_factor", "dataloader_pin_memory", "dataloader_multiprocessing_context",
                 "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
                 "hub_private_repo", "hub_always_push", "hub_revision", "save_total_limit", "save_on_each_node",
                 "trackio_bucket_id", "trackio_space_id", "trackio_static_space_id"},
    "probe": {"embedding_cache_dir"},
}


@dataclass
class Run:
    """One experiment: what data, which model, how to train (the Trainer's settings, and the probe's)."""

    data: DataArguments
    model: ModelArguments
    training: SERTrainingArguments
    probe: ProbeArguments = field(default_factory=ProbeArguments)
    #: The settings the user set (in the recipe, on the command line or as keywords; :func:`parse_run` fills it), so
    #: a warning about a setting left unused can tell a value typed equal to its default from no value at all; None
    #: where the run was built otherwise: a setting then counts as set where it differs from its default.
    given: frozenset[str] | None = None

    def was_given(self, group, key: str) -> bool:
        """Whether the user set ``key`` of the argument ``group`` (see :attr:`given`)."""
        return key in self.given if self.given is not None else getattr(group, key) != getattr(type(group), key)

    def settings(self, dataset: datasets.Dataset | None = None) -> dict[str, Any]:
        """The arguments as JSON-friendly dicts (recorded beside every result); with the run's ``dataset``, also
        ``split_kind``: how its parts were made (:data:`ser_hf.splits.SPEAKER_INDEPENDENT` or ``RANDOM_SPLIT``)."""
        training = {k: v for k, v in self.training.to_dict().items() if not k.startswith("_")}
        kind = {} if dataset is None else {"split_kind": split_kind(dataset)}
        return {"data": asdict(self.data), "model": asdict(self.model), "training": training,
                "probe": asdict(self.probe), **kind}

    def result_settings(self, dataset: datasets.Dataset | None = None) -> dict[str, Any]:
        """:meth:`settings` without :data:`RESULT_NEUTRAL_SETTINGS`: those that can change a result."""
        return {group: ({key: value for key, value in values.items()
                         if key not in RESULT_NEUTRAL_SETTINGS.get(group, ())} if isinstance(values, dict) else values)
                for group, values in self.settings(dataset).items()}


@dataclass
class TrainResult:
    checkpoint: Path
    report: EvaluationReport | None


def is_main_process() -> bool:
    """False on every process but the first under ``accelerate launch`` (they must not write reports)."""
    return launched_processes().is_main


def evaluate_method(run: Run, method, part: datasets.Dataset, split: str, corpus: str | None = None,
                    model: str | None = None) -> tuple[EvaluationReport, np.ndarray]:
    """The report of ``method`` on ``part`` (intervals resample whole speakers) and its probabilities; ``model``
    names the model in the report (default: the run's ``model_name_or_path``)."""
    probabilities = method.predict_proba(part)
    report = EvaluationReport.from_predictions(
        np.asarray(part["label"]), probabilities=probabilities, label_names=method.labels,
        groups=part["speaker"], genders=part["gender"] if "gender" in part.column_names else None,
        temperature=(getattr(method, "calibration", None) or {}).get("temperature"),
        model=model or run.model.model_name_or_path, corpus=corpus or run.data.corpus, split=split,
        metadata={"mode": run.model.mode, "speakers": sorted(set(part["speaker"])), "split_kind": split_kind(part)},
    )
    return report, probabilities
