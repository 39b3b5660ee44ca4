"""Fetching and unpacking freely downloadable corpora, with a clear message when offline."""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ser_hf._io import file_sha256
from ser_hf.errors import DownloadError
from ser_hf.progress import progress_bar

logger = logging.getLogger(__name__)


def download_file(url: str, target: Path, *, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` atomically (a partial download never looks complete).

    Raises:
        DownloadError: when the host cannot be reached (offline, firewall) or the checksum differs.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=f"download {target.name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Could not download {url} ({err}). This machine may be offline or the host blocked. Download it "
            f"by hand on a connected machine, unpack it, and pass the folder with --data-dir."
        ) from err
    if sha256 is not None:
        digest = file_sha256(partial)
        if digest != sha256:
            partial.unlink()
            raise DownloadError(f"{url} downloaded with SHA-256 {digest}, expected {sha256}. Retry the download.")
    partial.replace(target)
    return target


def download_and_extract(url: str, target_dir: str | Path, archive_name: str, *, sha256: str | None = None) -> Path:
    """Download a zip archive once and unpack it into ``target_dir``; returns ``target_dir``.

    Unpacking goes to a temporary folder first and is moved into place at the end, so an interrupted
    run leaves no half-extracted corpus behind.
    """
    target_dir = Path(target_dir).expanduser()
    archive = target_dir / archive_name
    if not archive.exists():
        download_file(url, archive, sha256=sha256)
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(tmp)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{archive} is not a valid zip archive ({err}). Delete it and download again.") from err
        for item in Path(tmp).iterdir():
            destination = target_dir / item.name
            if destination.exists():
                shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
            item.replace(destination)
    logger.info("unpacked %s into %s", archive, target_dir)
    return target_dir
