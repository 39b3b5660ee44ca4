"""``ser-hf export-onnx``: export a checkpoint to ONNX, verified against PyTorch, optionally int8-quantised."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Export a trained checkpoint to ONNX with torch.onnx.export, for inference with onnxruntime (model.onnx
itself runs without PyTorch, from any onnxruntime language binding). The output directory is
self-describing and loads wherever a checkpoint does:
EmotionRecognizer.from_pretrained(OUT), `ser-hf predict --model OUT`, `ser-hf evaluate --model OUT`.

It holds model.onnx (inputs named as the feature extractor returns them; batch and, for wav2vec2-style
models, time are dynamic; Whisper keeps its fixed frame count), config.json with the labels,
preprocessor_config.json, ser_hf_run.json when the checkpoint has one (checked as loading reads it; its
recorded audio cleaning is applied at inference too) and ser_hf_export.json (the opset model.onnx imports,
versions, inputs, parity).

After writing, the export is checked: onnxruntime and PyTorch score batches of synthetic voiced clips
of several lengths, and the export fails (writing nothing) if their logits differ by more than 1e-4 --
unless a float64 run of the model shows PyTorch's own float32 error to be that large and onnxruntime's
no larger (it happens with large logits); ser_hf_export.json then records both errors.

--quantize int8 adds model.int8.onnx: dynamic quantisation (int8 MatMul/Gemm weights, activations
quantised on the fly), usually a smaller and faster CPU model at a small accuracy cost; its change
against PyTorch on the check clips is recorded. Measure it on your own test set before using it:
  ser-hf evaluate --model OUT/model.int8.onnx --corpus ... --split test --out ...
Needs the onnx extra: pip install 'ser-hf[onnx]'."""

EPILOG = """\
examples:
  ser-hf export-onnx --model outputs/rav4 --out exports/rav4
  ser-hf export-onnx --model outputs/rav4 --out exports/rav4 --quantize int8 --overwrite
  ser-hf export-onnx --model emotion-whisper-base --out exports/emotion-whisper-base
  ser-hf predict --model exports/rav4 recordings/ --out predictions.jsonl
  ser-hf predict --model exports/rav4/model.int8.onnx recordings/ --out predictions-int8.jsonl

in Python:
  from ser_hf.inference.recognizer import EmotionRecognizer
  EmotionRecognizer.from_pretrained("exports/rav4").predict("clip.wav")"""


# ser_hf.inference.onnx's constants, spelled out: importing that module pulls in torch (seconds), which every
# `ser-hf` command would pay while building its parser. tests/test_onnx.py checks they agree.
ONNX_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "audio-spectrogram-transformer")
DEFAULT_OPSET = 18
MIN_OPSET, MAX_OPSET = 18, 23  # what torch.onnx's exporter writes (ser_hf.inference.onnx reads them from torch)
QUANTIZE_CHOICES = ("int8",)


def _opset(text: str) -> int:
    """--opset, checked before any work (a released model name would otherwise be fetched first)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not MIN_OPSET <= value <= MAX_OPSET:
        raise argparse.ArgumentTypeError(
            f"expected an ONNX opset version from {MIN_OPSET} to {MAX_OPSET} (those torch.onnx's exporter writes), "
            f"got {text!r}; pass e.g. --opset {DEFAULT_OPSET}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx", help="export a checkpoint to ONNX (verified against PyTorch; optional int8)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help=f"checkpoint directory (config.json, *.safetensors, preprocessor_config.json) of "
                             f"{', '.join(ONNX_MODEL_TYPES)}, or a released model name (e.g. emotion-whisper-base)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write (new or empty)")
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, default=None,
                        help="also write model.int8.onnx, dynamically quantised")
    parser.add_argument("--opset", type=_opset, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset version, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export's files in --out (other files there are kept)")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ser_hf.inference.onnx import export_onnx
    from ser_hf.models.presets import resolve_model_argument

    record = export_onnx(resolve_model_argument(args.model), args.out, quantize=args.quantize, opset=args.opset,
                         overwrite=args.overwrite)
    summary = {"out": args.out, "files": record["files"], "inputs": record["inputs"],
               "max_abs_logit_diff": record["parity"]["max_abs_logit_diff"]}
    if "quantization" in record:
        summary["int8_max_abs_logit_diff"] = record["quantization"]["change_vs_pytorch"]["max_abs_logit_diff"]
    print(json.dumps(summary))
    return 0
