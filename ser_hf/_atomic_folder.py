"""A folder output (a checkpoint, a converted model, a released model's build) written so that it is never half there.

:func:`atomic_directory` yields a hidden temporary folder beside the output and moves it into place only when the
block succeeds; replacing an earlier output, the two folders are swapped in one step where Linux can
(``renameat2`` with ``RENAME_EXCHANGE``), so a kill at any moment leaves a whole output. What a killed writer leaves
beside the output (hidden ``.<name>.ser_hf-*`` folders) is tidied by :func:`recover_replacement`, which
:func:`ser_hf._output_folders.check_output_folder` calls before any work. Nothing the user saved into the output
while the work ran is ever deleted (:func:`folder_entries` of what the caller checked).

Example:
    ```python
    >>> with atomic_directory(Path("checkpoint"), overwrite=True) as tmp:  # doctest: +SKIP
    ...     (tmp / "config.json").write_text("{}")

    ```
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from ser_hf._io import default_permissions
from ser_hf.errors import ModelError
from ser_hf.locks import claim, claimed
from ser_hf.paths import display_path, printable

__all__ = ["abandoned", "atomic_directory", "folder_entries", "process_alive", "recover_replacement"]

logger = logging.getLogger(__name__)


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
    (:func:`ser_hf._output_folders.check_output_folder`, through :func:`recover_replacement`) tidies.

    Nothing that was not in ``out`` when the caller checked it is ever deleted: a file the user saved there while the
    work ran stops the replacement (ModelError; ``out`` is left as it is). An existing empty ``out`` is filled in place
    (the new files are moved into it), so it keeps its permissions, owner, group (a setgid group folder) and ACLs.

    Args:
        out: The final directory.
        overwrite: Replace ``out`` if it exists (the old one is swapped out, compared with ``expected``, then deleted).
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
    # The real, absolute place: a link is replaced at its target (keeping the link, as atomic_write_bytes does), and
    # "." or "~/x" get a name and a parent to write beside.
    out = Path(os.path.realpath(Path(out).expanduser()))
    expected = folder_entries(out) if expected is None else frozenset(expected)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_NEW_FOLDER.format(name=out.name, pid=os.getpid()), dir=out.parent))
    # mkdtemp makes the directory private (0700); a checkpoint is meant to be readable like any output.
    default_permissions(tmp)
    with claim(tmp):  # a check of ``out`` meanwhile, from any process or machine, leaves it alone
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
#: system cannot swap two folders in one step) the earlier one moved aside; each with the writer's pid and 8 random
#: characters, so no folder of the user's is taken for one.
_NEW_FOLDER, _OLD_FOLDER = ".{name}.ser_hf-tmp-{pid}-", ".{name}.ser_hf-old-{pid}-{random}"
#: Linux's largest process id (``pid_max`` can be set up to 2**22): a larger number is no writer's.
_MAX_PID = 2**22


def _replace_folder(new: Path, out: Path, expected: frozenset[str]) -> None:
    """Put the folder ``new`` in the place of the existing ``out`` and delete the earlier output, unless ``out`` holds
    an entry not in ``expected`` (ModelError; nothing replaced, ``new`` deleted).

    Where the system can (Linux), the two folders are swapped in one step, so a kill at any moment leaves a whole
    output in ``out``; elsewhere the earlier output is first moved aside, under a name the next check of ``out``
    (:func:`recover_replacement`) restores if a kill came before the new one was in place. The earlier output is
    claimed (:func:`~ser_hf.locks.claim`) until it is deleted or back, so no check of ``out`` meanwhile tidies it."""
    with claim(out):
        try:
            swapped = _exchange(new, out)
            old = new if swapped else out.with_name(_OLD_FOLDER.format(name=out.name, pid=os.getpid(),
                                                                       random=secrets.token_hex(4)))
            if not swapped:
                os.replace(out, old)
        except OSError as err:  # a mount point (EBUSY), another process's replacement meanwhile
            shutil.rmtree(new, ignore_errors=True)
            raise ModelError(f"could not replace {display_path(out)} ({err.strerror or err}): it is a mount point, or "
                             f"another process replaced it meanwhile. Nothing was replaced and the new output was not "
                             f"written; pass a folder inside it (or another output folder) and run again.") from None
        # Compared once moved aside, where nothing more can be saved into it by its name.
        added = sorted(folder_entries(old) - expected)
        if added:
            if swapped:
                _exchange(new, out)  # back: ``out`` holds the earlier output again, ``new`` the new one
            else:
                _put_back(old, out)
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
                _put_back(old, out)  # the earlier output rather than nothing
                raise ModelError(f"could not move the new folder into {out} ({err}); it may have been created "
                                 f"meanwhile.") from err
        shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path, out: Path) -> None:
    """Move the earlier output ``old`` back to ``out``; where something took its place meanwhile (another process's
    replacement), leave it under its hidden name and say where it is."""
    try:
        os.replace(old, out)
    except OSError as err:
        raise ModelError(f"{display_path(out)} was replaced by another process meanwhile; the earlier output it held "
                         f"is kept in {display_path(old)} ({err.strerror or err}): move it back by hand if it is the "
                         f"one you want.") from None


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
    the earlier output moved aside is put back where ``out`` is missing, and the hidden folders of replacements that
    were stopped are deleted otherwise, each with a warning naming it. Only folders named as :func:`atomic_directory`
    names them are touched, and only those no writer claims (:func:`abandoned`). A folder that cannot be put back or
    deleted is left, with a warning; the caller's checks of ``out`` then go on."""
    out = Path(os.path.realpath(Path(out).expanduser()))
    try:
        leftovers = [(kind, out.parent / name) for name in os.listdir(out.parent)
                     for kind, pid in [_leftover(name, out.name)] if kind and abandoned(out.parent / name, pid)]
    except OSError:
        return  # a parent that cannot be listed: the caller's check says what is wrong
    for kind, folder in sorted(leftovers, key=lambda item: item[0] != "old"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            if kind == "old" and not os.path.lexists(out):
                os.rename(folder, out)
                logger.warning("%s was missing: its replacement was stopped after moving the earlier output aside; "
                               "put the earlier output back from %s", display_path(out), printable(folder.name))
            else:
                shutil.rmtree(folder)
                logger.warning("removed %s, the %s output of a replacement of %s that was stopped",
                               printable(folder.name), "earlier" if kind == "old" else "unfinished or earlier",
                               display_path(out))
        except OSError as err:
            logger.warning("could not tidy %s, left by a replacement of %s that was stopped (%s); move it back or "
                           "delete it by hand", printable(folder.name), display_path(out), err.strerror or err)


def _leftover(name: str, out_name: str) -> tuple[str | None, int]:
    """``(kind, pid)`` of a hidden folder :func:`atomic_directory` names beside ``out_name`` (``"tmp"``: a new output,
    ``"old"``: an earlier one moved aside); ``(None, 0)`` for any other name."""
    prefix = f".{out_name}.ser_hf-"
    kind, _, rest = name[len(prefix):].partition("-") if name.startswith(prefix) else ("", "", "")
    pid, _, random = rest.partition("-")
    if kind not in ("tmp", "old") or not (pid.isascii() and pid.isdigit()) or int(pid) > _MAX_PID or len(random) != 8:
        return None, 0
    return kind, int(pid)


def abandoned(folder: str | os.PathLike, pid: int) -> bool:
    """Whether the hidden work folder ``folder`` of writer ``pid`` was left by a writer that is gone: no writer claims
    it (:func:`~ser_hf.locks.claimed`, seen across containers and machines sharing the disk) and no process ``pid``
    runs here (which also covers the moment between making the folder and claiming it)."""
    return claimed(folder) is not True and not process_alive(pid)


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
