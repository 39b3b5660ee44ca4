"""Neural baselines trained from scratch: a small CNN on log-mel spectrograms and a BiLSTM on MFCC sequences.

The seed project named three model families for speech emotion recognition: SVMs, RNNs and CNNs. The
SVM lives in :mod:`ser_hf.baseline.classifiers`; this module adds the other two, CPU-sized, as reference
points for the pretrained transformers (which they are expected to trail):

- ``cnn``: 64-band log-mel spectrogram as a one-channel image; 4 blocks of 3x3 convolution, batch norm,
  ReLU and 2x2 max pooling (8, 16, 32, 64 channels); mean over frequency, masked mean over the valid
  time steps; dropout; linear. About 25k weights.
- ``lstm``: 20 MFCCs + deltas + delta-deltas; pairs of frames stacked (20 ms steps, half the recurrent
  work); a 2-layer bidirectional LSTM (64 units each way) over packed sequences, so padding never enters
  the recurrence; masked mean over the valid steps; dropout; linear. About 195k weights.

Training (:func:`fit_neural`): batches are grouped by length (sorted with a little jitter, then shuffled)
and padded to their longest clip, with the true lengths passed along as a mask; long training clips are
randomly cropped to ``max_train_frames`` (3 s), clips are scored whole. Loss is cross-entropy with
balanced class weights, since UA is the metric; AdamW; optional SpecAugment-style masking (one band of
up to 8 bins and one stretch of up to 20 frames per clip). About ``validation_size`` of the *training
speakers* (speaker-grouped, emotion-stratified, the same splitter as the scikit-learn inner CV) is held
out for early stopping on validation UA; the weights of the best epoch are kept. Seeds fix the split,
the initial weights, the batches and the masks.

Normalisation is per dimension over every frame of the training part ("global", the default) rather
than per utterance: per-utterance mean and variance normalisation would remove each clip's overall
level and spectral balance, and loudness is one of the strongest cues of arousal (angry and happy are
louder than sad). The statistics are buffers of the model, saved with its weights. ``normalization =
"utterance"`` is available for recordings whose channel varies more than their speakers do.

Example:
    ```python
    >>> from ser_hf.baseline.neural import NeuralConfig, fit_neural
    >>> fitted = fit_neural(sequences, labels, speakers, "cnn", config=NeuralConfig(max_epochs=20))  # doctest: +SKIP
    >>> fitted.best_params, fitted.inner_score  # best epoch, validation UA  # doctest: +SKIP
    >>> fitted.model.predict_proba(test_sequences).argmax(axis=1)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ser_hf.baseline.classifiers import NEURAL_CLASSIFIERS, inner_speaker_splits
from ser_hf.baseline.networks import NeuralConfig, SequenceNet
from ser_hf.errors import SERError, SplitError
from ser_hf.processes import available_cores

__all__ = ["FittedNeural", "NeuralConfig", "SequenceClassifier", "SequenceNet", "fit_neural"]


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch threads (``None``: the cores this process may use), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(count or available_cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Row positions grouped by length; with ``rng``, lengths get +-10% jitter and the batch order is shuffled."""
    keys = lengths * rng.uniform(0.9, 1.1, len(lengths)) if rng is not None else lengths
    order = np.argsort(keys, kind="stable")
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))] if rng is not None else batches


def _collate(
    sequences: Sequence[np.ndarray], rows: np.ndarray, min_frames: int, max_frames: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded ``(batch, frames, dims)`` tensor of the rows (randomly cropped to ``max_frames``) and lengths."""
    parts = []
    for row in rows:
        frames = sequences[row]
        if max_frames is not None and len(frames) > max_frames:
            start = int(rng.integers(0, len(frames) - max_frames + 1)) if rng is not None else 0
            frames = frames[start:start + max_frames]
        parts.append(frames)
    lengths = [len(part) for part in parts]
    batch = np.zeros((len(parts), max(max(lengths), min_frames), parts[0].shape[1]), dtype=np.float32)
    for i, part in enumerate(parts):
        batch[i, : len(part)] = part
    return torch.from_numpy(batch), torch.tensor(lengths, dtype=torch.long)


class SequenceClassifier:
    """A :class:`SequenceNet` with the scikit-learn-like surface the baseline code uses.

    Args:
        network: The network (put in evaluation mode).

    Example:
        >>> clf = SequenceClassifier.build(64, 4, NeuralConfig())
        >>> clf.predict_proba([np.zeros((120, 64), np.float32)]).shape
        (1, 4)
    """

    def __init__(self, network: SequenceNet):
        self.network = network.eval()

    @classmethod
    def build(cls, input_dim: int, num_labels: int, config: NeuralConfig) -> SequenceClassifier:
        """An untrained classifier (e.g. to load weights into)."""
        return cls(SequenceNet(input_dim, num_labels, config))

    @property
    def config(self) -> NeuralConfig:
        return self.network.config

    @property
    def input_dim(self) -> int:
        return self.network.input_dim

    @property
    def classes_(self) -> np.ndarray:
        """Class ids ``0 .. num_labels - 1`` (the network always scores every label)."""
        return np.arange(self.network.num_labels)

    def num_parameters(self) -> int:
        """Trainable weights."""
        return sum(p.numel() for p in self.network.parameters())

    def predict_proba(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, num_labels)`` softmax probabilities of whole clips (float64 rows summing to 1)."""
        if not len(sequences):
            return np.zeros((0, self.network.num_labels))
        lengths = np.array([len(s) for s in sequences])
        probabilities = np.zeros((len(sequences), self.network.num_labels))
        self.network.eval()
        with torch_threads(self.config.num_threads), torch.inference_mode():
            for rows in _batches(lengths, self.config.batch_size):
                x, lens = _collate(sequences, rows, self.config.reduction)
                probabilities[rows] = torch.softmax(self.network(x, lens).double(), dim=-1).numpy()
        return probabilities


@dataclass
class FittedNeural:
    """A neural baseline trained on one set of speakers, shaped like :class:`~ser_hf.baseline.classifiers.FittedClassifier`.

    Args:
        classifier: ``cnn`` or ``lstm``.
        model: The trained :class:`SequenceClassifier` (weights of the best validation epoch).
        best_params: ``best_epoch`` and ``epochs_run``.
        inner_score: Validation UA at the best epoch (on held-out training speakers).
        inner_speakers: One entry: the sorted ``train`` speakers and the ``test`` (validation) speakers.
        grid: Always empty (no grid search), kept so reports treat every baseline alike.
        history: Per epoch: ``epoch``, ``train_loss``, ``validation_loss``, ``validation_ua``.
    """

    classifier: str
    model: SequenceClassifier
    best_params: dict[str, Any]
    inner_score: float
    inner_speakers: list[dict[str, list[str]]]
    grid: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_neural_config(classifier: str, config: NeuralConfig | None = None) -> NeuralConfig:
    """``config`` (default ``NeuralConfig()``) with ``architecture`` set to ``classifier``."""
    if classifier not in NEURAL_CLASSIFIERS:
        raise SERError(f"{classifier!r} is not a neural baseline; expected one of {sorted(NEURAL_CLASSIFIERS)}.")
    config = config or NeuralConfig()
    if not isinstance(config, NeuralConfig):
        raise SERError(f"neural_config must be a NeuralConfig, got {type(config).__name__}.")
    return dataclasses.replace(config, architecture=classifier)


def _checked_sequences(sequences: Sequence[np.ndarray], labels: np.ndarray) -> int:
    """The common frame width; clear errors for ragged widths, empty clips, NaN, or a length mismatch."""
    if len(sequences) != len(labels) or not len(sequences):
        raise SERError(f"fit_neural: got {len(sequences)} sequences and {len(labels)} labels; pass one "
                       f"(frames, dims) array per labelled clip.")
    widths = {s.shape[1] if getattr(s, "ndim", 0) == 2 and len(s) else None for s in sequences}
    if len(widths) != 1 or None in widths:
        raise SERError(f"fit_neural: every sequence must be a non-empty (frames, dims) array of one width; found "
                       f"widths {sorted(widths, key=str)}. Compute them with extract_dataset_sequences.")
    if not all(np.isfinite(s).all() for s in sequences):
        raise SERError("fit_neural: some sequences hold NaN or infinite values.")
    return widths.pop()


def _validation_split(labels: np.ndarray, speakers: np.ndarray, share: float, seed: int) -> tuple:
    n_speakers = len(set(speakers))
    if n_speakers < 2:
        raise SplitError(f"The neural baselines hold out training speakers for early stopping, so they need at least "
                         f"2 training speakers; found {n_speakers} ({sorted(set(speakers))}).")
    return inner_speaker_splits(labels, speakers, min(n_speakers, max(2, round(1 / share))), seed)[0]


def _frame_statistics(sequences: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation over every frame (float64 sums; std floored at 1e-3)."""
    count = sum(len(s) for s in sequences)
    total = sum(s.sum(axis=0, dtype=np.float64) for s in sequences)
    mean = total / count
    var = sum(((s - mean) ** 2).sum(axis=0) for s in sequences) / count
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(np.sqrt(np.maximum(var, 1e-6)), dtype=torch.float32)


def _class_weights(labels: np.ndarray, num_labels: int) -> torch.Tensor:
    """Balanced weights ``n / (k * count)`` of the classes present (absent classes get 1, unused)."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_labels)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def _train_epoch(net: SequenceNet, sequences, rows: np.ndarray, labels: np.ndarray, loss_fn, optimizer,
                 rng: np.random.Generator) -> float:
    config, total = net.config, 0.0
    net.train()
    lengths = np.array([min(len(sequences[r]), config.max_train_frames) for r in rows])
    for batch in _batches(lengths, config.batch_size, rng):
        x, lens = _collate(sequences, rows[batch], config.reduction, config.max_train_frames, rng)
        loss = loss_fn(net(x, lens), torch.as_tensor(labels[rows[batch]], dtype=torch.long))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(rows)


def _validate(model: SequenceClassifier, sequences, rows: np.ndarray, labels: np.ndarray,
              weights: torch.Tensor) -> tuple[float, float]:
    """Validation UA and class-weighted cross-entropy."""
    probabilities = model.predict_proba([sequences[r] for r in rows])
    targets = labels[rows]
    log_p = np.log(np.clip(probabilities[np.arange(len(rows)), targets], 1e-12, None))
    w = weights.numpy()[targets]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        ua = balanced_accuracy_score(targets, probabilities.argmax(axis=1))
    return float(ua), float(-(w * log_p).sum() / w.sum())


def fit_neural(
    sequences: Sequence[np.ndarray],
    labels: np.ndarray,
    speakers: Sequence[str],
    classifier: str = "cnn",
    *,
    num_labels: int | None = None,
    config: NeuralConfig | None = None,
    seed: int = 0,
) -> FittedNeural:
    """Train a CNN or BiLSTM from scratch, early-stopped on held-out training speakers.

    Args:
        sequences: One ``(frames, dims)`` float32 array per clip (:func:`~ser_hf.baseline.extraction.extract_dataset_sequences`).
        labels: Class id per clip.
        speakers: Speaker per clip; about ``config.validation_size`` of them are held out for early stopping.
        classifier: ``cnn`` or ``lstm`` (sets ``config.architecture``).
        num_labels: Output classes (default ``max(labels) + 1``); classes absent here still get a column.
        config: Architecture and training settings; ``None`` means ``NeuralConfig()``.
        seed: Seed of the validation split, weights, batches, crops and masks.

    Returns:
        A :class:`FittedNeural` holding the best epoch's weights.

    Raises:
        SERError: mismatched or malformed sequences, bad settings. SplitError: fewer than 2 speakers.

    Example:
        >>> fitted = fit_neural(seqs, y, speakers, "lstm", config=NeuralConfig(max_epochs=5))  # doctest: +SKIP
        >>> fitted.best_params  # doctest: +SKIP
        {'best_epoch': 4, 'epochs_run': 5}
    """
    config = resolve_neural_config(classifier, config)
    labels, speakers = np.asarray(labels, dtype=np.int64), np.asarray(speakers, dtype=object)
    dim = _checked_sequences(sequences, labels)
    num_labels = num_labels or int(labels.max()) + 1
    train, validation = _validation_split(labels, speakers, config.validation_size, seed)
    with torch_threads(config.num_threads):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = SequenceClassifier.build(dim, num_labels, config)
        net = model.network
        net.mean, net.std = _frame_statistics([sequences[r] for r in train])
        weights = _class_weights(labels[train], num_labels)
        loss_fn = nn.CrossEntropyLoss(weight=weights)
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        best, best_state, history = (-math.inf, -math.inf, 0), None, []
        for epoch in range(1, config.max_epochs + 1):
            train_loss = _train_epoch(net, sequences, train, labels, loss_fn, optimizer, rng)
            ua, loss = _validate(model, sequences, validation, labels, weights)
            history.append({"epoch": epoch, "train_loss": train_loss, "validation_loss": loss, "validation_ua": ua})
            if (ua, -loss) > best[:2]:
                best, best_state = (ua, -loss, epoch), copy.deepcopy(net.state_dict())
            elif epoch - best[2] >= config.patience:
                break
        net.load_state_dict(best_state)
    net.eval()
    return FittedNeural(
        classifier=classifier, model=model, best_params={"best_epoch": best[2], "epochs_run": len(history)},
        inner_score=float(best[0]),
        inner_speakers=[{"train": sorted(set(speakers[train])), "test": sorted(set(speakers[validation]))}],
        history=history,
    )
