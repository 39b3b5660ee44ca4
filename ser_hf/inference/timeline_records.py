"""How a ``ser-hf predict --window`` job turns files into records: one timeline per file, by ``predict_long``.

A clip job scores each file as one clip, and a file longer than :data:`~ser_hf.audio.MAX_CLIP_DURATION` (300 s)
becomes an error record. A timeline job scores each file with
:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` instead (windows of ``window`` seconds every
``hop`` seconds, silent windows gated out, a file of any length read block by block), and writes one record per
file::

    {"path", "label", "score", "scores", "silent", "duration", "timeline", "skipped"}

``label``/``score``/``scores`` are the overall result (the voiced windows' probabilities averaged, weighted by their
durations); ``silent`` is true when every window was gated as silence, and then those three are null and
``timeline`` is empty. ``timeline`` holds each scored window's ``{"start", "end", "label", "score", "scores"}``,
``skipped`` the ``[start, end]`` seconds of the gated ones, ``duration`` the recording's seconds. ``top_k`` applies
to every window and to the overall scores. A file that cannot be decoded or scored gets the usual error record
``{"path", "error"}`` (:func:`~ser_hf.inference.chunk_records.error_record`) and the job goes on.

The window settings are part of the job (:meth:`TimelineSettings.job_entries`, in the JSONL header: a resume with
other ones is refused by :mod:`ser_hf.inference.job_identity`). Timeline jobs write JSONL only: a CSV row holds one
score per emotion, not a list of windows.

Example:
    ```python
    >>> settings = timeline_settings(window=3, hop=1, vad_threshold_db=-40)
    >>> settings.job_entries()
    {'window': 3.0, 'hop': 1.0, 'vad_threshold_db': -40.0}
    >>> timeline_record(recognizer, "interview.wav", settings, top_k=2)["timeline"][0]  # doctest: +SKIP
    {'start': 0.0, 'end': 3.0, 'label': 'neutral', 'score': 0.64, 'scores': {...}}

    ```
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from ser_hf.errors import SERError
from ser_hf.inference.chunk_records import ChunkScorer, error_record
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.inference.streaming import (
    DEFAULT_VAD_THRESHOLD_DB,
    MIN_HOP,
    VAD_THRESHOLD_DB,
    WINDOW_SECONDS,
    resolve_hop,
)
from ser_hf.paths import path_fields
from ser_hf.ranges import Range

__all__ = ["TimelineSettings", "check_timeline_job", "refuse_without_window", "score_file", "timeline_record",
           "timeline_scorer", "timeline_settings"]


@dataclass(frozen=True)
class TimelineSettings:
    """How a timeline job windows and gates every file (checked by :func:`timeline_settings`)."""

    window: float
    hop: float
    vad_threshold_db: float | None

    def job_entries(self) -> dict[str, Any]:
        """What the job header records of them: a resume with other values is another job."""
        return {"window": self.window, "hop": self.hop, "vad_threshold_db": self.vad_threshold_db}


def _as_float(value: Any) -> Any:
    # np.float32(3.0) or a whole number of seconds is a fine setting; the header needs a JSON float
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value


def _check(name: str, value: Any, allowed: Range, fix: str) -> None:
    if value not in allowed:  # Range also refuses bool, strings and non-finite floats
        flag = "--" + name.replace("_", "-")
        raise SERError(f"{name} ({flag}) must be {allowed}, got {value!r}; {fix}.")


def refuse_without_window(given: list[str]) -> None:
    """Refuse window options (``given``: their names, e.g. ``["hop"]``) set without a window, before any work.

    Raises:
        SERError: naming them (and their ``ser-hf predict`` flags) and the fix.
    """
    if given:
        flags = " and ".join(f"{name} (--{name.replace('_', '-')})" for name in given)
        raise SERError(f"{flags} only appl{'y' if len(given) > 1 else 'ies'} with window (--window), which was not "
                       f"given: without it each file is scored as one clip. Add --window SECONDS (e.g. --window 3) to "
                       f"score every file in windows, or leave {flags} out.")


def timeline_settings(window: Any, hop: Any = None,
                      vad_threshold_db: Any = DEFAULT_VAD_THRESHOLD_DB) -> TimelineSettings | None:
    """Check a job's window settings before any work, with the ranges ``predict_long`` uses; None for a clip job.

    Args:
        window: Window length in seconds, 0.1 to 300; None: a clip job (each file scored as one clip).
        hop: Seconds between window starts, 0.1 to ``window``; None: 1 s, or ``window`` when it is shorter.
        vad_threshold_db: Windows more than this many dB below the recording's peak sample are skipped as silence
            (-200 to 0; default -40); None scores every window.

    Raises:
        SERError: naming the argument (and its ``ser-hf predict`` flag), the range, the value and the fix; also
            for ``hop`` or ``vad_threshold_db`` given without ``window``.
    """
    if window is None:
        refuse_without_window([name for name, value, default in (
            ("hop", hop, None), ("vad_threshold_db", vad_threshold_db, DEFAULT_VAD_THRESHOLD_DB)) if value != default])
        return None
    window = _as_float(window)
    _check("window", window, WINDOW_SECONDS, "each window is scored as one clip, e.g. --window 3")
    hop = _as_float(resolve_hop(window, hop))
    _check("hop", hop, Range(MIN_HOP, window, noun="a number of seconds"),
           f"a window starts every hop seconds (a shorter hop only multiplies the work, a hop longer than the window "
           f"would leave gaps), e.g. --hop {min(1.0, window):g} for --window {window:g}")
    if vad_threshold_db is not None:
        vad_threshold_db = _as_float(vad_threshold_db)
        _check("vad_threshold_db", vad_threshold_db, VAD_THRESHOLD_DB,
               "e.g. -40 skips windows 40 dB below the loudest sample; none (None) scores every window")
    return TimelineSettings(window, hop, vad_threshold_db)


def check_timeline_job(settings: TimelineSettings | None, format: str) -> None:
    """Refuse what a timeline job cannot write, before any work: a CSV output.

    Raises:
        SERError: naming the option and the fix.
    """
    if settings is None:
        return
    if format != "jsonl":
        raise SERError(f"--window writes each file's timeline (a list of windows), which a CSV row cannot hold (format "
                       f"{format!r}, or an --out ending in .csv). Use a JSONL --out, e.g. --out timelines.jsonl, or "
                       f"leave --window out for one row per file.")


def timeline_record(recognizer: EmotionRecognizer, path: str, settings: TimelineSettings,
                    top_k: int | None, progress: bool = False, scorer: Any = None) -> dict[str, Any]:
    """The record of one file (see the module docstring): ``predict_long``'s result, or an error record.
    ``progress`` shows a bar over the file's windows (under the job's bar, gone once the file is done); ``scorer``
    scores them (:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.score_timeline`; None: the global head)."""
    try:
        result = score_file(recognizer, path, settings, top_k, progress, scorer)
    except (SERError, OSError, RuntimeError) as err:
        return error_record(path, err)
    overall = result["overall"]
    return {**path_fields(path), **(overall or dict.fromkeys(("label", "score", "scores"))),
            "silent": overall is None, "duration": result["duration"], "timeline": result["timeline"],
            "skipped": result["skipped"]}


def score_file(recognizer: EmotionRecognizer, path: str, settings: TimelineSettings, top_k: int | None,
               progress: bool, scorer: Any) -> dict[str, Any]:
    """``predict_long``'s result for one file with the job's settings, its windows scored by ``scorer``."""
    return recognizer.score_timeline(path, scorer, window=settings.window, hop=settings.hop,
                                     vad_threshold_db=settings.vad_threshold_db, top_k=top_k, progress=progress)


def timeline_scorer(settings: TimelineSettings, progress: bool = False) -> ChunkScorer:
    """A chunk scorer for :func:`~ser_hf.inference.chunk_records.predict_into`: each file's :func:`timeline_record`,
    with a bar over its windows where ``progress`` is set (the job's bar moves a file at a time, so an hour-long file
    would show no movement)."""
    return lambda recognizer, paths, top_k: [timeline_record(recognizer, path, settings, top_k, progress)
                                             for path in paths]
