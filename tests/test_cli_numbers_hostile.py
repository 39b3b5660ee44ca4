"""Hostile numbers on the ``ser-hf`` command line: each is refused before anything loads, naming the flag, the value
given, the range and a fix, with exit status 2 (found by an audit: ``serve --max-upload-mb -inf`` and ``--port -1``
ended in tracebacks, ``evaluate --seed -5`` was taken, ``train --warmup_ratio=-.5`` lost its "did you mean").

Also: recipes given as bytes, path-likes or names that are not UTF-8 are named by their path in every message.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import pytest
from test_cli_conventions import _leaves

from ser_hf.cli import build_parser, main
from ser_hf.cli.serve import SETTINGS_FLAGS
from ser_hf.errors import SERError
from ser_hf.processes import available_cores

SIZE_FLAGS = ("--max-upload-mb", "--max-decode-mb", "--decode-budget-mb", "--body-budget-mb")
SEED_RANGE = "a seed (an integer) in [0, 4294967295]"
NO_SERVE_EXTRA = any(importlib.util.find_spec(name) is None for name in ("fastapi", "uvicorn", "multipart"))
needs_serve_extra = pytest.mark.skipif(NO_SERVE_EXTRA, reason="ser-hf serve needs the serve extra: pip install "
                                                              "'ser-hf[serve]'")


def _status(argv: list[str]) -> int:
    """The exit status of ``ser-hf ARGV``: what main returns, or what argparse exits with."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def _refused(argv: list[str], capsys) -> str:
    """The message of ``ser-hf ARGV``, which must be a usage error (status 2) without a traceback."""
    status = _status(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err, err
    return err


def _capture_serve(monkeypatch) -> dict:
    captured: dict = {}
    monkeypatch.setattr("ser_hf.service.server.serve", lambda model, **kw: captured.update(model=model, **kw))
    return captured


# --- serve: sizes in MiB and the port, refused while the command line is parsed ---


@pytest.mark.parametrize("flag", SIZE_FLAGS)
@pytest.mark.parametrize("value", ["-inf", "inf", "nan", "-nan", "-100", "-1e2", "0", "-0", "1e308", "ten"])
def test_a_serve_size_that_is_no_positive_finite_size_is_refused_naming_the_flag(flag, value, tmp_path, capsys):
    err = _refused(["serve", "--model", str(tmp_path / "missing"), flag, value], capsys)
    assert f"argument {flag}: expected a size in MiB in (0, 1073741824], got '{value}'; e.g. {flag} " in err
    assert "does not exist" not in err  # refused before the model is looked for


def test_a_serve_size_is_refused_in_every_spelling(tmp_path, capsys):
    err = _refused(["serve", "--model", str(tmp_path / "missing"), "--max_upload_mb=-inf"], capsys)
    assert "argument --max-upload-mb: expected a size in MiB in (0, 1073741824], got '-inf'" in err


@pytest.mark.parametrize("value", ["-1", "65536", "99999999999999999999", "8000.5", "1e3", "nan", "-inf", "http"])
def test_a_port_outside_0_to_65535_is_refused_before_the_model_loads(value, tmp_path, capsys):
    err = _refused(["serve", "--model", str(tmp_path / "missing"), "--port", value], capsys)
    assert (f"argument --port: expected a TCP port (an integer) in [0, 65535], got '{value}'; e.g. --port 8000, or 0 "
            f"for any free port") in err
    assert "does not exist" not in err


@needs_serve_extra
def test_port_0_and_a_size_of_a_few_bytes_are_served(tmp_path, monkeypatch):
    captured = _capture_serve(monkeypatch)
    # 1e-7 MiB is a fraction of a byte: rounded up to one byte, where it was rounded down to 0 bytes and refused
    assert main(["serve", "--model", str(tmp_path), "--port", "0", "--max-upload-mb", "1e-7",
                 "--body-budget-mb", "1_024"]) == 0
    assert captured["port"] == 0
    assert captured["settings"].max_upload_bytes == 1 and captured["settings"].body_budget_bytes == 2**30


@pytest.mark.parametrize("value", ["0", "-1", str(available_cores() + 1), str(2**31), "100000000000000000000"])
def test_threads_beyond_the_cores_are_refused_before_torch_starts_them(value, tmp_path, capsys):
    err = _refused(["serve", "--model", str(tmp_path / "missing"), "--threads", value], capsys)
    assert f"--threads must be a positive integer in [1, {available_cores()}], got {value}; at most one per core" in err


# --- evaluate: the seeds, folds, share and batch size ---


def _evaluate(tmp_path, *flags: str) -> list[str]:
    return ["evaluate", "--model", str(tmp_path / "missing"), "--corpus", "urdu", "--data-dir",
            str(tmp_path / "nowhere"), "--split", "test", *flags, "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("flag, value, expected", [
    ("--seed", "-5", f"--seed must be {SEED_RANGE}, got -5; e.g. --seed 0."),
    ("--seed", "4294967296", f"--seed must be {SEED_RANGE}, got 4294967296; e.g. --seed 0."),
    ("--perturb-seed", "-5", f"--perturb-seed must be {SEED_RANGE}, got -5; e.g. --perturb-seed 0."),
    ("--perturb-seed", str(2**64), f"--perturb-seed must be {SEED_RANGE}, got {2**64}"),
    ("--num-folds", "1", "--num-folds must be an integer (>= 2), got 1; each fold tests speakers the others train on"),
    ("--num-folds", "-1", "--num-folds must be an integer (>= 2), got -1"),
    ("--batch-size", "0", "--batch-size must be a positive integer (>= 1), got 0; e.g. --batch-size 8."),
    ("--test-size", "nan", "test_size (--test-size) must be a share in (0, 1), got nan."),
    ("--test-size", "-1_0", "test_size (--test-size) must be a share in (0, 1), got -10.0."),
])
def test_evaluate_refuses_numbers_out_of_range_before_the_model_loads(flag, value, expected, tmp_path, capsys):
    err = _refused(_evaluate(tmp_path, flag, value), capsys)
    assert expected in err and "does not exist" not in err
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_a_seed_with_the_message_baseline_gives(tmp_path, capsys):
    nowhere = str(tmp_path / "nowhere")
    said = [_refused([*command, "--corpus", "urdu", "--data-dir", nowhere, "--seed", "-5", "--out", str(tmp_path / name)],
                     capsys)
            for name, command in (("e", ["evaluate", "--model", str(tmp_path / "missing")]), ("b", ["baseline"]))]
    assert said[0] == said[1] == f"ser-hf: error: --seed must be {SEED_RANGE}, got -5; e.g. --seed 0.\n"


# --- baseline: folds and the neural classifiers' epochs, named by their flags before the corpus loads ---


@pytest.mark.parametrize("flags, expected", [
    (["--folds", "1"], "--folds must be an integer (>= 2), got 1; each fold tests speakers the others train on"),
    (["--folds", "-1"], "--folds must be an integer (>= 2), got -1"),
    (["--classifier", "cnn", "--epochs", "0"], "--epochs must be an integer in [1, 10000], got 0; e.g. --epochs 30."),
    (["--classifier", "lstm", "--patience", "-1"], "--patience must be a positive integer (>= 1), got -1; e.g. "
                                                   "--patience 6."),
])
def test_baseline_names_the_flag_of_a_count_out_of_range_before_the_corpus_loads(flags, expected, tmp_path, capsys):
    err = _refused(["baseline", "--corpus", "urdu", "--data-dir", str(tmp_path / "nowhere"), *flags,
                    "--out", str(tmp_path / "out")], capsys)
    assert expected in err and "NeuralConfig" not in err and "does not exist" not in err


# --- every number any command takes ---


def _command_parsers(parser: argparse.ArgumentParser):
    """(command, parser) for every ser-hf command, nested ones (``data split``) included."""
    return [(leaf.prog.removeprefix("ser-hf "), leaf) for leaf in _leaves(parser)]


def _numeric_options() -> set[tuple[str, str]]:
    """(command, flag) of every option read by a type function: all of them are numbers."""
    return {(command, action.option_strings[0]) for command, parser in _command_parsers(build_parser())
            for action in parser._actions if action.option_strings and action.type is not None}


def _required(command: str, tmp_path: Path) -> list[str]:
    missing, nowhere, out = str(tmp_path / "missing"), str(tmp_path / "nowhere"), str(tmp_path / "out")
    return {"data split": ["data", "split", "--corpus", "urdu", "--data-dir", nowhere],
            "evaluate": _evaluate(tmp_path),
            "predict": ["predict", "--model", missing, "a.wav", "--out", str(tmp_path / "p.jsonl")],
            "serve": ["serve", "--model", missing],
            "baseline": ["baseline", "--corpus", "urdu", "--data-dir", nowhere, "--out", out],
            "search": ["search"],
            "export-onnx": ["export-onnx", "--model", missing, "--out", out]}[command]


#: (command, flag) -> (other flags it needs, a value no library takes, what the message says)
HOSTILE: dict[tuple[str, str], tuple[list[str], str, str]] = {
    ("data split", "--folds"): ([], "1", "--folds must be an integer >= 2"),
    ("data split", "--seed"): ([], "-5", "fold_seed must be a seed (an integer) in [0, 4294967295], got -5. Set in "
                                         "the command line (--seed"),
    ("data split", "--test-size"): (["--holdout"], "nan", "Set in the command line (--test-size)"),
    ("data split", "--validation-size"): (["--holdout"], "-1", "Set in the command line (--validation-size)"),
    ("evaluate", "--seed"): ([], "-1", "--seed must be a seed"),
    ("evaluate", "--test-size"): ([], "1", "test_size (--test-size) must be a share in (0, 1), got 1.0"),
    ("evaluate", "--num-folds"): ([], "0", "--num-folds must be an integer (>= 2)"),
    ("evaluate", "--batch-size"): ([], "-1", "--batch-size must be a positive integer"),
    ("evaluate", "--n-resamples"): ([], "-1", "argument --n-resamples:"),
    ("evaluate", "--perturb-seed"): ([], "-1", "--perturb-seed must be a seed"),
    ("predict", "--batch-size"): ([], "0", "(--batch-size 8)"),
    ("predict", "--top-k"): ([], "-1", "(--top-k 2)"),
    ("predict", "--chunk-size"): ([], "0", "(--chunk-size 64)"),
    ("predict", "--window"): ([], "inf", "window (--window) must be"),
    ("predict", "--hop"): (["--window", "3"], "nan", "hop (--hop) must be"),
    ("predict", "--vad-threshold-db"): (["--window", "3"], "-inf", "vad_threshold_db (--vad-threshold-db) must be"),
    ("serve", "--port"): ([], "65536", "argument --port: expected a TCP port"),
    **{("serve", flag): ([], "-inf", f"argument {flag}: expected a size in MiB") for flag in SIZE_FLAGS},
    **{("serve", f"--{name.replace('_', '-')}"): ([], "-1", f"ServiceSettings.{name} must be")
       for name in SETTINGS_FLAGS},
    ("serve", "--max-key-failures"): ([], "-1", "--max-key-failures must be an integer from 0 to 1,000"),
    ("serve", "--key-failure-window"): ([], "nan", "--key-failure-window must be a number of seconds"),
    ("serve", "--threads"): ([], "0", "--threads must be a positive integer"),
    ("baseline", "--folds"): ([], "0", "--folds must be an integer (>= 2)"),
    ("baseline", "--inner-folds"): ([], "1", "--inner-folds must be an integer (>= 2)"),
    ("baseline", "--seed"): ([], str(2**32), "--seed must be a seed"),
    ("baseline", "--jobs"): ([], "-2", "--jobs must be a positive integer or -1"),
    ("baseline", "--epochs"): (["--classifier", "cnn"], "10001", "--epochs must be an integer in [1, 10000]"),
    ("baseline", "--patience"): (["--classifier", "cnn"], "0", "--patience must be a positive integer"),
    ("baseline", "--workers"): ([], "-1", "--workers must be a non-negative integer"),
    ("search", "--trials"): ([], "-1", "argument --trials: expected a whole number of trials >= 1"),
    ("export-onnx", "--opset"): ([], "-1", "argument --opset: expected an ONNX opset version"),
}


def test_every_number_option_has_a_hostile_case():
    assert _numeric_options() == set(HOSTILE), "add the new number option to HOSTILE with a value its library refuses"


@pytest.mark.parametrize("command, flag", sorted(HOSTILE))
def test_every_number_option_refuses_a_value_out_of_range_before_anything_loads(command, flag, tmp_path, capsys):
    if command == "serve" and NO_SERVE_EXTRA:
        pytest.skip("ser-hf serve needs the serve extra")  # its settings are checked after the extra is
    needs, value, expected = HOSTILE[command, flag]
    err = _refused([*_required(command, tmp_path), *needs, flag, value], capsys)
    assert expected in err and "does not exist" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.jsonl").exists()


# --- recipes: the key of --key=value alone, and the recipe named by its path ---


@pytest.mark.parametrize("flag, key, meant", [("--warmup_ratio=-.5", "warmup_ratio", "warmup_steps"),
                                              ("--learning-rat=-1", "learning_rat", "learning_rate"),
                                              ("--num-fold=3", "num_fold", "num_folds")])
def test_an_unknown_key_given_with_equals_is_named_alone_with_its_suggestion(flag, key, meant):
    from ser_hf.training.recipes import parse_run

    with pytest.raises(SERError, match=rf"Unknown key\(s\) \['{key}'\] in the command line\. '{key}' -> did you mean "
                                       rf"'{meant}'\?"):
        parse_run(None, [flag])


class PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


def _recipe(folder: Path, name: bytes, text: str) -> str:
    path = os.fsencode(folder) + b"/" + name
    with open(path, "w") as file:
        file.write(text)
    return os.fsdecode(path)


@pytest.mark.parametrize("given", [os.fsencode, lambda path: PathLike(os.fsencode(path)), PathLike, Path])
@pytest.mark.parametrize("text, expected", [
    ("learning_rate: -1\n", "Set in recipe {}: change it there"),
    ("learning_rat: 1\n", "in recipe {}. 'learning_rat' -> did you mean 'learning_rate'?"),
    ("gain_db: [1, 2]\nnum_folds: [2, 3]\n", "but recipe {} sets it to the list [2, 3]"),
    ("eval_strategy: steps\nsave_strategy: epoch\nload_best_model_at_end: true\n",
     "Fix them in recipe {} and the command line"),
])
def test_a_recipe_given_as_bytes_or_a_path_like_is_named_by_its_path(given, text, expected, tmp_path):
    from ser_hf.training.recipes import parse_run

    recipe = _recipe(tmp_path, b"r.yaml", text)
    with pytest.raises(SERError) as error:
        parse_run(given(recipe))
    assert expected.format(recipe) in str(error.value), str(error.value)


@pytest.mark.parametrize("text, expected", [
    ("learning_rate: -1\n", "Set in recipe {}: change it there"),
    ("probe_max_epochs: many\n", "(set in recipe {})"),
    ("learning_rat: 1\n", "Unknown key(s) ['learning_rat'] in recipe {}."),
    ("corpus: [urdu\n", "Recipe {} is not valid YAML"),
    ("a: 1\na: 2\n", "Recipe {}: key 'a' appears twice"),
    ("- corpus\n", "Recipe {!r} must be a mapping"),
])
def test_a_recipe_whose_name_is_not_utf8_is_named_printably(text, expected, tmp_path):
    from ser_hf.training.recipes import parse_run

    recipe = _recipe(tmp_path, b"bad_\xff.yaml", text)
    with pytest.raises(SERError) as error:
        parse_run(recipe)
    message = str(error.value)
    message.encode("utf-8")  # no lone surrogate: a UTF-8 log can take it
    assert expected.format(f"{tmp_path}/bad_\\xff.yaml") in message, message


def test_a_missing_recipe_whose_name_is_not_utf8_is_named_printably(tmp_path):
    from ser_hf.training.recipes import parse_run

    with pytest.raises(SERError, match=r"Recipe '.*missing_\\\\xff\.yaml' does not exist") as error:
        parse_run(os.fsencode(tmp_path) + b"/missing_\xff.yaml")
    str(error.value).encode("utf-8")


def test_train_names_the_unknown_key_of_a_flag_with_equals(capsys):
    err = _refused(["train", "--warmup_ratio=-.5"], capsys)
    assert "Unknown key(s) ['warmup_ratio'] in the command line. 'warmup_ratio' -> did you mean 'warmup_steps'?" in err
