"""``ser-hf evaluate``: score a saved checkpoint on a corpus, its own or another one (cross-corpus)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ser_hf.cli.data import (
    add_corpus_arguments,
    add_dataset_arguments,
    add_skip_bad_files_argument,
    corpus_options,
    dataset_source,
)
from ser_hf.cli.numbers import check_flags
from ser_hf.ranges import COUNT, FOLDS, SEED, Range, check_value

#: What --split test takes for --test-size, as ser_hf.evaluation.corpus_eval.select_split checks it (0 would leave no
#: test part, 1 no speakers to split from).
TEST_SHARE = Range(0, 1, low_open=True, high_open=True, noun="a share")

DESCRIPTION = """\
Evaluate a saved checkpoint on a corpus and write report.json, report.md, confusion_matrix.png and
per_class.png (UA, WA, macro-F1 with bootstrap intervals that resample whole speakers).

The corpus's labels are matched to the model's classes by canonical emotion name. Corpus labels with
no model class (e.g. RAVDESS 'calm' for a 4-class model) are counted and reported as unmapped, never
scored silently; --label-map sends them to a model class instead. Model classes the corpus lacks keep
their column in the confusion matrix and are left out of UA. For --corpus folder or manifest, an entry whose
key is no emotion name (your own label, e.g. 'glee=happy' or '0=neutral') maps that raw label onto an emotion
as the corpus loads, as ser-hf train --label_map does.

--split chooses which speakers are scored, always whole speakers:
  all      every clip (default). Use it for cross-corpus evaluation.
  test     the test part of a speaker-independent split: for a model `ser-hf train` trained on the same
           corpus (alone or among others: --corpus urdu,ravdess), exactly the speakers of it that it held out
           (read from MODEL/eval/report.json; refused when it held out none of them); otherwise
           ser_hf.splits.speaker_split with --test-size and --seed (stratified on the loaded emotions).
  fold:N   the test speakers of fold N (1-based) of the corpus protocol (ser_hf.splits.corpus_folds:
           RAVDESS's six 4-actor folds, IEMOCAP's sessions, else --num-folds folds grouped by speaker).
A model evaluated on the corpus it was trained on warns about every evaluated speaker it was trained on.

Instead of --corpus, --dataset_name scores a Hugging Face `datasets` dataset (its --eval_split_name split);
there --label-map (or --label_map) renames the dataset's raw labels as they are loaded, e.g. 'joy=happy,0=neutral'.

--perturb also scores the same clips degraded, one row per condition (UA, WA, macro-F1, UA 95% interval over
speakers, change in UA vs clean with a paired interval) in report.json ("robustness"), report.md and the
summary. Conditions are comma-separated, each KIND or KIND:NAME=VALUE[:NAME=VALUE]:
  noise:snr=DB                 white noise at that SNR (over the whole clip)
  babble:snr=DB[:talkers=6]    speech-shaped, syllabically modulated noise of several virtual talkers
  telephone[:low=300:high=3400]  through 8 kHz, band-passed to 300-3400 Hz
  gain:db=DB                   level change, no clipping
  reverb:rt60=S[:drr=0]        synthetic room: direct path + exponentially decaying noise tail
  resample:rate=HZ             down to HZ and back up
Random draws are seeded per condition and clip (--perturb-seed); predictions are cached per model, condition and
clip ($SER_HF_CACHE/perturbations), so a rerun computes nothing. --update-card adds the table to MODEL's card."""

EPILOG = """\
examples:
  ser-hf evaluate --model outputs/urdu --corpus urdu --data-dir ../shared/data/urdu --split test --out outputs/urdu/eval-test
  ser-hf evaluate --model outputs/rav4 --corpus urdu --data-dir ../shared/data/urdu --out outputs/rav4-on-urdu
  ser-hf evaluate --model emotion-whisper-base-ravdess8 --corpus ravdess --data-dir ../shared/data/ravdess --out outputs/eval
  ser-hf evaluate --model outputs/urdu --corpus ravdess --data-dir ../shared/data/ravdess \\
      --label-map calm=neutral --out outputs/urdu-on-ravdess
  ser-hf evaluate --model outputs/urdu --dataset_name my_parquet_dir --eval_split_name test \
      --label_column_name emotion --speaker_column_name actor --out outputs/urdu-on-mine
  ser-hf evaluate --model outputs/rav4 --corpus ravdess --data-dir ../shared/data/ravdess --split test \
      --perturb 'noise:snr=20,noise:snr=5,babble:snr=10,telephone,gain:db=-20,reverb:rt60=0.6,resample:rate=8000' \
      --out outputs/rav4-degraded"""


def _resamples(text: str) -> int:
    """--n-resamples, checked before the model and the corpus load (the bounds are explained with
    ser_hf.evaluation.bootstrap.MIN_RESAMPLES and MAX_RESAMPLES)."""
    from ser_hf.errors import EvaluationError
    from ser_hf.evaluation.bootstrap import check_resamples

    try:
        value = int(text)
    except ValueError:
        value = text  # refused below, with the range, as a float or a word is
    try:
        return check_resamples(value, "the value", zero_skips=True)  # argparse names --n-resamples before it
    except EvaluationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a saved model on a corpus (speaker-independent parts, cross-corpus label mapping)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="checkpoint directory (config.json, *.safetensors, preprocessor_config.json), ONNX "
                             "export, or a released model name (e.g. emotion-whisper-base; see `ser-hf models list`)")
    add_corpus_arguments(parser, required=False)
    add_dataset_arguments(parser)
    add_skip_bad_files_argument(parser)
    parser.add_argument("--split", default="all", metavar="SPLIT", help="all (default), test or fold:N (see above)")
    parser.add_argument("--label-map", "--label_map", default=None, metavar="FROM=TO,...",
                        help="send corpus labels to model classes, e.g. 'calm=neutral,surprised=happy'; for "
                             "--corpus folder/manifest, raw labels that are no emotion name ('glee=happy') are "
                             "mapped as the corpus loads")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.json, report.md and figures")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of --split test / fold:N, 0 to 2**32 - 1 (default 0, as ser-hf train)")
    parser.add_argument("--test-size", type=float, default=0.2,
                        help="share of clips, by whole speakers, in --split test (default 0.2, as ser-hf train)")
    parser.add_argument("--num-folds", type=int, default=5,
                        help="folds for --split fold:N on corpora without their own protocol (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8)")
    parser.add_argument("--n-resamples", type=_resamples, default=1000, metavar="N",
                        help="bootstrap resamples for the 95%% intervals, 10 to 100000 (fewer give no real interval, "
                             "more only cost time); 0 skips them (default 1000)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group = parser.add_argument_group("degraded audio")
    group.add_argument("--perturb", default=None, metavar="LIST",
                       help="also score the clips degraded, e.g. 'noise:snr=10,babble:snr=5,telephone,gain:db=-20,"
                            "reverb:rt60=0.6,resample:rate=8000' (see above)")
    group.add_argument("--perturb-seed", type=int, default=0,
                       help="seed of the noise and room draws, 0 to 2**32 - 1 (default 0)")
    group.add_argument("--perturb-cache-dir", default=None, metavar="DIR",
                       help="prediction cache (default $SER_HF_CACHE/perturbations or ~/.cache/ser_hf/perturbations)")
    group.add_argument("--update-card", action="store_true",
                       help="add the degraded-audio table to MODEL's model card (README.md beside the checkpoint)")
    parser.set_defaults(func=run_evaluate)


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse a seed, share, fold count or batch size before anything loads: the library refused a share, batch size
    or fold count only once the model and the corpus had loaded (the last two naming its argument, not the flag), and
    took any seed."""
    from ser_hf.errors import EvaluationError

    if args.split == "test":  # with the library's own message: only the test part reads it
        check_value("test_size (--test-size)", args.test_size, TEST_SHARE, EvaluationError)
    check_flags(("--seed", args.seed, SEED, "e.g. --seed 0"),
                ("--perturb-seed", args.perturb_seed, SEED, "e.g. --perturb-seed 0"),
                ("--num-folds", args.num_folds, FOLDS,
                 "each fold tests speakers the others train on, e.g. --num-folds 5"),
                ("--batch-size", args.batch_size, COUNT, "e.g. --batch-size 8"))


def run_evaluate(args: argparse.Namespace) -> int:
    from ser_hf.cards import add_to_model_card, card_data_file
    from ser_hf.errors import SERError
    from ser_hf.evaluation.corpus_eval import evaluate_checkpoint, format_notes
    from ser_hf.evaluation.label_mapping import parse_label_map
    from ser_hf.evaluation.robustness import PerturbationSettings
    from ser_hf.models.presets import resolve_model_argument
    from ser_hf.paths import display_path

    _check_numbers(args)
    label_map = parse_label_map(args.label_map)  # a syntax error fails before any model or audio is loaded
    perturb = PerturbationSettings.from_spec(args.perturb, args.perturb_seed, args.perturb_cache_dir)
    if args.update_card and not perturb.conditions:
        raise SERError("--update-card adds the degraded-audio table to the model card, so it needs --perturb LIST, "
                       "e.g. --perturb 'noise:snr=10,telephone'.")
    corpus, options = args.corpus, corpus_options(args)
    if (corpus is None) == (args.dataset_name is None):
        raise SERError("ser-hf evaluate needs either --corpus NAME (with --data-dir) or --dataset_name NAME, not "
                       f"{'both' if corpus else 'neither'}.")
    if corpus is None:
        # A dataset's raw labels are renamed as it loads; they then meet the model's classes by emotion name.
        corpus, options, label_map = dataset_source(args), {**options, "splits": [args.eval_split_name],
                                                            "label_map": label_map}, None
    model = resolve_model_argument(args.model)
    if args.update_card:
        card_data_file(model)  # a checkpoint without card data fails now, not after every clip is scored
    report = evaluate_checkpoint(
        model, corpus, args.data_dir, emotions=args.emotions, split=args.split,
        label_map=label_map,
        seed=args.seed, test_size=args.test_size, num_folds=args.num_folds, out_dir=args.out,
        corpus_options=options, batch_size=args.batch_size, n_resamples=args.n_resamples,
        progress=not args.no_progress, perturb=perturb,
    )
    print(report.format_table())
    notes = format_notes(report)
    if notes:
        print(notes)
    written = [name for name in ("report.json", "report.md", "confusion_matrix.png", "per_class.png", "speakers.png",
                                 "reliability.png") if (Path(args.out) / name).is_file()]
    print(f"reports: {display_path(args.out)} ({', '.join(written)})")
    if args.update_card:
        print(f"model card: {display_path(add_to_model_card(model, report))}")
    return 0
