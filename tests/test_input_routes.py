"""Every route to an input reaches the file the kernel opens for it, and a resumed job pairs records with inputs by one
rule.

- A ``..`` after a symlinked folder goes up from the folder the link points to (as the kernel takes it), not out of
  the link by the text: ``top/link/../clip.wav`` with ``link -> elsewhere/deep`` is ``elsewhere/clip.wav``, for files,
  folders, patterns, manifest rows and the output alike. Paths without ``..`` are named as ever.
- Inputs and the output are paths or are refused up front, naming them: a NUL byte in a str too.
- A speaker job's finished records are checked against the inputs their resume skips, whatever the route.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from ser_hf.errors import SERError
from ser_hf.inference.inputs import expand_inputs, speakers_of
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.testing.models import tiny_classifier

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("model") / "m", ["neutral", "happy", "sad", "angry"])


def _noise(path, seed: int, scale: float = 0.1) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, (scale * rng.standard_normal(16000)).astype("float32"), 16000)


@pytest.fixture
def tree(tmp_path):
    """``top/clip.wav`` and ``elsewhere/clip.wav`` (other noise), ``elsewhere/alias.wav -> clip.wav`` and
    ``top/link -> elsewhere/deep``: ``top/link/..`` is ``elsewhere`` to the kernel, ``top`` to the text."""
    root = tmp_path / "tree"
    (root / "top").mkdir(parents=True)
    (root / "elsewhere" / "deep").mkdir(parents=True)
    _noise(root / "top" / "clip.wav", 1, 0.01)
    _noise(root / "elsewhere" / "clip.wav", 2, 0.3)
    os.symlink("clip.wav", root / "elsewhere" / "alias.wav")
    os.symlink(root / "elsewhere" / "deep", root / "top" / "link")
    return root


def _real(path) -> str:
    return os.path.realpath(path)


def test_a_dotdot_after_a_symlinked_folder_scores_the_file_the_kernel_opens_and_resumes_by_it(model, tree, tmp_path):
    given = str(tree / "top" / "link" / ".." / "clip.wav")
    opened = _real(tree / "elsewhere" / "clip.wav")
    out = tmp_path / "p.jsonl"
    predict_files(model, [given], out, progress=False)
    [record] = read_records(out)
    assert record["path"] == opened and "error" not in record
    direct = tmp_path / "direct.jsonl"
    predict_files(model, [opened], direct, progress=False)
    assert record["scores"] == read_records(direct)[0]["scores"]
    # The same key in every run, by either route: nothing scored twice.
    for route in (given, opened):
        assert predict_files(model, [route], out, progress=False)["skipped"] == 1
    assert len(read_records(out)) == 1


def test_folders_patterns_and_links_in_the_file_name_follow_the_same_rule(tree, tmp_path, monkeypatch):
    real = _real(tree / "elsewhere")
    assert expand_inputs([str(tree / "top" / "link" / ".." / "alias.wav")]) == [f"{real}/alias.wav"]  # a link kept
    assert expand_inputs([str(tree / "top" / "link" / "..")]) == [f"{real}/alias.wav", f"{real}/clip.wav"]
    assert expand_inputs([str(tree / "top" / "link" / ".." / "c*.wav")]) == [f"{real}/clip.wav"]
    # A path without '..' is named as ever: absolute, links in its folders kept.
    monkeypatch.chdir(tree)
    for ordinary in ("top/clip.wav", "./top//clip.wav", "elsewhere/alias.wav"):
        assert expand_inputs([ordinary]) == [os.path.abspath(ordinary)]
    (tree / "top" / "link" / "in.wav").symlink_to(tree / "top" / "clip.wav")
    assert expand_inputs(["top/link/in.wav"]) == [os.path.join(os.getcwd(), "top/link/in.wav")]


def test_a_dotdot_the_kernel_cannot_take_stays_in_the_path_and_gets_an_error_record(model, tree, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.chdir(tree / "top")  # clip.wav is here: '..' taken by the text would reach it
    missing, through_file = "missing/../clip.wav", "clip.wav/../clip.wav"
    assert expand_inputs([missing, through_file]) == [os.path.join(os.getcwd(), p) for p in (missing, through_file)]
    out = tmp_path / "p.jsonl"
    summary = predict_files(model, [missing, through_file], out, progress=False)
    assert summary["error_records"] == 2 and all("error" in record for record in read_records(out))
    assert predict_files(model, [missing, through_file], out, progress=False)["skipped"] == 2


def test_a_manifest_reached_through_a_symlinked_folder_lists_the_files_beside_its_real_folder(tmp_path):
    (tmp_path / "data" / "set1").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    _noise(tmp_path / "data" / "shared.wav", 3)
    (tmp_path / "data" / "set1" / "m.csv").write_text("path,speaker\n../shared.wav,s1\n")
    (tmp_path / "work" / "set1").symlink_to(tmp_path / "data" / "set1")
    manifest = str(tmp_path / "work" / "set1" / "m.csv")
    shared = _real(tmp_path / "data" / "shared.wav")
    paths = expand_inputs([manifest])
    assert paths == [shared]
    assert speakers_of(paths, [manifest], column="speaker") == {shared: "s1"}  # the same key as the expansion


def test_an_output_named_through_a_dotdot_after_a_link_is_never_read_as_an_input(tree):
    to_be = tree / "elsewhere" / "pred.jsonl"  # does not exist yet: recognised by its name in its real folder
    with pytest.raises(SERError, match=r"input '.*/elsewhere/pred\.jsonl' is the output file --out"):
        expand_inputs([str(to_be)], output=str(tree / "top" / "link" / ".." / "pred.jsonl"))


# ------------------------------------------------------------------------------------------------ path arguments

class _FailingPath:
    def __fspath__(self):
        raise RuntimeError("no disk")


class _BytesPath:
    def __init__(self, path: bytes) -> None:
        self.path = path

    def __fspath__(self) -> bytes:
        return self.path


def test_a_str_input_holding_a_nul_byte_is_refused_up_front_naming_it(model, tmp_path):
    _noise(tmp_path / "ok.wav", 4)
    out = tmp_path / "p.jsonl"
    with pytest.raises(SERError, match=r"inputs\[1\] 'a\\\\x00b\.wav' holds a NUL byte, which no file"):
        predict_files(model, [str(tmp_path / "ok.wav"), "a\0b.wav"], out, progress=False)
    assert not out.exists()
    with pytest.raises(SERError, match=r"inputs\[0\] .*holds a NUL byte"):
        expand_inputs(["a\0b"])


def test_the_output_may_be_bytes_and_is_refused_naming_it_when_it_is_no_path(tmp_path):
    for name in ("a.wav", "b.wav"):
        _noise(tmp_path / name, 5)
    kept = [str(tmp_path / "a.wav")]
    for output in (os.fsencode(tmp_path / "b.wav"), _BytesPath(os.fsencode(tmp_path / "b.wav"))):
        assert expand_inputs([str(tmp_path)], output=output) == kept  # the output left out of the folder
    for output, says in (("x\0y.jsonl", r"output 'x\\\\x00y\.jsonl' holds a NUL byte"),
                         (b"x\0y.jsonl", r"output .*holds a NUL byte"), ("", r"output is an empty path"),
                         (_FailingPath(), r"output gives no path: its __fspath__ raised RuntimeError")):
        with pytest.raises(SERError, match=says):
            expand_inputs(kept, output=output)


# ------------------------------------------------------------------------------------------------ speaker jobs

@pytest.mark.parametrize("job", [{}, {"window": 0.4, "hop": 0.2}], ids=["clip job", "window job"])
def test_a_speaker_job_resumed_through_a_linked_folder_checks_the_records_its_resume_skips(
        tiny_adaptive_checkpoint, tmp_path, job):
    """One recording under two names the pattern gives to two speakers: each record is checked against the input it
    finishes (the same name in the same real folder), not whichever name of the file was listed last."""
    corpus, checkpoint = tiny_adaptive_checkpoint
    folder = tmp_path / "F"
    folder.mkdir()
    for name, speaker, index in (("SM1_a", "SM1", 0), ("SM1_b", "SM1", 1), ("SF2_a", "SF2", 0)):
        shutil.copyfile([row["audio"] for row in corpus if row["speaker"] == speaker][index], folder / f"{name}.wav")
    os.symlink("SM1_a.wav", folder / "SF2_x.wav")  # the same recording, named for SF2
    os.symlink("SM1_a.wav", folder / "SM1_z.wav")  # and for SM1
    (tmp_path / "LF").symlink_to(folder)
    settings = {"speaker_pattern": r"/(S[MF]\d)_[^/]*$", "progress": False, "chunk_size": 1, **job}
    whole = tmp_path / "whole.jsonl"
    predict_files(checkpoint, [folder], whole, **settings)
    lines = whole.read_bytes().splitlines(keepends=True)
    assert [(os.path.basename(json.loads(line)["path"]), json.loads(line)["speaker"]) for line in lines[1:3]] == \
        [("SF2_a.wav", "SF2"), ("SF2_x.wav", "SF2")]
    for route in (folder, tmp_path / "LF"):
        out = tmp_path / f"cut_{route.name}.jsonl"
        out.write_bytes(b"".join(lines[:3]))  # killed after two records
        summary = predict_files(checkpoint, [route], out, **settings)
        assert (summary["skipped"], summary["predicted"]) == (2, 3)
        assert [r["speaker"] for r in read_records(out)] == [json.loads(line)["speaker"] for line in lines[1:]]


def test_a_corpus_folder_with_dotdot_after_a_linked_folder_is_the_one_the_kernel_opens(tmp_path):
    """The same rule for corpus folders (``paths.path_key``): ``top/link/..`` is the folder above the link's target."""
    from ser_hf.corpora import load_corpus
    from ser_hf.testing.corpora import make_corpus_tree

    elsewhere = make_corpus_tree("urdu", tmp_path / "elsewhere", duration=0.3)
    (elsewhere / "deep").mkdir()
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(elsewhere / "deep")
    assert len(load_corpus("urdu", tmp_path / "top" / "link" / "..")) == len(load_corpus("urdu", elsewhere))
