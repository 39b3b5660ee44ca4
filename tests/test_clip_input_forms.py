"""The forms a clip, a list of clips or a stream's chunk come in, as datasets, pandas, microphones and paths give them.

A decoded datasets (< 4) cell keeps its decoder's limits; raw bytes pushed to a stream, bytes that spell a path, a
single item where a list of clips is expected, and collections of another kind are each named with the fix (never
walked item by item, never called "the audio array" when they are bytes, never told a fix that fails).
"""

from __future__ import annotations

import array
import collections
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_hf.errors import AudioError, SERError
from ser_hf.inference.clip_inputs import is_array
from ser_hf.inference.enrollment_inputs import enrollment_inputs
from ser_hf.inference.inputs import has_array_shape, is_path_array
from ser_hf.inference.recognizer import EmotionRecognizer

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def recognizer(four_class_recognizer):
    return four_class_recognizer


@pytest.fixture(scope="module")
def wave(noise_wave):
    return noise_wave


@pytest.fixture
def clip(tmp_path, wave):
    path = tmp_path / "clip.wav"
    sf.write(path, wave, RATE)
    return path


def _scores(result):
    return pytest.approx(result["scores"], abs=1e-6)


# --- #7: a datasets (< 4) Audio cell keeps the limits of the decoder that read its file ---------------------------


def test_a_decoded_cell_that_names_its_file_keeps_the_decoders_limits(recognizer, wave, tmp_path):
    """{"array", "sampling_rate", "path"} of a float file with samples up to 3000 was refused as unscaled PCM, while
    the same file as a path, bytes or a torchcodec decoder is scored."""
    path = tmp_path / "float3000.wav"
    sf.write(path, np.clip(np.round(wave * 10000), -3000, 3000), RATE, subtype="FLOAT")
    decoded = sf.read(path, dtype="float32")[0]
    expected = _scores(recognizer.predict(str(path)))
    for named in (str(path), path):
        assert recognizer.predict({"array": decoded, "sampling_rate": RATE, "path": named})["scores"] == expected
    # A caller's dict (no float file named: a name not on disk is no proof) is still held to the caller-array rule.
    for cell in ({"array": decoded, "sampling_rate": RATE}, {"array": decoded, "sampling_rate": RATE, "path": None},
                 {"array": decoded, "sampling_rate": RATE, "path": ""},
                 {"array": decoded, "sampling_rate": RATE, "path": "float3000.wav"}):
        with pytest.raises(AudioError, match="integer PCM converted to float without being scaled"):
            recognizer.predict(cell)


# --- #8: a stream's chunk that holds no samples ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [bytes, bytearray, lambda data: memoryview(bytes(data))])
def test_raw_pcm_bytes_pushed_are_named_with_the_fix_that_works(recognizer, wave, make):
    """bytes were told to pass np.asarray(samples, dtype=np.float32) (which fails); a memoryview or bytearray was told
    to convert uint8, which turns int16 PCM into noise."""
    pcm = np.round(wave * 2000).astype(np.int16)
    with pytest.raises(AudioError, match=r"the chunk given to stream.push is raw bytes \(\w+, 32000 bytes\), not "
                                         r"samples.*np.frombuffer\(chunk, dtype=np.int16\).*32768") as err:
        recognizer.stream(window=0.5, hop=0.5).push(make(pcm.tobytes()))
    assert "uint8" not in str(err.value).split("not numbers")[-1]  # no advice to read them as uint8
    fixed, expected = recognizer.stream(window=0.5, hop=0.5), recognizer.stream(window=0.5, hop=0.5)
    got = fixed.push(np.frombuffer(make(pcm.tobytes()), dtype=np.int16)) + fixed.flush()
    assert [w["scores"] for w in got] == [_scores(w) for w in expected.push(pcm) + expected.flush()] and got


@pytest.mark.parametrize("chunk, found, fix", [
    (None, "None", r"push nothing when no audio came, and call flush\(\)"),
    ({"array": np.zeros(800), "sampling_rate": RATE}, "a dict", r"push chunk\['array'\] to a stream made at its rate"),
    (Path("clip.wav"), "a PosixPath" if os.name == "posix" else "a WindowsPath", r"predict_long\(path\)"),
    ((x for x in [0.1, 0.2]), "a generator", r"for chunk in chunks: stream.push\(chunk\)"),
    ({0.1, 0.2}, "a set", r"for chunk in chunks: stream.push\(chunk\)"),
])
def test_what_is_no_chunk_of_samples_is_named_by_its_type(recognizer, chunk, found, fix):
    with pytest.raises(AudioError, match=rf"the chunk given to stream.push is {found}, not samples.*push takes one "
                                         rf"chunk of samples, a 1-D array: .*{fix}"):
        recognizer.stream().push(chunk)


# --- #9: a path given as bytes -----------------------------------------------------------------------------------


def test_bytes_that_spell_a_path_are_told_to_be_decoded_not_re_encoded(recognizer, clip, tmp_path):
    """predict, predict_long and enroll read b"clip.wav" as a file's contents: "the audio array (17 bytes) cannot be
    decoded ... re-encode it"."""
    expected = _scores(recognizer.predict(str(clip)))
    for call, name in ((recognizer.predict, "the bytes given"), (recognizer.predict_long, "the bytes given"),
                       (lambda b: recognizer.predict([str(clip), b]), "the bytes at index 1")):
        for given, found in ((os.fsencode(clip), "an existing file"),
                             (bytearray(os.fsencode(tmp_path / "gone.flac")), "a path to an audio file")):
            with pytest.raises(AudioError, match=rf"^{name} \(\d+ bytes\) cannot be decoded as an audio file's "
                                                 rf"contents: they name {found}, '.*'\. .*pass the path as text, "
                                                 rf"os.fsdecode\(path\)") as err:
                call(given)
            assert "audio array" not in str(err.value)
    assert recognizer.predict(os.fsdecode(os.fsencode(clip)))["scores"] == expected  # the fix works
    # Bytes that are no path are still a bad file.
    for data in (b"not a file of audio", b"notes.txt", b"a\0b.wav"):
        with pytest.raises(AudioError, match=r"^the bytes given \(\d+ bytes\) cannot be decoded \(.*re-encode it"):
            recognizer.predict(data)
    with pytest.raises(AudioError, match=r"the audio array is a numpy array of shape \(\) \(dtype \|S\d+\) holding "
                                         r"paths.*os.fsdecode\(array.item\(\)\)"):
        recognizer.predict(np.array(os.fsencode(clip)))


def test_enroll_takes_an_array_of_bytes_paths_as_predict_files_does(tiny_adaptive_checkpoint):
    """An S-dtype array of paths was taken as a collection of clips, then each path read as a file's contents."""
    corpus, checkpoint = tiny_adaptive_checkpoint
    paths = [str(corpus[i]["audio"]) for i in range(3)]  # the synthetic URDU tree's files
    adaptive = EmotionRecognizer.from_pretrained(checkpoint)
    by_text = adaptive.enroll("t", paths)
    assert adaptive.enroll("b", np.array([os.fsencode(p) for p in paths])) == {**by_text, "speaker": "b"}
    assert enrollment_inputs(np.array([b"a.wav", b"b.wav"]), "s") == ["a.wav", "b.wav"]
    with pytest.raises(SERError, match=r"got a single path 'a.wav'; wrap it"):
        enrollment_inputs(np.array(b"a.wav"), "s")
    with pytest.raises(AudioError, match=r"the bytes at index 0 \(\d+ bytes\) cannot be decoded as an audio file's "
                                         r"contents: they name an existing file.*os.fsdecode\(path\)"):
        adaptive.enroll("l", [os.fsencode(p) for p in paths])


# --- #10: predict_waves given one item, not a list of clips ---------------------------------------------------------


@pytest.mark.parametrize("waves, found", [
    ("clip.wav", r"a single path 'clip.wav'"),
    (b"abc", r"a single clip \(the bytes of a file\)"),
    (bytearray(b"abc"), r"a single clip \(the bytes of a file\)"),
    (memoryview(b"abc"), r"a single clip \(the bytes of a file\)"),
    ({"array": np.zeros(RATE, np.float32), "sampling_rate": RATE}, r"a single clip \(a dict of its samples\)"),
    ({"a": np.zeros(RATE, np.float32)}, "a dict"),
    ((np.zeros(RATE, np.float32), RATE), r"a single \(array, rate\) pair"),
])
def test_predict_waves_refuses_one_item_before_walking_it(recognizer, waves, found):
    """A str was walked letter by letter ("waves[0] is a str"), bytes byte by byte ("waves[0] is a int"), a dict by its
    keys."""
    with pytest.raises(AudioError, match=rf"^waves must be a list of 1-D arrays of samples at 16000 Hz, got {found}. "
                                         rf"Pass \[wave\] for one array of samples; for one clip of another kind .* "
                                         rf"use predict"):
        recognizer.predict_waves(waves)


def test_predict_waves_refuses_a_table_and_one_clip_held_as_objects(recognizer, wave):
    import pandas as pd

    with pytest.raises(AudioError, match=r"waves must be a list .*got a DataFrame with columns \['path'\] \(iterated, "
                                         r"a table gives its column names"):
        recognizer.predict_waves(pd.DataFrame({"path": ["a.wav"]}))
    with pytest.raises(AudioError, match=r"got a 1-D object array of 16000 numbers: one clip's samples. Pass them as "
                                         r"numbers, \[np.asarray\(wave, dtype=np.float32\)\]"):
        recognizer.predict_waves(wave.astype(object))  # was taken as 16000 clips of one sample
    clips = np.empty(2, dtype=object)
    clips[0], clips[1] = wave, wave[:8000]
    np.testing.assert_allclose(recognizer.predict_waves(clips), recognizer.predict_waves([wave, wave[:8000]]))
    assert recognizer.predict_waves(pd.Series([wave])).shape == (1, len(FOUR))
    np.testing.assert_allclose(recognizer.predict_waves([np.asarray(wave.astype(object), dtype=np.float32)]),
                               recognizer.predict_waves([wave]))  # the fix works


# --- #16: other collections given to predict are named with the conversion that works ------------------------------


def test_collections_of_samples_are_told_to_become_one_array(recognizer, wave):
    import pandas as pd

    expected = _scores(recognizer.predict(wave))
    for given, fix in ((pd.Series(wave), r"series.to_numpy\(\)"),
                       (array.array("f", wave), r"np.asarray\(a\), which keeps their type \(dtype float32\)"),
                       (collections.deque(wave), r"np.asarray\(list\(samples\), dtype=np.float32\)"),
                       (range(RATE), r"np.asarray\(list\(samples\), dtype=np.float32\)")):
        with pytest.raises(AudioError, match=rf"the audio array: got {type(given).__name__}; expected .*{fix}") as err:
            recognizer.predict(given)
        assert "list(...)" not in str(err.value)
    for fixed in (pd.Series(wave).to_numpy(), np.asarray(array.array("f", wave)),
                  np.asarray(list(collections.deque(wave)), dtype=np.float32)):
        assert recognizer.predict(fixed)["scores"] == expected  # each fix works


def test_a_series_of_one_dict_a_table_and_its_rows_are_named_with_their_fix(recognizer, wave, clip):
    import pandas as pd

    cell = pd.Series({"array": wave, "sampling_rate": RATE})  # list(...) of it gives the samples and 16000
    with pytest.raises(AudioError, match=r"one clip's dict held as a pandas Series.*series.to_dict\(\)") as err:
        recognizer.predict(cell)
    assert "list(...)" not in str(err.value)
    assert recognizer.predict(cell.to_dict())["scores"] == _scores(recognizer.predict(wave))
    with pytest.raises(AudioError, match=r"got DataFrame; .*It is a DataFrame with columns \['label', 'path'\] .*pass "
                                         r"one column of clips as a list, e.g. predict\(list\(df\['path'\]\)\), or the "
                                         r"column of file paths to predict_files\(recognizer, df\['path'\], out\)"):
        recognizer.predict(pd.DataFrame({"label": ["happy"], "path": [str(clip)]}))
    rows = pd.DataFrame({"label": ["happy"], "path": [str(clip)]}).values  # an object array of [label, path] rows
    with pytest.raises(AudioError, match=r"the audio array is an array of shape \(1, 2\) \(ndarray\): rows, not "
                                         r"paths \(a table's values.*pass its path column, e.g. list\(array\[:, 1\]\)"
                       ) as err:
        recognizer.predict(rows)
    assert "list(array) " not in str(err.value)
    assert recognizer.predict(list(rows[:, 1]))[0]["label"] in FOUR  # the fix works
    with pytest.raises(AudioError, match=r"rows, not paths .*list\(array\[:, 0\]\)"):
        recognizer.predict(np.array([[str(clip), "happy"]]))
    with pytest.raises(SERError, match=r"clips must be a list of clips .*rows, not paths .*list\(array\[:, 1\]\)\.$"):
        enrollment_inputs(rows, "s")
    with pytest.raises(AudioError) as err:  # numbers held as objects are no rows of paths
        recognizer.predict(np.array([[0.1, 0.2]] * 3, dtype=object))
    assert "rows" not in str(err.value)


# --- the tidy: one duck-typed "has an array's shape" question, one narrower "is samples" question --------------------


def test_has_array_shape_is_the_duck_typed_question_and_is_array_the_narrower_one():
    import pandas as pd
    import torch

    for value in (np.zeros(3), torch.zeros(3), pd.Series([0.1, 0.2])):
        assert has_array_shape(value)
    for value in ([0.1], (0.1,), "a.wav", b"a.wav", None, {"shape": 1, "dtype": 2}):
        assert not has_array_shape(value)
    assert is_array(np.zeros(3)) and is_array(torch.zeros(3)) and not is_array(pd.Series([0.1]))
    assert is_path_array(pd.Series(["a.wav"])) and is_path_array(np.array([b"a.wav"]))
    assert not is_path_array(torch.zeros(3)) and not is_path_array(np.zeros(3)) and not is_path_array(["a.wav"])


def test_messages_name_bytes_as_bytes_everywhere(recognizer):
    with pytest.raises(AudioError, match=re.escape("the bytes given (19 bytes) cannot be decoded")):
        recognizer.predict(b"not a file of audio")
    with pytest.raises(AudioError, match=re.escape("the bytes at index 0 (3 bytes) cannot be decoded")):
        recognizer.predict([memoryview(b"abc")])
