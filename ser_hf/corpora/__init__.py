"""Emotional-speech corpora as ``datasets.Dataset`` objects with one shape.

Every corpus loads through :func:`load_corpus` into the same columns: ``audio`` (file path), ``label``
(``ClassLabel`` over canonical emotion names), ``speaker``, ``gender``, ``duration`` (seconds),
``corpus``, plus the corpus's own metadata (e.g. RAVDESS ``intensity``, IEMOCAP ``session``). Each
corpus lives in its own module whose docstring gives description, URL, licence, citation, naming
scheme and label mapping; its :class:`Corpus` holds the URL, licence, citation and language as fields.

Example:
    >>> from ser_hf.corpora import load_corpus
    >>> ds = load_corpus("ravdess", "../shared/data/ravdess", emotions="4class")  # doctest: +SKIP
    >>> ds.features["label"].names  # doctest: +SKIP
    ['neutral', 'happy', 'sad', 'angry']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from ser_hf._output_folders import check_folder_path
from ser_hf.audio import MAX_CLIP_DURATION, MIN_CLIP_DURATION
from ser_hf.corpora import crema_d, emodb, folder, iemocap, manifest, ravdess, savee, synthetic, tess, urdu
from ser_hf.corpora.base import (
    BASE_COLUMNS,
    Clip,
    Corpus,
    CorpusScan,
    Problem,
    check_directory,
    report_problems,
    scan_corpus,
    to_dataset,
    validate_dataset,
)
from ser_hf.corpora.hf_dataset import DatasetSource, load_dataset_corpus
from ser_hf.corpora.label_maps import check_label_map
from ser_hf.errors import CorpusError, DownloadError
from ser_hf.paths import path_key, path_text

#: Registry of corpus name -> :class:`Corpus`. Names are what ``--corpus`` accepts.
CORPORA: dict[str, Corpus] = {
    module.CORPUS.name: module.CORPUS
    for module in (urdu, ravdess, emodb, crema_d, tess, savee, iemocap, folder, manifest, synthetic)
}

__all__ = [
    "BASE_COLUMNS", "CORPORA", "Clip", "Corpus", "CorpusScan", "DatasetSource", "Problem",
    "corpus_languages", "download_corpus", "get_corpus", "load_corpus", "scan", "validate_dataset",
]


def get_corpus(name: str) -> Corpus:
    """The registered corpus called ``name`` (raises :class:`CorpusError` listing the valid names)."""
    if name not in CORPORA:
        raise CorpusError(f"Unknown corpus {name!r}. Expected one of {sorted(CORPORA)}.")
    return CORPORA[name]


def corpus_languages(names: Sequence[str]) -> list[str]:
    """The languages (ISO 639-1) of the named corpora's speech, each once and in order; unknown ones left out.

    Example:
        ```python
        >>> corpus_languages(["urdu", "ravdess", "tess", "manifest"])
        ['ur', 'en']

        ```
    """
    return list(dict.fromkeys(language for name in names if (language := get_corpus(name).language)))


def _root(corpus: Corpus, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        if corpus.default_dir is None:
            raise CorpusError(f"Corpus {corpus.name!r} needs a data directory: pass --data-dir (data_dir=...).")
        data_dir = corpus.default_dir()
    data_dir = path_text(data_dir, "--data-dir (data_dir)", error=CorpusError, refuse_empty=True)  # bytes too; "" is no folder
    if corpus.prepare is not None:
        corpus.prepare(Path(data_dir))
    if corpus.name in ("manifest", "synthetic") and Path(data_dir).is_file():
        return Path(path_key(os.path.expanduser(data_dir)))  # a manifest may be passed as the file itself
    return check_directory(data_dir, corpus.name)


def scan(
    name: str, data_dir: str | Path | None, *, check_audio: bool | str = True, label_map: Mapping[str, str] | None = None,
    **options: Any,
) -> CorpusScan:
    """List a corpus's clips and unusable files without building a dataset (used by ``data summary``).

    ``check_audio``, ``min_clip_duration`` and ``max_clip_duration`` are those of
    :func:`~ser_hf.corpora.base.scan_corpus`; other options go to the corpus.
    """
    corpus = get_corpus(name)
    check_label_map(label_map)
    if corpus.takes("label_map"):
        options["label_map"] = label_map  # user corpora map raw folder/manifest labels themselves
    return scan_corpus(corpus, _root(corpus, data_dir), check_audio=check_audio, **options)


def load_corpus(
    name: str | DatasetSource,
    data_dir: str | Path | None = None,
    *,
    emotions: str | Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    strict: bool = True,
    check_audio: bool | str | None = None,
    min_clip_duration: float | None = MIN_CLIP_DURATION,
    max_clip_duration: float | None = MAX_CLIP_DURATION,
    **options: Any,
) -> datasets.Dataset:
    """Load a corpus from a local directory into a ``datasets.Dataset`` with the uniform columns.

    Args:
        name: A registered corpus (see :data:`CORPORA`): ``urdu``, ``ravdess``, ``emodb``, ``crema_d``,
            ``tess``, ``savee``, ``iemocap``, ``folder`` / ``manifest`` for your own data, or
            ``synthetic`` (generated, for demos and tests); or a
            :class:`~ser_hf.corpora.hf_dataset.DatasetSource` for a Hugging Face ``datasets`` dataset (then
            ``data_dir`` is unused and ``splits=[...]`` names the splits to load, default ``["train"]``).
        data_dir: The corpus folder (for ``manifest``, the manifest file or its folder). Only
            ``synthetic`` has a default (it generates its data there on first use).
        emotions: Keep only these emotions: a subset name (``"4class"``), a list or a comma-separated
            string of emotion names. ``None`` keeps all the corpus has.
        label_map: Merge or rename labels, e.g. ``{"excited": "happy"}``; for ``folder``/``manifest`` it
            also maps your raw labels onto canonical emotions. Defaults to the corpus's own merges.
        strict: Raise on the first pass if any file is unusable (bad name, unreadable, empty audio, too
            short or too long for a clip). With ``False``, unusable files are skipped and every one is
            reported in a warning (and logged).
        check_audio: ``"header"``: read every file's header; ``"decode"``: also decode every clip (~2 ms
            each), which catches files whose header reads but whose samples do not (a cut-off FLAC, NaN
            samples). Default: ``"decode"`` with ``strict=False``, so that a lenient job never meets an
            unusable file later, and ``"header"`` with ``strict=True``, where such a file stops the job
            when it is decoded, with an :class:`~ser_hf.errors.AudioError` naming it.
        min_clip_duration: Shortest clip accepted, in seconds (default :data:`ser_hf.audio.MIN_CLIP_DURATION`,
            0.1 s: encoders need 25 ms for one frame); ``None`` accepts any length.
        max_clip_duration: Longest clip accepted, in seconds (default :data:`ser_hf.audio.MAX_CLIP_DURATION`,
            300 s); ``None`` accepts any length.
        **options: Corpus-specific options (e.g. ``speaker_pattern`` for ``folder``).

    Returns:
        A ``datasets.Dataset``; its ``label`` is a ``ClassLabel`` whose names follow the canonical order.

    Raises:
        CorpusError: unknown corpus, missing/empty directory, unusable files (strict; every one is listed),
            no clips left.
    """
    if check_audio is None:
        check_audio = "header" if strict else "decode"
    if isinstance(name, DatasetSource):
        return load_dataset_corpus(name, emotions=emotions, label_map=label_map, strict=strict, check_audio=check_audio,
                                   min_clip_duration=min_clip_duration, max_clip_duration=max_clip_duration, **options)
    corpus = get_corpus(name)
    label_map = corpus.default_label_map if label_map is None else label_map
    result = scan(name, data_dir, label_map=label_map, check_audio=check_audio, min_clip_duration=min_clip_duration,
                  max_clip_duration=max_clip_duration, **options)
    report_problems(result, strict)
    return to_dataset(result, corpus, emotions=emotions, label_map=label_map)


def download_corpus(name: str, target_dir: str | Path) -> Path:
    """Download a freely available corpus (urdu, ravdess, emodb) into ``target_dir``; returns its folder.

    Raises:
        DownloadError: when the corpus is not freely downloadable, or the host cannot be reached.
    """
    corpus = get_corpus(name)
    if corpus.download is None:
        downloadable = sorted(n for n, c in CORPORA.items() if c.download is not None)
        raise DownloadError(
            f"Corpus {name!r} cannot be downloaded automatically (see its licence in ser_hf.corpora.{name}); "
            f"get it from its URL by hand and pass the folder with --data-dir. Downloadable: {downloadable}."
        )
    target = check_folder_path(target_dir, argument="--out", what=f"the {name} corpus", error=DownloadError)
    made = not target.exists()
    try:
        return corpus.download(target)
    except BaseException:
        if made and target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # a failed download leaves no empty folder it made behind
        raise
