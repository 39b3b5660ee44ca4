"""Evaluate a saved checkpoint on a corpus, on its own label set or across corpora.

The corpus's labels meet the model's classes through :func:`~ser_hf.evaluation.label_mapping.map_labels`
(:mod:`ser_hf.evaluation.label_mapping`: same canonical emotion, or as a ``label_map`` says). Clips whose label
has no counterpart are counted per label and reported (``metadata["unmapped"]`` in ``report.json``, a table in
``report.md``, the terminal), never silently dropped; model classes the corpus lacks stay in the confusion matrix
and are left out of UA (UA averages recall over the classes that have references, see
:mod:`ser_hf.evaluation.metrics.core`).

:func:`evaluate_checkpoint` is what ``ser-hf evaluate`` runs: load the corpus, pick a speaker-independent
part (:func:`select_split`), predict with :func:`ser_hf.inference.predict.predict_proba`, score with
speaker-level bootstrap intervals and write the report with :meth:`EvaluationReport.write`.

Example:
    ```python
    >>> from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
    >>> report = evaluate_checkpoint("outputs/rav4", "urdu", "../shared/data/urdu",  # doctest: +SKIP
    ...                              out_dir="outputs/rav4-on-urdu")
    >>> report.metadata["unmapped"]  # doctest: +SKIP
    {}

    ```
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ser_hf._io import write_output_file
from ser_hf._output_folders import check_output_folder
from ser_hf.checkpoint import read_run_record, recorded_preprocessor
from ser_hf.corpora import load_corpus
from ser_hf.corpora.combined import SPEAKER_SEPARATOR
from ser_hf.corpora.hf_dataset import DatasetSource
from ser_hf.errors import EvaluationError, ModelError
from ser_hf.evaluation.bootstrap import check_resamples
from ser_hf.evaluation.label_mapping import (
    LabelMapping,
    _refuse_chained_entries,
    as_label_map,
    loader_label_map,
    map_labels,
    parse_label_map,
)
from ser_hf.evaluation.report import CV_OUTPUTS, REPORT_FILES, REPORT_KEYS, EvaluationReport, markdown_table
from ser_hf.evaluation.robustness import PerturbationSettings, score_under_perturbations
from ser_hf.paths import path_text
from ser_hf.ranges import Range, check_value

# LabelMapping, as_label_map, loader_label_map, map_labels and parse_label_map are label_mapping's, re-exported:
# they were defined here, and code importing them from here keeps working.
__all__ = [
    "LabelMapping", "as_label_map", "evaluate_checkpoint", "evaluate_model", "format_notes", "loader_label_map",
    "map_labels", "notes_markdown", "parse_label_map", "select_split", "write_evaluation",
]

logger = logging.getLogger(__name__)


def select_split(
    dataset: datasets.Dataset, split: str = "all", *, seed: int = 0, test_size: float = 0.2, num_folds: int = 5,
    speakers: Sequence[str] | None = None,
) -> tuple[datasets.Dataset, str]:
    """A speaker-independent part of a corpus to evaluate on.

    Args:
        dataset: The corpus.
        split: ``"all"``; ``"test"``: the test part of :func:`ser_hf.splits.speaker_split` (``test_size``,
            ``seed``), or exactly ``speakers`` when given; ``"fold:N"``: the test speakers of fold N
            (1-based) of :func:`ser_hf.splits.corpus_folds` (RAVDESS's actor folds, IEMOCAP's sessions,
            otherwise ``num_folds`` speaker-grouped folds with ``seed``).
        seed: Seed of the speaker assignment.
        test_size: Share of clips (whole speakers) in ``test``.
        num_folds: Folds for corpora without a protocol of their own.
        speakers: For ``"test"``: the held-out speakers recorded at training time (``None``: unknown, a fresh
            split is drawn; ``[]``: none of this corpus was held out, refused).

    Returns:
        ``(part, description)``.

    Raises:
        EvaluationError: an unknown split, or a fold number out of range.
    """
    from ser_hf.splits import corpus_folds, speaker_split

    if split == "all":
        return dataset, f"all {len(dataset)} clips"
    if split == "test" and speakers is not None:
        keep = set(speakers)
        part = dataset.select([i for i, speaker in enumerate(dataset["speaker"]) if speaker in keep])
        if not keep:  # a run on several corpora that held out none of this one: a fresh split would be heard speakers
            raise EvaluationError(
                "--split test: the model was trained on this corpus and held out none of its speakers, so every "
                "speaker of it was heard in training. Evaluate on a corpus it never heard, or use --split all and "
                "read its results as training-set scores."
            )
        if len(part) == 0:
            raise EvaluationError(
                f"--split test: none of the held-out speakers recorded with the model ({sorted(keep)}) is in this "
                f"corpus. Check --data-dir, or use --split all."
            )
        return part, f"test: the {len(keep)} speakers held out when this model was trained"
    if split == "test":
        # 0 would leave no test part at all, 1 no speakers to split from
        check_value("test_size (--test-size)", test_size, Range(0, 1, low_open=True, high_open=True, noun="a share"),
                    EvaluationError)
        part = speaker_split(dataset, test_size=test_size, validation_size=0.0, seed=seed)["test"]
        return part, f"test: speaker_split(test_size={test_size}, seed={seed}), {len(set(part['speaker']))} speakers"
    match = re.fullmatch(r"fold:?(\d+)", split)
    if match is None:
        raise EvaluationError(f"--split must be 'all', 'test' or 'fold:N' (e.g. 'fold:1'), found {split!r}.")
    folds = corpus_folds(dataset, n_folds=num_folds, seed=seed)
    number = int(match[1])
    if not 1 <= number <= len(folds):
        raise EvaluationError(
            f"--split {split!r}: fold {number} does not exist; this corpus has {len(folds)} folds "
            f"({[f.name for f in folds]}), so use fold:1 .. fold:{len(folds)}."
        )
    fold = folds[number - 1]
    part = dataset.select(fold.test)
    return part, f"{fold.name}: test speakers of fold {number}/{len(folds)} ({len(set(part['speaker']))} speakers)"


#: How errors name ``n_resamples``: the function's argument and the command line's flag.
_RESAMPLES_ARGUMENT = "n_resamples (--n-resamples)"


def _groups(part: datasets.Dataset) -> list[str] | None:
    speakers = part["speaker"] if "speaker" in part.column_names else []
    # Without a speaker for every clip the bootstrap falls back to utterances (recorded in the report).
    return speakers if speakers and all(speakers) else None


def _genders(part: datasets.Dataset, groups: list[str] | None) -> list[str | None] | None:
    # Per-gender scores resample speakers, so they need both columns; a missing gender stays unknown.
    return part["gender"] if groups is not None and "gender" in part.column_names else None


def model_temperature(model: Any) -> float | None:
    """The temperature ser_hf folded into a model's classifier (``config.ser_hf_calibration``), or None."""
    record = getattr(model.config, "ser_hf_calibration", None)
    value = record.get("temperature") if isinstance(record, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def evaluate_model(
    model: Any,
    dataset: datasets.Dataset,
    *,
    label_map: Mapping[str, str] | str | None = None,
    feature_extractor: Any = None,
    preprocessor: Any = None,
    batch_size: int = 8,
    n_resamples: int = 1000,
    model_name: str | None = None,
    split: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    perturb: PerturbationSettings | str | None = None,
) -> EvaluationReport:
    """Score a checkpoint on a corpus dataset, mapping the corpus's labels onto the model's classes.

    Args:
        model: A checkpoint directory or a loaded ``AutoModelForAudioClassification``.
        dataset: A ser_hf corpus (``audio`` paths, ``label`` ``ClassLabel``, ``speaker``).
        label_map: Corpus label -> model class, a mapping or ``"calm=neutral,..."`` text (see :func:`map_labels`).
        feature_extractor: With a model object: its feature extractor.
        preprocessor: Audio cleaning before the extractor (an :class:`~ser_hf.audio.AudioPreprocessor`).
        batch_size: Clips per forward pass.
        n_resamples: Bootstrap resamples for the intervals (whole speakers are resampled); 0 skips them. Checked
            before anything is loaded or scored (:func:`~ser_hf.evaluation.bootstrap.check_resamples`). A clip
            without a speaker makes the bootstrap resample single clips instead (``bootstrap["unit"]`` ``sample``).
        model_name: Name written in the report (default: the directory).
        split: Split name written in the report.
        metadata: Extra facts kept in the report's metadata.
        progress: Show a progress bar.
        perturb: Also score the clips under degraded audio: a :class:`~ser_hf.evaluation.robustness.PerturbationSettings`
            or a spec such as ``"noise:snr=10,telephone"`` (seed 0); predictions are cached.

    Returns:
        An :class:`EvaluationReport` over the model's classes; ``robustness`` the rows per degradation with
        ``perturb``; ``metadata`` holds ``label_mapping``,
        ``unmapped`` (corpus label -> clips not scored), ``model_classes_without_references`` and ``speakers``;
        ``by_speaker`` the scores per speaker and gender (from the ``gender`` column); ``temperature_scaling``
        the ECE before and after the temperature the model carries (``config.ser_hf_calibration``).

    Example:
        ```python
        >>> from ser_hf.corpora import load_corpus
        >>> report = evaluate_model("outputs/rav4", load_corpus("ravdess", "data/ravdess"),  # doctest: +SKIP
        ...                         label_map={"calm": "neutral"})
        >>> report.metadata["unmapped"]  # doctest: +SKIP
        {'fearful': 192, 'disgust': 192, 'surprised': 192}

        ```
    """
    from ser_hf.inference.predict import load_classifier, model_labels, predict_proba

    n_resamples = check_resamples(n_resamples, _RESAMPLES_ARGUMENT, zero_skips=True)
    if not isinstance(model, (str, os.PathLike)):
        loaded = model
    else:
        loaded, feature_extractor = load_classifier(model)
    mapping = map_labels(dataset.features["label"].names, model_labels(loaded), label_map)
    to_model = mapping.model_ids()
    corpus_ids = np.asarray(dataset["label"])
    rows = np.flatnonzero(np.isin(corpus_ids, list(to_model)))
    names = dataset.features["label"].names
    unmapped = Counter(names[i] for i in corpus_ids if i not in to_model)
    if rows.size == 0:
        raise EvaluationError(
            f"None of the {len(dataset)} clips to evaluate has a label the model knows (their labels: "
            f"{dict(unmapped)}; the model's classes: {mapping.model_labels}). Pass --label-map, or another --split."
        )
    part = dataset.select(rows)
    references = np.array([to_model[i] for i in corpus_ids[rows]], dtype=np.int64)
    groups = _groups(part)
    if isinstance(perturb, str):
        perturb = PerturbationSettings.from_spec(perturb, argument="perturb")
    robustness = None
    if perturb is not None and perturb.conditions:  # the clean predictions go through the same cache, so a rerun computes nothing
        probabilities, robustness = score_under_perturbations(
            loaded, part["audio"], references, perturb, feature_extractor=feature_extractor, preprocessor=preprocessor,
            groups=groups, batch_size=batch_size, n_resamples=n_resamples, progress=progress)
        labels = model_labels(loaded)
    else:
        probabilities, labels = predict_proba(loaded, part["audio"], feature_extractor=feature_extractor,
                                              preprocessor=preprocessor, batch_size=batch_size, progress=progress)
    present = set(references.tolist())
    facts = {
        "label_mapping": mapping.mapping,
        "unmapped": {label: unmapped[label] for label in mapping.unmapped if unmapped[label]},
        "model_classes_without_references": [name for i, name in enumerate(labels) if i not in present],
        "clips_in_split": len(dataset),
        "speakers": sorted(set(part["speaker"])) if "speaker" in part.column_names else [],
        **dict(metadata or {}),
    }
    report = EvaluationReport.from_predictions(
        references, probabilities=probabilities, label_names=labels, groups=groups, genders=_genders(part, groups),
        temperature=model_temperature(loaded),
        model=model_name or (str(model) if isinstance(model, (str, os.PathLike)) else loaded.name_or_path),
        corpus=", ".join(sorted(set(part["corpus"]))) if "corpus" in part.column_names else None,
        split=split, metadata=facts, n_resamples=n_resamples,
    )
    report.robustness = robustness
    return report


def notes_markdown(report: EvaluationReport, heading_level: int = 2) -> str:
    """Markdown for what the standard report leaves out: split, label mapping, unmapped clips, warnings."""
    meta, h = report.metadata, "#" * heading_level
    mapping, unmapped = meta.get("label_mapping", {}), meta.get("unmapped", {})
    rows = [[corpus, model] for corpus, model in mapping.items()]
    rows += [[label, f"none: {count} clips not scored"] for label, count in unmapped.items()]
    table = markdown_table(["Corpus label", "Model class"], rows).replace("---:", ":---")  # text: left-aligned
    parts = [f"{h} Labels: corpus -> model", table]
    if meta.get("model_classes_without_references"):
        parts.append(
            f"Model classes absent from this evaluation set: {', '.join(meta['model_classes_without_references'])}. "
            "They keep their column in the confusion matrix (predictions into them are errors) and are left out "
            "of UA, which averages recall over the classes with references."
        )
    if meta.get("split_description"):
        parts.append(f"Split: {meta['split_description']}.")
    parts += [f"**Warning:** {text}" for text in meta.get("warnings", [])]
    return "\n\n".join(parts) + "\n"


def format_notes(report: EvaluationReport) -> str:
    """Plain-text lines for the terminal: split, unmapped clips and warnings."""
    meta = report.metadata
    lines = [f"split: {meta['split_description']}"] if meta.get("split_description") else []
    unmapped = meta.get("unmapped", {})
    if unmapped:
        listing = ", ".join(f"{label} {count}" for label, count in unmapped.items())
        lines.append(f"unmapped (not scored, no model class): {listing} ({sum(unmapped.values())} clips)")
    if meta.get("model_classes_without_references"):
        lines.append(f"model classes absent from the evaluated clips (left out of UA): {', '.join(meta['model_classes_without_references'])}")
    return "\n".join(lines + [f"warning: {text}" for text in meta.get("warnings", [])])


def write_evaluation(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """:meth:`EvaluationReport.write`, with the label mapping and warnings added to ``report.md``."""
    paths = report.write(out_dir)
    write_output_file(paths["markdown"], report.to_markdown() + "\n" + notes_markdown(report))
    return paths


def _trained_corpora(record: Mapping[str, Any]) -> list[str]:
    """The corpora a run record says the model learnt from, casefolded: one name, or several joined by ``,``
    (``ser-hf train --corpus urdu,ravdess``), ``+`` (the released models' records), ``;`` or spaces; a name written
    with its emotion set (``ravdess/4class``) is the corpus."""
    named = str(record.get("data", {}).get("corpus") or "")
    return [piece.split("/")[0].casefold() for piece in re.split(r"[,+;\s]+", named) if piece.split("/")[0]]


def _trained_on(record: Mapping[str, Any], corpus: str) -> bool:
    """Whether the record names ``corpus`` among what the model learnt from (in any case; a dataset whose own name
    holds ``+`` or ``,`` is matched whole)."""
    named = str(record.get("data", {}).get("corpus") or "").strip().casefold()
    return bool(named) and (named == corpus.casefold() or corpus.casefold() in _trained_corpora(record))


def _held_out_speakers(record: Mapping[str, Any], corpus: str) -> list[str] | None:
    """The speakers of ``corpus`` the model was tested on and never trained on, as that corpus's loader names them;
    ``None`` when unknown (no ``eval/report.json``).

    A run on several corpora records them with their corpus (``urdu/SM1``, see
    :data:`~ser_hf.corpora.combined.SPEAKER_SEPARATOR`); only the evaluated corpus's are kept, without it, so a run
    that held out no speaker of this corpus gives ``[]``: every speaker of it was heard.
    """
    held = record.get("test_speakers")
    named = str(record.get("data", {}).get("corpus") or "").strip().casefold()
    if held is None or named == corpus.casefold() or len(_trained_corpora(record)) < 2:
        return held
    prefix = f"{corpus}{SPEAKER_SEPARATOR}".casefold()
    return [speaker[len(prefix):] for speaker in held if speaker.casefold().startswith(prefix)]


def _leak_warnings(corpus: str, trained: bool, held_out: list[str] | None, evaluated: Sequence[str]) -> list[str]:
    """What to warn about the evaluated speakers of a model ``trained`` on ``corpus`` or not, given the speakers
    its run held out (:func:`_held_out_speakers`)."""
    if not trained:
        return []
    if held_out is None:
        return [f"this model was trained on {corpus!r} and its held-out speakers are unknown (no eval/report.json): "
                "the evaluated speakers may include training speakers."]
    seen = sorted(set(evaluated) - set(held_out))
    if not seen:
        return []
    return [f"this model was trained on {corpus!r}: {len(seen)} of the {len(set(evaluated))} evaluated speakers "
            f"were in its training data ({', '.join(seen[:10])}{', ...' if len(seen) > 10 else ''}). "
            "Use --split test to score only the speakers it never heard."]


def evaluate_checkpoint(
    model_dir: str | os.PathLike,
    corpus: str,
    data_dir: str | os.PathLike | None = None,
    *,
    emotions: str | Sequence[str] | None = None,
    split: str = "all",
    label_map: Mapping[str, str] | str | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    num_folds: int = 5,
    out_dir: str | os.PathLike | None = None,
    corpus_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> EvaluationReport:
    """Load a corpus, pick a speaker-independent part, evaluate a checkpoint on it and write the report.

    When the checkpoint was trained by ``ser-hf train`` on the same corpus, ``split="test"`` uses exactly
    the speakers that were held out then (from ``MODEL/eval/report.json``), and the report warns about
    any evaluated speaker that was in the training data. The audio cleaning recorded in
    ``MODEL/ser_hf_run.json`` (trim, denoise, normalise, crop) is applied as in training.

    Args:
        model_dir: The checkpoint directory.
        corpus: A registered corpus name (see :data:`ser_hf.corpora.CORPORA`).
        data_dir: The corpus folder.
        emotions: Keep only these corpus emotions (``"4class"``, a list...).
        split: ``"all"``, ``"test"`` or ``"fold:N"`` (see :func:`select_split`).
        label_map: Corpus label -> model class, as a dict or ``"calm=neutral,..."`` text. For a ``folder`` or
            ``manifest`` corpus, entries whose key is no emotion spelling (a raw label such as ``glee`` or ``0``)
            are applied by the loader instead, mapping that raw label onto an emotion (see
            :func:`loader_label_map`). A raw-label entry whose target another entry maps again
            (``glee=happy,happy=sad``) is refused before anything is loaded: map the raw label to its final class.
        seed: Seed of ``test`` / ``fold:N``.
        test_size: Share of clips (whole speakers) in ``test``.
        num_folds: Folds for ``fold:N`` on corpora without their own protocol.
        out_dir: Where to write ``report.json``, ``report.md`` and the figures (nothing written if None).
        corpus_options: Extra :func:`~ser_hf.corpora.load_corpus` options (e.g. ``speaker_pattern``).
        **kwargs: Passed to :func:`evaluate_model` (``batch_size``, ``n_resamples``, ``progress``, ``perturb``).

    Returns:
        The :class:`EvaluationReport` (metadata: ``split_description``, ``warnings``, label mapping...).
    """
    if "n_resamples" in kwargs:  # before the model and the corpus load, not only before the clips are scored
        check_resamples(kwargs["n_resamples"], _RESAMPLES_ARGUMENT, zero_skips=True)
    label_map = as_label_map(label_map)
    raw_map, label_map = loader_label_map(label_map, corpus)
    if raw_map:  # e.g. a manifest's 'glee': only the loader can map it, as its "Unknown emotion label" error says
        corpus_options = {**dict(corpus_options or {}),
                          "label_map": {**dict((corpus_options or {}).get("label_map") or {}), **raw_map}}
    # before anything is loaded: the loader's map (the user's corpus_options one too) must not feed the model's
    _refuse_chained_entries(dict((corpus_options or {}).get("label_map") or {}), label_map)
    model_dir = path_text(model_dir, "model_dir (--model)", error=ModelError, refuse_empty=True)  # bytes paths too
    if out_dir is not None:  # before any work: never into the checkpoint itself nor over a folder of the user's
        local = Path(model_dir).expanduser()
        local = local.parent if local.is_file() else local  # an export's model.onnx: its folder is the checkpoint
        out_dir = check_output_folder(out_dir, argument="out_dir (--out)", marker=[("report.json", REPORT_KEYS)],
                            what="an evaluation report", overwrite=True, sources=[local] if local.is_dir() else [],
                            inside=CV_OUTPUTS, writes=REPORT_FILES)
    from ser_hf.inference.predict import load_classifier

    model, feature_extractor = load_classifier(model_dir)  # fail on a bad checkpoint before reading audio
    folder = Path(str(model_dir)).expanduser()
    record = read_run_record(folder.parent if folder.is_file() else folder)  # an export's model.onnx: its folder
    dataset = load_corpus(corpus, data_dir, emotions=emotions, **dict(corpus_options or {}))
    named = corpus.name if isinstance(corpus, DatasetSource) else corpus  # as the run record names what it learnt
    trained = _trained_on(record, named)
    held_out = _held_out_speakers(record, named) if trained else None
    part, description = select_split(dataset, split, seed=seed, test_size=test_size, num_folds=num_folds,
                                     speakers=held_out)
    warnings = _leak_warnings(named, trained, held_out, part["speaker"])
    for text in warnings:
        logger.warning(text)
    preprocessor = recorded_preprocessor(record.get("data", {}), feature_extractor.sampling_rate)
    facts = {"split_description": description, "warnings": warnings, "emotions": emotions,
             "preprocessing": None if preprocessor is None else dataclasses.asdict(preprocessor)}
    report = evaluate_model(model, part, label_map=label_map, feature_extractor=feature_extractor,
                            preprocessor=preprocessor, model_name=str(model_dir), split=split, metadata=facts, **kwargs)
    if out_dir is not None:
        write_evaluation(report, out_dir)
    return report
