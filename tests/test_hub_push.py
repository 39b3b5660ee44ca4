"""`ser-hf push`: folder checks, offline failure, and the upload calls (the Hub is never contacted)."""

from __future__ import annotations

import argparse
import shutil
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, constants

from ser_hf.cards import SERModelCardData, write_model_card
from ser_hf.cli import push as push_cli
from ser_hf.hub import HubError, check_push_folder, push_to_hub
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.testing.models import tiny_backbone


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A checkpoint as `ser-hf train` leaves it: weights, config, extractor, card, report figures."""
    tmp = tmp_path_factory.mktemp("push")
    model, extractor = build_model(tiny_backbone("wav2vec2", tmp / "backbone"), ["neutral", "happy", "sad", "angry"])
    checkpoint = save_checkpoint(model, extractor, tmp / "model")
    (checkpoint / "eval").mkdir()
    (checkpoint / "eval" / "confusion_matrix.png").write_bytes(b"\x89PNG")
    write_model_card(checkpoint, SERModelCardData(license="apache-2.0"))
    return checkpoint


@pytest.fixture
def folder(complete, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(complete, copy)
    return copy


@pytest.fixture
def no_requests(monkeypatch):
    """Record what would be sent; any real request would fail the test."""
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ser-hf")
    push_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["push", *argv])
    return args.func(args)


def test_offline_fails_fast_naming_offline_mode(folder, monkeypatch, no_requests, no_network):
    # Fast because nothing is tried: no request is sent and no connection opened (which would retry offline).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match=r"Cannot push to 'me/ser': Hugging Face Hub offline mode is on \(HF_HUB_OFFLINE"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser"])
    assert no_requests == []


def test_incomplete_folder_names_what_is_missing(folder):
    (folder / "README.md").unlink()
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(HubError, match=r"missing \['preprocessor_config.json', 'README.md'\].*write_model_card"):
        push_to_hub(folder, "me/ser")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(HubError, match=r"missing \['\*\.safetensors', 'preprocessor_config.json', 'README.md'\]"):
        check_push_folder(folder)


def test_pickle_files_are_refused_unless_excluded(folder):
    (folder / "training_args.bin").write_bytes(b"pickle")
    with pytest.raises(HubError, match=r"pickle-format files \['training_args.bin'\].*--exclude 'training_args.bin'"):
        check_push_folder(folder)
    assert "training_args.bin" not in check_push_folder(folder, exclude=["training_args.bin"])


def test_bad_repo_id_and_missing_folder(folder, tmp_path):
    with pytest.raises(HubError, match=r"--repo-id 'me/bad name' is not a valid Hub repo id"):
        push_to_hub(folder, "me/bad name")
    with pytest.raises(HubError, match=r"--model '.*nowhere' is not a directory"):
        push_to_hub(tmp_path / "nowhere", "me/ser")


def test_upload_sends_the_checkpoint_card_and_figures(folder, online, no_requests, capsys):
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"pickle")  # Trainer state: never uploaded
    files = check_push_folder(folder)
    assert {"README.md", "config.json", "model.safetensors", "eval/confusion_matrix.png"} <= set(files)
    assert not any(name.startswith("checkpoint-10") for name in files)
    assert run_cli(["--model", str(folder), "--repo-id", "me/ser", "--private"]) == 0
    (_, repo, create), (_, _, upload) = no_requests
    assert repo == "me/ser" and create == {"private": True, "exist_ok": True}
    assert upload["folder_path"] == str(folder) and "checkpoint-*/*" in upload["ignore_patterns"]
    assert "https://huggingface.co/me/ser/commit/abc" in capsys.readouterr().out


def test_network_and_http_errors_are_explained(folder, online, monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(HubError, match=r"Cannot reach the Hugging Face Hub to push 'me/ser'.*offline or behind a firewall"):
        push_to_hub(folder, "me/ser")

    def refused(self, repo_id, **kwargs):
        # A stand-in for the HTTP response (what the error reads from it), whatever client the hub uses.
        raise HfHubHTTPError("401 Unauthorized", response=SimpleNamespace(headers={}, request=None))

    monkeypatch.setattr(HfApi, "create_repo", refused)
    with pytest.raises(HubError, match=r"The Hub refused the upload to 'me/ser' \(401 Unauthorized\).*write access"):
        push_to_hub(folder, "me/ser")
