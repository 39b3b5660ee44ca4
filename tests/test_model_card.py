"""Model cards: Hub-valid metadata, the required sections, only non-default hyperparameters."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from huggingface_hub import ModelCard

from ser_hf.cards import (
    SERModelCardData,
    card_from_run,
    non_default_hyperparameters,
    render_model_card,
    template_path,
    write_model_card,
)
from ser_hf.corpora import load_corpus
from ser_hf.errors import SERError
from ser_hf.evaluation import EvaluationReport
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.splits import speaker_split
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.recipes import parse_run

SECTIONS = [
    "# whisper-base probe SER on URDU, 4 emotions", "## Model details", "## How to use", "## Training data",
    "## Training procedure", "## Evaluation", "## Intended use", "## Out-of-scope use", "## Limitations and bias",
    "## Ethical considerations", "## Citation", "## Framework versions",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """What train() has at its end: the run, its speaker split, a saved checkpoint and its test report."""
    tmp = tmp_path_factory.mktemp("card")
    corpus = make_corpus_tree("urdu", tmp / "urdu")
    run = parse_run(None, ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path", "whisper-base",
                           "--max_source_positions", "150", "--probe_max_epochs", "50", "--output_dir", str(tmp / "out")])
    dataset = load_corpus("urdu", corpus)
    splits = speaker_split(dataset, test_size=run.data.test_size, validation_size=run.data.validation_size)
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), dataset.features["label"].names)
    checkpoint = save_checkpoint(model, extractor, tmp / "out")
    test = splits["test"]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4), len(test))
    report = EvaluationReport.from_predictions(
        np.asarray(test["label"]), probabilities=probabilities, label_names=dataset.features["label"].names,
        groups=test["speaker"], model="whisper-base", corpus="urdu", split="test", n_resamples=200)
    report.write(checkpoint / "eval")
    return run, splits, report, checkpoint


def test_card_metadata_parses_with_huggingface_hub(trained):
    run, splits, report, checkpoint = trained
    path = write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint, license="other"))
    card = ModelCard.load(path)
    assert (card.data.pipeline_tag, card.data.library_name, card.data.language) == (
        "audio-classification", "transformers", "ur")
    assert card.data.base_model == "openai/whisper-base" and card.data.license == "other"
    index = card.data.to_dict()["model-index"][0]
    assert index["name"] == "whisper-base probe SER on URDU, 4 emotions"
    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) == {"unweighted_accuracy", "accuracy", "f1"}
    ua = results["unweighted_accuracy"]
    assert (ua.task_type, ua.dataset_type, ua.dataset_split) == ("audio-classification", "urdu", "test")
    assert ua.metric_value == pytest.approx(report.unweighted_accuracy, abs=1e-4)
    assert results["f1"].metric_args == {"average": "macro"}


def test_card_has_every_section_and_the_facts(trained):
    run, splits, report, checkpoint = trained
    card = card_from_run(run, splits, report, checkpoint, model_id="someone/ser-urdu")
    text = write_model_card(checkpoint, card).read_text()
    low, high = report.confidence_intervals["unweighted_accuracy"]
    expected = [
        *SECTIONS,
        'pipeline("audio-classification", model="someone/ser-urdu")',
        "natural (not acted) emotional Urdu speech", "research use only",  # corpus description and licence
        "Speaker-independent hold-out", "| **speakers** |",  # split protocol and counts per part
        f"| {splits['test'].features['label'].names[0]} |",
        f"[{100 * low:.1f}, {100 * high:.1f}]",  # UA with its speaker-bootstrap interval
        "![Confusion matrix on the test speakers](eval/confusion_matrix.png)",
        "hiring", "policing", "consent", "Acted versus natural speech", "Language and culture",
        "@software{ser_hf", "Latif", "- transformers ",
    ]
    missing = [snippet for snippet in expected if snippet not in text]
    assert not missing


def test_only_non_default_hyperparameters_are_listed(trained):
    run, splits, report, checkpoint = trained
    changed = {row["name"]: row for row in non_default_hyperparameters(run)}
    assert set(changed) == {"max_source_positions", "probe_max_epochs"}  # paths and the base model are not listed
    assert (changed["probe_max_epochs"]["value"], changed["probe_max_epochs"]["default"]) == (50, 200)
    text = write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint)).read_text()
    assert "| `probe_max_epochs` | probe | 50 | 200 |" in text
    assert "`learning_rate`" not in text and "`output_dir`" not in text and "`data_dir`" not in text


def test_training_log_from_the_trainer_state(trained, tmp_path):
    run, splits, report, checkpoint = trained
    state = {"log_history": [{"loss": 1.3, "epoch": 1.0, "step": 5},
                             {"eval_unweighted_accuracy": 0.41, "eval_loss": 1.2, "epoch": 1.0, "step": 5},
                             {"eval_unweighted_accuracy": 0.57, "eval_loss": 1.0, "epoch": 2.0, "step": 10}]}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    try:
        text = write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint)).read_text()
    finally:
        (checkpoint / "trainer_state.json").unlink()
    assert "the model kept is the one from epoch 2)" in text and "| 2 | 10 | 0.57 | 1 |" in text


def test_training_log_from_a_fitted_method(trained):
    run, splits, report, checkpoint = trained
    history = [{"eval_unweighted_accuracy": 0.5, "eval_loss": 1.1, "epoch": 1.0, "step": 4},
               {"eval_unweighted_accuracy": 0.45, "eval_loss": 1.2, "epoch": 2.0, "step": 8}]
    finetuned = SimpleNamespace(trainer=SimpleNamespace(state=SimpleNamespace(log_history=history)))
    card = card_from_run(run, splits, report, checkpoint, method=finetuned)
    assert card.best_epoch == 1 and [row["validation UA"] for row in card.training_log] == [0.5, 0.45]
    probe = SimpleNamespace(training_log=[{"epoch": 7, "validation UA": 0.6}], best_epoch=7)
    assert card_from_run(run, splits, report, checkpoint, method=probe).best_epoch == 7


def test_card_without_a_test_report(trained):
    run, splits, _, checkpoint = trained
    card = card_from_run(run, {"train": splits["train"]}, None, checkpoint)
    text = write_model_card(checkpoint, card).read_text()
    assert "No held-out test evaluation was recorded" in text
    assert ModelCard.load(checkpoint / "README.md").data.eval_results is None


def test_bad_inputs_and_helpers(tmp_path):
    with pytest.raises(SERError, match=r"write_model_card: '.*' has no config.json; pass the checkpoint directory"):
        write_model_card(tmp_path, SERModelCardData())
    assert template_path().name == "ser_model_card_template.md" and template_path().is_file()


@pytest.mark.parametrize(("mode", "says"), [("probe", "frozen pretrained encoder"), ("finetune", "end to end"),
                                            ("partial", "top `train_top_layers` encoder layers")])
def test_card_says_how_each_training_mode_trained(trained, mode, says):
    run, splits, report, checkpoint = trained
    card = card_from_run(run, splits, report, checkpoint)
    card.mode = mode
    training_line = next(line for line in render_model_card(card).splitlines() if line.startswith("- **Training:**"))
    assert says in training_line and "not recorded" not in training_line
