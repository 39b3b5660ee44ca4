"""A job whose inputs hold one file under two paths (the file and a symbolic link to it) writes one record per path;
killed and resumed, it ends with the very records an uninterrupted run writes: the record of one path never stands
for the other. A job resumed through another route to its files (a linked folder) still skips the finished ones.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ser_hf.inference.jobs import predict_files, read_records, shard_files
from ser_hf.testing.models import tiny_classifier

pytestmark = pytest.mark.usefixtures("single_torch_thread")

JOBS = {"clip job": {}, "window job": {"window": 0.5, "hop": 0.5}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_classifier("wav2vec2", tmp_path_factory.mktemp("model") / "m", ["neutral", "happy", "sad", "angry"])


@pytest.fixture
def folder(tmp_path):
    """a.wav, b.wav and link.wav, a relative link to a.wav: three inputs, two recordings."""
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 1.5), ("b", 1.0)):
        sf.write(folder / f"{name}.wav", 0.1 * rng.standard_normal(int(16000 * seconds)).astype("float32"), 16000)
    os.symlink("a.wav", folder / "link.wav")
    return folder


def _run(model, inputs, out, job):
    # One file per batch: a file's scores do not depend on which files share its batch, so runs compare exactly.
    return predict_files(model, [str(path) for path in inputs], out, progress=False, batch_size=1, chunk_size=1,
                         **JOBS[job])


def _keep_first_records(out, count):
    """What a kill leaves once ``count`` records are written: the header and those records."""
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:1 + count]))


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("first", ["file", "link"])
def test_a_job_killed_between_a_file_and_its_link_resumes_to_the_records_of_an_uninterrupted_run(
        model, folder, tmp_path, job, first):
    inputs = [folder / "a.wav", folder / "b.wav", folder / "link.wav"]
    if first == "link":
        inputs.reverse()
    uninterrupted = tmp_path / "uninterrupted.jsonl"
    assert _run(model, inputs, uninterrupted, job)["predicted"] == 3
    expected = read_records(uninterrupted)
    assert [record["path"] for record in expected] == [str(path) for path in inputs]

    out = tmp_path / "resumed.jsonl"
    _run(model, inputs, out, job)
    _keep_first_records(out, 1)
    summary = _run(model, inputs, out, job)
    assert (summary["skipped"], summary["predicted"]) == (1, 2)
    assert read_records(out) == expected
    again = _run(model, inputs, out, job)
    assert (again["skipped"], again["predicted"]) == (3, 0) and read_records(out) == expected


@pytest.mark.parametrize("job", JOBS)
def test_a_job_resumed_through_a_linked_folder_skips_its_finished_files_and_still_scores_a_link_among_them(
        model, folder, tmp_path, job):
    linked = tmp_path / "linked"
    linked.symlink_to(folder)
    out = tmp_path / "p.jsonl"
    _run(model, [linked], out, job)
    finished = read_records(out)
    assert [os.path.basename(record["path"]) for record in finished] == ["a.wav", "b.wav", "link.wav"]
    through_real = _run(model, [folder], out, job)  # the same files by another route: all finished
    assert (through_real["skipped"], through_real["predicted"]) == (3, 0) and read_records(out) == finished

    _keep_first_records(out, 1)  # killed after linked/a.wav: b.wav and the link to a.wav are still to do
    resumed = _run(model, [folder], out, job)
    assert (resumed["skipped"], resumed["predicted"]) == (1, 2)
    paths = [record["path"] for record in read_records(out)]
    assert paths == [str(linked / "a.wav"), str(folder / "b.wav"), str(folder / "link.wav")]


def test_a_shard_left_by_a_killed_multi_process_run_marks_only_its_own_path_done(model, folder, tmp_path):
    inputs = [folder / "a.wav", folder / "link.wav", folder / "b.wav"]
    uninterrupted = tmp_path / "uninterrupted.jsonl"
    _run(model, inputs, uninterrupted, "clip job")
    expected = read_records(uninterrupted)

    out = tmp_path / "p.jsonl"
    lines = uninterrupted.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0])  # the header: the main process had written no record yet
    (tmp_path / "p.jsonl.shard-0-of-2").write_bytes(lines[1])  # a.wav's record, in the first process's shard
    summary = _run(model, inputs, out, "clip job")
    assert (summary["skipped"], summary["predicted"]) == (1, 2)
    assert not shard_files(out) and read_records(out) == expected  # merged in input order, each path once
