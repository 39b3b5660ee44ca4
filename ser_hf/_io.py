"""Small file helpers every layer shares: atomic writes, file digests and the cache root.

- :func:`atomic_write_bytes` (and ``_text``, ``_json``): the data goes to a temporary file beside the target and is
  renamed over it (``os.replace`` is atomic), so a reader (another process sharing a cache, a rerun after a crash)
  sees either the old file or the complete new one, never half a file.
- :func:`atomic_directory`: the same for a folder (a checkpoint): written beside the target, moved in when complete.
- :func:`check_output_folder`: refuses a folder output that would overwrite a file, the input it is made from, or
  anything that is not an earlier output of the same kind.
- :func:`default_permissions`: what ``open()``/``mkdir`` would give, for files and folders that a tool made private
  (safetensors' ``0600``, ``mkdtemp``'s ``0700``) and that become outputs others read; atomic writes do the same.
- :func:`file_sha256`: the SHA-256 of a file's bytes, read in 1 MiB blocks (``hashlib.file_digest`` needs 3.11),
  remembered for the process while the file stays as it was.
- :func:`refuse_folders_where_files_go`, :func:`refuse_non_folder`: refuse, before any work, a folder standing where a
  file is written, or a file or link where a folder is made.
- :func:`read_json`: a settings file read defensively (size bounded, valid UTF-8 JSON, no repeated keys, an object).
- :func:`cache_root`: where ser_hf caches what it computes (``$SER_HF_CACHE``, else ``~/.cache/ser_hf``); each
  cache is a folder under it (``embeddings``, ``features``, ``datasets``, ``synthetic``, ...).

Example:
    ```python
    >>> from ser_hf._io import atomic_write_json, cache_root, file_sha256
    >>> path = atomic_write_json(cache_root() / "note.json", {"ok": True})
    >>> len(file_sha256(path))
    64
    ```
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ser_hf.errors import ModelError, SERError
from ser_hf.paths import display_path, is_utf8, printable

__all__ = ["CACHE_ENV", "CHECKPOINT_OUTPUT_FILES", "DERIVED_NAME_BYTES", "MAX_JSON_BYTES", "Other", "atomic_directory", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "cache_root", "check_folder_path", "check_name_fits", "check_output_folder",
           "check_own_folder", "check_writable", "default_permissions", "detach_for_rewrite", "file_sha256", "folder_entries", "link_problem", "name_max", "nearest_folder", "process_alive",
           "read_bounded", "read_json", "recover_replacement", "refuse_dangling_link", "refuse_folders_where_files_go", "refuse_non_folder", "refuse_sources", "remove_own_folder", "temporary_file", "unique_keys",
           "write_output_file"]

logger = logging.getLogger(__name__)

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


def folder_entries(folder: str | os.PathLike) -> frozenset[str]:
    """Every path inside ``folder`` (relative, ``/``-separated; links inside it not followed), or none when it is no
    folder: what :func:`atomic_directory` compares with the folder it replaces."""
    folder = Path(folder)
    if not folder.is_dir():
        return frozenset()
    return frozenset(entry.relative_to(folder).as_posix() for entry in folder.rglob("*"))


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike, overwrite: bool = False, *, expected: Collection[str] | None = None,
                     last: str | None = None) -> Iterator[Path]:
    """Yields a temporary sibling directory of ``out`` that replaces ``out`` only if the block succeeds.

    An interrupted or failed write never leaves a half-written ``out`` that would look complete, nor (replacing an
    earlier ``out``) no ``out`` at all: the two folders are swapped in one step where the system can. A process killed
    meanwhile may leave hidden ``.<name>.ser_hf-*`` folders beside ``out``, which the next check of ``out``
    (:func:`check_output_folder`, through :func:`recover_replacement`) tidies.

    Nothing that was not in ``out`` when the caller checked it is ever deleted: a file the user saved there while the
    work ran stops the replacement (ModelError; ``out`` is left as it is). An existing empty ``out`` is filled in place
    (the new files are moved into it), so it keeps its permissions, owner, group (a setgid group folder) and ACLs.

    Args:
        out: The final directory.
        overwrite: Replace ``out`` if it exists (the old one is moved aside, compared with ``expected``, then deleted).
        expected: What ``out`` held when the caller checked it (:func:`folder_entries`, taken right after the check);
            None: what it holds when the block begins.
        last: The file moved into an existing empty ``out`` last (the output's marker), so a fill cut short is not
            taken for a complete output.

    Raises:
        ModelError: ``out`` changed meanwhile (it holds something new, or was made by someone else).

    Example:
        ```python
        >>> with atomic_directory(Path("checkpoint")) as tmp:  # doctest: +SKIP
        ...     (tmp / "config.json").write_text("{}")
        ```
    """
    out = Path(out)
    if out.is_symlink():  # replace the folder the link points at, keeping the link (as atomic_write_bytes does)
        out = Path(os.path.realpath(out))
    expected = folder_entries(out) if expected is None else frozenset(expected)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_NEW_FOLDER.format(name=out.name, pid=os.getpid()), dir=out.parent))
    # mkdtemp makes the directory private (0700); a checkpoint is meant to be readable like any output.
    default_permissions(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.is_dir() and not any(out.iterdir()):
        _fill_in_place(tmp, out, last)
    elif out.exists() and overwrite:
        _replace_folder(tmp, out, expected)
    else:
        try:
            os.replace(tmp, out)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"could not move the new folder into {out} ({err}); it may have been created "
                             f"meanwhile.") from err


#: What :func:`atomic_directory` names its hidden folders beside ``out``: the new output being written, and (where the
#: system cannot swap two folders in one step) the earlier one moved aside. The pid says whether their writer is alive.
_NEW_FOLDER, _OLD_FOLDER = ".{name}.ser_hf-tmp-{pid}-", ".{name}.ser_hf-old-{pid}"
_REPLACEMENT_LEFTOVER = re.compile(r"\.(?P<name>.+)\.ser_hf-(?P<kind>tmp|old)-(?P<pid>[0-9]+)(?:-[^/]*)?")


def _replace_folder(new: Path, out: Path, expected: frozenset[str]) -> None:
    """Put the folder ``new`` in the place of the existing ``out`` and delete the earlier output, unless ``out`` holds
    an entry not in ``expected`` (ModelError; nothing replaced, ``new`` deleted).

    Where the system can (Linux), the two folders are swapped in one step, so a kill at any moment leaves a whole
    output in ``out``; elsewhere the earlier output is first moved aside, under a name the next check of ``out``
    (:func:`recover_replacement`) restores if a kill came before the new one was in place."""
    swapped = _exchange(new, out)
    old = new if swapped else out.with_name(_OLD_FOLDER.format(name=out.name, pid=os.getpid()))
    if not swapped:
        os.replace(out, old)
    # Compared once moved aside, where nothing more can be saved into it by its name.
    added = sorted(folder_entries(old) - expected)
    if added:
        if swapped:
            _exchange(new, out)  # back: ``out`` holds the earlier output again, ``new`` the new one
        else:
            os.replace(old, out)
        shutil.rmtree(new, ignore_errors=True)
        more = f" (and {len(added) - 1} more)" if len(added) > 1 else ""
        raise ModelError(f"{display_path(out)} changed while its replacement was written: it now holds "
                         f"{display_path(out / added[0])}{more}, which was not there when the work began and "
                         f"which ser_hf did not write; replacing the folder would delete it. Nothing was replaced "
                         f"and the new output was not written: move that file away (or pass another output "
                         f"folder) and run again.")
    if not swapped:
        try:
            os.replace(new, out)
        except OSError as err:
            shutil.rmtree(new, ignore_errors=True)
            os.replace(old, out)  # put the earlier output back rather than leave nothing
            raise ModelError(f"could not move the new folder into {out} ({err}); it may have been created "
                             f"meanwhile.") from err
    shutil.rmtree(old, ignore_errors=True)


#: Linux's ``renameat2`` flag that swaps two paths, and the "current folder" descriptor its paths are relative to.
_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing folders in one step (``renameat2`` with ``RENAME_EXCHANGE``, Linux 3.15+ with glibc 2.28+);
    False where the system or the file system cannot, and the caller must use two renames."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # not Linux, or an older C library
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system without it (some network shares)
        return False
    raise OSError(code, os.strerror(code), str(second))


def recover_replacement(out: str | os.PathLike) -> None:
    """Tidy what a replacement of the folder ``out`` by :func:`atomic_directory` left when its process was killed:
    the earlier output moved aside is put back where ``out`` is missing (with a warning), and the hidden folders of
    replacements whose process is gone are deleted otherwise. Only names :func:`atomic_directory` gives (with the
    writer's pid) are touched, and only those of processes that no longer run."""
    out = Path(os.path.realpath(out))
    try:
        matches = map(_REPLACEMENT_LEFTOVER.fullmatch, os.listdir(out.parent))
        leftovers = [(match, out.parent / match.group(0)) for match in matches
                     if match and match.group("name") == out.name and not process_alive(int(match.group("pid")))]
    except OSError:
        return  # a parent that cannot be listed: the caller's check says what is wrong
    for match, folder in sorted(leftovers, key=lambda item: item[0].group("kind") != "old"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        if match.group("kind") == "old" and not os.path.lexists(out):
            os.rename(folder, out)
            logger.warning("%s was missing: its replacement was stopped after moving the earlier output aside; put "
                           "the earlier output back from %s", display_path(out), folder.name)
        else:
            logger.info("removing %s, left by a replacement of %s that was stopped", folder.name, display_path(out))
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's process counts as running): what tells the hidden
    folders of a killed writer from those of one still at work (a writer on another machine sharing the disk is not
    seen, and a reused pid keeps a dead writer's folder a while longer, which only delays tidying it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fill_in_place(tmp: Path, out: Path, last: str | None) -> None:
    """Move the entries of ``tmp`` into the empty folder ``out`` (``last`` at the end), never over an entry that
    appears there meanwhile; files take ``out``'s group where it is a setgid folder, as files made in it would.

    A JSON-object ``last`` (an output's record) goes in first as a copy marked ``"incomplete": true`` and is replaced
    by the real one at the end, so a fill stopped midway leaves a folder its own command recognises as its unfinished
    output (and replaces), never one that looks finished or like a user's files."""
    group = out.stat().st_gid if out.stat().st_mode & stat.S_ISGID else None
    placeholder = _incomplete_copy(tmp / last) if last else None
    if placeholder is not None:
        try:
            _move_no_replace(placeholder, out / last)
        except OSError:
            placeholder.unlink(missing_ok=True)
            raise ModelError(f"{display_path(out)} changed while the new output was moved into it: "
                             f"{display_path(out / last)} appeared meanwhile and was left as it is. The new output is "
                             f"in {display_path(tmp)}; move it in yourself, or delete it and run again.") from None
    for entry in sorted(tmp.iterdir(), key=lambda path: (path.name == last, path.name)):
        target = out / entry.name
        try:
            if placeholder is not None and entry.name == last:
                os.replace(entry, target)  # over the placeholder this fill put there
            else:
                _move_no_replace(entry, target)
        except OSError as err:
            raise ModelError(f"{display_path(out)} changed while the new output was moved into it ({err}): "
                             f"{display_path(target)} appeared meanwhile and was left as it is. The files not yet "
                             f"moved are in {display_path(tmp)}; move them in yourself, or delete it and run "
                             f"again.") from None
        if group is not None:
            for path in (target, *(target.rglob("*") if target.is_dir() and not target.is_symlink() else ())):
                with contextlib.suppress(OSError):  # not a member of that group: the files keep the user's
                    os.chown(path, -1, group, follow_symlinks=False)
    tmp.rmdir()


def _incomplete_copy(record: Path) -> Path | None:
    """A copy of the JSON object at ``record`` with ``"incomplete": true``, beside ``record``'s folder (None when it is
    not a JSON object)."""
    try:
        value = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    copy = record.parent.with_name(record.parent.name + ".incomplete")
    copy.write_text(json.dumps({**value, "incomplete": True}) + "\n", encoding="utf-8")
    return copy


def _move_no_replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, failing (FileExistsError or ENOTEMPTY) rather than replacing what is there: a
    file goes by a hard link then an unlink (``link`` never replaces), a folder by a rename (which fails over a
    non-empty folder)."""
    if source.is_dir() and not source.is_symlink():
        os.rename(source, target)
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)
        return
    os.unlink(source)


class Other:
    """A marker's expected value meaning "present, and anything but ``value``": a ``cv/cv_summary.json`` whose ``kind``
    is not this command's (another command's, or one this version does not know) marks another kind of output."""

    def __init__(self, value: Any):
        self.value = value

    def matches(self, found: Any) -> bool:
        return found != self.value


#: Bytes a name derived from an output's adds to it, at most: ``.NAME.tmp-XXXXXXXX``, ``.NAME.XXXXXXXX.tmp``, a CSV's
#: job file written through its own temporary copy (``..NAME.job.json.XXXXXXXX.tmp``: 24), a shard's
#: (``.NAME.shard-12-of-16.XXXXXXXX.tmp``: 29).
DERIVED_NAME_BYTES = 32


#: A marker: a glob pattern, or a pattern and the keys a JSON marker must hold (so a user's own ``report.json`` or
#: ``hp_search.json`` does not pass for ser_hf's), or the values it must hold under keys (a mapping; a value may be
#: :class:`Other`).
Marker = str | tuple[str, Sequence[str] | Mapping[str, Any]]


def _holds(folder: Path, markers: Sequence[Marker]) -> list[str]:
    """The patterns of ``markers`` (globs relative to ``folder``) that match a regular file there (holding the
    marker's JSON keys, or values, where it names some), each with the values found: a folder or a symlink named like
    a marker marks nothing (a user's ``eval/`` folder is not an earlier run's report)."""
    found = []
    for marker in markers:
        pattern, keys = (marker, ()) if isinstance(marker, str) else marker
        for path in folder.glob(pattern):
            if not path.is_file() or path.is_symlink():  # never read a FIFO (it would block) or through a link
                continue
            values = _json_match(path, keys) if keys else {}
            if values is not None:
                shown = ", ".join(f"{key}: {printable(str(value))[:40]}" for key, value in values.items())
                found.append(f"{pattern} ({shown})" if shown else pattern)
                break
    return found


def _rejected_marker(folder: Path, patterns: Sequence[str]) -> str:
    """Why a file named like one of ``patterns`` in ``folder`` was not taken for an earlier output's marker, as a
    sentence for the refusal ('' when there is none): saying only that the folder "holds no" marker it visibly holds
    would send the user looking for the wrong thing."""
    for pattern in patterns:
        for path in folder.glob(pattern):
            name = printable(path.relative_to(folder).as_posix())
            if path.is_symlink():
                return (f" Its {name} is a symbolic link, and ser_hf writes that record as a file, so "
                        f"a link is not taken for one: if this is an earlier ser_hf output, put the file itself there "
                        f"(or delete the folder) to start afresh.")
            if not path.is_file():
                return (f" Its {name} is not a regular file (a folder, a pipe or a device), so it is "
                        f"not ser_hf's record.")
            return (f" Its {name} is there but cannot be read as ser_hf's (damaged, cut short or "
                    f"edited): if this is an earlier ser_hf output, delete that file (or the folder) to start afresh.")
    return ""


def _json_match(path: Path, keys: Sequence[str] | Mapping[str, Any]) -> dict[str, Any] | None:
    """The values under ``keys`` of the JSON object at ``path`` when it holds them all (matching the expected values
    of a mapping): ``{}`` for plain keys; None when it does not match or cannot be read."""
    try:
        value = read_json(path, fix="")
    except (ModelError, OSError):
        return None
    if not all(key in value for key in keys):
        return None
    if not isinstance(keys, Mapping):
        return {}
    for key, expected in keys.items():  # an expected value with .matches (Other, ...) decides for itself
        if not (expected.matches(value[key]) if hasattr(expected, "matches") else value[key] == expected):
            return None
    return {key: value[key] for key in keys}


#: A :func:`temporary_file` name: ``.NAME.`` then the 8 characters ``tempfile.mkstemp`` draws, then ``.tmp``.
_LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _leftover_of(name: str, own_names: Collection[str]) -> bool:
    """Whether ``name`` is a :func:`temporary_file` of one of ``own_names`` (``.NAME.<random>.tmp``), as a write killed
    before its rename leaves it: ser_hf's own, so it never stops the run that replaces the folder."""
    return bool(_LEFTOVER.match(name)) and name[1:-13] in own_names


#: Files a desktop leaves in a folder someone only looked at (its plots, in Finder or Explorer): no one's work.
_DESKTOP_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _is_desktop_litter(name: str) -> bool:
    return name in _DESKTOP_LITTER or name.startswith("._")  # ._x: macOS's AppleDouble file of x on other disks


def check_own_folder(folder: Path, own_names: Collection[str], own_dirs: Collection[str] = ()) -> None:
    """Refuse ``folder`` (an earlier ser_hf output about to be replaced) if it holds anything ser_hf did not write
    there: a subfolder not in ``own_dirs`` (paths relative to ``folder``, e.g. a CV's ``fold1``), a file not named in
    ``own_names`` (or left by a killed write of one, or by a desktop that showed the folder: ``.DS_Store``,
    ``Thumbs.db``) or lying outside those folders, a link in any other place, anything but a regular file. A link in
    the place of an own file is removed with the folder, never followed (what it names stays as it is).

    Raises:
        ModelError: naming the first foreign entry and how to keep it.
    """
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        foreign = [folder]
    else:
        def ours(entry: Path) -> bool:
            place = entry.relative_to(folder)
            parent = place.parent.as_posix()
            if entry.is_symlink():  # a link in the place of a file ser_hf writes: removing it never touches its target
                return entry.name in own_names and (parent == "." or parent in own_dirs)
            if entry.is_dir():
                return place.as_posix() in own_dirs
            return (entry.is_file() and (entry.name in own_names or _leftover_of(entry.name, own_names)
                                         or _is_desktop_litter(entry.name))
                    and (parent == "." or parent in own_dirs))

        foreign = [entry for entry in folder.rglob("*") if not ours(entry)]
        outside = {entry for entry in foreign if entry.is_dir() and not entry.is_symlink()}
        foreign = [entry for entry in foreign if not outside.intersection(entry.parents)]  # a foreign folder, once
    if foreign:
        raise ModelError(f"{display_path(folder)} would be replaced, but it holds {display_path(foreign[0])}"
                         f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}, which ser_hf did not "
                         f"write there; move it away (or pass another output folder) and run again.")


def remove_own_folder(folder: Path, own_names: Collection[str], own_dirs: Collection[str] = ()) -> None:
    """Delete ``folder``, an earlier ser_hf output, after :func:`check_own_folder` (nothing is deleted if it refuses)."""
    check_own_folder(folder, own_names, own_dirs)
    if folder.exists():
        shutil.rmtree(folder)


def nearest_folder(path: str | os.PathLike) -> Path | None:
    """The closest existing folder above ``path`` (where it, or the folders to hold it, would be made)."""
    return next((parent for parent in Path(path).absolute().parents if parent.is_dir()), None)


def name_max(path: str | os.PathLike) -> int:
    """The longest file name, in bytes, the file system that would hold ``path`` takes (255 where it cannot say)."""
    try:
        return os.pathconf(nearest_folder(path) or "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_name_fits(path: str | os.PathLike, extra: int, shown: str) -> None:
    """Raise ModelError when ``path``'s name, with the ``extra`` bytes of the names ser_hf derives from it (a hidden
    temporary copy beside it, a lock, a shard), would exceed the longest name the file system holds: caught before any
    work, not as a raw ``OSError`` at its end."""
    path = Path(path)
    limit = name_max(path)
    size = len(os.fsencode(path.name))
    if size + extra > limit:
        raise ModelError(f"{shown}: its name is {size} bytes; ser_hf also writes hidden files beside it whose names are "
                         f"up to {extra} bytes longer (a temporary copy, a lock), and this file system holds names of "
                         f"at most {limit} bytes. Pass a name of at most {limit - extra} bytes.")


def refuse_sources(out: str | os.PathLike, sources: Sequence[str | os.PathLike], argument: str, what: str) -> None:
    """Raise ModelError when the output folder ``out`` is, or holds, one of the folders it is made from."""
    # os.path.realpath, not Path.resolve: a symbolic link loop makes resolve raise RuntimeError (before Python 3.13),
    # while realpath leaves the loop's link in the path; the callers name such a loop themselves.
    resolved = Path(os.path.realpath(Path(out).expanduser()))
    for source in sources:
        source = Path(os.path.realpath(Path(source).expanduser()))
        if resolved == source or resolved in source.parents:
            raise ModelError(f"{argument} {display_path(out)} is (or holds) the checkpoint it is made from, "
                             f"{display_path(source)}; writing {what} there would overwrite it. Pass another "
                             f"directory.")


#: The files a checkpoint-like output writes (a Hugging Face checkpoint's and its card): :func:`check_output_folder`
#: refuses a folder left in one of their places before any work, not when the file is written after it.
CHECKPOINT_OUTPUT_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json",
                           "preprocessor_config.json", "generation_config.json", "README.md")


def check_folder_path(out: str | os.PathLike, *, argument: str, what: str, needs_utf8: str | None = None,
                      error: type[SERError] = ModelError) -> Path:
    """Refuse, before any work, a path where the folder ``out`` can never be made or used; returns it (``~``
    expanded). Refused: ``-`` (standard output is no folder), a file, a link to nothing (or a path through one), a
    path below a file, a name too long for the hidden files written beside it and, where ``needs_utf8`` says which
    library could not open files there, a path that is not valid UTF-8.

    Raises:
        error: naming ``argument``, the path, what was found and the fix.
    """
    out = Path(out).expanduser()
    shown = f"{argument} {display_path(out)}"
    if str(out) == "-":
        raise error(f"{argument} -: ser_hf writes {what} into a folder, not to standard output; pass a folder (./- "
                    f"for one named '-').")
    if needs_utf8 and not is_utf8(str(out)):
        raise error(f"{shown}: its path is not valid UTF-8, and {needs_utf8} cannot open files there. Pass a UTF-8 "
                    f"path.")
    try:
        check_name_fits(out, DERIVED_NAME_BYTES, shown)
        refuse_dangling_link(out, shown, "pass the folder itself, or create the link's target first.")
    except ModelError as refused:
        raise error(str(refused)) from None
    if out.exists() and not out.is_dir():
        raise error(f"{shown} is a file; pass a directory for {what} (it is created if missing).")
    blocking = next((parent for parent in out.absolute().parents if parent.exists() or parent.is_symlink()), None)
    problem = link_problem(blocking) if blocking is not None else None
    if problem is not None:
        raise error(f"{shown} cannot be created: {display_path(blocking)} is {problem}. Create the link's target, or "
                    f"pass another directory.")
    if blocking is not None and not blocking.is_dir():
        raise error(f"{shown} cannot be created: {display_path(blocking)} is a file, not a folder. Pass a directory "
                    f"path whose parents are folders.")
    return out


def check_output_folder(out: str | os.PathLike, *, argument: str, marker: str | Sequence[Marker], what: str,
                        sources: Sequence[str | os.PathLike] = (), overwrite: bool = False,
                        foreign: Sequence[Marker] = (), inside: Sequence[Marker] = (),
                        writes: Collection[str] = CHECKPOINT_OUTPUT_FILES) -> Path:
    """Refuse a folder output that would destroy something it should not; returns ``out`` as a Path.

    Refused, before any work: ``out`` is a file or a dangling symlink, or lies below a file (it could never be
    created); its path is not valid UTF-8 (safetensors, onnxruntime and the Hub client cannot open the files written
    there); ``out`` is one of ``sources`` (the checkpoint being read) or holds one; ``out`` is, or lies inside, a
    checkpoint's ``eval/`` (the record of the speakers it was tested on; any checkpoint's, not only the sources'; a
    new folder beside it, such as an ONNX export's ``onnx/``, is fine); ``out`` is a non-empty folder, unless it holds ``marker`` (a regular file every earlier output
    of this kind has; glob patterns, any of several), holds none of ``foreign`` (the marker files of other kinds of
    output, which must not be mixed with this one) *and* ``overwrite`` is set. So an earlier output may be replaced,
    never a folder of the user's own files nor another command's output.

    Args:
        out: The folder to write (created if missing).
        argument: How the caller names it (``--out``, ``out_dir``), for the message.
        marker: The file name(s) or glob pattern(s) that mark an earlier output of this kind.
        what: What is written (``an ONNX export``), for the message.
        sources: Folders the output is made from.
        overwrite: Whether an earlier output may be replaced (a training run's ``output_dir``: always).
        foreign: Marker files of other kinds of output.
        inside: Markers of a folder whose subfolders belong to another output (a CV's ``cv_summary.json`` holding its
            keys: its ``pooled/`` and ``fold1/`` are its reports): ``out`` may not lie in such a folder.
        writes: The names of the files the output writes into ``out`` (besides the markers): a folder in one of their
            places is refused now, not with a raw error once the work is done.

    Raises:
        ModelError: naming the argument, the folder, what was found and what to pass instead.
    """
    recover_replacement(out)  # a replacement killed midway: the earlier output back in its place first
    out = check_folder_path(out, argument=argument, what=what,
                            needs_utf8=f"the libraries that read {what} (safetensors, onnxruntime, the Hub client)")
    shown_out = display_path(out)
    refuse_sources(out, sources, argument, what)
    resolved = Path(os.path.realpath(out))
    for folder in (resolved, *resolved.parents):  # what out lies in: a checkpoint's eval/, a CV's reports
        checkpoint = folder.parent
        if folder.name == "eval" and ((checkpoint / "ser_hf_run.json").is_file() or (
                (checkpoint / "config.json").is_file() and any(checkpoint.glob("*.safetensors")))):
            raise ModelError(f"{argument} {shown_out} is (or is inside) the eval/ folder of the checkpoint "
                             f"{display_path(checkpoint)}: it holds the record of the speakers that model was tested "
                             f"on, which later evaluations read. Pass another directory (e.g. "
                             f"{display_path(checkpoint / 'eval-test')}).")
        owner = _holds(folder.parent, inside) if inside and folder.parent != folder else []
        if owner:
            raise ModelError(f"{argument} {shown_out} lies in {display_path(folder.parent)}, whose "
                             f"{owner[0]} says its folders are another command's reports ({folder.name}/ among "
                             f"them); writing {what} there would replace one of them. Pass another directory.")
    found = sorted(item.name for item in out.iterdir()) if out.is_dir() else []
    if not found:
        check_writable(out, f"{argument} {shown_out}", what)
        return out
    markers = [marker] if isinstance(marker, str) else list(marker)
    shown = f"{[printable(name) for name in found[:8]]}{' ...' if len(found) > 8 else ''}"
    kind = what.removeprefix("an ").removeprefix("a ")
    others = _holds(out, foreign)
    if others:
        raise ModelError(f"{argument} {shown_out} holds another kind of output ({others[0]}), not an earlier {kind}; pass "
                         f"a new or empty directory.")
    if not _holds(out, markers):
        patterns = [item if isinstance(item, str) else item[0] for item in markers]
        named = f"no {patterns[0]}" if len(patterns) == 1 else f"none of {patterns}"
        raise ModelError(f"{argument} {shown_out} is not empty (found {shown}) and holds {named} that ser_hf wrote, so "
                         f"it is not an earlier {kind} that may be replaced; pass a new or empty directory."
                         f"{_rejected_marker(out, patterns)}")
    if not overwrite:
        raise ModelError(f"{argument} {shown_out} already holds an earlier {kind} (found {shown}); pass overwrite "
                         f"(--overwrite) to replace it, or a new or empty directory.")
    named = {item if isinstance(item, str) else item[0] for item in markers}
    refuse_folders_where_files_go(out, {*writes, *(item for item in named if not any(char in item for char in "*?[/"))},
                                  place=f"{argument} {shown_out}", writer=what, instead="directory")
    check_writable(out, f"{argument} {shown_out}", what)
    return out


def refuse_folders_where_files_go(folder: Path, names: Collection[str], *, place: str, writer: str,
                                  instead: str = "output_dir") -> None:
    """Refuse, before any work, a folder standing in ``folder`` where ``writer`` writes a file of one of ``names``:
    writing it would fail with a raw ``IsADirectoryError`` once the work is done. A link there is fine: it is replaced
    when the file is written, never written through.

    Args:
        folder: The folder the files are written into.
        names: The names of the files written there.
        place: How the message names ``folder`` (``--out runs/x``).
        writer: What writes the files (``ser_hf``, ``an ONNX export``), for the message.
        instead: What the user may pass instead (``directory``, ``output_dir``).
    """
    for name in sorted(names):
        if (folder / name).is_dir() and not (folder / name).is_symlink():
            raise ModelError(f"{place}: its {name} is a folder, but {writer} writes a file of that name there; move "
                             f"that folder away (or pass another {instead}) and run again. Nothing was changed.")


def refuse_non_folder(path: Path, *, place: str, writer: str, what: str, linked_folder_ok: bool = False) -> None:
    """Refuse, before any work, a file or a link standing at ``path`` where ``writer`` makes a folder of ``what``: the
    work would stop there once done, or write through the link into a folder of the user's.

    Args:
        path: Where the folder goes.
        place: How the message names the folder ``path`` lies in (``output_dir runs/x``).
        writer: What makes it (``a run``, ``ser_hf``), for the message.
        what: What goes in it (``its cv/ folder``, ``this fold's reports``), for the message.
        linked_folder_ok: Accept a link to a folder (the Trainer's checkpoints kept on another disk).
    """
    linked = path.is_symlink() and not (linked_folder_ok and path.is_dir())
    if linked or (path.exists() and not path.is_dir()):
        raise ModelError(f"{place}: its {printable(path.name)} is "
                         f"{'a link' if path.is_symlink() else 'a file'}, not a folder, but {writer} writes {what} "
                         f"there; move it away (or pass another output_dir) and run again. Nothing was changed.")


def check_writable(out: Path, shown: str, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written (or made): a read-only mount, another user's folder.
    A file is made and removed there (or a folder beside it, if it is still to be made): permissions alone do not
    tell (root passes every permission check, yet cannot write a read-only file system)."""
    place = out if out.is_dir() else nearest_folder(out)
    if place is None:
        return
    try:
        if place == out:
            handle, probe = tempfile.mkstemp(prefix=".ser_hf-write-check-", dir=place)
            os.close(handle)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".ser_hf-write-check-", dir=place))
    except OSError as error:
        raise ModelError(f"{shown} cannot be written: {error.strerror or error} in {display_path(place)}; "
                         f"{what} could not be saved there after all the work. Pass a folder you can write to.") from None


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
