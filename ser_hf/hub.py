"""Push a ser_hf checkpoint, its model card and its report figures to the Hugging Face Hub.

:func:`push_to_hub` checks everything local first: the arguments (repo id, branch, commit message, token) and
the folder (weights as safetensors, config, feature extractor, a readable model card whose metadata parses, no
pickle files, no links out of the folder, no FIFOs or unreadable files). Only then does it call
``huggingface_hub``'s ``create_repo`` and ``upload_folder``, on a staging folder of links to the checked files,
so that what is uploaded is what was checked. Every failure is a :class:`HubError` naming what is wrong and the
fix; offline (``HF_HUB_OFFLINE=1``) it fails before any request is attempted. The user's folder is only read:
a licence given to :func:`push_model` goes into the uploaded card, rendered in the staging folder.

:func:`push_model` also takes the name of a model ser_hf ships (``emotion-whisper-base``...): it is
prepared (:func:`ser_hf.models.released_checkpoint.prepare_released`) and uploaded with its card, whose usage
snippet then names the Hub repo.

Example:
    ```python
    >>> from ser_hf.hub import push_model, push_to_hub
    >>> push_to_hub("outputs/rav4", "me/whisper-base-ser-ravdess", private=True)  # doctest: +SKIP
    'https://huggingface.co/me/whisper-base-ser-ravdess/commit/...'
    >>> push_model("emotion-whisper-base", "me/emotion-whisper-base")  # doctest: +SKIP
    'https://huggingface.co/me/emotion-whisper-base/commit/...'

    ```
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi, ModelCard, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RevisionNotFoundError
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from ser_hf.cards.files import HUB_LICENSES, validate_license
from ser_hf.checkpoint import CARD_DATA_FILE, CHECKPOINT_FILES, MODEL_CARD
from ser_hf.errors import SERError
from ser_hf.paths import display_path, is_utf8, printable

__all__ = ["DEFAULT_EXCLUDE", "HIDDEN_ALLOWED", "HUB_LICENSES", "MAX_CARD_BYTES", "PICKLE_SUFFIXES", "HubError",
           "check_hub_license", "check_push_folder", "push_model", "push_to_hub"]

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
#: What git refuses in a branch name (``git check-ref-format``): control characters, space, ~^:?*[\ and "..", "@{".
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


class HubError(SERError):
    """A checkpoint folder cannot be pushed, or the Hub cannot be reached or refused the upload."""


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the variable may have been set since.
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or flag.upper() in {"1", "ON", "YES", "TRUE"}


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of whichever HTTP client this huggingface_hub version uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def check_hub_license(license: str | None, argument: str = "--license") -> str | None:
    """Check that ``license`` is one of the Hub's licence ids (:data:`HUB_LICENSES`; ``None`` passes), as
    :func:`ser_hf.cards.validate_license` does, for a push.

    Raises:
        HubError: naming the argument, what was given and the nearest ids.
    """
    try:
        return validate_license(license, argument)
    except SERError as err:
        raise HubError(str(err)) from None


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str):
        raise HubError(f"--repo-id {_shown(repo_id)} is a {type(repo_id).__name__}; expected a str 'user/name'.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"--repo-id {_shown(repo_id)} is not a valid Hub repo id ({printable(str(err))}); "
                       f"expected 'user/name' or 'org/name'.") from None


def _check_options(repo_id: str, *, token: Any = None, commit_message: Any = None, exclude: Any = (),
                   revision: Any = None, **_: Any) -> None:
    """Refuse, naming the argument, what would fail only once the upload has started."""
    _check_repo_id(repo_id)
    if isinstance(exclude, (str, bytes)) or not all(isinstance(p, str) for p in exclude):
        raise HubError(f"exclude {_shown(exclude)} is not a list of glob patterns; expected e.g. "
                       f"['training_args.bin'] (a bare string would be read letter by letter).")
    if commit_message is not None and (not isinstance(commit_message, str) or not is_utf8(commit_message)
                                       or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", commit_message)):
        raise HubError(f"--commit-message {_shown(commit_message)} is not text the Hub can store: "
                       f"expected UTF-8 text without control characters. Write the message again in plain text.")
    if revision is not None and (not isinstance(revision, str) or not revision or not is_utf8(revision)
                                 or _BAD_REF.search(revision) or revision.startswith(("-", "/", "."))
                                 or revision.endswith(("/", ".", ".lock"))):
        raise HubError(f"--revision {_shown(revision)} is not a branch name: expected a git branch "
                       f"such as 'main' or 'dev' (no spaces, '..', '~^:?*[\\', leading '-' or trailing '/'/'.lock').")
    if token is not None and (not isinstance(token, str) or not token or not token.isascii()
                              or re.search(r"[\x00-\x20\x7f]", token)):
        # The token is a secret: the message never shows it.
        raise HubError("--token is not a Hub token: expected one word of letters and digits (e.g. hf_...), found an "
                       "empty value, spaces, a line break or non-ASCII characters (value not shown). Copy it again "
                       "from https://huggingface.co/settings/tokens, or leave --token out and use HF_TOKEN or "
                       "`hf auth login`.")


def _check_online(repo_id: str) -> None:
    if _offline():
        raise HubError(
            f"Cannot push to {repo_id!r}: Hugging Face Hub offline mode is on (HF_HUB_OFFLINE or "
            f"TRANSFORMERS_OFFLINE is set). Unset it on a machine that can reach huggingface.co and run again."
        )


def _shown(value: Any) -> str:
    """``value`` quoted for a message, bytes that are not UTF-8 as ``\\xNN`` escapes, at most 200 characters."""
    return (repr(printable(value)) if isinstance(value, str) else repr(value))[:200]


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
    directory = Path(model_dir)
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


def push_to_hub(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    exclude: Sequence[str] = (),
    revision: str | None = None,
) -> str:
    """Upload a checkpoint folder (weights, config, feature extractor, card, report figures) to a Hub repo.

    Args:
        model_dir: The checkpoint directory, checked by :func:`check_push_folder`; it is only read.
        repo_id: ``"user/name"`` or ``"org/name"`` (created if missing).
        private: Create the repo as private (an existing repo keeps its visibility).
        token: A Hub token with write access; default: ``HF_TOKEN`` or the stored login (``hf auth login``).
        commit_message: Message of the upload commit (a first line, then an optional description).
        exclude: Extra glob patterns to leave out (e.g. ``["training_args.bin"]``).
        revision: An existing branch to push to (default: main).

    Returns:
        The URL of the upload commit.

    Raises:
        HubError: an invalid argument, an incomplete folder, offline mode, an unreachable Hub, or a refusal
            (bad token, no write access, no such branch); the message says which and what to do.
    """
    return _push(model_dir, repo_id, {}, private=private, token=token, commit_message=commit_message,
                 exclude=exclude, revision=revision)


def _push(model_dir: str | os.PathLike, repo_id: str, card_fields: Mapping[str, str], *, private: bool = False,
          token: str | None = None, commit_message: str | None = None, exclude: Sequence[str] = (),
          revision: str | None = None) -> str:
    """:func:`push_to_hub`, with ``card_fields`` (a licence) set in the uploaded card, not in the folder."""
    _check_options(repo_id, token=token, commit_message=commit_message, exclude=exclude, revision=revision)
    files = _checked_files(model_dir, exclude)
    with tempfile.TemporaryDirectory(prefix="ser_hf_push_") as tmp:
        staging = Path(tmp) / "upload"
        _stage(files, staging, Path(model_dir), card_fields)
        _check_online(repo_id)
        summary, _, description = (commit_message or "").strip().partition("\n")
        return _upload(staging, repo_id, private=private, token=token, revision=revision,
                       commit_message=summary.strip() or f"Upload ser_hf model ({len(files)} files)",
                       commit_description=description.strip() or None)


def _stage(files: Mapping[str, str], staging: Path, directory: Path, card_fields: Mapping[str, str]) -> None:
    """Fill ``staging`` with links to the checked files, so the upload reads exactly them; with ``card_fields``,
    README.md and ser_hf_card.json are new files there, rendered again (the user's folder is never written)."""
    rendered = {MODEL_CARD, CARD_DATA_FILE} if card_fields else set()
    if card_fields and CARD_DATA_FILE not in files:
        raise HubError(
            f"--license: {display_path(directory)!r} has no {CARD_DATA_FILE} among the files to upload (the card data "
            f"ser_hf writes beside README.md, which the card is rendered again from); found {list(files)[:20]}. Train "
            f"again (or do not --exclude it), or set the licence in README.md's YAML header by hand and push without "
            f"--license.")
    for name, real in files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in rendered:  # a file of its own, written below: writing through a link would change the user's
            if name == CARD_DATA_FILE:
                target.write_text(_read_card_data(real, directory), encoding="utf-8")
        else:
            os.symlink(real, target)
    if card_fields:
        from ser_hf.cards import update_model_card

        try:
            update_model_card(staging, **card_fields)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            found = printable(" ".join(str(err).replace(str(staging), display_path(directory)).split()))[:300]
            raise HubError(f"{CARD_DATA_FILE} in {display_path(directory)!r} cannot render the card again "
                           f"({type(err).__name__}: {found}). Train again, or set the licence in README.md's YAML "
                           f"header by hand and push without --license.") from None


def _read_card_data(path: str, directory: Path) -> str:
    text = _read_card_text(path, CARD_DATA_FILE, directory)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise HubError(f"{CARD_DATA_FILE} in {display_path(directory)!r} is not valid JSON ({err}); train again, or "
                       f"push without --license.") from None
    if not isinstance(data, dict):
        raise HubError(f"{CARD_DATA_FILE} in {display_path(directory)!r} holds a JSON {type(data).__name__}; expected "
                       f"the object of card fields ser_hf writes. Train again, or push without --license.")
    return text


def _upload(staging: Path, repo_id: str, *, private: bool, token: str | None, revision: str | None,
            commit_message: str, commit_description: str | None) -> str:
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(staging), revision=revision,
                                   commit_message=commit_message, commit_description=commit_description)
    except RevisionNotFoundError as err:
        raise HubError(f"--revision {revision!r}: {repo_id!r} has no such branch. Create it first (`hf repo branch "
                       f"create {repo_id} {revision}`), or leave --revision out to push to main.") from err
    except HfHubHTTPError as err:
        raise HubError(
            f"The Hub refused the upload to {repo_id!r} ({' '.join(str(err).split())}). Check that the token "
            f"(--token, HF_TOKEN or `hf auth login`) has write access to that namespace."
        ) from err
    except _network_errors() as err:
        raise HubError(
            f"Cannot reach the Hugging Face Hub to push {repo_id!r} ({type(err).__name__}: {err}). The machine "
            f"looks offline or behind a firewall; push from a machine that can reach huggingface.co."
        ) from err
    except ValueError as err:  # huggingface_hub's check of README.md's metadata by the Hub (validate-yaml)
        raise HubError(f"The Hub rejected {MODEL_CARD}'s metadata for {repo_id!r} ({' '.join(str(err).split())}); "
                       f"fix the card's YAML header, or write it again with ser_hf.cards.write_model_card.") from err
    return str(getattr(commit, "commit_url", commit))


def push_model(
    model: str | os.PathLike,
    repo_id: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    **kwargs,
) -> str:
    """Upload a checkpoint folder, or a released model by name, to a Hub repo.

    Args:
        model: A checkpoint directory (see :func:`push_to_hub`), or the name of a model ser_hf ships
            (see ``ser-hf models list``): it is prepared, and uploaded with its card re-rendered so that
            its usage snippet names ``repo_id``.
        repo_id: ``"user/name"`` or ``"org/name"`` (created if missing).
        cache_dir: The models cache for released models.
        license: A Hub licence id (:data:`HUB_LICENSES`) for a checkpoint folder's uploaded card, rendered again
            from its ``ser_hf_card.json`` (the folder itself is not changed); a released model keeps the licence
            of its training data.
        license_name: With ``license="other"``: an id for the terms (the card's ``license_name``).
        license_link: With ``license="other"``: where the terms are, a URL or ``LICENSE`` (``license_link``).
        **kwargs: :func:`push_to_hub` options (``private``, ``token``, ``commit_message``, ``exclude``, ``revision``).

    Returns:
        The URL of the upload commit.

    Raises:
        HubError: a preset name (a backbone without an emotion head or card), or any :func:`push_to_hub` error.
        ModelError: a released model that cannot be prepared (head checksum, backbone not installed...).
    """
    from ser_hf.cards import license_card_fields
    from ser_hf.cards.release import write_release_card
    from ser_hf.models.presets import PRESETS
    from ser_hf.models.released import RELEASES, read_record
    from ser_hf.models.released_checkpoint import prepare_released

    check_hub_license(license)
    terms = license_card_fields(license, license_name, license_link)
    text = os.fspath(model)
    if Path(text).expanduser().is_dir() or text not in {*RELEASES, *PRESETS}:
        return _push(Path(text).expanduser(), repo_id, terms, **kwargs)
    if text in PRESETS:
        raise HubError(
            f"--model {text!r} is a backbone preset (a pretrained encoder without an emotion head or model card), not "
            f"an emotion model. Push a released model ({sorted(RELEASES)}) or a checkpoint `ser-hf train` wrote."
        )
    record = read_record(text)
    for key, value in (("name", license_name), ("link", license_link)):
        if value is not None and value != record.get(f"licence_{key}"):
            raise HubError(f"--license-{key} {value!r} for the released model {text!r}: its licence terms are set by "
                           f"its training data ({record.get('licence_note')}). Leave --license-{key} out.")
    if license is not None and license != record.get("licence"):
        raise HubError(
            f"--license {license!r} for the released model {text!r}: its licence is {record.get('licence')!r}, set "
            f"by its training data ({record.get('licence_note')}). Leave --license out."
        )
    _check_options(repo_id, **kwargs)
    _check_online(repo_id)  # before building the checkpoint, which takes seconds
    prepared = prepare_released(text, cache_dir=cache_dir)
    with tempfile.TemporaryDirectory(prefix=f"ser_hf_push_{text}_") as tmp:
        staged = Path(tmp) / text
        shutil.copytree(prepared, staged)
        write_release_card(staged, record, model_id=repo_id)
        kwargs.setdefault("commit_message", f"Upload {text} (ser_hf released emotion model)")
        return push_to_hub(staged, repo_id, **kwargs)
