"""The ``ser-hf`` console script: a thin layer that parses arguments and calls library functions.

Each command group lives in its own module exposing ``register(subparsers)``; the module adds its
parser(s) with a one-line ``help`` and sets ``func`` to a function taking the parsed namespace and
returning an exit code. Commands that set ``takes_overrides=True`` receive the arguments argparse
does not know in ``args.overrides`` (recipes parse them with ``HfArgumentParser``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ser_hf.errors import SERError
from ser_hf.paths import printable

# Modules under ser_hf.cli, in the order their commands appear in `ser-hf --help`.
COMMAND_MODULES = ("demo", "data", "models", "train", "evaluate", "predict", "serve", "export", "push", "baseline")

DESCRIPTION = """\
Speech emotion recognition with pretrained speech transformers, on the Hugging Face stack.

Start with `ser-hf demo` (offline, a few minutes on a CPU), then look at a real corpus with
`ser-hf data summary --corpus urdu --data-dir PATH`. Every command has its own --help with examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser-hf", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ser_hf.cli.{name}").register(subparsers)
    parser.epilog = "all commands:\n" + "\n".join(f"  {name:24s} {purpose}" for name, purpose in _commands(subparsers))
    return parser


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except SERError as err:
        print(f"ser-hf: error: {printable(str(err))}", file=sys.stderr)  # a file name that is not UTF-8 too
        return 2


if __name__ == "__main__":
    sys.exit(main())
