"""`--streaming` gives the label_map warnings a non-streamed load of the same dataset gives, worded alike: entries
that match no raw label (a typo) and entries that move one spelling of an emotion while another stays (one emotion
in two classes). A ClassLabel column's labels, like strings, are judged as their rows are read."""

import logging
import re

import datasets
import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from ser_hf.corpora import DatasetSource, load_corpus
from ser_hf.corpora.label_maps import warn_unused_entries
from ser_hf.testing.hf_datasets import emotion_rows, to_dataset
from ser_hf.training import streaming
from ser_hf.training.recipes import parse_run

#: 'joy' is a spelling of happy that `happy=sad` leaves alone; 'angyr' is a typo of a label the data has.
LABEL_MAP = {"happy": "sad", "angyr": "neutral"}
COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor"]
NAMES = ["neutral", "happy", "joy", "sad", "angry"]


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def _dataset_rows() -> dict[str, list]:
    """The 24-clip dataset's columns with three of its happy rows labelled 'joy'."""
    rows = emotion_rows()
    rows["emotion"] = ["joy" if label == "happy" and i % 8 == 1 else label for i, label in enumerate(rows["emotion"])]
    return rows


def _dataset(root, class_labels: bool) -> str:
    """The 24-clip dataset with three of its happy rows labelled 'joy', saved to disk."""
    rows = _dataset_rows()
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
def test_a_class_label_column_warns_as_its_rows_are_read_as_a_non_streamed_load_does(tmp_path, caplog, emotions):
    root = _dataset(tmp_path / "d", class_labels=True)
    expected = _non_streamed_warnings(root, caplog)
    run = _run(root, *emotions)
    labels = streaming.stream_labels(run.data, _split(run))
    assert labels == ["neutral", "happy", "sad", "angry"]
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    with caplog.at_level(logging.WARNING):
        assert len(list(streaming.training_stream(run.data, labels, seed=0, watch=watch))) == 24
    assert _warnings(caplog) == expected


def _end_of_epoch(watch, tmp_path, global_step: int, max_steps: int = 10) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=max_steps, report_to=[])
    watch.on_epoch_end(args, TrainerState(global_step=global_step, max_steps=max_steps), TrainerControl())


def test_string_labels_warn_of_a_split_emotion_when_first_read_and_of_unused_entries_when_every_row_is_read(
        tmp_path, caplog):
    """A local dataset's stream knows its length: the unused entry is named as the last row is read, whatever the
    Trainer does next (a stream that ends exactly at max_steps was read whole, though its epoch ends at max_steps)."""
    root = _dataset(tmp_path / "d", class_labels=False)
    expected = _non_streamed_warnings(root, caplog)
    run = _run(root, "--emotions", "4class")
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    stream = streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], seed=0, watch=watch)
    with caplog.at_level(logging.WARNING):
        assert len(list(stream)) == 24
        assert _warnings(caplog) == expected  # once each, though three rows say 'joy'
        _end_of_epoch(watch, tmp_path, global_step=3)
        assert len(list(stream)) == 24  # a second pass warns no more
    assert _warnings(caplog) == expected


def _parquet(root) -> str:
    """The dataset of `_dataset` as two parquet files: a stream that cannot count its rows."""
    root.mkdir()
    rows = _dataset_rows()
    for number, part in enumerate([range(12), range(12, 24)]):
        to_dataset({k: [v[i] for i in part] for k, v in rows.items()}).to_parquet(
            str(root / f"train-{number:05d}-of-00002.parquet"))
    return str(root)


def test_a_stream_of_unknown_length_names_the_unused_entry_when_an_epoch_ends_before_max_steps(tmp_path, caplog):
    root = _parquet(tmp_path / "pq")
    split_warning, unused_warning = _non_streamed_warnings(root, caplog)
    run = _run(root, "--emotions", "4class")
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    with caplog.at_level(logging.WARNING):
        rows = list(streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], seed=0, watch=watch))
    assert len(rows) == 24
    assert _warnings(caplog) == [split_warning]  # the typo is not known yet
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _end_of_epoch(watch, tmp_path, global_step=10)  # max_steps ended the epoch: rows may be unread
        assert _warnings(caplog) == []
        _end_of_epoch(watch, tmp_path, global_step=3)  # the stream ran out first: every row was read
        _end_of_epoch(watch, tmp_path, global_step=6)
    assert _warnings(caplog) == [unused_warning]


def test_string_labels_without_a_label_map_whose_rows_train_every_class_warn_of_nothing(tmp_path, caplog):
    root = _dataset(tmp_path / "d", class_labels=False)
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class"])
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))  # it watches for classes no row trains
    with caplog.at_level(logging.WARNING):
        rows = list(streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], seed=0, watch=watch))
    assert len(rows) == 24 and watch.read == 24
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("max_steps", [3, 4])
def test_a_training_run_whose_stream_runs_out_names_the_unused_entry(tmp_path, caplog, single_torch_thread, max_steps):
    """Through the Trainer: 24 rows in batches of 8 run out after 3 steps, ending the first pass: before max_steps
    (4), or exactly at it (3), where the epoch ends as if max_steps had cut the stream short."""
    from ser_hf.cli import main
    from ser_hf.testing.models import tiny_backbone

    root = _dataset(tmp_path / "d", class_labels=False)
    expected = _non_streamed_warnings(root, caplog)
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                     "--label_map", "happy=sad,angyr=neutral", "--model_name_or_path", str(backbone), "--mode",
                     "finetune", "--max_steps", str(max_steps), "--per_device_train_batch_size", "8",
                     "--disable_tqdm", "true",
                     "--class_weighted_loss", "false", "--output_dir", str(tmp_path / "model")]) == 0
    assert _warnings(caplog) == expected


def test_a_streamed_run_with_a_test_split_judges_the_label_map_over_both_splits(tmp_path, caplog, single_torch_thread):
    """As `ser-hf train` without --streaming loads both splits at once: 'anger=angry' is used by training rows only
    and 'ang=angry' by test rows only, so neither is unused; 'happiness', a test label, splits happy from the start."""
    from ser_hf.cli import main
    from ser_hf.testing.models import tiny_backbone

    rows = emotion_rows()  # speaker by speaker, 4 emotions each: the last two speakers' 8 rows are the test part
    for row, label in {3: "anger", 17: "happiness", 21: "happiness", 19: "ANG"}.items():
        rows["emotion"][row] = label
    parts = {"train": {k: v[:16] for k, v in rows.items()}, "test": {k: v[16:] for k, v in rows.items()}}
    root = str(tmp_path / "d")
    datasets.DatasetDict({name: to_dataset(part) for name, part in parts.items()}).save_to_disk(root)
    label_map = {"happy": "sad", "anger": "angry", "ang": "angry"}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), splits=["train", "test"],
                    label_map=label_map)
    expected = _warnings(caplog)
    assert len(expected) == 1 and "{'happy=sad': ['happiness']}" in expected[0]
    caplog.clear()
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    with caplog.at_level(logging.WARNING):  # 16 training rows in batches of 8: the stream runs out after 2 steps
        assert main(["train", "--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                     "--label_map", ",".join(f"{k}={v}" for k, v in label_map.items()), "--eval_split_name", "test",
                     "--model_name_or_path", str(backbone), "--mode", "finetune", "--max_steps", "3",
                     "--per_device_train_batch_size", "8", "--disable_tqdm", "true", "--class_weighted_loss", "false",
                     "--output_dir", str(tmp_path / "model")]) == 0
    assert _warnings(caplog) == expected


def _many_spellings(root, spellings: int) -> tuple[str, list[str]]:
    """120 clips whose first `spellings` happy rows (of 30) each spell 'happiness' in another case, saved to disk."""
    rows = emotion_rows(per_emotion=5)
    variants = ["".join(c.upper() if mask >> i & 1 else c for i, c in enumerate("happiness")) for mask in range(512)]
    happy = [i for i, label in enumerate(rows["emotion"]) if label == "happy"][:spellings]
    for row, variant in zip(happy, variants):
        rows["emotion"][row] = variant
    datasets.DatasetDict({"train": to_dataset(rows)}).save_to_disk(str(root))
    return str(root), variants[:spellings]


def test_a_stream_of_many_spellings_that_split_an_emotion_warns_twice_naming_them_all(tmp_path, caplog):
    """Each spelling used to get a warning of its own (512 spellings, 512 warnings): now the first one's, then one for
    the rest, cut after 20 labels as a non-streamed load's one warning is."""
    root, spellings = _many_spellings(tmp_path / "d", 25)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), label_map={"happy": "sad"})
    (non_streamed,) = _warnings(caplog)
    assert ", ... and 5 more]}" in non_streamed  # 25 spellings: 20 named
    caplog.clear()
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                           "--label_map", "happy=sad"])
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    with caplog.at_level(logging.WARNING):
        assert len(list(streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], 0, watch))) == 120
    first, rest = _warnings(caplog)
    named = re.findall(r"\{'happy=sad': \[(.*?)\]\}", first + rest)
    assert len(named) == 2 and named[0].count("'") == 2 and named[1].endswith(", ... and 4 more")
    assert {label.strip("'") for label in ", ".join(named).replace(", ... and 4 more", "").split(", ")} < set(spellings)


def test_keys_that_differ_only_in_case_are_one_entry_in_the_split_warning(tmp_path, caplog):
    root = _dataset(tmp_path / "d", class_labels=False)
    for loaded in ("non-streamed", "streamed"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            if loaded == "non-streamed":
                load_corpus(DatasetSource(root, label_column="emotion"), label_map={"happy": "sad", "HAPPY": "sad"})
            else:
                run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                                       "--label_map", "happy=sad,HAPPY=sad"])
                watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
                list(streaming.training_stream(run.data, ["neutral", "happy", "sad", "angry"], 0, watch))
        (warned,) = _warnings(caplog)
        assert "(entry: unmapped labels) {'happy=sad': ['joy']}:" in warned, loaded
        assert "Map them too (e.g. joy=sad), or keep them" in warned, loaded


def test_the_unused_entry_warning_says_how_many_labels_it_leaves_unnamed(caplog):
    with caplog.at_level(logging.WARNING):
        warn_unused_entries({"angyr": "angry"}, [f"label{i:02d}" for i in range(25)], "my_data", "my_data")
    (warned,) = _warnings(caplog)
    assert "(its labels: ['label00', 'label01'," in warned and "'label19', ... and 5 more]); they change" in warned
