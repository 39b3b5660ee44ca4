"""RAVDESS: acted North American English speech by 24 professional actors, 8 emotions, 1440 clips.

- URL: https://zenodo.org/records/1188976 (``Audio_Speech_Actors_01-24.zip``, the speech audio part)
- Licence: CC BY-NC-SA 4.0 (non-commercial use, attribution, share-alike).
- Citation: S. R. Livingstone, F. A. Russo (2018), "The Ryerson Audio-Visual Database of Emotional
  Speech and Song (RAVDESS)", PLoS ONE 13(5): e0196391.
- Layout: ``Actor_01/ ... Actor_24/``, 60 speech clips each, 3-5 s, 48 kHz WAV in the original.
- Naming: ``MM-VV-EE-II-SS-RR-AA``, e.g. ``03-01-05-02-01-01-12.wav``: modality (03 audio-only), vocal
  channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong; neutral has no strong),
  statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition, actor
  (odd ids male, even female).
- Labels: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised.
- Protocol: 6 folds of 4 actors (1-4, 5-8, ..., 21-24), column ``fold``; the 4-class subset
  (``emotions="4class"``) matches URDU.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.corpora.download import download_and_extract
from ser_hf.errors import CorpusError

LABELS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
_NAME = re.compile(
    r"^(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<emotion>0[1-8])-(?P<intensity>0[12])"
    r"-(?P<statement>0[12])-(?P<repetition>0[12])-(?P<actor>\d\d)$"
)
SCHEME = "'03-01-05-02-01-01-12.wav' (modality-channel-emotion-intensity-statement-repetition-actor)"
URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"


def parse_name(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise CorpusError(f"File name {path.name!r} does not follow the RAVDESS scheme.")
    actor = int(match["actor"])
    if not 1 <= actor <= 24:
        raise CorpusError(f"File name {path.name!r} names actor {actor}; RAVDESS actors are 01-24.")
    return Clip(
        path=str(path),
        emotion=LABELS[match["emotion"]],
        speaker=f"{actor:02d}",
        gender="male" if actor % 2 else "female",
        metadata={
            "intensity": "normal" if match["intensity"] == "01" else "strong",
            "statement": int(match["statement"]),
            "repetition": int(match["repetition"]),
            "vocal_channel": "speech" if match["channel"] == "01" else "song",
            "fold": (actor - 1) // 4 + 1,
        },
    )


def list_clips(root: Path):
    return clips_from_file_names(root, parse_name, SCHEME)


def download(target_dir: Path) -> Path:
    """Download the speech audio release from Zenodo and return the folder holding ``Actor_*``."""
    return download_and_extract(URL, target_dir, "Audio_Speech_Actors_01-24.zip")


CORPUS = Corpus(
    name="ravdess",
    list_clips=list_clips,
    features={
        "intensity": datasets.Value("string"),
        "statement": datasets.Value("int32"),
        "repetition": datasets.Value("int32"),
        "vocal_channel": datasets.Value("string"),
        "fold": datasets.Value("int32"),
    },
    fold_column="fold",
    download=download,
    url="https://zenodo.org/records/1188976",
    licence="CC BY-NC-SA 4.0 (non-commercial use, attribution, share-alike).",
    citation=(
        'S. R. Livingstone, F. A. Russo (2018), "The Ryerson Audio-Visual Database of Emotional Speech and '
        'Song (RAVDESS)", PLoS ONE 13(5): e0196391.'
    ),
    language="en",
    doc=__doc__,
)
