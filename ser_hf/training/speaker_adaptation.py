"""Speaker-adaptive probe: remove each speaker's own offset from the pooled states.

Pooled encoder states carry the speaker as much as the emotion. Standardising each speaker's states
with that speaker's own mean and spread (z-scoring) gains 8-10 UA on RAVDESS, whose actors all speak
every emotion in equal measure, and falls to chance on URDU, whose speakers are nearly single-emotion:
the statistics of a skewed emotion mix *are* the emotion, and subtracting them erases it.

Two offset estimators, one chosen per model by an inner speaker-grouped CV on the training speakers
(:data:`ESTIMATORS`). With global class means ``m_k`` (per layer, from the training speakers), their
class-balanced centre ``c = mean_k m_k``, and a speaker's clips ``x_i`` with class posteriors ``p_i`` (true
labels for training speakers, the model's posteriors at enrollment), each shrunk towards zero when the
speaker has few clips (``k`` = 5 clips for training speakers; at enrollment ``k`` is chosen with the
estimator, :data:`SHRINK_CHOICES`)::

    emotion-mix-aware:  offset = n / (n + k) * mean_i (x_i - sum_c p_ic m_c)
    speaker mean:       offset = n / (n + k) * (mean_i x_i - c)

The emotion-mix-aware offset removes only what the emotions do not explain: a speaker who only ever
sounds angry keeps the anger (explained by ``m_angry``) and loses only the voice; at enrollment the
posteriors come first from the global head, then from the adaptive head on the adapted states (a few
rounds). It survives single-emotion speakers, but every posterior error that a voice causes is kept in
the offset. The speaker mean trusts that a speaker's clips cover the emotions evenly: better when they
do (RAVDESS, whisper-base, 6 s: 82.6 against 80.3 UA with every clip enrolled, measured outside the
package), ruinous when they do not (URDU: 47.5 against 85.3). The training corpus decides, through
the inner check with 3 and with 10 random enrollment clips per held-out speaker; a tie goes to the
emotion-mix-aware offset, which is safer for a user who enrolls mostly neutral clips, and to the stronger
shrinkage. How much to trust a few clips is also the corpus's to say: no shrinkage (k = 0) fell below the
global head with 3 clips on RAVDESS (whisper-base, measured outside the package: 74.4 against 75.6), while
against a fixed k = 5 the chosen k (mostly 2) moved the four RAVDESS rows of ``benchmarks/accuracy.py`` by
+0.85 UA on average with 10 clips and +0.2 with 3 (same folds and clips; within their intervals).

Only a mean is removed, never a spread: a per-dimension spread from a handful of clips was measured to
hurt (5 clips, RAVDESS), emotion-mix-aware spreads did not help either (RAVDESS all clips 80.1), and an
offset is an affine map that folds into the standard head's projector bias (:meth:`AdaptiveProbe.speaker_head`),
so a speaker-specific model is still an ordinary ``pipeline()`` checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_hf.errors import ModelError, SERError
from ser_hf.paths import display_path
from ser_hf.training.linear_probe import fit_chosen, fit_linear, head_logits, head_mix, head_tensors, softmax

logger = logging.getLogger(__name__)

#: Shrinkage towards "no offset": the offset of a speaker with n clips is scaled by n / (n + k). Training
#: speakers (tens of clips each) use SHRINK_CLIPS; at enrollment the inner check picks k from SHRINK_CHOICES.
SHRINK_CLIPS = 5.0
#: The enrollment shrinkage the inner check chooses from, the most cautious first (it wins ties).
SHRINK_CHOICES = (10.0, 5.0, 2.0)
#: Fewer enrollment clips than this: the global head is used (and the caller is told).
MIN_ENROLLMENT_CLIPS = 3
#: Rounds of (posteriors -> offset) at enrollment.
ENROLLMENT_ROUNDS = 2
#: The offset estimators the inner check chooses from (see the module docstring), the safer one first.
ESTIMATORS = ("emotion-mix-aware", "speaker mean")


def class_means(features: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Per-class mean pooled states ``(labels, layers, hidden)`` (zeros for a class without clips)."""
    means = np.zeros((num_labels, *features.shape[1:]))
    for k in range(num_labels):
        if np.any(labels == k):
            means[k] = features[labels == k].mean(axis=0)
    return means


def speaker_offset(features: np.ndarray, posteriors: np.ndarray, means: np.ndarray,
                   shrink: float = SHRINK_CLIPS, estimator: str = ESTIMATORS[0]) -> np.ndarray:
    """One speaker's offset ``(layers, hidden)`` by ``estimator`` (see the module docstring).

    ``posteriors`` are only read by the emotion-mix-aware estimator.
    """
    if estimator == "emotion-mix-aware":
        explained = np.einsum("nk,klh->nlh", posteriors, means)
    elif estimator == "speaker mean":
        explained = means.mean(axis=0)  # the class-balanced centre: a speaker covering every emotion evenly
    else:
        raise SERError(f"unknown speaker offset estimator {estimator!r}; expected one of {list(ESTIMATORS)}")
    n = len(features)
    return (n / (n + shrink)) * (features - explained).mean(axis=0)


@dataclass
class AdaptiveProbe:
    """Everything enrollment needs, as plain arrays: two standard heads, the class means, the shrinkage.

    ``global_head`` is what the checkpoint itself holds (no enrollment); ``adaptive_head`` was trained on
    speaker-adapted states and is used with a speaker's offset. Both are dicts of the HF head's tensors
    (see :func:`~ser_hf.training.linear_probe.head_tensors`). ``enabled`` is False when the inner CV on the
    training speakers found that adaptation does not help (``record["reason"]`` says why); enrollment then
    refuses, and callers use the global head.
    """

    global_head: dict[str, np.ndarray]
    adaptive_head: dict[str, np.ndarray]
    means: np.ndarray  # (labels, layers, hidden) class means of the training speakers
    shrink: float = SHRINK_CLIPS
    min_clips: int = MIN_ENROLLMENT_CLIPS
    enabled: bool = True
    record: dict = field(default_factory=dict)
    estimator: str = ESTIMATORS[0]

    def enroll(self, features: np.ndarray) -> np.ndarray:
        """A speaker's offset ``(layers, hidden)`` from the pooled states of their (unlabelled) clips."""
        if not self.enabled:
            raise SERError(f"speaker adaptation is off for this model: {self.record.get('reason', 'disabled')}. "
                           f"Predict without a speaker.")
        features = np.asarray(features, dtype=np.float64)
        if len(features) < self.min_clips:
            raise SERError(f"enrollment needs at least {self.min_clips} clips of the speaker, got {len(features)}; "
                           f"predict without a speaker (the global model) or enroll more clips.")
        return estimate_offset(features, self.global_head, self.adaptive_head, self.means, self.shrink,
                               self.estimator)

    def logits(self, features: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        """The adaptive head's logits for a speaker's offset; the global head's when ``offset`` is None."""
        features = np.asarray(features, dtype=np.float64)
        if offset is None:
            return head_logits(self.global_head, features)
        return head_logits(self.adaptive_head, features - offset)

    def speaker_head(self, offset: np.ndarray) -> dict[str, np.ndarray]:
        """The standard head tensors that compute :meth:`logits` for one speaker's offset.

        The offset only moves the projector's bias: ``P (sum_l w_l (h_l - o_l)) + b`` is
        ``P (sum_l w_l h_l) + (b - P sum_l w_l o_l)``; so a speaker-specific model is an ordinary checkpoint.
        """
        head = dict(self.adaptive_head)
        shift = np.einsum("lh,l->h", offset, head_mix(head))
        head["projector.bias"] = np.asarray(head["projector.bias"]) - np.asarray(head["projector.weight"]) @ shift
        return head


def estimate_offset(features, global_head, adaptive_head, means, shrink=SHRINK_CLIPS,
                    estimator: str = ESTIMATORS[0]) -> np.ndarray:
    """Posteriors from the global head, then rounds of (offset, posteriors of the adaptive head).

    The speaker mean reads no posteriors, so it needs no rounds.
    """
    if estimator != "emotion-mix-aware":
        return speaker_offset(features, None, means, shrink, estimator)
    posteriors = softmax(head_logits(global_head, features))
    for _ in range(ENROLLMENT_ROUNDS):
        offset = speaker_offset(features, posteriors, means, shrink, estimator)
        posteriors = softmax(head_logits(adaptive_head, features - offset))
    return offset


def adapt_training_speakers(features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, means: np.ndarray,
                            shrink: float = SHRINK_CLIPS, estimator: str = ESTIMATORS[0]) -> np.ndarray:
    """Every training clip minus its speaker's offset (posteriors = the true labels)."""
    one_hot = np.eye(len(means))[labels]
    adapted = np.array(features, dtype=np.float64)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        adapted[rows] -= speaker_offset(adapted[rows], one_hot[rows], means, shrink, estimator)
    return adapted


#: Enrollment clips per held-out speaker in the inner check that decides whether adaptation is on (and the
#: number of neutral clips in the "neutral" enrollment setting).
CHECK_ENROLLMENT_CLIPS = 10
#: The enrollment sizes the inner check scores every choice with (its criterion: the mean of their pooled
#: UAs), so the shrinkage suits a user with a few clips as well as one with ten.
CHECK_ENROLLMENT_SIZES = (3, CHECK_ENROLLMENT_CLIPS)
#: Adaptation is switched off when its inner-CV UA trails the global head's by more than this.
CHECK_MARGIN = 0.01


def _refit(features, labels, num_labels, record) -> dict[str, np.ndarray]:
    """The head of an earlier choice (mix, strength and temperature) refitted on other clips.

    The temperature matters here: enrollment weighs class means by the posteriors, and untempered
    ridge scores give near-uniform posteriors, which would turn the offset into the plain speaker mean.
    """
    fit = fit_chosen(features, labels, num_labels, record["layer_mix"], record["ridge_alpha"])
    fit.temperature = record["temperature"]
    return head_tensors(fit, num_labels)


def _inner_check(features, labels, speakers, num_labels, global_record, adaptive_records, shrinks, inner_folds,
                 seed) -> tuple[float, dict[tuple[str, float], float]]:
    """Inner speaker-grouped CV on the training speakers: the global head's pooled UA, and that of every
    (estimator, enrollment shrinkage) pair, each the mean over :data:`CHECK_ENROLLMENT_SIZES` random
    enrollment clips per held-out speaker (the same clips for every pair; the global head scores the same
    clips as the adaptive ones)."""
    from ser_hf.training.linear_probe import _inner_folds, _pooled_ua

    rng = np.random.default_rng(seed)
    choices = [(estimator, shrink) for estimator in adaptive_records for shrink in shrinks]
    references = {size: [] for size in CHECK_ENROLLMENT_SIZES}
    global_pred = {size: [] for size in CHECK_ENROLLMENT_SIZES}
    adaptive_pred = {(choice, size): [] for choice in choices for size in CHECK_ENROLLMENT_SIZES}
    for train, held_out in _inner_folds(labels, speakers, inner_folds, seed):
        means = class_means(features[train], labels[train], num_labels)
        global_head = _refit(features[train], labels[train], num_labels, global_record)
        adaptive_heads = {
            estimator: _refit(adapt_training_speakers(features[train], labels[train], speakers[train], means,
                                                      SHRINK_CLIPS, estimator), labels[train], num_labels, record)
            for estimator, record in adaptive_records.items()}
        for speaker in np.unique(speakers[held_out]):
            rows = held_out[speakers[held_out] == speaker]
            order = rng.permutation(rows)
            for size in CHECK_ENROLLMENT_SIZES:
                enrolled = order[:size]
                scored = np.setdiff1d(rows, enrolled) if len(rows) > size else rows
                references[size].append(labels[scored])
                global_pred[size].append(head_logits(global_head, features[scored]).argmax(axis=1))
                for estimator, shrink in choices:
                    if len(enrolled) < MIN_ENROLLMENT_CLIPS:
                        predicted = global_pred[size][-1]
                    else:
                        offset = estimate_offset(features[enrolled], global_head, adaptive_heads[estimator], means,
                                                 shrink, estimator)
                        predicted = head_logits(adaptive_heads[estimator], features[scored] - offset).argmax(axis=1)
                    adaptive_pred[(estimator, shrink), size].append(predicted)

    def mean_ua(predictions_by_size) -> float:
        return float(np.mean([_pooled_ua(np.concatenate(references[size]), np.concatenate(predictions), num_labels)
                              for size, predictions in predictions_by_size.items()]))

    return (mean_ua(global_pred),
            {choice: mean_ua({size: adaptive_pred[choice, size] for size in CHECK_ENROLLMENT_SIZES})
             for choice in choices})


def fit_adaptive_probe(features: np.ndarray, labels: np.ndarray, speakers, num_labels: int, *,
                       projector_size: int, inner_folds: int = 4, seed: int = 0,
                       shrinks=SHRINK_CHOICES, estimators=ESTIMATORS) -> AdaptiveProbe:
    """Fit the global head and one adaptive head per offset estimator (each by :func:`fit_linear`'s inner CV).

    An inner speaker-grouped CV on the training speakers, enrolling :data:`CHECK_ENROLLMENT_SIZES` random
    clips per held-out speaker, picks the estimator and the enrollment shrinkage (ties: the first of
    ``estimators``, the first of ``shrinks``) and keeps adaptation on only if it is not worse than the
    global head by more than :data:`CHECK_MARGIN`.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    speakers = np.asarray(speakers, dtype=object)
    global_fit, global_record = fit_linear(features, labels, speakers, num_labels, inner_folds=inner_folds, seed=seed)
    means = class_means(features, labels, num_labels)
    adaptive_fits, adaptive_records = {}, {}
    for estimator in estimators:
        adapted = adapt_training_speakers(features, labels, speakers, means, SHRINK_CLIPS, estimator)
        adaptive_fits[estimator], adaptive_records[estimator] = fit_linear(
            adapted, labels, speakers, num_labels, inner_folds=inner_folds, seed=seed)
    global_ua, adaptive_uas = _inner_check(features, labels, speakers, num_labels, global_record, adaptive_records,
                                           tuple(shrinks), inner_folds, seed)
    estimator, shrink = max(adaptive_uas, key=adaptive_uas.__getitem__)  # max keeps the first of equals
    adaptive_ua = adaptive_uas[estimator, shrink]
    best_by_estimator = {name: max(ua for (other, _), ua in adaptive_uas.items() if other == name)
                         for name in estimators}
    enabled = adaptive_ua >= global_ua - CHECK_MARGIN
    record = {"estimator": estimator, "shrink_clips": shrink,
              "min_enrollment_clips": MIN_ENROLLMENT_CLIPS, "enrollment_rounds": ENROLLMENT_ROUNDS,
              "inner_check": {"enrollment_clips": list(CHECK_ENROLLMENT_SIZES), "global_ua": round(global_ua, 4),
                              "adaptive_ua": round(adaptive_ua, 4),
                              "adaptive_ua_by_estimator": {k: round(v, 4) for k, v in best_by_estimator.items()},
                              "adaptive_ua_by_choice": [{"estimator": name, "shrink_clips": k, "ua": round(ua, 4)}
                                                        for (name, k), ua in adaptive_uas.items()]},
              "global": {k: v for k, v in global_record.items() if k != "candidates"},
              "adaptive": {k: v for k, v in adaptive_records[estimator].items() if k != "candidates"}}
    if not enabled:
        record["reason"] = (f"in the inner CV on the training speakers, adaptation scored {adaptive_ua:.3f} UA "
                            f"against {global_ua:.3f} without it")
        logger.warning("speaker adaptation switched off: %s", record["reason"])
    logger.info("speaker adaptation: %s offset, shrinkage %g clips, inner UA %.4f (global %.4f)", estimator, shrink,
                adaptive_ua, global_ua)
    return AdaptiveProbe(head_tensors(global_fit, projector_size), head_tensors(adaptive_fits[estimator], projector_size),
                         means, shrink, enabled=enabled, record=record, estimator=estimator)


#: The enrollment settings ``ser-hf cv`` reports: numbers of random clips, every clip, neutral clips only.
ENROLLMENT_SETTINGS = (1, 3, 5, 10, 20, "all", "neutral")


def _enrollment(rows: np.ndarray, labels: np.ndarray, setting, neutral_label: int | None, rng) -> tuple:
    """(enrollment rows, scored rows) of one test speaker for one setting; disjoint unless 'all'."""
    if setting == "all":
        return rows, rows  # transductive: the speaker's own clips, unlabelled, are also the ones scored
    if setting == "neutral":
        pool = rows[labels[rows] == neutral_label] if neutral_label is not None else rows[:0]
        enrolled = rng.permutation(pool)[:CHECK_ENROLLMENT_CLIPS]
    else:
        enrolled = rng.permutation(rows)[: int(setting)]
    return enrolled, np.setdiff1d(rows, enrolled)


def enrollment_predictions(probe: AdaptiveProbe, features: np.ndarray, labels: np.ndarray, speakers,
                           settings=ENROLLMENT_SETTINGS, neutral_label: int | None = None, seed: int = 0) -> dict:
    """Predictions of the test speakers' clips under each enrollment setting, with the global head's beside them.

    For each setting and test speaker, enrollment clips are drawn at random (seeded) and the speaker's
    *other* clips are scored ('all' scores every clip, transductively; 'neutral' enrolls up to
    :data:`CHECK_ENROLLMENT_CLIPS` neutral clips). A speaker with fewer enrollment clips than the minimum,
    or a model whose adaptation is off, is scored by the global head and counted as a fallback.

    Returns:
        ``{setting: {"rows", "adaptive", "global", "fallback_speakers", "speakers", "estimator",
        "shrink_clips"}}`` with row indices into ``features``, predicted class ids, the offset estimator used
        ("off": none) and its enrollment shrinkage.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    speakers = np.asarray(speakers, dtype=object)
    rng = np.random.default_rng(seed)
    results = {}
    for setting in settings:
        scored_rows, adaptive, fallback = [], [], 0
        for speaker in sorted(set(speakers.tolist())):
            enrolled, scored = _enrollment(np.flatnonzero(speakers == speaker), labels, setting, neutral_label, rng)
            if len(scored) == 0:
                continue
            scored_rows.append(scored)
            if not probe.enabled or len(enrolled) < probe.min_clips:
                fallback += 1
                adaptive.append(probe.logits(features[scored]).argmax(axis=1))
                continue
            offset = probe.enroll(features[enrolled])
            adaptive.append(probe.logits(features[scored], offset).argmax(axis=1))
        rows = np.concatenate(scored_rows) if scored_rows else np.zeros(0, dtype=np.int64)
        results[str(setting)] = {
            "rows": rows, "adaptive": np.concatenate(adaptive) if adaptive else rows,
            "global": probe.logits(features[rows]).argmax(axis=1) if len(rows) else rows,
            "fallback_speakers": fallback, "speakers": len(scored_rows),
            "estimator": probe.estimator if probe.enabled else "off",
            "shrink_clips": probe.shrink if probe.enabled else None}
    return results


#: Files beside a checkpoint that make it speaker-adaptive (the checkpoint itself stays standard).
ADAPTATION_WEIGHTS = "speaker_adaptation.safetensors"
ADAPTATION_RECORD = "speaker_adaptation.json"


def save_adaptation(probe: AdaptiveProbe, checkpoint: str | os.PathLike) -> Path:
    """Write the adaptive head, class means and settings beside ``checkpoint`` (safetensors + JSON)."""
    from safetensors.numpy import save_file

    folder = Path(checkpoint)
    tensors = {f"adaptive.{k}": np.asarray(v, dtype=np.float32) for k, v in probe.adaptive_head.items()}
    tensors["class_means"] = probe.means.astype(np.float32)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / ADAPTATION_WEIGHTS))
    record = {"format": 1, "shrink_clips": probe.shrink, "min_enrollment_clips": probe.min_clips,
              "estimator": probe.estimator, "enabled": probe.enabled, "record": probe.record}
    (folder / ADAPTATION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return folder / ADAPTATION_WEIGHTS


def has_adaptation(checkpoint: str | os.PathLike) -> bool:
    folder = Path(checkpoint)
    return (folder / ADAPTATION_WEIGHTS).is_file() and (folder / ADAPTATION_RECORD).is_file()


def load_adaptation(checkpoint: str | os.PathLike, global_head: dict[str, np.ndarray]) -> AdaptiveProbe:
    """The :class:`AdaptiveProbe` saved beside ``checkpoint``; ``global_head`` comes from the checkpoint's own head.

    Raises:
        ModelError: for missing, malformed or mismatched files (named, with the fix).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(checkpoint)
    if not has_adaptation(folder):
        raise ModelError(f"{display_path(folder)!r} has no speaker adaptation ({ADAPTATION_WEIGHTS} + "
                         f"{ADAPTATION_RECORD}); train it with probe_speaker_adaptation: true (mode: probe), or "
                         f"predict without a speaker.")
    try:
        record = json.loads((folder / ADAPTATION_RECORD).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / ADAPTATION_WEIGHTS))
        shrink, min_clips, enabled = float(record["shrink_clips"]), int(record["min_enrollment_clips"]), \
            bool(record["enabled"])
        estimator = record.get("estimator", ESTIMATORS[0])  # files written before the choice existed
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as error:
        raise ModelError(f"{display_path(folder / ADAPTATION_RECORD)!r} or its weights cannot be read ({error}); "
                         f"retrain with probe_speaker_adaptation: true or delete both files.") from error
    if estimator not in ESTIMATORS:
        raise ModelError(f"{display_path(folder / ADAPTATION_RECORD)!r} names the offset estimator {estimator!r}; this "
                         f"version knows {list(ESTIMATORS)}. Upgrade ser_hf or retrain the adaptation.")
    adaptive = {k.removeprefix("adaptive."): v.astype(np.float64) for k, v in tensors.items()
                if k.startswith("adaptive.")}
    means = tensors.get("class_means")
    expected = {name: np.shape(value) for name, value in global_head.items()}
    found = {name: np.shape(value) for name, value in adaptive.items()}
    num_labels, layers = expected["classifier.weight"][0], expected["layer_weights"][0]
    hidden = expected["projector.weight"][1]
    if found != expected or means is None or means.shape != (num_labels, layers, hidden):
        raise ModelError(f"{display_path(folder / ADAPTATION_WEIGHTS)!r} does not fit the checkpoint beside it "
                         f"(head shapes {found}, class means {None if means is None else means.shape}; the "
                         f"checkpoint needs {expected} and ({num_labels}, {layers}, {hidden})); it belongs to another "
                         f"model: retrain.")
    if not np.isfinite(means).all() or not all(np.isfinite(v).all() for v in adaptive.values()):
        raise ModelError(f"{display_path(folder / ADAPTATION_WEIGHTS)!r} holds NaN or infinite values; retrain it.")
    return AdaptiveProbe(global_head, adaptive, means.astype(np.float64), shrink, min_clips, enabled,
                         record.get("record", {}), estimator)


def summarise_enrollment(collected: dict, label_names, *, model: str | None, corpus: str | None) -> list[dict]:
    """One row per enrollment setting from predictions collected over folds (pooled, speaker-bootstrap CIs).

    Args:
        collected: ``{setting: {"references", "adaptive", "global", "speakers", "fallback_speakers",
            "test_speakers", "estimators", "shrinks"}}`` accumulated over the CV folds (lists of arrays, counts,
            names, shrinkage in clips).
        label_names: Class names in id order.

    Returns:
        Rows with the adaptive UA and its interval, the global head's UA on the very same clips, the gain,
        the clips scored, the speakers that fell back to the global head and each fold's offset estimator and
        enrollment shrinkage.
    """
    from ser_hf.evaluation import EvaluationReport

    rows = []
    for setting, parts in collected.items():
        references = np.concatenate(parts["references"]) if parts["references"] else np.zeros(0)
        if len(references) == 0:
            continue  # e.g. 20 enrollment clips when no test speaker has more than 20
        groups = np.concatenate(parts["speakers"]).tolist()
        reports = {name: EvaluationReport.from_predictions(
            references, np.concatenate(parts[name]), label_names=label_names, groups=groups, model=model,
            corpus=corpus, split=f"speaker-adaptive, enrollment {setting}") for name in ("adaptive", "global")}
        adaptive, global_ = reports["adaptive"], reports["global"]
        rows.append({
            "enrollment": setting,
            "protocol": ("every clip of the test speaker, unlabelled, is enrolled and scored (transductive)"
                         if setting == "all" else
                         "up to 10 random neutral clips of the test speaker enrolled; the others scored"
                         if setting == "neutral" else
                         f"{setting} random clips of the test speaker enrolled; the speaker's other clips scored"),
            "unweighted_accuracy": adaptive.unweighted_accuracy,
            "confidence_interval": adaptive.confidence_intervals.get("unweighted_accuracy"),
            "global_unweighted_accuracy_same_clips": global_.unweighted_accuracy,
            "gain": adaptive.unweighted_accuracy - global_.unweighted_accuracy,
            "clips_scored": int(len(references)),
            "speakers": int(parts["test_speakers"]),
            "fallback_speakers": int(parts["fallback_speakers"]),
            "offset_estimator_by_fold": list(parts.get("estimators", [])),
            "enrollment_shrink_by_fold": list(parts.get("shrinks", [])),
            "confusion_matrix": adaptive.confusion_matrix,
        })
    return rows


def collect_enrollment(collected: dict, predictions: dict, references: np.ndarray, speakers) -> None:
    """Add one fold's :func:`enrollment_predictions` to ``collected`` (see :func:`summarise_enrollment`)."""
    speakers = np.asarray(speakers, dtype=object)
    for setting, result in predictions.items():
        parts = collected.setdefault(setting, {"references": [], "adaptive": [], "global": [], "speakers": [],
                                               "fallback_speakers": 0, "test_speakers": 0, "estimators": [],
                                               "shrinks": []})
        parts["references"].append(references[result["rows"]])
        parts["adaptive"].append(result["adaptive"])
        parts["global"].append(result["global"])
        parts["speakers"].append(speakers[result["rows"]])
        parts["fallback_speakers"] += result["fallback_speakers"]
        parts["test_speakers"] += result["speakers"]
        parts["estimators"].append(result["estimator"])
        parts["shrinks"].append(result.get("shrink_clips"))
