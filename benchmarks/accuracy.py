"""One accuracy benchmark: every method on the shared corpora's speaker-grouped folds, in one result file.

For each configuration (``corpus[/emotions]:model:max_source_positions[:speed factors[:noise SNRs]]``, 0 =
Whisper's 30 s padding; the speed factors, e.g. ``0.9,1.1``, set ``probe_speed_copies``, the SNRs in dB, e.g.
``20``, ``probe_noise_copies``) it runs, on the same folds as
``ser-hf cv`` and ``reference_probe.py`` (URDU 5 speaker-grouped folds, RAVDESS 6 folds of 4 actors):

- ``probe`` - the default probe recipe exactly as ``ser-hf cv`` runs it (``cross_validate``): the linear
  fit, a standard ``pipeline()`` checkpoint per fold;
- ``probe-gradient`` - the previous gradient-trained head (``probe_fit: gradient``), with ``--gradient``;
- ``speaker-adaptive (enrollment N)`` - the same probe with ``probe_speaker_adaptation: true``: one row
  per enrollment setting, with the global head's UA on the very same clips beside it (these rows are
  never the standard headline);
- ``probe + speaker adaptation, score spread offered`` - the same with ``probe_speaker_spread: true`` too (the
  inner check may adapt the spread of a speaker's class scores as well), with ``--speaker-spread`` (only this row);
- ``probe, bfloat16 frozen forward`` - the probe with the backbone run in bfloat16, with ``--bfloat16``;
- ``partial fine-tuning, top K layer(s), seed S`` - ``recipes/ravdess/whisper-base-partial.yaml``'s training
  (``mode: partial``, the head starting from the probe's fit, early stopping on the fold's validation speakers)
  with the config's corpus, backbone, input and copies, for seeds 0, 1 and 2 (``--seeds`` for fewer), with
  ``--partial K``;
- ``reference`` - logistic regression on all layers' concatenated states (not a checkpoint), copied with
  its provenance from ``results/reference_probe.json`` (when that file has the configuration) for every
  configuration with a probe row, every time the file is written;
- ``fine-tune, ...`` and ``baseline: ...`` - rows other scripts measured on the same folds, copied with their
  provenance (command, date, machine) from :data:`EARLIER_RESULTS` every time the file is written: full fine-tuning
  where a GPU ran it (``finetune_accuracy.py``) and the classic and neural baselines (``baseline_accuracy.py``).

A configuration may join corpora with ``+`` (``urdu+ravdess/4class:whisper-base:300``, emotions default
``4class``): one model on all of them (``corpus: urdu,ravdess``). Its rows are ``probe`` (folds within each
corpus; pooled UA and, under ``per_corpus``, each corpus's in-corpus pooled UA with its interval) and one
``leave one corpus out (test C)`` row per corpus (trained on the other corpora, tested on all of C).

Each row has pooled UA with its 95% speaker-bootstrap interval, mean ± std over folds, WA, macro-F1,
the confusion matrix, seconds and the command/date. The linear fit is deterministic (closed form, inner
folds seeded with the recipes' ``seed: 0``, so ``ser-hf cv RECIPE`` reproduces a probe row), so one seed is
reported; the gradient head is run with three seeds.

    .venv/bin/python benchmarks/accuracy.py --configs urdu:whisper-tiny.en:0 ravdess:whisper-base:300
    .venv/bin/python benchmarks/accuracy.py --configs urdu+ravdess/4class:whisper-base:300
    .venv/bin/python benchmarks/accuracy.py --configs urdu+ravdess/4class:whisper-tiny.en:300:0.9,1.1  # with copies
    .venv/bin/python benchmarks/accuracy.py  # no configuration: only copy the other scripts' rows in again
"""

from __future__ import annotations

import argparse
import json
import time

from common import (
    RECIPE_SEED,
    RESULTS_DIR,
    SHARED_DATA,
    cv_scores,
    provenance,
    report_scores,
    scratch_dir,
    write_result,
)
from probe_accuracy import copy_keys, probe_run

from ser_hf.training.experiment import cross_validate, leave_one_corpus_out
from ser_hf.training.recipes import parse_run, read_recipe

#: The partial fine-tuning recipe whose training settings ``--partial`` rows use (corpus, backbone, input replaced).
PARTIAL_RECIPE = RESULTS_DIR.parents[1] / "recipes" / "ravdess" / "whisper-base-partial.yaml"
#: Seeds of the stochastic rows (partial fine-tuning, the gradient head).
SEEDS = (0, 1, 2)
#: Result files of methods measured on the same folds by their own scripts, whose rows this file carries too.
EARLIER_RESULTS = ("finetune_accuracy_ravdess8_gpu", "finetune_accuracy_ravdess8_gpu_lr5e-5",
                   "finetune_accuracy_ravdess4_gpu", "baseline_accuracy")


def multi_corpus_run(spec: str, output_dir: str):
    """The probe run of a multi-corpus config ('a+b[/emotions]:model:max_source_positions[:speed factors[:noise
    SNRs]]')."""
    corpus_part, model, positions, *copies = spec.split(":")
    names, _, emotions = corpus_part.partition("/")
    corpora = names.split("+")
    return parse_run(None, corpus=",".join(corpora), data_dir=",".join(str(SHARED_DATA / c) for c in corpora),
                     emotions=emotions or None, model_name_or_path=model, mode="probe",
                     max_source_positions=int(positions) or None, output_dir=output_dir, seed=RECIPE_SEED,
                     **copy_keys(copies))


def _is_multi_corpus(spec: str) -> bool:
    return "+" in spec.split(":")[0]


def partial_run(spec: str, layers: int, seed: int, output_dir: str):
    """The partial fine-tuning run of a single-corpus config: :data:`PARTIAL_RECIPE`'s training, the config's data,
    backbone, input and copies, the top ``layers`` encoder layers trained."""
    corpus_part, model, positions, *copies = spec.split(":")
    corpus, _, emotions = corpus_part.partition("/")
    return parse_run(PARTIAL_RECIPE, corpus=corpus, data_dir=str(SHARED_DATA / corpus), emotions=emotions or None,
                     model_name_or_path=model, max_source_positions=int(positions) or None, train_top_layers=layers,
                     output_dir=output_dir, seed=seed, disable_tqdm=True, **copy_keys(copies))


def _cv_row(spec: str, method: str, run=None, **overrides) -> tuple[dict, object]:
    if run is None:
        output_dir = scratch_dir("ser_hf_accuracy_")
        run = multi_corpus_run(spec, output_dir) if _is_multi_corpus(spec) else \
            probe_run(spec, cache_dir=None, output_dir=output_dir)
    for key, value in overrides.items():  # probe_* and embedding_* keys live in the probe's own group
        setattr(run.probe if hasattr(run.probe, key) else run.training, key, value)
    start = time.perf_counter()
    result = cross_validate(run, progress=False)
    row = {"config": spec, "method": method, "seconds": round(time.perf_counter() - start, 1),
           "folds": len(result.folds), **cv_scores(result), **provenance()}
    return row, result


def reference_rows(configs) -> list[dict]:
    """The reference's row of each of ``configs`` that ``results/reference_probe.json`` has, found by the config's
    corpus, model and input (the reference has no training copies)."""
    path = RESULTS_DIR / "reference_probe.json"
    runs = {run["spec"]: run for run in json.loads(path.read_text())["results"]["runs"]} if path.exists() else {}
    rows = []
    for config in configs:
        run = runs.get(":".join(config.split(":")[:3]))
        if run is not None:
            rows.append({"config": config, "method": "reference", "source": "results/reference_probe.json",
                         **{k: run[k] for k in ("mean_std", "pooled", "seconds", "command", "date")}})
    return rows


def earlier_rows() -> list[dict]:
    """The rows of :data:`EARLIER_RESULTS` (those present), keyed like this file's: fine-tuning by its recipe's
    corpus, backbone and input, a baseline by ``corpus:classifier``."""
    rows = []
    for name in EARLIER_RESULTS:
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        results = data["results"]
        for run in results.get("runs", [results]):
            if "classifier" in run:  # baseline_accuracy.py
                config, method = run["config"], f"baseline: {run['classifier']}"
            else:  # finetune_accuracy.py: one run of a recipe
                settings = {**read_recipe(RESULTS_DIR.parents[1] / run["recipe"]), **run["overrides"]}
                emotions = f"/{settings['emotions']}" if settings.get("emotions") else ""
                config = (f"{settings['corpus']}{emotions}:{settings['model_name_or_path']}:"
                          f"{settings.get('max_source_positions') or 0}")
                method = (f"fine-tune, lr {float(settings['learning_rate']):g} "
                          f"({data['machine'].get('accelerator') or 'CPU'}{', bf16' if settings.get('bf16') else ''})")
            rows.append({"config": config, "method": method, "source": f"results/{name}.json",
                         **{key: run[key] for key in ("mean_std", "pooled", "seconds") if key in run},
                         "command": run.get("command", data["command"]), "date": run.get("date", data["date"]),
                         "machine": run.get("machine", data["machine"])})
    return rows


def with_copied_rows(rows: dict) -> dict:
    """``rows`` (keyed by configuration and method) with the rows other scripts measured copied in afresh: those of
    :data:`EARLIER_RESULTS`, and the reference of every configuration that has a probe row."""
    copied = earlier_rows() + reference_rows([config for config, method in rows if method == "probe"])
    return {**rows, **{(row["config"], row["method"]): row for row in copied}}


def multi_corpus_rows(spec: str) -> list[dict]:
    """The probe row (pooled and per-corpus in-corpus UA) and one leave-one-corpus-out row per corpus."""
    probe, result = _cv_row(spec, "probe")
    probe["per_corpus"] = {corpus: report_scores(report) for corpus, report in result.per_corpus.items()}
    rows = [probe]
    run = multi_corpus_run(spec, scratch_dir("ser_hf_accuracy_loco_"))
    start = time.perf_counter()
    reports = leave_one_corpus_out(run, progress=False)
    seconds = round(time.perf_counter() - start, 1)
    for corpus, report in reports.items():
        rows.append({"config": spec, "method": f"leave one corpus out (test {corpus})", "test_corpus": corpus,
                     "train_corpora": [c for c in reports if c != corpus], "seconds_all_corpora": seconds,
                     "pooled": report_scores(report), **provenance()})
    return rows


def partial_rows(spec: str, layers: int, seeds=SEEDS) -> list[dict]:
    """One row per seed of ``seeds``: partial fine-tuning of the top ``layers`` layers, every fold."""
    rows = []
    for seed in seeds:
        run = partial_run(spec, layers, seed, scratch_dir("ser_hf_accuracy_partial_"))
        row, _ = _cv_row(spec, f"partial fine-tuning, top {layers} layer{'s' * (layers > 1)}, seed {seed}", run)
        rows.append(row)
    return rows


def adaptive_row(spec: str, method: str, **overrides) -> dict:
    """The speaker-adaptive CV row of ``spec``: the probe row's scores and every enrollment setting's row."""
    adaptive, result = _cv_row(spec, method, probe_speaker_adaptation=True, **overrides)
    adaptive["speaker_adaptive"] = result.speaker_adaptive
    if result.speaker_adaptive_test_time_copies:
        adaptive["speaker_adaptive_test_time_copies"] = result.speaker_adaptive_test_time_copies
    return adaptive


def run_config(spec: str, gradient: bool, bfloat16: bool = False, probe_only: bool = False,
               partial: int | None = None, seeds=SEEDS, speaker_spread: bool = False) -> list[dict]:
    if _is_multi_corpus(spec):
        return multi_corpus_rows(spec)
    if partial:
        return partial_rows(spec, partial, seeds)
    if speaker_spread:
        return [adaptive_row(spec, "probe + speaker adaptation, score spread offered", probe_speaker_spread=True)]
    rows = []
    probe, _ = _cv_row(spec, "probe")
    rows.append(probe)
    if probe_only:
        return rows
    rows.append(adaptive_row(spec, "probe + speaker adaptation"))
    if gradient:
        for seed in SEEDS:
            row, _ = _cv_row(spec, f"probe-gradient seed {seed}", probe_fit="gradient", seed=seed)
            rows.append(row)
    if bfloat16:
        row, _ = _cv_row(spec, "probe, bfloat16 frozen forward", embedding_dtype="bfloat16")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=[],
                        help="corpus[/emotions]:model:max_source_positions[:speed factors[:noise SNRs]]; corpora joined "
                             "by + for one multi-corpus model")
    parser.add_argument("--gradient", action="store_true", help="also run the gradient-trained head (3 seeds)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also run the probe with its frozen forward in bfloat16 (embedding_dtype)")
    parser.add_argument("--probe-only", action="store_true",
                        help="run only the probe row of single-corpus configs (the file keeps their other rows)")
    parser.add_argument("--partial", type=int, default=None, metavar="K",
                        help="run only partial fine-tuning of the top K layers (3 seeds) of single-corpus configs")
    parser.add_argument("--speaker-spread", action="store_true",
                        help="run only the speaker-adaptive row with probe_speaker_spread of single-corpus configs")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                        help="seeds of the --partial rows (default: 0 1 2; fewer where a run takes hours on a CPU; "
                             "the file keeps rows of other seeds)")
    parser.add_argument("--name", default="accuracy", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    previous = RESULTS_DIR / f"{args.name}.json"
    rows = {(r["config"], r["method"]): r for r in json.loads(previous.read_text())["results"]["rows"]} \
        if previous.exists() else {}
    rows = with_copied_rows(rows)
    write_result(args.name, {"rows": list(rows.values())})
    for spec in args.configs:
        for row in run_config(spec, args.gradient, args.bfloat16, args.probe_only, args.partial,
                              args.seeds, args.speaker_spread):
            rows[(row["config"], row["method"])] = row
            print(f"{row['pooled']['unweighted_accuracy']:.4f}", spec, row["method"], flush=True)
            if "test_time_copies" in row:
                print(f"    with test-time copies: {row['test_time_copies']['unweighted_accuracy']:.4f}", flush=True)
            for corpus, scores in (row.get("per_corpus") or {}).items():
                print(f"    {corpus} (in-corpus): {scores['unweighted_accuracy']:.4f}", flush=True)
            for key, copies in (("speaker_adaptive", ""), ("speaker_adaptive_test_time_copies", " with copies")):
                for adaptive in row.get(key) or []:
                    print(f"    enrollment {adaptive['enrollment']}{copies}: {adaptive['unweighted_accuracy']:.4f} "
                          f"(global on same clips {adaptive['global_unweighted_accuracy_same_clips']:.4f})",
                          flush=True)
        rows = with_copied_rows(rows)
        write_result(args.name, {"rows": list(rows.values())})


if __name__ == "__main__":
    main()
