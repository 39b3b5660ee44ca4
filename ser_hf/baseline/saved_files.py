"""Reading a saved baseline folder back, and refusing what does not belong in it.

A folder that :meth:`BaselineModel.save <ser_hf.baseline.classic_model.BaselineModel.save>` (or the neural kind's
``save``) wrote holds ``baseline_config.json`` and ``model.skops`` (``model.safetensors`` for ``cnn``/``lstm``).
Before anything is built from them:

- :func:`read_saved_settings` checks the config, for either kind: that the files are regular files and belong
  together (the classifier it names goes with the model file present), its format and features version, the types
  of its fields, and the type and bounds of every feature and preprocessing setting (:data:`SETTING_LIMITS`), so
  that an edited file cannot make prediction allocate without bound; :func:`names_neural` tells which kind it names.
- ``_load_pipeline`` opens a classic ``model.skops`` trusting only :data:`TRUSTED_TYPES` (the scikit-learn
  internals the four baseline pipelines contain, beyond those skops trusts by default) plus any types the caller
  names; anything else in the file is refused with its type names, never loaded with ``trusted=True``. A pickle
  renamed to ``model.skops`` is refused, and so is an archive that would inflate beyond :data:`MAX_INFLATION`
  times its size.

Building the model from what they return is each kind's own:
:func:`~ser_hf.baseline.classic_model.load_classic_baseline` and :mod:`ser_hf.baseline.neural_model`.

Example:
    ```python
    >>> from pathlib import Path
    >>> from ser_hf.baseline.saved_files import names_neural, read_saved_settings
    >>> config, feature_config, preprocessor = read_saved_settings(Path("outputs/urdu-svm"))  # doctest: +SKIP
    >>> config["classifier"], names_neural(config)  # doctest: +SKIP
    ('svm', False)

    ```
"""

from __future__ import annotations

import os
import types
import typing
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from ser_hf.audio import AudioPreprocessor
from ser_hf.baseline.classifiers import NEURAL_CLASSIFIERS
from ser_hf.baseline.feature_config import FEATURE_RANGES, FEATURES_VERSION, FeatureConfig
from ser_hf.baseline.folder import CONFIG_NAME, MODEL_NAME
from ser_hf.errors import ModelError
from ser_hf.models.checkpoint_check import MAX_LABELS, read_json
from ser_hf.ranges import Range, check_value
from ser_hf.versions import installed_version

__all__ = ["MAX_INFLATION", "SETTING_LIMITS", "TRUSTED_TYPES", "names_neural", "read_saved_settings"]

_NEURAL_WEIGHTS = "model.safetensors"  # ser_hf.baseline.neural_model.WEIGHTS_NAME, named here without torch
_FORMAT = "ser_hf-baseline"
_FORMAT_VERSION = 1

#: Types the baseline pipelines hold that skops does not trust by default (it trusts scikit-learn's public
#: estimators and plain numpy/Python containers already): the calibrated SVM's internals, the forest's
#: trees and the MLP's optimiser state.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.tree._tree.Tree",
)

_FIX = "Save the model again with BaselineModel.save (or `ser-hf baseline ... --save-model`), or restore the file."

#: Bounds on settings read back from baseline_config.json. The dataclasses accept anything consistent, but an
#: edited file must not make prediction allocate a billion mel bands or resample to a terahertz.
#: The bounds are the settings' own, one table each: FeatureConfig's (:data:`~ser_hf.baseline.feature_config.FEATURE_RANGES`)
#: and AudioPreprocessor's (``AudioPreprocessor.RANGES``). FeatureConfig also refuses, naming the file here, settings
#: each in range whose combination would need gigabytes per clip (:data:`~ser_hf.baseline.feature_config.MAX_ANALYSIS_PER_SECOND`).
SETTING_LIMITS: dict[str, Range] = {**FEATURE_RANGES, **AudioPreprocessor.RANGES}


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a FeatureConfig / AudioPreprocessor annotation (lists stand for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, option) for option in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, (list, str)) and all(isinstance(item, str) for item in value)
    if hint is type(None):
        return value is None
    if isinstance(value, bool) or hint is bool:
        return isinstance(value, bool) and hint is bool
    return isinstance(value, hint) or (hint is float and isinstance(value, int))


def _settings(cls: type, values: Any, path: Path, key: str):
    """``cls(**values)`` for a settings dataclass read from ``path``, every field's type and bounds checked."""
    if not isinstance(values, dict):
        raise ModelError(f"{str(path)!r}: {key} must be an object, found {type(values).__name__}. {_FIX}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ModelError(f"{str(path)!r}: {key} has unknown settings {unknown}; expected some of {sorted(hints)}. {_FIX}")
    for name, value in values.items():
        if not _is_a(value, hints[name]):
            hint = hints[name]
            kind = str(hint).replace("typing.", "") if typing.get_origin(hint) else hint.__name__
            raise ModelError(f"{str(path)!r}: {key}.{name} is {value!r}, expected {kind}. {_FIX}")
        try:
            check_value(f"{key}.{name}", value, SETTING_LIMITS.get(name), ModelError)
        except ModelError as err:
            raise ModelError(f"{str(path)!r}: {err} {_FIX}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # the dataclasses' own consistency checks (AudioError is a ValueError)
        raise ModelError(f"{str(path)!r}: {key} is inconsistent ({err}). {_FIX}") from None


def _check_fields(config: dict[str, Any], path: Path) -> None:
    labels = config.get("labels")
    if (not isinstance(labels, list) or not 2 <= len(labels) <= MAX_LABELS
            or not all(isinstance(label, str) and label for label in labels) or len(set(labels)) != len(labels)):
        raise ModelError(f"{str(path)!r}: labels must be a list of at least two distinct names, found "
                         f"{str(labels)[:200]}. {_FIX}")
    expected = {"classifier": (str, type(None)), "best_params": dict, "metadata": dict, "num_features": int,
                "features_version": int, "versions": dict}
    for key, kind in expected.items():
        if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
            raise ModelError(f"{str(path)!r}: {key} is {str(config[key])[:100]!r}, of the wrong type. {_FIX}")


def _model_file(folder: Path) -> str:
    """The model file a saved baseline's config names: ``model.skops``, or ``model.safetensors`` for cnn/lstm."""
    path = folder / CONFIG_NAME
    if path.is_file() and ((folder / _NEURAL_WEIGHTS).is_file() and not (folder / MODEL_NAME).is_file()):
        config = read_json(path, fix=_FIX)
        return _NEURAL_WEIGHTS if names_neural(config) else MODEL_NAME
    return MODEL_NAME


def names_neural(config: dict[str, Any]) -> bool:
    classifier = config.get("classifier")
    return isinstance(classifier, str) and classifier in NEURAL_CLASSIFIERS


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    model_file = _model_file(folder) if folder.is_dir() else MODEL_NAME
    odd = [name for name in (MODEL_NAME, _NEURAL_WEIGHTS, CONFIG_NAME)
           if folder.is_dir() and os.path.lexists(folder / name) and not (folder / name).is_file()]
    if odd:  # a folder, a device or a link to one where a saved file goes: "expected X, found [X]" said nothing
        raise ModelError(f"{str(folder)!r} is not a saved baseline: its {', '.join(odd)} "
                         f"{'is' if len(odd) == 1 else 'are'} not a regular file (a folder, a device or a link to "
                         f"nothing). Save the baseline again with `ser-hf baseline ... --save-model`.")
    if not (folder / model_file).is_file() or not path.is_file():
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
        raise ModelError(
            f"{str(folder)!r} is not a saved baseline: expected {MODEL_NAME} (cnn/lstm: {_NEURAL_WEIGHTS}) and "
            f"{CONFIG_NAME}, found {found}. Save one with BaselineModel.save or `ser-hf baseline ... --save-model`."
        )
    config = read_json(path, fix=_FIX)
    if names_neural(config) != (model_file == _NEURAL_WEIGHTS):
        raise ModelError(
            f"{str(path)!r} names classifier {config.get('classifier')!r}, whose model file is "
            f"{_NEURAL_WEIGHTS if model_file == MODEL_NAME else MODEL_NAME}, but the folder holds {model_file}; "
            f"the files do not belong together. {_FIX}"
        )
    if config.get("format") != _FORMAT or config.get("format_version") != _FORMAT_VERSION:
        raise ModelError(
            f"{str(path)!r}: expected format {_FORMAT!r} version {_FORMAT_VERSION}, found "
            f"{config.get('format')!r} version {config.get('format_version')!r}; re-save it with this ser_hf."
        )
    if config.get("features_version") != FEATURES_VERSION:
        raise ModelError(
            f"{str(path)!r} was trained on features version {config.get('features_version')!r}, but this ser_hf "
            f"computes version {FEATURES_VERSION}, so its inputs would differ; retrain it with this ser_hf."
        )
    _check_fields(config, path)
    library = "torch" if model_file == _NEURAL_WEIGHTS else "scikit-learn"
    saved, here = config.get("versions", {}).get(library), installed_version(library)
    if saved != here:
        warnings.warn(f"{str(path)!r} was saved with {library} {saved}; this is {here}. Predictions may differ; "
                      f"retrain if they look wrong.", UserWarning, stacklevel=4)
    return config


#: A skops file is a zip archive whose members skops reads whole; one that inflates far beyond its size is a
#: zip bomb. skops stores (does not compress) by default, so real files inflate by ~1x.
MAX_INFLATION = 100
_MIN_INFLATED_LIMIT = 256 * 2**20


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: _load_pipeline's skops check names the problem
    inflated = sum(member.file_size for member in members)
    limit = max(_MIN_INFLATED_LIMIT, MAX_INFLATION * path.stat().st_size)
    if inflated > limit or len(members) > 1_000_000:
        raise ModelError(
            f"{str(path)!r} is a {path.stat().st_size}-byte archive of {len(members)} members that would inflate to "
            f"{inflated} bytes (at most {limit} accepted): not a model skops writes. {_FIX}"
        )


def _load_pipeline(path: Path, trusted: Sequence[str]) -> Pipeline:
    import skops.io

    if isinstance(trusted, (bool, str)):
        raise ModelError(
            f"load_baseline(trusted={trusted!r}): pass a list of type names (e.g. "
            f"['sklearn.tree._tree.Tree']); trusting everything is not supported."
        )
    _check_archive(path)
    try:
        found = skops.io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError) as err:  # ValueError covers a corrupt schema.json
        raise ModelError(
            f"{str(path)!r} is not a skops file ({type(err).__name__}: {err}); a pickle renamed to {MODEL_NAME} is "
            f"refused too, since unpickling can run code. Save the model again with BaselineModel.save."
        ) from err
    refused = sorted(set(found) - set(TRUSTED_TYPES) - set(trusted))
    if refused:
        raise ModelError(
            f"{str(path)!r} contains untrusted types {refused}; the baseline trusts only {list(TRUSTED_TYPES)}. "
            f"If you made this file and audited those types, pass them: load_baseline(..., trusted={refused})."
        )
    pipeline = skops.io.load(path, trusted=list(found))
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise ModelError(f"{str(path)!r} holds a {type(pipeline).__name__}, not a fitted classifier pipeline.")
    return pipeline


def read_saved_settings(folder: Path) -> tuple[dict[str, Any], FeatureConfig, AudioPreprocessor]:
    """The checked ``baseline_config.json`` of a saved baseline folder of either kind, with its settings.

    Returns:
        ``(config, feature_config, preprocessor)``: the config, and its feature and preprocessing settings
        with every field's type and bounds checked.

    Raises:
        ModelError: not a saved baseline, another format or features version, settings out of range.
    """
    config = _read_config(folder)
    path = folder / CONFIG_NAME
    feature_config = _settings(FeatureConfig, config.get("feature_config"), path, "feature_config")
    preprocessor = _settings(AudioPreprocessor, _without_idle_target(config.get("preprocessor")), path, "preprocessor")
    return config, feature_config, preprocessor


def _without_idle_target(values: Any) -> Any:
    """The saved preprocessor settings less a ``target_dbfs`` saved with ``normalize`` None: it did nothing (files
    written before AudioPreprocessor refused the pair hold it), so the model loads with the cleaning it was trained
    with."""
    if isinstance(values, dict) and values.get("normalize") is None and values.get("target_dbfs") is not None:
        return {**values, "target_dbfs": None}
    return values
