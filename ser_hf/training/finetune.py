"""Full fine-tuning behind the ``fit`` / ``predict_proba`` / ``save`` interface of the frozen probe.

:class:`FinetuneMethod` builds the classifier with :func:`~ser_hf.models.factory.build_model`, trains it with
:class:`~ser_hf.training.trainer.SERTrainer` on batches from :class:`~ser_hf.training.data.AudioCollator`
(random crops of ``max_duration`` seconds and augmentation in training, whole clips in evaluation, dynamic
padding) and saves an ordinary ``AutoModelForAudioClassification`` checkpoint, so ``ser-hf train`` and
``ser-hf cv`` run it with ``--mode finetune``.

Checkpoints of a ``fit`` go to ``output_dir/checkpoints/split-<digest>``, the digest naming the training clips:
cross-validation trains one model per fold under the same ``output_dir``, and ``resume_from_checkpoint=last``
must find the newest checkpoint of the same fold.

Example:
    >>> from ser_hf.training.arguments import ModelArguments, SERTrainingArguments
    >>> method = FinetuneMethod("path/to/wav2vec2-base", ["neutral", "happy", "sad", "angry"], ModelArguments(),
    ...                         SERTrainingArguments(output_dir="out", num_train_epochs=10))  # doctest: +SKIP
    >>> method.fit(split["train"], split["validation"]).save("out")  # doctest: +SKIP
    >>> method.predict_proba(split["test"]).shape  # doctest: +SKIP
    (80, 4)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import set_seed
from transformers.trainer_utils import IntervalStrategy

from ser_hf.audio import AudioPreprocessor
from ser_hf.errors import SERError
from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
from ser_hf.training.data import AudioCollator, Augmentation, with_durations
from ser_hf.training.lora import apply_lora, merge_lora
from ser_hf.training.probe import ProbeSettings
from ser_hf.training.resume import check_resume_checkpoint, resolve_resume_checkpoint
from ser_hf.training.trainer import SERTrainer

__all__ = ["FinetuneMethod", "check_split"]

logger = logging.getLogger(__name__)


def check_split(dataset: datasets.Dataset, split: str, labels: Sequence[str], need_labels: bool = True) -> None:
    """Raise :class:`SERError` if ``dataset`` is empty, lacks columns, or has labels the model does not know.

    Args:
        dataset: Rows with ``audio`` and (if ``need_labels``) ``label`` ids.
        split: Its name for messages (``"train"``, ``"validation"``, ...).
        labels: The model's emotion names in label-id order.
        need_labels: Whether a ``label`` column is required (prediction does not need one).
    """
    if len(dataset) == 0:
        raise SERError(f"The {split} split is empty (0 clips). Check test_size/validation_size, the emotions filter "
                       f"and that the corpus folder holds audio.")
    required = ["audio", "label"] if need_labels else ["audio"]
    missing = [name for name in required if name not in dataset.column_names]
    if missing:
        raise SERError(f"The {split} data lacks column(s) {missing}; found {sorted(dataset.column_names)}. Load it "
                       f"with ser_hf.corpora.load_corpus.")
    if "label" not in dataset.column_names:
        return
    ids = sorted(set(np.asarray(dataset["label"], dtype=np.int64).tolist()))
    feature = dataset.features["label"]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    if names is None:
        outside = [i for i in ids if not 0 <= i < len(labels)]
        if outside:
            raise SERError(f"The {split} data has label ids {outside} that the model does not know; it has "
                           f"{len(labels)} labels {list(labels)} (ids 0..{len(labels) - 1}).")
        return
    unknown = [names[i] for i in ids if names[i] not in labels]
    if unknown:
        raise SERError(f"The {split} data has label(s) {unknown} that the model does not know; the model's labels are "
                       f"{list(labels)}. Keep only those emotions (e.g. --emotions {','.join(labels)}) or train a "
                       f"model that has these labels.")
    moved = [f"id {i} is {names[i]!r} in the data but {labels[i] if i < len(labels) else None!r} for the model"
             for i in ids if i >= len(labels) or labels[i] != names[i]]
    if moved:
        raise SERError(f"The {split} data numbers its labels differently from the model ({'; '.join(moved)}). "
                       f"Reorder them: dataset.align_labels_with_mapping(model.config.label2id, 'label').")


def _split_digest(train: datasets.Dataset) -> str:
    paths = sorted(str(item) for item in train["audio"])
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:10]


def _keep_every_layer(model: torch.nn.Module) -> None:
    """Switch layerdrop off where the head sums every hidden layer.

    With ``use_weighted_layer_sum``, a layer skipped by layerdrop leaves its hidden state out of the stack the
    layer weights multiply, and the forward pass fails on a shape mismatch (transformers 5.24, all families).
    """
    config = model.config
    name = "encoder_layerdrop" if config.model_type == "whisper" else "layerdrop"
    if not getattr(config, "use_weighted_layer_sum", False) or not getattr(config, name, 0.0):
        return
    warnings.warn(f"use_weighted_layer_sum=True cannot train with {name}={getattr(config, name)} (a skipped layer "
                  f"breaks the weighted sum): {name} set to 0 for fine-tuning.", UserWarning, stacklevel=3)
    setattr(config, name, 0.0)
    if config.model_type == "whisper":
        model.encoder.layerdrop = 0.0  # WhisperEncoder copies the value at construction


class FinetuneMethod:
    """Fine-tune a pretrained speech encoder (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper, AST) for SER.

    Args:
        checkpoint: Backbone checkpoint (local directory or Hub id; presets resolved by the caller).
        labels: Canonical emotion names in label-id order.
        model_options: :class:`~ser_hf.models.factory.ModelOptions` (or ``ModelArguments``): freezing, dropout,
            SpecAugment, Whisper's ``max_source_positions``.
        training_args: :class:`~ser_hf.training.arguments.SERTrainingArguments`.
        preprocessor: Audio cleaning. Its ``max_duration`` becomes a *random* crop in training; evaluation and
            prediction use whole clips.
        warm_start: How ``head_init: probe`` fits its head (:class:`~ser_hf.training.probe.ProbeSettings`; the
            run's ``probe_inner_folds``, ``probe_layer_mixes``, ``probe_speed_copies`` and ``probe_noise_copies``).
            Default: the default linear probe without copies.

    Attributes:
        labels: The emotion names, as in ``model.config.id2label``.
        model: The classifier (trained after :meth:`fit`).
        trainer: The :class:`SERTrainer` of the last :meth:`fit` (``None`` before).
    """

    def __init__(self, checkpoint, labels: Sequence[str], model_options: ModelOptions, training_args,
                 preprocessor: AudioPreprocessor | None = None, warm_start: ProbeSettings | None = None):
        self.checkpoint = str(checkpoint)
        self.warm_start = warm_start
        #: A fold of a CV: ``resume_from_checkpoint: last`` starts a fold that has no checkpoint yet afresh.
        self.fold_of_cv = False
        self.labels = list(labels)
        self.options = model_options
        self.args = training_args
        preprocessor = preprocessor or AudioPreprocessor(sampling_rate=16000)
        self.max_duration = preprocessor.max_duration
        self.preprocessor = dataclasses.replace(preprocessor, max_duration=None)
        self.model, self.feature_extractor = self.build()
        self.collator = AudioCollator(self.feature_extractor, self.preprocessor, max_duration=self.max_duration,
                                      augmentation=Augmentation.from_args(training_args), seed=training_args.seed)
        self.trainer: SERTrainer | None = None
        #: Temperature scaling fitted on the validation speakers by the last fit (None without validation).
        self.calibration: dict | None = None
        #: The choice of ``head_init: probe``'s linear fit (None without it).
        self.head_fit_record: dict | None = None
        self._warn_whisper_crop()

    def build(self):
        """A fresh ``(model, feature_extractor)`` from the checkpoint, with LoRA adapters if asked for."""
        # The new head's initial weights come from the global RNG: seed it, or the same run started in another
        # process state (after other work, or as the reference of a resumed run) trains another model.
        set_seed(self.args.seed)
        model, extractor = build_model(self.checkpoint, self.labels, self.options)
        _keep_every_layer(model)
        if self.args.use_lora:
            model = apply_lora(model, self.args)
        return model, extractor

    def _warn_whisper_crop(self) -> None:
        chunk = getattr(self.feature_extractor, "chunk_length", None)
        if chunk is not None and self.max_duration is not None and self.max_duration > chunk:
            warnings.warn(f"max_duration={self.max_duration} s is longer than the Whisper input ({chunk} s, "
                          f"max_source_positions={chunk * 50}): clips are cut to {chunk} s. Raise "
                          f"max_source_positions to {int(np.ceil(self.max_duration)) * 50}.", UserWarning, stacklevel=3)

    def training_arguments(self, train: datasets.Dataset, has_validation: bool):
        """The run's arguments with this fit's checkpoint folder, and evaluation switched on/off by validation data."""
        args = self.args
        changes = {"output_dir": str(Path(args.output_dir) / "checkpoints" / f"split-{_split_digest(train)}")}
        if has_validation and args.eval_strategy == IntervalStrategy.NO:
            # Model selection on UA is the point of a validation split: evaluate and keep the best epoch.
            changes.update(eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True)
        elif not has_validation and (args.eval_strategy != IntervalStrategy.NO or args.load_best_model_at_end):
            logger.warning("No validation data: evaluation, best-checkpoint selection and early stopping are off.")
            changes.update(eval_strategy="no", load_best_model_at_end=False)
        return dataclasses.replace(args, **changes)

    def make_trainer(self, train: datasets.Dataset, validation: datasets.Dataset | None = None,
                     model_init: Callable[..., torch.nn.Module] | None = None) -> SERTrainer:
        """A :class:`SERTrainer` for these splits (``model_init``: a fresh model per hyperparameter trial)."""
        check_split(train, "train", self.labels)
        if validation is not None:
            check_split(validation, "validation", self.labels)
            validation = with_durations(validation)
        return SERTrainer(model=None if model_init else self.model, model_init=model_init,
                          args=self.training_arguments(train, validation is not None), data_collator=self.collator,
                          train_dataset=with_durations(train), eval_dataset=validation,
                          processing_class=self.feature_extractor, class_names=self.labels)

    def fit(self, train: datasets.Dataset, validation: datasets.Dataset | None = None) -> FinetuneMethod:
        """Fine-tune on ``train``; with ``validation``, evaluate every epoch and keep the best UA (early stopping).

        Raises:
            SERError: for an empty split, labels the model does not know, or a ``resume_from_checkpoint`` of
                another model.
        """
        if getattr(self.args, "head_init", None) == "probe":
            self.init_head_from_probe(train)
        trainer = self.make_trainer(train, validation)
        resume = resolve_resume_checkpoint(self.args.resume_from_checkpoint, trainer.args.output_dir,
                                           missing_ok=self.fold_of_cv)
        if resume is not None:
            check_resume_checkpoint(resume, trainer.accelerator.unwrap_model(trainer.model))
        trainer.train(resume_from_checkpoint=resume)
        self.trainer, self.model = trainer, trainer.model
        if validation is not None:
            # Temperature scaling on the validation speakers, folded into the classifier: pipeline() scores
            # of the saved checkpoint are the calibrated ones (the argmax, so every accuracy, is unchanged).
            self.calibration = trainer.calibrate()
        return self

    def init_head_from_probe(self, train: datasets.Dataset) -> None:
        """Stage one of two-stage fine-tuning: the probe's linear head on the still-frozen backbone's states.

        The encoder then starts training under a head that already separates the emotions, instead of
        back-propagating a random head's gradients into it during the first epochs. The head is the one the
        probe recipe would fit (``warm_start``): its inner folds, layer mixes and training copies of the clips.
        """
        from ser_hf.models.pooling import pool_waves
        from ser_hf.training.probe import clip_corpora, fit_linear_head, load_head_into_model, warm_start_settings

        if not getattr(self.model.config, "use_weighted_layer_sum", False) or self.args.use_lora:
            raise SERError("head_init: probe needs use_weighted_layer_sum: true (the probe's head mixes every layer) "
                           "and no LoRA; set use_weighted_layer_sum: true or drop head_init.")
        check_split(train, "train", self.labels)
        settings = warm_start_settings(self.warm_start, self.model.projector.out_features, self.args.seed)
        paths = list(train["audio"])
        preprocessors = [self.preprocessor, *(copy for copy, _ in settings.copy_preprocessors(self.preprocessor))]
        features, *copies = [pool_waves(self.model, self.feature_extractor, [preprocessor(path) for path in paths],
                                        self.args.per_device_eval_batch_size) for preprocessor in preprocessors]
        head = fit_linear_head(features, np.asarray(train["label"]), train["speaker"], len(self.labels), settings,
                               copies, clip_corpora(train))
        load_head_into_model(head, self.model)
        self.head_fit_record = head.fit_record
        logger.info("head initialised from the probe: %s", head.fit_record)

    def predict_proba(self, dataset: datasets.Dataset) -> np.ndarray:
        """Class probabilities ``(clips, labels)`` of whole clips, batched in order of duration (little padding)."""
        check_split(dataset, "prediction", self.labels, need_labels=False)
        audio = list(dataset["audio"])
        order = np.argsort(np.asarray(with_durations(dataset)["duration"], dtype=np.float64), kind="stable")
        model = self.model.eval()
        device = next(model.parameters()).device
        batch_size = self.args.per_device_eval_batch_size
        probabilities = np.zeros((len(audio), len(self.labels)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = self.collator([{"audio": audio[i]} for i in rows])
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                probabilities[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return probabilities

    def save(self, out_dir, replace: bool = False) -> Path:
        """Save an ordinary safetensors checkpoint (LoRA merged) that ``pipeline("audio-classification")`` loads.

        With several processes (``accelerate launch``) only the main one writes; the others wait for it.
        """
        if self.trainer is None:
            raise SERError("FinetuneMethod.save: call fit() first.")
        self.model = merge_lora(self.model)
        out = Path(out_dir)
        if self.trainer.args.should_save:
            save_checkpoint(self.model, self.feature_extractor, out, replace=replace)
        self.trainer.accelerator.wait_for_everyone()
        return out
