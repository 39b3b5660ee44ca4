"""The learnable synthetic corpus: determinism, reuse, atomic writes, loading, emotion cues, learnability."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ser_hf.corpora import load_corpus
from ser_hf.corpora import synthetic_speech as synthetic
from ser_hf.corpora.synthetic_speech import (
    SUPPORTED_EMOTIONS,
    SYNTHETIC_VERSION,
    make_synthetic_corpus,
    speaker_profiles,
    synthesize_clip,
)
from ser_hf.errors import CorpusError
from ser_hf.splits import speaker_folds

FOUR = ("neutral", "happy", "sad", "angry")
TINY = {"n_speakers": 2, "clips_per_speaker_per_emotion": 1, "emotions": ("sad", "angry")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 speakers x 4 emotions x 4 clips: small enough for seconds, large enough to learn from."""
    return make_synthetic_corpus(tmp_path_factory.mktemp("synthetic") / "corpus", n_speakers=4,
                                 clips_per_speaker_per_emotion=4)


@pytest.fixture(scope="module")
def dataset(corpus: Path):
    return load_corpus("manifest", corpus)


def clip_measures(path: str) -> dict[str, np.ndarray | float]:
    """Basic features of one clip: MFCC mean/std, log-F0 (yin, voiced frames) mean/std, log-RMS mean/std."""
    wave, sr = sf.read(path, dtype="float32")
    mfcc = librosa.feature.mfcc(y=wave, sr=sr, n_mfcc=13)
    f0 = librosa.yin(wave, fmin=60, fmax=500, sr=sr, frame_length=1024)
    rms = librosa.feature.rms(y=wave, frame_length=1024)[0]
    n = min(f0.size, rms.size)
    log_f0 = np.log(f0[:n][rms[:n] > 0.1 * rms.max()])  # voiced frames only: yin guesses in silence too
    log_rms = np.log(rms + 1e-8)
    vector = np.concatenate([mfcc.mean(1), mfcc.std(1), [log_f0.mean(), log_f0.std(), log_rms.mean(), log_rms.std()]])
    return {"vector": vector, "log_f0": float(np.median(log_f0)), "rms": float(np.sqrt(np.mean(wave**2)))}


@pytest.fixture(scope="module")
def measures(dataset) -> list[dict]:
    return [clip_measures(path) for path in dataset["audio"]]


def files_of(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path):
    first = files_of(make_synthetic_corpus(tmp_path / "a", **TINY))
    assert first == files_of(make_synthetic_corpus(tmp_path / "b", **TINY))
    other = files_of(make_synthetic_corpus(tmp_path / "c", **TINY, seed=1))
    assert other.keys() == first.keys()
    assert other["spk01/spk01_sad_01.wav"] != first["spk01/spk01_sad_01.wav"]


def test_clips_do_not_depend_on_corpus_size(tmp_path: Path):
    small = files_of(make_synthetic_corpus(tmp_path / "small", **TINY))
    large = files_of(make_synthetic_corpus(tmp_path / "large", **{**TINY, "n_speakers": 3, "emotions": FOUR}))
    assert all(large[name] == data for name, data in small.items() if name.endswith(".wav"))


def test_second_call_reuses_the_corpus_and_other_parameters_replace_it(tmp_path: Path):
    root = make_synthetic_corpus(tmp_path / "corpus", **TINY)
    watched = [root / "manifest.csv", root / "spk02" / "spk02_angry_01.wav"]
    before = [path.stat().st_mtime_ns for path in watched]
    assert make_synthetic_corpus(tmp_path / "corpus", **TINY) == root
    assert [path.stat().st_mtime_ns for path in watched] == before

    make_synthetic_corpus(root, **TINY, seed=3)
    params = json.loads((root / "synthetic.json").read_text())
    assert params["seed"] == 3 and params["synthetic"] is True and params["version"] == SYNTHETIC_VERSION
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus"]  # no temporary folders left


def test_an_interrupted_run_leaves_no_half_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return synthesize_clip(*args, **kwargs)

    monkeypatch.setattr(synthetic, "synthesize_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_corpus(tmp_path / "corpus", **TINY)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert len(load_corpus("manifest", make_synthetic_corpus(tmp_path / "corpus", **TINY))) == 4


def test_loads_through_the_manifest_loader_with_speakers_and_genders(corpus: Path, dataset):
    with open(corpus / "manifest.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["path", "label", "speaker", "gender"]
        assert not any(Path(row["path"]).is_absolute() for row in reader)
    assert len(dataset) == 4 * 4 * 4
    assert dataset.features["label"].names == list(FOUR)
    assert np.bincount(dataset["label"]).tolist() == [16, 16, 16, 16]
    genders = dict(zip(dataset["speaker"], dataset["gender"]))
    assert genders == {"spk01": "male", "spk02": "female", "spk03": "male", "spk04": "female"}
    assert all(1.5 <= duration <= 3.0 for duration in dataset["duration"])
    info = sf.info(dataset[0]["audio"])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert json.loads((corpus / "synthetic.json").read_text())["synthetic"] is True


def test_speakers_are_distinct_voices():
    male, female = speaker_profiles(2)
    assert 100 <= male.f0 <= 140 and 180 <= female.f0 <= 240
    assert female.formant_scale > male.formant_scale


def test_emotion_cues_are_present_for_every_speaker(dataset, measures):
    names = dataset.features["label"].names
    by_speaker: dict[tuple[str, str], list[dict]] = {}
    for speaker, label, measure in zip(dataset["speaker"], dataset["label"], measures):
        by_speaker.setdefault((speaker, names[label]), []).append(measure)

    def mean(speaker: str, emotion: str, key: str) -> float:
        return float(np.mean([m[key] for m in by_speaker[(speaker, emotion)]]))

    for speaker in sorted(set(dataset["speaker"])):
        assert mean(speaker, "angry", "log_f0") > mean(speaker, "sad", "log_f0"), speaker
        assert mean(speaker, "happy", "log_f0") > mean(speaker, "sad", "log_f0"), speaker
        assert mean(speaker, "angry", "rms") > 1.5 * mean(speaker, "sad", "rms"), speaker


def test_learnable_but_not_trivial_on_speaker_independent_folds(dataset, measures):
    features, labels = np.stack([m["vector"] for m in measures]), np.asarray(dataset["label"])
    predicted = np.zeros_like(labels)
    for fold in speaker_folds(dataset, n_folds=4, seed=0):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        predicted[fold.test] = model.fit(features[fold.train], labels[fold.train]).predict(features[fold.test])
    assert 0.45 < balanced_accuracy_score(labels, predicted) < 1.0


@pytest.mark.parametrize("emotion", SUPPORTED_EMOTIONS)
def test_every_supported_emotion_can_be_spoken(emotion: str):
    wave = synthesize_clip(speaker_profiles(2)[1], emotion, seed=7)
    assert wave.dtype == np.float32 and np.isfinite(wave).all() and np.abs(wave).max() <= 1.0
    assert 1.5 <= wave.size / 16000 <= 3.0


def test_emotions_accept_subset_names_and_spellings(tmp_path: Path):
    root = make_synthetic_corpus(tmp_path / "corpus", **{**TINY, "emotions": ["Anger", "sadness"]})
    assert json.loads((root / "synthetic.json").read_text())["emotions"] == ["sad", "angry"]
    assert synthetic._check_emotions("ravdess8") == SUPPORTED_EMOTIONS[:-1]  # all but boredom


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"emotions": ("neutral", "joyous")}, r"emotions=\(.*\) has \['joyous'\]; expected .*Choose among \['neutral'"),
        ({"emotions": ("neutral", "frustrated")}, r"has \['frustrated'\]; expected emotions the synthetic corpus can"),
        ({"emotions": "4clas"}, r"emotions='4clas' has \['4clas'\].*subset name such as '4class'"),
        ({"emotions": ()}, r"emotions=\(\) has no emotion; expected"),
        ({"n_speakers": 1}, r"n_speakers must be an integer >= 2, got 1\. Speaker-independent splits need at least 2"),
        ({"clips_per_speaker_per_emotion": 0}, r"clips_per_speaker_per_emotion must be an integer >= 1, got 0"),
        ({"clips_per_speaker_per_emotion": 2.5}, r"clips_per_speaker_per_emotion must be an integer >= 1, got 2\.5"),
        ({"sampling_rate": 100}, r"sampling_rate must be an integer >= 8000, got 100\. Use e\.g\. 16000"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_raise_corpus_error(tmp_path: Path, arguments: dict, match: str):
    with pytest.raises(CorpusError, match=match):
        make_synthetic_corpus(tmp_path / "corpus", **arguments)
    assert not (tmp_path / "corpus").exists()


def test_refuses_to_overwrite_other_data(tmp_path: Path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusError, match=r"not a synthetic corpus .*refusing to overwrite.*new or empty folder"):
        make_synthetic_corpus(tmp_path / "mine", **TINY)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_folder_that_can_be_no_corpus_is_refused_before_a_clip_is_made(tmp_path: Path, monkeypatch):
    """A link to nothing, a path below a file, a name that is not UTF-8 (soundfile cannot write there): refused
    naming the folder, before any clip is synthesised (the link's case failed with a raw error after them all)."""
    import os

    from ser_hf.corpora import synthetic_speech

    monkeypatch.setattr(synthetic_speech, "_write_corpus", lambda *args: pytest.fail("a clip was synthesised"))
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {"dangling": r"synthetic corpus folder .*dangling is a symbolic link to .*nowhere.*does not exist",
             "file/sub": r"synthetic corpus folder .*cannot be created: .*file is a file, not a folder",
             os.fsdecode(b"d\xff"): r"synthetic corpus folder .*d\\xff: its path is not valid UTF-8, and soundfile"}
    for name, expected in cases.items():
        with pytest.raises(CorpusError, match=expected):
            make_synthetic_corpus(tmp_path / name, **TINY)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dangling", "file"]


def test_a_folder_is_replaced_only_when_it_holds_nothing_but_an_earlier_corpus(tmp_path: Path):
    """A user's own synthetic.json, or a file of theirs put inside an earlier corpus, keeps the folder."""
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "photos" / "precious.txt").write_text("keep me")
    (mine / "synthetic.json").write_text('{"my": "own settings"}')
    with pytest.raises(CorpusError, match=r"not a synthetic corpus .*refusing to overwrite"):
        make_synthetic_corpus(mine, **TINY)
    (mine / "synthetic.json").write_text('{"synthetic": true, "version": 1}')  # looks like ours, holds photos
    with pytest.raises(CorpusError, match=r"holds files a synthetic corpus does not write"):
        make_synthetic_corpus(mine, **TINY)
    assert (mine / "photos" / "precious.txt").read_text() == "keep me"

    earlier = make_synthetic_corpus(tmp_path / "corpus", **TINY)
    speaker = sorted(p for p in earlier.iterdir() if p.is_dir())[0]
    (speaker / "my-take.wav").write_bytes(b"mine")
    with pytest.raises(CorpusError, match=r"refusing to overwrite"):
        make_synthetic_corpus(earlier, **{**TINY, "seed": 1})
    assert (speaker / "my-take.wav").read_bytes() == b"mine"
    (speaker / "my-take.wav").unlink()
    assert make_synthetic_corpus(earlier, **{**TINY, "seed": 1}) == earlier  # nothing but the corpus: replaced
    assert json.loads((earlier / "synthetic.json").read_text())["seed"] == 1
