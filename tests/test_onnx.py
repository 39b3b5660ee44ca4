"""ONNX export and the onnxruntime backend: files, parity with PyTorch, recognizer equality, int8, errors, CLI."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import SEWConfig, Wav2Vec2FeatureExtractor

from ser_hf.checkpoint import read_run_record, recorded_training_copies
from ser_hf.cli import main as cli_main
from ser_hf.errors import ModelError
from ser_hf.inference import onnx as onnx_export_module
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.inference.onnx import export_onnx
from ser_hf.inference.onnx_parity import parity
from ser_hf.inference.onnx_runtime import OnnxAudioClassifier, load_onnx_classifier
from ser_hf.inference.predict import batch_padding_is_exact, load_classifier
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_backbone

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'ser-hf[onnx]'")

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000
TOLERANCE = 1e-4
CLIP_SECONDS = (0.6, 1.3, 2.2, 3.4)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def _clips() -> list[np.ndarray]:
    return [_voice(seconds, seed) for seed, seconds in enumerate(CLIP_SECONDS)]


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """wav2vec2 with a per-frame normalised front end and an attention mask: batches padded by length.

    Exported through the CLI with --quantize int8; the checkpoint records peak normalisation in ser_hf_run.json.
    """
    tmp = tmp_path_factory.mktemp("onnx_masked")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone", feat_extract_norm="layer"), FOUR)
    extractor = Wav2Vec2FeatureExtractor.from_dict({**extractor.to_dict(), "return_attention_mask": True})
    checkpoint = save_checkpoint(model, extractor, tmp / "model")
    (checkpoint / "ser_hf_run.json").write_text(json.dumps({"data": {"normalize": "peak", "corpus": "urdu"}}))
    out = tmp / "export"
    assert cli_main(["export-onnx", "--model", str(checkpoint), "--out", str(out), "--quantize", "int8"]) == 0
    return {"checkpoint": checkpoint, "export": out}


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """Tiny Whisper cut to 2 s (max_source_positions=100): fixed-length input features."""
    tmp = tmp_path_factory.mktemp("onnx_whisper")
    model, extractor = build_model(tiny_backbone("whisper", tmp / "backbone"), FOUR,
                                   ModelOptions(max_source_positions=100))
    checkpoint = save_checkpoint(model, extractor, tmp / "model")
    out = tmp / "export"
    record = export_onnx(checkpoint, out)
    return {"checkpoint": checkpoint, "export": out, "record": record}


def _max_logit_diff(checkpoint, export, waves: list[np.ndarray]) -> float:
    """Max abs logit difference of torch and onnxruntime on one padded batch of ``waves``."""
    model, extractor = load_classifier(checkpoint)
    onnx_model, onnx_extractor = load_classifier(export)
    assert isinstance(onnx_model, OnnxAudioClassifier) and onnx_extractor.to_dict() == extractor.to_dict()
    options = {"padding": True, "return_attention_mask": True} if "attention_mask" in onnx_model.input_names else {}
    features = extractor(waves, sampling_rate=RATE, return_tensors="pt", **options)
    with torch.no_grad():
        expected = model(**features).logits
    got = onnx_model(**features).logits
    assert got.shape == (len(waves), len(FOUR))
    return float((got - expected).abs().max())


def _assert_recognizers_agree(checkpoint, export) -> None:
    """predict (batched), predict_long and stream give the same probabilities from torch and from ONNX."""
    torch_rec, onnx_rec = EmotionRecognizer.from_pretrained(checkpoint), EmotionRecognizer.from_pretrained(export)
    assert onnx_rec.labels == torch_rec.labels == FOUR
    assert onnx_rec.preprocessor == torch_rec.preprocessor
    assert onnx_rec.predict_waves(_clips()) == pytest.approx(torch_rec.predict_waves(_clips()), abs=TOLERANCE)
    long = np.concatenate([_voice(3.0, 1), np.zeros(2 * RATE, np.float32), _voice(2.5, 2)])
    expected = torch_rec.predict_long(long, window=2.0, hop=1.0)
    got = onnx_rec.predict_long(long, window=2.0, hop=1.0)
    assert [(w["start"], w["end"]) for w in got["timeline"]] == [(w["start"], w["end"]) for w in expected["timeline"]]
    assert got["skipped"] == expected["skipped"] and got["skipped"]
    for mine, theirs in zip(got["timeline"] + [got["overall"]], expected["timeline"] + [expected["overall"]]):
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=TOLERANCE)
    stream = onnx_rec.stream(window=2.0, hop=1.0)
    streamed = [w for start in range(0, long.size, 5000) for w in stream.push(long[start: start + 5000])]
    streamed += stream.flush()
    assert [(w["start"], w["end"]) for w in streamed] == [(w["start"], w["end"]) for w in expected["timeline"]]
    for mine, theirs in zip(streamed, expected["timeline"]):
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=TOLERANCE)


# ------------------------------------------------------------------------------------------ export directory


def test_export_directory_is_self_describing(masked):
    out = masked["export"]
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.int8.onnx", "model.onnx", "preprocessor_config.json", "ser_hf_export.json",
        "ser_hf_run.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(FOUR)}
    assert config["label2id"] == {label: i for i, label in enumerate(FOUR)}
    assert (out / "ser_hf_run.json").read_text() == (masked["checkpoint"] / "ser_hf_run.json").read_text()
    record = json.loads((out / "ser_hf_export.json").read_text())
    assert record["model_type"] == "wav2vec2" and record["opset"] == 18 and record["source"] == str(masked["checkpoint"])
    assert {"torch", "onnxruntime", "onnx", "transformers"} <= set(record["versions"])
    assert [(i["name"], i["shape"]) for i in record["inputs"]] == [
        ("input_values", ["batch", "time"]), ("attention_mask", ["batch", "time"])]
    assert record["outputs"] == [{"name": "logits", "type": "tensor(float)", "shape": ["batch", 4]}]
    assert record["dynamic_axes"]["attention_mask"] == {"0": "batch", "1": "time"}
    assert record["parity"]["max_abs_logit_diff"] <= TOLERANCE and record["parity"]["tolerance"] == TOLERANCE
    assert record["parity"]["passed"] == "within tolerance" and "float64_reference" not in record["parity"]
    assert record["quantization"]["weight_type"] == "QInt8"
    assert record["files"]["model.int8.onnx"] == (out / "model.int8.onnx").stat().st_size
    assert not list(out.glob(".export-*"))  # the staging directory is gone


def test_parity_batched_wav2vec2(masked):
    assert _max_logit_diff(masked["checkpoint"], masked["export"], _clips()) <= TOLERANCE
    # The dynamic time axis also takes a length the export never saw, alone.
    assert _max_logit_diff(masked["checkpoint"], masked["export"], [_voice(5.3)]) <= TOLERANCE


def test_recognizer_from_onnx_matches_torch_wav2vec2(masked):
    model, extractor = load_classifier(masked["export"])
    assert batch_padding_is_exact(model, extractor)  # same batching rule as the torch checkpoint
    _assert_recognizers_agree(masked["checkpoint"], masked["export"])


def test_int8_file_loads_smaller_and_close(masked):
    exact = EmotionRecognizer.from_pretrained(masked["export"])
    int8 = EmotionRecognizer.from_pretrained(masked["export"] / "model.int8.onnx")
    assert int8.model.onnx_file.name == "model.int8.onnx" and int8.preprocessor == exact.preprocessor
    assert int8.predict_waves(_clips()) == pytest.approx(exact.predict_waves(_clips()), abs=1e-2)
    assert (masked["export"] / "model.int8.onnx").stat().st_size < (masked["export"] / "model.onnx").stat().st_size


def test_predict_files_with_an_export(masked, tmp_path):
    clip = write_tone(tmp_path / "a.wav", duration=1.0)
    out = tmp_path / "predictions.jsonl"
    summary = predict_files(masked["export"], [str(clip)], out, progress=False)
    assert summary["predicted"] == 1
    (record,) = read_records(out)
    expected = EmotionRecognizer.from_pretrained(masked["checkpoint"]).predict(str(clip))
    assert record["scores"] == pytest.approx(expected["scores"], abs=TOLERANCE)


def test_whisper_parity_and_recognizer(whisper):
    record = whisper["record"]
    assert record["inputs"] == [{"name": "input_features", "type": "tensor(float)", "shape": ["batch", 80, 200]}]
    assert record["dynamic_axes"] == {"input_features": {"0": "batch"}}
    assert "quantization" not in record and not (whisper["export"] / "model.int8.onnx").exists()
    assert _max_logit_diff(whisper["checkpoint"], whisper["export"], _clips()) <= TOLERANCE
    _assert_recognizers_agree(whisper["checkpoint"], whisper["export"])


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["hubert", "wavlm", "data2vec-audio", "audio-spectrogram-transformer"])
def test_other_architectures(model_type, tmp_path):
    # One layer: tracing time grows with the number of operations, and one layer exercises them all.
    model, extractor = build_model(tiny_backbone(model_type, tmp_path / "backbone", num_hidden_layers=1), FOUR)
    checkpoint = save_checkpoint(model, extractor, tmp_path / "model")
    record = export_onnx(checkpoint, tmp_path / "export")
    assert record["parity"]["max_abs_logit_diff"] <= TOLERANCE
    assert [i["name"] for i in record["inputs"]] == ["input_values"]  # these extractors return no mask
    time_axis = model_type != "audio-spectrogram-transformer"
    assert record["dynamic_axes"]["input_values"] == ({"0": "batch", "1": "time"} if time_axis else {"0": "batch"})
    torch_rec = EmotionRecognizer.from_pretrained(checkpoint)
    onnx_rec = EmotionRecognizer.from_pretrained(tmp_path / "export")
    assert onnx_rec.predict_waves(_clips()) == pytest.approx(torch_rec.predict_waves(_clips()), abs=TOLERANCE)
    if time_axis:
        # Without a mask input, a padded batch would be scored with padding as signal: refused, not guessed.
        features = extractor([_voice(0.5), _voice(1.0)], sampling_rate=RATE, padding=True, return_attention_mask=True,
                             return_tensors="pt")
        with pytest.raises(ModelError, match="exported without an attention_mask input"):
            onnx_rec.model(**features)


@pytest.mark.slow
def test_real_whisper_tiny_en(tmp_path):
    from ser_hf.models.presets import resolve_model_path

    model, extractor = build_model(resolve_model_path("whisper-tiny.en"), FOUR, ModelOptions(max_source_positions=150))
    checkpoint = save_checkpoint(model, extractor, tmp_path / "model")
    record = export_onnx(checkpoint, tmp_path / "export", quantize="int8")
    assert record["inputs"][0]["shape"] == ["batch", 80, 300]
    assert record["parity"]["max_abs_logit_diff"] <= TOLERANCE
    # 4 x smaller weights for the MatMuls: the int8 file is well under half the float32 one.
    assert record["files"]["model.int8.onnx"] < 0.5 * record["files"]["model.onnx"]
    assert _max_logit_diff(checkpoint, tmp_path / "export", _clips()) <= TOLERANCE
    torch_rec = EmotionRecognizer.from_pretrained(checkpoint)
    onnx_rec = EmotionRecognizer.from_pretrained(tmp_path / "export")
    assert onnx_rec.predict_waves(_clips()) == pytest.approx(torch_rec.predict_waves(_clips()), abs=TOLERANCE)


# -------------------------------------------------------------------------------------------------- errors


@pytest.fixture
def reuse_trace(whisper, monkeypatch):
    """Skip the (slow) tracing in tests of what happens around it: copy the fixture's traced Whisper graph."""
    def copy_traced(model, axes, example, path, opset):
        shutil.copyfile(whisper["export"] / "model.onnx", path)

    monkeypatch.setattr(onnx_export_module, "_trace", copy_traced)


def test_overwrite_keeps_other_files_and_removes_stale_ones(whisper, reuse_trace, tmp_path):
    out = shutil.copytree(whisper["export"], tmp_path / "export")
    (out / "notes.txt").write_text("mine")
    (out / "model.int8.onnx").write_bytes(b"stale")
    with pytest.raises(ModelError, match=r"--out .* already holds an earlier ONNX export \(found \['config.json'.*--overwrite"):
        export_onnx(whisper["checkpoint"], out)
    export_onnx(whisper["checkpoint"], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "model.int8.onnx").exists()
    assert EmotionRecognizer.from_pretrained(out).labels == FOUR


def test_overwrite_refuses_a_folder_that_is_not_an_earlier_export(whisper, reuse_trace, tmp_path):
    """--overwrite replaces an earlier export (it holds ser_hf_export.json), never a folder of the user's files."""
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("config.json", "ser_hf_run.json", "notes.txt"):
        (out / name).write_text(f"the user's {name}")
    with pytest.raises(ModelError, match=r"--out .*mine is not empty .*holds no ser_hf_export.json that ser_hf wrote, "
                                         r"so it is not an earlier ONNX export"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "ser_hf_run.json"]
    assert all((out / name).read_text() == f"the user's {name}" for name in ("config.json", "ser_hf_run.json"))


@pytest.mark.parametrize("record", ["", "{}", '{"format": "safetensors"}', "not json"])
def test_a_file_merely_named_like_the_export_record_marks_no_export(whisper, reuse_trace, tmp_path, record):
    """Only ser_hf's own record marks an earlier export: a checkpoint folder holding an empty ser_hf_export.json lost
    its config.json (its labels) and its run record to --overwrite."""
    out = shutil.copytree(whisper["checkpoint"], tmp_path / "checkpoint")
    (out / "ser_hf_export.json").write_text(record)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ModelError, match=r"--out .*checkpoint holds another kind of output \(\*\.safetensors\)"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # Without weights, a record that is not ser_hf's marks no export either.
    for weights in out.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelError, match=r"is not empty .*holds no ser_hf_export.json"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)
    assert (out / "config.json").read_bytes() == before["config.json"]
    # Weights of a checkpoint mark another kind of output, even beside a true export record.
    (out / "model.safetensors").write_bytes(before["model.safetensors"])
    shutil.copyfile(whisper["export"] / "ser_hf_export.json", out / "ser_hf_export.json")
    with pytest.raises(ModelError, match=r"holds another kind of output \(\*\.safetensors\)"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)


@pytest.mark.parametrize("stop_at", ["model.onnx", "ser_hf_run.json"])
def test_an_export_stopped_while_moving_in_never_passes_for_a_finished_one(whisper, reuse_trace, tmp_path,
                                                                          monkeypatch, stop_at):
    """A kill while the new files replace an earlier export's left a folder that loaded as good (without its run
    record: the model's audio cleaning silently skipped) or that its own rerun refused; now the record is marked
    first and written last, loaders refuse the half-moved folder and --overwrite replaces it."""
    checkpoint = shutil.copytree(whisper["checkpoint"], tmp_path / "checkpoint")
    (checkpoint / "ser_hf_run.json").write_text(json.dumps({"data": {"normalize": "peak"}}))
    out = tmp_path / "export"
    export_onnx(checkpoint, out)
    assert "ser_hf_run.json" in json.loads((out / "ser_hf_export.json").read_text())["files"]
    replace, written = pathlib.Path.replace, []

    def stop(self, target):
        if pathlib.Path(target).name == stop_at and written == []:
            written.append(stop_at)
            raise KeyboardInterrupt
        return replace(self, target)

    monkeypatch.setattr(pathlib.Path, "replace", stop)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(checkpoint, out, overwrite=True)
    monkeypatch.setattr(pathlib.Path, "replace", replace)
    with pytest.raises(ModelError, match=r"was being replaced when the export stopped.*not a finished export.*"
                                         r"--overwrite"):
        EmotionRecognizer.from_pretrained(out)
    export_onnx(checkpoint, out, overwrite=True)  # the rerun replaces it
    assert EmotionRecognizer.from_pretrained(out).labels == FOUR
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]
    # A finished export missing a file its record lists is refused too.
    (out / "ser_hf_run.json").unlink()
    with pytest.raises(ModelError, match=r"lacks \['ser_hf_run.json'\], which its ser_hf_export.json lists"):
        EmotionRecognizer.from_pretrained(out)


def test_a_killed_exports_temporary_folder_does_not_block_the_rerun(whisper, reuse_trace, tmp_path):
    """Only a temporary folder an export made (its owner file) whose process is gone is removed: a user's
    .export-backup/ (even of export files) and a running export's folder stay, and --out holding them is refused."""
    import subprocess

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid belongs to no process now

    def leftover(name: str, owner: int | None) -> pathlib.Path:
        folder = tmp_path / "export" / name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"half a model")
        if owner is not None:
            (folder / ".ser_hf_export_owner").write_text(f"{owner}\n")
        return folder

    killed, backup, running = leftover(".export-k1ll3d_x", finished.pid), leftover(".export-backup", None), \
        leftover(".export-running", os.getpid())
    (backup / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"is not empty \(found \['\.export-backup', '\.export-running'\]\)"):
        export_onnx(whisper["checkpoint"], tmp_path / "export")
    assert not killed.exists() and (backup / "model.onnx").read_bytes() == b"half a model" and running.is_dir()
    shutil.rmtree(backup)
    shutil.rmtree(running)
    leftover(".export-k1ll3d_x", finished.pid)
    export_onnx(whisper["checkpoint"], tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("files, problem", [(5, "lists 5 as its files"), ("abc", "lists abc as its files"),
                                            ({"../checkpoint/config.json": 1}, "lists .*checkpoint/config.json"),
                                            ({"/etc/hostname": 1}, "lists .*/etc/hostname"),
                                            ({"gone.onnx": 1}, r"lacks \['gone.onnx'\]")])
def test_a_record_listing_files_ser_hf_could_not_have_written_is_refused(whisper, tmp_path, files, problem):
    out = shutil.copytree(whisper["export"], tmp_path / "export")
    record = json.loads((out / "ser_hf_export.json").read_text())
    (out / "ser_hf_export.json").write_text(json.dumps({**record, "files": files}))
    with pytest.raises(ModelError, match=problem):
        load_onnx_classifier(out)
    (out / "ser_hf_export.json").unlink()
    (out / "ser_hf_export.json").symlink_to(whisper["export"] / "ser_hf_export.json")
    with pytest.raises(ModelError, match=r"its ser_hf_export.json is not a regular file"):
        load_onnx_classifier(out)


def test_a_record_that_is_a_link_is_named_as_one_when_refused(whisper, tmp_path):
    """The refusal said the folder "holds no ser_hf_export.json" while listing one: it now says why it does not count."""
    out = shutil.copytree(whisper["export"], tmp_path / "export")
    (out / "ser_hf_export.json").unlink()
    (out / "ser_hf_export.json").symlink_to(whisper["export"] / "ser_hf_export.json")
    with pytest.raises(ModelError, match=r"Its ser_hf_export.json is a symbolic link, and ser_hf writes that record as "
                                         r"a file"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)
    (out / "ser_hf_export.json").unlink()
    (out / "ser_hf_export.json").mkdir()
    with pytest.raises(ModelError, match=r"Its ser_hf_export.json is not a regular file \(a folder"):
        export_onnx(whisper["checkpoint"], out, overwrite=True)


def test_parity_failure_writes_nothing(whisper, reuse_trace, tmp_path, monkeypatch):
    def off_by_half(*args, **kwargs):
        return {"max_abs_logit_diff": 0.5, "max_abs_prob_diff": 0.1, "tolerance": 1e-4, "batches_seconds": [[1.0]],
                "float64_reference": {"torch_fp32_vs_fp64": 1e-6, "onnx_vs_fp64": 0.5}, "passed": False}

    monkeypatch.setattr(onnx_export_module, "parity", off_by_half)
    out = tmp_path / "export"
    with pytest.raises(ModelError, match=r"does not match PyTorch: max abs logit difference 0.5 > tolerance 0.0001 "
                                         r".*onnxruntime is 0.5 off where PyTorch float32 is 1e-06"):
        export_onnx(whisper["checkpoint"], out)
    assert not out.exists()  # not even an empty folder


class _LargeLogits(torch.nn.Module):
    """Logits in the tens of thousands: float32 rounding alone moves them by more than 1e-4."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(64, 4)
        with torch.no_grad():
            self.linear.weight.mul_(3000.0)

    def forward(self, input_values):
        return SimpleNamespace(logits=self.linear(input_values))


class _Float64Backend:
    """A stand-in for onnxruntime that computes in float64 (plus an optional error)."""

    def __init__(self, model, error=0.0):
        self.model, self.error = model, error

    def __call__(self, input_values):
        with torch.no_grad():
            exact = torch.nn.functional.linear(input_values.double(), self.model.linear.weight.double(),
                                               self.model.linear.bias.double())
        return SimpleNamespace(logits=(exact + self.error).float())


def test_parity_float64_referee_for_large_logits():
    model = _LargeLogits()
    batches = [{"input_values": torch.randn(3, 64, generator=torch.Generator().manual_seed(seed))} for seed in range(2)]
    accurate = parity(model, _Float64Backend(model), batches, TOLERANCE)
    assert accurate["max_abs_logit_diff"] > TOLERANCE  # PyTorch float32 itself is that far off
    reference = accurate["float64_reference"]
    assert reference["onnx_vs_fp64"] < reference["torch_fp32_vs_fp64"]
    assert accurate["passed"] == "as close to float64 as PyTorch float32"
    wrong = parity(model, _Float64Backend(model, error=0.05), batches, TOLERANCE)
    assert wrong["passed"] is False
    with torch.no_grad():
        assert parity(model, model, batches, TOLERANCE)["passed"] == "within tolerance"


def test_input_errors(whisper, tmp_path):
    with pytest.raises(ModelError, match=r"--model .*missing is not a directory"):
        export_onnx(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ModelError, match="is already an ONNX export; pass the PyTorch checkpoint"):
        export_onnx(whisper["export"], tmp_path / "out")
    with pytest.raises(ModelError, match="is \\(or holds\\) the checkpoint it is made from"):
        export_onnx(whisper["checkpoint"], whisper["checkpoint"], overwrite=True)
    with pytest.raises(ModelError, match="is \\(or holds\\) the checkpoint it is made from"):
        export_onnx(whisper["checkpoint"], whisper["checkpoint"].parent, overwrite=True)
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(ModelError, match=r"--out .*a-file is a file; pass a directory"):
        export_onnx(whisper["checkpoint"], tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "mine"
    with pytest.raises(ModelError, match=r"quantize must be None or one of \['int8'\], got 'int4'"):
        export_onnx(whisper["checkpoint"], tmp_path / "out", quantize="int4")
    SEWConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        tmp_path / "sew")
    with pytest.raises(ModelError, match=r"model_type='sew', which ONNX export does not support; supported: wav2vec2"):
        export_onnx(tmp_path / "sew", tmp_path / "out")


def test_loading_errors(whisper, tmp_path):
    broken = shutil.copytree(whisper["export"], tmp_path / "broken")
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError, match=r"has no preprocessor_config.json .*the feature extractor live"):
        load_onnx_classifier(broken)
    with pytest.raises(ModelError, match="does not exist; pass the directory `ser-hf export-onnx` wrote"):
        load_onnx_classifier(tmp_path / "nothing.onnx")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ModelError, match=r"device='cuda'.*install onnxruntime-gpu"):
            OnnxAudioClassifier(whisper["export"] / "model.onnx", device="cuda")


def test_onnxruntime_missing_says_how_to_install(whisper, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(ModelError, match=r"onnxruntime is not installed.*pip install 'ser-hf\[onnx\]'"):
        export_onnx(whisper["checkpoint"], tmp_path / "out")
    with pytest.raises(ModelError, match=r"pip install 'ser-hf\[onnx\]'"):
        EmotionRecognizer.from_pretrained(whisper["export"])


def test_cli_errors_exit_2_with_the_message(tmp_path, capsys):
    assert cli_main(["export-onnx", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "missing is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["export-onnx", "--model", "x", "--out", "y", "--quantize", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_cli_help_teaches(capsys):
    with pytest.raises(SystemExit):
        cli_main(["export-onnx", "--help"])
    text = capsys.readouterr().out
    assert "ser-hf export-onnx --model outputs/rav4 --out exports/rav4 --quantize int8" in text
    assert "1e-4" in text and "pip install 'ser-hf[onnx]'" in text


def test_cli_constants_match_the_export_module():
    from ser_hf.cli import export as cli
    from ser_hf.inference import onnx

    assert (cli.ONNX_MODEL_TYPES, cli.DEFAULT_OPSET, cli.QUANTIZE_CHOICES) == (
        onnx.ONNX_MODEL_TYPES, onnx.DEFAULT_OPSET, onnx.QUANTIZE_CHOICES)


# ------------------------------------------------------------------------- checked before any work is done


@pytest.fixture
def no_work(monkeypatch):
    """Loading the weights or tracing fails the test: every check under test must come before both."""
    def started(*args, **kwargs):
        raise AssertionError("the export started working before refusing its inputs")

    monkeypatch.setattr(onnx_export_module, "_load_checkpoint", started)
    monkeypatch.setattr(onnx_export_module, "_trace", started)


def _checkpoint_copy(whisper, tmp_path):
    return shutil.copytree(whisper["checkpoint"], tmp_path / "model")


@pytest.mark.parametrize("opset", [-5, 0, 3, 17, 24, 99, 10**6, True, 18.0, "18", None])
def test_opset_out_of_range_is_refused_before_any_work(whisper, no_work, tmp_path, opset):
    out = tmp_path / "a" / "out"
    with pytest.raises(ModelError, match=rf"opset \(--opset\) must be an integer from 18 to 23, the ONNX opset "
                                         rf"versions torch .*got {opset!r}\. Pass e\.g\. --opset 18"):
        export_onnx(whisper["checkpoint"], out, opset=opset)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("opset", ["-5", "0", "3", "17", "24", "99", "abc", "18.5"])
def test_cli_opset_out_of_range_exits_2_before_any_work(whisper, no_work, tmp_path, capsys, opset):
    with pytest.raises(SystemExit) as exited:
        cli_main(["export-onnx", "--model", str(whisper["checkpoint"]), "--out", str(tmp_path / "out"),
                  "--opset", opset])
    assert exited.value.code == 2
    assert (f"argument --opset: expected an ONNX opset version from 18 to 23 (those torch.onnx's exporter writes), "
            f"got {opset!r}; pass e.g. --opset 18") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_opset_range_is_the_installed_exporters():
    from torch.onnx._constants import ONNX_MAX_OPSET
    from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET

    from ser_hf.cli import export as cli

    assert (onnx_export_module.MIN_OPSET, onnx_export_module.MAX_OPSET) == (TORCHLIB_OPSET, ONNX_MAX_OPSET)
    assert (cli.MIN_OPSET, cli.MAX_OPSET) == (onnx_export_module.MIN_OPSET, onnx_export_module.MAX_OPSET)


def test_record_holds_the_opset_the_file_imports(whisper, reuse_trace, tmp_path):
    """The exporter may write another opset than asked for: the record says the file's (the reused graph's: 18)."""
    record = export_onnx(whisper["checkpoint"], tmp_path / "export", opset=20)
    assert record["opset"] == 18 and record["requested_opset"] == 20
    assert json.loads((tmp_path / "export" / "ser_hf_export.json").read_text())["opset"] == 18
    assert "requested_opset" not in whisper["record"] and whisper["record"]["opset"] == 18


@pytest.mark.parametrize("failure", ["trace", "parity", "interrupt"])
def test_a_failed_export_leaves_no_folder_it_made(whisper, reuse_trace, tmp_path, monkeypatch, failure):
    def fail(*args, **kwargs):
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise ModelError(f"{failure} failed")

    monkeypatch.setattr(onnx_export_module, "_trace" if failure == "trace" else "parity", fail)
    expected = KeyboardInterrupt if failure == "interrupt" else ModelError
    with pytest.raises(expected):
        export_onnx(whisper["checkpoint"], tmp_path / "new" / "deeper" / "out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()  # a folder that was there before stays, empty as it was
    with pytest.raises(expected):
        export_onnx(whisper["checkpoint"], tmp_path / "mine")
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and list((tmp_path / "mine").iterdir()) == []


@pytest.mark.parametrize("content,pattern", [
    ('{"data": {"max_duration": "abc"}}', r"ser_hf_run\.json: data\.max_duration is 'abc'; expected float \| None"),
    ('{"data": {"normalize": "loud"}}', r"ser_hf_run\.json: data\.normalize is 'loud'; expected one of"),
    ('{"data": {"max_duration": -3}}', r"ser_hf_run\.json: .*max_duration"),
    ('{"data": []}', r"ser_hf_run\.json: 'data' must be an object"),
    ('{"probe": {"probe_speed_copies": [7]}}', r"ser_hf_run\.json: probe\.probe_speed_copies is \[7\]"),
    ("not json", r"ser_hf_run\.json is not valid JSON"),
    ("[]", r"ser_hf_run\.json must hold a JSON object, found list"),
    ('{"data": {}, "data": {}}', r"ser_hf_run\.json: key\(s\) \['data'\] appear more than once"),
])
def test_an_invalid_run_record_is_refused_before_any_work(whisper, no_work, tmp_path, content, pattern):
    """The record is copied into the export, where evaluate and EmotionRecognizer read it: refused as they would."""
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    (checkpoint / "ser_hf_run.json").write_text(content)
    reader = recorded_training_copies if "probe" in content else read_run_record
    with pytest.raises(ModelError, match=pattern):
        reader(checkpoint)  # as loading the export would refuse it
    with pytest.raises(ModelError, match=pattern):
        export_onnx(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_invalid_test_speaker_record_is_refused_before_any_work(whisper, no_work, tmp_path):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    (checkpoint / "eval").mkdir()
    (checkpoint / "eval" / "report.json").write_text('{"metadata": {"speakers": "01"}}')
    with pytest.raises(ModelError, match=r"eval/report\.json: metadata\.speakers must be a list of speaker ids"):
        export_onnx(checkpoint, tmp_path / "out")


def _break(checkpoint: pathlib.Path, name: str, how: str) -> None:
    (checkpoint / name).unlink()
    if how == "dangling link":
        (checkpoint / name).symlink_to(checkpoint / "gone.json")
    elif how == "folder":
        (checkpoint / name).mkdir()
    elif how == "pipe":
        os.mkfifo(checkpoint / name)


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json", "model.safetensors"])
@pytest.mark.parametrize("how,pattern", [
    ("missing", r"model directory '.*model' has no (config\.json|preprocessor_config\.json|\*\.safetensors)"),
    ("dangling link", r"checkpoint .*model: {name} is a symbolic link to '.*gone\.json', which does not exist"),
    ("folder", r"checkpoint .*model: {name} is not a regular file \(a folder, a pipe or a device\)"),
    ("pipe", r"checkpoint .*model: {name} is not a regular file \(a folder, a pipe or a device\)"),
])
def test_missing_or_broken_checkpoint_files_are_refused_before_any_work(whisper, no_work, tmp_path, name, how,
                                                                        pattern):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    _break(checkpoint, name, how)
    with pytest.raises(ModelError, match=pattern.format(name=name.replace(".", r"\."))):
        export_onnx(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_dangling_run_record_is_refused(whisper, no_work, tmp_path):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    (checkpoint / "ser_hf_run.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ModelError, match=r"ser_hf_run\.json is a symbolic link to '.*elsewhere\.json', which does "
                                         r"not exist"):
        export_onnx(checkpoint, tmp_path / "out")


def test_an_unreadable_checkpoint_file_is_named(whisper, no_work, tmp_path, monkeypatch):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    read_bytes = pathlib.Path.read_bytes

    def denied(path):
        if path.name == "config.json":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    with pytest.raises(ModelError, match=r"checkpoint .*model: .*model/config\.json could not be read \(Permission "
                                         r"denied\)\. Make it readable"):
        export_onnx(checkpoint, tmp_path / "out")


def test_cli_broken_config_exits_2_with_the_message(whisper, no_work, tmp_path, capsys):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    _break(checkpoint, "config.json", "dangling link")
    assert cli_main(["export-onnx", "--model", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
    assert "config.json is a symbolic link to" in capsys.readouterr().err
    (checkpoint / "config.json").unlink()
    assert cli_main(["export-onnx", "--model", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
    assert "has no config.json" in capsys.readouterr().err


def _set_tensor(checkpoint: pathlib.Path, name: str, value: float) -> None:
    tensors = load_file(checkpoint / "model.safetensors")
    tensors[name] = torch.full_like(tensors[name], value)
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_named_not_blamed_on_the_export(whisper, reuse_trace, tmp_path, value):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    _set_tensor(checkpoint, "classifier.weight", value)
    with pytest.raises(ModelError, match=r"checkpoint .*model: its weights hold NaN or infinite values "
                                         r"\(\['classifier\.weight'\]\), so every prediction it makes is NaN"):
        export_onnx(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_finite_logits_of_finite_weights_are_named(whisper, reuse_trace, tmp_path):
    checkpoint = _checkpoint_copy(whisper, tmp_path)
    _set_tensor(checkpoint, "classifier.weight", 3e38)  # finite, but any sum of them overflows float32
    with pytest.raises(ModelError, match=r"checkpoint .*model: its weights are finite, but its PyTorch logits on "
                                         r"synthetic voiced clips .* are NaN or infinite"):
        export_onnx(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_finite_onnx_logits_are_named(whisper, reuse_trace, tmp_path, monkeypatch):
    def nan_difference(*args, **kwargs):
        return {"max_abs_logit_diff": float("nan"), "max_abs_prob_diff": float("nan"), "tolerance": 1e-4,
                "batches_seconds": [[1.0]], "float64_reference": {"torch_fp32_vs_fp64": 1e-6,
                                                                  "onnx_vs_fp64": float("nan")}, "passed": False}

    monkeypatch.setattr(onnx_export_module, "parity", nan_difference)
    with pytest.raises(ModelError, match=r"onnxruntime's logits on synthetic clips of \[\[1\.0\]\] s are NaN or "
                                         r"infinite where PyTorch's are finite \(opset 18\)"):
        export_onnx(whisper["checkpoint"], tmp_path / "out")


@pytest.mark.parametrize("below", ["caf\udce9", "caf\udce9/export", "ok/\udcff"])
def test_cli_refuses_a_non_utf8_out_before_any_work(whisper, no_work, tmp_path, capsys, below):
    out = os.path.join(str(tmp_path), below)
    assert cli_main(["export-onnx", "--model", str(whisper["checkpoint"]), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "its path is not valid UTF-8" in err and "Pass a UTF-8 path" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("below", ["x", "x/y"])
def test_cli_refuses_an_out_below_a_file_before_any_work(whisper, no_work, tmp_path, capsys, below):
    (tmp_path / "FILE").write_text("mine")
    out = tmp_path / "FILE" / below
    assert cli_main(["export-onnx", "--model", str(whisper["checkpoint"]), "--out", str(out)]) == 2
    assert f"--out {out} cannot be created: {tmp_path / 'FILE'} is a file, not a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["FILE"] and (tmp_path / "FILE").read_text() == "mine"
