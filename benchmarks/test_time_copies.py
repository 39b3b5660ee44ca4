"""Test-time copies: scoring a clip together with the altered copies its model trained on.

A probe recipe with training copies (``probe_speed_copies``, ``probe_noise_copies``) teaches the linear head what
its copies of a clip look like. At prediction, ``EmotionRecognizer(test_time_copies=...)`` (``ser-hf predict
--test-time-copies``) scores the clip and the same copies of it and averages their log-probabilities, which for
the linear head is the head applied to the mean of their states. This script scores the recipe's linear fit
(``training.linear_probe.fit_linear``, with the config's copies, every corpus counting the same for several) on
the clip alone and on the clip with its copies, on the same cached states and fits: the run's own folds and
``ASSIGNMENTS - 1`` more speaker-grouped assignments (``corpus_balance.py``'s protocol).

Usage (``corpus[+corpus][/emotions]:model:max_source_positions:speed factors[:noise SNRs]``)::

    python benchmarks/test_time_copies.py --configs ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import numpy as np
from common import run_configs
from corpus_balance import MultiCorpusStates, run_config

from ser_hf.training import linear_probe

#: The clip alone (what pipeline() scores), and the clip with its training copies, log-probabilities averaged.
VARIANTS = ("the clip alone", "the clip and its training copies")

_fits: dict[tuple, linear_probe.LinearFit] = {}


def _fit(data: MultiCorpusStates, fold) -> linear_probe.LinearFit:
    """The recipe's linear fit on the fold's training speakers (one per fold, shared by both variants)."""
    key = (id(data), fold.name, fold.test.tobytes())
    if key not in _fits:
        train = np.concatenate([fold.train, fold.validation])
        settings = data.settings
        _fits[key], _ = linear_probe.fit_linear(
            data.features[train], data.classes[train], data.speakers[train], len(data.labels), seed=settings.seed,
            inner_folds=settings.inner_folds, mixes=settings.layer_mixes,
            copies=[copy[train] for copy in data.copies], corpora=data.corpora[train])
    return _fits[key]


def copy_predictions(data: MultiCorpusStates, variant: str, fold) -> tuple[np.ndarray, dict]:
    if not data.copies:
        raise SystemExit("test-time copies need a config with training copies (speed factors or noise SNRs)")
    fit, test = _fit(data, fold), fold.test
    # Summed logits of the linear head rank classes as the recognizer's mean log-probabilities do.
    scores = fit.logits(data.features[test])
    if variant == VARIANTS[1]:
        scores = scores + sum(fit.logits(copy[test]) for copy in data.copies)
    return scores.argmax(axis=1), {}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "test_time_copies",
                lambda spec: run_config(spec, copy_predictions, "training.linear_probe.fit_linear with the config's "
                                        "copies on train + validation speakers; test clips scored alone or with "
                                        "their copies", VARIANTS))
