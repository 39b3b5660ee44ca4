"""The console conventions of ``ser-hf``: --version, -q/-v, both flag spellings, exit codes, quiet libraries."""

import argparse
import io
import logging
import os
import subprocess
import sys

import pytest

from ser_hf import __version__
from ser_hf.cli import build_parser, main
from ser_hf.cli.output import NORMAL, QUIET, VERBOSE, console
from ser_hf.progress import progress_bar
from ser_hf.testing.corpora import make_corpus_tree


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a user's console is."""

    def isatty(self):
        return True


def _leaves(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _leaves(sub)
            return
    yield parser


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"ser-hf {__version__}"


def test_every_long_flag_takes_both_spellings_and_help_shows_the_dashed_one():
    checked = 0
    for parser in _leaves(build_parser()):
        for action in parser._actions:
            for flag in action.option_strings:
                if not flag.startswith("--") or ("-" not in flag[2:] and "_" not in flag[2:]):
                    continue
                assert "_" not in flag, f"{parser.prog}: help shows {flag}"
                underscored = "--" + flag[2:].replace("-", "_")
                assert parser._option_string_actions[underscored] is action
                checked += 1
    assert checked > 50


@pytest.mark.parametrize("value, expected", [("-40", -40.0), ("-1e2", -100.0), ("-1.5E+1", -15.0), ("-.5", -0.5),
                                             ("-2.", -2.0), ("-1_0", -10.0), ("-1_0.2_5e-0_1", -1.025)])
def test_a_negative_number_in_any_notation_is_a_value_not_a_flag(value, expected):
    args = build_parser().parse_args(["predict", "clip.wav", "--model", "m", "--out", "p.jsonl", "--window", "3",
                                      "--vad-threshold-db", value])
    assert args.vad_threshold_db == expected


@pytest.mark.parametrize("value", ["-inf", "-Infinity", "-nan"])
def test_a_negative_infinity_reaches_the_range_check_with_its_message(value, tmp_path, capsys):
    assert main(["predict", "--model", "m", "a.wav", "--out", str(tmp_path / "p.jsonl"), "--window", "3",
                 "--vad-threshold-db", value]) == 2
    assert "vad_threshold_db (--vad-threshold-db) must be" in capsys.readouterr().err


@pytest.mark.parametrize("values, expected", [(["-1e1", "0"], [-10.0, 0.0]), (["-6.", "0"], [-6.0, 0.0]),
                                              (["-.5", "0"], [-0.5, 0.0]), (["-1_0", "0"], [-10.0, 0.0])])
def test_recipe_overrides_take_negative_numbers_in_any_notation(values, expected):
    from ser_hf.training.recipes import parse_run

    assert parse_run(None, ["--gain_db", *values]).training.gain_db == expected


@pytest.mark.parametrize("text", ["-1_0", "-1_000.5e-1_0", "-.1_2", "-1_0.", "-1E+1_0", "-١٢"])
def test_a_negative_number_groups_digits_with_underscores_as_python_reads_it(text):
    from ser_hf.ranges import NEGATIVE_NUMBER

    assert NEGATIVE_NUMBER.match(text) and float(text) < 0


@pytest.mark.parametrize("text", ["-1__0", "-_1", "-1_", "-1_.5", "-1._5", "-1e_5", "-1e5_", "-.", "-e5"])
def test_what_python_reads_as_no_number_is_no_negative_number(text):
    from ser_hf.ranges import NEGATIVE_NUMBER

    assert not NEGATIVE_NUMBER.match(text)
    with pytest.raises(ValueError):
        float(text)


def test_a_flag_after_a_flag_that_takes_a_number_is_still_a_flag(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "clip.wav", "--model", "m", "--out", "p.jsonl", "--vad-threshold-db", "--e2"])
    assert "expected one argument" in capsys.readouterr().err


def test_both_spellings_run_the_same_command(tmp_path, capsys):
    root = make_corpus_tree("urdu", tmp_path)
    assert main(["data", "summary", "--corpus", "urdu", "--data_dir", str(root), "--json"]) == 0
    underscored = capsys.readouterr().out
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", str(root), "--json"]) == 0
    assert capsys.readouterr().out == underscored


def test_exit_codes(monkeypatch, capsys):
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", "/nonexistent/folder"]) == 2
    assert "ser-hf: error:" in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("ser_hf.cli.data.run_list", interrupted)
    assert main(["data", "list"]) == 130
    assert "interrupted" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["-q", "-v", "data", "list"])
    assert stop.value.code == 2
    help_text = build_parser().format_help()
    assert "exit status:" in help_text and "130" in help_text


def _logged(level: int) -> str:
    stream = io.StringIO()
    with console(level, stream):
        logging.getLogger("ser_hf.training").info("own progress message")
        logging.getLogger("ser_hf.training").debug("own debug message")
        logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
        logging.getLogger("ser_hf.training").warning("own warning")
    return stream.getvalue()


def test_levels_quiet_normal_verbose():
    quiet, normal, verbose = _logged(QUIET), _logged(NORMAL), _logged(VERBOSE)
    assert "own warning" in quiet and "own progress message" not in quiet
    assert "own progress message" in normal and "fontManager" not in normal and "own debug" not in normal
    assert "own debug message" in verbose and "fontManager" in verbose


def test_transformers_warnings_only_with_verbose():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    load_report = hf_logging.get_logger("transformers.modeling_utils")  # where the LOAD REPORT table comes from
    for level, shown in ((NORMAL, False), (QUIET, False), (VERBOSE, True)):
        with console(level, io.StringIO()):
            assert load_report.isEnabledFor(logging.WARNING) is shown
    assert hf_logging.get_verbosity() == before  # restored: main() called from Python leaves no trace


def test_transformers_is_quiet_when_first_imported_during_a_command():
    # The CLI imports transformers lazily, inside the command: the level must hold then too.
    code = ("import io, logging; from ser_hf.cli.output import console, NORMAL\n"
            "with console(NORMAL, io.StringIO()):\n"
            "    from transformers.utils import logging as hf\n"
            "    print(hf.get_logger('transformers.modeling_utils').isEnabledFor(logging.WARNING))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"})
    assert result.stdout.strip() == "False", result.stderr


def test_progress_bars_only_where_someone_watches(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)

    assert not progress_bar(True, total=2, file=Terminal()).disable
    assert progress_bar(True, total=2, file=io.StringIO()).disable  # a pipe or log file
    assert progress_bar(False, total=2, file=Terminal()).disable
    with console(QUIET, io.StringIO()):
        assert os.environ["TQDM_DISABLE"] == "1"
        assert progress_bar(True, total=2, file=Terminal()).disable
    assert "TQDM_DISABLE" not in os.environ


def test_the_libraries_bars_are_off_where_ours_are():
    """transformers, datasets and the Hub client read their switches when imported, before a command runs: the
    "Loading weights" bar went into every log file, even with -q."""
    import datasets.utils.logging as datasets_logging
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    def bars_on() -> list[bool]:
        return [hf_logging.is_progress_bar_enabled(), datasets_logging.is_progress_bar_enabled(),
                not hub_utils.are_progress_bars_disabled()]

    before = bars_on()  # on, unless the environment running the suite switched some off
    for level, stream, progress, shown in ((QUIET, Terminal(), True, False), (NORMAL, io.StringIO(), True, False),
                                           (NORMAL, Terminal(), False, False), (NORMAL, Terminal(), True, True),
                                           (VERBOSE, Terminal(), True, True)):
        with console(level, stream, progress=progress):
            assert bars_on() == (before if shown else [False] * 3), (level, progress)
        assert bars_on() == before  # restored


def test_the_trainers_bar_follows_the_same_rule(tmp_path, monkeypatch):
    """TrainingArguments hides the Trainer's bar whenever transformers' logger is above WARNING, which ser-hf sets
    to hide load reports: `ser-hf train` on a terminal showed raw log dicts and no bar."""
    from ser_hf.training.arguments import SERTrainingArguments

    monkeypatch.delenv("TQDM_DISABLE", raising=False)

    arguments_logger = logging.getLogger("transformers.training_args")
    before = arguments_logger.level
    for level, stream, progress, shown in ((NORMAL, Terminal(), True, True), (NORMAL, io.StringIO(), True, False),
                                           (QUIET, Terminal(), True, False), (NORMAL, Terminal(), False, False),
                                           (VERBOSE, Terminal(), True, True)):
        with console(level, stream, progress=progress):
            assert SERTrainingArguments(output_dir=str(tmp_path)).disable_tqdm is not shown, (level, progress)
        assert arguments_logger.level == before
    assert SERTrainingArguments(output_dir=str(tmp_path), disable_tqdm=True).disable_tqdm  # a user's choice wins


def test_predict_writes_no_bar_into_a_log_file(tmp_path):
    """The end-to-end case: `ser-hf predict ... 2> log` with a tiny checkpoint leaves no bar in the log."""
    from ser_hf.testing.corpora import write_tone
    from ser_hf.testing.models import tiny_classifier

    model = tiny_classifier("wav2vec2", tmp_path, ["neutral", "happy"])
    clip = write_tone(tmp_path / "clip.wav")
    result = subprocess.run([sys.executable, "-m", "ser_hf", "predict", "--model", str(model), str(clip),
                             "--out", str(tmp_path / "p.jsonl")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "it/s" not in result.stderr and "%|" not in result.stderr, result.stderr


@pytest.mark.parametrize(("argv", "named"), [
    (["predict", "--model", "m", "", "--out", "p.jsonl"], "an input argument"),
    (["predict", "--model", "m", "a.wav", "--out", ""], "argument --out"),
    (["predict", "--model", "m", "a.wav", "--out="], "argument --out"),
    (["predict", "--model", "", "a.wav", "--out", "p.jsonl"], "argument --model"),
    (["cv", ""], "an input argument"),
    (["predict", "--model", "m", "-v", "", "--out", "p.jsonl"], "an input argument"),  # -v takes no value
    (["predict", "--model", "m", "a.wav", "--window", "3", "--vad-threshold-db", "-40", "", "--out", "p.jsonl"],
     "an input argument"),  # -40 is the value before it, not a flag
    (["evaluate", "--model", "m", "--data-dir", "", "--out", "r"], "argument --data-dir"),
])
def test_an_empty_argument_is_refused_before_anything_runs(argv, named, tmp_path, monkeypatch, capsys):
    """To the path functions "" is the current folder: `ser-hf predict $UNSET` would score every recording under
    it, `ser-hf cv $UNSET` would run the defaults and write outputs/ there."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"{named} is an empty string" in err and "leave it out" in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing scored
