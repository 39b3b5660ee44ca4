"""Read the weights of a CTranslate2 ``model.bin`` with numpy only.

CTranslate2 (the engine behind faster-whisper) can write models but has no API to read their
weights back. The layout is defined by ``ctranslate2/specs/model_spec.py`` (``ModelSpec._serialize``)
and read by ``src/models/model.cc``; all integers are little-endian:

```
uint32 binary_version                      # 6 for ctranslate2 >= 3.x
string spec_name, uint32 spec_revision     # binary_version >= 2
uint32 num_variables, then for each:
    string name
    uint8  rank, uint32 dims[rank]
    uint8  dtype_id, uint32 num_bytes      # binary_version >= 4 (before: uint8 item_size, uint32 num_items)
    bytes  data[num_bytes]
uint32 num_aliases, then (string alias, string variable_name) pairs   # binary_version >= 3
```

where ``string`` is a uint16 length (including a trailing NUL) followed by UTF-8 bytes and the NUL.
The format has no checksum: a reader can catch truncation and a broken structure, but a flipped byte
inside a weight goes unnoticed, which is why the presets also pin a SHA-256 of the file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_hf.errors import ModelError
from ser_hf.paths import path_text

# Order of ctranslate2's DataType enum (include/ctranslate2/types.h, `_dtype_to_type_id`).
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY_DTYPES = {"float32": "<f4", "int8": "i1", "int16": "<i2", "int32": "<i4", "float16": "<f2", "bfloat16": "<u2"}
# Binary versions < 4 stored an item size instead of a type id (`get_dtype_from_item_size`).
_DTYPE_FROM_ITEM_SIZE = {4: "float32", 2: "int16", 1: "int8"}
MAX_BINARY_VERSION = 6
# Far beyond any real model; a larger count means the header bytes are not a CTranslate2 header.
_MAX_VARIABLES = 1_000_000
_MAX_RANK = 8

_FIX = "Re-install or re-download the model (and if it comes in parts, concatenate all of them in order)."


@dataclass
class CT2Model:
    """The content of a CTranslate2 ``model.bin``.

    Attributes:
        source: Where the bytes came from (a path, or several joined with ``+``).
        binary_version: Version of the file layout (6 for files written by ctranslate2 >= 3).
        spec: Model specification name, e.g. ``"WhisperSpec"`` (empty for binary version 1).
        spec_revision: Revision of that specification's weight layout.
        variables: Arrays by name, e.g. ``"encoder/conv1/weight"``. Arrays are read-only views of the
            file bytes; bfloat16 variables are decoded to float32 (exactly) since numpy lacks bfloat16.
        dtypes: The dtype each variable has in the file (one of :data:`CT2_DTYPES`).
        aliases: Alias name to the variable it shares weights with (ctranslate2 stores duplicates once).
    """

    source: str
    binary_version: int
    spec: str
    spec_revision: int
    variables: dict[str, np.ndarray] = field(repr=False)
    dtypes: dict[str, str] = field(repr=False)
    aliases: dict[str, str] = field(repr=False)

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def get(self, name: str, default: np.ndarray | None = None) -> np.ndarray | None:
        """Returns the variable (or aliased variable) ``name``, or ``default`` when absent."""
        return self[name] if name in self else default

    def dtype_of(self, name: str) -> str:
        """Returns the file dtype of variable or alias ``name`` (e.g. ``"float16"``)."""
        return self.dtypes[self.aliases.get(name, name)]

    def names(self, prefix: str = "") -> list[str]:
        """Sorted names of variables and aliases starting with ``prefix``."""
        return sorted(n for n in (*self.variables, *self.aliases) if n.startswith(prefix))


class _Cursor:
    """Reads little-endian fields from a buffer, raising :class:`ModelError` on truncation."""

    def __init__(self, data: bytes | memoryview, source: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def take(self, size: int, what: str) -> memoryview:
        if size > len(self.data) - self.pos:
            raise ModelError(
                f"{self.source} is truncated: reading {what} needs {size} bytes at offset {self.pos}, but the file "
                f"has {len(self.data)} bytes ({len(self.data) - self.pos} left). {_FIX}"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        length = self.uint("<H", f"the length of {what}")
        raw = bytes(self.take(length, what))
        if length == 0 or raw[-1] != 0:
            raise ModelError(
                f"{self.source} is corrupted at offset {self.pos - length}: {what} should be a NUL-terminated string, "
                f"found {raw[:40]!r}. {_FIX}"
            )
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as err:
            raise ModelError(f"{self.source} is corrupted: {what} is not UTF-8 text ({raw[:40]!r}). {_FIX}") from err


def _read_header(cur: _Cursor) -> tuple[int, str, int]:
    version = cur.uint("<I", "the binary version")
    if not 1 <= version <= MAX_BINARY_VERSION:
        raise ModelError(
            f"{cur.source} is not a CTranslate2 model.bin: its binary version is {version}, expected 1 to "
            f"{MAX_BINARY_VERSION}. Point to the model.bin of a CTranslate2/faster-whisper model directory. {_FIX}"
        )
    if version < 2:
        return version, "", 1
    spec = cur.string("the model spec name")
    return version, spec, cur.uint("<I", "the spec revision")


def _read_variable(cur: _Cursor, version: int) -> tuple[str, np.ndarray, str]:
    name = cur.string("a variable name")
    rank = cur.uint("<B", f"the rank of {name!r}")
    if rank > _MAX_RANK:
        raise ModelError(f"{cur.source} is corrupted: variable {name!r} has rank {rank}, expected at most {_MAX_RANK}. {_FIX}")
    shape = struct.unpack(f"<{rank}I", cur.take(4 * rank, f"the shape of {name!r}"))
    if version >= 4:
        type_id = cur.uint("<B", f"the dtype of {name!r}")
        if type_id >= len(CT2_DTYPES):
            raise ModelError(
                f"{cur.source} is corrupted: variable {name!r} has dtype id {type_id}, expected 0 to "
                f"{len(CT2_DTYPES) - 1} ({', '.join(CT2_DTYPES)}). {_FIX}"
            )
        dtype = CT2_DTYPES[type_id]
        num_bytes = cur.uint("<I", f"the size of {name!r}")
    else:
        item_size = cur.uint("<B", f"the item size of {name!r}")
        if item_size not in _DTYPE_FROM_ITEM_SIZE:
            raise ModelError(f"{cur.source} is corrupted: variable {name!r} has item size {item_size}, expected 1, 2 or 4. {_FIX}")
        dtype = _DTYPE_FROM_ITEM_SIZE[item_size]
        num_bytes = cur.uint("<I", f"the size of {name!r}") * item_size
    np_dtype = np.dtype(_NUMPY_DTYPES[dtype])
    expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
    if num_bytes != expected:
        raise ModelError(
            f"{cur.source} is corrupted: variable {name!r} of shape {list(shape)} and dtype {dtype} should take "
            f"{expected} bytes, the file says {num_bytes}. {_FIX}"
        )
    array = np.frombuffer(cur.take(num_bytes, f"the data of {name!r}"), dtype=np_dtype).reshape(shape)
    if dtype == "bfloat16":
        # bfloat16 is the upper half of a float32: shifting the bits back is exact.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array, dtype


def _read_aliases(cur: _Cursor, variables: dict[str, np.ndarray]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for _ in range(cur.uint("<I", "the number of aliases")):
        alias = cur.string("an alias name")
        target = cur.string(f"the target of alias {alias!r}")
        if target not in variables:
            raise ModelError(f"{cur.source} is corrupted: alias {alias!r} points to {target!r}, which is not a variable. {_FIX}")
        aliases[alias] = target
    return aliases


def parse_ct2_bytes(data: bytes | memoryview, source: str = "<bytes>") -> CT2Model:
    """Parses the bytes of a CTranslate2 ``model.bin``.

    Args:
        data: The whole file content. Arrays in the result are views of it, so keep it alive.
        source: A name for error messages (the path).

    Returns:
        The parsed :class:`CT2Model`.

    Raises:
        ModelError: If the bytes are truncated, have trailing data, or do not follow the layout.

    Example:
        ```python
        >>> from pathlib import Path
        >>> model = parse_ct2_bytes(Path("faster-whisper-tiny/model.bin").read_bytes())  # doctest: +SKIP
        >>> model.spec, model["encoder/conv1/weight"].shape  # doctest: +SKIP
        ('WhisperSpec', (384, 80, 3))

        ```
    """
    cur = _Cursor(data, source)
    version, spec, revision = _read_header(cur)
    num_variables = cur.uint("<I", "the number of variables")
    if num_variables > _MAX_VARIABLES:
        raise ModelError(f"{source} is corrupted: it claims {num_variables} variables, more than any real model. {_FIX}")
    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for _ in range(num_variables):
        name, array, dtype = _read_variable(cur, version)
        variables[name], dtypes[name] = array, dtype
    aliases = _read_aliases(cur, variables) if version >= 3 else {}
    if cur.pos != len(cur.data):
        raise ModelError(
            f"{source} is corrupted: {len(cur.data) - cur.pos} unexpected bytes follow the end of the model at offset "
            f"{cur.pos} (parts concatenated twice or in the wrong order?). {_FIX}"
        )
    return CT2Model(source, version, spec, revision, variables, dtypes, aliases)


def read_ct2_model(path: str | os.PathLike | Sequence[str | os.PathLike]) -> CT2Model:
    """Reads a CTranslate2 ``model.bin``, or a model split in parts that are concatenated in order.

    Args:
        path: The ``model.bin`` file, a model directory containing one, or a list of part files.

    Returns:
        The parsed :class:`CT2Model`.

    Raises:
        ModelError: If a file is missing or the content is truncated or corrupted.

    Example:
        ```python
        >>> model = read_ct2_model("faster-whisper-tiny")  # doctest: +SKIP
        >>> model.names("encoder/layer_0/self_attention")[:2]  # doctest: +SKIP
        ['encoder/layer_0/self_attention/layer_norm/beta', 'encoder/layer_0/self_attention/layer_norm/gamma']

        ```
    """
    many = isinstance(path, Sequence) and not isinstance(path, (str, bytes))  # bytes are one path, not its parts
    parts = [Path(path_text(part, "the CTranslate2 model file", error=ModelError, refuse_empty=True))
             for part in (path if many else [path])]
    if len(parts) == 1 and parts[0].is_dir():
        parts = [parts[0] / "model.bin"]
    for part in parts:
        if not part.is_file():
            raise ModelError(f"CTranslate2 model file {part} does not exist. Expected a model.bin (or all of its parts).")
    data = parts[0].read_bytes() if len(parts) == 1 else b"".join(p.read_bytes() for p in parts)
    return parse_ct2_bytes(data, source="+".join(str(p) for p in parts))
