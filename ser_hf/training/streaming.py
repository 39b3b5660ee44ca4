"""Fine-tuning on a streamed ``datasets`` dataset (``--streaming``): the training split is an ``IterableDataset``
read shard by shard, so memory holds a shuffle buffer and a few batches, never the dataset.

- Rows keep their ``Audio(decode=False)`` cells: the collator decodes embedded bytes in memory (or reads a
  path); nothing is written to disk.
- Labels go through the emotion vocabulary and ``label_map`` row by row, so the label set must be known before
  the first row: ``emotions`` (e.g. ``4class``), or the names of a ``ClassLabel`` label column.
- ``label_map`` entries that change nothing or split an emotion get the warnings a non-streamed load gives
  (:func:`~ser_hf.corpora.label_maps.warn_label_map_mismatches`): before training for a ``ClassLabel`` column,
  whose names are every raw label; as rows arrive for string labels (:class:`LabelMapWatch`).
- Several processes (``accelerate launch``): each reads its own shards. The Trainer hands the training
  DataLoader to accelerate's ``prepare``, which, with ``dispatch_batches`` off (set here), gives each process
  ``IterableDataset.shard(num_processes, rank)`` -- what ``datasets.distributed.split_dataset_by_node`` does --
  or, with fewer shards than processes, every ``num_processes``-th batch. The stream is deliberately *not*
  split with ``split_dataset_by_node`` first: ``prepare`` would shard each process's part once more and drop
  data. (With ``dispatch_batches`` on, the default for iterable data, the main process alone would read.)
- A stream has no length: ``max_steps`` says how long to train. The class-weighted loss, length grouping and
  balanced sampling need the whole split and are off; there is no validation split (no model selection).
- ``eval_split_name``, if set, is loaded as usual (bounded) and scored as the test part. Whether its speakers
  also speak in the training split is not checked while streaming; the report says so in ``split_kind``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from transformers import TrainerCallback

from ser_hf.cards import card_from_run, write_model_card
from ser_hf.checkpoint import write_run_record
from ser_hf.corpora import load_corpus
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.corpora.hf_dataset import audio_cells, cell_text, open_dataset, select_split
from ser_hf.corpora.label_maps import warn_emotion_split, warn_label_map_mismatches, warn_unused_entries
from ser_hf.emotions import resolve_emotions, sort_emotions
from ser_hf.errors import CorpusError, SERError
from ser_hf.models.presets import resolve_model_path
from ser_hf.training.arguments import DataArguments
from ser_hf.training.finetune import FinetuneMethod
from ser_hf.training.run import SAMPLING_RATE, Run, TrainResult, evaluate_method, is_main_process
from ser_hf.training.trainer import SERTrainer

logger = logging.getLogger(__name__)

#: ``split_kind`` of a streamed run: its parts are the dataset's own splits, not checked for shared speakers.
STREAMED_SPLIT = "the dataset's own train/test splits (speaker overlap not checked while streaming)"
#: Rows held for shuffling (a larger buffer mixes better and holds more clips in memory).
SHUFFLE_BUFFER = 1000


def stream_labels(data: DataArguments, part: Any) -> list[str]:
    """The model's emotions for a stream: ``emotions``, else the label column's ``ClassLabel`` names mapped.

    A ``ClassLabel`` column's ``label_map`` warnings (:func:`warn_class_label_map`) are given here, before training.

    Raises:
        SERError: string labels and no ``emotions`` (the label set would need a pass over the whole split).
    """
    feature = (part.features or {}).get(data.label_column_name)
    if isinstance(feature, datasets.ClassLabel):
        warn_class_label_map(data, feature.names)
    subset = resolve_emotions(data.emotions)
    if subset is not None:
        return list(subset)
    if isinstance(feature, datasets.ClassLabel):
        return list(sort_emotions(raw_label_to_emotion(name, data.label_map_dict()) for name in feature.names))
    raise SERError(f"--streaming: the label column {data.label_column_name!r} holds strings, so its label set is "
                   f"unknown until the whole split is read. Pass --emotions (e.g. 4class, or neutral,happy,sad,angry), "
                   f"or store the labels as a ClassLabel.")


def _warned_as(data: DataArguments) -> tuple[str, str]:
    """The corpus name and place label_map warnings give the dataset: those of its non-streamed load."""
    return data.dataset_name, str(Path(data.dataset_name))


def warn_class_label_map(data: DataArguments, names: list[str]) -> None:
    """The label_map warnings a non-streamed load of the split gives, from a ``ClassLabel`` column's names.

    The names are the split's raw labels, known before the first row; a name no emotion spells is left out (its
    rows fail naming it when they are read, as the non-streamed load refuses them).
    """
    label_map = data.label_map_dict()
    if not label_map:
        return
    labelled = set()
    for name in names:
        try:
            labelled.add((raw_label_to_emotion(name, label_map), name))
        except CorpusError:
            continue
    warn_label_map_mismatches(label_map, labelled, *_warned_as(data))


class LabelMapWatch(TrainerCallback):
    """The label_map warnings of a non-streamed load for a stream of string labels, known only as rows arrive.

    - An entry that splits an emotion (:func:`~ser_hf.corpora.label_maps.warn_emotion_split`) is warned about when
      the first row showing it is read, once per raw label: the rows that fill the shuffle buffer are read before
      the first step, so a label that is not rare shows it before training starts. Each process reading rows has
      its own watch: with ``dataloader_num_workers`` every worker warns, anew each pass unless workers persist.
    - An entry that matches no raw label (:func:`~ser_hf.corpora.label_maps.warn_unused_entries`) is only known
      once every row has been read: it is warned about when the first pass over the stream ends (an epoch that
      ends before ``max_steps``), where this process read every row itself (one process, no dataloader workers).
      A run whose ``max_steps`` end before the stream does gets no such warning.

    Args:
        label_map: The run's ``label_map``.
        corpus: The name the warnings give the dataset.
        root: Where the dataset is, as the warnings name it.
    """

    def __init__(self, label_map: dict[str, str], corpus: str, root: str) -> None:
        self.label_map, self.corpus, self.root = label_map, corpus, root
        self.labelled: set[tuple[str, str]] = set()
        self.checked_unused = False

    @classmethod
    def for_split(cls, data: DataArguments, part: Any) -> LabelMapWatch | None:
        """The watch for a split of string labels with a ``label_map``; ``None`` otherwise (a ``ClassLabel``
        column's warnings come before training, from :func:`stream_labels`)."""
        label_map = data.label_map_dict()
        if not label_map or isinstance((part.features or {}).get(data.label_column_name), datasets.ClassLabel):
            return None
        return cls(label_map, *_warned_as(data))

    def see(self, emotion: str, raw: str) -> None:
        """A row's raw label and the emotion it maps to."""
        if (emotion, raw) not in self.labelled:
            self.labelled.add((emotion, raw))
            warn_emotion_split(self.label_map, [(emotion, raw)], self.corpus, self.root)

    def on_epoch_end(self, args, state, control, **kwargs):
        stream_ended = state.global_step < state.max_steps  # else max_steps ended the epoch, maybe before the rows
        read_here = args.world_size == 1 and args.dataloader_num_workers == 0
        if stream_ended and read_here and self.labelled and not self.checked_unused:
            self.checked_unused = True
            warn_unused_entries(self.label_map, {raw for _, raw in self.labelled}, self.corpus, self.root)


def training_stream(data: DataArguments, labels: list[str], seed: int,
                    watch: LabelMapWatch | None = None) -> datasets.IterableDataset:
    """The training split as an ``IterableDataset`` of ``{"audio": cell, "label": id}``, shuffled with ``seed``.

    Rows whose emotion is not among ``labels`` are left out (an emotion subset); a row whose label is unknown
    raises :class:`~ser_hf.errors.CorpusError` naming it when it is read. ``watch`` sees every row's raw label.
    """
    source, split = data.dataset_source(), data.train_split_name
    part = select_split(open_dataset(source, streaming=True), split, source)
    feature = (part.features or {}).get(source.label_column)
    cells, ids, label_map = audio_cells(source, split, part), {name: i for i, name in enumerate(labels)}, data.label_map_dict()

    def to_row(example: dict[str, Any], index: int) -> dict[str, Any]:
        try:
            text = cell_text(example[source.label_column], feature)
            emotion = None if text is None else raw_label_to_emotion(text, label_map)
        except CorpusError as err:
            raise CorpusError(f"dataset {source.name!r} split {split!r} row {index} (counted in the stream): {err}") from err
        if watch is not None and emotion is not None:
            watch.see(emotion, text)
        audio = example[source.audio_column]
        if isinstance(audio, dict) and audio.get("bytes"):
            # The cell's name is only a label for embedded bytes: make it name the row for decoding errors.
            name = f" ({audio['path']})" if audio.get("path") else ""
            return {"audio": {"bytes": audio["bytes"], "path": f"of split {split!r} row {index}{name}"},
                    "label": ids.get(emotion, -1)}
        path = audio if isinstance(audio, str) else audio.get("path") if isinstance(audio, dict) else None
        if not path:
            raise CorpusError(f"dataset {source.name!r} split {split!r} row {index} (counted in the stream): the "
                              f"audio cell is empty; expected embedded audio bytes or a path.")
        # A relative path is relative to the local dataset's folder, wherever the job runs.
        return {"audio": {"bytes": None, "path": str(cells.locate(path))}, "label": ids.get(emotion, -1)}

    stream = part.select_columns([source.audio_column, source.label_column]).map(to_row, with_indices=True)
    stream = stream.remove_columns([c for c in (source.audio_column, source.label_column) if c not in ("audio", "label")])
    return stream.filter(lambda row: row["label"] >= 0).shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)


class StreamingFinetuneMethod(FinetuneMethod):
    """:class:`~ser_hf.training.finetune.FinetuneMethod` whose ``fit`` reads an ``IterableDataset``."""

    def stream_arguments(self, data: DataArguments):
        """The run's arguments for a stream: a checkpoint folder per dataset split, no evaluation, no dispatching."""
        args = self.args
        if args.max_steps is None or args.max_steps <= 0:
            raise SERError("--streaming needs --max_steps N (optimizer steps): a stream has no length, so epochs "
                           "cannot be counted.")
        if args.class_weighted_loss:
            warnings.warn("--streaming: class_weighted_loss needs the label counts of the whole split; training "
                          "with an unweighted loss.", UserWarning, stacklevel=3)
        digest = hashlib.sha256(f"{data.dataset_name}\0{data.train_split_name}".encode()).hexdigest()[:10]
        return dataclasses.replace(
            args, output_dir=str(Path(args.output_dir) / "checkpoints" / f"stream-{digest}"), eval_strategy="no",
            load_best_model_at_end=False, accelerator_config=dataclasses.replace(args.accelerator_config,
                                                                                 dispatch_batches=False))

    def fit_stream(self, stream: datasets.IterableDataset, data: DataArguments,
                   callbacks: list[TrainerCallback] | None = None) -> StreamingFinetuneMethod:
        """Fine-tune for ``max_steps`` steps on ``stream`` (see the module docstring), with ``callbacks`` (e.g. the
        stream's :class:`LabelMapWatch`)."""
        trainer = SERTrainer(model=self.model, args=self.stream_arguments(data), data_collator=self.collator,
                             processing_class=self.feature_extractor, class_names=self.labels, callbacks=callbacks)
        # Given after construction: SERTrainer's column checks and class weights need a length the stream lacks.
        trainer.train_dataset, trainer.class_weights = stream, None
        rank, world = trainer.args.process_index, trainer.args.world_size
        if world > 1:  # what accelerate's prepare does with dispatch_batches off (see the module docstring)
            own = stream.shard(num_shards=world, index=rank).n_shards if stream.n_shards >= world else stream.n_shards
            logger.warning("streaming: process %d of %d reads %d of the stream's %d shards%s", rank, world, own,
                           stream.n_shards, "" if stream.n_shards >= world else f" and keeps one batch in {world}")
        trainer.train()
        self.trainer, self.model = trainer, trainer.model
        return self


def train_streaming(run: Run, progress: bool = True, before_save: Callable[[], None] | None = None) -> TrainResult:
    """``ser-hf train --streaming``: fine-tune on the streamed training split, save, score ``eval_split_name``.

    ``before_save`` runs once the model is trained, before it is saved (the caller's removal of an earlier run's
    stale files: a run that fails before keeps the earlier run whole).

    Returns:
        A :class:`~ser_hf.training.run.TrainResult` (``report`` is None without ``eval_split_name``).

    Raises:
        SERError: without ``dataset_name``, in a mode other than ``finetune``, or without ``max_steps``.
    """
    data = run.data
    if data.dataset_name is None or run.model.mode != "finetune":
        raise SERError(f"--streaming streams a `datasets` dataset into fine-tuning: set --dataset_name and --mode "
                       f"finetune (got dataset_name={data.dataset_name!r}, mode={run.model.mode!r}).")
    source = data.dataset_source()
    part = select_split(open_dataset(source, streaming=True), data.train_split_name, source)
    labels, watch = stream_labels(data, part), LabelMapWatch.for_split(data, part)
    method = StreamingFinetuneMethod(resolve_model_path(run.model.model_name_or_path), labels, run.model,
                                     run.training, preprocessor=data.preprocessor(SAMPLING_RATE))
    method.fit_stream(training_stream(data, labels, run.training.seed, watch), data,
                      callbacks=None if watch is None else [watch])
    out = Path(run.training.output_dir)
    if before_save is not None:
        before_save()
    checkpoint = method.save(out, replace=True)  # run_output_dir checked it
    if is_main_process():  # at once: the weights' settings, before the slow test scoring (a kill there keeps them)
        write_run_record(out, {**run.settings(), "split_kind": STREAMED_SPLIT})
    parts, report = {}, None
    if data.eval_split_name not in (None, data.train_split_name):
        parts["test"] = load_corpus(source, splits=[data.eval_split_name], emotions=labels,
                                    label_map=data.label_map_dict(), strict=data.strict)
        report = evaluate_method(run, method, parts["test"], "test")[0]
        report.metadata["split_kind"] = STREAMED_SPLIT
    if is_main_process():
        if report is not None:
            report.write(out / "eval")
        write_model_card(checkpoint, card_from_run(run, parts, report, checkpoint, method=method))
    return TrainResult(checkpoint, report)
