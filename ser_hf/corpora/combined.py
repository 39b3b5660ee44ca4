"""Several corpora as one dataset, for a model trained on all of them, and its speaker-independent folds.

:func:`load_combined` loads each corpus with :func:`~ser_hf.corpora.load_corpus` and the same emotion
subset, checks that every corpus gives the same ``ClassLabel`` names in the same order, prefixes each
speaker with its corpus (``urdu/SM1``), so two corpora never share a speaker id by accident, and
concatenates them. Every column of every corpus is kept: a corpus's own metadata column is empty
(``None``) in the rows of the other corpora. The ``corpus`` column tells the rows apart.

:func:`combined_folds` keeps each corpus's own protocol: fold *i* tests fold *i* of every corpus that has
one (URDU: 5 speaker-grouped folds; RAVDESS: its 6 folds of 4 actors), so every clip is tested exactly
once, by a model that never heard its speaker, and per-corpus scores come from the same folds as a
single-corpus run. :func:`combined_speaker_split` does the same for one train/validation/test split: each
corpus is split by speaker on its own, so every corpus has its share in every part.

Example:
    ```python
    >>> from ser_hf.corpora.combined import combined_folds, load_combined
    >>> ds = load_combined({"urdu": "../shared/data/urdu", "ravdess": "../shared/data/ravdess"},  # doctest: +SKIP
    ...                    emotions="4class")
    >>> ds.features["label"].names, sorted(set(ds["corpus"]))  # doctest: +SKIP
    (['neutral', 'happy', 'sad', 'angry'], ['ravdess', 'urdu'])
    >>> len(combined_folds(ds))  # doctest: +SKIP
    6

    ```
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from ser_hf.corpora import load_corpus, validate_dataset
from ser_hf.corpora.splits import Fold, check_speaker_disjoint, corpus_folds, speaker_split
from ser_hf.errors import CorpusError

__all__ = ["SPEAKER_SEPARATOR", "combined_folds", "combined_speaker_split", "leave_one_corpus_out_folds", "load_combined"]

#: Between the corpus name and the corpus's own speaker id in the combined ``speaker`` column.
SPEAKER_SEPARATOR = "/"


def load_combined(
    sources: Mapping[str, str | os.PathLike],
    *,
    emotions: str | Sequence[str] | None = "4class",
    **options: Any,
) -> datasets.Dataset:
    """Load several corpora with one emotion subset into one dataset.

    Args:
        sources: Corpus name -> its folder, e.g. ``{"urdu": "data/urdu", "ravdess": "data/ravdess"}``;
            the rows keep this order.
        emotions: The emotion subset every corpus is cut to (default ``"4class"``: neutral, happy, sad,
            angry); it must give every corpus the same label names.
        **options: Passed to every :func:`~ser_hf.corpora.load_corpus` call (``strict``, ``check_audio``...).

    Returns:
        A ``datasets.Dataset`` with the uniform columns; ``speaker`` is ``"<corpus>/<speaker>"``.

    Raises:
        CorpusError: fewer than two corpora, or corpora whose label names differ under ``emotions``
            (the message shows each corpus's names).
    """
    if len(sources) < 2:
        raise CorpusError(
            f"load_combined needs at least two corpora (name -> folder), got {dict(sources)}; load a single corpus "
            f"with ser_hf.corpora.load_corpus."
        )
    parts = {name: load_corpus(name, data_dir, emotions=emotions, **options) for name, data_dir in sources.items()}
    names = {corpus: part.features["label"].names for corpus, part in parts.items()}
    if len({tuple(label_names) for label_names in names.values()}) > 1:
        raise CorpusError(
            f"load_combined: the corpora give different label names under emotions={emotions!r}: {names}. Pass an "
            f"emotion subset all of them have, e.g. emotions='4class'."
        )
    features: dict[str, Any] = {}
    for part in parts.values():
        for name, feature in part.features.items():
            features.setdefault(name, feature)
    columns: dict[str, list] = {name: [] for name in features}
    for corpus, part in parts.items():
        for name in features:
            values = part[name] if name in part.column_names else [None] * len(part)
            if name == "speaker":
                values = [f"{corpus}{SPEAKER_SEPARATOR}{speaker}" for speaker in values]
            columns[name] += values
    combined = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    validate_dataset(combined, source=f"the combined corpora {list(sources)}")
    return combined


def combined_folds(dataset: datasets.Dataset, n_folds: int = 5, seed: int = 0) -> list[Fold]:
    """Speaker-independent folds of a combined dataset: fold *i* tests fold *i* of each corpus.

    Each corpus gets :func:`~ser_hf.splits.corpus_folds` (its own protocol, else ``n_folds`` speaker-grouped
    folds); a corpus with fewer folds than another is simply not tested in the last folds (it is all
    training there). A dataset of one corpus gets that corpus's folds.

    Args:
        dataset: From :func:`load_combined` (needs the ``corpus`` column).
        n_folds: Folds for corpora without a protocol of their own.
        seed: Seed of the speaker-to-fold assignment.

    Returns:
        One :class:`~ser_hf.splits.Fold` per fold (row indices into ``dataset``), checked speaker-disjoint.

    Raises:
        CorpusError: without a ``corpus`` column.
    """
    tests: list[list[np.ndarray]] = []
    for rows in _corpus_rows(dataset, "combined_folds").values():
        for number, fold in enumerate(corpus_folds(dataset.select(rows), n_folds=n_folds, seed=seed)):
            if number == len(tests):
                tests.append([])
            tests[number].append(rows[fold.test])
    everything = np.arange(len(dataset))
    folds = []
    for number, parts in enumerate(tests, start=1):
        test = np.sort(np.concatenate(parts))
        fold = Fold(f"fold{number}", np.setdiff1d(everything, test), test)
        check_speaker_disjoint(dataset, fold.parts())
        folds.append(fold)
    return folds


def leave_one_corpus_out_folds(dataset: datasets.Dataset) -> list[Fold]:
    """One fold per corpus, named after it: trained on every other corpus, tested on all of this one.

    Args:
        dataset: From :func:`load_combined` (needs the ``corpus`` column).

    Returns:
        One :class:`~ser_hf.splits.Fold` per corpus, in the dataset's corpus order.

    Raises:
        CorpusError: without a ``corpus`` column, or with fewer than two corpora.
    """
    rows_by_corpus = _corpus_rows(dataset, "leave_one_corpus_out_folds")
    if len(rows_by_corpus) < 2:
        raise CorpusError(
            f"leave-one-corpus-out needs at least two corpora, found {sorted(rows_by_corpus)}; name several, e.g. "
            f"corpus: urdu,ravdess."
        )
    everything = np.arange(len(dataset))
    folds = []
    for corpus, rows in rows_by_corpus.items():
        fold = Fold(corpus, np.setdiff1d(everything, rows), rows)
        check_speaker_disjoint(dataset, fold.parts())
        folds.append(fold)
    return folds


def _corpus_rows(dataset: datasets.Dataset, caller: str) -> dict[str, np.ndarray]:
    """Row indices of each corpus, in order of first appearance."""
    if "corpus" not in dataset.column_names:
        raise CorpusError(
            f"{caller} needs a 'corpus' column (found {sorted(dataset.column_names)}); build the dataset "
            f"with ser_hf.corpora.combined.load_combined."
        )
    corpora = np.asarray(dataset["corpus"], dtype=object)
    return {corpus: np.flatnonzero(corpora == corpus) for corpus in dict.fromkeys(corpora)}


def combined_speaker_split(
    dataset: datasets.Dataset, test_size: float = 0.2, validation_size: float = 0.1, seed: int = 0, *,
    settings: Mapping[str, str] | None = None,
) -> datasets.DatasetDict:
    """One speaker-independent train/validation/test split of a combined dataset, made within each corpus.

    Each corpus is split with :func:`~ser_hf.splits.speaker_split` (about ``test_size`` of its clips, by whole
    speakers, for test; ``validation_size`` for validation), and the parts are concatenated corpus by corpus,
    so a small corpus is not left out of the test part by chance.

    Args:
        dataset: From :func:`load_combined` (needs the ``corpus`` column).
        test_size: Share of each corpus's clips held out for test.
        validation_size: Share of each corpus's clips held out for validation.
        seed: Seed of every corpus's split.
        settings: How the caller's user sets each size, for split errors to name it as a single corpus's do (see
            :func:`~ser_hf.splits.speaker_split`).

    Returns:
        A ``DatasetDict`` with the non-empty parts among ``train``, ``validation`` and ``test``.

    Raises:
        CorpusError: without a ``corpus`` column.
        SplitError: a corpus with too few speakers for the parts asked for.
    """
    parts: dict[str, list[datasets.Dataset]] = {}
    for rows in _corpus_rows(dataset, "combined_speaker_split").values():
        for name, part in speaker_split(dataset.select(rows), test_size, validation_size, seed,
                                        settings=settings).items():
            parts.setdefault(name, []).append(part)
    return datasets.DatasetDict({name: datasets.concatenate_datasets(pieces) for name, pieces in parts.items()})
