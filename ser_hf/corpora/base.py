"""What every corpus loader shares: the :class:`Corpus` description, the scan of a directory into
:class:`Clip` records, and the one conversion to a ``datasets.Dataset`` that every loader ends with.

A corpus module only knows its naming scheme: it lists clips (or :class:`Problem` records for files it
cannot interpret). Everything else -- checking the audio headers, label subsets and merges, strict or
lenient handling of bad files, the uniform columns and their validation -- happens here, once, with two
modules of its own: a user's ``label_map`` (:mod:`ser_hf.corpora.label_maps`) and one recording listed once
(:mod:`ser_hf.corpora.listings`). The values a corpus module reads from tables and names (a missing cell, a gender,
a speaker id) are read the one way of :mod:`ser_hf.corpora.cell_values`.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import datasets

from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION, check_clip_duration, decode, is_audio_path
from ser_hf.corpora.label_maps import (
    emotion_merges,
    warn_unmatched_label_map,
)
from ser_hf.corpora.listings import file_identity, relisted_clips
from ser_hf.emotions import EMOTIONS, resolve_emotions, sort_emotions
from ser_hf.errors import CorpusError, SERError
from ser_hf.paths import display_path, is_utf8, path_key, printable, walk_files

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
    #: Where the clip is listed, for messages (``"m.csv line 5"``), when its path alone does not say it.
    where: str | None = None


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

    def takes(self, option: str) -> bool:
        """Whether :attr:`list_clips` takes ``option``: the user's corpora (``folder``, ``manifest``, ...) take
        ``label_map`` and ``speaker_pattern`` themselves, the built-in ones name their labels and speakers."""
        return option in inspect.signature(self.list_clips).parameters

    def features_for(self, root: Path) -> Mapping[str, datasets.Value]:
        return self.features(root) if callable(self.features) else self.features

    @property
    def description(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name


def check_directory(data_dir: str | Path, corpus: str) -> Path:
    """Return ``data_dir`` as a Path after checking it is an existing, non-empty directory."""
    # absolute paths keep caches valid from any cwd; a ".." after a linked folder is the kernel's, not the text's
    root = Path(path_key(os.path.expanduser(data_dir)))
    fix = f"Pass the folder that holds the {corpus} corpus with --data-dir (or data_dir=...)."
    if not root.exists():
        raise CorpusError(f"Corpus directory {display_path(root)!r} does not exist. {fix}")
    if not root.is_dir():
        raise CorpusError(f"Corpus path {display_path(root)!r} is a file, expected a directory. {fix}")
    if not any(root.iterdir()):
        raise CorpusError(f"Corpus directory {display_path(root)!r} is empty. {fix}")
    return root


def iter_audio_files(root: Path) -> Iterator[Path]:
    """All audio files under ``root`` (any extension libsndfile reads; hidden files such as macOS's ``._x.wav`` left
    out), sorted for reproducibility.

    The walk is :func:`ser_hf.paths.walk_files`: a symlinked sub-folder is entered (``Path.rglob`` skips it, so its
    clips went missing without a word), each real folder once, so a link loop still ends. A folder that cannot be
    listed is named in a warning: its clips are missing.
    """
    unlisted: list[tuple[str, OSError]] = []
    found = sorted(Path(path) for path in walk_files(root, unlisted=unlisted)
                   if is_audio_path(path) and not os.path.basename(path).startswith("."))
    for folder, error in unlisted:
        logger.warning("cannot list the folder %s (%s): the clips in it are not loaded. Make it readable, or move "
                       "it out of %s.", display_path(folder), error.strerror or error, display_path(root))
    return iter(found)


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
    _drop_unknown_genders(scan)
    _warn_similar_speakers(scan)
    return scan


def _drop_relisted_files(scan: CorpusScan) -> None:
    """Make a problem of every clip that lists a recording another clip already lists
    (:func:`~ser_hf.corpora.listings.relisted_clips`: by any spelling, or a byte copy under another speaker or label)."""
    reasons = relisted_clips(scan.clips, scan.root)
    scan.problems.extend(Problem(scan.clips[index].path, reason) for index, reason in reasons.items())
    kept = [(clip, duration) for index, (clip, duration) in enumerate(zip(scan.clips, scan.durations))
            if index not in reasons]
    scan.clips, scan.durations = [c for c, _ in kept], [d for _, d in kept]


def _drop_unknown_genders(scan: CorpusScan) -> None:
    """Set every gender :func:`~ser_hf.corpora.cell_values.normalize_gender` did not recognise (``unknown``, ``nonbinary``, ``w``) to ``None``,
    with one warning naming the values and how many clips had each: gender is optional metadata, never a reason to
    refuse or drop a clip."""
    unknown = Counter(clip.gender for clip in scan.clips if clip.gender not in (None, "male", "female"))
    if not unknown:
        return
    scan.clips = [replace(clip, gender=None) if clip.gender in unknown else clip for clip in scan.clips]
    logger.warning("gender values %s (clips: %s) in the %s corpus in %s are neither male nor female (M/F); those "
                   "clips load with no gender. Write male/female, or leave the cell empty, if that is not what you "
                   "meant.", sorted(printable(g) for g in unknown), dict(unknown.most_common()), scan.corpus,
                   display_path(scan.root))


def _speaker_key(speaker: str) -> str:
    """What two spellings of one id likely share: any case, no leading zeros in its numbers (``Spk01`` is ``spk1``)."""
    return re.sub(r"\d+", lambda number: str(int(number.group())), speaker.casefold())


def _warn_similar_speakers(scan: CorpusScan) -> None:
    """Warn, listing them, about speaker ids that differ only by case or leading zeros (``Alice``/``alice``,
    ``1``/``01``): they count as different speakers, so if they are one person a speaker-independent split may put
    them on both sides. They are never merged: ser_hf cannot know."""
    groups: dict[str, set[str]] = {}
    for speaker in {clip.speaker for clip in scan.clips if clip.speaker is not None}:
        groups.setdefault(_speaker_key(speaker), set()).add(speaker)
    similar = sorted(sorted(group) for group in groups.values() if len(group) > 1)
    if similar:
        shown = "; ".join(", ".join(repr(printable(s)) for s in group) for group in similar[:_MAX_LISTED])
        more = f" and {len(similar) - _MAX_LISTED} more group(s)" if len(similar) > _MAX_LISTED else ""
        logger.warning("speaker ids in the %s corpus in %s differ only by case or leading zeros: %s%s. They count as "
                       "different speakers; if each group is one person, write their id one way in the speaker "
                       "column (or file names), or a speaker-independent split may train and test on them.",
                       scan.corpus, display_path(scan.root), shown, more)


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
    """Apply label merges and the emotion subset, then build the uniform ``datasets.Dataset``.

    ``label_map`` is applied once per clip: a clip that carries its raw label (folder, manifest, HF dataset) was
    mapped by its corpus module, as written; only a clip without one (a built-in corpus, whose
    ``default_label_map`` merges emotions, e.g. IEMOCAP's excited into happy) gets the emotion-level merges of
    :func:`~ser_hf.corpora.label_maps.emotion_merges`. Applying both relabelled every ``happy`` clip for ``{"joy": "excited"}`` and undid a swap.

    Raises:
        CorpusError: no clip is left, or the corpus declares a metadata column named like one of :data:`BASE_COLUMNS`.
    """
    metadata_features = corpus.features_for(Path(scan.root))
    reserved = [name for name in metadata_features if name in BASE_COLUMNS]
    if reserved:  # each clip would add two values to that column: Arrow fails on unequal column lengths
        raise CorpusError(f"Corpus {corpus.name!r} declares metadata column(s) {reserved}, which are names of the "
                          f"columns ser_hf sets itself {list(BASE_COLUMNS)}; rename them in the corpus's features and "
                          f"clip metadata.")
    merges = emotion_merges(label_map) if any(clip.raw_label is None for clip in scan.clips) else {}
    subset = resolve_emotions(emotions)
    rows: dict[str, list] = {name: [] for name in (*BASE_COLUMNS, *metadata_features)}
    kept = []
    for clip, duration in zip(scan.clips, scan.durations):
        emotion = clip.emotion if clip.raw_label is not None else merges.get(clip.emotion, clip.emotion)
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
        warn_unmatched_label_map(scan, corpus, label_map)
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


def warn_emotions_without_clips(names: Sequence[str], labels: Iterable[int], where: str) -> None:
    """Warn of the classes ``names`` (the emotions a training run asked for) that no clip's label (an index into
    ``names``) has: a model keeps such a class and never learns it (``--emotions ravdess8`` on URDU). Judged on all
    the clips a model trains on (several corpora together: RAVDESS trains the emotions URDU lacks); ``where`` names
    them."""
    counts = Counter(labels)
    absent = [name for index, name in enumerate(names) if not counts[index]]
    if absent and len(absent) < len(names):
        kept = [name for name in names if name not in absent]
        logger.warning("The emotions asked for include %s, which no clip of %s has (its clips: %s): a model trained "
                       "on them gets %s nothing trains. Leave %s out: emotions (--emotions) %s.", absent, where,
                       {name: counts[index] for index, name in enumerate(names) if counts[index]},
                       "a class" if len(absent) == 1 else "classes", "it" if len(absent) == 1 else "them",
                       ",".join(kept))


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
    """Refuse a file listed twice by any spelling ('./a.wav', a symlink or a hard link to it), whatever the speakers:
    under one speaker it would be counted twice (with two labels, trained on with both), under two it would be
    trained and tested on in a speaker-independent split. Files are compared by :func:`~ser_hf.corpora.listings.file_identity`, whichever
    reader listed them; the splits also check that no file is in two parts
    (:func:`ser_hf.splits.check_speaker_disjoint`).
    """
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for path, speaker in zip(paths, speakers):
        key = file_identity(path) if isinstance(path, (str, os.PathLike)) else repr(path)
        groups.setdefault(key, []).append((str(path), speaker))
    dupes = {key if isinstance(key, str) else os.path.realpath(rows[0][0]): rows for key, rows in groups.items()
             if len(rows) > 1}
    if dupes:
        shown = "; ".join(
            f"{printable(real)} as " + ", ".join(f"{printable(p)} (speaker {s})" for p, s in rows[:3])
            for real, rows in sorted(dupes.items())[:_MAX_LISTED])
        raise CorpusError(
            f"{source}: {len(dupes)} audio file(s) listed more than once (symlinks, hard links and ./ spellings "
            f"resolved): "
            f"{shown}. A file listed twice would be counted twice, or, under two speakers, both trained and tested "
            f"on; keep one row per file."
        )
