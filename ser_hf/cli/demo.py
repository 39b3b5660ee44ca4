"""``ser-hf demo``: train, evaluate and try a classifier in one command (offline, a few minutes on a CPU)."""

from __future__ import annotations

import argparse

#: ser_hf.demo.RELEASED_MODEL, spelled out: importing ser_hf.demo pulls in torch while the parser is built.
RELEASED_MODEL = "emotion-whisper-base"

DESCRIPTION = """\
Train a frozen-probe emotion classifier on whisper-tiny.en (offline preset), evaluate it on speakers
it never heard, save a standard Hugging Face checkpoint and classify one test clip with
transformers.pipeline. Without --corpus it uses ser_hf's built-in SYNTHETIC corpus (generated
speech-like signals, not real speech: its scores only show the machinery works). It ends by running
the ready-made emotion-whisper-base model shipped with ser_hf (trained on real speech) on that clip."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train + evaluate + predict end to end (built-in synthetic corpus by default)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  ser-hf demo\n  ser-hf demo --corpus urdu --data-dir ../shared/data/urdu",
    )
    parser.add_argument("--corpus", default="synthetic", help="corpus name (default: synthetic)")
    parser.add_argument("--data-dir", default=None, help="folder of the corpus (synthetic: generated if absent)")
    parser.add_argument("--model", default="whisper-tiny.en", help="preset, checkpoint dir or Hub id")
    parser.add_argument("--output-dir", default="outputs/demo", help="where the checkpoint and report go")
    parser.add_argument("--released-model", default=RELEASED_MODEL, metavar="NAME",
                        help="shipped model to run on the sample clip at the end (default emotion-whisper-base; "
                             "'none' skips it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ser_hf.demo import run_demo

    released = None if args.released_model.lower() == "none" else args.released_model
    result = run_demo(args.corpus, args.data_dir, args.model, args.output_dir, released_model=released)
    if args.corpus == "synthetic":
        print("NOTE: synthetic corpus (generated signals, not real speech); scores only show the pipeline works.")
    print(result.report.format_table())
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"report:     {result.checkpoint}/eval/report.md (+ confusion_matrix.png)")
    print(f"\nsample: {result.sample_path}  (true label: {result.sample_label})")
    for item in result.sample_prediction:
        print(f"  {item['label']:10s} {item['score']:.3f}")
    if result.released_model is not None:
        _print_released(result, synthetic=args.corpus == "synthetic")
    return 0


def _print_released(result, synthetic: bool) -> None:
    name = result.released_model
    what = ("a SYNTHETIC clip (generated signal, not real speech: this only shows the model runs)" if synthetic
            else "the same clip")
    print(f"\nShipped model {name} (trained on real speech, ready after install) on {what}:")
    if result.released_prediction is None:
        print(f"  could not run: {result.released_error}")
        return
    print(f"  clip: {result.sample_path}  (true label: {result.sample_label})")
    for label, score in result.released_prediction["scores"].items():
        print(f"  {label:10s} {score:.3f}")
    print(f"On your own recording: ser-hf predict --model {name} my_recording.wav --out predictions.jsonl")
