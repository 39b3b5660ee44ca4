"""The settings of the classic feature extractor (:mod:`ser_hf.baseline.features`), checked on creation.

Every setting lives in :class:`FeatureConfig`, whose :meth:`~FeatureConfig.fingerprint` (the settings and
:data:`FEATURES_VERSION`) keys feature caches. Each number is held to :data:`FEATURE_RANGES`, and the
settings together to :data:`MAX_ANALYSIS_PER_SECOND` and, with ``pitch_method="pyin"``, :data:`MAX_PYIN_OCTAVES`, so a
config is refused when it is made, never at the first clip of a corpus. The sizes the extractor works in (window, hop,
FFT and pitch frame in samples, and :meth:`FeatureConfig.min_samples`, the length it zero-pads clips to) are derived
here.

Example:
    >>> from ser_hf.baseline.feature_config import FeatureConfig
    >>> config = FeatureConfig(n_mfcc=13, stats=("mean", "std"))
    >>> config.hop_length, config.fft_size, config.min_samples()
    (160, 512, 1280)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ser_hf.audio import MAX_SAMPLING_RATE, MIN_SAMPLING_RATE
from ser_hf.errors import SERError
from ser_hf.ranges import Range, check_ranges

# Bump when the computation (ser_hf.baseline.features) changes in a way that changes vectors, so old caches are
# not reused.
FEATURES_VERSION = 1

FEATURE_GROUPS = ("mfcc", "chroma", "mel", "contrast", "tonnetz", "zcr", "rms", "spectral", "pitch", "voice_quality")
_PLAIN_STATS = ("mean", "std", "min", "max", "median", "skew", "kurtosis")
_PERCENTILE = re.compile(r"p(\d{1,2}(\.\d+)?|100)")  # matched whole (fullmatch): "p10\n" is no statistic


def _next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


#: What each numeric setting accepts: checked by :class:`FeatureConfig` on creation, and so on every
#: ``baseline_config.json`` read back (:data:`ser_hf.baseline.saved_files.SETTING_LIMITS` is built from it). The
#: bounds are far beyond any speech analysis; they keep one setting from asking for terabytes (``n_fft=2**24``) or
#: from failing later inside librosa (``n_fft=401.5``, ``frame_ms=0.001``: no sample in a window).
FEATURE_RANGES: dict[str, Range] = {
    "sampling_rate": Range(MIN_SAMPLING_RATE, MAX_SAMPLING_RATE, integer=True), "frame_ms": Range(1, 1000),
    "hop_ms": Range(0.1, 1000), "n_fft": Range(16, 65536, integer=True), "n_mfcc": Range(1, 256, integer=True),
    "mfcc_delta_order": Range(0, 2, integer=True), "delta_width": Range(3, 99, integer=True),
    "n_mels": Range(1, 512, integer=True), "contrast_bands": Range(1, 16, integer=True),
    "contrast_fmin": Range(1, MAX_SAMPLING_RATE / 2), "f0_min": Range(1, MAX_SAMPLING_RATE / 2),
    "f0_max": Range(1, MAX_SAMPLING_RATE / 2), "pitch_frame_ms": Range(1, 1000), "voicing_threshold": Range(0, 1),
    "voicing_db": Range(0, 400),
}

#: Largest analysis, in values per second of audio (frames per second x FFT bins), of the spectral and of the pitch
#: analysis. The defaults need 25,700 (100 frames/s x 257 bins) for each; librosa holds several float64/complex
#: arrays of that size per clip, so memory grows with this number times the clip's duration. The cap is 64 times the
#: defaults: it admits every sampling rate up to 384 kHz with the default millisecond settings (819,300 at 384 kHz),
#: a 1 ms hop at 48 kHz (1,025,000) and a 1 Hz f0_min at 16 kHz (1,638,500), and keeps one second of audio under
#: ~13 MB per array; the settings each in range but together absurd (a 0.1 ms hop with a 1 s window at 16 kHz: 66
#: million values per second, 1.6 GB per complex64 array of a 3 s clip) are refused.
MAX_ANALYSIS_PER_SECOND = 64 * 25_700

#: Widest pitch range (f0_max / f0_min, in octaves) searched with ``pitch_method="pyin"``. librosa's pYIN tracks
#: 120 pitch states per octave (0.1 semitone) and its Viterbi decoding costs the square of their number per frame:
#: against the default 75-600 Hz (3 octaves), 1-8000 Hz (13 octaves) is (13 / 3) ** 2, about 19 times the decoding
#: work. Five octaves admit every speech range (50-600, 60-1000, 40-1280 Hz) at (5 / 3) ** 2, under 3 times it.
MAX_PYIN_OCTAVES = 5.0


@functools.lru_cache(maxsize=64)
def _window_problem(window: str) -> str | None:
    """Why ``scipy.signal.get_window`` refuses ``window`` (None if it takes it): asked once per name."""
    from scipy.signal import get_window

    try:
        get_window(window, 16)
    except (ValueError, TypeError) as err:
        return str(err)
    return None


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the classic feature extractor.

    Args:
        sampling_rate: Rate (Hz) the waveforms are at; files are resampled to it on load.
        frame_ms: Analysis window length in milliseconds (25 ms is the speech standard).
        hop_ms: Hop between frames in milliseconds.
        n_fft: FFT size in samples; ``None`` means the next power of two at or above the window.
        window: Window function name understood by ``scipy.signal.get_window``.
        n_mfcc: Number of MFCCs (``mfcc_00`` is the log-energy-like c0).
        mfcc_delta_order: 0 (static MFCCs only), 1 (+ deltas) or 2 (+ deltas and delta-deltas).
        delta_width: Frames in the delta regression window (odd, >= 3).
        n_mels: Number of mel bands of the log-mel spectrogram (the MFCCs are computed from it).
        contrast_bands: Octave bands of spectral contrast (gives ``contrast_bands + 1`` tracks).
        contrast_fmin: Lower edge (Hz) of the first contrast band.
        f0_min: Lowest F0 (Hz) searched; 75 Hz is Praat's default pitch floor.
        f0_max: Highest F0 (Hz) searched.
        pitch_method: ``"yin"`` (fast, ~7 ms per 3 s clip) or ``"pyin"`` (probabilistic YIN with
            Viterbi voicing, ~100x slower).
        pitch_frame_ms: Pitch analysis frame in milliseconds; ``None`` picks the smallest power of two
            holding two periods of ``f0_min`` (32 ms at 16 kHz and 75 Hz).
        voicing_threshold: With ``"yin"``, a frame is voiced when the normalised autocorrelation at
            the detected period reaches this value (0-1). 0.6 agreed best with pYIN's voicing on 40 real
            URDU/RAVDESS clips (80% of frames; 0.5 gave 79%, 0.8 gave 78%).
        voicing_db: With ``"yin"``, frames more than this many dB below the clip's loudest frame (or
            below -80 dBFS) are never voiced.
        groups: Feature groups to include, any of :data:`FEATURE_GROUPS`; stored in canonical order.
        stats: Statistics over frames: ``mean``, ``std``, ``min``, ``max``, ``median``, ``skew``,
            ``kurtosis`` (excess) and percentiles written ``p10``, ``p90``, ...

    Raises:
        SERError: (a ``ValueError``) naming the setting, for a number outside :data:`FEATURE_RANGES` (NaN, a string or
            a fraction where an integer belongs included), a window scipy does not know, settings that contradict
            each other (``n_fft`` shorter than the window, ``f0_min >= f0_max``), settings whose analysis exceeds
            :data:`MAX_ANALYSIS_PER_SECOND` (e.g. ``hop_ms=0.1`` with ``frame_ms=1000``), a spectral-contrast band
            above Nyquist or holding no FFT bin, or a pyin range wider than :data:`MAX_PYIN_OCTAVES`. The f0 and pitch
            frame settings are checked only when ``pitch`` or ``voice_quality`` is in ``groups``, the contrast
            settings only when ``contrast`` is (an 8 kHz config without contrast is not refused over its bands).

    Example:
        >>> FeatureConfig(n_mfcc=13, stats=("mean", "std")).hop_length
        160
    """

    sampling_rate: int = 16000
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int | None = None
    window: str = "hann"
    n_mfcc: int = 20
    mfcc_delta_order: int = 2
    delta_width: int = 9
    n_mels: int = 40
    contrast_bands: int = 6
    contrast_fmin: float = 200.0
    f0_min: float = 75.0
    f0_max: float = 600.0
    pitch_method: Literal["yin", "pyin"] = "yin"
    pitch_frame_ms: float | None = None
    voicing_threshold: float = 0.6
    voicing_db: float = 40.0
    groups: tuple[str, ...] = FEATURE_GROUPS
    stats: tuple[str, ...] = ("mean", "std", "min", "max")

    RANGES: ClassVar[dict[str, Range]] = FEATURE_RANGES

    def __post_init__(self) -> None:
        # Lists are accepted for convenience; tuples keep the dataclass hashable and frozen.
        groups = tuple(self.groups) if not isinstance(self.groups, str) else (self.groups,)
        unknown = [group for group in groups if not isinstance(group, str) or group not in FEATURE_GROUPS]
        if unknown or not groups:
            raise SERError(
                f"FeatureConfig(groups=...) got unknown or no groups {unknown or list(groups)}; "
                f"expected a non-empty subset of {list(FEATURE_GROUPS)}."
            )
        object.__setattr__(self, "groups", tuple(g for g in FEATURE_GROUPS if g in groups))
        stats = tuple(self.stats) if not isinstance(self.stats, str) else (self.stats,)
        bad = [s for s in stats if not isinstance(s, str) or (s not in _PLAIN_STATS and not _PERCENTILE.fullmatch(s))]
        if bad or not stats or len(set(stats)) != len(stats):
            raise SERError(
                f"FeatureConfig(stats=...) got {list(stats)} (invalid: {bad}); expected distinct entries "
                f"from {list(_PLAIN_STATS)} or percentiles like 'p10', 'p90'."
            )
        object.__setattr__(self, "stats", stats)
        self._check_ranges()
        self._check_window()
        self._check_numbers()
        if self.computes_pitch:
            self._check_pitch()
        if "contrast" in self.groups:
            self._check_contrast()
        self._check_analysis_size()

    def _check_ranges(self) -> None:
        """Each number within :data:`FEATURE_RANGES`, before anything is computed from them (NaN, a string or a fraction
        for an integer otherwise failed inside librosa, at the first clip of a corpus)."""
        for name, allowed in self.RANGES.items():
            value = getattr(self, name)
            if isinstance(value, np.generic):  # np.int64(16000) is a fine rate; JSON and Range want Python numbers
                object.__setattr__(self, name, value.item())
            elif isinstance(value, (list, tuple)):  # check_ranges takes lists item by item; one number is wanted
                raise SERError(f"FeatureConfig.{name} must be {allowed}, got the {type(value).__name__} {value!r}. "
                               f"{self._range_fix(name)}")
        try:
            check_ranges(self)
        except SERError as err:
            raise SERError(f"{err} {self._range_fix(err.field)}") from None

    def _range_fix(self, name: str) -> str:
        default = next(f.default for f in dataclasses.fields(self) if f.name == name)
        return f"Pass a value in that range (default: {default!r})."

    def _check_window(self) -> None:
        problem = _window_problem(self.window) if isinstance(self.window, str) else "not a string"
        if problem:
            raise SERError(
                f"FeatureConfig.window must be a window name scipy.signal.get_window accepts without parameters "
                f"(e.g. 'hann', 'hamming', 'blackman'), got {self.window!r} ({problem})."
            )

    def analysis_sizes(self) -> dict[str, float]:
        """Values per second of audio (frames per second x FFT bins) of the spectral analysis and, when the pitch or
        voice-quality groups are computed, of the pitch analysis; see :data:`MAX_ANALYSIS_PER_SECOND`."""
        frames = self.sampling_rate / self.hop_length
        sizes = {"spectral": frames * (self.fft_size // 2 + 1)}
        if self.computes_pitch:
            sizes["pitch"] = frames * (self.pitch_frame_length // 2 + 1)
        return sizes

    def _check_analysis_size(self) -> None:
        fixes = {"spectral": ("sampling_rate, frame_ms, hop_ms, n_fft", "raise hop_ms or lower frame_ms/n_fft"),
                 "pitch": ("sampling_rate, hop_ms, pitch_frame_ms, f0_min",
                           "raise hop_ms or f0_min, or lower pitch_frame_ms")}
        for analysis, size in self.analysis_sizes().items():
            if size > MAX_ANALYSIS_PER_SECOND:
                fields, fix = fixes[analysis]
                raise SERError(
                    f"FeatureConfig: the {analysis} analysis of these settings ({fields}: "
                    f"{', '.join(f'{n}={getattr(self, n)!r}' for n in fields.split(', '))}) holds {size:,.0f} values "
                    f"per second of audio (frames per second x FFT bins), more than the {MAX_ANALYSIS_PER_SECOND:,} "
                    f"allowed (64 x the defaults'), which would need gigabytes per clip; {fix}."
                )

    def _check_numbers(self) -> None:
        if self.n_fft is not None and self.n_fft < self.win_length:
            raise SERError(
                f"FeatureConfig(n_fft={self.n_fft}) is shorter than the {self.frame_ms} ms window "
                f"({self.win_length} samples); raise n_fft or leave it None."
            )
        if self.mfcc_delta_order not in (0, 1, 2) or self.delta_width < 3 or self.delta_width % 2 == 0:
            raise SERError(
                f"FeatureConfig: mfcc_delta_order must be 0, 1 or 2 (got {self.mfcc_delta_order}) and "
                f"delta_width an odd number >= 3 (got {self.delta_width})."
            )
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise SERError(
                f"FeatureConfig: n_mfcc ({self.n_mfcc}) must be between 1 and n_mels ({self.n_mels}), since the "
                f"MFCCs are the first cepstral coefficients of the log-mel bands; lower n_mfcc or raise n_mels."
            )
        if self.pitch_method not in ("yin", "pyin"):
            raise SERError(f"FeatureConfig(pitch_method=...) must be 'yin' or 'pyin', got {self.pitch_method!r}.")

    @property
    def computes_pitch(self) -> bool:
        """Whether a group that needs the pitch track (``pitch``, ``voice_quality``) is computed: the f0 and pitch
        frame settings are checked, and used, only then."""
        return "pitch" in self.groups or "voice_quality" in self.groups

    def _check_pitch(self) -> None:
        nyquist = self.sampling_rate / 2
        if not 0 < self.f0_min < self.f0_max <= nyquist:
            raise SERError(
                f"FeatureConfig: need 0 < f0_min < f0_max <= {nyquist} Hz (Nyquist), "
                f"got f0_min={self.f0_min}, f0_max={self.f0_max}."
            )
        if self.pitch_frame_length < 2 * math.ceil(self.sampling_rate / self.f0_min) + 1:
            raise SERError(
                f"FeatureConfig(pitch_frame_ms={self.pitch_frame_ms}) is too short for two periods of "
                f"f0_min={self.f0_min} Hz; use at least {2000 / self.f0_min + 0.2:.1f} ms or leave it None."
            )
        octaves = math.log2(self.f0_max / self.f0_min)
        if self.pitch_method == "pyin" and octaves > MAX_PYIN_OCTAVES:
            raise SERError(
                f"FeatureConfig(pitch_method='pyin', f0_min={self.f0_min}, f0_max={self.f0_max}) searches "
                f"{octaves:.2f} octaves, more than the {MAX_PYIN_OCTAVES:g} allowed with pyin (its decoding costs the "
                f"square of its 120 pitch states per octave: {(octaves / 3) ** 2:.0f} times the default 3 octaves' "
                f"work); narrow the range "
                f"(f0_max <= {2 ** MAX_PYIN_OCTAVES:g} x f0_min, e.g. 50-600 Hz) or use pitch_method='yin'."
            )

    def _check_contrast(self) -> None:
        """Every spectral-contrast band must lie below Nyquist and hold FFT bins: librosa raises a bare IndexError on
        a band without one, and gives NaN for a first band holding only the 0 Hz bin (it drops each band's top bin)."""
        nyquist = self.sampling_rate / 2
        if self.contrast_fmin * 2 ** (self.contrast_bands - 1) >= nyquist:
            raise SERError(
                f"FeatureConfig: contrast band {self.contrast_bands} starts at "
                f"{self.contrast_fmin * 2 ** (self.contrast_bands - 1):.0f} Hz, at or above Nyquist ({nyquist} Hz); "
                f"lower contrast_bands or contrast_fmin."
            )
        bins = np.fft.rfftfreq(self.fft_size, 1 / self.sampling_rate)  # the frequencies librosa's bands select
        edges = np.concatenate([[0.0], self.contrast_fmin * 2.0 ** np.arange(self.contrast_bands + 1)])
        for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
            held, needed = int(np.count_nonzero((bins >= low) & (bins <= high))), 2 if band == 0 else 1
            if held < needed:
                raise SERError(
                    f"FeatureConfig: spectral contrast band {band} ({low:g}-{high:g} Hz) holds {held} FFT bin(s), "
                    f"needs {needed}: bins lie {self.sampling_rate / self.fft_size:g} Hz apart (sampling_rate="
                    f"{self.sampling_rate}, n_fft={self.fft_size} from frame_ms={self.frame_ms}, contrast_fmin="
                    f"{self.contrast_fmin}, contrast_bands={self.contrast_bands}); raise frame_ms or n_fft, or "
                    f"contrast_fmin, or leave 'contrast' out of groups."
                )

    @property
    def win_length(self) -> int:
        """Analysis window in samples."""
        return max(2, int(round(self.frame_ms * self.sampling_rate / 1000)))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return max(1, int(round(self.hop_ms * self.sampling_rate / 1000)))

    @property
    def fft_size(self) -> int:
        """FFT size in samples (``n_fft`` or the next power of two above the window)."""
        return self.n_fft if self.n_fft is not None else _next_pow2(self.win_length)

    @property
    def pitch_frame_length(self) -> int:
        """Pitch analysis frame in samples."""
        if self.pitch_frame_ms is not None:
            return int(round(self.pitch_frame_ms * self.sampling_rate / 1000))
        return _next_pow2(2 * math.ceil(self.sampling_rate / self.f0_min) + 1)

    def min_samples(self) -> int:
        """Length below which clips are zero-padded: one window, one pitch frame, one delta window."""
        needed = [self.fft_size, (self.delta_width - 1) * self.hop_length]
        if self.computes_pitch:
            needed.append(self.pitch_frame_length)
        return max(needed)

    def fingerprint(self) -> str:
        """A short stable hash of the settings and :data:`FEATURES_VERSION`, for cache keys."""
        blob = json.dumps({"features_version": FEATURES_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
