"""scikit-learn classifiers on the classic features, tuned and evaluated speaker-independently.

Four pipelines, each ``StandardScaler`` then a classifier, chosen by name (:data:`CLASSIFIERS`):
``svm`` (RBF SVM), ``logreg`` (multinomial logistic regression), ``forest`` (random forest) and ``mlp``
(a small multilayer perceptron). Class weights are balanced where the estimator supports it, since
UA (balanced accuracy) is the metric that is tuned and reported.

Hyperparameters are chosen by a grid search whose inner cross-validation splits the *training speakers*
into groups (``StratifiedGroupKFold``), so no speaker is ever both fitted and scored within the search,
and the outer test speakers are never seen. :func:`ser_hf.baseline.crossval.cross_validate_baseline` runs
that on the same outer folds as the transformer path.

The RBF SVM has no native probabilities: its tuned model is wrapped in a sigmoid (Platt)
``CalibratedClassifierCV`` whose calibration folds are the same speaker-grouped inner folds, so
predictions are the argmax of calibrated probabilities for every classifier.

Example:
    ```python
    >>> from ser_hf.baseline.classifiers import fit_classifier
    >>> fitted = fit_classifier(features, labels, speakers, "svm", inner_folds=3)  # doctest: +SKIP
    >>> fitted.best_params, fitted.inner_speakers[0]["test"]  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from ser_hf.errors import SERError, SplitError
from ser_hf.processes import available_cores
from ser_hf.splits import grouped_kfold

__all__ = [
    "CLASSIFIERS", "JOBS_PER_CORE", "NEURAL_CLASSIFIERS", "ClassifierSpec", "FittedClassifier", "available_cores",
    "check_classifier", "check_inner_folds", "check_n_jobs",
    "classifier_description", "default_param_grid", "fit_classifier", "get_classifier", "inner_speaker_splits",
    "is_neural", "make_pipeline", "probabilities_for",
]


@dataclass(frozen=True)
class ClassifierSpec:
    """A named classifier: how to build it and the small grid its inner cross-validation searches."""

    name: str
    description: str
    build: Callable[[int], BaseEstimator]
    grid: Mapping[str, Sequence[Any]]


#: The classifiers ``--classifier`` accepts. Grids stay small (4-6 points) so a corpus runs in minutes.
CLASSIFIERS: dict[str, ClassifierSpec] = {
    spec.name: spec
    for spec in (
        ClassifierSpec(
            "svm", "RBF support vector machine, Platt-calibrated on the speaker-grouped inner folds",
            lambda seed: SVC(kernel="rbf", class_weight="balanced", random_state=seed),
            {"C": [1.0, 10.0, 100.0], "gamma": ["scale", 3e-4]},
        ),
        ClassifierSpec(
            "logreg", "L2-regularised multinomial logistic regression",
            lambda seed: LogisticRegression(class_weight="balanced", max_iter=5000, random_state=seed),
            {"C": [0.001, 0.01, 0.1, 1.0]},
        ),
        ClassifierSpec(
            "forest", "random forest of 300 trees",
            lambda seed: RandomForestClassifier(
                n_estimators=300, class_weight="balanced_subsample", random_state=seed
            ),
            {"max_features": ["sqrt", 0.1], "min_samples_leaf": [1, 4]},
        ),
        ClassifierSpec(
            "mlp", "multilayer perceptron (Adam, ReLU); no class weights (scikit-learn has none for it)",
            lambda seed: MLPClassifier(max_iter=300, random_state=seed),
            {"hidden_layer_sizes": [(128,), (256, 128)], "alpha": [1e-3, 1e-1]},
        ),
    )
}


#: The neural baselines (:mod:`ser_hf.baseline.neural`), trained from scratch on frame sequences with torch.
#: Named here, without importing torch, so every baseline entry point knows all the names.
NEURAL_CLASSIFIERS: dict[str, str] = {
    "cnn": "small 2-D CNN on log-mel spectrograms (4 conv blocks, global average pooling), trained from scratch",
    "lstm": "2-layer BiLSTM on MFCC + delta sequences (masked mean pooling), trained from scratch",
}


def check_classifier(classifier: str) -> str:
    """``classifier`` if it names a baseline (scikit-learn or neural); a clear error listing the names otherwise."""
    if classifier not in CLASSIFIERS and classifier not in NEURAL_CLASSIFIERS:
        raise SERError(
            f"Unknown classifier {classifier!r} (argument `classifier` / --classifier). "
            f"Expected one of {sorted([*CLASSIFIERS, *NEURAL_CLASSIFIERS])}."
        )
    return classifier


def is_neural(classifier: str) -> bool:
    """Whether ``classifier`` is one of the neural baselines (``cnn``, ``lstm``); raises for unknown names."""
    return check_classifier(classifier) in NEURAL_CLASSIFIERS


def classifier_description(classifier: str) -> str:
    """One line saying what ``classifier`` is."""
    if is_neural(classifier):
        return NEURAL_CLASSIFIERS[classifier]
    return CLASSIFIERS[classifier].description


def get_classifier(classifier: str) -> ClassifierSpec:
    """The :class:`ClassifierSpec` of a scikit-learn baseline; a clear error listing the names otherwise."""
    if is_neural(classifier):
        raise SERError(
            f"Classifier {classifier!r} is a neural baseline (ser_hf.baseline.neural), not a scikit-learn pipeline: "
            f"it has no grid and no make_pipeline. Use cross_validate_baseline / train_baseline, which handle both."
        )
    return CLASSIFIERS[classifier]


def make_pipeline(classifier: str = "svm", seed: int = 0, **params: Any) -> Pipeline:
    """An unfitted ``StandardScaler`` + classifier pipeline.

    Args:
        classifier: ``svm``, ``logreg``, ``forest`` or ``mlp``.
        seed: ``random_state`` of the classifier.
        **params: Classifier hyperparameters, e.g. ``C=10`` (no ``clf__`` prefix needed).

    Returns:
        A ``Pipeline`` with steps ``scale`` and ``clf``.

    Example:
        >>> make_pipeline("logreg", C=0.1).named_steps["clf"].C
        0.1
    """
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", get_classifier(classifier).build(seed))])
    return pipeline.set_params(**_prefixed(params)) if params else pipeline


def default_param_grid(classifier: str = "svm") -> dict[str, list[Any]]:
    """The grid searched for ``classifier`` (keys without the ``clf__`` prefix)."""
    return {key: list(values) for key, values in get_classifier(classifier).grid.items()}


def _prefixed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key if "__" in key else f"clf__{key}": value for key, value in params.items()}


def _unprefixed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key.removeprefix("clf__"): value for key, value in params.items()}


#: Most parallel grid-search fits per available core. Each fit is a process (joblib's loky) holding its own copy of
#: the features, so more processes than cores only add memory and start-up time; past a few per core a number is a
#: typo (``--jobs 100000`` started that many processes). Refused rather than lowered: the user learns the number was
#: wrong, and ``-1`` (every core) is the portable way to ask for all.
JOBS_PER_CORE = 4


def check_n_jobs(n_jobs: Any, setting: str = "n_jobs") -> None:
    """Refuse a grid-search parallelism scikit-learn would misuse: anything but ``None``, ``-1`` (every core) or
    1 to :data:`JOBS_PER_CORE` x the available cores.

    Args:
        n_jobs: The value given.
        setting: How the user sets it (``"--jobs"``), for the message.

    Raises:
        SERError: naming ``setting``, the value and the values allowed here.
    """
    cores = available_cores()
    whole = isinstance(n_jobs, (int, np.integer)) and not isinstance(n_jobs, bool)
    if n_jobs is None or (whole and (n_jobs == -1 or 1 <= n_jobs <= JOBS_PER_CORE * cores)):
        return
    raise SERError(
        f"{setting} must be a positive integer or -1 (every core), at most {JOBS_PER_CORE * cores} ({JOBS_PER_CORE} "
        f"per core, {cores} core(s) here), got {n_jobs!r}: each parallel fit is a process, so more than the cores "
        f"only cost memory. Use -1, or a number from 1 to {cores}."
    )


def check_inner_folds(inner_folds: Any, parts: Mapping[str, Collection[Any]],
                      too_few: str = "Train on data with more speakers.") -> None:
    """Refuse an ``inner_folds`` that the speakers of some training part cannot make, advising one that all can.

    Args:
        inner_folds: The number of speaker-grouped inner folds asked for.
        parts: The speakers of each training part the search runs on, by a name for the message (``"fold2's
            training speakers"``); the smallest part decides.
        too_few: The fix when the smallest part has fewer than 2 speakers, where no ``inner_folds`` works.

    Raises:
        SplitError: naming the smallest part and its speakers, with a value every part can make (computed from
            them), or, below 2 speakers, ``too_few``.
    """
    smallest = min(parts, key=lambda name: len(set(parts[name])))
    speakers = sorted({str(speaker) for speaker in parts[smallest]})
    count = len(speakers)
    whole = isinstance(inner_folds, (int, np.integer)) and not isinstance(inner_folds, bool)
    if whole and 2 <= inner_folds <= count:
        return
    if count >= 2:
        every = "; every part can make that" if len(parts) > 1 else ""
        fix = f"Use 2 <= inner_folds <= {count} (e.g. --inner-folds {min(3, count)}){every}."
    else:
        fix = f"No inner_folds works: a speaker-grouped search needs at least 2 training speakers. {too_few}"
    raise SplitError(
        f"inner_folds={inner_folds!r} cannot be made: the hyperparameter search splits {smallest} into inner_folds "
        f"speaker groups, so it needs an integer from 2 to their number; found {count} ({speakers[:10]}"
        f"{' ...' if count > 10 else ''}). {fix}"
    )


def inner_speaker_splits(
    labels: np.ndarray, speakers: np.ndarray, n_splits: int = 3, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker-grouped, emotion-stratified ``(train, test)`` row positions for an inner cross-validation.

    Args:
        labels: Class id per training row.
        speakers: Speaker per training row; no speaker is ever on both sides of a split.
        n_splits: Number of inner folds (2 .. number of speakers).
        seed: Shuffle seed.

    Returns:
        ``n_splits`` pairs of position arrays into ``labels``.

    Raises:
        SplitError: if ``n_splits`` is below 2 or above the number of training speakers; the advice is a value that
            works with these speakers (or, with fewer than 2, says that none does).
    """
    check_inner_folds(n_splits, {"the training speakers": set(speakers)})
    # scikit-learn's folds, except where a small corpus would make it raise or leave a fold empty
    return grouped_kfold(np.asarray(labels), np.asarray(speakers), n_splits, seed, setting="inner_folds (--inner-folds)")


@dataclass
class FittedClassifier:
    """A pipeline refitted on all its training rows with the hyperparameters the inner search chose.

    Args:
        classifier: The classifier name.
        pipeline: The fitted pipeline (for ``svm``, its classifier is the calibrated SVM).
        best_params: The chosen hyperparameters (without the ``clf__`` prefix).
        inner_score: Mean inner-CV balanced accuracy (UA) of those hyperparameters.
        inner_speakers: For each inner split, the sorted ``train`` and ``test`` speakers it used.
        grid: Every grid point: ``params``, ``mean`` and ``std`` of its inner UA.
    """

    classifier: str
    pipeline: Pipeline
    best_params: dict[str, Any]
    inner_score: float
    inner_speakers: list[dict[str, list[str]]]
    grid: list[dict[str, Any]] = field(default_factory=list)


def _grid_points(search: GridSearchCV) -> list[dict[str, Any]]:
    results = search.cv_results_
    return [
        {"params": _unprefixed(params), "mean": float(mean), "std": float(std)}
        for params, mean, std in zip(results["params"], results["mean_test_score"], results["std_test_score"])
    ]


def fit_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    speakers: Sequence[str],
    classifier: str = "svm",
    *,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
    inner_folds: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
) -> FittedClassifier:
    """Tune ``classifier`` by speaker-grouped inner CV (scoring UA), then refit it on all rows given.

    Args:
        features: ``(n, d)`` training features.
        labels: ``(n,)`` class ids.
        speakers: Speaker of each row; the inner folds group by it.
        classifier: ``svm``, ``logreg``, ``forest`` or ``mlp``.
        param_grid: Grid to search (keys with or without ``clf__``); ``None`` uses :func:`default_param_grid`.
        inner_folds: Number of speaker-grouped inner folds.
        seed: Seed of the inner folds and of the classifier.
        n_jobs: Parallel fits in the grid search (keep it at the number of free cores; -1: every core; at most
            :data:`JOBS_PER_CORE` per core, see :func:`check_n_jobs`).

    Returns:
        A :class:`FittedClassifier`.

    Example:
        >>> fitted = fit_classifier(X, y, speakers, "logreg", inner_folds=3)  # doctest: +SKIP
        >>> fitted.best_params, round(fitted.inner_score, 3)  # doctest: +SKIP
        ({'C': 0.01}, 0.612)
    """
    check_n_jobs(n_jobs)
    speakers = np.asarray(speakers, dtype=object)
    labels = np.asarray(labels)
    splits = inner_speaker_splits(labels, speakers, inner_folds, seed)
    grid = _prefixed(param_grid if param_grid is not None else default_param_grid(classifier))
    search = GridSearchCV(
        make_pipeline(classifier, seed), grid, scoring="balanced_accuracy", cv=splits, n_jobs=n_jobs,
        refit=False, error_score="raise",
    )
    # One BLAS thread: the matrices are small, and on busy cores OpenBLAS threads only spin against each
    # other (a logistic-regression grid on URDU took 17 s with 2 threads, 0.5 s with 1).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # An inner test fold may lack a rare class; balanced accuracy then warns once per fit, harmlessly.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        # Grid points that stop at max_iter are scored like the others; the warning would repeat per fit.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        search.fit(features, labels)
        best = make_pipeline(classifier, seed).set_params(**search.best_params_)
        if classifier == "svm":
            # Platt scaling on the same speaker-grouped folds, so probabilities are not fitted on seen speakers.
            svm = clone(best.named_steps["clf"])
            # One calibration on all out-of-fold scores needs every inner training part to hold 3+ emotions
            # (scikit-learn refuses decision functions of 2 classes among more); a tiny corpus calibrates per fold.
            few = any(len(np.unique(labels[train])) <= 2 < len(np.unique(labels)) for train, _ in splits)
            best.set_params(clf=CalibratedClassifierCV(svm, method="sigmoid", cv=splits, ensemble=few))
        best.fit(features, labels)
    return FittedClassifier(
        classifier=classifier,
        pipeline=best,
        best_params=_unprefixed(search.best_params_),
        inner_score=float(search.best_score_),
        inner_speakers=[
            {"train": sorted(set(speakers[train])), "test": sorted(set(speakers[test]))} for train, test in splits
        ],
        grid=_grid_points(search),
    )


def probabilities_for(pipeline: Pipeline, features: np.ndarray, num_labels: int) -> np.ndarray:
    """``(n, num_labels)`` class probabilities, with zero columns for classes absent from the training rows.

    A fold whose training part lacks a class gives a model with fewer ``classes_``; the columns are
    placed by class id so every fold's probabilities line up with the label names.
    """
    probabilities = np.zeros((len(features), num_labels))
    probabilities[:, pipeline.classes_.astype(int)] = pipeline.predict_proba(features)
    return probabilities
