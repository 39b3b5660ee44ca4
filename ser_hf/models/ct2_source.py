"""What a faster-whisper (CTranslate2) Whisper folder holds besides the weights, read and checked: the folder itself,
its ``config.json`` and its vocabulary (``vocabulary.txt``, ``vocabulary.json`` or ``tokenizer.json``).

These files come from the user's disk, so every way they can be damaged (not UTF-8, not JSON, JSON of the wrong
shape, a folder or a link loop where a file should be) is a :class:`~ser_hf.errors.ModelError` naming the file, what
was expected and what was found; :mod:`ser_hf.models.whisper_convert` turns what they hold into a checkpoint.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from ser_hf._io import link_problem, read_bounded, read_json
from ser_hf.errors import ModelError
from ser_hf.paths import display_path, path_text

logger = logging.getLogger(__name__)

__all__ = ["REDOWNLOAD", "SUPPRESS_KEYS", "check_ct2_config", "check_source_dir", "describe_listing", "read_vocabulary",
           "read_whisper_dir", "vocabulary_file"]

#: A Whisper tokenizer.json is ~2.5 MB, a vocabulary.txt ~0.6 MB; far larger is no vocabulary.
_MAX_VOCABULARY_BYTES = 64 * 2**20
REDOWNLOAD = "Re-install or re-download the model (its model.bin, config.json and vocabulary come together)."
#: The keys of a CTranslate2 config.json that hold token ids (Whisper's suppressed tokens).
SUPPRESS_KEYS = ("suppress_ids", "suppress_ids_begin")
_END_OF_TEXT = "<|endoftext|>"


def check_ct2_config(config: Any, shown: str, vocab_size: int | None = None) -> dict[str, Any]:
    """Returns a CTranslate2 ``config.json`` value after checking what the conversion reads of it: an object whose
    ``suppress_ids`` and ``suppress_ids_begin`` are lists of token ids (below ``vocab_size`` when given).

    Raises:
        ModelError: naming ``shown`` (the file), the key, what was expected and what was found.
    """
    if not isinstance(config, dict):
        raise ModelError(f"{shown} must hold a JSON object, found {type(config).__name__}. {REDOWNLOAD}")
    for key in SUPPRESS_KEYS:
        ids = config.get(key)
        if ids is None:
            continue
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ModelError(f"{shown}: {key} must be a list of token ids (integers), found {str(ids)[:60]}. "
                             f"{REDOWNLOAD}")
        outside = [i for i in ids if i < 0 or (vocab_size is not None and i >= vocab_size)]
        if outside:
            raise ModelError(f"{shown}: {key} holds token id(s) {outside[:5]} outside the model's vocabulary of "
                             f"{vocab_size} tokens: it belongs to another model. {REDOWNLOAD}")
    return config


def vocabulary_file(src_dir: str | os.PathLike) -> Path | None:
    """The file the vocabulary of a CTranslate2 model directory is read from (see :func:`read_vocabulary`), or None.

    Raises:
        ModelError: naming it, where one of those names is something other than a file (a link to nothing, a link
            loop, a folder, a pipe): taken for a missing vocabulary, the model would be converted with Whisper's
            default special-token ids without a word. Where a later name is a file (a valid ``vocabulary.json``
            beside a dangling ``vocabulary.txt`` link), the message names it and says to remove the broken one.
    """
    src_dir = Path(src_dir)
    paths = [src_dir / name for name in ("vocabulary.txt", "vocabulary.json", "tokenizer.json")]
    for index, path in enumerate(paths):
        problem = _file_problem(path)
        if problem is None and path.is_file():
            return path
        if problem is not None:
            other = next((later for later in paths[index + 1:] if _file_problem(later) is None and later.is_file()),
                         None)
            if other is None:
                raise ModelError(f"{display_path(path)} is {problem}; expected the model's vocabulary. {REDOWNLOAD}")
            raise ModelError(f"{display_path(path)} is {problem}; expected the model's vocabulary. "
                             f"{display_path(other)} is there too, but {path.name} is read first: remove the broken "
                             f"{path.name} and the conversion uses {other.name}. Or {REDOWNLOAD[0].lower()}"
                             f"{REDOWNLOAD[1:]}")
    return None


def _file_problem(path: Path) -> str | None:
    """What is at ``path`` when it is neither a regular file (followed through a link) nor nothing: a link to nothing
    or a loop, a folder, a pipe or a device; None otherwise."""
    problem = link_problem(path)
    if problem is None and os.path.lexists(path) and not path.is_file():
        problem = "not a regular file (a folder, a pipe or a device)"
    return problem


def _present_file(path: Path, what: str) -> bool:
    """Whether ``path`` is a regular file (followed through a link); False when nothing is there.

    Raises:
        ModelError: for anything else at that name: a link to nothing or a loop, a folder, a pipe or a device.
    """
    problem = _file_problem(path)
    if problem is not None:
        raise ModelError(f"{display_path(path)} is {problem}; expected {what}. {REDOWNLOAD}")
    return path.is_file()


def _vocabulary_lines(text: str, shown: str) -> list[str]:
    """The tokens of a ``vocabulary.txt``, one per line (ctranslate2 ends every line, the last too, with a newline).

    A byte-level BPE token (Whisper's) never holds a raw ``\\r`` and is never empty, so what an editor or a ``git``
    checkout does to the file is undone, with a warning naming the file: Windows (``\\r\\n``, on some lines or all)
    and old Mac (``\\r``) line endings are taken off, and so are blank lines at the end. Left on, they made the
    vocabulary look like another model's ("has no <|endoftext|>", "has 81 tokens"). The one empty entry a Whisper
    vocabulary has is the multilingual models' unused id 50256, the line just before ``<|endoftext|>`` (ctranslate2
    writes it as a blank line): it is kept.

    Raises:
        ModelError: naming the file, when it holds no token, or a blank line before its last token other than that
            one (a token lost or one too many: every id after it would be wrong).
    """
    if not text.strip("\r\n"):
        found = "only blank lines, no token" if text else "0 bytes"
        raise ModelError(f"{shown} is empty ({found}); expected the model's vocabulary, one token per line. "
                         f"{REDOWNLOAD}")
    old_mac = "\n" not in text and "\r" in text
    lines = text.split("\r" if old_mac else "\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if old_mac or any(line.endswith("\r") for line in lines):
        logger.warning("%s has Windows (\\r\\n) or old Mac (\\r) line endings; reading it without them", shown)
        lines = [line.rstrip("\r") for line in lines]
    blank = 0
    while lines[-1 - blank] == "":
        blank += 1
    if blank:
        logger.warning("%s ends with %d blank line(s); reading it without them", shown, blank)
        del lines[len(lines) - blank:]
    inside = [number for number, line in enumerate(lines, start=1)
              if line == "" and lines[number:number + 1] != [_END_OF_TEXT]]
    if inside:
        where = (f"line {inside[0]} is blank" if len(inside) == 1 else
                 f"lines {', '.join(map(str, inside[:5]))}{', ...' if len(inside) > 5 else ''} are blank")
        raise ModelError(f"{shown}: {where}; a Whisper vocabulary has one token per line and no empty token (but "
                         f"the unused id just before {_END_OF_TEXT}): the file was edited or damaged. {REDOWNLOAD}")
    return lines


def read_vocabulary(src_dir: str | os.PathLike) -> list[str] | None:
    """Reads the vocabulary of a CTranslate2 model directory.

    Args:
        src_dir: The model directory.

    Returns:
        Tokens by id, from ``vocabulary.txt``, ``vocabulary.json`` or ``tokenizer.json``; None if there is none.

    Raises:
        ModelError: The file is not UTF-8, not valid JSON, or not a vocabulary (naming it and what was found).
    """
    path = vocabulary_file(src_dir)
    if path is None:
        return None
    shown = display_path(path)
    if path.name == "tokenizer.json":
        return _tokenizer_tokens(read_json(path, fix=REDOWNLOAD, max_bytes=_MAX_VOCABULARY_BYTES), shown)
    data = read_bounded(path, _MAX_VOCABULARY_BYTES, fix=REDOWNLOAD, what="a vocabulary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelError(f"{shown} is not UTF-8 text ({err}); expected the model's vocabulary. {REDOWNLOAD}") from None
    if path.name == "vocabulary.txt":
        return _vocabulary_lines(text, shown)
    try:
        tokens = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ModelError(f"{shown} is not valid JSON ({err}); expected the model's vocabulary, a list of "
                         f"tokens. {REDOWNLOAD}") from None
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        found = type(tokens).__name__ if not isinstance(tokens, list) else "a list with non-string items"
        raise ModelError(f"{shown} must hold a JSON list of tokens (strings), found {found}. {REDOWNLOAD}")
    return tokens


def _tokenizer_tokens(data: dict[str, Any], shown: str) -> list[str]:
    """Tokens by id from a ``tokenizer.json`` (its ``model.vocab`` and ``added_tokens``)."""
    vocab = data.get("model", {}).get("vocab", {}) if isinstance(data.get("model", {}), dict) else None
    added = data.get("added_tokens", [])
    if not isinstance(vocab, dict) or not isinstance(added, list) or not all(
            isinstance(t, dict) and isinstance(t.get("content"), str) for t in added):
        raise ModelError(f"{shown} is not a tokenizers file: expected model.vocab (an object of token: id) and "
                         f"added_tokens (a list of objects with content and id). {REDOWNLOAD}")
    ids = {**vocab, **{t["content"]: t.get("id") for t in added}}
    bad = [token for token, index in ids.items()
           if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**22]
    if bad:
        raise ModelError(f"{shown}: token {bad[0]!r} has id {ids[bad[0]]!r}, expected a whole number from 0 to "
                         f"{2**22 - 1}. {REDOWNLOAD}")
    tokens = [""] * (max(ids.values(), default=-1) + 1)
    for token, index in ids.items():
        tokens[index] = token
    return tokens


def describe_listing(directory: Path, limit: int = 8) -> str:
    """The sorted entries of ``directory`` for an error message, shortened to ``limit`` names."""
    names = sorted(p.name for p in directory.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def read_whisper_dir(src_dir: str | os.PathLike) -> tuple[bytes, dict[str, Any] | None, list[str] | None]:
    """Reads the files of a CTranslate2/faster-whisper model directory.

    Args:
        src_dir: Directory holding ``model.bin`` and usually ``config.json`` and a vocabulary.

    Returns:
        The ``model.bin`` bytes, the parsed ``config.json`` (None if absent) and the vocabulary (None if absent).

    Raises:
        ModelError: If the directory or its ``model.bin`` is missing, or a file of it is damaged.
    """
    src = check_source_dir(src_dir)
    if (src / "model.bin").exists() and not (src / "model.bin").is_file():
        raise ModelError(f"{display_path(src / 'model.bin')} is not a regular file (a folder, a pipe or a device); "
                         f"expected the model's weights. {REDOWNLOAD}")
    if not (src / "model.bin").is_file():
        names = {p.name for p in src.iterdir()}
        hint = (
            " It looks like a transformers checkpoint already: load it directly."
            if "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names)
            else ""
        )
        raise ModelError(
            f"{src} is not a CTranslate2/faster-whisper model directory: expected a model.bin, found "
            f"{describe_listing(src)}.{hint}"
        )
    config = None
    if _present_file(src / "config.json", "the model's settings (suppressed token ids)"):
        config = check_ct2_config(read_json(src / "config.json", fix=REDOWNLOAD), display_path(src / "config.json"))
    return (src / "model.bin").read_bytes(), config, read_vocabulary(src)


def check_source_dir(src_dir: str | os.PathLike) -> Path:
    """Refuse a faster-whisper ``src_dir`` that is missing, a file or a symbolic link loop; returns it as a Path."""
    src = Path(path_text(src_dir, "faster-whisper model directory (src_dir)", error=ModelError, refuse_empty=True))
    problem = link_problem(src)
    if problem is not None:
        raise ModelError(f"faster-whisper model directory {display_path(src)} is {problem}. Pass a directory holding "
                         f"model.bin.")
    try:
        src.stat()
    except OSError as err:
        found = "does not exist" if err.errno == errno.ENOENT else f"cannot be read ({err.strerror})"
        raise ModelError(f"faster-whisper model directory {display_path(src)} {found}. Pass a directory holding "
                         f"model.bin.") from None
    if not src.is_dir():
        raise ModelError(f"faster-whisper model directory {display_path(src)} is a file, not a folder. Pass the "
                         f"directory holding model.bin (for {src.name}: {display_path(src.parent)}).")
    return src
