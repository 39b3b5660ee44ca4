"""Your own emotion data as a Hugging Face ``datasets`` dataset: a Hub id, a ``save_to_disk`` folder, a
folder (or file) of parquet/arrow tables, or an ``audiofolder`` directory.

- Audio: the audio column is read as ``Audio(decode=False)``; each cell holds embedded bytes (WAV, FLAC,
  OGG, MP3...) or a path (absolute, or relative to a local dataset's folder). ser_hf decodes it with
  soundfile + soxr, never torchcodec. Embedded bytes are written once to one file per row under
  ``$SER_HF_CACHE/datasets/`` (default ``~/.cache/ser_hf``), keyed by the dataset's fingerprint, so every stage
  after loading (probe cache, fine-tuning collator, evaluation, baselines) reads a path as it does for a
  corpus folder, and the probe's cache keys are the hash of those bytes.
- Labels: a ``ClassLabel`` (its names are used) or strings (integers too), mapped onto the canonical
  emotions like a manifest's labels: known spellings, then ``label_map`` (``--label_map joy=happy,0=neutral``).
- Speakers and genders: optional columns (``--speaker_column_name``, ``--gender_column_name``). Without
  speakers no split can be speaker-independent; ``ser-hf train``/``cv`` then need ``--allow_random_split``.
- Every loaded clip keeps its ``split`` and ``row`` (index in that split), so errors and predictions name rows.
- Licence and citation: those of your data.

Example:
    >>> from ser_hf.corpora import load_corpus
    >>> from ser_hf.corpora.hf_dataset import DatasetSource
    >>> ds = load_corpus(DatasetSource("my_emotions", speaker_column="actor"), splits=["train"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import soundfile as sf

from ser_hf import _io
from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION, is_audio_path
from ser_hf.corpora.audiofolder import is_audiofolder, read_audiofolder
from ser_hf.corpora.base import (
    Clip,
    Corpus,
    Problem,
    report_problems,
    scan_corpus,
    to_dataset,
)
from ser_hf.corpora.cell_values import normalize_gender, normalize_speaker
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.corpora.label_maps import check_label_map
from ser_hf.errors import CorpusError
from ser_hf.paths import display_path, path_key, path_text

#: The columns every clip loaded from a dataset keeps besides the uniform ones.
METADATA_FEATURES = {"split": datasets.Value("string"), "row": datasets.Value("int64")}
#: The column a local dataset's splits gain when streamed (:func:`open_dataset` with ``streaming``): each row's index
#: in its split.
ROW_COLUMN = "__ser_hf_row__"
_FORMAT_SUFFIXES = {"WAV": ".wav", "WAVEX": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3", "AIFF": ".aiff"}


@dataclass(frozen=True)
class DatasetSource:
    """Where a ``datasets`` dataset is and which columns hold the audio, label, speaker and gender.

    Args:
        name: A Hub id, a local ``save_to_disk`` folder, a folder or file of parquet/arrow tables, or an
            ``audiofolder`` directory.
        config: The dataset's configuration (``load_dataset(name, config)``), if it has several.
        audio_column: Column of the audio (an ``Audio`` feature, a ``{bytes, path}`` struct or paths).
        label_column: Column of the emotion labels (``ClassLabel`` or strings).
        speaker_column: Column of speaker ids; absent or ``None``: speakers unknown.
        gender_column: Column of genders (male/female/M/F); absent or ``None``: unknown.
    """

    name: str
    config: str | None = None
    audio_column: str = "audio"
    label_column: str = "label"
    speaker_column: str | None = "speaker"
    gender_column: str | None = "gender"

    def __post_init__(self) -> None:
        # a folder given as bytes or a path-like is its text everywhere the name is used; "" would be the current folder
        object.__setattr__(self, "name", path_text(self.name, "--dataset_name", error=CorpusError, refuse_empty=True))


def _load(name: str, config: str | None, streaming: bool, **options: Any):
    try:
        return datasets.load_dataset(name, config, streaming=streaming, **options)
    except (OSError, ValueError, ConnectionError) as err:  # not found, offline, bad config: all say the same fix
        raise CorpusError(
            f"--dataset_name {name!r}{f' (config {config!r})' if config else ''} cannot be loaded: "
            f"{type(err).__name__}: {err}. Expected a Hub id (reachable, or cached with HF_HUB_OFFLINE=1), a "
            f"save_to_disk folder, a folder or file of parquet/arrow tables, or an audiofolder directory."
        ) from err


def open_dataset(source: DatasetSource, streaming: bool = False) -> Mapping[str, Any]:
    """Split name -> ``datasets.Dataset`` (``IterableDataset`` with ``streaming``) of ``source``.

    Raises:
        CorpusError: when the dataset cannot be found or loaded (the message says what was expected).
    """
    path = Path(source.name).expanduser()
    if not path.exists():
        return _load(source.name, source.config, streaming)
    if path.is_file():
        builder = {".parquet": "parquet", ".arrow": "arrow"}.get(path.suffix.lower())
        if builder is None:
            raise CorpusError(f"--dataset_name {source.name!r} is a file but not a .parquet or .arrow table; pass "
                              f"the table, or the folder of a save_to_disk dataset, parquet shards or audio files.")
        return _load(builder, None, streaming, data_files={"train": str(path)})
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    elif is_audiofolder(path):
        parts = read_audiofolder(path)
    else:
        return _load(str(path), source.config, streaming)
    if streaming:  # local tables are already on disk: iterate them shard by shard like a streamed one
        return {name: _numbered_stream(part, name) for name, part in parts.items()}
    return parts


def _numbered_stream(part: datasets.Dataset, split: str) -> datasets.IterableDataset:
    """A local split read shard by shard like a streamed one, each row carrying its index in the split
    (:data:`ROW_COLUMN`) and the stream its length (``info.splits``): a stream read shard by shard, shuffled, can
    count neither, and errors name rows as a non-streamed load does."""
    rows = len(part)
    # Given, not derived: deriving a fingerprint would hash the whole index column.
    fingerprint = hashlib.sha256(f"{part._fingerprint}\0{ROW_COLUMN}".encode()).hexdigest()[:16]
    numbered = part.add_column(ROW_COLUMN, np.arange(rows), new_fingerprint=fingerprint)
    stream = numbered.to_iterable_dataset(num_shards=min(rows, 64) or 1)
    stream.info.splits = datasets.SplitDict({split: datasets.SplitInfo(split, num_examples=rows)})
    return stream


def select_split(parts: Mapping[str, Any], split: str, source: DatasetSource):
    """The split ``split`` of ``parts`` with its audio column left undecoded (``Audio(decode=False)``).

    Raises:
        CorpusError: an unknown split, or no audio column (both messages list what there is).
    """
    if split not in parts:
        raise CorpusError(f"split {split!r} is not in dataset {source.name!r}, which has splits {sorted(parts)}; pass "
                          f"one of them with --train_split_name / --eval_split_name.")
    part = parts[split]
    columns = list(part.column_names or [])
    if columns and source.audio_column not in columns:
        raise CorpusError(f"dataset {source.name!r} split {split!r} has no audio column {source.audio_column!r}; "
                          f"found columns {sorted(columns)}. Name it with --audio_column_name.")
    feature = (part.features or {}).get(source.audio_column)
    if isinstance(feature, datasets.Audio) and feature.decode:
        part = part.cast_column(source.audio_column, datasets.Audio(decode=False))  # decoding needs torchcodec
    return part


def cache_root() -> Path:
    """``$SER_HF_CACHE`` or ``~/.cache/ser_hf`` (where embedded audio is written)."""
    # Absolute: prediction jobs key their records by absolute path.
    return Path(os.path.abspath(_io.cache_root()))


class AudioCells:
    """Turns audio cells (embedded bytes or a path) into file paths, one file per row for embedded bytes.

    Args:
        folder: Where this split's embedded clips are written (one file per row, named by the row).
        base: Folder that relative paths in cells are relative to (a local dataset's folder), if any.
    """

    def __init__(self, folder: Path, base: Path | None = None) -> None:
        self.folder, self.base = folder, base

    def path(self, row: int, cell: Any) -> str:
        """The file of ``cell``; raises :class:`CorpusError` for an empty cell or bytes that are not audio."""
        if isinstance(cell, str):
            return self._resolve(cell)
        if isinstance(cell, Mapping) and cell.get("bytes"):
            return self._write(row, bytes(cell["bytes"]), cell.get("path"))
        if isinstance(cell, Mapping) and cell.get("path"):
            return self._resolve(cell["path"])
        found = "an empty cell" if not cell else f"{type(cell).__name__} {str(cell)[:60]!r}"
        raise CorpusError(f"the audio cell is {found}; expected embedded audio bytes or a path "
                          f"(an Audio(decode=False) cell: {{'bytes': ..., 'path': ...}}).")

    def locate(self, text: str) -> Path:
        """Where a path cell points: relative paths are taken from the local dataset's folder."""
        path = Path(text).expanduser()
        return Path(path_key(self.base / path if not path.is_absolute() and self.base is not None else path))

    def _resolve(self, text: str) -> str:
        path = self.locate(text)
        if not path.is_file():
            raise CorpusError(f"the audio cell names the file {text!r}, which does not exist (searched "
                              f"{str(path)!r}); embed the audio bytes, or fix the path.")
        return str(path)

    def row_file(self, row: int, cell: Any) -> str:
        """A file of this row alone, whatever its cell holds, so a job keyed by file keeps one record per row.

        Embedded bytes are written as they are (``.bin`` when they are not audio), a path becomes a link to its
        file (even a missing one), an empty cell an empty file: decoding the file then says what is wrong,
        and a prediction job records that as the row's error instead of stopping.
        """
        stem = self.folder / f"{row:09d}"
        if isinstance(cell, Mapping) and cell.get("bytes"):
            try:
                return self._write(row, bytes(cell["bytes"]), cell.get("path"))
            except CorpusError:
                return self._store(stem.with_suffix(".bin"), bytes(cell["bytes"]))
        text = cell if isinstance(cell, str) else cell.get("path") if isinstance(cell, Mapping) else None
        if not text:
            return self._store(stem.with_suffix(".empty"), b"")
        target, link = self.locate(text), stem.with_suffix(Path(text).suffix.lower() or ".audio")
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            try:
                link.symlink_to(target)
            except FileExistsError:  # another process of the same job (accelerate launch) made it meanwhile
                pass
        return str(link)

    def _write(self, row: int, data: bytes, name: str | None) -> str:
        try:
            kind = sf.info(io.BytesIO(data)).format
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            reason = getattr(err, "error_string", err)  # without soundfile's "Error opening <BytesIO at 0x...>"
            raise CorpusError(f"the embedded audio bytes ({len(data)} bytes) cannot be read as audio ({reason}); "
                              f"expected a WAV, FLAC, OGG or MP3 file's bytes. Re-encode or drop this row.") from err
        suffix = Path(name).suffix.lower() if name and is_audio_path(name) else _FORMAT_SUFFIXES.get(kind, ".wav")
        return self._store(self.folder / f"{row:09d}{suffix}", data)

    @staticmethod
    def _store(target: Path, data: bytes) -> str:
        if target.is_symlink() or not (target.is_file() and target.stat().st_size == len(data)):
            target.parent.mkdir(parents=True, exist_ok=True)
            # Written beside and renamed, so a killed load never leaves a half file that a rerun would reuse; a link
            # there (ser_hf writes none) is replaced, never written through or read as the clip.
            _io.atomic_write_bytes(target, data, follow_symlinks=False)
        return str(target)


def audio_cells(source: DatasetSource, split: str, part: Any) -> AudioCells:
    """The :class:`AudioCells` of one split: its own cache folder, keyed by name, config, split and fingerprint."""
    key = "\0".join([source.name, source.config or "", split, str(getattr(part, "_fingerprint", ""))])
    folder = cache_root() / "datasets" / hashlib.sha256(key.encode()).hexdigest()[:20]
    local = Path(source.name).expanduser()
    return AudioCells(folder, base=local.resolve() if local.is_dir() else None)


def cell_text(value: Any, feature: Any) -> str | None:
    """A cell as text: a ``ClassLabel`` id as its name; ``None``/``""``/-1 (ClassLabel's "no label") as None."""
    if value is None or value == "" or (isinstance(feature, datasets.ClassLabel) and value == -1):
        return None
    if isinstance(feature, datasets.ClassLabel):
        if not 0 <= int(value) < feature.num_classes:
            raise CorpusError(f"id {value} is outside the ClassLabel's {feature.num_classes} names {feature.names}.")
        return feature.int2str(int(value))
    return str(value)


def _check_columns(source: DatasetSource, split: str, columns: Sequence[str]) -> None:
    if source.label_column not in columns:
        raise CorpusError(f"dataset {source.name!r} split {split!r} has no label column {source.label_column!r}; "
                          f"found columns {sorted(columns)}. Name it with --label_column_name.")


def dataset_clips(source: DatasetSource, split: str, part: datasets.Dataset, label_map: Mapping[str, str] | None,
                  places: dict[str, str]) -> Iterator[Clip | Problem]:
    """A :class:`Clip` per usable row of one split, a :class:`Problem` naming the row otherwise.

    ``places`` receives clip path -> row description, so later problems (a clip too short) name the row too.
    """
    _check_columns(source, split, part.column_names)
    features = part.features
    optional = [c for c in (source.speaker_column, source.gender_column) if c and c in part.column_names]
    cells = audio_cells(source, split, part)
    for row, example in enumerate(part.select_columns([source.audio_column, source.label_column, *optional])):
        where = f"dataset {source.name!r} split {split!r} row {row}"
        try:
            path = cells.path(row, example[source.audio_column])
            label = cell_text(example[source.label_column], features[source.label_column])
            if label is None:
                raise CorpusError(f"the label cell ({source.label_column!r}) is empty; label the row or drop it.")
            places[path] = where
            yield Clip(path=path, emotion=raw_label_to_emotion(label, label_map), raw_label=label,
                       speaker=normalize_speaker(cell_text(example.get(source.speaker_column),
                                                           features.get(source.speaker_column))),
                       gender=normalize_gender(cell_text(example.get(source.gender_column),
                                                           features.get(source.gender_column))),
                       metadata={"split": split, "row": row})
        except CorpusError as err:
            yield Problem(where, str(err))


def load_dataset_corpus(
    source: DatasetSource,
    splits: Sequence[str] = ("train",),
    *,
    emotions: str | Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    strict: bool = True,
    check_audio: bool | str | None = None,
    min_clip_duration: float | None = MIN_CLIP_DURATION,
    max_clip_duration: float | None = MAX_CLIP_DURATION,
    labelled: set[tuple[str, str]] | None = None,
) -> datasets.Dataset:
    """Load splits of a ``datasets`` dataset as one ser_hf corpus (the uniform columns, plus ``split``, ``row``).

    What :func:`ser_hf.corpora.load_corpus` does with a :class:`DatasetSource` in place of a corpus name: the
    same header checks, strict/lenient handling of unusable rows, emotion subsets and validation.

    Args:
        source: The dataset and its columns.
        splits: The splits to load, in order (e.g. ``["train", "test"]``).
        emotions: Keep only these emotions (``"4class"``, a list...).
        label_map: Raw label -> canonical emotion, e.g. ``{"joy": "happy", "0": "neutral"}``.
        strict: Raise on the first pass if any row is unusable (every one listed); with ``False`` they are
            skipped and named in a warning.
        check_audio: ``"header"`` or ``"decode"`` (see :func:`~ser_hf.corpora.load_corpus`); default as there.
        min_clip_duration: Shortest clip accepted (seconds).
        max_clip_duration: Longest clip accepted (seconds).
        labelled: If given, receives each distinct ``(emotion, raw label)`` of the loaded rows, and this load gives
            no label_map warnings: its caller judges the map over these with the dataset's other labels, as one load
            of all of them would (a streamed training split's, which this load does not read).

    Raises:
        CorpusError: unknown dataset, split or column; unusable rows (strict), each named by split and row.
    """
    check_label_map(label_map)
    parts = open_dataset(source)
    places: dict[str, str] = {}

    def list_clips(root: Path) -> Iterator[Clip | Problem]:
        for split in splits:
            yield from dataset_clips(source, split, select_split(parts, split, source), label_map, places)

    corpus = Corpus(name=source.name, list_clips=list_clips, features=METADATA_FEATURES, doc=__doc__)
    check_audio = ("header" if strict else "decode") if check_audio is None else check_audio
    scan = scan_corpus(corpus, Path(source.name), check_audio=check_audio, min_clip_duration=min_clip_duration,
                       max_clip_duration=max_clip_duration)
    name_rows = _row_namer(places)
    scan.problems = [Problem(places.get(problem.path, problem.path), name_rows(problem.reason))
                     for problem in scan.problems]
    report_problems(scan, strict)
    if labelled is not None:
        labelled.update((clip.emotion, clip.raw_label) for clip in scan.clips)
        # Every clip carries its raw label, already mapped above: to_dataset would use the map only to warn.
        label_map = None
    return to_dataset(scan, corpus, emotions=emotions, label_map=label_map)


def _row_namer(places: Mapping[str, str]):
    """A function giving a problem's reason with every file ser_hf wrote for a row's embedded audio (a copy check
    names the earlier clip's) replaced by that row's description: the user knows rows, not ``$SER_HF_CACHE``'s
    file names. The lookup by displayed path is built once, at the first reason that needs it."""
    cached = re.compile(re.escape(display_path(cache_root() / "datasets")) + r"[/\\][0-9a-f]{20}[/\\]\d{9}\.\w+")
    shown: dict[str, str] = {}

    def name_rows(reason: str) -> str:
        if not cached.search(reason):
            return reason
        if not shown:
            shown.update((display_path(path), where) for path, where in places.items())
        return cached.sub(lambda match: shown.get(match.group(0), match.group(0)), reason)

    return name_rows


def row_files(source: DatasetSource, split: str) -> dict[str, dict[str, Any]]:
    """One file per row of a split (see :meth:`AudioCells.row_file`) -> that row's ``{"dataset", "split", "row"}``.

    What ``ser-hf predict --dataset_name`` predicts: the job keys its records by file, so each row gets exactly
    one record, and a rerun finds the same files and resumes. Labels, speakers and other columns are not read.

    Raises:
        CorpusError: an unknown dataset, split or audio column.
    """
    part = select_split(open_dataset(source), split, source)
    cells = audio_cells(source, split, part)
    return {cells.row_file(row, example[source.audio_column]): {"dataset": source.name, "split": split, "row": row}
            for row, example in enumerate(part.select_columns([source.audio_column]))}
