"""Read safetensors headers without loading any tensor: every tensor's dtype, shape and byte range, checked.

A checkpoint is checked against its ``config.json`` before anything large is allocated
(:mod:`ser_hf.models.checkpoint_check`); this module gives that check the tensors a ``model.safetensors`` (or
the shards its index names) holds, reading only the bounded JSON header, and refuses a truncated or corrupt file
with a :class:`~ser_hf.errors.ModelError` naming it and the fix.

Example:
    >>> from ser_hf.models.safetensors_header import safetensors_header
    >>> safetensors_header("outputs/rav4/model.safetensors")["classifier.weight"].shape  # doctest: +SKIP
    (4, 256)
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ser_hf._io import read_json
from ser_hf.errors import ModelError
from ser_hf.paths import display_path

__all__ = [
    "INDEX_NAME",
    "MAX_HEADER_BYTES",
    "TensorInfo",
    "WEIGHTS_NAME",
    "checkpoint_tensors",
    "safetensors_header",
]

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
#: safetensors' own limit on the JSON header; a length field beyond it (or beyond the file) is refused unread.
MAX_HEADER_BYTES = 100_000_000
# safetensors dtype -> bits per element (sub-byte float formats included, as the format defines them).
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "C64": 64,
}
_RESAVE = ("save it again with ser_hf.models.factory.save_checkpoint (or `ser-hf train`), or restore the file from "
           "where it came")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]
    file: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _tensor(path: Path, name: str, entry: Any, data_size: int) -> tuple[TensorInfo, int, int]:
    where = f"{display_path(path)}: tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"}:
        raise ModelError(f"{where} is described by {entry!r}, not {{dtype, shape, data_offsets}}. The file is corrupt: "
                         f"{_RESAVE}.")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_BITS:
        raise ModelError(f"{where} has dtype {dtype!r}; safetensors dtypes are {sorted(_DTYPE_BITS)}. {_RESAVE}.")
    if not isinstance(shape, list) or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise ModelError(f"{where} has shape {shape!r}; expected a list of non-negative integers. {_RESAVE}.")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise ModelError(f"{where} has data_offsets {offsets!r}; expected [begin, end] with 0 <= begin <= end. "
                         f"{_RESAVE}.")
    begin, end = offsets
    if end > data_size:
        raise ModelError(
            f"{display_path(path)} is truncated: tensor {name!r} ends at byte {end} of the data, but the file holds only "
            f"{data_size} bytes of data. The download or copy was cut short: fetch or copy it again."
        )
    info = TensorInfo(dtype, tuple(shape), str(path))
    if info.numel * _DTYPE_BITS[dtype] != (end - begin) * 8:
        raise ModelError(f"{where}: shape {shape} of {dtype} needs {info.numel * _DTYPE_BITS[dtype] / 8:g} bytes but "
                         f"its offsets span {end - begin}. The file is corrupt: {_RESAVE}.")
    return info, begin, end


def safetensors_header(path: str | os.PathLike) -> dict[str, TensorInfo]:
    """Read and check the header of a safetensors file, without reading any tensor data.

    The 8-byte little-endian header length must fit the file and :data:`MAX_HEADER_BYTES`; the header must be a
    JSON object (no duplicate keys) whose tensors have known dtypes, non-negative shapes, and byte ranges that
    match their size and tile the data section exactly, as the safetensors format requires.

    Returns:
        Tensor name -> :class:`TensorInfo` (``__metadata__`` left out).

    Raises:
        ModelError: naming the file and what is wrong (truncated, oversized header, corrupt entry).
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelError(f"{display_path(path)} is {size} bytes, too short for a safetensors file (an 8-byte header length "
                             f"comes first). It is truncated or empty: fetch or copy it again.")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            # Both bounds, each with its own number: which one the length breaks, and by how much.
            limit = "safetensors' limit" if length > MAX_HEADER_BYTES else "the file's size"
            raise ModelError(
                f"{display_path(path)} claims a {length}-byte header, beyond {limit}: a safetensors header may be at most "
                f"{MAX_HEADER_BYTES} bytes, and this file is {size} bytes in all, so at most {size - 8} can follow "
                f"its 8-byte length field. It is truncated or not a safetensors file: {_RESAVE}."
            )
        header = read_json(path, fix=f"The safetensors header is corrupt: {_RESAVE}.", max_bytes=MAX_HEADER_BYTES,
                           data=handle.read(length))
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelError(f"{display_path(path)}: __metadata__ must map names to strings, found {metadata!r}. {_RESAVE}.")
    data_size = size - 8 - length
    tensors, spans = {}, []
    for name, entry in header.items():
        tensors[name], begin, end = _tensor(path, name, entry, data_size)
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ModelError(f"{display_path(path)}: tensor {name!r} starts at byte {begin} of the data, expected {position} (tensors "
                             f"overlap or leave gaps). The file is corrupt: {_RESAVE}.")
        position = end
    if position != data_size:
        raise ModelError(f"{display_path(path)}: its tensors cover {position} bytes but the data section holds {data_size}. The file "
                         f"is corrupt: {_RESAVE}.")
    return tensors


def checkpoint_tensors(directory: str | os.PathLike) -> dict[str, TensorInfo]:
    """Every tensor of a checkpoint directory: ``model.safetensors``, or the shards its index names.

    Raises:
        ModelError: no safetensors weights, a bad index (a shard outside the directory, missing, or lacking a
            tensor the index maps to it), or a bad header (see :func:`safetensors_header`).
    """
    directory = Path(directory)
    if (directory / WEIGHTS_NAME).is_file():
        return safetensors_header(directory / WEIGHTS_NAME)
    index_file = directory / INDEX_NAME
    if not index_file.is_file():
        found = sorted(p.name for p in directory.iterdir())
        raise ModelError(f"checkpoint {str(directory)!r} has neither {WEIGHTS_NAME} nor {INDEX_NAME} (found {found}). "
                         f"Save the model with save_pretrained(DIR, safe_serialization=True).")
    weight_map = read_json(index_file, fix=f"Restore {INDEX_NAME} from where the checkpoint came.").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelError(f"{index_file}: weight_map must map tensor names to shard file names, found "
                         f"{str(weight_map)[:200]}. Restore the file from where the checkpoint came.")
    tensors: dict[str, TensorInfo] = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard or not shard.endswith(".safetensors") or not (directory / shard).is_file():
            raise ModelError(f"{index_file} names shard {shard!r}, which is not a .safetensors file in "
                             f"{str(directory)!r}. Restore the missing shard, or the index.")
        tensors.update(safetensors_header(directory / shard))
    absent = sorted(name for name, shard in weight_map.items()
                    if name not in tensors or tensors[name].file != str(directory / shard))
    if absent:
        raise ModelError(f"{index_file} maps {absent[:5]} to shards that do not hold them. The checkpoint is "
                         f"incomplete: {_RESAVE}.")
    return tensors
