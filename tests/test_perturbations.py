"""Degradations for `ser-hf evaluate --perturb` (issue 17 item 6): each does what it claims, the spec's errors,
seeded and order-independent draws, cached predictions, and the command end to end on a tiny model."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from ser_hf.cards import SERModelCardData, write_model_card
from ser_hf.cli import evaluate as evaluate_cli
from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation.perturbations import parse_perturbations
from ser_hf.evaluation.robustness import PerturbationSettings, robustness_rows, score_under_perturbations
from ser_hf.inference.predict import load_classifier
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.hf_datasets import make_emotion_dataset
from ser_hf.testing.models import tiny_backbone

RATE = 16000
FOUR = ["neutral", "happy", "sad", "angry"]


def speechlike(seconds: float = 2.0, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope, a pause at each end and a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    voiced[: rate // 5] = voiced[-rate // 5 :] = 0.0
    return (0.2 * voiced + 0.001 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def one(spec: str):
    (condition,) = parse_perturbations(spec)
    return condition


def snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean((degraded - clean) ** 2))


def band_share(wave: np.ndarray, rate: int, low: float, high: float) -> float:
    frequencies = np.fft.rfftfreq(wave.size, 1 / rate)
    power = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
    return float(power[(frequencies >= low) & (frequencies < high)].sum() / power.sum())


# ----------------------------------------------------------------------------- each degradation


@pytest.mark.parametrize("spec, target", [("noise:snr=20", 20), ("noise:snr=5", 5), ("noise:snr=-5", -5),
                                          ("babble:snr=10", 10), ("babble:snr=0:talkers=3", 0)])
def test_noise_is_added_at_the_requested_snr(spec, target):
    wave = speechlike()
    degraded = one(spec).apply(wave, RATE, seed=3, clip_key="clip")
    assert degraded.dtype == np.float32 and degraded.shape == wave.shape
    assert abs(snr_db(wave, degraded) - target) < 0.5


def test_babble_is_speech_shaped_and_fluctuates_but_white_noise_is_flat():
    silence = np.zeros(4 * RATE, np.float32)
    silence[0] = 1e-3  # a level to set the noise against; the noise has 100 times its energy
    babble = one("babble:snr=-20").apply(silence, RATE, clip_key="a")
    white = one("noise:snr=-20").apply(silence, RATE, clip_key="a")
    # Speech spectrum: most energy below 1 kHz; white noise spreads evenly to 8 kHz.
    assert band_share(babble, RATE, 100, 1000) > 0.6 and band_share(white, RATE, 100, 1000) < 0.15
    levels = [np.sqrt(np.mean(frame**2)) for frame in babble.reshape(-1, RATE // 10)]  # 100 ms frames
    assert np.std(levels) / np.mean(levels) > 0.1  # it rises and falls as voices do


def test_a_silent_clip_stays_silent_under_noise():
    silence = np.zeros(RATE, np.float32)
    assert not one("noise:snr=10").apply(silence, RATE).any()


@pytest.mark.parametrize("rate", [16000, 22050])
def test_telephone_keeps_only_300_to_3400_hz(rate):
    noise = np.random.default_rng(0).standard_normal(3 * rate).astype(np.float32) * 0.1
    phone = one("telephone").apply(noise, rate)
    assert phone.shape == noise.shape
    assert band_share(phone, rate, 3450, rate / 2) < 1e-4  # nothing above the 50 Hz transition
    assert band_share(phone, rate, 0, 250) < 1e-4
    tone = np.sin(2 * np.pi * 1000 * np.arange(rate) / rate).astype(np.float32)
    passed = one("telephone").apply(tone, rate)[rate // 10 : -rate // 10]  # away from the edges
    assert abs(10 * np.log10(np.mean(passed**2) / 0.5)) < 0.1  # the pass band is untouched
    narrow = one("telephone:low=500:high=2000").apply(noise, rate)
    assert band_share(narrow, rate, 2050, rate / 2) < 1e-4


def test_gain_is_exact():
    wave = speechlike()
    np.testing.assert_allclose(one("gain:db=-20").apply(wave, RATE), wave * 0.1, rtol=1e-6)
    np.testing.assert_allclose(one("gain:db=6").apply(wave, RATE), wave * 10 ** (6 / 20), rtol=1e-6)


def test_reverb_lengthens_the_decay_to_the_requested_rt60():
    burst = np.zeros(2 * RATE, np.float32)
    burst[: RATE // 5] = np.random.default_rng(1).standard_normal(RATE // 5)
    wet = one("reverb:rt60=0.6").apply(burst, RATE, clip_key="burst")
    assert wet.shape == burst.shape
    np.testing.assert_allclose(np.sqrt(np.mean(wet**2)), np.sqrt(np.mean(burst**2)), rtol=1e-5)  # same level
    tail = wet[RATE // 5 :].reshape(-1, RATE // 100)  # 10 ms frames after the burst ends
    levels = 10 * np.log10(np.mean(tail**2, axis=1) + 1e-30)
    assert levels[20] > levels[0] - 30  # 200 ms after the end there is still sound; the input is silent there
    time = np.arange(levels.size) / 100
    window = (time > 0.05) & (time < 0.4)
    slope = np.polyfit(time[window], levels[window], 1)[0]  # dB per second
    assert -60 / slope == pytest.approx(0.6, rel=0.1)
    short = one("reverb:rt60=0.2").apply(burst, RATE, clip_key="burst")[RATE // 5 :].reshape(-1, RATE // 100)
    assert np.mean(short[30] ** 2) < 1e-3 * np.mean(wet[RATE // 5 :].reshape(-1, RATE // 100)[30] ** 2)


def test_resample_removes_what_the_low_rate_cannot_carry():
    noise = np.random.default_rng(2).standard_normal(2 * RATE).astype(np.float32)
    low = one("resample:rate=8000").apply(noise, RATE)
    assert low.shape == noise.shape and band_share(low, RATE, 4100, 8000) < 1e-3
    assert band_share(noise, RATE, 4100, 8000) > 0.4


# ----------------------------------------------------------------------------- seeds


def test_draws_are_seeded_per_condition_and_clip():
    wave = speechlike()
    for spec in ("noise:snr=10", "babble:snr=10", "reverb:rt60=0.5"):
        condition = one(spec)
        first = condition.apply(wave, RATE, seed=0, clip_key="a")
        for _ in range(2):  # other clips in between change nothing: no shared generator
            condition.apply(speechlike(seed=5), RATE, seed=0, clip_key="b")
        np.testing.assert_array_equal(condition.apply(wave, RATE, seed=0, clip_key="a"), first)
        assert not np.array_equal(condition.apply(wave, RATE, seed=0, clip_key="b"), first)
        assert not np.array_equal(condition.apply(wave, RATE, seed=1, clip_key="a"), first)
    # two conditions of one kind draw different noise, not one noise at two levels
    a = one("noise:snr=10").apply(wave, RATE, clip_key="a") - wave
    b = one("noise:snr=0").apply(wave, RATE, clip_key="a") - wave
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1


# ----------------------------------------------------------------------------- the spec


def test_spec_names_are_canonical():
    conditions = parse_perturbations(" noise:snr=20.0, babble:snr=5:talkers=6,Telephone,gain:db=-20,"
                                     "reverb:rt60=0.6:drr=-3,resample:rate=8000 ")
    assert [c.name for c in conditions] == ["noise:snr=20", "babble:snr=5", "telephone", "gain:db=-20",
                                            "reverb:rt60=0.6:drr=-3", "resample:rate=8000"]
    assert conditions[1].key == "v1:babble:snr=5:talkers=6" and parse_perturbations(None) == []
    assert conditions[2].description() == "telephone band 300-3400 Hz at 8 kHz"


@pytest.mark.parametrize("spec, message", [
    ("nois:snr=20", r"--perturb: in 'nois:snr=20', 'nois' is not a kind of degradation; expected one of \['babble', "
                    r"'gain', 'noise', 'resample', 'reverb', 'telephone'\]\. Write KIND or KIND:NAME=VALUE"),
    ("noise", r"in 'noise', 'noise' needs snr\. 'noise' takes snr \(dB, -20 to 60\), e.g. 'noise:snr=10'"),
    ("noise:snr20", r"parameter 'snr20' is not NAME=VALUE"),
    ("noise:db=3", r"'db' is not a parameter of 'noise' \(it has \['snr'\]\)"),
    ("noise:snr=loud", r"snr='loud' is not a number"),
    ("noise:snr=90", r"snr must be between -20 and 60 dB, found 90"),
    ("babble:snr=5:talkers=2.5", r"talkers must be a whole number, found 2.5"),
    ("gain:db=1:db=2", r"db is given twice"),
    ("telephone:low=900:high=2000:low=300", r"low is given twice"),
    ("telephone:high=3950", r"high must be between 2000 and 3900 Hz, found 3950"),
    ("telephone:snr=3", r"'snr' is not a parameter of 'telephone' \(it has \['low', 'high'\]\)"),
    ("noise:snr=5,,telephone", r"has an empty condition"),
    ("noise:snr=5,noise:snr=5.0", r"'noise:snr=5' is listed twice"),
    ("clean,noise:snr=5", r"'clean' is not a degradation\. The clean clips are always scored"),
])
def test_bad_specs_say_what_was_expected_and_found(spec, message):
    with pytest.raises(EvaluationError, match=message):
        parse_perturbations(spec)


def test_conditions_that_cannot_degrade_the_models_rate_are_refused():
    with pytest.raises(EvaluationError, match=r"'resample:rate=16000' does not lower the rate: the model's audio is "
                                              r"16000 Hz\. Use a rate below 16000"):
        one("resample:rate=16000").check_sampling_rate(16000)
    with pytest.raises(EvaluationError, match=r"'telephone' needs audio of at least 8000 Hz"):
        one("telephone").apply(np.zeros(100, np.float32), 4000)


# ----------------------------------------------------------------------------- scoring and caching


def test_paired_rows_score_each_condition_against_clean():
    refs = np.repeat([0, 1], 20)
    groups = np.repeat([f"s{i}" for i in range(8)], 5)
    clean = refs.copy()
    worse = np.where(np.arange(40) % 4 == 0, 1 - refs, refs)  # a quarter of the clips flipped
    rows = robustness_rows(refs, {"clean": clean, "noise:snr=0": worse}, ["a", "b"], groups=groups, n_resamples=200)
    assert [row["condition"] for row in rows] == ["clean", "noise:snr=0"]
    assert rows[0]["unweighted_accuracy"] == 1.0 and rows[0]["ua_change"] == 0.0
    assert rows[1]["ua_change"] == pytest.approx(-0.25)
    low, high = rows[1]["ua_change_interval"]
    assert low <= -0.25 <= high < 0  # paired: every resample loses accuracy
    assert robustness_rows(refs, {"clean": clean}, ["a", "b"], n_resamples=0)[0]["confidence_interval"] is None
    with pytest.raises(EvaluationError, match="needs the clean predictions"):
        robustness_rows(refs, {"noise": worse}, ["a", "b"])


def _checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("perturb")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), FOUR)
    return tmp, save_checkpoint(model, extractor, tmp / "model")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp, checkpoint = _checkpoint(tmp_path_factory)
    return {"tmp": tmp, "model": checkpoint, "ravdess": make_corpus_tree("ravdess", tmp / "ravdess", duration=0.4)}


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "ser_hf_cache"))


def test_predictions_do_not_depend_on_order_or_batch_size(setup, tmp_path, single_torch_thread):
    model, extractor = load_classifier(setup["model"])
    clips = sorted(str(p) for p in setup["ravdess"].rglob("*.wav"))[:6]
    settings = PerturbationSettings.from_spec("babble:snr=0,reverb:rt60=0.3", cache_dir=tmp_path / "a")
    order = [4, 1, 5, 0, 3, 2]
    _, forward = score_under_perturbations(model, clips, np.zeros(6, int), settings, feature_extractor=extractor,
                                           batch_size=4, n_resamples=0, progress=False)
    settings.cache_dir = tmp_path / "b"  # nothing cached: everything is computed again, in another order
    _, shuffled = score_under_perturbations(model, [clips[i] for i in order], np.zeros(6, int), settings,
                                            feature_extractor=extractor, batch_size=1, n_resamples=0, progress=False)
    for folder_a in (tmp_path / "a").glob("*/*"):
        folder_b = tmp_path / "b" / folder_a.relative_to(tmp_path / "a")
        for cached in folder_a.glob("*.npy"):
            np.testing.assert_allclose(np.load(cached), np.load(folder_b / cached.name), atol=1e-6)
    assert forward["cache"]["predictions_computed"] == shuffled["cache"]["predictions_computed"] == 18
    assert len(list((tmp_path / "a").glob("*/*/*.npy"))) == 18  # 6 clips x (clean + 2 conditions)


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ser-hf")
    evaluate_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_evaluate_perturb_end_to_end_and_cached(setup, tmp_path, capsys, single_torch_thread):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--model", str(setup["model"]), "--corpus", "ravdess", "--data-dir", str(setup["ravdess"]),
            "--emotions", "4class", "--split", "fold:1", "--out", str(out), "--no-progress", "--n-resamples", "100",
            "--perturb", "noise:snr=0,telephone,gain:db=-20", "--perturb-cache-dir", str(cache)]
    assert run_cli(argv) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["robustness"]["conditions"]
    assert [row["condition"] for row in rows] == ["clean", "noise:snr=0", "telephone", "gain:db=-20"]
    clean = rows[0]
    assert clean["unweighted_accuracy"] == report["unweighted_accuracy"] and clean["num_samples"] == 16
    assert clean["confidence_interval"] == report["confidence_intervals"]["unweighted_accuracy"]  # same draws
    for row in rows[1:]:
        assert row["ua_change"] == pytest.approx(row["unweighted_accuracy"] - clean["unweighted_accuracy"])
        assert len(row["ua_change_interval"]) == 2 and row["description"]
    assert report["robustness"]["cache"]["predictions_computed"] == 64  # 16 clips x 4
    markdown = (out / "report.md").read_text()
    assert "### Accuracy under degraded audio" in markdown and "| `telephone` | telephone band 300-3400 Hz" in markdown
    printed = capsys.readouterr().out
    assert "degraded audio (seed 0" in printed and "noise:snr=0" in printed and "(64 computed, 0 reused)" in printed

    assert run_cli(argv) == 0  # the rerun reads every prediction from the cache
    again = json.loads((out / "report.json").read_text())["robustness"]
    assert again["conditions"] == rows and again["cache"]["predictions_reused"] == 64
    assert "(0 computed, 64 reused)" in capsys.readouterr().out
    assert run_cli([*argv, "--perturb-seed", "1"]) == 0  # another seed: other noise, computed anew
    assert "(16 computed, 48 reused)" in capsys.readouterr().out  # only the noise: the others draw nothing


def test_a_bad_spec_fails_before_the_model_is_loaded(tmp_path, capsys):
    with pytest.raises(SERError, match=r"--perturb: in 'reverb:rt=0.6', 'rt' is not a parameter of 'reverb'"):
        run_cli(["--model", "no-such-model", "--corpus", "ravdess", "--data-dir", str(tmp_path), "--out",
                 str(tmp_path), "--perturb", "noise:snr=5,reverb:rt=0.6"])
    with pytest.raises(SERError, match=r"--update-card adds the degraded-audio table .* needs --perturb LIST"):
        run_cli(["--model", "m", "--corpus", "ravdess", "--data-dir", str(tmp_path), "--out", str(tmp_path),
                 "--update-card"])


def test_update_card_adds_the_table_to_the_model_card(tmp_path_factory, tmp_path, capsys, single_torch_thread):
    tmp, checkpoint = _checkpoint(tmp_path_factory)
    corpus = make_corpus_tree("ravdess", tmp / "ravdess")
    argv = ["--model", str(checkpoint), "--corpus", "ravdess", "--data-dir", str(corpus), "--emotions", "4class",
            "--split", "fold:2", "--out", str(tmp_path / "out"), "--no-progress", "--n-resamples", "50",
            "--perturb", "reverb:rt60=0.3", "--update-card"]
    with pytest.raises(EvaluationError, match=r"--update-card: .* has no ser_hf_card.json .* Drop --update-card"):
        run_cli(argv)
    write_model_card(checkpoint, SERModelCardData(license="mit"))
    assert run_cli(argv) == 0
    card = (checkpoint / "README.md").read_text()
    assert "### Robustness to degraded audio" in card and "| `reverb:rt60=0.3` | synthetic room, RT60 0.3 s" in card
    assert "Measured on ravdess, fold2: test speakers of fold 2/4 (2 speakers)." in card and "license: mit" in card
    assert f"model card: {checkpoint / 'README.md'}" in capsys.readouterr().out


def test_a_datasets_dataset_is_scored_degraded_too(setup, tmp_path, single_torch_thread):
    root = make_emotion_dataset(tmp_path / "pq", layout="parquet", class_labels=True, test_split=True)
    out = tmp_path / "out"
    assert run_cli(["--model", str(setup["model"]), "--dataset_name", str(root), "--eval_split_name", "test",
                    "--label_column_name", "emotion", "--speaker_column_name", "actor", "--out", str(out),
                    "--no-progress", "--n-resamples", "20", "--perturb", "babble:snr=5"]) == 0
    rows = json.loads((out / "report.json").read_text())["robustness"]["conditions"]
    assert [row["condition"] for row in rows] == ["clean", "babble:snr=5"] and rows[1]["num_samples"] == 8


def test_a_damaged_cache_is_computed_again_and_a_file_as_cache_folder_is_refused(setup, tmp_path, caplog,
                                                                                   single_torch_thread):
    """A truncated or wrong-shaped cached prediction used to stop every rerun (ValueError naming no file)."""
    model, extractor = load_classifier(setup["model"])
    clips = sorted(str(p) for p in setup["ravdess"].rglob("*.wav"))[:4]
    settings = PerturbationSettings.from_spec("noise:snr=0", cache_dir=tmp_path / "cache")

    def score():
        return score_under_perturbations(model, clips, np.zeros(4, int), settings, feature_extractor=extractor,
                                         batch_size=4, n_resamples=0, progress=False)

    first_clean, first = score()
    cached = sorted((tmp_path / "cache").glob("*/*/*.npy"))
    cached[0].write_bytes(cached[0].read_bytes()[:20])  # truncated
    np.save(cached[1], np.zeros((2, 3)))  # wrong shape
    np.save(cached[2], np.full(len(FOUR), np.nan))  # not finite
    np.save(cached[3], np.zeros(len(FOUR), np.float32))  # finite, but not probabilities (bytes zeroed)
    again_clean, again = score()
    assert again["cache"]["predictions_computed"] == 4 and again["cache"]["predictions_reused"] == 4
    assert sum("computing them again" in r.getMessage() and cached[0].name in r.getMessage()
               for r in caplog.records) == 1
    np.testing.assert_allclose(again_clean, first_clean, atol=1e-6)
    assert again["conditions"] == first["conditions"]
    cached[0].unlink()
    cached[0].mkdir()  # a folder where a prediction goes: named before any clip is scored
    with pytest.raises(EvaluationError, match=rf"cache holds .*{cached[0].name}, which is not a regular file"):
        score()
    cached[0].rmdir()
    about = cached[0].parent / "condition.json"
    about.unlink()
    about.symlink_to(tmp_path / "outside.json")  # a dangling link there is replaced, not followed
    score()
    assert not (tmp_path / "outside.json").exists() and not about.is_symlink()
    (tmp_path / "a-file").write_text("mine")
    for folder in (tmp_path / "a-file", tmp_path / "a-file" / "x"):
        settings.cache_dir = folder
        with pytest.raises(EvaluationError, match=r"perturbation cache folder .*a-file.* \(--perturb-cache-dir\) "
                                                  r"cannot be used"):
            score()
