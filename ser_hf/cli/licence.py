"""The licence arguments ``ser-hf train`` and ``ser-hf push`` share: a Hub licence id, or ``other`` with its terms."""

from __future__ import annotations

import argparse
from typing import Any


def add_license_arguments(parser: argparse.ArgumentParser, help: str) -> None:
    """``--license ID``, and ``--license-name`` / ``--license-link`` for terms no Hub licence id fits."""
    parser.add_argument("--license", default=None, metavar="ID", help=help)
    parser.add_argument("--license-name", default=None, metavar="ID",
                        help="with --license other: an id for the terms, e.g. urdu-research-only (the card's "
                             "license_name, which the Hub shows)")
    parser.add_argument("--license-link", default=None, metavar="URL",
                        help="with --license other: where the terms are, an http(s) URL or a file in the repo such as "
                             "LICENSE (the card's license_link)")


def license_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The model-card fields the arguments set (none given: empty), checked first.

    Raises:
        SERError: naming the argument, for a licence that is not one of the Hub's licence ids
            (:data:`ser_hf.cards.files.HUB_LICENSES`) or terms given without ``--license other`` (see
            :func:`ser_hf.cards.license_card_fields`).
    """
    from ser_hf.cards import license_card_fields

    return license_card_fields(args.license, args.license_name, args.license_link)  # the Hub's ids only
