"""kill -9 in the middle of `ser-hf predict` and `ser-hf train`, then resume: nothing lost, nothing twice, same model.

- predict: a subprocess over 60 files (plus a corrupt one) with a chunk of 2 files is killed once its output
  holds a random number of records; an in-process rerun completes it. Every input is in the output exactly
  once, in input order, and scores as a fresh run scores it. The multi-process case is in
  test_predict_sharded.py.
- train: fine-tuning in a subprocess is killed once a random number of checkpoints exist; the rerun with
  ``--resume_from_checkpoint last`` (after a checkpoint left half-written, as a kill while saving leaves it)
  ends with bit-identical weights, training losses and test metrics to an uninterrupted run, with random
  crops, augmentation and two DataLoader workers on.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ser_hf.cli import main
from ser_hf.inference.jobs import expand_inputs, predict_files, read_records
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.corpora import write_tone
from ser_hf.testing.models import tiny_backbone
from ser_hf.testing.synthetic import make_synthetic_corpus

FOUR = ["neutral", "happy", "sad", "angry"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as handle:
        return subprocess.Popen(command, env=ENV, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_when(processes: dict[str, subprocess.Popen], progress, thresholds: dict[str, int],
               timeout: float = 240) -> dict[str, int]:
    """kill -9 each process once ``progress(name)`` reaches its threshold; returns the progress at each kill."""
    reached, deadline = {}, time.monotonic() + timeout
    while len(reached) < len(processes) and time.monotonic() < deadline:
        for name, process in processes.items():
            if name not in reached and (progress(name) >= thresholds[name] or process.poll() is not None):
                os.killpg(process.pid, signal.SIGKILL)  # a no-op on a process that already ended
                process.wait()
                reached[name] = progress(name)
        time.sleep(0.01)
    return reached


def _assert_killed(processes: dict[str, subprocess.Popen]) -> None:
    for name, process in processes.items():
        assert process.returncode == -signal.SIGKILL, f"{name}: exited {process.returncode} before the kill"


# ------------------------------------------------------------------------------------------------ predict

@pytest.fixture(scope="module")
def predict_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict-crash")
    # Whisper pads every clip to 30 s: each file takes a visible moment, so the kill lands mid-job.
    model, extractor = build_model(tiny_backbone("whisper", tmp / "backbone"), FOUR)
    audio = tmp / "audio"
    for i in range(60):
        write_tone(audio / f"d{i % 4}" / f"clip{i:02d}.wav", duration=0.3 + (i % 3) * 0.2, frequency=150 + 9 * i, seed=i)
    (audio / "d2" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    return {"model": save_checkpoint(model, extractor, tmp / "model"), "audio": audio, "tmp": tmp}


def _records_written(out: Path) -> int:
    try:
        return max(out.read_bytes().count(b"\n") - (out.suffix == ".csv"), 0)
    except FileNotFoundError:
        return 0


def test_predict_killed_at_random_then_rerun_records_every_file_once(predict_setup, tmp_path):
    model, audio = predict_setup["model"], predict_setup["audio"]
    outs = {fmt: tmp_path / f"predictions.{fmt}" for fmt in ("jsonl", "csv")}
    thresholds = {fmt: random.randint(4, 50) for fmt in outs}
    processes = {fmt: _start([sys.executable, "-m", "ser_hf", "predict", "--model", str(model), str(audio),
                              "--out", str(out), "--chunk-size", "2", "--no-progress"], tmp_path / f"{fmt}.log")
                 for fmt, out in outs.items()}  # both formats at once: the start-up dominates
    reached = _kill_when(processes, lambda fmt: _records_written(outs[fmt]), thresholds)
    _assert_killed(processes)
    paths = expand_inputs([audio])
    for fmt, out in outs.items():
        assert thresholds[fmt] <= reached[fmt] < len(paths), (fmt, thresholds[fmt], reached[fmt])
        summary = predict_files(model, [audio], out, progress=False, chunk_size=2)
        assert summary["skipped"] + summary["predicted"] + summary["errors"] == len(paths)
        assert summary["skipped"] >= reached[fmt] - 1  # a torn last line is predicted again
        records = read_records(out)
        assert [r["path"] for r in records] == paths, fmt  # each input exactly once, in input order
        assert [r["path"] for r in records if r.get("error")] == [str(audio / "d2" / "broken.wav")]
        assert not list(tmp_path.glob(".*.tmp"))
    fresh = tmp_path / "fresh.jsonl"  # the killed run's records score like a fresh run's
    predict_files(model, paths[:thresholds["jsonl"]:4], fresh, progress=False)
    killed = {r["path"]: r for r in read_records(outs["jsonl"])}
    for record in read_records(fresh):
        assert killed[record["path"]].get("scores") == pytest.approx(record.get("scores"), abs=1e-5)


# ------------------------------------------------------------------------------------------------ train

@pytest.fixture(scope="module")
def train_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train-crash")
    corpus = make_synthetic_corpus(tmp / "synthetic")
    argv = ["train", "--corpus", "synthetic", "--data_dir", str(corpus),
            "--model_name_or_path", str(tiny_backbone("wav2vec2", tmp / "backbone")), "--mode", "finetune",
            "--validation_size", "0", "--max_steps", "24", "--save_steps", "3", "--logging_steps", "3",
            "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--seed", "3", "--disable_tqdm", "true",
            "--max_duration", "0.6", "--speed_perturb", "0.9", "1.0", "1.1", "--noise_snr_db", "10", "30",
            "--gain_db", "-6", "6", "--augment_probability", "0.7", "--dataloader_num_workers", "2"]
    return {"tmp": tmp, "argv": argv}


def _checkpoints(out: Path) -> list[Path]:
    found = [p.parent for p in out.glob("checkpoints/split-*/checkpoint-*/trainer_state.json")]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _final_state(out: Path) -> tuple[dict, list, dict]:
    report = json.loads((out / "eval" / "report.json").read_text())
    metrics = {key: value for key, value in report.items() if isinstance(value, float)}
    history = json.loads((_checkpoints(out)[-1] / "trainer_state.json").read_text())["log_history"]
    losses = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    return metrics, losses, load_file(str(out / "model.safetensors"))


def test_training_killed_after_a_checkpoint_resumes_to_the_same_model(train_setup, tmp_path):
    argv = train_setup["argv"]
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    process = _start([sys.executable, "-m", "ser_hf", *argv, "--output_dir", str(killed)], tmp_path / "train.log")
    threshold = random.randint(1, 5)  # of the 8 checkpoints a full run writes (an epoch is 18 steps)
    # The uninterrupted run trains here while the subprocess starts and trains on the other core.
    killer = threading.Thread(target=_kill_when, args=({"train": process}, lambda _: len(_checkpoints(killed)),
                                                       {"train": threshold}))
    killer.start()
    try:
        assert main([*argv, "--output_dir", str(uninterrupted)]) == 0
    finally:
        killer.join()
    _assert_killed({"train": process})
    assert not (killed / "model.safetensors").exists(), (tmp_path / "train.log").read_text()[-3000:]
    newest = _checkpoints(killed)[-1]
    # As a kill while saving leaves it: the next checkpoint's folder without trainer_state.json.
    half = newest.with_name(f"checkpoint-{int(newest.name.split('-')[1]) + 3}")
    if not half.exists():
        shutil.copytree(newest, half, ignore=shutil.ignore_patterns("trainer_state.json", "rng_state.pth"))
    assert main([*argv, "--output_dir", str(killed), "--resume_from_checkpoint", "last"]) == 0

    metrics, losses, weights = _final_state(killed)
    expected_metrics, expected_losses, expected_weights = _final_state(uninterrupted)
    assert losses == expected_losses and len(losses) == 8, f"killed after checkpoint {newest.name}"
    assert metrics == expected_metrics
    assert weights.keys() == expected_weights.keys()
    assert all(weights[k].equal(expected_weights[k]) for k in weights)  # bit-identical on CPU


# --------------------------------------------------------------------------------------------------------- cv

def test_cv_killed_after_a_fold_resumes_to_the_same_summary(tmp_path, capsys):
    from ser_hf.evaluation.report import FOLD_STATE
    from ser_hf.testing.corpora import make_corpus_tree

    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.4)
    argv = ["cv", "--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path",
            str(tiny_backbone("whisper", tmp_path / "tiny")), "--max_source_positions", "50", "--num_folds", "4",
            "--probe_projector_size", "8", "--probe_speaker_adaptation", "true", "--probe_speed_copies", "0.9",
            "--embedding_cache_dir", str(tmp_path / "cache")]
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    process = _start([sys.executable, "-m", "ser_hf", *argv, "--output_dir", str(killed)], tmp_path / "cv.log")
    threshold = random.randint(1, 3)  # finished folds (of 4) when the kill lands

    def finished(_) -> int:
        return len(list((killed / "cv").glob(f"fold*/{FOLD_STATE}")))

    killer = threading.Thread(target=_kill_when, args=({"cv": process}, finished, {"cv": threshold}))
    killer.start()
    try:
        assert main([*argv, "--output_dir", str(uninterrupted)]) == 0
    finally:
        killer.join()
    _assert_killed({"cv": process})
    kept = finished(None)
    assert 1 <= kept < 4 and not (killed / "cv" / "cv_summary.json").exists(), (tmp_path / "cv.log").read_text()[-3000:]
    capsys.readouterr()
    assert main([*argv, "--output_dir", str(killed)]) == 0
    resumed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("resumed: "))
    assert len(re.findall(r"fold\d", resumed)) == kept  # the finished folds were kept, not fitted again

    def concluded(out: Path) -> tuple:
        summary = json.loads((out / "cv" / "cv_summary.json").read_text())
        summary.pop("settings"), summary.pop("fingerprint")  # both name the output folder
        return summary, json.loads((out / "cv" / "speaker_adaptive.json").read_text())

    assert concluded(killed) == concluded(uninterrupted), f"killed after {kept} folds"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) ": state, ppid, ...
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals and /proc are Linux's")
def test_a_killed_baseline_leaves_neither_workers_nor_its_lock_behind(tmp_path):
    """kill -9 of `ser-hf baseline --workers 2` while its forked workers extract features: they end with it, and the
    lock on --out goes with them (a worker kept it held, and waited on its queue for good, so the rerun was refused)."""
    from ser_hf.locks import folder_lock
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("urdu", tmp_path / "urdu", duration=1.5)
    process = _start([sys.executable, "-m", "ser_hf", "baseline", "--corpus", "urdu", "--data-dir", str(root),
                      "--classifier", "logreg", "--folds", "2", "--inner-folds", "2", "--no-cache", "--workers", "2",
                      "--out", str(tmp_path / "out")], tmp_path / "log")
    try:
        deadline, workers = time.monotonic() + 120, []
        while len(workers) < 2 and process.poll() is None and time.monotonic() < deadline:
            workers = _children(process.pid)
            time.sleep(0.01)
        assert len(workers) == 2, (tmp_path / "log").read_text()
        os.kill(process.pid, signal.SIGKILL)  # the command alone, as the OOM killer would
        process.wait()
        with folder_lock(tmp_path / "out", "--out is still locked"):  # free at once: the workers never held it
            pass
        deadline = time.monotonic() + 30
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
