"""Speaker-adaptive predict jobs: a resume never mixes two enrollments of one speaker; silence enrolls no one;
speakers that display alike stay apart."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from ser_hf.errors import SERError
from ser_hf.inference.jobs import predict_files, read_records


def _clips(corpus, speaker):
    return [row["audio"] for row in corpus if row["speaker"] == speaker]


def _job(checkpoint, folder, out, pattern):
    """The records of a finished speaker job on ``folder``."""
    predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False)
    return read_records(out)


def _folder(tmp_path, corpus, speaker, count, name="clips"):
    folder = tmp_path / name
    folder.mkdir()
    for index, clip in enumerate(_clips(corpus, speaker)[:count]):
        shutil.copyfile(clip, folder / f"{speaker}_{index}.wav")
    return folder


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_resume_whose_manifest_moved_a_file_to_another_speaker_is_refused_and_changes_nothing(
        tiny_adaptive_checkpoint, tmp_path, suffix):
    corpus, checkpoint = tiny_adaptive_checkpoint
    alice, bob = _clips(corpus, "SM1")[:4], _clips(corpus, "SF2")[:4]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,who\n" + "".join(f"{p},alice\n" for p in alice) + "".join(f"{p},bob\n" for p in bob))
    out = tmp_path / f"p.{suffix}"
    assert predict_files(checkpoint, [manifest], out, speaker_column="who", progress=False)["predicted"] == 8
    records = read_records(out)
    assert {r["speaker"] for r in records} == {"alice", "bob"} and all(r["enrollment"] for r in records)
    before = out.read_bytes()
    manifest.write_text("path,who\n" + "".join(f"{p},alice\n" for p in alice[:3])
                        + "".join(f"{p},bob\n" for p in [alice[3], *bob]))
    with pytest.raises(SERError, match=r"was scored as speaker 'alice'; the inputs now give it to 'bob'.*two "
                                       r"enrollments of one speaker"):
        predict_files(checkpoint, [manifest], out, speaker_column="who", progress=False)
    assert out.read_bytes() == before
    manifest.write_text("path,who\n" + "".join(f"{p},alice\n" for p in alice) + "".join(f"{p},bob\n" for p in bob))
    assert predict_files(checkpoint, [manifest], out, speaker_column="who", progress=False)["skipped"] == 8


def test_a_resume_after_a_speaker_gained_a_clip_is_refused_but_a_new_speaker_is_not(tiny_adaptive_checkpoint,
                                                                                     tmp_path):
    corpus, checkpoint = tiny_adaptive_checkpoint
    folder = _folder(tmp_path, corpus, "SM1", 4)
    out = tmp_path / "p.jsonl"
    pattern = r"/(S[MF]\d)_"
    assert predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False)["predicted"] == 4
    before = out.read_bytes()
    for index, clip in enumerate(_clips(corpus, "SF2")[:3]):  # a new speaker: its records are new, nothing mixes
        shutil.copyfile(clip, folder / f"SF2_{index}.wav")
    summary = predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False)
    assert summary["skipped"] == 4 and summary["predicted"] == 3 and out.read_bytes().startswith(before)
    shutil.copyfile(_clips(corpus, "SM1")[5], folder / "SM1_9.wav")  # SM1's offset would now be another
    before = out.read_bytes()
    with pytest.raises(SERError, match=r"speaker 'SM1' is enrolled from other clips than when their finished records "
                                       r"were scored \(5 clip\(s\) now"):
        predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False)
    assert out.read_bytes() == before


def test_silent_and_voiceless_files_and_repeats_of_a_speaker_are_scored_but_never_enrolled(tiny_adaptive_checkpoint, tmp_path):
    corpus, checkpoint = tiny_adaptive_checkpoint
    folder = _folder(tmp_path, corpus, "SM1", 3)
    pattern = r"/(S[MF]\d)_"
    plain = {os.path.basename(r["path"]): r for r in _job(checkpoint, folder, tmp_path / "plain.jsonl", pattern)}
    for index, level in enumerate((0.0, 1e-5)):  # digital silence, and a hiss 100 dB below full scale
        noise = level * np.random.default_rng(index).standard_normal(6400)
        sf.write(folder / f"SM1_quiet{index}.wav", noise.astype(np.float32), 16000)
    sf.write(folder / "SM1_dc.wav", np.full(6400, 0.3, np.float32), 16000)  # a dead input stuck at a DC bias
    t = np.arange(6400) / 16000  # loud, but no voice: a mains hum, and a fan's noise
    sf.write(folder / "SM1_hum.wav", sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3)), 16000)
    sf.write(folder / "SM1_fan.wav", 0.1 * np.random.default_rng(7).standard_normal(6400), 16000)
    records = {os.path.basename(r["path"]): r for r in _job(checkpoint, folder, tmp_path / "p.jsonl", pattern)}
    assert len(plain) == 3 and len(records) == 8 and all(r["adapted"] for r in records.values())
    for name, record in plain.items():  # the same offset: the silent files changed nothing
        assert record["scores"] == pytest.approx(records[name]["scores"], abs=1e-6)
    shutil.copyfile(folder / "SM1_0.wav", folder / "SM1_copy.wav")  # one recording twice: enrolled once
    again = {os.path.basename(r["path"]): r for r in _job(checkpoint, folder, tmp_path / "r.jsonl", pattern)}
    for name, record in plain.items():
        assert record["scores"] == pytest.approx(again[name]["scores"], abs=1e-6)
    (folder / "SM1_2.wav").unlink()  # two voiced recordings (one of them twice), five voiceless clips: too few
    records = _job(checkpoint, folder, tmp_path / "q.jsonl", pattern)
    assert len(records) == 8 and not any(r["adapted"] for r in records)


def test_a_job_run_with_a_recognizer_leaves_its_enrollments_as_they_were(tiny_adaptive_checkpoint, tmp_path):
    """A speaker the caller enrolled is scored with the caller's offset after a job whose files name the same
    speaker: the job enrolls its speakers apart."""
    from ser_hf.inference.recognizer import EmotionRecognizer

    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    mine = recognizer.enroll("SM1", _clips(corpus, "SM1")[:3])
    before = recognizer.predict(_clips(corpus, "SM1")[7], speaker="SM1")
    folder = _folder(tmp_path, corpus, "SM1", 7)
    predict_files(recognizer, [folder], tmp_path / "p.jsonl", speaker_pattern=r"/(S[MF]\d)_", progress=False)
    records = read_records(tmp_path / "p.jsonl")
    assert len(records) == 7 and all(r["adapted"] for r in records)
    assert recognizer.enrollments.summary("SM1") == mine
    assert recognizer.predict(_clips(corpus, "SM1")[7], speaker="SM1")["scores"] == before["scores"]


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_speakers_that_display_alike_stay_apart_in_records(tiny_adaptive_checkpoint, tmp_path, suffix):
    corpus, checkpoint = tiny_adaptive_checkpoint
    folder = os.path.join(os.fsencode(str(tmp_path)), b"clips")
    os.makedirs(folder)
    clips = _clips(corpus, "SM1")
    for index in range(3):  # the byte 0xff, and the four characters \xff: two speakers that display alike
        shutil.copyfile(clips[index], os.path.join(folder, b"spk\xff_%d.wav" % index))
        shutil.copyfile(clips[3 + index], os.path.join(folder, b"spk\\xff_%d.wav" % index))
    out = tmp_path / f"p.{suffix}"
    assert predict_files(checkpoint, [os.fsdecode(folder)], out, speaker_pattern=r"(spk[^_]*)_",
                         progress=False)["predicted"] == 6
    records = read_records(out)
    assert {r["speaker"] for r in records} == {"spk\\xff"}  # shown alike ...
    assert sorted({r.get("speaker_base64") or "" for r in records}) == ["", "c3Br/w=="]  # ... told apart
    assert predict_files(checkpoint, [os.fsdecode(folder)], out, speaker_pattern=r"(spk[^_]*)_",
                         progress=False)["skipped"] == 6


def test_a_speaker_pattern_that_backtracks_for_ever_stops_at_once_naming_itself(tmp_path):
    from ser_hf.inference.inputs import speakers_of

    paths = [str(tmp_path / ("a" * 40 + f"{n}.wav")) for n in range(20)]  # each search would take minutes
    with pytest.raises(SERError, match=r"--speaker-pattern '\(a\|aa\)\+c\(x\)' took more than 1 s on '.*aaaa0\.wav' "
                                       r"\(catastrophic backtracking"):
        speakers_of(paths, paths, pattern="(a|aa)+c(x)")
    assert speakers_of(paths, paths, pattern=r"/(a+)\d")[paths[3]] == "a" * 40  # re's syntax, as before


def test_a_resume_after_a_finished_file_broke_is_refused_and_one_through_a_linked_folder_skips_it(
        tiny_adaptive_checkpoint, tmp_path):
    """The enrollment digest covers the clips that enrolled the speaker, not the names listed: a finished file that
    became unreadable (or was re-recorded) changes the speaker's offset, so the rest of their records may not follow."""
    corpus, checkpoint = tiny_adaptive_checkpoint
    folder = _folder(tmp_path, corpus, "SM1", 4)
    out, pattern = tmp_path / "p.jsonl", r"/(S[MF]\d)_"
    predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False, chunk_size=2)
    linked = tmp_path / "linked"
    linked.symlink_to(folder)  # the same files by another route: finished, never scored twice
    assert predict_files(checkpoint, [linked], out, speaker_pattern=pattern, progress=False)["skipped"] == 4
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:3]))  # killed after its first chunk: the header and two records
    finished = {os.path.basename(r["path"]) for r in read_records(out)}
    (folder / sorted(finished)[0]).write_bytes(b"RIFF garbage")  # a finished file broke meanwhile
    before = out.read_bytes()
    with pytest.raises(SERError, match=r"speaker 'SM1' is enrolled from other clips than when their finished records "
                                       r"were scored \(3 clip\(s\) now"):
        predict_files(checkpoint, [folder], out, speaker_pattern=pattern, progress=False)
    assert out.read_bytes() == before


def test_a_pattern_slow_on_every_name_stops_at_the_total_budget(tmp_path, monkeypatch):
    from ser_hf import names
    from ser_hf.inference.inputs import speakers_of

    paths = [str(tmp_path / f"spk{n}_a.wav") for n in range(50)]
    monkeypatch.setattr(names, "PATTERN_TOTAL_SECONDS", 1e-4)  # as if every name took most of the per-name limit
    with pytest.raises(SERError, match=r"--speaker-pattern '/\(spk.*took 0 s on the first \d+ names \(0\.00 s each; "
                                       r"a plain pattern takes microseconds\): it backtracks on every name"):
        speakers_of(paths, paths, pattern=r"/(spk\d+)_")
