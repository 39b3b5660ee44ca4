"""What is in a corpus: clips per emotion and speaker, hours, durations, and every file that failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf.corpora import get_corpus, scan
from ser_hf.corpora.base import to_dataset
from ser_hf.paths import display_path, path_fields, printable


def corpus_summary(
    name: str,
    data_dir: str | Path,
    *,
    emotions: str | Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Summarise a corpus directory without failing on bad files (they are listed instead).

    Returns:
        A JSON-serialisable dict with ``corpus``, ``data_dir``, ``num_clips``, ``num_speakers``,
        ``labels`` (emotion -> count), ``speakers`` (speaker -> count), ``clips_without_speaker`` (clips whose
        speaker is missing: a blank cell or a marker such as ``unknown``, see
        :data:`~ser_hf.corpora.cell_values.MISSING_MARKERS`; never counted as one speaker), ``genders``, ``hours``,
        ``duration_seconds`` (min/median/max/mean), ``unreadable`` (path and reason of each file that
        could not be used; a name that is not UTF-8 is shown with ``\\xNN`` escapes and also given exactly in
        ``path_base64``, see :mod:`ser_hf.paths`) and ``excluded`` (label -> count of clips left out by label).
    """
    corpus = get_corpus(name)
    label_map = corpus.default_label_map if label_map is None else label_map
    result = scan(name, data_dir, label_map=label_map, **options)
    # to_dataset raises when no clip is left; its message then lists the unusable files, so none is hidden.
    dataset = to_dataset(result, corpus, emotions=emotions, label_map=label_map)
    names = dataset.features["label"].names
    durations = np.asarray(dataset["duration"], dtype=np.float64)
    labels = Counter(names[i] for i in dataset["label"])
    return {
        "corpus": name,
        "data_dir": display_path(result.root),
        "num_clips": len(dataset),
        "num_speakers": len({s for s in dataset["speaker"] if s}),
        "labels": {emotion: labels[emotion] for emotion in names},
        "speakers": dict(sorted(Counter(s for s in dataset["speaker"] if s).items())),
        "clips_without_speaker": sum(1 for s in dataset["speaker"] if not s),
        "genders": dict(sorted(Counter(g or "unknown" for g in dataset["gender"]).items())),
        "hours": round(float(durations.sum()) / 3600, 6),
        "duration_seconds": {
            "min": round(float(durations.min()), 3),
            "median": round(float(np.median(durations)), 3),
            "max": round(float(durations.max()), 3),
            "mean": round(float(durations.mean()), 3),
        },
        # Paths as ser_hf.paths writes them: printable, with path_base64 for a name that is not UTF-8.
        "unreadable": [{**path_fields(p.path), "reason": printable(p.reason)} for p in result.problems],
        "excluded": dict(result.excluded),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable rendering of :func:`corpus_summary`'s result."""
    d = summary["duration_seconds"]
    lines = [
        f"corpus       {summary['corpus']}  ({summary['data_dir']})",
        f"clips        {summary['num_clips']}",
        f"speakers     {summary['num_speakers']}",
        f"hours        {summary['hours']:.3f}",
        f"duration (s) min {d['min']:.2f}  median {d['median']:.2f}  max {d['max']:.2f}",
        "emotions     " + "  ".join(f"{k} {v}" for k, v in summary["labels"].items()),
        "genders      " + "  ".join(f"{k} {v}" for k, v in summary["genders"].items()),
        "per speaker  " + "  ".join(f"{k}:{v}" for k, v in summary["speakers"].items()),
    ]
    if summary["clips_without_speaker"]:
        lines.append(f"no speaker   {summary['clips_without_speaker']} clips (a blank or 'unknown' speaker): speaker-"
                     f"independent splits refuse them; fill their speaker column or pass --speaker-pattern")
    if summary["excluded"]:
        lines.append("excluded     " + "  ".join(f"{k} {v}" for k, v in summary["excluded"].items()))
    lines.append(f"unreadable   {len(summary['unreadable'])}")
    lines += [f"  {item['path']}: {item['reason']}" for item in summary["unreadable"]]
    return "\n".join(map(printable, lines))  # a speaker id, label or name with an ESC or a line break: one line
