"""Scoring variants of the probe's training input against each other over several speaker-to-fold assignments.

One fold assignment is too noisy to choose between variants by: on URDU's 29 speakers one probe's pooled UA
moves by up to 5.5 points between assignments. So :func:`compare_variants` scores every variant (its own pooled
states, and optionally training copies of them) with the probe's linear fit (``training.linear_probe.fit_linear``,
as ``ser-hf cv`` fits the default probe) on:

- the shared folds (``corpus_folds``: RAVDESS's 6 x 4 actors, URDU's 5 speaker-grouped folds, as in
  ``benchmarks/accuracy.py``), and
- ``ASSIGNMENTS - 1`` more speaker-grouped assignments (``speaker_folds`` with seeds 1, 2, ...; as many
  folds as the shared protocol),

and compares each with the first variant (the recipe's), assignment by assignment. Also recorded: the variant
the training speakers' own inner CV would choose on each shared fold (the mean inner UA of 3 inner seeds; the
highest wins, ties to the earlier variant), and the pooled UA of those choices, which shows whether a
difference is visible without looking at the test speakers. ``input_length.py`` and ``speed_copies.py`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ser_hf.splits import corpus_folds, speaker_folds
from ser_hf.training import linear_probe
from ser_hf.training.linear_probe import DEFAULT_LAYER_MIXES, fit_linear

ASSIGNMENTS = 5
INNER_SEEDS = (0, 1, 2)


@dataclass
class Variant:
    """One way of training the probe: the clips' pooled states (also what its test clips are scored on), any
    training copies of them and the layer mixes its fit chooses from (see ``fit_linear``)."""

    features: np.ndarray
    copies: list[np.ndarray] = field(default_factory=list)
    mixes: tuple[str, ...] = DEFAULT_LAYER_MIXES


def compare_variants(spec: str, dataset, data, variants: dict[str, Variant], inner_seed: int = INNER_SEEDS[0],
                     choose: bool = True) -> dict:
    """Every variant's pooled UA over the assignments (each fit's inner CV seeded with ``inner_seed``), its
    difference to the first, and (``choose``) the inner-CV choice between the variants."""
    labels = dataset.features["label"].names
    classes = np.asarray(dataset["label"])
    speakers = np.asarray(dataset["speaker"], dtype=object)
    shared = corpus_folds(dataset, n_folds=data.num_folds, seed=data.fold_seed)
    assignments = [shared] + [speaker_folds(dataset, n_folds=len(shared), seed=seed) for seed in range(1, ASSIGNMENTS)]
    names = list(variants)

    def fit(name: str, fold, seed: int):
        train = np.concatenate([fold.train, fold.validation])
        variant = variants[name]
        return fit_linear(variant.features[train], classes[train], speakers[train], len(labels), seed=seed,
                          copies=[copy[train] for copy in variant.copies], mixes=variant.mixes)

    def pooled_ua(folds, predictions: list[np.ndarray]) -> float:  # the UA the probe's own choice maximises
        references = np.concatenate([classes[fold.test] for fold in folds])
        return linear_probe._pooled_ua(references, np.concatenate(predictions), len(labels))

    by_variant = {name: [] for name in names}
    shared_predictions = {}  # variant -> fold name -> test predictions on the shared folds
    inner_ua = {fold.name: {} for fold in shared}  # the training speakers' own view of each variant
    for index, folds in enumerate(assignments):
        for name in names:
            predictions = []
            for fold in folds:
                head, record = fit(name, fold, inner_seed)
                predictions.append(head.logits(variants[name].features[fold.test]).argmax(axis=1))
                if index == 0 and choose:
                    inner_ua[fold.name][name] = float(np.mean(
                        [record["inner_ua"], *(fit(name, fold, seed)[1]["inner_ua"] for seed in INNER_SEEDS[1:])]))
            by_variant[name].append(pooled_ua(folds, predictions))
            if index == 0:
                shared_predictions[name] = {fold.name: p for fold, p in zip(folds, predictions)}
        print(spec, f"assignment {index}:", {n: round(v[-1], 4) for n, v in by_variant.items()}, flush=True)
    if choose:
        choices = [{"fold": fold.name, "variant": max(names, key=inner_ua[fold.name].get),
                    "inner_ua": inner_ua[fold.name]} for fold in shared]
        chosen_ua = pooled_ua(shared, [shared_predictions[choice["variant"]][choice["fold"]] for choice in choices])

    return {
        "labels": labels, "clips": len(classes), "speakers": len(set(speakers)), "folds_per_assignment": len(shared),
        "assignments": ASSIGNMENTS,
        "fit": "training.linear_probe.fit_linear (the default probe's fit) on train + validation speakers",
        "rows": variant_rows(by_variant), "inner_seed": inner_seed,
        **({"inner_cv_choice": {"per_fold": choices, "pooled_ua_shared_folds": chosen_ua,
                                "inner_seeds": list(INNER_SEEDS)}} if choose else {}),
    }


def variant_rows(by_variant: dict[str, list[float]]) -> dict[str, dict]:
    """Each variant's pooled UAs (one per run: fold assignment, or assignment and inner seed), their mean and
    range, and the paired differences to the first variant's runs."""
    names = list(by_variant)
    baseline = np.asarray(by_variant[names[0]])
    rows = {}
    for name in names:
        values = np.asarray(by_variant[name])
        change = values - baseline
        rows[name] = {
            "pooled_ua_shared_folds": float(values[0]),
            "pooled_ua_by_assignment": [float(v) for v in values],
            "mean": float(values.mean()), "std": float(values.std(ddof=1)),
            "difference_to_first": {"mean": float(change.mean()), "min": float(change.min()),
                                    "max": float(change.max()), "assignments_better": int(np.sum(change > 0)),
                                    "assignments_worse": int(np.sum(change < 0))},
        }
    return rows


def score_fits(spec: str, data, fits, assignments: int = ASSIGNMENTS) -> dict:
    """Score ways of fitting the probe on the cached states ``data`` (``probe_layer_mix.cached_states``) run by run:
    the shared folds and ``assignments - 1`` more speaker-grouped assignments, each with inner-CV seeds
    :data:`INNER_SEEDS`. ``fits(data, train_rows, seed)`` gives ``{name: LinearFit}`` fitted on the training rows of
    one fold, the first name the baseline the others are paired with (:func:`variant_rows`).

    Returns:
        The benchmark's row for ``spec``: labels, the runs in order, each variant's row and the seconds taken.
    """
    import time

    start = time.perf_counter()
    num_labels = len(data.labels)
    by_variant: dict[str, list[float]] = {}
    runs = []
    for assignment in range(assignments):
        folds = data.folds if assignment == 0 else speaker_folds(data.dataset, n_folds=len(data.folds), seed=assignment)
        references = np.concatenate([data.classes[fold.test] for fold in folds])
        for seed in INNER_SEEDS:
            predicted: dict[str, list[np.ndarray]] = {}
            for fold in folds:
                for name, fitted in fits(data, np.concatenate([fold.train, fold.validation]), seed).items():
                    predicted.setdefault(name, []).append(fitted.logits(data.features[fold.test]).argmax(axis=1))
            for name, parts in predicted.items():
                by_variant.setdefault(name, []).append(
                    linear_probe._pooled_ua(references, np.concatenate(parts), num_labels))
            runs.append({"assignment": assignment, "inner_seed": seed})
            print(spec, runs[-1], {name: round(100 * uas[-1], 2) for name, uas in by_variant.items()}, flush=True)
    rows = variant_rows(by_variant)
    print(spec, {name: round(100 * row["mean"], 2) for name, row in rows.items()}, flush=True)
    return {"config": spec, "labels": data.labels, "assignments": assignments, "inner_seeds": list(INNER_SEEDS),
            "runs_in_order": runs, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
