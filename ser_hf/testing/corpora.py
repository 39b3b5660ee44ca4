"""Tiny synthetic corpus trees that follow each real corpus's naming scheme, for offline tests.

The names are written here from each corpus's documentation, independently of the loaders' parsers,
so a loader test checks the parser against the scheme rather than against itself.

Example:
    >>> from ser_hf.testing.corpora import make_corpus_tree
    >>> root = make_corpus_tree("ravdess", "/tmp/ravdess_tiny")  # doctest: +SKIP
    >>> from ser_hf.corpora import load_corpus
    >>> len(load_corpus("ravdess", root))  # doctest: +SKIP
    64
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLING_RATE = 16000


def voice_like(duration: float, frequency: float = 220.0, sampling_rate: int = SAMPLING_RATE, amplitude: float = 0.3,
               seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise, a stand-in for a voiced clip, as a float32 array.

    Like a voice, its pitch moves (a 5 Hz vibrato of +-0.1 octave about ``frequency``) and its level comes and goes
    (6 Hz, 16 dB), so the voicing screen speaker adaptation learns through (:mod:`ser_hf.audio.voicing`) takes it for
    speech, as it takes real clips; a steady tone would be a hum to it."""
    t = np.arange(int(duration * sampling_rate)) / sampling_rate
    phase = 2 * np.pi * frequency * np.cumsum(2.0 ** (0.1 * np.sin(2 * np.pi * 5 * t + seed))) / sampling_rate
    wave = sum(np.sin(k * phase) / k for k in (1, 2, 3)) * (0.55 + 0.4 * np.sin(2 * np.pi * 6 * t + seed))
    wave = amplitude * wave / np.max(np.abs(wave)) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return wave.astype(np.float32)


def write_tone(
    path: str | Path,
    duration: float = 0.25,
    frequency: float = 220.0,
    sampling_rate: int = SAMPLING_RATE,
    amplitude: float = 0.3,
    seed: int = 0,
    subtype: str | None = None,
) -> Path:
    """Write :func:`voice_like` (a stand-in for a voiced clip) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), voice_like(duration, frequency, sampling_rate, amplitude, seed), sampling_rate,
             subtype=subtype)
    return path


def _urdu(root: Path, ext: str) -> list[Path]:
    folders = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad"}
    speakers = ("SM1", "SF2", "SM3", "SF4", "SM5", "SF6")
    paths, index = [], 0
    for s_number, speaker in enumerate(speakers):
        for letter, folder in folders.items():
            for take in range(2):
                index += 1
                paths.append(root / folder / f"{speaker}_F{s_number * 2 + take + 10}_{letter}{index:03d}{ext}")
    return paths


def _ravdess(root: Path, ext: str) -> list[Path]:
    paths = []
    for actor in (1, 2, 5, 6, 9, 10, 13, 14):  # 4 of the 6 actor folds, both genders
        for emotion in range(1, 9):
            for statement in (1, 2):
                intensity = 1 if emotion == 1 else 1 + statement % 2  # neutral has no strong intensity
                name = f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-01-{actor:02d}{ext}"
                paths.append(root / f"Actor_{actor:02d}" / name)
    return paths


def _emodb(root: Path, ext: str) -> list[Path]:
    return [
        root / "wav" / f"{speaker}{text}{emotion}{version}{ext}"
        for speaker in ("03", "08", "10", "13")
        for emotion in "WLEAFTN"
        for text, version in (("a01", "a"), ("b02", "b"))
    ]


def _crema_d(root: Path, ext: str) -> list[Path]:
    actors = ("1001", "1002", "1003", "1004")
    with open(root / "VideoDemographics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        for n, actor in enumerate(actors):
            writer.writerow([actor, 30 + n, "Male" if n % 2 == 0 else "Female", "Caucasian", "Not Hispanic"])
    return [
        root / "AudioWAV" / f"{actor}_{sentence}_{emotion}_{level}{ext}"
        for actor in actors
        for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
        for sentence, level in (("DFA", "XX"), ("IEO", "HI"))
    ]


def _tess(root: Path, ext: str) -> list[Path]:
    folders = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
               "neutral": "neutral", "ps": "pleasant_surprised", "sad": "sad"}
    return [
        root / f"{speaker}_{folder}" / f"{speaker}_{word}_{emotion}{ext}"
        for speaker in ("OAF", "YAF")
        for emotion, folder in folders.items()
        for word in ("back", "bar")
    ]


def _savee(root: Path, ext: str) -> list[Path]:
    return [
        root / "AudioData" / speaker / f"{emotion}{number:02d}{ext}"
        for speaker in ("DC", "JE", "JK", "KL")
        for emotion in ("a", "d", "f", "h", "n", "sa", "su")
        for number in (1, 2)
    ]


def _iemocap(root: Path, ext: str) -> list[Path]:
    """Two sessions, one improvised and one scripted dialog each, labels incl. 'exc' and 'xxx'."""
    labels = ["neu", "hap", "sad", "ang", "exc", "fru", "xxx", "neu"]
    paths = []
    for session in (1, 2):
        for dialog in (f"Ses{session:02d}F_impro01", f"Ses{session:02d}M_script01_1"):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for n, label in enumerate(labels):
                turn = f"{dialog}_{'F' if n % 2 == 0 else 'M'}{n:03d}"
                lines += [f"[{n * 2.5:.4f} - {n * 2.5 + 2:.4f}]\t{turn}\t{label}\t[2.5000, 3.0000, 2.0000]",
                          "C-E1:\tNeutral;\t()", ""]
                paths.append(root / f"Session{session}" / "sentences" / "wav" / dialog / f"{turn}{ext}")
            evaluation = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            evaluation.parent.mkdir(parents=True, exist_ok=True)
            evaluation.write_text("\n".join(lines))
    return paths


def _folder(root: Path, ext: str) -> list[Path]:
    return [
        root / emotion / f"spk{speaker}_{take}{ext}"
        for emotion in ("Angry", "happiness", "neutral", "sad")
        for speaker in range(1, 5)
        for take in range(2)
    ]


def _manifest(root: Path, ext: str) -> list[Path]:
    paths, rows = [], []
    pairs = [(label, speaker) for label in ("angry", "Happy", "neu", "sad") for speaker in "ABCD"]
    for n, (label, speaker) in enumerate(pairs):
        path = root / "clips" / f"clip{n:02d}{ext}"
        split = {"A": "train", "B": "train", "C": "validation", "D": "test"}[speaker]
        rows.append({"path": f"clips/{path.name}", "label": label, "speaker": speaker,
                     "gender": "F" if speaker in "AC" else "M", "split": split, "device": f"mic{n % 2}"})
        paths.append(path)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


LAYOUTS: dict[str, Callable[[Path, str], list[Path]]] = {
    "urdu": _urdu, "ravdess": _ravdess, "emodb": _emodb, "crema_d": _crema_d, "tess": _tess,
    "savee": _savee, "iemocap": _iemocap, "folder": _folder, "manifest": _manifest,
}


def make_corpus_tree(corpus: str, root: str | Path, *, extension: str = ".wav", duration: float = 0.25) -> Path:
    """Write a tiny tree of ``corpus`` under ``root`` with the real naming scheme; returns ``root``.

    Each clip is a short tone whose pitch varies per file, so features differ between clips.
    """
    if corpus not in LAYOUTS:
        raise ValueError(f"No synthetic layout for corpus {corpus!r}; expected one of {sorted(LAYOUTS)}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(LAYOUTS[corpus](root, extension)):
        write_tone(path, duration=duration, frequency=120.0 + 7.0 * (n % 40), seed=n)
    return root
