"""Fine-tuning: the data pipeline, SERTrainer, FinetuneMethod, `ser-hf train/cv --mode finetune`, search, bad input.

Tiny random models on tiny synthetic corpus trees: predictions mean nothing, only plumbing is tested.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import datasets
import numpy as np
import pytest
import torch
from transformers import EarlyStoppingCallback, TrainingArguments, pipeline
from transformers.trainer_pt_utils import LengthGroupedSampler

from ser_hf.audio import AudioPreprocessor, load_audio
from ser_hf.cli import main
from ser_hf.corpora import load_corpus
from ser_hf.errors import AudioError, SERError
from ser_hf.models.factory import ModelOptions, build_model
from ser_hf.splits import speaker_split
from ser_hf.testing.corpora import make_corpus_tree, write_tone
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.arguments import SERTrainingArguments
from ser_hf.training.data import AudioCollator, Augmentation, add_noise, apply_gain, change_speed, shift_pitch
from ser_hf.training.experiment import make_method
from ser_hf.training.finetune import FinetuneMethod, check_split
from ser_hf.training.lora import apply_lora
from ser_hf.training.probe import ProbeSettings
from ser_hf.training.recipes import parse_run
from ser_hf.training.trainer import SERTrainer

LABELS = ["neutral", "happy", "sad", "angry"]
# transformers 5.x renamed gradient_checkpointing (now a deprecated alias) to activation_checkpointing.
CHECKPOINTING = ("--activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                 else "--gradient_checkpointing")


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    return {"tmp": tmp, "corpus": corpus, "dataset": load_corpus("urdu", corpus),
            "wav2vec2": tiny_backbone("wav2vec2", tmp / "tiny-wav2vec2"),
            "whisper": tiny_backbone("whisper", tmp / "tiny-whisper")}


@pytest.fixture(scope="module")
def split(assets):
    return speaker_split(assets["dataset"], test_size=0.2, validation_size=0.2, seed=0)


def _args(tmp_path, **values) -> SERTrainingArguments:
    defaults = {"output_dir": str(tmp_path), "num_train_epochs": 1, "per_device_train_batch_size": 8,
                "learning_rate": 1e-3, "disable_tqdm": True, "logging_steps": 1, "seed": 0}
    return SERTrainingArguments(**{**defaults, **values})


def _tones(tmp_path, durations) -> list[str]:
    return [str(write_tone(tmp_path / f"tone{i}.wav", duration=d, seed=i)) for i, d in enumerate(durations)]


# --- data pipeline -----------------------------------------------------------------------------------

def test_collator_pads_to_the_longest_clip_of_each_batch(assets, tmp_path):
    _, extractor = build_model(assets["wav2vec2"], LABELS)
    paths = _tones(tmp_path, [0.3, 0.5, 0.8])
    collator = AudioCollator(extractor)
    batch = collator([{"audio": p, "label": i} for i, p in enumerate(paths)])
    assert batch["input_values"].shape == (3, 12800) and batch["labels"].tolist() == [0, 1, 2]
    assert "attention_mask" not in batch  # wav2vec2-base style extractors: padding zeros, no mask
    assert torch.all(batch["input_values"][0, 4800:] == 0) and batch["input_values"][0, :4800].std() > 0.5
    assert collator([{"audio": p} for p in paths[:2]])["input_values"].shape == (2, 8000)  # no labels at prediction
    extractor.return_attention_mask = True
    masked = AudioCollator(extractor)([{"audio": p} for p in paths])
    assert masked["attention_mask"].sum(dim=1).tolist() == [4800, 8000, 12800]


def test_whisper_collator_pads_to_the_variable_length_input(assets, tmp_path):
    _, extractor = build_model(assets["whisper"], LABELS, ModelOptions(max_source_positions=50))
    batch = AudioCollator(extractor)([{"audio": p, "label": 0} for p in _tones(tmp_path, [0.3, 1.7])])
    assert batch["input_features"].shape == (2, 80, 100)  # 1 s = 100 mel frames, not 30 s = 3000


def test_training_collator_crops_and_augments_reproducibly(assets, tmp_path):
    _, extractor = build_model(assets["wav2vec2"], LABELS)
    rows = [{"audio": p, "label": 0} for p in _tones(tmp_path, [0.8, 0.2])]
    augmentation = Augmentation(noise_snr_db=(10, 20), gain_db=(-6, 6), speed_perturb=(0.9, 1.1), probability=1.0)
    plain = AudioCollator(extractor, AudioPreprocessor(), max_duration=0.5)
    train = dataclasses.replace(plain, augmentation=augmentation, seed=3).for_training()
    assert plain(rows)["input_values"].shape == (2, 12800)  # evaluation: whole clips
    first = train(rows)["input_values"]
    assert first.shape[1] <= 8000  # random 0.5 s windows, whatever the speed factor
    again = dataclasses.replace(plain, augmentation=augmentation, seed=3).for_training()(rows)["input_values"]
    other = dataclasses.replace(plain, augmentation=augmentation, seed=4).for_training()(rows)["input_values"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(first, train(rows)["input_values"])  # draws depend on (seed, epoch, clip), not on call order
    alone = train(rows[1:])["input_values"][0]  # a clip draws the same changes in any batch
    assert torch.equal(first[1, : alone.numel()], alone)
    train.set_epoch(1)
    assert not torch.equal(first, train(rows)["input_values"])  # the next epoch draws new changes


def test_augmentation_steps_keep_the_shape_rules():
    rng = np.random.default_rng(0)
    wave = (0.1 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)
    assert np.allclose(np.abs(apply_gain(wave, 6.0)).max(), 0.1 * 10 ** (6 / 20), rtol=1e-3)
    noisy = add_noise(wave, 20.0, rng)
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert noisy.shape == wave.shape and noisy.dtype == np.float32 and abs(snr - 20) < 0.5
    assert abs(change_speed(wave, 1.1, 16000).size - 16000 / 1.1) <= 2
    shifted = shift_pitch(wave, 2.0, 16000)
    assert shifted.shape == wave.shape and not np.allclose(shifted, wave)
    with pytest.raises(SERError, match=r"noise_snr_db must be two numbers 'low high' with low <= high"):
        Augmentation(noise_snr_db=(30, 10))
    with pytest.raises(SERError, match=r"speed_perturb must be a speed factor in \[0.5, 2\], got \[3.0\]"):
        SERTrainingArguments(output_dir="x", speed_perturb=[3.0])
    with pytest.raises(SERError, match=r"speed_perturb must list speed factors in \[0.5, 2\]"):
        Augmentation(speed_perturb=(3.0,))


def test_a_bad_audio_file_in_training_is_named(assets, tmp_path):
    _, extractor = build_model(assets["wav2vec2"], LABELS)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match=r"broken\.wav"):
        AudioCollator(extractor).for_training()([{"audio": str(broken), "label": 0}])


# --- SERTrainer ----------------------------------------------------------------------------------------

def _trainer(assets, tmp_path, train, validation=None, **values) -> SERTrainer:
    model, extractor = build_model(assets["wav2vec2"], LABELS)
    return SERTrainer(model=model, args=_args(tmp_path, **values), data_collator=AudioCollator(extractor),
                      train_dataset=train, eval_dataset=validation, class_names=LABELS)


def test_trainer_forces_its_settings_weights_classes_and_stops_early(assets, split, tmp_path):
    skewed = split["train"].select([i for i, label in enumerate(split["train"]["label"]) if label != 1 or i % 3 == 0])
    trainer = _trainer(assets, tmp_path, skewed, split["validation"], remove_unused_columns=True,
                       eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                       early_stopping_patience=2)
    assert trainer.args.remove_unused_columns is False
    assert any(isinstance(cb, EarlyStoppingCallback) for cb in trainer.callback_handler.callbacks)
    counts = np.bincount(skewed["label"], minlength=4)
    assert np.allclose(trainer.class_weights.numpy(), counts.sum() / (4 * counts), rtol=1e-6)
    assert trainer.class_weights[1] > trainer.class_weights[0]  # the rarer class weighs more
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    assert _trainer(assets, tmp_path, skewed, class_weighted_loss=False).class_weights is None
    without_angry = split["train"].filter(lambda row: row["label"] != 3)
    with pytest.warns(UserWarning, match=r"No training clips of class\(es\) \['angry'\]"):
        _trainer(assets, tmp_path, without_angry)
    with pytest.warns(UserWarning, match=r"dataloader_persistent_workers keeps each worker's copy"):
        _trainer(assets, tmp_path, skewed, dataloader_num_workers=1, dataloader_persistent_workers=True)


def test_trainer_tells_the_training_collator_each_epoch(assets, split, tmp_path):
    seen = []
    trainer = _trainer(assets, tmp_path, split["train"].shuffle(seed=0).select(range(16)), num_train_epochs=3,
                       per_device_train_batch_size=4)
    collator = trainer.train_data_collator
    collator.set_epoch = lambda epoch: seen.append(epoch)  # records what the Trainer announces
    trainer.train()
    assert seen == [0, 1, 2]


def test_balanced_sampler_draws_classes_equally(assets, split, tmp_path):
    skewed = split["train"].select([i for i, label in enumerate(split["train"]["label"]) if label != 1 or i % 4 == 0])
    trainer = _trainer(assets, tmp_path, skewed, balanced_sampler=True)
    drawn = np.asarray(skewed["label"])[list(trainer._get_train_sampler())]
    assert isinstance(trainer._get_train_sampler(), torch.utils.data.WeightedRandomSampler)
    assert len(drawn) == len(skewed) and np.bincount(drawn, minlength=4).min() > 0
    with pytest.raises(SERError, match=r"needs a 'duration' column of clip lengths"):
        _trainer(assets, tmp_path, skewed.remove_columns("duration"))._get_train_sampler()


def _small_and_large_corpora(train):
    """``train`` as clips of two corpora: every fourth clip from a small corpus, the rest from a large one."""
    return train.remove_columns("corpus").add_column("corpus", ["small" if i % 4 == 0 else "large"
                                                                 for i in range(len(train))])


def test_trainer_weighs_every_corpus_and_emotion_alike_for_several_corpora(assets, split, tmp_path):
    from ser_hf.training.data import LOSS_WEIGHT_COLUMN
    from ser_hf.training.linear_probe import balanced_weights

    train = _small_and_large_corpora(split["train"])
    trainer = _trainer(assets, tmp_path, train)
    weights = np.asarray(trainer.train_dataset[LOSS_WEIGHT_COLUMN])
    labels, corpora = np.asarray(train["label"]), np.asarray(train["corpus"])
    np.testing.assert_allclose(weights, balanced_weights(labels, 4, corpora), rtol=1e-6)
    cells = {(c, k): weights[(corpora == c) & (labels == k)].sum() for c in ("small", "large") for k in range(4)
             if np.any((corpora == c) & (labels == k))}
    np.testing.assert_allclose(list(cells.values()), len(train) / len(cells), rtol=1e-6)  # every cell the same
    # The training batches carry the weights, and the loss is their weighted mean of the clips' losses.
    rows = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.train_data_collator(rows)
    np.testing.assert_allclose(batch["loss_weights"].numpy(), weights[:4], rtol=1e-6)
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        logits = model(input_values=batch["input_values"]).logits
    losses = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    torch.testing.assert_close(loss, (batch["loss_weights"] * losses).sum() / batch["loss_weights"].sum())
    # One corpus, no class weighting, or the user's own weights: no column is added (theirs is used as given).
    assert LOSS_WEIGHT_COLUMN not in _trainer(assets, tmp_path, split["train"]).train_dataset.column_names
    assert LOSS_WEIGHT_COLUMN not in _trainer(assets, tmp_path, train.map(lambda row: {"corpus": "one"})
                                              ).train_dataset.column_names
    assert LOSS_WEIGHT_COLUMN not in _trainer(assets, tmp_path, train,
                                              class_weighted_loss=False).train_dataset.column_names
    own = train.add_column(LOSS_WEIGHT_COLUMN, [2.0] * len(train))
    assert _trainer(assets, tmp_path, own).train_dataset[LOSS_WEIGHT_COLUMN] == [2.0] * len(train)


def test_several_validation_corpora_pick_the_checkpoint_by_the_mean_of_their_uas(assets, split, tmp_path):
    from ser_hf.training.linear_probe import corpus_balanced_ua
    from ser_hf.training.search import objective_name
    from ser_hf.training.trainer import CORPUS_MEAN_UA

    validation = _small_and_large_corpora(split["validation"])
    # Unequal stored durations, so evaluation (in order of duration) visits the clips out of their stored order.
    validation = validation.remove_columns("duration").add_column(
        "duration", np.random.default_rng(0).permutation(len(validation)).astype(float).tolist())
    trainer = _trainer(assets, tmp_path, split["train"], validation, eval_strategy="epoch")
    assert trainer.args.metric_for_best_model == CORPUS_MEAN_UA
    assert objective_name(trainer.args) == f"eval_{CORPUS_MEAN_UA}"  # a search optimises the same
    metrics = trainer.evaluate()
    output = trainer.predict(validation)
    order = trainer._eval_order(validation)
    assert not np.array_equal(order, np.arange(len(validation)))
    # Predictions come in evaluation order: the labels returned beside them are the clips' labels in that order.
    np.testing.assert_array_equal(output.label_ids, np.asarray(validation["label"])[order])
    corpora, predicted = np.asarray(validation["corpus"])[order], output.predictions.argmax(axis=1)
    assert metrics[f"eval_{CORPUS_MEAN_UA}"] == pytest.approx(
        corpus_balanced_ua(output.label_ids, predicted, 4, corpora))
    for corpus in ("small", "large"):
        assert metrics[f"eval_unweighted_accuracy_{corpus}"] == pytest.approx(corpus_balanced_ua(
            output.label_ids[corpora == corpus], predicted[corpora == corpus], 4, corpora=None))
    # A metric the user chose is kept; one corpus adds no corpus metrics and keeps the pooled UA.
    assert _trainer(assets, tmp_path, split["train"], validation,
                    metric_for_best_model="macro_f1").args.metric_for_best_model == "macro_f1"
    one = _trainer(assets, tmp_path, split["train"], split["validation"], eval_strategy="epoch")
    assert one.args.metric_for_best_model == "unweighted_accuracy"
    assert not any("corpus" in name for name in one.evaluate())


# (A column of text holds text in every row: the first is named.)
@pytest.mark.parametrize("bad, found", [("heavy", r"'1\.0' at row 0"), (float("nan"), r"nan at row 1"),
                                        (-1.0, r"-1\.0 at row 1"), (None, r"None at row 1")])
def test_a_loss_weight_column_the_loss_cannot_use_is_refused_naming_row_and_value(assets, split, tmp_path, bad, found):
    from ser_hf.training.data import LOSS_WEIGHT_COLUMN

    train = split["train"]
    weights = [1.0] * len(train)
    weights[1] = bad
    column = train.add_column(LOSS_WEIGHT_COLUMN, [str(w) for w in weights] if isinstance(bad, str) else weights)
    with pytest.raises(SERError, match=rf"train_dataset column 'loss_weight' holds {found}; expected a finite number "
                                       r">= 0.*or remove the column"):
        _trainer(assets, tmp_path, column)
    with pytest.raises(SERError, match=r"eval_dataset column 'loss_weight' is 0 for every clip"):
        _trainer(assets, tmp_path, train, split["validation"].add_column(LOSS_WEIGHT_COLUMN,
                                                                        [0.0] * len(split["validation"])))


def test_class_weighted_loss_without_loss_weights_is_torch_weighted_cross_entropy(assets, split, tmp_path):
    trainer = _trainer(assets, tmp_path, split["train"])
    batch = trainer.train_data_collator([split["train"][i] for i in range(6)])
    assert "loss_weights" not in batch
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        logits = model(input_values=batch["input_values"]).logits
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, batch["labels"],
                                                                         weight=trainer.class_weights))


def test_balanced_sampler_draws_every_corpus_and_emotion_alike(assets, split, tmp_path):
    train = _small_and_large_corpora(split["train"])
    sampler = _trainer(assets, tmp_path, train, balanced_sampler=True)._get_train_sampler()
    labels, corpora = np.asarray(train["label"]), np.asarray(train["corpus"])
    weights = np.asarray(sampler.weights, dtype=np.float64)
    small = corpora == "small"
    assert set(labels[small]) == set(labels[~small])  # (both corpora hold every emotion the split has)
    # The small corpus holds a quarter of the clips but gets half of the draws.
    np.testing.assert_allclose(weights[small].sum() / weights.sum(), 0.5, rtol=1e-6)
    for corpus in (small, ~small):
        totals = [weights[corpus & (labels == k)].sum() for k in range(4) if np.any(corpus & (labels == k))]
        np.testing.assert_allclose(totals, totals[0], rtol=1e-6)


def test_mixed_precision_falls_back_to_float32_on_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: fp16 is honoured")
    with pytest.warns(UserWarning, match=r"fp16=True needs a GPU and none is available: training in float32"):
        args = SERTrainingArguments(output_dir=str(tmp_path), fp16=True)
    assert args.fp16 is False


# --- FinetuneMethod ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(assets, split, tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted")
    args = _args(out, num_train_epochs=2, noise_snr_db=[10, 30], gain_db=[-6, 6], early_stopping_patience=5)
    method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(), args, AudioPreprocessor(max_duration=0.3))
    return method.fit(split["train"], split["validation"]), out


def test_finetune_saves_a_checkpoint_that_pipeline_agrees_with(fitted, split, tmp_path):
    method, _ = fitted
    assert method.trainer.args.load_best_model_at_end and method.trainer.args.eval_strategy == "epoch"
    assert method.trainer.state.best_metric is not None  # the best epoch by validation UA was kept
    path = method.save(tmp_path / "model")
    assert (path / "model.safetensors").exists()
    probabilities = method.predict_proba(split["test"])
    assert probabilities.shape == (len(split["test"]), 4) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    classify = pipeline("audio-classification", model=str(path))
    for audio, row in zip(split["test"]["audio"], probabilities):
        scores = {r["label"]: r["score"] for r in classify(load_audio(audio), top_k=4)}
        assert max(scores, key=scores.get) == LABELS[int(row.argmax())]
        assert np.allclose([scores[label] for label in LABELS], row, atol=1e-4)


def test_resume_from_checkpoint_continues_the_same_fold(assets, split, fitted):
    _, out = fitted
    folder = next((out / "checkpoints").iterdir())
    first, last = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    first_written = (first / "trainer_state.json").stat().st_mtime_ns
    args = _args(out, num_train_epochs=3, resume_from_checkpoint="last")
    method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(), args).fit(split["train"], split["validation"])
    steps_per_epoch = int(last.name.split("-")[1]) // 2
    assert method.trainer.state.global_step == 3 * steps_per_epoch
    assert (first / "trainer_state.json").stat().st_mtime_ns == first_written  # epochs 1-2 were not redone


def test_resume_from_another_models_checkpoint_is_a_clear_error(assets, split, tmp_path):
    other, _ = build_model(assets["whisper"], LABELS, ModelOptions(max_source_positions=50))
    other.save_pretrained(tmp_path / "checkpoint-5")
    args = _args(tmp_path, resume_from_checkpoint=str(tmp_path / "checkpoint-5"))
    method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(), args)
    with pytest.raises(SERError, match=r"belongs to another model \(model_type: checkpoint 'whisper', model 'wav2vec2'"):
        method.fit(split["train"])
    with pytest.raises(SERError, match=r"no checkpoint-\* folder in .* to resume from"):
        FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(),
                       _args(tmp_path / "fresh", resume_from_checkpoint="last")).fit(split["train"])


def test_bad_splits_are_clear_errors(assets, split, tmp_path):
    method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(), _args(tmp_path))
    with pytest.raises(SERError, match=r"The train split is empty \(0 clips\)"):
        method.fit(split["train"].select([]))
    surprised = split["test"].cast_column("label", datasets.ClassLabel(names=["neutral", "happy", "surprised", "angry"]))
    with pytest.raises(SERError, match=r"label\(s\) \['surprised'\] that the model does not know"):
        method.predict_proba(surprised)
    reordered = split["test"].cast_column("label", datasets.ClassLabel(names=["happy", "neutral", "sad", "angry"]))
    with pytest.raises(SERError, match=r"numbers its labels differently.*align_labels_with_mapping"):
        check_split(reordered, "validation", LABELS)


def test_lora_needs_peft_and_merges_into_a_plain_checkpoint(assets, split, tmp_path, monkeypatch):
    model, _ = build_model(assets["wav2vec2"], LABELS)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "peft", None)
        with pytest.raises(SERError, match=r"use_lora=True needs the peft package.*ser-hf\[lora\]"):
            apply_lora(model, _args(tmp_path, use_lora=True))
    pytest.importorskip("peft", reason="peft is optional (pip install 'ser-hf[lora]')")
    with pytest.warns(UserWarning, match=r"use_weighted_layer_sum=True cannot train with layerdrop=0.1"):
        method = FinetuneMethod(assets["wav2vec2"], LABELS, ModelOptions(use_weighted_layer_sum=True),
                                _args(tmp_path, use_lora=True, lora_r=4))
    assert method.model.config.layerdrop == 0.0
    path = method.fit(split["train"]).save(tmp_path / "lora-model")
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "lora" in key]
    assert pipeline("audio-classification", model=str(path))(load_audio(split["test"]["audio"][0]))


# --- through the CLI and cross-validation ----------------------------------------------------------------

def test_ser_hf_train_finetunes_whisper_in_variable_length_mode(assets, tmp_path, capsys):
    out = tmp_path / "whisper"
    argv = ["train", "--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
            str(assets["whisper"]), "--mode", "finetune", "--max_source_positions", "50", "--num_train_epochs", "2",
            "--learning_rate", "1e-3", "--disable_tqdm", "true", "--speed_perturb", "0.9", "1.1",
            "--output_dir", str(out)]
    assert main(argv) == 0
    assert "checkpoint:" in capsys.readouterr().out
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["metadata"]["mode"] == "finetune" and report["num_samples"] > 0
    classify = pipeline("audio-classification", model=str(out))
    assert classify.feature_extractor.chunk_length == 1  # the saved extractor keeps the 1 s input
    assert {r["label"] for r in classify(load_audio(next(assets["corpus"].rglob("*.wav"))))} == set(LABELS)


def test_cross_validate_finetunes_every_fold(assets, tmp_path, capsys):
    out = tmp_path / "cv"
    argv = ["cv", "--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
            str(assets["wav2vec2"]), "--mode", "finetune", "--num_folds", "2", "--num_train_epochs", "1",
            CHECKPOINTING, "true", "--disable_tqdm", "true", "--output_dir", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "cv" / "cv_summary.json").read_text())
    assert summary["folds"] == ["fold1", "fold2"] and summary["pooled"]["num_samples"] == 48
    assert len(list((out / "checkpoints").iterdir())) == 2  # one checkpoint folder per fold


def test_hyperparameter_search_scores_on_speaker_disjoint_validation(assets, tmp_path):
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    from ser_hf.training.search import hyperparameter_search

    run = parse_run(None, ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
                           str(assets["wav2vec2"]), "--mode", "finetune", "--num_train_epochs", "1",
                           "--eval_strategy", "epoch", "--save_strategy", "no", "--disable_tqdm", "true",
                           "--output_dir", str(tmp_path)])
    best = hyperparameter_search(run, n_trials=2)
    assert set(best.hyperparameters) == {"learning_rate", "warmup_steps", "weight_decay", "per_device_train_batch_size"}
    assert 0 <= best.objective <= 1
    record = json.loads((tmp_path / "hp_search.json").read_text())
    assert record["objective"] == "eval_unweighted_accuracy"  # one corpus: the pooled validation UA
    assert record["validation_speakers"] and not set(record["validation_speakers"]) & set(record["test_speakers_held_out"])


def test_search_command_writes_the_best_trial(assets, tmp_path, capsys):
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    argv = ["search", "--trials", "2", "--corpus", "urdu", "--data_dir", str(assets["corpus"]),
            "--model_name_or_path", str(assets["wav2vec2"]), "--mode", "finetune", "--num_train_epochs", "1",
            "--eval_strategy", "epoch", "--save_strategy", "no", "--disable_tqdm", "true", "--output_dir", str(tmp_path)]
    assert main(argv) == 0
    # The Trainer prints its own metric dicts on stdout too; the command's summary is the JSON line.
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith('{"objective"'))
    printed = json.loads(line)
    assert printed["objective"] == "eval_unweighted_accuracy" and 0 <= printed["value"] <= 1
    assert "learning_rate" in printed["hyperparameters"] and printed["trials"]["complete"] == 2
    assert json.loads((tmp_path / "hp_search.json").read_text())["n_trials"] == 2
    # A loss as the objective is named as such (it was printed as "validation_unweighted_accuracy").
    assert main([*argv[:-1], str(tmp_path / "loss"), "--metric_for_best_model", "loss"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith('{"objective"'))
    assert json.loads(line)["objective"] == "eval_loss"


@pytest.mark.parametrize("trials", ["0", "-3", "two"])
def test_search_refuses_a_trial_count_below_one_before_loading(tmp_path, capsys, trials):
    argv = ["search", "--trials", trials, "--corpus", "urdu", "--data_dir", str(tmp_path / "missing"),
            "--mode", "finetune", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"--trials: expected a whole number of trials >= 1, got '{trials}'" in capsys.readouterr().err


def test_a_search_keeps_finished_trials_survives_an_out_of_memory_trial_and_resumes(assets, tmp_path, monkeypatch):
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    import torch

    from ser_hf.errors import SERError
    from ser_hf.training.finetune import FinetuneMethod
    from ser_hf.training.search import JOURNAL, SEARCH_FOLDER, hyperparameter_search

    run = parse_run(None, ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
                           str(assets["wav2vec2"]), "--mode", "finetune", "--num_train_epochs", "1",
                           "--eval_strategy", "epoch", "--save_strategy", "no", "--disable_tqdm", "true",
                           "--output_dir", str(tmp_path)])
    with pytest.raises(SERError, match=r"n_trials must be a whole number >= 1, got 0"):
        hyperparameter_search(run, n_trials=0)
    probe = parse_run(None, ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
                             str(assets["wav2vec2"]), "--mode", "probe", "--output_dir", str(tmp_path / "probe")])
    with pytest.raises(SERError, match=r"this run's mode is 'probe': set mode: finetune in the recipe, or pass "
                                       r"--mode finetune"):
        hyperparameter_search(probe, n_trials=2)
    build, built = FinetuneMethod.build, []

    def build_or_run_out_of_memory(self, *args, **kwargs):  # the Trainer's model first, then the trials'
        built.append(1)
        if len(built) == 3:  # once, in the first trial
            raise torch.OutOfMemoryError("CUDA out of memory (a trial's batch size too large)")
        return build(self, *args, **kwargs)

    monkeypatch.setattr(FinetuneMethod, "build", build_or_run_out_of_memory)
    hyperparameter_search(run, n_trials=2)  # the second trial fails; the search goes on and reports the first
    record = json.loads((tmp_path / "hp_search.json").read_text())
    assert record["trials"] == {"asked": 2, "complete": 1, "fail": 1}
    assert (tmp_path / SEARCH_FOLDER / JOURNAL).is_file()
    built[:] = [1] * 10  # no more failures
    best = hyperparameter_search(run, n_trials=2)  # the same search again: only the missing trial runs
    resumed_calls = len(built) - 10
    record = json.loads((tmp_path / "hp_search.json").read_text())
    assert record["trials"] == {"asked": 2, "complete": 2, "fail": 1} and record["best_run"]["run_id"] == best.run_id
    built[:] = [1] * 10
    hyperparameter_search(run, n_trials=2, seed=7)  # another search (seed): a study of its own, both trials run
    assert json.loads((tmp_path / "hp_search.json").read_text())["trials"] == {"asked": 2, "complete": 2, "fail": 0}
    assert len(built) - 10 == resumed_calls + 1  # one model more: two trials against the resumed search's one
    assert json.loads((tmp_path / "hp_search.json").read_text())["study"] != record["study"]


# --- layer-wise learning rates and the probe-initialised head ------------------------------------------

def test_layer_lr_decay_gives_lower_layers_smaller_rates(assets, split, tmp_path):
    from ser_hf.training.trainer import layerwise_parameter_groups

    model, _ = build_model(assets["whisper"], LABELS, ModelOptions(max_source_positions=50))
    groups = layerwise_parameter_groups(model, 1e-3, 0.5, 0.01)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["encoder.layers.1.fc1.weight"])] == pytest.approx(1e-3 * 0.5)
    assert rate[id(named["encoder.layers.0.fc1.weight"])] == pytest.approx(1e-3 * 0.25)
    assert rate[id(named["encoder.layer_norm.weight"])] == pytest.approx(1e-3 * 0.5)  # the top layer's norm
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    trainer = _trainer(assets, tmp_path, split["train"], layer_lr_decay=0.5)
    trainer.create_optimizer()
    assert len({g["lr"] for g in trainer.optimizer.param_groups}) >= 4
    with pytest.raises(SERError, match="layer_lr_decay"):
        _args(tmp_path, layer_lr_decay=1.5)


def _two_corpora(dataset):
    """``dataset`` with its speakers split between two corpora, 'a' and 'b'."""
    speakers = sorted(set(dataset["speaker"]))
    first = set(speakers[: len(speakers) // 2])
    return dataset.map(lambda speaker: {"corpus": "a" if speaker in first else "b"}, input_columns="speaker")


def test_head_init_from_the_probe_starts_fine_tuning_from_a_fitted_head(assets, split, tmp_path):
    options = ModelOptions(max_source_positions=50, use_weighted_layer_sum=True)
    method = FinetuneMethod(assets["whisper"], LABELS, options, _args(tmp_path, head_init="probe"))
    before = method.model.classifier.weight.detach().clone()
    method.init_head_from_probe(split["train"])
    assert not torch.equal(before, method.model.classifier.weight)
    assert method.head_fit_record["copies"] == 0
    # With a probe recipe's settings, the starting head also learns from its training copies.
    copied = FinetuneMethod(assets["whisper"], LABELS, options, _args(tmp_path, head_init="probe"),
                            warm_start=ProbeSettings(speed_copies=(1.1,), noise_copies=(20.0,), inner_folds=2))
    copied.init_head_from_probe(split["train"])
    assert copied.head_fit_record["copies"] == 2 and copied.head_fit_record["inner_folds"] <= 2
    assert not torch.equal(method.model.projector.weight, copied.model.projector.weight)  # the linear model lives there
    # Trained on two corpora, the starting head counts each the same, as the probe does.
    two = _two_corpora(split["train"])
    both = FinetuneMethod(assets["whisper"], LABELS, options, _args(tmp_path, head_init="probe"))
    both.init_head_from_probe(two)
    assert both.head_fit_record["balanced_corpora"] == ["a", "b"]
    run = parse_run(None, ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path",
                           str(assets["whisper"]), "--mode", "finetune", "--head_init", "probe",
                           "--probe_speed_copies", "0.9", "1.1", "--probe_noise_copies", "20", "--probe_inner_folds", "3",
                           "--probe_layer_mixes", "balanced", "balanced-bottom", "--output_dir", str(tmp_path)])
    settings = make_method(run, LABELS).warm_start  # what ser-hf train and cv build
    assert (settings.speed_copies, settings.noise_copies, settings.inner_folds) == ((0.9, 1.1), (20.0,), 3)
    assert settings.layer_mixes == ("balanced", "balanced-bottom")
    with pytest.raises(SERError, match="head_init: probe needs use_weighted_layer_sum"):
        FinetuneMethod(assets["whisper"], LABELS, ModelOptions(max_source_positions=50),
                       _args(tmp_path, head_init="probe")).init_head_from_probe(split["train"])


def test_a_search_stopped_in_its_first_run_resumes_and_its_study_is_what_its_trials_score(assets, tmp_path,
                                                                                         monkeypatch):
    """A search interrupted before its first record left only its journal, which the rerun refused as a user's folder;
    the study was named by every setting as typed (a trailing slash or another logging step ran every trial again) and
    by the search space's name only (an edited range resumed the old study and reported a value outside it)."""
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    from ser_hf.errors import SERError
    from ser_hf.training.finetune import FinetuneMethod
    from ser_hf.training.search import JOURNAL, SEARCH_FOLDER, _study_name, default_hp_space, hyperparameter_search

    args = ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path", str(assets["wav2vec2"]),
            "--mode", "finetune", "--num_train_epochs", "1", "--eval_strategy", "epoch", "--save_strategy", "no",
            "--disable_tqdm", "true", "--output_dir", str(tmp_path / "s")]
    run = parse_run(None, args)
    build, built = FinetuneMethod.build, []

    def build_then_stop(self, *a, **k):  # Ctrl-C in the second trial
        built.append(1)
        if len(built) == 4:
            raise KeyboardInterrupt
        return build(self, *a, **k)

    monkeypatch.setattr(FinetuneMethod, "build", build_then_stop)
    with pytest.raises(KeyboardInterrupt):
        hyperparameter_search(run, n_trials=2)
    assert not (tmp_path / "s" / "hp_search.json").exists() and (tmp_path / "s" / SEARCH_FOLDER / JOURNAL).is_file()
    built[:] = [1] * 10
    hyperparameter_search(run, n_trials=2)  # resumed, not refused as a folder of the user's files
    record = json.loads((tmp_path / "s" / "hp_search.json").read_text())
    assert record["trials"]["complete"] == 2 and (tmp_path / "s" / SEARCH_FOLDER / record["study"]).is_dir()

    same = [parse_run(None, [*args[:-1], str(tmp_path / "s") + "/"]),
            parse_run(None, [*args, "--logging_steps", "7", "--per_device_eval_batch_size", "4",
                             "--learning_rate", "0.1"])]
    assert {_study_name(other, default_hp_space, 0) for other in same} == {_study_name(run, default_hp_space, 0)}
    assert _study_name(parse_run(None, [*args, "--num_train_epochs", "2"]), default_hp_space, 0) != \
        _study_name(run, default_hp_space, 0)

    def narrow(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-4, log=True)}

    narrow_name = _study_name(run, narrow, 0)

    def narrow(trial):  # noqa: F811 - the same function, its range edited
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-2, 1e-1, log=True)}

    assert _study_name(run, narrow, 0) != narrow_name

    for damage in ("not a journal\n", "folder"):
        journal = tmp_path / "s" / SEARCH_FOLDER / JOURNAL
        journal.unlink() if journal.is_file() else None
        journal.mkdir() if damage == "folder" else journal.write_text(damage)
        with pytest.raises(SERError, match=r"its hp_search/trials.journal .*(cannot be read as the optuna journal|"
                                           r"is a folder).*move it away"):
            hyperparameter_search(run, n_trials=2)
