"""Which linear model the probe fits on its layer mix: ridge (shipped), multinomial logistic regression or shrinkage
LDA, each chosen and refitted the same way, tried for issue 15.

The standard head holds any linear model on a fixed layer mix of the standardised states (``linear_probe``), so the
loss it is fitted with is free. The shipped fit is class-balanced ridge regression on +1/-1 targets: one SVD gives
every strength at once. The reference the probe trails on URDU (``reference_probe.py``) is logistic regression, on
every layer's own states; ``linear_probe``'s docstring said ridge had been compared with logistic regression and
shrinkage LDA "on the shared corpora's folds", but no committed file held that comparison. This is it:

- ``ridge (shipped)``: ``linear_probe.fit_linear``;
- ``multinomial LR``: scikit-learn's ``LogisticRegression`` (L2, lbfgs, class-balanced sample weights as the ridge
  fit's), its inverse strength ``C`` from :data:`LR_C`;
- ``shrinkage LDA``: ``LinearDiscriminantAnalysis`` (lsqr, equal class priors), its shrinkage from
  :data:`LDA_SHRINKAGE` (a fixed grid, so the inner CV chooses it as it chooses the ridge strength).

Each chooses its layer mix (the recipe's mixes) and strength by the very inner CV the shipped fit uses (the same
speaker-grouped inner folds and seed, the training copies in their clip's inner fold and never scored, the pooled UA of
the held-out clips, the first of equal UAs), then refits on every training clip; scored on the shared folds plus 4
more speaker-to-fold assignments with inner-CV seeds 0-2 (``variant_comparison.score_fits``), paired run by run with
the shipped fit. The seconds each spends choosing and refitting are recorded too.

Decided before the first run: a loss becomes the default if its mean pooled UA over the runs is at least the shipped
fit's on every configuration measured and higher on at least one by 0.5 or more; of two that pass, the one with the
higher mean over all configurations. Measured first: the three URDU configurations; RAVDESS-8 whisper-base with the
recipe's copies only if a loss passes on URDU.

Found (``results/probe_loss.json``, mean pooled UA over 15 runs, ridge first): neither passes, so ridge stays and
RAVDESS was not run. Whisper-tiny.en 10 s: 81.5 against 76.3 (LR, worse in 13 runs of 15) and 80.5 (LDA, worse in 13);
whisper-tiny.en 30 s: 79.7 against 76.0 (LR, worse in all 15) and 80.0 (LDA, +0.3: better in 8, worse in 5);
whisper-base 30 s: 77.7 against 77.5 (LR, worse in 11) and 75.4 (LDA, worse in 13). Choosing and refitting took LR 5-8
times and LDA 9-21 times ridge's seconds (on 2 cores shared with tests, load average 1-3: rough ratios).

    .venv/bin/python benchmarks/probe_loss.py --configs urdu:whisper-tiny.en:500 urdu:whisper-tiny.en:0 \\
        urdu:whisper-base:0
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import ASSIGNMENTS, score_fits

from ser_hf.training import linear_probe

#: Inverse L2 strengths of the logistic regression, weakest regularisation last (a warm start walks up them).
LR_C = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
#: Shrinkage of the LDA's pooled within-class covariance towards its scaled identity.
LDA_SHRINKAGE = (0.01, 0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)


def lr_path(z: np.ndarray, labels: np.ndarray, num_labels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Multinomial logistic regression for every ``C`` of :data:`LR_C`: a list of ``(weight, bias)``, the ridge
    path's shape; class-balanced sample weights, as the ridge fit's."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=300, warm_start=True)
    weights = linear_probe.balanced_weights(labels, num_labels)
    path = []
    for c in LR_C:
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z, labels, sample_weight=weights * len(labels) / weights.sum())
        weight, bias = np.zeros((num_labels, z.shape[1])), np.full(num_labels, -1e4)  # an absent class never wins
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
        path.append((weight, bias))
    return path


def lda_path(z: np.ndarray, labels: np.ndarray, num_labels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shrinkage LDA with equal class priors for every shrinkage of :data:`LDA_SHRINKAGE`, as ``(weight, bias)``."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    present = np.unique(labels)
    path = []
    for shrinkage in LDA_SHRINKAGE:
        model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage,
                                           priors=np.full(len(present), 1 / len(present))).fit(z, labels)
        weight, bias = np.zeros((num_labels, z.shape[1])), np.full(num_labels, -1e4)
        coef, intercept = model.coef_, model.intercept_
        if len(present) == 2:  # scikit-learn gives one row for two classes: the second's score against the first
            coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        weight[present], bias[present] = coef, intercept
        path.append((weight, bias))
    return path


PATHS = {"multinomial LR": (lr_path, LR_C), "shrinkage LDA": (lda_path, LDA_SHRINKAGE)}


def fit_with(path_fn, grid, features, labels, speakers, num_labels, seed, copies, mixes) -> linear_probe.LinearFit:
    """``fit_linear``'s choice and refit with another linear model: the same inner folds, mixes, copies and score."""
    folds = linear_probe._inner_folds(labels, speakers, 4, seed)
    best = None
    for name, mix in linear_probe.layer_mixes(features, mixes).items():
        mixed = np.einsum("nlh,l->nh", features, mix)
        mixed_copies = [np.einsum("nlh,l->nh", copy, mix) for copy in copies]
        scores = np.zeros((len(grid), len(labels), num_labels))
        for train, held_out in folds:
            trained = np.concatenate([mixed[train], *(copy[train] for copy in mixed_copies)])
            mean, scale = linear_probe._standardise(trained)
            path = path_fn((trained - mean) / scale, np.tile(labels[train], 1 + len(copies)), num_labels)
            z = (mixed[held_out] - mean) / scale
            for index, (weight, bias) in enumerate(path):
                scores[index, held_out] = z @ weight.T + bias
        for index in range(len(grid)):
            ua = linear_probe._pooled_ua(labels, scores[index].argmax(axis=1), num_labels)
            if best is None or ua > best[0]:
                best = (ua, name, index)
    _, name, index = best
    mix = linear_probe.layer_mixes(features)[name]
    mixed = np.einsum("nlh,l->nh", np.concatenate([features, *copies]), mix)
    mean, scale = linear_probe._standardise(mixed)
    all_labels = np.tile(labels, 1 + len(copies))
    weight, bias = path_fn((mixed - mean) / scale, all_labels, num_labels)[index]  # the path up to it: warm starts
    return linear_probe.LinearFit(mix, mean, scale, weight, bias)


def run_config(spec: str, assignments: int = ASSIGNMENTS) -> dict:
    data = cached_states(spec)
    seconds = {"ridge (shipped)": 0.0, **dict.fromkeys(PATHS, 0.0)}

    def fits(data, train, seed: int) -> dict[str, linear_probe.LinearFit]:
        features, classes, speakers = data.features[train], data.classes[train], data.speakers[train]
        copies, num_labels, mixes = [copy[train] for copy in data.copies], len(data.labels), data.method.settings.layer_mixes
        start = time.perf_counter()
        fitted = {"ridge (shipped)": linear_probe.fit_linear(features, classes, speakers, num_labels, seed=seed,
                                                             copies=copies, mixes=mixes)[0]}
        seconds["ridge (shipped)"] += time.perf_counter() - start
        for name, (path_fn, grid) in PATHS.items():
            start = time.perf_counter()
            fitted[name] = fit_with(path_fn, grid, features, classes, speakers, num_labels, seed, copies, mixes)
            seconds[name] += time.perf_counter() - start
        return fitted

    row = score_fits(spec, data, fits, assignments)
    row["fit_seconds"] = {name: round(value, 1) for name, value in seconds.items()}
    return row


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_loss", run_config, options={"--assignments": dict(
        type=int, default=ASSIGNMENTS, choices=range(1, ASSIGNMENTS + 1),
        help="fold assignments to score, the shared folds first")})
