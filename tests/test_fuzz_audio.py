"""Fuzzing the audio decoding entry point with hypothesis: whatever the bytes, only AudioError comes out.

``ser_hf.audio.load_audio`` (decode -> mono -> resample) and ``audio_info`` (the header read every corpus
loader does) get arbitrary bytes, valid WAV files whose header fields take arbitrary values, and valid
WAV/FLAC/OGG files with random bytes overwritten, bits flipped or the end cut off. They must return a
finite 1-D float32 array (or an AudioInfo) or raise :class:`ser_hf.errors.AudioError`, the documented type;
any other exception, a hang or an unbounded allocation is a bug. Examples are bounded (``EXAMPLES`` per
strategy, no example database written into the repository) so the file runs in ~10-20 s on 2 cores; raise
``SER_HF_FUZZ_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_hf.audio import audio_info, load_audio
from ser_hf.errors import AudioError

EXAMPLES = int(os.environ.get("SER_HF_FUZZ_EXAMPLES", "500"))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _encoded(format: str, subtype: str | None, frames: int = 400, channels: int = 2, rate: int = 16000) -> bytes:
    t = np.arange(frames) / rate
    wave = np.stack([0.3 * np.sin(2 * np.pi * 220 * (k + 1) * t) for k in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format=format, subtype=subtype)
    return buffer.getvalue()


VALID = {
    "wav16": _encoded("WAV", "PCM_16"),
    "wav_float": _encoded("WAV", "FLOAT"),
    "wav_u8": _encoded("WAV", "PCM_U8", channels=1),
    "flac": _encoded("FLAC", "PCM_16"),
    "ogg": _encoded("OGG", "VORBIS", frames=4000),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for every example: tmp_path is function-scoped, and hypothesis runs many examples per test."""
    return tmp_path_factory.mktemp("fuzz")


def _check(folder: Path, data: bytes, suffix: str = ".wav") -> None:
    """Write ``data`` to a file and run both entry points on it; only AudioError may escape."""
    path = folder / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        wave = load_audio(path)
    except AudioError as err:
        assert str(path) in str(err)  # every error names the file
    else:
        assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0
        assert np.isfinite(wave).all()
    try:
        info = audio_info(path)
    except AudioError as err:
        assert str(path) in str(err)
    else:
        assert info.frames > 0 and info.sampling_rate > 0 and info.channels > 0


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".wav", ".flac", ".mp3", ".ogg"]))
def test_arbitrary_bytes(folder, data, suffix):
    _check(folder, data, suffix)


@FUZZ
@given(st.sampled_from(["RIFF", "RIFX", "RF64"]), st.integers(0, 2**32 - 1),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
       st.integers(0, len(VALID["wav16"]) - 44))
def test_wav_header_fields(folder, magic, riff_size, format_tag, channels, rate, byte_rate, block_align, bits, data_size,
                           payload):
    """A canonical 44-byte header with every field arbitrary (channels, rate, bits, sizes), then samples."""
    header = (magic.encode() + struct.pack("<I", riff_size) + b"WAVEfmt " + struct.pack("<I", 16)
              + struct.pack("<HHIIHH", format_tag, channels, rate, byte_rate, block_align, bits)
              + b"data" + struct.pack("<I", data_size))
    _check(folder, header + VALID["wav16"][44: 44 + payload])


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_mutated_valid_files(folder, kind, data):
    """Valid files with a few bytes overwritten (mostly in the header), bits flipped, or the end cut off."""
    blob = bytearray(VALID[kind])
    header = min(len(blob), 64)
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        where = data.draw(st.one_of(st.integers(0, header - 1), st.integers(0, len(blob) - 1)), label="offset")
        if data.draw(st.booleans(), label="flip"):
            blob[where] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            blob[where] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    _check(folder, bytes(blob[:cut]) if data.draw(st.booleans(), label="truncate") else bytes(blob),
           ".ogg" if kind == "ogg" else ".flac" if kind == "flac" else ".wav")


@pytest.mark.parametrize("rate", [1, 999, 384_001, 2**31 - 1])
def test_implausible_sampling_rates_are_refused_before_resampling(tmp_path, rate):
    """A valid header can claim any rate: 1 Hz would make resampling to 16 kHz allocate 16000x the samples."""
    path = tmp_path / "rate.wav"
    data = bytearray(VALID["wav16"])
    data[24:28] = struct.pack("<I", rate)
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=rf"rate\.wav.*sampling rate of {rate} Hz"):
        load_audio(path)
    with pytest.raises(AudioError, match=rf"rate\.wav.*sampling rate of {rate} Hz"):
        audio_info(path)


def test_a_clip_too_short_to_resample_is_refused(tmp_path):
    """Found by this fuzzer: one frame at 32001 Hz resampled to 16 kHz left an empty array."""
    path = tmp_path / "one_frame.wav"
    sf.write(path, np.array([0.5], dtype=np.float32), 32001)
    with pytest.raises(AudioError, match=r"one_frame\.wav.*1 frame\(s\) at 32001 Hz leave no sample at 16000 Hz"):
        load_audio(path)
