"""Whisper's input length for a frozen-encoder probe, compared over several speaker-to-fold assignments.

How many seconds Whisper's encoder sees (``max_source_positions``, 50 per second; clips are zero-padded to it)
changes its pooled states. Every length of a configuration is scored on the same clips by
``variant_comparison.compare_variants``: the probe's linear fit over the shared folds and 4 more speaker-to-fold
assignments, each length compared with the first one listed (the recipe's length), and the length the training
speakers' own inner CV would choose.

Usage::

    python benchmarks/input_length.py --configs urdu:whisper-tiny.en:0,500,1000 ravdess:whisper-base:300,500
"""

from __future__ import annotations

import time

import numpy as np
from common import run_configs, scratch_dir
from probe_accuracy import probe_run
from variant_comparison import Variant, compare_variants

from ser_hf.training.experiment import make_method
from ser_hf.training.run_data import load_run_dataset


def _seconds(positions: str) -> float:
    return 30.0 if int(positions) == 0 else int(positions) / 50


def run_config(spec: str) -> dict:
    corpus_part, model, lengths = spec.split(":")
    lengths = lengths.split(",")
    start = time.perf_counter()
    runs = {positions: probe_run(f"{corpus_part}:{model}:{positions}", cache_dir=None,
                                 output_dir=scratch_dir("ser_hf_input_length_"))
            for positions in lengths}
    data = runs[lengths[0]].data
    dataset = load_run_dataset(data)  # the same clips for every length: only the model's input differs
    labels = dataset.features["label"].names
    variants = {positions: Variant(np.asarray(make_method(run, labels, progress=False).features(dataset["audio"]),
                                              dtype=np.float64))
                for positions, run in runs.items()}
    compared = compare_variants(spec, dataset, data, variants)
    rows = [{"max_source_positions": int(positions) or 1500, "seconds": _seconds(positions), **row}
            for positions, row in compared.pop("rows").items()]
    for choice in compared["inner_cv_choice"]["per_fold"]:
        choice["positions"] = choice.pop("variant")
    return {"config": spec, "corpus": corpus_part, "model": model, **compared, "lengths": rows,
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "input_length", run_config)
