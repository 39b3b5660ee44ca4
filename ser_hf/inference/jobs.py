"""Resumable prediction jobs over many audio files: ``ser-hf predict``.

:func:`predict_files` expands the inputs (files, directories searched recursively for audio, glob
patterns, manifest CSVs with a ``path`` column), skips every file the output already records, and
predicts the rest in chunks with an :class:`~ser_hf.inference.recognizer.EmotionRecognizer`. A file that
cannot be decoded or scored becomes an error record ``{"path", "error"}`` and the job goes on.

Crash safety, so a rerun after a kill or a crash finishes the job exactly once per file:

- **JSONL** (default): each chunk's complete records are appended, flushed and ``fsync``-ed. A kill
  mid-write can leave only a torn last line; on resume it is detected (no newline, or not JSON),
  cut off (the file is truncated to the last complete line) and its files are predicted again.
- **CSV**: a CSV cannot be appended safely with a header, so every chunk rewrites the whole file into
  a temporary file beside it (fsync-ed) and swaps it in with ``os.replace``, which is atomic: the file
  is always the old or the new complete table. Columns: ``path, label, score, error`` and one
  probability column per emotion (``prob_<emotion>``, blank outside ``top_k``).

Records are keyed by absolute path (``os.path.abspath``, symlinks not resolved).

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
    >>> predict_files("outputs/rav4", ["recordings/", "extra/*.flac"], "predictions.jsonl")
    {'out': 'predictions.jsonl', 'inputs': 120, 'skipped': 0, 'predicted': 119, 'errors': 1, 'error_records': 1}
    ```

    The same job on two GPUs (or ``--multi_gpu`` with ``CUDA_VISIBLE_DEVICES=""`` for two CPU processes)::

        accelerate launch --multi_gpu --num_processes 2 -m ser_hf predict --model outputs/rav4 \\
            recordings/ --out predictions.jsonl
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ser_hf.audio import is_audio_path
from ser_hf.errors import SERError
from ser_hf.inference.recognizer import EmotionRecognizer

__all__ = ["FORMATS", "expand_inputs", "predict_files", "read_records", "shard_files"]

FORMATS = ("jsonl", "csv")
_GLOB_CHARS = set("*?[")
_BASE_COLUMNS = ["path", "label", "score", "error"]
# Environment variables through which torchrun/accelerate launch (WORLD_SIZE) or MPI announce several processes.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

# ------------------------------------------------------------------------------------------------ inputs

def _manifest_paths(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise SERError(
                f"manifest {str(path)!r} has no 'path' column (found {sorted(reader.fieldnames or [])}); "
                f"expected a CSV whose 'path' column lists audio files (relative to the manifest's folder)."
            )
        rows = [row["path"] for row in reader if (row.get("path") or "").strip()]
    return [os.path.abspath(path.parent / row.strip()) for row in rows]


def _directory_paths(path: Path) -> list[str]:
    # Everything named like audio but a folder: a dangling link or a FIFO gets an error record, not silence.
    found = sorted(os.path.abspath(p) for p in path.rglob("*") if not p.is_dir() and is_audio_path(p))
    if not found:
        raise SERError(
            f"input directory {str(path)!r} holds no audio files (searched recursively for extensions such as "
            f".wav, .flac, .mp3, .ogg); pass a folder of recordings or the files themselves."
        )
    return found


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths of the audio files the inputs name, in order, each once.

    Args:
        inputs: Files, directories (searched recursively for audio extensions), glob patterns
            (``**`` recurses) and manifest CSVs (``*.csv`` with a ``path`` column; relative paths are
            taken from the manifest's folder). A file that does not exist is kept: it becomes an error record.

    Raises:
        SERError: for a glob that matches nothing, a directory without audio, or a manifest without ``path``.
    """
    paths: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            paths += _directory_paths(path)
        elif path.suffix.lower() == ".csv" and path.is_file():
            paths += _manifest_paths(path)
        elif not path.exists() and _GLOB_CHARS & set(text):
            matches = sorted(m for m in glob.glob(str(path), recursive=True) if os.path.isfile(m))
            if not matches:
                raise SERError(f"input pattern {text!r} matches no file; check the pattern or quote it in the shell.")
            paths += [os.path.abspath(m) for m in matches]
        else:
            paths.append(os.path.abspath(path))
    return list(dict.fromkeys(paths))


# ------------------------------------------------------------------------------------------------ output

def _format_for(out: Path, format: str | None) -> str:
    chosen = format or ("csv" if out.suffix.lower() == ".csv" else "jsonl")
    if chosen not in FORMATS:
        raise SERError(f"format must be one of {list(FORMATS)}, got {chosen!r}; e.g. --format jsonl.")
    return chosen


def _read_jsonl(out: Path) -> list[dict[str, Any]]:
    """Complete records of a JSONL output; a torn last line (a killed write) is cut off the file."""
    data = out.read_bytes()
    records, good_end, position = [], 0, 0
    for line in data.splitlines(keepends=True):
        end = position + len(line)
        if not line.endswith(b"\n"):
            break  # torn: the write was cut before its newline
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if end == len(data):
                break  # torn mid-record, newline included by chance: dropped like the above
            raise SERError(
                f"output {str(out)!r} has an unreadable line at byte {position} that is not the last one; it was "
                f"not written by ser-hf predict. Pass another --out or remove the file."
            ) from None
        if isinstance(record, dict) and "path" in record:
            records.append(record)
        good_end = position = end
    if good_end < len(data):
        with out.open("r+b") as handle:
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return records


def _read_csv(out: Path) -> list[dict[str, Any]]:
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise SERError(
                f"output {str(out)!r} is a CSV without a 'path' column (found {sorted(reader.fieldnames or [])}); "
                f"it was not written by ser-hf predict. Pass another --out or remove the file."
            )
        return list(reader)


def read_records(out: str | os.PathLike, format: str | None = None) -> list[dict[str, Any]]:
    """The records an earlier (possibly interrupted) run wrote to ``out`` ([] when it does not exist)."""
    out = Path(out)
    if not out.is_file():
        return []
    return _read_csv(out) if _format_for(out, format) == "csv" else _read_jsonl(out)


def _append_jsonl(out: Path, records: Sequence[dict[str, Any]]) -> None:
    blob = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
    with out.open("ab") as handle:
        handle.write(blob)  # one write per chunk: a kill tears at most the last line
        handle.flush()
        os.fsync(handle.fileno())


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    if "scores" not in record:
        return record  # already a row (read back from a CSV output)
    row = {key: record.get(key, "") for key in _BASE_COLUMNS}
    row.update({f"prob_{label}": value for label, value in record.get("scores", {}).items()})
    return row


def _temporary(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp")


def _replace_atomically(out: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``out``, fsync it, and swap it in (``os.replace`` is atomic)."""
    temporary = _temporary(out)
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, out)


def _rewrite_csv(out: Path, rows: list[dict[str, Any]], labels: Sequence[str]) -> None:
    columns = _BASE_COLUMNS + [f"prob_{label}" for label in labels]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(_csv_row(row) for row in rows)
    _replace_atomically(out, buffer.getvalue())


def _is_error(record: dict[str, Any]) -> bool:
    return bool(record.get("error"))  # JSONL: key present; CSV: non-empty cell


# ------------------------------------------------------------------------------------------------ shards

def _shard_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f"{out.name}.shard-{rank}-of-{world}")


def shard_files(out: str | os.PathLike) -> list[Path]:
    """The shard files of ``out`` that processes of a multi-process run wrote and no merge has removed yet.

    Example:
        ```python
        >>> shard_files("predictions.jsonl")  # after a 2-process run was killed
        [PosixPath('predictions.jsonl.shard-0-of-2'), PosixPath('predictions.jsonl.shard-1-of-2')]
        ```
    """
    out = Path(out)
    pattern = re.compile(rf"{re.escape(out.name)}\.shard-\d+-of-\d+")
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def _read_shards(out: Path) -> list[dict[str, Any]]:
    """Records of every shard file of ``out`` (a torn last line, from a kill, is cut off its shard)."""
    return [record for shard in shard_files(out) for record in _read_jsonl(shard)]


def _in_input_order(records: Iterable[dict[str, Any]], paths: Sequence[str]) -> list[dict[str, Any]]:
    """One record per path (the first seen wins), inputs in input order after any records of other files."""
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        unique.setdefault(os.path.abspath(record["path"]), record)
    index = {path: i for i, path in enumerate(paths)}
    return sorted(unique.values(), key=lambda record: index.get(os.path.abspath(record["path"]), -1))


def _merge_shards(out: Path, chosen: str, paths: Sequence[str], labels: Callable[[], Sequence[str]]) -> list[dict]:
    """Merge ``out`` and its shards into ``out`` (atomically, input order, each file once); remove the shards.

    ``labels`` gives the model's emotions for the CSV's ``prob_*`` columns (called for CSV only).

    A kill after the swap and before the removal leaves records in both places; the next merge keeps one.
    Returns the merged records.
    """
    shards = shard_files(out)
    merged = _in_input_order(read_records(out, chosen) + _read_shards(out), paths)
    if chosen == "csv":
        _rewrite_csv(out, merged, labels())
    else:
        _replace_atomically(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged))
    for shard in shards:
        shard.unlink()
    return merged


# ------------------------------------------------------------------------------------------------ processes

@dataclass
class _Processes:
    """This process's place in the job: rank, number of processes, device, and a barrier."""

    rank: int = 0
    world: int = 1
    device: Any = None
    barrier: Callable[[], None] = lambda: None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _processes() -> _Processes:
    """The processes ``accelerate launch``/``torchrun`` started (one :class:`_Processes` when run plainly).

    A plain run touches no distributed state, so single-process jobs behave as they always did.
    """
    from accelerate.utils import get_int_from_env

    launched = get_int_from_env(list(_WORLD_SIZE_VARIABLES), 1)
    if launched <= 1:
        return _Processes()
    import torch
    from accelerate import PartialState

    # Without cpu=True a launch with no visible GPU leaves every process believing it is alone (all would
    # write OUT); with it, accelerate joins them over gloo.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != launched:
        raise SERError(f"{launched} processes were launched but accelerate joined {state.num_processes} (was "
                       f"PartialState created earlier in this process with other settings?); every process would "
                       f"write the output alone. Start ser-hf predict with accelerate launch or torchrun directly.")
    return _Processes(state.process_index, state.num_processes, state.device, state.wait_for_everyone)


def _block(items: Sequence[str], rank: int, world: int) -> list[str]:
    """Contiguous block ``rank`` of ``world`` (sizes differ by at most one, the larger ones first)."""
    size, extra = divmod(len(items), world)
    start = rank * size + min(rank, extra)
    return list(items[start: start + size + (rank < extra)])


# ------------------------------------------------------------------------------------------------ job

def _error_reason(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _predict_chunk(recognizer: EmotionRecognizer, paths: Sequence[str], top_k: int | None) -> list[dict[str, Any]]:
    """Records for ``paths`` in order: a prediction, or ``{"path", "error"}`` for a file that failed."""
    records: dict[str, dict[str, Any]] = {}
    waves: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            waves[path] = recognizer.load(path)
        except (SERError, OSError, RuntimeError) as err:
            records[path] = {"path": path, "error": _error_reason(err)}
    try:
        rows = recognizer.predict_waves(list(waves.values()))
        records.update({path: {"path": path, **recognizer.result(row, top_k)} for path, row in zip(waves, rows)})
    except (SERError, RuntimeError):
        # One clip (e.g. shorter than the model's receptive field) broke the batch: score one by one.
        for path, wave in waves.items():
            try:
                records[path] = {"path": path, **recognizer.result(recognizer.predict_waves([wave])[0], top_k)}
            except (SERError, RuntimeError) as err:
                records[path] = {"path": path, "error": _error_reason(err)}
    return [records[path] for path in paths]


def _predict_into(recognizer: EmotionRecognizer, todo: Sequence[str], write: Callable[[list[dict]], None],
                  top_k: int | None, chunk_size: int, bar: tqdm) -> int:
    """Predict ``todo`` chunk by chunk, handing each chunk's records to ``write``; returns the error count."""
    errors = 0
    for start in range(0, len(todo), chunk_size):
        records = _predict_chunk(recognizer, todo[start: start + chunk_size], top_k)
        errors += sum(_is_error(record) for record in records)
        write(records)
        bar.update(len(records))
    return errors


def _load(model: str | os.PathLike | EmotionRecognizer, batch_size: int, device: Any = None) -> EmotionRecognizer:
    recognizer = model if isinstance(model, EmotionRecognizer) else EmotionRecognizer.from_pretrained(model, device=device)
    recognizer.batch_size = batch_size
    return recognizer


def _check_settings(chunk_size: int, batch_size: int, top_k: int | None) -> None:
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size), ("top_k", 1 if top_k is None else top_k)):
        if value < 1:
            raise SERError(f"{name} must be a positive integer, got {value}; e.g. --{name.replace('_', '-')} 8.")


def _error_records(records: Iterable[dict[str, Any]], paths: Sequence[str]) -> int:
    wanted = set(paths)
    return sum(_is_error(record) for record in records if os.path.abspath(record["path"]) in wanted)


def predict_files(
    model: str | os.PathLike | EmotionRecognizer,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    format: str | None = None,
    batch_size: int = 8,
    top_k: int | None = None,
    chunk_size: int = 64,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Predict the emotion of every input file into ``out``, resuming where an earlier run stopped.

    Under ``accelerate launch`` with several processes, each predicts one block of the files still to do
    and the main process merges the blocks into ``out`` (see the module docstring); every process must
    call this function with the same arguments.

    Args:
        model: A checkpoint directory, preset or Hub id (see :meth:`EmotionRecognizer.from_pretrained`),
            or a loaded :class:`EmotionRecognizer`.
        inputs: Files, directories, glob patterns and manifest CSVs (see :func:`expand_inputs`).
        out: Output file; files it (or a leftover shard of it) already records, by absolute path, are skipped.
        format: ``"jsonl"`` or ``"csv"`` (default: ``csv`` for a ``.csv`` name, else ``jsonl``).
        batch_size: Clips per forward pass.
        top_k: Emotions kept per record (default: all).
        chunk_size: Files predicted between two writes of ``out`` (what a crash can lose at most).
        progress: Show a tqdm progress bar (on the main process only).
        device: Where a single process runs the model (default CPU; e.g. ``"cuda"``). Under ``accelerate
            launch`` each process takes the device accelerate gives it (its own GPU, or the CPU).

    Returns:
        ``{"out", "inputs", "skipped", "predicted", "errors", "error_records"}``: counts of this run
        (``skipped``: files already recorded; ``errors``: files of this run recorded as errors) and
        ``error_records``, the inputs whose record in ``out`` is an error, earlier runs included. With
        several processes ``"processes"`` and ``"process_index"`` are added, and only the main process's
        counts cover the whole job (the others count their own block).

    Raises:
        SERError: for bad inputs (see :func:`expand_inputs`), a bad ``format``/``chunk_size``, or an output
            file that ser-hf predict did not write. Unreadable audio never raises: it is recorded.

    Example:
        ```python
        >>> summary = predict_files("outputs/rav4", ["calls/"], "calls.csv", top_k=2, chunk_size=16)
        >>> summary["error_records"]  # files that could not be decoded, now or in an earlier run
        0
        ```
    """
    out = Path(out)
    chosen = _format_for(out, format)
    _check_settings(chunk_size, batch_size, top_k)
    paths = expand_inputs(inputs)
    processes = _processes()
    if processes.world > 1:
        return _predict_sharded(model, paths, out, chosen, processes, batch_size=batch_size, top_k=top_k,
                                chunk_size=chunk_size, progress=progress)
    existing = read_records(out, chosen)
    leftovers = _read_shards(out)  # a killed multi-process run's work counts as done
    done = {os.path.abspath(record["path"]) for record in existing + leftovers}
    todo = [path for path in paths if path not in done]
    summary = {"out": str(out), "inputs": len(paths), "skipped": len(paths) - len(todo), "predicted": 0, "errors": 0}
    recognizer, new = None, []
    if todo:
        recognizer = _load(model, batch_size, device)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = list(existing) if chosen == "csv" else []

        def write(records: list[dict]) -> None:
            new.extend(records)
            if chosen == "jsonl":
                _append_jsonl(out, records)
            else:
                rows.extend(_csv_row(record) for record in records)
                _rewrite_csv(out, rows, recognizer.labels)

        with tqdm(total=len(paths), initial=len(paths) - len(todo), desc="predict", unit="file",
                  disable=not progress) as bar:
            summary["errors"] = _predict_into(recognizer, todo, write, top_k, chunk_size, bar)
        summary["predicted"] = len(todo) - summary["errors"]
    if leftovers:
        _merge_shards(out, chosen, paths, lambda: (recognizer or _load(model, batch_size)).labels)
    return {**summary, "error_records": _error_records(existing + leftovers + new, paths)}


def _predict_sharded(model, paths: list[str], out: Path, chosen: str, processes: _Processes, *, batch_size: int,
                     top_k: int | None, chunk_size: int, progress: bool) -> dict[str, Any]:
    """One process's part of a multi-process job (see :func:`predict_files`)."""
    if processes.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Only the main process cuts torn last lines (of OUT and leftover shards), before anyone reads them.
        read_records(out, chosen)
        _read_shards(out)
    processes.barrier()
    done = {os.path.abspath(record["path"]) for record in read_records(out, chosen) + _read_shards(out)}
    todo = [path for path in paths if path not in done]
    # Every process must have read OUT and the shards before any appends to a shard: all need the same todo.
    processes.barrier()
    block = _block(todo, processes.rank, processes.world)
    shard = _shard_path(out, processes.rank, processes.world)
    errors, recognizer = 0, None
    if block:
        recognizer = _load(model, batch_size, device=processes.device)
        with tqdm(total=len(block), desc=f"predict (main of {processes.world} processes)", unit="file",
                  disable=not (progress and processes.is_main)) as bar:
            errors = _predict_into(recognizer, block, lambda records: _append_jsonl(shard, records), top_k,
                                   chunk_size, bar)
    processes.barrier()
    summary = {"out": str(out), "inputs": len(paths), "skipped": len(paths) - len(todo),
               "predicted": len(block) - errors, "errors": errors, "error_records": errors}
    if processes.is_main:
        missing = [str(_shard_path(out, rank, processes.world)) for rank in range(processes.world)
                   if _block(todo, rank, processes.world) and not _shard_path(out, rank, processes.world).is_file()]
        if missing:
            raise SERError(f"shard file(s) {missing} of other processes are missing; every process must see the "
                           f"folder of --out {str(out)!r} (across machines, put it on a shared filesystem).")
        merged = _merge_shards(out, chosen, paths, lambda: (recognizer or _load(model, batch_size)).labels)
        wanted = set(todo)
        new = [record for record in merged if os.path.abspath(record["path"]) in wanted]
        summary.update(predicted=len(new) - sum(map(_is_error, new)), errors=sum(map(_is_error, new)),
                       error_records=_error_records(merged, paths))
    processes.barrier()  # the job is complete, OUT merged, when any process returns
    return {**summary, "processes": processes.world, "process_index": processes.rank}
