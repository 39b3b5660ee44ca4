"""The probe against the reference, clip for clip: their pooled-UA difference with a paired speaker-bootstrap interval.

``accuracy.json`` gives the probe (the default recipe's standard checkpoint) and the reference (logistic regression
on every layer's own states, ``reference_probe.py``: not a checkpoint) each its own 95% interval, and on URDU those
intervals are about 25 points wide: the scores of 29 speakers, each speaking nearly one emotion, swing with which
speakers are drawn. Whether the probe is really below or above the reference is a question about their
*difference*, and the two systems share the speakers that make both of them swing, so the difference has its own,
narrower interval: each resample draws the same speakers for both (``ser_hf.evaluation.paired_bootstrap_scores``).

For each configuration (``accuracy.py``'s syntax) this script fits, on every shared fold's training speakers, the probe
exactly as ``ser-hf cv`` fits it (``fit_linear`` with the recipe's training copies, mixes, inner folds and seed) and
the reference exactly as ``reference_probe.py`` fits it, predicts the fold's test speakers, and records both pooled
UAs (each must equal its row in ``accuracy.json``: the file says whether it does), the difference probe minus
reference, its 95% paired interval over 2000 resamples of whole speakers, and the share of resamples in which the
probe scores at least as high. Then it refits both on the states multiplied by ``1 + 1e-6 * N(0, 1)`` (three draws:
changes at the level of float32 rounding, such as recomputing the states on another machine makes) and records their
pooled UAs: how far each fit moves when nothing but rounding changes (the reference's C is chosen from a flat inner CV
on URDU, and a rounding-level change can pick another). Last, it scores both on :data:`ASSIGNMENTS` ``- 1`` more
speaker-to-fold assignments of the same corpus (``speaker_folds`` with seeds 1, 2, ..., as the input-length and layer-mix
tables use): whether the shared folds' difference is the corpus's or that one assignment's.

    .venv/bin/python benchmarks/probe_vs_reference.py --configs urdu:whisper-tiny.en:500 ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import time

import numpy as np
from common import accuracy_row_ua, run_configs
from probe_layer_mix import CachedStates, cached_states
from reference_probe import fit_reference
from variant_comparison import ASSIGNMENTS

from ser_hf.evaluation import paired_bootstrap_scores, percentile_interval
from ser_hf.evaluation.metrics.core import compute_scores
from ser_hf.splits import speaker_folds
from ser_hf.training import linear_probe

#: Bootstrap resamples of the difference (whole speakers drawn).
RESAMPLES = 2000
#: Relative size of the noise multiplied into the states to see how far a fit moves with float32-level changes.
JITTER = 1e-6
#: Refits of both systems on jittered states.
JITTER_DRAWS = 3


def jittered(states: np.ndarray, seed: int) -> np.ndarray:
    """``states`` times ``1 + JITTER * N(0, 1)``, elementwise: a change at the level of float32 rounding."""
    rng = np.random.default_rng(seed)
    return states * (1.0 + JITTER * rng.standard_normal(states.shape))


def out_of_fold_predictions(data: CachedStates, jitter_seed: int | None = None, folds=None):
    """Test rows and each system's predictions, pooled over the shared folds (or ``folds``), and what each fold's fits
    chose (the probe's mix and ridge strength, the reference's C); with ``jitter_seed``, both fitted and scored on
    :func:`jittered` states (the training copies' too)."""
    settings = data.method.settings
    num_labels = len(data.labels)
    features, copies = data.features, data.copies
    if jitter_seed is not None:
        features = jittered(features, jitter_seed)
        copies = [jittered(copy, jitter_seed + 1000 * (index + 1)) for index, copy in enumerate(copies)]
    states = features.astype(np.float32)  # the reference fits float32 states, as the cache gives them
    rows, predictions, choices = [], {"probe": [], "reference": []}, []
    for fold in data.folds if folds is None else folds:
        train = np.concatenate([fold.train, fold.validation])
        probe, record = linear_probe.fit_linear(
            features[train], data.classes[train], data.speakers[train], num_labels,
            inner_folds=settings.inner_folds, seed=settings.seed, copies=[copy[train] for copy in copies],
            mixes=settings.layer_mixes)
        reference = fit_reference(states[train], data.classes[train], data.speakers[train],
                                  seed=data.run.data.fold_seed)
        test = states[fold.test]
        predictions["probe"].append(probe.logits(features[fold.test]).argmax(axis=1))
        predictions["reference"].append(reference.predict_proba(test.reshape(len(test), -1)).argmax(axis=1))
        rows.append(fold.test)
        choices.append({"fold": fold.name, "probe_layer_mix": record["layer_mix"],
                        "probe_ridge_alpha": record["ridge_alpha"], "reference_C": float(reference[-1].C_[0])})
    return np.concatenate(rows), {name: np.concatenate(parts) for name, parts in predictions.items()}, choices


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    labels = data.labels
    rows, predictions, choices = out_of_fold_predictions(data)
    references, speakers = data.classes[rows], data.speakers[rows]

    def pooled_uas(predictions):
        return {name: compute_scores(references, system, label_names=labels)["unweighted_accuracy"]
                for name, system in predictions.items()}

    ua = pooled_uas(predictions)
    under_jitter = [pooled_uas(out_of_fold_predictions(data, seed)[1]) for seed in range(JITTER_DRAWS)]
    by_assignment = [ua]
    for seed in range(1, ASSIGNMENTS):
        folds = speaker_folds(data.dataset, n_folds=len(data.folds), seed=seed)
        other_rows, other_predictions, _ = out_of_fold_predictions(data, folds=folds)
        by_assignment.append({name: compute_scores(data.classes[other_rows], system,
                                                   label_names=labels)["unweighted_accuracy"]
                              for name, system in other_predictions.items()})
    differences = [run["probe"] - run["reference"] for run in by_assignment]
    samples = paired_bootstrap_scores(references, predictions, len(labels), groups=speakers.tolist(),
                                      n_resamples=RESAMPLES, seed=0)
    difference = samples["probe"] - samples["reference"]
    recorded = {"probe": accuracy_row_ua(spec, "probe"), "reference": accuracy_row_ua(spec, "reference")}
    row = {"config": spec, "labels": labels, "clips": len(rows), "speakers": len(set(speakers.tolist())),
           "probe_pooled_ua": ua["probe"], "reference_pooled_ua": ua["reference"],
           "difference": ua["probe"] - ua["reference"],
           "difference_interval_95": percentile_interval(difference),
           "share_of_resamples_probe_at_least_reference": float(np.mean(difference >= 0)),
           "probe_interval_95": percentile_interval(samples["probe"]),
           "reference_interval_95": percentile_interval(samples["reference"]),
           "clips_only_probe_right": int(np.sum((predictions["probe"] == references) &
                                                (predictions["reference"] != references))),
           "clips_only_reference_right": int(np.sum((predictions["reference"] == references) &
                                                    (predictions["probe"] != references))),
           "resamples": RESAMPLES, "unit": "speaker", "chosen_by_fold": choices,
           "jitter": {"relative_scale": JITTER, "draws": JITTER_DRAWS,
                      **{f"{name}_pooled_ua": [draw[name] for draw in under_jitter] for name in ua},
                      "difference": [draw["probe"] - draw["reference"] for draw in under_jitter]},
           "assignments": {"count": ASSIGNMENTS, "first": "the shared folds",
                           "probe_pooled_ua": [run["probe"] for run in by_assignment],
                           "reference_pooled_ua": [run["reference"] for run in by_assignment],
                           "probe_mean": float(np.mean([run["probe"] for run in by_assignment])),
                           "reference_mean": float(np.mean([run["reference"] for run in by_assignment])),
                           "difference_mean": float(np.mean(differences)),
                           "difference_range": [min(differences), max(differences)],
                           "probe_better": sum(d > 1e-9 for d in differences),
                           "probe_worse": sum(d < -1e-9 for d in differences)},
           "accuracy_json": recorded,
           "reproduces_accuracy_json": all(recorded[name] is not None and abs(recorded[name] - ua[name]) < 1e-9
                                           for name in ua),
           "seconds": round(time.perf_counter() - start, 1)}
    print(spec, f"probe {ua['probe']:.4f} reference {ua['reference']:.4f} difference {row['difference']:+.4f} "
          f"{np.round(row['difference_interval_95'], 4).tolist()} reproduces {row['reproduces_accuracy_json']}; "
          f"under jitter: {row['jitter']}; over {ASSIGNMENTS} assignments: {row['assignments']}", flush=True)
    return row


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_vs_reference", run_config)
