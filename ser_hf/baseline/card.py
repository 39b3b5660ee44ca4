"""The model card (``README.md``) of a saved classic baseline.

Tables are formatted here in Python; the Hub metadata header is built with ``huggingface_hub.ModelCardData``
(``library_name: sklearn``, the ``skops`` tag), so the folder can be pushed to the Hub as is. The card says
what the features and classifier are, the hyperparameters the inner cross-validation chose, the
speaker-independent cross-validation results with their confidence intervals (when given), how to load the
model safely, and its limitations.

Example:
    ```python
    >>> from ser_hf.baseline.card import baseline_card
    >>> print(baseline_card(model, cv_result))  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ser_hf._io import write_output_file
from ser_hf.baseline.classifiers import NEURAL_CLASSIFIERS
from ser_hf.evaluation import folds_to_markdown
from ser_hf.evaluation.report import markdown_table, percent

if TYPE_CHECKING:
    from ser_hf.baseline.crossval import BaselineCVResult

__all__ = ["TrainedBaseline", "baseline_card", "write_baseline_card"]


class TrainedBaseline(Protocol):
    """What a card reads of a trained baseline (:class:`~ser_hf.baseline.classic_model.BaselineModel` or
    its neural kind). Named here, not imported, because the models write their own cards."""

    pipeline: Any
    labels: list[str]
    feature_config: Any
    preprocessor: Any
    classifier: str | None
    best_params: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def num_features(self) -> int: ...


_FEATURE_GROUPS = {
    "mfcc": "MFCCs with deltas", "chroma": "chroma", "mel": "log-mel bands", "contrast": "spectral contrast",
    "tonnetz": "tonnetz", "zcr": "zero-crossing rate", "rms": "RMS level (dB)",
    "spectral": "spectral centroid, bandwidth, roll-off, flatness", "pitch": "F0 (YIN/pYIN) and voiced fraction",
    "voice_quality": "jitter- and shimmer-like perturbation",
}

_LIMITATIONS = """\
- **Acted, corpus-bound speech.** It was trained on one corpus's speakers, language, microphones and
  recording rooms. Hand-crafted spectral and prosodic statistics shift with the channel (microphone,
  codec, noise, level), so expect lower accuracy on other recordings; evaluate on your own data first.
- **Few speakers.** Cross-validation folds hold a handful of speakers each, so the intervals above are
  wide and per-fold scores vary a lot; the pooled interval resamples whole speakers for that reason.
- **Categorical emotions only**, from the label set above; no neutral/"other" rejection. Probabilities
  come from the classifier (Platt-calibrated for the SVM) and are only roughly calibrated (see ECE).
- **A baseline.** It exists to put pretrained speech transformers in context, not for decisions about
  people: emotion recognition from voice is unreliable across cultures, ages and health conditions.
- **Loading.** Load it with `ser_hf.baseline.model.load_baseline`, which trusts only the scikit-learn types
  the baseline needs; never with pickle or `trusted=True` on files from others."""

_NEURAL_LOADING = """- **Loading.** Load it with `ser_hf.baseline.model.load_baseline`, which checks the settings and every
  tensor's name, shape and dtype in `model.safetensors` against the network they describe before reading
  any weight (safetensors holds plain tensors and runs no code on load)."""


def _is_neural(model: TrainedBaseline) -> bool:
    return model.classifier in NEURAL_CLASSIFIERS


def _limitations(model: TrainedBaseline) -> str:
    if not _is_neural(model):
        return _LIMITATIONS
    text = _LIMITATIONS.replace("Hand-crafted spectral and prosodic statistics shift", "Spectrogram and MFCC inputs shift")
    text = text.replace("Probabilities\n  come from the classifier (Platt-calibrated for the SVM) and are only roughly calibrated",
                        "Probabilities\n  are the network's softmax, not calibrated")
    return text.split("- **Loading.**")[0] + _NEURAL_LOADING


def _sequence_rows(model: TrainedBaseline) -> list[list[Any]]:
    config, prep, network = model.feature_config, model.preprocessor, model.pipeline.config
    inputs = {"mel": f"{config.n_mels} log-mel bands (dB)",
              "mfcc": f"{config.n_mfcc} MFCCs from {config.n_mels} mel bands, delta order {config.mfcc_delta_order}"}
    cleaning = {k: v for k, v in dataclasses.asdict(prep).items() if k != "sampling_rate" and v is not None}
    normalisation = {"global": "per dimension, mean and std over every frame of the training clips",
                     "utterance": "per dimension, mean and std of each clip"}[network.normalization]
    return [
        ["Input", "; ".join(inputs[g] for g in config.groups) + f" ({model.num_features} values per frame)"],
        ["Sampling rate", f"{config.sampling_rate} Hz"],
        ["Frames", f"{config.frame_ms:g} ms window, {config.hop_ms:g} ms hop"],
        ["Normalisation", normalisation],
        ["Audio preprocessing", ", ".join(f"{k}={v}" for k, v in cleaning.items()) or "decode and resample only"],
    ]


def _network_section(model: TrainedBaseline) -> str:
    network, facts = model.pipeline.config, model.metadata
    other = ("hidden_size", "lstm_layers", "frame_stacking") if network.architecture == "cnn" else (
        "base_channels", "conv_blocks")
    settings = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(network).items()
                         if k not in ("architecture", "num_threads", *other))
    history = facts.get("history", [])
    rows = [[h["epoch"], f"{h['train_loss']:.3f}", f"{h['validation_loss']:.3f}", percent(h["validation_ua"])]
            for h in history]
    parts = [
        f"PyTorch: {NEURAL_CLASSIFIERS[model.classifier]}; "
        f"{model.pipeline.num_parameters():,} weights. Settings: `{settings}`.",
        f"Class-weighted cross-entropy (UA is the metric), AdamW, length-grouped padded batches with masks. "
        f"Early stopping on UA of held-out training speakers ({', '.join(facts.get('validation_speakers', []))}): "
        f"best epoch {model.best_params.get('best_epoch', '?')} of {model.best_params.get('epochs_run', '?')} "
        f"(validation UA {percent(facts.get('validation_unweighted_accuracy'))}%); its weights are the model's.",
    ]
    if rows:
        parts.append(markdown_table(["Epoch", "Train loss", "Validation loss", "Validation UA (%)"], rows))
    return "\n\n".join(parts)


def _feature_rows(model: TrainedBaseline) -> list[list[Any]]:
    config, prep = model.feature_config, model.preprocessor
    groups = "; ".join(_FEATURE_GROUPS[g] for g in config.groups)
    cleaning = {k: v for k, v in dataclasses.asdict(prep).items() if k != "sampling_rate" and v is not None}
    return [
        ["Feature groups", groups],
        ["Statistics over frames", ", ".join(config.stats)],
        ["Dimensions", model.num_features],
        ["Sampling rate", f"{config.sampling_rate} Hz"],
        ["Frames", f"{config.frame_ms:g} ms window, {config.hop_ms:g} ms hop"],
        ["MFCCs", f"{config.n_mfcc} from {config.n_mels} mel bands, delta order {config.mfcc_delta_order}"],
        ["Pitch", f"{config.pitch_method}, {config.f0_min:g}-{config.f0_max:g} Hz"],
        ["Audio preprocessing", ", ".join(f"{k}={v}" for k, v in cleaning.items()) or "decode and resample only"],
    ]


def _classifier_section(model: TrainedBaseline) -> str:
    steps = " → ".join(type(step).__name__ for _, step in model.pipeline.steps)
    facts = model.metadata
    grid = facts.get("grid", [])
    rows = [[", ".join(f"{k}={v}" for k, v in point["params"].items()), percent(point["mean"]),
             percent(point["std"])] for point in grid]
    parts = [
        f"scikit-learn pipeline: `{steps}` (`{model.classifier}`). Best hyperparameters, chosen by grid search "
        f"scored with UA (balanced accuracy) over {facts.get('inner_folds', '?')} speaker-grouped inner folds "
        f"of the training speakers: `{model.best_params}` (inner-CV UA "
        f"{percent(facts.get('inner_cv_unweighted_accuracy'))}%).",
    ]
    if rows:
        parts.append(markdown_table(["Grid point", "Inner UA (%)", "Std (%)"], rows))
    return "\n\n".join(parts)


def _data_section(model: TrainedBaseline) -> str:
    facts = model.metadata
    counts = facts.get("label_counts", {})
    table = markdown_table(["Emotion", "Clips"], [[name, counts.get(name, "?")] for name in model.labels])
    return (f"Corpus: **{facts.get('corpus') or 'unknown'}**, {facts.get('num_clips', '?')} clips from "
            f"{facts.get('num_speakers', '?')} speakers ({_use(model)}).\n\n{table}")


def _use(model: TrainedBaseline) -> str:
    if _is_neural(model):
        return "all used for the final model: the validation speakers named above for early stopping only"
    return "all used for the final model"


def _evaluation_section(cv: BaselineCVResult | None, neural: bool = False) -> str:
    if cv is None:
        return ("No cross-validation results were given when this model was saved. Run "
                "`ser-hf baseline ... --save-model` to evaluate and save in one go.")
    folds = cv.aggregate["folds"]
    within = (
        "the network was trained on the training speakers, early-stopped on a speaker-disjoint part of them, "
        "and scored on the held-out speakers" if neural else
        "hyperparameters were chosen by speaker-grouped inner cross-validation on the training speakers only, "
        "then the model was refit on them and scored on the held-out speakers"
    )
    protocol = (
        f"Speaker-independent protocol: {len(folds)} outer folds ({', '.join(str(f) for f in folds)}); no "
        f"speaker is in both the training and test part of a fold. Within each fold, {within}. The final model "
        f"repeats that procedure on all clips, so these figures estimate its accuracy on new speakers of the "
        f"same corpus."
    )
    return "\n\n".join([protocol, folds_to_markdown(cv.aggregate, heading_level=3).strip(),
                        cv.pooled.to_markdown(heading_level=3).strip()])


def _usage(directory: str, neural: bool = False) -> str:
    how = "safetensors, checked against its config" if neural else "skops, trusting only the baseline's types"
    return (
        "```python\n"
        "from ser_hf.baseline.model import load_baseline\n\n"
        f"model = load_baseline({directory!r})  # {how}\n"
        "model.predict([\"clip.wav\"])          # emotion names\n"
        "model.predict_proba([\"clip.wav\"])    # probabilities, columns in model.labels order\n"
        "```"
    )


def baseline_card(model: TrainedBaseline, cv: BaselineCVResult | None = None, directory: str = "MODEL_DIR") -> str:
    """The model card of ``model`` as Markdown with a Hub metadata header.

    Args:
        model: The trained baseline.
        cv: Its cross-validation result (same settings), reported with confidence intervals.
        directory: The folder name shown in the usage example.

    Returns:
        The card text.
    """
    from huggingface_hub import ModelCardData

    corpus = model.metadata.get("corpus") or "unknown corpus"
    neural = _is_neural(model)
    header = ModelCardData(
        library_name="pytorch" if neural else "sklearn", pipeline_tag="audio-classification",
        tags=["ser_hf", "speech-emotion-recognition", "safetensors" if neural else "skops", "baseline",
              model.classifier or "sklearn"],
    ).to_yaml()
    what = ("a small network trained from scratch on its frame sequence" if neural else
            "a clip's hand-crafted acoustic features with a scikit-learn classifier")
    parts = [
        f"---\n{header}\n---",
        f"# {'Neural' if neural else 'Classic-feature'} {model.classifier} baseline for speech emotion recognition "
        f"({corpus})",
        f"Predicts one of {len(model.labels)} emotions ({', '.join(model.labels)}) from {what}. Made with ser_hf "
        f"(`ser-hf baseline`) as a reference point for its speech-transformer models.",
        "## Features", markdown_table(["Setting", "Value"], _sequence_rows(model) if neural else _feature_rows(model)),
        "## Network" if neural else "## Classifier", _network_section(model) if neural else _classifier_section(model),
        "## Training data", _data_section(model),
        "## Evaluation", _evaluation_section(cv, neural),
        "## How to use", _usage(directory, neural),
        "## Limitations", _limitations(model),
    ]
    return "\n\n".join(parts) + "\n"


def write_baseline_card(
    directory: str | os.PathLike, model: TrainedBaseline, cv: BaselineCVResult | None = None
) -> Path:
    """Write :func:`baseline_card` to ``directory/README.md`` and return the path."""
    path = Path(directory) / "README.md"
    write_output_file(path, baseline_card(model, cv, directory=str(directory)))
    return path
