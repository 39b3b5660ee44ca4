import json
import re
import subprocess
import sys

import pytest

from ser_hf.cli import build_parser, main
from ser_hf.testing.corpora import make_corpus_tree


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in build_parser()._subparsers._group_actions[0].choices:
        assert line in out
    for nested in ("data summary", "data split", "models prepare", "train", "cv", "demo"):
        assert f"\n  {nested} " in out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "ser_hf", "data", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "summary" in result.stdout and "split" in result.stdout


def test_data_summary_json(tmp_path, capsys):
    root = make_corpus_tree("ravdess", tmp_path)
    assert main(["data", "summary", "--corpus", "ravdess", "--data-dir", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["corpus"] == "ravdess" and summary["num_clips"] == 128 and summary["num_speakers"] == 8
    assert summary["labels"]["neutral"] == 16 and summary["hours"] == pytest.approx(128 * 0.25 / 3600, rel=1e-3)
    assert summary["unreadable"] == []


def test_data_summary_lists_unreadable_files(tmp_path, capsys):
    root = make_corpus_tree("urdu", tmp_path)
    (root / "Sad" / "SM1_F77_S077.wav").write_bytes(b"garbage")
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "unreadable   1" in out and "SM1_F77_S077.wav" in out and "clips        48" in out


def test_data_split_prints_class_counts(tmp_path, capsys):
    root = make_corpus_tree("urdu", tmp_path)
    assert main(["data", "split", "--corpus", "urdu", "--data-dir", str(root), "--folds", "3", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {f"fold{k}/{part}" for k in (1, 2, 3) for part in ("train", "test")}
    assert sum(table[f"fold{k}/test"]["total"] for k in (1, 2, 3)) == 48


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ser-hf: error: Corpus directory") and "Traceback" not in err
    assert main(["data", "download", "--corpus", "tess", "--out", str(tmp_path)]) == 2
    assert "cannot be downloaded automatically" in capsys.readouterr().err


def test_train_help_lists_the_recipe_keys(capsys):
    from ser_hf.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = capsys.readouterr().out
    assert "keys (in the recipe as key: value, or on the command line as --key value)" in printed
    assert "probe_projector_size" in printed and "example: ser-hf train" in printed
    # each key with its own help text and default, not just its name
    assert re.search(r"\n  probe_inner_folds +\S[^(]*\(default: \d+\)", printed)
    from ser_hf.training.recipes import own_keys

    assert all(re.search(rf"\n  {key} +\S", printed) for keys in own_keys().values() for key in keys)
    # the probe's keys under their own group, after the Trainer's
    assert re.search(r"\n training \(besides[^\n]*\n(.|\n)*\n probe:\n  probe_fit ", printed)
