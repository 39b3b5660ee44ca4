import datasets
import numpy as np
import pytest

from ser_hf.corpora import load_corpus
from ser_hf.errors import SplitError
from ser_hf.splits import (
    Fold,
    check_speaker_disjoint,
    class_counts,
    corpus_folds,
    leave_one_speaker_out,
    predefined_split,
    select_fold,
    speaker_folds,
    speaker_split,
)
from ser_hf.testing.corpora import make_corpus_tree


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory):
    return load_corpus("ravdess", make_corpus_tree("ravdess", tmp_path_factory.mktemp("ravdess")))


def _speakers(ds, rows):
    return set(np.asarray(ds["speaker"])[rows])


def test_speaker_folds_are_disjoint_cover_everything_and_reproducible(ravdess):
    folds = speaker_folds(ravdess, n_folds=4, seed=3)
    assert len(folds) == 4
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(ravdess)))  # every clip tested exactly once
    for fold in folds:
        assert not _speakers(ravdess, fold.train) & _speakers(ravdess, fold.test)
        assert len(fold.train) + len(fold.test) == len(ravdess)
    again = speaker_folds(ravdess, n_folds=4, seed=3)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    other = speaker_folds(ravdess, n_folds=4, seed=4)
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_validation_part_is_speaker_disjoint_too(ravdess):
    for fold in speaker_folds(ravdess, n_folds=4, validation_size=0.25):
        parts = [_speakers(ravdess, rows) for rows in fold.parts().values()]
        assert len(parts) == 3 and all(parts)
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_holdout_split_is_stratified_and_disjoint(ravdess):
    split = speaker_split(ravdess, test_size=0.25, validation_size=0.125, seed=0)
    assert set(split) == {"train", "validation", "test"}
    speakers = [set(split[name]["speaker"]) for name in split]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers)) == 8
    for part in split.values():  # every emotion present in every part
        assert len(set(part["label"])) == 8


def test_corpus_defined_folds(ravdess, tmp_path):
    folds = corpus_folds(ravdess)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3", "fold4"]  # actors 1-2, 5-6, 9-10, 13-14
    assert _speakers(ravdess, folds[0].test) == {"01", "02"}
    iemocap = load_corpus("iemocap", make_corpus_tree("iemocap", tmp_path))
    assert [f.name for f in corpus_folds(iemocap)] == ["session1", "session2"]
    urdu = load_corpus("urdu", make_corpus_tree("urdu", tmp_path / "urdu"))
    assert len(corpus_folds(urdu, n_folds=3)) == 3  # no protocol of its own: speaker-grouped folds


def test_leave_one_speaker_out(ravdess):
    folds = leave_one_speaker_out(ravdess)
    assert len(folds) == 8 and all(len(_speakers(ravdess, f.test)) == 1 for f in folds)


def test_predefined_split_from_manifest(tmp_path):
    ds = load_corpus("manifest", make_corpus_tree("manifest", tmp_path))
    split = predefined_split(ds)
    assert {name: len(part) for name, part in split.items()} == {"test": 4, "train": 8, "validation": 4}


def test_leaks_and_impossible_splits_are_refused(ravdess, tmp_path):
    with pytest.raises(SplitError, match=r"Speaker '01' is in both 'train' and 'test'"):
        check_speaker_disjoint(ravdess, {"train": np.arange(0, 20), "test": np.arange(10, 30)})
    with pytest.raises(SplitError, match=r"Cannot make 9 speaker-grouped folds from 8 speakers"):
        speaker_folds(ravdess, n_folds=9)
    with pytest.raises(SplitError, match="test_size"):
        speaker_split(ravdess, test_size=1.5)
    no_speakers = load_corpus("folder", make_corpus_tree("folder", tmp_path / "f"))
    with pytest.raises(SplitError, match=r"32 of 32 clips have no speaker.*speaker_pattern"):
        speaker_folds(no_speakers)
    with pytest.raises(SplitError, match="leaks"):
        select_fold(ravdess, Fold("bad", np.arange(5), np.arange(3, 8)))


def test_class_count_table(ravdess):
    folds = corpus_folds(ravdess)
    table = class_counts(ravdess, folds)
    assert list(table.index[:2]) == ["fold1/train", "fold1/test"]
    assert list(table.columns) == [*ravdess.features["label"].names, "total", "speakers"]
    assert table.loc["fold1/test", "total"] == 32 and table.loc["fold1/test", "speakers"] == 2
    split = select_fold(ravdess, folds[0])
    assert isinstance(split, datasets.DatasetDict)
    assert class_counts(ravdess, split).loc["test", "neutral"] == 4
