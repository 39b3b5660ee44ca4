"""Accuracy under degraded audio on speakers the model never heard: ``ser-hf evaluate --perturb``'s figures.

Protocol: the frozen-probe recipe (default: ``recipes/ravdess/whisper-tiny.en-probe.yaml``, 6 s input) is
fitted exactly as ``ser-hf cv`` fits its first fold: on every RAVDESS actor outside fold 1 (validation actors
drawn from those), and saved as a standard checkpoint with its run record and its held-out test report. Then
``evaluate_checkpoint(..., split="fold:1", perturb=...)`` scores the fold's 4 actors clean and under every
condition; the script checks that no evaluated speaker was in training. None of the shipped models can be
used this way: each was trained on every RAVDESS (and URDU) actor.

It evaluates twice: the first pass fills the prediction cache (an empty one under a temporary folder), the
second reads it, and both wall times are recorded with the machine's load average. Then it fits the same recipe
without its training copies (``probe_speed_copies`` and ``probe_noise_copies`` emptied) and scores it on the same
clips and conditions, so the table says what the copies buy under each condition.

    .venv/bin/python benchmarks/perturbation.py                 # writes benchmarks/results/perturbation.json
    .venv/bin/python benchmarks/perturbation.py --readme        # fills README.md's table from that file only
    .venv/bin/python benchmarks/perturbation.py --recipe recipes/ravdess/whisper-base-probe.yaml --emotions 4class \
        --name perturbation_whisper_base_4class                 # another recipe, into another file
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import RESULTS_DIR, SHARED_DATA, parse_overrides, scratch_dir, write_result

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ravdess" / "whisper-tiny.en-probe.yaml"
CONDITIONS = ("noise:snr=20,noise:snr=10,noise:snr=5,noise:snr=0,babble:snr=10,babble:snr=5,babble:snr=0,telephone,"
              "gain:db=-20,reverb:rt60=0.3,reverb:rt60=0.6,reverb:rt60=1.2,resample:rate=8000")
README = RESULTS_DIR.parents[1] / "README.md"
BEGIN = "<!-- perturbation:begin (benchmarks/perturbation.py --readme fills this from benchmarks/results/perturbation.json) -->"
END = "<!-- perturbation:end -->"


#: The recipe's training copies, turned off for the comparison.
WITHOUT_COPIES = {"probe_speed_copies": "none", "probe_noise_copies": "none"}


def fit_fold_one(recipe: Path, emotions: str | None, out: Path, **overrides) -> tuple[Path, list[str], list[str]]:
    """Fit the recipe (with ``overrides`` of its keys) on the actors outside fold 1, as `ser-hf cv` does; save it
    with its record and test report."""
    from ser_hf.splits import add_validation, select_fold
    from ser_hf.training.experiment import _evaluate, make_method
    from ser_hf.training.recipes import parse_run
    from ser_hf.training.run_data import load_run_dataset, run_folds

    run = parse_run(recipe, data_dir=str(SHARED_DATA / "ravdess"), emotions=emotions, output_dir=str(out),
                    **overrides)
    dataset = load_run_dataset(run.data)
    fold = run_folds(run, dataset)[0]
    if run.data.validation_size > 0:
        fold = add_validation(dataset, fold, run.data.validation_size, seed=run.data.fold_seed)
    parts = select_fold(dataset, fold)
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress=False).fit(parts["train"], parts.get("validation"))
    checkpoint = method.save(out)
    # What `ser-hf train` leaves beside a checkpoint: evaluate reads the audio cleaning and the held-out speakers.
    (out / "ser_hf_run.json").write_text(json.dumps(run.settings(dataset), indent=2, default=str) + "\n")
    _evaluate(run, method, parts["test"], fold.name)[0].write(out / "eval")
    seen = sorted(set(parts["train"]["speaker"]) | set(parts["validation"]["speaker"] if "validation" in parts else []))
    return checkpoint, sorted(set(parts["test"]["speaker"])), seen


def evaluate(checkpoint: Path, emotions: str | None, spec: str, cache: Path, out: Path) -> tuple[object, float]:
    from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
    from ser_hf.evaluation.robustness import PerturbationSettings

    start = time.perf_counter()
    report = evaluate_checkpoint(checkpoint, "ravdess", SHARED_DATA / "ravdess", emotions=emotions, split="fold:1",
                                 out_dir=out, progress=False, perturb=PerturbationSettings.from_spec(spec, 0, cache))
    return report, time.perf_counter() - start


def run_benchmark(recipe: Path, emotions: str | None, spec: str, overrides: dict | None = None) -> dict:
    import torch

    from ser_hf.evaluation.bootstrap import interval_caveat
    from ser_hf.training.recipes import parse_run

    overrides = overrides or {}
    fitted = parse_run(recipe, **overrides)  # what the recipe's copies are, to record what the comparison leaves out
    work = Path(scratch_dir("ser_hf_perturbation_"))
    start = time.perf_counter()
    checkpoint, tested, seen = fit_fold_one(recipe, emotions, work / "model", **overrides)
    fit_seconds = time.perf_counter() - start
    if set(tested) & set(seen):
        raise SystemExit(f"speakers both trained on and tested: {sorted(set(tested) & set(seen))}")
    report, first = evaluate(checkpoint, emotions, spec, work / "cache", work / "eval")
    again, cached = evaluate(checkpoint, emotions, spec, work / "cache", work / "eval-again")
    # The fold's few test speakers make the report warn that its intervals are coarse; any other warning (a speaker
    # seen in training) stops the benchmark.
    coarse = interval_caveat(len(tested), grouped=True)
    leaks = [w for w in report.metadata.get("warnings") or [] if coarse is None or w != coarse[1]]
    if leaks or sorted(report.metadata["speakers"]) != tested:
        raise SystemExit(f"evaluated speakers {report.metadata['speakers']} are not the held-out {tested}: {leaks}")
    if again.robustness["conditions"] != report.robustness["conditions"]:
        raise SystemExit("the cached rerun scored differently")
    held_out = json.loads((checkpoint / "eval" / "report.json").read_text())
    plain, plain_tested, _ = fit_fold_one(recipe, emotions, work / "model-without-copies",
                                          **{**overrides, **WITHOUT_COPIES})
    without, _ = evaluate(plain, emotions, spec, work / "cache", work / "eval-without-copies")
    if plain_tested != tested or without.num_samples != report.num_samples:
        raise SystemExit("the recipe without copies was scored on other clips")
    return {
        "recipe": str(recipe.relative_to(RESULTS_DIR.parents[1])), "emotions": emotions or "all",
        "overrides": overrides,
        "protocol": "fit on RAVDESS actors outside fold 1 (as ser-hf cv's first fold), evaluated on fold 1's actors",
        "test_speakers": tested, "training_speakers": seen, "perturb": spec, "seed": report.robustness["seed"],
        "labels": report.labels, "num_samples": report.num_samples, "torch_threads": torch.get_num_threads(),
        "clean_ua_probe_path": held_out["unweighted_accuracy"],
        "rows": report.robustness["conditions"], "bootstrap": report.robustness["bootstrap"],
        "seconds": {"fit": round(fit_seconds, 1), "evaluate_uncached": round(first, 1),
                    "evaluate_cached": round(cached, 1)},
        "predictions": {"computed_first_pass": report.robustness["cache"]["predictions_computed"],
                        "reused_second_pass": again.robustness["cache"]["predictions_reused"]},
        "without_copies": {"left_out": {key: getattr(fitted.probe, key) for key in WITHOUT_COPIES},
                           "rows": without.robustness["conditions"]},
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def readme_table(name: str = "perturbation") -> str:
    """The README's table, from the result file alone."""
    data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    result = data["results"]
    without = {row["condition"]: row for row in (result.get("without_copies") or {}).get("rows", [])}
    lines = [f"<!-- from benchmarks/results/{name}.json ({data['date']}) -->",
             "| condition | what | UA [95% CI] | WA | macro-F1 | UA change vs clean [95% CI] |"
             + (" without the recipe's training copies: UA (change vs clean) |" if without else ""),
             "|---|---|---|---|---|---|" + ("---|" if without else "")]
    for row in result["rows"]:
        low, high = row["confidence_interval"]
        change = "" if row["condition"] == "clean" else (
            f"{100 * row['ua_change']:+.1f} [{100 * row['ua_change_interval'][0]:+.1f}, "
            f"{100 * row['ua_change_interval'][1]:+.1f}]")
        plain = without.get(row["condition"])
        plain_cell = "" if not without else (" n/a |" if plain is None else (
            f" {_pct(plain['unweighted_accuracy'])}"
            + ("" if row["condition"] == "clean" else f" ({100 * plain['ua_change']:+.1f})") + " |"))
        lines.append(f"| `{row['condition']}` | {row['description']} | {_pct(row['unweighted_accuracy'])} "
                     f"[{_pct(low)}-{_pct(high)}] | {_pct(row['weighted_accuracy'])} | {_pct(row['macro_f1'])} | "
                     f"{change} |{plain_cell}")
    seconds, load = result["seconds"], data["machine"]["load_average"]
    changed = "".join(f" with {key}: {value}" for key, value in (result.get("overrides") or {}).items())
    lines += ["", f"{result['num_samples']} clips of actors {', '.join(result['test_speakers'])} "
              f"({len(result['labels'])} classes), {result['recipe']}{changed} fitted on the other "
              f"{len(result['training_speakers'])} actors; 95% intervals resample whole actors (the change: paired). "
              f"Scoring the clips clean and under {len(result['rows']) - 1} conditions "
              f"({result['predictions']['computed_first_pass']} predictions) took {seconds['evaluate_uncached']:.0f} s with an empty "
              f"prediction cache and {seconds['evaluate_cached']:.0f} s from the cache ({data['machine']['cpu_count']} "
              f"cores, load average {load[0]:.1f} when written)."]
    return "\n".join(lines)


def fill_readme() -> str:
    text, table = README.read_text(), readme_table()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md: markers {BEGIN!r} ... {END!r} not found.")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--emotions", default=None, help="e.g. 4class (default: every RAVDESS emotion)")
    parser.add_argument("--perturb", default=CONDITIONS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value (repeatable), e.g. probe_speed_copies=none")
    parser.add_argument("--name", default="perturbation",
                        help="result file (benchmarks/results/NAME.json); README.md's table is the default one's")
    parser.add_argument("--readme", action="store_true", help="only fill README.md from the result file")
    args = parser.parse_args()
    if args.readme:
        print(fill_readme())
        return
    write_result(args.name, run_benchmark(args.recipe.resolve(), args.emotions, args.perturb,
                                          parse_overrides(args.overrides)))
    print(readme_table(args.name))


if __name__ == "__main__":
    main()
