"""Hub metadata: what the Hub parses from a card (offline), --license on train and push, the metric's card."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import json

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard

from ser_hf.cards import (
    CARD_DATA_FILE,
    card_from_run,
    update_model_card,
    validate_license,
    validate_license_terms,
    write_model_card,
)
from ser_hf.cli import main
from ser_hf.corpora import load_corpus
from ser_hf.errors import SERError
from ser_hf.evaluation import SER_METRIC_PATH, EvaluationReport
from ser_hf.evaluation.metrics.ser_metrics.ser_metrics import SerMetrics
from ser_hf.hub import push_model
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.push_folder import HubError
from ser_hf.splits import RANDOM_SPLIT, speaker_split
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training.arguments import DataArguments
from ser_hf.training.recipes import parse_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint with a test report (speakers and genders, a temperature) and the run that made it."""
    tmp = tmp_path_factory.mktemp("hubcard")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.3)
    run = parse_run(None, ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path", "whisper-base",
                           "--output_dir", str(tmp / "out")])
    dataset = load_corpus("urdu", corpus)
    splits = speaker_split(dataset, test_size=0.3, validation_size=0.2)
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), dataset.features["label"].names)
    model.config.ser_hf_calibration = {"temperature": 1.7, "fitted_on": "validation speakers: 8 clips, 2 speakers"}
    checkpoint = save_checkpoint(model, extractor, tmp / "out")
    test = splits["test"]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4), len(test))
    report = EvaluationReport.from_predictions(
        np.asarray(test["label"]), probabilities=probabilities, label_names=dataset.features["label"].names,
        groups=test["speaker"], genders=test["gender"], temperature=1.7, model="whisper-base", corpus="urdu",
        split="test", n_resamples=100)
    report.write(checkpoint / "eval")
    return run, splits, report, checkpoint


def _with_hub_dataset(run, dataset_id: str):
    """The run as if its data were a `datasets` dataset (``--dataset_name``)."""
    return dataclasses.replace(run, data=DataArguments(dataset_name=dataset_id))


def test_the_hub_parses_every_metadata_field_and_the_eval_results(trained):
    run, splits, report, checkpoint = trained
    card_data = card_from_run(_with_hub_dataset(run, "someone/urdu-emotions"), splits, report, checkpoint,
                              license="cc-by-nc-sa-4.0")
    card = ModelCard.load(write_model_card(checkpoint, card_data))
    data = card.data
    assert (data.license, data.base_model, data.pipeline_tag) == (
        "cc-by-nc-sa-4.0", "openai/whisper-base", "audio-classification")
    assert data.datasets == ["someone/urdu-emotions"] and "speech-emotion-recognition" in data.tags
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {"unweighted_accuracy", "accuracy", "f1"}
    ua = results["unweighted_accuracy"]
    assert (ua.dataset_type, ua.dataset_split, ua.task_type) == ("someone/urdu-emotions", "test", "audio-classification")
    assert ua.metric_value == pytest.approx(report.unweighted_accuracy, abs=1e-4)


def test_a_local_corpus_is_not_listed_as_a_hub_dataset(trained, tmp_path):
    run, splits, report, checkpoint = trained
    local = tmp_path / "my/data"
    local.mkdir(parents=True)
    card = ModelCard.load(write_model_card(checkpoint, card_from_run(_with_hub_dataset(run, str(local)), splits,
                                                                     report, checkpoint)))
    assert card.data.datasets is None and card.data.eval_results[0].dataset_type == "data"


def test_a_corpus_card_has_its_language_and_a_random_split_says_so(trained):
    run, splits, report, checkpoint = trained
    card = ModelCard.load(write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint)))
    assert card.data.language == "ur" and card.data.datasets is None
    assert card.data.eval_results[0].dataset_type == "urdu" and "Speaker-independent hold-out" in card.text
    random = EvaluationReport.from_dict({**report.to_dict(), "metadata": {"split_kind": RANDOM_SPLIT}})
    text = write_model_card(checkpoint, card_from_run(run, splits, random, checkpoint)).read_text()
    assert "Random split (speakers may overlap): the data has no speaker ids" in text


def test_the_card_shows_who_and_the_calibration(trained):
    run, splits, report, checkpoint = trained
    text = write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint)).read_text()
    assert "### Per speaker and gender" in text and "#### Per gender" in text and "Worst speakers (lowest UA" in text
    assert "#### Per speaker\n" not in text  # every speaker's row stays in eval/report.md
    assert "![UA of every test speaker, by gender](eval/speakers.png)" in text
    scaling = report.temperature_scaling
    assert ("### Calibration\n\nThe scores are temperature-scaled: the logits are divided by T = 1.7, fitted on "
            "validation speakers: 8 clips, 2 speakers") in text
    assert (f"test speakers: {100 * scaling['expected_calibration_error_before']:.1f}% before, "
            f"{100 * scaling['expected_calibration_error_after']:.1f}% after") in text


def test_a_skipped_temperature_is_said(trained, tmp_path):
    from ser_hf.cards import SERModelCardData
    from ser_hf.cards.tables import calibration_text

    card = SERModelCardData()
    card.calibration = {"temperature": 1.0, "fitted_on": "validation speakers: 9 clips, 2 speakers",
                        "skipped": "these clips cannot tell the temperature (none is misclassified, ...)"}
    expected = ("The scores are not temperature-scaled: these clips cannot tell the temperature (none is "
                "misclassified, ...) (validation speakers: 9 clips, 2 speakers).")
    assert calibration_text(card.calibration, None) == expected == card.to_dict()["calibration_text"]


def test_update_model_card_sets_the_licence_and_keeps_the_rest(trained):
    run, splits, report, checkpoint = trained
    write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint, model_id="me/ser-urdu"))
    assert json.loads((checkpoint / CARD_DATA_FILE).read_text())["model_id"] == "me/ser-urdu"
    before = (checkpoint / "README.md").read_text()
    assert "**Licence:** not set by the author" in before
    path = update_model_card(checkpoint, license="cc-by-4.0")
    after = path.read_text()
    assert ModelCard.load(path).data.license == "cc-by-4.0" and "**Licence:** cc-by-4.0" in after
    assert 'model="me/ser-urdu"' in after and "#### Per gender" in after
    with pytest.raises(SERError, match=r"unknown card field\(s\) \['licence'\]; choose from"):
        update_model_card(checkpoint, licence="mit")
    with pytest.raises(SERError, match=r"has no ser_hf_card.json, the card data ser_hf writes"):
        update_model_card(checkpoint / "eval", license="mit")


@pytest.mark.parametrize("bad", ["CC BY 4.0", "Apache-2.0", "mit license", "notalicense", "cc-by-nc-sa-5.0"])
def test_licences_must_be_hub_ids(bad, tmp_path):
    """Every path a licence takes into a card (train, push, update_model_card) holds it to the Hub's list."""
    assert validate_license("cc-by-nc-sa-4.0") == "cc-by-nc-sa-4.0" and validate_license("openrail++")
    with pytest.raises(SERError, match=rf"--license '{bad}' is not a Hub licence id; expected one of the ids"):
        validate_license(bad)
    with pytest.raises(SERError, match=rf"license '{bad}' is not a Hub licence id"):
        update_model_card(tmp_path, license=bad)  # checked before the folder is read


def test_terms_no_hub_licence_id_fits_go_with_other_and_reach_the_cards_metadata(trained):
    run, splits, report, checkpoint = trained
    write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint))
    path = update_model_card(checkpoint, license="other", license_name="urdu-research-only",
                             license_link="https://github.com/siddiquelatif/URDU-Dataset")
    data = ModelCard.load(path).data
    assert (data.license, data.license_name, data.license_link) == (
        "other", "urdu-research-only", "https://github.com/siddiquelatif/URDU-Dataset")
    assert validate_license_terms("other", "x-1.0", "LICENSE") is None  # a file in the repo is a link too
    with pytest.raises(SERError, match=r"--license-name and --license-link describe terms that no Hub licence id "
                                       r"fits, so they go with --license other \(got --license 'mit'\)"):
        validate_license_terms("mit", "x", "LICENSE")
    with pytest.raises(SERError, match=r"--license-name 'Research Only' is not an id; expected lowercase"):
        validate_license_terms("other", "Research Only", None)
    with pytest.raises(SERError, match=r"--license-link 'see the paper' is neither an http\(s\) URL nor a file"):
        validate_license_terms("other", None, "see the paper")
    with pytest.raises(SERError, match=r"license_name describe terms .* go with license other \(got license 'mit'\)"):
        update_model_card(checkpoint, license="mit", license_name="x")  # in Python too
    update_model_card(checkpoint, language="ur")  # other fields keep the terms
    assert ModelCard.load(path).data.license_name == "urdu-research-only"
    data = ModelCard.load(update_model_card(checkpoint, license="mit")).data  # another licence id drops them
    assert (data.license, data.get("license_name"), data.get("license_link")) == ("mit", None, None)


@pytest.mark.usefixtures("single_torch_thread")
def test_train_takes_a_licence(tmp_path, capsys):
    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.3)
    common = ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path",
              str(tiny_backbone("whisper", tmp_path / "tiny-whisper")), "--max_source_positions", "50",
              "--probe_projector_size", "8", "--embedding_cache_dir", str(tmp_path / "cache")]
    assert main(["train", *common, "--output_dir", str(tmp_path / "bad"), "--license", "CC BY"]) == 2
    assert "--license 'CC BY' is not a Hub licence id" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before any training
    assert main(["train", *common, "--output_dir", str(tmp_path / "bad"), "--license", "notalicense"]) == 2
    assert "--license 'notalicense' is not a Hub licence id; expected one of the ids" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "model"
    assert main(["train", *common, "--output_dir", str(out), "--license", "cc-by-nc-sa-4.0"]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and "**Licence:** cc-by-nc-sa-4.0" in card.text
    assert {r.metric_type for r in card.data.eval_results} == {"unweighted_accuracy", "accuracy", "f1"}
    assert main(["train", *common, "--output_dir", str(tmp_path / "bad2"), "--license-name", "x"]) == 2
    assert "--license-name describe terms that no Hub licence id fits" in capsys.readouterr().err
    assert not (tmp_path / "bad2").exists()
    out = tmp_path / "other"
    assert main(["train", *common, "--output_dir", str(out), "--license", "other", "--license-name", "my-terms",
                 "--license-link", "https://example.org/terms"]) == 0
    data = ModelCard.load(out / "README.md").data
    assert (data.license, data.license_name, data.license_link) == ("other", "my-terms", "https://example.org/terms")


def test_push_with_a_licence_offline_leaves_the_card_alone(trained, monkeypatch):
    run, splits, report, checkpoint = trained
    write_model_card(checkpoint, card_from_run(run, splits, report, checkpoint))
    before = (checkpoint / "README.md").read_text()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline mode is on"):
        push_model(checkpoint, "me/ser-urdu", license="mit")
    assert (checkpoint / "README.md").read_text() == before
    with pytest.raises(HubError, match=r"--license 'mit' for the released model 'emotion-whisper-base': its licence "
                                       r"is 'cc-by-nc-sa-4.0'"):
        push_model("emotion-whisper-base", "me/emotion", license="mit")
    with pytest.raises(SERError, match=r"--license 'MIT' is not a Hub licence id"):
        push_model(checkpoint, "me/ser-urdu", license="MIT")
    card_data = (checkpoint / CARD_DATA_FILE).read_bytes()
    for licence in ("notalicense", "gpl-4.0", "cc-by-nc-sa"):  # lowercase ids the Hub does not list
        with pytest.raises(HubError, match=rf"--license '{licence}' is not a Hub licence id; expected one of the ids"):
            push_model(checkpoint, "me/ser-urdu", license=licence)
    assert (checkpoint / CARD_DATA_FILE).read_bytes() == card_data
    with pytest.raises(SERError, match=r"--license-link describe terms that no Hub licence id fits"):
        push_model(checkpoint, "me/ser-urdu", license="mit", license_link="LICENSE")
    with pytest.raises(HubError, match=r"--license-name 'mine' for the released model 'emotion-whisper-tiny.en-urdu': "
                                       r"its licence terms are set by its training data"):
        push_model("emotion-whisper-tiny.en-urdu", "me/emotion", license="other", license_name="mine")
    assert (checkpoint / "README.md").read_text() == before


def test_the_metric_module_has_a_metric_card():
    text = (SER_METRIC_PATH / "README.md").read_text(encoding="utf-8")
    _, header, body = text.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["title"] == "SER metrics" and {"evaluate", "metric"} <= set(meta["tags"])
    for section in ("# Metric Card for SER metrics", "## Metric Description", "## How to Use", "### Inputs",
                    "### Output Values", "### Examples", "## Limitations and Bias", "## Citation"):
        assert f"\n{section}\n" in f"\n{body}"
    # Every argument and every returned key is documented.
    arguments = [name for name in inspect.signature(SerMetrics._compute).parameters if name != "self"]
    inputs = body.split("### Inputs")[1].split("### Output Values")[0]
    outputs = body.split("### Output Values")[1].split("####")[0]
    assert all(f"**{name}**" in inputs for name in arguments)
    returned = SerMetrics()._compute([0, 1], [0, 1], label_names=["a", "b"])
    assert all(f"**{key}**" in outputs for key in returned)
    # Its examples run and print what the card says.
    examples = doctest.DocTestParser().get_doctest(body, {}, "ser_metrics/README.md", None, 0)
    assert len(examples.examples) >= 6
    runner = doctest.DocTestRunner()
    runner.run(examples)
    assert runner.summarize(verbose=False).failed == 0
