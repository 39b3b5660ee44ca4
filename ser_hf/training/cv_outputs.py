"""What a CV scores besides its headline: the speaker-adaptive rows and the test-time-copies report.

The headline of ``ser-hf cv`` is what ``pipeline()`` gives the saved checkpoint on each clip alone. A probe fitted with
speaker adaptation is also scored with each test speaker's own enrollment clips, and a probe with training copies
(speed- or noise-perturbed) with each clip's copies too: both need the fold's fitted method, so each fold keeps its
raw outputs (:func:`fold_outputs`, saved with the fold's state so that a resumed CV pools them too), and the CV pools
them once every fold has ended (:func:`pool_fold_outputs`). They are written as separately named rows, never as the
headline (:func:`write_speaker_adaptive`, and ``cv/test_time_copies/`` by the summary).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf._io import write_output_file
from ser_hf.evaluation import EvaluationReport
from ser_hf.evaluation.folds import FoldResult
from ser_hf.evaluation.tables import percent, percent_range, signed_percent_range
from ser_hf.splits import Fold

__all__ = ["PooledOutputs", "fold_outputs", "pool_fold_outputs", "write_speaker_adaptive"]


def fold_outputs(method, test: datasets.Dataset, labels: list[str], seed: int) -> dict[str, Any]:
    """A fitted fold's outputs beyond its probabilities: ``enrollment`` (its test speakers scored under every
    enrollment setting, see :mod:`ser_hf.training.speaker_adaptation`) when the method adapts to speakers,
    ``probabilities_with_copies`` (each test clip scored with its copies) when a linear probe trained with copies,
    and ``enrollment_with_copies`` when both. Empty for any other method."""
    copies = getattr(method, "has_training_copies", False) and getattr(method.settings, "fit", None) == "linear"
    adapts = getattr(method, "adaptive", None) is not None
    # The test clips' pooled states (and their copies'), read from the cache once for every output below.
    if copies:
        versions = method.versions(test)
    else:
        versions = [method.features(test["audio"])] if adapts else []
    outputs: dict[str, Any] = {}
    if adapts:
        outputs["enrollment"] = _enrollment_outputs(method, test, labels, seed, versions[0])
        if copies:
            outputs["enrollment_with_copies"] = _enrollment_outputs(method, test, labels, seed, versions[0],
                                                                    versions[1:])
    if copies:
        outputs["probabilities_with_copies"] = method.predict_proba_with_copies(test, versions)
    return outputs


def _enrollment_outputs(method, test: datasets.Dataset, labels: list[str], seed: int, states: np.ndarray,
                        copies=()) -> dict:
    from ser_hf.training.speaker_adaptation import enrollment_predictions

    return enrollment_predictions(method.adaptive, states, np.asarray(test["label"]), test["speaker"],
                                  neutral_label=labels.index("neutral") if "neutral" in labels else None,
                                  seed=seed, copies=copies)


@dataclass
class PooledOutputs:
    """The pooled extra rows of a CV (each ``None`` where no fold had the output)."""

    #: One row per enrollment setting (``summarise_enrollment``).
    speaker_adaptive: list[dict[str, Any]] | None = None
    #: The same rows with every clip scored with its copies too.
    speaker_adaptive_test_time_copies: list[dict[str, Any]] | None = None
    #: Every out-of-fold clip scored with its copies (what ``ser-hf predict --test-time-copies`` gives).
    test_time_copies: EvaluationReport | None = None


def pool_fold_outputs(dataset: datasets.Dataset, folds: list[Fold], results: list[FoldResult], labels: list[str],
                      *, model: str | None, corpus: str | None) -> PooledOutputs:
    """Every fold's :func:`fold_outputs` (fitted now or kept from an interrupted CV) pooled into the CV's rows."""
    from ser_hf.training.speaker_adaptation import collect_enrollment, summarise_enrollment

    references, speakers = np.asarray(dataset["label"]), np.asarray(dataset["speaker"], dtype=object)
    adaptive: dict = {}
    adaptive_copies: dict = {}
    rows_with_copies, probabilities_with_copies = [], []
    for fold, result in zip(folds, results):
        outputs = result.outputs
        for name, collected in (("enrollment", adaptive), ("enrollment_with_copies", adaptive_copies)):
            if name in outputs:
                collect_enrollment(collected, outputs[name], references[fold.test], speakers[fold.test])
        if "probabilities_with_copies" in outputs:
            rows_with_copies.append(fold.test)
            probabilities_with_copies.append(outputs["probabilities_with_copies"])
    pooled = PooledOutputs()
    if rows_with_copies:
        rows = np.concatenate(rows_with_copies)
        pooled.test_time_copies = EvaluationReport.from_predictions(
            references[rows], label_names=labels, probabilities=np.concatenate(probabilities_with_copies),
            groups=speakers[rows].tolist(), model=model, corpus=corpus,
            split="pooled out-of-fold, each clip scored with its training copies (test-time copies)")
    if adaptive:
        pooled.speaker_adaptive = summarise_enrollment(adaptive, labels, model=model, corpus=corpus)
        if adaptive_copies:
            pooled.speaker_adaptive_test_time_copies = summarise_enrollment(adaptive_copies, labels, model=model,
                                                                            corpus=corpus)
    return pooled


def _adaptive_table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a Markdown table, an interval shown as ``n/a`` where too few speakers left none, followed by each
    row's note on its intervals (missing or coarse for lack of speakers)."""
    lines = ["| enrollment | speaker-adaptive UA [95% CI] | global head, same clips | gain [paired 95% CI] | clips "
             "| fallback speakers |", "|---|---|---|---|---|---|"]
    for row in rows:
        interval = percent_range(row["confidence_interval"]) or "n/a"
        lines.append(f"| {row['enrollment']} | {percent(row['unweighted_accuracy'])} [{interval}] "
                     f"| {percent(row['global_unweighted_accuracy_same_clips'])} | {100 * row['gain']:+.1f} "
                     f"[{signed_percent_range(row['gain_interval'])}] | {row['clips_scored']} | {row['fallback_speakers']} of {row['speakers']} |")
    notes = [f"Note ({row['enrollment']}): {row['interval_note']}." for row in rows if row.get("interval_note")]
    return lines + ([""] + notes if notes else [])


def _fold_choices(rows: list[dict[str, Any]]) -> str:
    """What each fold's inner check chose (offset estimator, enrollment shrinkage, and with ``probe_speaker_spread``
    the score spread's), as one line of the Markdown: the same for every row, so read off the first."""
    if not rows or not rows[0].get("offset_estimator_by_fold"):
        return ""
    from ser_hf.models.adaptive_head import choice_label

    shrinks = rows[0].get("enrollment_shrink_by_fold") or [None] * len(rows[0]["offset_estimator_by_fold"])
    chosen = [choice_label(name, shrink) for name, shrink in zip(rows[0]["offset_estimator_by_fold"], shrinks)]
    return ("Offset estimator and enrollment shrinkage k chosen by each fold's inner check on its training speakers: "
            + "; ".join(f"fold {number}: {name}" for number, name in enumerate(chosen, start=1)) + ".\n\n")


def write_speaker_adaptive(out: Path, rows: list[dict[str, Any]],
                           with_copies: list[dict[str, Any]] | None = None) -> None:
    """``out/speaker_adaptive.json``, ``.md`` and ``.png`` (UA by enrollment size): the speaker-adaptive rows, and
    those with test-time copies."""
    from ser_hf.evaluation.plots import plot_enrollment_curve, save_figure
    from ser_hf.training.speaker_adaptation import ENROLLMENT_DRAWS

    out.mkdir(parents=True, exist_ok=True)
    marked = [{**row, "test_time_copies": True} for row in with_copies or []]
    write_output_file(out / "speaker_adaptive.json", json.dumps(rows + marked, indent=2) + "\n")
    copies_section = "" if not with_copies else (
        "\n## With test-time copies\n\nThe same enrollment draws; every clip scored with its training copies too, "
        "each version with its own offset from the enrolled clips' same version (`ser-hf predict --test-time-copies "
        "--speaker-pattern ...`).\n\n" + "\n".join(_adaptive_table(with_copies)) + "\n")
    write_output_file(out / "speaker_adaptive.md",
                      "# Speaker-adaptive rows (not the standard headline)\n\nEnrollment clips are the test speaker's "
                      "own, unlabelled, drawn at random with the fold seed and never scored (except 'all', which is "
                      f"transductive); each random row pools {ENROLLMENT_DRAWS} draws, and its clips are those scored "
                      "per draw. The curve: `speaker_adaptive.png`.\n\n" + _fold_choices(rows)
                      + "\n".join(_adaptive_table(rows)) + "\n" + copies_section)
    if rows:
        save_figure(plot_enrollment_curve(rows, with_copies or ()), out / "speaker_adaptive.png")
