"""`--streaming` fine-tuning on an IterableDataset (issue 17 item 2), tiny wav2vec2, offline."""

import json
import os
import socket
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch

from ser_hf.audio import load_audio_bytes
from ser_hf.cli import main
from ser_hf.errors import AudioError, SERError
from ser_hf.testing.hf_datasets import audio_bytes, emotion_rows, make_emotion_dataset, to_dataset
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.data import AudioCollator
from ser_hf.training.recipes import parse_run
from ser_hf.training.streaming import STREAMED_SPLIT, training_stream

COLUMNS = ["--label_column_name", "emotion", "--speaker_column_name", "actor"]


@pytest.fixture(autouse=True)
def audio_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def _sharded_parquet(root, shards: int = 4):
    """The 24-clip dataset as `shards` parquet files of train, plus a test split of the last two speakers."""
    rows = emotion_rows()
    root.mkdir(parents=True)
    train = [i for i, actor in enumerate(rows["actor"]) if actor not in ("spk5", "spk6")]
    test = [i for i in range(len(rows["actor"])) if i not in train]
    for number, part in enumerate(np.array_split(train, shards)):
        to_dataset({k: [v[i] for i in part] for k, v in rows.items()}).to_parquet(
            str(root / f"train-{number:05d}-of-{shards:05d}.parquet"))
    to_dataset({k: [v[i] for i in test] for k, v in rows.items()}).to_parquet(str(root / "test-00000-of-00001.parquet"))
    return root


def test_embedded_bytes_decode_in_memory_like_files():
    wave = load_audio_bytes(audio_bytes(3, format="FLAC"), 16000)
    assert wave.dtype == np.float32 and wave.size == 6400
    with pytest.raises(AudioError, match=r"Row 4 \(16 bytes\) cannot be decoded .*WAV, FLAC, OGG or MP3"):
        load_audio_bytes(b"0123456789abcdef", 16000, "Row 4")


def test_the_stream_keeps_cells_undecoded_and_maps_labels(tmp_path):
    root = _sharded_parquet(tmp_path / "pq")
    run = parse_run(None, ["--dataset_name", str(root), *COLUMNS, "--emotions", "neutral,happy,sad"])
    stream = training_stream(run.data, ["neutral", "happy", "sad"], seed=0)
    assert isinstance(stream, datasets.IterableDataset) and stream.n_shards == 4
    rows = list(stream)
    assert len(rows) == 12 and {row["label"] for row in rows} == {0, 1, 2}  # angry left out
    assert all(isinstance(row["audio"]["bytes"], bytes) for row in rows)
    batch = AudioCollator(_extractor(tmp_path)).for_training()(rows[:3])
    assert batch["input_values"].shape[0] == 3 and batch["labels"].tolist() == [r["label"] for r in rows[:3]]
    # under accelerate each process reads its own shards: the shards of two processes are disjoint and complete
    rows[0]["audio"]["bytes"] = b"not audio" * 4
    with pytest.raises(AudioError, match=r"The embedded audio of split 'train' row with audio 'spk\d_\w+_0.wav' "
                                         r"\(36 bytes\) cannot be decoded"):
        AudioCollator(_extractor(tmp_path))(rows[:1])
    halves = [list(stream.shard(num_shards=2, index=i)) for i in range(2)]
    keys = [[r["audio"]["bytes"] for r in half] for half in halves]
    assert not set(keys[0]) & set(keys[1]) and len(keys[0]) + len(keys[1]) == 12


def _extractor(tmp_path):
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(tiny_backbone("wav2vec2", tmp_path / "w2v"))


def test_streaming_fine_tuning_trains_saves_and_scores_the_test_split(tmp_path, single_torch_thread):
    root = _sharded_parquet(tmp_path / "pq")
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    out = tmp_path / "model"
    with pytest.warns(UserWarning, match="class_weighted_loss needs the label counts"):
        assert main(["train", "--streaming", "true", "--dataset_name", str(root), *COLUMNS, "--emotions", "4class",
                     "--eval_split_name", "test", "--model_name_or_path", str(backbone), "--mode", "finetune",
                     "--max_steps", "3", "--per_device_train_batch_size", "4", "--disable_tqdm", "true",
                     "--output_dir", str(out)]) == 0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["num_samples"] == 8 and report["metadata"]["split_kind"] == STREAMED_SPLIT
    assert json.loads((out / "ser_hf_run.json").read_text())["split_kind"] == STREAMED_SPLIT
    state = json.loads(next((out / "checkpoints").rglob("trainer_state.json")).read_text())
    assert state["global_step"] == 3
    assert (out / "model.safetensors").exists()


def test_streaming_refuses_what_it_cannot_do(tmp_path):
    root = str(make_emotion_dataset(tmp_path / "d"))
    run = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS])
    from ser_hf.training.experiment import cross_validate, train

    with pytest.raises(SERError, match=r"--streaming streams a `datasets` dataset into fine-tuning.*mode='probe'"):
        train(run)
    with pytest.raises(SERError, match=r"--streaming is for 'ser-hf train --mode finetune'"):
        cross_validate(run)
    strings = parse_run(None, ["--streaming", "true", "--dataset_name", root, *COLUMNS, "--mode", "finetune",
                               "--model_name_or_path", "x"])
    with pytest.raises(SERError, match=r"holds strings, so its label set is unknown.*--emotions"):
        train(strings)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is needed for multi-process CPU training")
def test_two_processes_stream_their_own_shards(tmp_path):
    """Two CPU processes (as tests/test_accelerate.py starts them): each reads 2 of the 4 shards, both finish."""
    root = _sharded_parquet(tmp_path / "pq")
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
               "-m", "ser_hf", "train", "--streaming", "true", "--dataset_name", str(root), *COLUMNS,
               "--emotions", "4class", "--model_name_or_path", str(backbone), "--mode", "finetune", "--use_cpu", "true",
               "--max_steps", "2", "--per_device_train_batch_size", "2", "--disable_tqdm", "true",
               "--output_dir", str(tmp_path / "model")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("checkpoint:") == 2  # both ranks ran the command to its end
    for rank in (0, 1):
        assert f"process {rank} of 2 reads 2 of the stream's 4 shards" in result.stdout + result.stderr


def test_a_streamed_run_killed_while_scoring_its_test_split_keeps_its_own_run_record(tmp_path, monkeypatch,
                                                                                     single_torch_thread):
    """Its record is written right after its weights: a kill in the slow test scoring never leaves the new weights
    beside the earlier run's record (or card)."""
    from ser_hf.training import streaming
    from ser_hf.training.experiment import train

    root = _sharded_parquet(tmp_path / "pq")
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    out = tmp_path / "model"

    def run(emotions):
        return parse_run(None, ["--streaming", "true", "--dataset_name", str(root), *COLUMNS, "--emotions", emotions,
                                "--eval_split_name", "test", "--model_name_or_path", str(backbone), "--mode",
                                "finetune", "--max_steps", "2", "--per_device_train_batch_size", "4",
                                "--disable_tqdm", "true", "--class_weighted_loss", "false", "--output_dir", str(out)])

    train(run("4class"), progress=False)
    assert (out / "README.md").is_file()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(streaming, "evaluate_method", killed)
    with pytest.raises(KeyboardInterrupt):
        train(run("neutral,happy"), progress=False)
    record = json.loads((out / "ser_hf_run.json").read_text())
    assert "happy" in json.dumps(record["data"]) and "sad" not in json.dumps(record["data"])
    assert not (out / "README.md").exists() and not (out / "eval").exists()
