"""A `ser-hf cv` run again resumes: finished folds are kept, and the result equals an uninterrupted CV's."""

import json
import os

import numpy as np
import pytest

from ser_hf.evaluation import fold_state
from ser_hf.evaluation.fold_state import (
    cv_fingerprint,
    data_digest,
    fingerprint_parts,
    load_fold_state,
    save_fold_state,
)
from ser_hf.evaluation.report import FOLD_STATE, EvaluationReport
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone
from ser_hf.training import experiment
from ser_hf.training.recipes import parse_run


@pytest.fixture(scope="module")
def corpus_and_backbone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    return make_corpus_tree("urdu", tmp / "urdu", duration=0.4), tiny_backbone("whisper", tmp / "tiny")


def make_run(corpus_and_backbone, tmp_path, output: str, **values):
    corpus, backbone = corpus_and_backbone
    settings = dict(corpus="urdu", data_dir=str(corpus), model_name_or_path=str(backbone), max_source_positions=50,
                    probe_projector_size=8, num_folds=3, probe_speaker_adaptation=True,
                    probe_speed_copies=[0.9, 1.1], embedding_cache_dir=str(tmp_path / "cache"),
                    output_dir=str(tmp_path / output))
    return parse_run(None, **{**settings, **values})


@pytest.fixture
def fitted_folds(monkeypatch):
    """The names of the folds ``cross_validate`` fits (rather than keeps), in order."""
    fitted = []
    fit_fold = experiment._fit_fold

    def counting(run, dataset, fold, *args, **kwargs):
        fitted.append(fold.name)
        return fit_fold(run, dataset, fold, *args, **kwargs)

    monkeypatch.setattr(experiment, "_fit_fold", counting)
    return fitted


def cv_interrupted_after(run, folds: int) -> None:
    """Run ``run``'s CV and stop it, as Ctrl-C would, once ``folds`` folds are written."""
    seen = []

    def on_fold(report):
        seen.append(report)
        if len(seen) == folds:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        experiment.cross_validate(run, progress=False, on_fold=on_fold)


def comparable(cv_folder):
    """What a CV concluded (summary, speaker-adaptive rows), without the output paths it names."""
    summary = json.loads((cv_folder / "cv_summary.json").read_text())
    summary.pop("settings"), summary.pop("fingerprint")  # both name the output folder
    return summary, json.loads((cv_folder / "speaker_adaptive.json").read_text())


def test_an_interrupted_cv_keeps_its_finished_folds_and_ends_as_an_uninterrupted_one(corpus_and_backbone, tmp_path,
                                                                                       fitted_folds):
    whole = experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "whole"), progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"] and whole.resumed_folds == []
    fitted_folds.clear()

    run = make_run(corpus_and_backbone, tmp_path, "stopped")
    cv_interrupted_after(run, 2)  # killed after its second fold was written
    cv = tmp_path / "stopped" / "cv"
    assert (cv / "fold1" / FOLD_STATE).is_file() and (cv / "fold2" / FOLD_STATE).is_file()
    assert not (cv / "fold3").exists() and (cv / "cv_plan.json").is_file()
    fitted_folds.clear()

    resumed = experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "stopped"), progress=False)
    assert fitted_folds == ["fold3"] and resumed.resumed_folds == ["fold1", "fold2"]
    assert comparable(cv) == comparable(tmp_path / "whole" / "cv")  # pooled, per fold, test-time copies, enrollment
    assert resumed.pooled.to_dict() == whole.pooled.to_dict()
    assert not (cv / "cv_plan.json").exists() and len(list(cv.rglob(FOLD_STATE))) == 3
    assert {p.name for p in (cv / "fold1").iterdir()} == {p.name for p in (cv / "fold3").iterdir()}

    fitted_folds.clear()  # a finished CV run again (as SpeechBrain reruns a finished recipe): every fold reused
    again = experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "stopped"), progress=False)
    assert fitted_folds == [] and again.resumed_folds == ["fold1", "fold2", "fold3"]
    assert comparable(cv) == comparable(tmp_path / "whole" / "cv")


def test_a_cv_resumes_only_with_the_same_settings_and_clips(corpus_and_backbone, tmp_path, fitted_folds, caplog):
    def interrupted(**values):
        cv_interrupted_after(make_run(corpus_and_backbone, tmp_path, "cv", **values), 2)
        fitted_folds.clear()

    interrupted()
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", fold_seed=1), progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"]  # another seed: other folds, so nothing is kept

    interrupted()
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", probe_speed_copies=[0.9]),
                              progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"]  # same folds, another setting

    interrupted()
    clip = sorted(corpus_and_backbone[0].rglob("*.wav"))[0]
    stat, recorded = clip.stat(), clip.read_bytes()
    clip.chmod(0o600)  # a permission change, and the clip touched: the same bytes, so the CV resumes
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    finally:
        clip.chmod(stat.st_mode & 0o7777)
    assert fitted_folds == ["fold3"]

    interrupted()
    clip.write_bytes(recorded[:-2] + bytes(2))  # a clip re-recorded since, its old modification time put back
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    try:
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    finally:
        clip.write_bytes(recorded)
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fitted_folds == ["fold1", "fold2", "fold3"]

    interrupted()
    state = tmp_path / "cv" / "cv" / "fold1" / FOLD_STATE
    state.write_bytes(state.read_bytes()[:100])  # damaged (a disk that filled up): that fold alone runs again
    with caplog.at_level("WARNING"):
        result = experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert fitted_folds == ["fold1", "fold3"] and result.resumed_folds == ["fold2"]
    assert f"{state} cannot be read" in caplog.text


def test_the_code_digest_is_part_of_the_fingerprint(corpus_and_backbone, tmp_path, fitted_folds, monkeypatch):
    from ser_hf.evaluation import fold_state

    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    fitted_folds.clear()
    monkeypatch.setattr(fold_state, "code_digest", lambda: "an edited ser_hf or an upgraded torch")
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"]


def test_leave_one_corpus_out_resumes_its_held_out_corpora(tmp_path, fitted_folds):
    corpora = [make_corpus_tree(name, tmp_path / name, duration=0.4) for name in ("urdu", "ravdess")]
    backbone = tiny_backbone("whisper", tmp_path / "tiny")

    def run(output):
        return parse_run(None, corpus="urdu,ravdess", data_dir=",".join(map(str, corpora)),
                         model_name_or_path=str(backbone), max_source_positions=50, probe_projector_size=8,
                         embedding_cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / output))

    whole = experiment.leave_one_corpus_out(run("whole"), progress=False)
    assert whole.resumed == []
    fitted_folds.clear()
    reported = []
    write = EvaluationReport.write

    def killed_after_the_first(report, *args, **kwargs):
        reported.append(report.split)
        if len(reported) == 2:
            raise KeyboardInterrupt
        return write(report, *args, **kwargs)

    import unittest.mock

    with unittest.mock.patch.object(EvaluationReport, "write", killed_after_the_first), \
            pytest.raises(KeyboardInterrupt):
        experiment.leave_one_corpus_out(run("stopped"), progress=False)
    fitted_folds.clear()
    resumed = experiment.leave_one_corpus_out(run("stopped"), progress=False)
    assert fitted_folds == ["ravdess"] and resumed.resumed == ["urdu"]  # urdu, held out first, was kept
    assert {corpus: r.to_dict() for corpus, r in resumed.items()} == {corpus: r.to_dict() for corpus, r in whole.items()}
    folder = tmp_path / "stopped" / "leave_one_corpus_out"
    assert not (folder / "cv_plan.json").exists() and (folder / "leave_one_corpus_out.json").is_file()


def test_fold_states_round_trip_nested_outputs_and_refuse_other_fingerprints_or_rows(tmp_path):
    report = EvaluationReport.from_predictions([0, 1, 1], [0, 1, 0], label_names=["a", "b"])
    outputs = {"enrollment": {"3": {"rows": np.array([2, 0]), "adaptive": np.zeros(0, dtype=np.int64),
                                    "estimator": "speaker mean", "shrink_clips": None, "draws": 5}},
               "copies": [np.ones((2, 2)), 0.5]}
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    save_fold_state(tmp_path, "abc", [4, 5, 6], report, probabilities, outputs)
    kept_report, kept_probabilities, kept = load_fold_state(tmp_path, "abc", np.array([4, 5, 6]))
    np.testing.assert_array_equal(kept_probabilities, probabilities)
    assert kept_report.to_dict() == report.to_dict()
    enrolled = kept["enrollment"]["3"]
    assert enrolled["rows"].tolist() == [2, 0] and enrolled["adaptive"].shape == (0,)
    assert (enrolled["estimator"], enrolled["shrink_clips"], enrolled["draws"]) == ("speaker mean", None, 5)
    np.testing.assert_array_equal(kept["copies"][0], np.ones((2, 2)))
    assert kept["copies"][1] == 0.5
    assert load_fold_state(tmp_path, "other settings", [4, 5, 6]) is None
    assert load_fold_state(tmp_path, "abc", [4, 5, 7]) is None
    assert load_fold_state(tmp_path / "none", "abc", [4, 5, 6]) is None


def test_the_fingerprint_changes_with_the_data_and_the_folds(tmp_path, corpus_and_backbone):
    from ser_hf.corpora import load_corpus
    from ser_hf.corpora.splits import Fold

    dataset = load_corpus("urdu", corpus_and_backbone[0])
    folds = [Fold("fold1", np.array([0, 1]), np.array([2]))]

    def fingerprint(settings, folds=folds, data=None):
        return cv_fingerprint(fingerprint_parts(settings, folds, data or data_digest(dataset)))

    first = fingerprint({"seed": 0})
    assert fingerprint({"seed": 0}) == first
    assert fingerprint({"seed": 1}) != first
    assert fingerprint({"seed": 0}, [Fold("fold1", np.array([0]), np.array([1, 2]))]) != first
    for changed in (dataset.map(lambda row: {"label": 0}), dataset.map(lambda row: {"gender": "x"}),
                    dataset.select([1, 0, *range(2, len(dataset))])):  # labels, genders (any column), row order
        assert data_digest(changed) != data_digest(dataset)
    import datasets

    table = dataset.with_format("arrow")[:]
    stamp = {**json.loads(table.schema.metadata[b"huggingface"]), "fingerprint": "another load's cache key"}
    restamped = datasets.Dataset(table.replace_schema_metadata({"huggingface": json.dumps(stamp)}))
    assert data_digest(restamped) == data_digest(dataset)  # the rows, not how they were loaded
    renamed = dataset.cast_column("label", datasets.ClassLabel(names=["calm", "joy", "grief", "rage"]))
    assert data_digest(renamed) != data_digest(dataset)  # the same ids under other label names


def test_the_data_digest_reads_samples_and_bytes_as_stored_and_files_by_their_bytes(tmp_path):
    import datasets

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"one")
    samples = datasets.Dataset.from_dict({"audio": [{"array": [0.0, 1.0], "sampling_rate": 16000},
                                                    {"array": [0.5, 0.5], "sampling_rate": 16000}],
                                          "label": [0, 1], "speaker": ["a", "b"]})
    changed = datasets.Dataset.from_dict({"audio": [{"array": [0.0, 1.0], "sampling_rate": 16000},
                                                    {"array": [0.5, 0.25], "sampling_rate": 16000}],
                                          "label": [0, 1], "speaker": ["a", "b"]})
    assert data_digest(samples) != data_digest(changed)
    assert data_digest(samples.select([0, 1])) == data_digest(samples)  # a view: its rows, not the table under it
    assert data_digest(samples.select([1])) != data_digest(samples.select([0]))
    assert data_digest(changed.select([0])) == data_digest(samples.select([0]))
    stored = datasets.Dataset.from_dict({"audio": [{"bytes": None, "path": str(clip)}], "label": [0]})
    first = data_digest(stored)
    clip.write_bytes(b"longer")  # the file named by a {bytes: None, path} entry was re-recorded
    assert data_digest(stored) != first
    paths = datasets.Dataset.from_dict({"audio": [str(clip)], "label": [0]})
    before = data_digest(paths)
    os.utime(clip, ns=(0, 10**9))
    clip.chmod(0o600)
    assert data_digest(paths) == before  # touched, its permissions changed: the same clip
    clip.write_bytes(b"longor")
    os.utime(clip, ns=(0, 10**9))
    assert data_digest(paths) != before  # edited, its modification time put back


def test_files_are_known_by_their_bytes_and_odd_files_do_not_block_or_crash(tmp_path):
    one, two = tmp_path / "one.wav", tmp_path / "two.wav"
    one.write_bytes(b"aaaa")
    two.write_bytes(b"bbbb")
    for clip in (one, two):
        os.utime(clip, ns=(10**18, 10**18))  # one size, one modification time: as an archive extracts them
    before = [fold_state._file_content(clip) for clip in (one, two)]
    (tmp_path / "swap").write_bytes(one.read_bytes())
    os.replace(two, one)
    os.replace(tmp_path / "swap", two)
    for clip in (one, two):
        os.utime(clip, ns=(10**18, 10**18))
    assert [fold_state._file_content(clip) for clip in (one, two)] == before[::-1]  # swapped: each name, other bytes
    edited = fold_state._file_content(one)
    one.write_bytes(b"cccc")  # edited in place, the old modification time put back
    os.utime(one, ns=(10**18, 10**18))
    assert fold_state._file_content(one) != edited
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "one.wav").write_bytes(b"cccc")  # restored from a backup: another inode and times, the same bytes
    assert fold_state._file_content(one) == fold_state._file_content(copy / "one.wav")
    os.mkfifo(tmp_path / "fifo.wav")  # read, it would block forever
    assert fold_state._file_content(tmp_path / "fifo.wav").startswith(b"not a file")
    assert fold_state._file_content(tmp_path).startswith(b"not a file")
    assert fold_state._file_content("a\0b") == b"missing"
    (tmp_path / "locked.wav").write_bytes(b"x")
    (tmp_path / "locked.wav").chmod(0)
    if not os.access(tmp_path / "locked.wav", os.R_OK):  # root reads it anyway
        assert fold_state._file_content(tmp_path / "locked.wav").startswith(b"unreadable")


def test_a_corpus_or_model_moved_elsewhere_digests_the_same_and_what_loads_counts(tmp_path):
    """Where a corpus lies and how its folder is spelt change no clip; a model folder's card and hidden files (a vim
    swap file, .DS_Store: opening the folder makes them) change no weight. Their bytes and the rows' order do."""
    import shutil

    import datasets

    from ser_hf.evaluation.fold_state import model_digest

    first = tmp_path / "corpus"
    first.mkdir()
    for name, data in (("a.wav", b"aa"), ("b.wav", b"bb")):
        (first / name).write_bytes(data)
    moved = shutil.copytree(first, tmp_path / "elsewhere" / "corpus")
    (tmp_path / "alias").symlink_to(first)

    def rows(folder, order=("a.wav", "b.wav"), as_struct=False):
        audio = [str(folder / name) for name in order]
        if as_struct:
            audio = [{"bytes": None, "path": path} for path in audio]
        return datasets.Dataset.from_dict({"audio": audio, "label": [0, 1]})

    empty_bytes = datasets.Dataset.from_dict({"audio": [{"bytes": b"", "path": str(first / "a.wav")}], "label": [0]})
    before = data_digest(empty_bytes)
    (first / "a.wav").write_bytes(b"AA")  # the loader reads the file when the bytes are empty: so must the digest
    assert data_digest(empty_bytes) != before
    (first / "a.wav").write_bytes(b"aa")
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for name, data in (("c.wav", b"aa"), ("b.wav", b"bb")):
        (renamed / name).write_bytes(data)
    assert data_digest(rows(renamed, ("c.wav", "b.wav"))) != data_digest(rows(first))  # training draws by name
    for as_struct in (False, True):
        digest = data_digest(rows(first, as_struct=as_struct))
        assert data_digest(rows(moved, as_struct=as_struct)) == digest
        assert data_digest(rows(tmp_path / "alias", as_struct=as_struct)) == digest
        assert data_digest(rows(first, ("b.wav", "a.wav"), as_struct=as_struct)) != digest  # other labels per clip
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    digest = model_digest(model)
    (model / "README.md").write_text("a card")
    (model / ".config.json.swp").write_bytes(b"vim")
    (model / ".DS_Store").write_bytes(b"finder")
    (model / "tokenizer.json").write_text("{}")  # what another tool downloads into a Hub snapshot
    (model / "checkpoint-500").mkdir()
    assert model_digest(model) == digest == model_digest(shutil.copytree(model, tmp_path / "copied"))
    for name in ("processor_config.json", "adapter_config.json", "adapter_model.safetensors"):  # read when loading
        (model / name).write_text("{}")
        assert model_digest(model) != digest
        (model / name).unlink()
    (model / "config.json").write_text('{"hidden_size": 8}')
    assert model_digest(model) != digest


def test_the_code_digest_reads_sources_only_and_never_blocks_on_odd_entries(tmp_path):
    """An editable install's folder holds what editors leave (an Emacs lock: a dangling link named .#x.py) and
    whatever a user puts there (a FIFO or a folder named like a module, a name that is not UTF-8): none of them may
    hang or crash every `ser-hf cv`, and only the sources' bytes count."""
    package = tmp_path / "ser_hf"
    (package / "training").mkdir(parents=True)
    (package / "training" / "experiment.py").write_text("x = 1\n")
    before = fold_state.code_digest(package)
    (package / "training" / ".#experiment.py").symlink_to(tmp_path / "user@host.123")  # dangling, as Emacs makes it
    os.mkfifo(package / "scratch.py")
    (package / "notes.py").mkdir()
    (package / os.fsdecode(b"caf\xe9.py")).write_text("y = 2\n")
    with_odd = fold_state.code_digest(package)
    assert with_odd != before  # new entries in the package: other code
    os.utime(package / "training" / "experiment.py", ns=(0, 10**9))
    assert fold_state.code_digest(package) == with_odd  # touched: the same code
    (package / "training" / "experiment.py").write_text("x = 2\n")
    assert fold_state.code_digest(package) != with_odd


def test_fold_outputs_that_would_not_come_back_as_they_went_are_refused_when_saved(tmp_path):
    report = EvaluationReport.from_predictions([0, 1], [0, 1], label_names=["a", "b"])
    for outputs in ({1: np.zeros(2)}, {"a/b": 1}, {"text": np.array(["x"])}, {"objects": np.array([None])}):
        with pytest.raises(TypeError, match="fold output"):
            save_fold_state(tmp_path, "f", [0, 1], report, np.eye(2), outputs)


def test_a_state_is_trusted_only_when_it_holds_what_the_fold_would(tmp_path, caplog):
    report = EvaluationReport.from_predictions([0, 1], [0, 1], label_names=["a", "b"], split="fold1")
    good = np.array([[0.9, 0.1], [0.2, 0.8]])
    cases = {"fold2": (report, good), "labels": (report, good), "shape": (report, np.ones((2, 3)) / 3),
             "nan": (report, np.array([[np.nan, 0.5], [0.5, 0.5]])), "sums": (report, good * 2)}
    for name, (saved_report, probabilities) in cases.items():
        (tmp_path / name).mkdir()
        save_fold_state(tmp_path / name, "f", [4, 5], saved_report, probabilities, {})
    with caplog.at_level("WARNING"):
        assert load_fold_state(tmp_path / "fold2", "f", [4, 5], split="fold2") is None
        assert load_fold_state(tmp_path / "labels", "f", [4, 5], split="fold1", label_names=["a", "c"]) is None
        for name in ("shape", "nan", "sums"):
            assert load_fold_state(tmp_path / name, "f", [4, 5], split="fold1", label_names=["a", "b"]) is None
    assert caplog.text.count("cannot be kept") == 5
    assert load_fold_state(tmp_path / "fold2", "f", [4, 5], split="fold1", label_names=["a", "b"]) is not None
    assert load_fold_state(tmp_path / "fold2", "f", [4, 5], split="fold1", references=np.array([0, 1])) is not None
    (tmp_path / "reversed").mkdir()  # the classes' columns swapped: shapes fine, but not the report's predictions
    save_fold_state(tmp_path / "reversed", "f", [4, 5], report, good[:, ::-1], {})
    assert load_fold_state(tmp_path / "reversed", "f", [4, 5], split="fold1", references=np.array([0, 1])) is None
    assert "its report does not match its probabilities" in caplog.text


def test_a_resume_never_writes_through_a_link_and_refuses_a_folder_in_the_states_place(corpus_and_backbone, tmp_path):
    run = make_run(corpus_and_backbone, tmp_path, "cv")
    cv_interrupted_after(run, 2)
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("my thesis")
    state = tmp_path / "cv" / "cv" / "fold1" / FOLD_STATE
    state.unlink()
    state.symlink_to(thesis)  # fold1 runs again; its new state replaces the link, never the file it names
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert thesis.read_text() == "my thesis" and state.is_file() and not state.is_symlink()
    state.unlink()
    state.mkdir()
    from ser_hf.errors import ModelError

    with pytest.raises(ModelError, match="fold_state.safetensors is a folder"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    state.rmdir()
    report = state.with_name("report.md")
    report.unlink()
    report.mkdir()  # a report's name taken by a folder: refused before any fold, not after one has run
    with pytest.raises(ModelError, match="report.md is a folder"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    report.rmdir()
    fold3 = state.parent.with_name("fold3")
    import shutil

    shutil.rmtree(fold3)
    fold3.write_text("a file where a fold's folder goes")
    with pytest.raises(ModelError, match="cv: its fold3 is a file, not a folder, but ser_hf writes this fold's reports there"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)


def test_a_finished_cv_run_again_never_writes_its_summary_through_a_link_nor_fails_after_its_folds(
        corpus_and_backbone, tmp_path, fitted_folds):
    """Rebuilt from its folds, a CV writes its pooled report and summaries again: a link where the pooled report
    goes, or a folder where a summary goes, is refused before any fold, never written through or failed on after."""
    import shutil

    from ser_hf.errors import ModelError

    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    cv = tmp_path / "cv" / "cv"
    outside = tmp_path / "my-reports"
    outside.mkdir()
    shutil.rmtree(cv / "pooled")
    (cv / "pooled").symlink_to(outside)
    with pytest.raises(ModelError, match="its pooled is a link, not a folder, but ser_hf writes the CV's pooled reports there"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert list(outside.iterdir()) == []
    (cv / "pooled").unlink()
    for name in ("speaker_adaptive.md", "speaker_adaptive.png", "cv_summary.md"):
        (cv / name).unlink()
        (cv / name).mkdir()
        fitted_folds.clear()
        with pytest.raises(ModelError, match=f"{name} is a folder"):
            experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
        (cv / name).rmdir()
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert (cv / "pooled" / "report.json").is_file() and (cv / "speaker_adaptive.md").is_file()


def test_result_neutral_settings_resume_and_a_real_change_says_what_changed(corpus_and_backbone, tmp_path,
                                                                            fitted_folds, caplog):
    cv_interrupted_after(make_run(corpus_and_backbone, tmp_path, "cv"), 2)
    fitted_folds.clear()
    (tmp_path / "link").symlink_to(corpus_and_backbone[1])
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", logging_steps=7,
                                       embedding_cache_dir=str(tmp_path / "another-cache"),
                                       data_dir=str(corpus_and_backbone[0]) + "/",
                                       model_name_or_path=str(tmp_path / "link") + "/"), progress=False)
    assert fitted_folds == ["fold3"]  # logging, the cache, how data_dir and the model are spelt change no number
    fitted_folds.clear()
    with caplog.at_level("WARNING"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", probe_inner_folds=3), progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"]
    assert "holds another CV (changed: probe.probe_inner_folds)" in caplog.text


def test_a_backbone_replaced_at_the_same_path_starts_afresh(corpus_and_backbone, tmp_path, fitted_folds):
    import shutil

    backbone = tiny_backbone("whisper", tmp_path / "backbone")
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path=str(backbone)),
                              progress=False)
    fitted_folds.clear()
    moved = shutil.copytree(backbone, tmp_path / "elsewhere" / "backbone")  # the same files in another folder
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path=str(moved)),
                              progress=False)
    assert fitted_folds == []
    tiny_backbone("whisper", backbone, seed=1)  # retrained (or downloaded again) in place
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path=str(backbone)),
                              progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"]


def test_a_cv_of_a_hub_id_loads_one_snapshot_and_is_known_by_it(corpus_and_backbone, tmp_path, fitted_folds,
                                                                 monkeypatch):
    """Every fold loads the snapshot the Hub id means when the CV starts (downloaded then): the rerun of a first run
    that downloaded it resumes, and a commit pushed to the Hub since starts afresh on it, never mixing the two."""
    import shutil

    import huggingface_hub

    served = [shutil.copytree(corpus_and_backbone[1], tmp_path / "hub" / "snapshots" / "aaa")]
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **options: str(served[0]))
    loaded, make_method = [], experiment.make_method

    def recording(run, *args, **kwargs):
        loaded.append(run.model.model_name_or_path)
        return make_method(run, *args, **kwargs)

    monkeypatch.setattr(experiment, "make_method", recording)
    cv_interrupted_after(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path="owner/tiny"), 2)
    assert set(loaded) == {str(served[0])}
    fitted_folds.clear()
    result = experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path="owner/tiny"),
                                       progress=False)
    assert fitted_folds == ["fold3"] and result.resumed_folds == ["fold1", "fold2"]
    assert {report.model for report in [*result.folds, result.pooled]} == {"owner/tiny"}  # named as the user named it
    assert result.aggregate["model"] == "owner/tiny"
    served[0] = tiny_backbone("whisper", tmp_path / "hub" / "snapshots" / "bbb", seed=1)  # a new commit on the Hub
    loaded.clear()
    fitted_folds.clear()
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", model_name_or_path="owner/tiny"),
                              progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"] and set(loaded) == {str(served[0])}
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _offline_and_not_cached)
    from ser_hf.errors import ModelError

    with pytest.raises(ModelError, match="owner/tiny"):  # the loader's own error, naming the id
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "other", model_name_or_path="owner/tiny"),
                                  progress=False)


def test_a_hub_snapshot_fetches_only_what_loading_reads_and_needs_safetensors(tmp_path, monkeypatch):
    import fnmatch

    import huggingface_hub

    from ser_hf.models.presets import pin_hub_snapshot

    repo = ["config.json", "preprocessor_config.json", "processor_config.json", "model.safetensors",
            "model.safetensors.index.json", "model-00001-of-00002.safetensors", "adapter_config.json",
            "adapter_model.safetensors", "checkpoint-500/model.safetensors", "onnx/config.json", "tokenizer.json",
            "pytorch_model.bin", "optimizer_state.safetensors"]
    fetched = []

    def download(repo_id, allow_patterns, **options):
        fetched.extend(name for name in repo if any(fnmatch.fnmatch(name, p) for p in allow_patterns))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    (tmp_path / "snapshot").mkdir()
    assert pin_hub_snapshot("owner/bin-only") is None  # no safetensors came: the loader names the id and the fix
    assert sorted(fetched) == ["adapter_config.json", "adapter_model.safetensors", "config.json",
                               "model-00001-of-00002.safetensors", "model.safetensors", "model.safetensors.index.json",
                               "preprocessor_config.json", "processor_config.json"]
    (tmp_path / "snapshot" / "model.safetensors").write_bytes(b"weights")
    assert pin_hub_snapshot("owner/model") == str(tmp_path / "snapshot")
    assert pin_hub_snapshot("whisper-tiny.en") is None and pin_hub_snapshot(str(tmp_path)) is None  # not Hub ids


def _offline_and_not_cached(repo_id, **options):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError(f"{repo_id} is not in the cache")


def test_a_write_killed_before_its_rename_never_stops_the_next_run(corpus_and_backbone, tmp_path, fitted_folds):
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    leftover = tmp_path / "cv" / "cv" / "fold1" / f".{FOLD_STATE}.k1ll3d_x.tmp"  # as tempfile.mkstemp names it
    leftover.write_bytes(b"half a state")
    fitted_folds.clear()
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", fold_seed=1), progress=False)
    assert fitted_folds == ["fold1", "fold2", "fold3"] and not leftover.exists()  # ser_hf's own: replaced
    backup = tmp_path / "cv" / "cv" / "fold1" / ".report.json.my-notes-backup.tmp"  # named alike, but the user's
    backup.write_text("mine")
    from ser_hf.errors import ModelError

    with pytest.raises(ModelError, match="my-notes-backup"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv", fold_seed=2), progress=False)
    assert backup.read_text() == "mine"


def test_a_resume_into_a_folder_that_cannot_be_written_is_refused_before_any_fold(corpus_and_backbone, tmp_path,
                                                                                  fitted_folds, monkeypatch):
    import tempfile

    from ser_hf.errors import ModelError

    cv_interrupted_after(make_run(corpus_and_backbone, tmp_path, "cv"), 1)
    fitted_folds.clear()
    make_temporary = tempfile.mkstemp
    fold1 = tmp_path / "cv" / "cv" / "fold1"

    def read_only_fold1(*args, dir=None, **kwargs):  # as a read-only mount refuses (root passes permission checks)
        if dir is not None and os.path.samefile(dir, fold1):
            raise PermissionError(13, "Read-only file system")
        return make_temporary(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only_fold1)
    with pytest.raises(ModelError, match="fold1 cannot be written: Read-only file system"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert fitted_folds == []


def test_a_damaged_plan_is_named_with_the_way_out(corpus_and_backbone, tmp_path):
    from ser_hf.errors import ModelError

    cv_interrupted_after(make_run(corpus_and_backbone, tmp_path, "cv"), 1)
    (tmp_path / "cv" / "cv" / "cv_plan.json").write_text('{"folds": ["fold1"')  # cut short
    with pytest.raises(ModelError, match=r"Its cv/cv_plan.json is there but cannot be read as ser_hf's .*delete that"):
        experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)


def test_a_fine_tuning_cv_resumed_with_resume_from_checkpoint_never_mixes_two_cvs(corpus_and_backbone, tmp_path,
                                                                                   fitted_folds):
    """``--resume_from_checkpoint last`` in a CV: each fold continues its own newest checkpoint, a fold that had not
    started trains afresh; refused where the checkpoints may be another CV's, or for a path (one fold's checkpoint)."""
    from ser_hf.errors import SERError

    corpus, _ = corpus_and_backbone
    backbone = tiny_backbone("wav2vec2", tmp_path / "w2v")

    def run(**values):
        settings = dict(model_name_or_path=str(backbone), mode="finetune", probe_speaker_adaptation=False,
                        probe_speed_copies=None, validation_size=0, max_steps=2, save_steps=1,
                        per_device_train_batch_size=8, learning_rate=1e-3, max_duration=0.4, disable_tqdm=True,
                        max_source_positions=None)
        return make_run(corpus_and_backbone, tmp_path, "ft", **{**settings, **values})

    cv_interrupted_after(run(), 1)
    fitted_folds.clear()
    resumed = experiment.cross_validate(run(resume_from_checkpoint="last"), progress=False)
    assert resumed.resumed_folds == ["fold1"] and fitted_folds == ["fold2", "fold3"]  # no checkpoint yet: afresh
    with pytest.raises(SERError, match="may be another CV's"):  # another learning rate: its checkpoints are not ours
        experiment.cross_validate(run(resume_from_checkpoint="last", learning_rate=1e-5), progress=False)
    checkpoint = next((tmp_path / "ft" / "checkpoints").glob("split-*/checkpoint-*"))
    with pytest.raises(SERError, match="in a CV a checkpoint folder is one fold's"):
        experiment.cross_validate(run(resume_from_checkpoint=str(checkpoint)), progress=False)


def test_one_cv_at_a_time_per_output_folder(corpus_and_backbone, tmp_path, fitted_folds, locked_elsewhere):
    """Two CVs into one folder at once would take each other's folds for their own: the second is refused."""
    from ser_hf.errors import ModelError

    with locked_elsewhere(tmp_path / "cv"):  # as another ser-hf cv process holds it
        with pytest.raises(ModelError, match="is being cross-validated by another ser-hf cv"):
            experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)
    assert fitted_folds == []
    experiment.cross_validate(make_run(corpus_and_backbone, tmp_path, "cv"), progress=False)  # released: runs
    assert fitted_folds == ["fold1", "fold2", "fold3"]
