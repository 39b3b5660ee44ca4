"""Safe loading: no checkpoint code runs, transformer weights come from safetensors only, skops files load
only trusted types. Tested by behaviour: each hostile file would touch a sentinel file if ser_hf ran it.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import operator
import pathlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ser_hf.baseline.model import MODEL_NAME, BaselineModel, load_baseline
from ser_hf.errors import ModelError
from ser_hf.inference.predict import load_classifier
from ser_hf.inference.recognizer import EmotionRecognizer
from ser_hf.models.factory import build_model, load_backbone_config, save_checkpoint
from ser_hf.testing.models import tiny_backbone

FOUR = ["neutral", "happy", "sad", "angry"]
PACKAGE = Path(__file__).resolve().parents[1] / "ser_hf"

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safe")
    backbone = tiny_backbone("wav2vec2", tmp / "backbone")
    model, extractor = build_model(backbone, FOUR)
    return {"backbone": backbone, "checkpoint": save_checkpoint(model, extractor, tmp / "checkpoint")}


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / "CODE_WAS_RUN"
    yield path
    assert not path.exists(), "a hostile file's code ran"


def _with_custom_code(source: Path, target: Path, sentinel: Path, model_type: str | None = None) -> Path:
    """A copy of a checkpoint whose configs point (auto_map) at a module that touches ``sentinel`` on import."""
    shutil.copytree(source, target)
    (target / "custom_code.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).touch()\n"
        "from transformers import Wav2Vec2Config as Config, Wav2Vec2Model as Model\n"
        "from transformers import Wav2Vec2ForSequenceClassification as Classifier\n"
        "from transformers import Wav2Vec2FeatureExtractor as Extractor\n"
    )
    config = json.loads((target / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_code.Config", "AutoModel": "custom_code.Model",
                          "AutoModelForAudioClassification": "custom_code.Classifier"}
    if model_type is not None:
        config["model_type"] = model_type
    (target / "config.json").write_text(json.dumps(config))
    extractor = json.loads((target / "preprocessor_config.json").read_text())
    extractor["auto_map"] = {"AutoFeatureExtractor": "custom_code.Extractor"}
    (target / "preprocessor_config.json").write_text(json.dumps(extractor))
    return target


class _Touch:
    """Unpickling this touches a file: what a hostile pickle does, harmlessly."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def _pickle_only(source: Path, target: Path, sentinel: Path) -> Path:
    """A copy of a checkpoint whose weights are a pickle (pytorch_model.bin) that touches ``sentinel`` when loaded."""
    shutil.copytree(source, target)
    state = load_file(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save({**state, "payload": _Touch(sentinel)}, target / "pytorch_model.bin")
    return target


# --- trust_remote_code -----------------------------------------------------------------------------------

@functools.cache
def _sources() -> tuple[tuple[Path, ast.AST], ...]:
    return tuple((path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py")))


def _calls_with(keyword: str):
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == keyword:
                        yield path, node, kw


def test_no_source_enables_trust_remote_code():
    enabled = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for path, node, kw in _calls_with("trust_remote_code")
               if not (isinstance(kw.value, ast.Constant) and kw.value.value is False)]
    assert enabled == []


def _auto_loads_without_false() -> list[str]:
    """``Auto*.from_pretrained`` calls that do not pass ``trust_remote_code=False``: with the default (None),
    transformers asks on stdin whether to run a checkpoint's custom code."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if (isinstance(func, ast.Attribute) and func.attr == "from_pretrained"
                    and isinstance(func.value, ast.Name) and func.value.id.startswith("Auto")
                    and not any(kw.arg == "trust_remote_code" for kw in node.keywords)):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_every_auto_load_refuses_remote_code_explicitly():
    assert _auto_loads_without_false() == []


def test_model_factory_passes_trust_remote_code_false():
    assert not [where for where in _auto_loads_without_false() if where.startswith("ser_hf/models/")]


@pytest.mark.parametrize("loader", ["load_classifier", "recognizer"])
def test_a_checkpoint_with_custom_code_loads_the_builtin_class(tiny, tmp_path, sentinel, loader):
    path = _with_custom_code(tiny["checkpoint"], tmp_path / "custom", sentinel)
    model = load_classifier(path)[0] if loader == "load_classifier" else EmotionRecognizer.from_pretrained(path).model
    assert type(model).__module__.startswith("transformers.models.wav2vec2")


def test_a_backbone_with_custom_code_builds_the_builtin_class(tiny, tmp_path, sentinel):
    path = _with_custom_code(tiny["backbone"], tmp_path / "custom", sentinel)
    model, extractor = build_model(path, FOUR)
    assert type(model).__module__.startswith("transformers.models.wav2vec2")
    assert type(extractor).__module__.startswith("transformers.models.wav2vec2")


def test_a_backbone_that_is_only_custom_code_is_refused(tiny, tmp_path, sentinel, monkeypatch):
    monkeypatch.setattr(builtins, "input", lambda *args: "y")  # a user (or a pipe) answering transformers' prompt
    path = _with_custom_code(tiny["backbone"], tmp_path / "custom", sentinel, model_type="my-own-arch")
    with pytest.raises(ModelError, match=r"model_type='my-own-arch', which ser_hf does not support"):
        build_model(path, FOUR)
    with pytest.raises(ModelError, match=r"model_type='my-own-arch'"):
        load_backbone_config(path)


@pytest.mark.parametrize("loader", ["load_classifier", "recognizer"])
def test_a_checkpoint_that_is_only_custom_code_is_refused_without_asking(tiny, tmp_path, monkeypatch, loader):
    sentinel = tmp_path / "CODE_WAS_RUN"
    monkeypatch.setattr(builtins, "input", lambda *args: "y")
    path = _with_custom_code(tiny["checkpoint"], tmp_path / "custom", sentinel, model_type="my-own-arch")
    try:
        with pytest.raises(ModelError, match=r"custom code"):
            load_classifier(path) if loader == "load_classifier" else EmotionRecognizer.from_pretrained(path)
    finally:
        assert not sentinel.exists(), "the checkpoint's code ran"


# --- safetensors only ------------------------------------------------------------------------------------

def test_a_pickle_only_checkpoint_is_refused(tiny, tmp_path, sentinel):
    path = _pickle_only(tiny["checkpoint"], tmp_path / "pickled", sentinel)
    for load in (load_classifier, EmotionRecognizer.from_pretrained):
        with pytest.raises(ModelError, match=r"has no \*\.safetensors weights .*'pytorch_model\.bin'.*only safetensors"):
            load(path)


def test_a_pickle_only_backbone_is_refused(tiny, tmp_path, sentinel):
    path = _pickle_only(tiny["backbone"], tmp_path / "pickled", sentinel)
    with pytest.raises(ModelError, match=r"Checkpoint .*pickled' has no \*\.safetensors weights \(found \[.*"
                                         r"'pytorch_model\.bin'\]\)\. ser_hf loads only safetensors"):
        build_model(path, FOUR)


def test_safetensors_beside_a_pickle_wins(tiny, tmp_path, sentinel):
    path = tmp_path / "both"
    shutil.copytree(tiny["backbone"], path)
    torch.save({"payload": _Touch(sentinel)}, path / "pytorch_model.bin")
    model, _ = build_model(path, FOUR)
    assert model.config.num_labels == 4


# --- skops -----------------------------------------------------------------------------------------------

class Trap(BaseEstimator, TransformerMixin):
    """An estimator whose construction on load touches a file: loading an untrusted type runs its code."""

    def __init__(self, sentinel: str = ""):
        self.sentinel = sentinel

    def __setstate__(self, state):
        pathlib.Path(state["sentinel"]).touch()
        self.__dict__.update(state)

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def _saved_baseline(folder: Path, first_step) -> Path:
    rng = np.random.default_rng(0)
    features, labels = rng.standard_normal((16, 3)), np.arange(16) % 4
    pipeline = Pipeline([("first", first_step), ("clf", LogisticRegression())]).fit(features, labels)
    BaselineModel(pipeline, FOUR, classifier="logreg").save(folder)
    return folder


def test_the_neural_class_refuses_a_classic_folder(tmp_path):
    folder = _saved_baseline(tmp_path / "logreg", StandardScaler())
    from ser_hf.baseline.neural_model import NeuralBaselineModel

    with pytest.raises(ModelError, match=r"holds a classic baseline \(logreg\), not a neural one; load it with "
                                         r"ser_hf\.baseline\.load_baseline"):
        NeuralBaselineModel.from_pretrained(folder)


def test_skops_refuses_an_untrusted_estimator_without_building_it(tmp_path, sentinel):
    folder = _saved_baseline(tmp_path / "trap", Trap(str(sentinel)))
    with pytest.raises(ModelError, match=r"untrusted types \['(tests\.)?test_safe_loading\.Trap'\]"):
        load_baseline(folder)


def test_skops_refuses_a_function_reference(tmp_path):
    folder = _saved_baseline(tmp_path / "function", FunctionTransformer(func=operator.neg))
    with pytest.raises(ModelError, match=r"untrusted types \['_operator\.neg'\]"):
        load_baseline(folder)


def test_skops_trusts_only_a_list_of_names(tmp_path, sentinel):
    folder = _saved_baseline(tmp_path / "trap", Trap(str(sentinel)))
    for everything in (True, "test_safe_loading.Trap"):
        with pytest.raises(ModelError, match="pass a list of type names"):
            load_baseline(folder, trusted=everything)


@pytest.mark.parametrize("content", ["pickle", "empty", "zip without schema"])
def test_a_model_file_that_is_not_skops_is_refused(tmp_path, sentinel, content):
    folder = _saved_baseline(tmp_path / "baseline", "passthrough")
    model_file = folder / MODEL_NAME
    if content == "pickle":
        model_file.write_bytes(pickle.dumps(_Touch(sentinel)))
    elif content == "empty":
        model_file.write_bytes(b"")
    else:
        import zipfile

        with zipfile.ZipFile(model_file, "w") as archive:
            archive.writestr("other.json", "{}")
    with pytest.raises(ModelError, match=r"model\.skops' is not a skops file .*pickle renamed to model\.skops is refused"):
        load_baseline(folder)


def test_a_saved_baseline_loads_with_the_default_trust_list(tmp_path):
    folder = _saved_baseline(tmp_path / "plain", "passthrough")
    assert load_baseline(folder).labels == FOUR
