"""Folder and manifest corpora given mistaken or hostile input: columns named like ser_hf's own, label maps,
one recording listed twice, missing-value markers, odd genders, linked sub-folders, speaker ids typed two ways,
and manifests written with another separator, spelling or path form.

Every clip is a distinct tone (its own seed), so only the copies a test makes are byte-identical.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import fail_listing

from ser_hf.corpora import load_corpus, validate_dataset
from ser_hf.errors import CorpusError, SplitError
from ser_hf.testing.corpora import write_tone

BASE_LOGGER = "ser_hf.corpora.base"
MANIFEST_LOGGER = "ser_hf.corpora.manifest"


def _tones(folder: Path, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Write one distinct tone per row's file (relative to ``folder``) and return the rows."""
    for n, (name, _, _) in enumerate(rows):
        if not (folder / name).exists():
            write_tone(folder / name, frequency=150.0 + 11.0 * n, seed=n)
    return rows


def _csv(path: Path, rows: list[tuple[str, str, str]], header: str = "path,label,speaker") -> Path:
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _labels(ds) -> dict[str, str]:
    """File name -> loaded label."""
    return {Path(path).name: ds.features["label"].int2str(label) for path, label in zip(ds["audio"], ds["label"])}


# --- 1. columns named like ser_hf's own ----------------------------------------------------------------

@pytest.mark.parametrize("column", ["duration", "corpus", "audio", " Duration"])
def test_a_manifest_column_named_like_a_column_ser_hf_sets_is_left_out_with_a_warning(tmp_path, caplog, column):
    rows = _tones(tmp_path, [(f"s{n}_{label}.wav", label, f"s{n}") for n in range(2) for label in ("happy", "sad")])
    manifest = _csv(tmp_path / "m.csv", [(*row, "0.3", "0.3") for row in rows],
                    header=f"path,label,speaker,{column},mic")
    with caplog.at_level(logging.WARNING, logger=MANIFEST_LOGGER):
        ds = load_corpus("manifest", manifest)
    name = column.strip().lower()
    assert len(ds) == 4 and ds["corpus"] == ["manifest"] * 4 and ds["mic"] == ["0.3"] * 4
    assert all(0.2 < d < 0.3 for d in ds["duration"]) and ds["audio"][0].endswith("s0_happy.wav")
    assert sorted(ds.column_names) == ["audio", "corpus", "duration", "gender", "label", "mic", "speaker", "split"]
    assert f"manifest {manifest}: column(s) ['{name}'] are not kept: ser_hf sets them itself" in caplog.text
    assert "duration: read from the audio" in caplog.text


def test_a_jsonl_manifest_key_named_duration_is_left_out(tmp_path, caplog):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"path": p, "label": lab, "speaker": s, "duration": 9.5}) + "\n"
                                for p, lab, s in rows))
    with caplog.at_level(logging.WARNING, logger=MANIFEST_LOGGER):
        ds = load_corpus("manifest", manifest)
    assert len(ds) == 2 and max(ds["duration"]) < 1 and "['duration'] are not kept" in caplog.text


def test_a_corpus_module_declaring_a_base_column_as_metadata_is_refused(tmp_path):
    import datasets

    from ser_hf.corpora.base import Clip, Corpus, scan_corpus, to_dataset

    write_tone(tmp_path / "a.wav")
    corpus = Corpus(name="mine", list_clips=lambda root: [Clip(str(root / "a.wav"), "happy", metadata={"corpus": 1})],
                    features={"corpus": datasets.Value("string")})
    scan = scan_corpus(corpus, tmp_path)
    with pytest.raises(CorpusError, match=r"Corpus 'mine' declares metadata column\(s\) \['corpus'\], which are names "
                                          r"of the columns ser_hf sets itself"):
        to_dataset(scan, corpus)


# --- 2. label_map applied once, to the raw label ---------------------------------------------------------

def test_label_map_applies_once_to_raw_labels_never_again_to_the_emotion_its_key_spells(tmp_path):
    rows = _tones(tmp_path, [(f"{s}_{label}.wav", label, s) for s in "ABC" for label in ("joy", "happy", "sad")])
    manifest = _csv(tmp_path / "m.csv", rows)
    labels = _labels(load_corpus("manifest", manifest, label_map={"joy": "excited"}))
    assert Counter(labels.values()) == {"excited": 3, "happy": 3, "sad": 3}
    assert labels["A_joy.wav"] == "excited" and labels["A_happy.wav"] == "happy"
    # A swap swaps (applied twice it cancelled out), and a chain stops after one step.
    swapped = _labels(load_corpus("manifest", manifest, label_map={"happy": "sad", "sad": "happy"}))
    assert swapped["A_happy.wav"] == "sad" and swapped["A_sad.wav"] == "happy" and swapped["A_joy.wav"] == "happy"
    chained = _labels(load_corpus("manifest", manifest, label_map={"joy": "happy", "happy": "neutral"}))
    assert chained["B_joy.wav"] == "happy" and chained["B_happy.wav"] == "neutral"
    # Two keys spelling one emotion may map different raw labels to different emotions.
    both = _labels(load_corpus("manifest", manifest, label_map={"joy": "excited", "happy": "calm"}))
    assert both["C_joy.wav"] == "excited" and both["C_happy.wav"] == "calm"


def test_folder_label_map_applies_once_and_a_key_matching_no_raw_label_is_warned_about(tmp_path, caplog):
    for n, folder in enumerate(("joy", "happy", "sad")):
        for s in range(2):
            write_tone(tmp_path / "f" / folder / f"spk{s}_{n}.wav", frequency=200.0 + 30 * n + 7 * s, seed=10 * n + s)
    labels = _labels(load_corpus("folder", tmp_path / "f", label_map={"joy": "excited"}))
    assert labels["spk0_0.wav"] == "excited" and labels["spk0_1.wav"] == "happy"
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    with caplog.at_level(logging.WARNING, logger=BASE_LOGGER):
        ds = load_corpus("manifest", _csv(tmp_path / "m.csv", rows), label_map={"joy": "excited"})
    assert ds.features["label"].names == ["happy", "sad"]
    assert "label_map entries {'joy': 'excited'} match no label of the manifest corpus" in caplog.text


# --- 3. one recording listed twice --------------------------------------------------------------------

def test_one_recording_listed_twice_by_any_spelling_under_one_speaker_is_refused_naming_both_rows(tmp_path):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1"), ("c.wav", "sad", "s2")])
    (tmp_path / "x").mkdir()
    manifest = _csv(tmp_path / "m.csv", [*rows, ("./x/../a.wav", "angry", "s0")])
    with pytest.raises(CorpusError, match=r"x/\.\./a\.wav: the same audio file as .*/a\.wav \(speaker s0\), listed "
                                          r"again under speaker s0; first m\.csv line 2 as 'happy', then m\.csv line 5 "
                                          r"as 'angry': one recording with two labels"):
        load_corpus("manifest", manifest)
    with pytest.warns(UserWarning, match=r"1 file\(s\) .* could not be used"):
        lenient = load_corpus("manifest", manifest, strict=False)
    assert len(lenient) == 3 and _labels(lenient)["a.wav"] == "happy"
    # The same row twice (one spelling) names both lines too, and is skipped when lenient.
    again = _csv(tmp_path / "again.csv", [*rows, rows[0]])
    with pytest.raises(CorpusError, match=r"first again\.csv line 2 as 'happy', then again\.csv line 5 as 'happy': "
                                          r"it would be counted twice"):
        load_corpus("manifest", again)
    with pytest.warns(UserWarning, match="could not be used"):
        assert len(load_corpus("manifest", again, strict=False)) == 3
    # A hard link, and with no speaker column at all.
    os.link(tmp_path / "a.wav", tmp_path / "hard.wav")
    bare = [(p, label) for p, label, _ in rows]
    (tmp_path / "bare.csv").write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in [*bare, ("hard.wav",
                                                                                                         "happy")]))
    with pytest.raises(CorpusError, match=r"hard\.wav: the same audio file as .*a\.wav \(speaker None\)"):
        load_corpus("manifest", tmp_path / "bare.csv")


def test_the_same_path_under_two_speakers_is_never_called_a_copy_of_itself(tmp_path):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    with pytest.raises(CorpusError) as caught:
        load_corpus("manifest", _csv(tmp_path / "m.csv", [*rows, ("a.wav", "happy", "s9")]))
    message = str(caught.value)
    assert "byte-identical" not in message
    assert "the same audio file as" in message and "listed again under speaker s9" in message


def test_a_byte_identical_copy_with_another_label_under_one_speaker_is_refused_one_with_the_same_label_loads(
        tmp_path):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    shutil.copyfile(tmp_path / "a.wav", tmp_path / "same.wav")
    assert len(load_corpus("manifest", _csv(tmp_path / "ok.csv", [*rows, ("same.wav", "happy", "s0")]))) == 3
    shutil.copyfile(tmp_path / "a.wav", tmp_path / "other.wav")
    with pytest.raises(CorpusError, match=r"other\.wav: a byte-identical copy of .*a\.wav \(speaker s0\), listed under "
                                          r"speaker s0; first m\.csv line 2 as 'happy', then m\.csv line 4 as 'sad'"):
        load_corpus("manifest", _csv(tmp_path / "m.csv", [*rows, ("other.wav", "sad", "s0")]))


@pytest.mark.parametrize("linked_root", [False, True])
def test_an_emotion_folder_that_links_to_another_is_named_and_its_clips_are_not_loaded_twice(tmp_path, linked_root):
    real = tmp_path / "f"
    for n in range(3):
        for e, label in enumerate(("happy", "sad")):
            write_tone(real / label / f"spk{n}_{label}.wav", frequency=150.0 + 40 * n + 200 * e, seed=2 * n + e)
    os.symlink(real / "happy", real / "angry")  # sorts first, but the real folder's clips are kept
    root = real
    if linked_root:  # the corpus reached through a link (~/data -> /mnt/data): that link is on every clip's path
        root = tmp_path / "link"
        os.symlink(real, root)
    with pytest.raises(CorpusError, match=r"(?s)3 file\(s\).*angry/spk0_happy\.wav: the same audio file as "
                                          r".*happy/spk0_happy\.wav \(speaker spk0\).* \(through the emotion folder "
                                          r"'angry', a symbolic link to '.*/f/happy'\) as 'angry'"):
        load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_")
    with pytest.warns(UserWarning, match="could not be used"):
        lenient = load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_", strict=False)
    assert Counter(_labels(lenient).values()) == {"happy": 3, "sad": 3}
    assert not any("/angry/" in path for path in lenient["audio"])


def test_of_a_file_and_a_link_to_it_the_link_is_refused_wherever_it_sorts(tmp_path):
    root = tmp_path / "f"
    write_tone(root / "happy" / "z_real.wav", seed=1)
    write_tone(root / "sad" / "b.wav", frequency=400.0, seed=2)
    os.symlink("z_real.wav", root / "happy" / "a_link.wav")
    with pytest.raises(CorpusError, match=r"a_link\.wav: the same audio file as .*z_real\.wav \(speaker None\), listed "
                                          r"again under speaker None; first .*a_link\.wav as 'happy', then "
                                          r".*z_real\.wav as 'happy': it would be counted twice"):
        load_corpus("folder", root)
    with pytest.warns(UserWarning, match="could not be used"):
        assert sorted(_labels(load_corpus("folder", root, strict=False))) == ["b.wav", "z_real.wav"]


def test_one_file_listed_under_another_speaker_and_another_label_names_both_harms(tmp_path):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    os.link(tmp_path / "a.wav", tmp_path / "hard.wav")
    with pytest.raises(CorpusError, match=r"hard\.wav: the same audio file as .*: one recording under two speakers "
                                          r"would be trained and tested on; one recording with two labels would be "
                                          r"trained on with both\. Keep one"):
        load_corpus("manifest", _csv(tmp_path / "m.csv", [*rows, ("hard.wav", "sad", "s1")]))


def test_unchecked_empty_files_under_two_speakers_are_not_called_copies_of_one_recording(tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"")
    rows = [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")]
    ds = load_corpus("manifest", _csv(tmp_path / "m.csv", rows), check_audio=False)
    assert ds["speaker"] == ["s0", "s1"]


def test_validate_dataset_refuses_one_file_twice_under_one_speaker(tmp_path):
    import datasets

    write_tone(tmp_path / "a.wav")
    os.symlink(tmp_path / "a.wav", tmp_path / "link.wav")
    doubled = datasets.Dataset.from_dict(
        {"audio": [str(tmp_path / "a.wav"), str(tmp_path / "link.wav")], "label": [0, 1], "speaker": ["A", "A"]},
        features=datasets.Features({"audio": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["happy", "sad"]),
                                    "speaker": datasets.Value("string")}))
    with pytest.raises(CorpusError, match=r"listed more than once .*a\.wav as .*a\.wav \(speaker A\), .*link\.wav "
                                          r"\(speaker A\)\. A file listed twice would be counted twice"):
        validate_dataset(doubled)


# --- 5. missing-value markers and JSON types in the speaker column --------------------------------------

def test_missing_value_markers_in_the_speaker_column_are_no_speaker_and_the_split_refuses_them(tmp_path):
    from ser_hf.splits import speaker_split

    markers = ["NA", "N/A", "NaN", "nan", "None", "null", "NULL", " na ", "-", "?", "#N/A", "<NA>", "nil", "Missing",
               "unknown", " UNKNOWN "]
    rows = _tones(tmp_path, [(f"c{n}.wav", ("happy", "sad")[n % 2], s)
                             for n, s in enumerate(["A", "B", "C", "D", "A", "B", "C", "D", *markers])])
    ds = load_corpus("manifest", _csv(tmp_path / "m.csv", rows))
    assert Counter(ds["speaker"])[None] == len(markers) and set(ds["speaker"]) == {"A", "B", "C", "D", None}
    with pytest.raises(SplitError, match=rf"{len(markers)} of {len(rows)} clips have no speaker"):
        speaker_split(ds, test_size=0.3, validation_size=0)


def test_the_summary_counts_clips_without_a_speaker_apart_from_the_speakers(tmp_path):
    from ser_hf.corpora.summary import corpus_summary, format_summary

    rows = _tones(tmp_path, [(f"c{n}.wav", ("happy", "sad")[n % 2], s) for n, s in enumerate(["A", "A", "", "unknown"])])
    summary = corpus_summary("manifest", _csv(tmp_path / "m.csv", rows))
    assert summary["speakers"] == {"A": 2} and summary["clips_without_speaker"] == 2 and summary["num_speakers"] == 1
    text = format_summary(summary)
    assert "per speaker  A:2\n" in text and "no speaker   2 clips (a blank or 'unknown' speaker)" in text


def test_json_speaker_values_nan_whole_floats_and_non_scalars(tmp_path):
    rows = _tones(tmp_path, [(f"c{n}.wav", ("happy", "sad")[n % 2], "") for n in range(6)])
    lines = ['{"path": "c0.wav", "label": "happy", "speaker": NaN}',
             '{"path": "c1.wav", "label": "sad", "speaker": 1.0}',
             '{"path": "c2.wav", "label": "happy", "speaker": 1}',
             '{"path": "c3.wav", "label": "sad", "speaker": ["s0"]}',
             '{"path": "c4.wav", "label": "happy", "speaker": true}',
             '{"path": "c5.wav", "label": "sad", "speaker": {"id": 1}}']
    assert len(rows) == len(lines)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError) as caught:
        load_corpus("manifest", manifest)
    message = str(caught.value)
    assert message.startswith("3 file(s)")
    for line, kind in ((4, "list"), (5, "bool"), (6, "dict")):
        assert f"m.jsonl:{line}: the 'speaker' value is a JSON {kind}" in message
    with pytest.warns(UserWarning, match="could not be used"):
        ds = load_corpus("manifest", manifest, strict=False)
    assert ds["speaker"] == [None, "1", "1"]


# --- 11. a label_map that is no mapping -----------------------------------------------------------------

@pytest.mark.parametrize("label_map, kind", [("glee=happy", "str"), ([("glee", "happy")], "list")])
def test_a_label_map_that_is_no_mapping_is_refused_with_the_command_line_spelling(tmp_path, label_map, kind):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    with pytest.raises(CorpusError, match=rf"label_map must be a mapping \{{raw label: emotion\}}.*got {kind} .*from "
                                          rf"the command line use --label_map glee=happy"):
        load_corpus("manifest", _csv(tmp_path / "m.csv", rows), label_map=label_map)


# --- 9. gender values that are neither male nor female ----------------------------------------------------

def test_unexpected_gender_values_load_as_no_gender_with_one_warning(tmp_path, caplog):
    genders = ["M", "F", "unknown", "U", "NA", "n/a", "nonbinary", "w", "unknown", ""]
    rows = _tones(tmp_path, [(f"c{n}.wav", ("happy", "sad")[n % 2], f"s{n % 3}") for n in range(len(genders))])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker,gender\n" + "".join(f"{p},{lab},{s},{g}\n"
                                                                for (p, lab, s), g in zip(rows, genders)))
    for strict in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=BASE_LOGGER):
            ds = load_corpus("manifest", manifest, strict=strict)
        assert len(ds) == len(genders)
        assert ds["gender"] == ["male", "female"] + [None] * 8
        warned = [r.getMessage() for r in caplog.records if "gender values" in r.getMessage()]
        assert len(warned) == 1
        assert "['U', 'nonbinary', 'w']" in warned[0] and "'w': 1" in warned[0]
        for marker in ("NA", "n/a", "unknown"):  # missing markers are simply no gender
            assert f"'{marker}'" not in warned[0]


# --- 6. symlinked sub-folders inside an emotion folder ---------------------------------------------------

def test_clips_in_a_symlinked_sub_folder_of_an_emotion_folder_are_loaded(tmp_path):
    root, elsewhere = tmp_path / "f", tmp_path / "elsewhere"
    for n in range(2):
        write_tone(root / "happy" / f"spk{n}_a.wav", frequency=150.0 + 10 * n, seed=n)
        write_tone(root / "sad" / f"spk{n}_b.wav", frequency=300.0 + 10 * n, seed=10 + n)
        write_tone(elsewhere / "session2" / f"spk{n}_c.wav", frequency=500.0 + 10 * n, seed=20 + n)
    write_tone(root / "happy" / "._spk0_a.wav", seed=30)  # macOS's resource fork: hidden, never a clip
    os.symlink(elsewhere / "session2", root / "happy" / "session2")
    os.symlink(root / "happy", root / "happy" / "session2" / "loop")  # a link back up still ends
    ds = load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_")
    assert sorted(_labels(ds).items()) == [("spk0_a.wav", "happy"), ("spk0_b.wav", "sad"), ("spk0_c.wav", "happy"),
                                           ("spk1_a.wav", "happy"), ("spk1_b.wav", "sad"), ("spk1_c.wav", "happy")]


def test_an_audiofolder_reads_clips_in_symlinked_sub_folders(tmp_path):
    from ser_hf.corpora.audiofolder import is_audiofolder, read_audiofolder

    root, elsewhere = tmp_path / "af", tmp_path / "elsewhere"
    write_tone(root / "happy.wav", seed=1)
    for n in range(2):
        write_tone(elsewhere / f"x{n}.wav", frequency=300.0 + 10 * n, seed=2 + n)
    os.symlink(elsewhere, root / "more")
    os.symlink(root, elsewhere / "loop")  # a link back up still ends
    assert is_audiofolder(root)
    (root / "metadata.csv").write_text("file_name,label\nhappy.wav,happy\nmore/x0.wav,sad\nmore/x1.wav,angry\n")
    train = read_audiofolder(root)["train"]
    assert sorted(zip(map(os.path.basename, train["audio"]), train["label"])) == [
        ("happy.wav", "happy"), ("x0.wav", "sad"), ("x1.wav", "angry")]


def test_audiofolder_metadata_headers_are_read_in_any_case_and_backslashes_get_a_hint(tmp_path):
    from ser_hf.corpora.audiofolder import read_audiofolder

    for label in ("happy", "sad"):
        write_tone(tmp_path / label / f"{label[0]}0.wav", frequency=200.0 + len(label), seed=len(label))
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("File_Name ,Speaker, label\nhappy/h0.wav,a,sad\nsad/s0.wav,b,sad\n")
    train = read_audiofolder(tmp_path)["train"]
    assert sorted(train.column_names) == ["audio", "label", "speaker"]
    assert train["label"] == ["sad", "sad"] and train["speaker"] == ["a", "b"]  # the metadata's label wins
    metadata.write_text("file_name,label,Label\nhappy/h0.wav,sad,sad\n")
    with pytest.raises(CorpusError, match=r"its header names the column 'label' twice"):
        read_audiofolder(tmp_path)
    metadata.write_text("file_name,speaker\nhappy\\h0.wav,a\nsad/s0.wav,b\n")
    with pytest.raises(CorpusError, match=r"line 2 'happy\\\\h0\.wav' \(no such file, did you mean 'happy/h0\.wav'\?; "
                                          r"separate folders with '/', not a backslash\)"):
        read_audiofolder(tmp_path)


def test_an_audiofolder_metadata_column_named_audio_never_replaces_the_clips(tmp_path, caplog):
    """Each row's clip is the file its file_name names; a metadata column 'audio' replaced every clip's path."""
    from ser_hf.corpora.audiofolder import read_audiofolder

    for label in ("happy", "sad"):
        write_tone(tmp_path / label / f"{label[0]}0.wav", frequency=200.0 + len(label), seed=len(label))
    (tmp_path / "metadata.csv").write_text("file_name,audio\nhappy/h0.wav,other.wav\nsad/s0.wav,other.wav\n")
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.audiofolder"):
        train = read_audiofolder(tmp_path)["train"]
    assert [Path(path).name for path in train["audio"]] == ["h0.wav", "s0.wav"]
    assert "has a column 'audio'; it is left out" in caplog.text


# --- 12. speaker ids typed two ways -------------------------------------------------------------------

def test_speaker_ids_differing_only_by_case_or_leading_zeros_are_warned_about_not_merged(tmp_path, caplog):
    speakers = ["Alice", "alice", "1", "01", "Bob", "bob", "BOB", "Carol"]
    rows = _tones(tmp_path, [(f"c{n}.wav", ("happy", "sad")[n % 2], s) for n, s in enumerate(speakers)])
    with caplog.at_level(logging.WARNING, logger=BASE_LOGGER):
        ds = load_corpus("manifest", _csv(tmp_path / "m.csv", rows))
    assert sorted(set(ds["speaker"])) == sorted(speakers)
    warned = [r.getMessage() for r in caplog.records if "differ only by case or leading zeros" in r.getMessage()]
    assert len(warned) == 1
    assert "'01', '1'; 'Alice', 'alice'; 'BOB', 'Bob', 'bob'" in warned[0] and "Carol" not in warned[0]
    assert "count as different speakers" in warned[0]


# --- 13. manifests written another way ----------------------------------------------------------------

@pytest.mark.parametrize("name, separator, hint", [
    ("m.csv", ";", r"holding semicolons: the file is semicolon-separated, but a \.csv manifest is read as "
                   r"comma-separated; save it comma-separated"),
    ("m.csv", "\t", r"holding tabs: the file is tab-separated, .*name the file \.tsv \(a \.tsv manifest is "
                    r"tab-separated\)"),
    ("m.tsv", ",", r"holding commas: the file is comma-separated, but a \.tsv manifest is read as tab-separated; "
                   r"name the file \.csv"),
])
def test_a_manifest_with_another_separator_says_so(tmp_path, name, separator, hint):
    rows = _tones(tmp_path, [("a.wav", "happy", "s0")])
    (tmp_path / name).write_text(separator.join(("path", "label", "speaker")) + "\n" + separator.join(rows[0]) + "\n")
    with pytest.raises(CorpusError, match=r"lacks column\(s\) \['path', 'label'\].*" + hint):
        load_corpus("manifest", tmp_path / name)


def test_header_names_in_any_case_with_spaces_and_whitespace_only_lines_are_read(tmp_path):
    _tones(tmp_path, [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    text = "Path, Label ,SPEAKER,Mic\n" + "a.wav,happy,s0,x\n   \n,,,\n\t\nb.wav,sad,s1,y\n"
    (tmp_path / "m.csv").write_text(text)
    ds = load_corpus("manifest", tmp_path / "m.csv")
    assert _labels(ds) == {"a.wav": "happy", "b.wav": "sad"} and ds["speaker"] == ["s0", "s1"]
    assert ds["Mic"] == ["x", "y"]  # other columns keep their names as written
    (tmp_path / "twice.csv").write_text("path,Path,label\na.wav,a.wav,happy\n")
    with pytest.raises(CorpusError, match=r"names the column 'path' twice, as 'path' and 'Path'"):
        load_corpus("manifest", tmp_path / "twice.csv")


def test_urls_and_relative_paths_to_nothing_say_why(tmp_path):
    rows = _tones(tmp_path / "data", [("a.wav", "happy", "s0"), ("b.wav", "sad", "s1")])
    manifest = _csv(tmp_path / "data" / "m.csv", [*rows, ("https://example.org/c.wav", "sad", "s2"),
                                                   ("file:///tmp/d.wav", "sad", "s2"), ("data/b.wav", "sad", "s3")])
    with pytest.raises(CorpusError) as caught:
        load_corpus("manifest", manifest)
    message = str(caught.value)
    assert "m.csv:4 (https://example.org/c.wav): 'https://example.org/c.wav' is a URL; ser_hf reads local audio " \
           "files only, never URLs. Download the files" in message
    assert "m.csv:5 (file:///tmp/d.wav): 'file:///tmp/d.wav' is a URL" in message
    assert (f"m.csv:6 (data/b.wav): '{tmp_path}/data/data/b.wav' does not exist: relative paths are resolved against "
            f"the manifest's folder '{tmp_path}/data', not the working folder") in message


# --- audit 30a: split folders spelt two ways, metadata read twice, JSONL keys of later rows, label maps that
# leave other spellings of an emotion behind, path cells with surrounding spaces, the listing lenient loading keeps.

def _split_tree(root: Path, splits: tuple[str, ...]) -> Path:
    """An audiofolder with happy/sad class folders in each split folder of ``splits``, one distinct tone per file."""
    for n, split in enumerate(splits):
        for m, emotion in enumerate(("happy", "sad")):
            write_tone(root / split / emotion / f"{split}_{emotion}.wav", frequency=150.0 + 10 * (2 * n + m),
                       seed=2 * n + m)
    return root


@pytest.mark.parametrize("splits, named", [
    (("Train", "train", "valid", "validation"), r"'Train' and 'train' all name the split 'train'; 'valid' and "
                                                r"'validation' all name the split 'validation'"),
    (("dev", "test", "train", "val"), r"'dev' and 'val' all name the split 'validation'"),
    (("EVAL", "test", "train"), r"'EVAL' and 'test' all name the split 'test'"),
])
def test_audiofolder_split_folders_naming_one_split_are_refused_never_one_dropped(tmp_path, splits, named):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", splits)
    with pytest.raises(CorpusError, match=named + r" .*Merge them into one folder, or rename or move the others"):
        read_audiofolder(root)


def test_audiofolder_split_folders_in_every_spelling_datasets_reads_are_loaded(tmp_path, caplog):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("Training", "val", "Eval"))
    write_tone(root / "stray" / "x.wav", seed=40)
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.audiofolder"):
        parts = read_audiofolder(root)
    assert {split: len(part) for split, part in parts.items()} == {"test": 2, "train": 2, "validation": 2}
    assert "1 audio file(s) lie outside its split folders ['Eval', 'Training', 'val'] ('stray/x.wav')" in caplog.text


def test_audiofolder_metadata_that_would_be_ignored_is_refused(tmp_path):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("test", "train"))
    (root / "metadata.csv").write_text("file_name,speaker\ntrain/happy/train_happy.wav,A\n")
    (root / "metadata.jsonl").write_text('{"file_name": "train/happy/train_happy.wav", "speaker": "B"}\n')
    with pytest.raises(CorpusError, match=r"af' holds both metadata\.csv and metadata\.jsonl; expected one metadata "
                                          r"file per folder.*Merge their rows into one file"):
        read_audiofolder(root)
    (root / "metadata.jsonl").unlink()
    assert read_audiofolder(root)["train"]["speaker"] == ["A", None]  # the root's rows, for a split without its own
    (root / "train" / "metadata.csv").write_text("file_name,speaker\nhappy/train_happy.wav,C\nsad/train_sad.wav,C\n")
    with pytest.raises(CorpusError, match=r"split folder '.*train' has its own metadata file, and the root's metadata "
                                          r"file also names 1 of its files \('.*train_happy\.wav'\).*Keep those rows"):
        read_audiofolder(root)
    (root / "metadata.csv").write_text("file_name,speaker\ntest/happy/test_happy.wav,D\n")  # the other split's only
    parts = read_audiofolder(root)
    assert parts["train"]["speaker"] == ["C", "C"] and parts["test"]["speaker"] == ["D", None]


def test_jsonl_manifest_keys_of_later_rows_are_kept_and_reserved_ones_named(tmp_path, caplog):
    _tones(tmp_path, [(f"{name}.wav", "", "") for name in "abce"])
    rows = [{"path": "a.wav", "label": "happy", "speaker": "s1"},
            {"path": "b.wav", "label": "sad", "speaker": "s1", "mic": "x"},
            {"path": "c.wav", "label": "happy", "speaker": "s2", "Duration": "9"},
            {"path": "e.wav", "label": "sad", "speaker": "s2", "Split": "test"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level(logging.WARNING, logger=MANIFEST_LOGGER):
        ds = load_corpus("manifest", tmp_path / "m.jsonl")
    assert ds["mic"] == [None, "x", None, None] and ds["split"] == [None, None, None, "test"]
    assert all(d < 1 for d in ds["duration"])  # read from the audio, not the row's 'Duration' 9
    assert "column(s) ['duration'] are not kept: ser_hf sets them itself" in caplog.text


_LABEL_MAPS_LOGGER = "ser_hf.corpora.label_maps"


def _mapped_with_warnings(tmp_path, caplog, clips, label_map):
    """Load a manifest of ``clips`` (file, raw label, speaker) with ``label_map``: its rows, the manifest, each clip's
    label, and the label-map warnings logged."""
    rows = _tones(tmp_path, clips)
    manifest = _csv(tmp_path / "m.csv", rows)
    with caplog.at_level(logging.WARNING, logger=_LABEL_MAPS_LOGGER):
        ds = load_corpus("manifest", manifest, label_map=label_map)
    return rows, manifest, _labels(ds), [r.getMessage() for r in caplog.records if r.name == _LABEL_MAPS_LOGGER]


def test_a_label_map_moving_one_spelling_of_an_emotion_warns_about_the_others(tmp_path, caplog):
    rows, manifest, labels, warned = _mapped_with_warnings(
        tmp_path, caplog, [("a.wav", "glee", "s0"), ("b.wav", "happy", "s0"), ("c.wav", "Sad", "s1"),
                           ("d.wav", "joy", "s1"), ("e.wav", "JOY ", "s2")], {"glee": "happy", "happy": "sad"})
    logger = _LABEL_MAPS_LOGGER
    assert labels == {"a.wav": "happy", "b.wav": "sad", "c.wav": "sad", "d.wav": "happy", "e.wav": "happy"}
    assert len(warned) == 1 and "{'happy=sad': ['JOY ', 'joy']}" in warned[0]
    assert "one emotion ends up in two classes. Map them too (e.g. JOY=sad)" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):  # every spelling moved, or a swap: nothing to say
        load_corpus("manifest", manifest, label_map={"glee": "happy", "happy": "sad", "joy": "sad"})
        swapped = load_corpus("manifest", _csv(tmp_path / "swap.csv", [r for r in rows if r[1] in ("happy", "Sad")]),
                              label_map={"happy": "sad", "sad": "happy"})
    assert _labels(swapped) == {"b.wav": "sad", "c.wav": "happy"}
    assert not [r for r in caplog.records if r.name == logger]


def test_a_path_cell_with_surrounding_spaces_names_the_file_without_them(tmp_path):
    _tones(tmp_path, [("sub/a.wav", "", ""), ("sub/b.wav", "", ""), (f"{tmp_path}/abs.wav", "", "")])
    manifest = _csv(tmp_path / "m.csv", [("sub/a.wav ", "happy", "s0"), (" sub/b.wav", "sad", "s1"),
                                         (f" {tmp_path}/abs.wav\t", "sad", "s2")])
    ds = load_corpus("manifest", manifest)  # as ser-hf predict reads the same cells
    assert ds["audio"] == [str(tmp_path / "sub" / "a.wav"), str(tmp_path / "sub" / "b.wav"), str(tmp_path / "abs.wav")]
    shutil.copy(tmp_path / "sub" / "a.wav", tmp_path / "sub" / "a.wav ")  # a file named with the space, beside it
    manifest = _csv(tmp_path / "m.csv", [("sub/a.wav ", "happy", "s0"), ("sub/c.wav ", "sad", "s1")])
    with pytest.raises(CorpusError) as caught:
        load_corpus("manifest", manifest)
    assert (f"the path cell 'sub/a.wav ' has surrounding spaces, and both '{tmp_path}/sub/a.wav ' and "
            f"'{tmp_path}/sub/a.wav' exist; ser_hf cannot tell which is meant") in str(caught.value)
    assert (f"'{tmp_path}/sub/c.wav' does not exist (the path cell 'sub/c.wav ' has surrounding spaces, which are "
            f"ignored; the path with them does not exist either): relative paths are resolved") in str(caught.value)


def test_lenient_loading_says_which_listing_of_one_file_it_keeps_and_why(tmp_path):
    _tones(tmp_path, [("real/o.wav", "", ""), ("real/p.wav", "", "")])
    (tmp_path / "ext").mkdir()
    os.symlink(tmp_path / "real" / "o.wav", tmp_path / "ext" / "lx1.wav")
    os.symlink(tmp_path / "ext" / "lx1.wav", tmp_path / "ext" / "lx2.wav")
    os.link(tmp_path / "real" / "p.wav", tmp_path / "real" / "p_hard.wav")
    manifest = _csv(tmp_path / "m.csv", [("ext/lx2.wav", "sad", "a"), ("ext/lx1.wav", "happy", "a"),
                                         ("real/p_hard.wav", "sad", "b"), ("real/p.wav", "happy", "b")])
    with pytest.warns(UserWarning) as caught:
        ds = load_corpus("manifest", manifest, strict=False)
    assert sorted(_labels(ds)) == ["lx2.wav", "p_hard.wav"]
    message = str(caught[0].message)
    assert ("Keep one (strict=False keeps m.csv line 2 as 'sad': listed first, since both listings go through "
            "symbolic links and neither is the file's own path)") in message
    assert ("Keep one (strict=False keeps m.csv line 4 as 'sad': listed first, since both name the file without a "
            "symbolic link (hard links, or two spellings of one path))") in message


# --- audit 30c: split folder names read as datasets reads them, look-alikes refused, metadata files in any case,
# JSON-lines keys spelt two ways, label-map advice that never moves an emotion's own name unasked.

AUDIOFOLDER_LOGGER = "ser_hf.corpora.audiofolder"


@pytest.mark.parametrize("splits, expected", [
    (("train_data", "test_data"), {"train": 2, "test": 2}),  # merged into one train split before
    (("train", "test1"), {"train": 2, "test": 2}),
    (("train", "Test-set"), {"train": 2, "test": 2}),
    (("training", "eval 2"), {"train": 2, "test": 2}),
    (("Train.2024", "dev-set", "my_test"), {"train": 2, "validation": 2, "test": 2}),
    (("ｔｒａｉｎ", "ｔｅｓｔ"), {"train": 2, "test": 2}),  # full-width: NFKC
])
def test_audiofolder_split_folders_are_read_as_datasets_reads_them(tmp_path, caplog, splits, expected):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", splits)
    with caplog.at_level(logging.WARNING, logger=AUDIOFOLDER_LOGGER):
        parts = read_audiofolder(root)
    assert {split: len(part) for split, part in parts.items()} == expected
    assert all(part["label"] == ["happy", "sad"] for part in parts.values()) and not caplog.records


@pytest.mark.parametrize("splits, named", [
    (("train", "tëst"), r"the folder 'tëst' looks like the split folder name 'test' but is not one"),
    (("train", "test\u200b"), r"the folder 'test\\u200b' looks like the split folder name 'test'"),
    (("train", "test(2)"), r"the folder 'test\(2\)' looks like the split folder name 'test'.*left out of every split"),
    (("train", "__eval"), r"the folder '__eval' looks like the split folder name 'test'.*leading '\.' or '__'"),
    (("tëst", "träin"), r"the folder 'träin' looks like the split folder name 'train'.*merged into the train split"),
    (("train", "train_test"), r"the folder 'train_test' names the splits \['test', 'train'\] at once"),
    (("train", "test", "test.old"), r"'test' and 'test\.old' all name the split 'test' .*Merge them"),
    (("data/train", "data/test"), r"has no split folder at its top, but folders deeper down are named as splits "
                                  r"\('data/test', 'data/train'\).*Pass the folder that holds the split folders "
                                  r"\(e\.g\. '.*af/data'\)"),
])
def test_audiofolder_folders_that_only_look_like_split_folders_are_refused(tmp_path, splits, named):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", splits)
    with pytest.raises(CorpusError, match=named):
        read_audiofolder(root)


def test_a_lone_folder_named_like_a_split_below_the_top_is_warned_about_not_refused(tmp_path, caplog):
    """A speaker folder ``dev_01`` inside class folders was refused as a split folder below the top, with advice to
    pass ``angry/`` (re-audit 31: 2); only sibling folders naming two splits or more are a split set."""
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("angry/dev_01", "angry/spk2", "sad/spk3"))
    with caplog.at_level(logging.WARNING):
        parts = read_audiofolder(root)
    assert {split: len(part) for split, part in parts.items()} == {"train": 6}
    assert "'angry/dev_01'" in caplog.text and "load in the train split" in caplog.text


def test_a_class_folder_named_like_a_split_never_drops_the_other_classes(tmp_path, caplog):
    """``test-anxiety/`` beside ``calm/`` was read as the only split, test, every other class dropped with a warning
    (re-audit 31: 3): a joined split name beside folders of audio is refused; a bare split folder keeps the warning."""
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = tmp_path / "af"
    write_tone(root / "test-anxiety" / "a.wav", frequency=150.0, seed=0)
    write_tone(root / "calm" / "b.wav", frequency=160.0, seed=1)
    with pytest.raises(CorpusError, match=r"the folder\(s\) 'test-anxiety' are read as split folders .*the 1 audio "
                                          r"file\(s\) in its other folders \('calm/b.wav'\) would belong to no split"):
        read_audiofolder(root)
    (root / "test-anxiety").rename(root / "test")  # a bare split folder: files beside it are warned about, as before
    with caplog.at_level(logging.WARNING):
        parts = read_audiofolder(root)
    assert {split: len(part) for split, part in parts.items()} == {"test": 1}
    assert "'calm/b.wav'); they belong to no split and are not loaded" in caplog.text


def test_audiofolder_keywords_glued_to_letters_are_warned_about_and_folders_without_audio_are_no_split(
        tmp_path, caplog):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "glued", ("trainset", "testset"))
    with caplog.at_level(logging.WARNING, logger=AUDIOFOLDER_LOGGER):
        assert {split: len(part) for split, part in read_audiofolder(root).items()} == {"train": 4}
    for name, split in (("testset", "test"), ("trainset", "train")):
        assert (f"the folder '{name}' looks like the split folder name '{split}' but is not one" in caplog.text
                and "its 2 audio file(s) are merged into the train split with every other file" in caplog.text)
    caplog.clear()
    flat = tmp_path / "flat"  # class folders hold their clips directly: 'contest' is no split folder
    for n, label in enumerate(("happy", "contest")):
        write_tone(flat / label / f"{n}.wav", seed=n)
    scripts = _split_tree(tmp_path / "scripts", ("test", "train"))
    for name in ("eval_scripts", "train_test_notes"):  # named like splits, but holding no audio
        (scripts / name).mkdir()
        (scripts / name / "notes.txt").write_text("x\n")
    with caplog.at_level(logging.WARNING, logger=AUDIOFOLDER_LOGGER):
        assert read_audiofolder(flat)["train"]["label"] == ["contest", "happy"]
        assert sorted(read_audiofolder(scripts)) == ["test", "train"]
    assert not caplog.records


def test_audiofolder_metadata_files_are_read_in_any_case_and_every_spelling_counts(tmp_path, caplog):
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("test", "train"))
    (root / "Metadata.CSV").write_text("file_name,speaker\ntrain/happy/train_happy.wav,A\n")
    assert read_audiofolder(root)["train"]["speaker"] == ["A", None]  # ignored, the speaker lost, before
    (root / "Metadata.CSV").unlink()
    (root / "train" / "METADATA.jsonl").write_text('{"file_name": "happy/train_happy.wav", "speaker": "B"}\n')
    assert read_audiofolder(root)["train"]["speaker"] == ["B", None]
    (root / "train" / "metadata.jsonl").write_text('{"file_name": "sad/train_sad.wav", "speaker": "C"}\n')
    with pytest.raises(CorpusError, match=r"train' holds both METADATA\.jsonl and metadata\.jsonl; expected one "
                                          r"metadata file per folder \(.*its name read in any case\)"):
        read_audiofolder(root)
    (root / "train" / "METADATA.jsonl").unlink()
    (root / "train" / "sad" / "metadata.csv").write_text("file_name,speaker\ntrain_sad.wav,D\n")
    (root / "metadata.tsv").write_text("file_name\tspeaker\n")
    with caplog.at_level(logging.WARNING, logger=AUDIOFOLDER_LOGGER):
        assert read_audiofolder(root)["train"]["speaker"] == [None, "C"]
    assert ("2 file(s) named like a metadata file are not read ('metadata.tsv', 'train/sad/metadata.csv')"
            in caplog.text)


def test_jsonl_keys_spelt_two_ways_across_rows_are_one_column_and_in_one_row_refused(tmp_path):
    from ser_hf.corpora.audiofolder import read_audiofolder

    _tones(tmp_path, [(f"{name}.wav", "", "") for name in "abc"])
    rows = [{"path": "a.wav", "label": "happy", "speaker": "s1", "Mic": "x"},
            {"path": "b.wav", "label": "sad", "speaker": "s1", "mic": "y"},
            {"path": "c.wav", "label": "sad", "speaker": "s2", "mic ": "z"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    ds = load_corpus("manifest", tmp_path / "m.jsonl")
    assert ds["Mic"] == ["x", "y", "z"] and "mic" not in ds.column_names and "mic " not in ds.column_names
    (tmp_path / "two.jsonl").write_text(json.dumps({**rows[0], "mic": "q"}) + "\n")
    with pytest.raises(CorpusError, match=r"line 1 names the column 'Mic' twice, as 'Mic' and 'mic'; column names "
                                          r"are matched in any case"):
        load_corpus("manifest", tmp_path / "two.jsonl")
    _csv(tmp_path / "two.csv", [("a.wav", "happy", "s1", "x", "y")], header="path,label,speaker,Mic,MIC ")
    with pytest.raises(CorpusError, match=r"its header names the column 'Mic' twice, as 'Mic' and 'MIC '"):
        load_corpus("manifest", tmp_path / "two.csv")
    root = _split_tree(tmp_path / "af", ("train",))
    (root / "metadata.jsonl").write_text('{"file_name": "train/happy/train_happy.wav", "Mic": "x"}\n'
                                         '{"file_name": "train/sad/train_sad.wav", " MIC": "y"}\n')
    assert read_audiofolder(root)["train"]["Mic"] == ["x", "y"]


def test_a_label_map_moving_a_synonym_never_suggests_moving_the_emotions_own_name(tmp_path, caplog):
    _, _, labels, warned = _mapped_with_warnings(
        tmp_path, caplog, [("a.wav", "happy", "s0"), ("b.wav", "Happy", "s0"), ("c.wav", "joy", "s1"),
                           ("d.wav", "glad", "s1"), ("e.wav", "sad", "s2")], {"joy": "sad"})
    assert labels == {"a.wav": "happy", "b.wav": "happy", "c.wav": "sad", "d.wav": "happy", "e.wav": "sad"}
    assert len(warned) == 1 and "{'joy=sad': ['Happy', 'glad', 'happy']}" in warned[0]
    assert ("Map them too if every clip of that emotion belongs in the new class, or keep them if you mean the "
            "emotion split into two classes on purpose") in warned[0]
    assert "e.g." not in warned[0] and "happy=sad" not in warned[0].lower()


# --- fix 31: an audiofolder is walked once per load --------------------------------------------------------------

def test_an_audiofolder_folder_that_cannot_be_listed_is_warned_about_once_per_load(tmp_path, monkeypatch, caplog):
    """Every split and every check walked the tree again, and each walk named the folder it could not list: one
    such folder gave three warnings or more. (``os.scandir`` is made to fail: ``chmod 000`` does not stop root.)"""
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("train", "test"))
    (root / "train" / "locked").mkdir()
    (root / "metadata.csv").write_text("file_name,speaker\ntrain/happy/train_happy.wav,s1\n")
    fail_listing(monkeypatch, "locked")
    with caplog.at_level(logging.WARNING, logger="ser_hf"):
        parts = read_audiofolder(root)
    assert {split: len(part) for split, part in parts.items()} == {"train": 2, "test": 2}
    warned = [r.getMessage() for r in caplog.records if "cannot list the folder" in r.getMessage()]
    assert len(warned) == 1 and "locked (Permission denied): the clips in it are not loaded" in warned[0]


def test_one_file_in_two_audiofolder_splits_is_refused(tmp_path):
    """A link in train/ to a class folder of test/ put the same clips in both splits: trained on, then tested on
    (found by the review of the single-walk refactor, which kept it as it was)."""
    from ser_hf.corpora.audiofolder import read_audiofolder

    root = _split_tree(tmp_path / "af", ("train", "test"))
    os.symlink(root / "test" / "happy", root / "train" / "link")
    with pytest.raises(CorpusError, match=r"1 audio file\(s\) are in two splits, e\.g\. '.*test_happy\.wav' in both "
                                          r"'(train|test)' and '(train|test)' \(through a link\)"):
        read_audiofolder(root)
