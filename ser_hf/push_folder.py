"""What a push uploads: the files of a checkpoint folder, checked before any request.

A folder is pushed when it is a complete ser_hf checkpoint (weights as safetensors, config, feature extractor, a
readable model card whose metadata parses) and holds nothing the Hub should not get: no pickle files, no hidden
files (secrets often hide there), no links out of the folder, no FIFOs or unreadable files, no names that are not
UTF-8. :func:`check_push_folder` says which files would go up, or raises a :class:`HubError` naming every problem and
its fix; :func:`ser_hf.hub.push_to_hub` uploads exactly the files it checked.

Example:
    ```python
    >>> from ser_hf.push_folder import check_push_folder
    >>> "model.safetensors" in check_push_folder("outputs/rav4")  # doctest: +SKIP
    True

    ```
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.utils import filter_repo_objects

from ser_hf.checkpoint import CHECKPOINT_FILES, MODEL_CARD
from ser_hf.errors import SERError
from ser_hf.paths import display_path, is_utf8, path_text, printable

__all__ = ["DEFAULT_EXCLUDE", "HIDDEN_ALLOWED", "MAX_CARD_BYTES", "PICKLE_SUFFIXES", "HubError", "check_push_folder"]

#: Never uploaded: the Trainer's intermediate checkpoints (optimizer state, pickles; a ser_hf run keeps them in
#: ``checkpoints/split-<digest>/checkpoint-N/``, a plain Trainer in ``checkpoint-N/``) and TensorBoard logs, plus what
#: huggingface_hub itself skips (.git, .cache/huggingface), and the litter desktops leave in folders.
DEFAULT_EXCLUDE = ("checkpoint-*/*", "checkpoints/*", "runs/*", ".git/*", ".cache/*", "__pycache__/*",
                   "*/__pycache__/*", ".DS_Store", "*/.DS_Store", "._*", "*/._*", "Thumbs.db", "*/Thumbs.db",
                   "desktop.ini", "*/desktop.ini")

#: The one hidden file a model repo may carry: git's attributes (the Hub writes its own LFS rules there).
HIDDEN_ALLOWED = (".gitattributes",)

#: Suffixes of pickle-based files: loading one can run arbitrary code, so they are refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


#: The most a card file (README.md, ser_hf_card.json) may hold. ser_hf's cards are a few kB of text; the bound keeps
#: a stray huge file from being read into memory (and the Hub stores files over 10 MB with LFS, not as text).
MAX_CARD_BYTES = 10 * 2**20

_REQUIRED = {
    **CHECKPOINT_FILES,
    MODEL_CARD: "write the model card: ser_hf.cards.write_model_card(DIR, card_from_run(...))",
}


class HubError(SERError):
    """A checkpoint folder cannot be pushed, or the Hub cannot be reached or refused the upload."""



def _ignored(name: str, ignore: Sequence[str]) -> bool:
    return not list(filter_repo_objects([name], ignore_patterns=list(ignore)))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _entry_problem(path: str, root: str) -> str | None:
    """Why a file of the folder cannot be uploaded (None: it can)."""
    try:
        info = os.stat(path)  # follows a link: what would be uploaded
    except OSError as err:
        if os.path.islink(path):
            return f"is a dangling symlink (to {display_path(os.readlink(path))!r}; {err.strerror})"
        return f"cannot be read ({err.strerror})"
    if os.path.islink(path) and not _inside(os.path.realpath(path), root):
        return (f"is a symlink to {display_path(os.path.realpath(path))!r}, outside the folder: the Hub would get that "
                f"file's bytes. Copy the file into the folder in place of the link if it is meant to be published")
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _push_files(directory: Path, ignore: Sequence[str]) -> dict[str, str]:
    """``{path in the repo: real path to read}`` for every file to upload; HubError listing what cannot be."""
    root = os.path.realpath(directory)
    files: dict[str, str] = {}
    problems: list[tuple[str, str]] = []  # (path, what is wrong), listed in path order

    def unlistable(err: OSError) -> None:
        name = os.path.relpath(err.filename, root)
        if not _ignored(f"{Path(name).as_posix()}/_", ignore):
            problems.append((name, f"is a folder that cannot be listed ({err.strerror})"))

    for folder, folders, names in os.walk(root, onerror=unlistable):
        for name in list(folders):
            path = os.path.join(folder, name)
            rel = Path(os.path.relpath(path, root)).as_posix()
            if _ignored(f"{rel}/_", ignore):
                folders.remove(name)
            elif os.path.islink(path) and not _inside(os.path.realpath(path), root):
                problems.append((rel, f"is a symlink to the folder {display_path(os.path.realpath(path))!r}, outside "
                                      f"the folder: the Hub would get its files. Copy them in instead"))
            # A link to a folder inside is not followed: its files are uploaded under their own paths.
        for name in names:
            path = os.path.join(folder, name)
            rel = Path(os.path.relpath(path, root)).as_posix()
            if _ignored(rel, ignore):
                continue
            problem = None if is_utf8(rel) else "has a name that is not UTF-8, which the Hub cannot store; rename it"
            problem = problem or _entry_problem(path, root)
            target = Path(os.path.relpath(os.path.realpath(path), root)).as_posix()
            if not problem and os.path.islink(path) and _ignored(target, ignore):
                # e.g. notes.txt -> .git/config: the link would upload what the exclusion keeps out
                problem = (f"is a symlink to {display_path(target)!r}, which is left out of the upload (excluded): "
                           f"the Hub would get it anyway. Copy in what should be uploaded, or remove the link")
            if problem:
                problems.append((rel, problem))
            else:
                files[rel] = os.path.realpath(path)
    if problems:
        listed = "; ".join(f"{display_path(name)!r} {problem}" for name, problem in sorted(problems))
        raise HubError(f"Cannot push {display_path(directory)!r}: {listed}. To fix: remove or "
                       "replace each one, or leave it out with --exclude (exclude=[...]); nothing was uploaded.")
    return dict(sorted(files.items()))


def _read_card_text(path: str | os.PathLike, name: str, directory: Path) -> str:
    """The text of a card file, at most :data:`MAX_CARD_BYTES` of UTF-8 (HubError naming it otherwise)."""
    where = f"{name} in {display_path(directory)!r}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CARD_BYTES + 1)
    except OSError as err:
        raise HubError(f"{where} cannot be read ({err.strerror}); make it a readable file.") from err
    if len(raw) > MAX_CARD_BYTES:
        raise HubError(f"{where} holds more than {MAX_CARD_BYTES // 2**20} MiB; a model card is text of a few kB. "
                       f"Write it again with ser_hf.cards.write_model_card.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HubError(f"{where} is not UTF-8 text (byte {err.start}: {raw[err.start:err.start + 1]!r}); save it as "
                       f"UTF-8, or write it again with ser_hf.cards.write_model_card.") from None


def _check_card(path: str, directory: Path) -> None:
    text = _read_card_text(path, MODEL_CARD, directory)
    try:
        ModelCard(text, ignore_metadata_errors=False)
    except (ValueError, yaml.YAMLError, RecursionError) as err:  # ParserError, ScannerError, ConstructorError...
        mark = getattr(err, "problem_mark", None)
        if isinstance(err, yaml.MarkedYAMLError) and mark is not None:  # where in the file, not in the header
            header = REGEX_YAML_BLOCK.search(text)
            line = mark.line + 1 + (header.group(1).count("\n") + text[:header.start()].count("\n") if header else 0)
            found = f"{err.problem or err.context}, line {line} column {mark.column + 1}: {mark.get_snippet() or ''}"
        else:  # huggingface_hub's hint (ignore_metadata_errors=True) is for its API, not for a card to be pushed
            found = str(err).split(" Pass `ignore_metadata_errors")[0]
        found = printable(" ".join(found.split()))[:300].rstrip(".^ ")
        raise HubError(f"{MODEL_CARD} in {display_path(directory)!r} has a YAML header (between the '---' lines) the "
                       f"Hub cannot read: {type(err).__name__}: {found}. Fix the header, or write the card again with "
                       f"ser_hf.cards.write_model_card.") from None


def check_push_folder(model_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> list[str]:
    """Check that a folder is a complete, pickle-free checkpoint with a valid model card, reading nothing outside it.

    Symlinks whose target lies outside the folder, dangling links, FIFOs and other special files, unreadable
    files and names that are not UTF-8 are refused (unless excluded); a link to a folder inside is not followed.

    Args:
        model_dir: The checkpoint directory.
        exclude: Extra glob patterns (relative paths) to leave out of the upload.

    Returns:
        The relative paths that would be uploaded, sorted.

    Raises:
        HubError: naming every missing file (and how to make it), every pickle file or file that cannot be
            uploaded, or the card's problem.
    """
    return list(_checked_files(model_dir, exclude))


def _checked_files(model_dir: str | os.PathLike, exclude: Sequence[str]) -> dict[str, str]:
    directory = Path(path_text(model_dir, "--model", error=HubError, refuse_empty=True))  # "" is the current folder
    if not directory.is_dir():
        raise HubError(f"--model {display_path(directory)!r} is not a directory; pass the checkpoint folder "
                       f"(e.g. outputs/rav4).")
    files = _push_files(directory, [*DEFAULT_EXCLUDE, *exclude])
    top = [name for name in files if "/" not in name]
    missing = [pattern for pattern in _REQUIRED
               if not any(Path(name).match(pattern) for name in top)]
    if missing:
        fixes = "; ".join(f"{name}: {_REQUIRED[name]}" for name in missing)
        raise HubError(f"Cannot push {display_path(directory)!r}: missing {missing} (found {top}). To fix: {fixes}.")
    pickles = [name for name in files if name.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise HubError(
            f"Cannot push {display_path(directory)!r}: it holds pickle-format files {pickles}, which can run code when "
            f"loaded. The safetensors weights are enough: delete them, or leave them out with "
            f"{_exclusion(pickles)} (exclude=[...])."
        )
    hidden = [name for name in files if _hidden(name)]
    if hidden:  # .env, .netrc, .aws/credentials, .ssh/...: a public upload would publish them
        raise HubError(
            f"Cannot push {display_path(directory)!r}: it holds hidden files {hidden} (a name starting with '.'), "
            f"which a model does not need and which often hold secrets (tokens, keys, passwords). Delete them, or "
            f"leave them out with {_exclusion(hidden)} (exclude=[...])."
        )
    _check_card(files[MODEL_CARD], directory)
    return files


def _hidden(name: str) -> bool:
    """Whether a relative path names a hidden file or lies in a hidden folder (``HIDDEN_ALLOWED`` aside)."""
    return name not in HIDDEN_ALLOWED and any(part.startswith(".") for part in name.split("/"))


def _exclusion(names: Sequence[str]) -> str:
    """The ``--exclude`` options leaving out every one of ``names``: one pattern where one fits (the name itself,
    the files of the folder they all lie in, as ``fnmatch``'s ``*`` spans folders, or every file of their suffix),
    else one option per name."""
    patterns = list(names)
    folder = os.path.commonpath(names) if len(names) > 1 else ""
    suffixes = {Path(name).suffix for name in names}
    if folder:
        patterns = [f"{folder}/*"]
    elif len(names) > 1 and len(suffixes) == 1 and suffixes != {""}:  # no suffix: '*' would leave out everything
        patterns = [f"*{suffixes.pop()}"]
    return " ".join(f"--exclude {pattern!r}" for pattern in patterns)
