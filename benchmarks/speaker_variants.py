"""Two ways of using the speaker better that were tried for issue 15 and not adopted, measured on cached features.

Both are scored on the probe's own cached pooled states and the outer folds of ``benchmarks/accuracy.py``
(URDU 5 speaker-grouped folds, RAVDESS 6 folds of 4 actors), against what ser_hf ships:

- **Voice-direction projection** (nuisance attribute projection) for the standard head, which has no
  enrollment. On the standardised layer mix, each training speaker's voice offset is the mean of its clips
  minus their class means (the emotion is taken out with the true labels, so single-emotion URDU speakers keep
  it); the top ``r`` principal directions of those offsets are projected out before the ridge fit. A projection
  is linear, so the fit still folds into the standard head (``projected_fit`` returns an ordinary
  ``LinearFit``). The inner speaker CV chooses ``r`` in :data:`RANKS` together with the layer mix and ridge
  strength; ``shipped`` is ``r = 0`` (``linear_probe.fit_linear``'s choice). Each is run with the inner CV's
  fold assignment drawn from :data:`SEEDS`, since that choice alone moves pooled UA by points on URDU
  (``probe_layer_mix.json``).
- **Enrollment-matched training** of the speaker-adaptive head. The shipped adaptive head learns on states
  minus each training speaker's offset from *all* its clips (tens), but a user enrolls a few, whose offset is
  noisier; here the adaptive head is refitted on states minus offsets from :data:`MATCHED_CLIPS` random clips
  of the speaker (:data:`MATCHED_DRAWS` draws per speaker, stacked), with the estimator and shrinkage the
  shipped fit chose. Both heads score the same random enrollment clips (3 and 10 per test speaker, scored on
  the speaker's other clips, and all clips transductively), one draw with each of :data:`SEEDS`.

    .venv/bin/python benchmarks/speaker_variants.py --configs urdu:whisper-tiny.en:0 ravdess:whisper-base:300
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from common import run_configs
from probe_layer_mix import CachedStates, cached_states, outer_pooled_ua

from ser_hf.models.adaptive_head import speaker_offset
from ser_hf.training import linear_probe
from ser_hf.training.speaker_adaptation import class_means, enrollment_predictions, fit_adaptive_probe

#: Voice directions the inner CV may project out (0: none, the shipped fit).
RANKS = (0, 2, 4, 8, 16, 32)
#: Seeds of the inner-CV fold assignment (projection) and of the enrollment draws (adaptive head).
SEEDS = (0, 1, 2)
MATCHED_CLIPS, MATCHED_DRAWS = 10, 4
ENROLLMENT = (3, 10, "all")
GLOBAL = "standard head (no enrollment), same clips"


def voice_directions(z: np.ndarray, labels: np.ndarray, speakers: np.ndarray, num_labels: int) -> np.ndarray:
    """Principal directions ``(speakers, hidden)``, strongest first, of the speakers' offsets from their class means."""
    means = class_means(z, labels, num_labels)
    residual = z - means[labels]
    offsets = np.stack([residual[speakers == speaker].mean(axis=0) for speaker in np.unique(speakers)])
    return linear_probe._svd(offsets)[2]


def project(z: np.ndarray, directions: np.ndarray, rank: int) -> np.ndarray:
    return z - (z @ directions[:rank].T) @ directions[:rank] if rank else z


def projected_fit(features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, num_labels: int, ranks,
                  seed: int) -> tuple[linear_probe.LinearFit, dict]:
    """The best (mix, rank, ridge strength) by inner speaker CV, refitted on every clip, as a plain LinearFit."""
    folds = linear_probe._inner_folds(labels, speakers, 4, seed)
    best = None
    for name, mix in linear_probe.layer_mixes(features).items():
        mixed = np.einsum("nlh,l->nh", features, mix)
        for rank in ranks:
            # Standardise, find the directions and project inside each inner fold, from its training speakers only.
            scores = np.zeros((len(linear_probe.RIDGE_ALPHAS), len(labels), num_labels))
            for train, held_out in folds:
                mean, scale = linear_probe._standardise(mixed[train])
                z_train, z_held = (mixed[train] - mean) / scale, (mixed[held_out] - mean) / scale
                directions = voice_directions(z_train, labels[train], speakers[train], num_labels)
                path = linear_probe.ridge_path(project(z_train, directions, rank), labels[train], num_labels)
                for index, (weight, bias) in enumerate(path):
                    scores[index, held_out] = project(z_held, directions, rank) @ weight.T + bias
            for index, alpha in enumerate(linear_probe.RIDGE_ALPHAS):
                ua = linear_probe._pooled_ua(labels, scores[index].argmax(axis=1), num_labels)
                if best is None or ua > best[0]:
                    best = (ua, name, mix, rank, alpha)
    ua, name, mix, rank, alpha = best
    mixed = np.einsum("nlh,l->nh", features, mix)
    mean, scale = linear_probe._standardise(mixed)
    z = (mixed - mean) / scale
    directions = voice_directions(z, labels, speakers, num_labels)
    ((weight, bias),) = linear_probe.ridge_path(project(z, directions, rank), labels, num_labels, alphas=(alpha,))
    # w . (z - D^T D z) = (w - w D^T D) . z: the projection folds into the weights.
    folded = weight - (weight @ directions[:rank].T) @ directions[:rank] if rank else weight
    return linear_probe.LinearFit(mix, mean, scale, folded, bias), {"layer_mix": name, "rank": rank, "ridge_alpha": alpha,
                                                                    "inner_ua": round(ua, 4)}


def projection_rows(data: CachedStates) -> dict:
    rows = {}
    for variant, ranks in (("shipped (no projection)", (0,)), ("voice-direction projection", RANKS)):
        uas, chosen = [], []
        for seed in SEEDS:
            def fit_rows(train, ranks=ranks, seed=seed, chosen=chosen) -> linear_probe.LinearFit:
                fit, record = projected_fit(data.features[train], data.classes[train], data.speakers[train],
                                            len(data.labels), ranks, seed)
                chosen.append(record["rank"])
                return fit

            uas.append(outer_pooled_ua(data, fit_rows))
        rows[variant] = {"pooled_unweighted_accuracy_by_seed": uas, "mean": float(np.mean(uas)),
                         "min": min(uas), "max": max(uas), "ranks_chosen_by_fold": chosen}
        print(data.run.data.corpus, variant, f"mean {np.mean(uas):.4f} by seed {np.round(uas, 4).tolist()}", flush=True)
    return rows


def matched_adaptive(probe, features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, num_labels: int,
                     seed: int):
    """``probe`` with its adaptive head refitted on offsets from MATCHED_CLIPS random clips per speaker."""
    rng = np.random.default_rng(seed)
    means, one_hot = class_means(features, labels, num_labels), np.eye(num_labels)[labels]
    copies = []
    for _ in range(MATCHED_DRAWS):
        adapted = features.copy()
        for speaker in np.unique(speakers):
            rows = np.flatnonzero(speakers == speaker)
            enrolled = rng.permutation(rows)[:MATCHED_CLIPS]
            adapted[rows] -= speaker_offset(features[enrolled], one_hot[enrolled], means, probe.shrink, probe.estimator)
        copies.append(adapted)
    fit, _ = linear_probe.fit_linear(np.concatenate(copies), np.tile(labels, MATCHED_DRAWS),
                                     np.tile(speakers, MATCHED_DRAWS), num_labels)
    projector_size = np.asarray(probe.adaptive_head["projector.weight"]).shape[0]
    return dataclasses.replace(probe, adaptive_head=linear_probe.head_tensors(fit, projector_size))


def adaptation_rows(data: CachedStates) -> dict:
    """Pooled UA of both adaptive heads for every enrollment setting and draw (the same clips for both), and of the
    standard head on those clips (with many clips enrolled, few of a speaker's clips are left to score)."""
    features, classes, speakers, labels = data.features, data.classes, data.speakers, data.labels
    parts = {}  # (variant, setting, seed) -> (references, predictions)
    for index, fold in enumerate(data.folds):
        train = np.concatenate([fold.train, fold.validation])
        shipped = fit_adaptive_probe(features[train], classes[train], speakers[train], len(labels),
                                     projector_size=len(labels))
        matched = matched_adaptive(shipped, features[train], classes[train], speakers[train], len(labels), index)
        for variant, probe in (("shipped (offsets from all clips)", shipped),
                               (f"enrollment-matched ({MATCHED_CLIPS} clips)", matched)):
            for seed in SEEDS:
                predictions = enrollment_predictions(probe, features[fold.test], classes[fold.test],
                                                     speakers[fold.test], settings=ENROLLMENT, seed=seed, draws=1)
                for setting, result in predictions.items():
                    references, predicted = parts.setdefault((variant, setting, seed), ([], []))
                    references.append(classes[fold.test][result["rows"]])
                    predicted.append(result["adaptive"])
                    if probe is shipped:  # the standard head on the very same clips, for scale
                        references, predicted = parts.setdefault((GLOBAL, setting, seed), ([], []))
                        references.append(classes[fold.test][result["rows"]])
                        predicted.append(result["global"])
        print(f"  fold {fold.name}: {shipped.estimator} offset, shrinkage {shipped.shrink:g}", flush=True)
    rows = {}
    for (variant, setting, _seed), (references, predicted) in parts.items():
        ua = linear_probe._pooled_ua(np.concatenate(references), np.concatenate(predicted), len(labels))
        rows.setdefault(variant, {}).setdefault(setting, []).append(ua)
    summary = {variant: {setting: {"pooled_unweighted_accuracy_by_seed": uas, "mean": float(np.mean(uas))}
                         for setting, uas in by_setting.items()} for variant, by_setting in rows.items()}
    for variant, by_setting in summary.items():
        print(" ", variant, {setting: round(100 * v["mean"], 1) for setting, v in by_setting.items()}, flush=True)
    return summary


def run_config(spec: str) -> dict:
    data = cached_states(spec)
    start = time.perf_counter()
    row = {"config": spec, "seeds": list(SEEDS), "standard_head": projection_rows(data),
           "adaptive_head": adaptation_rows(data)}
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    run_configs(__doc__.splitlines()[0], "speaker_variants", run_config)


if __name__ == "__main__":
    main()
