"""A baseline's folder: the files it holds, and the check that a folder may receive them.

``ser-hf baseline --out DIR`` writes the CV reports to ``DIR/cv`` and, with ``--save-model``, the model
(:data:`MODEL_NAME` or a neural model's safetensors), its settings (:data:`CONFIG_NAME`) and a ``README.md`` card.
:func:`check_baseline_folder` lets that happen only in a new or empty folder or an earlier baseline's, never in a
folder of the user's own files (the crossval and the model modules both write there, so the rule lives here), and
:func:`one_baseline_at_a_time` lets one baseline at a time write there.
"""

from __future__ import annotations

import os
from pathlib import Path

from ser_hf._output_folders import check_output_folder
from ser_hf.evaluation.report import CV_PLAN, CV_PLAN_KEYS, CV_SUMMARY_KEYS, foreign_cv_markers
from ser_hf.locks import folder_lock

__all__ = ["BASELINE_OUTPUTS", "CONFIG_NAME", "FOREIGN_OUTPUTS", "MODEL_FILES", "MODEL_NAME", "check_baseline_folder",
           "one_baseline_at_a_time", "remove_earlier_model"]

MODEL_NAME = "model.skops"
CONFIG_NAME = "baseline_config.json"
#: Files a baseline writes into its folder (the model's settings, the CV reports); any of them marks an earlier
#: baseline's folder, which a new one may reuse.
BASELINE_OUTPUTS = ((CONFIG_NAME, ("format", "classifier", "labels")), ("cv/cv_summary.json", CV_SUMMARY_KEYS),
                    (f"cv/{CV_PLAN}", CV_PLAN_KEYS))
#: Marker files of other commands' outputs (a training run, an ONNX export, a speaker model): not a baseline's folder.
FOREIGN_OUTPUTS = ("ser_hf_run.json", "ser_hf_export.json", "ser_hf_speaker.json", "hp_search.json",
                   "checkpoints/*/checkpoint-*/trainer_state.json", *foreign_cv_markers("baseline"))


def check_baseline_folder(directory: str | os.PathLike, argument: str) -> Path:
    """``directory`` for a baseline's files: new, empty or an earlier baseline's; never a file or a folder of the
    user's own files (a baseline writes ``README.md`` there).

    Raises:
        ModelError: naming ``argument`` and what the folder holds.
    """
    return check_output_folder(directory, argument=argument, marker=BASELINE_OUTPUTS, what="a baseline's output",
                               overwrite=True, foreign=FOREIGN_OUTPUTS, writes=MODEL_FILES)


#: The files of a saved baseline model (the classic or the neural weights, the settings, the card).
MODEL_FILES = (MODEL_NAME, "model.safetensors", CONFIG_NAME, "README.md")


def remove_earlier_model(directory: Path) -> None:
    """Before a rerun with ``--save-model`` replaces an earlier baseline's CV in ``directory``, remove its model files:
    a run stopped between its CV and its refit would otherwise leave the old model and card beside the new CV.
    Only in an earlier baseline's folder (:func:`check_baseline_folder` accepts it); links are removed, never followed."""
    if not any((directory / marker).is_file() for marker in (CONFIG_NAME, "cv/cv_summary.json", f"cv/{CV_PLAN}")):
        return
    for name in MODEL_FILES:
        path = directory / name
        if path.is_symlink() or path.is_file():
            path.unlink()


def one_baseline_at_a_time(directory: Path):
    """The lock a baseline holds on its folder while it cross-validates and saves: two at once would each take the
    other's folds for their own (a resumed CV keeps the folds of its own settings only, but the second would remove
    the first's as it starts) and one's model would land beside the other's reports."""
    return folder_lock(directory, f"--out {directory} is in use by another ser-hf baseline (it holds a lock on the "
                                  f"folder). Wait for it to end, then run this command again (it resumes), or pass "
                                  f"another --out.")
