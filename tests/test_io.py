"""Atomic writes keep the permissions a user expects of an output (not mkstemp's private 0600) and follow symlinks;
folder outputs never replace a file, their source or a folder of the user's own files."""

import os
import stat
from pathlib import Path

import pytest

import ser_hf._atomic_folder as atomic_folder
import ser_hf._io as io_helpers
from ser_hf._atomic_folder import atomic_directory
from ser_hf._io import atomic_write_text, temporary_file
from ser_hf._output_folders import check_output_folder, remove_own_folder
from ser_hf.errors import ModelError


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o277, 0o600)])
def test_a_new_file_gets_what_open_would_give_it(tmp_path, umask, mask, expected):
    umask(mask)
    out = atomic_write_text(tmp_path / "predictions.csv", "path,label\n")
    assert mode(out) == expected  # 0o277 would leave the owner unable to write: the owner keeps read and write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


@pytest.mark.parametrize("before, after", [(0o640, 0o640), (0o664, 0o664), (0o444, 0o644)])
def test_a_replaced_file_keeps_its_permissions(tmp_path, umask, before, after):
    umask(0o077)  # would give 0600 to a new file: the old file's mode must win
    out = tmp_path / "report.json"
    out.write_text("{}")
    out.chmod(before)
    atomic_write_text(out, '{"ok": true}')
    assert mode(out) == after
    assert out.read_text() == '{"ok": true}'


def test_the_umask_is_read_without_proc_too(tmp_path, umask, monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    umask(0o027)
    monkeypatch.setattr(io_helpers, "open", no_proc, raising=False)  # shadows the builtin inside ser_hf._io only
    assert mode(temporary_file(tmp_path / "out.jsonl")) == 0o640
    assert os.umask(0o027) == 0o027  # and the umask is as it was


def test_a_saved_checkpoint_is_readable_by_others(tmp_path, umask):
    """safetensors writes 0600: a checkpoint copied into a service's image must stay readable by its account."""
    from ser_hf.testing.models import tiny_classifier

    umask(0o022)
    model = tiny_classifier("wav2vec2", tmp_path, ["neutral", "happy"])
    assert {path.name: mode(path) for path in model.iterdir()} == {
        "config.json": 0o644, "model.safetensors": 0o644, "preprocessor_config.json": 0o644}


def test_a_built_synthetic_corpus_folder_is_not_private(tmp_path, umask):
    """mkdtemp makes its folder 0700, and the rename into place kept that."""
    from ser_hf.corpora.synthetic_speech import make_synthetic_corpus

    umask(0o022)
    root = make_synthetic_corpus(tmp_path / "corpus", n_speakers=2, clips_per_speaker_per_emotion=1,
                                 emotions=("neutral", "angry"))
    assert mode(root) == 0o755


def test_a_file_system_that_refuses_chmod_does_not_stop_the_write(tmp_path, monkeypatch):
    """FAT drives and some network shares refuse permission changes: the output is still written."""
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(os, "chmod", refuse)
    out = atomic_write_text(tmp_path / "predictions.csv", "path,label\n")
    assert out.read_text() == "path,label\n"
    io_helpers.default_permissions(out)  # and widening a file there is a no-op, not an error


def test_an_atomic_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real" / "p.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert atomic_write_text(link, "new\n") == link
    assert link.is_symlink() and real.read_text() == "new\n" and link.read_text() == "new\n"


def test_an_output_folder_never_replaces_a_file_its_source_or_the_users_files(tmp_path):
    kind = {"argument": "out_dir", "marker": "done.json", "what": "a speaker model"}
    source = tmp_path / "models" / "checkpoint"
    source.mkdir(parents=True)
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(ModelError, match=r"out_dir .*a-file is a file; pass a directory for a speaker model"):
        check_output_folder(tmp_path / "a-file", **kind)
    for folder in (source, source.parent, tmp_path / "models" / "." / "checkpoint"):
        with pytest.raises(ModelError, match=r"is \(or holds\) the checkpoint it is made from"):
            check_output_folder(folder, sources=[source], overwrite=True, **kind)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ModelError, match=r"out_dir .*mine is not empty \(found \['notes.txt'\]\) and holds no "
                                             r"done.json that ser_hf wrote, so it is not an earlier speaker model"):
            check_output_folder(mine, overwrite=overwrite, **kind)
    (mine / "done.json").write_text("{}")
    with pytest.raises(ModelError, match=r"already holds an earlier speaker model .*pass overwrite \(--overwrite\)"):
        check_output_folder(mine, **kind)
    assert check_output_folder(mine, overwrite=True, **kind) == mine
    several = {**kind, "marker": ["run.json", "cv/*/report.json"]}
    with pytest.raises(ModelError, match=r"holds none of \['run.json', 'cv/\*/report.json'\] that ser_hf wrote, so"):
        check_output_folder(mine, overwrite=True, **several)
    (mine / "cv" / "fold1").mkdir(parents=True)  # a folder named like an output marks nothing,
    (mine / "run.json").mkdir()  # nor one named like a marker file,
    (mine / "cv" / "fold1" / "report.json").symlink_to(mine / "notes.txt")  # nor a symlink to a user's file
    with pytest.raises(ModelError, match=r"holds none of"):
        check_output_folder(mine, overwrite=True, **several)
    (mine / "cv" / "fold1" / "report.json").unlink()
    (mine / "cv" / "fold1" / "report.json").write_text("{}")  # a marker file, under a glob pattern
    with pytest.raises(ModelError, match=r"its run.json is a folder, but a speaker model writes a file of that name"):
        check_output_folder(mine, overwrite=True, **several)  # it would fail there once the work is done
    (mine / "run.json").rmdir()
    assert check_output_folder(mine, overwrite=True, **several) == mine
    with pytest.raises(ModelError, match=r"holds another kind of output \(notes.txt\), not an earlier speaker"):
        check_output_folder(mine, overwrite=True, foreign=["notes.txt"], **several)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "deep")
    with pytest.raises(ModelError, match=r"out_dir .*dangling is a symbolic link to .*nowhere/deep', which does not"):
        check_output_folder(tmp_path / "dangling", **kind)
    assert check_output_folder(tmp_path / "new", **kind) == tmp_path / "new"


def test_an_output_folder_is_refused_before_any_work_where_it_could_not_be_written_or_read(tmp_path):
    """Below a file, inside the checkpoint it is made from, or at a path that is not UTF-8: refused up front
    (these used to fail after all the work, or to overwrite the checkpoint's record of its test speakers)."""
    kind = {"argument": "--out", "marker": "report.json", "what": "an evaluation report"}
    (tmp_path / "a.txt").write_text("mine")
    for below in (tmp_path / "a.txt" / "x", tmp_path / "a.txt" / "x" / "y"):
        with pytest.raises(ModelError, match=r"--out .*a.txt/x.* cannot be created: .*a.txt is a file, not a folder"):
            check_output_folder(below, **kind)
    source, other = tmp_path / "checkpoint", tmp_path / "another-checkpoint"
    for checkpoint in (source, other):
        (checkpoint / "eval").mkdir(parents=True)
        (checkpoint / "eval" / "report.json").write_text("{}")  # the record of the speakers it was tested on
    (source / "config.json").write_text("{}")
    (source / "model.safetensors").write_bytes(b"")
    (other / "ser_hf_run.json").write_text("{}")
    for inside in (source / "eval", source / "eval" / "new", other / "eval"):  # any checkpoint's eval/, not only
        with pytest.raises(ModelError, match=r"is \(or is inside\) the eval/ folder of the checkpoint .*checkpoint: "
                                             r"it holds the record of the speakers that model was tested on"):
            check_output_folder(inside, sources=[source], overwrite=True, **kind)
    for beside in (source / "onnx", source / "eval-test", tmp_path / "eval"):  # new folders beside it are fine
        assert check_output_folder(beside, sources=[source], overwrite=True, **kind) == beside
    odd = os.fsdecode(bytes(tmp_path) + b"/out\xff")
    with pytest.raises(ModelError, match=r"--out .*out\\xff: its path is not valid UTF-8") as caught:
        check_output_folder(odd, **kind)
    str(caught.value).encode("utf-8")  # the message itself prints on a UTF-8 terminal
    assert not os.path.lexists(odd)


def test_settings_files_that_are_not_regular_files_are_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")  # reading a FIFO blocks until someone writes: it must not be opened
    with pytest.raises(ModelError, match=r"pipe.json is not a regular file .* enroll again"):
        io_helpers.read_json(tmp_path / "pipe.json", fix="enroll again")


def test_an_atomic_folder_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "old.txt").write_text("earlier")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with atomic_directory(tmp_path / "link", overwrite=True) as folder:
        (folder / "new.txt").write_text("new")
    assert (tmp_path / "link").is_symlink() and sorted(p.name for p in (tmp_path / "real").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # nothing left beside them


def test_a_folder_that_cannot_be_moved_in_puts_the_earlier_one_back(tmp_path, monkeypatch):
    """Where two folders cannot be swapped in one step, the earlier one is moved aside first."""
    out = tmp_path / "checkpoint"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    real_replace = os.replace
    monkeypatch.setattr(atomic_folder, "_exchange", lambda first, second: False)

    def refuse_the_new_folder(source, target):
        if "ser_hf-tmp-" in str(source):
            raise OSError("simulated")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", refuse_the_new_folder)
    with pytest.raises(ModelError, match="could not move the new folder into"):
        with atomic_directory(out, overwrite=True) as tmp:
            (tmp / "config.json").write_text("new")
    assert (out / "config.json").read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


_KILLED_REPLACEMENT = """
import os, shutil, signal, sys
import ser_hf._atomic_folder as atomic_folder
out, swap = sys.argv[1], sys.argv[2] == "swap"
kill = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if swap:  # killed right after the swap, before the earlier output is deleted
    shutil.rmtree = kill
else:  # no swap in one step: killed between moving the earlier output aside and moving the new one in
    atomic_folder._exchange = lambda first, second: False
    replace, calls = os.replace, []
    os.replace = lambda *args: kill() if calls.append(args) or len(calls) == 2 else replace(*args)
with atomic_folder.atomic_directory(out, overwrite=True) as tmp:
    (tmp / "config.json").write_text("new")
"""


@pytest.mark.parametrize("swap, kept", [(True, "new"), (False, "earlier")])
def test_a_replacement_killed_at_any_moment_leaves_a_whole_output_and_its_next_check_tidies(tmp_path, swap, kept,
                                                                                            caplog):
    """A kill between the two renames of a replacement used to leave no output and the earlier one hidden for good."""
    import subprocess
    import sys

    out = tmp_path / "checkpoint"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    (tmp_path / ".checkpoint.old-backup").mkdir()  # a user's folder named alike, and a live writer's: never touched
    (tmp_path / f".checkpoint.ser_hf-tmp-{os.getpid()}-abcdefgh").mkdir()
    run = subprocess.run([sys.executable, "-c", _KILLED_REPLACEMENT, str(out), "swap" if swap else "aside"])
    assert run.returncode == -9
    hidden = sorted(p.name for p in tmp_path.iterdir() if "ser_hf-" in p.name and str(os.getpid()) not in p.name)
    assert len(hidden) == (1 if swap else 2) and out.exists() == swap  # the earlier output hidden, and the new one
    with caplog.at_level("INFO", logger="ser_hf._atomic_folder"):
        check_output_folder(out, argument="out_dir", marker="config.json", what="a checkpoint", overwrite=True)
    assert (out / "config.json").read_text() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint.old-backup",
                                                          f".checkpoint.ser_hf-tmp-{os.getpid()}-abcdefgh",
                                                          "checkpoint"]
    assert ("put the earlier output back" in caplog.text) != swap


#: A process id no process has (above any pid_max a test machine sets, below Linux's ceiling of 2**22).
_GONE = 4_194_000


def _check(out):
    return check_output_folder(out, argument="out_dir", marker="config.json", what="a checkpoint", overwrite=True,
                               whole=True)


def test_a_writer_still_at_work_is_never_tidied_even_where_its_pid_is_not_seen(tmp_path, caplog):
    """A writer in another container or on another machine sharing the disk has a pid this process cannot see: its
    folder was deleted under it. Its claim (a lock on the folder) is what counts."""
    from ser_hf.locks import claim

    out = tmp_path / "checkpoint"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    at_work = tmp_path / f".checkpoint.ser_hf-tmp-{_GONE}-abcdefgh"
    at_work.mkdir()
    with claim(at_work):
        _check(out)
        assert at_work.is_dir()
    with caplog.at_level("WARNING", logger="ser_hf._atomic_folder"):
        _check(out)
    assert not at_work.exists() and "removed .checkpoint.ser_hf-tmp-4194000-abcdefgh" in caplog.text


@pytest.mark.parametrize("name", ["new\nline", "a.b[c]*(d)+$", "checkpoint"])
def test_leftovers_of_any_name_are_put_back_and_names_that_are_no_writers_are_left(tmp_path, name):
    out = tmp_path / name
    old = tmp_path / f".{name}.ser_hf-old-{_GONE}-12345678"
    old.mkdir()
    (old / "config.json").write_text("earlier")
    not_ours = [tmp_path / f".{name}.ser_hf-old-{10**20}-12345678", tmp_path / f".{name}.ser_hf-old-{_GONE}",
                tmp_path / f".{name}.ser_hf-tmp-x-12345678"]
    for folder in not_ours:
        folder.mkdir()
    _check(out)
    assert (out / "config.json").read_text() == "earlier" and all(folder.is_dir() for folder in not_ours)


def test_a_home_relative_output_is_recovered_where_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / f".checkpoint.ser_hf-old-{_GONE}-12345678").mkdir()
    (tmp_path / f".checkpoint.ser_hf-old-{_GONE}-12345678" / "config.json").write_text("earlier")
    _check("~/checkpoint")
    assert (tmp_path / "checkpoint" / "config.json").read_text() == "earlier"


def test_a_leftover_that_cannot_be_put_back_is_a_warning_and_the_checks_go_on(tmp_path, monkeypatch, caplog):
    (tmp_path / f".checkpoint.ser_hf-old-{_GONE}-12345678").mkdir()

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refuse)
    with caplog.at_level("WARNING", logger="ser_hf._atomic_folder"):
        _check(tmp_path / "checkpoint")  # a new folder, as far as the checks go
    assert "could not tidy .checkpoint.ser_hf-old-4194000-12345678" in caplog.text and "by hand" in caplog.text


def test_the_working_folder_is_an_output_like_any_other(tmp_path, monkeypatch):
    """"." has no name and is its own parent: the new output went inside it, hidden, and the rerun was refused."""
    out = tmp_path / "here"
    out.mkdir()
    monkeypatch.chdir(out)
    with atomic_directory(".", overwrite=True) as folder:  # empty: filled in place
        (folder / "config.json").write_text("first")
    with atomic_directory(".", overwrite=True, expected={"config.json"}) as folder:
        (folder / "config.json").write_text("second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]
    assert [p.name for p in out.iterdir()] == ["config.json"] and (out / "config.json").read_text() == "second"


def test_an_output_that_cannot_be_swapped_is_refused_and_left_whole(tmp_path, monkeypatch):
    """A mount point (a container's volume) cannot be renamed: a raw EBUSY after all the work, the new output left
    hidden to be deleted later. Refused before the work where it can be seen, and named where it cannot."""
    import errno

    out = tmp_path / "volume"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    monkeypatch.setattr(os.path, "ismount", lambda path: str(path) == str(out))
    with pytest.raises(ModelError, match=r"volume is a mount point holding an earlier checkpoint.*Pass a folder inside "
                                         r"it"):
        _check(out)

    def busy(first, second):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(atomic_folder, "_exchange", busy)
    with pytest.raises(ModelError, match=r"could not replace .*volume \(Device or resource busy\): it is a mount "
                                         r"point, or another process replaced it meanwhile. Nothing was replaced"):
        with atomic_directory(out, overwrite=True) as folder:
            (folder / "config.json").write_text("new")
    assert (out / "config.json").read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["volume"]


def test_an_earlier_output_another_process_replaced_meanwhile_is_kept_and_named(tmp_path, monkeypatch):
    """Without the swap in one step, two replacements at once could end in a raw "Directory not empty"."""
    out = tmp_path / "checkpoint"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    monkeypatch.setattr(atomic_folder, "_exchange", lambda first, second: False)
    real_replace = os.replace

    def another_process_first(source, target):
        if "ser_hf-tmp-" in str(source):  # the new output goes in: another process's got there first
            Path(target).mkdir()
            (Path(target) / "config.json").write_text("theirs")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", another_process_first)
    with pytest.raises(ModelError, match=r"checkpoint was replaced by another process meanwhile; the earlier output it "
                                         r"held is kept in .*\.checkpoint\.ser_hf-old-"):
        with atomic_directory(out, overwrite=True) as folder:
            (folder / "config.json").write_text("new")
    assert (out / "config.json").read_text() == "theirs"


def test_only_folders_an_earlier_output_wrote_may_be_deleted_with_it(tmp_path):
    folder = tmp_path / "cv"
    (folder / "fold1").mkdir(parents=True)
    (folder / "fold1" / "report.json").write_text("{}")
    (folder / "archive_v1").mkdir()
    (folder / "archive_v1" / "report.md").write_text("my notes, named like a report")
    with pytest.raises(ModelError, match=r"holds .*archive_v1, which ser_hf did not write there"):
        remove_own_folder(folder, {"report.json", "report.md"}, {"fold1"})
    assert (folder / "archive_v1" / "report.md").read_text() == "my notes, named like a report"
    (folder / "archive_v1" / "report.md").unlink()
    (folder / "archive_v1").rmdir()
    (tmp_path / "thesis.md").write_text("my thesis")
    (folder / "fold1" / "report.md").symlink_to(tmp_path / "thesis.md")  # a link where a report goes: removed,
    (folder / "notes.md").symlink_to(tmp_path / "thesis.md")               # never followed; but one elsewhere is
    with pytest.raises(ModelError, match=r"holds .*notes.md, which ser_hf did not write there"):  # the user's
        remove_own_folder(folder, {"report.json", "report.md"}, {"fold1"})
    (folder / "notes.md").unlink()
    remove_own_folder(folder, {"report.json", "report.md"}, {"fold1"})
    assert not folder.exists() and (tmp_path / "thesis.md").read_text() == "my thesis"


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """A read-only mount (or another user's folder) failed with a raw PermissionError only once train, evaluate or
    baseline had done all their work; root passes every permission check, so the folder is tried for real."""
    import errno
    import tempfile

    from ser_hf._output_folders import check_output_folder
    from ser_hf.errors import ModelError

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    for out in (tmp_path / "new" / "run", tmp_path):  # to be made, and existing
        with pytest.raises(ModelError, match=r"--out .* cannot be written: Read-only file system in .*; a report could "
                                             r"not be saved there after all the work"):
            check_output_folder(out, argument="--out", marker="report.json", what="a report", overwrite=True)
    assert not (tmp_path / "new").exists()


def test_an_output_name_too_long_for_the_files_written_beside_it_is_refused_before_any_work(tmp_path, capsys):
    """A legal 250-byte name: its hidden temporary copy, lock or job file would not fit (255 bytes), which failed
    with a raw OSError at the end of `models convert`, or before a predict job."""
    from ser_hf._output_folders import check_output_folder
    from ser_hf.cli import main
    from ser_hf.errors import ModelError

    long = "n" * 250
    with pytest.raises(ModelError, match=r"its name is 250 bytes; ser_hf also writes hidden files beside it whose "
                                         r"names are up to 32 bytes longer .* at most 223 bytes"):
        check_output_folder(tmp_path / long, argument="out_dir", marker="x", what="a model")
    for name in (long[:244] + ".jsonl", long + ".jsonl"):  # a legal name, and one too long even alone
        assert main(["predict", "--model", str(tmp_path / "m"), str(tmp_path), "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"--out '{tmp_path / name}': its name is {len(name)} bytes" in err and "Traceback" not in err, err
    check_output_folder(tmp_path / ("n" * 223), argument="out_dir", marker="x", what="a model")  # fits


def test_a_folder_lock_refuses_other_processes_and_threads_but_not_its_own_holder(tmp_path, locked_elsewhere):
    """A command locks its output folder and the CV it runs locks it again: that passes; anyone else is refused."""
    import threading

    from ser_hf.locks import folder_lock

    with locked_elsewhere(tmp_path / "out"):
        with pytest.raises(ModelError, match="busy here"):
            with folder_lock(tmp_path / "out", "busy here"):
                pass
    refused = []

    def other_thread():
        try:
            with folder_lock(tmp_path / "out", "busy in a thread"):
                pass
        except ModelError as error:
            refused.append(str(error))

    with folder_lock(tmp_path / "out", "outer"):
        with folder_lock(tmp_path / "out", "inner"):  # the same thread again: passes
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
        assert refused == ["busy in a thread"]
        with pytest.raises(ModelError, match="busy"):  # the inner block's end did not release the outer's lock
            with locked_elsewhere(tmp_path / "out"):
                pass
    with locked_elsewhere(tmp_path / "out"):  # released with the outermost block
        pass


def test_a_folder_where_an_output_writes_a_file_is_refused_before_any_work(tmp_path):
    """A folder left where an earlier output's file was (config.json, README.md, a baseline's model.skops, a CV's
    summary) failed with a raw IsADirectoryError once the work was done; every command's folder check refuses it."""
    import json

    from ser_hf.baseline.folder import check_baseline_folder
    from ser_hf.training.experiment import run_output_dir
    from ser_hf.training.recipes import parse_run

    run = parse_run(None, corpus="urdu", data_dir=str(tmp_path), model_name_or_path="whisper-tiny.en",
                    output_dir=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ser_hf_run.json").write_text(json.dumps({"data": {}, "model": {}, "training": {}}))
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "baseline_config.json").write_text(
        json.dumps({"format": 1, "classifier": "svm", "labels": ["a", "b"]}))
    checks = {"run": (lambda: run_output_dir(run), ["config.json", "README.md", "speaker_adaptation.json"]),
              "base": (lambda: check_baseline_folder(tmp_path / "base", "--out"), ["model.skops", "README.md"])}
    for folder, (check, names) in checks.items():
        check()  # an earlier output: accepted
        for name in names:
            (tmp_path / folder / name).mkdir()
            with pytest.raises(ModelError, match=f"its {name} is a folder, but .* writes a file of that name there; "
                                                 f"move that folder away"):
                check()
            (tmp_path / folder / name).rmdir()
            (tmp_path / folder / name).symlink_to(tmp_path / "elsewhere")  # a link is replaced when written, never
            check()                                                      # written through: accepted
            (tmp_path / folder / name).unlink()


def test_a_run_refuses_what_stands_where_it_writes_a_folder_before_any_work(tmp_path):
    """A file or link named eval, cv or leave_one_corpus_out (or a dangling checkpoints link), and a file of the user's
    in eval/ that the test report would replace: refused before the corpus even loads, not after the training."""
    import json

    from ser_hf.training.experiment import run_output_dir, train
    from ser_hf.training.recipes import parse_run

    out = tmp_path / "run"
    out.mkdir()
    (out / "ser_hf_run.json").write_text(json.dumps({"data": {}, "model": {}, "training": {}}))
    run = parse_run(None, corpus="urdu", data_dir=str(tmp_path / "no-corpus-here"), model_name_or_path="whisper-tiny.en",
                    output_dir=str(out))
    for name in ("eval", "cv", "leave_one_corpus_out", "checkpoints"):
        (out / name).write_text("mine")
        with pytest.raises(ModelError, match=f"output_dir .*run: its {name} is a file, not a folder, but a run writes its {name}/ folder there"):
            run_output_dir(run)
        (out / name).unlink()
        (out / name).symlink_to(tmp_path / "nowhere")
        with pytest.raises(ModelError, match=f"its {name} is a link"):
            run_output_dir(run)
        (out / name).unlink()
    (tmp_path / "big-disk").mkdir()
    (out / "checkpoints").symlink_to(tmp_path / "big-disk")  # the Trainer's checkpoints on another disk: fine
    assert run_output_dir(run) == out
    (out / "eval").mkdir()
    (out / "eval" / "my-notes.txt").write_text("mine")
    with pytest.raises(ModelError, match=r"eval would be replaced, but it holds .*my-notes.txt"):
        train(run, progress=False)  # before the (missing) corpus is read: nothing trained for nothing
    (out / "eval" / "my-notes.txt").unlink()
    for litter in (".DS_Store", "Thumbs.db", "._report.md"):  # left by a desktop that showed the plots: no one's work
        (out / "eval" / litter).write_bytes(b"x")
    from ser_hf.errors import CorpusError

    with pytest.raises(CorpusError, match="no-corpus-here"):  # past the check: the missing corpus stops it
        train(run, progress=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_releases_inherited_locks_and_never_closes_a_file_of_its_own(tmp_path, locked_elsewhere):
    """A worker forked inside a lock neither keeps the folder locked once its parent lets go, nor has a file it opened
    (on the number of the lock's closed descriptor) closed under it when it leaves the parent's blocks, and its own
    locks come and go as anyone's."""
    from ser_hf.locks import folder_lock

    said, tell = os.pipe()
    wait, go = os.pipe()
    with folder_lock(tmp_path / "out", "outer"), folder_lock(tmp_path / "out", "inner"):
        child = os.fork()
        if child == 0:  # the child, still in its parent's blocks, as a pool worker stays
            try:
                for _ in range(2):  # its own lock, on the number of a descriptor closed at the fork, comes and goes
                    with folder_lock(tmp_path / "child-lock", "busy in the child"):
                        pass
                locks = True
            except ModelError:
                locks = False
            own = os.open(tmp_path / "child.txt", os.O_WRONLY | os.O_CREAT)
    if child == 0:  # the child, out of both blocks
        try:
            os.fstat(own)
            answer = b"1" if locks else b"0"
        except OSError:
            answer = b"0"
        os.write(tell, answer)
        os.read(wait, 1)  # alive until the parent has checked the lock
        os._exit(0)
    try:
        assert os.read(said, 1) == b"1"
        with locked_elsewhere(tmp_path / "out"):  # free, though the child that inherited it still runs
            pass
    finally:
        os.write(go, b"x")
        os.waitpid(child, 0)


def test_a_file_left_alone_is_hashed_once_and_every_later_change_is_seen(tmp_path, monkeypatch):
    """A CV hashes each clip for its resume record and for its embedding cache: the second time costs nothing. A
    rewrite of the same size with the old modification time put back still changes the file's change time."""
    import hashlib
    import time
    from types import SimpleNamespace

    monkeypatch.setattr(io_helpers, "_DIGESTS", {})
    monkeypatch.setattr(io_helpers, "_SETTLED_NS", -10**10)  # as if every file had been left alone long ago
    clip = tmp_path / "03-01-05-01-01-01-01.wav"
    clip.write_bytes(b"RIFF one")
    first = io_helpers.file_sha256(clip)
    assert first == hashlib.sha256(b"RIFF one").hexdigest() and list(io_helpers._DIGESTS.values()) == [first]
    with monkeypatch.context() as patched:
        patched.setattr(io_helpers, "hashlib", SimpleNamespace(sha256=None))  # reading the bytes again would fail
        assert io_helpers.file_sha256(clip) == first
    times = os.stat(clip)
    time.sleep(0.05)  # past a coarse file system's clock tick
    clip.write_bytes(b"RIFF two")
    os.utime(clip, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert io_helpers.file_sha256(clip) == hashlib.sha256(b"RIFF two").hexdigest()


def test_a_file_changed_just_before_it_is_hashed_is_not_remembered(tmp_path, monkeypatch):
    """Within one clock tick of a coarse file system a rewrite can show the very same times: such a file is read again
    each time (as git re-reads its "racy" files), never given the digest of the bytes it held before."""
    import hashlib

    monkeypatch.setattr(io_helpers, "_DIGESTS", {})
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF one")
    times = os.stat(clip)
    assert io_helpers.file_sha256(clip) == hashlib.sha256(b"RIFF one").hexdigest()
    assert io_helpers._DIGESTS == {}
    clip.write_bytes(b"RIFF two")
    os.utime(clip, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert io_helpers.file_sha256(clip) == hashlib.sha256(b"RIFF two").hexdigest()


def test_a_search_refuses_what_stands_where_its_trials_train_before_any_work(tmp_path):
    """A file or a link named hp_search (where the trials' checkpoints go), or a file named hp_search/<study>/checkpoints:
    refused before the corpus loads (the Trainer failed on the file after loading everything, and wrote the
    checkpoints into the folder a link pointed to)."""
    from ser_hf.errors import SERError
    from ser_hf.training.recipes import parse_run
    from ser_hf.training.search import _study_name, default_hp_space, hyperparameter_search

    out, mine = tmp_path / "run", tmp_path / "mine"
    mine.mkdir()
    run = parse_run(None, corpus="urdu", data_dir=str(tmp_path / "no-corpus-here"), model_name_or_path="whisper-tiny.en",
                    mode="finetune", output_dir=str(out))
    out.mkdir()
    (out / "hp_search.json").write_text('{"objective": "eval_unweighted_accuracy", "n_trials": 2}')  # a search's
    (out / "hp_search").write_text("mine")
    with pytest.raises(ModelError, match=r"output_dir .*run: its hp_search is a file, not a folder, but a search "
                                         r"writes its hp_search/ folder \(the trials' checkpoints\) there"):
        hyperparameter_search(run, n_trials=1)
    (out / "hp_search").unlink()
    (out / "hp_search").symlink_to(mine)
    with pytest.raises(ModelError, match=r"its hp_search is a link, not a folder"):
        hyperparameter_search(run, n_trials=1)
    (out / "hp_search").unlink()
    study = out / "hp_search" / _study_name(run, default_hp_space, run.training.seed)  # this search's trials
    study.mkdir(parents=True)
    (study / "checkpoints").write_text("mine")
    with pytest.raises(ModelError, match=rf"its checkpoints is a file, not a folder, but a search writes its "
                                         rf"hp_search/{study.name}/checkpoints/ folder"):
        hyperparameter_search(run, n_trials=1)
    (study / "checkpoints").unlink()
    (study / "checkpoints").symlink_to(mine)  # the trials' checkpoints on another disk: fine
    with pytest.raises(SERError) as raised:
        hyperparameter_search(run, n_trials=1)
    assert "no-corpus-here" in str(raised.value) and list(mine.iterdir()) == []
