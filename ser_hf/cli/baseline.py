"""``ser-hf baseline``: cross-validate (and optionally save) the classic-feature scikit-learn baseline."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ser_hf.cli.data import add_corpus_arguments, add_skip_bad_files_argument, corpus_options

CLASSIFIER_NAMES = ("svm", "logreg", "forest", "mlp")

EPILOG = """\
examples:
  ser-hf baseline --corpus urdu --data-dir ../shared/data/urdu --classifier svm --out outputs/urdu-svm
  ser-hf baseline --corpus ravdess --data-dir ../shared/data/ravdess --emotions 4class --classifier logreg \\
      --out outputs/rav4-logreg --save-model

Reports go to OUT/cv/ (per fold, pooled out-of-fold with speaker-level 95% CIs, cv_summary.json/.md), the
same files as `ser-hf cv`. With --save-model the classifier is refit on every clip and saved to OUT
(model.skops, baseline_config.json, README.md model card); load it with ser_hf.baseline.persistence.load_baseline."""


def default_cache_dir() -> Path:
    """``$SER_HF_CACHE/features`` or ``~/.cache/ser_hf/features``: shared by every baseline run."""
    return Path(os.environ.get("SER_HF_CACHE", Path.home() / ".cache" / "ser_hf")) / "features"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline", help="cross-validate a classic-feature scikit-learn baseline (SVM, logreg, forest, MLP)",
        description="Classic acoustic features (MFCC, pitch, spectral...) + a scikit-learn classifier, tuned by "
                    "speaker-grouped inner cross-validation and scored on the corpus's speaker-independent folds.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_corpus_arguments(parser)
    add_skip_bad_files_argument(parser)
    parser.add_argument("--classifier", default="svm", choices=CLASSIFIER_NAMES, help="classifier (default svm)")
    parser.add_argument("--folds", type=int, default=5, metavar="K",
                        help="speaker-grouped folds for corpora without their own protocol (default 5; RAVDESS "
                             "always uses its 6 folds of 4 actors, IEMOCAP its sessions)")
    parser.add_argument("--inner-folds", type=int, default=3, metavar="K",
                        help="speaker-grouped inner folds of the hyperparameter search (default 3)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (reports in DIR/cv)")
    parser.add_argument("--save-model", action="store_true",
                        help="also refit on all clips and save the model with its card into DIR")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help=f"feature cache (default {default_cache_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and classifiers (default 0)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel grid-search fits (default 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="feature extraction processes (default: all cores)")
    parser.set_defaults(func=run_baseline)


def _best_params_lines(result) -> list[str]:
    return [f"  {report.split}: {fit.best_params} (inner UA {100 * fit.inner_score:.1f})"
            for report, fit in zip(result.folds, result.fits)]


def run_baseline(args: argparse.Namespace) -> int:
    """Load the corpus, cross-validate, print the tables, write the reports and optionally save the model."""
    from ser_hf.baseline.crossval import cross_validate_baseline
    from ser_hf.baseline.persistence import train_baseline
    from ser_hf.corpora import load_corpus
    from ser_hf.evaluation import folds_to_markdown

    dataset = load_corpus(args.corpus, args.data_dir, emotions=args.emotions, **corpus_options(args))
    cache = None if args.no_cache else Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    options = dict(cache_dir=cache, inner_folds=args.inner_folds, seed=args.seed, n_jobs=args.jobs,
                   num_workers=args.workers)
    result = cross_validate_baseline(dataset, args.classifier, n_folds=args.folds, out_dir=args.out, **options)
    print(folds_to_markdown(result.aggregate))
    print(result.pooled.format_table())
    print("best hyperparameters per fold:", *_best_params_lines(result), sep="\n")
    print(f"reports: {Path(args.out) / 'cv'}")
    if args.save_model:
        options.pop("cache_dir")
        model = train_baseline(dataset, args.classifier, features=result.features, **options)
        model.save(args.out, cv=result)
        print(f"model: {args.out}  (best {model.best_params}; load it with ser_hf.baseline.persistence.load_baseline)")
    return 0
