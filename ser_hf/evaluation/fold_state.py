"""What a finished cross-validation fold leaves behind so that a CV run again resumes instead of starting over.

A CV can run for hours (fine-tuning six folds, partial fine-tuning on a CPU), and a crash, a killed job or a
closed laptop in its last fold used to throw every finished fold away: the rerun started afresh. Now each fold,
once scored, writes :data:`FOLD_STATE` into its report folder: one safetensors file (written atomically, so it is
there whole or not at all) holding the fold's test rows, its probabilities, its report and whatever else the caller
pools after the loop (``FoldResult.outputs`` of :mod:`ser_hf.evaluation.folds`: the speaker-adaptive
predictions, the test-time copies' probabilities), stamped with the CV's *fingerprint*.

The fingerprint (:class:`CVIdentity`) is a digest of everything a fold's result depends on: the settings that can
change a result, the code (:func:`code_digest`: ser_hf's source files, the numerical libraries' versions), the model
it starts from (:func:`model_digest`), the folds' rows and the data (:func:`data_digest`: every column, and each
audio file's identity). Its parts are recorded too, so a run that starts afresh says which part changed. A rerun keeps a
fold only when its state carries the very fingerprint of the rerun and the very test rows of that fold; any change
(another seed, a clip re-recorded, a fold count, an edited ser_hf) starts afresh, so a resumed CV is the CV its
settings describe, never a mix of two. A finished CV keeps its fold states too: run again, it is rebuilt from them
at once (as SpeechBrain reruns a finished recipe without training it again).

Files are known by their name and the SHA-256 of their bytes, as the probe's embedding cache keys clips (so the probe
reads every clip on every run anyway, and :func:`ser_hf._io.file_sha256` hashes each once per process).
Re-recording a clip, copying another over it, swapping two or editing one and putting its old modification time back
all start afresh, whatever the file's metadata says; what leaves the bytes as they were (``chmod -R``, ``cp -a`` or
``rsync`` of the corpus to another disk, a checkpoint moved to another folder) resumes. Knowing files by their metadata instead
(size, inode, both times) restarted CVs for all of those, and missed an edit on a file system without change times.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_hf._io import file_sha256, write_output_file
from ser_hf._output_folders import refuse_folders_where_files_go, refuse_non_folder
from ser_hf.evaluation.report import FOLD_STATE, EvaluationReport
from ser_hf.models.presets import MODEL_LOAD_FILES
from ser_hf.paths import display_path

if TYPE_CHECKING:
    import datasets

    from ser_hf.splits import Fold

logger = logging.getLogger(__name__)

#: The safetensors metadata key that holds the fold's JSON part.
_RECORD = "ser_hf_fold_state"
#: Separates the levels of a nested output name in the file (``enrollment/10/rows``).
_SEP = "/"
#: Rows hashed at a time by :func:`data_digest`: its memory stays that of a few rows (clips held as samples can be
#: megabytes each), whatever the corpus.
_DIGEST_BATCH = 32
#: Probabilities of a kept fold must sum to 1 per clip within this.
_SUM_TOLERANCE = 1e-4


def _add(digest, part: bytes) -> None:
    digest.update(len(part).to_bytes(8, "little"))  # the length first: ("ab", "c") and ("a", "bc") differ
    digest.update(part)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        _add(digest, part)
    return digest.hexdigest()


def _rows_bytes(rows) -> bytes:
    return np.ascontiguousarray(np.asarray(rows, dtype=np.int64)).tobytes()


def _file_content(path: str | os.PathLike) -> bytes:
    """The SHA-256 of a file's bytes (see the module docstring). Only regular files are read (a FIFO named like a clip
    would block the read forever); anything else is known by its kind."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a name with a NUL byte, which no file can have
        return b"missing"
    if not stat.S_ISREG(mode):
        return f"not a file:{stat.S_IFMT(mode)}".encode()
    try:
        return b"sha256:" + file_sha256(path).encode()
    except OSError as error:  # unreadable: the CV itself says so when it reads the clip
        return f"unreadable:{error.errno}".encode()


def _audio_parts(table):
    """``table`` without the file paths of its ``audio`` column, and what stands for each row's file instead: its name
    (training's random draws are keyed by it: ``ser_hf.training.data``) and its content (:func:`_file_content`) where
    the row's samples come from the file, else nothing. Where a corpus lies, or how its folder is spelt (a link, a
    trailing /), changes no clip."""
    import pyarrow as pa

    if "audio" not in table.column_names:
        return table, []
    index = table.column_names.index("audio")
    column = table.column(index).combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        paths = column.to_pylist()
        return table.remove_column(index), [b"none" if path is None else _named_content(path) for path in paths]
    if not (pa.types.is_struct(column.type) and column.type.get_field_index("path") >= 0):
        return table, []
    kept = [i for i in range(column.type.num_fields) if column.type.field(i).name != "path"]
    paths = column.field("path").to_pylist()

    def values(name: str) -> list:
        return column.field(name).to_pylist() if column.type.get_field_index(name) >= 0 else [None] * len(paths)

    # Where the clip's samples come from, as the loader decides (ser_hf.audio: its samples, else its bytes when there
    # are any, else its file): only then is the file's content what counts
    from_file = [array is None and not data for array, data in zip(values("array"), values("bytes"))]
    parts = [_named_content(path) if path and file else os.fsencode(os.path.basename(path or ""))
             for path, file in zip(paths, from_file)]
    if not kept:
        return table.remove_column(index), parts
    stripped = pa.StructArray.from_arrays([column.field(i) for i in kept], fields=[column.type.field(i) for i in kept],
                                          mask=column.is_null())
    return table.set_column(index, "audio", stripped), parts


def _named_content(path: str) -> bytes:
    return os.fsencode(os.path.basename(path)) + b"=" + _file_content(path)


def data_digest(dataset: datasets.Dataset) -> str:
    """A digest of the clips a CV scores: every column of every row as stored (labels, speakers, genders, the audio
    samples or bytes themselves, any weights), and each audio file's bytes in place of its name (see
    :func:`_audio_parts`).

    The dataset's Arrow table is read :data:`_DIGEST_BATCH` rows at a time and never decoded, so hashing a corpus
    costs a pass over its table (paths: next to nothing) and the memory of a few rows. The features (label names, audio
    options) are in; the schema's metadata (which also holds ``datasets``' own cache fingerprint) is left out: the same
    rows digest the same however they were loaded.
    """
    import pyarrow as pa

    columns = sorted(dataset.column_names)
    digest = hashlib.sha256()  # fed batch by batch: nothing of an earlier batch is kept
    _add(digest, json.dumps(columns).encode())
    _add(digest, json.dumps(dataset.features.to_dict(), sort_keys=True, default=str).encode())  # e.g. label names
    for batch in dataset.with_format("arrow").iter(batch_size=_DIGEST_BATCH):
        # take() copies the batch's rows out: a slice of a list column still holds its whole parent's values, and
        # the IPC stream would carry them (a row's digest would then change with its neighbours)
        table = batch.select(columns).take(pa.array(range(batch.num_rows))).combine_chunks()
        table, files = _audio_parts(table.replace_schema_metadata(None))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        _add(digest, sink.getvalue().to_pybytes())
        for part in files:
            _add(digest, part)
    return digest.hexdigest()


def model_digest(name_or_path: str | os.PathLike) -> str:
    """What identifies the model a CV starts from: a local checkpoint folder by its files' names and bytes (a
    checkpoint retrained at the same path is another model; the same files moved or copied elsewhere are the same
    one); a Hub id by the snapshot the local cache holds for it, else by its name."""
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            config = try_to_load_from_cache(str(name_or_path), "config.json")
        except Exception:  # not a valid Hub id either: its name is all there is
            config = None
        if not isinstance(config, str):
            return _digest(b"name:" + os.fsencode(str(name_or_path)))
        folder = Path(config).parent  # snapshots/<commit>/: the commit is in the name
    # What loading it reads (its configs and safetensors weights), not what else a folder gathers (a card, a
    # tokenizer another tool downloaded, an editor's swap file), which changes no weight
    files = sorted(path for path in folder.iterdir()
                   if path.is_file() and any(fnmatch.fnmatchcase(path.name, name) for name in MODEL_LOAD_FILES))
    # Each file by its name in the folder (not the folder's path: the same files anywhere are the same model) and the
    # bytes behind it (a Hub snapshot's files are links to its blobs).
    return _digest(*(os.fsencode(path.name) + b"=" + _file_content(path.resolve()) for path in files))


#: The libraries whose version can change a fold's numbers.
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "datasets", "librosa", "soundfile", "soxr",
              "peft")


def code_digest(package: Path | None = None) -> str:
    """The ser_hf version and a digest of its own source files (of ``package``, default ser_hf's folder), and the
    versions of :data:`_LIBRARIES`: a fold's state is only kept by the code that would compute it again (an edited
    ser_hf, an upgraded torch: afresh)."""
    from ser_hf import __version__
    from ser_hf.versions import installed_versions

    package = package or Path(__file__).resolve().parents[1]
    # Python imports none of an editor's hidden files (an Emacs lock ``.#experiment.py``, a dangling link); any other
    # entry is known by its bytes, or by its kind where it is not a file (a folder, a FIFO: never read)
    sources = sorted(path for path in package.rglob("*.py")
                     if not any(part.startswith(".") for part in path.relative_to(package).parts))
    versions = installed_versions(_LIBRARIES)
    return _digest(__version__.encode(), json.dumps(versions, sort_keys=True).encode(),
                   *(os.fsencode(path.relative_to(package).as_posix()) + b"=" + _file_content(path)
                     for path in sources))


def _settings_items(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training.learning_rate": 3e-05, ...}``: one entry per setting (nested groups joined by dots)."""
    items = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.update(_settings_items(value, f"{name}."))
        else:
            items[name] = value
    return items


def fingerprint_parts(settings: Mapping[str, Any], folds: Sequence[Fold], data: str,
                      **more: str) -> dict[str, str]:
    """Everything a fold's result depends on, part by part (so a rerun can say which part changed): each setting of
    ``settings`` (JSON-able; leave out those that cannot change a result), the code (:func:`code_digest`), the folds'
    training, validation and test rows, the clips (``data``, :func:`data_digest`) and ``more`` (e.g. the model's
    :func:`model_digest`)."""
    parts = {f"setting {name}": _digest(json.dumps(value, sort_keys=True, default=str).encode())
             for name, value in _settings_items(settings).items()}
    rows = [part for fold in folds for part in (fold.name.encode(), _rows_bytes(fold.train),
                                                 _rows_bytes(fold.validation), _rows_bytes(fold.test))]
    return {**parts, "code": code_digest(), "folds": _digest(*rows), "clips": data, **more}


def cv_fingerprint(parts: Mapping[str, str]) -> str:
    """The one digest a fold's state must carry to be kept: that of every part of :func:`fingerprint_parts`."""
    return _digest(json.dumps(dict(parts), sort_keys=True).encode())


@dataclass(frozen=True)
class CVIdentity:
    """What identifies one CV (:func:`fingerprint_parts`): recorded in its plan and summary, stamped on its folds."""

    parts: Mapping[str, str]

    @property
    def fingerprint(self) -> str:
        return cv_fingerprint(self.parts)

    def record(self) -> dict[str, Any]:
        """The keys a plan or summary records: the fingerprint, and its parts (to say what changed)."""
        return {"fingerprint": self.fingerprint, "fingerprint_parts": dict(self.parts)}


def changed_parts(recorded: Any, parts: Mapping[str, str]) -> list[str]:
    """The parts (of :func:`fingerprint_parts`) that differ from those an earlier CV ``recorded`` (its plan's or
    summary's ``fingerprint_parts``): what made a rerun start afresh. Empty when nothing was recorded."""
    if not isinstance(recorded, Mapping):
        return []
    names = sorted(set(recorded) | set(parts))
    return [name.removeprefix("setting ") for name in names if recorded.get(name) != parts.get(name)]


def _flatten(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON part of ``value`` with every numpy array moved to ``arrays`` under its path (replaced by a marker).

    Raises TypeError for what would not come back as it went in: a key that is not text or holds the separator, an
    array of text or objects."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"fold output {prefix!r}: only numeric arrays are kept, not {value.dtype}")
        arrays[prefix] = np.ascontiguousarray(value)
        return {"__array__": prefix}
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str) or _SEP in key or key == "__array__":
                raise TypeError(f"fold output {prefix!r}: keys must be text without {_SEP!r}, got {key!r}")
        return {key: _flatten(item, f"{prefix}{_SEP}{key}", arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(item, f"{prefix}{_SEP}{index}", arrays) for index, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unflatten(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {key: _unflatten(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_unflatten(item, arrays) for item in value]
    return value


def check_fold_folder(folder: str | os.PathLike, what: str = "this fold's reports") -> None:
    """Refuse, before any fold runs, a fold's report folder that cannot take what the fold writes once it has run:
    a file (or link) where the folder goes, or a folder where its state or one of its report files goes (a link or any
    other file there is simply replaced, never written through)."""
    from ser_hf.evaluation.report import REPORT_FILES

    folder = Path(folder)
    refuse_non_folder(folder, place=display_path(folder.parent), writer="ser_hf", what=what)
    refuse_folders_where_files_go(folder, REPORT_FILES | {FOLD_STATE}, place=display_path(folder), writer="ser_hf")


#: The report folders a CV writes beside its folds' once they have all run (``per_corpus`` holds one per corpus).
CV_REPORT_FOLDERS = ("pooled", "test_time_copies", "per_corpus")


def check_cv_folder(folder: str | os.PathLike) -> None:
    """Refuse, before any fold runs, a CV folder (``cv/``, ``leave_one_corpus_out/``) whose summary places cannot take
    what the CV writes after its last fold: a folder where a summary file goes (``cv_summary.md``,
    ``speaker_adaptive.json``, ...), or a link or file where a report folder goes (``pooled``, ``per_corpus/<corpus>``):
    a resumed CV would fail there after all its folds, or write its pooled report through the link."""
    from ser_hf.evaluation.report import REPORT_FILES

    folder = Path(folder)
    refuse_folders_where_files_go(folder, REPORT_FILES, place=display_path(folder), writer="ser_hf")
    for name in CV_REPORT_FOLDERS:
        check_fold_folder(folder / name, what="the CV's pooled reports")
    per_corpus = folder / "per_corpus"
    if per_corpus.is_dir():
        for child in sorted(per_corpus.iterdir()):
            check_fold_folder(child, what="a corpus's pooled report")


def save_fold_state(folder: str | os.PathLike, fingerprint: str, test_rows, report: EvaluationReport,
                    probabilities: np.ndarray, outputs: Mapping[str, Any]) -> Path:
    """Write ``folder/``:data:`FOLD_STATE`: the fold's test rows, report, probabilities and outputs (atomically,
    replacing a link or hard link left there rather than writing through it)."""
    from safetensors.numpy import save

    # contiguous: safetensors writes an array's buffer as it lies, so a strided view would come back scrambled
    arrays: dict[str, np.ndarray] = {"test_rows": np.ascontiguousarray(test_rows, dtype=np.int64),
                                     "probabilities": np.ascontiguousarray(probabilities, dtype=np.float64)}
    record = {"fingerprint": fingerprint, "report": report.to_dict(),
              "outputs": _flatten(dict(outputs), "outputs", arrays)}
    path = Path(folder) / FOLD_STATE
    write_output_file(path, save(arrays, metadata={_RECORD: json.dumps(record, default=str)}))
    return path


def _check_kept(path: Path, report: EvaluationReport, probabilities: np.ndarray, test_rows: np.ndarray,
                split: str, label_names: Sequence[str] | None, references: np.ndarray | None) -> str | None:
    """Why a fold state whose fingerprint matches still cannot be kept (None: it can)."""
    if report.split != split:
        return f"it is the state of {report.split!r}, not of {split!r}"
    if label_names is not None and list(report.labels) != list(label_names):
        return f"its labels are {list(report.labels)}, not {list(label_names)}"
    expected = (len(test_rows), len(report.labels))
    if probabilities.shape != expected:
        return f"its probabilities are shaped {probabilities.shape}, not {expected}"
    if not np.isfinite(probabilities).all() or (probabilities < 0).any() or \
            not np.allclose(probabilities.sum(axis=1), 1.0, atol=_SUM_TOLERANCE):
        return "its probabilities are not finite, non-negative and summing to 1"
    if report.num_samples != len(test_rows):
        return f"its report scores {report.num_samples} clips, not the fold's {len(test_rows)}"
    if references is not None:
        classes = len(report.labels)
        counts = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(counts, (np.asarray(references, dtype=np.int64), probabilities.argmax(axis=1)), 1)
        if counts.tolist() != [list(map(int, row)) for row in report.confusion_matrix]:
            return "its report does not match its probabilities"
    return None


def load_fold_state(folder: str | os.PathLike, fingerprint: str, test_rows, split: str | None = None,
                    label_names: Sequence[str] | None = None,
                    references=None) -> tuple[EvaluationReport, np.ndarray, dict] | None:
    """The finished fold in ``folder`` as (report, probabilities, outputs), or None where there is none to keep (the
    log says why): no state, an unreadable one, another fingerprint (other settings, code or data), other test rows,
    or one that does not hold what fold ``split`` with ``label_names`` would (checked before it is trusted: with
    ``references``, the test clips' classes, its report must be that of its probabilities)."""
    from safetensors import safe_open

    path = Path(folder) / FOLD_STATE
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        logger.info("%s is not a file ser_hf wrote (a link or a special file); the fold runs again", path)
        return None
    test_rows = np.asarray(test_rows, dtype=np.int64)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            record = json.loads((handle.metadata() or {})[_RECORD])
            if record.get("fingerprint") != fingerprint:
                logger.info("%s: written by a CV with other settings, code or data; the fold runs again", path)
                return None
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
        if not np.array_equal(arrays["test_rows"], test_rows):
            logger.info("%s holds other test clips than this fold's; the fold runs again", path)
            return None
        report = EvaluationReport.from_dict(record["report"])
        probabilities = np.asarray(arrays["probabilities"], dtype=np.float64)
        reason = _check_kept(path, report, probabilities, test_rows, split or report.split, label_names, references)
        if reason is not None:
            logger.warning("%s cannot be kept: %s; the fold runs again", path, reason)
            return None
        return report, probabilities, _unflatten(record["outputs"], arrays)
    except Exception as error:  # a damaged or foreign file: the fold is simply run again
        logger.warning("%s cannot be read (%s: %s); the fold runs again", path, type(error).__name__, error)
        return None


__all__ = ["FOLD_STATE", "CVIdentity", "CV_REPORT_FOLDERS", "changed_parts", "check_cv_folder", "check_fold_folder", "code_digest", "cv_fingerprint", "data_digest",
           "fingerprint_parts", "load_fold_state", "model_digest", "save_fold_state"]
