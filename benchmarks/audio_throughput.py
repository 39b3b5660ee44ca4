"""Decode + resample throughput over the shared RAVDESS copy (1440 FLAC clips, 16 kHz, 1.48 h).

Compares, in one run, ser_hf's loader (soundfile + soxr), sequential and on a thread pool, with the
obvious alternative, ``librosa.load(path, sr=...)`` file by file. Two target rates: 16 kHz (the
models' rate; the shared copy is already 16 kHz, so this is decoding alone) and 22.05 kHz (forces a
real resampling step).

After one untimed pass of every method, the methods run in ``--repeats`` interleaved rounds (one pass over
the clips each); min and median per method, speed-ups from both (``benchmarks/common.py``).

    .venv/bin/python benchmarks/audio_throughput.py [--limit N] [--repeats R]
"""

from __future__ import annotations

import argparse
import warnings

import librosa
import numpy as np
from common import SHARED_DATA, add_timing_arguments, speedup, time_interleaved, timing_conditions, write_result

from ser_hf.audio import load_audio, load_many
from ser_hf.corpora import load_corpus


def compare_at(rate: int, paths: list[str], repeats: int) -> dict:
    """Seconds per pass of each method at ``rate`` (min/median), speed-up vs librosa, and their difference."""
    methods = {
        "librosa.load, sequential": lambda: [librosa.load(p, sr=rate)[0] for p in paths],
        "ser_hf load_audio, sequential": lambda: [load_audio(p, rate) for p in paths],
        "ser_hf load_many, 2 threads": lambda: load_many(paths, rate, num_workers=2),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times, outputs = time_interleaved(methods, repeats)  # the warm-up round also warms numba and soxr
    baseline = times["librosa.load, sequential"]["seconds"]
    rows = {name: {**timed, "clips_per_second": round(len(paths) / timed["seconds"]["median"], 1),
                   "speedup_vs_librosa": speedup(baseline, timed["seconds"])} for name, timed in times.items()}
    ours, theirs = outputs["ser_hf load_many, 2 threads"], outputs["librosa.load, sequential"]
    # librosa rounds the resampled length up by one sample at times: compare the common part.
    rows["max_abs_difference_vs_librosa"] = float(
        max(np.max(np.abs(a[: min(a.size, b.size)] - b[: min(a.size, b.size)])) for a, b in zip(ours, theirs))
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips")
    add_timing_arguments(parser)
    args = parser.parse_args()
    paths = load_corpus("ravdess", SHARED_DATA / "ravdess")["audio"][: args.limit]
    audio_seconds = sum(load_audio(p).size for p in paths[:50]) / 16000 * len(paths) / min(50, len(paths))
    results = {"clips": len(paths), "audio_hours_estimate": round(audio_seconds / 3600, 3), "rates": {}}
    with timing_conditions(args, "one pass over the clips per method, methods interleaved") as conditions:
        for rate in (16000, 22050):
            results["rates"][str(rate)] = compare_at(rate, paths, args.repeats)
            print(rate, results["rates"][str(rate)])
    results["timing"] = conditions
    write_result("audio_throughput", results)


if __name__ == "__main__":
    main()
