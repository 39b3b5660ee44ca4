"""What a split name means: one reading of a manifest's ``split`` column and of an audiofolder's split folders.

A split name is read as ``datasets`` reads a split folder's name (its ``data_files`` module: the keywords
``SPLIT_KEYWORDS`` and the folder patterns ``KEYWORDS_IN_DIR_NAME_BASE_PATTERNS``): a keyword alone (``test``,
``testing``, ``eval``, ``dev``...) or joined to other text by one of ``-._``, a space or a digit (``test1``,
``Test-set``, ``test_data``, ``my_test``, ``eval 2``), after NFKC normalisation (full-width ``ｔｅｓｔ``) and in any
case. A name joined to keywords of two splits (``train_test``) names none. A blank cell or a missing-value marker
names none either. :func:`~ser_hf.corpora.splits.predefined_split`, ``ser-hf train``, ``ser-hf data split`` and the
audiofolder reader all read split names here, so they can never disagree on which clips are test clips; a name
that only looks like one (``tëst``, ``test(2)``, ``testset``: :func:`split_lookalike`) is named wherever it is met.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_hf.corpora.cell_values import is_missing
from ser_hf.errors import SplitError
from ser_hf.paths import printable

try:  # reused, not copied, so the reading follows the installed datasets
    from datasets.data_files import KEYWORDS_IN_DIR_NAME_BASE_PATTERNS, NON_WORDS_CHARS, SPLIT_KEYWORDS
except ImportError:  # pragma: no cover - mirrored from datasets 5.2, src/datasets/data_files.py
    SPLIT_KEYWORDS = {"train": ["train", "training"], "validation": ["validation", "valid", "dev", "val"],
                      "test": ["test", "testing", "eval", "evaluation"]}
    NON_WORDS_CHARS = "-._ 0-9"
    KEYWORDS_IN_DIR_NAME_BASE_PATTERNS = ["**/{keyword}/**", "**/{keyword}[{sep}]*/**", "**/*[{sep}]{keyword}/**",
                                          "**/*[{sep}]{keyword}[{sep}]*/**"]

__all__ = [
    "SPLIT_NAME_RULE", "SPLIT_SPELLINGS", "TEST_SPLIT_VALUES", "TRAIN_SPLIT_VALUES", "check_some_rows_to_train_on",
    "lookalike_note", "marked_test_rows", "split_lookalike", "split_name", "split_names", "splits_named",
    "unknown_split_values",
]

logger = logging.getLogger(__name__)

#: The split each keyword names, as ``datasets`` reads split names (its ``SPLIT_KEYWORDS``): the one reading
#: (:func:`split_name`) of a manifest's ``split`` column (:func:`predefined_split`, ``ser-hf train``,
#: ``ser-hf data split``) and of an audiofolder's split folders.
SPLIT_SPELLINGS = {str(split): tuple(keywords) for split, keywords in SPLIT_KEYWORDS.items()}
#: Split-column values that are a test keyword alone (any case, surrounding spaces ignored); :func:`split_name`
#: also reads them joined to other text (``test_1``).
TEST_SPLIT_VALUES = SPLIT_SPELLINGS["test"]
#: Values of rows ``ser-hf train`` trains on; blanks too. It holds its own validation speakers out of all training
#: rows, so ``validation`` rows are training rows like the rest.
TRAIN_SPLIT_VALUES = SPLIT_SPELLINGS["train"] + SPLIT_SPELLINGS["validation"]
#: The rule in words, for messages.
SPLIT_NAME_RULE = ("a keyword ({}) alone or joined to other text by one of '-', '.', '_', a space or a digit "
                   "('test_data', 'my-test', 'eval 2'), in any case, as datasets reads split folders").format(
    "; ".join(f"{split}: {', '.join(words)}" for split, words in SPLIT_SPELLINGS.items()))


def _name_patterns() -> dict[str, list[re.Pattern]]:
    """Split -> regular expressions of a whole name, from datasets' folder patterns: ``**/{keyword}[{sep}]*/**``
    stands for a folder named ``{keyword}[{sep}]*`` at any depth; a name is matched alone."""
    names = {re.sub(r"^(\*\*/)+|(/\*\*)+(/\*)?$", "", pattern) for pattern in KEYWORDS_IN_DIR_NAME_BASE_PATTERNS}
    return {split: [re.compile(fnmatch.translate(name.format(keyword=keyword, sep=NON_WORDS_CHARS)))
                    for keyword in keywords for name in sorted(names)]
            for split, keywords in SPLIT_SPELLINGS.items()}


_PATTERNS = _name_patterns()


def _split_key(value: Any) -> str:
    """``value`` as split names are compared: NFKC (full-width letters are ASCII), in any case, surrounding spaces
    ignored."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", str(value)).casefold())
    return folded.strip()


def splits_named(value: Any) -> set[str]:
    """Every split whose keywords ``value`` holds as datasets reads split names (:data:`SPLIT_NAME_RULE`): one for a
    split name, none for another value, two or more for a name joining keywords of several (``train_test``), which
    datasets would put in each of them."""
    key = _split_key(value)
    return {split for split, patterns in _PATTERNS.items() if any(p.match(key) for p in patterns)}


def split_name(value: Any) -> str | None:
    """The split a split-column value or split folder names: ``'train'``, ``'validation'`` or ``'test'`` for a name
    :func:`splits_named` reads as one split (``'TEST '``, ``'Dev'``, ``'test1'``, ``'Test-set'``, ``'ｔｅｓｔ'``);
    ``None`` for a blank cell or a missing-value marker (``NA``, ``null``: :func:`~ser_hf.corpora.cell_values.is_missing`);
    any other value (``'holdout'``, ``'train_test'``) as its :func:`_split_key`, which callers name in a warning."""
    if is_missing(value):
        return None
    named = splits_named(value)
    return named.pop() if len(named) == 1 else _split_key(value)


def split_names(values: Sequence[Any]) -> list[str | None]:
    """:func:`split_name` of each value, each distinct value read once: a split column holds a handful of values
    over thousands of rows, and each reading tries every keyword pattern."""
    read: dict[Any, str | None] = {}
    names = []
    for value in values:
        try:
            name = read[value]
        except KeyError:
            name = read[value] = split_name(value)
        except TypeError:  # an unhashable cell (a JSON list in a manifest): read on its own
            name = split_name(value)
        names.append(name)
    return names


def _loose_key(value: Any) -> str:
    """``value`` with accents and invisible characters dropped and every other non-alphanumeric character made a
    space: how a name that only looks like a split name (``tëst``, ``test\\u200b``, ``test(2)``) is told."""
    decomposed = unicodedata.normalize("NFKD", _split_key(value))
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf"))
    return re.sub(r"[^0-9a-z]+", " ", kept).strip()


def split_lookalike(value: Any) -> tuple[str, bool] | None:
    """The split a value not read as a split name (:func:`split_name`) seems to name, and whether it is a near miss:
    ``('test', True)`` for ``tëst``, ``test\\u200b`` or ``test(2)`` (read as ``test`` once accents and invisible
    characters are dropped and other punctuation is a separator), ``('test', False)`` for a keyword glued to other
    letters (``testset``, ``mytest``, ``TestData``), which ordinary words do too (``contest``); None otherwise."""
    if is_missing(value) or len(splits_named(value)) == 1:
        return None
    loose = _loose_key(value)
    named = splits_named(loose)
    if len(named) == 1:
        return named.pop(), True
    glued = {split for split, keywords in SPLIT_SPELLINGS.items() for token in loose.split()
             for keyword in keywords if token != keyword and (token.startswith(keyword) or token.endswith(keyword))}
    return (glued.pop(), False) if len(glued) == 1 else None


def unknown_split_values(names: Sequence[str | None]) -> Counter:
    """``{value: clips}`` of the :func:`split_name` results that are no split ser_hf knows."""
    return Counter(name for name in names if name is not None and name not in SPLIT_SPELLINGS)


def lookalike_note(values: Sequence[Any]) -> str:
    """A sentence naming the values that look like a split name without being read as one (:func:`split_lookalike`)
    or join the keywords of two splits (``train_test``), with the splits each seems to name; empty when none does."""
    shown = []
    for value in dict.fromkeys(values):
        several, lookalike = sorted(splits_named(value)), split_lookalike(value)
        if len(several) > 1 or lookalike is not None:
            seems = " and ".join(map(repr, several)) if len(several) > 1 else repr(lookalike[0])
            shown.append(f"{printable(str(value))!r} (looks like {seems})")
    if not shown:
        return ""
    return (f"Of those, {', '.join(shown)} are not read as a split name: a split name is {SPLIT_NAME_RULE}, of one "
            f"split; accents, invisible characters, other punctuation or letters glued to a keyword make another name.")


def marked_test_rows(values: Sequence[Any]) -> np.ndarray:
    """The rows a manifest's ``split`` column marks as test clips (:func:`split_name` reads ``test``), as ``ser-hf
    train`` tests on them; every other row is one it trains on (``train``, ``validation``, blanks), since it holds its
    own validation speakers out of those. Any other value is warned about once, with its count, and those that look
    like a split name (``tëst``, ``testset``) are named so: a typo of ``test`` would otherwise train on the clips
    meant to test on, without a word."""
    names = split_names(values)
    other = unknown_split_values(names)
    if other:
        note = lookalike_note(list(other))
        logger.warning("the manifest's split column holds %s (value: clips), neither a test value %s nor a training "
                       "value %s; ser-hf train treats those clips as training rows. %sWrite 'test' in the split column "
                       "for the clips to test on.", dict(other.most_common()), list(TEST_SPLIT_VALUES),
                       list(TRAIN_SPLIT_VALUES), f"{note} " if note else "")
    return np.flatnonzero([name == "test" for name in names])


def check_some_rows_to_train_on(marked: np.ndarray, total: int) -> None:
    """Refuse a split column marking every row as test (:func:`marked_test_rows`): it leaves none to train on, and
    the split would end without a train part or with a vague error."""
    if marked.size == total:
        raise SplitError(
            f"the manifest's split column marks all {marked.size} clips as test ({list(TEST_SPLIT_VALUES)}), which "
            f"leaves none to train on; expected training rows too. Mark the clips to train on 'train' (or leave "
            f"their split cell empty), or clear the split column to let ser_hf hold out test speakers itself.")
