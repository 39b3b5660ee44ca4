"""``ser-hf baseline``: cross-validate (and optionally save) the classic-feature and neural baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ser_hf._io import cache_root
from ser_hf.cli.data import add_corpus_arguments, add_skip_bad_files_argument, corpus_options
from ser_hf.cli.numbers import check_flags
from ser_hf.errors import SERError
from ser_hf.paths import display_path
from ser_hf.ranges import FOLDS, NON_NEGATIVE_INT, SEED, ranges_of

CLASSIFIER_NAMES = ("svm", "logreg", "forest", "mlp", "cnn", "lstm")

EPILOG = """\
examples:
  ser-hf baseline --corpus urdu --data-dir ../shared/data/urdu --classifier svm --out outputs/urdu-svm
  ser-hf baseline --corpus ravdess --data-dir ../shared/data/ravdess --emotions 4class --classifier logreg \\
      --out outputs/rav4-logreg --save-model
  ser-hf baseline --corpus urdu --data-dir ../shared/data/urdu --classifier cnn --out outputs/urdu-cnn --save-model

cnn (log-mel spectrogram CNN) and lstm (BiLSTM on MFCCs + deltas) are trained from scratch with torch on frame
sequences, early-stopped on held-out training speakers instead of a grid search; they save model.safetensors.

Reports go to OUT/cv/ (per fold, pooled out-of-fold with speaker-level 95% CIs, cv_summary.json/.md), the
same files as `ser-hf cv`. With --save-model the classifier is refit on every clip and saved to OUT
(model.skops, baseline_config.json, README.md model card); load it with ser_hf.baseline.model.load_baseline."""


def default_cache_dir() -> Path:
    """``$SER_HF_CACHE/features`` or ``~/.cache/ser_hf/features``: shared by every baseline run."""
    return cache_root() / "features"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline", help="cross-validate a baseline: classic features + SVM/logreg/forest/MLP, or a CNN/BiLSTM",
        description="Classic acoustic features (MFCC, pitch, spectral...) + a scikit-learn classifier, tuned by "
                    "speaker-grouped inner cross-validation, or a small CNN/BiLSTM trained from scratch on "
                    "log-mel/MFCC frames; scored on the corpus's speaker-independent folds.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_corpus_arguments(parser)
    add_skip_bad_files_argument(parser)
    parser.add_argument("--classifier", default="svm", choices=CLASSIFIER_NAMES, help="classifier (default svm)")
    parser.add_argument("--folds", type=int, default=5, metavar="K",
                        help="speaker-grouped folds for corpora without their own protocol (default 5; RAVDESS "
                             "always uses its 6 folds of 4 actors, IEMOCAP its sessions)")
    parser.add_argument("--inner-folds", type=int, default=None, metavar="K",
                        help="scikit-learn classifiers: speaker-grouped inner folds of the hyperparameter search "
                             "(default 3)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (reports in DIR/cv)")
    parser.add_argument("--save-model", action="store_true",
                        help="also refit on all clips and save the model with its card into DIR")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help=f"feature cache (default {default_cache_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and classifiers (default 0)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="scikit-learn classifiers: parallel grid-search fits (default 1; -1: every core). Each "
                             "is a process: numbers far beyond the available cores are refused")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="cnn/lstm: most training epochs (default 30; early stopping usually ends sooner)")
    parser.add_argument("--patience", type=int, default=None, metavar="N",
                        help="cnn/lstm: epochs without a better validation UA before stopping (default 6)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="feature extraction processes (default: all cores)")
    parser.set_defaults(func=run_baseline)


def _best_params_lines(result) -> list[str]:
    """Each fold's chosen hyperparameters, read off its report (a fold kept from an interrupted CV has no fit)."""
    neural = result.settings["baseline"].get("neural")
    score, key = (("validation UA", "validation_unweighted_accuracy") if neural
                  else ("inner UA", "inner_cv_unweighted_accuracy"))
    return [f"  {report.split}: {report.metadata['best_params']} ({score} {100 * report.metadata[key]:.1f})"
            for report in result.folds]


def _neural_config(args: argparse.Namespace):
    """The NeuralConfig the flags ask for (``None``: defaults); refuses the flags for scikit-learn classifiers."""
    overrides = {name: value for name, value in (("max_epochs", args.epochs), ("patience", args.patience))
                 if value is not None}
    searched = [flag for flag, value in (("--inner-folds", args.inner_folds), ("--jobs", args.jobs)) if value is not None]
    if args.classifier in ("cnn", "lstm") and searched:  # they were accepted and ignored
        raise SERError(f"{' and '.join(searched)} apply to the scikit-learn classifiers' hyperparameter search, not "
                       f"to --classifier {args.classifier} (it chooses its epoch on each fold's validation speakers); "
                       f"drop them.")
    if args.classifier not in ("cnn", "lstm"):
        if overrides:
            raise SERError(f"--epochs and --patience apply to --classifier cnn or lstm only, not {args.classifier!r}; "
                           f"drop them or choose a neural classifier.")
        return None
    from ser_hf.baseline.neural import NeuralConfig

    return NeuralConfig(architecture=args.classifier, **overrides)


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse a seed, worker, fold, epoch or job count no library takes, before the corpus loads (numpy and torch
    refused them with a traceback, after every clip's features were extracted; --jobs 100000 started that many
    processes; --folds 0 was refused once the corpus loaded, --epochs 0 as NeuralConfig.max_epochs)."""
    from ser_hf.baseline.classifiers import check_n_jobs  # scikit-learn: imported once a command runs, not for --help
    from ser_hf.baseline.networks import NeuralConfig

    check_n_jobs(args.jobs, "--jobs")
    neural = ranges_of(NeuralConfig)
    check_flags(("--seed", args.seed, SEED, "e.g. --seed 0"),
                ("--workers", args.workers, NON_NEGATIVE_INT, "0 or 1 extracts in this process; leave it out for all cores"),
                ("--folds", args.folds, FOLDS, "each fold tests speakers the others train on, e.g. --folds 5"),
                ("--inner-folds", args.inner_folds, FOLDS, "the search needs 2 or more inner folds, e.g. --inner-folds 3"),
                ("--epochs", args.epochs, neural["max_epochs"], f"e.g. --epochs {NeuralConfig.max_epochs}"),
                ("--patience", args.patience, neural["patience"], f"e.g. --patience {NeuralConfig.patience}"))


def run_baseline(args: argparse.Namespace) -> int:
    """Load the corpus, cross-validate, print the tables, write the reports and optionally save the model."""
    from ser_hf.baseline.crossval import cross_validate_baseline
    from ser_hf.baseline.folder import check_baseline_folder, one_baseline_at_a_time
    from ser_hf.baseline.model import train_baseline
    from ser_hf.corpora import load_corpus
    from ser_hf.corpora.base import warn_emotions_without_clips
    from ser_hf.evaluation import folds_to_markdown
    from ser_hf.evaluation.folds import resumed_note

    _check_numbers(args)
    neural_config = _neural_config(args)  # before the corpus loads: it refuses flags the classifier does not read
    cache = None if args.no_cache else Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    blocking = cache and next((p for p in (cache, *cache.absolute().parents) if p.exists() or p.is_symlink()), None)
    if blocking is not None and not blocking.is_dir():  # before the corpus loads, not after
        raise SERError(f"--cache-dir {display_path(cache)}: {display_path(blocking)} is not a folder; pass a folder "
                       f"for the feature cache (made if missing), or --no-cache.")
    dataset = load_corpus(args.corpus, args.data_dir, emotions=args.emotions, **corpus_options(args))
    if args.emotions is not None:
        warn_emotions_without_clips(dataset.features["label"].names, dataset["label"], f"{args.corpus} in {args.data_dir}")
    options = dict(cache_dir=cache, inner_folds=args.inner_folds or 3, seed=args.seed, n_jobs=args.jobs or 1,
                   num_workers=args.workers, neural_config=neural_config)
    out = check_baseline_folder(args.out, "--out")
    with one_baseline_at_a_time(out):  # the CV and the model saved after it, both into --out
        # With --save-model the new CV replaces the earlier model too, once the run is sure to start.
        result = cross_validate_baseline(dataset, args.classifier, n_folds=args.folds, out_dir=out,
                                         replace_model=args.save_model, **options)
        print(folds_to_markdown(result.aggregate))
        print(result.pooled.format_table())
        print("best hyperparameters per fold:", *_best_params_lines(result), sep="\n")
        print(f"reports: {display_path(Path(args.out) / 'cv')}")
        if result.resumed_folds:
            print(resumed_note(result.resumed_folds))
        if args.save_model:
            options.pop("cache_dir")
            model = train_baseline(dataset, args.classifier, features=result.features, **options)
            model.save(out, cv=result)
            print(f"model: {display_path(args.out)}  (best {model.best_params}; load it with "
                  f"ser_hf.baseline.model.load_baseline)")
    return 0
