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

import tempfile
import time
from dataclasses import dataclass

import numpy as np
from common import RECIPE_SEED, SHARED_DATA, run_configs
from variant_comparison import Variant, compare_variants

from ser_hf.audio import AudioPreprocessor
from ser_hf.models.pooling import pooled_hidden_states
from ser_hf.training.experiment import load_run_dataset, make_method
from ser_hf.training.recipes import parse_run

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


def probe_method(corpus_part: str, model: str, positions: int, **overrides):
    corpus, _, emotions = corpus_part.partition("/")
    run = parse_run(None, corpus=corpus, data_dir=str(SHARED_DATA / corpus), emotions=emotions or None,
                    model_name_or_path=model, mode="probe", max_source_positions=positions,
                    output_dir=tempfile.mkdtemp(prefix="ser_hf_audio_variants_"), seed=RECIPE_SEED, **overrides)
    dataset = load_run_dataset(run.data)
    return run, dataset, make_method(run, dataset.features["label"].names, progress=False)


def states(method, dataset) -> np.ndarray:
    return np.asarray(method.features(dataset["audio"]), dtype=np.float64)


def run_config(spec: str) -> dict:
    corpus_part, model, positions = spec.split(":")
    start = time.perf_counter()
    run, dataset, method = probe_method(corpus_part, model, int(positions), probe_speed_copies=list(SPEED_FACTORS))
    clips = states(method, dataset)
    speed = [np.asarray(copy, dtype=np.float64) for copy in method.speed_copies(dataset["audio"])]
    base = method.preprocessor or AudioPreprocessor(sampling_rate=method.feature_extractor.sampling_rate)
    pitch = [np.asarray(pooled_hidden_states(method.encoder(), method.feature_extractor, list(dataset["audio"]),
                                             preprocessor=PitchShifted(base, steps), cache_dir=method.cache_dir,
                                             batch_size=method.batch_size, progress=False), dtype=np.float64)
             for steps in PITCH_STEPS]
    _, trimmed_dataset, trimmed = probe_method(corpus_part, model, int(positions), trim_db=TRIM_DB)
    _, short_dataset, short = probe_method(corpus_part, model, SHORT_POSITIONS)
    variants = {
        "none": Variant(clips),
        "pitch copies": Variant(clips, pitch),
        "speed + pitch copies": Variant(clips, speed + pitch),
        "speed copies": Variant(clips, speed),
        f"trimmed {TRIM_DB:g} dB": Variant(states(trimmed, trimmed_dataset)),
        f"{SHORT_POSITIONS // 50} s input": Variant(states(short, short_dataset)),
    }
    compared = compare_variants(spec, dataset, run.data, variants)
    return {"config": spec, "speed_factors": list(SPEED_FACTORS), "pitch_steps": list(PITCH_STEPS),
            "trim_db": TRIM_DB, "short_max_source_positions": SHORT_POSITIONS, **compared,
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "probe_audio_variants", run_config)
