"""Speaker-independent splits: no speaker is ever in two parts of a split.

All splits are reproducible from a seed, stratified by emotion as far as the speaker groups allow
(scikit-learn's ``StratifiedGroupKFold``), and checked for speaker overlap before they are returned.
A corpus's own protocol (:func:`corpus_folds`: RAVDESS's actor folds, IEMOCAP's sessions) is a fact of the
corpus registry, which is why the splits live in :mod:`ser_hf.corpora`; import them from :mod:`ser_hf.splits`.

Example:
    >>> from ser_hf.corpora import load_corpus
    >>> from ser_hf.splits import corpus_folds, class_counts
    >>> ds = load_corpus("urdu", "../shared/data/urdu")  # doctest: +SKIP
    >>> folds = corpus_folds(ds)  # 5 speaker-grouped folds (URDU defines none of its own)  # doctest: +SKIP
    >>> print(class_counts(ds, folds))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ser_hf.corpora import CORPORA
from ser_hf.corpora.listings import file_identity
from ser_hf.corpora.split_names import SPLIT_SPELLINGS, split_names, unknown_split_values
from ser_hf.corpora.split_sizes import MAX_HOLDOUT_SHARE, as_sentence, check_split_sizes, fewer_folds, refuse_over_half
from ser_hf.errors import SplitError

logger = logging.getLogger(__name__)

#: How a run's parts were made, as reports, run records and cards name it.
SPEAKER_INDEPENDENT = "speaker-independent"
RANDOM_SPLIT = "random split (speakers may overlap)"
# Speaker id given to each clip of data without speakers when a random split is allowed: one "speaker" per clip
# turns every speaker-grouped splitter into a clip-level stratified one, and the bootstrap into a clip-level one.
# The prefix is how split_kind recognises such data after any select or concatenation.
_CLIP_SPEAKER_PREFIX = "random-split-clip-"
# How ser-hf's commands set the number of folds (data split --folds, cv --num_folds): what fold errors name by default.
_FOLDS_SETTING = "n_folds (--folds, --num_folds)"
#: Seeds are taken modulo this: scikit-learn and numpy take 0 .. 2**32 - 1.
SEED_LIMIT = 2**32



@dataclass(frozen=True)
class Fold:
    """Row indices of one fold: train on ``train`` (early-stop on ``validation``), test on ``test``."""

    name: str
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def parts(self) -> dict[str, np.ndarray]:
        """The non-empty parts by name, in train/validation/test order."""
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        return {name: rows for name, rows in parts.items() if len(rows)}


def speakers_of(dataset: datasets.Dataset) -> np.ndarray:
    """The ``speaker`` column as an array; raises :class:`SplitError` if any speaker is unknown."""
    if "speaker" not in dataset.column_names:
        raise SplitError("The dataset has no 'speaker' column; speaker-independent splits need one.")
    speakers = np.asarray(dataset["speaker"], dtype=object)
    unknown = int(sum(s is None or s == "" for s in speakers))
    if unknown:
        raise SplitError(
            f"{unknown} of {len(speakers)} clips have no speaker, so a speaker-independent split is impossible. "
            f"For a 'folder' corpus pass speaker_pattern=..., for a manifest fill its 'speaker' column."
        )
    return speakers


def clips_as_speakers(dataset: datasets.Dataset) -> datasets.Dataset:
    """The dataset with each clip as its own speaker, for a random split of data whose speakers are unknown."""
    ids = [f"{_CLIP_SPEAKER_PREFIX}{row}" for row in range(len(dataset))]
    return dataset.remove_columns("speaker").add_column("speaker", ids, feature=datasets.Value("string"))


def split_kind(dataset: datasets.Dataset) -> str:
    """:data:`RANDOM_SPLIT` for clips made their own speakers by :func:`clips_as_speakers`, else :data:`SPEAKER_INDEPENDENT`."""
    speakers = dataset["speaker"] if "speaker" in dataset.column_names else []
    random = bool(speakers) and all(str(s).startswith(_CLIP_SPEAKER_PREFIX) for s in speakers)
    return RANDOM_SPLIT if random else SPEAKER_INDEPENDENT


def check_speaker_disjoint(dataset: datasets.Dataset, parts: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`SplitError` if any speaker appears in two of ``parts`` (name -> row indices)."""
    speakers = speakers_of(dataset)
    seen: dict[str, str] = {}
    for name, rows in parts.items():
        for speaker in sorted(set(speakers[np.asarray(rows, dtype=np.int64)])):
            if speaker in seen and seen[speaker] != name:
                raise SplitError(f"Speaker {speaker!r} is in both {seen[speaker]!r} and {name!r}: the split leaks.")
            seen[speaker] = name
    _check_files_disjoint(dataset, parts)


def _check_files_disjoint(dataset: datasets.Dataset, parts: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`SplitError` if one audio file (:func:`~ser_hf.corpora.listings.file_identity`: symlinks and hard
    links resolved) is in two parts, e.g. linked under two names."""
    if "audio" not in dataset.column_names or len(parts) < 2:
        return
    audio = dataset["audio"]
    owner: dict[tuple[int, int] | str, tuple[str, str]] = {}
    for name, rows in parts.items():
        for row in np.asarray(rows, dtype=np.int64).tolist():
            if not isinstance(audio[row], str):
                return  # decoded or embedded audio: no file to compare
            first = owner.setdefault(file_identity(audio[row]), (name, audio[row]))
            if first[0] != name:
                real = os.path.realpath(first[1])
                raise SplitError(f"The audio file {real!r} is in both {first[0]!r} (as {first[1]!r}) and {name!r} (as "
                                 f"{audio[row]!r}): the split leaks. List each recording once, under one speaker.")


def _grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int,
                   setting: str = _FOLDS_SETTING) -> list[np.ndarray]:
    """Test-row positions of ``n_folds`` speaker-grouped, emotion-stratified folds, none of them empty.

    scikit-learn's ``StratifiedGroupKFold`` makes them. Where it cannot -- it raises when every emotion has
    fewer clips than folds, and it may leave a fold without speakers -- the same greedy stratification is
    done here without that guard, and empty folds get a speaker from the fold with the most. Where
    scikit-learn succeeds, its folds are returned unchanged (so published fold assignments do not move). ``seed`` is
    taken modulo :data:`SEED_LIMIT`.
    """
    n_groups = len(set(groups))
    if n_folds < 2:
        # Too few folds is never fixed by "fewer"; one fold would test on every speaker and train on none.
        raise SplitError(
            f"{setting}={n_folds}: the number of speaker-grouped folds must be an integer >= 2 (each fold tests "
            f"speakers the others train on), got {n_folds}. Choose 2 to {n_groups} folds."
            if n_groups >= 2 else
            f"{setting}={n_folds}: the number of speaker-grouped folds must be an integer >= 2, got {n_folds}, and "
            f"the data has {n_groups} speaker(s); use data with at least 2 speakers."
        )
    if n_folds > n_groups:
        raise SplitError(
            f"{setting}={n_folds}: Cannot make {n_folds} speaker-grouped folds from {n_groups} speakers; "
            f"expected 2 <= folds <= {n_groups}. Choose fewer folds, or use data with more speakers."
        )
    seed %= SEED_LIMIT  # a seed derived past the largest (fold_seed + 1, for validation) wraps round, not fails
    if np.all(np.unique(labels, return_counts=True)[1] < n_folds):  # scikit-learn's refusal: no other ValueError
        logger.info("Every emotion has fewer clips than the %d folds asked for, so scikit-learn cannot "
                    "stratify them; ser_hf balances the emotions across folds itself.", n_folds)
        folds = _balanced_grouped_folds(labels, groups, n_folds, seed)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # "The least populated class in y has only N members": expected with few speakers; said in our
            # own words by note_missing_classes, once.
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            folds = [np.asarray(test, dtype=np.int64)
                     for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]
    if any(len(test) == 0 for test in folds):
        logger.info("Stratifying %d speakers into %d folds left a fold without speakers; a speaker was moved "
                    "into each empty fold from the fold with the most.", n_groups, n_folds)
        folds = _fill_empty_folds(folds, groups)
    return folds


def grouped_kfold(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int,
                  setting: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` row positions of speaker-grouped, emotion-stratified folds, as scikit-learn's
    ``StratifiedGroupKFold.split`` gives them (identical wherever it succeeds), for the inner CVs that choose a
    model's settings: on a small corpus it neither raises nor leaves a fold empty (see :func:`_grouped_folds`).

    Args:
        setting: How the user sets ``n_folds`` (``probe_inner_folds``, ``--inner-folds``), for the error.
    """
    rows = np.arange(len(labels))
    return [(np.setdiff1d(rows, test), test)
            for test in _grouped_folds(np.asarray(labels), np.asarray(groups), n_folds, seed, setting)]


def _balanced_grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Speakers to folds by ``StratifiedGroupKFold``'s greedy rule (each speaker, most uneven first, to the
    fold that keeps every emotion's share across folds most even; ties to the fold with fewest clips)."""
    speakers, speaker_of_row = np.unique(groups.astype(str), return_inverse=True)
    classes, class_of_row = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(speakers), len(classes)))
    np.add.at(counts, (speaker_of_row, class_of_row), 1)
    totals = counts.sum(axis=0)
    order = np.random.default_rng(seed).permutation(len(speakers))
    order = order[np.argsort(-counts[order].std(axis=1), kind="mergesort")]
    per_fold = np.zeros((n_folds, len(classes)))
    fold_of = np.zeros(len(speakers), dtype=np.int64)
    for speaker in order:
        scores = []
        for fold in range(n_folds):
            per_fold[fold] += counts[speaker]
            scores.append((float(np.mean(np.std(per_fold / totals, axis=0))), float(per_fold[fold].sum() - counts[speaker].sum())))
            per_fold[fold] -= counts[speaker]
        fold_of[speaker] = min(range(n_folds), key=lambda f: (round(scores[f][0], 12), scores[f][1], f))
        per_fold[fold_of[speaker]] += counts[speaker]
    return [np.flatnonzero(fold_of[speaker_of_row] == fold) for fold in range(n_folds)]


def _fill_empty_folds(folds: list[np.ndarray], groups: np.ndarray) -> list[np.ndarray]:
    """Give every empty fold one speaker: the one with fewest clips, from the fold with the most speakers."""
    groups = groups.astype(str)
    owner = {speaker: number for number, test in enumerate(folds) for speaker in set(groups[test])}
    for empty in [number for number, test in enumerate(folds) if len(test) == 0]:
        speakers_per_fold = Counter(owner.values())
        donor = max(speakers_per_fold, key=lambda f: (speakers_per_fold[f], -f))
        moved = min((s for s, f in owner.items() if f == donor), key=lambda s: (int(np.sum(groups == s)), s))
        owner[moved] = empty
    fold_of_row = np.asarray([owner[speaker] for speaker in groups], dtype=np.int64)
    return [np.flatnonzero(fold_of_row == number) for number in range(len(folds))]


def _holdout(rows: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int,
             part: str = "validation", setting: str | None = None, within: str = "",
             frees: Sequence[str] = ()) -> tuple:
    """Split ``rows`` into (kept, held out) with about ``fraction`` of them held out, by speaker: the first of
    ``round(1 / fraction)`` speaker-grouped folds (at most one per speaker), so never more than about half of them.

    ``part``, ``setting``, ``within`` and ``frees`` only word the errors: which part is held out, how the user sets
    its size (``None``: the caller cannot, so the error does not tell them to), where it comes from (e.g. "fold2's
    training speakers"), and how else the user can leave it more speakers (e.g. "use fewer folds (--num_folds)").

    Raises:
        SplitError: ``fraction`` above :data:`MAX_HOLDOUT_SHARE`, or fewer than 2 speakers in ``rows``; the second
            has a ``part`` attribute (``part``), for a caller that needs that part to say why.
    """
    if fraction <= 0:
        return rows, np.zeros(0, dtype=np.int64)
    name, where = setting or f"{part}_size", within or "the speakers left"
    refuse_over_half(name, fraction, fraction, f"the clips of {where}", part, MAX_HOLDOUT_SHARE)
    n_folds = max(2, round(1 / fraction))
    speakers = sorted(set(groups[rows]))
    if len(speakers) < 2:
        fixes = ([f"set {setting} to 0 to make no {part} part"] if setting else []) + list(frees) + [
            "use data with more speakers"]
        error = SplitError(
            f"{name} asks for a {part} part, but {where} are only {len(speakers)} ({speakers}), and a "
            f"speaker-independent {part} part needs at least 2 (one to hold out, one to train on). " + as_sentence(fixes)
        )
        error.part = part
        raise error
    held = _grouped_folds(labels[rows], groups[rows], min(n_folds, len(speakers)), seed, setting=name)[0]
    mask = np.zeros(len(rows), dtype=bool)
    mask[held] = True
    return rows[~mask], rows[mask]


def speaker_split(
    dataset: datasets.Dataset, test_size: float = 0.2, validation_size: float = 0.1, seed: int = 0, *,
    settings: Mapping[str, str] | None = None,
) -> datasets.DatasetDict:
    """One speaker-independent train/validation/test split, stratified by emotion.

    Sizes are fractions of clips, met as closely as whole speakers allow: each part is held out as one of
    ``round(1 / share)`` speaker-grouped folds (the validation part's share is of the clips the test part leaves),
    so no part is more than half of the clips it is taken from.

    Args:
        settings: How the caller's user sets each size, by parameter name (``{"validation_size":
            "validation_size (--validation_size)"}``); errors advise changing only the settings named here.

    Raises:
        SplitError: sizes outside [0, 1), adding up to 1 or more, or a part over half of the clips it is taken from
            (it would silently be about half); too few speakers for the parts asked for.
    """
    settings = settings or {}
    for name, value in (("test_size", test_size), ("validation_size", validation_size)):
        if not 0 <= value < 1:
            raise SplitError(f"{name} must be a fraction in [0, 1), got {value}.")
    check_split_sizes(test_size, validation_size, settings)
    labels, groups = np.asarray(dataset["label"]), speakers_of(dataset)
    rows = np.arange(len(dataset))
    rest, test = _holdout(rows, labels, groups, test_size, seed, "test", settings.get("test_size"),
                          "the corpus's speakers")
    frees = [f"hold fewer speakers out for test (a lower {settings['test_size']}, or 0 for no test part)"] if (
        test_size and "test_size" in settings) else []
    train, validation = _holdout(rest, labels, groups, validation_size / max(1e-9, 1 - test_size), seed + 1,
                                 setting=settings.get("validation_size"), within="the speakers left after the test part",
                                 frees=frees)
    fold = Fold("split", train, test, validation)
    note_missing_classes(dataset, [fold])
    return select_fold(dataset, fold)


def split_with_test(
    dataset: datasets.Dataset, test: np.ndarray, validation_size: float = 0.1, seed: int = 0, *,
    settings: Mapping[str, str] | None = None, marked_by: str | None = None,
) -> datasets.DatasetDict:
    """Train/validation/test with a given test part (e.g. a dataset's own test split); validation speakers are
    held out of the other rows as in :func:`speaker_split` (``settings`` as there).

    Args:
        marked_by: What marks the ``test`` rows, where the user marks them row by row (e.g. "the split column of
            manifest data/m.csv"), for the error to say where to fix a speaker with rows on both sides.

    Raises:
        SplitError: when a test speaker also has clips outside the test part.
    """
    labels, groups = np.asarray(dataset["label"]), speakers_of(dataset)
    rest = np.setdiff1d(np.arange(len(dataset)), test)
    shared = sorted(set(groups[rest]) & set(groups[np.asarray(test, dtype=np.int64)]))
    if shared and marked_by:
        raise SplitError(f"{len(shared)} speaker(s) have rows that {marked_by} marks as test and rows it does not "
                         f"(e.g. {shared[:5]}), so the test scores would not be speaker-independent. Mark all of a "
                         f"speaker's rows test there, or none of them (or clear the marks to let ser_hf hold test "
                         f"speakers out itself).")
    if shared:
        raise SplitError(f"{len(shared)} speaker(s) of the test part also speak in the training rows (e.g. "
                         f"{shared[:5]}), so its scores would not be speaker-independent. Use a test split of other "
                         f"speakers, or leave the test split unset to hold speakers out of the training rows.")
    train, validation = _holdout(rest, labels, groups, validation_size, seed + 1,
                                 setting=(settings or {}).get("validation_size"),
                                 within="the speakers outside the test part")
    fold = Fold("split", train, np.asarray(test, dtype=np.int64), validation)
    note_missing_classes(dataset, [fold])
    return select_fold(dataset, fold)


def speaker_folds(
    dataset: datasets.Dataset, n_folds: int = 5, seed: int = 0, validation_size: float = 0.0, *,
    settings: Mapping[str, str] | None = None,
) -> list[Fold]:
    """K folds grouped by speaker and stratified by emotion; each fold's test speakers are unseen in training.

    Args:
        n_folds: Number of folds (2 .. number of speakers).
        seed: Seed of the shuffle; the same seed gives the same folds.
        validation_size: If > 0, also hold out about this fraction of each fold's training clips (by
            speaker) for model selection, so the test fold is never used for early stopping.
        settings: How the caller's user sets ``n_folds`` and ``validation_size``, by parameter name
            (``{"n_folds": "--num_folds"}``); errors advise changing only the settings named here (``n_folds``
            defaults to ``"n_folds (--folds, --num_folds)"``).
    """
    settings = {"n_folds": _FOLDS_SETTING, **(settings or {})}
    labels, groups = np.asarray(dataset["label"]), speakers_of(dataset)
    folds = []
    for number, test in enumerate(_grouped_folds(labels, groups, n_folds, seed, settings["n_folds"]), start=1):
        train = np.setdiff1d(np.arange(len(dataset)), test)
        train, validation = _holdout(train, labels, groups, validation_size, seed + number,
                                     setting=settings.get("validation_size"),
                                     within=f"fold{number}'s training speakers", frees=fewer_folds(settings))
        folds.append(_checked(dataset, Fold(f"fold{number}", train, test, validation)))
    note_missing_classes(dataset, folds)
    return folds


def leave_one_speaker_out(dataset: datasets.Dataset) -> list[Fold]:
    """One fold per speaker, tested on that speaker alone.

    Raises:
        SplitError: fewer than 2 speakers (a fold would have no training speakers), or a clip without one.
    """
    groups = speakers_of(dataset)
    speakers = sorted(set(groups))
    if len(speakers) < 2:
        raise SplitError(
            f"Leave-one-speaker-out needs at least 2 speakers (each fold trains on the others), but the data has "
            f"{len(speakers)} ({speakers}). Use data with more speakers, or fill the speaker ids if they are wrong."
        )
    rows = np.arange(len(dataset))
    folds = [
        _checked(dataset, Fold(f"speaker_{speaker}", rows[groups != speaker], rows[groups == speaker]))
        for speaker in speakers
    ]
    note_missing_classes(dataset, folds)
    return folds


def predefined_folds(dataset: datasets.Dataset, column: str) -> list[Fold]:
    """One fold per value of ``column`` (e.g. RAVDESS ``fold``, IEMOCAP ``session``), tested on that value."""
    if column not in dataset.column_names:
        raise SplitError(f"Column {column!r} is missing; found {sorted(dataset.column_names)}.")
    values = np.asarray(dataset[column], dtype=object)
    rows = np.arange(len(dataset))
    folds = [
        _checked(dataset, Fold(f"{column}{value}", rows[values != value], rows[values == value]))
        for value in sorted(set(values))
    ]
    note_missing_classes(dataset, folds)
    return folds


def corpus_folds(dataset: datasets.Dataset, n_folds: int = 5, seed: int = 0) -> list[Fold]:
    """The corpus's own protocol: its defined folds (RAVDESS 6 x 4 actors, IEMOCAP sessions) if it has
    them, otherwise ``n_folds`` speaker-grouped folds."""
    names = set(dataset["corpus"]) if "corpus" in dataset.column_names else set()
    corpus = CORPORA.get(names.pop()) if len(names) == 1 else None
    # The column check keeps a `datasets` dataset that happens to be named like a corpus (a folder called
    # 'ravdess') on speaker-grouped folds: only the corpus's own loader makes its fold column.
    if corpus is not None and corpus.fold_column is not None and corpus.fold_column in dataset.column_names:
        return predefined_folds(dataset, corpus.fold_column)
    return speaker_folds(dataset, n_folds=n_folds, seed=seed)


def predefined_split(dataset: datasets.Dataset, column: str = "split") -> datasets.DatasetDict:
    """Split by a column of split names (a manifest's ``split``), checking speakers do not overlap.

    Values are read by :func:`split_name`: ``Test``, ``TEST `` and ``testing`` are all the ``test`` part, ``dev`` the
    ``validation`` part. Another value becomes a part of its own, named in a warning.

    Raises:
        SplitError: the column is missing, a clip has no split (blank, ``NA``), or the parts share a speaker.
    """
    if column not in dataset.column_names:
        raise SplitError(f"Column {column!r} is missing; found {sorted(dataset.column_names)}.")
    raw = dataset[column]
    names = split_names(raw)
    blank = [row for row, name in enumerate(names) if name is None]
    if blank:
        shown = sorted({repr(raw[row]) for row in blank})[:5]
        raise SplitError(f"{len(blank)} of {len(names)} clips have no {column!r} value (rows {blank[:5]}"
                         f"{' ...' if len(blank) > 5 else ''}: {', '.join(shown)}, blank or a missing-value marker); "
                         f"expected a split name for every row. Fill it (train/validation/test) for those rows.")
    other = unknown_split_values(names)
    if other:
        logger.warning("the %r column holds %s (value: clips), none of the split names %s; each such value is a part "
                       "of its own. Write train, validation or test if that is what they mean.", column,
                       dict(other.most_common()), {split: list(spellings) for split, spellings in SPLIT_SPELLINGS.items()})
    order = [split for split in SPLIT_SPELLINGS if split in names] + sorted(other)
    values = np.asarray(names, dtype=object)
    parts = {name: np.flatnonzero(values == name) for name in order}
    check_speaker_disjoint(dataset, parts)
    return datasets.DatasetDict({name: dataset.select(rows) for name, rows in parts.items()})


def add_validation(dataset: datasets.Dataset, fold: Fold, validation_size: float, seed: int = 0, *,
                   settings: Mapping[str, str] | None = None) -> Fold:
    """The same fold with about ``validation_size`` of its training clips (whole speakers) held out.

    ``settings``: how the caller's user sets ``validation_size`` and ``n_folds`` (see :func:`speaker_folds`);
    errors advise changing only those.
    """
    settings = settings or {}
    labels, groups = np.asarray(dataset["label"]), speakers_of(dataset)
    train, validation = _holdout(fold.train, labels, groups, validation_size, seed,
                                 setting=settings.get("validation_size"), within=f"{fold.name}'s training speakers",
                                 frees=fewer_folds(settings))
    return _checked(dataset, Fold(fold.name, train, fold.test, validation))


def note_missing_classes(dataset: datasets.Dataset, folds: Sequence[Fold]) -> None:
    """Say once which emotions some folds train without (a warning: their models cannot predict them) and
    which some folds test without (a note: pooled scores still cover them), naming the emotions and folds."""
    names = dataset.features["label"].names if isinstance(dataset.features.get("label"), datasets.ClassLabel) else None
    labels, speakers = np.asarray(dataset["label"]), np.asarray(dataset["speaker"], dtype=object)
    for part, say in (("train", logger.warning), ("test", logger.info)):
        missing: dict[int, list[str]] = {}
        for fold in folds:
            if not len(getattr(fold, part)):
                continue  # no such part (test_size 0): nothing is tested without an emotion
            present = set(labels[getattr(fold, part)].tolist())
            for label in sorted(set(labels.tolist()) - present):
                missing.setdefault(label, []).append(fold.name)
        for label, fold_names in missing.items():
            name = names[label] if names else str(label)
            voices = sorted(set(speakers[labels == label].tolist()))
            shown = ", ".join(fold_names[:10]) + (f" and {len(fold_names) - 10} more" if len(fold_names) > 10 else "")
            consequence = ("their models never see it, so they cannot predict it" if part == "train"
                           else "pooled scores over all folds still include it")
            say("Emotion %r has clips from only %d speaker(s) (%s), so %s %s without it: %s.", name, len(voices),
                ", ".join(map(str, voices[:5])) + (" ..." if len(voices) > 5 else ""), shown, part, consequence)


def _checked(dataset: datasets.Dataset, fold: Fold) -> Fold:
    check_speaker_disjoint(dataset, fold.parts())
    return fold


def select_fold(dataset: datasets.Dataset, fold: Fold) -> datasets.DatasetDict:
    """The fold's parts as a ``DatasetDict`` (after checking their speakers are disjoint)."""
    _checked(dataset, fold)
    return datasets.DatasetDict({name: dataset.select(rows) for name, rows in fold.parts().items()})


def class_counts(dataset: datasets.Dataset, splits: Sequence[Fold] | datasets.DatasetDict) -> pd.DataFrame:
    """A table of clips per emotion (columns) for every part of every fold (rows), with speaker counts.

    Example output for one fold::

                         neutral  happy  sad  angry  total  speakers
        fold1/train           80     80   80     80    320        23
        fold1/test            20     20   20     20     80         6
    """
    names = dataset.features["label"].names
    rows = {}
    if isinstance(splits, datasets.DatasetDict):
        parts = {name: (np.asarray(part["label"]), part["speaker"]) for name, part in splits.items()}
    else:
        labels, speakers = np.asarray(dataset["label"]), np.asarray(dataset["speaker"], dtype=object)
        parts = {f"{f.name}/{p}": (labels[r], speakers[r]) for f in splits for p, r in f.parts().items()}
    for name, (labels, speakers) in parts.items():
        counts = np.bincount(labels, minlength=len(names))
        rows[name] = {**dict(zip(names, counts.tolist())), "total": int(counts.sum()), "speakers": len(set(speakers))}
    return pd.DataFrame.from_dict(rows, orient="index")
