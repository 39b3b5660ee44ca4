"""Fine-tuning accuracy: a recipe's speaker-grouped cross-validation, as ``ser-hf cv RECIPE`` runs it.

Runs :func:`ser_hf.training.experiment.cross_validate` on a fine-tuning recipe (with ``--set key=value``
overrides, e.g. ``bf16=true`` on a GPU) and records UA/WA/macro-F1 as mean ± std over folds, the pooled
out-of-fold UA with its speaker-level bootstrap interval and confusion matrix, per-fold figures and the
wall time. The result file is rewritten after every fold, so a run stopped early keeps what it finished.
Full fine-tuning is a GPU job (see the recipes' headers); the result records the accelerator it ran on.

    .venv/bin/python benchmarks/finetune_accuracy.py recipes/ravdess/whisper-base-finetune.yaml \\
        --set bf16=true --set dataloader_num_workers=12 --name finetune_accuracy_ravdess8
"""

from __future__ import annotations

import argparse
import tempfile
import time

import yaml
from common import SHARED_DATA, cv_scores, parse_overrides, write_result

from ser_hf.training.experiment import cross_validate
from ser_hf.training.recipes import parse_run


def _fold_row(report) -> dict:
    return {"fold": report.split, "test_clips": report.num_samples,
            **{key: round(getattr(report, key), 4) for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1")}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a fine-tuning recipe YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value (repeatable)")
    parser.add_argument("--name", default="finetune_accuracy", help="result file name (benchmarks/results/NAME.json)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        recipe = yaml.safe_load(open(args.recipe))
        # The recipe's data_dir is relative to a checkout beside ../shared; the benchmark reads SHARED_DATA.
        values = {"data_dir": str(SHARED_DATA / recipe["corpus"]), "output_dir": f"{tmp}/run", **overrides}
        run = parse_run(args.recipe, **values)
        start, folds = time.perf_counter(), []
        results = {"recipe": args.recipe, "overrides": overrides, "folds": folds}

        def save_fold(report) -> None:
            folds.append(_fold_row(report))
            results["seconds_so_far"] = round(time.perf_counter() - start, 1)
            print(f"fold {report.split}: UA {report.unweighted_accuracy:.4f} ({results['seconds_so_far']} s)", flush=True)
            write_result(args.name, results)

        cv = cross_validate(run, progress=False, on_fold=save_fold)
    results.update({"seconds": round(time.perf_counter() - start, 1), **cv_scores(cv)})
    results.pop("seconds_so_far", None)
    write_result(args.name, results)


if __name__ == "__main__":
    main()
