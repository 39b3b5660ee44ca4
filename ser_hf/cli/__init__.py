"""The ``ser-hf`` console script: a thin layer that parses arguments and calls library functions.

Each command group lives in its own module exposing ``register(subparsers)``; the module adds its
parser(s) with a one-line ``help`` and sets ``func`` to a function taking the parsed namespace and
returning an exit code. Commands that set ``takes_overrides=True`` receive the arguments argparse
does not know in ``args.overrides`` (recipes parse them with ``HfArgumentParser``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ser_hf import __version__
from ser_hf.cli.output import console, verbosity
from ser_hf.errors import SERError
from ser_hf.paths import printable
from ser_hf.ranges import NEGATIVE_NUMBER, take_negative_numbers

# Modules under ser_hf.cli, in the order their commands appear in `ser-hf --help`.
COMMAND_MODULES = ("demo", "data", "models", "train", "evaluate", "predict", "serve", "export", "push", "baseline")

DESCRIPTION = """\
Speech emotion recognition with pretrained speech transformers, on the Hugging Face stack.

Start with `ser-hf demo` (offline, a few minutes on a CPU), then look at a real corpus with
`ser-hf data summary --corpus urdu --data-dir PATH`. Every command has its own --help with examples."""

CONVENTIONS = """conventions:
  Every long flag may be spelt with - or _ (--data-dir or --data_dir); --help shows the - form.
  -q/--quiet and -v/--verbose go before or after the command. Progress bars show on a terminal only.

exit status:
  0    done
  1    the job finished but some inputs failed (ser-hf predict --fail-on-error)
  2    usage or input error (the message says what was expected and how to fix it)
  130  interrupted (Ctrl-C); resumable jobs continue where they stopped when rerun"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser-hf", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ser-hf {__version__}")
    _add_talk_flags(parser, default=False)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ser_hf.cli.{name}").register(subparsers)
    for command in _leaf_parsers(subparsers):
        _add_talk_flags(command, default=argparse.SUPPRESS)  # also after the command: ser-hf predict ... -q
    parser.epilog = ("all commands:\n" + "\n".join(f"  {name:24s} {purpose}" for name, purpose in _commands(subparsers))
                     + "\n\n" + CONVENTIONS)
    _both_spellings(parser)
    take_negative_numbers(parser)
    return parser


def _add_talk_flags(parser: argparse.ArgumentParser, default) -> None:
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", default=default,
                      help="only warnings and errors; no progress bars")
    talk.add_argument("-v", "--verbose", action="store_true", default=default,
                      help="debug messages, and everything the libraries log (transformers load reports, ...)")


def _leaf_parsers(subparsers: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    leaves = []
    for sub in subparsers.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += _leaf_parsers(nested[0]) if nested else [sub]
    return leaves


def _both_spellings(parser: argparse.ArgumentParser) -> None:
    """Accept every long flag with - or _ between words; help shows the - form only.

    Recipe keys are spelt with _ (they are dataclass fields, as in transformers' examples) and the other
    flags with -, so users mix them up; one spelling in help and both accepted ends that.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _both_spellings(sub)
            continue
        spellings = [flag for flag in action.option_strings if flag.startswith("--")]
        if not spellings:
            continue
        shown = [flag for flag in action.option_strings if not flag.startswith("--")]
        for flag in spellings:
            dashed = "--" + flag[2:].replace("_", "-")
            if dashed not in shown:
                shown.append(dashed)
            for alias in (dashed, "--" + flag[2:].replace("-", "_")):
                parser._option_string_actions.setdefault(alias, action)
        action.option_strings = shown


def _commands(subparsers: argparse._SubParsersAction, prefix: str = "") -> list[tuple[str, str]]:
    """(full command, one-line purpose) for every command, nested groups included."""
    purposes = {action.dest: action.help for action in subparsers._choices_actions}
    rows = []
    for name, sub in subparsers.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            rows += _commands(nested[0], f"{prefix}{name} ")
        else:
            rows.append((f"{prefix}{name}", purposes.get(name) or ""))
    return rows


def _switches(parser: argparse.ArgumentParser) -> set[str]:
    """The flags that take no value (``-v``, ``--force``...), in the parser and every sub-command."""
    flags = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _switches(sub)
        elif action.nargs == 0:
            flags.update(action.option_strings)
    return flags


def empty_argument(argv: list[str], switches: set[str] = frozenset()) -> str | None:
    """The argument whose value is an empty string (``--out ""``, ``--out=``, ``""`` as an input), if any.

    No ser-hf argument means anything when empty, and to the path functions "" is the current folder: a shell
    variable that expanded to nothing would make ``ser-hf predict $FILES`` score the whole folder, or ``ser-hf cv
    $RECIPE`` run the defaults. ``switches`` (flags that take no value) are not what an empty token after them is for.
    """
    for index, token in enumerate(argv):
        if token == "":
            before = argv[index - 1] if index else ""
            takes_value = (before.startswith("-") and not NEGATIVE_NUMBER.match(before) and "=" not in before
                           and before not in switches)  # a value such as -40 is no flag
            return f"argument {before}" if takes_value else "an input argument"
        if token.startswith("--") and token.endswith("="):
            return f"argument {token[:-1]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    empty = empty_argument(argv, _switches(parser))
    if empty is not None:
        parser.error(f"{empty} is an empty string (a shell variable that expanded to nothing?); give it a value "
                     f"or leave it out.")
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    with console(verbosity(args.quiet, args.verbose), progress=not getattr(args, "no_progress", False)):
        try:
            return int(args.func(args) or 0)
        except SERError as err:
            # each line printable (a file name that is not UTF-8 too); the message's own line breaks kept
            print("ser-hf: error: " + "\n".join(map(printable, str(err).split("\n"))), file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("ser-hf: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
