"""Matching a corpus's labels to a model's classes, explicitly.

A model's classes (``config.id2label``) and a corpus's labels rarely coincide: a 4-class model tested on
RAVDESS (8 emotions), a RAVDESS model tested on URDU. :func:`map_labels` matches them explicitly: every
corpus label goes to the model class of the same canonical emotion, or to the class a ``label_map``
names (``{"calm": "neutral"}``); the corpus labels without a counterpart are listed in
:attr:`LabelMapping.unmapped`, for the evaluation to count and report, never to drop silently.

A ``label_map`` comes as a mapping or as ``--label-map`` text (:func:`parse_label_map`, :func:`as_label_map`).
For a ``folder`` or ``manifest`` corpus, whose raw labels are the user's own, :func:`loader_label_map` hands the
entries that name no emotion (``glee=happy``) to the corpus loader instead, and :func:`_refuse_chained_entries`
refuses a raw label mapped twice (``glee=happy,happy=sad``). :mod:`ser_hf.evaluation.corpus_eval` uses all of
this to score a checkpoint on a corpus.

Example:
    ```python
    >>> mapping = map_labels(["neutral", "calm", "fearful"], ["neutral", "happy", "sad", "angry"], "calm=neutral")
    >>> mapping.mapping, mapping.unmapped
    ({'neutral': 'neutral', 'calm': 'neutral'}, ['fearful'])

    ```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ser_hf.corpora.label_maps import parse_label_map_text
from ser_hf.emotions import canonical_emotion
from ser_hf.errors import EvaluationError, SERError

__all__ = ["LabelMapping", "as_label_map", "loader_label_map", "map_labels", "parse_label_map"]


def parse_label_map(text: str | None) -> dict[str, str]:
    """Parse ``--label-map`` text, ``"calm=neutral,surprised=happy"``, into ``{corpus label: model label}``.

    Raises:
        EvaluationError: for an item that is not ``from=to`` or a corpus label given twice with two targets.

    Example:
        ```python
        >>> parse_label_map("calm=neutral, surprised = happy")
        {'calm': 'neutral', 'surprised': 'happy'}

        ```
    """
    return parse_label_map_text(text or "", "--label-map", EvaluationError)


def as_label_map(label_map: Mapping[str, str] | str | None) -> dict[str, str]:
    """A ``label_map`` argument as a dict: a mapping as given, ``"calm=neutral,..."`` text parsed, None as ``{}``.

    Raises:
        EvaluationError: a value of another type (a list of pairs...), or text :func:`parse_label_map` refuses.
    """
    if label_map is None:
        return {}
    if isinstance(label_map, str):
        return parse_label_map(label_map)
    if not isinstance(label_map, Mapping):
        raise EvaluationError(
            f"label_map must be a mapping {{corpus label: model class}} or 'from=to,...' text, got "
            f"{type(label_map).__name__} ({label_map!r}). Pass e.g. {{'calm': 'neutral'}} or 'calm=neutral' "
            f"(from the command line: --label-map calm=neutral).")
    return dict(label_map)


def loader_label_map(label_map: Mapping[str, str], corpus: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Split a ``--label-map`` into the entries the corpus loader applies and those that meet the model's classes.

    A ``folder`` or ``manifest`` corpus carries the user's own labels (folder names, manifest cells); one that
    is no known emotion spelling (``glee``, ``0``) fails to load unless the loader maps it, as its error says.
    Such keys go to the loader; keys that spell an emotion keep their meaning, corpus label -> model class
    (``calm=neutral``). Built-in corpora and ``datasets`` sources are left to the caller: everything stays with
    the model.

    Args:
        label_map: The parsed map.
        corpus: The corpus name given to :func:`~ser_hf.corpora.load_corpus` (or a ``DatasetSource``).

    Returns:
        ``(for the loader, for the model)``.

    Example:
        ```python
        >>> loader_label_map({"glee": "happy", "calm": "neutral"}, "manifest")
        ({'glee': 'happy'}, {'calm': 'neutral'})

        ```
    """
    from ser_hf.corpora import CORPORA

    maps_raw_labels = isinstance(corpus, str) and corpus in CORPORA and CORPORA[corpus].takes("label_map")
    if not maps_raw_labels:
        return {}, dict(label_map)
    raw = {source: target for source, target in label_map.items() if _canonical(source) is None}
    return raw, {source: target for source, target in label_map.items() if source not in raw}


def _refuse_chained_entries(loader_map: Mapping[str, str], model_map: Mapping[str, str]) -> None:
    """Refuse a loader entry whose target a model-side entry maps again (``glee=happy,happy=sad``).

    One ``--label-map`` reads as one mapping from corpus labels to targets, but the loader's entries relabel the raw
    clips first and the model-side entries then apply to every clip of the label they name: the glee clips would be
    scored as sad, the double mapping load_corpus refuses to do. Which of the two the user meant cannot be told.

    Raises:
        EvaluationError: naming both entries and the fix.
    """
    for source, target in loader_map.items():
        final = _canonical(target)
        for key, value in model_map.items():
            if key == target or (final is not None and _canonical(key) == final):
                raise EvaluationError(
                    f"--label-map maps {source!r} to {target!r} (applied to the corpus's raw labels by the loader) "
                    f"and {key!r} to {value!r} (applied to the loaded labels), so the {source!r} clips would be "
                    f"relabelled twice and scored as {value!r}; expected each corpus label mapped once. Map the raw "
                    f"label straight to its final class (e.g. '{source}={value}'), or drop one of the two entries.")


def _canonical(name: str) -> str | None:
    try:
        return canonical_emotion(name)
    except SERError:
        return None  # e.g. 'LABEL_0': only an explicit label_map can reach it


@dataclass(frozen=True)
class LabelMapping:
    """How a corpus's labels meet a model's classes.

    Args:
        corpus_labels: The corpus's label names (``ClassLabel`` order).
        model_labels: The model's class names (``config.id2label`` order).
        mapping: Corpus label -> model class, for every corpus label that has a counterpart.
        unmapped: Corpus labels without a counterpart, in corpus order.
    """

    corpus_labels: list[str]
    model_labels: list[str]
    mapping: dict[str, str]
    unmapped: list[str]

    def model_ids(self) -> dict[int, int]:
        """Corpus label id -> model class id, for the mapped labels."""
        return {self.corpus_labels.index(c): self.model_labels.index(m) for c, m in self.mapping.items()}


def _find_model_label(target: str, model_labels: Sequence[str]) -> str | None:
    for name in model_labels:
        if name == target:
            return name
    canonical = _canonical(target)
    matches = [name for name in model_labels if canonical is not None and _canonical(name) == canonical]
    return matches[0] if len(matches) == 1 else None


def _check_label_map(label_map: Mapping[str, str], corpus_labels: Sequence[str], model_labels: Sequence[str]) -> dict:
    resolved, given_as = {}, {}
    for source, target in label_map.items():
        key = source if source in corpus_labels else _canonical(source)
        if key not in corpus_labels:
            raise EvaluationError(
                f"--label-map key {source!r} is not a label of the evaluated corpus; its labels are "
                f"{list(corpus_labels)}. Map corpus labels to model classes, e.g. 'calm=neutral'."
            )
        if _find_model_label(target, model_labels) is None:
            raise EvaluationError(
                f"--label-map value {target!r} (for {source!r}) is not one of the model's classes "
                f"{list(model_labels)}. Map corpus labels to model classes, e.g. '{key}={model_labels[0]}'."
            )
        if key in resolved and _find_model_label(resolved[key], model_labels) != _find_model_label(target,
                                                                                                  model_labels):
            # 'calm=neutral,Calm=happy': two spellings of one corpus label; the last would silently win
            raise EvaluationError(
                f"--label-map maps the corpus label {key!r} twice: as {given_as[key]!r} to {resolved[key]!r} and as "
                f"{source!r} to {target!r}. Keep one of them.")
        resolved[key], given_as[key] = target, source
    return resolved


def map_labels(
    corpus_labels: Sequence[str], model_labels: Sequence[str], label_map: Mapping[str, str] | str | None = None
) -> LabelMapping:
    """Match corpus labels to model classes: same canonical emotion, or as ``label_map`` says.

    Args:
        corpus_labels: The corpus's label names.
        model_labels: The model's class names (canonical ser_hf names, or spellings such as ``"ang"``).
        label_map: Corpus label -> model class, overriding the match by name: a mapping (``{"calm": "neutral"}``)
            or ``--label-map`` text (``"calm=neutral"``).

    Returns:
        A :class:`LabelMapping`.

    Raises:
        EvaluationError: a ``label_map`` that is neither a mapping nor text, a key that is not a corpus label or
            value that is not a model class, or no corpus label with any counterpart among the model's classes.

    Example:
        ```python
        >>> m = map_labels(["neutral", "calm", "happy"], ["neutral", "happy", "sad", "angry"], {"calm": "neutral"})
        >>> m.mapping, m.unmapped
        ({'neutral': 'neutral', 'calm': 'neutral', 'happy': 'happy'}, [])

        ```
    """
    corpus_labels, model_labels = [str(x) for x in corpus_labels], [str(x) for x in model_labels]
    explicit = _check_label_map(as_label_map(label_map), corpus_labels, model_labels)
    mapping, unmapped = {}, []
    for label in corpus_labels:
        target = _find_model_label(explicit.get(label, label), model_labels)
        if target is None:
            unmapped.append(label)
        else:
            mapping[label] = target
    if not mapping:
        raise EvaluationError(
            f"No label of the corpus ({corpus_labels}) has a counterpart among the model's classes "
            f"({model_labels}), so nothing can be scored. Pass --label-map corpus_label=model_label,... "
            f"(label_map={{...}}), or evaluate on a corpus that shares emotions with the model."
        )
    return LabelMapping(corpus_labels, model_labels, mapping, unmapped)
