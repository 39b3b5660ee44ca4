"""Fine-tuning on a streamed ``datasets`` dataset (``--streaming``): the training split is an ``IterableDataset``
read shard by shard, so memory holds a shuffle buffer and a few batches, never the dataset.

- Rows keep their ``Audio(decode=False)`` cells: the collator decodes embedded bytes in memory (or reads a
  path); nothing is written to disk.
- Labels go through the emotion vocabulary and ``label_map`` row by row, so the label set must be known before
  the first row: ``emotions`` (e.g. ``4class``), or the names of a ``ClassLabel`` label column that spell an emotion
  (mapped). A non-streamed load's label set is the emotions its rows use: a declared name no training row uses is a
  class nothing trains here, named in a warning with the ``emotions`` that leave it out once every row has been read
  (:class:`LabelMapWatch`); a declared name that spells no emotion is no class, and a row using it is refused.
- A row with an unusable cell (an empty or unknown label, an empty audio cell) is refused as a non-streamed load
  refuses it, when it is read: with ``strict`` (the default) the run stops naming it, else it is skipped with a
  warning. A local dataset's rows are named by their index in the split; a stream read from files cannot count
  its rows (shards are read in shuffled order), so its rows are named by their audio's file name.
- ``label_map`` entries that change nothing or split an emotion get the warnings a non-streamed load of the
  training and test splits gives (:func:`~ser_hf.corpora.label_maps.warn_label_map_mismatches`), judged on the raw
  labels rows use as they arrive (:class:`LabelMapWatch`), for a ``ClassLabel`` column too: a name it declares that
  no row uses is no raw label of the data.
- Several processes (``accelerate launch``): each reads its own shards. The Trainer hands the training
  DataLoader to accelerate's ``prepare``, which, with ``dispatch_batches`` off (set here), gives each process
  ``IterableDataset.shard(num_processes, rank)`` -- what ``datasets.distributed.split_dataset_by_node`` does --
  or, with fewer shards than processes, every ``num_processes``-th batch. The stream is deliberately *not*
  split with ``split_dataset_by_node`` first: ``prepare`` would shard each process's part once more and drop
  data. (With ``dispatch_batches`` on, the default for iterable data, the main process alone would read.)
- A stream has no length: ``max_steps`` says how long to train. The class-weighted loss, length grouping and
  balanced sampling need the whole split and are off; there is no validation split (no model selection).
- ``eval_split_name``, if set, is loaded as usual (bounded), before training, and scored as the test part. Whether
  its speakers also speak in the training split is not checked while streaming; the report says so in
  ``split_kind``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import datasets
from transformers import TrainerCallback

from ser_hf.cards import card_from_run, write_model_card
from ser_hf.checkpoint import write_run_record
from ser_hf.corpora import load_corpus
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.corpora.hf_dataset import ROW_COLUMN, AudioCells, audio_cells, cell_text, open_dataset, select_split
from ser_hf.corpora.label_maps import splits_an_emotion, warn_emotion_split, warn_unused_entries
from ser_hf.emotions import EMOTIONS, resolve_emotions, sort_emotions
from ser_hf.errors import CorpusError, SERError
from ser_hf.models.presets import resolve_model_path
from ser_hf.paths import display_path, printable
from ser_hf.training.arguments import DataArguments
from ser_hf.training.finetune import FinetuneMethod
from ser_hf.training.run import SAMPLING_RATE, Run, TrainResult, evaluate_method, is_main_process
from ser_hf.training.trainer import SERTrainer

logger = logging.getLogger(__name__)

#: ``split_kind`` of a streamed run: its parts are the dataset's own splits, not checked for shared speakers.
STREAMED_SPLIT = "the dataset's own train/test splits (speaker overlap not checked while streaming)"
#: Rows held for shuffling (a larger buffer mixes better and holds more clips in memory).
SHUFFLE_BUFFER = 1000
#: Skipped rows a stream names in a warning each (``strict`` off) before it says only that more are skipped.
SKIPPED_NAMED = 10


def stream_labels(data: DataArguments, part: Any) -> list[str]:
    """The model's emotions for a stream: ``emotions``, else the emotions the label column's ``ClassLabel`` names
    spell (mapped; see :func:`declared_classes`).

    Raises:
        SERError: string labels and no ``emotions`` (the label set would need a pass over the whole split), or a
            ``ClassLabel`` none of whose names spells an emotion.
    """
    subset = resolve_emotions(data.emotions)
    if subset is not None:
        return list(subset)
    feature = (part.features or {}).get(data.label_column_name)
    if not isinstance(feature, datasets.ClassLabel):
        raise SERError(f"--streaming: the label column {data.label_column_name!r} holds strings, so its label set is "
                       f"unknown until the whole split is read. Pass --emotions (e.g. 4class, or "
                       f"neutral,happy,sad,angry), or store the labels as a ClassLabel.")
    classes = declared_classes(feature.names, data.label_map_dict())
    if not classes:
        raise SERError(f"--streaming: none of the ClassLabel names {[printable(n) for n in feature.names]} of the label "
                       f"column {data.label_column_name!r} spells an emotion (expected one of {list(EMOTIONS)} or a "
                       f"known spelling, e.g. 'anger'), so the model would have no class. "
                       f"{_mapping_fix(feature.names)}.")
    return list(classes)


def _mapping_fix(labels: Sequence[str]) -> str:
    """How to map raw ``labels`` onto emotions: a ``--label_map`` of up to 3 of them, unless one holds what its
    ``from=to,...`` text cannot (a comma, an equals sign, a control character), which only renaming fixes."""
    if any("," in label or "=" in label or not label.isprintable() for label in labels):
        return (f"Rename the labels {[printable(label) for label in labels[:3]]} in the dataset to emotion names (a "
                f"--label_map entry cannot hold ',', '=' or control characters)")
    entries = ",".join(f"{label}=<emotion>" for label in labels[:3]) + (",..." if len(labels) > 3 else "")
    return f"Map {'it' if len(labels) == 1 else 'them'} with --label_map '{entries}'"


def declared_classes(names: Collection[str], label_map: dict[str, str] | None) -> dict[str, list[str]]:
    """The emotions a ``ClassLabel``'s names spell (through ``label_map``), in canonical order, each with its names.

    A name that spells no emotion gives no class: a non-streamed load refuses only the rows that use it, so a row
    using it is refused when it is read, naming the row, and a name no row uses changes nothing.
    """
    classes: dict[str, list[str]] = {}
    for name in names:
        try:
            classes.setdefault(raw_label_to_emotion(name, label_map), []).append(name)
        except CorpusError:
            continue
    return {emotion: classes[emotion] for emotion in sort_emotions(classes)}


def _warned_as(data: DataArguments) -> tuple[str, str]:
    """The corpus name and place label_map warnings give the dataset: those of its non-streamed load."""
    return data.dataset_name, str(Path(data.dataset_name))


class LabelMapWatch(TrainerCallback):
    """The label_map warnings of a non-streamed load for a stream, whose raw labels are known only as rows arrive
    (a ``ClassLabel``'s names too: a name it declares that no row uses is no label of the data); and the warning
    that names the model's classes no training row has.

    - An entry that splits an emotion (:func:`~ser_hf.corpora.label_maps.warn_emotion_split`): the first raw label
      showing it is warned about when its row is read (the rows that fill the shuffle buffer are read before the
      first step, so a label that is not rare shows it before training starts); raw labels showing it later are
      gathered and named together in one more warning, when the first pass over the stream ends or else when
      training does. So a watch gives at most two such warnings, however many spellings the data has (a non-streamed
      load gives one). Labels known before the stream (``labelled``: the test part's) are judged at once, as the
      first warning.
    - An entry that matches no raw label (:func:`~ser_hf.corpora.label_maps.warn_unused_entries`) is only known
      once every row has been read: it is judged when the first pass ends, where this process read every row itself
      (one process, no dataloader workers). The pass ends when ``rows`` rows have been read (a local dataset's
      stream knows its length, so a pass that ends exactly at ``max_steps`` counts), or, for a stream of unknown
      length, at an epoch that ends before ``max_steps``. A run whose ``max_steps`` end before the stream does gets
      no such warning.
    - A class of ``declared`` that no training row has: a non-streamed load, whose classes are the emotions its rows
      use, has no such class from a ``ClassLabel`` (and warns of one ``emotions`` names), but a stream fixes its
      classes before the first row. Named when the first pass ends, as unused entries are, with the ``--emotions``
      that leave it out.
    - Each process reading rows has its own watch: with ``dataloader_num_workers`` every worker warns of the first
      splitting label, anew each pass unless workers persist, and the labels it gathers are not named. Within a
      process, ``datasets`` reads several shards at once, each in a thread: :meth:`see` takes a lock.

    Args:
        label_map: The run's ``label_map`` (may be empty).
        corpus: The name the warnings give the dataset.
        root: Where the dataset is, as the warnings name it.
        rows: The stream's number of rows, if known.
        labelled: ``(emotion, raw label)`` pairs of the dataset's other loaded splits, judged with the stream's.
        declared: The model's classes, each with the label column's ``ClassLabel`` names that spell it where they
            come from them (:func:`declared_classes`), with none where ``emotions`` sets them.
        column: The label column, as the warning about ``declared`` names it.
    """

    def __init__(self, label_map: dict[str, str], corpus: str, root: str, rows: int | None = None,
                 labelled: Collection[tuple[str, str]] = (), declared: dict[str, list[str]] | None = None,
                 column: str = "label") -> None:
        self.label_map, self.corpus, self.root, self.rows = label_map, corpus, root, rows
        self.declared, self.column = declared or {}, column
        self.labelled: set[tuple[str, str]] = set(labelled)
        self.trained: set[str] = set()  # emotions of the training rows read
        self.gathered: set[tuple[str, str]] = set()  # splitting labels not warned about yet
        self.warned_split = any(splits_an_emotion(label_map, *pair) for pair in self.labelled)
        self.read, self.read_here, self.checked_unused = 0, True, False
        self.lock = threading.Lock()
        warn_emotion_split(label_map, self.labelled, corpus, root)

    @classmethod
    def for_split(cls, data: DataArguments, part: Any,
                  labelled: Collection[tuple[str, str]] = ()) -> LabelMapWatch | None:
        """The watch for a split: of its ``label_map`` entries, and of the model's classes (``emotions``, or the
        ``ClassLabel`` names) no training row has; ``None`` where there is nothing to watch. ``labelled``: the
        ``(emotion, raw label)`` pairs of the dataset's other loaded splits, judged with the split's own."""
        label_map = data.label_map_dict() or {}
        feature = (part.features or {}).get(data.label_column_name)
        subset = resolve_emotions(data.emotions)
        from_names = isinstance(feature, datasets.ClassLabel) and subset is None
        # every class of the model, each with the ClassLabel names that spell it (none for --emotions' classes)
        declared = declared_classes(feature.names, label_map) if from_names else {emotion: [] for emotion in subset or ()}
        if not label_map and not declared:
            return None
        # Only a local dataset's stream (its rows numbered) has a length of ser_hf's own counting: a Hub card's
        # may be out of date, and a short one would judge entries before every row is read.
        numbered = ROW_COLUMN in (part.column_names or [])
        rows = part.info.splits[data.train_split_name].num_examples if numbered else None
        return cls(label_map, *_warned_as(data), rows=rows, labelled=labelled, declared=declared,
                   column=data.label_column_name)

    def see(self, emotion: str | None, raw: str | None) -> None:
        """A row read: the emotion its raw label maps to and that label, or ``None`` twice for a skipped row."""
        with self.lock:
            self.read += 1
            if emotion is not None:
                self.trained.add(emotion)
            if emotion is not None and (emotion, raw) not in self.labelled:
                self.labelled.add((emotion, raw))
                if splits_an_emotion(self.label_map, emotion, raw):
                    if self.warned_split:
                        self.gathered.add((emotion, raw))
                    else:
                        self.warned_split = True
                        warn_emotion_split(self.label_map, [(emotion, raw)], self.corpus, self.root)
            if self.read == self.rows:
                self._first_pass_read()

    def _first_pass_read(self) -> None:
        if self.read_here and self.labelled and not self.checked_unused:
            self.checked_unused = True
            self._name_gathered()
            warn_unused_entries(self.label_map, {raw for _, raw in self.labelled}, self.corpus, self.root)
            self._name_untrained()

    def _name_untrained(self) -> None:
        untrained = {emotion: [printable(name) for name in names] for emotion, names in self.declared.items()
                     if emotion not in self.trained}
        if not untrained:
            return
        trained = ",".join(emotion for emotion in self.declared if emotion in self.trained)
        if not any(untrained.values()):  # the classes --emotions named, as a non-streamed load warns of them
            logger.warning("The emotions asked for include %s, which no training row of the %s dataset in %s has: the "
                           "streamed model has %s nothing trained. Leave %s out: emotions (--emotions) %s.",
                           list(untrained), self.corpus, display_path(self.root),
                           "a class" if len(untrained) == 1 else "classes", "it" if len(untrained) == 1 else "them",
                           trained or "with emotions the training rows have")
            return
        logger.warning("The ClassLabel of the label column %r of the %s dataset in %s declares names no training "
                       "row uses (class: names) %s: the streamed model's classes are the ClassLabel's names, "
                       "fixed before the first row, so it has classes nothing trained, which a non-streamed load "
                       "(its classes are the emotions its rows use) leaves out; train with --emotions %s to leave "
                       "them out.", self.column, self.corpus, display_path(self.root), untrained, trained)

    def _name_gathered(self) -> None:
        if self.gathered:
            warn_emotion_split(self.label_map, self.gathered, self.corpus, self.root)
            self.gathered = set()

    def on_train_begin(self, args, state, control, **kwargs):
        self.read_here = args.world_size == 1 and args.dataloader_num_workers == 0

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step < state.max_steps:  # the stream ran out before max_steps: every row was read
            with self.lock:
                self._first_pass_read()

    def on_train_end(self, args, state, control, **kwargs):
        with self.lock:  # the stream's threads may still be reading ahead
            self._name_gathered()


class _SkippedRows:
    """The warnings of rows skipped for an unusable cell (``strict`` off), worded as a non-streamed load's: each row
    once however many passes read it, the first :data:`SKIPPED_NAMED` by name, then one warning that more are.
    Locked: ``datasets`` reads several shards at once, each in a thread."""

    def __init__(self) -> None:
        self.named: set[str] = set()
        self.more = False
        self.lock = threading.Lock()

    def warn(self, problem: str) -> None:
        with self.lock:
            if problem in self.named or self.more:
                return
            if len(self.named) < SKIPPED_NAMED:
                self.named.add(problem)
                logger.warning("skipped %s", problem)
            else:
                self.more = True
                logger.warning("skipped more than %d rows of the stream with unusable cells (strict=False); the "
                               "others are not named.", SKIPPED_NAMED)


def _row_name(row: int | None, audio: Any) -> str:
    """How errors name a streamed row: its index in the split where the stream knows it (a local dataset's), else
    its audio's file name; a stream read shard by shard, shuffled, cannot count its rows."""
    if row is not None:
        return f"row {row}"
    name = audio if isinstance(audio, str) else audio.get("path") if isinstance(audio, dict) else None
    return f"row with audio {printable(name)!r}" if name else "row with unnamed audio (a stream does not number rows)"


def training_stream(data: DataArguments, labels: list[str], seed: int,
                    watch: LabelMapWatch | None = None) -> datasets.IterableDataset:
    """The training split as an ``IterableDataset`` of ``{"audio": cell, "label": id}``, shuffled with ``seed``.

    Rows whose emotion is not among ``labels`` are left out (an emotion subset), as a non-streamed load leaves
    them out. A row with an unusable cell (an empty or unknown label, an empty audio cell) is refused as a
    non-streamed load refuses it, when it is read: with ``strict`` a :class:`~ser_hf.errors.CorpusError` names it,
    else it is skipped with a warning naming it (:class:`_SkippedRows`). A row is named by its index in the split
    where the stream knows it (a local dataset), else by its audio's file name. ``watch`` sees every row read.
    """
    source, split = data.dataset_source(), data.train_split_name
    part = select_split(open_dataset(source, streaming=True), split, source)
    feature = (part.features or {}).get(source.label_column)
    cells, label_map, skipped = audio_cells(source, split, part), data.label_map_dict(), _SkippedRows()
    ids = {name: i for i, name in enumerate(labels)}

    def to_row(example: dict[str, Any]) -> dict[str, Any]:
        audio, row, text = example[source.audio_column], example.get(ROW_COLUMN), None
        try:
            cell = _audio_cell(audio, cells, split, row)
            text = cell_text(example[source.label_column], feature)
            if text is None:
                raise CorpusError(f"the label cell ({source.label_column!r}) is empty; label the row or drop it.")
            emotion = raw_label_to_emotion(text, label_map)
        except CorpusError as err:
            problem = f"dataset {source.name!r} split {split!r} {_row_name(row, audio)}: {err}"
            if data.strict:
                # A label read but spelling no emotion: the fix is on ser-hf train's command line.
                fix = f"{_mapping_fix([text])}, fix" if text is not None else "Fix"
                raise CorpusError(f"{problem}\n{fix} or remove the row, or train with --strict false to skip such "
                                  f"rows.") from err
            skipped.warn(problem)
            if watch is not None:
                watch.see(None, None)
            return {"audio": {"bytes": None, "path": ""}, "label": -1}
        if watch is not None:
            watch.see(emotion, text)
        return {"audio": cell, "label": ids.get(emotion, -1)}

    numbered = ROW_COLUMN in (part.column_names or [])
    read = [source.audio_column, source.label_column, *([ROW_COLUMN] if numbered else [])]
    stream = part.select_columns(read).map(to_row)
    stream = stream.remove_columns([c for c in read if c not in ("audio", "label")])
    return stream.filter(lambda row: row["label"] >= 0).shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)


def _audio_cell(audio: Any, cells: AudioCells, split: str, row: int | None) -> dict[str, Any]:
    """A row's audio cell as the collator reads it: embedded bytes, named after the row for decoding errors, or a
    path.

    Raises:
        CorpusError: an empty cell.
    """
    if isinstance(audio, dict) and audio.get("bytes"):
        # The cell's name is only a label for embedded bytes: make it name the row for decoding errors.
        name = f" ({printable(audio['path'])})" if audio.get("path") and row is not None else ""
        return {"bytes": audio["bytes"], "path": f"of split {split!r} {_row_name(row, audio)}{name}"}
    path = audio if isinstance(audio, str) else audio.get("path") if isinstance(audio, dict) else None
    if not path:
        raise CorpusError("the audio cell is empty; expected embedded audio bytes or a path.")
    # A relative path is relative to the local dataset's folder, wherever the job runs.
    return {"bytes": None, "path": str(cells.locate(path))}


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


def _warn_test_emotions_left_out(data: DataArguments, labels: list[str], labelled: Collection[tuple[str, str]]) -> None:
    """Name the test split's emotions the model has no class for, where its classes are the training split's
    ``ClassLabel`` names (no ``emotions``): a non-streamed load of both splits would have made them classes; here
    their clips are left out of the test report. (With ``emotions`` the user chose to leave them out.)"""
    outside = sorted({(emotion, printable(raw)) for emotion, raw in labelled if emotion not in labels})
    if outside and resolve_emotions(data.emotions) is None:
        wanted = sort_emotions({*labels, *(emotion for emotion, _ in outside)})
        logger.warning("The %r split (--eval_split_name) of %s has clips of %s (raw labels %s), which the streamed "
                       "model has no class for: its classes are the names of the training split's ClassLabel (%s). "
                       "Those clips are left out of the test report. To learn them, train with --emotions %s (the "
                       "training split needs clips of them too), or map them onto the model's classes with "
                       "--label_map.", data.eval_split_name, data.dataset_name,
                       sorted({emotion for emotion, _ in outside}), [raw for _, raw in outside], ",".join(labels),
                       ",".join(wanted))


def _warn_unused_split_sizes(run: Run) -> None:
    """Say which split sizes the user set that a streamed run does not use: it holds no speakers out of a stream (its
    test part is the ``eval_split_name`` split, its training runs ``max_steps`` with no validation part)."""
    data = run.data
    unused = [name for name in ("test_size", "validation_size") if run.was_given(data, name)]
    if unused:
        test = (f"its test part is the {data.eval_split_name!r} split (--eval_split_name)"
                if data.eval_split_name not in (None, data.train_split_name) else "it has no test part")
        logger.warning("%s set but not used: a streamed run holds no speakers out of the stream (%s, and it trains "
                       "max_steps with no validation part). Leave %s out.",
                       " and ".join(f"{name} (--{name}) {getattr(data, name):g}" for name in unused), test,
                       " and ".join(f"--{name}" for name in unused))


def train_streaming(run: Run, progress: bool = True, before_save: Callable[[], None] | None = None) -> TrainResult:
    """``ser-hf train --streaming``: load ``eval_split_name`` (before training), fine-tune on the streamed training
    split, save, score the test part.

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
    labels = stream_labels(data, part)
    _warn_unused_split_sizes(run)
    parts, report, test_labelled = {}, None, set()
    if data.eval_split_name not in (None, data.train_split_name):
        # Before training: its unusable rows stop the run before the long part, and the label_map warnings judge
        # its labels with the stream's, as a non-streamed load of both splits does (alone, it would call an entry
        # that only training rows use unused).
        parts["test"] = load_corpus(source, splits=[data.eval_split_name], emotions=labels,
                                    label_map=data.label_map_dict(), strict=data.strict, labelled=test_labelled)
        _warn_test_emotions_left_out(data, labels, test_labelled)
    watch = LabelMapWatch.for_split(data, part, test_labelled)
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
    if parts:
        report = evaluate_method(run, method, parts["test"], "test")[0]
        report.metadata["split_kind"] = STREAMED_SPLIT
    if is_main_process():
        if report is not None:
            report.write(out / "eval")
        write_model_card(checkpoint, card_from_run(run, parts, report, checkpoint, method=method))
    return TrainResult(checkpoint, report)
