"""ser_hf's caches of backbone states: a link, a special file or a damaged entry in the cache is never written
through or used (it is computed again), a folder there is refused by name, an edited config.json never reuses
another model's states, and a read-only cache is refused before the backbone runs."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

from ser_hf.corpora import load_corpus
from ser_hf.errors import ModelError
from ser_hf.models.cache_entries import finite_array, load_entry, save_entry
from ser_hf.models.factory import build_model
from ser_hf.models.layer_inputs import layer_inputs
from ser_hf.models.pooling import backbone_fingerprint, pooled_hidden_states
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone

pytestmark = pytest.mark.usefixtures("single_torch_thread")

CHECK = finite_array((3, 4))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache_entries")
    corpus = make_corpus_tree("urdu", tmp / "urdu", duration=0.4)
    backbone = tiny_backbone("wav2vec2", tmp / "backbone")
    model, extractor = build_model(backbone, ["neutral", "angry"])
    return {"tmp": tmp, "backbone": backbone, "model": model, "extractor": extractor,
            "paths": load_corpus("urdu", corpus)["audio"][:4]}


def _damages(folder, victim):
    """What a damaged cache entry may be, by name: each puts its thing where an entry lies."""
    def link_to_a_users_file(path):
        path.unlink()
        path.symlink_to(victim)

    def dangling_link(path):
        path.unlink()
        path.symlink_to(folder / "nowhere" / "x.npy")

    def fifo(path):
        path.unlink()
        os.mkfifo(path)

    def write(data):
        return lambda path: path.write_bytes(data)

    def array(value):
        def put(path):
            np.save(path, value)
        return put

    return {
        "a link to a user's file": link_to_a_users_file, "a dangling link": dangling_link, "a FIFO": fifo,
        "an empty file": write(b""), "a truncated array": lambda path: path.write_bytes(path.read_bytes()[:90]),
        "random bytes": write(os.urandom(300)), "not finite": array(np.full((3, 4), np.nan, np.float32)),
        "another shape": array(np.zeros((2, 4), np.float32)), "another type": array(np.zeros((3, 4), np.int64)),
        "a pickle": write(b"\x80\x04\x95" + b"x" * 40),
    }


def test_a_damaged_entry_is_removed_unread_where_it_could_harm_and_a_link_is_never_followed(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("mine\n")
    good = np.arange(12, dtype=np.float32).reshape(3, 4)
    for name, damage in _damages(tmp_path, victim).items():
        entry = tmp_path / "cache" / "k.npy"
        save_entry(entry, good)
        damage(entry)
        assert load_entry(entry, CHECK) is None, name
        assert not os.path.lexists(entry), name
        save_entry(entry, good)  # the entry computed again: a real file, nothing written elsewhere
        assert not entry.is_symlink() and np.array_equal(load_entry(entry, CHECK), good), name
        assert victim.read_text() == "mine\n" and not (tmp_path / "nowhere").exists(), name
        entry.unlink()
    entry.mkdir(parents=True)
    with pytest.raises(ModelError, match=r"k.npy is a folder where ser_hf's cache .* remove it"):
        load_entry(entry, CHECK)


def test_save_replaces_a_link_in_the_cache_never_its_target(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("mine\n")
    entry = tmp_path / "cache" / "k.npy"
    entry.parent.mkdir()
    entry.symlink_to(victim)
    save_entry(entry, np.zeros((3, 4), np.float32))
    assert victim.read_text() == "mine\n" and not entry.is_symlink()


def test_pooled_states_compute_a_damaged_entry_again(assets, tmp_path):
    model, extractor, paths = assets["model"], assets["extractor"], assets["paths"]
    cache = tmp_path / "cache"
    fresh = pooled_hidden_states(model, extractor, paths, cache_dir=cache, progress=False)
    entries = sorted(cache.rglob("*.npy"))
    victim = tmp_path / "notes.txt"
    victim.write_text("mine\n")
    damages = _damages(tmp_path, victim)
    for name in ("a link to a user's file", "a truncated array", "not finite", "a FIFO"):
        damages[name](entries[0])
        again = pooled_hidden_states(model, extractor, paths, cache_dir=cache, progress=False)
        np.testing.assert_allclose(again, fresh, atol=1e-6, err_msg=name)
        assert victim.read_text() == "mine\n" and not entries[0].is_symlink(), name


def test_layer_inputs_compute_a_clip_again_when_either_of_its_files_is_damaged(assets, tmp_path):
    model, extractor, paths = assets["model"], assets["extractor"], assets["paths"]
    cache = tmp_path / "cache"
    fresh = layer_inputs(model, extractor, paths, 1, cache_dir=cache, progress=False)
    states = sorted(p for p in fresh.folder.glob("*.npy") if not p.name.endswith(".pooled.npy"))
    victim = tmp_path / "notes.txt"
    victim.write_text("mine\n")
    damages = _damages(tmp_path, victim)
    for name, target in (("a link to a user's file", states[0]), ("an empty file", states[1]),
                         ("not finite", states[2].with_suffix(".pooled.npy")), ("a dangling link", states[3])):
        damages[name](target)
        again = layer_inputs(model, extractor, paths, 1, cache_dir=cache, progress=False)
        assert again.computed == 1, name
        for a, b in zip(again.states + again.lower, fresh.states + fresh.lower):
            np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=1e-3, err_msg=name)
        assert victim.read_text() == "mine\n" and not (tmp_path / "nowhere").exists(), name


def test_an_edited_config_never_reuses_another_models_states(assets, tmp_path):
    """Same weights, another hidden_act or layer_norm_eps: other states, so another key; settings that act only in
    training (masking, dropout) or on the head keep the key."""
    model, extractor = assets["model"], assets["extractor"]
    key = backbone_fingerprint(model, extractor)
    for setting, value, same in (("hidden_act", "relu", False), ("layer_norm_eps", 1.0, False),
                                 ("mask_time_prob", 0.3, True), ("hidden_dropout", 0.3, True),
                                 ("id2label", {0: "a", 1: "b"}, True)):
        edited = tmp_path / setting
        shutil.copytree(assets["backbone"], edited)
        config = json.loads((edited / "config.json").read_text())
        (edited / "config.json").write_text(json.dumps({**config, setting: value}))
        other, other_extractor = build_model(edited, ["neutral", "angry"])
        assert (backbone_fingerprint(other, other_extractor) == key) is same, setting


def test_a_read_only_cache_is_refused_before_the_backbone_runs(assets, tmp_path, monkeypatch):
    model, extractor, paths = assets["model"], assets["extractor"], assets["paths"]
    cache = tmp_path / "cache"
    pooled_hidden_states(model, extractor, paths[:2], cache_dir=cache, progress=False)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("ser_hf._io.tempfile.mkstemp", read_only)
    monkeypatch.setattr("ser_hf._io.tempfile.mkdtemp", read_only)
    monkeypatch.setattr("ser_hf.models.pooling.pool_batch", lambda *a, **k: pytest.fail("the backbone ran"))
    cached = pooled_hidden_states(model, extractor, paths[:2], cache_dir=cache, progress=False)  # all there: read
    assert cached.shape[0] == 2
    with pytest.raises(ModelError, match=r"the cache of backbone states .* \(embedding_cache_dir\) cannot be written: "
                                         r"Read-only file system"):
        pooled_hidden_states(model, extractor, paths, cache_dir=cache, progress=False)
    with pytest.raises(ModelError, match=r"\(embedding_cache_dir\) cannot be written"):
        layer_inputs(model, extractor, paths, 1, cache_dir=cache, progress=False)


def test_an_embedding_cache_dir_that_can_be_no_folder_is_refused_before_the_model_loads(tmp_path):
    from ser_hf.errors import SERError
    from ser_hf.training.arguments import ProbeArguments

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for value, found in ((notes, "is a file"), (notes / "sub", "is a file, not a folder"),
                         (tmp_path / "dangling", "does not exist"), ("-", "not to standard output")):
        with pytest.raises(SERError, match=f"embedding_cache_dir .*{found}") as caught:
            ProbeArguments(embedding_cache_dir=str(value))
        assert caught.value.field == "embedding_cache_dir"
    assert notes.read_text() == "mine" and not (tmp_path / "nowhere").exists()
    ProbeArguments(embedding_cache_dir=str(tmp_path / "new" / "cache"))  # made when needed
