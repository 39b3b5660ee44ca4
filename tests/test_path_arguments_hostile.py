"""Every public function that takes a path takes one given as bytes or as a path-like giving bytes, and refuses, naming
the argument, what can name no file or folder: a path-like giving no path (or failing), a NUL byte, an empty path
(which pathlib reads as the current folder). Found by a hostile audit of the entry points the first pass missed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ser_hf.errors import CorpusError, ModelError, SERError
from ser_hf.hub import HubError
from ser_hf.paths import display_path, path_text


class BytesPath:
    def __init__(self, path):
        self.path = os.fsencode(path)

    def __fspath__(self):
        return self.path


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
