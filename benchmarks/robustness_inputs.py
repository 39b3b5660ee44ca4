"""The bad-input corpus through every entry point that reads audio, and the decoding fuzzer: ROBUSTNESS.md's figures.

Writes ``benchmarks/results/robustness_inputs.json`` and prints the Markdown outcome table (one row per
case of :func:`ser_hf.testing.bad_audio.make_bad_inputs`, one column per entry point) and the summary
figures. A cell is what the entry point did; ``✓`` marks the documented outcome (decoded with the
documented conversion, or an error that names the file), ``✗`` anything else.

    .venv/bin/python benchmarks/robustness_inputs.py [--no-long] [--fuzz-examples N] [--only-bombs] [--only-hostile]

The figures in ROBUSTNESS.md come from ``.venv/bin/python benchmarks/robustness_inputs.py --fuzz-examples 2000``
(3-4 minutes on 2 shared cores).

It also builds three decompression bombs (``BOMBS``: small FLAC/OGG files of 8 channels at 192-384 kHz) and
measures the peak memory of decoding each (whole, the old way; by ``load_audio``; by the service's decoder),
each in a fresh process, and what a running ``ser-hf serve`` answers to 4 of them at once.

Section ``hostile`` (:mod:`robustness_hostile`, under a minute): file names that are not UTF-8 or are
hostile through ``ser-hf predict`` (JSONL, CSV), ``data summary`` and ``evaluate --skip-bad-files``; ``--out``
pointing at files it must not touch; broken checkpoints and baselines (error, whether it names the folder,
peak RSS of the failed load); recipe bombs (error, time, peak RSS). ``--only-hostile`` runs it alone into
``results/robustness_hostile.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

from common import write_result
from robustness_hostile import hostile_markdown, run_hostile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Entry points whose outcome follows BadInput.expected (decoding) or BadInput.as_clip (a file used as a clip).
ENTRY_POINTS = {
    "decode": ("load_audio", "expected"),
    "loader": ("load_corpus(strict=False)", "as_clip"),
    "collator": ("AudioCollator (training)", "expected"),
    "evaluate": ("evaluate_checkpoint (lenient)", "as_clip"),
    "baseline": ("baseline features", "expected"),
    "predict": ("ser-hf predict", "as_clip"),
}


def _outcome(run: Callable[[], str], case, want: str) -> dict:
    """Run one entry point on one case: what happened, and whether it is the documented outcome."""
    from ser_hf.errors import SERError

    try:
        return {"result": run(), "ok": want == "ok"}
    except SERError as err:
        names_file = str(case.path) in str(err)
        return {"result": f"{type(err).__name__}", "ok": want == "error" and names_file, "message": str(err)}
    except Exception as err:  # noqa: BLE001 - an unexpected type is exactly what this table must show
        return {"result": f"unexpected {type(err).__name__}", "ok": False, "message": str(err)[:300]}


def _error_outcome(message: str | None, case, want: str, kept: str) -> dict:
    """Outcome of a batch job that reports a failed file in a list instead of raising."""
    if message is None:
        return {"result": kept, "ok": want == "ok"}
    return {"result": "skipped, listed", "ok": want == "error" and str(case.path) in message, "message": message}


def run_inputs(root: Path, include_long: bool) -> tuple[list, dict]:
    import torch

    from ser_hf.audio import load_audio
    from ser_hf.baseline.extraction import extract_dataset_features
    from ser_hf.baseline.feature_config import FeatureConfig
    from ser_hf.corpora import load_corpus
    from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
    from ser_hf.inference.jobs import predict_files, read_records
    from ser_hf.models.factory import build_model, save_checkpoint
    from ser_hf.testing.bad_audio import make_bad_inputs
    from ser_hf.testing.corpora import make_corpus_tree
    from ser_hf.testing.models import tiny_backbone
    from ser_hf.training.data import AudioCollator

    torch.set_num_threads(1)
    tree = make_corpus_tree("folder", root / "folder")
    cases = make_bad_inputs(tree / "angry" / "bad", include_long=include_long)
    model, extractor = build_model(tiny_backbone("wav2vec2", root / "backbone"), ["neutral", "happy", "sad", "angry"])
    checkpoint = save_checkpoint(model, extractor, root / "model")
    outcomes: dict[str, dict[str, dict]] = {case.name: {} for case in cases}
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    for case in cases:
        if not case.slow:
            outcomes[case.name]["decode"] = _outcome(lambda c=case: f"{load_audio(c.path).size / 16000:.2f} s", case,
                                                     case.expected)
    seconds["decode"] = time.perf_counter() - start
    long_decode = {}
    for case in (c for c in cases if c.slow):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            outcomes[case.name]["decode"] = _outcome(lambda c=case: f"{load_audio(c.path).size / 16000:.2f} s", case,
                                                     case.expected)
            long_decode = {"seconds": round(time.perf_counter() - start, 2), "file_mb": case.path.stat().st_size / 1e6,
                           "peak_traced_mb": round(tracemalloc.get_traced_memory()[1] / 1e6, 1),
                           "output_mb": round(case.duration * 16000 * 4 / 1e6, 1)}
        finally:
            tracemalloc.stop()

    # Lenient loading: every skipped file is logged with its reason; keep those messages per path.
    start = time.perf_counter()
    skipped: dict[str, str] = {}
    handler = logging.Handler()
    handler.emit = lambda record: skipped.setdefault(str(record.args[0].path), str(record.args[0]))
    logger = logging.getLogger("ser_hf.corpora.base")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = load_corpus("folder", tree, strict=False)
    finally:
        logger.removeHandler(handler)
    seconds["loader"] = time.perf_counter() - start
    kept = set(dataset["audio"])
    for case in cases:
        if not case.has_audio_extension:
            outcomes[case.name]["loader"] = outcomes[case.name]["evaluate"] = {"result": "not scanned (.txt)",
                                                                                "ok": True}
            continue
        message = skipped.get(str(case.path))
        assert message is not None or str(case.path) in kept, case.name
        outcomes[case.name]["loader"] = _error_outcome(message, case, case.as_clip, "loaded")

    start = time.perf_counter()
    collate = AudioCollator(extractor, max_duration=2.0).for_training()
    for case in cases:
        def collated(c=case) -> str:
            return f"batch {tuple(collate([{'audio': str(c.path), 'label': 0}])['input_values'].shape)}"
        outcomes[case.name]["collator"] = _outcome(collated, case, case.expected)
    seconds["collator"] = time.perf_counter() - start

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_checkpoint(checkpoint, "folder", tree, n_resamples=0, progress=False,
                                     corpus_options={"strict": False})
    seconds["evaluate"] = time.perf_counter() - start
    for case in cases:
        if case.has_audio_extension:
            outcomes[case.name]["evaluate"] = _error_outcome(skipped.get(str(case.path)), case, case.as_clip, "scored")
    evaluated = {"num_samples": report.num_samples, "clips_loaded": len(dataset)}

    start = time.perf_counter()
    features = FeatureConfig(groups=("mfcc", "rms", "pitch"), n_mfcc=13, mfcc_delta_order=1, stats=("mean", "std"))
    quick = [case for case in cases if not case.slow]  # an hour of features is minutes; the loaders refuse it
    matrix = extract_dataset_features([str(c.path) for c in quick], features, num_workers=1, strict=False,
                                      progress=False)
    failures = dict(matrix.failures)
    for case in quick:
        outcomes[case.name]["baseline"] = _error_outcome(failures.get(str(case.path)), case, case.expected, "features")
    seconds["baseline"] = time.perf_counter() - start

    start = time.perf_counter()
    # The directory case is an input folder to predict (it expands it); the hour would be scored as one clip.
    inputs = [case for case in quick if case.name != "directory"]
    out = root / "predictions.jsonl"
    predict_files(checkpoint, [str(c.path) for c in inputs], out, progress=False)
    records = {r["path"]: r for r in read_records(out)}
    for case in inputs:
        record = records[str(case.path)]
        error = record.get("error")
        outcome = _error_outcome(error, case, case.as_clip, f"label {record.get('label')}")
        if error is not None:
            outcome["result"] = "error record"
            # A clip refused for its length must say so; a decode error must be the AudioError naming the file.
            outcome["ok"] = case.as_clip == "error" and bool(re.search(case.error_match or "", error)) and (
                case.expected == "ok" or str(case.path) in error)
        outcomes[case.name]["predict"] = outcome
    directory = next((c for c in cases if c.name == "directory"), None)
    if directory is not None:  # given as an input, a folder is searched for audio: this one holds none
        outcomes[directory.name]["predict"] = _outcome(
            lambda: str(predict_files(checkpoint, [str(directory.path)], root / "dir.jsonl", progress=False)),
            directory, "error")
        outcomes[directory.name]["predict"]["result"] += " (job refused before it starts)"
    seconds["predict"] = time.perf_counter() - start
    for case in cases:
        outcomes[case.name].setdefault("baseline", {"result": "not run (minutes of features)", "ok": None})
        outcomes[case.name].setdefault("predict", {"result": "not run (see known issues)", "ok": None})
    rows = [{"name": c.name, "description": c.description, "expected": c.expected, "as_clip": c.as_clip,
             "conversion": c.conversion, "outcomes": outcomes[c.name]} for c in cases]
    return rows, {"seconds": {k: round(v, 2) for k, v in seconds.items()}, "one_hour_decode": long_decode,
                  "evaluate": evaluated,
                  "predict_lines": len(records), "predict_inputs": len(inputs)}


# Decompression bombs: small compressed files of many channels at a high rate (name, format, subtype, rate,
# channels, seconds, what it shows).
BOMBS = [
    ("flac_384k_8ch_60s", "FLAC", "PCM_16", 384000, 8, 60, "the issue's bomb"),
    ("ogg_192k_8ch_60s", "OGG", "VORBIS", 192000, 8, 60, "OGG/Vorbis (libvorbis writes at most 192 kHz)"),
    ("flac_384k_8ch_20s", "FLAC", "PCM_16", 384000, 8, 20, "under the service's decode cap: decoded"),
]

# Run in a fresh interpreter per measurement; the peak RSS (VmHWM, reset through /proc/self/clear_refs after the
# imports) then belongs to that decode alone. tracemalloc sees numpy's allocations, not libsndfile's or soxr's.
_MEASURE = r"""
import json, sys, time, tracemalloc
import numpy as np, soundfile as sf
from ser_hf.audio import load_audio
from ser_hf.service.decoding import decode_upload
from ser_hf.service.settings import ServiceSettings
mode, path = sys.argv[1], sys.argv[2]
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
data = open(path, "rb").read()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:  # reset the peak (VmHWM) to the current RSS
    refs.write("5")
tracemalloc.start()
start = time.perf_counter()
if mode == "whole":  # what ser_hf did before: every channel of the whole file as float32
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = wave.mean(axis=1, dtype=np.float32)
elif mode == "load_audio":  # ser-hf predict, EmotionRecognizer.load, the corpus loaders
    wave = load_audio(path, 16000)
else:  # the service's decoder, were the request admitted
    wave = decode_upload(data, "bomb", ServiceSettings(max_duration=600), 16000)[0]
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1]
grown = status("VmHWM") - before
print(json.dumps({"seconds": round(seconds, 2), "traced_peak_mb": round(traced / 1e6, 1),
                  "rss_growth_mb": round(grown / 1e6, 1), "output_mb": round(wave.nbytes / 1e6, 1)}))
"""


def _write_bomb(path: Path, format: str, subtype: str, rate: int, channels: int, seconds: int) -> None:
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format=format, subtype=subtype) as sound:
        for _ in range(seconds):
            sound.write(np.zeros((rate, channels), np.float32))


def _measure(mode: str, path: Path) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MEASURE, mode, str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _server_round(url: str, pid: int, path: Path, concurrent: int) -> dict:
    """``concurrent`` simultaneous uploads of one bomb: the answers and the server's peak RSS growth."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from ser_hf.service.testing import peak_rss_bytes

    data = path.read_bytes()
    before = peak_rss_bytes(pid) or 0

    def post(_: int) -> httpx.Response:
        return httpx.post(url + "/predict", files={"file": (path.name, data)}, timeout=300)

    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(pool.map(post, range(concurrent)))
    return {"statuses": [r.status_code for r in answers], "detail": answers[0].json().get("detail"),
            "server_peak_rss_growth_mb": round(((peak_rss_bytes(pid) or 0) - before) / 1e6, 1)}


def run_bombs(root: Path, concurrent: int = 4) -> list[dict]:
    """Each bomb decoded whole (the old way), by load_audio and by the service's decoder, each in a fresh
    process; then ``concurrent`` simultaneous uploads to a running ``ser-hf serve`` (default limits)."""
    import httpx

    from ser_hf.service.testing import running_server
    from ser_hf.testing.models import tiny_classifier

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, format, subtype, rate, channels, seconds, note in BOMBS:
        path = root / f"{name}.{format.lower()}"
        _write_bomb(path, format, subtype, rate, channels, seconds)
        rows.append({"name": name, "note": note, "file_kb": round(path.stat().st_size / 1e3, 1),
                     "float32_mb": round(rate * channels * seconds * 4 / 1e6, 1), "path": path,
                     **{mode: _measure(mode, path) for mode in ("whole", "load_audio", "service")}})
    checkpoint = tiny_classifier("wav2vec2", root / "bomb-model", ["neutral", "happy", "sad", "angry"])
    with running_server(checkpoint, env={"OMP_NUM_THREADS": "1"}) as server:
        warm = root / "warm.wav"
        _write_bomb(warm, "WAV", "PCM_16", 16000, 1, 1)
        httpx.post(server.url + "/predict", files={"file": ("warm.wav", warm.read_bytes())}, timeout=300)
        for row in rows:
            row["server"] = _server_round(server.url, server.pid, row.pop("path"), concurrent)
    return rows


def bombs_markdown(rows: list[dict], concurrent: int = 4) -> str:
    lines = ["| bomb | file | as float32 | decoded whole (before): peak RSS | `load_audio`: peak RSS / numpy peak | "
             f"service decoder: peak RSS / numpy peak | {concurrent} uploads at once to `ser-hf serve` |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        server = row["server"]
        statuses = ", ".join(f"{n} x {code}" for code, n in sorted(
            {code: server["statuses"].count(code) for code in server["statuses"]}.items()))
        lines.append(
            f"| {row['name']} ({row['note']}) | {row['file_kb']:.0f} KB | {row['float32_mb']:.0f} MB | "
            f"{row['whole']['rss_growth_mb']:.0f} MB | {row['load_audio']['rss_growth_mb']:.1f} MB / "
            f"{row['load_audio']['traced_peak_mb']:.1f} MB | {row['service']['rss_growth_mb']:.1f} MB / "
            f"{row['service']['traced_peak_mb']:.1f} MB | {statuses}; server peak RSS +"
            f"{server['server_peak_rss_growth_mb']:.0f} MB |")
    return "\n".join(lines)


def run_fuzz(examples: int) -> dict:
    """The hypothesis strategies of tests/test_fuzz_audio.py, called directly with ``examples`` each."""
    os.environ["SER_HF_FUZZ_EXAMPLES"] = str(examples)
    path = Path(__file__).resolve().parents[1] / "tests" / "test_fuzz_audio.py"
    spec = importlib.util.spec_from_file_location("test_fuzz_audio", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    strategies = [module.test_arbitrary_bytes, module.test_wav_header_fields, module.test_mutated_valid_files]
    start, failures = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="ser_hf_fuzz_") as folder:
        for test in strategies:
            try:
                test(Path(folder))
            except Exception as err:  # noqa: BLE001 - recorded, not raised: the figure is the count
                failures.append(f"{test.__name__}: {type(err).__name__}: {str(err)[:300]}")
    return {"strategies": [t.__name__ for t in strategies], "examples_per_strategy": examples,
            "examples": examples * len(strategies), "failures": failures,
            "seconds": round(time.perf_counter() - start, 1)}


def markdown(rows: list, extra: dict, fuzz: dict) -> str:
    columns = list(ENTRY_POINTS)
    lines = ["| input | expected | " + " | ".join(ENTRY_POINTS[c][0] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for row in rows:
        expected = row["expected"] if row["expected"] == row["as_clip"] else f"{row['expected']} (clip: {row['as_clip']})"
        cells = []
        for column in columns:
            outcome = row["outcomes"].get(column, {"result": "", "ok": None})
            mark = {True: " ✓", False: " ✗", None: ""}[outcome["ok"]]
            cells.append(f"{outcome['result']}{mark}")
        lines.append(f"| {row['name']}: {row['description']} | {expected} | " + " | ".join(cells) + " |")
    totals, runs, documented = [], 0, 0
    for column in columns:
        tried = [r["outcomes"][column] for r in rows if r["outcomes"][column]["ok"] is not None]
        good = sum(o["ok"] for o in tried)
        totals.append(f"{len(tried)} inputs tried, {good} as documented")
        runs, documented = runs + len(tried), documented + good
    lines.append("| **total** | | " + " | ".join(totals) + " |")
    lines += ["", f"In all: {len(rows)} inputs, {runs} runs through {len(columns)} entry points, {documented} as "
                  f"documented, {runs - documented} not.",
              f"Fuzzing `load_audio` and `audio_info`: {fuzz['examples']} generated inputs "
                  f"({fuzz['examples_per_strategy']} per strategy: {', '.join(fuzz['strategies'])}) in "
                  f"{fuzz['seconds']} s; {len(fuzz['failures'])} raised anything but AudioError.",
              *([f"Decoding the one-hour clip ({extra['one_hour_decode']['file_mb']:.0f} MB, 8 kHz int16) to 16 kHz "
                 f"float32 took {extra['one_hour_decode']['seconds']} s; the largest numpy allocations traced at once: "
                 f"{extra['one_hour_decode']['peak_traced_mb']} MB (the output alone: "
                 f"{extra['one_hour_decode']['output_mb']} MB)."] if extra["one_hour_decode"] else []),
              f"`ser-hf predict` wrote {extra['predict_lines']} complete records for {extra['predict_inputs']} inputs; "
              f"evaluate scored {extra['evaluate']['num_samples']} of the {extra['evaluate']['clips_loaded']} "
              f"clips the lenient loader kept."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-long", action="store_true", help="leave out the one-hour clip")
    parser.add_argument("--fuzz-examples", type=int, default=500, help="hypothesis examples per strategy (500)")
    parser.add_argument("--only-bombs", action="store_true", help="run the decompression bombs only")
    parser.add_argument("--only-hostile", action="store_true",
                        help="run the hostile names, --out, checkpoint and recipe section only")
    args = parser.parse_args()
    if args.only_hostile:
        with tempfile.TemporaryDirectory(prefix="ser_hf_robustness_") as tmp:
            hostile = run_hostile(Path(tmp) / "hostile")
        tables = hostile_markdown(hostile)
        write_result("robustness_hostile", {"hostile": hostile, "hostile_markdown": tables})
        print("\n\n".join(tables.values()))
        return
    with tempfile.TemporaryDirectory(prefix="ser_hf_robustness_") as tmp:
        bombs = run_bombs(Path(tmp) / "bombs")
        rows, extra = ([], {}) if args.only_bombs else run_inputs(Path(tmp), include_long=not args.no_long)
        hostile = None if args.only_bombs else run_hostile(Path(tmp) / "hostile")
    bomb_table = bombs_markdown(bombs)
    if args.only_bombs:
        write_result("robustness_bombs", {"bombs": bombs, "markdown": bomb_table})
        print(bomb_table)
        return
    fuzz = run_fuzz(args.fuzz_examples)
    table = markdown(rows, extra, fuzz)
    tables = hostile_markdown(hostile)
    write_result("robustness_inputs", {"inputs": rows, **extra, "fuzz": fuzz, "markdown": table, "bombs": bombs,
                                       "bombs_markdown": bomb_table, "hostile": hostile, "hostile_markdown": tables})
    print(table)
    print()
    print(bomb_table)
    print()
    print("\n\n".join(tables.values()))


if __name__ == "__main__":
    main()
