"""Per-layer, time-pooled hidden states of a frozen backbone, cached on disk.

The frozen-probe mode runs the backbone once per clip and keeps, for every layer, the mean of its
hidden states over the frames the classification head would pool. Each clip's ``(layers, hidden)``
array is stored under a key made of the backbone's weights, the audio preprocessing and the clip's
bytes, so a second run, every fold and every recipe that shares them reuse the work.

Pooling mirrors ``*ForSequenceClassification`` / ``WhisperForAudioClassification`` exactly: the
wav2vec2 family averages the frames of the unpadded clip (masked when the extractor gives an
attention mask), Whisper averages every encoder position of its fixed-length (padded) input. That is
what lets a head trained on the cache be saved as an ordinary checkpoint that predicts the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ser_hf._io import cache_root, file_sha256
from ser_hf._output_folders import check_writable
from ser_hf.audio import AudioPreprocessor, audio_info
from ser_hf.errors import ModelError
from ser_hf.models.architecture import POOLABLE_MODEL_TYPES, batch_padding_is_exact
from ser_hf.models.cache_entries import finite_array, load_entries, load_entry, save_entry
from ser_hf.paths import display_path
from ser_hf.processes import launched_processes
from ser_hf.progress import progress_bar

logger = logging.getLogger(__name__)

def default_cache_dir() -> Path:
    """``$SER_HF_CACHE/embeddings`` or ``~/.cache/ser_hf/embeddings``."""
    return cache_root() / "embeddings"


#: Precisions the frozen forward may run in (``embedding_dtype``); float32 is the reference.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): the CUDA GPU, else Apple's MPS, else the CPU; otherwise the named device, checked.

    Raises:
        ModelError: for a device that does not exist here (the message lists what does).
    """
    if spec is None or str(spec) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:
        raise ModelError(f"device {spec!r} is not a device name; use auto, cpu, cuda, cuda:N or mps.") from err
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ModelError(f"device {spec!r} is not available here (available: {available}); use auto or cpu.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError(f"device 'mps' is not available here (available: {available}); use auto or cpu.")
    return device


#: Feature-extractor settings that change no input of the encoder (which processor class saved it).
_EXTRACTOR_BOOKKEEPING = ("processor_class",)
#: Config settings that change no frozen encoder output: the head's, bookkeeping, and what acts only in training
#: (dropout, layer drop, SpecAugment masking, the CTC loss), which a recipe may change without new states.
_CONFIG_HEAD_AND_BOOKKEEPING = frozenset({
    "id2label", "label2id", "num_labels", "problem_type", "use_weighted_layer_sum", "classifier_proj_size",
    "architectures", "finetuning_task", "transformers_version", "torch_dtype", "dtype", "return_dict",
    "output_hidden_states", "output_attentions", "use_cache", "model_type", "max_source_positions"})
_CONFIG_TRAINING_ONLY = ("dropout", "layerdrop", "mask_", "apply_spec_augment", "ctc_", "median_filter_width")


def _encoder_settings(config) -> str:
    """The config's settings that may change what the frozen encoder computes, as sorted JSON: ``hidden_act``,
    ``layer_norm_eps``, ``do_stable_layer_norm``, head counts, ``scale_embedding``... (a ``config.json`` edited with
    the same weights gives other states)."""
    values = {key: value for key, value in config.to_dict().items()
              if not key.startswith("_") and key not in _CONFIG_HEAD_AND_BOOKKEEPING
              and not any(part in key for part in _CONFIG_TRAINING_ONLY)}
    return json.dumps(values, sort_keys=True, default=str)


def backbone_fingerprint(model: torch.nn.Module, feature_extractor=None) -> str:
    """A hash of the model's type, input length, encoder settings (:func:`_encoder_settings`), precision and every
    backbone weight (the head is left out), and of ``feature_extractor``'s settings when given: they turn the samples
    into the encoder's input, so a checkpoint whose ``preprocessor_config.json`` or ``config.json`` was edited
    (another ``n_fft``, normalisation on or off, another activation) must not reuse its states.

    A float32 model keeps the key it had with the same extractor; another precision adds its name, so bfloat16
    features never answer for float32 ones.
    """
    digest = hashlib.sha256()
    if feature_extractor is not None:
        settings = {key: value for key, value in feature_extractor.to_dict().items()
                    if key not in _EXTRACTOR_BOOKKEEPING and not key.startswith("_")}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    config = model.config
    digest.update(f"{config.model_type}:{getattr(config, 'max_source_positions', '')}".encode())
    digest.update(_encoder_settings(config).encode())
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        digest.update(f"dtype:{dtype}".encode())
    for name, tensor in model.state_dict().items():
        if name.split(".")[0] in ("projector", "classifier", "layer_weights"):
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def _file_key(path: str) -> str:
    return file_sha256(path)[:32]


def _encoder_hidden_states(model: torch.nn.Module, inputs: dict) -> tuple[torch.Tensor, ...]:
    if model.config.model_type == "whisper":
        return model.encoder(inputs["input_features"], output_hidden_states=True).hidden_states
    base = getattr(model, model.base_model_prefix)
    return base(inputs["input_values"], attention_mask=inputs.get("attention_mask"), output_hidden_states=True).hidden_states


def _frame_mask(model: torch.nn.Module, inputs: dict, frames: int) -> torch.Tensor | None:
    """Which output frames belong to each clip, as the HF head computes it (None: all frames count)."""
    if model.config.model_type == "whisper" or inputs.get("attention_mask") is None:
        return None
    return model._get_feature_vector_attention_mask(frames, inputs["attention_mask"])


def encoder_inputs(model: torch.nn.Module, feature_extractor, waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """A batch of 16 kHz waves as the model's inputs, on its device and in its precision.

    Whisper's extractor makes its fixed-length log-mel itself; other encoders get raw audio padded to the
    longest clip, with an attention mask where their extractor makes one.
    """
    kwargs = {"sampling_rate": feature_extractor.sampling_rate, "return_tensors": "pt"}
    if model.config.model_type != "whisper":
        kwargs.update(padding=True, return_attention_mask=getattr(feature_extractor, "return_attention_mask", False))
    inputs = feature_extractor(list(waves), **kwargs)
    parameter = next(model.parameters())
    return {k: (v.to(parameter.device, parameter.dtype) if v.is_floating_point() else v.to(parameter.device))
            for k, v in inputs.items()}


@torch.inference_mode()
def pool_batch(model: torch.nn.Module, feature_extractor, waves: Sequence[np.ndarray]) -> np.ndarray:
    """Mean hidden state of every layer for a batch of 16 kHz waves: ``(batch, layers, hidden)``."""
    inputs = encoder_inputs(model, feature_extractor, waves)
    stacked = torch.stack(_encoder_hidden_states(model, inputs), dim=1)  # (batch, layers, frames, hidden)
    mask = _frame_mask(model, inputs, stacked.shape[2])
    if mask is None:
        pooled = stacked.mean(dim=2)
    else:
        weights = mask[:, None, :, None].to(stacked.dtype)
        pooled = (stacked * weights).sum(dim=2) / weights.sum(dim=2)
    return pooled.float().cpu().numpy()


def _batches(lengths: Sequence[float], batch_size: int) -> list[list[int]]:
    """Indices in batches of similar length (shortest first), so little compute goes to padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pooled_shape(model: torch.nn.Module) -> tuple[int, int]:
    """``(layers, hidden)`` of one clip's pooled states: the embedding output and every encoder layer's."""
    return int(model.config.num_hidden_layers) + 1, int(model.config.hidden_size)


def check_cache_writable(root: Path) -> None:
    """Refuse, before the backbone runs, a cache folder that cannot be written (a read-only mount, another user's)."""
    check_writable(root, f"the cache of backbone states {display_path(root)!r} (embedding_cache_dir)",
                   "the states computed")


def pooled_hidden_states(
    model: torch.nn.Module,
    feature_extractor,
    paths: Sequence[str],
    *,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "backbone forward",
) -> np.ndarray:
    """Per-layer mean hidden states of every file, computed once and cached: ``(clips, layers, hidden)``.

    Args:
        model: An ``AutoModelForAudioClassification`` of a :data:`POOLABLE_MODEL_TYPES` architecture
            (only its backbone runs).
        feature_extractor: Its feature extractor (sets the input length for Whisper).
        paths: Audio files.
        preprocessor: Audio cleaning before the feature extractor; defaults to decode + resample only.
        cache_dir: Where to keep the arrays (default :func:`default_cache_dir`).
        batch_size: Clips per forward pass, grouped by length. Models where padding could change the
            result (no attention mask, a group-norm front end) run one clip at a time.
        progress: Show a progress bar while clips are computed.
        desc: The progress bar's label.

    Returns:
        A float32 array; row ``i`` belongs to ``paths[i]``.
    """
    if model.config.model_type not in POOLABLE_MODEL_TYPES:
        raise ModelError(
            f"The frozen probe needs a weighted-layer-sum head; model type {model.config.model_type!r} has none. "
            f"Supported: {list(POOLABLE_MODEL_TYPES)}. Fine-tune it instead (mode: finetune)."
        )
    preprocessor = preprocessor or AudioPreprocessor(sampling_rate=feature_extractor.sampling_rate)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / backbone_fingerprint(model, feature_extractor) / preprocessor.fingerprint()
    targets = [folder / f"{_file_key(str(p))}.npy" for p in paths]
    usable = finite_array(pooled_shape(model))
    pooled = load_entries(targets, usable)  # a damaged entry is removed here and computed again below
    # Under accelerate launch / torchrun every process computes its share of the missing clips and writes
    # them atomically into the shared cache; after the barrier every process reads them all.
    processes = launched_processes()
    todo, mine = processes.missing_share(targets)
    logger.info("pooled hidden states: %d of %d clips cached in %s", len(paths) - len(todo), len(paths), folder)
    if mine:
        check_cache_writable(root)
        _compute_missing(model, feature_extractor, [paths[i] for i in mine], [targets[i] for i in mine],
                         preprocessor, batch_size, progress and processes.is_main, desc)
    if todo:
        processes.barrier()
    pooled.update({i: array for i in todo if (array := load_entry(targets[i], usable)) is not None})
    missing = [str(targets[i]) for i in todo if i not in pooled]
    if missing:
        raise ModelError(f"{len(missing)} cached pooled state(s) are missing after every process finished, e.g. "
                         f"{missing[0]}; with several processes (or machines) the cache folder {str(folder)!r} must "
                         f"be shared by all of them (embedding_cache_dir on a shared filesystem).")
    return np.stack([pooled[i] for i in range(len(targets))])


def _compute_missing(model, feature_extractor, paths, targets, preprocessor, batch_size, progress, desc) -> None:
    """Forward the clips batch by batch, decoding each batch just before it runs (bounded memory)."""
    model.eval()
    if not batch_padding_is_exact(model, feature_extractor):
        batch_size = 1  # padding would leak into the pooled states (no mask, or a group-norm front end)
    batches = _batches([audio_info(path).duration for path in paths], batch_size)
    with progress_bar(progress, total=len(paths), desc=desc, unit="clip") as bar:
        for batch in batches:
            pooled = pool_batch(model, feature_extractor, [preprocessor(paths[i]) for i in batch])
            for row, index in zip(pooled, batch):
                save_entry(targets[index], row)
            bar.update(len(batch))


def pool_waves(model: torch.nn.Module, feature_extractor, waves: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """:func:`pool_batch` over many ready 16 kHz waves, batched by length where padding is exact: ``(n, L, H)``."""
    if model.config.model_type not in POOLABLE_MODEL_TYPES:
        raise ModelError(f"Pooled states need a weighted-layer-sum head; model type {model.config.model_type!r} has "
                         f"none. Supported: {list(POOLABLE_MODEL_TYPES)}.")
    if not waves:
        return np.zeros((0, 0, 0), dtype=np.float32)
    model.eval()
    size = batch_size if batch_padding_is_exact(model, feature_extractor) else 1
    pooled: list[np.ndarray | None] = [None] * len(waves)
    for batch in _batches([len(wave) for wave in waves], size):
        for row, index in zip(pool_batch(model, feature_extractor, [waves[i] for i in batch]), batch):
            pooled[index] = row
    return np.stack(pooled)
