"""Partial fine-tuning: the layer-input cache, the top layers on cached states, and a standard checkpoint.

Tiny random models on a tiny synthetic corpus: predictions mean nothing, only plumbing and parity are tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

from ser_hf.audio import AudioPreprocessor, load_audio
from ser_hf.cli import main
from ser_hf.corpora import load_corpus
from ser_hf.errors import ModelError, SERError
from ser_hf.models.factory import build_model
from ser_hf.models.layer_inputs import forward_to_layer, layer_inputs
from ser_hf.models.pooling import backbone_fingerprint
from ser_hf.splits import speaker_split
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.arguments import ModelArguments, SERTrainingArguments
from ser_hf.training.partial import PartialMethod, PartialTrainer, StateCollator, StateMasking
from ser_hf.training.probe import ProbeSettings
from ser_hf.training.recipes import parse_run

pytestmark = pytest.mark.usefixtures("single_torch_thread")

STABLE = {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}
# (model type, tiny config overrides, model options): both wav2vec2 layer-norm placements, the weighted layer
# sum and the last hidden state.
VARIANTS = {
    "whisper": ("whisper", {}, {"max_source_positions": 50}),
    "wav2vec2": ("wav2vec2", {}, {}),
    "wav2vec2-stable": ("wav2vec2", STABLE, {}),
    "hubert-last-state": ("hubert", {}, {"use_weighted_layer_sum": False}),
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partial")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    dataset = load_corpus("urdu", corpus)
    return {"tmp": tmp, "corpus": corpus, "dataset": dataset, "labels": dataset.features["label"].names,
            "split": speaker_split(dataset, test_size=0.2, validation_size=0.2, seed=0)}


def _args(tmp_path, **values) -> SERTrainingArguments:
    defaults = {"output_dir": str(tmp_path / "out"), "num_train_epochs": 2, "per_device_train_batch_size": 8,
                "learning_rate": 1e-3, "disable_tqdm": True, "logging_steps": 1, "seed": 0}
    return SERTrainingArguments(**{**defaults, **values})


def _method(assets, tmp_path, variant="whisper", top_layers=1, **args) -> PartialMethod:
    model_type, overrides, options = VARIANTS[variant]
    base = tiny_backbone(model_type, tmp_path / f"base-{variant}", **overrides)
    return PartialMethod(base, assets["labels"], ModelArguments(train_top_layers=top_layers, **options),
                         _args(tmp_path, **args), cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_saved_checkpoint_predicts_what_the_partial_model_predicts(assets, tmp_path, variant):
    split = assets["split"]
    method = _method(assets, tmp_path, variant, head_init="probe", partial_mixup_alpha=0.4)
    method.fit(split["train"], split["validation"])
    test = split["test"].select(range(3))
    cached = method.predict_proba(test)
    classify = pipeline("audio-classification", model=str(method.save(tmp_path / "model")))
    labels = assets["labels"]
    for row in range(len(test)):
        wave = load_audio(test[row]["audio"])
        scores = {r["label"]: r["score"] for r in classify(wave, top_k=None)}
        served = np.array([scores[name] for name in labels])
        # The partial model on this clip's float32 layer input: what the checkpoint must reproduce.
        (state, lower), = forward_to_layer(method.model, method.feature_extractor, [wave], method.layer)
        with torch.no_grad():
            logits = method.top.eval()(torch.from_numpy(state)[None], lower=torch.from_numpy(lower)[None]).logits
        np.testing.assert_allclose(served, torch.softmax(logits, -1)[0].numpy(), atol=1e-4)
        # predict_proba reads the float16 cache: the same up to that rounding.
        np.testing.assert_allclose(served, cached[row], atol=2e-3)


def test_only_the_top_layers_and_the_head_change(assets, tmp_path):
    split = assets["split"]
    method = _method(assets, tmp_path, "wav2vec2")
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    # Without validation speakers the last epoch is kept (with them, a starting point no epoch beats is kept, and
    # on these tiny random states nothing would show what trained).
    method.fit(split["train"], None)
    saved = load_file(str(method.save(tmp_path / "model") / "model.safetensors"))
    changed = sorted({name.split(".")[0] if "layers" not in name else ".".join(name.split(".")[:4])
                      for name, value in saved.items() if not torch.equal(value, before[name])})
    assert changed == ["classifier", "layer_weights", "projector", "wav2vec2.encoder.layers.1"]
    assert method.training_report["trainable_parameters"] == sum(p.numel() for p in method.top.parameters())


def test_layer_inputs_are_cached_once_and_reused(assets, tmp_path, monkeypatch):
    model, extractor = build_model(tiny_backbone("whisper", tmp_path / "base"), ["neutral", "angry"])
    paths = assets["dataset"]["audio"][:5]
    first = layer_inputs(model, extractor, paths, 1, cache_dir=tmp_path / "cache", progress=False)
    assert first.computed == 5 and first.states[0].dtype == np.float16 and first.states[0].shape == (1500, 32)
    assert first.lower[0].shape == (2, 32) and first.bytes == sum(p.stat().st_size for p in first.folder.iterdir())
    # Keyed like the pooled cache (backbone, preprocessing, clip), plus the layer.
    assert first.folder == (tmp_path / "cache" / backbone_fingerprint(model, extractor) / AudioPreprocessor().fingerprint()
                            / "layer-1-input")
    assert len(list(first.folder.glob("*.pooled.npy"))) == 5 and len(list(first.folder.iterdir())) == 10

    def no_forward(*args, **kwargs):
        raise AssertionError("the encoder ran although every clip was cached")

    monkeypatch.setattr("ser_hf.models.layer_inputs.forward_to_layer", no_forward)
    again = layer_inputs(model, extractor, paths, 1, cache_dir=tmp_path / "cache", progress=False)
    assert again.computed == 0
    for a, b in zip(first.states, again.states):
        np.testing.assert_array_equal(a, b)


def test_another_layer_or_fold_shares_the_cache_where_it_should(assets, tmp_path):
    split = assets["split"]
    first = _method(assets, tmp_path, "whisper", num_train_epochs=1)
    first.fit(split["train"])
    assert first.cache_report["computed"] == len(split["train"]) and first.cache_report["bytes"] > 0
    second = _method(assets, tmp_path, "whisper", num_train_epochs=1)  # a new fold: a fresh model, same backbone
    second.fit(split["train"])
    assert second.cache_report["computed"] == 0 and second.cache_report["clips"] == len(split["train"])
    deeper = _method(assets, tmp_path, "whisper", top_layers=2, num_train_epochs=1)
    one_per_class = [list(split["train"]["label"]).index(label) for label in range(len(assets["labels"]))]
    deeper.fit(split["train"].select(one_per_class))
    assert deeper.cache_report["computed"] == 4 and deeper.cache_report["folder"].endswith("layer-0-input")


def test_train_top_layers_out_of_range_names_the_setting_and_the_depth(assets, tmp_path):
    with pytest.raises(SERError, match=r"train_top_layers must be between 1 and the model's number of encoder layers "
                                       r"\(2 for this whisper checkpoint\), got 3"):
        _method(assets, tmp_path, "whisper", top_layers=3)
    with pytest.raises(SERError, match=r"ModelArguments.train_top_layers must be a positive integer"):
        ModelArguments(train_top_layers=0)


def test_unsupported_architectures_and_settings_are_refused(assets, tmp_path):
    base = tiny_backbone("wavlm", tmp_path / "wavlm")
    with pytest.raises(ModelError, match=r"mode: partial cannot split model type 'wavlm': its layers pass on a "
                                         r"relative position bias"):
        PartialMethod(base, assets["labels"], ModelArguments(), _args(tmp_path))
    with pytest.raises(SERError, match=r"use_lora is for mode: finetune"):
        _method(assets, tmp_path, "whisper", use_lora=True)


def test_early_stopping_on_validation_ua(assets, tmp_path):
    split = assets["split"]
    method = _method(assets, tmp_path, "whisper", num_train_epochs=20, learning_rate=1e-12,
                     early_stopping_patience=1, partial_mask_time_prob=0.0)
    method.fit(split["train"], split["validation"])
    assert method.training_report["epochs"] == 2  # no better validation UA after the first epoch
    assert method.training_report["kept"] == "starting point"  # epoch 0 counts: training never beat it
    assert method.trainer.args.load_best_model_at_end and method.trainer.args.metric_for_best_model == \
        "unweighted_accuracy"


def test_collator_masks_pads_and_mixes_only_in_training(tmp_path):
    rng = np.random.default_rng(0)
    store = {f"{i}.wav": (rng.standard_normal((n, 8)).astype(np.float16), np.ones((2, 8), np.float32))
             for i, n in enumerate((30, 20, 30, 25))}
    rows = [{"audio": path, "label": i % 2} for i, path in enumerate(store)]
    collator = StateCollator(store, masking=StateMasking(time_prob=0.3, time_length=5, feature_prob=0.25,
                                                         feature_length=2), mixup_alpha=0.4, seed=0)
    plain = collator(rows)
    assert plain["states"].shape == (4, 30, 8) and plain["attention_mask"].sum(1).tolist() == [30, 20, 30, 25]
    np.testing.assert_array_equal(plain["states"][1, :20].numpy(), store["1.wav"][0].astype(np.float32))
    assert "mix_labels" not in plain and plain["lower"].shape == (4, 2, 8)
    training = collator.for_training()
    masked = training(rows)
    assert set(masked) == {"states", "attention_mask", "lower", "labels", "mix_labels", "mix_weight"}
    np.testing.assert_array_equal(masked["states"].numpy(), training(rows)["states"].numpy())  # replayable
    training.set_epoch(1)
    assert not np.array_equal(masked["states"].numpy(), training(rows)["states"].numpy())
    masking_only = StateCollator(store, masking=StateMasking(time_prob=0.3, time_length=5), seed=0).for_training()
    states = masking_only(rows)["states"][0].numpy()
    zeroed = (states == 0).all(axis=1)
    assert 5 <= zeroed.sum() < 30 and (states[~zeroed] == store["0.wav"][0].astype(np.float32)[~zeroed]).all()


def test_mixup_loss_is_the_weighted_cross_entropy_of_both_targets(assets, tmp_path):
    trainer = PartialTrainer.__new__(PartialTrainer)
    trainer.class_weights = torch.tensor([1.0, 3.0])

    class Logits(torch.nn.Module):
        def forward(self, states):
            return {"logits": states[:, :2]}

    states = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])
    labels, other = torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0])
    loss = trainer.compute_loss(Logits(), {"states": states, "labels": labels, "mix_labels": other,
                                           "mix_weight": torch.ones(3)})
    expected = torch.nn.functional.cross_entropy(states, labels, weight=trainer.class_weights)
    torch.testing.assert_close(loss, expected)
    # Per-clip loss weights (several corpora) replace the class weights, each target with its own clip's weight.
    own, mixed_in, mix = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([2.0, 0.5, 1.0]), torch.tensor([0.7, 0.4, 1.0])
    loss = trainer.compute_loss(Logits(), {"states": states, "labels": labels, "mix_labels": other, "mix_weight": mix,
                                           "loss_weights": own, "mix_loss_weights": mixed_in})
    ce = torch.nn.functional.cross_entropy
    losses = mix * own * ce(states, labels, reduction="none") + \
        (1 - mix) * mixed_in * ce(states, other, reduction="none")
    expected = losses.sum() / (mix * own + (1 - mix) * mixed_in).sum()
    torch.testing.assert_close(loss, expected)


def test_state_collator_carries_loss_weights_and_mixes_them_with_the_clips(assets):
    store = {f"{i}.wav": (np.full((4, 3), float(i), dtype=np.float32), None) for i in range(4)}
    rows = [{"audio": f"{i}.wav", "label": i % 2, "loss_weight": float(i + 1)} for i in range(4)]
    batch = StateCollator(store)(rows)
    np.testing.assert_allclose(batch["loss_weights"].numpy(), [1, 2, 3, 4])
    mixed = StateCollator(store, mixup_alpha=0.4, seed=0).for_training()(rows)
    # Clip i's states are all i, so a mixed row's value tells which clip was mixed in; its weight travels with it.
    lam, value = mixed["mix_weight"].numpy(), mixed["states"][:, 0, 0].numpy()
    partner = np.rint((value - lam * np.arange(4)) / (1 - lam)).astype(int)
    np.testing.assert_array_equal(mixed["mix_labels"].numpy(), partner % 2)
    np.testing.assert_allclose(mixed["mix_loss_weights"].numpy(), partner + 1.0)


def test_cv_and_train_run_mode_partial_from_the_command_line(assets, tmp_path, capsys):
    backbone = tiny_backbone("whisper", tmp_path / "tiny-whisper")
    common = ["--corpus", "urdu", "--data_dir", str(assets["corpus"]), "--model_name_or_path", str(backbone),
              "--max_source_positions", "50", "--mode", "partial", "--train_top_layers", "1",
              "--num_train_epochs", "1", "--learning_rate", "1e-3", "--num_folds", "2", "--disable_tqdm", "true",
              "--embedding_cache_dir", str(tmp_path / "cache")]
    assert main(["cv", *common, "--output_dir", str(tmp_path / "cv")]) == 0
    summary = json.loads((tmp_path / "cv" / "cv" / "cv_summary.json").read_text())
    assert summary["settings"]["model"]["mode"] == "partial"
    assert main(["train", *common, "--output_dir", str(tmp_path / "model")]) == 0
    clip = load_audio(assets["dataset"][0]["audio"])
    assert len(pipeline("audio-classification", model=str(tmp_path / "model"))(clip)) > 0
    capsys.readouterr()


def test_the_ravdess_partial_recipe_parses():
    run = parse_run(Path(__file__).resolve().parents[1] / "recipes" / "ravdess" / "whisper-base-partial.yaml")
    assert (run.model.mode, run.model.train_top_layers, run.model.max_source_positions) == ("partial", 1, 300)
    assert run.training.early_stopping_patience and run.training.class_weighted_loss


def test_the_starting_point_is_kept_when_no_epoch_beats_it_on_validation(assets, tmp_path, monkeypatch):
    split = assets["split"]
    method = _method(assets, tmp_path, "wav2vec2", head_init="probe", learning_rate=1e-2)
    starting_point = PartialMethod._starting_point

    def unbeatable(trainer):
        value, state = starting_point(trainer)
        return 1.0, state  # no epoch can reach a validation UA above 1

    monkeypatch.setattr(PartialMethod, "_starting_point", staticmethod(unbeatable))
    method.fit(split["train"], split["validation"])
    assert method.training_report["kept"] == "starting point" and method.training_report["starting_validation_ua"] == 1
    # The top layers are the pretrained ones again, so the model is the probe, whose head is then fitted on the
    # validation speakers too (they were held out only to choose an epoch), with its own inner-CV temperature.
    assert method.training_report["head_refitted_with_validation"] and method.calibration is None
    everyone = datasets.concatenate_datasets([split["train"], split["validation"]])
    probe = _method(assets, tmp_path, "wav2vec2", head_init="probe")
    probe.top = probe.build_top()
    probe.init_head_from_probe(everyone, probe.store(everyone))
    for name, value in probe.top.state_dict().items():
        torch.testing.assert_close(method.top.state_dict()[name], value)
    assert method.head_fit_record == probe.head_fit_record
    # Without head_init: probe there is no probe to refit: the starting point is kept as it was, then calibrated.
    plain = _method(assets, tmp_path, "wav2vec2", learning_rate=1e-2)
    plain.fit(split["train"], split["validation"])
    assert plain.training_report["kept"] == "starting point"
    assert not plain.training_report["head_refitted_with_validation"] and plain.calibration is not None


def test_head_init_from_the_probe_trains_on_the_probe_recipes_copies(assets, tmp_path):
    """The starting head is the probe recipe's fit: its copies' layer inputs are cached apart and trained on."""
    split = assets["split"]
    plain = _method(assets, tmp_path, "wav2vec2", head_init="probe")
    copied = _method(assets, tmp_path, "wav2vec2", head_init="probe")
    copied.warm_start = ProbeSettings(speed_copies=(1.1,), noise_copies=(20.0,), inner_folds=2)
    for method in (plain, copied):
        method.top = method.build_top()
        method.init_head_from_probe(split["train"], method.store(split["train"]))
    assert (plain.head_fit_record["copies"], copied.head_fit_record["copies"]) == (0, 2)
    assert copied.head_fit_record["inner_folds"] <= 2
    assert copied.cache_report["clips"] == 3 * len(split["train"])  # each clip and its two copies
    # Trained on two corpora, the starting head counts each the same, as the probe does.
    speakers = sorted(set(split["train"]["speaker"]))
    two = split["train"].map(lambda speaker: {"corpus": "a" if speaker in speakers[: len(speakers) // 2] else "b"},
                             input_columns="speaker")
    both = _method(assets, tmp_path, "wav2vec2", head_init="probe")
    both.top = both.build_top()
    both.init_head_from_probe(two, both.store(two))
    assert both.head_fit_record["balanced_corpora"] == ["a", "b"]
    assert not torch.equal(plain.top.projector.weight, copied.top.projector.weight)  # the linear model lives there
