"""Checkpoints whose files do not fit together: each must raise ModelError naming the file and the fix, before any
large allocation, and never load with random layers.

Covers the checks of :mod:`ser_hf.models.checkpoint_check` through every loader that uses them: ``load_classifier``
(and so ``EmotionRecognizer``, ``ser-hf predict/evaluate/serve``, ONNX export), ``build_model`` (backbones), the
ONNX runtime loader, ``ser_hf_run.json`` (``read_run_record``) and saved baselines (``baseline_config.json``,
``model.skops``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from transformers import AutoModelForAudioClassification

from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.features import feature_names
from ser_hf.baseline.model import CONFIG_NAME, MODEL_NAME, BaselineModel, load_baseline
from ser_hf.checkpoint import read_run_record as training_record
from ser_hf.errors import ModelError
from ser_hf.inference.onnx_runtime import load_onnx_classifier
from ser_hf.inference.predict import load_classifier
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.checkpoint_check import check_checkpoint, safetensors_header
from ser_hf.models.factory import build_model
from ser_hf.testing.models import TINY_MODEL_TYPES, tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("checks")
    return {
        "wav2vec2": tiny_classifier("wav2vec2", tmp / "wav2vec2", FOUR),
        "whisper": tiny_classifier("whisper", tmp / "whisper", FOUR),
        "wav2vec2-backbone": tmp / "wav2vec2" / "backbone",
        "whisper-backbone": tmp / "whisper" / "backbone",
    }


@pytest.fixture
def no_allocation(monkeypatch):
    """Fail the test if from_pretrained (which allocates the model) is reached at all."""
    def refuse(*args, **kwargs):
        raise AssertionError("from_pretrained was called: the check came after the allocation")

    monkeypatch.setattr(AutoModelForAudioClassification, "from_pretrained", refuse)


def _copy(made, name: str, target: Path) -> Path:
    shutil.copytree(made[name], target)
    return target


def _edit_config(folder: Path, drop: tuple[str, ...] = (), **values) -> Path:
    config = json.loads((folder / "config.json").read_text())
    for key in drop:
        config.pop(key, None)
    config.update(values)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _drop_tensors(folder: Path, *prefixes: str) -> Path:
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith(prefixes)}, folder / "model.safetensors",
              metadata={"format": "pt"})
    return folder


def _split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _write(path: Path, header_text: str | bytes, data: bytes, length: int | None = None) -> None:
    header = header_text.encode() if isinstance(header_text, str) else header_text
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)


# --- valid checkpoints still load ----------------------------------------------------------------------

@pytest.mark.parametrize("model_type", TINY_MODEL_TYPES)
def test_every_architecture_passes_the_checks(tmp_path, model_type):
    path = tiny_classifier(model_type, tmp_path, FOUR)
    check_checkpoint(path)
    check_checkpoint(tmp_path / "backbone", backbone=True)
    assert list(load_classifier(path)[0].config.id2label.values()) == FOUR


def test_a_sharded_checkpoint_loads_and_a_shard_outside_it_is_refused(made, tmp_path):
    model, extractor = load_classifier(made["wav2vec2"])
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="40KB")
    extractor.save_pretrained(sharded)
    assert (sharded / "model.safetensors.index.json").is_file() and not (sharded / "model.safetensors").exists()
    assert load_classifier(sharded)[0].config.num_labels == 4
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "../elsewhere.safetensors"
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match=r"index\.json names shard '\.\./elsewhere\.safetensors', which is not a "
                                         r"\.safetensors file in"):
        load_classifier(sharded)


# --- missing weights -----------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["wav2vec2", "whisper"])
@pytest.mark.parametrize("dropped", [("classifier.",), ("projector.",), ("classifier.weight",),
                                     ("classifier.", "projector.")])
def test_missing_head_weights_are_refused_not_randomised(made, tmp_path, model_type, dropped, no_allocation):
    path = _drop_tensors(_copy(made, model_type, tmp_path / "headless"), *dropped)
    for load in (load_classifier, EmotionRecognizer.from_pretrained):
        with pytest.raises(ModelError, match=r"headless': the weights lack the classification head \[.*"
                                             rf"'{dropped[0]}.*would be random.*save it again"):
            load(path)


def test_missing_body_weights_are_refused(made, tmp_path):
    path = _drop_tensors(_copy(made, "wav2vec2", tmp_path / "bodyless"), "wav2vec2.encoder.layers.1.")
    with pytest.raises(ModelError, match=r"bodyless': config.json describes [\d,]+ parameters .* but the weights hold"):
        load_classifier(path)
    backbone = _drop_tensors(_copy(made, "wav2vec2-backbone", tmp_path / "backbone"), "encoder.layers.1.")
    with pytest.raises(ModelError, match=r"backbone': config.json describes [\d,]+ parameters"):
        build_model(backbone, FOUR)


def _rename_tensor(folder: Path, old: str, new: str) -> Path:
    tensors = load_file(folder / "model.safetensors")
    tensors[new] = tensors.pop(old)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_a_weight_stored_under_another_name_is_refused_after_loading(made, tmp_path):
    # Same size on disk, so only transformers' loading report shows the layer would be random.
    path = _rename_tensor(_copy(made, "wav2vec2", tmp_path / "renamed"),
                          "wav2vec2.encoder.layers.1.attention.k_proj.weight", "unused.k_proj.weight")
    with pytest.raises(ModelError, match=r"renamed' loaded with layers that would be random \(missing from the "
                                         r"weights: \['wav2vec2\.encoder\.layers\.1\.attention\.k_proj\.weight'\]"):
        load_classifier(path)
    backbone = _rename_tensor(_copy(made, "wav2vec2-backbone", tmp_path / "backbone"),
                              "encoder.layers.1.attention.k_proj.weight", "unused.k_proj.weight")
    with pytest.raises(ModelError, match=r"backbone' loaded with layers that would be random"):
        build_model(backbone, FOUR)


@pytest.mark.parametrize("model_type,edit,unused", [
    ("whisper", {"encoder_layers": 1}, "encoder.layers.1."),  # as "use_weighted_layer_sum: false" on a shipped
                                                               # model: loaded "fine", predicted another emotion
    ("wav2vec2", {"num_hidden_layers": 1}, "wav2vec2.encoder.layers.1."),  # one layer of the file silently dropped
])
def test_config_edits_that_leave_stored_weights_unused_are_refused(made, tmp_path, model_type, edit, unused):
    path = _edit_config(_copy(made, model_type, tmp_path / "edited"), **edit)
    for load in (load_classifier, EmotionRecognizer.from_pretrained):
        with pytest.raises(ModelError, match=rf"edited' loaded with layers that would be random \(in the weights but "
                                             rf"unused by config\.json's model: \[.*'{re.escape(unused)}"):
            load(path)


def test_a_checkpoint_folder_whose_name_is_not_utf8_is_named_not_a_traceback(made, tmp_path):
    folder = os.fsdecode(os.fsencode(str(tmp_path)) + b"/mod\xffel")
    shutil.copytree(made["wav2vec2"], folder)
    with pytest.raises(ModelError, match=r"mod\\xffel': its path is not valid UTF-8.*Rename the folder"):
        load_classifier(folder)


# --- config.json edits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type,edit,pattern", [
    ("wav2vec2", {"num_hidden_layers": 4000}, r"describes a model of more than \d+ tensors, but the weights hold \d+ "
                                              r"\(num_hidden_layers=4000"),
    ("whisper", {"encoder_layers": 4000}, r"more than \d+ tensors.*encoder_layers=4000"),
    ("wav2vec2", {"hidden_size": 2**20, "intermediate_size": 2**20}, r"describes [\d,]+ parameters \([\d.]+ GiB in "
                                                                     r"float32\), but the weights hold [\d,]+"),
    ("whisper", {"d_model": 2**16, "encoder_ffn_dim": 2**20}, r"GiB in float32\), but the weights hold"),
    ("wav2vec2", {"classifier_proj_size": 10**7}, r"GiB in float32\).*classifier_proj_size=10000000"),
    ("wav2vec2", {"intermediate_size": 16}, r"implies wav2vec2\.encoder\.layers\.0\.feed_forward\.intermediate_dense"
                                            r"\.weight of shape \[16, 32\], but model\.safetensors holds \[64, 32\]"),
    ("wav2vec2", {"hidden_size": "32"}, r"config\.json cannot be used \(.*hidden_size"),
    ("whisper", {"max_source_positions": -5}, r"max_source_positions=-5, expected 1-1500"),
])
def test_config_edits_are_refused_before_anything_is_allocated(made, tmp_path, no_allocation, model_type, edit,
                                                                pattern):
    path = _edit_config(_copy(made, model_type, tmp_path / "edited"), **edit)
    with pytest.raises(ModelError, match=pattern):
        load_classifier(path)


@pytest.mark.parametrize("model_type,edit,pattern", [
    ("whisper-backbone", {"encoder_layers": 4000}, r"more than \d+ tensors, but the weights hold \d+"),
    ("wav2vec2-backbone", {"hidden_size": 4096, "intermediate_size": 2**20}, r"GiB in float32\), but the weights hold"),
    ("wav2vec2-backbone", {"num_labels": 10**9}, r"config\.json: num_labels is 1000000000; expected an integer from 1"),
    ("wav2vec2-backbone", {"conv_dim": [32] * 3, "conv_stride": [5, 8, 8], "conv_kernel": [10, 8, 8],
                           "intermediate_size": 65}, r"implies .*intermediate_dense\.weight of shape \[65, 32\]"),
])
def test_backbone_config_edits_are_refused_before_anything_is_allocated(made, tmp_path, no_allocation, model_type,
                                                                         edit, pattern):
    path = _edit_config(_copy(made, model_type, tmp_path / "edited"), **edit)
    with pytest.raises(ModelError, match=pattern):
        build_model(path, FOUR)


def test_huge_num_labels_is_refused_before_transformers_builds_its_labels(made, tmp_path, python_memory_peak):
    path = _edit_config(_copy(made, "wav2vec2", tmp_path / "many"), drop=("id2label", "label2id"), num_labels=10**9)
    with python_memory_peak() as peak, pytest.raises(
            ModelError, match=r"many/config\.json: num_labels is 1000000000; expected an integer from 1 to"):
        load_classifier(path)
    assert peak["megabytes"] < 50  # a billion labels would be tens of gigabytes of Python strings


@pytest.mark.parametrize("text,pattern", [
    ("{not json", r"config\.json is not valid JSON \(.*\)\. Restore the config\.json"),
    ("[1, 2]", r"config\.json must hold a JSON object, found list"),
    ('{"model_type": "wav2vec2", "model_type": "hubert"}', r"config\.json: key\(s\) \['model_type'\] appear more"),
])
def test_a_broken_config_json_is_named(made, tmp_path, text, pattern):
    for name, load in (("wav2vec2", load_classifier), ("wav2vec2-backbone", lambda p: build_model(p, FOUR))):
        path = _copy(made, name, tmp_path / name)
        (path / "config.json").write_text(text)
        with pytest.raises(ModelError, match=pattern):
            load(path)


# --- labels against the classifier ---------------------------------------------------------------------

@pytest.mark.parametrize("edit,pattern", [
    ({"id2label": {str(i): f"e{i}" for i in range(8)}, "label2id": {f"e{i}": i for i in range(8)}},
     r"implies classifier\.weight of shape \[8, 256\], but model\.safetensors holds \[4, 256\] .*id2label names 8"),
    ({"id2label": {"0": "neutral", "1": "happy"}, "label2id": {"neutral": 0, "happy": 1}},
     r"implies classifier\.weight of shape \[2, 256\], but model\.safetensors holds \[4, 256\]"),
    ({"id2label": {"0": "neutral", "5": "angry"}}, r"id2label has keys \['0', '5'\]; expected every class id 0 \.\. 1"),
    ({"id2label": {"1": "a", "2": "b", "3": "c", "4": "d"}}, r"id2label has keys \['1', '2', '3', '4'\]"),
    ({"id2label": {"zero": "a", "1": "b"}}, r"id2label has keys \['1', 'zero'\]"),
    ({"id2label": {"0": "sad", "1": "sad", "2": "a", "3": "b"}}, r"id2label names must be distinct non-empty strings"),
    ({"id2label": {"0": 1, "1": "b", "2": "c", "3": "d"}}, r"id2label names must be distinct non-empty strings"),
    ({"num_labels": 3}, r"num_labels is 3 but id2label names 4 classes"),
    ({"id2label": []}, r"id2label must map 1 to \d+ class ids to names"),
    # printed in terminal tables, Markdown reports and plots: one short line each
    ({"id2label": {"0": "hap\npy", "1": "b", "2": "c", "3": "d"}},
     r"id2label names must be one line of at most 200 characters without control characters .*found \['hap\\\\npy'\]"),
    ({"id2label": {"0": "a\tb", "1": "b", "2": "c", "3": "\x7f"}}, r"without control characters"),
    ({"id2label": {"0": "x" * 201, "1": "b", "2": "c", "3": "d"}}, r"one line of at most 200 characters"),
])
def test_labels_that_do_not_match_the_classifier_are_refused(made, tmp_path, no_allocation, edit, pattern):
    path = _edit_config(_copy(made, "wav2vec2", tmp_path / "labels"), **edit)
    for load in (load_classifier, EmotionRecognizer.from_pretrained):
        with pytest.raises(ModelError, match=pattern):
            load(path)


def test_onnx_exports_check_their_labels_before_running_anything(made, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copyfile(made["wav2vec2"] / name, export / name)
    (export / "model.onnx").write_bytes(b"not reached")
    _edit_config(export, id2label={"0": "neutral", "7": "angry"})
    with pytest.raises(ModelError, match=r"export/config\.json: id2label has keys \['0', '7'\]"):
        load_onnx_classifier(export)


def _fake_export(made, folder: Path, classes: int) -> Path:
    """An export directory whose model.onnx passes its input through as ``classes`` logits."""
    onnx = pytest.importorskip("onnx")
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copyfile(made["wav2vec2"] / name, folder / name)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["input_values"], ["logits"])], "g",
        [onnx.helper.make_tensor_value_info("input_values", onnx.TensorProto.FLOAT, ["batch", classes])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", classes])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), folder / "model.onnx")
    return folder


def test_an_onnx_graph_with_another_number_of_classes_is_refused(made, tmp_path):
    export = _fake_export(made, tmp_path / "export", classes=3)
    with pytest.raises(ModelError, match=r"model\.onnx outputs 3 logits per clip, but .*config\.json names 4 classes"):
        load_onnx_classifier(export)
    assert load_onnx_classifier(_fake_export(made, tmp_path / "fine", classes=4))[0].config.num_labels == 4


# --- preprocessor_config.json --------------------------------------------------------------------------

@pytest.mark.parametrize("model_type,edit,pattern", [
    ("whisper", {"n_fft": 2**30}, r"n_fft must be an integer in \[16, 65536\], got 1073741824"),
    ("whisper", {"feature_size": 10**7}, r"feature_size must be an integer in \[1, 4096\], got 10000000"),
    ("whisper", {"chunk_length": 10**6}, r"chunk_length must be an integer in \[1, 30\], got 1000000"),
    ("whisper", {"hop_length": 0}, r"hop_length must be an integer in \[1, 65536\], got 0"),
    ("whisper", {"chunk_length": 10}, r"pads audio to 1000 mel frames, but config\.json's max_source_positions=1500 "
                                      r"needs 3000: every clip would fail"),
    ("wav2vec2", {"sampling_rate": 10**12}, r"sampling_rate must be an integer in \[1000, 384000\]"),
    ("wav2vec2", {"sampling_rate": "16000"}, r"sampling_rate must be an integer in \[1000, 384000\], got '16000'"),
    ("wav2vec2", {"padding_value": float("nan")}, r"padding_value must be a finite number, got nan"),
])
def test_preprocessor_settings_that_would_allocate_without_bound_are_refused(made, tmp_path, no_allocation,
                                                                             model_type, edit, pattern):
    path = _copy(made, model_type, tmp_path / "model")
    settings = json.loads((path / "preprocessor_config.json").read_text())
    (path / "preprocessor_config.json").write_text(json.dumps({**settings, **edit}))
    with pytest.raises(ModelError, match=r"preprocessor_config\.json: .*" + pattern):
        load_classifier(path)


def test_preprocessor_settings_are_checked_for_backbones_and_onnx_exports(made, tmp_path):
    backbone = _copy(made, "whisper-backbone", tmp_path / "backbone")
    settings = json.loads((backbone / "preprocessor_config.json").read_text())
    (backbone / "preprocessor_config.json").write_text(json.dumps({**settings, "n_fft": 2**30}))
    with pytest.raises(ModelError, match=r"backbone/preprocessor_config\.json: n_fft must be"):
        build_model(backbone, FOUR)
    export = _fake_export(made, tmp_path / "export", classes=4)
    (export / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "ASTFeatureExtractor",
                                                                  "num_mel_bins": 10**8}))
    with pytest.raises(ModelError, match=r"export/preprocessor_config\.json: num_mel_bins must be"):
        load_onnx_classifier(export)


# --- corrupt safetensors -------------------------------------------------------------------------------

def _corrupt(path: Path, kind: str) -> None:
    header, data = _split(path)
    raw = path.read_bytes()
    name = sorted(k for k in header if k != "__metadata__")[0]
    text = json.dumps(header)
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "short":
        path.write_bytes(raw[:5])
    elif kind == "huge header length":
        _write(path, text, data, length=2**62)
    elif kind == "header beyond the file":
        _write(path, text, b"", length=len(text) + 1000)
    elif kind == "header not JSON":
        _write(path, b"\xff" + text.encode()[1:], data)
    elif kind == "header a list":
        _write(path, "[]", b"")
    elif kind == "duplicate tensor":
        _write(path, text[:-1] + f', "{name}": ' + json.dumps(header[name]) + "}", data)
    else:
        entry = header[name]
        if kind == "bad dtype":
            entry["dtype"] = "F128"
        elif kind == "negative shape":
            entry["shape"] = [-1, *entry["shape"][1:]]
        elif kind == "shape and offsets disagree":
            entry["shape"] = [dim * 2 for dim in entry["shape"]] or [2]
        elif kind == "offsets past the end":
            entry["data_offsets"] = [entry["data_offsets"][0], len(data) + 4]
        elif kind == "overlapping tensors":
            others = sorted((v["data_offsets"], k) for k, v in header.items() if k not in ("__metadata__", name))
            entry["data_offsets"] = others[0][0]
            entry["shape"], entry["dtype"] = header[others[0][1]]["shape"], header[others[0][1]]["dtype"]
        elif kind == "trailing bytes":
            data += b"\0" * 16
        _write(path, json.dumps(header), data)


@pytest.mark.parametrize("kind,pattern", [
    ("truncated", r"is truncated: tensor '.*' ends at byte \d+ of the data, but the file holds only \d+ bytes"),
    ("empty", r"is 0 bytes, too short for a safetensors file"),
    ("short", r"is 5 bytes, too short for a safetensors file"),
    ("huge header length", r"claims a 4611686018427387904-byte header, beyond safetensors' limit"),
    ("header beyond the file", r"claims a \d+-byte header, beyond the file's size"),
    ("header not JSON", r"model\.safetensors is not valid JSON"),
    ("header a list", r"model\.safetensors must hold a JSON object, found list"),
    ("duplicate tensor", r"model\.safetensors: key\(s\) \['.*'\] appear more than once"),
    ("bad dtype", r"has dtype 'F128'; safetensors dtypes are"),
    ("negative shape", r"has shape \[-1.*\]; expected a list of non-negative integers"),
    ("shape and offsets disagree", r"needs \d+ bytes but its offsets span \d+"),
    ("offsets past the end", r"is truncated: tensor"),
    ("overlapping tensors", r"starts at byte \d+ of the data, expected \d+ \(tensors overlap or leave gaps\)"),
    ("trailing bytes", r"its tensors cover \d+ bytes but the data section holds \d+"),
])
def test_corrupt_safetensors_are_refused_from_the_header(made, tmp_path, no_allocation, kind, pattern):
    for name, load in (("wav2vec2", load_classifier), ("wav2vec2-backbone", lambda p: build_model(p, FOUR))):
        path = _copy(made, name, tmp_path / name)
        _corrupt(path / "model.safetensors", kind)
        with pytest.raises(ModelError, match=pattern):
            load(path)


def test_a_valid_header_reads_without_the_data(made):
    header = safetensors_header(made["wav2vec2"] / "model.safetensors")
    assert header["classifier.weight"].shape == (4, 256) and header["classifier.weight"].dtype == "F32"


# --- ser_hf_run.json -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,pattern", [
    ("not json", r"ser_hf_run\.json is not valid JSON"),
    ("[1]", r"ser_hf_run\.json must hold a JSON object, found list"),
    ('{"data": 5}', r"ser_hf_run\.json: 'data' must be an object of data arguments, found int"),
    ('{"data": {"trim_db": "loud"}}', r"data\.trim_db is 'loud'; expected float \| None"),
    ('{"data": {"max_duration": true}}', r"data\.max_duration is True; expected float \| None"),
    ('{"data": {"normalize": "max"}}', r"data\.normalize is 'max'; expected one of \[None, 'peak', 'loudness'\]"),
    ('{"data": {"corpus": ["urdu"]}}', r"data\.corpus is \['urdu'\]; expected str"),
    ('{"data": {"denoise": 3}}', r"DataArguments\.denoise must be a number in \[0, 1\], got 3"),
    ('{"data": {"max_duration": -1}}', r"DataArguments\.max_duration must be a duration in seconds in \[0.1, 300\], "
                                       r"got -1"),
    ('{"data": {"max_duration": NaN}}', r"max_duration must be a duration in seconds in \[0.1, 300\], got nan"),
    ('{"data": {}, "data": {}}', r"key\(s\) \['data'\] appear more than once"),
])
def test_a_bad_ser_hf_run_json_fails_at_load_naming_the_field(made, tmp_path, text, pattern):
    path = _copy(made, "wav2vec2", tmp_path / "model")
    (path / "ser_hf_run.json").write_text(text)
    with pytest.raises(ModelError, match=pattern):
        EmotionRecognizer.from_pretrained(path)
    with pytest.raises(ModelError, match=pattern):
        training_record(path)


def test_held_out_speakers_of_the_wrong_type_are_refused(made, tmp_path):
    path = _copy(made, "wav2vec2", tmp_path / "model")
    (path / "eval").mkdir()
    (path / "eval" / "report.json").write_text(json.dumps({"metadata": {"speakers": "spk1"}}))
    with pytest.raises(ModelError, match=r"report\.json: metadata\.speakers must be a list of speaker ids"):
        training_record(path)


def test_a_record_that_is_there_but_unreadable_never_passes_for_no_record(made, tmp_path):
    """A dangling link or a folder where ser_hf_run.json or eval/report.json belongs was silently ignored: the model
    then ran without its recorded cleaning, or was scored on speakers it trained on without a warning."""
    path = _copy(made, "wav2vec2", tmp_path / "model")
    (path / "eval").mkdir()
    for name in ("ser_hf_run.json", "eval/report.json"):
        (path / name).symlink_to(tmp_path / "gone.json")
        loads = (EmotionRecognizer.from_pretrained, training_record) if name == "ser_hf_run.json" else (training_record,)
        for load in loads:
            with pytest.raises(ModelError, match=rf"{re.escape(name)} is a symbolic link to .*gone.json', which does "
                                                 r"not exist"):
                load(path)
        (path / name).unlink()
        (path / name).mkdir()
        with pytest.raises(ModelError, match=rf"{re.escape(name)} is not a regular file"):
            training_record(path)
        (path / name).rmdir()
    (path / "eval").rmdir()
    (path / "eval").symlink_to(tmp_path / "nowhere")  # the whole eval/ folder a dangling link
    with pytest.raises(ModelError, match=r"eval is a symbolic link to .*nowhere', which does not exist"):
        training_record(path)
    (path / "eval").unlink()
    (path / "config.json").rename(path / "config.moved")
    (path / "config.json").symlink_to(path / "config.missing")
    with pytest.raises(ModelError, match=r"config.json is a symbolic link to .*config.missing', which does not exist"):
        EmotionRecognizer.from_pretrained(path)


def test_a_valid_ser_hf_run_json_still_applies(made, tmp_path):
    path = _copy(made, "wav2vec2", tmp_path / "model")
    (path / "ser_hf_run.json").write_text(json.dumps({"data": {"normalize": "peak", "corpus": "urdu", "trim_db": 30,
                                                               "unknown_future_key": 1}}))
    recognizer = EmotionRecognizer.from_pretrained(path)
    assert (recognizer.preprocessor.normalize, recognizer.preprocessor.trim_db) == ("peak", 30)


# --- saved baselines -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    width = len(feature_names(FeatureConfig()))
    rng = np.random.default_rng(0)
    pipeline = Pipeline([("first", "passthrough"), ("clf", LogisticRegression())])
    pipeline.fit(rng.standard_normal((16, width)), np.arange(16) % 4)
    return BaselineModel(pipeline, FOUR, classifier="logreg").save(tmp_path_factory.mktemp("baseline") / "model")


def _baseline_variant(baseline: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "variant"
    shutil.copytree(baseline, folder)
    if isinstance(edit, str):
        (folder / CONFIG_NAME).write_text(edit)
    else:
        config = json.loads((folder / CONFIG_NAME).read_text())
        edit(config)
        (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("edit,pattern", [
    ("{oops", r"baseline_config\.json is not valid JSON"),
    ("[]", r"baseline_config\.json must hold a JSON object, found list"),
    (lambda c: c.pop("labels"), r"labels must be a list of at least two distinct names, found None"),
    (lambda c: c.update(labels=[1, 2, 3, 4]), r"labels must be a list of at least two distinct names"),
    (lambda c: c.update(labels=["a", "a", "b", "c"]), r"labels must be a list of at least two distinct names"),
    (lambda c: c.pop("features_version"), r"was trained on features version None"),
    (lambda c: c.update(classifier=5), r"classifier is '5', of the wrong type"),
    (lambda c: c.update(feature_config=[1]), r"feature_config must be an object, found list"),
    (lambda c: c["feature_config"].update(bogus=1), r"feature_config has unknown settings \['bogus'\]"),
    (lambda c: c["feature_config"].update(frame_ms="25"), r"feature_config\.frame_ms is '25', expected float"),
    (lambda c: c["feature_config"].update(n_mels=10**9), r"feature_config\.n_mels must be an integer in \[1, 512\]"),
    (lambda c: c["feature_config"].update(sampling_rate=10**12), r"feature_config\.sampling_rate must be an integer"),
    (lambda c: c["feature_config"].update(hop_ms=float("nan")), r"feature_config\.hop_ms must be a finite number in"),
    (lambda c: c["feature_config"].update(n_mfcc=10), r"gives \d+ features, but num_features and the classifier "
                                                      r"expect \[\d+\]"),
    (lambda c: c["feature_config"].update(f0_min=900.0), r"feature_config is inconsistent \(.*f0_min"),
    (lambda c: c["preprocessor"].update(normalize="max"), r"preprocessor\.normalize is 'max', expected "
                                                          r"Optional\[Literal\['peak', 'loudness'\]\]"),
    (lambda c: c["preprocessor"].update(sampling_rate=8000), r"preprocessor\.sampling_rate \(8000 Hz\) differs"),
    (lambda c: c.update(num_features=3), r"but num_features and the classifier expect \[3\]"),
    (lambda c: c.update(versions=["1.0"]), r"versions is .*, of the wrong type"),
])
def test_a_broken_baseline_config_is_named(baseline, tmp_path, edit, pattern):
    with pytest.raises(ModelError, match=pattern):
        load_baseline(_baseline_variant(baseline, tmp_path, edit))


def test_a_skops_zip_bomb_is_refused_unread(baseline, tmp_path):
    folder = _baseline_variant(baseline, tmp_path, lambda c: None)
    with zipfile.ZipFile(folder / MODEL_NAME, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.bin", b"\0" * (300 * 2**20))
    with pytest.raises(ModelError, match=r"model\.skops' is a \d+-byte archive of \d+ members that would inflate to "
                                         r"\d+ bytes"):
        load_baseline(folder)


def test_held_out_speakers_recorded_before_ids_had_one_form_still_name_their_speakers(tmp_path):
    """Corpora give speaker ids in NFC now; a checkpoint's eval/report.json written before may hold 'José' in NFD,
    which --split test must still find (and the leak warning must not count as a training speaker)."""
    import json

    from ser_hf.checkpoint import read_run_record

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps({"metadata": {"speakers": ["Jose\u0301", "Bo\u200b"]}}))
    assert read_run_record(tmp_path)["test_speakers"] == ["Jos\u00e9", "Bo"]


def test_saving_a_checkpoint_never_overwrites_its_backbone_or_a_folder_of_other_files(tmp_path):
    """ProbeMethod/FinetuneMethod/PartialMethod.save go through save_checkpoint: the folder the model was loaded from
    (its backbone) and a folder of the user's files are refused; a new folder or an earlier checkpoint are fine."""
    import hashlib

    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from ser_hf.errors import ModelError
    from ser_hf.models.factory import save_checkpoint
    from ser_hf.testing.models import tiny_backbone, tiny_classifier

    source = tiny_classifier("wav2vec2", tmp_path / "source", ["neutral", "happy"])
    model = AutoModelForAudioClassification.from_pretrained(source)
    extractor = AutoFeatureExtractor.from_pretrained(source)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir() if p.is_file()}
    with pytest.raises(ModelError, match=r"out_dir .*source.* is \(or holds\) the checkpoint it is made from"):
        save_checkpoint(model, extractor, source)
    with pytest.raises(ModelError, match=r"is \(or holds\) the checkpoint it is made from"):
        save_checkpoint(model, extractor, source, replace=True)  # a run's checked output_dir: still never the source
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir() if p.is_file()} == digest
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    with pytest.raises(ModelError, match=r"mine is not empty .* holds no config.json"):
        save_checkpoint(model, extractor, mine)
    backbone = tiny_backbone("wav2vec2", tmp_path / "another-backbone")  # a bare encoder, not a classifier of ours
    with pytest.raises(ModelError, match=r"another-backbone is not empty"):
        save_checkpoint(model, extractor, backbone)
    assert (mine / "config.json").read_text() == '{"my": "settings"}'
    earlier = save_checkpoint(model, extractor, tmp_path / "new")
    assert save_checkpoint(model, extractor, earlier) == earlier  # an earlier classifier checkpoint is replaced
    for other in ("ser_hf_run.json", "ser_hf_export.json", "baseline_config.json"):  # more than a checkpoint
        (earlier / other).write_text("{}")
        with pytest.raises(ModelError, match=rf"new holds another kind of output \({other}\)"):
            save_checkpoint(model, extractor, earlier)
        (earlier / other).unlink()


def test_a_model_built_from_a_relative_path_is_never_saved_over_it_after_a_change_of_folder(tmp_path, monkeypatch):
    from ser_hf.errors import ModelError
    from ser_hf.models.factory import build_model, save_checkpoint
    from ser_hf.testing.models import tiny_backbone

    tiny_backbone("wav2vec2", tmp_path / "bb")
    monkeypatch.chdir(tmp_path)
    model, extractor = build_model("bb", ["neutral", "happy"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a notebook moving on: "bb" no longer names the backbone from here
    with pytest.raises(ModelError, match=r"is \(or holds\) the checkpoint it is made from"):
        save_checkpoint(model, extractor, tmp_path / "bb", replace=True)
