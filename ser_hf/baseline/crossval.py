"""Speaker-independent cross-validation of the classic baseline, reported exactly like the transformer path.

:func:`cross_validate_baseline` extracts (cached) features once (:mod:`ser_hf.baseline.corpus_features`), then for
each outer fold of :func:`ser_hf.splits.corpus_folds` (RAVDESS: 6 folds of 4 actors; URDU and corpora without a
protocol: speaker-grouped folds) tunes a classifier by speaker-grouped inner CV on the training speakers only
(:func:`~ser_hf.baseline.classifiers.fit_classifier`) and scores the unseen test speakers. The neural
baselines (``cnn``, ``lstm``: :mod:`ser_hf.baseline.neural`) take cached frame sequences instead, and
instead of a grid search they early-stop on a speaker-disjoint part of each fold's training speakers. Reports are
:class:`~ser_hf.evaluation.EvaluationReport` per fold, pooled out-of-fold with speaker-level bootstrap
intervals, and :func:`~ser_hf.evaluation.aggregate_folds`, written to the same files as
:func:`ser_hf.training.experiment.cross_validate` (``cv/<fold>/``, ``cv/pooled/``, ``cv/cv_summary.json``,
``cv/cv_summary.md``) through the same out-of-fold loop
(:func:`~ser_hf.evaluation.folds.cross_validate_folds`) and :func:`write_cv_summary`, which know nothing of
the model and serve every path.

Example:
    ```python
    >>> from ser_hf.corpora import load_corpus
    >>> from ser_hf.baseline.crossval import cross_validate_baseline
    >>> ds = load_corpus("urdu", "../shared/data/urdu")  # doctest: +SKIP
    >>> result = cross_validate_baseline(ds, "svm", cache_dir="~/.cache/ser_hf/features",  # doctest: +SKIP
    ...                                  out_dir="outputs/urdu-svm")
    >>> result.aggregate["metrics"]["unweighted_accuracy"]["mean"], result.pooled.confidence_intervals  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf.audio import AudioPreprocessor
from ser_hf.baseline.classifiers import (
    FittedClassifier,
    check_inner_folds,
    check_n_jobs,
    classifier_description,
    default_param_grid,
    fit_classifier,
    is_neural,
    probabilities_for,
)
from ser_hf.baseline.corpus_features import (
    check_clips_hold_sound,
    clip_levels,
    dataset_features,
    dataset_sequences,
    default_feature_config,
    soundless_clips,
)
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.folder import check_baseline_folder, one_baseline_at_a_time, remove_earlier_model
from ser_hf.corpora.splits import note_missing_classes  # corpus_folds says it for its own folds; given ones too
from ser_hf.errors import SERError
from ser_hf.evaluation import EvaluationReport
from ser_hf.evaluation.fold_state import CVIdentity, data_digest, fingerprint_parts
from ser_hf.evaluation.folds import (
    FoldResult,
    cross_validate_folds,
    remove_earlier_reports,
    resumable_cv,
    summarise_folds,
    write_cv_summary,
)
from ser_hf.splits import Fold, corpus_folds, speakers_of

logger = logging.getLogger(__name__)

__all__ = [
    "BaselineCVResult", "baseline_settings", "corpus_name", "cross_validate_baseline", "dataset_features",
    "check_clips_hold_sound", "clip_levels", "dataset_sequences", "default_feature_config", "soundless_clips",
    "summarise_folds", "write_cv_summary",
]



@dataclass
class BaselineCVResult:
    """Cross-validation of a baseline classifier: the transformer path's ``CVResult`` fields, plus more.

    Args:
        folds: One :class:`EvaluationReport` per outer fold.
        aggregate: :func:`~ser_hf.evaluation.aggregate_folds` of the fold reports.
        pooled: The report of all out-of-fold predictions together (speaker-level bootstrap CIs).
        fits: Per fold, the tuned :class:`~ser_hf.baseline.classifiers.FittedClassifier` (neural baselines:
            :class:`~ser_hf.baseline.neural.FittedNeural`); ``None`` for a fold kept from an interrupted CV (its
            report's metadata still holds its best parameters and inner score).
        features: The ``(n, d)`` feature matrix of the whole dataset (reusable for a final fit); for the
            neural baselines, the list of frame sequences.
        settings: What was run (data, classifier, grid, inner folds, seed, features, preprocessing).
        resumed_folds: The folds kept from an interrupted CV into the same ``out_dir`` with the same settings and
            clips (not fitted again).
    """

    folds: list[EvaluationReport]
    aggregate: dict[str, Any]
    pooled: EvaluationReport
    fits: list[Any]
    features: np.ndarray | list[np.ndarray]
    settings: dict[str, Any]
    resumed_folds: list[str] = field(default_factory=list)  # kept from an interrupted CV (their fits are None)


def corpus_name(dataset: datasets.Dataset) -> str | None:
    """The dataset's ``corpus`` value when it has exactly one, else ``None``."""
    names = set(dataset["corpus"]) if "corpus" in dataset.column_names else set()
    return names.pop() if len(names) == 1 else None


def baseline_settings(
    dataset: datasets.Dataset,
    classifier: str,
    feature_config: FeatureConfig,
    *,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    inner_folds: int = 3,
    seed: int = 0,
    preprocessor: AudioPreprocessor | None = None,
    neural_config: Any = None,
) -> dict[str, Any]:
    """JSON-able description of a baseline run, recorded beside its results and in its model card."""
    baseline = {"classifier": classifier, "description": classifier_description(classifier)}
    if is_neural(classifier):
        from ser_hf.baseline.neural import resolve_neural_config

        config = resolve_neural_config(classifier, neural_config)
        baseline |= {"param_grid": {}, "inner_folds": None, "neural": dataclasses.asdict(config),
                     "validation": f"about {config.validation_size:g} of each fold's training speakers held out "
                                   f"(speaker-grouped) for early stopping on UA"}
    else:
        grid = param_grid if param_grid is not None else default_param_grid(classifier)
        baseline |= {"param_grid": {k.removeprefix("clf__"): list(v) for k, v in grid.items()},
                     "inner_folds": inner_folds}
    return {
        "data": {"corpus": corpus_name(dataset), "labels": dataset.features["label"].names,
                 "num_clips": len(dataset), "num_speakers": len(set(dataset["speaker"]))},
        "baseline": {**baseline, "seed": seed, "scoring": "balanced_accuracy (UA)"},
        "features": dataclasses.asdict(feature_config),
        "preprocessor": dataclasses.asdict(preprocessor or AudioPreprocessor(feature_config.sampling_rate)),
    }


def _fold_report(
    fitted: FittedClassifier, probabilities: np.ndarray, test: datasets.Dataset, split: str, names: list[str]
) -> EvaluationReport:
    score = "validation_unweighted_accuracy" if is_neural(fitted.classifier) else "inner_cv_unweighted_accuracy"
    return EvaluationReport.from_predictions(
        np.asarray(test["label"]), probabilities=probabilities, label_names=names, groups=test["speaker"],
        genders=test["gender"] if "gender" in test.column_names else None, model=f"baseline-{fitted.classifier}", corpus=corpus_name(test), split=split,
        metadata={"mode": "baseline", "speakers": sorted(set(test["speaker"])), "best_params": fitted.best_params,
                  score: fitted.inner_score},
    )


def _checked_features(
    features: np.ndarray | list[np.ndarray] | None, dataset: datasets.Dataset, extract: dict, neural: bool
) -> np.ndarray | list[np.ndarray]:
    if features is None:
        return (dataset_sequences if neural else dataset_features)(dataset, **extract)
    if len(features) != len(dataset):
        raise SERError(
            f"`features` has {len(features)} rows but the dataset has {len(dataset)} clips; pass one row per "
            f"clip in dataset order, or features=None to extract them."
        )
    features = list(features) if neural else np.asarray(features)
    check_clips_hold_sound(features, dataset)  # extracted ones were checked on extraction, with their levels
    return features


# What scikit-learn says, on every inner fold, when a training part has too few speakers per emotion: expected with
# small corpora, and said once in ser_hf's words by _expected_sklearn_warnings instead.
_EXPECTED_WARNINGS = ("The least populated class in y", "Number of classes in training fold",
                      "A single label was found in 'y_true' and 'y_pred'")


@contextlib.contextmanager
def _expected_sklearn_warnings(said: list[bool]):
    """Hold back scikit-learn's small-class warnings of the inner folds; note them once (``said`` remembers)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    expected = [w for w in caught if any(str(w.message).startswith(text) for text in _EXPECTED_WARNINGS)]
    for other in (w for w in caught if w not in expected):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if expected and not said[0]:
        said[0] = True
        logger.info("Some emotions have too few training speakers for every speaker-grouped inner fold of the "
                    "hyperparameter search to hold them, so some inner folds train or score without them; the "
                    "hyperparameters chosen are less reliable (more speakers per emotion fix this).")


def _fold_fitter(classifier: str, features, labels: np.ndarray, speakers: np.ndarray, num_labels: int, **options):
    """``fit(train rows, test rows) -> (fitted, test probabilities)`` for a scikit-learn or a neural baseline."""
    said = [False]
    if is_neural(classifier):
        from ser_hf.baseline.neural import fit_neural

        def fit_sequences(train: np.ndarray, test: np.ndarray):
            with _expected_sklearn_warnings(said):
                fitted = fit_neural([features[i] for i in train], labels[train], speakers[train], classifier,
                                    num_labels=num_labels, config=options["neural_config"], seed=options["seed"])
            return fitted, fitted.model.predict_proba([features[i] for i in test])

        return fit_sequences
    options.pop("neural_config")

    def fit_matrix(train: np.ndarray, test: np.ndarray):
        with _expected_sklearn_warnings(said):
            fitted = fit_classifier(features[train], labels[train], speakers[train], classifier, **options)
        return fitted, probabilities_for(fitted.pipeline, features[test], num_labels)

    return fit_matrix


def cross_validate_baseline(
    dataset: datasets.Dataset,
    classifier: str = "svm",
    *,
    folds: Sequence[Fold] | None = None,
    n_folds: int = 5,
    feature_config: FeatureConfig | None = None,
    features: np.ndarray | list[np.ndarray] | None = None,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: str | os.PathLike | None = None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    inner_folds: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
    num_workers: int | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    neural_config: Any = None,
    replace_model: bool = False,
) -> BaselineCVResult:
    """Cross-validate a baseline classifier on speaker-independent folds.

    Args:
        dataset: A corpus from :func:`ser_hf.corpora.load_corpus` (``audio``, ``label``, ``speaker``).
        classifier: ``svm``, ``logreg``, ``forest``, ``mlp`` (classic features) or ``cnn``, ``lstm``
            (frame sequences, :mod:`ser_hf.baseline.neural`).
        folds: Outer folds; ``None`` uses :func:`ser_hf.splits.corpus_folds` (the transformer path's).
        n_folds: Folds for corpora without their own protocol (URDU: 5).
        feature_config: Feature settings; ``None`` means :func:`default_feature_config` of the classifier.
        features: Precomputed ``(len(dataset), d)`` features, or for ``cnn``/``lstm`` one sequence per clip
            (skips extraction).
        preprocessor: Audio cleaning before feature extraction.
        cache_dir: Feature cache folder (``None``: no cache).
        param_grid: Grid to search; ``None`` uses :func:`~ser_hf.baseline.classifiers.default_param_grid`.
        inner_folds: Speaker-grouped inner folds of each grid search.
        seed: Seed of the folds, inner folds and classifiers.
        n_jobs: Parallel fits in each grid search (-1: every core; at most
            :data:`~ser_hf.baseline.classifiers.JOBS_PER_CORE` per core).
        num_workers: Feature extraction processes (``None``: all cores).
        out_dir: If given, reports go to ``out_dir/cv/`` as with ``ser_hf.training.experiment.cross_validate``.
        replace_model: Also remove an earlier baseline model, settings and card from ``out_dir`` once the run is sure
            to start (``--save-model`` saves the new one after the CV; a run stopped between them must not leave the
            old model beside the new CV).
        progress: Show the feature extraction progress bar.
        neural_config: :class:`~ser_hf.baseline.neural.NeuralConfig` of ``cnn``/``lstm`` (``None``: defaults).

    Returns:
        A :class:`BaselineCVResult`.

    Raises:
        SERError: unknown classifier, ``features`` of the wrong length, an ``n_jobs`` beyond
            :func:`~ser_hf.baseline.classifiers.check_n_jobs`, or clips that all give the same features
            (:func:`check_clips_hold_sound`).
        SplitError: too few speakers for the outer folds, or an ``inner_folds`` some fold's training speakers cannot
            make (checked before extraction, with a value every fold can make).

    Warns:
        UserWarning: clips that hold no sound, named (:func:`check_clips_hold_sound`). Caller-given ``folds`` whose
            training part lacks an emotion are named in a logged warning, as :func:`~ser_hf.splits.corpus_folds`
            names its own.

    Example:
        ```python
        >>> from ser_hf.evaluation import folds_to_markdown
        >>> result = cross_validate_baseline(ds, "logreg", cache_dir="feature_cache",  # doctest: +SKIP
        ...                                  out_dir="outputs/urdu-logreg")
        >>> print(folds_to_markdown(result.aggregate)); print(result.pooled.format_table())  # doctest: +SKIP

        ```
    """
    config = feature_config or default_feature_config(classifier)  # fails on a bad name before extracting
    neural = is_neural(classifier)
    if neural:
        from ser_hf.baseline.neural import resolve_neural_config
        from ser_hf.baseline.sequences import check_sequence_config

        neural_config = resolve_neural_config(classifier, neural_config)
        check_sequence_config(config)
    given = folds is not None
    folds = list(folds) if given else corpus_folds(dataset, n_folds=n_folds, seed=seed)
    speakers = speakers_of(dataset)
    if given:  # a fold that trains without an emotion never predicts it (corpus_folds says so of its own folds)
        note_missing_classes(dataset, folds)
    if not neural:  # before any feature is extracted
        _check_search(inner_folds, n_jobs, folds, speakers, given)
    settings = baseline_settings(dataset, classifier, config, param_grid=param_grid, inner_folds=inner_folds,
                                 seed=seed, preprocessor=preprocessor, neural_config=neural_config)
    identity = resume = None
    with contextlib.ExitStack() as held:
        if out_dir is not None:  # before any feature is extracted
            out_dir = check_baseline_folder(out_dir, "out_dir (--out)")
            held.enter_context(one_baseline_at_a_time(out_dir))
            identity = CVIdentity(fingerprint_parts(settings, folds, data_digest(dataset),
                                                    features=_given_features_digest(features)))
            resume = resumable_cv(out_dir / "cv", identity, "baseline")  # then its finished folds are kept
            if not resume:  # an earlier CV's folds must not sit beside this one's; a file of the user's there stops it
                remove_earlier_reports(out_dir / "cv")
            if replace_model:  # nor its model and card (it is saved again after the CV)
                remove_earlier_model(out_dir)
        labels, names = np.asarray(dataset["label"]), dataset.features["label"].names
        extract = dict(feature_config=config, preprocessor=preprocessor, cache_dir=cache_dir, num_workers=num_workers,
                       progress=progress)
        features = _checked_features(features, dataset, extract, neural)
        fit = _fold_fitter(classifier, features, labels, speakers, len(names), param_grid=param_grid,
                           inner_folds=inner_folds, seed=seed, n_jobs=n_jobs, neural_config=neural_config)

        def fit_fold(fold: Fold) -> FoldResult:
            fitted, probabilities = fit(fold.train, fold.test)
            report = _fold_report(fitted, probabilities, dataset.select(fold.test), fold.name, names)
            return FoldResult(report, probabilities, fitted)

        genders = dataset["gender"] if "gender" in dataset.column_names else None
        result = cross_validate_folds(folds, fit_fold, references=labels, speakers=speakers, label_names=names,
                                      model=f"baseline-{classifier}", corpus=corpus_name(dataset), genders=genders,
                                      out_dir=None if out_dir is None else Path(out_dir) / "cv", kind="baseline",
                                      identity=identity, resume_dir=Path(out_dir) / "cv" if resume else None)
        reports, aggregate, pooled = result.reports, result.aggregate, result.pooled
        fits = [fold.fitted for fold in result.folds]
        if out_dir is not None:
            write_cv_summary(Path(out_dir) / "cv", aggregate, pooled, settings, kind="baseline", identity=identity)
        return BaselineCVResult(reports, aggregate, pooled, fits, features, settings, result.resumed)


def _check_search(inner_folds: int, n_jobs: int, folds: Sequence[Fold], speakers: np.ndarray, given: bool) -> None:
    """Refuse search settings some fold cannot use, with a fix that works for every fold (computed from its speakers),
    before the features are extracted: the inner-fold error came at the first fold too small, after the rest."""
    check_n_jobs(n_jobs, "n_jobs (--jobs)")
    total = len(set(speakers))
    if given:
        too_few = "Pass folds whose training parts hold 2 or more speakers each."
    elif total >= 3:  # more outer folds, not fewer, leave more speakers to train on
        too_few = (f"Use more outer folds: with n_folds={total} (--folds {total}: one test speaker each) every fold "
                   f"trains on {total - 1} speakers (corpora with their own folds keep them).")
    else:
        too_few = f"Use data with at least 3 speakers (the corpus has {total}): 2 to train on in each fold, 1 to test."
    parts = {f"{fold.name}'s training speakers": set(speakers[fold.train]) for fold in folds}
    check_inner_folds(inner_folds, parts, too_few=too_few)


def _given_features_digest(features) -> str:
    """A digest of features the caller passed (they, not the audio, are what the folds fit); empty when extracted."""
    if features is None:
        return ""
    digest = hashlib.sha256()
    for row in features if isinstance(features, list) else [features]:
        array = np.ascontiguousarray(np.asarray(row, dtype=np.float64))
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
