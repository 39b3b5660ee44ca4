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
from ser_hf.training.experiment import load_run_dataset, make_method
from ser_hf.training.linear_probe import fit_linear

ASSIGNMENTS = 5
INNER_SEEDS = (0, 1, 2)


def _pooled_ua(references: np.ndarray, predictions: np.ndarray, num_labels: int) -> float:
    return float(np.mean([np.mean(predictions[references == k] == k) for k in range(num_labels)
                          if np.any(references == k)]))


def _seconds(positions: str) -> float:
    return 30.0 if int(positions) == 0 else int(positions) / 50


def run_config(spec: str) -> dict:
    corpus_part, model, lengths = spec.split(":")
    lengths = lengths.split(",")
    start = time.perf_counter()
    features = {}
    for positions in lengths:
        run = probe_run(f"{corpus_part}:{model}:{positions}", cache_dir=None,
                        output_dir=tempfile.mkdtemp(prefix="ser_hf_input_length_"))
        dataset = load_run_dataset(run.data)
        labels = dataset.features["label"].names
        features[positions] = np.asarray(make_method(run, labels, progress=False).features(dataset["audio"]),
                                         dtype=np.float64)
    classes = np.asarray(dataset["label"])
    speakers = np.asarray(dataset["speaker"], dtype=object)
    shared = corpus_folds(dataset, n_folds=run.data.num_folds, seed=run.data.fold_seed)
    assignments = [shared] + [speaker_folds(dataset, n_folds=len(shared), seed=seed) for seed in range(1, ASSIGNMENTS)]

    by_length = {positions: [] for positions in lengths}
    nested = {"choices": [], "predictions": [], "references": []}
    for index, folds in enumerate(assignments):
        for positions in lengths:
            predictions, references = [], []
            for fold in folds:
                train = np.concatenate([fold.train, fold.validation])
                fits = [fit_linear(features[positions][train], classes[train], speakers[train], len(labels), seed=seed)
                        for seed in (INNER_SEEDS if index == 0 else INNER_SEEDS[:1])]
                predictions.append(fits[0][0].logits(features[positions][fold.test]).argmax(axis=1))
                references.append(classes[fold.test])
                if index == 0:
                    nested.setdefault("inner", {}).setdefault(fold.name, {})[positions] = \
                        float(np.mean([record["inner_ua"] for _, record in fits]))
                    nested.setdefault("test", {}).setdefault(fold.name, {})[positions] = predictions[-1]
            by_length[positions].append(_pooled_ua(np.concatenate(references), np.concatenate(predictions),
                                                   len(labels)))
        print(spec, f"assignment {index}:", {p: round(v[-1], 4) for p, v in by_length.items()}, flush=True)
    for fold in shared:
        inner = nested["inner"][fold.name]
        choice = max(lengths, key=lambda positions: inner[positions])  # ties: the earlier (recipe's) length
        nested["choices"].append({"fold": fold.name, "positions": choice, "inner_ua": inner})
        nested["predictions"].append(nested["test"][fold.name][choice])
        nested["references"].append(classes[fold.test])

    baseline = np.asarray(by_length[lengths[0]])
    rows = []
    for positions in lengths:
        values = np.asarray(by_length[positions])
        rows.append({
            "max_source_positions": int(positions) or 1500, "seconds": _seconds(positions),
            "pooled_ua_shared_folds": float(values[0]),
            "pooled_ua_by_assignment": [float(v) for v in values],
            "mean": float(values.mean()), "std": float(values.std(ddof=1)),
            "difference_to_first": {"mean": float((values - baseline).mean()),
                                    "min": float((values - baseline).min()), "max": float((values - baseline).max()),
                                    "assignments_better": int(np.sum(values > baseline)),
                                    "assignments_worse": int(np.sum(values < baseline))},
        })
    chosen_ua = _pooled_ua(np.concatenate(nested["references"]), np.concatenate(nested["predictions"]), len(labels))
    return {
        "config": spec, "corpus": corpus_part, "model": model, "labels": labels, "clips": len(classes),
        "speakers": len(set(speakers)), "folds_per_assignment": len(shared), "assignments": ASSIGNMENTS,
        "fit": "training.linear_probe.fit_linear (the default probe's fit) on train + validation speakers",
        "lengths": rows,
        "inner_cv_choice": {"per_fold": nested["choices"], "pooled_ua_shared_folds": chosen_ua,
                            "inner_seeds": list(INNER_SEEDS)},
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "input_length", run_config)
