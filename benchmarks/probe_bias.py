"""Per-class bias calibration of the probe on its inner out-of-fold scores, tried for issue 15.

The default probe (``linear_probe.fit_linear``) fits class-balanced ridge regression and chooses its layer mix and
ridge strength by the pooled UA of an inner speaker-grouped CV; a softmax temperature is then fitted on the chosen
candidate's out-of-fold scores. Ridge scores of one-vs-rest targets are not calibrated per class: one class's scores
may sit lower than another's on speakers the fit did not see, which costs UA (a recall average) where it matters
most, on the classes with fewest clips. The usual cure is to calibrate a bias per class with the temperature
("bias-corrected temperature scaling", vector scaling without the per-class scale): on the same out-of-fold scores,
minimise the class-balanced log loss over the temperature and one bias per class. Biases only move the classifier's
bias, so the head stays a standard checkpoint.

Variants, on the probe's cached states, training copies and the shared folds plus 4 more speaker-to-fold assignments,
inner CV seeds 0-2 (as ``probe_selection.py``), each paired run by run with the shipped fit:

- ``shipped``: the chosen candidate refitted (``fit_chosen``), its temperature as ``fit_linear`` fits it;
- ``bias calibrated``: the same refit, plus the biases fitted on the chosen candidate's inner out-of-fold scores.

Decided before the first run: the calibration becomes the default if its mean pooled UA over the runs is at least the
shipped fit's on every configuration measured and higher on at least one by 0.5 or more.

Found (``results/probe_bias.json``): the calibration loses on every URDU configuration, in nearly every run: whisper-tiny.en
10 s 78.8 against 81.5 mean pooled UA (-2.7, worse in 15 of 15 runs), whisper-tiny.en 30 s 78.4 against 79.7 (-1.3,
14 of 15), whisper-base 30 s 76.9 against 77.7 (-0.8, 13 of 15). URDU's inner folds hold speakers of nearly one
emotion each, so biases fitted on their out-of-fold scores learn which emotions those speakers happened to speak, not
a calibration that carries to new speakers. The rule having failed, the RAVDESS configurations were not run (about 25
minutes each on 2 cores). Not adopted.

    .venv/bin/python benchmarks/probe_bias.py --configs urdu:whisper-tiny.en:500 urdu:whisper-tiny.en:0 \
        urdu:whisper-base:0 ravdess:whisper-base:300:0.9,1.1:20 ravdess/4class:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from scipy.optimize import minimize
from variant_comparison import ASSIGNMENTS, score_fits

from ser_hf.training import linear_probe


def calibrated_bias(scores: np.ndarray, labels: np.ndarray, num_labels: int) -> tuple[float, np.ndarray]:
    """The temperature and per-class bias (summing to 0, in score units) with the lowest class-balanced log loss of
    ``temperature * (scores + bias)`` on out-of-fold ``scores``, starting from ``fit_linear``'s temperature."""
    weights = linear_probe.balanced_weights(labels, num_labels)
    weights = weights / weights.sum()
    start = linear_probe._temperature(scores, labels, num_labels)
    one_hot = np.eye(num_labels)[labels]

    def loss(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        temperature, bias = np.exp(parameters[0]), parameters[1:] - parameters[1:].mean()
        logits = temperature * (scores + bias)
        logits = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        log_probs = np.log(np.maximum(probabilities, 1e-300))
        value = -(weights * log_probs[np.arange(len(labels)), labels]).sum()
        residual = weights[:, None] * (probabilities - one_hot)  # d loss / d logits
        grad_bias = temperature * residual.sum(axis=0)
        grad_bias = grad_bias - grad_bias.mean()
        grad_log_t = float((residual * temperature * (scores + bias)).sum())
        return float(value), np.concatenate([[grad_log_t], grad_bias])

    result = minimize(loss, np.concatenate([[np.log(start)], np.zeros(num_labels)]), jac=True, method="L-BFGS-B")
    bias = result.x[1:] - result.x[1:].mean()
    return float(np.exp(result.x[0])), bias


def fits(data, train: np.ndarray, seed: int) -> dict[str, linear_probe.LinearFit]:
    """The shipped choice of one inner CV of the training rows ``train``, refitted on all of them, without and with
    the calibrated biases."""
    features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
    copies, num_labels = [copy[train] for copy in data.copies], len(data.labels)
    folds = linear_probe._inner_folds(classes, speakers, 4, seed)
    candidates = linear_probe.inner_candidates(features, classes, num_labels, folds, copies,
                                               data.method.settings.layer_mixes)
    _, mix, alpha, scores = max(candidates, key=lambda c: c[0])
    shipped = linear_probe.fit_chosen(features, classes, num_labels, mix, alpha, copies=copies)
    shipped.temperature = linear_probe._temperature(scores, classes, num_labels)
    temperature, bias = calibrated_bias(scores, classes, num_labels)
    calibrated = linear_probe.LinearFit(shipped.mix, shipped.mean, shipped.scale, shipped.weight,
                                        shipped.bias + bias, temperature)
    return {"shipped": shipped, "bias calibrated": calibrated}


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    return score_fits(spec, cached_states(spec), fits, assignments)


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_bias", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first")})
