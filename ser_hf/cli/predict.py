"""``ser-hf predict``: emotions of many audio files into a JSONL or CSV file, resumable, data-parallel.

Example:
    ```bash
    ser-hf predict --model outputs/rav4 recordings/ --out predictions.jsonl --fail-on-error
    ser-hf predict --model outputs/rav4 interviews/ --out timelines.jsonl --window 3 --hop 1
    accelerate launch --multi_gpu --num_processes 2 -m ser_hf predict --model outputs/rav4 recordings/ --out p.jsonl
    ```
"""

from __future__ import annotations

import argparse
import json
import sys

from ser_hf.cli.data import add_dataset_arguments, dataset_source

# ser_hf.inference.jobs.FORMATS, spelled out: importing jobs pulls in torch and transformers (seconds), which
# every `ser-hf` command would pay while building its parser. tests/test_predict_cli.py checks they agree.
FORMAT_CHOICES = ("jsonl", "csv")
# ser_hf.inference.streaming.DEFAULT_VAD_THRESHOLD_DB, spelled out for the same reason (checked by the same test file).
DEFAULT_VAD_THRESHOLD_DB = -40.0
#: What --vad-threshold-db takes to score every window (no silence gate).
NO_GATE = ("none", "off")

#: Exit status of a job that finished but recorded unreadable files, with --fail-on-error (2 is a usage error).
EXIT_ERROR_RECORDS = 1

EPILOG = """\
examples:
  ser-hf predict --model outputs/rav4 recordings/ --out predictions.jsonl
  ser-hf predict --model outputs/rav4 'calls/**/*.flac' manifest.csv --out predictions.csv --top-k 2
  ser-hf predict --model outputs/rav4 interviews/ --out timelines.jsonl --window 3 --hop 1
  accelerate launch --multi_gpu --num_processes 4 -m ser_hf predict --model outputs/rav4 recordings/ --out p.jsonl

Inputs are files, folders (searched recursively for audio), glob patterns (quote them) and manifest
CSVs with a 'path' column. Run the same command again to resume: files already in --out are skipped.
A file that cannot be decoded (or whose scores are not finite) is written as {"path", "error"} and the
job goes on. --out must be a new file or an earlier output of ser-hf predict (a JSONL output starts
with a {"ser_hf_predictions": 1, ...} header line): any other existing file, and any input, is refused
and left as it was, and so is an output of another job: another model (or the same checkpoint path
holding other files), other --top-k, speaker options, --test-time-copies or --window/--hop/
--vad-threshold-db (a job with --window never resumes one without, nor the other way round). A CSV
records its job in .<name>.job.json beside it. One job per --out: a second job on an --out being written is refused (a
lock, .<name>.lock, that a killed job never leaves blocking). A file name that is not UTF-8 is
recorded with its bytes as \\xNN in "path" and exactly, base64-encoded, in "path_base64".

Emotions over time (--window): without it each file is one clip of at most 300 s (a longer one becomes an
error record). With it each file is scored in windows of --window seconds every --hop seconds
(EmotionRecognizer.predict_long: a file of any length, read block by block), windows more than
--vad-threshold-db below the file's loudest sample skipped as silence. One JSONL record per file:
{"path", "label", "score", "scores" (the overall emotion: voiced windows averaged, weighted by duration),
"silent" (true: every window was silence; label, score and scores are then null), "duration" (seconds),
"timeline": [{"start", "end", "label", "score", "scores"}, ...], "skipped": [[start, end], ...]}; --top-k applies
to every window. Window, hop and gate are part of the job: a resume with others is refused. JSONL only (a CSV
row cannot hold a timeline); with --dataset_name and under accelerate launch as without it. --chunk-size
defaults to 1 here: each timeline is written as soon as its file is scored. With --speaker-pattern or
--speaker-column (below) each speaker is enrolled from all their voiced windows in the job, then each of their
files' windows is scored for them (the encoder runs once per window; records and windows gain "adapted").

Scale-out: under `accelerate launch` (or torchrun) with several processes, each process predicts a
block of the files into OUT.shard-<rank>-of-<world> beside --out, and the main process merges the
shards into --out in input order and removes them. Two CPU processes without a GPU:
  CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes 2 -m ser_hf predict ...
(`accelerate launch --cpu --num_processes 2` starts only one process.) A rerun with any number of
processes skips what --out and leftover shards hold. Across machines --out must be on a shared filesystem.

Speaker-adaptive jobs (a model trained with probe_speaker_adaptation: true): --speaker-pattern or
--speaker-column groups the inputs by speaker; each speaker is enrolled from all of their clips in the
job (unlabelled), then their clips are scored with their voice offset removed. JSONL records gain
"speaker" (bytes that are not UTF-8 as \\xNN, as in "path") and "adapted" (false: too few clips, or
adaptation off for this model; the global model scored it); CSV gets both columns. Files with no speaker
are scored by the global model (a warning counts them; none at all is refused). A speaker's clips are
encoded --chunk-size at a time (only their pooled states are kept), then scored and written
--chunk-size at a time: a kill loses at most one chunk of records. With --window, a speaker's files are
read twice (their windows' states first, then their timelines, written file by file).
  ser-hf predict --model outputs/rav8-adaptive ../shared/data/ravdess --speaker-pattern 'Actor_(\\d+)' --out p.jsonl

A `datasets` dataset instead of files: --dataset_name (a Hub id, a save_to_disk folder, parquet/arrow
tables or an audiofolder directory) predicts every row of its --eval_split_name split (default validation).
Each row gets one file of its own under $SER_HF_CACHE/datasets/ (embedded bytes written once; a path cell
linked), so the job keeps exactly one record per row and a rerun resumes; JSONL records start with
"dataset", "split" and "row" (CSV: columns of those names). A cell that is not audio becomes that row's error record.
  ser-hf predict --model outputs/rav4 --dataset_name my_parquet_dir --eval_split_name test --out p.jsonl

exit status: 0 when the job finished, even if some files became error records (they are data: the
summary line counts them in "errors" and "error_records"); with --fail-on-error, 1 if any input's
record is an error (from this run or an earlier one); 2 for bad arguments or inputs."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict the emotion of audio files into a JSONL/CSV file (resumable, data-parallel)",
        description="Predict the emotion of every input audio file with a checkpoint, preset or Hub model.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="checkpoint directory, preset name (see `ser-hf models list`) or Hub id")
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="audio files, folders, glob patterns or manifest CSVs (or --dataset_name instead)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output file; rerun with the same file to resume (~ is expanded, also in --out=~/p.jsonl)")
    parser.add_argument("--format", choices=FORMAT_CHOICES, default=None,
                        help="output format (default: csv for a .csv --out, else jsonl)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="clips per forward pass (default 8)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="emotions kept per file (default: all)")
    parser.add_argument("--chunk-size", type=int, default=None, metavar="N",
                        help="files predicted between two writes of the output: at most this much work is lost "
                             "to a crash (default 64; 1 with --window)")
    parser.add_argument("--fail-on-error", action="store_true",
                        help=f"exit with status {EXIT_ERROR_RECORDS} if any input could not be decoded or scored "
                             f"(for CI); the output is written all the same")
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="where one process runs the model: cpu (default), cuda, cuda:1, mps; under "
                             "accelerate launch each process uses the device accelerate assigns")
    parser.add_argument("--speaker-pattern", metavar="REGEX", default=None,
                        help="speaker-adaptive: a regex whose first group (required) in each path names the speaker, e.g. "
                             "'Actor_(\\d+)'; each speaker is enrolled from all their clips in the job, then scored "
                             "(needs a model trained with probe_speaker_adaptation)")
    parser.add_argument("--speaker-column", metavar="COLUMN", default=None,
                        help="speaker-adaptive: the column of the manifest CSV inputs that names each clip's speaker")
    parser.add_argument("--test-time-copies", action="store_true",
                        help="also score each file played 0.9x/1.1x as fast, or with light noise: the copies the "
                             "model's probe trained on (probe_speed_copies, probe_noise_copies), log-probabilities "
                             "averaged. 1 + copies times slower; measured +0.4 to +1.8 UA on RAVDESS and -1.2 on "
                             "URDU (README, 'Test-time copies'): check it with ser-hf cv, whose summary reports it. "
                             "With --speaker-pattern/--speaker-column each copy gets its own speaker offset")
    parser.add_argument("--window", type=float, default=None, metavar="SECONDS",
                        help="score each file's emotions over time instead of as one clip: windows of SECONDS (0.1 to "
                             "300), a file of any length; one JSONL record per file with its overall emotion and "
                             "'timeline' (see below)")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                        help="with --window: seconds between window starts, 0.1 to --window (default 1, or --window "
                             "when shorter)")
    parser.add_argument("--vad-threshold-db", type=_gate_level, default=None, metavar="DB",
                        help=f"with --window: skip windows more than DB decibels below the file's loudest sample as "
                             f"silence, -200 to 0 (default {DEFAULT_VAD_THRESHOLD_DB:g}); 'none' scores every window")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_dataset_arguments(parser, columns=("audio",), instead_of="input files")
    parser.set_defaults(func=run_predict)


def _gate_level(text: str) -> float | str:
    """--vad-threshold-db: a level in dB, or 'none' (kept as the word: argparse's default None means not given)."""
    if text.strip().lower() in NO_GATE:
        return NO_GATE[0]
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level in dB from -200 to 0 (e.g. -40), or 'none' to score "
                                         f"every window; got {text!r}") from None


def _window_options(args: argparse.Namespace) -> dict:
    """predict_files' window keywords, and --chunk-size's default, from the flags (refused without --window)."""
    from ser_hf.inference.timeline_records import refuse_without_window

    if args.window is None:  # here, not in predict_files: only the command line knows a flag given its default value
        refuse_without_window([name for name in ("hop", "vad_threshold_db") if getattr(args, name) is not None])
    gate = args.vad_threshold_db
    if gate is None or gate == NO_GATE[0]:
        gate = DEFAULT_VAD_THRESHOLD_DB if gate is None else None
    # A long recording is minutes of work: a timeline job writes each file's record as soon as it is scored.
    chunk_size = args.chunk_size if args.chunk_size is not None else 64 if args.window is None else 1
    return {"window": args.window, "hop": args.hop, "vad_threshold_db": gate, "chunk_size": chunk_size}


def run_predict(args: argparse.Namespace) -> int:
    from ser_hf.errors import SERError
    from ser_hf.inference.jobs import predict_files

    inputs, fields = args.inputs, None
    windows = _window_options(args)  # before a dataset is opened
    if bool(inputs) == (args.dataset_name is not None):
        raise SERError("ser-hf predict needs input files (INPUT ...) or --dataset_name NAME, not "
                       f"{'both' if inputs else 'neither'}.")
    if args.dataset_name is not None:
        from ser_hf.corpora.hf_dataset import row_files

        fields = row_files(dataset_source(args), args.eval_split_name)
        inputs = list(fields)
    summary = predict_files(args.model, inputs, args.out, format=args.format, batch_size=args.batch_size,
                            top_k=args.top_k, progress=not args.no_progress,
                            device=args.device, speaker_pattern=args.speaker_pattern,
                            speaker_column=args.speaker_column, record_fields=fields,
                            test_time_copies=args.test_time_copies, **windows)
    if summary.get("process_index", 0) != 0:
        return 0  # the main process reports the whole job
    print(json.dumps(summary))
    if summary["error_records"]:
        print(f"ser-hf predict: {summary['error_records']} of {summary['inputs']} input(s) could not be decoded or "
              f"scored; their records in {summary['out']} hold the reason in 'error'.", file=sys.stderr)
        if args.fail_on_error:
            return EXIT_ERROR_RECORDS
    return 0
