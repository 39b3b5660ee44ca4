"""At most 8 distinct copies of a clip: copies given as arrays, values that name one copy twice, and a released
checkpoint that records more than the bound."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ser_hf.errors import ModelError, SERError
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.inference.recognizer_settings import parse_copies
from ser_hf.ranges import MAX_COPIES
from ser_hf.testing.models import tiny_classifier
from ser_hf.training.arguments import ProbeArguments

FOUR = ["neutral", "happy", "sad", "angry"]
EIGHT = {"speed": [0.6, 0.7, 0.8, 0.9, 1.1], "noise": [10, 20, 30]}
NINE = {"speed": [0.6, 0.7, 0.8, 0.9, 1.1, 1.2], "noise": [10, 20, 30]}


def _names(copies) -> list[str]:
    return [name for _, name in parse_copies(copies, 16000)]


# ----------------------------------------------------------------------------------- test-time copies


def test_copies_given_as_numpy_arrays_or_numbers_are_the_copies_of_the_list():
    expected = _names({"speed": [0.9, 1.1], "noise": [20]})
    for copies in ({"speed": np.array([0.9, 1.1]), "noise": np.array([20])},
                   {"speed": (0.9, 1.1), "noise": (20,)},
                   {"speed": [np.float64(0.9), np.float32(1.1)], "noise": [np.int64(20)]}):
        assert _names(copies) == expected
    with pytest.raises(SERError, match=r"test_time_copies\['speed'\] must be a list of a speed factor"):
        parse_copies({"speed": np.array([[0.9, 1.1]])}, 16000)


@pytest.mark.parametrize("speeds", [[0.9, 0.90], [0.9, 0.9000001]], ids=["0.9 twice", "equal to 6 digits"])
def test_speeds_that_name_one_copy_twice_are_refused_saying_why(speeds):
    with pytest.raises(SERError, match=r"at most 8 distinct copies; got 2 with repeats \(0\.9x speed, 0\.9x speed\): "
                                       r"0\.9x speed more than once \(a copy is named by its value to 6 significant "
                                       r"digits\)\. Keep each once"):
        parse_copies({"speed": speeds}, 16000)


def test_exactly_the_bound_is_taken():
    assert len(_names(EIGHT)) == MAX_COPIES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("copies"), FOUR)


@pytest.mark.parametrize(("probe", "found"), [
    ({"probe_speed_copies": NINE["speed"], "probe_noise_copies": NINE["noise"]}, r"9 \(0\.6x speed, .*30 dB noise\)"),
    ({"probe_speed_copies": [0.9, 0.9000001]}, r"2 with repeats \(0\.9x speed, 0\.9x speed\)"),
], ids=["nine", "one twice"])
def test_a_checkpoint_recording_copies_beyond_the_bound_says_so_with_test_time_copies_true(checkpoint, tmp_path,
                                                                                          probe, found):
    """A checkpoint trained before the bound (or its record edited): the user asked for its copies (True, or
    --test-time-copies), named none, so the message names the record and how to go on, not 'keep each once'."""
    trained = shutil.copytree(checkpoint, tmp_path / "trained")
    (trained / "ser_hf_run.json").write_text(json.dumps({"data": {}, "probe": probe}))
    with pytest.raises(ModelError, match=rf"test_time_copies=True: the ser_hf_run\.json of '.*trained' records training "
                                         rf"copies \(probe_speed_copies and probe_noise_copies\) that test-time copies "
                                         rf"cannot take: {found}.*Test-time copies take at most 8, each once.*Leave "
                                         rf"them off \(without --test-time-copies on the command line\), or in Python "
                                         rf"name at most 8 of them"):
        EmotionRecognizer.from_pretrained(trained, test_time_copies=True)
    assert EmotionRecognizer.from_pretrained(trained, test_time_copies=EIGHT).test_time_copies == _names(EIGHT)


# ----------------------------------------------------------------------------------- training copies


@pytest.mark.parametrize(("key", "values", "names"), [
    ("probe_speed_copies", [0.9, 0.9000001], r"0\.9x speed, 0\.9x speed"),
    ("probe_noise_copies", [20, 20.000001], r"20 dB noise, 20 dB noise"),
    ("probe_speed_copies", [0.9999999, 1.1], r"1x speed, 1\.1x speed"),
], ids=["speeds equal to 6 digits", "SNRs equal to 6 digits", "a speed named 1x"])
def test_training_copies_that_are_one_copy_by_name_are_refused(key, values, names):
    """The probe caches each copy's states under its name: two values of one name would train on one copy twice."""
    with pytest.raises(SERError, match=rf"{key} must list distinct .*; got \[.*\] \({names}: a copy is named and "
                                       rf"cached by its value to 6 significant digits\)\.") as caught:
        ProbeArguments(**{key: values})
    assert caught.value.field == key


def test_training_copies_given_as_numpy_arrays_are_lists_of_numbers():
    arguments = ProbeArguments(probe_speed_copies=np.array([0.9, 1.1]), probe_noise_copies=[np.int64(20)])
    assert (arguments.probe_speed_copies, arguments.probe_noise_copies) == ([0.9, 1.1], [20])
    assert json.dumps(arguments.probe_noise_copies) == "[20]"  # as a run record writes them
    with pytest.raises(SERError, match=r"probe_speed_copies must list distinct speed factors other than 1"):
        ProbeArguments(probe_speed_copies=np.linspace(0.8, 1.2, 5))  # holds 1.0
    ProbeArguments(probe_speed_copies=EIGHT["speed"], probe_noise_copies=EIGHT["noise"])  # the bound exactly
