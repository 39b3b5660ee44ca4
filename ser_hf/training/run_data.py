"""The data a run trains and tests on: the run's dataset (a corpus, several corpora as one, or a ``datasets``
dataset), the train/validation/test parts ``ser-hf train`` makes of it and the speaker-grouped folds ``ser-hf cv``
makes of it.

Every command that splits as a run does takes its parts from here (``ser-hf train``, ``ser-hf data split --holdout``,
the hyperparameter search), so that all of them hold out the same speakers for the same settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import datasets
import numpy as np

from ser_hf.corpora import load_corpus
from ser_hf.corpora.base import warn_emotions_without_clips
from ser_hf.corpora.combined import combined_folds, combined_speaker_split, load_combined
from ser_hf.corpora.manifest import find_manifest
from ser_hf.corpora.split_names import check_some_rows_to_train_on, marked_test_rows
from ser_hf.errors import SERError
from ser_hf.paths import display_path
from ser_hf.splits import Fold, clips_as_speakers, corpus_folds, speaker_split, split_with_test
from ser_hf.training.arguments import DataArguments
from ser_hf.training.run import Run

logger = logging.getLogger(__name__)

#: How a run's user sets the split sizes (and the split it tests on), for split errors and warnings to advise (train, cv
#: and search take the same keys).
RUN_SETTINGS = {"validation_size": "validation_size (--validation_size)", "test_size": "test_size (--test_size)",
                "n_folds": "num_folds (--num_folds)", "eval_split_name": "eval_split_name (--eval_split_name)"}


def _load_dataset_run(data: DataArguments, include_eval: bool) -> datasets.Dataset:
    """The run's ``datasets`` dataset; without speaker ids, clips as their own speakers if a random split is allowed."""
    splits = [data.train_split_name]
    if include_eval and data.eval_split_name not in (None, data.train_split_name):
        splits.append(data.eval_split_name)
    dataset = load_corpus(data.dataset_source(), splits=splits, emotions=data.emotions,
                          label_map=data.label_map_dict(), strict=data.strict)
    if any(dataset["speaker"]):
        return dataset
    if not data.allow_random_split:
        raise SERError(
            f"dataset {data.dataset_name!r} has no speaker ids (speaker_column_name={data.speaker_column_name!r} is "
            f"absent or empty), so no split can keep test voices out of training. Name the column that holds speaker "
            f"ids with --speaker_column_name, or pass --allow_random_split to split clips at random (reports and the "
            f"model card then say 'random split (speakers may overlap)')."
        )
    logger.warning("dataset %r has no speaker ids: random split (speakers may overlap)", data.dataset_name)
    return clips_as_speakers(dataset)


def load_run_dataset(data: DataArguments, include_eval: bool = False) -> datasets.Dataset:
    """The corpus the run's data arguments describe; several corpora as one dataset (``load_combined``).

    For a ``datasets`` dataset (``dataset_name``): its training split, and with ``include_eval`` also its
    ``eval_split_name`` split (the ``split`` column tells them apart). Emotions asked for (``emotions``) that no
    training clip has are warned about (:func:`~ser_hf.corpora.base.warn_emotions_without_clips`), several corpora
    judged together.

    Raises:
        SERError: with ``streaming``, which only ``train`` (fine-tuning) reads, through its own path.
    """
    if data.streaming:
        raise SERError("--streaming is for 'ser-hf train --mode finetune' (fine-tuning reads the stream once, step "
                       "by step); cross-validation, search and the probe need the whole split: drop --streaming.")
    if data.dataset_name is not None:
        dataset = _load_dataset_run(data, include_eval)
        where = f"the {data.train_split_name!r} split of {data.dataset_name}"
        labels = np.asarray(dataset["label"])
        if "split" in dataset.column_names:  # the eval split's clips test, they train nothing
            labels = labels[np.asarray(dataset["split"]) == data.train_split_name]
    else:
        dataset = _load_corpora(data)
        where = " + ".join(data.sources()) if data.is_multi_corpus() else f"{data.corpus} in {data.data_dir}"
        labels = dataset["label"]
    if data.emotions is not None:
        warn_emotions_without_clips(dataset.features["label"].names, labels, where)
    return dataset


def _load_corpora(data: DataArguments) -> datasets.Dataset:
    """The run's corpus, or its corpora as one dataset."""
    options = {"speaker_pattern": data.speaker_pattern} if data.speaker_pattern else {}
    if data.is_multi_corpus():
        return load_combined(data.sources(), emotions=data.emotions, label_map=data.label_map_dict(),
                             strict=data.strict, **options)
    if data.data_dir is None and data.corpus != "synthetic":
        raise SERError(f"data_dir is not set: pass --data_dir with the folder of the {data.corpus!r} corpus.")
    return load_corpus(data.corpus, data.data_dir, emotions=data.emotions, label_map=data.label_map_dict(),
                       strict=data.strict, **options)


def run_folds(run: Run, dataset: datasets.Dataset) -> list[Fold]:
    """The run's speaker-grouped folds: the corpus's own protocol, within each corpus for several corpora."""
    marked = _marked_test_rows(run.data, dataset)
    if marked is not None:  # said, so that no one takes the CV for a score on those rows
        logger.warning("the manifest's split column marks %d clips as test; cross-validation does not use it: every "
                       "speaker is tested in turn, in speaker-grouped folds (ser-hf train tests on those clips)",
                       marked.size)
    make = combined_folds if run.data.is_multi_corpus() else corpus_folds
    return make(dataset, n_folds=run.data.num_folds, seed=run.data.fold_seed)


def train_split(data: DataArguments, dataset: datasets.Dataset, *, settings: Mapping[str, str] = RUN_SETTINGS,
                test_size_given: bool | None = None) -> datasets.DatasetDict:
    """The train/validation/test parts ``ser-hf train`` fits and scores on; the one place they are made, so that
    ``ser-hf data split --holdout`` shows the same parts.

    The test part is a ``datasets`` dataset's ``eval_split_name`` split, else the rows a manifest's ``split`` column
    marks as test (:func:`_marked_test_rows`), else about ``test_size`` of the clips by whole speakers (within each
    corpus for several corpora, :func:`~ser_hf.corpora.combined.combined_speaker_split`). Validation speakers are held
    out of the rest (``validation_size``); ``fold_seed`` seeds both.

    Args:
        data: The run's data arguments; only the settings named above are read.
        dataset: The run's dataset, as :func:`load_run_dataset` (with ``include_eval=True``) loads it.
        settings: How the caller's user sets each size, for split errors and warnings to advise (see
            :func:`~ser_hf.splits.speaker_split`); a run's keys and flags by default.
        test_size_given: Whether the user set ``test_size``, which marked test rows or an ``eval_split_name`` split
            leave unused (a warning says so); ``None``: where it differs from the default, all a run's arguments can
            tell.

    Returns:
        A ``DatasetDict`` with ``train`` and, where not empty, ``validation`` and ``test``.

    Raises:
        SplitError: sizes the split cannot give (see :func:`~ser_hf.splits.speaker_split`), too few speakers for the
            parts asked for, a test speaker who also speaks in the training rows, or a split column that marks every
            row as test.
    """
    given = data.test_size != DataArguments.test_size if test_size_given is None else test_size_given
    if data.dataset_name is not None and data.eval_split_name not in (None, data.train_split_name):
        test = np.flatnonzero(np.asarray(dataset["split"]) == data.eval_split_name)
        if given:
            eval_split = settings.get("eval_split_name", "eval_split_name")
            _warn_test_size_unused(data, settings, f"the dataset's {data.eval_split_name!r} split ({eval_split}) is",
                                   test.size, f"leave {eval_split} unset")
        return split_with_test(dataset, test, validation_size=data.validation_size, seed=data.fold_seed,
                               settings=settings)
    marked = _marked_test_rows(data, dataset)
    if marked is not None:
        check_some_rows_to_train_on(marked, len(dataset))  # else the split ends with no train part (a KeyError)
        column = (f"the 'split' column of manifest {display_path(find_manifest(Path(data.data_dir)))}"
                  if data.corpus == "manifest" and data.data_dir else "the dataset's 'split' column")
        logger.info("the test part: the %d clips %s marks as test", marked.size, column)
        if given:
            _warn_test_size_unused(data, settings, f"{column} marks", marked.size, "clear the column")
        return split_with_test(dataset, marked, validation_size=data.validation_size, seed=data.fold_seed,
                               settings=settings, marked_by=column)
    if data.is_multi_corpus():
        return combined_speaker_split(dataset, test_size=data.test_size, validation_size=data.validation_size,
                                      seed=data.fold_seed, settings=settings)
    return speaker_split(dataset, test_size=data.test_size, validation_size=data.validation_size, seed=data.fold_seed,
                         settings=settings)


def _warn_test_size_unused(data: DataArguments, settings: Mapping[str, str], test_part: str, clips: int,
                           undo: str) -> None:
    """Say that the ``test_size`` the user set is not used: ``test_part`` (a manifest's split column, a dataset's
    ``eval_split_name`` split) gives the test part instead; ``undo`` is how to hold it out by speaker after all."""
    test_size = settings.get("test_size", "test_size")
    logger.warning("%s is %g but not used: %s the test part (%d clips). Leave %s out, or %s to hold that share of the "
                   "clips out by speaker instead.", test_size, data.test_size, test_part, clips, test_size, undo)


def _marked_test_rows(data: DataArguments, dataset: datasets.Dataset) -> np.ndarray | None:
    """The rows a manifest's ``split`` column marks as test clips (:func:`~ser_hf.corpora.split_names.marked_test_rows`:
    ``test``, ``testing``, ``eval``, ``evaluation``, in any case; unknown values warned about), or None where it marks
    none (or ``data`` reads a ``datasets`` dataset, whose splits ``eval_split_name`` chooses, or several corpora, each
    split on its own). Every other row is a training row: ser_hf holds its own validation speakers out of them
    (``validation_size``)."""
    if data.dataset_name is not None or data.is_multi_corpus() or "split" not in dataset.column_names:
        return None
    marked = marked_test_rows(dataset["split"])
    return marked if marked.size else None
