"""The classic baseline: speaker-grouped tuning, reports, skops persistence, CLI, and clear errors."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
from scipy.signal import resample_poly
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from ser_hf.audio import load_audio
from ser_hf.baseline import FeatureConfig
from ser_hf.baseline.classifiers import (
    CLASSIFIERS,
    default_param_grid,
    fit_classifier,
    inner_speaker_splits,
    make_pipeline,
)
from ser_hf.baseline.crossval import cross_validate_baseline, dataset_features
from ser_hf.baseline.model import TRUSTED_TYPES, BaselineModel, load_baseline, train_baseline
from ser_hf.cli import baseline as baseline_cli
from ser_hf.corpora import load_corpus
from ser_hf.errors import ModelError, SERError, SplitError
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.synthetic import make_synthetic_corpus

# A small feature set keeps extraction well under a second per dozen clips.
CONFIG = FeatureConfig(groups=("mfcc", "rms", "spectral", "pitch"), n_mfcc=13, mfcc_delta_order=1,
                       stats=("mean", "std"))
# One grid point per classifier (plus one two-point grid) keeps each fit in milliseconds.
SMALL_GRIDS = {"svm": {"C": [1.0]}, "logreg": {"C": [0.01, 0.1]}, "forest": {"n_estimators": [20]},
               "mlp": {"hidden_layer_sizes": [(16,)]}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 synthetic speakers x 4 emotions x 4 clips (learnable) and their features."""
    root = make_synthetic_corpus(tmp_path_factory.mktemp("synthetic"), n_speakers=6,
                                 clips_per_speaker_per_emotion=4)
    dataset = load_corpus("manifest", root)
    return dataset, dataset_features(dataset, CONFIG, num_workers=0, progress=False)


def _speakers_in(dataset, rows) -> set[str]:
    return set(np.asarray(dataset["speaker"], dtype=object)[rows])


def test_inner_splits_never_mix_speakers(corpus):
    dataset, features = corpus
    labels, speakers = np.asarray(dataset["label"]), np.asarray(dataset["speaker"], dtype=object)
    splits = inner_speaker_splits(labels, speakers, n_splits=3, seed=1)
    for train, test in splits:
        assert not set(speakers[train]) & set(speakers[test])
    assert set().union(*(set(speakers[test]) for _, test in splits)) == set(speakers)
    fitted = fit_classifier(features, labels, speakers, "logreg", param_grid=SMALL_GRIDS["logreg"], inner_folds=3)
    assert len(fitted.inner_speakers) == 3 and len(fitted.grid) == 2
    for split in fitted.inner_speakers:
        assert not set(split["train"]) & set(split["test"])
        assert set(split["train"]) | set(split["test"]) == set(speakers)


def test_cross_validation_tunes_on_training_speakers_only(corpus):
    dataset, features = corpus
    result = cross_validate_baseline(dataset, "logreg", n_folds=3, features=features,
                                     param_grid=SMALL_GRIDS["logreg"], inner_folds=2)
    assert len(result.folds) == len(result.fits) == 3
    tested = set()
    for report, fitted in zip(result.folds, result.fits):
        test_speakers = set(report.metadata["speakers"])
        inner = set().union(*(set(s["train"]) | set(s["test"]) for s in fitted.inner_speakers))
        assert not inner & test_speakers, "the inner search saw a test speaker"
        assert inner | test_speakers == set(dataset["speaker"])
        for split in fitted.inner_speakers:
            assert not set(split["train"]) & set(split["test"])
        tested |= test_speakers
    assert tested == set(dataset["speaker"])
    # The synthetic corpus is learnable: well above the 25% chance level on unseen speakers.
    assert result.pooled.unweighted_accuracy > 0.5


def test_reports_are_written_like_the_transformer_path(corpus, tmp_path):
    dataset, features = corpus
    result = cross_validate_baseline(dataset, "svm", n_folds=3, features=features, param_grid=SMALL_GRIDS["svm"],
                                     inner_folds=2, out_dir=tmp_path)
    cv = tmp_path / "cv"
    for part in ("fold1", "fold2", "fold3", "pooled"):
        assert {"report.json", "report.md", "confusion_matrix.png", "per_class.png", "reliability.png"} <= {
            p.name for p in (cv / part).iterdir()}
    summary = json.loads((cv / "cv_summary.json").read_text())
    assert set(summary) == {"folds", "aggregate", "pooled", "settings", "kind", "fingerprint", "fingerprint_parts"}
    assert summary["kind"] == "baseline"
    assert summary["folds"] == ["fold1", "fold2", "fold3"]
    assert list(summary["aggregate"]["metrics"])[0] == "unweighted_accuracy"
    assert set(summary["pooled"]["confidence_intervals"]) >= {"unweighted_accuracy", "weighted_accuracy", "macro_f1"}
    assert summary["pooled"]["bootstrap"]["unit"] == "group"
    assert summary["settings"]["baseline"]["classifier"] == "svm"
    assert summary["pooled"]["num_samples"] == len(dataset)
    fold = json.loads((cv / "fold1" / "report.json").read_text())
    assert fold["model"] == "baseline-svm" and fold["metadata"]["best_params"] == {"C": 1.0}
    assert result.pooled.expected_calibration_error is not None
    assert "Cross-validation: baseline-svm" in (cv / "cv_summary.md").read_text()


def test_baseline_outputs_never_replace_a_users_files_and_leave_no_earlier_folds(corpus, tmp_path):
    dataset, features = corpus
    fit = dict(features=features, param_grid=SMALL_GRIDS["logreg"], inner_folds=2)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    (mine / "model.safetensors").write_bytes(b"my own model")
    with pytest.raises(ModelError, match=r"out_dir \(--out\) .*mine is not empty .* and holds none of "
                                         r"\['baseline_config.json', 'cv/cv_summary.json'"):
        cross_validate_baseline(dataset, "logreg", n_folds=3, out_dir=mine, **fit)
    model = train_baseline(dataset, "logreg", feature_config=CONFIG, **fit)
    with pytest.raises(ModelError, match=r"directory .*mine is not empty"):
        model.save(mine)
    (tmp_path / "afile").write_text("hi")
    with pytest.raises(ModelError, match=r"afile is a file; pass a directory"):
        model.save(tmp_path / "afile")
    assert (mine / "README.md").read_text() == "my notes" and (mine / "model.safetensors").read_bytes() == b"my own model"
    out = tmp_path / "out"
    cross_validate_baseline(dataset, "logreg", n_folds=3, out_dir=out, **fit)
    model.save(out)  # beside its own CV reports
    cross_validate_baseline(dataset, "logreg", n_folds=2, out_dir=out, **fit)  # an earlier baseline's folder
    assert sorted(p.name for p in (out / "cv").iterdir() if p.is_dir()) == ["fold1", "fold2", "pooled"]
    assert load_baseline(out).classifier == "logreg"
    (out / "model.skops").unlink()  # a link left where the model goes must not receive it
    (tmp_path / "thesis.txt").write_text("my thesis")
    (out / "model.skops").symlink_to(tmp_path / "thesis.txt")
    model.save(out)
    assert (tmp_path / "thesis.txt").read_text() == "my thesis" and not (out / "model.skops").is_symlink()


def test_an_interrupted_baseline_cv_resumes_with_its_finished_folds(corpus, tmp_path, monkeypatch):
    """Killed in its third fold: the rerun keeps the two finished folds (their best parameters read off their reports)
    and ends as an uninterrupted CV; other features start afresh."""
    from ser_hf.baseline import crossval

    dataset, features = corpus
    fit = dict(features=features, param_grid=SMALL_GRIDS["logreg"], inner_folds=2, n_folds=3)
    whole = cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "whole", **fit)
    reported, stops = [], ["fold3"]  # killed in its third fold
    make_report = crossval._fold_report

    def report_then_stop(fitted, probabilities, test, split, names):
        reported.append(split)
        if stops and split == stops[0]:
            stops.pop()
            raise KeyboardInterrupt
        return make_report(fitted, probabilities, test, split, names)

    monkeypatch.setattr(crossval, "_fold_report", report_then_stop)
    with pytest.raises(KeyboardInterrupt):
        cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "out", **fit)
    reported.clear()
    result = cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "out", **fit)
    assert reported == ["fold3"] and result.resumed_folds == ["fold1", "fold2"]
    assert result.fits[0] is None and result.fits[2] is not None
    assert result.pooled.to_dict() == whole.pooled.to_dict()
    assert [r.to_dict() for r in result.folds] == [r.to_dict() for r in whole.folds]
    assert baseline_cli._best_params_lines(result) == baseline_cli._best_params_lines(whole)

    stops.append("fold3")
    with pytest.raises(KeyboardInterrupt):  # killed again; the rerun is given other features
        cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "other", **fit)
    monkeypatch.undo()
    result = cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "other",
                                     **{**fit, "features": np.asarray(features) * 2.0})
    assert result.resumed_folds == [] and all(fitted is not None for fitted in result.fits)


def test_one_baseline_at_a_time_per_output_folder(corpus, tmp_path, locked_elsewhere, capsys):
    """Two baselines into one --out at once would remove each other's folds and models: the second is refused before
    any work, from the API and from the command (which holds the folder through the CV and the model it saves)."""
    dataset, features = corpus
    fit = dict(features=features, param_grid=SMALL_GRIDS["logreg"], inner_folds=2, n_folds=2)
    with locked_elsewhere(tmp_path / "out"):
        with pytest.raises(ModelError, match=r"--out .*out is in use by another ser-hf baseline .*or pass another --out"):
            cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "out", **fit)
    assert not (tmp_path / "out" / "cv").exists()
    cross_validate_baseline(dataset, "logreg", out_dir=tmp_path / "out", **fit)  # released: it runs

    root = make_corpus_tree("urdu", tmp_path / "urdu")
    parser = argparse.ArgumentParser()
    baseline_cli.register(parser.add_subparsers())
    args = parser.parse_args(["baseline", "--corpus", "urdu", "--data-dir", str(root), "--classifier", "logreg",
                              "--folds", "2", "--inner-folds", "2", "--out", str(tmp_path / "cli"), "--save-model",
                              "--no-cache", "--workers", "1"])
    held_while_saving = []

    def save_and_check(model, out, **kwargs):
        with pytest.raises(ModelError, match="held by another process"):  # the command holds --out while it saves
            with locked_elsewhere(out):
                pass
        held_while_saving.append(out)
        return save(model, out, **kwargs)

    save = BaselineModel.save
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaselineModel, "save", save_and_check)
        assert args.func(args) == 0
    assert held_while_saving and load_baseline(tmp_path / "cli").classifier == "logreg"
    with locked_elsewhere(tmp_path / "cli"):  # released when the command ends
        pass


def test_an_interrupted_baseline_cv_can_be_rerun_into_its_folder(corpus, tmp_path, monkeypatch):
    """Stopped after its folds, before the summary: its plan (cv/cv_plan.json) marks the folder as a baseline's."""
    from ser_hf.baseline import crossval

    dataset, features = corpus
    fit = dict(features=features, param_grid=SMALL_GRIDS["logreg"], inner_folds=2)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(crossval, "write_cv_summary", interrupted)
        with pytest.raises(KeyboardInterrupt):
            cross_validate_baseline(dataset, "logreg", n_folds=3, out_dir=tmp_path / "out", **fit)
    plan = json.loads((tmp_path / "out" / "cv" / "cv_plan.json").read_text())
    assert plan["folds"] == ["fold1", "fold2", "fold3"] and plan["kind"] == "baseline"
    _refused_as_a_run_output(tmp_path / "out", "cv/cv_plan.json")
    cross_validate_baseline(dataset, "logreg", n_folds=2, out_dir=tmp_path / "out", **fit)
    cv = tmp_path / "out" / "cv"
    assert sorted(p.name for p in cv.iterdir()) == ["cv_summary.json", "cv_summary.md", "fold1", "fold2", "pooled"]
    _refused_as_a_run_output(tmp_path / "out", "cv/cv_summary.json")
    from ser_hf.baseline.folder import check_baseline_folder

    summary = cv / "cv_summary.json"
    for kind in (["run"], None, "Run", 1, "a kind of a later version"):  # anything but the command's own is foreign
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "kind": kind}))
        _refused_as_a_run_output(tmp_path / "out", "cv/cv_summary.json", kind=re.escape(str(kind)))
        with pytest.raises(ModelError, match=r"another kind of output \(cv/cv_summary.json \(kind: "):
            check_baseline_folder(tmp_path / "out", "--out")


def _refused_as_a_run_output(folder, marker, kind="baseline"):
    """A training run (``output_dir``) must not take over a baseline's CV folder: it would delete its folds."""
    from ser_hf._output_folders import check_output_folder
    from ser_hf.training.experiment import FOREIGN_OUTPUTS, RUN_OUTPUTS

    with pytest.raises(ModelError, match=rf"another kind of output \({marker} \(kind: {kind}\)\)"):
        check_output_folder(folder, argument="output_dir", marker=RUN_OUTPUTS, what="a ser_hf run's output",
                            overwrite=True, foreign=FOREIGN_OUTPUTS)


@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_skops_round_trip_predicts_the_same(corpus, tmp_path, classifier):
    dataset, features = corpus
    model = train_baseline(dataset, classifier, features=features, feature_config=CONFIG,
                           param_grid=SMALL_GRIDS[classifier], inner_folds=2)
    model.save(tmp_path)
    loaded = load_baseline(tmp_path)
    assert type(loaded) is type(BaselineModel.from_pretrained(tmp_path)) is BaselineModel
    paths = dataset["audio"][:4]
    expected = model.predict_proba(paths)
    # Features are extracted again in float32 (summation order may differ with the thread count); the MLP
    # amplifies that to ~1e-6 relative, while a model that did not round-trip differs by orders more.
    np.testing.assert_allclose(loaded.predict_proba_features(loaded.featurize(paths)), expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-6)
    assert loaded.predict(paths) == model.predict(paths)
    assert set(loaded.predict(paths)) <= set(dataset.features["label"].names)
    assert loaded.labels == dataset.features["label"].names and loaded.feature_config == CONFIG
    # A waveform at the model's rate gives what its file gives; other rates are resampled first.
    wave = load_audio(paths[0], CONFIG.sampling_rate)
    np.testing.assert_allclose(loaded.predict_proba(wave), expected[:1], rtol=1e-5, atol=1e-9)
    assert loaded.predict_proba([resample_poly(wave, 2, 1).astype(np.float32)], sampling_rate=32000).shape == (1, 4)
    card = (tmp_path / "README.md").read_text()
    for text in ("library_name: sklearn", "## Features", "## Classifier", "Best hyperparameters",
                 "## Limitations", "load_baseline"):
        assert text in card


def test_card_reports_cross_validation(corpus, tmp_path):
    dataset, features = corpus
    result = cross_validate_baseline(dataset, "logreg", n_folds=3, features=features,
                                     param_grid=SMALL_GRIDS["logreg"], inner_folds=2)
    model = train_baseline(dataset, "logreg", features=features, feature_config=CONFIG,
                           param_grid=SMALL_GRIDS["logreg"], inner_folds=2)
    model.save(tmp_path, cv=result)
    card = (tmp_path / "README.md").read_text()
    for text in ("Speaker-independent protocol: 3 outer folds", "95% CI", "Pooled (%)", "UA (unweighted accuracy)"):
        assert text in card


class Shady(BaseEstimator, TransformerMixin):
    """A transformer skops does not know: loading it could run arbitrary code, so it must be refused."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_loading_refuses_untrusted_types(corpus, tmp_path):
    dataset, features = corpus
    pipeline = Pipeline([("shady", Shady()), *make_pipeline("logreg").steps]).fit(features, dataset["label"])
    BaselineModel(pipeline, dataset.features["label"].names, CONFIG, classifier="logreg").save(tmp_path)
    with pytest.raises(ModelError, match=r"untrusted types \[.*Shady'\]"):
        load_baseline(tmp_path)
    with pytest.raises(ModelError, match="trusting everything is not supported"):
        load_baseline(tmp_path, trusted=True)
    assert "sklearn.tree._tree.Tree" in TRUSTED_TYPES


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelError, match="is not a saved baseline: expected model.skops"):
        load_baseline(tmp_path)
    (tmp_path / "baseline_config.json").write_text("{}")
    (tmp_path / "model.safetensors").mkdir()  # said "expected ... model.safetensors ..., found [..., 'model.safetensors']"
    with pytest.raises(ModelError, match=r"its model.safetensors is not a regular file \(a folder"):
        load_baseline(tmp_path)
    (tmp_path / "model.safetensors").rmdir()
    (tmp_path / "model.safetensors").symlink_to("/dev/zero")
    with pytest.raises(ModelError, match=r"its model.safetensors is not a regular file"):
        load_baseline(tmp_path)


def test_unknown_classifier_is_a_clear_error(corpus):
    dataset, features = corpus
    with pytest.raises(SERError, match=r"Unknown classifier 'xgboost'.*\['cnn', 'forest', 'logreg', 'lstm', 'mlp', 'svm'\]"):
        cross_validate_baseline(dataset, "xgboost", features=features)
    with pytest.raises(SERError, match="Unknown classifier"):
        default_param_grid("svc")


def test_too_few_speakers_are_clear_errors(corpus):
    dataset, features = corpus
    with pytest.raises(SplitError, match="Cannot make 10 speaker-grouped folds from 6 speakers"):
        cross_validate_baseline(dataset, "logreg", n_folds=10, features=features)
    # 3 outer folds leave 4 training speakers: 5 inner folds cannot be made from them.
    with pytest.raises(SplitError, match=r"inner_folds=5 .* found 4 .*Use 2 <= inner_folds <= 4"):
        cross_validate_baseline(dataset, "logreg", n_folds=3, features=features, inner_folds=5)


def test_wrong_inputs_are_clear_errors(corpus):
    dataset, features = corpus
    with pytest.raises(SERError, match="`features` has 3 rows but the dataset has 96 clips"):
        cross_validate_baseline(dataset, "logreg", n_folds=3, features=features[:3])
    model = train_baseline(dataset, "logreg", features=features, feature_config=CONFIG,
                           param_grid={"C": [0.1]}, inner_folds=2)
    with pytest.raises(ModelError, match=r"expected an \(n, \d+\) feature matrix"):
        model.predict_proba_features(np.zeros((2, 5)))
    with pytest.raises(SERError, match="a single waveform must be 1-D"):
        model.predict(np.zeros((2, 16000), dtype=np.float32))


def test_cli_cross_validates_and_saves(tmp_path, capsys):
    # A tiny URDU-named tree (6 speakers x 4 emotions x 2 short tones): the CLI extracts the full feature set.
    root = make_corpus_tree("urdu", tmp_path / "urdu")
    out = tmp_path / "run\nmodel: forged"  # a newline in --out never splits (or forges) a printed line
    parser = argparse.ArgumentParser()
    baseline_cli.register(parser.add_subparsers())
    args = parser.parse_args([
        "baseline", "--corpus", "urdu", "--data-dir", str(root), "--classifier", "logreg", "--folds", "3",
        "--inner-folds", "2", "--out", str(out), "--save-model", "--cache-dir", str(tmp_path / "cache"),
        "--workers", "1",
    ])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert printed.index("UA (unweighted accuracy)") < printed.index("WA (weighted accuracy)")
    assert "pooled out-of-fold" in printed and "best hyperparameters per fold" in printed
    assert not any(line.startswith("model: forged") for line in printed.splitlines())
    assert "run\\nmodel: forged/cv" in printed or "run\\x0amodel: forged/cv" in printed, printed[-400:]
    assert json.loads((out / "cv" / "cv_summary.json").read_text())["folds"] == ["fold1", "fold2", "fold3"]
    model = load_baseline(out)
    assert model.num_features == 532 and len(model.predict([next(root.rglob("*.wav"))])) == 1
    # A rerun refused before it starts (a file of the user's among the folds, a fold count the corpus cannot give)
    # deletes nothing: the earlier model and CV stay.
    (out / "cv" / "fold1" / "mine.txt").write_text("mine")
    args.seed = 1  # another CV (the same one would resume, deleting nothing)
    with pytest.raises(SERError, match="mine.txt"):
        args.func(args)
    args.seed = 0
    (out / "cv" / "fold1" / "mine.txt").unlink()
    args.folds = 99
    with pytest.raises(SERError, match="99"):
        args.func(args)
    assert load_baseline(out).classifier == "logreg" and (out / "cv" / "fold3").is_dir()
    args.folds = 3
    # A rerun stopped between its CV and its refit leaves its new CV alone, never the old model and card beside it.
    args.classifier = "svm"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ser_hf.baseline.model.train_baseline", _killed)
        with pytest.raises(KeyboardInterrupt):
            args.func(args)
    out = out
    assert json.loads((out / "cv" / "cv_summary.json").read_text())["settings"]["baseline"]["classifier"] == "svm"
    assert not any((out / name).exists() for name in ("model.skops", "baseline_config.json", "README.md"))


def _killed(*args, **kwargs):
    raise KeyboardInterrupt
