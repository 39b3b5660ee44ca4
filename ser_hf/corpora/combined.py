"""Several corpora as one dataset, for a model trained on all of them, and its speaker-independent folds.

:func:`load_combined` loads each corpus with :func:`~ser_hf.corpora.load_corpus` and the same emotion
subset, checks that every corpus gives the same ``ClassLabel`` names in the same order, prefixes each
speaker with its corpus (``urdu/SM1``), so two corpora never share a speaker id by accident, and
concatenates them. Every column of every corpus is kept: a corpus's own metadata column is empty
(``None``) in the rows of the other corpora. The ``corpus`` column tells the rows apart.

:func:`combined_folds` keeps each corpus's own protocol: fold *i* tests fold *i* of every corpus that has
one (URDU: 5 speaker-grouped folds; RAVDESS: its 6 folds of 4 actors), so every clip is tested exactly
once, by a model that never heard its speaker, and per-corpus scores come from the same folds as a
single-corpus run.

Example:
    ```python
    >>> from ser_hf.corpora.combined import combined_folds, load_combined
    >>> ds = load_combined({"urdu": "../shared/data/urdu", "ravdess": "../shared/data/ravdess"}, emotions="4class")
    >>> ds.features["label"].names, sorted(set(ds["corpus"]))
    (['neutral', 'happy', 'sad', 'angry'], ['ravdess', 'urdu'])
    >>> len(combined_folds(ds))
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
from ser_hf.errors import CorpusError
from ser_hf.splits import Fold, check_speaker_disjoint, corpus_folds

__all__ = ["SPEAKER_SEPARATOR", "combined_folds", "load_combined"]

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
    if "corpus" not in dataset.column_names:
        raise CorpusError(
            f"combined_folds needs a 'corpus' column (found {sorted(dataset.column_names)}); build the dataset "
            f"with ser_hf.corpora.combined.load_combined."
        )
    corpora = np.asarray(dataset["corpus"], dtype=object)
    tests: list[list[np.ndarray]] = []
    for corpus in dict.fromkeys(corpora):
        rows = np.flatnonzero(corpora == corpus)
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
