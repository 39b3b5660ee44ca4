"""Service latency and memory: ``ser-hf serve`` under 8 concurrent clients, on loopback.

Two sections, each against a real ``ser-hf serve`` child process (uvicorn, real sockets):

- ``mixed_load`` (issue 8): a tiny random wav2vec2 model, 8 clients x 200 requests cycling through
  valid uploads, PCM, batches, timelines, health checks and a dozen kinds of invalid request
  (:func:`ser_hf.service.loadtest.mixed_cases`). Records status counts, 5xx count (must be 0),
  latency p50/p95 (all, valid, invalid), requests/s and the server's memory (start, end, growth after
  the first quarter, peak).
- ``slow_clients`` (issue 18): the same mixed load, alone and then beside 104 connections that try to hold
  the server (60 idle, 30 with half-sent headers, 8 slow PCM bodies, 2 stalled batch uploads, 4 WebSocket
  streams fed empty frames; :mod:`ser_hf.service.slowclients`), with 2 s header, body and stream-idle
  timeouts. Records both latencies, the statuses, and per slow kind what the server answered and how long
  it held each connection at most.
- ``whisper_tiny_en``: the real OpenAI Whisper tiny.en encoder (preset ``whisper-tiny.en``) with a
  randomly initialised 4-emotion head (latency does not depend on the head's weights), serving 3.5 s
  WAV uploads. Two servers run side by side, micro-batching on (``--micro-batch 8``) and off
  (``--micro-batch 1``), and are measured in ``--rounds`` interleaved rounds (alternating which server
  goes first) with 1 client (a lone request's latency) and 8 concurrent clients; min and median over the
  rounds of p50/p95 latency and requests/s, every round kept, and micro-batching's speed-up in seconds per
  request from the medians and from the minimums. Done for Whisper cut to 8 s of positions (the fast
  variable-length mode) and padded to 30 s (what the probe recipes train with).

Every run records the load average before and after it, and ``whisper_tiny_en`` first waits (bounded) for
an idle machine (``benchmarks/common.py``): the development machines' 2 cores are shared, so figures from a
busy machine are slower than the service is. The two load tests are single long runs (their percentiles are
over every request), not repeated.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/service_latency.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/service_latency.py --sections mixed_load --requests 50
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/service_latency.py --sections slow_clients --requests 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS_DIR,
    add_timing_arguments,
    interleaved,
    load_average,
    provenance,
    speedup,
    summarize,
    timing_conditions,
    write_result,
)

from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint, whisper_positions_for  # noqa: E402
from ser_hf.service.loadtest import mixed_cases, run_load, valid_cases  # noqa: E402
from ser_hf.service.testing import peak_rss_bytes, running_server  # noqa: E402

LABELS = ["neutral", "happy", "sad", "angry"]
MAX_UPLOAD = 256 * 1024
MAX_DURATION = 12.0
CLIP_SECONDS = 3.5


def mixed_load(args: argparse.Namespace, tmp: Path) -> dict:
    from ser_hf.testing.models import tiny_backbone

    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "tiny-backbone"), LABELS)
    checkpoint = save_checkpoint(model, extractor, tmp / "tiny-model")
    flags = ("--max-upload-mb", str(MAX_UPLOAD / 2**20), "--max-duration", str(MAX_DURATION))
    cases = mixed_cases(MAX_UPLOAD, MAX_DURATION)
    with running_server(checkpoint, *flags, env={"OMP_NUM_THREADS": "1"}) as server:
        load_before = load_average()
        report = run_load(server.url, cases, clients=args.clients, requests_per_client=args.requests,
                          server_pid=server.pid)
    return {
        "model": "tiny random wav2vec2 (hidden 32, 2 layers; ser_hf.testing.models.tiny_backbone) + 4-emotion head",
        "server": f"ser-hf serve {' '.join(flags)} (OMP_NUM_THREADS=1)",
        "clients": args.clients, "requests_per_client": args.requests,
        "cases": {case.name: case.expect for case in cases},
        "load_average_before": load_before, "load_average_after": load_average(),
        **report.summary(),
    }


#: The slow-client crowd of tests/test_service_load.py (see ser_hf.service.slowclients).
SLOW_CLIENTS = {"idle": 60, "half_headers": 30, "slow_pcm_body": 8, "stalled_batch": 2, "ws_empty": 4}
SLOW_FLAGS = ("--header-timeout", "2", "--body-timeout", "2", "--stream-idle-timeout", "2")


def slow_clients(args: argparse.Namespace, tmp: Path) -> dict:
    """The mixed load alone, then beside 104 slow, stalled and idle connections, on one server (tiny model)."""
    from ser_hf.testing.models import tiny_backbone

    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "slow-backbone"), LABELS)
    checkpoint = save_checkpoint(model, extractor, tmp / "slow-model")
    flags = ("--max-upload-mb", str(MAX_UPLOAD / 2**20), "--max-duration", str(MAX_DURATION), *SLOW_FLAGS)
    cases = mixed_cases(MAX_UPLOAD, MAX_DURATION)
    runs = {}
    with running_server(checkpoint, *flags, env={"OMP_NUM_THREADS": "1"}) as server:
        for name, crowd in (("alone", None), ("beside_slow_clients", SLOW_CLIENTS)):
            load_before = load_average()
            report = run_load(server.url, cases, clients=args.clients, requests_per_client=args.requests,
                              server_pid=server.pid, slow_clients=crowd)
            runs[name] = {"load_average_before": load_before, "load_average_after": load_average(),
                          **report.summary()}
        log = server.output()
    return {
        "model": "tiny random wav2vec2 (hidden 32, 2 layers) + 4-emotion head",
        "server": f"ser-hf serve {' '.join(flags)} (OMP_NUM_THREADS=1)",
        "clients": args.clients, "requests_per_client": args.requests, "slow_clients": SLOW_CLIENTS,
        "server_log_tracebacks": log.count("Traceback"), **runs,
    }


def _whisper_checkpoint(tmp: Path, seconds: int | None) -> Path:
    from ser_hf.models.presets import resolve_model_path

    options = ModelOptions(max_source_positions=whisper_positions_for(seconds)) if seconds else ModelOptions()
    model, extractor = build_model(resolve_model_path("whisper-tiny.en"), LABELS, options)
    return save_checkpoint(model, extractor, tmp / f"whisper-tiny.en-{seconds or 30}s")


def _run(server, cases: list, clients: int, requests: int) -> dict:
    load_before = load_average()
    report = run_load(server.url, cases, clients=clients, requests_per_client=requests, server_pid=server.pid,
                      timeout=300)
    summary = report.summary()
    return {"clients": clients, "requests": summary["requests"], "server_errors": summary["server_errors"],
            "unexpected": summary["unexpected"], "latency_ms": summary["latency_ms"],
            "requests_per_second": summary["requests_per_second"], "load_average_before": load_before,
            "load_average_after": load_average()}


def _over_rounds(rounds: list[dict]) -> dict:
    """Min and median over the rounds of p50/p95 latency, requests/s and seconds per request; every round."""
    rates = [r["requests_per_second"] for r in rounds]
    return {"latency_ms_p50": summarize([r["latency_ms"]["p50"] for r in rounds], 1),
            "latency_ms_p95": summarize([r["latency_ms"]["p95"] for r in rounds], 1),
            "requests_per_second": summarize(rates, 2),
            "seconds_per_request": summarize([1 / rate for rate in rates], 4), "rounds": rounds}


def _compare_micro_batching(checkpoint: Path, clients: int, requests: int, rounds: int) -> dict:
    """Two servers on the same checkpoint, micro-batching on (8) and off (1), measured in interleaved rounds."""
    cases = valid_cases(CLIP_SECONDS)[:1]  # WAV uploads only: one kind of request, comparable figures
    modes = {"micro_batch_8": "8", "micro_batch_1": "1"}
    runs: dict[str, dict] = {mode: {"clients_1": [], f"clients_{clients}": []} for mode in modes}
    with contextlib.ExitStack() as stack:
        servers = {mode: stack.enter_context(running_server(checkpoint, "--micro-batch", flag))
                   for mode, flag in modes.items()}
        for server in servers.values():  # warm-up: first-call costs stay out of the figures
            httpx.post(server.url + "/predict", files=cases[0].request["files"], timeout=300)
        for round_, mode in interleaved(list(servers), rounds):
            for n, count in ((1, max(3, requests // 2)), (clients, requests)):
                print(f"  round {round_ + 1}/{rounds} {mode} clients={n}", flush=True)
                runs[mode][f"clients_{n}"].append(_run(servers[mode], cases, n, count))
        out = {}
        for mode, server in servers.items():
            health = httpx.get(server.url + "/health").json()
            passes, clips = health["forward_passes"], health["batched_clips"]
            out[mode] = {
                **{key: _over_rounds(rounds_) for key, rounds_ in runs[mode].items()},
                "mean_forward_batch": round(clips / passes, 2) if passes else None,
                "peak_rss_mib": round((peak_rss_bytes(server.pid) or 0) / 2**20, 1),
            }
    out["micro_batch_8_speedup"] = {key: speedup(out["micro_batch_1"][key]["seconds_per_request"],
                                                 out["micro_batch_8"][key]["seconds_per_request"])
                                    for key in runs["micro_batch_1"]}
    return out


def whisper_tiny_en(args: argparse.Namespace, tmp: Path) -> dict:
    import torch

    section = {
        "model": "OpenAI Whisper tiny.en encoder (ser_hf preset whisper-tiny.en, real weights) + randomly "
                 "initialised 4-emotion head (untrained: latency only)",
        "request": f"POST /predict with a {CLIP_SECONDS} s 16 kHz 16-bit mono WAV; each client sends its requests "
                   f"one after another",
        "torch_threads": torch.get_num_threads(),
        "rounds": args.repeats,
        "headline": "min and median over the rounds of each configuration (the machine is shared; every round is kept)",
    }
    checkpoints = {seconds: _whisper_checkpoint(tmp, seconds if seconds != 30 else None)
                   for seconds in args.whisper_seconds}
    with timing_conditions(args, f"one round of 1 then {args.clients} clients per server, servers in alternating "
                                 "order") as conditions:
        for seconds, checkpoint in checkpoints.items():
            requests = args.whisper_requests if seconds != 30 else max(2, args.whisper_requests // 3)
            print(f"== whisper-tiny.en, input {seconds} s", flush=True)
            section[f"input_{seconds}s"] = _compare_micro_batching(checkpoint, args.clients, requests, args.repeats)
    return {**section, "timing": conditions}


SECTIONS = {"mixed_load": mixed_load, "slow_clients": slow_clients, "whisper_tiny_en": whisper_tiny_en}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests per client in mixed_load")
    parser.add_argument("--whisper-requests", type=int, default=6,
                        help="requests per client for Whisper cut to 8 s (a third of it for 30 s padding)")
    add_timing_arguments(parser)  # --repeats (--rounds): interleaved measurement rounds per Whisper setting
    parser.add_argument("--whisper-seconds", type=int, nargs="+", default=[8, 30],
                        help="Whisper input lengths to measure (positions cut to N s; 30 = the full padding)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {"note": "2-core machines shared with other work: see load_average_* beside each figure."}
    # Sections not run now keep their figures from the last run, each with the command and date that made it.
    previous = RESULTS_DIR / "service_latency.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        kept = {name: {"provenance": section.get("provenance") or {"command": old.get("command"),
                                                                     "date": old.get("date")}, **section}
                for name, section in old.get("results", {}).items() if name in SECTIONS and name not in args.sections}
        results.update(kept)
    with tempfile.TemporaryDirectory(prefix="ser-hf-service-bench-") as tmp:
        for name in args.sections:
            print(f"== {name}", flush=True)
            results[name] = {"provenance": provenance(), **SECTIONS[name](args, Path(tmp))}
    write_result("service_latency", results)


if __name__ == "__main__":
    main()
