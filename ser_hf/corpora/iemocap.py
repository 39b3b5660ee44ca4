"""IEMOCAP: dyadic acted English sessions (improvised and scripted), 5 sessions x 2 actors, ~10k turns.

- URL: https://sail.usc.edu/iemocap/ (release by request; no direct download)
- Licence: the USC IEMOCAP release agreement (research only, no redistribution).
- Citation: C. Busso et al., "IEMOCAP: Interactive emotional dyadic motion capture database",
  Language Resources and Evaluation 42(4), 2008.
- Layout: ``IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/*.txt`` (one line per turn:
  ``[start - end]  Ses01F_impro01_F000  neu  [V, A, D]``) and the audio in
  ``Session{n}/sentences/wav/<dialog>/<turn>.wav``.
- Speakers: ``Ses{nn}{F|M}`` -- the letter of the turn's last name part (``F000`` is the female actor).
- Labels: neu neutral, hap happy, exc excited, sad, ang angry, fru frustrated, fea fearful, sur
  surprised, dis disgust, oth other; ``xxx`` (no majority among annotators) is excluded and counted.
  By default excited is merged into happy (``label_map={"excited": "happy"}``), the usual 4-class task
  with ``emotions="4class"``; pass ``label_map={}`` to keep them apart.
- Protocol: leave-one-session-out, 5 folds (column ``session``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, Problem, iter_audio_files
from ser_hf.errors import CorpusError

LABELS = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry", "fru": "frustrated",
    "fea": "fearful", "sur": "surprised", "dis": "disgust", "oth": "other",
}
_LINE = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\s+(?P<turn>Ses(?P<session>\d\d)\w+)\s+(?P<label>\w+)\s+"
    r"\[(?P<v>[\d.]+), (?P<a>[\d.]+), (?P<d>[\d.]+)\]"
)


def _session_dirs(root: Path) -> list[Path]:
    sessions = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
    if not sessions:
        raise CorpusError(
            f"No Session1..Session5 folders in {str(root)!r}. Expected the IEMOCAP_full_release folder "
            f"(holding Session1/dialog/EmoEvaluation and Session1/sentences/wav); pass it as --data-dir."
        )
    return sessions


def _clip(match: re.Match, audio: dict[str, Path]) -> Clip | Problem:
    turn = match["turn"]
    if turn not in audio:
        return Problem(turn, "labelled in EmoEvaluation but no audio file sentences/wav/<dialog>/<turn>.* exists")
    speaker_letter = turn.rsplit("_", 1)[1][0]
    return Clip(
        path=str(audio[turn]),
        emotion=LABELS.get(match["label"], match["label"]),  # 'xxx' stays raw: excluded and counted
        speaker=f"Ses{match['session']}{speaker_letter}",
        gender="female" if speaker_letter == "F" else "male",
        metadata={
            "session": int(match["session"]),
            "dialog_type": "improvised" if "_impro" in turn else "scripted",
            "valence": float(match["v"]),
            "arousal": float(match["a"]),
            "dominance": float(match["d"]),
        },
    )


def list_clips(root: Path) -> Iterator[Clip | Problem]:
    for session in _session_dirs(root):
        audio = {path.stem: path for path in iter_audio_files(session / "sentences")}
        label_files = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not label_files:
            yield Problem(str(session), "no dialog/EmoEvaluation/*.txt label files")
        for label_file in label_files:
            for line in label_file.read_text(errors="replace").splitlines():
                match = _LINE.match(line)
                if match is not None:
                    yield _clip(match, audio)


CORPUS = Corpus(
    name="iemocap",
    list_clips=list_clips,
    features={
        "session": datasets.Value("int32"),
        "dialog_type": datasets.Value("string"),
        "valence": datasets.Value("float32"),
        "arousal": datasets.Value("float32"),
        "dominance": datasets.Value("float32"),
    },
    fold_column="session",
    default_label_map={"excited": "happy"},
    url="https://sail.usc.edu/iemocap/",
    licence="the USC IEMOCAP release agreement (research only, no redistribution).",
    citation=(
        'C. Busso et al., "IEMOCAP: Interactive emotional dyadic motion capture database", Language Resources '
        "and Evaluation 42(4), 2008."
    ),
    language="en",
    doc=__doc__,
)
