"""ser_hf: speech emotion recognition by transfer learning on pretrained speech transformers.

The public API, importable from the package as in setfit and sentence-transformers::

    from ser_hf import EmotionRecognizer, load_corpus, parse_run, train, cross_validate

Names are imported on first use (PEP 562), so ``import ser_hf`` stays instant and loads neither torch nor
transformers; :data:`PUBLIC_API` says where each lives.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: name -> module that defines it. The README's "Python API" section lists the same names.
PUBLIC_API = {
    # recognise emotions
    "EmotionRecognizer": "ser_hf.inference.recognizer",
    "predict_files": "ser_hf.inference.jobs",
    "prepare_released": "ser_hf.models.released_checkpoint",
    # data
    "load_corpus": "ser_hf.corpora",
    "get_corpus": "ser_hf.corpora",
    "AudioPreprocessor": "ser_hf.audio",
    "load_audio": "ser_hf.audio",
    "speaker_split": "ser_hf.splits",
    "speaker_folds": "ser_hf.splits",
    # train and cross-validate
    "parse_run": "ser_hf.training.recipes",
    "train": "ser_hf.training.experiment",
    "cross_validate": "ser_hf.training.experiment",
    "build_model": "ser_hf.models.factory",
    "save_checkpoint": "ser_hf.models.checkpoint_save",
    # evaluate
    "evaluate_checkpoint": "ser_hf.evaluation.corpus_eval",
    "EvaluationReport": "ser_hf.evaluation.report",
    # errors
    "SERError": "ser_hf.errors",
}

__all__ = ["__version__", *PUBLIC_API]


def __getattr__(name: str) -> Any:
    module = PUBLIC_API.get(name)
    if module is None:
        raise AttributeError(f"module 'ser_hf' has no attribute {name!r}; the public API is {sorted(PUBLIC_API)}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
