"""The audio files a ``ser-hf predict`` job's inputs name: files, folders, glob patterns and manifest CSVs.

Folders and ``**`` patterns are walked with :func:`ser_hf.paths.walk_files`, which follows symlinked
folders but enters each real folder once, so a symlink loop cannot hang the expansion. Patterns without
``**`` go to :func:`glob.glob`, which reads one folder level per pattern part and so always ends.

Every input is named by the absolute path of the file the kernel opens for it
(:func:`ser_hf.paths.path_key`): a ``..`` after a symlinked folder (``top/link/../a.wav``, or a manifest
row ``../a.wav`` of a manifest reached through a linked folder) goes up from the folder the link points to, as the
kernel takes it, never out of ``top/link`` by the text; a path without ``..`` is :func:`os.path.abspath`'s.

The job's own output is never an input: an input named explicitly (a file, or a manifest row) that is the
output (the same file, through a symlink or a hard link too) is refused; the output, its shards and its
temporary file found in a folder or by a pattern are left out.

Example:
    ```python
    >>> expand_inputs(["recordings/", "extra/**/*.flac", "list.csv"], output="predictions.jsonl")  # doctest: +SKIP
    ['/abs/recordings/a.wav', '/abs/extra/x/b.flac', '/abs/c.wav']

    ```
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import logging
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.audio import is_audio_path
from ser_hf.audio.arrays import is_bytes_like  # re-exported: where callers of the inference layer look for it
from ser_hf.errors import SERError
from ser_hf.names import UserPattern, speaker_text
from ser_hf.paths import display_path, path_key, path_text, printable, walk_files

__all__ = ["OutputFiles", "describe_kind", "describe_rows", "describe_table", "expand_inputs", "glob_files",
           "has_array_shape", "input_paths", "is_bytes_like", "is_path_array", "is_sample"]

logger = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


class OutputFiles:
    """Recognises a job's output ``out``, its shards ``OUT.shard-R-of-W`` and its temporary files ``.OUT.*.tmp``.

    By name in the output's (real) folder, whether or not they exist yet, and by identity (device and
    inode, so through symlinks and hard links) for those that exist.
    """

    def __init__(self, out: str | bytes | os.PathLike) -> None:
        out = Path(path_key(os.path.expanduser(path_text(out, "output", refuse_empty=True))))
        self.out = out
        self.folder = os.path.realpath(out.parent)
        name = re.escape(out.name)
        self.pattern = re.compile(rf"{name}|{name}\.shard-\d+-of-\d+|\.{name}(\..*)?\.tmp", re.DOTALL)
        self.ids: set[tuple[int, int]] = set()
        candidates = [out]
        if out.parent.is_dir():
            candidates += [p for p in out.parent.iterdir() if self.pattern.fullmatch(p.name)]
        for path in candidates:
            try:
                info = os.stat(path)
            except OSError:
                continue
            self.ids.add((info.st_dev, info.st_ino))

    def __contains__(self, path: str | os.PathLike) -> bool:
        text = os.fspath(path)
        name = os.path.basename(text)
        if self.pattern.fullmatch(name) and os.path.realpath(os.path.dirname(path_key(text))) == self.folder:
            return True
        if not self.ids:
            return False
        try:
            info = os.stat(text)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) in self.ids


def _refuse_output(item: str, outputs: OutputFiles) -> SERError:
    return SERError(
        f"input {display_path(item)!r} is the output file --out {display_path(outputs.out)!r} (or one of its "
        f"shards or temporary files; compared through symlinks and hard links): predicting into it would overwrite "
        f"an input. Choose another --out, outside the inputs."
    )


_MANIFEST_EXPECTED = "a header row naming a 'path' column that lists audio files (relative to the manifest's folder)"


def _manifest_rows(path: Path, column: str = "path") -> list[dict]:
    """The rows of a manifest CSV that name a file, after checking it has ``column``.

    The CSV is read strictly (:func:`ser_hf.corpora.tables.read_csv_rows`): a quote never closed, or a row that
    runs over several lines, is an error naming the line, never rows silently swallowed into one cell.
    """
    from ser_hf.corpora.tables import read_csv_rows  # ser_hf.corpora imports datasets: only for manifest inputs

    header, rows = read_csv_rows(path, "manifest", _MANIFEST_EXPECTED)
    for name in dict.fromkeys(("path", column)):
        if name not in header:
            raise SERError(f"manifest {display_path(path)!r} has no {name!r} column (found {sorted(header)}); "
                           + ("expected a CSV whose 'path' column lists audio files (relative to the manifest's "
                              "folder)." if name == "path" else "pass --speaker-column with one of them."))
    return [row for _, row in rows if (row.get("path") or "").strip()]


def _row_path(manifest: Path, row: Mapping[str, str]) -> str:
    """The file a manifest row names (:func:`~ser_hf.paths.path_key`: a ``../clip.wav`` row of a manifest
    reached through a symlinked folder is the clip beside the folder the link leads to, as the kernel opens it)."""
    return path_key(manifest.parent / row["path"].strip())


def _manifest_paths(path: Path) -> list[str]:
    return [_row_path(path, row) for row in _manifest_rows(path)]


def _walk(root: str | os.PathLike, max_depth: int | None = None) -> tuple[list[str], list[str]]:
    """:func:`~ser_hf.paths.walk_files` of ``root``, and the folders under it that could not be listed (no permission,
    an I/O error, a path longer than the system allows), each named in a warning: a job gives each of them an error
    record, so its files never go missing without a word."""
    unlisted: list[tuple[str, OSError]] = []
    found = list(walk_files(root, max_depth=max_depth, unlisted=unlisted))
    for folder, error in unlisted:
        logger.warning("cannot list the folder %s (%s): the files in it are not among the inputs, and it gets an "
                       "error record", display_path(folder), error.strerror or error)
    return found, [path_key(folder) for folder, _ in unlisted]


def _directory_paths(path: Path, outputs: OutputFiles | None) -> list[str]:
    # Everything named like audio but a folder: a dangling link or a FIFO gets an error record, not silence.
    walked, unlisted = _walk(path)
    found = sorted(path_key(p) for p in walked if is_audio_path(p)) + unlisted
    found = [p for p in found if outputs is None or p not in outputs]
    if not found:
        raise SERError(
            f"input directory {display_path(path)!r} holds no audio files (searched recursively for extensions such "
            f"as .wav, .flac, .mp3, .ogg); pass a folder of recordings or the files themselves."
        )
    return found


def _match_parts(patterns: Sequence[str], names: Sequence[str]) -> bool:
    """Whether path components ``names`` match pattern components, ``**`` standing for any number of them.

    As :func:`glob.glob` does, wildcards match no name starting with a dot unless the pattern part does.
    """

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(patterns):
            return j == len(names)
        pattern = patterns[i]
        if pattern == "**":
            return match(i + 1, j) or (j < len(names) and not names[j].startswith(".") and match(i, j + 1))
        if j == len(names):
            return False
        name = names[j]
        if not glob.has_magic(pattern):
            return name == pattern and match(i + 1, j + 1)
        if name.startswith(".") and not pattern.startswith("."):
            return False
        return fnmatch.fnmatchcase(name, pattern) and match(i + 1, j + 1)

    return match(0, 0)


def glob_files(pattern: str) -> list[str]:
    """Files (not folders) matching a glob pattern, sorted; ``**`` matches any number of folders. Then the folders
    the walk could not list (their files might match): a job gives each an error record.

    Every pattern is matched against a walk of its fixed leading folder (:func:`ser_hf.paths.walk_files`:
    each real folder entered once), no deeper than the pattern reaches. :func:`glob.glob` follows symlinked
    folders without such a check, so with links back to a parent even ``*/*/*/*.wav`` (no ``**``) lists the
    same files 4^n times over.
    """
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    root = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    rest = parts[fixed:]
    if not rest:  # nothing to match: the path itself
        return [pattern] if os.path.isfile(pattern) else []
    if not os.path.isdir(root):
        return []
    depth = None if "**" in rest else len(rest) - 1
    matches = []
    walked, unlisted = _walk(root, max_depth=depth)
    for path in walked:
        names = os.path.relpath(path, root).split(os.sep)
        if _match_parts(tuple(rest), tuple(names)) and os.path.isfile(path):
            matches.append(os.path.join(root, *names) if fixed else os.path.join(*names))
    return sorted(matches) + unlisted


_PATHS_ONLY = ("predict_files reads audio files: it takes paths (files, folders, glob patterns, manifest CSVs). For "
               "audio in memory (arrays, (array, rate) pairs, tensors) use EmotionRecognizer.predict.")


def describe_kind(value: Any) -> str:
    """``value`` as messages name it: its type, with the shape of an array or tensor."""
    if value is None:
        return "None"
    name = type(value).__name__
    if has_array_shape(value):
        return f"an array of shape {tuple(value.shape)} ({name})"
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def has_array_shape(value: Any) -> bool:
    """Whether ``value`` is array-like for messages and for telling one clip from a collection: it has a ``shape`` and
    a ``dtype`` (a numpy array, a torch tensor, a pandas Series). Iterating such a value walks its items (samples, or
    the paths of a column), never one clip. :func:`ser_hf.inference.clip_inputs.is_array` asks the narrower question
    of which arrays hold samples as ``pipeline()`` takes them."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def is_sample(value: Any) -> bool:
    """Whether ``value`` is one number, a sample: never a clip, whatever collection holds it."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def is_path_array(value: Any) -> bool:
    """Whether ``value`` is an array of file names rather than audio samples: a numpy array or pandas Series of
    strings, bytes or objects (a column of paths, a list of clips made an object array). An array of numbers, or a
    tensor, is one clip's samples.

    Example:
        >>> import numpy as np
        >>> is_path_array(np.array(["a.wav", "b.wav"])), is_path_array(np.zeros(16000))
        (True, False)
    """
    return has_array_shape(value) and getattr(value.dtype, "kind", None) in ("U", "S", "O")  # a tensor's has no kind


def describe_rows(value: Any) -> str | None:
    """``value`` named with the fix when it is a 2-D array of paths (a table's rows, ``df[["path", "label"]].values``,
    or its columns, ``rows.T``), None otherwise. Iterated, it gives rows, each an array, so neither ``list(array)`` nor
    ``predict_files`` makes paths of it: its path column does (its path row, when the paths run along a row).

    Example:
        >>> import numpy as np
        >>> describe_rows(np.array([["happy", "a.wav"]], dtype=object))[-44:]
        'pass its path column, e.g. list(array[:, 1])'
        >>> describe_rows(np.array([["a.wav", "b.wav"], ["happy", "sad"]], dtype=object))[-38:]
        'pass its path row, e.g. list(array[0])'
    """
    if not is_path_array(value) or getattr(value, "ndim", None) != 2 or not len(value):
        return None
    corner = value[:_CORNER, :_CORNER]  # the paths' layout shows in the first rows and columns
    texts = [(row, column) for (row, column), cell in np.ndenumerate(corner) if isinstance(cell, (str, bytes,
                                                                                                  os.PathLike))]
    if not texts:  # numbers held as objects: no paths, rows or not
        return None
    paths = [(row, column) for row, column in texts if is_audio_path(os.fsdecode(corner[row, column]))] or texts[:1]
    rows, columns = {row for row, _ in paths}, {column for _, column in paths}
    # A table has its paths down one column; paths along one row are a table transposed (rows.T, df.to_numpy().T).
    if len(rows) < len(columns):
        return (f"{describe_kind(value)}: columns, not paths (a table transposed, e.g. rows.T, has its path column as "
                f"a row); pass its path row, e.g. list(array[{min(rows)}])")
    return (f"{describe_kind(value)}: rows, not paths (a table's values, e.g. df[['path', 'label']].values, are "
            f"rows); pass its path column, e.g. list(array[:, {min(columns)}])")


#: How many of a 2-D array's first rows and columns :func:`describe_rows` reads to find its paths.
_CORNER = 8


def describe_table(value: Any, fix: str = "pass one column, e.g. df[{column!r}]") -> str | None:
    """``value`` named with its columns and the fix when it is a table (a pandas DataFrame: it has ``columns`` and
    ``iloc``), None otherwise. Iterated, a table gives its column names, not its rows, so a list of clips taken from
    one would be its header: ``predict_files`` wrote an error record for a file named ``path`` and returned 0
    predictions, ``enroll`` took the column names as clips.

    Example:
        >>> import pandas as pd
        >>> describe_table(pd.DataFrame({"path": ["a.wav"], "speaker": ["s1"]}))[:46]
        "a DataFrame with columns ['path', 'speaker'] ("

    Args:
        value: Anything.
        fix: What to do with it, ``{column}`` standing for its path column (or its first).
    """
    if not (hasattr(value, "columns") and hasattr(value, "iloc")):
        return None
    columns = [str(column) for column in list(value.columns)]
    shown = columns[:6] + (["..."] if len(columns) > 6 else [])
    column = "path" if "path" in columns else (columns[0] if columns else "path")
    return (f"{describe_kind(value)} with columns {shown} (iterated, a table gives its column names, not its rows); "
            f"{fix.format(column=column)}")


def _not_a_path_list(inputs: Any) -> str | None:
    """What ``inputs`` is when it cannot be a collection of paths (None when it can be)."""
    table = describe_table(inputs)
    if table is not None:
        return table
    if is_bytes_like(inputs):  # file contents as often as a path: never guessed, nor walked byte by byte
        kind = "bytes" if isinstance(inputs, bytes) else describe_kind(inputs)
        return f"{kind} (one path as bytes goes in a list, [path]; a file's contents are no path)"
    if isinstance(inputs, memoryview):  # a view of samples (memoryview(float_array)): audio in memory
        return describe_kind(inputs)
    if has_array_shape(inputs):
        return describe_rows(inputs) if is_path_array(inputs) else describe_kind(inputs)
    if inputs is None or isinstance(inputs, Mapping) or not isinstance(inputs, Iterable):
        return describe_kind(inputs)
    return None


def _input_path(item: Any, index: int) -> str:
    """One input as text: a str, an os.PathLike, or bytes (a path in the file system's encoding; a bytearray or a
    memoryview of bytes too, as bytes are). A str or path-like holding a NUL byte, or a path-like giving no path, is
    refused (:func:`~ser_hf.paths.path_text`), as bytes holding one are: no file name can hold it."""
    if isinstance(item, (str, os.PathLike)):
        return path_text(item, f"inputs[{index}]")
    if is_bytes_like(item):
        item = bytes(item)
    if isinstance(item, bytes):
        if b"\0" in item:  # no path holds a NUL byte: these are more likely a file's contents
            raise SERError(f"inputs[{index}] is bytes holding a NUL byte ({item[:16]!r}...): not a path, perhaps the "
                           f"contents of an audio file. {_PATHS_ONLY}")
        return os.fsdecode(item)
    raise SERError(f"inputs[{index}] is {describe_kind(item)}, not a path. {_PATHS_ONLY}")


def input_paths(inputs: Any) -> list[str]:
    """The inputs of a job as a list of path strings, refused (SERError) before any of them is read.

    One str or os.PathLike is one input (``"clips/"`` is a folder, never the letters of its name), and so is a 0-d
    array of one (``np.array("clips/")``, which cannot be iterated); a bytes item is a path in the file system's
    encoding (:func:`os.fsdecode`).

    Raises:
        SERError: for something that is no collection of paths (an array, a mapping, a table, bytes, None, a number), an
            item that is not a path (its index and type named), or no input at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    elif is_path_array(inputs) and inputs.ndim == 0:
        inputs = [inputs.item()]
    found = _not_a_path_list(inputs)
    if found is not None:
        raise SERError(f"inputs must be a list of paths, e.g. predict_files(model, ['recordings/', 'extra.wav'], out); "
                       f"got {found}. {_PATHS_ONLY}")
    paths = [_input_path(item, index) for index, item in enumerate(inputs)]
    if not paths:
        raise SERError("no inputs: got an empty list; expected at least one file, folder, glob pattern or manifest "
                       "CSV, e.g. predict_files(model, ['recordings/'], out) (ser-hf predict --model M recordings/ "
                       "--out p.jsonl).")
    return paths


def expand_inputs(inputs: Iterable[str | os.PathLike | bytes],
                  output: str | bytes | os.PathLike | None = None) -> list[str]:
    """Absolute paths of the audio files the inputs name, in order, each once (named as
    :func:`~ser_hf.paths.path_key` names them, the key of their records).

    Args:
        inputs: Files, directories (searched recursively for audio extensions; symlinked folders are followed,
            each real folder once), glob patterns (``**`` recurses, with the same loop safety) and manifest CSVs
            (``*.csv`` with a ``path`` column; relative paths are taken from the manifest's folder). A file that
            does not exist is kept: it becomes an error record. One str or os.PathLike is one input; bytes items
            are paths in the file system's encoding (see :func:`input_paths`).
        output: The job's output file (a str, bytes or os.PathLike): left out of what folders and patterns find
            (with its shards and temporary file), refused when named explicitly.

    Raises:
        SERError: for inputs that are not paths (see :func:`input_paths`), no inputs (an empty list, or manifests
            without rows), an empty input, a glob that matches nothing, a directory without audio, a manifest
            without ``path``, or an explicit input that is ``output``; for an ``output`` that is empty, holds a NUL
            byte or gives no path.
    """
    texts = input_paths(inputs)  # every item checked before any folder is walked
    outputs = OutputFiles(output) if output is not None else None
    paths: list[str] = []
    for text in texts:
        if not text:  # Path("") is the current folder: every recording under it would be scored
            raise SERError("an input is an empty string; expected a file, folder, glob pattern or manifest CSV "
                           "('.' for the current folder).")
        path = Path(text).expanduser()
        if path.is_dir():
            paths += _directory_paths(path, outputs)
        elif path.suffix.lower() == ".csv" and path.is_file():
            if outputs is not None and path in outputs:
                raise _refuse_output(text, outputs)
            listed = _manifest_paths(path)
            for row in listed:
                if outputs is not None and row in outputs:
                    raise _refuse_output(f"{row} (listed in {text})", outputs)
            paths += listed
        elif not path.exists() and _GLOB_CHARS & set(text):
            found = glob_files(str(path))
            matches = [m for m in found if outputs is None or m not in outputs]
            if not matches:
                what = "only the output file --out, never read as an input" if found else "no file"
                raise SERError(f"input pattern {display_path(text)!r} matches {what}; check the pattern or "
                               f"quote it in the shell.")
            paths += [path_key(m) for m in matches]
        else:
            if outputs is not None and path in outputs:
                raise _refuse_output(text, outputs)
            paths.append(path_key(path))
    if not paths:  # only manifests without rows get here: folders and patterns that find nothing are refused
        raise SERError(f"no inputs: {[display_path(text) for text in texts]} list no audio file (manifest CSVs "
                       f"without rows); expected at least one file to predict. Add rows to the manifest(s), or pass "
                       f"files or folders.")
    return list(dict.fromkeys(paths))


def speakers_of(paths: Sequence[str], inputs: Iterable[str | os.PathLike], *, pattern: str | None = None,
                column: str | None = None) -> dict[str, str | None]:
    """The speaker of every path: a regex's first group on the path, or a manifest column.

    A speaker is stripped of surrounding whitespace; an empty one (an empty group, a blank cell) is no speaker.

    Args:
        paths: The expanded inputs.
        inputs: The inputs as given (manifest CSVs among them are read for ``column``).
        pattern: A regular expression with a group, searched in each path, e.g. ``'Actor_(\\d+)'``.
        column: A column of the manifest CSVs naming each row's speaker.

    Returns:
        ``{path: speaker}``; None where the pattern does not match or the cell is blank (those files are scored
        by the global head; a warning counts them).

    Raises:
        SERError: for both or neither option, a pattern that does not compile or has no group, a manifest without
            ``column``, a file listed with two different speakers, or no input with a speaker at all.
    """
    if (pattern is None) == (column is None):
        raise SERError("give exactly one of --speaker-pattern (a regex on each path) or --speaker-column (a column "
                       "of the manifest CSVs).")
    if pattern is not None:
        speakers = _pattern_speakers(paths, pattern)
        option, fix = f"--speaker-pattern {pattern!r}", "check the pattern against the path shown"
    else:
        speakers = _column_speakers(paths, inputs, column)
        option, fix = f"--speaker-column {column!r}", f"fill the {column!r} cells of the manifest"
    missing = [path for path in paths if speakers[path] is None]
    if missing and len(missing) == len(paths):
        raise SERError(f"{option} finds no speaker in any of the {len(paths)} input(s) (e.g. "
                       f"{display_path(paths[0])!r}); expected a speaker name for most files. {fix.capitalize()}, "
                       f"or leave the option out to score every file with the global model.")
    if missing:
        warnings.warn(f"{option} finds no speaker for {len(missing)} of {len(paths)} input(s) (e.g. "
                      f"{display_path(missing[0])!r}): the global model scores them. To adapt them too, {fix}.",
                      UserWarning, stacklevel=2)
    return speakers


def _speaker(value: str | None) -> str | None:
    return speaker_text(value or "") or None


def _pattern_speakers(paths: Sequence[str], pattern: str) -> dict[str, str | None]:
    compiled = UserPattern(pattern, option="--speaker-pattern", fix="e.g. 'Actor_(\\d+)' or '/([^/_]+)_[^/]*$'")
    found = {path: compiled.search(path) for path in paths}
    return {path: _speaker(m.group(1)) if m else None for path, m in found.items()}


def _column_speakers(paths: Sequence[str], inputs: Iterable[str | os.PathLike], column: str) -> dict[str, str | None]:
    from ser_hf.corpora.listings import file_identity  # ser_hf.corpora imports datasets: only for manifest inputs

    speakers: dict[str, str | None] = {}
    first: dict[tuple[int, int] | str, tuple[str, str | None]] = {}
    for item in inputs:
        manifest = Path(os.fspath(item)).expanduser()
        if manifest.suffix.lower() != ".csv" or not manifest.is_file():
            continue
        for row in _manifest_rows(manifest, column):
            path = _row_path(manifest, row)
            speaker = _speaker(row.get(column))
            # One file under two names (a symlink, a hard link) is one file: compared by identity.
            earlier, said = first.setdefault(file_identity(path), (path, speaker))
            if said != speaker:
                shown = [printable(s) if s is not None else "(blank)" for s in (said, speaker)]
                also = "" if earlier == path else f" (also as {display_path(earlier)!r}, the same file)"
                raise SERError(f"file {display_path(path)!r}{also} is listed twice with different speakers in the "
                               f"{column!r} column ({shown[0]!r}, then {shown[1]!r}, in {display_path(manifest)!r}"
                               f"); expected one speaker per file. Fix or remove one of the rows.")
            speakers[path] = speaker
    if not speakers:
        raise SERError(f"--speaker-column {column!r} needs manifest CSV inputs (with 'path' and {column!r} columns).")
    return {path: speakers.get(path) for path in paths}
