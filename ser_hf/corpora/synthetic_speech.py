"""The generator of the ``synthetic`` corpus (:mod:`ser_hf.corpora.synthetic`): a small, learnable, *synthetic*
emotional-speech corpus, the built-in default for demos and tests (also importable as ``ser_hf.testing.synthetic``).

This is a stand-in, not a benchmark. No human spoke these clips and no listener labelled them: each clip
is synthesised from acoustic cues the literature associates with each emotion (e.g. Banse & Scherer 1996;
Juslin & Laukka 2003), so ``ser-hf demo`` and the tests can train and evaluate offline in minutes.
Accuracy on it shows that a pipeline *works*, never how well it recognises emotions in real speech.

How a clip (1.5-3 s) is made, speech-like so that real feature extractors and models see familiar structure:

- Voiced "syllables": a glottal-like source (band-limited harmonics falling as ``k**-alpha``, plus pulsed
  aspiration noise) with a smooth F0 contour (declination, per-syllable accents, jitter), a syllable-rate
  envelope, and a cascade of 2nd-order formant resonators (2-4 vowels per utterance). Unvoiced gaps, some
  with short band-passed noise bursts (fricative-like), and light background noise.
- Speakers (genders alternate) differ in base F0 (male ~100-140 Hz, female ~180-240 Hz), formant scaling
  (vocal tract length), speaking rate, loudness and brightness: speaker identity is a real nuisance.
- Emotions shift those cues *relative to the speaker's baseline* (:data:`EMOTION_PROFILES`), with per-clip
  noise so classes overlap: angry = higher, wider F0, faster, louder, brighter; happy = high, wide F0,
  fast, moderately loud; sad = low, narrow F0, slow, quiet, darker, breathier; neutral = the baseline.
  Calm, fearful, disgust, surprised and boredom are available on request.

With the defaults (8 speakers x 4 emotions x 6 clips), MFCC/F0/RMS statistics and a logistic regression
reach about 0.7-0.8 unweighted accuracy on speaker-independent folds: learnable, not trivial.

Example:
    >>> from ser_hf.corpora.synthetic_speech import make_synthetic_corpus
    >>> from ser_hf.corpora import load_corpus
    >>> root = make_synthetic_corpus("/tmp/ser_hf_synthetic")  # doctest: +SKIP
    >>> ds = load_corpus("manifest", root)  # doctest: +SKIP
    >>> len(ds), ds.features["label"].names  # doctest: +SKIP
    (192, ['neutral', 'happy', 'sad', 'angry'])
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from ser_hf._io import default_permissions
from ser_hf._output_folders import check_folder_path
from ser_hf.emotions import EMOTION_SETS, EMOTIONS, canonical_emotion, sort_emotions
from ser_hf.errors import CorpusError

#: Bump whenever a change alters the generated audio, so corpora cached on disk are regenerated.
SYNTHETIC_VERSION = 1

# Per-clip spread of every cue, in units of the standard deviations below; tuned so the default corpus
# is learnable but not separable (see the module docstring).
_SPREAD = 0.7
_BASE_LEVEL_DB = -28.0  # RMS of a neutral clip of an average speaker, dBFS; leaves angry clips headroom
_HOP = 0.005  # control rate of the F0 contour, seconds


@dataclass(frozen=True)
class EmotionProfile:
    """How an emotion shifts a speaker's baseline cues (before per-clip noise)."""

    f0_shift: float  # change of F0 level, semitones
    f0_range: float  # factor on the speaker's F0 excursions (pitch range)
    rate: float  # factor on the speaker's syllable rate (tempo)
    level: float  # change of loudness, dB
    tilt: float  # change of the harmonic decay exponent; negative is brighter (flatter spectral tilt)
    jitter: float  # relative cycle-to-cycle F0 perturbation
    breath: float  # aspiration noise relative to the harmonic source


#: Cue profiles of the emotions this generator can speak, relative to a speaker's neutral voice.
EMOTION_PROFILES: dict[str, EmotionProfile] = {
    "neutral": EmotionProfile(0.0, 1.0, 1.00, 0.0, 0.00, 0.006, 0.06),
    "calm": EmotionProfile(-0.5, 0.8, 0.90, -2.0, 0.15, 0.005, 0.09),
    "happy": EmotionProfile(4.0, 2.4, 1.08, 2.5, -0.10, 0.008, 0.05),
    "sad": EmotionProfile(-2.0, 0.5, 0.75, -5.0, 0.40, 0.012, 0.18),
    "angry": EmotionProfile(3.5, 1.2, 1.22, 7.0, -0.50, 0.012, 0.03),
    "fearful": EmotionProfile(5.0, 1.3, 1.20, 1.0, 0.00, 0.020, 0.15),
    "disgust": EmotionProfile(-1.0, 1.1, 0.85, 0.5, 0.05, 0.010, 0.08),
    "surprised": EmotionProfile(4.0, 2.2, 1.05, 3.0, -0.10, 0.008, 0.06),
    "boredom": EmotionProfile(-2.0, 0.5, 0.80, -3.0, 0.25, 0.006, 0.09),
}
SUPPORTED_EMOTIONS: tuple[str, ...] = tuple(name for name in EMOTIONS if name in EMOTION_PROFILES)

# Peterson & Barney (1952) adult male vowel formants F1-F3 (Hz); scaled per speaker.
_VOWELS = ((270, 2290, 3010), (530, 1840, 2480), (730, 1090, 2440), (570, 840, 2410),
           (300, 870, 2240), (660, 1720, 2410), (640, 1190, 2390))
_BANDWIDTHS = (60.0, 90.0, 150.0, 250.0)
_F4 = 3400.0


@dataclass(frozen=True)
class SpeakerProfile:
    """A synthetic speaker's neutral voice."""

    name: str  # speaker id, e.g. "spk01"
    gender: str  # "male" or "female"
    f0: float  # base F0, Hz
    f0_range: float  # typical F0 excursion, semitones
    formant_scale: float  # factor on all formants (a shorter vocal tract gives larger ones)
    rate: float  # syllables per second
    level: float  # loudness offset, dB
    alpha: float  # harmonic decay exponent (larger is a darker voice)
    breath: float  # factor on aspiration noise


def speaker_profiles(n_speakers: int, seed: int = 0) -> list[SpeakerProfile]:
    """The voices of ``n_speakers`` synthetic speakers, alternating male and female.

    Speaker ``i`` depends only on ``(seed, i)``, so a smaller corpus holds the same first speakers.
    """
    speakers = []
    for index in range(n_speakers):
        rng = np.random.default_rng((seed, 0, index))
        male = index % 2 == 0
        speakers.append(SpeakerProfile(
            name=f"spk{index + 1:02d}",
            gender="male" if male else "female",
            f0=rng.uniform(100, 140) if male else rng.uniform(180, 240),
            f0_range=rng.uniform(2.0, 3.5),
            formant_scale=rng.uniform(0.95, 1.05) if male else rng.uniform(1.12, 1.22),
            rate=rng.uniform(3.6, 5.0),
            level=rng.uniform(-2.0, 2.0),
            alpha=rng.uniform(0.9, 1.25),
            breath=rng.uniform(0.8, 1.25),
        ))
    return speakers


def _clip_cues(speaker: SpeakerProfile, emotion: EmotionProfile, rng: np.random.Generator) -> dict[str, float]:
    """The cues of one clip: speaker baseline, shifted by the emotion, plus per-clip noise (classes overlap)."""

    def spread(sd: float) -> float:
        return _SPREAD * sd * rng.standard_normal()

    return {
        "f0": speaker.f0 * 2 ** ((emotion.f0_shift + spread(1.3)) / 12),
        "range": speaker.f0_range * emotion.f0_range * np.exp(spread(0.25)),
        "rate": speaker.rate * emotion.rate * np.exp(spread(0.09)),
        "level": _BASE_LEVEL_DB + speaker.level + emotion.level + spread(2.0),
        "alpha": float(np.clip(speaker.alpha + emotion.tilt + spread(0.15), 0.6, 2.5)),
        "jitter": emotion.jitter * np.exp(spread(0.3)),
        "breath": emotion.breath * speaker.breath * np.exp(spread(0.3)),
        "duration": rng.uniform(1.5, 3.0),
    }


def _segments(duration: float, rate: float, rng: np.random.Generator) -> tuple[list, list]:
    """Voiced syllables and fricative bursts as (start, end) seconds, at ``rate`` syllables per second."""
    voiced, fricatives = [], []
    t, end, period = rng.uniform(0.08, 0.25), duration - rng.uniform(0.08, 0.2), 1.0 / rate
    while t + 0.5 * period < end:
        length = min(period * rng.uniform(0.5, 0.75), end - t)
        voiced.append((t, t + length))
        t += length
        gap = period * rng.uniform(0.2, 0.45) + (rng.uniform(0.12, 0.3) if rng.random() < 0.12 else 0.0)
        if gap > 0.05 and rng.random() < 0.45:
            start = t + gap * rng.uniform(0.05, 0.2)
            fricatives.append((start, start + gap * rng.uniform(0.5, 0.75)))
        t += gap
    return voiced, fricatives


def _f0_contour(n: int, sr: int, voiced: list, cues: dict, rng: np.random.Generator) -> np.ndarray:
    """Per-sample F0 (Hz): phrase declination plus a rise-fall accent per syllable, with jitter."""
    times = np.arange(int(n / sr / _HOP) + 2) * _HOP
    semitones = cues["range"] * 0.4 * (0.5 - times / times[-1])  # declination: pitch falls over the phrase
    for start, end in voiced:
        inside = (times >= start) & (times < end)
        u = (times[inside] - start) / (end - start)
        accent = cues["range"] * rng.uniform(-0.3, 1.0)
        semitones[inside] += accent * np.sin(np.pi * u) + 0.3 * cues["range"] * rng.standard_normal()
    window = np.hanning(9)
    semitones = np.convolve(semitones, window / window.sum(), mode="same")
    f0 = cues["f0"] * 2 ** (semitones / 12) * (1 + cues["jitter"] * rng.standard_normal(times.size))
    return np.interp(np.arange(n) / sr, times, np.maximum(f0, 50.0))


def _harmonics(f0: np.ndarray, phase: np.ndarray, alpha: float, sr: int) -> np.ndarray:
    """Band-limited harmonics ``k**-alpha`` of ``f0`` at glottal ``phase``: a glottal-like source."""
    # sin(k*phase) by the Chebyshev recurrence: a few multiply-adds per harmonic instead of a sine each.
    previous, current, twice_cos = np.zeros_like(phase), np.sin(phase), 2 * np.cos(phase)
    limit, fade = 0.45 * sr, 0.05 * sr
    source, k, highest = np.zeros_like(phase), 1, f0.max()
    while k * f0.min() < limit:
        if k * highest <= limit - fade:
            source += k**-alpha * current
        else:  # fade harmonics out before Nyquist (no aliasing)
            source += k**-alpha * np.clip((limit - k * f0) / fade, 0.0, 1.0) * current
        previous, current = current, twice_cos * current - previous
        k += 1
    return source


def _formant_filter(formants: Sequence[float], sr: int) -> np.ndarray:
    """Cascade of 2nd-order resonators (unity gain at DC) as second-order sections."""
    sections = []
    for frequency, bandwidth in zip(formants, _BANDWIDTHS):
        if frequency < 0.45 * sr:
            r, theta = np.exp(-np.pi * bandwidth / sr), 2 * np.pi * frequency / sr
            a = [1.0, -2 * r * np.cos(theta), r * r]
            sections.append([sum(a), 0.0, 0.0, *a])
    return np.asarray(sections)


def _voiced_speech(n: int, sr: int, voiced: list, speaker: SpeakerProfile, cues: dict, rng) -> np.ndarray:
    """Syllables: enveloped glottal source (harmonics + pulsed breath noise) through per-syllable vowels."""
    f0 = _f0_contour(n, sr, voiced, cues, rng)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    bounds = [(int(start * sr), min(int(end * sr), n)) for start, end in voiced]
    rows = np.concatenate([np.arange(a, b) for a, b in bounds])  # the source is only heard in syllables
    source = np.zeros(n)
    source[rows] = _harmonics(f0[rows], phase[rows], cues["alpha"], sr)
    pulsed = 0.5 * (1 + np.cos(phase))  # aspiration is strongest while the glottis is open
    source += cues["breath"] * np.std(source[rows]) * 0.5 * pulsed * rng.standard_normal(n)
    vowels = rng.choice(len(_VOWELS), size=rng.integers(2, 5), replace=False)
    scale = speaker.formant_scale * rng.uniform(0.97, 1.03)
    speech, tail = np.zeros(n), int(0.03 * sr)  # the resonators ring on after each syllable
    for a, b in bounds:
        envelope = np.sin(np.pi * (np.arange(b - a) + 0.5) / (b - a)) ** 0.6
        gain = 10 ** (rng.uniform(-2.0, 2.0) / 20) * (1.6 if rng.random() < 0.25 else 1.0)  # some stressed
        vowel = [f * scale for f in _VOWELS[rng.choice(vowels)]] + [_F4 * scale]
        excitation = np.concatenate([source[a:b] * envelope * gain, np.zeros(tail)])
        ringing = signal.sosfilt(_formant_filter(vowel, sr), excitation)[: n - a]
        speech[a : a + ringing.size] += ringing
    return speech


@functools.lru_cache(maxsize=8)
def _fricative_filter(sr: int) -> np.ndarray:
    return signal.butter(2, (2500, min(7000, 0.45 * sr)), btype="bandpass", fs=sr, output="sos")


def _fricatives(n: int, sr: int, segments: list, level: float, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise bursts (fricative-like) at ``level`` RMS times a random -14..-6 dB."""
    sos = _fricative_filter(sr)
    out = np.zeros(n)
    for start, end in segments:
        a, b = int(start * sr), min(int(end * sr), n)
        if b - a > 8:
            burst = signal.sosfilt(sos, rng.standard_normal(b - a)) * np.sin(np.pi * np.arange(b - a) / (b - a))
            out[a:b] += burst / (np.std(burst) + 1e-12) * level * 10 ** (rng.uniform(-14, -6) / 20)
    return out


def synthesize_clip(
    speaker: SpeakerProfile, emotion: str, *, sampling_rate: int = 16000, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """One synthetic utterance of ``speaker`` in ``emotion``, as float32 samples in [-1, 1].

    Args:
        speaker: A voice from :func:`speaker_profiles`.
        emotion: A name in :data:`SUPPORTED_EMOTIONS`.
        sampling_rate: Samples per second.
        seed: Seed (or seed sequence) of this clip's randomness; the same seed gives the same samples.

    Returns:
        A 1-D float32 array of 1.5-3 s.

    Example:
        >>> voice = speaker_profiles(2)[0]
        >>> wave = synthesize_clip(voice, "angry", seed=1)
        >>> 1.5 <= wave.size / 16000 <= 3.0
        True
    """
    rng = np.random.default_rng(seed)
    cues = _clip_cues(speaker, EMOTION_PROFILES[emotion], rng)
    n = int(cues["duration"] * sampling_rate)
    voiced, fricative = _segments(cues["duration"], cues["rate"], rng)
    speech = _voiced_speech(n, sampling_rate, voiced, speaker, cues, rng)
    speech *= 10 ** (cues["level"] / 20) / np.sqrt(np.mean(speech**2))
    active = np.abs(speech) > 0
    speech += _fricatives(n, sampling_rate, fricative, np.sqrt(np.mean(speech[active] ** 2)), rng)
    hum = signal.lfilter([1.0], [1.0, -0.7], rng.standard_normal(n))  # light, slightly low-pass room noise
    speech += hum / np.std(hum) * 10 ** (rng.uniform(-62, -50) / 20)
    if np.max(np.abs(speech)) > 0.98:  # soft-limit rare peaks rather than scale the clip (keeps its loudness)
        speech = 0.98 * np.tanh(speech / 0.98)
    return speech.astype(np.float32)


def _positive_int(name: str, value: object, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CorpusError(f"make_synthetic_corpus: {name} must be an integer >= {minimum}, got {value!r}. {fix}")
    return int(value)


def _check_emotions(emotions: str | Sequence[str]) -> tuple[str, ...]:
    """Canonical names, in canonical order, of the requested emotions; CorpusError if any is unsupported."""
    if isinstance(emotions, str):
        requested = EMOTION_SETS.get(emotions) or [part for part in emotions.split(",") if part.strip()]
    else:
        requested = list(emotions)
    names, unsupported = set(), []
    for raw in requested:
        try:
            names.add(canonical_emotion(str(raw)))
        except CorpusError:
            unsupported.append(raw)
    unsupported += sorted(names - set(SUPPORTED_EMOTIONS))
    if unsupported or not names:
        raise CorpusError(
            f"make_synthetic_corpus: emotions={emotions!r} has {unsupported or 'no emotion'}; expected emotions "
            f"the synthetic corpus can speak (those with a cue profile). Choose among {list(SUPPORTED_EMOTIONS)}, "
            f"or a subset name such as '4class' or 'ravdess8'."
        )
    return sort_emotions(names)


def _corpus_matches(root: Path, params: dict) -> bool:
    """Whether ``root`` holds a complete synthetic corpus made with exactly ``params``."""
    try:
        if json.loads((root / "synthetic.json").read_text()) != params:
            return False
        with open(root / "manifest.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, ValueError):
        return False
    expected = params["n_speakers"] * params["clips_per_speaker_per_emotion"] * len(params["emotions"])
    return len(rows) == expected and all((root / row["path"]).is_file() for row in rows)


def _write_corpus(target: Path, params: dict) -> None:
    """Write every clip, then ``manifest.csv``, then ``synthetic.json`` (last: it marks a finished corpus)."""
    rows, sr = [], params["sampling_rate"]
    for index, speaker in enumerate(speaker_profiles(params["n_speakers"], params["seed"])):
        (target / speaker.name).mkdir()
        for emotion in params["emotions"]:
            for take in range(params["clips_per_speaker_per_emotion"]):
                # Each clip's seed depends only on who says what, so corpora of other sizes share clips.
                wave = synthesize_clip(speaker, emotion, sampling_rate=sr,
                                       seed=(params["seed"], 1, index, EMOTIONS.index(emotion), take))
                path = f"{speaker.name}/{speaker.name}_{emotion}_{take + 1:02d}.wav"
                sf.write(str(target / path), wave, sr, subtype="PCM_16")
                rows.append({"path": path, "label": emotion, "speaker": speaker.name, "gender": speaker.gender})
    with open(target / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker", "gender"])
        writer.writeheader()
        writer.writerows(rows)
    (target / "synthetic.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def _check_replaceable(root: Path) -> None:
    """Refuse to overwrite anything but an empty folder or an earlier synthetic corpus (replacing one deletes it)."""
    if root.is_file() or (root.is_dir() and any(root.iterdir()) and not _only_an_earlier_corpus(root)):
        raise CorpusError(
            f"make_synthetic_corpus: root {str(root)!r} exists and is not a synthetic corpus (its synthetic.json is "
            f"missing or not ser_hf's, or it holds files a synthetic corpus does not write); refusing to overwrite "
            f"it. Pass a new or empty folder as root."
        )


def _only_an_earlier_corpus(root: Path) -> bool:
    """Whether ``root`` holds ser_hf's ``synthetic.json`` and nothing but the files its manifest lists.

    A file of the user's that merely happens to be called ``synthetic.json`` must not get their folder deleted, nor
    may anything they put inside an earlier corpus.
    """
    try:
        params = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
        with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
            listed = {row["path"] for row in csv.DictReader(handle)}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(params, dict) or params.get("synthetic") is not True or "version" not in params:
        return False
    allowed = {"manifest.csv", "synthetic.json"} | listed | {str(Path(path).parent) for path in listed}
    for folder, subfolders, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        if any(str(relative / name) not in allowed for name in (*subfolders, *files)):
            return False
    return True


def _install(built: Path, root: Path, params: dict) -> None:
    """Move the finished corpus into place with a rename, so ``root`` never holds half a corpus."""
    stale = None
    if root.is_dir():
        stale = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
        os.replace(root, stale / "corpus")
    try:
        os.rename(built, root)
    except OSError:
        if not _corpus_matches(root, params):  # not a concurrent run that just built the same corpus
            raise
    finally:
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)


def make_synthetic_corpus(
    root: str | Path,
    *,
    n_speakers: int = 8,
    clips_per_speaker_per_emotion: int = 6,
    emotions: str | Sequence[str] = ("neutral", "happy", "sad", "angry"),
    sampling_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write (or reuse) a synthetic emotional-speech corpus under ``root`` and return ``root``.

    ``root`` gets one folder of 16-bit mono WAV files per speaker, a ``manifest.csv`` (columns
    ``path,label,speaker,gender``, paths relative to it) that ``load_corpus("manifest", root)`` reads,
    and a ``synthetic.json`` with the parameters, :data:`SYNTHETIC_VERSION` and ``"synthetic": true``.
    A corpus already there with the same parameters is reused as is. A new one is written to a temporary
    sibling folder and renamed into place, so an interrupted run never leaves half a corpus.

    Args:
        root: Folder to write; must be new, empty, or an earlier synthetic corpus (which is replaced).
        n_speakers: Number of speakers (at least 2, for speaker-independent splits); genders alternate.
        clips_per_speaker_per_emotion: Clips each speaker says in each emotion.
        emotions: Emotions to include: names in :data:`SUPPORTED_EMOTIONS` (any known spelling), or a
            subset name such as ``"4class"`` or ``"ravdess8"``.
        sampling_rate: Samples per second (at least 8000).
        seed: Non-negative seed; the same parameters give byte-identical files.

    Returns:
        ``root`` as an absolute :class:`~pathlib.Path`.

    Raises:
        CorpusError: an argument out of range, an unsupported emotion, or a ``root`` holding other data.

    Example:
        >>> from ser_hf.corpora import load_corpus
        >>> root = make_synthetic_corpus("/tmp/synthetic_tiny", n_speakers=2, clips_per_speaker_per_emotion=1)  # doctest: +SKIP
        >>> len(load_corpus("manifest", root))  # doctest: +SKIP
        8
    """
    params = {
        "synthetic": True,
        "version": SYNTHETIC_VERSION,
        "n_speakers": _positive_int("n_speakers", n_speakers, 2, "Speaker-independent splits need at least 2."),
        "clips_per_speaker_per_emotion": _positive_int(
            "clips_per_speaker_per_emotion", clips_per_speaker_per_emotion, 1, "Pass a whole number such as 6."),
        "emotions": list(_check_emotions(emotions)),
        "sampling_rate": _positive_int("sampling_rate", sampling_rate, 8000, "Use e.g. 16000 (the default)."),
        "seed": _positive_int("seed", seed, 0, "Pass a non-negative whole number such as 0."),
    }
    root = check_folder_path(root, argument="the synthetic corpus folder (--data-dir, data_dir)",
                             what="a synthetic corpus", needs_utf8="soundfile", error=CorpusError)
    root = Path(os.path.abspath(root))
    if _corpus_matches(root, params):
        return root
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    default_permissions(built)  # mkdtemp's 0700 would stay the corpus folder's once it is renamed into place
    try:
        _write_corpus(built, params)
        _install(built, root, params)
    finally:
        shutil.rmtree(built, ignore_errors=True)  # gone after a successful rename; else a partial build
    return root
