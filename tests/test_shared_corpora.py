"""The real corpora in ../shared/data (skipped when absent): counts, speakers, and leak-free folds."""

import json
from collections import Counter

import numpy as np

from ser_hf.cli import main
from ser_hf.corpora import load_corpus
from ser_hf.splits import corpus_folds, speaker_folds


def test_urdu_counts(urdu_dir, capsys):
    assert main(["data", "summary", "--corpus", "urdu", "--data-dir", str(urdu_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_clips"] == 400 and summary["num_speakers"] == 29
    assert summary["labels"] == {"neutral": 100, "happy": 100, "sad": 100, "angry": 100}
    assert summary["unreadable"] == [] and 0.2 < summary["hours"] < 0.35


def test_ravdess_counts(ravdess_dir, capsys):
    assert main(["data", "summary", "--corpus", "ravdess", "--data-dir", str(ravdess_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_clips"] == 1440 and summary["num_speakers"] == 24
    assert summary["labels"].pop("neutral") == 96 and set(summary["labels"].values()) == {192}


def test_urdu_five_speaker_folds_do_not_leak(urdu_dir):
    ds = load_corpus("urdu", urdu_dir)
    folds = speaker_folds(ds, n_folds=5)
    speakers = np.asarray(ds["speaker"])
    test_speakers = [set(speakers[f.test]) for f in folds]
    assert sum(len(s) for s in test_speakers) == len(set().union(*test_speakers)) == 29
    assert all(not set(speakers[f.train]) & set(speakers[f.test]) for f in folds)


def test_ravdess_protocol_folds(ravdess_dir):
    ds = load_corpus("ravdess", ravdess_dir, emotions="4class")
    folds = corpus_folds(ds)
    assert len(folds) == 6
    for number, fold in enumerate(folds):
        actors = {int(s) for s in np.asarray(ds["speaker"])[fold.test]}
        assert actors == set(range(4 * number + 1, 4 * number + 5))
        assert Counter(np.asarray(ds["label"])[fold.test]) == {0: 16, 1: 32, 2: 32, 3: 32}
