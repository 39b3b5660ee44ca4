"""`ser-hf predict` / predict_files: inputs, error records, resumable JSONL and CSV outputs."""

from __future__ import annotations

import argparse
import csv
import json
import os

import pytest

from ser_hf.cli import predict as predict_cli
from ser_hf.errors import SERError
from ser_hf.inference.jobs import expand_inputs, predict_files
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_backbone

FOUR = ["neutral", "happy", "sad", "angry"]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), FOUR)
    audio = tmp / "audio"
    good = [write_tone(audio / name, duration=0.5, frequency=freq, seed=i)
            for i, (name, freq) in enumerate([("a.wav", 200), ("sub/b.wav", 300), ("sub/deep/c.flac", 400)])]
    corrupt = audio / "sub" / "broken.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (audio / "notes.txt").write_text("not audio, ignored in folders")
    return {"model": save_checkpoint(model, extractor, tmp / "model"), "audio": audio,
            "good": [str(p) for p in good], "corrupt": str(corrupt)}


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ser-hf")
    predict_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["predict", *argv])
    return args.func(args)


def _jsonl(path):
    header, *records = [json.loads(line) for line in path.read_text().splitlines()]
    assert header["ser_hf_predictions"] == 1 and header["job"]["tool"] == "ser-hf predict"
    return records


def test_folder_with_corrupt_file(setup, tmp_path, capsys):
    out = tmp_path / "predictions.jsonl"
    assert run_cli(["--model", str(setup["model"]), str(setup["audio"]), "--out", str(out), "--no-progress",
                    "--top-k", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"out": str(out), "inputs": 4, "skipped": 0, "predicted": 3, "errors": 1, "error_records": 1}
    records = {record["path"]: record for record in _jsonl(out)}
    assert sorted(records) == sorted(setup["good"] + [setup["corrupt"]])
    assert set(records[setup["corrupt"]]) == {"path", "error"} and "broken.wav" in records[setup["corrupt"]]["error"]
    for path in setup["good"]:
        assert records[path]["label"] in FOUR and len(records[path]["scores"]) == 2


def test_rerun_after_completion_adds_nothing(setup, tmp_path):
    out = tmp_path / "p.jsonl"
    predict_files(setup["model"], [setup["audio"]], out, progress=False)
    before = out.read_bytes()
    summary = predict_files(setup["model"], [setup["audio"]], out, progress=False)
    assert summary["skipped"] == 4 and summary["predicted"] == 0
    assert out.read_bytes() == before


def test_rerun_after_torn_write_completes_once(setup, tmp_path):
    out = tmp_path / "p.jsonl"
    predict_files(setup["model"], [setup["audio"]], out, progress=False, chunk_size=1)
    full = _jsonl(out)
    data = out.read_bytes()
    newlines = [i for i, byte in enumerate(data) if byte == ord("\n")]
    cut = newlines[2] + 15  # the header and two whole records, then the start of the third
    out.write_bytes(data[:cut])
    summary = predict_files(setup["model"], [setup["audio"]], out, progress=False, chunk_size=1)
    assert summary["skipped"] == 2 and summary["predicted"] + summary["errors"] == 2
    resumed = _jsonl(out)
    assert sorted(r["path"] for r in resumed) == sorted(r["path"] for r in full)
    by_path = {r["path"]: r for r in full}
    for record in resumed:
        assert record.keys() == by_path[record["path"]].keys()
        if "scores" in record:
            assert record["scores"] == pytest.approx(by_path[record["path"]]["scores"], abs=1e-6)


def test_csv_output_resumes_without_duplicates(setup, tmp_path):
    out = tmp_path / "p.csv"
    predict_files(setup["model"], setup["good"][:2], out, progress=False)
    predict_files(setup["model"], [setup["audio"]], out, progress=False)
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["path"] for r in rows) == sorted(setup["good"] + [setup["corrupt"]])
    assert list(rows[0]) == ["path", "label", "score", "error"] + [f"prob_{label}" for label in FOUR] + ["path_base64"]
    broken = next(r for r in rows if r["path"] == setup["corrupt"])
    assert broken["error"] and not broken["label"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_manifest_glob_and_missing_inputs(setup, tmp_path):
    manifest = setup["audio"] / "manifest.csv"
    manifest.write_text("path,label\na.wav,happy\nsub/b.wav,sad\n")
    pattern = str(setup["audio"] / "**" / "*.flac")
    missing = str(tmp_path / "gone.wav")
    paths = expand_inputs([manifest, pattern, setup["good"][0], missing])
    assert paths == [setup["good"][0], setup["good"][1], setup["good"][2], os.path.abspath(missing)]
    out = tmp_path / "p.jsonl"
    predict_files(setup["model"], [manifest, pattern, missing], out, progress=False)
    records = {r["path"]: r for r in _jsonl(out)}
    assert "does not exist" in records[os.path.abspath(missing)]["error"]
    manifest.unlink()


def test_input_errors(setup, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.wav,sad\n")
    with pytest.raises(SERError, match=r"has no 'path' column \(found \['file', 'label'\]\)"):
        expand_inputs([bad])
    with pytest.raises(SERError, match=r"matches no file; check the pattern"):
        expand_inputs([str(tmp_path / "*.wav")], output=tmp_path / "p.jsonl")  # no mention of --out: it is not there
    (tmp_path / "p.jsonl").write_text("")
    with pytest.raises(SERError, match=r"matches only the output file --out, never read as an input"):
        expand_inputs([str(tmp_path / "*.jsonl")], output=tmp_path / "p.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SERError, match="holds no audio files"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(SERError, match="batch_size must be a positive integer"):
        predict_files(setup["model"], setup["good"], tmp_path / "x.jsonl", batch_size=0)


def test_fail_on_error_sets_the_exit_status_also_on_a_rerun(setup, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    argv = ["--model", str(setup["model"]), str(setup["audio"]), "--out", str(out), "--no-progress", "--chunk-size", "2"]
    assert run_cli([*argv, "--fail-on-error"]) == 1
    assert "1 of 4 input(s) could not be decoded or scored" in capsys.readouterr().err
    assert run_cli([*argv, "--fail-on-error"]) == 1  # the error record comes from the earlier run
    assert json.loads(capsys.readouterr().out)["error_records"] == 1
    assert run_cli(argv) == 0  # without the flag, error records are data
    assert "could not be decoded" in capsys.readouterr().err
    good = ["--model", str(setup["model"]), *setup["good"], "--out", str(tmp_path / "good.csv"), "--no-progress"]
    assert run_cli([*good, "--fail-on-error"]) == 0
    assert "could not be decoded" not in capsys.readouterr().err


def test_cli_format_choices_match_the_jobs_formats():
    from ser_hf.cli.predict import FORMAT_CHOICES
    from ser_hf.inference.jobs import FORMATS

    assert FORMAT_CHOICES == FORMATS


def test_an_empty_input_or_output_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tone(tmp_path / "a.wav", 1.0)  # what "" would have scored
    with pytest.raises(SERError, match=r"an input is an empty string; expected a file, folder, glob"):
        expand_inputs(["a.wav", ""])
    with pytest.raises(SERError, match=r"out is an empty string; expected the output file"):
        predict_files("unused-model", ["a.wav"], "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_test_time_copies_are_recorded_and_never_mixed_with_plain_scores(setup, tmp_path, capsys):
    import shutil

    from ser_hf.inference.recognizer import EmotionRecognizer

    model = shutil.copytree(setup["model"], tmp_path / "model")
    (model / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": {"probe_speed_copies": [0.9, 1.1]}}))
    out = tmp_path / "p.jsonl"
    assert run_cli(["--model", str(model), *setup["good"][:2], "--out", str(out), "--no-progress",
                    "--test-time-copies"]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["job"]["test_time_copies"] is True
    recognizer = EmotionRecognizer.from_pretrained(model, test_time_copies=True)
    records = {record["path"]: record for record in _jsonl(out)}
    for path in setup["good"][:2]:
        assert records[path]["scores"] == pytest.approx(recognizer.predict(path)["scores"], abs=1e-6)
    with pytest.raises(SERError, match=r"holds predictions made with test-time copies .*this job runs without them"):
        predict_files(model, setup["good"], out, progress=False)
    plain = tmp_path / "plain.jsonl"
    predict_files(model, setup["good"][:1], plain, progress=False)
    with pytest.raises(SERError, match=r"made without test-time copies .*this job runs with them"):
        predict_files(model, setup["good"], plain, progress=False, test_time_copies=True)
    summary = predict_files(model, setup["good"], out, progress=False, test_time_copies=True)  # same job: resumes
    assert summary["skipped"] == 2 and summary["predicted"] == 1
    with pytest.raises(SERError, match=r"a loaded EmotionRecognizer keeps its own"):
        predict_files(recognizer, setup["good"], tmp_path / "r.jsonl", progress=False, test_time_copies=True)
    # A CSV output says so in a column of its own, and is guarded the same way in both directions.
    table = tmp_path / "p.csv"
    predict_files(model, setup["good"][:2], table, progress=False, test_time_copies=True)
    rows = list(csv.DictReader(table.open(newline="", encoding="utf-8")))
    assert [row["test_time_copies"] for row in rows] == ["true", "true"]
    assert float(rows[0]["score"]) == pytest.approx(max(recognizer.predict(rows[0]["path"])["scores"].values()),
                                                    abs=1e-6)
    with pytest.raises(SERError, match=r"p\.csv' holds predictions made with test-time copies \(its "
                                       r"'test_time_copies' column\); this job runs without them"):
        predict_files(model, setup["good"], table, progress=False)
    assert predict_files(model, setup["good"], table, progress=False, test_time_copies=True)["skipped"] == 2
    assert [row["test_time_copies"] for row in csv.DictReader(table.open(newline="", encoding="utf-8"))] == ["true"] * 3
    plain_table = tmp_path / "plain.csv"
    predict_files(model, setup["good"][:1], plain_table, progress=False)
    assert "test_time_copies" not in plain_table.read_text().splitlines()[0]  # the plain format is unchanged
    with pytest.raises(SERError, match=r"made without test-time copies \(its 'test_time_copies' column\)"):
        predict_files(model, setup["good"], plain_table, progress=False, test_time_copies=True)
