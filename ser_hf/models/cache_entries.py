"""The files of ser_hf's own caches of backbone states (pooled states, layer inputs): written so that nothing
outside the cache is ever touched, read so that a damaged entry is computed again, never used or a traceback.

A cache entry is one ``.npy`` array that ser_hf wrote whole (a temporary file, then a rename) and can always compute
again. So what stands in an entry's place and is not such an array is not trusted:

- a symbolic link (ser_hf never writes one) is removed without being followed: writing through it would replace a
  file elsewhere, reading through it would take another file's numbers for the clip's;
- a FIFO, a device or a socket is removed unopened (opening a FIFO would block);
- a file that is empty, truncated, a pickle, or holds an array of the wrong shape, type or with non-finite values
  is removed;
- a folder is refused with its path and the fix (ser_hf does not delete a folder it did not make).

Each removed entry is computed again by the caller, as a missing one is.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ser_hf._io import atomic_write_bytes
from ser_hf.errors import ModelError
from ser_hf.paths import display_path

__all__ = ["finite_array", "load_entries", "load_entry", "save_entry"]

#: ``check(array) -> bool``: whether an array read from an entry is one the cache could have written.
Check = Callable[[np.ndarray], bool]


def finite_array(shape: tuple[int, ...], dtypes: tuple = (np.float32,)) -> Check:
    """An entry check: an array of ``shape`` (``-1``: any positive length) and one of ``dtypes``, all finite."""
    def check(array: np.ndarray) -> bool:
        return (array.dtype in dtypes and array.ndim == len(shape) and array.size > 0
                and all(want in (-1, got) for want, got in zip(shape, array.shape)) and bool(np.isfinite(array).all()))

    return check


def save_entry(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to the entry ``path`` whole (temporary file, rename), replacing a link there, never its target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue(), follow_symlinks=False)


def load_entry(path: Path, check: Check) -> np.ndarray | None:
    """The array of the entry ``path`` if it is one the cache wrote and ``check`` accepts; otherwise ``None``, with
    whatever stood there removed (see the module's description).

    Raises:
        ModelError: for a folder in the entry's place.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise ModelError(f"{display_path(path)} is a folder where ser_hf's cache of backbone states keeps a file; "
                         f"remove it (or pass another embedding_cache_dir) and run again.")
    if not stat.S_ISREG(info.st_mode):  # a link, a FIFO, a device: never opened
        path.unlink(missing_ok=True)  # another process of the same launch may have removed it first
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError):  # truncated, empty, a pickle, random bytes
        array = None
    if isinstance(array, np.ndarray) and check(array):
        return array
    path.unlink(missing_ok=True)
    return None


def load_entries(paths: Sequence[Path], check: Check) -> dict[int, np.ndarray]:
    """:func:`load_entry` of every path: ``{index: array}`` for the usable ones (the others are removed)."""
    found = {}
    for index, path in enumerate(paths):
        array = load_entry(path, check)
        if array is not None:
            found[index] = array
    return found
