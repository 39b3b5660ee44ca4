"""Decoding and cleaning audio, with soundfile and soxr only (no ffmpeg, torchaudio or torchcodec).

- :mod:`ser_hf.audio.decoding` - reading files: which paths are audio, header checks (sampling rate, channels,
  clip duration, sample range) and decoding to one mono float32 array at the model's rate, in blocks
  (:func:`load_audio`, :func:`load_audio_bytes`, :class:`MonoDecoder`).
- :mod:`ser_hf.audio.arrays` - in-memory arrays held to the same limits (:func:`float_samples`,
  :func:`array_to_mono`, :func:`check_sampling_rate`, :func:`caller_samples`).
- :mod:`ser_hf.audio.caller_mistakes` - what a caller's float samples are refused for: integer PCM converted
  without scaling, unsigned PCM not centred on 0 (:class:`SampleOffset`).
- :mod:`ser_hf.audio.voicing` - whether a clip holds a voice (periodic frames whose pitch and level move), the
  screen speaker adaptation learns through (:func:`holds_voice`).
- :mod:`ser_hf.audio.clean` - cleaning decoded arrays: trim silence, reduce noise, normalise the level,
  crop and pad, chained in a fixed order by :class:`AudioPreprocessor` (with a
  :meth:`~AudioPreprocessor.fingerprint` caches key on); :func:`load_many` decodes many files on threads.

Every name of these is importable from here, as ``from ser_hf.audio import X``.

Example:
    >>> from ser_hf.audio import AudioPreprocessor
    >>> prep = AudioPreprocessor(sampling_rate=16000, trim_db=30, normalize="peak")
    >>> wave = prep("clip.wav")  # doctest: +SKIP
"""

from __future__ import annotations

from ser_hf.audio.arrays import (
    AUDIO_KEYS,
    array_to_mono,
    audio_decoder_samples,
    audio_in_mapping,
    caller_samples,
    check_sampling_rate,
    float_samples,
    tensor_samples,
)
from ser_hf.audio.caller_mistakes import MAX_CALLER_PEAK
from ser_hf.audio.clean import (
    AudioPreprocessor,
    NoiseAdded,
    SpeedChanged,
    add_noise,
    change_speed,
    clip_copies,
    limit_duration,
    load_many,
    normalize_loudness,
    normalize_peak,
    reduce_noise,
    trim_silence,
)
from ser_hf.audio.decoding import (
    AUDIO_EXTENSIONS,
    DECODE_BLOCK_BYTES,
    MAX_ABS_SAMPLE,
    MAX_CHANNELS,
    MAX_CLIP_DURATION,
    MAX_SAMPLING_RATE,
    MIN_CLIP_DURATION,
    MIN_SAMPLING_RATE,
    AudioInfo,
    MonoDecoder,
    PathLike,
    audio_info,
    check_clip_duration,
    check_samples,
    decode,
    is_audio_path,
    load_audio,
    load_audio_bytes,
    read_mono,
    resample,
    to_mono,
)
from ser_hf.audio.voicing import Voicing, holds_voice, measure_voicing

__all__ = [
    # ser_hf.audio.decoding
    "AUDIO_EXTENSIONS",
    "DECODE_BLOCK_BYTES",
    "MAX_ABS_SAMPLE",
    "MAX_CHANNELS",
    "MAX_CLIP_DURATION",
    "MAX_SAMPLING_RATE",
    "MIN_CLIP_DURATION",
    "MIN_SAMPLING_RATE",
    "AudioInfo",
    "MonoDecoder",
    "PathLike",
    "AUDIO_KEYS",
    "MAX_CALLER_PEAK",
    "array_to_mono",
    "audio_decoder_samples",
    "audio_in_mapping",
    "audio_info",
    "caller_samples",
    "check_clip_duration",
    "check_samples",
    "check_sampling_rate",
    "decode",
    "float_samples",
    "is_audio_path",
    "load_audio",
    "load_audio_bytes",
    "read_mono",
    "resample",
    "tensor_samples",
    "to_mono",
    # ser_hf.audio.clean
    "AudioPreprocessor",
    "NoiseAdded",
    "SpeedChanged",
    "add_noise",
    "change_speed",
    "clip_copies",
    "limit_duration",
    "load_many",
    "normalize_loudness",
    "normalize_peak",
    "reduce_noise",
    "trim_silence",
    # ser_hf.audio.voicing
    "Voicing",
    "holds_voice",
    "measure_voicing",
]
