"""Speaker-adaptive window jobs (`ser-hf predict --window ... --speaker-pattern`): each speaker enrolled from all their
voiced windows in the job, their timelines scored as predict_long(speaker=...) scores them after such an enrollment;
resumes never mix two enrollments; a file changed between the passes is an error record, not a wrong timeline."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.inference import timeline_speakers
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.inference.recognizer import EmotionRecognizer

WINDOW = {"window": 0.4, "hop": 0.2}
PATTERN = r"/(S[MF]\d)_"


@pytest.fixture(scope="module")
def recordings(tiny_adaptive_checkpoint, tmp_path_factory):
    """Two recordings of SM1 and one of SF2, each a few of their clips in a row, and one of nobody's."""
    corpus, _ = tiny_adaptive_checkpoint
    folder = tmp_path_factory.mktemp("recordings")
    rows = list(corpus)

    def record(name: str, speaker: str, skip: int, count: int = 5):
        clips = [sf.read(row["audio"], dtype="float32") for row in rows if row["speaker"] == speaker][skip:skip + count]
        rate = clips[0][1]
        sf.write(folder / name, np.concatenate([wave for wave, _ in clips]), rate)
        return str(folder / name)

    return {"SM1": [record("SM1_a.wav", "SM1", 0), record("SM1_b.wav", "SM1", 5)],
            "SF2": [record("SF2_a.wav", "SF2", 0)], "nobody": [record("nobody.wav", "SM3", 0, 3)]}


def _windows(recognizer: EmotionRecognizer, path: str) -> list[np.ndarray]:
    """The voiced windows predict_long scores in ``path``, as arrays at the model's rate."""
    wave, rate = recognizer.load_raw(path), recognizer.sampling_rate
    return [wave[round(w["start"] * rate): round(w["end"] * rate)]
            for w in recognizer.predict_long(path, **WINDOW)["timeline"]]


def _scores(timeline: list[dict]) -> list[list[float]]:
    return [list(window["scores"].values()) for window in timeline]


def test_each_speaker_is_enrolled_from_all_their_voiced_windows_and_their_timelines_scored_for_them(
        tiny_adaptive_checkpoint, recordings, tmp_path):
    _, checkpoint = tiny_adaptive_checkpoint
    inputs = [*recordings["SM1"], *recordings["SF2"], *recordings["nobody"]]
    with pytest.warns(UserWarning, match=r"finds no speaker for 1 of 4 input\(s\) \(e\.g\. '.*nobody\.wav'\)"):
        summary = predict_files(checkpoint, inputs, tmp_path / "t.jsonl", speaker_pattern=PATTERN, progress=False,
                                **WINDOW)
    assert summary["predicted"] == 4 and summary["errors"] == 0
    records = {record["path"]: record for record in read_records(tmp_path / "t.jsonl")}
    expected = EmotionRecognizer.from_pretrained(checkpoint)
    for speaker in ("SM1", "SF2"):
        enrolled = expected.enroll(speaker, [w for path in recordings[speaker] for w in _windows(expected, path)])
        assert enrolled["adapted"]
        for path in recordings[speaker]:
            record, alone = records[path], expected.predict_long(path, speaker=speaker, **WINDOW)
            assert (record["speaker"], record["adapted"]) == (speaker, True) and len(record["enrollment"]) == 16
            assert [(w["start"], w["end"], w["adapted"]) for w in record["timeline"]] == \
                [(w["start"], w["end"], True) for w in alone["timeline"]]
            np.testing.assert_allclose(_scores(record["timeline"]), _scores(alone["timeline"]), atol=1e-5)
            np.testing.assert_allclose(list(record["scores"].values()), list(alone["overall"]["scores"].values()),
                                       atol=1e-5)
    assert records[recordings["SM1"][0]]["enrollment"] == records[recordings["SM1"][1]]["enrollment"]
    assert records[recordings["SM1"][0]]["enrollment"] != records[recordings["SF2"][0]]["enrollment"]
    nobody, alone = records[recordings["nobody"][0]], expected.predict_long(recordings["nobody"][0], **WINDOW)
    assert (nobody["speaker"], nobody["adapted"]) == (None, False)
    np.testing.assert_allclose(_scores(nobody["timeline"]), _scores(alone["timeline"]), atol=1e-6)


def test_a_resume_writes_the_same_records_and_one_after_a_speaker_gained_a_file_is_refused(
        tiny_adaptive_checkpoint, recordings, tmp_path):
    _, checkpoint = tiny_adaptive_checkpoint
    out = tmp_path / "t.jsonl"
    predict_files(checkpoint, recordings["SM1"], out, speaker_pattern=PATTERN, progress=False, **WINDOW)
    whole = out.read_text().splitlines()
    out.write_text("\n".join(whole[:-1]) + "\n")  # killed before its last record
    assert predict_files(checkpoint, recordings["SM1"], out, speaker_pattern=PATTERN, progress=False,
                         **WINDOW)["predicted"] == 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == [json.loads(line) for line in whole]
    out.write_text("\n".join(whole[:-1]) + "\n")
    before = out.read_bytes()
    gained = tmp_path / "SM1_c.wav"  # a file of SM1's that the first run did not have
    gained.write_bytes(open(recordings["SF2"][0], "rb").read())
    with pytest.raises(SERError, match=r"speaker 'SM1' is enrolled from other windows than when their finished "
                                       r"records were scored.*two enrollments of one speaker"):
        predict_files(checkpoint, [*recordings["SM1"], str(gained)], out, speaker_pattern=PATTERN, progress=False,
                      **WINDOW)
    assert out.read_bytes() == before


def test_a_file_changed_between_the_two_passes_gets_an_error_record_naming_it(tiny_adaptive_checkpoint, recordings,
                                                                            tmp_path, monkeypatch):
    _, checkpoint = tiny_adaptive_checkpoint
    moving = tmp_path / "SM1_moving.wav"
    moving.write_bytes(open(recordings["SM1"][0], "rb").read())
    collect = timeline_speakers._collect

    def collect_then_change(recognizer, enrollments, path, settings, progress):
        collected = collect(recognizer, enrollments, path, settings, progress)
        if path == str(moving):  # rewritten once its windows were collected: louder, so every window differs
            wave, rate = sf.read(moving, dtype="float32")
            sf.write(moving, wave * 0.5, rate)
        return collected

    monkeypatch.setattr(timeline_speakers, "_collect", collect_then_change)
    summary = predict_files(checkpoint, [str(moving), recordings["SM1"][1]], tmp_path / "t.jsonl",
                            speaker_pattern=PATTERN, progress=False, **WINDOW)
    records = {record["path"]: record for record in read_records(tmp_path / "t.jsonl")}
    assert summary["errors"] == 1
    assert "changed between the two passes of the speaker-adaptive window job" in records[str(moving)]["error"]
    assert str(moving) in records[str(moving)]["error"]
    assert records[recordings["SM1"][1]]["adapted"] is True


def test_the_command_line_runs_a_speaker_adaptive_window_job(tiny_adaptive_checkpoint, recordings, tmp_path):
    _, checkpoint = tiny_adaptive_checkpoint
    out = tmp_path / "t.jsonl"
    assert main(["predict", "--model", str(checkpoint), *recordings["SM1"], "--out", str(out), "--window", "0.4",
                 "--hop", "0.2", "--speaker-pattern", PATTERN, "--no-progress"]) == 0
    header, *records = [json.loads(line) for line in out.read_text().splitlines()]
    assert header["job"]["speaker_pattern"] == PATTERN and header["job"]["window"] == 0.4
    assert [(r["speaker"], r["adapted"]) for r in records] == [("SM1", True), ("SM1", True)]
    assert all(window["adapted"] for r in records for window in r["timeline"])


def test_silent_and_broken_files_enroll_nothing_and_a_speaker_with_only_those_falls_back(tiny_adaptive_checkpoint,
                                                                                        recordings, tmp_path):
    _, checkpoint = tiny_adaptive_checkpoint
    sf.write(tmp_path / "SM1_silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "SF4_silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "SF4_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    inputs = [*recordings["SM1"], str(tmp_path / "SM1_silent.wav"), str(tmp_path / "SF4_silent.wav"),
              str(tmp_path / "SF4_broken.wav")]
    summary = predict_files(checkpoint, inputs, tmp_path / "t.jsonl", speaker_pattern=PATTERN, progress=False,
                            **WINDOW)
    records = {record["path"]: record for record in read_records(tmp_path / "t.jsonl")}
    assert summary["errors"] == 1 and "SF4_broken.wav" in records[str(tmp_path / "SF4_broken.wav")]["error"]
    only = predict_files(checkpoint, recordings["SM1"], tmp_path / "only.jsonl", speaker_pattern=PATTERN,
                         progress=False, **WINDOW)
    assert only["errors"] == 0  # a silent file adds no window to SM1's enrollment
    alone = {record["path"]: record for record in read_records(tmp_path / "only.jsonl")}
    assert records[recordings["SM1"][0]]["enrollment"] == alone[recordings["SM1"][0]]["enrollment"]
    silent = records[str(tmp_path / "SM1_silent.wav")]
    assert silent["silent"] and silent["timeline"] == [] and silent["adapted"] is True  # SM1 is adapted
    nothing = records[str(tmp_path / "SF4_silent.wav")]
    assert (nothing["speaker"], nothing["adapted"], nothing["silent"]) == ("SF4", False, True)


def test_speakers_may_come_from_a_manifest_column_and_a_model_without_adaptation_is_refused_writing_nothing(
        tiny_adaptive_checkpoint, recordings, tmp_path):
    from ser_hf.errors import ModelError
    from ser_hf.testing.models import tiny_classifier

    _, checkpoint = tiny_adaptive_checkpoint
    manifest = tmp_path / "calls.csv"
    manifest.write_text("path,agent\n" + "".join(f"{path},ann\n" for path in recordings["SM1"]))
    predict_files(checkpoint, [manifest], tmp_path / "t.jsonl", speaker_column="agent", progress=False, **WINDOW)
    by_column = read_records(tmp_path / "t.jsonl")
    predict_files(checkpoint, recordings["SM1"], tmp_path / "p.jsonl", speaker_pattern=PATTERN, progress=False,
                  **WINDOW)
    by_pattern = read_records(tmp_path / "p.jsonl")
    assert [(r["speaker"], r["adapted"]) for r in by_column] == [("ann", True), ("ann", True)]
    assert [r["timeline"] for r in by_column] == [r["timeline"] for r in by_pattern]  # the same windows enrolled
    plain = tiny_classifier("wav2vec2", tmp_path / "plain", ["neutral", "happy", "sad", "angry"])
    with pytest.raises(ModelError, match=r"speaker adaptation needs a weighted-layer-sum head.*probe_speaker_adaptation"):
        predict_files(plain, recordings["SM1"], tmp_path / "new.jsonl", speaker_pattern=PATTERN, progress=False,
                      **WINDOW)
    assert not (tmp_path / "new.jsonl").exists()


def test_a_resume_refused_for_a_file_that_became_unreadable_names_it(tiny_adaptive_checkpoint, recordings, tmp_path):
    import shutil

    _, checkpoint = tiny_adaptive_checkpoint
    files = [shutil.copy(path, tmp_path / os.path.basename(path)) for path in recordings["SM1"]]
    out = tmp_path / "t.jsonl"
    predict_files(checkpoint, [str(f) for f in files], out, speaker_pattern=PATTERN, progress=False, **WINDOW)
    whole = out.read_text().splitlines()
    out.write_text("\n".join(whole[:-1]) + "\n")  # killed before SM1_b's record
    (tmp_path / "SM1_a.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")  # finished, now broken
    with pytest.raises(SERError, match=r"\(2 file\(s\) now, 1 unreadable: \['.*SM1_a\.wav'\]; files were"):
        predict_files(checkpoint, [str(f) for f in files], out, speaker_pattern=PATTERN, progress=False, **WINDOW)
    assert out.read_text().splitlines() == whole[:-1]
