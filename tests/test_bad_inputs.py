"""The bad-input corpus (ser_hf.testing.bad_audio) through every entry point that reads audio.

Each case must be handled correctly (decoded, with its documented conversion) or refused with an error that
names the file; batch jobs (lenient corpus loading, `ser-hf train --strict false`, evaluate, the baseline's
extraction, `ser-hf predict`) go on past bad files and report every one, and nothing is left half-written.
The one-hour clip is marked slow; each of its tests still takes seconds.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import tracemalloc

import numpy as np
import pytest
import torch

from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION, audio_info, check_clip_duration, load_audio
from ser_hf.baseline.crossval import cross_validate_baseline
from ser_hf.baseline.extraction import extract_dataset_features, file_digest
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.cli import main
from ser_hf.corpora import load_corpus, scan
from ser_hf.errors import AudioError, CorpusError
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.bad_audio import BadInput, make_bad_inputs
from ser_hf.testing.corpora import make_corpus_tree, write_tone
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.data import AudioCollator

FOUR = ["neutral", "happy", "sad", "angry"]
SPEAKERS = [f"S{n}" for n in range(1, 7)]
# A small feature set keeps the baseline's extraction well under a second per dozen clips.
FEATURES = FeatureConfig(groups=("mfcc", "rms", "pitch"), n_mfcc=13, mfcc_delta_order=1, stats=("mean", "std"))

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The corpus (one copy, the hour clip included) inside a folder corpus, a manifest corpus over good clips
    of six speakers plus every case, and a tiny wav2vec2 classifier."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    tree = make_corpus_tree("folder", tmp / "folder")
    cases = make_bad_inputs(tree / "angry" / "bad")
    rows = []
    for n, (speaker, label, take) in enumerate((s, e, t) for s in SPEAKERS for e in FOUR for t in range(2)):
        path = write_tone(tmp / "good" / f"{speaker}_{label}_{take}.wav", duration=0.5, frequency=150 + 10 * n, seed=n)
        rows.append({"path": str(path), "label": label, "speaker": speaker})
    speaker_of_file: dict[str, str] = {}  # a symlink is its target's recording: the same speaker, as in real data
    for n, case in enumerate(cases):
        speaker = speaker_of_file.setdefault(os.path.realpath(case.path), SPEAKERS[n % 6])
        rows.append({"path": str(case.path), "label": FOUR[n % 4], "speaker": speaker})
    manifest = tmp / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), FOUR)
    return {"tmp": tmp, "tree": tree, "cases": cases, "manifest": manifest, "backbone": tmp / "backbone",
            "model": save_checkpoint(model, extractor, tmp / "model"), "extractor": extractor,
            "classifier": model.eval()}


def _quick(cases: list[BadInput]) -> list[BadInput]:
    return [case for case in cases if not case.slow]


def _names(cases, **where) -> set[str]:
    return {c.name for c in cases if all(getattr(c, key) == value for key, value in where.items())}


def _assert_names_file(case: BadInput, message: str, match: str | None = None) -> None:
    assert str(case.path) in message, f"{case.name}: the error does not name the file: {message}"
    pattern = match or case.error_match
    assert re.search(pattern, message), f"{case.name}: {message!r} does not match {pattern!r}"


# --- the factory ---------------------------------------------------------------------------------------

def test_factory_writes_every_case_once(world):
    cases = world["cases"]
    assert len({c.name for c in cases}) == len(cases) >= 30
    assert all(c.path.exists() or c.path.is_symlink() for c in cases)
    assert {"empty", "header_only", "truncated", "random_bytes", "text", "nan", "inf", "pcm_u8", "pcm_24", "float32",
            "rate_8k", "rate_96k", "six_channels", "ten_ms", "one_hour", "silence", "square_clipped", "mp3", "ogg",
            "space", "non_ascii", "symlink", "unreadable", "directory"} <= {c.name for c in cases}
    assert next(c for c in cases if c.name == "symlink").path.is_symlink()
    assert next(c for c in cases if c.name == "one_hour").path.stat().st_size > 50e6
    # data() gives bytes to upload for regular readable files only: FIFOs would block, directories have none.
    assert {c.name for c in cases if c.data() is None} >= {"directory", "dangling_symlink", "fifo"}
    mp3 = next(c for c in cases if c.name == "mp3").data()
    assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0)  # an ID3 tag or an MPEG frame sync


# --- decoding ------------------------------------------------------------------------------------------

def test_decoding_every_case_converts_or_names_the_file(world):
    for case in _quick(world["cases"]):
        if case.expected == "error":
            with pytest.raises(AudioError) as caught:
                load_audio(case.path)
            _assert_names_file(case, str(caught.value))
            continue
        wave = load_audio(case.path)
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all(), case.name
        tolerance = 0.05 if case.name in ("mp3", "ogg") else 0.002  # lossy codecs pad a little
        assert wave.size / 16000 == pytest.approx(case.duration, abs=tolerance), case.name


def test_documented_conversions(world):
    cases = {c.name: c for c in world["cases"]}
    reference = load_audio(cases["reference"].path)
    assert audio_info(cases["six_channels"].path).channels == 6
    # The 6 channels hold 220, 440, ... 1320 Hz tones of amplitude 0.3: their mean peaks well below 0.3.
    assert 0.05 < np.abs(load_audio(cases["six_channels"].path)).max() < 0.3
    for name in ("rate_8k", "rate_96k"):
        np.testing.assert_allclose(load_audio(cases[name].path)[200:-200], reference[200:-200], atol=0.01)
    assert np.abs(load_audio(cases["float_overrange"].path)).max() == pytest.approx(4.0, rel=1e-3)
    assert not load_audio(cases["silence"].path).any()
    np.testing.assert_array_equal(load_audio(cases["symlink"].path), reference)


def test_an_unreadable_file_is_named(world, monkeypatch):
    """Root reads mode-000 files anyway, so the permission check is exercised by pretending it fails."""
    case = next(c for c in world["cases"] if c.name == "reference")
    monkeypatch.setattr("ser_hf.audio.decoding.os.access", lambda path, mode: False)  # where the check runs
    with pytest.raises(AudioError, match=r"reference\.wav' cannot be read \(permission denied\)"):
        load_audio(case.path)


def test_clip_duration_limits(world):
    for case in _quick(world["cases"]) + [c for c in world["cases"] if c.slow]:
        if case.expected == "error":
            continue
        if case.as_clip == "ok":
            assert MIN_CLIP_DURATION <= check_clip_duration(case.path).duration <= MAX_CLIP_DURATION
        else:
            with pytest.raises(AudioError) as caught:
                check_clip_duration(case.path)
            _assert_names_file(case, str(caught.value))
    ten_ms = next(c for c in world["cases"] if c.name == "ten_ms")
    with pytest.raises(AudioError, match=r"ten_ms\.wav' is too short for an emotion clip: 10 ms, expected at least 100 ms"):
        check_clip_duration(ten_ms.path)
    assert check_clip_duration(ten_ms.path, min_duration=None).duration == pytest.approx(0.01)


@pytest.mark.slow
def test_one_hour_clip_decodes_in_bounded_memory(world):
    case = next(c for c in world["cases"] if c.name == "one_hour")
    tracemalloc.start()
    try:
        wave = load_audio(case.path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert wave.size == 3600 * 16000 and np.isfinite(wave[::16000]).all()
    assert peak < 2.2 * wave.nbytes  # the 230 MB output plus at most the 8 kHz float32 decode
    with pytest.raises(AudioError, match=r"one_hour\.wav' is too long for one emotion clip: 3600\.0 s, expected "
                                         r"at most 300 s\. .*predict_long"):
        check_clip_duration(case.path)


# --- corpus loaders ------------------------------------------------------------------------------------

def _refused_by_loaders(cases, *, scanned_by_extension: bool) -> set[str]:
    """Cases a lenient loader skips: decode errors and clips of the wrong length (the text file only in a
    manifest: folder scans never pick up a .txt)."""
    refused = {c.name for c in cases if c.as_clip == "error" and (c.has_audio_extension or not scanned_by_extension)}
    # The link is its target's recording listed twice; a folder scan walks into directory.wav (an empty folder).
    return (refused | {"symlink"}) - ({"directory"} if scanned_by_extension else set())


@pytest.mark.parametrize("corpus", ["folder", "manifest"])
def test_strict_loading_names_every_unusable_file(world, corpus):
    data_dir = world["tree"] if corpus == "folder" else world["manifest"]
    refused = _refused_by_loaders(world["cases"], scanned_by_extension=corpus == "folder")
    # Strict loading reads headers only: clips whose samples are broken (NaN, a cut-off FLAC) fail at decoding.
    broken_samples = {"nan", "inf", "truncated_flac"}
    with pytest.raises(CorpusError) as caught:
        load_corpus(corpus, data_dir)
    message = str(caught.value)
    assert re.search(rf"^{len(refused - broken_samples)} file\(s\) in .* could not be used as {corpus} clips", message)
    assert "strict=False (`ser-hf train ... --strict false`)" in message
    listed = [c for c in world["cases"] if f"{c.path}:" in message]  # a problem's own file, not one it names
    assert len(listed) == min(10, len(refused - broken_samples))  # ten named, the rest counted
    assert {c.name for c in listed} <= refused - broken_samples


@pytest.mark.parametrize("corpus", ["folder", "manifest"])
def test_lenient_loading_skips_and_lists_every_unusable_file(world, corpus, caplog):
    data_dir = world["tree"] if corpus == "folder" else world["manifest"]
    cases = world["cases"]
    refused = _refused_by_loaders(cases, scanned_by_extension=corpus == "folder")
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.base"), pytest.warns(UserWarning) as warned:
        dataset = load_corpus(corpus, data_dir, strict=False)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for case in cases:
        if case.name in refused:
            _assert_names_file(case, logged, case.error_match or "the same audio file as")  # every skipped file
            assert str(case.path) not in dataset["audio"]
        elif (case.has_audio_extension and case.name != "directory") or corpus == "manifest":
            assert str(case.path) in dataset["audio"], case.name
    assert f"{len(refused)} file(s)" in str(warned[0].message) and "They were skipped" in str(warned[0].message)
    good = 32 if corpus == "folder" else 48  # the corpus's own clips all load
    assert len(dataset) == good + len(_names(cases, as_clip="ok") - refused)
    # Lenient loading decodes every clip, so nothing it keeps can fail later in a batch job.
    for path in dataset["audio"]:
        load_audio(path)


def test_clip_limits_can_be_lifted(world):
    with pytest.warns(UserWarning, match=r"could not be used as folder clips"):  # the unreadable files still are
        dataset = load_corpus("folder", world["tree"], strict=False, check_audio="header", min_clip_duration=None,
                              max_clip_duration=None)
    names = {p.rsplit("/", 1)[-1] for p in dataset["audio"]}
    assert {"ten_ms.wav", "one_hour.wav", "nan.wav"} <= names  # header checks only, no length limits
    with pytest.raises(CorpusError, match=r"check_audio must be True, False, 'header' or 'decode', got 'full'"):
        scan("folder", world["tree"], check_audio="full")


# --- the training data pipeline ------------------------------------------------------------------------

def test_training_collator_batches_or_names_the_file(world):
    collator = AudioCollator(world["extractor"])
    model = world["classifier"]
    for case in _quick(world["cases"]):
        for name, collate in (("evaluation", collator), ("training", collator.for_training())):
            if case.expected == "error":
                with pytest.raises(AudioError) as caught:
                    collate([{"audio": str(case.path), "label": 1}])
                _assert_names_file(case, str(caught.value))
                continue
            batch = collate([{"audio": str(case.path), "label": 1}])
            assert torch.isfinite(batch["input_values"]).all(), (case.name, name)
            if case.as_clip == "ok":  # a 10 ms clip gives the encoder no frame: the loaders refuse it
                with torch.no_grad():
                    logits = model(input_values=batch["input_values"]).logits
                assert torch.isfinite(logits).all(), (case.name, name)


@pytest.mark.slow
def test_training_crop_of_the_one_hour_clip_is_bounded(world):
    case = next(c for c in world["cases"] if c.name == "one_hour")
    batch = AudioCollator(world["extractor"], max_duration=2.0).for_training()([{"audio": str(case.path), "label": 0}])
    assert batch["input_values"].shape == (1, 32000)


def test_train_lenient_skips_bad_files_and_strict_names_them(world, tmp_path, capsys):
    argv = ["train", "--corpus", "manifest", "--data_dir", str(world["manifest"]), "--model_name_or_path",
            str(world["backbone"]), "--mode", "finetune", "--num_train_epochs", "1", "--learning_rate", "1e-3",
            "--disable_tqdm", "true", "--per_device_train_batch_size", "8"]
    strict_out = tmp_path / "strict"
    assert main([*argv, "--output_dir", str(strict_out)]) == 2
    error = capsys.readouterr().err
    assert "could not be used as manifest clips" in error and str(world["cases"][0].path) in error
    assert not strict_out.exists() or not any(strict_out.iterdir())  # nothing half-written
    out = tmp_path / "lenient"
    with pytest.warns(UserWarning, match=r"They were skipped \(strict=False\)"):
        assert main([*argv, "--strict", "false", "--output_dir", str(out)]) == 0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["num_samples"] > 0 and (out / "model.safetensors").is_file()


# --- ser-hf evaluate -----------------------------------------------------------------------------------

def test_evaluate_strict_names_a_bad_file_and_writes_nothing(world, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["evaluate", "--model", str(world["model"]), "--corpus", "manifest", "--data-dir", str(world["manifest"]),
            "--out", str(out), "--no-progress", "--n-resamples", "0"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "could not be used as manifest clips" in error and str(world["cases"][0].path) in error
    assert not out.exists()


def test_evaluate_lenient_scores_every_usable_clip(world, tmp_path):
    out = tmp_path / "report"
    with pytest.warns(UserWarning, match="They were skipped"):
        report = evaluate_checkpoint(world["model"], "manifest", world["manifest"], out_dir=out, n_resamples=0,
                                     progress=False, corpus_options={"strict": False})
    assert report.num_samples == 48 + len(_names(world["cases"], as_clip="ok")) - 1  # the link: its target's clip
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "confusion_matrix.png", "per_class.png"}
    assert json.loads((out / "report.json").read_text())["num_samples"] == report.num_samples


# --- ser-hf baseline -----------------------------------------------------------------------------------

def test_baseline_strict_names_a_bad_file_and_writes_nothing(world, tmp_path, capsys):
    out = tmp_path / "baseline"
    argv = ["baseline", "--corpus", "manifest", "--data-dir", str(world["manifest"]), "--classifier", "logreg",
            "--out", str(out), "--no-cache", "--workers", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "could not be used as manifest clips" in error and str(world["cases"][0].path) in error
    assert not out.exists()


def test_baseline_extraction_lists_every_failure(world, tmp_path):
    cases = _quick(world["cases"])
    paths = [str(case.path) for case in cases]
    matrix = extract_dataset_features(paths, FEATURES, cache_dir=tmp_path / "cache", num_workers=1, strict=False,
                                      progress=False)
    failures = dict(matrix.failures)
    for case in cases:
        if case.expected == "error":
            _assert_names_file(case, failures[str(case.path)])
        else:  # a 10 ms clip is zero-padded to the extractor's minimum (see ser_hf.baseline.features)
            assert str(case.path) in matrix.paths, case.name
    assert np.isfinite(matrix.features).all()
    # One vector per distinct content: the cache is keyed by the bytes (the symlink and renamed copies share one).
    ok_contents = {file_digest(c.path) for c in cases if c.expected == "ok"}
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(ok_contents)
    with pytest.raises(AudioError, match=re.escape(str(cases[0].path))):
        extract_dataset_features(paths, FEATURES, num_workers=1, strict=True, progress=False)


def test_baseline_cross_validation_on_a_lenient_corpus(world, tmp_path):
    with pytest.warns(UserWarning, match="They were skipped"):
        dataset = load_corpus("manifest", world["manifest"], strict=False)
    with pytest.warns(UserWarning, match=r"1 of \d+ clips hold no sound .*silence\.wav"):  # kept, and said so
        result = cross_validate_baseline(dataset, "logreg", n_folds=3, feature_config=FEATURES,
                                         param_grid={"C": [0.1]}, inner_folds=2, num_workers=1, out_dir=tmp_path,
                                         progress=False)
    assert result.pooled.num_samples == len(dataset) and np.isfinite(result.features).all()
    assert (tmp_path / "cv" / "cv_summary.json").is_file()


# --- ser-hf predict ------------------------------------------------------------------------------------

def _records(path):
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    assert "ser_hf_predictions" in json.loads(header)
    return {record["path"]: record for record in map(json.loads, lines)}, len(lines)


def test_predict_records_every_file_and_goes_on(world, tmp_path, capsys):
    cases = [c for c in _quick(world["cases"]) if c.name != "directory"]  # a directory input is expanded
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", "--model", str(world["model"]), *[str(c.path) for c in cases], "--out", str(out),
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    records, lines = _records(out)
    assert lines == len(cases) == summary["inputs"]  # one complete record per input, nothing torn
    for case in cases:
        record = records[str(case.path)]
        if case.as_clip == "ok":
            assert record["label"] in FOUR and "error" not in record, case.name
        else:
            assert set(record) == {"path", "error"}, case.name
    assert summary["errors"] == len(_names(cases, as_clip="error"))
    for case in cases:
        if case.expected == "error":  # files that do not decode: the AudioError, naming the file
            _assert_names_file(case, records[str(case.path)]["error"])


def test_predict_refuses_clips_too_short_or_too_long(world, tmp_path, monkeypatch):
    from ser_hf.inference.recognizer import EmotionRecognizer

    original = EmotionRecognizer.predict_waves

    def guarded(self, waves, progress=False):  # fail fast instead of exhausting memory on the hour
        assert all(w.size <= MAX_CLIP_DURATION * 16000 for w in waves), "a clip over the limit reached the model"
        return original(self, waves, progress)

    monkeypatch.setattr(EmotionRecognizer, "predict_waves", guarded)
    cases = [c for c in world["cases"] if c.name in ("ten_ms", "one_hour")]
    out = tmp_path / "p.jsonl"
    from ser_hf.inference.jobs import predict_files

    predict_files(world["model"], [c.path for c in cases], out, progress=False)
    records, _ = _records(out)
    for case in cases:
        _assert_names_file(case, records[str(case.path)]["error"])


def test_predict_on_a_folder_records_dangling_links_and_fifos(world, tmp_path):
    from ser_hf.inference.jobs import predict_files

    # A folder of its own: the corpus folder holds the one-hour clip, which predict would score as one clip.
    folder = tmp_path / "inputs"
    cases = [c for c in make_bad_inputs(folder, include_long=False)]
    for case in cases:
        if case.name not in ("reference", "dangling_symlink", "fifo"):
            if case.path.is_dir() and not case.path.is_symlink():
                case.path.rmdir()
            else:
                case.path.unlink()
    out = tmp_path / "p.jsonl"
    predict_files(world["model"], [folder], out, progress=False)
    records, _ = _records(out)
    for case in (c for c in cases if c.name in ("dangling_symlink", "fifo")):
        assert str(case.path) in records, case.name
