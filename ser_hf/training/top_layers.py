"""The trainable top of partial fine-tuning: which layers train, and :class:`TopLayers`, the module that trains.

:func:`first_trained_layer` says where a model is split (and refuses architectures whose layers cannot start
from a cached layer input). :class:`TopLayers` holds copies of the top ``k`` encoder layers, the final norm
and the HF head; it computes from the cached input of layer ``L - k`` exactly what the full model computes,
and copies its trained weights back into it (:meth:`TopLayers.load_into`). How it is trained and on what is
:mod:`ser_hf.training.partial`'s.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput

from ser_hf.errors import ModelError, SERError
from ser_hf.models.layer_inputs import encoder_of, encoder_path, final_norm

__all__ = ["PARTIAL_MODEL_TYPES", "TopLayers", "first_trained_layer"]

#: Architectures whose top layers can train on a cached layer input.
PARTIAL_MODEL_TYPES = ("whisper", "wav2vec2", "hubert", "data2vec-audio")
_REFUSED = {
    "wavlm": "its layers pass on a relative position bias that the first layer computes, which a cached layer "
             "input does not hold",
    "audio-spectrogram-transformer": "ser_hf does not split its encoder",
}


# --- which layers train -----------------------------------------------------------------------------


def first_trained_layer(model: nn.Module, top_layers: int) -> int:
    """Index ``L - k`` of the lowest layer that trains; raises :class:`SERError` for an unsupported model or ``k``."""
    model_type = model.config.model_type
    if model_type not in PARTIAL_MODEL_TYPES:
        reason = _REFUSED.get(model_type, "it is not supported")
        raise ModelError(f"mode: partial cannot split model type {model_type!r}: {reason}. Supported: "
                         f"{list(PARTIAL_MODEL_TYPES)}. Use mode: finetune or mode: probe for it.")
    depth = len(encoder_of(model).layers)
    if not isinstance(top_layers, int) or not 1 <= top_layers <= depth:
        raise SERError(f"train_top_layers must be between 1 and the model's number of encoder layers ({depth} for "
                       f"this {model_type} checkpoint), got {top_layers!r}. Set train_top_layers to 1..{depth}.")
    return depth - top_layers


# --- the trainable top ------------------------------------------------------------------------------


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask[:, :, None].to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class TopLayers(nn.Module):
    """Copies of the top encoder layers, the final norm and the HF head, on cached inputs of the lowest of them.

    Args:
        model: The full classifier (only copied from).
        layer: Index of the first trained layer (``L - k``).
        last_entry_normed: With the weighted layer sum: whether the model's last hidden state in the sum is
            taken after the final norm (transformers' choice differs by architecture and version; see
            :meth:`PartialMethod.build_top`).
    """

    def __init__(self, model: nn.Module, layer: int, last_entry_normed: bool = True):
        super().__init__()
        self.config = model.config
        self.layer = layer
        self.encoder_path = encoder_path(model)
        self.layers = copy.deepcopy(encoder_of(model).layers[layer:])
        norm = final_norm(model)
        self.final_norm = copy.deepcopy(norm) if norm is not None else None
        self.weighted = bool(getattr(model.config, "use_weighted_layer_sum", False))
        if self.weighted:
            self.layer_weights = nn.Parameter(model.layer_weights.detach().clone())
        self.projector = copy.deepcopy(model.projector)
        self.classifier = copy.deepcopy(model.classifier)
        self.last_entry_normed = last_entry_normed
        self.requires_grad_(True)

    def pooled_features(self, states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        lower: torch.Tensor | None = None) -> torch.Tensor:
        """What the head pools, per clip: ``(batch, L + 1, hidden)`` with the weighted sum, else ``(batch, 1, hidden)``."""
        hidden, mask = states, attention_mask
        extended = None
        if mask is not None and self.config.model_type != "whisper":  # Whisper's encoder takes no mask
            extended = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        entries = []
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=extended)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            entries.append(hidden)
        last = self.final_norm(hidden) if self.final_norm is not None else hidden
        if not self.weighted:
            return _pool(last, mask)[:, None]
        if lower is None:
            raise SERError("TopLayers with the weighted layer sum needs the pooled lower states (lower=...).")
        entries[-1] = last if self.last_entry_normed else hidden
        top = torch.stack([_pool(entry, mask) for entry in entries], dim=1)
        return torch.cat([lower.to(top.dtype), top], dim=1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`pooled_features` (the HF head, with the mean over frames moved before it)."""
        if self.weighted:
            weights = torch.softmax(self.layer_weights, dim=-1)
            features = (features * weights[None, :, None]).sum(dim=1)
        else:
            features = features[:, 0]
        return self.classifier(self.projector(features))

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                lower: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        # labels are in the signature so that the Trainer evaluates the loss; SERTrainer.compute_loss computes it.
        return SequenceClassifierOutput(logits=self.head(self.pooled_features(states, attention_mask, lower)))

    def model_state(self) -> dict[str, torch.Tensor]:
        """These weights under the full model's parameter names."""
        prefix, out = self.encoder_path, {}
        for name, tensor in self.state_dict().items():
            if name.startswith("layers."):
                index, rest = name[len("layers."):].split(".", 1)
                name = f"{prefix}.layers.{self.layer + int(index)}.{rest}"
            elif name.startswith("final_norm."):
                name = f"{prefix}.layer_norm.{name[len('final_norm.'):]}"
            out[name] = tensor.detach().to("cpu", torch.float32)
        return out

    def load_into(self, model: nn.Module) -> nn.Module:
        """Copy the trained layers, norm and head into the full model (in place)."""
        state, target = self.model_state(), model.state_dict()
        wrong = [name for name, value in state.items() if name not in target or target[name].shape != value.shape]
        if wrong:
            raise ModelError(f"TopLayers.load_into: the model has no parameter(s) {wrong[:3]} of these shapes; load "
                             f"into the model the TopLayers was built from.")
        model.load_state_dict(state, strict=False)
        return model
