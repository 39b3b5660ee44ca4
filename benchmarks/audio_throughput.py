"""Decode + resample throughput over the shared RAVDESS copy (1440 FLAC clips, 16 kHz, 1.48 h).

Compares, in one run, ser_hf's loader (soundfile + soxr), sequential and on a thread pool, with the
obvious alternative, ``librosa.load(path, sr=...)`` file by file. Two target rates: 16 kHz (the
models' rate; the shared copy is already 16 kHz, so this is decoding alone) and 22.05 kHz (forces a
real resampling step).

    .venv/bin/python benchmarks/audio_throughput.py [--limit N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time
import warnings

import librosa
import numpy as np
from common import SHARED_DATA, write_result

from ser_hf.audio import load_audio, load_many
from ser_hf.corpora import load_corpus


def timed(fn, repeats: int) -> tuple[float, list]:
    """Best wall time of ``repeats`` runs (the least disturbed by other work) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = load_corpus("ravdess", SHARED_DATA / "ravdess")["audio"][: args.limit]
    audio_seconds = sum(load_audio(p).size for p in paths[:50]) / 16000 * len(paths) / min(50, len(paths))
    librosa.load(paths[0], sr=22050)  # warm up numba and soxr before timing
    results = {"clips": len(paths), "audio_hours_estimate": round(audio_seconds / 3600, 3), "rates": {}}
    for rate in (16000, 22050):
        methods = {
            "librosa.load, sequential": lambda rate=rate: [librosa.load(p, sr=rate)[0] for p in paths],
            "ser_hf load_audio, sequential": lambda rate=rate: [load_audio(p, rate) for p in paths],
            "ser_hf load_many, 2 threads": lambda rate=rate: load_many(paths, rate, num_workers=2),
        }
        rows, outputs = {}, {}
        for name, fn in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seconds, outputs[name] = timed(fn, args.repeats)
            rows[name] = {"seconds": round(seconds, 3), "clips_per_second": round(len(paths) / seconds, 1)}
        baseline = rows["librosa.load, sequential"]["seconds"]
        for row in rows.values():
            row["speedup_vs_librosa"] = round(baseline / row["seconds"], 2)
        ours, theirs = outputs["ser_hf load_many, 2 threads"], outputs["librosa.load, sequential"]
        # librosa rounds the resampled length up by one sample at times: compare the common part.
        rows["max_abs_difference_vs_librosa"] = float(
            max(np.max(np.abs(a[: min(a.size, b.size)] - b[: min(a.size, b.size)])) for a, b in zip(ours, theirs))
        )
        results["rates"][str(rate)] = rows
        print(rate, rows)
    write_result("audio_throughput", results)


if __name__ == "__main__":
    main()
