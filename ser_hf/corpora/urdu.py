"""URDU: natural (not acted) emotional Urdu speech cut from TV talk shows; 4 emotions, 400 clips.

- URL: https://github.com/siddiquelatif/URDU-Dataset
- Licence: research use only (stated by the authors).
- Citation: S. Latif, A. Qayyum, M. Usman, J. Qadir, "Cross Lingual Speech Emotion Recognition: Urdu vs.
  Western Languages", FIT 2018, arXiv:1812.10411.
- Layout: ``Angry/ Happy/ Neutral/ Sad/``, 100 clips each, 1-3 s, 44.1 kHz WAV in the original release.
- Naming: ``S{G}{X}_F{XX}_{E}{YY}``, e.g. ``SM1_F10_A010.wav``: G = M/F gender, X = speaker number
  (the speaker is ``S{G}{X}``, e.g. ``SM1``; 29 distinct ids occur), XX = file number for that speaker,
  E = emotion letter, YY = running number within the emotion.
- Labels: A -> angry, H -> happy, N -> neutral, S -> sad. The folder name must agree with the letter.
- Protocol: no official split; ser_hf uses 5 folds grouped by speaker, stratified by emotion.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.corpora.download import download_and_extract
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import CorpusError

LABELS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
_NAME = re.compile(r"^S(?P<gender>[MF])(?P<number>\d+)_F(?P<file>\d+)_(?P<emotion>[AHNS])(?P<index>\d+)$")
SCHEME = "'SM1_F10_A010.wav' (S{gender}{speaker}_F{file}_{A|H|N|S}{index})"
_COMMIT = "4b546d4e0fa36d1c86c53a281631b2ab7ce2fdec"
URL = f"https://github.com/siddiquelatif/URDU-Dataset/archive/{_COMMIT}.zip"


def parse_name(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise CorpusError(f"File name {path.name!r} does not follow the URDU scheme.")
    emotion = LABELS[match["emotion"]]
    try:
        folder_emotion = canonical_emotion(path.parent.name)
    except CorpusError:
        folder_emotion = emotion  # files outside the emotion folders rely on their name alone
    if folder_emotion != emotion:
        raise CorpusError(f"File name {path.name!r} says {emotion!r} but its folder says {folder_emotion!r}.")
    return Clip(
        path=str(path),
        emotion=emotion,
        speaker=f"S{match['gender']}{int(match['number'])}",
        gender="male" if match["gender"] == "M" else "female",
        metadata={"file_number": int(match["file"])},
    )


def list_clips(root: Path):
    return clips_from_file_names(root, parse_name, SCHEME)


def download(target_dir: Path) -> Path:
    """Download the authors' GitHub repository at a pinned commit and return the corpus folder."""
    download_and_extract(URL, target_dir, f"URDU-Dataset-{_COMMIT}.zip")
    return Path(target_dir) / f"URDU-Dataset-{_COMMIT}"


CORPUS = Corpus(
    name="urdu",
    list_clips=list_clips,
    features={"file_number": datasets.Value("int32")},
    download=download,
    url="https://github.com/siddiquelatif/URDU-Dataset",
    licence="research use only (stated by the authors).",
    citation=(
        'S. Latif, A. Qayyum, M. Usman, J. Qadir, "Cross Lingual Speech Emotion Recognition: Urdu vs. Western '
        'Languages", FIT 2018, arXiv:1812.10411.'
    ),
    language="ur",
    doc=__doc__,
)
