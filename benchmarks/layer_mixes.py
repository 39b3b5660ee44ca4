"""A fourth layer-mix candidate for the probe's inner CV, the lower half of the layers, over fold assignments and
inner-CV seeds.

The default probe fit chooses its layer mix from ``uniform``, ``balanced`` and ``balanced-top`` (the upper half of
the layers, where emotion lives in most speech encoders). On URDU, Urdu speech through the English-only
whisper-tiny.en, the lower layers scored best when each layer was tried alone, so this script measures
``balanced-bottom`` (the lower half, each layer over its typical scale; ``probe_layer_mixes``) as a further
candidate. ``variant_comparison.compare_variants`` scores both candidate sets on the same cached states (with the
config's training copies) over the shared folds and 4 more speaker-grouped assignments, once for each inner-CV
seed in :data:`INNER_SEEDS`: which mix the inner CV picks is itself noisy, and one seed alone showed a gain on
URDU 10 s input that other seeds did not. A row pools every (assignment, seed) run; the differences are paired
by assignment and seed.

Usage (``corpus[/emotions]:model:max_source_positions[:speed factors[:noise SNRs]]``)::

    python benchmarks/layer_mixes.py --configs urdu:whisper-tiny.en:500 ravdess:whisper-base:300:0.9,1.1:20
"""

from __future__ import annotations

import time

from common import run_configs
from probe_layer_mix import cached_states
from variant_comparison import Variant, compare_variants, variant_rows

from ser_hf.training.linear_probe import DEFAULT_LAYER_MIXES

WITH_BOTTOM = (*DEFAULT_LAYER_MIXES, "balanced-bottom")
INNER_SEEDS = (0, 1, 2, 3, 4)


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    data = cached_states(spec)
    variants = {
        "default mixes": Variant(data.features, data.copies, DEFAULT_LAYER_MIXES),
        "default mixes + balanced-bottom": Variant(data.features, data.copies, WITH_BOTTOM),
    }
    by_seed = {seed: compare_variants(spec, data.dataset, data.run.data, variants, inner_seed=seed, choose=False)
               for seed in INNER_SEEDS}
    pooled = {name: [ua for seed in INNER_SEEDS for ua in by_seed[seed]["rows"][name]["pooled_ua_by_assignment"]]
              for name in variants}
    first = by_seed[INNER_SEEDS[0]]
    return {"config": spec, "candidates": {name: list(v.mixes) for name, v in variants.items()},
            **{key: first[key] for key in ("labels", "clips", "speakers", "folds_per_assignment", "assignments", "fit")},
            "inner_seeds": list(INNER_SEEDS), "runs_per_variant": len(pooled["default mixes"]),
            "rows": variant_rows(pooled),
            "by_inner_seed": {str(seed): result["rows"] for seed, result in by_seed.items()},
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "layer_mixes", run_config)
