"""Calibration that fits in the checkpoint: a temperature fitted on validation speakers, folded into the classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.corpora import load_corpus
from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation import EvaluationReport, expected_calibration_error
from ser_hf.evaluation.calibration import fit_temperature, fold_temperature, uncalibrated
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
from ser_hf.models.factory import ModelOptions, build_model
from ser_hf.splits import speaker_split
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.arguments import SERTrainingArguments
from ser_hf.training.finetune import FinetuneMethod
from ser_hf.training.probe import ProbeMethod, ProbeSettings
from ser_hf.training.trainer import SERTrainer

LABELS = ["neutral", "happy", "sad", "angry"]

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _calibrated_draws(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction (labels drawn from it)."""
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.standard_normal((n, 4))
    cumulative = _softmax(logits).cumsum(axis=1)
    labels = (rng.random((n, 1)) > cumulative).sum(axis=1)
    return logits, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_temperature_recovers_the_scale_of_over_and_under_confident_logits(scale):
    logits, labels = _calibrated_draws()
    assert fit_temperature(logits * scale, labels) == pytest.approx(scale, rel=0.1)
    assert fit_temperature(logits * scale, labels, class_balanced=True) == pytest.approx(scale, rel=0.15)
    scaled = _softmax(logits * scale)
    assert expected_calibration_error(_softmax(logits * scale / fit_temperature(logits * scale, labels)), labels) < \
        expected_calibration_error(scaled, labels) / 2


def test_report_gives_the_ece_before_and_after_scaling():
    logits, labels = _calibrated_draws(seed=1)
    raw = logits * 3.0
    calibrated = _softmax(raw / 3.0)
    np.testing.assert_allclose(uncalibrated(calibrated, 3.0), _softmax(raw), atol=1e-9)
    report = EvaluationReport.from_predictions(labels, probabilities=calibrated, label_names=LABELS, temperature=3.0,
                                               n_resamples=0)
    scaling = report.temperature_scaling
    assert scaling["expected_calibration_error_before"] == pytest.approx(expected_calibration_error(_softmax(raw), labels))
    assert scaling["expected_calibration_error_after"] == report.expected_calibration_error
    assert scaling["expected_calibration_error_before"] > 3 * scaling["expected_calibration_error_after"]
    assert "| ECE before temperature scaling (T = 3) |" in report.to_markdown()
    assert "(before T-scaling " in report.format_table()
    assert EvaluationReport.from_dict(report.to_dict()).temperature_scaling == scaling
    with pytest.raises(EvaluationError, match=r"`temperature` must be a positive number .* found -1"):
        EvaluationReport.from_predictions(labels, probabilities=calibrated, label_names=LABELS, temperature=-1.0)


def test_folding_divides_the_logits_and_pipeline_returns_the_calibrated_scores(tmp_path):
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp_path / "backbone"), LABELS)
    wave = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    inputs = extractor([wave], sampling_rate=16000, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        before = model(**inputs).logits
        fold_temperature(model, 2.5)
        after = model(**inputs).logits
    torch.testing.assert_close(after, before / 2.5)
    model.save_pretrained(tmp_path / "model")
    extractor.save_pretrained(tmp_path / "model")
    scores = {r["label"]: r["score"] for r in pipeline("audio-classification", model=str(tmp_path / "model"))(
        wave, top_k=None)}
    np.testing.assert_allclose([scores[name] for name in LABELS], torch.softmax(before / 2.5, -1)[0].numpy(),
                               atol=1e-5)
    with pytest.raises(EvaluationError, match=r"Sequential has no `classifier` torch.nn.Linear"):
        fold_temperature(torch.nn.Sequential(torch.nn.Linear(2, 2)), 2.0)
    with pytest.raises(EvaluationError, match=r"positive number, found 0"):
        fold_temperature(model, 0)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibration")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    dataset = load_corpus("urdu", corpus)
    return {"tmp": tmp, "corpus": corpus, "dataset": dataset,
            "split": speaker_split(dataset, test_size=0.2, validation_size=0.2, seed=0),
            "wav2vec2": tiny_backbone("wav2vec2", tmp / "tiny-wav2vec2")}


def test_finetune_folds_a_validation_temperature_into_the_checkpoint(assets, tmp_path):
    split = assets["split"]
    args = SERTrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=8,
                                learning_rate=1e-3, disable_tqdm=True, seed=0)
    method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(), args).fit(split["train"], split["validation"])
    record = method.calibration
    validation = split["validation"]
    assert record["fitted_on"] == (f"validation speakers: {len(validation)} clips, "
                                   f"{len(set(validation['speaker']))} speakers")
    # The record's "after" is what the model now predicts on those clips: the temperature is in the weights.
    labels = np.asarray(validation["label"])
    assert expected_calibration_error(method.predict_proba(validation), labels) == pytest.approx(
        record["expected_calibration_error_after"], abs=1e-5)
    checkpoint = method.save(tmp_path / "model")
    saved = json.loads((checkpoint / "config.json").read_text())["ser_hf_calibration"]
    assert saved["temperature"] == pytest.approx(record["temperature"])
    clip = split["test"][0]["audio"]
    scores = {r["label"]: r["score"] for r in pipeline("audio-classification", model=str(checkpoint))(
        load_audio(clip), top_k=None)}
    np.testing.assert_allclose([scores[name] for name in LABELS],
                               method.predict_proba(split["test"].select([0]))[0], atol=1e-5)
    report = evaluate_checkpoint(checkpoint, "urdu", assets["corpus"], progress=False, n_resamples=0)
    assert report.temperature_scaling["temperature"] == pytest.approx(record["temperature"])


def test_the_gradient_probe_is_calibrated_and_the_linear_probe_records_its_temperature(assets, tmp_path):
    split = assets["split"]
    gradient = ProbeMethod(assets["wav2vec2"], LABELS, ModelOptions(),
                           ProbeSettings(fit="gradient", projector_size=8, max_epochs=5),
                           cache_dir=tmp_path / "cache", progress=False).fit(split["train"], split["validation"])
    record = gradient.calibration
    assert record["fitted_on"].startswith(f"validation speakers: {len(split['validation'])} clips")
    assert expected_calibration_error(gradient.predict_proba(split["validation"]),
                                      np.asarray(split["validation"]["label"])) == pytest.approx(
        record["expected_calibration_error_after"], abs=1e-5)
    checkpoint = gradient.save(tmp_path / "gradient")
    assert json.loads((checkpoint / "config.json").read_text())["ser_hf_calibration"] == pytest.approx(record)
    linear = ProbeMethod(assets["wav2vec2"], LABELS, ModelOptions(), ProbeSettings(projector_size=8),
                         cache_dir=tmp_path / "cache", progress=False).fit(split["train"], split["validation"])
    assert linear.calibration["temperature"] == pytest.approx(1.0 / linear.fit_record["temperature"])
    assert "inner out-of-fold" in linear.calibration["fitted_on"]


def test_calibrate_needs_held_out_clips(assets, tmp_path):
    model, extractor = build_model(assets["wav2vec2"], LABELS)
    trainer = SERTrainer(model=model, args=SERTrainingArguments(output_dir=str(tmp_path), disable_tqdm=True),
                         train_dataset=assets["split"]["train"])
    with pytest.raises(SERError, match=r"SERTrainer.calibrate needs held-out clips: pass eval_dataset"):
        trainer.calibrate()


def test_a_temperature_the_clips_cannot_tell_is_not_folded():
    from ser_hf.evaluation.calibration import calibrate_classifier

    head = torch.nn.Module()
    head.classifier = torch.nn.Linear(3, 2)
    weight = head.classifier.weight.detach().clone()
    separable = np.array([[3.0, -3.0], [2.0, -1.0], [-2.0, 2.0], [-1.0, 3.0]])  # every clip right: T -> 0
    record = calibrate_classifier(head, separable, [0, 0, 1, 1], ["a", "a", "b", "b"])
    assert record["temperature"] == 1.0 and "none is misclassified" in record["skipped"]
    assert record["expected_calibration_error_before"] == record["expected_calibration_error_after"]
    torch.testing.assert_close(head.classifier.weight, weight)
    record = calibrate_classifier(head, separable * 4, [0, 1, 1, 0], None)  # half wrong: T = 20, flatten
    assert "skipped" in record and record["fitted_on"] == "validation speakers: 4 clips"
    noisy = np.array([[3.0, -3.0], [2.0, -1.0], [-2.0, 2.0], [1.0, -1.0]])
    record = calibrate_classifier(head, noisy, [0, 0, 1, 1], ["a", "a", "b", "b"])
    assert "skipped" not in record and 1.0 < record["temperature"] < 20.0
    torch.testing.assert_close(head.classifier.weight, weight / record["temperature"])
