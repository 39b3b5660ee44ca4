"""Cleaning decoded audio: silence trimming, noise reduction, level normalisation and duration limits.

The building blocks are plain functions on 1-D float32 arrays; :class:`AudioPreprocessor` chains them
after decoding (:mod:`ser_hf.audio.decoding`) in a fixed order (decode -> mono -> resample -> trim -> crop
to max duration -> denoise -> normalise -> pad to min duration) and has a
:meth:`~AudioPreprocessor.fingerprint` so caches can key on the exact preprocessing. :func:`load_many`
decodes many files on a thread pool.

Example:
    >>> from ser_hf.audio import AudioPreprocessor
    >>> prep = AudioPreprocessor(sampling_rate=16000, trim_db=30, normalize="peak")
    >>> wave = prep("clip.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zlib
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ser_hf.audio.arrays import array_to_mono, check_sampling_rate
from ser_hf.audio.decoding import MAX_CLIP_DURATION, MIN_CLIP_DURATION, PathLike, load_audio, resample
from ser_hf.errors import AudioError
from ser_hf.ranges import DBFS, NOISE_SNR, POSITIVE, SPEED_FACTOR, UNIT, Range, check_ranges


def trim_silence(wave: np.ndarray, top_db: float = 30.0, frame_length: int = 1024, hop_length: int = 256,
                 min_length: int = 0) -> np.ndarray:
    """Cut leading and trailing parts quieter than ``top_db`` below the clip's peak, keeping at least
    ``min_length`` samples (the kept part widened about its middle, within the clip).

    An all-silent clip is returned unchanged rather than emptied. ``min_length`` keeps a tiny ``top_db`` (0.001 dB
    keeps one 16 ms hop of a steady clip) from cutting a clip below what an encoder takes: the loaders refuse clips
    under :data:`~ser_hf.audio.decoding.MIN_CLIP_DURATION` before trimming, so trimming must not make one.
    """
    import librosa  # imported here: numba compilation on first import costs seconds

    trimmed, (start, end) = librosa.effects.trim(wave, top_db=top_db, frame_length=frame_length,
                                                 hop_length=hop_length)
    if not trimmed.size:
        return wave
    if end - start < min_length:
        start = max(0, min((start + end - min_length) // 2, wave.size - min_length))
        end = min(wave.size, start + min_length)
        trimmed = wave[start:end]
    return trimmed


#: Level (dB full scale) below which a clip holds no sound to normalise or to recognise: one step of 16-bit PCM is
#: -90.3 dBFS, so what lies below is rounding noise, dither or a stray sample in digital silence. Raising such a clip
#: to -1 dBFS peak or -23 dBFS RMS amplified it by 100-200 dB into full-scale clicks or hiss.
SILENCE_DBFS = -90.0


def holds_no_sound(level_db: float | np.ndarray) -> bool | np.ndarray:
    """Whether a clip of this RMS level about its mean (dBFS, as
    :func:`ser_hf.inference.streaming.window_level_db` measures it) holds no sound: below :data:`SILENCE_DBFS`.

    The one criterion of the baselines' prediction (:meth:`BaselineModel.prepared_waves
    <ser_hf.baseline.classic_model.BaselineModel.prepared_waves>`) and training
    (:func:`ser_hf.baseline.crossval.check_clips_hold_sound`), both on what :meth:`AudioPreprocessor.kept` keeps.
    About the mean, so a constant (a stuck input, a DC offset) is no sound, while a voice over a DC offset is."""
    return level_db < SILENCE_DBFS


def _gain_to(wave: np.ndarray, level: float, target_dbfs: float) -> np.ndarray:
    if level < 10 ** (SILENCE_DBFS / 20):  # (near) silence: there is nothing to scale, see SILENCE_DBFS
        return wave
    return (wave * (10 ** (target_dbfs / 20) / level)).astype(np.float32)


def normalize_peak(wave: np.ndarray, target_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the largest absolute sample sits at ``target_dbfs``; a clip peaking below :data:`SILENCE_DBFS` is
    returned unscaled."""
    return _gain_to(wave, float(np.max(np.abs(wave))), target_dbfs)


def normalize_loudness(wave: np.ndarray, target_dbfs: float = -23.0) -> np.ndarray:
    """Scale so the RMS level is ``target_dbfs`` (an RMS proxy for loudness, not ITU BS.1770 LUFS).

    Samples are clipped to [-1, 1] afterwards so loud targets cannot produce invalid audio. A clip whose RMS level
    lies below :data:`SILENCE_DBFS` is returned unscaled.
    """
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return np.clip(_gain_to(wave, rms, target_dbfs), -1.0, 1.0)


def reduce_noise(
    wave: np.ndarray,
    sampling_rate: int,
    *,
    strength: float = 1.0,
    n_std: float = 1.5,
    noise_quantile: float = 0.1,
) -> np.ndarray:
    """Stationary noise reduction by spectral gating.

    The noise profile is estimated from the quietest ``noise_quantile`` of frames (so no separate noise
    recording is needed); time-frequency bins less than ``n_std`` standard deviations above the noise
    floor are attenuated by ``strength`` (1.0 removes them, 0.0 keeps the input). The soft mask is
    smoothed over neighbouring bins and frames to avoid "musical noise".
    """
    import librosa
    from scipy.ndimage import uniform_filter

    if not 0.0 <= strength <= 1.0:
        raise AudioError(f"reduce_noise: strength must be in [0, 1], got {strength}.")
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sampling_rate)))  # ~32 ms windows
    hop = n_fft // 4
    if wave.size < n_fft:
        return wave
    spec = librosa.stft(wave, n_fft=n_fft, hop_length=hop)
    db = librosa.amplitude_to_db(np.abs(spec), ref=1.0, amin=1e-10)
    frame_energy = db.mean(axis=0)
    quiet = db[:, frame_energy <= np.quantile(frame_energy, noise_quantile)]
    threshold = quiet.mean(axis=1, keepdims=True) + n_std * quiet.std(axis=1, keepdims=True)
    mask = 1.0 / (1.0 + np.exp(-(db - threshold)))  # soft gate, 0.5 at the threshold
    mask = uniform_filter(mask, size=(3, 5))
    gain = 1.0 - strength * (1.0 - mask)
    return librosa.istft(spec * gain, hop_length=hop, length=wave.size).astype(np.float32)


def limit_duration(
    wave: np.ndarray, sampling_rate: int, min_duration: float | None = None, max_duration: float | None = None
) -> np.ndarray:
    """Keep the first ``max_duration`` seconds and zero-pad (at the end) to ``min_duration`` seconds."""
    if max_duration is not None:
        wave = wave[: int(round(max_duration * sampling_rate))]
    if min_duration is not None:
        missing = int(round(min_duration * sampling_rate)) - wave.size
        if missing > 0:
            wave = np.pad(wave, (0, missing))
    return wave


#: Durations a clip may be cropped or padded to: what a decoded clip may last (a shorter crop leaves too few samples
#: for an encoder's first frame, a longer pad allocates what no clip is allowed to be).
CLIP_SECONDS = Range(MIN_CLIP_DURATION, MAX_CLIP_DURATION, noun="a duration in seconds")


@dataclass
class AudioPreprocessor:
    """A reproducible audio cleaning chain, applied to a path or an array.

    Args:
        sampling_rate: Output rate in Hz (the model's rate, 16 kHz for every supported backbone).
        trim_db: If set, trim leading/trailing audio quieter than this many dB below the peak.
        denoise: Apply stationary noise reduction (:func:`reduce_noise`) with this strength (0-1);
            ``None`` or 0 disables it.
        normalize: ``"peak"``, ``"loudness"`` (RMS) or ``None``.
        target_dbfs: Level for ``normalize`` (refused without it); defaults to -1 dBFS (peak) or -23 dBFS
            (loudness). Clips below :data:`SILENCE_DBFS` are left unscaled.
        min_duration: Zero-pad shorter clips to this many seconds.
        max_duration: Keep only the first this many seconds.

    Example:
        >>> import numpy as np
        >>> prep = AudioPreprocessor(normalize="peak")
        >>> float(np.abs(prep(np.full(16000, 0.1, dtype=np.float32), sampling_rate=16000)).max())  # doctest: +ELLIPSIS
        0.891...
    """

    sampling_rate: int = 16000
    trim_db: float | None = None
    denoise: float | None = None
    normalize: Literal["peak", "loudness"] | None = None
    target_dbfs: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None

    #: What each numeric setting accepts (see :mod:`ser_hf.ranges`; None leaves a step out), checked on creation.
    RANGES: ClassVar[dict[str, Range]] = {"trim_db": POSITIVE, "denoise": UNIT, "target_dbfs": DBFS,
                                          "min_duration": CLIP_SECONDS, "max_duration": CLIP_SECONDS}

    def __post_init__(self) -> None:
        if self.normalize not in (None, "peak", "loudness"):
            raise AudioError(
                f"AudioPreprocessor(normalize=...) must be 'peak', 'loudness' or None, got {self.normalize!r}."
            )
        self.sampling_rate = check_sampling_rate(self.sampling_rate, "AudioPreprocessor(sampling_rate=...)")
        check_ranges(self, error=AudioError)
        if self.target_dbfs is not None and self.normalize is None:  # it was accepted and did nothing
            raise AudioError(
                f"AudioPreprocessor(target_dbfs={self.target_dbfs}) only applies with normalize='peak' or 'loudness', "
                f"but normalize is None; pass normalize='peak' (or 'loudness') too, or drop target_dbfs."
            )
        if self.min_duration and self.max_duration and self.min_duration > self.max_duration:
            raise AudioError(
                f"AudioPreprocessor: min_duration ({self.min_duration}) is larger than max_duration "
                f"({self.max_duration}); swap or drop one of them."
            )

    def __call__(self, audio: PathLike | np.ndarray, sampling_rate: int | None = None, *,
                 decoded: bool = False) -> np.ndarray:
        """Preprocess a file path, or an array recorded at ``sampling_rate`` Hz.

        An array is held to a decoded file's limits and, unless ``decoded`` (samples a decoder made from a file, such
        as a ``datasets`` Audio cell's), refused when its float samples are integer PCM not scaled
        (:func:`~ser_hf.audio.array_to_mono`); then both go through :meth:`clean`.
        """
        return self.clean(self.load(audio, sampling_rate, decoded=decoded))

    def load(self, audio: PathLike | np.ndarray, sampling_rate: int | None = None, *,
             decoded: bool = False) -> np.ndarray:
        """What :meth:`__call__` cleans: the file decoded, or the array checked, both at :attr:`sampling_rate`
        (a caller that checks the audio itself, e.g. its duration, does so here, before padding can hide it)."""
        if not isinstance(audio, (str, bytes, os.PathLike)):
            # In-memory samples are held to a decoded file's limits: int16 PCM scaled as its WAV file would be,
            # a rate a file could declare (see ser_hf.audio.arrays).
            if sampling_rate is None:
                raise AudioError("AudioPreprocessor: pass sampling_rate=... (the rate the samples were recorded "
                                 "at, in Hz) together with an array.")
            rate = check_sampling_rate(sampling_rate, "AudioPreprocessor(..., sampling_rate=...)")
            wave = array_to_mono(audio, "AudioPreprocessor: the audio array", decoded=decoded, sampling_rate=rate)
            return resample(wave, rate, self.sampling_rate)
        # Without trimming, what is kept is known before decoding: the rest of the file is never decoded.
        return load_audio(audio, self.sampling_rate, max_duration=None if self.trim_db is not None else
                          self.max_duration)

    def clean(self, wave: np.ndarray) -> np.ndarray:
        """The cleaning steps alone (trim, crop, denoise, normalise, pad), on a 1-D float32 array at
        :attr:`sampling_rate` that was decoded or checked already (what :meth:`__call__` makes before cleaning, or
        what :meth:`EmotionRecognizer.load_raw <ser_hf.inference.recognizer.EmotionRecognizer.load_raw>` gives).

        Unlike :meth:`__call__` on an array, it does not check the samples again: a decoded float file may hold
        samples a caller's array may not (see :func:`~ser_hf.audio.caller_samples`).
        """
        return self.finish(self.kept(wave))

    def kept(self, wave: np.ndarray) -> np.ndarray:
        """The part of a decoded or checked clip that :meth:`clean` goes on with: trimmed and cropped, not yet
        denoised, normalised or padded (what a caller judges, e.g. for sound, before padding can hide it)."""
        if self.trim_db is not None:
            wave = trim_silence(wave, self.trim_db, min_length=int(MIN_CLIP_DURATION * self.sampling_rate))
        # Crop before the costly steps and before normalising, so the level is set on what is kept.
        return limit_duration(wave, self.sampling_rate, max_duration=self.max_duration)

    def finish(self, wave: np.ndarray) -> np.ndarray:
        """The rest of :meth:`clean` on what :meth:`kept` gives: denoise, normalise, pad."""
        if self.denoise:
            wave = reduce_noise(wave, self.sampling_rate, strength=self.denoise)
        if self.normalize == "peak":
            wave = normalize_peak(wave, -1.0 if self.target_dbfs is None else self.target_dbfs)
        elif self.normalize == "loudness":
            wave = normalize_loudness(wave, -23.0 if self.target_dbfs is None else self.target_dbfs)
        return limit_duration(wave, self.sampling_rate, min_duration=self.min_duration)

    def fingerprint(self) -> str:
        """A short stable hash of the settings, for cache keys."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def change_speed(wave: np.ndarray, factor: float, sampling_rate: int) -> np.ndarray:
    """Kaldi-style speed perturbation: play ``factor`` times faster (tempo and pitch together) by resampling."""
    if factor == 1.0:
        return wave
    return resample(wave, sampling_rate, int(round(sampling_rate / factor)))


@dataclass(frozen=True)
class SpeedChanged:
    """A preprocessor whose output plays ``factor`` times faster: the probe's speed-perturbed training copies.

    It has the preprocessor interface the pooled-state cache needs (call on a path or an array, and a
    :meth:`fingerprint` that names the factor, so copies are cached apart from the clips themselves).

    Example:
        >>> import numpy as np
        >>> SpeedChanged(AudioPreprocessor(), 1.25)(np.zeros(16000, dtype=np.float32), sampling_rate=16000).size
        12800
    """

    base: AudioPreprocessor
    factor: float

    def __post_init__(self) -> None:
        if self.factor not in SPEED_FACTOR:
            raise AudioError(f"SpeedChanged(factor=...) must be {SPEED_FACTOR}, got {self.factor}.")

    def __call__(self, audio: PathLike | np.ndarray, sampling_rate: int | None = None) -> np.ndarray:
        return self.alter(self.base(audio, sampling_rate))

    def alter(self, wave: np.ndarray) -> np.ndarray:
        """The copy of an already preprocessed wave (at the base's rate): what test-time copies apply."""
        return change_speed(wave, self.factor, self.base.sampling_rate)

    def fingerprint(self) -> str:
        """The base preprocessor's fingerprint with the factor appended."""
        return f"{self.base.fingerprint()}-speed{self.factor:g}"


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at ``snr_db`` dB below the clip's mean power (silence is left unchanged)."""
    power = float(np.mean(np.square(wave, dtype=np.float64)))
    if power <= 1e-12:
        return wave
    noise = rng.standard_normal(wave.size) * math.sqrt(power / 10 ** (snr_db / 10))
    return (wave + noise).astype(np.float32)


@dataclass(frozen=True)
class NoiseAdded:
    """A preprocessor whose output has white noise ``snr_db`` dB below the clip's power: the probe's noisy copies.

    The noise is drawn from a generator seeded by the clip's samples, so a clip always gets the same noise (its
    cached states stay valid) and different clips get different noise. Like :class:`SpeedChanged`, its
    :meth:`fingerprint` names the SNR, so the copies are cached apart from the clips themselves.

    Example:
        >>> import numpy as np
        >>> wave = np.sin(np.arange(16000, dtype=np.float32) / 10)
        >>> noisy = NoiseAdded(AudioPreprocessor(), 20)(wave, sampling_rate=16000)
        >>> round(10 * np.log10(np.mean(wave ** 2) / np.mean((noisy - wave) ** 2)))
        20
    """

    base: AudioPreprocessor
    snr_db: float

    def __post_init__(self) -> None:
        if self.snr_db not in NOISE_SNR:
            raise AudioError(f"NoiseAdded(snr_db=...) must be {NOISE_SNR}, got {self.snr_db}.")

    def __call__(self, audio: PathLike | np.ndarray, sampling_rate: int | None = None) -> np.ndarray:
        return self.alter(self.base(audio, sampling_rate))

    def alter(self, wave: np.ndarray) -> np.ndarray:
        """The copy of an already preprocessed wave (at the base's rate): what test-time copies apply."""
        return add_noise(wave, self.snr_db, np.random.default_rng(zlib.crc32(wave.tobytes())))

    def fingerprint(self) -> str:
        """The base preprocessor's fingerprint with the SNR appended."""
        return f"{self.base.fingerprint()}-noise{self.snr_db:g}"


def clip_copies(base: AudioPreprocessor, speed_factors=(), noise_snrs=()) -> list[tuple[SpeedChanged | NoiseAdded, str]]:
    """``(preprocessor, name)`` of every altered copy of a clip, made from ``base`` (the run's own preprocessing):
    played faster by each of ``speed_factors`` (Kaldi-style speed perturbation), then with white noise at each of
    ``noise_snrs`` dB. The probe trains on these copies (``probe_speed_copies``, ``probe_noise_copies``), and
    test-time copies average a model's scores over the same ones (``EmotionRecognizer(test_time_copies=...)``)."""
    return ([(SpeedChanged(base, float(factor)), f"{float(factor):g}x speed") for factor in speed_factors]
            + [(NoiseAdded(base, float(snr)), f"{float(snr):g} dB noise") for snr in noise_snrs])


def load_many(
    paths: list[PathLike], sampling_rate: int = 16000, num_workers: int | None = None
) -> list[np.ndarray]:
    """:func:`load_audio` over many files on a thread pool (one thread per core by default).

    Threads suffice: libsndfile (through cffi) and soxr release the GIL while they decode and
    resample. Results keep the order of ``paths``; the first unreadable file raises its AudioError.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = num_workers or os.cpu_count() or 1
    if workers == 1:
        return [load_audio(path, sampling_rate) for path in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: load_audio(path, sampling_rate), paths))
