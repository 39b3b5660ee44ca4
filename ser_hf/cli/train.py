"""``ser-hf train`` and ``ser-hf cv``: run a recipe once, or on every speaker-grouped fold."""

from __future__ import annotations

import argparse

from ser_hf.training.recipes import own_keys, parse_run

KEYS_EPILOG = "keys (in the recipe or as --key value):\n" + "\n".join(
    f"  {group}: {', '.join(names)}" for group, names in own_keys().items()
)


def _add(subparsers, name: str, help_text: str, example: str, func) -> None:
    parser = subparsers.add_parser(
        name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
        epilog=f"example: {example}\n\n{KEYS_EPILOG}", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.usage = f"ser-hf {name} [RECIPE.yaml] [--key value ...]"
    # The recipe and its --key value overrides are parsed by HfArgumentParser, not here (see cli.main).
    parser.set_defaults(func=func, takes_overrides=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    _add(subparsers, "train", "train a model on a speaker-independent split and save the checkpoint",
         "ser-hf train recipes/urdu/whisper-base-probe.yaml --output_dir outputs/urdu", run_train)
    _add(subparsers, "cv", "cross-validate a recipe on the corpus's speaker-grouped folds",
         "ser-hf cv recipes/urdu/whisper-base-probe.yaml --data_dir ../shared/data/urdu", run_cv)


def _split_recipe(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """A leading argument that is not a flag is the recipe; the rest are overrides."""
    extra = list(args.overrides)
    if extra and not extra[0].startswith("-"):
        return extra[0], extra[1:]
    return None, extra


def run_train(args: argparse.Namespace) -> int:
    from ser_hf.training.experiment import train

    recipe, overrides = _split_recipe(args)
    result = train(parse_run(recipe, overrides))
    if result.report is not None:
        print(result.report.format_table())
    print(f"checkpoint: {result.checkpoint}  (load it with transformers.pipeline('audio-classification', model=...))")
    return 0


def run_cv(args: argparse.Namespace) -> int:
    from ser_hf.evaluation import folds_to_markdown
    from ser_hf.training.experiment import cross_validate

    recipe, overrides = _split_recipe(args)
    run = parse_run(recipe, overrides)
    result = cross_validate(run)
    print(folds_to_markdown(result.aggregate))
    print(result.pooled.format_table())
    print(f"reports: {run.training.output_dir}/cv")
    return 0
