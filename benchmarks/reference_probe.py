"""The reference protocol on ser_hf's folds: logistic regression on every layer's concatenated mean states.

The accuracy the project measures itself against (frozen Whisper, "logistic regression on all layers'
mean states") is not a model ``pipeline()`` can load: it gives every layer its own weights, where the
standard HF head (what ``mode: probe`` trains and saves) scores one softmax-weighted sum of the layers.
This script scores that reference on the very features and speaker-grouped folds of
``probe_accuracy.py``, so the README can say what the checkpoint format costs:

- features: the probe's cached per-layer mean states (``ProbeMethod.features``), standardised per
  dimension on the training speakers;
- folds: ``corpus_folds`` (URDU 5 speaker-grouped folds, RAVDESS 6 folds of 4 actors); the model trains
  on all non-test speakers (it needs no early stopping);
- the L2 strength ``C`` is chosen per fold by UA (balanced accuracy) in a speaker-grouped inner CV on
  the training speakers, never on the test fold. That inner CV is flat on these corpora, so states that differ
  only by float32 rounding (extracted on another machine) can make it choose another ``C`` and move a row by up
  to a point; ``probe_vs_reference.py`` measures it, and its paired interval of the probe's difference to this.

    .venv/bin/python benchmarks/reference_probe.py --configs urdu:whisper-tiny.en:0 ravdess:whisper-base:300
"""

from __future__ import annotations

import time

import numpy as np
from common import cv_scores, run_configs, scratch_dir
from probe_accuracy import probe_run
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ser_hf.evaluation import EvaluationReport
from ser_hf.evaluation.folds import FoldResult, cross_validate_folds
from ser_hf.splits import Fold, corpus_folds
from ser_hf.training.experiment import CVResult, make_method
from ser_hf.training.run_data import load_run_dataset

C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)


def fit_reference(features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, seed: int = 0):
    """Scaler + logistic regression on flattened ``(clips, layers, hidden)`` states, C by inner speaker CV."""
    inner = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=seed).split(features, labels, speakers)
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=list(C_GRID), cv=list(inner), scoring="balanced_accuracy", class_weight="balanced", max_iter=3000,
        n_jobs=2))
    return model.fit(features.reshape(len(features), -1), labels)


def run_config(spec: str) -> dict:
    run = probe_run(spec, cache_dir=None, output_dir=scratch_dir("ser_hf_reference_"))
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    start = time.perf_counter()
    features = make_method(run, labels, progress=False).features(dataset["audio"])
    classes, speakers = np.asarray(dataset["label"]), np.asarray(dataset["speaker"])
    name = run.model.model_name_or_path

    def fit_fold(fold: Fold) -> FoldResult:
        train = np.concatenate([fold.train, fold.validation])
        model = fit_reference(features[train], classes[train], speakers[train], seed=run.data.fold_seed)
        probabilities = model.predict_proba(features[fold.test].reshape(len(fold.test), -1))
        report = EvaluationReport.from_predictions(
            classes[fold.test], probabilities=probabilities, label_names=labels, groups=speakers[fold.test],
            model=name, corpus=run.data.corpus, split=fold.name)
        return FoldResult(report, probabilities, float(model[-1].C_[0]))

    result = cross_validate_folds(corpus_folds(dataset, n_folds=run.data.num_folds, seed=run.data.fold_seed),
                                  fit_fold, references=classes, speakers=speakers, label_names=labels, model=name,
                                  corpus=run.data.corpus)
    print(f"{result.pooled.unweighted_accuracy:.4f}", spec, f"{time.perf_counter() - start:.1f} s", flush=True)
    corpus, model, positions = spec.split(":")
    cut = "30 s padding" if positions == "0" else f"{int(positions) // 50} s input"
    return {"config": None, "corpus": corpus, "spec": spec,
            "system": f"{model}, reference: logistic regression on all layers' states (not a checkpoint), {cut}",
            "chosen_C": [fold.fitted for fold in result.folds],
            "seconds": round(time.perf_counter() - start, 1), "folds": len(result.folds),
            **cv_scores(CVResult(result.reports, result.aggregate, result.pooled))}


def main() -> None:
    run_configs(__doc__.splitlines()[0], "reference_probe", run_config, key="spec")


if __name__ == "__main__":
    main()
