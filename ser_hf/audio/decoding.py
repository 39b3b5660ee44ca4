"""Decoding and checking audio files, with soundfile and soxr only (no ffmpeg, torchaudio or torchcodec).

Everything that reads a file lives here: which paths are audio (:func:`is_audio_path`), the header and its
checks (:func:`audio_info`, :func:`check_clip_duration`, the sampling-rate, channel and sample limits), and
decoding to one mono float32 array at the model's rate (:func:`load_audio`, :func:`load_audio_bytes`), block
by block through :class:`MonoDecoder` so memory holds the output and one block. :func:`decode`,
:func:`to_mono` and :func:`resample` are the whole-file steps. Arrays handed over in memory are held to the
same limits in :mod:`ser_hf.audio.arrays`. Cleaning the decoded samples is :mod:`ser_hf.audio.clean`.

Example:
    >>> from ser_hf.audio import load_audio
    >>> wave = load_audio("clip.wav", sampling_rate=16000)  # doctest: +SKIP
    >>> wave.dtype, wave.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from ser_hf.errors import AudioError
from ser_hf.paths import display_path, is_utf8, path_text

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# Extensions of the container formats libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...).
# RAW is left out: headerless files cannot be decoded without being told their format.
AUDIO_EXTENSIONS = (
    frozenset("." + ext.lower() for ext in sf.available_formats())
    | frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf"})
) - {".raw"}


def is_audio_path(path: PathLike) -> bool:
    """Whether ``path`` has an extension libsndfile can decode (case-insensitive)."""
    try:
        text = os.fsdecode(os.fspath(path))  # bytes and path-likes giving them too
    except Exception:  # no path at all: a question, not a refusal
        return False
    return Path(text).suffix.lower() in AUDIO_EXTENSIONS


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: enough to check it and to know its duration without decoding."""

    path: str
    sampling_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sampling_rate

    @property
    def length_known(self) -> bool:
        """Whether the header says how many frames the file holds (libsndfile gives a huge count when it cannot
        tell: :data:`UNKNOWN_FRAMES`), so that :attr:`duration` means something."""
        return self.frames < UNKNOWN_FRAMES


#: Frame counts from this one on are libsndfile's "length unknown" (``SF_COUNT_MAX``), not a length: no file holds
#: as many frames (2**40 is 2.2 years at 16 kHz).
UNKNOWN_FRAMES = 2**40


#: Shortest audio accepted as one emotion clip (seconds). wav2vec2-family encoders need 400 samples (25 ms
#: at 16 kHz) for their first frame and fail on less; a tenth of a second is shorter than any syllable.
MIN_CLIP_DURATION = 0.1
#: Longest audio accepted as one emotion clip (seconds). Emotion corpora hold clips of seconds (IEMOCAP's
#: longest turn: ~35 s); a clip-level model's attention grows with the square of the length, so an hour
#: scored as one clip exhausts memory. Longer recordings are scored in windows
#: (:meth:`ser_hf.inference.recognizer.EmotionRecognizer.predict_long`).
MAX_CLIP_DURATION = 300.0


#: Sampling rates a file may declare (Hz). A header can claim any rate; at 1 Hz, resampling a 1 MB file to
#: 16 kHz would allocate 16000 times its samples. No microphone or speech corpus lies outside these bounds.
MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 1000, 384_000


def _check_rate(path: Path, rate: int) -> None:
    if not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        raise AudioError(
            f"Audio file {display_path(path)!r} declares a sampling rate of {rate} Hz; expected {MIN_SAMPLING_RATE} to "
            f"{MAX_SAMPLING_RATE} Hz. Its header is probably corrupt: re-export it (e.g. at 16000 Hz)."
        )


#: Largest absolute sample accepted after decoding (full scale is 1.0). Integer PCM decodes within [-1, 1);
#: float files may go beyond it (headroom of a mix: the bad-input corpus's float_overrange clip peaks at
#: 4.0, +12 dB) but nothing recorded lies 80 dB over full scale. Far beyond (3e38 in a float WAV, 4e18 in a
#: 64-bit file) the feature extractors' float32 mean and variance overflow and the model answers NaN. The
#: recognizer refuses non-finite outputs in any case (EmotionRecognizer.result); refusing the samples here
#: as well is the first line of defence because only the decoder knows the file: lenient corpus loading,
#: which decodes every clip, then skips the file and names it, and batch jobs get an error naming it.
MAX_ABS_SAMPLE = 1e4


def check_samples(wave: np.ndarray, what: str, fix: str = "Re-export it from the source recording") -> None:
    """Refuse decoded samples that are NaN, infinite, or beyond :data:`MAX_ABS_SAMPLE`.

    Args:
        wave: Decoded samples (any shape).
        what: What they are, for the message, e.g. ``"Audio file 'a.wav'"``.
        fix: How to fix them, for the message (a file is re-exported, an array rebuilt).

    Raises:
        AudioError: naming ``what`` and the fix.
    """
    if not np.isfinite(wave).all():
        raise AudioError(f"{what} contains NaN or infinite samples. {fix}.")
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            f"{what} has samples as large as {peak:.3g}, where full scale is 1.0 (at most {MAX_ABS_SAMPLE:g} is "
            f"accepted); its data is corrupt or not audio. {fix}, scaled to [-1, 1]."
        )


def _file_path(path: PathLike) -> Path:
    """The file a caller named (bytes and path-likes that give bytes included), or an AudioError naming what it got."""
    return Path(path_text(path, "The audio path", error=AudioError, refuse_empty=True))


def _soundfile_name(path: Path) -> str | bytes:
    # soundfile encodes a str name as UTF-8, which fails for a name that is not UTF-8 (decoded with
    # surrogateescape); its raw bytes open it. UTF-8 names stay str, so libsndfile's messages read as before.
    text = os.fspath(path)
    return text if is_utf8(text) else os.fsencode(text)


def _check_is_file(path: Path) -> None:
    try:
        exists = path.exists()
    except OSError as err:  # a name over the file system's limit (ENAMETOOLONG), a folder without search permission
        raise AudioError(f"Audio path {display_path(path)!r} cannot be looked up ({err.strerror or err}). Check the "
                         f"path: no folder or file name may be longer than the file system allows (usually 255 "
                         f"bytes), and every folder on it must be searchable (`chmod a+x FOLDER`).") from None
    if not exists:
        if path.is_symlink():  # exists() follows the link: a dangling or looping one is not "missing"
            try:
                path.resolve(strict=True)
                problem = "cannot be followed"
            except RuntimeError:
                problem = "loops (it leads back to itself)"
            except OSError as err:
                problem = ("loops (it leads back to itself)" if err.errno == errno.ELOOP else
                           f"points to {display_path(os.readlink(path))!r}, which does not exist")
            raise AudioError(f"Audio file {display_path(path)!r} is a symbolic link that {problem}. Point it at an "
                             f"audio file or remove it.")
        raise AudioError(f"Audio file {display_path(path)!r} does not exist. Check the path or the corpus --data-dir.")
    if path.is_dir():
        try:  # a folder a job could not list is given its own record: say why its files are missing
            with os.scandir(path):
                pass
        except OSError as err:
            raise AudioError(f"Audio path {display_path(path)!r} is a folder that cannot be listed "
                             f"({err.strerror or err}), so the audio files in it could not be found. Make it readable "
                             f"and run again.") from None
        raise AudioError(
            f"Audio path {display_path(path)!r} is a directory, expected an audio file. Pass the files inside it instead."
        )
    if not path.is_file():
        # A FIFO or device named like audio: opening it for reading could block forever.
        raise AudioError(
            f"Audio path {display_path(path)!r} is not a regular file (a FIFO, socket or device). Pass an audio file instead."
        )
    if path.stat().st_size == 0:
        raise AudioError(f"Audio file {display_path(path)!r} is empty (0 bytes). Re-export or remove it.")
    if not os.access(path, os.R_OK):
        raise AudioError(
            f"Audio file {display_path(path)!r} cannot be read (permission denied). Fix its permissions, e.g. `chmod a+r FILE`."
        )


def audio_info(path: PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Raises:
        AudioError: if the file is missing, a directory or another non-regular file (FIFO, device), empty,
            unreadable, not audio libsndfile reads, holds no samples or declares an implausible sampling rate.
            The message names the file.
    """
    path = _file_path(path)
    _check_is_file(path)
    try:
        info = sf.info(_soundfile_name(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(
            f"Cannot read {display_path(path)!r} as audio ({err}). Expected a format libsndfile decodes "
            f"(WAV, FLAC, OGG, MP3, AIFF, ...); convert the file, e.g. `ffmpeg -i IN -ar 16000 OUT.wav`."
        ) from err
    if info.frames <= 0:
        raise AudioError(f"Audio file {display_path(path)!r} has a header but no samples. Re-export or remove it.")
    _check_rate(path, int(info.samplerate))
    _check_channels(path, int(info.channels))
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), str(info.subtype))


def check_clip_duration(
    audio: PathLike | AudioInfo,
    min_duration: float | None = MIN_CLIP_DURATION,
    max_duration: float | None = MAX_CLIP_DURATION,
) -> AudioInfo:
    """Check, from the header alone, that a file's length suits one emotion clip.

    Args:
        audio: A file, or its :class:`AudioInfo`.
        min_duration: Shortest accepted duration in seconds (``None``: no minimum).
        max_duration: Longest accepted duration in seconds (``None``: no maximum).

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioError: naming the file, if it is unreadable (see :func:`audio_info`), too short or too long.

    Example:
        >>> check_clip_duration("interview.wav")  # doctest: +SKIP
        Traceback (most recent call last):
        ser_hf.errors.AudioError: Audio file 'interview.wav' is too long for one emotion clip: 3600.0 s, ...
    """
    info = audio if isinstance(audio, AudioInfo) else audio_info(audio)
    seconds = info.duration
    if min_duration is not None and seconds < min_duration:
        shown = f"{seconds * 1000:.0f}"
        if float(shown) >= min_duration * 1000:  # 99.94 ms is not "100 ms, expected at least 100 ms"
            shown = f"{seconds * 1000:.2f}"
        raise AudioError(
            f"Audio file {display_path(info.path)!r} is too short for an emotion clip: {shown} ms, expected at least "
            f"{min_duration * 1000:.0f} ms (speech encoders need 25 ms for one frame). Remove it, or pad it."
        )
    if max_duration is not None and seconds > max_duration:
        raise AudioError(
            f"Audio file {display_path(info.path)!r} is too long for one emotion clip: {seconds:.1f} s, expected at most "
            f"{max_duration:g} s. Cut it into utterances, or score it in windows with "
            f"EmotionRecognizer.predict_long (ser-hf predict --window 3 on the command line)."
        )
    return info


def decode(path: PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to a ``(frames, channels)`` float32 array and its sampling rate.

    Every channel of every frame is held at once: use :func:`load_audio`, which decodes in blocks, where only
    the mono result is needed.

    Raises:
        AudioError: naming the file, if it cannot be decoded, is empty, declares an implausible sampling
            rate (outside :data:`MIN_SAMPLING_RATE` .. :data:`MAX_SAMPLING_RATE`) or holds NaN/Inf samples.
    """
    path = _file_path(path)
    _check_is_file(path)
    try:
        wave, rate = sf.read(_soundfile_name(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise _decode_error(path, err) from err
    if wave.shape[0] == 0:
        raise AudioError(f"Audio file {display_path(path)!r} decodes to 0 samples. Re-export or remove it.")
    _check_rate(path, int(rate))
    check_samples(wave, f"Audio file {display_path(path)!r}")
    return wave, int(rate)


def _decode_error(path: Path, err: Exception) -> AudioError:
    return AudioError(
        f"Cannot decode {display_path(path)!r} ({err}). Expected a complete file in a format libsndfile reads "
        f"(WAV, FLAC, OGG, MP3, ...); re-export or convert it."
    )


#: Most channels a file may declare. Speech models take mono; no microphone array a speech corpus uses has
#: more, and a header that claims more (libsndfile accepts up to 1024) is corrupt or hostile.
MAX_CHANNELS = 64

#: Bytes of float32 samples (all channels) decoded at a time. Decoding runs block by block, each block downmixed
#: and resampled before the next is read, so a file takes its mono output plus about one block of memory,
#: whatever its sampling rate, channel count or compression ratio (a 200 KB FLAC can hold 60 s of 8-channel
#: audio at 384 kHz: 737 MB as float32).
DECODE_BLOCK_BYTES = 2 * 2**20


def _check_channels(path: Path, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            f"Audio file {display_path(path)!r} declares {channels} channels; expected 1 to {MAX_CHANNELS}. Its "
            f"header is probably corrupt: re-export it (mono is what the models use)."
        )


class MonoDecoder:
    """Collects blocks of ``(frames, channels)`` float32 samples into one mono array, resampled on the fly.

    Each block is checked, averaged over its channels and fed to a streaming soxr resampler (bit-identical to
    :func:`resample` on the whole signal), so only the mono output grows; a block is dropped once added.

    Args:
        rate: Sampling rate of the blocks.
        target_rate: Rate of the output (``None``: keep ``rate``).
        what: What the samples are, for messages (e.g. ``"Audio file 'a.wav'"``).
        check: Called on every block before it is used (default :func:`check_samples`).

    Example:
        >>> decoder = MonoDecoder(48000, 16000, "the upload")
        >>> decoder.add(np.zeros((4800, 2), np.float32))
        >>> decoder.finish().shape
        (1600,)
    """

    def __init__(self, rate: int, target_rate: int | None, what: str,
                 check: Callable[[np.ndarray, str], None] = check_samples, expected_frames: int | None = None) -> None:
        self.what, self.check = what, check
        target = rate if target_rate is None else int(target_rate)
        self._resampler = None if target == rate else soxr.ResampleStream(rate, target, 1, dtype="float32",
                                                                         quality="HQ")
        # The output is written into one array sized from the header, so it is never held twice (parts and
        # their concatenation); it grows if the file holds more than its header said.
        size = 0 if expected_frames is None else math.ceil(expected_frames * target / rate) + 16
        self._out = np.empty(size, np.float32)
        self._size = 0
        self.frames = 0

    def _append(self, samples: np.ndarray) -> None:
        end = self._size + samples.size
        if end > self._out.size:
            grown = np.empty(max(end, 2 * self._out.size), np.float32)
            grown[: self._size] = self._out[: self._size]
            self._out = grown
        self._out[self._size:end] = samples
        self._size = end

    def convert(self, block: np.ndarray) -> np.ndarray:
        """The mono output of ``(frames, channels)`` float32 samples (a 1-D array is one channel), without keeping
        it: the resampler carries its state to the next block, so the outputs of every block, then :meth:`flush`,
        joined, are what :meth:`finish` would give."""
        block = block.reshape(len(block), -1)
        self.check(block, self.what)
        self.frames += block.shape[0]
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        return mono if self._resampler is None else self._resampler.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """The resampler's last output samples, once every block is converted (none without resampling)."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)

    def add(self, block: np.ndarray) -> None:
        """Add ``(frames, channels)`` float32 samples (a 1-D array is one channel)."""
        self._append(self.convert(block))

    def finish(self) -> np.ndarray:
        """The mono output (float32, 1-D); the decoder cannot be used afterwards."""
        self._append(self.flush())
        out, self._out = self._out, np.empty(0, np.float32)
        # A small overshoot of the header's estimate stays in place; a large one (a header that lied) is copied.
        return out[: self._size] if out.size - self._size <= 64 else out[: self._size].copy()


def read_mono(sound: sf.SoundFile, what: str, sampling_rate: int | None = None, max_frames: int | None = None,
              check: Callable[[np.ndarray, str], None] = check_samples) -> tuple[np.ndarray, int]:
    """Decode an open file block by block to one mono float32 array (see :class:`MonoDecoder`).

    Args:
        sound: An open :class:`soundfile.SoundFile` (from a path or a :class:`io.BytesIO`).
        what: What it is, for messages.
        sampling_rate: Output rate (``None``: the file's own).
        max_frames: Stop after this many frames of the file (``None``: read to the end).
        check: Called on every decoded block (default :func:`check_samples`).

    Returns:
        ``(wave, frames_read)``: the mono output and how many frames of the file were decoded.

    Raises:
        soundfile.LibsndfileError: when the file's data cannot be decoded (callers name the file);
            whatever ``check`` raises.
    """
    known = sound.frames if 0 < sound.frames < UNKNOWN_FRAMES else None
    expected = known if max_frames is None else min(known or max_frames, max_frames)
    decoder = MonoDecoder(int(sound.samplerate), sampling_rate, what, check, expected_frames=expected)
    block = max(1024, DECODE_BLOCK_BYTES // (4 * max(1, sound.channels)))
    while max_frames is None or decoder.frames < max_frames:
        want = block if max_frames is None else min(block, max_frames - decoder.frames)
        data = sound.read(frames=want, dtype="float32", always_2d=True)
        if data.shape[0]:
            decoder.add(data)
        if data.shape[0] < want:
            break
    return decoder.finish(), decoder.frames


def mono_blocks(path: PathLike, sampling_rate: int = 16000, block_bytes: int | None = None) -> Iterator[np.ndarray]:
    """The samples :func:`load_audio` gives for ``path``, in consecutive blocks of about ``block_bytes`` (default
    :data:`DECODE_BLOCK_BYTES`) of the file's float32 samples, never held whole: for work that walks a recording once
    (a long recording's windows).

    The header is checked before the first block; every block as :func:`load_audio` checks it. Joined, the blocks are
    bit for bit :func:`load_audio`'s array; a file that decodes to no sample yields none.

    Raises:
        AudioError: naming the file, as :func:`load_audio` does, when the first block is asked for (header) or when a
            block is (its data).
    """
    with _checked_file(path) as (sound, what):
        decoder = MonoDecoder(int(sound.samplerate), sampling_rate, what)
        block = max(1024, (block_bytes or DECODE_BLOCK_BYTES) // (4 * max(1, sound.channels)))
        while True:
            data = sound.read(frames=block, dtype="float32", always_2d=True)
            if data.shape[0]:
                samples = decoder.convert(data)
                if samples.size:
                    yield samples
            if data.shape[0] < block:
                break
        tail = decoder.flush()
        if tail.size:
            yield tail


@contextlib.contextmanager
def _checked_file(path: PathLike) -> Iterator[tuple[sf.SoundFile, str]]:
    """The open file, its header's rate and channels checked, and how messages name it; what fails to decode inside
    the block is an :class:`AudioError` naming the file, as every other refusal here."""
    path = _file_path(path)
    _check_is_file(path)
    try:
        with sf.SoundFile(_soundfile_name(path)) as sound:
            _check_rate(path, int(sound.samplerate))
            _check_channels(path, int(sound.channels))
            yield sound, f"Audio file {display_path(path)!r}"
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise _decode_error(path, err) from err


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array; 1-D input is returned as is."""
    return wave if wave.ndim == 1 else wave.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample with soxr (high quality); a no-op when the rates match."""
    if orig_rate == target_rate:
        return wave
    return soxr.resample(wave, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: PathLike, sampling_rate: int = 16000, max_duration: float | None = None) -> np.ndarray:
    """Decode, downmix and resample a file to a 1-D float32 array at ``sampling_rate``.

    The header (rate, channels) is checked first, then the file is decoded in blocks of about
    :data:`DECODE_BLOCK_BYTES`, each downmixed and resampled before the next is read: memory holds the output
    and one block, never every channel of the whole file.

    Args:
        path: The audio file.
        sampling_rate: Output rate in Hz.
        max_duration: Keep only the first this many seconds; the rest of the file is not decoded (the
            output equals the full file's, cut at ``round(max_duration * sampling_rate)`` samples).

    Raises:
        AudioError: naming the file, as :func:`decode` does, when it declares more than :data:`MAX_CHANNELS`
            channels, or when it is so short that resampling leaves no sample (e.g. one frame at 32 kHz
            resampled to 16 kHz).
    """
    with _checked_file(path) as (sound, what):
        rate = int(sound.samplerate)
        # A margin past the cut, longer than the resampler's filter, so the samples kept are exact.
        max_frames = None if max_duration is None else math.ceil(max_duration * rate) + rate // 10 + 64
        wave, frames = read_mono(sound, what, sampling_rate, max_frames)
    if frames == 0:
        raise AudioError(f"Audio file {display_path(path)!r} decodes to 0 samples. Re-export or remove it.")
    if max_duration is not None:
        wave = wave[: int(round(max_duration * sampling_rate))]
    if wave.size == 0:
        raise AudioError(
            f"Audio file {display_path(path)!r} is too short to use: its {frames} frame(s) at {rate} Hz leave no "
            f"sample at {sampling_rate} Hz. Remove it, or re-export a longer clip."
        )
    return wave


def load_audio_bytes(data: bytes, sampling_rate: int = 16000, what: str = "The embedded audio") -> np.ndarray:
    """:func:`load_audio` for a file's bytes held in memory (a ``datasets`` ``Audio(decode=False)`` cell).

    Args:
        data: The bytes of a WAV, FLAC, OGG, MP3... file.
        sampling_rate: Output rate in Hz.
        what: What the bytes are, for messages (e.g. ``"Row 17 of split 'train'"``).

    Raises:
        AudioError: naming ``what``, when the bytes are not audio, declare an implausible rate or channel count,
            hold NaN/Inf samples or decode to nothing.
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as sound:
            _check_rate(Path(what), int(sound.samplerate))
            _check_channels(Path(what), int(sound.channels))
            wave, frames = read_mono(sound, what, sampling_rate)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        reason = getattr(err, "error_string", err)  # soundfile's own text names an anonymous BytesIO object
        raise AudioError(f"{what} ({len(data)} bytes) cannot be decoded ({reason}). Expected the bytes of a WAV, "
                         f"FLAC, OGG or MP3 file; re-encode it.") from err
    if frames == 0 or wave.size == 0:
        raise AudioError(f"{what} decodes to 0 samples at {sampling_rate} Hz. Re-encode it, or drop it.")
    return wave
