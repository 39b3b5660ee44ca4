#!/usr/bin/env python
"""Train or cross-validate a speech emotion recognition model, in the style of the transformers examples.

    python recipes/run_ser.py recipes/urdu/whisper-base-probe.yaml --output_dir outputs/urdu
    python recipes/run_ser.py recipes/ravdess/whisper-base-probe.yaml --do_cv --emotions 4class
    accelerate launch --multi_gpu --num_processes 2 recipes/run_ser.py recipes/ravdess/wavlm-base-plus-finetune.yaml

The first argument may be a YAML/JSON recipe; every ``--key value`` after it overrides the recipe
(keys of DataArguments, ModelArguments and SERTrainingArguments). ``ser-hf train`` / ``ser-hf cv`` run
the same code.
"""

from __future__ import annotations

import logging
import sys

from ser_hf.evaluation import folds_to_markdown
from ser_hf.training.experiment import cross_validate, train
from ser_hf.training.recipes import parse_run


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    do_cv = "--do_cv" in argv
    argv = [arg for arg in argv if arg != "--do_cv"]
    recipe = argv[0] if argv and not argv[0].startswith("-") else None
    run = parse_run(recipe, argv[1:] if recipe else argv)
    if do_cv:
        result = cross_validate(run)
        print(folds_to_markdown(result.aggregate))
        print(result.pooled.format_table())
    else:
        result = train(run)
        if result.report is not None:
            print(result.report.format_table())
        print(f"checkpoint: {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
