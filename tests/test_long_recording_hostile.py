"""Hostile files and jobs for predict_long reading a file twice, block by block, and `ser-hf predict --window`.

Where a file is valid, it scores exactly as its samples held in memory (``predict_long(recognizer.load_raw(path))``);
where it is not, the error names it once, says what was expected and found, and leaves no file open; a file that
changes between the two reads is refused, never scored half old, half new.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.audio import resample
from ser_hf.audio.decoding import AudioInfo
from ser_hf.errors import AudioError, SERError
from ser_hf.inference import recognizer_timelines as timelines_module
from ser_hf.inference import recording_windows, window_chunks
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.testing.corpora import voice_like
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("hostile-long"), FOUR)


@pytest.fixture(scope="module")
def recognizer(model):
    return EmotionRecognizer.from_pretrained(model)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 1024 frames, so that windows are cut across blocks and the second read takes many."""
    monkeypatch.setattr(recording_windows, "BLOCK_BYTES", 1024)


def _write(path: Path, seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0, **options) -> str:
    wave = resample(voice_like(seconds, seed=seed), RATE, rate)
    sf.write(path, np.stack([wave * (0.4 + 0.1 * c) for c in range(channels)], axis=1), rate, **options)
    return str(path)


def _outcome(recognizer, item, **options):
    try:
        return recognizer.predict_long(item, **options)
    except SERError as err:
        return f"{type(err).__name__}: {err}"


def _open_files(path) -> list[str]:
    """The descriptors of this process open on ``path``."""
    target, found = os.path.realpath(path), []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                found.append(fd)
        except OSError:  # the descriptor listdir itself used, closed meanwhile
            pass
    return found


# ----------------------------------------------------------------------------------- valid files of every kind


@pytest.mark.parametrize(("rate", "channels", "options"), [
    (8000, 1, {"subtype": "PCM_16"}), (44100, 6, {"subtype": "PCM_24"}), (96000, 2, {"subtype": "FLOAT"}),
    (16000, 1, {"format": "FLAC"}), (22050, 1, {"format": "OGG"}), (48000, 2, {"format": "MP3"}),
], ids=["8k-pcm16", "44k1-6ch-pcm24", "96k-stereo-float", "flac", "ogg", "mp3"])
def test_files_of_every_rate_channel_count_and_format_score_as_their_samples_in_memory(
        recognizer, tmp_path, small_blocks, rate, channels, options):
    if options.get("format", "WAV") not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {options['format']}")
    path = _write(tmp_path / f"r.{options.get('format', 'wav').lower()}", 3.3, rate, channels, **options)
    for settings in ({"window": 1.0, "hop": 0.7, "top_k": 1},  # a hop that does not divide the length
                     {"window": 3.3, "hop": 3.3},  # exactly one window
                     {"window": 5.0, "vad_threshold_db": None}):  # shorter than one window
        expected = recognizer.predict_long(recognizer.load_raw(path), **settings)
        assert recognizer.predict_long(path, **settings) == expected


def test_an_enrolled_speaker_with_test_time_copies_scores_a_file_as_its_samples_in_memory(
        tiny_adaptive_checkpoint, tmp_path, small_blocks):
    from ser_hf.audio import load_audio

    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, batch_size=2,
                                                   test_time_copies={"speed": [0.9], "noise": [20]})
    clips = [row["audio"] for row in corpus if row["speaker"] == "SM3"]
    recognizer.enroll("SM3", clips[:4])
    path = tmp_path / "sm3.wav"
    sf.write(path, resample(np.concatenate([load_audio(clip) for clip in clips[4:8]]), RATE, 22050), 22050)
    settings = {"window": 0.5, "hop": 0.25, "speaker": "SM3", "progress": True}
    expected = recognizer.predict_long(recognizer.load_raw(path), **settings)
    assert recognizer.predict_long(path, **settings) == expected and expected["adapted"]


@pytest.mark.parametrize("samples", [1600, 1601, 16000, 16001], ids=["0.1 s", "just over 0.1 s", "one window",
                                                                     "one window and a sample"])
def test_the_shortest_files_score_as_their_samples_in_memory(recognizer, tmp_path, samples):
    path = tmp_path / "short.wav"
    sf.write(path, voice_like(1.1)[:samples], RATE)
    assert recognizer.predict_long(path, window=1.0) == recognizer.predict_long(recognizer.load_raw(path), window=1.0)


# ----------------------------------------------------------------------------------- files that are not valid


def test_a_file_just_short_of_the_shortest_clip_says_by_how_much(recognizer, tmp_path):
    """1599 samples are 99.94 ms: '100 ms, expected at least 100 ms' would contradict itself."""
    path = tmp_path / "blip.wav"
    sf.write(path, voice_like(0.1)[:1599], RATE)
    for item in (path, str(path)):
        with pytest.raises(AudioError, match=r"blip\.wav' is too short for an emotion clip: 99\.94 ms, expected at "
                                             r"least 100 ms"):
            recognizer.predict_long(item)


def test_a_decode_shorter_than_its_header_is_refused_naming_the_file(recognizer, tmp_path, monkeypatch):
    """A header that promises more than the data holds (the first read finds 50 ms): refused as an array of that
    length is, naming the file, never scored as a window the encoder cannot take."""
    path = _write(tmp_path / "cut.wav", 1.0)
    blocks = recording_windows.mono_blocks

    def cut_short(*args):
        with contextlib.closing(blocks(*args)) as whole:
            yield next(whole)[:800]

    monkeypatch.setattr(recording_windows, "mono_blocks", cut_short)
    with pytest.raises(AudioError, match=r"^Audio file '.*cut\.wav' decodes to 800 samples at 16000 Hz \(50\.0 ms\), "
                                         r"though its header says it lasts longer: expected at least 100 ms .*re-export "
                                         r"it, or remove it\.$"):
        recognizer.predict_long(path)


@pytest.mark.parametrize("header_seconds", [0.5, 2**41 / RATE], ids=["says less", "length unknown"])
def test_max_duration_bounds_what_a_file_holds_whatever_its_header_says(recognizer, tmp_path, monkeypatch,
                                                                        header_seconds):
    """The header is only a first, cheap look: one that says less than the file holds cannot lift the bound, and
    libsndfile's huge "length unknown" count is no duration."""
    path = _write(tmp_path / "long.wav", 3.0)
    check = timelines_module.check_clip_duration

    def header(item, **kwargs):
        found = check(item, **kwargs)
        return AudioInfo(found.path, RATE, 1, int(header_seconds * RATE), found.subtype)

    monkeypatch.setattr(timelines_module, "check_clip_duration", header)
    with pytest.raises(AudioError, match=r"long\.wav' lasts 3 s \(0\.0 h\), more than predict_long's max_duration of "
                                         r"2 s"):
        recognizer.predict_long(path, max_duration=2.0)


def test_a_recording_just_over_max_duration_says_by_how_much(recognizer, tmp_path):
    path = _write(tmp_path / "meeting.wav", 2.4)
    for item in (path, recognizer.load_raw(path)):
        with pytest.raises(AudioError, match=r"lasts 2\.400 s \(0\.0 h\), more than predict_long's max_duration of "
                                             r"2 s"):
            recognizer.predict_long(item, max_duration=2.0)


def test_a_flac_header_of_unknown_length_is_not_taken_for_its_duration(recognizer, tmp_path):
    path = tmp_path / "stream.flac"
    sf.write(path, voice_like(1.0), RATE, format="FLAC")
    data = bytearray(path.read_bytes())
    data[21] &= 0xF0  # STREAMINFO's 36-bit count of samples (from byte 21): 0, "unknown"
    data[22:26] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    message = _outcome(recognizer, path, max_duration=60)
    assert isinstance(message, str) and "stream.flac" in message and "lasts" not in message, message


def _hostile_paths(tmp_path: Path) -> dict[str, object]:
    os.mkfifo(tmp_path / "fifo.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    (tmp_path / "folder.wav").mkdir()
    nan = voice_like(1.0)
    nan[9000] = np.nan
    sf.write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "cut.wav").write_bytes(Path(_write(tmp_path / "whole.wav", 1.0)).read_bytes()[:30])
    return {name: str(tmp_path / f"{name}.wav") for name in ("fifo", "zero", "folder", "nan", "text", "cut")}


def test_hostile_paths_are_refused_as_load_raw_refuses_them_naming_the_file_once(recognizer, tmp_path):
    for kind, path in {**_hostile_paths(tmp_path), "empty": ""}.items():
        message = _outcome(recognizer, path)
        try:
            in_memory = recognizer.load_raw(path)
        except AudioError as err:
            in_memory = f"AudioError: {err}"
        assert message == in_memory == _outcome(recognizer, path, window=1.0, hop=0.5), kind
        assert os.path.basename(path) in message and len(re.findall(r"Audio (?:file|path) '", message)) <= 1, message


def test_names_that_are_not_utf8_or_not_str_score_as_the_file(recognizer, tmp_path):
    path = _write(tmp_path / "plain.wav", 1.5)
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xff\xfe.wav")
    os.link(path, odd)
    expected = recognizer.predict_long(recognizer.load_raw(path))
    assert recognizer.predict_long(odd) == recognizer.predict_long(Path(odd)) == expected
    assert "pass the path as text, os.fsdecode(path)" in _outcome(recognizer, os.fsencode(path))


# ----------------------------------------------------------------------------------- a file that changes


@pytest.mark.parametrize("change", ["grows", "shrinks", "replaced", "rewritten"])
def test_a_file_that_changes_between_its_two_reads_is_refused(recognizer, tmp_path, monkeypatch, small_blocks, change):
    """Its length and peak come from the first read, its windows from the second: a file grown, replaced or rewritten
    in between (a recorder still writing it, a sync tool) would be scored as another file, gated by the old one's
    peak."""
    path = _write(tmp_path / "rec.wav", 3.0)
    blocks, reads = recording_windows.mono_blocks, []

    def edit() -> None:
        if change == "grows":
            _write(tmp_path / "rec.wav", 5.0)
        elif change == "shrinks":
            _write(tmp_path / "rec.wav", 1.5)
        elif change == "replaced":  # the same length, quieter: every window would be gated as silence
            sf.write(tmp_path / "new.wav", 0.001 * voice_like(3.0, seed=1), RATE)
            os.replace(tmp_path / "new.wav", path)
        else:  # in place, the same length and size
            sf.write(path, voice_like(3.0, seed=2), RATE)
            os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))  # a clock tick later

    def second_read_after_a_change(*args):
        reads.append(args)
        if len(reads) == 2:
            edit()
        return blocks(*args)

    monkeypatch.setattr(recording_windows, "mono_blocks", second_read_after_a_change)
    with pytest.raises(AudioError, match=r"^Audio file '.*rec\.wav' (decoded to \d+ samples at 16000 Hz the second "
                                         r"time it was read, 48000 the first|was rewritten or replaced between its two "
                                         r"reads .*): it changed while it was scored\. Score a copy that nothing "
                                         r"writes to\.$"):
        recognizer.predict_long(path, window=1.0, hop=0.5)
    assert not _open_files(path)


# ----------------------------------------------------------------------------------- open files


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_an_error_the_caller_keeps_keeps_no_file_open(recognizer, tmp_path, monkeypatch):
    """A batch script that collects its failures (``errors.append(err)``) must not run out of file descriptors: the
    error's traceback holds the windows' frames, which must not hold the file's second read open."""
    path = _write(tmp_path / "interview.wav", 6.0)
    monkeypatch.setattr(window_chunks, "CHUNK_BATCHES", 1)
    monkeypatch.setattr(recognizer, "batch_size", 1)
    score, calls = recognizer._score_windows, []

    def fails_on_the_second_chunk(chunk, *args):
        calls.append(chunk)
        if len(calls) % 2 == 0:
            raise AudioError("the model failed")
        return score(chunk, *args)

    monkeypatch.setattr(recognizer, "_score_windows", fails_on_the_second_chunk)
    kept = []
    for _ in range(3):
        with pytest.raises(AudioError, match=r"^Audio file '.*interview\.wav': the model failed$") as caught:
            recognizer.predict_long(path, window=1.0, hop=1.0)
        kept.append(caught.value)
    gc.collect()
    assert len(kept) == 3 and not _open_files(path)


def test_windows_let_go_part_way_close_the_file(recognizer, tmp_path):
    path = _write(tmp_path / "interview.wav", 6.0)
    windows = recording_windows.file_recording(path, RATE).windows([(0, RATE), (RATE, 2 * RATE), (5 * RATE, 6 * RATE)])
    assert next(windows)[:2] == (0, RATE) and _open_files(path)
    windows.close()
    assert not _open_files(path)


# ----------------------------------------------------------------------------------- timeline jobs


def _header(out: Path) -> dict:
    return json.loads(out.read_text().splitlines()[0])


def _set_header(out: Path, **job) -> None:
    header, *records = out.read_text().splitlines()
    value = json.loads(header)
    value["job"].update(job)
    out.write_text("\n".join([json.dumps(value), *records]) + "\n")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("job-audio") / "clip.wav", 2.0)


@pytest.mark.parametrize(("window", "shown"), [("3", "'3'"), ([3], "[3]"), ({"seconds": 3}, "{'seconds': 3}")],
                         ids=["text", "list", "object"])
def test_a_header_whose_window_is_no_number_is_refused_with_a_message(model, clip, tmp_path, window, shown):
    """An output whose header was edited by hand: refused naming what it holds, not a raw format error."""
    out = tmp_path / "p.jsonl"
    predict_files(model, [clip], out, progress=False, window=3.0)
    _set_header(out, window=window)
    before = out.read_bytes()
    with pytest.raises(SERError, match=rf"holds timelines made with --window {re.escape(shown)} --hop 1 "
                                       rf"--vad-threshold-db -40 \(its header line\); this job runs with --window 3 "):
        predict_files(model, [clip], out, progress=False, window=3.0)
    assert out.read_bytes() == before


def test_settings_that_differ_are_never_shown_alike(model, clip, tmp_path):
    """A float32 hop of 0.1 (0.10000000149011612) is not 0.1: the refusal says so, not '--hop 0.1 ... --hop 0.1'."""
    out = tmp_path / "p.jsonl"
    predict_files(model, [clip], out, progress=False, window=3.0, hop=np.float32(0.1))
    with pytest.raises(SERError, match=r"made with --window 3 --hop 0\.10000000149011612 --vad-threshold-db -40 .*this "
                                       r"job runs with --window 3 --hop 0\.1 --vad-threshold-db -40\."):
        predict_files(model, [clip], out, progress=False, window=3.0, hop=0.1)


def test_a_timeline_job_killed_mid_record_resumes_the_torn_file(model, clip, tmp_path):
    out = tmp_path / "p.jsonl"
    other = _write(tmp_path / "other.wav", 4.0, seed=3)
    predict_files(model, [clip, other], out, progress=False, window=1.0)
    records, whole = read_records(out), out.read_bytes()
    out.write_bytes(whole[: whole.rindex(b'"timeline"') + 20])  # the last record cut inside its timeline
    assert [record["path"] for record in read_records(out)] == [clip]
    # the same job, its settings written another way
    summary = predict_files(model, [clip, other], out, progress=False, window=1, hop=1.0, vad_threshold_db=-40)
    assert (summary["skipped"], summary["predicted"]) == (1, 1) and read_records(out) == records


@pytest.mark.parametrize("first", ["window", "clip"])
def test_a_shard_of_a_timeline_job_and_one_of_a_clip_job_never_merge(model, clip, tmp_path, monkeypatch, first):
    from ser_hf.inference import jobs
    from ser_hf.processes import Processes

    settings = {"window": {"window": 3.0}, "clip": {}}
    out = tmp_path / "p.jsonl"
    monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=1, world=2))
    other = _write(tmp_path / "other.wav", 1.0, seed=4)
    predict_files(model, [clip, other], out, progress=False, **settings[first])
    monkeypatch.setattr(jobs, "launched_processes", lambda: Processes(rank=0, world=2))
    said = "timelines made with --window 3" if first == "window" else "one prediction per file"
    with pytest.raises(SERError, match=rf"shard of --out '.*shard-1-of-2' holds {said}"):
        predict_files(model, [clip, other], out, progress=False, **settings["clip" if first == "window" else "window"])

