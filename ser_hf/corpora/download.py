"""Fetching and unpacking freely downloadable corpora, with a clear message when offline."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ser_hf._io import atomic_write_json, file_sha256, temporary_file
from ser_hf.errors import DownloadError
from ser_hf.paths import display_path, printable
from ser_hf.progress import progress_bar

logger = logging.getLogger(__name__)


def download_file(url: str, target: Path, *, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` atomically (a partial download never looks complete).

    Raises:
        DownloadError: when the host cannot be reached (offline, firewall) or the checksum differs.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = None  # a unique name, made here: never a file of the user's such as a browser's half-done NAME.part
    try:
        partial = temporary_file(target)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=f"download {target.name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        if sha256 is not None and (digest := file_sha256(partial)) != sha256:
            raise DownloadError(f"{url} downloaded with SHA-256 {digest}, expected {sha256}. Retry the download.")
        partial.replace(target)
        partial = None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(
            f"Could not download {url} ({err}). This machine may be offline or the host blocked. Download it "
            f"by hand on a connected machine, unpack it, and pass the folder with --data-dir."
        ) from err
    finally:  # a failed, refused or interrupted download leaves nothing behind
        if partial is not None:
            partial.unlink(missing_ok=True)
    return target


def download_and_extract(url: str, target_dir: str | Path, archive_name: str, *, sha256: str | None = None) -> Path:
    """Download a zip archive once and unpack it into ``target_dir``; returns ``target_dir``.

    Unpacking goes to a temporary folder inside ``target_dir`` first. Each top-level entry is then moved into place
    only where nothing is there yet, or where an earlier unpacking of this archive put it (recorded in
    ``.<archive>.extracted.json``, with every file it unpacked) and nothing else has been added since: a folder of
    the user's that happens to share a name with an entry is never replaced; the run is refused before anything
    changes. Unpacking the same archive again is a no-op.

    Args:
        url: Where to download the archive from when ``target_dir`` does not hold it yet.
        target_dir: The folder to download and unpack into (created if missing).
        archive_name: The archive's file name in ``target_dir``.
        sha256: The archive's SHA-256, checked on download and on an archive already in ``target_dir``.

    Raises:
        DownloadError: the download fails, the archive's checksum differs or it is no zip, or an entry of the
            archive would replace something it did not put there.

    Example:
        ```python
        >>> download_and_extract(URL, "~/corpora/emodb", "emodb.zip")  # doctest: +SKIP
        PosixPath('/home/me/corpora/emodb')

        ```
    """
    target_dir = Path(target_dir).expanduser()
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / archive_name
    if archive.exists() or archive.is_symlink():
        if not archive.is_file():  # a folder, a FIFO (the hash would wait for ever), /dev/zero, a link to nothing
            raise DownloadError(f"{display_path(archive)} is not a regular file (a folder, a pipe, a device or a link "
                                f"to nothing), so it is no earlier download of {archive_name}; nothing was changed. "
                                f"Move it away, or pass another --out.")
        _check_existing_archive(archive, sha256)
    else:
        download_file(url, archive, sha256=sha256)
    digest = sha256 or file_sha256(archive)
    record_path = target_dir / f".{archive_name}.extracted.json"
    earlier = _read_record(record_path)
    if earlier.get("sha256") == digest and earlier.get("entries") and all(
            os.path.lexists(target_dir / name) for name in earlier["entries"]):
        logger.info("%s is already unpacked in %s (recorded in %s)", archive, target_dir, record_path.name)
        return target_dir
    with tempfile.TemporaryDirectory(prefix=f".{archive_name}.unpack-", dir=target_dir) as tmp:
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(tmp)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{display_path(archive)} is not a valid zip archive ({err}). Delete it and download again.") from err
        except OSError as err:  # entries that cannot be files here (a name under a file, a link stored as a file, ...)
            raise DownloadError(f"{display_path(archive)} cannot be unpacked ({printable(str(err))}); nothing was changed "
                                f"in {display_path(target_dir)}. Delete "
                                f"the archive and download it again, or unpack it by hand.") from err
        _move_into_place(Path(tmp), target_dir, archive, record_path, earlier, digest)
    logger.info("unpacked %s into %s", archive, target_dir)
    return target_dir


def _check_existing_archive(archive: Path, sha256: str | None) -> None:
    """Verify an archive found in the target folder against ``sha256``, or say it is reused unverified."""
    if sha256 is None:
        logger.warning("reusing %s, already in the folder, unverified (no checksum is known for it); delete it to "
                       "download it again", archive)
        return
    digest = file_sha256(archive)
    if digest != sha256:
        raise DownloadError(f"{display_path(archive)}, already in the folder, has SHA-256 {digest}, expected {sha256}: it is "
                            f"incomplete or another file. Delete it (or move it away) and run again to download it.")
    logger.info("reusing %s (SHA-256 verified)", archive)


def _read_record(path: Path) -> dict:
    """The record of an earlier unpacking (entries and files it put there), or ``{}`` when none is readable."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("ignoring %s: not a readable record of an earlier unpacking", path)
        return {}
    ok = (isinstance(record, dict) and isinstance(record.get("entries"), list)
          and isinstance(record.get("files"), list))
    return record if ok else {}


def _files_under(path: Path, root: Path) -> set[str]:
    """Every file (and link) at or under ``path``, as paths relative to ``root``; folders are not listed."""
    if path.is_symlink() or not path.is_dir():
        return {path.relative_to(root).as_posix()}
    found = set()
    for folder, dirs, files in os.walk(path):
        links = [name for name in dirs if os.path.islink(os.path.join(folder, name))]
        found.update((Path(folder) / name).relative_to(root).as_posix() for name in files + links)
    return found


def _digest(path: Path) -> str | None:
    """A file's SHA-256 (None for a link or a folder: only regular files are compared)."""
    return file_sha256(path) if path.is_file() and not path.is_symlink() else None


def _as_list(digest) -> list:
    """A recorded digest (a string, or the list an interrupted unpacking records) as a list."""
    return list(digest) if isinstance(digest, list) else [digest]


def _move_into_place(unpacked: Path, target_dir: Path, archive: Path, record_path: Path, earlier: dict,
                     digest: str) -> None:
    """Move the unpacked top-level entries into ``target_dir``, after checking that none replaces anything an
    earlier unpacking of this archive (``earlier``) did not put there; refuses before changing anything."""
    entries = sorted(item.name for item in unpacked.iterdir())
    files = sorted(_files_under(unpacked, unpacked))
    recorded_entries, recorded_files = set(earlier.get("entries", [])), set(earlier.get("files", []))
    for name in entries:
        destination = target_dir / name
        if not os.path.lexists(destination):
            continue
        if name not in recorded_entries:
            raise DownloadError(
                f"{display_path(archive)} holds a top-level {printable(name)!r}, but {display_path(destination)} "
                f"already exists and was not unpacked from this archive; unpacking would replace it. Nothing was changed. Pass another --out (an empty or "
                f"new folder), or move {display_path(destination)} away and run again.")
        present = _files_under(destination, target_dir)
        added = sorted(present - recorded_files)
        if added:
            raise DownloadError(
                f"{display_path(destination)} was unpacked from {display_path(archive.name)} earlier but now also holds "
                f"files the archive did not put there ({added[:5]}{' ...' if len(added) > 5 else ''}); unpacking again would delete them. "
                f"Nothing was changed. Move those files (or {display_path(destination)}) away, or pass another --out.")
        recorded_digests = earlier.get("digests") if isinstance(earlier.get("digests"), dict) else {}
        edited = sorted(name for name in present if name in recorded_digests
                        and _digest(target_dir / name) not in _as_list(recorded_digests[name]))
        if edited:
            raise DownloadError(
                f"{display_path(destination)} was unpacked from {display_path(archive.name)} earlier, but {edited[:5]}"
                f"{' ...' if len(edited) > 5 else ''} changed since; unpacking again would replace the edits. Nothing "
                f"was changed. Move {display_path(destination)} away (or copy the edited files), or pass another --out.")
    digests = {name: _digest(unpacked / name) for name in files}
    # Recorded before the moves (with the earlier entries), so an interrupted run can be resumed by running again:
    # until the moves end, a file may hold the earlier archive's bytes or this one's, and both are ours.
    earlier_digests = earlier.get("digests") if isinstance(earlier.get("digests"), dict) else {}
    either = {name: sorted({*_as_list(earlier_digests.get(name)), *_as_list(digests.get(name))} - {None})
              for name in set(earlier_digests) | set(digests)}
    both = {"entries": sorted(recorded_entries | set(entries)), "files": sorted(recorded_files | set(files)),
            "digests": either}
    atomic_write_json(record_path, {"archive": archive.name, "sha256": None, **both}, indent=1)
    aside = Path(tempfile.mkdtemp(prefix=".replaced-", dir=unpacked))  # deleted with ``unpacked``
    for name in entries:
        destination = target_dir / name
        if os.path.lexists(destination):
            os.replace(destination, aside / name)
        os.replace(unpacked / name, destination)
    atomic_write_json(record_path, {"archive": archive.name, "sha256": digest, "entries": entries, "files": files,
                                    "digests": digests}, indent=1)
