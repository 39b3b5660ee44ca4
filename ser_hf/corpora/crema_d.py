"""CREMA-D: acted English sentences by 91 actors of diverse age and ethnicity, 6 emotions, 7442 clips.

- URL: https://github.com/CheyneyComputerScience/CREMA-D (audio in Git LFS; no direct download here)
- Licence: Open Database License (ODbL) v1.0; contents under the Database Contents License.
- Citation: H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova, R. Verma, "CREMA-D:
  Crowd-sourced Emotional Multimodal Actors Dataset", IEEE Trans. Affective Computing 5(4), 2014.
- Layout: ``AudioWAV/`` with 16 kHz WAV files; ``VideoDemographics.csv`` (ActorID, Age, Sex, ...) beside
  it or in the data directory gives each actor's gender (``gender`` is ``None`` without it).
- Naming: ``AAAA_SSS_EEE_LL``, e.g. ``1001_DFA_ANG_XX.wav``: actor 1001-1091, sentence code (12
  sentences), emotion, level (LO low, MD medium, HI high, XX unspecified).
- Labels: ANG angry, DIS disgust, FEA fearful, HAP happy, NEU neutral, SAD sad.
- Protocol: no official split; speaker-grouped folds.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.corpora.cell_values import normalize_gender
from ser_hf.errors import CorpusError

LABELS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")
SCHEME = "'1001_DFA_ANG_XX.wav' (actor_sentence_emotion_level)"


def read_demographics(root: Path) -> dict[str, str | None]:
    """Actor id -> gender from ``VideoDemographics.csv`` in ``root`` or its parent; empty if absent."""
    for candidate in (root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv"):
        if candidate.is_file():
            with open(candidate, newline="") as handle:
                return {row["ActorID"]: normalize_gender(row.get("Sex")) for row in csv.DictReader(handle)}
    return {}


def list_clips(root: Path):
    genders = read_demographics(root)

    def parse_name(path: Path) -> Clip:
        match = _NAME.match(path.stem)
        if match is None or match["emotion"] not in LABELS or match["level"] not in LEVELS:
            raise CorpusError(f"File name {path.name!r} does not follow the CREMA-D scheme.")
        return Clip(
            path=str(path),
            emotion=LABELS[match["emotion"]],
            speaker=match["actor"],
            gender=genders.get(match["actor"]),
            metadata={"sentence": match["sentence"], "intensity": LEVELS[match["level"]]},
        )

    return clips_from_file_names(root, parse_name, SCHEME)


CORPUS = Corpus(
    name="crema_d",
    list_clips=list_clips,
    features={"sentence": datasets.Value("string"), "intensity": datasets.Value("string")},
    url="https://github.com/CheyneyComputerScience/CREMA-D",
    licence="Open Database License (ODbL) v1.0; contents under the Database Contents License.",
    citation=(
        'H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova, R. Verma, "CREMA-D: Crowd-sourced '
        'Emotional Multimodal Actors Dataset", IEEE Trans. Affective Computing 5(4), 2014.'
    ),
    language="en",
    doc=__doc__,
)
