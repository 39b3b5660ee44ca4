"""Whisper on short emotion clips: 30 s padding against the variable-length mode, on the same data.

HF's Whisper encoder only takes 30 s of input (3000 mel frames); emotion clips last 1-10 s. The model
factory's variable-length mode (``ModelOptions(max_source_positions=N)``, N = 50 per second) keeps the
first N positional embeddings and pads to N / 50 s instead. This script measures what that saves on
CPU: time per batch of 8 RAVDESS clips (3-5 s) for a frozen forward pass, with feature extraction timed
separately. The same clips go through every mode; after one warm-up round the modes are timed in
``--repeats`` interleaved rounds (``benchmarks/common.py``: min and median per mode, speed-ups from both;
the run first waits for an idle machine and records the load average before and after).

Weights: the real OpenAI Whisper from ``ser_hf.models.presets.prepare_preset("whisper-<name>")`` (converted
from the pip-installed faster-whisper packages, see ENVIRONMENT.md); if that is unavailable, a randomly
initialised model with the same dimensions. Timing depends on the dimensions only; the result file
records which weights were used.

Sections: only ``timing`` exists. The accuracy side of the comparison (UA with 30 s padding vs cut
positions, which needs training) is meant to become a second function ``accuracy_section(checkpoint,
args) -> dict`` registered in ``SECTIONS``, writing its figures beside the timings.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/whisper_short_clips.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/whisper_short_clips.py --models tiny.en --repeats 5
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    add_timing_arguments,
    speedup,
    time_interleaved,
    timing_conditions,
    write_result,
)

from ser_hf.audio import load_audio  # noqa: E402
from ser_hf.errors import SERError  # noqa: E402
from ser_hf.models.factory import ModelOptions, build_model, whisper_positions_for  # noqa: E402

LABELS = ["neutral", "happy", "sad", "angry"]  # the head is random and untrained: only its cost matters

# Encoder dimensions of the real models, used for random weights when the preset cannot be prepared.
MODELS = {
    "tiny.en": {"d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536},
    "base": {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048},
}


def load_clips(count: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``count`` RAVDESS clips (16 kHz float32 arrays), a fixed random sample over actors and emotions."""
    root = SHARED_DATA / "ravdess"
    files = sorted(root.glob("Actor_*/*.flac")) + sorted(root.glob("Actor_*/*.wav"))
    if len(files) < count:
        raise SystemExit(f"need {count} RAVDESS clips under {root}, found {len(files)}; see the corpus docs.")
    chosen = sorted(random.Random(seed).sample(files, count))
    return [(path.name, load_audio(path, 16000)) for path in chosen]


def _random_checkpoint(name: str, workdir: Path) -> tuple[Path, str]:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    config = WhisperConfig(**MODELS[name], decoder_layers=1, num_mel_bins=80)
    torch.manual_seed(0)
    out = workdir / f"{name}-random"
    WhisperForAudioClassification(config).save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out, f"random initialisation with whisper {name}'s encoder dimensions {MODELS[name]}"


def resolve_checkpoint(name: str, workdir: Path) -> tuple[Path, str]:
    """A checkpoint directory for ``name`` and a description of its weights: the real preset when possible."""
    try:
        presets = importlib.import_module("ser_hf.models.presets")
    except ImportError:  # keeps the script usable on a checkout without the converter
        return _random_checkpoint(name, workdir)
    try:
        path = Path(presets.prepare_preset(f"whisper-{name}"))
    except (SERError, TypeError, OSError) as err:
        print(f"[{name}] preset unavailable ({err}); using random weights", file=sys.stderr)
        return _random_checkpoint(name, workdir)
    record = path / "conversion.json"
    source = json.loads(record.read_text()).get("source", "?") if record.is_file() else "?"
    return path, f"OpenAI whisper {name} (ser_hf preset whisper-{name}, converted from {source})"


def timing_section(checkpoint: Path, clips: list, args: argparse.Namespace) -> dict:
    """Time feature extraction and the frozen forward pass of one batch in every mode."""
    waves = [wave for _, wave in clips]
    longest = max(len(wave) for wave in waves) / 16000
    modes = {"pad_30s": None, "cut_10s": whisper_positions_for(10), "cut_to_longest_clip": whisper_positions_for(longest)}
    built = {}
    for mode, positions in modes.items():
        options = ModelOptions(freeze_backbone=True, max_source_positions=positions)
        model, extractor = build_model(checkpoint, LABELS, options)
        built[mode] = (model.eval(), extractor, extractor(waves, sampling_rate=16000, return_tensors="pt"))
    with torch.inference_mode():
        forward, _ = time_interleaved({mode: (lambda m=m, f=f: m(**f)) for mode, (m, _, f) in built.items()},
                                      args.repeats)
    features, _ = time_interleaved(
        {mode: (lambda e=e: e(waves, sampling_rate=16000, return_tensors="pt")) for mode, (_, e, _) in built.items()},
        args.repeats)
    results = {}
    for mode, (model, extractor, inputs) in built.items():
        results[mode] = {
            "max_source_positions": model.config.max_source_positions,
            "padded_seconds": extractor.chunk_length,
            "mel_frames": int(inputs["input_features"].shape[-1]),
            "forward": forward[mode],
            "feature_extraction": features[mode],
            "forward_speedup_vs_30s": speedup(forward["pad_30s"]["seconds"], forward[mode]["seconds"]),
        }
        print(f"  {mode}: forward {forward[mode]['seconds']['median']:.3f} s/batch (median of {args.repeats}), "
              f"x{results[mode]['forward_speedup_vs_30s']['median']} vs 30 s")
    return results


SECTIONS = {"timing": timing_section}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"], choices=sorted(MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    add_timing_arguments(parser)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=sorted(SECTIONS))
    args = parser.parse_args(argv)

    clips = load_clips(args.batch_size)
    results = {
        "batch": [{"file": name, "seconds": round(len(wave) / 16000, 3)} for name, wave in clips],
        "torch_threads": torch.get_num_threads(),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {name: resolve_checkpoint(name, Path(tmp)) for name in args.models}
        with timing_conditions(args, "one batch per mode, modes interleaved, after one warm-up round") as conditions:
            for name, (checkpoint, weights) in checkpoints.items():
                print(f"[{name}] {weights}")
                entry = {"weights": weights}
                for section in args.sections:
                    entry[section] = SECTIONS[section](checkpoint, clips, args)
                results["models"][name] = entry
    results["timing"] = conditions
    write_result("whisper_short_clips", results)


if __name__ == "__main__":
    main()
