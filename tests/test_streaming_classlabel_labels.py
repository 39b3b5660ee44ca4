"""`--streaming` on a `ClassLabel` label column judges the names the rows use, as a non-streamed load of the same
dataset does, not the names the ClassLabel declares: a declared name no row uses splits no emotion and counts as no
label for a label_map entry; a declared name that spells no emotion fails only where a row uses it, naming that row;
and a declared name no training row uses, which a streamed model (its classes fixed before the first row) still gets
as a class, is named in a warning once every row has been read, with the `--emotions` that leaves it out as a
non-streamed load does."""

import logging
import re

import datasets
import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from ser_hf.corpora import DatasetSource, load_corpus
from ser_hf.errors import CorpusError, SERError
from ser_hf.testing.hf_datasets import emotion_rows
from ser_hf.training import streaming
from ser_hf.training.recipes import parse_run
from ser_hf.training.run_data import load_run_dataset

COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor"]
FOUR = ["neutral", "happy", "sad", "angry"]
LAYOUTS = ["save_to_disk", "parquet"]
#: Row 13 of the 24-clip dataset (speaker by speaker, 4 emotions each): a happy row of spk4.
ROW_13_AUDIO = "spk4_happy_0.wav"


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def _save(root, names: list[str], relabelled: dict[int, str] | None = None, layout: str = "save_to_disk") -> str:
    """The 24-clip dataset, its rows in `relabelled` given other labels, with the labels a ClassLabel declaring
    `names` (a save_to_disk folder, or two parquet files: a stream that cannot count its rows)."""
    rows = emotion_rows()
    rows["emotion"] = [names.index((relabelled or {}).get(i, label)) for i, label in enumerate(rows["emotion"])]
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "emotion": datasets.ClassLabel(names=names), "actor": datasets.Value("string"),
                                  "sex": datasets.Value("string")})
    part = datasets.Dataset.from_dict(rows, features=features).cast_column("audio", datasets.Audio(decode=False))
    if layout == "save_to_disk":
        datasets.DatasetDict({"train": part}).save_to_disk(str(root))
    else:
        root.mkdir()
        for number, rows_of_file in enumerate([range(12), range(12, 24)]):
            part.select(rows_of_file).to_parquet(str(root / f"train-{number:05d}-of-00002.parquet"))
    return str(root)


def _run(root: str, *extra: str):
    return parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, *extra])


def _split(run):
    source = run.data.dataset_source()
    return streaming.select_split(streaming.open_dataset(source, streaming=True), "train", source)


def _messages(caplog, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and any(word in r.getMessage() for word in words)]


def _non_streamed_warnings(root: str, caplog, label_map: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The label_map warnings of a non-streamed load, and its label names."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loaded = load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), label_map=label_map)
    found = _messages(caplog, "label_map")
    caplog.clear()
    return found, loaded.features["label"].names


def _read_whole_stream(run, tmp_path, caplog) -> list[dict]:
    """Every row of the training stream read with the run's watch, then the end of an epoch before `max_steps` (a
    stream of unknown length knows it was read whole only then)."""
    labels = streaming.stream_labels(run.data, _split(run))
    watch = streaming.LabelMapWatch.for_split(run.data, _split(run))
    assert watch is not None
    with caplog.at_level(logging.WARNING):
        rows = list(streaming.training_stream(run.data, labels, seed=0, watch=watch))
        args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=10, report_to=[])
        watch.on_epoch_end(args, TrainerState(global_step=3, max_steps=10), TrainerControl())
    return rows


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_declared_name_no_row_uses_splits_no_emotion_and_leaves_a_matching_entry_unused(tmp_path, caplog, layout):
    """'joy' and 'angyr' are declared, no row says them: `happy=sad` splits nothing, `angyr=neutral` changes nothing,
    as a non-streamed load says (it warned that `happy=sad` splits 'joy', and never that 'angyr' is unused)."""
    root = _save(tmp_path / "d", ["neutral", "happy", "joy", "sad", "angry", "angyr"], layout=layout)
    label_map = {"happy": "sad", "angyr": "neutral"}
    expected, _ = _non_streamed_warnings(root, caplog, label_map)
    assert len(expected) == 1 and "label_map entries {'angyr': 'neutral'} match no label" in expected[0]
    run = _run(root, "--emotions", "neutral,sad,angry", "--label_map", "happy=sad,angyr=neutral")
    assert len(_read_whole_stream(run, tmp_path, caplog)) == 24
    assert _messages(caplog, "label_map") == expected


def test_a_declared_name_rows_use_splits_an_emotion_as_in_a_non_streamed_load(tmp_path, caplog):
    root = _save(tmp_path / "d", ["neutral", "happy", "joy", "sad", "angry"], {1: "joy", 9: "joy"})
    expected, _ = _non_streamed_warnings(root, caplog, {"happy": "sad", "angyr": "neutral"})
    assert len(expected) == 2 and "(entry: unmapped labels) {'happy=sad': ['joy']}" in expected[0]
    run = _run(root, "--emotions", "4class", "--label_map", "happy=sad,angyr=neutral")
    with caplog.at_level(logging.WARNING):
        streaming.LabelMapWatch.for_split(run.data, _split(run))
    assert _messages(caplog, "label_map") == []  # judged on the rows, once they are read
    _read_whole_stream(run, tmp_path, caplog)
    assert _messages(caplog, "label_map") == expected


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_declared_emotion_no_training_row_uses_is_named_with_the_emotions_that_leave_it_out(tmp_path, caplog, layout):
    root = _save(tmp_path / "d", ["neutral", "happy", "sad", "angry", "fear"], layout=layout)
    assert _non_streamed_warnings(root, caplog)[1] == FOUR  # a non-streamed load has no fearful class
    run = _run(root)
    assert streaming.stream_labels(run.data, _split(run)) == [*FOUR, "fearful"]  # fixed before the first row
    _read_whole_stream(run, tmp_path, caplog)
    (warned,) = _messages(caplog, "ClassLabel")
    assert "declares names no training row uses (class: names) {'fearful': ['fear']}" in warned
    assert "train with --emotions neutral,happy,sad,angry to leave them out" in warned
    caplog.clear()
    _read_whole_stream(_run(root, "--emotions", "4class"), tmp_path / "four", caplog)
    assert not _messages(caplog, "ClassLabel") and not _messages(caplog, "emotions asked for")


def test_an_emotion_asked_for_that_no_training_row_has_is_named_as_a_non_streamed_run_names_it(tmp_path, caplog):
    root = _save(tmp_path / "d", FOUR)
    five = ["--emotions", "neutral,happy,sad,angry,fearful"]
    with caplog.at_level(logging.WARNING):
        load_run_dataset(parse_run(None, ["--dataset_name", root, *COLUMNS, *five]).data)
    (loaded,) = _messages(caplog, "emotions asked for")
    caplog.clear()
    _read_whole_stream(_run(root, *five), tmp_path, caplog)
    (streamed,) = _messages(caplog, "emotions asked for")
    for warned in (loaded, streamed):
        assert "include ['fearful']" in warned and "Leave it out: emotions (--emotions) neutral,happy,sad,angry" in warned


@pytest.mark.parametrize(("name", "advice"), [
    ("xyz", "Map it with --label_map 'xyz=<emotion>'"),
    ("a=b", "Rename the labels ['a=b'] in the dataset"),
    ("x,y", "Rename the labels ['x,y'] in the dataset"),
    ("new\nline", "Rename the labels"),
])
def test_the_fix_for_a_label_spelling_no_emotion_is_one_the_user_can_type(tmp_path, name, advice):
    root = _save(tmp_path / "d", [*FOUR, name], {13: name})
    run = _run(root)
    with pytest.raises(CorpusError, match=re.escape(advice)):
        list(streaming.training_stream(run.data, streaming.stream_labels(run.data, _split(run)), seed=0))
    only = _run(_save(tmp_path / "only", [name], {row: name for row in range(24)}))
    with pytest.raises(SERError, match=re.escape(advice)):
        streaming.stream_labels(only.data, _split(only))


def test_test_split_emotions_the_streamed_model_lacks_are_named(tmp_path, caplog):
    """The test split's ClassLabel has `fear`, which the training split's has not: without --emotions its clips are
    left out of the test report, and a warning names them with the --emotions that would learn them."""
    source = _save(tmp_path / "src", [*FOUR, "fear"], {1: "fear", 5: "fear"})
    train = datasets.load_from_disk(_save(tmp_path / "train", FOUR))
    test = datasets.load_from_disk(source)["train"]
    root = str(tmp_path / "d")
    datasets.DatasetDict({"train": train["train"], "test": test}).save_to_disk(root)
    labelled = set()
    load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), splits=["test"], emotions=FOUR,
                labelled=labelled)
    with caplog.at_level(logging.WARNING):
        streaming._warn_test_emotions_left_out(_run(root, "--eval_split_name", "test").data, FOUR, labelled)
        streaming._warn_test_emotions_left_out(_run(root, "--eval_split_name", "test", "--emotions", "4class").data,
                                               FOUR, labelled)
    (warned,) = _messages(caplog, "no class for")
    assert "'test' split (--eval_split_name)" in warned and "clips of ['fearful'] (raw labels ['fear'])" in warned
    assert "train with --emotions neutral,happy,sad,angry,fearful" in warned


def test_a_training_run_names_the_declared_emotion_it_never_trained(tmp_path, caplog, single_torch_thread):
    """Through the Trainer, without a label_map: 24 rows in batches of 8 run out after 3 steps, before max_steps."""
    from ser_hf.cli import main
    from ser_hf.testing.models import tiny_backbone

    root = _save(tmp_path / "d", ["neutral", "happy", "sad", "angry", "fear"])
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--streaming", "true", "--dataset_name", root, *COLUMNS, "--model_name_or_path",
                     str(backbone), "--mode", "finetune", "--max_steps", "4", "--per_device_train_batch_size", "8",
                     "--disable_tqdm", "true", "--class_weighted_loss", "false",
                     "--output_dir", str(tmp_path / "model")]) == 0
    (warned,) = _messages(caplog, "ClassLabel")
    assert "{'fearful': ['fear']}" in warned and "--emotions neutral,happy,sad,angry" in warned


@pytest.mark.parametrize(("layout", "row"), [("save_to_disk", "row 13"), ("parquet", f"row with audio '{ROW_13_AUDIO}'")])
def test_a_row_whose_declared_name_spells_no_emotion_stops_the_stream_naming_it(tmp_path, layout, row):
    root = _save(tmp_path / "d", [*FOUR, "xyz"], {13: "xyz"}, layout=layout)
    with pytest.raises(CorpusError, match=r"split 'train' row 13: Unknown emotion label 'xyz'"):
        load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"))
    run = _run(root)
    labels = streaming.stream_labels(run.data, _split(run))
    assert labels == FOUR
    with pytest.raises(CorpusError, match=rf"dataset '.*' split 'train' {row}: Unknown emotion label 'xyz'\. Expected "
                                          rf"one of the canonical emotions .*\nMap it with --label_map "
                                          rf"'xyz=<emotion>', fix or remove the row, or train with --strict false"):
        list(streaming.training_stream(run.data, labels, seed=0))


def test_without_strict_such_a_row_is_skipped_with_the_non_streamed_load_s_warning(tmp_path, caplog):
    root = _save(tmp_path / "d", [*FOUR, "xyz"], {13: "xyz"})
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="They were skipped"):
        load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"), strict=False)
    expected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert len(expected) == 1 and "row 13: Unknown emotion label 'xyz'" in expected[0]
    caplog.clear()
    run = _run(root, "--strict", "false")
    with caplog.at_level(logging.WARNING):
        assert len(list(streaming.training_stream(run.data, streaming.stream_labels(run.data, _split(run)), 0))) == 23
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")] == expected


def test_a_declared_name_that_spells_no_emotion_and_no_row_uses_is_ignored(tmp_path):
    root = _save(tmp_path / "d", [*FOUR, "xyz"])
    assert len(load_corpus(DatasetSource(root, label_column="emotion", speaker_column="actor"))) == 24
    run = _run(root)
    labels = streaming.stream_labels(run.data, _split(run))
    assert labels == FOUR and len(list(streaming.training_stream(run.data, labels, seed=0))) == 24


def test_a_class_label_with_no_emotion_among_its_names_is_refused_before_training(tmp_path):
    root = _save(tmp_path / "d", ["n", "h", "s", "a"], {i: "nhsa"[i % 4] for i in range(24)})
    with pytest.raises(SERError, match=r"none of the ClassLabel names \['n', 'h', 's', 'a'\] of the label column "
                                       r"'emotion' spells an emotion.*--label_map 'n=<emotion>,h=<emotion>,"):
        streaming.stream_labels(_run(root).data, _split(_run(root)))


@pytest.mark.parametrize(("extra", "named", "test_part"), [
    (["--test_size", "0.3"], ["test_size (--test_size) 0.3"], "no test part"),
    (["--test_size", "0.2"], ["test_size (--test_size) 0.2"], "no test part"),  # typed at its default: set all the same
    (["--validation_size", "0.2", "--eval_split_name", "test"], ["validation_size (--validation_size) 0.2"],
     "'test' split (--eval_split_name)"),
])
def test_split_sizes_a_stream_cannot_use_are_named(extra, named, test_part, caplog):
    run = parse_run(None, ["--streaming", "true", "--dataset_name", "d", *COLUMNS, *extra])
    with caplog.at_level(logging.WARNING):
        streaming._warn_unused_split_sizes(run)
    (warned,) = _messages(caplog, "not used")
    assert all(name in warned for name in named) and test_part in warned and "holds no speakers out" in warned
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        streaming._warn_unused_split_sizes(parse_run(None, ["--streaming", "true", "--dataset_name", "d", *COLUMNS]))
    assert not _messages(caplog, "not used")
