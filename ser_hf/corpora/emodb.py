"""EmoDB (Berlin Database of Emotional Speech): acted German speech by 10 actors, 7 emotions, 535 clips.

- URL: http://emodb.bilderbar.info/ (``download/download.zip``)
- Licence: free for research; cite the paper below.
- Citation: F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss, "A Database of German
  Emotional Speech", Interspeech 2005.
- Layout: ``wav/`` with 16 kHz WAV files.
- Naming: ``SSTTTEV``, e.g. ``03a01Fa.wav``: SS speaker (03, 08-16), TTT text code (a01-a07, b01-b10),
  E emotion letter (German initial), V version letter.
- Labels: W (Wut) angry, L (Langeweile) boredom, E (Ekel) disgust, A (Angst) fearful, F (Freude) happy,
  T (Trauer) sad, N neutral.
- Speakers: male 03, 10, 11, 12, 15; female 08, 09, 13, 14, 16.
- Protocol: no official split; leave-one-speaker-out or speaker-grouped folds.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.corpora.download import download_and_extract
from ser_hf.errors import CorpusError

LABELS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
GENDERS = {
    "03": "male", "10": "male", "11": "male", "12": "male", "15": "male",
    "08": "female", "09": "female", "13": "female", "14": "female", "16": "female",
}
_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])$")
SCHEME = "'03a01Fa.wav' (speaker, text code, emotion letter W/L/E/A/F/T/N, version)"
URL = "http://emodb.bilderbar.info/download/download.zip"


def parse_name(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise CorpusError(f"File name {path.name!r} does not follow the EmoDB scheme.")
    if match["speaker"] not in GENDERS:
        raise CorpusError(f"File name {path.name!r} names speaker {match['speaker']}; EmoDB has {sorted(GENDERS)}.")
    return Clip(
        path=str(path),
        emotion=LABELS[match["emotion"]],
        speaker=match["speaker"],
        gender=GENDERS[match["speaker"]],
        metadata={"text": match["text"], "version": match["version"]},
    )


def list_clips(root: Path):
    return clips_from_file_names(root, parse_name, SCHEME)


def download(target_dir: Path) -> Path:
    """Download EmoDB from its web site and return the folder holding ``wav/``."""
    return download_and_extract(URL, target_dir, "emodb.zip")


CORPUS = Corpus(
    name="emodb",
    list_clips=list_clips,
    features={"text": datasets.Value("string"), "version": datasets.Value("string")},
    download=download,
    url="http://emodb.bilderbar.info/",
    licence="free for research; cite the paper below.",
    citation=(
        'F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss, "A Database of German Emotional '
        'Speech", Interspeech 2005.'
    ),
    language="de",
    doc=__doc__,
)
