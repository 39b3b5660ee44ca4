"""Export an emotion classifier checkpoint to ONNX, verify it against PyTorch, optionally quantise it to int8.

:func:`export_onnx` loads a checkpoint (safetensors only, no remote code), traces it with
``torch.onnx.export`` (the ``torch.export``-based exporter) and writes a self-describing directory that
:class:`~ser_hf.inference.recognizer.EmotionRecognizer` and ``ser-hf predict`` load like a checkpoint:

- ``model.onnx``: inputs as the feature extractor returns them, output ``logits``. wav2vec2, HuBERT, WavLM
  and data2vec-audio take ``input_values`` (batch x time, both dynamic) and, when their extractor returns
  one, ``attention_mask`` (same axes). Whisper takes ``input_features`` (batch x mel bins x frames; only
  the batch is dynamic, the frame count is fixed by ``config.max_source_positions``), AST ``input_values``
  (batch x frames x mel bins, batch dynamic).
- ``model.int8.onnx`` with ``quantize="int8"``: dynamic quantisation (int8 weights of MatMul/Gemm, per
  channel, the activations quantised on the fly); see :func:`quantize_int8`.
- ``config.json`` (``id2label``/``label2id``), ``preprocessor_config.json``, and ``ser_hf_run.json`` when
  the checkpoint has one, so the recorded audio cleaning is applied at inference as well.
- ``ser_hf_export.json``: source, opset, versions, inputs with their dynamic axes, and the parity measured
  after writing: onnxruntime against PyTorch on batches of synthetic voiced clips of several lengths. An
  export whose max abs logit difference exceeds ``tolerance`` (1e-4) fails and writes nothing, unless a
  float64 run of the model shows that PyTorch's own float32 error is that large and onnxruntime is no less
  accurate (large-logit models, see :func:`export_onnx`).

Example:
    ```python
    >>> from ser_hf.inference.onnx import export_onnx
    >>> record = export_onnx("outputs/rav4", "exports/rav4", quantize="int8")
    >>> record["parity"]["max_abs_logit_diff"] <= 1e-4
    True
    >>> from ser_hf.inference.recognizer import EmotionRecognizer
    >>> EmotionRecognizer.from_pretrained("exports/rav4").predict("clip.wav")["label"]
    'angry'
    ```
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ser_hf._io import check_output_folder
from ser_hf.checkpoint import RUN_RECORD
from ser_hf.errors import ModelError
from ser_hf.inference.onnx_parity import check_batches, features, logits, max_differences, parity, voiced_clips
from ser_hf.inference.onnx_runtime import (
    EXPORT_RECORD,
    INT8_FILE,
    MODEL_FILE,
    OnnxAudioClassifier,
    is_onnx_export,
    require_onnxruntime,
)
from ser_hf.models.checkpoint_check import load_config

__all__ = ["DEFAULT_OPSET", "ONNX_MODEL_TYPES", "PARITY_TOLERANCE", "QUANTIZE_CHOICES", "export_onnx", "quantize_int8"]

#: Architectures whose export is verified (tests: tiny random models of each, and the real whisper-tiny.en).
ONNX_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "audio-spectrogram-transformer")
DEFAULT_OPSET = 18
PARITY_TOLERANCE = 1e-4
QUANTIZE_CHOICES = ("int8",)

# Files an export writes; --overwrite removes exactly these from the output directory, nothing else.
_EXPORT_FILES = (MODEL_FILE, MODEL_FILE + ".data", INT8_FILE, "config.json", "preprocessor_config.json",
                 RUN_RECORD, EXPORT_RECORD)
_QUANTIZED_OPS = ("MatMul", "Gemm")
_VERSIONED = ("ser-hf", "torch", "transformers", "onnx", "onnxscript", "onnxruntime")

logger = logging.getLogger(__name__)


class _Logits(torch.nn.Module):
    """The model with named tensor inputs and the logits as its only output (what ONNX needs to trace)."""

    def __init__(self, model: torch.nn.Module, name: str) -> None:
        super().__init__()
        self.model, self.name = model, name

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**{self.name: inputs}).logits


class _MaskedLogits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_values=input_values, attention_mask=attention_mask).logits


def _dynamic_axes(model_type: str, feature_extractor: Any) -> dict[str, dict[int, str]]:
    """Input name -> {axis: name} of the dynamic axes, in the order the exported graph takes them."""
    if model_type == "whisper":
        return {"input_features": {0: "batch"}}  # mel bins and frames are fixed by the encoder's positions
    if model_type == "audio-spectrogram-transformer":
        return {"input_values": {0: "batch"}}  # the extractor pads or cuts to max_length frames
    axes = {"input_values": {0: "batch", 1: "time"}}
    if getattr(feature_extractor, "return_attention_mask", False):
        axes["attention_mask"] = {0: "batch", 1: "time"}
    return axes


def _check_supported(model_dir: Path) -> str:
    config = load_config(model_dir)  # config.json only, checked as JSON first: fail before loading any weights
    if config.model_type not in ONNX_MODEL_TYPES:
        raise ModelError(
            f"{model_dir / 'config.json'} has model_type={config.model_type!r}, which ONNX export does not support; "
            f"supported: {', '.join(ONNX_MODEL_TYPES)}. Export that model with torch.onnx.export yourself, or train "
            f"on a supported backbone."
        )
    return config.model_type


def _check_out_dir(out: Path, model_dir: Path, overwrite: bool) -> None:
    # --overwrite replaces an earlier export (it holds EXPORT_RECORD), never a folder of other files
    check_output_folder(out, argument="--out", marker=EXPORT_RECORD, what="an ONNX export", sources=[model_dir],
                        overwrite=overwrite)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's notes that say nothing to a user (a verified export is the real check)."""
    logger_names = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes", "onnx_ir",
                    "onnxscript")
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [item.level for item in loggers]
    with warnings.catch_warnings():
        # Dim.DYNAMIC axes that share constraints (batch of input_values and attention_mask) keep one name.
        warnings.filterwarnings("ignore", message=r"# The axis name")
        warnings.filterwarnings("ignore", category=FutureWarning)
        for item in loggers:
            item.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for item, level in zip(loggers, levels):
                item.setLevel(level)


def _trace(model: torch.nn.Module, axes: dict[str, dict[int, str]], example: dict[str, torch.Tensor],
           path: Path, opset: int) -> None:
    names = list(axes)
    module = (_MaskedLogits(model) if names == ["input_values", "attention_mask"] else _Logits(model, names[0])).eval()
    try:
        with _quiet_export(), torch.no_grad():
            # Axis names given as strings become Dim.DYNAMIC: torch.export infers their valid range itself.
            program = torch.onnx.export(module, tuple(example[name] for name in names), input_names=names,
                                        output_names=["logits"], dynamic_shapes=tuple(axes[name] for name in names),
                                        opset_version=opset, dynamo=True, verbose=False)
            program.save(str(path))
    except Exception as err:  # the exporter raises many unrelated types; all mean "this graph did not export"
        reason = " ".join(str(err).split())[:600]
        raise ModelError(
            f"torch.onnx.export failed for model_type={model.config.model_type!r} at opset {opset} ({reason}). Try "
            f"another --opset (e.g. 17 or 20), or upgrade torch and onnxscript."
        ) from err


def quantize_int8(onnx_file: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Dynamic int8 quantisation of an exported model (MatMul/Gemm weights as QInt8, per channel, 7-bit range).

    Convolutions stay in float: the wav2vec2 family computes its positional convolution's weight from
    weight-norm parameters at run time, which onnxruntime's quantiser cannot quantise, and the bulk of every
    supported model's weights lies in its MatMuls anyway. Weights are quantised per output channel with
    onnxruntime's ``reduce_range`` (7 bits), which avoids the int16 saturation of AVX2 CPUs without VNNI:
    on the RAVDESS whisper-tiny.en probe (benchmarks/results/onnx_export.json, an AVX2 CPU), the plain per-tensor
    8-bit setting changed 10.0 % of the top labels against PyTorch, this one 6.3 % (run of 2026-12-04).

    Example:
        ```python
        >>> quantize_int8("exports/rav4/model.onnx", "exports/rav4/model.int8.onnx")
        ```
    """
    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    # The quantiser logs "Please consider to run pre-processing" on the root logger; that pre-processing
    # (symbolic shape inference) fails on the dynamic time axis of the wav2vec2 family, so it is skipped.
    hint = _DropMessage("pre-processing before quantization")
    root.addFilter(hint)
    try:
        quantize_dynamic(str(onnx_file), str(out_file), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True, op_types_to_quantize=list(_QUANTIZED_OPS))
    finally:
        root.removeFilter(hint)
    return Path(out_file)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _versions() -> dict[str, str | None]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _load_checkpoint(model_dir: Path) -> tuple[torch.nn.Module, Any]:
    from ser_hf.inference.predict import load_classifier

    model, feature_extractor = load_classifier(model_dir)
    # onnxruntime's CPU kernels are float32; a float16/bfloat16 checkpoint is exported (and checked) in float32.
    return model.float().eval(), feature_extractor


def _write_export(model, feature_extractor, model_type: str, model_dir: Path, tmp: Path, opset: int,
                  quantize: str | None, tolerance: float) -> dict[str, Any]:
    """Write every export file into ``tmp`` and return the record; raise if parity is not met."""
    axes = _dynamic_axes(model_type, feature_extractor)
    example = features(feature_extractor, voiced_clips((1.0, 1.5), feature_extractor.sampling_rate, 99), axes)
    _trace(model, axes, example, tmp / MODEL_FILE, opset)
    model.config.save_pretrained(tmp)
    feature_extractor.save_pretrained(tmp)
    if (model_dir / RUN_RECORD).is_file():
        shutil.copyfile(model_dir / RUN_RECORD, tmp / RUN_RECORD)
    onnx_model = OnnxAudioClassifier(tmp / MODEL_FILE)
    batches = check_batches(feature_extractor, axes)
    measured = parity(model, onnx_model, batches, tolerance)
    if not measured["passed"]:
        reference = measured["float64_reference"]
        raise ModelError(
            f"the ONNX export of {model_dir} does not match PyTorch: max abs logit difference "
            f"{measured['max_abs_logit_diff']:.3g} > tolerance {tolerance:g} on synthetic clips of "
            f"{measured['batches_seconds']} s (opset {opset}), and against a float64 run onnxruntime is "
            f"{reference['onnx_vs_fp64']:.3g} off where PyTorch float32 is {reference['torch_fp32_vs_fp64']:.3g}. "
            f"Nothing was written. Try another --opset, or report model_type={model_type!r} with your torch and "
            f"onnxscript versions."
        )
    record = {
        "format": "onnx", "source": str(model_dir), "model_type": model_type, "opset": opset,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "versions": _versions(),
        "inputs": [{"name": item.name, "type": item.type, "shape": item.shape} for item in onnx_model.session.get_inputs()],
        "outputs": [{"name": item.name, "type": item.type, "shape": item.shape}
                    for item in onnx_model.session.get_outputs()],
        "dynamic_axes": {name: {str(axis): label for axis, label in dims.items()} for name, dims in axes.items()},
        "parity": measured, "files": {MODEL_FILE: (tmp / MODEL_FILE).stat().st_size},
    }
    if quantize == "int8":
        quantize_int8(tmp / MODEL_FILE, tmp / INT8_FILE)
        change = max_differences(*logits(model, OnnxAudioClassifier(tmp / INT8_FILE), batches))
        record["quantization"] = {"file": INT8_FILE, "method": "onnxruntime quantize_dynamic",
                                  "weight_type": "QInt8", "per_channel": True, "reduce_range": True,
                                  "op_types": list(_QUANTIZED_OPS), "change_vs_pytorch": change}
        record["files"][INT8_FILE] = (tmp / INT8_FILE).stat().st_size
    return record


def export_onnx(model: str | os.PathLike, out_dir: str | os.PathLike, *, quantize: str | None = None,
                opset: int = DEFAULT_OPSET, overwrite: bool = False,
                tolerance: float = PARITY_TOLERANCE) -> dict[str, Any]:
    """Export a checkpoint to an ONNX directory, verify onnxruntime against PyTorch, optionally quantise.

    Args:
        model: A checkpoint directory (``config.json``, ``*.safetensors``, ``preprocessor_config.json``), e.g.
            the ``output_dir`` of ``ser-hf train``, of one of :data:`ONNX_MODEL_TYPES`.
        out_dir: Directory to write (created; must be empty unless ``overwrite``).
        quantize: ``"int8"`` also writes ``model.int8.onnx`` (dynamic quantisation) and records its change.
        opset: ONNX opset version.
        overwrite: Replace the export files of an earlier export in ``out_dir`` (other files are kept).
        tolerance: Largest accepted max abs logit difference between onnxruntime and PyTorch on the check
            clips. Beyond it, the model also runs in float64: where PyTorch float32 is itself further than
            ``tolerance`` from those logits (large-logit models) and onnxruntime is no further, the export is
            kept and the record says so (``parity.passed``, ``parity.float64_reference``).

    Returns:
        The export record, also written to ``out_dir/ser_hf_export.json``.

    Raises:
        ModelError: a missing or unusable checkpoint, an unsupported ``model_type`` (named, with the supported
            ones), a non-empty ``out_dir``, onnxruntime not installed, an export failure or a parity failure.

    Example:
        ```python
        >>> record = export_onnx("outputs/rav4", "exports/rav4")
        >>> record["inputs"][0]
        {'name': 'input_values', 'type': 'tensor(float)', 'shape': ['batch', 'time']}
        ```
    """
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ModelError(f"quantize must be None or one of {list(QUANTIZE_CHOICES)}, got {quantize!r}.")
    model_dir, out = Path(model).expanduser(), Path(out_dir).expanduser()
    if not model_dir.is_dir():
        raise ModelError(
            f"--model {model_dir} is not a directory; pass a checkpoint directory (config.json, model.safetensors, "
            f"preprocessor_config.json), e.g. the output_dir of `ser-hf train`."
        )
    if is_onnx_export(model_dir):
        raise ModelError(f"--model {model_dir} is already an ONNX export; pass the PyTorch checkpoint it came from.")
    _check_out_dir(out, model_dir, overwrite)
    require_onnxruntime()
    model_type = _check_supported(model_dir)
    loaded, feature_extractor = _load_checkpoint(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Write next to the destination and move in only after parity holds, so a failed export leaves nothing.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        record = _write_export(loaded, feature_extractor, model_type, model_dir, Path(tmp), opset, quantize, tolerance)
        (Path(tmp) / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        for name in _EXPORT_FILES:
            (out / name).unlink(missing_ok=True)
        for item in sorted(Path(tmp).iterdir()):
            item.replace(out / item.name)
    logger.info("exported %s to %s (max abs logit diff %.2g)", model_dir, out, record["parity"]["max_abs_logit_diff"])
    return record
