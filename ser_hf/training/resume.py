"""Resuming an interrupted fine-tuning run: which ``checkpoint-N`` folder to resume from, and whether it fits the model.

The Trainer resumes on its own from a folder it is given; these checks come first so that ``resume_from_checkpoint:
last`` skips a checkpoint half-written by a killed run, and a checkpoint of another model or other emotions is
refused with its differences named instead of failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import PreTrainedModel

from ser_hf.errors import SERError

__all__ = ["check_cv_checkpoint_resume", "check_resume_checkpoint", "resolve_resume_checkpoint", "resume_requested",
           "resumes_newest"]

logger = logging.getLogger(__name__)


def resume_requested(value: str | bool | None) -> bool:
    """Whether ``resume_from_checkpoint`` asks to resume at all (not unset, false or none)."""
    return not (value is None or value is False or str(value).lower() in ("", "false", "none"))


def resumes_newest(value: str | bool | None) -> bool:
    """Whether ``resume_from_checkpoint`` asks for the newest checkpoint (``true``/``last``) rather than a path."""
    return value is True or str(value).lower() in ("true", "last")


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str | Path, missing_ok: bool = False) -> str | None:
    """The checkpoint folder ``resume_from_checkpoint`` names: a path, or ``true``/``last`` for the newest one.

    ``missing_ok`` (a CV's fold): ``last`` with no checkpoint yet means the fold had not started: it trains afresh."""
    if not resume_requested(value):
        return None
    if resumes_newest(value):
        last = _last_complete_checkpoint(Path(output_dir))
        if last is None and missing_ok:
            logger.info("no checkpoint of this fold in %s yet: it trains from the start", output_dir)
            return None
        if last is None:
            raise SERError(f"resume_from_checkpoint={value!r}: there is no checkpoint-* folder in {str(output_dir)!r} "
                           f"to resume from. Train without it first, or pass a checkpoint folder's path.")
        return last
    if not Path(value).is_dir():
        raise SERError(f"resume_from_checkpoint {str(value)!r} is not a directory. Pass a checkpoint-N folder written "
                       f"by an earlier run (or 'last' for the newest one in its output_dir).")
    return str(value)


def check_cv_checkpoint_resume(value: str | bool | None, checkpoints: Path, same_cv: bool) -> None:
    """Refuse ``resume_from_checkpoint`` in a CV where it would mix two CVs' training: a path (one fold's checkpoint,
    which every fold would start from), or ``last`` when the fine-tuning checkpoints under ``checkpoints`` may be
    another CV's (not ``same_cv``: the output folder holds no earlier run of this very CV, and the checkpoints are
    named by each fold's clips only)."""
    if not resume_requested(value):
        return
    if not resumes_newest(value):
        raise SERError(f"resume_from_checkpoint {str(value)!r}: in a CV a checkpoint folder is one fold's, and every "
                       f"fold would start from it; pass resume_from_checkpoint last (each fold continues from its own "
                       f"newest checkpoint) or drop it.")
    if not same_cv and any(Path(checkpoints).glob("split-*/checkpoint-*")):
        raise SERError(f"resume_from_checkpoint last: {checkpoints} holds fine-tuning checkpoints, but output_dir holds "
                       f"no earlier run of this CV (its settings, code, model or clips differ; the log says which), so "
                       f"they may be another CV's and continuing them would mix two CVs. Drop resume_from_checkpoint "
                       f"to train every fold afresh, or pass another output_dir.")


def _last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder the Trainer finished writing (None if there is none).

    The Trainer writes a checkpoint in place and ``trainer_state.json`` last, so a run killed while saving
    leaves a newest folder without it (or with it cut short); resuming from that one would fail.
    """
    folders = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-", 1)[1]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return str(folder)
        except (OSError, ValueError):
            logger.warning("%s was not completely written (killed while saving?); trying an earlier checkpoint.", folder)
    return None


_ARCHITECTURE_KEYS = ("model_type", "hidden_size", "d_model", "num_hidden_layers", "encoder_layers",
                      "use_weighted_layer_sum", "classifier_proj_size", "max_source_positions")


def check_resume_checkpoint(checkpoint: str | Path, model: PreTrainedModel) -> None:
    """Raise :class:`SERError` if ``checkpoint`` was written for another architecture or other labels."""
    folder = Path(checkpoint)
    config_file = folder / "config.json"
    if not config_file.is_file():
        if (folder / "adapter_config.json").is_file():
            return  # LoRA adapters: peft checks their shapes when loading
        raise SERError(f"resume_from_checkpoint {str(folder)!r} has no config.json; expected a checkpoint-N folder "
                       f"written by the Trainer of this run.")
    saved = json.loads(config_file.read_text())
    current = model.config.to_dict()
    differences = [f"{key}: checkpoint {saved.get(key)!r}, model {current.get(key)!r}" for key in _ARCHITECTURE_KEYS
                   if (key in saved or key in current) and saved.get(key) != current.get(key)]
    saved_labels = [saved.get("id2label", {}).get(str(i)) for i in range(len(saved.get("id2label", {})))]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if saved_labels != labels:
        differences.append(f"labels: checkpoint {saved_labels}, model {labels}")
    if differences:
        raise SERError(f"resume_from_checkpoint {str(folder)!r} belongs to another model ({'; '.join(differences)}). "
                       f"Resume only from a checkpoint of the same model_name_or_path, options and emotions, or "
                       f"drop resume_from_checkpoint to start afresh.")
