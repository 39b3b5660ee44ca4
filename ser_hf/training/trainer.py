"""``SERTrainer``: a thin ``transformers.Trainer`` for emotion classifiers.

It forces only what SER fine-tuning needs and leaves everything else to ``TrainingArguments``:

- ``remove_unused_columns=False``: the collator needs the ``audio`` path column the model never sees;
- class-weighted cross-entropy from the training label distribution (``class_weighted_loss``); on a training set of
  several corpora (a ``corpus`` column) every (corpus, emotion) cell weighs the same instead, as in the linear
  probe's fit, through a per-clip ``loss_weight`` column (a user's own column is used as given);
- training batches from :meth:`AudioCollator.for_training <ser_hf.training.data.AudioCollator.for_training>`
  (random crops, augmentation), evaluation batches from the plain collator (whole clips);
- samplers: length-grouped batches on the ``duration`` column (``train_sampling_strategy="group_by_length"``),
  or class-balanced sampling (``balanced_sampler``, over (corpus, emotion) cells for several corpora); evaluation in
  order of duration (little padding);
- SER metrics (UA first) always, merged with a user ``compute_metrics``; on a validation set of several corpora
  also each corpus's UA and their mean (:data:`CORPUS_MEAN_UA`), which then picks the best checkpoint unless
  ``metric_for_best_model`` names another metric, so every corpus counts the same there too;
- early stopping on ``metric_for_best_model`` (UA) with ``early_stopping_patience``;
- :meth:`SERTrainer.calibrate`: temperature scaling on the validation speakers, folded into the classifier.

Mixed precision falls back to float32 on CPU (see ``SERTrainingArguments``); activation (gradient)
checkpointing, resuming and best-checkpoint selection are the Trainer's own (which checkpoint to resume from, and whether
it fits the model: :mod:`ser_hf.training.resume`; LoRA adapters: :mod:`ser_hf.training.lora`).

Example:
    >>> trainer = SERTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
    ...                      data_collator=AudioCollator(extractor))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    >>> trainer.evaluate()["eval_unweighted_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler, WeightedRandomSampler
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.trainer_utils import IntervalStrategy

from ser_hf.errors import SERError
from ser_hf.evaluation.metrics import make_compute_metrics
from ser_hf.training.data import LOSS_WEIGHT_COLUMN
from ser_hf.training.linear_probe import balanced_weights, corpora_to_balance, corpus_balanced_ua
from ser_hf.training.probe import class_weights, weighted_cross_entropy

__all__ = ["CORPUS_MEAN_UA", "SERTrainer", "layerwise_parameter_groups"]

logger = logging.getLogger(__name__)

#: The validation metric of several corpora: the mean of the corpora's UAs (each pooled over its clips), what the
#: probe's inner CV and the gradient probe's early stopping maximise too.
CORPUS_MEAN_UA = "corpus_mean_unweighted_accuracy"


class _EarlyStopping(EarlyStoppingCallback):
    """``EarlyStoppingCallback`` whose patience counter restarts with every fresh ``train()``.

    The stock callback keeps its counter across ``train()`` calls, so hyperparameter-search trials would
    inherit the previous trial's impatience; a resumed run keeps the counter restored from its checkpoint.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.early_stopping_patience_counter = 0
        return super().on_train_begin(args, state, control, **kwargs)


class _CollatorEpoch(TrainerCallback):
    """Tells the training collator which epoch begins, so its crops and augmentation are drawn per epoch.

    ``on_epoch_begin`` runs before the epoch's DataLoader iterator (and so its workers' copies of the
    collator) is created. A resumed run restores ``state.epoch`` from the checkpoint (e.g. 1.33 in the
    second epoch), so its first epoch gets the right number too.
    """

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.set_epoch(math.floor(state.epoch + 1e-6))


class _OrderedSampler(Sampler):
    """Yields a fixed index order (evaluation sorted by duration)."""

    def __init__(self, order: Sequence[int]):
        self.order = list(order)

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class _EpochSeeded:
    """A sampler mixin whose draws are a function of ``(seed, epoch)`` only.

    The Trainer calls ``set_epoch`` before every epoch. A sampler drawing from the global torch RNG (or from
    one generator that runs on across epochs) cannot replay an epoch: resuming mid-epoch creates the epoch's
    iterator before the checkpoint's RNG state is restored, so the resumed run saw another order of clips.
    """

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + self.epoch)


class _LengthGroupedSampler(_EpochSeeded, LengthGroupedSampler):
    """``LengthGroupedSampler`` whose shuffle is replayed exactly when training resumes from a checkpoint."""

    def __init__(self, batch_size: int, lengths: list[float], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed

    def __iter__(self):
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=self._generator()))


class _BalancedSampler(_EpochSeeded, WeightedRandomSampler):
    """Class-balanced draws with replacement, replayed exactly when training resumes from a checkpoint."""

    def __init__(self, weights: list[float], seed: int):
        super().__init__(weights, num_samples=len(weights), replacement=True)
        self.seed = seed

    def __iter__(self):
        self.generator = self._generator()
        return super().__iter__()


def _forced(args, eval_dataset=None):
    if args.remove_unused_columns:
        # The audio path column must reach the collator, though the model's forward never takes it.
        args = dataclasses.replace(args, remove_unused_columns=False)
    if args.metric_for_best_model == "unweighted_accuracy" and _eval_corpora(eval_dataset) is not None:
        # Pooled UA would let the corpus with most validation clips pick the checkpoint.
        logger.info("SERTrainer: the validation set holds several corpora; the mean of their UAs (%s) picks the "
                    "best checkpoint and drives early stopping", CORPUS_MEAN_UA)
        args = dataclasses.replace(args, metric_for_best_model=CORPUS_MEAN_UA)
    return args


def _eval_corpora(dataset) -> np.ndarray | None:
    """Each clip's corpus when ``dataset`` (a ``datasets.Dataset``) holds clips of several corpora, else None."""
    if dataset is None or "corpus" not in getattr(dataset, "column_names", ()):
        return None
    return corpora_to_balance(dataset["corpus"], len(dataset))


def _check_loss_weights(dataset, name: str) -> None:
    """Refuse a :data:`~ser_hf.training.data.LOSS_WEIGHT_COLUMN` the loss cannot use, naming the row and value."""
    if dataset is None or LOSS_WEIGHT_COLUMN not in getattr(dataset, "column_names", ()):
        return
    fix = "Give every clip a finite weight >= 0 (not all 0), or remove the column to use the default weights."
    values = list(dataset[LOSS_WEIGHT_COLUMN])
    for row, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or value < 0:
            raise SERError(f"SERTrainer: {name} column {LOSS_WEIGHT_COLUMN!r} holds {value!r} at row {row}; expected "
                           f"a finite number >= 0, the weight of that clip's loss. {fix}")
    if not any(values):
        raise SERError(f"SERTrainer: {name} column {LOSS_WEIGHT_COLUMN!r} is 0 for every clip, so nothing would be "
                       f"learnt. {fix}")


def _check_columns(dataset, name: str, required: Sequence[str]) -> None:
    if dataset is None:
        return
    if len(dataset) == 0:
        raise SERError(f"SERTrainer: {name} is empty (0 clips). Check the split sizes or the corpus filter.")
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise SERError(f"SERTrainer: {name} lacks column(s) {missing}; found {sorted(dataset.column_names)}. "
                       f"Load it with ser_hf.corpora.load_corpus (audio paths and label ids).")


class SERTrainer(Trainer):
    """``Trainer`` for ``AutoModelForAudioClassification`` on datasets of audio paths and label ids.

    Args:
        model: The classifier (or pass ``model_init`` for hyperparameter search).
        args: :class:`~ser_hf.training.arguments.SERTrainingArguments` (plain ``TrainingArguments`` work too,
            with the SER fields at their defaults).
        data_collator: The evaluation collator, usually :class:`~ser_hf.training.data.AudioCollator`.
        train_dataset: Rows with ``audio`` and ``label`` (and ``duration`` for length grouping).
        eval_dataset: Validation rows, speaker-disjoint from training.
        class_names: Emotion names in label-id order; default: the model's ``id2label``.
        train_data_collator: The training collator; default ``data_collator.for_training()`` when it exists.
        compute_metrics: Extra metrics; merged after the SER metrics (UA first), which win on name clashes.
        callbacks: More callbacks; an early-stopping callback is added when ``early_stopping_patience`` is set.
        **kwargs: Passed to ``transformers.Trainer`` (``model_init``, ``processing_class``, ...).
    """

    REQUIRED_COLUMNS = ("audio", "label")
    # compute_loss returns a per-batch mean, so the Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None, *,
                 class_names: Sequence[str] | None = None, train_data_collator=None,
                 compute_metrics: Callable[[Any], dict[str, float]] | None = None, callbacks=None, **kwargs):
        if args is None:
            raise SERError("SERTrainer needs args=SERTrainingArguments(output_dir=...).")
        args = _forced(args, eval_dataset)
        _check_columns(train_dataset, "train_dataset", self.REQUIRED_COLUMNS)
        _check_columns(eval_dataset, "eval_dataset", self.REQUIRED_COLUMNS)
        for dataset, name in ((train_dataset, "train_dataset"), (eval_dataset, "eval_dataset")):
            _check_loss_weights(dataset, name)
        callbacks = list(callbacks or [])
        patience = getattr(args, "early_stopping_patience", None)
        if patience and args.eval_strategy != IntervalStrategy.NO:
            callbacks.append(_EarlyStopping(early_stopping_patience=patience))
        elif patience:
            warnings.warn("early_stopping_patience is set but eval_strategy is 'no' (no validation data?): "
                          "training runs for all epochs. Set eval_strategy/save_strategy to 'epoch'.",
                          UserWarning, stacklevel=2)
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, callbacks=callbacks, **kwargs)
        base = self.accelerator.unwrap_model(self.model)
        self.class_names = list(class_names) if class_names is not None else [
            base.config.id2label[i] for i in range(base.config.num_labels)]
        self.compute_metrics = self._merged_metrics(compute_metrics)
        if train_data_collator is None and hasattr(data_collator, "for_training"):
            train_data_collator = data_collator.for_training()
        self.train_data_collator = train_data_collator or self.data_collator
        if hasattr(self.train_data_collator, "set_epoch"):
            self.add_callback(_CollatorEpoch(self.train_data_collator))
            if args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
                warnings.warn("dataloader_persistent_workers keeps each worker's copy of the training collator from "
                              "the first epoch: every epoch then draws the same crops and augmentation. Leave it off.",
                              UserWarning, stacklevel=2)
        self.class_weights = self._class_weights()
        self.train_dataset = self._with_corpus_weights(self.train_dataset)

    def calibrate(self, eval_dataset=None) -> dict[str, Any]:
        """Fit a softmax temperature on ``eval_dataset`` (default: the validation set) and fold it into the head.

        The classifier's weight and bias are divided by T (:func:`~ser_hf.evaluation.calibration.calibrate_classifier`),
        so the saved checkpoint's ``pipeline()`` scores are calibrated with no extra code; the record goes to
        ``config.ser_hf_calibration`` and is returned (temperature, validation ECE before and after, clips).

        Raises:
            SERError: when there is no validation data to fit on.
        """
        from ser_hf.evaluation.calibration import calibrate_classifier

        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise SERError("SERTrainer.calibrate needs held-out clips: pass eval_dataset (validation speakers), "
                           "never the test speakers.")
        output = self.predict(dataset, metric_key_prefix="calibration")
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        speakers = dataset["speaker"] if "speaker" in dataset.column_names else None
        record = calibrate_classifier(self.accelerator.unwrap_model(self.model), logits, output.label_ids, speakers)
        logger.info("temperature scaling: %s", record)
        return record

    def create_optimizer(self, model=None):
        """The usual optimizer, with layer-wise learning-rate decay when ``layer_lr_decay`` is set.

        Layer ``i`` of ``L`` encoder layers learns at ``learning_rate * decay ** (L - i)``, the embeddings and
        front end at ``decay ** (L + 1)``, the head at the full rate: the lower layers, which hold the most
        general features, move least (as in BEiT/ELECTRA fine-tuning).
        """
        decay = getattr(self.args, "layer_lr_decay", None)
        if decay is None or self.optimizer is not None:
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        model = self.model if model is None else model
        groups = layerwise_parameter_groups(model, self.args.learning_rate, decay, self.args.weight_decay)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer

    def _merged_metrics(self, user: Callable | None) -> Callable[[Any], dict[str, float]]:
        ser = make_compute_metrics(self.class_names)

        def compute_metrics(eval_pred) -> dict[str, float]:
            metrics = {**ser(eval_pred), **self._corpus_metrics(eval_pred)}
            extra = user(eval_pred) if user is not None else {}
            return {**metrics, **{k: v for k, v in extra.items() if k not in metrics}}

        return compute_metrics

    def _corpus_metrics(self, eval_pred) -> dict[str, float]:
        """Each corpus's UA (``unweighted_accuracy_<corpus>``) and their mean (:data:`CORPUS_MEAN_UA`) when the
        clips being evaluated come from several corpora; ``{}`` otherwise."""
        corpora = getattr(self, "_evaluated_corpora", None)
        predictions, references = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        if corpora is None or len(corpora) != len(references):
            return {}
        if predictions.ndim == 2:
            predictions = predictions.argmax(axis=-1)
        labels = len(self.class_names)
        metrics = {f"unweighted_accuracy_{corpus}": corpus_balanced_ua(
                       references[corpora == corpus], predictions[corpora == corpus], labels, corpora=None)
                   for corpus in sorted(set(corpora.tolist()))}
        return {CORPUS_MEAN_UA: corpus_balanced_ua(references, predictions, labels, corpora), **metrics}

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """The Trainer's loop, told each clip's corpus in the order its predictions come (see :meth:`_eval_order`)."""
        dataset = getattr(dataloader, "dataset", None)
        corpora = _eval_corpora(dataset)
        self._evaluated_corpora = None if corpora is None else corpora[self._eval_order(dataset)]
        try:
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                           metric_key_prefix)
        finally:
            self._evaluated_corpora = None

    def _class_weights(self) -> torch.Tensor | None:
        if self.train_dataset is None:
            return None
        labels = np.asarray(self.train_dataset["label"], dtype=np.int64)
        counts = np.bincount(labels, minlength=len(self.class_names))
        missing = [name for name, count in zip(self.class_names, counts) if count == 0]
        if missing:
            warnings.warn(f"No training clips of class(es) {missing} (of {self.class_names}): the model cannot learn "
                          f"them and their recall will be 0. Use speaker-grouped folds stratified by emotion, or drop "
                          f"the class with --emotions.", UserWarning, stacklevel=3)
        if not getattr(self.args, "class_weighted_loss", False):
            return None
        return class_weights(labels, len(self.class_names))

    def _with_corpus_weights(self, dataset):
        """``dataset`` with a :data:`~ser_hf.training.data.LOSS_WEIGHT_COLUMN` when the loss is class-weighted and
        the clips come from several corpora: every (corpus, emotion) cell then weighs the same, so the larger
        corpus does not drive training (as in the linear probe's fit). A column already there is kept."""
        if (dataset is None or not getattr(self.args, "class_weighted_loss", False)
                or LOSS_WEIGHT_COLUMN in dataset.column_names or "corpus" not in dataset.column_names):
            return dataset
        corpora = corpora_to_balance(dataset["corpus"], len(dataset))
        if corpora is None:
            return dataset
        weights = balanced_weights(np.asarray(dataset["label"], dtype=np.int64), len(self.class_names), corpora)
        logger.info("SERTrainer: %d corpora in the training set; every (corpus, emotion) cell weighs the same in "
                    "the loss", len(set(corpora.tolist())))
        return dataset.add_column(LOSS_WEIGHT_COLUMN, weights.tolist())

    def _clip_weights(self, labels: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor | None:
        """Each clip's loss weight: the batch's ``loss_weights`` when given, else its label's class weight."""
        if given is not None:
            return given.to(device=labels.device, dtype=torch.float32)
        return None if self.class_weights is None else self.class_weights.to(labels.device)[labels]

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None):
        """Cross-entropy averaged with each clip's loss weight (the batch's ``loss_weights``, else inverse training
        class frequency when ``class_weighted_loss`` is on)."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        weights = self._clip_weights(labels, inputs.pop("loss_weights", None))
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        loss = weighted_cross_entropy(logits.float(), labels, weights)
        return (loss, outputs) if return_outputs else loss

    def _lengths(self, dataset) -> list[float]:
        column = self.args.length_column_name
        if column not in dataset.column_names:
            raise SERError(f"train_sampling_strategy='group_by_length' needs a {column!r} column of clip lengths; "
                           f"found {sorted(dataset.column_names)}. Add it with "
                           f"ser_hf.training.data.with_durations(dataset) or set length_column_name.")
        return np.asarray(dataset[column], dtype=np.float64).tolist()

    def _get_train_sampler(self, train_dataset=None) -> Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if getattr(self.args, "balanced_sampler", False):
            labels = np.asarray(dataset["label"], dtype=np.int64)
            corpora = corpora_to_balance(dataset["corpus"], len(labels)) if "corpus" in dataset.column_names else None
            return _BalancedSampler(balanced_weights(labels, len(self.class_names), corpora).tolist(), seed)
        if self.args.train_sampling_strategy == "group_by_length":
            # Lengths as a plain list: datasets >= 4 returns a lazy Column, slow to index one by one.
            return _LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                         lengths=self._lengths(dataset), seed=seed)
        return super()._get_train_sampler(train_dataset)

    def _eval_order(self, dataset) -> np.ndarray:
        """The order evaluation visits ``dataset``'s clips in (and returns their predictions in): by duration when
        there is a length column (little padding per batch), else as stored."""
        if self.args.length_column_name in getattr(dataset, "column_names", ()):
            return np.argsort(self._lengths(dataset), kind="stable")
        return np.arange(len(dataset))

    def _get_eval_sampler(self, eval_dataset) -> Sampler | None:
        if eval_dataset is not None and self.args.length_column_name in getattr(eval_dataset, "column_names", ()):
            return _OrderedSampler(self._eval_order(eval_dataset).tolist())
        return super()._get_eval_sampler(eval_dataset)

    def get_train_dataloader(self):
        """The training DataLoader, built with the training collator (crops, augmentation)."""
        eval_collator, self.data_collator = self.data_collator, self.train_data_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = eval_collator


_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def layerwise_parameter_groups(model: nn.Module, learning_rate: float, decay: float, weight_decay: float) -> list[dict]:
    """Optimizer groups with layer-wise learning-rate decay (see :meth:`SERTrainer.create_optimizer`).

    Encoder layers are found by their ``...layers.<i>.`` (wav2vec2 family, Whisper) or ``...layer.<i>.`` (AST)
    names; head parameters (``projector``, ``classifier``, ``layer_weights``) keep the full rate; everything else
    in the backbone (embeddings, convolutional front end, final norms) gets the lowest rate, except final
    norm (``encoder.layer_norm``), which gets the top layer's rate. Biases and norms get no weight decay.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    indices = [int(m.group(1)) for name, _ in named if (m := _LAYER_INDEX.search(name))]
    depth = max(indices) + 1 if indices else 0
    groups: dict[tuple[float, float], list] = {}
    for name, parameter in named:
        match = _LAYER_INDEX.search(name)
        if name.split(".")[0] in ("projector", "classifier", "layer_weights"):
            scale = 1.0
        elif match:
            scale = decay ** (depth - int(match.group(1)))
        elif "encoder.layer_norm." in name:
            scale = decay  # the encoder's final norm sits on top of the last layer
        else:
            scale = decay ** (depth + 1)
        no_decay = parameter.ndim < 2 or "norm" in name
        groups.setdefault((scale, 0.0 if no_decay else weight_decay), []).append(parameter)
    return [{"params": params, "lr": learning_rate * scale, "weight_decay": wd} for (scale, wd), params in groups.items()]
