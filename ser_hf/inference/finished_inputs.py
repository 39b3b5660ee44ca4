"""Which inputs of a resumed ``ser-hf predict`` job its finished records stand for, one record per input: what the job
skips (:func:`unfinished_inputs`) and what a speaker job checks its finished records against
(:func:`~ser_hf.inference.speaker_jobs.check_finished_speakers`), both through :func:`paired_records`, so the two never
disagree. Apart from :mod:`~ser_hf.inference.outputs`, which reads and writes the output files the records are in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from ser_hf.inference.outputs import record_key
from ser_hf.paths import path_key

__all__ = ["paired_records", "unfinished_inputs"]


def unfinished_inputs(paths: Sequence[str], records: Iterable[dict[str, Any]]) -> list[str]:
    """The inputs in ``paths`` that no record in ``records`` stands for (:func:`paired_records`), in input order: a
    resumed job's todo list."""
    paired = paired_records(paths, records)
    finished = set(paired.values())
    return [path for path in paths if path_key(path) not in paired and path not in finished]


def paired_records(paths: Sequence[str], records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """``{record key: the input in paths it stands for}`` (:func:`record_key`), for the records that stand for one.

    A record stands for exactly one input, so a resumed job ends with the records of an uninterrupted one:

    - the input of its own path, when that path is one of the job's inputs. A file and a link to it, both inputs, get
      a record each in an uninterrupted run: one's record never finishes the other.
    - otherwise (the job reached by another route: a symlinked folder, a folder moved behind a link), one input still
      without a record that is the same file: the one of the same name in the same real folder first, else any of the
      same real path, so the finished files are skipped instead of scored again under a second name.

    What a resumed job skips (:func:`unfinished_inputs`) and what its finished records are checked against (a speaker
    job's, :func:`~ser_hf.inference.speaker_jobs.check_finished_speakers`) are both this pairing, so the two never
    disagree on which input a record is.
    """
    inputs = {path_key(path): path for path in paths}
    keys = {record_key(record) for record in records}
    paired = {key: inputs[key] for key in keys if key in inputs}
    todo = [path for path in paths if path_key(path) not in keys]
    routes = sorted(keys - inputs.keys())
    taken: set[str] = set()
    for same_file in (_in_real_folder, os.path.realpath):  # the closest match first, then any other name of the file
        if not routes or len(taken) == len(todo):
            break
        waiting: dict[str, list[str]] = {}
        for path in todo:
            if path not in taken:
                waiting.setdefault(same_file(path), []).append(path)
        unmatched = []
        for route in routes:
            matches = waiting.get(same_file(route))
            if matches:
                paired[route] = matches.pop(0)
                taken.add(paired[route])
            else:
                unmatched.append(route)
        routes = unmatched
    return paired


def _in_real_folder(path: str) -> str:
    """``path`` with the links on its folders resolved, not a link in its own name."""
    folder, name = os.path.split(path_key(path))
    return os.path.join(os.path.realpath(folder), name)
