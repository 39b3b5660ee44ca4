"""Sharing each emotion's weight among its speakers in the probe's fit, tried for issue 15.

The default probe (``linear_probe.fit_linear``) gives every emotion the same total weight and every clip of an
emotion the same share of it. On a corpus whose emotions come from a few speakers each, a few voices then carry an
emotion: in URDU, one speaker (SM5) holds 72 of the 100 neutral clips and two (SM24, SM25) 78 of the 100 sad ones,
so a fit can learn who speaks rather than how. Weighting each clip of a speaker with n clips of that emotion by
``n**-p`` (then scaling the emotion to its total: ``linear_probe.balanced_weights(speakers=, speaker_power=p)``) shares
an emotion among more voices; p = 1 counts every speaker of an emotion the same, p = 0.5 half way. On RAVDESS, where
every actor speaks every emotion equally often, the weights do not change. The head stays a standard checkpoint
(only the fit's weights change); the inner CV still chooses mix and ridge strength by the pooled UA of every held-out
clip, each variant by its own inner CV.

Variants, on the probe's cached states, training copies and the shared folds plus 4 more speaker-to-fold assignments,
inner CV seeds 0-2 (as ``probe_bias.py``), each paired run by run with the shipped fit: ``shipped`` (p = 0),
``speaker power 0.5`` and ``speaker power 1``.

Decided before the first run: a power becomes the default if its mean pooled UA over the runs is above the shipped
fit's on every URDU configuration measured, by 0.5 or more on at least one, and no more than 0.2 below it on the
RAVDESS configuration (whisper-base, the recipe's copies); of two powers that pass, the one with the higher mean over
the URDU configurations. RAVDESS runs only if a power passes on URDU.

Found (``results/speaker_balance.json``, mean pooled UA over 15 runs, shipped first): no power passes. Whisper-tiny.en
10 s 81.5 against 80.4 (p = 0.5, worse in 11 runs, better in 3) and 76.6 (p = 1, worse in 14); whisper-tiny.en 30 s
79.7 against 79.7 and 76.6; whisper-base 30 s 77.7 against 77.7 and 76.9. Giving a speaker with 2 clips of an emotion
the say of one with 72 makes the fit follow the few-clip speakers' noise more than it frees it from the big speakers'
voices. Not adopted; RAVDESS, where the weights would not change, was not run.

    .venv/bin/python benchmarks/speaker_balance.py --configs urdu:whisper-tiny.en:500 urdu:whisper-tiny.en:0 \\
        urdu:whisper-base:0 ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS, score_fits

from ser_hf.training import linear_probe

POWERS = {"shipped": 0.0, "speaker power 0.5": 0.5, "speaker power 1": 1.0}


def fits(data, train, seed: int) -> dict[str, linear_probe.LinearFit]:
    """Each power's own inner-CV choice on the training rows ``train``, refitted on all of them."""
    features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
    copies, num_labels = [copy[train] for copy in data.copies], len(data.labels)
    folds = linear_probe._inner_folds(classes, speakers, 4, seed)
    fitted = {}
    for name, power in POWERS.items():
        candidates = linear_probe.inner_candidates(features, classes, num_labels, folds, copies,
                                                   data.method.settings.layer_mixes, speakers=speakers,
                                                   speaker_power=power)
        _, mix, alpha, scores = max(candidates, key=lambda c: c[0])
        fit = linear_probe.fit_chosen(features, classes, num_labels, mix, alpha, copies=copies, speakers=speakers,
                                      speaker_power=power)
        fit.temperature = linear_probe._temperature(scores, classes, num_labels)
        fitted[name] = fit
    return fitted


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    return score_fits(spec, cached_states(spec), fits, assignments)


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "speaker_balance", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first")})
