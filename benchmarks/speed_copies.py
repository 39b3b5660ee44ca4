"""Speed-perturbed training copies for the frozen probe, compared over several speaker-to-fold assignments.

``probe_speed_copies`` trains the probe's linear fit on every training clip and on copies of it played faster or
slower (Kaldi-style speed perturbation: tempo and pitch change together, which moves a voice); test clips and
the inner CV's held-out clips stay unaltered. Whether that helps is a property of the corpus, and the difference
is about the size of what one fold assignment moves, so ``variant_comparison.compare_variants`` scores the probe
without copies (first, the baseline) and with them, on the same cached states, over the shared folds and 4 more
assignments, and records what the training speakers' own inner CV would choose. The copies' states come from
``ProbeMethod.training_copies``, the code ``ser-hf cv`` trains them with.

Usage (``corpus[/emotions]:model:max_source_positions:factors``)::

    python benchmarks/speed_copies.py --configs ravdess:whisper-base:300:0.9,1.1 urdu:whisper-tiny.en:500:0.9,1.1
"""

from __future__ import annotations

import time

from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import Variant, compare_variants


def run_config(spec: str) -> dict:
    corpus, model, positions, factors = spec.split(":")
    start = time.perf_counter()
    data = cached_states(spec)
    compared = compare_variants(spec, data.dataset, data.run.data,
                                {"none": Variant(data.features), factors: Variant(data.features, data.copies)})
    return {"config": spec, "corpus": corpus, "model": model, "max_source_positions": int(positions) or 1500,
            "speed_factors": data.speed_factors, **compared, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "speed_copies", run_config)
