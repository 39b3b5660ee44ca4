"""Batch prediction (parity with the HF pipeline) and `ser-hf evaluate`, incl. cross-corpus label mapping."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import pytest
from transformers import Wav2Vec2FeatureExtractor, pipeline

from ser_hf.audio import load_audio
from ser_hf.cli import evaluate as evaluate_cli
from ser_hf.errors import CorpusError, EvaluationError, ModelError, SERError
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint, notes_markdown
from ser_hf.evaluation.label_mapping import map_labels, parse_label_map
from ser_hf.inference.predict import batch_padding_is_exact, load_classifier, predict_proba
from ser_hf.models.factory import ModelOptions, build_model, save_checkpoint
from ser_hf.testing.corpora import make_corpus_tree, write_tone
from ser_hf.testing.models import tiny_backbone

FOUR = ["neutral", "happy", "sad", "angry"]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _checkpoint(tmp, name, model_type="wav2vec2", labels=FOUR, options=None, mask=False, **config):
    backbone = tiny_backbone(model_type, tmp / f"{name}-backbone", **config)
    if mask:  # like wav2vec2-large-lv60: layer-normed front end and an attention mask
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                 return_attention_mask=True).save_pretrained(backbone)
    model, extractor = build_model(backbone, labels, options)
    return save_checkpoint(model, extractor, tmp / name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    return {
        "tmp": tmp,
        "model": _checkpoint(tmp, "four"),
        "ravdess": make_corpus_tree("ravdess", tmp / "ravdess"),
        "urdu": make_corpus_tree("urdu", tmp / "urdu"),
    }


def _arguments(setup, corpus="ravdess", model=None, *extra):
    """``ser-hf evaluate`` arguments for a corpus of the fixture (no --out: each test names its own)."""
    return ["--model", str(model or setup["model"]), "--corpus", corpus, "--data-dir", str(setup[corpus]),
            "--no-progress", *extra]


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ser-hf")
    evaluate_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


@pytest.mark.parametrize("model_type, mask, batched", [
    ("wav2vec2", False, False), ("wav2vec2", True, True), ("whisper", False, True),
], ids=["wav2vec2-no-mask", "wav2vec2-mask", "whisper"])
def test_predict_proba_equals_the_pipeline(tmp_path, model_type, mask, batched):
    config = {"feat_extract_norm": "layer"} if mask else {}
    options = ModelOptions(max_source_positions=100) if model_type == "whisper" else None
    directory = _checkpoint(tmp_path, "model", model_type, options=options, mask=mask, **config)
    # Different lengths (batches need padding) and rates (resampled by load_audio like the reference).
    clips = [write_tone(tmp_path / f"c{i}.wav", duration=0.3 + 0.2 * i, frequency=150 + 30 * i, seed=i,
                        sampling_rate=22050 if i % 2 else 16000) for i in range(5)]
    probabilities, labels = predict_proba(directory, clips, batch_size=3, progress=False)
    assert batch_padding_is_exact(*load_classifier(directory)) is batched
    classify = pipeline("audio-classification", model=str(directory))
    for row, clip in zip(probabilities, clips):
        scores = {r["label"]: r["score"] for r in classify(load_audio(clip), top_k=None)}
        np.testing.assert_allclose(row, [scores[label] for label in labels], atol=1e-5)
    assert labels == FOUR


def test_cross_corpus_counts_unmapped_labels(setup, capsys):
    out = setup["tmp"] / "on-ravdess"
    assert run_cli(["--model", str(setup["model"]), "--corpus", "ravdess", "--data-dir", str(setup["ravdess"]),
                    "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == FOUR and report["num_samples"] == 64  # 4 shared emotions x 8 actors x 2
    assert report["metadata"]["unmapped"] == {"calm": 16, "fearful": 16, "disgust": 16, "surprised": 16}
    assert report["metadata"]["clips_in_split"] == 128
    assert report["bootstrap"]["unit"] == "group" and "unweighted_accuracy" in report["confidence_intervals"]
    for key in ("weighted_accuracy", "macro_f1", "per_class", "confusion_matrix", "model", "corpus"):
        assert key in report
    for name in ("report.md", "confusion_matrix.png", "per_class.png", "reliability.png"):
        assert (out / name).is_file()
    assert "calm | none: 16 clips not scored" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "UA" in printed and "unmapped (not scored, no model class): calm 16, fearful 16" in printed


def _evaluate(setup, corpus="ravdess", model=None, **kwargs):
    # The library function behind the command, without the figures (rendering them dominates the runtime).
    return evaluate_checkpoint(model or setup["model"], corpus, setup[corpus], progress=False, **kwargs)


def test_label_map_sends_calm_to_neutral(setup):
    report = _evaluate(setup, label_map="calm=neutral", n_resamples=100)
    assert report.num_samples == 80 and report.per_class["neutral"]["support"] == 32
    assert "calm" not in report.metadata["unmapped"] and report.metadata["label_mapping"]["calm"] == "neutral"


def test_model_classes_missing_from_the_corpus_stay_in_the_matrix(setup):
    report = _evaluate(setup, emotions="neutral,happy", n_resamples=0)
    assert len(report.confusion_matrix) == 4 and report.metadata["model_classes_without_references"] == ["sad", "angry"]
    recalls = [report.per_class[name]["recall"] for name in ("neutral", "happy")]
    assert report.unweighted_accuracy == pytest.approx(np.mean(recalls))
    assert report.per_class["sad"]["support"] == 0 and report.metadata["unmapped"] == {}
    assert "Model classes absent from this evaluation set: sad, angry" in notes_markdown(report)


def test_splits_are_speaker_independent_parts(setup):
    fold = _evaluate(setup, split="fold:2", n_resamples=0)
    assert fold.metadata["speakers"] == ["05", "06"] and fold.split == "fold:2"  # RAVDESS fold 2: actors 5-8
    test = _evaluate(setup, split="test", n_resamples=0).metadata
    assert 0 < len(test["speakers"]) < 8 and "speaker_split(test_size=0.2, seed=0)" in test["split_description"]


def test_a_model_trained_on_the_corpus_is_scored_on_its_held_out_speakers(setup):
    model = setup["tmp"] / "trained-on-urdu"
    shutil.copytree(setup["model"], model)
    (model / "ser_hf_run.json").write_text(json.dumps({"data": {"corpus": "urdu", "max_duration": 5.0}}))
    (model / "eval").mkdir()
    (model / "eval" / "report.json").write_text(json.dumps({"metadata": {"speakers": ["SF2", "SM5"]}}))
    held_out = _evaluate(setup, "urdu", model, split="test", n_resamples=0).metadata
    assert held_out["speakers"] == ["SF2", "SM5"] and held_out["warnings"] == []
    assert held_out["preprocessing"]["max_duration"] == 5.0  # the training-time cleaning is applied
    report = _evaluate(setup, "urdu", model, n_resamples=0)
    assert "4 of the 6 evaluated speakers were in its training data" in report.metadata["warnings"][0]
    assert "**Warning:** this model was trained on 'urdu'" in notes_markdown(report)


def test_a_model_trained_on_several_corpora_is_scored_on_its_held_out_speakers_of_the_evaluated_one(setup):
    """A run on several corpora records 'urdu,ravdess' (the released models 'urdu+ravdess') and its held-out
    speakers with their corpus ('urdu/SM5'): evaluated on URDU, it is a model that heard URDU, held out SM5."""
    model = setup["tmp"] / "trained-on-both"
    shutil.copytree(setup["model"], model)
    (model / "ser_hf_run.json").write_text(json.dumps({"data": {"corpus": "urdu,ravdess"}}))
    (model / "eval").mkdir()
    report_file = model / "eval" / "report.json"
    report_file.write_text(json.dumps({"metadata": {"speakers": ["ravdess/05", "urdu/SM5"]}}))
    held_out = _evaluate(setup, "urdu", model, split="test", n_resamples=0).metadata
    assert held_out["speakers"] == ["SM5"] and held_out["warnings"] == []
    everyone = _evaluate(setup, "urdu", model, n_resamples=0).metadata["warnings"]
    assert len(everyone) == 1 and "this model was trained on 'urdu': 5 of the 6 evaluated speakers" in everyone[0]
    report_file.write_text(json.dumps({"metadata": {"speakers": ["ravdess/05"]}}))  # none of URDU held out
    with pytest.raises(EvaluationError, match=r"--split test: the model was trained on this corpus and held out none"):
        _evaluate(setup, "urdu", model, split="test", n_resamples=0)
    report_file.unlink()
    for named in ("urdu+ravdess", "URDU+RAVDESS", "urdu; ravdess", "urdu ravdess", "urdu+ravdess/4class"):
        (model / "ser_hf_run.json").write_text(json.dumps({"data": {"corpus": named}}))  # a released model's, edited
        unknown = _evaluate(setup, "ravdess", model, n_resamples=0).metadata["warnings"]
        assert "trained on 'ravdess' and its held-out speakers are unknown" in unknown[0], named


def test_label_map_parsing_and_matching():
    assert parse_label_map(" calm = neutral ,surprised=happy,") == {"calm": "neutral", "surprised": "happy"}
    mapping = map_labels(["neutral", "calm", "happy"], ["neu", "hap", "sad", "ang"], {"calm": "neu"})
    assert mapping.mapping == {"neutral": "neu", "calm": "neu", "happy": "hap"} and mapping.unmapped == []
    with pytest.raises(SERError, match=r"--label-map entry 'calm:neutral' in 'calm:neutral' is not 'from=to'"):
        parse_label_map("calm:neutral")
    with pytest.raises(SERError, match=r"--label-map value 'bored' \(for 'calm'\) is not one of the model's classes"):
        map_labels(["neutral", "calm"], FOUR, {"calm": "bored"})
    with pytest.raises(SERError, match=r"--label-map key 'joyful' is not a label of the evaluated corpus"):
        map_labels(["neutral", "calm"], FOUR, {"joyful": "happy"})
    for spelled in ("Calm", "CALM"):  # two spellings of one corpus label, two targets: refused, not last-wins
        with pytest.raises(SERError, match=rf"maps the corpus label 'calm' twice: as 'calm' to 'neutral' and as "
                                           rf"'{spelled.strip()}' to 'happy'"):
            map_labels(["neutral", "calm"], FOUR, parse_label_map(f"calm=neutral,{spelled}=happy"))
    with pytest.raises(SERError, match=r"--label-map maps 'calm' twice \(calm=neutral and calm=happy\)"):
        parse_label_map("calm=neutral, calm =happy")
    assert map_labels(["neutral", "calm"], FOUR, {"calm": "neutral", "Calm": "neu"}).mapping["calm"] == "neutral"


def test_bad_inputs_fail_clearly(setup, tmp_path):
    common = ["--corpus", "urdu", "--data-dir", str(setup["urdu"]), "--out", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(SERError, match=r"model directory '.*nowhere' does not exist"):
        run_cli(["--model", str(tmp_path / "nowhere"), *common])
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(setup["model"] / name, pickled / name)
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(SERError, match=r"has no \*\.safetensors weights \(found \[.*'pytorch_model.bin'"):
        run_cli(["--model", str(pickled), *common])
    with pytest.raises(SERError, match=r"--label-map entry 'calm' in 'calm' is not 'from=to'"):
        run_cli(["--model", str(setup["model"]), "--label-map", "calm", *common])
    with pytest.raises(SERError, match=r"fold 9 does not exist; this corpus has 5 folds"):
        run_cli(["--model", str(setup["model"]), "--split", "fold:9", *common])
    with pytest.raises(SERError, match=r"--split must be 'all', 'test' or 'fold:N'.*found 'train'"):
        run_cli(["--model", str(setup["model"]), "--split", "train", *common])


def test_no_shared_label_is_a_clear_error(setup, tmp_path):
    other = _checkpoint(tmp_path, "calm-fear", labels=["calm", "fearful"])
    with pytest.raises(SERError, match=r"No label of the corpus \(\['neutral', 'happy', 'sad', 'angry'\]\) has a "
                                       r"counterpart among the model's classes \(\['calm', 'fearful'\]\)"):
        run_cli(["--model", str(other), "--corpus", "urdu", "--data-dir", str(setup["urdu"]),
                 "--out", str(tmp_path / "out")])


def test_skip_bad_files_evaluates_the_rest_and_names_what_it_skipped(setup, tmp_path):
    root = shutil.copytree(setup["ravdess"], tmp_path / "ravdess")
    (root / "Actor_02" / "03-01-01-01-01-02-02.wav").write_bytes(b"")  # an empty file in the naming scheme
    argv = ["--model", str(setup["model"]), "--corpus", "ravdess", "--data-dir", str(root), "--no-progress",
            "--n-resamples", "0"]
    with pytest.raises(CorpusError, match=r"(?s)03-01-01-01-01-02-02\.wav.*strict=False"):
        run_cli([*argv, "--out", str(tmp_path / "strict")])
    with pytest.warns(UserWarning, match=r"(?s)1 file\(s\).*03-01-01-01-01-02-02\.wav.*empty.*skipped"):
        assert run_cli([*argv, "--out", str(tmp_path / "lenient"), "--skip-bad-files"]) == 0
    assert json.loads((tmp_path / "lenient" / "report.json").read_text())["metadata"]["clips_in_split"] == 128


@pytest.mark.parametrize("command", [["evaluate", "--model", "m", "--out", "o"], ["baseline", "--out", "o"],
                                     ["data", "split"]])
def test_every_command_that_loads_a_corpus_can_skip_bad_files(command):
    from ser_hf.cli import build_parser
    from ser_hf.cli.data import corpus_options

    parser = build_parser()
    strict = parser.parse_args([*command, "--corpus", "ravdess"])
    lenient = parser.parse_args([*command, "--corpus", "ravdess", "--skip-bad-files"])
    assert "strict" not in corpus_options(strict) and corpus_options(lenient)["strict"] is False


def test_reports_go_only_to_a_new_folder_or_an_earlier_report(setup, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my thesis report")
    base = _arguments(setup)
    with pytest.raises(ModelError, match=r"mine is not empty \(found \['report.md'\]\) and holds no report.json"):
        run_cli([*base, "--out", str(mine)])
    assert (mine / "report.md").read_text() == "my thesis report"
    with pytest.raises(ModelError, match=r"is \(or holds\) the checkpoint it is made from"):
        run_cli([*base, "--out", str(setup["model"])])  # reports written into the checkpoint itself


def test_a_users_own_report_json_is_not_an_earlier_report(setup, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "report.json").write_text('{"my": "own report from another tool"}')
    base = _arguments(setup)
    with pytest.raises(ModelError, match=r"holds no report.json that ser_hf wrote, so it is not an earlier evaluation report"):
        run_cli([*base, "--out", str(results)])
    assert json.loads((results / "report.json").read_text()) == {"my": "own report from another tool"}


def test_reports_never_go_inside_the_checkpoint_nor_write_through_links(setup, tmp_path, capsys):
    """--out MODEL/eval would overwrite training's record of its test speakers; a link or hard link left in an earlier
    report folder must be replaced, never written through onto a file elsewhere."""
    model = tmp_path / "trained"
    shutil.copytree(setup["model"], model)
    (model / "eval").mkdir()
    record = json.dumps({"metadata": {"speakers": ["SF2", "SM5"]}, "unweighted_accuracy": 0.5,
                         "confusion_matrix": [[1]], "labels": ["neutral"]})
    (model / "eval" / "report.json").write_text(record)
    base = _arguments(setup, "urdu", model, "--n-resamples", "0")
    with pytest.raises(ModelError, match=r"is \(or is inside\) the eval/ folder of the checkpoint"):
        run_cli([*base, "--out", str(model / "eval")])
    other = tmp_path / "other"  # another model's record, too: evaluating one model must not rewrite another's
    shutil.copytree(model, other)
    with pytest.raises(ModelError, match=r"is \(or is inside\) the eval/ folder of the checkpoint .*other"):
        run_cli(["--model", str(setup["model"]), *base[2:], "--out", str(other / "eval")])
    assert (model / "eval" / "report.json").read_text() == (other / "eval" / "report.json").read_text() == record
    assert run_cli([*base, "--out", str(model / "eval-test")]) == 0  # the --help's example: beside it is fine
    cv = tmp_path / "baseline" / "cv"  # a CV's (a baseline's, a run's) folders are its reports
    (cv / "pooled").mkdir(parents=True)
    (cv / "pooled" / "report.json").write_text(record)
    (cv / "cv_summary.json").write_text('{"folds": ["fold1"], "aggregate": {}, "pooled": {}, "kind": "baseline"}')
    for target in (cv / "pooled", cv / "fold1", cv / "pooled" / "deeper"):
        with pytest.raises(ModelError, match=r"lies in .*cv, whose cv_summary.json says its folders are another "
                                             r"command's reports"):
            run_cli([*base, "--out", str(target)])
    assert (cv / "pooled" / "report.json").read_text() == record and not (cv / "fold1").exists()
    (tmp_path / "project").mkdir()  # a user's own file of that name (not ser_hf's: no CV keys) marks nothing
    (tmp_path / "project" / "cv_plan.json").write_text("my plan for the week")
    assert run_cli([*base, "--out", str(tmp_path / "project" / "results")]) == 0
    with pytest.raises(ModelError, match=r"cannot be created: .*config.json is a file"):
        run_cli([*base, "--out", str(model / "config.json" / "x")])  # refused before scoring, not after
    out = tmp_path / "out"
    assert run_cli([*base, "--out", str(out)]) == 0
    notes, draft = tmp_path / "notes.md", tmp_path / "draft.png"
    notes.write_text("my notes")
    draft.write_bytes(b"my figure")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(notes)
    (out / "per_class.png").unlink()
    os.link(draft, out / "per_class.png")
    assert run_cli([*base, "--out", str(out)]) == 0
    assert notes.read_text() == "my notes" and draft.read_bytes() == b"my figure"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() != "my notes"
    assert (out / "per_class.png").stat().st_ino != draft.stat().st_ino


def test_a_report_without_speakers_leaves_no_earlier_speaker_figure(setup, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--model", str(setup["model"]), "--data-dir", str(setup["urdu"]), "--no-progress", "--out", str(out)]
    assert run_cli([*base, "--corpus", "urdu"]) == 0
    assert (out / "speakers.png").is_file()
    assert run_cli([*base, "--corpus", "folder", "--n-resamples", "0"]) == 0  # a folder corpus: no speaker ids
    assert not (out / "speakers.png").exists()
    assert "speakers.png" not in capsys.readouterr().out.splitlines()[-1]


def test_a_test_part_needs_a_share_strictly_between_0_and_1(setup, tmp_path):
    base = _arguments(setup, "urdu", None, "--split", "test", "--out", str(tmp_path / "out"))
    for share in ("0", "1", "-0.1", "nan"):
        with pytest.raises(SERError, match=r"test_size \(--test-size\) must be a share in \(0, 1\), got "):
            run_cli([*base, "--test-size", share])


def test_an_exports_onnx_file_is_evaluated_with_its_folders_training_record(setup, tmp_path):
    """--model EXPORT/model.onnx reads the export's ser_hf_run.json (its preprocessing, its test speakers), as the
    folder itself does; it used to be read from the file path, so nothing was found and clips went uncleaned."""
    from ser_hf.inference.onnx import export_onnx

    model = tmp_path / "trained"
    shutil.copytree(setup["model"], model)
    (model / "ser_hf_run.json").write_text(json.dumps({"data": {"corpus": "urdu", "max_duration": 0.5}}))
    export_onnx(model, tmp_path / "export")
    by_folder = _evaluate(setup, "urdu", tmp_path / "export", n_resamples=0).metadata
    by_file = _evaluate(setup, "urdu", tmp_path / "export" / "model.onnx", n_resamples=0).metadata
    assert by_file["preprocessing"] == by_folder["preprocessing"] and by_file["preprocessing"]["max_duration"] == 0.5
    assert by_file["warnings"] == by_folder["warnings"] and "trained on 'urdu'" in by_file["warnings"][0]
