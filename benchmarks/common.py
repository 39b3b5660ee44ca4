"""Shared by every benchmark script: where results go and what is recorded with them.

Each benchmark writes ``benchmarks/results/<name>.json`` holding the exact command, the machine, the
date and package versions beside its figures, so every number quoted in the README can be traced.

CPU timings come from shared machines, so every timing benchmark does the same four things with the
helpers at the end of this module: it waits (bounded) for the machine to go quiet
(:func:`wait_for_idle`), times the methods it compares in interleaved rounds so that a load change hits
all of them (:func:`time_interleaved`, or :func:`interleaved` where a method times itself), reports min and median over at least 3 repeats
(:func:`summarize`) with speed-ups from both (:func:`speedup`), and records the conditions: the idle
wait's outcome, the load average before and after, the repeats (:func:`timing_conditions`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ser_hf.versions import installed_versions

# SER_HF_RESULTS_DIR redirects results (e.g. to the folder a GPU machine sends back).
RESULTS_DIR = Path(os.environ.get("SER_HF_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
# The shared corpora beside the checkout; SER_HF_SHARED_DATA points elsewhere (e.g. a copy on a GPU machine).
SHARED_DATA = Path(os.environ.get("SER_HF_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
# The seed every shipped recipe sets (`seed: 0`): runs built here use it too, so that `ser-hf cv RECIPE` gives
# exactly the figure a result file records (the linear probe's inner CV folds follow it).
RECIPE_SEED = 0

PACKAGES = ("ser-hf", "torch", "transformers", "datasets", "evaluate", "accelerate", "librosa",
            "soundfile", "soxr", "scikit-learn", "numpy")


def scratch_dir(prefix: str) -> str:
    """A new temporary folder for what a run writes on the way (checkpoints, reports), removed when the script exits.

    A benchmark's output is its result file; the folds' checkpoints are not kept. Left behind, they filled the
    disk: a partial fine-tuning row leaves about 450 MB per seed.
    """
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _accelerator() -> str | None:
    """The CUDA device's name, or None on a CPU-only machine."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def gpu_peak_mib(reset: bool = False) -> float | None:
    """The most GPU memory torch held in this process since the last reset, in MiB; None without CUDA.

    ``reset=True`` starts a new measurement (and returns None): call it before the part to measure.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def environment() -> dict:
    """Machine, date and versions of the packages that matter for the figures."""
    versions = installed_versions(PACKAGES)
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "accelerator": _accelerator(),
            # 1, 5 and 15 minute load averages when the result was written: timings from a busy machine say so.
            "load_average": load_average(),
        },
        "versions": versions,
    }


def parse_overrides(pairs: list[str]) -> dict:
    """``--set key=value`` strings to a dict, values parsed as YAML (``true``, ``1e-5``, ``[15, 35]``)."""
    import yaml

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        values[key] = yaml.safe_load(value)
    return values


def provenance() -> dict:
    """Command, date and load average of this run, for a row that a result file accumulates across runs."""
    env = environment()
    return {"command": env["command"], "date": env["date"], "load_average": env["machine"]["load_average"]}


def write_result(name: str, results: dict) -> Path:
    """Write ``results`` with :func:`environment` to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({**environment(), "results": results}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def run_configs(description: str, default_name: str, run_config: Callable[..., dict], key: str = "config",
                options: dict[str, dict] | None = None) -> None:
    """The ``main()`` of a benchmark scored per configuration (``--configs`` ``corpus[/emotions]:model:positions``).

    Each configuration's row, with its :func:`provenance`, replaces that configuration's row (found by ``key``) in
    ``benchmarks/results/NAME.json`` and the file is written after every configuration, so a later run can add or
    redo one configuration and an interrupted run keeps what it finished. ``options``: the benchmark's own flags
    (``{"--assignments": argparse keywords}``), passed to ``run_config`` as keywords.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--configs", nargs="+", required=True, help="corpus[/emotions]:model:max_source_positions")
    parser.add_argument("--name", default=default_name, help="result file name (benchmarks/results/NAME.json)")
    for flag, keywords in (options or {}).items():
        parser.add_argument(flag, **keywords)
    args = parser.parse_args()
    extra = {name: getattr(args, name) for name in (flag.lstrip("-").replace("-", "_") for flag in options or {})}
    previous = RESULTS_DIR / f"{args.name}.json"
    rows = {r[key]: r for r in json.loads(previous.read_text())["results"]["runs"]} if previous.exists() else {}
    for spec in args.configs:
        rows[spec] = {**run_config(spec, **extra), **provenance()}
        write_result(args.name, {"runs": list(rows.values())})


def accuracy_row_ua(config: str, method: str) -> float | None:
    """The pooled UA of ``method``'s row for ``config`` in ``results/accuracy.json`` (None when it has none)."""
    rows = json.loads((RESULTS_DIR / "accuracy.json").read_text())["results"]["rows"]
    return next((row["pooled"]["unweighted_accuracy"] for row in rows
                 if row["method"] == method and row["config"] == config), None)


def report_scores(report) -> dict:
    """The figures of an :class:`~ser_hf.evaluation.EvaluationReport` that results record."""
    return {
        "unweighted_accuracy": report.unweighted_accuracy,
        "weighted_accuracy": report.weighted_accuracy,
        "macro_f1": report.macro_f1,
        "confidence_intervals": report.confidence_intervals,
        "num_samples": report.num_samples,
        "labels": report.labels,
        "confusion_matrix": report.confusion_matrix,
    }


def cv_scores(cv) -> dict:
    """Mean ± std over folds and the pooled out-of-fold scores of a ``cross_validate`` result."""
    metrics = cv.aggregate["metrics"]
    copies = getattr(cv, "test_time_copies", None)
    return {"mean_std": {k: metrics[k] for k in ("unweighted_accuracy", "weighted_accuracy", "macro_f1")},
            "pooled": report_scores(cv.pooled),
            **({"test_time_copies": report_scores(copies)} if copies is not None else {})}


# ------------------------------------------------------------------------------------------ timing on shared CPUs


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01; None where the platform has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _one_minute_load() -> float | None:
    loads = load_average()
    return loads[0] if loads else None


def default_max_load() -> float:
    """A quarter of the cores busy (0.5 on the 2-core development machines) still counts as idle."""
    return 0.25 * (os.cpu_count() or 1)


def wait_for_idle(max_load: float | None = None, timeout: float = 120.0, poll: float = 5.0, *,
                  read_load: Callable[[], float | None] = _one_minute_load,
                  sleep: Callable[[float], Any] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> dict:
    """Wait at most ``timeout`` s for the 1-minute load average to fall to ``max_load`` or below.

    A benchmark that waits in vain still runs: the record says so, and the load averages recorded beside
    the figures tell how busy the machine was.

    Args:
        max_load: the highest load that counts as idle (default :func:`default_max_load`).
        timeout: seconds to wait at most; 0 reads the load once and does not wait.
        poll: seconds between readings.
        read_load: the reading (default: the 1-minute load average; None where unavailable, which ends
            the wait at once).
        sleep, clock: for tests.

    Returns:
        ``{"idle": bool or None (no reading), "waited_s", "max_load", "timeout_s", "load_first", "load_last"}``.

    Example:
        >>> wait_for_idle(max_load=1e9, timeout=0)["idle"] in (True, None)
        True
    """
    max_load = default_max_load() if max_load is None else max_load
    start = clock()
    first = load = read_load()
    while load is not None and load > max_load and clock() - start + poll <= timeout:
        sleep(poll)
        load = read_load()
    return {"idle": None if load is None else load <= max_load, "waited_s": round(clock() - start, 1),
            "max_load": max_load, "timeout_s": timeout, "load_first": first, "load_last": load}


def summarize(values: Sequence[float], digits: int = 4) -> dict:
    """Min, median and max of repeated measurements, with every value (in the order measured).

    Example:
        >>> summarize([3.0, 1.0, 2.0])
        {'min': 1.0, 'median': 2.0, 'max': 3.0, 'runs': [3.0, 1.0, 2.0]}
    """
    if not values:
        raise ValueError("summarize() needs at least one measurement; got none (were 0 repeats asked for?).")
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits), "runs": [round(value, digits) for value in values]}


def interleaved(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """``(round, name)`` for every name in every round, in reverse order every other round.

    A load change from other jobs on the machine then hits every method alike, and no method always runs
    first (or right after another).

    Example:
        >>> list(interleaved(["a", "b"], 2))
        [(0, 'a'), (0, 'b'), (1, 'b'), (1, 'a')]
    """
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            yield round_, name


def time_interleaved(jobs: dict[str, Callable[[], Any]], repeats: int = 3, warmup: int = 1, *,
                     clock: Callable[[], float] = time.perf_counter,
                     cpu_clock: Callable[[], float] = time.process_time) -> tuple[dict[str, dict], dict[str, Any]]:
    """Time every job ``repeats`` times in interleaved rounds, after ``warmup`` untimed rounds.

    Each round runs every job once, in the order of :func:`interleaved`.

    Args:
        jobs: name -> a callable taking no arguments.
        repeats: timed rounds.
        warmup: untimed rounds first (first-call allocation, numba compilation, caches).
        clock, cpu_clock: wall and CPU clocks (CPU time of this process: hardly inflated by other jobs).

    Returns:
        Per job ``{"seconds": summarize(wall), "cpu_seconds": summarize(cpu)}``, and each job's last return value.

    Example:
        >>> times, outputs = time_interleaved({"sum": lambda: sum(range(1000)), "max": lambda: max(range(1000))})
        >>> len(times["sum"]["seconds"]["runs"]), outputs["max"]
        (3, 999)
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_interleaved() needs repeats >= 1 and warmup >= 0; got repeats={repeats}, "
                         f"warmup={warmup}.")
    names, outputs = list(jobs), {}
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_, name in interleaved(names, warmup + repeats):
        started, cpu_started = clock(), cpu_clock()
        outputs[name] = jobs[name]()
        if round_ >= warmup:
            wall[name].append(clock() - started)
            cpu[name].append(cpu_clock() - cpu_started)
    return {name: {"seconds": summarize(wall[name]), "cpu_seconds": summarize(cpu[name])} for name in names}, outputs


def speedup(baseline: dict, candidate: dict, digits: int = 2) -> dict:
    """How many times less time ``candidate`` took than ``baseline``, from the medians and from the minimums.

    Args:
        baseline, candidate: :func:`summarize` records of times (seconds, or seconds per item).

    Example:
        >>> speedup(summarize([4.0, 6.0, 5.0]), summarize([1.0, 2.0, 2.5]))
        {'median': 2.5, 'min': 4.0}
    """
    return {"median": round(baseline["median"] / candidate["median"], digits),
            "min": round(baseline["min"] / candidate["min"], digits)}


def add_timing_arguments(parser: argparse.ArgumentParser, repeats: int = 3) -> None:
    """``--repeats`` (alias ``--rounds``), ``--max-load`` and ``--idle-timeout``, read by :func:`timing_conditions`."""
    group = parser.add_argument_group("timing on a shared machine")
    group.add_argument("--repeats", "--rounds", dest="repeats", type=int, default=repeats,
                       help=f"timed repeats of each measurement; min and median are reported (default {repeats})")
    group.add_argument("--max-load", type=float, default=None,
                       help="1-minute load average that counts as idle (default: a quarter of the cores)")
    group.add_argument("--idle-timeout", "--wait-quiet", dest="idle_timeout", type=float, default=120.0,
                       help="seconds to wait at most for that load before timing anyway (default 120; 0: no wait)")


@contextlib.contextmanager
def timing_conditions(args: argparse.Namespace, repeat: str, **wait_options) -> Iterator[dict]:
    """Wait for an idle machine, then yield the record of the conditions; the load after is added on exit.

    Args:
        args: parsed arguments of :func:`add_timing_arguments`.
        repeat: what one repeat is, for the record (e.g. "one pass over the clips per method, interleaved").
        wait_options: passed to :func:`wait_for_idle` (``read_load``, ``sleep``, ``clock``, ``poll``).

    Example:
        >>> parser = argparse.ArgumentParser(); add_timing_arguments(parser)
        >>> with timing_conditions(parser.parse_args(["--idle-timeout", "0"]), "one call") as conditions:
        ...     pass  # doctest: +ELLIPSIS
        idle wait: ...
        >>> sorted(conditions)
        ['idle_wait', 'load_average_after', 'load_average_before', 'repeat', 'repeats']
    """
    if args.repeats < 3:
        print(f"warning: --repeats {args.repeats}: fewer than 3 repeats, min and median say little", file=sys.stderr)
    idle = wait_for_idle(args.max_load, args.idle_timeout, **wait_options)
    print(f"idle wait: {'idle' if idle['idle'] else 'not idle'} after {idle['waited_s']} s "
          f"(1-minute load {idle['load_last']}, threshold {idle['max_load']})", flush=True)
    record = {"repeats": args.repeats, "repeat": repeat, "idle_wait": idle, "load_average_before": load_average()}
    yield record
    record["load_average_after"] = load_average()
