"""A manifest's ``split`` column: ``ser-hf train`` tests on the rows it marks ``test`` (audit s29c finding 4: it was
ignored, and a speaker the user marked for training could end up tested); ``ser-hf cv`` says it does not use it."""

import csv
import json
import types

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
    err = " ".join(capsys.readouterr().err.split())
    assert (f"1 speaker(s) have rows that the 'split' column of manifest {manifest} marks as test and rows it does not "
            f"(e.g. ['D'])") in err


def test_cv_says_it_does_not_use_the_split_column(world, caplog, single_torch_thread):
    tmp, rows, common = world
    manifest = _manifest(tmp, rows, "cv.csv")
    with caplog.at_level("WARNING", logger="ser_hf.training.experiment"):
        assert main(["cv", *common, "--data_dir", str(manifest), "--output_dir", str(tmp / "cv"),
                     "--num_folds", "3"]) == 0
    assert "the manifest's split column marks 16 clips as test; cross-validation does not use it" in caplog.text


@pytest.mark.parametrize("validation_size", [None, "0"])
def test_a_split_column_marking_every_row_test_is_refused_before_training(world, capsys, validation_size):
    tmp, rows, common = world
    manifest = _manifest(tmp, [{**row, "split": "test"} for row in rows], "all_test.csv")
    extra = [] if validation_size is None else ["--validation_size", validation_size]
    out = tmp / f"all_test_{validation_size}"
    assert main(["train", *common, *extra, "--data_dir", str(manifest), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the manifest's split column marks all 48 clips as test" in err and "leaves none to train on" in err
    assert "clear the split column" in err
    assert not (out / "model.safetensors").exists()


def test_split_column_spellings_of_test_mark_test_rows_and_unknown_values_are_warned_about(caplog):
    import datasets

    from ser_hf.training.run_data import _marked_test_rows

    values = ["Testing", " EVAL", "evaluation", "test", "train", "Validation", "dev", "val", "", None, "holdout",
              "holdout", "tset"]
    run = types.SimpleNamespace(data=types.SimpleNamespace(dataset_name=None, is_multi_corpus=lambda: False))
    dataset = datasets.Dataset.from_dict({"split": values})
    with caplog.at_level("WARNING", logger="ser_hf.training.experiment"):
        assert _marked_test_rows(run.data, dataset).tolist() == [0, 1, 2, 3]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "{'holdout': 2, 'tset': 1}" in warned[0]
    assert "treats those clips as training rows" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="ser_hf.training.experiment"):
        assert _marked_test_rows(run.data, datasets.Dataset.from_dict({"split": ["train", "validation", ""]})) is None
    assert not caplog.records


def test_predefined_split_and_train_read_split_values_one_way(tmp_path, caplog):
    """Audit 30a finding 5: predefined_split made a part per raw text ('Test', 'TEST ', 'testing', 'NA')."""
    import datasets

    from ser_hf.corpora import load_corpus
    from ser_hf.errors import SplitError
    from ser_hf.splits import predefined_split
    from ser_hf.testing.corpora import write_tone
    from ser_hf.training import run_data

    values = ["train", "Training", "Test", "test", "TEST ", "testing", "Eval", "validation", " dev", "VAL", "holdout"]
    lines = ["path,label,speaker,split"]
    for number, value in enumerate(values):
        write_tone(tmp_path / f"{number}.wav", frequency=150 + 9 * number, seed=number)
        lines.append(f"{number}.wav,{('happy', 'sad')[number % 2]},s{number},{value}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    ds = load_corpus("manifest", tmp_path / "m.csv")
    with caplog.at_level("WARNING", logger="ser_hf.corpora.splits"):
        parts = predefined_split(ds)
    assert {name: part["speaker"] for name, part in parts.items()} == {
        "train": ["s0", "s1"], "validation": ["s7", "s8", "s9"], "test": ["s2", "s3", "s4", "s5", "s6"],
        "holdout": ["s10"]}
    assert "the 'split' column holds {'holdout': 1} (value: clips), none of the split names" in caplog.text
    run = types.SimpleNamespace(data=types.SimpleNamespace(dataset_name=None, is_multi_corpus=lambda: False))
    assert run_data._marked_test_rows(run.data, ds).tolist() == [2, 3, 4, 5, 6]  # the rows of predefined_split's test
    for missing in ("NA", " ", "null"):
        marked = datasets.Dataset.from_dict({"split": ["train", missing], "speaker": ["a", "b"]})
        with pytest.raises(SplitError, match=r"1 of 2 clips have no 'split' value \(rows \[1\]: .*missing-value marker"):
            predefined_split(marked)
        assert run_data._marked_test_rows(run.data, marked) is None  # a training row, as a blank one, not warned about


def test_split_column_values_are_read_as_datasets_reads_split_folders_and_look_alikes_named(caplog):
    """Audit 30c finding 5: 'test1', 'Test-set' and a full-width 'ｔｅｓｔ' were training rows (with a warning), while
    datasets reads them as the test split; the column and audiofolder split folders now share one reading."""
    import datasets

    from ser_hf.corpora.split_names import marked_test_rows
    from ser_hf.splits import predefined_split

    test = ["test1", "Test-set", "ｔｅｓｔ", "test_data", "eval 2", "my-test"]
    other = ["tëst", "testset", "train-test", "test\u200b"]
    values = ["train", "Train_2", "dev-set", *test, *other]
    with caplog.at_level("WARNING", logger="ser_hf.corpora.split_names"):
        assert marked_test_rows(values).tolist() == list(range(3, 3 + len(test)))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "{'tëst': 1, 'testset': 1, 'train-test': 1, 'test\\u200b': 1}" in warned[0]
    assert ("Of those, 'tëst' (looks like 'test'), 'testset' (looks like 'test'), 'train-test' (looks like 'test' and "
            "'train'), 'test\\u200b' (looks like 'test') are not read as a split name") in warned[0]
    dataset = datasets.Dataset.from_dict({"split": values[:3 + len(test)],
                                          "speaker": [f"s{n}" for n in range(3 + len(test))]})
    parts = predefined_split(dataset)
    assert {name: part["split"] for name, part in parts.items()} == {
        "train": ["train", "Train_2"], "validation": ["dev-set"], "test": test}
