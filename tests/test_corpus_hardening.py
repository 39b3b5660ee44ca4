"""Unusual but legal corpora never crash the splits, loaders or ``ser-hf data``; bad input gets one clear error."""

from __future__ import annotations

import itertools
import logging
import warnings

import datasets
import numpy as np
import pytest

from ser_hf.errors import SplitError
from ser_hf.splits import add_validation, leave_one_speaker_out, speaker_folds, speaker_split

EMOTIONS4 = ["neutral", "happy", "sad", "angry"]


def _dataset(clips: list[tuple[str, int]]) -> datasets.Dataset:
    """A label-only dataset of (speaker, label id) clips: splits read nothing else."""
    return datasets.Dataset.from_dict(
        {"audio": [f"/x/{n}.wav" for n in range(len(clips))], "speaker": [s for s, _ in clips],
         "label": [label for _, label in clips]},
        features=datasets.Features({"audio": datasets.Value("string"), "speaker": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=EMOTIONS4)}),
    )


def _small_corpus(n_speakers: int = 12, per_speaker: int = 2) -> datasets.Dataset:
    """The audit's c4_small: 12 speakers, 24 clips, 6 per class (each speaker two emotions)."""
    return _dataset([(f"s{s:02d}", (s * per_speaker + k) % 4) for s in range(n_speakers) for k in range(per_speaker)])


def _check_folds(ds: datasets.Dataset, folds, n_folds: int) -> None:
    speakers = np.asarray(ds["speaker"])
    assert len(folds) == n_folds
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ds)))
    for fold in folds:
        assert len(fold.test) and len(fold.train), fold.name
        assert not set(speakers[fold.train]) & set(speakers[fold.test])
        assert not set(speakers[fold.validation]) & (set(speakers[fold.train]) | set(speakers[fold.test]))


def _layouts():
    """Small corpora of assorted shapes: few speakers, unequal speakers, classes of one speaker."""
    rng = np.random.default_rng(0)
    yield _small_corpus()
    yield _dataset([(s, label) for s in "ABCD" for label in range(4)])  # c5_empty: 4 speakers x 4 emotions
    yield _dataset([("A", 0), ("A", 1), ("B", 2), ("C", 3), ("D", 0), ("D", 0), ("E", 1)])
    # StratifiedGroupKFold leaves a fold empty here (4 folds, seed 0): the audit's c5_empty shape.
    yield _dataset([(f"s{s}", label) for s, labels in enumerate([(0, 2, 1, 2, 0, 3), (3, 0, 3), (1,), (1, 1, 2)])
                    for label in labels])
    for n_speakers in (3, 5, 7, 9):
        clips = [(f"s{s}", int(rng.integers(4))) for s in range(n_speakers) for _ in range(int(rng.integers(1, 6)))]
        yield _dataset(clips)


@pytest.mark.parametrize("ds", list(_layouts()), ids=lambda ds: f"{len(set(ds['speaker']))}spk{len(ds)}clips")
def test_every_fold_count_on_small_corpora_gives_nonempty_disjoint_folds(ds):
    n_speakers = len(set(ds["speaker"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw scikit-learn warning escapes either
        for n_folds, seed in itertools.product(range(2, n_speakers + 1), range(8)):
            _check_folds(ds, speaker_folds(ds, n_folds=n_folds, seed=seed), n_folds)


def test_holdout_and_folds_of_a_corpus_with_six_clips_per_class():
    ds = _small_corpus()
    for seed in range(4):
        parts = speaker_split(ds, test_size=0.2, validation_size=0.1, seed=seed)  # 8 folds for 0.125 > 6 clips
        assert set(parts) == {"train", "validation", "test"}
        parts = speaker_split(ds, test_size=0.15, validation_size=0.15, seed=seed)  # 7 folds
        assert all(len(part) for part in parts.values())
        _check_folds(ds, speaker_folds(ds, n_folds=7, seed=seed, validation_size=0.15), 7)


def test_too_many_folds_names_the_setting_and_the_fix():
    with pytest.raises(SplitError, match=r"n_folds \(--folds, --num_folds\)=5: Cannot make 5 .* from 4 speakers.*"
                                         r"2 <= folds <= 4"):
        speaker_folds(_dataset([(s, 0) for s in "ABCD"]), n_folds=5)


def test_one_training_speaker_left_names_fold_validation_size_and_fix():
    ds = _dataset([(s, label) for s in "ABC" for label in range(4)])
    with pytest.raises(SplitError, match=r"validation_size \(--validation_size\) asks for a validation part, but "
                                         r"fold\d's training speakers are only 1 .*Set validation_size "
                                         r"\(--validation_size\) to 0 .*, use fewer folds \(--num_folds\), or use data"):
        speaker_folds(ds, n_folds=2, seed=0, validation_size=0.15,
                      settings={"validation_size": "validation_size (--validation_size)", "n_folds": "--num_folds"})
    fold = speaker_folds(ds, n_folds=2, seed=0)[0]
    one = fold if len(set(np.asarray(ds["speaker"])[fold.train])) == 1 else speaker_folds(ds, 2, 0)[1]
    with pytest.raises(SplitError, match=rf"{one.name}'s training speakers are only 1"):
        add_validation(ds, one, 0.15)
    with pytest.raises(SplitError, match=r"test_size asks for a test part, but the corpus's speakers are only 1"):
        speaker_split(_dataset([("A", 0), ("A", 1)]), test_size=0.2)


def test_a_class_of_one_speaker_is_named_once_with_the_folds_that_train_without_it(caplog):
    ds = _dataset([(s, label) for s in "ABCDEF" for label in range(3)] + [("A", 3), ("A", 3)])
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.splits"):
        folds = speaker_folds(ds, n_folds=3, seed=0)
    without = [f.name for f in folds if 3 not in np.asarray(ds["label"])[f.train]]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "'angry' has clips from only 1 speaker(s) (A)" in warned[0] and ", ".join(without) in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.splits"):
        leave_one_speaker_out(ds)
    assert "speaker_A train without it" in caplog.text


def test_normal_corpora_keep_their_fold_assignment(tmp_path):
    """Benchmarks depend on these: the fallbacks only act where scikit-learn raised or left a fold empty."""
    from ser_hf.corpora import load_corpus
    from ser_hf.testing.corpora import make_corpus_tree

    ds = load_corpus("ravdess", make_corpus_tree("ravdess", tmp_path / "r"))
    speakers = np.asarray(ds["speaker"])

    def by_speaker(fold):
        return [sorted(set(speakers[rows])) for rows in (fold.train, fold.validation, fold.test)]

    assert [by_speaker(f) for f in speaker_folds(ds, 4, 3, 0.15)] == [
        [["01", "02", "05", "09", "14"], ["13"], ["06", "10"]], [["01", "05", "06", "09", "10"], ["13"], ["02", "14"]],
        [["02", "05", "06", "10", "14"], ["13"], ["01", "09"]], [["01", "02", "06", "10", "14"], ["09"], ["05", "13"]]]
    parts = speaker_split(ds, 0.2, 0.15, 0)
    assert {k: sorted(set(v["speaker"])) for k, v in parts.items()} == {
        "train": ["01", "02", "09", "13"], "validation": ["06", "14"], "test": ["05", "10"]}


_SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"
# sha256 (first 16 hex) of the speakers of every part of every fold, computed before the small-corpus fallbacks.
_PINNED = {
    "urdu": {"corpus_folds": "8123c496e246987d", "speaker_folds5_v15": "8306a1ffcb1159cc", "split": "f3cc01902aafd09b",
             "4c_folds": "f41ae645e26ebaf4", "4c_split": "e08dc4461c46e3f7"},
    "ravdess": {"corpus_folds": "d5f26cba8a53ae6a", "speaker_folds5_v15": "b913a2ef0b68a16e",
                "split": "873b1efb1454c887", "4c_folds": "d5f26cba8a53ae6a", "4c_split": "ca9d403e11dda743"},
}


@pytest.mark.parametrize("name", sorted(_PINNED))
def test_real_corpora_keep_their_fold_assignment(name):
    import hashlib
    import json

    from ser_hf.corpora import load_corpus
    from ser_hf.splits import corpus_folds

    if not (_SHARED / name).is_dir():
        pytest.skip(f"the {name} corpus is not in {_SHARED}")

    def folds_digest(ds, folds):
        speakers = np.asarray(ds["speaker"], dtype=object)
        parts = [[sorted(set(speakers[r])) for r in (f.train, f.validation, f.test)] for f in folds]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def split_digest(parts):
        named = {key: sorted(set(part["speaker"])) for key, part in parts.items()}
        return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:16]

    ds = load_corpus(name, _SHARED / name, check_audio=False)
    four = load_corpus(name, _SHARED / name, check_audio=False, emotions="4class")
    assert {
        "corpus_folds": folds_digest(ds, corpus_folds(ds)),
        "speaker_folds5_v15": folds_digest(ds, speaker_folds(ds, 5, 0, 0.15)),
        "split": split_digest(speaker_split(ds, 0.2, 0.15, 0)),
        "4c_folds": folds_digest(four, corpus_folds(four, 5, 1)),
        "4c_split": split_digest(speaker_split(four, 0.2, 0.1, 2)),
    } == _PINNED[name]


# --- loaders: regexes, encodings, label maps, duplicate files, all-unreadable corpora ---------------------------

def _write_manifest(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Eight short clips: two speakers x four emotions, as (path, label, speaker)."""
    from ser_hf.testing.corpora import write_tone

    root = tmp_path_factory.mktemp("tones")
    clips = []
    for n, (speaker, label) in enumerate(itertools.product("AB", EMOTIONS4)):
        clips.append((write_tone(root / f"{speaker}_{label}.wav", frequency=150 + 10 * n, seed=n) or
                      root / f"{speaker}_{label}.wav", label, speaker))
    return clips


def _manifest_text(clips, header="path,label,speaker") -> str:
    return header + "\n" + "".join(f"{path},{label},{speaker}\n" for path, label, speaker in clips)


@pytest.mark.parametrize("pattern, found", [
    ("(spk", r"missing \) at position 4"), ("[a-", "unterminated character set"), ("*x(\\d)", "nothing to repeat"),
    ("spk\\d+", "has no group"), (("a",), "must be a regular expression"),
    ("(a|aa)+c(x)", r"took more than 1 s on '.*' \(catastrophic backtracking"),
])
def test_bad_speaker_pattern_names_the_flag_the_regex_and_the_fix(tmp_path, pattern, found):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("folder", tmp_path / "f")
    if "backtracking" in found:  # a name long enough to take seconds (about 2x per character)
        for clip in root.rglob("*.wav"):
            clip.rename(clip.with_name("a" * 40 + clip.name))
    with pytest.raises(CorpusError, match=rf"speaker_pattern \(--speaker-pattern\) .*{found}.*e\.g\. --speaker-pattern"):
        load_corpus("folder", root, speaker_pattern=pattern)


def test_a_speaker_group_matching_empty_text_is_a_problem_not_a_missing_speaker(tmp_path):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("folder", tmp_path / "f")
    with pytest.raises(CorpusError, match=r"speaker group is empty"):
        load_corpus("folder", root, speaker_pattern=r"^(x)?spk")


def test_latin1_manifest_names_file_offset_and_fix_and_a_bom_is_accepted(tmp_path, tones):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError

    text = _manifest_text(tones, header="path,label,speaker,note").replace(",A\n", ",A,ok\n").replace(",B\n", ",B,ok\n")
    latin_text = text.replace("ok", "caf\u00e9", 1)
    latin = _write_manifest(tmp_path / "latin.csv", latin_text.encode("latin-1"))
    offset = latin_text.index("caf\u00e9") + 3  # the paths before it are ASCII: characters are bytes
    with pytest.raises(CorpusError, match=rf"latin\.csv' is not UTF-8 text: byte {offset} \(line 2\) is 0xe9.*"
                                          r"Save it as UTF-8"):
        load_corpus("manifest", latin)
    bom = _write_manifest(tmp_path / "bom.csv", b"\xef\xbb\xbf" + text.encode())
    assert len(load_corpus("manifest", bom)) == len(tones)
    jsonl = _write_manifest(tmp_path / "m.jsonl", '{"path": "a.wav", "label": "sad\xe9"}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match=r"m\.jsonl' is not UTF-8 text: byte 31 \(line 1\) is 0xe9"):
        load_corpus("manifest", jsonl)


@pytest.mark.parametrize("content, found", [
    (b"path,label\n\"a.wav,happy\n", r"m\.csv': line 2 opens a quoted cell .* never closed.*Close the quote in line 2"),
    (b"path,label\x00\na.wav,happy\n", r"lacks column\(s\) \['label'\]; found \['label.x00', 'path'\]"),
    (b"path,label\n" + b"x" * 200_000 + b",happy\n", r"cannot be read as CSV at line 2: field larger than field limit"),
    (b"path,label\na.wav,happy,extra\n", r"1 more cell\(s\) than the header"),
    (b"path,label,speaker\na.wav\n", r"no cell for column\(s\) \['label', 'speaker'\]"),
    (b"path,label\n,happy\n", r"'path' cell is empty"),
])
def test_malformed_manifest_rows_are_named_not_tracebacks(tmp_path, content, found):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError

    with pytest.raises(CorpusError, match=found):
        load_corpus("manifest", _write_manifest(tmp_path / "m.csv", content))


def test_label_map_refuses_duplicates_empty_sides_and_non_emotions():
    from ser_hf.data_arguments import DataArguments
    from ser_hf.errors import SERError

    assert DataArguments(label_map="joyful=happy, Excited=happy").label_map_dict() == {"joyful": "happy",
                                                                                        "Excited": "happy"}
    for value, match in [("angry=happy,angry=sad", r"maps 'angry' twice \(angry=happy and angry=sad\)"),
                         ("Angry=happy,angry=sad", r"maps 'Angry' to 'happy' and 'angry' to 'sad', but labels are matched in any case"),
                         ("joyful=bananas", r"maps 'joyful' to 'bananas', which is not an emotion"),
                         ("=happy", r"entry '=happy' .* is not 'from=to' with both sides set"),
                         ("joy=", r"entry 'joy=' .* both sides"), ("a=b=happy", r"entry 'a=b=happy'")]:
        with pytest.raises(SERError, match=match) as caught:
            DataArguments(label_map=value)
        assert caught.value.field == "label_map"
    # The Python API and a datasets dataset (--dataset_name) read a mapping as given: two spellings of one raw
    # label with different targets are refused there too (the last silently won).
    from ser_hf.corpora.label_maps import check_label_map

    with pytest.raises(SERError, match=r"maps 'Joyful' to 'happy' and 'joyful ' to 'sad', but labels are matched in "
                                       r"any case and spacing"):
        check_label_map({"Joyful": "happy", "joyful ": "sad"})
    check_label_map({"Joyful": "happy", "JOYFUL": "Happy"})  # the same target twice is harmless


def test_label_map_entries_that_match_no_label_are_warned_about(tmp_path, tones, caplog):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError

    text = _manifest_text(tones).replace(",happy,", ",joyful,")
    manifest = _write_manifest(tmp_path / "m.csv", text)
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.base"):
        ds = load_corpus("manifest", manifest, label_map={"Joyful": "happy", "gleeful": "happy"})
    assert "happy" in ds.features["label"].names
    assert "label_map entries {'gleeful': 'happy'} match no label of the manifest corpus" in caplog.text
    assert "Joyful" not in caplog.text
    with pytest.raises(CorpusError, match=r"label_map maps 'x' to 'bananas', which is not an emotion"):
        load_corpus("manifest", manifest, label_map={"x": "bananas"})


def test_the_same_file_under_two_speakers_via_a_symlink_is_refused(tmp_path, tones):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError

    real = tones[0][0]
    link = tmp_path / "link.wav"
    link.symlink_to(real)
    clips = [*tones, (link, tones[0][1], "C"), (tmp_path / ".." / tmp_path.name / "link.wav", "sad", "D")]
    manifest = _write_manifest(tmp_path / "m.csv", _manifest_text(clips))
    with pytest.raises(CorpusError, match=r"link\.wav: the same audio file as .*A_neutral\.wav \(speaker A\), listed "
                                          r"again under speaker C; .*Keep one"):
        load_corpus("manifest", manifest)
    with pytest.warns(UserWarning, match=r"2 file\(s\) .* could not be used"):
        lenient = load_corpus("manifest", manifest, strict=False)
    assert len(lenient) == len(tones) and str(link) not in lenient["audio"]
    # Datasets built by hand are checked too, and a split never puts one file in two parts.
    from ser_hf.corpora import validate_dataset
    from ser_hf.splits import Fold, select_fold

    doubled = _dataset([("A", 0), ("B", 0), ("C", 1), ("D", 1)])
    doubled = doubled.remove_columns("audio").add_column("audio", [str(real), str(link), str(tones[1][0]),
                                                                   str(tones[2][0])])
    with pytest.raises(CorpusError, match=r"listed more than once \(symlinks, hard links and ./ spellings resolved\): "
                                          r".*A_neutral\.wav as .*\(speaker A\), .*link\.wav \(speaker B\)"):
        validate_dataset(doubled)
    with pytest.raises(SplitError, match=r"A_neutral\.wav' is in both 'train' .* and 'test' \(as '.*link\.wav'\)"):
        select_fold(doubled, Fold("f", np.array([0, 2]), np.array([1, 3])))
    # The folder reader too: a link in another emotion folder is the same recording.
    root = tmp_path / "folder"
    for speaker_label in ("happy", "sad"):
        (root / speaker_label).mkdir(parents=True)
    (root / "happy" / "spk1_a.wav").symlink_to(real)
    (root / "sad" / "spk2_a.wav").symlink_to(real)
    with pytest.raises(CorpusError, match=r"spk2_a\.wav: the same audio file as .*spk1_a\.wav \(speaker spk1\)"):
        load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_")


def test_summary_of_a_corpus_whose_every_file_is_unusable_lists_them(tmp_path):
    import os

    from ser_hf.corpora.summary import corpus_summary
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import write_tone

    root = tmp_path / "latin"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir()
    for folder in ("happy", "sad"):
        write_tone(root / folder / "tone.wav")
        os.rename(os.fsencode(root / folder / "tone.wav"), os.fsencode(root / folder) + b"/spk1_caf\xe9.wav")
    with pytest.raises(CorpusError, match=r"(?s)No usable folder clips .* 2 file\(s\) in .* could not be used.*"
                                          r"caf\\xe9\.wav: its file name is not valid UTF-8"):
        corpus_summary("folder", root)


def test_baseline_cv_on_a_small_corpus_leaks_no_scikit_learn_warning(caplog):
    from ser_hf.baseline.crossval import cross_validate_baseline

    # 'angry' from two speakers only: scikit-learn warns on inner folds that cannot all hold it.
    ds = _dataset([(f"s{s:02d}", label) for s in range(9) for label in range(3)] + [("s00", 3), ("s01", 3)])
    features = np.random.default_rng(0).normal(size=(len(ds), 5))
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="ser_hf"):
        warnings.simplefilter("error")
        result = cross_validate_baseline(ds, "svm", n_folds=3, inner_folds=3, features=features,
                                         param_grid={"clf__C": [1.0]}, progress=False)
    assert len(result.folds) == 3
    notes = [r.getMessage() for r in caplog.records if "inner fold" in r.getMessage()]
    assert len(notes) == 1 and "too few training speakers" in notes[0]


@pytest.mark.parametrize("ds", list(_layouts()), ids=lambda ds: f"{len(set(ds['speaker']))}spk{len(ds)}clips")
def test_inner_folds_of_small_training_parts_are_never_empty_nor_raise(ds):
    """The probe's and the baselines' inner CVs choose settings on the training speakers: the same grouped,
    stratified folds as the outer ones, so a small corpus neither crashes them nor gives an empty fold."""
    from ser_hf.baseline.classifiers import inner_speaker_splits
    from ser_hf.training.linear_probe import _inner_folds

    labels, speakers = np.asarray(ds["label"]), np.asarray(ds["speaker"])
    rows = set(range(len(labels)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for folds, seed in itertools.product(range(2, len(set(speakers)) + 1), range(4)):
            for splits in (_inner_folds(labels, speakers, folds, seed), inner_speaker_splits(labels, speakers, folds,
                                                                                             seed)):
                assert len(splits) == folds
                for train, test in splits:
                    assert len(train) and len(test) and set(train) | set(test) == rows
                    assert not set(speakers[train]) & set(speakers[test])


def test_inner_folds_of_one_speaker_with_one_clip_per_emotion():
    from ser_hf.training.linear_probe import _inner_folds

    labels = np.arange(4)
    splits = _inner_folds(labels, np.asarray(["A"] * 4), 3, 0)  # StratifiedKFold would refuse: no class has 2 clips
    assert sorted(np.concatenate([test for _, test in splits]).tolist()) == [0, 1, 2, 3]


def test_an_svm_baseline_on_a_corpus_too_small_to_calibrate_in_one_piece():
    """Inner training parts of two emotions among four: Platt scaling per inner fold, not a traceback."""
    from ser_hf.baseline.crossval import cross_validate_baseline

    ds = _dataset([(s, label) for s, labels in {"A": (0, 1), "B": (0, 1), "C": (2, 3), "D": (2, 3)}.items()
                   for label in labels for _ in range(2)])
    features = np.random.default_rng(0).normal(size=(len(ds), 5))
    result = cross_validate_baseline(ds, "svm", n_folds=2, inner_folds=2, features=features,
                                     param_grid={"clf__C": [1.0]}, progress=False)
    assert len(result.folds) == 2 and np.isfinite(result.pooled.unweighted_accuracy)


# --- re-audit: stray quotes, hard links, speaker whitespace, label_map keys, JSON lines, advice, named groups ------

def _stray_quote(manifest, *edits):
    """The manifest with the last cell of the given data rows (1-based) replaced."""
    lines = manifest.read_text().splitlines(keepends=True)
    for row, cell in edits:
        lines[row] = lines[row].rstrip("\r\n").rsplit(",", 1)[0] + f",{cell}\r\n"
    manifest.write_text("".join(lines))
    return manifest


def test_a_quote_never_closed_or_closed_rows_later_names_the_line_instead_of_dropping_rows(tmp_path, capsys):
    from ser_hf.cli import main
    from ser_hf.corpora import load_corpus
    from ser_hf.corpora.summary import corpus_summary
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("manifest", tmp_path / "m")
    manifest = root / "manifest.csv"
    original = manifest.read_text()
    _stray_quote(manifest, (3, '"mic0'))
    for load in (lambda: load_corpus("manifest", root), lambda: corpus_summary("manifest", root)):
        with pytest.raises(CorpusError, match=r"manifest\.csv': line 4 opens a quoted cell \(\"\) that is never closed"
                                              r".*Close the quote in line 4"):
            load()
    assert main(["data", "summary", "--corpus", "manifest", "--data-dir", str(root)]) != 0
    assert "line 4 opens a quoted cell" in capsys.readouterr().err
    manifest.write_text(original)
    _stray_quote(manifest, (3, '"mic0'), (7, 'mic1"'))  # closes 4 lines later: rows 4-8 would be one row
    with pytest.raises(CorpusError, match=r"the row starting in line 4 runs on to line 8, because a quoted cell holds a "
                                          r"line break.*Every row must be on one line"):
        load_corpus("manifest", root, strict=False)
    manifest.write_text(original)
    _stray_quote(manifest, (5, '"mic"0'))
    with pytest.raises(CorpusError, match=r"cannot be read as CSV at line 6: ',' expected after '\"'"):
        load_corpus("manifest", root)
    tsv = tmp_path / "m.tsv"
    tsv.write_text("path\tlabel\n\"a.wav\thappy\nb.wav\tsad\n")
    with pytest.raises(CorpusError, match=r"m\.tsv': line 2 opens a quoted cell"):
        load_corpus("manifest", tsv)


def test_audiofolder_metadata_is_read_as_strictly_as_a_manifest(tmp_path, tones):
    import json
    import shutil

    from ser_hf.corpora.audiofolder import read_audiofolder
    from ser_hf.errors import CorpusError

    root = tmp_path / "af"
    root.mkdir()
    for path, _, _ in tones:
        shutil.copy(path, root / path.name)
    rows = [(path.name, label, f" {speaker} ") for path, label, speaker in tones]
    (root / "metadata.csv").write_text("file_name,label,speaker\n" + "".join(f"{n},{la},{s}\n" for n, la, s in rows))
    assert set(read_audiofolder(root)["train"]["speaker"]) == {" A ", " B "}  # raw; the loader strips (below)
    text = (root / "metadata.csv").read_text().replace(",neutral,", ',"neutral,', 1)
    (root / "metadata.csv").write_text(text)
    with pytest.raises(CorpusError, match=r"metadata\.csv': line 2 opens a quoted cell"):
        read_audiofolder(root)
    (root / "metadata.csv").unlink()
    (root / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": n, "label": la, "speaker": s, "note": "a\u2028b\x85c\x0cd\x1ce"}, ensure_ascii=False)
        .replace("\\f", "\x0c").replace("\\u001c", "\x1c") + "\r\n" for n, la, s in rows))
    assert read_audiofolder(root)["train"]["note"] == ["a\u2028b\x85c\x0cd\x1ce"] * len(tones)
    (root / "metadata.jsonl").write_text('{"file_name": "A_neutral.wav"}\n["not", "an", "object"]\n')
    with pytest.raises(CorpusError, match=r"metadata\.jsonl': line 2 is not a JSON object \(found list\)"):
        read_audiofolder(root)


def test_json_lines_manifests_may_hold_any_character_inside_a_string(tmp_path, tones):
    import json

    from ser_hf.corpora import load_corpus

    manifest = tmp_path / "m.jsonl"
    notes = ["line\u2028separator", "next\x85line", "form\x0cfeed", "file\x1cgroup\x1drecord\x1eunit", "para\u2029"]
    manifest.write_text("".join(
        json.dumps({"path": str(p), "label": la, "speaker": s, "note": notes[n % len(notes)]}, ensure_ascii=False)
        .replace("\\f", "\x0c").replace("\\u001c", "\x1c").replace("\\u001d", "\x1d").replace("\\u001e", "\x1e")
        + ("\r\n" if n % 2 else "\n") for n, (p, la, s) in enumerate(tones)), encoding="utf-8")
    assert "\x0c" in manifest.read_text() and "\x1c" in manifest.read_text()
    ds = load_corpus("manifest", manifest)
    assert len(ds) == len(tones) and ds["note"][:5] == notes


def test_a_hard_link_of_one_recording_under_two_speakers_is_refused(tmp_path, tones):
    import os

    from ser_hf.corpora import load_corpus, validate_dataset
    from ser_hf.errors import CorpusError
    from ser_hf.splits import Fold, select_fold
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("manifest", tmp_path / "m")
    os.link(root / "clips" / "clip00.wav", root / "clips" / "hard00.wav")
    with (root / "manifest.csv").open("a") as handle:
        handle.write("clips/hard00.wav,sad,D,M,test,mic0\n")
    with pytest.raises(CorpusError, match=r"hard00\.wav: the same audio file as .*clip00\.wav \(speaker A\), listed "
                                          r"again under speaker D"):
        load_corpus("manifest", root)
    folder = make_corpus_tree("folder", tmp_path / "f")
    os.link(folder / "sad" / "spk1_0.wav", folder / "sad" / "spk2_9.wav")
    with pytest.raises(CorpusError, match=r"spk2_9\.wav: the same audio file as .*spk1_0\.wav \(speaker spk1\)"):
        load_corpus("folder", folder, speaker_pattern=r"^(spk\d+)_")
    # Under the same speaker too: the recording would be counted twice.
    os.link(folder / "sad" / "spk1_0.wav", folder / "sad" / "spk1_9.wav")
    (folder / "sad" / "spk2_9.wav").unlink()
    with pytest.raises(CorpusError, match=r"spk1_9\.wav: the same audio file as .*spk1_0\.wav \(speaker spk1\), "
                                          r"listed again under speaker spk1; .*counted twice"):
        load_corpus("folder", folder, speaker_pattern=r"^(spk\d+)_")
    real, hard = tones[0][0], tmp_path / "hard.wav"
    os.link(real, hard)
    doubled = _dataset([("A", 0), ("B", 0), ("C", 1), ("D", 1)])
    doubled = doubled.remove_columns("audio").add_column("audio", [str(real), str(hard), str(tones[1][0]),
                                                                   str(tones[2][0])])
    with pytest.raises(CorpusError, match=r"listed more than once \(symlinks, hard links .*hard\.wav \(speaker B\)"):
        validate_dataset(doubled)
    with pytest.raises(SplitError, match=r"A_neutral\.wav' is in both 'train' .* and 'test' \(as '.*hard\.wav'\)"):
        select_fold(doubled, Fold("f", np.array([0, 2]), np.array([1, 3])))


def test_a_byte_identical_copy_of_one_recording_under_two_speakers_is_refused(tmp_path):
    """A copy (not a link: another inode) of one speaker's clip filed under another speaker would be trained and
    tested on in a speaker-independent split: a problem naming both, as a link is; copies under one speaker load."""
    import shutil

    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    folder = make_corpus_tree("folder", tmp_path / "f")
    pattern = r"^(spk\d+)_"
    count = len(load_corpus("folder", folder, speaker_pattern=pattern))
    shutil.copyfile(folder / "sad" / "spk1_0.wav", folder / "sad" / "spk1_9.wav")  # the same speaker: loads
    assert len(load_corpus("folder", folder, speaker_pattern=pattern)) == count + 1
    shutil.copyfile(folder / "sad" / "spk1_0.wav", folder / "Angry" / "spk2_9.wav")
    with pytest.raises(CorpusError, match=r"spk1_0\.wav: a byte-identical copy of .*spk2_9\.wav \(speaker spk2\), "
                                          r"listed under speaker spk1"):  # the first listed (Angry/) is kept
        load_corpus("folder", folder, speaker_pattern=pattern)
    with pytest.warns(UserWarning, match="byte-identical copy"):  # both of spk1's copies skipped, spk2's kept
        assert len(load_corpus("folder", folder, speaker_pattern=pattern, strict=False)) == count


def test_manifest_and_dataset_speaker_ids_are_stripped_and_blank_is_no_speaker(tmp_path, tones):
    import shutil

    from ser_hf.corpora import DatasetSource, load_corpus

    clips = [(p, label, {"A": "A ", "B": " B"}[s] if n % 2 else s) for n, (p, label, s) in enumerate(tones)]
    ds = load_corpus("manifest", _write_manifest(tmp_path / "m.csv", _manifest_text(clips)))
    assert sorted(set(ds["speaker"])) == ["A", "B"]
    blank = [(p, label, "  ") for p, label, _ in tones]
    assert set(load_corpus("manifest", _write_manifest(tmp_path / "b.csv", _manifest_text(blank)))["speaker"]) == {None}
    root = tmp_path / "af"
    root.mkdir()
    for path, _, _ in tones:
        shutil.copy(path, root / path.name)
    (root / "metadata.csv").write_text("file_name,label,speaker\n" + "".join(
        f"{p.name},{label},{s}\n" for p, label, s in [*clips[:-1], (tones[-1][0], tones[-1][1], " ")]))
    ds = load_corpus(DatasetSource(str(root)))
    assert sorted(set(ds["speaker"]) - {None}) == ["A", "B"] and ds["speaker"].count(None) == 1
    # One person typed two ways (NFC and NFD "José", a pasted zero-width space) is one speaker, so a
    # speaker-independent split can never put them on both sides.
    spellings = {"A": ["Jos\u00e9", "Jose\u0301"], "B": ["Bo", "\u200bBo\u200b"]}
    clips = [(p, label, spellings[s][n % 2]) for n, (p, label, s) in enumerate(tones)]
    ds = load_corpus("manifest", _write_manifest(tmp_path / "u.csv", _manifest_text(clips)))
    assert sorted(set(ds["speaker"])) == ["Bo", "Jos\u00e9"]


@pytest.mark.parametrize("corpus", ["urdu", "ravdess"])
def test_label_map_keys_in_any_case_or_spelling_merge_or_are_warned_about(tmp_path, corpus, caplog):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree(corpus, tmp_path / corpus)
    plain = load_corpus(corpus, root, check_audio=False)
    for key in ("Angry", "ANGRY", " angry ", "anger", "ANG"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.base"):
            merged = load_corpus(corpus, root, check_audio=False, label_map={key: "happy"})
        assert "angry" not in merged.features["label"].names, key
        assert merged["label"].count(merged.features["label"].names.index("happy")) == (
            plain["label"].count(plain.features["label"].names.index("happy"))
            + plain["label"].count(plain.features["label"].names.index("angry")))
        assert "match no label" not in caplog.text, key
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.base"):
        load_corpus(corpus, root, check_audio=False, label_map={"Angryy": "happy"})
    assert "label_map entries {'Angryy': 'happy'} match no label" in caplog.text
    with pytest.raises(CorpusError, match=r"label_map maps 'Angry' to 'happy' and 'anger' to 'sad', but both keys are "
                                          r"the emotion 'angry'"):
        load_corpus(corpus, root, check_audio=False, label_map={"Angry": "happy", "anger": "sad"})


def test_a_manifest_label_map_key_matches_labels_in_any_case_and_surrounding_spaces(tmp_path, tones, caplog):
    from ser_hf.corpora import load_corpus

    text = _manifest_text(tones).replace(",happy,", ", Joyful ,")
    with caplog.at_level(logging.WARNING, logger="ser_hf.corpora.base"):
        ds = load_corpus("manifest", _write_manifest(tmp_path / "m.csv", text), label_map={"JOYFUL ": "happy"})
    assert "happy" in ds.features["label"].names and "match no label" not in caplog.text


def test_data_split_holdout_on_two_speakers_advises_only_what_data_split_can_set(tmp_path, tones, capsys):
    from ser_hf.cli import main

    manifest = _write_manifest(tmp_path / "m.csv", _manifest_text(tones))
    assert main(["data", "split", "--corpus", "manifest", "--data-dir", str(manifest), "--holdout"]) != 0
    err = capsys.readouterr().err
    assert "the speakers left after the test part are only 1" in err
    assert ("Set --validation-size to 0 to make no validation part, hold fewer speakers out for test (a lower "
            "--test-size, or 0 for no test part), or use data with more speakers.") in err
    assert "validation_size (--validation_size)" not in err and "fold" not in err
    ds = _dataset([(s, label) for s in "AB" for label in range(4)])
    with pytest.raises(SplitError, match=r"Set validation_size \(--validation_size\) to 0 to make no validation part, "
                                         r"or use data with more speakers\.$"):
        speaker_split(ds, settings={"validation_size": "validation_size (--validation_size)"})


def test_a_named_speaker_group_is_the_speaker_even_when_it_matches_nothing(tmp_path):
    from ser_hf.corpora import load_corpus
    from ser_hf.errors import CorpusError
    from ser_hf.testing.corpora import make_corpus_tree

    root = make_corpus_tree("folder", tmp_path / "f")
    with pytest.raises(CorpusError, match=r"matches file name 'spk1_0', but its speaker group is empty"):
        load_corpus("folder", root, speaker_pattern=r"^(spk\d+)_(?P<speaker>z?)")
    named = load_corpus("folder", root, speaker_pattern=r"^(spk)(?P<speaker>\d+)_")
    assert sorted(set(named["speaker"])) == ["1", "2", "3", "4"]


def test_a_column_or_key_named_twice_is_refused_in_manifests_metadata_and_predict_inputs(tmp_path, tones):
    """A row keeps only the last of two cells (or JSON values) of one name: every reader must refuse it, naming
    the file, the name and where, instead of silently reading the column the user did not mean."""
    from ser_hf.corpora import load_corpus
    from ser_hf.corpora.audiofolder import read_audiofolder
    from ser_hf.errors import CorpusError
    from ser_hf.inference.inputs import expand_inputs, speakers_of

    rows = "".join(f"{p},{la},{s},note\n" for p, la, s in tones)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker,speaker\n" + rows)
    with pytest.raises(CorpusError, match=r"m\.csv': its header names the column 'speaker' 2 times \(columns 3, 4\)"):
        load_corpus("manifest", manifest)
    manifest.write_text("path,who,who\n" + "".join(f"{p},{s},note\n" for p, _, s in tones))  # predict's manifest
    with pytest.raises(CorpusError, match=r"names the column 'who' 2 times \(columns 2, 3\)"):
        speakers_of(expand_inputs([manifest]), [manifest], column="who")
    manifest.write_text("path,label,,\n" + "".join(f"{p},{la},,\n" for p, la, _ in tones))  # blank header cells
    assert len(expand_inputs([manifest])) == len(tones)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(f'{{"path": "{tones[0][0]}", "label": "happy", "label": "sad", "speaker": "A"}}\n')
    with pytest.raises(CorpusError, match=r"m\.jsonl': line 1 names the key\(s\) \['label'\] twice"):
        load_corpus("manifest", jsonl)
    import shutil

    folder = tmp_path / "af"
    folder.mkdir()
    shutil.copy(tones[0][0], folder / "a.wav")
    (folder / "metadata.csv").write_text("file_name,label,file_name\na.wav,happy,b.wav\n")
    with pytest.raises(CorpusError, match=r"metadata\.csv': its header names the column 'file_name' 2 times"):
        read_audiofolder(folder)
