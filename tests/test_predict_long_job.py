"""`ser-hf predict --window`: a timeline per file (predict_long) in a resumable job, its identity and refusals."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.inference import jobs
from ser_hf.inference.jobs import predict_files, read_records, shard_files
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.processes import Processes
from ser_hf.testing.corpora import voice_like, write_tone
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000
LONG_SECONDS = 310  # longer than a clip may last (MAX_CLIP_DURATION, 300 s)
WINDOW = {"window": 3.0, "hop": 1.0}

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("timeline-model"), FOUR)


@pytest.fixture(scope="module")
def recognizer(model):
    return EmotionRecognizer.from_pretrained(model)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """A 310 s recording of digital silence around 4 s of voice (gating keeps it cheap), a clip, a silent file,
    and files that cannot be scored."""
    folder = tmp_path_factory.mktemp("timeline-audio")
    long = np.zeros(LONG_SECONDS * RATE, np.float32)
    long[100 * RATE: 104 * RATE] = voice_like(4.0, 200.0, RATE)
    sf.write(folder / "interview.wav", long, RATE, subtype="PCM_16")
    sf.write(folder / "silence.wav", np.zeros(4 * RATE, np.float32), RATE, subtype="PCM_16")
    write_tone(folder / "clip.wav", duration=1.5, frequency=260)
    (folder / "bad" / "broken.wav").parent.mkdir()
    (folder / "bad" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    write_tone(folder / "bad" / "blip.wav", duration=0.05)  # shorter than the shortest clip, 0.1 s
    names = {"long": "interview.wav", "silent": "silence.wav", "clip": "clip.wav", "broken": "bad/broken.wav",
             "blip": "bad/blip.wav"}
    return {"folder": folder, **{key: str(folder / name) for key, name in names.items()}}


def _header_and_records(out):
    header, *records = [json.loads(line) for line in out.read_text().splitlines()]
    return header["job"], {record["path"]: record for record in records}


def _as_predict_long(recognizer, path, **settings) -> dict:
    """What predict_long says of ``path``, in a timeline record's fields."""
    result = recognizer.predict_long(path, **settings)
    overall = result["overall"] or {"label": None, "score": None, "scores": None}
    return {"path": path, **overall, "silent": result["overall"] is None, "duration": result["duration"],
            "timeline": result["timeline"], "skipped": result["skipped"]}


def test_a_recording_longer_than_a_clip_gets_a_timeline_instead_of_an_error(model, recognizer, audio, tmp_path,
                                                                            capsys):
    inputs = [audio["long"], audio["clip"], audio["silent"]]
    clips = tmp_path / "clips.jsonl"
    assert main(["predict", "--model", str(model), *inputs, "--out", str(clips), "--no-progress"]) == 0
    assert "too long for one emotion clip" in _header_and_records(clips)[1][audio["long"]]["error"]

    out = tmp_path / "timelines.jsonl"
    assert main(["predict", "--model", str(model), *inputs, "--out", str(out), "--no-progress", "--window", "3",
                 "--hop", "1", "--top-k", "2"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["errors"] == 0
    job, records = _header_and_records(out)
    assert (job["window"], job["hop"], job["vad_threshold_db"], job["top_k"]) == (3.0, 1.0, -40.0, 2)
    assert list(records) == inputs
    for path in inputs:
        assert records[path] == _as_predict_long(recognizer, path, **WINDOW, top_k=2)
    long = records[audio["long"]]
    assert long["duration"] == LONG_SECONDS and not long["silent"] and long["label"] in FOUR
    assert len(long["scores"]) == 2 and all(len(window["scores"]) == 2 for window in long["timeline"])
    assert 97 <= long["timeline"][0]["start"] and long["timeline"][-1]["end"] <= 107  # windows over the voice only
    assert len(long["timeline"]) + len(long["skipped"]) == LONG_SECONDS - 2  # every window, scored or gated
    silent = records[audio["silent"]]
    assert (silent["silent"], silent["label"], silent["score"], silent["scores"], silent["timeline"]) == \
        (True, None, None, None, [])
    assert silent["skipped"] == [[0.0, 3.0], [1.0, 4.0]]


def test_an_unreadable_file_gets_an_error_record_while_the_others_are_scored(model, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    summary = predict_files(model, [audio["folder"]], out, progress=False, window=2.0)
    assert (summary["inputs"], summary["predicted"], summary["errors"]) == (5, 3, 2)
    records = _header_and_records(out)[1]
    for bad in ("broken", "blip"):
        assert set(records[audio[bad]]) == {"path", "error"}
    assert "broken.wav" in records[audio["broken"]]["error"]
    assert records[audio["long"]]["timeline"] and "error" not in records[audio["clip"]]


def test_the_gate_can_be_turned_off(model, recognizer, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(model), audio["silent"], "--out", str(out), "--no-progress",
                 "--window", "2", "--vad-threshold-db", "none"]) == 0
    job, records = _header_and_records(out)
    assert job["vad_threshold_db"] is None and job["hop"] == 1.0  # the default hop, recorded
    record = records[audio["silent"]]
    assert record == _as_predict_long(recognizer, audio["silent"], window=2.0, vad_threshold_db=None)
    assert len(record["timeline"]) == 3 and record["skipped"] == [] and not record["silent"]


def test_a_resume_skips_the_files_done(model, audio, tmp_path):
    out = tmp_path / "p.jsonl"
    predict_files(model, [audio["clip"]], out, progress=False, **WINDOW)
    first = out.read_bytes()
    summary = predict_files(model, [audio["clip"], audio["long"]], out, progress=False, **WINDOW)
    assert (summary["skipped"], summary["predicted"]) == (1, 1)
    assert out.read_bytes().startswith(first) and len(read_records(out)) == 2
    done = out.read_bytes()
    # --window 3 alone is the same job: its default hop is 1 s.
    again = predict_files(model, [audio["clip"], audio["long"]], out, progress=False, window=3)
    assert (again["skipped"], again["predicted"]) == (2, 0) and out.read_bytes() == done


@pytest.mark.parametrize(("change", "said"), [
    ({"window": 2.0}, "--window 2 --hop 1 --vad-threshold-db -40"),
    ({"hop": 0.5}, "--window 3 --hop 0.5 --vad-threshold-db -40"),
    ({"vad_threshold_db": None}, "--window 3 --hop 1 --vad-threshold-db none"),
    ({"vad_threshold_db": -30}, "--window 3 --hop 1 --vad-threshold-db -30"),
], ids=["window", "hop", "gate-off", "gate-level"])
def test_a_resume_with_other_window_settings_is_refused_and_leaves_the_output(model, audio, tmp_path, change, said):
    out = tmp_path / "p.jsonl"
    predict_files(model, [audio["clip"]], out, progress=False, **WINDOW)
    before = out.read_bytes()
    with pytest.raises(SERError, match=rf"--out '.*p\.jsonl' holds timelines made with --window 3 --hop 1 "
                                       rf"--vad-threshold-db -40 \(its header line\); this job runs with {said}\. "
                                       rf"Resuming would mix timelines of different windows or gates.*Run it with "
                                       rf"--window 3 --hop 1 --vad-threshold-db -40, choose another --out"):
        predict_files(model, [audio["clip"], audio["long"]], out, progress=False, **{**WINDOW, **change})
    assert out.read_bytes() == before


def test_clip_and_timeline_outputs_never_resume_each_other(model, audio, tmp_path, capsys):
    clips, timelines = tmp_path / "clips.jsonl", tmp_path / "timelines.jsonl"
    predict_files(model, [audio["clip"]], clips, progress=False)
    predict_files(model, [audio["clip"]], timelines, progress=False, **WINDOW)
    assert not {"window", "hop", "vad_threshold_db"} & set(_header_and_records(clips)[0])  # a clip job's, as before
    before = {path: path.read_bytes() for path in (clips, timelines)}
    with pytest.raises(SERError, match=r"'.*clips\.jsonl' holds one prediction per file \(made without --window\) "
                                       r"\(its header line\); this job runs with --window 3 --hop 1 --vad-threshold-db "
                                       r"-40\. Resuming would mix timelines and one-clip predictions in one file\. Run "
                                       r"it without --window"):
        predict_files(model, [audio["clip"], audio["long"]], clips, progress=False, **WINDOW)
    assert main(["predict", "--model", str(model), audio["clip"], "--out", str(timelines), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds timelines made with --window 3 --hop 1 --vad-threshold-db -40 (its header line); this job runs " \
           "without --window" in err and "Run it with --window 3 --hop 1" in err
    assert {path: path.read_bytes() for path in (clips, timelines)} == before


def test_an_output_of_a_version_before_the_header_line_is_a_clip_job(model, audio, tmp_path):
    out = tmp_path / "old.jsonl"
    record = {"path": audio["clip"], "label": "sad", "score": 0.4, "scores": dict.fromkeys(FOUR, 0.25)}
    out.write_text(json.dumps(record) + "\n")
    with pytest.raises(SERError, match=r"'.*old\.jsonl' holds one prediction per file \(made without --window\) \(it "
                                       r"has no header line, as the outputs of ser_hf versions before it\); this job "
                                       r"runs with --window 3"):
        predict_files(model, [audio["clip"], audio["long"]], out, progress=False, **WINDOW)
    assert out.read_text() == json.dumps(record) + "\n"


@pytest.mark.parametrize(("flags", "name", "message"), [
    (["--window", "0.05"], "p.jsonl", r"window \(--window\) must be a number of seconds in \[0.1, 300\], got 0.05; "
                                      r"each window is scored as one clip, e.g. --window 3"),
    (["--window", "301"], "p.jsonl", r"window \(--window\) must be .* \[0.1, 300\], got 301.0"),
    (["--window", "nan"], "p.jsonl", r"window \(--window\) must be .*, got nan"),
    (["--window", "3", "--hop", "0.05"], "p.jsonl", r"hop \(--hop\) must be a number of seconds in \[0.1, 3\], got "
                                                    r"0.05; .*e.g. --hop 1 for --window 3"),
    (["--window", "3", "--hop", "4"], "p.jsonl", r"hop \(--hop\) must be .* \[0.1, 3\], got 4.0"),
    (["--window", "3", "--vad-threshold-db", "5"], "p.jsonl",
     r"vad_threshold_db \(--vad-threshold-db\) must be a level in dB in \[-200, 0\], got 5.0; .*none"),
    (["--window", "3", "--vad-threshold-db=-201"], "p.jsonl", r"vad_threshold_db .* \[-200, 0\], got -201.0"),
    (["--hop", "1"], "p.jsonl", r"hop \(--hop\) only applies with window \(--window\), which was not given.*Add "
                                r"--window SECONDS"),
    (["--vad-threshold-db", "none", "--hop", "1"], "p.jsonl",
     r"hop \(--hop\) and vad_threshold_db \(--vad-threshold-db\) only apply with window"),
    (["--vad-threshold-db", "-40"], "p.jsonl", r"vad_threshold_db \(--vad-threshold-db\) only applies with window"),
    (["--window", "3", "--format", "csv"], "p.jsonl",
     r"--window writes each file's timeline .* a CSV row cannot hold .*format 'csv'.*Use a JSONL --out, e\.g\. --out "
     r"timelines\.jsonl"),
    (["--window", "3"], "p.csv", r"a CSV row cannot hold .*Use a JSONL --out"),
], ids=["short-window", "long-window", "nan-window", "short-hop", "hop-over-window", "gate-above-0", "gate-below-200",
        "hop-alone", "hop-and-gate-alone", "gate-alone", "format-csv", "csv-out"])
def test_bad_window_flags_are_refused_before_anything_is_written(model, audio, tmp_path, capsys, flags, name,
                                                                  message):
    out = tmp_path / "new" / name
    assert main(["predict", "--model", str(model), audio["clip"], "--out", str(out), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "new").exists()


def test_a_gate_level_that_is_no_number_is_a_usage_error(model, audio, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--model", str(model), audio["clip"], "--out", str(tmp_path / "p.jsonl"), "--window", "3",
              "--vad-threshold-db", "loud"])
    assert stop.value.code == 2
    assert "argument --vad-threshold-db: expected a level in dB from -200 to 0 (e.g. -40), or 'none'" in \
        capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_python_api_checks_the_same_settings(model, audio, tmp_path):
    for settings, message in [({"hop": 1.0}, r"hop \(--hop\) only applies with window"),
                              ({"vad_threshold_db": None}, r"vad_threshold_db \(--vad-threshold-db\) only applies"),
                              ({"window": "3"}, r"window \(--window\) must be a number of seconds .*got '3'"),
                              ({"window": True}, r"window \(--window\) must be .*got True"),
                              ({"window": 3.0, "format": "csv"}, r"a CSV row cannot hold")]:
        with pytest.raises(SERError, match=message):
            predict_files(model, [audio["clip"]], tmp_path / "new" / "p.jsonl", progress=False, **settings)
    assert not (tmp_path / "new").exists()
    # numpy numbers are fine settings, recorded as JSON numbers
    predict_files(model, [audio["clip"]], tmp_path / "p.jsonl", progress=False, window=np.float32(2.0),
                  hop=np.int64(1), vad_threshold_db=np.float64(-30))
    job = _header_and_records(tmp_path / "p.jsonl")[0]
    assert (job["window"], job["hop"], job["vad_threshold_db"]) == (2.0, 1.0, -30.0)


def test_test_time_copies_score_every_window_with_the_copies(model, audio, tmp_path):
    copied = shutil.copytree(model, tmp_path / "model")
    (copied / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": {"probe_speed_copies": [0.9, 1.1]}}))
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(copied), audio["long"], "--out", str(out), "--no-progress",
                 "--window", "3", "--test-time-copies"]) == 0
    job, records = _header_and_records(out)
    assert job["test_time_copies"] is True and job["window"] == 3.0
    with_copies = EmotionRecognizer.from_pretrained(copied, test_time_copies=True)
    assert records[audio["long"]] == _as_predict_long(with_copies, audio["long"], window=3.0)
    with pytest.raises(SERError, match=r"holds predictions made with test-time copies"):
        predict_files(copied, [audio["long"], audio["clip"]], out, progress=False, window=3.0)


def test_dataset_rows_keep_their_fields_in_a_timeline_job(model, audio, tmp_path):
    """What `--dataset_name` hands the job: each row's file and its dataset, split and row."""
    fields = {audio["clip"]: {"dataset": "calls", "split": "test", "row": 0},
              audio["silent"]: {"dataset": "calls", "split": "test", "row": 1}}
    out = tmp_path / "p.jsonl"
    predict_files(model, list(fields), out, progress=False, record_fields=fields, window=1.0)
    records = read_records(out)
    assert [list(record)[:4] for record in records] == [["dataset", "split", "row", "path"]] * 2
    assert [record["row"] for record in records] == [0, 1] and records[0]["timeline"] and records[1]["silent"]


def test_a_multi_process_timeline_job_writes_shards_and_merges_them(model, audio, tmp_path, monkeypatch):
    """Two processes in turn (rank 1, then the main process), as accelerate launch runs them side by side."""
    inputs = [audio["clip"], audio["long"]]
    single = tmp_path / "single.jsonl"
    predict_files(model, inputs, single, progress=False, **WINDOW)
    out = tmp_path / "p.jsonl"
    monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=1, world=2))
    assert predict_files(model, inputs, out, progress=False, **WINDOW)["predicted"] == 1
    shard = tmp_path / "p.jsonl.shard-1-of-2"
    assert shard_files(out) == [shard] and json.loads(shard.read_text().splitlines()[0])["job"]["window"] == 3.0
    with pytest.raises(SERError, match=r"shard of --out '.*shard-1-of-2' holds timelines made with --window 3 .*this "
                                       r"job runs with --window 2"):
        monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=0, world=2))
        predict_files(model, inputs, out, progress=False, window=2.0, hop=1.0)
    summary = predict_files(model, inputs, out, progress=False, **WINDOW)
    assert (summary["skipped"], summary["predicted"], summary["processes"]) == (1, 1, 2)
    assert not shard_files(out) and read_records(out) == read_records(single)


def test_the_help_teaches_window_jobs(capsys):
    from ser_hf.cli import predict as predict_cli
    from ser_hf.inference.streaming import DEFAULT_VAD_THRESHOLD_DB

    assert predict_cli.DEFAULT_VAD_THRESHOLD_DB == DEFAULT_VAD_THRESHOLD_DB
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for said in ("--window SECONDS", "--hop SECONDS", "--vad-threshold-db DB", "(default -40); 'none' scores every",
                 "ser-hf predict --model outputs/rav4 interviews/ --out timelines.jsonl --window 3 --hop 1",
                 '"timeline": [{"start", "end", "label", "score", "scores"}, ...]', "JSONL only"):
        assert said in text


@pytest.mark.parametrize("progress", [True, False])
def test_a_window_job_shows_each_files_windows_on_a_bar_of_their_own(recognizer, audio, tmp_path, monkeypatch,
                                                                     progress):
    """The job's bar moves once per file: a bar over a long file's windows shows that it is moving."""
    from tqdm.auto import tqdm

    from ser_hf.inference import window_chunks

    bars = []

    def spy(enabled=True, **kwargs):
        bars.append((enabled, kwargs))
        return tqdm(disable=True, **kwargs)  # the test's output stays clean either way

    monkeypatch.setattr(window_chunks, "progress_bar", spy)
    predict_files(recognizer, [audio["long"], audio["clip"]], tmp_path / "t.jsonl", progress=progress, **WINDOW)
    assert [enabled for enabled, _ in bars] == [progress, progress]
    assert bars[0][1]["total"] == LONG_SECONDS - 2 and bars[0][1]["unit"] == "window"  # 3 s windows every 1 s
    assert bars[0][1]["leave"] is None  # under the job's bar, gone once its file is done
