"""Speed-perturbed training copies for the frozen probe, compared over several speaker-to-fold assignments.

``probe_speed_copies`` trains the probe's linear fit on every training clip and on copies of it played faster or
slower (Kaldi-style speed perturbation: tempo and pitch change together, which moves a voice); test clips and
the inner CV's held-out clips stay unaltered. Whether that helps is a property of the corpus, and the difference
is about the size of what one fold assignment moves, so ``variant_comparison.compare_variants`` scores the probe
without copies (first, the baseline) and with them, on the same cached states, over the shared folds and 4 more
assignments, and records what the training speakers' own inner CV would choose. The copies' states come from
``ProbeMethod.speed_copies``, the code ``ser-hf cv`` trains them with.

Usage (``corpus[/emotions]:model:max_source_positions:factors``)::

    python benchmarks/speed_copies.py --configs ravdess:whisper-base:300:0.9,1.1 urdu:whisper-tiny.en:500:0.9,1.1
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from common import run_configs
from probe_accuracy import probe_run
from variant_comparison import Variant, compare_variants

from ser_hf.training.experiment import load_run_dataset, make_method


def run_config(spec: str) -> dict:
    corpus, model, positions, factors = spec.split(":")
    start = time.perf_counter()
    run = probe_run(spec, cache_dir=None, output_dir=tempfile.mkdtemp(prefix="ser_hf_speed_copies_"))
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress=False)
    features = np.asarray(method.features(dataset["audio"]), dtype=np.float64)
    copies = [np.asarray(copy, dtype=np.float64) for copy in method.speed_copies(dataset["audio"])]
    compared = compare_variants(spec, dataset, run.data, {"none": Variant(features), factors: Variant(features, copies)})
    return {"config": spec, "corpus": corpus, "model": model, "max_source_positions": int(positions) or 1500,
            "speed_factors": list(method.settings.speed_copies), **compared,
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "speed_copies", run_config)
