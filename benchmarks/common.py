"""Shared by every benchmark script: where results go and what is recorded with them.

Each benchmark writes ``benchmarks/results/<name>.json`` holding the exact command, the machine, the
date and package versions beside its figures, so every number quoted in the README can be traced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

# SER_HF_RESULTS_DIR redirects results (e.g. to the folder a GPU machine sends back).
RESULTS_DIR = Path(os.environ.get("SER_HF_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
# The shared corpora beside the checkout; SER_HF_SHARED_DATA points elsewhere (e.g. a copy on a GPU machine).
SHARED_DATA = Path(os.environ.get("SER_HF_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")

PACKAGES = ("ser-hf", "torch", "transformers", "datasets", "evaluate", "accelerate", "librosa",
            "soundfile", "soxr", "scikit-learn", "numpy")


def _accelerator() -> str | None:
    """The CUDA device's name, or None on a CPU-only machine."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def environment() -> dict:
    """Machine, date and versions of the packages that matter for the figures."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "accelerator": _accelerator(),
            # 1, 5 and 15 minute load averages when the result was written: timings from a busy machine say so.
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        },
        "versions": versions,
    }


def provenance() -> dict:
    """Command and date of this run, for a row that a result file accumulates across several runs."""
    env = environment()
    return {"command": env["command"], "date": env["date"]}


def write_result(name: str, results: dict) -> Path:
    """Write ``results`` with :func:`environment` to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({**environment(), "results": results}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def report_scores(report) -> dict:
    """The figures of an :class:`~ser_hf.evaluation.EvaluationReport` that results record."""
    return {
        "unweighted_accuracy": report.unweighted_accuracy,
        "weighted_accuracy": report.weighted_accuracy,
        "macro_f1": report.macro_f1,
        "confidence_intervals": report.confidence_intervals,
        "num_samples": report.num_samples,
        "labels": report.labels,
        "confusion_matrix": report.confusion_matrix,
    }


def cv_scores(cv) -> dict:
    """Mean ± std over folds and the pooled out-of-fold scores of a ``cross_validate`` result."""
    metrics = cv.aggregate["metrics"]
    return {"mean_std": {k: metrics[k] for k in ("unweighted_accuracy", "weighted_accuracy", "macro_f1")},
            "pooled": report_scores(cv.pooled)}
