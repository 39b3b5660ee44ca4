"""Classic acoustic features for the non-neural baseline: one fixed-length vector per clip.

Frame-level tracks (MFCC with deltas, chroma, log-mel, spectral contrast, tonnetz, zero-crossing rate,
RMS level, spectral shape) are summarised by statistics over frames (mean, std, min, max, and
optionally median, percentiles, skew, kurtosis). Pitch adds F0 statistics over voiced frames and the
voiced fraction; voice quality adds jitter- and shimmer-like perturbation measures.

Every setting lives in :class:`FeatureConfig` (:mod:`ser_hf.baseline.feature_config`), whose
:meth:`~FeatureConfig.fingerprint` keys caches; a change here that changes vectors bumps its
:data:`~ser_hf.baseline.feature_config.FEATURES_VERSION`, so old caches are not reused.
:func:`feature_names` returns one name per vector entry (``mfcc_03_mean``, ``delta_mfcc_03_std``,
``f0_mean``, ``voiced_fraction``, ...), in the order :func:`extract_features` fills the vector.

Robustness: clips shorter than :meth:`FeatureConfig.min_samples` (one analysis window, one pitch
frame, and enough frames for the delta filter: 80 ms with the defaults) are zero-padded at the end
before analysis, so very short clips never trigger librosa's "n_fft is too large" warnings; the
padding counts as silent frames in the statistics. Silent or unvoiced clips get defined values
(F0 statistics and perturbations are 0 and ``voiced_fraction`` is 0), never NaN.

Example:
    >>> import numpy as np
    >>> from ser_hf.baseline import FeatureConfig, extract_features, feature_names
    >>> config = FeatureConfig()
    >>> t = np.arange(16000) / 16000
    >>> vector = extract_features((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), config)
    >>> vector.shape == (len(feature_names(config)),)
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ser_hf.baseline.feature_config import FEATURE_GROUPS, FEATURE_RANGES, FEATURES_VERSION, FeatureConfig
from ser_hf.errors import AudioError

# The settings (FeatureConfig and its constants) live in feature_config; exported here too, the path callers have
# imported them by.
__all__ = ["FEATURES_VERSION", "FEATURE_GROUPS", "FEATURE_RANGES", "FeatureConfig", "extract_features", "feature_names",
           "frame_stats", "spectral_frames", "track_names"]

_SPECTRAL_SHAPE = ("spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness")
_VOICE_QUALITY = ("jitter_rel", "shimmer_rel", "shimmer_db")
# RMS floor (dBFS) for digital silence, and below which a frame is never called voiced.
_RMS_FLOOR_DB = -100.0
_ABSOLUTE_SILENCE_DB = -80.0


def _indexed(prefix: str, count: int) -> list[str]:
    width = max(2, len(str(count - 1)))
    return [f"{prefix}_{i:0{width}d}" for i in range(count)]


def _track_names(group: str, config: FeatureConfig) -> list[str]:
    """Names of the frame-level tracks a group summarises with ``config.stats``."""
    if group == "mfcc":
        prefixes = ["mfcc", "delta_mfcc", "delta2_mfcc"][: config.mfcc_delta_order + 1]
        return [name for prefix in prefixes for name in _indexed(prefix, config.n_mfcc)]
    return {
        "chroma": lambda: _indexed("chroma", 12),
        "mel": lambda: _indexed("logmel", config.n_mels),
        "contrast": lambda: _indexed("contrast", config.contrast_bands + 1),
        "tonnetz": lambda: _indexed("tonnetz", 6),
        "zcr": lambda: ["zcr"],
        "rms": lambda: ["rms_db"],
        "spectral": lambda: list(_SPECTRAL_SHAPE),
        "pitch": lambda: ["f0"],
        "voice_quality": lambda: [],
    }[group]()


def _scalar_names(group: str) -> list[str]:
    """Names of a group's per-clip scalars, which follow its track statistics."""
    return {"pitch": ["voiced_fraction"], "voice_quality": list(_VOICE_QUALITY)}.get(group, [])


def feature_names(config: FeatureConfig | None = None) -> list[str]:
    """Names of the entries of :func:`extract_features`'s vector, in order.

    Args:
        config: The extractor settings; ``None`` means ``FeatureConfig()``.

    Returns:
        ``<track>_<stat>`` for every frame-level track and statistic (``mfcc_03_mean``,
        ``delta_mfcc_03_std``, ``f0_p90``), then per-clip scalars (``voiced_fraction``, ``jitter_rel``).

    Example:
        >>> feature_names(FeatureConfig(groups=("pitch",), stats=("mean",)))
        ['f0_mean', 'voiced_fraction']
    """
    config = config or FeatureConfig()
    names: list[str] = []
    for group in config.groups:
        names += [f"{track}_{stat}" for track in _track_names(group, config) for stat in config.stats]
        names += _scalar_names(group)
    return names


def frame_stats(tracks: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """Statistics of each row of a ``(n_tracks, n_frames)`` array, as ``(n_tracks, len(stats))``.

    Constant rows get skew and kurtosis 0 (not NaN); an empty frame axis gives all zeros.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.shape[1] == 0:
        return np.zeros((tracks.shape[0], len(stats)))
    mean = tracks.mean(axis=1)
    centred = tracks - mean[:, None]
    m2 = np.mean(centred**2, axis=1)
    # Rounding leaves a tiny m2 on constant rows; treat those as having no shape to describe.
    flat = m2 <= 1e-12 * np.maximum(1.0, mean**2)
    safe_m2 = np.where(flat, 1.0, m2)
    columns = []
    for stat in stats:
        if stat == "mean":
            columns.append(mean)
        elif stat == "std":
            columns.append(np.sqrt(m2))
        elif stat in ("min", "max"):
            columns.append(tracks.min(axis=1) if stat == "min" else tracks.max(axis=1))
        elif stat == "skew":
            columns.append(np.where(flat, 0.0, np.mean(centred**3, axis=1) / safe_m2**1.5))
        elif stat == "kurtosis":
            columns.append(np.where(flat, 0.0, np.mean(centred**4, axis=1) / safe_m2**2 - 3.0))
        else:
            columns.append(np.percentile(tracks, 50.0 if stat == "median" else float(stat[1:]), axis=1))
    return np.stack(columns, axis=1)


def _check_wave(wave: np.ndarray, config: FeatureConfig, sampling_rate: int | None) -> np.ndarray:
    if sampling_rate is not None and sampling_rate != config.sampling_rate:
        raise AudioError(
            f"extract_features: the wave is at {sampling_rate} Hz but FeatureConfig.sampling_rate is "
            f"{config.sampling_rate} Hz; resample it first (ser_hf.audio.resample) or change the config."
        )
    wave = np.asarray(wave)
    if wave.ndim != 1 or wave.size == 0:
        raise AudioError(
            f"extract_features: expected a non-empty 1-D waveform, got shape {wave.shape}; "
            f"downmix with ser_hf.audio.to_mono first."
        )
    if not np.issubdtype(wave.dtype, np.floating) or not np.isfinite(wave).all():
        raise AudioError(
            f"extract_features: expected finite float samples in [-1, 1], got dtype {wave.dtype} "
            f"with NaN/Inf or integer samples; decode with ser_hf.audio.load_audio."
        )
    wave = wave.astype(np.float32, copy=False)
    missing = config.min_samples() - wave.size
    return np.pad(wave, (0, missing)) if missing > 0 else wave


def _spectral_tracks(wave: np.ndarray, config: FeatureConfig) -> dict[str, np.ndarray]:
    """Frame-level tracks of the spectrogram-based groups, each ``(n_tracks, n_frames)``."""
    import librosa  # imported lazily: the numba-compiled parts cost seconds on first import

    sr, n_fft, groups = config.sampling_rate, config.fft_size, config.groups
    magnitude = np.abs(
        librosa.stft(
            wave, n_fft=n_fft, hop_length=config.hop_length, win_length=config.win_length, window=config.window
        )
    )
    power = magnitude**2
    tracks: dict[str, np.ndarray] = {}
    if "mfcc" in groups or "mel" in groups:
        log_mel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=config.n_mels))
        tracks["mel"] = log_mel
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
        deltas = [
            librosa.feature.delta(mfcc, width=config.delta_width, order=order)
            for order in range(1, config.mfcc_delta_order + 1)
        ]
        tracks["mfcc"] = np.concatenate([mfcc, *deltas], axis=0)
    if "chroma" in groups or "tonnetz" in groups:
        # tuning=0: estimating an A440 offset on speech is meaningless and costs 4x the chroma itself.
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0)
        tracks["chroma"] = chroma
        # Tonnetz from the STFT chroma rather than librosa's default CQT chroma: ~50x cheaper.
        tracks["tonnetz"] = librosa.feature.tonnetz(chroma=chroma, sr=sr)
    if "contrast" in groups:
        tracks["contrast"] = librosa.feature.spectral_contrast(
            S=magnitude, sr=sr, n_fft=n_fft, n_bands=config.contrast_bands, fmin=config.contrast_fmin
        )
    if "spectral" in groups:
        tracks["spectral"] = np.concatenate(
            [
                librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=n_fft),
                librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft),
                librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=n_fft, roll_percent=0.85),
                librosa.feature.spectral_flatness(S=magnitude),
            ]
        )
    return tracks


def _rms(wave: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Unwindowed RMS amplitude per analysis window, on the same centred frame grid as the STFT."""
    import librosa

    return librosa.feature.rms(y=wave, frame_length=config.win_length, hop_length=config.hop_length)[0]


def _to_db(amplitude: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(amplitude, 10 ** (_RMS_FLOOR_DB / 20)))


def _periodicity(wave: np.ndarray, f0: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Normalised autocorrelation of each pitch frame at its detected period (1 = perfectly periodic)."""
    import librosa

    length, sr = config.pitch_frame_length, config.sampling_rate
    padded = np.pad(wave, (length // 2, length // 2))  # the same centring librosa.yin uses
    frames = librosa.util.frame(padded, frame_length=length, hop_length=config.hop_length).T[: f0.size]
    max_lag = min(math.ceil(sr / config.f0_min), length - 2)
    width = length - max_lag
    lags = np.clip(np.round(sr / np.maximum(f0, 1e-3)).astype(int), 1, max_lag)[: frames.shape[0]]
    head = frames[:, :width].astype(np.float64)
    shifted = np.take_along_axis(frames, lags[:, None] + np.arange(width)[None, :], axis=1).astype(np.float64)
    denominator = np.sqrt(np.sum(head**2, axis=1) * np.sum(shifted**2, axis=1))
    numerator = np.sum(head * shifted, axis=1)
    return np.where(denominator > 1e-12, numerator / np.maximum(denominator, 1e-12), 0.0)


def _pitch(wave: np.ndarray, rms_db: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """F0 track (Hz) and voiced mask, aligned with the RMS frames."""
    import librosa

    kwargs = dict(
        fmin=config.f0_min,
        fmax=config.f0_max,
        sr=config.sampling_rate,
        frame_length=config.pitch_frame_length,
        hop_length=config.hop_length,
    )
    if config.pitch_method == "pyin":
        f0, voiced, _ = librosa.pyin(wave, fill_na=None, **kwargs)
    else:
        f0 = librosa.yin(wave, **kwargs)
        # YIN always returns a period; voicing needs both periodicity and enough energy.
        n = min(f0.size, rms_db.size)
        f0, loud = f0[:n], rms_db[:n]
        loud = (loud >= loud.max() - config.voicing_db) & (loud > _ABSOLUTE_SILENCE_DB)
        voiced = loud & (_periodicity(wave, f0, config) >= config.voicing_threshold)
    n = min(f0.size, rms_db.size)
    return np.asarray(f0[:n], dtype=np.float64), np.asarray(voiced[:n], dtype=bool)


def _relative_perturbation(values: np.ndarray, voiced: np.ndarray) -> float:
    """Mean absolute difference of consecutive voiced frames, relative to the voiced mean (0 if undefined)."""
    pairs = voiced[1:] & voiced[:-1]
    mean = float(values[voiced].mean()) if voiced.any() else 0.0
    if not pairs.any() or mean <= 0:
        return 0.0
    return float(np.mean(np.abs(np.diff(values)[pairs])) / mean)


def _voice_quality(f0: np.ndarray, voiced: np.ndarray, rms: np.ndarray) -> list[float]:
    """Frame-level jitter and shimmer approximations.

    Praat measures jitter and shimmer cycle by cycle; here the "periods" are 1/F0 of consecutive voiced
    analysis frames (one per hop) and the "amplitudes" their RMS, so the values also contain intonation
    and loudness movement within a hop. Compare them between clips, not with Praat's norms.
    """
    rms = rms[: f0.size]
    jitter = _relative_perturbation(1.0 / np.maximum(f0, 1e-3), voiced)
    shimmer = _relative_perturbation(rms, voiced)
    pairs = voiced[1:] & voiced[:-1]
    db = _to_db(rms)
    shimmer_db = float(np.mean(np.abs(np.diff(db)[pairs]))) if pairs.any() else 0.0
    return [jitter, shimmer, shimmer_db]


def extract_features(
    wave: np.ndarray, config: FeatureConfig | None = None, *, sampling_rate: int | None = None
) -> np.ndarray:
    """Compute the classic feature vector of one clip.

    Args:
        wave: 1-D float waveform at ``config.sampling_rate`` (e.g. from ``ser_hf.audio.load_audio``).
            Clips shorter than ``config.min_samples()`` are zero-padded at the end.
        config: The extractor settings; ``None`` means ``FeatureConfig()``.
        sampling_rate: If given, checked against ``config.sampling_rate`` (a guard against passing
            a 44.1 kHz array to a 16 kHz config).

    Returns:
        A 1-D float32 array of ``len(feature_names(config))`` finite values.

    Raises:
        AudioError: if the wave is not a non-empty 1-D array of finite floats, or is at the wrong rate.

    Example:
        >>> import numpy as np
        >>> vector = extract_features(np.zeros(160, dtype=np.float32), FeatureConfig(groups=("pitch",)))
        >>> vector.tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    config = config or FeatureConfig()
    wave = _check_wave(wave, config, sampling_rate)
    tracks = _spectral_tracks(wave, config) if set(config.groups) - {"zcr", "rms", "pitch", "voice_quality"} else {}
    needs_pitch = "pitch" in config.groups or "voice_quality" in config.groups
    rms = _rms(wave, config) if needs_pitch or "rms" in config.groups else None
    if "zcr" in config.groups:
        import librosa

        tracks["zcr"] = librosa.feature.zero_crossing_rate(
            wave, frame_length=config.win_length, hop_length=config.hop_length
        )
    if rms is not None:
        tracks["rms"] = _to_db(rms)[None, :]
    scalars: dict[str, list[float]] = {}
    if needs_pitch:
        f0, voiced = _pitch(wave, tracks["rms"][0], config)
        tracks["pitch"] = f0[voiced][None, :]
        scalars["pitch"] = [float(voiced.mean())]
        scalars["voice_quality"] = _voice_quality(f0, voiced, rms)
    parts = []
    for group in config.groups:
        if group != "voice_quality":
            parts.append(frame_stats(tracks[group], config.stats).ravel())
        parts.append(np.asarray(scalars.get(group, []), dtype=np.float64))
    vector = np.concatenate(parts).astype(np.float32)
    if not np.isfinite(vector).all():  # a bug, not bad input: every path above is meant to be finite
        bad = [name for name, value in zip(feature_names(config), vector) if not np.isfinite(value)]
        raise RuntimeError(f"extract_features produced non-finite values for {bad[:10]}; please report it.")
    return vector


def spectral_frames(
    wave: np.ndarray, config: FeatureConfig, *, sampling_rate: int | None = None
) -> dict[str, np.ndarray]:
    """The frame-level tracks behind the ``mel`` and ``mfcc`` groups, before any statistics.

    The neural baselines (:mod:`ser_hf.baseline.sequences`) learn from these frames instead of their
    statistics; computing them here keeps one definition of the log-mel and MFCC analysis.

    Args:
        wave: 1-D float waveform at ``config.sampling_rate`` (zero-padded to ``config.min_samples()``).
        config: Settings; only the ``mel`` and ``mfcc`` groups in ``config.groups`` are computed.
        sampling_rate: If given, checked against ``config.sampling_rate``.

    Returns:
        ``{"mel": (n_mels, n_frames), "mfcc": (n_mfcc * (1 + mfcc_delta_order), n_frames)}`` for the groups
        asked for, rows named as in :func:`track_names`.
    """
    wave = _check_wave(wave, config, sampling_rate)
    tracks = _spectral_tracks(wave, dataclasses.replace(config, groups=("mfcc", "mel")))
    return {group: tracks[group] for group in config.groups if group in ("mel", "mfcc")}


def track_names(group: str, config: FeatureConfig | None = None) -> list[str]:
    """Names of a group's frame-level tracks (``logmel_00``, ``mfcc_03``, ``delta_mfcc_03``, ...)."""
    return _track_names(group, config or FeatureConfig())
