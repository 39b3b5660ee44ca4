"""Who the model fails: scores per speaker and per gender, the gap between genders, the worst speakers.

An emotion test set holds a handful of speakers, and one headline UA can hide a model that works for
some voices and not for others. :func:`speaker_breakdown` splits one set of predictions:

- per speaker: UA, WA and the number of clips (no interval: a speaker's clips are one cluster);
- per gender: UA and per-class recall, with percentile-bootstrap intervals that resample whole
  speakers of that gender (:func:`~ser_hf.evaluation.bootstrap.bootstrap_confusions` with ``groups``);
- the gap between two genders (``female - male`` UA), its interval from resampling each gender's
  speakers on their own (a stratified cluster bootstrap);
- the worst speakers by UA.

Genders come from the corpus (``gender`` column; ``M``/``F`` spellings are normalised). A clip without
one counts as ``"unknown"``: nothing is inferred from speaker ids or voices, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.bootstrap import bootstrap_confusions
from ser_hf.evaluation.metrics.core import confusion_matrix, scores_from_confusion
from ser_hf.evaluation.tables import markdown_table, percent, percent_range
from ser_hf.paths import printable

__all__ = ["UNKNOWN_GENDER", "breakdown_lines", "breakdown_markdown", "normalise_genders", "speaker_breakdown"]

#: What a clip without a recorded gender is counted as.
UNKNOWN_GENDER = "unknown"

_SPELLINGS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}

#: Speakers listed as the worst (lowest UA first).
WORST_SPEAKERS = 3
#: Clips a speaker needs to be ranked among the worst: one or two clips give a UA of 0 or 100 by chance.
WORST_MIN_CLIPS = 5


def normalise_genders(genders: Sequence[Any] | None, num_samples: int) -> np.ndarray:
    """One gender per clip as ``"female"``, ``"male"``, another recorded value, or ``"unknown"``.

    Args:
        genders: One value per clip (``"F"``, ``"male"``, ``None``...), or `None` when the data has none.
        num_samples: The number of clips.

    Returns:
        An object array of strings; ``None``, empty strings and `genders=None` become ``"unknown"``.

    Raises:
        EvaluationError: when `genders` does not hold one value per clip.
    """
    if genders is None:
        return np.full(num_samples, UNKNOWN_GENDER, dtype=object)
    values = list(genders)
    if len(values) != num_samples:
        raise EvaluationError(
            f"`genders` has {len(values)} items but there are {num_samples} references: pass one gender per clip "
            "(None where it is unknown), or `genders=None`."
        )
    out = [str(v).strip() if v is not None else "" for v in values]
    return np.array([_SPELLINGS.get(v.lower(), v.lower()) if v else UNKNOWN_GENDER for v in out], dtype=object)


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _interval(samples: np.ndarray, tail: float) -> list[float] | None:
    """Percentile interval of bootstrap values; `None` when undefined in every resample."""
    defined = samples[~np.isnan(samples)]
    if defined.size == 0:
        return None
    low, high = np.percentile(defined, [tail, 100.0 - tail])
    return [float(low), float(high)]


def _speaker_rows(refs: np.ndarray, preds: np.ndarray, num_labels: int, speakers: np.ndarray,
                  genders: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for speaker in sorted(set(speakers.tolist()), key=str):
        mask = speakers == speaker
        scores = scores_from_confusion(confusion_matrix(refs[mask], preds[mask], num_labels))
        speaker_genders = sorted(set(genders[mask].tolist()))
        rows.append({
            "speaker": str(speaker),
            "gender": speaker_genders[0] if len(speaker_genders) == 1 else "/".join(speaker_genders),
            "num_samples": int(mask.sum()),
            "unweighted_accuracy": _optional(scores["unweighted_accuracy"]),
            "weighted_accuracy": _optional(scores["weighted_accuracy"]),
        })
    return rows


def _gender_rows(refs, preds, num_labels, label_names, speakers, genders, n_resamples, tail, seed):
    """Per gender: UA and recall with speaker-bootstrap intervals, and each resample's UA (for the gap)."""
    rows, resampled = {}, {}
    for index, gender in enumerate(sorted(set(genders.tolist()))):
        mask = genders == gender
        point = scores_from_confusion(confusion_matrix(refs[mask], preds[mask], num_labels))
        row = {
            "num_speakers": len(set(speakers[mask].tolist())), "num_samples": int(mask.sum()),
            "unweighted_accuracy": _optional(point["unweighted_accuracy"]),
            "recall": {name: _optional(v) for name, v in zip(label_names, point["recall"], strict=True)},
            "confidence_interval": None, "recall_intervals": {},
        }
        if n_resamples and row["num_speakers"] > 1:
            # One seeded stream per gender: each gender's speakers are resampled on their own (stratified).
            rng = np.random.default_rng(None if seed is None else [seed, index])
            scores = scores_from_confusion(
                bootstrap_confusions(refs[mask], preds[mask], num_labels, n_resamples, rng, speakers[mask]))
            resampled[gender] = scores["unweighted_accuracy"]
            row["confidence_interval"] = _interval(scores["unweighted_accuracy"], tail)
            row["recall_intervals"] = {name: _interval(scores["recall"][:, c], tail)
                                       for c, name in enumerate(label_names)}
        rows[gender] = row
    return rows, resampled


def _gap(rows: dict[str, dict[str, Any]], resampled: dict[str, np.ndarray], tail: float) -> dict[str, Any] | None:
    if "female" not in rows or "male" not in rows:
        return None
    female, male = rows["female"]["unweighted_accuracy"], rows["male"]["unweighted_accuracy"]
    both = "female" in resampled and "male" in resampled
    return {
        "definition": "UA(female) - UA(male)",
        "difference": None if female is None or male is None else female - male,
        "confidence_interval": _interval(resampled["female"] - resampled["male"], tail) if both else None,
    }


def _gender_note(genders: np.ndarray) -> str | None:
    unknown = int((genders == UNKNOWN_GENDER).sum())
    if unknown == genders.size:
        return "Gender is not recorded for these clips, so no per-gender scores are given (none is guessed)."
    if unknown:
        return f"Gender is not recorded for {unknown} of {genders.size} clips; they are counted as 'unknown'."
    return None


def speaker_breakdown(
    references: np.ndarray,
    predictions: np.ndarray,
    label_names: Sequence[str],
    speakers: Sequence[Any],
    genders: Sequence[Any] | None = None,
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
    worst: int = WORST_SPEAKERS,
    min_clips: int = WORST_MIN_CLIPS,
) -> dict[str, Any]:
    """Scores per speaker and per gender of one set of predictions, with speaker-bootstrap intervals.

    Args:
        references: Validated class ids, length N.
        predictions: Validated class ids, length N.
        label_names: Class names in id order.
        speakers: Speaker of every clip.
        genders: Gender of every clip (``None`` entries, or `None` for all, mean unknown).
        n_resamples: Bootstrap resamples of the per-gender intervals; 0 skips them.
        confidence_level: Coverage of the intervals.
        seed: Bootstrap seed.
        worst: How many of the lowest-UA speakers to list (ties broken by WA); never every speaker.
        min_clips: Only speakers with at least this many clips are ranked (all of them when none has).

    Returns:
        A JSON-able dict: ``speakers`` (rows of ``speaker``, ``gender``, ``num_samples``,
        ``unweighted_accuracy``, ``weighted_accuracy``), ``genders`` (gender -> ``num_speakers``,
        ``num_samples``, ``unweighted_accuracy``, ``confidence_interval``, ``recall``,
        ``recall_intervals``; intervals are `None` for a gender with one speaker), ``gender_gap``
        (`None` unless both female and male clips are present), ``worst_speakers``, ``gender_note``
        (`None` when every clip has a gender), ``speaker_note`` (set, with everything else empty, when the
        speakers are the per-clip ids of a random split) and ``bootstrap_unit`` (``"speaker"``).

    Raises:
        EvaluationError: when `speakers` or `genders` do not hold one value per clip.

    Example:
        ```python
        >>> who = speaker_breakdown(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), ["neutral", "sad"],
        ...                         ["a", "a", "b", "b"], ["F", "F", "M", "M"], n_resamples=0)
        >>> who["genders"]["female"]["unweighted_accuracy"], who["worst_speakers"]
        (1.0, ['b'])

        ```
    """
    refs, preds = np.asarray(references, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    speaker_ids = np.asarray([str(s) for s in speakers], dtype=object)
    if speaker_ids.size != refs.size:
        raise EvaluationError(
            f"`groups` (speakers) has {speaker_ids.size} items but there are {refs.size} references: pass one "
            "speaker per clip."
        )
    gender_ids = normalise_genders(genders, refs.size)
    # Imported here: the splits load pandas, scikit-learn and the corpora, which scoring inside a Trainer never needs.
    from ser_hf.corpora.splits import _CLIP_SPEAKER_PREFIX  # the ids a random split gives clips without a speaker

    if speaker_ids.size and all(s.startswith(_CLIP_SPEAKER_PREFIX) for s in speaker_ids):
        return {"speakers": [], "genders": {}, "gender_gap": None, "worst_speakers": [], "gender_note": None,
                "speaker_note": "Speakers are not recorded for these clips (random split), so there are no per-speaker "
                                "or per-gender scores.", "bootstrap_unit": "speaker"}
    names = list(label_names)
    tail = 100.0 * (1.0 - confidence_level) / 2.0
    rows = _speaker_rows(refs, preds, len(names), speaker_ids, gender_ids)
    gender_rows, resampled = _gender_rows(refs, preds, len(names), names, speaker_ids, gender_ids,
                                          int(n_resamples), tail, seed)
    scored = [row for row in rows if row["unweighted_accuracy"] is not None]
    scored = [row for row in scored if row["num_samples"] >= min_clips] or scored
    ranked = sorted(scored, key=lambda row: (row["unweighted_accuracy"], row["weighted_accuracy"], row["speaker"]))
    return {
        "speakers": rows,
        "genders": gender_rows,
        "gender_gap": _gap(gender_rows, resampled, tail),
        "worst_speakers": [row["speaker"] for row in ranked[: min(worst, max(len(ranked) - 1, 0))]],
        "gender_note": _gender_note(gender_ids),
        "speaker_note": None,
        "bootstrap_unit": "speaker",
    }


# ----------------------------------------------------------------- rendering


def _gender_markdown(who: dict[str, Any], labels: Sequence[str], level: int) -> list[str]:
    known = {g: row for g, row in who["genders"].items() if g != UNKNOWN_GENDER}
    if not known:
        return []
    rows = [[g, row["num_speakers"], row["num_samples"], percent(row["unweighted_accuracy"]),
             percent_range(row["confidence_interval"]),
             *(f"{percent(row['recall'][name])} [{percent_range(row['recall_intervals'].get(name))}]"
               if row["recall_intervals"].get(name) else percent(row["recall"][name]) for name in labels)]
            for g, row in who["genders"].items()]
    parts = ["#" * level + " Per gender",
             markdown_table(["Gender", "Speakers", "Clips", "UA (%)", "UA 95% CI", *(f"{n} recall (%)" for n in labels)], rows)]
    gap = who.get("gender_gap")
    if gap is not None and gap["difference"] is not None:
        bounds = gap["confidence_interval"]
        interval = f" (95% CI [{100.0 * bounds[0]:+.1f}, {100.0 * bounds[1]:+.1f}])" if bounds else ""
        parts.append(f"Gender gap, {gap['definition']}: {100.0 * gap['difference']:+.1f} points{interval}. "
                     "An interval that contains 0 means these speakers show no clear gap.")
    return parts


def breakdown_markdown(who: dict[str, Any], labels: Sequence[str], heading_level: int = 3,
                       every_speaker: bool = True) -> str:
    """Markdown of :func:`speaker_breakdown` output: per gender, the gap, the worst and every speaker.

    Args:
        who: The dict :func:`speaker_breakdown` returned.
        labels: Class names in id order (the recall columns).
        heading_level: Level of the section heading (sub-sections are one deeper).
        every_speaker: Add the table of every speaker (model cards leave it to ``eval/report.md``).

    Returns:
        The Markdown text (values in %).
    """
    h = "#" * heading_level
    parts = [f"{h} Per speaker and gender",
             "Intervals resample whole speakers within each gender; with few speakers they are wide."]
    for note in (who.get("speaker_note"), who.get("gender_note")):
        if note:
            parts.append(f"**{note}**")
    parts += _gender_markdown(who, labels, heading_level + 1)
    if who["worst_speakers"]:
        by_name = {row["speaker"]: row for row in who["speakers"]}
        worst = ", ".join(f"{printable(str(s))} ({percent(by_name[s]['unweighted_accuracy'])} UA, "
                          f"{by_name[s]['num_samples']} clips)" for s in who["worst_speakers"])
        parts.append(f"Worst speakers (lowest UA among those with at least {WORST_MIN_CLIPS} clips, if any): {worst}.")
    if every_speaker and who["speakers"]:
        rows = [[row["speaker"], row["gender"], row["num_samples"], percent(row["unweighted_accuracy"]),
                 percent(row["weighted_accuracy"])] for row in who["speakers"]]
        parts += [f"{h}# Per speaker", markdown_table(["Speaker", "Gender", "Clips", "UA (%)", "WA (%)"], rows)]
    return "\n\n".join(parts)


def breakdown_lines(who: dict[str, Any]) -> list[str]:
    """Two short terminal lines: UA per gender (and the gap), and the worst speakers."""
    known = {g: row for g, row in who["genders"].items() if g != UNKNOWN_GENDER}
    if known:
        text = "  ".join(f"{g} UA {percent(row['unweighted_accuracy'])}"
                         + (f" [{percent_range(row['confidence_interval'])}]" if row["confidence_interval"] else "")
                         for g, row in known.items())
        gap = who.get("gender_gap")
        if gap is not None and gap["difference"] is not None:
            text += f"  gap {100.0 * gap['difference']:+.1f}"
        lines = [text]
    elif who.get("speaker_note"):
        lines = ["speakers: not recorded (random split)"]
    else:
        lines = ["gender: not recorded"]
    by_name = {row["speaker"]: row for row in who["speakers"]}
    if who["worst_speakers"]:
        lines.append("worst speakers: " + ", ".join(
            f"{printable(str(s))} {percent(by_name[s]['unweighted_accuracy'])} (n={by_name[s]['num_samples']})"
            for s in who["worst_speakers"]))
    return lines
