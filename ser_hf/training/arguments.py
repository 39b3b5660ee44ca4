"""The four argument groups of every run: data, model, training and probe, each a dataclass with help text.

The data group, :class:`~ser_hf.data_arguments.DataArguments`, is defined on its own (it needs nothing of
training) and importable from here too. Training (:class:`SERTrainingArguments`) is what the Trainer reads
(fine-tuning, partial fine-tuning); the frozen probe, which never runs the Trainer, has its own group
(:class:`ProbeArguments`).

``HfArgumentParser((DataArguments, ModelArguments, SERTrainingArguments, ProbeArguments))`` turns them into
command line flags; recipes are YAML files of the same keys (see :mod:`ser_hf.training.recipes`).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from transformers import TrainingArguments

from ser_hf._output_folders import check_folder_path
from ser_hf.data_arguments import DataArguments
from ser_hf.data_arguments import help_metadata as _help
from ser_hf.errors import SERError
from ser_hf.models.factory import LAYER_SIZE, ModelOptions
from ser_hf.ranges import (
    COUNT,
    MAX_COPIES,
    NOISE_SNR,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    PROBABILITY,
    SEED,
    SPEED_FACTOR,
    UNIT,
    Range,
    check_ranges,
)
from ser_hf.training.data import Augmentation
from ser_hf.training.linear_probe import DEFAULT_LAYER_MIXES, LAYER_MIXES
from ser_hf.training.probe import SPREAD_NEEDS_ADAPTATION, ProbeSettings

__all__ = ["TRAINING_RANGES", "DataArguments", "ModelArguments", "ProbeArguments", "SERTrainingArguments"]


BETA = Range(0, 1, high_open=True, noun="a number")
DECIBELS = Range(-120, 120, noun="a level in dB")
# Upper bounds where a typo would spawn or allocate without limit (processes, prefetched batches, adapters).
WORKERS = Range(0, 256, integer=True, noun="an integer")

#: Ranges of the numeric fields SERTrainingArguments inherits from transformers' TrainingArguments. Fields a
#: transformers version lacks are skipped.
TRAINING_RANGES: dict[str, Range] = {
    "learning_rate": POSITIVE, "num_train_epochs": POSITIVE, "max_steps": Range(-1, integer=True),
    "warmup_steps": NON_NEGATIVE, "warmup_ratio": UNIT, "weight_decay": NON_NEGATIVE,
    "adam_beta1": BETA, "adam_beta2": BETA, "adam_epsilon": NON_NEGATIVE, "max_grad_norm": NON_NEGATIVE,
    "label_smoothing_factor": PROBABILITY, "neftune_noise_alpha": NON_NEGATIVE,
    "per_device_train_batch_size": COUNT, "per_device_eval_batch_size": COUNT,
    "gradient_accumulation_steps": COUNT, "eval_accumulation_steps": COUNT, "torch_empty_cache_steps": COUNT,
    "logging_steps": POSITIVE, "eval_steps": POSITIVE, "save_steps": POSITIVE, "eval_delay": NON_NEGATIVE,
    "save_total_limit": NON_NEGATIVE_INT, "seed": SEED, "data_seed": SEED, "dataloader_num_workers": WORKERS,
    "dataloader_prefetch_factor": Range(1, 1024, integer=True), "ddp_bucket_cap_mb": COUNT, "ddp_timeout": COUNT,
    "local_rank": Range(-1, integer=True),
}


@dataclass
class ModelArguments(ModelOptions):
    """The backbone and how it is trained: the frozen probe, full fine-tuning or partial fine-tuning."""

    model_name_or_path: str = field(default="whisper-tiny.en", metadata=_help(
        "A preset (whisper-tiny.en, whisper-base; see `ser-hf models list`), a local checkpoint directory "
        "or a Hub id (e.g. facebook/wav2vec2-base)."))
    mode: str = field(default="probe", metadata=_help(
        "'probe': frozen backbone, cached pooled states, head trained in seconds (CPU friendly). "
        "'finetune': train through the backbone with the Trainer (GPU recommended). "
        "'partial': the frozen lower encoder runs once and the input of the top train_top_layers layers is "
        "cached on disk (float16); those layers and the head train with the Trainer (CPU feasible for 1-2 layers).",
        choices=["probe", "finetune", "partial"]))
    train_top_layers: int = field(default=1, metadata=_help(
        "Partial fine-tuning (mode: partial): how many top encoder layers train, from 1 to the model's number of "
        "layers (whisper-base: 6); the layers below stay frozen and run once per clip."))

    #: What each numeric field accepts beyond ModelOptions' (the upper bound of train_top_layers is the model's).
    RANGES: ClassVar[dict[str, Range]] = {"train_top_layers": COUNT}


def _number_list(values: Any) -> Any:
    """A copy list given as a 1-D numpy array, or holding numpy numbers, as a list of Python numbers; anything else
    as it is (the range check refuses what is no list of numbers)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.tolist()
    if isinstance(values, (list, tuple)) and any(isinstance(value, np.generic) for value in values):
        return [value.item() if isinstance(value, np.generic) else value for value in values]
    return values


def _repeats(key: str, values: list) -> str | None:
    """What a message adds when the list field ``key`` repeats itself ("" when its values do, as written), None when
    it does not. Copies are compared by name, as the probe caches them and test-time copies score them: values equal
    to 6 significant digits are one copy, and a speed copy named 1x is the clip itself."""
    if len(set(values)) < len(values) or (key == "probe_speed_copies" and 1.0 in values):
        return ""
    if key not in ("probe_speed_copies", "probe_noise_copies"):
        return None
    from ser_hf.audio import AudioPreprocessor, clip_copies

    speeds, snrs = (values, ()) if key == "probe_speed_copies" else ((), values)
    names = [name for _, name in clip_copies(AudioPreprocessor(), speeds, snrs)]
    itself = clip_copies(AudioPreprocessor(), [1.0])[0][1] if key == "probe_speed_copies" else None
    if len(set(names)) == len(names) and itself not in names:
        return None
    return f" ({', '.join(names)}: a copy is named and cached by its value to 6 significant digits)"


@dataclass
class ProbeArguments:
    """The frozen probe's settings (``mode: probe``) and those of the frozen forward it runs once per clip.

    The probe never runs the Trainer, so its settings are a group of their own rather than ``TrainingArguments``
    fields; the recipe keys and flags are the fields' names (``probe_fit``, ``--embedding_device``...). Partial
    fine-tuning runs the same frozen forward below its trained layers and reads the ``embedding_*`` settings too.

    Example:
        ```python
        >>> ProbeArguments(probe_fit="gradient", probe_max_epochs=50).settings(seed=1).max_epochs
        50

        ```
    """

    probe_fit: str = field(default="linear", metadata=_help(
        "Probe: how the head is fitted. 'linear' (default): class-balanced ridge on a layer mix, mix and strength "
        "chosen by speaker-grouped inner CV on the training speakers, refit on all of them (validation speakers "
        "included). 'gradient': AdamW on the whole head with early stopping on the validation speakers.",
        choices=["linear", "gradient"]))
    probe_inner_folds: int = field(default=4, metadata=_help(
        "Probe, linear fit: speaker-grouped folds of the inner CV that picks the layer mix and ridge strength."))
    probe_layer_mixes: list[str] | None = field(default=None, metadata=_help(
        "Probe, linear fit: the layer mixes the inner CV chooses from, of uniform, balanced (each layer over its "
        "typical scale), balanced-top (the same over the upper half of the layers) and balanced-bottom (over the "
        "lower half: the more acoustic states, e.g. for speech far from the encoder's training data). Also used by "
        "head_init: probe. Default: uniform balanced balanced-top."))
    probe_speaker_adaptation: bool = field(default=False, metadata=_help(
        "Probe, linear fit: also fit the speaker-adaptive head (each speaker's offset removed; the inner CV picks "
        "the emotion-mix-aware or the speaker-mean estimator), "
        "saved beside the standard checkpoint for EmotionRecognizer.enroll; 'ser-hf cv' then adds speaker-adaptive "
        "rows for 1, 3, 5, 10, 20, all and neutral-only enrollment clips."))
    probe_speaker_spread: bool = field(default=False, metadata=_help(
        "Probe, speaker-adaptive: also offer the inner CV a second step after the offset, each class score of an "
        "enrolled speaker scaled to the training speakers' typical spread of it (shrinkage 30, 10 or 3 clips; the "
        "offset alone stays a choice). Helps corpora whose speakers are nearly single-emotion (URDU), not RAVDESS: the "
        "README's speaker-adaptive table has both (benchmarks/accuracy.py --speaker-spread). Needs "
        "probe_speaker_adaptation."))
    probe_speed_copies: list[float] | None = field(default=None, metadata=_help(
        "Probe, linear fit: also train on a copy of every training clip played this many times faster, one copy "
        "per factor, e.g. 0.9 1.1 (Kaldi-style speed perturbation: tempo and pitch change together, like another "
        "voice). The copies' frozen states are cached like the clips'; only unaltered clips are scored, in the inner "
        "CV and in testing. Costs one more frozen forward per factor; at most 8 copies with probe_noise_copies. Also "
        "used by head_init: probe. Default: off; 'none' turns a recipe's copies off."))
    probe_noise_copies: list[float] | None = field(default=None, metadata=_help(
        "Probe, linear fit: also train on a copy of every training clip with white noise this many dB below its "
        "power, one copy per SNR, e.g. 20 (the same noise for a clip every time, so its states cache like the "
        "clips'). Only unaltered clips are scored. Costs one more frozen forward per SNR. Also used by head_init: "
        "probe. Default: off; 'none' turns a recipe's copies off."))
    probe_projector_size: int = field(default=256, metadata=_help("Probe: size of the head's projector."))
    probe_learning_rate: float = field(default=1e-3, metadata=_help("Probe: AdamW learning rate of the head."))
    probe_weight_decay: float = field(default=1e-3, metadata=_help("Probe: AdamW weight decay of the head."))
    probe_dropout: float = field(default=0.2, metadata=_help("Probe: dropout on the pooled input in training."))
    probe_batch_size: int = field(default=32, metadata=_help("Probe: clips per optimiser step."))
    probe_max_epochs: int = field(default=200, metadata=_help("Probe: most epochs over the cached features."))
    probe_patience: int = field(default=30, metadata=_help(
        "Probe: stop after this many epochs without a better validation UA."))

    # --- The frozen forward: the probe's, and partial fine-tuning's below its trained layers ---
    embedding_cache_dir: str | None = field(default=None, metadata=_help(
        "Probe and partial fine-tuning: where pooled hidden states and layer inputs are cached (default "
        "$SER_HF_CACHE/embeddings or ~/.cache/ser_hf)."))
    embedding_batch_size: int = field(default=8, metadata=_help(
        "Probe and partial fine-tuning: clips per frozen backbone forward pass."))
    embedding_device: str = field(default="auto", metadata=_help(
        "Probe and partial fine-tuning: where the frozen forward runs: auto (the GPU when there is one, else the "
        "CPU), cpu, cuda, cuda:N or mps."))
    embedding_dtype: str = field(default="float32", metadata=_help(
        "Probe: precision of the frozen forward: float32 (reference), bfloat16 or float16 (GPU). Cached apart "
        "from float32 features.", choices=["float32", "bfloat16", "float16"]))


    #: What each numeric field accepts (see :mod:`ser_hf.ranges`), checked first thing in ``__post_init__``.
    RANGES: ClassVar[dict[str, Range]] = {
        "probe_projector_size": LAYER_SIZE, "probe_learning_rate": POSITIVE, "probe_weight_decay": NON_NEGATIVE,
        "probe_dropout": PROBABILITY, "probe_batch_size": COUNT, "probe_inner_folds": Range(2, integer=True, noun="an integer"),
        "probe_speed_copies": SPEED_FACTOR, "probe_noise_copies": NOISE_SNR,
        "probe_max_epochs": COUNT, "probe_patience": COUNT, "embedding_batch_size": COUNT,
    }

    def __post_init__(self) -> None:
        for key in ("probe_speed_copies", "probe_noise_copies"):  # np.linspace(0.8, 1.2, 5) is a list of factors too
            setattr(self, key, _number_list(getattr(self, key)))
        check_ranges(self)
        if self.embedding_cache_dir is not None:  # a file, '-', a link to nothing: refused before the model loads
            try:
                check_folder_path(self.embedding_cache_dir, argument="embedding_cache_dir",
                                  what="the cached backbone states", error=SERError)
            except SERError as error:
                error.field = "embedding_cache_dir"
                raise
        mixes = self.probe_layer_mixes
        if mixes is not None and (not mixes or not set(mixes) <= set(LAYER_MIXES)):
            unknown = [name for name in mixes if name not in LAYER_MIXES]
            error = SERError(f"probe_layer_mixes must name one or more of {list(LAYER_MIXES)}; got {mixes}"
                             + (f" ({unknown} unknown)." if unknown else "."))
            error.field = "probe_layer_mixes"  # so the caller can say where it was set (see ser_hf.ranges)
            raise error
        # A list must not repeat itself, and a speed copy at 1.0 would be the clip itself.
        for key, what in (("probe_speed_copies", "speed factors other than 1 (a copy at speed 1 is the clip itself), "
                                                 "e.g. 0.9 1.1"),
                          ("probe_noise_copies", "SNRs in dB, e.g. 20"),
                          ("probe_layer_mixes", "layer mixes, e.g. balanced balanced-bottom")):
            values = getattr(self, key) or []
            repeats = _repeats(key, values)
            if repeats is not None:
                error = SERError(f"{key} must list distinct {what}; got {values}{repeats}.")
                error.field = key
                raise error
        copies = len(self.probe_speed_copies or ()) + len(self.probe_noise_copies or ())
        if copies > MAX_COPIES:
            error = SERError(f"probe_speed_copies and probe_noise_copies ask for {copies} copies of every clip; at most "
                             f"{MAX_COPIES} are allowed (each is another frozen forward of every clip, and test-time "
                             f"copies score them all): keep the few that help, e.g. probe_speed_copies 0.9 1.1 "
                             f"probe_noise_copies 20.")
            error.field = "probe_speed_copies" if self.probe_speed_copies else "probe_noise_copies"
            raise error
        if self.probe_speaker_spread and not self.probe_speaker_adaptation:
            error = SERError(SPREAD_NEEDS_ADAPTATION)
            error.field = "probe_speaker_spread"
            raise error

    def settings(self, *, class_weighted: bool = True, seed: int = 0) -> ProbeSettings:
        """The :class:`~ser_hf.training.probe.ProbeSettings` the probe is fitted with.

        Args:
            class_weighted: Weight classes by inverse frequency (the run's ``class_weighted_loss``).
            seed: The run's ``seed``.
        """
        return ProbeSettings(
            fit=self.probe_fit, inner_folds=self.probe_inner_folds, speaker_adaptation=self.probe_speaker_adaptation,
            speaker_spread=self.probe_speaker_spread,
            layer_mixes=tuple(self.probe_layer_mixes or DEFAULT_LAYER_MIXES),
            speed_copies=tuple(float(f) for f in self.probe_speed_copies or ()),
            noise_copies=tuple(float(snr) for snr in self.probe_noise_copies or ()),
            projector_size=self.probe_projector_size, learning_rate=self.probe_learning_rate,
            weight_decay=self.probe_weight_decay, dropout=self.probe_dropout, batch_size=self.probe_batch_size,
            max_epochs=self.probe_max_epochs, patience=self.probe_patience, class_weighted=class_weighted, seed=seed,
        )

    def frozen_forward(self) -> dict[str, Any]:
        """How the frozen backbone runs: the ``cache_dir``, ``batch_size``, ``device`` and ``dtype`` keyword
        arguments of :class:`~ser_hf.training.probe.ProbeMethod` and :class:`~ser_hf.training.partial.PartialMethod`."""
        return {"cache_dir": self.embedding_cache_dir, "batch_size": self.embedding_batch_size,
                "device": self.embedding_device, "dtype": self.embedding_dtype}


@dataclass
class SERTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with SER defaults (select on unweighted accuracy) and fine-tuning's settings.

    The probe's settings are :class:`ProbeArguments`.
    """

    output_dir: str = field(default="outputs/ser-model", metadata=_help("Where checkpoints and reports go."))
    metric_for_best_model: str = field(default="unweighted_accuracy", metadata=_help(
        "Metric that picks the best checkpoint; unweighted accuracy (mean per-class recall) by default, and the mean "
        "of the corpora's UAs (corpus_mean_unweighted_accuracy) when the validation set holds several corpora."))
    greater_is_better: bool = field(default=True, metadata=_help("Whether a larger metric is better."))
    report_to: str = field(default="none", metadata=_help("Experiment trackers to log to (none by default)."))
    remove_unused_columns: bool = field(default=False, metadata=_help(
        "Kept False: the audio path and speaker columns are needed by ser_hf's collator."))
    class_weighted_loss: bool = field(default=True, metadata=_help(
        "Weight the cross-entropy by inverse class frequency of the training data, so UA is what is optimised. "
        "With several corpora every (corpus, emotion) cell weighs the same instead (a 'loss_weight' column; a "
        "dataset's own 'loss_weight' column is used as given)."))

    # --- Fine-tuning (mode='finetune') ---
    train_sampling_strategy: str = field(default="group_by_length", metadata=_help(
        "Fine-tuning: 'group_by_length' (default: batches of similar duration, so dynamic padding wastes "
        "little), 'random', 'sequential' or 'batch_rebalance'.",
        choices=["random", "sequential", "group_by_length", "batch_rebalance"]))
    length_column_name: str = field(default="duration", metadata=_help(
        "Fine-tuning: the column with each clip's length for length grouping (every corpus has 'duration')."))
    balanced_sampler: bool = field(default=False, metadata=_help(
        "Fine-tuning: draw training clips with replacement, each class (of each corpus, with several) equally "
        "often (WeightedRandomSampler). "
        "An alternative to class_weighted_loss; replaces length grouping."))
    early_stopping_patience: int | None = field(default=None, metadata=_help(
        "Fine-tuning: stop after this many evaluations without a better metric_for_best_model (UA). "
        "Needs validation data. Default: train for all epochs."))
    noise_snr_db: list[float] | None = field(default=None, metadata=_help(
        "Fine-tuning augmentation: add white noise at an SNR (dB) drawn from 'low high', e.g. 10 30. Default: off."))
    gain_db: list[float] | None = field(default=None, metadata=_help(
        "Fine-tuning augmentation: random gain (dB) drawn from 'low high', e.g. -6 6. Default: off."))
    speed_perturb: list[float] | None = field(default=None, metadata=_help(
        "Fine-tuning augmentation: speed factors to choose from, e.g. 0.9 1.0 1.1 (changes tempo and pitch). "
        "Default: off."))
    pitch_shift_semitones: float | None = field(default=None, metadata=_help(
        "Fine-tuning augmentation: shift pitch by up to this many semitones either way (librosa, slow). "
        "Default: off."))
    augment_probability: float = field(default=0.5, metadata=_help(
        "Fine-tuning augmentation: chance that each configured augmentation is applied to a clip."))
    layer_lr_decay: float | None = field(default=None, metadata=_help(
        "Fine-tuning: layer-wise learning-rate decay; encoder layer i of L learns at learning_rate * decay^(L - i), "
        "the head at learning_rate (e.g. 0.8). Default: one rate for all."))
    head_init: str | None = field(default=None, metadata=_help(
        "Fine-tuning: 'probe' starts from the probe's linear head fitted on the frozen backbone's pooled states "
        "of the training clips (two-stage training; needs use_weighted_layer_sum), with the probe_inner_folds, "
        "probe_layer_mixes, probe_speed_copies and probe_noise_copies of a probe recipe. Partial fine-tuning: the same fit on the pooled "
        "states the head starts from. Default: a random head.",
        choices=[None, "probe"]))
    use_lora: bool = field(default=False, metadata=_help(
        "Fine-tuning: train LoRA adapters on the attention projections instead of all weights (needs peft: "
        "pip install 'ser-hf[lora]'); they are merged into the saved checkpoint."))
    lora_r: int = field(default=8, metadata=_help("LoRA: rank of the adapters."))
    lora_alpha: int = field(default=16, metadata=_help("LoRA: scaling numerator (alpha / r scales the update)."))
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA: dropout on the adapter input."))
    lora_target_modules: str = field(default="q_proj,k_proj,v_proj,out_proj", metadata=_help(
        "LoRA: comma-separated module names that get adapters (attention projections of every supported model)."))

    # --- Partial fine-tuning (mode='partial'): augmentation of the cached layer inputs ---
    partial_mask_time_prob: float = field(default=0.05, metadata=_help(
        "Partial fine-tuning: SpecAugment-style time masking of the cached layer inputs in training: about this "
        "share of each clip's frames is set to zero, in spans of partial_mask_time_length (0 disables)."))
    partial_mask_time_length: int = field(default=10, metadata=_help(
        "Partial fine-tuning: frames per time mask (20 ms each)."))
    partial_mask_feature_prob: float = field(default=0.0, metadata=_help(
        "Partial fine-tuning: share of hidden channels set to zero in training, in bands of "
        "partial_mask_feature_length (0 disables)."))
    partial_mask_feature_length: int = field(default=16, metadata=_help(
        "Partial fine-tuning: channels per feature mask."))
    partial_mixup_alpha: float | None = field(default=None, metadata=_help(
        "Partial fine-tuning: mixup of cached states and labels within each training batch, the weight drawn from "
        "Beta(alpha, alpha) (e.g. 0.4). Default: off."))

    #: What each numeric field accepts (see :mod:`ser_hf.ranges`), checked first thing in ``__post_init__``.
    RANGES: ClassVar[dict[str, Range]] = {
        **TRAINING_RANGES,
        "early_stopping_patience": COUNT, "noise_snr_db": DECIBELS, "gain_db": DECIBELS,
        "speed_perturb": SPEED_FACTOR,
        "layer_lr_decay": Range(0, 1, low_open=True, noun="a decay factor"), "pitch_shift_semitones": Range(0, 12),
        "augment_probability": PROBABILITY, "lora_r": Range(1, 1024, integer=True, noun="a rank"), "lora_alpha": COUNT,
        "lora_dropout": PROBABILITY, "partial_mask_time_prob": PROBABILITY, "partial_mask_time_length": COUNT,
        "partial_mask_feature_prob": PROBABILITY, "partial_mask_feature_length": COUNT, "partial_mixup_alpha": POSITIVE,
    }

    def __post_init__(self) -> None:
        check_ranges(self)  # before anything reads a value: a NaN must not get further
        # Mixed precision needs a GPU: on a CPU-only machine fall back to float32 with a warning instead of
        # crashing, so GPU recipes (fp16/bf16 on) also run on a laptop. use_cpu=True + bf16 asks for CPU bf16.
        if not torch.cuda.is_available() and (self.fp16 or (self.bf16 and not self.use_cpu)):
            warnings.warn(f"{'fp16' if self.fp16 else 'bf16'}=True needs a GPU and none is available: training in "
                          f"float32 instead. Remove it from the recipe (or pass --use_cpu with bf16 for CPU bf16).",
                          UserWarning, stacklevel=2)
            self.fp16 = self.bf16 = False
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinned memory only speeds up copies to a GPU
        Augmentation.from_args(self)  # checks the augmentation ranges now, not at the first batch
        super().__post_init__()


def _moved_to_probe_arguments(name: str) -> property:
    def refuse(self, *_):
        raise AttributeError(
            f"SERTrainingArguments has no {name!r}: the probe's settings moved to ProbeArguments, read and set it as "
            f"run.probe.{name} (the recipe key and the --{name} flag are unchanged).")

    return property(refuse, refuse)


# The probe's settings were SERTrainingArguments fields before they got a group of their own: setting one on the
# training arguments (setattr(run.training, "probe_fit", ...)) must fail, not add an attribute that nothing reads.
for _field in dataclasses.fields(ProbeArguments):
    setattr(SERTrainingArguments, _field.name, _moved_to_probe_arguments(_field.name))
del _field
