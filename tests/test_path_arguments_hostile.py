"""Every public function that takes a path takes one given as bytes or as a path-like giving bytes, and refuses, naming
the argument, what can name no file or folder: a path-like giving no path (or failing), a NUL byte, an empty path
(which pathlib reads as the current folder). Found by a hostile audit of the entry points the first pass missed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from test_path_like_inputs import BytesPath

from ser_hf.errors import CorpusError, ModelError, SERError
from ser_hf.hub import HubError
from ser_hf.paths import display_path, path_text


class Failing:
    def __fspath__(self):
        raise ValueError("no path today")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from ser_hf.testing.models import tiny_classifier

    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("model"), ["neutral", "happy", "sad", "angry"])


def test_a_path_like_that_fails_or_holds_a_nul_byte_is_refused_naming_the_argument():
    with pytest.raises(SERError, match=r"out gives no path: its __fspath__ raised ValueError: no path today\. Pass"):
        path_text(Failing(), "out")
    assert display_path(Failing()) == "<Failing giving no path>"  # messages that name it never raise
    with pytest.raises(SERError, match=r"out 'a\\\\x00b' holds a NUL byte, which no file or folder name can hold"):
        path_text("a\0b", "out")
    with pytest.raises(SERError, match=r"out is an empty path, which names no file or folder \(the current folder is "
                                       r"'\.'\); pass a path"):
        path_text(BytesPath(""), "out", refuse_empty=True)
    assert path_text("", "out") == ""  # callers that give "" a meaning of their own still may


def test_a_saved_checkpoint_evaluation_and_baseline_folder_may_be_bytes(checkpoint, tmp_path):
    from ser_hf.evaluation.report import EvaluationReport
    from ser_hf.inference.predict import load_classifier
    from ser_hf.models.factory import save_checkpoint

    model, extractor = load_classifier(BytesPath(checkpoint))
    out = save_checkpoint(model, extractor, os.fsencode(tmp_path / "copy"))
    assert (tmp_path / "copy" / "config.json").is_file() and out == tmp_path / "copy"
    report = EvaluationReport.from_predictions(np.array([0, 1]), probabilities=np.eye(4)[[0, 1]],
                                               label_names=["neutral", "happy", "sad", "angry"])
    report.write(BytesPath(tmp_path / "report"))
    assert (tmp_path / "report" / "report.json").is_file()


@pytest.mark.parametrize("call, argument, error", [
    ("save_checkpoint", "out_dir", ModelError),
    ("load_classifier", "the model", ModelError),
    ("export_onnx model", "--model", ModelError),
    ("export_onnx out", "--out", ModelError),
    ("quantize_int8", "out_file", ModelError),
    ("load_baseline", "the baseline folder", ModelError),
    ("push_to_hub", "--model", HubError),
    ("push_model", "--model", HubError),
    ("load_corpus", r"--data-dir \(data_dir\)", CorpusError),
])
@pytest.mark.parametrize("bad, says", [(Failing(), "gives no path"), ("", "is an empty path"),
                                       ("a\0b", "holds a NUL byte")], ids=["failing", "empty", "nul"])
def test_what_names_no_folder_is_refused_naming_the_argument(checkpoint, tmp_path, monkeypatch, call, argument, error,
                                                            bad, says):
    monkeypatch.chdir(tmp_path)  # an empty path must not reach the current folder: it would be this one
    from ser_hf.baseline.model import load_baseline
    from ser_hf.corpora import load_corpus
    from ser_hf.hub import push_model, push_to_hub
    from ser_hf.inference.onnx import export_onnx, quantize_int8
    from ser_hf.inference.predict import load_classifier
    from ser_hf.models.factory import save_checkpoint

    calls = {
        "save_checkpoint": lambda: save_checkpoint(*load_classifier(checkpoint), bad),
        "load_classifier": lambda: load_classifier(bad),
        "export_onnx model": lambda: export_onnx(bad, tmp_path / "onnx"),
        "export_onnx out": lambda: export_onnx(checkpoint, bad),
        "quantize_int8": lambda: quantize_int8(tmp_path / "model.onnx", bad),
        "load_baseline": lambda: load_baseline(bad),
        "push_to_hub": lambda: push_to_hub(bad, "me/model"),
        "push_model": lambda: push_model(bad, "me/model"),
        "load_corpus": lambda: load_corpus("urdu", bad),
    }
    with pytest.raises(error, match=f"{argument}.*{says}"):
        calls[call]()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, here or anywhere named by the repr


def test_save_speaker_model_refuses_an_empty_folder_instead_of_writing_into_the_current_one(
        tiny_adaptive_checkpoint, tmp_path, monkeypatch):
    from ser_hf.inference.recognizer import EmotionRecognizer

    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    recognizer.enroll("s", [str(corpus[i]["audio"]) for i in range(3)])
    monkeypatch.chdir(tmp_path)
    for bad, says in [("", "is an empty path"), ("a\0b", "holds a NUL byte"), (Failing(), "gives no path")]:
        with pytest.raises(ModelError, match=f"out_dir.*{says}"):
            recognizer.save_speaker_model("s", bad)
    assert list(tmp_path.iterdir()) == []


def test_recipe_values_that_are_paths_become_their_text_never_their_repr(tmp_path):
    from ser_hf.training.recipes import parse_run

    run = parse_run(data_dir=BytesPath(tmp_path / "data"), output_dir=os.fsencode(tmp_path / "run"))
    assert (run.data.data_dir, run.training.output_dir) == (str(tmp_path / "data"), str(tmp_path / "run"))
    with pytest.raises(SERError, match=r"output_dir gives no path: its __fspath__ raised ValueError"):
        parse_run(output_dir=Failing())
    recipe = tmp_path / "r.yaml"
    recipe.write_text("num_folds: 3\n")
    assert parse_run(BytesPath(recipe)).data.num_folds == 3


def test_an_audio_path_that_names_no_file_is_refused_as_such(tmp_path, monkeypatch):
    from ser_hf.audio import is_audio_path, load_audio

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SERError, match=r"The audio path is an empty path"):
        load_audio("", 16000)
    with pytest.raises(SERError, match=r"The audio path 'a\\\\x00b\.wav' holds a NUL byte"):
        load_audio("a\0b.wav", 16000)
    assert not is_audio_path("") and not is_audio_path(Failing()) and is_audio_path(BytesPath("x.flac"))
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32), 16000)
    assert load_audio(BytesPath(tmp_path / "x.wav"), 16000).size == 1600


def test_a_missing_corpus_folder_that_is_not_utf8_is_named_printably(tmp_path):
    from ser_hf.corpora import load_corpus

    missing = os.fsdecode(os.fsencode(tmp_path) + b"/nope\xff")
    with pytest.raises(CorpusError, match=r"Corpus directory '.*nope\\\\xff' does not exist") as raised:
        load_corpus("urdu", missing)
    str(raised.value).encode("utf-8")  # writable to a UTF-8 log: no lone surrogate left in it


# --- a second audit round: the entry points the first pass still missed -------------------------------------------

def _calls(tmp_path, checkpoint):
    """Each entry point with its path argument ``bad``, and how its message names that argument."""
    from ser_hf.baseline.extraction import extract_dataset_features
    from ser_hf.baseline.feature_config import FeatureConfig
    from ser_hf.cards.files import card_data_file, update_model_card
    from ser_hf.corpora.hf_dataset import DatasetSource
    from ser_hf.evaluation.cv_summary import write_cv_summary
    from ser_hf.evaluation.report import EvaluationReport
    from ser_hf.evaluation.robustness import PerturbationSettings, _Predictor
    from ser_hf.inference.onnx_runtime import load_onnx_classifier
    from ser_hf.models.backbones import models_cache_dir
    from ser_hf.models.ct2_reader import read_ct2_model
    from ser_hf.models.ct2_source import check_source_dir
    from ser_hf.models.factory import load_backbone_config
    from ser_hf.service.access import resolve_api_key

    report = EvaluationReport.from_predictions(np.array([0, 1]), probabilities=np.eye(4)[[0, 1]],
                                               label_names=["neutral", "happy", "sad", "angry"])
    return {
        "models_cache_dir": (lambda bad: models_cache_dir(bad), r"--cache-dir \(cache_dir\)"),
        "extract_dataset_features": (lambda bad: extract_dataset_features([], FeatureConfig(), cache_dir=bad),
                                     r"cache_dir=\.\.\.\) \(--cache-dir\)"),
        "perturbation cache": (lambda bad: _Predictor(None, None, None, PerturbationSettings((), 0, bad), 1, False),
                               r"the perturbation cache folder \(--perturb-cache-dir\)"),
        "write_cv_summary": (lambda bad: write_cv_summary(bad, {"folds": []}, report, {}), "out_dir"),
        "to_json": (lambda bad: report.to_json(bad), "path"),
        "from_json": (lambda bad: EvaluationReport.from_json(bad), "path"),
        "load_onnx_classifier": (lambda bad: load_onnx_classifier(bad), "the ONNX export"),
        "load_backbone_config": (lambda bad: load_backbone_config(bad), r"the backbone \(model_name_or_path\)"),
        "check_source_dir": (lambda bad: check_source_dir(bad), r"faster-whisper model directory \(src_dir\)"),
        "read_ct2_model": (lambda bad: read_ct2_model(bad), "the CTranslate2 model file"),
        "resolve_api_key": (lambda bad: resolve_api_key(api_key_file=bad), "--api-key-file"),
        "update_model_card": (lambda bad: update_model_card(bad), "checkpoint_dir"),
        "card_data_file": (lambda bad: card_data_file(bad), "checkpoint_dir"),
        "DatasetSource": (lambda bad: DatasetSource(bad), "--dataset_name"),
    }


CALLS = ["models_cache_dir", "extract_dataset_features", "perturbation cache", "write_cv_summary", "to_json",
         "from_json", "load_onnx_classifier", "load_backbone_config", "check_source_dir", "read_ct2_model",
         "resolve_api_key", "update_model_card", "card_data_file", "DatasetSource"]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad, says", [(Failing(), "gives no path"), ("", "is an empty path"),
                                       (BytesPath(""), "is an empty path"), ("a\0b", "holds a NUL byte")],
                         ids=["failing", "empty", "empty-path-like", "nul"])
def test_every_other_entry_point_refuses_what_names_no_path_and_writes_nothing(checkpoint, tmp_path, monkeypatch,
                                                                              call, bad, says):
    monkeypatch.chdir(tmp_path)  # "" must not reach the current folder: it would be this one
    function, argument = _calls(tmp_path, checkpoint)[call]
    with pytest.raises(SERError, match=f"{argument}.*{says}"):
        function(bad)
    assert list(tmp_path.iterdir()) == []


def test_the_other_entry_points_take_bytes_paths(checkpoint, tmp_path):
    from ser_hf.corpora.hf_dataset import DatasetSource
    from ser_hf.evaluation.report import EvaluationReport
    from ser_hf.inference.onnx_runtime import is_onnx_export
    from ser_hf.models.backbones import models_cache_dir
    from ser_hf.models.factory import load_backbone_config
    from ser_hf.service.access import resolve_api_key

    assert models_cache_dir(BytesPath(tmp_path / "models")) == tmp_path / "models"
    report = EvaluationReport.from_predictions(np.array([0, 1]), probabilities=np.eye(4)[[0, 1]],
                                               label_names=["neutral", "happy", "sad", "angry"])
    report.to_json(BytesPath(tmp_path / "r.json"))
    assert EvaluationReport.from_json(os.fsencode(tmp_path / "r.json")).to_dict() == report.to_dict()
    assert load_backbone_config(BytesPath(checkpoint)).model_type == "wav2vec2"
    (tmp_path / "key").write_text("secret\n")
    assert resolve_api_key(api_key_file=BytesPath(tmp_path / "key")) == "secret"
    assert DatasetSource(BytesPath(tmp_path / "data")).name == str(tmp_path / "data")
    assert not is_onnx_export(b"") and not is_onnx_export(Failing()) and not is_onnx_export(os.fsencode(checkpoint))


def test_a_clip_path_that_fails_or_holds_a_nul_byte_is_named_once(checkpoint):
    from ser_hf.errors import AudioError
    from ser_hf.inference.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained(checkpoint)
    with pytest.raises(AudioError) as raised:
        recognizer.predict("a\0b.wav")
    message = str(raised.value)
    assert message.count("x00b.wav") == 1 and "holds a NUL byte" in message, message
    for call in (recognizer.predict, recognizer.load_raw, lambda item: recognizer.predict_long(item, window=1.0)):
        with pytest.raises(AudioError, match=r"the Failing given gives no path: its __fspath__ raised ValueError"):
            call(Failing())


def test_the_server_names_a_model_given_as_bytes_by_its_folder(checkpoint, monkeypatch):
    import uvicorn

    from ser_hf.service import server

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    server.serve(BytesPath(checkpoint), port=0)  # returns once "running" ends: here at once
    from fastapi.testclient import TestClient

    assert served["port"] == 0
    assert TestClient(served["app"]).get("/health").json()["model"] == os.path.basename(checkpoint)
