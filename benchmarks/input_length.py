"""Whisper's input length for a frozen-encoder probe, compared over several speaker-to-fold assignments.

How many seconds Whisper's encoder sees (``max_source_positions``, 50 per second; clips are zero-padded to it)
changes its pooled states, and one fold assignment is too noisy to choose it by: on URDU's 29 speakers the
pooled UA of one length moves by up to 5.5 points between assignments. So every length of a configuration
is scored with the probe's linear fit (``training.linear_probe.fit_linear``, as ``ser-hf cv`` fits the default
probe) on the same cached states over:

- the shared folds (``corpus_folds``: RAVDESS's 6 x 4 actors, URDU's 5 speaker-grouped folds, as in
  ``benchmarks/accuracy.py``), and
- ``--assignments - 1`` more speaker-grouped assignments (``speaker_folds`` with seeds 1, 2, ...; as many
  folds as the shared protocol),

and each length is compared with the first one listed (the recipe's length), assignment by assignment. Also
recorded: the length the training speakers' own inner CV would choose on each shared fold (the mean inner UA
of 3 inner seeds; the highest wins), and the pooled UA of those choices, which shows whether a
difference is visible without looking at the test speakers.

Usage::

    python benchmarks/input_length.py --configs urdu:whisper-tiny.en:0,500,1000 ravdess:whisper-base:300,500
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from common import run_configs
from probe_accuracy import probe_run

from ser_hf.splits import corpus_folds, speaker_folds
from ser_hf.training import linear_probe
from ser_hf.training.experiment import load_run_dataset, make_method
from ser_hf.training.linear_probe import fit_linear

ASSIGNMENTS = 5
INNER_SEEDS = (0, 1, 2)


def _seconds(positions: str) -> float:
    return 30.0 if int(positions) == 0 else int(positions) / 50


def run_config(spec: str) -> dict:
    corpus_part, model, lengths = spec.split(":")
    lengths = lengths.split(",")
    start = time.perf_counter()
    runs = {positions: probe_run(f"{corpus_part}:{model}:{positions}", cache_dir=None,
                                 output_dir=tempfile.mkdtemp(prefix="ser_hf_input_length_"))
            for positions in lengths}
    data = runs[lengths[0]].data
    dataset = load_run_dataset(data)  # the same clips for every length: only the model's input differs
    labels = dataset.features["label"].names
    features = {positions: np.asarray(make_method(run, labels, progress=False).features(dataset["audio"]),
                                      dtype=np.float64)
                for positions, run in runs.items()}
    classes = np.asarray(dataset["label"])
    speakers = np.asarray(dataset["speaker"], dtype=object)
    shared = corpus_folds(dataset, n_folds=data.num_folds, seed=data.fold_seed)
    assignments = [shared] + [speaker_folds(dataset, n_folds=len(shared), seed=seed) for seed in range(1, ASSIGNMENTS)]

    def fit(positions: str, fold, seed: int):
        train = np.concatenate([fold.train, fold.validation])
        return fit_linear(features[positions][train], classes[train], speakers[train], len(labels), seed=seed)

    def pooled_ua(folds, predictions: list[np.ndarray]) -> float:  # the UA the probe's own choice maximises
        references = np.concatenate([classes[fold.test] for fold in folds])
        return linear_probe._pooled_ua(references, np.concatenate(predictions), len(labels))

    by_length = {positions: [] for positions in lengths}
    shared_predictions = {}  # positions -> fold name -> test predictions on the shared folds
    inner_ua = {fold.name: {} for fold in shared}  # the training speakers' own view of each length
    for index, folds in enumerate(assignments):
        for positions in lengths:
            predictions = []
            for fold in folds:
                head, record = fit(positions, fold, INNER_SEEDS[0])
                predictions.append(head.logits(features[positions][fold.test]).argmax(axis=1))
                if index == 0:
                    inner_ua[fold.name][positions] = float(np.mean(
                        [record["inner_ua"], *(fit(positions, fold, seed)[1]["inner_ua"] for seed in INNER_SEEDS[1:])]))
            by_length[positions].append(pooled_ua(folds, predictions))
            if index == 0:
                shared_predictions[positions] = {fold.name: p for fold, p in zip(folds, predictions)}
        print(spec, f"assignment {index}:", {p: round(v[-1], 4) for p, v in by_length.items()}, flush=True)
    # Ties go to the earlier length in the list, the recipe's.
    choices = [{"fold": fold.name, "positions": max(lengths, key=inner_ua[fold.name].get), "inner_ua": inner_ua[fold.name]}
               for fold in shared]
    chosen_ua = pooled_ua(shared, [shared_predictions[choice["positions"]][choice["fold"]] for choice in choices])

    baseline = np.asarray(by_length[lengths[0]])
    rows = []
    for positions in lengths:
        values = np.asarray(by_length[positions])
        change = values - baseline
        rows.append({
            "max_source_positions": int(positions) or 1500, "seconds": _seconds(positions),
            "pooled_ua_shared_folds": float(values[0]),
            "pooled_ua_by_assignment": [float(v) for v in values],
            "mean": float(values.mean()), "std": float(values.std(ddof=1)),
            "difference_to_first": {"mean": float(change.mean()), "min": float(change.min()),
                                    "max": float(change.max()), "assignments_better": int(np.sum(change > 0)),
                                    "assignments_worse": int(np.sum(change < 0))},
        })
    return {
        "config": spec, "corpus": corpus_part, "model": model, "labels": labels, "clips": len(classes),
        "speakers": len(set(speakers)), "folds_per_assignment": len(shared), "assignments": ASSIGNMENTS,
        "fit": "training.linear_probe.fit_linear (the default probe's fit) on train + validation speakers",
        "lengths": rows,
        "inner_cv_choice": {"per_fold": choices, "pooled_ua_shared_folds": chosen_ua,
                            "inner_seeds": list(INNER_SEEDS)},
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "input_length", run_config)
