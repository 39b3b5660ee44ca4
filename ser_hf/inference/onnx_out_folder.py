"""Where :func:`~ser_hf.inference.onnx.export_onnx` writes: its ``--out`` folder, and an export moved in whole or not
at all.

An export is written into a temporary folder inside ``--out`` (``.export-`` and a random suffix, holding first a file
that names the process which owns it) and moved in only once its parity check holds, so a failed export leaves nothing,
not even an ``--out`` it made. :func:`check_out_dir` refuses an ``--out`` holding anything but an earlier export
(``--overwrite`` replaces exactly the files an export writes, never a folder of other files or another output),
after removing the temporary folders of exports killed before they finished. :func:`move_in` replaces the files one
rename at a time, the record marked incomplete first and written last, so that a kill at any point leaves the earlier
export whole or a folder that loaders refuse. :func:`folders_to_create` and :func:`remove_empty` take away the
folders a failed export made.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from ser_hf._atomic_folder import abandoned
from ser_hf._io import atomic_write_bytes
from ser_hf._output_folders import CHECKPOINT_OUTPUT_FILES, check_output_folder
from ser_hf.checkpoint import RUN_RECORD
from ser_hf.inference.onnx_runtime import EXPORT_RECORD, INT8_FILE, MODEL_FILE

__all__ = ["OWNER_FILE", "TEMP_PREFIX", "check_out_dir", "folders_to_create", "move_in", "remove_empty"]

logger = logging.getLogger(__name__)

# Files an export writes; --overwrite removes exactly these from the output directory, nothing else.
_EXPORT_FILES = (MODEL_FILE, MODEL_FILE + ".data", INT8_FILE, "config.json", "preprocessor_config.json",
                 RUN_RECORD, EXPORT_RECORD)


#: What marks an earlier export: ser_hf's own record (a file merely named like it, e.g. empty, marks nothing).
_EXPORT_MARKER = (EXPORT_RECORD, {"format": "onnx"})
#: Other outputs an export must never be mixed into: a checkpoint's weights (its config.json would be replaced by the
#: export's), a baseline, a speaker model, a search, a converted backbone.
_FOREIGN_OUTPUTS = ("*.safetensors", "baseline_config.json", "ser_hf_speaker.json", "hp_search.json", "conversion.json",
                    "checkpoints/*/checkpoint-*/trainer_state.json")
#: The temporary folder an export writes in, inside ``--out`` (``tempfile``'s random suffix after it).
TEMP_PREFIX = ".export-"


def check_out_dir(out: Path, model_dir: Path, overwrite: bool) -> None:
    # --overwrite replaces an earlier export (ser_hf's own record), never a folder of other files
    _remove_killed_exports(out)
    check_output_folder(out, argument="--out", marker=[_EXPORT_MARKER], what="an ONNX export", sources=[model_dir],
                        overwrite=overwrite, foreign=_FOREIGN_OUTPUTS,
                        writes={*CHECKPOINT_OUTPUT_FILES, *_EXPORT_FILES})


#: The file an export writes first into its temporary folder: the process that owns it (``pid`` on one line).
OWNER_FILE = ".ser_hf_export_owner"


def _remove_killed_exports(out: Path) -> None:
    """Remove the temporary folders of exports killed before they finished: left there, they made ``--out`` look
    like a folder of the user's own files. Only a folder an export made (its owner file, export files beside it)
    whose process is gone: a user's ``.export-backup/`` and a running export's folder are left as they are."""
    if out.is_symlink() or not out.is_dir():
        return  # check_output_folder says what is wrong with it
    for item in out.glob(f"{TEMP_PREFIX}*"):
        owner = item / OWNER_FILE
        if item.is_symlink() or not item.is_dir() or owner.is_symlink() or not owner.is_file():
            continue
        if not all(child.name in (*_EXPORT_FILES, OWNER_FILE) and child.is_file() and not child.is_symlink()
                   for child in item.iterdir()):
            continue
        try:
            pid = int(owner.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if not abandoned(item, pid):  # its export still runs, maybe in another container or on another machine
            continue
        logger.info("removing %s, left by an export that was stopped", item)
        shutil.rmtree(item)


def folders_to_create(out: Path) -> list[Path]:
    """The folders ``out.mkdir(parents=True)`` is about to create, deepest first."""
    missing = []
    for folder in (out, *out.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only ever an empty folder: anything written there meanwhile is kept
        except OSError:
            return


def move_in(tmp: Path, out: Path, record: dict[str, Any]) -> None:
    """Move a finished export from ``tmp`` into ``out`` so that a kill at any point leaves either the earlier export
    whole, or a folder whose record says it is being replaced (loaders refuse it; ``--overwrite`` replaces it):
    the record is marked first and written last; each file is replaced in one rename, and the earlier export's files
    this one has not (``model.int8.onnx``, ``ser_hf_run.json``) are removed before the new record."""
    written = {item.name for item in tmp.iterdir()} - {OWNER_FILE}
    atomic_write_bytes(out / EXPORT_RECORD, (json.dumps({"format": "onnx", "incomplete": True}) + "\n").encode(),
                       follow_symlinks=False)
    for name in sorted(written):
        (tmp / name).replace(out / name)
    for name in _EXPORT_FILES:
        if name not in written and name != EXPORT_RECORD:
            (out / name).unlink(missing_ok=True)
    atomic_write_bytes(out / EXPORT_RECORD, (json.dumps(record, indent=2) + "\n").encode(), follow_symlinks=False)
