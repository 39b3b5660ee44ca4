"""How the probe's inner CV should judge its candidates: pooled UA (shipped), a calibrated log loss, or a one-SE rule.

The default probe fit (``linear_probe.fit_linear``) scores every (layer mix, ridge strength) candidate by the pooled
UA of its out-of-fold predictions on the training speakers and keeps the best. UA counts argmax hits: on URDU's ~23
training speakers, each speaking nearly one emotion, a few clips decide it, and the choice is noisy (the inner-CV
seed alone moves URDU's pooled UA by up to 5 points, ``probe_layer_mix.py``). Two smoother judges of the very same
candidates and out-of-fold scores:

- ``log loss``: each candidate's out-of-fold scores get their own softmax temperature (``_temperature``, as the
  shipped fit calibrates its choice) and the candidate with the lowest class-balanced log loss wins: every clip's
  margin counts, not only whether it crossed the argmax;
- ``one-SE``: the shipped choice's UA minus one standard error of its per-inner-fold UAs is the bar; the strongest
  ridge strength of the chosen mix that clears it wins (the usual "one standard error" rule: the simplest model the
  noise cannot tell from the best).

The chosen candidate is refitted on every training clip and its copies (``fit_chosen``), as the shipped fit does.
Each variant is scored over the shared folds and 4 more speaker-to-fold assignments (``speaker_folds`` seeds 1-4),
inner CV seeds 0-2, paired with the shipped criterion run by run.

Found (``results/probe_selection.json``): the log loss wins on URDU whisper-tiny.en with 10 s input (+1.9, all 15 runs)
and nowhere else (+0.15 to -0.8 on URDU's other inputs, -0.5 and -0.1 on RAVDESS); the one-SE rule loses everywhere.
The probe keeps choosing by pooled UA.

    .venv/bin/python benchmarks/probe_selection.py --configs urdu:whisper-tiny.en:500 urdu:whisper-tiny.en:0 \
        urdu:whisper-base:0 ravdess/4class:whisper-base:300:0.9,1.1:20
    .venv/bin/python benchmarks/probe_selection.py --assignments 3 --configs ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS, score_fits

from ser_hf.training import linear_probe

CRITERIA = ("pooled UA", "log loss", "one-SE")


def balanced_log_loss(scores: np.ndarray, labels: np.ndarray, num_labels: int) -> float:
    """Class-balanced mean log loss of out-of-fold ``scores`` at their own best softmax temperature."""
    weights = linear_probe.balanced_weights(labels, num_labels)
    logits = linear_probe._temperature(scores, labels, num_labels) * scores
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-(weights * log_probs[np.arange(len(labels)), labels]).sum() / weights.sum())


def choose(candidates: list[tuple], labels: np.ndarray, num_labels: int, folds, criterion: str) -> tuple[str, float]:
    """The (mix name, ridge strength) ``criterion`` picks from ``inner_candidates``' list."""
    best_ua, best_mix, best_alpha, _ = max(candidates, key=lambda c: c[0])
    if criterion == "pooled UA":
        return best_mix, best_alpha
    if criterion == "log loss":
        _, mix, alpha, _ = min(candidates, key=lambda c: balanced_log_loss(c[3], labels, num_labels))
        return mix, alpha

    def fold_uas(scores: np.ndarray) -> np.ndarray:
        return np.array([linear_probe._pooled_ua(labels[held], scores[held].argmax(axis=1), num_labels)
                         for _, held in folds])

    best_scores = next(c[3] for c in candidates if c[1] == best_mix and c[2] == best_alpha)
    uas = fold_uas(best_scores)
    bar = best_ua - uas.std(ddof=1) / np.sqrt(len(uas))
    cleared = [c[2] for c in candidates if c[1] == best_mix and c[0] >= bar]
    return best_mix, max(cleared)


def fits(data, train: np.ndarray, seed: int) -> dict[str, linear_probe.LinearFit]:
    """Every criterion's choice from one inner CV of the training rows ``train``, each refitted on all of them."""
    features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
    copies, num_labels = [copy[train] for copy in data.copies], len(data.labels)
    folds = linear_probe._inner_folds(classes, speakers, 4, seed)
    candidates = linear_probe.inner_candidates(features, classes, num_labels, folds, copies,
                                               data.method.settings.layer_mixes)
    chosen = {criterion: choose(candidates, classes, num_labels, folds, criterion) for criterion in CRITERIA}
    refits = {choice: linear_probe.fit_chosen(features, classes, num_labels, *choice, copies=copies)
              for choice in set(chosen.values())}
    return {criterion: refits[choice] for criterion, choice in chosen.items()}


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    return score_fits(spec, cached_states(spec), fits, assignments)


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_selection", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first")})
