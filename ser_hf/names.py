"""Names users give ser_hf: speaker ids in one form, and their regular expressions run with a time limit.

A speaker id arrives from a manifest cell, a file name, a dataset column or an API call; the same person typed two
ways (``José`` as one ``é`` or as ``e`` and a combining accent; a name pasted with a zero-width space) must be one
speaker everywhere, or a speaker-independent split could put "two" of them on both sides (:func:`speaker_text`).

A ``--speaker-pattern`` is a user's regex run on every file name. One that backtracks catastrophically
(``(a|aa)+c`` doubles its time with every character) would stall a job for hours before its first file, so it is
compiled with ``re``'s syntax by the ``regex`` package and every search has a time limit (:func:`UserPattern`).
"""

from __future__ import annotations

import time
import unicodedata

from ser_hf.errors import SERError
from ser_hf.paths import printable

__all__ = ["PATTERN_SECONDS", "PATTERN_TOTAL_SECONDS", "UserPattern", "speaker_text"]

#: Invisible characters that only ever come into a speaker id by accident (a copy from a web page or a word
#: processor): zero-width space, word joiner, byte-order mark, soft hyphen and the bidirectional marks. The
#: zero-width (non-)joiners are kept: in Urdu or Persian they change how a name is written.
_INVISIBLE = frozenset("\u200b\u2060\ufeff\u00ad\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def speaker_text(value: str) -> str:
    """A speaker id in the one form ser_hf keys speakers by, wherever it comes from (a corpus, a manifest, a path,
    the API): Unicode NFC, without the invisible characters of :data:`_INVISIBLE` and surrounding whitespace.

    The invisible characters go first: one between a letter and its accent (``"Jose\u200b\u0301"``, pasted from a
    web page) would otherwise keep the two apart through NFC, and the id would change when keyed again."""
    visible = "".join(char for char in value if char not in _INVISIBLE)
    return unicodedata.normalize("NFC", visible).strip()


#: Seconds a user's pattern may take on one name, and on all the names of one job (a pattern just under the first
#: limit on every name would otherwise take hours over thousands; a plain one takes microseconds a name).
PATTERN_SECONDS = 1.0
PATTERN_TOTAL_SECONDS = 30.0


class UserPattern:
    """A user's regular expression (``re`` syntax) with at least one group, searched with a time limit.

    Args:
        pattern: The regex.
        option: How the user set it, for messages (``--speaker-pattern``).
        fix: An example of a good pattern, for messages.
        error: The error class to raise (a corpus loader raises ``CorpusError``).

    Raises:
        error: the pattern is not text, not a valid regex, or has no group.
    """

    def __init__(self, pattern: str, *, option: str, fix: str, error: type[SERError] = SERError):
        import regex  # a dependency of transformers too

        self.option, self.fix, self.error = option, fix, error
        if not isinstance(pattern, str):
            raise error(f"{option} must be a regular expression (text), got {type(pattern).__name__} "
                        f"{printable(repr(pattern))[:80]}; {fix}.")
        try:
            self.compiled = regex.compile(pattern, regex.VERSION0)
        except regex.error as err:
            raise error(f"{option} {pattern!r} is not a valid regular expression: {err}. Fix the regex (quote it in "
                        f"the shell; escape literal brackets as \\( ), {fix}.") from err
        if self.compiled.groups == 0:
            raise error(f"{option} {pattern!r} has no group; wrap the speaker id in (...), {fix}.")
        self.pattern = pattern
        self.groupindex = dict(self.compiled.groupindex)
        #: Set once a search ran out of time: the pattern, not one name, is at fault (callers that record per-file
        #: problems stop instead of waiting as long on every other name).
        self.too_slow = False
        self.seconds, self.searched = 0.0, 0  # spent on, and number of, the names searched so far

    def search(self, text: str, shown: str | None = None):
        """The first match in ``text`` (None if none), within :data:`PATTERN_SECONDS`.

        Raises:
            error: when the search takes longer, naming the pattern and ``shown`` (default: ``text``).
        """
        start = time.perf_counter()
        try:
            return self.compiled.search(text, timeout=PATTERN_SECONDS)
        except TimeoutError:
            self.too_slow = True
            raise self.error(
                f"{self.option} {self.pattern!r} took more than {PATTERN_SECONDS:g} s on {printable(shown or text)!r} "
                f"(catastrophic backtracking: a repetition of something that can match in several ways, such as "
                f"(a|aa)+ or (\\w+\\s?)+, retried at every position); expected a pattern that reads each name "
                f"once. Make the repeated part match one way, {self.fix}.") from None
        finally:
            self.seconds += time.perf_counter() - start
            self.searched += 1
            if self.seconds > PATTERN_TOTAL_SECONDS and not self.too_slow:
                self.too_slow = True
                raise self.error(
                    f"{self.option} {self.pattern!r} took {self.seconds:.0f} s on the first {self.searched} names "
                    f"({self.seconds / self.searched:.2f} s each; a plain pattern takes microseconds): it backtracks "
                    f"on every name. Make the repeated part match one way, {self.fix}.")
