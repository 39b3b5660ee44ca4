"""What every corpus loader shares: the :class:`Corpus` description, the scan of a directory into
:class:`Clip` records, and the one conversion to a ``datasets.Dataset`` that every loader ends with.

A corpus module only knows its naming scheme: it lists clips (or :class:`Problem` records for files it
cannot interpret). Everything else -- checking the audio headers, label subsets and merges, strict or
lenient handling of bad files, the uniform columns and their validation -- happens here, once.
"""

from __future__ import annotations

import codecs
import logging
import os
import stat
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets

from ser_hf._io import file_sha256
from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION, check_clip_duration, decode, is_audio_path
from ser_hf.emotions import EMOTIONS, canonical_emotion, resolve_emotions, sort_emotions
from ser_hf.errors import CorpusError, SERError
from ser_hf.names import speaker_text
from ser_hf.paths import display_path, is_utf8, printable

logger = logging.getLogger(__name__)

#: Columns every loaded corpus has, whatever its own metadata.
BASE_COLUMNS = ("audio", "label", "speaker", "gender", "duration", "corpus")

# Show this many problems in an error message; the rest are counted.
_MAX_LISTED = 10
# A datasets column is Arrow UTF-8 text: a name that is not UTF-8 (surrogate-escaped by Python) cannot be stored.
_NOT_UTF8 = ("its file name is not valid UTF-8, and a datasets column holds UTF-8 text only. Rename it to UTF-8 "
             "(e.g. `convmv -f latin1 -t utf8 --notest FILE`).")


@dataclass(frozen=True)
class Clip:
    """One labelled recording found by a corpus scan (before its audio header is checked).

    ``emotion`` is a canonical name; any other value (e.g. IEMOCAP's ``"xxx"``, no majority label) marks
    a clip the corpus itself excludes, which the scan counts under that value instead of loading it.
    """

    path: str
    emotion: str
    speaker: str | None = None
    gender: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: The label as the data spells it (a folder name, a manifest cell), when a label_map may apply to it.
    raw_label: str | None = None


@dataclass(frozen=True)
class Problem:
    """A file the loader could not use, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{display_path(self.path)}: {printable(self.reason)}"  # printable even for names that are not UTF-8


@dataclass
class CorpusScan:
    """The result of scanning a corpus directory: usable clips, unusable files, and excluded labels."""

    corpus: str
    root: str
    clips: list[Clip]
    durations: list[float]
    problems: list[Problem]
    #: Clips deliberately left out by label (e.g. IEMOCAP's 'xxx', or outside an emotion subset).
    excluded: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: how to list its clips, its own metadata columns, its folds, download and the facts a
    model card quotes (URL, licence, citation, language).

    Args:
        name: Registry name, e.g. ``"ravdess"``.
        list_clips: ``f(root, **options)`` yielding :class:`Clip` or :class:`Problem` records.
        features: ``datasets`` features of the corpus's own metadata columns, or ``f(root)`` returning
            them when they depend on the data (a manifest's extra columns).
        fold_column: A metadata column whose values are the corpus-defined folds (e.g. IEMOCAP
            ``session``), or ``None`` when the corpus defines none.
        default_label_map: Label merges applied unless the caller passes its own ``label_map``.
        download: ``f(target_dir) -> Path`` fetching the corpus, or ``None`` if it cannot be
            downloaded freely.
        prepare: ``f(data_dir)`` run before loading, for corpora that make their own data (synthetic).
        default_dir: ``f() -> Path``, the folder used when no ``data_dir`` is given (synthetic only).
        url: Where the corpus is published (the address only), or ``None`` (your own data).
        licence: The terms the corpus is released under, in words (model cards list them), or ``None``
            when unknown (your own data: its licence applies).
        citation: The paper to cite, or ``None``.
        language: ISO 639-1 code of the speech (``"en"``), the model card's default ``language``; ``None``
            when unknown or not speech.
        doc: The module docstring (description, URL, licence, citation, naming, labels), for people.
    """

    name: str
    list_clips: Callable[..., Iterable[Clip | Problem]]
    features: Mapping[str, datasets.Value] | Callable[[Path], Mapping[str, datasets.Value]]
    fold_column: str | None = None
    default_label_map: Mapping[str, str] = field(default_factory=dict)
    download: Callable[[Path], Path] | None = None
    prepare: Callable[[Path], None] | None = None
    default_dir: Callable[[], Path] | None = None
    url: str | None = None
    licence: str | None = None
    citation: str | None = None
    language: str | None = None
    doc: str = ""

    def features_for(self, root: Path) -> Mapping[str, datasets.Value]:
        return self.features(root) if callable(self.features) else self.features

    @property
    def description(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name


def check_directory(data_dir: str | Path, corpus: str) -> Path:
    """Return ``data_dir`` as a Path after checking it is an existing, non-empty directory."""
    root = Path(os.path.abspath(Path(data_dir).expanduser()))  # absolute paths keep caches valid from any cwd
    fix = f"Pass the folder that holds the {corpus} corpus with --data-dir (or data_dir=...)."
    if not root.exists():
        raise CorpusError(f"Corpus directory {str(root)!r} does not exist. {fix}")
    if not root.is_dir():
        raise CorpusError(f"Corpus path {str(root)!r} is a file, expected a directory. {fix}")
    if not any(root.iterdir()):
        raise CorpusError(f"Corpus directory {str(root)!r} is empty. {fix}")
    return root


def iter_audio_files(root: Path) -> Iterator[Path]:
    """All audio files under ``root`` (any extension libsndfile reads), sorted for reproducibility."""
    return iter(sorted(path for path in root.rglob("*") if is_audio_path(path) and not path.name.startswith(".")))


def clips_from_file_names(
    root: Path, parse_name: Callable[[Path], Clip], scheme: str
) -> Iterator[Clip | Problem]:
    """Yield a :class:`Clip` per audio file whose name ``parse_name`` understands, a Problem otherwise.

    ``parse_name`` raises :class:`CorpusError` (with the reason) for names outside the scheme.
    """
    found = False
    for path in iter_audio_files(root):
        found = True
        try:
            yield parse_name(path)
        except CorpusError as err:
            yield Problem(str(path), f"{err} Expected names like {scheme}.")
    if not found:
        raise CorpusError(
            f"No audio files under {str(root)!r}. Expected files named like {scheme} "
            f"(any extension libsndfile reads: .wav, .flac, ...). Check --data-dir."
        )


def normalize_gender(raw: str | None) -> str | None:
    """``'M'``/``'male'`` -> ``'male'``, ``'F'``/``'female'`` -> ``'female'``, empty -> ``None``."""
    if raw is None or not str(raw).strip():
        return None
    key = str(raw).strip().lower()
    if key in ("m", "male", "man"):
        return "male"
    if key in ("f", "female", "woman"):
        return "female"
    raise CorpusError(f"Unknown gender {raw!r}; expected 'male'/'female' (or 'M'/'F'), or leave it empty.")


def normalize_speaker(raw: Any) -> str | None:
    """A speaker id as text in the one form of :func:`~ser_hf.names.speaker_text` (NFC, no invisible characters or
    surrounding whitespace: ``'A '`` is ``'A'``, and ``José`` typed two ways is one speaker, who can never be split
    across train and test); empty or blank -> ``None``."""
    return None if raw is None else (speaker_text(str(raw)) or None)


def file_identity(path: str | os.PathLike) -> tuple[int, int] | str:
    """What makes two paths one recording: the file's (device, inode), which symlinks, ``./`` spellings and hard
    links share; its real path where it cannot be stat'ed (a missing file)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return os.path.realpath(path)
    return info.st_dev, info.st_ino


def _check_clip(path: str, check_audio: bool | str, min_duration: float | None, max_duration: float | None) -> float:
    """The clip's duration after the checks ``check_audio`` asks for; raises SERError naming the file."""
    if not check_audio:
        return float("nan")
    info = check_clip_duration(path, min_duration, max_duration)
    if check_audio == "decode":
        decode(path)  # the header can be fine while the samples are corrupt, NaN or cut off
    return info.duration


def scan_corpus(
    corpus: Corpus,
    root: Path,
    *,
    check_audio: bool | Literal["header", "decode"] = True,
    min_clip_duration: float | None = MIN_CLIP_DURATION,
    max_clip_duration: float | None = MAX_CLIP_DURATION,
    **options: Any,
) -> CorpusScan:
    """List a corpus's clips and check each one's audio.

    Args:
        corpus: The corpus.
        root: Its folder.
        check_audio: ``True`` or ``"header"``: read each header (duration; unreadable, empty, too short or too
            long files become problems); ``"decode"``: also decode every clip (~2 ms each), which catches
            files whose header reads but whose samples do not (cut-off FLAC, NaN samples); ``False``: no check.
        min_clip_duration: Clips shorter than this (seconds) are problems; ``None`` accepts any length.
        max_clip_duration: Clips longer than this (seconds) are problems; ``None`` accepts any length.
        **options: The corpus's own options.
    """
    if check_audio not in (True, False, "header", "decode"):
        raise CorpusError(f"check_audio must be True, False, 'header' or 'decode', got {check_audio!r}.")
    try:
        items = list(corpus.list_clips(root, **options))
    except TypeError as err:
        raise CorpusError(f"Corpus {corpus.name!r} got an unexpected option: {err}.") from err
    scan = CorpusScan(corpus.name, str(root), [], [], [p for p in items if isinstance(p, Problem)])
    for clip in (c for c in items if isinstance(c, Clip)):
        if clip.emotion not in EMOTIONS:
            scan.excluded[clip.emotion] += 1
            continue
        if not is_utf8(clip.path):
            scan.problems.append(Problem(clip.path, _NOT_UTF8))
            continue
        try:
            duration = _check_clip(clip.path, check_audio, min_clip_duration, max_clip_duration)
        except SERError as err:
            scan.problems.append(Problem(clip.path, str(err)))
            continue
        scan.clips.append(clip)
        scan.durations.append(duration)
    _drop_relisted_files(scan)
    return scan


def _drop_relisted_files(scan: CorpusScan) -> None:
    """Make a problem of every clip whose file (:func:`file_identity`: symlinks and hard links resolved) or whose
    bytes (:func:`_content_keys`: a copy) an earlier clip already lists under another speaker: one recording under
    two speakers would leak across a speaker-independent split."""
    contents = _content_keys(scan.clips)
    first: dict[Any, Clip] = {}
    kept = []
    for clip, duration in zip(scan.clips, scan.durations):
        earlier = first.setdefault(file_identity(clip.path), clip)
        copied = first.setdefault(contents[clip.path], clip) if clip.path in contents else clip
        if earlier is not clip and earlier.path != clip.path and earlier.speaker != clip.speaker:
            scan.problems.append(Problem(clip.path, (
                f"the same audio file as {display_path(earlier.path)} (speaker {earlier.speaker}), listed again under "
                f"speaker {clip.speaker}; one recording under two speakers would be trained and tested on. Keep one.")))
            continue
        if copied is not clip and copied.speaker != clip.speaker:
            scan.problems.append(Problem(clip.path, (
                f"a byte-identical copy of {display_path(copied.path)} (speaker {copied.speaker}), listed under "
                f"speaker {clip.speaker}; one recording under two speakers would be trained and tested on. Keep one.")))
            continue
        kept.append((clip, duration))
    scan.clips, scan.durations = [c for c, _ in kept], [d for _, d in kept]


def _content_keys(clips: Sequence[Clip]) -> dict[str, tuple[str, str]]:
    """``{path: ("sha256", digest)}`` for the clips whose bytes may copy another speaker's: regular files whose size
    another speaker's file shares. Sizes are compared first, so a corpus is read only where a copy is possible
    (clips of one fixed length in WAV all are: each is then hashed once, remembered by ``file_sha256``)."""
    by_size: dict[int, list[Clip]] = {}
    for clip in clips:
        try:
            info = os.stat(clip.path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode):  # never open a FIFO: it would block
            by_size.setdefault(info.st_size, []).append(clip)
    keys = {}
    for group in by_size.values():
        if len({clip.speaker for clip in group}) > 1:
            for clip in group:
                try:
                    keys[clip.path] = ("sha256", file_sha256(clip.path))
                except OSError:
                    continue
    return keys


def describe_problems(scan: CorpusScan) -> str:
    """The files that could not be used, the first few listed with their reasons ("" when there are none)."""
    if not scan.problems:
        return ""
    listed = "\n  ".join(str(p) for p in scan.problems[:_MAX_LISTED])
    more = len(scan.problems) - _MAX_LISTED
    listed += f"\n  ... and {more} more" if more > 0 else ""
    return f"{len(scan.problems)} file(s) in {scan.root!r} could not be used as {scan.corpus} clips:\n  {listed}"


def report_problems(scan: CorpusScan, strict: bool) -> None:
    """Raise (strict) or warn (lenient) about every file that could not be used. Never silent."""
    if not scan.problems:
        return
    header = describe_problems(scan)
    if strict:
        raise CorpusError(
            f"{header}\nFix or remove them, or load with strict=False (`ser-hf train ... --strict false`) to skip them."
        )
    message = header + "\nThey were skipped (strict=False)."
    for problem in scan.problems:
        logger.warning("skipped %s", problem)
    warnings.warn(message, UserWarning, stacklevel=3)


def to_dataset(
    scan: CorpusScan,
    corpus: Corpus,
    *,
    emotions: str | Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
) -> datasets.Dataset:
    """Apply label merges and the emotion subset, then build the uniform ``datasets.Dataset``."""
    metadata_features = corpus.features_for(Path(scan.root))
    merges = emotion_merges(label_map)
    subset = resolve_emotions(emotions)
    rows: dict[str, list] = {name: [] for name in (*BASE_COLUMNS, *metadata_features)}
    kept = []
    for clip, duration in zip(scan.clips, scan.durations):
        emotion = merges.get(clip.emotion, clip.emotion)
        if subset is not None and emotion not in subset:
            scan.excluded[emotion] += 1
            continue
        kept.append(emotion)
        for name, value in (("audio", clip.path), ("speaker", clip.speaker), ("gender", clip.gender),
                            ("duration", duration), ("corpus", corpus.name)):
            rows[name].append(value)
        for name in metadata_features:
            rows[name].append(clip.metadata.get(name))
    if label_map and dict(label_map) != dict(corpus.default_label_map):
        _warn_unmatched_label_map(scan, corpus, label_map)
    if not kept:
        problems = describe_problems(scan)
        found = dict(Counter(c.emotion for c in scan.clips))
        if not scan.clips and problems:  # every file was unusable: say so, not just that no label is left
            raise CorpusError(f"No usable {corpus.name} clips in {scan.root!r}: {problems}\nFix or rename them.")
        raise CorpusError(
            f"No {corpus.name} clips left in {scan.root!r} for emotions {list(subset or [])}: found labels "
            f"{found}. Choose emotions the corpus has." + (f"\n{problems}" if problems else "")
        )
    names = list(subset) if subset is not None else list(sort_emotions(kept))
    rows["label"] = [names.index(e) for e in kept]
    features = datasets.Features({
        "audio": datasets.Value("string"),
        "label": datasets.ClassLabel(names=names),
        "speaker": datasets.Value("string"),
        "gender": datasets.Value("string"),
        "duration": datasets.Value("float32"),
        "corpus": datasets.Value("string"),
        **metadata_features,
    })
    dataset = datasets.Dataset.from_dict(rows, features=features)
    validate_dataset(dataset, source=scan.root)
    return dataset


def validate_dataset(dataset: datasets.Dataset, source: str = "the dataset") -> None:
    """Check the uniform shape every ser_hf corpus has; raise :class:`CorpusError` naming what is wrong.

    Every loader ends with it; training and evaluation call it on user datasets too.
    """
    missing = [name for name in ("audio", "label", "speaker") if name not in dataset.column_names]
    if missing:
        raise CorpusError(
            f"{source} lacks column(s) {missing}; found {sorted(dataset.column_names)}. Load corpora with "
            f"ser_hf.corpora.load_corpus, or add the columns (speaker may be None when unknown)."
        )
    label = dataset.features["label"]
    if not isinstance(label, datasets.ClassLabel):
        raise CorpusError(
            f"{source}: column 'label' must be a datasets.ClassLabel, found {type(label).__name__}. "
            f"Use dataset.cast_column('label', ClassLabel(names=[...]))."
        )
    unknown = [name for name in label.names if name not in EMOTIONS]
    if unknown:
        raise CorpusError(
            f"{source}: label names {unknown} are not canonical emotions {list(EMOTIONS)}. Map them with "
            f"label_map=... when loading."
        )
    speakers = dataset["speaker"] if "speaker" in dataset.column_names else [None] * len(dataset)
    _check_no_duplicate_files(dataset["audio"], speakers, source)


def _check_no_duplicate_files(paths: Sequence[Any], speakers: Sequence[Any], source: str) -> None:
    """Refuse a file listed twice with the same spelling, or under two speakers with any spelling ('./a.wav',
    a symlink or a hard link to it): one recording under two speakers would be trained and tested on in a
    speaker-independent split. Files are compared by :func:`file_identity`, whichever reader listed them; the
    splits also check that no file is in two parts (:func:`ser_hf.splits.check_speaker_disjoint`).
    """
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for path, speaker in zip(paths, speakers):
        key = file_identity(path) if isinstance(path, (str, os.PathLike)) else repr(path)
        groups.setdefault(key, []).append((str(path), speaker))
    dupes = {key if isinstance(key, str) else os.path.realpath(rows[0][0]): rows for key, rows in groups.items()
             if len({p for p, _ in rows}) < len(rows) or len({s for _, s in rows}) > 1}
    if dupes:
        shown = "; ".join(
            f"{printable(real)} as " + ", ".join(f"{printable(p)} (speaker {s})" for p, s in rows[:3])
            for real, rows in sorted(dupes.items())[:_MAX_LISTED])
        raise CorpusError(
            f"{source}: {len(dupes)} audio file(s) listed more than once (symlinks, hard links and ./ spellings "
            f"resolved): "
            f"{shown}. A file listed twice, or under two speakers, could be both trained and tested on; keep one row "
            f"(one speaker) per file."
        )


def read_utf8(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark, as Excel's "CSV UTF-8" writes, is dropped).

    Raises:
        CorpusError: the file is not UTF-8; the message names it, the byte offset and how to fix it.
    """
    data = path.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = bom + err.start
        line = data[:offset].count(b"\n") + 1
        raise CorpusError(
            f"{what} {display_path(path)!r} is not UTF-8 text: byte {offset} (line {line}) is "
            f"0x{data[offset]:02x} ({err.reason}); expected UTF-8 (an ASCII or UTF-8 CSV/JSON file). Save it as UTF-8 "
            f"(Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 FILE > NEW`)."
        ) from err


def check_label_map(label_map: Mapping[str, str] | None, setting: str = "label_map") -> None:
    """Refuse a label map with an empty side, a target that is not an emotion (:data:`ser_hf.emotions.EMOTIONS`), or
    two keys that match the same raw labels (:func:`label_key`: ``'Joyful'`` and ``'joyful'``) with different
    targets (the last would silently win)."""
    seen: dict[str, tuple[Any, str]] = {}
    for source, target in (label_map or {}).items():
        key = label_key(source)
        if key in seen and _target_emotion(seen[key][1]) != _target_emotion(target):
            raise CorpusError(f"{setting} maps {seen[key][0]!r} to {seen[key][1]!r} and {source!r} to {target!r}, "
                              f"but labels are matched in any case and spacing, so both keys match the same raw "
                              f"labels; keep one of the entries.")
        seen.setdefault(key, (source, target))
    for source, target in (label_map or {}).items():
        if not str(source).strip() or not str(target).strip():
            raise CorpusError(f"{setting} entry {source!r}={target!r} has an empty side; expected 'from=to' with "
                              f"both set, e.g. 'joyful=happy'. Remove the entry or fill it.")
        try:
            canonical_emotion(str(target))
        except CorpusError as err:
            raise CorpusError(f"{setting} maps {source!r} to {target!r}, which is not an emotion: expected one of "
                              f"{list(EMOTIONS)} (or a known spelling, e.g. 'anger'). Map {source!r} to one of them."
                              ) from err


def _target_emotion(target: Any) -> str:
    try:
        return canonical_emotion(str(target))
    except CorpusError:
        return str(target)  # refused with its own message below


def label_key(label: Any) -> str:
    """How label_map keys and labels are compared: any case, surrounding whitespace ignored (``' Angry '`` is
    ``'angry'``)."""
    return str(label).strip().lower()


def map_raw_label(raw: str, label_map: Mapping[str, str] | None) -> str | None:
    """The target ``label_map`` gives a raw label (a folder name, a manifest cell), matched exactly first, then by
    :func:`label_key`; ``None`` when no key matches."""
    if not label_map:
        return None
    if raw in label_map:
        return label_map[raw]
    return {label_key(key): target for key, target in label_map.items()}.get(label_key(raw))


def _key_emotion(key: Any) -> str | None:
    try:
        return canonical_emotion(str(key))
    except CorpusError:
        return None


def emotion_merges(label_map: Mapping[str, str] | None) -> dict[str, str]:
    """Canonical emotion -> canonical emotion for every label_map key that spells an emotion in any known way
    (``'Angry'``, ``'ANGER'``, ``' ang '``), the merges applied to every corpus's clips.

    Raises:
        CorpusError: two keys spell the same emotion but map it to different targets.
    """
    merges: dict[str, tuple[Any, str]] = {}
    for key, target in (label_map or {}).items():
        source = _key_emotion(key)
        if source is None:
            continue
        mapped = canonical_emotion(str(target))
        if source in merges and merges[source][1] != mapped:
            raise CorpusError(f"label_map maps {merges[source][0]!r} to {merges[source][1]!r} and {key!r} to "
                              f"{mapped!r}, but both keys are the emotion {source!r}; keep one of the entries.")
        merges.setdefault(source, (key, mapped))
    return {source: mapped for source, (_, mapped) in merges.items()}


def _warn_unmatched_label_map(scan: CorpusScan, corpus: Corpus, label_map: Mapping[str, str]) -> None:
    """Warn, naming them, about label_map entries that change nothing: keys that are neither a raw label of the
    corpus (:func:`label_key`) nor a spelling of an emotion it has (:func:`emotion_merges`)."""
    raw = {label_key(c.raw_label) for c in scan.clips if c.raw_label is not None}
    emotions = {c.emotion for c in scan.clips} | {e for e in scan.excluded if e in EMOTIONS}
    unmatched = [key for key in label_map if label_key(key) not in raw and _key_emotion(key) not in emotions]
    if unmatched:
        labels = sorted(raw | {e for e in emotions if e in EMOTIONS})
        logger.warning("label_map entries %s match no label of the %s corpus in %s (its labels: %s); they change "
                       "nothing. Check their spelling.", {k: label_map[k] for k in unmatched}, corpus.name,
                       display_path(scan.root), labels[:20])
