"""A local ``audiofolder`` tree read without ``datasets``' own builder.

``datasets.load_dataset("audiofolder", ...)`` (and ``load_dataset(DIR)`` on a folder of audio files) encodes
every clip while it prepares the dataset, which needs ``torchcodec``; that does not install everywhere (see
ser_hf's audio decoding notes). The layout is simple enough to read here, with the same conventions:

- Split folders at the top, their names read as ``datasets`` reads them (:func:`ser_hf.corpora.split_names.split_name`:
  a keyword such as ``train``, ``dev``, ``testing`` or ``eval`` alone or joined to other text by ``-._``, a space or a
  digit: ``test1/``, ``Test-set/``, ``train_data/``, ``eval 2/``; any case, full-width letters too); without them every
  file is in the ``train`` split. Two folders naming one split (``Train/`` and ``train/``, ``dev/`` and
  ``validation/``), a folder naming two (``train_test/``), a folder that looks like a split name but is not one
  (``tëst/``, ``test(2)/``) and, in a tree without top-level split folders, split folders deeper down
  (``data/test/``, which ``datasets`` reads as splits) are refused: each would merge or drop clips without a word. A
  keyword glued to letters (``testset/``) is warned about; audio files outside the split folders are named in a
  warning (they are not loaded).
- A label per class folder: ``train/angry/clip1.wav`` has label ``angry`` when every file of the split lies
  one folder deep.
- An optional ``metadata.csv`` or ``metadata.jsonl``, its name in any case (``Metadata.CSV``; ``datasets`` itself
  matches the lower-case names only, and would ignore it), in the split folder or the root, whose ``file_name``
  column names each file relative to the metadata file; its other columns (``speaker``, ``gender``, ``label``...)
  are joined to the files. One metadata file per folder (``metadata.csv`` and ``Metadata.csv`` are two), and a root
  one naming no file of a split folder that has its own: else one of them would be ignored without a word. Other
  files named ``metadata.*`` (``metadata.tsv``, one in a class folder) are named in a warning: they are not read. A
  ``label`` column there wins over the folder names. ``file_name`` and every other column name are read in any case,
  surrounding spaces ignored, as a manifest's are.

Symlinked sub-folders are entered, each real folder once (:func:`ser_hf.corpora.base.iter_audio_files`).
"""

from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import datasets

from ser_hf.audio import is_audio_path
from ser_hf.corpora.manifest import _rename_columns
from ser_hf.corpora.split_names import SPLIT_NAME_RULE, SPLIT_SPELLINGS, split_lookalike, splits_named
from ser_hf.corpora.tables import Row, read_csv_rows, read_jsonl_rows
from ser_hf.errors import CorpusError
from ser_hf.paths import display_path, printable, walk_files

logger = logging.getLogger(__name__)

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
# Table files that make a folder a parquet/arrow dataset rather than an audiofolder.
_TABLE_SUFFIXES = (".parquet", ".arrow")
# How many unmatched rows or stray files an error lists by name; the rest are counted.
_LISTED = 5


def _listing(names: list[str]) -> str:
    """The first :data:`_LISTED` names, quoted and printable, and how many more there are: ``'a', 'b' and 3 more``."""
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(repr(printable(name)) for name in names[:_LISTED]) + more


@dataclass(frozen=True)
class _Tree:
    """One walk of an audiofolder, shared by every check of a load: walking it again for each split and check
    cost 4 to 6 walks of a large tree, and named a folder that cannot be listed once per walk."""

    files: list[Path]  # every entry that is no folder, in walk order
    audio: list[Path]  # the audio files among them, sorted, as :func:`~ser_hf.corpora.base.iter_audio_files` finds


def _walk(root: Path, *, warn: bool = True) -> _Tree:
    """Every file under ``root``, walked as every corpus is (:func:`~ser_hf.corpora.base.iter_audio_files`:
    ``Path.rglob`` skips symlinked sub-folders, and their clips went missing without a word), and its audio files:
    hidden ones (macOS's ``._x.wav``) and anything but a file (a dangling link) left out. A folder that cannot be
    listed is named in a warning."""
    unlisted: list[tuple[str, OSError]] = []
    files = [Path(path) for path in walk_files(root, unlisted=unlisted)]
    for folder, error in unlisted if warn else ():
        logger.warning("cannot list the folder %s (%s): the clips in it are not loaded. Make it readable, or move "
                       "it out of %s.", display_path(folder), error.strerror or error, display_path(root))
    audio = sorted(path for path in files if is_audio_path(path) and not path.name.startswith(".") and path.is_file())
    return _Tree(files, audio)


def _under(audio: list[Path], folder: Path) -> list[Path]:
    """The files of ``audio`` (a walk's, sorted) that lie below ``folder``, a folder of the walked tree; a folder
    that is a link is walked on its own (the tree's walk enters each real folder once, under its first path)."""
    if folder.is_symlink():
        return _walk(folder, warn=False).audio
    return [path for path in audio if path.is_relative_to(folder)]


def is_audiofolder(root: Path) -> bool:
    """Whether ``root`` is a folder of audio files holding no parquet/arrow tables."""
    files = [Path(path) for path in walk_files(root) if os.path.isfile(path)]
    return not any(p.suffix.lower() in _TABLE_SUFFIXES for p in files) and any(map(is_audio_path, files))


def _read_columns(row: dict, where: str, spellings: dict | None = None) -> dict:
    """``row`` with its column names read as a manifest's are (``' Label'`` is ``label``, ``'Speaker'`` is
    ``speaker``, ``mic`` after ``Mic`` is ``Mic``: ``spellings`` is shared by the rows of one file; two spellings in
    one row refused) and ``file_name`` in any case too: else a metadata ``Label`` column would be a column of its own,
    and the label it gives ignored without a word."""
    named = _rename_columns(row, where, spellings)
    spellings = [key for key in named if isinstance(key, str) and key.strip().casefold() == "file_name"]
    if len(spellings) > 1:
        raise CorpusError(f"{where} names the column 'file_name' twice, as {printable(spellings[0])!r} and "
                          f"{printable(spellings[1])!r}; column names are matched in any case and surrounding spaces "
                          f"ignored. Remove or rename one of them.")
    if spellings and spellings[0] != "file_name":
        named["file_name"] = named.pop(spellings[0])
    return named


def _folded(name: str) -> str:
    """A file name as metadata file names are matched: NFKC, any case, surrounding spaces ignored."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _metadata_files(folder: Path) -> list[Path]:
    """The folder's metadata files, their names in any case (``Metadata.CSV``): one passed over for its case lost its
    speakers or labels without a word."""
    return sorted(path for path in folder.iterdir() if _folded(path.name) in METADATA_FILES and path.is_file())


def _metadata_rows(folder: Path) -> tuple[Path, list[Row]] | None:
    """The folder's metadata file and its rows, every row checked to name a file (None when it has none).

    Raises:
        CorpusError: the folder holds two metadata files (``metadata.csv`` and ``metadata.jsonl``, or
            ``metadata.csv`` and ``Metadata.csv``: one would be ignored), or a bad row.
    """
    present = _metadata_files(folder)
    if len(present) > 1:
        names = [printable(path.name) for path in present]
        listed = f"both {names[0]} and {names[1]}" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
        raise CorpusError(f"audiofolder {display_path(folder)!r} holds {listed}; expected one metadata file per "
                          f"folder (metadata.csv or metadata.jsonl, its name read in any case), as only one of them "
                          f"would be read. Merge their rows into one file and remove the other(s).")
    if not present:
        return None
    source = present[0]
    what, shown = "audiofolder metadata file", display_path(source)
    spellings: dict = {}
    if _folded(source.name).endswith(".csv"):
        header, rows = read_csv_rows(source, what, "a header row file_name,label,...")
        _read_columns(dict.fromkeys(header), f"{shown!r}: its header", spellings)  # a doubled column is named here
        rows = [(line, _read_columns(row, f"{shown!r}: its header", spellings)) for line, row in rows]
    else:
        rows = [(line, _read_columns(row, f"{shown!r} line {line}", spellings))
                for line, row in read_jsonl_rows(source, what, '{"file_name": "a.wav", "label": "happy"}')]
    for line, row in rows:
        if None in row or not str(row.get("file_name") or "").strip():
            found = f"{len(row[None])} more cell(s) than the header" if None in row else "no 'file_name'"
            raise CorpusError(f"{str(source)!r} line {line} has {found} (its columns: {sorted(map(str, row))}); "
                              f"an audiofolder metadata file names each audio file, relative to its own folder, "
                              f"in 'file_name', one row per file. Fix that line.")
    return source, rows


def _file_name(row: dict) -> str:
    return str(row["file_name"]).strip()


def _other_cells(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "file_name"}


def _read_metadata(folder: Path, audio: list[Path]) -> dict[str, dict[str, str]] | None:
    """Absolute file path -> its metadata row, from the folder's metadata file (None when it has none); ``audio`` is
    the folder's audio files.

    Raises:
        CorpusError: a row without ``file_name``, two rows naming one file, or rows naming no audio file.
    """
    found = _metadata_rows(folder)
    if found is None:
        return None
    source, rows = found
    by_file: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for line, row in rows:
        path = str((folder / _file_name(row)).resolve())
        if path in by_file:
            # Keeping either row would silently drop the other's speaker or label.
            first = by_file[path]
            raise CorpusError(
                f"{display_path(source)!r}: lines {lines[path]} and {line} both name the audio file "
                f"{display_path(path)!r} (as {_file_name(first)!r} with {_other_cells(first)} and as "
                f"{_file_name(row)!r} with {_other_cells(row)}); expected one row per file. Keep one of the two rows.")
        by_file[path], lines[path] = row, line
    _check_rows_match_files(source, folder, by_file, lines, audio)
    return by_file


def _check_rows_match_files(source: Path, folder: Path, by_file: dict[str, dict], lines: dict[str, int],
                            audio: list[Path]) -> None:
    """Refuse metadata rows whose ``file_name`` is no audio file of the folder the metadata describes (``audio``).

    Such a row is usually a typo or a case slip: ignoring it would leave the real file without its speaker or
    label, and nothing would say so.
    """
    known = {str(path.resolve()) for path in audio}
    by_lower = {str(path.relative_to(folder)).lower(): str(path.relative_to(folder)) for path in audio}
    unmatched = sorted((line, path) for path, line in lines.items() if path not in known)
    if not unmatched:
        return
    shown = []
    for line, path in unmatched[:_LISTED]:
        name = _file_name(by_file[path])
        near = by_lower.get(os.path.normpath(name.replace("\\", "/")).lower())
        hint = f", did you mean {near!r}?" if near else ""
        if "\\" in name:  # a path copied from Windows: '\\' is part of a file name here, not a separator
            hint += "; separate folders with '/', not a backslash"
        shown.append(f"line {line} {name!r} ({_why_unmatched(Path(path), folder)}{hint})")
    more = f" and {len(unmatched) - _LISTED} more" if len(unmatched) > _LISTED else ""
    raise CorpusError(
        f"{display_path(source)!r}: {len(unmatched)} row(s) name no audio file in {display_path(folder)!r}: "
        f"{'; '.join(shown)}{more}. Expected each file_name to be an audio file there, relative to the metadata "
        f"file and spelt with the same case. Check the spelling and case, or remove the row(s).")


def _why_unmatched(path: Path, folder: Path) -> str:
    if not path.is_relative_to(folder.resolve()):
        return "outside that folder"
    if not path.exists():
        return "no such file"
    return "not an audio file ser_hf reads" if path.is_file() else "not a file"


def _folder_labels(folder: Path, files: list[Path]) -> list[str] | None:
    """The class-folder label of every file, or None when the split's files are not all one folder deep.

    Raises:
        CorpusError: class folders hold files, but other files lie at another depth; they would switch the
            folder labels off for every file, and the only later sign would be a missing label column.
    """
    depths = [len(path.relative_to(folder).parts) for path in files]
    if set(depths) == {2}:
        return [path.parent.name for path in files]  # class folders, as audiofolder infers them
    if 2 not in depths:
        return None  # no class folders: a tree without labels (e.g. clips to predict)
    odd = [str(path.relative_to(folder)) for path, depth in zip(files, depths) if depth != 2]
    raise CorpusError(
        f"audiofolder {display_path(folder)!r}: {len(odd)} audio file(s) are not one folder deep "
        f"({_listing(odd)}), while {depths.count(2)} lie in class folders. Labels come "
        f"from the class folders only when every file lies one folder deep (e.g. 'happy/a.wav'), so these files "
        f"switch them off for all {len(files)} files. Move them into a class folder, remove them, or give every "
        f"file a 'label' in metadata.csv.")


def _split_metadata(folder: Path, shared: dict[str, dict[str, str]] | None,
                    files: list[Path]) -> dict[str, dict[str, str]]:
    """The metadata of the split folder ``folder`` (its audio ``files``): its own metadata file's, else the root's
    (``shared``).

    Raises:
        CorpusError: both have one and the root's names files of this split: those rows would be ignored.
    """
    own = _read_metadata(folder, files)
    if own is None:
        return shared or {}
    inside = sorted(path for path in (shared or {}) if Path(path).is_relative_to(folder.resolve()))
    if inside:
        shown = _listing([display_path(path) for path in inside])
        raise CorpusError(f"audiofolder split folder {display_path(folder)!r} has its own metadata file, and the root's "
                          f"metadata file also names {len(inside)} of its files ({shown}); only the split "
                          f"folder's would be read for them. Keep those rows in one of the two files.")
    return own


def _read_split(folder: Path, shared: dict[str, dict[str, str]] | None, files: list[Path]) -> datasets.Dataset:
    """The split in ``folder``, its audio ``files`` labelled by the metadata or their class folders."""
    metadata = _split_metadata(folder, shared, files)
    columns: dict[str, list] = {"audio": [str(path.resolve()) for path in files]}
    extra = sorted({key for row in metadata.values() for key in row if key != "file_name"})
    if "audio" in extra:  # the clip is the file its file_name names: a column of that name would replace it
        extra.remove("audio")
        logger.warning("the metadata.csv of the audiofolder %s has a column 'audio'; it is left out: each row's clip "
                       "is the file its file_name names. Rename the column to keep what it holds.",
                       display_path(folder))
    labels = None if "label" in extra else _folder_labels(folder, files)
    if labels is not None:
        columns["label"] = labels
    for key in extra:
        columns[key] = [None if (value := metadata.get(audio, {}).get(key)) in (None, "") else str(value)
                        for audio in columns["audio"]]
    return datasets.Dataset.from_dict(columns)


def read_audiofolder(root: Path) -> dict[str, datasets.Dataset]:
    """Split name -> a dataset of ``audio`` (absolute paths), ``label`` and the metadata columns.

    Raises:
        CorpusError: a metadata file without ``file_name``, two rows for one file, rows naming no audio file, a
            split folder without audio files, files outside the class folders that switch folder labels off, or
            split folders that cannot be told apart (:func:`_split_folders`).
    """
    tree = _walk(root)
    found = _split_folders(root, tree.audio)
    shared = _read_metadata(root, tree.audio) if found else None  # without split folders the root's is the split's own
    splits = {}
    for split, folder in (found or {"train": root}).items():
        # Each split folder walked on its own, as a split: a link inside one to another's clips keeps them in both
        # (the root's walk enters each real folder once); a folder that cannot be listed was named by the root's.
        files = _walk(folder, warn=False).audio if found else tree.audio
        if not files:
            raise CorpusError(f"audiofolder split folder {str(folder)!r} holds no audio files; add clips or remove it.")
        splits[split] = _read_split(folder, shared, files)
    _check_splits_share_no_file(root, splits)
    if found:
        _warn_outside_splits(root, found, tree.audio)
    _warn_unread_metadata(root, [root, *found.values()], tree.files)
    return splits


def _check_splits_share_no_file(root: Path, splits: dict[str, datasets.Dataset]) -> None:
    """Refuse one real file in two splits (a link in ``train/`` to a class folder of ``test/``): its clip would be
    trained on and tested on, and every score on that test split would be optimistic without a word."""
    first: dict[str, str] = {}
    shared: dict[str, tuple[str, str]] = {}
    for split, part in splits.items():
        for audio in part["audio"]:  # resolved paths: a link and its target are one file
            if first.setdefault(audio, split) != split:
                shared.setdefault(audio, (first[audio], split))
    if shared:
        (audio, (one, other)), *_ = shared.items()
        raise CorpusError(
            f"audiofolder {display_path(root)!r}: {len(shared)} audio file(s) are in two splits, e.g. "
            f"{display_path(audio)!r} in both {one!r} and {other!r} (through a link); a clip in a test split must "
            f"never be trained on. Remove the link, or copy the clips each split should hold.")


def _split_folders(root: Path, audio: list[Path]) -> dict[str, Path]:
    """Split -> its folder among ``root``'s sub-folders, named by :func:`~ser_hf.corpora.split_names.split_name`;
    ``audio`` is every audio file under ``root``.

    A folder named like a split by joining a keyword to other text (``eval_scripts``, ``train_test_notes``) that
    holds no audio file is none, as ``datasets`` makes no split of it; a bare keyword (``test/``) with no audio is
    refused later.

    Raises:
        CorpusError: two folders name one split (``Train``/``train``, ``dev``/``validation``), a folder names two
            (``train_test``), a folder only looks like a split name (:func:`_check_lookalikes`), or, with no split
            folder at the top, folders deeper down are named as splits (:func:`_check_no_deeper_splits`): each
            would drop clips, or merge them into another split, without a word.
    """
    by_split: dict[str, list[Path]] = {}
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "__")):  # folders datasets skips
            continue
        named = splits_named(folder.name)
        if not named or not (_is_bare_keyword(folder.name) or _under(audio, folder)):
            continue  # datasets makes no split of a folder without audio files
        if len(named) > 1:
            raise CorpusError(f"audiofolder {display_path(root)!r}: the folder {printable(folder.name)!r} names the "
                              f"splits {sorted(named)} at once (a split folder name is {SPLIT_NAME_RULE}); datasets "
                              f"would put its clips in each of them. Rename it to name one split.")
        by_split.setdefault(named.pop(), []).append(folder)
    doubled = {split: folders for split, folders in by_split.items() if len(folders) > 1}
    if doubled:
        shown = "; ".join(f"{' and '.join(repr(printable(f.name)) for f in folders)} all name the split {split!r}"
                          for split, folders in doubled.items())
        raise CorpusError(f"audiofolder {display_path(root)!r}: split folders {shown} (a split folder name is "
                          f"{SPLIT_NAME_RULE}). Each split needs one folder, or the clips of all but one would be "
                          f"dropped. Merge them into one folder, or rename or move the others.")
    found = {split: folders[0] for split, folders in by_split.items()}
    _check_lookalikes(root, found, audio)
    if not found:
        _check_no_deeper_splits(root, audio)
    return found


def _check_lookalikes(root: Path, found: dict[str, Path], audio: list[Path]) -> None:
    """Refuse a top-level folder of audio files whose name looks like a split name but is not read as one (``tëst``,
    ``test\\u200b``, ``test(2)``, ``.test``: :func:`~ser_hf.corpora.split_names.split_lookalike`), and warn about
    one with a keyword glued to letters (``testset``) that holds folders of clips, as a split folder does (a class
    folder such as ``contest/`` holds its clips directly): its clips would be left out of every split, or merged
    into the train split with every other file, without a word."""
    inside = set(found.values())
    for folder in sorted(root.iterdir()):
        if folder in inside or not folder.is_dir():
            continue
        hidden = folder.name.startswith((".", "__")) and len(splits_named(folder.name)) == 1
        look = (next(iter(splits_named(folder.name))), True) if hidden else split_lookalike(folder.name)
        files = _under(audio, folder) if look is not None else []
        if not files:
            continue
        split, near = look
        fate = "left out of every split" if found else "merged into the train split with every other file"
        name, shown = printable(folder.name), display_path(root)
        if near:
            raise CorpusError(
                f"audiofolder {shown!r}: the folder {name!r} looks like the split folder name {split!r} but is not "
                f"one (a split folder name is {SPLIT_NAME_RULE}; accents, invisible characters, other punctuation or "
                f"a leading '.' or '__', which datasets skips, make another name); its {len(files)} audio file(s) "
                f"would be {fate} without a word. Rename it (e.g. to {split!r}, or '{split}_2' beside another), "
                f"or move it out of {shown!r}.")
        if any(len(path.relative_to(folder).parts) > 1 for path in files):
            logger.warning("audiofolder %s: the folder %r looks like the split folder name %r but is not one (a split "
                           "folder name is %s); its %d audio file(s) are %s. Rename it (e.g. to '%s' or '%s_set') to "
                           "make it that split, or ignore this if it is no split folder.", shown, name, split,
                           SPLIT_NAME_RULE, len(files), fate, split, split)


def _check_no_deeper_splits(root: Path, audio: list[Path]) -> None:
    """In a tree without split folders at its top, refuse sibling folders deeper down that name two splits or more
    (``data/train/`` beside ``data/test/``): ``datasets`` reads a split folder at any depth, and ser_hf at the top
    only, so the test clips would be merged into one train split with the rest, without a word. A lone folder named
    like a split among folders that name none (a speaker folder ``angry/dev_01/``) is warned about: it is far more
    likely a name of the corpus's own than a split, and the tree loads as one train split."""
    by_parent: dict[str, dict[str, str]] = {}  # parent -> split -> the first folder below it naming that split
    for path in audio:
        parts = path.relative_to(root).parts[:-1]
        for depth in range(1, len(parts)):
            named = splits_named(parts[depth]) if not parts[depth].startswith((".", "__")) else set()
            if len(named) == 1:
                by_parent.setdefault("/".join(parts[:depth]), {}).setdefault(named.pop(), "/".join(parts[:depth + 1]))
    sets = {parent: splits for parent, splits in sorted(by_parent.items()) if len(splits) > 1}
    if sets:
        parent, splits = next(iter(sets.items()))
        raise CorpusError(
            f"audiofolder {display_path(root)!r} has no split folder at its top, but folders deeper down are named "
            f"as splits ({_listing(sorted(f for s in sets.values() for f in s.values()))}); datasets reads those as "
            f"splits, ser_hf reads split folders at the top of the audiofolder only, so their clips would all be "
            f"merged into one train split. Pass the folder that holds the split folders (e.g. "
            f"{display_path(root / parent)!r}), or move the split folders to the top.")
    lone = sorted(folder for splits in by_parent.values() for folder in splits.values())
    if lone:
        logger.warning("audiofolder %s: folders below its top are named like split folders (%s); ser_hf reads split "
                       "folders at the top only, so they load in the train split with every other clip (datasets "
                       "would read them as splits). Rename them if they are no split, or move them to the top if "
                       "they are.", display_path(root), _listing(lone))


def _warn_unread_metadata(root: Path, folders: list[Path], files: list[Path]) -> None:
    """Warn, naming them, about ``root``'s ``files`` named ``metadata.*`` that are not read (``metadata.tsv``, one in
    a class folder or deeper): their speakers or labels would be lost without a word."""
    read = {path for folder in folders for path in _metadata_files(folder)}
    unread = [str(path.relative_to(root)) for path in files
              if _folded(path.name).partition(".")[0] == "metadata" and path not in read]
    if unread:
        logger.warning("audiofolder %s: %d file(s) named like a metadata file are not read (%s): ser_hf reads one "
                       "metadata.csv or metadata.jsonl (its name in any case) in the audiofolder's root or in a split "
                       "folder. Move or convert them there to use their rows, or rename them.", display_path(root),
                       len(unread), _listing(unread))


def _is_bare_keyword(name: str) -> bool:
    """Whether a folder name is a split keyword alone (``test``, ``Dev``), not one joined to other text (``test1``)."""
    return any(name.strip().casefold() in spellings for spellings in SPLIT_SPELLINGS.values())


def _warn_outside_splits(root: Path, found: dict[str, Path], audio: list[Path]) -> None:
    """Warn, naming them, about audio files beside the split folders: no split holds them, so they are not loaded.

    Refused instead when every split folder joins a keyword to other text (``test-anxiety/``) and other folders hold
    audio (``calm/``): those are class folders, one of them named like a split, and reading it as the only split (as
    ``datasets`` does) would drop every other class.
    """
    inside = {folder.name for folder in found.values()}
    outside = [str(path.relative_to(root)) for path in audio if path.relative_to(root).parts[0] not in inside]
    if outside and not any(map(_is_bare_keyword, inside)):
        raise CorpusError(
            f"audiofolder {display_path(root)!r}: the folder(s) {_listing(sorted(inside))} are read as split folders "
            f"(a split folder name is {SPLIT_NAME_RULE}), so the {len(outside)} audio file(s) in its other folders "
            f"({_listing(outside)}) would belong to no split and be dropped; they look like class folders. Rename the "
            f"split-like folder(s) (e.g. 'anxiety' for 'test-anxiety'), or put the class folders in split folders "
            f"('train/', 'test/').")
    if outside:
        logger.warning("audiofolder %s: %d audio file(s) lie outside its split folders %s (%s); they belong to no "
                       "split and are not loaded. Move them into a split folder to load them.", display_path(root),
                       len(outside), sorted(inside), _listing(outside))
