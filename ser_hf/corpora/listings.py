"""One recording, listed once: the checks that no file is listed twice by any spelling, nor copied under another
speaker or label.

A recording listed twice would be counted twice in training and scores, trained on with two labels, or, under two
speakers, trained and tested on in a speaker-independent split. :func:`file_identity` says when two paths are one file
(``./`` and ``x/../`` spellings, symlinks, hard links, a linked emotion folder); :func:`relisted_clips` says which
clips of a scan to drop, and why, naming both listings.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Any

from ser_hf._io import file_sha256
from ser_hf.paths import display_path, printable

#: A :class:`ser_hf.corpora.base.Clip` (its ``path``, ``speaker``, ``emotion``, ``raw_label`` and ``where``): named so,
#: not imported, since ``corpora.base`` calls this module.
Clip = Any

__all__ = ["file_identity", "relisted_clips"]


def file_identity(path: str | os.PathLike) -> tuple[int, int] | str:
    """What makes two paths one recording: the file's (device, inode), which symlinks, ``./`` spellings and hard
    links share; its real path where it cannot be stat'ed (a missing file)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return os.path.realpath(path)
    return info.st_dev, info.st_ino


def relisted_clips(clips: Sequence[Clip], root: str) -> dict[int, str]:
    """``{index: why}`` of every clip whose file another clip already lists, by any spelling (:func:`file_identity`),
    whatever the speakers and labels, and of every byte-identical copy (:func:`_content_keys`: another inode) of an
    earlier clip under another speaker or another label (copies under one speaker and label are left alone).

    Of one file's listings, the one reached without a link below the corpus ``root`` (:func:`_through_link`) is kept
    (else the first), so the link is the one named.
    """
    identities = [file_identity(clip.path) for clip in clips]
    keepers: dict[Any, int] = {}
    for index, key in enumerate(identities):
        # Links are resolved only where a file is listed again, not for every clip of the corpus.
        if key not in keepers or (_through_link(clips[keepers[key]].path, root)
                                  and not _through_link(clips[index].path, root)):
            keepers[key] = index
    contents = _content_keys(clips)
    copies: dict[Any, Clip] = {}
    reasons = {}
    for index, (clip, key) in enumerate(zip(clips, identities)):
        if keepers[key] != index:
            pair = sorted((keepers[key], index))
            reasons[index] = _relisted(clips[keepers[key]], clip, "the same audio file as", "listed again",
                                       [clips[i] for i in pair], _why_kept(clips[keepers[key]], clip, root))
            continue
        copied = copies.setdefault(contents[clip.path], clip) if clip.path in contents else clip
        if copied is not clip and (copied.speaker != clip.speaker or copied.emotion != clip.emotion):
            reasons[index] = _relisted(copied, clip, "a byte-identical copy of", "listed", [copied, clip],
                                       "listed first")
    return reasons


def _why_kept(kept: Clip, clip: Clip, root: str) -> str:
    """Why ``kept`` is the listing of one file kept over ``clip`` (by :func:`relisted_clips`' rule), for messages."""
    if not _through_link(kept.path, root) and _through_link(clip.path, root):
        return "the file's own path; the other listing goes through a symbolic link"
    if _through_link(kept.path, root):
        return "listed first, since both listings go through symbolic links and neither is the file's own path"
    return "listed first, since both name the file without a symbolic link (hard links, or two spellings of one path)"


def _through_link(path: str, root: str) -> bool:
    """Whether ``path`` reaches its file through a symbolic link below the corpus ``root`` (the file, or a folder
    between it and the root); for a path outside the root (a manifest's clip elsewhere), anywhere on the path.

    The root itself may be a link, or lie under one (``~/data -> /mnt/data``, macOS's ``/tmp``): that link is on every
    clip's path, so counting it would make every listing "linked" and keep a linked emotion folder's listing instead
    of the real file's.
    """
    absolute = os.path.abspath(path)
    base = root if os.path.isdir(root) else os.path.dirname(root)  # a manifest passed as the file itself
    relative = os.path.relpath(absolute, base)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return os.path.realpath(absolute) != absolute
    return os.path.realpath(absolute) != os.path.normpath(os.path.join(os.path.realpath(base), relative))


def _relisted(kept: Clip, clip: Clip, relation: str, listed: str, in_order: list[Clip], why_kept: str) -> str:
    """Why ``clip`` cannot be loaded beside ``kept`` (the same recording): both listings (``in_order``, as listed),
    with their labels, what would go wrong, the fix, and which listing lenient loading keeps (``why_kept``: why)."""
    harms = []
    if clip.speaker != kept.speaker:
        harms.append("one recording under two speakers would be trained and tested on")
    if clip.emotion != kept.emotion:
        harms.append("one recording with two labels would be trained on with both")
    harm = "; ".join(harms) or "it would be counted twice in training and scores"
    return (f"{relation} {display_path(kept.path)} (speaker {kept.speaker}), {listed} under speaker "
            f"{clip.speaker}; first {_listing(in_order[0])}, then {_listing(in_order[1])}: {harm}. Keep one "
            f"(strict=False keeps {_listing(kept)}: {why_kept}).")


def _listing(clip: Clip) -> str:
    """How a clip is listed, for messages: where (a manifest line, a linked emotion folder, else its path) and its
    label as written."""
    label = clip.raw_label if clip.raw_label is not None else clip.emotion
    return f"{printable(clip.where) if clip.where else display_path(clip.path)} as {printable(label)!r}"


# Files no larger than this hold an audio header at most (a WAV header is 44 bytes, 80 when extensible; FLAC's at
# least 42), no recording: two of them alike are not "one recording" under two speakers. check_audio refuses them as
# too short; without it they are left to the caller, as every clip is.
_HEADER_ONLY_BYTES = 128


def _content_keys(clips: Sequence[Clip]) -> dict[str, tuple[str, str]]:
    """``{path: ("sha256", digest)}`` for the clips whose bytes may copy a clip of another speaker or label: regular
    files larger than a bare header (:data:`_HEADER_ONLY_BYTES`) whose size such a clip's file shares. Sizes are
    compared first, so a corpus is read only where a copy could matter (clips of one fixed length in WAV all are: each is then hashed once, remembered by
    ``file_sha256``)."""
    by_size: dict[int, list[Clip]] = {}
    for clip in clips:
        try:
            info = os.stat(clip.path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size > _HEADER_ONLY_BYTES:  # never open a FIFO: it would block
            by_size.setdefault(info.st_size, []).append(clip)
    keys = {}
    for group in by_size.values():
        if len({(clip.speaker, clip.emotion) for clip in group}) > 1:
            for clip in group:
                try:
                    keys[clip.path] = ("sha256", file_sha256(clip.path))
                except OSError:
                    continue
    return keys
