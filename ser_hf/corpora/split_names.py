"""What a split name means: one reading of a manifest's ``split`` column and of an audiofolder's split folders.

``Test``, ``TEST `` and ``testing`` all name the test part, ``dev`` the validation part, as ``datasets`` reads split
names; a blank cell or a missing-value marker names none. :func:`~ser_hf.corpora.splits.predefined_split`,
``ser-hf train``, ``ser-hf data split`` and the audiofolder reader all read split names here, so they can never
disagree on which clips are test clips.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_hf.corpora.base import is_missing
from ser_hf.errors import SplitError

__all__ = [
    "SPLIT_SPELLINGS", "TEST_SPLIT_VALUES", "TRAIN_SPLIT_VALUES", "check_some_rows_to_train_on", "marked_test_rows",
    "split_name", "unknown_split_values",
]

logger = logging.getLogger(__name__)

#: The split each spelling of a split name means, as ``datasets`` reads split names (its ``SPLIT_KEYWORDS``): the one
#: reading (:func:`split_name`) of a manifest's ``split`` column (:func:`predefined_split`, ``ser-hf train``,
#: ``ser-hf data split``) and of an audiofolder's split folders.
SPLIT_SPELLINGS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
                   "test": ("test", "testing", "eval", "evaluation")}
#: Split-column values (any case, surrounding spaces ignored) that mark a manifest row as a test clip.
TEST_SPLIT_VALUES = SPLIT_SPELLINGS["test"]
#: Values of rows ``ser-hf train`` trains on; blanks too. It holds its own validation speakers out of all training
#: rows, so ``validation`` rows are training rows like the rest.
TRAIN_SPLIT_VALUES = SPLIT_SPELLINGS["train"] + SPLIT_SPELLINGS["validation"]
_SPLIT_OF = {spelling: split for split, spellings in SPLIT_SPELLINGS.items() for spelling in spellings}


def split_name(value: Any) -> str | None:
    """The split a split-column value or split folder names: ``'train'``, ``'validation'`` or ``'test'`` for any
    spelling of :data:`SPLIT_SPELLINGS` in any case, surrounding spaces ignored (``'TEST '``, ``'Dev'``); ``None`` for
    a blank cell or a missing-value marker (``NA``, ``null``: :func:`~ser_hf.corpora.base.is_missing`); any other
    value as its :func:`_split_key` (``'holdout'``), which callers name in a warning."""
    if is_missing(value):
        return None
    key = _split_key(value)
    return _SPLIT_OF.get(key, key)


def _split_key(value: Any) -> str:
    return str(value).strip().casefold()


def unknown_split_values(names: Sequence[str | None]) -> Counter:
    """``{value: clips}`` of the :func:`split_name` results that are no split ser_hf knows."""
    return Counter(name for name in names if name is not None and name not in SPLIT_SPELLINGS)


def marked_test_rows(values: Sequence[Any]) -> np.ndarray:
    """The rows a manifest's ``split`` column marks as test clips (:data:`TEST_SPLIT_VALUES`, read by
    :func:`split_name`), as ``ser-hf train`` tests on them; every other row is one it trains on (``train``,
    ``validation``, blanks), since it holds its own validation speakers out of those. Any other value is warned about
    once, with its count: a typo of ``test`` would otherwise train on the clips meant to test on, without a word."""
    names = [split_name(value) for value in values]
    other = unknown_split_values(names)
    if other:
        logger.warning("the manifest's split column holds %s (value: clips), neither a test value %s nor a training "
                       "value %s; ser-hf train treats those clips as training rows. Write 'test' in the split column "
                       "for the clips to test on.", dict(other.most_common()), list(TEST_SPLIT_VALUES),
                       list(TRAIN_SPLIT_VALUES))
    return np.flatnonzero([name == "test" for name in names])


def check_some_rows_to_train_on(marked: np.ndarray, total: int) -> None:
    """Refuse a split column marking every row as test (:func:`marked_test_rows`): it leaves none to train on, and
    the split would end without a train part or with a vague error."""
    if marked.size == total:
        raise SplitError(
            f"the manifest's split column marks all {marked.size} clips as test ({list(TEST_SPLIT_VALUES)}), which "
            f"leaves none to train on; expected training rows too. Mark the clips to train on 'train' (or leave "
            f"their split cell empty), or clear the split column to let ser_hf hold out test speakers itself.")
