"""Hostile settings of the speaker-independent split that ``ser-hf train``, ``ser-hf data split`` and ``ser-hf search``
share: sizes it cannot give (they were silently another share), the largest seed (its validation seed overflowed into
a false "too few clips" fallback), seeds out of range outside --holdout (a traceback), a search told to drop the
validation part it needs, a --test-size that marked test rows leave unused, notes about a test part that does not
exist, and errors that named neither the manifest nor how to fix its split column."""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pytest

from ser_hf.cli import main
from ser_hf.data_arguments import DataArguments
from ser_hf.errors import SplitError
from ser_hf.splits import speaker_folds, speaker_split
from ser_hf.testing.corpora import write_tone

EMOTIONS = ["angry", "happy", "neutral", "sad"]


def _dataset(n_speakers: int, per_speaker: int = 4) -> datasets.Dataset:
    """A label-only dataset: each speaker says every emotion in turn (the splits read nothing else)."""
    speakers = [f"s{s}" for s in range(n_speakers) for _ in range(per_speaker)]
    return datasets.Dataset.from_dict(
        {"audio": [f"/x/{n}.wav" for n in range(len(speakers))], "speaker": speakers,
         "label": [n % len(EMOTIONS) for n in range(len(speakers))]},
        features=datasets.Features({"audio": datasets.Value("string"), "speaker": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=EMOTIONS)}))


def _manifest(folder, n_speakers: int, marked=None):
    """A manifest of 4 clips (one per emotion) per speaker; ``marked(speaker, clip)`` -> its split cell."""
    lines = ["path,label,speaker" + (",split" if marked else "")]
    for s in range(n_speakers):
        for k, emotion in enumerate(EMOTIONS):
            name = f"s{s}_{k}.wav"
            write_tone(folder / name, frequency=120 + 9 * s + 40 * k, seed=4 * s + k)
            lines.append(f"{name},{emotion},spk{s}" + (f",{marked(s, k)}" if marked else ""))
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    return _manifest(tmp_path_factory.mktemp("six"), 6)


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """4 speakers, the last one's rows marked test."""
    return _manifest(tmp_path_factory.mktemp("marked"), 4, lambda s, k: "test" if s == 3 else "train")


def _data_split(manifest, *flags) -> list[str]:
    return ["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), *flags]


def _train_split(manifest, **sizes):
    """The parts ``ser-hf train`` makes of ``manifest`` with these data arguments."""
    from ser_hf.corpora import load_corpus
    from ser_hf.training.run_data import train_split

    return train_split(DataArguments(corpus="manifest", data_dir=str(manifest), **sizes),
                       load_corpus("manifest", str(manifest)))


# --- 8: sizes the split cannot give ---

def test_sizes_adding_up_to_one_are_refused_by_data_split_and_train_naming_both(six, capsys):
    assert main(_data_split(six, "--holdout", "--test-size", "0.6", "--validation-size", "0.6")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("--test-size 0.6 and --validation-size 0.6 add up to 1.2, so the test and validation parts would take "
            "every clip and leave none to train on; expected a sum below 1. Lower one or both") in err
    with pytest.raises(SplitError, match=r"^test_size \(--test_size\) 0.6 and validation_size \(--validation_size\) "
                                         r"0.6 add up to 1.2, .* Lower one or both"):
        _train_split(six, test_size=0.6, validation_size=0.6)


@pytest.mark.parametrize("test_size", [0.6, 0.9, 0.99999])
def test_a_test_share_over_half_is_refused_not_silently_half(test_size):
    # each was one of 2 folds: 3 of 6 speakers, whatever was asked
    with pytest.raises(SplitError, match=rf"test_size {test_size:g} asks for a test part of \d+% of the clips, but "
                                         rf"a test part is held out as one of at least 2 speaker-grouped folds, .*"
                                         rf"would silently be about 0.5\)\. Set test_size to 0.5 or less\.$"):
        speaker_split(_dataset(6), test_size=test_size, validation_size=0)


def test_a_validation_share_over_half_of_what_the_test_part_leaves_is_refused():
    with pytest.raises(SplitError, match=r"validation_size 0.3 asks for a validation part of 60% of the clips the test "
                                         r"part leaves \(test_size 0.5 leaves 50%\), .* Set validation_size to 0.25 or "
                                         r"less, or lower test_size\.$"):
        speaker_split(_dataset(10), test_size=0.5, validation_size=0.3)
    with pytest.raises(SplitError, match=r"validation_size 0.6 asks for a validation part of 60% of the clips of "
                                         r"fold1's training speakers"):
        speaker_folds(_dataset(10), n_folds=2, validation_size=0.6)


def test_the_largest_shares_an_error_advises_are_accepted():
    split = speaker_split(_dataset(10), test_size=0.3, validation_size=0.35)  # 0.35 is half of what 0.3 leaves
    assert set(split) == {"train", "validation", "test"}
    assert set(speaker_split(_dataset(6), test_size=0.5, validation_size=0)) == {"train", "test"}


# --- 9: the largest seed ---

def test_the_largest_fold_seed_splits_without_a_false_too_few_clips_fallback(caplog):
    # the validation hold-out's seed, fold_seed + 1, was 2**32: scikit-learn refused it, and the refusal was read
    # as "every emotion has fewer clips than folds"
    dataset = _dataset(10, per_speaker=8)
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):
        split = speaker_split(dataset, test_size=0.2, validation_size=0.15, seed=2**32 - 1)
    assert "fewer clips than" not in caplog.text
    assert set(split) == {"train", "validation", "test"}


def test_an_unrelated_scikit_learn_error_is_raised_not_taken_for_too_few_clips(monkeypatch, caplog):
    import ser_hf.corpora.splits as splits

    def fail(*args, **kwargs):
        raise ValueError("something else went wrong")

    monkeypatch.setattr(splits.StratifiedGroupKFold, "split", fail)
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"), \
            pytest.raises(ValueError, match="something else went wrong"):
        speaker_folds(_dataset(6, per_speaker=8), n_folds=3)
    assert "fewer clips than" not in caplog.text


def test_too_few_clips_per_emotion_still_balances_the_folds_itself(caplog):
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):
        folds = speaker_folds(_dataset(6, per_speaker=1), n_folds=3)  # 1 or 2 clips of each emotion, 3 folds
    assert "Every emotion has fewer clips than the 3 folds asked for" in caplog.text
    assert len(folds) == 3 and all(len(fold.test) for fold in folds)


# --- 10: the seed of every data split mode ---

@pytest.mark.parametrize("mode", [[], ["--folds", "3"], ["--loso"], ["--holdout"]])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_data_split_refuses_a_seed_out_of_range_in_every_mode(six, capsys, mode, seed):
    assert main(_data_split(six, *mode, "--seed", seed)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"DataArguments.fold_seed must be a seed (an integer) in [0, 4294967295], got {seed}. Set in the command "
            f"line (--seed, ser-hf train's --fold_seed): change it there.") in err


# --- 11: search needs its validation part ---

def test_search_on_two_speakers_says_what_it_needs_and_never_to_drop_the_validation_part(tmp_path, monkeypatch):
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    import ser_hf.training.finetune as finetune
    from ser_hf.training.recipes import parse_run
    from ser_hf.training.search import hyperparameter_search

    class _Searched(Exception):
        pass

    class Method:
        def __init__(self, *args, **kwargs):
            pass

        def make_trainer(self, train, validation, **kwargs):
            raise _Searched(sorted(set(validation["speaker"])))

    monkeypatch.setattr(finetune, "FinetuneMethod", Method)
    manifest = _manifest(tmp_path, 2)

    def search(*flags):
        hyperparameter_search(parse_run(None, ["--corpus", "manifest", "--data_dir", str(manifest), "--mode",
                                               "finetune", "--output_dir", str(tmp_path / "out"), *flags]), n_trials=1)

    with pytest.raises(SplitError) as refused:
        search()
    message = str(refused.value)
    assert message.startswith("hyperparameter_search scores every trial on a validation part of speakers held out of "
                              "the training rows, so it needs at least 2 speakers outside the test part: 3 or more in "
                              "all, or fewer test speakers.")
    assert "Hold fewer speakers out for test (a lower test_size (--test_size), or 0 for no test part)" in message
    assert "to 0 to make no validation part" not in message
    with pytest.raises(_Searched):  # the advice, followed: no test part leaves both speakers
        search("--test_size", "0")


# --- 12: a --test-size that marked test rows leave unused ---

def test_data_split_warns_that_the_split_column_leaves_a_given_test_size_unused(marked, capsys):
    assert main(_data_split(marked, "--holdout", "--test-size", "0.2")) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--test-size is 0.2 but not used: the 'split' column of manifest {marked} marks the test part (4 clips). "
            f"Leave --test-size out") in err
    assert main(_data_split(marked, "--holdout")) == 0
    assert "not used" not in capsys.readouterr().err


def test_train_warns_that_the_split_column_leaves_a_test_size_other_than_the_default_unused(marked, caplog):
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):
        split = _train_split(marked, test_size=0.3)
    assert set(split["test"]["speaker"]) == {"spk3"}
    assert "test_size (--test_size) is 0.3 but not used: the 'split' column of manifest" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):
        _train_split(marked)
    assert "not used" not in caplog.text


# --- 13: no notes about a test part that does not exist ---

def test_no_test_part_means_no_note_of_emotions_it_lacks(caplog):
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):
        split = speaker_split(_dataset(6), test_size=0, validation_size=0.15)
    assert "test" not in split
    assert "split test without it" not in caplog.text
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):  # a test part that lacks one is still noted
        speaker_split(_dataset(6, per_speaker=1), test_size=0.2, validation_size=0)
    assert "so split test without it" in caplog.text


# --- 15: data split's --seed is train's --fold_seed ---

def test_data_split_help_says_its_seed_is_trains_fold_seed(capsys):
    with pytest.raises(SystemExit):
        main(["data", "split", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the same --seed" not in help_text
    assert ("the train/validation/test split ser-hf train makes with --fold_seed, --test_size and --validation_size "
            "as --seed, --test-size and --validation-size here (train's own --seed seeds training, not the split)"
            ) in help_text
    assert "ser-hf train's and cv's --fold_seed, not their --seed, which seeds training" in help_text


# --- 16: a speaker on both sides of a manifest's split column ---

def test_a_speaker_both_marked_test_and_not_names_the_manifest_column_and_the_fix(tmp_path, capsys):
    manifest = _manifest(tmp_path, 4, lambda s, k: "test" if k == 0 else "train")
    with pytest.raises(SplitError) as refused:
        _train_split(manifest)
    message = str(refused.value)
    assert message.startswith(f"4 speaker(s) have rows that the 'split' column of manifest {manifest} marks as test "
                              f"and rows it does not (e.g. ['spk0', 'spk1', 'spk2', 'spk3'])")
    assert "Mark all of a speaker's rows test there, or none of them" in message
    assert "leave the test split unset" not in message
    assert main(_data_split(manifest, "--holdout")) == 2
    assert f"the 'split' column of manifest {manifest} marks as test" in " ".join(capsys.readouterr().err.split())


def test_a_given_test_part_of_shared_speakers_without_marks_keeps_its_message():
    from ser_hf.splits import split_with_test

    with pytest.raises(SplitError, match=r"of the test part also speak in the training rows .* leave the test split "
                                         r"unset"):
        split_with_test(_dataset(4), np.asarray([0, 4]))
