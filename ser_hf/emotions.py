"""One emotion vocabulary for every corpus, the aliases that map raw labels onto it, and label subsets.

Corpora name the same emotion differently ("A", "ANG", "W" for *Wut*, "anger", "angry"); every loader
maps its raw labels onto :data:`EMOTIONS` through an explicit per-corpus table, and user data (folders,
manifests) goes through :func:`canonical_emotion`. Label subsets such as the 4-class task shared by
URDU, RAVDESS, IEMOCAP and EmoDB are a parameter (:func:`resolve_emotions`), never a copy of a loader.

Example:
    >>> canonical_emotion("Happiness")
    'happy'
    >>> resolve_emotions("4class")
    ('neutral', 'happy', 'sad', 'angry')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ser_hf.errors import CorpusError

# The canonical vocabulary, in the order labels are numbered everywhere (ClassLabel ids, reports).
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "boredom",
    "excited",
    "frustrated",
    "contempt",
    "other",
)

# Named label subsets, usable wherever a list of emotions is accepted.
EMOTION_SETS: dict[str, tuple[str, ...]] = {
    # The common 4-class task (URDU, RAVDESS subset, IEMOCAP with excited merged into happy, EmoDB subset).
    "4class": ("neutral", "happy", "sad", "angry"),
    # The six "basic" emotions plus neutral (CREMA-D, SAVEE, TESS, EmoDB without boredom).
    "basic7": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    # RAVDESS speech's eight classes.
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
}

# Lower-cased raw spellings found in corpora and user folders -> canonical names.
ALIASES: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    "neu": "neutral",
    "neutrality": "neutral",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "glad": "happy",
    "sadness": "sad",
    "ang": "angry",
    "anger": "angry",
    "mad": "angry",
    "fear": "fearful",
    "fea": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    "dis": "disgust",
    "disgusted": "disgust",
    "sur": "surprised",
    "surprise": "surprised",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "bored": "boredom",
    "exc": "excited",
    "excitement": "excited",
    "fru": "frustrated",
    "frustration": "frustrated",
    "contemptuous": "contempt",
    "oth": "other",
}


def canonical_emotion(raw: str) -> str:
    """Map a raw label (any case, e.g. ``"Angry"``, ``"anger"``, ``"ANG"``) to the canonical name.

    Raises:
        CorpusError: if the label is not a known spelling; the message lists the canonical names.
    """
    key = raw.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in ALIASES:
        raise CorpusError(
            f"Unknown emotion label {raw!r}. Expected one of the canonical emotions {list(EMOTIONS)} or a "
            f"known spelling of them (e.g. 'anger', 'happiness', 'ANG'). Rename it, or pass "
            f"label_map={{{raw!r}: '<canonical name>'}} to the loader."
        )
    return ALIASES[key]


def resolve_emotions(emotions: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Turn a subset name (``"4class"``) or a list of emotion names into canonical names, in canonical order.

    ``None`` means "all emotions the corpus has" and is returned unchanged.

    Raises:
        CorpusError: for an unknown subset name or emotion name.
    """
    if emotions is None:
        return None
    if isinstance(emotions, str):
        if emotions in EMOTION_SETS:
            return EMOTION_SETS[emotions]
        if "," not in emotions and emotions.lower() not in ALIASES:
            raise CorpusError(
                f"Unknown emotion subset {emotions!r}. Expected one of {sorted(EMOTION_SETS)} or a "
                f"comma-separated list of emotions such as 'neutral,happy,sad,angry'."
            )
        emotions = [part for part in emotions.split(",") if part.strip()]
    names = {canonical_emotion(name) for name in emotions}
    if not names:
        raise CorpusError("The emotion subset is empty; pass at least two emotions or a name like '4class'.")
    return sort_emotions(names)


def sort_emotions(names: Iterable[str]) -> tuple[str, ...]:
    """Order canonical emotion names as in :data:`EMOTIONS`, so label ids are stable across corpora."""
    return tuple(sorted(set(names), key=EMOTIONS.index))
