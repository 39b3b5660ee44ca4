"""A released model's card, rendered once when the model is released and shipped beside its head.

A released model (:mod:`ser_hf.models.released`) is package data: its head, its ``record.json`` and its card
(``README.md`` and the ``ser_hf_card.json`` it is rendered from). The card is made from the record alone
(:func:`~ser_hf.cards.data.card_from_release`), so ``benchmarks/release_models.py`` renders it when it writes a
head (``--write``), or again from the committed records without training (``--cards``);
:func:`~ser_hf.models.released_checkpoint.prepare_released` copies it into the checkpoint it builds, checked against the
SHA-256s in the record, and never renders a card itself. A test renders every shipped card again and compares,
so a card cannot drift from its record, the template or the code that fills it.

Example:
    ```python
    >>> from ser_hf.cards.release import ship_release_card
    >>> ship_release_card("emotion-whisper-base")  # after editing the template  # doctest: +SKIP
    PosixPath('.../ser_hf/models/released_heads/emotion-whisper-base/README.md')

    ```
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ser_hf.cards.data import card_from_release
from ser_hf.cards.files import save_model_card
from ser_hf.models.released import RECORD_FILE, ReleaseSpec, get_release, record_card

__all__ = ["ship_release_card", "write_release_card"]


def write_release_card(directory: str | os.PathLike, record: Mapping[str, Any], **user_fields: Any) -> Path:
    """Render a released model's card from its record into ``directory``: ``README.md`` and ``ser_hf_card.json``.

    Args:
        directory: Where to write (created if missing); no checkpoint is needed.
        record: The released model's ``record.json``.
        **user_fields: Card user fields, e.g. ``model_id`` when pushing to the Hub.

    Returns:
        The path of the written ``README.md``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return save_model_card(directory, card_from_release(record, **user_fields))


def ship_release_card(name_or_spec: str | ReleaseSpec, directory: str | os.PathLike | None = None) -> Path:
    """Render a released model's card beside its head and record the card files' SHA-256s in its record.

    Args:
        name_or_spec: The released model.
        directory: Its folder, when not the spec's (a retrain written elsewhere).

    Returns:
        The path of the written ``README.md``.
    """
    spec = name_or_spec if isinstance(name_or_spec, ReleaseSpec) else get_release(name_or_spec)
    folder = Path(directory) if directory is not None else spec.folder
    record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    path = write_release_card(folder, record)
    record_card(folder)
    return path
