"""The exceptions ser_hf raises for bad input.

Every message names the file or argument, says what was expected, what was found, and how to fix
it. They all derive from :class:`SERError` (itself a :class:`ValueError`), so callers can catch
one type.
"""

from __future__ import annotations


class SERError(ValueError):
    """Base class of every input error ser_hf raises."""


class AudioError(SERError):
    """An audio file or array cannot be used: unreadable, empty, corrupt or out of limits."""


class CorpusError(SERError):
    """A corpus directory, file name, label or manifest does not match what the loader expects."""


class SplitError(SERError):
    """A split cannot be made as asked (too few speakers, unknown speakers, overlap)."""


class DownloadError(SERError):
    """A corpus could not be downloaded or extracted."""


class ModelError(SERError):
    """A model name, preset, directory or weights file cannot be used: unknown, missing, corrupt or wrong kind."""


class EvaluationError(SERError):
    """Predictions, references, probabilities or reports cannot be evaluated as given."""
