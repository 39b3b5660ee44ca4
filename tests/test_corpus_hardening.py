"""Unusual but legal corpora never crash the splits, loaders or ``ser-hf data``; bad input gets one clear error."""

from __future__ import annotations

import itertools
import logging
import warnings

import datasets
import numpy as np
import pytest

from ser_hf.errors import SplitError
from ser_hf.splits import add_validation, leave_one_speaker_out, speaker_folds, speaker_split

EMOTIONS4 = ["neutral", "happy", "sad", "angry"]


def _dataset(clips: list[tuple[str, int]]) -> datasets.Dataset:
    """A label-only dataset of (speaker, label id) clips: splits read nothing else."""
    return datasets.Dataset.from_dict(
        {"audio": [f"/x/{n}.wav" for n in range(len(clips))], "speaker": [s for s, _ in clips],
         "label": [label for _, label in clips]},
        features=datasets.Features({"audio": datasets.Value("string"), "speaker": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=EMOTIONS4)}),
    )


def _small_corpus(n_speakers: int = 12, per_speaker: int = 2) -> datasets.Dataset:
    """The audit's c4_small: 12 speakers, 24 clips, 6 per class (each speaker two emotions)."""
    return _dataset([(f"s{s:02d}", (s * per_speaker + k) % 4) for s in range(n_speakers) for k in range(per_speaker)])


def _check_folds(ds: datasets.Dataset, folds, n_folds: int) -> None:
    speakers = np.asarray(ds["speaker"])
    assert len(folds) == n_folds
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ds)))
    for fold in folds:
        assert len(fold.test) and len(fold.train), fold.name
        assert not set(speakers[fold.train]) & set(speakers[fold.test])
        assert not set(speakers[fold.validation]) & (set(speakers[fold.train]) | set(speakers[fold.test]))


def _layouts():
    """Small corpora of assorted shapes: few speakers, unequal speakers, classes of one speaker."""
    rng = np.random.default_rng(0)
    yield _small_corpus()
    yield _dataset([(s, label) for s in "ABCD" for label in range(4)])  # c5_empty: 4 speakers x 4 emotions
    yield _dataset([("A", 0), ("A", 1), ("B", 2), ("C", 3), ("D", 0), ("D", 0), ("E", 1)])
    # StratifiedGroupKFold leaves a fold empty here (4 folds, seed 0): the audit's c5_empty shape.
    yield _dataset([(f"s{s}", label) for s, labels in enumerate([(0, 2, 1, 2, 0, 3), (3, 0, 3), (1,), (1, 1, 2)])
                    for label in labels])
    for n_speakers in (3, 5, 7, 9):
        clips = [(f"s{s}", int(rng.integers(4))) for s in range(n_speakers) for _ in range(int(rng.integers(1, 6)))]
        yield _dataset(clips)


@pytest.mark.parametrize("ds", list(_layouts()), ids=lambda ds: f"{len(set(ds['speaker']))}spk{len(ds)}clips")
def test_every_fold_count_on_small_corpora_gives_nonempty_disjoint_folds(ds):
    n_speakers = len(set(ds["speaker"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw scikit-learn warning escapes either
        for n_folds, seed in itertools.product(range(2, n_speakers + 1), range(8)):
            _check_folds(ds, speaker_folds(ds, n_folds=n_folds, seed=seed), n_folds)


def test_holdout_and_folds_of_a_corpus_with_six_clips_per_class():
    ds = _small_corpus()
    for seed in range(4):
        parts = speaker_split(ds, test_size=0.2, validation_size=0.1, seed=seed)  # 8 folds for 0.125 > 6 clips
        assert set(parts) == {"train", "validation", "test"}
        parts = speaker_split(ds, test_size=0.15, validation_size=0.15, seed=seed)  # 7 folds
        assert all(len(part) for part in parts.values())
        _check_folds(ds, speaker_folds(ds, n_folds=7, seed=seed, validation_size=0.15), 7)


def test_too_many_folds_names_the_setting_and_the_fix():
    with pytest.raises(SplitError, match=r"n_folds \(--folds, --num_folds\)=5: Cannot make 5 .* from 4 speakers.*"
                                         r"2 <= folds <= 4"):
        speaker_folds(_dataset([(s, 0) for s in "ABCD"]), n_folds=5)


def test_one_training_speaker_left_names_fold_validation_size_and_fix():
    ds = _dataset([(s, label) for s in "ABC" for label in range(4)])
    with pytest.raises(SplitError, match=r"validation_size asks for a validation part, but fold\d's training speakers "
                                         r"are only 1 .*--validation_size 0.*fewer folds"):
        speaker_folds(ds, n_folds=2, seed=0, validation_size=0.15)
    fold = speaker_folds(ds, n_folds=2, seed=0)[0]
    one = fold if len(set(np.asarray(ds["speaker"])[fold.train])) == 1 else speaker_folds(ds, 2, 0)[1]
    with pytest.raises(SplitError, match=rf"{one.name}'s training speakers are only 1"):
        add_validation(ds, one, 0.15)
    with pytest.raises(SplitError, match=r"test_size asks for a test part, but the corpus's speakers are only 1"):
        speaker_split(_dataset([("A", 0), ("A", 1)]), test_size=0.2)


def test_a_class_of_one_speaker_is_named_once_with_the_folds_that_train_without_it(caplog):
    ds = _dataset([(s, label) for s in "ABCDEF" for label in range(3)] + [("A", 3), ("A", 3)])
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):
        folds = speaker_folds(ds, n_folds=3, seed=0)
    without = [f.name for f in folds if 3 not in np.asarray(ds["label"])[f.train]]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "'angry' has clips from only 1 speaker(s) (A)" in warned[0] and ", ".join(without) in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.splits"):
        leave_one_speaker_out(ds)
    assert "speaker_A train without it" in caplog.text


def test_normal_corpora_keep_their_fold_assignment(tmp_path):
    """Benchmarks depend on these: the fallbacks only act where scikit-learn raised or left a fold empty."""
    from ser_hf.corpora import load_corpus
    from ser_hf.testing.corpora import make_corpus_tree

    ds = load_corpus("ravdess", make_corpus_tree("ravdess", tmp_path / "r"))
    speakers = np.asarray(ds["speaker"])

    def by_speaker(fold):
        return [sorted(set(speakers[rows])) for rows in (fold.train, fold.validation, fold.test)]

    assert [by_speaker(f) for f in speaker_folds(ds, 4, 3, 0.15)] == [
        [["01", "02", "05", "09", "14"], ["13"], ["06", "10"]], [["01", "05", "06", "09", "10"], ["13"], ["02", "14"]],
        [["02", "05", "06", "10", "14"], ["13"], ["01", "09"]], [["01", "02", "06", "10", "14"], ["09"], ["05", "13"]]]
    parts = speaker_split(ds, 0.2, 0.15, 0)
    assert {k: sorted(set(v["speaker"])) for k, v in parts.items()} == {
        "train": ["01", "02", "09", "13"], "validation": ["06", "14"], "test": ["05", "10"]}


_SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"
# sha256 (first 16 hex) of the speakers of every part of every fold, computed before the small-corpus fallbacks.
_PINNED = {
    "urdu": {"corpus_folds": "8123c496e246987d", "speaker_folds5_v15": "8306a1ffcb1159cc", "split": "f3cc01902aafd09b",
             "4c_folds": "f41ae645e26ebaf4", "4c_split": "e08dc4461c46e3f7"},
    "ravdess": {"corpus_folds": "d5f26cba8a53ae6a", "speaker_folds5_v15": "b913a2ef0b68a16e",
                "split": "873b1efb1454c887", "4c_folds": "d5f26cba8a53ae6a", "4c_split": "ca9d403e11dda743"},
}


@pytest.mark.parametrize("name", sorted(_PINNED))
def test_real_corpora_keep_their_fold_assignment(name):
    import hashlib
    import json

    from ser_hf.corpora import load_corpus
    from ser_hf.splits import corpus_folds

    if not (_SHARED / name).is_dir():
        pytest.skip(f"the {name} corpus is not in {_SHARED}")

    def folds_digest(ds, folds):
        speakers = np.asarray(ds["speaker"], dtype=object)
        parts = [[sorted(set(speakers[r])) for r in (f.train, f.validation, f.test)] for f in folds]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def split_digest(parts):
        named = {key: sorted(set(part["speaker"])) for key, part in parts.items()}
        return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:16]

    ds = load_corpus(name, _SHARED / name, check_audio=False)
    four = load_corpus(name, _SHARED / name, check_audio=False, emotions="4class")
    assert {
        "corpus_folds": folds_digest(ds, corpus_folds(ds)),
        "speaker_folds5_v15": folds_digest(ds, speaker_folds(ds, 5, 0, 0.15)),
        "split": split_digest(speaker_split(ds, 0.2, 0.15, 0)),
        "4c_folds": folds_digest(four, corpus_folds(four, 5, 1)),
        "4c_split": split_digest(speaker_split(four, 0.2, 0.1, 2)),
    } == _PINNED[name]
