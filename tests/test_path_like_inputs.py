"""Path-likes whose ``__fspath__`` gives bytes are paths (``os.fspath`` allows them, ``pathlib`` does not), and those
that give no path are refused naming the argument, at every place a caller hands ser_hf a path."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ser_hf.errors import AudioError, ModelError, SERError
from ser_hf.inference.jobs import predict_files
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.paths import display_path, path_text

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class BytesPath:
    """A path-like that gives its path as bytes, as ``os.fspath`` allows."""

    def __init__(self, path):
        self.path = os.fsencode(path)

    def __fspath__(self):
        return self.path


class NoPath:
    """A path-like whose ``__fspath__`` gives a number: no path at all."""

    def __fspath__(self):
        return 3


NO_PATH = r"gives no path: expected NoPath.__fspath__\(\) to return str or bytes, not int"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    return path


def test_path_text_reads_str_bytes_and_path_likes_and_names_what_gives_none():
    assert path_text("a.wav", "x") == "a.wav"
    assert path_text(b"\xff.wav", "x") == os.fsdecode(b"\xff.wav")
    assert path_text(BytesPath("a.wav"), "x") == "a.wav"
    with pytest.raises(AudioError, match=f"the input {NO_PATH}"):
        path_text(NoPath(), "the input", error=AudioError)
    with pytest.raises(SERError, match="the input gives no path: expected str, bytes or os.PathLike object, not int"):
        path_text(3, "the input")
    assert display_path(NoPath()) == "<NoPath giving no path>"  # messages that name it never raise


@pytest.mark.parametrize("call", ["predict", "predict list", "predict_long", "load_raw"])
def test_a_path_like_giving_bytes_is_scored_as_its_file(four_class_recognizer, clip, call):
    recognizer, path = four_class_recognizer, BytesPath(clip)
    if call == "predict":
        assert recognizer.predict(path) == recognizer.predict(str(clip))
    elif call == "predict list":
        assert recognizer.predict([path]) == recognizer.predict([str(clip)])
    elif call == "predict_long":
        assert recognizer.predict_long(path, window=0.5) == recognizer.predict_long(str(clip), window=0.5)
    else:
        np.testing.assert_array_equal(recognizer.load_raw(path), recognizer.load_raw(str(clip)))


@pytest.mark.parametrize("call, match", [
    ("predict", f"the NoPath given {NO_PATH}"),
    ("predict list", f"the NoPath at index 0 {NO_PATH}"),
    ("predict_long", f"the NoPath given {NO_PATH}"),
])
def test_a_path_like_giving_no_path_is_refused_naming_it(four_class_recognizer, call, match):
    recognizer = four_class_recognizer
    with pytest.raises(AudioError, match=match):
        if call == "predict":
            recognizer.predict(NoPath())
        elif call == "predict list":
            recognizer.predict([NoPath()])
        else:
            recognizer.predict_long(NoPath(), window=0.5)


def test_a_job_takes_path_likes_giving_bytes_for_its_inputs_and_out(four_class_recognizer, clip, tmp_path):
    out = tmp_path / "predictions.jsonl"
    summary = predict_files(four_class_recognizer, [BytesPath(clip)], BytesPath(out), progress=False)
    assert summary["predicted"] == 1 and out.is_file()


@pytest.mark.parametrize("argument", ["inputs", "out", "model"])
def test_a_job_refuses_a_path_like_giving_no_path_naming_the_argument(four_class_recognizer, clip, tmp_path, argument):
    model, inputs, out = four_class_recognizer, [clip], tmp_path / "p.jsonl"
    if argument == "inputs":
        inputs, match = [NoPath()], f"inputs\\[0\\] {NO_PATH}"
    elif argument == "out":
        out, match = NoPath(), f"out {NO_PATH}"
    else:
        model, match = NoPath(), f"the model {NO_PATH}"
    with pytest.raises(SERError, match=match):
        predict_files(model, inputs, out, progress=False)
    assert not out.exists() if argument != "out" else True


def test_from_pretrained_takes_a_path_like_giving_bytes_and_refuses_one_giving_none(four_class_recognizer):
    folder = four_class_recognizer.model.name_or_path
    loaded = EmotionRecognizer.from_pretrained(BytesPath(folder))
    assert loaded.labels == four_class_recognizer.labels
    with pytest.raises(ModelError, match=f"model {NO_PATH}"):
        EmotionRecognizer.from_pretrained(NoPath())


def test_enrollments_and_speaker_models_take_path_likes_giving_bytes_and_refuse_ones_giving_none(
        tiny_adaptive_checkpoint, tmp_path):
    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(BytesPath(checkpoint))
    speaker = "s1"
    recognizer.enroll(speaker, [BytesPath(str(corpus[i]["audio"])) for i in range(3)])  # the synthetic tree's files
    saved = recognizer.save_enrollments(BytesPath(tmp_path / "speakers"))
    assert recognizer.load_enrollments(BytesPath(saved.with_suffix(""))) == [speaker]
    assert (recognizer.save_speaker_model(speaker, BytesPath(tmp_path / "model")) / "config.json").is_file()
    for call, what in [(recognizer.save_enrollments, "cannot save enrollments: the path"),
                       (recognizer.load_enrollments, "cannot load enrollments: the path"),
                       (lambda path: recognizer.save_speaker_model(speaker, path), "out_dir")]:
        with pytest.raises(SERError, match=f"{what} {NO_PATH}"):
            call(NoPath())


@pytest.mark.parametrize("corpus", ["urdu", "folder"])
def test_a_corpus_folder_may_be_a_path_like_giving_bytes(tmp_path, corpus):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.3)
    assert len(load_corpus(corpus, BytesPath(root))) == len(load_corpus(corpus, root))
    with pytest.raises(CorpusError, match=f"--data-dir \\(data_dir\\) {NO_PATH}"):
        load_corpus(corpus, NoPath())
