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

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from ser_hf.corpora.base import Clip, Corpus, Problem, iter_audio_files
from ser_hf.corpora.cell_values import normalize_speaker
from ser_hf.corpora.label_maps import map_raw_label
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import CorpusError
from ser_hf.names import UserPattern
from ser_hf.paths import display_path


def raw_label_to_emotion(raw: str, label_map: Mapping[str, str] | None) -> str:
    """A user label through ``label_map`` first (exact, then as :func:`~ser_hf.corpora.label_maps.label_key` matches:
    any case, surrounding spaces), else a known spelling."""
    target = map_raw_label(raw, label_map)
    return canonical_emotion(raw if target is None else target)


_PATTERN_FIX = "e.g. --speaker-pattern '^(spk\\d+)_' for files named spk01_take1.wav"


def compile_speaker_pattern(speaker_pattern: str | None) -> UserPattern | None:
    """``speaker_pattern`` compiled, after checking it is a valid regular expression with a group (searched with a
    time limit: :class:`~ser_hf.names.UserPattern`).

    Raises:
        CorpusError: naming speaker_pattern (--speaker-pattern), the regex, what is wrong and an example.
    """
    if not speaker_pattern:
        return None
    return UserPattern(speaker_pattern, option="speaker_pattern (--speaker-pattern)", fix=_PATTERN_FIX,
                       error=CorpusError)


def _speaker(path: Path, pattern: UserPattern | None) -> str | None:
    if pattern is None:
        return None
    match = pattern.search(path.stem)
    if match is None:
        raise CorpusError(f"speaker_pattern {pattern.pattern!r} does not match file name {path.stem!r}.")
    # A group named 'speaker' is the speaker even where it matched nothing: never fall back to another group.
    speaker = normalize_speaker(match.group("speaker" if "speaker" in pattern.groupindex else 1))
    if speaker is None:
        raise CorpusError(f"speaker_pattern {pattern.pattern!r} matches file name {path.stem!r}, but its speaker group "
                          f"is empty there, or a missing-value marker such as NA; make the group match the speaker id "
                          f"(e.g. (spk\\d+), not (spk\\d*)?).")
    return speaker


def _linked_folder(folder: Path) -> str | None:
    """``"(through the emotion folder 'angry', a symbolic link to '/data/happy')"`` for a linked emotion folder, to
    name it where its clips are refused as listed twice (a link to another emotion folder); ``None`` for a real
    folder."""
    if not folder.is_symlink():
        return None
    return (f"(through the emotion folder {display_path(folder.name)!r}, a symbolic link to "
            f"{display_path(os.path.realpath(folder))!r})")


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
        where = _linked_folder(folder)
        for path in iter_audio_files(folder):
            try:
                yield Clip(path=str(path), emotion=emotion, speaker=_speaker(path, pattern), raw_label=folder.name,
                           where=where and f"{display_path(path)} {where}")
            except CorpusError as err:
                if pattern is not None and pattern.too_slow:
                    raise  # the pattern is at fault, not the file: every other file would take as long
                yield Problem(str(path), str(err))


CORPUS = Corpus(name="folder", list_clips=list_clips, features={}, doc=__doc__)
