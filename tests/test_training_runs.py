"""Recipes, `ser-hf train` and `ser-hf cv` end to end, on synthetic corpus trees and tiny models."""

import dataclasses
import json
from pathlib import Path

import pytest
from transformers import pipeline

from ser_hf.audio import load_audio
from ser_hf.cli import main
from ser_hf.errors import ModelError, SERError
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.arguments import ProbeArguments, SERTrainingArguments
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


def test_the_two_stage_recipe_starts_from_the_probe_recipes_head():
    folder = Path(__file__).resolve().parents[1] / "recipes" / "ravdess"
    two_stage, probe = (parse_run(folder / name) for name in ("whisper-base-finetune-two-stage.yaml",
                                                              "whisper-base-probe.yaml"))
    assert two_stage.training.head_init == "probe"
    for key in ("probe_inner_folds", "probe_speed_copies", "probe_noise_copies"):
        assert getattr(two_stage.probe, key) == getattr(probe.probe, key), key


def test_recipe_values_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("corpus: ravdess\nnum_folds: 3\nlearning_rate: 0.001\nfreeze_backbone: true\n")
    run = parse_run(recipe, ["--num_folds", "4"], probe_max_epochs=7)
    assert (run.data.corpus, run.data.num_folds, run.training.learning_rate) == ("ravdess", 4, 0.001)
    assert run.model.freeze_backbone is True and run.probe.probe_max_epochs == 7


PROBE_KEYS = {"probe_fit", "probe_inner_folds", "probe_layer_mixes", "probe_speaker_adaptation", "probe_speaker_spread",
              "probe_speed_copies", "probe_noise_copies",
              "probe_projector_size", "probe_learning_rate",
              "probe_weight_decay", "probe_dropout", "probe_batch_size", "probe_max_epochs", "probe_patience",
              "embedding_cache_dir", "embedding_batch_size", "embedding_device", "embedding_dtype"}


def test_probe_settings_are_a_group_of_their_own(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("corpus: urdu\nmode: probe\nprobe_fit: gradient\nprobe_max_epochs: 12\nembedding_dtype: bfloat16\n"
                      "learning_rate: 0.01\n")
    run = parse_run(recipe, ["--probe_patience", "5", "--embedding_batch_size", "4"], probe_dropout=0.1)
    assert isinstance(run.probe, ProbeArguments)
    assert (run.probe.probe_fit, run.probe.probe_max_epochs, run.probe.embedding_dtype) == ("gradient", 12, "bfloat16")
    assert (run.probe.probe_patience, run.probe.embedding_batch_size, run.probe.probe_dropout) == (5, 4, 0.1)
    assert run.training.learning_rate == 0.01  # the Trainer's keys stay in the training group
    assert {f.name for f in dataclasses.fields(ProbeArguments)} == PROBE_KEYS
    assert PROBE_KEYS.isdisjoint(f.name for f in dataclasses.fields(SERTrainingArguments))
    assert not any(hasattr(run.training, key) for key in PROBE_KEYS)
    with pytest.raises(AttributeError, match=r"moved to ProbeArguments, read and set it as run\.probe\.probe_fit"):
        run.training.probe_fit = "linear"  # was a field: setting it now must not pass silently
    settings = run.probe.settings(class_weighted=run.training.class_weighted_loss, seed=run.training.seed)
    assert (settings.fit, settings.max_epochs, settings.patience, settings.dropout) == ("gradient", 12, 5, 0.1)
    assert (settings.class_weighted, settings.seed) == (True, run.training.seed)
    recorded = run.settings()
    assert recorded["probe"]["probe_fit"] == "gradient" and PROBE_KEYS.isdisjoint(recorded["training"])


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
    record = json.loads((out / "ser_hf_run.json").read_text())  # the probe's settings recorded as their own group
    assert record["probe"]["probe_max_epochs"] == 5 and PROBE_KEYS.isdisjoint(record["training"])


def test_run_records_written_before_the_probe_group_still_load(tmp_path):
    """Records from before ProbeArguments hold the probe's keys under training; loading reads only data."""
    from ser_hf.checkpoint import read_run_record, recorded_preprocessor

    old = {"data": {"corpus": "urdu", "normalize": "peak"}, "model": {"mode": "probe"},
           "training": {"output_dir": "out", "probe_fit": "linear", "probe_max_epochs": 200,
                        "embedding_cache_dir": None, "embedding_dtype": "float32"}}
    (tmp_path / "ser_hf_run.json").write_text(json.dumps(old))
    record = read_run_record(tmp_path)
    assert record["data"]["normalize"] == "peak" and recorded_preprocessor(record["data"], 16000) is not None


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


def test_an_interrupted_cv_can_be_rerun_into_the_same_folder(setup):
    """A CV stopped after its first fold has no summary yet; its plan still marks the folder as ser_hf's."""
    from ser_hf.training.experiment import cross_validate
    from ser_hf.training.recipes import parse_run

    tmp, common = setup
    out = tmp / "cv-interrupted"

    def stop(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cross_validate(parse_run(None, [*common, "--num_folds", "3", "--output_dir", str(out)]), progress=False,
                       on_fold=stop)
    plan = json.loads((out / "cv" / "cv_plan.json").read_text())
    assert {key: plan[key] for key in ("folds", "complete", "kind")} == {
        "folds": ["fold1", "fold2", "fold3"], "complete": False, "kind": "run"}
    assert (out / "cv" / "fold1" / "report.json").is_file() and not (out / "cv" / "cv_summary.json").exists()
    from ser_hf.baseline.folder import check_baseline_folder

    with pytest.raises(ModelError, match=r"another kind of output \(cv/cv_plan.json \(kind: run\)\)"):
        check_baseline_folder(out, "--out")  # a baseline must not take over (and delete) a run's folds
    (out / "cv" / "fold1" / "notes.txt").write_text("mine")  # a file of the user's inside: refused, nothing deleted
    with pytest.raises(ModelError, match="notes.txt"):  # other settings: the earlier folds would be replaced
        cross_validate(parse_run(None, [*common, "--num_folds", "3", "--probe_max_epochs", "4", "--output_dir",
                                        str(out)]), progress=False)
    assert (out / "cv" / "fold1" / "report.json").is_file()
    (out / "cv" / "fold1" / "notes.txt").unlink()
    result = cross_validate(parse_run(None, [*common, "--num_folds", "2", "--output_dir", str(out)]), progress=False)
    assert result.pooled.num_samples == 48 and not (out / "cv" / "cv_plan.json").exists()
    assert sorted(p.name for p in (out / "cv").iterdir() if p.is_dir()) == ["fold1", "fold2", "pooled"]
    with pytest.raises(ModelError, match=r"cv/cv_summary.json \(kind: run\)"):
        check_baseline_folder(out, "--out")


def test_cv_of_a_probe_with_copies_also_scores_test_time_copies_apart_from_the_headline(setup, capsys):
    from ser_hf.training.experiment import cross_validate
    from ser_hf.training.recipes import parse_run

    tmp, common = setup
    out = tmp / "cv-copies"
    assert main(["cv", *common, "--num_folds", "3", "--probe_speed_copies", "0.9", "1.1",
                 "--output_dir", str(out)]) == 0
    assert "With test-time copies (not the headline)" in capsys.readouterr().out
    summary = json.loads((out / "cv" / "cv_summary.json").read_text())
    copies = summary["test_time_copies"]
    assert copies["num_samples"] == summary["pooled"]["num_samples"] == 48  # the same clips, each once
    assert "test-time copies" in copies["split"] and "test-time copies" not in summary["pooled"]["split"]
    assert (out / "cv" / "test_time_copies" / "confusion_matrix.png").exists()
    assert "## With test-time copies (not the headline)" in (out / "cv" / "cv_summary.md").read_text()
    plain = cross_validate(parse_run(None, [*common, "--num_folds", "3", "--output_dir", str(tmp / "cv-plain")]),
                           progress=False)
    assert plain.test_time_copies is None  # no copies trained on, none to score with
    # Speaker-adaptive: its rows again with test-time copies, on the same enrollment draws, marked apart.
    adaptive = cross_validate(parse_run(None, [*common, "--num_folds", "3", "--probe_speed_copies", "1.1",
                                               "--probe_speaker_adaptation", "true",
                                               "--output_dir", str(tmp / "cv-adaptive")]), progress=False)
    rows = json.loads((tmp / "cv-adaptive" / "cv" / "speaker_adaptive.json").read_text())
    marked = [row for row in rows if row.get("test_time_copies")]
    assert [row["enrollment"] for row in marked] == [row["enrollment"] for row in adaptive.speaker_adaptive]
    assert len(rows) == 2 * len(marked) and adaptive.speaker_adaptive_test_time_copies is not None
    assert [row["clips_scored"] for row in marked] == [row["clips_scored"] for row in adaptive.speaker_adaptive]
    assert "## With test-time copies" in (tmp / "cv-adaptive" / "cv" / "speaker_adaptive.md").read_text()
    assert plain.speaker_adaptive_test_time_copies is None
    assert "test_time_copies" not in json.loads((tmp / "cv-plain" / "cv" / "cv_summary.json").read_text())


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


def test_output_dir_is_checked_before_any_work(setup, tmp_path, capsys):
    """A file, or a folder of the user's own files, is refused before the corpus is even read."""
    _, common = setup
    (tmp_path / "afile.txt").write_text("hi")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my own notes")
    (mine / "config.json").write_text('{"mine": 1}')
    nowhere = ["--corpus", "urdu", "--data_dir", str(tmp_path / "nowhere")]  # never reached
    for command in ("train", "cv"):
        assert main([command, *nowhere, "--output_dir", str(tmp_path / "afile.txt")]) == 2
        assert "output_dir" in (err := capsys.readouterr().err) and "afile.txt is a file" in err
        assert main([command, *nowhere, "--output_dir", str(mine)]) == 2
        assert "mine is not empty (found ['README.md', 'config.json']) and holds none of" in capsys.readouterr().err
    assert (mine / "README.md").read_text() == "my own notes" and (tmp_path / "afile.txt").read_text() == "hi"


def test_a_new_run_in_an_earlier_runs_folder_leaves_nothing_of_it_behind(setup):
    """Retraining without speaker adaptation drops the earlier adaptation (the new model would load it); a CV with
    fewer folds drops the earlier folds."""
    from ser_hf.inference.recognizer import EmotionRecognizer
    from ser_hf.training.experiment import cross_validate, train

    tmp, common = setup
    out = tmp / "rerun"
    train(parse_run(None, [*common, "--output_dir", str(out), "--probe_speaker_adaptation", "true"]), progress=False)
    assert (out / "speaker_adaptation.json").exists()
    train(parse_run(None, [*common, "--output_dir", str(out), "--test_size", "0"]), progress=False)
    assert not (out / "speaker_adaptation.json").exists() and not (out / "speaker_adaptation.safetensors").exists()
    assert not (out / "eval").exists()  # no test part this time: the earlier test report is gone too
    with pytest.raises(SERError, match="no speaker adaptation"):
        EmotionRecognizer.from_pretrained(out).enroll("x", [])
    cross_validate(parse_run(None, [*common, "--output_dir", str(out), "--num_folds", "3"]), progress=False)
    cross_validate(parse_run(None, [*common, "--output_dir", str(out), "--num_folds", "2"]), progress=False)
    assert sorted(p.name for p in (out / "cv").iterdir() if p.is_dir()) == ["fold1", "fold2", "pooled"]


def test_only_an_earlier_runs_own_files_mark_its_folder(setup, tmp_path, capsys):
    """Folders named like a run's (eval/, checkpoints/, cv/), another command's output and the checkpoint a run
    starts from are not an earlier run's folder; a typo in data_dir costs the earlier run nothing."""
    tmp, common = setup
    user = tmp_path / "userproj"
    (user / "eval").mkdir(parents=True)
    (user / "checkpoints").mkdir()
    (user / "eval" / "results.txt").write_text("precious")
    (user / "README.md").write_text("my notes")
    export = tmp_path / "export"
    export.mkdir()
    (export / "ser_hf_run.json").write_text("{}")
    (export / "ser_hf_export.json").write_text("{}")
    for folder, said in ((user, "holds none of"), (export, "holds another kind of output (ser_hf_export.json)")):
        assert main(["train", *common, "--output_dir", str(folder)]) == 2
        assert said in capsys.readouterr().err
    assert (user / "eval" / "results.txt").read_text() == "precious" and (user / "README.md").read_text() == "my notes"
    out = tmp / "earlier"
    assert main(["train", *common, "--output_dir", str(out), "--probe_speaker_adaptation", "true"]) == 0
    model_at = common.index("--model_name_or_path") + 1
    starts_from_it = [*common[:model_at], str(out), *common[model_at + 1:]]
    assert main(["train", *starts_from_it, "--output_dir", str(out)]) == 2
    assert "is (or holds) the checkpoint it is made from" in capsys.readouterr().err
    data_at = common.index("--data_dir") + 1
    typo = [*common[:data_at], common[data_at] + "-typo", *common[data_at + 1:]]
    assert main(["train", *typo, "--output_dir", str(out)]) == 2
    assert (out / "speaker_adaptation.json").exists() and (out / "eval" / "report.json").exists()


def test_files_named_like_a_runs_are_not_its_marks_and_a_users_file_stops_a_replacement(setup, tmp_path, capsys):
    """An `ser-hf evaluate` report in eval/, or a user's hp_search.json, does not make a folder an earlier run's;
    a file of the user's inside an earlier run's cv/ or eval/ stops the new run before it deletes anything."""
    tmp, common = setup
    project = tmp_path / "project"
    (project / "eval").mkdir(parents=True)
    (project / "eval" / "report.json").write_text('{"unweighted_accuracy": 0.5, "confusion_matrix": [], "labels": []}')
    (project / "hp_search.json").write_text('{"trials": "my own optuna log"}')
    (project / "README.md").write_text("my notes")
    assert main(["train", *common, "--output_dir", str(project)]) == 2
    assert "holds none of" in capsys.readouterr().err and (project / "README.md").read_text() == "my notes"
    out = tmp / "earlier-cv"
    assert main(["cv", *common, "--num_folds", "2", "--output_dir", str(out)]) == 0
    (out / "cv" / "fold1" / "my_analysis.txt").write_text("mine")
    # another CV (the same one would resume, deleting nothing) would replace the folds: refused
    assert main(["cv", *common, "--num_folds", "2", "--fold_seed", "1", "--output_dir", str(out)]) == 2
    assert "my_analysis.txt, which ser_hf did not write there; move it away" in capsys.readouterr().err
    assert (out / "cv" / "fold1" / "my_analysis.txt").read_text() == "mine" and (out / "cv" / "fold2").is_dir()


def test_a_users_folder_inside_an_earlier_cv_stops_the_new_one(setup, capsys):
    tmp, common = setup
    out = tmp / "earlier-cv-folder"
    assert main(["cv", *common, "--num_folds", "2", "--output_dir", str(out)]) == 0
    (out / "cv" / "kept_2025").mkdir()
    (out / "cv" / "kept_2025" / "report.md").write_text("MY NOTES")  # named like a report, in a folder of its own
    assert main(["cv", *common, "--num_folds", "2", "--fold_seed", "1", "--output_dir", str(out)]) == 2
    assert "kept_2025, which ser_hf did not write there" in capsys.readouterr().err
    assert (out / "cv" / "kept_2025" / "report.md").read_text() == "MY NOTES"


def test_a_rerun_that_fails_or_is_killed_never_leaves_the_earlier_run_half_replaced(setup, monkeypatch):
    """A rerun that fails before it has a model keeps the earlier run whole (its test report, card, record); one
    killed while scoring its test part leaves the new weights with their own record and no card, never the old card
    beside new weights."""
    from ser_hf.training import experiment
    from ser_hf.training.experiment import train

    tmp, common = setup
    out = tmp / "half"
    train(parse_run(None, [*common, "--output_dir", str(out)]), progress=False)
    before = {name: (out / name).read_bytes() for name in ("README.md", "ser_hf_run.json", "eval/report.json")}

    def broken_fit(*args, **kwargs):
        raise SERError("a clip that decodes to NaN")

    with monkeypatch.context() as patch:
        patch.setattr(experiment.ProbeMethod, "fit", broken_fit)
        with pytest.raises(SERError, match="NaN"):
            train(parse_run(None, [*common, "--output_dir", str(out)]), progress=False)
    assert {name: (out / name).read_bytes() for name in before} == before

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(experiment, "evaluate_method", killed)
        with pytest.raises(KeyboardInterrupt):
            train(parse_run(None, [*common, "--output_dir", str(out), "--probe_projector_size", "4"]), progress=False)
    assert not (out / "README.md").exists() and not (out / "eval").exists()  # unfinished, and says so
    assert json.loads((out / "ser_hf_run.json").read_bytes()) != json.loads(before["ser_hf_run.json"])
    train(parse_run(None, [*common, "--output_dir", str(out)]), progress=False)  # and a rerun is accepted
    assert (out / "README.md").is_file() and (out / "eval" / "report.json").is_file()
