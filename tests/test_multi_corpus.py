"""Multi-corpus runs (``corpus: urdu,ravdess``): parsing, folds within each corpus, per-corpus and
leave-one-corpus-out rows, the speaker split and the model card, on synthetic trees and a tiny model."""

import json
import logging

import numpy as np
import pytest

from ser_hf.cli import main
from ser_hf.corpora.combined import combined_speaker_split, leave_one_corpus_out_folds
from ser_hf.errors import SERError
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.experiment import require_several_corpora
from ser_hf.training.recipes import parse_run
from ser_hf.training.run_data import load_run_dataset, run_folds

URDU_CLIPS, RAVDESS_CLIPS = 48, 64  # the synthetic trees: 6 speakers x 8 clips; 8 actors x 8 clips of 4 emotions


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    urdu = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    ravdess = make_corpus_tree("ravdess", tmp / "ravdess", duration=0.4)
    backbone = tiny_backbone("whisper", tmp / "tiny-whisper")
    common = ["--corpus", "urdu,ravdess", "--data_dir", f"{urdu},{ravdess}", "--model_name_or_path", str(backbone),
              "--max_source_positions", "50", "--num_folds", "3", "--embedding_cache_dir", str(tmp / "cache")]
    return tmp, common


def test_a_yaml_list_of_corpora_defaults_to_the_shared_four_classes(setup, tmp_path):
    tmp, _ = setup
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"corpus: [urdu, ravdess]\ndata_dir: [{tmp / 'urdu'}, {tmp / 'ravdess'}]\n")
    run = parse_run(recipe)
    assert (run.data.corpus, run.data.emotions) == ("urdu,ravdess", "4class")
    assert run.data.sources() == {"urdu": str(tmp / "urdu"), "ravdess": str(tmp / "ravdess")}
    assert parse_run(recipe, ["--emotions", "neutral,angry"]).data.emotions == "neutral,angry"
    assert parse_run(None, corpus="urdu").data.emotions is None  # a single corpus keeps all its emotions
    dataset = load_run_dataset(run.data)
    assert dataset.features["label"].names == ["neutral", "happy", "sad", "angry"]
    assert set(dataset["corpus"]) == {"urdu", "ravdess"} and "urdu/SM1" in dataset["speaker"]


def test_mismatched_corpora_and_folders_name_both(tmp_path):
    with pytest.raises(SERError, match=r"corpus names 2 corpora \(\['urdu', 'ravdess'\]\) but data_dir names 1 "
                                       r"folders \(\['data/urdu'\]\).*Set in the keyword argument data_dir="):
        parse_run(None, corpus="urdu,ravdess", data_dir="data/urdu")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("corpus: [urdu, ravdess, emodb]\ndata_dir: [a, b]\n")
    with pytest.raises(SERError, match=r"names 3 corpora .* names 2 folders .*Set in recipe .*r\.yaml"):
        parse_run(recipe)
    with pytest.raises(SERError, match=r"corpus names \['urdu'\] more than once"):
        parse_run(None, corpus="urdu,urdu", data_dir="a,b")
    recipe.write_text("corpus: [urdu, ravdess]\ndata_dir: ['a,b', c]\n")
    with pytest.raises(SERError, match=r"data_dir: the list .* has an item with a comma"):
        parse_run(recipe)
    with pytest.raises(SERError, match=r"leave_one_corpus_out needs several corpora, but corpus is 'urdu'"):
        require_several_corpora(parse_run(None, corpus="urdu"), "leave_one_corpus_out")


def test_folds_within_each_corpus_test_every_clip_once(setup):
    _, common = setup
    run = parse_run(None, common)
    dataset = load_run_dataset(run.data)
    folds = run_folds(run, dataset)
    tested = np.sort(np.concatenate([fold.test for fold in folds]))
    np.testing.assert_array_equal(tested, np.arange(URDU_CLIPS + RAVDESS_CLIPS))
    # RAVDESS keeps its actor folds (4 of its 6 in the synthetic tree), URDU gets num_folds=3 speaker folds.
    corpora = np.asarray(dataset["corpus"])
    assert [sorted(set(corpora[fold.test])) for fold in folds] == [["ravdess", "urdu"]] * 3 + [["ravdess"]]
    holdout = leave_one_corpus_out_folds(dataset)
    assert [fold.name for fold in holdout] == ["urdu", "ravdess"]
    assert all(set(corpora[fold.test]) == {fold.name} and fold.name not in set(corpora[fold.train]) for fold in holdout)


def test_split_within_each_corpus(setup):
    _, common = setup
    run = parse_run(None, common)
    split = combined_speaker_split(load_run_dataset(run.data), test_size=0.2, validation_size=0.15)
    assert sorted(split) == ["test", "train", "validation"]
    for part in split.values():
        assert set(part["corpus"]) == {"urdu", "ravdess"}
    assert sum(len(part) for part in split.values()) == URDU_CLIPS + RAVDESS_CLIPS


def test_cv_reports_each_corpus_and_leave_one_corpus_out(setup, capsys):
    tmp, common = setup
    out = tmp / "cv"
    assert main(["cv", *common, "--output_dir", str(out), "--leave-one-corpus-out"]) == 0
    printed = capsys.readouterr().out
    assert "In-corpus UA per corpus" in printed and "Leave one corpus out" in printed
    summary = json.loads((out / "cv" / "cv_summary.json").read_text())
    assert summary["pooled"]["num_samples"] == URDU_CLIPS + RAVDESS_CLIPS  # every clip tested exactly once
    per_corpus = summary["per_corpus"]
    assert {name: report["num_samples"] for name, report in per_corpus.items()} == {
        "urdu": URDU_CLIPS, "ravdess": RAVDESS_CLIPS}
    for report in per_corpus.values():
        low, high = report["confidence_intervals"]["unweighted_accuracy"]
        assert low <= report["unweighted_accuracy"] <= high and report["bootstrap"]["unit"] == "group"
    assert "In-corpus UA per corpus" in (out / "cv" / "cv_summary.md").read_text()
    assert (out / "cv" / "per_corpus" / "urdu" / "report.json").exists()
    loco = json.loads((out / "leave_one_corpus_out" / "leave_one_corpus_out.json").read_text())["reports"]
    assert {name: (report["corpus"], report["num_samples"]) for name, report in loco.items()} == {
        "urdu": ("urdu", URDU_CLIPS), "ravdess": ("ravdess", RAVDESS_CLIPS)}
    assert "| urdu |" in (out / "leave_one_corpus_out" / "leave_one_corpus_out.md").read_text()


def test_leave_one_corpus_out_needs_several_corpora(setup, capsys):
    tmp, common = setup
    single = ["--corpus", "urdu", "--data_dir", str(tmp / "urdu"), *common[4:]]
    assert main(["cv", *single, "--output_dir", str(tmp / "single"), "--leave_one_corpus_out"]) == 2
    assert "--leave-one-corpus-out needs several corpora, but corpus is 'urdu'" in capsys.readouterr().err
    assert not (tmp / "single").exists()  # refused before any fold was run


def test_train_splits_each_corpus_and_the_card_lists_every_corpus(setup):
    tmp, common = setup
    out = tmp / "model"
    assert main(["train", *common, "--output_dir", str(out)]) == 0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {speaker.split("/")[0] for speaker in report["metadata"]["speakers"]} == {"urdu", "ravdess"}
    card = (out / "README.md").read_text()
    for text in ("URDU", "RAVDESS", "research use only", "CC BY-NC-SA 4.0", "within each corpus", "- ur\n", "- en\n"):
        assert text in card, text


def test_the_probe_on_several_corpora_counts_every_corpus_the_same(setup):
    from ser_hf.training.experiment import make_method

    _, common = setup
    run = parse_run(None, [*common, "--probe_inner_folds", "2"])
    dataset = load_run_dataset(run.data)
    method = make_method(run, dataset.features["label"].names, progress=False).fit(dataset)
    assert method.fit_record["balanced_corpora"] == ["ravdess", "urdu"]
    single = dataset.filter(lambda corpus: corpus == "urdu", input_columns="corpus")
    method = make_method(run, dataset.features["label"].names, progress=False).fit(single)
    assert "balanced_corpora" not in method.fit_record  # one corpus: emotions balanced over its clips, as ever
    run = parse_run(None, [*common, "--probe_inner_folds", "2", "--probe_speaker_adaptation", "true"])
    adaptive = make_method(run, dataset.features["label"].names, progress=False).fit(dataset).adaptive
    assert adaptive.record["global"]["balanced_corpora"] == ["ravdess", "urdu"]
    assert adaptive.record["adaptive"]["balanced_corpora"] == ["ravdess", "urdu"]


def test_leave_one_corpus_out_folder_is_checked_before_the_in_corpus_cv(setup, capsys):
    """What the leave-one-corpus-out models would refuse once they start is refused before the in-corpus CV runs
    (it ran first, for hours with a real model): a link where a held-out corpus's reports go, a folder where its
    summary goes, a file of the user's among an earlier run's reports."""
    tmp, common = setup
    out, mine = tmp / "loco-checked", tmp / "my-folder"
    mine.mkdir()
    out.mkdir()
    (out / "ser_hf_run.json").write_text(json.dumps({"data": {}, "model": {}, "training": {}}))  # an earlier run's
    loco = out / "leave_one_corpus_out"
    loco.mkdir()
    (loco / "urdu").symlink_to(mine)
    argv = ["cv", *common, "--output_dir", str(out), "--leave-one-corpus-out"]
    assert main(argv) == 2
    assert "its urdu is a link, not a folder, but ser_hf writes this fold's reports there" in capsys.readouterr().err
    (loco / "urdu").unlink()
    (loco / "leave_one_corpus_out.md").mkdir()
    assert main(argv) == 2
    assert "its leave_one_corpus_out.md is a folder" in capsys.readouterr().err
    (loco / "leave_one_corpus_out.md").rmdir()
    (loco / "notes.txt").write_text("mine")
    assert main(argv) == 2
    assert "notes.txt, which ser_hf did not write there" in capsys.readouterr().err
    assert not (out / "cv").exists() and list(mine.iterdir()) == []  # no fold of the in-corpus CV ran


def test_emotions_one_corpus_lacks_are_warned_about_only_when_no_corpus_has_them(setup, caplog):
    """Judged on the clips together: synthetic URDU has 4 emotions, RAVDESS all 8 (audit 33, F1: each corpus was
    judged alone, so `ravdess8` on URDU + RAVDESS was said to give classes nothing trains)."""
    tmp, _ = setup
    sources = ["--data_dir", f"{tmp / 'urdu'},{tmp / 'ravdess'}"]
    with caplog.at_level(logging.WARNING):
        load_run_dataset(parse_run(None, ["--corpus", "urdu,ravdess", *sources, "--emotions", "ravdess8"]).data)
    assert not [r for r in caplog.records if "emotions asked for" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        load_run_dataset(parse_run(None, ["--corpus", "urdu", "--data_dir", str(tmp / "urdu"), "--emotions",
                                          "ravdess8"]).data)
    (warned,) = [r.getMessage() for r in caplog.records if "emotions asked for" in r.getMessage()]
    assert "['calm', 'fearful', 'disgust', 'surprised'], which no clip of urdu in" in warned
    assert "Leave them out: emotions (--emotions) neutral,happy,sad,angry" in warned
