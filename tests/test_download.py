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
    assert not list((tmp_path / "out").glob("*.part"))


def test_checksum_mismatch_leaves_nothing(tmp_path):
    archive = _zip(tmp_path)
    with pytest.raises(DownloadError, match=r"SHA-256 .* expected 0+"):
        download_file(archive.as_uri(), tmp_path / "out" / "c.zip", sha256="0" * 64)
    assert not list((tmp_path / "out").iterdir())


def test_offline_download_says_what_to_do(tmp_path):
    # Port 9 on loopback refuses at once, like a machine without network.
    with pytest.raises(DownloadError, match=r"Could not download http://127.0.0.1:9/x.zip.*--data-dir"):
        download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", timeout=5)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


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
