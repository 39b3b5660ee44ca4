"""Hostile outputs, file names, globs and non-finite scores (issue 18).

1. `ser-hf predict --out` never changes a file it did not write: an input (also through a symlink or a hard
   link), notes, a config, a manifest; a folder, a path under a file, a FIFO, a full disk give clear errors.
2. File names that are not UTF-8 are predicted, recorded losslessly, resumed, summarised and skipped by name.
3. `**` globs and folder inputs through symlink loops end.
4. Finite but absurd samples, and any non-finite model output, are errors naming the input, never predictions.
"""

from __future__ import annotations

import base64
import csv
import errno
import io
import json
import os
import shutil
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import fail_listing

from ser_hf.audio import MAX_ABS_SAMPLE, load_audio
from ser_hf.cli import main
from ser_hf.errors import AudioError, SERError
from ser_hf.inference.inputs import expand_inputs, glob_files
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.inference.outputs import record_key
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.paths import display_path, path_fields, printable, record_path, walk_files
from ser_hf.testing.corpora import make_corpus_tree, write_tone
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]
NOT_UTF8 = b"\xff\xfe.wav"

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    model = tiny_classifier("wav2vec2", tmp / "model", FOUR)
    return {"model": model, "recognizer": EmotionRecognizer.from_pretrained(model)}


@pytest.fixture
def audio(tmp_path):
    folder = tmp_path / "audio"
    return [str(write_tone(folder / name, duration=0.3, frequency=200 + 50 * i, seed=i))
            for i, name in enumerate(["a.wav", "b.wav", "sub/c.wav"])]


def _strict_stdio(monkeypatch) -> tuple[io.BytesIO, io.BytesIO]:
    """stdout and stderr as a real UTF-8 terminal encodes them (strict), not pytest's forgiving capture."""
    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="utf-8", errors="strict", write_through=True))
    return out, err


def _strict_json_lines(path) -> list[dict]:
    """Every line of a JSONL file as strict JSON (a NaN or Infinity raises), from UTF-8 bytes."""
    def refuse(constant):
        raise AssertionError(f"{constant} in {path}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_bytes().decode("utf-8").splitlines()]


def _not_utf8(folder, name: bytes = NOT_UTF8) -> str:
    return os.fsdecode(os.path.join(os.fsencode(str(folder)), name))


# ------------------------------------------------------------------------------ 1. --out never destroys

@pytest.mark.parametrize("how", ["same path", "relative path", "symlink", "hard link"])
def test_out_that_is_an_input_is_refused_and_left_as_it_was(setup, audio, tmp_path, how, capsys, monkeypatch):
    target = audio[0]
    before = open(target, "rb").read()
    out = target
    if how == "relative path":
        monkeypatch.chdir(os.path.dirname(target))
        out = os.path.join("..", "audio", "a.wav")
    elif how == "symlink":
        out = str(tmp_path / "predictions.jsonl")
        os.symlink(target, out)
    elif how == "hard link":
        out = str(tmp_path / "predictions.jsonl")
        os.link(target, out)
    assert main(["predict", "--model", str(setup["model"]), *audio, "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ser-hf: error: input") and "is the output file --out" in err and "Traceback" not in err
    assert "Choose another --out" in err
    assert open(target, "rb").read() == before
    with pytest.raises(SERError, match="is the output file"):  # also as the folder holding it
        predict_files(setup["model"], [os.path.dirname(target), target], out, progress=False)


FOREIGN = {
    "notes.txt": b"meeting notes\nno JSON here\n",
    "config.json": b'{"sampling_rate": 16000, "model": "x"}\n',
    "config-one-line.json": b'{"sampling_rate": 16000}',
    "manifest.jsonl": b'{"path": "a.wav", "label": "happy"}\n{"path": "b.wav", "label": "sad"}\n',
    "binary.jsonl": bytes(range(256)) * 40,
    "array.jsonl": b"[1, 2, 3]\n",
    "records-then-notes.jsonl": b'{"path": "/x/a.wav", "error": "E"}\nhello\n{"path": "/x/b.wav", "error": "E"}\n',
    "manifest.csv": b"path,label,speaker\na.wav,happy,s1\n",
    "almost.csv": b"path,label,score,error,notes\n/x/a.wav,happy,0.5,,keep me\n",
    "latin1.csv": b"path,label,score,error,prob_happy\n/x/\xe9.wav,happy,1.0,,1.0\n",
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_existing_files_it_did_not_write_are_refused_and_left_as_they_were(setup, audio, tmp_path, name):
    out = tmp_path / name
    out.write_bytes(FOREIGN[name])
    with pytest.raises(SERError, match=rf"(?s){name}.*was not written by ser-hf predict: .*choose another --out, or "
                                       rf"delete"):
        predict_files(setup["model"], audio, out, progress=False)
    with pytest.raises(SERError, match="was not written by ser-hf predict"):
        read_records(out)
    assert out.read_bytes() == FOREIGN[name]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_manifest_given_as_out_is_refused_not_emptied(setup, audio, tmp_path, capsys):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},happy\n" for p in audio))
    before = manifest.read_bytes()
    assert main(["predict", "--model", str(setup["model"]), str(manifest), "--out", str(manifest),
                 "--no-progress"]) == 2
    assert "is the output file" in capsys.readouterr().err
    assert manifest.read_bytes() == before


def test_unusable_out_paths_are_clear_errors(setup, audio, tmp_path, capsys):
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "file.txt").write_text("a file")
    os.mkfifo(tmp_path / "fifo.jsonl")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dangling.jsonl").symlink_to(outside / "x.jsonl")  # followed, the output would be made there
    (tmp_path / "gone").symlink_to(tmp_path / "no-such-folder")
    cases = {"folder.jsonl": "is a directory", "file.txt/p.jsonl": "which is a file, not a folder",
             "fifo.jsonl": "is not a regular file", "dangling.jsonl": "is a symbolic link to",
             "gone/p.jsonl": "which is a symbolic link to", "-": "not to standard output; pass a file name"}
    for name, fragment in cases.items():
        out = name if name == "-" else str(tmp_path / name)
        argv = ["predict", "--model", str(setup["model"]), *audio, "--out", out, "--no-progress"]
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("ser-hf: error: --out") and fragment in err and "Traceback" not in err, err
    assert (tmp_path / "file.txt").read_text() == "a file"
    assert not any(outside.iterdir()) and not (tmp_path / "no-such-folder").exists() and not os.path.exists("-")


def _failing_fsync(monkeypatch, after: int, code: int = errno.ENOSPC) -> None:
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_full_disk_is_an_error_naming_the_file_and_keeps_the_finished_work(setup, audio, tmp_path, suffix,
                                                                             monkeypatch, capsys):
    out = tmp_path / f"p.{suffix}"
    _failing_fsync(monkeypatch, after=1)  # the first chunk is written, the second hits the full disk
    argv = ["predict", "--model", str(setup["model"]), *audio, "--out", str(out), "--no-progress", "--chunk-size", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and str(out) in err and "1 record(s) written before are kept" in err, err
    assert "Traceback" not in err
    assert [r["path"] for r in read_records(out)] == audio[:1]  # complete, nothing torn
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    summary = predict_files(setup["model"], audio, out, progress=False)
    assert summary["skipped"] == 1 and summary["predicted"] == 2
    assert [r["path"] for r in read_records(out)] == audio


def test_an_unwritable_output_is_an_error_before_any_work(setup, audio, tmp_path, monkeypatch):
    out = tmp_path / "p.jsonl"
    _failing_fsync(monkeypatch, after=0, code=errno.EROFS)
    with pytest.raises(SERError, match=r"cannot write the output '.*p\.jsonl' \(Read-only file system\)\. .*Choose "
                                       r"--out in a folder you can write to"):
        predict_files(setup["model"], audio, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_folders_and_globs_never_pick_up_the_output_its_shards_or_temp_file(setup, audio, tmp_path):
    folder = tmp_path / "audio"
    out = folder / "predictions.wav"  # named like audio, inside the folder it predicts
    predict_files(setup["model"], [folder], out, progress=False)
    again = predict_files(setup["model"], [folder, str(folder / "**" / "*")], out, progress=False)
    assert again["inputs"] == 3 and again["skipped"] == 3 and again["predicted"] == 0
    (folder / "predictions.wav.shard-0-of-3").write_bytes(b"")
    (folder / ".predictions.wav.tmp").write_bytes(b"")
    os.link(out, folder / "sub" / "hardlink.wav")
    os.symlink(out, folder / "sub" / "symlink.wav")
    found = expand_inputs([folder, str(folder / "**" / "*"), str(folder / "*")], output=out)
    assert found == sorted(audio[:2]) + [audio[2]]
    assert [r["path"] for r in read_records(out)] == sorted(audio)


def test_older_outputs_resume_only_when_unambiguous(setup, audio, tmp_path):
    out = tmp_path / "old.jsonl"
    predict_files(setup["model"], audio[:2], out, progress=False)
    _, *lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines) + lines[0][:20])  # as an older ser_hf wrote it, killed mid-line
    summary = predict_files(setup["model"], audio, out, progress=False)
    assert summary["skipped"] == 2 and summary["predicted"] == 1
    header, *records = _strict_json_lines(out)  # it got the header line
    assert header["ser_hf_predictions"] == 1 and [r["path"] for r in records] == audio
    old_csv = tmp_path / "old.csv"
    predict_files(setup["model"], audio[:1], old_csv, progress=False)
    rows = list(csv.reader(old_csv.open(newline="")))
    with old_csv.open("w", newline="") as handle:  # without the path_base64 column, as before
        csv.writer(handle).writerows(row[:-1] for row in rows)
    assert predict_files(setup["model"], audio, old_csv, progress=False)["skipped"] == 1
    assert [r["path"] for r in read_records(old_csv)] == audio


def test_an_output_of_the_other_format_is_refused_with_the_fix(setup, audio, tmp_path):
    jsonl, csv_out = tmp_path / "p.jsonl", tmp_path / "p.csv"
    predict_files(setup["model"], audio[:1], jsonl, progress=False)
    predict_files(setup["model"], audio[:1], csv_out, progress=False)
    before = jsonl.read_bytes(), csv_out.read_bytes()
    with pytest.raises(SERError, match=r"is a ser-hf predict JSONL output, but this job writes CSV; pass --format jsonl"):
        predict_files(setup["model"], audio, jsonl, format="csv", progress=False)
    with pytest.raises(SERError, match=r"is a ser-hf predict CSV output, but this job writes JSONL; pass --format csv"):
        predict_files(setup["model"], audio, csv_out, format="jsonl", progress=False)
    assert (jsonl.read_bytes(), csv_out.read_bytes()) == before


def test_a_foreign_file_named_like_a_shard_is_refused(setup, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    shard = tmp_path / "p.jsonl.shard-0-of-2"
    shard.write_bytes(b"my own notes, not a shard\n")
    with pytest.raises(SERError, match=r"shard of --out '.*p\.jsonl\.shard-0-of-2' exists and was not written"):
        predict_files(setup["model"], audio, out, progress=False)
    assert shard.read_bytes() == b"my own notes, not a shard\n" and not out.exists()


# ------------------------------------------------------------------------------ 2. names that are not UTF-8

def test_path_scheme_round_trips():
    name = os.fsdecode(b"/d/\xff\xfe.wav")
    fields = path_fields(name)
    assert fields == {"path": "/d/\\xff\\xfe.wav", "path_base64": base64.b64encode(b"/d/\xff\xfe.wav").decode()}
    assert record_path(fields) == name and record_path({"path": "/d/é.wav"}) == "/d/é.wav"
    assert path_fields("/d/é.wav") == {"path": "/d/é.wav"} and printable("\ud800x") == "\\ud800x"
    assert display_path(os.fsencode(name)) == "/d/\\xff\\xfe.wav"
    with pytest.raises(SERError, match="invalid path_base64"):
        record_path({"path": "x", "path_base64": "%%%"})


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_names_that_are_not_utf8_are_predicted_recorded_and_resumed(setup, tmp_path, suffix, monkeypatch):
    folder = tmp_path / "in"
    good = str(write_tone(folder / "good.wav", duration=0.3))
    odd = _not_utf8(folder)
    shutil.copy(good, odd)
    literal = str(folder / "\\xff\\xfe.wav")  # really named with a backslash: must not be mistaken for `odd`
    shutil.copy(good, literal)
    broken = _not_utf8(folder, b"\xe9broken.wav")
    with open(broken, "wb") as handle:
        handle.write(b"not audio")
    out = _not_utf8(tmp_path, b"out\xff." + suffix.encode())
    stdout, stderr = _strict_stdio(monkeypatch)
    assert main(["predict", "--model", str(setup["model"]), str(folder), "--out", out, "--no-progress"]) == 0
    summary = json.loads(stdout.getvalue().decode("utf-8"))
    assert summary["inputs"] == 4 and summary["predicted"] == 3 and summary["errors"] == 1
    assert "\\xff" in summary["out"] and "could not be decoded" in stderr.getvalue().decode("utf-8")
    records = read_records(out)
    assert sorted(map(record_key, records)) == sorted([good, odd, literal, broken])
    by_key = {record_key(r): r for r in records}
    assert by_key[odd]["path"].endswith("/\\xff\\xfe.wav") and by_key[odd]["label"] in FOUR
    assert not by_key[literal].get("path_base64") and by_key[literal]["path"] == literal
    assert "\\xe9broken.wav" in by_key[broken]["error"]
    open(out, "rb").read().decode("utf-8")  # the whole file is UTF-8
    again = predict_files(setup["model"], [folder], out, progress=False)
    assert again["skipped"] == 4 and again["predicted"] == 0 and len(read_records(out)) == 4


def test_data_summary_and_lenient_evaluate_name_files_that_are_not_utf8(setup, tmp_path, monkeypatch):
    root = make_corpus_tree("folder", tmp_path / "corpus")
    good = sorted(root.rglob("*.wav"))
    clip = good[0]
    odd = _not_utf8(clip.parent, b"odd\xff.wav")
    shutil.copy(clip, odd)
    huge = clip.parent / "huge.wav"
    sf.write(huge, np.full(8000, 3e38, dtype=np.float32), 16000, subtype="FLOAT")
    stdout, _ = _strict_stdio(monkeypatch)
    argv = ["--corpus", "folder", "--data-dir", str(root)]
    assert main(["data", "summary", *argv]) == 0
    text = stdout.getvalue().decode("utf-8")
    assert "odd\\xff.wav: its file name is not valid UTF-8" in text and "unreadable   1" in text  # headers only
    stdout.seek(0), stdout.truncate()
    assert main(["data", "summary", *argv, "--json"]) == 0
    unreadable = {record_path(item): item for item in json.loads(stdout.getvalue().decode("utf-8"))["unreadable"]}
    assert unreadable[odd]["path"].endswith("odd\\xff.wav") and odd in unreadable
    with pytest.warns(UserWarning, match=r"2 file\(s\)") as caught:
        assert main(["evaluate", "--model", str(setup["model"]), *argv, "--skip-bad-files", "--out",
                     str(tmp_path / "eval"), "--no-progress", "--n-resamples", "0"]) == 0
    message = str(caught[0].message)
    assert "odd\\xff.wav: its file name is not valid UTF-8" in message
    assert f"Audio file '{huge}' has samples as large as 3e+38" in message
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["metadata"]["clips_in_split"] == len(good)  # every clip but the two bad ones


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_an_output_of_another_models_job_is_refused_not_mixed(setup, audio, tmp_path, suffix):
    out = tmp_path / f"mix{suffix}"
    predict_files(setup["model"], audio[:1], out, progress=False)
    before = out.read_bytes()
    other = tiny_classifier("wav2vec2", tmp_path / "other", ["neutral", "happy", "sad", "angry", "fearful"])
    # A CSV records its job in its job file .mix.csv.job.json, as a JSONL output does in its header line.
    where = "its header line" if suffix == ".jsonl" else r"its job file '.*\.mix\.csv\.job\.json'"
    pattern = rf"holds predictions of model '.*hostile.*model' \({where}\).*this job runs '.*other.*model'"
    with pytest.raises(SERError, match=pattern + r".*mix two models' records.*Choose another --out"):
        predict_files(other, audio, out, progress=False)
    assert out.read_bytes() == before  # nothing written, nothing cut
    # The same model reached by another path (a moved working folder) still resumes.
    summary = predict_files(os.path.relpath(setup["model"]), audio, out, progress=False)
    assert summary["skipped"] == 1 and summary["predicted"] == 2


# ------------------------------------------------------------------------------ 3. symlink loops

def _loops(tmp_path):
    root = tmp_path / "tree"
    files = [write_tone(root / "x.wav", duration=0.2), write_tone(root / "a" / "y.wav", duration=0.2),
             write_tone(root / "a" / "b" / "z.wav", duration=0.2)]
    os.symlink("..", root / "a" / "up")  # two links back per folder: glob.glob("**") branches without end
    os.symlink("../..", root / "a" / "b" / "upup")
    os.symlink("..", root / "a" / "b" / "up")
    os.symlink("loop.wav", root / "loop.wav")  # a link to itself (ELOOP)
    return root, sorted(str(f) for f in files)


def _finishes(function, seconds: float = 60.0):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "value" in result, f"still running after {seconds} s (a symlink loop?)"
    return result["value"]


def test_globs_and_folders_through_symlink_loops_end(tmp_path):
    root, files = _loops(tmp_path)
    assert _finishes(lambda: expand_inputs([str(root / "**" / "*.wav")])) == files
    assert _finishes(lambda: glob_files(str(root / "a" / "**" / "z.wav"))) == [str(root / "a" / "b" / "z.wav")]
    found = _finishes(lambda: expand_inputs([root]))
    assert sorted(found) == sorted(files + [str(root / "loop.wav")])  # the looping link: an error record later
    with pytest.raises(AudioError, match=r"loop\.wav' is a symbolic link that loops"):
        load_audio(root / "loop.wav")
    assert sorted(p for p in walk_files(root) if p.endswith("z.wav")) == [str(root / "a" / "b" / "z.wav")]


def test_globs_without_double_star_do_not_multiply_through_symlink_loops(tmp_path):
    # Four links back to their own folder: glob.glob("*/*/.../*.wav") lists the one file 4^depth times.
    root = tmp_path / "loops"
    real = write_tone(root / "b.wav", duration=0.2)
    write_tone(root / "sub" / "c.wav", duration=0.2)
    for name in "abcd":
        os.symlink(".", root / name)
    deep = str(root / os.path.join(*["*"] * 9) / "*.wav")
    assert _finishes(lambda: glob_files(deep), seconds=10) == []  # every level is a real folder already entered
    assert glob_files(str(root / "*.wav")) == [str(real)]
    assert glob_files(str(root / "*" / "*.wav")) == [str(root / "sub" / "c.wav")]
    assert _finishes(lambda: expand_inputs([str(root / "*.wav"), str(root / "*" / "*.wav")])) == [
        str(real), str(root / "sub" / "c.wav")]


def test_corpus_scans_through_symlink_loops_end(tmp_path):
    from ser_hf.corpora.base import iter_audio_files

    root, files = _loops(tmp_path)
    assert sorted(str(p) for p in _finishes(lambda: list(iter_audio_files(root))) if p.is_file()) == files


# ------------------------------------------------------------------------------ 4. absurd samples, NaN outputs

def _huge_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    float_wav = folder / "float-3e38.wav"
    wave = np.zeros(8000, dtype=np.float32)
    wave[::50] = 3e38
    sf.write(float_wav, wave, 16000, subtype="FLOAT")
    double_wav = folder / "double-4e18.wav"
    sf.write(double_wav, np.linspace(-4e18, 4e18, 8000), 16000, subtype="DOUBLE")
    return [str(float_wav), str(double_wav)]


def test_absurd_samples_are_refused_when_decoded_naming_the_file(tmp_path):
    for path in _huge_files(tmp_path):
        with pytest.raises(AudioError, match=rf"Audio file '{path}' has samples as large as .* full scale is 1\.0"):
            load_audio(path)
    loud = tmp_path / "loud.wav"  # beyond full scale, but plausible: still decoded
    sf.write(loud, np.full(8000, MAX_ABS_SAMPLE / 2, dtype=np.float32), 16000, subtype="FLOAT")
    assert load_audio(loud).max() == pytest.approx(MAX_ABS_SAMPLE / 2)


def _nan_for_loud(recognizer, monkeypatch):
    """A model that answers NaN for clips above 0.5 (as a real one does for 3e38), normally otherwise."""
    real = recognizer.predict_waves

    def predict_waves(waves, progress=False):
        rows = np.array(real(waves, progress), dtype=np.float32)
        for row, wave in zip(rows, waves):
            if np.abs(wave).max() > 0.5:
                row[:] = np.nan
        return rows

    monkeypatch.setattr(recognizer, "predict_waves", predict_waves)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_non_finite_outputs_are_error_records_never_predictions(setup, audio, tmp_path, suffix, monkeypatch):
    recognizer = setup["recognizer"]
    loud = str(write_tone(tmp_path / "loud.wav", duration=0.3, amplitude=0.9))
    inputs = [*audio, loud, *_huge_files(tmp_path / "huge")]
    _nan_for_loud(recognizer, monkeypatch)
    out = tmp_path / f"p.{suffix}"
    summary = predict_files(recognizer, inputs, out, progress=False, chunk_size=2)
    assert summary["predicted"] == 3 and summary["errors"] == 3
    records = {r["path"]: r for r in read_records(out)}
    assert "model's output for this audio is not finite" in records[loud]["error"]
    for path in inputs[-2:]:
        assert f"Audio file '{path}' has samples as large as" in records[path]["error"]
    assert all(not records[p].get("error") for p in audio)
    if suffix == "jsonl":
        _strict_json_lines(out)
    else:
        with out.open(newline="") as handle:
            cells = [v for row in csv.DictReader(handle) for k, v in row.items() if k == "score" or k.startswith("prob_")]
        assert all(v == "" or np.isfinite(float(v)) for v in cells) and any(cells)
    with pytest.raises(AudioError, match=rf"Audio file '{loud}': the model's output .* is not finite"):
        recognizer.predict(loud)
    with pytest.raises(AudioError, match="not finite"):
        recognizer.result(np.array([np.nan, 0.1, 0.2, 0.3]))


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_job_resumed_through_a_linked_folder_never_scores_a_file_twice(setup, audio, tmp_path, suffix):
    folder = os.path.dirname(audio[0])
    out = tmp_path / f"p.{suffix}"
    assert predict_files(setup["recognizer"], [folder], out, progress=False)["predicted"] == len(audio)
    linked = tmp_path / "linked"
    linked.symlink_to(folder)
    summary = predict_files(setup["recognizer"], [str(linked)], out, progress=False)
    assert summary["skipped"] == len(audio) and summary["predicted"] == 0 and len(read_records(out)) == len(audio)


def test_a_folder_that_cannot_be_listed_gets_an_error_record_never_silence(setup, audio, tmp_path, monkeypatch,
                                                                           caplog):
    """A folder under an input folder or a glob that cannot be listed (no permission, an I/O error, a path past the
    system's limit): named in a warning and given an error record, so the job counts it among its errors (its files
    went missing without a word, and the job said it had done every input)."""
    fail_listing(monkeypatch, "sub")
    folder = os.path.dirname(audio[0])
    with caplog.at_level("WARNING"):
        found = expand_inputs([folder])
    assert found == [*sorted(audio[:2]), os.path.join(folder, "sub")]
    assert "cannot list the folder" in caplog.text and "sub (Permission denied)" in caplog.text
    assert glob_files(os.path.join(folder, "**", "*.wav")) == [*sorted(audio[:2]), os.path.join(folder, "sub")]
    summary = predict_files(setup["recognizer"], [folder], tmp_path / "p.jsonl", progress=False)
    assert (summary["predicted"], summary["errors"]) == (2, 1)
    failed = [r for r in read_records(tmp_path / "p.jsonl") if "error" in r]
    assert [record_path(r) for r in failed] == [os.path.join(folder, "sub")]
    assert "is a folder that cannot be listed (Permission denied)" in failed[0]["error"]


def test_control_characters_in_names_are_escaped_wherever_they_are_shown(setup, tmp_path, capsys):
    """A newline in a file name printed raw reads as two lines, the second a forged one (``INFO all clips decoded
    fine``); an ESC recolours the terminal, a bidirectional override reorders what follows. Messages, log arguments
    and summaries show them as escapes; records keep a UTF-8 name exactly (JSON escapes it)."""
    import logging

    from ser_hf.cli.output import NORMAL, console

    assert printable("a\nINFO b\x1b[2J\u202ec\u0085") == "a\\x0aINFO b\\x1b[2J\\u202ec\\x85"
    assert printable(printable("a\nb")) == printable("a\nb") and printable("Jos\u00e9 \u200d\u0627") == "Jos\u00e9 \u200d\u0627"
    stream = io.StringIO()
    with console(NORMAL, stream):
        logging.getLogger("ser_hf.test").info("exported %s to %s", tmp_path / "m", "out\nINFO export refused")
    assert stream.getvalue().count("\n") == 1 and "out\\x0aINFO export refused" in stream.getvalue()
    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.3)
    (corpus / "Angry" / "SM1_F99_A099.wav\nINFO all 49 clips decoded fine.wav").write_bytes(b"not audio")
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", str(corpus)]) == 0
    captured = capsys.readouterr()
    assert "SM1_F99_A099.wav\\x0aINFO all 49 clips" in captured.out + captured.err
    assert not any(line.startswith("INFO all 49") for line in (captured.out + captured.err).splitlines())
    from ser_hf._io import read_json
    from ser_hf.evaluation.breakdown import breakdown_lines
    from ser_hf.evaluation.tables import markdown_table

    forged = "A\x1b[2KINFO forged"  # a speaker id from a manifest cell: an ESC erases the terminal line
    assert markdown_table(["Speaker"], [[forged], ["C\u2028D\u0085E"]]).splitlines()[2:] == [
        "| A\\x1b[2KINFO forged |", "| C\\u2028D\\x85E |"]
    who = {"genders": {}, "speakers": [{"speaker": forged, "unweighted_accuracy": 0.125, "num_samples": 5}],
           "worst_speakers": [forged]}
    assert breakdown_lines(who)[-1] == "worst speakers: A\\x1b[2KINFO forged 12.5 (n=5)"
    (tmp_path / "m\nINFO model loaded fine").mkdir()
    (tmp_path / "m\nINFO model loaded fine" / "config.json").write_text("[]")
    with pytest.raises(SERError) as raised:  # a name inside a message, not only the message, is one line
        read_json(tmp_path / "m\nINFO model loaded fine" / "config.json", fix="Restore it.")
    assert "\n" not in str(raised.value) and "m\\x0aINFO model loaded fine" in str(raised.value)
    out = tmp_path / "p.jsonl"
    clip = write_tone(tmp_path / "a\nb.wav", duration=0.3, frequency=200, seed=0)
    predict_files(setup["recognizer"], [str(clip)], out, progress=False)
    assert [record_path(r) for r in read_records(out)] == [str(clip)]
