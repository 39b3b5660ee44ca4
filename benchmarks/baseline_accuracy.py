"""Classic-feature baseline accuracy on the shared corpora, with the transformer path's protocols.

For each configuration: :func:`ser_hf.baseline.crossval.cross_validate_baseline` (URDU: 5 speaker-grouped
folds; RAVDESS: 6 folds of 4 actors) with the default 532 classic features, hyperparameters tuned by
3 speaker-grouped inner folds of each fold's training actors (scoring UA), reporting UA/WA/macro-F1 as
mean ± std over folds and the pooled out-of-fold UA/WA/macro-F1 with speaker-level bootstrap intervals,
plus wall time (feature extraction timed apart: cached features are reused across runs). The output has
the same shape as ``probe_accuracy.json`` so the two can be read side by side.

``cnn`` and ``lstm`` rows are the neural baselines trained from scratch on frame sequences (64 log-mel
bands; 20 MFCCs + deltas) with their default :class:`~ser_hf.baseline.neural.NeuralConfig` (early stopping
on held-out training speakers instead of a grid search); their rows add the best epoch and validation UA
of each fold and the load average before and after, since other jobs may share the CPU.

    .venv/bin/python benchmarks/baseline_accuracy.py
    .venv/bin/python benchmarks/baseline_accuracy.py --configs urdu:svm ravdess/4class:logreg --jobs 2
    .venv/bin/python benchmarks/baseline_accuracy.py --configs urdu:cnn urdu:lstm ravdess:cnn ravdess:lstm
    (a config is corpus[/emotions]:classifier; classifiers: svm, logreg, forest, mlp, cnn, lstm)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from common import RESULTS_DIR, SHARED_DATA, provenance, scratch_dir, write_result

from ser_hf.baseline.classifiers import is_neural
from ser_hf.baseline.crossval import cross_validate_baseline
from ser_hf.baseline.extraction import extract_dataset_features, extract_dataset_sequences
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.sequences import sequence_config
from ser_hf.corpora import load_corpus

DEFAULT_CONFIGS = ("urdu:svm", "urdu:logreg", "ravdess:svm", "ravdess:logreg", "ravdess/4class:svm",
                   "ravdess/4class:logreg")
METRICS = ("unweighted_accuracy", "weighted_accuracy", "macro_f1")


def _features(classifier: str, dataset, cache_dir: str, workers: int) -> tuple:
    """(config, features, width, cache hits): the 532 classic features, or a neural baseline's sequences."""
    if is_neural(classifier):
        config = sequence_config(classifier)
        found = extract_dataset_sequences(dataset["audio"], config, cache_dir=cache_dir, num_workers=workers,
                                          progress=False)
        return config, found.sequences, len(found.names), found.cache_hits
    config = FeatureConfig()
    matrix = extract_dataset_features(dataset["audio"], config, cache_dir=cache_dir, num_workers=workers,
                                      progress=False)
    return config, matrix.features, int(matrix.features.shape[1]), matrix.cache_hits


def _neural_facts(result, load_before: tuple) -> dict:
    """What a neural row adds: its settings, each fold's best epoch and validation UA, the load average."""
    return {
        "neural": result.settings["baseline"]["neural"],
        "validation_unweighted_accuracy": {r.split: f.inner_score for r, f in zip(result.folds, result.fits)},
        "num_parameters": result.fits[0].model.num_parameters(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **provenance(),
    }


def run_config(spec: str, cache_dir: str, output_root: str, jobs: int, workers: int) -> dict:
    corpus_part, classifier = spec.split(":")
    corpus, _, emotions = corpus_part.partition("/")
    dataset = load_corpus(corpus, SHARED_DATA / corpus, emotions=emotions or None)
    load_before = os.getloadavg()
    start = time.perf_counter()
    config, features, width, hits = _features(classifier, dataset, cache_dir, workers)
    feature_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = cross_validate_baseline(
        dataset, classifier, features=features, feature_config=config, n_jobs=jobs,
        out_dir=Path(output_root) / spec.replace("/", "-").replace(":", "_"),
    )
    seconds = time.perf_counter() - start
    pooled = result.pooled
    return {
        "config": spec,
        "classifier": classifier,
        "clips": len(dataset),
        "speakers": len(set(dataset["speaker"])),
        "feature_dim": width,
        "feature_config": config.fingerprint(),
        "features": {k: v for k, v in dataclasses.asdict(config).items() if k in ("groups", "n_mels", "n_mfcc",
                     "mfcc_delta_order", "frame_ms", "hop_ms")} if is_neural(classifier) else "532 classic",
        "feature_seconds": round(feature_seconds, 1),
        "feature_cache_hits": hits,
        "seconds": round(seconds, 1),
        "folds": len(result.folds),
        "inner_folds": result.settings["baseline"]["inner_folds"],
        "param_grid": result.settings["baseline"]["param_grid"],
        "best_params": {r.split: f.best_params for r, f in zip(result.folds, result.fits)},
        "mean_std": {k: result.aggregate["metrics"][k] for k in METRICS},
        "pooled": {
            **{k: getattr(pooled, k) for k in METRICS},
            "confidence_intervals": pooled.confidence_intervals,
            "confusion_matrix": pooled.confusion_matrix,
            "labels": pooled.labels,
        },
        **(_neural_facts(result, load_before) if is_neural(classifier) else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "ser_hf" / "features"),
                        help="feature cache (reused across runs; feature_cache_hits records how much)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel grid-search fits")
    parser.add_argument("--workers", type=int, default=2, help="feature extraction processes")
    parser.add_argument("--name", default="baseline_accuracy", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    previous = RESULTS_DIR / f"{args.name}.json"
    rows = {r["config"]: r for r in json.loads(previous.read_text())["results"]["runs"]} if previous.exists() else {}
    output_root = scratch_dir("ser_hf_bench_baseline_")
    for spec in args.configs:
        rows[spec] = run_config(spec, args.cache_dir, output_root, args.jobs, args.workers)
        row = rows[spec]
        ua = row["mean_std"]["unweighted_accuracy"]
        print(f"{spec}: UA {100 * ua['mean']:.1f} ± {100 * ua['std']:.1f} over folds, pooled "
              f"{100 * row['pooled']['unweighted_accuracy']:.1f} {row['pooled']['confidence_intervals']['unweighted_accuracy']}"
              f" ({row['seconds']} s + {row['feature_seconds']} s features)", flush=True)
        write_result(args.name, {"runs": list(rows.values())})


if __name__ == "__main__":
    main()
