"""``ser-hf push``: upload a checkpoint, its model card and report figures to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from ser_hf.cli.licence import add_license_arguments

DESCRIPTION = """\
Upload a checkpoint folder, or a model ser_hf ships (see `ser-hf models list`), to a Hugging Face Hub
model repo (created if missing). A released model is prepared first and uploaded with its model card.

Everything local is checked before any request: config.json, *.safetensors, preprocessor_config.json and
README.md (the model card `ser-hf train` writes, its YAML header readable) must be there; pickle files
(*.bin, *.pt, ...), hidden files (.env, .aws/credentials: they often hold secrets), symlinks to files
outside the folder, dangling links and FIFOs are refused. The folder is only read: --license goes into
the uploaded card, not into the folder's README.md. The Trainer's intermediate checkpoint-*/ folders,
runs/ logs and desktop litter (.DS_Store, Thumbs.db) are never uploaded."""

EPILOG = """\
examples:
  ser-hf push --model outputs/rav4 --repo-id me/whisper-base-ser-ravdess --private
  ser-hf push --model emotion-whisper-base --repo-id me/emotion-whisper-base
  ser-hf push --model outputs/urdu --repo-id my-org/ser-urdu --exclude training_args.bin
  ser-hf push --model outputs/rav4 --repo-id me/ser-rav4 --license cc-by-nc-sa-4.0

The token comes from --token, else HF_TOKEN, else `hf auth login`; prefer the last two, since a
command-line token shows in the shell history and the process list."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a checkpoint or a released model with its model card to the Hugging Face Hub",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="checkpoint folder, or a released model name (e.g. emotion-whisper-base)")
    parser.add_argument("--repo-id", required=True, metavar="NAME", help="Hub repo, 'user/name' or 'org/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--token", default=None, metavar="TOKEN", help="Hub token with write access (see below)")
    parser.add_argument("--commit-message", default=None, metavar="TEXT", help="message of the upload commit (first line: summary; the rest: description)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave matching files out (repeatable), e.g. training_args.bin")
    parser.add_argument("--revision", default=None, metavar="BRANCH", help="existing branch to push to (default: main)")
    add_license_arguments(parser, "set the model's licence (a Hub licence id, e.g. cc-by-nc-sa-4.0, or other) in the "
                                  "uploaded card; the folder's README.md is left as it is. Released models keep their "
                                  "data's licence")
    parser.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from ser_hf.hub import push_model

    url = push_model(args.model, args.repo_id, private=args.private, token=args.token,
                     commit_message=args.commit_message, exclude=args.exclude, revision=args.revision,
                     license=args.license, license_name=args.license_name, license_link=args.license_link)
    print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0
