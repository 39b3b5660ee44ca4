"""The signal processing behind ``ser-hf evaluate --perturb``: white and babble-like noise mixed at an SNR, a
telephone channel, gain, a synthetic room's reverberation and a round trip through a lower sampling rate.

Plain functions of numpy arrays; those that draw noise or a room response take the generator to draw from, so the
caller decides the seeding (:func:`ser_hf.evaluation.perturbations.perturbation_rng`).
The spec that names them, their parameters' ranges and the conditions built from it are
:mod:`ser_hf.evaluation.perturbations`.

SNR is the ratio of the clip's mean power to the added noise's mean power over the whole clip, pauses
included, so within speech it is a little higher. A silent clip is left unchanged by ``noise`` and
``babble`` (its SNR is undefined).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ser_hf.audio import resample

#: Bumped whenever a degradation's algorithm changes, so predictions cached for the old one are not reused.
ALGORITHM_VERSION = 1

TELEPHONE_RATE = 8000


def mix_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave`` plus ``noise`` scaled so that mean(wave²) / mean(scaled noise²) is ``snr_db`` dB.

    A silent wave (or silent noise) is returned unchanged: there is no level to set the noise against.
    """
    signal_power = float(np.mean(np.square(wave, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    if signal_power == 0.0 or noise_power == 0.0:
        return wave.astype(np.float32, copy=True)
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (wave + scale * noise).astype(np.float32)


def _white(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, snr: float) -> np.ndarray:
    return mix_at_snr(wave, rng.standard_normal(wave.size), snr)


def _speech_spectrum(frequencies: np.ndarray) -> np.ndarray:
    """Amplitude of a long-term average speech spectrum: flat 100-500 Hz, -6 dB/octave above, -12 below."""
    f = np.maximum(frequencies, 1e-3)
    power = np.where(f > 500.0, (500.0 / f) ** 2, 1.0) * np.where(f < 100.0, (f / 100.0) ** 4, 1.0)
    return np.sqrt(power)


def speech_shaped_noise(size: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with the spectrum of :func:`_speech_spectrum` (stationary, unit variance)."""
    spectrum = np.fft.rfft(rng.standard_normal(size)) * _speech_spectrum(np.fft.rfftfreq(size, 1.0 / sampling_rate))
    noise = np.fft.irfft(spectrum, n=size)
    return noise / max(float(np.std(noise)), 1e-12)


def _syllabic_envelope(size: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A log-normal amplitude envelope that changes at about the syllable rate (a 250 ms Hann smoother)."""
    control = 100  # envelope values per second, interpolated to the audio rate
    frames = int(size * control / sampling_rate) + 2
    smoothed = np.convolve(rng.standard_normal(frames + 24), np.hanning(25), mode="valid")
    smoothed = (smoothed - smoothed.mean()) / max(float(smoothed.std()), 1e-12)
    return np.interp(np.arange(size) * control / sampling_rate, np.arange(frames), np.exp(smoothed[:frames]))


def babble_noise(size: int, sampling_rate: int, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Babble-like noise: ``talkers`` virtual talkers of speech-shaped, syllabically modulated noise, summed.

    Each talker is Gaussian noise shaped to a long-term average speech spectrum (flat 100-500 Hz, falling
    6 dB per octave above 500 Hz and 12 dB per octave below 100 Hz) and multiplied by its own log-normal
    envelope smoothed over 250 ms, so its level rises and falls at the syllable rate as a voice does. It
    has babble's spectrum and modulation but no words. Real clips of the evaluation set are deliberately
    not used: a clip's degradation would then depend on which other clips are evaluated, and could mix
    in the same speakers' emotional speech.
    """
    total = np.zeros(size)
    for _ in range(talkers):
        voice = speech_shaped_noise(size, sampling_rate, rng) * _syllabic_envelope(size, sampling_rate, rng)
        total += voice / max(float(np.sqrt(np.mean(voice**2))), 1e-12)
    return total


def _babble(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, snr: float, talkers: float) -> np.ndarray:
    return mix_at_snr(wave, babble_noise(wave.size, sampling_rate, rng, int(talkers)), snr)


def _fit_length(wave: np.ndarray, size: int) -> np.ndarray:
    """Cut or zero-pad to ``size`` samples (a round trip through another rate can gain or lose one)."""
    return wave[:size] if wave.size >= size else np.pad(wave, (0, size - wave.size))


@functools.lru_cache(maxsize=8)
def _telephone_taps(low: float, high: float) -> np.ndarray:
    from scipy import signal  # imported on use: scipy.signal takes a second to import

    # Linear phase, 65 dB stop band, 50 Hz transitions centred 25 Hz outside the pass band.
    numtaps, beta = signal.kaiserord(65.0, 50.0 / (TELEPHONE_RATE / 2))
    numtaps += 1 - numtaps % 2  # a band-pass FIR needs an odd length
    return signal.firwin(numtaps, [low - 25.0, high + 25.0], pass_zero=False, fs=TELEPHONE_RATE,
                         window=("kaiser", beta))


def telephone_band(wave: np.ndarray, sampling_rate: int, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """A telephone channel: resample to 8 kHz, keep ``low``-``high`` Hz, resample back to ``sampling_rate``.

    The band-pass is a linear-phase Kaiser FIR (65 dB stop band; transitions of 50 Hz, from ``low`` - 50 to
    ``low`` and from ``high`` to ``high`` + 50 Hz), applied without delay. No codec is simulated.
    """
    from scipy import signal

    narrow = resample(wave.astype(np.float32), sampling_rate, TELEPHONE_RATE)
    narrow = signal.fftconvolve(narrow, _telephone_taps(float(low), float(high)), mode="same").astype(np.float32)
    return _fit_length(resample(narrow, TELEPHONE_RATE, sampling_rate), wave.size).astype(np.float32)


def _telephone(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return telephone_band(wave, sampling_rate, low, high)


def _gain(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, db: float) -> np.ndarray:
    return (wave * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def room_response(sampling_rate: int, rt60: float, drr: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then Gaussian noise whose level falls by 60 dB
    in ``rt60`` seconds, scaled so that direct / tail energy is ``drr`` dB; ``rt60`` seconds long."""
    length = max(2, int(round(rt60 * sampling_rate)))
    time = np.arange(1, length) / sampling_rate
    tail = rng.standard_normal(length - 1) * 10.0 ** (-3.0 * time / rt60)
    tail *= math.sqrt(10.0 ** (-drr / 10.0) / float(np.sum(tail**2)))
    return np.concatenate([[1.0], tail])


def add_reverb(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, rt60: float,
               drr: float = 0.0) -> np.ndarray:
    """Convolve with :func:`room_response`, keep the clip's length and its RMS level (gain is its own condition)."""
    from scipy import signal

    wet = signal.fftconvolve(wave.astype(np.float64), room_response(sampling_rate, rt60, drr, rng))[: wave.size]
    before, after = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))), float(np.sqrt(np.mean(wet**2)))
    return (wet * (before / after) if after > 0 else wet).astype(np.float32)


def _resample(wave: np.ndarray, sampling_rate: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    low = resample(wave.astype(np.float32), sampling_rate, int(rate))
    return _fit_length(resample(low, int(rate), sampling_rate), wave.size).astype(np.float32)
