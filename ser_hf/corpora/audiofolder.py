"""A local ``audiofolder`` tree read without ``datasets``' own builder.

``datasets.load_dataset("audiofolder", ...)`` (and ``load_dataset(DIR)`` on a folder of audio files) encodes
every clip while it prepares the dataset, which needs ``torchcodec``; that does not install everywhere (see
ser_hf's audio decoding notes). The layout is simple enough to read here, with the same conventions:

- Split folders ``train/``, ``test/``, ``validation/`` (also ``valid/``, ``dev/``) at the top; without them
  every file is in the ``train`` split.
- A label per class folder: ``train/angry/clip1.wav`` has label ``angry`` when every file of the split lies
  one folder deep.
- An optional ``metadata.csv`` or ``metadata.jsonl`` (in the split folder or the root) whose ``file_name``
  column names each file relative to the metadata file; its other columns (``speaker``, ``gender``,
  ``label``...) are joined to the files. A ``label`` column there wins over the folder names.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ser_hf.audio import is_audio_path
from ser_hf.corpora.tables import read_csv_rows, read_jsonl_rows
from ser_hf.errors import CorpusError

#: Split folder names -> split, as ``datasets`` names them.
SPLIT_FOLDERS = {"train": "train", "test": "test", "validation": "validation", "valid": "validation",
                 "dev": "validation"}
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
# Table files that make a folder a parquet/arrow dataset rather than an audiofolder.
_TABLE_SUFFIXES = (".parquet", ".arrow")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_audio_path(p) and p.is_file() and not p.name.startswith("."))


def is_audiofolder(root: Path) -> bool:
    """Whether ``root`` is a folder of audio files holding no parquet/arrow tables."""
    files = [p for p in root.rglob("*") if p.is_file()]
    return not any(p.suffix.lower() in _TABLE_SUFFIXES for p in files) and any(map(is_audio_path, files))


def _read_metadata(folder: Path) -> dict[str, dict[str, str]] | None:
    """Absolute file path -> its metadata row, from the folder's metadata file (None when it has none)."""
    for name in METADATA_FILES:
        source = folder / name
        if not source.is_file():
            continue
        what = "audiofolder metadata file"
        if name.endswith(".csv"):
            rows = read_csv_rows(source, what, "a header row file_name,label,...")[1]
        else:
            rows = read_jsonl_rows(source, what, '{"file_name": "a.wav", "label": "happy"}')
        for line, row in rows:
            if None in row or not str(row.get("file_name") or "").strip():
                found = f"{len(row[None])} more cell(s) than the header" if None in row else "no 'file_name'"
                raise CorpusError(f"{str(source)!r} line {line} has {found} (its columns: {sorted(map(str, row))}); "
                                  f"an audiofolder metadata file names each audio file, relative to its own folder, "
                                  f"in 'file_name', one row per file. Fix that line.")
        return {str((folder / str(row["file_name"]).strip()).resolve()): row for _, row in rows}
    return None


def _read_split(folder: Path, root: Path) -> datasets.Dataset:
    files = _audio_files(folder)
    metadata = _read_metadata(folder) or _read_metadata(root) or {}
    columns: dict[str, list] = {"audio": [str(path.resolve()) for path in files]}
    extra = sorted({key for row in metadata.values() for key in row if key != "file_name"})
    if "label" not in extra and {len(p.relative_to(folder).parts) for p in files} == {2}:
        columns["label"] = [path.parent.name for path in files]  # class folders, as audiofolder infers them
    for key in extra:
        columns[key] = [None if (value := metadata.get(audio, {}).get(key)) in (None, "") else str(value)
                        for audio in columns["audio"]]
    return datasets.Dataset.from_dict(columns)


def read_audiofolder(root: Path) -> dict[str, datasets.Dataset]:
    """Split name -> a dataset of ``audio`` (absolute paths), ``label`` and the metadata columns.

    Raises:
        CorpusError: a metadata file without ``file_name``, or a split folder without audio files.
    """
    found = {SPLIT_FOLDERS[d.name.lower()]: d for d in sorted(root.iterdir())
             if d.is_dir() and d.name.lower() in SPLIT_FOLDERS}
    splits = {}
    for split, folder in (found or {"train": root}).items():
        if not _audio_files(folder):
            raise CorpusError(f"audiofolder split folder {str(folder)!r} holds no audio files; add clips or remove it.")
        splits[split] = _read_split(folder, root)
    return splits
