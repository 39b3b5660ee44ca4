"""`datasets` datasets as input (issue 17 item 1): every layout, label kind and the errors, offline."""

import datasets
import pytest

from ser_hf.corpora import DatasetSource, load_corpus
from ser_hf.errors import CorpusError
from ser_hf.models.pooling import _file_key
from ser_hf.splits import corpus_folds
from ser_hf.testing.hf_datasets import EMOTIONS, audio_bytes, emotion_rows, make_emotion_dataset, to_dataset

SOURCE = {"label_column": "emotion", "speaker_column": "actor", "gender_column": "sex"}


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet", "audiofolder"])
def test_every_layout_loads_with_the_uniform_columns(tmp_path, layout):
    root = make_emotion_dataset(tmp_path / layout, layout=layout)
    label = "emotion_text" if layout == "audiofolder" else "emotion"
    ds = load_corpus(DatasetSource(str(root), label_column=label, speaker_column="actor", gender_column="sex"))
    assert len(ds) == 24 and ds.features["label"].names == list(EMOTIONS)
    assert set(ds["speaker"]) == {f"spk{i}" for i in range(1, 7)} and set(ds["gender"]) == {"male", "female"}
    assert sorted(ds["row"]) == list(range(24)) and set(ds["split"]) == {"train"}
    assert min(ds["duration"]) == pytest.approx(0.4)


def test_audiofolder_labels_come_from_class_folders(tmp_path):
    root = make_emotion_dataset(tmp_path / "af", layout="audiofolder")
    ds = load_corpus(DatasetSource(str(root), speaker_column="actor"))  # default label column: the folder names
    assert sorted(set(ds.features["label"].int2str(ds["label"]))) == sorted(EMOTIONS)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_embedded_bytes_are_written_once_per_row_and_keyed_by_their_bytes(tmp_path, fmt):
    root = make_emotion_dataset(tmp_path / "d", class_labels=True, format=fmt)
    first = load_corpus(DatasetSource(str(root), **SOURCE))
    again = load_corpus(DatasetSource(str(root), **SOURCE))
    assert first["audio"] == again["audio"] and first["audio"][0].startswith(str(tmp_path / "cache"))
    assert first["audio"][0].endswith(".wav")  # the cell's own file name says .wav
    # the probe's cache key is the hash of the embedded bytes, whoever wrote the file
    import hashlib

    expected = hashlib.sha256(audio_bytes(0, format=fmt)).hexdigest()[:32]
    assert _file_key(first["audio"][first["row"].index(0)]) == expected


def test_class_label_and_string_labels_agree(tmp_path):
    strings = load_corpus(DatasetSource(str(make_emotion_dataset(tmp_path / "s")), **SOURCE))
    ids = load_corpus(DatasetSource(str(make_emotion_dataset(tmp_path / "c", class_labels=True)), **SOURCE))
    names = lambda ds: ds.features["label"].int2str(ds["label"])  # noqa: E731
    assert names(strings) == names(ids)


def test_label_map_renames_raw_labels_and_ids(tmp_path):
    rows = emotion_rows(n_speakers=2)
    rows["emotion"] = ["joyful" if e == "happy" else e for e in rows["emotion"]]
    to_dataset(rows).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(CorpusError, match=r"row 1: Unknown emotion label 'joyful'.*label_map"):
        load_corpus(DatasetSource(str(tmp_path / "d"), **SOURCE))
    ds = load_corpus(DatasetSource(str(tmp_path / "d"), **SOURCE), label_map={"joyful": "happy"}, emotions="4class")
    assert ds.features["label"].names == list(EMOTIONS)


def test_a_bad_audio_cell_names_its_row(tmp_path):
    rows = emotion_rows(n_speakers=2)
    rows["audio"][3] = {"bytes": b"this is not audio" * 4, "path": None}
    rows["audio"][5] = None
    to_dataset(rows).save_to_disk(str(tmp_path / "d"))
    source = DatasetSource(str(tmp_path / "d"), **SOURCE)
    with pytest.raises(CorpusError, match=r"(?s)split 'train' row 3: the embedded audio bytes .* cannot be read as "
                                          r"audio.*row 5: the audio cell is an empty cell"):
        load_corpus(source)
    with pytest.warns(UserWarning, match="row 3"):
        assert len(load_corpus(source, strict=False)) == 6


def test_a_too_short_clip_names_its_row(tmp_path):
    rows = emotion_rows(n_speakers=2)
    rows["audio"][2] = {"bytes": audio_bytes(99, duration=0.02), "path": None}
    to_dataset(rows).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(CorpusError, match=r"row 2: Audio file .* is too short"):
        load_corpus(DatasetSource(str(tmp_path / "d"), **SOURCE))


def test_missing_columns_and_splits_say_what_there_is(tmp_path):
    root = str(make_emotion_dataset(tmp_path / "d"))
    with pytest.raises(CorpusError, match=r"no label column 'label'; found columns \['actor', 'audio', 'emotion', "
                                          r"'sex'\]. Name it with --label_column_name"):
        load_corpus(DatasetSource(root))
    with pytest.raises(CorpusError, match=r"no audio column 'wav'.*--audio_column_name"):
        load_corpus(DatasetSource(root, audio_column="wav", **SOURCE))
    with pytest.raises(CorpusError, match=r"split 'validation' is not in dataset .* which has splits \['train'\]"):
        load_corpus(DatasetSource(root, **SOURCE), splits=["validation"])
    with pytest.raises(CorpusError, match=r"--dataset_name .*nowhere.* cannot be loaded.*Hub id"):
        load_corpus(DatasetSource(str(tmp_path / "nowhere" / "x")))


def test_without_a_speaker_column_speakers_are_unknown(tmp_path):
    ds = load_corpus(DatasetSource(str(make_emotion_dataset(tmp_path / "d", speakers=False)), **SOURCE))
    assert set(ds["speaker"]) == {None}


def test_relative_paths_resolve_against_the_dataset_folder(tmp_path):
    (tmp_path / "d" / "clips").mkdir(parents=True)
    (tmp_path / "d" / "clips" / "a.wav").write_bytes(audio_bytes(1))
    table = datasets.Dataset.from_dict({"audio": ["clips/a.wav", "clips/missing.wav"], "label": ["sad", "happy"]})
    table.to_parquet(str(tmp_path / "d" / "train.parquet"))
    with pytest.raises(CorpusError, match=r"row 1: the audio cell names the file 'clips/missing.wav', which does "
                                          r"not exist"):
        load_corpus(DatasetSource(str(tmp_path / "d")))
    with pytest.warns(UserWarning):
        ds = load_corpus(DatasetSource(str(tmp_path / "d")), strict=False)
    assert ds["audio"] == [str(tmp_path / "d" / "clips" / "a.wav")]


def test_a_dataset_named_like_a_corpus_gets_speaker_grouped_folds(tmp_path, monkeypatch):
    make_emotion_dataset(tmp_path / "ravdess")
    monkeypatch.chdir(tmp_path)
    ds = load_corpus(DatasetSource("ravdess", **SOURCE))  # not the RAVDESS loader: no 'fold' column
    assert ds["corpus"][0] == "ravdess"
    assert [fold.name for fold in corpus_folds(ds, n_folds=3)] == ["fold1", "fold2", "fold3"]


def test_integer_labels_without_class_names_go_through_label_map(tmp_path):
    rows = emotion_rows(n_speakers=2)
    rows["emotion"] = [EMOTIONS.index(e) for e in rows["emotion"]]
    table = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    table.save_to_disk(str(tmp_path / "d"))
    source = DatasetSource(str(tmp_path / "d"), **SOURCE)
    with pytest.raises(CorpusError, match=r"row 0: Unknown emotion label '0'.*label_map=\{'0': '<canonical name>'\}"):
        load_corpus(source)
    ds = load_corpus(source, label_map=dict(zip("0123", EMOTIONS)))
    assert ds.features["label"].int2str(ds["label"])[:4] == list(EMOTIONS)


def test_embedded_bytes_copied_under_two_speakers_are_refused_naming_both_rows(tmp_path):
    """Rows whose embedded audio is byte for byte another speaker's would be trained and tested on in a
    speaker-independent split: a problem naming both rows (never the cache files ser_hf wrote them to)."""
    rows = emotion_rows(per_emotion=2)
    assert (rows["actor"][0], rows["actor"][9]) == ("spk1", "spk2")
    rows["audio"][9] = dict(rows["audio"][0])
    to_dataset(rows).save_to_disk(str(tmp_path / "ds"))
    source = DatasetSource(str(tmp_path / "ds"), label_column="emotion", speaker_column="actor", gender_column="sex")
    with pytest.raises(CorpusError, match=r"split 'train' row 9: a byte-identical copy of dataset '.*ds' split "
                                          r"'train' row 0 \(speaker spk1\), listed under speaker spk2") as err:
        load_corpus(source)
    assert "ser_hf_cache" not in str(err.value) and ".wav" not in str(err.value)
    with pytest.warns(UserWarning, match=r"row 9: a byte-identical copy of .* row 0"):
        assert len(load_corpus(source, strict=False)) == len(rows["audio"]) - 1
