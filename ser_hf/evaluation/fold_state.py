"""What a finished cross-validation fold leaves behind so that a CV run again resumes instead of starting over.

A CV can run for hours (fine-tuning six folds, partial fine-tuning on a CPU), and a crash, a killed job or a
closed laptop in its last fold used to throw every finished fold away: the rerun started afresh. Now each fold,
once scored, writes :data:`FOLD_STATE` into its report folder: one safetensors file (written atomically, so it is
there whole or not at all) holding the fold's test rows, its probabilities, its report and whatever else the caller
pools after the loop (``FoldResult.outputs`` of :mod:`ser_hf.evaluation.folds`: the speaker-adaptive
predictions, the test-time copies' probabilities), stamped with the CV's *fingerprint*.

The fingerprint (:func:`cv_fingerprint`) is a digest of everything a fold's result depends on: the settings, the
code (:func:`code_digest`: ser_hf's source files, the numerical libraries' versions), the folds' rows and the data
(labels, speakers, and each audio file's size and modification time, or the clip's own samples). A rerun keeps a
fold only when its state carries the very fingerprint of the rerun and the very test rows of that fold; any change
(another seed, a clip re-recorded, a fold count, an edited ser_hf) starts afresh, so a resumed CV is the CV its
settings describe, never a mix of two. A finished CV keeps its fold states too: run again, it is rebuilt from them
at once (as SpeechBrain reruns a finished recipe without training it again).

Known limit: a clip rewritten in place with the same size *and* its old modification time restored (``touch -d``)
is not noticed; hashing every file's samples on every run would cost a pass over the whole corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_hf._io import atomic_write_bytes
from ser_hf.evaluation.report import FOLD_STATE, EvaluationReport

if TYPE_CHECKING:
    import datasets

    from ser_hf.splits import Fold

logger = logging.getLogger(__name__)

#: The safetensors metadata key that holds the fold's JSON part.
_RECORD = "ser_hf_fold_state"
#: Separates the levels of a nested output name in the file (``enrollment/10/rows``).
_SEP = "/"


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _rows_bytes(rows) -> bytes:
    return np.ascontiguousarray(np.asarray(rows, dtype=np.int64)).tobytes()


#: Rows hashed at a time by :func:`data_digest` (its memory stays that of one batch, whatever the corpus).
_DIGEST_BATCH = 256


def _file_identity(path: str) -> bytes:
    """A file by name, size and modification time: re-recording it changes them."""
    try:
        stat = os.stat(path)
    except OSError:
        return b"missing:" + os.fsencode(path)
    return b"file:" + os.fsencode(path) + f":{stat.st_size}:{stat.st_mtime_ns}".encode()


def _audio_files(column) -> list[str]:
    """The files an Arrow audio column names: its strings, or the ``path`` of entries that hold no samples."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return [path for path in column.to_pylist() if path is not None]
    if pa.types.is_struct(column.type) and column.type.get_field_index("path") >= 0:
        held = [name for name in ("bytes", "array") if column.type.get_field_index(name) >= 0]
        paths = column.field("path").to_pylist()
        empty = [all(value is None for value in row) for row in zip(*(column.field(n).to_pylist() for n in held))]
        return [path for path, no_samples in zip(paths, empty or [True] * len(paths)) if path and no_samples]
    return []


def data_digest(dataset: datasets.Dataset) -> str:
    """A digest of the clips a CV scores: every row's label, speaker and corpus, its audio as stored (a path, or the
    samples or bytes themselves), and each audio file's size and modification time.

    The dataset's Arrow table is read a batch of rows at a time and never decoded, so hashing a corpus costs a pass
    over its table (paths: next to nothing) and the memory of one batch.
    """
    import pyarrow as pa

    columns = [name for name in ("label", "speaker", "corpus", "audio") if name in dataset.column_names]
    parts = [json.dumps(columns).encode()]
    for batch in dataset.with_format("arrow").iter(batch_size=_DIGEST_BATCH):
        # take() copies the batch's rows out: a slice of a list column still holds its whole parent's values, and
        # the IPC stream would carry them (a row's digest would then change with its neighbours)
        table = batch.select(columns).take(pa.array(range(batch.num_rows))).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        parts.append(sink.getvalue().to_pybytes())
        if "audio" in columns:
            parts.extend(_file_identity(path) for path in _audio_files(table.column("audio").combine_chunks()))
    return _digest(*parts)


#: The libraries whose version can change a fold's numbers.
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "datasets", "librosa", "soundfile")


def code_digest() -> str:
    """The ser_hf version and a digest of its own source files, and the versions of :data:`_LIBRARIES`: a fold's
    state is only kept by the code that would compute it again (an edited ser_hf, an upgraded torch: afresh)."""
    from importlib import metadata

    from ser_hf import __version__

    package = Path(__file__).resolve().parents[1]
    sources = sorted(package.rglob("*.py"))
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return _digest(__version__.encode(), json.dumps(versions, sort_keys=True).encode(),
                   *(part for path in sources for part in (path.relative_to(package).as_posix().encode(),
                                                          path.read_bytes())))


def cv_fingerprint(settings: Mapping[str, Any], folds: Sequence[Fold], data: str) -> str:
    """The digest a fold's state must carry to be kept: ``settings`` (JSON-able), the code (:func:`code_digest`),
    every fold's training, validation and test rows and ``data`` (:func:`data_digest`)."""
    parts = [json.dumps({"settings": settings, "code": code_digest(), "data": data}, sort_keys=True,
                        default=str).encode()]
    for fold in folds:
        parts += [fold.name.encode(), _rows_bytes(fold.train), _rows_bytes(fold.validation),
                  _rows_bytes(fold.test)]
    return _digest(*parts)


def _flatten(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON part of ``value`` with every numpy array moved to ``arrays`` under its path (replaced by a marker)."""
    if isinstance(value, np.ndarray):
        arrays[prefix] = np.ascontiguousarray(value)
        return {"__array__": prefix}
    if isinstance(value, Mapping):
        return {str(key): _flatten(item, f"{prefix}{_SEP}{key}", arrays) for key, item in value.items()}
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


def save_fold_state(folder: str | os.PathLike, fingerprint: str, test_rows, report: EvaluationReport,
                    probabilities: np.ndarray, outputs: Mapping[str, Any]) -> Path:
    """Write ``folder/``:data:`FOLD_STATE`: the fold's test rows, report, probabilities and outputs (atomically)."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {"test_rows": np.asarray(test_rows, dtype=np.int64),
                                     "probabilities": np.asarray(probabilities, dtype=np.float64)}
    record = {"fingerprint": fingerprint, "report": report.to_dict(),
              "outputs": _flatten(dict(outputs), "outputs", arrays)}
    path = Path(folder) / FOLD_STATE
    atomic_write_bytes(path, save(arrays, metadata={_RECORD: json.dumps(record, default=str)}))
    return path


def load_fold_state(folder: str | os.PathLike, fingerprint: str,
                    test_rows) -> tuple[EvaluationReport, np.ndarray, dict[str, Any]] | None:
    """The finished fold in ``folder`` as (report, probabilities, outputs), or None where there is none to keep: no
    state, an unreadable one, another fingerprint (other settings or data) or other test rows."""
    from safetensors import safe_open

    path = Path(folder) / FOLD_STATE
    if not path.is_file() or path.is_symlink():
        return None
    try:
        with safe_open(str(path), framework="numpy") as handle:
            record = json.loads((handle.metadata() or {})[_RECORD])
            if record.get("fingerprint") != fingerprint:
                logger.info("%s: written by a CV with other settings or data; the fold runs again", path)
                return None
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
        if not np.array_equal(arrays["test_rows"], np.asarray(test_rows, dtype=np.int64)):
            return None
        return (EvaluationReport.from_dict(record["report"]), arrays["probabilities"],
                _unflatten(record["outputs"], arrays))
    except Exception as error:  # a damaged or foreign file: the fold is simply run again
        logger.warning("%s cannot be read (%s: %s); the fold runs again", path, type(error).__name__, error)
        return None


__all__ = ["FOLD_STATE", "code_digest", "cv_fingerprint", "data_digest", "load_fold_state", "save_fold_state"]
