"""Recipes, `ser-hf train` and `ser-hf cv` end to end, on synthetic corpus trees and tiny models."""

import json
from pathlib import Path

import pytest
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.cli import main
from ser_hf.errors import SERError
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.recipes import parse_run

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.yaml"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    backbone = tiny_backbone("whisper", tmp / "tiny-whisper")
    common = ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path", str(backbone),
              "--max_source_positions", "50", "--probe_max_epochs", "5", "--probe_projector_size", "8",
              "--embedding_cache_dir", str(tmp / "cache")]
    return tmp, common


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_parses(recipe):
    run = parse_run(recipe)
    assert run.data.corpus == recipe.parent.name
    assert run.training.metric_for_best_model == "unweighted_accuracy"


def test_recipe_values_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("corpus: ravdess\nnum_folds: 3\nlearning_rate: 0.001\nfreeze_backbone: true\n")
    run = parse_run(recipe, ["--num_folds", "4"], probe_max_epochs=7)
    assert (run.data.corpus, run.data.num_folds, run.training.learning_rate) == ("ravdess", 4, 0.001)
    assert run.model.freeze_backbone is True and run.training.probe_max_epochs == 7


def test_unknown_keys_list_the_valid_ones(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("corpus: urdu\nlearnin_rate: 0.1\n")
    with pytest.raises(SERError, match=r"(?s)Unknown key\(s\) \['learnin_rate'\].*did you mean 'learning_rate'.*data: corpus"):
        parse_run(recipe)
    with pytest.raises(SERError, match=r"Unknown key\(s\) \['num_fold'\] in the command line"):
        parse_run(None, ["--num_fold", "3"])
    with pytest.raises(SERError, match=r"Recipe .*missing.yaml' does not exist"):
        parse_run(tmp_path / "missing.yaml")


def test_train_saves_a_pipeline_checkpoint_and_a_report(setup, capsys):
    tmp, common = setup
    out = tmp / "model"
    assert main(["train", *common, "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "UA" in printed and "checkpoint:" in printed
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["corpus"] == "urdu" and report["num_samples"] > 0 and "unweighted_accuracy" in report
    assert (out / "model.safetensors").exists() and (out / "ser_hf_run.json").exists()
    result = pipeline("audio-classification", model=str(out))(load_audio(next((tmp / "urdu").rglob("*.wav"))))
    assert {r["label"] for r in result} <= {"neutral", "happy", "sad", "angry"}


def test_cv_reports_every_fold_and_the_pooled_predictions(setup, capsys):
    tmp, common = setup
    out = tmp / "cv"
    assert main(["cv", *common, "--num_folds", "3", "--output_dir", str(out)]) == 0
    assert "±" in capsys.readouterr().out
    summary = json.loads((out / "cv" / "cv_summary.json").read_text())
    assert summary["folds"] == ["fold1", "fold2", "fold3"]
    assert summary["pooled"]["num_samples"] == 48  # every clip tested exactly once
    for fold in ("fold1", "fold2", "fold3", "pooled"):
        assert (out / "cv" / fold / "confusion_matrix.png").exists()


def test_missing_corpus_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--corpus", "urdu", "--data_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_recipe_script_in_the_transformers_examples_style(setup, tmp_path):
    import subprocess
    import sys

    _, common = setup
    script = Path(__file__).resolve().parents[1] / "recipes" / "run_ser.py"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mode: probe\nprobe_max_epochs: 3\n")
    done = subprocess.run([sys.executable, str(script), str(recipe), *common, "--output_dir", str(tmp_path / "m")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "checkpoint:" in done.stdout and (tmp_path / "m" / "README.md").exists()


def test_cross_validate_reports_each_fold_as_it_finishes(setup):
    from ser_hf.training.experiment import cross_validate

    tmp, common = setup
    run = parse_run(None, [*common, "--num_folds", "2", "--output_dir", str(tmp / "cv-callback")])
    seen = []
    result = cross_validate(run, progress=False, on_fold=lambda report: seen.append(report.split))
    assert seen == ["fold1", "fold2"] == [report.split for report in result.folds]
