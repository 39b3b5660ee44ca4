"""EmotionRecognizer.enroll / predict(speaker=...): files, fallbacks, and a speaker model pipeline() loads."""

import json

import numpy as np
import pytest
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.errors import ModelError, SERError
from ser_hf.inference.recognizer import EmotionRecognizer


@pytest.fixture(scope="module")
def adaptive(tiny_adaptive_checkpoint):
    """``(corpus, checkpoint, folder)``: conftest's tiny adaptive probe, and the folder holding it and its corpus."""
    corpus, checkpoint = tiny_adaptive_checkpoint
    return corpus, checkpoint, checkpoint.parent


def _clips(corpus, speaker):
    return [row["audio"] for row in corpus if row["speaker"] == speaker]


def test_enroll_then_predict_with_the_speaker(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SM1")
    assert recognizer.enroll("SM1", clips[:4]) == {"speaker": "SM1", "clips": 4, "adapted": True}
    results = recognizer.predict(clips[4:], speaker="SM1")
    assert all(r["speaker"] == "SM1" and r["adapted"] for r in results)
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 for r in results)
    plain = recognizer.predict(clips[4:])
    assert all("speaker" not in r for r in plain)


def test_a_speaker_model_is_a_standard_checkpoint_that_scores_the_same(adaptive):
    corpus, checkpoint, tmp = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SF2")
    recognizer.enroll("SF2", clips[:5])
    expected = recognizer.predict(clips[5], speaker="SF2")["scores"]
    classify = pipeline("audio-classification", model=str(recognizer.save_speaker_model("SF2", tmp / "sf2")))
    got = {r["label"]: r["score"] for r in classify(load_audio(clips[5]), top_k=None)}
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-5)


def test_enrollments_round_trip_and_belong_to_their_model(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    recognizer.enroll("SF4", _clips(corpus, "SF4")[:2])  # too few: kept on the global head
    saved = recognizer.save_enrollments(tmp_path / "people")
    assert saved.suffix == ".json" and (tmp_path / "people.safetensors").exists()
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    assert fresh.load_enrollments(tmp_path / "people") == ["SM3", "SF4"]
    clip = _clips(corpus, "SM3")[5]
    assert fresh.predict(clip, speaker="SM3")["scores"] == pytest.approx(
        recognizer.predict(clip, speaker="SM3")["scores"], abs=1e-6)  # offsets are stored as float32
    assert fresh.predict(clip, speaker="SF4")["adapted"] is False
    document = (tmp_path / "people.json").read_text()
    (tmp_path / "people.json").write_text(document.replace('"adaptation": "', '"adaptation": "x'))
    with pytest.raises(SERError, match="made with another model"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(tmp_path / "people")


def test_too_few_clips_fall_back_and_say_so(adaptive, caplog):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with caplog.at_level("WARNING"):
        summary = recognizer.enroll("SM5", _clips(corpus, "SM5")[:2])
    assert summary["adapted"] is False and "fewer than the 3" in summary["reason"]
    assert "using the global model" in caplog.text
    clip = _clips(corpus, "SM5")[3]
    fallback = recognizer.predict(clip, speaker="SM5")
    assert fallback["scores"] == pytest.approx(recognizer.predict(clip)["scores"], abs=1e-5)
    assert (fallback["speaker"], fallback["adapted"]) == ("SM5", False)
    assert fallback["reason"] == summary["reason"]  # the caller of predict learns why, not only the log


def test_unknown_speaker_and_models_without_adaptation(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(SERError, match=r"speaker 'nobody' is not enrolled \(enrolled: \[\]\)"):
        recognizer.predict(_clips(corpus, "SM1")[0], speaker="nobody")
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(checkpoint, plain)
    (plain / "speaker_adaptation.json").unlink()
    with pytest.raises(ModelError, match="has no speaker adaptation"):
        EmotionRecognizer.from_pretrained(plain).enroll("SM1", _clips(corpus, "SM1")[:4])


def test_predict_job_enrolls_each_speaker_from_the_paths(adaptive, tmp_path):
    from ser_hf.inference.jobs import predict_files, read_records

    corpus, checkpoint, tmp = adaptive
    out = tmp_path / "p.jsonl"
    summary = predict_files(checkpoint, [str(tmp / "urdu")], out, speaker_pattern=r"/(S[MF]\d)_", progress=False)
    records = read_records(out)
    assert summary["predicted"] == len(records) == 48
    assert {r["speaker"] for r in records} == {"SM1", "SF2", "SM3", "SF4", "SM5", "SF6"}
    assert all(r["adapted"] for r in records)
    # The same job again skips everything; a fresh job with a manifest column gives the same scores.
    assert predict_files(checkpoint, [str(tmp / "urdu")], out, speaker_pattern=r"/(S[MF]\d)_",
                         progress=False)["skipped"] == 48
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,who\n" + "".join(f"{r['path']},{r['speaker']}\n" for r in records))
    again = read_records(tmp_path / "q.jsonl") if predict_files(
        checkpoint, [str(manifest)], tmp_path / "q.jsonl", speaker_column="who", progress=False) else []
    by_path = {r["path"]: r["scores"] for r in records}
    for record in again:
        assert record["scores"] == pytest.approx(by_path[record["path"]], abs=1e-9)


def test_predict_job_speaker_options_are_checked(adaptive, tmp_path):
    from ser_hf.inference.jobs import predict_files

    _, checkpoint, tmp = adaptive
    with pytest.raises(SERError, match="not a valid regular expression"):
        predict_files(checkpoint, [str(tmp / "urdu")], tmp_path / "p.jsonl", speaker_pattern="(", progress=False)
    with pytest.raises(SERError, match="exactly one of --speaker-pattern"):
        predict_files(checkpoint, [str(tmp / "urdu")], tmp_path / "p.jsonl", speaker_pattern="x",
                      speaker_column="y", progress=False)
    with pytest.raises(SERError, match="needs manifest CSV inputs"):
        predict_files(checkpoint, [str(tmp / "urdu")], tmp_path / "p.jsonl", speaker_column="who", progress=False)


def test_a_stream_adapts_online_once_it_has_heard_enough(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    audio = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SM1")])
    stream = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=None, adapt=True)
    step = int(0.4 * 16000)
    results = [r for start in range(0, len(audio), step) for r in stream.push(audio[start:start + step])]
    assert [r["adapted"] for r in results[:2]] == [False, False]  # fewer windows than enrollment needs
    assert all(r["adapted"] for r in results[3:])
    plain = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=None)
    assert all("adapted" not in r for r in plain.push(audio))


def _windows_as_clips(recognizer, audio, windows, speaker):
    pieces = [audio[round(w["start"] * 16000): round(w["end"] * 16000)] for w in windows]
    return recognizer.predict(pieces, speaker=speaker)


def test_a_timeline_for_a_speaker_scores_each_window_as_their_clips(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    recognizer.enroll("SF4", _clips(corpus, "SF4")[:2])  # too few: the global head, and the result says why
    audio = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SM3")[4:8]])
    result = recognizer.predict_long(audio, window=0.5, hop=0.25, speaker="SM3")
    assert (result["speaker"], result["adapted"], "reason" in result) == ("SM3", True, False)
    expected = _windows_as_clips(recognizer, audio, result["timeline"], "SM3")
    assert len(result["timeline"]) == 6 and all(w["adapted"] for w in result["timeline"])
    for window, clip in zip(result["timeline"], expected):
        assert window["scores"] == pytest.approx(clip["scores"], abs=1e-5)
    fallback = recognizer.predict_long(audio, window=0.5, hop=0.25, speaker="SF4")
    assert fallback["adapted"] is False and "fewer than the 3" in fallback["reason"]
    assert not any(w["adapted"] for w in fallback["timeline"])
    assert fallback["overall"]["scores"] == pytest.approx(recognizer.predict_long(audio, window=0.5, hop=0.25)
                                                          ["overall"]["scores"], abs=1e-5)
    with pytest.raises(SERError, match="speaker 'nobody' is not enrolled"):
        recognizer.predict_long(audio, speaker="nobody")


def test_a_stream_for_an_enrolled_speaker_is_adapted_from_its_first_window(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    audio = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SM1")[4:8]])
    stream = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=None, speaker="SM1")
    recognizer.enrollments.speakers.clear()  # the stream took the enrollment when it started
    results = stream.push(audio[:8000]) + stream.push(audio[8000:]) + stream.flush()
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    assert len(results) == 4 and all(r["adapted"] for r in results)
    for window, clip in zip(results, _windows_as_clips(recognizer, audio, results, "SM1"), strict=True):
        assert window["scores"] == pytest.approx(clip["scores"], abs=1e-5)


def test_stream_speaker_options_are_checked_when_it_starts(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(SERError, match="speaker 'nobody' is not enrolled"):
        recognizer.stream(speaker="nobody")
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    with pytest.raises(SERError, match=r"adapt=True and speaker='SM1' cannot be combined"):
        recognizer.stream(adapt=True, speaker="SM1")


def test_an_adapting_stream_skips_silence(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    voice = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SF2")[:4]])
    stream = recognizer.stream(window=0.4, hop=0.4, adapt=True)  # silence gated out: no window to score
    audio = np.concatenate([voice[:6400], np.zeros(6400, np.float32), voice[6400:]])
    results = [r for start in range(0, audio.size, 6400) for r in stream.push(audio[start:start + 6400])]
    assert [r["start"] for r in results] == [0.0, 0.8, 1.2, 1.6]
    assert [r["adapted"] for r in results] == [False, False, True, True]


def test_speaker_ids_and_files_that_are_not_utf8_are_shown_as_escapes(adaptive, tmp_path, monkeypatch):
    """A speaker taken from a file name with byte 0xff reads 'spk\\xff' everywhere (was: 'spk\\udcff')."""
    import io
    import json
    import os
    import shutil
    import sys

    from ser_hf.cli import main
    from ser_hf.inference.jobs import read_records

    corpus, checkpoint, _ = adaptive
    folder = os.path.join(os.fsencode(str(tmp_path)), b"dir\xfe")
    os.makedirs(folder)
    for index, clip in enumerate(_clips(corpus, "SM1")[:2]):  # two clips: too few, so the fallback warning
        shutil.copyfile(clip, os.path.join(folder, b"spk\xff_%d.wav" % index))
    err = io.BytesIO()  # a real UTF-8 terminal's stderr (strict), not pytest's forgiving capture
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="utf-8", errors="strict", write_through=True))
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(checkpoint), os.fsdecode(folder), "--speaker-pattern", "(spk[^_]*)_",
                 "--out", str(out), "--no-progress"]) == 0
    stderr = err.getvalue().decode("utf-8")
    assert "speaker 'spk\\\\xff': using the global model: 2 voiced clip(s) enrolled" in stderr and "udc" not in stderr
    records = read_records(out)
    assert [r["speaker"] for r in records] == ["spk\\xff"] * 2 and not any(r["adapted"] for r in records)
    assert "udc" not in out.read_text(encoding="utf-8")

    odd = os.fsdecode(b"spk\xff")
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll(odd, _clips(corpus, "SM1")[:4])
    with pytest.raises(SERError, match=r"speaker 'x\\\\xfe' is not enrolled \(enrolled: \['spk\\\\xff'\]\)") as raised:
        recognizer.predict(_clips(corpus, "SM1")[5], speaker=os.fsdecode(b"x\xfe"))
    assert "udc" not in str(raised.value)
    saved = recognizer.save_enrollments(tmp_path / "people")  # the id is kept exactly (a \\udcff JSON escape)
    assert EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved) == [odd]
    document = json.loads(saved.read_text(encoding="utf-8"))
    document["speakers"][0]["tensor"] = "missing"
    saved.write_text(json.dumps(document))
    with pytest.raises(SERError, match=r"people'?: speaker 'spk\\\\xff' \(record 0\) has no usable offset") as raised:
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)
    assert "udc" not in str(raised.value)
    from ser_hf.training.speaker_adaptation import load_adaptation

    with pytest.raises(ModelError, match=r"dir\\\\xfe' has no speaker adaptation") as raised:
        load_adaptation(os.fsdecode(folder), {})
    assert "udc" not in str(raised.value)


COPIES = {"speed": [0.9, 1.1]}


def test_test_time_copies_give_every_copy_its_own_offset(adaptive, tmp_path):
    from ser_hf.audio import AudioPreprocessor, SpeedChanged
    from ser_hf.models.linear_head import log_softmax, softmax

    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    clips = _clips(corpus, "SM1")
    summary = recognizer.enroll("SM1", clips[:4])
    assert summary == {"speaker": "SM1", "clips": 4, "adapted": True, "copies": ["0.9x speed", "1.1x speed"]}
    results = recognizer.predict(clips[4:6], speaker="SM1")
    assert all(r["adapted"] for r in results)
    # By hand: each version (the clip, its 0.9x and 1.1x copies) with the offset of the same version of the
    # enrolled clips; the versions' mean log-probability.
    enrollments, base = recognizer.enrollments, AudioPreprocessor(sampling_rate=16000)
    versions = [lambda w: w, SpeedChanged(base, 0.9).alter, SpeedChanged(base, 1.1).alter]
    enrolled = [load_audio(clip) for clip in clips[:4]]
    scored = [load_audio(clip) for clip in clips[4:6]]
    total = 0.0
    for alter in versions:
        offset = enrollments.adaptation.enroll(enrollments.pooled([alter(w) for w in enrolled]))
        total = total + log_softmax(enrollments.adaptation.logits(enrollments.pooled([alter(w) for w in scored]),
                                                                  offset))
    expected = softmax(total / 3)
    labels = corpus.features["label"].names
    for row, result in enumerate(results):
        np.testing.assert_allclose([result["scores"][name] for name in labels], expected[row], atol=1e-5)
    # Saved and loaded with the copies' offsets; enrolled without copies, a speaker cannot be scored with them.
    recognizer.save_enrollments(tmp_path / "with")
    fresh = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    assert fresh.load_enrollments(tmp_path / "with") == ["SM1"]
    assert fresh.predict(clips[4], speaker="SM1")["scores"] == pytest.approx(results[0]["scores"], abs=1e-5)
    plain = EmotionRecognizer.from_pretrained(checkpoint)
    plain.enroll("SM1", clips[:4])
    plain.save_enrollments(tmp_path / "without")
    fresh.load_enrollments(tmp_path / "without")
    with pytest.raises(SERError, match=r"speaker 'SM1' was enrolled without the test-time copies \['0.9x speed', "
                                       r"'1.1x speed'\] \(with none\); enroll 'SM1' again"):
        fresh.predict(clips[4], speaker="SM1")
    plain.load_enrollments(tmp_path / "with")  # copies' offsets a recognizer without copies does not use
    assert plain.predict(clips[4], speaker="SM1")["adapted"] is True
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tmp_path / "with.safetensors"))
    del tensors["offset.0.copy.1"]  # a copy's offset lost from the file
    save_file(tensors, str(tmp_path / "with.safetensors"))
    with pytest.raises(SERError, match=r"the .safetensors is not the one its .json was saved with"):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES).load_enrollments(tmp_path / "with")
    document = json.loads((tmp_path / "with.json").read_text())
    del document["weights_sha256"]  # as a file from before the digest was recorded: the offsets are still checked
    (tmp_path / "with.json").write_text(json.dumps(document))
    with pytest.raises(SERError, match=r"speaker 'SM1' \(record 0\) has no usable offset .*enroll the speakers again"):
        EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES).load_enrollments(tmp_path / "with")
    # A stream adapting online keeps every version's windows.
    audio = np.concatenate([load_audio(clip) for clip in clips])
    stream = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=None, adapt=True)
    step = int(0.4 * 16000)
    windows = [w for start in range(0, len(audio), step) for w in stream.push(audio[start:start + step])]
    assert [w["adapted"] for w in windows[:2]] == [False, False] and all(w["adapted"] for w in windows[3:])


def test_a_predict_job_with_speakers_and_test_time_copies(adaptive, tmp_path):
    import json
    import shutil

    from ser_hf.inference.jobs import predict_files, read_records

    corpus, checkpoint, tmp = adaptive
    model = shutil.copytree(checkpoint, tmp_path / "model")
    (model / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": {"probe_speed_copies": [0.9, 1.1]}}))
    out = tmp_path / "p.jsonl"
    summary = predict_files(model, [str(tmp / "urdu")], out, speaker_pattern=r"/(S[MF]\d)_", progress=False,
                            test_time_copies=True)
    records = {record["path"]: record for record in read_records(out)}
    assert summary["predicted"] == len(records) == 48 and all(r["adapted"] for r in records.values())
    recognizer = EmotionRecognizer.from_pretrained(model, test_time_copies=True)
    clips = _clips(corpus, "SF2")
    recognizer.enroll("SF2", clips)  # the job enrolls each speaker from all their clips
    for clip, result in zip(clips, recognizer.predict(clips, speaker="SF2")):
        assert records[str(clip)]["scores"] == pytest.approx(result["scores"], abs=1e-5)


def test_a_speaker_model_never_overwrites_its_checkpoint_or_other_files(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SF2", _clips(corpus, "SF2")[:5])
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()}
    for target in (checkpoint, checkpoint.parent):
        with pytest.raises(ModelError, match=r"is \(or holds\) the checkpoint it is made from"):
            recognizer.save_speaker_model("SF2", target, overwrite=True)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("the user's")
    with pytest.raises(ModelError, match=r"out_dir .*mine is not empty \(found \['config.json'\]\)"):
        recognizer.save_speaker_model("SF2", mine)
    with pytest.raises(ModelError, match=r"holds no ser_hf_speaker.json that ser_hf wrote, so it is not an earlier speaker model"):
        recognizer.save_speaker_model("SF2", mine, overwrite=True)
    assert (mine / "config.json").read_text() == "the user's"
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(ModelError, match=r"out_dir .*a-file is a file; pass a directory"):
        recognizer.save_speaker_model("SF2", tmp_path / "a-file")
    with pytest.raises(SERError, match="is not enrolled"):
        recognizer.save_speaker_model("nobody", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    out = recognizer.save_speaker_model("SF2", tmp_path / "sf2")
    assert json.loads((out / "ser_hf_speaker.json").read_text())["speaker"] == "SF2"
    recognizer.enroll("SF2", _clips(corpus, "SF2")[:6])
    assert recognizer.save_speaker_model("SF2", out, overwrite=True) == out  # an earlier speaker model is replaced
    assert json.loads((out / "ser_hf_speaker.json").read_text())["clips"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "mine", "sf2"]  # no temporary folder left


def test_enrollments_keep_their_name_and_replace_only_earlier_enrollments(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    assert recognizer.save_enrollments(tmp_path / "speakers.v2") == tmp_path / "speakers.v2.json"
    assert (tmp_path / "speakers.v2.safetensors").is_file()
    assert recognizer.save_enrollments(tmp_path / "people.safetensors") == tmp_path / "people.json"
    assert recognizer.save_enrollments(tmp_path / "people.json") == tmp_path / "people.json"  # an earlier pair
    (tmp_path / "results.json").write_text('{"my": "precious results"}')
    with pytest.raises(SERError, match=r"results.json' exists and is not an enrollment file, so it is not replaced"):
        recognizer.save_enrollments(tmp_path / "results.json")
    (tmp_path / "weights.safetensors").write_bytes(b"not mine to replace")
    with pytest.raises(SERError, match=r"weights.safetensors' exists and is not an enrollment file"):
        recognizer.save_enrollments(tmp_path / "weights")
    assert not (tmp_path / "weights.json").exists() and not (tmp_path / "results.safetensors").exists()
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(SERError, match=r"folder.json' : it is a folder|folder.json'?: it is a folder"):
        recognizer.save_enrollments(tmp_path / "folder")
    assert (tmp_path / "results.json").read_text() == '{"my": "precious results"}'
    assert EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(tmp_path / "speakers.v2") == ["SM3"]


def test_enrollment_paths_start_in_the_home_folder_with_a_tilde(adaptive, tmp_path, monkeypatch):
    corpus, checkpoint, _ = adaptive
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    assert recognizer.save_enrollments("~/spk") == tmp_path / "home" / "spk.json" and not (tmp_path / "~").exists()
    assert EmotionRecognizer.from_pretrained(checkpoint).load_enrollments("~/spk") == ["SM3"]


def test_a_saved_file_naming_one_speaker_twice_is_refused_not_merged(adaptive, tmp_path):
    """Files saved before ids had one form may hold 'José' in NFC and in NFD: loading must not drop one silently."""
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("Jos\u00e9", _clips(corpus, "SM3")[:4])
    recognizer.enroll("Ana", _clips(corpus, "SF2")[:4])
    saved = recognizer.save_enrollments(tmp_path / "old")
    document = json.loads(saved.read_text(encoding="utf-8"))
    document["speakers"][1]["speaker"] = "Jose\u0301"  # as an older ser_hf kept it, apart
    saved.write_text(json.dumps(document), encoding="utf-8")
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(SERError, match=r"records 0 and 1 both name speaker 'José'.*one would silently replace"):
        fresh.load_enrollments(saved)
    assert fresh.enrollments.speakers == {}


@pytest.mark.parametrize("spoil, expected", [
    (lambda d: d["speakers"].__setitem__(0, 1), r"record 0 has no usable offset or is malformed"),
    (lambda d: d["speakers"][1].pop("speaker"), r"record 1 has no usable offset or is malformed"),
    (lambda d: d["speakers"][1].__setitem__("speaker", None), r"record 1 has no usable offset"),
    (lambda d: d["speakers"][1].__setitem__("adapted", "no"), r"speaker 'SF2' \(record 1\) has no usable offset"),
    (lambda d: d["speakers"][1].__setitem__("clips", -5), r"speaker 'SF2' \(record 1\) has no usable offset"),
    (lambda d: d["speakers"][1].__setitem__("clips", True), r"speaker 'SF2' \(record 1\) has no usable offset"),
    (lambda d: d["speakers"][1].__setitem__("speaker", " \u200b "), r"record 1 has no usable offset or is malformed"),
    (lambda d: d["speakers"][1].__setitem__("tensor", "offset.0"), None),  # another speaker's offset: still valid
    (lambda d: d.__setitem__("speakers", {"SM3": 1}), r"is not an enrollment file of this version"),
    (lambda d: d.__setitem__("format", 99), r"format 99, expected 1"),
])
def test_a_tampered_enrollment_file_changes_nothing(adaptive, tmp_path, spoil, expected):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    recognizer.enroll("SF2", _clips(corpus, "SF2")[:4])
    saved = recognizer.save_enrollments(tmp_path / "people")
    document = json.loads(saved.read_text())
    spoil(document)
    saved.write_text(json.dumps(document))
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    fresh.enroll("SF2", _clips(corpus, "SF2")[4:8])
    offset = fresh.enrollments.speakers["SF2"]["shift"].offset.copy()
    if expected is None:
        assert fresh.load_enrollments(saved) == ["SM3", "SF2"]
        return
    with pytest.raises(SERError, match=expected):
        fresh.load_enrollments(saved)
    assert list(fresh.enrollments.speakers) == ["SF2"]  # nothing loaded, not even the records before the bad one
    np.testing.assert_array_equal(fresh.enrollments.speakers["SF2"]["shift"].offset, offset)


def test_implausible_offsets_are_refused(adaptive, tmp_path):
    from safetensors.numpy import load_file, save_file

    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:4])
    saved = recognizer.save_enrollments(tmp_path / "people")
    document = json.loads(saved.read_text())
    del document["weights_sha256"]
    saved.write_text(json.dumps(document))
    tensors = load_file(str(tmp_path / "people.safetensors"))
    for spoiled in (tensors["offset.0"].astype(np.float64) * 1e300, tensors["offset.0"] * np.float32(1e30)):
        save_file({"offset.0": spoiled}, str(tmp_path / "people.safetensors"))
        with pytest.raises(SERError, match=r"speaker 'SM3' \(record 0\) has no usable offset"):
            EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)


def test_speaker_ids_must_name_someone(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SM3")[:4]
    for bad in (None, "", "   ", True, 1.5, ["a"]):
        with pytest.raises(SERError, match=r"a speaker id must be a non-empty string"):
            recognizer.enroll(bad, clips)
    assert recognizer.enroll(7, clips)["speaker"] == "7"
    for bad in ("", "   ", "\u200b", True, b"7", 1.5):  # a lookup names someone too, or says how to name nobody
        with pytest.raises(SERError, match=r"a speaker id must be a non-empty string .* or pass speaker=None"):
            recognizer.predict(clips[0], speaker=bad)
    for index in range(12):
        recognizer.enrollments.speakers[f"{'x' * 500}{index}"] = recognizer.enrollments.speakers["7"]
    with pytest.raises(SERError, match=r"is not enrolled") as raised:
        recognizer.predict(clips[0], speaker="y" * 1000)
    assert len(str(raised.value)) < 1200 and "... 3 more" in str(raised.value)


def test_overwriting_a_speaker_model_keeps_files_added_to_it(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SF2", _clips(corpus, "SF2")[:5])
    out = recognizer.save_speaker_model("SF2", tmp_path / "sf2")
    (out / "my_notes.txt").write_text("mine")
    with pytest.raises(ModelError, match=r"holds .*my_notes.txt, which ser_hf did not write there"):
        recognizer.save_speaker_model("SF2", out, overwrite=True)
    assert (out / "my_notes.txt").read_text() == "mine"


def test_overwriting_a_speaker_model_keeps_a_folder_added_to_it(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SF2", _clips(corpus, "SF2")[:5])
    out = recognizer.save_speaker_model("SF2", tmp_path / "sf2")
    (out / "v1").mkdir()
    (out / "v1" / "config.json").write_text('{"mine": 1}')
    with pytest.raises(ModelError, match=r"holds .*v1, which ser_hf did not write there"):
        recognizer.save_speaker_model("SF2", out, overwrite=True)
    assert (out / "v1" / "config.json").read_text() == '{"mine": 1}'


# ------------------------------------------------------------------------ which clips enrollment learns from


def _encoded(recognizer) -> list[int]:
    """Records how many waves each call to the encoder gets (``versions``) on ``recognizer``'s enrollments."""
    registry, calls = recognizer.enrollments, []
    encode = registry.versions

    def counting(waves, *args, **kwargs):
        waves = list(waves)
        calls.append(len(waves))
        return encode(waves, *args, **kwargs)

    registry.versions = counting
    return calls


def test_silent_clips_are_left_out_before_the_encoder_runs(adaptive):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    calls = _encoded(recognizer)
    silence = np.zeros(16000, np.float32)
    hiss = np.random.default_rng(0).normal(0, 1e-4, 16000).astype(np.float32)  # -80 dBFS: no voice either
    summary = recognizer.enroll("quiet", [silence, silence, hiss])
    assert summary["adapted"] is False and (summary["clips"], summary["silent_clips"]) == (0, 3)
    assert "0 voiced clip(s) enrolled (3 silent or voiceless clip(s) left out), fewer than the 3" in summary["reason"]
    assert calls == [0]  # no forward pass for an empty batch, no crash
    clip = _clips(corpus, "SM1")[5]
    assert recognizer.predict(clip, speaker="quiet")["scores"] == pytest.approx(recognizer.predict(clip)["scores"],
                                                                                abs=1e-5)
    voiced = _clips(corpus, "SM1")[:3]
    alone = recognizer.enroll("SM1", voiced)
    mixed = recognizer.enroll("SM1 mixed", voiced + [silence] * 5)
    assert calls[-1] == 3  # the five silent clips cost no forward pass
    assert (mixed["clips"], mixed["silent_clips"], mixed["adapted"]) == (3, 5, True) and "silent_clips" not in alone
    speakers = recognizer.enrollments.speakers
    np.testing.assert_allclose(speakers["SM1 mixed"]["shift"].offset, speakers["SM1"]["shift"].offset)
    # Silence is judged before the checkpoint's cleaning: normalised to full scale, a hiss is still no voice.
    from ser_hf.audio import AudioPreprocessor

    normalising = EmotionRecognizer.from_pretrained(checkpoint, preprocessor=AudioPreprocessor(
        sampling_rate=16000, normalize="peak"))
    assert normalising.enroll("hiss", [hiss, hiss * 2, hiss * 3])["silent_clips"] == 3
    # Each clip is judged on its own: quiet speech (-53 dBFS) beside loud sessions is still speech.
    quiet = load_audio(voiced[0], 16000)
    quiet = quiet * (10 ** (-53 / 20) / np.sqrt(np.mean(quiet.astype(np.float64) ** 2)))
    summary = recognizer.enroll("quiet and loud", [*voiced, quiet.astype(np.float32)])
    assert (summary["clips"], summary.get("silent_clips", 0)) == (4, 0)


def test_a_recording_given_twice_counts_once(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    calls = _encoded(recognizer)
    clip = _clips(corpus, "SM1")[0]
    (tmp_path / "link.wav").symlink_to(clip)
    summary = recognizer.enroll("x", [clip, tmp_path / "link.wav", (load_audio(clip), 16000)])
    assert (summary["clips"], summary["repeated_clips"], summary["adapted"]) == (1, 2, False)
    assert "1 voiced clip(s) enrolled (2 repeated clip(s) left out)" in summary["reason"]
    assert "same samples as an earlier clip" in summary["reason"] and calls == [1]
    others = _clips(corpus, "SM1")[1:3]
    again = recognizer.enroll("y", [clip, *others, clip, np.zeros(8000, np.float32)])
    assert again == {"speaker": "y", "clips": 3, "adapted": True, "silent_clips": 1, "repeated_clips": 1}
    saved = recognizer.save_enrollments(tmp_path / "people")  # the counts are kept in the file
    fresh = EmotionRecognizer.from_pretrained(checkpoint)
    fresh.load_enrollments(saved)
    assert fresh.enrollments.summary("y") == again and fresh.enrollments.summary("x") == summary
    # A prediction says whose head scored it, not the enrollment's counts.
    assert set(fresh.predict(others[0], speaker="y")) == {"label", "score", "scores", "speaker", "adapted"}
    timeline = fresh.predict_long(others[0], window=0.2, hop=0.2, speaker="x")
    assert {"speaker", "adapted", "reason"} <= set(timeline) and not {"clips", "repeated_clips"} & set(timeline)


@pytest.mark.parametrize("clips, found", [
    ("one.wav", r"got a single path 'one.wav'; wrap it: enroll\('a', \[clip\]\)"),
    (np.zeros(16000, np.float32), r"got a single array of shape \(16000,\); wrap it"),
    (np.zeros((3, 16000), np.float32), r"got a single array of shape \(3, 16000\); wrap it.*one per clip"),
    ((np.zeros(16000, np.float32), 16000), r"got a single \(array, rate\) pair; wrap it"),
    ((np.zeros(16000, np.float32), np.int64(8000)), r"got a single \(array, rate\) pair"),
    (None, r"got None; pass a list of their clips"),
    ({"a": 1}, r"got a dict; pass a list"),
    (7, r"got a int; pass a list"),
])
def test_one_clip_instead_of_a_list_is_refused(adaptive, clips, found):
    _, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(SERError, match=r"clips must be a list of clips \(paths, arrays or \(array, rate\) pairs\); "
                                       + found):
        recognizer.enroll("a", clips)


def test_a_path_object_is_one_clip_and_no_clips_is_refused(adaptive):
    from pathlib import Path

    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SM1")[:3]
    with pytest.raises(SERError, match=r"got a single path '.*SM1.*\.wav'; wrap it"):
        recognizer.enroll("a", Path(clips[0]))
    with pytest.raises(SERError, match=r"enrollment needs clips: got an empty list for speaker 'a'"):
        recognizer.enroll("a", [])
    assert recognizer.enroll("a", tuple(clips))["clips"] == 3  # a tuple of clips and a generator are lists of clips
    assert recognizer.enroll("b", (clip for clip in clips))["clips"] == 3


# ------------------------------------------------------------------------------------ enrollment file paths


@pytest.mark.parametrize("path, expected", [
    ("", r"at '': it names a folder .* pass e.g. './speakers'"),
    (".", r"at '.': it names a folder"),
    ("/", r"at '/': it names a folder .* pass e.g. '/speakers'"),
    ("sub/", r"at 'sub/': it names a folder .* pass e.g. 'sub/speakers'"),
    ("sub/..", r"it names a folder"),
    (".json", r"it is only the suffix of the pair"),
    ("a\0b", r"the path 'a\\\\x00b' holds a NUL byte, which no file or folder name can hold"),
    ("x" * 300, r"its name is 300 bytes; a file name in that folder holds at most \d+.*Pass a shorter name"),
    ("x" * 300 + "/p", r"File name too long; expected a path whose folders can be reached"),
    ("file.txt/p", r"it lies under '.*file.txt', which is a file, not a folder"),
    (None, r"the path must be a str or os.PathLike, got NoneType"),
])
def test_enrollment_paths_that_cannot_be_a_file_are_refused(adaptive, tmp_path, monkeypatch, path, expected):
    corpus, checkpoint, _ = adaptive
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "file.txt").write_text("mine")
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:3])
    for action, call in (("save", recognizer.save_enrollments), ("load", recognizer.load_enrollments)):
        with pytest.raises(SERError, match=f"cannot {action} enrollments" + r".*" + expected):
            call(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "sub"] and not any((tmp_path / "sub").iterdir())


def test_a_name_that_fits_with_its_suffix_but_not_with_the_temporary_file_is_refused(adaptive, tmp_path):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:3])
    with pytest.raises(SERError, match=r"its name is 235 bytes.*at most 229 bytes"):
        recognizer.save_enrollments(tmp_path / ("x" * 235))
    assert recognizer.save_enrollments(tmp_path / ("x" * 229)).name == "x" * 229 + ".json"
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_a_folder_that_cannot_be_written_is_named(adaptive, tmp_path, monkeypatch):
    import ser_hf.inference.speakers as speakers

    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM3", _clips(corpus, "SM3")[:3])

    def refused(path, *args, **kwargs):  # what a read-only folder gives (root is not refused by permissions)
        raise PermissionError(13, "Permission denied", str(path.parent / f".{path.name}.abc.tmp"))

    monkeypatch.setattr(speakers, "atomic_write_bytes", refused)
    with pytest.raises(SERError, match=r"cannot save enrollments to '.*people': Permission denied \('.*\.people\."
                                       r"safetensors\.abc\.tmp'\); expected a folder you can write"):
        recognizer.save_enrollments(tmp_path / "people")


def test_an_id_with_an_invisible_mark_inside_an_accent_is_one_speaker_everywhere(adaptive):
    """'Jose' + zero-width space + combining acute (José pasted from a web page) is 'José' in NFC however often it
    is keyed: enroll() answers, and predict finds the speaker under either spelling."""
    from ser_hf.names import speaker_text

    for text in ("Jose\u200b\u0301", " \u200e\u0301x ", "\u2000a\u0301\u2001", "A\u030a\u200b\u0301", "\ufeff"):
        assert speaker_text(speaker_text(text)) == speaker_text(text)
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    clips = _clips(corpus, "SM3")
    assert recognizer.enroll("Jose\u200b\u0301", clips[:4])["speaker"] == "Jos\u00e9"
    for spelling in ("Jos\u00e9", "Jose\u0301", "Jose\u200b\u0301"):
        assert recognizer.predict(clips[5], speaker=spelling)["adapted"] is True
    assert list(recognizer.enrollments.speakers) == ["Jos\u00e9"]


def test_a_constant_clip_is_no_voice_to_enroll(adaptive):
    """A dead input stuck at a DC bias reads -10 dBFS by its raw RMS, yet holds no sound: left out as silence."""
    from ser_hf.inference.streaming import window_level_db

    assert window_level_db(np.full(16000, 0.3, np.float32)) == -200.0
    assert window_level_db(0.3 + 0.1 * np.sin(np.arange(16000) / 5)) == pytest.approx(-23.0, abs=0.1)
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    constant = [np.full(6400, level, np.float32) for level in (0.3, -0.2, 0.5, 0.1)]
    summary = recognizer.enroll("dead-mic", constant)
    assert (summary["adapted"], summary["clips"], summary["silent_clips"]) == (False, 0, 4)
    voiced = recognizer.enroll("SM3", [load_audio(clip) for clip in _clips(corpus, "SM3")[:3]] + constant)
    assert (voiced["clips"], voiced["silent_clips"]) == (3, 4)


def test_an_adapting_stream_never_learns_the_voice_from_room_tone(adaptive):
    """A stream opening on hiss (its loudest sound so far, so the relative gate lets it through) or with no gate at
    all scores those windows with the global head and learns nothing from them: the speech after it is scored as if
    the stream had started with it."""
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    voice = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SF2")[:6]])
    hiss = (1e-4 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)  # -80 dBFS, 1 s
    for gate in (-40.0, None):
        alone = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=gate, adapt=True).push(voice)
        stream = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=gate, adapt=True)
        results = stream.push(hiss[:12800]) + stream.push(voice)  # the hiss heard before the voice
        after = [r for r in results if r["start"] >= 0.8]
        assert [r for r in results if r["start"] < 0.8] and not any(r["adapted"] for r in results if r["start"] < 0.8)
        assert [r["adapted"] for r in after] == [r["adapted"] for r in alone] and any(r["adapted"] for r in alone)
        for late, early in zip(after, alone, strict=True):
            assert late["scores"] == pytest.approx(early["scores"], abs=1e-5)


def _loud_but_voiceless(seconds: float) -> dict[str, np.ndarray]:
    """Sounds at -30 dBFS or louder that hold no voice: a mains hum, a fan's noise, a buzz switched on and off."""
    t = np.arange(int(seconds * 16000)) / 16000
    return {"hum": sum(0.05 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3)).astype(np.float32),
            "fan": (0.05 * np.random.default_rng(3).standard_normal(t.size)).astype(np.float32),
            "buzz": (0.1 * np.sign(np.sin(2 * np.pi * 100 * t)) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)}


def test_loud_sounds_with_no_voice_are_never_enrolled(adaptive):
    """Loud is not voiced: a hum, a fan or a buzz among a speaker's clips is left out as voiceless, never learnt as
    their voice (the offset is that of their voiced clips alone)."""
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    noises = list(_loud_but_voiceless(1.0).values())
    summary = recognizer.enroll("room", noises)
    assert (summary["adapted"], summary["clips"], summary["silent_clips"]) == (False, 0, 3)
    assert "3 silent or voiceless clip(s) left out" in summary["reason"] and "hum or steady noise" in summary["reason"]
    voiced = _clips(corpus, "SM3")[:3]
    alone, mixed = recognizer.enroll("SM3", voiced), recognizer.enroll("SM3 in a room", voiced + noises)
    assert (alone["adapted"], mixed["clips"], mixed["silent_clips"]) == (True, 3, 3)
    speakers = recognizer.enrollments.speakers
    np.testing.assert_allclose(speakers["SM3 in a room"]["shift"].offset, speakers["SM3"]["shift"].offset)


@pytest.mark.parametrize("sound", ["hum", "fan", "buzz"])
def test_an_adapting_stream_never_learns_the_voice_from_a_loud_sound_with_no_voice(adaptive, sound):
    """A stream opening on a hum, a fan or a buzz louder than the room (the -60 dBFS floor lets it through, and so
    does the gate, relative to the loudest sound so far) scores those windows with the global head and learns nothing
    from them."""
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    voice = np.concatenate([load_audio(clip) for clip in _clips(corpus, "SF2")[:6]])
    noise = _loud_but_voiceless(0.8)[sound]
    for gate in (-40.0, None):
        alone = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=gate, adapt=True).push(voice)
        stream = recognizer.stream(window=0.4, hop=0.4, vad_threshold_db=gate, adapt=True)
        results = stream.push(noise) + stream.push(voice)
        early, after = [r for r in results if r["start"] < 0.8], [r for r in results if r["start"] >= 0.8]
        assert len(early) == 2 and not any(r["adapted"] for r in early)
        assert [r["adapted"] for r in after] == [r["adapted"] for r in alone] and any(r["adapted"] for r in alone)
        for late, first in zip(after, alone, strict=True):
            assert late["scores"] == pytest.approx(first["scores"], abs=1e-5)


def test_a_speaker_model_of_a_recognizer_with_copies_says_it_scores_each_clip_alone(adaptive, tmp_path, caplog):
    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, test_time_copies=COPIES)
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    with caplog.at_level("WARNING"):
        out = recognizer.save_speaker_model("SM1", tmp_path / "sm1")
    assert "leaves out this recognizer's test-time copies ['0.9x speed', '1.1x speed']" in caplog.text
    record = json.loads((out / "ser_hf_speaker.json").read_text())
    assert record["test_time_copies"] == {"left_out": ["0.9x speed", "1.1x speed"]}
    plain = EmotionRecognizer.from_pretrained(checkpoint)
    plain.enroll("SM1", _clips(corpus, "SM1")[:4])
    expected = plain.predict(_clips(corpus, "SM1")[5], speaker="SM1")["scores"]
    assert EmotionRecognizer.from_pretrained(out).predict(_clips(corpus, "SM1")[5])["scores"] == pytest.approx(
        expected, abs=1e-5)


def test_an_offsets_file_that_cannot_be_one_is_refused_before_it_is_read(adaptive, tmp_path):
    """The .safetensors beside an enrollment .json is read only up to what its speakers' offsets can take: a link
    to /dev/zero, a FIFO or a huge file is refused at once, naming it."""
    import os

    corpus, checkpoint, _ = adaptive
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("SM1", _clips(corpus, "SM1")[:4])
    saved = recognizer.save_enrollments(tmp_path / "spk")
    weights = saved.with_suffix(".safetensors")
    assert EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved) == ["SM1"]
    weights.unlink()
    weights.symlink_to("/dev/zero")
    with pytest.raises(SERError, match=r"spk.*\.safetensors cannot be read \(.*not a regular file"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)
    weights.unlink()
    os.mkfifo(weights)
    with pytest.raises(SERError, match=r"not a regular file"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)
    weights.unlink()
    with open(weights, "wb") as handle:
        handle.truncate(2**30)  # sparse: 1 GiB that costs no disk
    with pytest.raises(SERError, match=r"is 1073741824 bytes, more than the \d+ the offsets \(and score spreads\) its \.json names can need"):
        EmotionRecognizer.from_pretrained(checkpoint).load_enrollments(saved)
