"""The speaker-adaptive head as used at prediction: a speaker's offset, the head that scores with it, its files.

Pooled encoder states carry the speaker as much as the emotion. Standardising each speaker's states with that
speaker's own mean and spread (z-scoring) gains 8-10 UA on RAVDESS, whose actors all speak every emotion in equal
measure, and falls to chance on URDU, whose speakers are nearly single-emotion: the statistics of a skewed emotion
mix *are* the emotion, and subtracting them erases it. So a speaker-adaptive model (:class:`AdaptiveProbe`) removes
only an offset of each speaker: beside the checkpoint's standard (global) head it keeps a second standard head
trained on speaker-adapted states, the class means of the training speakers and the enrollment settings. Enrolling
a speaker estimates their offset from a few unlabelled clips; their clips are then scored by the adaptive head with
the offset removed. Fitting it, and choosing the estimator and the shrinkage, is
:mod:`ser_hf.training.speaker_adaptation`'s.

Two offset estimators (:data:`ESTIMATORS`; training chooses one per model). With global class means ``m_k`` (per
layer, from the training speakers), their class-balanced centre ``c = mean_k m_k``, and a speaker's clips ``x_i``
with class posteriors ``p_i`` (true labels for training speakers, the model's posteriors at enrollment), each shrunk
towards zero when the speaker has few clips (``k`` = :data:`SHRINK_CLIPS` clips for training speakers; at
enrollment the ``k`` that training chose with the estimator)::

    emotion-mix-aware:  offset = n / (n + k) * mean_i (x_i - sum_c p_ic m_c)
    speaker mean:       offset = n / (n + k) * (mean_i x_i - c)

The emotion-mix-aware offset removes only what the emotions do not explain: a speaker who only ever sounds angry
keeps the anger (explained by ``m_angry``) and loses only the voice; at enrollment the posteriors come first from
the global head, then from the adaptive head on the adapted states (:data:`ENROLLMENT_ROUNDS` rounds,
:func:`estimate_offset`). It survives single-emotion speakers, but every posterior error that a voice causes is
kept in the offset. The speaker mean trusts that a speaker's clips cover the emotions evenly: better when they do
(RAVDESS, whisper-base, 6 s: 82.6 against 80.3 UA with every clip enrolled, measured outside the package), ruinous
when they do not (URDU: 47.5 against 85.3).

Only a mean is removed, never a spread: a per-dimension spread from a handful of clips was measured to hurt (5
clips, RAVDESS), emotion-mix-aware spreads did not help either (RAVDESS all clips 80.1), and an offset is an affine
map that folds into the standard head's projector bias (:meth:`AdaptiveProbe.speaker_head`), so a speaker-specific
model is still an ordinary ``pipeline()`` checkpoint. What a few clips *can* estimate is the spread of the head's class
scores (as many numbers as classes): a model trained with ``probe_speaker_spread`` (its inner check may choose it)
also scales each class score of an enrolled speaker about the mean score of their enrolled clips, so that its spread
matches the training speakers' typical one (:func:`score_spread`, shrunk towards it by ``spread_shrink`` clips). That
is a per-speaker scale of the classifier's rows and a shift of its bias, so it folds into the head too. Enrolling
gives a :class:`SpeakerShift` (the offset, and the spread when the model adapts it).

The adaptation is saved beside the checkpoint, which itself stays standard, as :data:`ADAPTATION_WEIGHTS` (the
adaptive head, the class means and, with a spread, the typical variance of each score) and :data:`ADAPTATION_RECORD`
(the settings and training's record; format 2 when the spread is adapted, else format 1):
:func:`save_adaptation`, :func:`has_adaptation`, :func:`load_adaptation`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_hf._io import default_permissions, detach_for_rewrite, read_json, write_output_file
from ser_hf.errors import ModelError, SERError
from ser_hf.models.linear_head import head_logits, head_mix, softmax
from ser_hf.paths import display_path
from ser_hf.ranges import COUNT, NON_NEGATIVE, POSITIVE

#: Shrinkage towards "no offset": the offset of a speaker with n clips is scaled by n / (n + k). Training
#: speakers (tens of clips each) use SHRINK_CLIPS; at enrollment training's inner check picks k (the
#: adaptation's ``shrink``).
SHRINK_CLIPS = 5.0
#: Fewer enrollment clips than this: the global head is used (and the caller is told).
MIN_ENROLLMENT_CLIPS = 3
#: Rounds of (posteriors -> offset) at enrollment.
ENROLLMENT_ROUNDS = 2
#: The offset estimators (see the module docstring) training's inner check chooses from, the safer one first.
ESTIMATORS = ("emotion-mix-aware", "speaker mean")


#: No offset of real pooled states, nor a class score's centre or scale, comes near this; a larger one is a tampered
#: or corrupt enrollment file.
MAX_SHIFT = 1e4
#: The least variance of a class score a spread is computed with (a class no clip has, clips of one score).
MIN_VARIANCE = 1e-12


@dataclass(frozen=True)
class SpeakerShift:
    """What enrolling a speaker learns: their ``offset`` ``(layers, hidden)`` and, from a model that adapts the
    spread of its class scores too (:attr:`AdaptiveProbe.spread_shrink`), the ``centre`` and ``scale`` of each
    class score ``(labels,)``: the speaker's scores become ``centre + scale * (score - centre)``."""

    offset: np.ndarray
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        """The shift as float32 tensors of a safetensors file: ``name`` (the offset) and ``name.spread`` (centre and
        scale stacked, only with a spread)."""
        tensors = {name: np.ascontiguousarray(self.offset, dtype=np.float32)}
        if self.centre is not None:
            tensors[f"{name}.spread"] = np.ascontiguousarray(np.stack([self.centre, self.scale]), dtype=np.float32)
        return tensors


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
    """Everything enrollment needs, as plain arrays: two standard heads, the class means, the shrinkage (and, when
    the score spread is adapted too, its shrinkage and the training speakers' typical variance of each score).

    ``global_head`` is what the checkpoint itself holds (no enrollment); ``adaptive_head`` was trained on
    speaker-adapted states and is used with a speaker's offset. Both are dicts of the HF head's tensors
    (evaluated by :mod:`ser_hf.models.linear_head`). ``enabled`` is False when the inner CV on the
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
    spread_shrink: float | None = None  # None: the offset alone; else each class score's spread is adapted too
    score_variance: np.ndarray | None = None  # (labels,) the training speakers' typical variance of each score

    def enroll(self, features: np.ndarray) -> SpeakerShift:
        """A speaker's :class:`SpeakerShift` from the pooled states of their (unlabelled) clips."""
        if not self.enabled:
            raise SERError(f"speaker adaptation is off for this model: {self.record.get('reason', 'disabled')}. "
                           f"Predict without a speaker.")
        features = np.asarray(features, dtype=np.float64)
        if len(features) < self.min_clips:
            raise SERError(f"enrollment needs at least {self.min_clips} clips of the speaker, got {len(features)}; "
                           f"predict without a speaker (the global model) or enroll more clips.")
        offset = estimate_offset(features, self.global_head, self.adaptive_head, self.means, self.shrink,
                                 self.estimator)
        if self.spread_shrink is None:
            return SpeakerShift(offset)
        centre, scale = score_spread(head_logits(self.adaptive_head, features - offset), self.score_variance,
                                     self.spread_shrink)
        return SpeakerShift(offset, centre, scale)

    def logits(self, features: np.ndarray, shift: SpeakerShift | None = None) -> np.ndarray:
        """The adaptive head's logits for a speaker's :class:`SpeakerShift`; the global head's when ``shift`` is
        None."""
        features = np.asarray(features, dtype=np.float64)
        if shift is None:
            return head_logits(self.global_head, features)
        scores = head_logits(self.adaptive_head, features - shift.offset)
        return scores if shift.centre is None else shift.centre + shift.scale * (scores - shift.centre)

    def speaker_head(self, shift: SpeakerShift) -> dict[str, np.ndarray]:
        """The standard head tensors that compute :meth:`logits` for one speaker's shift.

        The offset only moves the projector's bias: ``P (sum_l w_l (h_l - o_l)) + b`` is
        ``P (sum_l w_l h_l) + (b - P sum_l w_l o_l)``; a spread scales each class's classifier row and moves its
        bias, ``c + s (W z + b - c)`` being ``(s W) z + (s b + (1 - s) c)``. So a speaker-specific model is an
        ordinary checkpoint.
        """
        head = dict(self.adaptive_head)
        moved = np.einsum("lh,l->h", shift.offset, head_mix(head))
        head["projector.bias"] = np.asarray(head["projector.bias"]) - np.asarray(head["projector.weight"]) @ moved
        if shift.centre is not None:
            head["classifier.weight"] = shift.scale[:, None] * np.asarray(head["classifier.weight"])
            head["classifier.bias"] = shift.scale * np.asarray(head["classifier.bias"]) + \
                (1 - shift.scale) * shift.centre
        return head

    def shift_from_tensors(self, tensors: dict[str, np.ndarray], name: str) -> SpeakerShift:
        """The :class:`SpeakerShift` saved as ``name`` by :meth:`SpeakerShift.tensors`.

        Raises:
            ValueError: saying which tensor is missing, of the wrong type or shape, not finite, beyond
                :data:`MAX_SHIFT` or with a scale not above 0, or a spread this model does not adapt (or the
                other way round).
        """
        spread_name = f"{name}.spread"
        if (spread_name in tensors) != (self.spread_shrink is not None):
            raise ValueError(f"tensor {spread_name!r} is missing: this model adapts the spread of each score"
                             if self.spread_shrink is not None else
                             f"tensor {spread_name!r} holds a score spread, which this model does not adapt")
        expected = {name: self.means.shape[1:], spread_name: (2, len(self.means))}
        for key in expected if self.spread_shrink is not None else (name,):
            value = tensors.get(key)
            if value is None:
                raise ValueError(f"tensor {key!r} is missing")
            if value.dtype != np.float32 or value.shape != expected[key]:
                raise ValueError(f"tensor {key!r} is {value.dtype} of shape {value.shape}, not float32 of shape "
                                 f"{expected[key]}")
            if not np.isfinite(value).all() or np.abs(value).max(initial=0.0) > MAX_SHIFT:
                raise ValueError(f"tensor {key!r} holds {np.abs(value).max():.3g} (NaN or infinite, or beyond "
                                 f"{MAX_SHIFT:g})")
        offset = tensors[name].astype(np.float64)
        if self.spread_shrink is None:
            return SpeakerShift(offset)
        centre, scale = tensors[spread_name].astype(np.float64)
        if not (scale > 0).all():
            raise ValueError(f"tensor {spread_name!r} has a scale of {scale.min():.3g}, where every scale is above 0")
        return SpeakerShift(offset, centre, scale)


def typical_score_variance(scores: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """The training speakers' typical within-speaker variance of each class score ``(labels,)``: the mean over
    speakers with two clips or more of the variance of their clips' scores (a speaker's expressiveness in as many
    numbers as there are classes)."""
    speakers = np.asarray(speakers, dtype=object)
    variances = [scores[speakers == speaker].var(axis=0) for speaker in np.unique(speakers)
                 if np.count_nonzero(speakers == speaker) > 1]
    # A class no training clip has scores the same everywhere (variance 0): floored, so its speakers' scale stays
    # finite (sqrt((n + k) / k) at most) and the file holds a positive variance.
    return np.maximum(np.mean(variances, axis=0), MIN_VARIANCE) if variances else np.ones(scores.shape[1])


def score_spread(enrolled_scores: np.ndarray, typical: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, scale)`` of a speaker's class scores from the adaptive head's scores of their enrolled clips: the
    clips' mean score, and the factor that brings the speaker's spread of each score to the typical one, the
    speaker's variance shrunk towards ``typical`` by ``shrink`` clips, ``(n var + k typical) / (n + k)`` (a few
    clips give a noisy variance). Scores are then ``centre + scale * (score - centre)``."""
    trust = len(enrolled_scores) / (len(enrolled_scores) + shrink)  # a weight, so a huge k cannot overflow
    variance = np.maximum(trust * enrolled_scores.var(axis=0) + (1 - trust) * typical, MIN_VARIANCE)
    # A scale beyond MAX_SHIFT (clips of one score with a tiny k) could not be saved and loaded again.
    return enrolled_scores.mean(axis=0), np.minimum(np.sqrt(typical / variance), MAX_SHIFT)


#: How a choice's name marks the score spread (:func:`choice_name`, read back by :func:`choice_label`).
_SPREAD_MARK = " + score spread k="


def choice_name(estimator: str, spread_shrink: float | None) -> str:
    """The name ``ser-hf cv``'s rows give one fold's choice: the offset estimator, and the score spread's shrinkage
    when it adapts one (``"speaker mean + score spread k=10"``)."""
    return estimator if spread_shrink is None else f"{estimator}{_SPREAD_MARK}{spread_shrink:g}"


def choice_label(name: str, shrink: float | None) -> str:
    """A :func:`choice_name` with the offset's enrollment shrinkage, in words: ``"speaker mean, k=2"``,
    ``"emotion-mix-aware, k=5, score spread k=10"``, or ``"off"`` (a fold whose adaptation was switched off)."""
    if name == "off" or shrink is None:
        return name
    estimator, spread, spread_k = name.partition(_SPREAD_MARK)
    return f"{estimator}, k={shrink:g}" + (f", score spread k={spread_k}" if spread else "")


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


#: Files beside a checkpoint that make it speaker-adaptive (the checkpoint itself stays standard).
ADAPTATION_WEIGHTS = "speaker_adaptation.safetensors"
ADAPTATION_RECORD = "speaker_adaptation.json"


def save_adaptation(probe: AdaptiveProbe, checkpoint: str | os.PathLike) -> Path:
    """Write the adaptive head, class means and settings beside ``checkpoint`` (safetensors + JSON)."""
    from safetensors.numpy import save_file

    folder = Path(checkpoint)
    tensors = {f"adaptive.{k}": np.asarray(v, dtype=np.float32) for k, v in probe.adaptive_head.items()}
    tensors["class_means"] = probe.means.astype(np.float32)
    spread = {} if probe.spread_shrink is None else {"spread_shrink_clips": probe.spread_shrink}
    if spread:
        tensors["score_variance"] = np.asarray(probe.score_variance, dtype=np.float32)
    detach_for_rewrite(folder, [ADAPTATION_WEIGHTS])
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / ADAPTATION_WEIGHTS))
    default_permissions(folder / ADAPTATION_WEIGHTS)  # part of the checkpoint folder, readable like it
    # Format 2 adds the score spread; a model without it stays format 1, which earlier versions read.
    record = {"format": 2 if spread else 1, "shrink_clips": probe.shrink, **spread,
              "min_enrollment_clips": probe.min_clips, "estimator": probe.estimator, "enabled": probe.enabled,
              "record": probe.record}
    write_output_file(folder / ADAPTATION_RECORD, json.dumps(record, indent=2) + "\n")
    return folder / ADAPTATION_WEIGHTS


def has_adaptation(checkpoint: str | os.PathLike) -> bool:
    folder = Path(checkpoint)
    return (folder / ADAPTATION_WEIGHTS).is_file() and (folder / ADAPTATION_RECORD).is_file()


#: What each setting of :data:`ADAPTATION_RECORD` must hold: a value cast instead (``bool("false")`` is True, a
#: negative shrinkage divides by zero or scales every offset up, NaN fails every clip as if its audio were broken)
#: would change every adapted prediction without a word.
_SETTINGS = {"shrink_clips": NON_NEGATIVE, "min_enrollment_clips": COUNT}


def _checked_settings(record: dict, path: Path, fix: str) -> tuple[float, int, bool]:
    """``(shrink, min_clips, enabled)`` of an adaptation record, each checked (and its format).

    Raises:
        ModelError: naming the file, the key, the value found and what it must be.
    """
    shown = display_path(path)
    if type(record.get("format")) is not int or record["format"] not in (1, 2):  # true and 1.0 equal 1 too
        raise ModelError(f"{shown!r} is of format {record.get('format')!r}; this version of ser_hf reads formats 1 "
                         f"and 2. Upgrade ser_hf, or {fix}")
    if record["format"] == 1 and "spread_shrink_clips" in record:  # a format-2 file whose format was edited
        raise ModelError(f"{shown!r} is of format 1, which adapts no score spread, yet names spread_shrink_clips "
                         f"{record['spread_shrink_clips']!r}; {fix}")
    settings = {**_SETTINGS, **({"spread_shrink_clips": POSITIVE} if record["format"] == 2 else {})}
    for key, allowed in settings.items():
        if record.get(key) not in allowed:
            raise ModelError(f"{shown!r}: {key} must be {allowed}, found {record.get(key)!r}; {fix}")
    if not isinstance(record.get("enabled"), bool):
        raise ModelError(f"{shown!r}: enabled must be true or false, found {record.get('enabled')!r}; {fix}")
    if not isinstance(record.get("record", {}), dict) or not isinstance(record.get("estimator", ""), str):
        raise ModelError(f"{shown!r}: record must be an object and estimator a name, found "
                         f"{type(record.get('record')).__name__} and {record.get('estimator')!r}; {fix}")
    return float(record["shrink_clips"]), int(record["min_enrollment_clips"]), record["enabled"]


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
    fix = "retrain with probe_speaker_adaptation: true or delete both files."
    try:
        record = read_json(folder / ADAPTATION_RECORD, fix=fix)
        tensors = load_file(str(folder / ADAPTATION_WEIGHTS))
    except (OSError, SafetensorError) as error:
        raise ModelError(f"{display_path(folder / ADAPTATION_RECORD)!r} or its weights cannot be read ({error}); "
                         f"{fix}") from error
    shrink, min_clips, enabled = _checked_settings(record, folder / ADAPTATION_RECORD, fix)
    estimator = record.get("estimator", ESTIMATORS[0])  # files written before the choice existed
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
    spread_shrink, variance = None, None
    if record["format"] == 2:  # the score spread is adapted too: its typical variance of each class score
        spread_shrink, variance = float(record["spread_shrink_clips"]), tensors.get("score_variance")
        if variance is None or variance.shape != (num_labels,) or not np.isfinite(variance).all() or \
                not (variance > 0).all():
            shown_values = np.round(variance.ravel()[:8], 6).tolist() if variance is not None else None
            found = "none" if variance is None else \
                f"shape {variance.shape}: {shown_values}{' ...' if variance.size > 8 else ''}"
            raise ModelError(f"{display_path(folder / ADAPTATION_WEIGHTS)!r} lacks the score variance its format-2 "
                             f"record needs (tensor score_variance, a positive, finite value for each of the "
                             f"{num_labels} classes; found {found}); retrain it.")
        variance = variance.astype(np.float64)
    return AdaptiveProbe(global_head, adaptive, means.astype(np.float64), shrink, min_clips, enabled,
                         record.get("record", {}), estimator, spread_shrink, variance)
