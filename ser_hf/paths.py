"""File paths as text, for names that are not UTF-8, and recursive walks that survive symlink loops.

On Linux a file name is any bytes. Python decodes a name that is not UTF-8 with ``surrogateescape``
(``b"\\xff\\xfe.wav"`` becomes ``"\\udcff\\udcfe.wav"``); such a str opens the file, but writing it to a
UTF-8 file or stream raises ``UnicodeEncodeError``. ser_hf writes every path in one scheme:

- **Display** (:func:`display_path`, :func:`printable`): the bytes that are not UTF-8 as ``\\xNN`` escapes
  (``"\\\\xff\\\\xfe.wav"``, i.e. a backslash, ``x``, ``f``, ``f``, ...), and control characters the same way
  (a newline as ``\\x0a``: one name, one line). Other UTF-8 names, non-ASCII ones included, are unchanged. Used in
  messages, warnings, logs, summaries and the ``path`` field of records of names that are not UTF-8 (that of a
  UTF-8 name holds it exactly).
- **Lossless** (:func:`path_fields`, :func:`record_path`): a record of a name that is not UTF-8 also holds
  ``path_base64``, the base64 of the name's raw bytes; :func:`record_path` turns the record back into the
  path that opens the file (``path_base64`` wins over ``path`` when present). A file really named with a
  backslash and ``xff`` has no ``path_base64``, so the two never collide.

:func:`walk_files` lists the files under a folder, following symlinked folders but entering each real
folder once (keyed by device and inode), so a link to a parent folder cannot make it loop.

Example:
    ```python
    >>> import os
    >>> name = os.fsdecode(b"/data/\\xff\\xfe.wav")
    >>> path_fields(name)
    {'path': '/data/\\\\xff\\\\xfe.wav', 'path_base64': 'L2RhdGEv//4ud2F2'}
    >>> record_path(path_fields(name)) == name
    True

    ```
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ser_hf.errors import SERError

__all__ = ["display_path", "is_utf8", "path_fields", "path_key", "path_text", "printable", "record_path", "walk_files"]


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (False for names decoded with ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Characters shown as escapes too: C0 and C1 controls and DEL (a newline in a file name would print as a second,
#: forged log line; an ESC would recolour or clear the terminal), the line and paragraph separators, and the
#: bidirectional embeddings, overrides and isolates (they reorder the text that follows them on screen).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as it can be shown and written anywhere, on one line: what cannot be written as UTF-8 as escapes
    (``\\xff`` for an undecodable byte), and control characters too (``\\x0a`` for a newline)."""
    if not is_utf8(text):
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte (e.g. from a JSON "\\ud800")
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROLS.sub(_escape, text)


def path_text(path: str | bytes | os.PathLike, what: str, error: type[SERError] = SERError, *,
              refuse_empty: bool = False) -> str:
    """A path given as a str, bytes or an ``os.PathLike`` (whose ``__fspath__`` gives either) as text, bytes decoded
    as the file system does (see the module docstring): ``pathlib.Path`` refuses a path-like that gives bytes.

    Raises:
        SERError (or ``error``): naming ``what``, for anything else (e.g. an ``__fspath__`` that returns a number or
            raises), for a path holding a NUL byte (no file name can: the OS would refuse it with a raw
            ``ValueError``), and with ``refuse_empty`` for an empty path (which ``pathlib`` reads as the current
            folder).
    """
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError as err:  # no path at all, or an __fspath__ that gives neither str nor bytes
        raise error(f"{what} gives no path: {err}. Expected a str, bytes or an os.PathLike whose __fspath__ returns a "
                    f"str or bytes; pass the path as a str.") from None
    except Exception as err:  # a caller's own __fspath__ that fails: theirs to fix, named as ours
        raise error(f"{what} gives no path: its __fspath__ raised {type(err).__name__}: {err}. Pass the path as a "
                    f"str.") from err
    if "\0" in text:
        shown = display_path(text)
        named = "" if repr(shown) in what else f" {shown!r}"  # a ``what`` such as "Audio file '...'" names it already
        raise error(f"{what}{named} holds a NUL byte, which no file or folder name can hold; pass the path without "
                    f"it.")
    if refuse_empty and not text:
        raise error(f"{what} is an empty path, which names no file or folder (the current folder is '.'); pass a "
                    f"path.")
    return text


def path_key(path: str | os.PathLike) -> str:
    """The absolute path that keys an input and its records: the file the kernel opens for ``path``, by that name.

    A path without ``..`` is :func:`os.path.abspath`'s, as ever. The kernel applies a ``..`` to the folder it has
    reached, after following the links before it (``top/link/../a.wav``, ``link -> elsewhere/deep``, opens
    ``elsewhere/a.wav``), where ``abspath`` drops ``link`` by the text and names ``top/a.wav``, another file. So the
    part up to the last ``..`` is resolved (:func:`os.path.realpath`) and the rest, which no ``..`` crosses, kept as
    named: a link in the file's own name stays that link. When that part leads to no folder (a name missing, a file),
    the path keeps its ``..``: opening it fails as the kernel's does, rather than reaching a file the kernel would not.
    A key is its own key, so a record's path (:func:`record_key`) keys it the same way in every run.

    Example:
        >>> path_key("/data/./clips//a.wav")
        '/data/clips/a.wav'
    """
    text = os.fspath(path)
    absolute = text if os.path.isabs(text) else os.path.join(os.getcwd(), text)  # absolute ones need no cwd, as ever
    parts = absolute.split(os.sep)
    if os.pardir not in parts:
        return os.path.abspath(absolute)
    last = len(parts) - parts[::-1].index(os.pardir)
    through = os.sep.join(parts[:last])
    try:
        os.stat(through)  # ENOENT, ENOTDIR, ELOOP, EACCES: the kernel would not get past it either
    except OSError:
        return absolute
    return os.path.normpath(os.path.join(os.path.realpath(through), *parts[last:]))


def display_path(path: str | bytes | os.PathLike) -> str:
    """A path as text that can be written anywhere (see the module docstring); never raises, as it names paths in
    messages, those of refusals included."""
    try:
        return printable(os.fsdecode(path))
    except Exception:  # a path-like whose __fspath__ gives no path or fails: path_text refuses it, naming it
        return f"<{type(path).__name__} giving no path>"


def path_fields(path: str | bytes | os.PathLike) -> dict[str, str]:
    """``{"path": display}``, plus ``"path_base64"`` (the raw bytes) when the name is not UTF-8."""
    return text_fields(os.fsdecode(path), "path")


def text_fields(text: str, key: str) -> dict[str, str]:
    """``{key: display}``, plus ``key + "_base64"`` (the raw bytes) when ``text`` (decoded from a name, e.g. a speaker
    read off a path) is not UTF-8: two texts that display alike (a byte ``\xff`` and the four characters ``\xff``)
    stay apart."""
    if is_utf8(text):
        return {key: text}
    return {key: printable(text), f"{key}_base64": base64.b64encode(os.fsencode(text)).decode("ascii")}


def record_path(record: Mapping[str, Any]) -> str:
    """The path a record written with :func:`path_fields` names (lossless for names that are not UTF-8).

    Raises:
        SERError: when ``path_base64`` is not valid base64.
    """
    encoded = record.get("path_base64")
    if not encoded:  # absent, or an empty CSV cell
        return record["path"]
    try:
        return os.fsdecode(base64.b64decode(str(encoded), validate=True))
    except (binascii.Error, ValueError) as err:
        raise SERError(f"record of {printable(str(record.get('path')))!r} has an invalid path_base64 "
                       f"{printable(str(encoded))[:80]!r} ({err}); expected the base64 of the file name's bytes.") from err


def walk_files(root: str | os.PathLike, max_depth: int | None = None,
               unlisted: list[tuple[str, OSError]] | None = None) -> Iterator[str]:
    """Every entry under ``root`` that is not a folder (files, links to files, dangling links, FIFOs).

    ``max_depth`` limits how many folders deep below ``root`` the walk goes (0: ``root``'s own entries only).

    Symlinked folders are followed, but each real folder (device, inode) is entered once: a link back to
    a parent, or two links to one folder, end the walk instead of looping (``glob.glob("**")`` follows
    links without such a check: with two links to a parent in a folder it runs for ever, its memory
    growing). Symlinked folders are entered after every folder reached without a link, so a folder that
    lies under ``root`` is listed under its own path. Folders that cannot be listed (no permission, an I/O error, a
    path longer than the system allows) are skipped, each with its error added to ``unlisted`` when given: a caller
    that must account for every file says so. Paths are ``root`` joined with the names found, in sorted order within
    each folder.
    """
    seen: set[tuple[int, int]] = set()
    root = os.fspath(root)
    pending, linked = [root], []
    while pending or linked:
        folder = pending.pop() if pending else linked.pop(0)
        deeper = max_depth is None or _depth(root, folder) < max_depth
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as entries:
                found = sorted(entries, key=lambda entry: entry.name)
        except OSError as error:
            if unlisted is not None:
                unlisted.append((folder, error))
            continue
        folders = []
        for entry in found:
            try:
                is_folder = entry.is_dir()  # follows a link; False for a dangling or looping one
            except OSError:
                is_folder = False
            if not is_folder:
                yield entry.path
            elif not deeper:
                continue
            elif entry.is_symlink():
                linked.append(entry.path)
            else:
                folders.append(entry.path)
        pending += reversed(folders)


def _depth(root: str, folder: str) -> int:
    """How many folders ``folder`` (a path the walk built from ``root``) lies below ``root``."""
    relative = os.path.relpath(folder, root)
    return 0 if relative == os.curdir else relative.count(os.sep) + 1
