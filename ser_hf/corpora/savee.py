"""SAVEE (Surrey Audio-Visual Expressed Emotion): British English by 4 male speakers, 7 emotions, 480 clips.

- URL: http://kahlan.eps.surrey.ac.uk/savee/ (registration required)
- Licence: free for research use (registration).
- Citation: S. Haq, P. J. B. Jackson, "Speaker-Dependent Audio-Visual Emotion Recognition", AVSP 2009.
- Layout: ``AudioData/DC/a01.wav`` (speaker folders DC, JE, JK, KL), or flat ``DC_a01.wav`` as in the
  common Kaggle copy; both are accepted.
- Naming: ``{emotion}{NN}`` with an optional ``{speaker}_`` prefix: NN is the sentence number.
- Labels: a angry, d disgust, f fearful, h happy, n neutral, sa sad, su surprised.
- Protocol: leave-one-speaker-out (4 folds).
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, clips_from_file_names
from ser_hf.errors import CorpusError

LABELS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}
SPEAKERS = ("DC", "JE", "JK", "KL")
_NAME = re.compile(r"^(?:(?P<speaker>DC|JE|JK|KL)_)?(?P<emotion>sa|su|a|d|f|h|n)(?P<sentence>\d\d)$")
SCHEME = "'DC_a01.wav' or 'DC/a01.wav' (speaker DC|JE|JK|KL, emotion a|d|f|h|n|sa|su, sentence)"


def parse_name(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise CorpusError(f"File name {path.name!r} does not follow the SAVEE scheme.")
    speaker = match["speaker"] or path.parent.name
    if speaker not in SPEAKERS:
        raise CorpusError(
            f"Cannot tell the speaker of {path.name!r}: no DC/JE/JK/KL prefix and its folder is {speaker!r}."
        )
    return Clip(
        path=str(path),
        emotion=LABELS[match["emotion"]],
        speaker=speaker,
        gender="male",
        metadata={"sentence": int(match["sentence"])},
    )


def list_clips(root: Path):
    return clips_from_file_names(root, parse_name, SCHEME)


CORPUS = Corpus(
    name="savee",
    list_clips=list_clips,
    features={"sentence": datasets.Value("int32")},
    url="http://kahlan.eps.surrey.ac.uk/savee/",
    licence="free for research use (registration).",
    citation='S. Haq, P. J. B. Jackson, "Speaker-Dependent Audio-Visual Emotion Recognition", AVSP 2009.',
    language="en",
    doc=__doc__,
)
