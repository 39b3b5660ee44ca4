"""The classic baseline against hostile settings and inputs: feature settings that need gigabytes, a saved config
edited to them, --jobs 100000, clips too short or silent to hold an emotion, folds that train without an emotion,
corpora of silence, inner-fold advice that cannot work, and a target level that did nothing."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
import shutil
import warnings

import datasets
import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ser_hf.audio import AudioPreprocessor, normalize_loudness, normalize_peak
from ser_hf.baseline.classic_model import CONFIG_NAME, BaselineModel
from ser_hf.baseline.classifiers import (
    JOBS_PER_CORE,
    available_cores,
    check_n_jobs,
    fit_classifier,
    inner_speaker_splits,
)
from ser_hf.baseline.crossval import (
    clip_levels,
    cross_validate_baseline,
    dataset_features,
    dataset_sequences,
    soundless_clips,
)
from ser_hf.baseline.feature_config import MAX_ANALYSIS_PER_SECOND, FeatureConfig
from ser_hf.baseline.features import extract_features, feature_names
from ser_hf.baseline.model import load_baseline
from ser_hf.baseline.sequences import sequence_config
from ser_hf.corpora import load_corpus
from ser_hf.errors import AudioError, ModelError, SERError, SplitError
from ser_hf.splits import Fold
from ser_hf.testing.corpora import voice_like, write_tone

RATE = 16000
EMOTIONS = ["neutral", "happy", "sad", "angry"]
# A small feature set keeps extraction in milliseconds per clip.
SMALL = FeatureConfig(groups=("mfcc", "rms", "zcr"), n_mfcc=13, mfcc_delta_order=0, stats=("mean", "std", "max"))


def _label_dataset(clips: list[tuple[str, int]]) -> datasets.Dataset:
    """A dataset of (speaker, label id) clips with made-up paths: with given features nothing reads the audio."""
    return datasets.Dataset.from_dict(
        {"audio": [f"/x/{n}.wav" for n in range(len(clips))], "speaker": [s for s, _ in clips],
         "label": [label for _, label in clips]},
        features=datasets.Features({"audio": datasets.Value("string"), "speaker": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=EMOTIONS)}),
    )


def _every_emotion(speakers: list[str], takes: int = 2) -> list[tuple[str, int]]:
    return [(speaker, label) for speaker in speakers for label in range(4) for _ in range(takes)]


def _random_features(dataset: datasets.Dataset) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(len(dataset), 5))


FIT = dict(param_grid={"C": [1.0]}, progress=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> BaselineModel:
    """A logistic regression on random rows of SMALL's width: what it predicts does not matter here."""
    width = len(feature_names(SMALL))
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    pipeline.fit(np.random.default_rng(0).standard_normal((16, width)), np.arange(16) % 4)
    return BaselineModel(pipeline, EMOTIONS, SMALL, classifier="logreg")


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("saved") / "model")


def _edited(saved, tmp_path, key: str, **changes):
    folder = tmp_path / "edited"
    shutil.copytree(saved, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config[key].update(changes)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


# --- 2/3: feature settings each in range, together gigabytes; NaN, strings, fractions, unknown windows -----------

def test_settings_each_in_range_but_together_gigabytes_are_refused():
    with pytest.raises(SERError, match=r"spectral analysis .*hop_ms=0\.1.* holds 65,544,000 values per second.*"
                                       r"raise hop_ms or lower frame_ms/n_fft"):
        FeatureConfig(hop_ms=0.1, frame_ms=1000)
    with pytest.raises(SERError, match=r"pitch analysis .*pitch_frame_ms=1000"):
        FeatureConfig(sampling_rate=384000, pitch_frame_ms=1000, f0_max=600)
    # The bound admits what people use: 384 kHz, a 1 ms hop at 48 kHz, a 1 Hz pitch floor.
    for settings in (dict(sampling_rate=384000), dict(sampling_rate=48000, hop_ms=1), dict(f0_min=1)):
        assert max(FeatureConfig(**settings).analysis_sizes().values()) <= MAX_ANALYSIS_PER_SECOND


@pytest.mark.parametrize("settings, message", [
    (dict(hop_ms=float("nan")), r"FeatureConfig\.hop_ms must be a finite number in \[0\.1, 1000\], got nan\. "
                                r"Pass a value in that range \(default: 10\.0\)"),
    (dict(n_mels="40"), r"FeatureConfig\.n_mels must be an integer in \[1, 512\], got '40'"),
    (dict(n_fft=512.5), r"FeatureConfig\.n_fft must be an integer .*got 512\.5"),
    (dict(hop_ms=[10]), r"FeatureConfig\.hop_ms must be .*got the list \[10\]"),
    (dict(sampling_rate=0), r"FeatureConfig\.sampling_rate must be an integer in \[1000, 384000\], got 0"),
    (dict(window="hannn"), r"FeatureConfig\.window must be a window name scipy.*got 'hannn'"),
    (dict(window="kaiser"), r"FeatureConfig\.window .*'kaiser' must have parameters"),
])
def test_a_setting_librosa_would_fail_on_is_refused_naming_it(settings, message):
    with pytest.raises(SERError, match=message):
        FeatureConfig(**settings)


def test_a_numpy_rate_is_a_rate():
    config = FeatureConfig(sampling_rate=np.int64(16000))
    assert type(config.sampling_rate) is int and config.fingerprint() == FeatureConfig().fingerprint()


@pytest.mark.parametrize("changes, message", [
    (dict(hop_ms=0.1, frame_ms=1000), r"feature_config is inconsistent \(FeatureConfig: the spectral analysis"),
    (dict(window="nope"), r"feature_config is inconsistent \(FeatureConfig\.window must be a window name"),
    (dict(n_fft=4096.5), r"feature_config\.n_fft must be an integer|feature_config\.n_fft is 4096\.5"),
])
def test_a_saved_config_edited_to_such_settings_is_named(saved, tmp_path, changes, message):
    with pytest.raises(ModelError, match=rf"baseline_config\.json'?: .*({message})"):
        load_baseline(_edited(saved, tmp_path, "feature_config", **changes))


# --- 4: --jobs -----------------------------------------------------------------------------------------------

def test_jobs_beyond_the_cores_are_refused_before_the_corpus_loads(tmp_path, capsys):
    from ser_hf.cli import main

    most = JOBS_PER_CORE * available_cores()
    for jobs in ("100000", str(most + 1), "0", "-2"):
        argv = ["baseline", "--corpus", "urdu", "--data-dir", str(tmp_path / "nowhere"), "--jobs", jobs,
                "--out", str(tmp_path / "out")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--jobs must be a positive integer or -1 (every core), at most {most}" in err and \
               f"got {jobs}" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
    for jobs in (None, -1, 1, most):
        check_n_jobs(jobs)


def test_jobs_beyond_the_cores_are_refused_by_the_library_too():
    dataset = _label_dataset(_every_emotion(["A", "B", "C", "D"]))
    with pytest.raises(SERError, match=r"n_jobs \(--jobs\) must be a positive integer or -1 .*got 100000"):
        cross_validate_baseline(dataset, "logreg", n_folds=2, inner_folds=2, features=_random_features(dataset),
                                n_jobs=100000, **FIT)
    with pytest.raises(SERError, match=r"n_jobs must be .*got 2\.5"):
        fit_classifier(_random_features(dataset), np.asarray(dataset["label"]), dataset["speaker"], "logreg",
                       inner_folds=2, n_jobs=2.5)


# --- 7/8: clips too short or silent to hold an emotion; sampling_rate=0 ----------------------------------------

def test_a_clip_shorter_than_100_ms_is_refused_not_scored(model):
    for samples in (1, 1599):
        with pytest.raises(AudioError, match=rf"the audio array lasts .* \({samples} samples at 16000 Hz\); expected "
                                             r"at least 100 ms"):
            model.predict(voice_like(samples / RATE + 1e-9, 200.0, RATE)[:samples].astype(np.float32))
    assert len(model.predict(voice_like(0.1, 200.0, RATE))) == 1  # 100 ms is enough


def test_silence_and_a_constant_are_refused_not_scored(model):
    for wave in (np.zeros(RATE, np.float32), np.full(RATE, 0.25, np.float32),
                 (np.random.default_rng(0).standard_normal(RATE) * 1e-6).astype(np.float32)):  # -120 dBFS: rounding
        with pytest.raises(AudioError, match=r"holds no sound: its RMS level about its mean .* is -\d+ dBFS, "
                                             r"below -90"):
            model.predict_proba(wave)


def test_a_bad_clip_in_a_list_or_a_file_is_named(model, tmp_path):
    good, short = write_tone(tmp_path / "good.wav", 0.5), tmp_path / "short.wav"
    sf.write(str(short), np.full(10, 0.1, np.float32), RATE)
    with pytest.raises(AudioError, match=r"inputs\[1\] \('.*short\.wav'\) lasts 0\.625 ms"):
        model.predict([good, short])
    with pytest.raises(AudioError, match=r"inputs\[2\] \(the audio array\) holds no sound"):
        model.predict([good, voice_like(0.5, 200.0, RATE), np.zeros(RATE, np.float32)])


def test_sampling_rate_zero_is_a_mistake_not_the_models_rate(model):
    with pytest.raises(AudioError, match=r"BaselineModel\(\.\.\., sampling_rate=\.\.\.\) must be a whole number of "
                                         r"Hz from 1000"):
        model.predict(voice_like(0.5, 200.0, RATE), sampling_rate=0)
    assert len(model.predict(voice_like(0.5, 200.0, RATE), sampling_rate=None)) == 1


# --- 9: a fold that trains without an emotion ------------------------------------------------------------------

def test_given_folds_that_train_without_an_emotion_are_named(caplog):
    # 'angry' comes from speaker A only; the fold testing A trains without it.
    clips = [(s, label) for s in "ABCD" for label in range(3) for _ in range(2)] + [("A", 3), ("A", 3)]
    dataset = _label_dataset(clips)
    speakers = np.asarray(dataset["speaker"])
    folds = [Fold(f"given{n}", np.flatnonzero(~np.isin(speakers, test)), np.flatnonzero(np.isin(speakers, test)))
             for n, test in enumerate((["A", "B"], ["C", "D"]), start=1)]
    with caplog.at_level(logging.WARNING, logger="ser_hf"):
        cross_validate_baseline(dataset, "logreg", folds=folds, inner_folds=2, features=_random_features(dataset),
                                **FIT)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'angry'" in message and "given1 train without it" in message for message in warned), warned
    assert not any("given2" in message for message in warned), warned


# --- 10: corpora of silence ------------------------------------------------------------------------------------

def _corpus(root, silent: set[int], constant: set[int] = frozenset()) -> datasets.Dataset:
    """4 speakers x 4 emotions of 0.3 s tones; the clips numbered in ``silent`` are zeros, in ``constant`` 0.2 (of
    lengths that differ: the loader refuses byte-identical copies)."""
    def clip(n: int, label: str) -> np.ndarray:
        if n in silent or n in constant:
            return np.full(int(0.3 * RATE) + n, 0.2 if n in constant else 0.0, np.float32)
        return voice_like(0.3, 120.0 + 15 * n, RATE, seed=n)

    return _corpus_of(root, clip)


def _corpus_of(root, clip) -> datasets.Dataset:
    """4 speakers x 4 emotions, clip ``n`` of emotion ``label`` being ``clip(n, label)``, written as float WAV (16-bit
    PCM would round a -100 dBFS hiss to zeros)."""
    rows = []
    root.mkdir(exist_ok=True)
    for n, (speaker, label) in enumerate((s, e) for s in "ABCD" for e in EMOTIONS):
        path = root / f"{speaker}_{label}.wav"
        sf.write(str(path), clip(n, label), RATE, subtype="FLOAT")
        rows.append({"path": str(path), "label": label, "speaker": speaker})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    return load_corpus("manifest", root)


def test_silent_and_constant_clips_are_named_in_a_warning(tmp_path):
    dataset = _corpus(tmp_path, silent={1, 6}, constant={9})
    with pytest.warns(UserWarning, match=r"3 of 16 clips hold no sound \(digital silence, or one constant value\): "
                                         r"'.*A_happy\.wav', '.*B_sad\.wav', '.*C_happy\.wav'\."):
        dataset_features(dataset, SMALL, num_workers=0, progress=False)
    levels = clip_levels(dataset["audio"], RATE, num_workers=0, progress=False)
    assert soundless_clips(levels).tolist() == [n in (1, 6, 9) for n in range(16)]


def test_a_corpus_of_silence_is_refused(tmp_path):
    dataset = _corpus(tmp_path, silent=set(range(16)))
    with pytest.raises(SERError, match=r"cannot train a baseline: all 16 clips hold no sound .*A_neutral\.wav"):
        dataset_features(dataset, SMALL, num_workers=0, progress=False)


def test_given_features_all_alike_are_refused_before_any_fit():
    dataset = _label_dataset(_every_emotion(["A", "B", "C", "D"]))
    with pytest.raises(SERError, match=r"all 32 clips give the same features"):
        cross_validate_baseline(dataset, "logreg", n_folds=2, inner_folds=2, features=np.ones((32, 5)), **FIT)


def test_training_and_prediction_agree_on_what_holds_no_sound(tmp_path, model):
    """Training read "no sound" off the features (those of zeros, or no zero crossing) and prediction off the level
    about the mean: a class of -100 dBFS hiss was learnt without a word and refused at prediction, and a corpus of
    voices over a DC offset was refused for training while prediction took them (re-audit 31: B2)."""
    hiss = {n: np.random.default_rng(n).normal(0, 1e-5, int(0.3 * RATE) + n).astype(np.float32) for n in range(16)}
    dataset = _corpus_of(tmp_path / "hiss", lambda n, label: hiss[n] if label == "sad" else
                         voice_like(0.3, 120.0 + 15 * n, RATE, seed=n))
    with pytest.warns(UserWarning, match=r"4 of 16 clips hold no sound .*A_sad\.wav"):
        dataset_features(dataset, SMALL, num_workers=0, progress=False)
    with pytest.raises(AudioError, match=r"holds no sound"):
        model.predict(hiss[2])
    offset = {n: 0.1 + voice_like(0.3, 120.0 + 15 * n, RATE, amplitude=0.05, seed=n) for n in range(16)}
    dataset = _corpus_of(tmp_path / "offset", lambda n, label: offset[n])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one clip called soundless
        assert dataset_features(dataset, SMALL, num_workers=0, progress=False).shape[0] == 16
    assert len(model.predict(offset[0])) == 1


def test_the_sound_levels_are_cached_beside_the_features(tmp_path):
    dataset = _corpus(tmp_path, silent={1})
    with pytest.warns(UserWarning, match=r"1 of 16 clips"):
        dataset_features(dataset, SMALL, cache_dir=tmp_path / "cache", num_workers=0, progress=False)
    assert [len(list(folder.rglob("*.npy"))) for folder in sorted((tmp_path / "cache").glob("levels-*"))] == [16]


# --- 11: inner-fold advice that works ------------------------------------------------------------------------

def _advised(message: str) -> int:
    return int(re.search(r"Use 2 <= inner_folds <= (\d+)", message).group(1))


def test_inner_folds_advice_is_a_value_every_fold_can_make():
    # fold1 trains on 5 speakers, fold2 on 3: advice read off fold1 alone (5) failed again at fold2.
    dataset = _label_dataset(_every_emotion([f"s{n}" for n in range(8)]))
    speakers, features = np.asarray(dataset["speaker"]), _random_features(dataset)
    folds = [Fold(f"fold{n}", np.flatnonzero(~np.isin(speakers, test)), np.flatnonzero(np.isin(speakers, test)))
             for n, test in enumerate((["s0", "s1", "s2"], ["s3", "s4", "s5", "s6", "s7"]), start=1)]
    with pytest.raises(SplitError, match=r"inner_folds=6 cannot be made: .*fold2's training speakers .*found 3 "
                                         r"\(\['s0', 's1', 's2'\]\)") as raised:
        cross_validate_baseline(dataset, "logreg", folds=folds, inner_folds=6, features=features, **FIT)
    advised = _advised(str(raised.value))
    assert advised == 3
    assert len(cross_validate_baseline(dataset, "logreg", folds=folds, inner_folds=advised, features=features,
                                       **FIT).folds) == 2


def test_when_no_inner_folds_works_the_advice_says_so_and_what_does():
    # 2 speakers, 2 folds: each fold trains on 1 speaker. "2 <= inner_folds <= 1" is no advice.
    dataset = _label_dataset(_every_emotion(["A", "B"]))
    with pytest.raises(SplitError, match=r"No inner_folds works.*at least 3 speakers \(the corpus has 2\)") as raised:
        cross_validate_baseline(dataset, "logreg", n_folds=2, inner_folds=2, features=_random_features(dataset), **FIT)
    assert "<= 1" not in str(raised.value) and "fewer outer folds" not in str(raised.value)
    # 3 speakers in 2 folds: one fold trains on 1; the advised --folds 3 trains each on 2, and works.
    dataset = _label_dataset(_every_emotion(["A", "B", "C"]))
    features = _random_features(dataset)
    with pytest.raises(SplitError, match=r"No inner_folds works.*n_folds=3 \(--folds 3: one test speaker each\) "
                                         r"every fold trains on 2"):
        cross_validate_baseline(dataset, "logreg", n_folds=2, inner_folds=2, features=features, **FIT)
    assert len(cross_validate_baseline(dataset, "logreg", n_folds=3, inner_folds=2, features=features,
                                       **FIT).folds) == 3


def test_inner_splits_advise_only_possible_values():
    labels = np.arange(8) % 4
    with pytest.raises(SplitError, match=r"inner_folds=1 cannot be made.*found 2.*Use 2 <= inner_folds <= 2"):
        inner_speaker_splits(labels, np.asarray(["A", "B"] * 4), 1)
    with pytest.raises(SplitError, match=r"inner_folds=2 cannot be made.*found 1 \(\['A'\]\)\. No inner_folds works"):
        inner_speaker_splits(labels, np.asarray(["A"] * 8), 2)


# --- 12: target_dbfs without normalize; normalising near-silence ----------------------------------------------

def test_a_target_level_without_normalize_is_refused():
    with pytest.raises(AudioError, match=r"AudioPreprocessor\(target_dbfs=-20\) only applies with normalize='peak' "
                                         r"or 'loudness', but normalize is None"):
        AudioPreprocessor(target_dbfs=-20)
    assert AudioPreprocessor(normalize="loudness", target_dbfs=-20).target_dbfs == -20


def test_near_silence_is_not_amplified_into_noise():
    hiss = (np.random.default_rng(0).standard_normal(RATE) * 1e-6).astype(np.float32)  # about -120 dBFS
    for normalise in (normalize_peak, normalize_loudness):
        assert np.array_equal(normalise(hiss), hiss)
    quiet = voice_like(0.5, 200.0, RATE, amplitude=10 ** (-70 / 20))  # -70 dBFS peak: quiet speech is raised
    assert np.max(np.abs(normalize_peak(quiet))) == pytest.approx(10 ** (-1 / 20), rel=1e-3)


def test_a_saved_target_level_that_did_nothing_still_loads(saved, tmp_path):
    loaded = load_baseline(_edited(saved, tmp_path, "preprocessor", target_dbfs=-20.0))
    assert loaded.preprocessor == AudioPreprocessor(sampling_rate=RATE)


def test_the_preprocessor_judges_a_short_uncentred_array_at_its_own_rate():
    """AudioPreprocessor judged an array for a DC offset without its rate, so a 0.3 s ``uint8 / 255`` clip (under
    the 10107 samples that hold at any rate) passed while predict refused it (regression audit 31)."""
    t = np.arange(4800) / RATE
    uncentred = ((np.round(np.sin(2 * np.pi * 200 * t) * 127.5 + 127.5)) / 255).astype(np.float32)
    with pytest.raises(AudioError, match=r"AudioPreprocessor: the audio array has float samples that are all >= 0"):
        AudioPreprocessor()(uncentred, sampling_rate=RATE)


# --- re-audit 31: B1, B5-B7, B9, B10 ---------------------------------------------------------------------------

def test_the_part_scored_is_judged_for_sound_as_an_array_and_as_a_file(model, tmp_path):
    """With max_duration=1, 2 s of zeros then 1 s of voice is 1 s of silence once cropped: a file (cropped as it is
    decoded) was refused, the same samples as an array (cropped only when cleaned) scored (re-audit 31: B1)."""
    cropping = BaselineModel(model.pipeline, EMOTIONS, SMALL, AudioPreprocessor(max_duration=1.0))
    silence_first = np.concatenate([np.zeros(2 * RATE, np.float32), voice_like(1.0, 200.0, RATE)])
    path = tmp_path / "silence_first.wav"
    sf.write(str(path), silence_first, RATE, subtype="FLOAT")
    for item in (silence_first, path):
        with pytest.raises(AudioError, match=r"holds no sound"):
            cropping.predict(item)
    voice_first = silence_first[::-1].copy()
    sf.write(str(path), voice_first, RATE, subtype="FLOAT")
    assert len(cropping.predict([voice_first, path])) == 2


@pytest.mark.parametrize("settings", [
    dict(frame_ms=2, groups=("contrast",)), dict(frame_ms=1, groups=("contrast",)),
    dict(sampling_rate=1000, hop_ms=0.1, contrast_fmin=10, contrast_bands=3, groups=("contrast",)),
])
def test_a_contrast_band_without_an_fft_bin_is_refused_naming_the_settings(settings):
    """librosa raised a bare IndexError inside spectral_contrast at the first clip (re-audit 31: B5)."""
    with pytest.raises(SERError, match=r"spectral contrast band 0 \(0-\d+ Hz\) holds 1 FFT bin\(s\), needs 2: .*"
                                       r"n_fft=\d+ from frame_ms=.*raise frame_ms or n_fft"):
        FeatureConfig(**settings)
    assert extract_features(voice_like(0.3, 200.0, RATE), FeatureConfig(groups=("contrast",))).size == 7 * 4


def test_settings_of_a_group_not_computed_are_not_held_against_the_config():
    """An 11025 or 8000 Hz config without contrast was refused over the contrast band defaults, a 1000 Hz one without
    pitch over the f0 defaults (re-audit 31: B7)."""
    for rate in (11025, 8000):
        config = FeatureConfig(sampling_rate=rate, groups=("mfcc", "rms", "zcr"))
        assert extract_features(voice_like(0.3, 200.0, rate), config).size == len(feature_names(config))
    assert FeatureConfig(sampling_rate=1000, groups=("mfcc",)).sampling_rate == 1000
    with pytest.raises(SERError, match=r"contrast band 6 starts at 6400 Hz, at or above Nyquist"):
        FeatureConfig(sampling_rate=8000)
    with pytest.raises(SERError, match=r"f0_max=600\.0"):
        FeatureConfig(sampling_rate=1000, groups=("voice_quality",))


def test_a_pyin_range_that_would_take_a_minute_per_clip_is_refused():
    """f0 1-8000 Hz with pyin was accepted, about 19 times the default range's decoding work per clip (re-audit 31:
    B6); speech ranges stay accepted."""
    with pytest.raises(SERError, match=r"pitch_method='pyin', f0_min=1, f0_max=8000\) searches 12\.97 octaves, more "
                                       r"than the 5 allowed .*or use pitch_method='yin'"):
        FeatureConfig(f0_min=1, f0_max=8000, pitch_method="pyin", groups=("pitch",))
    for low, high in ((75, 600), (50, 600), (60, 1000), (40, 1280)):
        FeatureConfig(f0_min=low, f0_max=high, pitch_method="pyin")
    assert FeatureConfig(f0_min=1, f0_max=8000, groups=("pitch",)).f0_max == 8000  # yin's cost does not grow so


@pytest.mark.parametrize("settings, message", [
    (dict(stats=(1,)), r"FeatureConfig\(stats=\.\.\.\) got \[1\] \(invalid: \[1\]\)"),
    (dict(stats=("p10\n",)), r"FeatureConfig\(stats=\.\.\.\) got \['p10\\n'\]"),
    (dict(stats=(["mean"],)), r"FeatureConfig\(stats=\.\.\.\) got \[\['mean'\]\]"),
    (dict(groups=(1, "x")), r"FeatureConfig\(groups=\.\.\.\) got unknown or no groups \[1, 'x'\]"),
])
def test_stats_and_groups_that_are_none_are_named(settings, message):
    """A bare TypeError for stats=(1,), and 'p10\\n' accepted ($ matches before a newline) (re-audit 31: B9, B10)."""
    with pytest.raises(SERError, match=message):
        FeatureConfig(**settings)
    assert FeatureConfig(stats=("p10", "p99.5", "p100")).stats == ("p10", "p99.5", "p100")


def test_a_clip_just_short_of_100_ms_is_not_said_to_last_100_ms(model):
    """1102 samples at 11025 Hz (99.95 ms) were refused as lasting "100 ms" (re-audit 31: B10b)."""
    rate = 11025
    config = dataclasses.replace(SMALL, sampling_rate=rate)
    slow = BaselineModel(model.pipeline, EMOTIONS, config)
    with pytest.raises(AudioError, match=r"lasts 99\.95\d* ms \(1102 samples at 11025 Hz\); expected at least 100 ms "
                                         r"\(1103 samples\)"):
        slow.predict(voice_like(0.2, 200.0, rate)[:1102])
    assert len(slow.predict(voice_like(0.2, 200.0, rate)[:1103])) == 1


def test_a_list_of_numbers_is_named_as_one(model):
    """A list of Python floats was read as a batch of scalar clips, each refused for want of a sampling_rate that
    was passed (re-audit 31: B10c)."""
    samples = voice_like(0.5, 200.0, RATE).tolist()
    with pytest.raises(AudioError, match=r"got a list of 8000 numbers; a list is a batch of clips .*"
                                         r"np\.asarray\(samples, dtype=np\.float32\)"):
        model.predict(samples, sampling_rate=RATE)
    with pytest.raises(AudioError, match=r"inputs\[1\] is a list; each item of a batch must be a path or a 1-D"):
        model.predict([np.asarray(samples, np.float32), samples], sampling_rate=RATE)
    assert len(model.predict(np.asarray(samples, np.float32), sampling_rate=RATE)) == 1


def _count_decodes(monkeypatch) -> list[str]:
    """Record each file :meth:`AudioPreprocessor.load` decodes (extraction runs in this process: num_workers=0)."""
    decoded: list[str] = []
    load = AudioPreprocessor.load

    def counting(self, audio, *args, **kwargs):
        decoded.append(str(audio))
        return load(self, audio, *args, **kwargs)

    monkeypatch.setattr(AudioPreprocessor, "load", counting)
    return decoded


def test_training_decodes_each_clip_once_for_features_and_level(tmp_path, monkeypatch):
    """The level that judges sound was measured by a second extraction pass, decoding every clip twice (~19% more on
    a cold cache or without one); it is measured in the feature pass now, and cached beside the features."""
    dataset = _corpus(tmp_path / "clips", silent={1})
    paths, cache = dataset["audio"], tmp_path / "cache"
    prep = AudioPreprocessor(sampling_rate=RATE, trim_db=30, normalize="loudness", min_duration=0.5)
    expected = clip_levels(paths, RATE, preprocessor=prep, num_workers=0, progress=False)  # the level pass alone
    decoded = _count_decodes(monkeypatch)
    for cache_dir in (None, cache):  # without a cache, then into a cold one
        decoded.clear()
        with pytest.warns(UserWarning, match=r"1 of 16 clips hold no sound .*A_happy\.wav"):
            features = dataset_features(dataset, SMALL, preprocessor=prep, cache_dir=cache_dir, num_workers=0,
                                        progress=False)
        assert sorted(decoded) == sorted(paths)
    assert np.array_equal(features, np.stack([extract_features(prep(path), SMALL) for path in paths]))
    decoded.clear()
    assert np.array_equal(clip_levels(paths, RATE, preprocessor=prep, cache_dir=cache, num_workers=0,
                                      progress=False), expected)
    assert decoded == []  # the feature pass filled the level cache
    for levels in cache.glob("levels-*"):  # features cached by a version that cached no levels: only levels are read
        shutil.rmtree(levels)
    with pytest.warns(UserWarning, match=r"1 of 16 clips hold no sound"):
        dataset_features(dataset, SMALL, preprocessor=prep, cache_dir=cache, num_workers=0, progress=False)
    assert sorted(decoded) == sorted(paths)
    decoded.clear()
    with pytest.warns(UserWarning, match=r"1 of 16 clips hold no sound"):
        dataset_features(dataset, SMALL, preprocessor=prep, cache_dir=cache, num_workers=0, progress=False)
    assert decoded == []


def test_neural_training_decodes_each_clip_once(tmp_path, monkeypatch):
    dataset = _corpus(tmp_path / "clips", silent={1})
    decoded = _count_decodes(monkeypatch)
    with pytest.warns(UserWarning, match=r"1 of 16 clips hold no sound .*A_happy\.wav"):
        dataset_sequences(dataset, sequence_config("cnn"), num_workers=0, progress=False)
    assert sorted(decoded) == sorted(dataset["audio"])


@pytest.mark.parametrize(("changes", "message"), [
    (dict(trim_db=0.0), r"preprocessor\.trim_db must be a positive number"),
    (dict(target_dbfs=-300.0, normalize="peak"), r"preprocessor\.target_dbfs must be a level in dBFS in \[-100, 0\]"),
    (dict(max_duration=3000.0), r"preprocessor\.max_duration must be a duration in seconds"),
])
def test_an_edited_preprocessor_is_held_to_the_bounds_audio_preprocessor_has(saved, tmp_path, changes, message):
    """One table of bounds (AudioPreprocessor.RANGES): a baseline file read back is checked against it, naming the
    file and the setting, not against looser copies of it (trim_db up to 400, target_dbfs to -400)."""
    with pytest.raises(ModelError, match=rf"{CONFIG_NAME}.*{message}"):
        load_baseline(_edited(saved, tmp_path, "preprocessor", **changes))
