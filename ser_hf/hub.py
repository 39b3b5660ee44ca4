"""Push a ser_hf checkpoint, its model card and its report figures to the Hugging Face Hub.

:func:`push_to_hub` checks everything local first: the arguments (repo id, branch, commit message, token) and
the folder (:func:`ser_hf.push_folder.check_push_folder`: a complete checkpoint, nothing the Hub should not get).
Only then does it call
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
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RevisionNotFoundError
from huggingface_hub.utils import validate_repo_id

from ser_hf.cards.files import HUB_LICENSES, validate_license
from ser_hf.checkpoint import CARD_DATA_FILE, MODEL_CARD
from ser_hf.errors import SERError
from ser_hf.paths import display_path, is_utf8, path_text, printable
from ser_hf.push_folder import (
    DEFAULT_EXCLUDE,
    HIDDEN_ALLOWED,
    MAX_CARD_BYTES,
    PICKLE_SUFFIXES,
    HubError,
    _checked_files,
    _read_card_text,
    check_push_folder,
)

__all__ = ["DEFAULT_EXCLUDE", "HIDDEN_ALLOWED", "HUB_LICENSES", "MAX_CARD_BYTES", "PICKLE_SUFFIXES", "HubError",
           "check_hub_license", "check_push_folder", "push_model", "push_to_hub"]

#: What git refuses in a branch name (``git check-ref-format``): control characters, space, ~^:?*[\ and "..", "@{".
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


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
    text = path_text(model, "--model", error=HubError, refuse_empty=True)  # "" would push the current folder
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
