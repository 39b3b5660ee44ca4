"""A corpus of bad and unusual audio inputs, for robustness tests of every entry point that reads audio.

:func:`make_bad_inputs` writes one file (or directory, link, FIFO) per case into a folder and returns a
:class:`BadInput` per case, saying what ser_hf must do with it:

- ``expected`` is the outcome of decoding (:func:`ser_hf.audio.load_audio`): ``"ok"`` (it decodes,
  perhaps with the documented conversion in ``conversion``: downmix to mono, resampling) or ``"error"``
  (an :class:`~ser_hf.errors.AudioError` whose message names the file and matches ``error_match``).
- ``as_clip`` is the outcome where a file is used as one emotion clip (corpus loaders, and through
  them training, ``evaluate`` and ``baseline``; ``predict``): clips outside
  :data:`~ser_hf.audio.MIN_CLIP_DURATION` .. :data:`~ser_hf.audio.MAX_CLIP_DURATION` are refused there
  although they decode.

The cases: empty file, header-only WAV, WAV truncated mid-data and mid-header, truncated FLAC, random
bytes named ``.wav``, a text file, float WAV with NaN and with Inf, 8-bit, 24-bit and 32-bit float PCM
(also beyond full scale), 8 kHz and 96 kHz, 6 channels, a 10 ms clip, a one-hour clip (8 kHz int16,
written in blocks: about 58 MB in 0.2 s), pure silence, a clipped square wave, MP3, OGG/Vorbis, names
with spaces and non-ASCII characters, a symlink and a dangling symlink, an unreadable file (root reads
it anyway), a directory named like an audio file and a FIFO named like one.

Like lhotse's dummy factories, it ships in the package so users (and the service tests) can run their
own code against the same inputs, offline.

Example:
    >>> from ser_hf.testing.bad_audio import make_bad_inputs
    >>> cases = make_bad_inputs("/tmp/bad_inputs", include_long=False)  # doctest: +SKIP
    >>> sorted({case.expected for case in cases})  # doctest: +SKIP
    ['error', 'ok']
    >>> next(c for c in cases if c.name == "six_channels").conversion  # doctest: +SKIP
    'downmixed from 6 channels to mono'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

__all__ = ["BadInput", "make_bad_inputs"]

Outcome = Literal["ok", "error"]

#: Rate of the ordinary cases; the rate cases use 8 kHz and 96 kHz.
SAMPLING_RATE = 16000
#: Length of the ordinary cases, in seconds.
DURATION = 1.0
#: Length of the long case: one hour.
LONG_DURATION = 3600.0


@dataclass(frozen=True)
class BadInput:
    """One case of the bad-input corpus and what ser_hf must do with it.

    Args:
        name: Stable identifier of the case (``"empty"``, ``"six_channels"``, ...); use it in test ids.
        path: The file (or directory, link, FIFO) written for it.
        description: What the input is, in words.
        expected: ``"ok"``: :func:`ser_hf.audio.load_audio` decodes it; ``"error"``: it raises an
            :class:`~ser_hf.errors.AudioError` naming the file.
        as_clip: The outcome where the input is used as one emotion clip (corpus loaders, training,
            ``evaluate``, ``baseline``, ``predict``); differs from ``expected`` only for clips too short or
            too long to be one (see :func:`ser_hf.audio.check_clip_duration`).
        error_match: For errors: a regular expression the error message matches (besides the file name).
        conversion: For ``"ok"``: the documented conversion decoding applies (``None`` if none).
        duration: For ``"ok"``: seconds of audio decoding yields (lossy codecs add a little padding).
        slow: Whether it is the large one-hour case.
    """

    name: str
    path: Path
    description: str
    expected: Outcome
    as_clip: Outcome
    error_match: str | None = None
    conversion: str | None = None
    duration: float | None = None
    slow: bool = False

    @property
    def has_audio_extension(self) -> bool:
        """Whether folder scans pick it up (its name ends in an extension libsndfile reads)."""
        from ser_hf.audio import is_audio_path

        return is_audio_path(self.path)

    def data(self) -> bytes | None:
        """The file's bytes (e.g. to upload it), or ``None`` for what has none to read: a directory,
        FIFO or dangling link, or a file this process may not read."""
        if not self.path.is_file() or not os.access(self.path, os.R_OK):
            return None  # is_file() is False for FIFOs: opening one would block
        return self.path.read_bytes()


def _tone(duration: float = DURATION, rate: int = SAMPLING_RATE, channels: int = 1, amplitude: float = 0.3,
          frequency: float = 220.0) -> np.ndarray:
    t = np.arange(int(round(duration * rate))) / rate
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    if channels > 1:  # a different pitch per channel, so a wrong downmix would show
        wave = np.stack([amplitude * np.sin(2 * np.pi * frequency * (k + 1) * t) for k in range(channels)], axis=1)
    return wave.astype(np.float32)


def _write(path: Path, wave: np.ndarray, rate: int = SAMPLING_RATE, **options) -> Path:
    sf.write(str(path), wave, rate, **options)
    return path


def _truncated(path: Path, keep: int | float) -> Path:
    """Cut the file at ``keep`` bytes (an int) or at that fraction of its length (a float)."""
    data = path.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return path


def _write_long(path: Path, duration: float, rate: int = 8000, block_seconds: float = 60.0) -> Path:
    """An int16 WAV written block by block, so an hour costs ~58 MB on disk and little memory to make."""
    block = np.zeros(int(block_seconds * rate), dtype=np.int16)
    # A short tone at the start of each block: speech-like energy, yet cheap and compressible.
    tone = (3000 * np.sin(2 * np.pi * 200 * np.arange(rate // 10) / rate)).astype(np.int16)
    block[: tone.size] = tone
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as handle:
        for _ in range(int(duration // block_seconds)):
            handle.write(block)
    return path


def _ok(name: str, path: Path, description: str, duration: float = DURATION, conversion: str | None = None,
        as_clip: Outcome = "ok", error_match: str | None = None, slow: bool = False) -> BadInput:
    return BadInput(name, path, description, "ok", as_clip, error_match, conversion, duration, slow)


def _error(name: str, path: Path, description: str, error_match: str) -> BadInput:
    return BadInput(name, path, description, "error", "error", error_match)


def _broken_files(root: Path) -> list[BadInput]:
    rng = np.random.default_rng(0)
    (root / "empty.wav").write_bytes(b"")
    random_bytes = root / "random_bytes.wav"
    random_bytes.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = root / "notes.txt"
    text.write_text("Speaker 3, take 2: angry. This is a text file, not audio.\n" * 20, encoding="utf-8")
    cannot_read = r"Cannot (read|decode)"
    return [
        _error("empty", root / "empty.wav", "an empty file (0 bytes) named .wav", r"empty \(0 bytes\)"),
        _error("header_only", _write(root / "header_only.wav", np.zeros(0, np.float32)),
               "a WAV header with no samples", r"(no|0) samples"),
        _ok("truncated", _truncated(_write(root / "truncated.wav", _tone(), subtype="PCM_16"), 44 + 16000),
            "a 1 s 16-bit WAV cut after 0.5 s of its data (the header still says 1 s)", duration=0.5,
            conversion="the 0.5 s present are decoded, as libsndfile and ffmpeg do"),
        _error("truncated_header", _truncated(_write(root / "truncated_header.wav", _tone()), 20),
               "a WAV cut inside its header (20 bytes)", cannot_read),
        _error("truncated_flac", _truncated(_write(root / "truncated_flac.flac", _tone()), 0.5),
               "a FLAC cut in half: its header reads (1 s), its frames do not decode", cannot_read),
        _error("random_bytes", random_bytes, "4 KB of random bytes named .wav", cannot_read),
        _error("text", text, "a UTF-8 text file (notes.txt)", cannot_read),
        _error("nan", _write(root / "nan.wav", np.where(np.arange(16000) % 100 == 0, np.nan, _tone()), subtype="FLOAT"),
               "a 32-bit float WAV with NaN samples", r"NaN or infinite"),
        _error("inf", _write(root / "inf.wav", np.where(np.arange(16000) == 500, np.inf, _tone()), subtype="FLOAT"),
               "a 32-bit float WAV with an infinite sample", r"NaN or infinite"),
    ]


def _unusual_formats(root: Path) -> list[BadInput]:
    square = np.sign(np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
    return [
        _ok("pcm_u8", _write(root / "pcm_u8.wav", _tone(), subtype="PCM_U8"), "8-bit unsigned PCM WAV"),
        _ok("pcm_24", _write(root / "pcm_24.wav", _tone(), subtype="PCM_24"), "24-bit PCM WAV"),
        _ok("float32", _write(root / "float32.wav", _tone(), subtype="FLOAT"), "32-bit float WAV"),
        _ok("float_overrange", _write(root / "float_overrange.wav", _tone(amplitude=4.0), subtype="FLOAT"),
            "32-bit float WAV peaking at 4.0 (12 dB over full scale)",
            conversion="samples beyond +-1 are kept as they are (normalisation is a preprocessing option)"),
        _ok("rate_8k", _write(root / "rate_8k.wav", _tone(rate=8000), rate=8000), "8 kHz WAV",
            conversion="resampled from 8 kHz (soxr)"),
        _ok("rate_96k", _write(root / "rate_96k.wav", _tone(rate=96000), rate=96000, subtype="PCM_24"),
            "96 kHz 24-bit WAV", conversion="resampled from 96 kHz (soxr)"),
        _ok("six_channels", _write(root / "six_channels.wav", _tone(channels=6)), "6-channel (5.1) WAV",
            conversion="downmixed from 6 channels to mono"),
        _ok("ten_ms", _write(root / "ten_ms.wav", _tone(duration=0.01)), "a 10 ms clip", duration=0.01,
            as_clip="error", error_match=r"too short"),
        _ok("silence", _write(root / "silence.wav", np.zeros(16000, np.float32)), "1 s of digital silence"),
        _ok("square_clipped", _write(root / "square_clipped.wav", square), "a full-scale (clipped) square wave"),
        _ok("mp3", _write(root / "tone.mp3", _tone()), "MP3 (MPEG Layer III, written by libsndfile)"),
        _ok("ogg", _write(root / "tone.ogg", _tone()), "OGG/Vorbis"),
    ]


def _odd_paths(root: Path) -> list[BadInput]:
    reference = _write(root / "reference.wav", _tone(), subtype="PCM_16")
    link = root / "link.wav"
    link.symlink_to(reference.name)  # relative, so the folder can be moved
    dangling = root / "dangling.wav"
    dangling.symlink_to("no_such_target.wav")
    # Each file its own tone: byte-identical copies under two speakers are refused as one recording (corpora.base).
    unreadable = _write(root / "unreadable.wav", _tone(frequency=250.0))
    unreadable.chmod(0)
    # root ignores file permissions, so there the file reads like any other.
    privileged = os.access(unreadable, os.R_OK)
    directory = root / "directory.wav"
    directory.mkdir()
    cases = [
        _ok("reference", reference, "an ordinary 1 s 16 kHz 16-bit mono WAV (the control case)"),
        _ok("space", _write(root / "with spaces in name.wav", _tone(frequency=230.0)), "a file name with spaces"),
        _ok("non_ascii", _write(root / "émotion_колер_怒り.wav", _tone(frequency=240.0)),
            "a file name with non-ASCII characters"),
        _ok("symlink", link, "a symbolic link to reference.wav"),
        _error("dangling_symlink", dangling, "a symbolic link to a file that does not exist", r"does not exist"),
        (_ok("unreadable", unreadable, "a file with mode 000 (the process runs as root, which reads it anyway)")
         if privileged else
         _error("unreadable", unreadable, "a file with mode 000 (no read permission)", r"(Permission denied|cannot be read)")),
        _error("directory", directory, "a directory named directory.wav", r"is a directory"),
    ]
    if hasattr(os, "mkfifo"):
        fifo = root / "fifo.wav"
        os.mkfifo(fifo)
        cases.append(_error("fifo", fifo, "a FIFO (named pipe) named fifo.wav: opening it would block",
                            r"not a regular file"))
    return cases


def make_bad_inputs(root: str | os.PathLike, include_long: bool = True) -> list[BadInput]:
    """Write the bad-input corpus into ``root`` (created if missing) and describe each case.

    Args:
        root: Folder to write into; it should be empty (names are fixed, so two calls need two folders).
        include_long: Also write the one-hour clip (8 kHz int16, ~58 MB, ~0.2 s to write).

    Returns:
        One :class:`BadInput` per case, in a fixed order; names are unique.

    Example:
        >>> cases = make_bad_inputs(tmp_path, include_long=False)  # doctest: +SKIP
        >>> [c.name for c in cases if c.expected == "error"][:3]  # doctest: +SKIP
        ['empty', 'header_only', 'truncated_header']
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases = [*_broken_files(root), *_unusual_formats(root), *_odd_paths(root)]
    if include_long:
        cases.append(_ok(
            "one_hour", _write_long(root / "one_hour.wav", LONG_DURATION),
            "a one-hour 8 kHz 16-bit WAV (58 MB)", duration=LONG_DURATION, conversion="resampled from 8 kHz (soxr)",
            as_clip="error", error_match=r"too long", slow=True,
        ))
    return cases
