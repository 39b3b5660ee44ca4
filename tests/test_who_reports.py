"""Reports that show who: scores per speaker and per gender, the gender gap, the worst speakers, the plot."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ser_hf.baseline.crossval import cross_validate_baseline
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.corpora import load_corpus
from ser_hf.errors import EvaluationError
from ser_hf.evaluation import EvaluationReport, summarise_folds
from ser_hf.evaluation.breakdown import normalise_genders, speaker_breakdown
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone

LABELS = ["neutral", "happy", "sad", "angry"]


def _clips():
    """Speaker a (F) all right; b (F) half right; c (M) all wrong on class 1; d (M) all right."""
    refs = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 1, 1, 0, 1, 2, 3])
    preds = np.array([0, 1, 2, 3, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 2, 3])
    speakers = ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4
    genders = ["F"] * 4 + ["female"] * 4 + ["M"] * 4 + ["male"] * 4
    return refs, preds, speakers, genders


def test_per_speaker_and_per_gender_scores_match_hand_counts():
    refs, preds, speakers, genders = _clips()
    who = speaker_breakdown(refs, preds, LABELS, speakers, genders, n_resamples=0, min_clips=1)
    rows = {row["speaker"]: row for row in who["speakers"]}
    assert rows["a"] == {"speaker": "a", "gender": "female", "num_samples": 4, "unweighted_accuracy": 1.0,
                         "weighted_accuracy": 1.0}
    assert rows["b"]["unweighted_accuracy"] == 0.5 and rows["b"]["weighted_accuracy"] == 0.5
    # c: class 0 right (1/1), class 1 wrong (0/3): UA averages the two classes it has, WA counts clips.
    assert rows["c"]["unweighted_accuracy"] == 0.5 and rows["c"]["weighted_accuracy"] == 0.25
    female, male = who["genders"]["female"], who["genders"]["male"]
    assert (female["num_speakers"], female["num_samples"], male["num_samples"]) == (2, 8, 8)
    assert female["recall"] == {"neutral": 1.0, "happy": 0.5, "sad": 1.0, "angry": 0.5}
    assert male["recall"]["happy"] == 0.25 and male["recall"]["sad"] == 1.0
    assert female["unweighted_accuracy"] == pytest.approx(0.75)
    assert male["unweighted_accuracy"] == pytest.approx((1.0 + 0.25 + 1.0 + 1.0) / 4)
    assert who["gender_gap"]["difference"] == pytest.approx(0.75 - 0.8125)
    assert who["worst_speakers"] == ["c", "b", "a"]  # c and b tie on UA: the lower WA first
    assert who["gender_note"] is None and who["bootstrap_unit"] == "speaker"
    # A speaker with too few clips is not ranked: one wrong clip is no evidence.
    few = speaker_breakdown(np.append(refs, 0), np.append(preds, 1), LABELS, [*speakers, "e"], [*genders, None],
                            n_resamples=0, min_clips=2)
    assert "e" not in few["worst_speakers"] and {r["speaker"]: r["unweighted_accuracy"] for r in few["speakers"]}["e"] == 0


def test_gender_intervals_resample_whole_speakers():
    rng = np.random.default_rng(0)
    refs = np.tile(rng.integers(0, 4, 20), 6)
    # Every speaker of a gender makes the same errors: resampling speakers cannot move the score, resampling
    # clips would. A zero-width interval shows whole speakers are drawn.
    one = np.where(np.arange(20) % 3 == 0, (refs[:20] + 1) % 4, refs[:20])
    other = np.where(np.arange(20) % 2 == 0, (refs[:20] + 1) % 4, refs[:20])
    preds = np.concatenate([one, one, one, other, other, other])
    speakers = np.repeat(["f1", "f2", "f3", "m1", "m2", "m3"], 20)
    genders = np.repeat(["F", "F", "F", "M", "M", "M"], 20)
    who = speaker_breakdown(refs, preds, LABELS, speakers, genders, n_resamples=200)
    for gender in ("female", "male"):
        row = who["genders"][gender]
        assert row["confidence_interval"] == pytest.approx([row["unweighted_accuracy"]] * 2)
    gap = who["gender_gap"]
    assert gap["confidence_interval"] == pytest.approx([gap["difference"]] * 2) and gap["difference"] > 0.1
    # Speakers that differ give an interval around the point estimate.
    preds[:20] = refs[:20]
    who = speaker_breakdown(refs, preds, LABELS, speakers, genders, n_resamples=200)
    low, high = who["genders"]["female"]["confidence_interval"]
    assert low < high and low <= who["genders"]["female"]["unweighted_accuracy"] <= high
    assert all(bounds is None or bounds[0] <= bounds[1] for bounds in who["genders"]["male"]["recall_intervals"].values())


def test_one_speaker_of_a_gender_gets_no_interval():
    refs, preds, speakers, genders = _clips()
    who = speaker_breakdown(refs[:12], preds[:12], LABELS, speakers[:12], genders[:12], n_resamples=100)
    assert who["genders"]["male"]["num_speakers"] == 1 and who["genders"]["male"]["confidence_interval"] is None
    assert who["genders"]["female"]["confidence_interval"] is not None
    assert who["gender_gap"]["confidence_interval"] is None and who["gender_gap"]["difference"] is not None


def test_unknown_gender_is_said_never_guessed():
    refs, preds, speakers, _ = _clips()
    # Speaker ids that look like URDU's (SM1 = male) must not be read as a gender.
    ids = [{"a": "SF1", "b": "SF2", "c": "SM1", "d": "SM2"}[s] for s in speakers]
    report = EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=ids, n_resamples=50)
    who = report.by_speaker
    assert set(who["genders"]) == {"unknown"} and who["gender_gap"] is None
    assert {row["gender"] for row in who["speakers"]} == {"unknown"}
    assert "Gender is not recorded for these clips" in who["gender_note"]
    markdown = report.to_markdown()
    assert "Gender is not recorded" in markdown and "#### Per gender" not in markdown and "| SM1 | unknown |" in markdown
    assert "gender: not recorded" in report.format_table()
    partial = speaker_breakdown(refs, preds, LABELS, speakers, [None] * 4 + ["F"] * 4 + [""] * 4 + ["M"] * 4,
                                n_resamples=0)
    assert partial["gender_note"] == "Gender is not recorded for 8 of 16 clips; they are counted as 'unknown'."
    assert list(normalise_genders(["m", " Female ", "woman", "x", None], 5)) == ["male", "female", "female", "x",
                                                                                "unknown"]


def test_report_renders_saves_and_plots_who(tmp_path):
    refs, preds, speakers, genders = _clips()
    report = EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=speakers, genders=genders,
                                               model="tiny", corpus="demo", split="test", n_resamples=100)
    markdown = report.to_markdown()
    for text in ("### Per speaker and gender", "#### Per gender", "| female | 2 | 8 | 75.0 |", "Gender gap, "
                 "UA(female) - UA(male): -6.2 points", "if any): c (50.0 UA, 4 clips), b (50.0 UA, 4 clips)",
                 "#### Per speaker", "| a | female | 4 | 100.0 | 100.0 |"):
        assert text in markdown
    assert "### Per speaker" not in report.to_markdown(by_speaker=False)
    table = report.format_table()
    assert "female UA 75.0 [" in table and "gap -6.2" in table and "worst speakers: c 50.0 (n=4), b 50.0 (n=4), a 100.0 (n=4)" in table
    paths = report.write(tmp_path)
    assert paths["speakers"] == tmp_path / "speakers.png"
    with Image.open(paths["speakers"]) as image:
        assert image.width > 300 and image.height > 200
    loaded = EvaluationReport.from_json(paths["json"])
    assert loaded.by_speaker == report.by_speaker and loaded.to_markdown() == markdown


def test_who_inputs_are_checked():
    refs, preds, speakers, genders = _clips()
    with pytest.raises(EvaluationError, match=r"`genders` needs `groups` \(the speaker of every example\)"):
        EvaluationReport.from_predictions(refs, preds, label_names=LABELS, genders=genders)
    with pytest.raises(EvaluationError, match=r"`genders` has 3 items but there are 16 references"):
        EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=speakers, genders=genders[:3])


def test_pooled_cv_report_carries_genders():
    refs, preds, speakers, genders = _clips()
    probs = np.eye(4)[preds] * 0.9 + 0.025
    folds = [EvaluationReport.from_predictions(refs[rows], probabilities=probs[rows], label_names=LABELS,
                                               groups=np.asarray(speakers)[rows], n_resamples=0)
             for rows in (np.arange(8), np.arange(8, 16))]
    _, pooled = summarise_folds(folds, [refs[:8], refs[8:]], [probs[:8], probs[8:]], speakers, LABELS,
                                model="m", corpus="c", genders=genders)
    assert set(pooled.by_speaker["genders"]) == {"female", "male"}
    assert pooled.by_speaker["gender_gap"]["difference"] == pytest.approx(0.75 - 0.8125)


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("who")
    backbone = tiny_backbone("wav2vec2", tmp / "backbone")
    model, extractor = build_model(backbone, LABELS)
    return {"model": save_checkpoint(model, extractor, tmp / "model"), "corpus": make_corpus_tree("ravdess", tmp / "ravdess")}


@pytest.mark.usefixtures("single_torch_thread")
def test_evaluate_reports_gender_from_the_corpus(ravdess, tmp_path):
    report = evaluate_checkpoint(ravdess["model"], "ravdess", ravdess["corpus"], progress=False, n_resamples=50,
                                 out_dir=tmp_path)
    rows = {row["speaker"]: row["gender"] for row in report.by_speaker["speakers"]}
    # RAVDESS: odd actor numbers are male, even female.
    assert rows and all(gender == ("male" if int(speaker[-2:]) % 2 else "female") for speaker, gender in rows.items())
    assert report.by_speaker["gender_note"] is None and report.by_speaker["gender_gap"] is not None
    assert (tmp_path / "speakers.png").is_file() and "#### Per gender" in (tmp_path / "report.md").read_text()


def test_baseline_cv_reports_show_who(tmp_path):
    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.3)
    dataset = load_corpus("urdu", corpus)
    features = FeatureConfig(groups=("mfcc", "rms"), n_mfcc=13, mfcc_delta_order=0, stats=("mean",))
    result = cross_validate_baseline(dataset, "logreg", n_folds=2, feature_config=features, param_grid={"C": [0.1]},
                                     inner_folds=2, num_workers=1, progress=False)
    for report in (*result.folds, result.pooled):
        assert report.by_speaker is not None and report.by_speaker["gender_note"] is None
    expected = {speaker: "male" if speaker.startswith("SM") else "female" for speaker in dataset["speaker"]}
    assert {row["speaker"]: row["gender"] for row in result.pooled.by_speaker["speakers"]} == expected


def test_a_random_split_has_no_speakers_to_report(tmp_path):
    import datasets

    from ser_hf.splits import clips_as_speakers

    refs, preds, _, genders = _clips()
    ids = clips_as_speakers(datasets.Dataset.from_dict({"speaker": [""] * len(refs), "label": refs}))["speaker"]
    report = EvaluationReport.from_predictions(refs, preds, label_names=LABELS, groups=ids, genders=genders,
                                               n_resamples=20)
    assert report.by_speaker["speakers"] == [] and report.by_speaker["genders"] == {}
    assert "Speakers are not recorded for these clips (random split)" in report.to_markdown()
    assert "speakers: not recorded (random split)" in report.format_table()
    assert "speakers" not in report.write(tmp_path)


def test_per_corpus_reports_carry_genders():
    from ser_hf.evaluation.folds import reports_by_group

    refs, preds, speakers, genders = _clips()
    probs = np.eye(4)[preds] * 0.9 + 0.025
    corpora = ["x"] * 8 + ["y"] * 8
    reports = reports_by_group(refs, probs, speakers, corpora, LABELS, model="m", split="pooled", genders=genders)
    assert set(reports["x"].by_speaker["genders"]) == {"female"} and set(reports["y"].by_speaker["genders"]) == {"male"}
    assert reports_by_group(refs, probs, speakers, corpora, LABELS, model="m", split="p")["x"].by_speaker[
        "gender_note"].startswith("Gender is not recorded")


def test_evaluate_command_lists_the_speakers_figure(ravdess, tmp_path, capsys):
    from ser_hf.cli import main

    assert main(["evaluate", "--model", str(ravdess["model"]), "--corpus", "ravdess", "--data-dir",
                 str(ravdess["corpus"]), "--out", str(tmp_path), "--no-progress", "--n-resamples", "20"]) == 0
    printed = capsys.readouterr().out
    assert "female UA" in printed and "male UA" in printed and "worst speakers:" in printed
    assert "per_class.png, speakers.png, reliability.png)" in printed
