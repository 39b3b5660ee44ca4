"""``ser-hf demo``: the whole path in one command, on a fresh machine with no network and no corpus.

It trains the frozen probe of the offline ``whisper-tiny.en`` preset on a speaker-independent split
of the built-in synthetic corpus (or a real corpus you name), evaluates it on unseen speakers, saves a
standard checkpoint, and classifies one test clip through ``transformers.pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_hf.evaluation import EvaluationReport
from ser_hf.models.factory import whisper_positions_for
from ser_hf.training.experiment import load_run_dataset, train
from ser_hf.training.recipes import parse_run


@dataclass
class DemoResult:
    checkpoint: Path
    report: EvaluationReport
    sample_path: str
    sample_label: str
    sample_prediction: list[dict]


def run_demo(
    corpus: str = "synthetic",
    data_dir: str | None = None,
    model: str = "whisper-tiny.en",
    output_dir: str = "outputs/demo",
    progress: bool = True,
    **overrides,
) -> DemoResult:
    """Train, evaluate, save and try a probe classifier; see the module docstring.

    Whisper backbones run in their variable-length mode sized to the corpus's longest clip, so no
    compute goes to 30 s of padding.
    """
    run = parse_run(None, corpus=corpus, data_dir=data_dir, model_name_or_path=model, mode="probe",
                    output_dir=output_dir, **overrides)
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
    return DemoResult(result.checkpoint, result.report, test["audio"], label, prediction)


def _test_clip(dataset, report: EvaluationReport) -> dict:
    """A clip from a test speaker (the report's speakers are unseen in training)."""
    speakers = set(report.metadata.get("speakers", []))
    rows = [i for i, s in enumerate(dataset["speaker"]) if s in speakers] or [len(dataset) - 1]
    return dataset[int(np.random.default_rng(0).choice(rows))]
