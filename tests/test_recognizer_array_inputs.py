"""EmotionRecognizer's array inputs and options are held to the rules files and the HTTP service enforce.

Integer PCM is scaled as soundfile scales a WAV file; other dtypes, samples beyond 1e4, float arrays that are integer
PCM not scaled (beyond 16, or whole numbers beyond 1: a file is held to its decoder's rules only), sampling rates
outside 1000-384000 Hz, audio shorter than 0.1 s and out-of-range window/hop/vad_threshold_db/top_k values get an
error naming the argument (never a raw numpy/soxr error or a silent wrong answer).
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from ser_hf.audio import AudioPreprocessor, array_to_mono, check_sampling_rate, float_samples, load_audio
from ser_hf.errors import AudioError, SERError
from ser_hf.inference import clip_inputs
from ser_hf.inference.enrollment_inputs import enrollment_inputs
from ser_hf.inference.jobs import predict_files, read_records
from ser_hf.inference.recognizer import EmotionRecognizer

FOUR = ["neutral", "happy", "sad", "angry"]
RATE = 16000

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def recognizer(four_class_recognizer):
    return four_class_recognizer


@pytest.fixture(scope="module")
def wave(noise_wave):
    return noise_wave


def _scores(result):
    return pytest.approx(result["scores"], abs=1e-6)


# --- defect 1: dtypes and sample range ---------------------------------------------------------------------


@pytest.mark.parametrize("subtype, dtype", [("PCM_16", np.int16), ("PCM_32", np.int32)])
def test_integer_pcm_is_scaled_as_its_wav_file(recognizer, wave, tmp_path, subtype, dtype):
    path = tmp_path / "pcm.wav"
    sf.write(path, wave, RATE, subtype=subtype)
    pcm, _ = sf.read(path, dtype=dtype.__name__)
    assert recognizer.predict(pcm)["scores"] == _scores(recognizer.predict(str(path)))
    np.testing.assert_allclose(float_samples(pcm, "x"), load_audio(path), atol=1e-7)
    # A stream takes int16 chunks as the WebSocket does (scaled by 32768).
    ints, floats = recognizer.stream(window=0.5, hop=0.5), recognizer.stream(window=0.5, hop=0.5)
    got = ints.push(pcm) + ints.flush()
    expected = floats.push(load_audio(path)) + floats.flush()
    assert [w["scores"] for w in got] == [_scores(w) for w in expected] and got


@pytest.mark.parametrize("make, found", [
    (lambda w: (w * 127 + 128).astype(np.uint8), r"dtype uint8.*\(wave.astype\(np.float32\) - 128\) / 128"),
    (lambda w: (w * 32767).astype(np.uint16), "dtype uint16.*Unsigned PCM"),
    (lambda w: (w * 32767).astype(np.int64), "dtype int64.*No PCM format has 64-bit"),
    (lambda w: w > 0, "dtype bool.*Pass numbers"),
    (lambda w: w.astype(np.complex64), r"dtype complex64.*wave.real"),
    (lambda w: w.astype(object), "dtype object"),
    (lambda w: w.astype(str), "dtype <U"),
    (lambda w: w.astype(bytes), "dtype |S"),
])
def test_other_dtypes_are_refused(recognizer, wave, make, found):
    bad = make(wave)
    match = "the audio array has dtype .*expected float samples within \\[-1, 1\\] or signed integer PCM"
    for call in (recognizer.predict, recognizer.predict_long, lambda b: recognizer.predict((b, 8000))):
        with pytest.raises(AudioError, match=match):
            call(bad)
        with pytest.raises(AudioError, match=found.replace("|", r"\|")):
            call(bad)
    with pytest.raises(AudioError, match="the chunk given to stream.push has dtype"):
        recognizer.stream().push(bad)


@pytest.mark.parametrize("scale, dtype", [(1e6, np.float32), (1e6, np.float64), (1e300, np.float64)])
def test_samples_beyond_full_scale_are_refused_as_files_are(recognizer, wave, scale, dtype):
    loud = wave.astype(dtype) * scale
    for call in (recognizer.predict, recognizer.predict_long, recognizer.load):
        with pytest.raises(AudioError, match=r"the audio array has samples as large as .*divided by 32768"):
            call(loud)
    with pytest.raises(AudioError, match="the chunk given to stream.push has samples as large as"):
        recognizer.stream().push(loud)
    with pytest.raises(AudioError, match="the audio array at index 1 contains NaN or infinite samples"):
        recognizer.predict([wave, np.full(RATE, np.nan, np.float32)])
    # Float headroom up to 16 (+24 dB) is accepted; a file's samples are held to its decoder's 1e4 alone.
    assert recognizer.predict(wave * 30)["label"] in FOUR


# --- defect 2: sampling rates --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -16000, None, float("nan"), float("inf"), 1, 999, 384001, 22050.5, "16000",
                                  True, np.float64("nan"), [16000]])
def test_bad_sampling_rates_are_refused(recognizer, wave, rate):
    with pytest.raises(AudioError, match=r"The sampling rate of the audio array \(the tuple's second item\) must be a "
                                         r"whole number of Hz from 1000 to 384000"):
        recognizer.predict((wave, rate))
    if rate is not None:  # a stream's default: the model's rate
        with pytest.raises(AudioError, match=r"stream\(sampling_rate=...\) must be a whole number of Hz from 1000"):
            recognizer.stream(sampling_rate=rate)


def test_good_sampling_rates_are_accepted(recognizer, wave):
    assert check_sampling_rate(np.int64(44100), "x") == 44100 and check_sampling_rate(48000.0, "x") == 48000
    assert recognizer.predict((wave, np.int32(16000)))["scores"] == _scores(recognizer.predict(wave))
    assert recognizer.stream(sampling_rate=1000).push(np.zeros(100, np.float32)) == []


def test_duration_is_checked_before_resampling(recognizer, monkeypatch):
    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled before the duration check")

    monkeypatch.setattr(clip_inputs, "resample", no_resampling)
    with pytest.raises(AudioError, match=r"the audio array lasts 301.0 s \(301000 samples at 1000 Hz\); expected "
                                         r"at most 300 s for one clip. Cut it, or score it in windows with predict_long"):
        recognizer.predict((np.zeros(301_000, np.float32), 1000))
    with pytest.raises(AudioError, match=r"lasts 50.0 ms .*expected at least 100 ms .*Pad it, or drop it"):
        recognizer.predict_long((np.zeros(2205, np.float32), 44100))


def test_two_arrays_in_a_tuple(recognizer, wave):
    with pytest.raises(AudioError, match=r"got an array of shape \(16000,\). Pass several clips as a list"):
        recognizer.predict((wave, wave))
    with pytest.raises(AudioError, match=r"a tuple input must be \(array, sampling_rate\), got a tuple of \(ndarray, "
                                         r"ndarray, ndarray\). Pass several clips as a list"):
        recognizer.predict((wave, wave, wave))


# --- defect 3: channels --------------------------------------------------------------------------------------


def test_channels_first_and_frames_first_are_both_averaged(recognizer, wave):
    other = np.roll(wave, 100)
    mono = (wave + other) / 2
    expected = recognizer.predict(mono)
    channels_first = np.stack([wave, other])  # librosa's (channels, frames)
    assert recognizer.predict(channels_first)["scores"] == _scores(expected)
    assert recognizer.predict(channels_first.T)["scores"] == _scores(expected)  # soundfile's (frames, channels)
    assert recognizer.predict((channels_first.astype(np.float64), RATE))["scores"] == _scores(expected)
    long = recognizer.predict_long(np.stack([wave, other] * 3).T, window=0.5, hop=0.5)  # 6 channels
    assert long["duration"] == pytest.approx(1.0) and len(long["timeline"]) == 2
    np.testing.assert_allclose(array_to_mono(channels_first, "x"), mono, atol=1e-7)


def test_clips_stacked_into_one_array_are_refused_not_averaged(recognizer, wave):
    """np.stack of 3 clips was read as 3 channels of one recording and scored as their average, without a word
    (pipeline() refuses every 2-D array): only 1 or 2 rows are taken as (channels, frames). librosa (mono=False) and
    torchaudio return (channels, frames) for every channel count, so the message says so and gives wave.T."""
    stacked = np.stack([wave, np.roll(wave, 100), np.roll(wave, 200)])
    with pytest.raises(AudioError, match=r"the audio array has shape \(3, 16000\): 3 rows of 16000 samples, which "
                                         r"look like 3 clips stacked .*Pass the clips as a list \(list\(wave\)\) "
                                         r"to score each, or, if they are 3 channels of one recording \(librosa with "
                                         r"mono=False and torchaudio return \(channels, frames\) for any number of "
                                         r"channels\), pass wave.T, as \(frames, channels\)"):
        recognizer.predict(stacked)
    assert len(recognizer.predict(list(stacked))) == 3
    np.testing.assert_allclose(array_to_mono(stacked.T, "x"), stacked.mean(axis=0), atol=1e-7)


@pytest.mark.parametrize("shape", [(100, 100), (2, 2, 8000), (0,), (0, 2), ()])
def test_shapes_that_are_not_one_recording_are_refused(recognizer, shape):
    with pytest.raises(AudioError, match=re.escape(f"the audio array has shape {shape}; expected a non-empty 1-D")):
        recognizer.predict(np.zeros(shape, np.float32))


# --- defect 4: window, hop, gate, top_k; audio shorter than a clip ----------------------------------------------


@pytest.mark.parametrize("options, match", [
    ({"top_k": -1}, r"top_k must be a positive integer \(>= 1\), got -1; pass None to keep every emotion"),
    ({"top_k": 0}, "top_k must be a positive integer .*got 0"),
    ({"top_k": 2.5}, "top_k must be a positive integer .*got 2.5"),
    ({"top_k": "2"}, "top_k must be a positive integer .*got '2'"),
    ({"top_k": True}, "top_k must be a positive integer .*got True"),
    ({"vad_threshold_db": 10}, r"vad_threshold_db must be a level in dB in \[-200, 0\], got 10; e.g. -40"),
    ({"vad_threshold_db": float("nan")}, "vad_threshold_db must be .*got nan"),
    ({"vad_threshold_db": -201}, "vad_threshold_db must be .*got -201"),
    ({"vad_threshold_db": "-40"}, "vad_threshold_db must be .*got '-40'"),
    ({"window": float("inf")}, r"window must be a number of seconds in \[0.1, 300\], got inf; it is scored as one"),
    ({"window": 1e-6, "hop": 1e-6}, "window must be .*got 1e-06"),
    ({"window": 0.05, "hop": 0.05}, "window must be .*got 0.05"),
    ({"window": 301.0}, "window must be .*got 301.0"),
    ({"window": "3"}, "window must be .*got '3'"),
    ({"window": 3.0, "hop": 1e-6}, r"hop must be a number of seconds in \[0.1, 3\], got 1e-06"),
    ({"window": 1.0, "hop": 0.01}, r"hop must be .* in \[0.1, 1\], got 0.01"),
    ({"window": 1.0, "hop": 2.0}, "hop must be .*got 2.0; a window starts every hop seconds"),
    ({"hop": float("nan")}, "hop must be .*got nan"),
])
def test_bad_options_are_refused_before_any_scoring(recognizer, wave, monkeypatch, options, match):
    monkeypatch.setattr(recognizer, "_score_windows", lambda *a: pytest.fail("scored before refusing"))
    with pytest.raises(SERError, match=match):
        recognizer.predict_long(wave, **options)
    with pytest.raises(SERError, match=match):
        recognizer.stream(**options)
    if set(options) == {"top_k"}:
        with pytest.raises(SERError, match=match):
            recognizer.predict(wave, **options)
        with pytest.raises(SERError, match=match):
            recognizer.result(np.full(4, 0.25), **options)


def test_top_k_keeps_that_many_everywhere(recognizer, wave):
    for top_k in (1, np.int64(2)):
        long = recognizer.predict_long(wave, window=0.5, hop=0.5, top_k=top_k)
        assert len(long["overall"]["scores"]) == top_k and all(len(w["scores"]) == top_k for w in long["timeline"])
        stream = recognizer.stream(window=0.5, hop=0.5, top_k=top_k)
        assert all(len(w["scores"]) == top_k for w in stream.push(wave) + stream.flush())
    assert len(recognizer.predict(wave, top_k=None)["scores"]) == len(FOUR)


def test_smallest_window_and_hop_are_accepted(recognizer, wave):
    result = recognizer.predict_long(wave[:4000], window=0.1, hop=0.1, vad_threshold_db=0)
    assert len(result["timeline"]) + len(result["skipped"]) == 3  # 0.25 s: two windows and the end-aligned tail


def test_audio_shorter_than_a_clip(recognizer, wave):
    with pytest.raises(AudioError, match=r"the audio array lasts 0.1 ms \(1 samples at 16000 Hz\); expected at "
                                         r"least 100 ms \(speech encoders need 25 ms for one frame\). Pad it, or drop it"):
        recognizer.predict_long(wave[:1])
    with pytest.raises(AudioError, match=r"lasts 99.9 ms \(1599 samples"):
        recognizer.predict(wave[:1599])
    # A stream ends without a window rather than scoring too little audio, as the WebSocket /stream does.
    for samples in (1, 1599):
        stream = recognizer.stream()
        assert stream.push(wave[:samples]) == [] and stream.flush() == []
    stream = recognizer.stream()
    stream.push(wave[:1600])
    assert [(w["start"], w["end"]) for w in stream.flush()] == [(0.0, 0.1)]
    assert recognizer.predict_long(wave[:1600])["timeline"][0]["end"] == pytest.approx(0.1)


# --- defect 5: stream chunks and paths -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk, match", [
    ("abc", "dtype <U3"), (b"abc", r"dtype \|S3"), ([[0.1], [0.1, 0.2]], "is not an array of samples"),
    (np.zeros((2, 800), np.float32),
     r"stream.push expects a 1-D array of samples \(one channel\), got shape \(2, 800\). Downmix it first: "
     r"chunk.mean\(axis=1\) for \(frames, channels\).*chunk.mean\(axis=0\) for \(channels, frames\)"),
])
def test_stream_push_refuses_what_is_not_samples(recognizer, chunk, match):
    with pytest.raises(AudioError, match=match):
        recognizer.stream().push(chunk)


def test_a_path_with_an_overlong_name(recognizer, tmp_path):
    path = str(tmp_path / ("a" * 300 + ".wav"))
    for call in (recognizer.predict, recognizer.predict_long, load_audio):
        with pytest.raises(AudioError, match=re.escape(f"Audio path '{path}' cannot be looked up (File name too "
                                                       f"long). Check the path")):
            call(path)


def test_a_masked_array_is_refused_not_scored_on_its_hidden_samples(recognizer, wave):
    masked = np.ma.masked_array(wave.copy(), mask=np.zeros(wave.size, dtype=bool))
    masked.data[:100], masked.mask[:100] = 1e3, True
    for call in (lambda: recognizer.predict(masked), lambda: recognizer.stream().push(masked)):
        with pytest.raises(AudioError, match=r"is a masked array; .* e.g. wave.filled\(0\)"):
            call()
    assert recognizer.predict(masked.filled(0))["label"] in FOUR


# --- the audit of session 29: inputs as pipeline() and datasets hand them over ---------------------------------


def test_integer_pcm_converted_to_float_without_scaling_is_refused(recognizer, wave):
    """A quiet 16-bit recording cast with astype(float) stays under the 1e4 sample limit, and was scored 90 dB too
    loud (a calm voice taken for shouting) without a word."""
    pcm = np.round(0.5 * wave * 32767).astype(np.int16).astype(np.float32)  # peak under 1e4
    for call in (recognizer.predict, lambda w: recognizer.stream().push(w)):
        with pytest.raises(AudioError, match=r"has float samples as large as \d+, \d+ dB above full scale \(1.0\): "
                                             r"integer PCM converted to float without being scaled.*Divide it by 32768"):
            call(pcm)
    assert float_samples(np.array([0.0, 1.0, -1.0, 0.5]), "x").dtype == np.float32  # full scale stays audio


def test_torch_tensors_are_taken_as_pipeline_takes_them(recognizer, wave):
    import torch

    expected = _scores(recognizer.predict(wave))
    for tensor in (torch.from_numpy(wave), torch.from_numpy(wave).requires_grad_(), torch.from_numpy(wave).bfloat16()):
        scores = recognizer.predict(tensor)["scores"]
        assert scores == (expected if tensor.dtype == torch.float32 else pytest.approx(expected.expected, abs=1e-2))
    assert recognizer.predict((torch.from_numpy(wave), RATE))["scores"] == expected
    stream = recognizer.stream(window=0.5, hop=0.5)
    assert len(stream.push(torch.from_numpy(wave).requires_grad_())) == 2  # a raw RuntimeError before
    with pytest.raises(AudioError, match="the audio array is a torch tensor whose values cannot be read"):
        recognizer.predict(torch.empty(RATE, device="meta"))


def test_dicts_and_bytes_are_taken_as_datasets_and_pipeline_give_them(recognizer, wave, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, wave, RATE, subtype="FLOAT")
    expected = _scores(recognizer.predict(str(path)))
    for item in ({"array": wave, "sampling_rate": RATE, "path": "clip.wav"}, {"raw": wave, "sampling_rate": RATE},
                 {"bytes": path.read_bytes(), "path": "clip.wav"}, {"bytes": None, "path": str(path)},
                 path.read_bytes()):
        assert recognizer.predict(item)["scores"] == expected
    assert [r["scores"] for r in recognizer.predict([path.read_bytes(), {"raw": wave, "sampling_rate": RATE}])] == \
        [expected, expected]
    with pytest.raises(AudioError, match=r"is a dict of samples without their 'sampling_rate'; add it"):
        recognizer.predict({"array": wave})
    with pytest.raises(AudioError, match=r"the audio array at index 1 is a dict with keys 'audio'; expected one clip"):
        recognizer.predict([wave, {"audio": wave}])
    with pytest.raises(AudioError, match=r"\(19 bytes\) cannot be decoded"):
        recognizer.predict(b"not a file of audio")


@pytest.mark.parametrize("item, hint", [
    (0.5, r"index 0: got float; .*A number is one sample, not a clip: a list given to predict\(\) is a list of clips"),
    ((x for x in [1]), r"the audio array: got generator; .*Pass the clips as a list: list\(...\)"),
    ([[0.1, 0.2]], r"index 0: got list; .*Pass the samples as one array: np.asarray"),
])
def test_inputs_of_another_kind_are_named_with_how_to_convert_them(recognizer, item, hint):
    with pytest.raises(AudioError, match=hint):
        recognizer.predict(item if not isinstance(item, float) else [item, item])


def test_an_empty_path_is_named_as_one(recognizer):
    with pytest.raises(AudioError, match="is an empty path, which names no file"):
        recognizer.predict("")


def test_predict_waves_checks_each_clip_before_the_batch_runs(recognizer, wave):
    """It used to score whatever it got: one short clip failed the whole batch with a raw torch error, an int16 clip
    was not scaled, one array was a raw ValueError."""
    with pytest.raises(AudioError, match=r"predict_waves takes a list of clips, got one array of shape \(16000,\)"):
        recognizer.predict_waves(wave)
    with pytest.raises(AudioError, match=r"waves\[1\] has shape \(300,\); predict_waves takes 1-D arrays of at least "
                                         r"1600 samples"):
        recognizer.predict_waves([wave, wave[:300]])
    with pytest.raises(AudioError, match=r"waves\[0\] has shape \(2, 16000\)"):
        recognizer.predict_waves([np.stack([wave, wave])])
    with pytest.raises(AudioError, match=r"waves\[0\] is a str; predict_waves takes 1-D arrays"):
        recognizer.predict_waves(["clip.wav"])
    pcm = np.round(wave * 32767).astype(np.int16)
    np.testing.assert_allclose(recognizer.predict_waves([pcm]), recognizer.predict_waves([pcm / 32768]), atol=1e-5)


def test_an_enrollment_given_one_clip_with_a_float_rate_is_told_to_wrap_it(wave):
    with pytest.raises(SERError, match=r"got a single \(array, rate\) pair; wrap it: enroll\('s', \[clip\]\)"):
        enrollment_inputs((wave, 16000.0), "s")
    with pytest.raises(SERError, match=r"got a single clip \(a dict of its samples\); wrap it"):
        enrollment_inputs({"array": wave, "sampling_rate": RATE}, "s")


def test_enrollment_takes_arrays_of_paths_and_names_single_clips_as_one(wave):
    """A pandas Series or numpy array of paths was "a single array" (predict_files takes them); a pair whose rate is
    text or a 0-d tensor was enrolled as two clips (a file '16000'); a memoryview was iterated byte by byte."""
    import pandas as pd
    import torch

    paths = ["a.wav", "b.wav", "c.wav"]
    for clips in (pd.Series(paths), np.array(paths), np.array(paths, dtype=object)):
        assert enrollment_inputs(clips, "s") == paths
    for rate in ("16000", torch.tensor(16000), np.array(16000)):
        with pytest.raises(SERError, match=r"got a single \(array, rate\) pair; wrap it: enroll\('s', \[clip\]\)"):
            enrollment_inputs((wave, rate), "s")
    assert enrollment_inputs(("a.wav", "b.wav"), "s") == ["a.wav", "b.wav"]  # two paths are two clips
    for clip in (memoryview(b"RIFF...."), bytearray(b"RIFF....")):
        with pytest.raises(SERError, match=r"got a single clip \(the bytes of a file\); wrap it"):
            enrollment_inputs(clip, "s")
    with pytest.raises(SERError, match=r"got a single path 'a.wav'; wrap it"):
        enrollment_inputs(np.array("a.wav"), "s")


@pytest.mark.parametrize("batch_size", [None, "8", 1.5, True, 0])
def test_a_batch_size_that_is_no_count_is_refused_when_the_recognizer_is_made(recognizer, batch_size):
    with pytest.raises(SERError, match=rf"batch_size must be a positive integer \(>= 1\), got {re.escape(repr(batch_size))}"):
        EmotionRecognizer(recognizer.model, recognizer.feature_extractor, batch_size=batch_size)


# --- the re-audit of session 29: files keep their decoder's rule; a caller's arrays, dicts and decoders -------------

UNSCALED = r"has float samples as large as [\d.]+, {found}: integer PCM converted to float without being scaled"


def test_a_float_wav_file_of_whole_numbers_is_scored_as_its_decoder_reads_it(recognizer, wave, tmp_path):
    """The unscaled-PCM check was made where every wave passes (predict_waves too), so a FLOAT WAV file of whole
    numbers (the decoder allows up to 1e4) was refused by predict, predict_long and predict_files, naming `waves[0]`
    and telling the user to pass an int16 array. Only arrays a caller converts are held to it."""
    path = tmp_path / "floatwhole.wav"
    sf.write(path, np.round(wave * 3000), RATE, subtype="FLOAT")
    decoded = load_audio(path)
    assert decoded.max() > 256 and np.array_equal(decoded, np.rint(decoded))
    scores = _scores(recognizer.predict(decoded / 3000))
    assert recognizer.predict(str(path))["scores"] == scores  # the extractor normalises the level
    assert recognizer.predict(path.read_bytes())["scores"] == scores
    assert recognizer.predict_long(str(path), window=0.5, hop=0.5)["overall"]["label"] in FOUR
    assert recognizer.predict_waves([decoded]).shape == (1, len(FOUR))
    assert predict_files(recognizer, [str(path)], tmp_path / "p.jsonl", progress=False)["predicted"] == 1
    assert [record["label"] for record in read_records(tmp_path / "p.jsonl")] == [recognizer.predict(str(path))["label"]]
    # A checkpoint's cleaning does not check the decoded samples again as a caller's array.
    cleaned = EmotionRecognizer(recognizer.model, recognizer.feature_extractor,
                                preprocessor=AudioPreprocessor(sampling_rate=RATE, normalize="peak"))
    assert cleaned.predict(str(path))["label"] in FOUR
    # Samples a service decoded from an upload say so; the same samples from a caller are refused.
    assert recognizer.load((decoded, RATE), decoded=True).size == RATE
    assert recognizer.predict_long((decoded, RATE), decoded=True)["overall"]["label"] in FOUR
    for call in (recognizer.load, lambda w: AudioPreprocessor(sampling_rate=RATE)(w, sampling_rate=RATE)):
        with pytest.raises(AudioError, match=UNSCALED.format(found=r"\d+ dB above full scale \(1.0\)")):
            call(decoded)
    assert AudioPreprocessor(sampling_rate=RATE)(path).size == RATE  # a file, through the preprocessor alone


@pytest.mark.parametrize("change", [
    lambda pcm: pcm * 0.5,  # a gain
    lambda pcm: pcm - pcm.mean(),  # DC removed
    lambda pcm: pcm + 1e-3,  # dither
    lambda pcm: np.concatenate([pcm[:100] / 32768, pcm[100:]]),  # partly scaled
])
def test_unscaled_pcm_is_refused_whether_or_not_its_samples_are_whole_numbers(recognizer, wave, change):
    """Only the exact cast was refused: the same mistake with a gain, DC removal or dither applied was scored as if
    90 dB too loud. A float array beyond 256 (48 dB over full scale) is no float recording."""
    bad = change(np.round(wave * 6000).astype(np.float32))  # a quiet 16-bit recording: peak about 2600
    match = UNSCALED.format(found=r"\d+ dB above full scale \(1.0\)") + r".*Divide it by 32768"
    for call in (recognizer.predict, lambda w: recognizer.predict((w, 8000)), lambda w: recognizer.stream().push(w),
                 lambda w: recognizer.predict({"array": w, "sampling_rate": RATE}),
                 lambda w: AudioPreprocessor(sampling_rate=RATE)(w, sampling_rate=RATE)):
        with pytest.raises(AudioError, match=match):
            call(bad)


def test_whole_numbers_just_beyond_full_scale_are_refused_and_float_headroom_is_not(recognizer, wave):
    with pytest.raises(AudioError, match=UNSCALED.format(found="all of them whole numbers")):
        recognizer.predict(np.round(wave * 300))  # a quiet 16-bit recording: peak about 120
    for loud in (wave * 30, np.clip(wave * 160, -16, 16)):  # not whole, up to 16 (+24 dB): a hot float mix
        assert recognizer.predict(loud)["label"] in FOUR


def test_a_dict_is_named_as_a_dict_and_its_list_of_samples_is_taken(recognizer, wave):
    """datasets' python format gives 'array' as a list, which was refused as "a tuple of (list, int)"; a bad rate
    was called "the tuple's second item"."""
    expected = _scores(recognizer.predict(wave))
    assert recognizer.predict({"array": wave.tolist(), "sampling_rate": RATE})["scores"] == expected
    for rate in ("16000", 16000.5, None):
        with pytest.raises(AudioError, match=r"the audio array: its 'sampling_rate' must be a whole number of Hz") as err:
            recognizer.predict({"array": wave, "sampling_rate": rate})
        assert "tuple" not in str(err.value)


def test_a_torchcodec_decoder_is_taken_as_pipeline_takes_it(recognizer, wave, monkeypatch):
    """datasets 4+ decodes an Audio cell to a torchcodec AudioDecoder, which pipeline() takes; it was refused.
    torchcodec's layout is (channels, frames) whatever the channel count, so 3 channels are averaged, not refused."""
    import torch

    channels = np.stack([wave, np.roll(wave, 100), np.roll(wave, 200)])

    class FakeDecoder:
        def get_all_samples(self):
            return SimpleNamespace(data=torch.from_numpy(channels), sample_rate=8000)

    monkeypatch.setitem(sys.modules, "torchcodec", SimpleNamespace(decoders=SimpleNamespace(AudioDecoder=FakeDecoder)))
    expected = _scores(recognizer.predict((channels.mean(axis=0), 8000)))
    assert recognizer.predict(FakeDecoder())["scores"] == expected
    assert [r["scores"] for r in recognizer.predict([FakeDecoder(), FakeDecoder()])] == [expected, expected]
    assert recognizer.predict_long(FakeDecoder(), window=0.5)["duration"] == pytest.approx(2.0)


def test_the_bytes_of_a_file_in_a_memoryview_are_a_file(recognizer, wave, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, wave, RATE)
    expected = _scores(recognizer.predict(str(path)))
    assert recognizer.predict(memoryview(path.read_bytes()))["scores"] == expected
    assert recognizer.predict({"bytes": memoryview(path.read_bytes()), "path": "clip.wav"})["scores"] == expected


def test_predict_waves_takes_an_object_array_of_clips_as_their_list(recognizer, wave):
    clips = np.empty(2, dtype=object)
    clips[0], clips[1] = wave, wave[:8000]
    np.testing.assert_allclose(recognizer.predict_waves(clips), recognizer.predict_waves([wave, wave[:8000]]))


def test_predict_waves_refuses_what_is_no_collection_naming_waves(recognizer):
    for waves, found in ((None, "None"), (3, "int"), (0.5, "float")):
        with pytest.raises(AudioError, match=rf"waves must be a list of 1-D arrays of samples at 16000 Hz, got "
                                             rf"{found}; pass \[wave\] for one clip"):
            recognizer.predict_waves(waves)


@pytest.mark.parametrize("data, rate, match", [
    (np.zeros((1, 4800), np.float32), 0, r"The sampling rate of the audio array \(a torchcodec AudioDecoder\) must be "
                                         r"a whole number of Hz from 1000 to 384000.*got 0\."),
    (np.zeros((100, 4800), np.float32), RATE, r"the audio array \(a torchcodec AudioDecoder\) decoded samples of "
                                              r"shape \(100, 4800\); expected \(channels, frames\) with 1 to 64 "
                                              r"channels"),
    (np.zeros((1, 0), np.float32), RATE, r"the audio array \(a torchcodec AudioDecoder\) decoded samples of shape "
                                         r"\(1, 0\): no samples"),
])
def test_a_torchcodec_decoder_is_held_to_a_files_rate_and_channels(recognizer, monkeypatch, data, rate, match):
    """Rate 0 was a raw ZeroDivisionError, 100 channels were averaged and scored, an empty decoder printed numpy's
    "Mean of empty slice" warning before an error that did not name the decoder."""
    import warnings

    import torch

    class FakeDecoder:
        def get_all_samples(self):
            return SimpleNamespace(data=torch.from_numpy(data), sample_rate=rate)

    monkeypatch.setitem(sys.modules, "torchcodec", SimpleNamespace(decoders=SimpleNamespace(AudioDecoder=FakeDecoder)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError, match=match):
            recognizer.predict(FakeDecoder())


def test_arrays_of_clips_and_views_of_samples_are_told_how_to_pass_them(recognizer, wave, tmp_path):
    """A numpy array of paths or of waves was told to "pass numbers"; a float memoryview was decoded as a file's bytes
    ("re-encode it")."""
    paths = [str(tmp_path / name) for name in ("a.wav", "b.wav")]
    for path in paths:
        sf.write(path, wave, RATE)
    for array, fix in ((np.array(paths), r"pass them as a list, list\(array\)"),
                       (np.array(paths, dtype=object), r"pass them as a list, list\(array\)"),
                       (np.array([p.encode() for p in paths]), r"pass them as a list of str, \[os.fsdecode\(p\)")):
        with pytest.raises(AudioError, match=r"the audio array is a numpy array of shape \(2,\) \(dtype .*\) holding "
                                             r"paths, not samples.*" + fix):
            recognizer.predict(array)
    assert [r["label"] for r in recognizer.predict(list(np.array(paths)))] == \
        [r["label"] for r in recognizer.predict(paths)]  # the fix works
    waves = np.empty(2, dtype=object)
    waves[0], waves[1] = wave, wave[:8000]
    with pytest.raises(AudioError, match=r"holding clips \(ndarray items\), not samples.*Pass the clips as a list, "
                                         r"list\(array\)"):
        recognizer.predict(waves)
    with pytest.raises(AudioError, match=r"the audio array is a memoryview of 'f' items \(shape \(16000,\)\), not the "
                                         r"bytes of an audio file.*np.asarray\(view\)"):
        recognizer.predict(memoryview(wave))
    assert recognizer.predict(np.asarray(memoryview(wave)))["scores"] == _scores(recognizer.predict(wave))


# --- the re-audit of session 30: unscaled and uncentred PCM, dicts as pipeline() reads them, objects, 0-d rates -------

GRID = UNSCALED.format(found=r"all of them on a grid of step [\d.]+ \(whole numbers after a gain, a DC shift or "
                             r"channels averaged\)") + r".*Divide it by 32768"


@pytest.mark.parametrize("change", [
    lambda pcm: pcm - pcm.mean(),  # DC removed
    lambda pcm: pcm * 1.01,  # a gain
    lambda pcm: pcm * 0.999,
    lambda pcm: np.stack([pcm, np.roll(pcm, 1)], axis=1).mean(axis=1),  # stereo averaged by the caller: x.5 values
    lambda pcm: (pcm - pcm.mean()) * 0.5 + 0.25,
])
def test_quiet_unscaled_pcm_shifted_scaled_or_averaged_is_refused(recognizer, wave, change):
    """Unscaled PCM under 256 (a recording below -42 dBFS) was refused only when every sample was a whole number: DC
    removal, a gain or averaged channels left fractions, and it was scored 90 dB too loud without a word."""
    bad = change(np.round(wave * 300).astype(np.float32))  # peak about 126
    for call in (recognizer.predict, lambda w: recognizer.stream().push(w),
                 lambda w: recognizer.predict({"array": w, "sampling_rate": RATE}),
                 lambda w: AudioPreprocessor(sampling_rate=RATE)(w, sampling_rate=RATE)):
        with pytest.raises(AudioError, match=GRID):
            call(bad)


def test_float_audio_on_no_coarse_grid_keeps_its_headroom(recognizer, wave):
    """The grid rule never takes float audio for PCM: a 16-bit recording made +30 dB hot lies on a grid of step
    0.0009, continuous float audio on none, and a three-level test signal has too few levels to be one."""
    from ser_hf.audio import caller_samples

    hot_16_bit = np.round(wave * 32767) / 32768 * 30
    for loud in (hot_16_bit, wave * 30 + 0.37, np.tile([-1.5, 0.0, 1.5], 6000)):
        assert caller_samples(loud, "x").shape == loud.shape
    assert recognizer.predict(hot_16_bit)["label"] in FOUR


@pytest.mark.parametrize("make", [
    lambda u8: u8.astype(np.float32) / 128,
    lambda u8: u8.astype(np.float32) / 255,
    lambda u8: u8.astype(np.float32),  # not scaled either: whole numbers, but centring is the first fix
])
def test_unsigned_pcm_scaled_but_not_centred_is_refused(recognizer, wave, make):
    """uint8 / 128 or / 255 (every sample >= 0, a mean of 1.0 or 0.5) was scored without a word."""
    bad = make(np.clip(wave * 127 + 128, 0, 255).astype(np.uint8))
    match = (r"has float samples that are all >= 0 \(from [\d.]+ to [\d.]+, mean [\d.]+\): unsigned PCM .*without being "
             r"centred on 0.*\(wave - 128\) / 128 for uint8 values.*wave \* 2 - 1 for values scaled to \[0, 1\]")
    for call in (recognizer.predict, lambda w: recognizer.stream().push(w), recognizer.predict_long,
                 lambda w: recognizer.predict({"raw": w, "sampling_rate": RATE})):
        with pytest.raises(AudioError, match=match):
            call(bad)
    assert recognizer.predict((bad / bad.max() * 2 - 1) * 0.5)["label"] in FOUR  # centred, it is audio


def test_a_constant_or_a_short_all_positive_array_is_not_taken_for_unsigned_pcm(recognizer, wave):
    """A constant is silence at any offset (a dead input stuck at a DC bias), and a short chunk may lie between two
    zero crossings of a low sound: neither is refused."""
    from ser_hf.audio import caller_samples

    assert recognizer.predict(np.full(RATE, 0.5, np.float32))["label"] in FOUR
    half_wave = np.abs(np.sin(np.linspace(0, np.pi, 8000))).astype(np.float32)  # 8000 samples >= 0
    assert caller_samples(half_wave, "x").size == 8000
    assert recognizer.stream().push(half_wave) == []


def test_a_dict_with_raw_and_array_is_read_as_pipeline_reads_it(recognizer, wave):
    """pipeline() takes "raw" first and "array" only when "raw" is None; "array" was taken first (another clip's
    answer), and {"array": None, "raw": wave} was refused."""
    other = np.roll(wave, 4000) * 0.5
    expected, expected_other = _scores(recognizer.predict(wave)), _scores(recognizer.predict(other))
    assert recognizer.predict({"raw": other, "array": wave, "sampling_rate": RATE})["scores"] == expected_other
    for item in ({"array": None, "raw": wave, "sampling_rate": RATE}, {"raw": None, "array": wave, "sampling_rate": RATE}):
        assert recognizer.predict(item)["scores"] == expected


def test_a_dicts_bytes_and_path_of_the_wrong_type_are_named(recognizer, wave, tmp_path):
    """A memoryview of samples in "bytes" was decoded as a file ("re-encode it"); a str, an array or None in
    "bytes" and a Path in "path" got a message listing the keys the user had given."""
    from pathlib import Path

    path = tmp_path / "clip.wav"
    sf.write(path, wave, RATE)
    expected = _scores(recognizer.predict(str(path)))
    for item in ({"path": Path(path), "bytes": None}, {"path": str(path)}, {"array": None, "path": path}):
        assert recognizer.predict(item)["scores"] == expected
    view = r"the audio array: its 'bytes' is a memoryview of '{}' items \(shape \(16000,\)\): samples, not the bytes"
    for item, match in (
        ({"bytes": memoryview(wave), "path": None}, view.format("f") + r".*\{'array': np.asarray\(value\)"),
        ({"bytes": memoryview((wave * 32767).astype(np.int16)), "path": None}, view.format("h")),
        ({"bytes": np.frombuffer(path.read_bytes(), np.uint8), "path": None},
         r"its 'bytes' is a numpy array \(dtype uint8, shape \(\d+,\)\), not the bytes of an audio file.*"
         r"value.tobytes\(\) if it holds a file's contents"),
        ({"bytes": "abc", "path": str(path)}, r"its 'bytes' is a str \(3 characters\), not the bytes.*open\(path, 'rb'\)"),
        ({"bytes": None}, r"the audio array is a dict whose 'bytes' is None, so it holds no audio"),
        ({"bytes": None, "path": None}, r"a dict whose 'bytes' and 'path' are None, so it holds no audio"),
        ({"bytes": None, "path": 3}, r"its 'path' is an int \(3\), not a path; expected the file's path as a str"),
        ({"bytes": None, "path": bytes(path)}, r"its 'path' is a bytes .*pass os.fsdecode\(path\)"),
        ({"array": str(path), "sampling_rate": RATE}, r"its 'array' is a str, not samples.*predict\(path\)"),
        ({"raw": {"array": wave, "sampling_rate": RATE}, "sampling_rate": RATE},
         r"its 'raw' is a dict, not samples.*pass the inner dict itself"),
    ):
        with pytest.raises(AudioError, match=match):
            recognizer.predict(item)


def test_an_object_array_is_named_by_what_it_holds(wave):
    """Every object array was "has dtype object ... Pass numbers", whether it held numbers, None or a dict."""
    head = r"x has dtype object; expected float samples within \[-1, 1\] or signed integer PCM.*: it holds "
    with_dict = np.stack([wave, wave], axis=1).astype(object)
    with_dict[3, 1] = {"array": wave}
    for samples, match in (
        (wave.astype(object), r"numbers as Python objects. Convert them: np.asarray\(wave, dtype=np.float32\)"),
        (np.stack([wave, wave], axis=1).astype(object), r"numbers as Python objects"),
        (np.round(wave * 2000).astype(np.int16).astype(object), r"numbers .*np.asarray\(wave, dtype=np.int16\)"),
        (np.array([0.1, None] * 800, dtype=object), r"None at index 1, not an int or float. A missing sample has no value"),
        ([0.1, 0.2, None], r"None at index 2"),
        (with_dict, r"a dict at index \(3, 1\), not an int or float"),
        (np.array([0.1, "a.wav"], dtype=object), r"a str at index 1, not an int or float"),
    ):
        with pytest.raises(AudioError, match=head + match):
            float_samples(samples, "x")


def test_what_is_no_array_is_named_by_its_type_where_samples_are_expected(recognizer, wave, tmp_path):
    from pathlib import Path

    for thing, match in ((None, r"is None, not an array of samples"),
                         ({"a": 1}, r"is a dict, not an array of samples.*item\['array'\]"),
                         (Path(tmp_path), r"is a PosixPath, not an array of samples.*load_audio\(path, sampling_rate\)"),
                         ((x for x in wave), r"is a generator, not an array of samples.*np.fromiter"),
                         (np.array(None, dtype=object), r"is None, not an array of samples")):
        if isinstance(thing, Path) and sys.platform == "win32":
            continue
        with pytest.raises(AudioError, match="x " + match):
            float_samples(thing, "x")
    with pytest.raises(AudioError, match=r"the audio array is a generator, not an array of samples"):
        recognizer.predict({"array": (x for x in wave), "sampling_rate": RATE})


def test_rates_given_as_0_d_arrays_and_tensors_are_taken_as_numpy_scalars_are(recognizer, wave):
    """np.array(16000) and torch.tensor(16000) were refused as "not a whole number" (showing an array of shape ())."""
    import torch

    expected = _scores(recognizer.predict(wave))
    for rate in (np.array(16000), torch.tensor(16000), np.array(16000.0), torch.tensor(16000.0)):
        assert recognizer.predict((wave, rate))["scores"] == expected
        assert recognizer.predict({"array": wave, "sampling_rate": rate})["scores"] == expected
        assert check_sampling_rate(rate, "x") == 16000 and type(check_sampling_rate(rate, "x")) is int
    assert recognizer.predict((torch.from_numpy(wave), torch.tensor(16000)))["scores"] == expected
    assert recognizer.stream(sampling_rate=np.array(8000)).push(wave[:400]) == []
    for rate, found in ((np.array(16000.5), r"array\(16000.5\)"), (np.array(np.nan), r"array\(nan\)"),
                        (torch.tensor(True), r"tensor\(True\)"), (np.array(True), r"array\(True\)"),
                        (np.array(10**6), r"array\(1000000\)"), (torch.tensor(999), r"tensor\(999\)"),
                        (np.array([16000]), r"an array of shape \(1,\)"), (np.array("16000"), r"array\('16000'")):
        with pytest.raises(AudioError, match=r"must be a whole number of Hz from 1000 to 384000.*got " + found):
            check_sampling_rate(rate, "x")


# --- the re-audit 30c: a dict's path, unscaled PCM up to 256, uncentred PCM resampled or short or streamed -----------

# A "recording" at full scale, and the forms the audit built of it: 8-bit, unsigned 8-bit, quiet 16-bit.
def _full_scale(wave):
    return (wave / np.abs(wave).max()).astype(np.float32)


def _uint8_over_255(wave):
    """A loud 8-bit recording, clipped as often at full scale: resampled, over 1% of it rings below 0."""
    loud = _full_scale(np.clip(wave, -0.2, 0.2))
    return (np.clip(np.round(loud * 127.5 + 127.5), 0, 255).astype(np.uint8) / 255).astype(np.float32)


def _stream_in_chunks(recognizer, samples, size=160, **options):
    stream = recognizer.stream(**options)
    results = []
    for start in range(0, len(samples), size):
        results += stream.push(samples[start:start + size])
    return results + stream.flush()


def test_a_dicts_path_relaxes_the_caller_rule_only_for_a_float_file_on_disk(recognizer, wave, tmp_path):
    """Any non-empty "path" (an id, a name not on disk, a PCM file) made a dict's samples a decoder's: unscaled 16-bit
    PCM and uncentred uint8 / 255 were scored without a word. Only a float file's header (never its samples) relaxes it."""
    import os
    from pathlib import Path

    unscaled = np.round(wave * 5000).astype(np.float32)  # peak about 2000
    pcm_file, float_file = tmp_path / "pcm.wav", tmp_path / "float.wav"
    sf.write(pcm_file, wave, RATE, subtype="PCM_16")
    sf.write(float_file, unscaled, RATE, subtype="FLOAT")
    names = ["clip.wav", "spk1_utt3", str(pcm_file), Path(pcm_file), str(tmp_path), str(tmp_path / "gone.wav")]
    if hasattr(os, "mkfifo"):  # a FIFO is never opened: it could block
        os.mkfifo(tmp_path / "fifo.wav")
        names.append(str(tmp_path / "fifo.wav"))
    for name in names:
        for key in ("array", "raw"):
            with pytest.raises(AudioError, match=UNSCALED.format(found=r"\d+ dB above full scale \(1.0\)")):
                recognizer.predict({key: unscaled, "sampling_rate": RATE, "path": name})
    with pytest.raises(AudioError, match="has float samples that are all >= 0"):
        recognizer.predict({"raw": _uint8_over_255(wave), "sampling_rate": RATE, "path": "clip.wav"})
    with pytest.raises(AudioError, match=UNSCALED.format(found=r"\d+ dB above full scale \(1.0\)")):
        recognizer.predict({"array": np.stack([unscaled, unscaled], 1), "sampling_rate": RATE, "path": "clip.wav"})
    expected = _scores(recognizer.predict(str(float_file)))
    for name in (str(float_file), float_file):
        assert recognizer.predict({"array": sf.read(float_file, dtype="float32")[0], "sampling_rate": RATE,
                                   "path": name})["scores"] == expected


@pytest.mark.parametrize("change", [
    lambda pcm: (clip_inputs.resample(pcm, RATE, 22050), 22050),  # resampled: no whole numbers left
    lambda pcm: pcm + np.random.default_rng(1).uniform(-0.5, 0.5, pcm.size).astype(np.float32),  # dither
    lambda pcm: pcm * np.minimum(1, np.minimum(np.arange(pcm.size), pcm.size - np.arange(pcm.size)) / 4000),  # fades
    lambda pcm: np.append(pcm[:1], pcm[1:] - 0.97 * pcm[:-1]),  # pre-emphasis
    lambda pcm: 0.7 * pcm + 0.3 * np.roll(pcm, 3000),  # a mix of two
])
@pytest.mark.parametrize("peak", [127, 200, 30])  # 8-bit PCM not scaled; a quiet 16-bit recording; near 16
def test_unscaled_pcm_up_to_256_is_refused_after_any_transform(recognizer, wave, change, peak):
    """Unscaled PCM peaking at 256 or less was refused only while every sample was a whole number (or on a grid):
    every 8-bit recording and quiet 16-bit resampled, dithered, faded or mixed was scored as if tens of dB louder."""
    pcm = np.round(_full_scale(wave) * peak).astype(np.float32)
    bad = change(pcm)
    samples = bad[0] if isinstance(bad, tuple) else bad
    assert np.abs(samples).max() > 16 and not np.array_equal(samples, np.rint(samples))
    with pytest.raises(AudioError, match=UNSCALED.format(found=r"\d+ dB above full scale \(1.0\)") +
                       r", which would be scored at that level.*float headroom up to 16, \+24 dB.*Divide it by 32768"):
        recognizer.predict(bad)
    with pytest.raises(AudioError, match=r"the chunk given to stream.push has float samples as large as"):
        recognizer.stream().push(samples)


def test_the_message_states_the_level_the_samples_would_be_scored_at(recognizer, wave):
    """The message said "scored as if 90 dB louder" whatever the peak; a grid at a peak of 127 is 42 dB over."""
    on_a_grid = np.round(_full_scale(wave) * 127) * 0.999
    with pytest.raises(AudioError, match=GRID) as err:
        recognizer.predict(on_a_grid)
    assert "which would be scored as audio peaking 42 dB above full scale" in str(err.value)
    assert "90 dB" not in str(err.value)


@pytest.mark.parametrize("make", [
    lambda v: (clip_inputs.resample(v, RATE, 22050), 22050),  # ringing takes a few samples below 0
    lambda v: (clip_inputs.resample(v, RATE, 24000), 24000),
    lambda v: (clip_inputs.resample(v * 255 / 128, RATE, 22050), 22050),  # uint8 / 128: a mean of 1.0
    lambda v: np.append(np.float32(-1e-4), v[1:]),  # one negative sample
    lambda v: v[8000:8000 + 4800],  # 0.3 s: under the count a lone array of unknown rate is judged on
])
def test_uncentred_unsigned_pcm_is_refused_by_its_mean_and_share_of_samples_above_0(recognizer, wave, make):
    """One negative sample (a resampler's ringing) or a clip under 8192 samples disabled the check: uint8 / 255 was
    scored as another sound."""
    bad = make(_uint8_over_255(wave))
    assert np.min(bad[0] if isinstance(bad, tuple) else bad) < 0 or len(bad) < 8192
    with pytest.raises(AudioError, match=r"has float samples that are all (but \d+ of \d+ )?>= 0 \(from [-\de.]+ to "
                                         r"[\d.]+, mean [\d.]+\): unsigned PCM .*wave \* 2 - 1 for values scaled to"):
        recognizer.predict(bad)


def test_a_stream_is_judged_for_an_offset_on_all_it_has_received(recognizer, wave):
    """Each 160-sample chunk was judged alone, so a stream of uint8 / 255 was scored window after window."""
    bad = np.tile(_uint8_over_255(wave), 2)
    match = (r"the audio pushed to the stream \(\d+ samples so far; push each chunk centred\) has float samples that "
             r"are all (but \d+ of \d+ )?>= 0 .*wave \* 2 - 1")
    with pytest.raises(AudioError, match=match):
        _stream_in_chunks(recognizer, bad)
    # Before the count a lone array is judged on has arrived, no window is scored unjudged.
    stream, received = recognizer.stream(window=0.2, hop=0.2), 0
    with pytest.raises(AudioError, match=match):
        for start in range(0, bad.size, 160):
            stream.push(bad[start:start + 160])
            received += 160
    assert received <= 3200  # the first 0.2 s window
    with pytest.raises(AudioError, match=match):  # a resampled stream too
        _stream_in_chunks(recognizer, clip_inputs.resample(bad, RATE, 22050), sampling_rate=22050)


def test_float_audio_with_headroom_is_not_taken_for_pcm_on_a_grid(recognizer, wave):
    """8-bit audio correctly scaled then made 24 dB louder, normalised to a peak of 2, a staircase and a square wave
    at 2 were refused as unscaled PCM (on a grid, or whole numbers), in predict and part-way through a stream."""
    q8 = np.round(_full_scale(wave) * 0.8 * 127).astype(np.float32) / 128
    t = np.arange(2 * RATE) / RATE
    for loud in (q8 * 16, q8 / np.abs(q8).max() * 2, np.round(_full_scale(wave) * 12).astype(np.float32) / 128 * 32,
                 ((np.floor(((t * 100) % 1) * 16) / 8 - 1) * 2).astype(np.float32),
                 (2 * np.sign(np.sin(2 * np.pi * 100 * t))).astype(np.float32)):
        assert np.abs(loud).max() > 1
        assert recognizer.predict(loud)["label"] in FOUR
        assert _stream_in_chunks(recognizer, loud, window=0.5, hop=0.5)
    with pytest.raises(AudioError, match=UNSCALED.format(found="all of them whole numbers")):
        recognizer.predict(np.round(_full_scale(wave) * 12))  # the untouched cast of quiet 8-bit PCM still is


def test_real_audio_of_every_kind_the_audit_tried_is_still_taken(recognizer, wave):
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    q8 = np.round(_full_scale(wave) * 0.9 * 127).astype(np.float32) / 128
    noise = np.random.default_rng(2).uniform(-1, 1, RATE).astype(np.float32)
    for good in (0.1 + 0.5 * tone, 0.1 + 0.05 * tone, q8 * 10, noise, np.stack([wave, 0.8 * wave], 1),
                 np.stack([wave, 0.8 * wave]), wave[:4800], 3 * tone):
        assert recognizer.predict(good)["label"] in FOUR
        assert recognizer.predict((good, RATE))["label"] in FOUR
        if good.ndim == 1:
            assert _stream_in_chunks(recognizer, good, window=0.2, hop=0.2)


def test_smaller_input_forms_of_the_re_audit(recognizer, wave, tmp_path):
    """A longdouble rate was refused; a dict of samples and a file's bytes scored the samples without a word; a
    transposed table was told to pass list(array[:, 0]), which gives a path and a label; enroll refused a Series of
    bytes paths that predict_files takes."""
    import pandas as pd

    expected = _scores(recognizer.predict(wave))
    for rate in (np.longdouble(16000), np.array(16000, np.longdouble)):
        assert recognizer.predict((wave, rate))["scores"] == expected
        assert check_sampling_rate(rate, "x") == 16000
    with pytest.raises(AudioError, match=r"must be a whole number of Hz"):
        check_sampling_rate(np.longdouble(16000.5), "x")
    path = tmp_path / "clip.wav"
    sf.write(path, wave, RATE)
    for key in ("array", "raw"):
        with pytest.raises(AudioError, match=rf"the audio array is a dict holding two clips' sources: samples in "
                                             rf"'{key}' and a file's contents in 'bytes'.*pass one"):
            recognizer.predict({key: wave, "bytes": path.read_bytes(), "sampling_rate": RATE})
    assert recognizer.predict({"array": wave, "bytes": None, "sampling_rate": RATE})["scores"] == expected
    rows = np.array([[str(path), "happy"], [str(path), "sad"]], dtype=object)
    with pytest.raises(AudioError, match=r"columns, not paths \(a table transposed, e.g. rows.T, has its path column "
                                         r"as a row\); pass its path row, e.g. list\(array\[0\]\)"):
        recognizer.predict(rows.T)
    assert recognizer.predict(list(rows.T[0]))[0]["scores"] == _scores(recognizer.predict(str(path)))  # the fix works
    with pytest.raises(SERError, match=r"pass its path row, e.g. list\(array\[1\]\)"):
        enrollment_inputs(rows[:, ::-1].T, "s")
    for column in (pd.Series([b"a.wav", b"b.wav"]), pd.Index([b"a.wav", b"b.wav"]),
                   np.array([b"a.wav", b"b.wav"], dtype=object)):
        assert enrollment_inputs(column, "s") == ["a.wav", "b.wav"]
    contents = path.read_bytes()  # bytes holding a NUL are a file's contents, kept as they are
    assert enrollment_inputs(pd.Series([contents, b"b.wav"]), "s") == [contents, "b.wav"]


@pytest.mark.parametrize("rate", [8000, 16000, 48000, 384000])
def test_a_loud_20_hz_sound_between_two_zero_crossings_is_never_taken_for_an_offset(rate):
    """At exactly offset_span(rate) samples, half a period of 20 Hz left 21 of 422 samples below 0 at 16 kHz (both zero
    crossings count as >= 0): a loud low sound was refused as unsigned PCM not centred (re-audit 31: 1)."""
    from ser_hf.audio import caller_samples
    from ser_hf.audio.caller_mistakes import offset_span

    size = offset_span(rate)
    tone = (0.8 * np.sin(2 * np.pi * 20 * np.arange(size) / rate)).astype(np.float32)
    assert caller_samples(tone, "x", rate).shape == (size,)
    with pytest.raises(AudioError, match="unsigned PCM"):  # the rule itself still holds at that length
        caller_samples(0.5 + 0.1 * tone, "x", rate)
