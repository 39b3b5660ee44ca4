"""Peak memory and wall time of ``EmotionRecognizer.predict_long`` on a long file: read block by block vs held whole.

``predict_long`` reads a file twice, block by block (its length and loudest sample, then its windows:
:mod:`ser_hf.inference.recording_windows`), and prepares and scores the voiced windows a few batches at a time
(:mod:`ser_hf.inference.window_chunks`), so neither the recording nor its windows are held whole. Measured against the
two ways it worked before, each still reachable here: the file decoded whole first (``predict_long(load_raw(path))``,
as an array input still is), its windows scored in chunks; and the file decoded whole with every window prepared
before the first is scored (one chunk holding every window). The recording is synthetic (``--minutes`` of tones with a
little noise, silent gaps between them, written to a temporary 16-bit WAV file at ``--rate`` Hz, ``--channels``
channels; at another rate than 16 kHz every block is resampled, which the second read repeats); 3 s windows every 1 s.

Model: a tiny random Whisper classifier (``ser_hf.testing.models``: 2 layers of width 32) in ser_hf's variable-length
mode (``max_source_positions=150``: the extractor pads each window to exactly 3 s, not 30 s), batch 8, so the model
itself adds little and the figures are those of the audio predict_long holds. Setups: no cleaning (windows are views of
the recording: nothing to hold); peak normalisation as a checkpoint's ``ser_hf_run.json`` may record it (each window
becomes a new array); and test-time copies (speed 0.9 and 1.1: two altered copies of every window besides).

Memory, from one process per setup and method (the decoding inside the call in every method): the growth of the resident set during the call (its peak, ``VmHWM``,
reset through ``/proc/self/clear_refs`` just before the call, less ``VmRSS`` then, after a warm-up call on 10 s of a
tone: what the operating system sees, torch's tensors included; Linux only), and the peak of Python allocations during
a second, traced call (``tracemalloc``: numpy arrays and Python objects; not torch's tensors, which hold one batch at a
time either way, nor soxr's resampled arrays, so not the test-time speed copies). Wall time comes from separate,
untraced calls in this process, after a warm-up round, in interleaved rounds on a machine waited on to go quiet, with
1 torch thread by default: on a shared 2-core machine a second thread mostly waits (``benchmarks/common.py``). The
methods' results are checked identical.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_recording_memory.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_recording_memory.py --minutes 2 --repeats 1   # quick check
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf
from common import add_timing_arguments, scratch_dir, speedup, time_interleaved, timing_conditions, write_result

from ser_hf.audio import AudioPreprocessor
from ser_hf.inference import window_chunks
from ser_hf.inference.recognizer import EmotionRecognizer

RATE = 16000
LABELS = ["neutral", "happy", "sad", "angry"]
#: One chunk holding every window: predict_long as it was before chunking.
EVERY_WINDOW = 10**9
#: Each method: whether the file is decoded whole first, and the chunk size. The first is predict_long's own.
METHODS = {"block_by_block": (False, window_chunks.CHUNK_BATCHES),
           "decoded_whole_chunked": (True, window_chunks.CHUNK_BATCHES),
           "decoded_whole_all_at_once": (True, EVERY_WINDOW)}
NEW = "block_by_block"
SETUPS = {
    "no cleaning": {},
    "peak-normalised windows": {"preprocessor": AudioPreprocessor(sampling_rate=RATE, normalize="peak")},
    "test-time copies (speed 0.9, 1.1)": {"test_time_copies": {"speed": [0.9, 1.1]}},
}


def synthetic_recording(minutes: float, path: Path, rate: int = RATE, channels: int = 1, seed: int = 0) -> Path:
    """``minutes`` of 2-6 s tones (random pitch, a slow tremolo) and 0.5-6 s silent gaps, with faint noise."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * rate)
    wave = (0.001 * rng.standard_normal(total)).astype(np.float32)
    position = 0
    while position < total:
        length = min(int(rng.uniform(2, 6) * rate), total - position)
        t = np.arange(length) / rate
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(120, 400) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wave[position: position + length] += tone.astype(np.float32)
        position += length + int(rng.uniform(0.5, 6) * rate)
    sf.write(path, np.repeat(wave[:, None], channels, axis=1), rate, subtype="PCM_16")
    return path


def tiny_whisper(folder: Path) -> Path:
    """A tiny random Whisper classifier that pads each 3 s window to 3 s (ser_hf's variable-length mode)."""
    import torch

    from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
    from ser_hf.testing.models import tiny_backbone

    torch.manual_seed(0)
    model, extractor = build_model(tiny_backbone("whisper", folder / "backbone"), LABELS,
                                   ModelOptions(max_source_positions=150))
    return save_checkpoint(model, extractor, folder / "model")


def predict_long(recognizer: EmotionRecognizer, path: Path, method: str, args: argparse.Namespace) -> dict:
    whole, chunk_batches = METHODS[method]
    window_chunks.CHUNK_BATCHES = chunk_batches
    try:
        return recognizer.predict_long(recognizer.load_raw(path) if whole else path, window=args.window, hop=args.hop)
    finally:
        window_chunks.CHUNK_BATCHES = METHODS[NEW][1]


def _recognizer(args: argparse.Namespace, setup: str) -> EmotionRecognizer:
    import torch

    torch.set_num_threads(args.threads)
    return EmotionRecognizer.from_pretrained(args.checkpoint, batch_size=args.batch_size, **SETUPS[setup])


def _status_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process, from ``/proc/self/status`` (Linux)."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1]) / 1024


def worker(args: argparse.Namespace) -> None:
    """One method on one setup, in a process of its own: print its memory figures and its result as JSON."""
    recognizer = _recognizer(args, args.setup)
    run = functools.partial(predict_long, recognizer, Path(args.recording), args.method, args)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(10 * RATE) / RATE)).astype(np.float32)
    recognizer.predict_long(tone, window=args.window, hop=args.hop)  # warm-up: one-off allocations
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the resident set now, so that the peak read after is this call's
    resident_before = _status_mib("VmRSS")
    result = run()
    rss_growth = _status_mib("VmHWM") - resident_before
    gc.collect()
    tracemalloc.start()  # a second call, traced: tracing slows it down and costs memory of its own
    try:
        run()
        traced = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    print(json.dumps({"peak_traced_mib": round(traced, 1), "rss_before_mib": round(resident_before, 1),
                      "rss_growth_mib": round(rss_growth, 1), "result": result}))


def _memory(args: argparse.Namespace, setup: str, method: str) -> dict:
    command = [sys.executable, __file__, "--worker", "--setup", setup, "--method", method,
               "--checkpoint", str(args.checkpoint), "--recording", str(args.recording),
               *[f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("window", "hop", "batch_size", "threads")]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratios(figures: dict[str, float]) -> dict[str, float | None]:
    """Each earlier method's figure over predict_long's own (None where its own grew nothing)."""
    return {method: round(value / figures[NEW], 2) if figures[NEW] > 0 else None
            for method, value in figures.items() if method != NEW}


def measure(args: argparse.Namespace, setup: str) -> dict:
    """Each method's memory (a process each) and wall time (interleaved, in this process), and the ratios."""
    memory = {method: _memory(args, setup, method) for method in METHODS}
    results = {method: figures.pop("result") for method, figures in memory.items()}
    recognizer = _recognizer(args, setup)
    runs = {method: functools.partial(predict_long, recognizer, args.recording, method, args) for method in METHODS}
    times, _ = time_interleaved(runs, args.repeats)
    traced = {method: figures["peak_traced_mib"] for method, figures in memory.items()}
    growth = {method: figures["rss_growth_mib"] for method, figures in memory.items()}
    return {
        "windows_scored": len(results[NEW]["timeline"]),
        "windows_gated_as_silence": len(results[NEW]["skipped"]),
        "identical_results": all(result == results[NEW] for result in results.values()),
        "memory": memory,
        "traced_peak_mib": traced,
        "rss_growth_mib": growth,
        "traced_ratio_over_block_by_block": _ratios(traced),
        "rss_growth_ratio_over_block_by_block": _ratios(growth),
        "seconds": {method: timed["seconds"] for method, timed in times.items()},
        "cpu_seconds": {method: timed["cpu_seconds"] for method, timed in times.items()},
        "speedup_of_block_by_block": {method: speedup(times[method]["seconds"], times[NEW]["seconds"])
                                      for method in METHODS if method != NEW},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="length of the synthetic recording")
    parser.add_argument("--rate", type=int, default=RATE, help="its sampling rate (another than 16000 is resampled)")
    parser.add_argument("--channels", type=int, default=1, help="its channels (averaged to mono as it is decoded)")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--hop", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady on a shared machine)")
    parser.add_argument("--name", default="long_recording_memory", help="result file name (benchmarks/results/NAME.json)")
    add_timing_arguments(parser)
    for hidden in ("--setup", "--method", "--checkpoint", "--recording"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    folder = Path(scratch_dir("ser_hf_long_memory_"))
    args.recording = synthetic_recording(args.minutes, folder / "recording.wav", args.rate, args.channels)
    args.checkpoint = tiny_whisper(folder)
    recording_mib = round(args.minutes * 60 * RATE * 4 / 2**20, 1)
    results = {"settings": {"minutes": args.minutes, "rate": args.rate, "channels": args.channels,
                            "window": args.window, "hop": args.hop, "batch_size": args.batch_size,
                            "chunk_batches": METHODS[NEW][1], "torch_threads": args.threads, "repeats": args.repeats},
               "recording_float32_mib": recording_mib, "setups": {}}
    with timing_conditions(args, "one predict_long call per method, methods interleaved, after a warm-up round; "
                                 "memory from one process per setup and method") as conditions:
        for setup in SETUPS:
            results["setups"][setup] = measure(args, setup)
            print(setup, json.dumps(results["setups"][setup]), flush=True)
    results["timing"] = conditions
    results["model"] = ("tiny random Whisper classifier (ser_hf.testing.models.tiny_backbone('whisper'), "
                        "max_source_positions=150): the audio predict_long holds, not a model's size, is measured")
    results["note"] = ("recording_float32_mib is the recording at 16 kHz as float32, what a method that decodes it whole "
                       "holds (with a transient working copy while it is decoded). Block by block, a call holds about "
                       "one decode block, one window buffer and one chunk of windows, whatever the recording's length. "
                       "All at once, every voiced window's cleaned or speed-changed copy is held too (3 s windows "
                       "every 1 s: about 3x the voiced audio per copy).")
    write_result(args.name, results)


if __name__ == "__main__":
    main()
