"""TESS (Toronto emotional speech set): 200 target words said by two actresses, 7 emotions, 2800 clips.

- URL: https://tspace.library.utoronto.ca/handle/1807/24487
- Licence: CC BY-NC-ND 4.0.
- Citation: M. K. Pichora-Fuller, K. Dupuis, "Toronto emotional speech set (TESS)", Scholars Portal
  Dataverse, 2020, doi:10.5683/SP2/E8H2MF.
- Layout: one folder per speaker and emotion, e.g. ``OAF_angry/``, ``YAF_pleasant_surprised/``.
- Naming: ``SPK_word_emotion``, e.g. ``OAF_back_angry.wav``: SPK is OAF (older adult female, aged 64)
  or YAF (younger adult female, aged 26); the carrier phrase is "Say the word ...".
- Labels: angry, disgust, fear -> fearful, happy, neutral, ps (pleasant surprise) -> surprised, sad.
- Caution: only two speakers, both female, so speaker-independent results are 2-fold at best.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import CorpusError

_NAME = re.compile(r"^(?P<speaker>OAF|YAF)_(?P<word>.+)_(?P<emotion>angry|disgust|fear|happy|neutral|ps|sad)$", re.I)
SCHEME = "'OAF_back_angry.wav' (OAF|YAF _ word _ angry|disgust|fear|happy|neutral|ps|sad)"


def parse_name(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise CorpusError(f"File name {path.name!r} does not follow the TESS scheme.")
    return Clip(
        path=str(path),
        emotion=canonical_emotion(match["emotion"]),
        speaker=match["speaker"].upper(),
        gender="female",
        metadata={"word": match["word"].lower()},
    )


def list_clips(root: Path):
    return clips_from_file_names(root, parse_name, SCHEME)


CORPUS = Corpus(
    name="tess",
    list_clips=list_clips,
    features={"word": datasets.Value("string")},
    url="https://tspace.library.utoronto.ca/handle/1807/24487",
    licence="CC BY-NC-ND 4.0.",
    citation=(
        'M. K. Pichora-Fuller, K. Dupuis, "Toronto emotional speech set (TESS)", Scholars Portal Dataverse, '
        "2020, doi:10.5683/SP2/E8H2MF."
    ),
    language="en",
    doc=__doc__,
)
