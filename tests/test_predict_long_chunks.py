"""predict_long prepares and scores voiced windows a few batches at a time: bounded memory, unchanged results."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_hf.audio import AudioPreprocessor
from ser_hf.inference import window_chunks
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.testing.models import tiny_classifier

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000
BATCH = 2  # so that a few seconds of 1 s windows span several chunks of one batch
EVERY_WINDOW = 10**9  # CHUNK_BATCHES that puts every window in one chunk, as predict_long scored them before

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # Whisper batches windows (fixed-length input, padding exact), so chunks must keep its batches whole.
    return tiny_classifier("whisper", tmp_path_factory.mktemp("chunks"), FOUR)


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return EmotionRecognizer.from_pretrained(checkpoint, batch_size=BATCH)


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def _predict_long(recognizer, monkeypatch, chunk_batches: int, *args, **kwargs) -> dict:
    monkeypatch.setattr(window_chunks, "CHUNK_BATCHES", chunk_batches)
    return recognizer.predict_long(*args, **kwargs)


# 1 s windows every 1 s: one voiced window per second. Chunks of 1 batch (2 windows) end inside the recording, at its
# last window, after a recording of one window, or never (every window silent).
@pytest.mark.parametrize("seconds", [1, 2, 3, 4, 5])
def test_chunked_windows_score_exactly_as_all_at_once(recognizer, monkeypatch, seconds):
    wave = _voice(seconds)
    expected = _predict_long(recognizer, monkeypatch, EVERY_WINDOW, wave, window=1.0, hop=1.0)
    assert len(expected["timeline"]) == seconds
    assert _predict_long(recognizer, monkeypatch, 1, wave, window=1.0, hop=1.0) == expected


def test_gated_and_overlapping_windows_keep_their_order(recognizer, monkeypatch):
    wave = np.concatenate([_voice(3.0, seed=1), np.zeros(2 * RATE, np.float32), _voice(3.5, seed=2)])
    options = {"window": 1.0, "hop": 0.5, "vad_threshold_db": -40, "top_k": 2}
    expected = _predict_long(recognizer, monkeypatch, EVERY_WINDOW, wave, **options)
    chunked = _predict_long(recognizer, monkeypatch, 1, wave, **options)
    assert chunked == expected
    starts = [window["start"] for window in chunked["timeline"]]
    assert starts == sorted(starts) and len(starts) > 2 * BATCH and chunked["skipped"]
    nothing = _predict_long(recognizer, monkeypatch, 1, np.zeros(3 * RATE, np.float32), window=1.0)
    assert (nothing["timeline"], nothing["overall"]) == ([], None)


@pytest.mark.parametrize("setup", [{"preprocessor": AudioPreprocessor(sampling_rate=RATE, normalize="peak")},
                                   {"test_time_copies": {"speed": [0.9]}}], ids=["peak-normalised", "speed-copy"])
def test_cleaned_windows_and_copies_score_exactly_as_all_at_once(checkpoint, monkeypatch, setup):
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, batch_size=BATCH, **setup)
    wave = _voice(5.0, seed=3)
    expected = _predict_long(recognizer, monkeypatch, EVERY_WINDOW, wave, window=1.0, hop=0.5)
    assert _predict_long(recognizer, monkeypatch, 1, wave, window=1.0, hop=0.5) == expected


def test_windows_are_prepared_a_chunk_at_a_time(recognizer, monkeypatch):
    """No more windows are prepared and waiting to be scored than a chunk holds (before, every voiced window of the
    recording was prepared before the first was scored)."""
    prepared, waiting = [0], []
    prepare, predict_waves = recognizer.prepare, recognizer.predict_waves

    def counting_prepare(wave):
        prepared[0] += 1
        return prepare(wave)

    def counting_predict_waves(waves, progress=False):
        waiting.append(prepared[0] - sum(waiting))  # prepared since the last scoring: the windows handed over now
        assert len(waves) == waiting[-1]
        return predict_waves(waves, progress=progress)

    monkeypatch.setattr(recognizer, "prepare", counting_prepare)
    monkeypatch.setattr(recognizer, "predict_waves", counting_predict_waves)
    monkeypatch.setattr(window_chunks, "CHUNK_BATCHES", 2)
    result = recognizer.predict_long(_voice(9.0), window=1.0, hop=1.0)
    assert len(result["timeline"]) == prepared[0] == sum(waiting) == 9
    assert waiting == [4, 4, 1]  # two batches of two windows at a time, the last chunk what is left


def test_peak_memory_is_one_chunk_of_prepared_windows_not_the_recording_again(checkpoint, monkeypatch,
                                                                             python_memory_peak):
    # Peak normalisation copies every window: 30 s in 3 s windows every 0.25 s holds 109 windows, 20 MB of copies.
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, batch_size=BATCH,
                                                   preprocessor=AudioPreprocessor(sampling_rate=RATE, normalize="peak"))
    wave = _voice(30.0, seed=4)
    copies_mb = 109 * 3 * RATE * 4 / 2**20
    with python_memory_peak() as one_batch:  # the floor: Whisper's features of a batch of windows padded to 30 s
        recognizer.predict([wave[:3 * RATE]] * BATCH)
    monkeypatch.setattr(window_chunks, "CHUNK_BATCHES", 1)
    with python_memory_peak() as long:
        result = recognizer.predict_long(wave, window=3.0, hop=0.25)
    assert len(result["timeline"]) == 109
    assert long["megabytes"] < one_batch["megabytes"] + copies_mb / 4, (
        f"{long['megabytes']:.1f} MB traced, {one_batch['megabytes']:.1f} MB for one batch, {copies_mb:.1f} MB of "
        f"copies")


def test_progress_bar_counts_every_window_a_chunk_at_a_time(recognizer, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, enabled, **kwargs):
            self.enabled, self.kwargs, self.steps = enabled, kwargs, []
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.steps.append(n)

    monkeypatch.setattr(window_chunks, "progress_bar", Bar)
    monkeypatch.setattr(window_chunks, "CHUNK_BATCHES", 1)
    wave = np.concatenate([_voice(3.0), np.zeros(2 * RATE, np.float32)])
    recognizer.predict_long(wave, window=1.0, hop=1.0, progress=True)
    (bar,) = bars
    # 5 windows, the last 2 silent (gated, not scored): the bar moves when a chunk (2 windows) is scored, then by the rest
    assert (bar.enabled, bar.kwargs["total"], bar.steps) == (True, 5, [2, 3])


class _LearningScorer:
    """A scorer that reads levels (as a stream's online speaker does): what it is fed, in which calls."""

    reads_levels = True
    summary = {"speaker": "anyone", "adapted": True}

    def __init__(self, recognizer):
        self.recognizer, self.calls = recognizer, []

    def score(self, waves, batch_size=8, levels=None):
        self.calls.append(([wave.copy() for wave in waves], list(levels)))
        return self.recognizer.predict_waves(waves), True


def test_a_scorer_that_learns_online_sees_every_window_once_in_time_order(recognizer, monkeypatch):
    wave = np.concatenate([_voice(2.0, seed=5), np.zeros(RATE, np.float32), _voice(3.0, seed=6)])
    fed = {}
    for chunk_batches in (EVERY_WINDOW, 1):
        scorer = _LearningScorer(recognizer)
        monkeypatch.setattr(recognizer, "_speaker_scorer", lambda speaker, scorer=scorer: scorer)
        result = _predict_long(recognizer, monkeypatch, chunk_batches, wave, window=1.0, hop=1.0, speaker="anyone")
        fed[chunk_batches] = scorer.calls
        assert result["adapted"] and all(window["adapted"] for window in result["timeline"])
    assert [len(waves) for waves, _ in fed[1]] == [2, 2, 1] and len(fed[EVERY_WINDOW]) == 1
    (all_waves, all_levels), = fed[EVERY_WINDOW]
    assert sum((levels for _, levels in fed[1]), []) == all_levels
    chunked_waves = [w for waves, _ in fed[1] for w in waves]
    assert all(np.array_equal(a, b) for a, b in zip(chunked_waves, all_waves, strict=True))


def test_an_enrolled_speakers_timeline_is_the_same_in_chunks(tiny_adaptive_checkpoint, monkeypatch):
    from ser_hf.audio import load_audio

    corpus, checkpoint = tiny_adaptive_checkpoint
    recognizer = EmotionRecognizer.from_pretrained(checkpoint, batch_size=BATCH)
    clips = [row["audio"] for row in corpus if row["speaker"] == "SM3"]
    recognizer.enroll("SM3", clips[:4])
    audio = np.concatenate([load_audio(clip) for clip in clips[4:8]])
    expected = _predict_long(recognizer, monkeypatch, EVERY_WINDOW, audio, window=0.5, hop=0.25, speaker="SM3")
    chunked = _predict_long(recognizer, monkeypatch, 1, audio, window=0.5, hop=0.25, speaker="SM3")
    assert len(expected["timeline"]) > 2 * BATCH and expected["adapted"]
    assert chunked == expected


# ----------------------------------------------------------------------------------- a file read block by block


def _recording_file(path, rate: int = 44100, channels: int = 2):
    """Voice, silence and voice, not at the model's rate and in stereo, so every block is downmixed and resampled."""
    from ser_hf.audio import resample

    wave = np.concatenate([_voice(3.0, seed=7), np.zeros(2 * RATE, np.float32), _voice(2.6, seed=8)])
    wave = resample(wave, RATE, rate)
    sf.write(path, np.stack([wave * (0.5 + 0.5 * c) for c in range(channels)], axis=1), rate, subtype="FLOAT")
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    """Decode blocks of 1024 frames (64 ms at 16 kHz): several per window, so windows are cut across blocks."""
    from ser_hf.inference import recording_windows

    monkeypatch.setattr(recording_windows, "BLOCK_BYTES", 1024)


def test_a_files_blocks_are_the_samples_load_audio_gives(tmp_path):
    from ser_hf.audio import load_audio
    from ser_hf.audio.decoding import mono_blocks

    for rate, channels in ((44100, 2), (16000, 1), (8000, 1)):
        path = _recording_file(tmp_path / f"r{rate}.wav", rate, channels)
        blocks = list(mono_blocks(path, RATE, block_bytes=1024))
        assert len(blocks) > 10
        np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, RATE))


@pytest.mark.parametrize("options", [{"window": 1.0, "hop": 0.5, "vad_threshold_db": -40, "top_k": 2},
                                     {"window": 3.0, "hop": 1.0, "vad_threshold_db": None},
                                     {"window": 2.0, "hop": 2.0}], ids=["overlapping, gated", "every window", "tiled"])
def test_a_file_scores_exactly_as_its_samples_held_in_memory(recognizer, monkeypatch, tmp_path, small_blocks, options):
    path = _recording_file(tmp_path / "interview.wav")
    expected = _predict_long(recognizer, monkeypatch, 1, recognizer.load_raw(path), **options)
    assert _predict_long(recognizer, monkeypatch, 1, path, **options) == expected
    assert expected["timeline"] and expected["duration"] == pytest.approx(7.6, abs=1e-3)


def test_a_files_windows_are_scored_while_it_is_decoded(recognizer, monkeypatch, tmp_path, small_blocks):
    """The file is never held whole: its first windows are scored before its last block is decoded (the second
    time; the first decode only measures it)."""
    from ser_hf.inference import recording_windows

    path, events = _recording_file(tmp_path / "interview.wav"), []
    blocks, score = recording_windows.mono_blocks, recognizer._score_windows

    def logged_blocks(*args):
        events.append("decode")
        for block in blocks(*args):
            events.append("block")
            yield block

    def logged_score(chunk, *args):
        events.append("score")
        return score(chunk, *args)

    monkeypatch.setattr(recording_windows, "mono_blocks", logged_blocks)
    monkeypatch.setattr(recognizer, "_score_windows", logged_score)
    _predict_long(recognizer, monkeypatch, 1, path, window=1.0, hop=1.0)
    second = events[events.index("decode", 1):]
    assert "score" not in events[:events.index("decode", 1)]  # measuring it scores nothing
    assert second.index("score") < len(second) - 1 - second[::-1].index("block")  # scored before the last block


def test_a_file_that_shrinks_between_its_two_reads_is_refused_naming_it(recognizer, monkeypatch, tmp_path):
    from ser_hf.errors import AudioError
    from ser_hf.inference import recording_windows

    path, reads = _recording_file(tmp_path / "growing.wav"), []
    blocks = recording_windows.mono_blocks

    def shrinking(*args):  # the second read stops half way, as if the file had been cut meanwhile
        reads.append(1)
        samples = np.concatenate(list(blocks(*args)))
        yield samples if len(reads) == 1 else samples[: samples.size // 2]

    monkeypatch.setattr(recording_windows, "mono_blocks", shrinking)
    with pytest.raises(AudioError, match=r"growing\.wav' decoded to 60800 samples at 16000 Hz the second time it was "
                                         r"read, 121600 the first: it changed while it was scored"):
        recognizer.predict_long(path, window=1.0, hop=1.0)
