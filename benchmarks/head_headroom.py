"""How well a standard HF head could score on the shared folds, had it chosen its layer mix and ridge strength with the
test speakers' labels: an upper bound that tells a fit that chooses badly from a head that cannot hold better.

The probe (``linear_probe.fit_linear``) chooses a layer mix (``uniform``, ``balanced``, ``balanced-top``) and a ridge
strength by an inner speaker-grouped CV on the training speakers, then refits. The "reference" (logistic regression on
every layer's own states, ``reference_probe.py``) is not a checkpoint: the standard head scores one softmax-weighted
sum of the layers. Where the probe trails the reference (URDU), is that the head's limit, or the choice's?

For every candidate head (the four named mixes of ``linear_probe.layer_mixes``, every layer alone, every two
adjacent layers each over its typical scale) and every ridge strength of ``linear_probe.RIDGE_ALPHAS``, this script
fits the head on each shared fold's training speakers (with the config's training copies, as ``fit_chosen`` does) and
scores the pooled UA of the test speakers; one candidate serves every fold. The best of them is **chosen with the
test labels**, so it is optimistic (the maximum of many noisy scores) and no model could be chosen that way: it bounds
what the checkpoint format holds on these folds, it is not a result. Beside it: the probe's own fit (which should
reproduce ``accuracy.json``'s probe row), the best candidate among the mixes the probe chooses from, the reference
row of ``accuracy.json``, and what the probe's inner CV (same folds, seed and criterion as ``fit_linear``) scores
when it may choose from every candidate here: whether offering the heads that win would find them.

    .venv/bin/python benchmarks/head_headroom.py --configs urdu:whisper-tiny.en:500 ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import time

import numpy as np
from common import accuracy_row_ua, run_configs
from probe_layer_mix import CachedStates, cached_states, outer_pooled_ua

from ser_hf.training import linear_probe
from ser_hf.training.linear_probe import DEFAULT_LAYER_MIXES, RIDGE_ALPHAS


def candidate_mixes(features: np.ndarray) -> dict[str, np.ndarray]:
    """The named mixes, each layer alone and each two adjacent layers (each over its typical scale)."""
    mixes = dict(linear_probe.layer_mixes(features))
    layers = features.shape[1]
    spread = np.sqrt(features.var(axis=0).mean(axis=1)) + 1e-8
    for layer in range(layers):
        mixes[f"layer {layer}"] = np.eye(layers)[layer]
    for layer in range(layers - 1):
        pair = np.zeros(layers)
        pair[layer:layer + 2] = 1.0 / spread[layer:layer + 2]
        mixes[f"layers {layer}+{layer + 1}"] = pair / pair.sum()
    return mixes


def test_pooled_uas(data: CachedStates) -> dict[str, list[float]]:
    """Every candidate's pooled test UA at every ridge strength, one fit per shared fold (the mixes built once per
    fold from its training clips' states, as ``fit_chosen`` builds them)."""
    num_labels = len(data.labels)
    predictions = {}  # candidate -> (strengths, clips) test predictions
    for fold in data.folds:
        train = np.concatenate([fold.train, fold.validation])
        for name, mix in candidate_mixes(data.features[train]).items():
            heads = fit_rows(data.features[train], [copy[train] for copy in data.copies], data.classes[train], mix,
                             num_labels)
            rows = predictions.setdefault(name, np.zeros((len(RIDGE_ALPHAS), len(data.classes)), dtype=np.int64))
            for index, head in enumerate(heads):
                rows[index, fold.test] = head.logits(data.features[fold.test]).argmax(axis=1)
    tested = np.concatenate([fold.test for fold in data.folds])
    return {name: [linear_probe.corpus_balanced_ua(data.classes[tested], row[tested], num_labels, None) for row in rows]
            for name, rows in predictions.items()}


def fit_rows(features: np.ndarray, copies: list[np.ndarray], labels: np.ndarray, mix: np.ndarray, num_labels: int,
             alphas=RIDGE_ALPHAS) -> list[linear_probe.LinearFit]:
    """Ridge heads of one mix at every strength of ``alphas``, fitted on clips and copies as ``fit_chosen`` fits."""
    mixed = np.einsum("nlh,l->nh", np.concatenate([features, *copies]), mix)
    mean, scale = linear_probe._standardise(mixed)
    path = linear_probe.ridge_path((mixed - mean) / scale, np.tile(labels, 1 + len(copies)), num_labels, alphas=alphas)
    return [linear_probe.LinearFit(mix, mean, scale, weight, bias) for weight, bias in path]


def inner_choice(features: np.ndarray, copies: list[np.ndarray], labels: np.ndarray, speakers: np.ndarray,
                 num_labels: int) -> linear_probe.LinearFit:
    """``fit_linear``'s choice (best inner pooled UA, the first of equals) over every candidate head, refitted."""
    folds = linear_probe._inner_folds(labels, speakers, 4, 0)
    best = None
    for mix in candidate_mixes(features).values():
        scores = np.zeros((len(RIDGE_ALPHAS), len(labels), num_labels))
        for train, held_out in folds:
            for index, head in enumerate(fit_rows(features[train], [c[train] for c in copies], labels[train], mix,
                                                  num_labels)):
                scores[index, held_out] = head.logits(features[held_out])
        for alpha, row in zip(RIDGE_ALPHAS, scores):
            ua = linear_probe.corpus_balanced_ua(labels, row.argmax(axis=1), num_labels, None)
            if best is None or ua > best[0]:
                best = (ua, mix, alpha)
    return fit_rows(features, copies, labels, best[1], num_labels, alphas=(best[2],))[0]


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    probe = outer_pooled_ua(data, lambda train: linear_probe.fit_linear(
        data.features[train], data.classes[train], data.speakers[train], len(data.labels),
        copies=[copy[train] for copy in data.copies])[0])
    offered_every_candidate = outer_pooled_ua(data, lambda train: inner_choice(
        data.features[train], [copy[train] for copy in data.copies], data.classes[train], data.speakers[train],
        len(data.labels)))
    candidates = [{"head": name, "ridge_alpha": alpha, "pooled_ua": ua}
                  for name, uas in test_pooled_uas(data).items() for alpha, ua in zip(RIDGE_ALPHAS, uas)]
    candidates.sort(key=lambda row: -row["pooled_ua"])
    reference = accuracy_row_ua(spec, "reference")
    best_of_probe_choices = next(row for row in candidates if row["head"] in DEFAULT_LAYER_MIXES)
    print(spec, f"probe {probe:.4f}, reference {reference}, best {candidates[0]}, "
          f"best of the probe's mixes {best_of_probe_choices}, inner CV offered every candidate "
          f"{offered_every_candidate:.4f}", flush=True)
    return {"config": spec, "labels": data.labels, "clips": len(data.classes), "speakers": len(set(data.speakers.tolist())),
            "folds": len(data.folds), "training_copies": len(data.copies),
            "probe_pooled_ua": probe, "reference_pooled_ua": reference,
            "inner_cv_offered_every_candidate_pooled_ua": offered_every_candidate,
            "best_chosen_with_test_labels": candidates[0],
            "best_of_the_probe_mixes_chosen_with_test_labels": best_of_probe_choices,
            "candidates_above_reference": None if reference is None else
            sum(row["pooled_ua"] > reference for row in candidates),
            "candidates_above_probe": sum(row["pooled_ua"] > probe for row in candidates),
            "candidates": len(candidates), "top_candidates": candidates[:10],
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "head_headroom", run_config)
