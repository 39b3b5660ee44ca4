"""Render the README's result tables from benchmarks/results/*.json (never type a figure by hand).

    .venv/bin/python benchmarks/tables.py            # prints Markdown to paste into README.md
"""

from __future__ import annotations

import json

import yaml
from common import RESULTS_DIR


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _mean_std(summary: dict) -> str:
    std = summary.get("std")
    return f"{_pct(summary['mean'])} ± {_pct(std)}" if std is not None else _pct(summary["mean"])


def _row(corpus: str, system: str, run: dict) -> str:
    classes = len(run["pooled"]["labels"])
    low, high = run["pooled"]["confidence_intervals"]["unweighted_accuracy"]
    m = run["mean_std"]
    return (
        f"| {corpus.split('/')[0]} ({classes}) | {system} | {_mean_std(m['unweighted_accuracy'])} | "
        f"{_mean_std(m['weighted_accuracy'])} | {_mean_std(m['macro_f1'])} | "
        f"{_pct(run['pooled']['unweighted_accuracy'])} [{_pct(low)}-{_pct(high)}] | {run['seconds']:.0f} |"
    )


def _system(config: str) -> tuple[str, str]:
    """(corpus, system) from 'corpus:model:positions' (probe) or 'corpus:classifier' (baseline)."""
    parts = config.split(":")
    if len(parts) == 3:
        cut = "30 s padding" if parts[2] == "0" else f"{int(parts[2]) // 50} s input"
        return parts[0], f"{parts[1]} probe, {cut}"
    return parts[0], f"librosa features + {parts[1]}"


def _finetune_run(data: dict) -> dict:
    """A finetune_accuracy.py result as a run row: corpus and system from its recipe and overrides."""
    result = data["results"]
    recipe = yaml.safe_load((RESULTS_DIR.parents[1] / result["recipe"]).read_text())
    settings = {**recipe, **result["overrides"]}
    accelerator = data["machine"].get("accelerator") or "CPU"
    precision = ", bf16" if settings.get("bf16") else ""
    system = (f"{settings['model_name_or_path']} fine-tuned, lr {float(settings['learning_rate']):g}, "
              f"{int(settings['max_source_positions']) // 50} s input ({accelerator}{precision})")
    return {**result, "config": None, "corpus": settings["corpus"], "system": system}


def accuracy_table(*names: str) -> str:
    """One table of every run in the given result files, sorted by corpus."""
    header = [
        "| corpus (classes) | system | UA mean ± std over folds | WA | macro-F1 | pooled UA [95% CI] | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows, sources = [], []
    for name in names:
        data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        sources.append(f"{name}.json ({data['date']})")
        runs = data["results"]["runs"] if "runs" in data["results"] else [_finetune_run(data)]
        for run in runs:
            corpus, system = (run["corpus"], run["system"]) if run["config"] is None else _system(run["config"])
            rows.append((corpus, len(run["pooled"]["labels"]), _row(corpus, system, run)))
    rows.sort(key=lambda row: (row[0].split("/")[0], -row[1]))
    return f"<!-- from benchmarks/results/{', '.join(sources)} -->\n" + "\n".join(header + [r[2] for r in rows])


if __name__ == "__main__":
    print(accuracy_table("probe_accuracy", "reference_probe", "finetune_accuracy_ravdess8_gpu",
                         "finetune_accuracy_ravdess8_gpu_lr5e-5", "finetune_accuracy_ravdess4_gpu", "baseline_accuracy"))
