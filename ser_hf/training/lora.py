"""LoRA adapters (peft) for fine-tuning: wrap a model before training, merge them before saving a plain checkpoint."""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel

from ser_hf.errors import SERError

__all__ = ["apply_lora", "merge_lora"]


def apply_lora(model: PreTrainedModel, args) -> nn.Module:
    """Wrap ``model`` in peft LoRA adapters on ``args.lora_target_modules``; the head trains fully.

    Raises:
        SERError: if peft is not installed, or a target module does not exist in the model.
    """
    try:
        import peft
    except ImportError:
        raise SERError("use_lora=True needs the peft package, which is not installed. Install it with "
                       "pip install 'ser-hf[lora]' (or pip install 'peft>=0.11'), or set use_lora false.") from None
    targets = [name.strip() for name in args.lora_target_modules.split(",") if name.strip()]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [name for name in targets if name not in present]
    if unknown:
        raise SERError(f"lora_target_modules {unknown} do not exist in {model.config.model_type}; linear layers "
                       f"there include {sorted(n for n, m in _linear_names(model))[:12]}.")
    head = [name for name, _ in model.named_children() if name in ("projector", "classifier")]
    config = peft.LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                             target_modules=targets, modules_to_save=head)
    wrapped = peft.get_peft_model(model, config)
    if getattr(model.config, "use_weighted_layer_sum", False):
        model.layer_weights.requires_grad_(True)  # a bare parameter, not a module peft could keep trainable
    return wrapped


def _linear_names(model: nn.Module):
    seen = set()
    for name, module in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and short not in seen:
            seen.add(short)
            yield short, module


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the base weights (a plain model for ``save_pretrained``); others pass through."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
