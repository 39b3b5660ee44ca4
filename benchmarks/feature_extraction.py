"""Classic feature extraction speed: ser_hf's parallel cached extractor against the notebook loop.

The project started from a notebook that featurised each file in a plain loop with the classic
Kaggle/notebook ``extract_feature`` function (``librosa.load`` at 22.05 kHz, then means over frames of
40 MFCCs, STFT chroma, 128 mel bands, spectral contrast and tonnetz on the harmonic part). This script
times, in one run and on the same files, after a numba warm-up:

- ``notebook``: that function in a sequential loop (on an evenly spaced subset when the corpus is big,
  see ``--notebook-max-files``);
- ``ser_hf_parallel``: :func:`ser_hf.baseline.extract_dataset_features` with a cold (empty) cache and
  every core, the way users run it; hashing, cache writes and pool start-up included;
- ``ser_hf_sequential``: the same extractor in one process, no cache (separates the speed-up that comes
  from parallelism from the one that comes from computing the features differently);
- ``ser_hf_cached``: a second call on the now warm cache;
- ``threads_vs_processes``: the extractor's worker function on a thread pool and on a process pool
  (why the extractor uses processes);
- ``per_file_ms``: mean CPU milliseconds per file of decoding and of each feature group (each including
  its own STFT), and of the notebook's steps.

The two extractors do not compute the same features (ours: 532 values with frame statistics, pitch
and voice quality; the notebook: 193 means), so ``ratio_parallel_vs_notebook`` is the end-to-end
gain of switching, not a like-for-like kernel comparison.

Shared machines: other jobs may use the cores, and with the kernel's autogroup scheduling each session
gets an equal CPU share under contention whatever its number of processes, which hides any parallel
speed-up. So the run first waits (up to ``--idle-timeout`` s) for the 1-minute load average to fall, records
the load average before and after, and the CPU time per file (hardly inflated by other jobs); the compared
methods alternate over ``--repeats`` rounds, with min and median per method and ratios from both
(``benchmarks/common.py``).

Usage:
    .venv/bin/python benchmarks/feature_extraction.py
    .venv/bin/python benchmarks/feature_extraction.py --corpora urdu --notebook-max-files 0 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    add_timing_arguments,
    speedup,
    summarize,
    time_interleaved,
    timing_conditions,
    write_result,
)

from ser_hf.audio import AudioPreprocessor, load_audio  # noqa: E402
from ser_hf.baseline import FeatureConfig, extract_dataset_features, extract_features  # noqa: E402
from ser_hf.baseline import extraction as _extraction  # noqa: E402


def notebook_extract_feature(file_name: str) -> np.ndarray:
    """The classic notebook function, as published (keyword arguments added for librosa >= 0.10)."""
    import librosa

    X, sample_rate = librosa.load(file_name)
    stft = np.abs(librosa.stft(X))
    mfccs = np.mean(librosa.feature.mfcc(y=X, sr=sample_rate, n_mfcc=40).T, axis=0)
    chroma = np.mean(librosa.feature.chroma_stft(S=stft, sr=sample_rate).T, axis=0)
    mel = np.mean(librosa.feature.melspectrogram(y=X, sr=sample_rate).T, axis=0)
    contrast = np.mean(librosa.feature.spectral_contrast(S=stft, sr=sample_rate).T, axis=0)
    tonnetz = np.mean(librosa.feature.tonnetz(y=librosa.effects.harmonic(X), sr=sample_rate).T, axis=0)
    return np.hstack([mfccs, chroma, mel, contrast, tonnetz])


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers, once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(files: dict[str, list[str]], jobs: dict, repeats: int) -> dict:
    """``jobs`` timed in interleaved rounds: per method seconds and CPU ms per file (min/median) and files/s.

    CPU time includes the pool's workers (reaped inside each call), so it is the work done, wherever it ran.
    """
    times, outputs = time_interleaved(jobs, repeats, warmup=0, cpu_clock=_cpu_seconds)
    results = {}
    for name, timed in times.items():
        count = len(files[name])
        per_file = summarize([seconds / count for seconds in timed["seconds"]["runs"]], 5)
        results[name] = {"files": count, **timed, "seconds_per_file": per_file,
                         "files_per_s": round(1 / per_file["median"], 2),
                         "cpu_ms_per_file": summarize([c * 1000 / count for c in timed["cpu_seconds"]["runs"]], 1),
                         **(outputs[name] if isinstance(outputs[name], dict) else {})}
        print(f"  {name:24s} {results[name]['files_per_s']:8.2f} files/s (median of {repeats}, {count} files)",
              flush=True)
    return results


def _notebook_loop(files: list[str]) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in files:
            notebook_extract_feature(path)
    return {"warnings": len(caught)}


def _process_pool_map(args: tuple, workers: int) -> None:
    # Start-up and shutdown inside the timing, as in extract_dataset_features; shutdown also reaps the
    # workers, which is when their CPU time becomes visible to getrusage(RUSAGE_CHILDREN).
    _extraction._warm_up(args[1][0])
    context = _extraction._pool_context()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_extraction._init_worker) as pool:
        list(pool.map(_extraction._extract_file, *args, chunksize=4))


def _pool_comparison(files: list[str], config: FeatureConfig, workers: int, repeats: int) -> dict:
    """The extractor's worker function on threads vs processes (fork), BLAS limited to 1 thread in both."""
    prep = AudioPreprocessor(sampling_rate=config.sampling_rate)
    args = ([str(p) for p in files], [config] * len(files), [prep] * len(files))
    with _extraction._limit_blas_threads(), ThreadPoolExecutor(workers) as pool:
        jobs = {"sequential": lambda: list(map(_extraction._extract_file, *args)),
                "threads": lambda: list(pool.map(_extraction._extract_file, *args)),
                "processes": lambda: _process_pool_map(args, workers)}
        return _timed(dict.fromkeys(jobs, files), jobs, repeats)


def _per_file_ms(files: list[str], config: FeatureConfig) -> dict:
    """Mean milliseconds per file of decoding and of each feature group alone (each with its STFT)."""
    waves = [load_audio(path, config.sampling_rate) for path in files]
    costs = {"decode": _mean_ms(lambda: [load_audio(path, config.sampling_rate) for path in files], len(files))}
    for group in config.groups:
        sub = FeatureConfig(groups=(group,))
        costs[group] = _mean_ms(lambda sub=sub: [extract_features(w, sub) for w in waves], len(files))
    costs["all_groups"] = _mean_ms(lambda: [extract_features(w, config) for w in waves], len(files))
    pyin = FeatureConfig(groups=("pitch",), pitch_method="pyin")
    costs["pitch_pyin"] = _mean_ms(lambda: [extract_features(w, pyin) for w in waves[:5]], min(5, len(waves)))
    return costs


def _notebook_per_file_ms(files: list[str]) -> dict:
    import librosa

    loaded = [librosa.load(path) for path in files]
    steps = {
        "librosa.load_22k": lambda: [librosa.load(path) for path in files],
        "stft": lambda: [np.abs(librosa.stft(x)) for x, _ in loaded],
        "mfcc40": lambda: [librosa.feature.mfcc(y=x, sr=sr, n_mfcc=40) for x, sr in loaded],
        "chroma_stft": lambda: [librosa.feature.chroma_stft(S=np.abs(librosa.stft(x)), sr=sr) for x, sr in loaded],
        "mel128": lambda: [librosa.feature.melspectrogram(y=x, sr=sr) for x, sr in loaded],
        "tonnetz_harmonic_cqt": lambda: [
            librosa.feature.tonnetz(y=librosa.effects.harmonic(x), sr=sr) for x, sr in loaded
        ],
    }
    return {name: _mean_ms(step, len(files)) for name, step in steps.items()}


def _mean_ms(run, n: int) -> float:
    """Mean CPU milliseconds per file of ``run()``: CPU time, unlike wall time, barely moves when other jobs
    share the cores (BLAS is held to one thread so CPU time is not inflated by spinning BLAS threads)."""
    with _extraction._limit_blas_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notebook's CQT warns on short inputs; counted in _notebook_loop
        start = time.process_time()
        run()
        return round((time.process_time() - start) * 1000 / n, 2)


def _ser_hf(files: list[str], config: FeatureConfig, **kwargs) -> dict:
    matrix = extract_dataset_features(files, config, progress=False, **kwargs)
    workers = kwargs.get("num_workers") or _extraction._default_workers(len(files))
    return {"workers": workers, "shape": list(matrix.features.shape), "cache_hits": matrix.cache_hits}


def _subset(files: list, limit: int) -> list:
    if limit <= 0 or len(files) <= limit:
        return files
    return [files[round(i * len(files) / limit)] for i in range(limit)]


def _compare(files: list[str], notebook_files: list[str], config: FeatureConfig, repeats: int) -> dict:
    """ser_hf parallel (a new, cold cache each round), ser_hf sequential and the notebook loop, interleaved;
    then the warm cache of the first parallel round."""
    with tempfile.TemporaryDirectory() as root:
        caches = (Path(root) / f"cache{i}" for i in itertools.count())
        jobs = {"ser_hf_parallel": lambda: _ser_hf(files, config, cache_dir=next(caches)),
                "ser_hf_sequential": lambda: _ser_hf(files, config, num_workers=1),
                "notebook": lambda: _notebook_loop(notebook_files)}
        results = _timed({"ser_hf_parallel": files, "ser_hf_sequential": files, "notebook": notebook_files}, jobs,
                         repeats)
        warm = {"ser_hf_cached": lambda: _ser_hf(files, config, cache_dir=Path(root) / "cache0")}
        results.update(_timed({"ser_hf_cached": files}, warm, repeats))
    return results


def bench_corpus(name: str, args: argparse.Namespace, config: FeatureConfig) -> dict:
    files = _subset(sorted(str(p) for p in (SHARED_DATA / name).rglob("*.flac")), args.max_files)
    print(f"{name}: {len(files)} files", flush=True)
    notebook_files = _subset(files, args.notebook_max_files)
    result: dict = {"files": len(files), **_compare(files, notebook_files, config, args.repeats)}
    result["notebook"]["subset"] = (
        "all files" if notebook_files == files else f"every {len(files) / len(notebook_files):.1f}th file"
    )
    per_file = {key: result[key]["seconds_per_file"] for key in ("notebook", "ser_hf_parallel", "ser_hf_sequential")}
    for key in ("ser_hf_parallel", "ser_hf_sequential"):
        result[f"ratio_{key.removeprefix('ser_hf_')}_vs_notebook"] = speedup(per_file["notebook"], per_file[key])
    result["parallel_speedup"] = speedup(per_file["ser_hf_sequential"], per_file["ser_hf_parallel"])
    sample = _subset(files, args.breakdown_files)
    result["per_file_ms"] = {
        "files": len(sample),
        "ser_hf": _per_file_ms(sample, config),
        "notebook": _notebook_per_file_ms(sample),
    }
    result["threads_vs_processes"] = _pool_comparison(
        _subset(files, args.pool_files), config, _extraction._default_workers(2), args.repeats
    )
    return result


def warm_up(config: FeatureConfig, path: str) -> None:
    """numba compiles (or loads from its cache) librosa's kernels on first use: keep that out of the timings."""
    start = time.perf_counter()
    extract_features(load_audio(path), config)
    notebook_extract_feature(path)
    print(f"warm-up: {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=["urdu", "ravdess"], choices=["urdu", "ravdess"])
    parser.add_argument("--max-files", type=int, default=0, help="evenly spaced subset per corpus; 0 = all")
    parser.add_argument("--notebook-max-files", type=int, default=400, help="0 = every file (slow: ~0.4 s/file)")
    parser.add_argument("--breakdown-files", type=int, default=40, help="files for the per-step cost breakdown")
    parser.add_argument("--pool-files", type=int, default=100, help="files for threads vs processes")
    add_timing_arguments(parser)
    args = parser.parse_args()
    config = FeatureConfig()
    missing = [name for name in args.corpora if not (SHARED_DATA / name).is_dir()]
    if missing:
        sys.exit(f"Corpora {missing} not found under {SHARED_DATA}; see ../shared/data/README.md.")
    warm_up(config, str(next((SHARED_DATA / args.corpora[0]).rglob("*.flac"))))
    results = {
        "feature_config": config.fingerprint(),
        "n_features": len(extract_features(np.zeros(1, np.float32), config)),
        "cpu_count": os.cpu_count(),
    }
    with timing_conditions(args, "one extraction of the files per method, methods interleaved") as conditions:
        for name in args.corpora:
            results[name] = bench_corpus(name, args, config)
    results["timing"] = conditions
    write_result("feature_extraction", results)


if __name__ == "__main__":
    main()
