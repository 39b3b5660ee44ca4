"""`ser-hf predict` data-parallel: shards, the merge, and resuming after kill -9 with any number of processes.

Two CPU processes are started as in test_accelerate.py: `accelerate launch --multi_gpu --num_processes 2` with
no visible GPU (`--cpu --num_processes 2` would start one process). There the tiny Whisper model pads every
clip to 30 s, so each file takes a visible moment and the kill lands in the middle of the job; in-process
tests use the faster tiny wav2vec2.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from ser_hf.inference.jobs import _block, expand_inputs, predict_files, read_records, shard_files
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_backbone

FOUR = ["neutral", "happy", "sad", "angry"]
N_FILES = 41  # 40 tones and a corrupt file

pytestmark = pytest.mark.usefixtures("single_torch_thread")

needs_gloo = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is needed for two CPU processes")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharded")
    models = {}
    for kind in ("whisper", "wav2vec2"):
        model, extractor = build_model(tiny_backbone(kind, tmp / f"{kind}-backbone"), FOUR)
        models[kind] = save_checkpoint(model, extractor, tmp / kind)
    audio = tmp / "audio"
    paths = [write_tone(audio / f"d{i % 3}" / f"clip{i:02d}.wav", duration=0.3 + (i % 4) * 0.1,
                        frequency=150 + 7 * i, seed=i) for i in range(N_FILES - 1)]
    (audio / "d1" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    return {"models": models, "audio": audio, "paths": expand_inputs([audio]), "good": [str(p) for p in paths]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(setup, out, *extra) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
            "-m", "ser_hf", "predict", "--model", str(setup["models"]["whisper"]), str(setup["audio"]), "--out", str(out),
            "--no-progress", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


def _lines(paths) -> int:
    count = 0
    for path in paths:
        try:
            count += path.read_bytes().count(b"\n")
        except FileNotFoundError:
            pass
    return count


def test_blocks_cover_every_file_once_in_order():
    for n in range(12):
        items = [str(i) for i in range(n)]
        for world in range(1, 5):
            blocks = [_block(items, rank, world) for rank in range(world)]
            assert sum(blocks, []) == items
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def _fake(path: str) -> dict:
    return {"path": path, "label": "from-shard", "score": 1.0, "scores": dict.fromkeys(FOUR, 0.25)}


@pytest.mark.parametrize("format", ["jsonl", "csv"])
def test_leftover_shards_of_another_world_size_are_merged_once(setup, tmp_path, format):
    """A killed 3-process run left two shards (one torn mid-line) and a partial OUT; one process finishes the job."""
    paths, model = setup["paths"], setup["models"]["wav2vec2"]
    out = tmp_path / f"p.{format}"
    predict_files(model, paths[:10], out, progress=False)
    (tmp_path / f"p.{format}.shard-0-of-3").write_text(
        "".join(json.dumps(_fake(p)) + "\n" for p in paths[20:30]) + json.dumps(_fake(paths[30]))[:25])
    (tmp_path / f"p.{format}.shard-2-of-3").write_text("".join(json.dumps(_fake(p)) + "\n" for p in paths[35:38]))
    summary = predict_files(model, [setup["audio"]], out, progress=False, chunk_size=7)
    assert summary["skipped"] == 23 and summary["predicted"] + summary["errors"] == N_FILES - 23
    assert summary["error_records"] == 1
    assert not shard_files(out) and not list(tmp_path.glob(".*.tmp"))
    records = read_records(out)
    assert [r["path"] for r in records] == paths  # input order, each file once
    assert [r["path"] for r in records if r.get("label") == "from-shard"] == paths[20:30] + paths[35:38]
    again = predict_files(model, [setup["audio"]], out, progress=False)
    assert again["skipped"] == N_FILES and again["predicted"] == 0 and read_records(out) == records


@pytest.mark.slow
@needs_gloo
def test_two_processes_killed_then_resumed_give_each_file_once(setup, tmp_path):
    out = tmp_path / "predictions.jsonl"
    shards = [tmp_path / f"predictions.jsonl.shard-{rank}-of-2" for rank in range(2)]
    threshold = random.randint(3, 25)
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(_launch(setup, out, "--chunk-size", "1"), env=ENV, stdout=log, stderr=log,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while process.poll() is None and _lines(shards) < threshold and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers, at once
    process.wait()
    done = _lines(shards)
    assert process.returncode == -signal.SIGKILL and threshold <= done < N_FILES, (threshold, done)
    assert not out.exists()  # only the merge writes OUT

    result = subprocess.run(_launch(setup, out, "--fail-on-error"), env=ENV, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]  # the broken file, --fail-on-error
    summaries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # printed by the main process only
    assert summaries[0]["skipped"] >= done - 2 and summaries[0]["processes"] == 2  # up to a torn line per shard
    assert summaries[0]["error_records"] == 1 and f"1 of {N_FILES} input(s) could not be decoded" in result.stderr
    assert not shard_files(out)
    records = read_records(out)
    assert [r["path"] for r in records] == setup["paths"]  # input order, each file once
    assert "error" in records[setup["paths"].index(str(setup["audio"] / "d1" / "broken.wav"))]
    # The shards scored like one process does (a few files, in-process).
    single = tmp_path / "single.jsonl"
    predict_files(setup["models"]["whisper"], setup["good"][::13], single, progress=False)
    by_path = {r["path"]: r for r in records}
    for record in read_records(single):
        assert by_path[record["path"]]["scores"] == pytest.approx(record["scores"], abs=1e-5)
