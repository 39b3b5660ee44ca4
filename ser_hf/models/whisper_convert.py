"""Convert a CTranslate2 (faster-whisper) Whisper model into a Hugging Face Whisper checkpoint.

OpenAI's Whisper weights reach machines without Hub access as faster-whisper directories
(``model.bin``, ``config.json``, ``vocabulary.txt``/``tokenizer.json``). This module turns one into a
directory that ``WhisperForAudioClassification.from_pretrained(DIR)``,
``WhisperForConditionalGeneration.from_pretrained(DIR)`` and ``AutoFeatureExtractor.from_pretrained(DIR)``
load offline. The architecture (widths, depths, heads, vocabulary, mel bins) is read from the weights,
so any Whisper size converts, including int8/int16-quantized models (dequantized on the way).

Weight mapping (CTranslate2 ``WhisperSpec`` -> ``transformers`` ``WhisperForConditionalGeneration``):

- ``*/self_attention/linear_0`` is q, k and v fused along the output rows: split in three. ctranslate2
  stores a zero key bias because Whisper has none; a key bias would not change attention anyway (it
  adds the same ``q . b_k`` to every key's logit, which softmax cancels), so dropping it is exact.
- decoder ``attention/linear_0`` is the cross-attention query, ``linear_1`` fuses key and value.
- ``decoder/projection`` is an alias of ``decoder/embeddings`` (tied output projection).

Weights are written as float32 whatever the source dtype (float16 in faster-whisper releases):
transformers 5 loads a checkpoint in its stored dtype by default, and float16 weights on CPU are slow,
lose small updates when trained directly, and would make the encoder output differ from
ctranslate2's float32 compute. Upcasting float16 is exact (float32 holds every float16 value); the
source dtype is recorded in ``conversion.json``. Pass ``dtype=torch.float16`` to ``from_pretrained``
to get half precision back on a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf._atomic_folder import atomic_directory, folder_entries
from ser_hf._io import default_permissions
from ser_hf._output_folders import check_output_folder
from ser_hf.errors import ModelError
from ser_hf.models.ct2_reader import CT2Model, parse_ct2_bytes
from ser_hf.models.ct2_source import (
    SUPPRESS_KEYS,
    check_ct2_config,
    check_source_dir,
    describe_listing,
    read_whisper_dir,
    vocabulary_file,
)
from ser_hf.paths import display_path

logger = logging.getLogger(__name__)

CONVERSION_FILE = "conversion.json"
WEIGHTS_FILE = "model.safetensors"
#: What every conversion writes; a conversion record without a ``files`` list (older ser_hf) stands for these.
CONVERSION_OUTPUTS = (CONVERSION_FILE, "config.json", "preprocessor_config.json", WEIGHTS_FILE)
# Whisper's attention heads are always 64 wide; used only for files too old to store num_heads.
_WHISPER_HEAD_DIM = 64


def _float32(model: CT2Model, name: str) -> np.ndarray:
    """Returns variable ``name`` as a new float32 array, dequantizing int8/int16 weights."""
    if name not in model:
        raise ModelError(
            f"{model.source} has no variable {name!r}: it is not a complete CTranslate2 Whisper model. "
            "Convert a Whisper model directory made by ctranslate2/faster-whisper."
        )
    array, dtype = model[name], model.dtype_of(name)
    if dtype not in ("int8", "int16"):
        return array.astype(np.float32)
    scope = name.rsplit("/", 1)[0]
    if f"{scope}/weight_zero" in model:
        raise ModelError(f"{model.source}: {scope} uses AWQ/GPTQ quantization (weight_zero), which cannot be converted.")
    scale = model.get(f"{scope}/weight_scale")
    if scale is None:
        raise ModelError(f"{model.source}: {name!r} is {dtype} but {scope}/weight_scale is missing, so it cannot be dequantized.")
    # ctranslate2 stores round(w * scale), per output row for int8 and one scalar for int16.
    scale = scale.astype(np.float32).reshape((-1,) + (1,) * (array.ndim - 1)) if scale.ndim else scale.astype(np.float32)
    return array.astype(np.float32) / scale


def _split(array: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise ModelError(f"fused weight {name!r} has {array.shape[0]} rows, which do not split into {parts} equal parts.")
    return [np.ascontiguousarray(a) for a in np.split(array, parts, axis=0)]


def _linear(model: CT2Model, src: str, dst: str, out: dict[str, np.ndarray], bias: bool = True) -> None:
    out[f"{dst}.weight"] = _float32(model, f"{src}/weight")
    if bias:
        out[f"{dst}.bias"] = _float32(model, f"{src}/bias")


def _layer_norm(model: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = _float32(model, f"{src}/gamma")
    out[f"{dst}.bias"] = _float32(model, f"{src}/beta")


def _fused(model: CT2Model, src: str, dst: str, projs: tuple[str, ...], out: dict[str, np.ndarray]) -> None:
    """Splits a fused projection ``src`` into ``dst.<proj>``; ``k_proj`` gets no bias (see module doc)."""
    weights = _split(_float32(model, f"{src}/weight"), len(projs), f"{src}/weight")
    biases = _split(_float32(model, f"{src}/bias"), len(projs), f"{src}/bias")
    for proj, weight, bias in zip(projs, weights, biases):
        out[f"{dst}.{proj}.weight"] = weight
        if proj != "k_proj":
            out[f"{dst}.{proj}.bias"] = bias


def _common_layer(model: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    _fused(model, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q_proj", "k_proj", "v_proj"), out)
    _linear(model, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
    _layer_norm(model, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
    _linear(model, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
    _linear(model, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
    _layer_norm(model, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)


def _count_layers(model: CT2Model, stack: str) -> int:
    count = 0
    while f"{stack}/layer_{count}/ffn/linear_0/weight" in model:
        count += 1
    return count


def whisper_state_dict(model: CT2Model, encoder_only: bool = False) -> dict[str, np.ndarray]:
    """Maps the variables of a CTranslate2 ``WhisperSpec`` model to ``WhisperForConditionalGeneration`` names.

    Args:
        model: The parsed ``model.bin``.
        encoder_only: Map the encoder only (all that ``WhisperForAudioClassification`` uses).

    Returns:
        float32 arrays keyed like ``model.encoder.layers.0.self_attn.q_proj.weight``. The output
        projection is left out when it is tied to the token embedding (as in every Whisper).

    Example:
        ```python
        >>> state = whisper_state_dict(read_ct2_model("faster-whisper-tiny"), encoder_only=True)  # doctest: +SKIP
        >>> state["model.encoder.conv1.weight"].shape  # doctest: +SKIP
        (384, 80, 3)

        ```
    """
    _check_whisper_spec(model)
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(model, f"encoder/{conv}", f"model.encoder.{conv}", out)
    out["model.encoder.embed_positions.weight"] = _float32(model, "encoder/position_encodings/encodings")
    for i in range(_count_layers(model, "encoder")):
        _common_layer(model, f"encoder/layer_{i}", f"model.encoder.layers.{i}", out)
    _layer_norm(model, "encoder/layer_norm", "model.encoder.layer_norm", out)
    if encoder_only:
        return out
    out["model.decoder.embed_tokens.weight"] = _float32(model, "decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = _float32(model, "decoder/position_encodings/encodings")
    for i in range(_count_layers(model, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _common_layer(model, src, dst, out)
        _linear(model, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", out)
        _fused(model, f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k_proj", "v_proj"), out)
        _linear(model, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", out)
        _layer_norm(model, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
    _layer_norm(model, "decoder/layer_norm", "model.decoder.layer_norm", out)
    if "decoder/projection/bias" in model and np.any(model["decoder/projection/bias"]):
        raise ModelError(f"{model.source}: the output projection has a bias, which Whisper does not have.")
    if not _projection_tied(model):
        out["proj_out.weight"] = _float32(model, "decoder/projection/weight")
    return out


def _projection_tied(model: CT2Model) -> bool:
    if model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight":
        return True
    return bool(np.array_equal(model.get("decoder/projection/weight"), model["decoder/embeddings/weight"]))


def _check_whisper_spec(model: CT2Model) -> None:
    if model.spec != "WhisperSpec":
        raise ModelError(
            f"{model.source} holds a {model.spec or 'version-1 Transformer'!r} model, expected 'WhisperSpec'. "
            "Only Whisper models (e.g. faster-whisper directories) can be converted."
        )


def _special_token_ids(vocab_size: int, tokens: list[str] | None, vocabulary: str) -> tuple[int, int]:
    """Returns (``<|endoftext|>``, ``<|startoftranscript|>``) ids, from the vocabulary when there is one.

    A vocabulary that is not this model's would give wrong ids silently (or crash transformers), so it must have one
    token per embedding row and hold both specials side by side, as every Whisper vocabulary does.
    """
    fix = "Use the vocabulary shipped with this model.bin."
    if tokens is not None:
        if len(tokens) != vocab_size:
            raise ModelError(f"{vocabulary} has {len(tokens)} tokens, but the model has {vocab_size} (rows of its "
                             f"decoder/embeddings): it is the vocabulary of another model. {fix}")
        if "<|endoftext|>" not in tokens or "<|startoftranscript|>" not in tokens:
            raise ModelError(f"{vocabulary} has no <|endoftext|> or no <|startoftranscript|> token, so it is not a "
                             f"Whisper vocabulary. {fix}")
        eot, sot = tokens.index("<|endoftext|>"), tokens.index("<|startoftranscript|>")
        if sot != eot + 1:
            raise ModelError(f"{vocabulary} has <|endoftext|> at id {eot} and <|startoftranscript|> at id {sot}; "
                             f"every Whisper vocabulary has them side by side, so it is damaged or reordered. {fix}")
        return eot, sot
    # English-only checkpoints have one token fewer (no language tokens shift the specials).
    eot = 50256 if vocab_size == 51864 else 50257
    if eot + 1 >= vocab_size:
        raise ModelError(f"{vocabulary} is missing and the model has {vocab_size} token embeddings, too few for "
                         f"Whisper's usual special-token ids ({eot}, {eot + 1}). Put the vocabulary shipped with this "
                         f"model.bin (vocabulary.json or vocabulary.txt) beside it.")
    return eot, eot + 1


def whisper_config(model: CT2Model, ct2_config: dict[str, Any] | None = None, tokens: list[str] | None = None, *,
                   vocabulary: str | None = None):
    """Builds the ``transformers.WhisperConfig`` matching the weights of a CTranslate2 Whisper model.

    Args:
        model: The parsed ``model.bin``.
        ct2_config: The model directory's ``config.json`` (suppressed token ids), if any.
        tokens: The vocabulary (one token per id), used to find the special token ids.
        vocabulary: The file ``tokens`` come from, for messages.

    Returns:
        A ``WhisperConfig`` whose dimensions come from the weight shapes.

    Raises:
        ModelError: ``tokens`` or ``ct2_config`` do not fit the weights (another model's vocabulary or config).

    Example:
        ```python
        >>> config = whisper_config(read_ct2_model("faster-whisper-base"))  # doctest: +SKIP
        >>> config.d_model, config.encoder_layers, config.vocab_size  # doctest: +SKIP
        (512, 6, 51865)

        ```
    """
    from transformers import WhisperConfig

    _check_whisper_spec(model)
    d_model, num_mel_bins, _ = model["encoder/conv1/weight"].shape
    vocab_size = model["decoder/embeddings/weight"].shape[0]
    source_dir = model.source.removesuffix("model.bin")
    eot, sot = _special_token_ids(int(vocab_size), tokens, vocabulary or f"the vocabulary of {source_dir or model.source}")
    extra = {}
    if ct2_config is not None:
        check_ct2_config(ct2_config, f"{source_dir}config.json" if source_dir else "config.json", int(vocab_size))
        for key, name in zip(SUPPRESS_KEYS, ("suppress_tokens", "begin_suppress_tokens")):
            if ct2_config.get(key) is not None:
                extra[name] = list(ct2_config[key])
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(num_mel_bins),
        d_model=int(d_model),
        encoder_layers=_count_layers(model, "encoder"),
        decoder_layers=_count_layers(model, "decoder"),
        encoder_attention_heads=_num_heads(model, "encoder", d_model),
        decoder_attention_heads=_num_heads(model, "decoder", d_model),
        encoder_ffn_dim=int(model["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(model["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(model["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(model["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=_projection_tied(model),
        architectures=["WhisperForConditionalGeneration"],
        **extra,
    )


def _num_heads(model: CT2Model, stack: str, d_model: int) -> int:
    heads = model.get(f"{stack}/num_heads")
    return int(heads) if heads is not None else d_model // _WHISPER_HEAD_DIM


def _check_against_transformers(state: dict[str, np.ndarray], config, encoder_only: bool) -> None:
    """Checks names and shapes against the installed transformers, so a renamed parameter fails loudly here."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not (encoder_only and not k.startswith("model.encoder."))}
    if config.tie_word_embeddings:
        expected.pop("proj_out.weight", None)
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        raise ModelError(
            f"converted weights do not match transformers' Whisper: missing {missing[:5]}, unexpected {extra[:5]}, "
            f"wrong shapes {shapes[:5]}. The CTranslate2 model is not a standard Whisper model."
        )


def _check_finite(state: dict[str, np.ndarray], source: str) -> None:
    for name, array in state.items():
        if not np.isfinite(array).all():
            raise ModelError(f"{source} is corrupted: {name} has NaN or infinite values. Re-install or re-download it.")


def convert_whisper(
    src_dir: str | os.PathLike, out_dir: str | os.PathLike, *, encoder_only: bool = False, overwrite: bool = False,
    argument: str = "out_dir", replace_hint: str = "pass overwrite=True (--force)",
) -> Path:
    """Converts a CTranslate2/faster-whisper Whisper directory into a transformers checkpoint.

    Args:
        src_dir: The faster-whisper directory (``model.bin``, ``config.json``, ``vocabulary.txt``).
        out_dir: Where to write the checkpoint; written atomically (temporary directory, then rename).
        encoder_only: Write the encoder only: 4-5x smaller, and all that ``WhisperForAudioClassification`` uses.
        overwrite: Replace ``out_dir`` if it is an earlier conversion (a folder holding other files, ``src_dir`` or a
            folder holding it are always refused).
        argument: How the caller names ``out_dir`` in error messages (``OUT_DIR`` on the command line).
        replace_hint: How the caller's user replaces an earlier conversion, for the message (``pass --force``).

    Returns:
        ``out_dir``, holding ``config.json``, ``model.safetensors`` (float32), ``preprocessor_config.json``
        and ``conversion.json`` (source, its SHA-256 and dtype).

    Raises:
        ModelError: If the source is missing, truncated, corrupted or not Whisper, its vocabulary or config.json is
            damaged or another model's, or ``out_dir`` is a file, is (or
            holds) ``src_dir``, holds anything but an earlier conversion, or is an earlier conversion and not
            ``overwrite``.

    Example:
        ```python
        >>> from transformers import WhisperForAudioClassification
        >>> out = convert_whisper("faster-whisper-small", "whisper-small-hf", encoder_only=True)  # doctest: +SKIP
        >>> model = WhisperForAudioClassification.from_pretrained(out, num_labels=4)  # doctest: +SKIP

        ```
    """
    check_source_dir(src_dir)  # before the output check, which resolves it
    check_conversion_output(out_dir, sources=[src_dir], overwrite=overwrite, argument=argument,
                            replace_hint=replace_hint)
    data, ct2_config, tokens = read_whisper_dir(src_dir)
    model = parse_ct2_bytes(data, source=str(Path(src_dir) / "model.bin"))
    provenance = {"source": str(Path(src_dir).resolve()), "source_sha256": hashlib.sha256(data).hexdigest()}
    vocabulary = vocabulary_file(src_dir)
    return convert_ct2_whisper(
        model, out_dir, ct2_config=ct2_config, tokens=tokens, encoder_only=encoder_only, overwrite=overwrite,
        provenance=provenance, sources=[src_dir], argument=argument, replace_hint=replace_hint,
        vocabulary=display_path(vocabulary) if vocabulary else None,
    )


def convert_ct2_whisper(
    model: CT2Model,
    out_dir: str | os.PathLike,
    *,
    ct2_config: dict[str, Any] | None = None,
    tokens: list[str] | None = None,
    encoder_only: bool = False,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    sources: Sequence[str | os.PathLike] = (),
    argument: str = "out_dir",
    replace_hint: str = "pass overwrite=True (--force)",
    vocabulary: str | None = None,
) -> Path:
    """Writes a parsed CTranslate2 Whisper model as a transformers checkpoint (see :func:`convert_whisper`).

    Args:
        model: The parsed ``model.bin``.
        out_dir: Output directory, written atomically.
        ct2_config: The source ``config.json``, if any.
        tokens: The source vocabulary, if any.
        encoder_only: Write the encoder only.
        overwrite: Replace ``out_dir`` if it is an earlier conversion (see :func:`check_conversion_output`).
        provenance: Extra fields for ``conversion.json`` (e.g. source path and SHA-256).
        sources: The folders the model was read from, which ``out_dir`` must neither be nor hold.
        argument: How the caller names ``out_dir`` in error messages.
        replace_hint: How the caller's user replaces an earlier conversion, for the message.
        vocabulary: The file ``tokens`` come from, for messages.

    Returns:
        ``out_dir``.
    """
    from safetensors.numpy import save_file
    from transformers import WhisperFeatureExtractor

    out = check_conversion_output(out_dir, sources=sources, overwrite=overwrite, argument=argument,
                                  replace_hint=replace_hint)
    # What the check allowed (nothing, or an earlier conversion's files): the swap refuses anything added since.
    allowed = folder_entries(out)
    config = whisper_config(model, ct2_config, tokens, vocabulary=vocabulary)
    state = whisper_state_dict(model, encoder_only=encoder_only)
    _check_against_transformers(state, config, encoder_only)
    _check_finite(state, model.source)
    # The checks above allow only a missing or empty folder or an earlier conversion (holding nothing else) here.
    with atomic_directory(out, overwrite=out.exists(), expected=allowed, last=CONVERSION_FILE) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        default_permissions(tmp / WEIGHTS_FILE)  # safetensors writes 0600
        config.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
        written = sorted({p.name for p in tmp.iterdir()} | {CONVERSION_FILE})
        record = {**(provenance or {}), **_describe(model, encoder_only), "files": written}
        (tmp / CONVERSION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("converted %s (%s) to %s", model.source, "encoder only" if encoder_only else "full model", out)
    return out


def check_conversion_output(out_dir: str | os.PathLike, *, sources: Sequence[str | os.PathLike] = (),
                            overwrite: bool = False, argument: str = "out_dir",
                            replace_hint: str = "pass overwrite=True (--force)") -> Path:
    """Refuse an output folder a conversion must not replace; returns it as a Path.

    Refused: a file; one of ``sources`` or a folder holding one; a non-empty folder that is not an earlier ser_hf
    conversion (its ``conversion.json`` names ser_hf as the converter) or that holds files the conversion did not
    write (the user's, added since); an earlier conversion unless ``overwrite``. A missing or empty folder is fine.

    Args:
        out_dir: The folder to write.
        sources: Folders the conversion reads.
        overwrite: Whether an earlier conversion may be replaced.
        argument: How the caller names ``out_dir``, for the message.
        replace_hint: What replaces an earlier conversion, for the message.

    Raises:
        ModelError: naming the folder, what was found and what to do.
    """
    out = check_output_folder(out_dir, argument=argument, marker=CONVERSION_FILE,
                              what="a converted Whisper checkpoint", sources=sources, overwrite=True, whole=True)
    if not out.is_dir() or not any(out.iterdir()):
        return out
    record = _conversion_record(out / CONVERSION_FILE)
    if record is None:
        raise ModelError(f"{argument} {out} holds a {CONVERSION_FILE} that ser_hf did not write, so it is not an earlier "
                         f"conversion that may be replaced (found {describe_listing(out)}). Pass a new or empty "
                         f"directory, or move its files away.")
    known = record.get("files")
    known = set(known) if isinstance(known, list) else set(CONVERSION_OUTPUTS)
    added = sorted(p.name for p in out.iterdir() if p.name not in known)
    if added:
        raise ModelError(f"{argument} {out} is an earlier conversion but also holds {added[:8]}, which the conversion "
                         f"did not write; replacing the folder would delete them. Move them away, or pass a new or "
                         f"empty directory.")
    if not overwrite:
        raise ModelError(f"{argument} {out} already holds an earlier conversion; {replace_hint} to replace it, or "
                         f"pass a new or empty directory.")
    return out


def _conversion_record(path: Path) -> dict[str, Any] | None:
    """The conversion record at ``path`` if ser_hf wrote it (a regular file whose converter is ser_hf), else None."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not str(record.get("converter", "")).startswith("ser_hf "):
        return None
    return record


def _describe(model: CT2Model, encoder_only: bool) -> dict[str, Any]:
    import ser_hf

    weight_dtypes = Counter(model.dtypes[n] for n, a in model.variables.items() if a.ndim > 0)
    return {
        "source_format": f"ctranslate2 binary v{model.binary_version}, {model.spec} revision {model.spec_revision}",
        "source_dtype": weight_dtypes.most_common(1)[0][0] if weight_dtypes else "unknown",
        "dtype": "float32",
        "encoder_only": encoder_only,
        "converter": f"ser_hf {ser_hf.__version__} (ser_hf.models.whisper_convert)",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
