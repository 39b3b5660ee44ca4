"""A user's ``label_map``: checked once (:func:`check_label_map`), matched to raw labels in any case and spacing
(:func:`map_raw_label`), turned into emotion merges for clips without a raw label (:func:`emotion_merges`), and its
entries that change nothing or split an emotion named (:func:`warn_unmatched_label_map` for a corpus scan,
:func:`warn_label_map_mismatches` for labels known otherwise; a stream, whose labels arrive row by row, calls its two
parts, :func:`warn_emotion_split` and :func:`warn_unused_entries`, as they become known).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ser_hf.emotions import EMOTIONS, canonical_emotion
from ser_hf.errors import CorpusError
from ser_hf.paths import display_path, printable

#: :class:`ser_hf.corpora.base.CorpusScan` and :class:`~ser_hf.corpora.base.Corpus`: named so, not imported, since
#: ``corpora.base`` calls this module.
CorpusScan = Corpus = Any

__all__ = [
    "check_label_map", "emotion_merges", "label_key", "map_raw_label", "parse_label_map_text", "splits_an_emotion",
    "warn_emotion_split", "warn_label_map_mismatches", "warn_unmatched_label_map", "warn_unused_entries",
]

logger = logging.getLogger(__name__)

#: Labels a label_map warning names before it says how many more there are.
LISTED_LABELS = 20


def parse_label_map_text(text: str, setting: str,
                         error: Callable[[str], Exception] = CorpusError) -> dict[str, str]:
    """``'from=to,...'`` text, as every command line option and recipe setting gives a label map, as ``{from: to}``.

    The one parser of that syntax (training's ``label_map``, ``ser-hf data --label-map``, ``ser-hf evaluate
    --label-map``); what a target may be is the caller's to check (an emotion for a corpus, a model class for
    evaluation). Keys that differ only in case or spacing are the callers' too: both match them to labels.

    Raises:
        ``error(message)`` (a :class:`~ser_hf.errors.CorpusError` by default) for an entry that is not ``from=to``
        with both sides set, or a key given twice with two targets (the last would silently win).

    Example:
        ```python
        >>> parse_label_map_text(" calm = neutral ,surprised=happy,", "--label-map")
        {'calm': 'neutral', 'surprised': 'happy'}

        ```
    """
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        sides = [side.strip() for side in item.split("=")]
        if len(sides) != 2 or not all(sides):
            raise error(f"{setting} entry {item!r} in {text!r} is not 'from=to' with both sides set; expected "
                        f"'from=to' entries separated by commas, e.g. 'calm=neutral,excited=happy'.")
        source, target = sides
        if mapping.get(source, target) != target:
            raise error(f"{setting} maps {source!r} twice ({source}={mapping[source]} and {source}={target}) in "
                        f"{text!r}; keep one entry per label (several labels may map onto one target).")
        mapping[source] = target
    return mapping


def check_label_map(label_map: Mapping[str, str] | None, setting: str = "label_map") -> None:
    """Refuse a label map with an empty side, a target that is not an emotion (:data:`ser_hf.emotions.EMOTIONS`), or
    two keys that match the same raw labels (:func:`label_key`: ``'Joyful'`` and ``'joyful'``) with different
    targets (the last would silently win), or a value that is no mapping at all (``"glee=happy"``: text belongs to
    the command line, which parses it)."""
    if label_map is not None and not isinstance(label_map, Mapping):
        raise CorpusError(f"{setting} must be a mapping {{raw label: emotion}}, e.g. {{'glee': 'happy'}}, got "
                          f"{type(label_map).__name__} {printable(repr(label_map))[:80]}; from the command line use "
                          f"--label_map glee=happy (ser-hf train, cv; --label-map in ser-hf data and evaluate).")
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


def warn_unmatched_label_map(scan: CorpusScan, corpus: Corpus, label_map: Mapping[str, str]) -> None:
    """Warn, naming them, about label_map entries that change nothing: keys that are neither a raw label of the
    corpus (:func:`label_key`) nor a spelling of an emotion its clips without a raw label have
    (:func:`emotion_merges` apply to those only, see :func:`to_dataset`); and about entries that move an emotion's
    raw label while its other spellings stay (:func:`warn_emotion_split`)."""
    labelled = {(c.emotion, c.raw_label) for c in scan.clips if c.raw_label is not None}
    emotions = {c.emotion for c in scan.clips if c.raw_label is None}
    if emotions or not labelled:
        emotions |= {e for e in scan.excluded if e in EMOTIONS}
    warn_label_map_mismatches(label_map, labelled, corpus.name, scan.root, emotions)


def warn_label_map_mismatches(label_map: Mapping[str, str], labelled: Collection[tuple[str, str]], corpus: str,
                              root: str, unlabelled: Collection[str] = ()) -> None:
    """The warnings of :func:`warn_unmatched_label_map` for data known by its labels rather than a corpus scan:
    :func:`warn_emotion_split`, then :func:`warn_unused_entries`.

    Args:
        label_map: The user's map, already checked (:func:`check_label_map`).
        labelled: Each distinct ``(emotion, raw label)`` of the data, the emotion being what the raw label maps to
            (:func:`~ser_hf.corpora.folder.raw_label_to_emotion`).
        corpus: The name the warnings give the data (a corpus, or a dataset's ``--dataset_name``).
        root: Where the data is, as the warnings name it.
        unlabelled: Emotions of clips that carry no raw label (a built-in corpus's), which emotion merges apply to.
    """
    warn_emotion_split(label_map, labelled, corpus, root)
    warn_unused_entries(label_map, {raw for _, raw in labelled}, corpus, root, unlabelled)


def warn_unused_entries(label_map: Mapping[str, str], raw_labels: Collection[str], corpus: str, root: str,
                        unlabelled: Collection[str] = ()) -> None:
    """Warn once, naming them, about label_map keys that match none of ``raw_labels`` (:func:`label_key`) and spell
    none of the ``unlabelled`` emotions: they change nothing, most likely a typo. ``raw_labels`` must be every raw
    label of the data: a key is unused only once all of them are known. The data's labels are listed, the first 20
    and then how many more."""
    raw = {label_key(label) for label in raw_labels}
    emotions = set(unlabelled)
    unmatched = [key for key in label_map if label_key(key) not in raw and _key_emotion(key) not in emotions]
    if unmatched:
        labels = sorted(raw | {e for e in emotions if e in EMOTIONS})
        logger.warning("label_map entries %s match no label of the %s corpus in %s (its labels: %s); they change "
                       "nothing. Check their spelling.", {k: label_map[k] for k in unmatched}, corpus,
                       display_path(root), _listed(labels))


def warn_emotion_split(label_map: Mapping[str, str], labelled: Collection[tuple[str, str]], corpus: str,
                       root: str) -> None:
    """Warn once about label_map keys that spell an emotion and map it elsewhere (``happy=sad``) while ``labelled``
    (distinct ``(emotion, raw label)`` pairs, see :func:`warn_label_map_mismatches`) has other raw labels spelling
    that emotion which no entry maps (``joy``): the map applies once, to the raw label, so those clips keep the
    emotion and one emotion of the data ends up in two classes. A swap (``happy=sad,sad=happy``) is fine: it moves
    every spelling its entries name. The warning names the unmapped labels (the first 20 of an entry, then how many
    more) and offers both choices (map them too, or keep the split on purpose); it suggests an entry (``joy=sad``)
    only where the entries already move the emotion's own name (``happy=sad``): after ``joy=sad`` alone, an entry
    ``happy=sad`` would move every happy clip, which the user may well not mean. Keys that move one emotion to one
    target are one entry, named by the first (``happy=sad,HAPPY=sad`` is ``happy=sad``). Each pair may be given
    alone, as it first turns up: the warning then names that label."""
    split = _split_entries(label_map, labelled)
    if not split:
        return
    suggested = [f"{labels[0].strip()}={target}" for (emotion, _), (_, target, labels) in split.items()
                 if _moves_own_name(label_map, emotion)]
    advice = (f"Map them too (e.g. {','.join(suggested)}), or keep them if you mean that split"
              if len(suggested) == len(split) else
              "Map them too if every clip of that emotion belongs in the new class, or keep them if you mean the "
              "emotion split into two classes on purpose; map the emotion's own name only to move all its clips")
    entries = "{" + ", ".join(f"{entry!r}: {_listed(labels)}" for entry, _, labels in split.values()) + "}"
    logger.warning("label_map entries move raw labels of an emotion while other raw labels of the %s corpus in %s "
                   "spell the same emotion and no entry maps them (entry: unmapped labels) %s: a label_map applies "
                   "once, to the raw label as written, so those clips keep the emotion, and one emotion ends up in "
                   "two classes. %s.", corpus, display_path(root), entries, advice)


def splits_an_emotion(label_map: Mapping[str, str], emotion: str, raw: str) -> bool:
    """Whether a raw label (``joy``, of the emotion happy) is one :func:`warn_emotion_split` names: no entry maps it,
    while an entry moves its emotion (``happy=sad``)."""
    return bool(_split_entries(label_map, [(emotion, raw)]))


def _split_entries(label_map: Mapping[str, str],
                   labelled: Collection[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, list[str]]]:
    """(emotion, target emotion) -> (the first entry moving it there as ``key=target``, its target as written, the
    emotion's raw labels of ``labelled`` that no entry maps, sorted and printable)."""
    unmapped: dict[str, set[str]] = {}
    for emotion, raw in set(labelled):
        if map_raw_label(raw, label_map) is None:
            unmapped.setdefault(emotion, set()).add(str(raw))
    split: dict[tuple[str, str], tuple[str, str, list[str]]] = {}
    for key, target in label_map.items():
        emotion, moved = _key_emotion(key), _target_emotion(target)
        if emotion in unmapped and moved != emotion and (emotion, moved) not in split:
            labels = sorted(printable(label) for label in unmapped[emotion])
            split[(emotion, moved)] = (f"{key}={target}", target, labels)
    return split


def _listed(labels: list[str]) -> str:
    """Labels as a warning prints them: a list's ``repr``, cut after the first :data:`LISTED_LABELS` with how many
    more there are (a dataset may spell one emotion hundreds of ways)."""
    more = len(labels) - LISTED_LABELS
    shown = ", ".join(repr(label) for label in labels[:LISTED_LABELS])
    return f"[{shown}, ... and {more} more]" if more > 0 else f"[{shown}]"


def _moves_own_name(label_map: Mapping[str, str], emotion: str) -> bool:
    """Whether a label_map entry maps the emotion's own name (``HAPPY=sad``) to another emotion: then the map already
    moves the emotion's clips as such, and suggesting its other spellings follow is safe."""
    return any(label_key(key) == emotion and _target_emotion(target) != emotion for key, target in label_map.items())
