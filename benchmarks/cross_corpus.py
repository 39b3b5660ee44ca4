"""Train on one corpus, evaluate on another (speaker- and corpus-independent), through the CLI's code.

Default: a whisper-base frozen probe trained on RAVDESS's 4 shared emotions (neutral, happy, sad,
angry; acted English), evaluated on all of URDU (natural Urdu) -- and, for reference, the same
model's in-corpus test report on held-out RAVDESS actors.

    .venv/bin/python benchmarks/cross_corpus.py [--model whisper-base] [--positions 300]
"""

from __future__ import annotations

import argparse
import time

from common import SHARED_DATA, report_scores, scratch_dir, write_result

from ser_hf.evaluation.corpus_eval import evaluate_checkpoint
from ser_hf.training.experiment import train
from ser_hf.training.recipes import parse_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--positions", type=int, default=300, help="Whisper max_source_positions (50 per second)")
    parser.add_argument("--source", default="ravdess")
    parser.add_argument("--target", default="urdu")
    args = parser.parse_args()
    out = scratch_dir("ser_hf_cross_")
    run = parse_run(None, corpus=args.source, data_dir=str(SHARED_DATA / args.source), emotions="4class",
                    model_name_or_path=args.model, mode="probe", max_source_positions=args.positions,
                    output_dir=f"{out}/model")
    start = time.perf_counter()
    trained = train(run, progress=False)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    target = evaluate_checkpoint(trained.checkpoint, args.target, SHARED_DATA / args.target, out_dir=f"{out}/eval",
                                 progress=False)
    write_result(f"cross_corpus_{args.source}_to_{args.target}", {
        "model": args.model, "max_source_positions": args.positions, "mode": "probe",
        "train": {"corpus": args.source, "emotions": "4class", "seconds": round(train_seconds, 1),
                  "in_corpus_test": report_scores(trained.report)},
        "evaluate": {"corpus": args.target, "seconds": round(time.perf_counter() - start, 1),
                     "unmapped": target.metadata.get("unmapped"), **report_scores(target)},
    })


if __name__ == "__main__":
    main()
