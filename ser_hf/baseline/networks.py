"""The CNN and BiLSTM networks the neural baselines train, and the settings they are built from.

:class:`NeuralConfig` fixes a network's architecture (and its training settings); :class:`SequenceNet` is the
whole network: input normalisation, the CNN or BiLSTM body, masked pooling over each clip's true length and a
linear head. Training and scoring live in :mod:`ser_hf.baseline.neural`, which re-exports both names.

Example:
    >>> net = SequenceNet(64, 4, NeuralConfig())
    >>> net(torch.zeros(2, 120, 64), torch.tensor([120, 80])).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ser_hf.errors import SERError
from ser_hf.ranges import COUNT, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, Range, check_ranges

__all__ = ["NeuralConfig", "SequenceNet"]


@dataclass(frozen=True)
class NeuralConfig:
    """Architecture and training settings of a neural baseline (defaults sized for 2 CPU cores).

    Args:
        architecture: ``cnn`` or ``lstm``.
        base_channels: CNN: channels of the first block, doubled in each following block.
        conv_blocks: CNN: conv + batch norm + ReLU + 2x2 pooling blocks; inputs need at least
            ``2 ** conv_blocks`` feature dimensions.
        hidden_size: LSTM: units per direction.
        lstm_layers: LSTM: stacked bidirectional layers.
        frame_stacking: LSTM: consecutive frames concatenated into one step (1 = none).
        dropout: Dropout before the output layer (and between LSTM layers).
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Clips per batch (training and prediction).
        max_epochs: Most passes over the training clips.
        patience: Stop after this many epochs without a better validation UA.
        validation_size: Share of the training speakers held out for early stopping.
        max_train_frames: Training clips longer than this are randomly cropped to it (frames of 10 ms).
        spec_augment: Mask one random band and one random stretch of each training clip.
        freq_mask_width: Widest masked band (feature dimensions).
        time_mask_width: Longest masked stretch (frames; at most a fifth of the clip).
        normalization: ``global`` (training-set statistics per dimension) or ``utterance`` (per clip).
        num_threads: torch threads while training and predicting; ``None`` uses the cores this process may
            run on. One by default: these networks are small, and on 2 cores shared with other jobs, 2 threads
            made an epoch 4-8x slower than 1 (threads spin waiting for each other; the scikit-learn path
            limits BLAS to one thread for the same reason).

    Example:
        >>> NeuralConfig(architecture="lstm", max_epochs=10).hidden_size
        64
    """

    architecture: Literal["cnn", "lstm"] = "cnn"
    base_channels: int = 8
    conv_blocks: int = 4
    hidden_size: int = 64
    lstm_layers: int = 2
    frame_stacking: int = 2
    dropout: float = 0.3
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 6
    validation_size: float = 0.2
    max_train_frames: int = 300
    spec_augment: bool = True
    freq_mask_width: int = 8
    time_mask_width: int = 20
    normalization: Literal["global", "utterance"] = "global"
    num_threads: int | None = 1

    RANGES: ClassVar[dict[str, Range]] = {
        "base_channels": Range(1, 64, integer=True), "conv_blocks": Range(1, 6, integer=True),
        "hidden_size": Range(1, 512, integer=True), "lstm_layers": Range(1, 4, integer=True),
        "frame_stacking": Range(1, 8, integer=True), "dropout": Range(0, 1, high_open=True),
        "learning_rate": POSITIVE, "weight_decay": NON_NEGATIVE, "batch_size": Range(1, 4096, integer=True),
        "max_epochs": Range(1, 10000, integer=True), "patience": COUNT,
        "validation_size": Range(0, 0.5, low_open=True, noun="a share of the training speakers"),
        "max_train_frames": Range(16, 100000, integer=True), "freq_mask_width": NON_NEGATIVE_INT,
        "time_mask_width": NON_NEGATIVE_INT, "num_threads": Range(1, 1024, integer=True),
    }

    def __post_init__(self) -> None:
        for name, allowed in (("architecture", ("cnn", "lstm")), ("normalization", ("global", "utterance"))):
            if getattr(self, name) not in allowed:
                raise SERError(f"NeuralConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}.")
        if not isinstance(self.spec_augment, bool):
            raise SERError(f"NeuralConfig.spec_augment must be true or false, got {self.spec_augment!r}.")
        check_ranges(self)

    @property
    def reduction(self) -> int:
        """How many input frames make one step of the body's output (the CNN's pooling, the LSTM's stacking)."""
        return 2**self.conv_blocks if self.architecture == "cnn" else self.frame_stacking


class _ConvNet(nn.Module):
    """Conv blocks over (frequency, time), mean over frequency, masked mean over time, linear.

    Padded frames are zeroed again after every block, so a clip scores the same alone or padded in a batch.
    """

    def __init__(self, input_dim: int, num_labels: int, config: NeuralConfig):
        super().__init__()
        blocks: list[nn.Module] = []
        channels = 1
        for block in range(config.conv_blocks):
            out = config.base_channels * 2**block
            blocks.append(nn.Sequential(nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                        nn.ReLU(), nn.MaxPool2d(2)))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(channels, num_labels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = x.transpose(1, 2).unsqueeze(1)  # (batch, 1, dims, frames)
        for block in self.blocks:
            lengths = torch.div(lengths, 2, rounding_mode="floor")
            hidden = block(hidden)
            hidden = hidden * _mask(lengths, hidden.shape[-1])[:, None, None, :].to(hidden.dtype)
        steps = lengths.clamp(min=1)
        return self.head(self.dropout(_masked_mean(hidden.mean(dim=2).transpose(1, 2), steps)))


class _RecurrentNet(nn.Module):
    """Stacked frames, bidirectional LSTM layers, masked mean over steps, linear.

    Each layer runs one LSTM forwards and one over every clip reversed *within its own length*, so the
    backward direction starts at the clip's last real frame, never in padding: the result is exact, like
    packed sequences, without their cost on CPU (2-5x slower here).
    """

    def __init__(self, input_dim: int, num_labels: int, config: NeuralConfig):
        super().__init__()
        self.stacking = config.frame_stacking
        sizes = [input_dim * self.stacking] + [2 * config.hidden_size] * (config.lstm_layers - 1)
        self.forwards = nn.ModuleList(nn.LSTM(size, config.hidden_size, batch_first=True) for size in sizes)
        self.backwards = nn.ModuleList(nn.LSTM(size, config.hidden_size, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.hidden_size, num_labels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, frames, dims = x.shape
        x = nn.functional.pad(x, (0, 0, 0, (-frames) % self.stacking))
        hidden = x.reshape(batch, x.shape[1] // self.stacking, dims * self.stacking)
        steps = torch.div(lengths + self.stacking - 1, self.stacking, rounding_mode="floor")
        for layer, (forward, backward) in enumerate(zip(self.forwards, self.backwards)):
            if layer:
                hidden = self.dropout(hidden)
            reverse = _reversal(steps, hidden.shape[1])
            backward_out = backward(_gather_steps(hidden, reverse))[0]
            hidden = torch.cat([forward(hidden)[0], _gather_steps(backward_out, reverse)], dim=-1)
        return self.head(self.dropout(_masked_mean(hidden, steps)))


def _reversal(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Per row, the step order that reverses its first ``lengths`` steps and leaves the padding in place."""
    steps = torch.arange(size)[None, :].expand(len(lengths), size)
    return torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)


def _gather_steps(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    return x.gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def _masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (batch, steps, dims) over each row's first ``lengths`` steps."""
    mask = _mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    return (x * mask).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(x.dtype)


class SequenceNet(nn.Module):
    """A whole neural baseline: input normalisation (buffers), CNN or BiLSTM body, linear head.

    ``forward(x, lengths)`` takes zero-padded frames ``(batch, frames, input_dim)`` and the true length of
    each clip, and returns ``(batch, num_labels)`` logits. Its ``state_dict`` is what the model saves.
    """

    def __init__(self, input_dim: int, num_labels: int, config: NeuralConfig):
        super().__init__()
        if config.architecture == "cnn" and input_dim < 2**config.conv_blocks:
            raise SERError(
                f"The CNN's {config.conv_blocks} pooling blocks halve the feature axis {config.conv_blocks} times, "
                f"so it needs at least {2 ** config.conv_blocks} dimensions per frame; the input has {input_dim}. "
                f"Use more mel bands (e.g. sequence_config('cnn', n_mels=64)) or fewer conv_blocks."
            )
        self.config, self.input_dim, self.num_labels = config, input_dim, num_labels
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))
        body = _ConvNet if config.architecture == "cnn" else _RecurrentNet
        self.body = body(input_dim, num_labels, config)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = _mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        if self.config.normalization == "global":
            x = (x - self.mean) / self.std
        else:
            mean = _masked_mean(x, lengths).unsqueeze(1)
            std = _masked_mean((x - mean) ** 2, lengths).unsqueeze(1).clamp(min=1e-6).sqrt()
            x = (x - mean) / std
        x = x * mask
        if self.training and self.config.spec_augment:
            x = _spec_augment(x, lengths, self.config)
        return self.body(x, lengths)


def _spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: NeuralConfig) -> torch.Tensor:
    """Zero (the normalised mean) one random band and one random stretch of frames in each clip."""
    batch, frames, dims = x.shape
    width = torch.randint(0, min(config.freq_mask_width, dims) + 1, (batch,))
    low = (torch.rand(batch) * (dims - width + 1)).long()
    band = torch.arange(dims)[None, :]
    band = (band >= low[:, None]) & (band < (low + width)[:, None])
    span = torch.minimum(torch.randint(0, config.time_mask_width + 1, (batch,)), lengths // 5)
    start = (torch.rand(batch) * (lengths - span + 1)).long()
    stretch = torch.arange(frames)[None, :]
    stretch = (stretch >= start[:, None]) & (stretch < (start + span)[:, None])
    return x.masked_fill(band[:, None, :] | stretch[:, :, None], 0.0)
