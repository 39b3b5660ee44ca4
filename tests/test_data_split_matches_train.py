"""``ser-hf data split --holdout`` shows the split ``ser-hf train`` makes: the same speakers in train, validation and
test, with train's defaults and with the sizes and seed passed to both (it held out 10% for validation where train
holds out 15%, and took none of train's split flags)."""

from __future__ import annotations

import pytest

from ser_hf.cli import main
from ser_hf.testing.corpora import write_tone

SPEAKERS = [f"s{number:02d}" for number in range(20)]
MARKED_TEST = {"s16", "s17", "s18", "s19"}


class _Fitted(Exception):
    """Stops ``ser-hf train`` once its method is handed the parts: the split is made by then, and no model is."""


def _write_manifest(path, speakers, marked_test=None):
    """A manifest of one clip per speaker and emotion (happy, sad); with ``marked_test``, a split column that marks
    those speakers' rows as test."""
    lines = ["path,label,speaker" + (",split" if marked_test is not None else "")]
    for number, speaker in enumerate(speakers):
        for emotion in ("happy", "sad"):
            name = f"{speaker}_{emotion}.wav"
            if not (path.parent / name).exists():
                write_tone(path.parent / name, frequency=150 + 7 * number + (40 if emotion == "sad" else 0), seed=number)
            split = "" if marked_test is None else ",test" if speaker in marked_test else ",train"
            lines.append(f"{name},{emotion},{speaker}{split}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Two manifests of the same 40 clips of 20 speakers: one without a split column, one whose split column marks
    four speakers as test."""
    folder = tmp_path_factory.mktemp("data_split_matches_train")
    _write_manifest(folder / "plain.csv", SPEAKERS)
    _write_manifest(folder / "marked.csv", SPEAKERS, MARKED_TEST)
    return folder


def _speakers(parts) -> dict[str, set[str]]:
    return {name: set(part["speaker"]) for name, part in parts.items() if part is not None and len(part)}


def _data_split_parts(monkeypatch, manifest, flags) -> dict[str, set[str]]:
    """The speakers of each part ``ser-hf data split --holdout`` prints counts for."""
    import ser_hf.cli.data as data_cli

    shown = []
    count = data_cli.class_counts

    def recording_class_counts(dataset, splits):
        shown.append(splits)
        return count(dataset, splits)

    monkeypatch.setattr(data_cli, "class_counts", recording_class_counts)
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), "--holdout", "--json",
                 *flags]) == 0
    return _speakers(shown[0])


def _train_parts(monkeypatch, manifest, flags, out) -> dict[str, set[str]]:
    """The speakers of each part ``ser-hf train`` fits on, selects on and (the rest of the clips) tests on."""
    import ser_hf.training.experiment as experiment

    handed = {}

    class Method:
        def fit(self, train, validation):
            handed.update(train=train, validation=validation)
            raise _Fitted

    monkeypatch.setattr(experiment, "make_method", lambda *args, **kwargs: Method())
    with pytest.raises(_Fitted):
        main(["train", "--corpus", "manifest", "--data_dir", str(manifest), "--output_dir", str(out), *flags])
    parts = _speakers(handed)
    parts["test"] = set(SPEAKERS) - parts["train"] - parts.get("validation", set())
    return parts


@pytest.mark.parametrize(("manifest", "flags"), [
    ("plain.csv", []),
    ("plain.csv", ["--fold_seed", "3", "--test_size", "0.3", "--validation_size", "0.25"]),
    ("plain.csv", ["--fold-seed", "1", "--test-size", "0.1", "--validation-size", "0"]),
    ("marked.csv", []),
    ("marked.csv", ["--fold_seed", "2", "--validation_size", "0.3"]),
])
def test_data_split_holdout_shows_the_speakers_train_trains_validates_and_tests_on(manifests, monkeypatch, tmp_path,
                                                                                   manifest, flags):
    shown = _data_split_parts(monkeypatch, manifests / manifest, flags)
    assert set().union(*shown.values()) == set(SPEAKERS)  # so train's test part is what it does not fit on
    assert shown == _train_parts(monkeypatch, manifests / manifest, flags, tmp_path / "run")
    if manifest == "marked.csv":
        assert shown["test"] == MARKED_TEST


def test_holdout_sizes_and_seed_outside_trains_ranges_are_refused_naming_the_flag(manifests, capsys):
    common = ["data", "split", "--corpus", "manifest", "--data-dir", str(manifests / "plain.csv"), "--holdout"]
    assert main([*common, "--test_size", "1"]) == 2
    assert ("DataArguments.test_size must be a share in [0, 1), got 1.0. Set in the command line (--test-size): "
            "change it there.") in capsys.readouterr().err
    assert main([*common, "--seed", "-1"]) == 2
    assert "DataArguments.fold_seed must be a seed (an integer)" in capsys.readouterr().err


def test_holdout_sizes_passed_to_folds_are_refused_before_the_corpus_loads(tmp_path, capsys):
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(tmp_path / "nowhere.csv"), "--folds", "3",
                 "--validation-size", "0.2"]) == 2
    assert ("--validation-size is only for --holdout (the sizes of ser-hf train's split), but these are speaker "
            "folds") in capsys.readouterr().err


def test_a_holdout_split_error_advises_the_data_split_flag(tmp_path, capsys):
    manifest = _write_manifest(tmp_path / "two.csv", ["A", "B"])
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), "--holdout"]) == 2
    err = capsys.readouterr().err
    assert "--validation-size asks for a validation part, but the speakers left after the test part are only 1" in err
    assert ("Set --validation-size to 0 to make no validation part, hold fewer speakers out for test (a lower "
            "--test-size, or 0 for no test part), or use data with more speakers.") in err
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), "--holdout",
                 "--validation-size", "0"]) == 0


@pytest.mark.parametrize(("manifest", "flags"), [
    ("plain.csv", []),
    ("marked.csv", ["--fold_seed", "2", "--validation_size", "0.3"]),
])
def test_hyperparameter_search_trains_and_validates_on_the_parts_train_does(manifests, monkeypatch, tmp_path, manifest,
                                                                           flags):
    # search made its own speaker split: it tuned on the clips a manifest's split column keeps for train's test
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    import ser_hf.training.finetune as finetune
    from ser_hf.training.recipes import parse_run
    from ser_hf.training.search import hyperparameter_search

    handed = {}

    class Method:
        def __init__(self, *args, **kwargs):
            pass

        def make_trainer(self, train, validation, **kwargs):
            handed.update(train=train, validation=validation)
            raise _Fitted

    monkeypatch.setattr(finetune, "FinetuneMethod", Method)
    run = parse_run(None, ["--corpus", "manifest", "--data_dir", str(manifests / manifest), "--mode", "finetune",
                           "--output_dir", str(tmp_path / "search"), *flags])
    with pytest.raises(_Fitted):
        hyperparameter_search(run, n_trials=1)
    searched = _speakers(handed)
    searched["test"] = set(SPEAKERS) - searched["train"] - searched["validation"]
    assert searched == _train_parts(monkeypatch, manifests / manifest, flags, tmp_path / "run")
