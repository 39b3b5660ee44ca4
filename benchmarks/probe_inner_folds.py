"""How many speaker-grouped folds the probe's inner CV uses (``probe_inner_folds``), tried for issue 15.

The default probe (``linear_probe.fit_linear``) chooses its layer mix and ridge strength by a 4-fold speaker-grouped
inner CV on the training speakers. With 4 inner folds each inner fit sees three quarters of them: on URDU, about 17 of
23 training speakers, most of whom speak one emotion, so a held-out inner fold can take most of an emotion's voices
away and the choice is made on fits unlike the final one. More folds (8, or one speaker per fold) train each inner fit
on more speakers, closer to the refit on all of them, at the price of noisier per-fold scores (the pooled UA over all
held-out clips, which the choice uses, is not per fold) and more fits.

Variants, on the probe's cached states, training copies and the shared folds plus 4 more speaker-to-fold assignments,
inner CV seeds 0-2 (as ``probe_bias.py``; one speaker per fold needs no seed, so its 3 runs per assignment agree),
each paired run by run with the shipped fit: ``4 folds (shipped)``, ``8 folds``, ``one speaker per fold``.

Decided before the first run: a fold count becomes the default if its mean pooled UA over the runs is at least the
shipped fit's on every configuration measured and higher on at least one by 0.5 or more; of two that pass, the one
with the higher mean over all configurations. Measured: the three URDU configurations and RAVDESS-8 whisper-base with
the recipe's copies; RAVDESS runs only if a count passes on URDU.

Found (``results/probe_inner_folds.json``, mean pooled UA over 15 runs, shipped first): no count passes. Whisper-tiny.en
10 s 81.5 against 81.1 (8 folds, worse in 10 runs) and 80.8 (one speaker per fold, worse in 9); whisper-tiny.en 30 s
79.7 against 80.2 and 80.8 (one speaker per fold better in 12 runs of 15, worse in 1); whisper-base 30 s 77.7 against
76.3 and 76.6 (worse in 13 of 15 each). More inner folds help one configuration and cost two: the choice they make is
no less noisy on URDU's single-emotion speakers. Not adopted; RAVDESS was not run.

    .venv/bin/python benchmarks/probe_inner_folds.py --configs urdu:whisper-tiny.en:500 urdu:whisper-tiny.en:0 \\
        urdu:whisper-base:0 ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS, score_fits

from ser_hf.training import linear_probe

#: Inner fold counts; None: one speaker per fold.
FOLD_COUNTS = {"4 folds (shipped)": 4, "8 folds": 8, "one speaker per fold": None}


def fits(data, train, seed: int) -> dict[str, linear_probe.LinearFit]:
    """Each fold count's own inner-CV choice on the training rows ``train``, refitted on all of them."""
    features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
    copies, num_labels = [copy[train] for copy in data.copies], len(data.labels)
    fitted = {}
    for name, count in FOLD_COUNTS.items():
        count = count or len(set(speakers.tolist()))
        fitted[name], _ = linear_probe.fit_linear(features, classes, speakers, num_labels, inner_folds=count,
                                                  seed=seed, copies=copies, mixes=data.method.settings.layer_mixes)
    return fitted


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    return score_fits(spec, cached_states(spec), fits, assignments)


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_inner_folds", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first")})
