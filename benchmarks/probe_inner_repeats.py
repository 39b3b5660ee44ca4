"""Repeated inner CV for the probe's choice of layer mix and ridge strength, tried for issue 15 and not adopted.

The default linear probe (``training.linear_probe.fit_linear``) picks its layer mix and ridge strength by one
speaker-grouped inner CV, whose fold assignment follows the run's seed, and that choice alone moves a row by up to a
point (``probe_layer_mix.json``). Averaging each candidate's inner UA over several inner fold assignments before
choosing is the usual cure for a noisy selection. This script scores, on the probe's cached states, training copies
and the shared folds plus 4 more speaker-grouped assignments (``variant_comparison``'s), the pooled UA of:

- ``inner seed 0``: the shipped choice (one inner CV, seed 0);
- ``inner seed 1``: one inner CV with another seed, for scale;
- ``mean of inner seeds 0-2`` and ``mean of inner seeds 3-5``: the candidate with the best mean inner UA over three
  inner fold assignments.

Every choice is refitted on all training speakers and their copies by ``fit_chosen``, as the probe does.

    .venv/bin/python benchmarks/probe_inner_repeats.py --configs ravdess/4class:whisper-base:300:0.9,1.1
"""

from __future__ import annotations

import time

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS

from ser_hf.splits import speaker_folds
from ser_hf.training import linear_probe

#: Each way of choosing: the inner-CV seeds whose mean inner UA picks the candidate.
CHOICES = {"inner seed 0": (0,), "inner seed 1": (1,), "mean of inner seeds 0-2": (0, 1, 2),
           "mean of inner seeds 3-5": (3, 4, 5)}


def candidate_uas(features, labels, speakers, num_labels, copies, seed) -> dict[tuple[str, float], float]:
    """Inner pooled UA of every (layer mix, ridge strength) on the inner fold assignment of ``seed``, exactly as
    ``fit_linear`` scores them."""
    folds = linear_probe._inner_folds(labels, speakers, 4, seed)
    return {(name, alpha): ua for ua, name, alpha, _ in
            linear_probe.inner_candidates(features, labels, num_labels, folds, copies)}


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    num_labels = len(data.labels)
    seeds = sorted({seed for chosen in CHOICES.values() for seed in chosen})
    assignments = [data.folds] + [speaker_folds(data.dataset, n_folds=len(data.folds), seed=seed)
                                  for seed in range(1, ASSIGNMENTS)]
    by_choice = {name: [] for name in CHOICES}
    for index, folds in enumerate(assignments):
        predictions = {name: [] for name in CHOICES}
        for fold in folds:
            train = np.concatenate([fold.train, fold.validation])
            copies = [copy[train] for copy in data.copies]
            inner = {seed: candidate_uas(data.features[train], data.classes[train], data.speakers[train], num_labels,
                                         copies, seed) for seed in seeds}
            for name, chosen in CHOICES.items():
                mix, alpha = max(inner[seeds[0]], key=lambda c: np.mean([inner[s][c] for s in chosen]))
                fit = linear_probe.fit_chosen(data.features[train], data.classes[train], num_labels, mix, alpha,
                                              copies=copies)
                predictions[name].append(fit.logits(data.features[fold.test]).argmax(axis=1))
        references = np.concatenate([data.classes[fold.test] for fold in folds])
        for name in CHOICES:
            by_choice[name].append(linear_probe._pooled_ua(references, np.concatenate(predictions[name]), num_labels))
        print(spec, f"assignment {index}:", {n: round(100 * v[-1], 2) for n, v in by_choice.items()}, flush=True)
    rows = {name: {"inner_seeds": list(CHOICES[name]), "pooled_ua_by_assignment": values,
                   "pooled_ua_shared_folds": values[0], "mean": float(np.mean(values)),
                   "std": float(np.std(values, ddof=1))} for name, values in by_choice.items()}
    return {"config": spec, "labels": data.labels, "speed_factors": data.speed_factors, "assignments": ASSIGNMENTS,
            "rows": rows, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_inner_repeats", run_config)
