"""Training the gradient probe (``probe_fit: gradient``) on several corpora: class weights alone, or every corpus
counting the same.

``corpus_balance.py`` measures this for the default linear fit. The gradient-trained head (and fine-tuning, through
:class:`~ser_hf.training.trainer.SERTrainer`'s loss) used to weight classes over the pooled clips and early-stop on the
validation speakers' pooled UA, so the larger corpus weighed more in both. Given each clip's corpus (what ``ser-hf``
passes for a multi-corpus run), every (corpus, emotion) cell weighs the same in the loss and early stopping scores the
mean of the validation corpora's UAs. This script scores both, and the new loss early-stopped on the pooled UA
(which of the two changes does what), on the same cached states, folds and assignments as
``corpus_balance.py``, each fold's training speakers split as ``ser-hf cv`` does for the gradient probe (about
``validation_size`` of them early-stop it; the recipe's gradient settings and seed).

Usage (``corpus+corpus[/emotions]:model:max_source_positions``)::

    python benchmarks/gradient_corpus_balance.py --configs urdu+ravdess/4class:whisper-tiny.en:300
"""

from __future__ import annotations

import dataclasses

import numpy as np
from common import run_configs
from corpus_balance import VARIANTS, MultiCorpusStates, run_config

from ser_hf.splits import add_validation
from ser_hf.training.probe import predict_logits, train_probe

#: The old loss, the new loss with its early stopping, and the new loss early-stopped on the pooled UA as before.
GRADIENT_VARIANTS = (*VARIANTS, "every corpus counts the same in the loss only (early stopping on the pooled UA)")


def gradient_predictions(data: MultiCorpusStates, variant: str, fold) -> tuple[np.ndarray, dict]:
    """The gradient probe of ``variant`` trained on the fold's training speakers, early-stopped on its validation
    speakers: test predictions and the epoch kept."""
    if data.copies:
        raise SystemExit("the gradient probe trains on no training copies: give a config without speed or noise")
    balanced = variant != GRADIENT_VARIANTS[0]
    # The validation speakers ser-hf cv holds out of every fold's training speakers (the run's validation_size).
    fold = add_validation(data.dataset, fold, data.run.data.validation_size, seed=data.run.data.fold_seed)
    head = train_probe(data.features[fold.train], data.classes[fold.train], len(data.labels),
                       dataclasses.replace(data.settings, fit="gradient"),
                       validation=(data.features[fold.validation], data.classes[fold.validation]),
                       corpora=data.corpora[fold.train] if balanced else None,
                       validation_corpora=data.corpora[fold.validation] if variant == GRADIENT_VARIANTS[1] else None)
    return predict_logits(head, data.features[fold.test]).argmax(axis=1), {"best_epoch": head.best_epoch}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "gradient_corpus_balance",
                lambda spec: run_config(spec, gradient_predictions, "training.probe.train_probe on train speakers, "
                                        "early-stopped on validation speakers, with and without corpora=",
                                        GRADIENT_VARIANTS))
