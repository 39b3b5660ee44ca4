"""ONNX export of a real frozen probe: accuracy, agreement and speed of PyTorch fp32, ONNX fp32 and ONNX int8.

Trains the RAVDESS whisper-tiny.en probe recipe (``recipes/ravdess/whisper-tiny.en-probe.yaml``) with
``max_source_positions=300`` (6 s input; its pooled states are cached, so training takes seconds) through
``ser_hf.training.experiment.train``, exports the checkpoint with ``export_onnx(..., quantize="int8")`` and
scores the held-out speakers of that run (``speaker_split``, the speakers ``ser-hf evaluate --split test``
uses) with each backend through ``EmotionRecognizer``: UA (macro recall), WA, top-label agreement with
PyTorch, max abs probability difference, clips/s (model time only: audio decoded once beforehand; min and
median of ``--repeats`` interleaved rounds after a warm-up, since the machine is shared; ``benchmarks/common.py``)
and file sizes. For comparison it also scores
onnxruntime's default dynamic quantisation (per tensor, full 8-bit range), which ``export_onnx`` does not use.

    .venv/bin/python benchmarks/onnx_export.py                      # 8 emotions, every held-out clip
    .venv/bin/python benchmarks/onnx_export.py --emotions 4class --max-clips 120
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    SHARED_DATA,
    add_timing_arguments,
    scratch_dir,
    speedup,
    time_interleaved,
    timing_conditions,
    write_result,
)

from ser_hf.evaluation import EvaluationReport
from ser_hf.inference.onnx import export_onnx
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.splits import speaker_split
from ser_hf.training.experiment import train
from ser_hf.training.recipes import parse_run
from ser_hf.training.run_data import load_run_dataset

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ravdess" / "whisper-tiny.en-probe.yaml"


def _train_probe(out: Path, emotions: str | None, positions: int):
    run = parse_run(RECIPE, data_dir=str(SHARED_DATA / "ravdess"), emotions=emotions, max_source_positions=positions,
                    output_dir=str(out / "probe"))
    start = time.perf_counter()
    result = train(run, progress=False)
    return run, result, time.perf_counter() - start


def _test_part(run):
    """The held-out speakers of the run, split exactly as ``train`` split them."""
    data = run.data
    dataset = load_run_dataset(data)
    split = speaker_split(dataset, test_size=data.test_size, validation_size=data.validation_size, seed=data.fold_seed)
    return split["test"], dataset.features["label"].names


def _plain_int8(export: Path) -> Path:
    """For comparison only: onnxruntime's default dynamic quantisation (per tensor, full 8-bit range)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = export / "model.int8-per-tensor.onnx"
    quantize_dynamic(str(export / "model.onnx"), str(out), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])
    return out


def _score(probabilities: np.ndarray, part, labels: list[str]) -> dict:
    report = EvaluationReport.from_predictions(np.asarray(part["label"]), probabilities=probabilities,
                                               label_names=labels, n_resamples=0)
    return {"unweighted_accuracy": report.unweighted_accuracy, "weighted_accuracy": report.weighted_accuracy}


def _time_backends(recognizers: dict, waves: list[np.ndarray], repeats: int) -> tuple[dict, dict]:
    """Probabilities and seconds (min/median) per backend, rounds interleaved so that load spikes hit all of them."""
    for recognizer in recognizers.values():
        recognizer.predict_waves(waves[:8])  # warm-up: first-call allocations, onnxruntime arena
    jobs = {name: (lambda r=recognizer: r.predict_waves(waves)) for name, recognizer in recognizers.items()}
    times, probabilities = time_interleaved(jobs, repeats, warmup=0)
    return probabilities, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emotions", default=None, help="label subset, e.g. 4class (default: all 8 RAVDESS emotions)")
    parser.add_argument("--positions", type=int, default=300, help="Whisper max_source_positions (default 300 = 6 s)")
    parser.add_argument("--max-clips", type=int, default=0, help="score only the first N held-out clips (0: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    add_timing_arguments(parser)
    args = parser.parse_args()
    tmp = Path(scratch_dir("ser_hf_onnx_bench_"))
    run, trained, train_seconds = _train_probe(tmp, args.emotions, args.positions)
    start = time.perf_counter()
    record = export_onnx(trained.checkpoint, tmp / "export", quantize="int8")
    export_seconds = time.perf_counter() - start
    part, labels = _test_part(run)
    held_out = sorted(set(part["speaker"]))
    assert held_out == sorted(trained.report.metadata["speakers"]), "the test part differs from train()'s"
    if args.max_clips:
        part = part.select(range(min(args.max_clips, len(part))))
    plain_int8 = _plain_int8(tmp / "export")
    sources = {"torch_fp32": trained.checkpoint, "onnx_fp32": tmp / "export", "onnx_int8": tmp / "export" / "model.int8.onnx",
               "onnx_int8_per_tensor_8bit": plain_int8}
    recognizers = {name: EmotionRecognizer.from_pretrained(path, batch_size=args.batch_size) for name, path in sources.items()}
    waves = [recognizers["torch_fp32"].load(path) for path in part["audio"]]
    with timing_conditions(args, "one pass over the pre-decoded clips per backend, backends interleaved") as conditions:
        probabilities, times = _time_backends(recognizers, waves, args.repeats)
    reference = probabilities["torch_fp32"]
    backends = {}
    for name, probs in probabilities.items():
        backends[name] = {
            **_score(probs, part, labels),
            "top_label_agreement_with_torch": float(np.mean(probs.argmax(1) == reference.argmax(1))),
            "max_abs_prob_diff_vs_torch": float(np.abs(probs - reference).max()),
            "clips_per_second": round(len(waves) / times[name]["seconds"]["median"], 2),
            **times[name],
            "speedup_vs_torch": speedup(times["torch_fp32"]["seconds"], times[name]["seconds"]),
        }
    sizes = {"model.safetensors": (trained.checkpoint / "model.safetensors").stat().st_size, **record["files"],
             plain_int8.name: plain_int8.stat().st_size}
    write_result("onnx_export", {
        "setup": {
            "model": "whisper-tiny.en frozen probe (recipes/ravdess/whisper-tiny.en-probe.yaml)",
            "max_source_positions": args.positions, "corpus": "ravdess", "emotions": args.emotions or "all 8",
            "labels": labels, "held_out_speakers": held_out, "clips": len(waves),
            "clip_limit": args.max_clips or None, "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
        },
        "timing": conditions,
        "train_seconds": train_seconds,
        "probe_test_report_ua": trained.report.unweighted_accuracy,
        "export_seconds": export_seconds,
        "export_parity": record["parity"],
        "int8_settings": {k: v for k, v in record["quantization"].items() if k != "change_vs_pytorch"},
        "int8_change_on_export_check_clips": record["quantization"]["change_vs_pytorch"],
        "file_bytes": sizes,
        "backends": backends,
    })
    print(json.dumps(backends, indent=2))


if __name__ == "__main__":
    main()
