"""The files ``ser-hf predict`` writes: their formats, recognising one as its own, reading and writing them.

ser-hf predict appends to, cuts a torn last line off, or rewrites only a file it recognises as its own
output. Any other existing file given as ``--out`` is refused with an error naming it and is left as it
was (an audio input, a manifest, a config file, notes: nothing it did not write is ever truncated).

- **JSONL**: the first line is a header, ``{"ser_hf_predictions": 1, "job": {"tool", "model", "created", ...}}``,
  then one record per line: ``{"path", "label", "score", "scores"}`` (a timeline job's, ``--window``, adds
  ``"silent", "duration", "timeline", "skipped"``: :mod:`ser_hf.inference.timeline_records`) or ``{"path",
  "error"}``. Outputs of
  ser_hf versions before the header are still resumed when they are unambiguous: every complete line is
  such a record (only the last line may be torn). They get the header when the job next writes them.
- **CSV**: columns ``path, label, score, error``, the optional ``test_time_copies`` and :data:`EXTRA_COLUMNS`,
  ``prob_<emotion>..., path_base64``, in that order (files without ``path_base64``, from earlier versions, are read
  too). A CSV with any other columns is not ours. Its job (the JSONL header's ``job``) is the sidecar
  ``.<name>.job.json`` beside it (:func:`job_sidecar`), written before the CSV.
- An empty file holds nothing to lose and is used as a new output.
- **Shards** ``OUT.shard-<rank>-of-<world>`` of a multi-process run are JSONL outputs with a header too.

Paths follow :mod:`ser_hf.paths`: ``path`` is the display form and ``path_base64`` (only for names that are
not UTF-8) the exact bytes; :func:`record_key` gives the absolute path a record stands for (:func:`path_key`: the
file the kernel opens, a ``..`` after a symlinked folder taken as the kernel takes it), which is what a resumed job
compares (which input each record stands for is
:func:`~ser_hf.inference.finished_inputs.paired_records`). Records are written with
``allow_nan=False``: a NaN score can never reach a file.

Which job wrote an output, whether a rerun is that job, and the lock that lets one job write it at a time are
:mod:`ser_hf.inference.job_identity`; this module only stores the job where it belongs (the header line, the CSV's
sidecar) and reads it back.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_hf._io import atomic_write_bytes, refuse_dangling_link, temporary_file
from ser_hf._output_folders import DERIVED_NAME_BYTES, check_name_fits
from ser_hf.errors import SERError
from ser_hf.paths import display_path, path_key, record_path

__all__ = ["FORMATS", "HEADER_KEY", "check_job_file", "check_output_path", "format_for", "job_sidecar", "path_key",
           "read_records", "record_key", "shard_files"]

FORMATS = ("jsonl", "csv")
#: Key of the header line that marks a JSONL file as a ser-hf predict output; its value is the format version.
HEADER_KEY = "ser_hf_predictions"
FORMAT_VERSION = 1
BASE_COLUMNS = ["path", "label", "score", "error"]
PATH_BYTES_COLUMN = "path_base64"
#: A CSV column, after the base ones, that only outputs scored with test-time copies have (``true`` in every row):
#: the CSV's counterpart of the JSONL header's ``test_time_copies``, so a resumed job cannot mix the two kinds.
COPIES_COLUMN = "test_time_copies"
#: Record fields a CSV keeps in columns of their own when the job's records have them, in this order after the base
#: columns: a dataset row's origin (``--dataset_name``) and a speaker-adaptive job's ``speaker`` (with
#: ``speaker_base64`` for a speaker read off a name that is not UTF-8), ``adapted`` and ``enrollment`` (which of the
#: speaker's files enrolled them: :func:`~ser_hf.inference.speaker_jobs.enrollment_digest`).
EXTRA_COLUMNS = ("dataset", "split", "row", "speaker", "speaker_base64", "adapted", "enrollment")
# Bytes read to recognise a JSONL file by its first line, before anything else of it is read.
_HEAD_LIMIT = 1 << 20
_FIX = ("ser-hf predict resumes only outputs it wrote and changes no other file; choose another --out, or delete "
        "the file if it is an old output you no longer need.")


def format_for(out: Path, format: str | None) -> str:
    chosen = format or ("csv" if out.suffix.lower() == ".csv" else "jsonl")
    if chosen not in FORMATS:
        raise SERError(f"format must be one of {list(FORMATS)}, got {chosen!r}; e.g. --format jsonl.")
    return chosen


def record_key(record: dict[str, Any]) -> str:
    """The absolute path of the input a record stands for (:func:`path_key`; exact, for names that are not UTF-8
    too)."""
    return path_key(record_path(record))


def check_output_path(out: str | os.PathLike) -> None:
    """Refuse an output path that cannot be a file ser-hf predict writes: a folder (or a name ending with a path
    separator, a folder to be), a FIFO or device, a path under a file, a symbolic link to nothing (or under one)."""
    text = os.fspath(out)
    if text == "-":  # many tools read it as standard output: never make a file of that name unasked
        raise SERError("--out -: ser-hf predict writes a resumable JSONL or CSV file, not to standard output; pass a "
                       "file name, e.g. --out predictions.jsonl (./- for a file named '-').")
    separators = os.sep + (os.altsep or "")
    if text.endswith(tuple(separators)) or os.path.basename(text) in (".", ".."):
        folder = text.rstrip(separators)
        raise SERError(f"--out {display_path(text)!r} names a folder (it ends with a path separator, '.' or '..'); "
                       f"--out is the output file, e.g. --out {display_path(folder or '.')}/predictions.jsonl (its "
                       f"folder is made if needed).")
    out = Path(out)
    name = display_path(out)
    check_name_fits(out, DERIVED_NAME_BYTES, f"--out {name!r}")  # its lock, job file, shards, temporary copy
    # Followed, a link to nothing would create the output wherever it points (outside --out's folder).
    refuse_dangling_link(out, f"--out {name!r}", "pass the output file itself, or create the link's target first.")
    if out.is_dir():
        raise SERError(f"--out {name!r} is a directory; expected a file name, e.g. --out {name.rstrip('/')}/predictions.jsonl.")
    if out.exists() and not out.is_file():
        raise SERError(f"--out {name!r} exists and is not a regular file (a FIFO, socket or device); ser-hf predict "
                       f"reads its output back to resume. Choose a file name for --out.")
    for parent in out.parents:
        refuse_dangling_link(parent, f"--out {name!r} lies under {display_path(parent)!r}, which",
                             "choose another --out, or create the link's target folder first.")
        if parent.exists():
            if not parent.is_dir():
                raise SERError(f"--out {name!r} lies under {display_path(parent)!r}, which is a file, not a folder; "
                               f"choose another --out.")
            break


# ------------------------------------------------------------------------------------------------ reading

@dataclass
class _Scan:
    """What a JSONL output holds: its records, the bytes that are complete and valid, and its header."""

    records: list[dict[str, Any]] = field(default_factory=list)
    good_end: int = 0
    size: int = 0
    header: dict[str, Any] | None = None


def _foreign(path: Path, role: str, found: str) -> SERError:
    return SERError(f"{role} {display_path(path)!r} exists and was not written by ser-hf predict: {found}. {_FIX}")


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError, bytes that are not UTF-8, absurd nesting
        return None


def _is_record(value: Any) -> bool:
    """Whether ``value`` has exactly the shape of a record ser-hf predict writes."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return False
    keys = set(value) - {"path", "path_base64"}
    if keys == {"error"}:
        return isinstance(value["error"], str)
    return (keys == {"label", "score", "scores"} and isinstance(value["label"], str)
            and isinstance(value["score"], (int, float)) and isinstance(value["scores"], dict))


def _wrong_format(path: Path, role: str, found: str) -> SERError:
    wanted = "JSONL" if found == "csv" else "CSV"
    return SERError(f"{role} {display_path(path)!r} is a ser-hf predict {found.upper()} output, but this job writes "
                    f"{wanted}; pass --format {found} to resume it, or choose another --out. It was left as it was.")


def _describe_first_line(first: bytes, value: Any) -> str:
    if value is None:
        shown = first[:60].decode("utf-8", "backslashreplace")
        return f"its first line is not JSON (it starts with {shown!r})"
    if isinstance(value, dict):
        return (f"its first line is a JSON object with keys {sorted(value)[:10]}, neither the "
                f"{{\"{HEADER_KEY}\": ...}} header line nor a prediction record")
    return f"its first line is a JSON {type(value).__name__}, not the {{\"{HEADER_KEY}\": ...}} header line"


def _scan_jsonl(path: Path, role: str = "--out") -> _Scan:
    """Read a JSONL output without changing it; refuse (SERError) a file that is not ser_hf's.

    A torn last line (a write cut by a kill) is left out of ``records`` and ``good_end``.
    """
    size = path.stat().st_size
    if size == 0:
        return _Scan()
    with path.open("rb") as handle:
        first = handle.readline(_HEAD_LIMIT)
        value = _parse(first) if first.endswith(b"\n") else None
        if isinstance(value, dict) and HEADER_KEY in value:
            if value[HEADER_KEY] != FORMAT_VERSION:
                raise SERError(f"{role} {display_path(path)!r} is a ser-hf predict output of format version "
                               f"{value[HEADER_KEY]!r}; this ser_hf reads version {FORMAT_VERSION}. Use the ser_hf "
                               f"version that wrote it, or choose another --out.")
            header, start, valid = value, len(first), (lambda v: isinstance(v, dict) and isinstance(v.get("path"), str))
        elif _is_record(value):
            header, start, valid = None, 0, _is_record  # written before the header line: every line must be a record
        elif first.startswith(",".join(BASE_COLUMNS).encode()):
            raise _wrong_format(path, role, "csv")
        else:
            raise _foreign(path, role, _describe_first_line(first, value))
        data = first + handle.read()
    scan = _Scan(size=len(data), header=header, good_end=start)
    position = start
    while position < len(data):
        newline = data.find(b"\n", position)
        end = len(data) if newline < 0 else newline + 1
        record = _parse(data[position:end]) if newline >= 0 else None
        if not valid(record):
            if end == len(data):
                break  # torn: the last write was cut (before its newline, or mid-record)
            line = data[:position].count(b"\n") + 1
            raise _foreign(path, role, f"line {line} (at byte {position}) is not a prediction record, and it is "
                                       f"not the last line (only a last line is cut off, as a kill leaves it)")
        scan.records.append(record)
        position = scan.good_end = end
    return scan


def _read_csv(path: Path, role: str = "--out") -> list[dict[str, Any]]:
    if path.stat().st_size == 0:
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            if columns[:1] == [f'{{"{HEADER_KEY}": {FORMAT_VERSION}']:
                raise _wrong_format(path, role, "jsonl")
            if not is_output_csv_header(columns):
                raise _foreign(path, role, f"it is a CSV with columns {columns[:12]}, expected "
                                           f"{BASE_COLUMNS + ['prob_<emotion>', '...', PATH_BYTES_COLUMN]}")
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise _foreign(path, role, f"it is not a UTF-8 CSV ({err})") from err


def is_output_csv_header(columns: list[str]) -> bool:
    """Whether ``columns`` (a CSV's first row) are exactly those of a CSV output ser-hf predict writes."""
    rest = columns[len(BASE_COLUMNS):]
    if rest and rest[0] == COPIES_COLUMN:
        rest = rest[1:]
    extras = [column for column in rest if column in EXTRA_COLUMNS]
    if rest[:len(extras)] != extras or extras != [c for c in EXTRA_COLUMNS if c in extras]:
        return False  # the extra columns come first, in their order
    rest = rest[len(extras):]
    if rest and rest[-1] == PATH_BYTES_COLUMN:
        rest = rest[:-1]  # CSVs from before path_base64 end with the prob_ columns
    return columns[:len(BASE_COLUMNS)] == BASE_COLUMNS and bool(rest) and all(c.startswith("prob_") for c in rest)


def _check_is_file(path: Path, role: str) -> bool:
    if not path.exists():
        return False
    if not path.is_file():
        raise SERError(f"{role} {display_path(path)!r} is not a regular file (a folder, FIFO or device); choose "
                       f"a file name for --out.")
    return True


def read_records(out: str | os.PathLike, format: str | None = None) -> list[dict[str, Any]]:
    """The records an earlier (possibly interrupted) run wrote to ``out`` ([] when it does not exist).

    Reading changes nothing: a torn last line is left out (the next run cuts it off).

    Raises:
        SERError: when ``out`` exists but is not a ser-hf predict output (see the module docstring).
    """
    out = Path(out)
    if not _check_is_file(out, "--out"):
        return []
    return _read_csv(out) if format_for(out, format) == "csv" else _scan_jsonl(out).records


# ------------------------------------------------------------------------------------------------ a CSV's job file
# Here, not in job_identity: write_csv writes it before the CSV (so a kill between the two leaves a job file that
# agrees with the rows), and job_identity, which compares the job it records, imports this module.

def job_sidecar(out: str | os.PathLike) -> Path:
    """The file beside a CSV output that records its job (a CSV has no header line of its own): ``.<name>.job.json``,
    beside the real file when ``out`` is a symlink."""
    real = Path(os.path.realpath(out))
    return real.with_name(f".{real.name}.job.json")


def read_job_sidecar(sidecar: Path) -> dict[str, Any] | None:
    """The job a CSV's job file records; None when it cannot be read (a power cut can leave it empty)."""
    try:
        value = json.loads(sidecar.read_bytes()[:_HEAD_LIMIT])
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and HEADER_KEY in value else None


def check_job_file(path: Path, what: str) -> None:
    """Refuse a file of ser-hf predict's own beside ``--out`` (a CSV's job file, the lock) that is a symlink, a
    folder or anything but a regular file: writing it would replace a user's file through the link, or fail late.

    Raises:
        SERError: naming ``path``, what it is and the fix (remove it; ser-hf predict makes its own).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    name = display_path(path)
    if stat.S_ISLNK(mode):
        found, remove = f"a symbolic link (to {display_path(os.readlink(path))!r})", f"rm {name!r}"
    elif stat.S_ISDIR(mode):
        found, remove = "a folder", f"move the folder {name!r} away"
    else:
        found, remove = "not a regular file (a FIFO, socket or device)", f"rm {name!r}"
    raise SERError(f"{name!r}, {what} of ser-hf predict, is {found}; ser-hf predict writes this file itself and will "
                   f"not write through or over it. Remove it ({remove}) and run the command again, or choose another "
                   f"--out. Nothing was changed.")


def _write_sidecar(sidecar: Path, header: dict[str, Any]) -> None:
    # Not fsync-ed (one fsync per chunk, the CSV's): after a power cut an unreadable job file only means the
    # CSV is resumed with the older outputs' warning. Written when it changes: once per job run.
    check_job_file(sidecar, "the job file of --out")  # a symlink is refused, never followed to a user's file
    if read_job_sidecar(sidecar) != header:
        # Not _io.atomic_write_json, which writes through a symlink on purpose (for outputs): the rename replaces
        # whatever name sits at ``sidecar`` itself, never a link's target.
        temporary = temporary_file(sidecar)
        try:
            temporary.write_bytes((json.dumps(header) + "\n").encode("utf-8"))
            os.replace(temporary, sidecar)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


# ------------------------------------------------------------------------------------------------ writing

def _json_lines(records: Iterable[dict[str, Any]]) -> bytes:
    # allow_nan=False: a NaN score raises here instead of becoming invalid JSON in the file. backslashreplace:
    # text that escaped ser_hf.paths.printable still cannot stop the job.
    text = "".join(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n" for record in records)
    return text.encode("utf-8", "backslashreplace")


def _truncate(path: Path, size: int) -> None:
    try:
        with path.open("r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        pass  # best effort: a torn last line is cut on the next run anyway


def append_jsonl(path: Path, records: Sequence[dict[str, Any]], header: dict[str, Any]) -> None:
    """Append records to a JSONL output (created, with ``header``, atomically when it is new or empty)."""
    blob = _json_lines(records)
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        atomic_write_bytes(path, _json_lines([header]) + blob, fsync=True)
        return
    try:
        with path.open("ab") as handle:
            handle.write(blob)  # one write per chunk: a kill tears at most the last line
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        _truncate(path, size)  # e.g. a full disk: keep only the complete records written before
        raise


def write_jsonl(path: Path, records: Iterable[dict[str, Any]], header: dict[str, Any]) -> None:
    """Write a whole JSONL output atomically."""
    atomic_write_bytes(path, _json_lines([header, *records]), fsync=True)


def prepare_jsonl(path: Path, header: dict[str, Any], role: str = "--out") -> None:
    """Make a JSONL output ready for appending: cut a torn last line, give an older output this job's header.

    An older output's header (none, or a job that did not record every option this one does) is replaced once the
    job has been found the same (``check_same_job`` warned that the missing options could not be checked), so the
    next resume checks them instead of warning again. Only a file recognised as ser_hf's is changed
    (:func:`_scan_jsonl` refuses any other).
    """
    if not path.exists():
        return
    scan = _scan_jsonl(path, role)
    unrecorded = scan.header is not None and set(header.get("job") or {}) - set(scan.header.get("job") or {})
    if (scan.header is None and scan.records) or unrecorded:
        write_jsonl(path, scan.records, header)
    elif scan.good_end < scan.size:
        _truncate(path, scan.good_end)


def _finite_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a non-finite value ({value}) reached a CSV row; non-finite scores must be error records")
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of a record (a row read back from a CSV output is returned as it is)."""
    if "scores" not in record:
        # An error record (its speaker kept, if any), or already a row.
        return {key: _cell(value) for key, value in record.items()}
    row = {key: _finite_cell(record.get(key, "")) for key in BASE_COLUMNS}
    row.update({key: _cell(record[key]) for key in EXTRA_COLUMNS if key in record})
    row.update({f"prob_{label}": _finite_cell(value) for label, value in record["scores"].items()})
    row[PATH_BYTES_COLUMN] = record.get(PATH_BYTES_COLUMN, "")
    return row


def write_csv(out: Path, rows: Iterable[dict[str, Any]], labels: Sequence[str], header: dict[str, Any]) -> None:
    """Write the whole CSV output atomically (a CSV cannot be appended safely with its header), after its job file.

    Rows of a job whose ``header`` says it scored with test-time copies are marked so in :data:`COPIES_COLUMN`.
    The record fields of :data:`EXTRA_COLUMNS` that any row has get their own columns (a speaker-adaptive job's
    always: ``speaker``, ``adapted`` and ``enrollment``, so adapted and global rows can be told apart). The job itself goes to
    :func:`job_sidecar` first (once per job): a kill between the two leaves a job file that agrees with the rows.
    """
    rows = [csv_row(row) for row in rows]
    marks = [COPIES_COLUMN] if header["job"].get("test_time_copies") else []
    speakers = header["job"].get("speaker_pattern") is not None or header["job"].get("speaker_column") is not None
    extras = [key for key in EXTRA_COLUMNS
              if (speakers and key in ("speaker", "adapted", "enrollment")) or any(key in r for r in rows)]
    columns = BASE_COLUMNS + marks + extras + [f"prob_{label}" for label in labels] + [PATH_BYTES_COLUMN]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows({**row, **dict.fromkeys(marks, "true")} for row in rows)
    _write_sidecar(job_sidecar(out), header)
    atomic_write_bytes(out, buffer.getvalue().encode("utf-8", "backslashreplace"), fsync=True)



# ------------------------------------------------------------------------------------------------ shards

def shard_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f"{out.name}.shard-{rank}-of-{world}")


def shard_files(out: str | os.PathLike) -> list[Path]:
    """The shard files of ``out`` that processes of a multi-process run wrote and no merge has removed yet.

    Example:
        ```python
        >>> shard_files("predictions.jsonl")  # after a 2-process run was killed  # doctest: +SKIP
        [PosixPath('predictions.jsonl.shard-0-of-2'), PosixPath('predictions.jsonl.shard-1-of-2')]

        ```
    """
    out = Path(out)
    pattern = re.compile(rf"{re.escape(out.name)}\.shard-\d+-of-\d+")
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def read_shards(out: Path) -> list[dict[str, Any]]:
    """Records of every shard file of ``out`` (without their torn last lines; nothing is changed)."""
    return [record for shard in shard_files(out) for record in _scan_jsonl(shard, "shard of --out").records]


def prepare_shards(out: Path, header: dict[str, Any]) -> None:
    """:func:`prepare_jsonl` for every leftover shard of ``out``, before any process appends to one."""
    for shard in shard_files(out):
        prepare_jsonl(shard, header, "shard of --out")
