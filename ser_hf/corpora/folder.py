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

from ser_hf.corpora.base import Clip, Corpus, Problem, iter_audio_files
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import CorpusError


def raw_label_to_emotion(raw: str, label_map: Mapping[str, str] | None) -> str:
    """A user label through ``label_map`` first (exact, then case-insensitive), else a known spelling."""
    label_map = label_map or {}
    lowered = {key.lower(): value for key, value in label_map.items()}
    return canonical_emotion(label_map.get(raw) or lowered.get(raw.lower()) or raw)


def _speaker(path: Path, pattern: re.Pattern | None) -> str | None:
    if pattern is None:
        return None
    match = pattern.search(path.stem)
    if match is None:
        raise CorpusError(f"speaker_pattern {pattern.pattern!r} does not match file name {path.stem!r}.")
    return match.groupdict().get("speaker") or match.group(1)


def list_clips(
    root: Path, speaker_pattern: str | None = None, label_map: Mapping[str, str] | None = None
) -> Iterator[Clip | Problem]:
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    if pattern is not None and pattern.groups == 0:
        raise CorpusError(f"speaker_pattern {speaker_pattern!r} has no group; wrap the speaker id in (...).")
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
                yield Clip(path=str(path), emotion=emotion, speaker=_speaker(path, pattern))
            except CorpusError as err:
                yield Problem(str(path), str(err))


CORPUS = Corpus(name="folder", list_clips=list_clips, features={}, doc=__doc__)
