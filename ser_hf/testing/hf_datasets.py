"""Tiny Hugging Face ``datasets`` emotion datasets on disk, in every layout ``--dataset_name`` accepts, for tests.

They are built without ``datasets``' audio encoder (which needs torchcodec): the audio column is written as
a ``{bytes, path}`` struct and cast to ``Audio(decode=False)``, exactly what a dataset pushed to the Hub holds.

Example:
    >>> from ser_hf.testing.hf_datasets import make_emotion_dataset
    >>> root = make_emotion_dataset("/tmp/emo", layout="parquet")  # doctest: +SKIP
    >>> from ser_hf.corpora import DatasetSource, load_corpus
    >>> len(load_corpus(DatasetSource(str(root))))  # doctest: +SKIP
    24
"""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from ser_hf.testing.corpora import SAMPLING_RATE

EMOTIONS = ("neutral", "happy", "sad", "angry")
SPEAKERS = ("spk1", "spk2", "spk3", "spk4", "spk5", "spk6")
LAYOUTS = ("save_to_disk", "parquet", "audiofolder")


def audio_bytes(seed: int, duration: float = 0.4, format: str = "WAV") -> bytes:
    """The bytes of a short tone file (``format``: WAV, FLAC or OGG), different for every seed."""
    buffer = io.BytesIO()
    t = np.arange(int(duration * SAMPLING_RATE)) / SAMPLING_RATE
    wave = 0.3 * np.sin(2 * np.pi * (150.0 + 10 * seed) * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    sf.write(buffer, wave.astype(np.float32), SAMPLING_RATE, format=format)
    return buffer.getvalue()


def emotion_rows(n_speakers: int = 6, per_emotion: int = 1, format: str = "WAV") -> dict[str, list]:
    """Columns ``audio`` (embedded bytes), ``emotion`` (strings), ``actor`` and ``sex`` of a small dataset."""
    rows: dict[str, list] = {"audio": [], "emotion": [], "actor": [], "sex": []}
    for s, speaker in enumerate(SPEAKERS[:n_speakers]):
        for e, emotion in enumerate(EMOTIONS):
            for take in range(per_emotion):
                seed = (s * len(EMOTIONS) + e) * per_emotion + take
                rows["audio"].append({"bytes": audio_bytes(seed, format=format), "path": f"{speaker}_{emotion}_{take}.wav"})
                rows["emotion"].append(emotion)
                rows["actor"].append(speaker)
                rows["sex"].append("F" if s % 2 else "M")
    return rows


def to_dataset(rows: dict[str, list], class_labels: bool = False) -> datasets.Dataset:
    """``rows`` as a ``datasets.Dataset`` with an ``Audio(decode=False)`` column (labels as ClassLabel if asked)."""
    label = datasets.ClassLabel(names=list(EMOTIONS)) if class_labels else datasets.Value("string")
    features = {"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}, "emotion": label}
    features.update({name: datasets.Value("string") for name in rows if name not in features})
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features)).cast_column(
        "audio", datasets.Audio(decode=False))


def make_emotion_dataset(root: str | Path, layout: str = "save_to_disk", *, class_labels: bool = False,
                         speakers: bool = True, format: str = "WAV", test_split: bool = False) -> Path:
    """Write a 6-speaker, 4-emotion dataset (24 clips of 0.4 s) in ``layout`` under ``root``; return its path.

    Args:
        root: Folder to create.
        layout: ``save_to_disk`` (a DatasetDict), ``parquet`` (one shard per split) or ``audiofolder`` (class
            folders of WAV files and a metadata.csv with ``actor``/``sex``).
        class_labels: Labels as a ``ClassLabel`` (ids) instead of strings (not for audiofolder).
        speakers: Keep the ``actor`` column (False: no speaker ids).
        format: Container of the embedded bytes: WAV, FLAC or OGG.
        test_split: Also a ``test`` split holding the last two speakers (else everything is ``train``).

    Columns: ``audio``, ``emotion``, ``actor`` (the speaker), ``sex`` (M/F).
    """
    root = Path(root)
    rows = emotion_rows(format=format)
    if not speakers:
        del rows["actor"]
    held_out = [i for i, name in enumerate(rows.get("actor") or [""] * len(rows["audio"])) if name in SPEAKERS[4:]]
    parts = {"train": rows}
    if test_split:
        parts = {"train": {k: [v for i, v in enumerate(col) if i not in held_out] for k, col in rows.items()},
                 "test": {k: [v for i, v in enumerate(col) if i in held_out] for k, col in rows.items()}}
    if layout == "audiofolder":
        for split, part in parts.items():
            folder = root / split if test_split else root
            lines = ["file_name,emotion_text,actor,sex" if speakers else "file_name,emotion_text,sex"]
            for i, cell in enumerate(part["audio"]):
                name = f"{part['emotion'][i]}/{cell['path']}"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(cell["bytes"])
                lines.append(",".join([name, part["emotion"][i], *([part["actor"][i]] if speakers else []), part["sex"][i]]))
            (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
        return root
    built = {split: to_dataset(part, class_labels) for split, part in parts.items()}
    if layout == "save_to_disk":
        datasets.DatasetDict(built).save_to_disk(str(root))
    elif layout == "parquet":
        root.mkdir(parents=True, exist_ok=True)
        for split, dataset in built.items():
            dataset.to_parquet(str(root / f"{split}-00000-of-00001.parquet"))
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    return root
