"""`ser-hf train` and `ser-hf cv` reports show who (per speaker and gender) and the ECE before/after scaling."""

from __future__ import annotations

import json

import pytest

from ser_hf.cli import main
from ser_hf.testing.corpora import make_corpus_tree
from ser_hf.testing.models import tiny_backbone


@pytest.mark.usefixtures("single_torch_thread")
def test_train_and_cv_reports_show_who_and_the_calibration(tmp_path):
    corpus = make_corpus_tree("urdu", tmp_path / "urdu", duration=0.3)
    common = ["--corpus", "urdu", "--data_dir", str(corpus), "--model_name_or_path",
              str(tiny_backbone("whisper", tmp_path / "tiny-whisper")), "--max_source_positions", "50",
              "--probe_projector_size", "8", "--embedding_cache_dir", str(tmp_path / "cache")]
    assert main(["train", *common, "--output_dir", str(tmp_path / "model")]) == 0
    report = json.loads((tmp_path / "model" / "eval" / "report.json").read_text())
    assert report["by_speaker"]["gender_note"] is None and set(report["by_speaker"]["genders"]) <= {"female", "male"}
    assert report["temperature_scaling"]["temperature"] > 0
    assert (tmp_path / "model" / "eval" / "speakers.png").is_file()
    assert "#### Per gender" in (tmp_path / "model" / "README.md").read_text()
    assert main(["cv", *common, "--num_folds", "2", "--output_dir", str(tmp_path / "cv")]) == 0
    summary = json.loads((tmp_path / "cv" / "cv" / "cv_summary.json").read_text())
    assert set(summary["pooled"]["by_speaker"]["genders"]) == {"female", "male"}
    assert "expected_calibration_error_before_scaling" in summary["aggregate"]["metrics"]
    fold = json.loads((tmp_path / "cv" / "cv" / summary["folds"][0] / "report.json").read_text())
    assert fold["by_speaker"]["gender_note"] is None and fold["temperature_scaling"] is not None
