"""Push a ser_hf checkpoint, its model card and its report figures to the Hugging Face Hub.

:func:`push_to_hub` checks the folder first (weights as safetensors, config, feature extractor, a
model card whose metadata the Hub accepts, no pickle files), then calls ``huggingface_hub``'s
``create_repo`` and ``upload_folder``. Every failure is a :class:`HubError` naming what is wrong and
the fix; offline (``HF_HUB_OFFLINE=1``) it fails at once, before any request is attempted.

:func:`push_model` also takes the name of a model ser_hf ships (``emotion-whisper-base``...): it is
prepared (:func:`ser_hf.models.released_checkpoint.prepare_released`) and uploaded with its card, whose usage
snippet then names the Hub repo.

Example:
    ```python
    >>> from ser_hf.hub import push_model, push_to_hub
    >>> push_to_hub("outputs/rav4", "me/whisper-base-ser-ravdess", private=True)
    'https://huggingface.co/me/whisper-base-ser-ravdess/commit/...'
    >>> push_model("emotion-whisper-base", "me/emotion-whisper-base")
    'https://huggingface.co/me/emotion-whisper-base/commit/...'
    ```
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from ser_hf.checkpoint import CHECKPOINT_FILES
from ser_hf.errors import SERError

__all__ = ["DEFAULT_EXCLUDE", "PICKLE_SUFFIXES", "HubError", "check_push_folder", "push_model", "push_to_hub"]

#: Never uploaded: the Trainer's intermediate checkpoints (optimizer state, pickles) and TensorBoard logs,
#: plus what huggingface_hub itself skips (.git, .cache/huggingface).
DEFAULT_EXCLUDE = ("checkpoint-*/*", "runs/*", ".git/*", ".cache/*", "__pycache__/*", "*/__pycache__/*")

#: Suffixes of pickle-based files: loading one can run arbitrary code, so they are refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

_REQUIRED = {
    **CHECKPOINT_FILES,
    "README.md": "write the model card: ser_hf.cards.write_model_card(DIR, card_from_run(...))",
}


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


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"--repo-id {repo_id!r} is not a valid Hub repo id ({err}); expected 'user/name'.") from None


def _check_online(repo_id: str) -> None:
    if _offline():
        raise HubError(
            f"Cannot push to {repo_id!r}: Hugging Face Hub offline mode is on (HF_HUB_OFFLINE or "
            f"TRANSFORMERS_OFFLINE is set). Unset it on a machine that can reach huggingface.co and run again."
        )


def check_push_folder(model_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> list[str]:
    """Check that a folder is a complete, pickle-free checkpoint with a valid model card.

    Args:
        model_dir: The checkpoint directory.
        exclude: Extra glob patterns (relative paths) to leave out of the upload.

    Returns:
        The relative paths that would be uploaded, sorted.

    Raises:
        HubError: naming every missing file (and how to make it), every pickle file, or the card's
            metadata error.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise HubError(f"--model {str(directory)!r} is not a directory; pass the checkpoint folder (e.g. outputs/rav4).")
    every = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    files = list(filter_repo_objects(every, ignore_patterns=[*DEFAULT_EXCLUDE, *exclude]))
    top = [name for name in files if "/" not in name]
    missing = [pattern for pattern in _REQUIRED
               if not any(Path(name).match(pattern) for name in top)]
    if missing:
        fixes = "; ".join(f"{name}: {_REQUIRED[name]}" for name in missing)
        raise HubError(f"Cannot push {str(directory)!r}: missing {missing} (found {top}). To fix: {fixes}.")
    pickles = [name for name in files if name.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise HubError(
            f"Cannot push {str(directory)!r}: it holds pickle-format files {pickles}, which can run code when "
            f"loaded. The safetensors weights are enough: delete them, or leave them out with --exclude "
            f"{pickles[0]!r} (exclude=[...])."
        )
    try:
        ModelCard.load(directory / "README.md")
    except ValueError as err:
        raise HubError(f"README.md in {str(directory)!r} has metadata the Hub rejects ({err}); rewrite it with "
                       "ser_hf.cards.write_model_card.") from err
    return files


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
        model_dir: The checkpoint directory, checked by :func:`check_push_folder`.
        repo_id: ``"user/name"`` or ``"org/name"`` (created if missing).
        private: Create the repo as private (an existing repo keeps its visibility).
        token: A Hub token with write access; default: ``HF_TOKEN`` or the stored login (``hf auth login``).
        commit_message: Message of the upload commit.
        exclude: Extra glob patterns to leave out (e.g. ``["training_args.bin"]``).
        revision: Branch to push to (default: main).

    Returns:
        The URL of the upload commit.

    Raises:
        HubError: an incomplete folder, an invalid repo id, offline mode, an unreachable Hub, or a
            refusal (bad token, no write access); the message says which and what to do.
    """
    _check_repo_id(repo_id)
    files = check_push_folder(model_dir, exclude)
    _check_online(repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(model_dir), revision=revision, ignore_patterns=[*DEFAULT_EXCLUDE, *exclude],
            commit_message=commit_message or f"Upload ser_hf model ({len(files)} files)",
        )
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
        license: A Hub licence id to write into a checkpoint folder's card first
            (:func:`ser_hf.cards.update_model_card`); a released model keeps the licence of its training data.
        license_name: With ``license="other"``: an id for the terms (the card's ``license_name``).
        license_link: With ``license="other"``: where the terms are, a URL or ``LICENSE`` (``license_link``).
        **kwargs: :func:`push_to_hub` options (``private``, ``token``, ``commit_message``, ``exclude``, ``revision``).

    Returns:
        The URL of the upload commit.

    Raises:
        HubError: a preset name (a backbone without an emotion head or card), or any :func:`push_to_hub` error.
        ModelError: a released model that cannot be prepared (head checksum, backbone not installed...).
    """
    from ser_hf.cards import license_card_fields, update_model_card
    from ser_hf.cards.release import write_release_card
    from ser_hf.models.presets import PRESETS
    from ser_hf.models.released import RELEASES, read_record
    from ser_hf.models.released_checkpoint import prepare_released

    terms = license_card_fields(license, license_name, license_link)
    text = os.fspath(model)
    if Path(text).expanduser().is_dir() or text not in {*RELEASES, *PRESETS}:
        if terms and Path(text).expanduser().is_dir():
            _check_repo_id(repo_id)  # before rewriting the card of a push that cannot happen
            _check_online(repo_id)
            update_model_card(text, **terms)
        return push_to_hub(text, repo_id, **kwargs)
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
    _check_repo_id(repo_id)
    _check_online(repo_id)  # before building the checkpoint, which takes seconds
    prepared = prepare_released(text, cache_dir=cache_dir)
    with tempfile.TemporaryDirectory(prefix=f"ser_hf_push_{text}_") as tmp:
        staged = Path(tmp) / text
        shutil.copytree(prepared, staged)
        write_release_card(staged, record, model_id=repo_id)
        kwargs.setdefault("commit_message", f"Upload {text} (ser_hf released emotion model)")
        return push_to_hub(staged, repo_id, **kwargs)
