"""How large the parts of a speaker-independent split may be, and how the errors that refuse other sizes word it.

A part is held out by whole speakers as one of at least 2 speaker-grouped folds, so it is at most half of the clips it
is taken from (:data:`MAX_HOLDOUT_SHARE`), and the test and validation parts together must leave clips to train on.
The errors name each size as the caller's user sets it (``settings``: ``test_size (--test_size)`` for a run,
``--test-size`` for ``ser-hf data split``) and say how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ser_hf.errors import SplitError

#: The largest share a hold-out can be of the clips it is taken from: it is one of at least 2 speaker-grouped folds.
MAX_HOLDOUT_SHARE = 0.5


def refuse_over_half(name: str, value: float, share: float, of: str, part: str, largest: float,
                     fixes: Sequence[str] = ()) -> None:
    """Refuse a hold-out of ``share`` (above :data:`MAX_HOLDOUT_SHARE`) of the clips ``of`` names, which
    :func:`~ser_hf.corpora.splits.speaker_split` would silently make about half of them: ``largest``, as the user sets it (``name``)."""
    if share > MAX_HOLDOUT_SHARE + 1e-9:  # the tolerance: the largest value an error advises must pass
        raise SplitError(
            f"{name} {value:g} asks for a {part} part of {share:.0%} of {of}, but a {part} part is held out as one of "
            f"at least 2 speaker-grouped folds, so it is at most half of the clips it is taken from ({name} {value:g} "
            f"would silently be about {largest:g}). " + as_sentence([f"set {name} to {largest:g} or less", *fixes]))


def check_split_sizes(test_size: float, validation_size: float, settings: Mapping[str, str]) -> None:
    """Refuse sizes :func:`~ser_hf.corpora.splits.speaker_split` cannot give: parts that take every clip, or a part over half of the clips
    it is taken from (the validation part is taken from what the test part leaves)."""
    test, validation = settings.get("test_size", "test_size"), settings.get("validation_size", "validation_size")
    if test_size + validation_size >= 1:
        raise SplitError(
            f"{test} {test_size:g} and {validation} {validation_size:g} add up to {test_size + validation_size:g}, so "
            f"the test and validation parts would take every clip and leave none to train on; expected a sum below 1. "
            f"Lower one or both (each part is at most half of the clips it is taken from), e.g. {test} 0.2 and "
            f"{validation} 0.15.")
    refuse_over_half(test, test_size, test_size, "the clips", "test", MAX_HOLDOUT_SHARE)
    left = 1 - test_size
    refuse_over_half(validation, validation_size, validation_size / left,
                     f"the clips the test part leaves ({test} {test_size:g} leaves {left:.0%})" if test_size else
                     "the clips", "validation", MAX_HOLDOUT_SHARE * left, [f"lower {test}"] if test_size else [])


def fewer_folds(settings: Mapping[str, str]) -> list[str]:
    """The fix "use fewer folds", where the user sets the number of folds (``settings``' ``n_folds``)."""
    return [f"use fewer folds ({settings['n_folds']})"] if settings.get("n_folds") else []


def as_sentence(fixes: Sequence[str]) -> str:
    """The fixes an error offers as one sentence: "A, B, or C." """
    text = f"{', '.join(fixes[:-1])}, or {fixes[-1]}." if len(fixes) > 1 else f"{fixes[0]}."
    return text[0].upper() + text[1:]
