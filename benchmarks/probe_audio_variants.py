"""Other changes to the audio the frozen probe learns from, tried for issue 15 beside speed copies and not adopted.

``speed_copies.py`` measured the one that ships (``probe_speed_copies: [0.9, 1.1]`` in the RAVDESS recipes). This
script scores, with the same comparison (``variant_comparison.compare_variants``: the default probe's linear fit on
the shared folds and 4 more speaker-grouped assignments, and what the training speakers' own inner CV would choose),
the other candidates on the same corpus and backbone, each against the recipe's input without copies (first):

- ``pitch copies``: training copies pitch-shifted by -1.5 and +1.5 semitones at the same tempo (a voice change
  without the tempo change that speed perturbation brings; librosa's phase-vocoder pitch shift);
- ``speed + pitch copies``: both pairs of copies;
- ``speed copies``: the shipped 0.9x / 1.1x, for scale;
- ``trimmed 30 dB``: leading and trailing audio 30 dB below the peak trimmed (``trim_db: 30``) before the 6 s input,
  for training and test clips alike, so less of the mean-pooled window is silence;
- ``5 s input``: ``max_source_positions`` 250, for training and test clips alike (RAVDESS clips last 2.9-5.3 s).

    .venv/bin/python benchmarks/probe_audio_variants.py --configs ravdess:whisper-tiny.en:300 ravdess:whisper-base:300
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from common import run_configs, scratch_dir
from probe_accuracy import probe_run
from probe_layer_mix import cached_states
from variant_comparison import Variant, compare_variants

from ser_hf.audio import AudioPreprocessor
from ser_hf.training.experiment import make_method
from ser_hf.training.run_data import load_run_dataset

SPEED_FACTORS = (0.9, 1.1)
PITCH_STEPS = (-1.5, 1.5)
TRIM_DB = 30.0
SHORT_POSITIONS = 250


@dataclass
class PitchShifted:
    """A preprocessor whose output is ``steps`` semitones higher at the same tempo (cached apart by its fingerprint)."""

    base: AudioPreprocessor
    steps: float

    def __call__(self, audio, sampling_rate: int | None = None) -> np.ndarray:
        import librosa

        wave = self.base(audio, sampling_rate)
        return librosa.effects.pitch_shift(wave, sr=self.base.sampling_rate, n_steps=self.steps).astype(np.float32)

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}-pitch{self.steps:g}"


def states(spec: str, **overrides) -> np.ndarray:
    """The pooled states of the config's clips with recipe ``overrides`` (e.g. ``trim_db``)."""
    run = probe_run(spec, cache_dir=None, output_dir=scratch_dir("ser_hf_audio_variants_"), **overrides)
    dataset = load_run_dataset(run.data)
    method = make_method(run, dataset.features["label"].names, progress=False)
    return np.asarray(method.features(dataset["audio"]), dtype=np.float64)


def run_config(spec: str) -> dict:
    corpus_part, model, positions = spec.split(":")
    start = time.perf_counter()
    data = cached_states(f"{spec}:{','.join(f'{factor:g}' for factor in SPEED_FACTORS)}")
    method = data.method
    pitch = [np.asarray(method.features(data.dataset["audio"], PitchShifted(method.base_preprocessor(), steps)),
                        dtype=np.float64) for steps in PITCH_STEPS]
    variants = {
        "none": Variant(data.features),
        "pitch copies": Variant(data.features, pitch),
        "speed + pitch copies": Variant(data.features, data.copies + pitch),
        "speed copies": Variant(data.features, data.copies),
        f"trimmed {TRIM_DB:g} dB": Variant(states(spec, trim_db=TRIM_DB)),
        f"{SHORT_POSITIONS // 50} s input": Variant(states(f"{corpus_part}:{model}:{SHORT_POSITIONS}")),
    }
    compared = compare_variants(spec, data.dataset, data.run.data, variants)
    return {"config": spec, "speed_factors": list(SPEED_FACTORS), "pitch_steps": list(PITCH_STEPS),
            "trim_db": TRIM_DB, "short_max_source_positions": SHORT_POSITIONS, **compared,
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_audio_variants", run_config)
