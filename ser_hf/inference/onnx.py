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
  the checkpoint has one (checked first, as loading reads it), so the recorded audio cleaning is applied at
  inference as well.
- ``ser_hf_export.json``: source, opset (the one ``model.onnx`` imports), versions, inputs with their dynamic
  axes, and the parity measured after writing: onnxruntime against PyTorch on batches of synthetic voiced
  clips of several lengths. An export whose max abs logit difference exceeds ``tolerance`` (1e-4) fails and
  writes nothing (not even ``out_dir``, when it made it), unless a float64 run of the model shows that
  PyTorch's own float32 error is that large and onnxruntime is no less accurate (large-logit models, see
  :func:`export_onnx`). Weights or PyTorch logits that are NaN or infinite are refused before tracing.

How the files land in ``out_dir`` (written in a temporary folder beside them, moved in whole, an earlier export
replaced, a killed export's leftovers removed) lives in :mod:`ser_hf.inference.onnx_out_folder`.

Example:
    ```python
    >>> from ser_hf.inference.onnx import export_onnx
    >>> record = export_onnx("outputs/rav4", "exports/rav4", quantize="int8")  # doctest: +SKIP
    >>> record["parity"]["max_abs_logit_diff"] <= 1e-4  # doctest: +SKIP
    True
    >>> from ser_hf.inference.recognizer import EmotionRecognizer
    >>> EmotionRecognizer.from_pretrained("exports/rav4").predict("clip.wav")["label"]  # doctest: +SKIP
    'angry'

    ```
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import math
import operator
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ser_hf._io import refuse_dangling_link
from ser_hf.checkpoint import RUN_RECORD, check_checkpoint_dir, read_run_record, recorded_training_copies
from ser_hf.errors import ModelError
from ser_hf.inference.onnx_out_folder import (
    OWNER_FILE,
    TEMP_PREFIX,
    check_out_dir,
    folders_to_create,
    move_in,
    remove_empty,
)
from ser_hf.inference.onnx_parity import (
    PARITY_SECONDS,
    check_batches,
    features,
    logits,
    max_differences,
    parity,
    voiced_clips,
)
from ser_hf.inference.onnx_runtime import (
    INT8_FILE,
    MODEL_FILE,
    OnnxAudioClassifier,
    is_onnx_export,
    require_onnxruntime,
)
from ser_hf.locks import claim
from ser_hf.models.checkpoint_check import load_config
from ser_hf.models.safetensors_header import INDEX_NAME
from ser_hf.paths import display_path, path_text, printable
from ser_hf.versions import installed_versions

__all__ = ["DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "ONNX_MODEL_TYPES", "PARITY_TOLERANCE", "QUANTIZE_CHOICES",
           "export_onnx", "quantize_int8"]

#: Architectures whose export is verified (tests: tiny random models of each, and the real whisper-tiny.en).
ONNX_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "audio-spectrogram-transformer")
DEFAULT_OPSET = 18


def _exporter_opsets() -> tuple[int, int]:
    """The opsets torch.onnx's (torch.export-based) exporter writes: from the opset its operator library is
    written in (a lower one is converted down where possible, else silently kept at that opset) to the highest
    torch.onnx declares."""
    try:  # private modules: another torch may move them; these are torch 2.13's values
        from torch.onnx._constants import ONNX_MAX_OPSET
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET
    except ImportError:
        return 18, 23
    return TORCHLIB_OPSET, ONNX_MAX_OPSET


#: The range of ``opset`` export_onnx accepts (ser_hf.cli.export spells it out; a test checks they agree).
MIN_OPSET, MAX_OPSET = _exporter_opsets()
PARITY_TOLERANCE = 1e-4
QUANTIZE_CHOICES = ("int8",)

# Files of the checkpoint the export reads or copies (besides *.safetensors weights).
_CHECKPOINT_FILES = ("config.json", "preprocessor_config.json", RUN_RECORD, INDEX_NAME)
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


def _check_opset(opset: Any) -> int:
    try:
        value = None if isinstance(opset, bool) else operator.index(opset)
    except TypeError:
        value = None
    if value is None or not MIN_OPSET <= value <= MAX_OPSET:
        raise ModelError(
            f"opset (--opset) must be an integer from {MIN_OPSET} to {MAX_OPSET}, the ONNX opset versions torch "
            f"{torch.__version__}'s exporter writes (below {MIN_OPSET} it keeps {MIN_OPSET}), got {opset!r}. Pass "
            f"e.g. --opset {DEFAULT_OPSET}."
        )
    return value


@contextlib.contextmanager
def _readable(model_dir: Path) -> Iterator[None]:
    """A checkpoint file that cannot be opened or read (gone meanwhile, permissions) as a ModelError naming it."""
    try:
        yield
    except OSError as err:
        name = display_path(err.filename) if err.filename is not None else display_path(model_dir)
        raise ModelError(
            f"checkpoint {display_path(model_dir)}: {name} could not be read ({err.strerror or err}). Make it "
            f"readable (check its permissions), or restore the checkpoint's files, and run again."
        ) from None


def _check_file_kinds(model_dir: Path) -> None:
    """A checkpoint file that is a broken link, a folder or a pipe, named as such (not as "missing")."""
    for path in sorted(model_dir.iterdir()):
        if path.name not in _CHECKPOINT_FILES and path.suffix != ".safetensors":
            continue
        where = f"checkpoint {display_path(model_dir)}: {printable(path.name)}"
        refuse_dangling_link(path, where, "restore the file it points to, or put the file itself in the checkpoint.")
        if not path.is_file():
            raise ModelError(f"{where} is not a regular file (a folder, a pipe or a device); expected the file "
                             f"save_pretrained (or `ser-hf train`) writes there. Restore it from where the "
                             f"checkpoint came.")


def _check_checkpoint(model_dir: Path) -> str:
    """Every file of the checkpoint the export reads or copies, checked before any work; returns the model_type."""
    with _readable(model_dir):
        _check_file_kinds(model_dir)
        if not (model_dir / "config.json").is_file():
            check_checkpoint_dir(model_dir)  # names the missing config.json and what the folder holds
        model_type = _check_supported(model_dir)  # first: restoring other files would not make it exportable
        check_checkpoint_dir(model_dir)  # weights, preprocessor_config.json: each named if missing
        # ser_hf_run.json is copied into the export as-is: read as every loader reads it (and eval/report.json, as
        # evaluate does), so an export that would not load is never written.
        read_run_record(model_dir)
        recorded_training_copies(model_dir)
    return model_type


def _check_finite(model: torch.nn.Module, feature_extractor: Any, model_type: str, model_dir: Path) -> None:
    """Refuse weights, or logits on the parity check's clips, that are NaN or infinite: the export could only fail
    its parity check with a NaN difference, blamed on the exporter."""
    broken = [name for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers())
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise ModelError(
            f"checkpoint {model_dir}: its weights hold NaN or infinite values ({broken[:5]}"
            f"{f' and {len(broken) - 5} more' if len(broken) > 5 else ''}), so every prediction it makes is NaN; "
            f"there is nothing to export, and nothing was written. Training diverged or the file was damaged: "
            f"export an earlier checkpoint of the run, or train again (e.g. with a lower learning rate)."
        )
    batches = check_batches(feature_extractor, _dynamic_axes(model_type, feature_extractor))
    with torch.no_grad():
        finite = all(bool(torch.isfinite(model(**batch).logits).all()) for batch in batches)
    if not finite:
        raise ModelError(
            f"checkpoint {model_dir}: its weights are finite, but its PyTorch logits on synthetic voiced clips of "
            f"{[list(seconds) for seconds in PARITY_SECONDS]} s are NaN or infinite (float32 overflows in the "
            f"model), so no export can be checked against them; nothing was written. Check the checkpoint with "
            f"`ser-hf evaluate`, or export an earlier checkpoint of the run."
        )


def _check_supported(model_dir: Path) -> str:
    config = load_config(model_dir)  # config.json only, checked as JSON first: fail before loading any weights
    if config.model_type not in ONNX_MODEL_TYPES:
        raise ModelError(
            f"{model_dir / 'config.json'} has model_type={config.model_type!r}, which ONNX export does not support; "
            f"supported: {', '.join(ONNX_MODEL_TYPES)}. Export that model with torch.onnx.export yourself, or train "
            f"on a supported backbone."
        )
    return config.model_type


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
            f"another --opset (from {MIN_OPSET} to {MAX_OPSET}), or upgrade torch and onnxscript."
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
        >>> quantize_int8("exports/rav4/model.onnx", "exports/rav4/model.int8.onnx")  # doctest: +SKIP

        ```
    """
    # the quantiser takes text: str() of a path-like or bytes would name another file, "" the current folder's
    onnx_file = path_text(onnx_file, "onnx_file", error=ModelError, refuse_empty=True)
    out_file = path_text(out_file, "out_file", error=ModelError, refuse_empty=True)
    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    # The quantiser logs "Please consider to run pre-processing" on the root logger; that pre-processing
    # (symbolic shape inference) fails on the dynamic time axis of the wav2vec2 family, so it is skipped.
    hint = _DropMessage("pre-processing before quantization")
    root.addFilter(hint)
    try:
        quantize_dynamic(onnx_file, out_file, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=list(_QUANTIZED_OPS))
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
    return installed_versions(_VERSIONED)


def _load_checkpoint(model_dir: Path) -> tuple[torch.nn.Module, Any]:
    from ser_hf.inference.predict import load_classifier

    model, feature_extractor = load_classifier(model_dir)
    # onnxruntime's CPU kernels are float32; a float16/bfloat16 checkpoint is exported (and checked) in float32.
    return model.float().eval(), feature_extractor


def _file_opset(path: Path) -> int | None:
    """The default-domain opset ``model.onnx`` imports (the exporter may write another than it was asked for)."""
    import onnx

    imports = onnx.load(str(path), load_external_data=False).opset_import
    return next((item.version for item in imports if item.domain in ("", "ai.onnx")), None)


def _write_export(model, feature_extractor, model_type: str, model_dir: Path, tmp: Path, opset: int,
                  quantize: str | None, tolerance: float) -> dict[str, Any]:
    """Write every export file into ``tmp`` and return the record; raise if parity is not met."""
    axes = _dynamic_axes(model_type, feature_extractor)
    example = features(feature_extractor, voiced_clips((1.0, 1.5), feature_extractor.sampling_rate, 99), axes)
    _trace(model, axes, example, tmp / MODEL_FILE, opset)
    written_opset = _file_opset(tmp / MODEL_FILE)
    if written_opset != opset:
        logger.warning("torch.onnx.export wrote opset %s where opset %s was asked for; the record says %s",
                       written_opset, opset, written_opset)
    model.config.save_pretrained(tmp)
    feature_extractor.save_pretrained(tmp)
    if (model_dir / RUN_RECORD).is_file():
        shutil.copyfile(model_dir / RUN_RECORD, tmp / RUN_RECORD)
    onnx_model = OnnxAudioClassifier(tmp / MODEL_FILE)
    batches = check_batches(feature_extractor, axes)
    measured = parity(model, onnx_model, batches, tolerance)
    if not measured["passed"] and not math.isfinite(measured["max_abs_logit_diff"]):
        raise ModelError(
            f"the ONNX export of {model_dir} does not match PyTorch: onnxruntime's logits on synthetic clips of "
            f"{measured['batches_seconds']} s are NaN or infinite where PyTorch's are finite (opset "
            f"{written_opset}). Nothing was written. Try another --opset (from {MIN_OPSET} to {MAX_OPSET}), or "
            f"report model_type={model_type!r} with your torch, onnxscript and onnxruntime versions."
        )
    if not measured["passed"]:
        reference = measured["float64_reference"]
        raise ModelError(
            f"the ONNX export of {model_dir} does not match PyTorch: max abs logit difference "
            f"{measured['max_abs_logit_diff']:.3g} > tolerance {tolerance:g} on synthetic clips of "
            f"{measured['batches_seconds']} s (opset {written_opset}), and against a float64 run onnxruntime is "
            f"{reference['onnx_vs_fp64']:.3g} off where PyTorch float32 is {reference['torch_fp32_vs_fp64']:.3g}. "
            f"Nothing was written. Try another --opset (from {MIN_OPSET} to {MAX_OPSET}), or report "
            f"model_type={model_type!r} with your torch and onnxscript versions."
        )
    record = {
        "format": "onnx", "source": str(model_dir), "model_type": model_type, "opset": written_opset,
        **({} if written_opset == opset else {"requested_opset": opset}),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "versions": _versions(),
        "inputs": [{"name": item.name, "type": item.type, "shape": item.shape} for item in onnx_model.session.get_inputs()],
        "outputs": [{"name": item.name, "type": item.type, "shape": item.shape}
                    for item in onnx_model.session.get_outputs()],
        "dynamic_axes": {name: {str(axis): label for axis, label in dims.items()} for name, dims in axes.items()},
        "parity": measured, "files": {MODEL_FILE: (tmp / MODEL_FILE).stat().st_size},
    }
    if (tmp / RUN_RECORD).is_file():  # the audio cleaning the model was trained with: a loader must find it
        record["files"][RUN_RECORD] = (tmp / RUN_RECORD).stat().st_size
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
        opset: ONNX opset version, :data:`MIN_OPSET` to :data:`MAX_OPSET` (what torch.onnx's exporter writes);
            the record holds the opset ``model.onnx`` imports.
        overwrite: Replace the export files of an earlier export in ``out_dir`` (other files are kept).
        tolerance: Largest accepted max abs logit difference between onnxruntime and PyTorch on the check
            clips. Beyond it, the model also runs in float64: where PyTorch float32 is itself further than
            ``tolerance`` from those logits (large-logit models) and onnxruntime is no further, the export is
            kept and the record says so (``parity.passed``, ``parity.float64_reference``).

    Returns:
        The export record, also written to ``out_dir/ser_hf_export.json``.

    Raises:
        ModelError: an opset out of range, a missing, unreadable or unusable checkpoint file (``ser_hf_run.json``
            included, read as loading reads it), weights or logits that are NaN or infinite, an unsupported
            ``model_type`` (named, with the supported ones), a non-empty ``out_dir``, onnxruntime not installed, an
            export failure or a parity failure. Every check on the inputs runs before any work, and a failure
            leaves no ``out_dir`` that was not there before.

    Example:
        ```python
        >>> record = export_onnx("outputs/rav4", "exports/rav4")  # doctest: +SKIP
        >>> record["inputs"][0]  # doctest: +SKIP
        {'name': 'input_values', 'type': 'tensor(float)', 'shape': ['batch', 'time']}

        ```
    """
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ModelError(f"quantize must be None or one of {list(QUANTIZE_CHOICES)}, got {quantize!r}.")
    opset = _check_opset(opset)
    model_dir = Path(path_text(model, "--model", error=ModelError, refuse_empty=True)).expanduser()
    out = Path(path_text(out_dir, "--out", error=ModelError, refuse_empty=True)).expanduser()
    if not model_dir.is_dir():
        raise ModelError(
            f"--model {display_path(model_dir)} is not a directory; pass a checkpoint directory (config.json, model.safetensors, "
            f"preprocessor_config.json), e.g. the output_dir of `ser-hf train`."
        )
    if is_onnx_export(model_dir):
        raise ModelError(f"--model {model_dir} is already an ONNX export; pass the PyTorch checkpoint it came from.")
    check_out_dir(out, model_dir, overwrite)
    require_onnxruntime()
    model_type = _check_checkpoint(model_dir)
    with _readable(model_dir):
        loaded, feature_extractor = _load_checkpoint(model_dir)
    _check_finite(loaded, feature_extractor, model_type, model_dir)
    created = folders_to_create(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        # Write next to the destination and move in only after parity holds, so a failed export leaves nothing.
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=out) as tmp, claim(tmp):
            (Path(tmp) / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
            record = _write_export(loaded, feature_extractor, model_type, model_dir, Path(tmp), opset, quantize,
                                   tolerance)
            move_in(Path(tmp), out, record)
    except BaseException:
        remove_empty(created)  # an interrupted or failed export leaves no folder it made
        raise
    logger.info("exported %s to %s (max abs logit diff %.2g)", model_dir, out, record["parity"]["max_abs_logit_diff"])
    return record
