"""Shared fixtures. The suite is offline: a Hub id must fail at once instead of retrying for ~48 s."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def shared_corpus(name: str) -> Path:
    """Path of a real corpus in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real corpus {name!r} not found at {path} (../shared/data beside the project)")
    return path


@pytest.fixture(scope="session")
def urdu_dir() -> Path:
    return shared_corpus("urdu")


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return shared_corpus("ravdess")


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op thread for tiny models: on a shared 2-core machine a second thread only adds waiting
    (spinning OpenMP threads made tiny training steps several times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def four_class_recognizer(tmp_path_factory):
    """An EmotionRecognizer on a tiny random wav2vec2 of the four shared emotions, one per test module (a module's
    enrollments stay in it); the input-form tests' ``recognizer``."""
    from ser_hf.inference.recognizer import EmotionRecognizer
    from ser_hf.testing.models import tiny_classifier

    labels = ["neutral", "happy", "sad", "angry"]
    return EmotionRecognizer.from_pretrained(tiny_classifier("wav2vec2", tmp_path_factory.mktemp("four"), labels))


@pytest.fixture(scope="module")
def noise_wave():
    """One second of quiet Gaussian noise at 16 kHz, float32: a clip every recognizer takes."""
    import numpy as np

    return (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_adaptive_checkpoint(tmp_path_factory):
    """``(corpus, checkpoint)``: a tiny Whisper probe with speaker adaptation, fitted on a synthetic URDU tree."""
    from ser_hf.corpora import load_corpus
    from ser_hf.models.factory import ModelOptions
    from ser_hf.testing.corpora import make_corpus_tree
    from ser_hf.testing.models import tiny_backbone
    from ser_hf.training.probe import ProbeMethod, ProbeSettings

    tmp = tmp_path_factory.mktemp("adaptive")
    corpus = load_corpus("urdu", make_corpus_tree("urdu", tmp / "urdu", duration=0.4))
    method = ProbeMethod(tiny_backbone("whisper", tmp / "base"), corpus.features["label"].names,
                         ModelOptions(max_source_positions=50), ProbeSettings(projector_size=8, speaker_adaptation=True),
                         cache_dir=tmp / "cache", progress=False)
    method.fit(corpus)
    method.adaptive.enabled = True  # a tiny random model shows no gain; the fallback rule is tested elsewhere
    return corpus, method.save(tmp / "model")


@pytest.fixture
def python_memory_peak():
    """A context manager yielding a dict that gets ``megabytes``: the peak of Python allocations (``tracemalloc``)
    inside the block. "Refused before it expands" tests bound this, not the wall-clock time, which depends on how
    loaded the machine is; the expansions they guard against allocate gigabytes of Python objects."""
    import tracemalloc

    @contextlib.contextmanager
    def measure():
        result = {}
        tracemalloc.start()
        try:
            yield result
        finally:
            result["megabytes"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()

    return measure


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a network connection (what would retry, and hang, offline)."""
    import socket

    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f"a network connection to {address!r} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def benchmark_module(monkeypatch, tmp_path):
    """``name -> module``: imports a script of ``benchmarks/`` afresh, its results folder ``tmp_path/results``
    (``SER_HF_RESULTS_DIR``). The scripts are forgotten before and after the test, so every test's ``common``
    reads its own results folder."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("SER_HF_RESULTS_DIR", str(tmp_path / "results"))
    scripts = [path.stem for path in BENCHMARKS.glob("*.py")]

    def forget():
        for script in scripts:
            sys.modules.pop(script, None)

    forget()
    yield importlib.import_module
    forget()



@pytest.fixture
def locked_elsewhere():
    """``with locked_elsewhere(folder):`` holds ``ser_hf.locks.folder_lock`` on ``folder`` in another process (as a
    second ser-hf command would) until the block ends; raises the ``ModelError`` that process got where the folder
    is held already."""
    import subprocess
    import textwrap

    @contextlib.contextmanager
    def hold(folder):
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent("""
                import sys
                from ser_hf.locks import folder_lock
                from ser_hf.errors import ModelError
                try:
                    with folder_lock(sys.argv[1], "busy: held by another process"):
                        print("held", flush=True)
                        sys.stdin.read()
                except ModelError as error:
                    print(error, flush=True)
            """), str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            said = holder.stdout.readline().strip()
            if said != "held":
                from ser_hf.errors import ModelError

                raise ModelError(said)
            yield
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)

    return hold


def fail_listing(monkeypatch, name: str) -> None:
    """Make every folder named ``name`` unlistable to ser_hf (``os.scandir`` raises EACCES): ``chmod 000`` does not
    stop root, which the tests may run as."""
    import ser_hf.paths

    real = os.scandir

    def scandir(path):
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(ser_hf.paths.os, "scandir", scandir)
