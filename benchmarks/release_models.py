"""Train the emotion models ser_hf ships, from ../shared/data, and check the committed ones against a retrain.

For every released model (``ser_hf.models.released.RELEASES``: backbone preset, corpora, emotions, input
length) this script:

1. loads its training data (one corpus, or several combined: ``ser_hf.corpora.combined``) and
   fingerprints it (SHA-256 over every clip's relative path, file hash, label and speaker);
2. scores the recipe by speaker-independent cross-validation: the corpora's own folds (URDU 5
   speaker-grouped folds, RAVDESS 6 folds of 4 actors; for several corpora, fold i of each corpus
   together), pooled out-of-fold UA/WA/F1 with speaker-bootstrap intervals, and per corpus;
3. fits the head on every clip through the public training interface (``parse_run`` + ``make_method(...)
   .fit(dataset)``: whatever the probe's default fit is when it runs, with no validation part) and takes
   ``method.head.folded_state()``.

With ``--write`` it replaces the committed heads, records and model cards (``ser_hf/models/released_heads/<name>/``)
and the result file ``benchmarks/results/release_models.json``. ``--cards`` only renders the model cards again
from the committed records (``README.md`` + ``ser_hf_card.json``, their SHA-256s into the record), without
training or data: after a change to the card template or to the code that fills it (a test fails until then). The records compare each model with single-corpus probes
of the same recipe and with Whisper's 30 s padding, read from ``benchmarks/results/release_references.json``
(``--references`` measures them: :func:`reference_configs`) and the speed benchmarks' result files.
Without ``--write``, it retrains into a temporary folder and compares with the committed files: data
fingerprint, labels, CV scores (within ``--tolerance``), and the top labels the committed and retrained heads
give every training clip; it prints which differ and exits 1 if any does (result:
``benchmarks/results/release_models_check.json``).

    .venv/bin/python benchmarks/release_models.py --references                     # the probes they are compared with
    .venv/bin/python benchmarks/release_models.py --write                          # all models
    .venv/bin/python benchmarks/release_models.py --cards                          # cards only, from the records
    .venv/bin/python benchmarks/release_models.py --models emotion-whisper-base    # check one against its files
    .venv/bin/python benchmarks/release_models.py --models emotion-whisper-base --positions emotion-whisper-base=0
        # score another input length (0: Whisper's 30 s padding) without writing anything

A model's input length is ``max_source_positions`` in its ``ReleaseSpec``: to ship another one, change it
there and run ``--write`` (the tests check that a committed record matches its spec). The models with RAVDESS
ship 6 s input (300): Whisper's 30 s padding scores higher on URDU but lower on RAVDESS, is several times slower per
clip, and streaming and ``ser-hf serve`` (which use these models by default) would fall behind real time with it on
2 CPU cores when another job holds one. The URDU-only model ships 10 s (500), the length ``input_length.py``
measured best for its corpus and backbone. :func:`input_length_evidence` writes the figures into every record.

Features are cached (``~/.cache/ser_hf/embeddings``): the first run computes them (RAVDESS + URDU with
whisper-base at 6 s input: several minutes on 2 cores), later runs take seconds per fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from common import RESULTS_DIR, SHARED_DATA, cv_scores, environment, report_scores, scratch_dir, write_result
from release_evidence import (
    REFERENCES,
    _limitations,
    _ua,
    input_length_evidence,
    reference_configs,
    single_corpus_comparison,
)

from ser_hf.cards import non_default_hyperparameters, training_log_of
from ser_hf.cards.release import ship_release_card
from ser_hf.corpora import load_corpus
from ser_hf.corpora.combined import combined_folds, load_combined
from ser_hf.evaluation import EvaluationReport, paired_bootstrap_scores, percentile_interval
from ser_hf.evaluation.folds import FoldResult, cross_validate_folds
from ser_hf.models.released import (
    RELEASES,
    ReleaseSpec,
    data_fingerprint,
    head_logits,
    load_head,
    read_record,
    write_release,
)
from ser_hf.splits import Fold, corpus_folds
from ser_hf.training.experiment import make_method
from ser_hf.training.recipes import own_keys, parse_run
from ser_hf.training.speaker_adaptation import (
    ADAPTATION_RECORD,
    ADAPTATION_WEIGHTS,
    collect_enrollment,
    enrollment_predictions,
    save_adaptation,
    summarise_enrollment,
)

RESULT_NAME = "release_models"
#: Enrollment settings scored in each released model's CV (random clips per test speaker, all, neutral only).
ENROLLMENT = (3, 10, "all", "neutral")
#: Largest change of a CV score (fraction) still counted as run-to-run noise when checking a retrain.
DEFAULT_TOLERANCE = 0.02


# ----------------------------------------------------------------------------------------------- data


def release_dataset(spec: ReleaseSpec, data_root: Path):
    """The training clips of a released model and the folder of each corpus."""
    roots = {corpus: data_root / corpus for corpus in spec.corpora}
    if len(spec.corpora) == 1:
        corpus = spec.corpora[0]
        return load_corpus(corpus, roots[corpus], emotions=spec.emotions), roots
    return load_combined(roots, emotions=spec.emotions), roots


def release_folds(spec: ReleaseSpec, dataset):
    """The speaker-independent folds the accuracy benchmarks use (per corpus for a combined model)."""
    return corpus_folds(dataset) if len(spec.corpora) == 1 else combined_folds(dataset)


def release_run(spec: ReleaseSpec, data_root: Path, output_dir: str, cache_dir: str | None = None):
    """The probe run of a released model: its backbone, emotions, input length and training copies, default head
    fit, and the speaker-adaptive head beside it (which leaves the standard head as it is)."""
    copies = {key: list(values) for key, values in (("probe_speed_copies", spec.speed_copies),
                                                    ("probe_noise_copies", spec.noise_copies)) if values}
    return parse_run(None, corpus="+".join(spec.corpora), data_dir=str(data_root), emotions=spec.emotions,
                     model_name_or_path=spec.backbone, mode="probe", max_source_positions=spec.max_source_positions,
                     probe_speaker_adaptation=True, embedding_cache_dir=cache_dir, output_dir=output_dir, **copies)


# ----------------------------------------------------------------------------------------------- training


def cross_validate_release(spec: ReleaseSpec, run, dataset, folds) -> dict[str, Any]:
    """Pooled and per-corpus out-of-fold scores of the recipe; each fold fitted like the shipped head."""
    labels = dataset.features["label"].names
    neutral = labels.index("neutral") if "neutral" in labels else None
    enrollment: dict = {}
    # Per fold with training copies: (test rows, probabilities of the clip alone, with its test-time copies).
    with_copies: list[tuple[list[int], np.ndarray, np.ndarray]] = []

    def fit_fold(fold: Fold) -> FoldResult:
        train, test = dataset.select(fold.train), dataset.select(fold.test)
        method = make_method(run, labels, progress=False).fit(train)
        probabilities = method.predict_proba(test)
        references = np.asarray(test["label"])
        # The test clips' pooled states, then their copies' (what `--test-time-copies` scores), read once.
        versions = method.versions(test) if method.has_training_copies else [method.features(test["audio"])]
        if method.has_training_copies:
            with_copies.append((fold.test, probabilities, method.predict_proba_with_copies(test, versions)))
        collect_enrollment(enrollment, enrollment_predictions(
            method.adaptive, versions[0], references, test["speaker"], settings=ENROLLMENT,
            neutral_label=neutral, seed=run.data.fold_seed), references, test["speaker"])
        report = EvaluationReport.from_predictions(
            references, probabilities=probabilities, label_names=labels, groups=test["speaker"],
            genders=[genders[i] for i in fold.test], model=spec.name, corpus=run.data.corpus, split=fold.name)
        print(f"  {spec.name} {fold.name}: UA {report.unweighted_accuracy:.3f}", flush=True)
        return FoldResult(report, probabilities)

    genders = dataset["gender"] if "gender" in dataset.column_names else [None] * len(dataset)
    result = cross_validate_folds(folds, fit_fold, references=np.asarray(dataset["label"]), speakers=dataset["speaker"],
                                  label_names=labels, model=spec.name, corpus=run.data.corpus, genders=genders)
    aggregate, pooled, rows = result.aggregate, result.pooled, result.rows
    corpora = np.asarray(dataset["corpus"], dtype=object)[rows]
    speakers = np.asarray(dataset["speaker"], dtype=object)[rows]
    pooled_genders = [genders[i] for i in rows]
    per_corpus = {}
    for corpus in spec.corpora:
        mine = np.flatnonzero(corpora == corpus)
        per_corpus[corpus] = report_scores(EvaluationReport.from_predictions(
            np.asarray(dataset["label"])[rows][mine], probabilities=result.probabilities[mine], label_names=labels,
            groups=speakers[mine].tolist(), genders=[pooled_genders[i] for i in mine], model=spec.name,
            corpus=corpus, split="pooled out-of-fold"))
    scores = cv_scores(SimpleNamespace(aggregate=aggregate, pooled=pooled))
    adaptive = [{k: v for k, v in row.items() if k != "confusion_matrix"}
                for row in summarise_enrollment(enrollment, labels, model=spec.name, corpus=run.data.corpus)]
    copies = {"test_time_copies": _test_time_copies(with_copies, dataset, labels, spec, run.data.corpus)} \
        if with_copies else {}
    return {**scores, "pooled_report": pooled.to_dict(), "per_corpus": per_corpus, "folds": len(folds),
            "fold_names": [fold.name for fold in folds], "speaker_adaptive": adaptive, **copies}


def _test_time_copies(with_copies, dataset, labels, spec, corpus) -> dict[str, Any]:
    """Pooled scores with test-time copies (``ser-hf predict --test-time-copies``) and the paired interval of their
    gain over the clip alone (each resample draws the same speakers for both)."""
    rows, alone, copied = (np.concatenate(parts) for parts in zip(*with_copies))
    references = np.asarray(dataset["label"])[rows]
    speakers = np.asarray(dataset["speaker"], dtype=object)[rows].tolist()
    samples = paired_bootstrap_scores(references, {"alone": alone.argmax(axis=1), "copies": copied.argmax(axis=1)},
                                      len(labels), groups=speakers)
    report = EvaluationReport.from_predictions(references, probabilities=copied, label_names=labels, groups=speakers,
                                               model=spec.name, corpus=corpus,
                                               split="pooled out-of-fold, each clip scored with its training copies")
    return {**report_scores(report), "gain_interval": percentile_interval(samples["copies"] - samples["alone"])}


def fit_release(run, dataset):
    """The head fitted on every clip (no validation part), and the method that holds it."""
    method = make_method(run, dataset.features["label"].names, progress=False).fit(dataset)
    return method, method.head.folded_state()


def _protocol(spec: ReleaseSpec) -> str:
    if len(spec.corpora) == 1:
        return f"{spec.corpora[0]}'s own speaker-independent folds (ser_hf.splits.corpus_folds), each fitted like the shipped head"
    return (f"fold i of each corpus together ({', '.join(spec.corpora)}; ser_hf.corpora.combined.combined_folds: "
            f"each corpus's own speaker-independent folds), each fitted like the shipped head")


def _recipe(run) -> dict[str, Any]:
    """The run's data, model and probe settings, and ser_hf's own training keys (no paths)."""
    training = run.training.to_dict()
    own = next(keys for group, keys in own_keys().items() if group.startswith("training"))
    data = {**dataclasses.asdict(run.data), "data_dir": None}
    probe = {key: value for key, value in dataclasses.asdict(run.probe).items() if key != "embedding_cache_dir"}
    return {"data": data, "model": dataclasses.asdict(run.model),
            "training": {key: training.get(key) for key in own}, "probe": probe}


def _method_facts(method) -> dict[str, Any]:
    settings = getattr(method, "settings", None)
    log, best = training_log_of(method)
    return {"class": f"{type(method).__module__}.{type(method).__qualname__}",
            "head": type(getattr(method, "head", None)).__qualname__,
            "settings": dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else None,
            "training_log": log[-20:], "best_epoch": best}


def train_release(spec: ReleaseSpec, data_root: Path, out_dir: Path | None, cache_dir: str | None = None) -> dict:
    """CV-score and train one released model; write its head and record to ``out_dir`` (spec folder if None).

    Returns:
        The result row: settings, CV scores (pooled, per corpus), data fingerprint, head SHA-256, seconds.
    """
    start = time.perf_counter()
    dataset, roots = release_dataset(spec, data_root)
    fingerprint = data_fingerprint(dataset, roots)
    run = release_run(spec, data_root, scratch_dir("ser_hf_release_"), cache_dir)
    cv = cross_validate_release(spec, run, dataset, release_folds(spec, dataset))
    method, head = fit_release(run, dataset)
    input_length, comparison = input_length_evidence(spec), single_corpus_comparison(spec, cv)
    env = environment()
    scores = {"source": f"benchmarks/results/{RESULT_NAME}.json", "date": env["date"], "protocol": _protocol(spec), **cv}
    fields = {
        "labels": dataset.features["label"].names,
        "preprocessing": {"sampling_rate": 16000, **{k: getattr(run.data, k) for k in ("trim_db", "denoise", "normalize",
                                                                                         "max_duration")}},
        "training": {"recipe": _recipe(run), "non_default_settings": non_default_hyperparameters(run),
                     "method": _method_facts(method), "fitted_on": "every clip of the training data, no validation part",
                     "command": env["command"], "versions": env["versions"]},
        "data": {"corpora": list(spec.corpora), **fingerprint},
        "scores": {**scores, "single_corpus_probes": comparison},
        "input_length": input_length,
        "speaker_adaptation": _ship_adaptation(method.adaptive, out_dir or spec.folder),
        "limitations": _limitations(spec, input_length, comparison, cv, method.adaptive),
    }
    folder = write_release(spec, head, fields, directory=out_dir)
    ship_release_card(spec, folder)
    record = json.loads((folder / "record.json").read_text())
    return {"name": spec.name, "backbone": spec.backbone, "corpora": list(spec.corpora), "emotions": spec.emotions,
            "max_source_positions": spec.max_source_positions, "speed_copies": list(spec.speed_copies),
            "noise_copies": list(spec.noise_copies),
            "seconds": round(time.perf_counter() - start, 1),
            "clips": fingerprint["clips"], "data_sha256": fingerprint["sha256"], "head_sha256": record["head"]["sha256"],
            "folder": _display(folder), **cv, "single_corpus_probes": comparison, "input_length": input_length,
            "_method": method, "_dataset": dataset, "_folder": folder}


def _ship_adaptation(adaptive, folder: Path) -> dict[str, Any]:
    """Write the speaker-adaptive probe beside the head: the record entry that names its files."""
    folder.mkdir(parents=True, exist_ok=True)
    save_adaptation(adaptive, folder)
    return {"files": [ADAPTATION_WEIGHTS, ADAPTATION_RECORD], "enabled": adaptive.enabled,
            "estimator": adaptive.estimator, "inner_check": adaptive.record.get("inner_check"),
            "cv_rows": f"scores.speaker_adaptive (benchmarks/results/{RESULT_NAME}.json)"}


def _display(path: Path) -> str:
    """A path relative to the repository when inside it (result files must not name this machine's folders)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------- checking


def _pooled_ua(scores: dict) -> float:
    return scores["pooled"]["unweighted_accuracy"]


def compare_release(spec: ReleaseSpec, row: dict, tolerance: float) -> list[str]:
    """How a retrain (``row``) differs from the committed head and record; empty when within noise."""
    committed = read_record(spec)
    folder = Path(row["_folder"])
    new = json.loads((folder / "record.json").read_text())
    problems = []
    if committed["data"]["sha256"] != new["data"]["sha256"]:
        problems.append(f"training data differ (fingerprint {committed['data']['sha256'][:12]} committed, "
                        f"{new['data']['sha256'][:12]} now; {committed['data']['clips']} vs {new['data']['clips']} clips)")
    if committed["labels"] != new["labels"]:
        problems.append(f"labels differ: {committed['labels']} committed, {new['labels']} now")
    same_task = not problems
    old_scores, new_scores = committed["scores"], new["scores"]
    pairs = [("pooled UA", _pooled_ua(old_scores), _pooled_ua(new_scores))]
    pairs += [(f"{corpus} UA", old_scores["per_corpus"][corpus]["unweighted_accuracy"], values["unweighted_accuracy"])
              for corpus, values in new_scores["per_corpus"].items() if corpus in old_scores.get("per_corpus", {})]
    problems += [f"{what}: {100 * old:.1f} committed, {100 * now:.1f} now (tolerance {100 * tolerance:.1f})"
                 for what, old, now in pairs if abs(old - now) > tolerance]
    method, dataset = row["_method"], row["_dataset"]
    if same_task and hasattr(method, "features"):
        pooled = method.features(dataset["audio"])
        old_top = head_logits(load_head(spec.head_path), pooled).argmax(axis=1)
        new_top = head_logits(load_head(folder / "head.safetensors"), pooled).argmax(axis=1)
        agreement = float((old_top == new_top).mean())
        row["top_label_agreement"] = agreement
        row["head_identical"] = row["head_sha256"] == committed["head"]["sha256"]
        if agreement < 1 - tolerance:
            problems.append(f"top labels on the training clips agree on {100 * agreement:.1f}% only")
    return problems


# ----------------------------------------------------------------------------------------------- main


def _positions(items: list[str]) -> dict[str, int | None]:
    pairs = [item.split("=", 1) for item in items]
    unknown = sorted({name for name, _ in pairs} - set(RELEASES))
    if unknown:
        raise SystemExit(f"--positions: unknown model(s) {unknown}; expected names from {sorted(RELEASES)}.")
    return {name: int(value) or None for name, value in pairs}


def write_references(cache_dir: str | None = None) -> Path:
    """Cross-validate every :func:`reference_configs` probe (probe_accuracy.py's protocol) into REFERENCES."""
    from common import provenance
    from probe_accuracy import run_config

    rows = {}
    for config in reference_configs():
        rows[config] = {**run_config(config, cache_dir, scratch_dir("ser_hf_release_ref_")), **provenance()}
        print(f"{config}: pooled UA {100 * _ua(rows[config]):.1f}", flush=True)
    return write_result(REFERENCES, {"purpose": "single-corpus linear probes the released models' records compare with",
                                     "runs": list(rows.values())})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(RELEASES), choices=sorted(RELEASES), metavar="NAME")
    parser.add_argument("--write", action="store_true", help="replace the committed heads, records and result file")
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA, help="folder holding urdu/ and ravdess/")
    parser.add_argument("--positions", nargs="*", default=[], metavar="NAME=N",
                        help="override a model's max_source_positions (0: 30 s padding), e.g. emotion-whisper-base=300")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest score change (fraction) counted as noise when checking (default 0.02)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/ser_hf/embeddings)")
    parser.add_argument("--references", action="store_true",
                        help=f"measure the single-corpus probes the records compare with ({REFERENCES}.json) and exit")
    parser.add_argument("--cards", action="store_true",
                        help="render the model cards of the committed records again (no training, no data) and exit")
    args = parser.parse_args(argv)
    if args.references:
        write_references(args.cache_dir)
        return 0
    if args.cards:
        for model in args.models:
            print(f"{model}: {_display(ship_release_card(model))}")
        return 0
    positions = _positions(args.positions)
    name = RESULT_NAME if args.write else f"{RESULT_NAME}_check"
    previous = RESULTS_DIR / f"{name}.json"
    rows = {r["name"]: r for r in json.loads(previous.read_text())["results"]["runs"]} if previous.exists() else {}
    differing = {}
    for model in args.models:
        spec = RELEASES[model]
        if model in positions:
            spec = dataclasses.replace(spec, max_source_positions=positions[model])
        out = None if args.write else Path(tempfile.mkdtemp(prefix=f"ser_hf_release_{model}_"))
        row = train_release(spec, args.data_root, out, args.cache_dir)
        if not args.write and not spec.head_path.is_file():
            print(f"{model}: no committed head to compare with (scores only; --write commits it)")
        elif not args.write:
            differing[model] = row["problems"] = compare_release(spec, row, args.tolerance)
        rows[model] = {key: value for key, value in row.items() if not key.startswith("_")}
        print(f"{model}: pooled UA {100 * _pooled_ua(row):.1f} ({row['seconds']:.0f} s)", flush=True)
        write_result(name, {"tolerance": args.tolerance, "runs": list(rows.values())})
    for model, problems in differing.items():
        row = rows.get(model, {})
        same = (f" (head bit-identical, SHA-256 {row['head_sha256'][:12]})" if row.get("head_identical")
                else f" (top labels on the training clips agree on {100 * row['top_label_agreement']:.1f}%)"
                if "top_label_agreement" in row else "")
        print(f"{model}: " + (f"matches the committed head within noise{same}" if not problems
                              else "DIFFERS: " + "; ".join(problems)))
    return 1 if any(differing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
