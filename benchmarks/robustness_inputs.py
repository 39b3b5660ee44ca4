"""The bad-input corpus through every entry point that reads audio, and the decoding fuzzer: ROBUSTNESS.md's figures.

Writes ``benchmarks/results/robustness_inputs.json`` and prints the Markdown outcome table (one row per
case of :func:`ser_hf.testing.bad_audio.make_bad_inputs`, one column per entry point) and the summary
figures. A cell is what the entry point did; ``✓`` marks the documented outcome (decoded with the
documented conversion, or an error that names the file), ``✗`` anything else.

    .venv/bin/python benchmarks/robustness_inputs.py [--no-long] [--fuzz-examples N]
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
    from ser_hf.baseline.features import FeatureConfig
    from ser_hf.corpora import load_corpus
    from ser_hf.evaluation.run import evaluate_checkpoint
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ser_hf_robustness_") as tmp:
        rows, extra = run_inputs(Path(tmp), include_long=not args.no_long)
    fuzz = run_fuzz(args.fuzz_examples)
    table = markdown(rows, extra, fuzz)
    write_result("robustness_inputs", {"inputs": rows, **extra, "fuzz": fuzz, "markdown": table})
    print(table)


if __name__ == "__main__":
    main()
