"""`ser-hf push`: folder checks, offline failure, and the upload calls (the Hub is never contacted)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, ModelCard, constants

from ser_hf.cards import SERModelCardData, write_model_card
from ser_hf.cli import push as push_cli
from ser_hf.cli.licence import license_fields
from ser_hf.errors import SERError
from ser_hf.hub import push_to_hub
from ser_hf.models.factory import build_model, save_checkpoint
from ser_hf.push_folder import MAX_CARD_BYTES, HubError, check_push_folder
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
    """Record what would be sent (the uploaded files' bytes, read during the call); a real request would fail."""
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))

    def upload_folder(self, **kwargs):
        root = Path(kwargs["folder_path"])
        sent = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        calls.append(("upload_folder", kwargs["repo_id"], {**kwargs, "files": sent}))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def snapshot(folder):
    """Every entry under ``folder`` with its bytes (links: their target) and modification time, to compare."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        content = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
        entries[path.relative_to(folder).as_posix()] = (content, info.st_mtime_ns, info.st_mode)
    return entries


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


def test_hidden_files_are_refused_unless_excluded_and_desktop_litter_is_left_out(folder):
    """A public upload of .env or .aws/credentials would publish the secrets in them: refused, with the --exclude
    options that leave them out (no suffix: never '*', which would leave out the model too). Desktop litter is
    never uploaded; .gitattributes is."""
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    with pytest.raises(HubError, match=r"hidden files \['.env'\].*secrets.*--exclude '.env' \(exclude"):
        check_push_folder(folder)
    (folder / ".aws").mkdir()
    for name in ("credentials", "config"):
        (folder / ".aws" / name).write_text("key\n")
    with pytest.raises(HubError, match=r"hidden files \['.aws/config', '.aws/credentials'\].*--exclude '.aws/\*' \("):
        check_push_folder(folder, exclude=[".env"])
    (folder / "eval" / ".netrc").write_text("machine x\n")
    with pytest.raises(HubError, match=r"--exclude '.aws/config' --exclude '.aws/credentials' --exclude 'eval/.netrc'"):
        check_push_folder(folder, exclude=[".env"])
    for name in (".DS_Store", "eval/.DS_Store", "._model.safetensors", "Thumbs.db", "eval/desktop.ini"):
        (folder / name).write_bytes(b"litter")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    files = check_push_folder(folder, exclude=[".env", ".aws/*", "eval/.netrc"])
    assert ".gitattributes" in files and "model.safetensors" in files
    assert not [name for name in files if name != ".gitattributes" and "/." in f"/{name}" or "Thumbs" in name
                or "desktop.ini" in name]


def test_a_fine_tuned_runs_trainer_checkpoints_are_never_pushed(folder):
    """ser_hf's fine-tuning keeps the Trainer's checkpoints in checkpoints/split-<digest>/checkpoint-N/ (pickles, a
    second copy of the weights, the trainer state): left out by default, as a plain Trainer's checkpoint-N/ is."""
    saved = folder / "checkpoints" / "split-0123456789" / "checkpoint-6"
    saved.mkdir(parents=True)
    for name in ("optimizer.pt", "rng_state.pth", "scheduler.pt", "training_args.bin", "model.safetensors",
                 "trainer_state.json"):
        (saved / name).write_bytes(b"x")
    files = check_push_folder(folder)
    assert not [name for name in files if name.startswith("checkpoints/")] and "model.safetensors" in files
    for name in ("a.pt", "b.pth"):  # several pickles in one folder: one pattern leaves them all out
        (folder / "extra" / name).parent.mkdir(exist_ok=True)
        (folder / "extra" / name).write_bytes(b"pickle")
    with pytest.raises(HubError, match=r"pickle-format files \['extra/a.pt', 'extra/b.pth'\].*--exclude 'extra/\*'"):
        check_push_folder(folder)
    assert "extra/a.pt" not in check_push_folder(folder, exclude=["extra/*"])


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
    # Exactly the checked files are sent, each with the folder's bytes; the folder itself is not what is uploaded.
    assert list(upload["files"]) == files
    assert all(upload["files"][name] == (folder / name).read_bytes() for name in files)
    assert upload["commit_message"] == f"Upload ser_hf model ({len(files)} files)"
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


# ------------------------------------------------------------------ the user's folder is only read (--license)


def test_a_licence_goes_into_the_uploaded_card_and_the_folder_is_left_byte_identical(folder, online, no_requests):
    before = snapshot(folder)
    assert run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit"]) == 0
    assert snapshot(folder) == before
    sent = no_requests[-1][2]["files"]
    assert ModelCard(sent["README.md"].decode()).data.license == "mit"
    assert json.loads(sent["ser_hf_card.json"])["license"] == "mit"
    assert ModelCard.load(folder / "README.md").data.license == "apache-2.0"  # still the folder's own


def test_a_refused_or_failed_push_with_a_licence_leaves_the_folder_alone(folder, online, no_requests, monkeypatch):
    (folder / "training_args.bin").write_bytes(b"pickle")  # refused by the folder check
    before = snapshot(folder)
    with pytest.raises(HubError, match=r"pickle-format files \['training_args.bin'\]"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit"])
    assert snapshot(folder) == before and no_requests == []

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(HubError, match=r"Cannot reach the Hugging Face Hub"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit", "--exclude", "training_args.bin"])
    assert snapshot(folder) == before


@pytest.mark.parametrize("licence", ["notalicense", "mit-license", "apache", "cc-by-nc-sa-5.0"])
def test_a_licence_that_is_not_a_hub_licence_id_is_refused(folder, no_requests, no_network, licence):
    before = snapshot(folder)
    with pytest.raises(HubError, match=rf"--license '{licence}' is not a Hub licence id; expected one of the ids of "
                                       r"https://huggingface.co/docs/hub/repositories-licenses.*--license other"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", licence])
    assert snapshot(folder) == before and no_requests == []
    assert license_fields(argparse.Namespace(license="openrail++", license_name=None, license_link=None))
    with pytest.raises(SERError, match=rf"--license '{licence}' is not a Hub licence id"):  # train --license too
        license_fields(argparse.Namespace(license=licence, license_name=None, license_link=None))


def test_a_licence_needs_the_card_data_and_names_the_folder_not_the_staging_copy(folder, online, no_requests):
    (folder / "ser_hf_card.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(HubError, match=r"ser_hf_card.json in '.*model' is not valid JSON.*push without --license"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit"])
    (folder / "ser_hf_card.json").write_text('{"tags": 5}', encoding="utf-8")
    with pytest.raises(HubError, match=r"ser_hf_card.json in '.*model' cannot render the card again"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit"])
    (folder / "ser_hf_card.json").unlink()
    with pytest.raises(HubError, match=r"--license: '.*model' has no ser_hf_card.json among the files to upload"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser", "--license", "mit"])
    assert no_requests == []


# ------------------------------------------------------------------ links, special files, names


def test_a_symlink_to_a_file_outside_the_folder_is_refused_before_any_request(folder, tmp_path, no_requests,
                                                                               no_network, online):
    secret = tmp_path / "secret.txt"
    secret.write_text("token=hf_secret")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "eval" / "more.txt").symlink_to("../../secret.txt")  # relative, still outside
    with pytest.raises(HubError, match=r"'eval/more.txt' is a symlink to '.*secret.txt', outside the folder.*"
                                       r"'notes.txt' is a symlink to '.*secret.txt', outside the folder.*--exclude"):
        run_cli(["--model", str(folder), "--repo-id", "me/ser"])
    assert no_requests == []
    # Left out, it is not read at all.
    assert "notes.txt" not in check_push_folder(folder, exclude=["notes.txt", "eval/more.txt"])


def test_links_to_folders_outside_and_dangling_or_looping_links_are_refused(folder, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "data.txt").write_text("x")
    (folder / "data").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(HubError, match=r"'data' is a symlink to the folder '.*elsewhere', outside the folder"):
        check_push_folder(folder)
    (folder / "data").unlink()
    (folder / "gone.txt").symlink_to(tmp_path / "nothing-here")
    (folder / "loop").symlink_to(folder / "loop")
    with pytest.raises(HubError, match=r"'gone.txt' is a dangling symlink .*'loop' is a dangling symlink"):
        check_push_folder(folder)
    # Trainer logs kept elsewhere are not uploaded, so their link is not refused.
    (folder / "gone.txt").unlink()
    (folder / "loop").unlink()
    (folder / "runs").symlink_to(tmp_path / "elsewhere")
    assert not any(name.startswith("runs") for name in check_push_folder(folder))


def test_links_inside_the_folder_and_hard_links_are_uploaded(folder, tmp_path, online, no_requests):
    (folder / "eval" / "figure.png").symlink_to("confusion_matrix.png")
    os.link(folder / "config.json", folder / "config-copy.json")
    (folder / "latest").symlink_to(folder / "eval")  # a folder inside: its files go under their own paths
    assert push_to_hub(folder, "me/ser").endswith("/commit/abc")
    sent = no_requests[-1][2]["files"]
    assert sent["eval/figure.png"] == sent["eval/confusion_matrix.png"] == b"\x89PNG"
    assert sent["config-copy.json"] == (folder / "config.json").read_bytes()
    assert not any(name.startswith("latest") for name in sent)


def test_a_link_to_an_excluded_file_inside_is_refused(folder):
    """notes.txt -> .git/config would upload what the default exclusion of .git keeps out (a token, say)."""
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[credential]\n\ttoken = secret\n")
    (folder / "notes.txt").symlink_to(".git/config")
    with pytest.raises(HubError, match=r"'notes.txt' is a symlink to '.git/config', which is left out of the upload "
                                       r"\(excluded\): the Hub would get it anyway"):
        check_push_folder(folder)
    (folder / "notes.txt").unlink()
    (folder / "plot.png").symlink_to("eval/confusion_matrix.png")
    with pytest.raises(HubError, match=r"'plot.png' is a symlink to 'eval/confusion_matrix.png', which is left out"):
        check_push_folder(folder, exclude=["eval/*"])
    assert "plot.png" in check_push_folder(folder)


def test_fifos_unreadable_files_and_names_that_are_not_utf8_are_refused(folder):
    os.mkfifo(folder / "pipe.wav")
    name = os.fsdecode(b"\xff\xfe.png")
    (folder / "eval" / name).write_bytes(b"x")
    with pytest.raises(HubError, match=r"'eval/\\\\xff\\\\xfe.png' has a name that is not UTF-8.*rename it; "
                                       r"'pipe.wav' is not a regular file \(a FIFO"):
        check_push_folder(folder)
    assert check_push_folder(folder, exclude=["pipe.wav", "eval/*.png"])


def test_a_fifo_as_the_model_card_is_refused_without_blocking(folder):
    (folder / "README.md").unlink()
    os.mkfifo(folder / "README.md")
    with pytest.raises(HubError, match=r"'README.md' is not a regular file \(a FIFO"):
        check_push_folder(folder)


# ------------------------------------------------------------------ the model card


@pytest.mark.parametrize(("card", "found"), [
    (b"---\nlicense: [unclosed\n---\n", r"ParserError: expected ',' or '\]', but got '<stream end>', line 2 column 19: license: \[unclosed"),
    (b"---\nlicense: mit\n  bad: indent\n---\n", r"ScannerError: mapping values are not allowed here, line 3 column 6: bad: indent"),
    (b"---\n- a list\n---\n", r"ValueError: repo card metadata block should be a dict"),
    (b"---\nx: !!python/object:os.system ls\n---\n", r"ConstructorError: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system', "
                                                    r"line 2 column 4"),
    (b"---\nx: " + b"[" * 5000 + b"\n---\n", r"RecursionError: maximum recursion depth exceeded"),
    (b"---\nmodel-index: 3\n---\n", r"ValueError: Invalid `model_index` in metadata cannot be parsed: "
                                     r"<class 'TypeError'> 'int' object is not iterable"),
])
def test_a_card_whose_yaml_header_cannot_be_read_is_named(folder, no_network, card, found):
    (folder / "README.md").write_bytes(card)
    with pytest.raises(HubError, match=r"README.md in '.*model' has a YAML header \(between the '---' lines\) the Hub "
                                       rf"cannot read: {found}.*\. Fix the header, or write the card again with ser_hf.cards.write_model_card"):
        push_to_hub(folder, "me/ser")


def test_a_card_that_is_not_utf8_or_is_huge_is_named(folder):
    (folder / "README.md").write_bytes(b"---\nlicense: mit\n---\nCaf\xe9\n")
    with pytest.raises(HubError, match=r"README.md in '.*model' is not UTF-8 text \(byte 24: b'\\xe9'\); save it as "
                                       r"UTF-8"):
        check_push_folder(folder)
    with open(folder / "README.md", "wb") as handle:
        handle.truncate(MAX_CARD_BYTES + 1)  # sparse: no disk used
    with pytest.raises(HubError, match=r"README.md in '.*model' holds more than 10 MiB; a model card is text"):
        check_push_folder(folder)


def test_the_hubs_check_of_the_card_is_explained(folder, online, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)

    def rejected(self, **kwargs):
        raise ValueError("Invalid metadata in README.md.\n- \"license\" must be one of [...]")

    monkeypatch.setattr(HfApi, "upload_folder", rejected)
    with pytest.raises(HubError, match=r"The Hub rejected README.md's metadata for 'me/ser' \(Invalid metadata"):
        push_to_hub(folder, "me/ser")


# ------------------------------------------------------------------ the other arguments


@pytest.mark.parametrize(("argv", "message"), [
    (["--repo-id", os.fsdecode(b"me/\xff")], r"--repo-id 'me/\\\\xff' is not a valid Hub repo id"),
    (["--repo-id", "me/x\n"], r"--repo-id 'me/x\\\\x0a' is not a valid Hub repo id"),  # one line, as every name
    (["--revision", "my branch"], r"--revision 'my branch' is not a branch name"),
    (["--revision", "a..b"], r"--revision 'a..b' is not a branch name"),
    (["--revision=-f"], r"--revision '-f' is not a branch name"),
    (["--revision", "dev.lock"], r"--revision 'dev.lock' is not a branch name"),
    (["--revision", ""], r"--revision '' is not a branch name"),
    (["--commit-message", "bad\x00byte"], r"--commit-message 'bad\\\\x00byte' is not text the Hub can store"),
    (["--commit-message", os.fsdecode(b"caf\xe9")], r"--commit-message 'caf\\\\xe9' is not text the Hub can store"),
    (["--token", "hf_abc\n"], r"--token is not a Hub token: .*\(value not shown\)"),
    (["--token", ""], r"--token is not a Hub token"),
])
def test_arguments_the_upload_would_fail_on_are_refused_first(folder, online, no_requests, no_network, argv, message):
    repo = [] if argv[0] == "--repo-id" else ["--repo-id", "me/ser"]
    with pytest.raises(HubError, match=message) as caught:
        run_cli(["--model", str(folder), *repo, *argv])
    assert no_requests == [] and "hf_abc" not in str(caught.value)


def test_exclude_must_be_a_list_and_a_long_commit_message_is_split(folder, online, no_requests):
    with pytest.raises(HubError, match=r"exclude 'training_args.bin' is not a list of glob patterns"):
        push_to_hub(folder, "me/ser", exclude="training_args.bin")
    push_to_hub(folder, "me/ser", commit_message="Rav4 model\n\nTrained on 4 classes.\n", revision="dev")
    upload = no_requests[-1][2]
    assert (upload["commit_message"], upload["commit_description"], upload["revision"]) == (
        "Rav4 model", "Trained on 4 classes.", "dev")


def test_a_branch_that_does_not_exist_is_named(folder, online, monkeypatch):
    from huggingface_hub.errors import RevisionNotFoundError

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)

    def no_branch(self, **kwargs):
        raise RevisionNotFoundError("404 Revision Not Found", response=SimpleNamespace(headers={}, request=None))

    monkeypatch.setattr(HfApi, "upload_folder", no_branch)
    with pytest.raises(HubError, match=r"--revision 'dev': 'me/ser' has no such branch. Create it first"):
        push_to_hub(folder, "me/ser", revision="dev")
