"""Speaker-independent splits: no speaker is ever in two parts of a split.

This is where splits are imported from; the code lives in :mod:`ser_hf.corpora.splits`, beside the corpus
registry that :func:`corpus_folds` asks for a corpus's own protocol (RAVDESS's actor folds, IEMOCAP's sessions).
All splits are reproducible from a seed, stratified by emotion as far as the speaker groups allow
(scikit-learn's ``StratifiedGroupKFold``), and checked for speaker overlap before they are returned.

Example:
    >>> from ser_hf.corpora import load_corpus
    >>> from ser_hf.splits import corpus_folds, class_counts
    >>> ds = load_corpus("urdu", "../shared/data/urdu")  # doctest: +SKIP
    >>> folds = corpus_folds(ds)  # 5 speaker-grouped folds (URDU defines none of its own)  # doctest: +SKIP
    >>> print(class_counts(ds, folds))  # doctest: +SKIP
"""

from __future__ import annotations

from ser_hf.corpora.splits import (
    RANDOM_SPLIT,
    SPEAKER_INDEPENDENT,
    Fold,
    add_validation,
    check_speaker_disjoint,
    class_counts,
    clips_as_speakers,
    corpus_folds,
    grouped_kfold,
    leave_one_speaker_out,
    predefined_folds,
    predefined_split,
    select_fold,
    speaker_folds,
    speaker_split,
    speakers_of,
    split_kind,
    split_with_test,
)

__all__ = [
    "RANDOM_SPLIT", "SPEAKER_INDEPENDENT", "Fold", "add_validation", "check_speaker_disjoint", "class_counts",
    "clips_as_speakers", "corpus_folds", "grouped_kfold", "leave_one_speaker_out", "predefined_folds", "predefined_split", "select_fold",
    "speaker_folds", "speaker_split", "speakers_of", "split_kind", "split_with_test",
]
