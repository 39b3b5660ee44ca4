"""predict_files' arguments: one path given alone, items that are not paths, no inputs, and the counts it takes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.inference.jobs import expand_inputs, predict_files, read_records
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]

pytestmark = pytest.mark.usefixtures("single_torch_thread")

IN_MEMORY = r"For audio in memory \(arrays, \(array, rate\) pairs, tensors\) use EmotionRecognizer\.predict\."


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("arguments") / "model", FOUR, seed=0)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The current folder: ``a.wav``, and ``other/unrelated.wav`` that only a walk of the whole folder would find."""
    monkeypatch.chdir(tmp_path)
    write_tone(tmp_path / "a.wav", duration=0.3)
    write_tone(tmp_path / "other" / "unrelated.wav", duration=0.3, frequency=300)
    return tmp_path


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------------------------ a single path is one input

@pytest.mark.parametrize("given", ["a.wav", Path("a.wav"), "absolute", np.array("a.wav")])  # 0-d: no iteration
def test_a_single_path_is_one_input_not_the_letters_of_its_name(model, folder, given):
    given = str(folder / "a.wav") if given == "absolute" else given  # "/" first: the whole disk, letter by letter
    summary = predict_files(model, given, "p.jsonl", progress=False)
    assert summary["inputs"] == 1 and summary["predicted"] == 1 and summary["errors"] == 0
    assert [record["path"] for record in read_records(folder / "p.jsonl")] == [str(folder / "a.wav")]


def test_a_folder_given_alone_is_walked(model, folder):
    summary = predict_files(model, Path("other"), "p.jsonl", progress=False)
    assert summary["inputs"] == 1
    assert [record["path"] for record in read_records(folder / "p.jsonl")] == [str(folder / "other" / "unrelated.wav")]


@pytest.mark.parametrize("inputs, found", [
    (np.zeros(16000, dtype=np.float32), r"an array of shape \(16000,\) \(ndarray\)"),
    ({"array": np.zeros(16000), "sampling_rate": 16000}, "a dict"),
    (b"a.wav", r"bytes \(one path as bytes goes in a list"),
    (None, "None"),
    (3, "an int"),
])
def test_what_is_no_list_of_paths_is_refused_before_any_work(folder, inputs, found):
    before = _listing(folder)
    with pytest.raises(SERError, match=rf"inputs must be a list of paths, e\.g\. predict_files\(model, \[.*got {found}"
                                       rf".*takes paths \(files, folders, glob patterns, manifest CSVs\)\. {IN_MEMORY}"):
        predict_files("unused-model", inputs, "p.jsonl", progress=False)
    assert _listing(folder) == before  # no output, lock or job file: refused before the model was even looked up


def test_a_tensor_is_refused_as_audio_in_memory(folder):
    torch = pytest.importorskip("torch")
    with pytest.raises(SERError, match=rf"got an array of shape \(2, 8000\) \(Tensor\).*{IN_MEMORY}"):
        predict_files("unused-model", torch.zeros(2, 8000), "p.jsonl", progress=False)
    assert not (folder / "p.jsonl").exists()


# ------------------------------------------------------------------------------ items that are not paths

@pytest.mark.parametrize("item, found", [
    (np.zeros(16000, dtype=np.float32), r"an array of shape \(16000,\) \(ndarray\)"),
    ((np.zeros(16000, dtype=np.float32), 16000), "a tuple"),
    ({"array": np.zeros(16000), "sampling_rate": 16000}, "a dict"),
    (None, "None"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", r"bytes holding a NUL byte .*perhaps the contents of an audio file"),
])
def test_an_item_that_is_not_a_path_is_refused_naming_its_index_and_type(folder, item, found):
    before = _listing(folder)
    # "." first: every item is checked before the first folder is walked.
    with pytest.raises(SERError, match=rf"inputs\[1\] is {found}.*{IN_MEMORY}"):
        predict_files("unused-model", [".", item], "p.jsonl", progress=False)
    with pytest.raises(SERError, match=rf"inputs\[1\] is {found}"):
        expand_inputs(["a.wav", item])
    assert _listing(folder) == before


def test_a_tensor_item_is_refused_naming_its_index_and_type(folder):
    torch = pytest.importorskip("torch")
    with pytest.raises(SERError, match=rf"inputs\[0\] is an array of shape \(16000,\) \(Tensor\), not a path.*"
                                       rf"{IN_MEMORY}"):
        predict_files("unused-model", [torch.zeros(16000)], "p.jsonl", progress=False)
    assert not (folder / "p.jsonl").exists()


def test_bytes_items_and_arrays_of_names_are_paths(model, folder):
    summary = predict_files(model, [os.fsencode(folder / "a.wav")], "p.jsonl", progress=False)
    assert summary["predicted"] == 1
    assert [record["path"] for record in read_records(folder / "p.jsonl")] == [str(folder / "a.wav")]
    # A numpy array of file names is a list of paths, not audio; a generator is read once for all the job's uses.
    assert predict_files(model, np.array(["a.wav"]), "q.jsonl", progress=False)["predicted"] == 1
    assert predict_files(model, (p for p in ["a.wav"]), "r.jsonl", progress=False)["predicted"] == 1


# ------------------------------------------------------------------------------ no inputs

@pytest.mark.parametrize("inputs", [[], (), iter([])])
def test_no_inputs_are_refused_before_any_work(folder, inputs):
    before = _listing(folder)
    with pytest.raises(SERError, match=r"no inputs: got an empty list; expected at least one file, folder, glob "
                                       r"pattern or manifest CSV, e\.g\. predict_files\(model, \['recordings/'\], out\)"):
        predict_files("unused-model", inputs, "p.jsonl", progress=False)
    assert _listing(folder) == before


def test_manifests_without_rows_are_no_inputs(folder):
    (folder / "list.csv").write_text("path,label\n")
    with pytest.raises(SERError, match=r"no inputs: \['list\.csv'\] list no audio file \(manifest CSVs without rows\)"
                                       r".*Add rows to the manifest"):
        predict_files("unused-model", ["list.csv"], "p.jsonl", progress=False)
    assert not (folder / "p.jsonl").exists()


def test_the_cli_still_refuses_no_inputs_with_its_own_message(folder, capsys):
    assert main(["predict", "--model", "unused-model", "--out", "p.jsonl", "--no-progress"]) == 2
    assert "needs input files (INPUT ...) or --dataset_name NAME, not neither" in capsys.readouterr().err
    assert not (folder / "p.jsonl").exists()


# ------------------------------------------------------------------------------ counts

@pytest.mark.parametrize("name, value", [
    ("top_k", 1.5), ("top_k", True), ("top_k", "2"), ("top_k", 0),
    ("batch_size", "8"), ("batch_size", None), ("batch_size", 2.0), ("batch_size", False), ("batch_size", 0),
    ("chunk_size", None), ("chunk_size", 1.5), ("chunk_size", "64"), ("chunk_size", -1),
])
def test_counts_that_are_not_positive_integers_are_refused_before_any_work(folder, monkeypatch, name, value):
    from ser_hf.inference.recognizer import EmotionRecognizer

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(EmotionRecognizer, "from_pretrained", no_model)
    before = _listing(folder)
    found = re.escape(f"{value!r} ({type(value).__name__})")
    with pytest.raises(SERError, match=rf"^{name} must be a positive integer \(>= 1\), got {found}; e\.g\. {name}=\d+ "
                                       rf"\(--{name.replace('_', '-')} \d+\)"):
        predict_files("unused-model", ["a.wav"], "p.jsonl", progress=False, **{name: value})
    assert _listing(folder) == before


def test_numpy_integer_counts_are_taken_as_ints(model, folder):
    summary = predict_files(model, ["a.wav"], "p.jsonl", progress=False, top_k=np.int64(2), batch_size=np.int32(2),
                            chunk_size=np.int64(4))
    assert summary["predicted"] == 1
    [record] = read_records(folder / "p.jsonl")
    assert len(record["scores"]) == 2


def test_a_dataframe_is_refused_naming_the_column_to_pass(model, folder):
    """Iterated, a DataFrame gives its column names: predict_files wrote an error record for a file named 'path' and
    returned 0 predictions without raising; enroll took the column names as clips."""
    import pandas as pd

    from ser_hf.inference.enrollment_inputs import enrollment_inputs

    table = pd.DataFrame({"speaker": ["s1"], "path": ["a.wav"]})
    found = r"got a DataFrame with columns \['speaker', 'path'\] \(iterated, a table gives its column names, not its " \
            r"rows\); pass one column, e.g. df\['path'\]"
    with pytest.raises(SERError, match=found):
        predict_files(model, table, folder / "p.jsonl", progress=False)
    assert not (folder / "p.jsonl").exists()
    with pytest.raises(SERError, match=r"clips must be a list of clips .*got a DataFrame with columns \['p'\] .*"
                                       r"pass one column, e.g. df\['p'\]\.$"):
        enrollment_inputs(pd.DataFrame({"p": ["a.wav"]}), "s")
    assert predict_files(model, table["path"], folder / "p.jsonl", progress=False)["predicted"] == 1  # the fix works


# ------------------------------------------------------------------------------ bytes-likes and rows, never walked

@pytest.mark.parametrize("make", [bytearray, memoryview])
def test_a_bytearray_or_memoryview_is_refused_whole_as_bytes_are(folder, make):
    """A bytearray or memoryview path was walked byte by byte ("inputs[0] is an int"), while bytes are refused whole."""
    with pytest.raises(SERError, match=rf"inputs must be a list of paths.*got a {make.__name__} \(one path as bytes "
                                       rf"goes in a list, \[path\]; a file's contents are no path\).*{IN_MEMORY}"):
        predict_files("unused-model", make(os.fsencode(folder / "a.wav")), "p.jsonl", progress=False)
    assert not (folder / "p.jsonl").exists()


def test_bytes_like_items_are_paths_as_bytes_items_are(folder):
    items = [bytearray(b"a.wav"), memoryview(b"a.wav"), b"a.wav"]
    assert expand_inputs(items) == [str(folder / "a.wav")]
    with pytest.raises(SERError, match=r"inputs\[0\] is bytes holding a NUL byte"):
        expand_inputs([bytearray(b"RIFF\0\0")])


def test_an_array_of_rows_is_refused_naming_its_path_column(folder):
    """df[["label", "path"]].values was walked row by row: "inputs[0] is an array of shape (2,)"."""
    rows = np.array([["happy", "a.wav"], ["sad", "a.wav"]], dtype=object)
    with pytest.raises(SERError, match=r"got an array of shape \(2, 2\) \(ndarray\): rows, not paths \(a table's "
                                       r"values, e.g. df\[\['path', 'label'\]\].values, are rows\); pass its path "
                                       r"column, e.g. list\(array\[:, 1\]\)"):
        predict_files("unused-model", rows, "p.jsonl", progress=False)
    assert expand_inputs(list(rows[:, 1])) == [str(folder / "a.wav")]  # the fix works
