"""``ser-hf data ...``: look at, download and split corpora."""

from __future__ import annotations

import argparse
import json
import logging

from ser_hf.corpora import CORPORA, download_corpus, load_corpus
from ser_hf.corpora.split_names import marked_test_rows
from ser_hf.corpora.summary import corpus_summary, format_summary
from ser_hf.data_arguments import DataArguments
from ser_hf.errors import CorpusError, SERError, SplitError
from ser_hf.paths import display_path, printable
from ser_hf.splits import class_counts, corpus_folds, leave_one_speaker_out, speaker_folds

logger = logging.getLogger(__name__)

CORPUS_HELP = f"corpus name: {', '.join(CORPORA)}"
EMOTIONS_HELP = "keep only these emotions: '4class', 'basic7', 'ravdess8' or a list like 'neutral,happy,sad,angry'"
#: ``ser-hf train``'s settings of its holdout split -> the ``data split`` flag that sets each (train's flag names; every
#: ser-hf flag is also taken with _), for errors to name.
HOLDOUT_FLAGS = {"fold_seed": "--seed", "test_size": "--test-size", "validation_size": "--validation-size"}


def add_corpus_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--corpus, --data-dir, --emotions, --speaker-pattern: shared by every command that loads a corpus.

    ``required=False`` where ``--dataset_name`` (:func:`add_dataset_arguments`) may stand in for ``--corpus``.
    """
    parser.add_argument("--corpus", required=required, choices=sorted(CORPORA), metavar="NAME",
                        help=CORPUS_HELP + ("" if required else " (or --dataset_name)"))
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder holding the corpus (or a manifest file); synthetic needs none")
    parser.add_argument("--emotions", default=None, metavar="SET", help=EMOTIONS_HELP)
    parser.add_argument("--speaker-pattern", default=None, metavar="REGEX",
                        help="for --corpus folder: regex whose first group is the speaker id in a file name")


def add_dataset_arguments(parser: argparse.ArgumentParser,
                          columns: tuple[str, ...] = ("audio", "label", "speaker", "gender"),
                          instead_of: str = "a corpus") -> None:
    """--dataset_name and the flags that name its split and ``columns`` (as `ser-hf train` and `cv` take them)."""
    group = parser.add_argument_group(f"a Hugging Face `datasets` dataset instead of {instead_of}")
    group.add_argument("--dataset_name", metavar="NAME", default=None,
                       help="a Hub id, a save_to_disk folder, a folder (or file) of parquet/arrow tables, or an "
                            "audiofolder directory; audio cells (embedded bytes or paths) are decoded by ser_hf")
    group.add_argument("--dataset_config_name", metavar="CONFIG", default=None, help="the dataset's configuration")
    group.add_argument("--eval_split_name", metavar="SPLIT", default="validation",
                       help="the dataset split to use (default validation, as transformers' examples)")
    for role in ("audio", "label", "speaker", "gender"):
        # Flags a command does not show still get their default, so dataset_source reads every one.
        group.add_argument(f"--{role}_column_name", metavar="COLUMN", default=role,
                           help=f"the column holding the {role} (default {role})" if role in columns else argparse.SUPPRESS)


def dataset_source(args: argparse.Namespace):
    """The :class:`~ser_hf.corpora.hf_dataset.DatasetSource` that :func:`add_dataset_arguments`' flags describe."""
    from ser_hf.corpora.hf_dataset import DatasetSource

    return DatasetSource(args.dataset_name, args.dataset_config_name, args.audio_column_name, args.label_column_name,
                         args.speaker_column_name, args.gender_column_name)


def add_skip_bad_files_argument(parser: argparse.ArgumentParser) -> None:
    """--skip-bad-files: the lenient loading of ``load_corpus(strict=False)`` for commands that load a corpus."""
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unusable audio files (unreadable, empty, NaN, too short or too long), each one "
                             "named in a warning, instead of stopping at the first (ser-hf train: --strict false)")


def add_label_map_argument(parser: argparse.ArgumentParser) -> None:
    """--label-map: the raw-label renames of ``ser-hf train --label_map``, for commands that only load a corpus."""
    parser.add_argument("--label-map", default=None, metavar="FROM=TO,...",
                        help="map labels of your folder or manifest corpus onto emotions as they load, e.g. "
                             "'glee=happy,0=neutral' (as ser-hf train --label_map)")


def label_map_option(text: str | None) -> dict[str, str] | None:
    """``--label-map`` text parsed as ``ser-hf train`` parses its ``--label_map`` (``None`` when unset).

    Raises:
        SERError: an entry that is not ``from=to``, a label mapped twice, or a target that is not an emotion.
    """
    from ser_hf.data_arguments import DataArguments

    # One parser for the syntax: the loader's label_map means the same here as in a training run.
    return DataArguments(label_map=text).label_map_dict() if text else None


def _check_speaker_pattern(args: argparse.Namespace) -> None:
    """Refuse --speaker-pattern for a corpus that does not take it, before anything loads."""
    from ser_hf.corpora import get_corpus

    corpus = getattr(args, "corpus", None)
    if corpus is not None and get_corpus(corpus).takes("speaker_pattern"):
        return
    if corpus is None:
        where = "a --dataset_name dataset takes each clip's speaker from its --speaker_column_name column"
    elif corpus == "manifest":
        where = "a manifest takes each clip's speaker from its 'speaker' column (fill that column instead)"
    else:
        where = f"the {corpus!r} corpus takes speakers from its own file naming"
    raise CorpusError(f"--speaker-pattern '{args.speaker_pattern}' is only for --corpus folder (a regex over the "
                      f"file names), but {where}. Remove --speaker-pattern.")


def corpus_options(args: argparse.Namespace) -> dict:
    """The load_corpus options the shared corpus arguments ask for.

    Raises:
        CorpusError: ``--speaker-pattern`` for a corpus that has speakers of its own.
    """
    if args.speaker_pattern:
        _check_speaker_pattern(args)
    options = {"speaker_pattern": args.speaker_pattern} if args.speaker_pattern else {}
    if getattr(args, "skip_bad_files", False):
        options["strict"] = False
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect, download and split emotion corpora",
                                 description="Inspect, download and split emotion corpora.")
    commands = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list the supported corpora")
    listing.set_defaults(func=run_list)

    summary = commands.add_parser(
        "summary", help="counts per emotion and speaker, hours, durations, unreadable files",
        description="Summarise a corpus. Unreadable files are listed, never hidden.",
        epilog="example: ser-hf data summary --corpus urdu --data-dir ../shared/data/urdu --json",
    )
    add_corpus_arguments(summary)
    add_label_map_argument(summary)
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    summary.set_defaults(func=run_summary)

    download = commands.add_parser(
        "download", help="download a freely available corpus (urdu, ravdess, emodb)",
        epilog="example: ser-hf data download --corpus ravdess --out ~/corpora/ravdess",
    )
    download.add_argument("--corpus", required=True, choices=sorted(CORPORA), metavar="NAME", help=CORPUS_HELP)
    download.add_argument("--out", required=True, metavar="DIR", help="folder to download and unpack into")
    download.set_defaults(func=run_download)

    split = commands.add_parser(
        "split", help="show speaker-independent folds and their class balance",
        description="Make speaker-independent folds and print clips per emotion for each part.",
        epilog="example: ser-hf data split --corpus urdu --data-dir ../shared/data/urdu --folds 5",
    )
    add_corpus_arguments(split)
    add_label_map_argument(split)
    add_skip_bad_files_argument(split)
    how = split.add_mutually_exclusive_group()
    how.add_argument("--folds", type=int, metavar="K", help="K folds grouped by speaker (default: the corpus protocol)")
    how.add_argument("--loso", action="store_true", help="leave one speaker out")
    how.add_argument("--holdout", action="store_true",
                     help="the train/validation/test split ser-hf train makes with --fold_seed, --test_size and "
                          "--validation_size as --seed, --test-size and --validation-size here (train's own --seed "
                          "seeds training, not the split): a manifest's split column, where it marks test rows, gives "
                          "the test part")
    split.add_argument("--seed", "--fold-seed", dest="seed", type=int, default=DataArguments.fold_seed,
                       help=f"seed of the speaker-to-fold assignment: ser-hf train's and cv's --fold_seed, not their "
                            f"--seed, which seeds training (an integer 0 .. 2**32 - 1, default "
                            f"{DataArguments.fold_seed})")
    _add_holdout_size_arguments(split)
    split.add_argument("--json", action="store_true", help="print the folds' test speakers and counts as JSON")
    split.set_defaults(func=run_split)


def _add_holdout_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--test-size and --validation-size: ``ser-hf train``'s flags of the same names and defaults."""
    group = parser.add_argument_group("sizes of the --holdout split, as ser-hf train takes them")
    # None: unset, so that DataArguments gives train's default and a size passed to folds can be refused
    group.add_argument(HOLDOUT_FLAGS["test_size"], type=float, default=None, metavar="SHARE",
                       help=f"share of the clips (by whole speakers) held out for the test report, at most 0.5, "
                            f"unless a manifest's split column marks test rows (default {DataArguments.test_size})")
    group.add_argument(HOLDOUT_FLAGS["validation_size"], type=float, default=None, metavar="SHARE",
                       help=f"share of the clips (by whole speakers) held out of the training rows for model "
                            f"selection and early stopping, at most half of what the test part leaves (default "
                            f"{DataArguments.validation_size})")


def _holdout_arguments(args: argparse.Namespace) -> DataArguments:
    """The data arguments of a ``ser-hf train`` run that splits as ``data split`` asks, for
    :func:`~ser_hf.training.run_data.train_split` with ``--holdout``; unset sizes are train's defaults. Made in
    every mode, so that folds check ``--seed`` as train checks ``--fold_seed``.

    Raises:
        SplitError: a size or seed outside what ``ser-hf train`` accepts, naming the flag.
    """
    sizes = {name: getattr(args, name) for name in ("test_size", "validation_size") if getattr(args, name) is not None}
    try:
        return DataArguments(corpus=args.corpus, data_dir=args.data_dir, fold_seed=args.seed, **sizes)
    except SERError as err:
        name = getattr(err, "field", None)
        if name not in HOLDOUT_FLAGS:
            raise
        train_name = ", ser-hf train's --fold_seed" if name == "fold_seed" else ""
        raise SplitError(f"{err} Set in the command line ({HOLDOUT_FLAGS[name]}{train_name}): change it there.") from err


def _check_sizes_are_for_holdout(args: argparse.Namespace) -> None:
    """Refuse --test-size or --validation-size for folds, which would not use them, before anything loads."""
    given = [HOLDOUT_FLAGS[name] for name in ("test_size", "validation_size") if getattr(args, name) is not None]
    if given and not args.holdout:
        flags = " and ".join(given)
        raise SplitError(f"{flags} {'are' if len(given) > 1 else 'is'} only for --holdout (the sizes of ser-hf train's "
                         f"split), but these are speaker folds: each tests its own speakers and none holds a "
                         f"validation part out. Add --holdout to see ser-hf train's split, or drop {flags}.")


def run_list(args: argparse.Namespace) -> int:
    for name, corpus in CORPORA.items():
        downloadable = "downloadable" if corpus.download else ""
        print(f"{name:10s} {downloadable:13s} {corpus.description}")
        facts = ([f"language {corpus.language}"] if corpus.language else []) + (
            [f"licence: {corpus.licence}"] if corpus.licence else [])
        if facts:
            print(f"{'':24s} {'; '.join(facts)}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    summary = corpus_summary(args.corpus, args.data_dir, emotions=args.emotions,
                             label_map=label_map_option(args.label_map), **corpus_options(args))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def run_download(args: argparse.Namespace) -> int:
    print(f"{args.corpus} is in {display_path(download_corpus(args.corpus, args.out))}")
    return 0


def _splits(args: argparse.Namespace, dataset, holdout: DataArguments | None):
    """The parts ``data split`` shows: with ``holdout``, what ``ser-hf train`` makes of those data arguments (one
    function makes both); speaker folds ignore a manifest's split column, as ``ser-hf cv`` does, and say so."""
    if holdout is not None:
        from ser_hf.training.run_data import train_split  # the trainer's imports take seconds: only --holdout waits

        return train_split(holdout, dataset, settings=HOLDOUT_FLAGS, test_size_given=args.test_size is not None)
    marked = marked_test_rows(dataset["split"]) if "split" in dataset.column_names else None
    if marked is not None and marked.size:
        logger.warning("the manifest's split column marks %d clips as test; these folds do not use it (nor does "
                       "ser-hf cv): every speaker is tested in turn. ser-hf train tests on those clips; --holdout "
                       "shows that split.", marked.size)
    if args.loso:
        return leave_one_speaker_out(dataset)
    if args.folds is not None:
        return speaker_folds(dataset, n_folds=args.folds, seed=args.seed)
    return corpus_folds(dataset, seed=args.seed)


def run_split(args: argparse.Namespace) -> int:
    if args.folds is not None and args.folds < 2:
        # 0 used to fall through to the default protocol, and a negative count was answered "choose fewer folds"
        raise SplitError(f"--folds must be an integer >= 2 (each fold tests speakers the others train on), got "
                         f"{args.folds}. Pass --folds 2 or more, or leave it out for the corpus protocol.")
    _check_sizes_are_for_holdout(args)
    arguments = _holdout_arguments(args)
    dataset = load_corpus(args.corpus, args.data_dir, emotions=args.emotions,
                          label_map=label_map_option(args.label_map), **corpus_options(args))
    splits = _splits(args, dataset, arguments if args.holdout else None)
    table = class_counts(dataset, splits)
    table.index = [printable(str(name)) for name in table.index]  # speaker_<id> folds: an id's ESC or line break
    if args.json:
        print(table.to_json(orient="index", indent=2))
    else:
        print(table.to_string())
    return 0
