"""A model card on disk: ``README.md`` rendered from the one Jinja template, and ``ser_hf_card.json`` beside it.

:func:`write_model_card` renders ``model_cards/ser_model_card_template.md`` with
``huggingface_hub.ModelCard.from_template`` into ``README.md`` beside the checkpoint, checks the result with the
Hub's own parser and keeps the card's data in ``ser_hf_card.json``, from which :func:`update_model_card` renders
it again with other user fields (a licence, a Hub id) and :func:`add_to_model_card` with a robustness table.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from ser_hf._io import write_output_file
from ser_hf.cards.data import SERModelCardData
from ser_hf.checkpoint import CARD_DATA_FILE, MODEL_CARD
from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation.robustness import card_record
from ser_hf.paths import path_text, printable

__all__ = [
    "HUB_LICENSES",
    "CARD_DATA_FILE", "TEMPLATE_NAME", "add_to_model_card", "card_data_file", "render_model_card", "save_model_card",
    "license_card_fields", "template_path", "update_model_card", "validate_license", "validate_license_terms", "write_model_card",
]

TEMPLATE_NAME = "ser_model_card_template.md"

# CARD_DATA_FILE (ser_hf_card.json): the card's data beside README.md, so a card can be rendered again with other
# user fields (licence...). Named in ser_hf.checkpoint, which says what a checkpoint folder holds.

_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


#: The licence ids a model card's ``license`` may hold. huggingface_hub ships no such list; this is the table of
#: https://huggingface.co/docs/hub/repositories-licenses (hub-docs ``docs/hub/repositories-licenses.md``, the
#: ``region licenses`` block). A licence the Hub adds later: use ``other`` with ``license_name`` and
#: ``license_link`` meanwhile, and add its id here.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0",
    "etalab-2.0", "eupl-1.1", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc",
    "lppl-1.3c", "ms-pl", "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa",
    "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license", "llama2", "gemma", "unknown", "other",
})


def validate_license(license: str | None, argument: str = "--license") -> str | None:
    """Check that ``license`` is one of the Hub's licence ids (:data:`HUB_LICENSES`: ``cc-by-nc-sa-4.0``,
    ``apache-2.0``, ``other``, ...; ``None`` passes).

    Raises:
        SERError: for anything else (a licence written in words or with capitals, ``"CC BY 4.0"``, or an id the Hub
            does not know), naming the argument and the nearest ids.
    """
    if license is None or (isinstance(license, str) and license in HUB_LICENSES):
        return license
    text = printable(str(license))
    near = difflib.get_close_matches(text.lower().replace(" ", "-"), sorted(HUB_LICENSES), n=4, cutoff=0.6)
    raise SERError(
        f"{argument} {text!r} is not a Hub licence id; expected one of the ids of "
        f"https://huggingface.co/docs/hub/repositories-licenses{f' (closest: {near})' if near else ''}, e.g. "
        f"'cc-by-nc-sa-4.0', 'apache-2.0' or 'mit'. For other terms pass {argument} other with a licence name and "
        f"link (--license-name, --license-link). Check that the training corpora's licences allow it."
    )


_LICENSE_LINK = re.compile(r"^(https?://\S+|[A-Za-z0-9_.-]+)$")


def validate_license_terms(license: str | None, name: str | None, link: str | None,
                           arguments: tuple[str, str, str] = ("--license", "--license-name", "--license-link")) -> None:
    """Check a licence that no Hub licence id fits: ``license="other"`` with an id for the terms and where they are
    (the Hub's ``license_name`` and ``license_link``); ``arguments`` name the three in messages.

    Raises:
        SERError: a name or link without ``license="other"``, a name that is not a lowercase id, or a link that is
            neither an http(s) URL nor a file name in the repo (``LICENSE``).
    """
    licence_argument, name_argument, link_argument = arguments
    given = [argument for argument, value in ((name_argument, name), (link_argument, link)) if value is not None]
    if given and license != "other":
        raise SERError(f"{' and '.join(given)} describe terms that no Hub licence id fits, so they go with "
                       f"{licence_argument} other (got {licence_argument} {license!r}); with a Hub licence id, leave "
                       f"them out.")
    if name is not None and not _LICENSE_ID.match(name):
        raise SERError(f"{name_argument} {name!r} is not an id; expected lowercase letters, digits, '.', '+' or '-', "
                       f"e.g. 'urdu-research-only'.")
    if link is not None and not _LICENSE_LINK.match(link):
        raise SERError(f"{link_argument} {link!r} is neither an http(s) URL nor a file name in the repo; expected e.g. "
                       f"https://example.org/terms or LICENSE.")


def license_card_fields(license: str | None, license_name: str | None = None,
                        license_link: str | None = None) -> dict[str, str]:
    """The card fields a licence sets (the ones given), checked first: ``{"license": ..., "license_name": ...}``.

    Raises:
        SERError: see :func:`validate_license` and :func:`validate_license_terms` (messages name the CLI flags).
    """
    validate_license(license)
    validate_license_terms(license, license_name, license_link)
    fields = {"license": license, "license_name": license_name, "license_link": license_link}
    return {key: value for key, value in fields.items() if value is not None}


def template_path() -> Path:
    """The card template: the packaged copy (``ser_hf/model_cards/``) or the source tree's ``model_cards/``.

    Raises:
        SERError: when neither exists (a broken install); the message names both places.
    """
    packaged = resources.files("ser_hf").joinpath("model_cards").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE_NAME
    if source.is_file():
        return source
    raise SERError(
        f"Model card template {TEMPLATE_NAME} not found in the installed package ({packaged}) nor in the source "
        f"tree ({source}). Reinstall ser_hf, or pass template_path= to write_model_card."
    )


def write_model_card(
    checkpoint_dir: str | os.PathLike, card_data: SERModelCardData, template: str | os.PathLike | None = None
) -> Path:
    """Render the card into ``README.md`` beside the checkpoint and check its metadata parses.

    Args:
        checkpoint_dir: The checkpoint directory (``config.json`` inside).
        card_data: The filled :class:`SERModelCardData`; its checkpoint facts are read here if not yet set.
        template: Another Jinja template (default: :func:`template_path`).

    Returns:
        The path of the written ``README.md``.

    Raises:
        SERError: when ``checkpoint_dir`` holds no ``config.json``.
    """
    directory = Path(checkpoint_dir)
    if not (directory / "config.json").is_file():
        raise SERError(
            f"write_model_card: {str(directory)!r} has no config.json; pass the checkpoint directory (the "
            f"output_dir of `ser-hf train`)."
        )
    if card_data.architecture is None:
        card_data.set_checkpoint(directory)
    return save_model_card(directory, card_data, template)


def render_model_card(card_data: SERModelCardData, template: str | os.PathLike | None = None) -> str:
    """The text of ``README.md``: the template rendered with ``card_data``, its metadata checked by the Hub's parser.

    Raises:
        SERError: a licence that is not a Hub licence id, or licence terms :func:`validate_license_terms` refuses.
    """
    validate_license(card_data.license, "license")
    validate_license_terms(card_data.license, card_data.license_name, card_data.license_link,
                           ("license", "license_name", "license_link"))
    card = ModelCard.from_template(card_data, template_path=str(template or template_path()))
    ModelCard(card.content)  # the Hub's own parser: raises if the YAML header or model-index is invalid
    return card.content


def save_model_card(directory: str | os.PathLike, card_data: SERModelCardData,
                    template: str | os.PathLike | None = None) -> Path:
    """Write ``README.md`` (:func:`render_model_card`) and ``ser_hf_card.json`` into ``directory`` as they are.

    Unlike :func:`write_model_card` it reads no checkpoint: the card's facts must be set (a released model's
    card, rendered from its record before any checkpoint is built).

    Returns:
        The path of the written ``README.md``.
    """
    directory = Path(directory)
    path = directory / MODEL_CARD
    write_output_file(path, render_model_card(card_data, template))
    fields = {f.name: getattr(card_data, f.name) for f in dataclasses.fields(card_data)}
    write_output_file(directory / CARD_DATA_FILE, json.dumps(fields, indent=2, default=str) + "\n")
    return path


def update_model_card(checkpoint_dir: str | os.PathLike, **user_fields: Any) -> Path:
    """Render a checkpoint's card again with other user fields (e.g. ``license``), from its ``ser_hf_card.json``.

    ``ser-hf train --license`` and ``ser-hf push --license`` use it; every fact training recorded stays.

    Args:
        checkpoint_dir: A checkpoint directory whose card :func:`write_model_card` wrote.
        **user_fields: :class:`SERModelCardData` user fields to set (``license``, ``language``, ``model_id``...).

    Returns:
        The path of the rewritten ``README.md``.

    Raises:
        SERError: no ``ser_hf_card.json`` (a card not written by ser_hf, or an older one), or an unknown field.
    """
    if "license" in user_fields:
        validate_license(user_fields["license"], "license")  # before the folder is read
    directory = Path(path_text(checkpoint_dir, "checkpoint_dir", refuse_empty=True))
    source = directory / CARD_DATA_FILE
    if not source.is_file():
        raise SERError(
            f"{str(directory)!r} has no {CARD_DATA_FILE}, the card data ser_hf writes beside README.md since this "
            f"version; found {sorted(p.name for p in directory.iterdir()) if directory.is_dir() else 'no folder'}. "
            f"Train again, or set the field in README.md's YAML header by hand."
        )
    saved = json.loads(source.read_text(encoding="utf-8"))
    settable = {f.name for f in dataclasses.fields(SERModelCardData) if f.init}
    unknown = sorted(set(user_fields) - settable)
    if unknown:
        raise SERError(f"update_model_card: unknown card field(s) {unknown}; choose from {sorted(settable)}.")
    kept = {k: v for k, v in saved.items() if k in settable}
    if user_fields.get("license", "other") != "other":  # another licence id: the terms of the old "other" go with it
        for key in ("license_name", "license_link"):
            kept.pop(key, None)
    card = SERModelCardData(**{**kept, **user_fields})
    known = {f.name for f in dataclasses.fields(SERModelCardData)}
    for name, value in saved.items():
        if name in known and name not in settable:
            setattr(card, name, value)
    return write_model_card(directory, card)


def card_data_file(checkpoint_dir: str | os.PathLike) -> Path:
    """The checkpoint's ``ser_hf_card.json``, which its card is rendered from.

    Raises:
        EvaluationError: the directory has none (a checkpoint not trained or prepared by ser_hf, an ONNX file).
    """
    source = Path(path_text(checkpoint_dir, "checkpoint_dir", error=EvaluationError, refuse_empty=True)) / CARD_DATA_FILE
    if not source.is_file():
        raise EvaluationError(
            f"--update-card: {str(checkpoint_dir)!r} has no {CARD_DATA_FILE} (the card data `ser-hf train` and "
            f"`ser-hf models prepare` write beside README.md), so its card cannot be rendered again. Drop "
            f"--update-card; the table is in the report's report.md.")
    return source


def add_to_model_card(checkpoint_dir: str | os.PathLike, report: Any) -> Path:
    """Put the report's degraded-audio table into the checkpoint's model card (``README.md``), rendered again
    from its ``ser_hf_card.json`` with every other fact kept.

    Raises:
        EvaluationError: the report has no robustness section, or the directory has no ``ser_hf_card.json``.
    """
    source = card_data_file(checkpoint_dir)
    saved = json.loads(source.read_text(encoding="utf-8"))
    saved["robustness"] = card_record(report)
    write_output_file(source, json.dumps(saved, indent=2, default=str) + "\n")
    return update_model_card(checkpoint_dir)
