"""``ser-hf predict``: emotions of many audio files into a JSONL or CSV file, resumable."""

from __future__ import annotations

import argparse
import json

from ser_hf.inference.jobs import FORMATS, predict_files

EPILOG = """\
examples:
  ser-hf predict --model outputs/rav4 recordings/ --out predictions.jsonl
  ser-hf predict --model outputs/rav4 'calls/**/*.flac' manifest.csv --out predictions.csv --top-k 2

Inputs are files, folders (searched recursively for audio), glob patterns (quote them) and manifest
CSVs with a 'path' column. Run the same command again to resume: files already in --out are skipped.
A file that cannot be decoded is written as {"path", "error"} and the job goes on."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict the emotion of audio files into a JSONL/CSV file (resumable)",
        description="Predict the emotion of every input audio file with a checkpoint, preset or Hub model.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="checkpoint directory, preset name (see `ser-hf models list`) or Hub id")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, glob patterns or manifest CSVs")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file; rerun with the same file to resume")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: csv for a .csv --out, else jsonl)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="clips per forward pass (default 8)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="emotions kept per file (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    summary = predict_files(args.model, args.inputs, args.out, format=args.format, batch_size=args.batch_size,
                            top_k=args.top_k, progress=not args.no_progress)
    print(json.dumps(summary))
    return 0  # unreadable files are error records in --out, counted in the summary
