"""Render the README's result tables from benchmarks/results/*.json (never type a figure by hand).

    .venv/bin/python benchmarks/tables.py            # prints Markdown to paste into README.md
    .venv/bin/python benchmarks/tables.py --readme   # fills README.md's tables in place (README_TABLES)
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import yaml
from common import RESULTS_DIR

from ser_hf.evaluation.tables import signed_percent_range
from ser_hf.models.adaptive_head import choice_label

README = RESULTS_DIR.parents[1] / "README.md"


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


#: The neural baselines' rows: networks trained from scratch on frame sequences, not librosa statistics.
NEURAL_SYSTEMS = {"cnn": "CNN on 64 log-mel bands, trained from scratch",
                  "lstm": "BiLSTM on 20 MFCCs + deltas, trained from scratch"}


def _input_label(positions: str | int) -> str:
    """A Whisper input length as the tables name it: '6 s input', or '30 s padding' for 0 (Whisper's own)."""
    return "30 s padding" if int(positions) == 0 else f"{int(positions) / 50:g} s input"


def _probe_input(config: str) -> str:
    """What a probe config ('corpus:model:positions[:speed factors[:noise SNRs]]') learns from: '6 s input, speed
    copies 0.9x and 1.1x, noise copies at 20 dB SNR'."""
    parts = config.split(":")
    cut = _input_label(parts[2])
    if len(parts) >= 4 and parts[3]:  # probe_speed_copies
        cut += ", speed copies " + " and ".join(f"{float(f):g}x" for f in parts[3].split(","))
    if len(parts) == 5:  # probe_noise_copies
        cut += ", noise copies at " + " and ".join(f"{float(snr):g} dB SNR" for snr in parts[4].split(","))
    return cut


def _system(config: str) -> tuple[str, str]:
    """(corpus, system) from 'corpus:model:positions' (probe) or 'corpus:classifier' (baseline)."""
    parts = config.split(":")
    if len(parts) in (3, 4, 5):
        return parts[0], f"{parts[1]} probe, {_probe_input(config)}"
    if parts[1] in NEURAL_SYSTEMS:
        return parts[0], NEURAL_SYSTEMS[parts[1]]
    return parts[0], f"librosa features + {parts[1]}"


def _finetune_run(data: dict) -> dict:
    """A finetune_accuracy.py result as a run row: corpus and system from its recipe and overrides."""
    result = data["results"]
    recipe = yaml.safe_load((RESULTS_DIR.parents[1] / result["recipe"]).read_text())
    settings = {**recipe, **result["overrides"]}
    accelerator = data["machine"].get("accelerator") or "CPU"
    precision = ", bf16" if settings.get("bf16") else ""
    system = (f"{settings['model_name_or_path']} fine-tuned, lr {float(settings['learning_rate']):g}, "
              f"{_input_label(settings['max_source_positions'])} ({accelerator}{precision})")
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


def _licence(corpora: list[str]) -> str:
    terms = ["non-commercial (RAVDESS: CC BY-NC-SA 4.0)"] if "ravdess" in corpora else []
    return "; ".join(terms + (["URDU: research use only"] if "urdu" in corpora else []))


def _copies(run: dict) -> str:
    """', with 0.9x and 1.1x speed copies' (and ', and 20 dB noise copies') when the head also learned from
    training copies (probe_speed_copies, probe_noise_copies)."""
    factors, snrs = run.get("speed_copies") or [], run.get("noise_copies") or []
    kinds = ([f"{' and '.join(f'{factor:g}x' for factor in factors)} speed copies"] if factors else []) + (
        [f"{' and '.join(f'{snr:g} dB' for snr in snrs)} noise copies"] if snrs else [])
    return f", with {' and '.join(kinds)}" if kinds else ""


def released_models_table(name: str = "release_models") -> str:
    """The released models' speaker-independent CV scores (pooled and per corpus), from their result file."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        return ("*Not measured yet: `benchmarks/release_models.py --write` trains the shipped heads and writes "
                "`benchmarks/results/release_models.json`; `benchmarks/tables.py --readme` then fills this table.*")
    data = json.loads(path.read_text())
    header = [
        "| model | classes | trained on (all clips) | CV UA, pooled [95% CI] | WA | macro-F1 | UA per corpus | use |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for run in sorted(data["results"]["runs"], key=lambda run: run["name"]):
        pooled = run["pooled"]
        low, high = pooled["confidence_intervals"]["unweighted_accuracy"]
        per_corpus = ", ".join(f"{corpus.upper()} {_pct(scores['unweighted_accuracy'])}"
                               for corpus, scores in run["per_corpus"].items())
        rows.append(
            f"| `{run['name']}` | {len(pooled['labels'])}: {', '.join(pooled['labels'])} | "
            f"{' + '.join(c.upper() for c in run['corpora'])} ({run['clips']} clips{_copies(run)}) | "
            f"{_pct(pooled['unweighted_accuracy'])} [{_pct(low)}-{_pct(high)}] | {_pct(pooled['weighted_accuracy'])} | "
            f"{_pct(pooled['macro_f1'])} | {per_corpus} | {_licence(run['corpora'])} |"
        )
    notes = _released_notes(data["results"]["runs"])
    return f"<!-- from benchmarks/results/{name}.json ({data['date']}) -->\n" + "\n".join(header + rows) + notes


def _length_note(decision: str, runs: list[dict]) -> str:
    """'**Input length: 6 s** (`model`, ...). why': one note per decision, naming the models it is about."""
    seconds = ", ".join(f"{s:g}" for s in sorted({run["input_length"]["seconds"] for run in runs}))
    names = ", ".join(f"`{run['name']}`" for run in runs)
    return f"**Input length: {seconds} s** ({names}). {decision}"


def _one_corpus_models(runs: list[dict]) -> str:
    """' (shipped: `a` for URDU, ...), or train one' naming the released one-corpus models (or ', trained with ser_hf')."""
    shipped = [f"`{run['name']}` for {run['corpora'][0].upper()}" for run in sorted(runs, key=lambda run: run["name"])
               if len(run.get("corpora") or []) == 1]
    return f" (shipped: {', '.join(shipped)}), or train one" if shipped else ", trained with ser_hf"


def _released_notes(runs: list[dict]) -> str:
    """The input-length decision and what training on several corpora costs each, as recorded with the runs."""
    runs = sorted(runs, key=lambda run: run["name"])
    by_decision: dict[str, list[dict]] = {}
    for run in runs:
        if (run.get("input_length") or {}).get("decision"):
            by_decision.setdefault(run["input_length"]["decision"], []).append(run)
    costs = [f"`{run['name']}` " + ", ".join(f"{corpus.upper()} {_pct(row['combined'])} vs {_pct(row['alone'])}"
                                             for corpus, row in run["single_corpus_probes"].items())
             for run in runs if run.get("single_corpus_probes")]
    notes = [_length_note(decision, same) for decision, same in by_decision.items()]
    if costs:
        notes.append("**One model for both corpora costs accuracy on each** (UA per corpus above vs a probe of the "
                     "same recipe trained on that corpus alone, `benchmarks/results/release_references.json`): "
                     f"{'; '.join(costs)}. It still does far better on the other corpus than a model trained on one "
                     "(see the cross-corpus drop below); for speech like one corpus, use a model trained on that corpus "
                     f"alone{_one_corpus_models(runs)}.")
    copies = [f"`{run['name']}` {_ci(run['test_time_copies'])} against {_pct(run['pooled']['unweighted_accuracy'])} "
              f"(gain [{signed_percent_range(run['test_time_copies']['gain_interval'])}])"
              for run in runs if run.get("test_time_copies")]
    if copies:
        notes.append("**Test-time copies** (`ser-hf predict --test-time-copies`: each clip also scored as the copies its "
                     "head learned from, log-probabilities averaged; not what `pipeline()` gives), the same CV, pooled "
                     f"UA [95% CI] against the clip alone (the gain's paired 95% CI): {'; '.join(copies)}.")
    adaptive = _released_adaptive(runs)
    return "".join(f"\n\n{note}" for note in notes) + (f"\n\n{adaptive}" if adaptive else "")


#: Enrollment settings shown for the shipped models' speaker adaptation (release_models.py measures these).
RELEASED_ADAPTIVE_COLUMNS = (("3", "3 clips"), ("10", "10 clips"), ("all", "all clips"),
                             ("neutral", "10 neutral clips"))


def _released_adaptive(runs: list[dict]) -> str:
    """Each shipped model's speaker adaptation in the same CV, per enrollment setting (empty if not measured)."""
    rows = []
    for run in runs:  # sorted by name (_released_notes)
        settings = {row["enrollment"]: row for row in run.get("speaker_adaptive") or []}
        if settings:
            rows.append(f"| `{run['name']}` | {_estimators(settings)} | "
                        + " | ".join(_adaptive_cell(settings.get(key)) for key, _ in RELEASED_ADAPTIVE_COLUMNS) + " |")
    if not rows:
        return ""
    off = [f"`{run['name']}`" for run in runs if _shipped_adaptation_off(run)]
    switched_off = (f" The inner check on all of a model's training speakers switched the shipped adaptation of "
                    f"{', '.join(off)} off (it scored below the standard head): its enrolled speakers are scored by the standard head, "
                    f"with the reason; "
                    f"its row below is the CV's, where each fold's check decided for itself." if off else "")
    return "\n".join([
        "**Speaker adaptation ships with every model** (`recognizer.enroll(speaker, clips)`, see Speaker-adaptive below): the same CV with "
        "unlabelled clips of each test speaker enrolled. Each cell: pooled UA [95% CI], the gain over the "
        "standard head on the very same clips [its paired 95% CI, where measured], and how many test speakers fell back to it (the fold's inner check "
        "switched adaptation off, or too few clips); enrollment clips are never scored, except \"all\"."
        + _draws_sentence([row for run in runs for row in run.get("speaker_adaptive") or []]) + switched_off, "",
        "| model | offset estimator, enrollment shrinkage k (folds) | " + " | ".join(label for _, label in RELEASED_ADAPTIVE_COLUMNS) + " |",
        "|---|---|" + "---|" * len(RELEASED_ADAPTIVE_COLUMNS), *rows])


def _shipped_adaptation_off(run: dict) -> bool:
    """Whether the committed head of a released model (its ``record.json``) ships with adaptation switched off."""
    record = README.parent / run.get("folder", "") / "record.json"
    if not run.get("folder") or not record.is_file():
        return False
    return json.loads(record.read_text()).get("speaker_adaptation", {}).get("enabled") is False


def _ci(scores: dict) -> str:
    low, high = scores["confidence_intervals"]["unweighted_accuracy"]
    return f"{_pct(scores['unweighted_accuracy'])} [{_pct(low)}-{_pct(high)}]"


def _old_probe(config: str) -> str:
    """The gradient-trained head's pooled UA for a config, from probe_accuracy.json (the previous default)."""
    runs = json.loads((RESULTS_DIR / "probe_accuracy.json").read_text())["results"]["runs"]
    return next((_pct(run["pooled"]["unweighted_accuracy"]) for run in runs if run["config"] == config), "not run")


def accuracy_tables(name: str = "accuracy") -> str:
    """The standard-checkpoint table (probe vs reference vs the old head) and the speaker-adaptive table."""
    data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    rows = {(row["config"], row["method"]): row for row in data["results"]["rows"]}
    configs = list(dict.fromkeys(config for config, _ in rows))
    # A configuration with training copies ('corpus:model:positions:factors') follows the one without them.
    bases = list(dict.fromkeys(":".join(config.split(":")[:3]) for config in configs))
    configs.sort(key=lambda config: (bases.index(":".join(config.split(":")[:3])), config.count(":")))
    standard = [
        "| corpus (classes) | backbone, input | probe (linear fit, standard checkpoint): pooled UA [95% CI] | "
        "UA mean ± std over folds | reference (LR on all layers, not a checkpoint) | previous gradient head | "
        "time (s) |",
        "|---|---|---|---|---|---|---|"]
    adaptive = [
        "| corpus (classes) | backbone, input | offset estimator, enrollment shrinkage k (folds) | "
        + " | ".join(label for _, label in ADAPTIVE_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(ADAPTIVE_COLUMNS)]
    for config in configs:
        probe = rows.get((config, "probe"))
        if probe is None or probe.get("per_corpus"):
            continue  # multi-corpus rows get their own table
        corpus, system = _system(config)
        backbone = system.replace(" probe", "")
        reference = rows.get((config, "reference"))
        label = f"{corpus.split('/')[0]} ({len(probe['pooled']['labels'])})"
        standard.append(f"| {label} | {backbone} | {_ci(probe['pooled'])} | "
                        f"{_mean_std(probe['mean_std']['unweighted_accuracy'])} | "
                        f"{_ci(reference['pooled']) if reference else 'not run'} | {_old_probe(config)} | "
                        f"{probe['seconds']:.0f} |")
        for method, variant in ADAPTIVE_METHODS.items():
            measured = rows.get((config, method)) or {}
            for key, suffix in (("speaker_adaptive", ""),
                                ("speaker_adaptive_test_time_copies", ", with test-time copies")):
                settings = {row["enrollment"]: row for row in measured.get(key) or []}
                if settings:
                    adaptive.append(f"| {label} | {backbone}{suffix}{variant} | {_estimators(settings)} | "
                                    + " | ".join(_adaptive_cell(settings.get(k)) for k, _ in ADAPTIVE_COLUMNS) + " |")
    source = f"<!-- from benchmarks/results/{name}.json ({data['date']}) -->"
    precision = [f"{_system(config)[0]} ({_system(config)[1].replace(' probe', '')}): bfloat16 "
                 f"{_pct(row['pooled']['unweighted_accuracy'])} vs float32 "
                 f"{_pct(rows[(config, 'probe')]['pooled']['unweighted_accuracy'])} pooled UA"
                 for (config, method), row in rows.items()
                 if method == "probe, bfloat16 frozen forward" and (config, "probe") in rows]
    multi = [f"| {_system(config)[1].replace(' probe', '')} | {_ci(row['pooled'])} | "
             + ", ".join(f"{corpus.upper()} {_ci(scores)}" for corpus, scores in row["per_corpus"].items()) + " | "
             + ", ".join(f"{other['test_corpus'].upper()} {_ci(other['pooled'])}"
                         for (c, m), other in rows.items() if c == config and m.startswith("leave one corpus out"))
             + " |" for config in configs if (row := rows.get((config, "probe"))) and row.get("per_corpus")]
    if multi:
        standard += ["", "One model trained on URDU + RAVDESS (4 classes, folds within each corpus):", "",
                     "| backbone, input | pooled UA [95% CI] | in-corpus UA per corpus | "
                     "leave one corpus out (trained on the other corpus) |", "|---|---|---|---|", *multi]
    copies = [f"| {_system(config)[0].split('/')[0]} ({len(row['pooled']['labels'])}) | "
              f"{_system(config)[1].replace(' probe', '')} | {_ci(row['pooled'])} | {_ci(row['test_time_copies'])} | "
              f"{100 * (row['test_time_copies']['unweighted_accuracy'] - row['pooled']['unweighted_accuracy']):+.1f} |"
              for config in configs if (row := rows.get((config, "probe"))) and row.get("test_time_copies")]
    if copies:
        standard += ["", "The same probes with test-time copies (`ser-hf predict --test-time-copies`: each clip scored "
                     "with the copies its probe trained on; not what `pipeline()` gives):", "",
                     "| corpus (classes) | backbone, input | the clip alone (as above) | with test-time copies | "
                     "difference |", "|---|---|---|---|---|", *copies]
    partial = _partial_rows(rows)
    if partial:
        standard += ["", "Partial fine-tuning (`mode: partial`: the top encoder layers and the head trained on cached "
                     "layer inputs, starting from the probe's fit, early stopping on each fold's validation speakers; "
                     "`accuracy.py --partial K`), same folds, one run per seed:", "",
                     "| corpus (classes) | backbone, input | layers trained | pooled UA [95% CI] of each seed run | "
                     "mean of the seeds | probe (as above) |", "|---|---|---|---|---|---|", *partial]
    notes = ["", "Frozen forward in bfloat16 (`embedding_dtype: bfloat16`), same folds: " + "; ".join(precision) + "."]
    adaptive_rows = [row for (_, method), measured in rows.items() if method in ADAPTIVE_METHODS
                     for row in measured.get("speaker_adaptive") or []]
    legend = ("Each cell: speaker-adaptive pooled UA [95% CI], then the gain over the global head on the very same "
              "clips [its paired 95% CI: each resample draws the same speakers for both heads], and how many test "
              "speakers fell back to the global head (too few clips, or adaptation off). "
              "Enrollment clips are drawn at random per test speaker and never scored, except \"all\" "
              "(transductive)." + _draws_sentence(adaptive_rows)
              + (" Rows \"with test-time copies\" score every clip with its training copies too (each copy with its own "
                 "offset), on the same enrollment draws; their gain is over the global head with the same copies."
                 if any(measured.get("speaker_adaptive_test_time_copies") for measured in rows.values()) else ""))
    return "\n".join([source, *standard, *(notes if precision else []), "",
                      "Speaker-adaptive rows (not the standard headline):", "", legend, "", *adaptive, "",
                      _gain_tally(rows)])


#: The speaker-adaptive methods of ``accuracy.py`` the table shows, each with what its rows add to the backbone's name.
ADAPTIVE_METHODS = {"probe + speaker adaptation": "",
                    "probe + speaker adaptation, score spread offered": ", score spread offered (opt-in)"}


def _gain_tally(rows: dict) -> str:
    """How many speaker-adaptive cells of the file (every enrollment setting, with and without test-time copies)
    have a paired gain interval wholly below zero (adaptation worse than the global head by more than noise),
    naming them, and how many wholly above it."""
    cells = []
    for (config, method), measured in rows.items():
        if method not in ADAPTIVE_METHODS:
            continue
        corpus, system = _system(config)
        classes = len(rows[config, "probe"]["pooled"]["labels"])
        for key, suffix in (("speaker_adaptive", ""), ("speaker_adaptive_test_time_copies", ", with test-time copies")):
            for row in measured.get(key) or []:
                if row.get("gain_interval"):
                    where = (f"{corpus.split('/')[0]} ({classes}) "
                             f"{system.replace(' probe', '')}{suffix}{ADAPTIVE_METHODS[method]}, "
                             f"enrollment {row['enrollment']}")
                    cells.append((where, row))
    worse = [f"{where}: {100 * row['gain']:+.1f} [{signed_percent_range(row['gain_interval'])}]"
             for where, row in cells if row["gain_interval"][1] < 0]
    better = sum(row["gain_interval"][0] > 0 for _, row in cells)
    return (f"Of these {len(cells)} speaker-adaptive cells (with their paired gain interval), {better} gain by more "
            f"than noise (the interval wholly above zero) and {len(worse)} lose by more than noise (wholly below zero)"
            + (": " + "; ".join(worse) + "." if worse else "."))


#: How accuracy.py names a partial fine-tuning row: layers trained and seed.
PARTIAL_METHOD = re.compile(r"partial fine-tuning, top (\d+) layers?, seed (\d+)")


def _partial_rows(rows: dict) -> list[str]:
    """One table line per (config, layers trained): every seed's pooled UA, their mean, the probe's."""
    runs = {}
    for (config, method), row in rows.items():
        if match := PARTIAL_METHOD.fullmatch(method):
            runs.setdefault((config, int(match[1])), []).append((int(match[2]), row))
    lines = []
    for (config, layers), seeded in runs.items():
        seeded.sort(key=lambda pair: pair[0])
        corpus, system = _system(config)
        probe = rows.get((config, "probe"))
        lines.append(f"| {corpus.split('/')[0]} ({len(seeded[0][1]['pooled']['labels'])}) | "
                     f"{system.replace(' probe', '')} | top {layers} | "
                     + "; ".join(f"seed {seed}: {_ci(row['pooled'])}" for seed, row in seeded) + " | "
                     + (f"{_pct(statistics.mean(row['pooled']['unweighted_accuracy'] for _, row in seeded))}"
                        if len(seeded) > 1 else "one seed run") + " | "
                     f"{_ci(probe['pooled']) if probe else 'not run'} |")
    return lines


#: Enrollment settings shown in the README's speaker-adaptive table (the result file has 1 to 20 clips).
ADAPTIVE_COLUMNS = (("3", "3 clips"), ("10", "10 clips"), ("20", "20 clips"), ("all", "all clips"),
                    ("neutral", "10 neutral clips"))


def _draws_sentence(adaptive_rows: list[dict]) -> str:
    """How many enrollment draws a random setting's cell pools (rows measured before draws were pooled had one)."""
    draws = sorted({row.get("enrollment_draws", 1) for row in adaptive_rows if row["enrollment"] != "all"})
    if draws == [1] or not draws:
        return ""
    counts = " or ".join(str(n) for n in draws)
    return (f" A cell of random clips pools {counts} draws of them per test speaker (each draw scores the clips it "
            "did not enroll), so which clips one draw happens to pick moves it less.")


def _adaptive_cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    low, high = row["confidence_interval"]
    fallback = f", {row['fallback_speakers']}/{row['speakers']} fell back" if row["fallback_speakers"] else ""
    # rows measured before the paired interval have none
    paired = f" [{signed_percent_range(row['gain_interval'])}]" if row.get("gain_interval") else ""
    return (f"{_pct(row['unweighted_accuracy'])} [{_pct(low)}-{_pct(high)}] "
            f"({100 * row['gain']:+.1f}{paired}{fallback})")


def _estimators(settings: dict) -> str:
    """The offset estimator (and enrollment shrinkage k) each fold chose, counted: e.g. 'speaker mean, k=2 x5'."""
    row = next(iter(settings.values()))
    chosen = row.get("offset_estimator_by_fold")
    if not chosen:
        return "emotion-mix-aware (before the choice existed)"
    shrinks = row.get("enrollment_shrink_by_fold") or [None] * len(chosen)
    labels = [choice_label(name, shrink) for name, shrink in zip(chosen, shrinks)]
    counts = {label: labels.count(label) for label in dict.fromkeys(labels)}
    return "; ".join(f"{label} x{count}" for label, count in counts.items())


def _assignments_corpus(run: dict) -> str:
    return f"{run['corpus'].split('/')[0]} ({len(run['labels'])})"


def _variant_line(run: dict, label: str, row: dict, first: bool, backbone: str | None = None) -> str:
    """One variant of a ``variant_comparison`` run: its mean pooled UA over the assignments and its change
    (``backbone`` names the backbone column; default: the run's model)."""
    values, change = row["pooled_ua_by_assignment"], row["difference_to_first"]
    versus = "(first)" if first else (
        f"{100 * change['mean']:+.1f} ({100 * change['min']:+.1f} to {100 * change['max']:+.1f}), "
        f"{change['assignments_better']} / {change['assignments_worse']}")
    return (f"| {_assignments_corpus(run)} | {backbone or run['model']} | {label} | {_pct(row['mean'])} "
            f"({_pct(min(values))}-{_pct(max(values))}) | {versus} |")


def _variant_table_start(name: str, backbone: str, variant: str, first: str) -> tuple[dict, list[str]]:
    """A ``variant_comparison`` result file and the opening lines of its table (source, header, rule)."""
    data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    return data, [f"<!-- from benchmarks/results/{name}.json -->",
                  f"| corpus (classes) | {backbone} | {variant} | pooled UA, mean of the fold assignments (range) | "
                  f"vs {first}: mean difference (range), assignments better / worse |",
                  "|---|---|---|---|---|"]


def input_length_table(name: str = "input_length") -> str:
    """Pooled UA of each Whisper input length over several fold assignments (``benchmarks/input_length.py``)."""
    data, lines = _variant_table_start(name, "backbone", "input", "the first length")
    for run in data["results"]["runs"]:
        for length in run["lengths"]:
            lines.append(_variant_line(run, f"{length['seconds']:g} s", length, length is run["lengths"][0]))
    lines.append("")
    lines.append("Length chosen per shared fold by the training speakers' own inner CV instead: " + "; ".join(
        f"{_assignments_corpus(run)} {run['model']} {_pct(run['inner_cv_choice']['pooled_ua_shared_folds'])} "
        f"(chose {', '.join(str(int(c['positions']) or 1500) for c in run['inner_cv_choice']['per_fold'])} positions)"
        for run in data["results"]["runs"]) + ".")
    return "\n".join(lines)


def speed_copies_table(name: str = "speed_copies") -> str:
    """Pooled UA without and with speed-perturbed training copies over several fold assignments
    (``benchmarks/speed_copies.py``)."""
    data, lines = _variant_table_start(name, "backbone, input", "training copies", "no copies")

    def label(variant: str) -> str:
        return "none" if variant == "none" else ", ".join(f"{float(f):g}x speed" for f in variant.split(","))

    # Runs of the same corpus, backbone and input share their "none" row (same states, same folds): shown once.
    groups: dict[tuple, list[dict]] = {}
    for run in data["results"]["runs"]:
        groups.setdefault((run["corpus"], run["model"], run["max_source_positions"]), []).append(run)
    for runs in groups.values():
        for index, run in enumerate(runs):
            backbone = f"{run['model']}, {run['max_source_positions'] / 50:g} s input"
            for variant, row in list(run["rows"].items())[(1 if index else 0):]:
                lines.append(_variant_line(run, label(variant), row, variant == "none", backbone))
    lines.append("")
    lines.append("Chosen per shared fold by the training speakers' own inner CV instead: " + "; ".join(
        f"{_assignments_corpus(run)} {run['model']} with {label(list(run['rows'])[1])} "
        f"{_pct(run['inner_cv_choice']['pooled_ua_shared_folds'])} "
        f"(copies in {sum(c['variant'] != 'none' for c in run['inner_cv_choice']['per_fold'])} of "
        f"{len(run['inner_cv_choice']['per_fold'])} folds)" for runs in groups.values() for run in runs) + ".")
    return "\n".join(lines)


def audio_variants_table(name: str = "probe_audio_variants", first: str = "none",
                         what: str = "what the probe learns from") -> str:
    """Pooled UA of changes to the probe over several fold assignments, each against the first variant of its
    config: the other audio changes tried (``benchmarks/probe_audio_variants.py``), the noise and gain copies
    (``benchmarks/noise_copies.py``, ``name="noise_copies"``) or the layer mixes (``benchmarks/layer_mixes.py``,
    ``name="layer_mixes"``, whose runs are assignments x inner seeds and have no inner-CV choice); ``what`` heads
    the variants' column."""
    data, lines = _variant_table_start(name, "backbone, input", what, first)
    # The rows name their config only; _variant_line reads corpus and model.
    runs = [{**run, "corpus": run["config"].split(":")[0], "model": run["config"].split(":")[1]}
            for run in data["results"]["runs"]]
    for run in runs:
        backbone = f"{run['model']}, {_input_label(run['config'].split(':')[2])}"
        for index, (variant, row) in enumerate(run["rows"].items()):
            lines.append(_variant_line(run, variant.removeprefix("none + "), row, index == 0, backbone))
    if not all("inner_cv_choice" in run for run in runs):
        return "\n".join(lines)
    lines.append("")
    lines.append("Chosen per shared fold by the training speakers' own inner CV instead: " + "; ".join(
        f"{_assignments_corpus(run)} {run['model']} "
        f"{_pct(run['inner_cv_choice']['pooled_ua_shared_folds'])} (chose "
        + ", ".join(f"{variant} x{count}" for variant, count in Counter(
            c["variant"].removeprefix("none + ") for c in run["inner_cv_choice"]["per_fold"]).most_common()) + ")"
        for run in runs) + ".")
    return "\n".join(lines)


def corpus_balance_table(name: str = "corpus_balance", variant: str = "fit") -> str:
    """Variants over several fold assignments, scored per corpus (``benchmarks/corpus_balance.py`` and the scripts
    built on it, whose variants the column ``variant`` names): pooled UA and, for several corpora, each corpus's
    in-corpus UA, each against the first variant."""
    data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    lines = [f"<!-- from benchmarks/results/{name}.json -->",
             f"| corpora (classes) | backbone, input | {variant} | pooled UA, mean of the fold assignments (range) | "
             f"vs the first {variant}: mean difference (range), assignments better / worse | "
             f"in-corpus UA (vs the first {variant}) |",
             "|---|---|---|---|---|---|"]
    for run in data["results"]["runs"]:
        corpora = " + ".join(run["corpora"])
        backbone = f"{run['model']}, {_probe_input(run['config'])}"
        pooled = run["rows"]["pooled"]
        for index, (fit, row) in enumerate(pooled.items()):
            line = _variant_line({**run, "corpus": corpora}, fit, row, index == 0, backbone)
            per_corpus = ", ".join(
                f"{corpus} {_pct(run['rows'][corpus][fit]['mean'])}"
                + ("" if index == 0 else f" ({100 * run['rows'][corpus][fit]['difference_to_first']['mean']:+.1f})")
                for corpus in (*run["corpora"], "mean of corpora")) if len(run["corpora"]) > 1 else "(one corpus)"
            lines.append(f"{line} {per_corpus} |")
    return "\n".join(lines)


def _per_config_table(name: str, columns: list[str], cells: Callable[[dict], list[str]]) -> str:
    """A table of ``results/<name>.json``'s runs, one per probe config: corpus (classes), backbone and input, then
    ``columns`` filled by ``cells(run)``."""
    data = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    lines = [f"<!-- from benchmarks/results/{name}.json -->",
             f"| corpus (classes) | backbone, input | {' | '.join(columns)} |", "|---" * (len(columns) + 2) + "|"]
    for run in data["results"]["runs"]:
        corpus, model = run["config"].split(":")[:2]
        lines.append(f"| {corpus.split('/')[0]} ({len(run['labels'])}) | {model}, {_probe_input(run['config'])} | "
                     f"{' | '.join(cells(run))} |")
    return "\n".join(lines)


def head_headroom_table(name: str = "head_headroom") -> str:
    """The probe against the best standard heads chosen with the test labels (``benchmarks/head_headroom.py``)."""
    def cells(run: dict) -> list[str]:
        best = run["best_chosen_with_test_labels"]
        return [_pct(run["probe_pooled_ua"]), _pct(run["reference_pooled_ua"]),
                _pct(run["inner_cv_offered_every_candidate_pooled_ua"]),
                _pct(run["best_of_the_probe_mixes_chosen_with_test_labels"]["pooled_ua"]),
                f"{_pct(best['pooled_ua'])} ({best['head']}, {best['ridge_alpha']:g})"]

    return _per_config_table(name, [
        "probe (its inner CV's choice)", "reference (not a checkpoint)", "inner CV choosing from every candidate head",
        "best of the probe's 3 mixes, chosen with the test labels",
        "best candidate head, chosen with the test labels (head, ridge strength)"], cells)


def probe_vs_reference_table(name: str = "probe_vs_reference") -> str:
    """The probe minus the reference with a paired speaker-bootstrap interval (``benchmarks/probe_vs_reference.py``)."""
    def cells(run: dict) -> list[str]:
        return [f"{_pct(run['probe_pooled_ua'])} [{'-'.join(map(_pct, run['probe_interval_95']))}]",
                f"{_pct(run['reference_pooled_ua'])} [{'-'.join(map(_pct, run['reference_interval_95']))}]",
                f"{100 * run['difference']:+.1f} [{signed_percent_range(run['difference_interval_95'])}]",
                f"{100 * run['share_of_resamples_probe_at_least_reference']:.0f}%",
                f"{run['clips_only_probe_right']} / {run['clips_only_reference_right']}",
                f"{_spread(run['jitter']['probe_pooled_ua'])} / {_spread(run['jitter']['reference_pooled_ua'])}",
                _assignments_cell(run.get("assignments"))]

    return _per_config_table(name, [
        "probe [95% CI]", "reference [95% CI]", "probe minus reference [paired 95% CI]",
        "resamples with the probe at least as high", "clips only the probe / only the reference gets right",
        "refitted on states changed at float32 rounding level (3 draws): probe / reference",
        "mean over 5 fold assignments (the shared folds and 4 more): probe / reference, mean difference (range), "
        "assignments the probe is better / worse"], cells)


def _assignments_cell(assignments: dict | None) -> str:
    if not assignments:
        return "not run"
    low, high = assignments["difference_range"]
    return (f"{_pct(assignments['probe_mean'])} / {_pct(assignments['reference_mean'])}, "
            f"{100 * assignments['difference_mean']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f}), "
            f"{assignments['probe_better']} / {assignments['probe_worse']}")


def _spread(values: list[float]) -> str:
    """'83.5' when every value rounds alike, else 'lowest-highest'."""
    low, high = _pct(min(values)), _pct(max(values))
    return low if low == high else f"{low}-{high}"


#: The files of the README's "Earlier runs" table: the gradient-trained probe, fine-tuning and the baselines (the
#: reference has its rows in the accuracy table, beside the probe it is compared with).
EARLIER_RUNS = ("probe_accuracy", "finetune_accuracy_ravdess8_gpu", "finetune_accuracy_ravdess8_gpu_lr5e-5",
                "finetune_accuracy_ravdess4_gpu", "baseline_accuracy")


@dataclass(frozen=True)
class ReadmeTable:
    """A README table rendered from one result file: between the markers named ``marker``, which say the file."""

    marker: str
    result: str  # benchmarks/results/<result>.json
    render: Callable[[], str]

    @property
    def begin(self) -> str:
        return (f"<!-- {self.marker}:begin (benchmarks/tables.py --readme fills this from "
                f"benchmarks/results/{self.result}.json) -->")

    @property
    def end(self) -> str:
        return f"<!-- {self.marker}:end -->"

    def fill(self, readme=README) -> str:
        """Write the table between its markers in the file ``readme`` (which must hold them); returns the table."""
        text = readme.read_text()
        if self.begin not in text or self.end not in text:
            raise SystemExit(f"{readme}: markers {self.begin!r} ... {self.end!r} not found.")
        table = self.render()
        head, rest = text.split(self.begin, 1)
        _, tail = rest.split(self.end, 1)
        readme.write_text(f"{head}{self.begin}\n{table}\n{self.end}{tail}")
        return table


#: Every table ``--readme`` fills, by marker name (in README order where that matters to a reader of the code).
README_TABLES = {table.marker: table for table in (
    ReadmeTable("released-models", "release_models", released_models_table),
    ReadmeTable("accuracy", "accuracy", accuracy_tables),
    ReadmeTable("earlier-runs", "probe_accuracy", lambda: accuracy_table(*EARLIER_RUNS)),
    ReadmeTable("input-length", "input_length", input_length_table),
    ReadmeTable("speed-copies", "speed_copies", speed_copies_table),
    ReadmeTable("audio-variants", "probe_audio_variants", audio_variants_table),
    ReadmeTable("noise-copies", "noise_copies", lambda: audio_variants_table(
        "noise_copies", first="the recipe's own copies (first row)")),
    ReadmeTable("layer-mixes", "layer_mixes", lambda: audio_variants_table(
        "layer_mixes", first="the default mixes (first row)", what="layer mixes the inner CV chooses from")),
    ReadmeTable("corpus-balance", "corpus_balance", corpus_balance_table),
    ReadmeTable("gradient-corpus-balance", "gradient_corpus_balance",
                lambda: corpus_balance_table("gradient_corpus_balance")),
    ReadmeTable("test-time-copies", "test_time_copies",
                lambda: corpus_balance_table("test_time_copies", variant="scored")),
    ReadmeTable("probe-vs-reference", "probe_vs_reference", probe_vs_reference_table),
    ReadmeTable("head-headroom", "head_headroom", head_headroom_table),
)}


if __name__ == "__main__":
    if "--readme" in sys.argv[1:]:
        for table in README_TABLES.values():
            if (RESULTS_DIR / f"{table.result}.json").is_file():
                print(table.fill())
        sys.exit(0)
    print(accuracy_table(*EARLIER_RUNS))
    print()
    print(released_models_table())
