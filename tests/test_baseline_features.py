from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import soundfile as sf

from ser_hf.audio import AudioPreprocessor, load_audio
from ser_hf.baseline import (
    FEATURE_GROUPS,
    FeatureConfig,
    extract_dataset_features,
    extract_features,
    feature_names,
    frame_stats,
)
from ser_hf.errors import AudioError

SR = 16000


def harmonic_tone(f0: float, duration: float = 0.5, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """A voice-like tone: five harmonics with falling amplitude; ``jitter`` randomises each period."""
    n = int(duration * SR)
    if jitter:
        periods = 1 / f0 * (1 + jitter * np.random.default_rng(seed).standard_normal(int(duration * f0) + 2))
        cycle_starts = np.concatenate([[0.0], np.cumsum(periods)])
        phase = 2 * np.pi * np.interp(np.arange(n) / SR, cycle_starts, np.arange(cycle_starts.size))
    else:
        phase = 2 * np.pi * f0 * np.arange(n) / SR
    return sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)


def as_dict(vector: np.ndarray, config: FeatureConfig) -> dict[str, float]:
    return dict(zip(feature_names(config), vector.tolist()))


def user_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        FeatureConfig(n_mfcc=13, mfcc_delta_order=0, n_mels=32, stats=("median", "p10", "p90", "skew", "kurtosis")),
        FeatureConfig(groups=("pitch", "voice_quality", "zcr"), stats=("mean",), frame_ms=40, hop_ms=20),
        FeatureConfig(groups=["pitch"], pitch_method="pyin"),
    ],
    ids=["default", "stats", "subset", "pyin"],
)
def test_names_match_vector(config):
    vector = extract_features(harmonic_tone(150, duration=0.3), config)
    names = feature_names(config)
    assert vector.dtype == np.float32 and vector.shape == (len(names),)
    assert len(set(names)) == len(names)
    assert np.isfinite(vector).all()


def test_default_names_and_dimension():
    names = feature_names(FeatureConfig())
    assert len(names) == 532  # 133 frame tracks x 4 statistics + voiced_fraction + 3 perturbation measures
    for name in ["mfcc_03_mean", "delta_mfcc_03_std", "delta2_mfcc_19_max", "chroma_11_min", "logmel_39_mean",
                 "contrast_06_std", "tonnetz_05_mean", "zcr_mean", "rms_db_max", "spectral_flatness_mean",
                 "f0_mean", "f0_std", "voiced_fraction", "jitter_rel", "shimmer_rel", "shimmer_db"]:  # fmt: skip
        assert name in names
    assert names[:2] == ["mfcc_00_mean", "mfcc_00_std"]


def test_deterministic():
    wave = harmonic_tone(180, jitter=0.01) + 0.01 * np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    assert np.array_equal(extract_features(wave), extract_features(wave.copy()))


@pytest.mark.parametrize("f0", [120.0, 240.0])
def test_f0_of_harmonic_tone(f0):
    config = FeatureConfig()
    values = as_dict(extract_features(harmonic_tone(f0), config), config)
    assert values["f0_mean"] == pytest.approx(f0, rel=0.05)
    assert values["voiced_fraction"] > 0.9


def test_pyin_f0_of_harmonic_tone():
    config = FeatureConfig(groups=("pitch",), pitch_method="pyin")
    values = as_dict(extract_features(harmonic_tone(200, duration=0.3), config), config)
    assert values["f0_mean"] == pytest.approx(200, rel=0.05)


def test_jitter_grows_with_period_perturbation():
    config = FeatureConfig(groups=("voice_quality",))
    steady = as_dict(extract_features(harmonic_tone(150, duration=1.0), config), config)
    rough = as_dict(extract_features(harmonic_tone(150, duration=1.0, jitter=0.05), config), config)
    assert rough["jitter_rel"] > 3 * steady["jitter_rel"]


@pytest.mark.parametrize(
    "wave",
    [
        np.zeros(SR, dtype=np.float32),
        harmonic_tone(200)[:160],  # 10 ms
        np.zeros(160, dtype=np.float32),
        np.full(1, 0.5, dtype=np.float32),
    ],
    ids=["silence-1s", "tone-10ms", "silence-10ms", "one-sample"],
)
def test_short_and_silent_clips_are_defined_and_quiet(wave):
    config = FeatureConfig(stats=("mean", "std", "min", "max", "skew", "kurtosis", "p50"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        vector = extract_features(wave, config)
    assert user_warnings(record) == []  # librosa's "n_fft=... is too large for input signal" is a UserWarning
    assert np.isfinite(vector).all()
    values = as_dict(vector, config)
    if not wave.any():
        assert values["voiced_fraction"] == 0.0
        assert values["f0_mean"] == values["f0_std"] == values["jitter_rel"] == values["shimmer_db"] == 0.0


def test_half_voiced_clip():
    config = FeatureConfig(groups=("pitch",))
    wave = np.concatenate([harmonic_tone(150), np.zeros(SR // 2, dtype=np.float32)])
    assert as_dict(extract_features(wave, config), config)["voiced_fraction"] == pytest.approx(0.5, abs=0.06)


def test_frame_stats():
    tracks = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 9.0]])
    stats = frame_stats(tracks, ["mean", "std", "min", "max", "median", "p25", "skew", "kurtosis"])
    assert stats[0].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert stats[1, :6].tolist() == [3.0, pytest.approx(np.std([0, 1, 2, 9])), 0.0, 9.0, 1.5, 0.75]
    assert stats[1, 6] > 0  # right-skewed
    assert frame_stats(np.zeros((2, 0)), ["mean", "p90"]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_fingerprint_is_stable_and_sensitive():
    assert FeatureConfig().fingerprint() == FeatureConfig().fingerprint()
    assert FeatureConfig(groups=["rms", "mfcc"]).fingerprint() == FeatureConfig(groups=("mfcc", "rms")).fingerprint()
    assert FeatureConfig(hop_ms=20).fingerprint() != FeatureConfig().fingerprint()
    assert len({FeatureConfig(pitch_method=m).fingerprint() for m in ("yin", "pyin")}) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groups=("mfcc", "prosody")), r"unknown or no groups \['prosody'\]"),
        (dict(stats=("mean", "average")), r"invalid: \['average'\]"),
        (dict(pitch_method="crepe"), "must be 'yin' or 'pyin'"),
        (dict(f0_min=75, pitch_frame_ms=10), "too short for two periods of f0_min=75"),
        (dict(contrast_bands=7), "at or above Nyquist"),
        (dict(n_fft=256), "n_fft=256.* shorter than the 25.0 ms window"),
        (dict(delta_width=4), "delta_width an odd number"),
        (dict(n_mfcc=30, n_mels=24), r"n_mfcc \(30\) must be between 1 and n_mels \(24\)"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**kwargs)


def test_wave_errors():
    with pytest.raises(AudioError, match="1-D waveform, got shape"):
        extract_features(np.zeros((100, 2), dtype=np.float32))
    with pytest.raises(AudioError, match="at 44100 Hz but FeatureConfig.sampling_rate is 16000"):
        extract_features(np.zeros(100, dtype=np.float32), sampling_rate=44100)
    with pytest.raises(AudioError, match="NaN/Inf"):
        extract_features(np.array([0.0, np.nan], dtype=np.float32))


@pytest.fixture()
def corpus(tmp_path):
    """Three tones, a 10 ms clip and a corrupt file, written with soundfile."""
    paths = []
    for i, f0 in enumerate([120, 180, 240]):
        paths.append(tmp_path / f"tone_{i}.flac")
        sf.write(paths[-1], harmonic_tone(f0, duration=0.4), SR)
    paths.append(tmp_path / "short.wav")
    sf.write(paths[-1], harmonic_tone(200)[:160], SR)
    paths.insert(2, tmp_path / "corrupt.wav")
    paths[2].write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return paths


def cache_files(cache_dir):
    return {path: path.stat().st_mtime_ns for path in sorted(cache_dir.rglob("*.npy"))}


def test_dataset_cache_hit_on_second_call(corpus, tmp_path):
    good = [p for p in corpus if p.name != "corrupt.wav"]
    cache_dir = tmp_path / "cache"
    first = extract_dataset_features(good, cache_dir=cache_dir, num_workers=1, progress=False)
    written = cache_files(cache_dir)
    assert first.cache_hits == 0 and len(written) == len(good)
    second = extract_dataset_features(good, cache_dir=cache_dir, num_workers=1, progress=False)
    assert second.cache_hits == len(good)
    assert cache_files(cache_dir) == written  # nothing recomputed or rewritten
    assert np.array_equal(first.features, second.features)
    assert not list(cache_dir.rglob("*.tmp"))
    for path in written:
        assert np.load(path, allow_pickle=False).shape == (len(first.names),)
    # Keyed by content: a renamed copy of a file is a hit.
    copy = tmp_path / "renamed.flac"
    copy.write_bytes(good[0].read_bytes())
    assert extract_dataset_features([copy], cache_dir=cache_dir, num_workers=1, progress=False).cache_hits == 1
    # Another config is a different cache entry; another preprocessor too.
    other = extract_dataset_features(good, FeatureConfig(n_mfcc=13), cache_dir=cache_dir, num_workers=1, progress=False)
    assert other.cache_hits == 0
    peak = AudioPreprocessor(normalize="peak")
    assert (
        extract_dataset_features(good, preprocessor=peak, cache_dir=cache_dir, num_workers=1, progress=False).cache_hits
        == 0
    )


def test_dataset_damaged_cache_entry_is_recomputed(corpus, tmp_path):
    """A truncated or empty entry, or a link in an entry's place (never followed, never written through: the
    user's file it points at stays as it was), is computed again."""
    good = corpus[:2]
    first = extract_dataset_features(good, cache_dir=tmp_path / "c", num_workers=1, progress=False)
    damaged = sorted((tmp_path / "c").rglob("*.npy"))[0]
    victim = tmp_path / "notes.npy"
    np.save(victim, first.features[1])  # a valid vector: read through the link, it would pass for the clip's
    before = victim.read_bytes()
    for damage in (lambda: damaged.write_bytes(damaged.read_bytes()[:20]), lambda: damaged.write_bytes(b""),
                   lambda: (damaged.unlink(), damaged.symlink_to(victim))):
        damage()
        again = extract_dataset_features(good, cache_dir=tmp_path / "c", num_workers=1, progress=False)
        assert again.cache_hits == 1 and np.array_equal(first.features, again.features)
        assert not damaged.is_symlink() and victim.read_bytes() == before


@pytest.mark.parametrize("num_workers", [1, 2])
def test_dataset_not_strict_reports_bad_file_and_keeps_the_rest(corpus, num_workers):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        matrix = extract_dataset_features(corpus, strict=False, num_workers=num_workers, progress=False)
    assert user_warnings(record) == []
    assert matrix.paths == [str(p) for p in corpus if p.name != "corrupt.wav"]  # input order kept
    assert matrix.features.shape == (4, len(matrix.names)) and np.isfinite(matrix.features).all()
    [(path, reason)] = matrix.failures
    assert path.endswith("corrupt.wav") and "corrupt.wav" in reason
    f0 = matrix.features[:, matrix.names.index("f0_mean")]
    assert f0[:3] == pytest.approx([120, 180, 240], rel=0.05)
    # Workers give the numbers extract_features gives here (up to BLAS summation order).
    np.testing.assert_allclose(matrix.features[0], extract_features(load_audio(corpus[0])), rtol=1e-5, atol=1e-5)


def test_dataset_strict_raises_naming_the_file(corpus):
    with pytest.raises(AudioError, match=re.escape(str(corpus[2])) + ".*pass strict=False"):
        extract_dataset_features(corpus, num_workers=1, progress=False)


def test_dataset_argument_errors(corpus):
    with pytest.raises(ValueError, match="preprocessor.sampling_rate is 8000 Hz but FeatureConfig.sampling_rate"):
        extract_dataset_features(corpus, preprocessor=AudioPreprocessor(sampling_rate=8000))
    with pytest.raises(ValueError, match="expects a list of audio files, got the single path"):
        extract_dataset_features(corpus[0])
    with pytest.raises(ValueError, match=r"num_workers=-1\): use None"):
        extract_dataset_features(corpus, num_workers=-1)
    blocker = corpus[0].parent / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create the cache folder.*cache_dir=None"):
        extract_dataset_features(corpus, cache_dir=blocker / "cache")


def test_groups_constant_is_complete():
    assert set(FeatureConfig().groups) == set(FEATURE_GROUPS)


def test_baseline_seed_and_workers_are_checked_before_the_corpus_loads(tmp_path, capsys):
    from ser_hf.cli import main

    for flag, value, expected in (("--seed", "-1", "--seed must be a seed (an integer) in [0, 4294967295], got -1"),
                                  ("--seed", str(2**64), "--seed must be a seed"),
                                  ("--workers", "-2", "--workers must be a non-negative integer"),
                                  ("--inner-folds", "0", "--inner-folds must be an integer (>= 2), got 0"),
                                  ("--jobs", "0", "--jobs must be a positive integer or -1")):
        argv = ["baseline", "--corpus", "urdu", "--data-dir", str(tmp_path / "nowhere"), flag, value,
                "--out", str(tmp_path / "out")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
    for classifier in ("cnn", "lstm"):  # flags of the scikit-learn search were accepted and ignored
        argv = ["baseline", "--corpus", "urdu", "--data-dir", str(tmp_path / "nowhere"), "--classifier", classifier,
                "--inner-folds", "3", "--jobs", "2", "--out", str(tmp_path / "out")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--inner-folds and --jobs apply to the scikit-learn classifiers' hyperparameter search, not to " \
               f"--classifier {classifier}" in err, err
    assert not (tmp_path / "out").exists()


def test_baseline_cache_dir_that_is_a_file_is_named_before_the_corpus_loads(tmp_path, capsys):
    from ser_hf.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for cache in (notes, notes / "cache"):
        argv = ["baseline", "--corpus", "urdu", "--data-dir", str(tmp_path / "nowhere"), "--cache-dir", str(cache),
                "--out", str(tmp_path / "out")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--cache-dir" in err and "notes.txt is not a folder" in err and "Traceback" not in err, err
    assert notes.read_text() == "mine" and not (tmp_path / "out").exists()
