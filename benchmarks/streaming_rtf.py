"""Streaming real-time factor of ``EmotionRecognizer.stream`` on CPU: processing time / audio duration.

A live stream is simulated: about 60 s of speech (RAVDESS clips of several actors, back to back, 16 kHz)
is pushed in chunks of 0.1 s; the recognizer scores a 3 s window every 1 s (the defaults of
``ser-hf demo``/``stream``) as soon as its last sample arrives, with the default voice-activity gate. The
real-time factor is the time spent inside ``push``/``flush`` divided by the audio's duration (below 1:
keeps up; the target is 0.2 or less). Latency: the time of each push that completed a window.

Models: the ``whisper-tiny.en`` and ``whisper-base`` presets (real OpenAI encoders converted by
``ser_hf.models.presets``, or random weights of the same size where a preset cannot be prepared: the
result records which; the emotion head is random, seed 0, which costs the same as a trained one), each
as two checkpoints:

- ``pad_30s``: Whisper as HF ships it: every 3 s window is padded to 30 s (``max_source_positions=1500``).
- ``window_3s``: ser_hf's variable-length mode, ``ModelOptions(max_source_positions=150)``: the encoder
  keeps the first 150 positions and the extractor pads to exactly the 3 s window.

Each (model, checkpoint, torch threads) runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its
own: 2 threads (the 2-core machine) and 1 thread (what is left when another job holds a core: with 2
threads and a busy second core, torch's waiting threads slow every window down several times). Each
streams the audio ``--repeats`` times after a warm-up and reports min and median over the runs (all are
listed; window latencies pooled over all runs). The run first waits for an idle machine and records the load
average before and after (``benchmarks/common.py``).

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/streaming_rtf.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/streaming_rtf.py --seconds 20 --models tiny.en   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    add_timing_arguments,
    load_average,
    summarize,
    timing_conditions,
    write_result,
)

LABELS = ["neutral", "happy", "sad", "angry"]
RATE = 16000
CHECKPOINTS = {"pad_30s": None, "window_3s": 150}  # max_source_positions (None: the preset's 1500)


def speech(seconds: float) -> np.ndarray:
    """About ``seconds`` of RAVDESS speech: clips of actors 1-24 in turn, back to back."""
    from ser_hf.audio import load_audio

    root = SHARED_DATA / "ravdess"
    actors = [sorted(p.glob("*.flac")) for p in sorted(root.glob("Actor_*"))]
    if not actors:
        raise SystemExit(f"no RAVDESS clips under {root}; set SER_HF_SHARED_DATA.")
    waves, total, index = [], 0, 0
    while total < seconds * RATE:
        clips = actors[index % len(actors)]
        waves.append(load_audio(clips[(index // len(actors)) % len(clips)], RATE))
        total += waves[-1].size
        index += 1
    return np.concatenate(waves)[: int(seconds * RATE)]


# Encoder dimensions of the real models, for random weights where a preset cannot be prepared (timing
# depends on the dimensions only).
DIMENSIONS = {
    "tiny.en": {"d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536},
    "base": {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048},
}


def backbone(model: str, workdir: Path) -> tuple[str, str]:
    """The preset's converted encoder, else a random one of the same size; and a description of the weights."""
    from ser_hf.errors import SERError
    from ser_hf.models.presets import resolve_model_path

    try:
        return resolve_model_path(f"whisper-{model}"), f"OpenAI whisper {model} (preset whisper-{model})"
    except SERError as err:
        print(f"[{model}] preset unavailable ({err}); random weights of the same size", file=sys.stderr)
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    torch.manual_seed(0)
    out = workdir / f"{model}-random"
    WhisperForAudioClassification(WhisperConfig(**DIMENSIONS[model], decoder_layers=1)).save_pretrained(out)
    WhisperFeatureExtractor().save_pretrained(out)
    return str(out), f"random initialisation with whisper {model}'s encoder dimensions"


def build_checkpoint(encoder: str, positions: int | None, out: Path) -> Path:
    import torch

    from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint

    torch.manual_seed(0)
    classifier, extractor = build_model(encoder, LABELS, ModelOptions(max_source_positions=positions))
    return save_checkpoint(classifier, extractor, out)


def _stream_once(recognizer, audio: np.ndarray, args: argparse.Namespace) -> dict:
    """Push ``audio`` chunk by chunk through a new stream; time spent in push/flush and per emitting push."""
    chunk = int(round(args.chunk * RATE))
    stream = recognizer.stream(window=args.window, hop=args.hop)
    busy, latencies, windows = 0.0, [], 0
    cpu = time.process_time()
    for start in range(0, audio.size, chunk):
        began = time.perf_counter()
        emitted = stream.push(audio[start: start + chunk])
        spent = time.perf_counter() - began
        busy += spent
        if emitted:
            latencies.append(spent)
            windows += len(emitted)
    began = time.perf_counter()
    windows += len(stream.flush())
    busy += time.perf_counter() - began
    return {"busy": busy, "cpu": time.process_time() - cpu, "latencies": latencies, "windows": windows}


def worker(args: argparse.Namespace) -> None:
    """Stream the speech through one checkpoint ``--repeats`` times; print min/median figures as JSON."""
    import torch

    from ser_hf.inference.recognizer import EmotionRecognizer
    from ser_hf.inference.streaming import _window_spans, window_samples

    torch.set_num_threads(args.threads[0])
    recognizer = EmotionRecognizer.from_pretrained(args.checkpoint)
    audio = speech(args.seconds)
    _stream_once(recognizer, audio[: 5 * RATE], args)  # warm-up: one-off allocation and kernel selection
    runs = [_stream_once(recognizer, audio, args) for _ in range(args.repeats)]
    duration = audio.size / RATE
    rate = recognizer.sampling_rate
    spans = len(_window_spans(audio.size, window_samples(args.window, rate), window_samples(args.hop, rate)))
    latencies = [latency for run in runs for latency in run["latencies"]]
    print(json.dumps({
        "audio_seconds": round(duration, 2), "processing_seconds": summarize([run["busy"] for run in runs], 3),
        "real_time_factor": summarize([run["busy"] / duration for run in runs]),
        "cpu_real_time_factor": summarize([run["cpu"] / duration for run in runs]),
        "windows_scored": runs[0]["windows"], "windows_gated_as_silence": spans - runs[0]["windows"],
        "window_latency_s": {"median": round(statistics.median(latencies), 4),
                             "p95": round(float(np.percentile(latencies, 95)), 4), "max": round(max(latencies), 4)},
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
    }))


def _measure(checkpoint: Path, threads: int, settings: dict, positions: int | None) -> dict:
    """One setting's worker process: its figures and the load average when it started."""
    command = [sys.executable, __file__, "--worker", "--checkpoint", str(checkpoint), f"--threads={threads}",
               *[f"--{k}={v}" for k, v in settings.items()]]
    load = load_average()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"max_source_positions": positions or 1500, **figures, "load_average_before": load}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"], choices=["tiny.en", "base"])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed per checkpoint")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--hop", type=float, default=1.0)
    parser.add_argument("--chunk", type=float, default=0.1, help="seconds of audio per push")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="torch thread counts to measure (default 2, the 2-core machine, and 1)")
    add_timing_arguments(parser)
    parser.add_argument("--name", default="streaming_rtf", help="result file name (benchmarks/results/NAME.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    settings = {k: getattr(args, k) for k in ("seconds", "window", "hop", "chunk", "repeats")}
    results = {"settings": settings, "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
               "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {}
        for model in args.models:
            encoder, weights = backbone(model, Path(tmp))
            results["models"][model] = {"weights": weights}
            for name, positions in CHECKPOINTS.items():
                checkpoints[model, name] = build_checkpoint(encoder, positions, Path(tmp) / f"{model}-{name}")
        with timing_conditions(args, "one stream of the audio per setting, after a 5 s warm-up stream, in one "
                                     "process per setting (settings not interleaved)") as conditions:
            for (model, name), checkpoint in checkpoints.items():
                for threads in args.threads:
                    key = f"{name}, {threads} thread{'s' if threads > 1 else ''}"
                    results["models"][model][key] = _measure(checkpoint, threads, settings, CHECKPOINTS[name])
                    print(f"whisper-{model} {key}: {json.dumps(results['models'][model][key])}", flush=True)
    results["timing"] = conditions
    results["head"] = "random 4-emotion head (seed 0): costs what a trained one costs"
    results["note"] = ("2-core development machine, possibly shared with other jobs: see the load averages. "
                       "cpu_real_time_factor (CPU time of the process / audio) is less disturbed by other jobs.")
    write_result(args.name, results)


if __name__ == "__main__":
    main()
