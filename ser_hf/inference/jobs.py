"""Resumable prediction jobs over many audio files: ``ser-hf predict``.

:func:`predict_files` expands the inputs (files, directories searched recursively for audio, glob
patterns, manifest CSVs with a ``path`` column), skips every file the output already records, and
predicts the rest in chunks with an :class:`~ser_hf.inference.recognizer.EmotionRecognizer`. A file that
cannot be decoded or scored becomes an error record ``{"path", "error"}`` and the job goes on. This module runs the
job (inputs, resume, lock, shards, merge); the records come from :mod:`ser_hf.inference.chunk_records` (or, for a
speaker-adaptive job, :mod:`ser_hf.inference.speaker_jobs`), the files' formats are
:mod:`ser_hf.inference.outputs` and the resume checks :mod:`ser_hf.inference.job_identity`.

Timeline jobs (``window=``, ``ser-hf predict --window``): each file is scored with
:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` instead, a file of any length, into one record
holding its overall emotion and its windows (:mod:`ser_hf.inference.timeline_records`; with the speaker options,
:mod:`ser_hf.inference.timeline_speakers`); JSONL only, the window settings recorded in the header. ``--device`` is
checked by :mod:`ser_hf.inference.devices`.

Only ser_hf's own outputs are resumed (:mod:`ser_hf.inference.outputs`): a JSONL output starts with a
``{"ser_hf_predictions": 1, "job": ...}`` header line, a CSV output has exactly ser_hf's columns. Any other
existing file given as ``out`` is refused and left as it was, as is an ``out`` that is one of the inputs
(compared through symlinks and hard links); folders and glob patterns never pick up the output, its shards
or its temporary file. A full disk or an unwritable folder gives an error naming the file; what was written
before stays.

Crash safety, so a rerun after a kill or a crash finishes the job exactly once per file:

- **JSONL** (default): each chunk's complete records are appended, flushed and ``fsync``-ed. A kill
  mid-write can leave only a torn last line; on resume it is detected (no newline, or not JSON),
  cut off (the file is truncated to the last complete line) and its files are predicted again.
- **CSV**: a CSV cannot be appended safely with a header, so every chunk rewrites the whole file into
  a temporary file beside it (fsync-ed) and swaps it in with ``os.replace``, which is atomic: the file
  is always the old or the new complete table. Columns: ``path, label, score, error``, ``test_time_copies``
  (``true``; only in an output scored with them), ``dataset, split, row`` (``--dataset_name`` jobs), ``speaker,
  adapted`` (speaker-adaptive jobs), one probability column per emotion (``prob_<emotion>``, blank outside
  ``top_k``) and ``path_base64``. The job goes to the sidecar ``.<name>.job.json``, so the CSV stays a plain CSV.

One job per output: a job holds an exclusive lock (``fcntl.flock`` on ``.<name>.lock`` beside ``OUT``) until it
ends, and a second job on the same ``OUT`` is refused, naming it (the kernel releases the lock of a killed job: the
lock file left by ``kill -9`` blocks nothing). A job resumes only its own work: the model's path, a SHA-256 of the
files a prediction reads (a checkpoint replaced at the same path is another model; reports written into it are not), test-time copies, ``top_k`` and the speaker
options are recorded (JSONL and shard header lines; a CSV's sidecar ``.<name>.job.json``) and checked against
``OUT`` and every leftover shard before anything changes (see :mod:`ser_hf.inference.job_identity`).

Records are keyed by absolute path (:func:`ser_hf.paths.path_key`: ``os.path.abspath``, symlinks not
resolved, but a ``..`` after a symlinked folder taken as the kernel takes it, from the folder the link points to). A file name that is not
UTF-8 is recorded like any other (``path`` shows its undecodable bytes as ``\\xNN``, ``path_base64`` holds
them exactly; see :mod:`ser_hf.paths`), and a resumed job recognises it by those bytes.

Scale-out: under ``accelerate launch`` (or ``torchrun``) with several processes, on GPUs, CPU processes or
several machines, the files still to do are cut into one contiguous block per process. Each process
writes its block to its own shard ``OUT.shard-<rank>-of-<world>`` beside ``OUT`` (always JSONL, appended and
``fsync``-ed per chunk like the JSONL output); after a barrier the main process merges the shards into
``OUT`` (atomically: temporary file, then ``os.replace``) in input order, each input once, and removes them.
A rerun, with any number of processes, skips what ``OUT`` and any leftover shards hold, and merges the
leftovers. ``OUT`` must lie on a filesystem every process sees (a shared one across machines).

Example:
    ```python
    >>> from ser_hf.inference.jobs import predict_files
    >>> predict_files("outputs/rav4", ["recordings/", "extra/*.flac"], "predictions.jsonl")  # doctest: +SKIP
    {'out': 'predictions.jsonl', 'inputs': 120, 'skipped': 0, 'predicted': 119, 'errors': 1, 'error_records': 1}

    ```

    The same job on two GPUs (or ``--multi_gpu`` with ``CUDA_VISIBLE_DEVICES=""`` for two CPU processes)::

        accelerate launch --multi_gpu --num_processes 2 -m ser_hf predict --model outputs/rav4 \\
            recordings/ --out predictions.jsonl
"""

from __future__ import annotations

import contextlib
import errno
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ser_hf._io import temporary_file
from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import ChunkScorer, is_error, predict_chunk, predict_into
from ser_hf.inference.devices import check_device as check_device  # its old import path
from ser_hf.inference.finished_inputs import unfinished_inputs
from ser_hf.inference.inputs import expand_inputs, input_paths, speakers_of
from ser_hf.inference.job_identity import check_job_files, check_same_job, job_header_for, lock_output
from ser_hf.inference.outputs import (
    FORMATS,
    append_jsonl,
    check_output_path,
    format_for,
    prepare_jsonl,
    prepare_shards,
    read_records,
    read_shards,
    record_key,
    shard_files,
    shard_path,
    write_csv,
    write_jsonl,
)
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.inference.speaker_jobs import check_finished_speakers, predict_by_speaker
from ser_hf.inference.streaming import DEFAULT_VAD_THRESHOLD_DB
from ser_hf.inference.timeline_records import (
    TimelineSettings,
    check_timeline_job,
    timeline_scorer,
    timeline_settings,
)
from ser_hf.inference.timeline_speakers import predict_timelines_by_speaker
from ser_hf.paths import display_path, path_text, printable
from ser_hf.processes import Processes, launched_processes
from ser_hf.progress import progress_bar
from ser_hf.ranges import COUNT

__all__ = ["FORMATS", "expand_inputs", "predict_files", "read_records", "shard_files"]



# ------------------------------------------------------------------------------------------------ output

@contextlib.contextmanager
def _writing(out: Path, kept: Callable[[], str]) -> Iterator[None]:
    """Turn an OSError while writing the output (full disk, no permission) into an SERError naming it."""
    try:
        yield
    except OSError as err:
        name = display_path(err.filename) if err.filename else display_path(out)
        reason = printable(err.strerror or str(err))
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SERError(f"the disk is full: writing {name!r} failed ({reason}). {kept()} Free some space (or "
                           f"choose --out on another disk) and run the same command again: it resumes.") from err
        raise SERError(f"cannot write the output {name!r} ({reason}). {kept()} Choose --out in a folder you can "
                       f"write to.") from err


def _check_writable(out: Path) -> None:
    """Fail before the model loads, not after the first chunk: create the folder, try the output and its temp file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        with out.open("ab"):  # opening to append changes nothing
            pass
    temporary_file(out).unlink()  # CSV outputs and merges are written beside it, then swapped in


def _in_input_order(records: Iterable[dict[str, Any]], paths: Sequence[str]) -> list[dict[str, Any]]:
    """One record per path (the first seen wins), inputs in input order after any records of other files."""
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        unique.setdefault(record_key(record), record)
    index = {path: i for i, path in enumerate(paths)}
    return sorted(unique.values(), key=lambda record: index.get(record_key(record), -1))


def _merge_shards(out: Path, chosen: str, paths: Sequence[str], labels: Callable[[], Sequence[str]],
                  header: dict[str, Any]) -> list[dict]:
    """Merge ``out`` and its shards into ``out`` (atomically, input order, each file once); remove the shards.

    ``labels`` gives the model's emotions for the CSV's ``prob_*`` columns (called for CSV only).

    A kill after the swap and before the removal leaves records in both places; the next merge keeps one.
    Returns the merged records.
    """
    shards = shard_files(out)
    if chosen == "csv":
        check_same_job(out, chosen, header["job"], labels())  # the rows kept must be over this model's emotions
    merged = _in_input_order(read_records(out, chosen) + read_shards(out), paths)
    with _writing(out, lambda: f"{display_path(out)!r} and the shard files are as they were; the next run merges them."):
        if chosen == "csv":
            write_csv(out, merged, labels(), header)
        else:
            write_jsonl(out, merged, header)
        for shard in shards:
            shard.unlink()
    return merged


# ------------------------------------------------------------------------------------------------ processes

def _block(items: Sequence[str], rank: int, world: int) -> list[str]:
    """Contiguous block ``rank`` of ``world`` (sizes differ by at most one, the larger ones first)."""
    size, extra = divmod(len(items), world)
    start = rank * size + min(rank, extra)
    return list(items[start: start + size + (rank < extra)])


# ------------------------------------------------------------------------------------------------ job

def _with_fields(record_fields: Mapping[str, Mapping[str, Any]] | None) -> Callable[[list[dict]], list[dict]]:
    """Adds each input's own fields (a dataset row's ``split`` and ``row``) to its records before they are written."""
    if not record_fields:
        return lambda records: records
    return lambda records: [{**record_fields.get(record_key(record), {}), **record} for record in records]


def _load(model: str | os.PathLike | EmotionRecognizer, batch_size: int, device: Any = None,
          test_time_copies: bool = False) -> EmotionRecognizer:
    recognizer = model if isinstance(model, EmotionRecognizer) else \
        EmotionRecognizer.from_pretrained(model, device=device, test_time_copies=test_time_copies)
    recognizer.batch_size = batch_size
    return recognizer


def _check_settings(chunk_size: Any, batch_size: Any, top_k: Any) -> tuple[int, int, int | None]:
    """Refuse a count that is not an integer >= 1 (``top_k`` may be None) before any work; returns them as ints.

    Checked here, not where they are used: a ``top_k=1.5`` found only when the first file is scored would turn every
    file of the job into an error record, after the model loaded.
    """
    checked = []
    for name, value, example in (("chunk_size", chunk_size, 64), ("batch_size", batch_size, 8), ("top_k", top_k, 2)):
        if name == "top_k" and value is None:
            checked.append(None)
            continue
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = int(value)  # np.int64(8) is a fine count; the job header needs a JSON int
        if value not in COUNT:  # COUNT also refuses bool, strings, None and floats such as 2.0
            also = ", or None to keep every emotion" if name == "top_k" else ""
            raise SERError(f"{name} must be {COUNT}, got {value!r} ({type(value).__name__}); e.g. {name}={example} "
                           f"(--{name.replace('_', '-')} {example}){also}.")
        checked.append(value)
    return checked[0], checked[1], checked[2]


def _error_records(records: Iterable[dict[str, Any]], paths: Sequence[str]) -> int:
    wanted = set(paths)
    return sum(is_error(record) for record in records if record_key(record) in wanted)



def predict_files(
    model: str | os.PathLike | EmotionRecognizer,
    inputs: str | os.PathLike | Iterable[str | os.PathLike | bytes],
    out: str | os.PathLike,
    *,
    format: str | None = None,
    batch_size: int = 8,
    top_k: int | None = None,
    chunk_size: int = 64,
    progress: bool = True,
    device: str | None = None,
    speaker_pattern: str | None = None,
    speaker_column: str | None = None,
    record_fields: Mapping[str, Mapping[str, Any]] | None = None,
    test_time_copies: bool = False,
    window: float | None = None,
    hop: float | None = None,
    vad_threshold_db: float | None = DEFAULT_VAD_THRESHOLD_DB,
) -> dict[str, Any]:
    """Predict the emotion of every input file into ``out``, resuming where an earlier run stopped.

    Under ``accelerate launch`` with several processes, each predicts one block of the files still to do
    and the main process merges the blocks into ``out`` (see the module docstring); every process must
    call this function with the same arguments.

    Args:
        model: A checkpoint directory, preset or Hub id (see :meth:`EmotionRecognizer.from_pretrained`),
            or a loaded :class:`EmotionRecognizer`.
        inputs: Files, directories, glob patterns and manifest CSVs (see :func:`expand_inputs`); a single str or
            os.PathLike is one input (``"clip.wav"``, ``Path("recordings")``), and bytes items are paths in the file
            system's encoding. Paths only: for audio in memory (arrays, ``(array, rate)`` pairs) use
            :meth:`EmotionRecognizer.predict`.
        out: Output file; files it (or a leftover shard of it) already records, by absolute path, are skipped.
        format: ``"jsonl"`` or ``"csv"`` (default: ``csv`` for a ``.csv`` name, else ``jsonl``).
        batch_size: Clips per forward pass (an integer >= 1).
        top_k: Emotions kept per record (an integer >= 1; default None: all).
        chunk_size: Files predicted between two writes of ``out`` (what a crash can lose at most; an integer >= 1).
        progress: Show a tqdm progress bar (on the main process only).
        device: Where a single process runs the model (default CPU; e.g. ``"cuda"``). Under ``accelerate
            launch`` each process takes the device accelerate gives it (its own GPU, or the CPU).
        speaker_pattern: Speaker-adaptive job: a regex whose first group (or whole match) in each path names
            the speaker; each speaker is enrolled from all their clips in the job, then scored (needs a
            checkpoint trained with ``probe_speaker_adaptation``; single process only).
        speaker_column: The same, with speakers from this column of the manifest CSV inputs.
        record_fields: Absolute input path -> fields its JSONL record starts with (``ser-hf predict
            --dataset_name`` gives each row's file its ``dataset``, ``split`` and ``row``; CSV keeps its columns).
        test_time_copies: Score every clip with the copies the model's probe trained on too (see
            :meth:`EmotionRecognizer.from_pretrained`); for a loaded recognizer, build it with them instead. The
            JSONL header records it, and a job is not resumed with the other setting.
        window: A timeline job: score each file in windows of this many seconds (0.1 to 300) with
            :meth:`EmotionRecognizer.predict_long`, a file of any length, into one record with the overall emotion,
            ``duration``, ``timeline`` and ``skipped`` (see :mod:`ser_hf.inference.timeline_records`); JSONL only.
            With the speaker options, each speaker is enrolled from all their voiced windows in the job, and their
            files' windows are scored for them (:mod:`ser_hf.inference.timeline_speakers`). None (default): each file is scored as one clip of at most 300 s. A long
            recording is minutes of work: ``chunk_size=1`` writes each record as soon as it is scored.
        hop: Seconds between window starts (0.1 to ``window``; default 1 s, or ``window`` when shorter).
        vad_threshold_db: Windows more than this many dB below the file's peak sample are skipped as silence (-200 to
            0, default -40); None scores every window. ``window``, ``hop`` and ``vad_threshold_db`` are recorded in
            the JSONL header: a job with other values (or a clip job) does not resume the output.

    Returns:
        ``{"out", "inputs", "skipped", "predicted", "errors", "error_records"}``: counts of this run
        (``skipped``: files already recorded; ``errors``: files of this run recorded as errors) and
        ``error_records``, the inputs whose record in ``out`` is an error, earlier runs included. With
        several processes ``"processes"`` and ``"process_index"`` are added, and only the main process's
        counts cover the whole job (the others count their own block).

    Raises:
        SERError: for bad inputs (see :func:`expand_inputs`): no inputs, or something that is not a path (an array, a
            mapping, bytes, None), a bad ``format``, a ``chunk_size``/``batch_size``/``top_k`` that is not an integer
            >= 1, ``window``/``hop``/``vad_threshold_db`` outside their ranges, ``hop``/``vad_threshold_db`` without
            ``window``, ``window`` with CSV (all refused before any work), an output
            file that ser-hf predict did not write, an output with other names (hard links), or a lock or job
            file beside it that is a symlink, a folder or not a regular file. Unreadable audio never raises: it is recorded.

    Example:
        ```python
        >>> summary = predict_files("outputs/rav4", ["calls/"], "calls.csv", top_k=2, chunk_size=16)  # doctest: +SKIP
        >>> summary["error_records"]  # files that could not be decoded, now or in an earlier run  # doctest: +SKIP
        0

        ```
    """
    out = path_text(out, "out")
    if not out:  # Path("") is the current folder
        raise SERError("out is an empty string; expected the output file, e.g. predictions.jsonl.")
    # The one place --out's ~ is expanded (the shell does not after '=': --out=~/p.jsonl); inputs expand their own.
    out = os.path.expanduser(out)
    check_output_path(out)  # before Path() drops a trailing separator
    out = Path(out)
    chosen = format_for(out, format)
    chunk_size, batch_size, top_k = _check_settings(chunk_size, batch_size, top_k)
    timeline = timeline_settings(window, hop, vad_threshold_db)
    check_timeline_job(timeline, chosen)
    inputs = input_paths(inputs)  # a list, read twice (expansion, speakers); "a.wav" alone is one input
    paths = expand_inputs(inputs, output=out)
    check_job_files(out, chosen)  # its lock and job file are regular files, it has no other names: before any work
    if test_time_copies and isinstance(model, EmotionRecognizer):
        raise SERError("test_time_copies=True needs a model path or name; a loaded EmotionRecognizer keeps its own "
                       "(build it with EmotionRecognizer.from_pretrained(..., test_time_copies=True)).")
    processes = launched_processes()
    speakers = None
    if speaker_pattern is not None or speaker_column is not None:
        if processes.world > 1:
            raise SERError("speaker-adaptive prediction (--speaker-pattern/--speaker-column) runs in one process: "
                           "every clip of a speaker is needed to enroll them. Run it without accelerate launch.")
        speakers = speakers_of(paths, inputs, pattern=speaker_pattern, column=speaker_column)
    if processes.world == 1 and not isinstance(model, EmotionRecognizer):
        check_device(device)
    copies = bool(test_time_copies or (isinstance(model, EmotionRecognizer) and model.test_time_copies))
    header = job_header_for(model, copies=copies, top_k=top_k, speaker_pattern=speaker_pattern,
                            speaker_column=speaker_column, timeline=timeline and timeline.job_entries())
    settings = {"batch_size": batch_size, "top_k": top_k, "chunk_size": chunk_size, "progress": progress,
                "fields": _with_fields(record_fields), "test_time_copies": test_time_copies,
                "score": predict_chunk if timeline is None else timeline_scorer(timeline, progress and processes.is_main)}
    if processes.world > 1:
        return _predict_sharded(model, paths, out, chosen, processes, header, **settings)
    with contextlib.ExitStack() as job:
        with _writing(out, lambda: "Nothing was changed."):  # an unwritable folder: a clear error
            job.enter_context(lock_output(out))  # a second job on this --out is refused until this one ends
        return _predict_single(model, paths, out, chosen, header, speakers, device=device, timeline=timeline,
                               **settings)


def _predict_single(model, paths: list[str], out: Path, chosen: str, header: dict,
                    speakers: dict[str, str | None] | None, *, device: Any, batch_size: int, top_k: int | None,
                    chunk_size: int, progress: bool, fields: Callable[[list[dict]], list[dict]],
                    test_time_copies: bool, score: ChunkScorer,
                    timeline: TimelineSettings | None = None) -> dict[str, Any]:
    """A one-process job, holding the lock on ``out`` (see :func:`predict_files`)."""
    check_same_job(out, chosen, header["job"])  # before anything changes; CSV labels once the model loads
    existing = read_records(out, chosen)  # refuses a file ser-hf predict did not write, before changing anything
    leftovers = read_shards(out)  # a killed multi-process run's work counts as done
    recorded = None  # each speaker's enrollment in the finished records
    if speakers is not None:  # before anything changes: finished records must be this job's speakers'
        recorded = check_finished_speakers(out, existing + leftovers, speakers)
    todo = unfinished_inputs(paths, existing + leftovers)
    summary = {"out": display_path(out), "inputs": len(paths), "skipped": len(paths) - len(todo), "predicted": 0,
               "errors": 0}
    recognizer, new = None, []
    if todo:
        with _writing(out, lambda: "Nothing was changed."):
            _check_writable(out)
            if chosen == "jsonl":
                prepare_jsonl(out, header)  # cut a torn last line (a kill); give an older output its header
        recognizer = _load(model, batch_size, device, test_time_copies)
        check_same_job(out, chosen, header["job"], recognizer.labels)
        rows = list(existing) if chosen == "csv" else []

        def write(records: list[dict]) -> None:
            records = fields(records)
            kept = f"The {len(existing) + len(new)} record(s) written before are kept in it."
            with _writing(out, lambda: kept):
                if chosen == "jsonl":
                    append_jsonl(out, records, header)
                else:
                    write_csv(out, rows + records, recognizer.labels, header)
                    rows.extend(records)
            new.extend(records)

        with progress_bar(progress, total=len(paths), initial=len(paths) - len(todo), desc="predict",
                          unit="file") as bar:
            if speakers is None:
                summary["errors"] = predict_into(recognizer, todo, write, top_k, chunk_size, bar, score)
            elif timeline is None:
                summary["errors"] = predict_by_speaker(recognizer, paths, todo, speakers, write, top_k, chunk_size,
                                                       bar, out, recorded)
            else:
                summary["errors"] = predict_timelines_by_speaker(recognizer, paths, todo, speakers, write, top_k, bar,
                                                                 out, timeline, progress, recorded)
        summary["predicted"] = len(todo) - summary["errors"]
    if leftovers:
        _merge_shards(out, chosen, paths, lambda: (recognizer or _load(model, batch_size)).labels, header)
    return {**summary, "error_records": _error_records(existing + leftovers + new, paths)}


def _predict_sharded(model, paths: list[str], out: Path, chosen: str, processes: Processes, header: dict, *,
                     batch_size: int, top_k: int | None, chunk_size: int, progress: bool,
                     fields: Callable[[list[dict]], list[dict]], test_time_copies: bool,
                     score: ChunkScorer) -> dict[str, Any]:
    """One process's part of a multi-process job (see :func:`predict_files`).

    The main process holds the lock on ``out`` for the whole job (each other process writes only its own shard);
    if it cannot take it, or refuses to resume, it fails and the launcher stops the others.
    """
    with contextlib.ExitStack() as job:
        recognizer = None
        if processes.is_main:
            with _writing(out, lambda: "Nothing was changed."):
                job.enter_context(lock_output(out))
            # The same resume checks as one process: the jobs of OUT and every shard; a CSV's emotions too.
            check_same_job(out, chosen, header["job"])
            if chosen == "csv":
                recognizer = _load(model, batch_size, device=processes.device, test_time_copies=test_time_copies)
                check_same_job(out, chosen, header["job"], recognizer.labels)
            # Only the main process changes OUT and leftover shards (cuts torn last lines, after checking they are
            # ser_hf's), before anyone reads them.
            with _writing(out, lambda: "Nothing was changed."):
                _check_writable(out)
                if chosen == "jsonl":
                    prepare_jsonl(out, header)
                prepare_shards(out, header)
        return _shard_and_merge(model, paths, out, chosen, processes, header, recognizer, batch_size=batch_size,
                                top_k=top_k, chunk_size=chunk_size, progress=progress, fields=fields,
                                test_time_copies=test_time_copies, score=score)


def _shard_and_merge(model, paths: list[str], out: Path, chosen: str, processes: Processes, header: dict,
                     recognizer: EmotionRecognizer | None, *, batch_size: int, top_k: int | None, chunk_size: int,
                     progress: bool, fields: Callable[[list[dict]], list[dict]],
                     test_time_copies: bool, score: ChunkScorer) -> dict[str, Any]:
    processes.barrier()
    todo = unfinished_inputs(paths, read_records(out, chosen) + read_shards(out))
    # Every process must have read OUT and the shards before any appends to a shard: all need the same todo.
    processes.barrier()
    block = _block(todo, processes.rank, processes.world)
    shard = shard_path(out, processes.rank, processes.world)
    errors = 0
    if block:
        recognizer = recognizer or _load(model, batch_size, device=processes.device, test_time_copies=test_time_copies)

        def write(records: list[dict]) -> None:
            with _writing(shard, lambda: "The records written before are kept in it."):
                append_jsonl(shard, fields(records), {**header, "job": {**header["job"], "shard": shard.name}})

        with progress_bar(progress and processes.is_main, total=len(block),
                          desc=f"predict (main of {processes.world} processes)", unit="file") as bar:
            errors = predict_into(recognizer, block, write, top_k, chunk_size, bar, score)
    processes.barrier()
    summary = {"out": display_path(out), "inputs": len(paths), "skipped": len(paths) - len(todo),
               "predicted": len(block) - errors, "errors": errors, "error_records": errors}
    if processes.is_main:
        missing = [display_path(shard_path(out, rank, processes.world)) for rank in range(processes.world)
                   if _block(todo, rank, processes.world) and not shard_path(out, rank, processes.world).is_file()]
        if missing:
            raise SERError(f"shard file(s) {missing} of other processes are missing; every process must see the "
                           f"folder of --out {display_path(out)!r} (across machines, put it on a shared filesystem).")
        merged = _merge_shards(out, chosen, paths, lambda: (recognizer or _load(model, batch_size)).labels, header)
        wanted = set(todo)
        new = [record for record in merged if record_key(record) in wanted]
        summary.update(predicted=len(new) - sum(map(is_error, new)), errors=sum(map(is_error, new)),
                       error_records=_error_records(merged, paths))
    processes.barrier()  # the job is complete, OUT merged, when any process returns
    return {**summary, "processes": processes.world, "process_index": processes.rank}
