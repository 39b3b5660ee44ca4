"""Render the README's result tables from benchmarks/results/*.json (never type a figure by hand).

    .venv/bin/python benchmarks/tables.py            # prints Markdown to paste into README.md
"""

from __future__ import annotations

import json

from common import RESULTS_DIR


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _mean_std(summary: dict) -> str:
    std = summary.get("std")
    return f"{_pct(summary['mean'])} ± {_pct(std)}" if std is not None else _pct(summary["mean"])


def probe_table() -> str:
    data = json.loads((RESULTS_DIR / "probe_accuracy.json").read_text())
    lines = [
        "| corpus (classes) | backbone, input | UA mean ± std over folds | WA | macro-F1 | pooled UA [95% CI] | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in data["results"]["runs"]:
        corpus, model, positions = run["config"].split(":")
        classes = len(run["pooled"]["labels"])
        cut = "30 s padding" if positions == "0" else f"{int(positions) // 50} s input"
        low, high = run["pooled"]["confidence_intervals"]["unweighted_accuracy"]
        m = run["mean_std"]
        lines.append(
            f"| {corpus.split('/')[0]} ({classes}) | {model}, {cut} | {_mean_std(m['unweighted_accuracy'])} | "
            f"{_mean_std(m['weighted_accuracy'])} | {_mean_std(m['macro_f1'])} | "
            f"{_pct(run['pooled']['unweighted_accuracy'])} [{_pct(low)}-{_pct(high)}] | {run['seconds']:.0f} |"
        )
    return f"<!-- from benchmarks/results/probe_accuracy.json ({data['date']}, {data['machine']['cpu_count']} CPU cores) -->\n" + "\n".join(lines)


if __name__ == "__main__":
    print(probe_table())
