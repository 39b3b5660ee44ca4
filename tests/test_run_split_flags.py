"""``ser-hf train``'s split, where the user's split settings go unused or cannot be met: a ``datasets`` dataset's
``eval_split_name`` split leaves ``test_size`` unused (warned, as a manifest's split column does), and several corpora,
each split on its own, name the flags in their split errors as a single corpus does."""

from __future__ import annotations

import logging

import datasets
import pytest

from ser_hf.data_arguments import DataArguments
from ser_hf.errors import SplitError
from ser_hf.training.run_data import train_split

EMOTIONS = ["neutral", "happy", "sad", "angry"]
UNUSED = "but not used"


def _dataset(column: str, speakers: dict[str, str], clips_per_emotion: int = 2) -> datasets.Dataset:
    """Every emotion ``clips_per_emotion`` times for each speaker; ``speakers``: speaker -> its value of ``column``
    (``split`` of a ``datasets`` dataset, or ``corpus`` of several corpora)."""
    rows: dict[str, list] = {"label": [], "speaker": [], column: []}
    for speaker, value in speakers.items():
        for label in range(len(EMOTIONS)):
            rows["label"] += [label] * clips_per_emotion
            rows["speaker"] += [speaker] * clips_per_emotion
            rows[column] += [value] * clips_per_emotion
    features = datasets.Features({"label": datasets.ClassLabel(names=EMOTIONS), "speaker": datasets.Value("string"),
                                  column: datasets.Value("string")})
    return datasets.Dataset.from_dict(rows, features=features)


# --- a `datasets` dataset's eval split leaves test_size unused ---

def _hf_dataset() -> datasets.Dataset:
    """A ``datasets`` dataset as :func:`~ser_hf.training.run_data.load_run_dataset` loads it with its eval split:
    train speakers s1-s4, test speakers s5-s6 (8 clips each), told apart by the ``split`` column."""
    return _dataset("split", {**{f"s{i}": "train" for i in range(1, 5)}, "s5": "test", "s6": "test"})


def test_an_eval_split_warns_that_a_given_test_size_is_not_used(caplog):
    data = DataArguments(dataset_name="my/emotions", eval_split_name="test", test_size=0.3)
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):
        split = train_split(data, _hf_dataset())
    assert sorted(set(split["test"]["speaker"])) == ["s5", "s6"]
    assert ("test_size (--test_size) is 0.3 but not used: the dataset's 'test' split (eval_split_name "
            "(--eval_split_name)) is the test part (16 clips). Leave test_size (--test_size) out, or leave "
            "eval_split_name (--eval_split_name) unset to hold that share of the clips out by speaker instead."
            ) in caplog.text


def test_an_eval_split_says_nothing_of_a_test_size_left_at_its_default(caplog):
    data = DataArguments(dataset_name="my/emotions", eval_split_name="test")
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):
        train_split(data, _hf_dataset())
    assert UNUSED not in caplog.text
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):  # told by the caller that it was set
        train_split(data, _hf_dataset(), test_size_given=True)
    assert "test_size (--test_size) is 0.2 but not used" in caplog.text


def test_no_eval_split_holds_test_speakers_out_with_test_size_and_no_warning(caplog):
    data = DataArguments(dataset_name="my/emotions", test_size=0.3)
    with caplog.at_level(logging.WARNING, logger="ser_hf.training.experiment"):
        split = train_split(data, _dataset("split", {f"s{i}": "train" for i in range(1, 7)}))
    assert "test" in split and UNUSED not in caplog.text


# --- several corpora name the flags in their split errors ---

def _corpora(urdu_speakers: int, **sizes: float) -> tuple[DataArguments, datasets.Dataset]:
    """Two corpora as one dataset (``corpus`` column, speakers prefixed by corpus), URDU with ``urdu_speakers``."""
    speakers = {f"urdu/SM{i}": "urdu" for i in range(1, urdu_speakers + 1)}
    speakers |= {f"ravdess/Actor_{i:02d}": "ravdess" for i in range(1, 9)}
    data = DataArguments(corpus="urdu,ravdess", data_dir="data/urdu,data/ravdess", **sizes)
    return data, _dataset("corpus", speakers)


def test_a_corpus_too_small_for_a_test_part_names_the_test_size_flag():
    data, dataset = _corpora(1)
    with pytest.raises(SplitError, match=r"^test_size \(--test_size\) asks for a test part, .*\['urdu/SM1'\].* Set "
                                         r"test_size \(--test_size\) to 0 to make no test part, or use data"):
        train_split(data, dataset)


def test_a_corpus_too_small_for_a_validation_part_names_both_flags():
    data, dataset = _corpora(2)
    with pytest.raises(SplitError, match=r"^validation_size \(--validation_size\) asks for a validation part.* Set "
                                         r"validation_size \(--validation_size\) to 0 to make no validation part, hold "
                                         r"fewer speakers out for test \(a lower test_size \(--test_size\), or 0"):
        train_split(data, dataset)


def test_sizes_that_no_corpus_can_give_name_the_flags():
    data, dataset = _corpora(6, test_size=0.45, validation_size=0.45)
    with pytest.raises(SplitError, match=r"^validation_size \(--validation_size\) 0\.45 asks .*\(test_size "
                                         r"\(--test_size\) 0\.45 leaves 55%\).* or lower test_size \(--test_size\)\."):
        train_split(data, dataset)


@pytest.mark.parametrize(("flags", "given"), [([], set()), (["--test_size", "0.2"], {"test_size"}),
                                              (["--test_size=0.2"], {"test_size"}),
                                              (["--validation_size", "0.2"], {"validation_size"})])
def test_a_run_knows_which_settings_the_user_set_even_at_their_default(flags, given):
    # A run's arguments alone cannot tell --test_size 0.2 from no --test_size: parse_run records what was set.
    from ser_hf.training.recipes import parse_run

    run = parse_run(None, [*flags, "--corpus", "urdu"], output_dir="out")
    assert run.was_given(run.data, "test_size") == ("test_size" in given)
    assert run.was_given(run.data, "validation_size") == ("validation_size" in given)
    assert run.given >= given | {"corpus", "output_dir"}


def test_a_run_built_without_parse_run_counts_a_setting_as_given_where_it_differs_from_its_default():
    from ser_hf.training.arguments import ModelArguments, SERTrainingArguments
    from ser_hf.training.run import Run

    run = Run(DataArguments(test_size=0.3), ModelArguments(), SERTrainingArguments(output_dir="out"))
    assert run.given is None
    assert run.was_given(run.data, "test_size") and not run.was_given(run.data, "validation_size")


def test_train_warns_of_a_test_size_typed_at_its_default_beside_an_eval_split(tmp_path, caplog, monkeypatch):
    # What ser-hf train passes train_split: whether the user set test_size, not whether it differs from 0.2.
    from ser_hf.training import experiment
    from ser_hf.training.recipes import parse_run

    seen = {}

    def stop(data, dataset, **keywords):
        seen.update(keywords)
        raise SplitError("stop here")

    monkeypatch.setattr(experiment, "load_run_dataset", lambda data, include_eval: _hf_dataset())
    monkeypatch.setattr(experiment, "train_split", stop)
    for flags, expected in (([], False), (["--test_size", "0.2"], True)):
        run = parse_run(None, [*flags, "--dataset_name", "my/emotions", "--eval_split_name", "test"],
                        output_dir=str(tmp_path / "out"))
        with pytest.raises(SplitError, match="stop here"):
            experiment.train(run, progress=False)
        assert seen["test_size_given"] is expected
