import zipfile

import pytest

from ser_hf.corpora import download
from ser_hf.corpora.download import download_and_extract, download_file, file_sha256
from ser_hf.errors import DownloadError


def _zip(tmp_path):
    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Corpus/Actor_01/a.txt", "hello")
    return archive


def test_download_and_extract_from_a_local_url(tmp_path):
    archive = _zip(tmp_path)
    target = download_and_extract(archive.as_uri(), tmp_path / "out", "corpus.zip", sha256=file_sha256(archive))
    assert (target / "Corpus" / "Actor_01" / "a.txt").read_text() == "hello"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [".corpus.zip.extracted.json", "Corpus",
                                                                           "corpus.zip"]


def test_checksum_mismatch_leaves_nothing(tmp_path):
    archive = _zip(tmp_path)
    with pytest.raises(DownloadError, match=r"SHA-256 .* expected 0+"):
        download_file(archive.as_uri(), tmp_path / "out" / "c.zip", sha256="0" * 64)
    assert not list((tmp_path / "out").iterdir())


def test_offline_download_says_what_to_do(tmp_path):
    # Port 9 on loopback refuses at once, like a machine without network.
    with pytest.raises(DownloadError, match=r"Could not download http://127.0.0.1:9/x.zip.*--data-dir"):
        download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_archive(tmp_path):
    (tmp_path / "c.zip").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match=r"c.zip is not a valid zip archive"):
        download_and_extract("http://127.0.0.1:9/never-used", tmp_path, "c.zip")


@pytest.mark.parametrize("corpus", ["urdu", "ravdess", "emodb"])
def test_registered_downloads_fail_clearly_offline(tmp_path, monkeypatch, corpus):
    monkeypatch.setattr(download.urllib.request, "urlopen", _refuse)
    from ser_hf.corpora import download_corpus

    with pytest.raises(DownloadError, match=r"Could not download .*offline"):
        download_corpus(corpus, tmp_path)


def _refuse(*args, **kwargs):
    raise download.urllib.error.URLError("[Errno -2] Name or service not known")


def test_a_download_never_opens_nor_removes_a_file_it_did_not_write(tmp_path):
    """A browser's half-done 'x.zip.part', or a link of that name to the user's file, beside the download: untouched
    whether the download fails or succeeds (the partial download has a name of its own)."""
    archive = _zip(tmp_path)
    (tmp_path / "thesis.txt").write_text("my thesis")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.zip.part").write_text("a browser's partial download")
    (out / "d.zip.part").symlink_to(tmp_path / "thesis.txt")
    with pytest.raises(DownloadError):
        download_file("http://127.0.0.1:9/c.zip", out / "c.zip", timeout=5)
    download_file(archive.as_uri(), out / "d.zip", sha256=file_sha256(archive))
    assert (out / "c.zip.part").read_text() == "a browser's partial download"
    assert (tmp_path / "thesis.txt").read_text() == "my thesis" and (out / "d.zip").read_bytes() == archive.read_bytes()
    assert sorted(path.name for path in out.iterdir()) == ["c.zip.part", "d.zip", "d.zip.part"]


def test_download_out_that_can_be_no_folder_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    """--out a file, a path below a file or a link to nothing: refused naming --out; a failed download leaves no
    empty folder behind."""
    from ser_hf.cli import main
    from ser_hf.corpora import download_corpus

    monkeypatch.setattr(download.urllib.request, "urlopen", _refuse)
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out, expected in (("file", "--out .*file is a file"), ("file/sub", "cannot be created: .*file is a file"),
                          ("dangling", "--out .*dangling is a symbolic link to .*nowhere.*which does not exist"),
                          ("-", "--out -: ser_hf writes the urdu corpus into a folder, not to standard output")):
        with pytest.raises(DownloadError, match=expected):
            download_corpus("urdu", tmp_path / out if out != "-" else "-")
    assert main(["data", "download", "--corpus", "urdu", "--out", str(tmp_path / "new")]) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dangling", "file"]


def test_something_that_is_no_archive_where_the_archive_goes_is_refused_not_read(tmp_path):
    """A folder, a FIFO (hashing it would wait for ever) or a link to /dev/zero (for ever too) named like the archive:
    refused naming it, nothing changed."""
    import os

    out = tmp_path / "out"
    out.mkdir()
    for make in (lambda path: path.mkdir(), os.mkfifo, lambda path: path.symlink_to("/dev/zero"),
                 lambda path: path.symlink_to(tmp_path / "nowhere")):
        make(out / "c.zip")
        with pytest.raises(DownloadError, match=r"c.zip is not a regular file .* Move it away, or pass another --out"):
            download_and_extract("http://127.0.0.1:9/never-used", out, "c.zip", sha256="0" * 64)
        assert sorted(path.name for path in out.iterdir()) == ["c.zip"]
        if (out / "c.zip").is_dir() and not (out / "c.zip").is_symlink():
            (out / "c.zip").rmdir()
        else:
            (out / "c.zip").unlink()
