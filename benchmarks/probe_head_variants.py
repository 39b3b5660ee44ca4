"""What was tried to lift the frozen probe, on the probe's own features and folds: nothing beat run-to-run noise.

Every variant trains the standard HF head (``ser_hf.training.probe.train_probe``: weighted layer sum,
projector, classifier; early stopping on speaker-disjoint validation UA) on the pooled states that
``mode: probe`` caches, over the folds ``ser-hf cv`` uses, and reports the pooled out-of-fold UA:

- ``standard, seed N``: the probe as shipped, three head seeds (how far UA moves by chance alone);
- ``refit on train+validation``: find the best epoch on validation, then retrain on training and
  validation speakers together for that many epochs;
- ``augmented copies``: add the pooled states of N augmented copies of every training clip (speed
  0.9/1.1, gain +-6 dB, noise at 15-30 dB SNR, each with probability 0.8; deterministic per clip and copy),
  with the same three head seeds.

    .venv/bin/python benchmarks/probe_head_variants.py --config ravdess:whisper-base:300 --copies 2
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import zlib

import numpy as np
from common import scratch_dir, write_result
from probe_accuracy import probe_run
from tqdm.auto import tqdm

from ser_hf.evaluation import EvaluationReport
from ser_hf.evaluation.folds import FoldResult, cross_validate_folds
from ser_hf.models.pooling import pool_batch
from ser_hf.splits import Fold, add_validation, corpus_folds
from ser_hf.training.data import Augmentation
from ser_hf.training.experiment import SAMPLING_RATE, make_method
from ser_hf.training.linear_probe import softmax
from ser_hf.training.probe import predict_logits, train_probe
from ser_hf.training.run_data import load_run_dataset

SEEDS = (0, 1, 2)
AUGMENTATION = Augmentation(speed_perturb=(0.9, 1.1), gain_db=(-6, 6), noise_snr_db=(15, 30), probability=0.8)


def augmented_features(method, paths: list[str], preprocessor, copy: int, batch_size: int = 8) -> np.ndarray:
    """Pooled states of one augmented copy of every clip (copy ``k`` of a clip always draws the same changes)."""
    rows = []
    for start in tqdm(range(0, len(paths), batch_size), desc=f"augmented copy {copy}", unit="batch"):
        waves = []
        for path in paths[start : start + batch_size]:
            rng = np.random.default_rng([copy, zlib.crc32(path.encode())])
            waves.append(AUGMENTATION(preprocessor(path), rng, AUGMENTATION.draw_speed(rng)))
        rows.append(pool_batch(method.model, method.feature_extractor, waves))
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ravdess:whisper-base:300", help="corpus[/emotions]:model:positions")
    parser.add_argument("--copies", type=int, default=2, help="augmented copies of each training clip")
    parser.add_argument("--name", default="probe_head_variants")
    args = parser.parse_args()
    run = probe_run(args.config, cache_dir=None, output_dir=scratch_dir("ser_hf_variants_"))
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress=True)
    features = method.features(dataset["audio"])
    copies = [augmented_features(method, list(dataset["audio"]), run.data.preprocessor(SAMPLING_RATE), k)
              for k in range(1, args.copies + 1)]
    classes = np.asarray(dataset["label"])
    folds = [add_validation(dataset, fold, run.data.validation_size, seed=run.data.fold_seed)
             for fold in corpus_folds(dataset, n_folds=run.data.num_folds, seed=run.data.fold_seed)]
    settings = method.settings

    def standard(seed):
        def fit(fold):
            return train_probe(features[fold.train], classes[fold.train], len(labels),
                               dataclasses.replace(settings, seed=seed), (features[fold.validation], classes[fold.validation]))
        return fit

    def refit(fold):
        found = standard(settings.seed)(fold)
        rows = np.concatenate([fold.train, fold.validation])
        return train_probe(features[rows], classes[rows], len(labels),
                           dataclasses.replace(settings, max_epochs=found.best_epoch))

    def augmented(seed):
        def fit(fold):
            train = np.concatenate([features[fold.train], *[copy[fold.train] for copy in copies]])
            return train_probe(train, np.tile(classes[fold.train], 1 + len(copies)), len(labels),
                               dataclasses.replace(settings, seed=seed),
                               (features[fold.validation], classes[fold.validation]))
        return fit

    variants = {**{f"standard, seed {seed}": standard(seed) for seed in SEEDS},
                "refit on train+validation": refit,
                **{f"augmented copies ({len(copies)}), seed {seed}": augmented(seed) for seed in SEEDS}}
    speakers = np.asarray(dataset["speaker"], dtype=object)

    def scored(fit):
        def fit_fold(fold: Fold) -> FoldResult:
            probabilities = softmax(predict_logits(fit(fold), features[fold.test]).astype(np.float64))
            report = EvaluationReport.from_predictions(classes[fold.test], probabilities=probabilities,
                                                       label_names=labels, groups=speakers[fold.test], split=fold.name)
            return FoldResult(report, probabilities)
        return fit_fold

    results = {"config": args.config, "augmentation": dataclasses.asdict(AUGMENTATION), "variants": {}}
    for name, fit in variants.items():
        start = time.perf_counter()
        result = cross_validate_folds(folds, scored(fit), references=classes, speakers=speakers, label_names=labels,
                                      model=run.model.model_name_or_path, corpus=run.data.corpus)
        results["variants"][name] = {"pooled_unweighted_accuracy": float(result.pooled.unweighted_accuracy),
                                     "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: pooled UA {result.pooled.unweighted_accuracy:.4f}", flush=True)
        write_result(args.name, results)


if __name__ == "__main__":
    main()
