"""The frozen probe: train the standard HF head on cached pooled hidden states, in seconds.

``*ForSequenceClassification`` and ``WhisperForAudioClassification`` with ``use_weighted_layer_sum``
compute ``classifier(mean_t(projector(sum_l w_l h_lt)))``. The weighted sum, the projector and the
classifier are affine, so they commute with the mean over frames: the head can be trained on the
per-layer mean states from :mod:`ser_hf.models.pooling` and copied into the full model, which then
predicts exactly what the probe predicts.

Inputs are standardised per hidden dimension (one mean and scale shared by all layers). Because the
softmax layer weights sum to one, ``sum_l w_l (h_l - mu) / sigma = (sum_l w_l h_l - mu) / sigma``, so
the standardisation folds exactly into the projector when the head is exported.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ser_hf._io import default_permissions, detach_for_rewrite
from ser_hf.errors import SERError
from ser_hf.training.linear_probe import DEFAULT_LAYER_MIXES, balanced_weights, corpora_to_balance, corpus_balanced_ua

logger = logging.getLogger(__name__)


#: Why ``speaker_spread`` (``probe_speaker_spread``) is refused without speaker adaptation.
SPREAD_NEEDS_ADAPTATION = ("probe_speaker_spread adapts the score spread of the speaker-adaptive head: it needs "
                           "probe_speaker_adaptation: true.")


@dataclass
class ProbeSettings:
    """How the probe head is trained (the HF head's shapes come from ``projector_size``).

    ``fit="linear"`` (default) fits the head in closed form (:mod:`ser_hf.training.linear_probe`) and uses
    only ``projector_size``, ``inner_folds``, ``layer_mixes``, ``speaker_adaptation`` (and ``speaker_spread``),
    ``speed_copies``,
    ``noise_copies`` and ``seed``;
    ``fit="gradient"`` trains it with AdamW and early stopping, using the other fields.
    """

    fit: str = "linear"
    inner_folds: int = 4
    layer_mixes: tuple[str, ...] = DEFAULT_LAYER_MIXES
    speaker_adaptation: bool = False
    speaker_spread: bool = False
    speed_copies: tuple[float, ...] = ()
    noise_copies: tuple[float, ...] = ()
    projector_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 30
    class_weighted: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.speaker_spread and not self.speaker_adaptation:
            raise SERError(SPREAD_NEEDS_ADAPTATION)

    def copy_preprocessors(self, base) -> list[tuple[Any, str]]:
        """``(preprocessor, name)`` of every training copy, made from ``base`` (the run's own preprocessing): played
        faster by each ``speed_copies`` factor (Kaldi-style speed perturbation), then with white noise at each
        ``noise_copies`` SNR. Each preprocessor's fingerprint names its factor or SNR, so copies cache apart."""
        from ser_hf.audio import clip_copies

        return clip_copies(base, self.speed_copies, self.noise_copies)


def warm_start_settings(settings: ProbeSettings | None, projector_size: int, seed: int) -> ProbeSettings:
    """How ``head_init: probe`` fits the head fine-tuning starts from: the run's probe settings (inner folds, layer
    mixes, training copies; the default ones when None) with the model's projector size, and always the linear fit of one
    global head (a starting point has no use for the gradient fit or for speaker adaptation)."""
    return dataclasses.replace(settings or ProbeSettings(seed=seed), projector_size=projector_size, fit="linear",
                               speaker_adaptation=False, speaker_spread=False)


class ProbeHead(nn.Module):
    """The HF head (``layer_weights``, ``projector``, ``classifier``) on pooled states, with input scaling."""

    def __init__(self, num_layers: int, hidden_size: int, projector_size: int, num_labels: int, dropout: float = 0.0):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.ones(num_layers) / num_layers)  # as transformers initialises it
        self.projector = nn.Linear(hidden_size, projector_size)
        self.classifier = nn.Linear(projector_size, num_labels)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mean", torch.zeros(hidden_size))
        self.register_buffer("scale", torch.ones(hidden_size))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.layer_weights, dim=-1)
        summed = (pooled * weights[None, :, None]).sum(dim=1)
        return self.classifier(self.projector(self.dropout((summed - self.mean) / self.scale)))

    def folded_state(self) -> dict[str, torch.Tensor]:
        """Parameters for the HF model, with the input scaling folded into the projector."""
        weight = self.projector.weight / self.scale[None, :]
        return {
            "layer_weights": self.layer_weights.detach().clone(),
            "projector.weight": weight.detach().clone(),
            "projector.bias": (self.projector.bias - weight @ self.mean).detach().clone(),
            "classifier.weight": self.classifier.weight.detach().clone(),
            "classifier.bias": self.classifier.bias.detach().clone(),
        }


def class_weights(labels: np.ndarray, num_labels: int) -> torch.Tensor:
    """Inverse-frequency weights (``n / (k * count)``), 0 for classes absent from training."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def _check(features: np.ndarray, labels: np.ndarray, num_labels: int) -> None:
    if features.ndim != 3 or len(features) != len(labels) or len(labels) == 0:
        raise SERError(
            f"Probe training expects features of shape (clips, layers, hidden) and one label per clip; got "
            f"features {features.shape} and {len(labels)} labels."
        )
    if labels.min() < 0 or labels.max() >= num_labels:
        raise SERError(f"Probe labels must be in [0, {num_labels}); found {labels.min()}..{labels.max()}.")


def predict_logits(head: ProbeHead, features: np.ndarray) -> np.ndarray:
    """Logits of the probe for pooled features ``(clips, layers, hidden)``."""
    head.eval()
    with torch.no_grad():
        return head(torch.as_tensor(features, dtype=torch.float32)).numpy()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy averaged with per-clip ``weights`` (plain mean without): ``sum w_i l_i / sum w_i``, which with
    ``weights = class_weights[labels]`` is exactly ``cross_entropy(..., weight=class_weights)``."""
    if weights is None:
        return nn.functional.cross_entropy(logits, labels)
    losses = nn.functional.cross_entropy(logits, labels, reduction="none")
    return (weights * losses).sum() / weights.sum()


def train_probe(
    features: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    settings: ProbeSettings | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    corpora=None,
    validation_corpora=None,
) -> ProbeHead:
    """Train the head on pooled features; with ``validation``, keep the epoch with the best UA.

    Args:
        features: ``(clips, layers, hidden)`` pooled states of the training clips.
        labels: Their class ids.
        num_labels: Number of classes.
        settings: Optimiser and head settings.
        validation: Optional ``(features, labels)`` of speaker-disjoint clips for early stopping.
        corpora: The corpus of every training clip, or None. Clips of several corpora make every (corpus,
            emotion) cell weigh the same in the loss (with ``class_weighted``), as in the linear fit.
        validation_corpora: The corpus of every validation clip: with several, early stopping scores the mean
            of the corpora's UAs.

    Returns:
        The trained :class:`ProbeHead` (in eval mode); with ``validation`` its ``training_log`` lists the
        validation UA of every epoch and ``best_epoch`` the one kept.
    """
    settings = settings or ProbeSettings()
    labels = np.asarray(labels, dtype=np.int64)
    _check(features, labels, num_labels)
    corpora = corpora_to_balance(corpora, len(labels))
    torch.manual_seed(settings.seed)
    head = ProbeHead(features.shape[1], features.shape[2], settings.projector_size, num_labels, settings.dropout)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels)
    head.mean.copy_(x.mean(dim=(0, 1)))
    head.scale.copy_(x.std(dim=(0, 1)).clamp_min(1e-5))
    weights = torch.as_tensor(balanced_weights(labels, num_labels, corpora), dtype=torch.float32) \
        if settings.class_weighted else None
    if validation is not None:
        validation_corpora = corpora_to_balance(validation_corpora, len(validation[1]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    best, best_state, since_best, head.training_log, head.best_epoch = -1.0, None, 0, [], None
    for epochs_run in range(1, settings.max_epochs + 1):
        head.train()
        for batch in torch.randperm(len(y), generator=generator).split(settings.batch_size):
            optimizer.zero_grad()
            weighted_cross_entropy(head(x[batch]), y[batch], None if weights is None else weights[batch]).backward()
            optimizer.step()
        if validation is None:
            continue
        predictions = predict_logits(head, validation[0]).argmax(axis=1)
        score = corpus_balanced_ua(np.asarray(validation[1]), predictions, num_labels, validation_corpora)
        head.training_log.append({"epoch": epochs_run, "validation UA": round(score, 4)})
        if score > best:
            best, best_state, since_best, head.best_epoch = score, copy.deepcopy(head.state_dict()), 0, epochs_run
        else:
            since_best += 1
            if since_best >= settings.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
        logger.info("probe: best validation UA %.4f at epoch %d", best, head.best_epoch)
    return head.eval()


def clip_corpora(*parts) -> np.ndarray | None:
    """The ``corpus`` of every clip of the dataset ``parts``, in order (None when a part has no such column): what
    lets a fit on several corpora count each the same (see :func:`~ser_hf.training.linear_probe.fit_linear`)."""
    if not all("corpus" in part.column_names for part in parts):
        return None
    return np.concatenate([np.asarray(part["corpus"], dtype=object) for part in parts])


def fit_linear_head(features: np.ndarray, labels: np.ndarray, speakers, num_labels: int,
                    settings: ProbeSettings | None = None, copies=(), corpora=None) -> ProbeHead:
    """The head holding :func:`ser_hf.training.linear_probe.fit_linear` (its choice in ``head.fit_record``);
    ``copies`` are altered states of the same clips it also trains on, ``corpora`` the clips' corpora (see
    ``fit_linear``)."""
    from ser_hf.training.linear_probe import fit_linear, load_into_head

    settings = settings or ProbeSettings()
    labels = np.asarray(labels, dtype=np.int64)
    _check(features, labels, num_labels)
    head = ProbeHead(features.shape[1], features.shape[2], settings.projector_size, num_labels)
    fit, head.fit_record = fit_linear(features, labels, speakers, num_labels, inner_folds=settings.inner_folds,
                                      seed=settings.seed, copies=copies, mixes=settings.layer_mixes, corpora=corpora)
    load_into_head(fit, head)
    head.training_log, head.best_epoch = [], None
    return head.eval()


def load_head_into_model(head: ProbeHead, model: nn.Module) -> nn.Module:
    """Copy the trained head into an ``AutoModelForAudioClassification`` built with the weighted layer sum."""
    if not getattr(model.config, "use_weighted_layer_sum", False):
        raise SERError("load_head_into_model: build the model with use_weighted_layer_sum=True.")
    state = head.folded_state()
    target = model.state_dict()
    for name, value in state.items():
        if target[name].shape != value.shape:
            raise SERError(
                f"Probe head {name} has shape {tuple(value.shape)} but the model expects {tuple(target[name].shape)}; "
                f"build the model with classifier_proj_size={head.projector.out_features} and the same labels."
            )
    model.load_state_dict(state, strict=False)
    return model


def save_head(head: ProbeHead, path: Path) -> None:
    """Save the probe head's tensors as safetensors (for reuse without the backbone)."""
    from safetensors.torch import save_file

    detach_for_rewrite(path.parent, [path.name])
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
    default_permissions(path)


class ProbeMethod:
    """Frozen backbone + cached pooled states + trained HF head, behind the fit/predict/save interface.

    Args:
        checkpoint: Backbone checkpoint (local directory or Hub id; presets resolved by the caller).
        labels: Canonical emotion names in label-id order.
        options: Model options; the probe forces ``freeze_backbone`` and ``use_weighted_layer_sum``.
        settings: How the head is trained.
        preprocessor: Audio cleaning applied before the feature extractor.
        cache_dir: Where pooled states are cached (default: ``ser_hf.models.pooling.default_cache_dir``).
        batch_size: Clips per backbone forward pass.
    """

    def __init__(self, checkpoint, labels, options, settings: ProbeSettings, preprocessor=None,
                 cache_dir=None, batch_size: int = 8, progress: bool = True, device: str | None = "auto",
                 dtype: str = "float32"):
        from ser_hf.models.factory import build_model

        options = dataclasses.replace(options, freeze_backbone=True, use_weighted_layer_sum=True,
                                      classifier_proj_size=settings.projector_size)
        self.labels = list(labels)
        self.settings = settings
        self.model, self.feature_extractor = build_model(checkpoint, self.labels, options)
        self.preprocessor = preprocessor
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.progress = progress
        self.device, self.dtype = device, dtype
        self._encoder = None  # the model on the feature device and precision, made on first use
        self.head: ProbeHead | None = None
        self.adaptive = None  # an AdaptiveProbe after fit() with settings.speaker_adaptation

    def encoder(self):
        """The backbone for feature extraction: the model itself on a float32 CPU run, else a moved copy.

        The saved checkpoint always comes from ``self.model`` (float32, CPU), whatever ran the frozen forward.
        """
        if self._encoder is None:
            from ser_hf.models.pooling import DTYPES, resolve_device

            if self.dtype not in DTYPES:
                raise SERError(f"embedding_dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}.")
            from ser_hf.processes import launched_processes

            processes = launched_processes()
            # Several launched processes: each takes the device accelerate gave it (its own GPU).
            auto = self.device in (None, "auto") and processes.world > 1 and processes.device is not None
            device, dtype = (processes.device if auto else resolve_device(self.device)), DTYPES[self.dtype]
            if device.type == "cpu" and dtype == torch.float32:
                self._encoder = self.model
            else:
                self._encoder = copy.deepcopy(self.model).to(device=device, dtype=dtype)
            logger.info("probe features: %s, %s", device, self.dtype)
        return self._encoder

    def features(self, paths, preprocessor=None, desc: str = "backbone forward") -> np.ndarray:
        """The cached pooled states of ``paths``, through the run's preprocessor or another one (an altered copy of
        it, e.g. :class:`~ser_hf.audio.SpeedChanged`, whose fingerprint keeps its states apart in the cache)."""
        from ser_hf.models.pooling import pooled_hidden_states

        return pooled_hidden_states(self.encoder(), self.feature_extractor, list(paths),
                                    preprocessor=preprocessor or self.preprocessor, cache_dir=self.cache_dir,
                                    batch_size=self.batch_size, progress=self.progress, desc=desc)

    def base_preprocessor(self):
        """The run's preprocessor, or the plain one at the feature extractor's rate: what altered copies start from."""
        from ser_hf.audio import AudioPreprocessor

        return self.preprocessor or AudioPreprocessor(sampling_rate=self.feature_extractor.sampling_rate)

    def training_copies(self, paths) -> list[np.ndarray]:
        """The pooled states of every file's training copies, one array per copy
        (:meth:`ProbeSettings.copy_preprocessors`): what the linear fit also learns from (see
        :func:`~ser_hf.training.linear_probe.fit_linear`); each copy is made after the run's own preprocessing and
        cached apart from the clips' states."""
        return [self.features(paths, preprocessor, desc=f"backbone forward, {name} copies")
                for preprocessor, name in self.settings.copy_preprocessors(self.base_preprocessor())]

    def fit(self, train, validation=None) -> ProbeMethod:
        """Fit the head on ``train`` (a dataset with ``audio``, ``label`` and ``speaker``).

        The linear fit learns from ``validation`` too (it picks its settings by inner speaker CV, so held-out
        speakers would be wasted); the gradient fit early-stops on it.
        """
        if self.settings.fit == "linear":
            parts = [train] if validation is None else [train, validation]
            features = np.concatenate([self.features(part["audio"]) for part in parts])
            labels = np.concatenate([np.asarray(part["label"]) for part in parts])
            speakers = np.concatenate([np.asarray(part["speaker"], dtype=object) for part in parts])
            copies = [np.concatenate(states) for states in zip(*(self.training_copies(part["audio"]) for part in parts))]
            corpora = clip_corpora(*parts)
            if not self.settings.speaker_adaptation:
                self.head = fit_linear_head(features, labels, speakers, len(self.labels), self.settings, copies,
                                            corpora)
                return self
            from ser_hf.training.linear_probe import load_tensors_into_head
            from ser_hf.training.speaker_adaptation import SPREAD_CHOICES, fit_adaptive_probe

            _check(features, np.asarray(labels, dtype=np.int64), len(self.labels))
            self.adaptive = fit_adaptive_probe(features, labels, speakers, len(self.labels),
                                               projector_size=self.settings.projector_size,
                                               inner_folds=self.settings.inner_folds, seed=self.settings.seed,
                                               copies=copies, mixes=self.settings.layer_mixes, corpora=corpora,
                                               spreads=(None, *SPREAD_CHOICES) if self.settings.speaker_spread
                                               else (None,))
            self.head = ProbeHead(features.shape[1], features.shape[2], self.settings.projector_size, len(self.labels))
            load_tensors_into_head(self.adaptive.global_head, self.head)
            self.head.fit_record = {**self.adaptive.record["global"], "speaker_adaptation": self.adaptive.record}
            self.head.training_log, self.head.best_epoch = [], None
            self.head.eval()
            return self
        if self.settings.speaker_adaptation:
            raise SERError("probe_speaker_adaptation needs probe_fit: linear.")
        for key, copies in (("speed", self.settings.speed_copies), ("noise", self.settings.noise_copies)):
            if copies:
                raise SERError(f"probe_{key}_copies needs probe_fit: linear.")
        if self.settings.fit != "gradient":
            raise SERError(f"probe fit must be 'linear' or 'gradient', got {self.settings.fit!r}.")
        held_out = None if validation is None else (self.features(validation["audio"]), np.asarray(validation["label"]))
        self.head = train_probe(self.features(train["audio"]), np.asarray(train["label"]), len(self.labels),
                                self.settings, held_out, corpora=clip_corpora(train),
                                validation_corpora=None if validation is None else clip_corpora(validation))
        if held_out is not None:
            from ser_hf.evaluation.calibration import calibrate_classifier

            # The same validation speakers that chose the epoch fit the temperature folded into the head.
            self.head.calibration = calibrate_classifier(self.head, predict_logits(self.head, held_out[0]),
                                                         held_out[1], validation["speaker"])
        return self

    def predict_proba(self, dataset) -> np.ndarray:
        if self.head is None:
            raise SERError("ProbeMethod.predict_proba: call fit() first.")
        logits = torch.as_tensor(predict_logits(self.head, self.features(dataset["audio"])))
        return torch.softmax(logits, dim=-1).numpy()

    @property
    def has_training_copies(self) -> bool:
        return bool(self.settings.speed_copies or self.settings.noise_copies)

    def versions(self, dataset) -> list[np.ndarray]:
        """The pooled states of the dataset's clips, then of each of their training copies."""
        return [self.features(dataset["audio"]), *self.training_copies(dataset["audio"])]

    def predict_proba_with_copies(self, dataset, versions: list[np.ndarray] | None = None) -> np.ndarray:
        """Probabilities from each clip and its training copies, log-probabilities averaged: what the saved
        checkpoint gives through ``EmotionRecognizer(test_time_copies=True)`` (``ser-hf predict --test-time-copies``).
        ``versions`` are the dataset's :meth:`versions` when the caller has them already.

        Raises:
            SERError: before fit(), or when the probe trained on no copies.
        """
        from ser_hf.models.linear_head import log_softmax, mean_log_probability

        if self.head is None or not self.has_training_copies:
            raise SERError("ProbeMethod.predict_proba_with_copies needs a fitted probe with training copies "
                           "(probe_speed_copies or probe_noise_copies).")
        versions = self.versions(dataset) if versions is None else versions
        return mean_log_probability([log_softmax(predict_logits(self.head, states)) for states in versions])

    @property
    def training_log(self) -> list[dict]:
        """Validation UA per epoch of the last fit (empty without a validation part)."""
        return getattr(self.head, "training_log", [])

    @property
    def best_epoch(self) -> int | None:
        return getattr(self.head, "best_epoch", None)

    @property
    def calibration(self) -> dict | None:
        """The softmax temperature folded into the head: ``temperature`` (logits are divided by it) and
        ``fitted_on``; the gradient fit adds the validation ECE before and after. None when none was fitted."""
        record = getattr(self.head, "calibration", None)
        if record is not None:
            return record
        multiplier = (self.fit_record or {}).get("temperature")  # the linear fit multiplies its scores by it
        if not multiplier:
            return None
        return {"temperature": 1.0 / float(multiplier),
                "fitted_on": "speaker-grouped inner out-of-fold scores of the training speakers (linear fit)"}

    @property
    def fit_record(self) -> dict | None:
        """What the linear fit chose (layer mix, ridge strength, inner-CV UA); None for the gradient fit."""
        return getattr(self.head, "fit_record", None)

    def save(self, out_dir, replace: bool = False) -> Path:
        """Save an ordinary ``AutoModelForAudioClassification`` checkpoint holding the trained head (``out_dir`` as
        :func:`~ser_hf.models.factory.save_checkpoint` takes it: never the backbone's folder)."""
        from ser_hf.models.factory import save_checkpoint

        if self.head is None:
            raise SERError("ProbeMethod.save: call fit() first.")
        from ser_hf.processes import launched_processes

        load_head_into_model(self.head, self.model)
        if self.calibration is not None:
            self.model.config.ser_hf_calibration = self.calibration  # `ser-hf evaluate` reports ECE before/after
        processes = launched_processes()
        checkpoint = Path(out_dir)
        if processes.is_main:  # every process fitted the same head; one writes it
            checkpoint = save_checkpoint(self.model, self.feature_extractor, out_dir, replace=replace)
            if self.adaptive is not None:
                from ser_hf.training.speaker_adaptation import save_adaptation

                save_adaptation(self.adaptive, checkpoint)
        processes.barrier()
        return checkpoint
