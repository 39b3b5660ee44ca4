"""Fine-tuning throughput: ser_hf's training path against the transformers example's configuration.

Same model (the whisper-tiny.en preset, real OpenAI weights), same data (URDU clips, 1-3 s, by default), same
machine, same batch size, learning rate and optimiser; what differs is the data path:

- ``example``: the configuration of transformers' ``examples/pytorch/audio-classification/
  run_audio_classification.py``: clips randomly subsampled to ``max_length_seconds`` (20 s, so whole URDU
  clips), the feature extractor applied as is (Whisper: every clip padded to 30 s, 3000 mel frames), random
  batches, plain cross-entropy, the stock ``transformers.Trainer``. Audio is decoded with soundfile here too
  (the example's ``datasets.Audio`` decoding needs torchcodec, which does not install here).
- ``ser_hf``: :class:`~ser_hf.training.finetune.FinetuneMethod` / ``SERTrainer``: Whisper's variable-length
  mode (``max_source_positions`` covering the longest clip, here 3 s), batches grouped by duration and
  padded to their longest clip (for Whisper: to the fixed 3 s input), class-weighted loss. No augmentation.

Throughput: ``--repeats`` rounds, the two paths in alternating order (a fresh trainer each time), each
``--warmup`` steps, then ``--steps`` timed steps (step end to step end, so decoding, feature extraction,
forward, backward and the optimiser all count); min and median seconds per training sample over the rounds,
speed-ups from both (``benchmarks/common.py``; the run first waits for an idle machine and records the load
average before and after). Given by wall clock and by CPU time of this process: the machine is shared, and
CPU seconds are hardly inflated by other jobs. On a GPU
(used automatically when CUDA is available; ``--bf16`` for mixed precision) only the wall-clock figure means
anything, and ``--dataloader-workers`` decode and extract features beside the training loop.

Accuracy (``--budget-cpu-s`` > 0): each path then trains on the speaker-independent training part of URDU
for the same CPU-time budget and is scored (UA) on clips of held-out speakers. With a budget of minutes on a
CPU this is a smoke-scale comparison of what each path achieves for equal compute, not a model-quality figure.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_throughput.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_throughput.py --steps 3 --budget-cpu-s 0
    # on a GPU machine:
    python benchmarks/finetune_throughput.py --corpus ravdess --clips 512 --batch-size 32 --warmup 3 --steps 10 \
        --budget-cpu-s 0 --bf16 --dataloader-workers 8 --name finetune_throughput_gpu
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import Trainer, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    add_timing_arguments,
    gpu_peak_mib,
    interleaved,
    load_average,
    speedup,
    summarize,
    timing_conditions,
    write_result,
)

from ser_hf.audio import load_audio  # noqa: E402
from ser_hf.corpora import load_corpus  # noqa: E402
from ser_hf.evaluation.metrics import compute_ser_metrics  # noqa: E402
from ser_hf.models.factory import ModelOptions, build_model, whisper_positions_for  # noqa: E402
from ser_hf.models.presets import resolve_model_path  # noqa: E402
from ser_hf.splits import speaker_split  # noqa: E402
from ser_hf.training.arguments import SERTrainingArguments  # noqa: E402
from ser_hf.training.finetune import FinetuneMethod  # noqa: E402

EXAMPLE_MAX_LENGTH_SECONDS = 20.0  # run_audio_classification.py's default


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StepClock(TrainerCallback):
    """Records wall and CPU time at every step end; optionally stops training after a CPU-time budget."""

    def __init__(self, budget_cpu_s: float | None = None):
        self.marks: list[tuple[float, float]] = []
        self.budget = budget_cpu_s
        self.start_cpu = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_cpu = _cpu_seconds()

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append((time.perf_counter(), _cpu_seconds()))
        if self.budget is not None and self.marks[-1][1] - self.start_cpu >= self.budget:
            control.should_training_stop = True


def example_collate(extractor):
    """The example's preprocessing: random subsample to 20 s, then the feature extractor as configured."""
    rng = np.random.default_rng(0)

    def collate(rows):
        waves = []
        for row in rows:
            wave = load_audio(row["audio"])
            limit = int(EXAMPLE_MAX_LENGTH_SECONDS * 16000)
            start = int(rng.integers(0, wave.size - limit + 1)) if wave.size > limit else 0
            waves.append(wave[start:start + limit])
        batch = dict(extractor(waves, sampling_rate=16000, return_tensors="pt"))
        batch.pop("attention_mask", None)
        if "label" in rows[0]:
            batch["labels"] = torch.tensor([row["label"] for row in rows])
        return batch

    return collate


def _arguments(out: Path, args: argparse.Namespace, **values) -> SERTrainingArguments:
    common = {"output_dir": str(out), "per_device_train_batch_size": args.batch_size, "learning_rate": args.lr,
              "lr_scheduler_type": "constant", "save_strategy": "no", "eval_strategy": "no", "report_to": "none",
              "disable_tqdm": True, "logging_strategy": "no", "seed": 0,
              "dataloader_num_workers": args.dataloader_workers, "bf16": args.bf16}
    return SERTrainingArguments(**{**common, **values})


def make_trainer(path: str, checkpoint: Path, labels, train, out: Path, args, clock, **values):
    """A trainer for ``path`` ('example' or 'ser_hf') on ``train``, with ``clock`` attached."""
    if path == "example":
        model, extractor = build_model(checkpoint, labels, ModelOptions())  # 1500 positions: 30 s input
        trainer = Trainer(model=model, args=_arguments(out, args, train_sampling_strategy="random", **values),
                          train_dataset=train, data_collator=example_collate(extractor), callbacks=[clock])
        return trainer, (model, extractor)
    positions = whisper_positions_for(max(train["duration"]))
    method = FinetuneMethod(checkpoint, labels, ModelOptions(max_source_positions=positions),
                            _arguments(out, args, train_sampling_strategy="group_by_length", **values))
    trainer = method.make_trainer(train)
    trainer.add_callback(clock)
    return trainer, method


def _timed_steps(path: str, checkpoint: Path, labels, clips, out: Path, args) -> dict:
    """Wall and CPU seconds of ``args.steps`` steps of ``path`` after ``args.warmup`` steps, with a fresh trainer."""
    clock = StepClock()
    gpu_peak_mib(reset=True)
    trainer, _ = make_trainer(path, checkpoint, labels, clips, out, args, clock, max_steps=args.warmup + args.steps)
    trainer.train()
    (wall0, cpu0), (wall1, cpu1) = clock.marks[args.warmup - 1], clock.marks[-1]
    return {"wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "peak_gpu_mib": gpu_peak_mib()}


def throughput(checkpoint: Path, labels, clips, out: Path, args) -> dict:
    """Seconds per training sample of both paths over ``args.repeats`` interleaved rounds, and the speed-up."""
    samples = args.steps * args.batch_size
    runs: dict[str, list[dict]] = {"example": [], "ser_hf": []}
    for round_, path in interleaved(list(runs), args.repeats):
        runs[path].append(_timed_steps(path, checkpoint, labels, clips, out / f"{path}-{round_}", args))
        print(f"  round {round_ + 1} {path:8s} {samples / runs[path][-1]['wall_s']:7.3f} samples/s wall "
              f"({samples} samples, load {load_average()})", flush=True)
    result = {}
    for path, timed in runs.items():
        wall = summarize([run["wall_s"] / samples for run in timed])
        cpu = summarize([run["cpu_s"] / samples for run in timed])
        result[path] = {"timed_steps": args.steps, "samples": samples, "seconds_per_sample": wall,
                        "cpu_seconds_per_sample": cpu, "samples_per_s_wall": round(1 / wall["median"], 3),
                        "samples_per_cpu_s": round(1 / cpu["median"], 3),
                        "peak_gpu_mib": max((run["peak_gpu_mib"] for run in timed if run["peak_gpu_mib"]), default=None)}
    result["speedup"] = {
        "samples_per_s_wall": speedup(result["example"]["seconds_per_sample"], result["ser_hf"]["seconds_per_sample"]),
        "samples_per_cpu_s": speedup(result["example"]["cpu_seconds_per_sample"],
                                     result["ser_hf"]["cpu_seconds_per_sample"]),
    }
    return result


def _predict(path: str, trained, test, batch_size: int) -> np.ndarray:
    if path == "ser_hf":
        return trained.predict_proba(test).argmax(axis=1)
    model, extractor = trained
    collate, predictions = example_collate(extractor), []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(test), batch_size):
            rows = [{"audio": test[i]["audio"]} for i in range(start, min(start + batch_size, len(test)))]
            predictions.append(model(**collate(rows)).logits.argmax(dim=-1).numpy())
    return np.concatenate(predictions)


def accuracy(path: str, checkpoint: Path, labels, split, out: Path, args) -> dict:
    """UA on held-out speakers after training ``path`` for ``args.budget_cpu_s`` CPU seconds."""
    clock = StepClock(budget_cpu_s=args.budget_cpu_s)
    trainer, trained = make_trainer(path, checkpoint, labels, split["train"], out, args, clock, num_train_epochs=100)
    trainer.train()
    steps = len(clock.marks)
    start = time.process_time()
    predictions = _predict(path, trained, split["test"], args.batch_size)
    scores = compute_ser_metrics(np.asarray(split["test"]["label"]), predictions, label_names=labels)
    result = {"train_cpu_s": round(clock.marks[-1][1] - clock.start_cpu, 1), "steps": steps,
              "samples_seen": steps * args.batch_size, "epochs": round(steps * args.batch_size / len(split["train"]), 2),
              "test_clips": len(split["test"]), "unweighted_accuracy": round(scores["unweighted_accuracy"], 4),
              "weighted_accuracy": round(scores["weighted_accuracy"], 4),
              "predict_cpu_s": round(time.process_time() - start, 1)}
    print(f"  {path:8s} UA {result['unweighted_accuracy']:.3f} after {steps} steps ({result['epochs']} epochs)",
          flush=True)
    return result


def _sample(dataset: datasets.Dataset, count: int, seed: int) -> datasets.Dataset:
    rows = sorted(random.Random(seed).sample(range(len(dataset)), min(count, len(dataset))))
    return dataset.select(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="urdu", help="shared corpus for the throughput runs (urdu or ravdess)")
    parser.add_argument("--clips", type=int, default=64, help="clips for the throughput runs")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument("--dataloader-workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--name", default="finetune_throughput", help="result file name")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    add_timing_arguments(parser)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--budget-cpu-s", type=float, default=150.0, help="CPU seconds of training per path for UA; 0: skip")
    parser.add_argument("--test-clips", type=int, default=64, help="held-out-speaker clips scored for UA")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dataset = load_corpus(args.corpus, SHARED_DATA / args.corpus)
    labels = dataset.features["label"].names
    checkpoint = Path(resolve_model_path("whisper-tiny.en"))
    clips = _sample(dataset, args.clips, seed=0)
    results = {"model": "whisper-tiny.en preset (OpenAI weights)", "corpus": args.corpus,
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "bf16": args.bf16, "dataloader_workers": args.dataloader_workers, "torch_threads": torch.get_num_threads(),
               "batch_size": args.batch_size, "learning_rate": args.lr,
               "clips": {"count": len(clips), "seconds_min": round(min(clips["duration"]), 2),
                         "seconds_mean": round(float(np.mean(clips["duration"])), 2),
                         "seconds_max": round(max(clips["duration"]), 2)},
               "throughput": None}
    with tempfile.TemporaryDirectory() as tmp:
        with timing_conditions(args, "--steps training steps per path after --warmup steps, a fresh trainer per "
                                     "round, the paths in alternating order") as conditions:
            results["throughput"] = throughput(checkpoint, labels, clips, Path(tmp), args)
        results["speedup"] = results["throughput"].pop("speedup")
        results["timing"] = conditions
        if args.budget_cpu_s > 0:
            split = speaker_split(dataset, test_size=0.2, validation_size=0.0, seed=0)
            split["test"] = _sample(split["test"], args.test_clips, seed=1)
            results["accuracy"] = {"budget_cpu_s": args.budget_cpu_s, "train_clips": len(split["train"]),
                                   "test_speakers": sorted(set(split["test"]["speaker"]))}
            for path in ("ser_hf", "example"):
                results["accuracy"][path] = accuracy(path, checkpoint, labels, split, Path(tmp) / f"ua-{path}", args)
    write_result(args.name, results)


if __name__ == "__main__":
    main()
