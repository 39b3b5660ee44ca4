"""The model factory on tiny random backbones of every supported architecture, through save and pipeline."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, HfArgumentParser, pipeline

from ser_hf.errors import ModelError, SERError
from ser_hf.models.factory import (
    SUPPORTED_MODEL_TYPES,
    ModelOptions,
    build_model,
    load_backbone_config,
    save_checkpoint,
    whisper_positions_for,
)
from ser_hf.testing.models import TINY_MODEL_TYPES, tiny_backbone

LABELS = ["neutral", "happy", "sad", "angry"]
RATE = 16000
HEAD_PREFIXES = ("projector.", "classifier.", "layer_weights")
WAV2VEC2_FAMILY = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {model_type: tiny_backbone(model_type, root / model_type) for model_type in TINY_MODEL_TYPES}


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def _direct_scores(model, extractor, wave: np.ndarray) -> dict[str, float]:
    inputs = extractor(wave, sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        probs = model.eval()(**inputs).logits[0].softmax(-1)
    return {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}


def _pipeline_scores(directory: Path, wave: np.ndarray) -> dict[str, float]:
    classifier = pipeline("audio-classification", model=str(directory), top_k=None)
    return {row["label"]: row["score"] for row in classifier(wave)}


def _trainable(model) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]


def test_every_supported_type_has_a_tiny_backbone():
    assert set(TINY_MODEL_TYPES) == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("model_type", TINY_MODEL_TYPES)
def test_round_trip_through_pipeline(backbones, tmp_path, model_type):
    model, extractor = build_model(backbones[model_type], LABELS)
    out = save_checkpoint(model, extractor, tmp_path / "ser")
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin"))
    config = AutoConfig.from_pretrained(out)
    assert config.id2label == dict(enumerate(LABELS))  # int keys after reload, not "0"
    assert config.label2id == {label: i for i, label in enumerate(LABELS)}
    wave = _wave(1.5)
    from_pipeline = _pipeline_scores(out, wave)
    assert set(from_pipeline) == set(LABELS)
    direct = _direct_scores(model, extractor, wave)
    for label in LABELS:
        assert from_pipeline[label] == pytest.approx(direct[label], abs=1e-5)


@pytest.mark.parametrize("model_type", TINY_MODEL_TYPES)
def test_freeze_backbone_leaves_only_the_head(backbones, model_type):
    model, _ = build_model(backbones[model_type], LABELS, ModelOptions(freeze_backbone=True))
    trainable = _trainable(model)
    assert trainable and all(name.startswith(HEAD_PREFIXES) for name in trainable), trainable
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_type", WAV2VEC2_FAMILY)
def test_feature_encoder_frozen_by_default_in_wav2vec2_family(backbones, model_type):
    model, _ = build_model(backbones[model_type], LABELS)
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    cnn = {name for name, _ in model.named_parameters() if ".feature_extractor." in name}
    assert cnn and frozen == cnn
    model, _ = build_model(backbones[model_type], LABELS, ModelOptions(freeze_feature_encoder=False))
    assert all(param.requires_grad for param in model.parameters())


def test_whisper_feature_encoder_is_its_conv_stem(backbones):
    model, _ = build_model(backbones["whisper"], LABELS)
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    # embed_positions is frozen by transformers itself: Whisper never trains its sinusoids.
    assert frozen == {
        "encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
        "encoder.embed_positions.weight",
    }
    model, _ = build_model(backbones["whisper"], LABELS, ModelOptions(freeze_feature_encoder=False))
    assert _trainable(model) == [n for n, _ in model.named_parameters() if n != "encoder.embed_positions.weight"]


def test_ast_trains_everything_by_default(backbones):
    model, _ = build_model(backbones["audio-spectrogram-transformer"], LABELS)
    assert all(param.requires_grad for param in model.parameters())


@pytest.mark.parametrize("model_type", [t for t in TINY_MODEL_TYPES if t != "audio-spectrogram-transformer"])
def test_weighted_layer_sum(backbones, tmp_path, model_type):
    # Whisper in variable-length mode: the combination is covered, and a 2 s input keeps the test fast.
    positions = whisper_positions_for(2) if model_type == "whisper" else None
    options = ModelOptions(use_weighted_layer_sum=True, classifier_proj_size=8, freeze_backbone=True,
                           max_source_positions=positions)
    model, extractor = build_model(backbones[model_type], LABELS, options)
    assert model.layer_weights.shape == (model.config.num_hidden_layers + 1,)
    assert model.layer_weights.requires_grad and model.projector.out_features == 8
    # A new head starts from the uniform mix (transformers 5.25 left it as uninitialised memory).
    layers = model.config.num_hidden_layers + 1
    torch.testing.assert_close(model.layer_weights.detach(), torch.full((layers,), 1.0 / layers))
    out = save_checkpoint(model, extractor, tmp_path / "ser")
    saved = json.loads((out / "config.json").read_text())
    assert saved["use_weighted_layer_sum"] is True and saved["classifier_proj_size"] == 8
    wave = _wave(1.5)
    direct = _direct_scores(model, extractor, wave)
    assert _pipeline_scores(out, wave) == pytest.approx(direct, abs=1e-5)


@pytest.mark.parametrize("model_type", WAV2VEC2_FAMILY)
def test_dropout_and_masking_are_saved_in_the_config(tmp_path, model_type):
    # A base without masking has no masked_spec_embed; the option must create it through the config.
    base = tiny_backbone(model_type, tmp_path / "base", mask_time_prob=0.0)
    options = ModelOptions(hidden_dropout=0.2, attention_dropout=0.15, layerdrop=0.0, mask_time_prob=0.3,
                           mask_time_length=4, mask_feature_prob=0.1, mask_feature_length=8)
    model, extractor = build_model(base, LABELS, options)
    assert model.base_model.masked_spec_embed is not None
    model.train()(**extractor(_wave(1.0), sampling_rate=RATE, return_tensors="pt"))  # masking runs
    config = AutoConfig.from_pretrained(save_checkpoint(model, extractor, tmp_path / "ser"))
    assert (config.hidden_dropout, config.attention_dropout, config.layerdrop) == (0.2, 0.15, 0.0)
    assert (config.mask_time_prob, config.mask_time_length, config.apply_spec_augment) == (0.3, 4, True)
    assert (config.mask_feature_prob, config.mask_feature_length) == (0.1, 8)


def test_dropout_names_per_architecture(backbones):
    options = ModelOptions(hidden_dropout=0.25, attention_dropout=0.05)
    whisper, _ = build_model(backbones["whisper"], LABELS, options)
    assert (whisper.config.dropout, whisper.config.attention_dropout) == (0.25, 0.05)
    ast, _ = build_model(backbones["audio-spectrogram-transformer"], LABELS, options)
    assert (ast.config.hidden_dropout_prob, ast.config.attention_probs_dropout_prob) == (0.25, 0.05)


def test_whisper_variable_length_checkpoint(backbones, tmp_path):
    positions = whisper_positions_for(2.0)
    model, extractor = build_model(backbones["whisper"], LABELS, ModelOptions(max_source_positions=positions))
    out = save_checkpoint(model, extractor, tmp_path / "ser")
    assert json.loads((out / "config.json").read_text())["max_source_positions"] == positions == 100
    reloaded = AutoFeatureExtractor.from_pretrained(out)
    assert (reloaded.chunk_length, reloaded.n_samples, reloaded.nb_max_frames) == (2, 32000, 200)
    base, _ = build_model(backbones["whisper"], LABELS)
    assert torch.equal(model.encoder.embed_positions.weight, base.encoder.embed_positions.weight[:positions])
    for seconds in (1.3, 3.0):  # padded, and truncated to 2 s
        wave = _wave(seconds, seed=int(seconds * 10))
        assert _pipeline_scores(out, wave) == pytest.approx(_direct_scores(model, extractor, wave), abs=1e-5)


def test_rebuilding_from_a_classifier_with_other_labels(backbones, tmp_path, caplog):
    model, extractor = build_model(backbones["hubert"], LABELS)
    out = save_checkpoint(model, extractor, tmp_path / "ser")
    with caplog.at_level(logging.WARNING, logger="ser_hf.models.factory"):
        model, _ = build_model(out, ["neutral", "angry"])
    assert model.config.num_labels == 2 and model.classifier.out_features == 2
    assert "fine-tuned for labels" in caplog.text


def test_options_parse_from_the_command_line():
    (options,) = HfArgumentParser(ModelOptions).parse_args_into_dataclasses(
        ["--freeze_backbone", "--max_source_positions", "500", "--hidden_dropout", "0.1"]
    )
    assert (options.freeze_backbone, options.max_source_positions, options.hidden_dropout) == (True, 500, 0.1)
    assert options.freeze_feature_encoder is None


# --- errors ---------------------------------------------------------------------------------------------


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match=r"model_type='bert'.*Supported model types: wav2vec2, hubert"):
        build_model(tmp_path, LABELS)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelError, match=r"not an existing directory, nor a valid Hub id.*Supported model types"):
        build_model(tmp_path / "nope" / "model", LABELS)


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        load_backbone_config(tmp_path)


def test_hub_id_not_in_cache_offline():
    with pytest.raises(ModelError, match=r"could not be loaded as a Hub id.*Offline"):
        load_backbone_config("ser-hf-tests/no-such-model")


def test_missing_feature_extractor(backbones, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((backbones["wavlm"] / name).read_bytes())
    with pytest.raises(ModelError, match="preprocessor_config.json"):
        build_model(tmp_path, LABELS)


@pytest.mark.parametrize(
    ("model_type", "options", "pattern"),
    [
        ("audio-spectrogram-transformer", ModelOptions(use_weighted_layer_sum=True),
         r"use_weighted_layer_sum=True is not supported for model_type 'audio-spectrogram-transformer'.*"
         r"Architectures with use_weighted_layer_sum: \['wav2vec2'"),
        ("audio-spectrogram-transformer", ModelOptions(freeze_feature_encoder=True), "freeze_feature_encoder=True"),
        ("whisper", ModelOptions(mask_time_prob=0.05), r"mask_time_prob=0.05 is not supported for model_type 'whisper'"),
        ("wav2vec2", ModelOptions(max_source_positions=500), r"Architectures with max_source_positions: \['whisper'\]"),
        ("whisper", ModelOptions(feat_proj_dropout=0.1), "feat_proj_dropout"),
        ("whisper", ModelOptions(max_source_positions=1550), "between 50 and the checkpoint's 1500 positions"),
    ],
)
def test_unsupported_option(backbones, model_type, options, pattern):
    with pytest.raises(ModelError, match=pattern):
        build_model(backbones[model_type], LABELS, options)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_source_positions": 175}, "multiple of 50.*whisper_positions_for"),
        ({"hidden_dropout": 1.5}, r"hidden_dropout must be a probability in \[0, 1\]"),
        ({"mask_time_length": 0}, "mask_time_length must be a positive integer"),
        ({"dtype": "float64"}, "dtype must be one of"),
        ({"freeze_backbone": True, "freeze_feature_encoder": False}, "contradicts"),
    ],
)
def test_invalid_options(kwargs, pattern):
    with pytest.raises(ModelError, match=pattern):
        ModelOptions(**kwargs)


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [(["neutral", "Happiness"], "not canonical emotion names.*canonical_emotion"),
     (["neutral", "neutral"], "at least two distinct"), (["neutral"], "at least two distinct")],
)
def test_invalid_labels(backbones, labels, pattern):
    with pytest.raises(ModelError, match=pattern):
        build_model(backbones["wav2vec2"], labels)


def test_model_error_is_an_ser_error():
    assert issubclass(ModelError, SERError) and issubclass(ModelError, ValueError)
    with pytest.raises(ModelError, match="model_type='bert' is not supported"):
        tiny_backbone("bert", "unused")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


@pytest.mark.parametrize("model_type", ["whisper", "wav2vec2"])
def test_building_a_model_logs_no_warning(backbones, model_type):
    """transformers' load report ("newly initialized" head) is expected, and hiding it made transformers 5 warn that
    no layer "was sharded" for tensor parallelism nobody asked for: a user of build_model sees neither."""
    records = _Records()
    library = logging.getLogger("transformers")  # transformers' loggers stop there (propagate=False)
    library.addHandler(records)
    try:
        build_model(backbones[model_type], LABELS)
    finally:
        library.removeHandler(records)
    assert records.messages == []


def test_saving_over_an_earlier_checkpoint_never_writes_through_its_links(backbones, tmp_path):
    """A symlink left in the folder, or a `cp -al` backup's hard links, used to receive the new files."""
    import os

    model, extractor = build_model(backbones["wav2vec2"], LABELS)
    out = save_checkpoint(model, extractor, tmp_path / "ser")
    backup = tmp_path / "backup"
    backup.mkdir()
    for path in out.iterdir():
        os.link(path, backup / path.name)  # what `cp -al` (or rsync --link-dest) makes
    kept = {path.name: path.read_bytes() for path in backup.iterdir()}
    mine = tmp_path / "mine.json"
    mine.write_text('{"mine": true}')
    (out / "preprocessor_config.json").unlink()
    (out / "preprocessor_config.json").symlink_to(mine)
    other, _ = build_model(backbones["wav2vec2"], list(reversed(LABELS)))
    save_checkpoint(other, extractor, out)
    assert mine.read_text() == '{"mine": true}' and not (out / "preprocessor_config.json").is_symlink()
    assert {path.name: path.read_bytes() for path in backup.iterdir()} == kept  # the backup is still the old model
    assert AutoConfig.from_pretrained(out).id2label[0] == LABELS[-1]


def test_an_adapter_that_does_not_fit_the_checkpoint_is_a_clear_error(tmp_path):
    """transformers applies a PEFT adapter found beside the weights; one it cannot apply raised a raw ValueError."""
    base = tiny_backbone("wav2vec2", tmp_path / "base")
    (base / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x",
                                                          "target_modules": ["q_proj"], "r": 2}))
    with pytest.raises(ModelError, match=r"could not be loaded as an audio classifier .*move the adapter files away"):
        build_model(base, ["neutral", "angry"])
