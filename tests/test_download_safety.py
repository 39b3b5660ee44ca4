"""Unpacking a downloaded corpus never deletes what the archive did not put there (the re-audit's reproduction)."""

import json
import logging
import zipfile

import pytest

from ser_hf.cli import main
from ser_hf.corpora.download import download_and_extract, file_sha256
from ser_hf.errors import DownloadError

NEVER = "http://127.0.0.1:9/never-used"


def _emodb_zip(path, text="archive"):
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("wav/03a01Fa.wav", text)
        zipped.writestr("erkennung.txt", "notes")
    return path


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_download_refuses_to_replace_a_users_folder(tmp_path, capsys):
    out = tmp_path / "dl"
    (out / "wav").mkdir(parents=True)
    (out / "wav" / "my_interview.wav").write_text("mine")
    _emodb_zip(out / "emodb.zip")
    before = _tree(out)
    assert main(["data", "download", "--corpus", "emodb", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "top-level 'wav'" in err and "was not unpacked from this archive" in err and "another --out" in err
    assert _tree(out) == before  # nothing changed: no partial entry, no record
    assert sorted(p.name for p in out.iterdir()) == ["emodb.zip", "wav"]


def test_a_conflicting_file_is_refused_too(tmp_path):
    (tmp_path / "erkennung.txt").write_text("my own notes")
    _emodb_zip(tmp_path / "emodb.zip")
    with pytest.raises(DownloadError, match=r"top-level 'erkennung.txt'.*Nothing was changed.*move .*erkennung.txt away"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert (tmp_path / "erkennung.txt").read_text() == "my own notes" and not (tmp_path / "wav").exists()


def test_unpacks_beside_other_files_and_records_what_it_put_there(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("keep")
    archive = _emodb_zip(tmp_path / "emodb.zip")
    assert download_and_extract(NEVER, tmp_path, "emodb.zip") == tmp_path
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "archive"
    assert (tmp_path / "other" / "keep.txt").read_text() == "keep"
    record = json.loads((tmp_path / ".emodb.zip.extracted.json").read_text())
    assert record["entries"] == ["erkennung.txt", "wav"] and record["sha256"] == file_sha256(archive)
    assert record["files"] == ["erkennung.txt", "wav/03a01Fa.wav"]
    assert not [p for p in tmp_path.iterdir() if ".unpack-" in p.name]


def test_same_archive_again_changes_nothing(tmp_path, caplog):
    _emodb_zip(tmp_path / "emodb.zip")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    (tmp_path / "wav" / "my_note.txt").write_text("mine")  # added after unpacking: kept
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.download"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert "already unpacked" in caplog.text
    assert (tmp_path / "wav" / "my_note.txt").read_text() == "mine"


def test_an_earlier_unpacking_is_replaced_by_a_new_archive(tmp_path):
    _emodb_zip(tmp_path / "emodb.zip", text="old")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    _emodb_zip(tmp_path / "emodb.zip", text="new")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "new"


def test_files_added_to_an_earlier_unpacking_are_never_deleted(tmp_path):
    _emodb_zip(tmp_path / "emodb.zip", text="old")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    (tmp_path / "wav" / "my_interview.wav").write_text("mine")
    _emodb_zip(tmp_path / "emodb.zip", text="new")
    with pytest.raises(DownloadError, match=r"also holds files the archive did not put there \(\['wav/my_interview.wav'\]\)"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert (tmp_path / "wav" / "my_interview.wav").read_text() == "mine"
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "old"


def test_files_edited_since_an_earlier_unpacking_are_never_replaced(tmp_path):
    _emodb_zip(tmp_path / "emodb.zip", text="old")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    (tmp_path / "wav" / "03a01Fa.wav").write_text("USER EDITED")
    _emodb_zip(tmp_path / "emodb.zip", text="new")
    with pytest.raises(DownloadError, match=r"\['wav/03a01Fa.wav'\] changed since; unpacking again would replace"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "USER EDITED"
    (tmp_path / "wav" / "03a01Fa.wav").write_text("old")  # back as unpacked: the new archive replaces it
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "new"


def test_an_archive_in_the_folder_is_verified_when_a_checksum_is_known(tmp_path):
    archive = _emodb_zip(tmp_path / "emodb.zip")
    with pytest.raises(DownloadError, match=r"already in the folder, has SHA-256 .* expected 0+.*Delete it"):
        download_and_extract(NEVER, tmp_path, "emodb.zip", sha256="0" * 64)
    assert not (tmp_path / "wav").exists()
    download_and_extract(NEVER, tmp_path, "emodb.zip", sha256=file_sha256(archive))
    assert (tmp_path / "wav" / "03a01Fa.wav").is_file()


def test_an_archive_in_the_folder_without_a_checksum_is_reused_unverified(tmp_path, caplog):
    _emodb_zip(tmp_path / "emodb.zip")
    with caplog.at_level(logging.INFO, logger="ser_hf.corpora.download"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert "reusing" in caplog.text and "unverified" in caplog.text


def test_an_archive_that_cannot_be_unpacked_here_changes_nothing(tmp_path):
    with zipfile.ZipFile(tmp_path / "emodb.zip", "w") as zipped:
        zipped.writestr("a", "a file")
        zipped.writestr("a/b", "a file under a file")
    with pytest.raises(DownloadError, match=r"emodb.zip cannot be unpacked .*nothing was changed"):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emodb.zip"]


def test_an_unpacking_interrupted_among_its_moves_finishes_when_run_again(tmp_path, monkeypatch):
    import os

    _emodb_zip(tmp_path / "emodb.zip", text="old")
    download_and_extract(NEVER, tmp_path, "emodb.zip")
    _emodb_zip(tmp_path / "emodb.zip", text="new")
    real_replace = os.replace

    def interrupted(source, target):
        if str(target).endswith(os.sep + "wav"):
            raise KeyboardInterrupt  # Ctrl-C after the record, before the unpacked folder is moved in
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download_and_extract(NEVER, tmp_path, "emodb.zip")
    monkeypatch.setattr(os, "replace", real_replace)
    download_and_extract(NEVER, tmp_path, "emodb.zip")  # the earlier archive's files are ours too: no refusal
    assert (tmp_path / "wav" / "03a01Fa.wav").read_text() == "new"
