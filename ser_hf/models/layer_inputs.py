"""Inputs of one encoder layer, per clip, cached on disk: the frozen part of partial fine-tuning.

For a Whisper or wav2vec2-family classifier, :func:`layer_inputs` runs the encoder up to layer ``i`` once per
clip (a hook on layer ``i`` stops the forward there) and caches what enters it, in float16, with the mean of
hidden states ``0..i`` over the clip's frames (what a weighted-layer-sum head reads from the frozen layers).
Keys extend the probe's pooled cache (:mod:`ser_hf.models.pooling`): backbone fingerprint, preprocessing
and clip bytes, plus the layer. :mod:`ser_hf.training.partial` trains the layers above on them.

Example:
    >>> cached = layer_inputs(model, extractor, ["a.wav", "b.wav"], layer=5)  # doctest: +SKIP
    >>> cached.states[0].shape, cached.states[0].dtype, cached.bytes  # doctest: +SKIP
    ((300, 512), dtype('float16'), 626688)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_hf.audio import AudioPreprocessor, audio_info
from ser_hf.errors import ModelError
from ser_hf.models.architecture import batch_padding_is_exact
from ser_hf.models.cache_entries import finite_array, load_entry, save_entry
from ser_hf.models.pooling import (
    _batches,
    _encoder_hidden_states,
    _file_key,
    _frame_mask,
    backbone_fingerprint,
    check_cache_writable,
    default_cache_dir,
    encoder_inputs,
)
from ser_hf.processes import launched_processes
from ser_hf.progress import progress_bar

__all__ = ["CachedInputs", "encoder_of", "encoder_path", "final_norm", "forward_to_layer", "layer_inputs"]

logger = logging.getLogger(__name__)


def encoder_path(model: nn.Module) -> str:
    """Dotted name of the transformer encoder in the classifier (``encoder``, ``wav2vec2.encoder``, ...)."""
    return "encoder" if model.config.model_type == "whisper" else f"{model.base_model_prefix}.encoder"


def encoder_of(model: nn.Module) -> nn.Module:
    """The transformer encoder (its ``layers`` are the layers partial fine-tuning splits)."""
    return model.get_submodule(encoder_path(model))


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm after the last layer: Whisper and stable-layer-norm variants; post-norm wav2vec2 has it before."""
    if model.config.model_type == "whisper" or getattr(model.config, "do_stable_layer_norm", False):
        return encoder_of(model).layer_norm
    return None


class _Stop(Exception):
    """Raised by the hook on the first trained layer: the frozen forward need not run further."""


@torch.inference_mode()
def forward_to_layer(model: nn.Module, feature_extractor, waves: Sequence[np.ndarray],
                     layer: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip: the input of ``layer`` over its own frames ``(frames, hidden)`` and the mean of hidden states
    ``0..layer`` over those frames ``(layer + 1, hidden)`` (the HF head's ``hidden_states[0..layer]``)."""
    inputs = encoder_inputs(model, feature_extractor, waves)
    seen: list[torch.Tensor] = []

    def grab(module, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])
        if len(seen) == layer + 1:
            raise _Stop

    layers = encoder_of(model).layers
    hooks = [layers[i].register_forward_pre_hook(grab, with_kwargs=True) for i in range(layer + 1)]
    try:
        _encoder_hidden_states(model, inputs)
    except _Stop:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    stacked = torch.stack(seen, dim=1).float()  # (batch, layer + 1, frames, hidden)
    mask = _frame_mask(model, inputs, stacked.shape[2])
    frames = [stacked.shape[2]] * len(waves) if mask is None else mask.sum(dim=1).tolist()
    return [(stacked[b, -1, :n].cpu().numpy(), stacked[b, :, :n].mean(dim=1).cpu().numpy())
            for b, n in enumerate(frames)]


@dataclass
class CachedInputs:
    """Cached inputs of one layer for a list of clips, and what it cost."""

    states: list[np.ndarray]  # per clip (frames, hidden), float16 (float32 where float16 would overflow)
    lower: list[np.ndarray]  # per clip (layer + 1, hidden), float32: means of hidden states 0..layer
    computed: int  # clips computed now (the others came from the cache)
    seconds: float  # time spent computing them
    sizes: list[int]  # bytes on disk per clip
    folder: Path

    @property
    def bytes(self) -> int:
        return sum(self.sizes)


def _save_clip(state: np.ndarray, lower: np.ndarray, target: Path) -> None:
    half = state.astype(np.float16)
    # The pooled means go first: a states file on disk means the clip is complete.
    save_entry(target.with_suffix(".pooled.npy"), lower.astype(np.float32))
    save_entry(target, half if np.isfinite(half).all() else state.astype(np.float32))


def _load_clip(target: Path, layer: int, hidden: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A clip's cached ``(states, pooled means)``, or ``None`` when either file is missing or damaged (both are
    then removed, to be computed again: :mod:`~ser_hf.models.cache_entries`)."""
    state = load_entry(target, finite_array((-1, hidden), (np.float16, np.float32)))
    lower = None if state is None else load_entry(target.with_suffix(".pooled.npy"), finite_array((layer + 1, hidden)))
    if state is None or lower is None:
        for path in (target, target.with_suffix(".pooled.npy")):
            path.unlink(missing_ok=True)  # load_entry left only usable regular files
        return None
    return state, lower


def layer_inputs(model: nn.Module, feature_extractor, paths: Sequence[str], layer: int, *,
                 fingerprint: str | None = None, preprocessor: AudioPreprocessor | None = None,
                 cache_dir: str | Path | None = None, batch_size: int = 8, progress: bool = True) -> CachedInputs:
    """The input of encoder layer ``layer`` for every clip, computed once and cached on disk.

    Files live under ``cache_dir/<backbone fingerprint>/<preprocessing>/layer-<layer>-input/<clip hash>.npy``
    (the pooled cache's keys plus the layer), the pooled means of hidden states ``0..layer`` beside them.

    Args:
        model: An ``AutoModelForAudioClassification`` of a :data:`PARTIAL_MODEL_TYPES` architecture.
        feature_extractor: Its feature extractor.
        paths: Audio files.
        layer: Index of the layer whose input is cached (``L - k``).
        fingerprint: The backbone's fingerprint, if already known (default: computed from ``model`` and
            ``feature_extractor``).
        preprocessor: Audio cleaning before the feature extractor; defaults to decode + resample only.
        cache_dir: Root of the cache (default :func:`~ser_hf.models.pooling.default_cache_dir`).
        batch_size: Clips per forward pass (1 where padding would change the states).
        progress: Show a progress bar while computing.

    Returns:
        :class:`CachedInputs`, row ``i`` belonging to ``paths[i]``.
    """
    preprocessor = preprocessor or AudioPreprocessor(sampling_rate=feature_extractor.sampling_rate)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = (root / (fingerprint or backbone_fingerprint(model, feature_extractor)) / preprocessor.fingerprint()
              / f"layer-{layer}-input")
    targets = [folder / f"{_file_key(str(p))}.npy" for p in paths]
    hidden = int(model.config.hidden_size)
    loaded = {i: clip for i, target in enumerate(targets) if (clip := _load_clip(target, layer, hidden)) is not None}
    processes, start = launched_processes(), time.perf_counter()
    todo, mine = processes.missing_share(targets)
    logger.info("layer %d inputs: %d of %d clips cached in %s", layer, len(paths) - len(todo), len(paths), folder)
    if mine:
        check_cache_writable(root)
        model.eval()
        size = batch_size if batch_padding_is_exact(model, feature_extractor) else 1
        batches = _batches([audio_info(paths[i]).duration for i in mine], size)
        with progress_bar(progress, total=len(mine), desc=f"layer {layer} inputs", unit="clip") as bar:
            for batch in batches:
                waves = [preprocessor(paths[mine[j]]) for j in batch]
                for (state, lower), j in zip(forward_to_layer(model, feature_extractor, waves, layer), batch):
                    _save_clip(state, lower, targets[mine[j]])
                bar.update(len(batch))
    if todo:
        processes.barrier()
    seconds = time.perf_counter() - start
    loaded.update({i: clip for i in todo if (clip := _load_clip(targets[i], layer, hidden)) is not None})
    missing = [str(targets[i]) for i in todo if i not in loaded]
    if missing:
        raise ModelError(f"{len(missing)} cached layer input(s) are missing after every process finished, e.g. "
                         f"{missing[0]}; the cache folder {str(folder)!r} must be shared by all processes.")
    sizes = [os.path.getsize(t) + os.path.getsize(t.with_suffix(".pooled.npy")) for t in targets]
    return CachedInputs([loaded[i][0] for i in range(len(targets))], [loaded[i][1] for i in range(len(targets))],
                        len(todo), seconds, sizes, folder)
