"""Every loader on a synthetic tree with its real naming scheme, and every kind of bad input."""

import re
from collections import Counter

import datasets
import pytest

from ser_hf.corpora import BASE_COLUMNS, CORPORA, corpus_languages, load_corpus, validate_dataset
from ser_hf.emotions import EMOTIONS
from ser_hf.errors import CorpusError
from ser_hf.testing.corpora import make_corpus_tree, write_tone

# corpus -> (clips, speakers, emotions, its own metadata columns)
EXPECTED = {
    "urdu": (48, 6, {"neutral", "happy", "sad", "angry"}, {"file_number"}),
    "ravdess": (128, 8, set(EMOTION for EMOTION in EMOTIONS[:8]), {"intensity", "statement", "fold"}),
    "emodb": (56, 4, {"neutral", "happy", "sad", "angry", "fearful", "disgust", "boredom"}, {"text"}),
    "crema_d": (48, 4, {"neutral", "happy", "sad", "angry", "fearful", "disgust"}, {"sentence", "intensity"}),
    "tess": (28, 2, {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}, {"word"}),
    "savee": (56, 4, {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}, {"sentence"}),
    # 4 dialogs x 8 turns, minus 4 'xxx'; excited merged into happy by default
    "iemocap": (28, 4, {"neutral", "happy", "sad", "angry", "frustrated"}, {"session", "valence"}),
    "folder": (32, 0, {"neutral", "happy", "sad", "angry"}, set()),
    "manifest": (16, 4, {"neutral", "happy", "sad", "angry"}, {"split", "device"}),
}


def test_every_registered_corpus_has_a_synthetic_layout():
    assert set(CORPORA) - {"synthetic"} == set(EXPECTED)  # synthetic makes its own data


#: The published corpora: everything but the user's own data (folder, manifest) and the generated one.
PUBLISHED = sorted(set(CORPORA) - {"folder", "manifest", "synthetic"})


@pytest.mark.parametrize("name", PUBLISHED)
def test_each_published_corpus_names_its_url_licence_citation_and_language(name):
    corpus = CORPORA[name]
    assert re.fullmatch(r"https?://\S+", corpus.url) and re.fullmatch(r"[a-z]{2}", corpus.language)
    assert corpus.licence and corpus.citation
    doc = " ".join(corpus.doc.split())  # the module docstring says the same to people, in its bullets
    for value in (corpus.url, corpus.licence, corpus.citation):
        assert value in doc


def test_own_and_generated_data_claim_no_source():
    for name in ("folder", "manifest", "synthetic"):
        corpus = CORPORA[name]
        assert corpus.url is corpus.citation is corpus.language is None
    assert CORPORA["synthetic"].licence == "generated data, no restrictions."
    assert CORPORA["folder"].licence is CORPORA["manifest"].licence is None  # their data's own licence applies
    assert corpus_languages(["urdu", "ravdess", "tess", "emodb", "manifest"]) == ["ur", "en", "de"]


@pytest.mark.parametrize("corpus", sorted(EXPECTED))
def test_loader_shape(tmp_path, corpus):
    root = make_corpus_tree(corpus, tmp_path / corpus)
    ds = load_corpus(corpus, root)
    clips, speakers, emotions, metadata = EXPECTED[corpus]
    assert len(ds) == clips
    assert set(BASE_COLUMNS) | metadata <= set(ds.column_names)
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert set(ds.features["label"].names) == emotions
    assert list(ds.features["label"].names) == [e for e in EMOTIONS if e in emotions]  # canonical order
    assert len({s for s in ds["speaker"] if s}) == speakers
    assert all(d > 0.2 for d in ds["duration"])
    assert set(ds["corpus"]) == {corpus}
    validate_dataset(ds)


@pytest.mark.parametrize("ext", [".flac", ".ogg"])
def test_loaders_accept_any_libsndfile_extension(tmp_path, ext):
    ds = load_corpus("ravdess", make_corpus_tree("ravdess", tmp_path, extension=ext))
    assert len(ds) == 128 and all(p.endswith(ext) for p in ds["audio"])


def test_ravdess_metadata(tmp_path):
    ds = load_corpus("ravdess", make_corpus_tree("ravdess", tmp_path))
    row = ds.filter(lambda r: r["audio"].endswith("03-01-05-02-01-01-10.wav"))[0]
    assert row["speaker"] == "10" and row["gender"] == "female" and row["fold"] == 3
    assert (row["intensity"], row["statement"], row["repetition"]) == ("strong", 1, 1)
    assert ds.features["label"].int2str(row["label"]) == "angry"


def test_emotion_subset_and_merges(tmp_path):
    root = make_corpus_tree("iemocap", tmp_path)
    four = load_corpus("iemocap", root, emotions="4class")
    assert four.features["label"].names == ["neutral", "happy", "sad", "angry"]
    counts = Counter(four.features["label"].int2str(four["label"]))
    assert counts["happy"] == 8  # 4 'hap' + 4 'exc' merged
    apart = load_corpus("iemocap", root, label_map={})
    assert "excited" in apart.features["label"].names


def test_folder_speaker_pattern_and_label_map(tmp_path):
    root = make_corpus_tree("folder", tmp_path)
    ds = load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_")
    assert sorted(set(ds["speaker"])) == ["spk1", "spk2", "spk3", "spk4"]
    write_tone(tmp_path / "joyful" / "spk1_9.wav")
    with pytest.raises(CorpusError, match=r"joyful.*Unknown emotion label 'joyful'.*label_map"):
        load_corpus("folder", root)
    ds = load_corpus("folder", root, label_map={"joyful": "happy"})
    assert len(ds) == 33
    with pytest.raises(CorpusError, match=r"speaker_pattern .* has no group"):
        load_corpus("folder", root, speaker_pattern=r"spk\d+")


def test_manifest_as_file_and_bad_manifest(tmp_path):
    root = make_corpus_tree("manifest", tmp_path)
    ds = load_corpus("manifest", root / "manifest.csv")
    assert sorted(set(ds["split"])) == ["test", "train", "validation"]
    assert set(ds["gender"]) == {"female", "male"} and set(ds["device"]) == {"mic0", "mic1"}
    (tmp_path / "bad.csv").write_text("file,emotion\na.wav,angry\n")
    with pytest.raises(CorpusError, match=r"bad.csv.*lacks column\(s\) \['path', 'label'\].*found \['emotion', 'file'\]"):
        load_corpus("manifest", tmp_path / "bad.csv")


def test_manifest_jsonl(tmp_path):
    write_tone(tmp_path / "a.wav")
    write_tone(tmp_path / "b.wav", frequency=330.0)  # another recording: a byte copy with another label is refused
    (tmp_path / "manifest.jsonl").write_text('{"path": "a.wav", "label": "anger"}\n{"path": "b.wav", "label": "sad"}\n')
    ds = load_corpus("manifest", tmp_path)
    assert ds.features["label"].names == ["sad", "angry"] and ds["speaker"] == [None, None]


def test_missing_empty_and_unknown(tmp_path):
    with pytest.raises(CorpusError, match=r"Unknown corpus 'ravdes'.*'ravdess'"):
        load_corpus("ravdes", tmp_path)
    with pytest.raises(CorpusError, match=r"nowhere' does not exist.*--data-dir"):
        load_corpus("urdu", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"empty' is empty"):
        load_corpus("urdu", tmp_path / "empty")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio")
    with pytest.raises(CorpusError, match=r"No audio files under .*notes.*SM1_F10_A010"):
        load_corpus("urdu", tmp_path / "notes")
    with pytest.raises(CorpusError, match=r"No urdu clips left .*\['calm'\]"):
        load_corpus("urdu", make_corpus_tree("urdu", tmp_path / "u"), emotions=["calm"])


def test_bad_files_strict_and_lenient(tmp_path):
    root = make_corpus_tree("ravdess", tmp_path)
    write_tone(root / "Actor_01" / "03-01-09-01-01-01-01.wav")  # emotion 09 is not in the scheme
    write_tone(root / "Actor_01" / "recording_final.wav")
    (root / "Actor_02" / "03-01-01-01-01-02-02.wav").write_bytes(b"")
    (root / "Actor_02" / "03-01-02-01-01-02-02.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(CorpusError, match=r"(?s)4 file\(s\).*recording_final.wav.*does not follow.*strict=False"):
        load_corpus("ravdess", root)
    with pytest.warns(UserWarning, match=r"(?s)4 file\(s\).*03-01-01-01-01-02-02.wav.*empty.*skipped"):
        ds = load_corpus("ravdess", root, strict=False)
    assert len(ds) == 128


def test_urdu_folder_must_agree_with_name(tmp_path):
    root = make_corpus_tree("urdu", tmp_path)
    write_tone(root / "Happy" / "SM1_F99_A099.wav")
    with pytest.raises(CorpusError, match=r"SM1_F99_A099.wav' says 'angry' but its folder says 'happy'"):
        load_corpus("urdu", root)


def test_iemocap_missing_audio_and_layout(tmp_path):
    root = make_corpus_tree("iemocap", tmp_path)
    next((root / "Session2").rglob("*.wav")).unlink()
    with pytest.raises(CorpusError, match=r"Ses02.*no audio file"):
        load_corpus("iemocap", root)
    with pytest.raises(CorpusError, match=r"No Session1..Session5 folders"):
        load_corpus("iemocap", root / "Session1")


def test_validate_dataset_rejects_foreign_shapes():
    plain = datasets.Dataset.from_dict({"audio": ["a.wav"], "label": [0], "speaker": ["s"]})
    with pytest.raises(CorpusError, match=r"must be a datasets.ClassLabel.*cast_column"):
        validate_dataset(plain)
    odd = plain.cast_column("label", datasets.ClassLabel(names=["joy"]))
    with pytest.raises(CorpusError, match=r"\['joy'\] are not canonical"):
        validate_dataset(odd)
    with pytest.raises(CorpusError, match=r"lacks column\(s\) \['speaker'\]"):
        validate_dataset(plain.remove_columns("speaker"))
