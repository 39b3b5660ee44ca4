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
clips in alternating blocks of 64 (ser_hf's chunk size), so load from other jobs on a shared machine
hits both alike; model loading is not timed. Peak RSS (``ru_maxrss``): a separate subprocess per method
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
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, write_result  # noqa: E402

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


def worker(args: argparse.Namespace) -> dict:
    """Time the methods over the same files in blocks of ``--block`` clips, alternating which goes first.

    Load from other jobs changes over minutes; alternating blocks spreads it evenly over both methods.
    With one method only, report its peak RSS (the process holds nothing else).
    """
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    files = json.loads(Path(args.files).read_text())
    methods = args.method or list(METHODS)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {name: METHODS[name](args.checkpoint, args.batch_size, Path(tmp), args.device) for name in methods}
        for runner in runners.values():
            runner.warm_up(files[:WARMUP])
        totals = {name: {"seconds": 0.0, "cpu_seconds": 0.0, "clips": 0} for name in methods}
        for number, start in enumerate(range(0, len(files), args.block)):
            block = files[start: start + args.block]
            for name in (methods if number % 2 == 0 else methods[::-1]):
                wall, cpu = time.perf_counter(), time.process_time()
                done = runners[name](block)
                totals[name]["seconds"] += time.perf_counter() - wall
                totals[name]["cpu_seconds"] += time.process_time() - cpu
                totals[name]["clips"] += len(block)
                assert done == len(block), (name, done)
    figures = {name: {"clips": t["clips"], "seconds": round(t["seconds"], 2),
                      "clips_per_second": round(t["clips"] / t["seconds"], 3), "cpu_seconds": round(t["cpu_seconds"], 2)}
               for name, t in totals.items()}
    result = {"methods": figures, "torch_threads": torch.get_num_threads()}
    if len(methods) == 1:
        result["peak_rss_mib"] = _rss_mib()
    print(json.dumps(result))
    return result


def run_worker(checkpoint: str, files: list[str], args: argparse.Namespace, workdir: Path,
               method: str | None = None) -> dict:
    listing = workdir / f"files-{len(files)}.json"
    listing.write_text(json.dumps(files))
    command = [sys.executable, __file__, "--worker", "--checkpoint", checkpoint, "--files", str(listing),
               "--batch-size", str(args.batch_size), "--block", str(args.block), "--threads", str(args.threads)]
    command += (["--method", method] if method else []) + (["--device", args.device] if args.device else [])
    load = round(os.getloadavg()[0], 2)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "load_average_1min_before": load}


# ------------------------------------------------------------------------------------------------ main

def _seconds_of_audio(files: list[str]) -> float:
    import soundfile

    return round(sum(soundfile.info(path).duration for path in files), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=200, help="clips for the 30 s-padded runs (default 200)")
    parser.add_argument("--limit", type=int, default=None, help="clips for the short_6s runs (default: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block", type=int, default=64, help="clips per alternation block (ser_hf's chunk size)")
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
               "cpus_usable": len(os.sched_getaffinity(0)), "device": args.device or "cpu",
               "load_average_1min_start": round(os.getloadavg()[0], 2), "checkpoints": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        checkpoints = build_checkpoints(workdir)
        for name, clips in clip_sets.items():
            entry = {**{k: v for k, v in checkpoints[name].items() if k != "path"},
                     "clips": len(clips), "audio_seconds": _seconds_of_audio(clips),
                     "clip_set": ("all of RAVDESS" if clips == files else f"first {len(clips)} of RAVDESS" if name == "short_6s"
                                  else f"fixed random subset (seed 0) of the {len(files)} RAVDESS clips")}
            timing = run_worker(checkpoints[name]["path"], clips, args, workdir)
            entry.update(timing["methods"])
            entry["speedup"] = round(entry["ser_hf predict_files"]["clips_per_second"]
                                     / entry["pipeline loop"]["clips_per_second"], 2)
            entry["timing_load_average_1min_before"] = timing["load_average_1min_before"]
            entry["torch_threads"] = timing["torch_threads"]
            for method in METHODS:  # peak memory: one method per process
                rss = run_worker(checkpoints[name]["path"], clips[: args.rss_clips], args, workdir, method)
                entry[method]["peak_rss_mib"] = rss["peak_rss_mib"]
            print(f"{name}: {json.dumps(entry)}", flush=True)
            results["checkpoints"][name] = entry
    pad, short = results["checkpoints"]["pad_30s"], results["checkpoints"]["short_6s"]
    # Different clip sets (a random subset vs all clips of the same corpus): compared per clip.
    results["speedup_ser_hf_short_6s_vs_pipeline_pad_30s"] = round(
        short["ser_hf predict_files"]["clips_per_second"] / pad["pipeline loop"]["clips_per_second"], 2)
    results["weights"] = "OpenAI whisper tiny.en encoder (preset whisper-tiny.en), random 4-emotion head (seed 0)"
    results["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    results["note"] = ("2-core development machine shared with other jobs: see the load averages; both methods "
                       "of a checkpoint ran in one process in alternating blocks, so a load change hits both.")
    write_result(args.name, results)


if __name__ == "__main__":
    main()
