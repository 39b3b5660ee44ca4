"""Training the adaptive head on offsets as noisy as a user's enrollment gives, tried for issue 15.

The shipped adaptive head (``training/speaker_adaptation.py``) learns from every training speaker's states minus
that speaker's offset estimated from *all* their clips (60 per RAVDESS actor), while at prediction the offset comes
from the few clips a user enrolls (3-20), shrunk by ``n / (n + k)``: the head never saw an offset as noisy as the one
it is used with. This script fits, on the probe's own cached states, training copies and outer folds
(``benchmarks/accuracy.py``'s), the adaptive head on training states shifted by offsets from random subsets of each
training speaker's clips, shrunk as enrollment shrinks them, and scores it with the shipped enrollment (same global
head, class means, estimator, k and enrollment draws):

- ``shipped``: the shipped probe of the fold;
- ``noisy offsets, n clips``: :data:`TRAIN_DRAWS` extra copies of the training states, each speaker's copy minus
  the offset of a random ``n``-clip subset of that speaker (shrunk with the shipped k), beside the shipped
  full-offset states (and their speed/noise copies); the layer mix and ridge strength chosen again by the same inner
  CV (:func:`~ser_hf.training.linear_probe.fit_linear`);
- ``noisy offsets, mixed sizes``: the same with the subset size drawn from :data:`MIXED_SIZES` per speaker and copy.

The adaptive head stays one standard head (the offset still folds into the projector's bias). Each variant scores
:data:`ENROLLMENT` random clips per test speaker on the speaker's other clips (:data:`DRAWS` draws pooled) and all
clips (transductive); the global head's UA on the same clips is beside them. Folds where the shipped inner check
switched adaptation off score the global head for every variant.

    .venv/bin/python benchmarks/enrollment_noise_training.py --configs ravdess:whisper-base:300:0.9,1.1
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from speaker_spread import PooledScores, enrollment_draws

from ser_hf.training.linear_probe import fit_linear, head_tensors
from ser_hf.training.speaker_adaptation import adapt_training_speakers, fit_adaptive_probe, speaker_offset

ENROLLMENT = (3, 10, 20, "all")
DRAWS = 5
TRAIN_DRAWS = 4
SUBSET_SIZES = (10,)
MIXED_SIZES = (3, 5, 10, 20)
GLOBAL, SHIPPED = "global head, same clips", "shipped"


def noisy_offset_copy(features, labels, speakers, means, shrink, estimator, sizes, rng) -> np.ndarray:
    """The training states, each speaker minus the offset of a random subset of their clips (size drawn from
    ``sizes``; all clips where the speaker has no more), shrunk by ``n / (n + shrink)`` as enrollment shrinks it."""
    one_hot = np.eye(len(means))[labels]
    shifted = np.array(features, dtype=np.float64)
    for speaker in np.unique(speakers):
        rows = np.flatnonzero(speakers == speaker)
        subset = rng.permutation(rows)[:int(rng.choice(sizes))]
        shifted[rows] -= speaker_offset(features[subset], one_hot[subset], means, shrink, estimator)
    return shifted


def noisy_probe(shipped, features, copies, labels, speakers, num_labels, sizes, seed):
    """The shipped probe with its adaptive head refitted on full-offset states plus noisy-offset copies."""
    estimator, shrink = shipped.estimator, shipped.shrink
    adapted = adapt_training_speakers(features, labels, speakers, shipped.means, estimator=estimator)
    adapted_copies = [adapt_training_speakers(copy, labels, speakers, shipped.means, estimator=estimator)
                      for copy in copies]
    rng = np.random.default_rng(seed)
    noisy = [noisy_offset_copy(features, labels, speakers, shipped.means, shrink, estimator, sizes, rng)
             for _ in range(TRAIN_DRAWS)]
    fit, record = fit_linear(adapted, labels, speakers, num_labels, copies=[*adapted_copies, *noisy])
    return dataclasses.replace(shipped, adaptive_head=head_tensors(fit, num_labels)), record["layer_mix"]


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    labels, features, copies, classes, speakers = data.labels, data.features, data.copies, data.classes, data.speakers
    seed = data.run.data.fold_seed
    pooled = PooledScores()
    chosen, mixes = [], []
    variants = {**{f"noisy offsets, {n} clips": (n,) for n in SUBSET_SIZES},
                "noisy offsets, mixed sizes": MIXED_SIZES}
    for fold in data.folds:
        train = np.concatenate([fold.train, fold.validation])
        train_copies = [copy[train] for copy in copies]
        shipped = fit_adaptive_probe(features[train], classes[train], speakers[train], len(labels),
                                     projector_size=len(labels), copies=train_copies)
        chosen.append(f"{shipped.estimator}, k={shipped.shrink:g}" if shipped.enabled else "off")
        probes = {SHIPPED: shipped}
        if shipped.enabled:
            for name, sizes in variants.items():
                probes[name], mix = noisy_probe(shipped, features[train], train_copies, classes[train],
                                                speakers[train], len(labels), sizes, seed)
                mixes.append(f"{fold.name} {name}: {mix}")
        for setting, enrolled, scored in enrollment_draws(fold.test, speakers, classes, seed, ENROLLMENT, DRAWS):
            references = classes[scored]
            global_logits = shipped.logits(features[scored])
            pooled.add(GLOBAL, setting, references, global_logits.argmax(axis=1))
            for name in (SHIPPED, *variants):
                if not shipped.enabled or len(enrolled) < shipped.min_clips:  # every variant falls back alike
                    logits = global_logits
                else:
                    probe = probes[name]
                    logits = probe.logits(features[scored], probe.enroll(features[enrolled]))
                pooled.add(name, setting, references, logits.argmax(axis=1))
        print(f"  {spec} {fold.name}: shipped {chosen[-1]}", flush=True)
    return {"config": spec, "labels": labels, "speed_factors": data.speed_factors, "enrollment_draws": DRAWS,
            "train_draws": TRAIN_DRAWS, "shipped_choice_by_fold": chosen, "adaptive_layer_mix": mixes,
            "pooled_unweighted_accuracy": pooled.uas(len(labels), spec),
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "enrollment_noise_training", run_config)
