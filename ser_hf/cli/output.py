"""What ``ser-hf`` prints besides results: log levels, progress bars and third-party noise.

Three levels, as in pip and git:

- ``-q``: warnings and errors only, no progress bars;
- default: ser_hf's own progress messages, progress bars on a terminal only (a log file or a pipe gets
  none), and quiet libraries: no transformers "LOAD REPORT" table for every newly initialised head, no
  matplotlib font messages, no library deprecation warnings;
- ``-v``: ser_hf's debug messages and everything the libraries say.

"No progress bars" means the libraries' too (transformers' "Loading weights", datasets', the Hub client's); a
command's ``--no-progress`` hides them all at any level.

The settings are undone when the command returns, so calling :func:`ser_hf.cli.main` from Python (or a
test) leaves the process as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator

from ser_hf.paths import printable

QUIET, NORMAL, VERBOSE = -1, 0, 1

#: Environment switches that turn off the progress bars of tqdm (the Trainer's too), datasets and the Hub client.
PROGRESS_OFF = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def verbosity(quiet: bool, verbose: bool) -> int:
    return QUIET if quiet else VERBOSE if verbose else NORMAL


@contextlib.contextmanager
def console(level: int, stream=None, progress: bool = True) -> Iterator[None]:
    """Configure logging, progress bars and library warnings for one command; restore them afterwards.

    ``progress=False`` (a command's ``--no-progress``) hides every bar, the libraries' too, as ``-q`` does.
    """
    stream = stream or sys.stderr
    root, own = logging.getLogger(), logging.getLogger("ser_hf")
    saved_levels = root.level, own.level
    saved_env = {name: os.environ.get(name) for name in PROGRESS_OFF}
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(_printable_arguments)
    root.addHandler(handler)
    # The root level filters third-party loggers; ser_hf's own logger passes its INFO messages through.
    root.setLevel(logging.INFO if level == VERBOSE else logging.WARNING)
    own.setLevel({QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}[level])
    bars_off = level == QUIET or not progress or not _is_terminal(stream)
    if bars_off:
        os.environ.update(PROGRESS_OFF)
    with warnings.catch_warnings(), _transformers_verbosity(level), _library_bars_off(bars_off), \
            _trainer_bar(not bars_off, level == VERBOSE):
        if level != VERBOSE:
            for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(saved_levels[0])
            own.setLevel(saved_levels[1])
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _printable_arguments(record: logging.LogRecord) -> bool:
    """Show the text and path arguments of a log message as :func:`~ser_hf.paths.printable` text: a file name holding
    a newline would otherwise print as a second, forged log line (``INFO all clips decoded fine``), one that is not
    UTF-8 as ``\\udcff`` rather than ``\\xff``. The message's own text is left as written."""
    if isinstance(record.args, tuple):
        record.args = tuple(printable(os.fsdecode(arg)) if isinstance(arg, (str, os.PathLike)) else arg
                            for arg in record.args)
    return True


#: The libraries whose bars :func:`_library_bars_off` switches: (module, whether its bars are on, off, on again).
_LIBRARY_BARS = (
    ("huggingface_hub.utils", lambda hub: not hub.are_progress_bars_disabled(), "disable_progress_bars",
     "enable_progress_bars"),
    ("transformers.utils.logging", lambda hf: hf.is_progress_bar_enabled(), "disable_progress_bar", "enable_progress_bar"),
    ("datasets.utils.logging", lambda ds: ds.is_progress_bar_enabled(), "disable_progress_bar", "enable_progress_bar"),
)


@contextlib.contextmanager
def _library_bars_off(off: bool) -> Iterator[None]:
    """Switch off the bars of the Hub client, transformers and datasets where they are already imported.

    They read :data:`PROGRESS_OFF`'s variables once, when imported, and ``ser-hf`` imports them before a command
    runs: without this, transformers' "Loading weights" bar went into every log file, ``-q`` or not. Undone
    afterwards.
    """
    undo = []
    for name, bars_on, disable, enable in _LIBRARY_BARS if off else ():
        library = sys.modules.get(name)
        if library is not None and bars_on(library):  # one imported later reads the environment variables
            _quietly(getattr(library, disable))
            undo.append(getattr(library, enable))
    try:
        yield
    finally:
        for switch_on in reversed(undo):
            _quietly(switch_on)


def _quietly(switch: Callable[[], None]) -> None:
    """Call a library's bar switch; a user's explicit ``HF_*_PROGRESS_BARS=0`` makes it warn, which says nothing here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        switch()


def _is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", None) and stream.isatty())


@contextlib.contextmanager
def _transformers_verbosity(level: int) -> Iterator[None]:
    """transformers logs through its own handler (not the root's): set its level, before or after import.

    A ``TRANSFORMERS_VERBOSITY`` the user set wins.
    """
    if os.environ.get("TRANSFORMERS_VERBOSITY"):
        yield
        return
    wanted = logging.INFO if level == VERBOSE else logging.ERROR
    os.environ["TRANSFORMERS_VERBOSITY"] = logging.getLevelName(wanted).lower()  # read when transformers is imported
    saved = _hf_logging().get_verbosity() if "transformers" in sys.modules else logging.WARNING
    if "transformers" in sys.modules:
        _hf_logging().set_verbosity(wanted)
    try:
        yield
    finally:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        if "transformers" in sys.modules:  # imported before or during the command
            _hf_logging().set_verbosity(saved)


@contextlib.contextmanager
def _trainer_bar(shown: bool, verbose: bool = False) -> Iterator[None]:
    """Let the Trainer's progress bar follow ser-hf's rule (a terminal, not silenced), not transformers' log level.

    ``TrainingArguments`` turns the bar off (and prints raw log dicts instead) whenever its module's logger is above
    WARNING, which :func:`_transformers_verbosity` makes it: ``ser-hf train`` showed no bar on a terminal. That one
    logger's level decides it; set it so (``-v`` keeps its INFO messages where the bar shows), and put it back
    afterwards.
    """
    arguments_logger = logging.getLogger("transformers.training_args")
    saved = arguments_logger.level
    arguments_logger.setLevel((logging.INFO if verbose else logging.WARNING) if shown else logging.ERROR)
    try:
        yield
    finally:
        arguments_logger.setLevel(saved)


def _hf_logging():
    from transformers.utils import logging as hf_logging

    return hf_logging
