"""Frozen-probe accuracy on the shared corpora, speaker-independent, with the corpora's protocols.

For each configuration: ``ser_hf.training.experiment.cross_validate`` (URDU: 5 speaker-grouped
folds; RAVDESS: 6 folds of 4 actors), reporting UA/WA/macro-F1 as mean ± std over folds and the
pooled out-of-fold UA with its speaker-level bootstrap interval, plus wall time (feature caching
included when the cache starts empty: ``--fresh-cache``).

    .venv/bin/python benchmarks/probe_accuracy.py --configs urdu:whisper-base:150 ravdess:whisper-base:300
    (a config is corpus[/emotions]:model:max_source_positions, 0 = Whisper's 30 s padding)
"""

from __future__ import annotations

import argparse
import json
import time

from common import RECIPE_SEED, RESULTS_DIR, SHARED_DATA, cv_scores, provenance, scratch_dir, write_result

from ser_hf.training.experiment import cross_validate
from ser_hf.training.recipes import parse_run


def copy_keys(fields: list[str]) -> dict:
    """The recipe keys a config's optional training-copy fields set: speed factors, then noise SNRs in dB
    (``['0.9,1.1', '20']``); a missing or empty field sets none."""
    keys = ("probe_speed_copies", "probe_noise_copies")
    return {key: [float(value) for value in field.split(",")] for key, field in zip(keys, fields) if field}


def probe_run(spec: str, cache_dir: str | None, output_dir: str, **overrides):
    """The probe run a config names ('corpus[/emotions]:model:max_source_positions[:speed factors[:noise SNRs]]').

    The optional fourth field lists ``probe_speed_copies`` (e.g. ``0.9,1.1``), the fifth ``probe_noise_copies``
    (e.g. ``20``); ``overrides`` are further recipe keys (e.g. ``trim_db=30``).
    """
    corpus_part, model, positions, *copies = spec.split(":")
    corpus, _, emotions = corpus_part.partition("/")
    return parse_run(None, corpus=corpus, data_dir=str(SHARED_DATA / corpus), emotions=emotions or None,
                     model_name_or_path=model, mode="probe", max_source_positions=int(positions) or None,
                     embedding_cache_dir=cache_dir, output_dir=output_dir, seed=RECIPE_SEED, **copy_keys(copies), **overrides)


def run_config(spec: str, cache_dir: str | None, output_root: str) -> dict:
    run = probe_run(spec, cache_dir, f"{output_root}/{spec.replace('/', '-').replace(':', '_')}")
    start = time.perf_counter()
    result = cross_validate(run, progress=False)
    seconds = time.perf_counter() - start
    return {"config": spec, "seconds": round(seconds, 1), "folds": len(result.folds), **cv_scores(result)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--fresh-cache", action="store_true", help="time feature extraction from an empty cache")
    parser.add_argument("--name", default="probe_accuracy", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    cache = scratch_dir("ser_hf_bench_cache_") if args.fresh_cache else None
    previous = RESULTS_DIR / f"{args.name}.json"
    rows = {r["config"]: r for r in json.loads(previous.read_text())["results"]["runs"]} if previous.exists() else {}
    for spec in args.configs:
        rows[spec] = {**run_config(spec, cache, scratch_dir("ser_hf_bench_out_")), **provenance()}
        print(json.dumps(rows[spec]["pooled"]["unweighted_accuracy"]), spec, rows[spec]["seconds"], "s", flush=True)
        write_result(args.name, {"fresh_cache": args.fresh_cache, "runs": list(rows.values())})


if __name__ == "__main__":
    main()
