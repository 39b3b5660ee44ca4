"""Hostile inputs to `ser-hf data`, `ser-hf evaluate --corpus` and audiofolder metadata (audit 29c findings 7, 8,
10, 11 and 13): raw labels mapped from every command, fold counts below 2, label maps that are not mappings,
metadata rows that conflict or match nothing, and options meant for another corpus."""

from __future__ import annotations

import json

import pytest

from ser_hf.cli import main
from ser_hf.corpora.audiofolder import read_audiofolder
from ser_hf.errors import CorpusError, EvaluationError, SplitError
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
from ser_hf.evaluation.label_mapping import as_label_map, loader_label_map, map_labels
from ser_hf.splits import leave_one_speaker_out, speaker_folds
from ser_hf.testing.corpora import write_tone

FOUR = ["neutral", "happy", "sad", "angry"]


def _manifest(folder, rows, name="m.csv"):
    """A manifest of ``(label, speaker)`` rows, one short tone each; returns its path."""
    lines = ["path,label,speaker"]
    for number, (label, speaker) in enumerate(rows):
        write_tone(folder / f"c{number}.wav", frequency=120 + 13 * number, seed=number)
        lines.append(f"c{number}.wav,{label},{speaker}")
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


@pytest.fixture
def glee(tmp_path):
    """A manifest whose happy clips say 'glee', a label no loader knows: 4 speakers x (glee, sad)."""
    return _manifest(tmp_path, [(label, speaker) for speaker in "ABCD" for label in ("glee", "sad")])


# Finding 8: --label-map on `data summary` / `data split`, and raw labels through `evaluate --corpus`.

def test_data_summary_and_split_map_raw_labels_with_label_map(glee, capsys):
    assert main(["data", "summary", "--corpus", "manifest", "--data-dir", str(glee), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # the summary lists the rows it could not label
    assert summary["labels"] == {"sad": 4} and "Unknown emotion label 'glee'" in summary["unreadable"][0]["reason"]
    assert main(["data", "summary", "--corpus", "manifest", "--data-dir", str(glee), "--json",
                 "--label-map", "glee=happy"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labels"] == {"happy": 4, "sad": 4} and summary["unreadable"] == []
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(glee), "--folds", "2", "--json",
                 "--label_map", "glee=happy"]) == 0  # either spelling of the flag
    table = json.loads(capsys.readouterr().out)
    assert sum(table[f"fold{k}/test"]["happy"] for k in (1, 2)) == 4


def test_data_label_map_is_parsed_like_trains(glee, capsys):
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(glee), "--label-map", "glee"]) == 2
    assert "label_map entry 'glee' in 'glee' is not 'from=to'" in capsys.readouterr().err
    assert main(["data", "summary", "--corpus", "manifest", "--data-dir", str(glee), "--label-map", "glee=joyous"]) == 2
    assert "maps 'glee' to 'joyous', which is not an emotion" in capsys.readouterr().err


def test_raw_label_entries_go_to_the_loader_and_the_others_to_the_model():
    assert loader_label_map({"glee": "happy", "0": "neutral", "calm": "neutral"}, "manifest") == (
        {"glee": "happy", "0": "neutral"}, {"calm": "neutral"})
    assert loader_label_map({"glee": "happy"}, "folder") == ({"glee": "happy"}, {})
    # built-in corpora have fixed labels: every entry keeps its corpus label -> model class meaning
    assert loader_label_map({"glee": "happy"}, "ravdess") == ({}, {"glee": "happy"})


@pytest.fixture(scope="module")
def four_class_model(tmp_path_factory, single_torch_thread):
    from ser_hf.models.factory import build_model, save_checkpoint
    from ser_hf.testing.models import tiny_backbone

    tmp = tmp_path_factory.mktemp("hostile-model")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), FOUR)
    return save_checkpoint(model, extractor, tmp / "four")


def test_evaluate_maps_a_raw_manifest_label_as_the_loader_suggests(tmp_path, four_class_model):
    manifest = _manifest(tmp_path, [(label, speaker) for speaker in "AB" for label in ("glee", "sad", "calm")])
    with pytest.raises(CorpusError, match=r"Unknown emotion label 'glee'"):
        evaluate_checkpoint(four_class_model, "manifest", manifest, progress=False, n_resamples=0)
    report = evaluate_checkpoint(four_class_model, "manifest", manifest, label_map="glee=happy,calm=neutral",
                                 progress=False, n_resamples=0)
    # 'glee' was mapped as the corpus loaded; 'calm', a label the corpus has, still goes to a model class
    assert report.metadata["label_mapping"] == {"calm": "neutral", "happy": "happy", "sad": "sad"}
    assert report.metadata["unmapped"] == {}
    assert report.num_samples == 6


# Finding 10: fold counts below 2, leave-one-speaker-out on one speaker.

@pytest.mark.parametrize("folds", ["0", "-2", "1"])
def test_data_split_refuses_fewer_than_two_folds(glee, capsys, folds):
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(glee), "--folds", folds]) == 2
    err = capsys.readouterr().err
    assert f"--folds must be an integer >= 2 (each fold tests speakers the others train on), got {folds}" in err
    assert "fewer" not in err


def test_fold_counts_below_two_are_not_told_to_choose_fewer(glee):
    from ser_hf.corpora import load_corpus

    dataset = load_corpus("manifest", glee, label_map={"glee": "happy"})
    with pytest.raises(SplitError, match=r"must be an integer >= 2.*got 1\. Choose 2 to 4 folds") as caught:
        speaker_folds(dataset, n_folds=1)
    assert "fewer" not in str(caught.value)


def test_leave_one_speaker_out_needs_two_speakers(tmp_path, capsys):
    one = _manifest(tmp_path, [("happy", "A"), ("sad", "A")])
    from ser_hf.corpora import load_corpus

    with pytest.raises(SplitError, match=r"Leave-one-speaker-out needs at least 2 speakers .* has 1 \(\['A'\]\)"):
        leave_one_speaker_out(load_corpus("manifest", one))
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(one), "--loso"]) == 2
    assert "Leave-one-speaker-out needs at least 2 speakers" in capsys.readouterr().err


# Finding 11: a label_map that is not a mapping.

def test_map_labels_reads_text_and_refuses_other_types(four_class_model):
    assert map_labels(["calm", "happy"], FOUR, "calm=neutral").mapping == {"calm": "neutral", "happy": "happy"}
    assert as_label_map(None) == {} and as_label_map({"calm": "neutral"}) == {"calm": "neutral"}
    with pytest.raises(EvaluationError, match=r"label_map must be a mapping \{corpus label: model class\} or "
                                              r"'from=to,\.\.\.' text, got list"):
        map_labels(["calm"], FOUR, [("calm", "neutral")])
    from datasets import ClassLabel, Dataset

    from ser_hf.evaluation.corpus_eval import evaluate_model

    dataset = Dataset.from_dict({"audio": ["x.wav"], "label": [0], "speaker": ["A"]}).cast_column(
        "label", ClassLabel(names=["calm"]))
    with pytest.raises(EvaluationError, match=r"got tuple"):
        evaluate_model(four_class_model, dataset, label_map=("calm", "neutral"), progress=False)


# Finding 7: audiofolder metadata.csv conflicts.

def _audiofolder(root, names=("happy/a.wav", "happy/b.wav", "sad/c.wav", "sad/d.wav")):
    for number, name in enumerate(names):
        write_tone(root / name, frequency=150 + 20 * number, seed=number)
    return root


@pytest.mark.parametrize("second", ["happy/a.wav,B,happy", "./happy/../happy/a.wav,A,angry"])
def test_audiofolder_metadata_naming_one_file_twice_is_refused_with_both_lines(tmp_path, second):
    root = _audiofolder(tmp_path / "af")
    (root / "metadata.csv").write_text("file_name,speaker,label\nhappy/a.wav,A,happy\nsad/c.wav,A,sad\n"
                                       f"{second}\n")
    with pytest.raises(CorpusError, match=r"metadata\.csv': lines 2 and 4 both name the audio file '.*happy/a\.wav' "
                                          r".*expected one row per file\. Keep one of the two rows"):
        read_audiofolder(root)


def test_audiofolder_metadata_rows_matching_no_file_are_named(tmp_path):
    root = _audiofolder(tmp_path / "af")
    write_tone(tmp_path / "outside.wav")
    (root / "notes.txt").write_text("not audio")
    (root / "metadata.csv").write_text("file_name,speaker\nhappy/a.wav,A\nHAPPY/B.WAV,B\n../outside.wav,C\n"
                                       "happy/typo.wav,D\nnotes.txt,E\n")
    with pytest.raises(CorpusError) as caught:
        read_audiofolder(root)
    message = str(caught.value)
    for part in ("4 row(s) name no audio file in", "line 3 'HAPPY/B.WAV' (no such file, did you mean 'happy/b.wav'?)",
                 "line 4 '../outside.wav' (outside that folder)", "line 5 'happy/typo.wav' (no such file)",
                 "line 6 'notes.txt' (not an audio file ser_hf reads)", "Check the spelling and case, or remove"):
        assert part in message
    (root / "metadata.csv").write_text("file_name,speaker\n" + "".join(f"x{k}.wav,A\n" for k in range(8)))
    with pytest.raises(CorpusError, match=r"8 row\(s\) name no audio file.*line 6 'x4\.wav' \(no such file\) and "
                                          r"3 more\."):
        read_audiofolder(root)


def test_root_metadata_of_split_folders_still_matches_every_split(tmp_path):
    root = tmp_path / "af"
    _audiofolder(root, ("train/happy/a.wav", "train/sad/b.wav", "test/happy/c.wav", "test/sad/d.wav"))
    (root / "metadata.csv").write_text("file_name,speaker\ntrain/happy/a.wav,A\ntrain/sad/b.wav,A\n"
                                       "test/happy/c.wav,B\ntest/sad/d.wav,B\n")
    parts = read_audiofolder(root)
    assert parts["train"]["speaker"] == ["A", "A"] and parts["test"]["label"] == ["happy", "sad"]


def test_a_loose_file_that_switches_folder_labels_off_is_named(tmp_path):
    root = _audiofolder(tmp_path / "af")
    write_tone(root / "loose.wav")
    with pytest.raises(CorpusError, match=r"1 audio file\(s\) are not one folder deep \('loose\.wav'\), while 4 lie "
                                          r"in class folders\. Labels come from the class folders only when every "
                                          r"file lies one folder deep"):
        read_audiofolder(root)
    (root / "metadata.csv").write_text("file_name,label\n" + "".join(
        f"{name},{label}\n" for name, label in [("happy/a.wav", "happy"), ("happy/b.wav", "happy"),
                                                ("sad/c.wav", "sad"), ("sad/d.wav", "sad"), ("loose.wav", "sad")]))
    assert sorted(read_audiofolder(root)["train"]["label"]) == ["happy", "happy", "sad", "sad", "sad"]
    flat = tmp_path / "flat"  # no class folders at all: a tree without labels, as before
    write_tone(flat / "a.wav")
    assert read_audiofolder(flat)["train"].column_names == ["audio"]


# Finding 13 (CLI part): --speaker-pattern with a corpus that has speakers of its own.

def test_speaker_pattern_with_a_manifest_says_where_manifests_take_speakers(tmp_path, capsys):
    # the data folder does not exist: the option is refused before anything loads
    assert main(["data", "summary", "--corpus", "manifest", "--data-dir", str(tmp_path / "nowhere.csv"),
                 "--speaker-pattern", r"^(\w+)_"]) == 2
    err = capsys.readouterr().err
    assert "--speaker-pattern '^(\\w+)_' is only for --corpus folder" in err
    assert "a manifest takes each clip's speaker from its 'speaker' column" in err and "unexpected" not in err
    assert main(["data", "split", "--corpus", "urdu", "--data-dir", str(tmp_path), "--speaker-pattern", "x(y)"]) == 2
    assert "the 'urdu' corpus takes speakers from its own file naming" in capsys.readouterr().err


# Audit 30a finding 15: `data split` for a manifest with a split column shows what `ser-hf train` will test on.

def test_data_split_holdout_shows_the_test_rows_the_split_column_marks(tmp_path, capsys, caplog):
    lines = ["path,label,speaker,split"]
    for number in range(8):
        write_tone(tmp_path / f"c{number}.wav", frequency=120 + 13 * number, seed=number)
        lines.append(f"c{number}.wav,{('happy', 'sad')[number % 2]},s{number // 2},{' TEST' if number >= 6 else 'train'}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    common = ["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), "--json"]
    assert main([*common, "--holdout"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["test"] == {"happy": 1, "sad": 1, "total": 2, "speakers": 1}  # speaker s3's two rows, as train uses
    assert table["train"]["total"] + table["validation"]["total"] == 6
    with caplog.at_level("WARNING", logger="ser_hf.cli.data"):
        assert main([*common, "--folds", "2"]) == 0
    assert "the manifest's split column marks 2 clips as test; these folds do not use it" in caplog.text
    assert "ser-hf train tests on those clips; --holdout shows that split" in caplog.text
    (tmp_path / "all_test.csv").write_text("\n".join(lines[:1] + [line.rsplit(",", 1)[0] + ",test" for line in lines[1:]]))
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(tmp_path / "all_test.csv"), "--holdout"]) == 2
    assert "the manifest's split column marks all 8 clips as test" in capsys.readouterr().err
