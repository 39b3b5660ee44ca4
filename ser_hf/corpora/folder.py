"""Your own data as one sub-folder per emotion: ``DATA/angry/*.wav``, ``DATA/happy/*.wav``, ...

- Folder names are emotion labels in any known spelling (``Angry``, ``anger``, ``happiness``, ...);
  map other names with ``label_map={"joyful": "happy"}``.
- Audio: any extension libsndfile reads, searched recursively inside each emotion folder.
- Speakers: unknown unless ``speaker_pattern`` is given, a regular expression searched in each file
  name (without extension) whose first group (or group named ``speaker``) is the speaker id, e.g.
  ``r"^(spk\\d+)_"``. Speaker-independent splits need it.
- Licence and citation: those of your data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from ser_hf.corpora.base import Clip, Corpus, Problem, iter_audio_files, map_raw_label, normalize_speaker
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import CorpusError


def raw_label_to_emotion(raw: str, label_map: Mapping[str, str] | None) -> str:
    """A user label through ``label_map`` first (exact, then as :func:`~ser_hf.corpora.base.label_key` matches:
    any case, surrounding spaces), else a known spelling."""
    target = map_raw_label(raw, label_map)
    return canonical_emotion(raw if target is None else target)


_PATTERN_FIX = "e.g. --speaker-pattern '^(spk\\d+)_' for files named spk01_take1.wav"


def compile_speaker_pattern(speaker_pattern: str | None) -> re.Pattern | None:
    """``speaker_pattern`` compiled, after checking it is a valid regular expression with a group.

    Raises:
        CorpusError: naming speaker_pattern (--speaker-pattern), the regex, what is wrong and an example.
    """
    if not speaker_pattern:
        return None
    if not isinstance(speaker_pattern, str):
        raise CorpusError(f"speaker_pattern (--speaker-pattern) must be a regular expression (text), got "
                          f"{type(speaker_pattern).__name__} {speaker_pattern!r}; {_PATTERN_FIX}.")
    try:
        pattern = re.compile(speaker_pattern)
    except re.error as err:
        raise CorpusError(f"speaker_pattern (--speaker-pattern) {speaker_pattern!r} is not a valid regular expression: "
                          f"{err}. Fix the regex (quote it in the shell; escape literal brackets as \\( ), "
                          f"{_PATTERN_FIX}.") from err
    if pattern.groups == 0:
        raise CorpusError(f"speaker_pattern (--speaker-pattern) {speaker_pattern!r} has no group; wrap the speaker id "
                          f"in (...), {_PATTERN_FIX}.")
    return pattern


def _speaker(path: Path, pattern: re.Pattern | None) -> str | None:
    if pattern is None:
        return None
    match = pattern.search(path.stem)
    if match is None:
        raise CorpusError(f"speaker_pattern {pattern.pattern!r} does not match file name {path.stem!r}.")
    # A group named 'speaker' is the speaker even where it matched nothing: never fall back to another group.
    speaker = normalize_speaker(match.group("speaker" if "speaker" in pattern.groupindex else 1))
    if speaker is None:
        raise CorpusError(f"speaker_pattern {pattern.pattern!r} matches file name {path.stem!r}, but its speaker group "
                          f"is empty there; make the group match the speaker id (e.g. (spk\\d+), not (spk\\d*)?).")
    return speaker


def list_clips(
    root: Path, speaker_pattern: str | None = None, label_map: Mapping[str, str] | None = None
) -> Iterator[Clip | Problem]:
    pattern = compile_speaker_pattern(speaker_pattern)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise CorpusError(f"No emotion sub-folders in {str(root)!r}. Expected e.g. {root}/angry/*.wav.")
    for folder in folders:
        try:
            emotion = raw_label_to_emotion(folder.name, label_map)
        except CorpusError as err:
            raise CorpusError(f"Folder {str(folder)!r}: {err}") from err
        for path in iter_audio_files(folder):
            try:
                yield Clip(path=str(path), emotion=emotion, speaker=_speaker(path, pattern), raw_label=folder.name)
            except CorpusError as err:
                yield Problem(str(path), str(err))


CORPUS = Corpus(name="folder", list_clips=list_clips, features={}, doc=__doc__)
