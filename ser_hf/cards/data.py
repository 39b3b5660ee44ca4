"""What a ser_hf model card says: :class:`SERModelCardData`, and how it is filled from a run or a release.

:class:`SERModelCardData` holds the fields a user sets (language, licence, name, tags...) and the
fields training fills through its ``set_*`` methods (base model, corpora and split protocol, labels
with counts per split, the hyperparameters that differ from the defaults, the training log, the
test report). Its :meth:`~SERModelCardData.to_dict` hands the template every table already formatted
(:mod:`ser_hf.cards.tables`); its YAML header is built with ``huggingface_hub.ModelCardData`` and
``EvalResult``, so its ``model-index`` is what the Hub accepts. :func:`card_from_run` fills one from what
:func:`ser_hf.training.experiment.train` has at hand, :func:`card_from_release` from a shipped model's record.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import CardData, EvalResult, ModelCardData

import ser_hf
from ser_hf.cards.facts import (
    PRESET_HUB_IDS,
    base_model_id,
    corpus_facts,
    hub_id,
    non_default_hyperparameters,
    training_log_from_trainer_state,
    training_log_of,
)
from ser_hf.cards.tables import (
    calibration_text,
    corpora_table,
    hyperparameter_table,
    label_counts_table,
    language_names,
    per_corpus_table,
    training_log_table,
    versions,
)
from ser_hf.evaluation.breakdown import breakdown_markdown
from ser_hf.evaluation.report import METRIC_TITLES, EvaluationReport
from ser_hf.evaluation.robustness import card_markdown

__all__ = ["SER_HF_CITATION", "SERModelCardData", "card_from_release", "card_from_run", "ser_hf_citation"]

_MODES = {
    "probe": "frozen pretrained encoder; only the classification head (layer weights, projector, classifier) "
             "was trained, on pooled hidden states (SUPERB-style probe)",
    "finetune": "fine-tuned end to end with the transformers Trainer",
    "partial": "partially fine-tuned: the lower encoder layers stayed frozen (their output was computed once and "
               "cached); the top `train_top_layers` encoder layers (1 unless the hyperparameters below say otherwise) "
               "and the classification head were trained with the transformers Trainer",
}

# The metrics written into model-index: (report field, Hub metric type, extra metric args).
_INDEX_METRICS = (
    ("unweighted_accuracy", "unweighted_accuracy", None),
    ("weighted_accuracy", "accuracy", None),
    ("macro_f1", "f1", {"average": "macro"}),
)

def ser_hf_citation(version: str = ser_hf.__version__) -> str:
    """The BibTeX entry a card asks users to cite, for ser_hf ``version``."""
    return """@software{ser_hf,
  title = {ser\\_hf: speech emotion recognition by transfer learning on pretrained speech transformers},
  author = {{ser\\_hf developers}},
  year = {2026},
  version = {VERSION},
  url = {https://github.com/ser-hf/ser_hf}
}""".replace("VERSION", version)


SER_HF_CITATION = ser_hf_citation()


@dataclass
class SERModelCardData(CardData):
    """What a ser_hf model card says. Set the first fields; training fills the rest (``set_*`` methods).

    Args:
        language: Language code(s) of the speech, e.g. ``"en"``; default: the training corpus's language.
        license: The model's licence id, e.g. ``"cc-by-nc-sa-4.0"``. Check the training corpora's licences.
        license_name: With ``license="other"``: an id for the licence, e.g. ``"urdu-research-only"`` (Hub metadata).
        license_link: With ``license="other"``: a URL (or ``LICENSE`` in the repo) where its terms are.
        model_name: A pretty name, e.g. ``"whisper-base probe on RAVDESS (4 emotions)"``; default built
            from the base model and corpus.
        model_id: The Hub repo id the model is pushed to (``"user/name"``), used in the usage snippet.
        tags: Hub tags.
        datasets: Hub dataset ids of the training data, if it is on the Hub.
        dataset_name: A pretty name of the training data; default: the corpus's title.
        base_model: Hub id of the pretrained backbone; default: derived from the run's model.
    """

    # Set by the user.
    language: str | list[str] | None = None
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    tags: list[str] = field(default_factory=lambda: ["ser_hf", "speech-emotion-recognition", "audio-classification"])
    datasets: list[str] | None = None
    dataset_name: str | None = None
    base_model: str | None = None

    # Filled from the run, the split, the checkpoint and the test report.
    base_model_name: str | None = field(default=None, init=False)
    mode: str | None = field(default=None, init=False)
    architecture: str | None = field(default=None, init=False)
    labels: list[str] = field(default_factory=list, init=False)
    corpora: list[dict[str, Any]] = field(default_factory=list, init=False)
    emotions: str | None = field(default=None, init=False)
    split_protocol: str | None = field(default=None, init=False)
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict, init=False)
    speakers: dict[str, list[str]] = field(default_factory=dict, init=False)
    hyperparameters: list[dict[str, Any]] = field(default_factory=list, init=False)
    training_log: list[dict[str, Any]] = field(default_factory=list, init=False)
    best_epoch: float | int | None = field(default=None, init=False)
    report: dict[str, Any] | None = field(default=None, init=False)
    confusion_matrix_image: str | None = field(default=None, init=False)
    speakers_image: str | None = field(default=None, init=False)
    calibration: dict[str, Any] | None = field(default=None, init=False)
    #: Scores under degraded audio (``ser-hf evaluate --perturb --update-card``, robustness.card_record).
    robustness: dict[str, Any] | None = field(default=None, init=False)

    # Filled for the models ser_hf ships (see card_from_release).
    released_name: str | None = field(default=None, init=False)
    licence_note: str | None = field(default=None, init=False)
    evaluation_intro: str | None = field(default=None, init=False)
    per_corpus_scores: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    limitations: list[str] = field(default_factory=list, init=False)
    #: The versions the model was trained with (a released model's record), quoted instead of this process's.
    framework_versions: dict[str, str] = field(default_factory=dict, init=False)

    # ----------------------------------------------------------------- filled by training

    def set_run(self, run: Any) -> None:
        """Record the base model, training mode, corpus, emotions and non-default hyperparameters."""
        self.base_model_name = run.model.model_name_or_path
        self.base_model = self.base_model or base_model_id(run.model.model_name_or_path)
        self.mode = run.model.mode
        self.model_id = self.model_id or getattr(run.training, "hub_model_id", None)
        self.emotions = run.data.emotions
        names = run.data.corpora()
        self.corpora = [corpus_facts(name) for name in names]
        self.hyperparameters = non_default_hyperparameters(run)
        source = getattr(run.data, "dataset_name", None)  # a `datasets` dataset instead of a corpus
        if hub_id(source) and not self.datasets:
            self.datasets = [source]  # the Hub links the model to the dataset's page
        if source and not self.dataset_name:
            self.dataset_name = source if hub_id(source) else Path(source).name
        if self.language is None:
            from ser_hf.corpora import corpus_languages

            languages = corpus_languages(names)
            self.language = languages[0] if len(languages) == 1 else languages or None
        within = " within each corpus (`ser_hf.corpora.combined.combined_speaker_split`)" if len(names) > 1 else ""
        self.split_protocol = (
            f"Speaker-independent hold-out (`ser_hf.splits.speaker_split`){within}: whole speakers are held out for the "
            f"test part (about {run.data.test_size:.0%} of the clips) and for validation (about "
            f"{run.data.validation_size:.0%}), stratified by emotion, seed {run.data.fold_seed}. No speaker is in "
            f"two parts, so the test scores are for voices the model never heard."
        )

    def set_splits(self, splits: Mapping[str, Any]) -> None:
        """Record clips per label and the speakers of every part of a ``DatasetDict`` (train/validation/test)."""
        for name, part in splits.items():
            names = part.features["label"].names
            counts = Counter(part["label"])
            self.label_counts[name] = {label: counts.get(i, 0) for i, label in enumerate(names)}
            self.speakers[name] = sorted(set(part["speaker"]))

    def set_checkpoint(self, checkpoint: str | os.PathLike) -> None:
        """Record the architecture and labels from ``config.json``, the confusion matrix figure and any Trainer log."""
        directory = Path(checkpoint)
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        self.architecture = config.get("model_type")
        id2label = config.get("id2label", {})
        self.labels = [id2label[key] for key in sorted(id2label, key=int)]
        if (directory / "eval" / "confusion_matrix.png").is_file():
            self.confusion_matrix_image = "eval/confusion_matrix.png"
        if (directory / "eval" / "speakers.png").is_file():
            self.speakers_image = "eval/speakers.png"
        if isinstance(config.get("ser_hf_calibration"), dict):
            self.calibration = config["ser_hf_calibration"]
        if not self.training_log:
            self.set_training_log(*training_log_from_trainer_state(directory))

    def set_training_log(self, rows: Sequence[Mapping[str, Any]], best_epoch: float | int | None = None) -> None:
        """Record validation metrics per epoch (e.g. ``{"epoch": 3, "validation UA": 0.61}``) and the kept epoch."""
        self.training_log = [dict(row) for row in rows]
        self.best_epoch = best_epoch

    def set_evaluation(self, report: EvaluationReport) -> None:
        """Record the test report (scores, intervals, per class, confusion matrix, per speaker and gender)."""
        self.report = report.to_dict()
        from ser_hf.splits import RANDOM_SPLIT

        if report.metadata.get("split_kind") == RANDOM_SPLIT:
            self.split_protocol = (
                "Random split (speakers may overlap): the data has no speaker ids, so test clips were drawn at random "
                "(stratified by emotion) and the same voices may be in training and test. The test scores are "
                "optimistic for voices the model never heard.")

    # ----------------------------------------------------------------- rendering

    @property
    def corpus_title(self) -> str:
        return self.dataset_name or ", ".join(c["title"] for c in self.corpora) or "an emotion corpus"

    def pretty_name(self) -> str:
        if self.model_name:
            return self.model_name
        base = (self.base_model or self.base_model_name or "model").split("/")[-1]
        subset = f", {len(self.labels)} emotions" if self.labels else ""
        return f"{base} {self.mode or ''} SER on {self.corpus_title}{subset}".replace("  ", " ")

    def eval_results(self) -> list[EvalResult]:
        """The test scores as ``huggingface_hub.EvalResult`` objects (fractions in [0, 1])."""
        if not self.report:
            return []
        corpus = self.corpora[0] if self.corpora else {"name": self.dataset_name or "unknown"}
        return [
            EvalResult(
                task_type="audio-classification", task_name="Speech Emotion Recognition",
                # A Hub dataset id links the result to the dataset's page; a local corpus keeps its ser_hf name.
                dataset_type=self.datasets[0] if self.datasets else corpus["name"], dataset_name=self.corpus_title, dataset_config=self.emotions,
                dataset_split=self.report.get("split") or "test", metric_type=metric_type,
                metric_value=round(float(self.report[key]), 4), metric_name=METRIC_TITLES[key], metric_args=args,
            )
            for key, metric_type, args in _INDEX_METRICS
        ]

    def metadata(self) -> ModelCardData:
        """The YAML header as ``huggingface_hub.ModelCardData`` (``model-index`` from :meth:`eval_results`)."""
        results = self.eval_results()
        return ModelCardData(
            language=self.language, license=self.license, license_name=self.license_name,
            license_link=self.license_link, library_name="transformers",
            pipeline_tag="audio-classification", tags=list(self.tags), datasets=self.datasets,
            base_model=self.base_model, metrics=[m for _, m, _ in _INDEX_METRICS] if results else None,
            model_name=self.pretty_name() if results else None, eval_results=results or None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Template variables: the fields, plus every table already formatted as Markdown."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        report = EvaluationReport.from_dict(self.report) if self.report else None
        return {
            **values,
            "pretty_name": self.pretty_name(),
            "mode_description": _MODES.get(self.mode or "", self.mode),
            "base_model_link": f"[{self.base_model}](https://huggingface.co/{self.base_model})" if self.base_model
            else f"`{Path(self.base_model_name).name}` (a local checkpoint)" if self.base_model_name else None,
            "corpus_title": self.corpus_title,
            "language_name": language_names(self.language),
            "usage_id": self.model_id or "PATH/TO/CHECKPOINT",
            "corpora_table": corpora_table(self.corpora),
            "label_counts_table": label_counts_table(self.label_counts, self.speakers),
            "hyperparameters_table": hyperparameter_table(self.hyperparameters),
            "training_log_table": training_log_table(self.training_log),
            "per_corpus_table": per_corpus_table(self.per_corpus_scores),
            "evaluation_markdown": report.to_markdown(heading_level=3, by_speaker=False) if report else "",
            "who_markdown": breakdown_markdown(report.by_speaker, report.labels, 3, every_speaker=False)
            if report and report.by_speaker else "",
            "calibration_text": calibration_text(self.calibration, report),
            "robustness_markdown": card_markdown(self.robustness) if self.robustness else "",
            "corpus_citations": [c["citation"] for c in self.corpora if c.get("citation")],
            "ser_hf_citation": ser_hf_citation(self.framework_versions.get("ser-hf", ser_hf.__version__)),
            "versions": versions(self.framework_versions),
        }

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        return self.metadata().to_yaml(line_break=line_break)


def card_from_run(
    run: Any,
    splits: Mapping[str, Any],
    report: EvaluationReport | None,
    checkpoint: str | os.PathLike,
    *,
    method: Any = None,
    training_log: Sequence[Mapping[str, Any]] | None = None,
    best_epoch: float | int | None = None,
    **user_fields: Any,
) -> SERModelCardData:
    """Fill a :class:`SERModelCardData` from what ``train()`` has: the run, its split, the test report.

    Args:
        run: The :class:`~ser_hf.training.experiment.Run`.
        splits: The speaker-independent ``DatasetDict`` (train/validation/test) the model was trained on.
        report: The test report, or None when there was no test part.
        checkpoint: The saved checkpoint directory.
        method: The fitted method (``ProbeMethod``, ``FinetuneMethod``); its training log is read with
            :func:`training_log_of`.
        training_log: Validation metrics per epoch, given directly (else from ``method``, else from a
            ``trainer_state.json`` in the checkpoint).
        best_epoch: The epoch that was kept.
        **user_fields: :class:`SERModelCardData` user fields (``license``, ``model_id``, ``language``...).

    Returns:
        The filled card data, ready for :func:`write_model_card`.
    """
    card = SERModelCardData(**user_fields)
    card.set_run(run)
    card.set_splits(splits)
    if not training_log and method is not None:
        training_log, best_epoch = training_log_of(method)
    if training_log:
        card.set_training_log(training_log, best_epoch)
    card.set_checkpoint(checkpoint)
    if report is not None:
        card.set_evaluation(report)
    return card


def _release_protocol(record: Mapping[str, Any], titles: Sequence[str]) -> str:
    data = record.get("data", {})
    scores = record.get("scores", {})
    fit = ((record.get("training", {}).get("method") or {}).get("settings") or {}).get("fit")
    balance = ("every corpus and emotion weighing the same, mix and strength chosen by speaker-grouped inner "
               "cross-validation on the mean of the corpora's UAs" if len(titles) > 1 else
               "class-balanced, mix and strength chosen by speaker-grouped inner cross-validation")
    how = {"linear": f" by the probe's closed-form linear fit (ridge regression on a mix of the encoder's layers, "
                     f"{balance})",
           "gradient": " by gradient steps on the pooled states"}.get(fit, "")
    return (
        f"The shipped head was trained on every clip of {' and '.join(titles)} ({data.get('clips', '?')} clips, "
        f"{data.get('speakers', '?')} speakers; emotions `{record.get('emotions')}`){how}, with the backbone frozen. "
        f"The data fingerprint (SHA-256 over every clip's path, file hash, label and speaker) is "
        f"`{data.get('sha256', 'not recorded')}`. The scores below are those of the same recipe in "
        f"speaker-independent cross-validation ({scores.get('protocol', 'protocol not recorded')}), from "
        f"`{scores.get('source', 'an unrecorded file')}`."
    )


def card_from_release(record: Mapping[str, Any], **user_fields: Any) -> SERModelCardData:
    """Fill a :class:`SERModelCardData` for a model ser_hf ships, from its ``record.json``.

    The card says what the record says: backbone, classes, training data with its licences and data
    fingerprint, the recipe's settings that differ from the defaults, the speaker-independent CV scores
    (pooled and per corpus) behind the shipped head, the licence terms, and the limitations measured
    in this repository (e.g. the cross-corpus drop).

    Args:
        record: The released model's record (:func:`ser_hf.models.released.read_record`).
        **user_fields: :class:`SERModelCardData` user fields, e.g. ``model_id`` when pushing to the Hub.

    Returns:
        The filled card data, ready for :func:`write_model_card`.
    """
    backbone = record["backbone"]["name"]
    corpora = [corpus_facts(name) for name in record["corpora"]]
    titles = [c["title"] for c in corpora]
    user_fields = {key: value for key, value in user_fields.items() if value is not None}
    card = SERModelCardData(**{
        "license": record.get("licence"), "license_name": record.get("licence_name"),
        "license_link": record.get("licence_link"), "language": record.get("languages") or None,
        "model_name": f"{record['name']}: {backbone} probe, {len(record['labels'])} emotions, {' + '.join(titles)}",
        "dataset_name": " + ".join(titles), **user_fields,
    })
    card.tags = [*card.tags, "ser_hf-released"]
    card.base_model = card.base_model or PRESET_HUB_IDS.get(backbone)
    card.base_model_name, card.mode, card.emotions = backbone, "probe", record.get("emotions")
    card.corpora = corpora
    card.hyperparameters = list(record.get("training", {}).get("non_default_settings", []))
    data = record.get("data", {})
    card.label_counts = {f"{name} (all, training)": counts for name, counts in data.get("label_counts", {}).items()}
    card.speakers = {f"{name} (all, training)": speakers for name, speakers in data.get("speaker_lists", {}).items()}
    card.split_protocol = _release_protocol(record, titles)
    scores = record.get("scores", {})
    card.report = scores.get("pooled_report")
    card.per_corpus_scores = dict(scores.get("per_corpus", {})) if len(record["corpora"]) > 1 else {}
    card.evaluation_intro = (
        "Pooled out-of-fold predictions of speaker-independent cross-validation of the shipped recipe: every clip "
        "was scored by a head that never heard its speaker. The intervals are percentile-bootstrap intervals that "
        "resample whole speakers."
    )
    card.released_name = record["name"]
    card.licence_note = record.get("licence_note")
    card.limitations = list(record.get("limitations", []))
    # The record says all the checkpoint would (architecture, classes) and what it was trained with: the card is
    # rendered from the record alone, once, when the model is released (ser_hf.cards.release).
    card.architecture, card.labels = record["model"]["model_type"], list(record["labels"])
    card.framework_versions = dict(record.get("training", {}).get("versions") or {})
    return card
