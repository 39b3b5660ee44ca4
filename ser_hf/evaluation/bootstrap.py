"""Bootstrap confidence intervals for UA, WA and macro-F1.

Emotion test sets are small (a few hundred utterances, a handful of speakers), so a single UA number
hides a spread of several points. The bootstrap here is vectorised: each resample is reduced to a
confusion matrix with one matrix product, and all scores come from
:func:`~ser_hf.evaluation.metrics.core.scores_from_confusion` on the stacked matrices, so 1000
resamples of 1000 utterances take milliseconds.

Resampling units are utterances by default. Utterances of one speaker are correlated, so when the
test set holds few speakers pass ``groups`` (speaker ids): whole speakers are resampled (cluster
bootstrap), which gives wider, more honest intervals.

A bootstrap needs units to vary: over one speaker (or one clip) every resample is the same clips, so its
"interval" has zero width. :func:`bootstrap_confidence_intervals` then gives no interval (``None``), and
:func:`interval_caveat` says so in words a report can print; with a handful of units it flags the
interval as coarse. A cross-validation logs that once, not once per fold: its folds are built within
:func:`fold_interval_warnings_muted`, and :func:`few_speaker_folds_warning` is its one line.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ser_hf.errors import EvaluationError
from ser_hf.evaluation.metrics.core import SCALAR_METRICS, scores_from_confusion, validate_labels

CI_METRICS = ("unweighted_accuracy", "weighted_accuracy", "macro_f1")
"""Metrics that get a confidence interval by default."""

# Bound on the (resamples x units) draw matrix per chunk, so memory stays ~32 MB for any test set.
_MAX_CHUNK_CELLS = 4_000_000

#: Fewer resampling units (speakers, or clips without groups) than this: no interval. One unit gives every
#: resample the same clips, so the percentile interval would have zero width: falsely precise, not narrow.
MIN_INTERVAL_UNITS = 2
#: Fewer units than this: the interval is given with a warning that it is coarse. k units allow only
#: C(2k-1, k) distinct resamples (3 for 2 speakers, 10 for 3, 35 for 4, 126 for 5), so the 2.5% and 97.5%
#: percentiles jump between a few values, and the bootstrap's spread is sqrt((k-1)/k) of the units' own
#: (29% too narrow with 2 speakers, 13% with 4). From 5 on the resamples are many and the shrinkage ~10%;
#: a common SER test fold (one IEMOCAP session: 2 speakers) still gets the warning.
FEW_INTERVAL_UNITS = 5

#: Fewest bootstrap resamples accepted (0 aside, which means no intervals). One resample gives a zero-width
#: "interval", and a handful give 2.5% and 97.5% bounds that are just the most extreme draws. 10 is the floor
#: rather than ~20 so that quick smoke runs (the test suite's ``--n-resamples 10``) stay possible; intervals worth
#: reporting want 1000 (bounds stable to ~0.5 points).
MIN_RESAMPLES = 10
#: Most bootstrap resamples accepted. 100000 already gives bounds stable to ~0.05 points, far finer than any test
#: set's own noise; the work grows with the count, so more only costs time (10**9 would run for hours).
MAX_RESAMPLES = 100_000


def check_resamples(n_resamples: Any, argument: str = "`n_resamples`", *, zero_skips: bool = False) -> int:
    """``n_resamples`` as an int, refused unless a whole number from :data:`MIN_RESAMPLES` to :data:`MAX_RESAMPLES`.

    Args:
        n_resamples: The number of bootstrap resamples asked for.
        argument: How errors name it (``"--n-resamples"`` from the command line).
        zero_skips: Whether 0 is accepted too, meaning "no intervals" (a report's setting; a function that exists
            to draw resamples refuses 0).

    Raises:
        EvaluationError: a bool, a float (``1.9``, ``nan``), anything not an integer, or one out of range; the
            message names ``argument``, the range and the value found.
    """
    whole = isinstance(n_resamples, (int, np.integer)) and not isinstance(n_resamples, bool)
    if whole and (MIN_RESAMPLES <= n_resamples <= MAX_RESAMPLES or (zero_skips and n_resamples == 0)):
        return int(n_resamples)
    kind = "" if whole or isinstance(n_resamples, str) else f" (a {type(n_resamples).__name__})"
    off = "0 (no intervals) or " if zero_skips else ""
    raise EvaluationError(
        f"{argument} must be {off}a positive integer from {MIN_RESAMPLES} to {MAX_RESAMPLES}, found "
        f"{n_resamples!r}{kind}: fewer than {MIN_RESAMPLES} resamples give no real interval, more than {MAX_RESAMPLES} "
        f"only cost time. Pass e.g. 1000 (bounds stable to about half a point).")


def check_confidence_level(confidence_level: Any, argument: str = "`confidence_level`") -> float:
    """``confidence_level`` as a float, refused unless a number strictly between 0 and 1 (``nan``, ``95``, a bool)."""
    number = isinstance(confidence_level, (int, float, np.integer, np.floating)) and not isinstance(
        confidence_level, bool)
    if not number or not 0.0 < confidence_level < 1.0:
        raise EvaluationError(f"{argument} must be in (0, 1), found {confidence_level!r}; e.g. 0.95 for 95% "
                              "intervals.")
    return float(confidence_level)


def _group_ids(groups: Sequence[Any], num_samples: int) -> np.ndarray:
    group_array = np.asarray(groups)
    if group_array.shape != (num_samples,):
        raise EvaluationError(
            f"`groups` has {group_array.size} items but `references` has {num_samples}: "
            "pass one group (e.g. speaker id) per example, or `groups=None`."
        )
    missing = [i for i, group in enumerate(group_array) if group is None] if group_array.dtype == object else []
    if missing:  # np.unique cannot sort None among ids; and a clip without a speaker belongs to no cluster
        raise EvaluationError(
            f"`groups` is None for {len(missing)} of {num_samples} examples (first at index {missing[0]}): whole "
            "groups (speakers) are resampled, so every example needs one. Give those examples their speaker, or "
            "pass `groups=None` to resample single examples (what `ser-hf evaluate` does when a clip has no speaker).")
    try:
        return np.unique(group_array, return_inverse=True)[1].reshape(-1)
    except TypeError as err:  # ids of kinds that cannot be ordered together, e.g. tuples beside strings
        raise EvaluationError(f"`groups` mixes ids that cannot be compared ({err}); pass ids of one kind, e.g. "
                              "[str(speaker) for speaker in groups].") from None


def resampling_units(num_samples: int, groups: Sequence[Any] | None = None) -> int:
    """How many units a bootstrap of ``num_samples`` examples resamples: the distinct ``groups``, else the examples."""
    if groups is None:
        return int(num_samples)
    return int(_group_ids(groups, num_samples).max()) + 1 if num_samples else 0


def interval_caveat(num_units: int, grouped: bool, confidence_level: float = 0.95) -> tuple[str, str] | None:
    """What a report must say about intervals resting on ``num_units`` units; `None` when there are enough.

    Args:
        num_units: :func:`resampling_units`.
        grouped: Whether the units are groups (speakers) rather than single clips.
        confidence_level: Coverage of the intervals, for the wording.

    Returns:
        ``(note, warning)``: a short note for a table caption, and a full warning (the count, why, and the fix)
        for a report's ``metadata["warnings"]``; `None` from :data:`FEW_INTERVAL_UNITS` units on.
    """
    if num_units >= FEW_INTERVAL_UNITS:
        return None
    level = f"{100 * confidence_level:g}%"
    unit = ("speaker" if num_units == 1 else "speakers") if grouped else ("clip" if num_units == 1 else "clips")
    fix = (f"Score a part with at least {FEW_INTERVAL_UNITS} speakers (e.g. fewer, larger folds) for a usable interval."
           if grouped else f"Score at least {FEW_INTERVAL_UNITS} clips for a usable interval.")
    if num_units < MIN_INTERVAL_UNITS:
        what = "whole speakers are resampled, so" if grouped else "so"
        return (f"the scored clips come from {num_units} {unit}, so every resample is the same clips",
                f"no {level} confidence intervals (shown as n/a): the scored clips come from {num_units} {unit}; "
                f"{what} every bootstrap resample is the same clips and the interval would have zero width. {fix}")
    distinct = math.comb(2 * num_units - 1, num_units)
    return (f"only {num_units} {unit}, so the intervals are coarse",
            f"the {level} confidence intervals rest on only {num_units} {unit}: a bootstrap over so few can draw only "
            f"{distinct} distinct resamples and understates the spread, so the intervals are coarse. {fix}")


#: Whether a report being built is one fold's of a cross-validation, whose interval warning the CV says once.
_IN_CV_FOLD = contextvars.ContextVar("ser_hf_in_cv_fold", default=False)


@contextlib.contextmanager
def fold_interval_warnings_muted() -> Iterator[None]:
    """Within it, a report's :func:`interval_caveat` warning is kept in its ``metadata["warnings"]`` but not logged:
    every fold of a CV on a corpus of few speakers a fold (RAVDESS: 4) would log the same warning, while the pooled
    report, the one quoted, rests on all of them. The CV logs :func:`few_speaker_folds_warning` once instead."""
    token = _IN_CV_FOLD.set(True)
    try:
        yield
    finally:
        _IN_CV_FOLD.reset(token)


def interval_warning_logged() -> bool:
    """Whether a report built now logs its interval warning (not within :func:`fold_interval_warnings_muted`)."""
    return not _IN_CV_FOLD.get()


def few_speaker_folds_warning(fold_speakers: Sequence[int], num_folds: int, pooled_speakers: int,
                              confidence_level: float = 0.95) -> str:
    """The one line a cross-validation logs for its folds' coarse or missing intervals.

    Args:
        fold_speakers: The speakers of each fold whose report carries an :func:`interval_caveat` (at least one).
        num_folds: How many folds the CV has.
        pooled_speakers: The speakers the pooled out-of-fold report resamples.
        confidence_level: Coverage of the intervals, for the wording.
    """
    low, high = min(fold_speakers), max(fold_speakers)
    count = f"{low}" if low == high else f"{low}-{high}"
    state = ("missing (n/a)" if high < MIN_INTERVAL_UNITS else "coarse" if low >= MIN_INTERVAL_UNITS
             else "coarse or missing (n/a)")
    pooled = f"rest on {pooled_speakers} speakers" + (", the intervals to quote" if pooled_speakers >= FEW_INTERVAL_UNITS
                                                       else "")
    return (f"the per-fold {100 * confidence_level:g}% confidence intervals of {len(fold_speakers)} of {num_folds} "
            f"folds rest on only {count} {'speaker' if high == 1 else 'speakers'} each, so they are {state} (each "
            f"fold's report says why{'; fewer, larger folds give each more' if num_folds > 2 else ''}); the pooled "
            f"out-of-fold intervals {pooled}.")


def bootstrap_confusions(
    references: np.ndarray,
    predictions: np.ndarray,
    num_labels: int,
    n_resamples: int,
    rng: np.random.Generator,
    groups: Sequence[Any] | None = None,
) -> np.ndarray:
    """Confusion matrices of bootstrap resamples, drawn with replacement, all at once.

    Args:
        references: Validated ``int64`` class ids, length N.
        predictions: Validated ``int64`` class ids, length N.
        num_labels: Number of classes C.
        n_resamples: Number of resamples B.
        rng: Source of randomness. Each chunk of resamples draws ``rng.integers(0, U, (size, U))``
            where U is N (or the number of groups).
        groups: Optional group per example; whole groups are drawn instead of examples.

    Returns:
        ``(B, C, C)`` ``int64`` confusion matrices.
    """
    cells = references * num_labels + predictions
    flat = num_labels * num_labels
    if groups is not None:
        unit_ids = _group_ids(groups, references.size)
        num_units = int(unit_ids.max()) + 1
        unit_confusions = np.bincount(unit_ids * flat + cells, minlength=num_units * flat).reshape(num_units, flat)
    else:
        num_units = references.size
    chunk = max(1, _MAX_CHUNK_CELLS // num_units)
    matrices = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.integers(0, num_units, size=(size, num_units))
        if groups is None:
            # Each drawn example adds one to its (reference, prediction) cell of its resample's matrix.
            flat_cells = cells[draws] + np.arange(size)[:, None] * flat
            matrices.append(np.bincount(flat_cells.ravel(), minlength=size * flat).reshape(size, flat))
        else:
            # Few groups: count how often each was drawn, then weight the per-group matrices.
            offsets = np.arange(size)[:, None] * num_units
            weights = np.bincount((draws + offsets).ravel(), minlength=size * num_units).reshape(size, num_units)
            matrices.append(weights @ unit_confusions)
    return np.concatenate(matrices).reshape(n_resamples, num_labels, num_labels)


def bootstrap_confidence_intervals(
    references: Any,
    predictions: Any,
    num_labels: int,
    *,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
    metrics: Sequence[str] = CI_METRICS,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap confidence intervals for SER metrics.

    Args:
        references: True class ids, length N.
        predictions: Predicted class ids, length N.
        num_labels: Number of classes.
        groups: Optional group of each example (e.g. speaker id); whole groups are resampled.
        n_resamples: Number of bootstrap resamples, :data:`MIN_RESAMPLES` to :data:`MAX_RESAMPLES` (1000 gives
            stable 95% bounds to ~0.5 points).
        confidence_level: Central coverage of the interval, in (0, 1).
        seed: Seed of the resampling; the default makes reports reproducible, `None` draws fresh.
        metrics: Which scalar metrics to bound (any of ``unweighted_accuracy``, ``weighted_accuracy``,
            ``macro_f1``, ``weighted_f1``).

    Returns:
        Metric name -> ``(low, high)``, in [0, 1]; `None` for every metric when fewer than
        :data:`MIN_INTERVAL_UNITS` groups (or examples) are resampled (see :func:`interval_caveat`).

    Raises:
        EvaluationError: ``n_resamples`` or ``confidence_level`` out of range (:func:`check_resamples`), unknown
            metrics, bad labels, or ``groups`` of the wrong length or with ``None`` among them (a clip without a
            speaker belongs to no cluster: give it one, or pass ``groups=None``).

    Example:
        ```python
        >>> cis = bootstrap_confidence_intervals([0, 1, 1, 0] * 25, [0, 1, 0, 0] * 25, num_labels=2)
        >>> low, high = cis["unweighted_accuracy"]

        ```
    """
    n_resamples = check_resamples(n_resamples)
    confidence_level = check_confidence_level(confidence_level)
    unknown = sorted(set(metrics) - set(SCALAR_METRICS))
    if unknown:
        raise EvaluationError(f"`metrics` holds unknown names {unknown}; choose from {list(SCALAR_METRICS)}.")
    refs, preds, num_labels = validate_labels(references, predictions, num_labels)
    if resampling_units(refs.size, groups) < MIN_INTERVAL_UNITS:
        return dict.fromkeys(metrics)
    rng = np.random.default_rng(seed)
    scores = scores_from_confusion(bootstrap_confusions(refs, preds, num_labels, n_resamples, rng, groups))
    # Percentile bounds: simple, reproducible and always inside [0, 1]; BCa would add a jackknife pass.
    return {name: tuple(percentile_interval(scores[name], confidence_level)) for name in metrics}


def percentile_interval(samples: np.ndarray, confidence_level: float = 0.95) -> list[float]:
    """The central ``confidence_level`` percentile interval ``[low, high]`` of bootstrap ``samples`` (of one
    system's scores, or of the paired differences between two: see :func:`paired_bootstrap_scores`)."""
    tail = 100.0 * (1.0 - confidence_level) / 2.0
    return [float(bound) for bound in np.percentile(samples, [tail, 100.0 - tail])]


def paired_bootstrap_scores(
    references: Any,
    predictions: Mapping[str, Any],
    num_labels: int,
    *,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    metric: str = "unweighted_accuracy",
) -> dict[str, np.ndarray]:
    """``metric`` of every system of ``predictions`` on the same bootstrap resamples of one test set.

    Each resample draws the same clips (or, with ``groups``, the same speakers) for every system, so
    ``samples[a] - samples[b]`` is the bootstrap distribution of the *difference* between two systems: its
    interval is far narrower than the two systems' own intervals suggest when they err on the same clips.
    Over fewer than :data:`MIN_INTERVAL_UNITS` units every resample is the same clips: check
    :func:`resampling_units` (and :func:`interval_caveat`) before quoting an interval of these samples.

    Args:
        references: True class ids, length N.
        predictions: System name -> predicted class ids, length N each.
        num_labels: Number of classes.
        groups: Optional group of each example (e.g. speaker id); whole groups are resampled.
        n_resamples: Number of bootstrap resamples, :data:`MIN_RESAMPLES` to :data:`MAX_RESAMPLES`.
        seed: Seed of the draws (the same for every system: what pairs them).
        metric: One of :data:`~ser_hf.evaluation.metrics.core.SCALAR_METRICS`.

    Returns:
        System name -> ``(n_resamples,)`` scores.

    Example:
        ```python
        >>> samples = paired_bootstrap_scores([0, 1] * 50, {"a": [0, 1] * 50, "b": [0, 0] * 50}, num_labels=2)
        >>> change = samples["b"] - samples["a"]

        ```
    """
    n_resamples = check_resamples(n_resamples)
    if metric not in SCALAR_METRICS:
        raise EvaluationError(f"`metric` must be one of {list(SCALAR_METRICS)}, found {metric!r}.")
    samples = {}
    for name, system in predictions.items():
        try:
            refs, preds, labels = validate_labels(references, system, num_labels)
        except EvaluationError as error:  # say which system's predictions are wrong
            raise EvaluationError(f"predictions[{name!r}]: {error}") from error
        rng = np.random.default_rng(seed)  # the same draws for every system
        samples[name] = scores_from_confusion(
            bootstrap_confusions(refs, preds, labels, n_resamples, rng, groups))[metric]
    return samples
