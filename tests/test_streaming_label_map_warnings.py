"""`--streaming` gives the label_map warnings a non-streamed load of the same dataset gives, worded alike: entries
that match no raw label (a typo) and entries that move one spelling of an emotion while another stays (one emotion
in two classes). A ClassLabel column warns before training; string labels as their rows are read."""

import logging

import datasets
import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from ser_hf.corpora import DatasetSource, load_corpus
from ser_hf.testing.hf_datasets import emotion_rows
from ser_hf.training import streaming
from ser_hf.training.recipes import parse_run

#: 'joy' is a spelling of happy that `happy=sad` leaves alone; 'angyr' is a typo of a label the data has.
LABEL_MAP = {"happy": "sad", "angyr": "neutral"}
COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor"]
NAMES = ["neutral", "happy", "joy", "sad", "angry"]


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def _dataset(root, class_labels: bool) -> str:
    """The 24-clip dataset with three of its happy rows labelled 'joy', saved to disk."""
    rows = emotion_rows()
    rows["emotion"] = ["joy" if label == "happy" and i % 8 == 1 else label for i, label in enumerate(rows["emotion"])]
    label = datasets.ClassLabel(names=NAMES) if class_labels else datasets.Value("string")
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "emotion": label, "actor": datasets.Value("string"), "sex": datasets.Value("string")})
    part = datasets.Dataset.from_dict(rows, features=features).cast_column("audio", datasets.Audio(decode=False))
    datasets.DatasetDict({"train": part}).save_to_disk(str(root))
    return str(root)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "label_map" in r.getMessage()]


def _non_streamed_warnings(root: str, caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), label_map=LABEL_MAP)
    found = _warnings(caplog)
    assert len(found) == 2  # what the streamed run must match
    assert "entry: unmapped labels) {'happy=sad': ['joy']}" in found[0]
    assert f"label_map entries {{'angyr': 'neutral'}} match no label of the {root} corpus" in found[1]
    caplog.clear()
    return found


def _run(root: str, *extra: str):
    return parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--label_map",
                            ",".join(f"{k}={v}" for k, v in LABEL_MAP.items()), *extra])


def _split(run):
    source = run.data.dataset_source()
    return streaming.select_split(streaming.open_dataset(source, streaming=True), "train", source)


@pytest.mark.parametrize("emotions", [[], ["--emotions", "4class"]])
def test_a_class_label_column_warns_before_training_as_a_non_streamed_load_does(tmp_path, caplog, emotions):
    root = _dataset(tmp_path / "d", class_labels=True)
    expected = _non_streamed_warnings(root, caplog)
    run = _run(root, *emotions)
    with caplog.at_level(logging.WARNING):
        assert streaming.stream_labels(run.data, _split(run)) == ["neutral", "happy", "sad", "angry"]
    assert _warnings(caplog) == expected
    assert streaming.LabelMapWatch.for_split(run.data, _split(run)) is None  # nothing left to warn about later


def _end_of_epoch(watch, tmp_path, global_step: int, max_steps: int = 10) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=max_steps, report_to=[])
    watch.on_epoch_end(args, TrainerState(global_step=global_step, max_steps=max_steps), TrainerControl())


def test_string_labels_warn_of_a_split_emotion_when_first_read_and_of_unused_entries_when_the_stream_ends(
        tmp_path, caplog):
    root = _dataset(tmp_path / "d", class_labels=False)
    split_warning, unused_warning = _non_streamed_warnings(root, caplog)
    run = _run(root, "--emotions", "4class")
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    with caplog.at_level(logging.WARNING):
        rows = list(streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], seed=0, watch=watch))
    assert len(rows) == 24
    assert _warnings(caplog) == [split_warning]  # once, though three rows say 'joy'; the typo is not known yet
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _end_of_epoch(watch, tmp_path, global_step=10)  # max_steps ended the epoch: rows may be unread
        assert _warnings(caplog) == []
        _end_of_epoch(watch, tmp_path, global_step=3)  # the stream ran out first: every row was read
        _end_of_epoch(watch, tmp_path, global_step=6)
    assert _warnings(caplog) == [unused_warning]


def test_string_labels_without_a_label_map_need_no_watch(tmp_path):
    root = _dataset(tmp_path / "d", class_labels=False)
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class"])
    assert streaming.LabelMapWatch.for_split(run.data, _split(run)) is None


def test_a_training_run_whose_stream_runs_out_names_the_unused_entry(tmp_path, caplog, single_torch_thread):
    """Through the Trainer: 24 rows in batches of 8 run out after 3 of the 4 steps, ending the first pass."""
    from ser_hf.cli import main
    from ser_hf.testing.models import tiny_backbone

    root = _dataset(tmp_path / "d", class_labels=False)
    expected = _non_streamed_warnings(root, caplog)
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                     "--label_map", "happy=sad,angyr=neutral", "--model_name_or_path", str(backbone), "--mode",
                     "finetune", "--max_steps", "4", "--per_device_train_batch_size", "8", "--disable_tqdm", "true",
                     "--class_weighted_loss", "false", "--output_dir", str(tmp_path / "model")]) == 0
    assert _warnings(caplog) == expected
