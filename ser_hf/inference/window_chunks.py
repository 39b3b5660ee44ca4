"""Scoring a long recording's voiced windows a few batches at a time, so that memory stays bounded.

:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` cuts a recording into overlapping windows (3 s
every 1 s by default, so each sample lies in three windows). The windows themselves are views of the recording, but
what scoring makes of them is not: the checkpoint's cleaning (normalised, denoised copies), test-time copies and, for
an enrolled speaker, every window's pooled states. Made for every window at once, that is about ``window / hop``
times the recording again, plus the states; made a chunk at a time, one chunk's worth, however long the recording.

The windows come one at a time (from :mod:`~ser_hf.inference.recording_windows`: views of an array, or copies cut from
a file as it is decoded), and each is gated as silence or kept as it comes, so neither the recording nor its windows
need be held whole.

A chunk is a whole number of batches, so the model sees the very batches one call over every window would give it
(the windows of a recording all have the same length; a cleaning that trims or crops them is batched by length within
each chunk instead, which padding cannot change beyond float rounding). Chunks are scored in time order, so a scorer
that learns from the windows it has seen learns from them in the order a stream would feed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ser_hf.progress import progress_bar

#: Forward passes' worth of voiced windows prepared and scored at a time: 64 windows at ``batch_size=8``, 12 MB of
#: 3 s windows at 16 kHz per copy made of them, and a progress-bar step every few seconds on a CPU.
CHUNK_BATCHES = 8

Scored = tuple[np.ndarray, list[dict[str, Any]]]


def score_in_chunks(score: Callable[[list], Scored], windows: Iterable[tuple[int, int, np.ndarray]],
                    voiced: Callable[[np.ndarray], bool], batch_size: int, progress: bool = False,
                    total: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]], list[tuple[int, int]]]:
    """``score`` of the voiced ``windows``, one chunk of :data:`CHUNK_BATCHES` ``* batch_size`` at a time, joined in
    order, and the spans of the others.

    Args:
        score: Probabilities ``(len(chunk), num_labels)`` and one result per window of a list of voiced
            ``(start, end, samples)`` windows.
        windows: Every ``(start, end, samples)`` window, in time order; each is let go once gated or scored.
        voiced: Whether a window's samples are scored (the others are gated out as silence).
        batch_size: Windows per forward pass.
        progress: Show a progress bar over the windows.
        total: How many windows there are, for the progress bar.

    Returns:
        Every chunk's probabilities stacked and their results in order (``score([])``'s for no voiced window), and the
        ``(start, end)`` of each window gated out.
    """
    size = batch_size * CHUNK_BATCHES
    rows, results, skipped, chunk = [], [], [], []

    def score_chunk() -> None:
        probabilities, chunk_results = score(chunk)
        rows.append(probabilities)
        results.extend(chunk_results)
        chunk.clear()

    # leave=None: a bar of its own stays once done; one under a job's bar (a file's windows) goes
    with progress_bar(progress, total=total, desc="predict_long", unit="window", leave=None) as bar:
        passed = 0  # windows gated or queued since the bar last moved: it moves a chunk at a time
        for window in windows:
            passed += 1
            if voiced(window[2]):
                chunk.append(window)
                if len(chunk) == size:
                    score_chunk()
                    bar.update(passed)
                    passed = 0
            else:
                skipped.append(window[:2])
        if chunk or not rows:  # the last, partial chunk; or no voiced window: the scorer's own shape for none
            score_chunk()
        if passed:
            bar.update(passed)
    return np.concatenate(rows), results, skipped
