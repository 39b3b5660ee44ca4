"""Noisy and louder/quieter training copies for the frozen probe, compared over several speaker-to-fold assignments.

``probe_noise_copies`` (``ser_hf.audio.NoiseAdded``) trains the probe's linear fit on every training clip and on
a copy of it with white noise at a fixed SNR (20 dB); this script measured whether it should ship, and a
gain copy (the clip 6 dB quieter and 6 dB louder, which moves Whisper's log-mel input, whose level is not
normalised) beside it. Test clips and the inner CV's held-out clips stay unaltered. As in ``speed_copies.py``,
``variant_comparison.compare_variants`` scores every variant on the same cached states over the shared folds
and 4 more assignments, against the recipe's own training input (first: with its speed copies where the config
names them), and records what the training speakers' own inner CV would choose.

Usage (``corpus[/emotions]:model:max_source_positions[:speed factors]``)::

    python benchmarks/noise_copies.py --configs ravdess:whisper-base:300:0.9,1.1 urdu:whisper-tiny.en:500
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import Variant, compare_variants

from ser_hf.audio import AudioPreprocessor, NoiseAdded

NOISE_SNR_DB = 20.0
GAIN_DB = (-6.0, 6.0)


@dataclass
class GainChanged:
    """A preprocessor whose output is ``db`` decibels louder (cached apart by its fingerprint)."""

    base: AudioPreprocessor
    db: float

    def __call__(self, audio, sampling_rate: int | None = None) -> np.ndarray:
        return (self.base(audio, sampling_rate) * 10 ** (self.db / 20)).astype(np.float32)

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}-gain{self.db:g}"


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    method = data.method

    def states(preprocessor) -> np.ndarray:
        return np.asarray(method.features(data.dataset["audio"], preprocessor), dtype=np.float64)

    noise = [states(NoiseAdded(method.base_preprocessor(), NOISE_SNR_DB))]
    gain = [states(GainChanged(method.base_preprocessor(), db)) for db in GAIN_DB]
    recipe = "speed copies" if data.copies else "none"
    variants = {
        recipe: Variant(data.features, data.copies),
        f"{recipe} + noise copies": Variant(data.features, data.copies + noise),
        f"{recipe} + gain copies": Variant(data.features, data.copies + gain),
        f"{recipe} + noise and gain copies": Variant(data.features, data.copies + noise + gain),
    }
    compared = compare_variants(spec, data.dataset, data.run.data, variants)
    return {"config": spec, "speed_factors": data.speed_factors, "noise_snr_db": NOISE_SNR_DB,
            "gain_db": list(GAIN_DB), **compared, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "noise_copies", run_config)
