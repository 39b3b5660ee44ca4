"""Scale-out: `ser-hf train --mode finetune` in two data-parallel CPU processes under `accelerate launch`.

`accelerate launch --cpu --num_processes 2` starts a single process unless an MPI hostfile is given (its
simple launcher runs the script once), so two CPU processes are started the way `torchrun` does it:
`--multi_gpu --num_processes 2` (which needs no GPU) with `--use_cpu true` for the Trainer, giving
gloo-backed DistributedDataParallel on CPU.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.corpora import load_corpus
from ser_hf.splits import speaker_split
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is needed for multi-process CPU training")
def test_two_process_finetuning_saves_one_loadable_checkpoint(tmp_path):
    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.4)
    backbone = tiny_backbone("wav2vec2", tmp_path / "tiny-wav2vec2")
    out, batch = tmp_path / "model", 4
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
               "-m", "ser_hf", "train", "--corpus", "urdu", "--data_dir", str(corpus),
               "--model_name_or_path", str(backbone), "--mode", "finetune", "--use_cpu", "true",
               "--num_train_epochs", "1", "--per_device_train_batch_size", str(batch), "--disable_tqdm", "true",
               "--output_dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("checkpoint:") == 2  # both ranks ran the command to its end
    # One epoch over the training part, each step a batch per process: half the steps of one process.
    train = speaker_split(load_corpus("urdu", corpus), test_size=0.2, validation_size=0.15, seed=0)["train"]
    states = sorted((out / "checkpoints").glob("split-*/checkpoint-*/trainer_state.json"))
    assert json.loads(states[-1].read_text())["global_step"] == math.ceil(math.ceil(len(train) / batch) / 2)
    classify = pipeline("audio-classification", model=str(out))
    assert {r["label"] for r in classify(load_audio(next(corpus.rglob("*.wav"))))} == {"neutral", "happy", "sad", "angry"}


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is needed for multi-process CPU work")
def test_two_process_probe_cv_splits_the_feature_cache_and_matches_one_process(tmp_path):
    from ser_hf.training.experiment import cross_validate
    from ser_hf.training.recipes import parse_run

    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.4)
    backbone = tiny_backbone("whisper", tmp_path / "tiny-whisper")
    common = ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path", str(backbone),
              "--max_source_positions", "50", "--probe_projector_size", "8", "--num_folds", "2"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
               "-m", "ser_hf", "cv", *common, "--use_cpu", "true", "--embedding_cache_dir", str(tmp_path / "shared-cache"),
               "--output_dir", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list((tmp_path / "shared-cache").rglob("*.npy"))) == 48  # every clip cached once, by one of them
    two = json.loads((tmp_path / "two" / "cv" / "cv_summary.json").read_text())
    single = cross_validate(parse_run(None, [*common, "--embedding_cache_dir", str(tmp_path / "own-cache"),
                                             "--output_dir", str(tmp_path / "one")]), progress=False)
    assert two["pooled"]["unweighted_accuracy"] == pytest.approx(single.pooled.unweighted_accuracy, abs=1e-9)
