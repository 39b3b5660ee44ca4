import numpy as np
import pytest
import soundfile as sf

from ser_hf.audio import (
    AudioPreprocessor,
    audio_info,
    is_audio_path,
    limit_duration,
    load_audio,
    normalize_loudness,
    normalize_peak,
    reduce_noise,
    trim_silence,
)
from ser_hf.errors import AudioError
from ser_hf.testing.corpora import write_tone

SR = 16000


def test_load_resamples_and_downmixes(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    sf.write(tmp_path / "s.flac", stereo, 44100)
    wave = load_audio(tmp_path / "s.flac", SR)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - SR) <= 1
    assert np.max(np.abs(wave)) == pytest.approx(0.25, rel=0.05)  # the silent channel halves the mean


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_formats_libsndfile_reads(tmp_path, ext):
    path = write_tone(tmp_path / f"a{ext}", duration=0.5)
    assert is_audio_path(path)
    assert load_audio(path, SR).size == pytest.approx(8000, abs=1200)  # lossy codecs add padding


def test_is_audio_path():
    assert is_audio_path("x.WAV") and is_audio_path("a/b.flac")
    assert not is_audio_path("notes.txt") and not is_audio_path("x.raw")


def test_bad_files_are_named(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioError, match=r"empty.wav.*empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match=r"junk.wav.*libsndfile"):
        audio_info(tmp_path / "junk.wav")
    with pytest.raises(AudioError, match=r"dir.wav.*is a directory"):
        load_audio(tmp_path / "dir.wav")
    with pytest.raises(AudioError, match=r"missing.wav.*does not exist"):
        load_audio(tmp_path / "missing.wav")


def test_header_only_wav_and_nan_samples(tmp_path):
    sf.write(tmp_path / "h.wav", np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match=r"h.wav.*(no samples|0 samples)"):
        audio_info(tmp_path / "h.wav")
    sf.write(tmp_path / "n.wav", np.array([0.0, np.nan, 0.1] * 100, dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"n.wav.*NaN"):
        load_audio(tmp_path / "n.wav")


def test_trim_removes_leading_and_trailing_silence():
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR).astype(np.float32)
    wave = np.concatenate([np.zeros(SR), tone, np.zeros(SR)]).astype(np.float32)
    trimmed = trim_silence(wave, top_db=30)
    assert SR <= trimmed.size < 1.1 * SR
    assert trim_silence(np.zeros(SR, dtype=np.float32)).size == SR  # silence is kept, not emptied


def test_trimming_never_makes_a_clip_shorter_than_an_encoder_takes():
    """A tiny top_db keeps the loudest hop or two of a clip whose level moves: the kept part is widened to 100 ms about
    its middle (the loaders refuse shorter clips before trimming, the encoders' first convolution needs them)."""
    swell = np.sin(np.pi * np.arange(SR) / SR)  # loudest in the middle
    wave = (0.3 * swell * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)).astype(np.float32)
    assert trim_silence(wave, top_db=0.001).size < SR // 10
    kept = trim_silence(wave, top_db=0.001, min_length=SR // 10)
    assert kept.size == SR // 10 and np.shares_memory(kept, wave)
    assert AudioPreprocessor(sampling_rate=SR, trim_db=0.001)(wave, SR).size >= SR // 10
    assert trim_silence(wave[:800], top_db=0.001, min_length=SR // 10).size == 800  # never longer than the clip


def test_normalisation_levels():
    wave = 0.1 * np.sin(2 * np.pi * 100 * np.arange(SR) / SR).astype(np.float32)
    assert 20 * np.log10(np.max(np.abs(normalize_peak(wave, -3.0)))) == pytest.approx(-3.0, abs=1e-3)
    rms = np.sqrt(np.mean(normalize_loudness(wave, -20.0) ** 2))
    assert 20 * np.log10(rms) == pytest.approx(-20.0, abs=1e-3)
    silence = np.zeros(100, dtype=np.float32)
    assert not normalize_peak(silence).any() and not normalize_loudness(silence).any()


def test_noise_reduction_lowers_noise_and_keeps_the_tone():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    tone = np.where(t > 1.0, 0.5 * np.sin(2 * np.pi * 300 * t), 0.0)  # first second: noise only
    noisy = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    clean = reduce_noise(noisy, SR)
    noise_before, noise_after = np.std(noisy[: SR // 2]), np.std(clean[: SR // 2])
    assert noise_after < 0.3 * noise_before
    assert np.std(clean[SR + 2000 :]) == pytest.approx(np.std(tone[SR + 2000 :]), rel=0.15)
    with pytest.raises(AudioError, match="strength"):
        reduce_noise(noisy, SR, strength=2.0)


def test_duration_limits():
    wave = np.ones(SR, dtype=np.float32)
    assert limit_duration(wave, SR, max_duration=0.5).size == SR // 2
    assert limit_duration(wave, SR, min_duration=2.0).size == 2 * SR


def test_preprocessor_chain_and_fingerprint(tmp_path):
    path = write_tone(tmp_path / "a.wav", duration=1.0, sampling_rate=22050)
    prep = AudioPreprocessor(trim_db=40, denoise=0.5, normalize="peak", max_duration=0.5)
    wave = prep(path)
    assert wave.size == SR // 2 and np.max(np.abs(wave)) == pytest.approx(10 ** (-1 / 20), rel=1e-3)
    array_wave = prep(sf.read(path, dtype="float32")[0], sampling_rate=22050)
    np.testing.assert_allclose(array_wave, wave, atol=1e-6)
    assert prep.fingerprint() == AudioPreprocessor(trim_db=40, denoise=0.5, normalize="peak",
                                                   max_duration=0.5).fingerprint()
    assert prep.fingerprint() != AudioPreprocessor().fingerprint()


def test_preprocessor_rejects_bad_settings():
    with pytest.raises(AudioError, match="normalize"):
        AudioPreprocessor(normalize="rms")
    with pytest.raises(AudioError, match="min_duration"):
        AudioPreprocessor(min_duration=5, max_duration=1)
    with pytest.raises(AudioError, match="sampling_rate"):
        AudioPreprocessor()(np.zeros(10, dtype=np.float32))
    for setting, value in (("trim_db", -10), ("denoise", 1.5), ("target_dbfs", 3.0), ("target_dbfs", -1000),
                           ("min_duration", 0), ("min_duration", 1e12), ("max_duration", 1e-6),
                           ("max_duration", float("nan")), ("trim_db", "30")):
        with pytest.raises(AudioError, match=rf"AudioPreprocessor\.{setting} must be .*got"):
            AudioPreprocessor(**{setting: value})
    for rate in (0, -16000, 16000.5, "16000", True):
        with pytest.raises(AudioError, match=r"AudioPreprocessor\(sampling_rate=\.\.\.\) must be a whole number"):
            AudioPreprocessor(sampling_rate=rate)
    assert AudioPreprocessor(sampling_rate=16000.0).sampling_rate == 16000


def test_preprocessor_holds_arrays_to_a_decoded_files_limits(tmp_path):
    """An array goes through the checks a decoded file does: int16 PCM scaled as its WAV file, channels, rate."""
    prep = AudioPreprocessor(sampling_rate=SR)
    path = write_tone(tmp_path / "a.wav", duration=0.5, sampling_rate=SR)
    pcm = sf.read(path, dtype="int16")[0]
    np.testing.assert_allclose(prep(pcm, sampling_rate=SR), prep(path), atol=1e-6)  # not 32767 times louder
    stereo = np.stack([pcm, pcm])  # (channels, frames), as librosa gives it
    np.testing.assert_allclose(prep(stereo, sampling_rate=SR), prep(path), atol=1e-6)
    floats = (pcm / 32768).tolist()  # a list is an array (of Python ints it would be int64, refused: no such PCM)
    np.testing.assert_allclose(prep(floats, sampling_rate=SR), prep(path), atol=1e-6)
    for bad, message in ((np.zeros(SR, dtype=np.uint8), "dtype uint8"), (np.zeros(0, np.float32), "shape"),
                         (np.full(SR, np.nan, np.float32), "NaN"), (np.zeros((3, 3, SR), np.float32), "shape"),
                         (np.ma.masked_array(np.zeros(SR)), "masked")):
        with pytest.raises(AudioError, match=rf"AudioPreprocessor: the audio array .*{message}"):
            prep(bad, sampling_rate=SR)
    for rate in (0, -1, 16000.5, "16000", None):
        with pytest.raises(AudioError, match="sampling_rate"):
            prep(pcm, sampling_rate=rate)


# ----------------------------------------------------------------- decompression bombs (issue 18)


def _write_blocks(path, rate: int, channels: int, seconds: int, format: str = "FLAC") -> None:
    """Silence written a second at a time: a few KB of FLAC holding many MB of samples."""
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format=format) as sound:
        for _ in range(seconds):
            sound.write(np.zeros((rate, channels), np.float32))


def test_a_small_file_of_many_channels_at_a_high_rate_decodes_in_blocks(tmp_path):
    import tracemalloc

    from ser_hf.audio import DECODE_BLOCK_BYTES

    path = tmp_path / "bomb.flac"
    _write_blocks(path, 96000, 8, 6)  # ~20 KB on disk, 18.4 MB as float32 frames x channels
    full = 6 * 96000 * 8 * 4
    tracemalloc.start()
    try:
        wave = load_audio(path, SR)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert wave.shape == (6 * SR,) and path.stat().st_size < full / 50
    # The mono 16 kHz output (384 KB) and about a block; decoding it whole held every channel (18.4 MB).
    assert peak < 2 * DECODE_BLOCK_BYTES + 4 * wave.nbytes < full / 3, peak


def test_block_decoding_equals_decoding_whole_and_cuts_exactly(tmp_path):
    from ser_hf.audio import decode, resample, to_mono

    rng = np.random.default_rng(0)
    for rate, channels, name in ((44100, 2, "a.wav"), (192000, 6, "b.flac"), (22050, 1, "c.ogg")):
        sf.write(tmp_path / name, (0.1 * rng.standard_normal((int(rate * 2.3), channels))).astype(np.float32), rate)
        whole = resample(to_mono(decode(tmp_path / name)[0]), rate, SR)
        np.testing.assert_array_equal(load_audio(tmp_path / name, SR), whole)
        for seconds in (0.5, 1.25, 9.0):
            np.testing.assert_array_equal(load_audio(tmp_path / name, SR, max_duration=seconds),
                                          whole[: int(round(seconds * SR))])


def test_a_header_with_too_many_channels_is_refused_before_decoding(tmp_path):
    sf.write(tmp_path / "many.wav", np.zeros((160, 65), np.float32), SR)
    for read in (load_audio, audio_info):
        with pytest.raises(AudioError, match=r"many.wav.*declares 65 channels; expected 1 to 64"):
            read(tmp_path / "many.wav")


def test_speed_changed_copies_play_faster_and_refuse_impossible_factors(tmp_path):
    from ser_hf.audio import AudioPreprocessor, SpeedChanged

    path = write_tone(tmp_path / "tone.wav", duration=1.0)
    base = AudioPreprocessor()
    faster = SpeedChanged(base, 1.25)
    assert abs(faster(path).size - base(path).size / 1.25) <= 2
    assert faster.fingerprint() == f"{base.fingerprint()}-speed1.25" != SpeedChanged(base, 0.8).fingerprint()
    for factor in (0.0, 3.0, float("nan")):
        with pytest.raises(AudioError, match=r"SpeedChanged\(factor=\.\.\.\) must be a speed factor in \[0\.5, 2\], "
                                             rf"got {factor}"):
            SpeedChanged(base, factor)


def test_noise_added_copies_have_their_snr_the_same_noise_each_time_and_refuse_impossible_snrs(tmp_path):
    from ser_hf.audio import AudioPreprocessor, NoiseAdded

    path = write_tone(tmp_path / "tone.wav", duration=1.0)
    base = AudioPreprocessor()
    clean, noisy = base(path), NoiseAdded(base, 20)(path)
    assert noisy.dtype == np.float32 and noisy.size == clean.size
    assert 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2)) \
        == pytest.approx(20, abs=0.3)
    np.testing.assert_array_equal(noisy, NoiseAdded(base, 20)(path))  # cached states stay valid
    other = write_tone(tmp_path / "other.wav", duration=1.0, frequency=330.0)
    assert not np.allclose(NoiseAdded(base, 20)(other) - base(other), noisy - clean)  # noise differs between clips
    assert NoiseAdded(base, 20).fingerprint() == f"{base.fingerprint()}-noise20" != NoiseAdded(base, 10).fingerprint()
    silence = np.zeros(16000, dtype=np.float32)
    np.testing.assert_array_equal(NoiseAdded(base, 20)(silence, sampling_rate=16000), silence)
    for snr in (-1.0, 61.0, float("nan")):
        with pytest.raises(AudioError, match=r"NoiseAdded\(snr_db=\.\.\.\) must be a signal-to-noise ratio in dB "
                                             rf"in \[0, 60\], got {snr}"):
            NoiseAdded(base, snr)

