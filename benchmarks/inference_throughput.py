"""Batch inference throughput: ``ser_hf`` ``predict_files`` (``ser-hf predict``) against a plain loop of
``transformers.pipeline("audio-classification", model=DIR)`` one file at a time, on the same checkpoint.

Both run on the shared RAVDESS copy (1440 FLAC clips, 2.9-5.3 s, 1.48 h) and decode with the same loader
(``ser_hf.audio.load_audio``: soundfile + soxr; the pipeline would need ffmpeg for a path), so the
difference is what happens after decoding: ser_hf batches clips sorted by length (``batch_size`` 8) and
writes its JSONL output with an fsync per chunk; the pipeline scores one clip per call.

Two checkpoints built from the ``whisper-tiny.en`` preset (the real OpenAI encoder converted by
``ser_hf.models.presets``; the emotion head is random, seed 0, which costs the same as a trained one):

- ``pad_30s``: Whisper as HF ships it, every clip padded to 30 s (``max_source_positions=1500``).
- ``short_6s``: ser_hf's variable-length mode, ``ModelOptions(max_source_positions=300)``: the encoder
  keeps its first 300 positions and the extractor pads to 6 s, enough for RAVDESS's longest clip (5.3 s).
  (Predictions differ from ``pad_30s``: the encoder never saw cut positions in pre-training; see
  benchmarks/whisper_short_clips.py and README.)

Timing: per checkpoint, one subprocess loads both, warms each up on 8 clips, then runs them over the same
clips in alternating blocks of at most 64 clips (ser_hf's chunk size) and at least ``--repeats`` blocks, so
load from other jobs on a shared machine hits both alike; each block is one repeat: min and median seconds
per block, speed-ups from both (``benchmarks/common.py``; the run first waits for an idle machine and
records the load average before and after). Model loading is not timed. Peak RSS (``ru_maxrss``): a separate subprocess per method
over 72 clips (ser_hf's memory is bounded by its 64-clip chunk, the pipeline's by one clip). The 30 s-padded
runs take about 0.5 s per clip on 2 cores, so they use a fixed random subset (``--subset``, seed 0); the
``short_6s`` runs use the whole corpus unless ``--limit`` is given.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/inference_throughput.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/inference_throughput.py --subset 40 --limit 80   # quick check
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    add_timing_arguments,
    gpu_peak_mib,
    load_average,
    speedup,
    time_interleaved,
    timing_conditions,
    write_result,
)

LABELS = ["neutral", "happy", "sad", "angry"]
CHECKPOINTS = {"pad_30s": None, "short_6s": 300}  # max_source_positions (None: the preset's 1500)
WARMUP = 8


def ravdess_files() -> list[str]:
    files = sorted(str(p) for p in (SHARED_DATA / "ravdess").glob("Actor_*/*.flac"))
    if not files:
        raise SystemExit(f"no RAVDESS FLAC files under {SHARED_DATA / 'ravdess'}; set SER_HF_SHARED_DATA.")
    return files


def build_checkpoints(workdir: Path) -> dict[str, dict]:
    """The two whisper-tiny.en classifiers, saved as ordinary checkpoints both methods load."""
    import torch

    from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
    from ser_hf.models.presets import resolve_model_path

    encoder = resolve_model_path("whisper-tiny.en")
    built = {}
    for name, positions in CHECKPOINTS.items():
        torch.manual_seed(0)
        model, extractor = build_model(encoder, LABELS, ModelOptions(max_source_positions=positions))
        path = save_checkpoint(model, extractor, workdir / name)
        built[name] = {"path": str(path), "max_source_positions": model.config.max_source_positions,
                       "padded_seconds": extractor.chunk_length}
    return built


# ------------------------------------------------------------------------------------------------ workers

class SerHf:
    """``predict_files`` with a loaded recognizer, appending block after block to one JSONL output."""

    def __init__(self, checkpoint: str, batch_size: int, workdir: Path, device: str | None):
        from ser_hf.inference.recognizer import EmotionRecognizer

        self.recognizer = EmotionRecognizer.from_pretrained(checkpoint, device=device)
        self.batch_size, self.out = batch_size, workdir / "predictions.jsonl"

    def __call__(self, files: list[str], out: Path | None = None) -> int:
        from ser_hf.inference.jobs import predict_files

        summary = predict_files(self.recognizer, files, out or self.out, batch_size=self.batch_size, progress=False)
        return summary["predicted"]

    def warm_up(self, files: list[str]) -> None:
        self(files, self.out.with_name("warm-up.jsonl"))  # not the timed output: its files would be skipped


class PipelineLoop:
    """The plain loop: decode a file, call the pipeline on it, next file."""

    def __init__(self, checkpoint: str, batch_size: int, workdir: Path, device: str | None):
        from transformers import pipeline

        self.classify = pipeline("audio-classification", model=checkpoint, device=device)

    def __call__(self, files: list[str]) -> int:
        from ser_hf.audio import load_audio

        return len([self.classify(load_audio(path, 16000)) for path in files])

    warm_up = __call__


METHODS = {"ser_hf predict_files": SerHf, "pipeline loop": PipelineLoop}


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def blocks_of(files: list[str], block: int, repeats: int) -> list[list[str]]:
    """``files`` in consecutive blocks of equal size (to one clip), at most ``block`` clips, at least ``repeats`` blocks."""
    count = min(len(files), max(repeats, math.ceil(len(files) / block)))
    bounds = [round(i * len(files) / count) for i in range(count + 1)]
    return [files[start:end] for start, end in zip(bounds, bounds[1:])]


def _block_by_block(runner, blocks: list[list[str]]):
    """A job for ``time_interleaved``: each call runs ``runner`` on the next block and checks every clip was done."""
    pending = iter(blocks)

    def run() -> None:
        block = next(pending)
        done = runner(block)
        if done != len(block):
            raise RuntimeError(f"{type(runner).__name__} predicted {done} of {len(block)} clips")

    return run


def worker(args: argparse.Namespace) -> dict:
    """Time the methods over the same files block by block, alternating which goes first.

    Load from other jobs changes over minutes; alternating blocks spreads it evenly over both methods.
    With one method only, report its peak RSS (the process holds nothing else).
    """
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    files = json.loads(Path(args.files).read_text())
    methods = args.method or list(METHODS)
    blocks = blocks_of(files, args.block, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {name: METHODS[name](args.checkpoint, args.batch_size, Path(tmp), args.device) for name in methods}
        for runner in runners.values():
            runner.warm_up(files[:WARMUP])
        times, _ = time_interleaved({name: _block_by_block(runner, blocks) for name, runner in runners.items()},
                                    repeats=len(blocks), warmup=0)
    clips_per_block = len(files) / len(blocks)
    figures = {name: {"clips": len(files), "blocks": len(blocks), "seconds_per_block": t["seconds"],
                      "cpu_seconds_per_block": t["cpu_seconds"], "seconds": round(sum(t["seconds"]["runs"]), 2),
                      "clips_per_second": round(clips_per_block / t["seconds"]["median"], 3)}
               for name, t in times.items()}
    result = {"methods": figures, "torch_threads": torch.get_num_threads()}
    if len(methods) == 1:
        result["peak_rss_mib"] = _rss_mib()
        result["peak_gpu_mib"] = gpu_peak_mib()  # None on CPU
    print(json.dumps(result))
    return result


def run_worker(checkpoint: str, files: list[str], args: argparse.Namespace, workdir: Path,
               method: str | None = None) -> dict:
    listing = workdir / f"files-{len(files)}.json"
    listing.write_text(json.dumps(files))
    command = [sys.executable, __file__, "--worker", "--checkpoint", checkpoint, "--files", str(listing),
               "--batch-size", str(args.batch_size), "--block", str(args.block), "--threads", str(args.threads),
               "--repeats", str(args.repeats)]
    command += (["--method", method] if method else []) + (["--device", args.device] if args.device else [])
    load = load_average()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "load_average_before": load}


# ------------------------------------------------------------------------------------------------ main

def _seconds_of_audio(files: list[str]) -> float:
    import soundfile

    return round(sum(soundfile.info(path).duration for path in files), 1)


def _measure(name: str, checkpoint: dict, clips: list[str], files: list[str], args: argparse.Namespace,
             workdir: Path) -> dict:
    """Both methods on one checkpoint: timing in one worker, then peak memory in one worker per method."""
    entry = {**{k: v for k, v in checkpoint.items() if k != "path"},
             "clips": len(clips), "audio_seconds": _seconds_of_audio(clips),
             "clip_set": ("all of RAVDESS" if clips == files else f"first {len(clips)} of RAVDESS" if name == "short_6s"
                          else f"fixed random subset (seed 0) of the {len(files)} RAVDESS clips")}
    timing = run_worker(checkpoint["path"], clips, args, workdir)
    entry.update(timing["methods"])
    entry["speedup"] = speedup(entry["pipeline loop"]["seconds_per_block"],
                               entry["ser_hf predict_files"]["seconds_per_block"])
    entry["timing_load_average_before"] = timing["load_average_before"]
    entry["torch_threads"] = timing["torch_threads"]
    for method in METHODS:  # peak memory: one method per process
        rss = run_worker(checkpoint["path"], clips[: args.rss_clips], args, workdir, method)
        entry[method]["peak_rss_mib"] = rss["peak_rss_mib"]
    print(f"{name}: {json.dumps(entry)}", flush=True)
    return entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=200, help="clips for the 30 s-padded runs (default 200)")
    parser.add_argument("--limit", type=int, default=None, help="clips for the short_6s runs (default: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block", type=int, default=64, help="most clips per alternation block (ser_hf's chunk size)")
    add_timing_arguments(parser)
    parser.add_argument("--rss-clips", type=int, default=72, help="clips of each peak-memory run (one method)")
    parser.add_argument("--device", default=None, help="e.g. cuda (default: CPU, as ser-hf predict)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--name", default="inference_throughput", help="result file name (benchmarks/results/NAME.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--method", action="append", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    files = ravdess_files()
    subset = sorted(random.Random(0).sample(files, args.subset))
    clip_sets = {"pad_30s": subset, "short_6s": files[: args.limit]}
    results = {"batch_size": args.batch_size, "block": args.block, "cpu_count": os.cpu_count(),
               "cpus_usable": len(os.sched_getaffinity(0)), "device": args.device or "cpu", "checkpoints": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        checkpoints = build_checkpoints(workdir)
        with timing_conditions(args, "one block of clips per method, methods alternating, in a worker process; "
                                     "at least --repeats blocks per checkpoint") as conditions:
            for name, clips in clip_sets.items():
                results["checkpoints"][name] = _measure(name, checkpoints[name], clips, files, args, workdir)
    results["timing"] = conditions
    pad, short = results["checkpoints"]["pad_30s"], results["checkpoints"]["short_6s"]
    # Different clip sets (a random subset vs all clips of the same corpus): compared per clip.
    results["speedup_ser_hf_short_6s_vs_pipeline_pad_30s"] = round(
        short["ser_hf predict_files"]["clips_per_second"] / pad["pipeline loop"]["clips_per_second"], 2)
    results["weights"] = "OpenAI whisper tiny.en encoder (preset whisper-tiny.en), random 4-emotion head (seed 0)"
    results["note"] = ("2-core development machine shared with other jobs: see the load averages; both methods "
                       "of a checkpoint ran in one process in alternating blocks, so a load change hits both.")
    write_result(args.name, results)


if __name__ == "__main__":
    main()
