"""Which job wrote a ``ser-hf predict`` output, whether a rerun is that same job, and that one job writes it at a time.

A job is its model (its real path, and a SHA-256 of the files a prediction reads: :func:`fingerprinted_files`),
``test_time_copies``, the options that change what a record holds (:data:`IDENTITY`) and, for a timeline job
(``--window``), its window settings (:data:`TIMELINE`; a clip job records none, so its header is what it was before
timeline jobs). The job is recorded where :mod:`ser_hf.inference.outputs` keeps it: the header line of a JSONL
output or shard, the sidecar ``.<name>.job.json`` of a CSV. Before a job resumes (changes) an output or merges a
leftover shard, :func:`check_same_job` compares the two and refuses another job's file: their records would mix.
:func:`lock_output` refuses a second job on the same output while one runs.

Example:
    ```python
    >>> header = job_header_for("outputs/rav4", copies=False, top_k=None, speaker_pattern=None, speaker_column=None)
    >>> with lock_output(Path("predictions.jsonl")):
    ...     check_same_job(Path("predictions.jsonl"), "jsonl", header["job"])

    ```
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import fcntl
import hashlib
import json
import numbers
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ser_hf.checkpoint import RUN_RECORD
from ser_hf.errors import SERError
from ser_hf.inference.onnx_runtime import MODEL_FILE as ONNX_MODEL_FILE
from ser_hf.inference.onnx_runtime import is_onnx_export
from ser_hf.inference.outputs import (
    COPIES_COLUMN,
    FORMAT_VERSION,
    HEADER_KEY,
    check_job_file,
    is_output_csv_header,
    job_sidecar,
    read_job_sidecar,
    read_records,
    shard_files,
)
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.adaptive_head import ADAPTATION_RECORD, ADAPTATION_WEIGHTS
from ser_hf.models.safetensors_header import INDEX_NAME
from ser_hf.paths import display_path, path_text, printable

__all__ = ["IDENTITY", "TIMELINE", "check_job_files", "check_same_job", "job_header", "job_header_for", "lock_output"]

#: Job header entries that decide what a record holds, besides the model and ``test_time_copies``: a job resumes
#: only an output whose header (or CSV sidecar, or shard header) agrees on every one. Value: how users set it.
IDENTITY = {"model_fingerprint": "the model's files", "top_k": "--top-k", "speaker_pattern": "--speaker-pattern",
            "speaker_column": "--speaker-column"}
#: A timeline job's settings (``ser-hf predict --window``: :mod:`ser_hf.inference.timeline_records`), and how users
#: set them. A clip job records none of them, so an output without them (every output of a clip job, older ones too)
#: holds one prediction per file, and is never resumed by a timeline job.
TIMELINE = {"window": "--window", "hop": "--hop", "vad_threshold_db": "--vad-threshold-db"}


def job_header(model: str, **extra: Any) -> dict[str, Any]:
    """The first line of a JSONL output: marks the file as ser_hf's and says which job wrote it."""
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {HEADER_KEY: FORMAT_VERSION, "job": {"tool": "ser-hf predict", "model": model, "created": created, **extra}}


def _model_name(model: str | os.PathLike | EmotionRecognizer) -> str:
    if isinstance(model, EmotionRecognizer):
        model = getattr(model.model, "name_or_path", "") or type(model.model).__name__
    return display_path(model)


def _model_id(model: str | os.PathLike | EmotionRecognizer) -> str:
    """Which model a job ran, the same from any working folder: a checkpoint's real path, else its name."""
    if isinstance(model, EmotionRecognizer):
        model = getattr(model.model, "name_or_path", "") or type(model.model).__name__
    text = path_text(model, "the model")
    expanded = os.path.expanduser(text)  # --model=~/m (no shell expansion after '=') is the same model as ~/m
    return os.path.realpath(expanded) if os.path.exists(expanded) else text


#: Version of :func:`_model_fingerprint`'s definition, recorded beside it (``model_fingerprint_version``): an output
#: fingerprinted under another definition (or before the version was recorded) cannot be compared with today's
#: fingerprint, and is resumed with a warning instead of refused as "replaced or retrained".
#: 1 (unrecorded): every top-level file but README.md and ser_hf_card.json. 2: only the files a prediction reads.
FINGERPRINT_VERSION = 2
# What EmotionRecognizer.from_pretrained reads (besides the weights): the config (labels, architecture), the
# feature extractor and ser_hf_run.json (preprocessing, test-time copies). Reports, cards, plots or notes written
# into the folder later (`ser-hf evaluate --out MODEL`) change no prediction and must not stop a resume.
_MODEL_CONFIGS = ("config.json", "preprocessor_config.json", RUN_RECORD)
# What from_pretrained(use_safetensors=True) loads as weights: one file, or an index and the shards it names; and a
# PEFT adapter when one is saved there.
_WEIGHTS = ("model.safetensors", "adapter_config.json", "adapter_model.safetensors")


def _weight_files(folder: Path) -> list[Path]:
    """The weights a checkpoint folder loads with: safetensors (and shards), or an ONNX export's ``model.onnx``."""
    if is_onnx_export(folder):
        return [folder / ONNX_MODEL_FILE]  # what load_onnx_classifier runs for a folder (an int8 file is named alone)
    files = [folder / name for name in _WEIGHTS]
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            shards = json.loads(index.read_bytes()).get("weight_map", {}).values()
        except (OSError, ValueError, AttributeError):
            shards = []  # loading the model reports a broken index
        files += [index, *(folder / name for name in sorted(set(map(str, shards))) if "/" not in name)]
    return files


def fingerprinted_files(target: Path, speakers: bool) -> list[Path]:
    """The files of a model that a prediction depends on: weights, configs, ``ser_hf_run.json`` and, for a
    speaker-adaptive job (``speakers``), ``speaker_adaptation.*``. ``target`` is a checkpoint or export folder, or
    one ``.onnx`` file (its configs lie beside it)."""
    folder, files = (target.parent, [target]) if target.is_file() else (target, _weight_files(target))
    # An ONNX graph may keep its weights in an external file beside it (onnx's default name: <graph>.data).
    files += [path.with_name(path.name + ".data") for path in files if path.suffix == ".onnx"]
    names = _MODEL_CONFIGS + ((ADAPTATION_WEIGHTS, ADAPTATION_RECORD) if speakers else ())
    files += [folder / name for name in names]
    return sorted({path for path in files if path.is_file()}, key=lambda path: path.name)


def _model_fingerprint(model: str | os.PathLike | EmotionRecognizer, speakers: bool = False) -> str | None:
    """SHA-256 (first 16 hex digits) of the names, sizes and bytes of :func:`fingerprinted_files`; None for a Hub
    id not on disk.

    A checkpoint replaced at the same path gives another fingerprint, so a job is not resumed with it; files that
    change no prediction (reports, a card) are left out. Reading the files costs about what loading them does (and
    leaves them in the page cache for it).
    """
    if isinstance(model, EmotionRecognizer):
        target = model.checkpoint_dir
    else:
        from ser_hf.models.presets import resolve_model_path

        text = os.path.expanduser(path_text(model, "the model"))
        target = Path(text) if os.path.exists(text) else Path(resolve_model_path(text)).expanduser()
    if target is None or not target.exists():
        return None
    digest = hashlib.sha256()
    for path in fingerprinted_files(target, speakers):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode("utf-8", "surrogateescape"))
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def job_header_for(model: str | os.PathLike | EmotionRecognizer, *, copies: bool, top_k: int | None,
                   speaker_pattern: str | None, speaker_column: str | None,
                   timeline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's header: its model and everything that changes what a record holds (see check_same_job).

    ``timeline``: a timeline job's :data:`TIMELINE` settings; a clip job's header (None) is what it always was.
    """
    speakers = speaker_pattern is not None or speaker_column is not None
    return job_header(_model_name(model), model_id=_model_id(model),
                      model_fingerprint=_model_fingerprint(model, speakers),
                      model_fingerprint_version=FINGERPRINT_VERSION, top_k=top_k, speaker_pattern=speaker_pattern, speaker_column=speaker_column,
                      **({"test_time_copies": True} if copies else {}), **(timeline or {}))


# ------------------------------------------------------------------------------------------------ same job

def check_same_job(out: Path, format: str, job: dict[str, Any], labels: Sequence[str] | None = None) -> None:
    """Refuse to resume an output (or merge a leftover shard) that another job wrote: their records would mix.

    What a job is: its model (``model_id``: a checkpoint's real path, the same from any working folder; outputs
    written before it by the displayed name), the model's files (``model_fingerprint``: a checkpoint replaced or
    retrained at the same path is another model), ``test_time_copies``, the options that change what a record
    holds (:data:`IDENTITY`: ``top_k``, the speaker options) and a timeline job's window settings (:data:`TIMELINE`:
    a clip job never resumes a timeline job's output, nor the other way round). A JSONL output and every shard
    record it in their header line; a CSV in its sidecar ``.<name>.job.json``
    (:func:`~ser_hf.inference.outputs.job_sidecar`), and its ``prob_`` columns are compared with ``labels`` once the
    model is loaded. An output written by an older
    ser_hf without some of these entries is resumed with a warning naming what could not be checked (a CSV without
    a sidecar: all but its emotions and test-time copies).

    Args:
        job: This job's header ``job`` entry (:func:`job_header`).

    Raises:
        SERError: naming the file, what differs (both values) and the fix.
    """
    for shard in shard_files(out):
        header = _first_line_header(shard)
        if header is not None:  # shards of versions before the header hold records only: nothing to compare
            _check_job(shard, header.get("job") or {}, job, "its header line", role="shard of --out")
    if not out.is_file() or out.stat().st_size == 0:
        return
    if format == "jsonl":
        header = _first_line_header(out)
        if header is not None:
            _check_job(out, header.get("job") or {}, job, "its header line")
        elif job.get("window") is not None and read_records(out, format):  # refuses a file that is not ser_hf's
            _check_same_timeline(display_path(out), {}, job, "it has no header line, as the outputs of ser_hf "
                                 "versions before it", "--out", f"delete {display_path(out)!r} to start over")
        return
    try:
        with out.open(newline="", encoding="utf-8") as handle:
            columns = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error):
        return  # not a CSV ser-hf predict wrote: read_records refuses it, saying why
    if not is_output_csv_header(columns):
        return
    name = display_path(out)
    _check_same_copies(name, COPIES_COLUMN in columns, job, f"its {COPIES_COLUMN!r} column")
    sidecar = job_sidecar(out)
    check_job_file(sidecar, "the job file of --out")  # never read through a symlink or a folder
    recorded = read_job_sidecar(sidecar) if sidecar.is_file() else None
    if recorded is not None:
        _check_job(out, recorded.get("job") or {}, job, f"its job file {display_path(sidecar)!r}")
    if labels is not None:
        written = [c[len("prob_"):] for c in columns if c.startswith("prob_")]
        if written != list(labels):
            raise SERError(f"--out {name!r} holds predictions over the emotions {written} (its prob_ columns); this "
                           f"job's model predicts {list(labels)}. Resuming would mix two models' records in one file. "
                           f"Choose another --out, or delete {name!r} to start over.")
    if recorded is None and labels is not None:  # only once the emotions match: it resumes
        warnings.warn(f"--out {name!r} has no readable job file {display_path(sidecar)!r} (an older ser_hf wrote it, or "
                      f"a power cut emptied it): only "
                      f"its emotions and test-time copies can be checked, not its model and options. Resuming it; "
                      f"choose a new --out if it came from another model or other options.", UserWarning, stacklevel=2)


def _shown(value: Any) -> str:
    return "not given" if value is None else repr(value)


def _check_job(path: Path, written: dict[str, Any], job: dict[str, Any], where: str, role: str = "--out") -> None:
    """Refuse ``path`` (an output or a shard) whose recorded job ``written`` differs from ``job`` (see check_same_job)."""
    name = display_path(path)
    start_over = (f"delete the leftover shard {name!r}" if role != "--out" else f"delete {name!r}") + " to start over"
    key = "model_id" if "model_id" in written else "model"
    if key not in written:
        return  # no model recorded: nothing to compare (read_records still checks that it is ser_hf's)
    if written[key] != job.get(key):
        raise SERError(f"{role} {name!r} holds predictions of model {written.get('model')!r} ({where}); this job "
                       f"runs {job.get('model')!r}. Resuming would mix two models' records in one file. Choose "
                       f"another --out, or {start_over}.")
    _check_same_copies(name, bool(written.get("test_time_copies", False)), job, where, role)
    _check_same_timeline(name, written, job, where, role, start_over)
    unchecked = [option for key, option in IDENTITY.items() if key not in written]
    if unchecked:
        warnings.warn(f"{role} {name!r} was written by an older ser_hf that did not record {unchecked}: they could not "
                      f"be checked. Resuming it; choose a new --out if they differ.", UserWarning, stacklevel=3)
    # The options first: a job with other speaker options fingerprints other files, and must be told the option.
    for key, option in IDENTITY.items():
        if key != "model_fingerprint" and key in written and written[key] != job.get(key):
            raise SERError(f"{role} {name!r} holds predictions made with {option} {_shown(written[key])} ({where}); "
                           f"this job runs with {option} {_shown(job.get(key))}. Resuming would mix records made with "
                           f"different options in one file. Run it with the same options as before, choose another "
                           f"--out, or {start_over}.")
    _check_fingerprint(name, written, job, where, role, start_over)


def _check_fingerprint(name: str, written: dict[str, Any], job: dict[str, Any], where: str, role: str,
                       start_over: str) -> None:
    """Refuse an output whose model's files changed; warn when its fingerprint has another definition (version)."""
    if written.get("model_fingerprint") is None or job.get("model_fingerprint") is None:
        if "model_fingerprint" in written and written["model_fingerprint"] != job.get("model_fingerprint"):
            warnings.warn(f"{role} {name!r}: the model's files could not be compared (one of the two jobs ran a "
                          f"model not on disk). Resuming it; choose a new --out if the model changed.", UserWarning,
                          stacklevel=4)
        return
    version = written.get("model_fingerprint_version")
    if version != job.get("model_fingerprint_version"):
        warnings.warn(f"{role} {name!r} records a model fingerprint of another definition ({where}: version "
                      f"{version or 1}, this ser_hf computes version {job.get('model_fingerprint_version')}): whether "
                      f"the model's files changed since could not be checked. Resuming it; choose a new --out if the "
                      f"checkpoint was replaced or retrained.", UserWarning, stacklevel=4)
        return
    if written["model_fingerprint"] != job["model_fingerprint"]:
        raise SERError(f"{role} {name!r} holds predictions of model {written.get('model')!r} whose files have changed "
                       f"since ({where} records fingerprint {written['model_fingerprint']!r}, the files now give "
                       f"{job['model_fingerprint']!r}: its weights, config.json, preprocessor_config.json, "
                       f"ser_hf_run.json or speaker adaptation): the checkpoint at that path was replaced or retrained. "
                       f"Resuming would mix two models' records in one file. Choose another --out, or {start_over}.")


def _check_same_copies(name: str, written: bool, job: dict[str, Any], where: str, role: str = "--out") -> None:
    """Refuse to resume an output scored with test-time copies in a job without them, or the other way round."""
    if written != bool(job.get("test_time_copies", False)):
        said = "with" if written else "without"
        raise SERError(f"{role} {name!r} holds predictions made {said} test-time copies ({where}); this job runs "
                       f"{'without' if written else 'with'} them. Resuming would mix two kinds of scores in one file. "
                       f"Run it {said} --test-time-copies, choose another --out, or delete {name!r} to start over.")


def _timeline_value(value: Any) -> str:
    """A window setting as a flag takes it: short (``3``, ``0.5``), but never hiding what tells two settings apart
    (``0.10000000149011612``, a float32 0.1, is not ``0.1``), and a header's value that is no number (edited by hand) as
    it was found."""
    if value is None:
        return "none"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        short = f"{value:g}"
        return short if float(short) == value else repr(float(value))
    return printable(repr(value))[:40]


def _timeline_flags(job: dict[str, Any]) -> str:
    return " ".join(f"{flag} {_timeline_value(job.get(key))}" for key, flag in TIMELINE.items())


def _check_same_timeline(name: str, written: dict[str, Any], job: dict[str, Any], where: str, role: str,
                         start_over: str) -> None:
    """Refuse to resume a timeline job's output in a clip job, or with other windows or gate, or the other way round."""
    if all(written.get(key) == job.get(key) for key in TIMELINE):
        return
    mixed = "timelines and one-clip predictions"
    if written.get("window") is None:
        made, runs, same = "one prediction per file (made without --window)", f"with {_timeline_flags(job)}", \
            "without --window"
    else:
        made, same = f"timelines made with {_timeline_flags(written)}", f"with {_timeline_flags(written)}"
        runs = "without --window" if job.get("window") is None else f"with {_timeline_flags(job)}"
        mixed = mixed if job.get("window") is None else "timelines of different windows or gates"
    raise SERError(f"{role} {name!r} holds {made} ({where}); this job runs {runs}. Resuming would mix {mixed} in one "
                   f"file. Run it {same}, choose another --out, or {start_over}.")


def _first_line_header(path: Path) -> dict[str, Any] | None:
    """The header line of a JSONL output, read alone (the records are read once, by :func:`read_records`)."""
    with path.open("rb") as handle:
        first = handle.readline(1 << 20)
    try:
        value = json.loads(first)
    except ValueError:
        return None
    return value if isinstance(value, dict) and HEADER_KEY in value else None


# ------------------------------------------------------------------------------------------------ lock

def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of ``out``: ``.<name>.lock`` beside the real output (through a symlink ``out``)."""
    real = Path(os.path.realpath(out))
    return real.with_name(f".{real.name}.lock")


def check_job_files(out: str | os.PathLike, format: str) -> None:
    """Before any work: refuse an ``out`` whose lock (or a CSV's job file) is not a regular file, or that has
    other names (hard links).

    A hard-linked output is refused rather than locked by its inode: the other name may lie in another folder
    (whose lock this job would not see), and ser-hf predict replaces a CSV, a merged output or an old output's
    header by renaming a new file over the name, which splits the names anyway: one would keep the old records.

    Raises:
        SERError: naming the file and the fix.
    """
    check_job_file(lock_path(out), "the lock file of --out")
    if format == "csv":
        check_job_file(job_sidecar(out), "the job file of --out")
    try:
        links = os.stat(out).st_nlink
    except OSError:
        return  # a new output (check_output_path refused the rest)
    if links > 1:
        name = display_path(out)
        raise SERError(f"--out {name!r} has {links} names (hard links: the same file under {links - 1} other "
                       f"name(s)). ser-hf predict cannot lock every name of it, and it replaces its output by "
                       f"renaming, which would leave the other names with old records. Remove the other name(s), or "
                       f"copy the file (cp {name!r} NEW) and pass the copy as --out.")


@contextlib.contextmanager
def lock_output(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` for a job: a second job on the same output is refused, not interleaved.

    The lock is :func:`fcntl.flock` on ``.<name>.lock`` beside the (real) output, so the kernel releases it when the
    job ends in any way (``kill -9`` too): a leftover lock file never blocks a later job. A lock path that is a
    symlink (followed, it would create or lock a file elsewhere), a folder or another non-regular file is refused.
    On a filesystem without ``flock`` support the job runs unlocked, with a warning.

    Raises:
        SERError: when another job holds the lock, naming ``out``; when the lock path is not a regular file.
    """
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        check_job_file(lock, "the lock file of --out")
        try:  # O_NOFOLLOW: a symlink put there after the check is refused too (ELOOP), never followed
            handle = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                check_job_file(lock, "the lock file of --out")  # raises, naming what is there now
            raise
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            check_job_file(lock, "the lock file of --out")
            raise SERError(f"{display_path(lock)!r}, the lock file of --out, is not a regular file; remove it.")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise SERError(f"--out {display_path(out)!r} is being written by another ser-hf predict job (it holds the "
                           f"lock {display_path(lock)!r}). Wait for that job to end, then run this command again (it "
                           f"resumes), or choose another --out.") from None
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(handle)
                raise
            warnings.warn(f"cannot lock --out {display_path(out)!r} ({err.strerror}): nothing stops another job from "
                          f"writing it at the same time; run one job per --out.", UserWarning, stacklevel=3)
            break
        try:  # the lock file may have been removed by the job that held it before we locked: lock the new one
            same = os.path.samestat(os.lstat(lock), os.fstat(handle))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: a job waiting on this file then retries with a new one
        os.close(handle)
