"""`--streaming` refuses the rows a non-streamed load refuses (an empty label cell: None, "" or ClassLabel -1; an
unknown label), naming the row a non-streamed load names: with strict it stops, without it skips them with a warning,
never silently. A local dataset's rows are named by their index in the split (the stream reads shards in shuffled
order, so counting rows as they arrive named them wrongly); a stream from files, which cannot count its rows, names
them by their audio file."""

import logging

import datasets
import pytest

from ser_hf.corpora import DatasetSource, load_corpus
from ser_hf.errors import CorpusError
from ser_hf.testing.hf_datasets import emotion_rows, to_dataset
from ser_hf.training import streaming
from ser_hf.training.recipes import parse_run

COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor"]
FOUR = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def _save(root, labels: dict[int, object], class_labels: bool = False) -> str:
    """The 24-clip dataset (rows are speaker by speaker, 4 emotions each) with the rows in `labels` relabelled."""
    rows = emotion_rows()
    rows["emotion"] = [labels.get(i, label) for i, label in enumerate(rows["emotion"])]
    if class_labels:  # None stays None; ClassLabel -1 ("no label") as it is
        rows["emotion"] = [FOUR.index(label) if isinstance(label, str) else label for label in rows["emotion"]]
    datasets.DatasetDict({"train": to_dataset(rows, class_labels=class_labels)}).save_to_disk(str(root))
    return str(root)


def _stream(root: str, *extra: str) -> list[dict]:
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class", *extra])
    return list(streaming.training_stream(run.data, FOUR, seed=0))


def _non_streamed(root: str, strict: bool = True):
    return load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), strict=strict)


@pytest.mark.parametrize(("empty", "class_labels"), [(None, False), ("", False), (None, True), (-1, True)])
def test_an_empty_label_cell_stops_a_strict_stream_naming_its_row_as_the_non_streamed_load_does(
        tmp_path, empty, class_labels):
    root = _save(tmp_path / "d", {13: empty}, class_labels)
    reason = r"split 'train' row 13: the label cell \('emotion'\) is empty; label the row or drop it\."
    with pytest.raises(CorpusError, match=reason):
        _non_streamed(root)
    with pytest.raises(CorpusError, match=reason + r"\nFix or remove the row, or train with --strict false"):
        _stream(root)  # it was left out silently, a clip fewer to train on


def test_without_strict_unusable_rows_are_skipped_with_the_non_streamed_load_s_warning(tmp_path, caplog):
    root = _save(tmp_path / "d", {2: "", 13: "xyz"})
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="They were skipped"):
        assert len(_non_streamed(root, strict=False)) == 22
    expected = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped "))
    assert len(expected) == 2 and any("row 13: Unknown emotion label 'xyz'" in message for message in expected)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(_stream(root, "--strict", "false")) == 22  # the unknown label stopped the stream
    assert sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")) == expected


def test_skipped_rows_are_named_once_each_and_at_most_ten(tmp_path, caplog):
    root = _save(tmp_path / "d", dict.fromkeys(range(0, 24, 2), ""))  # 12 empty labels
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "4class",
                           "--strict", "false"])
    stream = streaming.training_stream(run.data, FOUR, seed=0)
    with caplog.at_level(logging.WARNING):
        assert len(list(stream)) == len(list(stream)) == 12  # two passes
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert len(skipped) == streaming.SKIPPED_NAMED + 1
    assert len(set(skipped)) == len(skipped)
    assert skipped[-1].startswith("skipped more than 10 rows of the stream with unusable cells (strict=False)")


def test_rows_of_an_emotion_left_out_on_purpose_are_neither_refused_nor_warned_about(tmp_path, caplog):
    root = _save(tmp_path / "d", {})
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--emotions", "neutral,sad"])
    with caplog.at_level(logging.WARNING):
        rows = list(streaming.training_stream(run.data, ["neutral", "sad"], seed=0))
    assert len(rows) == 12 and not caplog.records


@pytest.mark.parametrize("bad", [13, 22])
def test_a_bad_row_of_a_local_dataset_is_named_by_its_index_in_the_split(tmp_path, bad):
    """The local dataset is read in 24 one-row shards in shuffled order: counting rows as they arrive said row 0."""
    root = _save(tmp_path / "d", {bad: "xyz"})
    with pytest.raises(CorpusError, match=rf"split 'train' row {bad}: Unknown emotion label 'xyz'"):
        _non_streamed(root)
    with pytest.raises(CorpusError, match=rf"split 'train' row {bad}: Unknown emotion label 'xyz'"):
        _stream(root)


def test_the_decoding_error_of_an_embedded_clip_names_its_row(tmp_path):
    root = _save(tmp_path / "d", {})
    names = {row["audio"]["path"] for row in _stream(root)}
    assert "of split 'train' row 13 (spk4_happy_0.wav)" in names


def test_a_stream_from_files_names_a_bad_row_by_its_audio_file_not_by_a_count(tmp_path):
    """A parquet stream cannot count its rows (shards are read in shuffled order): no index is printed."""
    rows = emotion_rows()
    rows["emotion"][13] = None
    (tmp_path / "pq").mkdir()
    for number, part in enumerate([range(12), range(12, 24)]):
        to_dataset({k: [v[i] for i in part] for k, v in rows.items()}).to_parquet(
            str(tmp_path / "pq" / f"train-{number:05d}-of-00002.parquet"))
    with pytest.raises(CorpusError, match=r"split 'train' row with audio 'spk4_happy_0.wav': the label cell") as err:
        _stream(str(tmp_path / "pq"))
    assert "row 1" not in str(err.value)  # what the count within its shard said
    names = {row["audio"]["path"] for row in _stream(str(tmp_path / "pq"), "--strict", "false")}
    assert "of split 'train' row with audio 'spk1_happy_0.wav'" in names


def test_the_test_part_is_loaded_before_training_so_its_bad_rows_stop_the_run_at_once(tmp_path):
    from ser_hf.training.experiment import train

    rows = emotion_rows()
    rows["emotion"][20] = ""
    parts = {"train": {k: v[:16] for k, v in rows.items()}, "test": {k: v[16:] for k, v in rows.items()}}
    datasets.DatasetDict({name: to_dataset(part) for name, part in parts.items()}).save_to_disk(str(tmp_path / "d"))
    run = parse_run(None, ["--streaming", "true", "--dataset_name", str(tmp_path / "d"), *COLUMNS, "--emotions",
                           "4class", "--eval_split_name", "test", "--mode", "finetune", "--model_name_or_path",
                           str(tmp_path / "no-model"), "--max_steps", "2", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(CorpusError, match=r"split 'test' row 4: the label cell \('emotion'\) is empty"):
        train(run, progress=False)  # before the model is even looked for
