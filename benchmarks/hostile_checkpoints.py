"""Hostile checkpoints, measured: the ``checkpoints`` class of :mod:`robustness_hostile`.

Builds damaged checkpoint folders (classifiers and saved baselines) and loads each in a fresh process
(``EmotionRecognizer.from_pretrained`` / ``load_baseline``), recording the error class, whether the message
names the folder, and the peak RSS growth of the load. :mod:`robustness_hostile` reuses the worker
(``_load_all``) and the verdict (``_row``, hence the recipe limits here) for recipes; this module never imports it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

FOUR = ["neutral", "happy", "sad", "angry"]
#: A failed load may grow the process by at most this much (the tiny models' valid loads take a few MB).
LOAD_RSS_LIMIT_MB = 100
#: A refused recipe must be refused this fast and this small.
RECIPE_SECONDS_LIMIT, RECIPE_RSS_LIMIT_MB = 2.0, 50


def _shown(text: str, limit: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


# ---------------------------------------------------------------------------------------- checkpoints

# Imports what a kind of load needs once, then loads each file or folder in a forked child: the child's peak
# RSS (VmHWM, reset through /proc/self/clear_refs after the fork) is that of its load alone, and the imports
# (seconds each) are paid once per kind instead of once per case.
_LOAD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
kind, paths = sys.argv[1], sys.argv[2:]
from ser_hf.errors import SERError
if kind == "classifier":
    import torch, transformers
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification,
                              Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification,
                              WhisperFeatureExtractor, WhisperForAudioClassification)
    import ser_hf.models.checkpoint_check, ser_hf.models.factory
    from ser_hf.inference.recognizer import EmotionRecognizer
    load = EmotionRecognizer.from_pretrained
elif kind == "baseline":
    try:
        from ser_hf.baseline.model import load_baseline as load
    except ImportError:
        from ser_hf.baseline.model import load_baseline as load
    import skops.io, sklearn.linear_model, sklearn.pipeline
else:
    import yaml, transformers
    from ser_hf.training.recipes import parse_run as load
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def measure(path):
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    start = time.perf_counter()
    try:
        load(path)
        result = {"error": None}
    except Exception as err:
        result = {"error": type(err).__name__, "ser_error": isinstance(err, SERError), "message": str(err)[:1000]}
    result.update(seconds=round(time.perf_counter() - start, 3),
                  rss_growth_mb=round((status("VmHWM") - before) / 1e6, 1), peak_rss_mb=round(status("VmHWM") / 1e6, 1))
    return result
for path in paths:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            text = json.dumps(measure(path))
        except BaseException as err:
            text = json.dumps({"error": f"worker {type(err).__name__}: {err}"[:500], "ser_error": False})
        os.write(write, text.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, code = os.waitpid(child, 0)
    print(text if text else json.dumps({"error": f"child exit status {code}", "ser_error": False}), flush=True)
"""


def _load_all(kind: str, paths: list[Path]) -> list[dict]:
    """Every path loaded by ``kind`` in a child of one worker process (see ``_LOAD``)."""
    done = subprocess.run([sys.executable, "-c", _LOAD, kind, *map(str, paths)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    empty = {"error": f"worker exit {done.returncode}: {done.stderr[-300:]}", "ser_error": False}
    return [{"seconds": None, "rss_growth_mb": None, "peak_rss_mb": None, **result}
            for result in lines + [empty] * (len(paths) - len(lines))]


def _edit_json(path: Path, **values) -> None:
    document = json.loads(path.read_text())
    document.update(values)
    path.write_text(json.dumps(document))


def _drop_head(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.")}, folder / "model.safetensors",
              metadata={"format": "pt"})


def _huge_header(folder: Path) -> None:
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 2**62) + raw[8:])


def _truncate(folder: Path) -> None:
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[: len(raw) // 2])


CHECKPOINTS = [  # (folder name, source, what, edit)
    ("valid", "wav2vec2", "a valid checkpoint (control: loads)", None),
    ("no-head", "wav2vec2", "`model.safetensors` without the head's `classifier.*` weights", _drop_head),
    ("layers-4000", "whisper", "`config.json` edited: `encoder_layers: 4000`",
     lambda f: _edit_json(f / "config.json", encoder_layers=4000)),
    ("hidden-2e20", "wav2vec2", "`config.json` edited: `hidden_size` and `intermediate_size` 2^20",
     lambda f: _edit_json(f / "config.json", hidden_size=2**20, intermediate_size=2**20)),
    ("truncated", "wav2vec2", "`model.safetensors` cut in half", _truncate),
    ("huge-header", "wav2vec2", "`model.safetensors` header length 2^62", _huge_header),
    ("eight-labels", "wav2vec2", "`id2label` of 8 names for the 4-row classifier",
     lambda f: _edit_json(f / "config.json", id2label={str(i): f"e{i}" for i in range(8)},
                          label2id={f"e{i}": i for i in range(8)})),
    ("sparse-labels", "wav2vec2", "sparse `id2label`: keys `0` and `5`",
     lambda f: _edit_json(f / "config.json", id2label={"0": "neutral", "5": "angry"})),
    ("run-types", "wav2vec2", "`ser_hf_run.json`: `{\"data\": {\"trim_db\": \"loud\"}}`",
     lambda f: (f / "ser_hf_run.json").write_text('{"data": {"trim_db": "loud"}}')),
    ("run-nan", "wav2vec2", "`ser_hf_run.json`: `max_duration: NaN`",
     lambda f: (f / "ser_hf_run.json").write_text('{"data": {"max_duration": NaN}}')),
]

BASELINES = [
    ("baseline-valid", "a valid saved baseline (control: loads)", None),
    ("baseline-not-json", "`baseline_config.json`: `{oops`", "{oops"),
    ("baseline-n-mels", "`baseline_config.json`: `feature_config.n_mels: 10^9`",
     lambda c: c["feature_config"].update(n_mels=10**9)),
    ("baseline-types", "`baseline_config.json`: `feature_config.frame_ms: \"25\"`",
     lambda c: c["feature_config"].update(frame_ms="25")),
    ("baseline-labels", "`baseline_config.json`: labels `[1, 2, 3, 4]`", lambda c: c.update(labels=[1, 2, 3, 4])),
]


def _baseline(root: Path) -> Path:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from ser_hf.baseline.feature_config import FeatureConfig
    from ser_hf.baseline.features import feature_names
    try:
        from ser_hf.baseline.model import BaselineModel
    except ImportError:
        from ser_hf.baseline.model import BaselineModel

    width = len(feature_names(FeatureConfig()))
    rng = np.random.default_rng(0)
    pipeline = Pipeline([("first", "passthrough"), ("clf", LogisticRegression())])
    pipeline.fit(rng.standard_normal((16, width)), np.arange(16) % 4)
    return BaselineModel(pipeline, FOUR, classifier="logreg").save(root / "baseline-source")


def _row(what: str, kind: str, folder: Path, control: bool, result: dict) -> dict:
    from ser_hf.paths import display_path

    message = result.get("message") or ""  # a recipe's errors name the file; a checkpoint's, the folder or a file in it
    names = display_path(folder) in message or (kind == "recipe" and folder.name in message)
    if control:
        ok = result["error"] is None
    else:
        limit = LOAD_RSS_LIMIT_MB if kind != "recipe" else RECIPE_RSS_LIMIT_MB
        ok = (result["error"] in ("ModelError", "SERError") and result.get("ser_error") and names
              and result["rss_growth_mb"] is not None and result["rss_growth_mb"] < limit
              and (kind != "recipe" or result["seconds"] < RECIPE_SECONDS_LIMIT))
    shown = message.replace(str(folder.parent) + os.sep, "")  # relative to the test folder, for the table
    return {"input": what, **result, "names_file": names, "message": _shown(shown, 220), "ok": ok}


def run_checkpoints(root: Path, sources: dict[str, Path]) -> list[dict]:
    """Broken classifier checkpoints and baselines, each loaded in a fresh process."""
    try:
        from ser_hf.baseline.model import CONFIG_NAME
    except ImportError:
        from ser_hf.baseline.model import CONFIG_NAME

    classifiers = []
    for name, source, what, edit in CHECKPOINTS:
        folder = root / "checkpoints" / name
        shutil.copytree(sources[source], folder)
        if edit is not None:
            edit(folder)
        classifiers.append((what, folder, edit is None))
    source, baselines = _baseline(root), []
    for name, what, edit in BASELINES:
        folder = root / "checkpoints" / name
        shutil.copytree(source, folder)
        if isinstance(edit, str):
            (folder / CONFIG_NAME).write_text(edit)
        elif edit is not None:
            config = json.loads((folder / CONFIG_NAME).read_text())
            edit(config)
            (folder / CONFIG_NAME).write_text(json.dumps(config))
        baselines.append((what, folder, edit is None))
    rows = []
    for kind, cases in (("classifier", classifiers), ("baseline", baselines)):
        results = _load_all(kind, [folder for _, folder, _ in cases])
        rows += [_row(what, kind, folder, control, result) for (what, folder, control), result in zip(cases, results)]
    return rows
