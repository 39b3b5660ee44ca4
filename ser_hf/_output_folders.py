"""Checks of an output folder before any work: it may be written, and writing it destroys nothing it should not.

- :func:`check_output_folder`: refuses a folder output that would overwrite a file, the input it is made from, or
  anything that is not an earlier output of the same kind (its *marker* file, ser_hf's own; :class:`Other`).
- :func:`check_folder_path`: a path that can be a folder at all (not ``-``, a file, a link to nothing, a name too
  long, not UTF-8 where a library needs it), naming the argument.
- :func:`check_own_folder`, :func:`remove_own_folder`: a folder holding only what an earlier output wrote there.
- :func:`refuse_folders_where_files_go`, :func:`refuse_non_folder`, :func:`check_writable`: a folder standing where
  a file is written, a file or link where a folder is made, a folder that cannot be written, refused now rather than
  with a raw error once the work is done.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ser_hf._atomic_folder import recover_replacement
from ser_hf._io import link_problem, read_json, refuse_dangling_link
from ser_hf.errors import ModelError, SERError
from ser_hf.paths import display_path, is_utf8, path_text, printable

__all__ = ["check_folder_path", "check_name_fits", "check_output_folder", "check_own_folder", "check_writable",
           "CHECKPOINT_OUTPUT_FILES", "DERIVED_NAME_BYTES", "Marker", "name_max", "nearest_folder", "Other",
           "refuse_folders_where_files_go", "refuse_non_folder", "refuse_sources", "remove_own_folder"]


class Other:
    """A marker's expected value meaning "present, and anything but ``value``": a ``cv/cv_summary.json`` whose ``kind``
    is not this command's (another command's, or one this version does not know) marks another kind of output."""

    def __init__(self, value: Any):
        self.value = value

    def matches(self, found: Any) -> bool:
        return found != self.value


#: Bytes a name derived from an output's adds to it, at most: ``.NAME.ser_hf-tmp-PID-XXXXXXXX`` (29 with a 7-digit
#: pid, Linux's largest), ``.NAME.XXXXXXXX.tmp``, a CSV's
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
    out = Path(path_text(out, argument, error=error, refuse_empty=True)).expanduser()
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
                        writes: Collection[str] = CHECKPOINT_OUTPUT_FILES, whole: bool = False) -> Path:
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
        whole: The output replaces an earlier one whole (:func:`~ser_hf._atomic_folder.atomic_directory` swaps the
            two folders): a mount point holding one, which cannot be swapped, is refused now.

    Raises:
        ModelError: naming the argument, the folder, what was found and what to pass instead.
    """
    # a path-like may give bytes, which pathlib refuses; "" would be the current folder
    out = path_text(out, argument, error=ModelError, refuse_empty=True)
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
    if whole and os.path.ismount(out):
        raise ModelError(f"{argument} {shown_out} is a mount point holding an earlier {kind}: ser_hf replaces an output "
                         f"by swapping the two folders in one step, which a mount point cannot be, and writing over "
                         f"the earlier one file by file could leave neither whole. Pass a folder inside it (e.g. "
                         f"{display_path(out / 'model')}), or empty it first.")
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
