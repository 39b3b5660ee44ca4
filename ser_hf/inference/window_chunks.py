"""Scoring a long recording's voiced windows a few batches at a time, so that memory stays bounded.

:meth:`~ser_hf.inference.recognizer.EmotionRecognizer.predict_long` cuts a recording into overlapping windows (3 s
every 1 s by default, so each sample lies in three windows). The windows themselves are views of the recording, but
what scoring makes of them is not: the checkpoint's cleaning (normalised, denoised copies), test-time copies and, for
an enrolled speaker, every window's pooled states. Made for every window at once, that is about ``window / hop``
times the recording again, plus the states; made a chunk at a time, one chunk's worth, however long the recording.

A chunk is a whole number of batches, so the model sees the very batches one call over every window would give it
(the windows of a recording all have the same length; a cleaning that trims or crops them is batched by length within
each chunk instead, which padding cannot change beyond float rounding). Chunks are scored in time order, so a scorer
that learns from the windows it has seen learns from them in the order a stream would feed them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ser_hf.progress import progress_bar

#: Forward passes' worth of voiced windows prepared and scored at a time: 64 windows at ``batch_size=8``, 12 MB of
#: 3 s windows at 16 kHz per copy made of them, and a progress-bar step every few seconds on a CPU.
CHUNK_BATCHES = 8

Scored = tuple[np.ndarray, list[dict[str, Any]]]


def score_in_chunks(score: Callable[[list], Scored], voiced: list, batch_size: int, progress: bool = False) -> Scored:
    """``score(voiced)``, one chunk of :data:`CHUNK_BATCHES` ``* batch_size`` windows at a time, joined in order.

    Args:
        score: Probabilities ``(len(chunk), num_labels)`` and one result per window of a list of voiced
            ``(start, end, samples)`` windows.
        voiced: The windows to score, in time order.
        batch_size: Windows per forward pass.
        progress: Show a progress bar over the windows.

    Returns:
        What ``score(voiced)`` returns: every chunk's probabilities stacked, and their results in order.
    """
    if not voiced:  # the scorer's own shape for no windows
        return score(voiced)
    size = batch_size * CHUNK_BATCHES
    rows, results = [], []
    with progress_bar(progress, total=len(voiced), desc="predict_long", unit="window") as bar:
        for start in range(0, len(voiced), size):
            chunk = voiced[start: start + size]
            probabilities, chunk_results = score(chunk)
            rows.append(probabilities)
            results.extend(chunk_results)
            bar.update(len(chunk))
    return np.concatenate(rows), results
