"""The voicing screen speaker adaptation learns through (ser_hf.audio.voicing): loud sounds with no voice (a hum, a
buzz switched on and off, noise of any colour, clicks, DC steps) are voiceless; real speech and the test corpora's
voice-like tones are voiced."""

from __future__ import annotations

import numpy as np
import pytest

from ser_hf.audio import holds_voice, load_audio, measure_voicing
from ser_hf.testing.corpora import write_tone

RATE = 16000
T = np.arange(3 * RATE) / RATE
ON_OFF = (np.sin(2 * np.pi * 3 * T) > 0).astype(float)  # switched on and off three times a second
_NOISE = np.random.default_rng(0).standard_normal(T.size)
_BROWN = np.cumsum(_NOISE) / np.sqrt(T.size)

NO_VOICE = {
    "mains hum with harmonics": sum(0.03 / k * np.sin(2 * np.pi * 50 * k * T) for k in (1, 2, 3)),
    "hum switched on and off": ON_OFF * sum(0.03 / k * np.sin(2 * np.pi * 50 * k * T) for k in (1, 2, 3)),
    "100 Hz buzz": 0.05 * np.sign(np.sin(2 * np.pi * 100 * T)),
    "buzz switched on and off": ON_OFF * 0.05 * np.sign(np.sin(2 * np.pi * 100 * T)),
    "sawtooth switched on and off": ON_OFF * 0.1 * ((T * 120) % 1 - 0.5),
    "1 kHz beeps": ON_OFF * 0.05 * np.sin(2 * np.pi * 1000 * T),
    "white noise": 0.05 * _NOISE,
    "clipped noise": np.clip(0.5 * _NOISE, -0.3, 0.3),
    "noise bursts": ON_OFF * 0.05 * _NOISE,
    "brown noise": 0.3 * _BROWN / np.abs(_BROWN).max(),
    "brown noise bursts": ON_OFF * 0.3 * _BROWN / np.abs(_BROWN).max(),
    "clicks": np.where(np.arange(T.size) % 4000 == 0, 0.9, 0.0),
    "a click train at 100 Hz": np.where(np.arange(T.size) % 160 == 0, 0.9, 0.0),
    "DC steps": 0.2 * (np.floor(T * 5) % 2),
    "a constant": np.full(T.size, 0.3),
    "digital silence": np.zeros(T.size),
}


@pytest.mark.parametrize("name", sorted(NO_VOICE))
def test_loud_sounds_with_no_voice_are_voiceless(name):
    assert not holds_voice(NO_VOICE[name].astype(np.float32), RATE), measure_voicing(NO_VOICE[name], RATE)


def test_the_test_corpora_tones_are_voiced_like_speech(tmp_path):
    """The stand-in clips of every test corpus pass the screen, down to 0.2 s, at each pitch the corpora use."""
    for duration in (0.2, 0.4, 1.0):
        for seed in range(40):
            path = write_tone(tmp_path / "tone.wav", duration=duration, frequency=120.0 + 7.0 * seed, seed=seed)
            assert holds_voice(load_audio(path), RATE), (duration, seed, measure_voicing(load_audio(path), RATE))


def test_real_speech_is_voiced_at_any_gain_and_rate(urdu_dir, ravdess_dir):
    """A sample of the real corpora (every clip and 3 s window of both: benchmarks/voicing_screen.py); the screen
    takes the voice whatever the gain or the rate."""
    clips = sorted(urdu_dir.rglob("*.flac"))[::50] + sorted(ravdess_dir.rglob("*.flac"))[::180]
    assert len(clips) >= 16
    for clip in clips:
        wave = load_audio(clip, RATE)
        for gain in (0.05, 1.0):
            assert holds_voice(wave * gain, RATE), (clip, measure_voicing(wave * gain, RATE))
        assert holds_voice(load_audio(clip, 8000), 8000), clip


@pytest.mark.parametrize("wave", [np.zeros(0), np.zeros(1), np.ones(5), np.zeros(100)])
def test_clips_too_short_to_hold_a_pitch_are_voiceless_not_errors(wave):
    assert measure_voicing(wave, RATE).voiced is False


def test_a_clip_at_a_high_rate_is_measured_as_at_16_khz_and_a_long_one_in_bounded_memory(ravdess_dir):
    """Nothing above 4 kHz is looked at, so 48 kHz is analysed at 16 kHz (the same measures); frames are analysed in
    blocks, so the longest clip a recognizer takes (300 s) costs tens of MB, not the 600 MB of every frame at once."""
    import tracemalloc

    clip = sorted(ravdess_dir.rglob("*.flac"))[3]
    high, low = measure_voicing(load_audio(clip, 48000), 48000), measure_voicing(load_audio(clip, 16000), 16000)
    assert high.voiced and high.periodic_frames == low.periodic_frames
    assert high.level_spread_db == pytest.approx(low.level_spread_db, abs=0.5)
    long = np.resize(load_audio(clip, 16000), 300 * RATE)
    tracemalloc.start()
    try:
        assert holds_voice(long, RATE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"
