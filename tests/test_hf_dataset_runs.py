"""`ser-hf train`, `cv`, `evaluate` and `predict` on `datasets` datasets (issue 17 item 1), tiny Whisper, offline."""

import json

import pytest

from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.inference.outputs import read_records
from ser_hf.splits import RANDOM_SPLIT, SPEAKER_INDEPENDENT
from ser_hf.testing.hf_datasets import emotion_rows, make_emotion_dataset, to_dataset
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.experiment import train
from ser_hf.training.recipes import parse_run

COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor", "--gender_column_name", "sex"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf_runs")
    backbone = tiny_backbone("whisper", tmp / "tiny-whisper")
    common = ["--model_name_or_path", str(backbone), "--max_source_positions", "50", "--probe_max_epochs", "5",
              "--probe_projector_size", "8", "--embedding_cache_dir", str(tmp / "cache")]
    return tmp, common


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


@pytest.fixture(scope="module")
def trained(setup):
    """A model trained on parquet shards whose own test split (speakers 5 and 6) is the test part."""
    tmp, common = setup
    root = make_emotion_dataset(tmp / "pq", layout="parquet", class_labels=True, test_split=True)
    out = tmp / "model"
    assert main(["train", *common, "--dataset_name", str(root), *COLUMNS, "--eval_split_name", "test",
                 "--output_dir", str(out)]) == 0
    return root, out


def test_train_on_parquet_shards_with_their_own_test_split(setup, trained, single_torch_thread):
    tmp, _ = setup
    root, out = trained
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["corpus"] == str(root) and report["num_samples"] == 8  # the test split: speakers 5 and 6
    assert report["metadata"]["speakers"] == ["spk5", "spk6"]
    assert report["metadata"]["split_kind"] == SPEAKER_INDEPENDENT
    record = json.loads((out / "ser_hf_run.json").read_text())
    assert record["data"]["dataset_name"] == str(root) and record["split_kind"] == SPEAKER_INDEPENDENT
    # evaluate the same model on the same dataset's test split, as ser-hf evaluate takes it
    assert main(["evaluate", "--model", str(out), "--dataset_name", str(root), "--eval_split_name", "test",
                 *COLUMNS, "--out", str(tmp / "eval"), "--n-resamples", "10", "--no-progress"]) == 0
    evaluated = json.loads((tmp / "eval" / "report.json").read_text())
    assert evaluated["num_samples"] == 8 and evaluated["unweighted_accuracy"] == report["unweighted_accuracy"]


def test_evaluate_needs_a_corpus_or_a_dataset(setup, capsys):
    assert main(["evaluate", "--model", "m", "--out", "o"]) == 2
    assert "needs either --corpus NAME (with --data-dir) or --dataset_name NAME, not neither" in capsys.readouterr().err


def test_cv_on_an_audiofolder(setup, single_torch_thread, capsys):
    tmp, common = setup
    root = make_emotion_dataset(tmp / "af", layout="audiofolder")
    out = tmp / "cv"
    assert main(["cv", *common, "--dataset_name", str(root), "--label_column_name", "emotion_text",
                 "--speaker_column_name", "actor", "--num_folds", "3", "--output_dir", str(out)]) == 0
    summary = json.loads((out / "cv" / "cv_summary.json").read_text())
    assert summary["pooled"]["num_samples"] == 24 and summary["settings"]["split_kind"] == SPEAKER_INDEPENDENT


def test_no_speaker_column_needs_allow_random_split_and_says_so(setup, single_torch_thread):
    tmp, common = setup
    root = make_emotion_dataset(tmp / "nospk", speakers=False)
    args = [*common, "--dataset_name", str(root), "--label_column_name", "emotion", "--output_dir", str(tmp / "rnd")]
    with pytest.raises(SERError, match=r"has no speaker ids .*--speaker_column_name.*--allow_random_split"):
        train(parse_run(None, args))
    # validation_size 0.3: three held-out parts of single clips, fewer than the 4 clips per class in training
    assert main(["cv", *args, "--num_folds", "3", "--validation_size", "0.3", "--allow_random_split", "true"]) == 0
    summary = json.loads((tmp / "rnd" / "cv" / "cv_summary.json").read_text())
    assert summary["settings"]["split_kind"] == RANDOM_SPLIT
    assert summary["pooled"]["metadata"]["split_kind"] == RANDOM_SPLIT
    fold = json.loads((tmp / "rnd" / "cv" / "fold1" / "report.json").read_text())
    assert fold["metadata"]["split_kind"] == RANDOM_SPLIT


def test_dataset_name_replaces_corpus(setup):
    with pytest.raises(SERError, match=r"dataset_name \('x'\) replaces corpus and data_dir.*pass only one"):
        parse_run(None, ["--dataset_name", "x", "--corpus", "urdu"])
    run = parse_run(None, ["--dataset_name", "x"])
    assert run.data.corpus == "x" and run.data.corpora() == []


def test_predict_over_a_dataset_writes_one_record_per_row_and_resumes(setup, trained, tmp_path, capsys):
    rows = emotion_rows(n_speakers=2)
    rows["audio"][1] = dict(rows["audio"][0])  # two rows with the same bytes: still two records
    rows["audio"][3] = {"bytes": b"not audio at all" * 8, "path": None}
    to_dataset(rows).save_to_disk(str(tmp_path / "d"))
    out = tmp_path / "p.jsonl"
    args = ["predict", "--model", str(trained[1]), "--dataset_name", str(tmp_path / "d"), "--eval_split_name", "train",
            "--out", str(out), "--no-progress", "--chunk-size", "3"]
    assert main(args) == 0
    records = read_records(out)
    assert [r["row"] for r in records] == list(range(8)) and {r["split"] for r in records} == {"train"}
    assert "Cannot read" in records[3]["error"] and "label" in records[1]
    assert sum("error" in r for r in records) == 1
    assert main(args) == 0  # a rerun finds every row done
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 8
    assert len(read_records(out)) == 8


def test_predict_needs_files_or_a_dataset(capsys):
    assert main(["predict", "--model", "m", "--out", "o.jsonl"]) == 2
    assert "needs input files (INPUT ...) or --dataset_name NAME, not neither" in capsys.readouterr().err


def test_search_fine_tunes_on_a_dataset(setup, tmp_path, capsys):
    pytest.importorskip("optuna", reason="optuna is optional (pip install 'ser-hf[search]')")
    root = make_emotion_dataset(tmp_path / "d", class_labels=True, format="FLAC")
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    assert main(["search", "--trials", "1", "--dataset_name", str(root), *COLUMNS, "--model_name_or_path",
                 str(backbone), "--mode", "finetune", "--num_train_epochs", "1", "--eval_strategy", "epoch",
                 "--save_strategy", "no", "--disable_tqdm", "true", "--output_dir", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "hp_search.json").read_text())
    assert record["validation_speakers"] and not set(record["validation_speakers"]) & set(record["test_speakers_held_out"])
