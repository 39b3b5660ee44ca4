"""A manifest's ``split`` column: ``ser-hf train`` tests on the rows it marks ``test`` (audit s29c finding 4: it was
ignored, and a speaker the user marked for training could end up tested); ``ser-hf cv`` says it does not use it."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from ser_hf.cli import main
from ser_hf.testing.models import tiny_backbone

SPEAKERS = ["A", "B", "C", "D", "E", "F"]
EMOTIONS = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split_column")
    rng = np.random.default_rng(0)
    rows = []
    for speaker in SPEAKERS:
        for index, emotion in enumerate(EMOTIONS):
            for take in range(2):
                path = tmp / "clips" / f"{speaker}_{emotion}_{take}.wav"
                path.parent.mkdir(exist_ok=True)
                tone = np.sin(2 * np.pi * (150 + 40 * index) * np.arange(8000) / 16000)
                sf.write(path, (0.3 * tone + 0.01 * rng.standard_normal(8000)).astype(np.float32), 16000)
                rows.append({"path": f"clips/{path.name}", "label": emotion, "speaker": speaker,
                             "split": {"E": "Test", "F": " test"}.get(speaker, "train")})
    backbone = tiny_backbone("whisper", tmp / "tiny-whisper")
    common = ["--model_name_or_path", str(backbone), "--max_source_positions", "50", "--probe_max_epochs", "3",
              "--probe_projector_size", "8", "--embedding_cache_dir", str(tmp / "cache"), "--corpus", "manifest"]
    return tmp, rows, common


def _manifest(tmp, rows, name):
    path = tmp / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_tests_on_the_rows_the_split_column_marks_test(world, single_torch_thread):
    tmp, rows, common = world
    manifest = _manifest(tmp, rows, "manifest.csv")
    out = tmp / "model"
    assert main(["train", *common, "--data_dir", str(manifest), "--output_dir", str(out)]) == 0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["metadata"]["speakers"] == ["E", "F"] and report["num_samples"] == 16


def test_a_marked_test_speaker_who_also_speaks_in_training_rows_is_refused(world, capsys):
    tmp, rows, common = world
    leaky = [{**row, "split": "test"} if row["speaker"] == "D" and row["label"] == "sad" else row for row in rows]
    manifest = _manifest(tmp, leaky, "leaky.csv")
    assert main(["train", *common, "--data_dir", str(manifest), "--output_dir", str(tmp / "leaky")]) == 2
    assert "speaker(s) of the test part also speak in the training rows (e.g. ['D'])" in capsys.readouterr().err


def test_cv_says_it_does_not_use_the_split_column(world, caplog, single_torch_thread):
    tmp, rows, common = world
    manifest = _manifest(tmp, rows, "cv.csv")
    with caplog.at_level("WARNING", logger="ser_hf.training.experiment"):
        assert main(["cv", *common, "--data_dir", str(manifest), "--output_dir", str(tmp / "cv"),
                     "--num_folds", "3"]) == 0
    assert "the manifest's split column marks 16 clips 'test'; cross-validation does not use it" in caplog.text
