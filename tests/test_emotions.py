import pytest

from ser_hf.emotions import EMOTION_SETS, EMOTIONS, canonical_emotion, resolve_emotions
from ser_hf.errors import CorpusError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Angry", "angry"), ("anger", "angry"), ("ANG", "angry"), ("Happiness", "happy"), ("ps", "surprised"),
     ("pleasant surprise", "surprised"), ("fear", "fearful"), ("neu", "neutral"), ("exc", "excited")],
)
def test_aliases_map_to_canonical_names(raw, expected):
    assert canonical_emotion(raw) == expected


def test_unknown_label_names_label_and_fix():
    with pytest.raises(CorpusError, match=r"Unknown emotion label 'joyful'.*label_map"):
        canonical_emotion("joyful")


def test_subsets_resolve_in_canonical_order():
    assert resolve_emotions("4class") == ("neutral", "happy", "sad", "angry")
    assert resolve_emotions(["angry", "Neutral"]) == ("neutral", "angry")
    assert resolve_emotions("sad,anger") == ("sad", "angry")
    assert resolve_emotions(None) is None
    for subset in EMOTION_SETS.values():
        assert set(subset) <= set(EMOTIONS)


def test_unknown_subset_lists_the_known_ones():
    with pytest.raises(CorpusError, match=r"Unknown emotion subset 'five'.*4class"):
        resolve_emotions("five")
