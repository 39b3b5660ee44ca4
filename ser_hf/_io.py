"""Small file helpers every layer shares: atomic writes, file digests, defensive reads and the cache root.

- :func:`atomic_write_bytes` (and ``_text``, ``_json``): the data goes to a temporary file beside the target and is
  renamed over it (``os.replace`` is atomic), so a reader (another process sharing a cache, a rerun after a crash)
  sees either the old file or the complete new one, never half a file.
- :func:`default_permissions`: what ``open()``/``mkdir`` would give, for files and folders that a tool made private
  (safetensors' ``0600``, ``mkdtemp``'s ``0700``) and that become outputs others read; atomic writes do the same.
- :func:`file_sha256`: the SHA-256 of a file's bytes, read in 1 MiB blocks (``hashlib.file_digest`` needs 3.11),
  remembered for the process while the file stays as it was.
- :func:`read_json`: a settings file read defensively (size bounded, valid UTF-8 JSON, no repeated keys, an object).
- :func:`cache_root`: where ser_hf caches what it computes (``$SER_HF_CACHE``, else ``~/.cache/ser_hf``); each
  cache is a folder under it (``embeddings``, ``features``, ``datasets``, ``synthetic``, ...).

Folders have two modules of their own: :mod:`ser_hf._atomic_folder` writes one so that it is never half there, and
:mod:`ser_hf._output_folders` checks, before any work, that an output folder may be written.

Example:
    ```python
    >>> import tempfile
    >>> from pathlib import Path
    >>> from ser_hf._io import atomic_write_json, cache_root, file_sha256
    >>> cache_root()  # doctest: +SKIP
    PosixPath('/home/me/.cache/ser_hf')
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = atomic_write_json(Path(folder) / "note.json", {"ok": True})
    ...     path.read_text(), len(file_sha256(path))
    ('{"ok": true}\\n', 64)

    ```
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ser_hf.errors import ModelError
from ser_hf.paths import display_path

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "CACHE_ENV", "cache_root",
           "default_permissions", "detach_for_rewrite", "file_sha256", "link_problem", "MAX_JSON_BYTES",
           "read_bounded", "read_json", "refuse_dangling_link", "temporary_file", "unique_keys", "write_output_file"]


#: The environment variable that moves every ser_hf cache.
CACHE_ENV = "SER_HF_CACHE"
#: config.json, preprocessor_config.json, ser_hf_run.json...: a few KB each; id2label of AudioSet is ~30 KB.
MAX_JSON_BYTES = 4 * 2**20


def cache_root() -> Path:
    """``$SER_HF_CACHE``, else ``~/.cache/ser_hf``: the folder every ser_hf cache lives under (not created)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "ser_hf"))


#: Digests already computed in this process, by the file's identity and times (see :func:`file_sha256`).
_DIGESTS: dict[tuple[int, ...], str] = {}
#: How long a file must have been left alone before its digest is remembered: file systems stamp times in coarse ticks
#: (a few milliseconds on ext4), so a file rewritten right after it was hashed could show the very same times (git
#: re-reads such "racy" files for the same reason). A file changed after it was hashed then always shows a later time.
_SETTLED_NS = 2_000_000_000


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in blocks of ``chunk_size``.

    Remembered for the life of the process by the file's device, inode, size, modification and change times: a CV
    hashes every clip for its resume record and again for its embedding cache, and now reads each once. Nothing that
    changes the bytes leaves all of these as they were (putting an old modification time back still sets the change
    time, which no user can set); a file changed moments before it was hashed is not remembered (:data:`_SETTLED_NS`).
    """
    started = time.time_ns()
    with open(path, "rb") as handle:
        before = os.fstat(handle.fileno())
        key = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
        if key in _DIGESTS:
            return _DIGESTS[key]
        digest = hashlib.sha256()
        while block := handle.read(chunk_size):
            digest.update(block)
        after = os.fstat(handle.fileno())
    found = digest.hexdigest()
    unchanged = key == (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns)
    if unchanged and max(before.st_mtime_ns, before.st_ctime_ns) < started - _SETTLED_NS:
        _DIGESTS[key] = found
    return found


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``os.umask`` can only be read by setting
    it, which for a moment would give files other threads create right then the wrong permissions)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _default_mode(folder: bool = False) -> int:
    """What ``open()`` (``0666``) or ``mkdir`` (``0777``) gives a new file or folder under the umask, the owner always
    keeping read and write (and, for a folder, entry): ser_hf writes into them after this."""
    return ((0o777 if folder else 0o666) & ~_umask()) | (0o700 if folder else 0o600)


def default_permissions(*paths: str | os.PathLike) -> None:
    """Give files and folders that a tool created private the permissions a plain ``open()``/``mkdir`` would have.

    safetensors writes its files ``0600`` and ``tempfile.mkdtemp`` makes folders ``0700``; a checkpoint, a model
    cache or a built corpus is an output others read (a service running as another account, a group's shared
    folder, a container that copies the folder), so every such file ser_hf writes goes through this.
    """
    for path in map(Path, paths):
        try:
            path.chmod(_default_mode(folder=path.is_dir()))
        except OSError:  # a file system without Unix permissions (FAT, some network shares): nothing to widen
            pass


def temporary_file(out: str | os.PathLike) -> Path:
    """A new, empty temporary file beside ``out`` (``.OUT.<random>.tmp``): a unique name, so no file of the
    user's that happens to be called like it is ever overwritten.

    It gets the permissions the file it will replace has, or, for a new file, those ``open()`` would give it
    (:func:`default_permissions`): ``mkstemp``'s private ``0600`` would otherwise become the output's once it is
    renamed into place. The owner can always read and write it (the caller writes it after this returns).
    """
    out = Path(out)
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with contextlib.suppress(OSError):  # a file system without Unix permissions refuses: the write goes on
            os.fchmod(handle, _replacement_mode(out))
    finally:
        os.close(handle)
    return Path(name)


def _replacement_mode(out: Path) -> int:
    """The mode of the regular file ``out`` (the owner keeping read and write), else a new file's."""
    try:
        status = out.stat()
    except OSError:
        return _default_mode()
    return (status.st_mode & 0o777) | 0o600 if stat.S_ISREG(status.st_mode) else _default_mode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False,
                       follow_symlinks: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename.

    Args:
        path: The file to write (its folder must exist).
        data: The bytes.
        fsync: Flush the bytes to disk before the rename (for outputs that must survive a power cut, not caches).
        follow_symlinks: Through a symlink, replace the file it points at and keep the link (a file the user named,
            such as ``--out predictions.csv``). False replaces the link itself: what a command writes into its own
            output folder, where a link (or a hard link) left in an earlier output must never carry the new file
            onto a file elsewhere.

    Returns:
        ``path``.
    """
    path = Path(path)
    # Through a symlink, replace the file it points at (as appending through it would) and keep the link.
    target = Path(os.path.realpath(path)) if follow_symlinks and path.is_symlink() else path
    temporary = temporary_file(target)
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk must not be left fuller
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False,
                      follow_symlinks: bool = True) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync, follow_symlinks=follow_symlinks)


def atomic_write_json(path: str | os.PathLike, value: Any, *, fsync: bool = False, follow_symlinks: bool = True,
                      **dumps: Any) -> Path:
    """:func:`atomic_write_bytes` of ``json.dumps(value, **dumps)`` and a newline."""
    return atomic_write_text(path, json.dumps(value, **dumps) + "\n", fsync=fsync, follow_symlinks=follow_symlinks)


def link_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with ``path`` when it is a symbolic link that leads nowhere: ``"a symbolic link loop"`` (it leads
    back to itself: ``stat`` fails with ELOOP), ``"a symbolic link to 'T', which does not exist"``; None otherwise."""
    path = Path(path)
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself, never to a file or folder)"
        return f"a symbolic link to {display_path(os.readlink(path))!r}, which does not exist"
    return None


def refuse_dangling_link(path: str | os.PathLike, what: str, fix: str) -> None:
    """Raise ModelError when ``path`` is a symbolic link to nothing: ``"{what} is a symbolic link to 'T', which does
    not exist; {fix}"`` (or ``is a symbolic link loop``). A dangling link must not pass for a missing file (silently
    skipped) nor for a file."""
    problem = link_problem(path)
    if problem is not None:
        raise ModelError(f"{what} is {problem}; {fix}")


def detach_for_rewrite(folder: str | os.PathLike, patterns: Sequence[str]) -> None:
    """Before a library (``save_pretrained``, safetensors, skops) writes files matching ``patterns`` into ``folder``
    with a plain open-for-write, remove the ones that are symlinks or hard links: the write then makes a new file
    instead of going through the link onto a file elsewhere (the link's target, or the other names of a hard link,
    as a ``cp -al`` backup has, keep their bytes). Regular files with one name are left to be overwritten."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_symlink() or (path.is_file() and path.stat().st_nlink > 1):
                path.unlink()


def write_output_file(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write one file of a command's output folder (a report, a summary, a card, a record): atomically, and
    replacing whatever is at ``path`` (a symlink or a hard link left there is replaced, never written through)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_bytes(path, raw, follow_symlinks=False)



def unique_keys(error: Callable[[list[str]], Exception]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json.loads`` ``object_pairs_hook`` that raises ``error(repeated keys)`` for an object with a key twice
    (plain ``json`` would silently keep the last value)."""
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) != len(pairs):
            raise error(sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)[:20])
        return value

    return build


def read_bounded(path: str | os.PathLike, max_bytes: int, *, fix: str, what: str = "this file") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them.

    Raises:
        ModelError: for a folder, a pipe or a device (a FIFO would block the read forever, ``/dev/zero`` fill the
            memory) or a file larger than ``max_bytes`` (also one that grew past it while read), naming the file,
            the limit (``what`` can need so much) and ``fix``.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ModelError(f"{display_path(path)} is not a regular file (a folder, a pipe or a device). {fix}")
    size = path.stat().st_size
    data = path.read_bytes() if size <= max_bytes else b""
    _refuse_larger(path, max(size, len(data)), max_bytes, what, fix)  # one grown since it was measured too
    return data


def _refuse_larger(path: Path, size: int, max_bytes: int, what: str, fix: str) -> None:
    if size > max_bytes:
        raise ModelError(f"{display_path(path)} is {size} bytes, more than the {max_bytes} {what} can need. {fix}")


def read_json(path: str | os.PathLike, *, fix: str, max_bytes: int = MAX_JSON_BYTES, data: bytes | None = None) -> dict:
    """A JSON object from ``path``: size bounded, valid UTF-8 JSON, no duplicate keys, an object at the top.

    Args:
        path: The file (also named in errors when ``data`` is given).
        fix: What the user should do when the file is unusable, ending the error message.
        max_bytes: Largest accepted file.
        data: The file's bytes, when already read.

    Raises:
        ModelError: naming the file, what is wrong with it, and ``fix``.
    """
    path = Path(path)
    if data is None:
        data = read_bounded(path, max_bytes, fix=fix, what="a settings file")
    _refuse_larger(path, len(data), max_bytes, "a settings file", fix)
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=unique_keys(lambda repeated: ModelError(
            f"{display_path(path)}: key(s) {repeated} appear more than once; JSON readers would silently keep one of "
            f"them. Keep one of each.")))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{display_path(path)} is not valid JSON ({err}). {fix}") from None
    except RecursionError:
        raise ModelError(f"{display_path(path)} nests values too deeply to be a settings file. {fix}") from None
    if not isinstance(value, dict):
        raise ModelError(f"{display_path(path)} must hold a JSON object, found {type(value).__name__}. {fix}")
    return value
