"""The neural baselines (CNN on log-mel, BiLSTM on MFCCs): sequences, training, CV, safetensors, CLI, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from ser_hf.audio import load_audio
from ser_hf.baseline.crossval import cross_validate_baseline, dataset_sequences
from ser_hf.baseline.extraction import extract_dataset_sequences
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.model import CONFIG_NAME, MODEL_NAME, BaselineModel, load_baseline, train_baseline
from ser_hf.baseline.neural import NeuralConfig, SequenceClassifier, fit_neural
from ser_hf.baseline.neural_model import WEIGHTS_NAME, NeuralBaselineModel
from ser_hf.baseline.sequences import extract_sequence, sequence_config, sequence_names
from ser_hf.cli import baseline as baseline_cli
from ser_hf.corpora import load_corpus
from ser_hf.errors import AudioError, ModelError, SERError, SplitError
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.synthetic import make_synthetic_corpus

# Few epochs keep every fit to a second or two on 2 cores.
QUICK = NeuralConfig(max_epochs=2, patience=2, batch_size=16)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 synthetic speakers x 4 emotions x 3 clips and their log-mel and MFCC sequences."""
    root = make_synthetic_corpus(tmp_path_factory.mktemp("synthetic"), n_speakers=6,
                                 clips_per_speaker_per_emotion=3)
    dataset = load_corpus("manifest", root)
    sequences = {name: dataset_sequences(dataset, sequence_config(name), num_workers=0, progress=False)
                 for name in ("cnn", "lstm")}
    return dataset, sequences


def learnable_sequences(n_speakers: int = 6, per_class: int = 6, seed: int = 0):
    """Random frames where each class raises its own band of 8 dimensions; speakers shift every dimension."""
    rng = np.random.default_rng(seed)
    sequences, labels, speakers = [], [], []
    for speaker in range(n_speakers):
        offset = rng.normal(0, 0.5, 64)
        for label in range(4):
            for _ in range(per_class):
                frames = rng.standard_normal((int(rng.integers(40, 120)), 64)).astype(np.float32) + offset
                frames[:, 12 * label: 12 * label + 8] += 1.0
                sequences.append(frames.astype(np.float32))
                labels.append(label)
                speakers.append(f"spk{speaker}")
    return sequences, np.array(labels), np.array(speakers, dtype=object)


def test_sequences_have_named_columns_and_are_cached(corpus, tmp_path):
    dataset, sequences = corpus
    for name, dims in (("cnn", 64), ("lstm", 60)):
        config = sequence_config(name)
        assert len(sequence_names(config)) == dims
        assert all(s.ndim == 2 and s.shape[1] == dims and s.dtype == np.float32 for s in sequences[name])
    assert sequence_names(sequence_config("lstm"))[:2] == ["mfcc_00", "mfcc_01"]
    wave = load_audio(dataset["audio"][0], 16000)
    assert extract_sequence(wave, sequence_config("cnn")).shape[0] == 1 + len(wave) // 160
    paths = dataset["audio"][:5]
    first = extract_dataset_sequences(paths, sequence_config("cnn"), cache_dir=tmp_path, num_workers=0,
                                      progress=False)
    again = extract_dataset_sequences(paths, sequence_config("cnn"), cache_dir=tmp_path, num_workers=0,
                                      progress=False)
    assert first.cache_hits == 0 and again.cache_hits == 5
    assert all(np.array_equal(a, b) for a, b in zip(first.sequences, again.sequences))
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["sequences"]


@pytest.mark.parametrize("architecture", ["cnn", "lstm"])
def test_padding_never_changes_a_prediction(architecture):
    sequences, _, _ = learnable_sequences(n_speakers=1, per_class=3)
    model = SequenceClassifier.build(64, 4, NeuralConfig(architecture=architecture))
    batched = model.predict_proba(sequences)
    alone = np.concatenate([model.predict_proba([s]) for s in sequences])
    np.testing.assert_allclose(batched, alone, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("architecture", ["cnn", "lstm"])
def test_training_beats_chance_on_unseen_speakers(architecture):
    sequences, labels, speakers = learnable_sequences()
    test = speakers == "spk5"
    rows = np.flatnonzero(~test)
    fitted = fit_neural([sequences[i] for i in rows], labels[rows], speakers[rows], architecture,
                        config=NeuralConfig(max_epochs=6, patience=6, batch_size=16), seed=0)
    predicted = fitted.model.predict_proba([s for s, t in zip(sequences, test) if t]).argmax(axis=1)
    assert (predicted == labels[test]).mean() > 0.5  # chance is 0.25
    validation = set(fitted.inner_speakers[0]["test"])
    assert validation and not validation & set(fitted.inner_speakers[0]["train"]) and "spk5" not in validation
    assert 1 <= fitted.best_params["best_epoch"] <= fitted.best_params["epochs_run"] == len(fitted.history)


def test_training_is_reproducible():
    sequences, labels, speakers = learnable_sequences(n_speakers=4, per_class=2)
    runs = [fit_neural(sequences, labels, speakers, "cnn", config=QUICK, seed=3).model.predict_proba(sequences)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_cross_validation_writes_the_usual_reports(corpus, tmp_path):
    dataset, sequences = corpus
    result = cross_validate_baseline(dataset, "cnn", n_folds=3, features=sequences["cnn"], neural_config=QUICK,
                                     out_dir=tmp_path)
    assert len(result.folds) == len(result.fits) == 3
    for report, fitted in zip(result.folds, result.fits):
        test_speakers = set(report.metadata["speakers"])
        split = fitted.inner_speakers[0]
        assert not (set(split["train"]) | set(split["test"])) & test_speakers
        assert "validation_unweighted_accuracy" in report.metadata
    summary = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    assert summary["settings"]["baseline"]["neural"]["architecture"] == "cnn"
    assert summary["settings"]["features"]["groups"] == ["mel"] and summary["pooled"]["num_samples"] == len(dataset)
    assert (tmp_path / "cv" / "pooled" / "confusion_matrix.png").is_file()
    assert json.loads((tmp_path / "cv" / "fold1" / "report.json").read_text())["model"] == "baseline-cnn"


@pytest.mark.parametrize("classifier", ["cnn", "lstm"])
def test_safetensors_round_trip_predicts_the_same(corpus, tmp_path, classifier):
    dataset, sequences = corpus
    (tmp_path / MODEL_NAME).write_bytes(b"an older scikit-learn model")  # an earlier baseline saved here
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"format": "ser_hf-baseline", "classifier": "svm", "labels": []}))
    model = train_baseline(dataset, classifier, features=sequences[classifier], neural_config=QUICK)
    assert isinstance(model, NeuralBaselineModel)
    model.save(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).is_file() and not (tmp_path / MODEL_NAME).exists()
    loaded = load_baseline(tmp_path)
    paths = dataset["audio"][:4]
    np.testing.assert_array_equal(loaded.predict_proba(paths), model.predict_proba(paths))
    assert loaded.predict(paths) == model.predict(paths) and loaded.labels == model.labels
    wave = load_audio(paths[0], 16000)
    np.testing.assert_allclose(loaded.predict_proba(wave), model.predict_proba(paths[:1]), atol=1e-9)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["neural"]["architecture"] == classifier and config["classifier"] == classifier
    card = (tmp_path / "README.md").read_text()
    for text in ("library_name: pytorch", "## Network", "trained from scratch", "Validation UA", "load_baseline"):
        assert text in card


def _saved(corpus, tmp_path):
    dataset, sequences = corpus
    train_baseline(dataset, "cnn", features=sequences["cnn"], neural_config=QUICK).save(tmp_path)
    return json.loads((tmp_path / CONFIG_NAME).read_text())


def test_each_model_class_loads_its_own_kind(corpus, tmp_path):
    _saved(corpus, tmp_path)
    assert isinstance(NeuralBaselineModel.from_pretrained(tmp_path), NeuralBaselineModel)
    with pytest.raises(ModelError, match=r"holds a neural baseline \(cnn\), not a classic one; load it with "
                                         r"ser_hf\.baseline\.load_baseline"):
        BaselineModel.from_pretrained(tmp_path)


def test_loading_refuses_files_that_do_not_belong_together(corpus, tmp_path):
    config = _saved(corpus, tmp_path)
    edit = tmp_path / CONFIG_NAME
    edit.write_text(json.dumps({**config, "neural": {**config["neural"], "base_channels": 16}}))
    with pytest.raises(ModelError, match=r"does not hold the network .* mismatched \['body.blocks.0.0.weight"):
        load_baseline(tmp_path)
    edit.write_text(json.dumps({**config, "neural": {**config["neural"], "layers": 3}}))
    with pytest.raises(ModelError, match=r"neural has unknown settings \['layers'\]"):
        load_baseline(tmp_path)
    edit.write_text(json.dumps({**config, "neural": {**config["neural"], "max_epochs": 0}}))
    with pytest.raises(ModelError, match="NeuralConfig.max_epochs must be"):
        load_baseline(tmp_path)
    edit.write_text(json.dumps({**config, "classifier": "lstm"}))
    with pytest.raises(ModelError, match="classifier is 'lstm' but neural.architecture is 'cnn'"):
        load_baseline(tmp_path)
    edit.write_text(json.dumps({**config, "classifier": "svm"}))
    with pytest.raises(ModelError, match="is not a saved baseline"):
        load_baseline(tmp_path)
    edit.write_text(json.dumps(config))
    state = load_file(tmp_path / WEIGHTS_NAME)
    state["std"][0] = float("nan")
    save_file(state, tmp_path / WEIGHTS_NAME)
    with pytest.raises(ModelError, match="NaN/infinite weights"):
        load_baseline(tmp_path)


def test_bad_settings_are_clear_errors(corpus):
    dataset, sequences = corpus
    with pytest.raises(SERError, match="NeuralConfig.max_epochs must be"):
        NeuralConfig(max_epochs=0)
    with pytest.raises(SERError, match=r"NeuralConfig.architecture must be one of \['cnn', 'lstm'\], got 'rnn'"):
        NeuralConfig(architecture="rnn")
    with pytest.raises(SERError, match="NeuralConfig.validation_size must be"):
        NeuralConfig(validation_size=0.0)
    with pytest.raises(SERError, match="needs at least 16 dimensions per frame; the input has 8"):
        SequenceClassifier.build(8, 4, NeuralConfig())
    with pytest.raises(ValueError, match=r"learn from frame sequences .*\['pitch'\] exist only as clip statistics"):
        cross_validate_baseline(dataset, "cnn", feature_config=FeatureConfig(groups=("mel", "pitch")))
    with pytest.raises(SERError, match=r"Unknown classifier 'rnn'.*\['cnn', 'forest', 'logreg', 'lstm', 'mlp', 'svm'\]"):
        cross_validate_baseline(dataset, "rnn")
    with pytest.raises(SERError, match="`features` has 3 rows but the dataset has"):
        cross_validate_baseline(dataset, "lstm", n_folds=3, features=sequences["lstm"][:3])
    one_speaker = [np.zeros((20, 64), np.float32)] * 4
    with pytest.raises(SplitError, match="need at least 2 training speakers; found 1"):
        fit_neural(one_speaker, [0, 1, 2, 3], ["a"] * 4, "cnn", config=QUICK)
    with pytest.raises(SERError, match=r"one width; found widths \[60, 64\]"):
        fit_neural([np.zeros((20, 64), np.float32), np.zeros((20, 60), np.float32)], [0, 1], ["a", "b"], "cnn")
    model = train_baseline(dataset, "lstm", features=sequences["lstm"], neural_config=QUICK)
    with pytest.raises(ModelError, match=r"expected \(frames, 60\) frame sequences"):
        model.predict_proba_features([np.zeros((10, 64), np.float32)])


def test_cli_trains_evaluates_and_saves_a_cnn(tmp_path, capsys):
    root = make_corpus_tree("urdu", tmp_path / "urdu")
    parser = argparse.ArgumentParser()
    baseline_cli.register(parser.add_subparsers())
    common = ["baseline", "--corpus", "urdu", "--data-dir", str(root), "--folds", "3", "--cache-dir",
              str(tmp_path / "cache"), "--workers", "1"]
    args = parser.parse_args([*common, "--classifier", "cnn", "--epochs", "2", "--patience", "1", "--out",
                              str(tmp_path / "out"), "--save-model"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "UA (unweighted accuracy)" in printed and "validation UA" in printed
    assert json.loads((tmp_path / "out" / "cv" / "cv_summary.json").read_text())["folds"] == ["fold1", "fold2", "fold3"]
    model = load_baseline(tmp_path / "out")
    assert model.classifier == "cnn" and model.pipeline.config.max_epochs == 2
    assert len(model.predict([next(root.rglob("*.wav"))])) == 1
    args = parser.parse_args([*common, "--classifier", "svm", "--epochs", "3", "--out", str(tmp_path / "svm")])
    with pytest.raises(SERError, match="--epochs and --patience apply to --classifier cnn or lstm only"):
        args.func(args)


def test_a_neural_baseline_refuses_a_too_short_or_silent_clip_as_the_classic_one_does(corpus, tmp_path):
    """NeuralBaselineModel.featurize called the preprocessor directly: a 1-sample clip was zero-padded and silence
    scored as a confident emotion (found by the baseline audit's fixer, re-audit 31)."""
    _saved(corpus, tmp_path)
    model = NeuralBaselineModel.from_pretrained(tmp_path)
    rate = model.feature_config.sampling_rate
    with pytest.raises(AudioError, match=r"the audio array lasts .* \(1 samples at \d+ Hz\); expected at least 100 ms"):
        model.predict(np.full(1, 0.1, np.float32))
    with pytest.raises(AudioError, match=r"inputs\[1\] \(the audio array\) holds no sound"):
        model.predict([np.sin(np.arange(rate) / 8).astype(np.float32) * 0.3, np.zeros(rate, np.float32)])
