"""Classic features for many files: a process pool, a progress bar and an on-disk cache.

The cache stores one ``.npy`` per file (written atomically, read with ``allow_pickle=False``) under
``<cache_dir>/features-<key>/`` (frame sequences for the neural baselines, :func:`extract_dataset_sequences`:
``<cache_dir>/sequences-<key>/``), where the key combines the :class:`FeatureConfig` fingerprint, the
:class:`~ser_hf.audio.AudioPreprocessor` fingerprint and the librosa version, and each file is named
by the SHA-256 of the audio file's bytes. Content hashing rather than path + size + mtime: hashing a
50 KB FLAC costs ~0.1 ms against ~25 ms to extract its features, and it stays correct when corpora are
copied, moved, re-downloaded or touched (new mtimes, same bytes) and when a file is rewritten in place
within the mtime resolution.

The same pass measures each clip's level (:func:`level_row`: what
:func:`ser_hf.baseline.crossval.clip_levels` judges sound by) on the way, so training decodes no file twice:
:attr:`FeatureMatrix.levels` / :attr:`FeatureSequences.levels` carry the levels back, and with ``cache_levels=True``
they are cached beside the features under ``<cache_dir>/levels-<key>/`` (the key names the rate and what
:meth:`AudioPreprocessor.kept <ser_hf.audio.AudioPreprocessor.kept>` does alone: :func:`level_settings`).

Example:
    >>> from ser_hf.baseline import FeatureConfig, extract_dataset_features
    >>> matrix = extract_dataset_features(["a.flac", "b.flac"], FeatureConfig(), cache_dir="cache")  # doctest: +SKIP
    >>> matrix.features.shape  # doctest: +SKIP
    (2, 532)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ser_hf._io import atomic_write_bytes, file_sha256
from ser_hf.audio import AudioPreprocessor, PathLike
from ser_hf.baseline.feature_config import FeatureConfig
from ser_hf.baseline.features import extract_features, feature_names
from ser_hf.baseline.sequences import check_sequence_config, extract_sequence, sequence_names
from ser_hf.errors import AudioError, SERError
from ser_hf.inference.streaming import window_level_db
from ser_hf.paths import path_text
from ser_hf.processes import exit_with_parent

#: Computes one clip's array from its preprocessed waveform: :func:`extract_features` (a vector) or
#: :func:`~ser_hf.baseline.sequences.extract_sequence` (frames x dims). Module-level, so workers can receive it.
Extractor = Callable[[np.ndarray, FeatureConfig], np.ndarray]

#: The level cache's one column (:func:`level_row`).
LEVEL_NAMES = ["level_db"]


def level_row(wave: np.ndarray, config: FeatureConfig | None = None) -> np.ndarray:
    """A clip's :func:`~ser_hf.inference.streaming.window_level_db` as a 1 x 1 float32 row: what the level cache
    stores (an :data:`Extractor`, so the level pass of :func:`~ser_hf.baseline.crossval.clip_levels` can run it)."""
    return np.full((1, 1), window_level_db(wave), np.float32)


def level_settings(preprocessor: AudioPreprocessor | None, sampling_rate: int) -> tuple[FeatureConfig,
                                                                                         AudioPreprocessor]:
    """The config and preprocessor that key the level cache: the rate, and the preprocessor without its denoising,
    normalising and padding (the level is measured on what :meth:`AudioPreprocessor.kept` keeps, so one cache serves
    every feature setting and every later step)."""
    base = preprocessor or AudioPreprocessor(sampling_rate=sampling_rate)
    kept_only = dataclasses.replace(base, denoise=None, normalize=None, target_dbfs=None, min_duration=None)
    return FeatureConfig(sampling_rate=sampling_rate, groups=("rms",)), kept_only


@dataclass
class FeatureMatrix:
    """Features of a list of files.

    Args:
        features: ``(n_files, n_features)`` float32 array, one row per file that succeeded.
        names: Column names (:func:`~ser_hf.baseline.feature_names`).
        paths: The file of each row, in the input order.
        failures: ``(path, reason)`` of each file that could not be used (only with ``strict=False``).
        cache_hits: How many rows came from the cache.
        levels: Each row's clip level in dBFS (:func:`level_row`, as :func:`~ser_hf.baseline.crossval.clip_levels`
            gives it), ``None`` where the row came from a cache that holds no level for it.
    """

    features: np.ndarray
    names: list[str]
    paths: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    cache_hits: int = 0
    levels: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class FeatureSequences:
    """Frame sequences of a list of files (the neural baselines' input).

    Args:
        sequences: One ``(n_frames, n_dims)`` float32 array per file that succeeded.
        names: Column names (:func:`~ser_hf.baseline.sequences.sequence_names`).
        paths: The file of each sequence, in the input order.
        failures: ``(path, reason)`` of each file that could not be used (only with ``strict=False``).
        cache_hits: How many sequences came from the cache.
        levels: Each sequence's clip level in dBFS, ``None`` where unknown (as :attr:`FeatureMatrix.levels`).
    """

    sequences: list[np.ndarray]
    names: list[str]
    paths: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    cache_hits: int = 0
    levels: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


#: The name :func:`ser_hf._io.file_sha256` had here.
file_digest = file_sha256


class _FeatureCache:
    """One ``.npy`` per audio file, under a folder named by everything that changes the vectors.

    ``kind`` is ``"features"`` (one vector per file) or ``"sequences"`` (a frames x dims array per file); each
    kind has its own folders, and the vectors' keys are those of caches written before sequences existed.
    """

    def __init__(self, root: PathLike, config: FeatureConfig, preprocessor: AudioPreprocessor, names: list[str],
                 kind: str = "features"):
        settings = {
            "feature_config": asdict(config),
            "preprocessor": asdict(preprocessor),
            "librosa": metadata.version("librosa"),
        }
        key = [config.fingerprint(), preprocessor.fingerprint(), settings["librosa"]]
        blob = json.dumps(key if kind == "features" else [*key, kind], sort_keys=True).encode()
        self.dir = Path(root) / f"{kind}-{hashlib.sha256(blob).hexdigest()[:16]}"
        self.dim = len(names)
        self.ndim = 1 if kind == "features" else 2
        self._warned = False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            manifest = self.dir / "manifest.json"
            if not manifest.exists():  # for humans: what the vectors in this folder mean
                atomic_write_bytes(manifest, json.dumps({**settings, "names": names}, indent=1).encode(),
                                   follow_symlinks=False)
        except OSError as err:  # an SERError (a ValueError): the command line names its --cache-dir
            raise SERError(
                f"extract_dataset_features(cache_dir={str(root)!r}) (--cache-dir): cannot create the cache folder "
                f"({err}). Pass a writable folder, or cache_dir=None (--no-cache) to disable caching."
            ) from err

    def entry(self, audio_path: str) -> Path | None:
        """Where the vector of ``audio_path`` lives; ``None`` if the file cannot be read (it fails later)."""
        if not os.path.isfile(audio_path):
            return None  # a FIFO named like audio would block the hash's open() forever
        try:
            digest = file_sha256(audio_path)
        except OSError:
            return None
        return self.dir / digest[:2] / f"{digest}.npy"

    def beside(self, entry: Path | None) -> Path | None:
        """Where this cache keeps the file whose entry in another cache is ``entry`` (same digest, no second hash)."""
        return None if entry is None else self.dir / entry.parent.name / entry.name

    def load(self, entry: Path | None) -> np.ndarray | None:
        """The cached vector, or ``None`` when absent, unreadable or of the wrong shape (recomputed). A link is never
        followed (ser_hf writes none: it would read another file's numbers for the clip)."""
        if entry is None or entry.is_symlink() or not entry.is_file():
            return None
        try:
            vector = np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # EOFError: an empty file
            return None
        ok = (vector.ndim == self.ndim and vector.shape[-1] == self.dim and vector.shape[0] > 0
              and vector.dtype == np.float32 and np.isfinite(vector).all())
        return vector if ok else None

    def save(self, entry: Path | None, vector: np.ndarray) -> None:
        """Store a vector; a failed write only warns, since the features are already computed."""
        if entry is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, vector, allow_pickle=False)
        try:
            entry.parent.mkdir(exist_ok=True)
            atomic_write_bytes(entry, buffer.getvalue(), follow_symlinks=False)  # replaces a link, not its target
        except OSError as err:
            if not self._warned:
                warnings.warn(
                    f"Cannot write the feature cache in {self.dir} ({err}); continuing without it.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._warned = True


def _extract_file(
    path: str, config: FeatureConfig, preprocessor: AudioPreprocessor, extract: Extractor = extract_features
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Decode and featurise one file, and measure its :func:`level_row` on what the preprocessor keeps from the same
    decode (the features see ``preprocessor(path)``, which is this); problems come back as a message naming the file,
    never raised."""
    try:
        kept = preprocessor.kept(preprocessor.load(path))
        return extract(preprocessor.finish(kept), config), level_row(kept), None
    except AudioError as err:
        message = str(err)
        return None, None, message if path in message else f"{path!r}: {message}"
    except Exception as err:  # noqa: BLE001 - one odd file must not kill a pool of 10,000; strict decides
        return None, None, f"Feature extraction failed for {path!r}: {type(err).__name__}: {err}"


def _limit_blas_threads() -> AbstractContextManager:
    """Limit BLAS to one thread (undone on exit): the matrices are small, and with several processes on
    the cores extra BLAS threads only contend (measured ~35 -> ~23 ms per clip on 2 busy cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it we only lose a little speed
        return nullcontext()
    return threadpool_limits(limits=1)


def _init_worker(parent: int) -> None:
    _limit_blas_threads()  # applies on creation and lasts for the worker's life
    exit_with_parent(parent)


def _warm_up(config: FeatureConfig, extract: Extractor = extract_features) -> None:
    """Run librosa's numba code once, so forked workers inherit it compiled instead of each loading it."""
    noise = np.random.default_rng(0).standard_normal(config.min_samples() * 2).astype(np.float32) * 0.01
    extract(noise, config)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork on Linux: workers start in ~0.1 s with the parent's warmed-up librosa, as PyTorch's DataLoader
    # and datasets.map(num_proc=...) do. Spawned workers each import librosa and load numba's cache (seconds).
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


class _Runner:
    """Context manager yielding ``(index, vector, level row, error)`` for the files to compute, in completion order.

    Entering starts the worker processes, before the caller opens its progress bar (whose monitor
    thread should not exist when forking); leaving cancels queued files, so a strict error or Ctrl-C
    does not wait for the rest of the batch.
    """

    def __init__(
        self, paths: list[str], todo: list[int], config: FeatureConfig, preprocessor: AudioPreprocessor, workers: int,
        extract: Extractor = extract_features,
    ):
        self.paths, self.todo, self.config, self.preprocessor = paths, todo, config, preprocessor
        self.workers, self.extract = workers, extract
        self.executor: ProcessPoolExecutor | None = None
        self.futures: dict = {}

    def __enter__(self) -> _Runner:
        if self.workers > 1:
            _warm_up(self.config, self.extract)
            self.executor = ProcessPoolExecutor(self.workers, mp_context=_pool_context(), initializer=_init_worker,
                                                initargs=(os.getpid(),))
            self.futures = {
                self.executor.submit(_extract_file, self.paths[i], self.config, self.preprocessor, self.extract): i
                for i in self.todo
            }
        return self

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None, str | None]]:
        if self.executor is None:
            with _limit_blas_threads():
                for index in self.todo:
                    yield (index, *_extract_file(self.paths[index], self.config, self.preprocessor, self.extract))
            return
        for future in as_completed(self.futures):
            yield (self.futures[future], *future.result())

    def __exit__(self, *exc_info: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _default_workers(n_files: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, n_files))


def _check_preprocessor(preprocessor: AudioPreprocessor | None, config: FeatureConfig) -> AudioPreprocessor:
    if preprocessor is None:
        return AudioPreprocessor(sampling_rate=config.sampling_rate)
    if preprocessor.sampling_rate != config.sampling_rate:
        raise ValueError(
            f"extract_dataset_features: preprocessor.sampling_rate is {preprocessor.sampling_rate} Hz but "
            f"FeatureConfig.sampling_rate is {config.sampling_rate} Hz; set both to the same rate."
        )
    return preprocessor


def extract_dataset_features(
    paths: Sequence[PathLike],
    config: FeatureConfig | None = None,
    *,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: PathLike | None = None,
    num_workers: int | None = None,
    strict: bool = True,
    progress: bool = True,
    cache_levels: bool = False,
) -> FeatureMatrix:
    """Extract :func:`~ser_hf.baseline.extract_features` vectors for many audio files in parallel.

    Args:
        paths: Audio files (any format :mod:`ser_hf.audio` decodes).
        config: Feature settings; ``None`` means ``FeatureConfig()``.
        preprocessor: How files are decoded and cleaned; ``None`` means decode + resample to
            ``config.sampling_rate`` only. Its fingerprint is part of the cache key.
        cache_dir: Folder for cached vectors; ``None`` disables caching. Safe to share between
            concurrent runs (atomic writes) and between configs (one sub-folder per setting).
        num_workers: Worker processes; ``None`` uses every available core, 0 or 1 runs in this
            process. On macOS and Windows workers are spawned, so scripts need the usual
            ``if __name__ == "__main__":`` guard.
        strict: ``True`` raises on the first unusable file; ``False`` skips such files and lists them
            in :attr:`FeatureMatrix.failures`.
        progress: Show a tqdm progress bar.
        cache_levels: Also read and write the clip levels (:attr:`FeatureMatrix.levels`) in the level cache of
            :func:`~ser_hf.baseline.crossval.clip_levels` under ``cache_dir``, so it need not read these files again.

    Returns:
        A :class:`FeatureMatrix` whose rows follow the order of ``paths`` (failed files left out).

    Raises:
        AudioError: with ``strict=True``, naming the first file that could not be decoded or featurised.
        ValueError: if the preprocessor's rate differs from the config's, or ``cache_dir`` is unusable.

    Example:
        >>> matrix = extract_dataset_features(paths, cache_dir="~/.cache/ser_hf", strict=False)  # doctest: +SKIP
        >>> matrix.features.shape, matrix.failures  # doctest: +SKIP
        ((399, 532), [('bad.flac', "Cannot decode 'bad.flac' (...)")])
    """
    config = config or FeatureConfig()
    names = feature_names(config)
    done = extract_all(
        "extract_dataset_features", paths, config, preprocessor, names, cache_dir=cache_dir, num_workers=num_workers,
        strict=strict, progress=progress, kind="features", extract=extract_features, cache_levels=cache_levels,
    )
    kept = done.kept()
    features = np.stack([done.arrays[i] for i in kept]) if kept else np.zeros((0, len(names)), np.float32)
    return FeatureMatrix(
        features=features,
        names=names,
        paths=[done.paths[i] for i in kept],
        failures=done.failures(),
        cache_hits=done.cache_hits,
        levels=[done.levels[i] for i in kept],
    )


def extract_dataset_sequences(
    paths: Sequence[PathLike],
    config: FeatureConfig,
    *,
    preprocessor: AudioPreprocessor | None = None,
    cache_dir: PathLike | None = None,
    num_workers: int | None = None,
    strict: bool = True,
    progress: bool = True,
    cache_levels: bool = False,
) -> FeatureSequences:
    """Frame sequences (:func:`~ser_hf.baseline.sequences.extract_sequence`) of many files, in parallel and cached.

    Same workers, cache rules and errors as :func:`extract_dataset_features`; the cache holds one
    ``(n_frames, n_dims)`` array per file under ``<cache_dir>/sequences-<key>/``.

    Args:
        paths: Audio files.
        config: Sequence settings (:func:`~ser_hf.baseline.sequences.sequence_config`).
        preprocessor: How files are decoded and cleaned (part of the cache key).
        cache_dir: Cache folder; ``None`` disables caching.
        num_workers: Worker processes; ``None`` uses every available core, 0 or 1 runs in this process.
        strict: ``True`` raises on the first unusable file; ``False`` skips it and lists it in ``failures``.
        progress: Show a tqdm progress bar.
        cache_levels: Also keep the clip levels in the level cache (as :func:`extract_dataset_features`).

    Returns:
        A :class:`FeatureSequences` whose sequences follow the order of ``paths``.

    Example:
        >>> seqs = extract_dataset_sequences(paths, sequence_config("cnn"), cache_dir="cache")  # doctest: +SKIP
        >>> seqs.sequences[0].shape  # doctest: +SKIP
        (241, 64)
    """
    names = sequence_names(check_sequence_config(config))
    done = extract_all(
        "extract_dataset_sequences", paths, config, preprocessor, names, cache_dir=cache_dir,
        num_workers=num_workers, strict=strict, progress=progress, kind="sequences", extract=extract_sequence,
        cache_levels=cache_levels,
    )
    kept = done.kept()
    return FeatureSequences(
        sequences=[done.arrays[i] for i in kept], names=names, paths=[done.paths[i] for i in kept],
        failures=done.failures(), cache_hits=done.cache_hits, levels=[done.levels[i] for i in kept],
    )


class Extracted(NamedTuple):
    """What :func:`extract_all` gives: per input file (in the input order) its path, its array and its clip level
    in dBFS (``None`` for a failed file, and for a cached array whose level is not cached), plus the errors by index
    and how many arrays came from the cache."""

    paths: list[str]
    arrays: list[np.ndarray | None]
    errors: dict[int, str]
    cache_hits: int
    levels: list[float | None]

    def kept(self) -> list[int]:
        """The indices of the files that succeeded."""
        return [i for i in range(len(self.paths)) if i not in self.errors]

    def failures(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of each failed file, in the input order."""
        return [(self.paths[i], self.errors[i]) for i in sorted(self.errors)]


def _level_of(row: np.ndarray | None) -> float | None:
    return None if row is None else float(row[0, 0])


def extract_all(
    caller: str, paths: Sequence[PathLike], config: FeatureConfig, preprocessor: AudioPreprocessor | None,
    names: list[str], *, cache_dir: PathLike | None, num_workers: int | None, strict: bool, progress: bool,
    kind: str, extract: Extractor, cache_levels: bool = False,
) -> Extracted:
    """Cache look-ups, then the pool for the rest, measuring the level of each file it decodes (with
    ``cache_levels``, read from and stored in the level cache too: the level pass, ``kind="levels"``, has it as its
    own cache)."""
    from ser_hf.progress import progress_bar

    if isinstance(paths, (str, os.PathLike)):
        raise ValueError(
            f"{caller}(paths=...) expects a list of audio files, got the single path {paths!r}; wrap it in a list."
        )
    if num_workers is not None and num_workers < 0:
        raise ValueError(f"{caller}(num_workers={num_workers}): use None (all cores), 0/1 or more.")
    preprocessor = _check_preprocessor(preprocessor, config)
    paths = [os.fspath(path) for path in paths]
    # None: no cache; "" is no folder (it would fill the current one), and a path-like giving "" is truthy
    root = (Path(path_text(cache_dir, f"{caller}(cache_dir=...) (--cache-dir)", refuse_empty=True)).expanduser()
            if cache_dir is not None else None)
    cache = _FeatureCache(root, config, preprocessor, names, kind) if root else None
    level_cache = (_FeatureCache(root, *level_settings(preprocessor, config.sampling_rate), LEVEL_NAMES, "levels")
                   if root and cache_levels and kind != "levels" else None)
    entries = [cache.entry(path) for path in paths] if cache else [None] * len(paths)
    arrays = [cache.load(entry) for entry in entries] if cache else [None] * len(paths)
    levels = [_level_of(level_cache.load(level_cache.beside(entry))) if level_cache and array is not None else None
              for entry, array in zip(entries, arrays)]  # the files to decode are measured then
    todo = [i for i, array in enumerate(arrays) if array is None]
    workers = _default_workers(len(todo)) if num_workers is None else min(num_workers, max(1, len(todo)))
    errors: dict[int, str] = {}
    # The runner forks its workers before tqdm starts its monitor thread.
    with _Runner(paths, todo, config, preprocessor, workers, extract) as runner, \
            progress_bar(progress, total=len(paths), initial=len(paths) - len(todo), unit="file", desc=kind) as bar:
        for index, array, level, error in runner:
            bar.update()
            if error is not None and strict:
                raise AudioError(
                    f"{error} (strict=True stops at the first unusable file; pass strict=False to skip such "
                    f"files and list them in {'FeatureMatrix' if kind == 'features' else 'FeatureSequences'}.failures)"
                )
            if error is not None:
                errors[index] = error
            else:
                arrays[index], levels[index] = array, _level_of(level)
                if cache is not None:
                    cache.save(entries[index], array)
                if level_cache is not None:
                    level_cache.save(level_cache.beside(entries[index]), level)
    return Extracted(paths, arrays, errors, len(paths) - len(todo), levels)
