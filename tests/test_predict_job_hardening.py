"""ser-hf predict jobs under hostile use: concurrent jobs, resumes by another job, bad devices and speaker inputs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.inference import jobs
from ser_hf.inference.job_identity import lock_output
from ser_hf.inference.jobs import predict_files, read_records, shard_files
from ser_hf.inference.outputs import job_sidecar
from ser_hf.processes import Processes
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    return {"a": tiny_classifier("wav2vec2", tmp / "a", FOUR, seed=0),
            "b": tiny_classifier("wav2vec2", tmp / "b", FOUR, seed=1),
            "five": tiny_classifier("wav2vec2", tmp / "five", FOUR + ["fearful"], seed=2)}


@pytest.fixture
def audio(tmp_path):
    return [str(write_tone(tmp_path / "audio" / f"spk{i % 2}" / f"clip{i}.wav", duration=0.3, frequency=200 + 40 * i,
                           seed=i)) for i in range(6)]


# ------------------------------------------------------------------------------ 1. one job per --out

@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_second_job_on_the_same_out_is_refused_while_the_first_runs(models, audio, tmp_path, suffix, capsys):
    out = tmp_path / f"p.{suffix}"
    with lock_output(out):  # what a running job holds
        with pytest.raises(SERError, match=rf"--out '.*p\.{suffix}' is being written by another ser-hf predict job.*"
                                           r"run this command again.*or choose another --out"):
            predict_files(models["a"], audio, out, progress=False)
        assert not out.exists()
        assert main(["predict", "--model", str(models["a"]), *audio, "--out", str(out), "--no-progress"]) == 2
        assert "is being written by another ser-hf predict job" in capsys.readouterr().err
    summary = predict_files(models["a"], audio, out, progress=False)
    assert summary["predicted"] == len(audio) and len(read_records(out)) == len(audio)
    assert not (tmp_path / f".p.{suffix}.lock").exists()  # removed when the job ends


def test_a_lock_left_by_a_killed_job_does_not_block(models, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from ser_hf.inference.job_identity import lock_output\n"
                               "with lock_output(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SERError, match="being written by another"):
            predict_files(models["a"], audio, out, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".p.jsonl.lock").exists()  # kill -9: the file stays, the kernel released the lock
    assert predict_files(models["a"], audio, out, progress=False)["predicted"] == len(audio)


def test_the_main_process_of_a_multi_process_job_holds_the_lock(models, audio, tmp_path, monkeypatch):
    out = tmp_path / "p.jsonl"
    monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=0, world=2))
    with lock_output(out), pytest.raises(SERError, match="being written by another"):
        predict_files(models["a"], audio, out, progress=False)
    assert not shard_files(out) and not out.exists()


# ------------------------------------------------------------------------------ 2, 5. CSV and replaced models

def test_a_csv_of_another_model_with_the_same_emotions_is_refused(models, audio, tmp_path):
    out = tmp_path / "p.csv"
    predict_files(models["a"], audio[:2], out, progress=False)
    assert json.loads(job_sidecar(out).read_text())["job"]["model_id"] == os.path.realpath(models["a"])
    before = out.read_bytes()
    with pytest.raises(SERError, match=r"holds predictions of model '.*a/model' \(its job file '.*\.p\.csv\.job\.json'\); "
                                       r"this job runs '.*b/model'.*Choose another --out"):
        predict_files(models["b"], audio, out, progress=False)
    assert out.read_bytes() == before
    with open(out, newline="") as handle:  # still a plain CSV
        assert [row["path"] for row in csv.DictReader(handle)] == audio[:2]


def test_a_csv_without_its_job_file_resumes_with_a_warning_when_its_emotions_match(models, audio, tmp_path):
    out = tmp_path / "p.csv"
    predict_files(models["a"], audio[:2], out, progress=False)
    job_sidecar(out).unlink()  # as an older ser_hf wrote it
    with pytest.raises(SERError, match=r"holds predictions over the emotions .*predicts .*'fearful'"):
        predict_files(models["five"], audio, out, progress=False)
    with pytest.warns(UserWarning, match=r"has no readable job file.*only its emotions and test-time copies"):
        summary = predict_files(models["a"], audio, out, progress=False)
    assert summary["skipped"] == 2 and summary["predicted"] == 4 and job_sidecar(out).is_file()


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_checkpoint_replaced_at_the_same_path_is_another_model(models, audio, tmp_path, suffix):
    model, out = tmp_path / "mdl", tmp_path / f"p.{suffix}"
    shutil.copytree(models["a"], model)
    predict_files(model, audio[:2], out, progress=False)
    shutil.rmtree(model)
    shutil.copytree(models["b"], model)
    with pytest.raises(SERError, match=r"whose files have changed since.*replaced or retrained.*Choose another --out"):
        predict_files(model, audio, out, progress=False)
    assert len(read_records(out)) == 2
    shutil.rmtree(model)
    shutil.copytree(models["a"], model)  # the same files again (a copy: other mtimes) resume
    (model / "README.md").write_text("a new card changes no prediction")
    assert predict_files(model, audio, out, progress=False)["skipped"] == 2


# ------------------------------------------------------------------------------ 3, 4. shards of another job

@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_leftover_shard_of_another_job_is_refused_naming_it(models, audio, tmp_path, suffix):
    done = tmp_path / "done.jsonl"
    predict_files(models["a"], audio[:4], done, progress=False)
    out = tmp_path / f"sh.{suffix}"
    shard = tmp_path / f"sh.{suffix}.shard-0-of-2"
    os.replace(done, shard)
    with pytest.raises(SERError, match=rf"shard of --out '.*sh\.{suffix}\.shard-0-of-2' holds predictions of model "
                                       r"'.*a/model'.*this job runs '.*b/model'.*delete the leftover shard"):
        predict_files(models["b"], audio, out, progress=False)
    assert not out.exists() and shard.is_file()
    with pytest.raises(SERError, match=r"shard of --out .* made with --top-k not given .*this job runs with --top-k 2"):
        predict_files(models["a"], audio, out, progress=False, top_k=2)
    summary = predict_files(models["a"], audio, out, progress=False)  # the same job merges it
    assert summary["skipped"] == 4 and not shard_files(out) and len(read_records(out)) == 6


def test_a_multi_process_csv_resume_checks_the_emotions(models, audio, tmp_path, monkeypatch):
    out = tmp_path / "p.csv"
    predict_files(models["a"], audio[:2], out, progress=False)
    job_sidecar(out).unlink()  # only the prob_ columns tell the emotions apart
    before = out.read_bytes()
    monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=0, world=2))
    with pytest.raises(SERError, match=r"emotions \['neutral', 'happy', 'sad', 'angry'\].*"
                                       r"predicts .*'fearful'"):
        predict_files(models["five"], audio, out, progress=False)
    assert out.read_bytes() == before and not shard_files(out)


# ------------------------------------------------------------------------------ 6. options are part of the job

@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_resume_with_another_top_k_is_refused(models, audio, tmp_path, suffix):
    out = tmp_path / f"p.{suffix}"
    predict_files(models["a"], audio[:2], out, progress=False, top_k=2)
    with pytest.raises(SERError, match=r"made with --top-k 2 .*this job runs with --top-k not given.*same options"):
        predict_files(models["a"], audio, out, progress=False)
    assert predict_files(models["a"], audio, out, progress=False, top_k=2)["skipped"] == 2


def test_an_output_of_an_older_version_resumes_with_a_warning(models, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    predict_files(models["a"], audio[:2], out, progress=False)
    header, *rest = out.read_text().splitlines(keepends=True)
    job = json.loads(header)
    for key in ("model_fingerprint", "top_k", "speaker_pattern", "speaker_column"):
        del job["job"][key]
    out.write_text(json.dumps(job) + "\n" + "".join(rest))
    with pytest.warns(UserWarning, match=r"older ser_hf that did not record .*--top-k"):
        assert predict_files(models["a"], audio[:3], out, progress=False)["skipped"] == 2
    # The resume gave the output this version's header: the next resume checks every option instead of warning.
    assert json.loads(out.read_text().splitlines()[0])["job"]["top_k"] is None
    assert len(out.read_text().splitlines()) == 1 + 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predict_files(models["a"], audio, out, progress=False)["skipped"] == 3
    with pytest.raises(SERError, match=r"made with --top-k not given .*this job runs with --top-k 2"):
        predict_files(models["a"], audio, out, progress=False, top_k=2)


# ------------------------------------------------------------------------------ 8. devices

@pytest.mark.parametrize("device", ["bogus", "cuda:99", "mps"])
def test_a_bad_device_is_a_usage_error_before_the_model_loads(models, audio, tmp_path, device, capsys):
    import torch

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("this machine has 100 GPUs")
    with pytest.raises(SERError, match=rf"--device '{device}' is not (a device torch knows|available).*Available here: "
                                       r"\['cpu'"):
        predict_files(models["a"], audio, tmp_path / "p.jsonl", device=device, progress=False)
    assert main(["predict", "--model", str(models["a"]), *audio, "--out", str(tmp_path / "p.jsonl"),
                 "--device", device, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.jsonl").exists()


def test_cuda_on_a_machine_without_it_names_what_is_available(models, audio, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SERError, match=r"--device 'cuda' is not available: no CUDA GPU is visible.*\['cpu'\]"):
        predict_files(models["a"], audio, tmp_path / "p.jsonl", device="cuda", progress=False)
    assert predict_files(models["a"], audio[:1], tmp_path / "p.jsonl", device="cpu", progress=False)["predicted"] == 1


# ------------------------------------------------------------------------------ 15. --out names a file

@pytest.mark.parametrize("name", ["newdir/", "newdir//", "newdir/.", "newdir/sub/.."])
def test_an_out_naming_a_folder_to_be_is_refused(models, audio, tmp_path, name, capsys):
    with pytest.raises(SERError, match=r"--out '.*newdir/.*' names a folder.*--out is the output file, "
                                       r"e.g. --out .*newdir.*/predictions.jsonl"):
        predict_files(models["a"], audio, f"{tmp_path}/{name}", progress=False)
    assert main(["predict", "--model", str(models["a"]), *audio, "--out", f"{tmp_path}/{name}", "--no-progress"]) == 2
    assert "names a folder" in capsys.readouterr().err
    assert not (tmp_path / "newdir").exists()


# ------------------------------------------------------------------------------ 11-14. speakers of the inputs

def _manifest(path, rows, bom=False):
    path.write_text(("\ufeff" if bom else "") + "path,speaker\n" + "".join(f"{p},{s}\n" for p, s in rows),
                    encoding="utf-8")
    return str(path)


def test_speaker_inputs_are_checked(audio, tmp_path):
    from ser_hf.inference.inputs import expand_inputs, speakers_of

    with pytest.raises(SERError, match=r"--speaker-pattern 'Actor_\(\\\\d\+\)' finds no speaker in any of the 6 "
                                       r"input\(s\) \(e.g. '.*clip0.wav'\).*leave the option out"):
        speakers_of(audio, audio, pattern=r"Actor_(\d+)")
    with pytest.warns(UserWarning, match=r"finds no speaker for 3 of 6 input\(s\)"):
        assert set(speakers_of(audio, audio, pattern=r"(spk0)").values()) == {"spk0", None}
    with pytest.raises(SERError, match=r"has no group; wrap the speaker id in \(\.\.\.\), e\.g\. "):
        speakers_of(audio, audio, pattern=r"spk\d")
    with pytest.warns(UserWarning, match="finds no speaker for 3"):  # an empty group is no speaker, not ''
        assert speakers_of(audio, audio, pattern=r"spk(0*)/")[audio[1]] is None
    blank = _manifest(tmp_path / "blank.csv", [(p, " ") for p in audio])
    with pytest.raises(SERError, match=r"--speaker-column 'speaker' finds no speaker.*Fill the 'speaker' cells"):
        speakers_of(expand_inputs([blank]), [blank], column="speaker")
    bom = _manifest(tmp_path / "bom.csv", [(p, f" s{i % 2} ") for i, p in enumerate(audio)], bom=True)
    assert expand_inputs([bom]) == audio  # Excel's "CSV UTF-8" starts with a BOM
    assert list(speakers_of(audio, [bom], column="speaker").values()) == ["s0", "s1"] * 3
    twice = _manifest(tmp_path / "twice.csv", [(audio[0], "s0"), (audio[0], "s0"), (audio[1], "s1")])
    assert speakers_of(expand_inputs([twice]), [twice], column="speaker") == {audio[0]: "s0", audio[1]: "s1"}
    clash = _manifest(tmp_path / "clash.csv", [(audio[0], "s0"), (audio[1], "s1"), (audio[0], "s9")])
    with pytest.raises(SERError, match=r"file '.*clip0.wav' is listed twice with different speakers in the 'speaker' "
                                       r"column \('s0', then 's9'.*Fix or remove one of the rows"):
        speakers_of(expand_inputs([clash]), [clash], column="speaker")



def test_a_manifest_input_with_a_stray_quote_is_refused_naming_the_line(models, audio, tmp_path, capsys):
    from ser_hf.inference.inputs import expand_inputs

    rows = [(p, f"s{i % 2}") for i, p in enumerate(audio[:4])]
    unclosed = _manifest(tmp_path / "unclosed.csv", rows)
    text = open(unclosed).read().splitlines(keepends=True)
    text[2] = text[2].replace(",s", ',"s')
    open(unclosed, "w").write("".join(text))
    with pytest.raises(SERError, match=r"unclosed\.csv': line 3 opens a quoted cell .* never closed"):
        expand_inputs([unclosed])
    assert main(["predict", "--model", str(models["a"]), unclosed, "--out", str(tmp_path / "p.jsonl"),
                 "--no-progress"]) != 0
    assert "line 3 opens a quoted cell" in capsys.readouterr().err and not (tmp_path / "p.jsonl").exists()
    closed = tmp_path / "closed.csv"  # the quote closes two rows later: three rows read as one
    text[4] = text[4].replace(",s1", ',s1"')
    closed.write_text("".join(text))
    with pytest.raises(SERError, match=r"the row starting in line 3 runs on to line 5"):
        expand_inputs([str(closed)])


def test_one_file_under_two_names_with_two_speakers_is_refused(audio, tmp_path):
    from ser_hf.inference.inputs import expand_inputs, speakers_of

    hard = tmp_path / "hard.wav"
    os.link(audio[0], hard)
    clash = _manifest(tmp_path / "clash.csv", [(audio[0], "s0"), (audio[1], "s1"), (hard, "s9")])
    with pytest.raises(SERError, match=r"file '.*hard\.wav' \(also as '.*clip0\.wav', the same file\) is listed twice "
                                       r"with different speakers .*\('s0', then 's9'"):
        speakers_of(expand_inputs([clash]), [clash], column="speaker")
    same = _manifest(tmp_path / "same.csv", [(audio[0], "s0"), (audio[1], "s1"), (hard, " s0 ")])
    assert speakers_of(expand_inputs([same]), [same], column="speaker")[str(hard)] == "s0"

# ------------------------------------------------------------------------------ 6, 7, 10. speaker-adaptive jobs

@pytest.fixture(scope="module")
def adaptive(tiny_adaptive_checkpoint):
    corpus, checkpoint = tiny_adaptive_checkpoint
    return checkpoint, str(Path(corpus[0]["audio"]).parents[1])  # the URDU tree: ROOT/<emotion>/<clip>


SPEAKER = r"/(S[MF]\d)_"


def test_speaker_jobs_write_chunk_by_chunk_and_resume_to_the_same_scores(adaptive, tmp_path, monkeypatch):
    checkpoint, urdu = adaptive
    whole = tmp_path / "whole.jsonl"
    predict_files(checkpoint, [urdu], whole, speaker_pattern=SPEAKER, progress=False)
    expected = {r["path"]: r for r in read_records(whole)}
    out, real, writes = tmp_path / "p.jsonl", jobs.append_jsonl, []

    def killed_after_three_chunks(path, records, header):
        if len(writes) == 3:
            raise KeyboardInterrupt  # a kill: what was written stays
        writes.append(len(records))
        real(path, records, header)

    monkeypatch.setattr(jobs, "append_jsonl", killed_after_three_chunks)
    with pytest.raises(KeyboardInterrupt):
        predict_files(checkpoint, [urdu], out, speaker_pattern=SPEAKER, progress=False, chunk_size=3)
    assert writes == [3, 3, 2] and len(read_records(out)) == 8  # 8 clips per speaker: written 3 at a time
    monkeypatch.setattr(jobs, "append_jsonl", real)
    summary = predict_files(checkpoint, [urdu], out, speaker_pattern=SPEAKER, progress=False, chunk_size=3)
    assert summary["skipped"] == 8 and summary["predicted"] == 40
    records = read_records(out)
    assert sorted(r["path"] for r in records) == sorted(expected)  # each file once
    for record in records:  # enrolled from all of the speaker's clips, as in one run
        assert record["speaker"] == expected[record["path"]]["speaker"] and record["adapted"]
        assert record["scores"] == pytest.approx(expected[record["path"]]["scores"], abs=1e-5)
    with pytest.raises(SERError, match=r"made with --speaker-pattern '/\(S\[MF\]\\\\d\)_' .*this job runs with "
                                       r"--speaker-pattern not given.*Run it with the same options"):
        predict_files(checkpoint, [urdu], out, progress=False)


def test_a_csv_speaker_job_keeps_speaker_and_adapted(adaptive, tmp_path):
    checkpoint, urdu = adaptive
    out = tmp_path / "p.csv"
    predict_files(checkpoint, [urdu], out, speaker_pattern=SPEAKER, progress=False, chunk_size=5)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:6] == ["path", "label", "score", "error", "speaker", "adapted"]
    assert {row["speaker"] for row in rows} == {"SM1", "SF2", "SM3", "SF4", "SM5", "SF6"}
    assert {row["adapted"] for row in rows} == {"true"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predict_files(checkpoint, [urdu], out, speaker_pattern=SPEAKER, progress=False)["skipped"] == 48
    with pytest.raises(SERError, match=r"made with --speaker-pattern .*this job runs with --speaker-pattern '/\(S"):
        predict_files(checkpoint, [urdu], out, speaker_pattern=r"/(S[MF])\d_", progress=False)


def test_a_csv_keeps_the_dataset_row_of_each_record(models, audio, tmp_path):
    out = tmp_path / "p.csv"
    fields = {path: {"dataset": "d", "split": "train", "row": i} for i, path in enumerate(audio)}
    predict_files(models["a"], audio[:3], out, progress=False, record_fields=fields)
    predict_files(models["a"], audio, out, progress=False, record_fields=fields, chunk_size=2)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:7] == ["path", "label", "score", "error", "dataset", "split", "row"]
    assert [(row["path"], row["row"]) for row in rows] == [(path, str(i)) for i, path in enumerate(audio)]


# ------------------------------------------------------------------------------ re-audit: the model fingerprint

def test_the_fingerprint_covers_only_what_a_prediction_reads(models, tmp_path):
    from ser_hf.inference.job_identity import fingerprinted_files

    model = tmp_path / "mdl"
    shutil.copytree(models["a"], model)
    for name in ("speaker_adaptation.json", "speaker_adaptation.safetensors", "ser_hf_run.json"):
        (model / name).write_text("{}")
    names = [path.name for path in fingerprinted_files(model, speakers=False)]
    assert names == ["config.json", "model.safetensors", "preprocessor_config.json", "ser_hf_run.json"]
    assert {"speaker_adaptation.json", "speaker_adaptation.safetensors"} <= {
        path.name for path in fingerprinted_files(model, speakers=True)}
    export = tmp_path / "export"  # an ONNX graph with its weights in an external file beside it
    export.mkdir()
    for name in ("model.onnx", "model.onnx.data", "config.json", "ser_hf_export.json", "report.md"):
        (export / name).write_text("x")
    assert {"model.onnx", "model.onnx.data"} <= {path.name for path in fingerprinted_files(export / "model.onnx",
                                                                                           speakers=False)}


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_reports_written_into_the_checkpoint_do_not_stop_a_resume(models, audio, tmp_path, suffix):
    # `ser-hf evaluate --model u2 --out u2` writes its reports into the checkpoint folder: the model is the same.
    model, out = tmp_path / "u2", tmp_path / f"p.{suffix}"
    shutil.copytree(models["a"], model)
    predict_files(model, audio[:2], out, progress=False)
    for name in ("report.json", "report.md", "predictions.csv", "confusion_matrix.png", "notes.txt"):
        (model / name).write_text("written after the job started")
    (model / "eval").mkdir()
    (model / "eval" / "report.json").write_text("{}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning: the fingerprint is comparable and equal
        assert predict_files(model, audio, out, progress=False)["skipped"] == 2
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "final_dropout": 0.5}))  # a file it reads: refused
    with pytest.raises(SERError, match=r"whose files have changed since.*config\.json.*replaced or retrained"):
        predict_files(model, audio + [audio[0]], out, progress=False)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_an_output_fingerprinted_by_an_earlier_definition_resumes_with_a_warning(models, audio, tmp_path, suffix):
    model, out = tmp_path / "u2", tmp_path / f"p.{suffix}"
    shutil.copytree(models["a"], model)
    predict_files(model, audio[:2], out, progress=False)
    where = job_sidecar(out) if suffix == "csv" else out
    header, *rest = where.read_text().splitlines(keepends=True)
    job = json.loads(header)
    del job["job"]["model_fingerprint_version"]  # what ser_hf wrote before the version was recorded
    job["job"]["model_fingerprint"] = "0123456789abcdef"  # it hashed every file, the reports too
    where.write_text(json.dumps(job) + "\n" + "".join(rest))
    with pytest.warns(UserWarning, match=r"fingerprint of another definition.*version 1.*could not be checked.*"
                                         r"Resuming it"):
        summary = predict_files(model, audio, out, progress=False)
    assert summary["skipped"] == 2 and summary["predicted"] == 4


def test_a_resume_with_other_speaker_options_names_the_option_not_a_retrained_model(adaptive, tmp_path):
    checkpoint, urdu = adaptive
    out = tmp_path / "p.jsonl"
    predict_files(checkpoint, [urdu], out, progress=False, chunk_size=64)
    with pytest.raises(SERError, match=r"made with --speaker-pattern not given .*this job runs with --speaker-pattern"):
        predict_files(checkpoint, [urdu], out, progress=False, speaker_pattern=SPEAKER)


# ------------------------------------------------------------------------------ re-audit: job and lock files

def _predict_cli(model, audio, out, capsys) -> tuple[int, str]:
    code = main(["predict", "--model", str(model), *audio, "--out", str(out), "--no-progress"])
    return code, capsys.readouterr().err


def test_a_symlinked_csv_job_file_is_refused_and_its_target_left_as_it_was(models, audio, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mysettings.json").write_text('{"my":"settings"}\n')
    os.symlink("mysettings.json", tmp_path / ".c1.csv.job.json")
    code, err = _predict_cli(models["a"], audio, "c1.csv", capsys)
    assert code == 2 and "Traceback" not in err
    assert ".c1.csv.job.json" in err and "is a symbolic link (to 'mysettings.json')" in err and "Remove it" in err
    assert (tmp_path / "mysettings.json").read_text() == '{"my":"settings"}\n'
    assert not (tmp_path / "c1.csv").exists()
    os.unlink(tmp_path / ".c1.csv.job.json")
    assert predict_files(models["a"], audio, "c1.csv", progress=False)["predicted"] == len(audio)
    # Put there later (between two runs): still refused, never written through.
    os.unlink(tmp_path / ".c1.csv.job.json")
    os.symlink("mysettings.json", tmp_path / ".c1.csv.job.json")
    with pytest.raises(SERError, match="is a symbolic link"):
        predict_files(models["a"], audio, "c1.csv", progress=False)
    assert (tmp_path / "mysettings.json").read_text() == '{"my":"settings"}\n'


def test_a_csv_job_file_is_replaced_by_its_name_never_written_through_a_link(tmp_path):
    from ser_hf.inference.outputs import write_csv

    out = tmp_path / "c.csv"
    header = {"ser_hf_predictions": 1, "job": {"model": "m"}}
    write_csv(out, [], ["happy"], header)
    assert json.loads(job_sidecar(out).read_text()) == header
    os.replace(job_sidecar(out), tmp_path / "elsewhere.json")
    os.symlink(tmp_path / "elsewhere.json", job_sidecar(out))  # a link slipped in after the up-front check
    with pytest.raises(SERError, match="job file of --out.*symbolic link"):
        write_csv(out, [], ["happy"], {**header, "job": {"model": "n"}})
    assert json.loads((tmp_path / "elsewhere.json").read_text()) == header


@pytest.mark.parametrize("name", [".c1.csv.job.json", ".c1.csv.lock"])
def test_a_folder_at_a_job_file_is_refused_before_any_work(models, audio, tmp_path, name, monkeypatch):
    (tmp_path / name).mkdir()
    monkeypatch.setattr(jobs, "_load", lambda *a, **k: pytest.fail("the model loaded before the check"))
    with pytest.raises(SERError, match=rf"{name.replace('.', '[.]')}'.*is a folder.*Remove it.*Nothing was changed"):
        predict_files(models["a"], audio, tmp_path / "c1.csv", progress=False)
    assert not (tmp_path / "c1.csv").exists() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("target", ["missing.txt", "nofolder/missing.txt", "real.txt"])
def test_a_lock_path_that_is_a_symlink_is_refused_and_nothing_is_made_at_its_target(models, audio, tmp_path,
                                                                                  target, capsys):
    (tmp_path / "real.txt").write_text("mine")
    os.symlink(target, tmp_path / ".q4.jsonl.lock")
    code, err = _predict_cli(models["a"], audio, tmp_path / "q4.jsonl", capsys)
    assert code == 2 and "Traceback" not in err and "cannot write the output" not in err
    assert ".q4.jsonl.lock" in err and "the lock file of --out" in err and "symbolic link" in err and "rm " in err
    assert not (tmp_path / "missing.txt").exists() and not (tmp_path / "nofolder").exists()
    assert (tmp_path / "real.txt").read_text() == "mine" and not (tmp_path / "q4.jsonl").exists()
    with pytest.raises(SERError, match="symbolic link"):  # the lock itself refuses it too (library callers)
        with lock_output(tmp_path / "q4.jsonl"):
            pass
    assert (tmp_path / ".q4.jsonl.lock").is_symlink()


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_an_output_with_another_name_hard_linked_to_it_is_refused(models, audio, tmp_path, suffix, capsys):
    out, other = tmp_path / f"cc.{suffix}", tmp_path / f"cchard.{suffix}"
    predict_files(models["a"], audio[:2], out, progress=False)
    os.link(out, other)
    before = out.read_bytes()
    with lock_output(out):  # a job holds cc: the same file by its other name must not run beside it
        code, err = _predict_cli(models["a"], audio, other, capsys)
    assert code == 2 and "has 2 names (hard links" in err and "copy the file" in err and "Traceback" not in err
    code, err = _predict_cli(models["a"], audio, out, capsys)
    assert code == 2 and "has 2 names" in err
    assert out.read_bytes() == before
    other.unlink()
    assert predict_files(models["a"], audio, out, progress=False)["skipped"] == 2


# ------------------------------------------------------------------------------ re-audit: ~ in --out

def test_a_tilde_in_out_after_an_equals_sign_is_the_home_folder(models, audio, tmp_path, monkeypatch, capsys):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert main(["predict", "--model", str(models["a"]), *audio, "--out=~/pp.jsonl", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(home / "pp.jsonl")
    assert not (work / "~").exists() and len(read_records(home / "pp.jsonl")) == len(audio)
    assert predict_files(models["a"], audio, "~/pp.jsonl", progress=False)["skipped"] == len(audio)
