"""The shared timing helpers of ``benchmarks/common.py``: idle wait, interleaved repeats, min/median, records.

Fake clocks and load readers only: no test here asserts a real timing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "results"


@pytest.fixture
def common(benchmark_module):
    return benchmark_module("common")


class FakeClock:
    """A clock that only moves when told: ``sleep`` and the fake jobs advance it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def readings(*loads):
    """A load reader returning ``loads`` in turn, then the last one forever."""
    values = list(loads)
    return lambda: values.pop(0) if len(values) > 1 else values[0]


# ------------------------------------------------------------------------------------------------ summarize, speedup

def test_summarize_gives_min_median_max_and_every_run_in_order(common):
    assert common.summarize([3.0, 1.0, 2.0, 10.0]) == {"min": 1.0, "median": 2.5, "max": 10.0,
                                                       "runs": [3.0, 1.0, 2.0, 10.0]}
    assert common.summarize([0.123456], digits=3)["runs"] == [0.123]


def test_summarize_refuses_no_measurements(common):
    with pytest.raises(ValueError, match="at least one measurement"):
        common.summarize([])


def test_speedup_is_baseline_over_candidate_from_medians_and_minimums(common):
    baseline, candidate = common.summarize([10.0, 8.0, 12.0]), common.summarize([2.0, 4.0, 5.0])
    assert common.speedup(baseline, candidate) == {"median": 2.5, "min": 4.0}
    assert common.speedup(candidate, baseline) == {"median": 0.4, "min": 0.25}


# ------------------------------------------------------------------------------------------------ time_interleaved

def test_time_interleaved_alternates_order_skips_warmup_and_keeps_last_output(common):
    clock, cpu, order = FakeClock(), FakeClock(), []
    costs = {"a": [9.0, 1.0, 2.0, 3.0], "b": [9.0, 4.0, 6.0, 5.0]}  # the first (warm-up) call is slow

    def job(name):
        def run():
            order.append(name)
            spent = costs[name].pop(0)
            clock.sleep(spent)
            cpu.sleep(spent / 2)
            return len(order)
        return run

    times, outputs = common.time_interleaved({"a": job("a"), "b": job("b")}, repeats=3, warmup=1,
                                             clock=clock, cpu_clock=cpu)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert times["a"]["seconds"] == {"min": 1.0, "median": 2.0, "max": 3.0, "runs": [1.0, 2.0, 3.0]}
    assert times["b"]["seconds"]["runs"] == [4.0, 6.0, 5.0]
    assert times["b"]["cpu_seconds"]["median"] == 2.5
    assert outputs == {"a": 8, "b": 7}


def test_time_interleaved_without_warmup_times_every_call(common):
    clock = FakeClock()
    times, _ = common.time_interleaved({"only": lambda: clock.sleep(1.0)}, repeats=4, warmup=0,
                                       clock=clock, cpu_clock=clock)
    assert times["only"]["seconds"]["runs"] == [1.0] * 4


@pytest.mark.parametrize("repeats, warmup", [(0, 1), (3, -1)])
def test_time_interleaved_refuses_bad_counts(common, repeats, warmup):
    with pytest.raises(ValueError, match=f"repeats={repeats}, warmup={warmup}"):
        common.time_interleaved({"a": lambda: None}, repeats=repeats, warmup=warmup)


# ------------------------------------------------------------------------------------------------ wait_for_idle

def test_wait_for_idle_returns_at_once_on_an_idle_machine(common):
    clock = FakeClock()
    record = common.wait_for_idle(max_load=1.0, timeout=60, read_load=readings(0.4), sleep=clock.sleep, clock=clock)
    assert record == {"idle": True, "waited_s": 0.0, "max_load": 1.0, "timeout_s": 60, "load_first": 0.4,
                      "load_last": 0.4}


def test_wait_for_idle_polls_until_the_load_falls(common):
    clock = FakeClock()
    record = common.wait_for_idle(max_load=1.0, timeout=60, poll=5, read_load=readings(3.0, 2.0, 1.0),
                                  sleep=clock.sleep, clock=clock)
    assert record["idle"] is True and record["waited_s"] == 10.0
    assert (record["load_first"], record["load_last"]) == (3.0, 1.0)


def test_wait_for_idle_gives_up_within_the_timeout_and_says_so(common):
    clock = FakeClock()
    record = common.wait_for_idle(max_load=0.5, timeout=12, poll=5, read_load=readings(2.0),
                                  sleep=clock.sleep, clock=clock)
    assert record["idle"] is False and record["waited_s"] == 10.0 and record["load_last"] == 2.0


def test_wait_for_idle_without_a_load_reading_does_not_wait(common):
    clock = FakeClock()
    record = common.wait_for_idle(max_load=0.5, timeout=60, read_load=lambda: None, sleep=clock.sleep, clock=clock)
    assert record["idle"] is None and record["waited_s"] == 0.0


def test_wait_for_idle_defaults_to_a_quarter_of_the_cores(common, monkeypatch):
    monkeypatch.setattr(common.os, "cpu_count", lambda: 8)
    assert common.wait_for_idle(timeout=0, read_load=readings(1.5))["max_load"] == 2.0


# ------------------------------------------------------------------------------------------------ the record

def _args(common, *argv):
    parser = argparse.ArgumentParser()
    common.add_timing_arguments(parser)
    return parser.parse_args(list(argv))


def test_timing_arguments_default_to_3_repeats_and_accept_rounds(common):
    assert _args(common).repeats == 3
    assert _args(common, "--rounds", "5").repeats == 5
    assert _args(common, "--max-load", "1.5", "--idle-timeout", "0").max_load == 1.5


def test_timing_conditions_record_the_wait_and_the_load_before_and_after(common, monkeypatch, tmp_path):
    loads = [[1.0, 1.0, 1.0], [2.0, 1.5, 1.2]]
    monkeypatch.setattr(common, "load_average", lambda: loads.pop(0) if loads else [0.0, 0.0, 0.0])
    clock = FakeClock()
    with common.timing_conditions(_args(common, "--repeats", "4", "--max-load", "1"), "one pass per method",
                                  read_load=readings(3.0, 0.9), sleep=clock.sleep, clock=clock) as conditions:
        assert "load_average_after" not in conditions
    assert conditions == {
        "repeats": 4, "repeat": "one pass per method",
        "idle_wait": {"idle": True, "waited_s": 5.0, "max_load": 1.0, "timeout_s": 120.0, "load_first": 3.0,
                      "load_last": 0.9},
        "load_average_before": [1.0, 1.0, 1.0], "load_average_after": [2.0, 1.5, 1.2],
    }
    path = common.write_result("timed", {"timing": conditions})
    assert json.loads(path.read_text())["results"]["timing"] == conditions


def test_timing_conditions_warn_below_3_repeats(common, capsys):
    with common.timing_conditions(_args(common, "--repeats", "1", "--idle-timeout", "0"), "one call"):
        pass
    assert "fewer than 3 repeats" in capsys.readouterr().err


def test_provenance_records_the_load_average(common):
    assert set(common.provenance()) == {"command", "date", "load_average"}


# ------------------------------------------------------------------------------------------------ committed results

def _timing_records(node):
    if isinstance(node, dict):
        if "idle_wait" in node and "repeats" in node:
            yield node
        for value in node.values():
            yield from _timing_records(value)
    elif isinstance(node, list):
        for value in node:
            yield from _timing_records(value)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_committed_timing_records_hold_at_least_3_repeats_and_both_load_averages(path):
    for record in _timing_records(json.loads(path.read_text())):
        assert record["repeats"] >= 3, path.name
        assert {"load_average_before", "load_average_after"} <= set(record), path.name
        assert record["idle_wait"]["idle"] in (True, False, None), path.name


def test_gpu_peak_memory_is_none_without_cuda(common, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert common.gpu_peak_mib(reset=True) is None and common.gpu_peak_mib() is None


def test_gpu_peak_memory_is_read_in_mib_after_a_reset(common, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**20 + 2**19)
    assert common.gpu_peak_mib(reset=True) is None and calls == ["reset"]
    assert common.gpu_peak_mib() == 3.5


def test_a_runs_scratch_folder_is_gone_when_the_script_exits(tmp_path):
    """A benchmark's output is its result file: the folds' checkpoints (450 MB per partial seed) used to stay."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); from common import scratch_dir; "
            "import os; folder = scratch_dir('ser_hf_scratch_test_'); open(os.path.join(folder, 'x'), 'w').close(); "
            "print(folder)")
    result = subprocess.run([sys.executable, "-c", code, str(BENCHMARKS)], capture_output=True, text=True,
                            env={"TMPDIR": str(tmp_path), "PATH": ""})
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.parent == tmp_path and not folder.exists()
