"""Run an exported ONNX emotion classifier with onnxruntime, behind the interface batch prediction uses.

``ser-hf export-onnx`` (:func:`ser_hf.inference.onnx.export_onnx`) writes a self-describing directory:
``model.onnx`` (and ``model.int8.onnx`` when quantised), ``config.json`` (labels in ``id2label``),
``preprocessor_config.json`` (the feature extractor), ``ser_hf_run.json`` when the checkpoint had one, and
``ser_hf_export.json`` (opset, versions, inputs, the parity measured at export time).

:class:`OnnxAudioClassifier` wraps an ``onnxruntime.InferenceSession`` so that it quacks like the slice of
``AutoModelForAudioClassification`` that :func:`ser_hf.inference.predict.predict_proba` uses: ``config``,
``device``, ``dtype``, ``eval()`` and ``model(**features).logits``. Everything else (decoding, preprocessing,
batching by length, padding only where exact) is shared with the PyTorch path, so an ONNX export predicts
what its checkpoint predicts. Only JSON and ONNX files are read: no pickle, no remote code.

Example:
    ```python
    >>> from ser_hf.inference.onnx_runtime import load_onnx_classifier
    >>> model, extractor = load_onnx_classifier("exports/rav4")            # model.onnx  # doctest: +SKIP
    >>> model, extractor = load_onnx_classifier("exports/rav4/model.int8.onnx")  # doctest: +SKIP
    >>> model.config.id2label[0], model.input_names  # doctest: +SKIP
    ('neutral', ['input_values', 'attention_mask'])

    ```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoFeatureExtractor
from transformers.modeling_outputs import SequenceClassifierOutput

from ser_hf._io import read_json
from ser_hf.errors import ModelError
from ser_hf.models.checkpoint_check import check_preprocessor_file, load_config
from ser_hf.paths import path_text

__all__ = [
    "EXPORT_RECORD",
    "INT8_FILE",
    "MODEL_FILE",
    "OnnxAudioClassifier",
    "is_onnx_export",
    "load_onnx_classifier",
    "require_onnxruntime",
]

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_RECORD = "ser_hf_export.json"

INSTALL_HINT = "pip install 'ser-hf[onnx]'"

# onnxruntime's input type names -> the numpy dtype to feed.
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
               "tensor(bool)": np.bool_}


def require_onnxruntime():
    """Import onnxruntime, or raise :class:`ModelError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelError(
            f"onnxruntime is not installed, and ONNX export and inference need it (with onnx and onnxscript). "
            f"Install the extra: `{INSTALL_HINT}`."
        ) from err
    return onnxruntime


def is_onnx_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``.onnx`` file, or a directory with ``model.onnx`` and no safetensors weights."""
    try:
        text = os.fsdecode(os.fspath(path))  # bytes and path-likes giving them too
    except Exception:  # no path at all: a question, not a refusal
        return False
    if not text or "\0" in text:  # "" would be the current folder; a NUL names no file
        return False
    path = Path(text).expanduser()
    if path.is_file():
        return path.suffix == ".onnx"
    return path.is_dir() and (path / MODEL_FILE).is_file() and not any(path.glob("*.safetensors"))


def _providers(onnxruntime, device: str | torch.device | None) -> list:
    device = torch.device(device or "cpu")
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    raise ModelError(
        f"device={str(device)!r}: this onnxruntime offers {onnxruntime.get_available_providers()}. Use device='cpu', "
        f"or for CUDA install onnxruntime-gpu in place of onnxruntime."
    )


class OnnxAudioClassifier:
    """An exported emotion classifier run by onnxruntime, called like the PyTorch model it came from.

    Args:
        onnx_file: The ``.onnx`` file; its directory holds ``config.json``.
        device: ``"cpu"`` (default) or ``"cuda[:N]"`` (needs onnxruntime-gpu).
        num_threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``, so one
            ``torch.set_num_threads`` call governs both backends in a process).

    Use :func:`load_onnx_classifier` to get it with its feature extractor.
    """

    # Features are built on the CPU as float32; onnxruntime moves them to its device itself.
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, onnx_file: str | os.PathLike, device: str | torch.device | None = None,
                 num_threads: int | None = None) -> None:
        onnxruntime = require_onnxruntime()
        self.onnx_file = Path(onnx_file)
        self.name_or_path = str(self.onnx_file.parent)
        self.config = load_config(self.name_or_path)  # JSON and labels checked before transformers reads it
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        try:
            self.session = onnxruntime.InferenceSession(str(self.onnx_file), sess_options=options,
                                                        providers=_providers(onnxruntime, device))
        except Exception as err:  # onnxruntime raises its own untyped errors for corrupt or unsupported files
            raise ModelError(
                f"{self.onnx_file} could not be loaded by onnxruntime {onnxruntime.__version__} ({err}). Export it "
                f"again with `ser-hf export-onnx`, or upgrade onnxruntime if the file needs a newer opset."
            ) from err
        classes = self.session.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != self.config.num_labels:
            raise ModelError(
                f"{self.onnx_file} outputs {classes} logits per clip, but {self.onnx_file.parent / 'config.json'} names "
                f"{self.config.num_labels} classes (id2label). The files come from different exports: export again "
                f"with `ser-hf export-onnx`, or restore the config.json written with this model."
            )
        inputs = self.session.get_inputs()
        self.input_names = [item.name for item in inputs]
        self._dtypes = {item.name: _ORT_DTYPES.get(item.type, np.float32) for item in inputs}

    def eval(self) -> OnnxAudioClassifier:
        """No-op (an ONNX graph is always in inference mode); kept so callers can treat it as a model."""
        return self

    def _feeds(self, features: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays = {name: np.asarray(value.cpu() if torch.is_tensor(value) else value) for name, value in features.items()}
        mask = arrays.pop("attention_mask", None)
        if "attention_mask" in self.input_names:
            if mask is None:
                mask = np.ones(arrays["input_values"].shape, dtype=np.int64)
            arrays["attention_mask"] = mask
        elif mask is not None and not mask.all():
            raise ModelError(
                f"{self.onnx_file} was exported without an attention_mask input, but got a padded batch (a mask with "
                f"zeros); its extractor returns no mask, so predict clips of different lengths one at a time."
            )
        missing = sorted(set(self.input_names) - set(arrays))
        if missing:
            raise ModelError(f"{self.onnx_file} needs inputs {self.input_names}; missing {missing} (got {sorted(arrays)}).")
        return {name: arrays[name].astype(self._dtypes[name], copy=False) for name in self.input_names}

    def __call__(self, **features: Any) -> SequenceClassifierOutput:
        """``model(input_values=..., attention_mask=...)`` or ``model(input_features=...)`` -> ``.logits``."""
        (logits,) = self.session.run(["logits"], self._feeds(features))
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))

    def __repr__(self) -> str:
        return f"OnnxAudioClassifier({str(self.onnx_file)!r}, model_type={self.config.model_type!r})"


def _locate(path: Path) -> Path:
    """The ``.onnx`` file to load for ``path`` (a file, or an export directory's ``model.onnx``)."""
    if not path.exists():
        raise ModelError(f"ONNX model {str(path)!r} does not exist; pass the directory `ser-hf export-onnx` wrote.")
    onnx_file = path if path.is_file() else path / MODEL_FILE
    if not onnx_file.is_file() or onnx_file.suffix != ".onnx":
        found = sorted(p.name for p in path.iterdir()) if path.is_dir() else [path.name]
        raise ModelError(f"{str(path)!r} holds no {MODEL_FILE} (found {found}); export one with `ser-hf export-onnx`.")
    _check_export_record(onnx_file.parent)
    for name in ("config.json", "preprocessor_config.json"):
        if not (onnx_file.parent / name).is_file():
            found = sorted(p.name for p in onnx_file.parent.iterdir())
            raise ModelError(
                f"ONNX export directory {str(onnx_file.parent)!r} has no {name} (found {found}); the labels and the "
                f"feature extractor live there. Export again with `ser-hf export-onnx`, which writes both."
            )
    return onnx_file


def _check_export_record(folder: Path) -> None:
    """Refuse an export that ``ser-hf export-onnx`` did not finish: its record says it was being replaced
    (``incomplete``: a kill during the moves), or a file it lists is missing (``ser_hf_run.json``, which holds the
    audio cleaning the model was trained with, among them). A folder without a record (made by other tools) loads."""
    record_file = folder / EXPORT_RECORD
    if not (record_file.exists() or record_file.is_symlink()):
        return
    rerun = (f"export it again: ser-hf export-onnx --model CHECKPOINT --out {str(folder)!r} --overwrite")
    if record_file.is_symlink() or not record_file.is_file():
        raise ModelError(f"ONNX export directory {str(folder)!r}: its {EXPORT_RECORD} is not a regular file (a link, "
                         f"a folder or a device), so it is not ser_hf's record; {rerun}.")
    record = read_json(record_file, fix=rerun)
    files = record.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(name, str) and name and Path(name).name == name
                                              and name not in (".", "..") for name in files):
        raise ModelError(f"ONNX export directory {str(folder)!r}: its {EXPORT_RECORD} lists {str(files)[:80]} as its "
                         f"files, where ser_hf writes an object of file names in the folder; {rerun}.")
    missing = sorted(name for name in files if not (folder / name).is_file())
    if record.get("incomplete") is True or missing:
        what = f"lacks {missing}, which its {EXPORT_RECORD} lists" if missing else \
            f"was being replaced when the export stopped (its {EXPORT_RECORD} says so)"
        raise ModelError(f"ONNX export directory {str(folder)!r} {what}: it is not a finished export; {rerun}.")


def load_onnx_classifier(path: str | os.PathLike, device: str | torch.device | None = None,
                         num_threads: int | None = None) -> tuple[OnnxAudioClassifier, Any]:
    """Load an exported ONNX classifier and its feature extractor.

    Args:
        path: An export directory (loads ``model.onnx``) or one ``.onnx`` file in it (e.g. ``model.int8.onnx``).
        device: ``"cpu"`` (default) or ``"cuda[:N]"`` with onnxruntime-gpu.
        num_threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).

    Returns:
        ``(model, feature_extractor)``.

    Raises:
        ModelError: missing files, onnxruntime not installed, or a file onnxruntime cannot load.

    Example:
        ```python
        >>> model, extractor = load_onnx_classifier("exports/rav4")  # doctest: +SKIP
        >>> model(**extractor(wave, sampling_rate=16000, return_tensors="pt")).logits.shape  # doctest: +SKIP
        torch.Size([1, 4])

        ```
    """
    onnx_file = _locate(Path(path_text(path, "the ONNX export", error=ModelError, refuse_empty=True)).expanduser())
    model = OnnxAudioClassifier(onnx_file, device=device, num_threads=num_threads)
    check_preprocessor_file(onnx_file.parent)  # bounded before the extractor builds its filter bank
    return model, AutoFeatureExtractor.from_pretrained(str(onnx_file.parent), trust_remote_code=False)
