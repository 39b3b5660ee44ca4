"""A layer mix read off a linear fit on every layer: a candidate for the probe, measured against it and the reference.

The standard HF head scores one convex mix of the layers, so it cannot give each layer its own weights as the
"reference" (logistic regression on all layers' states side by side, not a checkpoint) does; on URDU the reference
scores above the probe (``probe_vs_reference.py``). This script asks whether the reference's *layer weighting* can be
carried into the head: on each fold's training speakers it fits the probe's class-balanced ridge on every layer's
standardised states side by side (strength by the same speaker-grouped inner CV), takes the best rank-one
approximation of its per-layer weight blocks (``W_l ~ c_l W``: the top singular vector over layers, negative entries
set to 0), and turns the layer shares ``c_l`` into a mix of the raw states by dividing by each layer's typical scale
(as the ``balanced`` mixes do). Then the probe's own fit (``fit_linear``: ridge strength by inner CV) on that mix.

Variants, each over the shared folds and 4 more speaker-to-fold assignments (``speaker_folds`` seeds 1-4, as the
input-length and layer-mix tables use), inner CV seed 0:

- ``probe``: ``fit_linear`` with the recipe's copies and mixes (what ``ser-hf cv`` ships);
- ``guided mix``: the mix above, always;
- ``probe, guided mix offered``: the guided mix as one more candidate of the probe's inner CV (the mix itself is read
  off all the training speakers, so its inner-CV score is slightly optimistic: the choice leans towards it).

    .venv/bin/python benchmarks/guided_mix.py --configs urdu:whisper-tiny.en:500 urdu:whisper-base:0
    .venv/bin/python benchmarks/guided_mix.py --configs ravdess:whisper-base:300:0.9,1.1:20 --assignments 1
"""

from __future__ import annotations

import time

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS

from ser_hf.evaluation.metrics.core import compute_scores
from ser_hf.splits import speaker_folds
from ser_hf.training import linear_probe

VARIANTS = ("probe", "guided mix", "probe, guided mix offered")


def guided_mix(features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, num_labels: int, copies, seed: int):
    """The layer mix (sums to 1) read off a ridge fit on every layer's standardised states side by side."""
    n, layers, hidden = features.shape
    flat, flat_copies = features.reshape(n, 1, -1), [copy.reshape(n, 1, -1) for copy in copies]
    folds = linear_probe._inner_folds(labels, speakers, 4, seed)
    _, _, alpha, _ = max(linear_probe.inner_candidates(flat, labels, num_labels, folds, flat_copies,
                                                       mixes=("uniform",)), key=lambda c: c[0])
    fit = linear_probe.fit_chosen(flat, labels, num_labels, "uniform", alpha, copies=flat_copies)
    blocks = fit.weight.reshape(num_labels, layers, hidden).transpose(1, 0, 2).reshape(layers, -1)
    shares = np.linalg.svd(blocks, full_matrices=False)[0][:, 0]
    shares = np.clip(shares if shares.sum() >= 0 else -shares, 0, None)
    mix = shares / (np.sqrt(features.var(axis=0).mean(axis=1)) + 1e-8)
    return mix / mix.sum()


class Fitted:
    """One variant fitted on a fold's training rows: logits of any states."""

    def __init__(self, data, train: np.ndarray, variant: str):
        features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
        copies, num_labels = [copy[train] for copy in data.copies], len(data.labels)
        mixes = data.method.settings.layer_mixes
        self.mix = None
        if variant == "probe":
            self.fit, _ = linear_probe.fit_linear(features, classes, speakers, num_labels, seed=0, copies=copies,
                                                  mixes=mixes)
            return
        mix = guided_mix(features, classes, speakers, num_labels, copies, seed=0)
        mixed = [np.einsum("nlh,l->nh", states, mix)[:, None, :] for states in (features, *copies)]
        guided, guided_record = linear_probe.fit_linear(mixed[0], classes, speakers, num_labels, seed=0,
                                                        copies=mixed[1:], mixes=("uniform",))
        if variant == "guided mix":
            self.fit, self.mix = guided, mix
            return
        probe, record = linear_probe.fit_linear(features, classes, speakers, num_labels, seed=0, copies=copies,
                                                mixes=mixes)
        self.fit, self.mix = (guided, mix) if guided_record["inner_ua"] > record["inner_ua"] else (probe, None)

    def logits(self, states: np.ndarray) -> np.ndarray:
        if self.mix is not None:
            states = np.einsum("nlh,l->nh", states, self.mix)[:, None, :]
        return self.fit.logits(states)


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    by_variant = {variant: [] for variant in VARIANTS}
    mixes, chose_guided = [], 0
    for assignment in range(assignments):
        folds = data.folds if assignment == 0 else speaker_folds(data.dataset, n_folds=len(data.folds), seed=assignment)
        rows = np.concatenate([fold.test for fold in folds])
        for variant in VARIANTS:
            predicted = []
            for fold in folds:
                fitted = Fitted(data, np.concatenate([fold.train, fold.validation]), variant)
                predicted.append(fitted.logits(data.features[fold.test]).argmax(axis=1))
                if variant == "guided mix" and assignment == 0:
                    mixes.append(np.round(fitted.mix, 3).tolist())
                if variant == VARIANTS[2]:
                    chose_guided += fitted.mix is not None
            by_variant[variant].append(compute_scores(data.classes[rows], np.concatenate(predicted),
                                                      label_names=data.labels)["unweighted_accuracy"])
        print(spec, assignment, {v: round(100 * uas[-1], 2) for v, uas in by_variant.items()}, flush=True)
    first = np.array(by_variant["probe"])
    rows = {variant: {"pooled_ua_by_assignment": uas, "mean": float(np.mean(uas)),
                      "difference_to_probe": {"mean": float(np.mean(np.array(uas) - first)),
                                              "min": float(np.min(np.array(uas) - first)),
                                              "max": float(np.max(np.array(uas) - first)),
                                              "assignments_better": int(np.sum(np.array(uas) - first > 1e-9)),
                                              "assignments_worse": int(np.sum(np.array(uas) - first < -1e-9))}}
            for variant, uas in by_variant.items()}
    print(spec, {variant: round(100 * row["mean"], 2) for variant, row in rows.items()}, flush=True)
    return {"config": spec, "labels": data.labels, "assignments": assignments, "inner_seed": 0,
            "guided_mix_on_the_shared_folds": mixes, "folds_choosing_the_guided_mix": chose_guided,
            "folds": assignments * len(data.folds), "rows": rows, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "guided_mix", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first (RAVDESS-8 takes about 30 min each on 2 cores)")})
