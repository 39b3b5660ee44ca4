"""Accuracy under degraded audio: the same clips scored clean and under each condition of ``--perturb``.

:func:`score_under_perturbations` is what ``ser-hf evaluate --perturb`` adds to the clean evaluation: for
every condition of :mod:`ser_hf.evaluation.perturbations` it degrades each clip (after decoding, before
the model's recorded audio cleaning, as a degraded recording would arrive), predicts, and scores UA,
WA and macro-F1 with a 95% interval that resamples whole speakers, plus the change in UA against the
clean clips with a *paired* interval: every bootstrap resample draws the same speakers for the clean
and the degraded predictions, so the interval is that of the difference, not of two independent scores.

Caching: the forward pass is what costs; degrading a clip takes milliseconds. Degraded waveforms are
therefore not stored (each condition would be a copy of the evaluation set); the probabilities are, one
small ``.npy`` per clip under ``cache_dir/<model>/<condition>/<clip>.npy``, where ``<model>`` hashes the
weights, the config, the feature extractor and the audio cleaning, ``<condition>`` the condition's full key,
the seed (for the conditions that draw noise or rooms) and the algorithm version, and ``<clip>`` the clip's
audio bytes. A rerun, another split or a
subset of the clips reuses them (default ``$SER_HF_CACHE/perturbations`` or ``~/.cache/ser_hf/perturbations``).

Example:
    ```python
    >>> from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
    >>> report = evaluate_checkpoint("outputs/rav4", "ravdess", "data/ravdess", split="fold:1",  # doctest: +SKIP
    ...                              perturb=PerturbationSettings.from_spec("noise:snr=10,telephone"))
    >>> [(row["condition"], row["unweighted_accuracy"]) for row in report.robustness["conditions"]]  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf._io import write_output_file
from ser_hf.errors import EvaluationError
from ser_hf.evaluation.bootstrap import (
    MIN_INTERVAL_UNITS,
    check_confidence_level,
    check_resamples,
    interval_caveat,
    paired_bootstrap_scores,
    percentile_interval,
    resampling_units,
)
from ser_hf.evaluation.metrics.core import compute_scores
from ser_hf.evaluation.perturbations import Perturbation, check_distinct, parse_perturbations
from ser_hf.evaluation.tables import markdown_table, percent, percent_range
from ser_hf.paths import display_path, path_text
from ser_hf.progress import progress_bar

__all__ = [
    "PerturbationSettings", "card_markdown", "card_record", "clip_keys", "default_cache_dir",
    "model_fingerprint", "robustness_lines", "robustness_markdown", "robustness_rows", "score_under_perturbations",
]

logger = logging.getLogger(__name__)

CLEAN = "clean"
#: Clips degraded and predicted together: bounds the degraded audio held in memory.
_CHUNK = 64


def default_cache_dir() -> Path:
    """``$SER_HF_CACHE/perturbations`` or ``~/.cache/ser_hf/perturbations``."""
    return Path(os.environ.get("SER_HF_CACHE", Path.home() / ".cache" / "ser_hf")) / "perturbations"


@dataclass
class PerturbationSettings:
    """What ``--perturb`` asks for: the conditions, the seed of their random draws and the cache folder.

    Args:
        conditions: The degradations (:func:`~ser_hf.evaluation.perturbations.parse_perturbations`).
        seed: Seed of every random draw (noise, babble, room responses); each (condition, clip) pair gets
            its own generator from it.
        cache_dir: Where predictions are cached (default :func:`default_cache_dir`).
    """

    conditions: list[Perturbation] = field(default_factory=list)
    seed: int = 0
    cache_dir: str | os.PathLike | None = None

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                  argument: str = "--perturb") -> PerturbationSettings:
        """Parse ``spec`` (``"noise:snr=20,telephone"``); errors name ``argument``."""
        return cls(parse_perturbations(spec, argument), seed, cache_dir)


def clip_keys(audio: Sequence[Any]) -> list[str]:
    """The content hash of every clip: the file's bytes for a path, the samples for an array."""
    keys = []
    for item in audio:
        digest = hashlib.sha256()
        if isinstance(item, np.ndarray):
            digest.update(np.ascontiguousarray(item, dtype=np.float32).tobytes())
        else:
            with open(item, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        keys.append(digest.hexdigest()[:32])
    return keys


def _config_text(config: Any) -> str:
    # The checkpoint's own path and the writing library's version do not change a prediction.
    values = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    return json.dumps(values, sort_keys=True, default=str)


def model_fingerprint(model: Any, feature_extractor: Any, preprocessor: Any = None) -> str:
    """A hash of everything that decides a prediction: weights (or the ONNX file), config, extractor, cleaning."""
    digest = hashlib.sha256()
    onnx_file = getattr(model, "onnx_file", None)
    if onnx_file is not None:
        with open(onnx_file, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    else:
        for name, tensor in model.state_dict().items():
            digest.update(f"{name}:{tensor.dtype}".encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    digest.update(_config_text(model.config).encode())
    digest.update(json.dumps(feature_extractor.to_dict(), sort_keys=True, default=str).encode())
    digest.update(b"none" if preprocessor is None else preprocessor.fingerprint().encode())
    return digest.hexdigest()[:20]


def _save(path: Path, array: np.ndarray) -> None:
    # Written whole, then renamed: a run killed mid-write never leaves a truncated prediction behind.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(handle.name, path)


class _Predictor:
    """Cached probabilities of one model for clean or degraded clips (see the module docstring)."""

    def __init__(self, model: Any, feature_extractor: Any, preprocessor: Any, settings: PerturbationSettings,
                 batch_size: int, progress: bool) -> None:
        self.model, self.feature_extractor, self.preprocessor = model, feature_extractor, preprocessor
        self.seed, self.batch_size, self.progress = settings.seed, batch_size, progress
        root = (Path(path_text(settings.cache_dir, "the perturbation cache folder (--perturb-cache-dir)",
                               error=EvaluationError, refuse_empty=True)).expanduser()
                if settings.cache_dir is not None else default_cache_dir())
        self.root = root / model_fingerprint(model, feature_extractor, preprocessor)
        try:  # now, before any clip is scored
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # the folder or one above it is a file, or cannot be written
            raise EvaluationError(f"the perturbation cache folder {display_path(root)} (--perturb-cache-dir) cannot "
                                  f"be used: {err.strerror or err}. Pass a folder that can be created and written, "
                                  f"or leave it out for {display_path(default_cache_dir())}.") from None
        self.num_labels = int(model.config.num_labels)
        self.computed = self.reused = 0

    def _folder(self, condition: Perturbation | None) -> Path:
        # A condition that draws nothing (gain, telephone, resample) is the same for every seed.
        seed = self.seed if condition is not None and condition.random else None
        name = CLEAN if condition is None else hashlib.sha256(f"{condition.key}|seed={seed}".encode()).hexdigest()[:16]
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        about = folder / "condition.json"
        if not about.is_file() or about.is_symlink():  # for a person looking at the cache; never read back
            write_output_file(about, json.dumps({"condition": CLEAN if condition is None else condition.name,
                                                 "key": None if condition is None else condition.key,
                                                 "seed": seed}) + "\n")
        return folder

    def _inputs(self, audio: Sequence[Any], keys: Sequence[str], rows: Sequence[int],
                condition: Perturbation | None) -> list[Any]:
        from ser_hf.audio import load_audio

        if condition is None:
            return [audio[i] for i in rows]  # exactly what the clean evaluation decodes
        rate = self.feature_extractor.sampling_rate
        # Arrays are taken to be at the model's rate already, as predict_proba does.
        degraded = []
        for i in rows:
            wave = audio[i] if isinstance(audio[i], np.ndarray) else load_audio(audio[i], rate)
            try:
                degraded.append(condition.apply(wave, rate, seed=self.seed, clip_key=keys[i]))
            except EvaluationError as err:  # the clip's hash alone would not tell the user which clip it is
                where = f"audio[{i}]" if isinstance(audio[i], np.ndarray) else display_path(audio[i])
                raise EvaluationError(f"{where}: {err}") from None
        return degraded

    def probabilities(self, audio: Sequence[Any], keys: Sequence[str], condition: Perturbation | None) -> np.ndarray:
        """``(len(audio), num_labels)`` probabilities; only clips missing from the cache run through the model."""
        from ser_hf.inference.predict import predict_proba

        folder = self._folder(condition)
        targets = [folder / f"{key}.npy" for key in keys]
        for target in targets:  # before any clip is scored: a prediction could never be saved there
            if os.path.lexists(target) and (target.is_symlink() or not target.is_file()):
                raise EvaluationError(f"the perturbation cache holds {display_path(target)}, which is not a regular "
                                      f"file (a folder, a link or a pipe); delete it, or pass another "
                                      f"--perturb-cache-dir.")
        found = {i: self._cached(target) for i, target in enumerate(targets) if target.is_file()}
        found = {i: row for i, row in found.items() if row is not None}
        missing = [i for i in range(len(targets)) if i not in found]
        self.computed, self.reused = self.computed + len(missing), self.reused + len(keys) - len(missing)
        name = CLEAN if condition is None else condition.name
        logger.info("%s: %d of %d clips cached in %s", name, len(keys) - len(missing), len(keys), folder)
        with progress_bar(self.progress and bool(missing), total=len(missing), desc=name, unit="clip") as bar:
            for start in range(0, len(missing), _CHUNK):
                rows = missing[start : start + _CHUNK]
                probabilities, _ = predict_proba(
                    self.model, self._inputs(audio, keys, rows, condition), feature_extractor=self.feature_extractor,
                    preprocessor=self.preprocessor, batch_size=self.batch_size, progress=False)
                for i, row in zip(rows, probabilities):
                    _save(targets[i], row)
                    found[i] = row
                bar.update(len(rows))
        return np.stack([found[i] for i in range(len(targets))])

    def _cached(self, target: Path) -> np.ndarray | None:
        """A clip's cached probabilities, or None (and a warning naming the file) when the file cannot be used: it
        is computed again and replaced, so a damaged cache never stops a run nor feeds it wrong numbers."""
        try:
            row = np.load(target, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            why = f"cannot be read ({err})"
        else:
            if (row.shape == (self.num_labels,) and row.dtype.kind == "f" and np.isfinite(row).all()
                    and row.min() >= 0 and abs(float(row.sum()) - 1.0) < 1e-3):
                return row
            why = f"holds {row.dtype} values of shape {row.shape}, not {self.num_labels} probabilities summing to 1"
        logger.warning("cached probabilities %s %s; computing them again", display_path(target), why)
        return None


def robustness_rows(
    references: Any,
    predictions: Mapping[str, Any],
    label_names: Sequence[str],
    *,
    descriptions: Mapping[str, str] | None = None,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per condition: UA, WA, macro-F1, the UA interval and the paired change in UA against clean.

    Args:
        references: True class ids, length N.
        predictions: Condition name -> predicted class ids (length N); must hold ``"clean"``.
        label_names: Class names in id order.
        descriptions: Condition name -> plain words for the row.
        groups: Speaker of each clip: whole speakers are resampled (else clips).
        n_resamples: Bootstrap resamples (see :func:`~ser_hf.evaluation.bootstrap.check_resamples`); 0 leaves the
            intervals out (None), as does a single speaker (or clip): resampling it gives the same clips every time
            (see :func:`~ser_hf.evaluation.bootstrap.interval_caveat`).
        confidence_level: Coverage of the intervals, in (0, 1).
        seed: Bootstrap seed. Every condition uses the same draws, which is what pairs the intervals
            of the change (with the report's default seed 0, the clean interval is the report's).

    Returns:
        Rows with ``condition``, ``description``, ``unweighted_accuracy``, ``weighted_accuracy``, ``macro_f1``,
        ``weighted_f1``, ``num_samples``, ``confidence_interval`` (UA), ``ua_change`` (degraded minus clean UA,
        negative when worse) and ``ua_change_interval``.

    Raises:
        EvaluationError: no ``"clean"`` predictions, ``n_resamples`` or ``confidence_level`` out of range (checked
            even when one speaker leaves nothing to resample), or what the bootstrap refuses.
    """
    n_resamples = check_resamples(n_resamples, zero_skips=True)
    confidence_level = check_confidence_level(confidence_level)
    if CLEAN not in predictions:
        raise EvaluationError(f"robustness_rows needs the clean predictions under {CLEAN!r}; "
                              f"found {sorted(predictions)}.")
    refs = np.asarray(references, dtype=np.int64)
    resample = bool(n_resamples) and resampling_units(refs.size, groups) >= MIN_INTERVAL_UNITS
    samples = paired_bootstrap_scores(refs, predictions, len(label_names), groups=groups, n_resamples=n_resamples,
                                      seed=seed) if resample else {}
    clean = compute_scores(refs, predictions[CLEAN], label_names=label_names)["unweighted_accuracy"]
    rows = []
    for name, preds in predictions.items():
        scores = compute_scores(refs, preds, label_names=label_names)
        rows.append({
            "condition": name, "description": (descriptions or {}).get(name, "no degradation" if name == CLEAN else ""),
            **{key: scores[key] for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1", "weighted_f1",
                                            "num_samples")},
            "confidence_interval": percentile_interval(samples[name], confidence_level) if samples else None,
            "ua_change": scores["unweighted_accuracy"] - clean,
            "ua_change_interval": (percentile_interval(samples[name] - samples[CLEAN], confidence_level)
                                   if samples else None),
        })
    return rows


def score_under_perturbations(
    model: Any,
    audio: Sequence[Any],
    references: Any,
    settings: PerturbationSettings,
    *,
    feature_extractor: Any,
    preprocessor: Any = None,
    groups: Sequence[Any] | None = None,
    batch_size: int = 8,
    n_resamples: int = 1000,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Predict the clips clean and under every condition (cached), and score each.

    Args:
        model: A loaded classifier (``AutoModelForAudioClassification`` or ONNX).
        audio: The clips: file paths, or arrays at the feature extractor's rate.
        references: The true class id of each clip, in the model's class ids.
        settings: The conditions, seed and cache folder.
        feature_extractor: The model's feature extractor.
        preprocessor: The audio cleaning the model was trained with, applied after the degradation.
        groups: Speaker of each clip, for the bootstrap.
        batch_size: Clips per forward pass.
        n_resamples: Bootstrap resamples for the intervals (see
            :func:`~ser_hf.evaluation.bootstrap.check_resamples`); 0 skips them.
        progress: Show a progress bar per condition.

    Returns:
        ``(clean probabilities, section)``; the section (``EvaluationReport.robustness``) holds ``seed``,
        ``conditions`` (:func:`robustness_rows`, clean first), ``bootstrap`` (with a ``note`` when the intervals
        are missing or coarse for lack of speakers) and ``cache`` (folder, predictions computed and reused by
        this call).

    Raises:
        EvaluationError: two conditions of ``settings`` are the same (each must be its own row and cache folder), or
            ``n_resamples`` out of range; both before any clip is scored.
    """
    from ser_hf.inference.predict import model_labels

    n_resamples = check_resamples(n_resamples, zero_skips=True)
    check_distinct(settings.conditions, "settings.conditions")
    for condition in settings.conditions:
        condition.check_sampling_rate(feature_extractor.sampling_rate)
    predictor = _Predictor(model, feature_extractor, preprocessor, settings, batch_size, progress)
    keys = clip_keys(audio)
    clean = predictor.probabilities(audio, keys, None)
    predictions = {CLEAN: clean.argmax(axis=1)}
    for condition in settings.conditions:
        predictions[condition.name] = predictor.probabilities(audio, keys, condition).argmax(axis=1)
    rows = robustness_rows(references, predictions, model_labels(model), groups=groups, n_resamples=n_resamples,
                           descriptions={c.name: c.description() for c in settings.conditions})
    bootstrap = {"method": "percentile, paired across conditions", "n_resamples": int(n_resamples),
                 "confidence_level": 0.95, "seed": 0, "unit": "sample" if groups is None else "group"}
    caveat = interval_caveat(resampling_units(len(keys), groups), groups is not None) if n_resamples else None
    if caveat is not None:
        bootstrap["note"] = caveat[0]
    section = {
        "seed": settings.seed, "conditions": rows, "bootstrap": bootstrap,
        "cache": {"folder": str(predictor.root), "predictions_computed": predictor.computed,
                  "predictions_reused": predictor.reused},
    }
    return clean, section


# ----------------------------------------------------------------------------- rendering


def _interval_text(bounds: Sequence[float] | None, section: Mapping[str, Any],
                   render: Callable[[Sequence[float]], str]) -> str:
    """``render(bounds)``; ``n/a`` when intervals were asked for but could not be computed (one speaker), empty
    when none were asked for (``n_resamples`` 0)."""
    if bounds:
        return render(bounds)
    return "n/a" if (section.get("bootstrap") or {}).get("n_resamples") else ""


def _ua_interval(row: Mapping[str, Any], section: Mapping[str, Any]) -> str:
    return _interval_text(row["confidence_interval"], section, percent_range)


def _change(row: Mapping[str, Any], section: Mapping[str, Any]) -> str:
    if row["condition"] == CLEAN:
        return ""
    interval = _interval_text(row.get("ua_change_interval"), section,
                              lambda bounds: f"{100 * bounds[0]:+.1f}, {100 * bounds[1]:+.1f}")
    return f"{100 * row['ua_change']:+.1f}" + (f" [{interval}]" if interval else "")


def _intervals_sentence(section: Mapping[str, Any]) -> str:
    """How the intervals were made, with the bootstrap's note (too few speakers); why there are none, if so."""
    boot = section.get("bootstrap") or {}
    note = boot.get("note")
    if not section["conditions"][0]["confidence_interval"]:
        return f" No intervals: {note}." if note else ""
    level = round(100 * boot.get("confidence_level", 0.95))
    unit = "speakers" if boot.get("unit") == "group" else "clips"
    return (f" {level}% intervals: percentile bootstrap over {unit} ({boot.get('n_resamples')} resamples); the UA "
            f"change is paired: each resample scores the same {unit} clean and degraded."
            + (f" Note: {note}." if note else ""))


def _intro(section: Mapping[str, Any]) -> str:
    return (f"The same {section['conditions'][0]['num_samples']} clips, clean and degraded (`ser-hf evaluate "
            f"--perturb`, seed {section.get('seed')}; noise and room responses are drawn per condition and clip)."
            f"{_intervals_sentence(section)} The degradation is applied to the decoded audio, before the audio "
            "cleaning the model was trained with.")


def robustness_markdown(section: Mapping[str, Any], heading_level: int | None = 2) -> str:
    """The section as Markdown: a short note, then one row per condition (clean first).

    Args:
        section: ``EvaluationReport.robustness``.
        heading_level: Level of its heading; None for no heading (a model card places its own).
    """
    rows = [[f"`{row['condition']}`", row["description"], percent(row["unweighted_accuracy"]),
             _ua_interval(row, section), percent(row["weighted_accuracy"]), percent(row["macro_f1"]),
             _change(row, section)] for row in section["conditions"]]
    table = markdown_table(["Condition", "What", "UA (%)", "UA 95% CI (%)", "WA (%)", "Macro-F1 (%)",
                            "UA change vs clean (points) [95% CI]"], rows).replace("|:---|---:|", "|:---|:---|", 1)
    heading = [] if heading_level is None else [f"{'#' * heading_level} Accuracy under degraded audio"]
    return "\n\n".join([*heading, _intro(section), table]) + "\n"


def robustness_lines(section: Mapping[str, Any]) -> list[str]:
    """Plain-text lines for the terminal summary."""
    rows = section["conditions"]
    width = max(9, *(len(row["condition"]) for row in rows))
    lines = [f"degraded audio (seed {section.get('seed')}; UA change vs clean with a paired interval):",
             f"  {'condition'.ljust(width)}  {'UA [95% CI]':<18} {'WA':>5} {'F1':>5}  UA change [95% CI]"]
    for row in rows:
        interval = _ua_interval(row, section)
        interval = f"[{interval}]" if interval else ""
        lines.append(f"  {row['condition'].ljust(width)}  {(percent(row['unweighted_accuracy']) + ' ' + interval):<18} "
                     f"{percent(row['weighted_accuracy']):>5} {percent(row['macro_f1']):>5}  {_change(row, section)}")
    cache = section.get("cache")
    if cache:
        lines.append(f"  predictions cached in {cache['folder']} ({cache['predictions_computed']} computed, "
                     f"{cache['predictions_reused']} reused)")
    return lines


def card_record(report: Any) -> dict[str, Any]:
    """What a model card keeps of a report's robustness section: the rows and what they were measured on."""
    if not report.robustness:
        raise EvaluationError("This report has no robustness section: evaluate with --perturb (perturb=...) first.")
    meta = report.metadata
    return {**{k: v for k, v in report.robustness.items() if k != "cache"}, "corpus": report.corpus,
            "split": report.split, "split_description": meta.get("split_description"),
            "speakers": len(meta.get("speakers") or []), "warnings": list(meta.get("warnings") or [])}


def card_markdown(record: Mapping[str, Any]) -> str:
    """The model card's "Robustness to degraded audio" section body, from :func:`card_record`."""
    where = f"Measured on {record.get('corpus') or 'an unnamed corpus'}"
    where += f", {record['split_description']}" if record.get("split_description") else f" ({record.get('split')})"
    if record.get("speakers") and "speakers" not in (record.get("split_description") or ""):
        where += f" ({record['speakers']} speakers)"
    where += "."
    warnings = "".join(f"\n\n**Warning:** {text}" for text in record.get("warnings") or [])
    return f"{where}{warnings}\n\n{robustness_markdown(record, heading_level=None)}"
