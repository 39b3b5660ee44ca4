"""Partial fine-tuning on a CPU: accuracy and cost of training the top k encoder layers on cached layer inputs.

Runs the speaker-grouped folds of ``cross_validate`` for a ``mode: partial`` recipe, fold by fold with the
same per-fold step (``ser_hf.training.experiment._fit_fold``), so each fold's method is at hand: ``--folds N``
keeps the first N folds (the whole protocol takes hours on a 2-core machine). On every fold it records UA,
WA and macro-F1, the layer-input cache's size and the time to fill it (from an empty cache unless
``--cache-dir``), seconds per training epoch (validation included), the best validation UA, the frozen
probe's UA on the same fold (default linear fit with the recipe's ``probe_*`` copies and inner folds, the ones
``head_init: probe`` starts from; its usual cache) and how closely
``pipeline("audio-classification")`` on the saved checkpoint reproduces the partial model on a few test clips.
The machine's load averages before the run are stored beside those ``write_result`` records at the end.

    .venv/bin/python benchmarks/partial_finetune.py --folds 1
    .venv/bin/python benchmarks/partial_finetune.py recipes/ravdess/whisper-base-partial.yaml --set train_top_layers=2
    .venv/bin/python benchmarks/partial_finetune.py --folds 1 --set "probe_speed_copies=[0.9, 1.1]" \
        --set "probe_noise_copies=[20]" --name partial_finetune_copies
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from common import SHARED_DATA, parse_overrides, write_result
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.models.layer_inputs import forward_to_layer
from ser_hf.training.experiment import _fit_fold
from ser_hf.training.recipes import parse_run
from ser_hf.training.run_data import load_run_dataset, run_folds

DEFAULT_RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "ravdess" / "whisper-base-partial.yaml")


def _scores(report) -> dict:
    return {key: round(getattr(report, key), 4) for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1")}


def _parity(method, test, clips: int, out: Path) -> dict:
    """Largest probability differences between the served checkpoint and the partial model on ``clips`` test clips."""
    classify = pipeline("audio-classification", model=str(method.save(out)), device=-1)
    cached = method.predict_proba(test.select(range(clips)))
    exact, rounded = 0.0, 0.0
    for row in range(clips):
        wave = load_audio(test[row]["audio"])
        scores = {r["label"]: r["score"] for r in classify(wave, top_k=None)}
        served = np.array([scores[name] for name in method.labels])
        (state, lower), = forward_to_layer(method.model, method.feature_extractor, [wave], method.layer)
        with torch.no_grad():
            logits = method.top.eval().cpu()(torch.from_numpy(state)[None], lower=torch.from_numpy(lower)[None]).logits
        exact = max(exact, float(np.abs(served - torch.softmax(logits, -1)[0].numpy()).max()))
        rounded = max(rounded, float(np.abs(served - cached[row]).max()))
    return {"clips": clips, "max_abs_diff_float32_layer_input": exact, "max_abs_diff_float16_cache": rounded}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", default=DEFAULT_RECIPE, help="a mode: partial recipe")
    parser.add_argument("--folds", type=int, default=None, help="run only the first N folds (default: all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value (repeatable)")
    parser.add_argument("--cache-dir", default=None, help="layer-input cache (default: a fresh, empty folder)")
    parser.add_argument("--parity-clips", type=int, default=3, help="test clips checked against pipeline()")
    parser.add_argument("--name", default="partial_finetune", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    load_before = [round(x, 2) for x in os.getloadavg()]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime before: {uptime}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        recipe = yaml.safe_load(open(args.recipe))
        cache = args.cache_dir or f"{tmp}/cache"
        run = parse_run(args.recipe, **{"data_dir": str(SHARED_DATA / recipe["corpus"]), "output_dir": f"{tmp}/run",
                                        "embedding_cache_dir": cache, **overrides})
        # The probe on the same folds: default linear fit with the recipe's probe settings (the training copies
        # head_init: probe also fits with), its usual pooled-state cache.
        probe = parse_run(None, corpus=run.data.corpus, data_dir=run.data.data_dir, emotions=run.data.emotions,
                          model_name_or_path=run.model.model_name_or_path, mode="probe",
                          max_source_positions=run.model.max_source_positions, output_dir=f"{tmp}/probe",
                          probe_inner_folds=run.probe.probe_inner_folds,
                          probe_speed_copies=run.probe.probe_speed_copies,
                          probe_noise_copies=run.probe.probe_noise_copies)
        dataset = load_run_dataset(run.data)
        labels = dataset.features["label"].names
        folds = run_folds(run, dataset)
        chosen = folds[: args.folds] if args.folds else folds
        results = {"recipe": args.recipe, "overrides": overrides, "torch_threads": torch.get_num_threads(),
                   "folds_run": len(chosen), "folds_in_protocol": len(folds),
                   "note": (f"first {len(chosen)} of {len(folds)} folds only (--folds {args.folds}): the whole "
                            f"protocol would take hours on this shared CPU machine") if len(chosen) < len(folds)
                   else "every fold of the protocol",
                   "load_average_before": load_before, "uptime_before": uptime, "folds": []}
        for fold in chosen:
            start = time.perf_counter()
            method, test, report, _ = _fit_fold(run, dataset, fold, labels, progress=False)
            row = {"fold": fold.name, "test_clips": report.num_samples, **_scores(report),
                   "seconds": round(time.perf_counter() - start, 1), "cache": dict(method.cache_report),
                   "training": dict(method.training_report), "head_init_fit": method.head_fit_record}
            row["cache"]["megabytes"] = round(row["cache"]["bytes"] / 2**20, 1)
            print(f"{fold.name}: partial UA {report.unweighted_accuracy:.4f}, cache {row['cache']}, "
                  f"training {row['training']}", flush=True)
            row["pipeline_parity"] = _parity(method, test, args.parity_clips, Path(tmp) / "model")
            start = time.perf_counter()
            probe_report = _fit_fold(probe, dataset, fold, labels, progress=False)[2]
            row["probe"] = {**_scores(probe_report), "seconds": round(time.perf_counter() - start, 1)}
            print(f"{fold.name}: probe UA {probe_report.unweighted_accuracy:.4f}", flush=True)
            results["folds"].append(row)
            write_result(args.name, results)
        for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1"):
            results[f"mean_{key}"] = round(float(np.mean([row[key] for row in results["folds"]])), 4)
            results[f"probe_mean_{key}"] = round(float(np.mean([row["probe"][key] for row in results["folds"]])), 4)
    write_result(args.name, results)


if __name__ == "__main__":
    main()
