"""Partial fine-tuning: the top ``k`` encoder layers and the head train on cached inputs of layer ``L - k``.

The frozen lower encoder runs once per clip. Its output, the input of layer ``L - k`` (Whisper: positional
embeddings already added; wav2vec2 family: after the positional convolution), is cached on disk in float16,
keyed like the probe's pooled states (backbone fingerprint, preprocessing, clip bytes) plus the layer
(:mod:`ser_hf.models.layer_inputs`). Then
:class:`TopLayers` (copies of the top ``k`` layers, the final layer norm where the architecture has one, and
the HF head) trains with :class:`~ser_hf.training.trainer.SERTrainer`: class-weighted loss, early stopping on
validation UA, SpecAugment-style time and channel masking of the cached states, optional mixup. The trained
weights are copied back into the full ``AutoModelForAudioClassification``, saved as an ordinary checkpoint.

The head sees exactly what the HF model computes. With ``use_weighted_layer_sum`` (the default here, as for
the probe) it mixes every hidden state: the lower ones are frozen, so their per-clip means are cached beside
the layer input (the weighted sum, projector and classifier are affine, so they commute with the mean over
frames); the top ones come from the training layers. That keeps the middle layers the probe finds best for
emotion, and lets ``head_init: probe`` start from the probe's linear head exactly. ``use_weighted_layer_sum:
false`` reads the last hidden state only.

Supported: Whisper and the wav2vec2 family (wav2vec2, HuBERT, data2vec-audio), both layer-norm placements.
WavLM is refused (its layers pass on a relative position bias computed in the first layer).

Example:
    >>> method = PartialMethod("path/to/whisper-base", ["neutral", "happy", "sad", "angry"],
    ...                        ModelArguments(max_source_positions=300, train_top_layers=1),
    ...                        SERTrainingArguments(output_dir="out", num_train_epochs=10))  # doctest: +SKIP
    >>> method.fit(split["train"], split["validation"]).save("out")  # doctest: +SKIP
    >>> method.cache_report["bytes"], method.training_report["seconds_per_epoch"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn
from transformers import set_seed

from ser_hf.audio import AudioPreprocessor
from ser_hf.errors import ModelError, SERError
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.models.layer_inputs import (
    CachedInputs,
    final_norm,
    forward_to_layer,
    layer_inputs,
)
from ser_hf.models.pooling import DTYPES, backbone_fingerprint, resolve_device
from ser_hf.training.data import loss_weights, with_durations
from ser_hf.training.finetune import check_split
from ser_hf.training.probe import ProbeSettings
from ser_hf.training.top_layers import PARTIAL_MODEL_TYPES, TopLayers, first_trained_layer
from ser_hf.training.trainer import SERTrainer

__all__ = ["PARTIAL_MODEL_TYPES", "PartialMethod", "PartialTrainer", "StateCollator", "StateMasking", "TopLayers",
           "first_trained_layer"]

logger = logging.getLogger(__name__)

# --- batches of cached states -------------------------------------------------------------------------


@dataclass
class StateMasking:
    """SpecAugment-style masking of cached states: time spans and channel bands set to zero.

    Each clip gets ``int(prob * size / length + u)`` masks (``u`` uniform in [0, 1)), as wav2vec2's SpecAugment
    draws them, on its own frames only.
    """

    time_prob: float = 0.05
    time_length: int = 10
    feature_prob: float = 0.0
    feature_length: int = 16

    def __call__(self, states: np.ndarray, rng: np.random.Generator) -> None:
        for axis, prob, length in ((0, self.time_prob, self.time_length), (1, self.feature_prob, self.feature_length)):
            size = states.shape[axis]
            if prob <= 0 or size == 0:
                continue
            width = min(length, size)
            for _ in range(int(prob * size / width + rng.random())):
                start = int(rng.integers(0, size - width + 1))
                if axis == 0:
                    states[start:start + width] = 0
                else:
                    states[:, start:start + width] = 0


@dataclass
class StateCollator:
    """Batches of cached states, zero-padded with a frame mask where lengths differ; masking/mixup in training.

    Args:
        store: Audio path -> ``(states, lower)`` of that clip (``lower`` None without the weighted sum).
        masking: Training-time masking of the states (None: off).
        mixup_alpha: Training-time mixup within the batch, weights drawn from Beta(alpha, alpha) (None: off).
        seed: Draws depend on ``(seed, epoch, the batch's clips)`` only.
    """

    store: dict[str, tuple[np.ndarray, np.ndarray | None]]
    masking: StateMasking | None = None
    mixup_alpha: float | None = None
    seed: int = 0
    train: bool = False
    epoch: int = 0

    def for_training(self) -> StateCollator:
        return dataclasses.replace(self, train=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        paths = [str(row["audio"]) for row in rows]
        unknown = [path for path in paths if path not in self.store]
        if unknown:
            raise SERError(f"StateCollator: no cached states for {unknown[:2]}; compute them with layer_inputs first.")
        items = [self.store[path] for path in paths]
        lengths = [state.shape[0] for state, _ in items]
        states = np.zeros((len(rows), max(lengths), items[0][0].shape[1]), dtype=np.float32)
        # keyed by the clips' names, not their folders: a corpus moved elsewhere draws the same (see training.data)
        names = "\n".join(os.path.basename(path) for path in paths)
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(os.fsencode(names)),
                                     int(os.environ.get("RANK", "0"))]) if self.train else None
        for row, ((state, _), length) in enumerate(zip(items, lengths)):
            states[row, :length] = state
            if rng is not None and self.masking is not None:
                self.masking(states[row, :length], rng)
        mask = np.arange(states.shape[1])[None, :] < np.asarray(lengths)[:, None]
        lower = np.stack([low for _, low in items]).astype(np.float32) if items[0][1] is not None else None
        batch: dict[str, torch.Tensor] = {}
        if "label" in rows[0] and rows[0]["label"] is not None:
            batch["labels"] = torch.tensor([int(row["label"]) for row in rows], dtype=torch.long)
            if (weights := loss_weights(rows)) is not None:
                batch["loss_weights"] = weights
        if rng is not None and self.mixup_alpha and len(rows) > 1:
            weight, other = rng.beta(self.mixup_alpha, self.mixup_alpha, size=len(rows)), rng.permutation(len(rows))
            states = weight[:, None, None] * states + (1 - weight[:, None, None]) * states[other]
            lower = None if lower is None else weight[:, None, None] * lower + (1 - weight[:, None, None]) * lower[other]
            mask = mask | mask[other]
            batch["mix_labels"], batch["mix_weight"] = batch["labels"][other], torch.tensor(weight, dtype=torch.float32)
            if "loss_weights" in batch:
                batch["mix_loss_weights"] = batch["loss_weights"][other]
        batch["states"] = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32))
        if not mask.all():
            batch["attention_mask"] = torch.from_numpy(mask)
        if lower is not None:
            batch["lower"] = torch.from_numpy(np.ascontiguousarray(lower, dtype=np.float32))
        return batch


class PartialTrainer(SERTrainer):
    """:class:`SERTrainer` whose loss also takes mixed batches (``mix_labels``, ``mix_weight`` and, with loss
    weights, ``mix_loss_weights`` from the collator)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        other, weight = inputs.pop("mix_labels", None), inputs.pop("mix_weight", None)
        other_weights = inputs.pop("mix_loss_weights", None)
        if other is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        own_weights = inputs.pop("loss_weights", None)
        outputs = model(**inputs)
        logits = outputs["logits"].float()
        ones = weight.new_ones(len(labels))
        own = self._clip_weights(labels, own_weights)
        own = ones if own is None else own
        mixed_in = self._clip_weights(other, other_weights)
        mixed_in = ones if mixed_in is None else mixed_in
        ce = nn.functional.cross_entropy
        # Weighted mean of the two targets' losses, each with its clip's weight, normalised like the unmixed loss.
        losses = weight * own * ce(logits, labels, reduction="none") + \
            (1 - weight) * mixed_in * ce(logits, other, reduction="none")
        loss = losses.sum() / (weight * own + (1 - weight) * mixed_in).sum()
        return (loss, outputs) if return_outputs else loss


# --- the method -------------------------------------------------------------------------------------


class PartialMethod:
    """Partial fine-tuning behind the ``fit`` / ``predict_proba`` / ``save`` interface (``mode: partial``).

    Args:
        checkpoint: Backbone checkpoint (local directory or Hub id; presets resolved by the caller).
        labels: Canonical emotion names in label-id order.
        model_options: :class:`~ser_hf.training.arguments.ModelArguments` (or ``ModelOptions``);
            ``use_weighted_layer_sum`` unset means on, as for the probe.
        training_args: :class:`~ser_hf.training.arguments.SERTrainingArguments` (epochs, learning rate, batch
            sizes, early stopping, ``partial_mask_*``, ``partial_mixup_alpha``, ``head_init``).
        top_layers: ``k``, the number of top encoder layers that train (default ``model_options.train_top_layers``).
        preprocessor: Audio cleaning before the feature extractor (part of the cache key).
        cache_dir: Root of the layer-input cache (default: the probe's ``embedding_cache_dir`` default).
        batch_size: Clips per frozen forward pass.
        progress: Progress bars while caching.
        device: Where the frozen forward runs (``auto``: the GPU when there is one); training goes where the
            Trainer puts it (the GPU when there is one).
        dtype: Precision of the frozen forward (float32, bfloat16, float16); cached apart from float32.
        warm_start: How ``head_init: probe`` fits the starting head (:class:`~ser_hf.training.probe.ProbeSettings`:
            the run's ``probe_inner_folds``, ``probe_layer_mixes``, ``probe_speed_copies``, ``probe_noise_copies``;
            copies' layer inputs are cached too). Default: the default linear probe without copies.

    Attributes:
        cache_report: Clips (and training copies) cached, clips computed in this method, seconds spent computing
            them, bytes on disk.
        training_report: Epochs run, training seconds, seconds per epoch, best validation UA.
        trainer: The :class:`PartialTrainer` of the last :meth:`fit`.

    Raises:
        SERError: ``train_top_layers`` outside 1..L (the message names L), an unsupported architecture, or
            ``use_lora`` / ``resume_from_checkpoint`` (not available in this mode).
    """

    def __init__(self, checkpoint, labels: Sequence[str], model_options, training_args, top_layers: int | None = None,
                 preprocessor: AudioPreprocessor | None = None, cache_dir=None, batch_size: int = 8,
                 progress: bool = True, device: str | None = "auto", dtype: str = "float32",
                 warm_start: ProbeSettings | None = None):
        if getattr(training_args, "use_lora", False):
            raise SERError("use_lora is for mode: finetune; mode: partial trains the top layers' own weights. "
                           "Set use_lora: false or mode: finetune.")
        if getattr(training_args, "resume_from_checkpoint", None) not in (None, False, "", "false", "none"):
            raise SERError("resume_from_checkpoint is not available with mode: partial: rerun instead (the cached "
                           "layer inputs make the frozen part free the second time).")
        self.labels = list(labels)
        self.args = training_args
        self.warm_start = warm_start
        self.top_layers = top_layers if top_layers is not None else getattr(model_options, "train_top_layers", 1)
        weighted = model_options.use_weighted_layer_sum
        options = dataclasses.replace(model_options, use_weighted_layer_sum=True if weighted is None else weighted)
        set_seed(training_args.seed)  # the new head's initial weights come from the global RNG
        self.model, self.feature_extractor = build_model(checkpoint, self.labels, options)
        self.model.requires_grad_(False)
        if self.model.config.use_weighted_layer_sum:
            # from_pretrained leaves this new parameter uninitialised (transformers 5.25): start from equal weights.
            with torch.no_grad():
                self.model.layer_weights.fill_(1.0 / self.model.layer_weights.numel())
        self.layer = first_trained_layer(self.model, self.top_layers)
        self.preprocessor = preprocessor or AudioPreprocessor(sampling_rate=self.feature_extractor.sampling_rate)
        self.cache_dir, self.batch_size, self.progress = cache_dir, batch_size, progress
        self.device, self.dtype = device, dtype
        self._encoder, self._fingerprint, self._sizes = None, None, {}
        self.top: TopLayers | None = None
        self.trainer: PartialTrainer | None = None
        self.cache_report: dict[str, Any] = {"clips": 0, "computed": 0, "seconds": 0.0, "bytes": 0, "folder": None}
        self.training_report: dict[str, Any] = {}
        self.head_fit_record: dict | None = None
        #: Temperature scaling fitted on the validation speakers by the last fit (None without validation).
        self.calibration: dict | None = None

    def encoder(self) -> nn.Module:
        """The model for the frozen forward: itself on a float32 CPU run, else a moved copy (fingerprinted once)."""
        if self._encoder is None:
            if self.dtype not in DTYPES:
                raise SERError(f"embedding_dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}.")
            device, dtype = resolve_device(self.device), DTYPES[self.dtype]
            cpu32 = device.type == "cpu" and dtype == torch.float32
            self._encoder = self.model if cpu32 else copy.deepcopy(self.model).to(device=device, dtype=dtype)
            # Once, before training: the copied-back top layers must not change the key (they never change the input).
            self._fingerprint = backbone_fingerprint(self._encoder, self.feature_extractor)
            logger.info("partial: frozen forward on %s (%s), layers %d.. train", device, self.dtype, self.layer)
        return self._encoder

    def inputs(self, paths: Sequence[str], preprocessor=None) -> CachedInputs:
        """The cached inputs of the first trained layer for ``paths`` (computed where missing; see ``cache_report``),
        made with ``preprocessor`` (default: the run's; a training copy's one caches apart)."""
        preprocessor = preprocessor or self.preprocessor
        cached = layer_inputs(self.encoder(), self.feature_extractor, list(paths), self.layer,
                              fingerprint=self._fingerprint, preprocessor=preprocessor, cache_dir=self.cache_dir,
                              batch_size=self.batch_size, progress=self.progress)
        self._sizes.update(((preprocessor.fingerprint(), str(path)), size) for path, size in zip(paths, cached.sizes))
        report = self.cache_report
        report.update(clips=len(self._sizes), bytes=sum(self._sizes.values()), folder=str(cached.folder))
        report["computed"] += cached.computed
        report["seconds"] = round(report["seconds"] + cached.seconds, 2)
        return cached

    def store(self, dataset: datasets.Dataset, preprocessor=None) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Audio path -> (states, pooled lower states or None) for the collator (``preprocessor``: see :meth:`inputs`)."""
        paths = [str(path) for path in dataset["audio"]]
        cached = self.inputs(paths, preprocessor)
        lower = cached.lower if self.model.config.use_weighted_layer_sum else [None] * len(paths)
        return dict(zip(paths, zip(cached.states, lower)))

    def build_top(self) -> TopLayers:
        """:class:`TopLayers` for this model, checked against the full model's logits on a probe clip.

        Which hidden state the weighted sum takes last (before or after the final norm) differs between
        architectures and transformers versions; the variant that reproduces the model is kept.
        """
        rate = self.feature_extractor.sampling_rate
        wave = (0.1 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)
        self.model.eval()
        with torch.no_grad():
            expected = self.model(**self.feature_extractor([wave], sampling_rate=rate, return_tensors="pt")).logits
        (state, lower), = forward_to_layer(self.model, self.feature_extractor, [wave], self.layer)
        variants = [True, False] if self.model.config.use_weighted_layer_sum and final_norm(self.model) else [True]
        for normed in variants:
            top = TopLayers(self.model, self.layer, last_entry_normed=normed).eval()
            with torch.no_grad():
                logits = top(torch.from_numpy(state)[None], lower=torch.from_numpy(lower)[None]).logits
            if torch.allclose(logits, expected, atol=1e-4 * max(1.0, float(expected.abs().max())), rtol=1e-4):
                return top
        raise ModelError(f"mode: partial could not reproduce {self.model.config.model_type}'s output from the input "
                         f"of layer {self.layer} (transformers changed how its encoder computes?). Use mode: finetune.")

    def fit(self, train: datasets.Dataset, validation: datasets.Dataset | None = None) -> PartialMethod:
        """Cache the layer inputs of ``train`` (and ``validation``), then train the top layers and head on them.

        With ``validation``, evaluate every epoch and keep the best UA (early stopping with
        ``early_stopping_patience``). The full model holds the trained weights afterwards.
        """
        from ser_hf.training.finetune import FinetuneMethod

        check_split(train, "train", self.labels)
        if validation is not None:
            check_split(validation, "validation", self.labels)
        self.top = self.build_top()
        store = self.store(train)
        if validation is not None:
            store.update(self.store(validation))
        if getattr(self.args, "head_init", None) == "probe":
            self.top.to(self.args.device)  # where the Trainer will put it: the GPU when there is one
            self.init_head_from_probe(train, store)
        args = self.args
        masking = StateMasking(args.partial_mask_time_prob, args.partial_mask_time_length,
                               args.partial_mask_feature_prob, args.partial_mask_feature_length)
        collator = StateCollator(store, masking=masking, mixup_alpha=args.partial_mixup_alpha, seed=args.seed)
        # The same output folder and evaluation switches as full fine-tuning (it only reads self.args).
        training_args = FinetuneMethod.training_arguments(self, train, validation is not None)
        set_seed(args.seed)
        trainer = PartialTrainer(model=self.top, args=training_args, data_collator=collator,
                                 train_dataset=with_durations(train),
                                 eval_dataset=None if validation is None else with_durations(validation),
                                 class_names=self.labels)
        initial = self._starting_point(trainer) if validation is not None else None
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        self.trainer, self.top = trainer, trainer.model
        kept = "best epoch" if validation is not None else "last epoch"
        refitted = False
        if initial is not None and not self._better(trainer.state.best_metric, initial[0]):
            # No epoch beat the starting point on validation: keep it (early stopping counts it as epoch 0).
            self.top.load_state_dict(initial[1])
            kept = "starting point"
            logger.warning("partial: no epoch beat the starting point's validation %s (%.4f); keeping it.",
                           trainer.args.metric_for_best_model, initial[0])
            if getattr(self.args, "head_init", None) == "probe":
                # The top layers are the pretrained ones again, so the model is the probe: its head is refitted on
                # the validation speakers too, as the probe recipe fits it (they were held out only to choose an
                # epoch). On RAVDESS-8, whisper-base, 4 of 6 folds keep the start; unrefitted, the first fold's
                # head scored 80.5 UA against the probe's 85.9 (benchmarks/results/partial_finetune.json).
                self.init_head_from_probe(datasets.concatenate_datasets([train, validation]), store)
                refitted = True
        self.calibration = None
        if validation is not None and not refitted:
            # Folded into the head before it is copied into the model, which shares its config (the record). A
            # refitted probe head carries the temperature its own inner CV chose; validation is its training data.
            self.calibration = trainer.calibrate()
        self.top.load_into(self.model)
        epochs = float(trainer.state.epoch or 0)
        self.training_report = {
            "epochs": round(epochs, 2), "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / epochs, 2) if epochs else None,
            "starting_validation_ua": None if initial is None else initial[0],
            "best_validation_ua": trainer.state.best_metric, "kept": kept,
            "head_refitted_with_validation": refitted, "device": str(trainer.args.device),
            "trainable_parameters": sum(p.numel() for p in self.top.parameters()),
        }
        logger.info("partial: %s", self.training_report)
        return self

    @staticmethod
    def _starting_point(trainer: PartialTrainer) -> tuple[float, dict[str, torch.Tensor]]:
        """The validation metric of the untrained top (e.g. the probe's head) and a copy of its weights."""
        metric = trainer.args.metric_for_best_model
        value = trainer.evaluate()[metric if metric.startswith("eval_") else f"eval_{metric}"]
        return value, {name: tensor.detach().clone() for name, tensor in trainer.model.state_dict().items()}

    def _better(self, value: float | None, than: float) -> bool:
        if value is None:
            return False
        return value > than if self.trainer.args.greater_is_better else value < than

    def init_head_from_probe(self, train: datasets.Dataset, store) -> None:
        """``head_init: probe``: the probe's linear head, fitted on the pooled states the head starts from (and on
        those of the probe recipe's training copies of the clips, ``warm_start``)."""
        from ser_hf.training.probe import clip_corpora, fit_linear_head, warm_start_settings

        settings = warm_start_settings(self.warm_start, self.top.projector.out_features, self.args.seed)
        stores = [store, *(self.store(train, copy) for copy, _ in settings.copy_preprocessors(self.preprocessor))]
        features, *copies = [self._batched(train["audio"], states, lambda batch: self.top.pooled_features(**batch))
                             for states in stores]
        head = fit_linear_head(features, np.asarray(train["label"]), train["speaker"], len(self.labels), settings,
                               copies, clip_corpora(train))
        state = head.folded_state()
        with torch.no_grad():
            for name in ("projector.weight", "projector.bias", "classifier.weight", "classifier.bias"):
                self.top.get_parameter(name).copy_(state[name])
            if self.top.weighted:
                self.top.layer_weights.copy_(state["layer_weights"])
        self.head_fit_record = head.fit_record
        logger.info("partial: head initialised from the probe: %s", head.fit_record)

    def _batched(self, paths, store, run) -> np.ndarray:
        """``run`` over eval batches of cached states (ordered by length), rows back in the order of ``paths``."""
        paths = [str(path) for path in paths]
        collate, top = StateCollator(store), self.top.eval()
        device = next(top.parameters()).device
        order = np.argsort([store[path][0].shape[0] for path in paths], kind="stable")
        size, results = self.args.per_device_eval_batch_size, [None] * len(paths)
        with torch.no_grad():
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                batch = collate([{"audio": paths[i]} for i in rows])
                output = run({k: v.to(device) for k, v in batch.items()}).float().cpu().numpy()
                for row, value in zip(rows, output):
                    results[row] = value
        return np.stack(results)

    def predict_proba(self, dataset: datasets.Dataset) -> np.ndarray:
        """Class probabilities ``(clips, labels)`` from the cached layer inputs (computed where missing)."""
        if self.top is None:
            raise SERError("PartialMethod.predict_proba: call fit() first.")
        check_split(dataset, "prediction", self.labels, need_labels=False)
        logits = self._batched(dataset["audio"], self.store(dataset), lambda batch: self.top(**batch).logits)
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()

    def save(self, out_dir, replace: bool = False) -> Path:
        """Save the full model with the trained layers and head: an ordinary ``AutoModelForAudioClassification``."""
        if self.trainer is None:
            raise SERError("PartialMethod.save: call fit() first.")
        out = Path(out_dir)
        if self.trainer.args.should_save:
            save_checkpoint(self.model, self.feature_extractor, out, replace=replace)
        self.trainer.accelerator.wait_for_everyone()
        return out
