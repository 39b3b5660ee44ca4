"""``ser-hf train`` and ``ser-hf cv``: run a recipe once, or on every speaker-grouped fold."""

from __future__ import annotations

import argparse
from pathlib import Path

from ser_hf.cli.licence import add_license_arguments, license_fields
from ser_hf.paths import display_path


def _keys_epilog() -> str:
    """Every ser_hf recipe key with its default and help text, by group (as HfArgumentParser would show)."""
    import dataclasses
    import textwrap

    from ser_hf.training.recipes import own_fields

    lines = ["keys (in the recipe as key: value, or on the command line as --key value):"]
    for group, fields in own_fields().items():
        lines.append(f"\n {group}:")
        for field in fields:
            default = field.default if field.default is not dataclasses.MISSING else None
            shown = f" (default: {default})" if default not in (None, "") else ""
            text = (field.metadata.get("help") or "").strip() + shown
            lines.append(textwrap.fill(text, width=100, initial_indent=f"  {field.name:28s} ",
                                       subsequent_indent=" " * 31))
    return "\n".join(lines)


def _with_keys_in_help(parser: argparse.ArgumentParser, example: str) -> None:
    """List the recipe keys in --help, computing them only when help is shown.

    The keys come from the training argument dataclasses, whose import (transformers' Trainer, peft) takes
    seconds; every other ``ser-hf`` command builds this parser too and must not pay for it.
    """
    format_help = parser.format_help

    def format_help_with_keys() -> str:
        parser.epilog = f"example: {example}\n\n{_keys_epilog()}"
        return format_help()

    parser.format_help = format_help_with_keys


def _add(subparsers, name: str, help_text: str, example: str, func) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _with_keys_in_help(parser, example)
    parser.usage = f"ser-hf {name} [RECIPE.yaml] [--key value ...]"
    # The recipe and its --key value overrides are parsed by HfArgumentParser, not here (see cli.main).
    parser.set_defaults(func=func, takes_overrides=True)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    train = _add(subparsers, "train", "train a model on a speaker-independent split and save the checkpoint",
                 "ser-hf train recipes/urdu/whisper-base-probe.yaml --output_dir outputs/urdu --license cc-by-nc-sa-4.0",
                 run_train)
    train.usage = "ser-hf train [RECIPE.yaml] [--license ID [--license-name ID --license-link URL]] [--key value ...]"
    add_license_arguments(train, "the model's licence as a Hub licence id (e.g. cc-by-nc-sa-4.0, apache-2.0, other), "
                                 "written into the model card's metadata and text; check the training corpora's "
                                 "licences")
    cv = _add(subparsers, "cv", "cross-validate a recipe on the corpus's speaker-grouped folds",
              "ser-hf cv recipes/urdu/whisper-base-probe.yaml --data_dir ../shared/data/urdu", run_cv)
    cv.usage = "ser-hf cv [RECIPE.yaml] [--leave-one-corpus-out] [--key value ...]"
    cv.description += (" Run again into the same output_dir (after a crash, Ctrl-C, a killed job), the same command "
                       "resumes: the folds that had finished are kept and only the others run, as long as the "
                       "settings, the code and the clips are the same (anything else starts the CV afresh; delete "
                       "OUTPUT_DIR/cv to force it).")
    cv.add_argument("--leave-one-corpus-out", "--leave_one_corpus_out", action="store_true",
                    help="several corpora (--corpus urdu,ravdess --data_dir A,B): after the in-corpus folds, also "
                         "train on all corpora but one and test on the one left out, one row per corpus "
                         "(reports in OUTPUT_DIR/leave_one_corpus_out)")
    search = _add(subparsers, "search",
                  "search fine-tuning hyperparameters (optuna) on a validation split disjoint from the test speakers",
                  "ser-hf search recipes/urdu/wav2vec2-base-finetune.yaml --trials 20", run_search)
    search.usage = "ser-hf search [RECIPE.yaml] [--trials N] [--key value ...]"
    search.add_argument("--trials", type=_trials, default=20, metavar="N",
                        help="optuna trials in all, each a fine-tuning run scored by the recipe's "
                             "metric_for_best_model on the validation speakers (default 20: validation UA); the "
                             "search space is learning rate, warmup, weight decay and batch size. Finished trials "
                             "are kept in OUTPUT_DIR/hp_search/trials.journal: a rerun of the same search runs only "
                             "the trials still missing, and a trial that runs out of memory is recorded as failed")


def _split_recipe(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """A leading argument that is not a flag is the recipe; the rest are overrides."""
    extra = list(args.overrides)
    if extra and not extra[0].startswith("-"):
        return extra[0], extra[1:]
    return None, extra


def run_train(args: argparse.Namespace) -> int:
    from ser_hf.cards import update_model_card
    from ser_hf.training.experiment import is_main_process, train
    from ser_hf.training.recipes import parse_run

    terms = license_fields(args)  # checked before the training, not after
    recipe, overrides = _split_recipe(args)
    result = train(parse_run(recipe, overrides))
    if terms and is_main_process():
        update_model_card(result.checkpoint, **terms)
    if result.report is not None:
        print(result.report.format_table())
    print(f"checkpoint: {result.checkpoint}  (load it with transformers.pipeline('audio-classification', model=...))")
    return 0


def run_cv(args: argparse.Namespace) -> int:
    from ser_hf.evaluation import folds_to_markdown
    from ser_hf.evaluation.folds import corpus_rows_markdown, resumed_note
    from ser_hf.training.experiment import (
        check_leave_one_corpus_out_folder,
        cross_validate,
        leave_one_corpus_out,
        leave_one_corpus_out_markdown,
    )
    from ser_hf.training.recipes import parse_run

    recipe, overrides = _split_recipe(args)
    run = parse_run(recipe, overrides)
    if args.leave_one_corpus_out:
        check_leave_one_corpus_out_folder(run)  # before the in-corpus CV's work, not after it
    result = cross_validate(run)
    print(folds_to_markdown(result.aggregate))
    print(result.pooled.format_table())
    if result.per_corpus:
        print(corpus_rows_markdown(result.per_corpus, "In-corpus UA per corpus", "Pooled out-of-fold, per corpus."))
    if result.test_time_copies is not None:
        from ser_hf.evaluation.folds import TEST_TIME_COPIES_NOTE, TEST_TIME_COPIES_TITLE

        print(f"{TEST_TIME_COPIES_TITLE}: {TEST_TIME_COPIES_NOTE}")
        print(result.test_time_copies.format_table())
    print(f"reports: {display_path(Path(run.training.output_dir) / 'cv')}")
    if result.resumed_folds:
        print(resumed_note(result.resumed_folds))
    if args.leave_one_corpus_out:
        reports = leave_one_corpus_out(run)
        print(leave_one_corpus_out_markdown(reports))
        print(f"reports: {display_path(Path(run.training.output_dir) / 'leave_one_corpus_out')}")
        if reports.resumed:
            print(resumed_note(reports.resumed))
    return 0


def _trials(text: str) -> int:
    """--trials, checked before the corpus and the model load."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of trials >= 1, got {text!r}; e.g. --trials 20")
    return value


def run_search(args: argparse.Namespace) -> int:
    import json

    from ser_hf.training.recipes import parse_run
    from ser_hf.training.search import hyperparameter_search

    recipe, overrides = _split_recipe(args)
    run = parse_run(recipe, overrides)
    best = hyperparameter_search(run, n_trials=args.trials)
    record = json.loads((Path(run.training.output_dir) / "hp_search.json").read_text())
    print(json.dumps({"objective": record["objective"], "value": best.objective, "hyperparameters": best.hyperparameters,
                      "trials": record["trials"]}))
    print(f"record: {display_path(Path(run.training.output_dir) / 'hp_search.json')}  (train with the best values as --key value overrides)")
    return 0
