"""One writer at a time per output folder: :func:`folder_lock`, an ``flock`` on the folder itself.

Two ``ser-hf cv`` (or ``ser-hf baseline``) runs into one folder at once would each take the other's finished folds
for their own, or remove them. A lock on the folder (no lock file to leave behind; the kernel releases it however the
process ends, ``kill -9`` too) lets the second be refused at once with what to do. It passes the thread that already
holds the folder (a command locks its output folder, and the CV it runs locks it again), refuses other threads and
processes, and is never kept by a forked worker (a worker outliving a killed parent kept the folder locked for good).

A writer also *claims* the hidden folders it works in (:func:`claim`, a shared ``flock``), so that whoever tidies the
leftovers of killed writers (:func:`claimed`) never takes a folder still at work for one: a process id does not tell
that across containers or machines sharing the disk, a lock does.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ser_hf.errors import ModelError

__all__ = ["claim", "claimed", "folder_lock"]


#: The folders this process holds a :func:`folder_lock` on, by (device, inode, thread): how many blocks hold each.
_HELD_FOLDERS: Counter = Counter()
_HELD_FOLDERS_GUARD = threading.Lock()
class _Lock:
    """One block's locked descriptor; ``closed`` once a forked child closed its copy (the number may be reused)."""

    def __init__(self, handle: int):
        self.handle, self.closed = handle, False


#: The blocks of this process whose descriptor holds a lock.
_LOCKS: set[_Lock] = set()


def _release_locks_in_child() -> None:
    """A forked child (a feature-extraction worker, a DataLoader worker) shares the parent's locked descriptors, and
    an flock lasts while any process holds one: a worker left waiting after its parent was killed would keep the
    folder locked for good. The child closes them; the parent's lock is untouched."""
    global _HELD_FOLDERS_GUARD
    _HELD_FOLDERS_GUARD = threading.Lock()  # another thread of the parent may have held it at the fork
    for lock in _LOCKS:
        with contextlib.suppress(OSError):
            os.close(lock.handle)
        lock.closed = True  # a block the child leaves must not close the file that now has the number
    _LOCKS.clear()
    _HELD_FOLDERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_release_locks_in_child)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (made if missing) while the block runs; a second holder is refused
    with ``busy`` (what to tell the user). :func:`fcntl.flock` on the folder: no lock file to leave behind, and the
    kernel releases it however the process ends (``kill -9`` too). Where the file system cannot lock, it runs
    unlocked. A block of the same thread that already holds the folder passes (a command locks its whole output
    folder, and the CV it runs locks it again; flock alone would refuse the second handle); another thread is
    refused like another process."""
    import errno
    import fcntl

    Path(folder).mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    lock = _Lock(handle)
    info = os.fstat(handle)
    key = (info.st_dev, info.st_ino, threading.get_ident())
    try:
        with _HELD_FOLDERS_GUARD:
            if any(held[:2] == key[:2] and held[2] != key[2] for held in _HELD_FOLDERS):
                raise ModelError(busy)  # another thread of this process holds it
            if not _HELD_FOLDERS[key]:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ModelError(busy) from None
                except OSError as error:
                    if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                _LOCKS.add(lock)
            _HELD_FOLDERS[key] += 1
        try:
            yield
        finally:
            with _HELD_FOLDERS_GUARD:
                _HELD_FOLDERS[key] -= 1
                if _HELD_FOLDERS[key] <= 0:
                    del _HELD_FOLDERS[key]
    finally:
        with _HELD_FOLDERS_GUARD:
            _LOCKS.discard(lock)
        if not lock.closed:
            os.close(handle)  # the outermost holder's close releases the lock


#: The errors of a file system that cannot lock (some network shares): the lock is then no evidence either way.
_NO_LOCKS = ("ENOLCK", "EOPNOTSUPP", "ENOSYS", "EINVAL")


@contextlib.contextmanager
def claim(*folders: str | os.PathLike) -> Iterator[None]:
    """Hold a shared lock on each of ``folders`` while the block runs: the mark of a writer at work on them, which
    :func:`claimed` sees from any process, container or machine sharing the disk. Shared, so claims never block one
    another; the kernel drops them however the process ends (``kill -9`` too), and a forked worker closes its copies
    (see :func:`_release_locks_in_child`), so it never keeps a dead writer's folder claimed. A file system that cannot
    lock leaves the folders unclaimed (:func:`claimed` says it cannot tell)."""
    import errno
    import fcntl

    held = []
    try:
        for folder in folders:
            try:
                lock = _Lock(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
            except OSError:  # a folder this user cannot open: unclaimed, as on a file system that cannot lock
                continue
            held.append(lock)
            with _HELD_FOLDERS_GUARD:
                _LOCKS.add(lock)
            try:
                fcntl.flock(lock.handle, fcntl.LOCK_SH)
            except OSError as error:
                if errno.errorcode.get(error.errno) not in _NO_LOCKS:
                    raise
        yield
    finally:
        for lock in held:
            with _HELD_FOLDERS_GUARD:
                _LOCKS.discard(lock)
            if not lock.closed:
                os.close(lock.handle)


def claimed(folder: str | os.PathLike) -> bool | None:
    """Whether a writer holds a :func:`claim` on ``folder`` (this process's included); None where that cannot be told
    (the file system cannot lock, or the folder cannot be opened)."""
    import errno
    import fcntl

    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while any claim (a shared lock) is held
    except BlockingIOError:
        return True
    except OSError as error:
        return None if errno.errorcode.get(error.errno) in _NO_LOCKS else True
    finally:
        os.close(handle)  # releases the probe's own lock
    return False
