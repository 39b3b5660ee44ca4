"""Training one probe on several corpora: balancing emotions over all clips, or every corpus counting the same.

A model trained on URDU + RAVDESS (the released ``emotion-whisper-base`` and ``emotion-whisper-tiny.en``) sees
two domains: natural Urdu speech and acted English. The linear fit (``training.linear_probe.fit_linear``) used to
balance the emotions over the pooled clips and choose its layer mix and ridge strength by the pooled UA of its inner
CV, so the larger corpus weighed more in both. Given each clip's corpus (``corpora=``, what ``ser-hf`` passes for a
multi-corpus run), every (corpus, emotion) cell weighs the same and the inner CV scores the mean of the corpora's
UAs. This script scores both fits on the same cached states:

- the run's own folds (``run_folds``: RAVDESS's 6 actor folds, URDU's speaker folds, fold *i* testing both;
  ``benchmarks/accuracy.py``'s protocol), and ``ASSIGNMENTS - 1`` more speaker-grouped assignments of the
  combined clips (``speaker_folds`` with seeds 1, 2, ...: each fold holds speakers of both corpora);
- per assignment: the pooled UA over every clip, each corpus's in-corpus pooled UA and their mean, paired against
  the fit without corpora (first). A config with training copies (``:0.9,1.1``) trains both fits on them and adds
  the new fit without them, so whether a multi-corpus model should use copies is measured the same way.

Usage (``corpus+corpus[/emotions]:model:max_source_positions[:speed factors[:noise SNRs]]``)::

    python benchmarks/corpus_balance.py --configs urdu+ravdess/4class:whisper-base:300
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from accuracy import multi_corpus_run
from common import run_configs, scratch_dir
from variant_comparison import ASSIGNMENTS, variant_rows

from ser_hf.splits import speaker_folds
from ser_hf.training import linear_probe
from ser_hf.training.experiment import make_method
from ser_hf.training.run_data import load_run_dataset, run_folds

#: The fits compared: the old one, the new one, and (for a config with training copies) the new one without them.
VARIANTS = ("emotions balanced over all clips", "every corpus counts the same")
WITHOUT_COPIES = "every corpus counts the same, no training copies"


def _scores(references, predictions, corpora, corpus_names, num_labels) -> dict[str, float]:
    per_corpus = {name: linear_probe._pooled_ua(references[corpora == name], predictions[corpora == name], num_labels)
                  for name in corpus_names}
    return {"pooled": linear_probe._pooled_ua(references, predictions, num_labels), **per_corpus,
            "mean of corpora": float(np.mean(list(per_corpus.values())))}


@dataclass
class MultiCorpusStates:
    """A multi-corpus config's cached states, labels, speakers and corpora, its dataset and run, and the probe
    settings of its recipe."""

    run: Any
    dataset: Any
    settings: Any
    labels: list[str]
    features: np.ndarray
    copies: list[np.ndarray]
    classes: np.ndarray
    speakers: np.ndarray
    corpora: np.ndarray


def linear_predictions(data: MultiCorpusStates, variant: str, fold) -> tuple[np.ndarray, dict]:
    """The linear fit of ``variant`` on the fold's training speakers: test predictions and the fit's choice."""
    train = np.concatenate([fold.train, fold.validation])
    settings = data.settings
    fit, record = linear_probe.fit_linear(
        data.features[train], data.classes[train], data.speakers[train], len(data.labels), seed=settings.seed,
        inner_folds=settings.inner_folds, mixes=settings.layer_mixes,
        copies=[] if variant == WITHOUT_COPIES else [copy[train] for copy in data.copies],
        corpora=None if variant == VARIANTS[0] else data.corpora[train])
    return fit.logits(data.features[fold.test]).argmax(axis=1), \
        {"layer_mix": record["layer_mix"], "ridge_alpha": record["ridge_alpha"]}


def run_config(spec: str, predict=linear_predictions, fit_name: str = "training.linear_probe.fit_linear on train + "
               "validation speakers, with and without corpora=", variants=None) -> dict:
    """Score the ``variants`` of ``predict`` (``(states, variant, fold) -> (test predictions, record)``) on ``spec``
    (default: :data:`VARIANTS`, and the new fit without copies for a config with training copies)."""
    start = time.perf_counter()
    run = multi_corpus_run(spec, scratch_dir("ser_hf_corpus_balance_"))
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress=False)
    data = MultiCorpusStates(
        run, dataset, method.settings, labels, np.asarray(method.features(dataset["audio"]), dtype=np.float64),
        [np.asarray(copy, dtype=np.float64) for copy in method.training_copies(dataset["audio"])],
        np.asarray(dataset["label"]), np.asarray(dataset["speaker"], dtype=object),
        np.asarray(dataset["corpus"], dtype=object))
    corpus_names = sorted(set(data.corpora.tolist()))
    shared = run_folds(run, dataset)
    assignments = [shared] + [speaker_folds(dataset, n_folds=len(shared), seed=seed) for seed in range(1, ASSIGNMENTS)]
    by_metric: dict[str, dict[str, list[float]]] = {}
    variants = variants or ((*VARIANTS, WITHOUT_COPIES) if data.copies else VARIANTS)
    choices = {variant: [] for variant in variants}
    for index, folds in enumerate(assignments):
        for variant in variants:
            predictions = []
            for fold in folds:
                predicted, record = predict(data, variant, fold)
                predictions.append(predicted)
                if index == 0:
                    choices[variant].append({"fold": fold.name, **record})
            tested = np.concatenate([fold.test for fold in folds])
            scores = _scores(data.classes[tested], np.concatenate(predictions), data.corpora[tested], corpus_names,
                             len(labels))
            for metric, value in scores.items():
                by_metric.setdefault(metric, {name: [] for name in variants})[variant].append(value)
        print(spec, f"assignment {index}:",
              {variant: {m: round(100 * v[variant][-1], 1) for m, v in by_metric.items()} for variant in variants},
              flush=True)
    return {"config": spec, "model": run.model.model_name_or_path, "corpora": corpus_names, "labels": labels,
            "clips": len(data.classes), "speakers": len(set(data.speakers.tolist())), "assignments": ASSIGNMENTS,
            "folds_per_assignment": len(shared), "inner_seed": data.settings.seed,
            "speed_factors": list(data.settings.speed_copies), "noise_snrs": list(data.settings.noise_copies),
            "fit": fit_name, "rows": {metric: variant_rows(values) for metric, values in by_metric.items()},
            "shared_folds_choices": choices, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "corpus_balance", run_config)
